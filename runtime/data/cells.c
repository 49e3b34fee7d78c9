/* Cell finding on one tile: Otsu threshold, erosion, exact Euclidean distance transform, peak markers,
 * marker watershed (priority flood), connected components, region properties, padded crops. */
#define _POSIX_C_SOURCE 200809L
#include "data/data_internal.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>

#define BIG 1e20f

static dama_status check_plane(const char *op, const void *a, const void *b, int32_t h, int32_t w) {
  DAMA_CHECK(a && b, DAMA_ERR_ARG, "%s: buffers: expected non-NULL", op);
  DAMA_CHECK(h > 0 && w > 0, DAMA_ERR_SHAPE, "%s: size: expected positive h and w, got %d x %d", op, h, w);
  return DAMA_OK;
}

dama_status dama_otsu_threshold(const float *v, int64_t n, float *thr) {
  DAMA_CHECK(v && thr && n > 0, DAMA_ERR_ARG, "otsu_threshold: expected n > 0 values and an output");
  float lo = FLT_MAX, hi = -FLT_MAX;
  for (int64_t i = 0; i < n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i]; }
  DAMA_CHECK(isfinite(lo) && isfinite(hi), DAMA_ERR_NUMERIC, "otsu_threshold: values: expected finite numbers");
  if (hi <= lo) { *thr = lo; return DAMA_OK; }
  int64_t hist[256] = {0};
  double scale = 256.0 / (hi - lo);
  for (int64_t i = 0; i < n; i++) {
    int b = (int)((v[i] - lo) * scale);
    hist[b > 255 ? 255 : b]++;
  }
  double sum = 0, sumb = 0, wb = 0, best = -1;
  for (int b = 0; b < 256; b++) sum += (double)b * hist[b];
  int bt = 0;
  for (int b = 0; b < 256; b++) {
    wb += hist[b];
    if (wb == 0) continue;
    double wf = (double)n - wb;
    if (wf == 0) break;
    sumb += (double)b * hist[b];
    double mb = sumb / wb, mf = (sum - sumb) / wf;
    double between = wb * wf * (mb - mf) * (mb - mf);
    if (between > best) { best = between; bt = b; }
  }
  *thr = (float)(lo + (bt + 1) / scale); /* values >= thr are foreground */
  return DAMA_OK;
}

dama_status dama_gaussian_blur(float *out, const float *img, int32_t h, int32_t w, float sigma) {
  DAMA_TRY(check_plane("gaussian_blur", out, img, h, w));
  DAMA_CHECK(sigma >= 0 && sigma <= 100, DAMA_ERR_ARG, "gaussian_blur: sigma: expected 0..100, got %g", sigma);
  int64_t n = (int64_t)h * w;
  if (sigma == 0) { if (out != img) memmove(out, img, sizeof(float) * (size_t)n); return DAMA_OK; }
  int r = (int)ceilf(3 * sigma);
  float *k = malloc(sizeof(float) * (size_t)(2 * r + 1));
  int32_t mx = h > w ? h : w;
  float *line = malloc(sizeof(float) * (size_t)(mx + 2 * r));
  float *tmp = malloc(sizeof(float) * (size_t)n);
  if (!k || !line || !tmp) { free(k); free(line); free(tmp); return dama_error(DAMA_ERR_OOM, "gaussian_blur: out of memory"); }
  double s = 0;
  for (int i = -r; i <= r; i++) { k[i + r] = expf(-0.5f * i * i / (sigma * sigma)); s += k[i + r]; }
  for (int i = 0; i <= 2 * r; i++) k[i] = (float)(k[i] / s);
  for (int32_t y = 0; y < h; y++) { /* rows into tmp */
    const float *row = img + (int64_t)y * w;
    for (int32_t x = -r; x < w + r; x++) line[x + r] = row[x < 0 ? 0 : (x >= w ? w - 1 : x)];
    for (int32_t x = 0; x < w; x++) {
      float a = 0;
      for (int i = 0; i <= 2 * r; i++) a += k[i] * line[x + i];
      tmp[(int64_t)y * w + x] = a;
    }
  }
  for (int32_t x = 0; x < w; x++) { /* columns into out */
    for (int32_t y = -r; y < h + r; y++) line[y + r] = tmp[(int64_t)(y < 0 ? 0 : (y >= h ? h - 1 : y)) * w + x];
    for (int32_t y = 0; y < h; y++) {
      float a = 0;
      for (int i = 0; i <= 2 * r; i++) a += k[i] * line[y + i];
      out[(int64_t)y * w + x] = a;
    }
  }
  free(k); free(line); free(tmp);
  return DAMA_OK;
}

dama_status dama_erode(uint8_t *out, const uint8_t *mask, int32_t h, int32_t w, int32_t iterations) {
  DAMA_TRY(check_plane("erode", out, mask, h, w));
  DAMA_CHECK(iterations >= 0, DAMA_ERR_ARG, "erode: iterations: expected >= 0, got %d", iterations);
  int64_t n = (int64_t)h * w;
  if (out != mask) memmove(out, mask, (size_t)n);
  if (iterations == 0) return DAMA_OK;
  uint8_t *t = malloc((size_t)n);
  DAMA_CHECK(t, DAMA_ERR_OOM, "erode: out of memory");
  for (int it = 0; it < iterations; it++) {
    for (int32_t y = 0; y < h; y++) { /* horizontal min of 3 */
      const uint8_t *r = out + (int64_t)y * w;
      uint8_t *q = t + (int64_t)y * w;
      for (int32_t x = 0; x < w; x++)
        q[x] = r[x] && (x == 0 || r[x - 1]) && (x == w - 1 || r[x + 1]);
    }
    for (int32_t y = 0; y < h; y++) { /* vertical min of 3 */
      const uint8_t *a = t + (int64_t)(y > 0 ? y - 1 : y) * w, *b = t + (int64_t)y * w,
                    *c = t + (int64_t)(y < h - 1 ? y + 1 : y) * w;
      uint8_t *q = out + (int64_t)y * w;
      for (int32_t x = 0; x < w; x++) q[x] = a[x] && b[x] && c[x];
    }
  }
  free(t);
  return DAMA_OK;
}

/* 1-D squared distance transform of f (n samples; BIG = no site) into d: the lower envelope of the
 * parabolas rooted at the finite samples (Felzenszwalb & Huttenlocher 2012). */
static void edt_1d(const float *f, float *d, int32_t n, int32_t *v, double *z) {
  int k = -1;
  for (int32_t q = 0; q < n; q++) {
    if (f[q] >= BIG) continue;
    double s = -INFINITY;
    while (k >= 0) {
      int32_t p = v[k];
      s = (((double)f[q] + (double)q * q) - ((double)f[p] + (double)p * p)) / (2.0 * (q - p));
      if (s <= z[k]) k--;
      else break;
    }
    k++;
    v[k] = q;
    z[k] = k == 0 ? -INFINITY : s;
    z[k + 1] = INFINITY;
  }
  if (k < 0) { for (int32_t q = 0; q < n; q++) d[q] = BIG; return; }
  k = 0;
  for (int32_t q = 0; q < n; q++) {
    while (z[k + 1] < q) k++;
    double dq = (double)(q - v[k]);
    d[q] = (float)(dq * dq + f[v[k]]);
  }
}

dama_status dama_distance_transform(float *dist, const uint8_t *mask, int32_t h, int32_t w) {
  DAMA_TRY(check_plane("distance_transform", dist, mask, h, w));
  int32_t m = h > w ? h : w;
  float *f = malloc(sizeof(float) * (size_t)m * 2);
  double *z = malloc(sizeof(double) * (size_t)(m + 1));
  int32_t *v = malloc(sizeof(int32_t) * (size_t)m);
  if (!f || !z || !v) { free(f); free(z); free(v); return dama_error(DAMA_ERR_OOM, "distance_transform: out of memory"); }
  float *d = f + m;
  for (int64_t i = 0; i < (int64_t)h * w; i++) dist[i] = mask[i] ? BIG : 0.f;
  for (int32_t x = 0; x < w; x++) { /* columns */
    for (int32_t y = 0; y < h; y++) f[y] = dist[(int64_t)y * w + x];
    edt_1d(f, d, h, v, z);
    for (int32_t y = 0; y < h; y++) dist[(int64_t)y * w + x] = d[y];
  }
  for (int32_t y = 0; y < h; y++) { /* rows */
    float *row = dist + (int64_t)y * w;
    memcpy(f, row, sizeof(float) * (size_t)w);
    edt_1d(f, d, w, v, z);
    for (int32_t x = 0; x < w; x++) row[x] = d[x] >= BIG ? BIG : sqrtf(d[x]);
  }
  free(f); free(z); free(v);
  return DAMA_OK;
}

/* ---- connected components (two passes with union-find) ---- */
static int32_t uf_find(int32_t *p, int32_t a) {
  while (p[a] != a) { p[a] = p[p[a]]; a = p[a]; }
  return a;
}
static void uf_union(int32_t *p, int32_t a, int32_t b) {
  a = uf_find(p, a); b = uf_find(p, b);
  if (a < b) p[b] = a; else if (b < a) p[a] = b;
}

/* Components of (cond(i)) where cond = mask[i] != 0 (mask) or lab[i] != 0 (int labels). */
static dama_status components(int32_t *labels, const uint8_t *mask, const int32_t *lab, int32_t h, int32_t w,
                              int32_t conn, int32_t *n) {
  int64_t N = (int64_t)h * w;
  int32_t cap = 1024, next = 1;
  int32_t *par = malloc(sizeof(int32_t) * (size_t)cap);
  DAMA_CHECK(par, DAMA_ERR_OOM, "label_components: out of memory");
  par[0] = 0;
  for (int32_t y = 0; y < h; y++)
    for (int32_t x = 0; x < w; x++) {
      int64_t i = (int64_t)y * w + x;
      int on = mask ? mask[i] != 0 : lab[i] != 0;
      if (!on) { labels[i] = 0; continue; }
      int32_t best = 0;
      int32_t nb[4];
      int nn = 0;
      if (x > 0 && labels[i - 1]) nb[nn++] = labels[i - 1];
      if (y > 0) {
        if (labels[i - w]) nb[nn++] = labels[i - w];
        if (conn == 8 && x > 0 && labels[i - w - 1]) nb[nn++] = labels[i - w - 1];
        if (conn == 8 && x < w - 1 && labels[i - w + 1]) nb[nn++] = labels[i - w + 1];
      }
      for (int k = 0; k < nn; k++) if (!best || nb[k] < best) best = nb[k];
      if (!best) {
        if (next == cap) {
          int32_t *np = realloc(par, sizeof(int32_t) * (size_t)cap * 2);
          if (!np) { free(par); return dama_error(DAMA_ERR_OOM, "label_components: out of memory"); }
          par = np; cap *= 2;
        }
        par[next] = next;
        best = next++;
      } else
        for (int k = 0; k < nn; k++) uf_union(par, best, nb[k]);
      labels[i] = best;
    }
  /* compact the roots to 1..n in raster order of first appearance */
  int32_t *map = calloc((size_t)next, sizeof(int32_t));
  if (!map) { free(par); return dama_error(DAMA_ERR_OOM, "label_components: out of memory"); }
  int32_t cnt = 0;
  for (int64_t i = 0; i < N; i++) {
    if (!labels[i]) continue;
    int32_t r = uf_find(par, labels[i]);
    if (!map[r]) map[r] = ++cnt;
    labels[i] = map[r];
  }
  free(map); free(par);
  *n = cnt;
  return DAMA_OK;
}

dama_status dama_label_components(int32_t *labels, const uint8_t *mask, int32_t h, int32_t w, int32_t connectivity,
                                  int32_t *n) {
  DAMA_TRY(check_plane("label_components", labels, mask, h, w));
  DAMA_CHECK(n, DAMA_ERR_ARG, "label_components: n: expected non-NULL");
  DAMA_CHECK(connectivity == 4 || connectivity == 8, DAMA_ERR_ARG, "label_components: connectivity: expected 4 or 8, got %d", connectivity);
  return components(labels, mask, NULL, h, w, connectivity, n);
}

dama_status dama_region_props(const int32_t *labels, int32_t h, int32_t w, int32_t n, int64_t *areas, double *centroids) {
  DAMA_TRY(check_plane("region_props", labels, areas, h, w));
  DAMA_CHECK(centroids && n >= 0, DAMA_ERR_ARG, "region_props: centroids and n >= 0 expected");
  memset(areas, 0, sizeof(int64_t) * (size_t)n);
  memset(centroids, 0, sizeof(double) * 2 * (size_t)n);
  for (int32_t y = 0; y < h; y++)
    for (int32_t x = 0; x < w; x++) {
      int32_t l = labels[(int64_t)y * w + x];
      if (l <= 0 || l > n) continue;
      areas[l - 1]++;
      centroids[2 * (l - 1)] += y;
      centroids[2 * (l - 1) + 1] += x;
    }
  for (int32_t l = 0; l < n; l++)
    if (areas[l]) { centroids[2 * l] /= (double)areas[l]; centroids[2 * l + 1] /= (double)areas[l]; }
  return DAMA_OK;
}

/* ---- peaks ---- */
typedef struct peak { float v; float y, x; } peak;
static int peak_cmp(const void *a, const void *b) {
  const peak *p = a, *q = b;
  if (p->v != q->v) return p->v < q->v ? 1 : -1;
  if (p->y != q->y) return p->y < q->y ? -1 : 1;
  return p->x < q->x ? -1 : (p->x > q->x);
}

dama_status dama_peak_markers(int32_t *markers, const float *dist, int32_t h, int32_t w, int32_t radius,
                              float min_value, int32_t *n) {
  DAMA_TRY(check_plane("peak_markers", markers, dist, h, w));
  DAMA_CHECK(n && radius >= 0, DAMA_ERR_ARG, "peak_markers: expected n non-NULL and radius >= 0");
  int64_t N = (int64_t)h * w;
  float *mx = malloc(sizeof(float) * (size_t)N), *tmp = malloc(sizeof(float) * (size_t)N);
  uint8_t *is = malloc((size_t)N);
  if (!mx || !tmp || !is) { free(mx); free(tmp); free(is); return dama_error(DAMA_ERR_OOM, "peak_markers: out of memory"); }
  for (int32_t y = 0; y < h; y++) /* separable max filter */
    for (int32_t x = 0; x < w; x++) {
      float m = -INFINITY;
      for (int32_t k = x - radius < 0 ? 0 : x - radius; k <= x + radius && k < w; k++) {
        float v = dist[(int64_t)y * w + k];
        if (v > m) m = v;
      }
      tmp[(int64_t)y * w + x] = m;
    }
  for (int32_t y = 0; y < h; y++)
    for (int32_t x = 0; x < w; x++) {
      float m = -INFINITY;
      for (int32_t k = y - radius < 0 ? 0 : y - radius; k <= y + radius && k < h; k++) {
        float v = tmp[(int64_t)k * w + x];
        if (v > m) m = v;
      }
      mx[(int64_t)y * w + x] = m;
    }
  for (int64_t i = 0; i < N; i++) is[i] = dist[i] >= min_value && dist[i] > 0 && dist[i] >= mx[i];
  free(mx); free(tmp);
  int32_t nc = 0;
  dama_status s = components(markers, is, NULL, h, w, 8, &nc);
  free(is);
  if (s != DAMA_OK) return s;
  /* one peak per plateau component (its centroid and value), then drop those near a higher one */
  peak *pk = calloc((size_t)nc + 1, sizeof(peak));
  int64_t *cnt = calloc((size_t)nc + 1, sizeof(int64_t));
  int32_t *keep = calloc((size_t)nc + 1, sizeof(int32_t));
  if (!pk || !cnt || !keep) { free(pk); free(cnt); free(keep); return dama_error(DAMA_ERR_OOM, "peak_markers: out of memory"); }
  for (int32_t y = 0; y < h; y++)
    for (int32_t x = 0; x < w; x++) {
      int32_t l = markers[(int64_t)y * w + x];
      if (!l) continue;
      pk[l - 1].v = dist[(int64_t)y * w + x];
      pk[l - 1].y += y; pk[l - 1].x += x;
      cnt[l - 1]++;
    }
  peak *order = malloc(sizeof(peak) * ((size_t)nc + 1));
  int32_t *lab_of = malloc(sizeof(int32_t) * ((size_t)nc + 1));
  if (!order || !lab_of) { free(pk); free(cnt); free(keep); free(order); free(lab_of); return dama_error(DAMA_ERR_OOM, "peak_markers: out of memory"); }
  for (int32_t l = 0; l < nc; l++) { pk[l].y /= (float)cnt[l]; pk[l].x /= (float)cnt[l]; order[l] = pk[l]; }
  qsort(order, (size_t)nc, sizeof(peak), peak_cmp);
  int32_t nk = 0;
  float r2 = (float)radius * radius;
  peak *acc = malloc(sizeof(peak) * ((size_t)nc + 1));
  if (!acc) { free(pk); free(cnt); free(keep); free(order); free(lab_of); return dama_error(DAMA_ERR_OOM, "peak_markers: out of memory"); }
  for (int32_t i = 0; i < nc; i++) {
    int ok = 1;
    for (int32_t j = 0; j < nk && ok; j++) {
      float dy = order[i].y - acc[j].y, dx = order[i].x - acc[j].x;
      if (dy * dy + dx * dx < r2) ok = 0;
    }
    if (ok) acc[nk++] = order[i];
  }
  /* map each component to its accepted rank (or 0), numbering kept peaks in raster order of components */
  int32_t out = 0;
  for (int32_t l = 0; l < nc; l++) {
    keep[l] = 0;
    for (int32_t j = 0; j < nk; j++)
      if (acc[j].y == pk[l].y && acc[j].x == pk[l].x && acc[j].v == pk[l].v) { keep[l] = ++out; break; }
  }
  for (int64_t i = 0; i < N; i++) markers[i] = markers[i] ? keep[markers[i] - 1] : 0;
  free(pk); free(cnt); free(keep); free(order); free(lab_of); free(acc);
  *n = out;
  return DAMA_OK;
}

/* ---- watershed: a binary heap ordered by (elevation, insertion count) ---- */
typedef struct hitem { float e; uint32_t pix; uint64_t seq; } hitem;
static inline int hless(const hitem *a, const hitem *b) { return a->e < b->e || (a->e == b->e && a->seq < b->seq); }

dama_status dama_watershed(int32_t *labels, const float *elev, const int32_t *markers, const uint8_t *mask,
                           int32_t h, int32_t w) {
  DAMA_TRY(check_plane("watershed", labels, elev, h, w));
  DAMA_CHECK(markers, DAMA_ERR_ARG, "watershed: markers: expected non-NULL");
  int64_t N = (int64_t)h * w;
  DAMA_CHECK(N < (1ll << 32), DAMA_ERR_ARG, "watershed: image of %lld pixels: expected < 2^32", (long long)N);
  size_t cap = 4096, sz = 0;
  hitem *hp = malloc(sizeof(hitem) * cap);
  DAMA_CHECK(hp, DAMA_ERR_OOM, "watershed: out of memory");
  uint64_t seq = 0;
#define PUSH(E, P) do {                                                                          \
    if (sz == cap) {                                                                             \
      hitem *np_ = realloc(hp, sizeof(hitem) * cap * 2);                                         \
      if (!np_) { free(hp); return dama_error(DAMA_ERR_OOM, "watershed: out of memory"); }       \
      hp = np_; cap *= 2;                                                                        \
    }                                                                                            \
    hitem it_ = {(E), (uint32_t)(P), seq++};                                                     \
    size_t k_ = sz++;                                                                            \
    while (k_ > 0 && hless(&it_, &hp[(k_ - 1) / 2])) { hp[k_] = hp[(k_ - 1) / 2]; k_ = (k_ - 1) / 2; } \
    hp[k_] = it_;                                                                                \
  } while (0)
  for (int64_t i = 0; i < N; i++) {
    labels[i] = (markers[i] > 0 && (!mask || mask[i])) ? markers[i] : 0;
    if (labels[i]) PUSH(elev[i], i);
  }
  while (sz > 0) {
    hitem top = hp[0];
    hitem last = hp[--sz];
    size_t k = 0;
    for (;;) { /* sift the last item down from the root */
      size_t c = 2 * k + 1;
      if (c >= sz) break;
      if (c + 1 < sz && hless(&hp[c + 1], &hp[c])) c++;
      if (!hless(&hp[c], &last)) break;
      hp[k] = hp[c];
      k = c;
    }
    if (sz > 0) hp[k] = last;
    int64_t p = top.pix;
    int32_t y = (int32_t)(p / w), x = (int32_t)(p % w);
    int32_t l = labels[p];
    int64_t nb[4];
    int nn = 0;
    if (x > 0) nb[nn++] = p - 1;
    if (x < w - 1) nb[nn++] = p + 1;
    if (y > 0) nb[nn++] = p - w;
    if (y < h - 1) nb[nn++] = p + w;
    for (int j = 0; j < nn; j++) {
      int64_t q = nb[j];
      if (labels[q] || (mask && !mask[q])) continue;
      labels[q] = l;
      PUSH(elev[q] > top.e ? elev[q] : top.e, q);
    }
  }
#undef PUSH
  free(hp);
  return DAMA_OK;
}

/* ---- crops ---- */
dama_status dama_crop_pad(void *out, const dama_hwc *src, int32_t cy, int32_t cx, int32_t size) {
  DAMA_CHECK(out && src && src->data, DAMA_ERR_ARG, "crop_pad: out and src: expected non-NULL");
  DAMA_CHECK(size > 0, DAMA_ERR_ARG, "crop_pad: size: expected > 0, got %d", size);
  DAMA_CHECK(src->h > 0 && src->w > 0 && src->c > 0, DAMA_ERR_SHAPE, "crop_pad: src: expected a positive H x W x C");
  int es = dama_dtype_size((dama_dtype)src->dtype);
  DAMA_CHECK(src->dtype >= 0 && src->dtype < DAMA_NUM_DTYPES && es > 0, DAMA_ERR_DTYPE, "crop_pad: src dtype %d unknown", src->dtype);
  int64_t rs = src->row_stride ? src->row_stride : (int64_t)src->w * src->c;
  int64_t pix = (int64_t)src->c * es;
  int32_t top = cy - size / 2, left = cx - size / 2;
  uint8_t *o = out;
  const uint8_t *b = src->data;
  memset(o, 0, (size_t)size * size * pix);
  int32_t x0 = left < 0 ? 0 : left, x1 = left + size > src->w ? src->w : left + size;
  if (x1 <= x0) return DAMA_OK;
  for (int32_t y = 0; y < size; y++) {
    int32_t sy = top + y;
    if (sy < 0 || sy >= src->h) continue;
    memcpy(o + ((int64_t)y * size + (x0 - left)) * pix, b + ((int64_t)sy * rs + (int64_t)x0 * src->c) * es,
           (size_t)((x1 - x0) * pix));
  }
  return DAMA_OK;
}

/* ---- the whole pipeline on one tile ---- */
dama_status dama_find_cells(const dama_hwc *tile, const dama_cellfind_config *cfg, int32_t *labels_out,
                            dama_cell *cells, int64_t max_cells, int64_t *n_cells) {
  const char *op = "find_cells";
  DAMA_CHECK(tile && tile->data, DAMA_ERR_ARG, "%s: tile: expected an image, got NULL", op);
  DAMA_CHECK(tile->dtype == DAMA_U8 || tile->dtype == DAMA_U16 || tile->dtype == DAMA_F32, DAMA_ERR_DTYPE,
             "%s: tile dtype: expected u8, u16 or f32, got %s", op, dama_dtype_name((dama_dtype)tile->dtype));
  DAMA_CHECK(tile->h > 0 && tile->w > 0 && tile->c > 0, DAMA_ERR_SHAPE, "%s: tile: expected a positive H x W x C", op);
  dama_cellfind_config c;
  if (cfg) c = *cfg; else memset(&c, 0, sizeof c);
  int32_t defch[2] = {0, 1};
  if (!c.nuclear_channels || c.n_nuclear <= 0) { c.nuclear_channels = defch; c.n_nuclear = tile->c >= 2 ? 2 : 1; }
  for (int32_t k = 0; k < c.n_nuclear; k++)
    DAMA_CHECK(c.nuclear_channels[k] >= 0 && c.nuclear_channels[k] < tile->c, DAMA_ERR_INDEX,
               "%s: nuclear_channels[%d] = %d: expected an index in [0, %d)", op, k, c.nuclear_channels[k], tile->c);
  if (c.peak_radius <= 0) c.peak_radius = 4;
  if (c.min_peak <= 0) c.min_peak = 1.5f;
  if (c.min_area <= 0) c.min_area = 16;
  const int32_t h = tile->h, w = tile->w;
  const int64_t N = (int64_t)h * w, rs = tile->row_stride ? tile->row_stride : (int64_t)w * tile->c;
  float *nuc = malloc(sizeof(float) * (size_t)N);
  uint8_t *mask = malloc((size_t)N), *er = malloc((size_t)N);
  int32_t *mk = malloc(sizeof(int32_t) * (size_t)N), *lab = labels_out ? labels_out : malloc(sizeof(int32_t) * (size_t)N);
  dama_status s = DAMA_OK;
  int64_t *areas = NULL;
  double *cen = NULL;
  if (!nuc || !mask || !er || !mk || !lab) { s = dama_error(DAMA_ERR_OOM, "%s: out of memory for a %d x %d tile", op, h, w); goto done; }
  {
    float sc = (tile->dtype == DAMA_U16 ? 1.f / 65535 : (tile->dtype == DAMA_U8 ? 1.f / 255 : 1.f)) / (float)c.n_nuclear;
    for (int32_t y = 0; y < h; y++)
      for (int32_t x = 0; x < w; x++) {
        int64_t o = (int64_t)y * rs + (int64_t)x * tile->c;
        float a = 0;
        for (int32_t k = 0; k < c.n_nuclear; k++) {
          int64_t e = o + c.nuclear_channels[k];
          a += tile->dtype == DAMA_U16 ? (float)((const uint16_t *)tile->data)[e]
             : tile->dtype == DAMA_U8 ? (float)((const uint8_t *)tile->data)[e] : ((const float *)tile->data)[e];
        }
        nuc[(int64_t)y * w + x] = a * sc;
      }
    if (c.sigma > 0 && (s = dama_gaussian_blur(nuc, nuc, h, w, c.sigma)) != DAMA_OK) goto done;
    float thr = c.threshold;
    if (thr <= 0 && (s = dama_otsu_threshold(nuc, N, &thr)) != DAMA_OK) goto done;
    for (int64_t i = 0; i < N; i++) mask[i] = nuc[i] >= thr;
    if ((s = dama_erode(er, mask, h, w, c.erode)) != DAMA_OK) goto done;
    float *dist = nuc; /* reuse */
    if ((s = dama_distance_transform(dist, er, h, w)) != DAMA_OK) goto done;
    int32_t nm = 0;
    if ((s = dama_peak_markers(mk, dist, h, w, c.peak_radius, c.min_peak, &nm)) != DAMA_OK) goto done;
    for (int64_t i = 0; i < N; i++) dist[i] = -dist[i];
    if ((s = dama_watershed(lab, dist, mk, er, h, w)) != DAMA_OK) goto done;
    areas = malloc(sizeof(int64_t) * ((size_t)nm + 1));
    cen = malloc(sizeof(double) * 2 * ((size_t)nm + 1));
    int32_t *remap = (int32_t *)mk; /* markers no longer needed: reuse as the label remap table */
    if (!areas || !cen) { s = dama_error(DAMA_ERR_OOM, "%s: out of memory", op); goto done; }
    if ((s = dama_region_props(lab, h, w, nm, areas, cen)) != DAMA_OK) goto done;
    int64_t kept = 0;
    for (int32_t l = 0; l < nm; l++) {
      int ok = areas[l] >= c.min_area && (c.max_area <= 0 || areas[l] <= c.max_area);
      remap[l + 1] = ok ? (int32_t)(kept + 1) : 0;
      if (ok) {
        if (cells && kept < max_cells) {
          cells[kept].y = (float)cen[2 * l]; cells[kept].x = (float)cen[2 * l + 1];
          cells[kept].area = areas[l]; cells[kept].label = (int32_t)(kept + 1);
        }
        kept++;
      }
    }
    remap[0] = 0;
    if (labels_out)
      for (int64_t i = 0; i < N; i++) labels_out[i] = lab[i] > 0 ? remap[lab[i]] : 0;
    if (n_cells) *n_cells = kept;
  }
done:
  free(nuc); free(mask); free(er); free(mk);
  if (!labels_out) free(lab);
  free(areas); free(cen);
  return s;
}

dama_status dama_tile_cells(const dama_hwc *win, int32_t core_y, int32_t core_x, int32_t core_h, int32_t core_w,
                            const dama_cellfind_config *cfg, int32_t crop, void *crops, dama_cell *cells,
                            int64_t max_cells, int64_t *n_cells) {
  const char *op = "tile_cells";
  DAMA_CHECK(win && win->data, DAMA_ERR_ARG, "%s: win: expected an image, got NULL", op);
  DAMA_CHECK(core_h > 0 && core_w > 0 && core_y >= 0 && core_x >= 0 && core_y + core_h <= win->h && core_x + core_w <= win->w,
             DAMA_ERR_ARG, "%s: core (%d, %d, %d x %d): expected a non-empty rectangle inside the %d x %d window", op,
             core_y, core_x, core_h, core_w, win->h, win->w);
  DAMA_CHECK(!crops || crop > 0, DAMA_ERR_ARG, "%s: crop: expected > 0, got %d", op, crop);
  int64_t n = 0, kept = 0;
  /* regions are disjoint and at least min_area pixels: that bounds the number of cells */
  int64_t min_area = cfg && cfg->min_area > 0 ? cfg->min_area : 16;
  int64_t cap = (int64_t)win->h * win->w / min_area + 1;
  dama_cell *all = malloc(sizeof(dama_cell) * (size_t)cap);
  DAMA_CHECK(all, DAMA_ERR_OOM, "%s: out of memory for %lld cells", op, (long long)cap);
  dama_status s = dama_find_cells(win, cfg, NULL, all, cap, &n);
  const int64_t csz = (int64_t)crop * crop * win->c * dama_dtype_size((dama_dtype)win->dtype);
  for (int64_t i = 0; s == DAMA_OK && i < n; i++) {
    int32_t cy = (int32_t)lrintf(all[i].y), cx = (int32_t)lrintf(all[i].x);
    if (cy < core_y || cy >= core_y + core_h || cx < core_x || cx >= core_x + core_w) continue;
    if (kept < max_cells) {
      if (cells) cells[kept] = all[i];
      if (crops) s = dama_crop_pad((uint8_t *)crops + kept * csz, win, cy, cx, crop);
    }
    kept++;
  }
  free(all);
  if (s == DAMA_OK && n_cells) *n_cells = kept;
  return s;
}
