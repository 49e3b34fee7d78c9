/* dropout.cuh — dropout with a float or a byte keep-mask, and drop-path (one keep value per sample), forward and
 * backward, grid-stride, as runtime/cpu/nn_act.c: out = inp * mask * scale, the backward accumulates (+=) and may
 * not alias; the forward may run in place (each element is read before it is written, by the same thread). */
#ifndef DAMA_CUDA_DROPOUT_CUH
#define DAMA_CUDA_DROPOUT_CUH

#include "dialect.cuh"

namespace dama_cuda {

static __global__ void dropout_forward_kernel(float *out, const float *inp, const float *__restrict__ mask, float scale,
                                              int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) out[i] = inp[i] * mask[i] * scale;
}

static __global__ void dropout_backward_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                               const float *__restrict__ mask, float scale, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) dinp[i] += dout[i] * mask[i] * scale;
}

static __global__ void dropout_u8_forward_kernel(float *out, const float *inp, const uint8_t *__restrict__ mask,
                                                 float scale, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) out[i] = mask[i] ? inp[i] * scale : 0.0f;
}

static __global__ void dropout_u8_backward_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                                  const uint8_t *__restrict__ mask, float scale, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) dinp[i] += mask[i] ? dout[i] * scale : 0.0f;
}

/* [N, M] rows scaled by mask[row] * scale. I: the index type (32-bit when N * M fits, so the division by M is
 * cheap on the GPU). */
template <class I>
static __global__ void drop_path_forward_kernel(float *out, const float *inp, const float *__restrict__ mask,
                                                float scale, I total, I M) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)blockDim.x * (I)gridDim.x) {
    const float s = mask[i / M] * scale;
    out[i] = inp[i] * s;
  }
}

template <class I>
static __global__ void drop_path_backward_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                                 const float *__restrict__ mask, float scale, I total, I M) {
  for (I i = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; i < total; i += (I)blockDim.x * (I)gridDim.x) {
    const float s = mask[i / M] * scale;
    dinp[i] += dout[i] * s;
  }
}

/* ---- launchers (the table's argument order plus the stream; empty sizes do nothing) ---- */
static inline cudaError_t dropout_forward(float *out, const float *inp, const float *mask, float scale, int64_t n,
                                          cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(dropout_forward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, out, inp, mask, scale, n);
  return cudaGetLastError();
}

static inline cudaError_t dropout_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t n,
                                           cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(dropout_backward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, dinp, dout, mask, scale,
              n);
  return cudaGetLastError();
}

static inline cudaError_t dropout_u8_forward(float *out, const float *inp, const uint8_t *mask, float scale, int64_t n,
                                             cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(dropout_u8_forward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, out, inp, mask, scale,
              n);
  return cudaGetLastError();
}

static inline cudaError_t dropout_u8_backward(float *dinp, const float *dout, const uint8_t *mask, float scale,
                                              int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(dropout_u8_backward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, dinp, dout, mask,
              scale, n);
  return cudaGetLastError();
}

static inline cudaError_t drop_path_forward(float *out, const float *inp, const float *mask, float scale, int64_t N,
                                            int64_t M, cudaStream_t stream) {
  if (N <= 0 || M <= 0) return cudaSuccess;
  const int64_t total = N * M;
  const unsigned g = grid_stride_blocks(total, k_block);
  if (total <= (int64_t)INT32_MAX - (int64_t)g * k_block) {
    DAMA_LAUNCH(drop_path_forward_kernel<int32_t>, g, k_block, 0, stream, out, inp, mask, scale, (int32_t)total,
                (int32_t)M);
  } else {
    DAMA_LAUNCH(drop_path_forward_kernel<int64_t>, g, k_block, 0, stream, out, inp, mask, scale, total, M);
  }
  return cudaGetLastError();
}

static inline cudaError_t drop_path_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t N,
                                             int64_t M, cudaStream_t stream) {
  if (N <= 0 || M <= 0) return cudaSuccess;
  const int64_t total = N * M;
  const unsigned g = grid_stride_blocks(total, k_block);
  if (total <= (int64_t)INT32_MAX - (int64_t)g * k_block) {
    DAMA_LAUNCH(drop_path_backward_kernel<int32_t>, g, k_block, 0, stream, dinp, dout, mask, scale, (int32_t)total,
                (int32_t)M);
  } else {
    DAMA_LAUNCH(drop_path_backward_kernel<int64_t>, g, k_block, 0, stream, dinp, dout, mask, scale, total, M);
  }
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
