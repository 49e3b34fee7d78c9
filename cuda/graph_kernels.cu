// graph_kernels.cu — the kernel of CUDA graph replays: the generator words a captured RNG op reads.
#include "kernels/dialect.cuh"
#include "graph_launch.h"

static __global__ void store_u64x2_kernel(uint64_t *dst, uint64_t a, uint64_t b) {
  if (threadIdx.x == 0) {
    dst[0] = a;
    dst[1] = b;
  }
}

extern "C" cudaError_t dama_cuda_store_u64x2(uint64_t *dst, uint64_t a, uint64_t b, cudaStream_t stream) {
  DAMA_LAUNCH(store_u64x2_kernel, 1, 32, 0, stream, dst, a, b);
  return cudaGetLastError();
}
