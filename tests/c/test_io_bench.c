/* Decode throughput of the loader's hot path (dama_image_read_f32 on 100 x 100 x 7 uint16 TIFFs, one
 * thread) and .npy mmap row access. Prints numbers; checks only correctness, never timings.
 * DAMA_BENCH_SECONDS (default 0.4) sets the time spent per measurement. */
#define _GNU_SOURCE
#include "dama_test.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define tmp_path dama_test_tmp_path   /* shared helpers of tests/c/dama_test.c */
#define data_dir dama_test_data_dir
static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double bench_seconds(void) {
  const char *e = getenv("DAMA_BENCH_SECONDS");
  double s = e ? atof(e) : 0.4;
  return s > 0 ? s : 0.4;
}

/* Microscopy-like 12-bit data: smooth background, a few bright blobs, Poisson-ish noise. */
static void fill_cells(uint16_t *p, int64_t H, int64_t W, int64_t C, uint32_t seed) {
  uint32_t r = seed;
  for (int64_t y = 0; y < H; y++)
    for (int64_t x = 0; x < W; x++)
      for (int64_t c = 0; c < C; c++) {
        r = r * 1664525u + 1013904223u;
        double dx = (double)x - 50 - (double)(seed % 17), dy = (double)y - 45 - (double)(c * 3);
        double blob = 2000.0 * exp(-(dx * dx + dy * dy) / (200.0 + 40.0 * (double)c));
        p[(y * W + x) * C + c] = (uint16_t)(100 + 10 * c + blob + (r >> 27));
      }
}

DAMA_TEST(bench_tiff_decode_100x100x7_u16) {
  enum { NF = 64 };
  int64_t H = 100, W = 100, C = 7;
  dama_tensor *img = NULL;
  int64_t s[3] = {H, W, C};
  CHECK_OK(dama_empty(&img, 3, s, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  dama_io_set_fsync(0); /* 384 small files: the atomic rename is enough here */
  const char *cname[3] = {"none", "deflate", "lzw"};
  float *dst = malloc(sizeof(float) * (size_t)(H * W * C));
  for (int comp = 0; comp < 3; comp++)
    for (int layout = 0; layout < 2; layout++) {
      static char names[NF][700];
      int64_t bytes = 0;
      for (int i = 0; i < NF; i++) {
        fill_cells(dama_data_ptr(img), H, W, C, (uint32_t)i + 1);
        snprintf(names[i], sizeof names[i], "c%d_l%d_%d.tif", comp, layout, i);
        const char *p = tmp_path(names[i]);
        CHECK(p != NULL);
        CHECK_OK(dama_tiff_write(p, img, layout, comp, 0, 0, NULL));
        snprintf(names[i], sizeof names[i], "%s", p);
        struct stat sb;
        stat(p, &sb);
        bytes += sb.st_size;
      }
      /* correctness of the last one */
      CHECK_OK(dama_image_read_f32(names[NF - 1], dst, H, W, C));
      CHECK(dst[5] == (float)((uint16_t *)dama_data_ptr(img))[5] / 65535.0f);
      double t0 = now(), t1;
      int64_t n = 0;
      do {
        for (int i = 0; i < NF; i++) CHECK_OK(dama_image_read_f32(names[i], dst, H, W, C));
        n += NF;
        t1 = now();
      } while (t1 - t0 < bench_seconds());
      double fps = (double)n / (t1 - t0);
      printf("    read_f32 100x100x7 u16, %-7s %-11s: %7.0f files/s (%5.1f us/file, %.0f MB/s decoded, file %.1f KB)\n",
             cname[comp], layout ? "page/chan" : "interleaved", fps, 1e6 / fps, fps * (double)(H * W * C * 2) / 1e6,
             (double)bytes / NF / 1024.0);
    }
  dama_io_set_fsync(1);
  free(dst);
  dama_tensor_release(img);
}

DAMA_TEST(bench_bbbc048_tiffs) {
  const char *dd = data_dir();
  if (!dd) SKIP("shared/data is absent");
  char p[1024];
  snprintf(p, sizeof p, "%s/bbbc048/labelled_files.txt", dd);
  FILE *f = fopen(p, "r");
  CHECK(f != NULL);
  enum { NF = 256 };
  static char names[NF][600];
  int nf = 0;
  char line[512];
  while (nf < NF && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = 0;
    snprintf(names[nf++], sizeof names[0], "%.300s/bbbc048/%.200s", dd, line);
  }
  fclose(f);
  float dst[40 * 40 * 3];
  double t0 = now(), t1;
  int64_t n = 0;
  do {
    for (int i = 0; i < nf; i++) CHECK_OK(dama_image_read_f32(names[i], dst, 40, 40, 3));
    n += nf;
    t1 = now();
  } while (t1 - t0 < bench_seconds());
  printf("    read_f32 bbbc048 40x40x3 u16 deflate TIFFs: %.0f files/s (%.1f us/file)\n", (double)n / (t1 - t0),
         1e6 * (t1 - t0) / (double)n);
}

static void bench_rows(const char *label, const dama_tensor *a) {
  int64_t N = a->shape[0], row = dama_numel(a) / N;
  const uint16_t *base = dama_data_ptr(a);
  float *dst = malloc(sizeof(float) * (size_t)row);
  uint32_t r = 7;
  double t0 = now(), t1, acc = 0;
  int64_t n = 0;
  do {
    for (int k = 0; k < 1024; k++) {
      r = r * 1664525u + 1013904223u;
      const uint16_t *src = base + (int64_t)(r % (uint32_t)N) * row;
      for (int64_t i = 0; i < row; i++) dst[i] = (float)src[i] / 65535.0f;
      acc += dst[row / 2];
    }
    n += 1024;
    t1 = now();
  } while (t1 - t0 < bench_seconds());
  printf("    %s: %.0f random rows/s to f32 (%.2f us/row, %lld values per row)%s\n", label, (double)n / (t1 - t0),
         1e6 * (t1 - t0) / (double)n, (long long)row, acc < 0 ? "!" : "");
  free(dst);
}

DAMA_TEST(bench_npy_mmap_rows) {
  const char *dd = data_dir();
  dama_tensor *a = NULL;
  double t0 = now();
  if (dd) {
    char p[1024];
    snprintf(p, sizeof p, "%s/bbbc048/pretrain.npy", dd);
    CHECK_OK(dama_npy_load(p, 1, &a));
    printf("    npy_load(mmap) of pretrain.npy (4499x40x40x3 u16, 43 MB): %.1f us\n", 1e6 * (now() - t0));
    bench_rows("pretrain.npy mmap", a);
    dama_tensor *c = NULL;
    t0 = now();
    CHECK_OK(dama_npy_load(p, 0, &c));
    printf("    npy_load(copy) of pretrain.npy: %.1f ms\n", 1e3 * (now() - t0));
    bench_rows("pretrain.npy copy", c);
    dama_tensor_release(c);
  } else {
    int64_t s[4] = {2000, 40, 40, 3};
    dama_tensor *t = NULL;
    CHECK_OK(dama_zeros(&t, 4, s, DAMA_U16, (dama_device){DAMA_CPU, 0}));
    CHECK_OK(dama_npy_write(tmp_path("rows.npy"), t));
    dama_tensor_release(t);
    CHECK_OK(dama_npy_load(tmp_path("rows.npy"), 1, &a));
    printf("    npy_load(mmap) of a 2000x40x40x3 u16 file: %.1f us\n", 1e6 * (now() - t0));
    bench_rows("synthetic npy mmap", a);
  }
  dama_tensor_release(a);
}
