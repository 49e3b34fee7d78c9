/* philox.cuh — the RNG fills (uniform_, normal_, randint_) with the CPU's streams (runtime/cpu/rng.c): Philox4x32-10
 * and the bits -> value transforms are core/dama_math.h's, shared with the CPU. A thread computes one Philox block
 * (counter offset + blk: four 32-bit lanes) and writes the elements it covers: four for uniform_ (a lane each), two
 * for normal_ and randint_ (two lanes each). Each value is computed in double, then converted to the dtype as the
 * CPU's f64 -> dtype copy does. Grid-stride; the generator's offset is the host's (passed by value, advanced by the
 * glue after the launch), so nothing is read back, or, in a CUDA graph, device words each replay refills. */
#ifndef DAMA_CUDA_PHILOX_CUH
#define DAMA_CUDA_PHILOX_CUH

#include "dialect.cuh"
#include "reduce_launch.h"

namespace dama_cuda {
namespace rng {

/* dama_dtype's numbering (cuda/ops_reduce.c checks it) */
enum { DT_F32 = 0, DT_F64 = 1, DT_BF16 = 2, DT_F16 = 3, DT_U8 = 4, DT_U16 = 5, DT_I32 = 6, DT_I64 = 7 };

/* The CPU's ops_store of one double into dtype DT (floats via float; integers truncated, saturated, then wrapped). */
template <int DT> __device__ __forceinline__ void store(void *out, int64_t o, double v);
template <> __device__ __forceinline__ void store<DT_F32>(void *out, int64_t o, double v) { static_cast<float *>(out)[o] = (float)v; }
template <> __device__ __forceinline__ void store<DT_F64>(void *out, int64_t o, double v) { static_cast<double *>(out)[o] = v; }
template <> __device__ __forceinline__ void store<DT_BF16>(void *out, int64_t o, double v) {
  static_cast<uint16_t *>(out)[o] = dama_ew_f32_to_bf16((float)v);
}
template <> __device__ __forceinline__ void store<DT_F16>(void *out, int64_t o, double v) {
  static_cast<uint16_t *>(out)[o] = dama_ew_f32_to_f16((float)v);
}
template <> __device__ __forceinline__ void store<DT_U8>(void *out, int64_t o, double v) {
  static_cast<uint8_t *>(out)[o] = (uint8_t)dama_ew_f2i(v);
}
template <> __device__ __forceinline__ void store<DT_U16>(void *out, int64_t o, double v) {
  static_cast<uint16_t *>(out)[o] = (uint16_t)dama_ew_f2i(v);
}
template <> __device__ __forceinline__ void store<DT_I32>(void *out, int64_t o, double v) {
  static_cast<int32_t *>(out)[o] = (int32_t)(uint32_t)dama_ew_f2i(v);
}
template <> __device__ __forceinline__ void store<DT_I64>(void *out, int64_t o, double v) {
  static_cast<int64_t *>(out)[o] = dama_ew_f2i(v);
}

/* Where element i goes, or -1 when a later element of the same address overwrites it (an expanded dim: only the
 * last index along it is written, as the CPU's sequential copy leaves it). */
__device__ __forceinline__ int64_t target(const dama_cuda_rng &g, int64_t i) {
  if (g.contiguous) return i;
  int64_t off = 0;
  for (int k = g.ndim - 1; k >= 0; k--) {
    const int64_t q = i / g.shape[k], j = i - q * g.shape[k];
    if (g.strides[k] == 0 && j != g.shape[k] - 1) return -1;
    off += j * g.strides[k];
    i = q;
  }
  return off;
}

template <int DT, int KIND>
__device__ __forceinline__ double draw(const uint32_t *x, int l, const dama_cuda_rng &g) {
  if (KIND == DAMA_CUDA_RNG_UNIFORM) return dama_rng_uniform(x[l], g.a, g.b);
  if (KIND == DAMA_CUDA_RNG_NORMAL) return dama_rng_normal(x[l], x[l + 1], g.a, g.b);
  return dama_rng_int(x[l], x[l + 1], g.a, g.b);
}

/* four floats stored as one 16-byte access (the dialect has no float4) */
struct __align__(16) f32x4 {
  float v[4];
};

/* vec4: uniform_ of a contiguous f32 tensor whose data is 16-byte aligned: a block's four floats in one store */
template <int DT, int KIND>
static __global__ void __launch_bounds__(256) fill_kernel(dama_cuda_rng g, void *out, int64_t nblocks, int vec4) {
  const int per = KIND == DAMA_CUDA_RNG_UNIFORM ? 1 : 2;
  /* captured in a graph: the generator as the replay found it */
  const uint64_t seed = g.state ? g.state[0] : g.seed, base = g.state ? g.state[1] + g.offset : g.offset;
  for (int64_t blk = grid_first(); blk < nblocks; blk += grid_step()) {
    uint32_t x[4];
    dama_philox4x32_10(seed, 0, base + (uint64_t)blk, x);
    if (DT == DT_F32 && KIND == DAMA_CUDA_RNG_UNIFORM && vec4 && blk * 4 + 4 <= g.n) {
      f32x4 q;
      for (int l = 0; l < 4; l++) q.v[l] = (float)dama_rng_uniform(x[l], g.a, g.b);
      reinterpret_cast<f32x4 *>(out)[blk] = q;
      continue;
    }
    for (int l = 0; l + per <= 4; l += per) {
      const int64_t i = (blk * 4 + l) / per;
      if (i >= g.n) break;
      const int64_t o = target(g, i);
      if (o >= 0) store<DT>(out, o, draw<DT, KIND>(x, l, g));
    }
  }
}

static inline int64_t fill_blocks(const dama_cuda_rng &g) {
  const int64_t per = g.kind == DAMA_CUDA_RNG_UNIFORM ? 1 : 2;
  return (g.n * per + 3) / 4;
}

template <int DT, int KIND>
static inline cudaError_t fill_dt(const dama_cuda_rng &g, void *out, cudaStream_t stream) {
  const int64_t nb = fill_blocks(g);
  void (*k)(dama_cuda_rng, void *, int64_t, int) = fill_kernel<DT, KIND>;
  const int vec4 = DT == DT_F32 && KIND == DAMA_CUDA_RNG_UNIFORM && g.contiguous && ((uintptr_t)out & 15u) == 0;
  DAMA_LAUNCH(k, grid_stride_blocks(nb, k_block, 8192), k_block, 0, stream, g, out, nb, vec4);
  return cudaGetLastError();
}

template <int KIND>
static inline cudaError_t fill_kind(const dama_cuda_rng &g, void *out, cudaStream_t stream) {
  switch (g.dtype) {
    case DT_F32: return fill_dt<DT_F32, KIND>(g, out, stream);
    case DT_F64: return fill_dt<DT_F64, KIND>(g, out, stream);
    case DT_BF16: return fill_dt<DT_BF16, KIND>(g, out, stream);
    case DT_F16: return fill_dt<DT_F16, KIND>(g, out, stream);
    default: return cudaErrorInvalidValue;
  }
}

/* randint_ also fills integer tensors (uniform_ and normal_ take float ones only) */
static inline cudaError_t fill_int(const dama_cuda_rng &g, void *out, cudaStream_t stream) {
  switch (g.dtype) {
    case DT_U8: return fill_dt<DT_U8, DAMA_CUDA_RNG_INT>(g, out, stream);
    case DT_U16: return fill_dt<DT_U16, DAMA_CUDA_RNG_INT>(g, out, stream);
    case DT_I32: return fill_dt<DT_I32, DAMA_CUDA_RNG_INT>(g, out, stream);
    case DT_I64: return fill_dt<DT_I64, DAMA_CUDA_RNG_INT>(g, out, stream);
    default: return fill_kind<DAMA_CUDA_RNG_INT>(g, out, stream);
  }
}

/* ---- launcher: n <= 0 does nothing ---- */
static inline cudaError_t fill(const dama_cuda_rng &g, void *out, cudaStream_t stream) {
  if (g.n <= 0) return cudaSuccess;
  switch (g.kind) {
    case DAMA_CUDA_RNG_UNIFORM: return fill_kind<DAMA_CUDA_RNG_UNIFORM>(g, out, stream);
    case DAMA_CUDA_RNG_NORMAL: return fill_kind<DAMA_CUDA_RNG_NORMAL>(g, out, stream);
    case DAMA_CUDA_RNG_INT: return fill_int(g, out, stream);
    default: return cudaErrorInvalidValue;
  }
}

} // namespace rng
} // namespace dama_cuda

#endif
