/* TIFF reading and writing: round trips for every writer layout, windows, OME channel names, corrupt files,
 * thread safety, and the real data in shared/data (skipped when that folder is absent). */
#define _GNU_SOURCE
#include "dama_test.h"

#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

#define tmp_path dama_test_tmp_path   /* shared helpers of tests/c/dama_test.c */
#define data_dir dama_test_data_dir

/* A deterministic H x W x C image with every byte varying (u8/u16/f32/f64/i32). */
static dama_tensor *pattern(int64_t H, int64_t W, int64_t C, dama_dtype dt) {
  dama_tensor *t = NULL;
  int64_t shape[3] = {H, W, C};
  if (dama_empty(&t, C > 0 ? 3 : 2, shape, dt, (dama_device){DAMA_CPU, 0}) != DAMA_OK) return NULL;
  int64_t n = dama_numel(t);
  void *p = dama_data_ptr(t);
  uint32_t s = 12345;
  for (int64_t i = 0; i < n; i++) {
    s = s * 1664525u + 1013904223u;
    switch (dt) {
    case DAMA_U8: ((uint8_t *)p)[i] = (uint8_t)(s >> 24); break;
    case DAMA_U16: ((uint16_t *)p)[i] = (uint16_t)(s >> 16); break;
    case DAMA_F32: ((float *)p)[i] = (float)(s >> 8) / 1024.0f - 3000.0f; break;
    case DAMA_F64: ((double *)p)[i] = (double)s / 7.0 - 1e8; break;
    default: ((int32_t *)p)[i] = (int32_t)s; break;
    }
  }
  return t;
}

static int same_tensor(const dama_tensor *a, const dama_tensor *b) {
  if (a->dtype != b->dtype || dama_numel(a) != dama_numel(b)) return 0;
  return memcmp(dama_data_ptr(a), dama_data_ptr(b), (size_t)(dama_numel(a) * dama_dtype_size((dama_dtype)a->dtype))) == 0;
}

static int64_t file_size(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

static int write_bytes(const char *p, const void *d, size_t n) {
  FILE *f = fopen(p, "wb");
  if (!f) return 0;
  size_t w = fwrite(d, 1, n, f);
  fclose(f);
  return w == n;
}

static void *read_bytes(const char *p, size_t *n) {
  FILE *f = fopen(p, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *d = malloc((size_t)sz);
  *n = fread(d, 1, (size_t)sz, f);
  fclose(f);
  return d;
}

/* ---- round trips ---- */

DAMA_TEST(tiff_roundtrip_every_layout) {
  dama_dtype dts[5] = {DAMA_U8, DAMA_U16, DAMA_F32, DAMA_F64, DAMA_I32};
  int n_written = 0;
  dama_io_set_fsync(0); /* ~170 files; the other tests keep the default fsync path covered */
  for (int di = 0; di < 5; di++)
    for (int layout = 0; layout < 3; layout++)
      for (int comp = 0; comp < 3; comp++)
        for (int tiled = 0; tiled < 2; tiled++)
          for (int big = 0; big < 2; big++) {
            if (di >= 3 && (comp == 2 || big)) continue; /* keep the run short for the rarer dtypes */
            dama_tensor *img = pattern(37, 53, 3, dts[di]), *back = NULL;
            CHECK(img != NULL);
            const char *p = tmp_path("rt.tif");
            CHECK_OK(dama_tiff_write(p, img, layout, comp, tiled ? 16 : 0, big, NULL));
            dama_image_info info;
            CHECK_OK(dama_image_info_read(p, &info));
            CHECK(info.format == DAMA_FMT_TIFF && info.width == 53 && info.height == 37 && info.channels == 3);
            CHECK_MSG(info.planar == layout && info.tiled == tiled && info.bigtiff == big && info.dtype == (int)dts[di],
                      "info mismatch: planar %d tiled %d bigtiff %d dtype %d for layout %d tiled %d big %d dtype %d",
                      info.planar, info.tiled, info.bigtiff, info.dtype, layout, tiled, big, (int)dts[di]);
            CHECK(info.n_pages == (layout == DAMA_TIFF_PAGES ? 3 : 1));
            if (tiled) CHECK(info.tile_w == 16 && info.tile_h == 16);
            CHECK_OK(dama_image_read(p, &back));
            CHECK(back->ndim == 3 && back->shape[0] == 37 && back->shape[1] == 53 && back->shape[2] == 3);
            CHECK_MSG(same_tensor(img, back), "pixels differ: dtype %s layout %d comp %d tiled %d big %d",
                      dama_dtype_name(dts[di]), layout, comp, tiled, big);
            dama_tensor_release(img);
            dama_tensor_release(back);
            n_written++;
          }
  dama_io_set_fsync(1);
  CHECK(n_written > 100);
}

DAMA_TEST(tiff_roundtrip_single_channel_2d_and_default_tiles) {
  dama_tensor *img = pattern(300, 270, 0, DAMA_U16), *back = NULL;
  CHECK(img && img->ndim == 2);
  const char *p = tmp_path("one.tif");
  CHECK_OK(dama_tiff_write(p, img, DAMA_TIFF_PAGES, DAMA_TIFF_LZW, 1, 0, NULL));
  dama_image_info info;
  CHECK_OK(dama_image_info_read(p, &info));
  CHECK(info.channels == 1 && info.tiled && info.tile_w == 256 && info.n_pages == 1);
  CHECK_OK(dama_image_read(p, &back));
  CHECK(back->ndim == 3 && back->shape[2] == 1);
  CHECK(same_tensor(img, back));
  dama_tensor_release(back);
  /* dama_image_write picks the TIFF writer by extension */
  CHECK_OK(dama_image_write(tmp_path("ext.TIFF"), img));
  CHECK_OK(dama_image_read(tmp_path("ext.TIFF"), &back));
  CHECK(same_tensor(img, back));
  dama_tensor_release(back);
  CHECK_STATUS(dama_image_write(tmp_path("x.jpg2"), img), DAMA_ERR_ARG);
  dama_tensor_release(img);
}

DAMA_TEST(tiff_write_strided_view) {
  dama_tensor *img = pattern(20, 30, 4, DAMA_U16), *v = NULL, *c = NULL, *back = NULL;
  int32_t perm[3] = {1, 0, 2};
  CHECK_OK(dama_permute(&v, img, perm)); /* 30 x 20 x 4, not contiguous */
  CHECK_OK(dama_tiff_write(tmp_path("view.tif"), v, 0, 1, 0, 0, NULL));
  CHECK_OK(dama_image_read(tmp_path("view.tif"), &back));
  CHECK_OK(dama_contiguous(&c, v));
  CHECK(back->shape[0] == 30 && back->shape[1] == 20 && same_tensor(c, back));
  dama_tensor_release(img); dama_tensor_release(v); dama_tensor_release(c); dama_tensor_release(back);
}

DAMA_TEST(tiff_writer_rejects_bad_arguments) {
  dama_tensor *img = pattern(8, 8, 3, DAMA_U16), *bf = NULL;
  const char *p = tmp_path("bad.tif");
  CHECK_STATUS(dama_tiff_write(p, img, 3, 0, 0, 0, NULL), DAMA_ERR_ARG);
  CHECK_STATUS(dama_tiff_write(p, img, 0, 7, 0, 0, NULL), DAMA_ERR_ARG);
  CHECK_STATUS(dama_tiff_write(p, img, 0, 0, 20, 0, NULL), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "bad.tif") != NULL);
  CHECK_OK(dama_to_dtype(&bf, img, DAMA_BF16));
  CHECK_STATUS(dama_tiff_write(p, bf, 0, 0, 0, 0, NULL), DAMA_ERR_DTYPE);
  const char *names[3] = {"a", "b\nc", "d"};
  CHECK_STATUS(dama_tiff_write(p, img, 0, 0, 0, 0, names), DAMA_ERR_ARG);
  CHECK_STATUS(dama_tiff_write("/nonexistent_dir_xyz/a.tif", img, 0, 0, 0, 0, NULL), DAMA_ERR_IO);
  CHECK(strstr(dama_last_error(), "/nonexistent_dir_xyz/a.tif") != NULL);
  CHECK(file_size(p) < 0); /* nothing half-written left behind */
  dama_tensor_release(img);
  dama_tensor_release(bf);
}

/* ---- scaled f32 reads (the loader's hot path) ---- */

DAMA_TEST(tiff_read_f32_scales_like_the_reference) {
  dama_dtype dts[3] = {DAMA_U8, DAMA_U16, DAMA_F32};
  for (int di = 0; di < 3; di++)
    for (int layout = 0; layout < 3; layout++)
      for (int tiled = 0; tiled < 2; tiled++) {
        dama_tensor *img = pattern(41, 29, 7, dts[di]), *t = NULL;
        const char *p = tmp_path("f32.tif");
        CHECK_OK(dama_tiff_write(p, img, layout, DAMA_TIFF_DEFLATE, tiled ? 16 : 0, 0, NULL));
        int64_t n = 41 * 29 * 7;
        float *dst = malloc(sizeof(float) * (size_t)n);
        CHECK_OK(dama_image_read_f32(p, dst, 41, 29, 7));
        CHECK_OK(dama_image_read_f32_tensor(p, 7, &t));
        CHECK(t->dtype == DAMA_F32 && t->shape[0] == 41 && t->shape[1] == 29 && t->shape[2] == 7);
        const float *tf = dama_data_ptr(t);
        const void *src = dama_data_ptr(img);
        for (int64_t i = 0; i < n; i++) {
          float want = dts[di] == DAMA_U8 ? (float)((const uint8_t *)src)[i] / 255.0f
                       : dts[di] == DAMA_U16 ? (float)((const uint16_t *)src)[i] / 65535.0f
                                             : ((const float *)src)[i];
          CHECK_MSG(memcmp(&dst[i], &want, 4) == 0 && memcmp(&tf[i], &want, 4) == 0,
                    "element %lld: %.9g / %.9g, want %.9g (dtype %s layout %d tiled %d)", (long long)i, dst[i], tf[i],
                    want, dama_dtype_name(dts[di]), layout, tiled);
        }
        free(dst);
        dama_tensor_release(img);
        dama_tensor_release(t);
      }
}

DAMA_TEST(tiff_read_f32_checks_shape_and_names_the_file) {
  dama_tensor *img = pattern(10, 12, 3, DAMA_U16), *t = NULL;
  const char *p = tmp_path("shape.tif");
  CHECK_OK(dama_tiff_write(p, img, 0, 1, 0, 0, NULL));
  float dst[10 * 12 * 7];
  CHECK_STATUS(dama_image_read_f32(p, dst, 10, 12, 7), DAMA_ERR_SHAPE);
  const char *e = dama_last_error();
  CHECK_MSG(strstr(e, "shape.tif") && strstr(e, "expected 7 channels, got 3"), "message: %s", e);
  CHECK_STATUS(dama_image_read_f32(p, dst, 12, 10, 3), DAMA_ERR_SHAPE);
  CHECK_MSG(strstr(dama_last_error(), "expected 12x10") != NULL, "message: %s", dama_last_error());
  CHECK_STATUS(dama_image_read_f32_tensor(p, 7, &t), DAMA_ERR_SHAPE);
  CHECK(t == NULL);
  CHECK_OK(dama_image_read_f32_tensor(p, 0, &t));
  dama_tensor_release(t);
  dama_tensor *i32 = pattern(4, 4, 1, DAMA_I32);
  CHECK_OK(dama_tiff_write(tmp_path("i32.tif"), i32, 0, 0, 0, 0, NULL));
  CHECK_STATUS(dama_image_read_f32_tensor(tmp_path("i32.tif"), 0, &t), DAMA_ERR_DTYPE);
  dama_tensor_release(i32);
  dama_tensor_release(img);
}

/* ---- windows ---- */

static int window_matches(const dama_tensor *full, const dama_tensor *win, int64_t x, int64_t y, int n,
                          const int32_t *ch) {
  int64_t C = full->shape[2], W = full->shape[1];
  int es = dama_dtype_size((dama_dtype)full->dtype);
  const uint8_t *f = dama_data_ptr(full), *w = dama_data_ptr(win);
  for (int64_t r = 0; r < win->shape[0]; r++)
    for (int64_t c = 0; c < win->shape[1]; c++)
      for (int k = 0; k < n; k++) {
        int64_t src = ((y + r) * W + (x + c)) * C + (ch ? ch[k] : k);
        int64_t dst = (r * win->shape[1] + c) * n + k;
        if (memcmp(f + src * es, w + dst * es, (size_t)es) != 0) return 0;
      }
  return 1;
}

DAMA_TEST(tiff_window_reads_of_a_tiled_bigtiff) {
  /* 3000 x 2000 x 7 uint16, BigTIFF, 256-tiles, deflate (as the brief's large-slide case, scaled down). */
  int64_t H = 2000, W = 3000, C = 7;
  dama_tensor *img = NULL, *full = NULL;
  int64_t shape[3] = {H, W, C};
  CHECK_OK(dama_empty(&img, 3, shape, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  uint16_t *p = dama_data_ptr(img);
  for (int64_t r = 0; r < H; r++)
    for (int64_t c = 0; c < W; c++)
      for (int64_t k = 0; k < C; k++) p[(r * W + c) * C + k] = (uint16_t)(r * 7 + c * 13 + k * 1000 + ((r * c) & 15));
  const char *path = tmp_path("big.tif");
  CHECK_OK(dama_tiff_write(path, img, DAMA_TIFF_INTERLEAVED, DAMA_TIFF_DEFLATE, 256, 1, NULL));
  dama_image_info info;
  CHECK_OK(dama_image_info_read(path, &info));
  CHECK(info.bigtiff && info.tiled && info.width == W && info.height == H && info.channels == C);
  CHECK_OK(dama_image_read(path, &full));
  CHECK(same_tensor(img, full));
  {
    /* uncompressed, 84 MB: over the 64 MiB above which files are opened by path, not read whole */
    dama_tensor *again = NULL;
    const char *raw = tmp_path("big_raw.tif");
    dama_io_set_fsync(0);
    CHECK_OK(dama_tiff_write(raw, img, DAMA_TIFF_INTERLEAVED, DAMA_TIFF_NONE, 0, 0, NULL));
    dama_io_set_fsync(1);
    CHECK(file_size(raw) > (64 << 20));
    CHECK_OK(dama_image_read(raw, &again));
    CHECK(same_tensor(img, again));
    dama_tensor_release(again);
    unlink(raw);
  }
  struct { int64_t x, y, w, h; } wins[] = {{0, 0, 1, 1}, {0, 0, 700, 300}, {255, 255, 2, 2}, {1000, 700, 128, 128},
                                           {2999, 1999, 1, 1}, {2800, 1900, 200, 100}, {17, 1500, 1000, 3}};
  int32_t sel[3] = {6, 0, 3};
  for (size_t i = 0; i < sizeof wins / sizeof wins[0]; i++) {
    dama_tensor *w = NULL;
    CHECK_OK(dama_tiff_read_window(path, wins[i].x, wins[i].y, wins[i].w, wins[i].h, 0, NULL, &w));
    CHECK(w->shape[0] == wins[i].h && w->shape[1] == wins[i].w && w->shape[2] == C && w->dtype == DAMA_U16);
    CHECK_MSG(window_matches(full, w, wins[i].x, wins[i].y, (int)C, NULL), "window %zu differs", i);
    dama_tensor_release(w);
    CHECK_OK(dama_tiff_read_window(path, wins[i].x, wins[i].y, wins[i].w, wins[i].h, 3, sel, &w));
    CHECK(w->shape[2] == 3);
    CHECK_MSG(window_matches(full, w, wins[i].x, wins[i].y, 3, sel), "window %zu with channels 6,0,3 differs", i);
    dama_tensor_release(w);
  }
  /* the other layouts, strips and tiles, on a smaller image */
  dama_tensor *rows = NULL, *small = NULL;
  CHECK_OK(dama_narrow(&rows, full, 0, 100, 100));
  CHECK_OK(dama_narrow(&small, rows, 1, 500, 1500));
  dama_tensor_release(rows);
  dama_tensor *sc = NULL;
  CHECK_OK(dama_contiguous(&sc, small));
  for (int layout = 0; layout < 3; layout++)
    for (int tiled = 0; tiled < 2; tiled++) {
      const char *p2 = tmp_path("win.tif");
      CHECK_OK(dama_tiff_write(p2, sc, layout, DAMA_TIFF_LZW, tiled ? 64 : 0, 0, NULL));
      dama_tensor *w = NULL;
      CHECK_OK(dama_tiff_read_window(p2, 1000, 27, 401, 60, 3, sel, &w));
      CHECK_MSG(window_matches(sc, w, 1000, 27, 3, sel), "layout %d tiled %d window differs", layout, tiled);
      dama_tensor_release(w);
    }
  /* errors: out of range, bad channel */
  dama_tensor *w = NULL;
  CHECK_STATUS(dama_tiff_read_window(path, 2990, 0, 20, 5, 0, NULL, &w), DAMA_ERR_INDEX);
  CHECK_MSG(strstr(dama_last_error(), "big.tif") && strstr(dama_last_error(), "outside"), "%s", dama_last_error());
  int32_t bad = 7;
  CHECK_STATUS(dama_tiff_read_window(path, 0, 0, 5, 5, 1, &bad, &w), DAMA_ERR_INDEX);
  CHECK_MSG(strstr(dama_last_error(), "7 channels") != NULL, "%s", dama_last_error());
  CHECK(w == NULL);
  dama_tensor_release(small); dama_tensor_release(sc);
  dama_tensor_release(img); dama_tensor_release(full);
}

/* ---- OME-XML channel names ---- */

DAMA_TEST(tiff_ome_channel_names_round_trip) {
  dama_tensor *img = pattern(16, 16, 4, DAMA_U16);
  const char *names[4] = {"DNA", "Bright field", "a&b <c> \"q\" 'x'", "CD8a"};
  char buf[512];
  int32_t n = 0;
  for (int layout = 0; layout < 3; layout++) {
    const char *p = tmp_path("ome.ome.tif");
    CHECK_OK(dama_tiff_write(p, img, layout, 1, 0, 0, names));
    CHECK_OK(dama_ome_channel_names(p, buf, sizeof buf, &n));
    CHECK(n == 4);
    CHECK_MSG(strcmp(buf, "DNA\nBright field\na&b <c> \"q\" 'x'\nCD8a") == 0, "names: %s", buf);
    int32_t idx[8], k = 0;
    CHECK_OK(dama_ome_channel_indices(p, " CD8a, DNA ,a&b <c> \"q\" 'x'", idx, 8, &k));
    CHECK(k == 3 && idx[0] == 3 && idx[1] == 0 && idx[2] == 2);
    CHECK_STATUS(dama_ome_channel_indices(p, "DNA,CD99", idx, 8, &k), DAMA_ERR_ARG);
    const char *e = dama_last_error();
    CHECK_MSG(strstr(e, "CD99") && strstr(e, "DNA,Bright field,") && strstr(e, "ome.ome.tif"), "message: %s", e);
    CHECK_STATUS(dama_ome_channel_indices(p, "DNA,CD8a", idx, 1, &k), DAMA_ERR_ARG);
    CHECK_STATUS(dama_ome_channel_names(p, buf, 10, &n), DAMA_ERR_ARG);
    /* the pixels are unchanged by the description */
    dama_tensor *back = NULL;
    CHECK_OK(dama_image_read(p, &back));
    CHECK(same_tensor(img, back));
    dama_tensor_release(back);
  }
  CHECK_OK(dama_tiff_write(tmp_path("plain.tif"), img, 0, 0, 0, 0, NULL));
  CHECK_OK(dama_ome_channel_names(tmp_path("plain.tif"), buf, sizeof buf, &n));
  CHECK(n == 0 && buf[0] == 0);
  int32_t idx[4], k;
  CHECK_STATUS(dama_ome_channel_indices(tmp_path("plain.tif"), "DNA", idx, 4, &k), DAMA_ERR_FORMAT);
  dama_tensor_release(img);
}

/* ---- bad files never crash and always name the file ---- */

DAMA_TEST(tiff_missing_empty_and_foreign_files) {
  dama_tensor *t = NULL;
  dama_image_info info;
  CHECK_STATUS(dama_image_read("/nonexistent/none.tif", &t), DAMA_ERR_IO);
  CHECK_MSG(strstr(dama_last_error(), "/nonexistent/none.tif") && strstr(dama_last_error(), "No such file"), "%s",
            dama_last_error());
  CHECK_STATUS(dama_tiff_read_window("/nonexistent/none.tif", 0, 0, 1, 1, 0, NULL, &t), DAMA_ERR_IO);
  CHECK(write_bytes(tmp_path("empty.tif"), "", 0));
  CHECK_STATUS(dama_image_read(tmp_path("empty.tif"), &t), DAMA_ERR_FORMAT);
  CHECK(strstr(dama_last_error(), "empty") != NULL);
  CHECK(write_bytes(tmp_path("text.tif"), "hello, this is not an image\n", 28));
  CHECK_STATUS(dama_image_read(tmp_path("text.tif"), &t), DAMA_ERR_FORMAT);
  CHECK_MSG(strstr(dama_last_error(), "text.tif") && strstr(dama_last_error(), "unknown image format"), "%s",
            dama_last_error());
  CHECK_STATUS(dama_tiff_read_window(tmp_path("text.tif"), 0, 0, 1, 1, 0, NULL, &t), DAMA_ERR_FORMAT);
  CHECK(strstr(dama_last_error(), "not a TIFF") != NULL);
  CHECK_STATUS(dama_image_info_read("/tmp", &info), DAMA_ERR_IO);
  CHECK(strstr(dama_last_error(), "directory") != NULL);
  /* a valid header with nothing after it */
  CHECK(write_bytes(tmp_path("hdr.tif"), "II*\0\x08\0\0\0", 8));
  CHECK(dama_image_read(tmp_path("hdr.tif"), &t) == DAMA_ERR_FORMAT);
  CHECK(t == NULL);
}

/* Truncate at many lengths and flip random bytes: every read must return (OK or an error naming the file). */
static void fuzz_file(const char *src_path, int *n_ok, int *n_err, int *bad_msg) {
  size_t n = 0;
  uint8_t *orig = read_bytes(src_path, &n);
  if (!orig) { (*bad_msg)++; return; }
  uint8_t *buf = malloc(n);
  const char *p = tmp_path("fuzz.tif");
  uint32_t s = 99;
  int64_t h = 0, w = 0, c = 0;
  {
    dama_image_info info;
    if (dama_image_info_read(src_path, &info) == DAMA_OK) { h = info.height; w = info.width; c = info.channels; }
  }
  float *dst = malloc(sizeof(float) * (size_t)(h * w * c + 1));
  for (int v = 0; v < 260; v++) {
    size_t len = n;
    memcpy(buf, orig, n);
    if (v < 100) {
      len = (size_t)((double)n * v / 100.0);
    } else {
      int flips = 1 + v % 8;
      for (int f = 0; f < flips; f++) {
        s = s * 1664525u + 1013904223u;
        size_t at = (v % 3 == 0) ? (s >> 8) % (n < 256 ? n : 256) : (s >> 8) % n; /* often hit the header */
        s = s * 1664525u + 1013904223u;
        buf[at] = (uint8_t)(s >> 24);
      }
    }
    if (!write_bytes(p, buf, len)) { (*bad_msg)++; break; }
    dama_tensor *t = NULL;
    dama_image_info info;
    dama_status st[4];
    st[0] = dama_image_read(p, &t);
    dama_tensor_release(t);
    t = NULL;
    st[1] = dama_image_info_read(p, &info);
    st[2] = dama_tiff_read_window(p, 1, 1, 2, 2, 0, NULL, &t);
    dama_tensor_release(t);
    st[3] = dama_image_read_f32(p, dst, h, w, c);
    char names[256];
    int32_t nn = 0;
    if (dama_ome_channel_names(p, names, sizeof names, &nn) != DAMA_OK && !strstr(dama_last_error(), "fuzz.tif"))
      (*bad_msg)++;
    for (int k = 0; k < 4; k++) {
      if (st[k] == DAMA_OK) (*n_ok)++;
      else {
        (*n_err)++;
        if (!strstr(dama_last_error(), "fuzz.tif")) (*bad_msg)++;
      }
    }
    (void)st;
  }
  free(dst);
  free(buf);
  free(orig);
}

DAMA_TEST(tiff_truncated_and_garbage_files_do_not_crash) {
  dama_tensor *img = pattern(64, 48, 3, DAMA_U16);
  int n_ok = 0, n_err = 0, bad_msg = 0;
  struct { int layout, comp, tiled, big; } cases[] = {{0, 1, 0, 0}, {1, 0, 0, 0}, {2, 2, 16, 1}, {0, 0, 16, 0}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *src = tmp_path("fuzzsrc.tif");
    const char *names[3] = {"DNA", "a&amp;b", "<x>"};
    CHECK_OK(dama_tiff_write(src, img, cases[i].layout, cases[i].comp, cases[i].tiled, cases[i].big,
                             i % 2 ? names : NULL));
    fuzz_file(src, &n_ok, &n_err, &bad_msg);
  }
  printf("    fuzz: %d reads ok, %d errors, %d messages without the file name\n", n_ok, n_err, bad_msg);
  CHECK(n_err > 600);
  CHECK(bad_msg == 0);
  dama_tensor_release(img);
}

DAMA_TEST(tiff_garbled_ome_xml_does_not_crash) {
  dama_tensor *img = pattern(8, 8, 3, DAMA_U8);
  const char *names[3] = {"DNA", "a&b", "x"};
  const char *src = tmp_path("omesrc.tif");
  CHECK_OK(dama_tiff_write(src, img, DAMA_TIFF_PAGES, 0, 0, 0, names));
  size_t n = 0;
  uint8_t *orig = read_bytes(src, &n);
  CHECK(orig != NULL);
  size_t at = 0;
  for (size_t i = 0; i + 4 < n; i++) if (memcmp(orig + i, "<OME", 4) == 0) { at = i; break; }
  CHECK(at > 0);
  size_t xml_len = strlen((const char *)orig + at);
  uint8_t *buf = malloc(n);
  uint32_t r = 11;
  int ok = 0;
  for (int v = 0; v < 3000; v++) {
    memcpy(buf, orig, n);
    for (int k = 0; k < 1 + v % 5; k++) {
      r = r * 1664525u + 1013904223u;
      size_t pos = at + (r >> 8) % xml_len;
      r = r * 1664525u + 1013904223u;
      const char pool[] = "<>\"'&;=/ Na#x0\n";
      buf[pos] = (r >> 24) & 1 ? (uint8_t)pool[(r >> 16) % (sizeof pool - 1)] : (uint8_t)(r >> 24);
    }
    CHECK(write_bytes(tmp_path("omefuzz.tif"), buf, n));
    char out[64];
    int32_t nn = 0, idx[4], k = 0;
    if (dama_ome_channel_names(tmp_path("omefuzz.tif"), out, sizeof out, &nn) == DAMA_OK) ok++;
    else CHECK(strstr(dama_last_error(), "omefuzz.tif") != NULL);
    (void)dama_ome_channel_indices(tmp_path("omefuzz.tif"), "DNA,x", idx, 4, &k);
  }
  printf("    %d of 3000 garbled OME-XML descriptions still parsed\n", ok);
  free(buf);
  free(orig);
  dama_tensor_release(img);
}

/* ---- threads ---- */

typedef struct { const char *path; const dama_tensor *want; int iters; int bad; } th_arg;
static void *th_read(void *a) {
  th_arg *t = a;
  for (int i = 0; i < t->iters; i++) {
    dama_tensor *x = NULL;
    if (dama_image_read(t->path, &x) != DAMA_OK || !same_tensor(x, t->want)) t->bad++;
    dama_tensor_release(x);
    if (dama_image_read("/nonexistent/x.tif", &x) == DAMA_OK || !strstr(dama_last_error(), "/nonexistent/x.tif"))
      t->bad++;
  }
  return NULL;
}

DAMA_TEST(tiff_reads_from_many_threads) {
  dama_tensor *a = pattern(50, 60, 7, DAMA_U16), *b = pattern(33, 20, 3, DAMA_F32);
  CHECK_OK(dama_tiff_write(tmp_path("ta.tif"), a, 0, 1, 0, 0, NULL));
  CHECK_OK(dama_tiff_write(tmp_path("tb.tif"), b, 1, 2, 16, 1, NULL));
  pthread_t th[4];
  th_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (th_arg){i & 1 ? tmp_path("tb.tif") : tmp_path("ta.tif"), i & 1 ? b : a, 200, 0};
    args[i].path = strdup(args[i].path);
    pthread_create(&th[i], NULL, th_read, &args[i]);
  }
  int bad = 0;
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    bad += args[i].bad;
    free((void *)args[i].path);
  }
  CHECK(bad == 0);
  dama_tensor_release(a);
  dama_tensor_release(b);
}

/* ---- real data (shared/data; skipped when absent) ---- */

DAMA_TEST(tiff_bbbc048_matches_labelled_npy_bit_for_bit) {
  const char *dd = data_dir();
  if (!dd) SKIP("shared/data is absent");
  char p[2048];
  snprintf(p, sizeof p, "%s/bbbc048/labelled.npy", dd);
  dama_tensor *all = NULL;
  CHECK_OK(dama_npy_load(p, 1, &all));
  CHECK(all->ndim == 4 && all->shape[0] == 2561 && all->shape[1] == 40 && all->shape[2] == 40 && all->shape[3] == 3);
  CHECK(all->dtype == DAMA_U16);
  snprintf(p, sizeof p, "%s/bbbc048/labelled_files.txt", dd);
  FILE *f = fopen(p, "r");
  CHECK(f != NULL);
  char line[512];
  int64_t row = 0, same = 0;
  const uint16_t *base = dama_data_ptr(all);
  float *dst = malloc(sizeof(float) * 40 * 40 * 3);
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0]) continue;
    snprintf(p, sizeof p, "%s/bbbc048/%s", dd, line);
    dama_tensor *t = NULL;
    dama_status st = dama_image_read(p, &t);
    if (st != DAMA_OK) { fprintf(stderr, "  %s\n", dama_last_error()); break; }
    const uint16_t *want = base + row * 4800;
    if (t->dtype == DAMA_U16 && t->shape[0] == 40 && t->shape[1] == 40 && t->shape[2] == 3 &&
        memcmp(dama_data_ptr(t), want, 4800 * 2) == 0)
      same++;
    dama_tensor_release(t);
    if (row % 50 == 0) {
      if (dama_image_read_f32(p, dst, 40, 40, 3) != DAMA_OK) break;
      for (int i = 0; i < 4800; i++)
        if (dst[i] != (float)want[i] / 65535.0f) { same--; break; }
    }
    row++;
  }
  fclose(f);
  free(dst);
  printf("    %lld of %lld bbbc048 TIFFs equal their labelled.npy row\n", (long long)same, (long long)row);
  CHECK(row == 2561 && same == 2561);
  dama_tensor_release(all);
}

DAMA_TEST(tiff_imc_pages_are_channels) {
  const char *dd = data_dir();
  if (!dd) SKIP("shared/data is absent");
  const char *ids[3] = {"E34", "G01", "J02"};
  const float maxima[3][5] = {{181.0f, 152.1f, 179.5f, 43.4f, 80.1f}, {99.8f, 157.7f, 181.1f, 16.9f, 105.1f},
                              {58.7f, 99.0f, 4.8f, 48.1f, 86.8f}};
  for (int i = 0; i < 3; i++) {
    char p[1024];
    snprintf(p, sizeof p, "%s/imc/%s_imc.tiff", dd, ids[i]);
    dama_image_info info;
    CHECK_OK(dama_image_info_read(p, &info));
    CHECK(info.width == 100 && info.height == 100 && info.channels == 5 && info.n_pages == 5);
    CHECK(info.planar == DAMA_TIFF_PAGES && info.dtype == DAMA_F32);
    dama_tensor *t = NULL, *w = NULL;
    CHECK_OK(dama_image_read(p, &t));
    const float *x = dama_data_ptr(t);
    for (int c = 0; c < 5; c++) {
      float mx = -1, mn = 1e30f;
      for (int k = 0; k < 10000; k++) {
        if (x[k * 5 + c] > mx) mx = x[k * 5 + c];
        if (x[k * 5 + c] < mn) mn = x[k * 5 + c];
      }
      CHECK_MSG(fabsf(mx - maxima[i][c]) < 0.051f && mn == 0.0f, "%s channel %d: max %g min %g", ids[i], c, mx, mn);
    }
    int32_t sel[2] = {4, 1};
    CHECK_OK(dama_tiff_read_window(p, 10, 20, 30, 40, 2, sel, &w));
    CHECK(window_matches(t, w, 10, 20, 2, sel));
    dama_tensor_release(w);
    dama_tensor_release(t);
    /* the uint16 masks: one page, one channel */
    snprintf(p, sizeof p, "%s/imc/%s_mask.tiff", dd, ids[i]);
    CHECK_OK(dama_image_read(p, &t));
    CHECK(t->dtype == DAMA_U16 && t->shape[2] == 1);
    dama_tensor_release(t);
  }
}

DAMA_TEST(tiff_stardist_and_dsb_labels) {
  const char *dd = data_dir();
  if (!dd) SKIP("shared/data is absent");
  char p[1024];
  snprintf(p, sizeof p, "%s/seg/stardist_img2d.tif", dd);
  dama_tensor *t = NULL;
  CHECK_OK(dama_image_read(p, &t));
  CHECK(t->dtype == DAMA_U16 && t->shape[0] == 512 && t->shape[1] == 512 && t->shape[2] == 1);
  const uint16_t *x = dama_data_ptr(t);
  double sum = 0;
  int mx = 0;
  for (int i = 0; i < 512 * 512; i++) { sum += x[i]; if (x[i] > mx) mx = x[i]; }
  CHECK_MSG(mx == 235 && fabs(sum / (512 * 512) - 31.8) < 0.05, "max %d mean %g", mx, sum / (512 * 512));
  dama_tensor_release(t);
  snprintf(p, sizeof p, "%s/seg/stardist_mask2d.tif", dd);
  CHECK_OK(dama_image_read(p, &t));
  x = dama_data_ptr(t);
  mx = 0;
  for (int i = 0; i < 512 * 512; i++) if (x[i] > mx) mx = x[i];
  CHECK(mx == 183);
  dama_tensor_release(t);
}

/* ---- files written by tifffile (tests/fixtures/io, made by make_fixtures.py) ---- */

#define FIXTURE(name) DAMA_SOURCE_ROOT "/tests/fixtures/io/" name

DAMA_TEST(tiff_reads_files_written_by_tifffile) {
  const char *names[6] = {"bigendian_pred", "tifffile_ome", "float_pred_separate", "rgb_lzw", "tifffile_hwc_default",
                          "tifffile_chw"};
  const char *files[6] = {FIXTURE("bigendian_pred.tif"), FIXTURE("tifffile_ome.ome.tif"),
                          FIXTURE("float_pred_separate.tif"), FIXTURE("rgb_lzw.tif"),
                          FIXTURE("tifffile_hwc_default.tif"), FIXTURE("tifffile_chw.tif")};
  const char *expected[6] = {FIXTURE("bigendian_pred.expected.npy"), FIXTURE("tifffile_ome.expected.npy"),
                             FIXTURE("float_pred_separate.expected.npy"), FIXTURE("rgb_lzw.expected.npy"),
                             FIXTURE("tifffile_hwc_default.expected.npy"), FIXTURE("tifffile_chw.expected.npy")};
  for (int i = 0; i < 6; i++) {
    dama_tensor *t = NULL, *want = NULL, *w = NULL;
    CHECK_OK(dama_image_read(files[i], &t));
    CHECK_OK(dama_npy_load(expected[i], 0, &want));
    CHECK_MSG(t->ndim == 3 && want->ndim == 3 && t->shape[0] == want->shape[0] && t->shape[1] == want->shape[1] &&
              t->shape[2] == want->shape[2], "%s: shape differs", names[i]);
    CHECK_MSG(same_tensor(t, want), "%s: pixels differ from tifffile's", names[i]);
    int32_t sel[2] = {2, 0};
    CHECK_OK(dama_tiff_read_window(files[i], 2, 4, 7, 7, 2, sel, &w));
    CHECK_MSG(window_matches(want, w, 2, 4, 2, sel), "%s: window differs", names[i]);
    dama_tensor_release(t); dama_tensor_release(want); dama_tensor_release(w);
  }
  dama_image_info info;
  CHECK_OK(dama_image_info_read(FIXTURE("tifffile_ome.ome.tif"), &info));
  CHECK(info.planar == DAMA_TIFF_PAGES && info.tiled && info.tile_w == 16 && info.channels == 3);
  CHECK_OK(dama_image_info_read(FIXTURE("tifffile_hwc_default.tif"), &info));
  CHECK(info.planar == DAMA_TIFF_ROW_PAGES && info.height == 12 && info.width == 10 && info.channels == 7);
  CHECK_OK(dama_image_info_read(FIXTURE("tifffile_chw.tif"), &info));
  CHECK(info.planar == DAMA_TIFF_PAGES && info.height == 12 && info.width == 10 && info.channels == 7);
  float f32[12 * 10 * 7];
  CHECK_OK(dama_image_read_f32(FIXTURE("tifffile_hwc_default.tif"), f32, 12, 10, 7));
  CHECK_OK(dama_image_info_read(FIXTURE("float_pred_separate.tif"), &info));
  CHECK(info.planar == DAMA_TIFF_SEPARATE && info.channels == 4 && info.dtype == DAMA_F32);
  char buf[256];
  int32_t n = 0;
  CHECK_OK(dama_ome_channel_names(FIXTURE("tifffile_ome.ome.tif"), buf, sizeof buf, &n));
  CHECK_MSG(n == 3 && strcmp(buf, "DNA\nCD99\nPIN") == 0, "names (%d): %s", (int)n, buf);
  int32_t idx[3], k;
  CHECK_OK(dama_ome_channel_indices(FIXTURE("tifffile_ome.ome.tif"), "PIN,DNA", idx, 3, &k));
  CHECK(k == 2 && idx[0] == 2 && idx[1] == 0);
  dama_tensor *t = NULL;
  CHECK_STATUS(dama_image_read(FIXTURE("int16.tif"), &t), DAMA_ERR_UNSUPPORTED);
  CHECK_MSG(strstr(dama_last_error(), "16-bit signed integer") && strstr(dama_last_error(), "int16.tif"), "%s",
            dama_last_error());
}

DAMA_TEST(tiff_other_codecs_zstd_lzma_jpeg) {
  dama_tensor *want = NULL, *t = NULL;
  CHECK_OK(dama_npy_load(FIXTURE("zstd.expected.npy"), 0, &want));
  const char *exact[2] = {FIXTURE("zstd.tif"), FIXTURE("lzma.tif")};
  for (int i = 0; i < 2; i++) {
    dama_status st = dama_image_read(exact[i], &t);
    if (st == DAMA_ERR_UNSUPPORTED) { /* a libtiff built without the codec: a clear error is what we want */
      CHECK(strstr(dama_last_error(), "compression") != NULL);
      continue;
    }
    CHECK_OK(st);
    CHECK_MSG(same_tensor(t, want), "%s differs", exact[i]);
    dama_tensor_release(t);
  }
  dama_tensor_release(want);
  /* JPEG in a TIFF, YCbCr 2x2 subsampled: returned as RGB, close to the source */
  CHECK_OK(dama_npy_load(FIXTURE("gradient.expected.npy"), 0, &want)); /* 12 x 16 x 3, the file is 2x that */
  dama_status st = dama_image_read(FIXTURE("jpeg_ycbcr.tif"), &t);
  if (st != DAMA_ERR_UNSUPPORTED) {
    CHECK_OK(st);
    CHECK(t->dtype == DAMA_U8 && t->shape[0] == 24 && t->shape[1] == 32 && t->shape[2] == 3);
    const uint8_t *a = dama_data_ptr(t), *b = dama_data_ptr(want);
    double err = 0;
    for (int y = 0; y < 24; y++)
      for (int x = 0; x < 32; x++)
        for (int c = 0; c < 3; c++) err += fabs((double)a[(y * 32 + x) * 3 + c] - b[((y / 2) * 16 + x / 2) * 3 + c]);
    CHECK_MSG(err / (24 * 32 * 3) < 6, "mean JPEG error %g", err / (24 * 32 * 3));
    dama_tensor *w = NULL;
    CHECK_OK(dama_tiff_read_window(FIXTURE("jpeg_ycbcr.tif"), 5, 3, 20, 17, 0, NULL, &w));
    CHECK(window_matches(t, w, 5, 3, 3, NULL));
    dama_tensor_release(w);
    dama_tensor_release(t);
  }
  dama_tensor_release(want);
}

DAMA_TEST(tiff_pages_that_are_not_channels_are_skipped) {
  dama_tensor *want = NULL;
  CHECK_OK(dama_npy_load(FIXTURE("pages_3ch.expected.npy"), 0, &want));
  const char *files[2] = {FIXTURE("pages_then_thumbnail.tif"), FIXTURE("pages_with_reduced.tif")};
  for (int i = 0; i < 2; i++) {
    dama_image_info info;
    CHECK_OK(dama_image_info_read(files[i], &info));
    CHECK_MSG(info.channels == 3 && info.n_pages == 4 && info.planar == DAMA_TIFF_PAGES, "%s: %lld channels",
              files[i], (long long)info.channels);
    dama_tensor *t = NULL, *w = NULL;
    CHECK_OK(dama_image_read(files[i], &t)); /* the optimistic one-pass read falls back to a page scan */
    CHECK(same_tensor(t, want));
    dama_tensor_release(t);
    float f[20 * 24 * 4];
    CHECK_OK(dama_image_read_f32(files[i], f, 20, 24, 3));
    CHECK(f[7] == (float)((uint16_t *)dama_data_ptr(want))[7] / 65535.0f);
    CHECK_STATUS(dama_image_read_f32(files[i], f, 20, 24, 4), DAMA_ERR_SHAPE);
    CHECK_MSG(strstr(dama_last_error(), "expected 4 channels, got 3") != NULL, "%s", dama_last_error());
    int32_t sel[2] = {2, 1};
    CHECK_OK(dama_tiff_read_window(files[i], 3, 4, 10, 9, 2, sel, &w));
    CHECK(window_matches(want, w, 3, 4, 2, sel));
    dama_tensor_release(w);
  }
  dama_tensor_release(want);
}

/* ---- a 20000 x 20000 x 7 uint16 BigTIFF (5.6 GB of pixels): windows read in bounded memory ----
 * Written tile by tile with libtiff directly (dama_tiff_write needs the whole image in memory).
 * Opt-in (DAMA_TEST_LARGE=1): it writes ~6000 deflate tiles. */
#include <sys/resource.h>
#include <tiffio.h>

/* Peak resident set (VmHWM) in kB; reset_peak_rss() restarts it (Linux: clear_refs 5). */
static long max_rss_kb(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = atol(line + 6);
  if (f) fclose(f);
  if (kb < 0) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    kb = ru.ru_maxrss;
  }
  return kb;
}
static void reset_peak_rss(void) {
  FILE *f = fopen("/proc/self/clear_refs", "w");
  if (f) { fputs("5", f); fclose(f); }
}

DAMA_TEST(tiff_window_of_a_20000x20000x7_bigtiff) {
  if (!getenv("DAMA_TEST_LARGE")) SKIP("set DAMA_TEST_LARGE=1 to write a 5.6 GB-pixel BigTIFF");
  const char *p = tmp_path("huge.tif");
  const uint32_t N = 20000, T = 512;
  const uint16_t C = 7;
  TIFF *tif = TIFFOpen(p, "w8");
  CHECK(tif != NULL);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, N);
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, N);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 16);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, C);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
  uint16_t extra[6] = {0};
  TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 6, extra);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  TIFFSetField(tif, TIFFTAG_ZIPQUALITY, 1);
  TIFFSetField(tif, TIFFTAG_TILEWIDTH, T);
  TIFFSetField(tif, TIFFTAG_TILELENGTH, T);
  uint16_t *tile = malloc(sizeof(uint16_t) * T * T * C);
  CHECK(tile != NULL);
  for (uint32_t ty = 0; ty < N; ty += T)
    for (uint32_t tx = 0; tx < N; tx += T) {
      /* value = f(tile, channel) plus the pixel's low bits: cheap to compress, checkable anywhere */
      for (uint32_t y = 0; y < T; y++)
        for (uint32_t x = 0; x < T; x++)
          for (uint16_t c = 0; c < C; c++)
            tile[((size_t)y * T + x) * C + c] = (uint16_t)((tx / T) * 7 + (ty / T) * 1000 + c * 10000 + ((x + y) & 3));
      CHECK(TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, tx, ty, 0, 0), tile, (tmsize_t)T * T * C * 2) >= 0);
    }
  free(tile);
  TIFFClose(tif);
  dama_image_info info;
  CHECK_OK(dama_image_info_read(p, &info));
  CHECK(info.bigtiff && info.width == N && info.height == N && info.channels == C && info.tiled);
  reset_peak_rss();
  long rss0 = max_rss_kb();
  int64_t peak0 = 0, in_use = 0, n_t = 0;
  dama_memory_reset_peak();
  int32_t sel[3] = {6, 0, 3};
  dama_tensor *w = NULL;
  CHECK_OK(dama_tiff_read_window(p, 12345, 17000, 1000, 1000, 3, sel, &w));
  dama_memory_stats(&in_use, &peak0, &n_t);
  const uint16_t *v = dama_data_ptr(w);
  for (int64_t r = 0; r < 1000; r += 37)
    for (int64_t c = 0; c < 1000; c += 41) {
      uint32_t X = 12345 + (uint32_t)c, Y = 17000 + (uint32_t)r;
      uint32_t xi = X % T, yi = Y % T;
      for (int k = 0; k < 3; k++) {
        uint16_t want = (uint16_t)((X / T) * 7 + (Y / T) * 1000 + sel[k] * 10000 + ((xi + yi) & 3));
        CHECK_MSG(v[(r * 1000 + c) * 3 + k] == want, "pixel (%u, %u) channel %d: %u, want %u", X, Y, sel[k],
                  v[(r * 1000 + c) * 3 + k], want);
      }
    }
  long rss1 = max_rss_kb();
  printf("    1000x1000x3 window of a 20000x20000x7 BigTIFF: tensor peak %.1f MB, max RSS grew by %.1f MB\n",
         (double)peak0 / 1e6, (double)(rss1 - rss0) / 1024.0);
  CHECK(rss1 - rss0 < 64 * 1024);
  dama_tensor_release(w);
}

/* ---- headers that claim more than the file holds ---- */

/* Set `tag` of the first IFD of a classic little-endian TIFF to the LONG `value`; 0 if absent. */
static int patch_tag_long(uint8_t *b, size_t n, uint16_t tag, uint32_t value) {
  if (n < 8 || b[0] != 'I') return 0;
  uint32_t ifd = (uint32_t)b[4] | (uint32_t)b[5] << 8 | (uint32_t)b[6] << 16 | (uint32_t)b[7] << 24;
  if (ifd + 2 > n) return 0;
  unsigned count = b[ifd] | b[ifd + 1] << 8;
  for (unsigned i = 0; i < count && ifd + 2 + 12 * (i + 1) <= n; i++) {
    uint8_t *e = b + ifd + 2 + 12 * i;
    if ((e[0] | e[1] << 8) != tag) continue;
    e[2] = 4; e[3] = 0;                             /* type LONG, count 1 */
    e[4] = 1; e[5] = e[6] = e[7] = 0;
    for (int k = 0; k < 4; k++) e[8 + k] = (uint8_t)(value >> (8 * k));
    return 1;
  }
  return 0;
}

DAMA_TEST(tiff_huge_claimed_size_names_the_file_and_field_before_allocating) {
  dama_tensor *img = pattern(60, 8, 1, DAMA_F32);
  CHECK(img != NULL);
  const char *src = tmp_path("small.tif");
  for (int comp = 0; comp < 2; comp++) {
    CHECK_OK(dama_tiff_write(src, img, 0, comp ? DAMA_TIFF_DEFLATE : DAMA_TIFF_NONE, 0, 0, NULL));
    size_t n = 0;
    uint8_t *b = read_bytes(src, &n);
    CHECK(b != NULL);
    CHECK(patch_tag_long(b, n, 256, 1u << 30)); /* ImageWidth 2^30: 257698037760 bytes as f32 x 60 rows */
    const char *bad = tmp_path("huge_width.tif");
    CHECK(write_bytes(bad, b, n));
    free(b);
    dama_tensor *t = NULL;
    int64_t before = 0, peak = 0, nt = 0;
    dama_memory_reset_peak();
    dama_memory_stats(&before, &peak, &nt);
    CHECK_STATUS(dama_image_read(bad, &t), DAMA_ERR_FORMAT);
    CHECK_MSG(strstr(dama_last_error(), "huge_width.tif") && strstr(dama_last_error(), "ImageWidth 1073741824") &&
                  !strstr(dama_last_error(), "out of memory"), "%s", dama_last_error());
    dama_memory_stats(&before, &peak, &nt);
    CHECK_MSG(peak < (1 << 20), "peak %lld bytes: the reader allocated before checking", (long long)peak);
    float *dst = malloc(sizeof(float) * 8);
    CHECK_STATUS(dama_image_read_f32(bad, dst, 1, 1, 1), DAMA_ERR_FORMAT);
    CHECK(strstr(dama_last_error(), "huge_width.tif") != NULL);
    free(dst);
    dama_image_info info;
    CHECK_STATUS(dama_image_info_read(bad, &info), DAMA_ERR_FORMAT);
  }
  dama_tensor_release(img);
}

/* Found by tests/fuzz/fuzz_tiff: a 489-byte TIFF whose tiles claim 5 GB made the reader allocate a
 * 5 GB block buffer. Tiles and strips are now checked against the file's size first. */
DAMA_TEST(tiff_tile_larger_than_the_file_can_hold_is_refused) {
  const char *p = DAMA_SOURCE_ROOT "/tests/fuzz/corpus/tiff/regress_tile_5GB_in_489_bytes";
  dama_tensor *t = NULL;
  dama_status st = dama_image_read(p, &t);
  CHECK_MSG(st == DAMA_ERR_FORMAT && strstr(dama_last_error(), "regress_tile_5GB_in_489_bytes") &&
                strstr(dama_last_error(), "more than a 489-byte file can hold"), "status %d: %s", st, dama_last_error());
}
