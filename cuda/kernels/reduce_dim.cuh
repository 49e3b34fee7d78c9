/* reduce_dim.cuh — reductions over any set of dims of a strided tensor of any dtype, with the CPU's semantics
 * (runtime/cpu/ops_reduce.c): float sums, products, moments and norms accumulate in double, integer sums and
 * products wrap in 64 bits, max/min keep the first extreme and the first NaN, argmax/argmin the index of it.
 *
 * Layout (cuda/reduce_launch.h): R output rows of L reduced elements; row r's element l lies at
 * offset(r over the kept dims) + offset(l over the reduced dims). Three kernels cover the layouts:
 * - rows: the reduced elements of a row are (most often) contiguous: a warp per row for short rows, a block of 256
 *   for long ones, and for few long rows each row cut into S segments (one block each) whose partial states a second
 *   kernel combines;
 * - cols: the innermost kept dim is contiguous and the reduced ones are not (a column sum, a mean over tokens):
 *   32 x 8 threads, x along 32 consecutive outputs (coalesced), y splitting L, and again S segments when few outputs
 *   share long columns;
 * - ordered: the inf-norms, whose CPU result depends on the order (its max/min over |x| lets the value after a NaN
 *   replace it, per 8192-element chunk): a warp per (row, chunk) folds 32 elements at a time with an in-order tree,
 *   a thread per row then folds the chunks in order.
 * Every tree has a fixed shape that depends only on the sizes, and no kernel uses atomics, so a result is the same
 * bits on every run (issue 11's deterministic mode is the default). */
#ifndef DAMA_CUDA_REDUCE_DIM_CUH
#define DAMA_CUDA_REDUCE_DIM_CUH

#include "dialect.cuh"
#include "reduce_launch.h"

namespace dama_cuda {
namespace red {

/* dama_dtype's numbering (cuda/ops_reduce.c checks it) */
enum { DT_F32 = 0, DT_F64 = 1, DT_BF16 = 2, DT_F16 = 3, DT_U8 = 4, DT_U16 = 5, DT_I32 = 6, DT_I64 = 7 };

static const int64_t k_chunk = 8192; /* ops_reduce.c's RCHUNK: the inf-norms' order depends on it */

/* Element o of an input of dtype DT, as double (float kinds; integers converted) and as int64 (integer kinds). */
template <int DT> struct elem;
template <> struct elem<DT_F32> {
  static const bool is_int = false;
  static __device__ __forceinline__ double d(const void *p, int64_t o) { return (double)static_cast<const float *>(p)[o]; }
  static __device__ __forceinline__ int64_t i(const void *, int64_t) { return 0; }
};
template <> struct elem<DT_F64> {
  static const bool is_int = false;
  static __device__ __forceinline__ double d(const void *p, int64_t o) { return static_cast<const double *>(p)[o]; }
  static __device__ __forceinline__ int64_t i(const void *, int64_t) { return 0; }
};
template <> struct elem<DT_BF16> {
  static const bool is_int = false;
  static __device__ __forceinline__ double d(const void *p, int64_t o) {
    return (double)dama_ew_bf16_to_f32(static_cast<const uint16_t *>(p)[o]);
  }
  static __device__ __forceinline__ int64_t i(const void *, int64_t) { return 0; }
};
template <> struct elem<DT_F16> {
  static const bool is_int = false;
  static __device__ __forceinline__ double d(const void *p, int64_t o) {
    return (double)dama_ew_f16_to_f32(static_cast<const uint16_t *>(p)[o]);
  }
  static __device__ __forceinline__ int64_t i(const void *, int64_t) { return 0; }
};
#define DAMA_RED_INT_ELEM(DT, T)                                                                              \
  template <> struct elem<DT> {                                                                               \
    static const bool is_int = true;                                                                          \
    static __device__ __forceinline__ int64_t i(const void *p, int64_t o) { return (int64_t)static_cast<const T *>(p)[o]; } \
    static __device__ __forceinline__ double d(const void *p, int64_t o) { return (double)i(p, o); }           \
  };
DAMA_RED_INT_ELEM(DT_U8, uint8_t)
DAMA_RED_INT_ELEM(DT_U16, uint16_t)
DAMA_RED_INT_ELEM(DT_I32, int32_t)
DAMA_RED_INT_ELEM(DT_I64, int64_t)
#undef DAMA_RED_INT_ELEM

__host__ __device__ __forceinline__ bool dtype_is_int(int dt) { return dt >= DT_U8; }

/* The offset of flat index idx (row-major over n dims of the given sizes) under the given strides. */
__device__ __forceinline__ int64_t dim_offset(int64_t idx, int n, const int64_t *size, const int64_t *stride) {
  if (n == 1) return idx * stride[0];
  int64_t off = 0;
  for (int k = n - 1; k >= 0; k--) {
    const int64_t q = idx / size[k];
    off += (idx - q * size[k]) * stride[k];
    idx = q;
  }
  return off;
}

/* A partial result: d, d2 double accumulators, i the integer one, idx the index of the extreme (-1: no element). */
struct State {
  double d, d2;
  int64_t i, idx;
};

__device__ __forceinline__ State identity(int acc) {
  State s;
  s.d = (acc == DAMA_CUDA_RED_PROD_F) ? 1.0 : (acc == DAMA_CUDA_RED_NORMNINF ? INFINITY : 0.0);
  s.d2 = 0.0;
  s.i = acc == DAMA_CUDA_RED_PROD_I ? 1 : 0;
  s.idx = -1;
  return s;
}

/* a <- a (+) b. Commutative for every acc (max/min break ties and order NaNs by index), so a butterfly's lanes agree. */
__device__ __forceinline__ void combine(State &a, const State &b, int acc, bool is_int) {
  switch (acc) {
    case DAMA_CUDA_RED_SUM_I: a.i = (int64_t)((uint64_t)a.i + (uint64_t)b.i); break;
    case DAMA_CUDA_RED_PROD_F: a.d *= b.d; break;
    case DAMA_CUDA_RED_PROD_I: a.i = (int64_t)((uint64_t)a.i * (uint64_t)b.i); break;
    case DAMA_CUDA_RED_VAR: a.d += b.d; a.d2 += b.d2; break;
    case DAMA_CUDA_RED_MAX:
    case DAMA_CUDA_RED_MIN: {
      if (b.idx < 0) break;
      bool take;
      if (a.idx < 0) take = true;
      else if (is_int) {
        take = (acc == DAMA_CUDA_RED_MAX ? b.i > a.i : b.i < a.i) || (b.i == a.i && b.idx < a.idx);
      } else {
        const bool an = a.d != a.d, bn = b.d != b.d;
        if (an || bn) take = bn && (!an || b.idx < a.idx);
        else take = (acc == DAMA_CUDA_RED_MAX ? b.d > a.d : b.d < a.d) || (b.d == a.d && b.idx < a.idx);
      }
      if (take) a = b;
      break;
    }
    default: a.d += b.d; /* SUM_F and the summing norms */
  }
}

__device__ __forceinline__ State shfl_xor_state(const State &s, int o) {
  State r;
  r.d = __shfl_xor_sync(0xffffffffu, s.d, o);
  r.d2 = __shfl_xor_sync(0xffffffffu, s.d2, o);
  r.i = __shfl_xor_sync(0xffffffffu, s.i, o);
  r.idx = __shfl_xor_sync(0xffffffffu, s.idx, o);
  return r;
}

/* Over the 32 lanes of a full warp (a butterfly: every lane ends with the same bits). */
__device__ __forceinline__ State warp_reduce(State s, int acc, bool is_int) {
  for (int o = 16; o > 0; o >>= 1) {
    const State t = shfl_xor_state(s, o);
    combine(s, t, acc, is_int);
  }
  return s;
}

/* Over a 1-D block of whole warps; the result is valid in warp 0. sm: 32 states of shared memory. Every thread of
 * the block calls it (two barriers). */
__device__ __forceinline__ State block_reduce(State s, State *sm, int acc, bool is_int) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  s = warp_reduce(s, acc, is_int);
  if (lane == 0) sm[warp] = s;
  __syncthreads();
  if (warp == 0) s = warp_reduce(lane < nwarps ? sm[lane] : identity(acc), acc, is_int);
  __syncthreads();
  return s;
}

/* The reduced elements l0, l0 + step, ... < l1 of the row at offset roff, folded into s in increasing l. */
template <int DT>
__device__ __forceinline__ void accumulate(State &s, const dama_cuda_red &r, const void *in, int64_t roff, int64_t l0,
                                           int64_t l1, int64_t step, double shift) {
  typedef elem<DT> E;
  const bool flat = r.nr <= 1;
  const int64_t rs0 = r.nr ? r.rstride[0] : 0;
  /* one reduced dim (the common case) gets its own loop, free of the div/mod indexer, for the compiler to unroll */
#define DAMA_RED_LOOP(BODY)                                                                          \
  if (flat) {                                                                                        \
    for (int64_t l = l0; l < l1; l += step) {                                                        \
      const int64_t o = roff + l * rs0;                                                              \
      BODY;                                                                                          \
    }                                                                                                \
  } else {                                                                                           \
    for (int64_t l = l0; l < l1; l += step) {                                                        \
      const int64_t o = roff + dim_offset(l, r.nr, r.rsize, r.rstride);                              \
      BODY;                                                                                          \
    }                                                                                                \
  }
  switch (r.acc) {
    case DAMA_CUDA_RED_SUM_F: { double a = s.d; DAMA_RED_LOOP(a += E::d(in, o)) s.d = a; break; }
    case DAMA_CUDA_RED_SUM_I: { uint64_t a = (uint64_t)s.i; DAMA_RED_LOOP(a += (uint64_t)E::i(in, o)) s.i = (int64_t)a; break; }
    case DAMA_CUDA_RED_PROD_F: { double a = s.d; DAMA_RED_LOOP(a *= E::d(in, o)) s.d = a; break; }
    case DAMA_CUDA_RED_PROD_I: { uint64_t a = (uint64_t)s.i; DAMA_RED_LOOP(a *= (uint64_t)E::i(in, o)) s.i = (int64_t)a; break; }
    case DAMA_CUDA_RED_VAR: {
      double a = s.d, b = s.d2;
      DAMA_RED_LOOP(const double t = E::d(in, o) - shift; a += t; b += t * t)
      s.d = a; s.d2 = b;
      break;
    }
    case DAMA_CUDA_RED_NORM1: { double a = s.d; DAMA_RED_LOOP(a += fabs(E::d(in, o))) s.d = a; break; }
    case DAMA_CUDA_RED_NORM2: { double a = s.d; DAMA_RED_LOOP(const double x = E::d(in, o); a += x * x) s.d = a; break; }
    case DAMA_CUDA_RED_NORM0: { double a = s.d; DAMA_RED_LOOP(a += E::d(in, o) != 0.0 ? 1.0 : 0.0) s.d = a; break; }
    case DAMA_CUDA_RED_NORMP: { double a = s.d; DAMA_RED_LOOP(a += pow(fabs(E::d(in, o)), r.p)) s.d = a; break; }
    case DAMA_CUDA_RED_MAX:
    case DAMA_CUDA_RED_MIN: {
      const bool mx = r.acc == DAMA_CUDA_RED_MAX;
      int64_t bi = s.idx;
      if (E::is_int) {
        int64_t b = s.i;
        DAMA_RED_LOOP(const int64_t x = E::i(in, o); if (bi < 0 || (mx ? x > b : x < b)) { b = x; bi = l; })
        s.i = b;
      } else {
        double b = s.d;
        /* the first NaN sticks; before one, a NaN or a strictly better value takes over */
        DAMA_RED_LOOP(const double x = E::d(in, o);
                      if (bi < 0 || (b == b && (x != x || (mx ? x > b : x < b)))) { b = x; bi = l; })
        s.d = b;
      }
      s.idx = bi;
      break;
    }
    default: break; /* the inf-norms go through the ordered kernel */
  }
#undef DAMA_RED_LOOP
}

/* Convert a finished value to the output dtype as the CPU's ops_store does (double -> float -> bf16/f16). */
__device__ __forceinline__ void store_value(void *out, int64_t k, int dt, bool int_res, double v, int64_t iv) {
  if (int_res) {
    switch (dt) {
      case DT_U8: static_cast<uint8_t *>(out)[k] = (uint8_t)iv; break;
      case DT_U16: static_cast<uint16_t *>(out)[k] = (uint16_t)iv; break;
      case DT_I32: static_cast<int32_t *>(out)[k] = (int32_t)(uint32_t)iv; break;
      case DT_I64: static_cast<int64_t *>(out)[k] = iv; break;
      default: v = (double)iv; int_res = false; /* (not produced: integer results keep an integer dtype) */
    }
    if (int_res) return;
  }
  switch (dt) {
    case DT_F32: static_cast<float *>(out)[k] = (float)v; break;
    case DT_F64: static_cast<double *>(out)[k] = v; break;
    case DT_BF16: static_cast<uint16_t *>(out)[k] = dama_ew_f32_to_bf16((float)v); break;
    case DT_F16: static_cast<uint16_t *>(out)[k] = dama_ew_f32_to_f16((float)v); break;
    default: break; /* float results always have a float dtype */
  }
}

/* Row `row`'s finished state into values[row] / indices[row] (ops_reduce.c's finish and write_rows). */
__device__ __forceinline__ void finish_store(const dama_cuda_red &r, const State &s, int64_t row, void *values,
                                             int64_t *indices) {
  if (indices) indices[row] = s.idx;
  if (!values || r.fin == DAMA_CUDA_FIN_NONE) return;
  const bool is_int = dtype_is_int(r.in_dtype);
  double v = s.d;
  int64_t iv = s.i;
  bool int_res = false;
  switch (r.fin) {
    case DAMA_CUDA_FIN_VALUE:
      int_res = r.acc == DAMA_CUDA_RED_SUM_I || r.acc == DAMA_CUDA_RED_PROD_I ||
                ((r.acc == DAMA_CUDA_RED_MAX || r.acc == DAMA_CUDA_RED_MIN) && is_int);
      break;
    case DAMA_CUDA_FIN_MEAN: v = (r.acc == DAMA_CUDA_RED_SUM_I ? (double)s.i : s.d) / (double)r.L; break;
    case DAMA_CUDA_FIN_VAR:
    case DAMA_CUDA_FIN_STD: {
      if (r.L == 0) { v = NAN; break; }
      const double n = (double)r.L;
      double m2 = s.d2 - s.d * (s.d / n); /* shifted sums: sum (x - x0)^2 - (sum (x - x0))^2 / n */
      if (!(m2 > 0.0)) m2 = m2 != m2 ? m2 : 0.0;
      const double dof = n - (double)r.correction;
      v = m2 / (dof > 0 ? dof : 0.0);
      if (r.fin == DAMA_CUDA_FIN_STD) v = sqrt(v);
      break;
    }
    case DAMA_CUDA_FIN_SQRT: v = sqrt(s.d); break;
    case DAMA_CUDA_FIN_ROOT: v = pow(s.d, 1.0 / r.p); break;
    default: break;
  }
  store_value(values, row, r.out_dtype, int_res, v, iv);
}

/* The shift of a row's moments: its first element (the same for every segment of the row). */
template <int DT>
__device__ __forceinline__ double row_shift(const dama_cuda_red &r, const void *in, int64_t roff) {
  if (r.acc != DAMA_CUDA_RED_VAR || r.L == 0) return 0.0;
  return elem<DT>::d(in, roff);
}

__device__ __forceinline__ void emit(const dama_cuda_red &r, const State &s, int64_t item, int64_t row, int64_t S,
                                     void *values, int64_t *indices, State *part) {
  if (S == 1) finish_store(r, s, row, values, indices);
  else part[item] = s;
}

/* rows: items (row, segment) = R * S; a warp per item (warp_mode) or a block per item. */
template <int DT>
static __global__ void __launch_bounds__(256) rows_kernel(dama_cuda_red r, const void *__restrict__ in, void *values,
                                                          int64_t *indices, State *part, int64_t S, int warp_mode) {
  DAMA_SHARED(State, sm, [32]);
  const bool is_int = elem<DT>::is_int;
  const int64_t items = r.R * S, seg = (r.L + S - 1) / S;
  if (warp_mode) {
    const int64_t wpb = blockDim.x >> 5, lane = threadIdx.x & 31u;
    for (int64_t it = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); it < items; it += (int64_t)gridDim.x * wpb) {
      const int64_t row = it / S, l0 = (it % S) * seg, l1 = l0 + seg < r.L ? l0 + seg : r.L;
      const int64_t roff = r.nk ? dim_offset(row, r.nk, r.ksize, r.kstride) : 0;
      State s = identity(r.acc);
      accumulate<DT>(s, r, in, roff, l0 + lane, l1, 32, row_shift<DT>(r, in, roff));
      s = warp_reduce(s, r.acc, is_int);
      if (lane == 0) emit(r, s, it, row, S, values, indices, part);
    }
  } else {
    for (int64_t it = blockIdx.x; it < items; it += gridDim.x) { /* uniform per block: the barriers are safe */
      const int64_t row = it / S, l0 = (it % S) * seg, l1 = l0 + seg < r.L ? l0 + seg : r.L;
      const int64_t roff = r.nk ? dim_offset(row, r.nk, r.ksize, r.kstride) : 0;
      State s = identity(r.acc);
      accumulate<DT>(s, r, in, roff, l0 + threadIdx.x, l1, blockDim.x, row_shift<DT>(r, in, roff));
      s = block_reduce(s, &sm[0], r.acc, is_int);
      if (threadIdx.x == 0) emit(r, s, it, row, S, values, indices, part);
    }
  }
}

static const unsigned k_cols_x = 32, k_cols_y = 8;

/* cols: items (tile of blockDim.x rows, segment); thread (x, y) folds l = y, y + blockDim.y, ... of its segment for
 * row tile * blockDim.x + x, then y = 0 combines the blockDim.y partials in order. Blocks are 32 x 8 (columns of a
 * row-major input: x along the contiguous kept dim), or 256 x 1 for rows too short for a warp each (a thread per row,
 * no shared memory). */
template <int DT>
static __global__ void __launch_bounds__(256) cols_kernel(dama_cuda_red r, const void *__restrict__ in, void *values,
                                                          int64_t *indices, State *part, int64_t S) {
  DAMA_SHARED(State, sm, [8][32]);
  const bool is_int = elem<DT>::is_int;
  const int64_t tile = blockDim.x, tiles = (r.R + tile - 1) / tile, items = tiles * S, seg = (r.L + S - 1) / S;
  const unsigned x = threadIdx.x, y = threadIdx.y, ny = blockDim.y;
  for (int64_t it = blockIdx.x; it < items; it += gridDim.x) {
    const int64_t row = (it / S) * tile + x, sg = it % S;
    const int64_t l0 = sg * seg, l1 = l0 + seg < r.L ? l0 + seg : r.L;
    State s = identity(r.acc);
    if (row < r.R) {
      const int64_t roff = r.nk ? dim_offset(row, r.nk, r.ksize, r.kstride) : 0;
      accumulate<DT>(s, r, in, roff, l0 + y, l1, ny, row_shift<DT>(r, in, roff));
    }
    if (ny > 1) { /* the same for the whole block */
      sm[y][x] = s;
      __syncthreads();
      if (y == 0 && row < r.R) {
        for (unsigned k = 1; k < ny; k++) combine(s, sm[k][x], r.acc, is_int);
        emit(r, s, row * S + sg, row, S, values, indices, part);
      }
      __syncthreads();
    } else if (row < r.R) {
      emit(r, s, row * S + sg, row, S, values, indices, part);
    }
  }
}

/* part[R][S] -> the outputs: a warp per row, lanes folding every 32nd partial in order, then a butterfly. */
static __global__ void __launch_bounds__(256) partials_kernel(dama_cuda_red r, const State *__restrict__ part,
                                                              int64_t S, void *values, int64_t *indices) {
  const bool is_int = dtype_is_int(r.in_dtype);
  const int64_t wpb = blockDim.x >> 5, lane = threadIdx.x & 31u;
  for (int64_t row = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); row < r.R; row += (int64_t)gridDim.x * wpb) {
    State s = identity(r.acc);
    for (int64_t k = lane; k < S; k += 32) combine(s, part[row * S + k], r.acc, is_int);
    s = warp_reduce(s, r.acc, is_int);
    if (lane == 0) finish_store(r, s, row, values, indices);
  }
}

/* ---- the inf-norms in the CPU's order. acc <- f(acc, v): v replaces acc unless v <= acc (max; >= for min), so a NaN
 * replaces anything and anything replaces a NaN. A run of elements acts on acc as a summary: with a NaN in it, it
 * sets acc to `v` (what follows its last NaN); without, acc <- f(acc, v) with v its max. ---- */
struct Run {
  double v;
  int flags; /* 1: empty, 2: holds a NaN */
};

__device__ __forceinline__ double inf_step(double acc, double v, bool mx) { return (mx ? v <= acc : v >= acc) ? acc : v; }

/* a then b */
__device__ __forceinline__ Run inf_compose(Run a, Run b, bool mx) {
  if (b.flags & 1) return a;
  if (a.flags & 1) return b;
  if (b.flags & 2) return b;
  Run c;
  c.v = inf_step(a.v, b.v, mx);
  c.flags = a.flags & 2;
  return c;
}

/* a warp per (row, 8192-element chunk): the chunk's value as the CPU's chunk loop computes it (from 0, or +inf) */
template <int DT>
static __global__ void __launch_bounds__(256) inf_chunks_kernel(dama_cuda_red r, const void *__restrict__ in,
                                                                void *values, double *part, int64_t nch) {
  const bool mx = r.acc == DAMA_CUDA_RED_NORMINF;
  const int64_t wpb = blockDim.x >> 5, items = r.R * nch;
  const int lane = (int)(threadIdx.x & 31u);
  const bool flat = r.nr <= 1;
  const int64_t rs0 = r.nr ? r.rstride[0] : 0;
  for (int64_t it = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); it < items; it += (int64_t)gridDim.x * wpb) {
    const int64_t row = it / nch, base = (it % nch) * k_chunk;
    const int64_t end = base + k_chunk < r.L ? base + k_chunk : r.L;
    const int64_t roff = r.nk ? dim_offset(row, r.nk, r.ksize, r.kstride) : 0;
    Run run;
    run.v = 0.0;
    run.flags = 1;
    for (int64_t b = base; b < end; b += 32) {
      const int64_t l = b + lane;
      Run s;
      s.v = 0.0;
      s.flags = 1;
      if (l < end) {
        s.v = fabs(elem<DT>::d(in, roff + (flat ? l * rs0 : dim_offset(l, r.nr, r.rsize, r.rstride))));
        s.flags = s.v != s.v ? 2 : 0;
      }
      /* in-order tree: after the step with offset o, lane i holds lanes [i, i + 2o) composed in order */
      for (int o = 1; o < 32; o <<= 1) {
        Run t;
        t.v = __shfl_down_sync(0xffffffffu, s.v, o);
        t.flags = __shfl_down_sync(0xffffffffu, s.flags, o);
        if (lane + o < 32) s = inf_compose(s, t, mx);
      }
      Run w;
      w.v = __shfl_sync(0xffffffffu, s.v, 0);
      w.flags = __shfl_sync(0xffffffffu, s.flags, 0);
      run = inf_compose(run, w, mx);
    }
    const double init = mx ? 0.0 : INFINITY;
    const double c = (run.flags & 1) ? init : (run.flags & 2) ? run.v : inf_step(init, run.v, mx);
    if (lane == 0) {
      if (nch == 1) store_value(values, row, r.out_dtype, false, c, 0);
      else part[it] = c;
    }
  }
}

/* rows of at most one chunk, too short for a warp each: a thread per row folds them as the CPU's loop does */
template <int DT>
static __global__ void __launch_bounds__(256) inf_short_kernel(dama_cuda_red r, const void *__restrict__ in,
                                                               void *values) {
  const bool mx = r.acc == DAMA_CUDA_RED_NORMINF;
  const bool flat = r.nr <= 1;
  const int64_t rs0 = r.nr ? r.rstride[0] : 0;
  for (int64_t row = grid_first(); row < r.R; row += grid_step()) {
    const int64_t roff = r.nk ? dim_offset(row, r.nk, r.ksize, r.kstride) : 0;
    double acc = mx ? 0.0 : INFINITY;
    for (int64_t l = 0; l < r.L; l++)
      acc = inf_step(acc, fabs(elem<DT>::d(in, roff + (flat ? l * rs0 : dim_offset(l, r.nr, r.rsize, r.rstride)))), mx);
    store_value(values, row, r.out_dtype, false, acc, 0);
  }
}

/* the chunks of each row folded in order (ops_reduce.c's combine), a thread per row */
static __global__ void inf_rows_kernel(dama_cuda_red r, const double *__restrict__ part, int64_t nch, void *values) {
  const bool mx = r.acc == DAMA_CUDA_RED_NORMINF;
  for (int64_t row = grid_first(); row < r.R; row += grid_step()) {
    double acc = part[row * nch];
    for (int64_t k = 1; k < nch; k++) acc = inf_step(acc, part[row * nch + k], mx);
    store_value(values, row, r.out_dtype, false, acc, 0);
  }
}

/* ---- the plan: which kernel, how many segments, the grid; from the sizes only, so results do not depend on the
 * device ---- */
enum { P_ROWS_WARP = 0, P_ROWS_BLOCK = 1, P_COLS = 2, P_ORDERED = 3, P_ORDERED_SHORT = 4 };
struct Plan {
  int kind;
  unsigned bx, by;  /* P_COLS: the block */
  int64_t S;        /* segments per row (P_ORDERED: chunks per row) */
  unsigned grid;
  int64_t work;     /* workspace bytes */
};

static const unsigned k_max_grid = 8192;

static inline unsigned capped_grid(int64_t blocks) {
  return blocks < 1 ? 1u : (blocks > (int64_t)k_max_grid ? k_max_grid : (unsigned)blocks);
}

static inline Plan plan(const dama_cuda_red &r) {
  Plan p;
  p.S = 1;
  p.work = 0;
  p.bx = k_cols_x;
  p.by = k_cols_y;
  const int64_t R = r.R, L = r.L;
  if ((r.acc == DAMA_CUDA_RED_NORMINF || r.acc == DAMA_CUDA_RED_NORMNINF) && L > 0) {
    p.kind = P_ORDERED;
    p.S = (L + k_chunk - 1) / k_chunk;
    p.grid = capped_grid((R * p.S + 7) / 8);
    if (L <= 16 && R >= 64) { /* a thread per row */
      p.kind = P_ORDERED_SHORT;
      p.grid = capped_grid((R + 255) / 256);
    }
    if (p.S > 1) p.work = R * p.S * (int64_t)sizeof(double);
    return p;
  }
  const bool inner = r.nr >= 1 && r.rstride[r.nr - 1] == 1, kept_inner = r.nk >= 1 && r.kstride[r.nk - 1] == 1;
  if (!inner && kept_inner && R > 1 && L > 1) {
    p.kind = P_COLS;
    const int64_t tiles = (R + k_cols_x - 1) / k_cols_x;
    /* segments of at least 8 x 64 elements while there are fewer than 512 tiles of work */
    if (tiles < 512 && L > 8 * 128) {
      int64_t s = (L + 8 * 64 - 1) / (8 * 64), cap = 512 / tiles;
      if (cap < 1) cap = 1;
      p.S = s < cap ? s : cap;
    }
    p.grid = capped_grid(tiles * p.S);
  } else if (L <= 16 && R >= 64) {
    p.kind = P_COLS; /* rows too short for a warp each: a thread per row */
    p.bx = 256;
    p.by = 1;
    p.grid = capped_grid((R + 255) / 256);
  } else if (L <= 1024) {
    p.kind = P_ROWS_WARP;
    p.grid = capped_grid((R + 7) / 8);
  } else {
    p.kind = P_ROWS_BLOCK;
    /* segments of at least 16 elements per thread while there are fewer than 512 rows */
    if (R < 512 && L > 256 * 32) {
      int64_t s = (L + 256 * 16 - 1) / (256 * 16), cap = 1024 / R;
      if (cap < 1) cap = 1;
      p.S = s < cap ? s : cap;
    }
    p.grid = capped_grid(R * p.S);
  }
  if (p.S > 1) p.work = R * p.S * (int64_t)sizeof(State);
  return p;
}

template <int DT>
static inline cudaError_t launch_dt(const dama_cuda_red &r, const Plan &p, const void *in, void *values,
                                    int64_t *indices, void *work, cudaStream_t stream) {
  State *part = p.S > 1 ? static_cast<State *>(work) : nullptr;
  switch (p.kind) {
    case P_ORDERED_SHORT:
      DAMA_LAUNCH(inf_short_kernel<DT>, p.grid, 256, 0, stream, r, in, values);
      return cudaGetLastError();
    case P_ORDERED: {
      double *chunks = p.S > 1 ? static_cast<double *>(work) : nullptr;
      DAMA_LAUNCH(inf_chunks_kernel<DT>, p.grid, 256, 0, stream, r, in, values, chunks, p.S);
      if (p.S > 1)
        DAMA_LAUNCH(inf_rows_kernel, grid_stride_blocks(r.R, k_block), k_block, 0, stream, r, chunks, p.S, values);
      return cudaGetLastError();
    }
    case P_COLS: DAMA_LAUNCH(cols_kernel<DT>, p.grid, dim3(p.bx, p.by), 0, stream, r, in, values, indices, part, p.S); break;
    case P_ROWS_WARP: DAMA_LAUNCH(rows_kernel<DT>, p.grid, 256, 0, stream, r, in, values, indices, part, p.S, 1); break;
    default: DAMA_LAUNCH(rows_kernel<DT>, p.grid, 256, 0, stream, r, in, values, indices, part, p.S, 0); break;
  }
  if (p.S > 1)
    DAMA_LAUNCH(partials_kernel, capped_grid((r.R + 7) / 8), 256, 0, stream, r, part, p.S, values, indices);
  return cudaGetLastError();
}

/* ---- launchers ---- */
static inline int64_t reduce_workspace(const dama_cuda_red &r) { return r.R > 0 ? plan(r).work : 0; }

static inline cudaError_t reduce(const dama_cuda_red &r, const void *in, void *values, int64_t *indices, void *work,
                                 cudaStream_t stream) {
  if (r.R <= 0) return cudaSuccess;
  const Plan p = plan(r);
  switch (r.in_dtype) {
    case DT_F32: return launch_dt<DT_F32>(r, p, in, values, indices, work, stream);
    case DT_F64: return launch_dt<DT_F64>(r, p, in, values, indices, work, stream);
    case DT_BF16: return launch_dt<DT_BF16>(r, p, in, values, indices, work, stream);
    case DT_F16: return launch_dt<DT_F16>(r, p, in, values, indices, work, stream);
    case DT_U8: return launch_dt<DT_U8>(r, p, in, values, indices, work, stream);
    case DT_U16: return launch_dt<DT_U16>(r, p, in, values, indices, work, stream);
    case DT_I32: return launch_dt<DT_I32>(r, p, in, values, indices, work, stream);
    case DT_I64: return launch_dt<DT_I64>(r, p, in, values, indices, work, stream);
    default: return cudaErrorInvalidValue;
  }
}

} // namespace red
} // namespace dama_cuda

#endif
