/* ops_index.c — the CUDA backend's sort/argsort/topk, gather, scatter_, index_select and cat (cuda_ops.h says how an
 * op area is built). Each slot has its CPU twin's semantics and error messages (runtime/cpu/ops_sort.c,
 * ops_index.c, ops_join.c): the same checks in the same order on the host, outputs allocated on the input's device.
 *
 * Bounds of index values are checked on the device (one kernel records the first bad position; the kernels after
 * it skip bad indices, and scatter_ writes nothing at all then) and read back once at the end of the op, so gather,
 * scatter_ and index_select wait for the device once (a 16-byte copy) to report a bad index as the CPU does, naming
 * the first bad value in row-major order. While a CUDA graph captures the device's stream nothing may wait: the
 * check still runs (and keeps a failing scatter_ from writing) but no error is returned. sort/argsort/topk and cat
 * never wait. */
#include "cuda_ops.h"
#include "core/op_args.h"
#include "graph.h"
#include "index_launch.h"

#include <stdio.h>
#include <string.h>

static dama_cuda_tdesc tdesc_of(const dama_tensor *t) {
  dama_cuda_tdesc d;
  memset(&d, 0, sizeof d);
  d.ndim = t->ndim;
  for (int32_t k = 0; k < t->ndim; k++) {
    d.shape[k] = t->shape[k];
    d.strides[k] = t->strides[k];
  }
  return d;
}

/* ---- the device error word of one op ---- */

typedef struct dev_err {
  unsigned long long *p;
} dev_err;

static dama_status err_open(const char *op, dev_err *e) {
  void *p = NULL;
  DAMA_TRY(dama_cuda_scratch_alloc(op, 16, &p));
  e->p = p;
  cudaError_t ce = cudaMemsetAsync(p, 0x7f, 16, dama_cuda_stream());
  if (ce != cudaSuccess) {
    dama_cuda_scratch_free(p, 16);
    e->p = NULL;
    return dama_cuda_status(ce, "cudaMemsetAsync(err, 0x7f, 16, stream)", __FILE__, __LINE__);
  }
  return DAMA_OK;
}

/* Wait for the op's kernels and read the error word; frees it. Nothing waits (no error) while a graph captures. */
static dama_status err_read(dev_err *e, unsigned long long *value) {
  unsigned long long h[2] = {DAMA_CUDA_NO_ERROR, DAMA_CUDA_NO_ERROR};
  *value = DAMA_CUDA_NO_ERROR;
  if (dama_cuda_device_capture(dama_cuda_current_device())) {
    dama_cuda_scratch_free(e->p, 16);
    e->p = NULL;
    return DAMA_OK;
  }
  cudaError_t ce = cudaMemcpyAsync(h, e->p, sizeof h, cudaMemcpyDeviceToHost, dama_cuda_stream());
  if (ce == cudaSuccess) ce = cudaStreamSynchronize(dama_cuda_stream());
  dama_cuda_scratch_free(e->p, 16);
  e->p = NULL;
  if (ce != cudaSuccess) return dama_cuda_status(ce, "reading an index check's result", __FILE__, __LINE__);
  *value = h[0];
  return DAMA_OK;
}

static void err_close(dev_err *e) {
  if (e->p) dama_cuda_scratch_free(e->p, 16);
  e->p = NULL;
}

/* The CPU's bounds error for the index value at row-major position pos of index. */
static dama_status bad_index_error(const char *name, const dama_tensor *index, unsigned long long pos, int64_t size,
                                   int32_t dim) {
  int64_t off = 0, r = (int64_t)pos;
  for (int32_t k = index->ndim - 1; k >= 0; k--) {
    off += (r % index->shape[k]) * index->strides[k];
    r /= index->shape[k];
  }
  const int esz = dama_dtype_size((dama_dtype)index->dtype);
  const char *src = (const char *)dama_kernel_ptr(index) + off * esz;
  int64_t v = 0;
  if (esz == 4) {
    int32_t w = 0;
    DAMA_CUDA_TRY(cudaMemcpyAsync(&w, src, 4, cudaMemcpyDeviceToHost, dama_cuda_stream()));
    DAMA_CUDA_TRY(cudaStreamSynchronize(dama_cuda_stream()));
    v = w;
  } else {
    DAMA_CUDA_TRY(cudaMemcpyAsync(&v, src, 8, cudaMemcpyDeviceToHost, dama_cuda_stream()));
    DAMA_CUDA_TRY(cudaStreamSynchronize(dama_cuda_stream()));
  }
  return dama_error(DAMA_ERR_INDEX, "%s: index %lld is out of bounds for dim %d with size %lld", name, (long long)v,
                    (int)dim, (long long)size);
}

/* ---- sort / argsort / topk ---- */

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
  if (n > DAMA_CUDA_SORT_MAX_ROW)
    return dama_error(DAMA_ERR_ARG, "%s: dim %d has %lld elements; the CUDA sort takes rows of at most 2^31", name,
                      dim, (long long)n);
  int64_t oshape[DAMA_MAX_DIMS];
  memcpy(oshape, a->shape, sizeof oshape);
  if (a->ndim) oshape[d] = k;
  dama_status s = dama_empty(inds, a->ndim, oshape, DAMA_I64, a->storage->device);
  if (s == DAMA_OK && vals) s = dama_empty(vals, a->ndim, oshape, (dama_dtype)a->dtype, a->storage->device);
  const int64_t rows = n > 0 ? dama_numel(a) / n : 0;
  if (s == DAMA_OK && rows > 0 && k > 0) {
    const dama_dtype dt = (dama_dtype)a->dtype;
    const int wide = dt == DAMA_F64 || dt == DAMA_I64;
    const int64_t bytes = dama_cuda_sort_scratch_bytes(rows, n, wide);
    void *scratch = NULL;
    if (bytes > 0) s = dama_cuda_scratch_alloc(name, bytes, &scratch);
    if (s == DAMA_OK) {
      const dama_cuda_tdesc in = tdesc_of(a), out = tdesc_of(*inds);
      cudaError_t e = dama_cuda_sort_rows(vals ? dama_kernel_ptr(*vals) : NULL, dama_kernel_ptr(*inds), &out,
                                          dama_kernel_ptr(a), &in, d, (int32_t)dt, dama_dtype_size(dt), desc, n, k,
                                          rows, scratch, dama_cuda_stream());
      if (scratch) dama_cuda_scratch_free(scratch, bytes);
      if (e != cudaSuccess) s = dama_cuda_status(e, "dama_cuda_sort_rows", __FILE__, __LINE__);
    }
  }
  if (s != DAMA_OK) {
    if (vals) { dama_tensor_release(*vals); *vals = NULL; }
    dama_tensor_release(*inds); *inds = NULL;
  }
  return s;
}

static dama_status dim_size(const char *name, const dama_tensor *a, int32_t dim, int64_t *n) {
  *n = 1;
  if (a->ndim == 0 && (dim == 0 || dim == -1)) return DAMA_OK;
  DAMA_TRY(ops_wrap_dim(name, &dim, a->ndim));
  *n = a->shape[dim];
  return DAMA_OK;
}

static dama_status cuda_sort(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                             int32_t descending, int32_t stable) {
  if (!values || !indices) return dama_error(DAMA_ERR_ARG, "sort: values/indices output is NULL");
  *values = *indices = NULL;
  DAMA_TRY(ops_arg_check("sort", "a", a));
  (void)stable; /* always stable, as the CPU's */
  int64_t n;
  DAMA_TRY(dim_size("sort", a, dim, &n));
  return sort_core("sort", values, indices, a, dim, descending != 0, n);
}

static dama_status cuda_argsort(dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t descending,
                                int32_t stable) {
  if (!indices) return dama_error(DAMA_ERR_ARG, "argsort: indices output is NULL");
  *indices = NULL;
  DAMA_TRY(ops_arg_check("argsort", "a", a));
  (void)stable;
  int64_t n;
  DAMA_TRY(dim_size("argsort", a, dim, &n));
  return sort_core("argsort", NULL, indices, a, dim, descending != 0, n);
}

static dama_status cuda_topk(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int64_t k,
                             int32_t dim, int32_t largest, int32_t sorted) {
  if (!values || !indices) return dama_error(DAMA_ERR_ARG, "topk: values/indices output is NULL");
  *values = *indices = NULL;
  DAMA_TRY(ops_arg_check("topk", "a", a));
  (void)sorted; /* always sorted, as the CPU's */
  return sort_core("topk", values, indices, a, dim, largest != 0, k);
}

/* ---- gather / scatter_ / index_select ---- */

static dama_status index_dtype(const char *name, const dama_tensor *index) {
  DAMA_TRY(ops_arg_check(name, "index", index));
  if (index->dtype != DAMA_I64 && index->dtype != DAMA_I32)
    return dama_error(DAMA_ERR_DTYPE, "%s: index must be i32 or i64, got %s", name,
                      dama_dtype_name((dama_dtype)index->dtype));
  return DAMA_OK;
}

static dama_status check_index_shape(const char *name, const dama_tensor *t, const char *tname,
                                     const dama_tensor *index, int32_t dim, bool all_dims) {
  char si[160], st[160];
  if (index->ndim != t->ndim)
    return dama_error(DAMA_ERR_SHAPE, "%s: index has %d dims but %s has %d (shapes %s and %s)", name, index->ndim,
                      tname, t->ndim, dama_shape_str(index, si, sizeof si), dama_shape_str(t, st, sizeof st));
  for (int32_t d = 0; d < t->ndim; d++)
    if ((all_dims || d != dim) && index->shape[d] > t->shape[d])
      return dama_error(DAMA_ERR_SHAPE, "%s: index shape %s is larger than %s shape %s at dim %d", name,
                        dama_shape_str(index, si, sizeof si), tname, dama_shape_str(t, st, sizeof st), d);
  return DAMA_OK;
}

/* Queue the bounds check of index against [0, size) into e (nothing for an empty index). */
static dama_status queue_bounds(const dama_tensor *index, int64_t size, dev_err *e) {
  if (dama_numel(index) == 0) return DAMA_OK;
  const dama_cuda_tdesc ix = tdesc_of(index);
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_check_index(e->p, dama_kernel_ptr(index), index->dtype == DAMA_I32, &ix, size,
                                             dama_cuda_stream()));
  return DAMA_OK;
}

/* After the op's kernels: the CPU's error for the first bad index, if the check found one. */
static dama_status finish_bounds(const char *name, const dama_tensor *index, int64_t size, int32_t dim, dev_err *e) {
  unsigned long long pos = DAMA_CUDA_NO_ERROR;
  DAMA_TRY(err_read(e, &pos));
  if (pos == DAMA_CUDA_NO_ERROR) return DAMA_OK;
  return bad_index_error(name, index, pos, size, dim);
}

/* out = a gathered along dim by an index read under strides ixs (see dama_cuda_gather). */
static dama_status run_gather(const char *name, dama_tensor *out, const dama_tensor *a, const dama_tensor *index,
                              const dama_cuda_tdesc *ixs, int32_t d, int64_t size, dev_err *e) {
  if (dama_numel(out) > 0) {
    const dama_cuda_tdesc o = tdesc_of(out), as = tdesc_of(a);
    DAMA_CUDA_LAUNCH_TRY(dama_cuda_gather(dama_kernel_ptr(out), dama_kernel_ptr(a), &o, &as, dama_kernel_ptr(index),
                                          index->dtype == DAMA_I32, ixs, d, size,
                                          dama_dtype_size((dama_dtype)a->dtype), dama_cuda_stream()));
  }
  return finish_bounds(name, index, size, d, e);
}

static dama_status cuda_gather(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index) {
  if (!out) return dama_error(DAMA_ERR_ARG, "gather: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_arg_check("gather", "a", a));
  int32_t d = dim;
  if (a->ndim == 0 && (d == 0 || d == -1)) d = 0;
  else DAMA_TRY(ops_wrap_dim("gather", &d, a->ndim));
  DAMA_TRY(index_dtype("gather", index));
  DAMA_TRY(check_index_shape("gather", a, "input", index, d, false));
  const int64_t size = a->ndim ? a->shape[d] : 1;
  dev_err e = {NULL};
  DAMA_TRY(err_open("gather", &e));
  dama_status s = queue_bounds(index, size, &e);
  if (s == DAMA_OK) s = dama_empty(out, index->ndim, index->shape, (dama_dtype)a->dtype, a->storage->device);
  if (s == DAMA_OK) {
    const dama_cuda_tdesc ixs = tdesc_of(index);
    s = run_gather("gather", *out, a, index, &ixs, d, size, &e);
  }
  err_close(&e);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

static dama_status cuda_index_select(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index) {
  if (!out) return dama_error(DAMA_ERR_ARG, "index_select: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_arg_check("index_select", "a", a));
  if (a->ndim == 0) return dama_error(DAMA_ERR_SHAPE, "index_select: input must have at least 1 dim");
  int32_t d = dim;
  DAMA_TRY(ops_wrap_dim("index_select", &d, a->ndim));
  DAMA_TRY(index_dtype("index_select", index));
  char si[160];
  if (index->ndim > 1)
    return dama_error(DAMA_ERR_SHAPE, "index_select: index must be 1-d, got shape %s",
                      dama_shape_str(index, si, sizeof si));
  const int64_t len = dama_numel(index), size = a->shape[d];
  dev_err e = {NULL};
  DAMA_TRY(err_open("index_select", &e));
  dama_status s = queue_bounds(index, size, &e);
  int64_t oshape[DAMA_MAX_DIMS];
  memcpy(oshape, a->shape, sizeof oshape);
  oshape[d] = len;
  if (s == DAMA_OK) s = dama_empty(out, a->ndim, oshape, (dama_dtype)a->dtype, a->storage->device);
  if (s == DAMA_OK) {
    /* the index read at out's position: only the coordinate along dim moves it */
    dama_cuda_tdesc ixs;
    memset(&ixs, 0, sizeof ixs);
    ixs.ndim = a->ndim;
    ixs.strides[d] = index->ndim ? index->strides[0] : 0;
    s = run_gather("index_select", *out, a, index, &ixs, d, size, &e);
  }
  err_close(&e);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

/* dst = src converted to dst's dtype (same shape; any layout on both sides). */
static dama_status copy_into(const char *op, dama_tensor *dst, const dama_tensor *src) {
  (void)op;
  if (dama_numel(dst) == 0) return DAMA_OK;
  const int des = dama_dtype_size((dama_dtype)dst->dtype), ses = dama_dtype_size((dama_dtype)src->dtype);
  if (dst->dtype == src->dtype && dama_is_contiguous(dst) && dama_is_contiguous(src)) {
    DAMA_CUDA_TRY(cudaMemcpyAsync(dama_kernel_ptr(dst), dama_kernel_ptr(src), (size_t)(dama_numel(dst) * des),
                                  cudaMemcpyDeviceToDevice, dama_cuda_stream()));
    return DAMA_OK;
  }
  const dama_cuda_tdesc d = tdesc_of(dst), s = tdesc_of(src);
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_convert_copy(dama_kernel_ptr(dst), &d, dst->dtype, des, dama_kernel_ptr(src), &s,
                                              src->dtype, ses, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_scatter_(dama_tensor *a, int32_t dim, const dama_tensor *index, const dama_tensor *src,
                                 int32_t reduce) {
  DAMA_TRY(ops_arg_check("scatter_", "a", a));
  DAMA_TRY(ops_arg_check("scatter_", "src", src));
  DAMA_TRY(ops_check_writable("scatter_", a));
  if (reduce != 0 && reduce != 1)
    return dama_error(DAMA_ERR_ARG, "scatter_: reduce must be 0 (assign) or 1 (add), got %d", reduce);
  int32_t d = dim;
  if (a->ndim == 0 && (d == 0 || d == -1)) d = 0;
  else DAMA_TRY(ops_wrap_dim("scatter_", &d, a->ndim));
  DAMA_TRY(index_dtype("scatter_", index));
  DAMA_TRY(check_index_shape("scatter_", a, "self", index, d, false));
  if (src->ndim != 0) DAMA_TRY(check_index_shape("scatter_", src, "src", index, d, true));
  const int64_t n = dama_numel(index), size = a->ndim ? a->shape[d] : 1;
  if (n >= DAMA_CUDA_SORT_MAX_ROW)
    return dama_error(DAMA_ERR_ARG, "scatter_: index has %lld elements; the CUDA scatter_ takes fewer than 2^31",
                      (long long)n);
  if (n == 0) return DAMA_OK;
  dev_err e = {NULL};
  DAMA_TRY(err_open("scatter_", &e));
  dama_status s = queue_bounds(index, size, &e);
  /* the source in the target's dtype, and never an alias of the target (the CPU's ops_to_dtype copy) */
  dama_tensor *sv = NULL;
  if (s == DAMA_OK) {
    if (src->dtype != a->dtype || ops_same_storage(a, src)) {
      s = dama_empty(&sv, src->ndim, src->shape, (dama_dtype)a->dtype, src->storage->device);
      if (s == DAMA_OK) s = copy_into("scatter_", sv, src);
    } else {
      dama_tensor_retain((dama_tensor *)src);
      sv = (dama_tensor *)src;
    }
  }
  if (s == DAMA_OK) {
    const int64_t bytes = dama_cuda_scatter_scratch_bytes(n);
    void *scratch = NULL;
    s = dama_cuda_scratch_alloc("scatter_", bytes, &scratch);
    if (s == DAMA_OK) {
      const dama_cuda_tdesc ix = tdesc_of(index), as = tdesc_of(a), ss = tdesc_of(sv);
      cudaError_t ce = dama_cuda_scatter(dama_kernel_ptr(a), dama_kernel_ptr(sv), dama_kernel_ptr(index),
                                         index->dtype == DAMA_I32, &ix, &as, &ss, d, a->dtype,
                                         dama_dtype_size((dama_dtype)a->dtype), reduce, e.p, scratch,
                                         dama_cuda_stream());
      dama_cuda_scratch_free(scratch, bytes);
      if (ce != cudaSuccess) s = dama_cuda_status(ce, "dama_cuda_scatter", __FILE__, __LINE__);
    }
  }
  if (s == DAMA_OK) s = finish_bounds("scatter_", index, size, d, &e);
  err_close(&e);
  dama_tensor_release(sv);
  return s;
}

/* ---- cat ---- */

static dama_status cuda_cat(dama_tensor **out, int32_t n, dama_tensor *const *ts, int32_t dim) {
  if (!out) return dama_error(DAMA_ERR_ARG, "cat: out is NULL");
  *out = NULL;
  if (n <= 0 || !ts) return dama_error(DAMA_ERR_ARG, "cat: expected a non-empty list of tensors, got %d", n);
  for (int32_t i = 0; i < n; i++) {
    char what[32];
    snprintf(what, sizeof what, "tensor %d", i);
    DAMA_TRY(ops_arg_check("cat", what, ts[i]));
  }
  int32_t ref = -1;
  for (int32_t i = 0; i < n && ref < 0; i++)
    if (!(ts[i]->ndim == 1 && ts[i]->shape[0] == 0)) ref = i;
  if (ref < 0) ref = 0;
  const dama_tensor *r = ts[ref];
  if (r->ndim == 0)
    return dama_error(DAMA_ERR_SHAPE, "cat: tensor %d is 0-d; zero-dimensional tensors cannot be concatenated", ref);
  int32_t d = dim;
  DAMA_TRY(ops_wrap_dim("cat", &d, r->ndim));
  int64_t total = 0;
  dama_dtype dt = (dama_dtype)ts[0]->dtype;
  for (int32_t i = 0; i < n; i++) {
    const dama_tensor *t = ts[i];
    dt = ops_promote(dt, (dama_dtype)t->dtype);
    if (t->ndim == 1 && t->shape[0] == 0 && r->ndim != 1) continue;
    char s1[160], s2[160];
    if (t->ndim != r->ndim)
      return dama_error(DAMA_ERR_SHAPE, "cat: tensor %d has %d dims (shape %s) but tensor %d has %d (shape %s)", i,
                        t->ndim, dama_shape_str(t, s1, sizeof s1), ref, r->ndim, dama_shape_str(r, s2, sizeof s2));
    for (int32_t k = 0; k < r->ndim; k++)
      if (k != d && t->shape[k] != r->shape[k])
        return dama_error(DAMA_ERR_SHAPE,
                          "cat: tensor %d has shape %s but tensor %d has shape %s; sizes must match except in dim %d",
                          i, dama_shape_str(t, s1, sizeof s1), ref, dama_shape_str(r, s2, sizeof s2), d);
    total += t->shape[d];
  }
  int64_t oshape[DAMA_MAX_DIMS];
  memcpy(oshape, r->shape, sizeof oshape);
  oshape[d] = total;
  DAMA_TRY(dama_empty(out, r->ndim, oshape, dt, r->storage->device));
  int64_t at = 0;
  dama_status s = DAMA_OK;
  for (int32_t i = 0; i < n && s == DAMA_OK; i++) {
    const dama_tensor *t = ts[i];
    if (t->ndim == 1 && t->shape[0] == 0 && r->ndim != 1) continue;
    if (dama_interrupt_pending()) { s = dama_error(DAMA_ERR_INTERRUPTED, "cat: interrupted"); break; }
    dama_tensor *slot = NULL;
    s = dama_narrow(&slot, *out, d, at, t->shape[d]);
    if (s == DAMA_OK && t->shape[d] > 0) s = copy_into("cat", slot, t);
    dama_tensor_release(slot);
    at += t->shape[d];
  }
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

void dama_cuda_fill_ops_index(dama_backend_ops *ops) {
  ops->sort = cuda_sort;
  ops->argsort = cuda_argsort;
  ops->topk = cuda_topk;
  ops->gather = cuda_gather;
  ops->scatter_ = cuda_scatter_;
  ops->index_select = cuda_index_select;
  ops->cat = cuda_cat;
}
