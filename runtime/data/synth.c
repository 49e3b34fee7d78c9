/* The built-in synthetic multiplex generator: 7-channel 16-bit "brain tissue" slides and labelled
 * single-cell crops (see runtime/api/data.h for the channel order and the cell types).
 *
 * Every cell is drawn from its own Philox stream, so a slide is a pure function of (seed, position):
 * cells sit on a jittered 30-pixel grid of the endless slide (some grid points empty), and any window
 * renders the cells whose footprint reaches it. Pixel noise comes from a hash of (seed, pixel), so
 * overlapping windows agree. Rendering accumulates f32 planes, blurs them with a [1 2 1] kernel,
 * adds shot and read noise and rounds to uint16. */
#define _POSIX_C_SOURCE 200809L
#include "data/data_internal.h"
#include <math.h>
#include <stdlib.h>

#define NCH 7
#define GRID 30        /* slide grid pitch in pixels */
#define REACH 48       /* how far a cell's drawing can reach from its centre */
#define MAXP 7

static const char *k_channels[NCH] = {"DAPI", "Histones", "NeuN", "S100", "Olig2", "Iba1", "RECA1"};
static const char *k_classes[5] = {"neuron", "astrocyte", "oligodendrocyte", "microglia", "endothelial"};

const char *dama_synth_channel_name(int32_t c) { return c >= 0 && c < NCH ? k_channels[c] : NULL; }
const char *dama_synth_class_name(int32_t t) { return t >= 0 && t < 5 ? k_classes[t] : NULL; }

typedef struct cell {
  float y, x;
  int type;
  float na, nb, nang;        /* nucleus semi-axes and angle */
  float dapi, hist, marker;  /* intensities (counts) */
  float soma;                /* soma radius (0 = none) */
  int nproc;
  float pang[MAXP], plen[MAXP], pw[MAXP];
  float pey[MAXP], pex[MAXP], bey[MAXP], bex[MAXP]; /* process end points and side-branch vectors */
  int nspots;
  float sy[4], sx[4];        /* chromocentres (Histones/DAPI bright spots) */
  float vlen, vw;            /* vessel half-length and half-width (endothelial) */
} cell;

static float lognormal(dama_prng *r, float sigma) { return (float)exp(sigma * dama_prng_normal(r)); }
static float unif(dama_prng *r, float lo, float hi) { return lo + (hi - lo) * dama_prng_float(r); }

static void draw_cell(dama_prng *r, int type, float y, float x, cell *c) {
  memset(c, 0, sizeof *c);
  c->type = type; c->y = y; c->x = x;
  c->nang = unif(r, 0, 3.14159265f);
  float bright = lognormal(r, 0.35f);
  c->marker = 9000.f * lognormal(r, 0.45f) * (dama_prng_float(r) < 0.1f ? 0.35f : 1.f); /* some dim cells */
  switch (type) {
  case 0: /* neuron: large pale round nucleus, NeuN soma */
    c->na = unif(r, 6.5f, 8.f); c->nb = c->na * unif(r, 0.85f, 1.f);
    c->dapi = 7000 * bright; c->hist = 6000 * bright; c->soma = c->na + unif(r, 3.5f, 6.f);
    c->nspots = 1 + (int)dama_prng_below(r, 2);
    break;
  case 1: /* astrocyte: oval nucleus, S100 soma with star processes */
    c->na = unif(r, 4.5f, 5.5f); c->nb = c->na * unif(r, 0.65f, 0.85f);
    c->dapi = 11000 * bright; c->hist = 9000 * bright; c->soma = c->na + unif(r, 1.f, 2.5f);
    c->nproc = 4 + (int)dama_prng_below(r, 4);
    for (int i = 0; i < c->nproc; i++) {
      c->pang[i] = 6.2831853f * (i + unif(r, -0.3f, 0.3f)) / c->nproc;
      c->plen[i] = unif(r, 12, 26); c->pw[i] = unif(r, 1.2f, 2.0f);
    }
    c->nspots = 2 + (int)dama_prng_below(r, 3);
    break;
  case 2: /* oligodendrocyte: small dense round nucleus, nuclear Olig2 */
    c->na = unif(r, 3.5f, 4.5f); c->nb = c->na * unif(r, 0.85f, 1.f);
    c->dapi = 17000 * bright; c->hist = 15000 * bright;
    c->nspots = (int)dama_prng_below(r, 2);
    break;
  case 3: /* microglia: small elongated nucleus, thin branched Iba1 processes */
    c->na = unif(r, 4.f, 5.5f); c->nb = c->na * unif(r, 0.45f, 0.6f);
    c->dapi = 13000 * bright; c->hist = 11000 * bright; c->soma = c->na * 0.8f + 1.f;
    c->nproc = 3 + (int)dama_prng_below(r, 3);
    for (int i = 0; i < c->nproc; i++) {
      c->pang[i] = 6.2831853f * (i + unif(r, -0.35f, 0.35f)) / c->nproc;
      c->plen[i] = unif(r, 10, 20); c->pw[i] = unif(r, 0.6f, 1.0f);
    }
    c->nspots = 1 + (int)dama_prng_below(r, 3);
    break;
  default: /* endothelial: elongated nucleus along a RECA1 vessel segment */
    c->na = unif(r, 6.f, 8.f); c->nb = unif(r, 2.f, 2.8f);
    c->dapi = 10000 * bright; c->hist = 8500 * bright;
    c->vlen = unif(r, 16, 36); c->vw = unif(r, 3.f, 5.5f);
    c->nspots = (int)dama_prng_below(r, 2);
    break;
  }
  for (int i = 0; i < c->nproc; i++) {
    float ba = c->pang[i] + (i & 1 ? 0.7f : -0.7f);
    c->pey[i] = c->plen[i] * sinf(c->pang[i]); c->pex[i] = c->plen[i] * cosf(c->pang[i]);
    c->bey[i] = 0.5f * c->plen[i] * sinf(ba); c->bex[i] = 0.5f * c->plen[i] * cosf(ba);
  }
  for (int i = 0; i < c->nspots; i++) {
    float a = unif(r, 0, 6.2831853f), d = unif(r, 0, 0.55f);
    c->sy[i] = d * c->nb * sinf(a); c->sx[i] = d * c->na * cosf(a);
  }
}

/* Soft step: 1 inside (t > 0.5), 0 outside, linear over one pixel. */
static inline float soft(float t) { return t <= -0.5f ? 0.f : (t >= 0.5f ? 1.f : t + 0.5f); }

/* Distance from (py, px) to the segment from (0,0) to (ey, ex), and the position along it in [0, 1]. */
static inline float seg_dist(float py, float px, float ey, float ex, float *tpos) {
  float l2 = ey * ey + ex * ex;
  float t = l2 > 0 ? (py * ey + px * ex) / l2 : 0.f;
  t = t < 0 ? 0 : (t > 1 ? 1 : t);
  *tpos = t;
  float dy = py - t * ey, dx = px - t * ex;
  return sqrtf(dy * dy + dx * dx);
}

/* Add a cell to planar f32 images P (NCH planes of H x W) whose pixel (0,0) is at (oy, ox). */
static void render_cell(float *P, int H, int W, double oy, double ox, const cell *c) {
  const int64_t plane = (int64_t)H * W;
  float cy = (float)(c->y - oy), cx = (float)(c->x - ox);
  float reach = c->na + 2;
  if (c->soma + 2 > reach) reach = c->soma + 2;
  for (int p = 0; p < c->nproc; p++) if (c->plen[p] + 3 > reach) reach = c->plen[p] + 3;
  if (c->type == 4) reach = c->vlen + c->vw + 2;
  int ylo = (int)floorf(cy - reach), yhi = (int)ceilf(cy + reach), xlo = (int)floorf(cx - reach), xhi = (int)ceilf(cx + reach);
  if (ylo < 0) ylo = 0;
  if (xlo < 0) xlo = 0;
  if (yhi > H - 1) yhi = H - 1;
  if (xhi > W - 1) xhi = W - 1;
  if (ylo > yhi || xlo > xhi) return;
  float cs = cosf(c->nang), sn = sinf(c->nang);
  const float ina = 1.f / c->na, inb = 1.f / c->nb;
  float *mk = P + (int64_t)(2 + c->type) * plane;
  float *dapi = P, *hist = P + plane;
  for (int y = ylo; y <= yhi; y++) {
    float dy = y - cy;
    for (int x = xlo; x <= xhi; x++) {
      float dx = x - cx;
      int64_t i = (int64_t)y * W + x;
      float u = dx * cs + dy * sn, v = -dx * sn + dy * cs;
      float rn = sqrtf((u * ina) * (u * ina) + (v * inb) * (v * inb));
      float nuc = soft((1.f - rn) * c->nb);
      float rr = sqrtf(dx * dx + dy * dy);
      if (nuc > 0) {
        float tex = 1.f;
        for (int s = 0; s < c->nspots; s++) {
          float qy = v - c->sy[s], qx = u - c->sx[s];
          float d2 = qy * qy + qx * qx;
          if (d2 < 4.f) tex += (c->type == 0 ? -0.45f : 0.7f) * (1.f - d2 * 0.25f);
        }
        float edge = 0.75f + 0.25f * rn; /* chromatin a little denser at the rim */
        dapi[i] += c->dapi * nuc * edge * tex;
        hist[i] += c->hist * nuc * (0.8f + 0.2f * rn) * (c->type == 0 ? 1.f : tex);
      }
      float m = 0.f;
      if (c->type != 4 && rr > reach) continue;
      switch (c->type) {
      case 0: m = 0.75f * soft(c->soma - rr) + 0.35f * nuc; break;
      case 2: m = nuc * (0.9f + 0.1f * rn); break;
      case 4: {
        float t;
        /* the vessel runs along the nucleus' long axis, centred on the cell */
        float ey = 2 * c->vlen * sn, ex = 2 * c->vlen * cs;
        float dv = seg_dist(dy + c->vlen * sn, dx + c->vlen * cs, ey, ex, &t);
        float wall = soft(c->vw - dv) * (0.55f + 0.45f * (dv / c->vw)); /* brighter walls than lumen */
        m = wall;
        break;
      }
      default: {
        m = c->soma > 0 ? soft(c->soma - rr) : 0.f;
        for (int p = 0; p < c->nproc && rr < c->plen[p] + 3; p++) {
          float ey = c->pey[p], ex = c->pex[p];
          float t, d = seg_dist(dy, dx, ey, ex, &t);
          float wdt = c->pw[p] * (1.f - 0.6f * t);
          float val = soft(wdt - d) * (1.f - 0.5f * t);
          if (c->type == 3) { /* a side branch from the middle of each microglial process */
            float by = 0.5f * ey, bx = 0.5f * ex;
            float t2, d2 = seg_dist(dy - by, dx - bx, c->bey[p], c->bex[p], &t2);
            float v2 = soft(wdt * 0.8f - d2) * (0.7f - 0.4f * t2);
            if (v2 > val) val = v2;
          }
          if (val > m) m = val;
        }
        break;
      }
      }
      if (m > 0) mk[i] += c->marker * m;
    }
  }
}

static inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Background, cross-talk, blur, noise and rounding; P (planar f32, H x W with a 1-pixel margin all
 * round) to out (interleaved uint16, (H-2) x (W-2)). Noise of output pixel (y, x) depends only on
 * (key, oy + y, ox + x), and the margin makes the blur of a window equal that of a bigger image. */
static void finish_image(float *P, float *tmp, int H, int W, int64_t oy, int64_t ox, uint64_t key, const float *bg,
                         uint16_t *out) {
  const int64_t plane = (int64_t)H * W;
  /* cross-talk: a little DAPI in Histones' neighbour channels and a little of each marker in the next */
  for (int64_t i = 0; i < plane; i++) {
    float d = P[i];
    P[plane + i] += 0.05f * d;
    P[2 * plane + i] += 0.02f * d;
  }
  for (int ch = 0; ch < NCH; ch++) { /* separable [1 2 1] / 4 blur with edge clamp */
    float *p = P + ch * plane;
    for (int y = 0; y < H; y++) {
      float *r = p + (int64_t)y * W, *t = tmp + (int64_t)y * W;
      t[0] = 0.75f * r[0] + 0.25f * r[W > 1 ? 1 : 0];
      for (int x = 1; x < W - 1; x++) t[x] = 0.25f * r[x - 1] + 0.5f * r[x] + 0.25f * r[x + 1];
      if (W > 1) t[W - 1] = 0.25f * r[W - 2] + 0.75f * r[W - 1];
    }
    for (int y = 0; y < H; y++) {
      const float *a = tmp + (int64_t)(y > 0 ? y - 1 : 0) * W, *b = tmp + (int64_t)y * W,
                  *c = tmp + (int64_t)(y < H - 1 ? y + 1 : H - 1) * W;
      float *r = p + (int64_t)y * W;
      for (int x = 0; x < W; x++) r[x] = 0.25f * a[x] + 0.5f * b[x] + 0.25f * c[x];
    }
  }
  for (int y = 1; y < H - 1; y++)
    for (int x = 1; x < W - 1; x++) {
      uint64_t s = mix64(key ^ mix64(((uint64_t)(oy + y - 1) << 32) ^ (uint64_t)(uint32_t)(ox + x - 1)));
      int64_t i = (int64_t)y * W + x;
      uint16_t *o = out + ((int64_t)(y - 1) * (W - 2) + (x - 1)) * NCH;
      for (int ch = 0; ch < NCH; ch++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull; /* an LCG step per channel */
        uint64_t z = s ^ (s >> 29);
        /* approximately normal: sum of four 16-bit uniforms, centred, unit variance */
        uint32_t lo = (uint32_t)z, hi = (uint32_t)(z >> 32);
        float n = (float)(int32_t)((lo & 0xffff) + (lo >> 16) + (hi & 0xffff) + (hi >> 16) - 131070) *
                  (1.7320508f / 65536.f);
        float v = P[ch * plane + i] + bg[ch];
        v += n * sqrtf(1.5f * v + 400.f); /* shot noise (gain 1.5) + read noise (20 counts) */
        v = v < 0 ? 0 : (v > 65535.f ? 65535.f : v);
        o[ch] = (uint16_t)(v + 0.5f);
      }
    }
}

static void background(uint64_t key, uint64_t hi, uint64_t lo, float *bg) {
  dama_prng r;
  dama_prng_init(&r, key, hi, lo);
  static const float base[NCH] = {700, 800, 600, 650, 500, 550, 600};
  for (int c = 0; c < NCH; c++) bg[c] = base[c] * unif(&r, 0.7f, 1.4f);
}

/* ---- slides ---- */

/* The cell of grid point (gy, gx), if any. */
static int grid_cell(uint64_t key, int64_t gy, int64_t gx, cell *c) {
  dama_prng r;
  dama_prng_init(&r, key, 1, mix64(((uint64_t)gy << 32) ^ (uint64_t)(uint32_t)gx) << 4);
  if (dama_prng_float(&r) > 0.72f) return 0;
  /* type frequencies loosely like cortex: neurons and oligodendrocytes most common */
  float u = dama_prng_float(&r);
  int type = u < 0.30f ? 0 : u < 0.50f ? 1 : u < 0.75f ? 2 : u < 0.88f ? 3 : 4;
  float y = (float)(gy * GRID) + unif(&r, 5, GRID - 5), x = (float)(gx * GRID) + unif(&r, 5, GRID - 5);
  draw_cell(&r, type, y, x, c);
  return 1;
}

dama_status dama_synth_slide(uint64_t seed, int64_t y0, int64_t x0, int32_t h, int32_t w, uint16_t *out,
                             dama_synth_cell_info *cells, int64_t max_cells, int64_t *n_cells) {
  DAMA_CHECK(out, DAMA_ERR_ARG, "synth_slide: out: expected a buffer of h*w*7 uint16, got NULL");
  DAMA_CHECK(h > 0 && w > 0, DAMA_ERR_ARG, "synth_slide: size: expected positive h and w, got %d x %d", h, w);
  DAMA_CHECK(y0 > -(1ll << 40) && y0 < (1ll << 40) && x0 > -(1ll << 40) && x0 < (1ll << 40), DAMA_ERR_ARG,
             "synth_slide: origin (%lld, %lld): expected |y0|, |x0| < 2^40", (long long)y0, (long long)x0);
  const int64_t plane = (int64_t)(h + 2) * (w + 2);
  float *P = calloc((size_t)plane * (NCH + 1), sizeof(float));
  DAMA_CHECK(P, DAMA_ERR_OOM, "synth_slide: out of memory for a %d x %d window", h, w);
  uint64_t key = seed ^ DAMA_KEY_SYNTH;
  int64_t gy0 = (y0 - REACH) / GRID - 1, gy1 = (y0 + h + REACH) / GRID + 1;
  int64_t gx0 = (x0 - REACH) / GRID - 1, gx1 = (x0 + w + REACH) / GRID + 1;
  int64_t n = 0;
  for (int64_t gy = gy0; gy <= gy1; gy++)
    for (int64_t gx = gx0; gx <= gx1; gx++) {
      cell c;
      if (!grid_cell(key, gy, gx, &c)) continue;
      render_cell(P, h + 2, w + 2, (double)(y0 - 1), (double)(x0 - 1), &c);
      if (c.y >= y0 && c.y < y0 + h && c.x >= x0 && c.x < x0 + w) {
        if (cells && n < max_cells) {
          cells[n].y = (float)(c.y - y0); cells[n].x = (float)(c.x - x0);
          cells[n].type = c.type; cells[n].radius = 0.5f * (c.na + c.nb);
        }
        n++;
      }
    }
  float bg[NCH];
  background(key, 2, 0, bg);
  finish_image(P, P + NCH * plane, h + 2, w + 2, y0, x0, key, bg, out);
  free(P);
  if (n_cells) *n_cells = n;
  return DAMA_OK;
}

/* ---- labelled single-cell crops ---- */

int32_t dama_synth_cell_label(uint64_t seed, uint64_t index) {
  dama_prng r;
  dama_prng_init(&r, seed ^ DAMA_KEY_SYNTH, 3, index << 4);
  return (int32_t)dama_prng_below(&r, 5);
}

static _Thread_local float *tl_planes;
static _Thread_local size_t tl_planes_n;

void dama_synth_thread_cleanup(void) { free(tl_planes); tl_planes = NULL; tl_planes_n = 0; }

dama_status dama_synth_cell(uint64_t seed, uint64_t index, int32_t size, uint16_t *out, int32_t *label) {
  DAMA_CHECK(out, DAMA_ERR_ARG, "synth_cell: out: expected a buffer of size*size*7 uint16, got NULL");
  DAMA_CHECK(size >= 8 && size <= 4096, DAMA_ERR_ARG, "synth_cell: size: expected 8..4096, got %d", size);
  const int32_t PS = size + 2; /* with the blur margin */
  const int64_t plane = (int64_t)PS * PS;
  size_t need = (size_t)plane * (NCH + 1);
  if (tl_planes_n < need) {
    float *p = realloc(tl_planes, need * sizeof(float));
    DAMA_CHECK(p, DAMA_ERR_OOM, "synth_cell: out of memory for a %d x %d crop", size, size);
    tl_planes = p; tl_planes_n = need;
  }
  float *P = tl_planes;
  memset(P, 0, sizeof(float) * (size_t)plane * NCH);
  uint64_t key = seed ^ DAMA_KEY_SYNTH;
  dama_prng r;
  dama_prng_init(&r, key, 3, index << 4);
  int32_t type = (int32_t)dama_prng_below(&r, 5); /* the same first draw as dama_synth_cell_label */
  float mid = size * 0.5f + 1.f;
  float s = size / 100.f; /* neighbour layout scales with the crop; cell sizes do not */
  int nn = (int)dama_prng_below(&r, 5);
  cell c;
  for (int k = 0; k < nn; k++) { /* neighbours first, so the centre cell is drawn on top */
    dama_prng rk;
    dama_prng_init(&rk, key, 4, (index << 4) | (uint64_t)k);
    float a = unif(&rk, 0, 6.2831853f), d = unif(&rk, 20.f, 48.f) * (s < 1 ? 1 : s);
    int t = (int)dama_prng_below(&rk, 5);
    draw_cell(&rk, t, mid + d * sinf(a), mid + d * cosf(a), &c);
    render_cell(P, PS, PS, 0, 0, &c);
  }
  draw_cell(&r, type, mid + unif(&r, -3, 3), mid + unif(&r, -3, 3), &c);
  render_cell(P, PS, PS, 0, 0, &c);
  float bg[NCH];
  background(key, 5, index, bg);
  /* noise keyed by the crop: a distinct "slide row" per index */
  finish_image(P, P + NCH * plane, PS, PS, (int64_t)(index & 0xffffffffu) * 8192, (int64_t)(index >> 32), key ^ 0x5eedull, bg, out);
  if (label) *label = type;
  return DAMA_OK;
}
