/* The device seam with a backend that is still being written (as cuda/ is): a fake `cuda` table with host memory,
 * copies, and no kernels or only some. Every op whose slot is NULL must be refused with DAMA_ERR_DEVICE
 * "<op>: not implemented on cuda:0 yet" (never called); copies and views still work; an absent device names why;
 * an out-of-memory error names the device's free and total bytes. */
#include "dama_test.h"
#include "core/backend.h"
#include <stdlib.h>
#include <string.h>

static int32_t fake_count_value = 1;
static int64_t fake_limit = 1 << 20;   /* allocations above this fail, as an out-of-memory GPU would */
static int32_t fake_count(void) { return fake_count_value; }
static void *fake_alloc(int32_t index, int64_t nbytes) {
  (void)index;
  return nbytes > fake_limit ? NULL : malloc(nbytes > 0 ? (size_t)nbytes : 1);
}
static void fake_free(int32_t index, void *p, int64_t nbytes) { (void)index; (void)nbytes; free(p); }
static dama_status fake_copy(int32_t index, void *dst, const void *src, int64_t nbytes) {
  (void)index;
  if (nbytes > 0) memmove(dst, src, (size_t)nbytes);
  return DAMA_OK;
}
static dama_status fake_sync(int32_t index) { (void)index; return DAMA_OK; }
static void *fake_kernel_ptr(void *data) { return data; }
static dama_status fake_memory_info(int32_t index, int64_t *cached, int64_t *total, int64_t *free_bytes) {
  (void)index;
  *cached = 512; *total = 4 << 20; *free_bytes = 3 << 20;
  return DAMA_OK;
}
static const char *fake_info(void) { return "fake cuda for tests"; }
static const char *fake_reason(void) { return "fake: no driver here"; }

/* a table with only fill_ (contiguous f32 is all this test needs) */
static dama_status fake_fill_(dama_tensor *a, double value) {
  if (a->dtype != DAMA_F32 || !dama_is_contiguous(a)) return dama_error(DAMA_ERR_UNSUPPORTED, "fake fill_: f32 only");
  float *p = dama_kernel_ptr(a);
  for (int64_t i = 0; i < dama_numel(a); i++) p[i] = (float)value;
  return DAMA_OK;
}
static dama_backend_ops partial_ops;

static dama_backend fake = {
  .name = "cuda", .type = DAMA_CUDA, .host_visible = 0, .device_count = fake_count,
  .alloc = fake_alloc, .free = fake_free, .copy_h2d = fake_copy, .copy_d2h = fake_copy, .copy_d2d = fake_copy,
  .synchronize = fake_sync, .kernel_ptr = fake_kernel_ptr, .ops = NULL, .memory_info = fake_memory_info,
  .info = fake_info, .unavailable_reason = fake_reason,
};

static const dama_device CUDA0 = {DAMA_CUDA, 0};

static int says(const char *text) { return strstr(dama_last_error(), text) != NULL; }

DAMA_TEST(null_table_refuses_every_op_by_name) {
  fake.ops = NULL;
  dama_backend_register(&fake);
  CHECK(dama_device_count(DAMA_CUDA) == 1);
  int64_t shape[2] = {2, 3};
  dama_tensor *h = NULL, *d = NULL, *out = NULL, *back = NULL;
  CHECK_OK(dama_full(&h, 2, shape, 1.5, DAMA_F32, dama_cpu()));
  /* storage and copies need no kernel */
  CHECK_OK(dama_to_device(&d, h, CUDA0));
  CHECK_OK(dama_to_device(&back, d, dama_cpu()));
  double v = 0;
  int64_t ix[2] = {1, 2};
  CHECK_OK(dama_get(back, ix, &v));
  CHECK(v == 1.5);
  /* the tensor-level ops */
  CHECK_STATUS(dama_binary(&out, DAMA_ADD, d, d), DAMA_ERR_DEVICE);
  CHECK_MSG(says("add: not implemented on cuda:0 yet"), "%s", dama_last_error());
  CHECK(out == NULL);
  CHECK_STATUS(dama_fill_(d, 0), DAMA_ERR_DEVICE);
  CHECK_MSG(says("fill_: not implemented on cuda:0 yet"), "%s", dama_last_error());
  CHECK_STATUS(dama_zeros(&out, 2, shape, DAMA_F32, CUDA0), DAMA_ERR_DEVICE);
  CHECK_MSG(says("not implemented on cuda:0 yet"), "%s", dama_last_error());
  CHECK_STATUS(dama_matmul(&out, d, d), DAMA_ERR_DEVICE);
  CHECK_MSG(says("matmul: not implemented on cuda:0 yet"), "%s", dama_last_error());
  dama_tensor *two[2] = {d, d};
  CHECK_STATUS(dama_cat(&out, 2, two, 0), DAMA_ERR_DEVICE);
  CHECK_MSG(says("cat: not implemented on cuda:0 yet"), "%s", dama_last_error());
  /* a dtype change goes through the copy kernel; a same-dtype contiguous copy does not */
  CHECK_STATUS(dama_to_dtype(&out, d, DAMA_F64), DAMA_ERR_DEVICE);
  CHECK_MSG(says("copy: not implemented on cuda:0 yet"), "%s", dama_last_error());
  CHECK_OK(dama_clone(&out, d));
  dama_tensor_release(out); out = NULL;
  /* the raw NN entries */
  int64_t n6 = 6;
  dama_tensor *flat = NULL, *g = NULL;
  CHECK_OK(dama_empty(&flat, 1, &n6, DAMA_F32, CUDA0));
  CHECK_OK(dama_empty(&g, 1, &n6, DAMA_F32, CUDA0));
  CHECK_STATUS(dama_nn_gelu_forward(g, flat, 6), DAMA_ERR_DEVICE);
  CHECK_MSG(says("gelu_forward: not implemented on cuda:0 yet"), "%s", dama_last_error());
  CHECK_STATUS(dama_nn_ema_update(g, flat, 6, 0.9f), DAMA_ERR_DEVICE);
  CHECK_MSG(says("ema_update: not implemented on cuda:0 yet"), "%s", dama_last_error());
  /* the one-device rule still comes first */
  CHECK_STATUS(dama_binary(&out, DAMA_ADD, d, h), DAMA_ERR_DEVICE);
  CHECK_MSG(says("is on cpu but tensor 'a' is on cuda:0"), "%s", dama_last_error());
  dama_tensor_release(g); dama_tensor_release(flat);
  dama_tensor_release(back); dama_tensor_release(d); dama_tensor_release(h);
}

DAMA_TEST(partial_table_runs_what_it_has_and_refuses_the_rest) {
  memset(&partial_ops, 0, sizeof partial_ops);
  partial_ops.fill_ = fake_fill_;
  fake.ops = &partial_ops;
  dama_backend_register(&fake);
  int64_t shape[1] = {4};
  dama_tensor *z = NULL, *out = NULL, *h = NULL;
  CHECK_OK(dama_zeros(&z, 1, shape, DAMA_F32, CUDA0));
  CHECK_OK(dama_to_device(&h, z, dama_cpu()));
  double v = -1;
  int64_t ix = 3;
  CHECK_OK(dama_get(h, &ix, &v));
  CHECK(v == 0);
  CHECK_STATUS(dama_unary(&out, DAMA_EXP, z), DAMA_ERR_DEVICE);
  CHECK_MSG(says("exp: not implemented on cuda:0 yet"), "%s", dama_last_error());
  int32_t dim = 0;
  CHECK_STATUS(dama_reduce(&out, DAMA_RSUM, z, 1, &dim, 0, 0, 0), DAMA_ERR_DEVICE);
  CHECK_MSG(says("not implemented on cuda:0 yet"), "%s", dama_last_error());
  dama_tensor_release(h); dama_tensor_release(z);
  fake.ops = NULL;
}

DAMA_TEST(absent_device_names_why) {
  fake_count_value = 0;
  dama_backend_register(&fake);
  CHECK_STATUS(dama_device_check(CUDA0), DAMA_ERR_DEVICE);
  CHECK_MSG(says("device cuda:0 is not available (0 cuda devices: fake: no driver here)"), "%s", dama_last_error());
  const char *why = dama_device_unavailable_reason(DAMA_CUDA);
  CHECK(why && strcmp(why, "fake: no driver here") == 0);
  CHECK(strcmp(dama_backend_info(DAMA_CUDA), "fake cuda for tests") == 0);
  dama_tensor *t = NULL;
  int64_t n = 2;
  CHECK_STATUS(dama_zeros(&t, 1, &n, DAMA_F32, CUDA0), DAMA_ERR_DEVICE);
  CHECK_MSG(says("fake: no driver here"), "%s", dama_last_error());
  dama_device_props props;
  CHECK_STATUS(dama_device_properties(CUDA0, &props), DAMA_ERR_DEVICE);
  fake_count_value = 1;
  CHECK(dama_device_unavailable_reason(DAMA_CUDA) == NULL);
  /* the built-in devices have a reason of NULL and describe themselves by name */
  CHECK(dama_device_unavailable_reason(DAMA_CPU) == NULL);
  CHECK(strcmp(dama_backend_info(DAMA_CPU), "cpu") == 0);
  CHECK_OK(dama_device_properties(dama_cpu(), &props));
  CHECK(strcmp(props.name, "cpu") == 0);
}

DAMA_TEST(out_of_memory_names_free_and_total) {
  fake_count_value = 1;
  fake.ops = NULL;
  dama_backend_register(&fake);
  dama_tensor *t = NULL;
  int64_t n = 1 << 20;   /* 4 MiB of f32, over the fake's 1 MiB */
  CHECK_STATUS(dama_empty(&t, 1, &n, DAMA_F32, CUDA0), DAMA_ERR_OOM);
  CHECK_MSG(says("out of memory allocating 4194304 bytes of tensor memory on cuda:0 (3145728 bytes free of "
                 "4194304 on the device; 512 cached by dama)"), "%s", dama_last_error());
  CHECK(t == NULL);
}
