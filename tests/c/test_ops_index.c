/* gather / scatter_ / index_select: values, dtypes, i32/i64 indices, non-contiguous
 * operands, and every error with its message. */
#include "test_ops_util.h"

static const dama_device CPU = {DAMA_CPU, 0};

DAMA_TEST(gather_dim0_dim1) {
  double av[6] = {1, 2, 3, 4, 5, 6}, iv[4] = {1, 0, 0, 1};
  int64_t s23[2] = {2, 3}, s22[2] = {2, 2};
  dama_tensor *a = mk(DAMA_F32, 2, s23, av), *ix = mk(DAMA_I64, 2, s22, iv), *r = NULL;
  CHECK_OK(dama_gather(&r, a, 0, ix)); /* r[i][j] = a[ix[i][j]][j] */
  double e[4] = {4, 2, 1, 5};
  CHECK(shape_is(r, 2, s22) && r->dtype == DAMA_F32);
  CHECK_VALUES(r, e, 0);
  dama_tensor_release(r);
  dama_tensor *ix32 = mk(DAMA_I32, 2, s22, iv);
  CHECK_OK(dama_gather(&r, a, 1, ix32)); /* r[i][j] = a[i][ix[i][j]] */
  double e2[4] = {2, 1, 4, 5};
  CHECK_VALUES(r, e2, 0);
  dama_tensor_release(r);
  dama_tensor_release(a); dama_tensor_release(ix); dama_tensor_release(ix32);
}

DAMA_TEST(gather_all_dtypes_non_contiguous) {
  double av[12], iv[4] = {2, 0, 1, 2};
  for (int i = 0; i < 12; i++) av[i] = i;
  int64_t s34[2] = {3, 4}, s41[2] = {4, 1};
  for (int t = 0; t < 8; t++) {
    dama_tensor *a = mk(ALL_DTYPES[t], 2, s34, av), *at_ = NULL, *ix = mk(DAMA_I64, 2, s41, iv), *r = NULL;
    CHECK_OK(dama_transpose(&at_, a, 0, 1)); /* [4, 3]: at[i][j] = a[j][i] = 4j + i */
    CHECK_OK(dama_gather(&r, at_, 1, ix));   /* r[i][0] = at[i][ix[i]] = 4*ix[i] + i */
    double e[4] = {8, 1, 6, 11};
    CHECK(r->dtype == (int)ALL_DTYPES[t]);
    CHECK_VALUES(r, e, 0);
    dama_tensor_release(a); dama_tensor_release(at_); dama_tensor_release(ix); dama_tensor_release(r);
  }
}

DAMA_TEST(gather_errors) {
  double av[6] = {0}, iv[2] = {0, 3};
  int64_t s23[2] = {2, 3}, s12[2] = {1, 2}, s2[1] = {2}, s33[2] = {3, 3};
  dama_tensor *a = mk(DAMA_F32, 2, s23, av), *ix = mk(DAMA_I64, 2, s12, iv), *r = NULL;
  CHECK_STATUS(dama_gather(&r, a, 1, ix), DAMA_ERR_INDEX);
  CHECK_ERRMSG("gather: index 3 is out of bounds for dim 1 with size 3");
  CHECK(r == NULL);
  double nv[2] = {-1, 0};
  dama_tensor *neg = mk(DAMA_I32, 2, s12, nv), *f = mk(DAMA_F32, 2, s12, nv), *ix1 = mk(DAMA_I64, 1, s2, nv);
  CHECK_STATUS(dama_gather(&r, a, 0, neg), DAMA_ERR_INDEX);
  CHECK_ERRMSG("index -1 is out of bounds for dim 0 with size 2");
  CHECK_STATUS(dama_gather(&r, a, 0, f), DAMA_ERR_DTYPE);
  CHECK_ERRMSG("gather: index must be i32 or i64, got f32");
  CHECK_STATUS(dama_gather(&r, a, 0, ix1), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("index has 1 dims but input has 2");
  double zv[9] = {0};
  dama_tensor *big = mk(DAMA_I64, 2, s33, zv);
  CHECK_STATUS(dama_gather(&r, a, 1, big), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("index shape [3, 3] is larger than input shape [2, 3] at dim 0");
  CHECK_STATUS(dama_gather(&r, a, 2, ix), DAMA_ERR_INDEX);
  CHECK_ERRMSG("gather: dim 2 is out of range");
  dama_tensor *objs[] = {a, ix, neg, f, ix1, big};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(scatter_assign_and_add) {
  int64_t s23[2] = {2, 3}, s13[2] = {1, 3};
  double iv[3] = {1, 0, 1}, sv[3] = {10, 20, 30};
  dama_tensor *a = NULL, *ix = mk(DAMA_I64, 2, s13, iv), *src = mk(DAMA_F32, 2, s13, sv);
  CHECK_OK(dama_zeros(&a, 2, s23, DAMA_F32, CPU));
  CHECK_OK(dama_scatter_(a, 0, ix, src, 0)); /* a[ix[0][j]][j] = src[0][j] */
  double e[6] = {0, 20, 0, 10, 0, 30};
  CHECK_VALUES(a, e, 0);
  /* add with duplicate indices along dim 1: all land in column 0 */
  double iv2[3] = {0, 0, 0};
  dama_tensor *ix2 = mk(DAMA_I32, 2, s13, iv2);
  CHECK_OK(dama_scatter_(a, 1, ix2, src, 1));
  double e2[6] = {60, 20, 0, 10, 0, 30};
  CHECK_VALUES(a, e2, 0);
  /* 0-d src is a scalar for every position; int target with float src converts */
  int64_t s22[2] = {2, 2};
  double ivv[4] = {1, 1, 0, 0}, one = 7.9;
  dama_tensor *t = NULL, *ix3 = mk(DAMA_I64, 2, s22, ivv), *sc = mk(DAMA_F64, 0, NULL, &one);
  CHECK_OK(dama_zeros(&t, 2, s22, DAMA_I32, CPU));
  CHECK_OK(dama_scatter_(t, 1, ix3, sc, 1)); /* row 0: col 1 += 7 twice; row 1: col 0 += 7 twice */
  double e3[4] = {0, 14, 14, 0};
  CHECK_VALUES(t, e3, 0);
  dama_tensor *objs[] = {a, ix, src, ix2, t, ix3, sc};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(scatter_non_contiguous_target_all_dtypes) {
  int64_t s33[2] = {3, 3}, s13[2] = {1, 3};
  double iv[3] = {2, 0, 1}, sv[3] = {1, 2, 3};
  for (int t = 0; t < 8; t++) {
    dama_tensor *a = NULL, *at_ = NULL, *ix = mk(DAMA_I64, 2, s13, iv), *src = mk(ALL_DTYPES[t], 2, s13, sv);
    CHECK_OK(dama_zeros(&a, 2, s33, ALL_DTYPES[t], CPU));
    CHECK_OK(dama_transpose(&at_, a, 0, 1));
    CHECK_OK(dama_scatter_(at_, 0, ix, src, 1)); /* at[ix[j]][j] += src[j]  ->  a[j][ix[j]] */
    double e[9] = {0, 0, 1, 2, 0, 0, 0, 3, 0};
    CHECK_MSG(first_mismatch(a, e, 0) < 0, "%s", dama_dtype_name(ALL_DTYPES[t]));
    dama_tensor_release(a); dama_tensor_release(at_); dama_tensor_release(ix); dama_tensor_release(src);
  }
}

DAMA_TEST(scatter_errors_write_nothing) {
  int64_t s23[2] = {2, 3}, s13[2] = {1, 3}, s12[2] = {1, 2};
  double iv[3] = {0, 5, 1}, sv[3] = {1, 2, 3};
  dama_tensor *a = NULL, *ix = mk(DAMA_I64, 2, s13, iv), *src = mk(DAMA_F32, 2, s13, sv), *small = mk(DAMA_F32, 2, s12, sv);
  CHECK_OK(dama_zeros(&a, 2, s23, DAMA_F32, CPU));
  CHECK_STATUS(dama_scatter_(a, 0, ix, src, 0), DAMA_ERR_INDEX);
  CHECK_ERRMSG("scatter_: index 5 is out of bounds for dim 0 with size 2");
  double z[6] = {0};
  CHECK_VALUES(a, z, 0); /* nothing written */
  double ok[3] = {0, 1, 1};
  dama_tensor *ix2 = mk(DAMA_I64, 2, s13, ok);
  CHECK_STATUS(dama_scatter_(a, 0, ix2, small, 0), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("larger than src shape [1, 2]");
  CHECK_STATUS(dama_scatter_(a, 0, ix2, src, 2), DAMA_ERR_ARG);
  CHECK_ERRMSG("reduce must be 0 (assign) or 1 (add), got 2");
  dama_tensor *objs[] = {a, ix, src, small, ix2};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(index_select_dims_and_errors) {
  double av[24];
  for (int i = 0; i < 24; i++) av[i] = i;
  int64_t s234[3] = {2, 3, 4}, s4 = 4;
  double iv[4] = {2, 0, 2, 1};
  dama_tensor *a = mk(DAMA_U16, 3, s234, av), *ix = mk(DAMA_I32, 1, &s4, iv), *r = NULL;
  CHECK_OK(dama_index_select(&r, a, 1, ix)); /* [2, 4, 4] */
  int64_t es[3] = {2, 4, 4};
  CHECK(shape_is(r, 3, es) && r->dtype == DAMA_U16);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++)
      for (int k = 0; k < 4; k++) CHECK(at(r, (i * 4 + j) * 4 + k) == av[(i * 3 + (int)iv[j]) * 4 + k]);
  dama_tensor_release(r);
  dama_tensor *p = NULL;
  int32_t perm[3] = {2, 1, 0};
  CHECK_OK(dama_permute(&p, a, perm)); /* [4, 3, 2] non-contiguous */
  CHECK_STATUS(dama_index_select(&r, p, -1, ix), DAMA_ERR_INDEX); /* dim 2 of size 2 */
  CHECK_ERRMSG("index_select: index 2 is out of bounds for dim 2 with size 2");
  CHECK(r == NULL);
  double jv[3] = {1, 1, 0};
  int64_t s3 = 3;
  dama_tensor *j64 = mk(DAMA_I64, 1, &s3, jv);
  CHECK_OK(dama_index_select(&r, p, 2, j64)); /* r[i][j][k] = p[i][j][jv[k]] = a[jv[k]][j][i] */
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++)
      for (int k = 0; k < 3; k++) CHECK(at(r, (i * 3 + j) * 3 + k) == av[((int)jv[k] * 3 + j) * 4 + i]);
  dama_tensor_release(r);
  int64_t s22[2] = {2, 2};
  double j4[4] = {0, 1, 1, 0};
  dama_tensor *ix2 = mk(DAMA_I64, 2, s22, j4), *fx = mk(DAMA_F64, 1, &s3, jv);
  CHECK_STATUS(dama_index_select(&r, a, 0, ix2), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("index_select: index must be 1-d, got shape [2, 2]");
  CHECK_STATUS(dama_index_select(&r, a, 0, fx), DAMA_ERR_DTYPE);
  CHECK_STATUS(dama_index_select(&r, a, 3, j64), DAMA_ERR_INDEX);
  dama_tensor_release(ix2); dama_tensor_release(fx); dama_tensor_release(j64);
  dama_tensor_release(p);
  dama_tensor_release(a); dama_tensor_release(ix);
}
