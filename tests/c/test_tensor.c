/* Tensor core: creation, views, copies, dtype conversion, RNG, errors. */
#include "dama_test.h"
#include <string.h>

static const dama_device CPU = {DAMA_CPU, 0};

DAMA_TEST(arange_view_transpose_copy) {
  dama_tensor *a = NULL, *v = NULL, *t = NULL, *c = NULL;
  CHECK_OK(dama_arange(&a, 0, 6, 1, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  int64_t shape[2] = {2, 3};
  CHECK_OK(dama_view(&v, a, 2, shape));
  CHECK_OK(dama_transpose(&t, v, 0, 1));
  CHECK(!dama_is_contiguous(t));
  CHECK_OK(dama_contiguous(&c, t));
  const float *p = dama_data_ptr(c);
  float want[6] = {0, 3, 1, 4, 2, 5};
  for (int i = 0; i < 6; i++) CHECK_CLOSE(p[i], want[i], 0);
  /* a view of a non-contiguous tensor that cannot be expressed without a copy */
  int64_t flat = 6;
  dama_tensor *bad = NULL;
  CHECK_STATUS(dama_view(&bad, t, 1, &flat), DAMA_ERR_SHAPE);
  CHECK(strstr(dama_last_error(), "reshape") != NULL);
  dama_tensor *r = NULL;
  CHECK_OK(dama_reshape(&r, t, 1, &flat));
  double x;
  CHECK_OK(dama_get(r, (int64_t[]){1}, &x));
  CHECK_CLOSE(x, 3, 0);
  dama_tensor_release(a); dama_tensor_release(v); dama_tensor_release(t);
  dama_tensor_release(c); dama_tensor_release(r);
}

DAMA_TEST(views_share_storage) {
  dama_tensor *z = NULL, *s = NULL, *n = NULL;
  int64_t shape[2] = {4, 5};
  CHECK_OK(dama_zeros(&z, 2, shape, DAMA_F64, CPU));
  CHECK_OK(dama_select(&s, z, 0, -1));
  CHECK_OK(dama_narrow(&n, s, 0, 1, 2));
  CHECK_OK(dama_set(n, (int64_t[]){1}, 7.5));
  double v;
  CHECK_OK(dama_get(z, (int64_t[]){3, 2}, &v));
  CHECK_CLOSE(v, 7.5, 0);
  CHECK_STATUS(dama_get(z, (int64_t[]){4, 0}, &v), DAMA_ERR_INDEX);
  CHECK(strstr(dama_last_error(), "size 4") != NULL);
  dama_tensor_release(z); dama_tensor_release(s); dama_tensor_release(n);
}

DAMA_TEST(expand_and_broadcast_copy) {
  dama_tensor *row = NULL, *e = NULL, *dst = NULL;
  CHECK_OK(dama_arange(&row, 1, 4, 1, DAMA_I64, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_expand(&e, row, 2, (int64_t[]){2, -1}));
  CHECK(e->strides[0] == 0);
  CHECK_OK(dama_empty(&dst, 2, (int64_t[]){2, 3}, DAMA_F32, CPU));
  CHECK_OK(dama_copy_(dst, row));
  const float *p = dama_data_ptr(dst);
  CHECK_CLOSE(p[3], 1, 0); CHECK_CLOSE(p[5], 3, 0);
  dama_tensor *bad = NULL;
  CHECK_STATUS(dama_expand(&bad, row, 1, (int64_t[]){4}), DAMA_ERR_SHAPE);
  CHECK(strstr(dama_last_error(), "[3]") && strstr(dama_last_error(), "[4]"));
  dama_tensor_release(row); dama_tensor_release(e); dama_tensor_release(dst);
}

DAMA_TEST(broadcast_shapes_message_names_both) {
  int64_t out[8]; int32_t nd;
  CHECK_STATUS(dama_broadcast_shapes(1, (int64_t[]){2}, 1, (int64_t[]){3}, &nd, out), DAMA_ERR_SHAPE);
  CHECK(strstr(dama_last_error(), "[2]") && strstr(dama_last_error(), "[3]"));
  CHECK_OK(dama_broadcast_shapes(2, (int64_t[]){4, 1}, 1, (int64_t[]){3}, &nd, out));
  CHECK(nd == 2 && out[0] == 4 && out[1] == 3);
}

DAMA_TEST(dtype_round_trips) {
  float vals[5] = {1.0f, -2.5f, 65504.0f, 3.0e-5f, 0.1f};
  dama_tensor *f = NULL, *h = NULL, *b = NULL, *back = NULL;
  CHECK_OK(dama_from_buffer(&f, 1, (int64_t[]){5}, DAMA_F32, vals, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_to_dtype(&h, f, DAMA_F16));
  CHECK_OK(dama_to_dtype(&b, f, DAMA_BF16));
  CHECK_OK(dama_to_dtype(&back, h, DAMA_F32));
  const float *p = dama_data_ptr(back);
  for (int i = 0; i < 5; i++) CHECK_CLOSE(p[i], vals[i], 1e-3);
  CHECK(((const uint16_t *)dama_data_ptr(h))[0] == 0x3c00);
  CHECK(((const uint16_t *)dama_data_ptr(h))[2] == 0x7bff);
  CHECK(((const uint16_t *)dama_data_ptr(b))[0] == 0x3f80);
  dama_tensor_release(f); dama_tensor_release(h); dama_tensor_release(b); dama_tensor_release(back);
}

DAMA_TEST(rng_is_reproducible_and_sane) {
  dama_tensor *a = NULL, *b = NULL;
  int64_t n = 100000;
  CHECK_OK(dama_empty(&a, 1, &n, DAMA_F32, CPU));
  CHECK_OK(dama_empty(&b, 1, &n, DAMA_F32, CPU));
  dama_manual_seed(42); CHECK_OK(dama_normal_(a, 0, 1, NULL));
  dama_manual_seed(42); CHECK_OK(dama_normal_(b, 0, 1, NULL));
  const float *pa = dama_data_ptr(a), *pb = dama_data_ptr(b);
  double mean = 0, var = 0;
  for (int64_t i = 0; i < n; i++) { CHECK(pa[i] == pb[i]); mean += pa[i]; }
  mean /= (double)n;
  for (int64_t i = 0; i < n; i++) var += (pa[i] - mean) * (pa[i] - mean);
  var /= (double)n;
  CHECK_CLOSE(mean, 0, 0.02); CHECK_CLOSE(var, 1, 0.02);
  CHECK_OK(dama_uniform_(a, 2, 3, NULL));
  for (int64_t i = 0; i < n; i++) CHECK(pa[i] >= 2 && pa[i] < 3);
  dama_tensor *p = NULL;
  CHECK_OK(dama_randperm(&p, 1000, DAMA_I64, NULL, (dama_device){DAMA_CPU, 0}));
  char seen[1000] = {0};
  const int64_t *pp = dama_data_ptr(p);
  for (int i = 0; i < 1000; i++) { CHECK(pp[i] >= 0 && pp[i] < 1000 && !seen[pp[i]]); seen[pp[i]] = 1; }
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(p);
}

DAMA_TEST(memory_limit_gives_oom_and_stats_track) {
  int64_t before, peak, nt;
  dama_memory_stats(&before, &peak, &nt);
  dama_tensor *big = NULL;
  dama_memory_set_limit(before + 1000);
  int64_t n = 1 << 20;
  CHECK_STATUS(dama_empty(&big, 1, &n, DAMA_F32, CPU), DAMA_ERR_OOM);
  CHECK(strstr(dama_last_error(), "4194304 bytes") != NULL);
  dama_memory_set_limit(0);
  CHECK_OK(dama_empty(&big, 1, &n, DAMA_F32, CPU));
  int64_t during;
  dama_memory_stats(&during, &peak, &nt);
  CHECK(during >= before + 4 * n);
  dama_tensor_release(big);
  int64_t after;
  dama_memory_stats(&after, &peak, &nt);
  CHECK(after == before);
}

DAMA_TEST(bad_inputs) {
  dama_tensor *t = NULL;
  CHECK_STATUS(dama_empty(&t, 1, (int64_t[]){-1}, DAMA_F32, CPU), DAMA_ERR_SHAPE);
  CHECK_STATUS(dama_empty(&t, 1, (int64_t[]){2}, DAMA_F32, (dama_device){DAMA_CUDA, 0}), DAMA_ERR_DEVICE);
  CHECK_STATUS(dama_arange(&t, 0, 1, 0, DAMA_F32, (dama_device){DAMA_CPU, 0}), DAMA_ERR_ARG);
  dama_dtype d;
  CHECK_STATUS(dama_dtype_parse("f33", &d), DAMA_ERR_ARG);
  CHECK_OK(dama_dtype_parse("bfloat16", &d));
  CHECK(d == DAMA_BF16);
  CHECK(t == NULL);
}

/* A zero-size dim beside huge ones holds no elements, but its contiguous strides would overflow int64_t
 * (UBSan: signed overflow in dama_contiguous_strides); huge shapes name the function and the shape. */
DAMA_TEST(huge_shapes_fail_naming_the_function_and_shape) {
  dama_tensor *t = NULL;
  int64_t zero_huge[3] = {0, (int64_t)1 << 62, 4};
  CHECK_STATUS(dama_zeros(&t, 3, zero_huge, DAMA_F32, CPU), DAMA_ERR_SHAPE);
  CHECK(t == NULL);
  CHECK_MSG(strstr(dama_last_error(), "zeros: shape [0, 4611686018427387904, 4] is too large") != NULL, "%s",
            dama_last_error());
  CHECK_MSG(strstr(dama_last_error(), "2^64") != NULL, "%s", dama_last_error());
  int64_t npy_like[3] = {0, 2, INT64_MAX};
  CHECK_STATUS(dama_empty(&t, 3, npy_like, DAMA_F32, CPU), DAMA_ERR_SHAPE);
  int64_t cube[3] = {(int64_t)1 << 31, (int64_t)1 << 31, (int64_t)1 << 31};
  CHECK_STATUS(dama_empty_op(&t, "randn", 3, cube, DAMA_F32, CPU), DAMA_ERR_SHAPE);
  CHECK_MSG(strstr(dama_last_error(), "randn: shape [2147483648, 2147483648, 2147483648] has 2^93 elements, more "
                                      "than 2^60 - 1") != NULL, "%s", dama_last_error());
  int64_t odd[2] = {3000000000LL, 3000000000LL};
  CHECK_STATUS(dama_full(&t, 2, odd, 1.0, DAMA_F32, CPU), DAMA_ERR_SHAPE);
  CHECK_MSG(strstr(dama_last_error(), "full: shape [3000000000, 3000000000] has about 2^63.0 elements") != NULL, "%s",
            dama_last_error());
  /* the largest tensors that pass the check are still just an allocation (here a zero-size one) */
  int64_t big_zero[3] = {0, (int64_t)1 << 30, (int64_t)1 << 29};
  CHECK_OK(dama_empty(&t, 3, big_zero, DAMA_F32, CPU));
  CHECK(dama_numel(t) == 0);
  /* reshaping an empty tensor to such a shape is checked the same way */
  dama_tensor *r = NULL;
  CHECK_STATUS(dama_reshape(&r, t, 3, zero_huge), DAMA_ERR_SHAPE);
  CHECK_MSG(strstr(dama_last_error(), "reshape: shape [0, 4611686018427387904, 4] is too large") != NULL, "%s",
            dama_last_error());
  dama_tensor_release(t);
}

/* randperm(2^62): n * 8 + 8 wrapped to an 8-byte buffer that the shuffle then overran (SIGSEGV). */
DAMA_TEST(randperm_of_a_huge_n_fails_naming_n) {
  dama_tensor *t = NULL;
  CHECK_STATUS(dama_randperm(&t, (int64_t)1 << 62, DAMA_I64, NULL, (dama_device){DAMA_CPU, 0}), DAMA_ERR_SHAPE);
  CHECK_MSG(strstr(dama_last_error(), "randperm: n = 4611686018427387904") != NULL, "%s", dama_last_error());
  CHECK_OK(dama_randperm(&t, 5, DAMA_I64, NULL, (dama_device){DAMA_CPU, 0}));
  CHECK(dama_numel(t) == 5);
  dama_tensor_release(t);
}
