/* safetensors: round trips of every dtype, metadata, mmap views, corrupt files, atomic writes,
 * and the committed PyTorch fixtures. */
#define _GNU_SOURCE
#include "dama_test.h"
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const dama_device CPU = {DAMA_CPU, 0};

static void tmp_path(char *buf, size_t n, const char *name) {
  const char *dir = getenv("TMPDIR");
  snprintf(buf, n, "%s/dama_st_%ld_%s", dir && *dir ? dir : "/tmp", (long)getpid(), name);
}

static int write_bytes(const char *path, const void *p, size_t n) {
  FILE *fp = fopen(path, "wb");
  if (!fp) return 0;
  size_t w = fwrite(p, 1, n, fp);
  fclose(fp);
  return w == n;
}

static uint8_t *read_file(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return NULL;
  fseek(fp, 0, SEEK_END);
  long len = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *p = malloc((size_t)len + 1);
  if (p && fread(p, 1, (size_t)len, fp) != (size_t)len) { free(p); p = NULL; }
  fclose(fp);
  *n = (size_t)len;
  return p;
}

/* A file with the given header JSON and `data` bytes of data section filled with 0x11. */
static int write_st(const char *path, const char *header, size_t data) {
  size_t hl = strlen(header);
  size_t total = 8 + hl + data;
  uint8_t *buf = malloc(total);
  for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, header, hl);
  memset(buf + 8 + hl, 0x11, data);
  int ok = write_bytes(path, buf, total);
  free(buf);
  return ok;
}

DAMA_TEST(round_trip_every_dtype_and_metadata) {
  char path[512];
  tmp_path(path, sizeof path, "rt.safetensors");
  const dama_dtype dts[8] = {DAMA_F32, DAMA_F64, DAMA_BF16, DAMA_F16, DAMA_U8, DAMA_U16, DAMA_I32, DAMA_I64};
  const char *names[10] = {"w.f32", "w.f64", "w.bf16", "w.f16", "w.u8", "w.u16", "w.i32", "w.i64", "scalar", "empty"};
  dama_tensor *ts[10] = {0};
  int64_t shape[3] = {2, 3, 5};
  for (int k = 0; k < 8; k++) {
    dama_tensor *a = NULL;
    CHECK_OK(dama_arange(&a, 0, 30, 1, DAMA_F64, (dama_device){DAMA_CPU, 0}));
    dama_tensor *v = NULL;
    CHECK_OK(dama_view(&v, a, 3, shape));
    CHECK_OK(dama_to_dtype(&ts[k], v, dts[k]));
    dama_tensor_release(a);
    dama_tensor_release(v);
  }
  /* a non-contiguous input: the transpose of the f32 one is written contiguously */
  dama_tensor *tr = NULL;
  CHECK_OK(dama_transpose(&tr, ts[0], 0, 2));
  dama_tensor_release(ts[0]);
  ts[0] = tr;
  CHECK_OK(dama_full(&ts[8], 0, NULL, 3.25, DAMA_F32, CPU));
  int64_t zshape[2] = {4, 0};
  CHECK_OK(dama_zeros(&ts[9], 2, zshape, DAMA_F32, CPU));
  const char *mk[2] = {"format", "quote\"key"};
  const char *mv[2] = {"pt", "line\nbreak \\ \"q\""};
  CHECK_OK(dama_safetensors_save(path, 10, names, ts, 2, mk, mv));

  for (int mm = 0; mm < 2; mm++) {
    dama_safetensors *f = NULL;
    CHECK_OK(dama_safetensors_open(&f, path, mm));
    CHECK(dama_safetensors_count(f) == 10);
    CHECK(dama_safetensors_metadata_count(f) == 2);
    CHECK(strcmp(dama_safetensors_metadata_get(f, "format"), "pt") == 0);
    CHECK(strcmp(dama_safetensors_metadata_get(f, "quote\"key"), mv[1]) == 0);
    CHECK(dama_safetensors_metadata_get(f, "nope") == NULL);
    for (int k = 0; k < 10; k++) {
      dama_tensor *t = NULL, *want = NULL, *eq = NULL, *all = NULL;
      CHECK_OK(dama_safetensors_get(f, names[k], &t));
      CHECK(t->dtype == ts[k]->dtype);
      CHECK(t->ndim == ts[k]->ndim);
      for (int d = 0; d < t->ndim; d++) CHECK(t->shape[d] == ts[k]->shape[d]);
      if (dama_numel(t) > 0) {
        CHECK_OK(dama_contiguous(&want, ts[k]));
        CHECK(memcmp(dama_data_ptr(t), dama_data_ptr(want), (size_t)(dama_numel(t) * dama_dtype_size(t->dtype))) == 0);
      }
      (void)eq; (void)all;
      dama_tensor_release(want);
      dama_tensor_release(t);
    }
    dama_tensor *x = NULL;
    CHECK_STATUS(dama_safetensors_get(f, "absent", &x), DAMA_ERR_ARG);
    CHECK(strstr(dama_last_error(), "absent") && strstr(dama_last_error(), path));
    /* in mmap mode tensors outlive the handle */
    CHECK_OK(dama_safetensors_get(f, "w.i64", &x));
    dama_safetensors_close(f);
    double v = 0;
    CHECK_OK(dama_get(x, (int64_t[]){1, 2, 4}, &v));
    CHECK_CLOSE(v, 29, 0);
    CHECK_OK(dama_set(x, (int64_t[]){0, 0, 0}, 5)); /* copy-on-write: never reaches the file */
    dama_tensor_release(x);
  }
  dama_safetensors *f = NULL;
  CHECK_OK(dama_safetensors_open(&f, path, 1));
  dama_tensor *x = NULL;
  CHECK_OK(dama_safetensors_get(f, "w.i64", &x));
  double v = 1;
  CHECK_OK(dama_get(x, (int64_t[]){0, 0, 0}, &v));
  CHECK_CLOSE(v, 0, 0);
  dama_tensor_release(x);
  dama_safetensors_close(f);

  /* the official layout: header padded to 8, tensors ordered by element size then name, no gaps */
  size_t n = 0;
  uint8_t *bytes = read_file(path, &n);
  CHECK(bytes != NULL);
  uint64_t hl = 0;
  for (int i = 7; i >= 0; i--) hl = (hl << 8) | bytes[i];
  CHECK(hl % 8 == 0);
  bytes[8 + hl - 1] = 0;
  CHECK(strstr((char *)bytes + 8, "\"w.f64\":{\"dtype\":\"F64\",\"shape\":[2,3,5],\"data_offsets\":[0,240]}") != NULL);
  CHECK(strstr((char *)bytes + 8, "\"w.i64\":{\"dtype\":\"I64\",\"shape\":[2,3,5],\"data_offsets\":[240,480]}") != NULL);
  free(bytes);
  for (int k = 0; k < 10; k++) dama_tensor_release(ts[k]);
  unlink(path);
}

DAMA_TEST(bool_reads_as_u8_and_gaps_are_accepted) {
  char path[512];
  tmp_path(path, sizeof path, "bool.safetensors");
  /* 3 bools at [0,3), then a gap, then an F32 at [8,12) */
  CHECK(write_st(path, "{\"b\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[0,3]},"
                       "\"f\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[8,12]}}", 12));
  dama_safetensors *f = NULL;
  CHECK_OK(dama_safetensors_open(&f, path, 0));
  int32_t dt = -1, nd = -1;
  int64_t sh[8];
  CHECK_OK(dama_safetensors_info(f, dama_safetensors_find(f, "b"), &dt, &nd, sh));
  CHECK(dt == DAMA_U8 && nd == 1 && sh[0] == 3);
  dama_tensor *t = NULL;
  CHECK_OK(dama_safetensors_get(f, "f", &t));
  CHECK(t->ndim == 0 && t->dtype == DAMA_F32);
  dama_tensor_release(t);
  dama_safetensors_close(f);
  unlink(path);
}

/* Every corrupt file fails with a message naming the file (and the tensor where there is one). */
DAMA_TEST(corrupt_files_fail_cleanly) {
  char path[512];
  tmp_path(path, sizeof path, "bad.safetensors");
  struct { const char *header; size_t data; dama_status want; const char *needle; } cases[] = {
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, DAMA_ERR_FORMAT, "'a'"},        /* truncated data */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, DAMA_ERR_FORMAT, "'a'"},        /* size mismatch */
    {"{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, DAMA_ERR_FORMAT, "Q7"},          /* unknown dtype */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, DAMA_ERR_FORMAT, "overlap"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, DAMA_ERR_FORMAT, "'a'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, DAMA_ERR_FORMAT, "shape"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8, DAMA_ERR_FORMAT, "shape"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", 8, DAMA_ERR_FORMAT, "'a'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 8, DAMA_ERR_UNSUPPORTED, "dims"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, DAMA_ERR_FORMAT, "data_offsets"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", 8, DAMA_ERR_FORMAT, "data_offsets"},
    {"{\"a\":[1,2]}", 8, DAMA_ERR_FORMAT, "'a'"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, DAMA_ERR_FORMAT, "twice"},
    {"{\"__metadata__\":{\"k\":3}}", 0, DAMA_ERR_FORMAT, "metadata"},
    {"{\"__metadata__\":[]}", 0, DAMA_ERR_FORMAT, "metadata"},
    {"{\"a\":{\"dtype\":\"F32\",", 8, DAMA_ERR_FORMAT, "JSON"},
    {"[1,2,3]", 0, DAMA_ERR_FORMAT, "'{'"},
    {"{}xx", 0, DAMA_ERR_FORMAT, "after the header"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    CHECK(write_st(path, cases[k].header, cases[k].data));
    for (int mm = 0; mm < 2; mm++) {
      dama_safetensors *f = NULL;
      dama_status s = dama_safetensors_open(&f, path, mm);
      CHECK_MSG(s == cases[k].want, "case %zu: got %s (%s)", k, dama_status_name(s), dama_last_error());
      CHECK(f == NULL);
      CHECK_MSG(strstr(dama_last_error(), path) && strstr(dama_last_error(), cases[k].needle),
                "case %zu: message '%s' lacks '%s'", k, dama_last_error(), cases[k].needle);
    }
  }
  /* header length beyond the file, tiny files, an absent file */
  uint8_t hdr[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
  CHECK(write_bytes(path, hdr, 10));
  dama_safetensors *f = NULL;
  CHECK_STATUS(dama_safetensors_open(&f, path, 0), DAMA_ERR_FORMAT);
  CHECK(strstr(dama_last_error(), "header length 65535"));
  CHECK(write_bytes(path, hdr, 5));
  CHECK_STATUS(dama_safetensors_open(&f, path, 0), DAMA_ERR_FORMAT);
  CHECK(strstr(dama_last_error(), "too short"));
  unlink(path);
  CHECK_STATUS(dama_safetensors_open(&f, path, 0), DAMA_ERR_IO);

  /* random garbage and every truncation of a valid file: never a crash, never DAMA_OK for a cut file */
  char good[512];
  tmp_path(good, sizeof good, "good.safetensors");
  dama_tensor *a = NULL;
  int64_t sh[2] = {3, 4};
  CHECK_OK(dama_full(&a, 2, sh, 1.5, DAMA_F32, CPU));
  const char *nm[1] = {"a"};
  CHECK_OK(dama_safetensors_save(good, 1, nm, &a, 0, NULL, NULL));
  dama_tensor_release(a);
  size_t n = 0;
  uint8_t *bytes = read_file(good, &n);
  CHECK(bytes != NULL);
  for (size_t cut = 0; cut < n; cut++) {
    CHECK(write_bytes(path, bytes, cut));
    CHECK_MSG(dama_safetensors_open(&f, path, cut & 1) != DAMA_OK, "a file cut at %zu of %zu bytes opened", cut, n);
  }
  srand(5);
  for (int trial = 0; trial < 300; trial++) {
    uint8_t *mut = malloc(n);
    memcpy(mut, bytes, n);
    for (int k = 0; k < 4; k++) mut[8 + (size_t)rand() % (n - 8)] = (uint8_t)rand();
    CHECK(write_bytes(path, mut, n));
    if (dama_safetensors_open(&f, path, trial & 1) == DAMA_OK) {
      for (int64_t i = 0; i < dama_safetensors_count(f); i++) {
        dama_tensor *t = NULL;
        if (dama_safetensors_get_index(f, i, &t) == DAMA_OK) dama_tensor_release(t);
      }
      dama_safetensors_close(f);
    }
    free(mut);
  }
  free(bytes);
  unlink(path);
  unlink(good);
}

static int count_tmp_files(const char *dir, const char *prefix) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strstr(e->d_name, ".tmp.")) n++;
  closedir(d);
  return n;
}

DAMA_TEST(failed_write_leaves_old_file_intact) {
  char path[512];
  tmp_path(path, sizeof path, "atomic.safetensors");
  dama_tensor *a = NULL, *big = NULL, *bigt = NULL;
  int64_t sh[1] = {4};
  CHECK_OK(dama_full(&a, 1, sh, 7, DAMA_F32, CPU));
  const char *nm[2] = {"a", "big"};
  CHECK_OK(dama_safetensors_save(path, 1, nm, &a, 0, NULL, NULL));
  size_t n0 = 0;
  uint8_t *before = read_file(path, &n0);

  /* the write fails half-way: the non-contiguous tensor needs a copy, which the memory cap refuses */
  int64_t bs[2] = {512, 256};
  CHECK_OK(dama_zeros(&big, 2, bs, DAMA_F32, CPU));
  CHECK_OK(dama_transpose(&bigt, big, 0, 1));
  dama_tensor *two[2] = {a, bigt};
  int64_t in_use = 0, peak = 0, count = 0;
  dama_memory_stats(&in_use, &peak, &count);
  dama_memory_set_limit(in_use + 64 * 1024); /* a cap on the total held */
  dama_status s = dama_safetensors_save(path, 2, nm, two, 0, NULL, NULL);
  dama_memory_set_limit(0);
  CHECK(s == DAMA_ERR_OOM);
  CHECK(strstr(dama_last_error(), "'big'") && strstr(dama_last_error(), path));
  size_t n1 = 0;
  uint8_t *after = read_file(path, &n1);
  CHECK(after && n1 == n0 && memcmp(before, after, n0) == 0);
  const char *slash = strrchr(path, '/');
  char dir[512];
  snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
  CHECK(count_tmp_files(dir, slash + 1) == 0);

  /* bad arguments fail before anything is written */
  const char *dup[2] = {"a", "a"};
  dama_tensor *aa[2] = {a, a};
  CHECK_STATUS(dama_safetensors_save(path, 2, dup, aa, 0, NULL, NULL), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "twice"));
  const char *res[1] = {"__metadata__"};
  CHECK_STATUS(dama_safetensors_save(path, 1, res, &a, 0, NULL, NULL), DAMA_ERR_ARG);
  CHECK_STATUS(dama_safetensors_save("/nonexistent-dir/x.safetensors", 1, nm, &a, 0, NULL, NULL), DAMA_ERR_IO);
  CHECK(strstr(dama_last_error(), "/nonexistent-dir/x.safetensors"));

  /* a successful overwrite replaces it */
  dama_tensor *two_ok[2] = {a, big};
  CHECK_OK(dama_safetensors_save(path, 2, nm, two_ok, 0, NULL, NULL));
  dama_safetensors *f = NULL;
  CHECK_OK(dama_safetensors_open(&f, path, 0));
  CHECK(dama_safetensors_count(f) == 2);
  dama_safetensors_close(f);
  CHECK(count_tmp_files(dir, slash + 1) == 0);
  free(before);
  free(after);
  dama_tensor_release(a);
  dama_tensor_release(big);
  dama_tensor_release(bigt);
  unlink(path);
}

static dama_status get_scalar(dama_safetensors *f, const char *name, int64_t i, double *v) {
  dama_tensor *t = NULL;
  dama_status s = dama_safetensors_get(f, name, &t);
  if (s != DAMA_OK) return s;
  int64_t idx[8] = {0};
  idx[0] = i;
  s = dama_get(t, idx, v);
  dama_tensor_release(t);
  return s;
}

DAMA_TEST(committed_fixtures_parse) {
  const char *files[] = {"adamw_10", "vit_mae_fwd_bwd", "dama_step_union", "dama_step_per_sample", "timm_vit",
                         "timm_vit_avg"};
  const int64_t counts[] = {10 * 5 + 5 + 5 + 10 + 4, 74 + 72 + 13, -1, -1, -1, -1};
  for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/reference/fixtures/%s.safetensors", DAMA_SOURCE_ROOT, files[k]);
    dama_safetensors *f = NULL;
    CHECK_OK(dama_safetensors_open(&f, path, (int32_t)(k & 1)));
    if (counts[k] >= 0) CHECK_MSG(dama_safetensors_count(f) == counts[k], "%s: %lld tensors", files[k],
                                  (long long)dama_safetensors_count(f));
    CHECK(dama_safetensors_metadata_get(f, "meta") != NULL);
    CHECK(dama_safetensors_metadata_get(f, "meta")[0] == '{');
    for (int64_t i = 0; i < dama_safetensors_count(f); i++) {
      dama_tensor *t = NULL;
      CHECK_OK(dama_safetensors_get_index(f, i, &t));
      int64_t nonfinite = 0;
      CHECK_OK(dama_count_nonfinite(t, &nonfinite));
      CHECK(nonfinite == 0);
      dama_tensor_release(t);
    }
    double v = 0;
    if (k == 0) {
      static const double lrs[10] = {0, .002, .004, .006, .008, .01, .009045084971874737, .006545084971874737,
                                     .0034549150281252635, .0009549150281252633};
      for (int i = 0; i < 10; i++) { CHECK_OK(get_scalar(f, "lrs", i, &v)); CHECK_CLOSE(v, lrs[i], 1e-15); }
      int32_t dt, nd;
      int64_t sh[8];
      CHECK_OK(dama_safetensors_info(f, dama_safetensors_find(f, "x"), &dt, &nd, sh));
      CHECK(dt == DAMA_F32 && nd == 3 && sh[0] == 10 && sh[1] == 4 && sh[2] == 16);
    }
    if (k == 1) { CHECK_OK(get_scalar(f, "loss", 0, &v)); CHECK_CLOSE(v, 1.15718901, 1e-7); }
    if (k == 2) { CHECK_OK(get_scalar(f, "loss_total", 0, &v)); CHECK_CLOSE(v, 2.3589964, 1e-7); }
    if (k == 3) { CHECK_OK(get_scalar(f, "loss_total", 0, &v)); CHECK_CLOSE(v, 2.3657620, 1e-7); }
    if (k == 4) CHECK(dama_safetensors_find(f, "blocks.1.attn.qkv.weight") >= 0 && dama_safetensors_find(f, "norm.weight") >= 0);
    if (k == 5) CHECK(dama_safetensors_find(f, "fc_norm.weight") >= 0);
    dama_safetensors_close(f);
  }
}
