/* Fused multi-head self-attention over timm's fused qkv layout, forward/backward.
 * At the workload's lengths (T = 13..65, hd = 32..64) a (batch, head) pair is a few hundred KFLOP, so
 * each pair is done by one thread with vectorised loops; OpenMP spreads the B*NH pairs and no BLAS runs
 * inside the parallel region. Each product (q k^T, P v, and the four of the backward) runs through a
 * small register-blocked matmul; K (forward) and V (backward) are first transposed into a stack tile
 * [hd, TC] so that every operand streams contiguously, TC keys at a time. Stack: 128 KiB per thread. */
#include "core/dama_internal.h"
#include <math.h>

/* Float compares may be if-converted (clamps, selects) only when traps are ignored (results unchanged);
 * a*b+c may use FMA (as with -ffp-contract=fast, which -std=c11 turns off). */
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")

#define ATT_MAX_T 8192
#define ATT_TILE 16384 /* floats of stack per thread for the transposed K or V tile */
#define ATT_MAX_HD (ATT_TILE / 8)

/* dama_vexpf (exp for the softmax rows; NaN in, NaN out, so a non-finite loss reaches the trainer's check) is
 * shared with nn_act.c and the CUDA kernels (included after the pragma on purpose). */
#include "core/dama_math.h"

static dama_status check_sizes(const char *fn, int64_t B, int64_t T, int64_t C, int64_t NH) {
  DAMA_CHECK(B > 0 && T > 0 && C > 0 && NH > 0, DAMA_ERR_ARG,
             "%s: sizes must be positive, got B=%lld T=%lld C=%lld NH=%lld", fn, (long long)B, (long long)T,
             (long long)C, (long long)NH);
  DAMA_CHECK(C % NH == 0, DAMA_ERR_ARG, "%s: C=%lld must be a multiple of NH=%lld", fn, (long long)C, (long long)NH);
  DAMA_CHECK(T <= ATT_MAX_T, DAMA_ERR_UNSUPPORTED, "%s: T=%lld, expected <= %d", fn, (long long)T, ATT_MAX_T);
  DAMA_CHECK(C / NH <= ATT_MAX_HD, DAMA_ERR_UNSUPPORTED, "%s: head dim %lld, expected <= %d", fn,
             (long long)(C / NH), ATT_MAX_HD);
  return DAMA_OK;
}

/* Keys per tile: a multiple of 8 with hd * TC <= ATT_TILE. */
static int64_t key_tile(int64_t hd, int64_t T) {
  int64_t tc = (ATT_TILE / hd) / 8 * 8;
  return tc < T ? tc : T;
}

/* ---- a small register-blocked matmul for the per-head products (GNU vector extensions; AVX2 with
 * -march=native, still correct without): C[M,N] += A[M,K] B[K,N] with A(m,k) = A[m*ars + k*aks]
 * (so A may be read transposed) and B, C row-major. 4x16 blocks, then 1x16, 1x8, then scalar columns. */
typedef float v8f __attribute__((vector_size(32)));
typedef float v8f_u __attribute__((vector_size(32), aligned(4), may_alias));
static inline v8f ld8(const float *p) { return *(const v8f_u *)p; }
static inline void st8(float *p, v8f v) { *(v8f_u *)p = v; }

static void mm_acc(float *C, int64_t ldc, const float *A, int64_t ars, int64_t aks, const float *B, int64_t ldb,
                   int64_t M, int64_t N, int64_t K) {
  const int64_t N16 = N / 16 * 16;
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) {
    const float *a0 = A + m * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
    for (int64_t n = 0; n < N16; n += 16) {
      v8f c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
      for (int64_t k = 0; k < K; k++) {
        const float *b = B + k * ldb + n;
        const v8f b0 = ld8(b), b1 = ld8(b + 8);
        const float x0 = a0[k * aks], x1 = a1[k * aks], x2 = a2[k * aks], x3 = a3[k * aks];
        c00 += x0 * b0; c01 += x0 * b1;
        c10 += x1 * b0; c11 += x1 * b1;
        c20 += x2 * b0; c21 += x2 * b1;
        c30 += x3 * b0; c31 += x3 * b1;
      }
      float *c = C + m * ldc + n;
      st8(c, ld8(c) + c00); st8(c + 8, ld8(c + 8) + c01); c += ldc;
      st8(c, ld8(c) + c10); st8(c + 8, ld8(c + 8) + c11); c += ldc;
      st8(c, ld8(c) + c20); st8(c + 8, ld8(c + 8) + c21); c += ldc;
      st8(c, ld8(c) + c30); st8(c + 8, ld8(c + 8) + c31);
    }
  }
  for (; m < M; m++) {
    const float *a0 = A + m * ars;
    for (int64_t n = 0; n < N16; n += 16) {
      v8f c00 = {0}, c01 = {0};
      for (int64_t k = 0; k < K; k++) {
        const float *b = B + k * ldb + n;
        const float x0 = a0[k * aks];
        c00 += x0 * ld8(b); c01 += x0 * ld8(b + 8);
      }
      float *c = C + m * ldc + n;
      st8(c, ld8(c) + c00); st8(c + 8, ld8(c + 8) + c01);
    }
  }
  const int64_t N8 = N / 8 * 8;
  if (N8 > N16) { /* one 8-wide column block */
    const int64_t n = N16;
    for (int64_t mm = 0; mm < M; mm++) {
      const float *a0 = A + mm * ars;
      v8f c00 = {0};
      for (int64_t k = 0; k < K; k++) c00 += a0[k * aks] * ld8(B + k * ldb + n);
      float *c = C + mm * ldc + n;
      st8(c, ld8(c) + c00);
    }
  }
  for (int64_t n = N8; n < N; n++)
    for (int64_t mm = 0; mm < M; mm++) {
      float s = 0.0f;
      for (int64_t k = 0; k < K; k++) s += A[mm * ars + k * aks] * B[k * ldb + n];
      C[mm * ldc + n] += s;
    }
}

/* tile[i*tc + j] = x[(j0 + j) * ld + i] for i < hd, j < tc */
static void transpose_tile(float *tile, const float *x, int64_t ld, int64_t j0, int64_t tc, int64_t hd) {
  for (int64_t j = 0; j < tc; j++) {
    const float *row = x + (j0 + j) * ld;
    for (int64_t i = 0; i < hd; i++) tile[i * tc + j] = row[i];
  }
}

dama_status dama_attention_forward(float *out, float *att, const float *qkv, int64_t B, int64_t T, int64_t C,
                                   int64_t NH, float scale) {
  DAMA_TRY(check_sizes("attention_forward", B, T, C, NH));
  DAMA_CHECK(out && att && qkv, DAMA_ERR_ARG, "attention_forward: out, att and qkv must not be NULL");
  const int64_t hd = C / NH, C3 = 3 * C, TC = key_tile(hd, T);
  if (scale <= 0.0f) scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const int64_t b = bh / NH, h = bh % NH;
    const float *q = qkv + b * T * C3 + h * hd, *k = q + C, *v = q + 2 * C; /* row t at + t * C3 */
    float *A = att + bh * T * T, *o = out + b * T * C + h * hd;
    float kt[ATT_TILE];
    /* raw scores A = q k^T, one key tile at a time */
    memset(A, 0, (size_t)(T * T) * sizeof(float));
    for (int64_t j0 = 0; j0 < T; j0 += TC) {
      const int64_t tc = T - j0 < TC ? T - j0 : TC;
      transpose_tile(kt, k, C3, j0, tc, hd);
      mm_acc(A + j0, T, q, C3, 1, kt, tc, T, tc, hd);
    }
    /* softmax(scale * scores) over each row */
    for (int64_t t1 = 0; t1 < T; t1++) {
      float *row = A + t1 * T;
      float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
      for (int64_t t2 = 0; t2 < T; t2++) mx = row[t2] > mx ? row[t2] : mx;
      float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
      for (int64_t t2 = 0; t2 < T; t2++) { row[t2] = dama_vexpf((row[t2] - mx) * scale); sum += row[t2]; }
      const float inv = 1.0f / sum;
#pragma omp simd
      for (int64_t t2 = 0; t2 < T; t2++) row[t2] *= inv;
      memset(o + t1 * C, 0, (size_t)hd * sizeof(float));
    }
    /* out = P v */
    mm_acc(o, C, A, T, 1, v, C3, T, hd, T);
  }
  return DAMA_OK;
}

dama_status dama_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int64_t B,
                                    int64_t T, int64_t C, int64_t NH, float scale) {
  DAMA_TRY(check_sizes("attention_backward", B, T, C, NH));
  DAMA_CHECK(dqkv && dout && qkv && att, DAMA_ERR_ARG,
             "attention_backward: dqkv, dout, qkv and att must not be NULL");
  const int64_t hd = C / NH, C3 = 3 * C, TC = key_tile(hd, T);
  const int64_t RB = ATT_TILE / T < T ? ATT_TILE / T : T; /* query rows per block of dS (>= 2 as T <= 8192) */
  if (scale <= 0.0f) scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < B * NH; bh++) {
    const int64_t b = bh / NH, h = bh % NH;
    const float *q = qkv + b * T * C3 + h * hd, *k = q + C, *v = q + 2 * C;
    float *dq = dqkv + b * T * C3 + h * hd, *dk = dq + C, *dv = dq + 2 * C;
    const float *A = att + bh * T * T, *g = dout + b * T * C + h * hd; /* g row t at + t * C */
    float vt[ATT_TILE], ds[ATT_TILE];
    if (TC >= T) transpose_tile(vt, v, C3, 0, T, hd);
    for (int64_t r0 = 0; r0 < T; r0 += RB) {
      const int64_t rb = T - r0 < RB ? T - r0 : RB;
      const float *P = A + r0 * T, *G = g + r0 * C;
      /* dP = G v^T for rows r0..r0+rb */
      memset(ds, 0, (size_t)(rb * T) * sizeof(float));
      for (int64_t j0 = 0; j0 < T; j0 += TC) {
        const int64_t tc = T - j0 < TC ? T - j0 : TC;
        if (TC < T) transpose_tile(vt, v, C3, j0, tc, hd);
        mm_acc(ds + j0, T, G, C, 1, vt, tc, rb, tc, hd);
      }
      /* softmax backward with the scale folded in: dS = P (dP - rowsum(P dP)) scale */
      for (int64_t r = 0; r < rb; r++) {
        const float *p = P + r * T;
        float *d = ds + r * T, s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int64_t t2 = 0; t2 < T; t2++) s += p[t2] * d[t2];
#pragma omp simd
        for (int64_t t2 = 0; t2 < T; t2++) d[t2] = p[t2] * (d[t2] - s) * scale;
      }
      mm_acc(dq + r0 * C3, C3, ds, T, 1, k, C3, rb, hd, T);        /* dq += dS k */
      mm_acc(dk, C3, ds, 1, T, q + r0 * C3, C3, T, hd, rb);        /* dk += dS^T q */
      mm_acc(dv, C3, P, 1, T, G, C, T, hd, rb);                    /* dv += P^T g */
    }
  }
  return DAMA_OK;
}
