/* dialect.cuh — what every kernel header in cuda/kernels/ includes first: one kernel source for nvcc and for the CPU
 * interpreter of the tests (tests/cuda_interp; its README.md is the dialect: what a kernel may use).
 *
 * nvcc: the CUDA runtime and bf16/fp16 headers, and the dialect's macros in their CUDA form.
 * DAMA_CUDA_INTERP (the interpreter build, host C++): tests/cuda_interp/cuda_interp.h provides the same names.
 *
 *   DAMA_LAUNCH(kernel, grid, block, shmem, stream, args...)   kernel<<<grid, block, shmem, stream>>>(args...)
 *   DAMA_SHARED(float, tile, [32][33]);                        __shared__ float tile[32][33];
 *   DAMA_DYNAMIC_SHARED(float, buf);                           extern __shared__ float buf[];  (16-byte aligned)
 *
 * The kernel argument of DAMA_LAUNCH may not contain a top-level comma (name a two-parameter template instance
 * through an alias). Everything here is header-only: kernels are `static __global__` or templates, launchers are
 * `static inline` host functions returning cudaGetLastError(), so any number of .cu files may include them. */
#ifndef DAMA_CUDA_DIALECT_CUH
#define DAMA_CUDA_DIALECT_CUH

#if defined(DAMA_CUDA_INTERP)
#include "cuda_interp.h"
#elif defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#define DAMA_LAUNCH(kernel, grid, block, shmem, stream, ...) \
  kernel<<<(grid), (block), (shmem), (stream)>>>(__VA_ARGS__)
#define DAMA_SHARED(T, name, dims) __shared__ T name dims
#define DAMA_DYNAMIC_SHARED(T, name)                              \
  extern __shared__ __align__(16) unsigned char dama_dynamic_smem_[]; \
  T *const name = reinterpret_cast<T *>(dama_dynamic_smem_)
#else
#error "cuda/kernels: compile with nvcc, or with DAMA_CUDA_INTERP defined and tests/cuda_interp on the include path"
#endif

#include <stdint.h>

#include "core/dama_math.h"

namespace dama_cuda {

/* Threads per block of the element-wise and grid-stride kernels. */
static const unsigned k_block = 256;

/* Blocks for a grid-stride loop over n elements with `block` threads each: enough to cover n, at most `cap`. */
static inline unsigned grid_stride_blocks(int64_t n, unsigned block, unsigned cap = 4096) {
  const int64_t b = (n + (int64_t)block - 1) / (int64_t)block;
  return b < 1 ? 1u : (b > (int64_t)cap ? cap : (unsigned)b);
}

/* The first index and the stride of a 1-D grid-stride loop. */
__device__ __forceinline__ int64_t grid_first(void) { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_step(void) { return (int64_t)blockDim.x * gridDim.x; }

/* atomicMax for floats (CUDA has none): non-negative floats order as signed ints, negative ones reversed as unsigned
 * ints. Not for NaN. Returns the old value. */
__device__ __forceinline__ float atomic_max_f32(float *addr, float value) {
  return value >= 0.0f ? __int_as_float(atomicMax(reinterpret_cast<int *>(addr), __float_as_int(value)))
                       : __uint_as_float(atomicMin(reinterpret_cast<unsigned int *>(addr), __float_as_uint(value)));
}

} // namespace dama_cuda

#endif
