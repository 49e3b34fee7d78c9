/* LayerNorm over the last dim, forward/backward, optional affine. Rows run in parallel; the weight and
 * bias gradients are a second pass where each thread owns a block of columns (deterministic, no atomics). */
#include "core/dama_internal.h"
#include <math.h>

/* Below this many elements a loop runs on the calling thread: waking OpenMP workers costs more. */
#define PAR_THRESHOLD 32768

/* a*b+c may use FMA (as with -ffp-contract=fast, which -std=c11 turns off). */
#pragma GCC optimize("fp-contract=fast")

dama_status dama_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                   const float *bias, int64_t N, int64_t C, float eps) {
  DAMA_CHECK(N > 0 && C > 0, DAMA_ERR_ARG, "layernorm_forward: sizes must be positive, got N=%lld C=%lld",
             (long long)N, (long long)C);
  DAMA_CHECK(out && mean && rstd && inp, DAMA_ERR_ARG, "layernorm_forward: out, mean, rstd and inp must not be NULL");
  DAMA_CHECK(eps >= 0.0f, DAMA_ERR_ARG, "layernorm_forward: eps must be >= 0, got %g", (double)eps);
#pragma omp parallel for schedule(static) if (N * C > PAR_THRESHOLD)
  for (int64_t i = 0; i < N; i++) {
    const float *x = inp + i * C;
    float *o = out + i * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; c++) s += x[c];
    float m = s / (float)C;
    float v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int64_t c = 0; c < C; c++) { float d = x[c] - m; v += d * d; }
    float r = 1.0f / sqrtf(v / (float)C + eps);
    if (weight && bias) {
#pragma omp simd
      for (int64_t c = 0; c < C; c++) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    } else if (weight) {
#pragma omp simd
      for (int64_t c = 0; c < C; c++) o[c] = (x[c] - m) * r * weight[c];
    } else if (bias) {
#pragma omp simd
      for (int64_t c = 0; c < C; c++) o[c] = (x[c] - m) * r + bias[c];
    } else {
#pragma omp simd
      for (int64_t c = 0; c < C; c++) o[c] = (x[c] - m) * r;
    }
    mean[i] = m;
    rstd[i] = r;
  }
  return DAMA_OK;
}

dama_status dama_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                    const float *weight, const float *mean, const float *rstd, int64_t N, int64_t C) {
  DAMA_CHECK(N > 0 && C > 0, DAMA_ERR_ARG, "layernorm_backward: sizes must be positive, got N=%lld C=%lld",
             (long long)N, (long long)C);
  DAMA_CHECK(dout && inp && mean && rstd, DAMA_ERR_ARG,
             "layernorm_backward: dout, inp, mean and rstd must not be NULL");
  if (dinp) {
#pragma omp parallel for schedule(static) if (N * C > PAR_THRESHOLD)
    for (int64_t i = 0; i < N; i++) {
      const float *x = inp + i * C, *g = dout + i * C;
      float *dx = dinp + i * C;
      float m = mean[i], r = rstd[i];
      float sum_dn = 0.0f, sum_dn_xh = 0.0f;
      if (weight) {
#pragma omp simd reduction(+ : sum_dn, sum_dn_xh)
        for (int64_t c = 0; c < C; c++) {
          float dn = g[c] * weight[c];
          sum_dn += dn;
          sum_dn_xh += dn * (x[c] - m) * r;
        }
      } else {
#pragma omp simd reduction(+ : sum_dn, sum_dn_xh)
        for (int64_t c = 0; c < C; c++) {
          sum_dn += g[c];
          sum_dn_xh += g[c] * (x[c] - m) * r;
        }
      }
      float a = sum_dn / (float)C, b = sum_dn_xh / (float)C;
      if (weight) {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) dx[c] += (g[c] * weight[c] - a - (x[c] - m) * r * b) * r;
      } else {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) dx[c] += (g[c] - a - (x[c] - m) * r * b) * r;
      }
    }
  }
  if (dweight || dbias) {
#pragma omp parallel for schedule(static) if (N * C > PAR_THRESHOLD)
    for (int64_t c0 = 0; c0 < C; c0 += 64) {
      int64_t c1 = c0 + 64 < C ? c0 + 64 : C;
      float aw[64] = {0}, ab[64] = {0};
      for (int64_t i = 0; i < N; i++) {
        const float *x = inp + i * C, *g = dout + i * C;
        float m = mean[i], r = rstd[i];
#pragma omp simd
        for (int64_t c = c0; c < c1; c++) {
          aw[c - c0] += g[c] * (x[c] - m) * r;
          ab[c - c0] += g[c];
        }
      }
      for (int64_t c = c0; c < c1; c++) {
        if (dweight) dweight[c] += aw[c - c0];
        if (dbias) dbias[c] += ab[c - c0];
      }
    }
  }
  return DAMA_OK;
}
