/* backend_cuda.c — the CUDA backend's table (core/backend.h): devices, the caching allocator, copies, pinned host
 * memory, events, synchronisation, the device ops run on (set_device), and the op table, whose slots each op area
 * fills from its own files (cuda_ops.h); a slot still NULL is refused by name ("fill_: not implemented on cuda:0
 * yet", DAMA_NEED_OP in core/). cuda/README.md says what exists.
 *
 * Devices. The CUDA runtime is linked statically and loads libcuda.so.1 on its first call, so nothing here touches
 * the driver before the first question about CUDA devices; then one cudaGetDeviceCount decides, once, how many there
 * are, and when it fails the reason (no driver, a driver too old, no device) is kept for every error that names a
 * cuda device. Each device gets, on first use, one stream (non-blocking: the legacy default stream never orders it)
 * and one caching allocator over cudaMalloc/cudaFree (caching_allocator.h).
 *
 * Ordering (the rules at dama_synchronize, api/core.h): everything for cuda:N is issued on its one stream, so it runs
 * in issue order. copy_h2d and copy_d2h return after the copy has run (cudaMemcpyAsync on the stream, then
 * cudaStreamSynchronize, as PyTorch's non_blocking=False copies do), so their host buffer is free to reuse;
 * copy_d2d and copy_h2d_async only queue. A freed block is reused for later work on the same stream only, which
 * runs after the work that used it. Every CUDA call's return code is checked (cuda_check.h); a failure in a call
 * that cannot return one (a free) is kept and reported by the device's next synchronize. */
#define _POSIX_C_SOURCE 200809L

#include "cuda_check.h"
#include "core/backend.h"
#include "cuda_ops.h"
#include "graph.h"
#include "caching_allocator.h"
#include "dama_cuda.h"
#include "probe.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DAMA_CUDA_CODE
#define DAMA_CUDA_CODE "(unknown)"   /* the GPU code in this build, from DAMA_CUDA_ARCHS (CMakeLists.txt) */
#endif

#define MAX_DEVICES 64

typedef struct cuda_device {
  atomic_int ready;          /* stream and allocator made */
  cudaStream_t stream;
  dama_ca *ca;
  char deferred[320];        /* a failure no call could return, for the next synchronize */
  uintptr_t pool;            /* while a CUDA graph captures: its private pool's allocator key (graph.c), else 0 */
  dama_cuda_graph *capture;  /* the graph being captured on this device's stream, or NULL */
} cuda_device;

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static _Thread_local int32_t current_device;   /* this thread's device for ops (set_device) */
static int32_t ndevices;
static char reason[640];
static char info_line[900];
static pthread_mutex_t init_mu = PTHREAD_MUTEX_INITIALIZER;
static cuda_device devices[MAX_DEVICES];

/* ---- what is there ---- */

static void probe_devices(void) {
  int n = 0, drv = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    n = 0;
    if (e == cudaErrorInsufficientDriver) {
      /* the runtime says the same when there is no driver at all: tell the two apart */
      void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
      if (!h) {
        const char *why = dlerror();
        snprintf(reason, sizeof reason, "no NVIDIA driver: %s", why ? why : "libcuda.so.1 cannot be loaded");
      } else {
        dlclose(h);
        if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
        snprintf(reason, sizeof reason, "the NVIDIA driver (CUDA %d.%d) is older than this build's CUDA runtime "
                 "%d.%d: %s (%s)", drv / 1000, drv % 1000 / 10, CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10,
                 cudaGetErrorString(e), cudaGetErrorName(e));
      }
    } else {
      snprintf(reason, sizeof reason, "cudaGetDeviceCount: %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    }
    const char *visible = getenv("CUDA_VISIBLE_DEVICES");
    if (visible) {
      size_t len = strlen(reason);
      snprintf(reason + len, sizeof reason - len, "; CUDA_VISIBLE_DEVICES='%s'", visible);
    }
  } else if (n <= 0) {
    n = 0;
    snprintf(reason, sizeof reason, "cudaGetDeviceCount found no CUDA device");
  }
  if (n > MAX_DEVICES) n = MAX_DEVICES;
  ndevices = n;
#if defined(DAMA_FAKE_CUDART)
  const char *how = "the fake CUDA runtime of tests/cuda, not a GPU";
#elif defined(DAMA_INTERP_CUDART)
  const char *how = "kernels interpreted on the CPU, not a GPU";
#else
  const char *how = "runtime linked statically";
#endif
  int len = snprintf(info_line, sizeof info_line, "CUDA %d.%d built in (code for %s; %s): ", CUDART_VERSION / 1000,
                     CUDART_VERSION % 1000 / 10, DAMA_CUDA_CODE, how);
  if (len < 0 || (size_t)len >= sizeof info_line) return;
  if (n > 0) {
    if (cudaDriverGetVersion(&drv) != cudaSuccess) drv = 0;
    snprintf(info_line + len, sizeof info_line - (size_t)len, "%d device%s, driver CUDA %d.%d", n, n == 1 ? "" : "s",
             drv / 1000, drv % 1000 / 10);
  } else {
    snprintf(info_line + len, sizeof info_line - (size_t)len, "0 devices: %s", reason);
  }
}

static int32_t cuda_count(void) {
  pthread_once(&probe_once, probe_devices);
  return ndevices;
}

static const char *cuda_info(void) {
  pthread_once(&probe_once, probe_devices);
  return info_line;
}

static const char *cuda_unavailable_reason(void) {
  pthread_once(&probe_once, probe_devices);
  return ndevices > 0 ? NULL : reason;
}

static void defer_error(cuda_device *d, const char *what, cudaError_t e) {
  (void)cudaGetLastError();
  pthread_mutex_lock(&init_mu);
  if (!d->deferred[0])
    snprintf(d->deferred, sizeof d->deferred, "%s failed: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
  pthread_mutex_unlock(&init_mu);
}

/* ---- the device's stream and allocator ---- */

static void *raw_alloc(void *ctx, int64_t nbytes) {
  (void)ctx;
  void *p = NULL;
  if (cudaMalloc(&p, (size_t)nbytes) != cudaSuccess) {
    (void)cudaGetLastError();   /* out of memory is not sticky: clear it so the retry and later calls start clean */
    return NULL;
  }
  return p;
}

static void raw_free(void *ctx, void *p, int64_t nbytes) {
  (void)nbytes;
  cudaError_t e = cudaFree(p);
  if (e != cudaSuccess) defer_error(&devices[(intptr_t)ctx], "cudaFree", e);
}

/* cuda:index current on this thread, with its stream and allocator made. */
static dama_status device_ready(int32_t index, cuda_device **out) {
  if (index < 0 || index >= cuda_count()) return dama_device_check((dama_device){DAMA_CUDA, index});
  cuda_device *d = &devices[index];
  DAMA_CUDA_TRY(cudaSetDevice(index));
  if (!atomic_load_explicit(&d->ready, memory_order_acquire)) {
    pthread_mutex_lock(&init_mu);
    dama_status s = DAMA_OK;
    if (!atomic_load(&d->ready)) {
      cudaError_t e = cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking);
      if (e != cudaSuccess) s = dama_cuda_status(e, "cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking)",
                                                 __FILE__, __LINE__);
      else if (!(d->ca = dama_ca_create((dama_ca_raw){(void *)(intptr_t)index, raw_alloc, raw_free}))) {
        (void)cudaStreamDestroy(d->stream);
        s = dama_error(DAMA_ERR_OOM, "cuda:%d: out of host memory for the caching allocator", (int)index);
      } else {
        atomic_store_explicit(&d->ready, 1, memory_order_release);
      }
    }
    pthread_mutex_unlock(&init_mu);
    DAMA_TRY(s);
  }
  *out = d;
  return DAMA_OK;
}

/* ---- the device ops run on (the seam's set_device) ---- */

static dama_status cuda_set_device(int32_t index) {
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  current_device = index;
  return DAMA_OK;
}

int32_t dama_cuda_current_device(void) { return current_device; }
dama_status dama_cuda_set_current(int32_t index) { return cuda_set_device(index); }

cudaStream_t dama_cuda_stream(void) {
  /* set_device made the device ready before any op of this thread reaches a launcher */
  return devices[current_device].stream;
}

dama_status dama_cuda_scratch_alloc(const char *op, int64_t nbytes, void **out) {
  *out = NULL;
  cuda_device *d;
  DAMA_TRY(device_ready(current_device, &d));
  if (nbytes <= 0) nbytes = 1;
  void *p = dama_ca_malloc(d->ca, nbytes, d->pool ? d->pool : (uintptr_t)d->stream);
  if (!p) {
    size_t f = 0, t = 0;
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) (void)cudaGetLastError();
    return dama_error(DAMA_ERR_OOM, "%s: out of memory on cuda:%d for %lld bytes of scratch (free %lld of %lld bytes)",
                      op, (int)current_device, (long long)nbytes, (long long)f, (long long)t);
  }
  *out = p;
  return DAMA_OK;
}

void dama_cuda_scratch_free(void *p, int64_t nbytes) {
  (void)nbytes;
  if (!p) return;
  cuda_device *d = &devices[current_device];
  if (dama_ca_free(d->ca, p) != 0) {
    pthread_mutex_lock(&init_mu);
    if (!d->deferred[0])
      snprintf(d->deferred, sizeof d->deferred, "cuda:%d: a scratch free of %p, which the caching allocator did not "
               "hand out", (int)current_device, p);
    pthread_mutex_unlock(&init_mu);
  }
}

/* ---- the table ---- */

static void *cuda_alloc(int32_t index, int64_t nbytes) {
  cuda_device *d;
  if (device_ready(index, &d) != DAMA_OK) return NULL;
  /* during a graph capture, from the graph's private pool: replays reuse exactly these blocks */
  return dama_ca_malloc(d->ca, nbytes, d->pool ? d->pool : (uintptr_t)d->stream);
}

/* Refuse a host-side wait or read while a graph captures on the device: it would end the capture (CUDA
 * invalidates it), and a captured step must not depend on the host seeing device memory. */
#define NO_CAPTURE(d, index, what)                                                                               \
  do {                                                                                                          \
    if ((d)->capture)                                                                                          \
      return dama_error(DAMA_ERR_DEVICE, "%s on cuda:%d while a CUDA graph is being captured there: the captured " \
                        "work must stay on the device (no reads to the host, no synchronisation); move it out of " \
                        "the captured function", what, (int)(index));                                          \
  } while (0)

static void cuda_free(int32_t index, void *p, int64_t nbytes) {
  (void)nbytes;
  if (!p || index < 0 || index >= MAX_DEVICES || !atomic_load(&devices[index].ready)) return;
  cuda_device *d = &devices[index];
  cudaError_t e = cudaSetDevice(index);
  if (e != cudaSuccess) { defer_error(d, "cudaSetDevice", e); return; }
#ifndef DAMA_CUDA_NO_OPS   /* the fake runtime of tests/cuda has no graphs: d->capture stays NULL */
  uintptr_t key = 0;
  if (d->capture && dama_ca_block_stream(d->ca, p, &key) == 0 && key != d->pool &&
      dama_cuda_graph_keep(d->capture, p))
    return;   /* captured work may still use it at every replay: freed when the graph goes (graph.c) */
#endif
  if (dama_ca_free(d->ca, p) != 0) {
    pthread_mutex_lock(&init_mu);
    if (!d->deferred[0])
      snprintf(d->deferred, sizeof d->deferred, "cuda:%d: a free of %p, which the caching allocator did not hand out",
               (int)index, p);
    pthread_mutex_unlock(&init_mu);
  }
}

static dama_status cuda_h2d(int32_t index, void *dst, const void *src, int64_t nbytes) {
  if (nbytes <= 0) return DAMA_OK;
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  NO_CAPTURE(d, index, "a blocking copy from the host");
  DAMA_CUDA_TRY(cudaMemcpyAsync(dst, src, (size_t)nbytes, cudaMemcpyHostToDevice, d->stream));
  DAMA_CUDA_TRY(cudaStreamSynchronize(d->stream));   /* src may be pinned: the caller may reuse it on return */
  return DAMA_OK;
}

static dama_status cuda_d2h(int32_t index, void *dst, const void *src, int64_t nbytes) {
  if (nbytes <= 0) return DAMA_OK;
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  NO_CAPTURE(d, index, "a read of device memory by the host");
  DAMA_CUDA_TRY(cudaMemcpyAsync(dst, src, (size_t)nbytes, cudaMemcpyDeviceToHost, d->stream));
  DAMA_CUDA_TRY(cudaStreamSynchronize(d->stream));
  return DAMA_OK;
}

static dama_status cuda_d2d(int32_t index, void *dst, const void *src, int64_t nbytes) {
  if (nbytes <= 0) return DAMA_OK;
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  DAMA_CUDA_TRY(cudaMemcpyAsync(dst, src, (size_t)nbytes, cudaMemcpyDeviceToDevice, d->stream));
  return DAMA_OK;
}

static dama_status cuda_h2d_async(int32_t index, void *dst, const void *src, int64_t nbytes) {
  if (nbytes <= 0) return DAMA_OK;
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  DAMA_CUDA_TRY(cudaMemcpyAsync(dst, src, (size_t)nbytes, cudaMemcpyHostToDevice, d->stream));
  return DAMA_OK;
}

static dama_status cuda_sync(int32_t index) {
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  NO_CAPTURE(d, index, "synchronize");
  DAMA_CUDA_TRY(cudaStreamSynchronize(d->stream));
  pthread_mutex_lock(&init_mu);
  dama_status s = d->deferred[0] ? dama_error(DAMA_ERR_DEVICE, "cuda:%d: %s", (int)index, d->deferred) : DAMA_OK;
  d->deferred[0] = '\0';
  pthread_mutex_unlock(&init_mu);
  return s;
}

static void *cuda_kernel_ptr(void *data) { return data; }

static void *cuda_host_alloc(int32_t index, int64_t nbytes) {
  cuda_device *d;
  if (device_ready(index, &d) != DAMA_OK) return NULL;
  void *p = NULL;
  if (cudaHostAlloc(&p, (size_t)(nbytes > 0 ? nbytes : 1), cudaHostAllocPortable) != cudaSuccess) {
    (void)cudaGetLastError();
    return NULL;
  }
  return p;
}

static void cuda_host_free(int32_t index, void *p, int64_t nbytes) {
  (void)nbytes;
  if (!p) return;
  cudaError_t e = cudaFreeHost(p);   /* waits for the copies that may still read it */
  if (e != cudaSuccess && index >= 0 && index < MAX_DEVICES) defer_error(&devices[index], "cudaFreeHost", e);
}

static dama_status cuda_event_create(int32_t index, void **event) {
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  cudaEvent_t e = NULL;
  DAMA_CUDA_TRY(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  *event = e;
  return DAMA_OK;
}

static void cuda_event_destroy(int32_t index, void *event) {
  cudaError_t e = cudaEventDestroy((cudaEvent_t)event);
  if (e != cudaSuccess && index >= 0 && index < MAX_DEVICES) defer_error(&devices[index], "cudaEventDestroy", e);
}

static dama_status cuda_event_record(int32_t index, void *event) {
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  DAMA_CUDA_TRY(cudaEventRecord((cudaEvent_t)event, d->stream));
  return DAMA_OK;
}

static dama_status cuda_event_wait(int32_t index, void *event) {
  if (index >= 0 && index < MAX_DEVICES && devices[index].capture) NO_CAPTURE(&devices[index], index, "an event wait");
  DAMA_CUDA_TRY(cudaEventSynchronize((cudaEvent_t)event));
  return DAMA_OK;
}

static dama_status cuda_empty_cache(int32_t index) {
  if (index < 0 || index >= cuda_count() || !atomic_load(&devices[index].ready)) return DAMA_OK;
  NO_CAPTURE(&devices[index], index, "empty_cache (cudaFree)");
  DAMA_CUDA_TRY(cudaSetDevice(index));
  dama_ca_empty_cache(devices[index].ca);   /* cudaFree waits for the device before it frees */
  return DAMA_OK;
}

static dama_status cuda_memory_info(int32_t index, int64_t *cached, int64_t *total, int64_t *free_bytes) {
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  dama_ca_stats st;
  dama_ca_get_stats(d->ca, &st);
  size_t f = 0, t = 0;
  DAMA_CUDA_TRY(cudaMemGetInfo(&f, &t));
  *cached = st.cached;
  *total = (int64_t)t;
  *free_bytes = (int64_t)f;
  return DAMA_OK;
}

static dama_status cuda_properties(int32_t index, dama_device_props *out) {
  struct cudaDeviceProp p;
  DAMA_CUDA_TRY(cudaGetDeviceProperties(&p, index));
  snprintf(out->name, sizeof out->name, "%s", p.name);
  out->total_memory = (int64_t)p.totalGlobalMem;
  out->major = p.major;
  out->minor = p.minor;
  out->multi_processor_count = p.multiProcessorCount;
  return DAMA_OK;
}

/* ---- what graph.c needs of a device ---- */

dama_status dama_cuda_device_begin_capture(int32_t index, dama_cuda_graph *g, uintptr_t pool, cudaStream_t *stream) {
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  if (d->capture) return dama_error(DAMA_ERR_DEVICE, "cuda:%d: a CUDA graph is already being captured there", (int)index);
  d->capture = g;
  d->pool = pool;
  *stream = d->stream;
  return DAMA_OK;
}

void dama_cuda_device_end_capture(int32_t index) {
  devices[index].capture = NULL;
  devices[index].pool = 0;
}

dama_status dama_cuda_device_stream(int32_t index, cudaStream_t *stream) {
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  *stream = d->stream;
  return DAMA_OK;
}

void dama_cuda_device_release_pool(int32_t index, uintptr_t pool, void *const *kept, int64_t nkept) {
  cuda_device *d = &devices[index];
  for (int64_t i = 0; i < nkept; i++) (void)dama_ca_free(d->ca, kept[i]);
  (void)dama_ca_release_stream(d->ca, pool);
}

dama_cuda_graph *dama_cuda_device_capture(int32_t index) {
  return index >= 0 && index < MAX_DEVICES ? devices[index].capture : NULL;
}

/* the op table: each op area fills its slots once (cuda_ops.h) */
static dama_backend_ops cuda_ops;

static dama_backend dama_backend_cuda = {
  .name = "cuda", .type = DAMA_CUDA, .host_visible = 0, .device_count = cuda_count,
  .alloc = cuda_alloc, .free = cuda_free, .copy_h2d = cuda_h2d, .copy_d2h = cuda_d2h, .copy_d2d = cuda_d2d,
  .synchronize = cuda_sync, .kernel_ptr = cuda_kernel_ptr,
  .ops = &cuda_ops,   /* filled at registration; NULL slots are refused by name in core/ */
  .host_alloc = cuda_host_alloc, .host_free = cuda_host_free, .copy_h2d_async = cuda_h2d_async,
  .event_create = cuda_event_create, .event_destroy = cuda_event_destroy, .event_record = cuda_event_record,
  .event_wait = cuda_event_wait, .empty_cache = cuda_empty_cache, .memory_info = cuda_memory_info,
  .info = cuda_info, .unavailable_reason = cuda_unavailable_reason, .properties = cuda_properties,
  .set_device = cuda_set_device,
};

static void fill_ops(void) {
#ifndef DAMA_CUDA_NO_OPS   /* the fake runtime of tests/cuda has no kernels: its table stays empty */
  dama_cuda_fill_ops_tensor(&cuda_ops);
  dama_cuda_fill_ops_reduce(&cuda_ops);
  dama_cuda_fill_ops_index(&cuda_ops);
  dama_cuda_fill_ops_mask(&cuda_ops);
  dama_cuda_fill_ops_nn(&cuda_ops);
  dama_cuda_fill_ops_gemm(&cuda_ops);
#endif
}

void dama_cuda_register(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, fill_ops);
  dama_backend_register(&dama_backend_cuda);
}

/* ---- mixed precision: the dtype GEMM inputs are cast to (dama.amp.set_precision) ---- */

static atomic_int autocast_dtype = DAMA_F32;

dama_status dama_cuda_set_autocast(int32_t dtype) {
  if (dtype != DAMA_F32 && dtype != DAMA_BF16 && dtype != DAMA_F16)
    return dama_error(DAMA_ERR_DTYPE, "cuda autocast: expected f32, bf16 or f16, got %s",
                      dama_dtype_name((dama_dtype)dtype));
  atomic_store(&autocast_dtype, dtype);
  return DAMA_OK;
}

int32_t dama_cuda_get_autocast(void) { return atomic_load(&autocast_dtype); }
int32_t dama_cuda_autocast(void) { return atomic_load_explicit(&autocast_dtype, memory_order_relaxed); }

/* ---- for Lua (dama.cuda.memory_stats) and the GPU tests ---- */

const char *dama_cuda_allocator_stat_names(void) {
  return "allocated,requested,reserved,cached,peak_allocated,peak_reserved,active_blocks,segments,raw_allocs,"
         "raw_frees,cache_hits,oom_retries,ooms";
}

int32_t dama_cuda_allocator_stats(int32_t index, int64_t *out, int32_t n) {
  if (index < 0 || index >= cuda_count() || !out || n <= 0) return 0;
  dama_ca_stats st;
  memset(&st, 0, sizeof st);
  if (atomic_load(&devices[index].ready)) dama_ca_get_stats(devices[index].ca, &st);
  const int64_t v[13] = {st.allocated, st.requested, st.reserved, st.cached, st.peak_allocated, st.peak_reserved,
                         st.active_blocks, st.segments, st.raw_allocs, st.raw_frees, st.cache_hits, st.oom_retries,
                         st.ooms};
  int32_t k = n < 13 ? n : 13;
  memcpy(out, v, (size_t)k * sizeof *out);
  return k;
}

dama_status dama_cuda_selftest(int32_t index, uint32_t n, uint32_t seed) {
  cuda_device *d;
  DAMA_TRY(device_ready(index, &d));
  int binary = 0, ptx = 0;
  DAMA_CUDA_TRY(dama_cuda_probe_attributes(&binary, &ptx));
  uint32_t *dev = cuda_alloc(index, (int64_t)n * 4);
  uint32_t *host = malloc((size_t)n * 4 + 4);
  dama_status s = DAMA_OK;
  if (!dev || !host) s = dama_error(DAMA_ERR_OOM, "cuda_selftest: out of memory for %u words", n);
  if (s == DAMA_OK) {
    cudaError_t e = dama_cuda_probe_fill(d->stream, dev, n, seed);
    if (e == cudaSuccess) e = cudaMemcpyAsync(host, dev, (size_t)n * 4, cudaMemcpyDeviceToHost, d->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(d->stream);
    if (e != cudaSuccess) s = dama_cuda_status(e, "the probe kernel and its copy back", __FILE__, __LINE__);
  }
  for (uint32_t i = 0; s == DAMA_OK && i < n; i++)
    if (host[i] != dama_probe_pattern(i, seed))
      s = dama_error(DAMA_ERR_DEVICE, "cuda_selftest: word %u is %#x, expected %#x (code sm_%d, PTX %d)", i, host[i],
                     dama_probe_pattern(i, seed), binary, ptx);
  free(host);
  if (dev) cuda_free(index, dev, (int64_t)n * 4);
  return s;
}
