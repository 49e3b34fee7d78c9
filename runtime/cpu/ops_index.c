/* gather / scatter_ / index_select on the CPU (torch semantics). Indices are i32 or i64 and must lie in
 * [0, size) (no negative indices, like torch); every index is checked before anything is written, and the
 * error names the first bad value and the size. scatter_ runs serially in row-major order of `index`, so
 * duplicate indices give deterministic results (assign: the last write wins; add: summed in that order). */
#include "cpu/ops_internal.h"
#include "core/backend.h"
#include <stdlib.h>

/* A contiguous i64 copy of an index tensor (or a new reference when it already is one). */
static dama_status index_i64(const char *name, const dama_tensor *index, dama_tensor **out) {
  *out = NULL;
  DAMA_TRY(ops_check(name, "index", index));
  if (index->dtype != DAMA_I64 && index->dtype != DAMA_I32)
    return dama_error(DAMA_ERR_DTYPE, "%s: index must be i32 or i64, got %s", name, dama_dtype_name((dama_dtype)index->dtype));
  if (index->dtype == DAMA_I64) return dama_contiguous(out, index);
  return ops_to_dtype(out, index, DAMA_I64);
}

static dama_status check_bounds(const char *name, const int64_t *ix, int64_t n, int64_t size, int32_t dim) {
  for (int64_t i = 0; i < n; i++)
    if (ix[i] < 0 || ix[i] >= size)
      return dama_error(DAMA_ERR_INDEX, "%s: index %lld is out of bounds for dim %d with size %lld", name,
                        (long long)ix[i], (int)dim, (long long)size);
  return DAMA_OK;
}

static inline void copy_el(char *d, const char *s, int sz) {
  switch (sz) {
    case 1: *d = *s; break;
    case 2: memcpy(d, s, 2); break;
    case 4: memcpy(d, s, 4); break;
    default: memcpy(d, s, 8); break;
  }
}

/* ---- gather ---- */

typedef struct gather_ctx {
  const dama_tensor *a, *ix; /* ix: contiguous i64, same shape as out */
  dama_tensor *out;          /* contiguous */
  int32_t dim;
} gather_ctx;

static void gather_range(void *vctx, int64_t b, int64_t e) {
  const gather_ctx *c = vctx;
  const int32_t nd = c->out->ndim;
  const int sz = dama_dtype_size((dama_dtype)c->a->dtype);
  const int64_t *ix = dama_kernel_ptr(c->ix);
  const char *ab = dama_kernel_ptr(c->a);
  char *ob = dama_kernel_ptr(c->out);
  int64_t idx[DAMA_MAX_DIMS], rem = b;
  for (int32_t d = nd - 1; d >= 0; d--) { idx[d] = rem % c->out->shape[d]; rem /= c->out->shape[d]; }
  for (int64_t p = b; p < e; p++) {
    int64_t off = 0;
    for (int32_t d = 0; d < nd; d++) off += (d == c->dim ? ix[p] : idx[d]) * c->a->strides[d];
    copy_el(ob + p * sz, ab + off * sz, sz);
    for (int32_t d = nd - 1; d >= 0; d--) { if (++idx[d] < c->out->shape[d]) break; idx[d] = 0; }
  }
}

/* index dims must fit inside `t` except at dim (where any size is fine) */
static dama_status check_index_shape(const char *name, const dama_tensor *t, const char *tname, const dama_tensor *index,
                                     int32_t dim, bool all_dims) {
  char si[160], st[160];
  if (index->ndim != t->ndim)
    return dama_error(DAMA_ERR_SHAPE, "%s: index has %d dims but %s has %d (shapes %s and %s)", name, index->ndim, tname,
                      t->ndim, dama_shape_str(index, si, sizeof si), dama_shape_str(t, st, sizeof st));
  for (int32_t d = 0; d < t->ndim; d++)
    if ((all_dims || d != dim) && index->shape[d] > t->shape[d])
      return dama_error(DAMA_ERR_SHAPE, "%s: index shape %s is larger than %s shape %s at dim %d", name,
                        dama_shape_str(index, si, sizeof si), tname, dama_shape_str(t, st, sizeof st), d);
  return DAMA_OK;
}

dama_status dama_cpu_gather(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index) {
  if (!out) return dama_error(DAMA_ERR_ARG, "gather: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check("gather", "a", a));
  int32_t d = dim;
  if (a->ndim == 0 && (d == 0 || d == -1)) d = 0;
  else DAMA_TRY(ops_wrap_dim("gather", &d, a->ndim));
  dama_tensor *ix = NULL;
  DAMA_TRY(index_i64("gather", index, &ix));
  dama_status s = check_index_shape("gather", a, "input", index, d, false);
  if (s == DAMA_OK) s = check_bounds("gather", dama_kernel_ptr(ix), dama_numel(ix), a->ndim ? a->shape[d] : 1, d);
  if (s == DAMA_OK) s = dama_empty(out, index->ndim, index->shape, (dama_dtype)a->dtype, a->storage->device);
  if (s == DAMA_OK) {
    gather_ctx c = {a, ix, *out, d};
    s = ops_parallel_range(dama_numel(*out), 1 << 14, 1, gather_range, &c, "gather");
  }
  dama_tensor_release(ix);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

/* ---- scatter_ ---- */

static void add_el(char *d, const char *s, dama_dtype t) {
  switch (t) {
    case DAMA_F32: *(float *)d += *(const float *)s; break;
    case DAMA_F64: *(double *)d += *(const double *)s; break;
    case DAMA_BF16: *(uint16_t *)d = dama_f32_to_bf16(dama_bf16_to_f32(*(uint16_t *)d) + dama_bf16_to_f32(*(const uint16_t *)s)); break;
    case DAMA_F16: *(uint16_t *)d = dama_f32_to_f16(dama_f16_to_f32(*(uint16_t *)d) + dama_f16_to_f32(*(const uint16_t *)s)); break;
    case DAMA_U8: *(uint8_t *)d = (uint8_t)(*(uint8_t *)d + *(const uint8_t *)s); break;
    case DAMA_U16: *(uint16_t *)d = (uint16_t)(*(uint16_t *)d + *(const uint16_t *)s); break;
    case DAMA_I32: *(int32_t *)d = (int32_t)((uint32_t)*(int32_t *)d + (uint32_t)*(const int32_t *)s); break;
    case DAMA_I64: *(int64_t *)d = (int64_t)((uint64_t)*(int64_t *)d + (uint64_t)*(const int64_t *)s); break;
    default: break;
  }
}

dama_status dama_cpu_scatter_(dama_tensor *a, int32_t dim, const dama_tensor *index, const dama_tensor *src, int32_t reduce) {
  DAMA_TRY(ops_check("scatter_", "a", a));
  DAMA_TRY(ops_check("scatter_", "src", src));
  DAMA_TRY(ops_check_writable("scatter_", a));
  if (reduce != 0 && reduce != 1)
    return dama_error(DAMA_ERR_ARG, "scatter_: reduce must be 0 (assign) or 1 (add), got %d", reduce);
  int32_t d = dim;
  if (a->ndim == 0 && (d == 0 || d == -1)) d = 0;
  else DAMA_TRY(ops_wrap_dim("scatter_", &d, a->ndim));
  dama_tensor *ix = NULL, *sv = NULL;
  DAMA_TRY(index_i64("scatter_", index, &ix));
  dama_status s = check_index_shape("scatter_", a, "self", index, d, false);
  /* src: a 0-d tensor is a scalar for every position, else index must fit inside src */
  if (s == DAMA_OK && src->ndim != 0) s = check_index_shape("scatter_", src, "src", index, d, true);
  if (s == DAMA_OK) s = check_bounds("scatter_", dama_kernel_ptr(ix), dama_numel(ix), a->ndim ? a->shape[d] : 1, d);
  if (s == DAMA_OK) {
    if (src->dtype != a->dtype || ops_same_storage(a, src)) s = ops_to_dtype(&sv, src, (dama_dtype)a->dtype);
    else { dama_tensor_retain((dama_tensor *)src); sv = (dama_tensor *)src; }
  }
  if (s == DAMA_OK) {
    const int32_t nd = index->ndim;
    const int64_t n = dama_numel(ix), *iv = dama_kernel_ptr(ix);
    const dama_dtype t = (dama_dtype)a->dtype;
    const int sz = dama_dtype_size(t);
    char *ab = dama_kernel_ptr(a);
    const char *sb = dama_kernel_ptr(sv);
    int64_t idx[DAMA_MAX_DIMS] = {0};
    for (int64_t p = 0; p < n; p++) {
      if ((p & ((1 << 20) - 1)) == 0 && p && dama_interrupt_pending()) {
        s = dama_error(DAMA_ERR_INTERRUPTED, "scatter_: interrupted");
        break;
      }
      int64_t ao = 0, so = 0;
      for (int32_t k = 0; k < nd; k++) {
        ao += (k == d ? iv[p] : idx[k]) * a->strides[k];
        if (sv->ndim) so += idx[k] * sv->strides[k];
      }
      if (reduce) add_el(ab + ao * sz, sb + so * sz, t);
      else copy_el(ab + ao * sz, sb + so * sz, sz);
      for (int32_t k = nd - 1; k >= 0; k--) { if (++idx[k] < index->shape[k]) break; idx[k] = 0; }
    }
  }
  dama_tensor_release(ix);
  dama_tensor_release(sv);
  return s;
}

/* ---- index_select ---- */

typedef struct isel_ctx {
  const char *src; char *dst;
  const int64_t *ix;
  int64_t len, size, inner_bytes;
} isel_ctx;

static void isel_range(void *vctx, int64_t b, int64_t e) {
  const isel_ctx *c = vctx;
  for (int64_t w = b; w < e; w++) {
    int64_t o = w / c->len, j = w % c->len;
    memcpy(c->dst + w * c->inner_bytes, c->src + (o * c->size + c->ix[j]) * c->inner_bytes, (size_t)c->inner_bytes);
  }
}

dama_status dama_cpu_index_select(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index) {
  if (!out) return dama_error(DAMA_ERR_ARG, "index_select: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check("index_select", "a", a));
  if (a->ndim == 0) return dama_error(DAMA_ERR_SHAPE, "index_select: input must have at least 1 dim");
  int32_t d = dim;
  DAMA_TRY(ops_wrap_dim("index_select", &d, a->ndim));
  dama_tensor *ix = NULL, *ac = NULL;
  DAMA_TRY(index_i64("index_select", index, &ix));
  char si[160];
  dama_status s = DAMA_OK;
  if (index->ndim > 1)
    s = dama_error(DAMA_ERR_SHAPE, "index_select: index must be 1-d, got shape %s", dama_shape_str(index, si, sizeof si));
  const int64_t len = dama_numel(ix), size = a->shape[d];
  if (s == DAMA_OK) s = check_bounds("index_select", dama_kernel_ptr(ix), len, size, d);
  if (s == DAMA_OK) s = ops_contiguous(&ac, a);
  int64_t oshape[DAMA_MAX_DIMS];
  memcpy(oshape, a->shape, sizeof oshape);
  oshape[d] = len;
  if (s == DAMA_OK) s = dama_empty(out, a->ndim, oshape, (dama_dtype)a->dtype, a->storage->device);
  if (s == DAMA_OK) {
    int64_t outer = 1, inner = 1;
    for (int32_t k = 0; k < d; k++) outer *= a->shape[k];
    for (int32_t k = d + 1; k < a->ndim; k++) inner *= a->shape[k];
    isel_ctx c = {dama_kernel_ptr(ac), dama_kernel_ptr(*out), dama_kernel_ptr(ix), len, size,
                  inner * dama_dtype_size((dama_dtype)a->dtype)};
    if (inner > 0) s = ops_parallel_range(outer * len, 64, inner, isel_range, &c, "index_select");
  }
  dama_tensor_release(ix);
  dama_tensor_release(ac);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}
