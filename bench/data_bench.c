/* Data pipeline benchmark and OpenCV cross-check (see bench/DATA.md for the build command).
 *
 *   data_bench gen DIR N      write N synthetic 100x100x7 uint16 crops as DIR/tif/cell_%05d.tif and DIR/crops.npy
 *   data_bench bench DIR      samples/s on one core for 7x128x128 training samples: from the TIFFs, from the
 *                             mmap'ed .npy, through the loader (0 workers), from synthetic crops; val transform
 *   data_bench check DIR      fixed-parameter train/val outputs for bench/data_bench_ref.py to compare with cv2
 */
#define _POSIX_C_SOURCE 200809L
#include "dama.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Process CPU time: on a shared, loaded machine this is the per-core cost; wall time would count the
 * time other processes held the core. (Multi-threaded cases report wall time.) */
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
static double wall(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

#define TRY(x) do { if ((x) != DAMA_OK) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, dama_last_error()); exit(1); } } while (0)

static int count_tifs(const char *dir) {
  char p[4096];
  int n = 0;
  for (;;) {
    snprintf(p, sizeof p, "%s/tif/cell_%05d.tif", dir, n);
    struct stat st;
    if (stat(p, &st) != 0) return n;
    n++;
  }
}

static int gen(const char *dir, int n) {
  char p[4096];
  mkdir(dir, 0755);
  snprintf(p, sizeof p, "%s/tif", dir);
  mkdir(p, 0755);
  int64_t shape[4] = {n, 100, 100, 7};
  dama_tensor *all = NULL, *one = NULL;
  TRY(dama_empty(&all, 4, shape, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  uint16_t *a = dama_data_ptr(all);
  for (int i = 0; i < n; i++) {
    TRY(dama_synth_cell(2024, (uint64_t)i, 100, a + (size_t)i * 70000, NULL));
    TRY(dama_select(&one, all, 0, i));
    snprintf(p, sizeof p, "%s/tif/cell_%05d.tif", dir, i);
    TRY(dama_tiff_write(p, one, 0, 0, 0, 0, NULL)); /* interleaved, uncompressed: what tifffile.imwrite writes */
    dama_tensor_release(one);
  }
  snprintf(p, sizeof p, "%s/crops.npy", dir);
  TRY(dama_npy_write(p, all));
  dama_tensor_release(all);
  printf("wrote %d crops to %s/tif and %s/crops.npy\n", n, dir, dir);
  return 0;
}

static void report(const char *name, int n, double secs) {
  printf("{\"case\": \"%s\", \"samples\": %d, \"seconds\": %.4f, \"samples_per_s\": %.1f}\n", name, n, secs, n / secs);
  fflush(stdout);
}

static int bench(const char *dir, int reps) {
  int n = count_tifs(dir);
  if (n == 0) { fprintf(stderr, "no crops in %s/tif (run gen first)\n", dir); return 1; }
  char p[4096];
  float *out = malloc(sizeof(float) * 7 * 128 * 128);
  double best;
  /* from TIFF files: decode (native dtype) + train transform */
  best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int i = 0; i < n; i++) {
      snprintf(p, sizeof p, "%s/tif/cell_%05d.tif", dir, i);
      dama_tensor *t = NULL;
      TRY(dama_image_read(p, &t));
      dama_hwc v = {dama_data_ptr(t), t->dtype, (int32_t)t->shape[0], (int32_t)t->shape[1], (int32_t)t->shape[2], 0};
      TRY(dama_aug_train(out, &v, NULL, 0, 128, 0, (uint64_t)r, (uint64_t)i));
      dama_tensor_release(t);
    }
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  report("dama_tiff_train", n, best);
  /* decode only */
  best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int i = 0; i < n; i++) {
      snprintf(p, sizeof p, "%s/tif/cell_%05d.tif", dir, i);
      dama_tensor *t = NULL;
      TRY(dama_image_read(p, &t));
      dama_tensor_release(t);
    }
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  report("dama_tiff_decode_only", n, best);
  /* from the mmap'ed .npy */
  snprintf(p, sizeof p, "%s/crops.npy", dir);
  dama_tensor *arr = NULL;
  TRY(dama_npy_load(p, 1, &arr));
  int na = (int)arr->shape[0];
  const uint16_t *a = dama_data_ptr(arr);
  best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int i = 0; i < na; i++) {
      dama_hwc v = {a + (size_t)i * 70000, DAMA_U16, 100, 100, 7, 0};
      TRY(dama_aug_train(out, &v, NULL, 0, 128, 0, (uint64_t)r, (uint64_t)i));
    }
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  report("dama_npy_train", na, best);
  best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    for (int i = 0; i < na; i++) {
      dama_hwc v = {a + (size_t)i * 70000, DAMA_U16, 100, 100, 7, 0};
      TRY(dama_aug_val(out, &v, NULL, 0, 48, 128));
    }
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  report("dama_npy_val", na, best);
  /* the loader in the calling thread, array source, batch 64 (includes the copy out) */
  {
    dama_loader_config c;
    memset(&c, 0, sizeof c);
    c.source = DAMA_LOADER_ARRAY; c.array = arr; c.pipeline = DAMA_PIPE_TRAIN; c.out_size = 128;
    c.batch_size = 64; c.shuffle = 1; c.seed = 1; c.workers = 0;
    dama_loader *L = NULL;
    TRY(dama_loader_create(&c, &L));
    float *imgs = malloc(sizeof(float) * 64 * 7 * 128 * 128);
    int64_t labs[64], got, total = 0;
    const float *bi;
    const int64_t *bl;
    double t0 = now();
    for (;;) { TRY(dama_loader_next_borrow(L, &bi, &bl, &got)); if (!got) break; total += got; }
    report("dama_loader_npy_train_0_workers_borrow", (int)total, now() - t0);
    total = 0;
    t0 = now();
    for (;;) { TRY(dama_loader_next(L, imgs, labs, &got)); if (!got) break; total += got; }
    report("dama_loader_npy_train_0_workers_copy", (int)total, now() - t0);
    dama_loader_destroy(L);
    /* the same with 2 workers (uses 2 cores: not a per-core number) */
    c.workers = 2; c.prefetch = 4;
    TRY(dama_loader_create(&c, &L));
    total = 0;
    t0 = wall();
    for (;;) { TRY(dama_loader_next(L, imgs, labs, &got)); if (!got) break; total += got; }
    report("dama_loader_npy_train_2_workers_wall", (int)total, wall() - t0);
    dama_loader_destroy(L);
    free(imgs);
  }
  dama_tensor_release(arr);
  /* synthetic crops generated on the fly + train transform */
  {
    uint16_t *crop = malloc(sizeof(uint16_t) * 70000);
    int ns = n < 1000 ? n : 1000;
    double t0 = now();
    for (int i = 0; i < ns; i++) {
      int32_t lab;
      TRY(dama_synth_cell(7, (uint64_t)i, 100, crop, &lab));
      dama_hwc v = {crop, DAMA_U16, 100, 100, 7, 0};
      TRY(dama_aug_train(out, &v, NULL, 0, 128, 0, 0, (uint64_t)i));
    }
    report("dama_synth_train", ns, now() - t0);
    free(crop);
  }
  free(out);
  return 0;
}

/* Inputs, parameters and outputs for the cv2 comparison in data_bench_ref.py. */
static int check(const char *dir) {
  const int N = 64;
  char p[4096];
  mkdir(dir, 0755);
  int64_t ishape[4] = {N, 100, 100, 7}, oshape[4] = {N, 7, 128, 128};
  dama_tensor *in = NULL, *tr = NULL, *va = NULL;
  TRY(dama_empty(&in, 4, ishape, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  TRY(dama_empty(&tr, 4, oshape, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  TRY(dama_empty(&va, 4, oshape, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  uint16_t *a = dama_data_ptr(in);
  float *t = dama_data_ptr(tr), *v = dama_data_ptr(va);
  uint64_t s = 1;
  snprintf(p, sizeof p, "%s/check_params.txt", dir);
  FILE *f = fopen(p, "w");
  if (!f) { fprintf(stderr, "cannot write %s\n", p); return 1; }
  for (int i = 0; i < N; i++) {
    if (i % 2) TRY(dama_synth_cell(99, (uint64_t)i, 100, a + (size_t)i * 70000, NULL));
    else for (int k = 0; k < 70000; k++) { s = s * 6364136223846793005ull + 1442695040888963407ull; a[(size_t)i * 70000 + k] = (uint16_t)(s >> 48); }
    dama_aug_params pr;
    TRY(dama_aug_train_draw(&pr, 100, 100, 128, 5, 0, (uint64_t)i));
    if (i == 0) { pr.angle = 0; pr.shift_x = pr.shift_y = 0; pr.hflip = pr.vflip = 0; }
    if (i == 1) pr.angle = 90;
    if (i == 2) pr.angle = -90;
    if (i == 3) pr.angle = 45;
    dama_hwc hv = {a + (size_t)i * 70000, DAMA_U16, 100, 100, 7, 0};
    TRY(dama_aug_train_apply(t + (size_t)i * 7 * 128 * 128, &hv, NULL, 0, &pr));
    TRY(dama_aug_val(v + (size_t)i * 7 * 128 * 128, &hv, NULL, 0, 48, 128));
    fprintf(f, "%d %d %d %.17g %d %d %d %d\n", pr.crop_top, pr.crop_left, pr.crop_size, pr.angle, pr.shift_x,
            pr.shift_y, pr.hflip, pr.vflip);
  }
  fclose(f);
  snprintf(p, sizeof p, "%s/check_in.npy", dir);
  TRY(dama_npy_write(p, in));
  snprintf(p, sizeof p, "%s/check_train.npy", dir);
  TRY(dama_npy_write(p, tr));
  snprintf(p, sizeof p, "%s/check_val.npy", dir);
  TRY(dama_npy_write(p, va));
  dama_tensor_release(in); dama_tensor_release(tr); dama_tensor_release(va);
  printf("wrote %d check cases to %s\n", N, dir);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 4 && strcmp(argv[1], "gen") == 0) return gen(argv[2], atoi(argv[3]));
  if (argc >= 3 && strcmp(argv[1], "bench") == 0) return bench(argv[2], argc >= 4 ? atoi(argv[3]) : 3);
  if (argc >= 3 && strcmp(argv[1], "check") == 0) return check(argv[2]);
  fprintf(stderr, "usage: data_bench gen DIR N | bench DIR [reps] | check DIR\n");
  return 2;
}
