/* dama_sgemm: the one row-major SGEMM entry point of the runtime (cblas by default; oneDNN's
 * dnnl_sgemm when built with -DDAMA_USE_DNNL, see bench/NN_KERNELS.md). */
#include "core/dama_internal.h"
#include <cblas.h>
#include <limits.h>
#include <omp.h>
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

#ifdef DAMA_USE_DNNL
static void gemm_unchecked(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#else
static void gemm_one(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                     int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)M,
              (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* OpenBLAS (pthread build) on libgomp's threads: the product is split into one block of rows (or of
 * columns) per OpenMP thread and each block runs single-threaded BLAS. Then the nn kernels and the GEMMs
 * share one thread pool: no OpenBLAS workers spinning (sched_yield) beside idle OpenMP workers, which on
 * a loaded 2-core machine doubled the CPU time of small models (bench/VIT.md). Small products stay on the
 * calling thread. Each block packs the shared operand itself: O(K N) extra per thread, small against
 * O(M N K / threads). */
#define GEMM_PAR_MIN_FLOPS 4.0e6
static void gemm_unchecked(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                           int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  double flops = 2.0 * (double)M * (double)N * (double)K;
  if (nt > 1 && flops < GEMM_PAR_MIN_FLOPS * nt) nt = (int)(flops / GEMM_PAR_MIN_FLOPS) + 1;
  int split_m = M >= N;
  int64_t len = split_m ? M : N;
  if (nt > len / 16) nt = (int)(len / 16);
  int blas_threads = openblas_get_num_threads();
  if (blas_threads != 1) openblas_set_num_threads(1);
  if (nt <= 1) {
    gemm_one(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  } else {
    /* block edges on multiples of 16 rows/columns (the micro-kernels' widths) */
    int64_t chunk = ((len + nt - 1) / nt + 15) / 16 * 16;
#pragma omp parallel num_threads(nt)
    {
      int64_t i0 = (int64_t)omp_get_thread_num() * chunk;
      int64_t n = len - i0 < chunk ? len - i0 : chunk;
      if (n > 0) {
        if (split_m)
          gemm_one(trans_a, trans_b, n, N, K, alpha, trans_a ? A + i0 : A + i0 * lda, lda, B, ldb, beta,
                   C + i0 * ldc, ldc);
        else
          gemm_one(trans_a, trans_b, M, n, K, alpha, A, lda, trans_b ? B + i0 * ldb : B + i0, ldb, beta, C + i0,
                   ldc);
      }
    }
  }
  if (blas_threads != 1) openblas_set_num_threads(blas_threads);
}
#endif

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
