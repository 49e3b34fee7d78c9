/* .npy: round trips of every dtype and shape, mmap without copying, header variants written by numpy
 * (tests/fixtures/io), errors for truncated / fortran / structured files, and the real bbbc048 arrays. */
#define _GNU_SOURCE
#include "dama_test.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIXTURE(name) DAMA_SOURCE_ROOT "/tests/fixtures/io/" name

#define tmp_path dama_test_tmp_path   /* shared helpers of tests/c/dama_test.c */
#define data_dir dama_test_data_dir
static int write_bytes(const char *p, const void *d, size_t n) {
  FILE *f = fopen(p, "wb");
  if (!f) return 0;
  size_t w = fwrite(d, 1, n, f);
  fclose(f);
  return w == n;
}
static size_t read_bytes(const char *p, uint8_t *buf, size_t cap) {
  FILE *f = fopen(p, "rb");
  if (!f) return 0;
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return n;
}

static int same_tensor(const dama_tensor *a, const dama_tensor *b) {
  if (a->dtype != b->dtype || a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++) if (a->shape[i] != b->shape[i]) return 0;
  return memcmp(dama_data_ptr(a), dama_data_ptr(b), (size_t)(dama_numel(a) * dama_dtype_size((dama_dtype)a->dtype))) == 0;
}

DAMA_TEST(npy_roundtrip_every_dtype_and_shape) {
  dama_dtype dts[7] = {DAMA_U8, DAMA_U16, DAMA_I32, DAMA_I64, DAMA_F16, DAMA_F32, DAMA_F64};
  int64_t shapes[4][4] = {{3, 5, 4, 2}, {7, 0, 0, 0}, {0, 0, 0, 0}, {2, 0, 3, 0}};
  int ndims[4] = {4, 1, 0, 3};
  for (int di = 0; di < 7; di++)
    for (int si = 0; si < 4; si++) {
      dama_tensor *t = NULL, *a = NULL, *b = NULL;
      CHECK_OK(dama_empty(&t, ndims[si], shapes[si], dts[di], (dama_device){DAMA_CPU, 0}));
      uint8_t *p = dama_data_ptr(t);
      int64_t nb = dama_numel(t) * dama_dtype_size(dts[di]);
      for (int64_t i = 0; i < nb; i++) p[i] = (uint8_t)(i * 37 + di);
      const char *path = tmp_path("rt.npy");
      CHECK_OK(dama_npy_write(path, t));
      CHECK_OK(dama_npy_load(path, 0, &a));
      CHECK_MSG(same_tensor(t, a), "copy load differs: %s ndim %d", dama_dtype_name(dts[di]), ndims[si]);
      CHECK_OK(dama_npy_load(path, 1, &b));
      CHECK_MSG(same_tensor(t, b), "mmap load differs: %s ndim %d", dama_dtype_name(dts[di]), ndims[si]);
      /* numpy aligns the data to 64 bytes; so do we */
      int32_t dt, nd;
      int64_t shp[8], off;
      CHECK_OK(dama_npy_header(path, &dt, &nd, shp, &off));
      CHECK(dt == (int32_t)dts[di] && nd == ndims[si] && off % 64 == 0);
      dama_tensor_release(t); dama_tensor_release(a); dama_tensor_release(b);
    }
}

DAMA_TEST(npy_header_text_matches_numpy) {
  dama_tensor *t = NULL;
  int64_t s2[2] = {2, 3}, s1[1] = {5};
  char buf[256];
  CHECK_OK(dama_zeros(&t, 2, s2, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_npy_write(tmp_path("h.npy"), t));
  size_t n = read_bytes(tmp_path("h.npy"), (uint8_t *)buf, sizeof buf - 1);
  buf[n] = 0;
  CHECK(n == 128 + 24);
  CHECK(memcmp(buf, "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 69) == 0);
  CHECK(buf[127] == '\n');
  dama_tensor_release(t);
  CHECK_OK(dama_zeros(&t, 1, s1, DAMA_U8, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_npy_write(tmp_path("h.npy"), t));
  n = read_bytes(tmp_path("h.npy"), (uint8_t *)buf, sizeof buf - 1);
  buf[n] = 0;
  CHECK(strstr(buf + 10, "{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }") == buf + 10);
  dama_tensor_release(t);
}

DAMA_TEST(npy_writes_strided_views) {
  dama_tensor *t = NULL, *v = NULL, *c = NULL, *back = NULL;
  int64_t s[2] = {4, 6};
  CHECK_OK(dama_arange(&t, 0, 24, 1, DAMA_I32, (dama_device){DAMA_CPU, 0}));
  dama_tensor *m = NULL;
  CHECK_OK(dama_view(&m, t, 2, s));
  CHECK_OK(dama_transpose(&v, m, 0, 1));
  CHECK_OK(dama_npy_write(tmp_path("tr.npy"), v));
  CHECK_OK(dama_npy_load(tmp_path("tr.npy"), 0, &back));
  CHECK_OK(dama_contiguous(&c, v));
  CHECK(back->shape[0] == 6 && back->shape[1] == 4 && same_tensor(c, back));
  dama_tensor_release(t); dama_tensor_release(m); dama_tensor_release(v); dama_tensor_release(c);
  dama_tensor_release(back);
}

DAMA_TEST(npy_mmap_is_private_and_outlives_views) {
  dama_tensor *t = NULL, *m = NULL, *row = NULL, *again = NULL;
  int64_t s[2] = {100, 10};
  CHECK_OK(dama_zeros(&t, 2, s, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  float *p = dama_data_ptr(t);
  for (int i = 0; i < 1000; i++) p[i] = (float)i;
  CHECK_OK(dama_npy_write(tmp_path("m.npy"), t));
  CHECK_OK(dama_npy_load(tmp_path("m.npy"), 1, &m));
  CHECK(m->storage->owns_data == 0 && m->storage->release_fn != NULL);
  CHECK_OK(dama_select(&row, m, 0, 42));
  dama_tensor_release(m); /* the row view keeps the mapping alive */
  const float *r = dama_data_ptr(row);
  CHECK(r[0] == 420.0f && r[9] == 429.0f);
  ((float *)dama_data_ptr(row))[0] = -1.0f; /* copy-on-write: allowed, never reaches the file */
  dama_tensor_release(row);
  CHECK_OK(dama_npy_load(tmp_path("m.npy"), 1, &again));
  CHECK(((const float *)dama_data_ptr(again))[420] == 420.0f);
  dama_tensor_release(again);
  dama_tensor_release(t);
}

DAMA_TEST(npy_files_written_by_numpy) {
  dama_tensor *a = NULL, *b = NULL;
  const char *v[3] = {FIXTURE("v1_u2.npy"), FIXTURE("v2_u2.npy"), FIXTURE("v3_u2.npy")};
  CHECK_OK(dama_npy_load(v[0], 0, &a));
  CHECK(a->dtype == DAMA_U16 && a->ndim == 3 && a->shape[0] == 5 && a->shape[1] == 4 && a->shape[2] == 3);
  for (int i = 1; i < 3; i++)
    for (int mm = 0; mm < 2; mm++) {
      CHECK_OK(dama_npy_load(v[i], mm, &b));
      CHECK_MSG(same_tensor(a, b), "%s (mmap %d) differs from v1", v[i], mm);
      dama_tensor_release(b);
    }
  dama_tensor_release(a);
  /* big-endian float64: copied and swapped, also when mmap is asked for */
  for (int mm = 0; mm < 2; mm++) {
    CHECK_OK(dama_npy_load(FIXTURE("big_f8.npy"), mm, &a));
    CHECK(a->dtype == DAMA_F64 && a->shape[0] == 2 && a->shape[1] == 3);
    const double *d = dama_data_ptr(a);
    for (int i = 0; i < 6; i++) CHECK_MSG(d[i] == i / 3.0, "big-endian element %d: %g", i, d[i]);
    dama_tensor_release(a);
  }
  CHECK_OK(dama_npy_load(FIXTURE("bool.npy"), 1, &a));
  CHECK(a->dtype == DAMA_U8 && a->shape[0] == 3);
  const uint8_t *bo = dama_data_ptr(a);
  CHECK(bo[0] == 1 && bo[1] == 0 && bo[2] == 1);
  dama_tensor_release(a);
  CHECK_OK(dama_npy_load(FIXTURE("scalar_i8.npy"), 0, &a));
  CHECK(a->ndim == 0 && a->dtype == DAMA_I64 && *(const int64_t *)dama_data_ptr(a) == -42);
  dama_tensor_release(a);
  a = NULL;
  CHECK_STATUS(dama_npy_load(FIXTURE("fortran_f4.npy"), 1, &a), DAMA_ERR_UNSUPPORTED);
  CHECK(strstr(dama_last_error(), "fortran_order") && strstr(dama_last_error(), "fortran_f4.npy"));
  CHECK_STATUS(dama_npy_load(FIXTURE("structured.npy"), 0, &a), DAMA_ERR_UNSUPPORTED);
  CHECK(strstr(dama_last_error(), "structured") != NULL);
  CHECK_STATUS(dama_npy_load(FIXTURE("int8.npy"), 0, &a), DAMA_ERR_UNSUPPORTED);
  CHECK_MSG(strstr(dama_last_error(), "'|i1'") != NULL, "%s", dama_last_error());
  CHECK(a == NULL);
}

DAMA_TEST(npy_truncated_and_garbage_headers) {
  uint8_t buf[512];
  size_t n = read_bytes(FIXTURE("v1_u2.npy"), buf, sizeof buf);
  CHECK(n == 248);
  dama_tensor *t = NULL;
  const char *p = tmp_path("bad.npy");
  int errors = 0;
  for (size_t len = 0; len < n; len++) {
    CHECK(write_bytes(p, buf, len));
    for (int mm = 0; mm < 2; mm++) {
      dama_status st = dama_npy_load(p, mm, &t);
      CHECK_MSG(st != DAMA_OK, "truncated to %zu bytes loaded", len);
      CHECK(strstr(dama_last_error(), "bad.npy") != NULL);
      errors++;
    }
  }
  CHECK(write_bytes(p, buf, n - 1));
  CHECK_STATUS(dama_npy_load(p, 1, &t), DAMA_ERR_FORMAT);
  CHECK_MSG(strstr(dama_last_error(), "truncated") && strstr(dama_last_error(), "(5, 4, 3)"), "%s", dama_last_error());
  /* flipped header bytes: never a crash, errors name the file */
  uint32_t s = 5;
  for (int v = 0; v < 2000; v++) {
    uint8_t b2[512];
    memcpy(b2, buf, n);
    s = s * 1664525u + 1013904223u;
    b2[(s >> 8) % 128] = (uint8_t)(s >> 24);
    CHECK(write_bytes(p, b2, n));
    dama_status st = dama_npy_load(p, v & 1, &t);
    if (st == DAMA_OK) dama_tensor_release(t);
    else CHECK(strstr(dama_last_error(), "bad.npy") != NULL);
    t = NULL;
  }
  CHECK_STATUS(dama_npy_load("/nonexistent/x.npy", 1, &t), DAMA_ERR_IO);
  CHECK(strstr(dama_last_error(), "/nonexistent/x.npy") != NULL);
  dama_tensor *bf = NULL;
  int64_t s1 = 3;
  CHECK_OK(dama_zeros(&bf, 1, &s1, DAMA_BF16, (dama_device){DAMA_CPU, 0}));
  CHECK_STATUS(dama_npy_write(tmp_path("bf.npy"), bf), DAMA_ERR_UNSUPPORTED);
  dama_tensor_release(bf);
  (void)errors;
}

DAMA_TEST(npy_as_an_image) {
  dama_tensor *t = NULL, *back = NULL;
  int64_t s[3] = {6, 5, 2};
  CHECK_OK(dama_empty(&t, 3, s, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  uint16_t *p = dama_data_ptr(t);
  for (int i = 0; i < 60; i++) p[i] = (uint16_t)(i * 1000);
  CHECK_OK(dama_image_write(tmp_path("img.npy"), t));
  dama_image_info info;
  CHECK_OK(dama_image_info_read(tmp_path("img.npy"), &info));
  CHECK(info.format == DAMA_FMT_NPY && info.height == 6 && info.width == 5 && info.channels == 2 && info.dtype == DAMA_U16);
  CHECK_OK(dama_image_read(tmp_path("img.npy"), &back));
  CHECK(same_tensor(t, back));
  float f[60];
  CHECK_OK(dama_image_read_f32(tmp_path("img.npy"), f, 6, 5, 2));
  for (int i = 0; i < 60; i++) CHECK(f[i] == (float)p[i] / 65535.0f);
  CHECK_STATUS(dama_image_read_f32(tmp_path("img.npy"), f, 6, 5, 3), DAMA_ERR_SHAPE);
  dama_tensor_release(t);
  dama_tensor_release(back);
}

DAMA_TEST(npy_bbbc048_arrays) {
  const char *dd = data_dir();
  if (!dd) SKIP("shared/data is absent");
  char p[1024];
  dama_tensor *a = NULL, *l = NULL, *c = NULL;
  snprintf(p, sizeof p, "%s/bbbc048/labelled.npy", dd);
  CHECK_OK(dama_npy_load(p, 1, &a));
  CHECK_OK(dama_npy_load(p, 0, &c));
  CHECK(same_tensor(a, c));
  snprintf(p, sizeof p, "%s/bbbc048/labelled_labels.npy", dd);
  CHECK_OK(dama_npy_load(p, 1, &l));
  CHECK(l->dtype == DAMA_I32 && l->ndim == 1 && l->shape[0] == 2561);
  int counts[7] = {0};
  const int32_t *lab = dama_data_ptr(l);
  for (int i = 0; i < 2561; i++) if (lab[i] >= 0 && lab[i] < 7) counts[lab[i]]++;
  CHECK(counts[0] == 11 && counts[1] == 675 && counts[2] == 675 && counts[3] == 51 && counts[4] == 454 &&
        counts[5] == 675 && counts[6] == 20);
  dama_tensor_release(a); dama_tensor_release(l); dama_tensor_release(c);
  snprintf(p, sizeof p, "%s/bbbc048/pretrain.npy", dd);
  CHECK_OK(dama_npy_load(p, 1, &a));
  CHECK(a->shape[0] == 4499 && a->shape[3] == 3 && a->dtype == DAMA_U16);
  const uint16_t *x = dama_data_ptr(a);
  int mx = 0;
  for (int64_t i = 0; i < dama_numel(a); i++) if (x[i] > mx) mx = x[i];
  CHECK_MSG(mx == 3161, "max %d", mx);
  dama_tensor_release(a);
}

/* A header whose shape has a zero-size dim beside a huge one: the array is empty, but the strides of
 * (0, 2, 2^63 - 1) overflow int64_t (UBSan). The reader refuses it, naming the file and the field. */
static void write_npy_with_shape(const char *p, const char *shape) {
  char dict[128];
  int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
  while ((10 + n + 1) % 64) dict[n++] = ' ';
  dict[n++] = '\n';
  uint8_t head[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(n & 0xff), (uint8_t)(n >> 8)};
  FILE *f = fopen(p, "wb");
  if (!f) return;
  fwrite(head, 1, 10, f);
  fwrite(dict, 1, (size_t)n, f);
  fclose(f);
}

DAMA_TEST(npy_zero_dim_beside_huge_dim_is_refused) {
  const char *p = tmp_path("zero_huge.npy");
  dama_tensor *t = NULL;
  const char *shapes[] = {"(0, 2, 9223372036854775807)", "(0, 4611686018427387904, 4)", "(9223372036854775807, 0)"};
  for (int i = 0; i < 3; i++) {
    write_npy_with_shape(p, shapes[i]);
    for (int mm = 0; mm < 2; mm++) {
      CHECK_STATUS(dama_npy_load(p, mm, &t), DAMA_ERR_FORMAT);
      CHECK_MSG(strstr(dama_last_error(), "zero_huge.npy") && strstr(dama_last_error(), "'shape'") &&
                    strstr(dama_last_error(), shapes[i]), "%s", dama_last_error());
    }
    int32_t nd = 0;
    CHECK_STATUS(dama_npy_header(p, NULL, &nd, NULL, NULL), DAMA_ERR_FORMAT);
  }
  /* an honest empty array still loads */
  write_npy_with_shape(p, "(0, 3)");
  CHECK_OK(dama_npy_load(p, 0, &t));
  CHECK(t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 3);
  dama_tensor_release(t);
}
