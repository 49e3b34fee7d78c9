/* Element-wise activations (GELU, ReLU), softmax over the last dim, dropout and drop-path.
 * expf/erff from libm do not vectorise without -ffast-math, so small vectorisable versions (error ~2e-7
 * absolute for erf, ~2 ulp for exp) live in core/dama_math.h, shared with the CUDA kernels. */
#include "core/dama_internal.h"
#include <math.h>

/* Float compares may be if-converted (clamps, selects) only when traps are ignored (results unchanged);
 * a*b+c may use FMA (as with -ffp-contract=fast, which -std=c11 turns off). */
#pragma GCC optimize("no-trapping-math", "fp-contract=fast")

/* vexpf, erf and the GELU pair are shared with the CUDA kernels (included after the pragma on purpose). */
#include "core/dama_math.h"

#define CHECK_N(fn, n) DAMA_CHECK((n) > 0, DAMA_ERR_ARG, fn ": n must be positive, got %lld", (long long)(n))
#define PAR_THRESHOLD 32768

dama_status dama_gelu_forward(float *out, const float *inp, int64_t n) {
  CHECK_N("gelu_forward", n);
  DAMA_CHECK(out && inp, DAMA_ERR_ARG, "gelu_forward: out and inp must not be NULL");
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) {
    out[i] = dama_gelu(inp[i]);
  }
  return DAMA_OK;
}

dama_status dama_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n) {
  CHECK_N("gelu_backward", n);
  DAMA_CHECK(dinp && inp && dout, DAMA_ERR_ARG, "gelu_backward: dinp, inp and dout must not be NULL");
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) {
    dinp[i] += dout[i] * dama_gelu_grad(inp[i]);
  }
  return DAMA_OK;
}

dama_status dama_relu_forward(float *out, const float *inp, int64_t n) {
  CHECK_N("relu_forward", n);
  DAMA_CHECK(out && inp, DAMA_ERR_ARG, "relu_forward: out and inp must not be NULL");
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
  return DAMA_OK;
}

dama_status dama_relu_backward(float *dinp, const float *out, const float *dout, int64_t n) {
  CHECK_N("relu_backward", n);
  DAMA_CHECK(dinp && out && dout, DAMA_ERR_ARG, "relu_backward: dinp, out and dout must not be NULL");
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
  return DAMA_OK;
}

dama_status dama_softmax_forward(float *out, const float *inp, int64_t N, int64_t C) {
  DAMA_CHECK(N > 0 && C > 0, DAMA_ERR_ARG, "softmax_forward: sizes must be positive, got N=%lld C=%lld",
             (long long)N, (long long)C);
  DAMA_CHECK(out && inp, DAMA_ERR_ARG, "softmax_forward: out and inp must not be NULL");
#pragma omp parallel for schedule(static) if (N * C > PAR_THRESHOLD)
  for (int64_t i = 0; i < N; i++) {
    const float *x = inp + i * C;
    float *o = out + i * C;
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t c = 0; c < C; c++) mx = x[c] > mx ? x[c] : mx;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; c++) { o[c] = dama_vexpf(x[c] - mx); s += o[c]; }
    float inv = 1.0f / s;
#pragma omp simd
    for (int64_t c = 0; c < C; c++) o[c] *= inv;
  }
  return DAMA_OK;
}

dama_status dama_softmax_backward(float *dinp, const float *out, const float *dout, int64_t N, int64_t C) {
  DAMA_CHECK(N > 0 && C > 0, DAMA_ERR_ARG, "softmax_backward: sizes must be positive, got N=%lld C=%lld",
             (long long)N, (long long)C);
  DAMA_CHECK(dinp && out && dout, DAMA_ERR_ARG, "softmax_backward: dinp, out and dout must not be NULL");
#pragma omp parallel for schedule(static) if (N * C > PAR_THRESHOLD)
  for (int64_t i = 0; i < N; i++) {
    const float *y = out + i * C, *g = dout + i * C;
    float *dx = dinp + i * C;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < C; c++) s += y[c] * g[c];
#pragma omp simd
    for (int64_t c = 0; c < C; c++) dx[c] += y[c] * (g[c] - s);
  }
  return DAMA_OK;
}

dama_status dama_dropout_forward(float *out, const float *inp, const float *mask, float scale, int64_t n) {
  CHECK_N("dropout_forward", n);
  DAMA_CHECK(out && inp && mask, DAMA_ERR_ARG, "dropout_forward: out, inp and mask must not be NULL");
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) out[i] = inp[i] * mask[i] * scale;
  return DAMA_OK;
}

dama_status dama_dropout_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t n) {
  CHECK_N("dropout_backward", n);
  DAMA_CHECK(dinp && dout && mask, DAMA_ERR_ARG, "dropout_backward: dinp, dout and mask must not be NULL");
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) dinp[i] += dout[i] * mask[i] * scale;
  return DAMA_OK;
}

dama_status dama_dropout_u8_forward(float *out, const float *inp, const uint8_t *mask, float scale, int64_t n) {
  CHECK_N("dropout_u8_forward", n);
  DAMA_CHECK(out && inp && mask, DAMA_ERR_ARG, "dropout_u8_forward: out, inp and mask must not be NULL");
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) out[i] = mask[i] ? inp[i] * scale : 0.0f;
  return DAMA_OK;
}

dama_status dama_dropout_u8_backward(float *dinp, const float *dout, const uint8_t *mask, float scale, int64_t n) {
  CHECK_N("dropout_u8_backward", n);
  DAMA_CHECK(dinp && dout && mask, DAMA_ERR_ARG, "dropout_u8_backward: dinp, dout and mask must not be NULL");
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) dinp[i] += mask[i] ? dout[i] * scale : 0.0f;
  return DAMA_OK;
}

dama_status dama_drop_path_forward(float *out, const float *inp, const float *mask, float scale, int64_t N,
                                   int64_t M) {
  DAMA_CHECK(N > 0 && M > 0, DAMA_ERR_ARG, "drop_path_forward: sizes must be positive, got N=%lld M=%lld",
             (long long)N, (long long)M);
  DAMA_CHECK(out && inp && mask, DAMA_ERR_ARG, "drop_path_forward: out, inp and mask must not be NULL");
#pragma omp parallel for schedule(static) if (N * M > PAR_THRESHOLD)
  for (int64_t i = 0; i < N; i++) {
    float s = mask[i] * scale;
#pragma omp simd
    for (int64_t j = 0; j < M; j++) out[i * M + j] = inp[i * M + j] * s;
  }
  return DAMA_OK;
}

dama_status dama_drop_path_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t N,
                                    int64_t M) {
  DAMA_CHECK(N > 0 && M > 0, DAMA_ERR_ARG, "drop_path_backward: sizes must be positive, got N=%lld M=%lld",
             (long long)N, (long long)M);
  DAMA_CHECK(dinp && dout && mask, DAMA_ERR_ARG, "drop_path_backward: dinp, dout and mask must not be NULL");
#pragma omp parallel for schedule(static) if (N * M > PAR_THRESHOLD)
  for (int64_t i = 0; i < N; i++) {
    float s = mask[i] * scale;
#pragma omp simd
    for (int64_t j = 0; j < M; j++) dinp[i * M + j] += dout[i * M + j] * s;
  }
  return DAMA_OK;
}
