/* sort / argsort / topk along one dim on the CPU. Every row is sorted with a stable merge sort of
 * (key, index) pairs, so equal keys keep their input order in both directions (stable is always on).
 * NaN sorts as the largest value (last ascending, first descending), like torch. topk returns the first
 * k of that order: the k largest (ties: lower index first) or smallest, always sorted. */
#include "cpu/ops_internal.h"
#include "core/backend.h"
#include <stdlib.h>

#define RUN 16

#define DEFINE_SORT(S, T, LESS)                                                                    \
  typedef struct pair_##S { T key; int64_t idx; } pair_##S;                                        \
  static void msort_##S(pair_##S *a, pair_##S *tmp, int64_t n) {                                 \
    for (int64_t b = 0; b < n; b += RUN) { /* insertion sort of short runs (stable) */             \
      int64_t e = b + RUN < n ? b + RUN : n;                                                       \
      for (int64_t i = b + 1; i < e; i++) {                                                        \
        pair_##S v = a[i]; int64_t j = i;                                                          \
        while (j > b && LESS(v.key, a[j - 1].key)) { a[j] = a[j - 1]; j--; }                       \
        a[j] = v;                                                                                  \
      }                                                                                            \
    }                                                                                              \
    pair_##S *src = a, *dst = tmp;                                                                 \
    for (int64_t w = RUN; w < n; w *= 2) {                                                         \
      for (int64_t lo = 0; lo < n; lo += 2 * w) {                                                  \
        int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;               \
        int64_t i = lo, j = mid, k = lo;                                                           \
        while (i < mid && j < hi) dst[k++] = LESS(src[j].key, src[i].key) ? src[j++] : src[i++];   \
        while (i < mid) dst[k++] = src[i++];                                                       \
        while (j < hi) dst[k++] = src[j++];                                                        \
      }                                                                                            \
      pair_##S *t = src; src = dst; dst = t;                                                       \
    }                                                                                              \
    if (src != a) memcpy(a, src, (size_t)n * sizeof *a);                                           \
  }

/* ascending "x before y"; NaN is largest */
#define LESS_F_ASC(x, y) ((x) < (y) || ((y) != (y) && (x) == (x)))
#define LESS_F_DESC(x, y) ((x) > (y) || ((x) != (x) && (y) == (y)))
#define LESS_I_ASC(x, y) ((x) < (y))
#define LESS_I_DESC(x, y) ((x) > (y))

DEFINE_SORT(f32a, float, LESS_F_ASC)
DEFINE_SORT(f32d, float, LESS_F_DESC)
DEFINE_SORT(f64a, double, LESS_F_ASC)
DEFINE_SORT(f64d, double, LESS_F_DESC)
DEFINE_SORT(i64a, int64_t, LESS_I_ASC)
DEFINE_SORT(i64d, int64_t, LESS_I_DESC)

typedef struct sort_ctx {
  const dama_tensor *a;
  dama_tensor *vals, *inds; /* contiguous outputs, dim size k (vals may be NULL) */
  int32_t dim;
  int64_t n, k;
  int desc;
  ops_kind kind;
  volatile int failed;
} sort_ctx;

/* element offset of row r (all dims but `dim`, row-major) in tensor t */
static int64_t row_offset(const dama_tensor *t, int32_t dim, int64_t r) {
  int64_t off = 0;
  for (int32_t d = t->ndim - 1; d >= 0; d--) {
    if (d == dim) continue;
    off += (r % t->shape[d]) * t->strides[d];
    r /= t->shape[d];
  }
  return off;
}

#define SORT_ROW(S, T)                                                                             \
  do {                                                                                             \
    pair_##S *p = (pair_##S *)pairs, *tmp = (pair_##S *)tmps;                                      \
    const T *key = (const T *)keys;                                                                \
    for (int64_t i = 0; i < n; i++) { p[i].key = key[i]; p[i].idx = i; }                           \
    msort_##S(p, tmp, n);                                                                          \
    T *kv = (T *)keys;                                                                             \
    for (int64_t i = 0; i < k; i++) { kv[i] = p[i].key; oi[i * ist] = p[i].idx; }                  \
  } while (0)

static void sort_range(void *vctx, int64_t b, int64_t e) {
  sort_ctx *c = vctx;
  const int64_t n = c->n, k = c->k;
  const dama_tensor *a = c->a;
  void *keys = malloc((size_t)(n > 0 ? n : 1) * 8);
  void *pairs = malloc((size_t)(n > 0 ? n : 1) * 16), *tmps = malloc((size_t)(n > 0 ? n : 1) * 16);
  if (!keys || !pairs || !tmps) { c->failed = 1; free(keys); free(pairs); free(tmps); return; }
  const dama_dtype dt = (dama_dtype)a->dtype;
  const int esz = dama_dtype_size(dt);
  const int64_t ast = a->ndim ? a->strides[c->dim] : 1;
  const int64_t ist = c->inds->ndim ? c->inds->strides[c->dim] : 1;
  for (int64_t r = b; r < e; r++) {
    const char *src = (const char *)dama_kernel_ptr(a) + row_offset(a, c->dim, r) * esz;
    ops_load(c->kind, dt, src, ast, n, keys);
    int64_t *oi = (int64_t *)dama_kernel_ptr(c->inds) + row_offset(c->inds, c->dim, r);
    if (c->kind == OPS_KF32) { if (c->desc) SORT_ROW(f32d, float); else SORT_ROW(f32a, float); }
    else if (c->kind == OPS_KF64) { if (c->desc) SORT_ROW(f64d, double); else SORT_ROW(f64a, double); }
    else { if (c->desc) SORT_ROW(i64d, int64_t); else SORT_ROW(i64a, int64_t); }
    if (c->vals) {
      char *ov = (char *)dama_kernel_ptr(c->vals) + row_offset(c->vals, c->dim, r) * esz;
      ops_store(c->kind, keys, dt, ov, c->vals->ndim ? c->vals->strides[c->dim] : 1, k);
    }
  }
  free(keys); free(pairs); free(tmps);
}

/* Sort rows along dim, keeping the first k of each; vals may be NULL (argsort). */
static dama_status sort_core(const char *name, dama_tensor **vals, dama_tensor **inds, const dama_tensor *a,
                             int32_t dim, int desc, int64_t k) {
  if (vals) *vals = NULL;
  *inds = NULL;
  int32_t d = dim;
  if (a->ndim == 0 && (d == 0 || d == -1)) d = 0;
  else DAMA_TRY(ops_wrap_dim(name, &d, a->ndim));
  const int64_t n = a->ndim ? a->shape[d] : 1;
  if (k < 0 || k > n)
    return dama_error(DAMA_ERR_ARG, "%s: k=%lld is out of range for dim %d of size %lld", name, (long long)k, dim,
                      (long long)n);
  int64_t oshape[DAMA_MAX_DIMS];
  memcpy(oshape, a->shape, sizeof oshape);
  if (a->ndim) oshape[d] = k;
  dama_status s = dama_empty(inds, a->ndim, oshape, DAMA_I64, a->storage->device);
  if (s == DAMA_OK && vals) s = dama_empty(vals, a->ndim, oshape, (dama_dtype)a->dtype, a->storage->device);
  if (s == DAMA_OK) {
    sort_ctx c = {a, vals ? *vals : NULL, *inds, d, n, k, desc, ops_kind_of((dama_dtype)a->dtype), 0};
    const int64_t rows = n > 0 ? dama_numel(a) / n : 0;
    int64_t work = n * 8 + 1;
    s = ops_parallel_range(rows, 1, work, sort_range, &c, name);
    if (s == DAMA_OK && c.failed) s = dama_error(DAMA_ERR_OOM, "%s: out of memory for sort buffers", name);
  }
  if (s != DAMA_OK) {
    if (vals) { dama_tensor_release(*vals); *vals = NULL; }
    dama_tensor_release(*inds); *inds = NULL;
  }
  return s;
}

/* Size of dim (1 for a 0-d tensor and dim 0/-1). */
static dama_status dim_size(const char *name, const dama_tensor *a, int32_t dim, int64_t *n) {
  *n = 1;
  if (a->ndim == 0 && (dim == 0 || dim == -1)) return DAMA_OK;
  DAMA_TRY(ops_wrap_dim(name, &dim, a->ndim));
  *n = a->shape[dim];
  return DAMA_OK;
}

dama_status dama_cpu_sort(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                      int32_t descending, int32_t stable) {
  if (!values || !indices) return dama_error(DAMA_ERR_ARG, "sort: values/indices output is NULL");
  *values = *indices = NULL;
  DAMA_TRY(ops_check("sort", "a", a));
  (void)stable;
  int64_t n;
  DAMA_TRY(dim_size("sort", a, dim, &n));
  return sort_core("sort", values, indices, a, dim, descending != 0, n);
}

dama_status dama_cpu_argsort(dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t descending, int32_t stable) {
  if (!indices) return dama_error(DAMA_ERR_ARG, "argsort: indices output is NULL");
  *indices = NULL;
  DAMA_TRY(ops_check("argsort", "a", a));
  (void)stable;
  int64_t n;
  DAMA_TRY(dim_size("argsort", a, dim, &n));
  return sort_core("argsort", NULL, indices, a, dim, descending != 0, n);
}

dama_status dama_cpu_topk(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int64_t k, int32_t dim,
                      int32_t largest, int32_t sorted) {
  if (!values || !indices) return dama_error(DAMA_ERR_ARG, "topk: values/indices output is NULL");
  *values = *indices = NULL;
  DAMA_TRY(ops_check("topk", "a", a));
  (void)sorted;
  return sort_core("topk", values, indices, a, dim, largest != 0, k);
}
