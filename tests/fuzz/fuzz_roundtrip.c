/* libFuzzer: the writers' round trip. The input chooses a small image (H, W, C, dtype), its pixels,
 * and a TIFF layout / compression / tiling; TIFF, PNG (u8/u16, C in 1..4) and .npy written by dama
 * must read back bit for bit. */
#include "fuzz_common.h"
#include <math.h>

static void must(dama_status st, const char *what) {
  if (st != DAMA_OK) { fprintf(stderr, "%s: %s\n", what, dama_last_error()); abort(); }
}

static void same(const dama_tensor *a, const dama_tensor *b, const char *what) {
  int64_t n = dama_numel(a);
  if (a->dtype != b->dtype || n != dama_numel(b) ||
      memcmp(dama_data_ptr(a), dama_data_ptr(b), (size_t)(n * dama_dtype_size((dama_dtype)a->dtype))) != 0) {
    fprintf(stderr, "%s: round trip differs\n", what);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init_once();
  if (size < 6) return 0;
  static const dama_dtype dts[5] = {DAMA_U8, DAMA_U16, DAMA_F32, DAMA_F64, DAMA_I32};
  int64_t H = 1 + data[0] % 40, W = 1 + data[1] % 40, C = 1 + data[2] % 8;
  dama_dtype dt = dts[data[3] % 5];
  int layout = data[4] % 3, comp = (data[4] / 3) % 3, tiled = (data[5] & 1) ? 16 : 0, big = (data[5] >> 1) & 1;
  if (C == 1 && layout != 0) layout = 0;
  data += 6; size -= 6;
  dama_tensor *img = NULL;
  int64_t shape[3] = {H, W, C};
  must(dama_empty(&img, 3, shape, dt, (dama_device){DAMA_CPU, 0}), "empty");
  uint8_t *px = dama_data_ptr(img);
  size_t nb = (size_t)(H * W * C * dama_dtype_size(dt));
  for (size_t i = 0; i < nb; i++) px[i] = size ? data[i % size] ^ (uint8_t)(i * 131u >> 3) : (uint8_t)i;
  if (dt == DAMA_F32 || dt == DAMA_F64) {
    /* NaN payloads need not survive a codec's float predictor; keep values finite */
    for (int64_t i = 0; i < H * W * C; i++) {
      double v = 0;
      dama_get(img, (int64_t[]){i / (W * C), (i / C) % W, i % C}, &v);
      if (!isfinite(v)) dama_set(img, (int64_t[]){i / (W * C), (i / C) % W, i % C}, (double)(i % 97));
    }
  }
  dama_tensor *back = NULL;
  const char *tif = fuzz_path(".tif");
  must(dama_tiff_write(tif, img, layout, comp, tiled, big, NULL), "tiff_write");
  must(dama_image_read(tif, &back), "tiff read");
  same(img, back, "tiff");
  dama_tensor_release(back); back = NULL;
  static char npy[300];
  snprintf(npy, sizeof npy, "%s.npy", tif);
  must(dama_npy_write(npy, img), "npy_write");
  for (int mm = 0; mm < 2; mm++) {
    must(dama_npy_load(npy, mm, &back), "npy_load");
    same(img, back, "npy");
    dama_tensor_release(back); back = NULL;
  }
  unlink(npy);
  if ((dt == DAMA_U8 || dt == DAMA_U16) && C <= 4) {
    static char png[300];
    snprintf(png, sizeof png, "%s.png", tif);
    must(dama_png_write(png, img), "png_write");
    must(dama_image_read(png, &back), "png read");
    same(img, back, "png");
    dama_tensor_release(back);
    unlink(png);
  }
  dama_tensor_release(img);
  return 0;
}
