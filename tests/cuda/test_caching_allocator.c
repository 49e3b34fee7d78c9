/* The CUDA caching allocator's bookkeeping (cuda/caching_allocator.c) on the CPU, over a fake device allocator
 * that hands out addresses it never backs with memory (the allocator must only compare and add them) and runs out
 * at a chosen capacity: rounding, size classes, reuse, splitting and merging, streams, stats, empty_cache, the
 * out-of-memory retry, and long random alloc/free sequences checked against a simple model after every step. */
#include "dama_test.h"
#include "caching_allocator.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MiB ((int64_t)1 << 20)

/* ---- the fake device ---- */

typedef struct { uintptr_t ptr; int64_t size; } segment;
typedef struct fake_device {
  pthread_mutex_t mu;
  int64_t capacity, in_use;
  uintptr_t next_addr;
  segment live[4096];
  int nlive;
  int64_t allocs, frees, failed;
  int bad_free;   /* a free of something it never handed out, or with another size */
} fake_device;

static void fake_init(fake_device *d, int64_t capacity) {
  memset(d, 0, sizeof *d);
  pthread_mutex_init(&d->mu, NULL);
  d->capacity = capacity;
  d->next_addr = (uintptr_t)1 << 40;
}

static void *fake_alloc(void *ctx, int64_t n) {
  fake_device *d = ctx;
  pthread_mutex_lock(&d->mu);
  void *p = NULL;
  if (d->in_use + n <= d->capacity && d->nlive < 4096) {
    p = (void *)d->next_addr;
    d->live[d->nlive++] = (segment){d->next_addr, n};
    d->next_addr += (uintptr_t)n + 4096;   /* a gap, so neighbouring segments never look contiguous */
    d->in_use += n;
    d->allocs++;
  } else {
    d->failed++;
  }
  pthread_mutex_unlock(&d->mu);
  return p;
}

static void fake_free(void *ctx, void *p, int64_t n) {
  fake_device *d = ctx;
  pthread_mutex_lock(&d->mu);
  int i = 0;
  while (i < d->nlive && d->live[i].ptr != (uintptr_t)p) i++;
  if (i == d->nlive || d->live[i].size != n) d->bad_free = 1;
  else {
    d->live[i] = d->live[--d->nlive];
    d->in_use -= n;
    d->frees++;
  }
  pthread_mutex_unlock(&d->mu);
}

static dama_ca *new_ca(fake_device *d, int64_t capacity) {
  fake_init(d, capacity);
  return dama_ca_create((dama_ca_raw){d, fake_alloc, fake_free});
}

#define CHECK_CONSISTENT(ca) do { char why_[512]; \
    CHECK_MSG(dama_ca_check((ca), why_, sizeof why_) == 0, "inconsistent: %s", why_); } while (0)

static dama_ca_stats stats(dama_ca *ca) { dama_ca_stats s; dama_ca_get_stats(ca, &s); return s; }

/* ---- the rules ---- */

DAMA_TEST(rounding_and_segment_sizes_follow_pytorch) {
  CHECK(dama_ca_round_size(0) == 512);
  CHECK(dama_ca_round_size(1) == 512);
  CHECK(dama_ca_round_size(512) == 512);
  CHECK(dama_ca_round_size(513) == 1024);
  CHECK(dama_ca_round_size(MiB) == MiB);
  CHECK(dama_ca_round_size(MiB + 1) == MiB + 512);
  CHECK(dama_ca_segment_size(512) == 2 * MiB);            /* small pool: 2 MiB segments */
  CHECK(dama_ca_segment_size(MiB) == 2 * MiB);
  CHECK(dama_ca_segment_size(MiB + 512) == 20 * MiB);     /* large, under 10 MiB: 20 MiB segments */
  CHECK(dama_ca_segment_size(10 * MiB - 512) == 20 * MiB);
  CHECK(dama_ca_segment_size(10 * MiB) == 10 * MiB);      /* else rounded up to 2 MiB */
  CHECK(dama_ca_segment_size(10 * MiB + 512) == 12 * MiB);
  CHECK(dama_ca_segment_size(4096 * MiB + 512) == 4098 * MiB);
}

DAMA_TEST(size_classes_are_exact_then_eight_per_power_of_two_and_monotonic) {
  for (int64_t u = 1; u < 64; u++) CHECK(dama_ca_size_class(u * 512) == (int)u);
  CHECK(dama_ca_size_class(64 * 512) == 64);
  CHECK(dama_ca_size_class(72 * 512) == 65);
  CHECK(dama_ca_size_class(128 * 512) == 72);
  int prev = 0;
  for (int64_t s = 512; s < ((int64_t)1 << 40); s += s / 7 / 512 * 512 + 512) {
    int c = dama_ca_size_class(s);
    CHECK_MSG(c >= prev && c < 448, "class %d after %d at %lld", c, prev, (long long)s);
    prev = c;
  }
  CHECK(dama_ca_size_class(INT64_MAX / 512 * 512) < 448);
}

/* ---- behaviour ---- */

DAMA_TEST(a_freed_block_is_reused_without_asking_the_device) {
  fake_device d;
  dama_ca *ca = new_ca(&d, 1024 * MiB);
  void *p = dama_ca_malloc(ca, 1000, 0);
  CHECK(p != NULL);
  CHECK(dama_ca_block_size(ca, p) == 1024);
  CHECK(d.allocs == 1 && d.live[0].size == 2 * MiB);
  CHECK(dama_ca_free(ca, p) == 0);
  void *q = dama_ca_malloc(ca, 1000, 0);
  CHECK(q == p);
  dama_ca_stats s = stats(ca);
  CHECK(s.raw_allocs == 1 && s.cache_hits == 1 && d.allocs == 1);
  CHECK(s.allocated == 1024 && s.requested == 1000 && s.reserved == 2 * MiB && s.cached == 2 * MiB - 1024);
  CHECK_CONSISTENT(ca);
  dama_ca_free(ca, q);
  dama_ca_destroy(ca);
  CHECK(d.nlive == 0 && !d.bad_free);
}

DAMA_TEST(small_blocks_are_carved_from_one_segment_and_merge_back) {
  fake_device d;
  dama_ca *ca = new_ca(&d, 1024 * MiB);
  char *p[4];
  for (int i = 0; i < 4; i++) p[i] = dama_ca_malloc(ca, 512, 0);
  for (int i = 1; i < 4; i++) CHECK(p[i] == p[0] + 512 * i);
  CHECK(d.allocs == 1);
  CHECK_CONSISTENT(ca);
  /* free the middle two: they merge into one 1024-byte hole that a 1024-byte request fills exactly */
  dama_ca_free(ca, p[1]);
  dama_ca_free(ca, p[2]);
  CHECK_CONSISTENT(ca);
  char *q = dama_ca_malloc(ca, 1024, 0);
  CHECK(q == p[1]);
  /* a zero-byte request still gets a (512-byte) block, and a requested size of 0 */
  void *z = dama_ca_malloc(ca, 0, 0);
  CHECK(z != NULL && dama_ca_block_size(ca, z) == 512);
  dama_ca_stats s = stats(ca);
  CHECK(s.requested == 512 * 2 + 1024 && s.allocated == 512 * 4 + 512);
  dama_ca_free(ca, z);
  dama_ca_free(ca, q);
  dama_ca_free(ca, p[0]);
  dama_ca_free(ca, p[3]);
  CHECK_CONSISTENT(ca);
  s = stats(ca);
  CHECK(s.allocated == 0 && s.requested == 0 && s.active_blocks == 0 && s.cached == 2 * MiB);
  CHECK(dama_ca_empty_cache(ca) == 2 * MiB);
  s = stats(ca);
  CHECK(s.reserved == 0 && s.segments == 0 && s.raw_frees == 1 && d.nlive == 0);
  CHECK_CONSISTENT(ca);
  dama_ca_destroy(ca);
  CHECK(!d.bad_free);
}

DAMA_TEST(best_fit_takes_the_smallest_block_that_fits) {
  fake_device d;
  dama_ca *ca = new_ca(&d, 1024 * MiB);
  /* holes of 4 KiB, 1 KiB and 2 KiB between live 512-byte fences in one segment */
  int64_t sizes[7] = {4096, 512, 1024, 512, 2048, 512, 512};
  char *p[7];
  for (int i = 0; i < 7; i++) p[i] = dama_ca_malloc(ca, sizes[i], 0);
  dama_ca_free(ca, p[0]);
  dama_ca_free(ca, p[2]);
  dama_ca_free(ca, p[4]);
  CHECK(dama_ca_malloc(ca, 1500, 0) == p[4]);   /* 2 KiB hole, not the 4 KiB one */
  CHECK(dama_ca_malloc(ca, 700, 0) == p[2]);    /* 1 KiB */
  char *r = dama_ca_malloc(ca, 1024, 0);        /* only the 4 KiB hole is left: split, first half */
  CHECK(r == p[0]);
  CHECK(dama_ca_malloc(ca, 3072, 0) == p[0] + 1024);
  CHECK(d.allocs == 1);
  CHECK_CONSISTENT(ca);
  /* within one ranged class (32 KiB to 36 KiB - 512): holes of 35.5 KiB and 32.5 KiB; 32.2 KiB takes the smaller */
  int64_t sizes2[4] = {36352, 4096, 33280, 4096};   /* the 4 KiB fences come from the segment's tail */
  char *h[4];
  for (int i = 0; i < 4; i++) h[i] = dama_ca_malloc(ca, sizes2[i], 0);
  CHECK(dama_ca_size_class(36352) == dama_ca_size_class(33280));
  dama_ca_free(ca, h[0]);
  dama_ca_free(ca, h[2]);
  CHECK(dama_ca_malloc(ca, 33000, 0) == h[2]);
  CHECK(dama_ca_malloc(ca, 33000, 0) == h[0]);
  CHECK_CONSISTENT(ca);
  dama_ca_destroy(ca);
  CHECK(d.nlive == 0 && !d.bad_free);
}

DAMA_TEST(large_pool_splits_only_when_more_than_1_MiB_is_left) {
  fake_device d;
  dama_ca *ca = new_ca(&d, 1024 * MiB);
  char *a = dama_ca_malloc(ca, 3 * MiB, 0);   /* a 20 MiB segment, split */
  char *b = dama_ca_malloc(ca, 3 * MiB, 0);   /* from its remainder */
  CHECK(b == a + 3 * MiB && d.allocs == 1 && d.live[0].size == 20 * MiB);
  char *c = dama_ca_malloc(ca, 12 * MiB, 0);   /* 14 MiB free there: split, 2 MiB left */
  CHECK(c == b + 3 * MiB);
  CHECK(dama_ca_block_size(ca, c) == 12 * MiB);
  /* a 19.5 MiB request gets its own 20 MiB segment; 0.5 MiB would be left, so it is not split */
  char *big = dama_ca_malloc(ca, 19 * MiB + 512 * 1024, 0);
  CHECK(big != NULL && d.allocs == 2);
  CHECK(dama_ca_block_size(ca, big) == 20 * MiB);
  dama_ca_stats s = stats(ca);
  CHECK(s.requested == 3 * MiB * 2 + 12 * MiB + 19 * MiB + 512 * 1024);
  CHECK(s.allocated == 3 * MiB * 2 + 12 * MiB + 20 * MiB);
  /* a small request never comes from the large pool's free remainder */
  void *small = dama_ca_malloc(ca, 4096, 0);
  CHECK(d.allocs == 3 && d.live[2].size == 2 * MiB);
  CHECK_CONSISTENT(ca);
  dama_ca_free(ca, small);
  dama_ca_free(ca, big);
  dama_ca_free(ca, a);
  CHECK(dama_ca_empty_cache(ca) == 20 * MiB + 2 * MiB);   /* the first segment still holds b and c */
  dama_ca_free(ca, b);
  dama_ca_free(ca, c);
  CHECK(dama_ca_empty_cache(ca) == 20 * MiB);
  CHECK(d.nlive == 0 && !d.bad_free);
  s = stats(ca);
  CHECK(s.peak_reserved == 42 * MiB && s.reserved == 0 && s.raw_allocs == 3 && s.raw_frees == 3);
  CHECK_CONSISTENT(ca);
  dama_ca_destroy(ca);
}

DAMA_TEST(free_lists_are_per_stream) {
  fake_device d;
  dama_ca *ca = new_ca(&d, 1024 * MiB);
  void *p = dama_ca_malloc(ca, 4096, 1);
  dama_ca_free(ca, p);
  void *q = dama_ca_malloc(ca, 4096, 2);   /* stream 2 does not take stream 1's cached block */
  CHECK(q != p && d.allocs == 2);
  void *r = dama_ca_malloc(ca, 4096, 1);   /* stream 1 does */
  CHECK(r == p && d.allocs == 2);
  CHECK_CONSISTENT(ca);
  dama_ca_destroy(ca);
  CHECK(d.nlive == 0 && !d.bad_free);
}

/* a CUDA graph's private pool is a stream key of its own: released alone when the graph goes */
DAMA_TEST(release_stream_gives_back_only_that_keys_free_segments) {
  fake_device d;
  dama_ca *ca = new_ca(&d, 1024 * MiB);
  void *a = dama_ca_malloc(ca, 4096, 7), *b = dama_ca_malloc(ca, 12 * MiB, 7), *c = dama_ca_malloc(ca, 4096, 8);
  void *live = dama_ca_malloc(ca, 3 * MiB, 7);   /* still handed out: its segment stays */
  CHECK(a && b && c && live && d.allocs == 4);
  dama_ca_free(ca, a); dama_ca_free(ca, b); dama_ca_free(ca, c);
  const int64_t released = dama_ca_release_stream(ca, 7);
  CHECK_MSG(released == DAMA_CA_SMALL_SEGMENT + 12 * MiB, "released %lld", (long long)released);
  CHECK(d.frees == 2 && stats(ca).segments == 2);
  CHECK(dama_ca_malloc(ca, 4096, 8) == c);        /* key 8's cached block is untouched */
  CHECK_CONSISTENT(ca);
  dama_ca_free(ca, live);
  CHECK(dama_ca_release_stream(ca, 7) == 20 * MiB);
  CHECK_CONSISTENT(ca);
  dama_ca_destroy(ca);
  CHECK(d.nlive == 0 && !d.bad_free);
}

DAMA_TEST(unknown_and_double_frees_are_refused_and_change_nothing) {
  fake_device d;
  dama_ca *ca = new_ca(&d, 1024 * MiB);
  char *p = dama_ca_malloc(ca, 4096, 0);
  dama_ca_stats before = stats(ca);
  CHECK(dama_ca_free(ca, p + 512) == -1);
  CHECK(dama_ca_free(ca, (void *)(uintptr_t)12345) == -1);
  CHECK(dama_ca_free(ca, NULL) == -1);
  dama_ca_stats after = stats(ca);
  CHECK(memcmp(&before, &after, sizeof before) == 0);
  CHECK(dama_ca_free(ca, p) == 0);
  CHECK(dama_ca_free(ca, p) == -1);
  CHECK(dama_ca_malloc(ca, -1, 0) == NULL);
  CHECK_CONSISTENT(ca);
  dama_ca_destroy(ca);
}

DAMA_TEST(out_of_memory_empties_the_cache_retries_once_then_fails) {
  fake_device d;
  dama_ca *ca = new_ca(&d, 22 * MiB);
  void *a = dama_ca_malloc(ca, 3 * MiB, 0);   /* 20 MiB segment */
  void *b = dama_ca_malloc(ca, 512, 0);       /* 2 MiB segment: the device is full */
  CHECK(a && b && d.in_use == 22 * MiB);
  dama_ca_free(ca, a);
  dama_ca_free(ca, b);
  /* 21 MiB: the cached 20 MiB block is too small and its 22 MiB segment does not fit on the full device until the
   * cache is emptied */
  void *c = dama_ca_malloc(ca, 21 * MiB, 0);
  CHECK(c != NULL);
  dama_ca_stats s = stats(ca);
  CHECK(s.oom_retries == 1 && s.ooms == 0 && s.raw_frees == 2 && s.reserved == 22 * MiB && d.failed == 1);
  CHECK(dama_ca_block_size(ca, c) == 22 * MiB);   /* 1 MiB would be left: not split */
  CHECK_CONSISTENT(ca);
  /* more than the device holds: empty, retry, fail; the live block stays */
  CHECK(dama_ca_malloc(ca, 30 * MiB, 0) == NULL);
  s = stats(ca);
  CHECK(s.oom_retries == 2 && s.ooms == 1 && d.failed == 3 && s.allocated == 22 * MiB && s.active_blocks == 1);
  CHECK_CONSISTENT(ca);
  dama_ca_free(ca, c);
  dama_ca_destroy(ca);
  CHECK(d.nlive == 0 && !d.bad_free);
}

/* ---- random sequences against a model ---- */

typedef struct { uintptr_t ptr; int64_t requested, size; uintptr_t stream; } live_block;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {   /* xorshift64* */
  rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ull;
}

static int64_t random_size(void) {
  switch (rnd() % 8) {
    case 0: return 0;
    case 1: case 2: case 3: return (int64_t)(rnd() % 4096);                   /* tiny */
    case 4: case 5: return (int64_t)(rnd() % (uint64_t)MiB) + 1;              /* small pool */
    case 6: return MiB + (int64_t)(rnd() % (uint64_t)(9 * MiB));              /* large, shared segments */
    default: return 10 * MiB + (int64_t)(rnd() % (uint64_t)(30 * MiB));       /* large, own segments */
  }
}

DAMA_TEST(random_sequences_match_a_model) {
  enum { STEPS = 20000, MAXLIVE = 600 };
  static live_block live[MAXLIVE];
  for (int round = 0; round < 3; round++) {
    fake_device d;
    dama_ca *ca = new_ca(&d, (int64_t)(96 + 160 * round) * MiB);
    int nlive = 0;
    int64_t nulls = 0, hits_before = 0;
    for (int step = 0; step < STEPS; step++) {
      uint64_t r = rnd() % 100;
      if (r < 55 && nlive < MAXLIVE) {
        int64_t n = random_size();
        uintptr_t stream = (uintptr_t)(rnd() % 3);
        int64_t rounded = dama_ca_round_size(n);
        char *p = dama_ca_malloc(ca, n, stream);
        if (!p) {
          /* only when the device, its cache emptied, really had no room for the segment */
          nulls++;
          CHECK_MSG(d.capacity - d.in_use < dama_ca_segment_size(rounded), "NULL for %lld bytes with %lld free",
                    (long long)n, (long long)(d.capacity - d.in_use));
          continue;
        }
        int64_t size = dama_ca_block_size(ca, p);
        if (rounded <= DAMA_CA_SMALL_SIZE) CHECK(size == rounded);
        else CHECK_MSG(size >= rounded && size - rounded <= DAMA_CA_SMALL_SIZE, "block %lld for %lld",
                       (long long)size, (long long)rounded);
        /* inside one of the device's segments, overlapping no live block */
        int inside = 0;
        for (int i = 0; i < d.nlive; i++)
          if ((uintptr_t)p >= d.live[i].ptr && (uintptr_t)p + (uintptr_t)size <= d.live[i].ptr + (uintptr_t)d.live[i].size)
            inside = 1;
        CHECK_MSG(inside, "block %p outside every segment", (void *)p);
        for (int i = 0; i < nlive; i++)
          CHECK_MSG((uintptr_t)p + (uintptr_t)size <= live[i].ptr || live[i].ptr + (uintptr_t)live[i].size <= (uintptr_t)p,
                    "block %p overlaps a live block", (void *)p);
        live[nlive++] = (live_block){(uintptr_t)p, n, size, stream};
      } else if (r < 97 && nlive > 0) {
        int i = (int)(rnd() % (uint64_t)nlive);
        CHECK(dama_ca_free(ca, (void *)live[i].ptr) == 0);
        live[i] = live[--nlive];
      } else if (r < 99) {
        dama_ca_empty_cache(ca);
        CHECK(stats(ca).cached >= 0);
      } else if (nlive > 0 && live[0].size > 512) {
        CHECK(dama_ca_free(ca, (void *)(live[0].ptr + 512)) == -1);   /* inside a block: not one */
      }
      /* the stats equal the model's sums; the segments equal the device's */
      dama_ca_stats s = stats(ca);
      int64_t alloc = 0, req = 0;
      for (int i = 0; i < nlive; i++) { alloc += live[i].size; req += live[i].requested; }
      CHECK_MSG(s.allocated == alloc && s.requested == req && s.active_blocks == nlive,
                "step %d: stats %lld/%lld/%lld, model %lld/%lld/%d", step, (long long)s.allocated,
                (long long)s.requested, (long long)s.active_blocks, (long long)alloc, (long long)req, nlive);
      CHECK(s.reserved == d.in_use && s.segments == d.nlive && s.raw_allocs == d.allocs && s.raw_frees == d.frees);
      CHECK(s.cached == s.reserved - s.allocated && s.peak_allocated >= s.allocated && s.peak_reserved <= d.capacity);
      if (step % 7 == 0 || step == STEPS - 1) CHECK_CONSISTENT(ca);
      CHECK(!d.bad_free);
    }
    dama_ca_stats s = stats(ca);
    CHECK_MSG(s.cache_hits > hits_before && s.oom_retries > 0 && nulls == s.ooms,
              "round %d: hits %lld, retries %lld, ooms %lld, nulls %lld", round, (long long)s.cache_hits,
              (long long)s.oom_retries, (long long)s.ooms, (long long)nulls);
    while (nlive > 0) CHECK(dama_ca_free(ca, (void *)live[--nlive].ptr) == 0);
    dama_ca_empty_cache(ca);
    s = stats(ca);
    CHECK(s.reserved == 0 && s.allocated == 0 && s.cached == 0 && d.nlive == 0 && d.in_use == 0);
    CHECK(s.raw_allocs == s.raw_frees && !d.bad_free);
    CHECK_CONSISTENT(ca);
    dama_ca_destroy(ca);
  }
}

/* ---- threads ---- */

typedef struct { dama_ca *ca; uintptr_t stream; int failed; } worker_arg;

static void *worker(void *argp) {
  worker_arg *a = argp;
  void *held[64] = {0};
  uint64_t x = 0x1234567ull + a->stream;
  for (int i = 0; i < 20000; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    int slot = (int)((x >> 33) % 64);
    if (held[slot]) { if (dama_ca_free(a->ca, held[slot]) != 0) a->failed = 1; held[slot] = NULL; }
    else held[slot] = dama_ca_malloc(a->ca, (int64_t)((x >> 40) % 300000), a->stream);
  }
  for (int s = 0; s < 64; s++)
    if (held[s] && dama_ca_free(a->ca, held[s]) != 0) a->failed = 1;
  return NULL;
}

DAMA_TEST(threads_share_one_allocator) {
  fake_device d;
  dama_ca *ca = new_ca(&d, 4096 * MiB);
  pthread_t th[4];
  worker_arg args[4];
  for (int i = 0; i < 4; i++) {
    args[i] = (worker_arg){ca, (uintptr_t)(i % 2), 0};
    CHECK(pthread_create(&th[i], NULL, worker, &args[i]) == 0);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) CHECK(!args[i].failed);
  dama_ca_stats s = stats(ca);
  CHECK(s.allocated == 0 && s.active_blocks == 0);
  CHECK_CONSISTENT(ca);
  dama_ca_empty_cache(ca);
  CHECK(d.nlive == 0 && !d.bad_free);
  dama_ca_destroy(ca);
}
