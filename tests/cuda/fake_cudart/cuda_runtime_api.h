/* A fake of the CUDA runtime's C API: just the calls cuda/backend_cuda.c and cuda/probe.h make, over host memory, so
 * that the CUDA backend's host code (its table, the caching allocator behind cudaMalloc, copies, pinned memory,
 * events, out-of-memory handling, the Lua module, the GPU tests) runs in CI without a GPU: ctest's fakecuda.* tests.
 * It is not a GPU and proves nothing about one: every copy runs at once, streams and events are bookkeeping, and the
 * probe "kernel" is a host loop (fake_cudart.c). Device memory is host memory at addresses moved by 2^62 (as the sim
 * device does), so host code that dereferences a device pointer faults at once.
 *
 * Behaviour is set by the environment, read at the first call:
 *   FAKE_CUDA_DEVICES  number of devices (default 1; 0 = cudaGetDeviceCount fails with cudaErrorNoDevice)
 *   FAKE_CUDA_MEMORY   bytes of memory per device (default 256 MiB); cudaMalloc beyond it fails */
#ifndef FAKE_CUDA_RUNTIME_API_H
#define FAKE_CUDA_RUNTIME_API_H

#include <stddef.h>

#define CUDART_VERSION 13000
#define DAMA_FAKE_CUDART 1

typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInsufficientDriver = 35,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400
} cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3
};

typedef struct fake_stream *cudaStream_t;
typedef struct fake_event *cudaEvent_t;

#define cudaStreamNonBlocking 0x01
#define cudaEventDisableTiming 0x02
#define cudaHostAllocPortable 0x01

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major, minor, multiProcessorCount;
};

struct cudaFuncAttributes { int binaryVersion, ptxVersion; };

#ifdef __cplusplus
extern "C" {
#endif
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaGetLastError(void);
const char *cudaGetErrorString(cudaError_t e);
const char *cudaGetErrorName(cudaError_t e);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int flags);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
/* for tests: bytes of fake device memory live on a device, and calls made */
size_t fake_cuda_bytes_in_use(int device);
long fake_cuda_calls(const char *name);
#ifdef __cplusplus
}
#endif

#endif
