/* gemm_kernels.cu — the kernels around the GEMM area's cuBLASLt calls (gemm_launch.h): im2col (kernels/im2col.cuh),
 * the attention head layouts, the bias gradient's column sums, strided operand copies for matmul, and the softmax
 * of attention (kernels/softmax.cuh). Compiled by nvcc, and by the host compiler against tests/cuda_interp. */
#include "gemm_launch.h"

#include "kernels/im2col.cuh"
#include "kernels/softmax.cuh"

namespace dama_cuda {

/* ---- attention head layouts: one thread per destination element (coalesced writes; reads in runs of hd) ---- */

static __global__ void heads_split_kernel(float *heads, const float *rows, int64_t B, int64_t T, int64_t S, int64_t NH,
                                          int64_t hd, int64_t row_stride, int64_t plane_stride) {
  const int64_t total = S * B * NH * T * hd;
  for (int64_t idx = grid_first(); idx < total; idx += grid_step()) {
    int64_t r = idx / hd;
    const int64_t d = idx - r * hd;
    const int64_t t = r % T;
    r /= T;
    const int64_t h = r % NH;
    r /= NH;
    const int64_t b = r % B, s = r / B;
    heads[idx] = rows[(b * T + t) * row_stride + s * plane_stride + h * hd + d];
  }
}

/* destination order (b, t, s, h, d): each row element is written by one thread */
static __global__ void heads_merge_kernel(float *rows, const float *heads, int64_t B, int64_t T, int64_t S, int64_t NH,
                                          int64_t hd, int64_t row_stride, int64_t plane_stride, int accumulate) {
  const int64_t total = B * T * S * NH * hd;
  for (int64_t idx = grid_first(); idx < total; idx += grid_step()) {
    int64_t r = idx / hd;
    const int64_t d = idx - r * hd;
    const int64_t h = r % NH;
    r /= NH;
    const int64_t s = r % S;
    r /= S;
    const int64_t t = r % T, b = r / T;
    const float v = heads[(((s * B + b) * NH + h) * T + t) * hd + d];
    float *o = rows + (b * T + t) * row_stride + s * plane_stride + h * hd + d;
    *o = accumulate ? *o + v : v;
  }
}

/* ---- column sums: blocks of 32 columns x 8 row lanes over a chunk of rows; lanes are columns, so each warp reads
 * 32 consecutive floats of a row. The 8 row lanes are added in a fixed order through shared memory. ---- */

static const int64_t k_colsum_max_chunks = 64;
static const int64_t k_colsum_min_rows = 64;

static inline int64_t colsum_rows_per_chunk(int64_t N) {
  const int64_t r = (N + k_colsum_max_chunks - 1) / k_colsum_max_chunks;
  return r < k_colsum_min_rows ? k_colsum_min_rows : r;
}

static __global__ void colsum_partial_kernel(float *partial, const float *d, int64_t N, int64_t OC,
                                             int64_t rows_per_chunk) {
  DAMA_SHARED(float, lanes, [8][33]);
  const int64_t c = (int64_t)blockIdx.x * 32 + threadIdx.x;
  const int64_t r0 = (int64_t)blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < N ? r0 + rows_per_chunk : N;
  float s = 0.0f;
  if (c < OC)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) s += d[r * OC + c];
  lanes[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < OC) {
    float t = 0.0f;
    for (int y = 0; y < 8; y++) t += lanes[y][threadIdx.x];
    partial[(int64_t)blockIdx.y * OC + c] = t;
  }
}

static __global__ void colsum_finish_kernel(float *dbias, const float *partial, int64_t chunks, int64_t OC) {
  for (int64_t c = grid_first(); c < OC; c += grid_step()) {
    float s = 0.0f;
    for (int64_t k = 0; k < chunks; k++) s += partial[k * OC + c];
    dbias[c] += s;
  }
}

/* ---- C += bias on every row (when the GEMM's bias epilogue is not used) ---- */

static __global__ void add_bias_kernel(float *C, const float *bias, int64_t M, int64_t N, int64_t ldc,
                                       int64_t stride_c, int64_t batch) {
  const int64_t total = batch * M * N;
  for (int64_t idx = grid_first(); idx < total; idx += grid_step()) {
    const int64_t j = idx % N, r = idx / N, i = r % M, b = r / M;
    C[b * stride_c + i * ldc + j] += bias[j];
  }
}

/* ---- strided -> contiguous copies (bit copies of 2-, 4- or 8-byte elements) ---- */

struct strided_view {
  int32_t ndim;
  int64_t shape[8];
  int64_t strides[8];
};

template <class T> static __global__ void strided_copy_kernel(T *dst, const T *src, int64_t n, strided_view v) {
  for (int64_t idx = grid_first(); idx < n; idx += grid_step()) {
    int64_t rem = idx, off = 0;
    for (int32_t i = v.ndim - 1; i >= 0; i--) {
      const int64_t q = rem / v.shape[i];
      off += (rem - q * v.shape[i]) * v.strides[i];
      rem = q;
    }
    dst[idx] = src[off];
  }
}

} // namespace dama_cuda

using namespace dama_cuda;

extern "C" {

cudaError_t dama_cuda_gemm_im2col(float *col, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p,
                                  cudaStream_t stream) {
  return dama_cuda::im2col(col, imgs, N, C, H, W, p, stream);
}

cudaError_t dama_cuda_gemm_col2im_add(float *imgs, const float *col, int64_t N, int64_t C, int64_t H, int64_t W,
                                      int64_t p, cudaStream_t stream) {
  return dama_cuda::col2im_add(imgs, col, N, C, H, W, p, stream);
}

cudaError_t dama_cuda_gemm_heads_split(float *heads, const float *rows, int64_t B, int64_t T, int64_t S, int64_t NH,
                                       int64_t hd, int64_t row_stride, int64_t plane_stride, cudaStream_t stream) {
  const int64_t total = S * B * NH * T * hd;
  if (total <= 0) return cudaSuccess;
  DAMA_LAUNCH(heads_split_kernel, grid_stride_blocks(total, k_block), k_block, 0, stream, heads, rows, B, T, S, NH,
              hd, row_stride, plane_stride);
  return cudaGetLastError();
}

cudaError_t dama_cuda_gemm_heads_merge(float *rows, const float *heads, int64_t B, int64_t T, int64_t S, int64_t NH,
                                       int64_t hd, int64_t row_stride, int64_t plane_stride, int accumulate,
                                       cudaStream_t stream) {
  const int64_t total = S * B * NH * T * hd;
  if (total <= 0) return cudaSuccess;
  DAMA_LAUNCH(heads_merge_kernel, grid_stride_blocks(total, k_block), k_block, 0, stream, rows, heads, B, T, S, NH,
              hd, row_stride, plane_stride, accumulate);
  return cudaGetLastError();
}

int64_t dama_cuda_gemm_colsum_partials(int64_t N, int64_t OC) {
  if (N <= 0 || OC <= 0) return 0;
  const int64_t rpc = colsum_rows_per_chunk(N);
  return (N + rpc - 1) / rpc * OC;
}

cudaError_t dama_cuda_gemm_colsum_add(float *dbias, const float *d, float *partial, int64_t N, int64_t OC,
                                      cudaStream_t stream) {
  if (N <= 0 || OC <= 0) return cudaSuccess;
  const int64_t rpc = colsum_rows_per_chunk(N), chunks = (N + rpc - 1) / rpc;
  const dim3 grid((unsigned)((OC + 31) / 32), (unsigned)chunks), block(32, 8);
  DAMA_LAUNCH(colsum_partial_kernel, grid, block, 0, stream, partial, d, N, OC, rpc);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  DAMA_LAUNCH(colsum_finish_kernel, grid_stride_blocks(OC, k_block), k_block, 0, stream, dbias, partial, chunks, OC);
  return cudaGetLastError();
}

cudaError_t dama_cuda_gemm_add_bias(void *C, const void *bias, int64_t M, int64_t N, int64_t ldc, int64_t stride_c,
                                    int64_t batch, cudaStream_t stream) {
  const int64_t total = batch * M * N;
  if (total <= 0) return cudaSuccess;
  DAMA_LAUNCH(add_bias_kernel, grid_stride_blocks(total, k_block), k_block, 0, stream, (float *)C, (const float *)bias,
              M, N, ldc, stride_c, batch);
  return cudaGetLastError();
}

cudaError_t dama_cuda_gemm_strided_copy(void *dst, const void *src, int esize, int32_t ndim, const int64_t *shape,
                                        const int64_t *strides, cudaStream_t stream) {
  if (ndim < 0 || ndim > 8) return cudaErrorInvalidValue;
  strided_view v;
  v.ndim = ndim;
  int64_t n = 1;
  for (int32_t i = 0; i < 8; i++) {
    v.shape[i] = i < ndim ? shape[i] : 1;
    v.strides[i] = i < ndim ? strides[i] : 0;
    if (i < ndim) n *= shape[i];
  }
  if (n <= 0) return cudaSuccess;
  const unsigned g = grid_stride_blocks(n, k_block);
  switch (esize) {
    case 2:
      DAMA_LAUNCH(strided_copy_kernel<uint16_t>, g, k_block, 0, stream, (uint16_t *)dst, (const uint16_t *)src, n, v);
      break;
    case 4:
      DAMA_LAUNCH(strided_copy_kernel<uint32_t>, g, k_block, 0, stream, (uint32_t *)dst, (const uint32_t *)src, n, v);
      break;
    case 8:
      DAMA_LAUNCH(strided_copy_kernel<uint64_t>, g, k_block, 0, stream, (uint64_t *)dst, (const uint64_t *)src, n, v);
      break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t dama_cuda_gemm_softmax_forward(float *out, const float *inp, int64_t N, int64_t C, cudaStream_t stream) {
  return dama_cuda::softmax_forward(out, inp, N, C, stream);
}

cudaError_t dama_cuda_gemm_softmax_backward(float *dinp, const float *out, const float *dout, int64_t N, int64_t C,
                                            cudaStream_t stream) {
  return dama_cuda::softmax_backward(dinp, out, dout, N, C, stream);
}

} // extern "C"
