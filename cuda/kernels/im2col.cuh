/* im2col.cuh — the patch embedding's im2col and its inverse, as runtime/cpu/nn_patch.c: a conv of kernel p and
 * stride p over imgs[N, C, H, W] (H, W multiples of p) is col[N*L, C*p*p] @ weight^T, where row n*L + gy*gw + gx is
 * patch (gy, gx) of image n and column (c*p + i)*p + j is pixel (i, j) of channel c. Patches do not overlap, so
 * col2im is a permutation: every image element receives exactly one col element (col2im_add: imgs += it), no
 * atomics. One thread per output element (grid-stride), so the writes are coalesced; the reads come in runs of p. */
#ifndef DAMA_CUDA_IM2COL_CUH
#define DAMA_CUDA_IM2COL_CUH

#include "dialect.cuh"

namespace dama_cuda {

static __global__ void im2col_kernel(float *col, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W,
                                     int64_t p) {
  const int64_t gw = W / p, L = (H / p) * gw, pp = p * p, K = C * pp, total = N * L * K;
  for (int64_t idx = grid_first(); idx < total; idx += grid_step()) {
    const int64_t row = idx / K, k = idx - row * K;
    const int64_t n = row / L, l = row - n * L, gy = l / gw, gx = l - gy * gw;
    const int64_t c = k / pp, ij = k - c * pp, i = ij / p, j = ij - i * p;
    col[idx] = imgs[((n * C + c) * H + gy * p + i) * W + gx * p + j];
  }
}

static __global__ void col2im_add_kernel(float *imgs, const float *col, int64_t N, int64_t C, int64_t H, int64_t W,
                                         int64_t p) {
  const int64_t gw = W / p, L = (H / p) * gw, K = C * p * p, total = N * C * H * W;
  for (int64_t idx = grid_first(); idx < total; idx += grid_step()) {
    const int64_t x = idx % W, r = idx / W, y = r % H, nc = r / H, c = nc % C, n = nc / C;
    const int64_t gy = y / p, i = y - gy * p, gx = x / p, j = x - gx * p;
    imgs[idx] += col[(n * L + gy * gw + gx) * K + (c * p + i) * p + j];
  }
}

static inline cudaError_t im2col(float *col, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p,
                                 cudaStream_t stream) {
  const int64_t total = N * C * H * W; /* = N * L * C * p * p */
  if (total <= 0 || p <= 0) return cudaSuccess;
  DAMA_LAUNCH(im2col_kernel, grid_stride_blocks(total, k_block), k_block, 0, stream, col, imgs, N, C, H, W, p);
  return cudaGetLastError();
}

static inline cudaError_t col2im_add(float *imgs, const float *col, int64_t N, int64_t C, int64_t H, int64_t W,
                                     int64_t p, cudaStream_t stream) {
  const int64_t total = N * C * H * W;
  if (total <= 0 || p <= 0) return cudaSuccess;
  DAMA_LAUNCH(col2im_add_kernel, grid_stride_blocks(total, k_block), k_block, 0, stream, imgs, col, N, C, H, W, p);
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
