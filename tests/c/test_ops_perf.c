/* Throughput of the hot CPU ops (prints numbers; never fails on speed). Sizes are small by default so CI
 * stays quick; DAMA_OPS_BENCH=1 uses 16M-element tensors and 1024^2 / 2048^2 matmuls.
 *   DAMA_OPS_BENCH=1 ./test_ops_perf */
#define _POSIX_C_SOURCE 200809L
#include "test_ops_util.h"
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int big(void) { const char *e = getenv("DAMA_OPS_BENCH"); return e && *e && *e != '0'; }

/* best of `reps` runs of the statement */
#define TIME_BEST(reps, best, stmt)                                         \
  do { best = 1e30; for (int r_ = 0; r_ < (reps); r_++) { double t0_ = now(); stmt; double t_ = now() - t0_; if (t_ < best) best = t_; } } while (0)

DAMA_TEST(elementwise_and_reduction_bandwidth) {
  const int64_t n = big() ? (16 << 20) : (2 << 20);
  const int reps = big() ? 10 : 3;
  const dama_device cpu = {DAMA_CPU, 0};
  dama_tensor *a = NULL, *b = NULL, *c = NULL, *s = NULL;
  CHECK_OK(dama_full(&a, 1, &n, 1.5, DAMA_F32, cpu));
  CHECK_OK(dama_full(&b, 1, &n, 2.0, DAMA_F32, cpu));
  CHECK_OK(dama_empty(&c, 1, &n, DAMA_F32, cpu));
  double t;
  float *pa = dama_data_ptr(a), *pb = dama_data_ptr(b), *pc = dama_data_ptr(c);
  TIME_BEST(reps, t, for (int64_t i = 0; i < n; i++) pc[i] = pa[i] + pb[i]);
  printf("  plain C loop c=a+b (1 thread) n=%lld: %.2f ms, %.1f GB/s\n", (long long)n, t * 1e3, 12.0 * (double)n / t / 1e9);
  TIME_BEST(reps, t, { dama_tensor *r = NULL; dama_binary(&r, DAMA_ADD, a, b); dama_tensor_release(r); });
  printf("  dama_binary add f32 (alloc incl.)      : %.2f ms, %.1f GB/s (%d threads)\n", t * 1e3, 12.0 * (double)n / t / 1e9,
         dama_get_num_threads());
  TIME_BEST(reps, t, dama_binary_(c, DAMA_ADD, b));
  printf("  dama_binary_ add_ f32 in place          : %.2f ms, %.1f GB/s\n", t * 1e3, 12.0 * (double)n / t / 1e9);
  TIME_BEST(reps, t, dama_binary_scalar_(c, DAMA_MUL, 0.5));
  printf("  dama_binary_scalar_ mul_ f32            : %.2f ms, %.1f GB/s\n", t * 1e3, 8.0 * (double)n / t / 1e9);
  TIME_BEST(reps, t, { dama_reduce(&s, DAMA_RSUM, a, 0, NULL, 0, 0, 0); dama_tensor_release(s); });
  printf("  dama_reduce sum f32 (all)               : %.2f ms, %.1f GB/s\n", t * 1e3, 4.0 * (double)n / t / 1e9);
  /* row broadcast [n/1024, 1024] + [1024] and a transposed (strided) add */
  int64_t s2[2] = {n / 1024, 1024}, s1 = 1024, st[2] = {1024, n / 1024};
  dama_tensor *m = NULL, *row = NULL, *mv = NULL, *tv = NULL, *bt = NULL;
  CHECK_OK(dama_view(&m, a, 2, s2));
  CHECK_OK(dama_full(&row, 1, &s1, 0.25, DAMA_F32, cpu));
  TIME_BEST(reps, t, { dama_tensor *r = NULL; dama_binary(&r, DAMA_ADD, m, row); dama_tensor_release(r); });
  printf("  row-broadcast add [%lld,1024]+[1024]     : %.2f ms, %.1f GB/s\n", (long long)(n / 1024), t * 1e3, 8.0 * (double)n / t / 1e9);
  CHECK_OK(dama_view(&mv, b, 2, st));
  CHECK_OK(dama_transpose(&tv, mv, 0, 1)); /* [n/1024, 1024] transposed view */
  TIME_BEST(reps, t, { dama_tensor *r = NULL; dama_binary(&r, DAMA_ADD, m, tv); dama_tensor_release(r); });
  printf("  add with a transposed operand          : %.2f ms, %.1f GB/s\n", t * 1e3, 12.0 * (double)n / t / 1e9);
  int32_t d0 = 0, d1 = 1;
  TIME_BEST(reps, t, { dama_reduce(&s, DAMA_RSUM, m, 1, &d0, 0, 0, 0); dama_tensor_release(s); });
  printf("  column sum (dim 0) of [%lld,1024]       : %.2f ms, %.1f GB/s\n", (long long)(n / 1024), t * 1e3, 4.0 * (double)n / t / 1e9);
  TIME_BEST(reps, t, { dama_reduce(&s, DAMA_RMEAN, m, 1, &d1, 0, 0, 0); dama_tensor_release(s); });
  printf("  row mean (dim 1) of [%lld,1024]         : %.2f ms, %.1f GB/s\n", (long long)(n / 1024), t * 1e3, 4.0 * (double)n / t / 1e9);
  TIME_BEST(reps, t, { dama_reduce(&s, DAMA_RVAR, m, 1, &d1, 0, 1, 0); dama_tensor_release(s); });
  printf("  row var (dim 1) of [%lld,1024]          : %.2f ms, %.1f GB/s\n", (long long)(n / 1024), t * 1e3, 4.0 * (double)n / t / 1e9);
  dama_tensor *objs[] = {a, b, c, m, row, mv, tv, bt};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(matmul_gflops) {
  const dama_device cpu = {DAMA_CPU, 0};
  int64_t sizes[2] = {big() ? 1024 : 256, big() ? 2048 : 512};
  for (int k = 0; k < 2; k++) {
    int64_t N = sizes[k], s[2] = {N, N};
    dama_tensor *a = NULL, *b = NULL, *bt = NULL;
    CHECK_OK(dama_empty(&a, 2, s, DAMA_F32, cpu));
    CHECK_OK(dama_empty(&b, 2, s, DAMA_F32, cpu));
    CHECK_OK(dama_uniform_(a, -1, 1, NULL));
    CHECK_OK(dama_uniform_(b, -1, 1, NULL));
    CHECK_OK(dama_transpose(&bt, b, 0, 1));
    double t, flop = 2.0 * (double)N * (double)N * (double)N;
    TIME_BEST(5, t, { dama_tensor *r = NULL; dama_matmul(&r, a, b); dama_tensor_release(r); });
    printf("  matmul f32 %lld^2            : %.2f ms, %.1f GFLOP/s\n", (long long)N, t * 1e3, flop / t / 1e9);
    TIME_BEST(5, t, { dama_tensor *r = NULL; dama_matmul(&r, a, bt); dama_tensor_release(r); });
    printf("  matmul f32 %lld^2, b^T view  : %.2f ms, %.1f GFLOP/s\n", (long long)N, t * 1e3, flop / t / 1e9);
    dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(bt);
  }
  /* ViT-like batched shapes: [64, 65, 768] @ [768, 768] (folded) and attention [64*12, 65, 64] @ [.., 64, 65] */
  int64_t sx[3] = {64, 65, 768}, sw[2] = {768, 768}, sq[3] = {768, 65, 64}, sk[3] = {768, 64, 65};
  dama_tensor *x = NULL, *w = NULL, *q = NULL, *kk = NULL;
  CHECK_OK(dama_full(&x, 3, sx, 0.5, DAMA_F32, cpu));
  CHECK_OK(dama_full(&w, 2, sw, 0.5, DAMA_F32, cpu));
  CHECK_OK(dama_full(&q, 3, sq, 0.5, DAMA_F32, cpu));
  CHECK_OK(dama_full(&kk, 3, sk, 0.5, DAMA_F32, cpu));
  double t;
  TIME_BEST(3, t, { dama_tensor *r = NULL; dama_matmul(&r, x, w); dama_tensor_release(r); });
  printf("  matmul [64,65,768]@[768,768] : %.2f ms, %.1f GFLOP/s\n", t * 1e3, 2.0 * 64 * 65 * 768 * 768 / t / 1e9);
  TIME_BEST(3, t, { dama_tensor *r = NULL; dama_matmul(&r, q, kk); dama_tensor_release(r); });
  printf("  matmul [768,65,64]@[768,64,65] (batched): %.2f ms, %.1f GFLOP/s\n", t * 1e3, 2.0 * 768 * 65 * 65 * 64 / t / 1e9);
  dama_tensor_release(x); dama_tensor_release(w); dama_tensor_release(q); dama_tensor_release(kk);
}

DAMA_TEST(sort_and_gather_throughput) {
  const dama_device cpu = {DAMA_CPU, 0};
  int64_t s[2] = {512, big() ? 4096 : 1024};
  dama_tensor *a = NULL, *v = NULL, *i = NULL, *g = NULL;
  CHECK_OK(dama_empty(&a, 2, s, DAMA_F32, cpu));
  CHECK_OK(dama_uniform_(a, 0, 1, NULL));
  double t;
  TIME_BEST(3, t, { dama_sort(&v, &i, a, 1, 0, 1); dama_tensor_release(v); dama_tensor_release(i); });
  printf("  sort [512,%lld] along dim 1 : %.2f ms, %.1f Melem/s\n", (long long)s[1], t * 1e3, 512.0 * (double)s[1] / t / 1e6);
  CHECK_OK(dama_argsort(&i, a, 1, 0, 1));
  TIME_BEST(3, t, { dama_gather(&g, a, 1, i); dama_tensor_release(g); });
  printf("  gather [512,%lld] along dim 1: %.2f ms, %.1f Melem/s\n", (long long)s[1], t * 1e3, 512.0 * (double)s[1] / t / 1e6);
  dama_tensor_release(a); dama_tensor_release(i);
}
