/* cuda_interp.h — a small CUDA-semantics layer for host C++, so that dama's CUDA kernels (cuda/kernels/)
 * compile with g++ and run on the CPU in tests (the way Triton's interpreter and Numba's CUDA simulator run kernel
 * source without a GPU). README.md beside this file is the kernel dialect: what a kernel may use, and how each piece
 * behaves here.
 *
 * In short: each block's threads are fibers on one OS thread (blocks run in parallel on a few OS threads); a fiber
 * runs until it waits at __syncthreads() or at a warp collective, so every barrier really orders memory; warp
 * collectives (shuffles, votes, __syncwarp) complete when every lane named in their mask has arrived; static and
 * dynamic shared memory are per-block heap blocks and device memory is host heap memory, so AddressSanitizer sees
 * out-of-bounds indices; streams and events run in order (every launch and copy completes before it returns).
 * A misuse that CUDA leaves undefined (a __syncthreads() some threads never reach, a shuffle whose mask leaves out
 * the calling lane, ...) stops the process with a message naming the block and the threads.
 *
 * Kernel code includes this through cuda/kernels/dialect.cuh with DAMA_CUDA_INTERP defined; nvcc builds never see it. */
#ifndef DAMA_CUDA_INTERP_H
#define DAMA_CUDA_INTERP_H

#ifndef __cplusplus
#error "cuda_interp.h is C++ (kernels are C++ under nvcc too)"
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <math.h>
#include <tuple>
#include <type_traits>
#include <utility>

#ifndef DAMA_CUDA_INTERP
#define DAMA_CUDA_INTERP 1
#endif

/* ---- qualifiers: host code here ---- */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
/* Shared memory is declared with DAMA_SHARED / DAMA_DYNAMIC_SHARED (dialect.cuh), never with the keyword: these
 * give per-block heap memory that AddressSanitizer bounds-checks (a `static thread_local` array would not be). */
#define __shared__ DAMA_DIALECT_ERROR_declare_shared_memory_with_DAMA_SHARED_or_DAMA_DYNAMIC_SHARED

/* ---- built-in variables ---- */
struct uint3 { unsigned int x, y, z; };
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

namespace cuda_interp {
extern thread_local uint3 t_threadIdx; /* set by the scheduler before it resumes a fiber */
extern thread_local uint3 t_blockIdx;
extern thread_local dim3 t_blockDim;
extern thread_local dim3 t_gridDim;
} // namespace cuda_interp

/* read-only, as in CUDA */
#define threadIdx (static_cast<const uint3 &>(::cuda_interp::t_threadIdx))
#define blockIdx (static_cast<const uint3 &>(::cuda_interp::t_blockIdx))
#define blockDim (static_cast<const dim3 &>(::cuda_interp::t_blockDim))
#define gridDim (static_cast<const dim3 &>(::cuda_interp::t_gridDim))
static const int warpSize = 32;

/* ---- runtime API: the C subset dama uses (cuda_runtime_api.h beside this file, shared with C callers) ---- */
#include "cuda_runtime_api.h"
template <class T> inline cudaError_t cudaMalloc(T **p, size_t bytes) {
  return cudaMalloc(reinterpret_cast<void **>(p), bytes);
}
template <class T> inline cudaError_t cudaMallocHost(T **p, size_t bytes) {
  return cudaMallocHost(reinterpret_cast<void **>(p), bytes);
}
template <class... P> inline cudaError_t cudaFuncSetAttribute(void (*func)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void *>(func), attr, value);
}
template <class... P> inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *attr, void (*func)(P...)) {
  return cudaFuncGetAttributes(attr, reinterpret_cast<const void *>(func));
}

/* ---- the interpreter's own controls (tests) ---- */
namespace cuda_interp {
/* The order in which a block's fibers run. forward / reverse: in passes, each runnable thread making one step (to
 * its next wait) per pass, in thread order or reversed. warps: warp by warp, each running as far as it can (to a
 * __syncthreads or its end) before the next starts, so one warp gets ahead of the others as far as the barriers
 * allow. random: warp by warp in a random order, lanes in a random order (seeded). A race-free kernel gives the
 * same bits under all four. Default: forward, or DAMA_INTERP_SCHEDULE=forward|reverse|warps|random[:seed]. */
enum class Schedule { forward, reverse, warps, random };
void set_schedule(Schedule s, uint64_t seed = 1);
Schedule schedule(void);
/* OS threads that run blocks in parallel (1: the calling thread only). Default 2, or DAMA_INTERP_WORKERS. */
void set_workers(int n);
int workers(void);
/* Kernel launches since the process started (each DAMA_LAUNCH that ran). */
uint64_t launch_count(void);
/* Bytes every fresh allocation (cudaMalloc, shared memory) is filled with, so a kernel that reads memory nobody
 * wrote sees NaNs and -1s, not zeros: 0xFF. */
static const unsigned char fill_byte = 0xFF;

/* Stop the process with a message about a kernel fault (block and thread named when inside a kernel). */
[[noreturn]] void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- what the dialect macros and built-ins call ---- */
void *shared_static(const void *key, size_t bytes, size_t align);
void *shared_dynamic(void);
enum WarpOp : uint8_t { op_shfl_idx, op_shfl_up, op_shfl_down, op_shfl_xor, op_ballot, op_syncwarp, op_reduce_add,
                        op_reduce_min, op_reduce_max, op_reduce_umin, op_reduce_umax, op_match_any };
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int b, int width, const char *name);
int block_barrier(int kind, int pred); /* kind 0: plain, 1: count, 2: and, 3: or */
unsigned active_mask(void);

struct LaunchSpec {
  const void *func;
  dim3 grid, block;
  size_t shmem;
  cudaStream_t stream;
  void (*call)(const void *ctx); /* runs the kernel body for the current thread */
  const void *ctx;
};
void run_grid(const LaunchSpec &spec);
/* The launch configuration is valid (else the last error is set, as CUDA does at launch). */
bool launch_config_ok(const LaunchSpec &spec);
/* Stream capture (cuda_runtime_api.h): whether `s` is capturing, and recording one node of work on it. A host-side
 * shim that queues work on a stream (the cuBLAS shim) records through capture() too. */
bool capturing(cudaStream_t s);
void capture(cudaStream_t s, std::function<void()> node);

template <class... P, class... A>
inline void launch(void (*kernel)(P...), dim3 grid, dim3 block, size_t shmem, cudaStream_t stream, A &&...args) {
  static_assert(sizeof...(P) == sizeof...(A), "DAMA_LAUNCH: the kernel takes a different number of arguments");
  struct Ctx {
    void (*k)(P...);
    std::tuple<typename std::decay<P>::type...> a;
  };
  const Ctx ctx{kernel, std::tuple<typename std::decay<P>::type...>(std::forward<A>(args)...)};
  LaunchSpec spec;
  spec.func = reinterpret_cast<const void *>(kernel);
  spec.grid = grid;
  spec.block = block;
  spec.shmem = shmem;
  spec.stream = stream;
  spec.call = [](const void *c) {
    const Ctx *x = static_cast<const Ctx *>(c);
    std::apply(x->k, x->a); /* each thread gets its own copies of the parameters, as in CUDA */
  };
  if (capturing(stream)) {
    /* a graph's kernel node keeps its own copy of the arguments */
    if (!launch_config_ok(spec)) return;
    capture(stream, [ctx, spec]() {
      LaunchSpec s = spec;
      s.ctx = &ctx;
      run_grid(s);
    });
    return;
  }
  spec.ctx = &ctx;
  run_grid(spec);
}

template <class T> inline uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "warp shuffles move values of up to 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T> inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
} // namespace cuda_interp

/* ---- launch and shared memory (the dialect's macros, their interpreter form) ---- */
#define DAMA_LAUNCH(kernel, grid, block, shmem, stream, ...) \
  ::cuda_interp::launch(kernel, (grid), (block), (shmem), (stream), ##__VA_ARGS__)
#define DAMA_SHARED(T, name, dims)                                                                 \
  typedef T dama_shared_type_##name dims;                                                          \
  static const char dama_shared_key_##name = 0;                                                    \
  dama_shared_type_##name &name = *static_cast<dama_shared_type_##name *>(::cuda_interp::shared_static( \
      &dama_shared_key_##name, sizeof(dama_shared_type_##name), alignof(dama_shared_type_##name)))
#define DAMA_DYNAMIC_SHARED(T, name) T *const name = static_cast<T *>(::cuda_interp::shared_dynamic())

/* ---- synchronisation ---- */
inline void __syncthreads(void) { ::cuda_interp::block_barrier(0, 0); }
inline int __syncthreads_count(int pred) { return ::cuda_interp::block_barrier(1, pred); }
inline int __syncthreads_and(int pred) { return ::cuda_interp::block_barrier(2, pred); }
inline int __syncthreads_or(int pred) { return ::cuda_interp::block_barrier(3, pred); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::cuda_interp::warp_collective(::cuda_interp::op_syncwarp, mask, 0, 0, 32, "__syncwarp");
}
inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline unsigned __activemask(void) { return ::cuda_interp::active_mask(); }

/* ---- warp shuffles and votes ---- */
template <class T> inline T __shfl_sync(unsigned mask, T var, int srcLane, int width = 32) {
  return ::cuda_interp::from_bits<T>(::cuda_interp::warp_collective(
      ::cuda_interp::op_shfl_idx, mask, ::cuda_interp::to_bits(var), srcLane, width, "__shfl_sync"));
}
template <class T> inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::cuda_interp::from_bits<T>(::cuda_interp::warp_collective(
      ::cuda_interp::op_shfl_up, mask, ::cuda_interp::to_bits(var), (int)delta, width, "__shfl_up_sync"));
}
template <class T> inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  return ::cuda_interp::from_bits<T>(::cuda_interp::warp_collective(
      ::cuda_interp::op_shfl_down, mask, ::cuda_interp::to_bits(var), (int)delta, width, "__shfl_down_sync"));
}
template <class T> inline T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = 32) {
  return ::cuda_interp::from_bits<T>(::cuda_interp::warp_collective(
      ::cuda_interp::op_shfl_xor, mask, ::cuda_interp::to_bits(var), laneMask, width, "__shfl_xor_sync"));
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  return (unsigned)::cuda_interp::warp_collective(::cuda_interp::op_ballot, mask, pred != 0, 0, 32, "__ballot_sync");
}
inline int __any_sync(unsigned mask, int pred) {
  return (::cuda_interp::warp_collective(::cuda_interp::op_ballot, mask, pred != 0, 0, 32, "__any_sync") & mask) != 0;
}
inline int __all_sync(unsigned mask, int pred) {
  return (::cuda_interp::warp_collective(::cuda_interp::op_ballot, mask, pred != 0, 0, 32, "__all_sync") & mask) ==
         mask;
}
inline unsigned __match_any_sync(unsigned mask, unsigned value) {
  return (unsigned)::cuda_interp::warp_collective(::cuda_interp::op_match_any, mask, value, 0, 32, "__match_any_sync");
}
/* sm_80 warp reductions */
inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
  return (unsigned)::cuda_interp::warp_collective(::cuda_interp::op_reduce_add, mask, value, 0, 32, "__reduce_add_sync");
}
inline int __reduce_add_sync(unsigned mask, int value) {
  return (int)(unsigned)::cuda_interp::warp_collective(::cuda_interp::op_reduce_add, mask, (unsigned)value, 0, 32,
                                                        "__reduce_add_sync");
}
inline int __reduce_min_sync(unsigned mask, int value) {
  return (int)(unsigned)::cuda_interp::warp_collective(::cuda_interp::op_reduce_min, mask, (unsigned)value, 0, 32,
                                                        "__reduce_min_sync");
}
inline int __reduce_max_sync(unsigned mask, int value) {
  return (int)(unsigned)::cuda_interp::warp_collective(::cuda_interp::op_reduce_max, mask, (unsigned)value, 0, 32,
                                                        "__reduce_max_sync");
}
inline unsigned __reduce_min_sync(unsigned mask, unsigned value) {
  return (unsigned)::cuda_interp::warp_collective(::cuda_interp::op_reduce_umin, mask, value, 0, 32, "__reduce_min_sync");
}
inline unsigned __reduce_max_sync(unsigned mask, unsigned value) {
  return (unsigned)::cuda_interp::warp_collective(::cuda_interp::op_reduce_umax, mask, value, 0, 32, "__reduce_max_sync");
}

/* ---- atomics: real (relaxed) atomics, since blocks run on several OS threads ---- */
#define DAMA_INTERP_ATOMIC_INT(T)                                                                          \
  inline T atomicAdd(T *a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }                   \
  inline T atomicSub(T *a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }                   \
  inline T atomicAnd(T *a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }                   \
  inline T atomicOr(T *a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }                     \
  inline T atomicXor(T *a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }                   \
  inline T atomicExch(T *a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }                 \
  inline T atomicCAS(T *a, T cmp, T v) {                                                                 \
    __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);                  \
    return cmp;                                                                                          \
  }                                                                                                      \
  inline T atomicMax(T *a, T v) {                                                                        \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                        \
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
      ;                                                                                                  \
    return old;                                                                                          \
  }                                                                                                      \
  inline T atomicMin(T *a, T v) {                                                                        \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                        \
    while (old > v && !__atomic_compare_exchange_n(a, &old, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
      ;                                                                                                  \
    return old;                                                                                          \
  }
DAMA_INTERP_ATOMIC_INT(int)
DAMA_INTERP_ATOMIC_INT(unsigned int)
DAMA_INTERP_ATOMIC_INT(unsigned long long)
DAMA_INTERP_ATOMIC_INT(long long)
#undef DAMA_INTERP_ATOMIC_INT
#define DAMA_INTERP_ATOMIC_FLOAT(T)                                                                        \
  inline T atomicAdd(T *a, T v) {                                                                        \
    T old;                                                                                               \
    __atomic_load(a, &old, __ATOMIC_RELAXED);                                                            \
    T nv = old + v;                                                                                      \
    while (!__atomic_compare_exchange(a, &old, &nv, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) nv = old + v; \
    return old;                                                                                          \
  }                                                                                                      \
  inline T atomicExch(T *a, T v) {                                                                       \
    T old;                                                                                               \
    __atomic_exchange(a, &v, &old, __ATOMIC_RELAXED);                                                    \
    return old;                                                                                          \
  }
DAMA_INTERP_ATOMIC_FLOAT(float)
DAMA_INTERP_ATOMIC_FLOAT(double)
#undef DAMA_INTERP_ATOMIC_FLOAT

/* ---- bf16 and fp16 (storage types; arithmetic through the intrinsics below, as with __CUDA_NO_*_OPERATORS__) ---- */
struct __nv_bfloat16 { unsigned short __x; };
struct __half { unsigned short __x; };
typedef __nv_bfloat16 nv_bfloat16;
typedef __half half;

namespace cuda_interp {
inline uint32_t f2u(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float u2f(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
/* round to nearest even; NaN -> 0x7fff as CUDA's conversions give */
inline unsigned short float_to_bf16_bits(float f) {
  uint32_t x = f2u(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  return (unsigned short)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
unsigned short float_to_half_bits(float f);
float half_bits_to_float(unsigned short h);
} // namespace cuda_interp

inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16{::cuda_interp::float_to_bf16_bits(f)}; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 h) { return ::cuda_interp::u2f((uint32_t)h.__x << 16); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) { return __nv_bfloat16{u}; }
inline __half __float2half(float f) { return __half{::cuda_interp::float_to_half_bits(f)}; }
inline __half __float2half_rn(float f) { return __float2half(f); }
inline float __half2float(__half h) { return ::cuda_interp::half_bits_to_float(h.__x); }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short u) { return __half{u}; }
/* one rounding from the exact result (the float result of two 16-bit operands is exact for add, sub, mul) */
#define DAMA_INTERP_H16_OPS(T, TO, FROM)                                                       \
  inline T __hadd(T a, T b) { return TO(FROM(a) + FROM(b)); }                                \
  inline T __hsub(T a, T b) { return TO(FROM(a) - FROM(b)); }                                \
  inline T __hmul(T a, T b) { return TO(FROM(a) * FROM(b)); }                                \
  inline T __hfma(T a, T b, T c) { return TO((float)((double)FROM(a) * FROM(b) + FROM(c))); } \
  inline T __hneg(T a) { T r = a; r.__x ^= 0x8000; return r; }                               \
  inline T __habs(T a) { T r = a; r.__x &= 0x7fff; return r; }                               \
  inline T __hmax(T a, T b) { return TO(fmaxf(FROM(a), FROM(b))); }                          \
  inline T __hmin(T a, T b) { return TO(fminf(FROM(a), FROM(b))); }                          \
  inline bool __hlt(T a, T b) { return FROM(a) < FROM(b); }                                  \
  inline bool __hgt(T a, T b) { return FROM(a) > FROM(b); }                                  \
  inline bool __heq(T a, T b) { return FROM(a) == FROM(b); }                                 \
  inline bool __hisnan(T a) { return FROM(a) != FROM(a); }
DAMA_INTERP_H16_OPS(__nv_bfloat16, __float2bfloat16, __bfloat162float)
DAMA_INTERP_H16_OPS(__half, __float2half, __half2float)
#undef DAMA_INTERP_H16_OPS

/* ---- math intrinsics: the fast ones map to the precise libm function (their GPU error is not modelled) ---- */
inline float __expf(float x) { return expf(x); }
inline float __exp10f(float x) { return exp10f(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
/* the _rn forms are never contracted into an FMA on a GPU; an empty asm keeps the host compiler from doing it */
inline float dama_interp_opaque(float x) { __asm__("" : "+m"(x)); return x; }
inline float __fadd_rn(float a, float b) { return dama_interp_opaque(a + b); }
inline float __fsub_rn(float a, float b) { return dama_interp_opaque(a - b); }
inline float __fmul_rn(float a, float b) { return dama_interp_opaque(a * b); }
inline float __fdiv_rn(float a, float b) { return dama_interp_opaque(a / b); }
inline float __frcp_rn(float a) { return dama_interp_opaque(1.0f / a); }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { return ::cuda_interp::f2u(f); }
inline float __uint_as_float(unsigned u) { return ::cuda_interp::u2f(u); }
inline long long __double_as_longlong(double d) { long long i; std::memcpy(&i, &d, 8); return i; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
inline int __float2int_rn(float f) { return (int)nearbyintf(f); }
inline int __float2int_rz(float f) { return (int)f; }
inline int __float2int_rd(float f) { return (int)floorf(f); }
inline int __float2int_ru(float f) { return (int)ceilf(f); }
inline float __int2float_rn(int i) { return (float)i; }
inline float __uint2float_rn(unsigned u) { return (float)u; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
template <class T> inline T __ldg(const T *p) { return *p; }
/* CUDA's device min/max overloads (same-type arguments) */
#define DAMA_INTERP_MINMAX(T)                           \
  inline T min(T a, T b) { return a < b ? a : b; }      \
  inline T max(T a, T b) { return a > b ? a : b; }
DAMA_INTERP_MINMAX(int)
DAMA_INTERP_MINMAX(unsigned int)
DAMA_INTERP_MINMAX(long)
DAMA_INTERP_MINMAX(unsigned long)
DAMA_INTERP_MINMAX(long long)
DAMA_INTERP_MINMAX(unsigned long long)
#undef DAMA_INTERP_MINMAX
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

#endif
