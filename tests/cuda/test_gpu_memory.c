/* GPU-only (ctest label `gpu`): the CUDA backend's table on a real device from C: the copies byte for byte (small,
 * unaligned and large), pinned memory with an asynchronous copy and an event, the caching allocator's reuse and
 * empty_cache through tensors, memory_info, and one kernel of this build. Without a device every case prints
 * SKIPPED with the reason and the program exits 77 (ctest: skipped).
 * None of this has run on a GPU yet: it was written and checked for its skip path on a machine without one. */
#include "dama_test.h"
#include "core/backend.h"
#include "dama_cuda.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dama_device CUDA0 = {DAMA_CUDA, 0};
static char skip_why[800];

static int no_gpu(void) {
  dama_cuda_register();
  if (dama_device_count(DAMA_CUDA) > 0) return 0;
  const char *why = dama_device_unavailable_reason(DAMA_CUDA);
  snprintf(skip_why, sizeof skip_why, "SKIPPED (no CUDA device): %s", why ? why : "no reason given");
  return 1;
}
#define NEED_GPU() do { if (no_gpu()) SKIP(skip_why); } while (0)

static void fill_bytes(uint8_t *p, int64_t n, uint32_t seed) {
  for (int64_t i = 0; i < n; i++) { seed = seed * 1664525u + 1013904223u; p[i] = (uint8_t)(seed >> 24); }
}

DAMA_TEST(copies_are_byte_exact) {
  NEED_GPU();
  const dama_backend *be = dama_backend_of_type(DAMA_CUDA);
  const int64_t sizes[5] = {1, 511, 4096 + 3, 3 << 20, (25 << 20) + 17};
  for (int k = 0; k < 5; k++) {
    int64_t n = sizes[k];
    uint8_t *h = malloc((size_t)n), *back = malloc((size_t)n);
    void *d1 = be->alloc(0, n), *d2 = be->alloc(0, n);
    CHECK(h && back && d1 && d2);
    fill_bytes(h, n, (uint32_t)k + 1);
    CHECK_OK(be->copy_h2d(0, d1, h, n));
    CHECK_OK(be->copy_d2d(0, d2, d1, n));
    memset(back, 0, (size_t)n);
    CHECK_OK(be->copy_d2h(0, back, d2, n));
    CHECK_MSG(memcmp(h, back, (size_t)n) == 0, "%lld bytes differ after h2d, d2d, d2h", (long long)n);
    be->free(0, d1, n);
    be->free(0, d2, n);
    free(h); free(back);
  }
  CHECK_OK(dama_synchronize(CUDA0));
  CHECK_OK(dama_device_empty_cache(CUDA0));
}

DAMA_TEST(pinned_memory_async_copy_and_event) {
  NEED_GPU();
  const dama_backend *be = dama_backend_of_type(DAMA_CUDA);
  const int64_t n = 8 << 20;
  uint8_t *pinned = be->host_alloc(0, n), *back = malloc((size_t)n), *want = malloc((size_t)n);
  void *d = be->alloc(0, n);
  CHECK(pinned && back && want && d);
  fill_bytes(pinned, n, 99);
  memcpy(want, pinned, (size_t)n);
  void *ev = NULL;
  CHECK_OK(be->event_create(0, &ev));
  CHECK_OK(be->copy_h2d_async(0, d, pinned, n));
  CHECK_OK(be->event_record(0, ev));
  CHECK_OK(be->event_wait(0, ev));
  memset(pinned, 0, (size_t)n);   /* safe: the event was recorded after the copy and has been waited on */
  CHECK_OK(be->copy_d2h(0, back, d, n));
  CHECK_MSG(memcmp(back, want, (size_t)n) == 0, "the async copy from pinned memory differs");
  be->event_destroy(0, ev);
  be->free(0, d, n);
  be->host_free(0, pinned, n);
  free(back); free(want);
  CHECK_OK(dama_device_empty_cache(CUDA0));
}

DAMA_TEST(tensors_reuse_cached_blocks_and_empty_cache_returns_them) {
  NEED_GPU();
  int64_t shape[1] = {1 << 18};   /* 1 MiB of f32: the small pool's largest size */
  dama_tensor *a = NULL, *b = NULL;
  CHECK_OK(dama_device_empty_cache(CUDA0));
  int64_t v0[13] = {0}, v1[13] = {0}, v2[13] = {0};
  CHECK(dama_cuda_allocator_stats(0, v0, 13) == 13);
  CHECK_OK(dama_empty(&a, 1, shape, DAMA_F32, CUDA0));
  void *pa = a->storage->data;
  dama_tensor_release(a);
  CHECK(dama_cuda_allocator_stats(0, v1, 13) == 13);
  CHECK_OK(dama_empty(&b, 1, shape, DAMA_F32, CUDA0));
  CHECK_MSG(b->storage->data == pa, "a freed block of the same size is reused");
  CHECK(dama_cuda_allocator_stats(0, v2, 13) == 13);
  CHECK_MSG(v2[8] == v1[8] && v2[10] == v1[10] + 1, "raw_allocs %lld -> %lld, cache_hits %lld -> %lld",
            (long long)v1[8], (long long)v2[8], (long long)v1[10], (long long)v2[10]);
  dama_tensor_release(b);
  dama_device_memory m;
  CHECK_OK(dama_device_memory_stats(CUDA0, &m));
  CHECK(m.total > 0 && m.free > 0 && m.free <= m.total && m.cached >= (1 << 20));
  CHECK_OK(dama_device_empty_cache(CUDA0));
  CHECK_OK(dama_device_memory_stats(CUDA0, &m));
  CHECK(dama_cuda_allocator_stats(0, v2, 13) == 13);
  CHECK_MSG(v2[2] == 0 && m.cached == 0, "reserved %lld, cached %lld after empty_cache with nothing live",
            (long long)v2[2], (long long)m.cached);
}

DAMA_TEST(a_kernel_of_this_build_runs) {
  NEED_GPU();
  CHECK_OK(dama_cuda_selftest(0, 1, 7));
  CHECK_OK(dama_cuda_selftest(0, (1 << 20) + 3, 8));
  dama_device_props p;
  CHECK_OK(dama_device_properties(CUDA0, &p));
  printf("  cuda:0: %s, sm_%d%d, %d SMs, %lld bytes; %s\n", p.name, p.major, p.minor, p.multi_processor_count,
         (long long)p.total_memory, dama_backend_info(DAMA_CUDA));
  CHECK_OK(dama_device_empty_cache(CUDA0));   /* the segments go back before exit (LeakSanitizer over the fake) */
}
