/* The caching allocator's bookkeeping (the rules are in caching_allocator.h). Device addresses are only compared
 * and added to here, never dereferenced, so a fake device allocator in a CPU test exercises all of it. */
#include "caching_allocator.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXACT_CLASSES 64   /* one class per 512-byte size below 64 * 512 = 32 KiB */
#define NUM_CLASSES 448    /* then 8 per power of two, up to sizes of 2^63 */
#define BITMAP_WORDS ((NUM_CLASSES + 63) / 64)

typedef struct ca_block {
  uintptr_t ptr;
  int64_t size;
  int64_t requested;                /* bytes asked for, while handed out */
  int64_t segment_size;             /* the whole segment's size, in a segment's first block */
  uintptr_t stream;
  int large;                        /* which pool */
  int allocated;
  int size_class;                   /* while in a free list */
  struct ca_block *prev, *next;     /* address-order neighbours within the segment */
  struct ca_block *fprev, *fnext;   /* the free list of its class */
  struct ca_block *hnext;           /* the hash chain of handed-out blocks */
  struct ca_block *sprev, *snext;   /* the list of segments (first blocks only) */
} ca_block;

typedef struct ca_free_lists {
  ca_block *head[NUM_CLASSES];
  uint64_t nonempty[BITMAP_WORDS];
} ca_free_lists;

typedef struct ca_stream {
  uintptr_t stream;
  ca_free_lists pool[2];            /* 0: small, 1: large */
} ca_stream;

struct dama_ca {
  pthread_mutex_t mu;
  dama_ca_raw raw;
  ca_stream *streams;
  int nstreams, cap_streams;
  ca_block **buckets;               /* handed-out blocks by address */
  size_t nbuckets, nhashed;
  ca_block *segments;               /* first blocks of all segments */
  ca_block *spare;                  /* block records to reuse */
  dama_ca_stats st;
};

/* ---- the rules ---- */

int64_t dama_ca_round_size(int64_t nbytes) {
  if (nbytes < DAMA_CA_MIN_BLOCK) return DAMA_CA_MIN_BLOCK;
  return (nbytes + DAMA_CA_MIN_BLOCK - 1) / DAMA_CA_MIN_BLOCK * DAMA_CA_MIN_BLOCK;
}

int64_t dama_ca_segment_size(int64_t rounded) {
  if (rounded <= DAMA_CA_SMALL_SIZE) return DAMA_CA_SMALL_SEGMENT;
  if (rounded < DAMA_CA_MIN_LARGE_ALLOC) return DAMA_CA_LARGE_SEGMENT;
  return (rounded + DAMA_CA_ROUND_LARGE - 1) / DAMA_CA_ROUND_LARGE * DAMA_CA_ROUND_LARGE;
}

static int floor_log2(uint64_t u) {
  int r = 0;
  while (u >>= 1) r++;
  return r;
}

int dama_ca_size_class(int64_t rounded) {
  uint64_t u = (uint64_t)rounded / (uint64_t)DAMA_CA_MIN_BLOCK;
  if (u < EXACT_CLASSES) return (int)u;
  int fl = floor_log2(u);   /* >= 6 */
  int sl = (int)((u >> (fl - 3)) & 7);
  int c = EXACT_CLASSES + (fl - 6) * 8 + sl;
  return c < NUM_CLASSES ? c : NUM_CLASSES - 1;
}

static int is_large(int64_t rounded) { return rounded > DAMA_CA_SMALL_SIZE; }

static int should_split(const ca_block *b, int64_t size) {
  int64_t remaining = b->size - size;
  return b->large ? remaining > DAMA_CA_SMALL_SIZE : remaining >= DAMA_CA_MIN_BLOCK;
}

/* ---- records, streams, free lists, the hash ---- */

static ca_block *block_new(dama_ca *ca) {
  ca_block *b = ca->spare;
  if (b) ca->spare = b->next;
  else if (!(b = malloc(sizeof *b))) return NULL;
  memset(b, 0, sizeof *b);
  return b;
}

static void block_recycle(dama_ca *ca, ca_block *b) {
  b->next = ca->spare;
  ca->spare = b;
}

static ca_stream *stream_of(dama_ca *ca, uintptr_t stream, int create) {
  for (int i = 0; i < ca->nstreams; i++)
    if (ca->streams[i].stream == stream) return &ca->streams[i];
  if (!create) return NULL;
  if (ca->nstreams == ca->cap_streams) {
    int cap = ca->cap_streams ? 2 * ca->cap_streams : 4;
    ca_stream *s = realloc(ca->streams, (size_t)cap * sizeof *s);
    if (!s) return NULL;
    ca->streams = s;
    ca->cap_streams = cap;
  }
  ca_stream *s = &ca->streams[ca->nstreams++];
  memset(s, 0, sizeof *s);
  s->stream = stream;
  return s;
}

static ca_free_lists *lists_of(dama_ca *ca, const ca_block *b) {
  ca_stream *s = stream_of(ca, b->stream, 0);   /* exists: the segment was made for it */
  return &s->pool[b->large];
}

/* Into its class, before the first block at least as large (so each class is sorted by size, last freed first). */
static void free_insert(dama_ca *ca, ca_block *b) {
  ca_free_lists *fl = lists_of(ca, b);
  int c = dama_ca_size_class(b->size);
  b->size_class = c;
  ca_block *prev = NULL, *at = fl->head[c];
  while (at && at->size < b->size) { prev = at; at = at->fnext; }
  b->fprev = prev;
  b->fnext = at;
  if (at) at->fprev = b;
  if (prev) prev->fnext = b;
  else fl->head[c] = b;
  fl->nonempty[c / 64] |= (uint64_t)1 << (c % 64);
}

static void free_remove(dama_ca *ca, ca_block *b) {
  ca_free_lists *fl = lists_of(ca, b);
  int c = b->size_class;
  if (b->fprev) b->fprev->fnext = b->fnext;
  else fl->head[c] = b->fnext;
  if (b->fnext) b->fnext->fprev = b->fprev;
  b->fprev = b->fnext = NULL;
  if (!fl->head[c]) fl->nonempty[c / 64] &= ~((uint64_t)1 << (c % 64));
}

/* The smallest free block of at least size in these lists, or NULL. */
static ca_block *best_fit(ca_free_lists *fl, int64_t size) {
  int c = dama_ca_size_class(size);
  for (ca_block *b = fl->head[c]; b; b = b->fnext)
    if (b->size >= size) return b;
  for (int w = (c + 1) / 64; w < BITMAP_WORDS; w++) {
    uint64_t bits = fl->nonempty[w];
    if (w == (c + 1) / 64) bits &= ~(uint64_t)0 << ((c + 1) % 64);
    if (bits) return fl->head[w * 64 + __builtin_ctzll(bits)];
  }
  return NULL;
}

static size_t hash_of(uintptr_t p, size_t n) { return (size_t)(((uint64_t)p >> 9) * 0x9E3779B97F4A7C15ull >> 20) & (n - 1); }

static int hash_grow(dama_ca *ca) {
  size_t n = ca->nbuckets ? 2 * ca->nbuckets : 256;
  ca_block **nb = calloc(n, sizeof *nb);
  if (!nb) return -1;
  for (size_t i = 0; i < ca->nbuckets; i++)
    for (ca_block *b = ca->buckets[i], *next; b; b = next) {
      next = b->hnext;
      size_t h = hash_of(b->ptr, n);
      b->hnext = nb[h];
      nb[h] = b;
    }
  free(ca->buckets);
  ca->buckets = nb;
  ca->nbuckets = n;
  return 0;
}

static ca_block *hash_find(dama_ca *ca, uintptr_t p) {
  if (!ca->nbuckets) return NULL;
  for (ca_block *b = ca->buckets[hash_of(p, ca->nbuckets)]; b; b = b->hnext)
    if (b->ptr == p) return b;
  return NULL;
}

static void hash_insert(dama_ca *ca, ca_block *b) {   /* room was made by hash_reserve */
  size_t h = hash_of(b->ptr, ca->nbuckets);
  b->hnext = ca->buckets[h];
  ca->buckets[h] = b;
  ca->nhashed++;
}

static int hash_reserve(dama_ca *ca) {
  return ca->nhashed + 1 > ca->nbuckets ? hash_grow(ca) : 0;
}

static void hash_remove(dama_ca *ca, ca_block *b) {
  ca_block **pp = &ca->buckets[hash_of(b->ptr, ca->nbuckets)];
  while (*pp != b) pp = &(*pp)->hnext;
  *pp = b->hnext;
  b->hnext = NULL;
  ca->nhashed--;
}

/* ---- segments ---- */

static void segment_link(dama_ca *ca, ca_block *head) {
  head->sprev = NULL;
  head->snext = ca->segments;
  if (ca->segments) ca->segments->sprev = head;
  ca->segments = head;
}

static void segment_unlink(dama_ca *ca, ca_block *head) {
  if (head->sprev) head->sprev->snext = head->snext;
  else ca->segments = head->snext;
  if (head->snext) head->snext->sprev = head->sprev;
}

/* Give back the wholly free segments (of one stream only when only_stream). */
static int64_t release_locked(dama_ca *ca, int only_stream, uintptr_t stream) {
  int64_t released = 0;
  for (ca_block *h = ca->segments, *next; h; h = next) {
    next = h->snext;
    if (h->allocated || h->next) continue;   /* wholly free: one free block spans the segment */
    if (only_stream && h->stream != stream) continue;
    free_remove(ca, h);
    segment_unlink(ca, h);
    ca->raw.free(ca->raw.ctx, (void *)h->ptr, h->segment_size);
    released += h->segment_size;
    ca->st.reserved -= h->segment_size;
    ca->st.segments--;
    ca->st.raw_frees++;
    block_recycle(ca, h);
  }
  ca->st.cached = ca->st.reserved - ca->st.allocated;
  return released;
}

static int64_t empty_cache_locked(dama_ca *ca) { return release_locked(ca, 0, 0); }

/* ---- the public calls ---- */

dama_ca *dama_ca_create(dama_ca_raw raw) {
  dama_ca *ca = calloc(1, sizeof *ca);
  if (!ca) return NULL;
  if (pthread_mutex_init(&ca->mu, NULL) != 0) { free(ca); return NULL; }
  ca->raw = raw;
  return ca;
}

void dama_ca_destroy(dama_ca *ca) {
  if (!ca) return;
  for (ca_block *h = ca->segments, *next; h; h = next) {
    next = h->snext;
    ca->raw.free(ca->raw.ctx, (void *)h->ptr, h->segment_size);
    for (ca_block *b = h, *bn; b; b = bn) { bn = b->next; free(b); }
  }
  for (ca_block *b = ca->spare, *next; b; b = next) { next = b->next; free(b); }
  free(ca->buckets);
  free(ca->streams);
  pthread_mutex_destroy(&ca->mu);
  free(ca);
}

static void note_peaks(dama_ca *ca) {
  if (ca->st.allocated > ca->st.peak_allocated) ca->st.peak_allocated = ca->st.allocated;
  if (ca->st.reserved > ca->st.peak_reserved) ca->st.peak_reserved = ca->st.reserved;
  ca->st.cached = ca->st.reserved - ca->st.allocated;
}

void *dama_ca_malloc(dama_ca *ca, int64_t nbytes, uintptr_t stream) {
  if (!ca || nbytes < 0 || nbytes > INT64_MAX / 4) return NULL;
  int64_t size = dama_ca_round_size(nbytes);
  int large = is_large(size);
  pthread_mutex_lock(&ca->mu);
  void *result = NULL;
  ca_stream *s = stream_of(ca, stream, 1);
  ca_block *spare_rec = block_new(ca);   /* for a split or a new segment */
  if (!s || !spare_rec || hash_reserve(ca) != 0) goto done;
  ca_block *b = best_fit(&s->pool[large], size);
  if (b) {
    free_remove(ca, b);
    ca->st.cache_hits++;
  } else {
    int64_t seg = dama_ca_segment_size(size);
    void *p = ca->raw.alloc(ca->raw.ctx, seg);
    if (!p) {
      ca->st.oom_retries++;
      empty_cache_locked(ca);
      p = ca->raw.alloc(ca->raw.ctx, seg);
      if (!p) { ca->st.ooms++; goto done; }
      s = stream_of(ca, stream, 0);
    }
    b = spare_rec;
    spare_rec = NULL;
    b->ptr = (uintptr_t)p;
    b->size = seg;
    b->segment_size = seg;
    b->stream = stream;
    b->large = large;
    segment_link(ca, b);
    ca->st.reserved += seg;
    ca->st.segments++;
    ca->st.raw_allocs++;
    if (!(spare_rec = block_new(ca))) goto hand_out;   /* no record for the rest: hand the whole segment out */
  }
  if (should_split(b, size)) {
    ca_block *rest = spare_rec;
    spare_rec = NULL;
    rest->ptr = b->ptr + (uintptr_t)size;
    rest->size = b->size - size;
    rest->stream = b->stream;
    rest->large = b->large;
    rest->prev = b;
    rest->next = b->next;
    if (b->next) b->next->prev = rest;
    b->next = rest;
    b->size = size;
    free_insert(ca, rest);
  }
hand_out:
  b->allocated = 1;
  b->requested = nbytes;
  hash_insert(ca, b);
  ca->st.allocated += b->size;
  ca->st.requested += nbytes;
  ca->st.active_blocks++;
  note_peaks(ca);
  result = (void *)b->ptr;
done:
  if (spare_rec) block_recycle(ca, spare_rec);
  pthread_mutex_unlock(&ca->mu);
  return result;
}

int dama_ca_free(dama_ca *ca, void *ptr) {
  if (!ca || !ptr) return -1;
  pthread_mutex_lock(&ca->mu);
  ca_block *b = hash_find(ca, (uintptr_t)ptr);
  if (!b) { pthread_mutex_unlock(&ca->mu); return -1; }
  hash_remove(ca, b);
  b->allocated = 0;
  ca->st.allocated -= b->size;
  ca->st.requested -= b->requested;
  ca->st.active_blocks--;
  b->requested = 0;
  ca_block *n = b->next;
  if (n && !n->allocated) {   /* absorb the next block */
    free_remove(ca, n);
    b->size += n->size;
    b->next = n->next;
    if (n->next) n->next->prev = b;
    block_recycle(ca, n);
  }
  ca_block *p = b->prev;
  if (p && !p->allocated) {   /* the previous block absorbs this one (a segment's first block stays first) */
    free_remove(ca, p);
    p->size += b->size;
    p->next = b->next;
    if (b->next) b->next->prev = p;
    block_recycle(ca, b);
    b = p;
  }
  free_insert(ca, b);
  ca->st.cached = ca->st.reserved - ca->st.allocated;
  pthread_mutex_unlock(&ca->mu);
  return 0;
}

int64_t dama_ca_empty_cache(dama_ca *ca) {
  if (!ca) return 0;
  pthread_mutex_lock(&ca->mu);
  int64_t r = empty_cache_locked(ca);
  pthread_mutex_unlock(&ca->mu);
  return r;
}

int64_t dama_ca_release_stream(dama_ca *ca, uintptr_t stream) {
  if (!ca) return 0;
  pthread_mutex_lock(&ca->mu);
  int64_t r = release_locked(ca, 1, stream);
  pthread_mutex_unlock(&ca->mu);
  return r;
}

void dama_ca_get_stats(dama_ca *ca, dama_ca_stats *out) {
  pthread_mutex_lock(&ca->mu);
  *out = ca->st;
  pthread_mutex_unlock(&ca->mu);
}

void dama_ca_reset_peaks(dama_ca *ca) {
  pthread_mutex_lock(&ca->mu);
  ca->st.peak_allocated = ca->st.allocated;
  ca->st.peak_reserved = ca->st.reserved;
  pthread_mutex_unlock(&ca->mu);
}

int dama_ca_block_stream(dama_ca *ca, const void *ptr, uintptr_t *stream) {
  pthread_mutex_lock(&ca->mu);
  ca_block *b = hash_find(ca, (uintptr_t)ptr);
  if (b) *stream = b->stream;
  pthread_mutex_unlock(&ca->mu);
  return b ? 0 : -1;
}

int64_t dama_ca_block_size(dama_ca *ca, const void *ptr) {
  pthread_mutex_lock(&ca->mu);
  ca_block *b = hash_find(ca, (uintptr_t)ptr);
  int64_t size = b ? b->size : 0;
  pthread_mutex_unlock(&ca->mu);
  return size;
}

/* ---- the invariants, for tests ---- */

#define FAIL(...) do { snprintf(msg, len, __VA_ARGS__); pthread_mutex_unlock(&ca->mu); return -1; } while (0)

static int in_list(const ca_free_lists *fl, const ca_block *b) {
  for (const ca_block *x = fl->head[b->size_class]; x; x = x->fnext)
    if (x == b) return 1;
  return 0;
}

int dama_ca_check(dama_ca *ca, char *msg, size_t len) {
  pthread_mutex_lock(&ca->mu);
  int64_t reserved = 0, allocated = 0, requested = 0, active = 0, segments = 0, nfree = 0;
  for (ca_block *h = ca->segments; h; h = h->snext) {
    segments++;
    reserved += h->segment_size;
    if (h->prev) FAIL("segment %#lx: its first block has a previous block", (unsigned long)h->ptr);
    if (h->sprev ? h->sprev->snext != h : ca->segments != h) FAIL("the segment list is broken");
    uintptr_t at = h->ptr;
    int64_t sum = 0;
    for (ca_block *b = h; b; b = b->next) {
      if (b->ptr != at) FAIL("segment %#lx: a block at %#lx, expected %#lx", (unsigned long)h->ptr,
                             (unsigned long)b->ptr, (unsigned long)at);
      if (b->size <= 0 || b->size % DAMA_CA_MIN_BLOCK) FAIL("block %#lx: size %lld", (unsigned long)b->ptr,
                                                            (long long)b->size);
      if (b->stream != h->stream || b->large != h->large) FAIL("block %#lx: another stream or pool than its segment",
                                                               (unsigned long)b->ptr);
      if (b->next && b->next->prev != b) FAIL("block %#lx: broken neighbour links", (unsigned long)b->ptr);
      if (b->allocated) {
        if (hash_find(ca, b->ptr) != b) FAIL("block %#lx: handed out but not findable", (unsigned long)b->ptr);
        allocated += b->size;
        requested += b->requested;
        active++;
      } else {
        nfree++;
        if (b->next && !b->next->allocated) FAIL("block %#lx: two free neighbours", (unsigned long)b->ptr);
        if (b->size_class != dama_ca_size_class(b->size)) FAIL("block %#lx: in the wrong class", (unsigned long)b->ptr);
        ca_stream *s = stream_of(ca, b->stream, 0);
        if (!s || !in_list(&s->pool[b->large], b)) FAIL("block %#lx: free but in no free list", (unsigned long)b->ptr);
        if (hash_find(ca, b->ptr)) FAIL("block %#lx: free but findable as handed out", (unsigned long)b->ptr);
      }
      sum += b->size;
      at += (uintptr_t)b->size;
    }
    if (sum != h->segment_size) FAIL("segment %#lx: blocks sum to %lld of %lld", (unsigned long)h->ptr,
                                     (long long)sum, (long long)h->segment_size);
  }
  int64_t listed = 0;
  for (int i = 0; i < ca->nstreams; i++)
    for (int pool = 0; pool < 2; pool++)
      for (int c = 0; c < NUM_CLASSES; c++) {
        const ca_free_lists *fl = &ca->streams[i].pool[pool];
        int bit = (fl->nonempty[c / 64] >> (c % 64)) & 1;
        if (bit != (fl->head[c] != NULL)) FAIL("class %d: the bitmap disagrees with the list", c);
        for (const ca_block *b = fl->head[c]; b; b = b->fnext) {
          listed++;
          if (b->allocated) FAIL("block %#lx: handed out but in a free list", (unsigned long)b->ptr);
          if (b->fnext && b->fnext->size < b->size) FAIL("class %d: not sorted by size", c);
          if (b->fnext && b->fnext->fprev != b) FAIL("class %d: broken list links", c);
        }
      }
  if (listed != nfree) FAIL("%lld blocks in free lists, %lld free in segments", (long long)listed, (long long)nfree);
  if ((int64_t)ca->nhashed != active) FAIL("%zu blocks findable, %lld handed out", ca->nhashed, (long long)active);
  const dama_ca_stats *st = &ca->st;
  if (st->reserved != reserved || st->allocated != allocated || st->requested != requested ||
      st->active_blocks != active || st->segments != segments || st->cached != reserved - allocated)
    FAIL("stats (reserved %lld allocated %lld requested %lld active %lld segments %lld cached %lld) differ from the "
         "blocks (%lld %lld %lld %lld %lld %lld)", (long long)st->reserved, (long long)st->allocated,
         (long long)st->requested, (long long)st->active_blocks, (long long)st->segments, (long long)st->cached,
         (long long)reserved, (long long)allocated, (long long)requested, (long long)active, (long long)segments,
         (long long)(reserved - allocated));
  if (st->peak_allocated < allocated || st->peak_reserved < reserved) FAIL("a peak is below the current value");
  pthread_mutex_unlock(&ca->mu);
  return 0;
}
