/* The synthetic multiplex generator: determinism, windows that agree, labels, and that each class is
 * bright in its own marker at the centre of its crops. */
#include "dama_test.h"
#include <stdlib.h>
#include <string.h>

DAMA_TEST(names) {
  CHECK(strcmp(dama_synth_channel_name(0), "DAPI") == 0 && strcmp(dama_synth_channel_name(6), "RECA1") == 0);
  CHECK(strcmp(dama_synth_class_name(3), "microglia") == 0 && dama_synth_class_name(5) == NULL);
}

DAMA_TEST(slide_is_deterministic_and_windows_agree) {
  const int H = 300, W = 260;
  uint16_t *a = malloc(sizeof(uint16_t) * H * W * 7), *b = malloc(sizeof(uint16_t) * H * W * 7);
  uint16_t *win = malloc(sizeof(uint16_t) * 100 * 120 * 7);
  dama_synth_cell_info cells[400];
  int64_t n = 0, n2 = 0;
  CHECK_OK(dama_synth_slide(11, 0, 0, H, W, a, cells, 400, &n));
  CHECK_OK(dama_synth_slide(11, 0, 0, H, W, b, NULL, 0, &n2));
  CHECK(memcmp(a, b, sizeof(uint16_t) * H * W * 7) == 0 && n == n2);
  CHECK_MSG(n > 40 && n < 110, "%lld cells in 300 x 260", (long long)n);
  int types[5] = {0};
  for (int64_t i = 0; i < n; i++) {
    CHECK(cells[i].y >= 0 && cells[i].y < H && cells[i].x >= 0 && cells[i].x < W && cells[i].radius > 2);
    types[cells[i].type]++;
  }
  for (int t = 0; t < 5; t++) CHECK_MSG(types[t] > 0, "no cell of type %d", t);
  /* a window at (137, 51) equals the same region of the big one */
  CHECK_OK(dama_synth_slide(11, 137, 51, 100, 120, win, NULL, 0, NULL));
  for (int y = 0; y < 100; y++)
    CHECK(memcmp(win + (size_t)y * 120 * 7, a + ((size_t)(137 + y) * W + 51) * 7, sizeof(uint16_t) * 120 * 7) == 0);
  /* a different seed differs */
  CHECK_OK(dama_synth_slide(12, 0, 0, H, W, b, NULL, 0, NULL));
  CHECK(memcmp(a, b, sizeof(uint16_t) * H * W * 7) != 0);
  /* nuclei are brighter than the background in DAPI at the cell centres */
  double in = 0, bg = 0;
  for (int64_t i = 0; i < n; i++) in += a[((size_t)(int)cells[i].y * W + (int)cells[i].x) * 7];
  for (int i = 0; i < H * W; i++) bg += a[(size_t)i * 7];
  CHECK(in / n > 3 * bg / (H * W));
  free(a); free(b); free(win);
}

DAMA_TEST(cells_have_their_marker_at_the_centre) {
  const int S = 100;
  uint16_t *c = malloc(sizeof(uint16_t) * S * S * 7), *c2 = malloc(sizeof(uint16_t) * S * S * 7);
  double sum[5][7] = {{0}};
  int count[5] = {0};
  for (int i = 0; i < 500; i++) {
    int32_t lab = -1, lab2 = -1;
    CHECK_OK(dama_synth_cell(5, (uint64_t)i, S, c, &lab));
    CHECK(lab >= 0 && lab < 5 && lab == dama_synth_cell_label(5, (uint64_t)i));
    if (i < 5) {
      CHECK_OK(dama_synth_cell(5, (uint64_t)i, S, c2, &lab2));
      CHECK(lab2 == lab && memcmp(c, c2, sizeof(uint16_t) * S * S * 7) == 0);
    }
    count[lab]++;
    for (int y = S / 2 - 4; y < S / 2 + 4; y++)
      for (int x = S / 2 - 4; x < S / 2 + 4; x++)
        for (int k = 0; k < 7; k++) sum[lab][k] += c[((size_t)y * S + x) * 7 + k];
  }
  for (int t = 0; t < 5; t++) {
    CHECK_MSG(count[t] > 60, "class %d: %d of 500", t, count[t]);
    for (int k = 2; k < 7; k++)
      if (k != 2 + t) CHECK_MSG(sum[t][2 + t] > 2 * sum[t][k], "class %d: marker %d not the brightest", t, 2 + t);
  }
  CHECK_STATUS(dama_synth_cell(5, 0, 4, c, NULL), DAMA_ERR_ARG);
  free(c); free(c2);
}
