/* elementwise.cuh — grid-stride element-wise kernels: fill, scale, scale-add (the EMA update), GELU and ReLU
 * forward/backward.
 * The per-element math is core/dama_math.h's, the CPU kernels' own (runtime/cpu/nn_act.c, nn_optim.c). */
#ifndef DAMA_CUDA_ELEMENTWISE_CUH
#define DAMA_CUDA_ELEMENTWISE_CUH

#include "dialect.cuh"

namespace dama_cuda {

static __global__ void fill_f32_kernel(float *__restrict__ x, float value, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) x[i] = value;
}

static __global__ void scale_f32_kernel(float *__restrict__ x, float s, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) x[i] *= s;
}

/* y = a * y + b * x */
static __global__ void scale_add_f32_kernel(float *__restrict__ y, const float *__restrict__ x, float a, float b,
                                            int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) y[i] = dama_ema_elem(y[i], x[i], a, b);
}

/* out may be inp (no __restrict__ where the CPU kernel allows in place) */
static __global__ void gelu_forward_kernel(float *out, const float *inp, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) out[i] = dama_gelu(inp[i]);
}

/* dinp += dout * GELU'(inp) (accumulates, as the CPU kernel) */
static __global__ void gelu_backward_kernel(float *__restrict__ dinp, const float *__restrict__ inp,
                                            const float *__restrict__ dout, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) dinp[i] += dout[i] * dama_gelu_grad(inp[i]);
}

/* out = max(inp, 0) as nn_act.c: `inp > 0 ? inp : 0` (NaN gives 0); out may be inp */
static __global__ void relu_forward_kernel(float *out, const float *inp, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

/* dinp += dout where the forward output is positive (accumulates, as the CPU kernel) */
static __global__ void relu_backward_kernel(float *__restrict__ dinp, const float *__restrict__ out,
                                            const float *__restrict__ dout, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_step()) dinp[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}

/* ---- launchers: the backend table's argument order, plus the stream; n <= 0 does nothing ---- */
static inline cudaError_t fill_f32(float *x, float value, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(fill_f32_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, x, value, n);
  return cudaGetLastError();
}

/* as dama_scale_inplace: x *= s */
static inline cudaError_t scale_inplace(float *x, int64_t n, float s, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(scale_f32_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, x, s, n);
  return cudaGetLastError();
}

static inline cudaError_t scale_add_f32(float *y, const float *x, float a, float b, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(scale_add_f32_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, y, x, a, b, n);
  return cudaGetLastError();
}

/* as dama_ema_update: ema = momentum * ema + (1 - momentum) * p */
static inline cudaError_t ema_update(float *ema, const float *p, int64_t n, float momentum, cudaStream_t stream) {
  return scale_add_f32(ema, p, momentum, 1.0f - momentum, n, stream);
}

static inline cudaError_t gelu_forward(float *out, const float *inp, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(gelu_forward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, out, inp, n);
  return cudaGetLastError();
}

static inline cudaError_t gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n,
                                        cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(gelu_backward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, dinp, inp, dout, n);
  return cudaGetLastError();
}

static inline cudaError_t relu_forward(float *out, const float *inp, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(relu_forward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, out, inp, n);
  return cudaGetLastError();
}

static inline cudaError_t relu_backward(float *dinp, const float *out, const float *dout, int64_t n,
                                        cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(relu_backward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, dinp, out, dout, n);
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
