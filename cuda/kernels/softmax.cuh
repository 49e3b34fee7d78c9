/* softmax.cuh — softmax over the last dim of an [N, C] row-major array, as runtime/cpu/nn_act.c: row max, then
 * e = dama_vexpf(x - max) (the CPU's exp), then e * (1 / sum). Two forward shapes: one warp per row (rows up to a
 * few thousand columns; the attention rows of a ViT have 13..65) and one block per row (long rows); and the backward
 * dinp += y * (dout - sum(y * dout)) with one warp per row. In place (out == inp) works: each element is read before
 * it is written, by the same thread. */
#ifndef DAMA_CUDA_SOFTMAX_CUH
#define DAMA_CUDA_SOFTMAX_CUH

#include "reduce.cuh"

namespace dama_cuda {

/* Rows per block of the warp-per-row kernels: k_block / 32. The row index is warp-uniform, so whole warps take or
 * skip a row together and the full-mask shuffles are always legal. */
static __global__ void softmax_forward_warp_kernel(float *out, const float *inp, int64_t N, int64_t C) {
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < N; row += warps) {
    const float *x = inp + row * C;
    float *o = out + row * C;
    float mx = -INFINITY;
    for (int64_t c = lane; c < C; c += 32) mx = x[c] > mx ? x[c] : mx;
    mx = warp_max(mx);
    float s = 0.0f;
    for (int64_t c = lane; c < C; c += 32) {
      const float e = dama_vexpf(x[c] - mx);
      o[c] = e;
      s += e;
    }
    const float inv = 1.0f / warp_sum(s);
    for (int64_t c = lane; c < C; c += 32) o[c] *= inv;
  }
}

static __global__ void softmax_forward_block_kernel(float *out, const float *inp, int64_t N, int64_t C) {
  DAMA_SHARED(float, scratch, [32]);
  for (int64_t row = blockIdx.x; row < N; row += gridDim.x) { /* block-uniform: the barriers are reached by all */
    const float *x = inp + row * C;
    float *o = out + row * C;
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) mx = x[c] > mx ? x[c] : mx;
    mx = block_max(mx, scratch);
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
      const float e = dama_vexpf(x[c] - mx);
      o[c] = e;
      s += e;
    }
    const float inv = 1.0f / block_sum(s, scratch);
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) o[c] *= inv;
  }
}

static __global__ void softmax_backward_warp_kernel(float *dinp, const float *out, const float *dout, int64_t N,
                                                    int64_t C) {
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < N; row += warps) {
    const float *y = out + row * C, *g = dout + row * C;
    float *dx = dinp + row * C;
    float s = 0.0f;
    for (int64_t c = lane; c < C; c += 32) s += y[c] * g[c];
    s = warp_sum(s);
    for (int64_t c = lane; c < C; c += 32) dx[c] += y[c] * (g[c] - s);
  }
}

/* Rows at or below this many columns take the warp-per-row kernel. */
static const int64_t k_softmax_warp_max_cols = 1024;
static const unsigned k_softmax_max_blocks = 1u << 20;

static inline unsigned warp_rows_blocks(int64_t N) {
  const int64_t rows_per_block = k_block / 32;
  const int64_t b = (N + rows_per_block - 1) / rows_per_block;
  return b > (int64_t)k_softmax_max_blocks ? k_softmax_max_blocks : (unsigned)b;
}

static inline cudaError_t softmax_forward_warp(float *out, const float *inp, int64_t N, int64_t C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  DAMA_LAUNCH(softmax_forward_warp_kernel, warp_rows_blocks(N), k_block, 0, stream, out, inp, N, C);
  return cudaGetLastError();
}

static inline cudaError_t softmax_forward_block(float *out, const float *inp, int64_t N, int64_t C,
                                                cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  const unsigned g = N > (int64_t)k_softmax_max_blocks ? k_softmax_max_blocks : (unsigned)N;
  DAMA_LAUNCH(softmax_forward_block_kernel, g, k_block, 0, stream, out, inp, N, C);
  return cudaGetLastError();
}

/* as dama_softmax_forward */
static inline cudaError_t softmax_forward(float *out, const float *inp, int64_t N, int64_t C, cudaStream_t stream) {
  return C <= k_softmax_warp_max_cols ? softmax_forward_warp(out, inp, N, C, stream)
                                      : softmax_forward_block(out, inp, N, C, stream);
}

/* as dama_softmax_backward (accumulates into dinp) */
static inline cudaError_t softmax_backward(float *dinp, const float *out, const float *dout, int64_t N, int64_t C,
                                           cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  DAMA_LAUNCH(softmax_backward_warp_kernel, warp_rows_blocks(N), k_block, 0, stream, dinp, out, dout, N, C);
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
