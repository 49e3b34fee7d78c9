/* The threaded loader: the same batches whatever the number of workers, epochs and drop_last, exact
 * resume from a cursor, array and file sources, unreadable files (skipped and counted, or an error that
 * names the file). */
#define _POSIX_C_SOURCE 200809L
#include "dama_test.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static dama_loader_config synth_cfg(int workers) {
  dama_loader_config c;
  memset(&c, 0, sizeof c);
  c.source = DAMA_LOADER_SYNTH;
  c.n = 50;
  c.synth_seed = 3;
  c.synth_size = 100;
  c.pipeline = DAMA_PIPE_TRAIN;
  c.out_size = 64;
  c.batch_size = 16;
  c.shuffle = 1;
  c.seed = 42;
  c.workers = workers;
  c.prefetch = 3;
  return c;
}

/* Run `nb` next() calls, returning all images, labels and batch sizes concatenated. */
static int run(dama_loader *L, int nb, float *imgs, int64_t *labs, int64_t *sizes, int64_t per) {
  float *p = imgs;
  int64_t *q = labs;
  for (int b = 0; b < nb; b++) {
    int64_t n = -1;
    if (dama_loader_next(L, p, q, &n) != DAMA_OK) return 0;
    sizes[b] = n;
    p += n * per;
    q += n;
  }
  return 1;
}

DAMA_TEST(same_batches_whatever_the_workers) {
  enum { NB = 10 }; /* two epochs of 16, 16, 16, 2 and their end markers */
  const int64_t per = 7 * 64 * 64;
  float *ref = malloc(sizeof(float) * 100 * per), *got = malloc(sizeof(float) * 100 * per);
  int64_t rl[100], gl[100], rs[NB], gs[NB];
  for (int w = 0; w <= 3; w++) {
    dama_loader_config c = synth_cfg(w);
    dama_loader *L = NULL;
    CHECK_OK(dama_loader_create(&c, &L));
    CHECK(dama_loader_batches_per_epoch(L) == 4 && dama_loader_num_samples(L) == 50);
    int ok = run(L, NB, w == 0 ? ref : got, w == 0 ? rl : gl, w == 0 ? rs : gs, per);
    CHECK_MSG(ok, "workers %d: %s", w, dama_last_error());
    int64_t e, i;
    dama_loader_get_cursor(L, &e, &i);
    CHECK(e == 2 && i == 0);
    dama_loader_destroy(L);
    if (w == 0) {
      int64_t expect[NB] = {16, 16, 16, 2, 0, 16, 16, 16, 2, 0};
      for (int b = 0; b < NB; b++) CHECK_MSG(rs[b] == expect[b], "batch %d has %lld samples", b, (long long)rs[b]);
      for (int k = 0; k < 100; k++) CHECK(rl[k] >= 0 && rl[k] < 5);
      /* the labels of an epoch are those of the synthetic crops in the epoch's order */
      int64_t order[50];
      CHECK_OK(dama_loader_create(&c, &L));
      CHECK_OK(dama_loader_epoch_order(L, 1, order));
      dama_loader_destroy(L);
      for (int k = 0; k < 50; k++) CHECK(rl[50 + k] == dama_synth_cell_label(3, (uint64_t)order[k]));
    } else {
      CHECK(memcmp(rs, gs, sizeof rs) == 0 && memcmp(rl, gl, sizeof(int64_t) * 100) == 0);
      CHECK_MSG(memcmp(ref, got, sizeof(float) * 100 * per) == 0, "workers %d: images differ from 0 workers", w);
    }
  }
  /* a sample equals dama_synth_cell + dama_aug_train with (seed, epoch, dataset index) */
  uint16_t *crop = malloc(sizeof(uint16_t) * 100 * 100 * 7);
  float *one = malloc(sizeof(float) * per);
  int64_t order[50];
  dama_loader_config c = synth_cfg(0);
  dama_loader *L = NULL;
  CHECK_OK(dama_loader_create(&c, &L));
  CHECK_OK(dama_loader_epoch_order(L, 1, order));
  dama_loader_destroy(L);
  int32_t lab;
  CHECK_OK(dama_synth_cell(3, (uint64_t)order[5], 100, crop, &lab));
  dama_hwc v = {crop, DAMA_U16, 100, 100, 7, 0};
  CHECK_OK(dama_aug_train(one, &v, NULL, 0, 64, 42, 1, (uint64_t)order[5]));
  CHECK(memcmp(one, ref + (50 + 5) * per, sizeof(float) * per) == 0);
  free(crop); free(one); free(ref); free(got);
}

DAMA_TEST(shuffle_orders_and_drop_last) {
  dama_loader_config c = synth_cfg(1);
  c.drop_last = 1;
  c.pipeline = DAMA_PIPE_VAL;
  dama_loader *L = NULL;
  CHECK_OK(dama_loader_create(&c, &L));
  CHECK(dama_loader_batches_per_epoch(L) == 3);
  int64_t o0[50], o1[50], seen[50] = {0};
  CHECK_OK(dama_loader_epoch_order(L, 0, o0));
  CHECK_OK(dama_loader_epoch_order(L, 1, o1));
  CHECK(memcmp(o0, o1, sizeof o0) != 0);
  for (int k = 0; k < 50; k++) seen[o0[k]]++;
  for (int k = 0; k < 50; k++) CHECK(seen[k] == 1);
  int64_t n, labs[16];
  for (int b = 0; b < 3; b++) { CHECK_OK(dama_loader_next(L, NULL, labs, &n)); CHECK(n == 16); }
  CHECK_OK(dama_loader_next(L, NULL, labs, &n));
  CHECK(n == 0);
  dama_loader_destroy(L);
  c.shuffle = 0;
  CHECK_OK(dama_loader_create(&c, &L));
  CHECK_OK(dama_loader_epoch_order(L, 3, o0));
  for (int k = 0; k < 50; k++) CHECK(o0[k] == k);
  dama_loader_destroy(L);
  c.n = 10; /* fewer samples than one batch with drop_last */
  CHECK_STATUS(dama_loader_create(&c, &L), DAMA_ERR_ARG);
}

DAMA_TEST(resume_from_cursor_is_exact) {
  const int64_t per = 7 * 64 * 64;
  float *a = malloc(sizeof(float) * 64 * per), *b = malloc(sizeof(float) * 64 * per);
  int64_t la[64], lb[64], sa[4], sb[4], e, i;
  for (int w = 0; w <= 2; w += 2) {
    dama_loader_config c = synth_cfg(w);
    dama_loader *L = NULL, *M = NULL;
    CHECK_OK(dama_loader_create(&c, &L));
    CHECK(run(L, 3, a, la, sa, per)); /* 16, 16, 16 */
    dama_loader_get_cursor(L, &e, &i);
    CHECK(e == 0 && i == 48);
    CHECK(run(L, 4, a, la, sa, per)); /* 2, end, 16, 16 */
    CHECK(sa[0] == 2 && sa[1] == 0 && sa[2] == 16 && sa[3] == 16);
    CHECK_OK(dama_loader_create(&c, &M));
    CHECK_OK(dama_loader_set_cursor(M, e, i));
    CHECK(run(M, 4, b, lb, sb, per));
    CHECK(memcmp(sa, sb, sizeof sa) == 0 && memcmp(la, lb, sizeof(int64_t) * 34) == 0);
    CHECK(memcmp(a, b, sizeof(float) * 34 * per) == 0);
    /* set_cursor on a running loader (batches already prefetched) rewinds too */
    CHECK_OK(dama_loader_set_cursor(L, e, i));
    CHECK(run(L, 4, b, lb, sb, per));
    CHECK(memcmp(a, b, sizeof(float) * 34 * per) == 0);
    CHECK_STATUS(dama_loader_set_cursor(L, 0, 51), DAMA_ERR_ARG);
    dama_loader_destroy(L);
    dama_loader_destroy(M);
  }
  free(a); free(b);
}

DAMA_TEST(array_source_and_channels) {
  int64_t shape[4] = {10, 8, 8, 3};
  dama_tensor *arr = NULL;
  CHECK_OK(dama_empty(&arr, 4, shape, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  uint16_t *p = dama_data_ptr(arr);
  for (int i = 0; i < 10 * 8 * 8 * 3; i++) p[i] = (uint16_t)(i * 37);
  int64_t labels[10];
  for (int i = 0; i < 10; i++) labels[i] = 100 + i;
  int32_t chans[2] = {2, 0};
  dama_loader_config c;
  memset(&c, 0, sizeof c);
  c.source = DAMA_LOADER_ARRAY;
  c.array = arr;
  c.labels = labels;
  c.pipeline = DAMA_PIPE_NONE;
  c.out_size = 8;
  c.batch_size = 4;
  c.channels = chans;
  c.n_channels = 2;
  c.workers = 2;
  dama_loader *L = NULL;
  CHECK_OK(dama_loader_create(&c, &L));
  dama_tensor_release(arr); /* the loader keeps it alive */
  int32_t cc, hh, ww;
  dama_loader_sample_shape(L, &cc, &hh, &ww);
  CHECK(cc == 2 && hh == 8 && ww == 8);
  const float *imgs;
  const int64_t *labs;
  int64_t n, seen = 0;
  for (int b = 0; b < 3; b++) {
    CHECK_OK(dama_loader_next_borrow(L, &imgs, &labs, &n));
    CHECK(n == (b < 2 ? 4 : 2));
    for (int64_t j = 0; j < n; j++) {
      int64_t id = seen + j;
      CHECK(labs[j] == 100 + id);
      for (int k = 0; k < 2; k++)
        for (int y = 0; y < 8; y++)
          for (int x = 0; x < 8; x++)
            CHECK(imgs[((j * 2 + k) * 8 + y) * 8 + x] == p[((id * 8 + y) * 8 + x) * 3 + chans[k]] / 65535.0f);
    }
    seen += n;
  }
  dama_loader_destroy(L);
  chans[0] = 3;
  CHECK_OK(dama_empty(&arr, 4, shape, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  c.array = arr;
  CHECK_STATUS(dama_loader_create(&c, &L), DAMA_ERR_INDEX);
  CHECK(strstr(dama_last_error(), "channels[0] = 3") != NULL);
  dama_tensor_release(arr);
}

DAMA_TEST(files_skip_bad_or_fail_naming_the_file) {
  char dir[] = "/tmp/dama_test_loader_XXXXXX";
  if (!mkdtemp(dir)) SKIP("no temporary folder");
  char paths[6][256];
  const char *pp[6];
  int64_t shape[3] = {70, 70, 7};
  for (int i = 0; i < 6; i++) {
    snprintf(paths[i], sizeof paths[i], "%s/cell_%d.tif", dir, i);
    pp[i] = paths[i];
    if (i == 3) { /* a corrupt file */
      FILE *f = fopen(paths[i], "wb");
      fputs("II*\0garbage", f);
      fclose(f);
      continue;
    }
    dama_tensor *t = NULL;
    CHECK_OK(dama_empty(&t, 3, shape, DAMA_U16, (dama_device){DAMA_CPU, 0}));
    CHECK_OK(dama_synth_cell(9, (uint64_t)i, 70, dama_data_ptr(t), NULL));
    CHECK_OK(dama_tiff_write(paths[i], t, 0, 0, 0, 0, NULL));
    dama_tensor_release(t);
  }
  int64_t labels[6] = {0, 1, 2, 3, 4, 5};
  dama_loader_config c;
  memset(&c, 0, sizeof c);
  c.source = DAMA_LOADER_FILES;
  c.n = 6;
  c.paths = pp;
  c.labels = labels;
  c.pipeline = DAMA_PIPE_TRAIN;
  c.out_size = 128;
  c.batch_size = 3;
  c.workers = 2;
  c.skip_bad = 1;
  c.seed = 1;
  dama_loader *L = NULL;
  CHECK_OK(dama_loader_create(&c, &L));
  int64_t n, labs[3], skipped, samples;
  float *imgs = malloc(sizeof(float) * 3 * 7 * 128 * 128);
  CHECK_OK(dama_loader_next(L, imgs, labs, &n));
  CHECK(n == 3 && labs[0] == 0 && labs[1] == 1 && labs[2] == 2);
  CHECK_OK(dama_loader_next(L, imgs, labs, &n));
  CHECK(n == 3 && labs[0] == 4 && labs[1] == 4 && labs[2] == 5); /* file 3 replaced by file 4 */
  dama_loader_stats(L, &skipped, &samples);
  CHECK_MSG(skipped == 1 && samples >= 6, "skipped %lld, samples %lld", (long long)skipped, (long long)samples);
  dama_loader_destroy(L);
  /* the replacement's image is file 4's, augmented as sample 4 */
  dama_tensor *t4 = NULL;
  CHECK_OK(dama_image_read(paths[4], &t4));
  float *one = malloc(sizeof(float) * 7 * 128 * 128);
  dama_hwc v = {dama_data_ptr(t4), DAMA_U16, 70, 70, 7, 0};
  CHECK_OK(dama_aug_train(one, &v, NULL, 0, 128, 1, 0, 4));
  CHECK(memcmp(one, imgs, sizeof(float) * 7 * 128 * 128) == 0);
  dama_tensor_release(t4);
  c.skip_bad = 0;
  for (int w = 0; w <= 1; w++) {
    c.workers = w;
    CHECK_OK(dama_loader_create(&c, &L));
    CHECK_OK(dama_loader_next(L, imgs, labs, &n));
    dama_status st = dama_loader_next(L, imgs, labs, &n);
    CHECK_MSG(st != DAMA_OK && strstr(dama_last_error(), "cell_3.tif") != NULL, "workers %d: status %d, message '%s'", w,
              st, dama_last_error());
    dama_loader_destroy(L);
  }
  for (int i = 0; i < 6; i++) unlink(paths[i]);
  rmdir(dir);
  free(imgs); free(one);
}

/* Every loader error names the file, also when the reader's own message does not (here: the .npy
 * reader's allocation fails under a memory limit, a message that names no file by itself). */
DAMA_TEST(file_errors_name_the_file_even_when_the_reader_does_not) {
  char dir[] = "/tmp/dama_test_loader_XXXXXX";
  if (!mkdtemp(dir)) SKIP("no temporary folder");
  char path[256];
  snprintf(path, sizeof path, "%s/sample_0.npy", dir);
  const char *pp[1] = {path};
  int64_t shape[3] = {70, 70, 7};
  dama_tensor *t = NULL;
  CHECK_OK(dama_zeros(&t, 3, shape, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_npy_write(path, t));
  dama_tensor_release(t);
  int64_t labels[1] = {0};
  dama_loader_config c;
  memset(&c, 0, sizeof c);
  c.source = DAMA_LOADER_FILES;
  c.n = 1;
  c.paths = pp;
  c.labels = labels;
  c.pipeline = DAMA_PIPE_TRAIN;
  c.out_size = 32;
  c.batch_size = 1;
  c.workers = 0;
  c.seed = 1;
  dama_loader *L = NULL;
  CHECK_OK(dama_loader_create(&c, &L));
  float *imgs = malloc(sizeof(float) * 7 * 32 * 32);
  int64_t n = 0, lab = 0;
  dama_memory_set_limit(10000);
  dama_status st = dama_loader_next(L, imgs, &lab, &n);
  dama_memory_set_limit(0);
  CHECK_MSG(st == DAMA_ERR_OOM && strstr(dama_last_error(), "loader_next: epoch 0, sample 0") &&
                strstr(dama_last_error(), "sample_0.npy"), "status %d, message '%s'", st, dama_last_error());
  dama_loader_destroy(L);
  free(imgs);
  unlink(path);
  rmdir(dir);
}
