/* caching_allocator.h — the bookkeeping of dama's CUDA caching allocator, in plain C11 so that the CPU tests run it
 * (tests/cuda/test_caching_allocator.c) over a fake device allocator; backend_cuda.cu gives it cudaMalloc/cudaFree.
 *
 * It follows PyTorch's CUDACachingAllocator (c10/cuda/CUDACachingAllocator.cpp), without its options:
 * - every request is rounded up to a multiple of 512 bytes (at least 512; 0 bytes gives a 512-byte block);
 * - requests of up to 1 MiB come from the small pool, carved out of 2 MiB segments; larger ones from the large
 *   pool, whose segments are 20 MiB for requests under 10 MiB and the request rounded up to 2 MiB otherwise;
 * - a request takes the smallest cached free block of its pool and stream that fits (ties: the last freed) and
 *   splits it when what is left is at least 512 bytes (small pool) or more than 1 MiB (large pool); a freed block
 *   merges with free neighbours of its segment and goes back to its stream's free lists;
 * - free lists are kept per stream and pool, in size classes: one class per 512-byte size up to 32 KiB, then eight
 *   classes per power of two (each class sorted by size, so the first block that fits is the best fit);
 * - when the device has no memory for a new segment, the cache is emptied and the device asked once more;
 *   a second failure returns NULL (the caller reports the requested bytes and the device's free/total).
 * A block freed on one stream is reused on that stream only; work on other streams must be ordered by the caller.
 * All functions are thread-safe (one mutex per allocator). */
#ifndef DAMA_CACHING_ALLOCATOR_H
#define DAMA_CACHING_ALLOCATOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAMA_CA_MIN_BLOCK ((int64_t)512)              /* every size is a multiple of this */
#define DAMA_CA_SMALL_SIZE ((int64_t)1 << 20)         /* the largest request of the small pool */
#define DAMA_CA_SMALL_SEGMENT ((int64_t)2 << 20)      /* the small pool's segments */
#define DAMA_CA_MIN_LARGE_ALLOC ((int64_t)10 << 20)   /* large requests under this share 20 MiB segments */
#define DAMA_CA_LARGE_SEGMENT ((int64_t)20 << 20)
#define DAMA_CA_ROUND_LARGE ((int64_t)2 << 20)        /* larger requests get a segment rounded up to this */

/* The device's own allocator, injected: alloc returns a fresh segment of nbytes or NULL when the device has none;
 * free gives a segment back (exactly the pointer and size alloc gave). */
typedef struct dama_ca_raw {
  void *ctx;
  void *(*alloc)(void *ctx, int64_t nbytes);
  void (*free)(void *ctx, void *ptr, int64_t nbytes);
} dama_ca_raw;

typedef struct dama_ca_stats {
  int64_t allocated;        /* bytes in the blocks handed out (their rounded, possibly unsplit sizes) */
  int64_t requested;        /* bytes the callers asked for, of the blocks handed out */
  int64_t reserved;         /* bytes in the segments held from the device */
  int64_t cached;           /* reserved - allocated: free bytes kept for reuse */
  int64_t peak_allocated, peak_reserved;
  int64_t active_blocks;    /* blocks handed out */
  int64_t segments;         /* segments held */
  int64_t raw_allocs;       /* segments asked of the device (successfully) */
  int64_t raw_frees;        /* segments given back */
  int64_t cache_hits;       /* requests served from a cached free block */
  int64_t oom_retries;      /* device allocations that failed, emptied the cache and asked again */
  int64_t ooms;             /* requests that failed after that retry */
} dama_ca_stats;

typedef struct dama_ca dama_ca;

/* A new, empty allocator over `raw`; NULL when the host is out of memory. */
dama_ca *dama_ca_create(dama_ca_raw raw);
/* Give every segment back (blocks still handed out too) and free the allocator. NULL is fine. */
void dama_ca_destroy(dama_ca *ca);
/* A block of at least nbytes for use on `stream`, or NULL (nbytes < 0, the device out of memory after emptying the
 * cache and retrying once, or the host out of memory for the bookkeeping). */
void *dama_ca_malloc(dama_ca *ca, int64_t nbytes, uintptr_t stream);
/* Return a block to the cache. 0, or -1 when ptr is not a block handed out by this allocator (nothing changes). */
int dama_ca_free(dama_ca *ca, void *ptr);
/* Give the segments that are wholly free back to the device; returns the bytes released. */
int64_t dama_ca_empty_cache(dama_ca *ca);
/* The same for the segments of one stream key only (a CUDA graph's private pool when the graph goes). */
int64_t dama_ca_release_stream(dama_ca *ca, uintptr_t stream);
void dama_ca_get_stats(dama_ca *ca, dama_ca_stats *out);
/* Restart the peaks from the current values. */
void dama_ca_reset_peaks(dama_ca *ca);
/* The rounded size of a block handed out (0 when ptr is not one). */
int64_t dama_ca_block_size(dama_ca *ca, const void *ptr);

/* The stream key a block handed out was allocated for: 0, or -1 when ptr is not one. */
int dama_ca_block_stream(dama_ca *ca, const void *ptr, uintptr_t *stream);

/* The rules, for tests: the rounded size of a request, and the segment a new block of that rounded size gets. */
int64_t dama_ca_round_size(int64_t nbytes);
int64_t dama_ca_segment_size(int64_t rounded);
/* The size class of a rounded size (monotonic in size). */
int dama_ca_size_class(int64_t rounded);

/* Check every invariant of the bookkeeping (segments tile exactly, no two free neighbours, free blocks in the
 * right class and list, handed-out blocks findable, the stats equal to the sums); 0, or -1 with why in msg. */
int dama_ca_check(dama_ca *ca, char *msg, size_t len);

#ifdef __cplusplus
}
#endif

#endif
