/* layernorm.cuh — LayerNorm over the last dim of [N, C], forward and backward, as runtime/cpu/nn_norm.c: the mean,
 * then the biased variance from the centred values (two passes over the row), rstd = 1 / sqrtf(var + eps); weight
 * and bias optional (NULL). Forward and the input gradient run one warp per row; the weight and bias gradients are a
 * column reduction (a 32 x 8 block owns 32 columns and sums all rows, in a fixed order: the same bits every run).
 * Gradients accumulate (+=), as the CPU kernels. */
#ifndef DAMA_CUDA_LAYERNORM_CUH
#define DAMA_CUDA_LAYERNORM_CUH

#include "reduce.cuh"

namespace dama_cuda {

/* out may be inp: each lane reads its columns before it writes them, as in the CPU kernel */
static __global__ void layernorm_forward_kernel(float *out, float *__restrict__ mean, float *__restrict__ rstd,
                                                const float *inp,
                                                const float *__restrict__ weight, const float *__restrict__ bias,
                                                int64_t N, int64_t C, float eps) {
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < N; row += warps) {
    const float *x = inp + row * C;
    float *o = out + row * C;
    float s = 0.0f;
    for (int64_t c = lane; c < C; c += 32) s += x[c];
    const float m = warp_sum(s) / (float)C;
    float v = 0.0f;
    for (int64_t c = lane; c < C; c += 32) {
      const float d = x[c] - m;
      v += d * d;
    }
    const float r = 1.0f / sqrtf(warp_sum(v) / (float)C + eps);
    for (int64_t c = lane; c < C; c += 32) {
      float y = (x[c] - m) * r;
      if (weight) y = y * weight[c];
      if (bias) y = y + bias[c];
      o[c] = y;
    }
    if (lane == 0) {
      mean[row] = m;
      rstd[row] = r;
    }
  }
}

/* dinp += (dn - mean(dn) - xhat * mean(dn * xhat)) * rstd, dn = dout * weight (or dout) */
static __global__ void layernorm_backward_input_kernel(float *__restrict__ dinp, const float *__restrict__ dout,
                                                       const float *__restrict__ inp, const float *__restrict__ weight,
                                                       const float *__restrict__ mean, const float *__restrict__ rstd,
                                                       int64_t N, int64_t C) {
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < N; row += warps) {
    const float *x = inp + row * C, *g = dout + row * C;
    float *dx = dinp + row * C;
    const float m = mean[row], r = rstd[row];
    float sum_dn = 0.0f, sum_dn_xh = 0.0f;
    for (int64_t c = lane; c < C; c += 32) {
      const float dn = weight ? g[c] * weight[c] : g[c];
      sum_dn += dn;
      sum_dn_xh += dn * (x[c] - m) * r;
    }
    const float a = warp_sum(sum_dn) / (float)C, b = warp_sum(sum_dn_xh) / (float)C;
    for (int64_t c = lane; c < C; c += 32) {
      const float dn = weight ? g[c] * weight[c] : g[c];
      dx[c] += (dn - a - (x[c] - m) * r * b) * r;
    }
  }
}

static const unsigned k_ln_cols = 32, k_ln_rows = 8;

/* block (32, 8): thread (tx, ty) sums rows ty, ty + 8, ... of column blockIdx.x * 32 + tx; then ty == 0 adds the
 * eight partial sums in order. Threads past the last column still reach the barrier. */
static __global__ void layernorm_backward_params_kernel(float *__restrict__ dweight, float *__restrict__ dbias,
                                                        const float *__restrict__ dout, const float *__restrict__ inp,
                                                        const float *__restrict__ mean,
                                                        const float *__restrict__ rstd, int64_t N, int64_t C) {
  DAMA_SHARED(float, part_w, [k_ln_rows][k_ln_cols + 1]);
  DAMA_SHARED(float, part_b, [k_ln_rows][k_ln_cols + 1]);
  const unsigned tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = (int64_t)blockIdx.x * k_ln_cols + tx;
  float aw = 0.0f, ab = 0.0f;
  if (c < C) {
    for (int64_t i = ty; i < N; i += k_ln_rows) {
      const float g = dout[i * C + c];
      aw += g * (inp[i * C + c] - mean[i]) * rstd[i];
      ab += g;
    }
  }
  part_w[ty][tx] = aw;
  part_b[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && c < C) {
    float sw = 0.0f, sb = 0.0f;
    for (unsigned k = 0; k < k_ln_rows; k++) {
      sw += part_w[k][tx];
      sb += part_b[k][tx];
    }
    if (dweight) dweight[c] += sw;
    if (dbias) dbias[c] += sb;
  }
}

/* as dama_layernorm_forward (out, mean, rstd written; weight, bias may be NULL) */
static inline cudaError_t layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                            const float *bias, int64_t N, int64_t C, float eps, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  const int64_t rows_per_block = k_block / 32, b = (N + rows_per_block - 1) / rows_per_block;
  const unsigned g = b > (int64_t)(1u << 20) ? (1u << 20) : (unsigned)b;
  DAMA_LAUNCH(layernorm_forward_kernel, g, k_block, 0, stream, out, mean, rstd, inp, weight, bias, N, C, eps);
  return cudaGetLastError();
}

/* as dama_layernorm_backward: each of dinp, dweight, dbias may be NULL (not wanted) */
static inline cudaError_t layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                             const float *inp, const float *weight, const float *mean,
                                             const float *rstd, int64_t N, int64_t C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  if (dinp) {
    const int64_t rows_per_block = k_block / 32, b = (N + rows_per_block - 1) / rows_per_block;
    const unsigned g = b > (int64_t)(1u << 20) ? (1u << 20) : (unsigned)b;
    DAMA_LAUNCH(layernorm_backward_input_kernel, g, k_block, 0, stream, dinp, dout, inp, weight, mean, rstd, N, C);
  }
  if (dweight || dbias) {
    const unsigned g = (unsigned)((C + k_ln_cols - 1) / k_ln_cols);
    DAMA_LAUNCH(layernorm_backward_params_kernel, g, dim3(k_ln_cols, k_ln_rows), 0, stream, dweight, dbias, dout, inp,
                mean, rstd, N, C);
  }
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
