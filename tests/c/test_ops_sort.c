/* sort / argsort / topk: stability, NaN ordering, every dtype, any dim, non-contiguous input, errors. */
#include "test_ops_util.h"

DAMA_TEST(sort_ascending_descending_stable) {
  double v[8] = {3, 1, 2, 1, 3, 0, 2, 1};
  int64_t s8 = 8;
  dama_tensor *a = mk(DAMA_F32, 1, &s8, v), *val = NULL, *idx = NULL;
  CHECK_OK(dama_sort(&val, &idx, a, 0, 0, 1));
  double ev[8] = {0, 1, 1, 1, 2, 2, 3, 3}, ei[8] = {5, 1, 3, 7, 2, 6, 0, 4};
  CHECK_VALUES(val, ev, 0);
  CHECK_VALUES(idx, ei, 0);
  CHECK(idx->dtype == DAMA_I64 && val->dtype == DAMA_F32);
  dama_tensor_release(val); dama_tensor_release(idx);
  CHECK_OK(dama_sort(&val, &idx, a, -1, 1, 1)); /* descending keeps equal keys in input order too */
  double ev2[8] = {3, 3, 2, 2, 1, 1, 1, 0}, ei2[8] = {0, 4, 2, 6, 1, 3, 7, 5};
  CHECK_VALUES(val, ev2, 0);
  CHECK_VALUES(idx, ei2, 0);
  dama_tensor_release(val); dama_tensor_release(idx);
  dama_tensor_release(a);
}

DAMA_TEST(nan_sorts_largest) {
  double v[5] = {2, NAN, -1, NAN, 0};
  int64_t s5 = 5;
  dama_tensor *a = mk(DAMA_F64, 1, &s5, v), *val = NULL, *idx = NULL;
  CHECK_OK(dama_sort(&val, &idx, a, 0, 0, 1));
  double ev[5] = {-1, 0, 2, NAN, NAN}, ei[5] = {2, 4, 0, 1, 3};
  CHECK_VALUES(val, ev, 0);
  CHECK_VALUES(idx, ei, 0);
  dama_tensor_release(val); dama_tensor_release(idx);
  CHECK_OK(dama_sort(&val, &idx, a, 0, 1, 1));
  double ev2[5] = {NAN, NAN, 2, 0, -1}, ei2[5] = {1, 3, 0, 4, 2};
  CHECK_VALUES(val, ev2, 0);
  CHECK_VALUES(idx, ei2, 0);
  dama_tensor_release(val); dama_tensor_release(idx);
  dama_tensor_release(a);
}

DAMA_TEST(every_dtype_and_dim_against_naive) {
  const int64_t s[3] = {3, 5, 4};
  double v[60];
  for (int i = 0; i < 60; i++) v[i] = (i * 37) % 17; /* repeats to exercise stability */
  for (int t = 0; t < 8; t++) {
    dama_tensor *a = mk(ALL_DTYPES[t], 3, s, v);
    for (int32_t dim = 0; dim < 3; dim++) {
      for (int desc = 0; desc <= 1; desc++) {
        dama_tensor *val = NULL, *idx = NULL, *ai = NULL;
        CHECK_OK(dama_sort(&val, &idx, a, dim, desc, 1));
        CHECK_OK(dama_argsort(&ai, a, dim, desc, 1));
        CHECK(shape_is(val, 3, s) && val->dtype == (int)ALL_DTYPES[t]);
        /* each row along dim: sorted, stable, and val == a[idx] */
        for (int64_t i = 0; i < 60; i++) {
          int64_t ix[3], rem = i;
          for (int d = 2; d >= 0; d--) { ix[d] = rem % s[d]; rem /= s[d]; }
          double x, k, ka;
          dama_get(val, ix, &x);
          dama_get(idx, ix, &k);
          dama_get(ai, ix, &ka);
          CHECK(k == ka);
          int64_t src[3] = {ix[0], ix[1], ix[2]};
          src[dim] = (int64_t)k;
          double orig;
          dama_get(a, src, &orig);
          CHECK(orig == x);
          if (ix[dim] > 0) {
            int64_t pv[3] = {ix[0], ix[1], ix[2]};
            pv[dim]--;
            double px, pk;
            dama_get(val, pv, &px);
            dama_get(idx, pv, &pk);
            CHECK_MSG(desc ? px >= x : px <= x, "%s dim %d not sorted", dama_dtype_name(ALL_DTYPES[t]), dim);
            if (px == x) CHECK(pk < k);
          }
        }
        dama_tensor_release(val); dama_tensor_release(idx); dama_tensor_release(ai);
      }
    }
    dama_tensor_release(a);
  }
}

DAMA_TEST(non_contiguous_and_large_rows) {
  int64_t s[2] = {3, 3000};
  double *v = malloc(sizeof(double) * 9000);
  fill_rand(v, 9000, 5, -100, 100);
  dama_tensor *a = mk(DAMA_F32, 2, s, v), *at_ = NULL, *val = NULL, *idx = NULL;
  CHECK_OK(dama_transpose(&at_, a, 0, 1)); /* [3000, 3], sort along dim 0 = a's rows */
  CHECK_OK(dama_sort(&val, &idx, at_, 0, 0, 1));
  int64_t es[2] = {3000, 3};
  CHECK(shape_is(val, 2, es));
  for (int64_t c = 0; c < 3; c++)
    for (int64_t r = 1; r < 3000; r++) {
      int64_t p[2] = {r - 1, c}, q[2] = {r, c};
      double x, y;
      dama_get(val, p, &x);
      dama_get(val, q, &y);
      CHECK(x <= y);
    }
  free(v);
  dama_tensor_release(a); dama_tensor_release(at_); dama_tensor_release(val); dama_tensor_release(idx);
}

DAMA_TEST(topk_largest_smallest) {
  double v[10] = {5, 1, 9, 3, 9, 0, 7, 2, 8, 4};
  int64_t s[2] = {2, 5};
  dama_tensor *a = mk(DAMA_I32, 2, s, v), *val = NULL, *idx = NULL;
  CHECK_OK(dama_topk(&val, &idx, a, 2, 1, 1, 1));
  int64_t es[2] = {2, 2};
  CHECK(shape_is(val, 2, es) && val->dtype == DAMA_I32);
  double ev[4] = {9, 9, 8, 7}, ei[4] = {2, 4, 3, 1};
  CHECK_VALUES(val, ev, 0);
  CHECK_VALUES(idx, ei, 0);
  dama_tensor_release(val); dama_tensor_release(idx);
  CHECK_OK(dama_topk(&val, &idx, a, 3, 0 - 1, 0, 1));
  double ev2[6] = {1, 3, 5, 0, 2, 4}, ei2[6] = {1, 3, 0, 0, 2, 4};
  CHECK_VALUES(val, ev2, 0);
  CHECK_VALUES(idx, ei2, 0);
  dama_tensor_release(val); dama_tensor_release(idx);
  CHECK_OK(dama_topk(&val, &idx, a, 0, 1, 1, 1)); /* k = 0: empty */
  CHECK(val->shape[1] == 0);
  dama_tensor_release(val); dama_tensor_release(idx);
  CHECK_STATUS(dama_topk(&val, &idx, a, 6, 1, 1, 1), DAMA_ERR_ARG);
  CHECK_ERRMSG("topk: k=6 is out of range for dim 1 of size 5");
  CHECK_STATUS(dama_topk(&val, &idx, a, 1, 2, 1, 1), DAMA_ERR_INDEX);
  CHECK_ERRMSG("topk: dim 2 is out of range for a tensor with 2 dims");
  CHECK_STATUS(dama_sort(&val, &idx, a, -3, 0, 1), DAMA_ERR_INDEX);
  CHECK_ERRMSG("sort: dim -3");
  CHECK(val == NULL && idx == NULL);
  CHECK_STATUS(dama_argsort(&idx, NULL, 0, 0, 1), DAMA_ERR_ARG);
  dama_tensor_release(a);
}

DAMA_TEST(empty_and_0d) {
  int64_t s[2] = {0, 4};
  dama_tensor *a = NULL, *val = NULL, *idx = NULL;
  CHECK_OK(dama_zeros(&a, 2, s, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_sort(&val, &idx, a, 1, 0, 1));
  CHECK(shape_is(val, 2, s));
  dama_tensor_release(val); dama_tensor_release(idx);
  double v = 3;
  dama_tensor *z = mk(DAMA_F32, 0, NULL, &v);
  CHECK_OK(dama_sort(&val, &idx, z, 0, 0, 1));
  CHECK(val->ndim == 0 && at(val, 0) == 3 && at(idx, 0) == 0);
  dama_tensor_release(val); dama_tensor_release(idx);
  dama_tensor_release(a); dama_tensor_release(z);
}
