/* tensor_kernels.cu — the element-wise launchers of tensor_launch.h: each picks the kernel of
 * kernels/tensor_elementwise.cuh for its op, compute kind and operand layout, launches it once on the caller's
 * stream and returns cudaGetLastError(). No host synchronisation, no allocation (count_nonfinite's counter is the
 * caller's). */
#include "kernels/tensor_elementwise.cuh"

#include <type_traits>

namespace {

using dama_cuda::k_block;
namespace ew = dama_cuda::ew;

unsigned blocks_for(int64_t n) { return dama_cuda::grid_stride_blocks(n, k_block); }
bool aligned(const void *p, uintptr_t to) { return ((uintptr_t)p & (to - 1)) == 0; }

/* The f32 fast path applies: one dim, a contiguous output of dtype `out_dtype`, inputs 1..nin f32 and contiguous
 * or broadcast (or the by-value scalar). */
bool flat_f32(const dama_cuda_ew &g, int nin, int out_dtype) {
  if (g.ndim != 1 || g.dtype[0] != out_dtype || g.strides[0][0] != 1) return false;
  for (int k = 1; k <= nin; k++) {
    if (g.scalar == k) continue;
    if (g.dtype[k] != ew::F32 || (g.strides[k][0] != 0 && g.strides[k][0] != 1)) return false;
  }
  return true;
}

cudaError_t launch_general(void (*k)(dama_cuda_ew), const dama_cuda_ew &g, cudaStream_t s) {
  DAMA_LAUNCH(k, blocks_for(g.numel), k_block, 0, s, g);
  return cudaGetLastError();
}

/* ---- binary ---- */

template <int OP> cudaError_t binary_f32_fast(const dama_cuda_ew &g, cudaStream_t s) {
  typedef typename std::conditional<(OP >= DAMA_EW_EQ), uint8_t, float>::type TO; /* comparisons give u8 */
  const float *a = g.scalar == 1 ? nullptr : static_cast<const float *>(g.ptr[1]);
  const float *b = g.scalar == 2 ? nullptr : static_cast<const float *>(g.ptr[2]);
  const int sa = a ? (int)g.strides[1][0] : 0, sb = b ? (int)g.strides[2][0] : 0;
  TO *out = static_cast<TO *>(g.ptr[0]);
  const int vec = (!sa || aligned(a, 16)) && (!sb || aligned(b, 16)) && aligned(out, 4 * sizeof(TO));
  void (*k)(TO *, const float *, const float *, float, float, int, int, int64_t, int) = ew::binary_f32_kernel<OP, TO>;
  DAMA_LAUNCH(k, blocks_for(vec ? (g.numel + 3) / 4 : g.numel), k_block, 0, s, out, a, b, g.value.f, g.value.f, sa,
              sb, g.numel, vec);
  return cudaGetLastError();
}

template <int OP> cudaError_t binary_launch(int kind, const dama_cuda_ew &g, cudaStream_t s) {
  switch (kind) {
    case DAMA_CUDA_K_F32:
      if (flat_f32(g, 2, OP >= DAMA_EW_EQ ? ew::U8 : ew::F32)) return binary_f32_fast<OP>(g, s);
      return launch_general(ew::binary_kernel<OP, float>, g, s);
    case DAMA_CUDA_K_F64: return launch_general(ew::binary_kernel<OP, double>, g, s);
    case DAMA_CUDA_K_I64: return launch_general(ew::binary_kernel<OP, int64_t>, g, s);
    default: return cudaErrorInvalidValue;
  }
}

/* ---- unary ---- */

template <int OP> cudaError_t unary_float_launch(int kind, const dama_cuda_ew &g, cudaStream_t s) {
  if (kind == DAMA_CUDA_K_F64) return launch_general(ew::unary_kernel<OP, double>, g, s);
  if (kind != DAMA_CUDA_K_F32) return cudaErrorInvalidValue;
  if (flat_f32(g, 1, ew::F32) && g.strides[1][0] == 1) {
    float *out = static_cast<float *>(g.ptr[0]);
    const float *a = static_cast<const float *>(g.ptr[1]);
    const int vec = aligned(out, 16) && aligned(a, 16);
    void (*k)(float *, const float *, int64_t, int) = ew::unary_f32_kernel<OP>;
    DAMA_LAUNCH(k, blocks_for(vec ? (g.numel + 3) / 4 : g.numel), k_block, 0, s, out, a, g.numel, vec);
    return cudaGetLastError();
  }
  return launch_general(ew::unary_kernel<OP, float>, g, s);
}

/* the ops that keep an integer dtype (dama_ew_unop_keeps_int); floor, ceil and round are the identity there */
cudaError_t unary_int_launch(int op, const dama_cuda_ew &g, cudaStream_t s) {
  switch (op) {
    case DAMA_EW_NEG: return launch_general(ew::unary_kernel<DAMA_EW_NEG, int64_t>, g, s);
    case DAMA_EW_ABS: return launch_general(ew::unary_kernel<DAMA_EW_ABS, int64_t>, g, s);
    case DAMA_EW_RELU: return launch_general(ew::unary_kernel<DAMA_EW_RELU, int64_t>, g, s);
    case DAMA_EW_SQUARE: return launch_general(ew::unary_kernel<DAMA_EW_SQUARE, int64_t>, g, s);
    case DAMA_EW_SIGN: return launch_general(ew::unary_kernel<DAMA_EW_SIGN, int64_t>, g, s);
    case DAMA_EW_FLOOR: case DAMA_EW_CEIL: case DAMA_EW_ROUND:
      return launch_general(ew::unary_kernel<DAMA_EW_FLOOR, int64_t>, g, s);
    default: return cudaErrorInvalidValue;
  }
}

template <class T> cudaError_t launch_sized(void (*k)(dama_cuda_ew, T), const dama_cuda_ew &g, T v, cudaStream_t s) {
  DAMA_LAUNCH(k, blocks_for(g.numel), k_block, 0, s, g, v);
  return cudaGetLastError();
}

/* dst's last dim is contiguous and src's is not, but src is contiguous along dst's second-to-last dim: a transpose
 * of the last two dims (both at least 16 long, else the general kernel's strided reads cost little) */
bool transposed_pair(const dama_cuda_ew &g) {
  if (g.ndim < 2) return false;
  const int L = g.ndim - 1;
  return g.strides[0][L] == 1 && g.strides[1][L] != 1 && g.strides[1][L - 1] == 1 && g.shape[L] >= 16 &&
         g.shape[L - 1] >= 16;
}

template <class T> cudaError_t launch_transpose(const dama_cuda_ew &g, cudaStream_t s) {
  const int L = g.ndim - 1;
  int64_t outer = 1;
  for (int d = 0; d < L - 1; d++) outer *= g.shape[d];
  const int64_t gx = (g.shape[L] + ew::k_tile - 1) / ew::k_tile, gy = (g.shape[L - 1] + ew::k_tile - 1) / ew::k_tile;
  if (gx > 2147483647 || gy > 65535) return launch_general(ew::copy_same_kernel<T>, g, s);
  const dim3 grid((unsigned)gx, (unsigned)gy, (unsigned)(outer < 65535 ? outer : 65535));
  DAMA_LAUNCH(ew::copy_transpose_kernel<T>, grid, dim3(ew::k_tile, ew::k_tile_rows), 0, s, g);
  return cudaGetLastError();
}

int dtype_size(int t) { return t == ew::F64 || t == ew::I64 ? 8 : t == ew::F32 || t == ew::I32 ? 4 : t == ew::U8 ? 1 : 2; }

} // namespace

extern "C" cudaError_t dama_cuda_ew_binary(int op, int kind, const dama_cuda_ew *g, cudaStream_t stream) {
  if (g->numel <= 0) return cudaSuccess;
  switch (op) {
    case DAMA_EW_ADD: return binary_launch<DAMA_EW_ADD>(kind, *g, stream);
    case DAMA_EW_SUB: return binary_launch<DAMA_EW_SUB>(kind, *g, stream);
    case DAMA_EW_MUL: return binary_launch<DAMA_EW_MUL>(kind, *g, stream);
    case DAMA_EW_DIV: return binary_launch<DAMA_EW_DIV>(kind, *g, stream);
    case DAMA_EW_POW: return binary_launch<DAMA_EW_POW>(kind, *g, stream);
    case DAMA_EW_MAXIMUM: return binary_launch<DAMA_EW_MAXIMUM>(kind, *g, stream);
    case DAMA_EW_MINIMUM: return binary_launch<DAMA_EW_MINIMUM>(kind, *g, stream);
    case DAMA_EW_EQ: return binary_launch<DAMA_EW_EQ>(kind, *g, stream);
    case DAMA_EW_NE: return binary_launch<DAMA_EW_NE>(kind, *g, stream);
    case DAMA_EW_LT: return binary_launch<DAMA_EW_LT>(kind, *g, stream);
    case DAMA_EW_LE: return binary_launch<DAMA_EW_LE>(kind, *g, stream);
    case DAMA_EW_GT: return binary_launch<DAMA_EW_GT>(kind, *g, stream);
    case DAMA_EW_GE: return binary_launch<DAMA_EW_GE>(kind, *g, stream);
    default: return cudaErrorInvalidValue;
  }
}

extern "C" cudaError_t dama_cuda_ew_unary(int op, int kind, const dama_cuda_ew *g, cudaStream_t stream) {
  if (g->numel <= 0) return cudaSuccess;
  if (kind == DAMA_CUDA_K_I64) return unary_int_launch(op, *g, stream);
  switch (op) {
    case DAMA_EW_NEG: return unary_float_launch<DAMA_EW_NEG>(kind, *g, stream);
    case DAMA_EW_EXP: return unary_float_launch<DAMA_EW_EXP>(kind, *g, stream);
    case DAMA_EW_LOG: return unary_float_launch<DAMA_EW_LOG>(kind, *g, stream);
    case DAMA_EW_SQRT: return unary_float_launch<DAMA_EW_SQRT>(kind, *g, stream);
    case DAMA_EW_ABS: return unary_float_launch<DAMA_EW_ABS>(kind, *g, stream);
    case DAMA_EW_SIN: return unary_float_launch<DAMA_EW_SIN>(kind, *g, stream);
    case DAMA_EW_COS: return unary_float_launch<DAMA_EW_COS>(kind, *g, stream);
    case DAMA_EW_TANH: return unary_float_launch<DAMA_EW_TANH>(kind, *g, stream);
    case DAMA_EW_SIGMOID: return unary_float_launch<DAMA_EW_SIGMOID>(kind, *g, stream);
    case DAMA_EW_RELU: return unary_float_launch<DAMA_EW_RELU>(kind, *g, stream);
    case DAMA_EW_RSQRT: return unary_float_launch<DAMA_EW_RSQRT>(kind, *g, stream);
    case DAMA_EW_SQUARE: return unary_float_launch<DAMA_EW_SQUARE>(kind, *g, stream);
    case DAMA_EW_RECIPROCAL: return unary_float_launch<DAMA_EW_RECIPROCAL>(kind, *g, stream);
    case DAMA_EW_SIGN: return unary_float_launch<DAMA_EW_SIGN>(kind, *g, stream);
    case DAMA_EW_FLOOR: return unary_float_launch<DAMA_EW_FLOOR>(kind, *g, stream);
    case DAMA_EW_CEIL: return unary_float_launch<DAMA_EW_CEIL>(kind, *g, stream);
    case DAMA_EW_ROUND: return unary_float_launch<DAMA_EW_ROUND>(kind, *g, stream);
    case DAMA_EW_ERF: return unary_float_launch<DAMA_EW_ERF>(kind, *g, stream);
    case DAMA_EW_GELU: return unary_float_launch<DAMA_EW_GELU>(kind, *g, stream);
    default: return cudaErrorInvalidValue;
  }
}

extern "C" cudaError_t dama_cuda_ew_clamp(int kind, const dama_cuda_ew *g, double lo, double hi, int64_t ilo,
                                          int64_t ihi, cudaStream_t stream) {
  if (g->numel <= 0) return cudaSuccess;
  const unsigned blocks = blocks_for(g->numel);
  switch (kind) {
    case DAMA_CUDA_K_F32: DAMA_LAUNCH(ew::clamp_kernel<float>, blocks, k_block, 0, stream, *g, (float)lo, (float)hi); break;
    case DAMA_CUDA_K_F64: DAMA_LAUNCH(ew::clamp_kernel<double>, blocks, k_block, 0, stream, *g, lo, hi); break;
    case DAMA_CUDA_K_I64: DAMA_LAUNCH(ew::clamp_kernel<int64_t>, blocks, k_block, 0, stream, *g, ilo, ihi); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

extern "C" cudaError_t dama_cuda_ew_where(int kind, const dama_cuda_ew *g, cudaStream_t stream) {
  if (g->numel <= 0) return cudaSuccess;
  switch (kind) {
    case DAMA_CUDA_K_F32: return launch_general(ew::where_kernel<float>, *g, stream);
    case DAMA_CUDA_K_F64: return launch_general(ew::where_kernel<double>, *g, stream);
    case DAMA_CUDA_K_I64: return launch_general(ew::where_kernel<int64_t>, *g, stream);
    default: return cudaErrorInvalidValue;
  }
}

extern "C" cudaError_t dama_cuda_ew_fill(const dama_cuda_ew *g, cudaStream_t stream) {
  if (g->numel <= 0) return cudaSuccess;
  const int sz = dtype_size(g->dtype[0]);
  const uint64_t v = g->value.bits;
  /* a contiguous target whose value repeats one byte (zeros above all): a memset */
  bool one_byte = true;
  for (int q = 1; q < sz; q++) one_byte = one_byte && ((v >> (8 * q)) & 0xff) == (v & 0xff);
  if (one_byte && g->ndim == 1 && g->strides[0][0] == 1)
    return cudaMemsetAsync(g->ptr[0], (int)(v & 0xff), (size_t)(g->numel * sz), stream);
  switch (sz) {
    case 1: return launch_sized<uint8_t>(ew::fill_kernel<uint8_t>, *g, (uint8_t)v, stream);
    case 2: return launch_sized<uint16_t>(ew::fill_kernel<uint16_t>, *g, (uint16_t)v, stream);
    case 4: return launch_sized<uint32_t>(ew::fill_kernel<uint32_t>, *g, (uint32_t)v, stream);
    default: return launch_sized<uint64_t>(ew::fill_kernel<uint64_t>, *g, v, stream);
  }
}

extern "C" cudaError_t dama_cuda_ew_masked_fill(const dama_cuda_ew *g, cudaStream_t stream) {
  if (g->numel <= 0) return cudaSuccess;
  const uint64_t v = g->value.bits;
  switch (dtype_size(g->dtype[0])) {
    case 1: return launch_sized<uint8_t>(ew::masked_fill_kernel<uint8_t>, *g, (uint8_t)v, stream);
    case 2: return launch_sized<uint16_t>(ew::masked_fill_kernel<uint16_t>, *g, (uint16_t)v, stream);
    case 4: return launch_sized<uint32_t>(ew::masked_fill_kernel<uint32_t>, *g, (uint32_t)v, stream);
    default: return launch_sized<uint64_t>(ew::masked_fill_kernel<uint64_t>, *g, v, stream);
  }
}

extern "C" cudaError_t dama_cuda_ew_copy(int kind, const dama_cuda_ew *g, cudaStream_t stream) {
  if (g->numel <= 0) return cudaSuccess;
  if (g->dtype[0] == g->dtype[1]) {
    const int sz = dtype_size(g->dtype[0]);
    if (g->ndim == 1 && g->strides[0][0] == 1 && g->strides[1][0] == 1)
      return cudaMemcpyAsync(g->ptr[0], g->ptr[1], (size_t)(g->numel * sz), cudaMemcpyDeviceToDevice, stream);
    if (transposed_pair(*g)) {
      switch (sz) {
        case 1: return launch_transpose<uint8_t>(*g, stream);
        case 2: return launch_transpose<uint16_t>(*g, stream);
        case 4: return launch_transpose<uint32_t>(*g, stream);
        default: return launch_transpose<uint64_t>(*g, stream);
      }
    }
    switch (sz) {
      case 1: return launch_general(ew::copy_same_kernel<uint8_t>, *g, stream);
      case 2: return launch_general(ew::copy_same_kernel<uint16_t>, *g, stream);
      case 4: return launch_general(ew::copy_same_kernel<uint32_t>, *g, stream);
      default: return launch_general(ew::copy_same_kernel<uint64_t>, *g, stream);
    }
  }
  switch (kind) {
    case DAMA_CUDA_K_F32: return launch_general(ew::copy_convert_kernel<float>, *g, stream);
    case DAMA_CUDA_K_F64: return launch_general(ew::copy_convert_kernel<double>, *g, stream);
    case DAMA_CUDA_K_I64: return launch_general(ew::copy_convert_kernel<int64_t>, *g, stream);
    default: return cudaErrorInvalidValue;
  }
}

extern "C" cudaError_t dama_cuda_ew_count_nonfinite(const dama_cuda_ew *g, unsigned long long *count,
                                                    cudaStream_t stream) {
  cudaError_t e = cudaMemsetAsync(count, 0, sizeof *count, stream);
  if (e != cudaSuccess || g->numel <= 0) return e;
  const unsigned blocks = dama_cuda::grid_stride_blocks(g->numel, k_block, 1024);
  DAMA_LAUNCH(ew::count_nonfinite_kernel, blocks, k_block, 0, stream, *g, count);
  return cudaGetLastError();
}
