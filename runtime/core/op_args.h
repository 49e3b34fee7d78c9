/* Argument checks and shape/dtype rules of the tensor ops, shared by every backend (core/op_args.c). */
#ifndef DAMA_OP_ARGS_H
#define DAMA_OP_ARGS_H

#include "core/dama_internal.h"

/* torch-like promotion: float beats int, wider beats narrower, bf16+f16 -> f32, signed int beats u8/u16. */
dama_dtype ops_promote(dama_dtype a, dama_dtype b);

/* A tensor argument must be non-NULL with a valid dtype. `what` names it ("a", "index"). */
dama_status ops_arg_check(const char *op, const char *what, const dama_tensor *t);
/* An in-place target must not have expanded (stride-0) dims: several elements would share one address. */
dama_status ops_check_writable(const char *op, const dama_tensor *t);
/* Wrap a dim (negative from the end) or fail with DAMA_ERR_INDEX naming op and the tensor's ndim. */
dama_status ops_wrap_dim(const char *op, int32_t *dim, int32_t ndim);
/* Broadcast two tensors' shapes; the error names op and both shapes. */
dama_status ops_broadcast(const char *op, const dama_tensor *a, const dama_tensor *b, int32_t *nd, int64_t *shape);
/* Do two tensors share storage? (conservative: same storage object) */
static inline bool ops_same_storage(const dama_tensor *a, const dama_tensor *b) { return a->storage == b->storage; }
/* Same storage but a different view: an in-place op must copy the reader first. */
bool ops_overlaps_differently(const dama_tensor *dst, const dama_tensor *src);

/* ---- the element-wise ops' rules (every backend's binary, unary, clamp, where, masked_fill_, copy) ---- */
/* An in-place operand (b, a mask, a copy's source) must broadcast to a's shape without growing it. */
dama_status ops_check_into(const char *op, const dama_tensor *a, const dama_tensor *b, const char *bname);
/* DAMA_ERR_ARG "binary: unknown op N" / "<name>: unknown op N" for an op code out of range. */
dama_status ops_check_binop(dama_binop op);
dama_status ops_check_unop(const char *name, dama_unop op);
/* The result dtype of a binary op on operands promoted to `promoted`; *compute is the dtype it is computed in
 * (div of integers is computed and returned in f32; comparisons return u8). */
dama_dtype ops_binary_result(dama_binop op, dama_dtype promoted, dama_dtype *compute);
/* A tensor of dtype `at` with a scalar s: the tensor's dtype wins (torch's rule for Python numbers), except that a
 * fractional or non-finite s on an integer tensor gives f32. Returns the result dtype and sets *compute. */
dama_dtype ops_scalar_result(dama_binop op, dama_dtype at, double s, dama_dtype *compute);
/* An integer tensor to a negative integer power is refused (torch's rule). */
dama_status ops_scalar_pow_check(const char *name, dama_binop op, dama_dtype compute, double s, int32_t scalar_first);
/* A unary op on dtype `at`: floats keep theirs; integers keep theirs for the ops that stay integral (computed in
 * i64), else give f32. Returns the result dtype and sets *compute. */
dama_dtype ops_unary_result(dama_unop op, dama_dtype at, dama_dtype *compute);
/* clamp's bounds must not be NaN. */
dama_status ops_check_clamp_bounds(const char *name, double lo, double hi);
/* where's output shape: a, b and cond broadcast together. */
dama_status ops_where_shape(const dama_tensor *cond, const dama_tensor *a, const dama_tensor *b, int32_t *nd,
                            int64_t *shape);

/* ---- matmul's rules (every backend's matmul, torch.matmul's semantics) ---- */
/* Both operands at least 1-d, of one float dtype. */
dama_status ops_matmul_check(const dama_tensor *a, const dama_tensor *b);
/* The shapes: va, vb are a and b as >= 2-d views (a 1-d a gets a leading 1, a 1-d b a trailing 1), new references the
 * caller owns (both NULL on failure); [m, k] x [k, n] over the broadcast batch dims bshape[nb]; the result's shape
 * oshape[ond] drops the dims the 1-d operands gained. */
typedef struct ops_matmul_shape {
  dama_tensor *va, *vb;
  int64_t m, k, n;
  int32_t nb, ond;
  int64_t bshape[DAMA_MAX_DIMS], oshape[DAMA_MAX_DIMS];
} ops_matmul_shape;
dama_status ops_matmul_shapes(const dama_tensor *a, const dama_tensor *b, ops_matmul_shape *s);

/* ---- the reductions' rules (every backend's reduce, max_dim, min_dim) ---- */
/* "sum", "mean", ... for messages */
const char *ops_redop_name(dama_redop op);
/* dims -> mask[DAMA_MAX_DIMS] of the dims reduced (ndims == 0: all; a 0-d tensor takes dim 0 or -1); a repeated or
 * out-of-range dim is an error naming it. */
dama_status ops_reduce_dims(const char *name, const dama_tensor *a, int32_t ndims, const int32_t *dims, bool *mask);
/* The result dtype: sum/prod of integers in i64, max/min keep the dtype, argmax/argmin give i64, the rest f32 for
 * integers; floats keep theirs. */
dama_dtype ops_reduce_result(dama_redop op, dama_dtype t);

#endif
