/* Augmentation: the fused training transform against a slow step-by-step emulation of the reference's
 * OpenCV pipeline (crop, INTER_AREA resize, warpAffine, shift, flips, ToTensor), the validation
 * transform, resize, RandomResizedCrop, determinism and argument errors. */
#include "dama_test.h"
#include <stdlib.h>
#include <string.h>

static uint64_t lcg_state = 88172645463325252ull;
static uint32_t lcg(void) {
  lcg_state ^= lcg_state << 13; lcg_state ^= lcg_state >> 7; lcg_state ^= lcg_state << 17;
  return (uint32_t)(lcg_state >> 16);
}

/* ---- the slow reference: each step materialised as an H x W x C float image of source-type values ---- */
typedef struct img { int h, w, c; float *p; } img;
static img img_new(int h, int w, int c) { img m = {h, w, c, calloc((size_t)h * w * c, sizeof(float))}; return m; }
static float *px(img m, int y, int x) { return m.p + ((size_t)y * m.w + x) * m.c; }
static float rnd16(float v) { v = nearbyintf(v); return v < 0 ? 0 : (v > 65535 ? 65535 : v); }

/* cv2.resize INTER_AREA enlarging (the linear variant with area coefficients), rounded to uint16. */
static img ref_area_up(img s, int D) {
  img o = img_new(D, D, s.c);
  int sx[512]; float fx[512];
  double inv = (double)D / s.w, sc = 1.0 / inv;
  for (int d = 0; d < D; d++) {
    int q = (int)floor(d * sc);
    float f = (float)((d + 1) - (q + 1) * inv);
    f = f <= 0 ? 0.f : f - floorf(f);
    if (q >= s.w - 1) { q = s.w - 1; f = 0; }
    sx[d] = q; fx[d] = f;
  }
  for (int y = 0; y < D; y++)
    for (int x = 0; x < D; x++)
      for (int k = 0; k < s.c; k++) {
        int y1 = sx[y] + 1 < s.h ? sx[y] + 1 : s.h - 1, x1 = sx[x] + 1 < s.w ? sx[x] + 1 : s.w - 1;
        float h0 = px(s, sx[y], sx[x])[k] * (1.f - fx[x]) + px(s, sx[y], x1)[k] * fx[x];
        float h1 = px(s, y1, sx[x])[k] * (1.f - fx[x]) + px(s, y1, x1)[k] * fx[x];
        px(o, y, x)[k] = rnd16(h0 * (1.f - fx[y]) + h1 * fx[y]);
      }
  return o;
}

/* cv2.warpAffine(img, getRotationMatrix2D((w/2, h/2), angle, 1), (w, h)), INTER_LINEAR, border 0. */
static img ref_rotate(img s, double angle) {
  img o = img_new(s.h, s.w, s.c);
  double a = angle * (3.14159265358979323846 / 180.0), al = cos(a), be = sin(a), cx = s.w / 2.0, cy = s.h / 2.0;
  double M[6] = {al, be, (1 - al) * cx - be * cy, -be, al, be * cx + (1 - al) * cy};
  double D = 1.0 / (M[0] * M[4] - M[1] * M[3]);
  double iM[6];
  iM[0] = M[4] * D; iM[1] = -M[1] * D; iM[3] = -M[3] * D; iM[4] = M[0] * D;
  iM[2] = -iM[0] * M[2] - iM[1] * M[5]; iM[5] = -iM[3] * M[2] - iM[4] * M[5];
  for (int y = 0; y < s.h; y++)
    for (int x = 0; x < s.w; x++) {
      int X = ((int)lrint((iM[1] * y + iM[2]) * 1024) + 16 + (int)lrint(iM[0] * x * 1024)) >> 5;
      int Y = ((int)lrint((iM[4] * y + iM[5]) * 1024) + 16 + (int)lrint(iM[3] * x * 1024)) >> 5;
      int x0 = X >> 5, y0 = Y >> 5;
      float fx = (X & 31) / 32.f, fy = (Y & 31) / 32.f;
      float w[4] = {(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx};
      for (int k = 0; k < s.c; k++) {
        float v[4];
        for (int j = 0; j < 4; j++) {
          int yy = y0 + j / 2, xx = x0 + j % 2;
          v[j] = (yy >= 0 && yy < s.h && xx >= 0 && xx < s.w) ? px(s, yy, xx)[k] : 0.f;
        }
        px(o, y, x)[k] = rnd16(v[0] * w[0] + v[1] * w[1] + v[2] * w[2] + v[3] * w[3]);
      }
    }
  return o;
}

static void ref_train(float *out, const uint16_t *src, int h, int w, int c, const dama_aug_params *p) {
  int cs = p->crop_size, S = p->out_size;
  img crop = img_new(cs, cs, c);
  for (int y = 0; y < cs; y++)
    for (int x = 0; x < cs; x++)
      for (int k = 0; k < c; k++) px(crop, y, x)[k] = src[((size_t)(p->crop_top + y) * w + p->crop_left + x) * c + k];
  (void)h;
  img up = ref_area_up(crop, S);
  img rot = ref_rotate(up, p->angle);
  img sh = img_new(S, S, c);
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) {
      int ys = y - p->shift_y, xs = x - p->shift_x;
      if (ys >= 0 && ys < S && xs >= 0 && xs < S) memcpy(px(sh, y, x), px(rot, ys, xs), sizeof(float) * c);
    }
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++) {
      int yy = p->vflip ? S - 1 - y : y, xx = p->hflip ? S - 1 - x : x;
      for (int k = 0; k < c; k++) out[((size_t)k * S + y) * S + x] = px(sh, yy, xx)[k] / 65535.0f;
    }
  free(crop.p); free(up.p); free(rot.p); free(sh.p);
}

static uint16_t *random_u16(int h, int w, int c) {
  uint16_t *s = malloc(sizeof(uint16_t) * h * w * c);
  for (int i = 0; i < h * w * c; i++) s[i] = (uint16_t)lcg();
  return s;
}

static double max_diff(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) { double d = fabs((double)a[i] - b[i]); if (d > m) m = d; }
  return m;
}

DAMA_TEST(train_matches_step_by_step_reference) {
  const int h = 100, w = 100, c = 7, S = 128;
  uint16_t *src = random_u16(h, w, c);
  dama_hwc v = {src, DAMA_U16, h, w, c, 0};
  float *a = malloc(sizeof(float) * c * S * S), *b = malloc(sizeof(float) * c * S * S);
  for (int i = 0; i < 12; i++) {
    dama_aug_params p;
    CHECK_OK(dama_aug_train_draw(&p, h, w, S, 1234, 3, (uint64_t)i));
    if (i == 0) { p.angle = 0; p.shift_x = p.shift_y = 0; p.hflip = p.vflip = 0; }
    if (i == 1) { p.angle = 90; }
    if (i == 2) { p.angle = -90; p.shift_x = 38; p.shift_y = -38; }
    if (i == 3) { p.crop_size = 48; p.crop_top = 52; p.crop_left = 0; } /* non-integer ratio 128/48 */
    if (i == 4) { p.crop_size = 100; p.crop_top = 0; p.crop_left = 0; p.angle = 12.5; } /* 100 -> 128 */
    CHECK_OK(dama_aug_train_apply(a, &v, NULL, 0, &p));
    ref_train(b, src, h, w, c, &p);
    double d = max_diff(a, b, (size_t)c * S * S);
    CHECK_MSG(d == 0.0, "sample %d (angle %.6f, crop %d at %d,%d, shift %d,%d, flips %d%d): max diff %g", i, p.angle,
              p.crop_size, p.crop_top, p.crop_left, p.shift_x, p.shift_y, p.hflip, p.vflip, d);
  }
  free(a); free(b); free(src);
}

DAMA_TEST(train_draws_are_in_range_and_reproducible) {
  int hits_h = 0, hits_v = 0;
  double amin = 1e9, amax = -1e9;
  int smin = 99, smax = -99;
  for (int i = 0; i < 4000; i++) {
    dama_aug_params p, q;
    CHECK_OK(dama_aug_train_draw(&p, 100, 120, 128, 7, 1, (uint64_t)i));
    CHECK_OK(dama_aug_train_draw(&q, 100, 120, 128, 7, 1, (uint64_t)i));
    CHECK(memcmp(&p, &q, sizeof p) == 0);
    CHECK(p.crop_size == 64 && p.crop_top >= 0 && p.crop_top <= 36 && p.crop_left >= 0 && p.crop_left <= 56);
    CHECK(p.angle >= -90 && p.angle < 90);
    CHECK(p.shift_x >= -38 && p.shift_x <= 38 && p.shift_y >= -38 && p.shift_y <= 38);
    hits_h += p.hflip; hits_v += p.vflip;
    if (p.angle < amin) amin = p.angle;
    if (p.angle > amax) amax = p.angle;
    if (p.shift_x < smin) smin = p.shift_x;
    if (p.shift_x > smax) smax = p.shift_x;
  }
  CHECK(hits_h > 1800 && hits_h < 2200 && hits_v > 1800 && hits_v < 2200);
  CHECK(amin < -89 && amax > 89 && smin == -38 && smax == 38);
  dama_aug_params p0, p1, p2;
  CHECK_OK(dama_aug_train_draw(&p0, 100, 100, 128, 7, 1, 5));
  CHECK_OK(dama_aug_train_draw(&p1, 100, 100, 128, 7, 2, 5));
  CHECK_OK(dama_aug_train_draw(&p2, 100, 100, 128, 8, 1, 5));
  CHECK(p0.angle != p1.angle && p0.angle != p2.angle);
}

DAMA_TEST(train_channel_selection_and_float_input) {
  const int h = 80, w = 90, c = 7, S = 64;
  uint16_t *src = random_u16(h, w, c);
  float *srcf = malloc(sizeof(float) * h * w * c);
  for (int i = 0; i < h * w * c; i++) srcf[i] = src[i] / 65535.0f;
  dama_hwc v = {src, DAMA_U16, h, w, c, 0}, vf = {srcf, DAMA_F32, h, w, c, 0};
  float *all = malloc(sizeof(float) * c * S * S), *sel = malloc(sizeof(float) * 3 * S * S);
  float *fl = malloc(sizeof(float) * c * S * S);
  int32_t chans[3] = {6, 0, 3};
  CHECK_OK(dama_aug_train(all, &v, NULL, 0, S, 9, 0, 17));
  CHECK_OK(dama_aug_train(sel, &v, chans, 3, S, 9, 0, 17));
  for (int k = 0; k < 3; k++)
    CHECK(memcmp(sel + (size_t)k * S * S, all + (size_t)chans[k] * S * S, sizeof(float) * S * S) == 0);
  /* f32 input is resampled without rounding: within half a grey level of the u16 result. */
  CHECK_OK(dama_aug_train(fl, &vf, NULL, 0, S, 9, 0, 17));
  CHECK(max_diff(fl, all, (size_t)c * S * S) <= 0.51 / 65535);
  /* a row stride larger than w*c (a window of a bigger image) gives the same result */
  uint16_t *big = calloc((size_t)h * (w + 5) * c, sizeof(uint16_t));
  for (int y = 0; y < h; y++) memcpy(big + (size_t)y * (w + 5) * c, src + (size_t)y * w * c, sizeof(uint16_t) * w * c);
  dama_hwc vb = {big, DAMA_U16, h, w, c, (int64_t)(w + 5) * c};
  CHECK_OK(dama_aug_train(fl, &vb, NULL, 0, S, 9, 0, 17));
  CHECK(memcmp(fl, all, sizeof(float) * c * S * S) == 0);
  free(src); free(srcf); free(all); free(sel); free(fl); free(big);
}

DAMA_TEST(val_is_centre_crop_then_area_resize) {
  const int h = 100, w = 100, c = 7, S = 128;
  uint16_t *src = random_u16(h, w, c);
  dama_hwc v = {src, DAMA_U16, h, w, c, 0};
  float *a = malloc(sizeof(float) * c * S * S);
  CHECK_OK(dama_aug_val(a, &v, NULL, 0, 0, S)); /* crop 0 = 3/8 of 128 = 48 */
  img crop = img_new(48, 48, c);
  for (int y = 0; y < 48; y++)
    for (int x = 0; x < 48; x++)
      for (int k = 0; k < c; k++) px(crop, y, x)[k] = src[((size_t)(26 + y) * w + 26 + x) * c + k];
  img up = ref_area_up(crop, S);
  for (int y = 0; y < S; y++)
    for (int x = 0; x < S; x++)
      for (int k = 0; k < c; k++)
        CHECK_MSG(a[((size_t)k * S + y) * S + x] == px(up, y, x)[k] / 65535.0f, "val (%d,%d,%d)", y, x, k);
  free(crop.p); free(up.p); free(a); free(src);
}

DAMA_TEST(resize_modes) {
  const int h = 20, w = 30, c = 2;
  uint16_t *src = random_u16(h, w, c);
  dama_hwc v = {src, DAMA_U16, h, w, c, 0};
  float *o = malloc(sizeof(float) * c * 60 * 60);
  for (int mode = 0; mode < 3; mode++) { /* same size: an exact copy */
    CHECK_OK(dama_aug_resize(o, &v, NULL, 0, h, w, mode));
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        for (int k = 0; k < c; k++) CHECK_MSG(o[((size_t)k * h + y) * w + x] == src[((size_t)y * w + x) * c + k] / 65535.0f, "mode %d (%d,%d,%d): %g vs %g", mode, y, x, k, o[((size_t)k * h + y) * w + x] * 65535.0, (double)src[((size_t)y * w + x) * c + k]);
  }
  /* area shrink by 2 = mean of 2 x 2 blocks (rounded) */
  CHECK_OK(dama_aug_resize(o, &v, NULL, 0, h / 2, w / 2, DAMA_RESIZE_AREA));
  for (int y = 0; y < h / 2; y++)
    for (int x = 0; x < w / 2; x++) {
      double s = 0;
      for (int j = 0; j < 4; j++) s += src[((size_t)(2 * y + j / 2) * w + 2 * x + j % 2) * c + 1];
      CHECK(fabs(o[((size_t)1 * (h / 2) + y) * (w / 2) + x] * 65535.0 - s / 4) <= 0.5 + 1e-2);
    }
  /* bilinear x2 of a horizontal ramp stays a ramp between samples, clamped at the edges */
  float ramp[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  dama_hwc vr = {ramp, DAMA_F32, 1, 8, 1, 0};
  float r2[16];
  CHECK_OK(dama_aug_resize(r2, &vr, NULL, 0, 1, 16, DAMA_RESIZE_BILINEAR));
  CHECK(r2[0] == 0 && r2[15] == 7);
  for (int x = 1; x < 15; x++) CHECK_CLOSE(r2[x], (x + 0.5) / 2 - 0.5, 1e-6);
  free(o); free(src);
}

DAMA_TEST(random_resized_crop_window) {
  int32_t t, l, hh, ww, f, flips = 0;
  for (int i = 0; i < 500; i++) {
    CHECK_OK(dama_aug_rrc_draw(&t, &l, &hh, &ww, &f, 100, 80, 0.08, 1.0, 3.0 / 4, 4.0 / 3, 0.5, 3, 0, (uint64_t)i));
    CHECK(hh > 0 && ww > 0 && t >= 0 && l >= 0 && t + hh <= 100 && l + ww <= 80);
    double area = (double)hh * ww / 8000.0;
    CHECK(area > 0.05 && area < 1.05);
    flips += f;
  }
  CHECK(flips > 200 && flips < 300);
  /* impossible scale: the centre fallback with the ratio clamp */
  CHECK_OK(dama_aug_rrc_draw(&t, &l, &hh, &ww, &f, 100, 10, 2.0, 3.0, 3.0 / 4, 4.0 / 3, 0, 3, 0, 0));
  CHECK(ww == 10 && hh == 13 && t == 43 && l == 0);
  uint16_t *src = random_u16(100, 80, 3);
  dama_hwc v = {src, DAMA_U16, 100, 80, 3, 0};
  float *o = malloc(sizeof(float) * 3 * 32 * 32);
  CHECK_OK(dama_aug_random_resized_crop(o, &v, NULL, 0, 32, 32, 0.08, 1, 0.75, 4.0 / 3, 0.5, 1, 2, 3));
  for (int i = 0; i < 3 * 32 * 32; i++) CHECK(o[i] >= 0 && o[i] <= 1);
  free(o); free(src);
}

DAMA_TEST(tensor_forms) {
  int64_t shape[3] = {70, 80, 7};
  dama_tensor *im = NULL, *o = NULL, *ov = NULL;
  CHECK_OK(dama_empty(&im, 3, shape, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  uint16_t *p = dama_data_ptr(im);
  for (int i = 0; i < 70 * 80 * 7; i++) p[i] = (uint16_t)lcg();
  CHECK_OK(dama_aug_train_tensor(&o, im, 128, 5, 0, 1));
  CHECK(o->ndim == 3 && o->shape[0] == 7 && o->shape[1] == 128 && o->shape[2] == 128 && o->dtype == DAMA_F32);
  float *ref = malloc(sizeof(float) * 7 * 128 * 128);
  dama_hwc v = {p, DAMA_U16, 70, 80, 7, 0};
  CHECK_OK(dama_aug_train(ref, &v, NULL, 0, 128, 5, 0, 1));
  CHECK(memcmp(ref, dama_data_ptr(o), sizeof(float) * 7 * 128 * 128) == 0);
  CHECK_OK(dama_aug_val_tensor(&ov, im, 48, 128));
  CHECK(ov->shape[0] == 7 && ov->shape[1] == 128);
  free(ref);
  dama_tensor_release(o); dama_tensor_release(ov); dama_tensor_release(im);
}

DAMA_TEST(argument_errors_name_the_problem) {
  uint16_t src[10 * 10 * 2] = {0};
  float out[2 * 128 * 128];
  dama_hwc v = {src, DAMA_U16, 10, 10, 2, 0};
  CHECK_STATUS(dama_aug_train(out, &v, NULL, 0, 128, 0, 0, 0), DAMA_ERR_SHAPE);
  CHECK(strstr(dama_last_error(), "crop size 64") != NULL);
  int32_t bad = 5;
  CHECK_STATUS(dama_aug_val(out, &v, &bad, 1, 4, 8), DAMA_ERR_INDEX);
  CHECK(strstr(dama_last_error(), "channels[0] = 5") != NULL);
  dama_hwc vi = {src, DAMA_I32, 10, 10, 2, 0};
  CHECK_STATUS(dama_aug_resize(out, &vi, NULL, 0, 4, 4, 1), DAMA_ERR_DTYPE);
  CHECK_STATUS(dama_aug_crop_resize(out, &v, NULL, 0, 5, 5, 6, 6, 4, 4, 1, 0), DAMA_ERR_ARG);
}
