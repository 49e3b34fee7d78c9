/* gemm_bench: SGEMM GFLOP/s on the ViT-B/DAMA workload shapes, OpenBLAS (cblas) vs oneDNN (dnnl_sgemm).
 *
 * Standalone (does not link the dama runtime). Build and run: see bench/NN_KERNELS.md.
 *   cc -O3 -march=native -fopenmp bench/gemm_bench.c -o gemm_bench $(pkg-config --cflags --libs openblas) -lm
 *   cc -O3 -march=native -fopenmp -DHAVE_DNNL bench/gemm_bench.c -o gemm_bench \
 *      $(pkg-config --cflags --libs openblas) -ldnnl -lm
 * Every shape is run in the three layouts a Linear layer uses, with inp [M,K], W [N,K], out [M,N]:
 *   fwd   out = inp @ W^T         (NT)
 *   bwdD  dinp = dout @ W         (NN, result [M,K], inner N)
 *   bwdW  dW += dout^T @ inp      (TN, result [N,K], inner M)
 * Usage: gemm_bench [reps]   (env OPENBLAS_CORETYPE / OMP_NUM_THREADS are honoured by the libraries)
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef HAVE_DNNL
#include <dnnl.h>
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct { int ta, tb; long m, n, k; const char *what; } shape;

/* one call in row-major: C[m,n] = op(A) op(B) */
static void run_blas(const shape *s, const float *A, const float *B, float *C, float beta) {
  long lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
  cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
              (int)s->m, (int)s->n, (int)s->k, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)s->n);
}
#ifdef HAVE_DNNL
static void run_dnnl(const shape *s, const float *A, const float *B, float *C, float beta) {
  long lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n;
  dnnl_sgemm(s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->m, s->n, s->k, 1.0f, A, lda, B, ldb, beta, C, s->n);
}
#endif

static double bench(void (*fn)(const shape *, const float *, const float *, float *, float), const shape *s,
                    const float *A, const float *B, float *C, int reps) {
  fn(s, A, B, C, 0.0f); /* warm up */
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now_s();
    fn(s, A, B, C, r & 1 ? 1.0f : 0.0f);
    double dt = now_s() - t0;
    if (dt < best) best = dt;
  }
  return 2.0 * (double)s->m * (double)s->n * (double)s->k / best * 1e-9;
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 5;
  /* M = tokens in a batch, (N, K) = (out, in) features of the layer */
  const long base[][3] = {
    {8320, 3072, 768}, {8320, 768, 3072}, {2080, 2304, 768}, {8320, 2048, 512}, {8320, 512, 2048},
    {8320, 1536, 512}, {1664, 768, 768}, {8192, 768, 1792},
  };
  const char *names[] = {"fwd NT", "bwdD NN", "bwdW TN"};
  size_t maxe = 8320L * 3072L;
  float *A = malloc(maxe * sizeof(float)), *B = malloc(maxe * sizeof(float)), *C = malloc(maxe * sizeof(float));
  if (!A || !B || !C) { fprintf(stderr, "out of memory\n"); return 1; }
  for (size_t i = 0; i < maxe; i++) { A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f; B[i] = (float)((i * 104729) % 997) / 997.0f - 0.5f; C[i] = 0; }
  const char *ct = getenv("OPENBLAS_CORETYPE");
  printf("OPENBLAS_CORETYPE=%s  openblas core: %s  threads: %d\n", ct ? ct : "(unset)", openblas_get_corename(),
         openblas_get_num_threads());
#ifdef HAVE_DNNL
  printf("%-8s %6s %6s %6s %10s %10s\n", "layout", "M", "N", "K", "openblas", "onednn");
#else
  printf("%-8s %6s %6s %6s %10s\n", "layout", "M", "N", "K", "openblas");
#endif
  for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) {
    long M = base[i][0], N = base[i][1], K = base[i][2];
    shape ss[3] = {{0, 1, M, N, K, names[0]}, {0, 0, M, K, N, names[1]}, {1, 0, N, K, M, names[2]}};
    for (int v = 0; v < 3; v++) {
      const shape *s = &ss[v];
      double g1 = bench(run_blas, s, A, B, C, reps);
#ifdef HAVE_DNNL
      double g2 = bench(run_dnnl, s, A, B, C, reps);
      printf("%-8s %6ld %6ld %6ld %10.1f %10.1f\n", s->what, s->m, s->n, s->k, g1, g2);
#else
      printf("%-8s %6ld %6ld %6ld %10.1f\n", s->what, s->m, s->n, s->k, g1);
#endif
      fflush(stdout);
    }
  }
  free(A); free(B); free(C);
  return 0;
}
