/* Argument checks and shape/dtype rules shared by every backend's tensor ops (core/op_args.h): promotion,
 * broadcasting, dim wrapping, in-place target and overlap checks. A backend's kernels call these so an op refuses
 * the same arguments with the same message on every device. */
#include "core/op_args.h"
#include "core/dama_math.h"
#include <string.h>

static int dtype_rank_float(dama_dtype t) { return t == DAMA_F64 ? 3 : t == DAMA_F32 ? 2 : 1; }

dama_dtype ops_promote(dama_dtype a, dama_dtype b) {
  if (a == b) return a;
  int fa = dama_dtype_is_float(a), fb = dama_dtype_is_float(b);
  if (fa && !fb) return a;
  if (fb && !fa) return b;
  if (fa && fb) {
    if ((a == DAMA_BF16 && b == DAMA_F16) || (a == DAMA_F16 && b == DAMA_BF16)) return DAMA_F32;
    return dtype_rank_float(a) >= dtype_rank_float(b) ? a : b;
  }
  /* two ints: i64 > i32 > u16 > u8, and any signed int here is wider than any unsigned one */
  static const int rank[DAMA_NUM_DTYPES] = {0, 0, 0, 0, 1, 2, 3, 4};
  return rank[a] >= rank[b] ? a : b;
}

dama_status ops_arg_check(const char *op, const char *what, const dama_tensor *t) {
  if (!t) return dama_error(DAMA_ERR_ARG, "%s: tensor '%s' is NULL", op, what);
  if ((unsigned)t->dtype >= DAMA_NUM_DTYPES)
    return dama_error(DAMA_ERR_DTYPE, "%s: tensor '%s' has an invalid dtype %d", op, what, (int)t->dtype);
  return DAMA_OK;
}

dama_status ops_check_writable(const char *op, const dama_tensor *t) {
  for (int32_t i = 0; i < t->ndim; i++)
    if (t->shape[i] > 1 && t->strides[i] == 0) {
      char sh[160];
      return dama_error(DAMA_ERR_ARG,
                        "%s: the in-place target of shape %s is expanded (stride 0 in dim %d), so several elements "
                        "share one memory location; clone it first", op, dama_shape_str(t, sh, sizeof sh), i);
    }
  return DAMA_OK;
}

dama_status ops_wrap_dim(const char *op, int32_t *dim, int32_t ndim) {
  int32_t d = *dim;
  if (!dama_wrap_dim(dim, ndim))
    return dama_error(DAMA_ERR_INDEX, "%s: dim %d is out of range for a tensor with %d dims", op, d, (int)ndim);
  return DAMA_OK;
}

dama_status ops_broadcast(const char *op, const dama_tensor *a, const dama_tensor *b, int32_t *nd, int64_t *shape) {
  if (dama_broadcast_shapes(a->ndim, a->shape, b->ndim, b->shape, nd, shape) != DAMA_OK) {
    char sa[160], sb[160];
    return dama_error(DAMA_ERR_SHAPE, "%s: shapes %s and %s cannot be broadcast", op, dama_shape_str(a, sa, sizeof sa),
                      dama_shape_str(b, sb, sizeof sb));
  }
  return DAMA_OK;
}

bool ops_overlaps_differently(const dama_tensor *dst, const dama_tensor *src) {
  if (!ops_same_storage(dst, src)) return false;
  if (dst->offset != src->offset || dst->ndim != src->ndim || dst->dtype != src->dtype) return true;
  for (int32_t i = 0; i < dst->ndim; i++)
    if (dst->shape[i] != src->shape[i] || (dst->shape[i] > 1 && dst->strides[i] != src->strides[i])) return true;
  return false;
}

/* ---- the element-wise ops' rules ---- */

dama_status ops_check_into(const char *op, const dama_tensor *a, const dama_tensor *b, const char *bname) {
  int32_t nd;
  int64_t shape[DAMA_MAX_DIMS];
  char sa[160], sb[160];
  bool ok = dama_broadcast_shapes(a->ndim, a->shape, b->ndim, b->shape, &nd, shape) == DAMA_OK && nd == a->ndim;
  for (int32_t i = 0; ok && i < nd; i++) ok = shape[i] == a->shape[i];
  if (!ok)
    return dama_error(DAMA_ERR_SHAPE, "%s: %s of shape %s cannot be broadcast to the in-place shape %s", op, bname,
                      dama_shape_str(b, sb, sizeof sb), dama_shape_str(a, sa, sizeof sa));
  return DAMA_OK;
}

dama_status ops_check_binop(dama_binop op) {
  if ((unsigned)op >= DAMA_NUM_BINOPS) return dama_error(DAMA_ERR_ARG, "binary: unknown op %d", (int)op);
  return DAMA_OK;
}

dama_status ops_check_unop(const char *name, dama_unop op) {
  if ((unsigned)op >= DAMA_NUM_UNOPS) return dama_error(DAMA_ERR_ARG, "%s: unknown op %d", name, (int)op);
  return DAMA_OK;
}

dama_dtype ops_binary_result(dama_binop op, dama_dtype promoted, dama_dtype *compute) {
  dama_dtype r = promoted;
  if (op == DAMA_DIV && !dama_dtype_is_float(r)) r = DAMA_F32;
  *compute = r;
  return op >= DAMA_EQ && op <= DAMA_GE ? DAMA_U8 : r;
}

dama_dtype ops_scalar_result(dama_binop op, dama_dtype at, double s, dama_dtype *compute) {
  bool integral = isfinite(s) && s == floor(s) && fabs(s) < 9.2e18;
  dama_dtype r = at;
  if (!dama_dtype_is_float(at) && !integral) r = DAMA_F32;
  return ops_binary_result(op, r, compute);
}

dama_status ops_scalar_pow_check(const char *name, dama_binop op, dama_dtype compute, double s, int32_t scalar_first) {
  if (op == DAMA_POW && !scalar_first && !dama_dtype_is_float(compute) && s < 0)
    return dama_error(DAMA_ERR_ARG, "%s: integers to negative integer powers are not allowed (exponent %g)", name, s);
  return DAMA_OK;
}

dama_dtype ops_unary_result(dama_unop op, dama_dtype at, dama_dtype *compute) {
  if (dama_dtype_is_float(at)) { *compute = at; return at; }
  const bool keeps = dama_ew_unop_keeps_int((int)op);
  *compute = keeps ? DAMA_I64 : DAMA_F32;
  return keeps ? at : DAMA_F32;
}

dama_status ops_check_clamp_bounds(const char *name, double lo, double hi) {
  if (isnan(lo) || isnan(hi)) return dama_error(DAMA_ERR_ARG, "%s: bounds must not be NaN (got %g, %g)", name, lo, hi);
  return DAMA_OK;
}

dama_status ops_where_shape(const dama_tensor *cond, const dama_tensor *a, const dama_tensor *b, int32_t *nd,
                            int64_t *shape) {
  int32_t n1;
  int64_t s1[DAMA_MAX_DIMS];
  DAMA_TRY(ops_broadcast("where", a, b, &n1, s1));
  if (dama_broadcast_shapes(cond->ndim, cond->shape, n1, s1, nd, shape) != DAMA_OK) {
    char sc[160], sab[160];
    return dama_error(DAMA_ERR_SHAPE, "where: condition shape %s and value shape %s cannot be broadcast",
                      dama_shape_str(cond, sc, sizeof sc), dama_dims_str(n1, s1, sab, sizeof sab));
  }
  return DAMA_OK;
}

/* ---- the reductions' rules ---- */

const char *ops_redop_name(dama_redop op) {
  switch (op) {
    case DAMA_RSUM: return "sum";
    case DAMA_RMEAN: return "mean";
    case DAMA_RVAR: return "var";
    case DAMA_RSTD: return "std";
    case DAMA_RMAX: return "max";
    case DAMA_RMIN: return "min";
    case DAMA_RARGMAX: return "argmax";
    case DAMA_RARGMIN: return "argmin";
    case DAMA_RNORM: return "norm";
    case DAMA_RPROD: return "prod";
  }
  return "reduce";
}

dama_status ops_reduce_dims(const char *name, const dama_tensor *a, int32_t ndims, const int32_t *dims, bool *mask) {
  for (int32_t i = 0; i < DAMA_MAX_DIMS; i++) mask[i] = ndims == 0;
  if (ndims < 0 || ndims > DAMA_MAX_DIMS)
    return dama_error(DAMA_ERR_ARG, "%s: ndims must be 0..%d, got %d", name, DAMA_MAX_DIMS, ndims);
  if (ndims > 0 && !dims) return dama_error(DAMA_ERR_ARG, "%s: dims is NULL", name);
  for (int32_t k = 0; k < ndims; k++) {
    int32_t d = dims[k];
    if (a->ndim == 0 && (d == 0 || d == -1)) continue; /* a 0-d tensor reduces over "its one dim" */
    DAMA_TRY(ops_wrap_dim(name, &d, a->ndim));
    if (mask[d]) return dama_error(DAMA_ERR_ARG, "%s: dim %d appears more than once in dims", name, dims[k]);
    mask[d] = true;
  }
  return DAMA_OK;
}

dama_dtype ops_reduce_result(dama_redop op, dama_dtype t) {
  const bool fl = dama_dtype_is_float(t);
  switch (op) {
    case DAMA_RSUM: case DAMA_RPROD: return fl ? t : DAMA_I64;
    case DAMA_RMAX: case DAMA_RMIN: return t;
    case DAMA_RARGMAX: case DAMA_RARGMIN: return DAMA_I64;
    default: return fl ? t : DAMA_F32;
  }
}

/* ---- matmul's rules ---- */

dama_status ops_matmul_check(const dama_tensor *a, const dama_tensor *b) {
  char sa[160], sb[160];
  if (a->ndim == 0 || b->ndim == 0)
    return dama_error(DAMA_ERR_SHAPE, "matmul: both arguments need at least 1 dim, got shapes %s and %s",
                      dama_shape_str(a, sa, sizeof sa), dama_shape_str(b, sb, sizeof sb));
  dama_dtype ta = (dama_dtype)a->dtype, tb = (dama_dtype)b->dtype;
  if (!dama_dtype_is_float(ta) || !dama_dtype_is_float(tb))
    return dama_error(DAMA_ERR_DTYPE, "matmul: dtype %s is not supported (expected f32, f64, bf16 or f16)",
                      dama_dtype_name(dama_dtype_is_float(ta) ? tb : ta));
  if (ta != tb)
    return dama_error(DAMA_ERR_DTYPE, "matmul: operands have different dtypes %s and %s (convert one first)",
                      dama_dtype_name(ta), dama_dtype_name(tb));
  return DAMA_OK;
}

dama_status ops_matmul_shapes(const dama_tensor *a, const dama_tensor *b, ops_matmul_shape *p) {
  char sa[160], sb[160];
  memset(p, 0, sizeof *p);
  dama_tensor *va = NULL, *vb = NULL;
  if (a->ndim == 1) DAMA_TRY(dama_unsqueeze(&va, a, 0));
  else { dama_tensor_retain((dama_tensor *)a); va = (dama_tensor *)a; }
  dama_status s = DAMA_OK;
  if (b->ndim == 1) s = dama_unsqueeze(&vb, b, 1);
  else { dama_tensor_retain((dama_tensor *)b); vb = (dama_tensor *)b; }
  if (s != DAMA_OK) { dama_tensor_release(va); return s; }
  const int64_t m = va->shape[va->ndim - 2], k = va->shape[va->ndim - 1];
  const int64_t k2 = vb->shape[vb->ndim - 2], n = vb->shape[vb->ndim - 1];
  if (k != k2) {
    s = dama_error(DAMA_ERR_SHAPE, "matmul: shapes %s and %s cannot be multiplied (%lld != %lld)",
                   dama_shape_str(a, sa, sizeof sa), dama_shape_str(b, sb, sizeof sb), (long long)k, (long long)k2);
  } else if (dama_broadcast_shapes(va->ndim - 2, va->shape, vb->ndim - 2, vb->shape, &p->nb, p->bshape) != DAMA_OK) {
    s = dama_error(DAMA_ERR_SHAPE, "matmul: batch dims of shapes %s and %s cannot be broadcast",
                   dama_shape_str(a, sa, sizeof sa), dama_shape_str(b, sb, sizeof sb));
  } else if (p->nb + (a->ndim > 1) + (b->ndim > 1) > DAMA_MAX_DIMS) {
    s = dama_error(DAMA_ERR_SHAPE, "matmul: result would have more than %d dims", DAMA_MAX_DIMS);
  }
  if (s != DAMA_OK) { dama_tensor_release(va); dama_tensor_release(vb); memset(p, 0, sizeof *p); return s; }
  p->va = va;
  p->vb = vb;
  p->m = m;
  p->k = k;
  p->n = n;
  p->ond = p->nb;
  memcpy(p->oshape, p->bshape, sizeof(int64_t) * (size_t)p->nb);
  if (a->ndim > 1) p->oshape[p->ond++] = m;
  if (b->ndim > 1) p->oshape[p->ond++] = n;
  return DAMA_OK;
}
