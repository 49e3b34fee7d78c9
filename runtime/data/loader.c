/* The threaded batch loader.
 *
 * A ring of `prefetch` batch slots is filled in order: the next free slot is planned with the next batch
 * after the last one planned (its epoch, its start in the epoch's order and its sample indices), then
 * workers claim small chunks of samples from the oldest unfinished slot, decode and augment them outside
 * the lock and count them done. The consumer takes the oldest slot once all its samples are done. Every
 * sample's result depends only on (seed, epoch, dataset index), never on the worker, so batches are the
 * same whatever the number of workers. With 0 workers the caller's thread does the same work inside next(). */
#define _POSIX_C_SOURCE 200809L
#include "data/data_internal.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHUNK 4
#define MSG 512

enum { SLOT_FREE = 0, SLOT_FILLING = 1 };

typedef struct slot {
  int state;
  int64_t epoch, start, count; /* batch = epoch order positions [start, start + count) */
  int64_t claimed, done;
  int64_t *idx;                /* dataset index per sample */
  int64_t *labels;
  float *images;
  dama_status status;          /* first failure among the batch's samples */
  int64_t err_sample;
  char msg[MSG];
} slot;

struct dama_loader {
  dama_loader_config cfg;      /* pointers in it replaced by our copies */
  char **paths;
  int64_t *labels;
  int32_t *channels;
  int32_t nch;                 /* output channels */
  int32_t src_c;               /* source channels */
  int64_t n, limit, bsz;
  int64_t sample_floats;
  /* array source */
  const uint8_t *arr;
  int64_t arr_stride_bytes;
  int32_t arr_h, arr_w, arr_dtype;
  /* state under mu */
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  slot *slots;
  int nslots;
  int64_t head, tail;          /* slots [head, tail) are planned, in order (indices mod nslots) */
  int64_t plan_e, plan_i;      /* next batch to plan */
  int64_t perm_epoch;          /* epoch whose order is in perm (-1 none) */
  int64_t *perm;
  int64_t cur_e, cur_i;        /* the consumer's cursor */
  int borrowed;                /* head slot was lent by next_borrow and is freed on the next call */
  int paused, stop, active;
  int64_t samples_done;
  uint8_t *bad;                /* per file: 1 = known unreadable */
  int64_t n_bad;
  pthread_t *threads;
  int nthreads;
};

/* ---- the epoch order ---- */
static void make_order(const dama_loader *L, int64_t epoch, int64_t *order) {
  for (int64_t i = 0; i < L->n; i++) order[i] = i;
  if (!L->cfg.shuffle) return;
  dama_prng r;
  dama_prng_init(&r, L->cfg.seed ^ DAMA_KEY_SHUFFLE, (uint64_t)epoch, 0);
  for (int64_t i = L->n - 1; i > 0; i--) {
    int64_t j = (int64_t)dama_prng_below(&r, (uint32_t)(i + 1));
    int64_t t = order[i]; order[i] = order[j]; order[j] = t;
  }
}

dama_status dama_loader_epoch_order(const dama_loader *L, int64_t epoch, int64_t *order) {
  DAMA_CHECK(L && order, DAMA_ERR_ARG, "loader_epoch_order: loader and order: expected non-NULL");
  DAMA_CHECK(epoch >= 0, DAMA_ERR_ARG, "loader_epoch_order: epoch: expected >= 0, got %lld", (long long)epoch);
  make_order(L, epoch, order);
  return DAMA_OK;
}

/* Plan the next batch into slot tail (called under mu with a free slot). */
static void plan_slot(dama_loader *L) {
  if (L->plan_i >= L->limit) { L->plan_e++; L->plan_i = 0; }
  slot *s = &L->slots[L->tail % L->nslots];
  if (L->perm_epoch != L->plan_e) { make_order(L, L->plan_e, L->perm); L->perm_epoch = L->plan_e; }
  s->epoch = L->plan_e;
  s->start = L->plan_i;
  s->count = L->limit - L->plan_i < L->bsz ? L->limit - L->plan_i : L->bsz;
  for (int64_t j = 0; j < s->count; j++) s->idx[j] = L->perm[s->start + j];
  s->claimed = s->done = 0;
  s->status = DAMA_OK;
  s->msg[0] = 0;
  s->state = SLOT_FILLING;
  L->plan_i += s->count;
  L->tail++;
}

/* ---- one sample ---- */
typedef struct wscratch { uint16_t *synth; size_t synth_n; } wscratch;

static dama_status run_pipeline(const dama_loader *L, float *out, const dama_hwc *v, int64_t epoch, int64_t id) {
  const dama_loader_config *c = &L->cfg;
  const int32_t S = c->out_size;
  switch (c->pipeline) {
  case DAMA_PIPE_TRAIN:
    return dama_aug_train(out, v, L->channels, L->nch, S, c->seed, (uint64_t)epoch, (uint64_t)id);
  case DAMA_PIPE_VAL:
    return dama_aug_val(out, v, L->channels, L->nch, c->crop_size, S);
  case DAMA_PIPE_RESIZE:
    return dama_aug_resize(out, v, L->channels, L->nch, S, S, c->resize_mode);
  case DAMA_PIPE_RRC:
    return dama_aug_random_resized_crop(out, v, L->channels, L->nch, S, S, c->rrc_scale_lo, c->rrc_scale_hi,
                                        c->rrc_ratio_lo, c->rrc_ratio_hi, c->rrc_hflip, c->seed, (uint64_t)epoch,
                                        (uint64_t)id);
  default:
    DAMA_CHECK(v->h == S && v->w == S, DAMA_ERR_SHAPE,
               "loader: pipeline 'none': sample is %d x %d, expected out_size %d x %d", v->h, v->w, S, S);
    return dama_aug_crop_resize(out, v, L->channels, L->nch, 0, 0, S, S, S, S, DAMA_RESIZE_NEAREST, 0);
  }
}

/* Decode dataset sample `id` and run the pipeline. */
static dama_status load_one(dama_loader *L, wscratch *ws, float *out, int64_t *label, int64_t epoch, int64_t id) {
  const dama_loader_config *c = &L->cfg;
  if (c->source == DAMA_LOADER_SYNTH) {
    int32_t S = c->synth_size;
    size_t need = (size_t)S * S * 7;
    if (ws->synth_n < need) {
      uint16_t *p = realloc(ws->synth, need * sizeof(uint16_t));
      DAMA_CHECK(p, DAMA_ERR_OOM, "loader: out of memory for a synthetic crop");
      ws->synth = p; ws->synth_n = need;
    }
    int32_t lab = 0;
    DAMA_TRY(dama_synth_cell(c->synth_seed, (uint64_t)id, S, ws->synth, &lab));
    *label = lab;
    dama_hwc v = {ws->synth, DAMA_U16, S, S, 7, 0};
    return run_pipeline(L, out, &v, epoch, id);
  }
  *label = L->labels ? L->labels[id] : -1;
  if (c->source == DAMA_LOADER_ARRAY) {
    dama_hwc v = {L->arr + id * L->arr_stride_bytes, L->arr_dtype, L->arr_h, L->arr_w, L->src_c, 0};
    return run_pipeline(L, out, &v, epoch, id);
  }
  dama_tensor *t = NULL;
  dama_status s = dama_image_read(L->paths[id], &t);
  if (s != DAMA_OK) {
    /* every loader error names the file, also when the reader's own message does not */
    if (strstr(dama_last_error(), L->paths[id]) == NULL) {
      char m[MSG];
      snprintf(m, sizeof m, "%s", dama_last_error());
      s = dama_error(s, "loader: '%s': %s", L->paths[id], m);
    }
    return s;
  }
  int64_t cc = t->ndim == 3 ? t->shape[2] : 1;
  if (t->ndim < 2 || t->ndim > 3) s = dama_error(DAMA_ERR_SHAPE, "loader: '%s': expected an H x W x C image, got %d dims", L->paths[id], t->ndim);
  else if (cc != L->src_c)
    s = dama_error(DAMA_ERR_SHAPE, "loader: '%s': expected %d channels, got %lld", L->paths[id], L->src_c, (long long)cc);
  else if (t->dtype != DAMA_U8 && t->dtype != DAMA_U16 && t->dtype != DAMA_F32)
    s = dama_error(DAMA_ERR_DTYPE, "loader: '%s': expected u8, u16 or f32 samples, got %s", L->paths[id],
                   dama_dtype_name((dama_dtype)t->dtype));
  if (s == DAMA_OK) {
    dama_hwc v = {dama_data_ptr(t), t->dtype, (int32_t)t->shape[0], (int32_t)t->shape[1], (int32_t)cc, 0};
    s = run_pipeline(L, out, &v, epoch, id);
    if (s != DAMA_OK) {
      char m[MSG];
      snprintf(m, sizeof m, "%s", dama_last_error());
      s = dama_error(s, "loader: '%s': %s", L->paths[id], m);
    }
  }
  dama_tensor_release(t);
  return s;
}

/* A sample with skip_bad: an unreadable file is replaced by the next readable one in dataset order. */
static dama_status load_sample(dama_loader *L, wscratch *ws, float *out, int64_t *label, int64_t epoch, int64_t id) {
  if (!(L->cfg.source == DAMA_LOADER_FILES && L->cfg.skip_bad)) return load_one(L, ws, out, label, epoch, id);
  for (int64_t k = 0; k < L->n; k++) {
    int64_t j = (id + k) % L->n;
    if (__atomic_load_n(&L->bad[j], __ATOMIC_RELAXED)) continue;
    dama_status s = load_one(L, ws, out, label, epoch, j);
    if (s == DAMA_OK) return DAMA_OK;
    if (s == DAMA_ERR_OOM || s == DAMA_ERR_INTERRUPTED) return s;
    if (__atomic_exchange_n(&L->bad[j], 1, __ATOMIC_RELAXED) == 0) __atomic_fetch_add(&L->n_bad, 1, __ATOMIC_RELAXED);
  }
  return dama_error(DAMA_ERR_IO, "loader: every one of the %lld files is unreadable", (long long)L->n);
}

/* Claim and process one chunk of the oldest unfinished slot. Called with mu held; returns 1 if it did
 * work (mu is released while working and held again on return), 0 if there is nothing to claim. */
static int work_once(dama_loader *L, wscratch *ws) {
  if (L->paused || L->stop) return 0;
  for (;;) {
    slot *s = NULL;
    for (int64_t k = L->head; k < L->tail; k++) {
      slot *q = &L->slots[k % L->nslots];
      if (q->claimed < q->count) { s = q; break; }
    }
    if (!s) {
      if (L->tail - L->head < L->nslots) { plan_slot(L); continue; }
      return 0;
    }
    int64_t j0 = s->claimed, j1 = j0 + CHUNK < s->count ? j0 + CHUNK : s->count;
    s->claimed = j1;
    L->active++;
    int64_t epoch = s->epoch;
    pthread_mutex_unlock(&L->mu);
    dama_status st = DAMA_OK;
    int64_t bad_j = -1;
    char msg[MSG];
    msg[0] = 0;
    for (int64_t j = j0; j < j1; j++) {
      st = load_sample(L, ws, s->images + j * L->sample_floats, &s->labels[j], epoch, s->idx[j]);
      if (st != DAMA_OK) { bad_j = j; snprintf(msg, sizeof msg, "%s", dama_last_error()); break; }
    }
    pthread_mutex_lock(&L->mu);
    L->active--;
    s->done += j1 - j0;
    L->samples_done += j1 - j0;
    if (st != DAMA_OK && (s->status == DAMA_OK || bad_j < s->err_sample)) {
      s->status = st; s->err_sample = bad_j;
      memcpy(s->msg, msg, MSG);
    }
    if (s->done == s->count || L->active == 0) pthread_cond_broadcast(&L->cv_done);
    return 1;
  }
}

static void *worker_main(void *arg) {
  dama_loader *L = arg;
  wscratch ws = {NULL, 0};
  pthread_mutex_lock(&L->mu);
  while (!L->stop) {
    if (!work_once(L, &ws)) pthread_cond_wait(&L->cv_work, &L->mu);
  }
  pthread_mutex_unlock(&L->mu);
  free(ws.synth);
  dama_aug_thread_cleanup();
  dama_synth_thread_cleanup();
  return NULL;
}

/* ---- create / destroy ---- */
static void loader_free(dama_loader *L) {
  if (!L) return;
  if (L->paths) for (int64_t i = 0; i < L->n; i++) free(L->paths[i]);
  free(L->paths);
  free(L->labels);
  free(L->channels);
  free(L->perm);
  free(L->bad);
  if (L->slots) for (int i = 0; i < L->nslots; i++) { free(L->slots[i].idx); free(L->slots[i].labels); free(L->slots[i].images); }
  free(L->slots);
  if (L->cfg.array) dama_tensor_release(L->cfg.array);
  free(L->threads);
  free(L);
}

dama_status dama_loader_create(const dama_loader_config *cfg, dama_loader **out) {
  DAMA_CHECK(cfg && out, DAMA_ERR_ARG, "loader_create: cfg and out: expected non-NULL");
  *out = NULL;
  const char *op = "loader_create";
  DAMA_CHECK(cfg->source >= 0 && cfg->source <= 2, DAMA_ERR_ARG, "%s: source: expected 0 (files), 1 (array) or 2 (synth), got %d", op, cfg->source);
  DAMA_CHECK(cfg->pipeline >= 0 && cfg->pipeline <= 4, DAMA_ERR_ARG, "%s: pipeline: expected 0..4 (none, train, val, resize, rrc), got %d", op, cfg->pipeline);
  DAMA_CHECK(cfg->batch_size > 0, DAMA_ERR_ARG, "%s: batch_size: expected > 0, got %lld", op, (long long)cfg->batch_size);
  DAMA_CHECK(cfg->workers >= 0 && cfg->workers <= 256, DAMA_ERR_ARG, "%s: workers: expected 0..256, got %d", op, cfg->workers);
  DAMA_CHECK(cfg->prefetch >= 0 && cfg->prefetch <= 64, DAMA_ERR_ARG, "%s: prefetch: expected 0..64, got %d", op, cfg->prefetch);
  DAMA_CHECK(cfg->out_size >= 0 && cfg->out_size <= 8192, DAMA_ERR_ARG, "%s: out_size: expected 0..8192, got %d", op, cfg->out_size);
  DAMA_CHECK(cfg->resize_mode >= 0 && cfg->resize_mode <= 2, DAMA_ERR_ARG, "%s: resize_mode: expected 0..2, got %d", op, cfg->resize_mode);
  dama_loader *L = calloc(1, sizeof *L);
  DAMA_CHECK(L, DAMA_ERR_OOM, "%s: out of memory", op);
  L->cfg = *cfg;
  L->cfg.paths = NULL; L->cfg.labels = NULL; L->cfg.channels = NULL; L->cfg.array = NULL;
  if (!L->cfg.out_size) L->cfg.out_size = 128;
  if (!L->cfg.synth_size) L->cfg.synth_size = 100;
  if (!L->cfg.prefetch) L->cfg.prefetch = 2;
  if (L->cfg.rrc_scale_lo == 0 && L->cfg.rrc_scale_hi == 0) { L->cfg.rrc_scale_lo = 0.08; L->cfg.rrc_scale_hi = 1.0; }
  if (L->cfg.rrc_ratio_lo == 0 && L->cfg.rrc_ratio_hi == 0) { L->cfg.rrc_ratio_lo = 0.75; L->cfg.rrc_ratio_hi = 4.0 / 3; }
  dama_status s = DAMA_OK;
#define FAIL(...) do { s = dama_error(__VA_ARGS__); goto fail; } while (0)
  if (cfg->source == DAMA_LOADER_FILES) {
    if (cfg->n <= 0 || !cfg->paths) FAIL(DAMA_ERR_ARG, "%s: files: expected n > 0 paths, got n = %lld%s", op, (long long)cfg->n, cfg->paths ? "" : " and paths = NULL");
    L->n = cfg->n;
    L->paths = calloc((size_t)L->n, sizeof(char *));
    L->bad = calloc((size_t)L->n, 1);
    if (!L->paths || !L->bad) FAIL(DAMA_ERR_OOM, "%s: out of memory for %lld paths", op, (long long)L->n);
    for (int64_t i = 0; i < L->n; i++) {
      if (!cfg->paths[i]) FAIL(DAMA_ERR_ARG, "%s: paths[%lld]: expected a path, got NULL", op, (long long)i);
      size_t len = strlen(cfg->paths[i]);
      L->paths[i] = malloc(len + 1);
      if (!L->paths[i]) FAIL(DAMA_ERR_OOM, "%s: out of memory for paths", op);
      memcpy(L->paths[i], cfg->paths[i], len + 1);
    }
    if (cfg->expect_channels > 0) L->src_c = cfg->expect_channels;
    else {
      dama_image_info info;
      int64_t k = 0;
      for (; k < L->n; k++) if (dama_image_info_read(L->paths[k], &info) == DAMA_OK) break;
      if (k == L->n) FAIL(DAMA_ERR_IO, "%s: no readable file to take the channel count from (first: '%s'); set expect_channels", op, L->paths[0]);
      L->src_c = (int32_t)info.channels;
    }
  } else if (cfg->source == DAMA_LOADER_ARRAY) {
    const dama_tensor *a = cfg->array;
    if (!a) FAIL(DAMA_ERR_ARG, "%s: array: expected an N x H x W x C tensor, got NULL", op);
    if (a->ndim != 3 && a->ndim != 4) FAIL(DAMA_ERR_SHAPE, "%s: array: expected N x H x W x C or N x H x W, got %d dims", op, a->ndim);
    if (a->dtype != DAMA_U8 && a->dtype != DAMA_U16 && a->dtype != DAMA_F32)
      FAIL(DAMA_ERR_DTYPE, "%s: array: expected u8, u16 or f32, got %s", op, dama_dtype_name((dama_dtype)a->dtype));
    if (!a->storage || a->storage->device.type != DAMA_CPU) FAIL(DAMA_ERR_DEVICE, "%s: array: expected a CPU tensor", op);
    int64_t c = a->ndim == 4 ? a->shape[3] : 1;
    int contig = a->ndim == 4 ? (a->strides[3] == 1 && a->strides[2] == c && a->strides[1] == c * a->shape[2])
                              : (a->strides[2] == 1 && a->strides[1] == a->shape[2]);
    if (!contig) FAIL(DAMA_ERR_ARG, "%s: array: expected each sample contiguous (H x W x C row-major); call contiguous() first", op);
    L->n = cfg->n > 0 ? cfg->n : a->shape[0];
    if (L->n > a->shape[0]) FAIL(DAMA_ERR_ARG, "%s: n = %lld: expected at most the array's %lld rows", op, (long long)L->n, (long long)a->shape[0]);
    L->arr = dama_data_ptr(a);
    L->arr_stride_bytes = a->strides[0] * dama_dtype_size((dama_dtype)a->dtype);
    L->arr_h = (int32_t)a->shape[1]; L->arr_w = (int32_t)a->shape[2]; L->arr_dtype = a->dtype;
    L->src_c = (int32_t)c;
    dama_tensor_retain(cfg->array);
    L->cfg.array = cfg->array;
  } else {
    if (cfg->n <= 0) FAIL(DAMA_ERR_ARG, "%s: synth: expected n > 0 crops per epoch, got %lld", op, (long long)cfg->n);
    L->n = cfg->n;
    L->src_c = 7;
  }
  if (L->n >= (1ll << 32)) FAIL(DAMA_ERR_ARG, "%s: n = %lld: expected fewer than 2^32 samples", op, (long long)L->n);
  if (cfg->labels && cfg->source != DAMA_LOADER_SYNTH) {
    L->labels = malloc(sizeof(int64_t) * (size_t)L->n);
    if (!L->labels) FAIL(DAMA_ERR_OOM, "%s: out of memory for labels", op);
    memcpy(L->labels, cfg->labels, sizeof(int64_t) * (size_t)L->n);
  }
  if (cfg->channels && cfg->n_channels > 0) {
    L->channels = malloc(sizeof(int32_t) * (size_t)cfg->n_channels);
    if (!L->channels) FAIL(DAMA_ERR_OOM, "%s: out of memory", op);
    for (int32_t k = 0; k < cfg->n_channels; k++) {
      if (cfg->channels[k] < 0 || cfg->channels[k] >= L->src_c)
        FAIL(DAMA_ERR_INDEX, "%s: channels[%d] = %d: expected an index in [0, %d)", op, k, cfg->channels[k], L->src_c);
      L->channels[k] = cfg->channels[k];
    }
    L->nch = cfg->n_channels;
  } else L->nch = L->src_c;
  L->bsz = cfg->batch_size;
  L->limit = cfg->drop_last ? (L->n / L->bsz) * L->bsz : L->n;
  if (L->limit == 0) FAIL(DAMA_ERR_ARG, "%s: %lld samples with batch_size %lld and drop_last: expected at least one batch", op, (long long)L->n, (long long)L->bsz);
  L->sample_floats = (int64_t)L->nch * L->cfg.out_size * L->cfg.out_size;
  L->nslots = L->cfg.prefetch;
  L->slots = calloc((size_t)L->nslots, sizeof(slot));
  L->perm = malloc(sizeof(int64_t) * (size_t)L->n);
  if (!L->slots || !L->perm) FAIL(DAMA_ERR_OOM, "%s: out of memory", op);
  for (int i = 0; i < L->nslots; i++) {
    slot *q = &L->slots[i];
    q->idx = malloc(sizeof(int64_t) * (size_t)L->bsz);
    q->labels = malloc(sizeof(int64_t) * (size_t)L->bsz);
    q->images = malloc(sizeof(float) * (size_t)(L->bsz * L->sample_floats));
    if (!q->idx || !q->labels || !q->images)
      FAIL(DAMA_ERR_OOM, "%s: out of memory for %d batch buffers of %lld x %d x %d x %d floats", op, L->nslots,
           (long long)L->bsz, L->nch, L->cfg.out_size, L->cfg.out_size);
  }
  L->perm_epoch = -1;
  pthread_mutex_init(&L->mu, NULL);
  pthread_cond_init(&L->cv_work, NULL);
  pthread_cond_init(&L->cv_done, NULL);
  if (cfg->workers > 0) {
    L->threads = calloc((size_t)cfg->workers, sizeof(pthread_t));
    if (!L->threads) FAIL(DAMA_ERR_OOM, "%s: out of memory", op);
    for (int i = 0; i < cfg->workers; i++) {
      if (pthread_create(&L->threads[i], NULL, worker_main, L) != 0) {
        dama_loader_destroy(L);
        return dama_error(DAMA_ERR_INTERNAL, "%s: could not start worker thread %d", op, i);
      }
      L->nthreads++;
    }
  }
  *out = L;
  return DAMA_OK;
fail:
  loader_free(L);
  return s;
#undef FAIL
}

void dama_loader_destroy(dama_loader *L) {
  if (!L) return;
  if (L->slots && L->perm) {
    pthread_mutex_lock(&L->mu);
    L->stop = 1;
    pthread_cond_broadcast(&L->cv_work);
    pthread_mutex_unlock(&L->mu);
    for (int i = 0; i < L->nthreads; i++) pthread_join(L->threads[i], NULL);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv_work);
    pthread_cond_destroy(&L->cv_done);
  }
  loader_free(L);
}

/* ---- consuming ---- */
static void release_borrowed(dama_loader *L) {
  if (!L->borrowed) return;
  L->slots[L->head % L->nslots].state = SLOT_FREE;
  L->head++;
  L->borrowed = 0;
  pthread_cond_broadcast(&L->cv_work);
}

/* Wait for the batch at the cursor; on success the head slot holds it (mu held throughout). */
static dama_status wait_head(dama_loader *L, slot **out) {
  if (L->tail == L->head) plan_slot(L);
  pthread_cond_broadcast(&L->cv_work);
  slot *s = &L->slots[L->head % L->nslots];
  wscratch ws = {NULL, 0};
  while (s->done < s->count) {
    if (dama_interrupt_pending()) { free(ws.synth); return dama_error(DAMA_ERR_INTERRUPTED, "loader_next: interrupted"); }
    if (L->nthreads == 0) {
      if (!work_once(L, &ws)) break; /* cannot happen: the head always has claimable work here */
      continue;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000;
    if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
    pthread_cond_timedwait(&L->cv_done, &L->mu, &ts);
  }
  free(ws.synth);
  if (s->status != DAMA_OK)
    return dama_error(s->status, "loader_next: epoch %lld, sample %lld: %s", (long long)s->epoch,
                      (long long)(s->start + s->err_sample), s->msg);
  *out = s;
  return DAMA_OK;
}

static dama_status next_common(dama_loader *L, slot **got, int64_t *n) {
  *got = NULL;
  *n = 0;
  release_borrowed(L);
  if (L->cur_i >= L->limit) { /* end of the epoch */
    L->cur_e++;
    L->cur_i = 0;
    return DAMA_OK;
  }
  DAMA_TRY(wait_head(L, got));
  *n = (*got)->count;
  L->cur_e = (*got)->epoch;
  L->cur_i = (*got)->start + (*got)->count;
  return DAMA_OK;
}

dama_status dama_loader_next(dama_loader *L, float *images, int64_t *labels, int64_t *n) {
  DAMA_CHECK(L && n, DAMA_ERR_ARG, "loader_next: loader and n: expected non-NULL");
  pthread_mutex_lock(&L->mu);
  slot *s;
  dama_status st = next_common(L, &s, n);
  if (st == DAMA_OK && s) {
    if (images) memcpy(images, s->images, sizeof(float) * (size_t)(s->count * L->sample_floats));
    if (labels) memcpy(labels, s->labels, sizeof(int64_t) * (size_t)s->count);
    s->state = SLOT_FREE;
    L->head++;
    pthread_cond_broadcast(&L->cv_work);
  }
  pthread_mutex_unlock(&L->mu);
  return st;
}

dama_status dama_loader_next_borrow(dama_loader *L, const float **images, const int64_t **labels, int64_t *n) {
  DAMA_CHECK(L && n, DAMA_ERR_ARG, "loader_next_borrow: loader and n: expected non-NULL");
  pthread_mutex_lock(&L->mu);
  slot *s;
  dama_status st = next_common(L, &s, n);
  if (images) *images = st == DAMA_OK && s ? s->images : NULL;
  if (labels) *labels = st == DAMA_OK && s ? s->labels : NULL;
  if (st == DAMA_OK && s) L->borrowed = 1;
  pthread_mutex_unlock(&L->mu);
  return st;
}

dama_status dama_loader_set_cursor(dama_loader *L, int64_t epoch, int64_t index) {
  DAMA_CHECK(L, DAMA_ERR_ARG, "loader_set_cursor: loader: expected non-NULL");
  DAMA_CHECK(epoch >= 0 && index >= 0 && index <= L->limit, DAMA_ERR_ARG,
             "loader_set_cursor: (epoch %lld, index %lld): expected epoch >= 0 and 0 <= index <= %lld",
             (long long)epoch, (long long)index, (long long)L->limit);
  pthread_mutex_lock(&L->mu);
  L->paused = 1;
  while (L->active > 0) pthread_cond_wait(&L->cv_done, &L->mu);
  for (int i = 0; i < L->nslots; i++) L->slots[i].state = SLOT_FREE;
  L->head = L->tail = 0;
  L->borrowed = 0;
  L->cur_e = L->plan_e = epoch;
  L->cur_i = L->plan_i = index;
  L->paused = 0;
  pthread_cond_broadcast(&L->cv_work);
  pthread_mutex_unlock(&L->mu);
  return DAMA_OK;
}

void dama_loader_get_cursor(const dama_loader *Lc, int64_t *epoch, int64_t *index) {
  dama_loader *L = (dama_loader *)Lc;
  if (!L) { if (epoch) *epoch = 0; if (index) *index = 0; return; }
  pthread_mutex_lock(&L->mu);
  if (epoch) *epoch = L->cur_e;
  if (index) *index = L->cur_i;
  pthread_mutex_unlock(&L->mu);
}

int64_t dama_loader_batches_per_epoch(const dama_loader *L) { return L ? (L->limit + L->bsz - 1) / L->bsz : 0; }
int64_t dama_loader_num_samples(const dama_loader *L) { return L ? L->n : 0; }

void dama_loader_sample_shape(const dama_loader *L, int32_t *c, int32_t *h, int32_t *w) {
  if (c) *c = L ? L->nch : 0;
  if (h) *h = L ? L->cfg.out_size : 0;
  if (w) *w = L ? L->cfg.out_size : 0;
}

void dama_loader_stats(const dama_loader *L, int64_t *skipped, int64_t *samples) {
  dama_loader *M = (dama_loader *)L;
  if (!M) { if (skipped) *skipped = 0; if (samples) *samples = 0; return; }
  pthread_mutex_lock(&M->mu);
  if (skipped) *skipped = __atomic_load_n(&M->n_bad, __ATOMIC_RELAXED);
  if (samples) *samples = M->samples_done;
  pthread_mutex_unlock(&M->mu);
}
