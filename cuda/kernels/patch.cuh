/* patch.cuh — MAE's patchify / unpatchify (images [N, C, H, W] <-> patches [N, L, p*p*C], channel fastest: element
 * (i*p + j)*C + c of patch (gy, gx), the norm-pix target's layout) and the fixed 2-D sin-cos position table, as
 * runtime/cpu/nn_patch.c. The patch ops are copies (the same bits as the CPU); each thread writes one output element,
 * so the writes are coalesced. The index type I is 32-bit when the element count allows (cheap divisions). */
#ifndef DAMA_CUDA_PATCH_CUH
#define DAMA_CUDA_PATCH_CUH

#include "dialect.cuh"

namespace dama_cuda {

/* sizes of one image batch, in the index type of the kernel */
template <class I> struct patch_dims {
  I C, H, W, p, gw, L, P, total;
};

template <class I>
static __global__ void patchify_kernel(float *__restrict__ patches, const float *__restrict__ imgs, patch_dims<I> d) {
  for (I o = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; o < d.total; o += (I)blockDim.x * (I)gridDim.x) {
    const I r = o / d.P, k = o - r * d.P;       /* patch row r = n * L + l, element k */
    const I ij = k / d.C, c = k - ij * d.C;     /* k = (i * p + j) * C + c */
    const I i = ij / d.p, j = ij - i * d.p;
    const I n = r / d.L, l = r - n * d.L;
    const I gy = l / d.gw, gx = l - gy * d.gw;
    patches[o] = imgs[((n * d.C + c) * d.H + gy * d.p + i) * d.W + gx * d.p + j];
  }
}

template <class I>
static __global__ void unpatchify_kernel(float *__restrict__ imgs, const float *__restrict__ patches, patch_dims<I> d) {
  for (I o = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x; o < d.total; o += (I)blockDim.x * (I)gridDim.x) {
    I t = o / d.W;
    const I x = o - t * d.W;
    I u = t / d.H;
    const I y = t - u * d.H;
    const I n = u / d.C, c = u - n * d.C;
    const I gy = y / d.p, i = y - gy * d.p, gx = x / d.p, j = x - gx * d.p;
    imgs[o] = patches[(n * d.L + gy * d.gw + gx) * d.P + (i * d.p + j) * d.C + c];
  }
}

/* rows [cls?] + grid_h * grid_w of D = 4F values: sin(x w_k), cos(x w_k), sin(y w_k), cos(y w_k), w_k = 10000^(-k/F),
 * in double as the CPU; the cls row is zeros */
static __global__ void pos_embed_2d_sincos_kernel(float *__restrict__ out, int64_t D, int64_t grid_h, int64_t grid_w,
                                                  int cls) {
  const int64_t F = D / 4, lead = cls ? D : 0, total = grid_h * grid_w * F;
  for (int64_t i = grid_first(); i < lead; i += grid_step()) out[i] = 0.0f;
  for (int64_t e = grid_first(); e < total; e += grid_step()) {
    const int64_t rc = e / F, k = e - rc * F, r = rc / grid_w, c = rc - r * grid_w;
    const double omega = 1.0 / pow(10000.0, (double)k / (double)F);
    float *row = out + lead + rc * D;
    row[k] = (float)sin((double)c * omega);
    row[F + k] = (float)cos((double)c * omega);
    row[2 * F + k] = (float)sin((double)r * omega);
    row[3 * F + k] = (float)cos((double)r * omega);
  }
}

/* ---- launchers (the caller has checked the sizes: positive, H and W multiples of p, D a multiple of 4) ---- */

template <class I> static inline patch_dims<I> make_patch_dims(int64_t N, int64_t C, int64_t H, int64_t W, int64_t p) {
  patch_dims<I> d;
  d.C = (I)C;
  d.H = (I)H;
  d.W = (I)W;
  d.p = (I)p;
  d.gw = (I)(W / p);
  d.L = (I)((H / p) * (W / p));
  d.P = (I)(p * p * C);
  d.total = (I)(N * C * H * W);
  return d;
}

/* true when a grid-stride loop over n elements can count in 32 bits without overflow */
static inline bool fits_i32(int64_t n, unsigned blocks) { return n <= (int64_t)INT32_MAX - (int64_t)blocks * k_block; }

static inline cudaError_t patchify(float *patches, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W,
                                   int64_t p, cudaStream_t stream) {
  const int64_t n = N * C * H * W;
  if (n <= 0) return cudaSuccess;
  const unsigned g = grid_stride_blocks(n, k_block);
  if (fits_i32(n, g)) {
    DAMA_LAUNCH(patchify_kernel<int32_t>, g, k_block, 0, stream, patches, imgs, make_patch_dims<int32_t>(N, C, H, W, p));
  } else {
    DAMA_LAUNCH(patchify_kernel<int64_t>, g, k_block, 0, stream, patches, imgs, make_patch_dims<int64_t>(N, C, H, W, p));
  }
  return cudaGetLastError();
}

static inline cudaError_t unpatchify(float *imgs, const float *patches, int64_t N, int64_t C, int64_t H, int64_t W,
                                     int64_t p, cudaStream_t stream) {
  const int64_t n = N * C * H * W;
  if (n <= 0) return cudaSuccess;
  const unsigned g = grid_stride_blocks(n, k_block);
  if (fits_i32(n, g)) {
    DAMA_LAUNCH(unpatchify_kernel<int32_t>, g, k_block, 0, stream, imgs, patches, make_patch_dims<int32_t>(N, C, H, W, p));
  } else {
    DAMA_LAUNCH(unpatchify_kernel<int64_t>, g, k_block, 0, stream, imgs, patches, make_patch_dims<int64_t>(N, C, H, W, p));
  }
  return cudaGetLastError();
}

static inline cudaError_t pos_embed_2d_sincos(float *out, int64_t D, int64_t grid_h, int64_t grid_w, int cls,
                                              cudaStream_t stream) {
  const int64_t n = grid_h * grid_w * (D / 4);
  if (n <= 0 && !cls) return cudaSuccess;
  DAMA_LAUNCH(pos_embed_2d_sincos_kernel, grid_stride_blocks(n > D ? n : D, k_block), k_block, 0, stream, out, D,
              grid_h, grid_w, cls);
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
