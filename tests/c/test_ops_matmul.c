/* matmul: 1-D/2-D/batched with broadcast batch dims, transposed and non-contiguous operands, f32/f64/
 * bf16/f16, errors. Every result is compared with a naive triple loop over dama_get values. */
#include "test_ops_util.h"

/* naive torch.matmul over logical values, shapes already >= 2-d: a [.., m, k] b [.., k, n] -> c values */
static void naive_mm(const dama_tensor *a, const dama_tensor *b, const dama_tensor *c, double *out) {
  /* c has the output shape; a and b are indexed with broadcasting by walking c's batch index */
  int32_t cn = c->ndim;
  int64_t m = a->ndim > 1 ? a->shape[a->ndim - 2] : 1, k = a->shape[a->ndim - 1];
  int64_t n = b->ndim > 1 ? b->shape[b->ndim - 1] : 1;
  int32_t cb = cn - (a->ndim > 1) - (b->ndim > 1);
  int64_t batch = 1;
  for (int32_t i = 0; i < cb; i++) batch *= c->shape[i];
  for (int64_t bi = 0; bi < batch; bi++) {
    int64_t bidx[8], rem = bi;
    for (int32_t i = cb - 1; i >= 0; i--) { bidx[i] = rem % c->shape[i]; rem /= c->shape[i]; }
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double s = 0;
        for (int64_t q = 0; q < k; q++) {
          int64_t ia[8], ib[8];
          int32_t ab = a->ndim - 2 > 0 ? a->ndim - 2 : 0, bb = b->ndim - 2 > 0 ? b->ndim - 2 : 0;
          for (int32_t d = 0; d < ab; d++) { int64_t x = bidx[cb - ab + d]; ia[d] = a->shape[d] == 1 ? 0 : x; }
          for (int32_t d = 0; d < bb; d++) { int64_t x = bidx[cb - bb + d]; ib[d] = b->shape[d] == 1 ? 0 : x; }
          if (a->ndim > 1) { ia[ab] = i; ia[ab + 1] = q; } else ia[0] = q;
          if (b->ndim > 1) { ib[bb] = q; ib[bb + 1] = j; } else ib[0] = q;
          double x, y;
          dama_get(a, ia, &x);
          dama_get(b, ib, &y);
          s += x * y;
        }
        out[(bi * m + i) * n + j] = s;
      }
  }
}

static dama_tensor *rnd(dama_dtype dt, int32_t nd, const int64_t *shape, uint64_t seed) {
  int64_t n = 1;
  for (int32_t i = 0; i < nd; i++) n *= shape[i];
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  fill_rand(v, n, seed, -1, 1);
  dama_tensor *t = mk(dt, nd, shape, v);
  free(v);
  return t;
}

static int check_mm(const dama_tensor *a, const dama_tensor *b, int32_t end, const int64_t *eshape, double tol) {
  dama_tensor *c = NULL;
  if (dama_matmul(&c, a, b) != DAMA_OK) { fprintf(stderr, "    %s\n", dama_last_error()); return 0; }
  int ok = shape_is(c, end, eshape) && c->dtype == a->dtype;
  if (!ok) fprintf(stderr, "    bad shape/dtype\n");
  double *e = malloc(sizeof(double) * (size_t)(dama_numel(c) + 1));
  naive_mm(a, b, c, e);
  if (ok && first_mismatch(c, e, tol) >= 0) ok = 0;
  free(e);
  dama_tensor_release(c);
  return ok;
}

DAMA_TEST(shapes_like_torch_matmul) {
  const int64_t s3[1] = {3}, s4[1] = {4}, s23[2] = {2, 3}, s34[2] = {3, 4}, s534[3] = {5, 3, 4}, s523[3] = {5, 2, 3},
                s1523[4] = {1, 5, 2, 3}, s6134[4] = {6, 1, 3, 4};
  dama_tensor *v3 = rnd(DAMA_F32, 1, s3, 1), *v3b = rnd(DAMA_F32, 1, s3, 2), *v4 = rnd(DAMA_F32, 1, s4, 9);
  dama_tensor *m23 = rnd(DAMA_F32, 2, s23, 3), *m34 = rnd(DAMA_F32, 2, s34, 4), *b534 = rnd(DAMA_F32, 3, s534, 5);
  dama_tensor *b523 = rnd(DAMA_F32, 3, s523, 6), *c1523 = rnd(DAMA_F32, 4, s1523, 7), *c6134 = rnd(DAMA_F32, 4, s6134, 8);
  const int64_t e0[1] = {0}, e2[1] = {2}, e4[1] = {4}, e24[2] = {2, 4}, e524[3] = {5, 2, 4}, e54[2] = {5, 4},
                e52[2] = {5, 2}, e6524[4] = {6, 5, 2, 4};
  (void)e0;
  CHECK(check_mm(v3, v3b, 0, NULL, 1e-5));   /* dot -> 0-d */
  CHECK(check_mm(m23, v3, 1, e2, 1e-5));     /* matrix-vector */
  CHECK(check_mm(v3, m34, 1, e4, 1e-5));     /* vector-matrix */
  CHECK(check_mm(m23, m34, 2, e24, 1e-5));
  CHECK(check_mm(b523, m34, 3, e524, 1e-5)); /* batched x shared matrix (folded into one GEMM) */
  CHECK(check_mm(m23, b534, 3, e524, 1e-5)); /* shared x batched */
  CHECK(check_mm(b523, b534, 3, e524, 1e-5));
  CHECK(check_mm(v3, b534, 2, e54, 1e-5));   /* 1-D x batched */
  CHECK(check_mm(b523, v3, 2, e52, 1e-5));   /* batched x 1-D */
  CHECK(check_mm(c1523, c6134, 4, e6524, 1e-5)); /* broadcast batch dims both ways */
  dama_tensor *r = NULL;
  CHECK_STATUS(dama_matmul(&r, m23, v4), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("matmul: shapes [2, 3] and [4] cannot be multiplied (3 != 4)");
  const int64_t s243[3] = {2, 3, 4};
  dama_tensor *b243 = rnd(DAMA_F32, 3, s243, 10);
  CHECK_STATUS(dama_matmul(&r, b523, b243), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("batch dims of shapes [5, 2, 3] and [2, 3, 4]");
  dama_tensor *objs[] = {v3, v3b, v4, m23, m34, b534, b523, c1523, c6134, b243};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(transposed_and_strided_operands) {
  const int64_t s43[2] = {4, 3}, s54[2] = {5, 4}, s36[2] = {3, 6}, s2534[4] = {2, 5, 3, 4};
  dama_tensor *a = rnd(DAMA_F64, 2, s43, 1), *b = rnd(DAMA_F64, 2, s54, 2), *at_ = NULL, *bt = NULL;
  CHECK_OK(dama_transpose(&at_, a, 0, 1)); /* [3, 4] transposed contiguous: passed as Trans to BLAS */
  CHECK_OK(dama_transpose(&bt, b, 0, 1));  /* [4, 5] */
  const int64_t e35[2] = {3, 5};
  CHECK(check_mm(at_, bt, 2, e35, 1e-12));
  { /* no hidden copy: the only allocation is the [3, 5] f64 result */
    int64_t before = 0, peak = 0, n = 0;
    dama_tensor *c = NULL;
    dama_memory_stats(&before, NULL, NULL);
    dama_memory_reset_peak();
    CHECK_OK(dama_matmul(&c, at_, bt));
    dama_memory_stats(NULL, &peak, &n);
    CHECK_MSG(peak - before == 3 * 5 * 8, "matmul of transposed views allocated %lld bytes", (long long)(peak - before));
    dama_tensor_release(c);
  }
  /* column slice with step: not BLAS-describable, copied */
  dama_tensor *w = rnd(DAMA_F64, 2, s36, 3), *ws = NULL;
  CHECK_OK(dama_slice(&ws, w, 1, 0, 6, 2)); /* [3, 3] with column stride 2 */
  const int64_t e43[2] = {4, 3};
  CHECK(check_mm(a, ws, 2, e43, 1e-12));
  /* narrowed columns: row-major with a leading dim larger than cols */
  dama_tensor *wn = NULL;
  CHECK_OK(dama_narrow(&wn, w, 1, 1, 4)); /* [3, 4], ld 6 */
  const int64_t e44[2] = {4, 4};
  CHECK(check_mm(a, wn, 2, e44, 1e-12));
  /* expanded (stride-0) batch and an expanded matrix */
  dama_tensor *bb = rnd(DAMA_F64, 2, s43, 4), *be = NULL, *bbt = NULL;
  const int64_t s234x[3] = {2, 3, 4};
  CHECK_OK(dama_transpose(&bbt, bb, 0, 1)); /* [3, 4] */
  CHECK_OK(dama_expand(&be, bbt, 3, s234x)); /* [2, 3, 4] with batch stride 0 */
  const int64_t e243[3] = {2, 4, 4};
  CHECK(check_mm(a, be, 3, e243, 1e-12));
  /* a 4-d batch of transposed matrices */
  dama_tensor *q = rnd(DAMA_F64, 4, s2534, 5), *qt = NULL, *qb = rnd(DAMA_F64, 2, s54, 6);
  CHECK_OK(dama_transpose(&qt, q, 2, 3)); /* [2, 5, 4, 3] */
  const int64_t e2553[4] = {2, 5, 5, 3};
  dama_tensor *qbt = NULL;
  CHECK_OK(dama_transpose(&qbt, qt, 0, 0));
  CHECK(check_mm(qb, qt, 4, e2553, 1e-12)); /* [5, 4] @ [2, 5, 4, 3] */
  dama_tensor *objs[] = {a, b, at_, bt, w, ws, wn, bb, be, bbt, q, qt, qb, qbt};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(half_dtypes_via_f32) {
  const int64_t s23[2] = {2, 3}, s34[2] = {3, 4}, e24[2] = {2, 4};
  dama_dtype hs[2] = {DAMA_BF16, DAMA_F16};
  for (int i = 0; i < 2; i++) {
    dama_tensor *a = rnd(hs[i], 2, s23, 1), *b = rnd(hs[i], 2, s34, 2);
    CHECK(check_mm(a, b, 2, e24, hs[i] == DAMA_BF16 ? 1e-2 : 2e-3));
    dama_tensor_release(a); dama_tensor_release(b);
  }
}

DAMA_TEST(dtype_and_rank_errors) {
  const int64_t s22[2] = {2, 2};
  dama_tensor *i = rnd(DAMA_I32, 2, s22, 1), *f = rnd(DAMA_F32, 2, s22, 2), *d = rnd(DAMA_F64, 2, s22, 3), *r = NULL;
  CHECK_STATUS(dama_matmul(&r, i, f), DAMA_ERR_DTYPE);
  CHECK_ERRMSG("matmul: dtype i32 is not supported");
  CHECK_STATUS(dama_matmul(&r, f, d), DAMA_ERR_DTYPE);
  CHECK_ERRMSG("different dtypes f32 and f64");
  double v = 1;
  dama_tensor *s = mk(DAMA_F32, 0, NULL, &v);
  CHECK_STATUS(dama_matmul(&r, s, f), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("shapes [] and [2, 2]");
  CHECK(r == NULL);
  dama_tensor_release(i); dama_tensor_release(f); dama_tensor_release(d); dama_tensor_release(s);
}

DAMA_TEST(empty_k_gives_zeros) {
  const int64_t s20[2] = {2, 0}, s03[2] = {0, 3}, e23[2] = {2, 3};
  dama_tensor *a = NULL, *b = NULL, *c = NULL;
  CHECK_OK(dama_empty(&a, 2, s20, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_empty(&b, 2, s03, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_matmul(&c, a, b));
  CHECK(shape_is(c, 2, e23));
  double z[6] = {0};
  CHECK_VALUES(c, z, 0);
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(c);
}

DAMA_TEST(interrupt_between_batches) {
  const int64_t s[3] = {4, 8, 8};
  dama_tensor *a = rnd(DAMA_F32, 3, s, 1), *b = rnd(DAMA_F32, 3, s, 2), *c = NULL;
  dama_interrupt_request();
  dama_status st = dama_matmul(&c, a, b);
  dama_interrupt_clear();
  CHECK(st == DAMA_ERR_INTERRUPTED && c == NULL);
  CHECK_ERRMSG("matmul: interrupted");
  dama_tensor_release(a); dama_tensor_release(b);
}

/* Products above 2^28 multiply-adds run as 256-row panels (so Ctrl-C can stop them): rows on both sides
 * of each panel edge must match a naive product, for a plain and a transposed left operand. */
static int rows_match(const dama_tensor *c, const float *a, int64_t a_rs, int64_t a_cs, const float *b, int64_t k,
                      int64_t n) {
  const float *pc = dama_data_ptr(c);
  const int64_t rows[] = {0, 255, 256, 511, 512, 599};
  for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
    for (int64_t j = 0; j < n; j++) {
      double s = 0;
      for (int64_t q = 0; q < k; q++) s += (double)a[rows[r] * a_rs + q * a_cs] * (double)b[q * n + j];
      if (fabs(s - pc[rows[r] * n + j]) > 1e-4 * (1 + fabs(s))) return 0;
    }
  return 1;
}

DAMA_TEST(big_products_in_row_panels) {
  const int64_t M = 600, K = 700, N = 700;
  const int64_t sa[2] = {M, K}, sat[2] = {K, M}, sb[2] = {K, N};
  dama_tensor *a = rnd(DAMA_F32, 2, sa, 3), *b = rnd(DAMA_F32, 2, sb, 4), *at = rnd(DAMA_F32, 2, sat, 5);
  dama_tensor *c = NULL, *t = NULL, *c2 = NULL;
  CHECK_OK(dama_matmul(&c, a, b));
  CHECK(rows_match(c, dama_data_ptr(a), K, 1, dama_data_ptr(b), K, N));
  CHECK_OK(dama_transpose(&t, at, 0, 1));
  CHECK_OK(dama_matmul(&c2, t, b));
  CHECK(rows_match(c2, dama_data_ptr(at), 1, M, dama_data_ptr(b), K, N));
  dama_tensor *c3 = NULL;
  dama_interrupt_request();
  dama_status st = dama_matmul(&c3, a, b);
  dama_interrupt_clear();
  CHECK(st == DAMA_ERR_INTERRUPTED && c3 == NULL);
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(at); dama_tensor_release(t);
  dama_tensor_release(c); dama_tensor_release(c2);
}
