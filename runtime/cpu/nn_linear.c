/* Linear layer forward/backward: out = inp @ weight^T + bias with PyTorch's [out, in] weight layout.
 * The GEMMs run through dama_sgemm outside any OpenMP region; bias work is parallel over rows/columns. */
#include "core/dama_internal.h"

/* out[N,OC] += bias[OC] per row. Done after the GEMM rather than as a pre-filled beta = 1 GEMM: an
 * OpenMP region right before a GEMM leaves libgomp workers spinning while OpenBLAS's threads start. */
/* Below this many elements a loop runs on the calling thread: waking OpenMP workers costs more. */
#define PAR_THRESHOLD 32768

static void add_bias_rows(float *out, const float *bias, int64_t N, int64_t OC) {
#pragma omp parallel for schedule(static) if (N * OC > PAR_THRESHOLD)
  for (int64_t i = 0; i < N; i++) {
    float *o = out + i * OC;
#pragma omp simd
    for (int64_t c = 0; c < OC; c++) o[c] += bias[c];
  }
}

/* db[OC] += sum over N rows of d[N,OC]; threads own column blocks, so no reduction is needed. */
static void column_sums_add(float *db, const float *d, int64_t N, int64_t OC) {
#pragma omp parallel for schedule(static) if (N * OC > PAR_THRESHOLD)
  for (int64_t c0 = 0; c0 < OC; c0 += 64) {
    int64_t c1 = c0 + 64 < OC ? c0 + 64 : OC;
    float acc[64] = {0};
    for (int64_t i = 0; i < N; i++) {
      const float *row = d + i * OC;
#pragma omp simd
      for (int64_t c = c0; c < c1; c++) acc[c - c0] += row[c];
    }
    for (int64_t c = c0; c < c1; c++) db[c] += acc[c - c0];
  }
}

dama_status dama_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t N,
                                int64_t C, int64_t OC) {
  DAMA_CHECK(N > 0 && C > 0 && OC > 0, DAMA_ERR_ARG,
             "linear_forward: sizes must be positive, got N=%lld C=%lld OC=%lld", (long long)N, (long long)C,
             (long long)OC);
  DAMA_CHECK(out && inp && weight, DAMA_ERR_ARG, "linear_forward: out, inp and weight must not be NULL");
  DAMA_TRY(dama_sgemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC));
  if (bias) add_bias_rows(out, bias, N, OC);
  return DAMA_OK;
}

dama_status dama_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                 const float *weight, int64_t N, int64_t C, int64_t OC) {
  DAMA_CHECK(N > 0 && C > 0 && OC > 0, DAMA_ERR_ARG,
             "linear_backward: sizes must be positive, got N=%lld C=%lld OC=%lld", (long long)N, (long long)C,
             (long long)OC);
  DAMA_CHECK(dout, DAMA_ERR_ARG, "linear_backward: dout must not be NULL");
  DAMA_CHECK(!dinp || weight, DAMA_ERR_ARG, "linear_backward: dinp needs weight");
  DAMA_CHECK(!dweight || inp, DAMA_ERR_ARG, "linear_backward: dweight needs inp");
  if (dinp) DAMA_TRY(dama_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C));
  if (dweight) DAMA_TRY(dama_sgemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C));
  if (dbias) column_sums_add(dbias, dout, N, OC);
  return DAMA_OK;
}
