/* dama_sgemm: the one row-major SGEMM entry point of the runtime (cblas by default; oneDNN's
 * dnnl_sgemm when built with -DDAMA_USE_DNNL, see bench/NN_KERNELS.md). */
#include "dama_internal.h"
#include <cblas.h>
#include <limits.h>
#ifdef DAMA_USE_DNNL
#include <dnnl.h>
#endif

const char *dama_gemm_backend(void) {
#ifdef DAMA_USE_DNNL
  return "onednn";
#else
  return "openblas";
#endif
}

static dama_status check_args(const char *fn, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                              const float *A, int64_t lda, const float *B, int64_t ldb, const float *C, int64_t ldc) {
  DAMA_CHECK(M > 0 && N > 0 && K > 0, DAMA_ERR_ARG, "%s: sizes must be positive, got M=%lld N=%lld K=%lld", fn,
             (long long)M, (long long)N, (long long)K);
  DAMA_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX,
             DAMA_ERR_ARG, "%s: sizes and leading dims must fit in 32 bits", fn);
  DAMA_CHECK(A && B && C, DAMA_ERR_ARG, "%s: A, B and C must not be NULL", fn);
  int64_t min_lda = trans_a ? M : K, min_ldb = trans_b ? K : N;
  DAMA_CHECK(lda >= min_lda, DAMA_ERR_ARG, "%s: lda=%lld, expected >= %lld", fn, (long long)lda, (long long)min_lda);
  DAMA_CHECK(ldb >= min_ldb, DAMA_ERR_ARG, "%s: ldb=%lld, expected >= %lld", fn, (long long)ldb, (long long)min_ldb);
  DAMA_CHECK(ldc >= N, DAMA_ERR_ARG, "%s: ldc=%lld, expected >= %lld", fn, (long long)ldc, (long long)N);
  return DAMA_OK;
}

static void gemm_unchecked(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
#ifdef DAMA_USE_DNNL
  dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
              (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#endif
}

dama_status dama_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                       int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  DAMA_TRY(check_args("sgemm", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc));
  gemm_unchecked(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  return DAMA_OK;
}

dama_status dama_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                       const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                                       int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c,
                                       int64_t batch) {
  DAMA_TRY(check_args("sgemm_strided_batched", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc));
  DAMA_CHECK(batch > 0, DAMA_ERR_ARG, "sgemm_strided_batched: batch must be positive, got %lld", (long long)batch);
  DAMA_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= 0, DAMA_ERR_ARG,
             "sgemm_strided_batched: strides must be >= 0");
  for (int64_t i = 0; i < batch; i++)
    gemm_unchecked(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
                   C + i * stride_c, ldc);
  return DAMA_OK;
}
