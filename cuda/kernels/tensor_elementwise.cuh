/* tensor_elementwise.cuh — the element-wise tensor ops (binary, unary, clamp, where, fill, masked_fill, copy with
 * dtype conversion, count_nonfinite) over strided operands of any of the 8 dtypes: cuda/tensor_kernels.cu's
 * launchers instantiate them. The CPU twin is cpu/ops_elementwise.c; the per-element expressions and the dtype
 * conversions are core/dama_math.h's (dama_ew_*), the ones the CPU kernels call.
 *
 * One strided indexer: a dama_cuda_ew (tensor_launch.h) holds each operand's element-0 pointer, dtype and strides
 * over the folded shape (up to 8 dims, by value), and a grid-stride loop maps each flat index to every operand's
 * offset (32-bit div/mod below 2^31 elements; none for one dim, the contiguous case). Dtypes are read at run time
 * (a uniform branch per element); the op and the compute kind are template parameters, so each kernel's math folds
 * to its expression. The fast path for the common f32 case (every operand f32, contiguous or one broadcast value)
 * loads and stores four floats at a time where the pointers are 16-byte aligned. */
#ifndef DAMA_CUDA_TENSOR_ELEMENTWISE_CUH
#define DAMA_CUDA_TENSOR_ELEMENTWISE_CUH

#include "dialect.cuh"

#include "../tensor_launch.h"

namespace dama_cuda {
namespace ew {

/* dama_dtype's values (api/core.h; cuda/ops_tensor.c checks them) */
enum { F32 = 0, F64 = 1, BF16 = 2, F16 = 3, U8 = 4, U16 = 5, I32 = 6, I64 = 7 };

/* ---- the indexer ---- */

/* Every loop over dims is unrolled over all DAMA_CUDA_EW_DIMS with the unused ones skipped, so g's arrays are only
 * ever indexed by constants: nvcc reads them straight from the parameter bank instead of copying the struct to each
 * thread's local memory (which a run-time index would force). */
#if defined(__CUDA_ARCH__)
#define DAMA_EW_UNROLL _Pragma("unroll")
#else
#define DAMA_EW_UNROLL
#endif

/* The element offsets of flat index i in the first N operands (the last dim is the fastest). */
template <int N>
__device__ __forceinline__ void offsets(const dama_cuda_ew &g, int64_t i, int64_t (&off)[N]) {
  if (g.ndim == 1) {
    for (int k = 0; k < N; k++) off[k] = i * g.strides[k][0];
    return;
  }
  for (int k = 0; k < N; k++) off[k] = 0;
  if (g.numel <= 0x7fffffff) {
    uint32_t r = (uint32_t)i;
    DAMA_EW_UNROLL
    for (int d = DAMA_CUDA_EW_DIMS - 1; d >= 0; d--) {
      if (d >= g.ndim) continue;
      const uint32_t n = (uint32_t)g.shape[d], q = r / n, x = r - q * n;
      r = q;
      for (int k = 0; k < N; k++) off[k] += (int64_t)x * g.strides[k][d];
    }
  } else {
    int64_t r = i;
    DAMA_EW_UNROLL
    for (int d = DAMA_CUDA_EW_DIMS - 1; d >= 0; d--) {
      if (d >= g.ndim) continue;
      const int64_t n = g.shape[d], q = r / n, x = r - q * n;
      r = q;
      for (int k = 0; k < N; k++) off[k] += x * g.strides[k][d];
    }
  }
}

/* ---- typed loads and stores: cpu/ops_common.c's ops_load / ops_store, element by element ---- */

__device__ __forceinline__ float ld_f32(const void *p, int t, int64_t o) {
  switch (t) {
    case F32: return static_cast<const float *>(p)[o];
    case F64: return (float)static_cast<const double *>(p)[o];
    case BF16: return dama_ew_bf16_to_f32(static_cast<const uint16_t *>(p)[o]);
    case F16: return dama_ew_f16_to_f32(static_cast<const uint16_t *>(p)[o]);
    case U8: return (float)static_cast<const uint8_t *>(p)[o];
    case U16: return (float)static_cast<const uint16_t *>(p)[o];
    case I32: return (float)static_cast<const int32_t *>(p)[o];
    default: return (float)static_cast<const int64_t *>(p)[o];
  }
}
__device__ __forceinline__ double ld_f64(const void *p, int t, int64_t o) {
  switch (t) {
    case F32: return (double)static_cast<const float *>(p)[o];
    case F64: return static_cast<const double *>(p)[o];
    case BF16: return (double)dama_ew_bf16_to_f32(static_cast<const uint16_t *>(p)[o]);
    case F16: return (double)dama_ew_f16_to_f32(static_cast<const uint16_t *>(p)[o]);
    case U8: return (double)static_cast<const uint8_t *>(p)[o];
    case U16: return (double)static_cast<const uint16_t *>(p)[o];
    case I32: return (double)static_cast<const int32_t *>(p)[o];
    default: return (double)static_cast<const int64_t *>(p)[o];
  }
}
/* floats reach the i64 kind only as an in-place target's old value: truncated as ops_load does */
__device__ __forceinline__ int64_t ld_i64(const void *p, int t, int64_t o) {
  switch (t) {
    case F32: return dama_ew_f2i((double)static_cast<const float *>(p)[o]);
    case F64: return dama_ew_f2i(static_cast<const double *>(p)[o]);
    case BF16: return dama_ew_f2i((double)dama_ew_bf16_to_f32(static_cast<const uint16_t *>(p)[o]));
    case F16: return dama_ew_f2i((double)dama_ew_f16_to_f32(static_cast<const uint16_t *>(p)[o]));
    case U8: return static_cast<const uint8_t *>(p)[o];
    case U16: return static_cast<const uint16_t *>(p)[o];
    case I32: return static_cast<const int32_t *>(p)[o];
    default: return static_cast<const int64_t *>(p)[o];
  }
}

/* an i64 into a narrower int wraps like a C cast */
__device__ __forceinline__ void st_int(void *p, int t, int64_t o, int64_t v) {
  switch (t) {
    case U8: static_cast<uint8_t *>(p)[o] = (uint8_t)(uint64_t)v; break;
    case U16: static_cast<uint16_t *>(p)[o] = (uint16_t)(uint64_t)v; break;
    case I32: static_cast<int32_t *>(p)[o] = (int32_t)(uint32_t)(uint64_t)v; break;
    default: static_cast<int64_t *>(p)[o] = v; break;
  }
}
__device__ __forceinline__ void st_f32(void *p, int t, int64_t o, float v) {
  switch (t) {
    case F32: static_cast<float *>(p)[o] = v; break;
    case F64: static_cast<double *>(p)[o] = (double)v; break;
    case BF16: static_cast<uint16_t *>(p)[o] = dama_ew_f32_to_bf16(v); break;
    case F16: static_cast<uint16_t *>(p)[o] = dama_ew_f32_to_f16(v); break;
    default: st_int(p, t, o, dama_ew_f2i((double)v)); break;
  }
}
__device__ __forceinline__ void st_f64(void *p, int t, int64_t o, double v) {
  switch (t) {
    case F32: static_cast<float *>(p)[o] = (float)v; break;
    case F64: static_cast<double *>(p)[o] = v; break;
    case BF16: static_cast<uint16_t *>(p)[o] = dama_ew_f32_to_bf16((float)v); break;
    case F16: static_cast<uint16_t *>(p)[o] = dama_ew_f32_to_f16((float)v); break;
    default: st_int(p, t, o, dama_ew_f2i(v)); break;
  }
}
__device__ __forceinline__ void st_i64(void *p, int t, int64_t o, int64_t v) {
  switch (t) {
    case F32: static_cast<float *>(p)[o] = (float)v; break;
    case F64: static_cast<double *>(p)[o] = (double)v; break;
    case BF16: static_cast<uint16_t *>(p)[o] = dama_ew_f32_to_bf16((float)v); break;
    case F16: static_cast<uint16_t *>(p)[o] = dama_ew_f32_to_f16((float)v); break;
    default: st_int(p, t, o, v); break;
  }
}

/* the compute kinds as types */
template <class K> struct kind_io;
template <> struct kind_io<float> {
  static __device__ __forceinline__ float ld(const void *p, int t, int64_t o) { return ld_f32(p, t, o); }
  static __device__ __forceinline__ void st(void *p, int t, int64_t o, float v) { st_f32(p, t, o, v); }
  static __device__ __forceinline__ float scalar(const dama_cuda_scalar &s) { return s.f; }
};
template <> struct kind_io<double> {
  static __device__ __forceinline__ double ld(const void *p, int t, int64_t o) { return ld_f64(p, t, o); }
  static __device__ __forceinline__ void st(void *p, int t, int64_t o, double v) { st_f64(p, t, o, v); }
  static __device__ __forceinline__ double scalar(const dama_cuda_scalar &s) { return s.d; }
};
template <> struct kind_io<int64_t> {
  static __device__ __forceinline__ int64_t ld(const void *p, int t, int64_t o) { return ld_i64(p, t, o); }
  static __device__ __forceinline__ void st(void *p, int t, int64_t o, int64_t v) { st_i64(p, t, o, v); }
  static __device__ __forceinline__ int64_t scalar(const dama_cuda_scalar &s) { return s.i; }
};

/* input k of g in kind K: the by-value scalar or the element at offset o */
template <class K> __device__ __forceinline__ K input(const dama_cuda_ew &g, int k, int64_t o) {
  return g.scalar == k ? kind_io<K>::scalar(g.value) : kind_io<K>::ld(g.ptr[k], g.dtype[k], o);
}

/* a condition or mask element is true when non-zero in its own kind (NaN is true, -0 false) */
__device__ __forceinline__ bool nonzero(const void *p, int t, int64_t o) {
  switch (t) {
    case F32: return static_cast<const float *>(p)[o] != 0.0f;
    case F64: return static_cast<const double *>(p)[o] != 0.0;
    case BF16: case F16: return ld_f32(p, t, o) != 0.0f;
    case U8: return static_cast<const uint8_t *>(p)[o] != 0;
    case U16: return static_cast<const uint16_t *>(p)[o] != 0;
    case I32: return static_cast<const int32_t *>(p)[o] != 0;
    default: return static_cast<const int64_t *>(p)[o] != 0;
  }
}

/* the math, by kind */
template <int OP> __device__ __forceinline__ float binop(float x, float y) { return dama_ew_binop_f32(OP, x, y); }
template <int OP> __device__ __forceinline__ double binop(double x, double y) { return dama_ew_binop_f64(OP, x, y); }
template <int OP> __device__ __forceinline__ int64_t binop(int64_t x, int64_t y) { return dama_ew_binop_i64(OP, x, y); }
template <int OP> __device__ __forceinline__ float unop(float x) { return dama_ew_unop_f32(OP, x); }
template <int OP> __device__ __forceinline__ double unop(double x) { return dama_ew_unop_f64(OP, x); }
template <int OP> __device__ __forceinline__ int64_t unop(int64_t x) { return dama_ew_unop_i64(OP, x); }
__device__ __forceinline__ float clampv(float x, float lo, float hi) { return dama_ew_clamp_f32(x, lo, hi); }
__device__ __forceinline__ double clampv(double x, double lo, double hi) { return dama_ew_clamp_f64(x, lo, hi); }
__device__ __forceinline__ int64_t clampv(int64_t x, int64_t lo, int64_t hi) { return dama_ew_clamp_i64(x, lo, hi); }

/* ---- the general kernels: any strides, any dtypes ---- */

template <int OP, class K> static __global__ void __launch_bounds__(256) binary_kernel(const dama_cuda_ew g) {
  for (int64_t i = grid_first(); i < g.numel; i += grid_step()) {
    int64_t off[3];
    offsets<3>(g, i, off);
    const K x = input<K>(g, 1, off[1]), y = input<K>(g, 2, off[2]);
    kind_io<K>::st(g.ptr[0], g.dtype[0], off[0], binop<OP>(x, y));
  }
}

template <int OP, class K> static __global__ void __launch_bounds__(256) unary_kernel(const dama_cuda_ew g) {
  for (int64_t i = grid_first(); i < g.numel; i += grid_step()) {
    int64_t off[2];
    offsets<2>(g, i, off);
    kind_io<K>::st(g.ptr[0], g.dtype[0], off[0], unop<OP>(kind_io<K>::ld(g.ptr[1], g.dtype[1], off[1])));
  }
}

template <class K> static __global__ void __launch_bounds__(256) clamp_kernel(const dama_cuda_ew g, K lo, K hi) {
  for (int64_t i = grid_first(); i < g.numel; i += grid_step()) {
    int64_t off[2];
    offsets<2>(g, i, off);
    kind_io<K>::st(g.ptr[0], g.dtype[0], off[0], clampv(kind_io<K>::ld(g.ptr[1], g.dtype[1], off[1]), lo, hi));
  }
}

/* operands: out, cond, a, b */
template <class K> static __global__ void __launch_bounds__(256) where_kernel(const dama_cuda_ew g) {
  for (int64_t i = grid_first(); i < g.numel; i += grid_step()) {
    int64_t off[4];
    offsets<4>(g, i, off);
    const bool c = nonzero(g.ptr[1], g.dtype[1], off[1]);
    const K v = c ? kind_io<K>::ld(g.ptr[2], g.dtype[2], off[2]) : kind_io<K>::ld(g.ptr[3], g.dtype[3], off[3]);
    kind_io<K>::st(g.ptr[0], g.dtype[0], off[0], v);
  }
}

/* T: an unsigned integer of the element's size; value: its bytes */
template <class T> static __global__ void __launch_bounds__(256) fill_kernel(const dama_cuda_ew g, T value) {
  T *const out = static_cast<T *>(g.ptr[0]);
  for (int64_t i = grid_first(); i < g.numel; i += grid_step()) {
    int64_t off[1];
    offsets<1>(g, i, off);
    out[off[0]] = value;
  }
}

template <class T> static __global__ void __launch_bounds__(256) masked_fill_kernel(const dama_cuda_ew g, T value) {
  T *const out = static_cast<T *>(g.ptr[0]);
  for (int64_t i = grid_first(); i < g.numel; i += grid_step()) {
    int64_t off[2];
    offsets<2>(g, i, off);
    if (nonzero(g.ptr[1], g.dtype[1], off[1])) out[off[0]] = value;
  }
}

/* the same dtype: the element's bytes */
template <class T> static __global__ void __launch_bounds__(256) copy_same_kernel(const dama_cuda_ew g) {
  T *const out = static_cast<T *>(g.ptr[0]);
  const T *const in = static_cast<const T *>(g.ptr[1]);
  for (int64_t i = grid_first(); i < g.numel; i += grid_step()) {
    int64_t off[2];
    offsets<2>(g, i, off);
    out[off[0]] = in[off[1]];
  }
}

/* A copy whose last two dims are transposed between dst and src (dst's inner stride 1, src's stride 1 along dst's
 * second-to-last dim): 32 x 32 tiles through shared memory, so both the reads and the writes are coalesced (the
 * general kernel would read src with a large stride). Block (32, 8); grid (tiles along the last dim, tiles along the
 * one before, outer slices, grid-strided). */
static const unsigned k_tile = 32, k_tile_rows = 8;

template <class T> static __global__ void __launch_bounds__(256) copy_transpose_kernel(const dama_cuda_ew g) {
  DAMA_SHARED(T, tile, [32][33]); /* [along the last dim][along the one before]; 33: no bank conflicts */
  const int L = g.ndim - 1;
  int64_t nj = 1, ni = 1, dj = 0, di = 0, sj = 0, si = 0, outer = 1; /* sizes, dst and src strides of dims L, L-1 */
  DAMA_EW_UNROLL
  for (int d = 0; d < DAMA_CUDA_EW_DIMS; d++) {
    if (d == L) { nj = g.shape[d]; dj = g.strides[0][d]; sj = g.strides[1][d]; }
    if (d == L - 1) { ni = g.shape[d]; di = g.strides[0][d]; si = g.strides[1][d]; }
    if (d < L - 1) outer *= g.shape[d];
  }
  const int64_t j0 = (int64_t)blockIdx.x * k_tile, i0 = (int64_t)blockIdx.y * k_tile;
  T *const out = static_cast<T *>(g.ptr[0]);
  const T *const in = static_cast<const T *>(g.ptr[1]);
  for (int64_t o = blockIdx.z; o < outer; o += gridDim.z) {
    int64_t base0 = 0, base1 = 0, r = o;
    DAMA_EW_UNROLL
    for (int d = DAMA_CUDA_EW_DIMS - 1; d >= 0; d--) {
      if (d >= L - 1) continue;
      const int64_t x = r % g.shape[d];
      r /= g.shape[d];
      base0 += x * g.strides[0][d];
      base1 += x * g.strides[1][d];
    }
    const int64_t i = i0 + threadIdx.x; /* reads: consecutive lanes along src's stride-1 dim */
    for (unsigned q = threadIdx.y; q < k_tile; q += k_tile_rows) {
      const int64_t j = j0 + q;
      if (i < ni && j < nj) tile[q][threadIdx.x] = in[base1 + i * si + j * sj];
    }
    __syncthreads();
    const int64_t jw = j0 + threadIdx.x; /* writes: consecutive lanes along dst's last dim */
    for (unsigned q = threadIdx.y; q < k_tile; q += k_tile_rows) {
      const int64_t iw = i0 + q;
      if (iw < ni && jw < nj) out[base0 + iw * di + jw * dj] = tile[threadIdx.x][q];
    }
    __syncthreads(); /* the tile is refilled for the next slice */
  }
}

/* converting through kind K, as dama_copy_kernel's ops_load / ops_store pair */
template <class K> static __global__ void __launch_bounds__(256) copy_convert_kernel(const dama_cuda_ew g) {
  for (int64_t i = grid_first(); i < g.numel; i += grid_step()) {
    int64_t off[2];
    offsets<2>(g, i, off);
    kind_io<K>::st(g.ptr[0], g.dtype[0], off[0], kind_io<K>::ld(g.ptr[1], g.dtype[1], off[1]));
  }
}

/* ---- count_nonfinite: a count per thread, summed per block (shuffles, then 32 words of shared memory), one
 * atomicAdd per block (integer sums: the order does not matter) ---- */

/* the exponent all ones, read from the element's bits (as the CPU's isfinite and its bf16/f16 test) */
__device__ __forceinline__ unsigned nonfinite(const void *p, int t, int64_t o) {
  switch (t) {
    case F32: return (static_cast<const uint32_t *>(p)[o] & 0x7f800000u) == 0x7f800000u;
    case F64: return (static_cast<const uint64_t *>(p)[o] & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
    case BF16: return (static_cast<const uint16_t *>(p)[o] & 0x7f80u) == 0x7f80u;
    default: return (static_cast<const uint16_t *>(p)[o] & 0x7c00u) == 0x7c00u; /* F16 */
  }
}

__device__ __forceinline__ unsigned long long warp_sum_u64(unsigned long long v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/* blockDim.x a multiple of 32, at most 1024 */
static __global__ void __launch_bounds__(256) count_nonfinite_kernel(const dama_cuda_ew g,
                                                                     unsigned long long *count) {
  unsigned long long c = 0;
  for (int64_t i = grid_first(); i < g.numel; i += grid_step()) {
    int64_t off[1];
    offsets<1>(g, i, off);
    c += nonfinite(g.ptr[0], g.dtype[0], off[0]);
  }
  DAMA_SHARED(unsigned long long, part, [32]);
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  c = warp_sum_u64(c);
  if (lane == 0) part[warp] = c;
  __syncthreads();
  if (warp == 0) {
    c = lane < (blockDim.x >> 5) ? part[lane] : 0ull;
    c = warp_sum_u64(c);
    if (lane == 0 && c != 0) atomicAdd(count, c);
  }
}

/* ---- the f32 fast path: every operand f32 (a comparison's output u8), each contiguous or one broadcast value
 * (stride 0, or a by-value scalar where the pointer is NULL); vec: the contiguous pointers are 16-byte aligned (a
 * u8 output 4-byte aligned), so four elements move per load and store ---- */

struct __align__(16) f32x4 { float v[4]; };
struct __align__(4) u8x4 { uint8_t v[4]; };
template <class TO> struct out4;
template <> struct out4<float> { typedef f32x4 type; };
template <> struct out4<uint8_t> { typedef u8x4 type; };

__device__ __forceinline__ f32x4 load4(const float *p, int contiguous, float v0, int64_t j) {
  if (contiguous) return reinterpret_cast<const f32x4 *>(p)[j];
  f32x4 r;
  for (int q = 0; q < 4; q++) r.v[q] = v0;
  return r;
}

/* out may be a (in place), so no __restrict__ */
template <int OP, class TO>
static __global__ void __launch_bounds__(256) binary_f32_kernel(TO *out, const float *a, const float *b, float av,
                                                                float bv, int sa, int sb, int64_t n, int vec) {
  const float a0 = (a && !sa) ? a[0] : av, b0 = (b && !sb) ? b[0] : bv;
  int64_t done = 0;
  if (vec) {
    const int64_t nv = n >> 2;
    for (int64_t j = grid_first(); j < nv; j += grid_step()) {
      const f32x4 x = load4(a, sa, a0, j), y = load4(b, sb, b0, j);
      typename out4<TO>::type r;
      for (int q = 0; q < 4; q++) r.v[q] = (TO)binop<OP>(x.v[q], y.v[q]);
      reinterpret_cast<typename out4<TO>::type *>(out)[j] = r;
    }
    done = nv << 2;
  }
  for (int64_t i = done + grid_first(); i < n; i += grid_step())
    out[i] = (TO)binop<OP>(sa ? a[i] : a0, sb ? b[i] : b0);
}

template <int OP>
static __global__ void __launch_bounds__(256) unary_f32_kernel(float *out, const float *a, int64_t n, int vec) {
  int64_t done = 0;
  if (vec) {
    const int64_t nv = n >> 2;
    for (int64_t j = grid_first(); j < nv; j += grid_step()) {
      const f32x4 x = reinterpret_cast<const f32x4 *>(a)[j];
      f32x4 r;
      for (int q = 0; q < 4; q++) r.v[q] = unop<OP>(x.v[q]);
      reinterpret_cast<f32x4 *>(out)[j] = r;
    }
    done = nv << 2;
  }
  for (int64_t i = done + grid_first(); i < n; i += grid_step()) out[i] = unop<OP>(a[i]);
}

} // namespace ew
} // namespace dama_cuda

#endif
