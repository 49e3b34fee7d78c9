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
 * Usage: gemm_bench [reps [cpu]]   (env OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS / OMP_NUM_THREADS are honoured
 * by the libraries). With `cpu`, time is process CPU time: GFLOP/s per busy core-second, which stays
 * meaningful when other jobs share the machine (use it with one thread).
 *
 * Built with -DDAMA_BLOCK_BENCH and linked with the dama runtime, `gemm_bench block [B T C NH reps]` instead
 * times one pre-norm ViT block (LN, qkv, attention, proj, LN, fc1, GELU, fc2) forward + backward through the
 * runtime's nn kernels and prints the time per kernel, so the GEMM share of a step is visible
 * (a trailing `cpu` argument switches to process CPU time).
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

static int use_cpu_time; /* `cpu` argument: process CPU time (robust on a shared machine with 1 thread) */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(use_cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
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

#ifdef DAMA_BLOCK_BENCH
#include "dama.h"
#define NK 16
static double t_acc[NK];
static const char *t_name[NK];
#define TIME(slot, name, call) do { double t0_ = now_s(); dama_status s_ = (call); \
    if (s_ != DAMA_OK) { fprintf(stderr, "%s: %s\n", name, dama_last_error()); exit(1); } \
    t_acc[slot] += now_s() - t0_; t_name[slot] = name; } while (0)

static float *buf(long n) {
  float *p = malloc((size_t)n * sizeof(float));
  if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
  for (long i = 0; i < n; i++) p[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
  return p;
}

static int block_bench(int argc, char **argv) {
  long B = argc > 2 ? atol(argv[2]) : 128, T = argc > 3 ? atol(argv[3]) : 65, C = argc > 4 ? atol(argv[4]) : 768;
  long NH = argc > 5 ? atol(argv[5]) : 12;
  int reps = argc > 6 ? atoi(argv[6]) : 3;
  long M = B * T, H4 = 4 * C;
  float *x = buf(M * C), *ln1 = buf(M * C), *m1 = buf(M), *r1 = buf(M), *qkv = buf(M * 3 * C), *att = buf(B * NH * T * T);
  float *ao = buf(M * C), *x2 = buf(M * C), *ln2 = buf(M * C), *m2 = buf(M), *r2 = buf(M), *h = buf(M * H4);
  float *hg = buf(M * H4), *y = buf(M * C);
  float *w_qkv = buf(3 * C * C), *b_qkv = buf(3 * C), *w_proj = buf(C * C), *b_proj = buf(C), *w1 = buf(H4 * C);
  float *b1 = buf(H4), *w2 = buf(C * H4), *b2 = buf(C), *g1 = buf(C), *be1 = buf(C), *g2 = buf(C), *be2 = buf(C);
  float *dw_qkv = buf(3 * C * C), *db_qkv = buf(3 * C), *dw_proj = buf(C * C), *db_proj = buf(C);
  float *dw1 = buf(H4 * C), *db1 = buf(H4), *dw2 = buf(C * H4), *db2 = buf(C), *dg1 = buf(C), *dbe1 = buf(C);
  float *dg2 = buf(C), *dbe2 = buf(C);
  float *dy = buf(M * C), *dx2 = buf(M * C), *dhg = buf(M * H4), *dh = buf(M * H4), *dln2 = buf(M * C);
  float *dao = buf(M * C), *dqkv = buf(M * 3 * C), *dln1 = buf(M * C), *dx = buf(M * C);
  for (long i = 0; i < C; i++) { g1[i] = g2[i] = 1.0f; }
  double gemm_flop = 2.0 * 3.0 * (double)M * (3 * C * C + C * C + 2 * H4 * C); /* fwd + 2 bwd GEMMs */
  for (int r = 0; r <= reps; r++) {
    if (r == 1) memset(t_acc, 0, sizeof t_acc); /* rep 0 warms up */
    /* forward */
    TIME(0, "layernorm fwd", dama_layernorm_forward(ln1, m1, r1, x, g1, be1, M, C, 1e-6f));
    TIME(1, "linear fwd", dama_linear_forward(qkv, ln1, w_qkv, b_qkv, M, C, 3 * C));
    TIME(2, "attention fwd", dama_attention_forward(ao, att, qkv, B, T, C, NH, 0.0f));
    TIME(1, "linear fwd", dama_linear_forward(x2, ao, w_proj, b_proj, M, C, C));
    TIME(0, "layernorm fwd", dama_layernorm_forward(ln2, m2, r2, x2, g2, be2, M, C, 1e-6f));
    TIME(1, "linear fwd", dama_linear_forward(h, ln2, w1, b1, M, C, H4));
    TIME(3, "gelu fwd", dama_gelu_forward(hg, h, M * H4));
    TIME(1, "linear fwd", dama_linear_forward(y, hg, w2, b2, M, H4, C));
    /* backward (grads zeroed as a real step would) */
    double t0 = now_s();
    memset(dhg, 0, sizeof(float) * M * H4); memset(dh, 0, sizeof(float) * M * H4);
    memset(dln2, 0, sizeof(float) * M * C); memset(dao, 0, sizeof(float) * M * C);
    memset(dqkv, 0, sizeof(float) * M * 3 * C); memset(dln1, 0, sizeof(float) * M * C);
    t_acc[8] += now_s() - t0; t_name[8] = "zero grads";
    TIME(4, "linear bwd", dama_linear_backward(dhg, dw2, db2, dy, hg, w2, M, H4, C));
    TIME(5, "gelu bwd", dama_gelu_backward(dh, h, dhg, M * H4));
    TIME(4, "linear bwd", dama_linear_backward(dln2, dw1, db1, dh, ln2, w1, M, C, H4));
    TIME(6, "layernorm bwd", dama_layernorm_backward(dx2, dg2, dbe2, dln2, x2, g2, m2, r2, M, C));
    TIME(4, "linear bwd", dama_linear_backward(dao, dw_proj, db_proj, dx2, ao, w_proj, M, C, C));
    TIME(7, "attention bwd", dama_attention_backward(dqkv, dao, qkv, att, B, T, C, NH, 0.0f));
    TIME(4, "linear bwd", dama_linear_backward(dln1, dw_qkv, db_qkv, dqkv, ln1, w_qkv, M, C, 3 * C));
    TIME(6, "layernorm bwd", dama_layernorm_backward(dx, dg1, dbe1, dln1, x, g1, m1, r1, M, C));
  }
  double total = 0.0, lin = t_acc[1] + t_acc[4];
  for (int k = 0; k < NK; k++) total += t_acc[k];
  printf("ViT block fwd+bwd  B=%ld T=%ld C=%ld heads=%ld  (gemm backend %s, %d reps, %s)\n", B, T, C, NH,
         dama_gemm_backend(), reps, use_cpu_time ? "process CPU time" : "wall clock");
  for (int k = 0; k < NK; k++)
    if (t_name[k]) printf("  %-14s %8.1f ms  %5.1f%%\n", t_name[k], 1e3 * t_acc[k] / reps, 100.0 * t_acc[k] / total);
  printf("  %-14s %8.1f ms  (linear layers at %.1f GFLOP/s)\n", "total", 1e3 * total / reps, gemm_flop * reps / lin * 1e-9);
  return 0;
}
#endif

int main(int argc, char **argv) {
#ifdef DAMA_BLOCK_BENCH
  if (argc > 1 && strcmp(argv[1], "block") == 0) {
    use_cpu_time = strcmp(argv[argc - 1], "cpu") == 0;
    return block_bench(argc - use_cpu_time, argv);
  }
#endif
  int reps = argc > 1 ? atoi(argv[1]) : 5;
  use_cpu_time = argc > 2 && strcmp(argv[2], "cpu") == 0;
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
  printf("OPENBLAS_CORETYPE=%s  openblas core: %s  threads: %d  timing: %s\n", ct ? ct : "(unset)",
         openblas_get_corename(), openblas_get_num_threads(), use_cpu_time ? "process CPU time" : "wall clock");
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
