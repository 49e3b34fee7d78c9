/* Reductions: every op against naive loops, dims sets, keepdim, dtypes, non-contiguous input, empty
 * tensors, NaN, large parallel/chunked rows, and bad arguments. */
#include "test_ops_util.h"

static const int64_t S234[3] = {2, 3, 4};

/* naive reduction of v[2][3][4] over mask dims; returns values in row-major order of kept dims */
static int naive(dama_redop op, const double *v, const int *mask, int corr, double p, double *out) {
  int cnt = 0;
  int kept[3], nk = 0;
  for (int d = 0; d < 3; d++) if (!mask[d]) kept[nk++] = d;
  int64_t R = 1;
  for (int k = 0; k < nk; k++) R *= S234[kept[k]];
  for (int64_t r = 0; r < R; r++) {
    int fix[3] = {0, 0, 0};
    int64_t rem = r;
    for (int k = nk - 1; k >= 0; k--) { fix[kept[k]] = (int)(rem % S234[kept[k]]); rem /= S234[kept[k]]; }
    double s = 0, s2 = 0, pr = 1, mx = -INFINITY, mn = INFINITY, nrm = 0, ninf = 0;
    int64_t n = 0, amx = 0, amn = 0, pos = 0;
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 3; j++)
        for (int k = 0; k < 4; k++) {
          int idx[3] = {i, j, k};
          int ok = 1;
          for (int d = 0; d < 3; d++) if (!mask[d] && idx[d] != fix[d]) ok = 0;
          if (!ok) continue;
          double x = v[(i * 3 + j) * 4 + k];
          s += x; pr *= x; n++;
          if (x > mx) { mx = x; amx = pos; }
          if (x < mn) { mn = x; amn = pos; }
          nrm += pow(fabs(x), p);
          if (fabs(x) > ninf) ninf = fabs(x);
          pos++;
        }
    double mean = s / (double)n;
    pos = 0;
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < 3; j++)
        for (int k = 0; k < 4; k++) {
          int idx[3] = {i, j, k}, ok = 1;
          for (int d = 0; d < 3; d++) if (!mask[d] && idx[d] != fix[d]) ok = 0;
          if (ok) { double x = v[(i * 3 + j) * 4 + k] - mean; s2 += x * x; }
        }
    double res = 0;
    switch (op) {
      case DAMA_RSUM: res = s; break;
      case DAMA_RMEAN: res = mean; break;
      case DAMA_RVAR: res = s2 / (double)(n - corr); break;
      case DAMA_RSTD: res = sqrt(s2 / (double)(n - corr)); break;
      case DAMA_RMAX: res = mx; break;
      case DAMA_RMIN: res = mn; break;
      case DAMA_RARGMAX: res = (double)amx; break;
      case DAMA_RARGMIN: res = (double)amn; break;
      case DAMA_RNORM: res = isinf(p) ? ninf : pow(nrm, 1 / p); break;
      case DAMA_RPROD: res = pr; break;
    }
    out[cnt++] = res;
  }
  return cnt;
}

DAMA_TEST(every_op_every_dim_set_f64) {
  double v[24];
  fill_rand(v, 24, 7, -2, 2);
  dama_tensor *a = mk(DAMA_F64, 3, S234, v);
  int masks[7][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}, {1, 0, 1}, {0, 1, 1}, {1, 1, 1}};
  for (int op = 0; op <= DAMA_RPROD; op++) {
    for (int m = 0; m < 7; m++) {
      int32_t dims[3], nd = 0;
      for (int d = 0; d < 3; d++) if (masks[m][d]) dims[nd++] = d - (m % 2 ? 3 : 0); /* negative dims too */
      if ((op == DAMA_RARGMAX || op == DAMA_RARGMIN) && nd > 1 && nd < 3) continue;
      for (int corr = 0; corr <= 1; corr++) {
        double p = corr ? 3 : 2;
        if (op == DAMA_RNORM && m == 6) p = INFINITY;
        dama_tensor *r = NULL, *rk = NULL;
        int32_t ndp = (nd == 3 && (op == DAMA_RARGMAX || op == DAMA_RARGMIN)) ? 0 : nd;
        CHECK_OK(dama_reduce(&r, (dama_redop)op, a, ndp, dims, 0, corr, p));
        CHECK_OK(dama_reduce(&rk, (dama_redop)op, a, ndp, dims, 1, corr, p));
        double e[24];
        int n = naive((dama_redop)op, v, masks[m], corr, p, e);
        CHECK(dama_numel(r) == n && r->ndim == 3 - nd && rk->ndim == 3);
        for (int d = 0; d < 3; d++) CHECK(rk->shape[d] == (masks[m][d] ? 1 : S234[d]));
        CHECK_MSG(first_mismatch(r, e, 1e-12) < 0, "op %d mask %d corr %d", op, m, corr);
        CHECK(first_mismatch(rk, e, 1e-12) < 0);
        CHECK(r->dtype == ((op == DAMA_RARGMAX || op == DAMA_RARGMIN) ? DAMA_I64 : DAMA_F64));
        dama_tensor_release(r); dama_tensor_release(rk);
      }
    }
  }
  dama_tensor_release(a);
}

DAMA_TEST(all_dtypes_sum_mean_max_argmax) {
  double v[24];
  for (int i = 0; i < 24; i++) v[i] = (i * 7) % 11; /* small non-negative ints, exact everywhere */
  int mask[3] = {0, 0, 1};
  int32_t dim = 2;
  for (int t = 0; t < 8; t++) {
    dama_dtype dt = ALL_DTYPES[t];
    int fl = dama_dtype_is_float(dt);
    dama_tensor *a = mk(dt, 3, S234, v), *r = NULL;
    double e[24];
    dama_redop ops[6] = {DAMA_RSUM, DAMA_RMEAN, DAMA_RMAX, DAMA_RARGMIN, DAMA_RPROD, DAMA_RSTD};
    dama_dtype want[6] = {fl ? dt : DAMA_I64, fl ? dt : DAMA_F32, dt, DAMA_I64, fl ? dt : DAMA_I64, fl ? dt : DAMA_F32};
    for (int k = 0; k < 6; k++) {
      CHECK_OK(dama_reduce(&r, ops[k], a, 1, &dim, 0, 1, 2));
      naive(ops[k], v, mask, 1, 2, e);
      double tol = ops[k] == DAMA_RSTD || ops[k] == DAMA_RMEAN ? (fl ? tol_of(dt) : 1e-6) : (dt == DAMA_BF16 ? 1e-2 : 0);
      CHECK_MSG(first_mismatch(r, e, tol) < 0, "op %d on %s", ops[k], dama_dtype_name(dt));
      CHECK_MSG(r->dtype == (int)want[k], "op %d on %s gave %s", ops[k], dama_dtype_name(dt), dama_dtype_name((dama_dtype)r->dtype));
      dama_tensor_release(r);
    }
    dama_tensor_release(a);
  }
}

DAMA_TEST(non_contiguous_input) {
  double v[24];
  fill_rand(v, 24, 3, -1, 1);
  dama_tensor *a = mk(DAMA_F32, 3, S234, v), *p = NULL, *r = NULL;
  int32_t perm[3] = {2, 0, 1};
  CHECK_OK(dama_permute(&p, a, perm)); /* [4, 2, 3] */
  int32_t dim = 0;
  CHECK_OK(dama_reduce(&r, DAMA_RSUM, p, 1, &dim, 0, 0, 0)); /* = sum over a's last dim: [2, 3] */
  int mask[3] = {0, 0, 1};
  double e[6];
  naive(DAMA_RSUM, v, mask, 0, 2, e);
  CHECK_VALUES(r, e, 1e-6);
  dama_tensor_release(r);
  /* expanded (stride 0) input: sum of a broadcast row */
  double rowv[3] = {1, 2, 3};
  int64_t s3 = 3, s53[2] = {5, 3};
  dama_tensor *row = mk(DAMA_F32, 1, &s3, rowv), *ex = NULL;
  CHECK_OK(dama_expand(&ex, row, 2, s53));
  CHECK_OK(dama_reduce(&r, DAMA_RSUM, ex, 1, &dim, 0, 0, 0));
  double e2[3] = {5, 10, 15};
  CHECK_VALUES(r, e2, 0);
  dama_tensor_release(r);
  dama_tensor_release(a); dama_tensor_release(p); dama_tensor_release(row); dama_tensor_release(ex);
}

DAMA_TEST(empty_tensors) {
  int64_t s0[2] = {0, 3};
  dama_tensor *a = NULL, *r = NULL;
  CHECK_OK(dama_zeros(&a, 2, s0, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_reduce(&r, DAMA_RSUM, a, 0, NULL, 0, 0, 0));
  CHECK(r->ndim == 0 && at(r, 0) == 0);
  dama_tensor_release(r);
  CHECK_OK(dama_reduce(&r, DAMA_RMEAN, a, 0, NULL, 0, 0, 0));
  CHECK(isnan(at(r, 0)));
  dama_tensor_release(r);
  CHECK_OK(dama_reduce(&r, DAMA_RPROD, a, 0, NULL, 0, 0, 0));
  CHECK(at(r, 0) == 1);
  dama_tensor_release(r);
  int32_t d0 = 0, d1 = 1;
  CHECK_OK(dama_reduce(&r, DAMA_RSUM, a, 1, &d0, 0, 0, 0)); /* [3] zeros */
  CHECK(r->ndim == 1 && r->shape[0] == 3 && at(r, 2) == 0);
  dama_tensor_release(r);
  CHECK_OK(dama_reduce(&r, DAMA_RMAX, a, 1, &d1, 0, 0, 0)); /* reduces 3 elements of 0 rows: fine, empty */
  CHECK(r->ndim == 1 && r->shape[0] == 0);
  dama_tensor_release(r);
  CHECK_STATUS(dama_reduce(&r, DAMA_RMAX, a, 0, NULL, 0, 0, 0), DAMA_ERR_ARG);
  CHECK(r == NULL);
  CHECK_ERRMSG("max: empty tensor");
  dama_tensor *v = NULL, *i = NULL;
  CHECK_STATUS(dama_max_dim(&v, &i, a, 0, 0), DAMA_ERR_ARG);
  CHECK_ERRMSG("max: empty tensor");
  dama_tensor_release(a);
}

DAMA_TEST(nan_handling) {
  double v[4] = {1, NAN, 5, NAN};
  int64_t s4 = 4;
  dama_tensor *a = mk(DAMA_F32, 1, &s4, v), *r = NULL;
  CHECK_OK(dama_reduce(&r, DAMA_RMAX, a, 0, NULL, 0, 0, 0));
  CHECK(isnan(at(r, 0)));
  dama_tensor_release(r);
  CHECK_OK(dama_reduce(&r, DAMA_RARGMIN, a, 0, NULL, 0, 0, 0)); /* first NaN */
  CHECK(at(r, 0) == 1);
  dama_tensor_release(r);
  CHECK_OK(dama_reduce(&r, DAMA_RSUM, a, 0, NULL, 0, 0, 0));
  CHECK(isnan(at(r, 0)));
  dama_tensor_release(r);
  dama_tensor_release(a);
}

DAMA_TEST(max_min_dim_values_and_first_index) {
  double v[8] = {3, 7, 7, 1, 2, 2, 9, 2};
  int64_t s24[2] = {2, 4};
  dama_tensor *a = mk(DAMA_I32, 2, s24, v), *val = NULL, *idx = NULL;
  CHECK_OK(dama_max_dim(&val, &idx, a, 1, 0));
  double ev[2] = {7, 9}, ei[2] = {1, 2};
  CHECK(val->dtype == DAMA_I32 && idx->dtype == DAMA_I64);
  CHECK_VALUES(val, ev, 0);
  CHECK_VALUES(idx, ei, 0);
  dama_tensor_release(val); dama_tensor_release(idx);
  CHECK_OK(dama_min_dim(&val, &idx, a, -1, 1));
  double ev2[2] = {1, 2}, ei2[2] = {3, 0};
  CHECK(val->ndim == 2 && val->shape[1] == 1);
  CHECK_VALUES(val, ev2, 0);
  CHECK_VALUES(idx, ei2, 0);
  dama_tensor_release(val); dama_tensor_release(idx);
  CHECK_STATUS(dama_max_dim(&val, &idx, a, 2, 0), DAMA_ERR_INDEX);
  CHECK_ERRMSG("max: dim 2 is out of range for a tensor with 2 dims");
  dama_tensor_release(a);
}

DAMA_TEST(argmax_over_all_dims_is_flat_index) {
  double v[6] = {1, 2, 3, 9, 0, 4};
  int64_t s23[2] = {2, 3};
  dama_tensor *a = mk(DAMA_BF16, 2, s23, v), *r = NULL;
  CHECK_OK(dama_reduce(&r, DAMA_RARGMAX, a, 0, NULL, 0, 0, 0));
  CHECK(r->ndim == 0 && at(r, 0) == 3 && r->dtype == DAMA_I64);
  dama_tensor_release(r);
  int32_t dims[2] = {0, 1};
  CHECK_STATUS(dama_reduce(&r, DAMA_RARGMAX, a, 2, dims, 0, 0, 0), DAMA_ERR_ARG);
  CHECK_ERRMSG("argmax: takes one dim");
  dama_tensor_release(a);
}

DAMA_TEST(norms) {
  double v[4] = {3, -4, 0, 0};
  int64_t s4 = 4;
  dama_tensor *a = mk(DAMA_F32, 1, &s4, v), *r = NULL;
  double ps[5] = {2, 1, INFINITY, 0, 3}, es[5] = {5, 7, 4, 2, pow(27 + 64, 1.0 / 3)};
  for (int i = 0; i < 5; i++) {
    CHECK_OK(dama_reduce(&r, DAMA_RNORM, a, 0, NULL, 0, 0, ps[i]));
    CHECK_CLOSE(at(r, 0), es[i], 1e-6);
    dama_tensor_release(r);
  }
  CHECK_OK(dama_reduce(&r, DAMA_RNORM, a, 0, NULL, 0, 0, -INFINITY));
  CHECK_CLOSE(at(r, 0), 0, 0);
  dama_tensor_release(r);
  CHECK_STATUS(dama_reduce(&r, DAMA_RNORM, a, 0, NULL, 0, 0, NAN), DAMA_ERR_ARG);
  dama_tensor_release(a);
}

DAMA_TEST(var_correction) {
  double v[4] = {1, 2, 3, 4};
  int64_t s4 = 4, s1 = 1;
  dama_tensor *a = mk(DAMA_F32, 1, &s4, v), *one = mk(DAMA_F32, 1, &s1, v), *r = NULL;
  CHECK_OK(dama_reduce(&r, DAMA_RVAR, a, 0, NULL, 0, 1, 0));
  CHECK_CLOSE(at(r, 0), 5.0 / 3, 1e-6);
  dama_tensor_release(r);
  CHECK_OK(dama_reduce(&r, DAMA_RVAR, a, 0, NULL, 0, 0, 0));
  CHECK_CLOSE(at(r, 0), 1.25, 1e-6);
  dama_tensor_release(r);
  CHECK_OK(dama_reduce(&r, DAMA_RSTD, one, 0, NULL, 0, 1, 0)); /* n - correction = 0: like torch, not finite */
  CHECK(!isfinite(at(r, 0)));
  dama_tensor_release(r);
  CHECK_STATUS(dama_reduce(&r, DAMA_RVAR, a, 0, NULL, 0, -1, 0), DAMA_ERR_ARG);
  dama_tensor_release(a); dama_tensor_release(one);
}

DAMA_TEST(large_rows_chunked_accurate_and_deterministic) {
  /* 3M f32 values of 0.1: a float accumulator would drift by ~1e-2 relative; double stays exact-ish */
  int64_t n = 3000000;
  dama_tensor *a = NULL, *r1 = NULL, *r2 = NULL;
  CHECK_OK(dama_full(&a, 1, &n, 0.1, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_reduce(&r1, DAMA_RSUM, a, 0, NULL, 0, 0, 0));
  CHECK_CLOSE(at(r1, 0), 0.1f * 3000000.0, 1e-7);
  int nt = dama_get_num_threads();
  dama_set_num_threads(1);
  CHECK_OK(dama_reduce(&r2, DAMA_RSUM, a, 0, NULL, 0, 0, 0));
  dama_set_num_threads(nt);
  CHECK(at(r1, 0) == at(r2, 0));
  dama_tensor_release(r1); dama_tensor_release(r2);
  /* variance of a large row with a big offset (catastrophic cancellation check) */
  float *p = dama_data_ptr(a);
  for (int64_t i = 0; i < n; i++) p[i] = 1000.0f + (float)(i % 2);
  CHECK_OK(dama_reduce(&r1, DAMA_RVAR, a, 0, NULL, 0, 0, 0));
  CHECK_CLOSE(at(r1, 0), 0.25, 1e-9);
  dama_tensor_release(r1);
  /* many short rows (parallel over rows) and a column reduction */
  int64_t s2[2] = {100000, 7};
  dama_tensor *b = NULL, *c = NULL;
  int32_t d1 = 1, d0 = 0;
  CHECK_OK(dama_full(&b, 2, s2, 2, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_reduce(&c, DAMA_RSUM, b, 1, &d1, 0, 0, 0));
  CHECK(c->shape[0] == 100000 && at(c, 99999) == 14);
  dama_tensor_release(c);
  CHECK_OK(dama_reduce(&c, DAMA_RMEAN, b, 1, &d0, 0, 0, 0));
  CHECK(c->shape[0] == 7 && at(c, 6) == 2);
  dama_tensor_release(c);
  dama_tensor_release(a); dama_tensor_release(b);
}

DAMA_TEST(bad_dims) {
  double v[24] = {0};
  dama_tensor *a = mk(DAMA_F32, 3, S234, v), *r = NULL;
  int32_t bad = 3, dup[2] = {1, -2};
  CHECK_STATUS(dama_reduce(&r, DAMA_RSUM, a, 1, &bad, 0, 0, 0), DAMA_ERR_INDEX);
  CHECK_ERRMSG("sum: dim 3 is out of range for a tensor with 3 dims");
  CHECK_STATUS(dama_reduce(&r, DAMA_RMEAN, a, 2, dup, 0, 0, 0), DAMA_ERR_ARG);
  CHECK_ERRMSG("mean: dim -2 appears more than once");
  CHECK_STATUS(dama_reduce(&r, (dama_redop)77, a, 0, NULL, 0, 0, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_reduce(&r, DAMA_RSUM, NULL, 0, NULL, 0, 0, 0), DAMA_ERR_ARG);
  dama_tensor_release(a);
}

DAMA_TEST(zero_dim_tensor) {
  double v = 4;
  dama_tensor *a = mk(DAMA_F32, 0, NULL, &v), *r = NULL;
  int32_t d = 0;
  CHECK_OK(dama_reduce(&r, DAMA_RSUM, a, 1, &d, 0, 0, 0));
  CHECK(r->ndim == 0 && at(r, 0) == 4);
  dama_tensor_release(r);
  CHECK_OK(dama_reduce(&r, DAMA_RARGMAX, a, 0, NULL, 0, 0, 0));
  CHECK(at(r, 0) == 0);
  dama_tensor_release(r);
  dama_tensor_release(a);
}

DAMA_TEST(leading_dim_sums_all_dtypes) {
  /* sum/mean over leading dims take the column path (no transposing copy): check it for every dtype,
   * with more rows than one chunk and more columns than one block */
  int64_t s[3] = {2, 700, 300};
  int64_t n = 2 * 700 * 300;
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = (double)((i * 13) % 7);
  int32_t dims[2] = {0, 1};
  for (int t = 0; t < 8; t++) {
    dama_tensor *a = mk(ALL_DTYPES[t], 3, s, v), *r = NULL, *m = NULL;
    CHECK_OK(dama_reduce(&r, DAMA_RSUM, a, 2, dims, 0, 0, 0));
    CHECK_OK(dama_reduce(&m, DAMA_RMEAN, a, 2, dims, 1, 0, 0));
    CHECK(r->ndim == 1 && r->shape[0] == 300 && m->ndim == 3 && m->shape[2] == 300);
    for (int64_t j = 0; j < 300; j++) {
      double e = 0;
      for (int64_t i = 0; i < 1400; i++) e += v[i * 300 + j];
      double tol = ALL_DTYPES[t] == DAMA_BF16 ? 4e-3 : 0; /* the bf16 result is rounded to 8 bits */
      CHECK_MSG(fabs(at(r, j) - e) <= tol * e, "%s col %lld: %g vs %g", dama_dtype_name(ALL_DTYPES[t]), (long long)j, at(r, j), e);
      CHECK_CLOSE(at(m, j), e / 1400, ALL_DTYPES[t] == DAMA_BF16 ? 4e-3 : 1e-3);
    }
    dama_tensor_release(a); dama_tensor_release(r); dama_tensor_release(m);
  }
  free(v);
}

DAMA_TEST(interrupt_stops_reductions) {
  int64_t n = 4 << 20, s2[2] = {2048, 2048};
  dama_tensor *a = NULL, *b = NULL, *r = NULL, *v = NULL, *i = NULL;
  CHECK_OK(dama_zeros(&a, 1, &n, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_zeros(&b, 2, s2, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  int32_t d0 = 0;
  dama_interrupt_request();
  dama_status s1 = dama_reduce(&r, DAMA_RSUM, a, 0, NULL, 0, 0, 0);
  char m1[256];
  snprintf(m1, sizeof m1, "%s", dama_last_error());
  dama_status s2_ = dama_reduce(&r, DAMA_RMEAN, b, 1, &d0, 0, 0, 0); /* column path */
  dama_status s3 = dama_sort(&v, &i, b, 1, 0, 1);
  dama_interrupt_clear();
  CHECK(s1 == DAMA_ERR_INTERRUPTED && s2_ == DAMA_ERR_INTERRUPTED && s3 == DAMA_ERR_INTERRUPTED);
  CHECK(strcmp(m1, "sum: interrupted") == 0);
  CHECK_ERRMSG("sort: interrupted");
  CHECK(r == NULL && v == NULL && i == NULL);
  dama_tensor_release(a); dama_tensor_release(b);
}

DAMA_TEST(middle_dim_sums_column_path) {
  /* mean over tokens of [B, T, C] (kept-before, reduced, kept-after) with several chunks and blocks */
  int64_t s[3] = {3, 1100, 300}, n = 3 * 1100 * 300;
  double *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) v[i] = (double)((i * 31) % 9) - 4;
  dama_dtype dts[3] = {DAMA_F32, DAMA_I32, DAMA_F64};
  int32_t d1 = 1;
  for (int t = 0; t < 3; t++) {
    dama_tensor *a = mk(dts[t], 3, s, v), *r = NULL, *m = NULL;
    CHECK_OK(dama_reduce(&r, DAMA_RSUM, a, 1, &d1, 0, 0, 0));
    CHECK_OK(dama_reduce(&m, DAMA_RMEAN, a, 1, &d1, 1, 0, 0));
    CHECK(r->ndim == 2 && r->shape[0] == 3 && r->shape[1] == 300 && m->ndim == 3 && m->shape[1] == 1);
    int bad = 0;
    for (int64_t b = 0; b < 3; b++)
      for (int64_t c = 0; c < 300; c++) {
        double e = 0;
        for (int64_t k = 0; k < 1100; k++) e += v[(b * 1100 + k) * 300 + c];
        bad += at(r, b * 300 + c) != e;
        bad += fabs(at(m, b * 300 + c) - e / 1100) > 1e-6;
      }
    CHECK_MSG(bad == 0, "%s: %d mismatches", dama_dtype_name(dts[t]), bad);
    dama_tensor_release(a); dama_tensor_release(r); dama_tensor_release(m);
  }
  free(v);
}

DAMA_TEST(zero_rows_with_long_reduced_dim) {
  int64_t s[2] = {0, 20000};
  dama_tensor *a = NULL, *r = NULL;
  int32_t d1 = 1;
  CHECK_OK(dama_zeros(&a, 2, s, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_reduce(&r, DAMA_RVAR, a, 1, &d1, 0, 1, 0));
  CHECK(r->ndim == 1 && r->shape[0] == 0);
  dama_tensor_release(r);
  dama_tensor_release(a);
}
