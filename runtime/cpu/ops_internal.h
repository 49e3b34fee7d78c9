/* Private helpers of the CPU op kernels (runtime/cpu/ops_*.c; the device-independent argument rules are in
 * core/op_args.h): compute kinds, typed load/store of element runs, and a strided N-d iterator with an OpenMP + interrupt-polling driver.
 *
 * Every element-wise kernel works on one of three "compute kinds": f32 (for f32, bf16, f16), f64, and
 * i64 (for u8, u16, i32, i64). Operands whose storage type is the kind's own type and whose inner stride
 * is 0 or 1 are read in place; everything else is converted through a small stack buffer. */
#ifndef DAMA_OPS_INTERNAL_H
#define DAMA_OPS_INTERNAL_H

#include "core/op_args.h"
#include <math.h>
#include <stdio.h>

/* Elements per interrupt poll (per thread) and the size below which no OpenMP region is opened. */
#define OPS_CHUNK ((int64_t)1 << 20)
#define OPS_PAR_MIN ((int64_t)1 << 15)
/* Elements per conversion buffer. */
#define OPS_BLOCK 1024
#define OPS_MAX_OPERANDS 4

typedef enum ops_kind { OPS_KF32 = 0, OPS_KF64 = 1, OPS_KI64 = 2 } ops_kind;

static inline ops_kind ops_kind_of(dama_dtype t) {
  switch (t) {
    case DAMA_F64: return OPS_KF64;
    case DAMA_F32: case DAMA_BF16: case DAMA_F16: return OPS_KF32;
    default: return OPS_KI64;
  }
}
/* The storage dtype a kind reads in place (f32, f64, i64). */
static inline dama_dtype ops_kind_dtype(ops_kind k) {
  return k == OPS_KF32 ? DAMA_F32 : k == OPS_KF64 ? DAMA_F64 : DAMA_I64;
}
static inline int ops_kind_size(ops_kind k) { return k == OPS_KF32 ? 4 : 8; }

/* A tensor argument must be non-NULL, a valid dtype (ops_arg_check), and on cpu or sim. */
dama_status ops_check(const char *op, const char *what, const dama_tensor *t);

/* Convert n elements of dtype t at src (stride in elements) into a contiguous buffer of kind k. */
void ops_load(ops_kind k, dama_dtype t, const char *src, int64_t stride, int64_t n, void *dst);
/* Convert n contiguous kind-k values into dtype t at dst (stride in elements). Floats to ints truncate
 * toward zero (NaN -> 0, saturating to the i64 range, then wrapping like a C cast to the narrower type). */
void ops_store(ops_kind k, const void *src, dama_dtype t, char *dst, int64_t stride, int64_t n);
/* Convert a double to one element of dtype t (8-byte scratch `out`). */
void ops_scalar_bytes(double v, dama_dtype t, void *out);

/* A 0-d tensor on the stack wrapping `buf` (read-only use by kernels). */
typedef struct ops_scalar { dama_tensor t; dama_storage st; union { float f; double d; int64_t i; } v; } ops_scalar;
void ops_scalar_init(ops_scalar *s, double v, dama_dtype t);

/* ---- strided N-d iterator ----
 * Operands are broadcast (right-aligned, stride 0) to a common shape; size-1 dims are dropped, dims
 * are ordered by operand 0's strides (largest outermost) and adjacent dims that are contiguous for every
 * operand are merged, so a contiguous tensor iterates as one run. */
typedef struct ops_iter {
  int32_t ndim, nops;
  int64_t numel;
  int64_t shape[DAMA_MAX_DIMS];
  int64_t strides[OPS_MAX_OPERANDS][DAMA_MAX_DIMS]; /* in elements */
  char *base[OPS_MAX_OPERANDS];
  int elsize[OPS_MAX_OPERANDS];
} ops_iter;

/* reorder != 0: iteration order may follow operand 0's memory order (element-wise ops). */
void ops_iter_init(ops_iter *it, int32_t nd, const int64_t *shape, int32_t nops, const dama_tensor *const *ts,
                   int reorder);

/* Called for each run of n elements: ptrs[k] points at operand k's first element, strides[k] is its
 * step in elements. Must be thread-safe (ctx read-only). */
typedef void (*ops_run_fn)(void *ctx, char *const *ptrs, const int64_t *strides, int64_t n);
/* Run fn over every element, in parallel above OPS_PAR_MIN elements, polling dama_interrupt_pending()
 * every OPS_CHUNK elements per thread; DAMA_ERR_INTERRUPTED "<op>: interrupted" when it fires. */
dama_status ops_iter_run(const ops_iter *it, ops_run_fn fn, void *ctx, const char *op);

/* The same for items [0, n) split in fixed chunks of `grain` items (the split never depends on the thread
 * count, so per-chunk partial results combined in order are deterministic); `work` is the rough cost of
 * one item in elements, used to decide on threads and interrupt polls. */
typedef void (*ops_range_fn)(void *ctx, int64_t begin, int64_t end);
dama_status ops_parallel_range(int64_t n, int64_t grain, int64_t work, ops_range_fn fn, void *ctx, const char *op);

/* dst[...] = src converted to dst's dtype, src broadcast to dst's shape, any strides on both sides,
 * parallel and tiled like the element-wise ops (defined in ops_elementwise.c). Floats to ints truncate
 * toward zero (NaN -> 0, saturating), ints wrap like a C cast. dst and src must not overlap in memory. */
dama_status dama_copy_kernel(dama_tensor *dst, const dama_tensor *src);
/* dama_contiguous through dama_copy_kernel: t itself (retained) when contiguous, else a parallel copy. */
dama_status ops_contiguous(dama_tensor **out, const dama_tensor *t);
/* A new contiguous tensor of `dtype` holding t's values, copied with dama_copy_kernel. */
dama_status ops_to_dtype(dama_tensor **out, const dama_tensor *t, dama_dtype dtype);

#endif
