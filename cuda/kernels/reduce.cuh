/* reduce.cuh — warp and block reductions (warp shuffles, then shared memory across warps) and a deterministic
 * two-pass sum of a float array (per-block partial sums, then one block over the partials: the same bits on every
 * run, unlike an atomicAdd finish). */
#ifndef DAMA_CUDA_REDUCE_CUH
#define DAMA_CUDA_REDUCE_CUH

#include "dialect.cuh"

namespace dama_cuda {

/* Sum / max over the 32 lanes of a full warp; every lane gets the same bits (a butterfly: lane l and l^o add the
 * same two values). */
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
/* NaN-ignoring like the CPU's `x > m ? x : m` scan from -INFINITY. */
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) {
    const float w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

/* Sum / max over a 1-D block (blockDim.x a multiple of 32), returned to every thread. Every thread must call it
 * (it holds two __syncthreads). scratch: 32 floats of shared memory, free again when the call returns. */
__device__ __forceinline__ float block_sum(float v, float *scratch) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = warp_sum(lane < nwarps ? scratch[lane] : 0.0f); /* every warp reduces the warp sums: a broadcast */
  __syncthreads();
  return v;
}
__device__ __forceinline__ float block_max(float v, float *scratch) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = warp_max(lane < nwarps ? scratch[lane] : -INFINITY);
  __syncthreads();
  return v;
}

/* partials[blockIdx.x] = the sum of this block's grid-stride share of x[0, n) */
static __global__ void sum_partials_kernel(float *__restrict__ partials, const float *__restrict__ x, int64_t n) {
  DAMA_SHARED(float, scratch, [32]);
  float acc = 0.0f;
  for (int64_t i = grid_first(); i < n; i += grid_step()) acc += x[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
}

static const unsigned k_sum_max_blocks = 1024;

/* Blocks of the first pass of sum_f32, and so the floats of workspace it needs (0: one pass, no workspace). */
static inline unsigned sum_f32_blocks(int64_t n) { return grid_stride_blocks(n, k_block, k_sum_max_blocks); }
static inline int64_t sum_f32_workspace(int64_t n) { return sum_f32_blocks(n) > 1 ? sum_f32_blocks(n) : 0; }

/* *out = sum of x[0, n) in float (0 for n <= 0); work: sum_f32_workspace(n) floats of device memory. */
static inline cudaError_t sum_f32(float *out, const float *x, int64_t n, float *work, cudaStream_t stream) {
  const unsigned g = sum_f32_blocks(n);
  if (g == 1) {
    DAMA_LAUNCH(sum_partials_kernel, 1, k_block, 0, stream, out, x, n < 0 ? 0 : n);
    return cudaGetLastError();
  }
  DAMA_LAUNCH(sum_partials_kernel, g, k_block, 0, stream, work, x, n);
  DAMA_LAUNCH(sum_partials_kernel, 1, k_block, 0, stream, out, work, (int64_t)g);
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
