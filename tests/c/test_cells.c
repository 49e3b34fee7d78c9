/* Cell finding: distance transform against brute force, Otsu, erosion, components, two touching discs
 * split by the watershed, padded crops, and detection counts on the synthetic slides and on the StarDist
 * test image (125 annotated nuclei) when the shared data is present. */
#include "dama_test.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

DAMA_TEST(distance_transform_is_exact) {
  const int h = 31, w = 43;
  uint8_t m[31 * 43];
  uint32_t s = 12345;
  for (int i = 0; i < h * w; i++) { s = s * 1664525u + 1013904223u; m[i] = (s >> 24) < 230; }
  float d[31 * 43];
  CHECK_OK(dama_distance_transform(d, m, h, w));
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      double best = 1e30;
      for (int yy = 0; yy < h; yy++)
        for (int xx = 0; xx < w; xx++)
          if (!m[yy * w + xx]) { double q = (double)(y - yy) * (y - yy) + (double)(x - xx) * (x - xx); if (q < best) best = q; }
      double want = m[y * w + x] ? sqrt(best) : 0;
      CHECK_MSG(fabs(d[y * w + x] - want) < 1e-4, "(%d,%d): %g vs %g", y, x, d[y * w + x], want);
    }
  memset(m, 1, sizeof m);
  CHECK_OK(dama_distance_transform(d, m, h, w));
  CHECK(d[0] >= 1e19f);
}

DAMA_TEST(otsu_erode_components) {
  float v[1000];
  for (int i = 0; i < 1000; i++) v[i] = i < 700 ? 0.1f + 0.0001f * (i % 50) : 0.8f + 0.0001f * (i % 50);
  float t;
  CHECK_OK(dama_otsu_threshold(v, 1000, &t));
  CHECK_MSG(t > 0.105f && t <= 0.8f, "threshold %g", t); /* any split between the two clusters */
  /* a 5 x 5 square loses its rim with one erosion; a square touching the edge keeps its edge side */
  uint8_t m[10 * 12] = {0}, e[10 * 12];
  for (int y = 2; y < 7; y++) for (int x = 2; x < 7; x++) m[y * 12 + x] = 1;
  for (int y = 0; y < 3; y++) for (int x = 9; x < 12; x++) m[y * 12 + x] = 1;
  CHECK_OK(dama_erode(e, m, 10, 12, 1));
  int cnt = 0;
  for (int i = 0; i < 120; i++) cnt += e[i];
  CHECK_MSG(cnt == 9 + 4, "%d pixels left", cnt); /* the 3 x 3 centre, and rows 0..1 x columns 10..11 at the edge */
  /* diagonal neighbours: two components with 4-connectivity, one with 8 */
  uint8_t dgn[3 * 3] = {1, 0, 0, 0, 1, 0, 0, 0, 0};
  int32_t lab[9], n;
  CHECK_OK(dama_label_components(lab, dgn, 3, 3, 4, &n));
  CHECK(n == 2 && lab[0] == 1 && lab[4] == 2);
  CHECK_OK(dama_label_components(lab, dgn, 3, 3, 8, &n));
  CHECK(n == 1 && lab[4] == 1);
}

DAMA_TEST(touching_discs_are_split) {
  const int h = 60, w = 80;
  uint16_t *img = calloc((size_t)h * w * 2, sizeof(uint16_t));
  double c1y = 30, c1x = 28, c2y = 31, c2x = 47, r = 11; /* overlapping by 3 pixels */
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++) {
      int in = hypot(y - c1y, x - c1x) <= r || hypot(y - c2y, x - c2x) <= r;
      img[(y * w + x) * 2] = in ? 30000 : 1000;
      img[(y * w + x) * 2 + 1] = in ? 20000 : 800;
    }
  dama_hwc t = {img, DAMA_U16, h, w, 2, 0};
  dama_cellfind_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.erode = 1;
  int32_t *lab = malloc(sizeof(int32_t) * h * w);
  dama_cell cells[8];
  int64_t n = 0;
  CHECK_OK(dama_find_cells(&t, &cfg, lab, cells, 8, &n));
  CHECK_MSG(n == 2, "found %lld cells", (long long)n);
  int a = cells[0].x < cells[1].x ? 0 : 1, b = 1 - a;
  CHECK_MSG(fabs(cells[a].y - c1y) < 1.5 && fabs(cells[a].x - c1x) < 1.5 && fabs(cells[b].y - c2y) < 1.5 &&
                fabs(cells[b].x - c2x) < 1.5,
            "centres (%.1f, %.1f) and (%.1f, %.1f)", cells[a].y, cells[a].x, cells[b].y, cells[b].x);
  CHECK(lab[30 * w + 28] == cells[a].label && lab[31 * w + 47] == cells[b].label && lab[0] == 0);
  free(lab); free(img);
}

DAMA_TEST(crop_pad_at_borders) {
  uint16_t img[5 * 6 * 2];
  for (int i = 0; i < 60; i++) img[i] = (uint16_t)(i + 1);
  dama_hwc t = {img, DAMA_U16, 5, 6, 2, 0};
  uint16_t o[4 * 4 * 2];
  CHECK_OK(dama_crop_pad(o, &t, 0, 0, 4)); /* top-left (-2, -2) */
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 4; x++)
      for (int k = 0; k < 2; k++) {
        int sy = y - 2, sx = x - 2;
        uint16_t want = (sy >= 0 && sx >= 0) ? img[(sy * 6 + sx) * 2 + k] : 0;
        CHECK(o[(y * 4 + x) * 2 + k] == want);
      }
  CHECK_OK(dama_crop_pad(o, &t, 4, 5, 4)); /* bottom-right */
  CHECK(o[0] == img[(2 * 6 + 3) * 2] && o[(1 * 4 + 2) * 2 + 1] == img[(3 * 6 + 5) * 2 + 1] && o[(3 * 4 + 3) * 2] == 0);
}

DAMA_TEST(synthetic_slide_detection) {
  const int H = 400, W = 400;
  uint16_t *img = malloc(sizeof(uint16_t) * H * W * 7);
  dama_synth_cell_info truth[400];
  int64_t nt = 0, n = 0;
  CHECK_OK(dama_synth_slide(21, 0, 0, H, W, img, truth, 400, &nt));
  dama_hwc t = {img, DAMA_U16, H, W, 7, 0};
  dama_cellfind_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.sigma = 1.5f;
  cfg.erode = 0; /* erosion removes the thin endothelial and microglial nuclei */
  dama_cell *cells = malloc(sizeof(dama_cell) * 1000);
  CHECK_OK(dama_find_cells(&t, &cfg, NULL, cells, 1000, &n));
  /* how many true nuclei have a detection within 5 px */
  int hit = 0;
  for (int64_t i = 0; i < nt; i++)
    for (int64_t j = 0; j < n && j < 1000; j++)
      if (hypot(truth[i].y - cells[j].y, truth[i].x - cells[j].x) < 5) { hit++; break; }
  fprintf(stderr, "  synthetic slide: %lld cells, %lld detections, %d cells matched within 5 px\n", (long long)nt,
          (long long)n, hit);
  CHECK(hit >= 0.85 * nt && n <= 1.15 * nt);
  free(cells); free(img);
}

DAMA_TEST(stardist_nuclei_count) {
  const char *img_path = DAMA_SOURCE_ROOT "/../shared/data/seg/stardist_img2d.tif";
  const char *alt = "/work/shared/data/seg/stardist_img2d.tif";
  if (access(img_path, R_OK) != 0) img_path = alt;
  if (access(img_path, R_OK) != 0) SKIP("shared/data/seg/stardist_img2d.tif not present");
  dama_tensor *im = NULL;
  CHECK_OK(dama_image_read(img_path, &im));
  dama_hwc t = {dama_data_ptr(im), im->dtype, (int32_t)im->shape[0], (int32_t)im->shape[1],
                im->ndim == 3 ? (int32_t)im->shape[2] : 1, 0};
  int32_t ch0 = 0;
  dama_cellfind_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.nuclear_channels = &ch0;
  cfg.n_nuclear = 1;
  cfg.sigma = 1.5f;
  cfg.erode = 1;
  cfg.peak_radius = 5;
  int64_t n = 0;
  dama_cell *cells = malloc(sizeof(dama_cell) * 1000);
  CHECK_OK(dama_find_cells(&t, &cfg, NULL, cells, 1000, &n));
  /* match against the annotated instances' centroids */
  int matched = -1, n_true = 0;
  char mpath[1024];
  snprintf(mpath, sizeof mpath, "%s", img_path);
  char *dot = strstr(mpath, "stardist_img2d.tif");
  if (dot) snprintf(dot, sizeof mpath - (size_t)(dot - mpath), "stardist_mask2d.tif");
  dama_tensor *mk = NULL;
  if (dot && access(mpath, R_OK) == 0 && dama_image_read(mpath, &mk) == DAMA_OK && mk->shape[0] == t.h && mk->shape[1] == t.w) {
    int64_t N = (int64_t)t.h * t.w;
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)N), maxl = 0;
    for (int64_t i = 0; i < N; i++) {
      int64_t idx[3] = {i / t.w, i % t.w, 0};
      double v = 0;
      dama_get(mk, idx, &v);
      lab[i] = (int32_t)v;
      if (lab[i] > maxl) maxl = lab[i];
    }
    int64_t *areas = malloc(sizeof(int64_t) * (size_t)(maxl + 1));
    double *cen = malloc(sizeof(double) * 2 * (size_t)(maxl + 1));
    CHECK_OK(dama_region_props(lab, t.h, t.w, maxl, areas, cen));
    matched = 0;
    for (int32_t l = 0; l < maxl; l++) {
      if (!areas[l]) continue;
      n_true++;
      for (int64_t j = 0; j < n && j < 1000; j++)
        if (hypot(cen[2 * l] - cells[j].y, cen[2 * l + 1] - cells[j].x) < 5) { matched++; break; }
    }
    free(lab); free(areas); free(cen);
  }
  dama_tensor_release(mk);
  fprintf(stderr, "  stardist_img2d (%dx%d %s): %lld detections vs 125 annotated nuclei; %d of %d annotated nuclei have a detection within 5 px\n",
          t.h, t.w, dama_dtype_name((dama_dtype)t.dtype), (long long)n, matched, n_true);
  CHECK(n >= 100 && n <= 150);
  CHECK(matched < 0 || matched >= 95);
  free(cells);
  dama_tensor_release(im);
}

DAMA_TEST(tiles_with_margins_find_each_cell_once) {
  /* a 600 x 600 synthetic slide in one window, and as 3 x 3 tiles of 200 with a 50-pixel margin */
  const int S = 600, T = 200, M = 50, CROP = 100;
  uint16_t *img = malloc(sizeof(uint16_t) * S * S * 7);
  CHECK_OK(dama_synth_slide(4, 0, 0, S, S, img, NULL, 0, NULL));
  dama_cellfind_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.sigma = 1.5f;
  cfg.threshold = 0.03f; /* a fixed threshold: Otsu would differ from tile to tile */
  dama_hwc whole = {img, DAMA_U16, S, S, 7, 0};
  dama_cell *ref = malloc(sizeof(dama_cell) * 2000), *got = malloc(sizeof(dama_cell) * 2000);
  int64_t nref = 0, ngot = 0;
  CHECK_OK(dama_tile_cells(&whole, 0, 0, S, S, &cfg, CROP, NULL, ref, 2000, &nref));
  uint16_t *crops = malloc(sizeof(uint16_t) * 400 * CROP * CROP * 7);
  int bad_crop = 0;
  for (int ty = 0; ty < S / T; ty++)
    for (int tx = 0; tx < S / T; tx++) {
      int y0 = ty * T - M < 0 ? 0 : ty * T - M, x0 = tx * T - M < 0 ? 0 : tx * T - M;
      int y1 = ty * T + T + M > S ? S : ty * T + T + M, x1 = tx * T + T + M > S ? S : tx * T + T + M;
      dama_hwc win = {img + ((size_t)y0 * S + x0) * 7, DAMA_U16, y1 - y0, x1 - x0, 7, (int64_t)S * 7};
      int64_t n = 0;
      CHECK_OK(dama_tile_cells(&win, ty * T - y0, tx * T - x0, T, T, &cfg, CROP, crops, got + ngot, 2000 - ngot, &n));
      for (int64_t i = 0; i < n && i < 400; i++) { /* a crop equals the slide's pixels where the window had them */
        int cy = (int)lrintf(got[ngot + i].y) + y0, cx = (int)lrintf(got[ngot + i].x) + x0;
        int yy = cy - CROP / 2 + 7, xx = cx - CROP / 2 + 9;
        if (yy >= y0 && yy < y1 && xx >= x0 && xx < x1 &&
            crops[((size_t)i * CROP * CROP + 7 * CROP + 9) * 7 + 2] != img[((size_t)yy * S + xx) * 7 + 2]) bad_crop++;
      }
      for (int64_t i = 0; i < n; i++) { got[ngot + i].y += (float)y0; got[ngot + i].x += (float)x0; }
      ngot += n;
    }
  CHECK(bad_crop == 0);
  int matched = 0;
  for (int64_t i = 0; i < nref; i++)
    for (int64_t j = 0; j < ngot; j++)
      if (hypot(ref[i].y - got[j].y, ref[i].x - got[j].x) < 1.0) { matched++; break; }
  fprintf(stderr, "  whole slide %lld cells, tiled %lld cells, %d identical centres\n", (long long)nref, (long long)ngot, matched);
  CHECK(nref > 200 && labs((long)(ngot - nref)) <= nref / 50 && matched >= 0.97 * nref);
  free(img); free(ref); free(got); free(crops);
}
