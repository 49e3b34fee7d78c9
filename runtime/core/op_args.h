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

#endif
