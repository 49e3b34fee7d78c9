/* dama_sgemm against a naive double loop: all four transpose combinations, odd sizes, padded leading
 * dims, alpha/beta, the strided-batched variant and argument validation. */
#include "dama_test.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) { /* uniform in [-1, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* C = alpha op(A) op(B) + beta C in double, row-major */
static void naive(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double s = 0.0;
      for (int64_t k = 0; k < K; k++) {
        double a = ta ? A[k * lda + i] : A[i * lda + k];
        double b = tb ? B[j * ldb + k] : B[k * ldb + j];
        s += a * b;
      }
      C[i * ldc + j] = (float)(alpha * s + beta * C[i * ldc + j]);
    }
}

static int check_one(int ta, int tb, int64_t M, int64_t N, int64_t K, int64_t pad) {
  int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
  int64_t na = (ta ? K : M) * lda, nb = (tb ? N : K) * ldb, nc = M * ldc;
  float *A = malloc(sizeof(float) * na), *B = malloc(sizeof(float) * nb);
  float *C1 = malloc(sizeof(float) * nc), *C2 = malloc(sizeof(float) * nc);
  for (int64_t i = 0; i < na; i++) A[i] = frand();
  for (int64_t i = 0; i < nb; i++) B[i] = frand();
  for (int64_t i = 0; i < nc; i++) C1[i] = C2[i] = frand();
  int ok = dama_sgemm(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C1, ldc) == DAMA_OK;
  naive(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C2, ldc);
  for (int64_t i = 0; ok && i < M; i++)
    for (int64_t j = 0; j < N; j++)
      if (fabsf(C1[i * ldc + j] - C2[i * ldc + j]) > 1e-5f * (float)K + 1e-5f) {
        fprintf(stderr, "  ta=%d tb=%d M=%lld N=%lld K=%lld: C[%lld,%lld] %g vs %g\n", ta, tb, (long long)M,
                (long long)N, (long long)K, (long long)i, (long long)j, C1[i * ldc + j], C2[i * ldc + j]);
        ok = 0;
        break;
      }
  /* padding columns of C are untouched */
  for (int64_t i = 0; ok && i < M; i++)
    for (int64_t j = N; j < ldc; j++) if (C1[i * ldc + j] != C2[i * ldc + j]) ok = 0;
  free(A); free(B); free(C1); free(C2);
  return ok;
}

/* Products big enough to be split into one block of rows (M >= N) or of columns (N > M) per OpenMP
 * thread, with block edges that do not fall on the sizes' multiples. */
DAMA_TEST(sgemm_split_across_threads) {
  const int64_t sizes[][3] = {{300, 257, 70}, {70, 300, 257}, {515, 129, 97}};
  int saved = omp_get_max_threads();
  for (int nt = 2; nt <= 3; nt++) {
    omp_set_num_threads(nt);
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
          if (!check_one(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], 5)) {
            omp_set_num_threads(saved);
            CHECK_MSG(0, "split sgemm mismatch with %d threads", nt);
          }
  }
  omp_set_num_threads(saved);
}

DAMA_TEST(sgemm_all_transposes_odd_sizes) {
  const int64_t sizes[][3] = {{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {65, 129, 31}, {13, 64, 96}};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int64_t pad = 0; pad <= 3; pad += 3)
          CHECK_MSG(check_one(ta, tb, sizes[s][0], sizes[s][1], sizes[s][2], pad), "sgemm mismatch");
}

DAMA_TEST(sgemm_strided_batched_matches_loop) {
  const int64_t M = 13, N = 9, K = 11, batch = 4;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      int64_t lda = ta ? M : K, ldb = tb ? K : N, sa = M * K + 5, sb = K * N + 2, sc = M * N + 1;
      float *A = malloc(sizeof(float) * sa * batch), *B = malloc(sizeof(float) * sb * batch);
      float *C1 = calloc((size_t)(sc * batch), sizeof(float)), *C2 = calloc((size_t)(sc * batch), sizeof(float));
      for (int64_t i = 0; i < sa * batch; i++) A[i] = frand();
      for (int64_t i = 0; i < sb * batch; i++) B[i] = frand();
      dama_status st = dama_sgemm_strided_batched(ta, tb, M, N, K, 1.0f, A, lda, sa, B, ldb, sb, 0.0f, C1, N, sc, batch);
      for (int64_t b = 0; b < batch; b++) naive(ta, tb, M, N, K, 1.0f, A + b * sa, lda, B + b * sb, ldb, 0.0f, C2 + b * sc, N);
      double err = 0.0;
      for (int64_t i = 0; i < sc * batch; i++) err = fmax(err, fabs((double)C1[i] - (double)C2[i]));
      free(A); free(B); free(C1); free(C2);
      CHECK(st == DAMA_OK);
      CHECK_MSG(err < 1e-4, "batched error %g", err);
    }
}

DAMA_TEST(sgemm_validates_arguments) {
  float a[16] = {0}, b[16] = {0}, c[16] = {0};
  CHECK_STATUS(dama_sgemm(0, 0, 0, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2), DAMA_ERR_ARG);
  CHECK_STATUS(dama_sgemm(0, 0, 2, -1, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2), DAMA_ERR_ARG);
  CHECK_STATUS(dama_sgemm(0, 0, 2, 2, 2, 1.0f, a, 1, b, 2, 0.0f, c, 2), DAMA_ERR_ARG);  /* lda < K */
  CHECK_STATUS(dama_sgemm(1, 0, 3, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2), DAMA_ERR_ARG);  /* lda < M when trans */
  CHECK_STATUS(dama_sgemm(0, 1, 2, 3, 2, 1.0f, a, 2, b, 1, 0.0f, c, 3), DAMA_ERR_ARG);  /* ldb < K when trans */
  CHECK_STATUS(dama_sgemm(0, 0, 2, 3, 2, 1.0f, a, 2, b, 3, 0.0f, c, 2), DAMA_ERR_ARG);  /* ldc < N */
  CHECK_STATUS(dama_sgemm(0, 0, 2, 2, 2, 1.0f, NULL, 2, b, 2, 0.0f, c, 2), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "sgemm") != NULL);
  CHECK_STATUS(dama_sgemm_strided_batched(0, 0, 2, 2, 2, 1.0f, a, 2, 4, b, 2, 4, 0.0f, c, 2, 4, 0), DAMA_ERR_ARG);
  CHECK(dama_gemm_backend() != NULL);
}
