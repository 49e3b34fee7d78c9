/* Fused multi-head self-attention over timm's fused qkv layout, forward/backward.
 * At the workload's lengths (T = 13..65, hd = 32..64) a (batch, head) pair is a few hundred KFLOP, so
 * each pair is done by one thread with plain vectorised loops; OpenMP spreads the B*NH pairs and no BLAS
 * runs inside the parallel region. */
#include "dama_internal.h"
#include <math.h>

/* Float compares may be if-converted (clamps, selects) only when traps are ignored; results are unchanged. */
#pragma GCC optimize("no-trapping-math")

#define ATT_MAX_T 8192

/* e^x, vectorisable (same as nn_act.c): 2^k e^r, |r| <= ln2/2, degree-7 Taylor polynomial. */
static inline float vexpf(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  union { int32_t i; float f; } s;
  s.i = ((int32_t)k + 127) << 23;
  return p * s.f;
}

static dama_status check_sizes(const char *fn, int64_t B, int64_t T, int64_t C, int64_t NH) {
  DAMA_CHECK(B > 0 && T > 0 && C > 0 && NH > 0, DAMA_ERR_ARG,
             "%s: sizes must be positive, got B=%lld T=%lld C=%lld NH=%lld", fn, (long long)B, (long long)T,
             (long long)C, (long long)NH);
  DAMA_CHECK(C % NH == 0, DAMA_ERR_ARG, "%s: C=%lld must be a multiple of NH=%lld", fn, (long long)C, (long long)NH);
  DAMA_CHECK(T <= ATT_MAX_T, DAMA_ERR_UNSUPPORTED, "%s: T=%lld, expected <= %d", fn, (long long)T, ATT_MAX_T);
  return DAMA_OK;
}

dama_status dama_attention_forward(float *out, float *att, const float *qkv, int64_t B, int64_t T, int64_t C,
                                   int64_t NH, float scale) {
  DAMA_TRY(check_sizes("attention_forward", B, T, C, NH));
  DAMA_CHECK(out && att && qkv, DAMA_ERR_ARG, "attention_forward: out, att and qkv must not be NULL");
  const int64_t hd = C / NH, C3 = 3 * C;
  if (scale <= 0.0f) scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const int64_t b = bh / NH, h = bh % NH;
    const float *base = qkv + b * T * C3 + h * hd; /* q of token 0; k at +C, v at +2C */
    float *A = att + bh * T * T;
    for (int64_t t1 = 0; t1 < T; t1++) {
      const float *q = base + t1 * C3;
      float *row = A + t1 * T;
      float mx = -INFINITY;
      for (int64_t t2 = 0; t2 < T; t2++) {
        const float *k = base + t2 * C3 + C;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < hd; i++) s += q[i] * k[i];
        s *= scale;
        row[t2] = s;
        mx = s > mx ? s : mx;
      }
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t t2 = 0; t2 < T; t2++) { row[t2] = vexpf(row[t2] - mx); sum += row[t2]; }
      float inv = 1.0f / sum;
#pragma omp simd
      for (int64_t t2 = 0; t2 < T; t2++) row[t2] *= inv;
      float *o = out + (b * T + t1) * C + h * hd;
      memset(o, 0, (size_t)hd * sizeof(float));
      for (int64_t t2 = 0; t2 < T; t2++) {
        const float *v = base + t2 * C3 + 2 * C;
        float p = row[t2];
#pragma omp simd
        for (int64_t i = 0; i < hd; i++) o[i] += p * v[i];
      }
    }
  }
  return DAMA_OK;
}

dama_status dama_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int64_t B,
                                    int64_t T, int64_t C, int64_t NH, float scale) {
  DAMA_TRY(check_sizes("attention_backward", B, T, C, NH));
  DAMA_CHECK(dqkv && dout && qkv && att, DAMA_ERR_ARG,
             "attention_backward: dqkv, dout, qkv and att must not be NULL");
  const int64_t hd = C / NH, C3 = 3 * C;
  if (scale <= 0.0f) scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const int64_t b = bh / NH, h = bh % NH;
    const float *base = qkv + b * T * C3 + h * hd;
    float *dbase = dqkv + b * T * C3 + h * hd;
    const float *A = att + bh * T * T;
    float dp[ATT_MAX_T];
    for (int64_t t1 = 0; t1 < T; t1++) {
      const float *p = A + t1 * T;
      const float *g = dout + (b * T + t1) * C + h * hd;
      /* dp = g . v[t2]; dv[t2] += p g */
      float s = 0.0f;
      for (int64_t t2 = 0; t2 < T; t2++) {
        const float *v = base + t2 * C3 + 2 * C;
        float *dv = dbase + t2 * C3 + 2 * C;
        float d = 0.0f, pt = p[t2];
#pragma omp simd reduction(+ : d)
        for (int64_t i = 0; i < hd; i++) { d += g[i] * v[i]; dv[i] += pt * g[i]; }
        dp[t2] = d;
        s += pt * d;
      }
      /* softmax backward, with the q k^T scale folded in: ds = p (dp - s) scale */
      const float *q = base + t1 * C3;
      float *dq = dbase + t1 * C3;
      for (int64_t t2 = 0; t2 < T; t2++) {
        float ds = p[t2] * (dp[t2] - s) * scale;
        const float *k = base + t2 * C3 + C;
        float *dk = dbase + t2 * C3 + C;
#pragma omp simd
        for (int64_t i = 0; i < hd; i++) { dq[i] += ds * k[i]; dk[i] += ds * q[i]; }
      }
    }
  }
  return DAMA_OK;
}
