/* cat / stack: dims, dtype promotion, non-contiguous inputs, legacy empty tensors, errors. */
#include "test_ops_util.h"

static const dama_device CPU = {DAMA_CPU, 0};

DAMA_TEST(cat_dims_dtypes_and_layouts) {
  double av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {7, 8, 9};
  int64_t s23[2] = {2, 3}, s13[2] = {1, 3}, s32[2] = {3, 2};
  dama_tensor *a = mk(DAMA_F32, 2, s23, av), *b = mk(DAMA_I32, 2, s13, bv), *r = NULL;
  dama_tensor *ts[2] = {a, b};
  CHECK_OK(dama_cat(&r, 2, ts, 0));
  int64_t e33[2] = {3, 3};
  CHECK(shape_is(r, 2, e33) && r->dtype == DAMA_F32); /* promoted */
  double e[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  CHECK_VALUES(r, e, 0);
  dama_tensor_release(r);
  /* along dim 1 with a transposed operand */
  dama_tensor *c = mk(DAMA_F64, 2, s32, av), *ct = NULL;
  CHECK_OK(dama_transpose(&ct, c, 0, 1)); /* [2, 3]: ct[i][j] = c[j][i] */
  dama_tensor *ts2[2] = {a, ct};
  CHECK_OK(dama_cat(&r, 2, ts2, -1));
  int64_t e26[2] = {2, 6};
  CHECK(shape_is(r, 2, e26) && r->dtype == DAMA_F64);
  double e2[12] = {1, 2, 3, 1, 3, 5, 4, 5, 6, 2, 4, 6};
  CHECK_VALUES(r, e2, 0);
  dama_tensor_release(r);
  /* legacy empty [0] tensors are skipped */
  int64_t z = 0;
  dama_tensor *empty = NULL;
  CHECK_OK(dama_zeros(&empty, 1, &z, DAMA_F32, CPU));
  dama_tensor *ts3[3] = {empty, a, empty};
  CHECK_OK(dama_cat(&r, 3, ts3, 0));
  CHECK(shape_is(r, 2, s23));
  dama_tensor_release(r);
  /* errors name the tensor position and both shapes */
  dama_tensor *ts4[3] = {a, b, c};
  CHECK_STATUS(dama_cat(&r, 3, ts4, 0), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("cat: tensor 2 has shape [3, 2] but tensor 0 has shape [2, 3]; sizes must match except in dim 0");
  int64_t s3 = 3;
  dama_tensor *v = mk(DAMA_F32, 1, &s3, bv);
  dama_tensor *ts5[2] = {a, v};
  CHECK_STATUS(dama_cat(&r, 2, ts5, 0), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("cat: tensor 1 has 1 dims");
  CHECK_STATUS(dama_cat(&r, 2, ts, 2), DAMA_ERR_INDEX);
  CHECK_STATUS(dama_cat(&r, 0, ts, 0), DAMA_ERR_ARG);
  dama_tensor *ts6[2] = {a, NULL};
  CHECK_STATUS(dama_cat(&r, 2, ts6, 0), DAMA_ERR_ARG);
  CHECK_ERRMSG("cat: tensor 'tensor 1' is NULL");
  dama_tensor *objs[] = {a, b, c, ct, empty, v};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(stack_new_dim) {
  double av[3] = {1, 2, 3}, bv[3] = {4, 5, 6};
  int64_t s3 = 3, s2 = 2;
  dama_tensor *a = mk(DAMA_U8, 1, &s3, av), *b = mk(DAMA_U8, 1, &s3, bv), *r = NULL;
  dama_tensor *ts[2] = {a, b};
  CHECK_OK(dama_stack(&r, 2, ts, 0));
  int64_t e23[2] = {2, 3}, e32[2] = {3, 2};
  CHECK(shape_is(r, 2, e23) && r->dtype == DAMA_U8);
  double e[6] = {1, 2, 3, 4, 5, 6};
  CHECK_VALUES(r, e, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_stack(&r, 2, ts, -1));
  CHECK(shape_is(r, 2, e32));
  double e2[6] = {1, 4, 2, 5, 3, 6};
  CHECK_VALUES(r, e2, 0);
  dama_tensor_release(r);
  dama_tensor *c = mk(DAMA_U8, 1, &s2, av);
  dama_tensor *ts2[3] = {a, b, c};
  CHECK_STATUS(dama_stack(&r, 3, ts2, 0), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("stack: tensor 2 has shape [2] but tensor 0 has shape [3]");
  CHECK_STATUS(dama_stack(&r, 2, ts, 2), DAMA_ERR_INDEX);
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(c);
}
