/* The fake CUDA runtime (cuda_runtime_api.h here says what it is and is not). Every call checks what a real runtime
 * would refuse and a careless caller might get wrong: copies must go in the direction their kind names, inside live
 * allocations; frees must name a live allocation; an unknown stream, event or device is an error. */
#define _POSIX_C_SOURCE 200809L
#include "cuda_runtime_api.h"
#include "probe.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG ((uintptr_t)1 << 62)
#define MAX_DEV 8

typedef struct { uintptr_t addr; size_t size; int device; int host; } allocation;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int ndev;
static size_t capacity;
static size_t in_use[MAX_DEV];
static allocation *allocs;
static size_t nallocs, cap_allocs;
static _Thread_local cudaError_t last_error;
static _Thread_local int current;

static struct { const char *name; long n; } calls[32];

struct fake_stream { int device; };
struct fake_event { int recorded; };

static void setup(void) {
  const char *d = getenv("FAKE_CUDA_DEVICES"), *m = getenv("FAKE_CUDA_MEMORY");
  ndev = d ? atoi(d) : 1;
  if (ndev > MAX_DEV) ndev = MAX_DEV;
  capacity = m ? (size_t)strtoull(m, NULL, 10) : (size_t)256 << 20;
}

static void count(const char *name) {
  pthread_mutex_lock(&mu);
  for (int i = 0; i < 32; i++) {
    if (!calls[i].name) calls[i].name = name;
    if (calls[i].name == name || strcmp(calls[i].name, name) == 0) { calls[i].n++; break; }
  }
  pthread_mutex_unlock(&mu);
}

long fake_cuda_calls(const char *name) {
  long n = 0;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < 32 && calls[i].name; i++)
    if (strcmp(calls[i].name, name) == 0) n = calls[i].n;
  pthread_mutex_unlock(&mu);
  return n;
}

static cudaError_t fail(cudaError_t e) { last_error = e; return e; }

#define ENTER(name) do { pthread_once(&once, setup); count(name); } while (0)

/* the allocation holding [p, p + n), or NULL */
static allocation *find(uintptr_t p, size_t n, int host) {
  for (size_t i = 0; i < nallocs; i++)
    if (allocs[i].host == host && p >= allocs[i].addr && p + n <= allocs[i].addr + allocs[i].size) return &allocs[i];
  return NULL;
}

static int add_alloc(uintptr_t addr, size_t size, int device, int host) {
  if (nallocs == cap_allocs) {
    size_t cap = cap_allocs ? 2 * cap_allocs : 64;
    allocation *a = realloc(allocs, cap * sizeof *a);
    if (!a) return -1;
    allocs = a;
    cap_allocs = cap;
  }
  allocs[nallocs++] = (allocation){addr, size, device, host};
  return 0;
}

static int remove_alloc(uintptr_t addr, int host, allocation *out) {
  for (size_t i = 0; i < nallocs; i++)
    if (allocs[i].addr == addr && allocs[i].host == host) {
      *out = allocs[i];
      allocs[i] = allocs[--nallocs];
      return 0;
    }
  return -1;
}

cudaError_t cudaGetDeviceCount(int *n) {
  ENTER("cudaGetDeviceCount");
  *n = 0;
  if (ndev <= 0) return fail(cudaErrorNoDevice);
  *n = ndev;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int *v) { ENTER("cudaDriverGetVersion"); *v = 13000; return cudaSuccess; }

cudaError_t cudaGetLastError(void) { cudaError_t e = last_error; last_error = cudaSuccess; return e; }

const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
  }
  return "unknown error";
}

const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
  }
  return "cudaErrorUnknown";
}

cudaError_t cudaSetDevice(int device) {
  ENTER("cudaSetDevice");
  if (device < 0 || device >= ndev) return fail(cudaErrorInvalidDevice);
  current = device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device) {
  ENTER("cudaGetDeviceProperties");
  if (device < 0 || device >= ndev) return fail(cudaErrorInvalidDevice);
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "fake CUDA device %d (host memory)", device);
  p->totalGlobalMem = capacity;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
  ENTER("cudaMemGetInfo");
  pthread_mutex_lock(&mu);
  *total = capacity;
  *free_bytes = capacity - in_use[current];
  pthread_mutex_unlock(&mu);
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
  ENTER("cudaStreamCreateWithFlags");
  if (flags != cudaStreamNonBlocking && flags != 0) return fail(cudaErrorInvalidValue);
  *s = malloc(sizeof **s);
  if (!*s) return fail(cudaErrorMemoryAllocation);
  (*s)->device = current;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t s) { ENTER("cudaStreamDestroy"); free(s); return cudaSuccess; }

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  ENTER("cudaStreamSynchronize");
  return s ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

cudaError_t cudaMalloc(void **p, size_t bytes) {
  ENTER("cudaMalloc");
  *p = NULL;
  pthread_mutex_lock(&mu);
  if (bytes == 0 || in_use[current] + bytes > capacity) { pthread_mutex_unlock(&mu); return fail(cudaErrorMemoryAllocation); }
  void *h = malloc(bytes);
  if (!h || add_alloc((uintptr_t)h + TAG, bytes, current, 0) != 0) {
    free(h);
    pthread_mutex_unlock(&mu);
    return fail(cudaErrorMemoryAllocation);
  }
  in_use[current] += bytes;
  pthread_mutex_unlock(&mu);
  *p = (void *)((uintptr_t)h + TAG);
  return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
  ENTER("cudaFree");
  if (!p) return cudaSuccess;
  allocation a;
  pthread_mutex_lock(&mu);
  int r = remove_alloc((uintptr_t)p, 0, &a);
  if (r == 0) in_use[a.device] -= a.size;
  pthread_mutex_unlock(&mu);
  if (r != 0) return fail(cudaErrorInvalidValue);
  free((void *)((uintptr_t)p - TAG));
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags) {
  ENTER("cudaHostAlloc");
  (void)flags;
  *p = malloc(bytes ? bytes : 1);
  if (!*p) return fail(cudaErrorMemoryAllocation);
  pthread_mutex_lock(&mu);
  int r = add_alloc((uintptr_t)*p, bytes, current, 1);
  pthread_mutex_unlock(&mu);
  if (r != 0) { free(*p); *p = NULL; return fail(cudaErrorMemoryAllocation); }
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void *p) {
  ENTER("cudaFreeHost");
  allocation a;
  pthread_mutex_lock(&mu);
  int r = remove_alloc((uintptr_t)p, 1, &a);
  pthread_mutex_unlock(&mu);
  if (r != 0) return fail(cudaErrorInvalidValue);
  free(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind kind, cudaStream_t s) {
  ENTER("cudaMemcpyAsync");
  if (!s) return fail(cudaErrorInvalidResourceHandle);
  if (n == 0) return cudaSuccess;
  int dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  int src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  pthread_mutex_lock(&mu);
  int ok = (!dst_dev || find((uintptr_t)dst, n, 0)) && (!src_dev || find((uintptr_t)src, n, 0)) &&
           (dst_dev || (uintptr_t)dst < TAG) && (src_dev || (uintptr_t)src < TAG);
  pthread_mutex_unlock(&mu);
  if (!ok) return fail(cudaErrorInvalidValue);   /* a device pointer where a host one belongs, or the reverse */
  memmove(dst_dev ? (void *)((uintptr_t)dst - TAG) : dst, src_dev ? (const void *)((uintptr_t)src - TAG) : src, n);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags) {
  ENTER("cudaEventCreateWithFlags");
  (void)flags;
  *e = calloc(1, sizeof **e);
  return *e ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}

cudaError_t cudaEventDestroy(cudaEvent_t e) { ENTER("cudaEventDestroy"); free(e); return cudaSuccess; }

cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  ENTER("cudaEventRecord");
  if (!e || !s) return fail(cudaErrorInvalidResourceHandle);
  e->recorded = 1;
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  ENTER("cudaEventSynchronize");
  return e ? cudaSuccess : fail(cudaErrorInvalidResourceHandle);
}

size_t fake_cuda_bytes_in_use(int device) {
  pthread_mutex_lock(&mu);
  size_t n = device >= 0 && device < MAX_DEV ? in_use[device] : 0;
  pthread_mutex_unlock(&mu);
  return n;
}

/* the probe "kernel": the same pattern, written by a host loop */
cudaError_t dama_cuda_probe_fill(cudaStream_t stream, uint32_t *out, uint32_t n, uint32_t seed) {
  ENTER("dama_cuda_probe_fill");
  if (!stream) return fail(cudaErrorInvalidResourceHandle);
  if (n == 0) return cudaSuccess;
  pthread_mutex_lock(&mu);
  int ok = find((uintptr_t)out, (size_t)n * 4, 0) != NULL;
  pthread_mutex_unlock(&mu);
  if (!ok) return fail(cudaErrorInvalidValue);
  uint32_t *h = (uint32_t *)((uintptr_t)out - TAG);
  for (uint32_t i = 0; i < n; i++) h[i] = dama_probe_pattern(i, seed);
  return cudaSuccess;
}

cudaError_t dama_cuda_probe_attributes(int *binary_version, int *ptx_version) {
  ENTER("dama_cuda_probe_attributes");
  *binary_version = 90;
  *ptx_version = 90;
  return cudaSuccess;
}
