/* Augmentation of H x W x C images into f32 C x H x W tensors: the reference's training and validation
 * transforms (OpenCV on uint16, reproduced bit for bit), resizing and RandomResizedCrop.
 *
 * The training transform is one pass per output pixel: flips and the shift are undone to find the pixel
 * of the rotated image, cv2.warpAffine's fixed-point inverse map finds its four neighbours in the
 * upscaled crop, and an integer upscale (pixel replication, what INTER_AREA does for 2x) is just an
 * index map from the upscaled crop to the source, so the upscaled image is never built. A non-integer
 * upscale builds it once (rounded to the source type, as cv2 would). */
#define _POSIX_C_SOURCE 200809L
#include "data/data_internal.h"
#include <math.h>
#include <stdlib.h>

#define MAX_CH 256

/* The vector helpers below are static and inlined: no ABI is at stake when the build lacks -mavx. */
#pragma GCC diagnostic ignored "-Wpsabi"

/* ---- per-thread scratch memory (the loader's workers free theirs on exit) ---- */
static _Thread_local void *tl_scratch[3];
static _Thread_local size_t tl_scratch_n[3];

static void *scratch(int i, size_t n) {
  if (tl_scratch_n[i] < n) {
    void *p = realloc(tl_scratch[i], n);
    if (!p) return NULL;
    tl_scratch[i] = p;
    tl_scratch_n[i] = n;
  }
  return tl_scratch[i];
}

void dama_aug_thread_cleanup(void) {
  for (int i = 0; i < 3; i++) { free(tl_scratch[i]); tl_scratch[i] = NULL; tl_scratch_n[i] = 0; }
}

/* ---- argument checks ---- */
static dama_status check_src(const char *op, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                             int32_t *ch, int32_t *nch) {
  DAMA_CHECK(src && src->data, DAMA_ERR_ARG, "%s: src: expected an image, got NULL", op);
  DAMA_CHECK(src->dtype == DAMA_U8 || src->dtype == DAMA_U16 || src->dtype == DAMA_F32, DAMA_ERR_DTYPE,
             "%s: src dtype: expected u8, u16 or f32, got %s", op, dama_dtype_name((dama_dtype)src->dtype));
  DAMA_CHECK(src->h > 0 && src->w > 0 && src->c > 0, DAMA_ERR_SHAPE,
             "%s: src: expected a positive H x W x C, got %d x %d x %d", op, src->h, src->w, src->c);
  DAMA_CHECK(src->row_stride == 0 || src->row_stride >= (int64_t)src->w * src->c, DAMA_ERR_ARG,
             "%s: row_stride: expected 0 or >= w*c = %lld, got %lld", op, (long long)src->w * src->c,
             (long long)src->row_stride);
  if (!channels || n_channels <= 0) {
    DAMA_CHECK(src->c <= MAX_CH, DAMA_ERR_ARG, "%s: expected at most %d channels, got %d", op, MAX_CH, src->c);
    for (int32_t k = 0; k < src->c; k++) ch[k] = k;
    *nch = src->c;
  } else {
    DAMA_CHECK(n_channels <= MAX_CH, DAMA_ERR_ARG, "%s: n_channels: expected at most %d, got %d", op, MAX_CH, n_channels);
    for (int32_t k = 0; k < n_channels; k++) {
      DAMA_CHECK(channels[k] >= 0 && channels[k] < src->c, DAMA_ERR_INDEX,
                 "%s: channels[%d] = %d: expected an index in [0, %d)", op, k, channels[k], src->c);
      ch[k] = channels[k];
    }
    *nch = n_channels;
  }
  return DAMA_OK;
}

static inline int64_t row_stride_of(const dama_hwc *s) { return s->row_stride ? s->row_stride : (int64_t)s->w * s->c; }

/* Load element i of a u8/u16/f32 buffer as float. `dt` is a constant at every call site after inlining. */
static inline __attribute__((always_inline)) float ld(const void *base, int64_t i, int dt) {
  if (dt == DAMA_U16) return (float)((const uint16_t *)base)[i];
  if (dt == DAMA_U8) return (float)((const uint8_t *)base)[i];
  return ((const float *)base)[i];
}
/* Round a resampled value to the source type the way cv2's saturate_cast does (nearest, ties to even,
 * clamped), then scale like ToTensor. */
static inline __attribute__((always_inline)) float finish(float v, int dt) {
  if (dt == DAMA_U16) { v = nearbyintf(v); v = v < 0.f ? 0.f : (v > 65535.f ? 65535.f : v); return v / 65535.0f; }
  if (dt == DAMA_U8) { v = nearbyintf(v); v = v < 0.f ? 0.f : (v > 255.f ? 255.f : v); return v / 255.0f; }
  return v;
}
static inline __attribute__((always_inline)) float round_to(float v, int dt) {
  if (dt == DAMA_U16) { v = nearbyintf(v); return v < 0.f ? 0.f : (v > 65535.f ? 65535.f : v); }
  if (dt == DAMA_U8) { v = nearbyintf(v); return v < 0.f ? 0.f : (v > 255.f ? 255.f : v); }
  return v;
}
static inline float scale_of(int dt) { return dt == DAMA_U16 ? 65535.0f : (dt == DAMA_U8 ? 255.0f : 1.0f); }

/* GCC vector extensions: one pixel's (up to 8) uint16 channels as one 8-lane float vector. */
typedef float v8f __attribute__((vector_size(32)));
typedef uint16_t v8u16 __attribute__((vector_size(16)));

/* One pixel's c channels as lanes 0..c-1: a 16-byte load (one instruction) where it cannot run past the
 * end of the image (a copy through the stack would stall on store forwarding); other lanes are unused. */
static inline __attribute__((always_inline)) v8f load_px(const uint16_t *p, int c, const uint16_t *end) {
  v8u16 t;
  if (p + 8 <= end) memcpy(&t, p, sizeof t);
  else {
    uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(tmp, p, sizeof(uint16_t) * (size_t)c);
    memcpy(&t, tmp, sizeof t);
  }
  return __builtin_convertvector(t, v8f);
}

/* ---- separable resampling tables (cv2 resize semantics, ksize 2) ---- */
typedef struct axis_tab { int32_t *i0, *i1; float *a0, *a1; } axis_tab;

/* mode: DAMA_RESIZE_BILINEAR, DAMA_RESIZE_AREA (the enlarging "area" variant), DAMA_RESIZE_NEAREST. */
static void make_axis(axis_tab *t, int32_t src, int32_t dst, int mode) {
  double inv = (double)dst / src, sc = 1.0 / inv;
  for (int32_t d = 0; d < dst; d++) {
    int32_t s;
    float f;
    if (mode == DAMA_RESIZE_NEAREST) {
      s = (int32_t)floor(d * sc);
      if (s > src - 1) s = src - 1;
      f = 0.f;
    } else if (mode == DAMA_RESIZE_AREA) {
      s = (int32_t)floor(d * sc);
      f = (float)((d + 1) - (s + 1) * inv);
      f = f <= 0 ? 0.f : f - floorf(f);
    } else {
      f = (float)((d + 0.5) * sc - 0.5);
      s = (int32_t)floorf(f);
      f -= (float)s;
    }
    if (s < 0) { s = 0; f = 0.f; }
    if (s >= src - 1) { s = src - 1; f = 0.f; }
    t->i0[d] = s;
    t->i1[d] = s + 1 < src ? s + 1 : src - 1;
    t->a0[d] = 1.f - f;
    t->a1[d] = f;
  }
}

/* Box average (cv2 INTER_AREA when shrinking on both axes): per destination pixel the source pixels
 * it covers, weighted by the covered fraction. */
typedef struct box_tab { int32_t *start, *count; float *w; int32_t maxk; } box_tab;

static void make_box(box_tab *t, int32_t src, int32_t dst) {
  double sc = (double)src / dst;
  int32_t maxk = (int32_t)ceil(sc) + 1;
  t->maxk = maxk;
  for (int32_t d = 0; d < dst; d++) {
    double f1 = d * sc, f2 = f1 + sc;
    int32_t s1 = (int32_t)floor(f1);
    int32_t n = 0;
    for (int32_t s = s1; s < src && s < f2 && n < maxk; s++) {
      double lo = s > f1 ? s : f1, hi = s + 1 < f2 ? s + 1 : f2;
      if (hi - lo > 1e-9) { if (n == 0) t->start[d] = s; t->w[d * maxk + n] = (float)((hi - lo) / sc); n++; }
    }
    t->count[d] = n;
  }
}

/* Resize the window [top, top+ch) x [left, left+cw) of src to oh x ow into `out` (plane stride oh*ow,
 * C x H x W) scaled, or into `out_raw` (H x W x nch, rounded to the source type, unscaled) when
 * out_raw != NULL. hflip mirrors the output horizontally. */
static dama_status resize_window(const char *op, float *out, float *out_raw, const dama_hwc *src, const int32_t *ch,
                                 int32_t nch, int32_t top, int32_t left, int32_t wh, int32_t ww, int32_t oh, int32_t ow,
                                 int mode, int hflip) {
  DAMA_CHECK(oh > 0 && ow > 0, DAMA_ERR_ARG, "%s: output size: expected positive, got %d x %d", op, oh, ow);
  DAMA_CHECK(wh > 0 && ww > 0 && top >= 0 && left >= 0 && top + wh <= src->h && left + ww <= src->w, DAMA_ERR_ARG,
             "%s: window (top %d, left %d, %d x %d): expected inside the %d x %d image", op, top, left, wh, ww, src->h, src->w);
  const int64_t rs = row_stride_of(src);
  const int c = src->c, dt = src->dtype;
  const uint8_t *base = (const uint8_t *)src->data + ((int64_t)top * rs + (int64_t)left * c) * dama_dtype_size((dama_dtype)dt);
  const int64_t plane = (int64_t)oh * ow;
  const float inv = 1.0f / scale_of(dt);
  (void)inv;
  int shrink = mode == DAMA_RESIZE_AREA && wh >= oh && ww >= ow;
  if (shrink) {
    int32_t mx = (int32_t)ceil((double)ww / ow) + 1, my = (int32_t)ceil((double)wh / oh) + 1;
    size_t need = (size_t)(2 * ow + ow * mx + 2 * oh + oh * my) * 4;
    char *mem = scratch(0, need);
    DAMA_CHECK(mem, DAMA_ERR_OOM, "%s: out of memory for resize tables", op);
    box_tab bx = {(int32_t *)mem, (int32_t *)mem + ow, (float *)mem + 2 * ow, 0};
    box_tab by = {(int32_t *)mem + 2 * ow + ow * mx, (int32_t *)mem + 2 * ow + ow * mx + oh,
                  (float *)mem + 2 * ow + ow * mx + 2 * oh, 0};
    make_box(&bx, ww, ow);
    make_box(&by, wh, oh);
    for (int32_t y = 0; y < oh; y++)
      for (int32_t x = 0; x < ow; x++) {
        int32_t xo = hflip ? ow - 1 - x : x;
        for (int32_t k = 0; k < nch; k++) {
          float acc = 0.f;
          for (int32_t j = 0; j < by.count[y]; j++) {
            float racc = 0.f;
            int64_t roff = (int64_t)(by.start[y] + j) * rs + ch[k];
            for (int32_t i = 0; i < bx.count[x]; i++)
              racc += ld(base, roff + (int64_t)(bx.start[x] + i) * c, dt) * bx.w[x * bx.maxk + i];
            acc += racc * by.w[y * by.maxk + j];
          }
          if (out_raw) out_raw[((int64_t)y * ow + xo) * nch + k] = round_to(acc, dt);
          else out[k * plane + (int64_t)y * ow + xo] = finish(acc, dt);
        }
      }
    return DAMA_OK;
  }
  int m = mode == DAMA_RESIZE_AREA ? DAMA_RESIZE_AREA : mode;
  size_t need = (size_t)(ow + oh) * 16;
  char *mem = scratch(0, need);
  DAMA_CHECK(mem, DAMA_ERR_OOM, "%s: out of memory for resize tables", op);
  axis_tab tx = {(int32_t *)mem, (int32_t *)mem + ow, (float *)mem + 2 * ow, (float *)mem + 3 * ow};
  char *my = mem + (size_t)ow * 16;
  axis_tab ty = {(int32_t *)my, (int32_t *)my + oh, (float *)my + 2 * oh, (float *)my + 3 * oh};
  make_axis(&tx, ww, ow, m);
  make_axis(&ty, wh, oh, m);
  int vec = dt == DAMA_U16 && !out_raw && nch == c && c <= 8;
  for (int32_t k = 0; k < nch && vec; k++) vec = ch[k] == k;
  if (vec) {
    const uint16_t *b16 = (const uint16_t *)base;
    const uint16_t *end = (const uint16_t *)src->data + (int64_t)(src->h - 1) * rs + (int64_t)src->w * c;
    const float magic = 12582912.0f; /* adding and subtracting 1.5 * 2^23 rounds to nearest, ties to even */
    /* the horizontal pass of a source row is computed once and kept while output rows use it */
    char *hbm = scratch(2, sizeof(v8f) * (2 * (size_t)ow + 1));
    DAMA_CHECK(hbm, DAMA_ERR_OOM, "%s: out of memory for the row buffers", op);
    v8f *hb = (v8f *)(hbm + ((32 - ((uintptr_t)hbm & 31)) & 31)); /* vectors need 32-byte alignment */
    v8f *hrow[2] = {hb, hb + ow};
    int32_t hidx[2] = {-1, -1};
    for (int32_t y = 0; y < oh; y++) {
      const int32_t w0 = ty.i0[y], w1 = ty.i1[y];
      int s0 = hidx[0] == w0 ? 0 : (hidx[1] == w0 ? 1 : -1), s1;
      if (s0 < 0) s0 = hidx[0] == w1 ? 1 : 0; /* do not evict the row w1 needs */
      if (hidx[s0] != w0) {
        const uint16_t *r = b16 + (int64_t)w0 * rs;
        for (int32_t x = 0; x < ow; x++)
          hrow[s0][x] = load_px(r + (int64_t)tx.i0[x] * c, c, end) * tx.a0[x] + load_px(r + (int64_t)tx.i1[x] * c, c, end) * tx.a1[x];
        hidx[s0] = w0;
      }
      s1 = w1 == w0 ? s0 : 1 - s0;
      if (hidx[s1] != w1) {
        const uint16_t *r = b16 + (int64_t)w1 * rs;
        for (int32_t x = 0; x < ow; x++)
          hrow[s1][x] = load_px(r + (int64_t)tx.i0[x] * c, c, end) * tx.a0[x] + load_px(r + (int64_t)tx.i1[x] * c, c, end) * tx.a1[x];
        hidx[s1] = w1;
      }
      v8f *hr[2] = {hrow[s0], hrow[s1]};
      const float b0 = ty.a0[y], b1 = ty.a1[y];
      for (int32_t x = 0; x < ow; x++) {
        v8f v = hr[0][x] * b0 + hr[1][x] * b1;
        v = ((v + magic) - magic) / 65535.0f; /* ToTensor's correctly rounded division */
        const int32_t xo = hflip ? ow - 1 - x : x;
        for (int k = 0; k < c; k++) out[k * plane + (int64_t)y * ow + xo] = v[k];
      }
    }
    return DAMA_OK;
  }
#define RESIZE_LOOP(DT)                                                                                 \
  for (int32_t y = 0; y < oh; y++) {                                                                    \
    const int64_t r0 = (int64_t)ty.i0[y] * rs, r1 = (int64_t)ty.i1[y] * rs;                             \
    const float b0 = ty.a0[y], b1 = ty.a1[y];                                                           \
    for (int32_t x = 0; x < ow; x++) {                                                                  \
      const int64_t c0 = (int64_t)tx.i0[x] * c, c1 = (int64_t)tx.i1[x] * c;                             \
      const float a0 = tx.a0[x], a1 = tx.a1[x];                                                         \
      const int32_t xo = hflip ? ow - 1 - x : x;                                                        \
      for (int32_t k = 0; k < nch; k++) {                                                               \
        const int64_t q = ch[k];                                                                        \
        float h0 = ld(base, r0 + c0 + q, DT) * a0 + ld(base, r0 + c1 + q, DT) * a1;                     \
        float h1 = ld(base, r1 + c0 + q, DT) * a0 + ld(base, r1 + c1 + q, DT) * a1;                     \
        float v = h0 * b0 + h1 * b1;                                                                    \
        if (out_raw) out_raw[((int64_t)y * ow + xo) * nch + k] = round_to(v, DT);                       \
        else out[k * plane + (int64_t)y * ow + xo] = finish(v, DT);                                     \
      }                                                                                                 \
    }                                                                                                   \
  }
  if (dt == DAMA_U16) { RESIZE_LOOP(DAMA_U16) }
  else if (dt == DAMA_U8) { RESIZE_LOOP(DAMA_U8) }
  else { RESIZE_LOOP(DAMA_F32) }
#undef RESIZE_LOOP
  return DAMA_OK;
}

/* ---- the training transform ---- */

dama_status dama_aug_train_draw(dama_aug_params *p, int32_t h, int32_t w, int32_t out_size,
                                uint64_t seed, uint64_t epoch, uint64_t index) {
  DAMA_CHECK(p, DAMA_ERR_ARG, "aug_train_draw: p: expected a parameter struct, got NULL");
  DAMA_CHECK(out_size >= 2, DAMA_ERR_ARG, "aug_train_draw: out_size: expected >= 2, got %d", out_size);
  int32_t cs = out_size / 2;
  DAMA_CHECK(h >= cs && w >= cs, DAMA_ERR_SHAPE,
             "aug_train_draw: image %d x %d: expected at least the crop size %d x %d", h, w, cs, cs);
  dama_prng r;
  dama_prng_init(&r, seed ^ DAMA_KEY_AUG, epoch, index << 4);
  p->crop_size = cs;
  p->out_size = out_size;
  p->crop_top = (int32_t)dama_prng_below(&r, (uint32_t)(h - cs + 1));
  p->crop_left = (int32_t)dama_prng_below(&r, (uint32_t)(w - cs + 1));
  p->angle = -90.0 + 180.0 * dama_prng_double(&r);
  int32_t s = (int32_t)(0.3 * out_size);
  p->shift_x = (int32_t)dama_prng_below(&r, (uint32_t)(2 * s + 1)) - s;
  p->shift_y = (int32_t)dama_prng_below(&r, (uint32_t)(2 * s + 1)) - s;
  p->hflip = dama_prng_u32(&r) >> 31;
  p->vflip = dama_prng_u32(&r) >> 31;
  return DAMA_OK;
}

/* cv2.warpAffine's bilinear weights: the 1/32-pixel table, products in float. */
static float g_wtab[32 * 32][4];
static int g_wtab_ready;

static void init_wtab(void) {
  if (__atomic_load_n(&g_wtab_ready, __ATOMIC_ACQUIRE)) return;
  for (int fy = 0; fy < 32; fy++)
    for (int fx = 0; fx < 32; fx++) {
      float ty[2] = {1.f - fy * (1.f / 32), fy * (1.f / 32)}, tx[2] = {1.f - fx * (1.f / 32), fx * (1.f / 32)};
      float *w = g_wtab[fy * 32 + fx];
      w[0] = ty[0] * tx[0]; w[1] = ty[0] * tx[1]; w[2] = ty[1] * tx[0]; w[3] = ty[1] * tx[1];
    }
  __atomic_store_n(&g_wtab_ready, 1, __ATOMIC_RELEASE); /* racing initialisers write the same values */
}

/* One fused pass. U (the upscaled S x S crop) pixel (yy, xx) channel q lives at element
 * rowoff[yy] + coloff[xx] + q of `base` (of dtype DT). */
static inline __attribute__((always_inline)) void train_pass(float *out, const void *base, const int64_t *rowoff,
                                                             const int64_t *coloff, const int32_t *ch, int32_t nch,
                                                             int32_t S, const double *M, const int32_t *adelta,
                                                             const int32_t *bdelta, const dama_aug_params *p, int DT) {
  const int64_t plane = (int64_t)S * S;
  for (int32_t y = 0; y < S; y++) {
    int32_t yr = (p->vflip ? S - 1 - y : y) - p->shift_y;
    float *orow = out + (int64_t)y * S;
    if (yr < 0 || yr >= S) {
      for (int32_t k = 0; k < nch; k++) memset(orow + k * plane, 0, sizeof(float) * (size_t)S);
      continue;
    }
    const int32_t X0 = (int32_t)lrint((M[1] * yr + M[2]) * 1024) + 16;
    const int32_t Y0 = (int32_t)lrint((M[4] * yr + M[5]) * 1024) + 16;
    for (int32_t x = 0; x < S; x++) {
      int32_t xr = (p->hflip ? S - 1 - x : x) - p->shift_x;
      if (xr < 0 || xr >= S) {
        for (int32_t k = 0; k < nch; k++) orow[k * plane + x] = 0.f;
        continue;
      }
      int32_t X = (X0 + adelta[xr]) >> 5, Y = (Y0 + bdelta[xr]) >> 5;
      int32_t x0 = X >> 5, y0 = Y >> 5;
      const float *w = g_wtab[(Y & 31) * 32 + (X & 31)];
      if ((unsigned)x0 < (unsigned)(S - 1) && (unsigned)y0 < (unsigned)(S - 1)) {
        const int64_t o00 = rowoff[y0] + coloff[x0], o01 = rowoff[y0] + coloff[x0 + 1];
        const int64_t o10 = rowoff[y0 + 1] + coloff[x0], o11 = rowoff[y0 + 1] + coloff[x0 + 1];
        for (int32_t k = 0; k < nch; k++) {
          const int64_t q = ch[k];
          float v = ld(base, o00 + q, DT) * w[0] + ld(base, o01 + q, DT) * w[1] + ld(base, o10 + q, DT) * w[2] +
                    ld(base, o11 + q, DT) * w[3];
          orow[k * plane + x] = finish(v, DT);
        }
      } else if (x0 >= S || x0 + 1 < 0 || y0 >= S || y0 + 1 < 0) {
        for (int32_t k = 0; k < nch; k++) orow[k * plane + x] = 0.f;
      } else {
        int ok00 = x0 >= 0 && y0 >= 0, ok01 = x0 + 1 < S && y0 >= 0;
        int ok10 = x0 >= 0 && y0 + 1 < S, ok11 = x0 + 1 < S && y0 + 1 < S;
        for (int32_t k = 0; k < nch; k++) {
          const int64_t q = ch[k];
          float v00 = ok00 ? ld(base, rowoff[y0] + coloff[x0] + q, DT) : 0.f;
          float v01 = ok01 ? ld(base, rowoff[y0] + coloff[x0 + 1] + q, DT) : 0.f;
          float v10 = ok10 ? ld(base, rowoff[y0 + 1] + coloff[x0] + q, DT) : 0.f;
          float v11 = ok11 ? ld(base, rowoff[y0 + 1] + coloff[x0 + 1] + q, DT) : 0.f;
          orow[k * plane + x] = finish(v00 * w[0] + v01 * w[1] + v10 * w[2] + v11 * w[3], DT);
        }
      }
    }
  }
}

/* The training pass for the common case of uint16 sources of up to 8 channels, all of them in order: one
 * pixel's channels are one 8-lane vector, with the same float operations in the same order as the scalar
 * pass, so the results are bit-identical. */
static inline __attribute__((always_inline)) void train_pass_u16v(float *out, const uint16_t *base, const int64_t *rowoff,
                                                                  const int64_t *coloff, int c, int32_t S, const double *M,
                                                                  const int32_t *adelta, const int32_t *bdelta,
                                                                  const dama_aug_params *p, const uint16_t *end) {
  const int64_t plane = (int64_t)S * S;
  const v8f zero = {0, 0, 0, 0, 0, 0, 0, 0};
  const float magic = 12582912.0f; /* 1.5 * 2^23: adding and subtracting it rounds to nearest, ties to even */
  v8f row[512]; /* one output row, pixel-major; written out plane by plane (S <= 512 here) */
  for (int32_t y = 0; y < S; y++) {
    int32_t yr = (p->vflip ? S - 1 - y : y) - p->shift_y;
    float *orow = out + (int64_t)y * S;
    if (yr < 0 || yr >= S) {
      for (int k = 0; k < c; k++) memset(orow + k * plane, 0, sizeof(float) * (size_t)S);
      continue;
    }
    const int32_t X0 = (int32_t)lrint((M[1] * yr + M[2]) * 1024) + 16;
    const int32_t Y0 = (int32_t)lrint((M[4] * yr + M[5]) * 1024) + 16;
    for (int32_t x = 0; x < S; x++) {
      int32_t xr = (p->hflip ? S - 1 - x : x) - p->shift_x;
      v8f v;
      if (xr < 0 || xr >= S) v = zero;
      else {
        int32_t X = (X0 + adelta[xr]) >> 5, Y = (Y0 + bdelta[xr]) >> 5;
        int32_t x0 = X >> 5, y0 = Y >> 5;
        const float *w = g_wtab[(Y & 31) * 32 + (X & 31)];
        if ((unsigned)x0 < (unsigned)(S - 1) && (unsigned)y0 < (unsigned)(S - 1)) { /* all four inside */
          const uint16_t *r0 = base + rowoff[y0], *r1 = base + rowoff[y0 + 1];
          const int64_t c0 = coloff[x0], c1 = coloff[x0 + 1];
          v = load_px(r0 + c0, c, end) * w[0] + load_px(r0 + c1, c, end) * w[1] + load_px(r1 + c0, c, end) * w[2] +
              load_px(r1 + c1, c, end) * w[3];
          v = ((v + magic) - magic) / 65535.0f; /* ToTensor's correctly rounded division */
        } else if (x0 >= S || x0 + 1 < 0 || y0 >= S || y0 + 1 < 0) v = zero;
        else {
          int ix0 = x0 >= 0, ix1 = x0 + 1 < S, iy0 = y0 >= 0, iy1 = y0 + 1 < S;
          v8f a = iy0 && ix0 ? load_px(base + rowoff[y0] + coloff[x0], c, end) : zero;
          v8f b = iy0 && ix1 ? load_px(base + rowoff[y0] + coloff[x0 + 1], c, end) : zero;
          v8f d = iy1 && ix0 ? load_px(base + rowoff[y0 + 1] + coloff[x0], c, end) : zero;
          v8f e = iy1 && ix1 ? load_px(base + rowoff[y0 + 1] + coloff[x0 + 1], c, end) : zero;
          v = a * w[0] + b * w[1] + d * w[2] + e * w[3];
          v = ((v + magic) - magic) / 65535.0f; /* ToTensor's correctly rounded division */
        }
      }
      row[x] = v;
    }
    for (int k = 0; k < c; k++) {
      float *o = orow + k * plane;
      for (int32_t x = 0; x < S; x++) o[x] = row[x][k];
    }
  }
}

dama_status dama_aug_train_apply(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                                 const dama_aug_params *p) {
  int32_t ch[MAX_CH], nch = 0;
  DAMA_TRY(check_src("aug_train_apply", src, channels, n_channels, ch, &nch));
  DAMA_CHECK(out && p, DAMA_ERR_ARG, "aug_train_apply: out and p: expected non-NULL");
  const int32_t S = p->out_size, cs = p->crop_size;
  DAMA_CHECK(S >= 2 && S <= 65536 && cs >= 1, DAMA_ERR_ARG,
             "aug_train_apply: out_size %d, crop_size %d: expected out_size in [2, 65536] and crop_size >= 1", S, cs);
  DAMA_CHECK(p->crop_top >= 0 && p->crop_left >= 0 && p->crop_top + cs <= src->h && p->crop_left + cs <= src->w,
             DAMA_ERR_ARG, "aug_train_apply: crop (top %d, left %d, size %d): expected inside the %d x %d image",
             p->crop_top, p->crop_left, cs, src->h, src->w);
  DAMA_CHECK(isfinite(p->angle), DAMA_ERR_ARG, "aug_train_apply: angle: expected a finite number");
  init_wtab();
  /* Inverse of cv2.getRotationMatrix2D((S/2, S/2), angle, 1), computed the way warpAffine does. */
  double a = p->angle * (3.14159265358979323846 / 180.0);
  double al = cos(a), be = sin(a);
  double cx = (float)(S / 2.0), cy = cx;
  double M[6] = {al, be, (1 - al) * cx - be * cy, -be, al, be * cx + (1 - al) * cy};
  double D = M[0] * M[4] - M[1] * M[3];
  D = D != 0 ? 1. / D : 0;
  double A11 = M[4] * D, A22 = M[0] * D;
  M[0] = A11; M[1] *= -D; M[3] *= -D; M[4] = A22;
  double b1 = -M[0] * M[2] - M[1] * M[5], b2 = -M[3] * M[2] - M[4] * M[5];
  M[2] = b1; M[5] = b2;

  size_t tabs = (size_t)S * (2 * sizeof(int64_t) + 2 * sizeof(int32_t));
  char *mem = scratch(1, tabs);
  DAMA_CHECK(mem, DAMA_ERR_OOM, "aug_train_apply: out of memory for tables");
  int64_t *rowoff = (int64_t *)mem, *coloff = rowoff + S;
  int32_t *adelta = (int32_t *)(coloff + S), *bdelta = adelta + S;
  for (int32_t x = 0; x < S; x++) {
    adelta[x] = (int32_t)lrint(M[0] * x * 1024);
    bdelta[x] = (int32_t)lrint(M[3] * x * 1024);
  }
  const int dt = src->dtype;
  const void *base;
  const int32_t *chp = ch;
  int32_t ident[MAX_CH];
  if (S % cs == 0) {
    /* Integer ratio: INTER_AREA enlargement is pixel replication, an index map into the source. */
    const int32_t k = S / cs;
    const int64_t rs = row_stride_of(src);
    for (int32_t i = 0; i < S; i++) {
      rowoff[i] = (int64_t)(p->crop_top + i / k) * rs;
      coloff[i] = (int64_t)(p->crop_left + i / k) * src->c;
    }
    base = src->data;
  } else {
    /* Build the upscaled crop (rounded to the source type), then sample it as an f32 image. */
    float *U = scratch(2, (size_t)S * S * nch * sizeof(float));
    DAMA_CHECK(U, DAMA_ERR_OOM, "aug_train_apply: out of memory for the upscaled crop");
    DAMA_TRY(resize_window("aug_train_apply", NULL, U, src, ch, nch, p->crop_top, p->crop_left, cs, cs, S, S,
                           DAMA_RESIZE_AREA, 0));
    for (int32_t i = 0; i < S; i++) { rowoff[i] = (int64_t)i * S * nch; coloff[i] = (int64_t)i * nch; }
    for (int32_t k = 0; k < nch; k++) ident[k] = k;
    chp = ident;
    base = U;
    /* U holds source-type values as floats: resample as f32, then round and scale like the source. */
    train_pass(out, base, rowoff, coloff, chp, nch, S, M, adelta, bdelta, p, DAMA_F32);
    if (dt != DAMA_F32) {
      const float sc = scale_of(dt);
      int64_t n = (int64_t)S * S * nch;
      for (int64_t i = 0; i < n; i++) {
        float v = out[i];
        v = nearbyintf(v);
        v = v < 0.f ? 0.f : (v > sc ? sc : v);
        out[i] = v / sc;
      }
    }
    return DAMA_OK;
  }
  int all_in_order = nch == src->c && nch <= 8;
  for (int32_t k = 0; k < nch && all_in_order; k++) all_in_order = chp[k] == k;
  const uint16_t *end = (const uint16_t *)src->data + (int64_t)(src->h - 1) * row_stride_of(src) + (int64_t)src->w * src->c;
  if (S > 512) all_in_order = 0; /* the vector pass buffers one row of at most 512 pixels */
  if (dt == DAMA_U16 && all_in_order && nch == 7)
    train_pass_u16v(out, base, rowoff, coloff, 7, S, M, adelta, bdelta, p, end);
  else if (dt == DAMA_U16 && all_in_order)
    train_pass_u16v(out, base, rowoff, coloff, nch, S, M, adelta, bdelta, p, end);
  else if (dt == DAMA_U16) train_pass(out, base, rowoff, coloff, chp, nch, S, M, adelta, bdelta, p, DAMA_U16);
  else if (dt == DAMA_U8) train_pass(out, base, rowoff, coloff, chp, nch, S, M, adelta, bdelta, p, DAMA_U8);
  else train_pass(out, base, rowoff, coloff, chp, nch, S, M, adelta, bdelta, p, DAMA_F32);
  return DAMA_OK;
}

dama_status dama_aug_train(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                           int32_t out_size, uint64_t seed, uint64_t epoch, uint64_t index) {
  DAMA_CHECK(src, DAMA_ERR_ARG, "aug_train: src: expected an image, got NULL");
  dama_aug_params p;
  DAMA_TRY(dama_aug_train_draw(&p, src->h, src->w, out_size, seed, epoch, index));
  return dama_aug_train_apply(out, src, channels, n_channels, &p);
}

/* ---- validation, resize, crops ---- */

dama_status dama_aug_val(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                         int32_t crop_size, int32_t out_size) {
  int32_t ch[MAX_CH], nch = 0;
  DAMA_TRY(check_src("aug_val", src, channels, n_channels, ch, &nch));
  DAMA_CHECK(out, DAMA_ERR_ARG, "aug_val: out: expected non-NULL");
  DAMA_CHECK(out_size > 0, DAMA_ERR_ARG, "aug_val: out_size: expected > 0, got %d", out_size);
  if (crop_size <= 0) crop_size = out_size * 3 / 8;
  if (crop_size < 1) crop_size = 1;
  DAMA_CHECK(crop_size <= src->h && crop_size <= src->w, DAMA_ERR_SHAPE,
             "aug_val: image %d x %d: expected at least the crop size %d", src->h, src->w, crop_size);
  return resize_window("aug_val", out, NULL, src, ch, nch, (src->h - crop_size) / 2, (src->w - crop_size) / 2,
                       crop_size, crop_size, out_size, out_size, DAMA_RESIZE_AREA, 0);
}

dama_status dama_aug_crop_resize(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                                 int32_t top, int32_t left, int32_t h, int32_t w, int32_t out_h, int32_t out_w,
                                 int32_t mode, int32_t hflip) {
  int32_t ch[MAX_CH], nch = 0;
  DAMA_TRY(check_src("aug_crop_resize", src, channels, n_channels, ch, &nch));
  DAMA_CHECK(out, DAMA_ERR_ARG, "aug_crop_resize: out: expected non-NULL");
  DAMA_CHECK(mode >= 0 && mode <= 2, DAMA_ERR_ARG, "aug_crop_resize: mode: expected 0 (nearest), 1 (bilinear) or 2 (area), got %d", mode);
  return resize_window("aug_crop_resize", out, NULL, src, ch, nch, top, left, h, w, out_h, out_w, mode, hflip);
}

dama_status dama_aug_resize(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                            int32_t out_h, int32_t out_w, int32_t mode) {
  DAMA_CHECK(src, DAMA_ERR_ARG, "aug_resize: src: expected an image, got NULL");
  return dama_aug_crop_resize(out, src, channels, n_channels, 0, 0, src->h, src->w, out_h, out_w, mode, 0);
}

dama_status dama_aug_rrc_draw(int32_t *top, int32_t *left, int32_t *h, int32_t *w, int32_t *hflip,
                              int32_t src_h, int32_t src_w, double scale_lo, double scale_hi,
                              double ratio_lo, double ratio_hi, double hflip_p,
                              uint64_t seed, uint64_t epoch, uint64_t index) {
  DAMA_CHECK(top && left && h && w, DAMA_ERR_ARG, "aug_rrc_draw: top, left, h, w: expected non-NULL");
  DAMA_CHECK(src_h > 0 && src_w > 0, DAMA_ERR_SHAPE, "aug_rrc_draw: image %d x %d: expected positive", src_h, src_w);
  DAMA_CHECK(scale_lo > 0 && scale_lo <= scale_hi && ratio_lo > 0 && ratio_lo <= ratio_hi, DAMA_ERR_ARG,
             "aug_rrc_draw: scale (%g, %g), ratio (%g, %g): expected 0 < lo <= hi", scale_lo, scale_hi, ratio_lo, ratio_hi);
  dama_prng r;
  dama_prng_init(&r, seed ^ DAMA_KEY_AUG, epoch, index << 6);
  double area = (double)src_h * src_w, lr0 = log(ratio_lo), lr1 = log(ratio_hi);
  int found = 0;
  for (int t = 0; t < 10 && !found; t++) {
    double ta = area * (scale_lo + (scale_hi - scale_lo) * dama_prng_double(&r));
    double ar = exp(lr0 + (lr1 - lr0) * dama_prng_double(&r));
    int32_t ww = (int32_t)nearbyint(sqrt(ta * ar)), hh = (int32_t)nearbyint(sqrt(ta / ar));
    if (ww > 0 && ww <= src_w && hh > 0 && hh <= src_h) {
      *top = (int32_t)dama_prng_below(&r, (uint32_t)(src_h - hh + 1));
      *left = (int32_t)dama_prng_below(&r, (uint32_t)(src_w - ww + 1));
      *h = hh; *w = ww;
      found = 1;
    }
  }
  if (!found) {
    double in_ratio = (double)src_w / src_h;
    int32_t ww = src_w, hh = src_h;
    if (in_ratio < ratio_lo) { ww = src_w; hh = (int32_t)nearbyint(ww / ratio_lo); }
    else if (in_ratio > ratio_hi) { hh = src_h; ww = (int32_t)nearbyint(hh * ratio_hi); }
    *top = (src_h - hh) / 2; *left = (src_w - ww) / 2; *h = hh; *w = ww;
  }
  /* The flip draw comes from its own block so it does not depend on the number of tries. */
  dama_prng f;
  dama_prng_init(&f, seed ^ DAMA_KEY_AUG, epoch, (index << 6) | 63);
  int32_t flip = hflip_p > 0 && dama_prng_double(&f) < hflip_p;
  if (hflip) *hflip = flip;
  return DAMA_OK;
}

dama_status dama_aug_random_resized_crop(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                                         int32_t out_h, int32_t out_w, double scale_lo, double scale_hi,
                                         double ratio_lo, double ratio_hi, double hflip_p,
                                         uint64_t seed, uint64_t epoch, uint64_t index) {
  DAMA_CHECK(src, DAMA_ERR_ARG, "aug_random_resized_crop: src: expected an image, got NULL");
  int32_t t, l, h, w, f;
  DAMA_TRY(dama_aug_rrc_draw(&t, &l, &h, &w, &f, src->h, src->w, scale_lo, scale_hi, ratio_lo, ratio_hi, hflip_p,
                             seed, epoch, index));
  return dama_aug_crop_resize(out, src, channels, n_channels, t, l, h, w, out_h, out_w, DAMA_RESIZE_BILINEAR, f);
}

/* ---- tensor forms ---- */
static dama_status hwc_of_tensor(const char *op, const dama_tensor *img, dama_tensor **keep, dama_hwc *v) {
  DAMA_CHECK(img, DAMA_ERR_ARG, "%s: img: expected a tensor, got NULL", op);
  DAMA_CHECK(img->storage && img->storage->device.type == DAMA_CPU, DAMA_ERR_DEVICE, "%s: img: expected a CPU tensor", op);
  DAMA_CHECK(img->ndim == 3 || img->ndim == 2, DAMA_ERR_SHAPE, "%s: img: expected H x W x C or H x W, got %d dims", op, img->ndim);
  int64_t c = img->ndim == 3 ? img->shape[2] : 1;
  int ok = img->ndim == 2 ? img->strides[1] == 1 : (img->strides[2] == 1 && img->strides[1] == c);
  *keep = NULL;
  if (!ok) {
    DAMA_TRY(dama_contiguous(keep, img));
    img = *keep;
  }
  v->data = dama_data_ptr(img);
  v->dtype = img->dtype;
  v->h = (int32_t)img->shape[0];
  v->w = (int32_t)img->shape[1];
  v->c = (int32_t)c;
  v->row_stride = img->strides[0];
  return DAMA_OK;
}

static dama_status tensor_common(dama_tensor **out, const dama_tensor *img, int train, int32_t crop_size,
                                 int32_t out_size, uint64_t seed, uint64_t epoch, uint64_t index) {
  const char *op = train ? "aug_train_tensor" : "aug_val_tensor";
  DAMA_CHECK(out, DAMA_ERR_ARG, "%s: out: expected non-NULL", op);
  *out = NULL;
  dama_tensor *keep = NULL, *res = NULL;
  dama_hwc v = {NULL, 0, 0, 0, 0, 0};
  DAMA_TRY(hwc_of_tensor(op, img, &keep, &v));
  int64_t shape[3] = {v.c, out_size, out_size};
  dama_status s = out_size > 0 ? dama_empty(&res, 3, shape, DAMA_F32, dama_cpu())
                               : dama_error(DAMA_ERR_ARG, "%s: out_size: expected > 0, got %d", op, out_size);
  if (s == DAMA_OK)
    s = train ? dama_aug_train((float *)dama_data_ptr(res), &v, NULL, 0, out_size, seed, epoch, index)
              : dama_aug_val((float *)dama_data_ptr(res), &v, NULL, 0, crop_size, out_size);
  dama_tensor_release(keep);
  if (s != DAMA_OK) { dama_tensor_release(res); return s; }
  *out = res;
  return DAMA_OK;
}

dama_status dama_aug_train_tensor(dama_tensor **out, const dama_tensor *img, int32_t out_size,
                                  uint64_t seed, uint64_t epoch, uint64_t index) {
  return tensor_common(out, img, 1, 0, out_size, seed, epoch, index);
}

dama_status dama_aug_val_tensor(dama_tensor **out, const dama_tensor *img, int32_t crop_size, int32_t out_size) {
  return tensor_common(out, img, 0, crop_size, out_size, 0, 0, 0);
}
