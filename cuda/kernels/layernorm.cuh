/* layernorm.cuh — LayerNorm over the last dim of [N, C], forward and backward, as runtime/cpu/nn_norm.c: the mean,
 * then the biased variance from the centred values (two passes over the row), rstd = 1 / sqrtf(var + eps); weight
 * and bias optional (NULL). Forward and the input gradient run one warp per row; the weight and bias gradients are a
 * column reduction (a 32 x 8 block owns 32 columns and sums its rows, in a fixed order: the same bits every run). With
 * many rows (a ViT's B*T) the rows are cut into chunks that depend only on N: one block per (32 columns, chunk) writes
 * its partial sums, and a second pass adds the chunks in order (no atomics). Gradients accumulate (+=), as the CPU
 * kernels. */
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

/* block (32, 8) over columns blockIdx.x * 32 + tx and rows [blockIdx.y * rows, + rows) of [0, N): thread (tx, ty)
 * sums rows ty, ty + 8, ... of its column; then ty == 0 adds the eight partial sums in order and either adds them to
 * dweight / dbias (one chunk: part_w == NULL) or stores them as chunk blockIdx.y's partials part_w/part_b[y * C + c].
 * Threads past the last column still reach the barrier. */
static __global__ void layernorm_backward_params_kernel(float *__restrict__ dweight, float *__restrict__ dbias,
                                                        float *part_w, float *part_b,
                                                        const float *__restrict__ dout, const float *__restrict__ inp,
                                                        const float *__restrict__ mean,
                                                        const float *__restrict__ rstd, int64_t N, int64_t C,
                                                        int64_t rows) {
  DAMA_SHARED(float, acc_w, [k_ln_rows][k_ln_cols + 1]);
  DAMA_SHARED(float, acc_b, [k_ln_rows][k_ln_cols + 1]);
  const unsigned tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = (int64_t)blockIdx.x * k_ln_cols + tx;
  const int64_t r0 = (int64_t)blockIdx.y * rows, r1 = r0 + rows < N ? r0 + rows : N;
  float aw = 0.0f, ab = 0.0f;
  if (c < C) {
    for (int64_t i = r0 + ty; i < r1; i += k_ln_rows) {
      const float g = dout[i * C + c];
      aw += g * (inp[i * C + c] - mean[i]) * rstd[i];
      ab += g;
    }
  }
  acc_w[ty][tx] = aw;
  acc_b[ty][tx] = ab;
  __syncthreads();
  if (ty == 0 && c < C) {
    float sw = 0.0f, sb = 0.0f;
    for (unsigned k = 0; k < k_ln_rows; k++) {
      sw += acc_w[k][tx];
      sb += acc_b[k][tx];
    }
    if (part_w) {
      part_w[(int64_t)blockIdx.y * C + c] = sw;
      part_b[(int64_t)blockIdx.y * C + c] = sb;
    } else {
      if (dweight) dweight[c] += sw;
      if (dbias) dbias[c] += sb;
    }
  }
}

/* dweight[c] += sum over chunks r = 0, 1, ... of part_w[r * C + c] (in that order); the same for dbias */
static __global__ void layernorm_backward_params_finish_kernel(float *__restrict__ dweight, float *__restrict__ dbias,
                                                               const float *__restrict__ part_w,
                                                               const float *__restrict__ part_b, int64_t chunks,
                                                               int64_t C) {
  for (int64_t c = grid_first(); c < C; c += grid_step()) {
    float sw = 0.0f, sb = 0.0f;
    for (int64_t r = 0; r < chunks; r++) {
      sw += part_w[r * C + c];
      sb += part_b[r * C + c];
    }
    if (dweight) dweight[c] += sw;
    if (dbias) dbias[c] += sb;
  }
}

/* Row chunks of the weight/bias gradient: at least k_ln_chunk_rows rows each, at most k_ln_max_chunks; a function of
 * N alone, so a shape sums in the same order on every device and run. */
static const int64_t k_ln_chunk_rows = 256, k_ln_max_chunks = 64;
static inline int64_t layernorm_params_chunks(int64_t N) {
  const int64_t k = (N + k_ln_chunk_rows - 1) / k_ln_chunk_rows;
  return k < 1 ? 1 : (k > k_ln_max_chunks ? k_ln_max_chunks : k);
}
/* floats of device workspace layernorm_backward_ws needs for the weight/bias gradient (0: none) */
static inline int64_t layernorm_backward_workspace(int64_t N, int64_t C) {
  const int64_t k = layernorm_params_chunks(N);
  return k > 1 ? 2 * k * C : 0;
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

/* as dama_layernorm_backward: each of dinp, dweight, dbias may be NULL (not wanted). work: NULL (the weight/bias
 * gradient in one pass of one chunk per 32 columns) or layernorm_backward_workspace(N, C) floats (row chunks, then
 * a second pass over them). */
static inline cudaError_t layernorm_backward_ws(float *dinp, float *dweight, float *dbias, const float *dout,
                                                const float *inp, const float *weight, const float *mean,
                                                const float *rstd, int64_t N, int64_t C, float *work,
                                                cudaStream_t stream) {
  if (N <= 0 || C <= 0) return cudaSuccess;
  if (dinp) {
    const int64_t rows_per_block = k_block / 32, b = (N + rows_per_block - 1) / rows_per_block;
    const unsigned g = b > (int64_t)(1u << 20) ? (1u << 20) : (unsigned)b;
    DAMA_LAUNCH(layernorm_backward_input_kernel, g, k_block, 0, stream, dinp, dout, inp, weight, mean, rstd, N, C);
  }
  if (dweight || dbias) {
    const unsigned gx = (unsigned)((C + k_ln_cols - 1) / k_ln_cols);
    const int64_t chunks = work ? layernorm_params_chunks(N) : 1;
    if (chunks == 1) {
      float *none = nullptr;
      DAMA_LAUNCH(layernorm_backward_params_kernel, gx, dim3(k_ln_cols, k_ln_rows), 0, stream, dweight, dbias, none,
                  none, dout, inp, mean, rstd, N, C, N);
    } else {
      const int64_t rows = (N + chunks - 1) / chunks;
      float *part_w = work, *part_b = work + chunks * C;
      DAMA_LAUNCH(layernorm_backward_params_kernel, dim3(gx, (unsigned)chunks), dim3(k_ln_cols, k_ln_rows), 0, stream,
                  dweight, dbias, part_w, part_b, dout, inp, mean, rstd, N, C, rows);
      DAMA_LAUNCH(layernorm_backward_params_finish_kernel, grid_stride_blocks(C, k_block), k_block, 0, stream,
                  dweight, dbias, (const float *)part_w, (const float *)part_b, chunks, C);
    }
  }
  return cudaGetLastError();
}

/* as dama_layernorm_backward, without workspace (the weight/bias gradient in one chunk) */
static inline cudaError_t layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                             const float *inp, const float *weight, const float *mean,
                                             const float *rstd, int64_t N, int64_t C, cudaStream_t stream) {
  return layernorm_backward_ws(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, nullptr, stream);
}

} // namespace dama_cuda

#endif
