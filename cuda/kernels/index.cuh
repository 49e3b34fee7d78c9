/* index.cuh — gather / index_select, scatter_ (assign and add), the bounds check of an index tensor, and the strided
 * copy with dtype conversion that cat uses (runtime/cpu/ops_index.c, ops_join.c are the twins).
 *
 * Tensors are passed by value as shape + strides (elements). A position p is a row-major linear index over a shape;
 * the kernels decompose it with 32-bit arithmetic when the shape has fewer than 2^31 elements (I = uint32_t).
 *
 * Bad indices: check_index_kernel records the smallest bad position with atomicMin (the CPU names the first bad value
 * in row-major order); the kernels that follow skip bad indices (no read out of bounds) and the scatter kernels do
 * nothing at all once an error is recorded, so, as on the CPU, a failed scatter_ leaves its target unchanged. */
#ifndef DAMA_CUDA_INDEX_CUH
#define DAMA_CUDA_INDEX_CUH

#include "dialect.cuh"
#include "sort.cuh"

namespace dama_cuda {

struct tensor_desc {
  int32_t ndim;
  int64_t shape[8];
  int64_t strides[8]; /* elements */
};

/* "no error" in an error word (cudaMemset with 0x7f bytes). */
static const unsigned long long k_no_error = 0x7f7f7f7f7f7f7f7full;

/* The element offset of position p of shape d.shape under strides st. */
template <typename I> __device__ __forceinline__ int64_t desc_offset(const tensor_desc &d, const int64_t *st, I p) {
  int64_t off = 0;
  for (int32_t k = d.ndim - 1; k >= 0; k--) {
    const I s = (I)d.shape[k], c = p % s;
    p /= s;
    off += (int64_t)c * st[k];
  }
  return off;
}

template <typename T> __device__ __forceinline__ int64_t load_index(const unsigned char *p) {
  T v;
  memcpy(&v, p, sizeof(T));
  return (int64_t)v;
}

__device__ __forceinline__ void copy_elem(unsigned char *d, const unsigned char *s, int esize) {
  switch (esize) {
    case 1: *d = *s; break;
    case 2: memcpy(d, s, 2); break;
    case 4: memcpy(d, s, 4); break;
    default: memcpy(d, s, 8); break;
  }
}

/* err[0] = min over positions p of the index tensor (shape ix.shape) whose value is outside [0, size). */
template <typename T, typename I>
static __global__ void check_index_kernel(unsigned long long *err, const unsigned char *index, tensor_desc ix,
                                          int64_t size, int64_t n) {
  for (int64_t q = grid_first(); q < n; q += grid_step()) {
    const int64_t v = load_index<T>(index + desc_offset<I>(ix, ix.strides, (I)q) * (int64_t)sizeof(T));
    if (v < 0 || v >= size) atomicMin(err, (unsigned long long)q);
  }
}

template <typename T, typename I>
static inline cudaError_t check_index_t(unsigned long long *err, const void *index, const tensor_desc &ix,
                                        int64_t size, int64_t n, cudaStream_t stream) {
  void (*k)(unsigned long long *, const unsigned char *, tensor_desc, int64_t, int64_t) = check_index_kernel<T, I>;
  DAMA_LAUNCH(k, grid_stride_blocks(n, k_block), k_block, 0, stream, err, static_cast<const unsigned char *>(index),
              ix, size, n);
  return cudaGetLastError();
}

/* Check n index values (dtype i32 when is_i32, else i64) of layout ix against [0, size). */
static inline cudaError_t check_index(unsigned long long *err, const void *index, int is_i32, const tensor_desc &ix,
                                      int64_t size, int64_t n, cudaStream_t stream) {
  if (n <= 0) return cudaGetLastError();
  const bool small = n < ((int64_t)1 << 31);
  if (is_i32) return small ? check_index_t<int32_t, uint32_t>(err, index, ix, size, n, stream)
                           : check_index_t<int32_t, int64_t>(err, index, ix, size, n, stream);
  return small ? check_index_t<int64_t, uint32_t>(err, index, ix, size, n, stream)
               : check_index_t<int64_t, int64_t>(err, index, ix, size, n, stream);
}

/* ---- gather / index_select: out (contiguous, shape o.shape) at position p = a at the multi-index of p with dim
 * replaced by index[p's offset under index strides] (gather: the index's strides; index_select: 0 except at dim) */
template <typename T, typename I>
static __global__ void gather_kernel(unsigned char *out, const unsigned char *a, tensor_desc o, tensor_desc as,
                                     const unsigned char *index, tensor_desc ixs, int32_t dim, int64_t size,
                                     int esize, int64_t n) {
  for (int64_t q = grid_first(); q < n; q += grid_step()) {
    /* one pass over the dims: the index's offset and a's offset without dim */
    int64_t io = 0, off = 0;
    I p = (I)q;
    for (int32_t k = o.ndim - 1; k >= 0; k--) {
      const I s = (I)o.shape[k], c = p % s;
      p /= s;
      io += (int64_t)c * ixs.strides[k];
      if (k != dim) off += (int64_t)c * as.strides[k];
    }
    const int64_t v = load_index<T>(index + io * (int64_t)sizeof(T));
    if (v < 0 || v >= size) continue; /* reported by check_index */
    if (o.ndim) off += v * as.strides[dim];
    copy_elem(out + q * esize, a + off * esize, esize);
  }
}

template <typename T, typename I>
static inline cudaError_t gather_t(void *out, const void *a, const tensor_desc &o, const tensor_desc &as,
                                   const void *index, const tensor_desc &ixs, int32_t dim, int64_t size, int esize,
                                   int64_t n, cudaStream_t stream) {
  void (*k)(unsigned char *, const unsigned char *, tensor_desc, tensor_desc, const unsigned char *, tensor_desc,
            int32_t, int64_t, int, int64_t) = gather_kernel<T, I>;
  DAMA_LAUNCH(k, grid_stride_blocks(n, k_block), k_block, 0, stream, static_cast<unsigned char *>(out),
              static_cast<const unsigned char *>(a), o, as, static_cast<const unsigned char *>(index), ixs, dim, size,
              esize, n);
  return cudaGetLastError();
}

static inline cudaError_t gather(void *out, const void *a, const tensor_desc &o, const tensor_desc &as,
                                 const void *index, int is_i32, const tensor_desc &ixs, int32_t dim, int64_t size,
                                 int esize, cudaStream_t stream) {
  int64_t n = 1;
  for (int32_t k = 0; k < o.ndim; k++) n *= o.shape[k];
  if (n <= 0) return cudaGetLastError();
  const bool small = n < ((int64_t)1 << 31);
  if (is_i32) return small ? gather_t<int32_t, uint32_t>(out, a, o, as, index, ixs, dim, size, esize, n, stream)
                           : gather_t<int32_t, int64_t>(out, a, o, as, index, ixs, dim, size, esize, n, stream);
  return small ? gather_t<int64_t, uint32_t>(out, a, o, as, index, ixs, dim, size, esize, n, stream)
               : gather_t<int64_t, int64_t>(out, a, o, as, index, ixs, dim, size, esize, n, stream);
}

/* ---- scatter_: the destination of every index position, sorted (stable: by position within a destination), then
 * one thread per destination applies its contributions in row-major order of index, as the CPU's serial loop:
 * assign keeps the last one, add sums them in that order into the target's value (bf16/f16 rounded after every
 * add, as cpu/ops_index.c's add_el). */

struct scatter_geom {
  tensor_desc ix;  /* index: shape and strides */
  tensor_desc a;   /* target strides (shape unused) */
  tensor_desc src; /* source strides (a 0-d source: ndim 0, every position reads element 0) */
  int32_t dim, is_i32;
};

template <typename I>
__device__ __forceinline__ int64_t scatter_dest(const scatter_geom &g, const unsigned char *index, I p, int64_t *soff) {
  int64_t io = 0, off = 0, so = 0;
  for (int32_t k = g.ix.ndim - 1; k >= 0; k--) {
    const I s = (I)g.ix.shape[k], c = p % s;
    p /= s;
    io += (int64_t)c * g.ix.strides[k];
    if (k != g.dim) off += (int64_t)c * g.a.strides[k];
    if (g.src.ndim) so += (int64_t)c * g.src.strides[k];
  }
  const int64_t v = g.is_i32 ? load_index<int32_t>(index + io * 4) : load_index<int64_t>(index + io * 8);
  if (g.ix.ndim) off += v * g.a.strides[g.dim];
  if (soff) *soff = so;
  return off;
}

/* Guard: nothing runs once an error is recorded. */
struct error_guard {
  const unsigned long long *err;
  __device__ bool blocked(void) const { return *err != k_no_error; }
};

template <typename I> struct scatter_key_loader {
  scatter_geom g;
  const unsigned char *index;
  __device__ uint64_t key(int64_t, uint32_t i) const {
    return (uint64_t)scatter_dest<I>(g, index, (I)i, (int64_t *)nullptr);
  }
};

struct order_writer {
  uint32_t *order;
  __device__ void operator()(int64_t, uint32_t i, uint32_t p) const { order[i] = p; }
};

__device__ __forceinline__ void add_elem(unsigned char *d, const unsigned char *s, int dtype) {
  switch (dtype) {
    case k_f32: { float x, y; memcpy(&x, d, 4); memcpy(&y, s, 4); x += y; memcpy(d, &x, 4); break; }
    case k_f64: { double x, y; memcpy(&x, d, 8); memcpy(&y, s, 8); x += y; memcpy(d, &x, 8); break; }
    case k_bf16: {
      uint16_t x, y;
      memcpy(&x, d, 2); memcpy(&y, s, 2);
      x = dama_ew_f32_to_bf16(dama_ew_bf16_to_f32(x) + dama_ew_bf16_to_f32(y));
      memcpy(d, &x, 2);
      break;
    }
    case k_f16: {
      uint16_t x, y;
      memcpy(&x, d, 2); memcpy(&y, s, 2);
      x = dama_ew_f32_to_f16(dama_ew_f16_to_f32(x) + dama_ew_f16_to_f32(y));
      memcpy(d, &x, 2);
      break;
    }
    case k_u8: *d = (unsigned char)(*d + *s); break;
    case k_u16: { uint16_t x, y; memcpy(&x, d, 2); memcpy(&y, s, 2); x = (uint16_t)(x + y); memcpy(d, &x, 2); break; }
    case k_i32: { uint32_t x, y; memcpy(&x, d, 4); memcpy(&y, s, 4); x += y; memcpy(d, &x, 4); break; }
    default: { uint64_t x, y; memcpy(&x, d, 8); memcpy(&y, s, 8); x += y; memcpy(d, &x, 8); break; }
  }
}

/* order[0, n): index positions sorted by destination. The thread of a destination's first position applies them. */
template <typename I>
static __global__ void scatter_apply_kernel(error_guard guard, unsigned char *a, const unsigned char *src,
                                            const unsigned char *index, scatter_geom g, const uint32_t *order,
                                            int64_t n, int32_t dtype, int esize, int reduce) {
  if (guard.blocked()) return;
  for (int64_t q = grid_first(); q < n; q += grid_step()) {
    int64_t so = 0;
    const int64_t d = scatter_dest<I>(g, index, (I)order[q], &so);
    if (q > 0 && scatter_dest<I>(g, index, (I)order[q - 1], (int64_t *)nullptr) == d) continue;
    unsigned char *dst = a + d * esize;
    int64_t j = q;
    if (reduce) {
      unsigned char acc[8];
      copy_elem(acc, dst, esize);
      for (;;) {
        add_elem(acc, src + so * esize, dtype);
        if (++j >= n) break;
        if (scatter_dest<I>(g, index, (I)order[j], &so) != d) break;
      }
      copy_elem(dst, acc, esize);
    } else {
      int64_t last = so;
      while (++j < n && scatter_dest<I>(g, index, (I)order[j], &so) == d) last = so;
      copy_elem(dst, src + last * esize, esize);
    }
  }
}

/* Bytes of device scratch for a scatter of n index positions: the order and the sort's pairs. */
static inline int64_t scatter_scratch_bytes(int64_t n) {
  return n * (int64_t)sizeof(uint32_t) + sort_scratch_bytes<uint64_t>(1, n);
}

/* a[dest(p)] (=|+=) src[p] for the n positions of g.ix (n < 2^31); err was filled by check_index (k_no_error:
 * all in bounds). scratch: scatter_scratch_bytes(n). */
template <typename I>
static inline cudaError_t scatter_t(void *a, const void *src, const void *index, const scatter_geom &g, int64_t n,
                                    int32_t dtype, int esize, int reduce, const unsigned long long *err, void *scratch,
                                    cudaStream_t stream) {
  uint32_t *order = static_cast<uint32_t *>(scratch);
  void *sort_scratch = static_cast<unsigned char *>(scratch) + (size_t)n * sizeof(uint32_t);
  scatter_key_loader<I> ld{g, static_cast<const unsigned char *>(index)};
  const error_guard guard{err};
  cudaError_t e = sort_rows<uint64_t>(ld, order_writer{order}, guard, 1, n, sort_scratch, stream);
  if (e != cudaSuccess) return e;
  void (*k)(error_guard, unsigned char *, const unsigned char *, const unsigned char *, scatter_geom, const uint32_t *,
            int64_t, int32_t, int, int) = scatter_apply_kernel<I>;
  DAMA_LAUNCH(k, grid_stride_blocks(n, k_block), k_block, 0, stream, guard, static_cast<unsigned char *>(a),
              static_cast<const unsigned char *>(src), static_cast<const unsigned char *>(index), g, order, n, dtype,
              esize, reduce);
  return cudaGetLastError();
}

static inline cudaError_t scatter(void *a, const void *src, const void *index, const scatter_geom &g, int64_t n,
                                  int32_t dtype, int esize, int reduce, const unsigned long long *err, void *scratch,
                                  cudaStream_t stream) {
  if (n <= 0) return cudaGetLastError();
  return scatter_t<uint32_t>(a, src, index, g, n, dtype, esize, reduce, err, scratch, stream);
}

/* ---- strided copy with the CPU's dtype conversion (cpu/ops_elementwise.c's dama_copy_kernel): both integer ->
 * through i64; both of the f32 kind (f32, bf16, f16) -> through float; else through double ---- */

__device__ __forceinline__ double load_as_f64(const unsigned char *p, int t) {
  switch (t) {
    case k_f32: { float v; memcpy(&v, p, 4); return v; }
    case k_f64: { double v; memcpy(&v, p, 8); return v; }
    case k_bf16: { uint16_t h; memcpy(&h, p, 2); return dama_ew_bf16_to_f32(h); }
    case k_f16: { uint16_t h; memcpy(&h, p, 2); return dama_ew_f16_to_f32(h); }
    case k_u8: return *p;
    case k_u16: { uint16_t h; memcpy(&h, p, 2); return h; }
    case k_i32: { int32_t v; memcpy(&v, p, 4); return v; }
    default: { int64_t v; memcpy(&v, p, 8); return (double)v; }
  }
}
__device__ __forceinline__ int64_t load_as_i64(const unsigned char *p, int t) {
  switch (t) {
    case k_u8: return *p;
    case k_u16: { uint16_t h; memcpy(&h, p, 2); return h; }
    case k_i32: { int32_t v; memcpy(&v, p, 4); return v; }
    default: { int64_t v; memcpy(&v, p, 8); return v; }
  }
}
__device__ __forceinline__ void store_int(unsigned char *p, int t, int64_t v) {
  switch (t) {
    case k_u8: *p = (unsigned char)v; break;
    case k_u16: { const uint16_t h = (uint16_t)v; memcpy(p, &h, 2); break; }
    case k_i32: { const int32_t w = (int32_t)(uint32_t)v; memcpy(p, &w, 4); break; }
    default: memcpy(p, &v, 8); break;
  }
}
__device__ __forceinline__ void store_f32(unsigned char *p, int t, float v) {
  switch (t) {
    case k_f32: memcpy(p, &v, 4); break;
    case k_bf16: { const uint16_t h = dama_ew_f32_to_bf16(v); memcpy(p, &h, 2); break; }
    default: { const uint16_t h = dama_ew_f32_to_f16(v); memcpy(p, &h, 2); break; }
  }
}
__device__ __forceinline__ void store_f64(unsigned char *p, int t, double v) {
  switch (t) {
    case k_f64: memcpy(p, &v, 8); break;
    case k_f32: case k_bf16: case k_f16: store_f32(p, t, (float)v); break;
    default: store_int(p, t, dama_ew_f2i(v)); break;
  }
}

enum { k_conv_same = 0, k_conv_i64 = 1, k_conv_f32 = 2, k_conv_f64 = 3 };

/* dst (shape d.shape, strides d.strides) = src (strides s.strides), converting st -> dt by kind. */
template <typename I>
static __global__ void convert_copy_kernel(unsigned char *dst, tensor_desc d, int dt, int des,
                                           const unsigned char *src, tensor_desc s, int st, int ses, int kind,
                                           int64_t n) {
  for (int64_t q = grid_first(); q < n; q += grid_step()) {
    int64_t doff = 0, soff = 0;
    I p = (I)q;
    for (int32_t k = d.ndim - 1; k >= 0; k--) {
      const I sz = (I)d.shape[k], c = p % sz;
      p /= sz;
      doff += (int64_t)c * d.strides[k];
      soff += (int64_t)c * s.strides[k];
    }
    unsigned char *o = dst + doff * des;
    const unsigned char *i = src + soff * ses;
    switch (kind) {
      case k_conv_same: copy_elem(o, i, des); break;
      case k_conv_i64: store_int(o, dt, load_as_i64(i, st)); break;
      case k_conv_f32: store_f32(o, dt, (float)load_as_f64(i, st)); break;
      default: store_f64(o, dt, load_as_f64(i, st)); break;
    }
  }
}

static inline int convert_kind(int dt, int st) {
  if (dt == st) return k_conv_same;
  const bool dfl = dt <= k_f16, sfl = st <= k_f16;
  if (!dfl && !sfl) return k_conv_i64;
  const bool d32 = dt == k_f32 || dt == k_bf16 || dt == k_f16, s32 = st == k_f32 || st == k_bf16 || st == k_f16;
  return d32 && s32 ? k_conv_f32 : k_conv_f64;
}

static inline cudaError_t convert_copy(void *dst, const tensor_desc &d, int dt, int des, const void *src,
                                       const tensor_desc &s, int st, int ses, cudaStream_t stream) {
  int64_t n = 1;
  for (int32_t k = 0; k < d.ndim; k++) n *= d.shape[k];
  if (n <= 0) return cudaGetLastError();
  const int kind = convert_kind(dt, st);
  if (n < ((int64_t)1 << 31)) {
    DAMA_LAUNCH(convert_copy_kernel<uint32_t>, grid_stride_blocks(n, k_block), k_block, 0, stream,
                static_cast<unsigned char *>(dst), d, dt, des, static_cast<const unsigned char *>(src), s, st, ses,
                kind, n);
  } else {
    DAMA_LAUNCH(convert_copy_kernel<int64_t>, grid_stride_blocks(n, k_block), k_block, 0, stream,
                static_cast<unsigned char *>(dst), d, dt, des, static_cast<const unsigned char *>(src), s, st, ses,
                kind, n);
  }
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
