/* The `sim` test device: the CPU kernels over memory that host code cannot read, with a GPU's asynchrony.
 *
 * Its storage pointers are host addresses moved by SIM_TAG (2^62) into the non-canonical half of the x86-64 /
 * AArch64 address space, so any dereference outside the backend faults at once (SIGSEGV; ASan names it), and
 * dama_data_ptr refuses sim tensors. Only this table turns them back into addresses: kernel_ptr for the CPU
 * kernels it shares with the cpu backend, and the copies, which count device-to-host reads like a GPU's would
 * cost a synchronisation. A host-only code path that would read garbage on a GPU therefore fails a test here.
 *
 * It also offers "pinned" host memory and an asynchronous host->device copy that really is late: the copy is
 * queued and runs only when the device's queue next has to move on (any kernel touching sim memory, any other
 * copy, a free, an event wait, dama_synchronize). Host code that rewrites a pinned buffer before waiting on an
 * event recorded after its copy therefore sends the new bytes, and the test that checks the values fails, as
 * it would on a GPU. Events record how many copies had been queued and wait runs the queue up to there. */
#include "core/backend.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SIM_TAG ((uintptr_t)1 << 62)

static void *hide(void *p) { return p ? (void *)((uintptr_t)p + SIM_TAG) : NULL; }
static void *reveal(const void *p) { return p ? (void *)((uintptr_t)p - SIM_TAG) : NULL; }

/* ---- the queue of deferred host->device copies ---- */
typedef struct { void *dst; const void *src; int64_t nbytes; } pending_copy;
static pthread_mutex_t queue_mu = PTHREAD_MUTEX_INITIALIZER;
static pending_copy *queue;
static int64_t queue_len, queue_cap;
static _Atomic int64_t queued, done;   /* copies issued / run since start (events compare against these) */

/* Run the queued copies up to issue number `upto` (all of them when upto < 0). */
static void run_queue(int64_t upto) {
  if (atomic_load_explicit(&done, memory_order_acquire) == atomic_load_explicit(&queued, memory_order_acquire))
    return;
  pthread_mutex_lock(&queue_mu);
  int64_t first = atomic_load(&done), n = 0;
  while (n < queue_len && (upto < 0 || first + n < upto)) {
    pending_copy *c = &queue[n++];
    memcpy(reveal(c->dst), c->src, (size_t)c->nbytes);
  }
  memmove(queue, queue + n, (size_t)(queue_len - n) * sizeof *queue);
  queue_len -= n;
  atomic_store_explicit(&done, first + n, memory_order_release);
  pthread_mutex_unlock(&queue_mu);
}

static dama_status sim_h2d_async(int32_t index, void *dst, const void *src, int64_t nbytes) {
  (void)index;
  if (nbytes <= 0) return DAMA_OK;
  pthread_mutex_lock(&queue_mu);
  if (queue_len == queue_cap) {
    int64_t cap = queue_cap ? 2 * queue_cap : 16;
    pending_copy *q = realloc(queue, (size_t)cap * sizeof *q);
    if (!q) {
      pthread_mutex_unlock(&queue_mu);
      return dama_error(DAMA_ERR_OOM, "sim: out of memory queueing a %lld-byte copy", (long long)nbytes);
    }
    queue = q; queue_cap = cap;
  }
  queue[queue_len++] = (pending_copy){dst, src, nbytes};
  atomic_fetch_add(&queued, 1);
  pthread_mutex_unlock(&queue_mu);
  return DAMA_OK;
}

static int32_t sim_count(void) { return 1; }
static void *sim_alloc(int32_t index, int64_t nbytes) { (void)index; return hide(dama_alloc_bytes(nbytes)); }
static void sim_free(int32_t index, void *p, int64_t nbytes) {
  (void)index;
  run_queue(-1);
  dama_free_bytes(reveal(p), nbytes);
}
static dama_status sim_h2d(int32_t index, void *dst, const void *src, int64_t nbytes) {
  (void)index;
  run_queue(-1);
  if (nbytes > 0) memcpy(reveal(dst), src, (size_t)nbytes);
  return DAMA_OK;
}
static dama_status sim_d2h(int32_t index, void *dst, const void *src, int64_t nbytes) {
  (void)index;
  run_queue(-1);
  if (nbytes > 0) memcpy(dst, reveal(src), (size_t)nbytes);
  return DAMA_OK;
}
static dama_status sim_d2d(int32_t index, void *dst, const void *src, int64_t nbytes) {
  (void)index;
  run_queue(-1);
  if (nbytes > 0) memmove(reveal(dst), reveal(src), (size_t)nbytes);
  return DAMA_OK;
}
static dama_status sim_sync(int32_t index) { (void)index; run_queue(-1); return DAMA_OK; }
/* Every kernel reaches sim memory through here, so the queued copies run before the first kernel after them. */
static void *sim_kernel_ptr(void *data) { run_queue(-1); return reveal(data); }

/* "Pinned" memory is plain tracked host memory; freeing it first runs the copies that may still read it. */
static void *sim_host_alloc(int32_t index, int64_t nbytes) { (void)index; return dama_alloc_bytes(nbytes); }
static void sim_host_free(int32_t index, void *p, int64_t nbytes) {
  (void)index;
  run_queue(-1);
  dama_free_bytes(p, nbytes);
}

static dama_status sim_event_create(int32_t index, void **event) {
  (void)index;
  *event = calloc(1, sizeof(int64_t));
  return *event ? DAMA_OK : dama_error(DAMA_ERR_OOM, "sim: out of memory creating an event");
}
static void sim_event_destroy(int32_t index, void *event) { (void)index; free(event); }
static dama_status sim_event_record(int32_t index, void *event) {
  (void)index;
  *(int64_t *)event = atomic_load(&queued);
  return DAMA_OK;
}
static dama_status sim_event_wait(int32_t index, void *event) {
  (void)index;
  run_queue(*(int64_t *)event);
  return DAMA_OK;
}
static dama_status sim_memory_info(int32_t index, int64_t *cached, int64_t *total, int64_t *free_bytes) {
  (void)index;
  *cached = 0;
  dama_host_memory_info(total, free_bytes);
  return DAMA_OK;
}

const dama_backend dama_backend_sim = {
  .name = "sim", .type = DAMA_SIM, .host_visible = 0, .device_count = sim_count,
  .alloc = sim_alloc, .free = sim_free, .copy_h2d = sim_h2d, .copy_d2h = sim_d2h, .copy_d2d = sim_d2d,
  .synchronize = sim_sync, .kernel_ptr = sim_kernel_ptr, .ops = &dama_cpu_ops,
  .host_alloc = sim_host_alloc, .host_free = sim_host_free, .copy_h2d_async = sim_h2d_async,
  .event_create = sim_event_create, .event_destroy = sim_event_destroy, .event_record = sim_event_record,
  .event_wait = sim_event_wait, .memory_info = sim_memory_info,
};
