/* Tensors: refcounted storage, views (shape/strides/offset), creation, reshaping, copies. */
#include "core/dama_internal.h"
#include "core/backend.h"
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

const char *dama_dims_str(int32_t nd, const int64_t *shape, char *buf, size_t len) {
  size_t p = 0;
  buf[0] = '\0';
  p += (size_t)snprintf(buf, len, "[");
  for (int32_t i = 0; i < nd && p < len; i++) p += (size_t)snprintf(buf + p, len - p, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (p < len) snprintf(buf + p, len - p, "]");
  return buf;
}

/* ---- storage and headers ---- */

static void storage_release(dama_storage *st) {
  if (!st) return;
  if (atomic_fetch_sub((_Atomic int64_t *)&st->refcount, 1) != 1) return;
  if (st->owns_data) {
    const dama_backend *be = dama_backend_of_type(st->pinned ? st->pinned_for.type : st->device.type);
    if (st->pinned && be && be->host_free) be->host_free(st->pinned_for.index, st->data, st->nbytes);
    else if (st->pinned) dama_free_bytes(st->data, st->nbytes);
    else if (be) be->free(st->device.index, st->data, st->nbytes);
    dama_storage_count(st->device, -st->nbytes);
  } else if (st->release_fn) st->release_fn(st->keepalive);
  free(st);
}

/* The out-of-memory error: the bytes asked for and, on a device other than the cpu, what its backend says is free,
 * of what total, and how much its allocator still caches (a caching allocator has emptied its cache and retried
 * once before it gives up). */
static dama_status storage_oom(const char *op, int64_t nbytes, dama_device dev, const char *what) {
  char d[32], facts[160] = "";
  const dama_backend *be = dama_backend_of_type(dev.type);
  int64_t cached = 0, total = 0, free_bytes = 0;
  if (dev.type != DAMA_CPU && be && be->memory_info &&
      be->memory_info(dev.index, &cached, &total, &free_bytes) == DAMA_OK && total > 0)
    snprintf(facts, sizeof facts, " (%lld bytes free of %lld on the device; %lld cached by dama)",
             (long long)free_bytes, (long long)total, (long long)cached);
  return dama_error(DAMA_ERR_OOM, "%s: out of memory allocating %lld bytes of %s on %s%s", op, (long long)nbytes, what,
                    dama_device_str(dev, d, sizeof d), facts);
}

/* Storage of nbytes: on dev from its backend's allocator, or (pinned) host memory pinned by dev's backend where it
 * offers pinned memory (ordinary host memory otherwise). */
static dama_status storage_new_in(dama_storage **out, int64_t nbytes, const char *op, dama_device dev, int pinned) {
  const dama_backend *be = dama_backend_of_type(dev.type);
  if (!be) return dama_device_check(dev);
  if (pinned && !be->host_alloc) { pinned = 0; dev = dama_cpu(); be = dama_backend_of_type(DAMA_CPU); }
  dama_storage *st = calloc(1, sizeof *st);
  if (!st) return dama_error(DAMA_ERR_OOM, "%s: out of memory allocating a tensor header", op);
  st->data = pinned ? be->host_alloc(dev.index, nbytes) : be->alloc(dev.index, nbytes);
  if (!st->data) {
    free(st);
    return storage_oom(op, nbytes, pinned ? dama_cpu() : dev, pinned ? "pinned host memory" : "tensor memory");
  }
  st->nbytes = nbytes;
  st->refcount = 1;
  st->device = pinned ? dama_cpu() : dev;
  st->owns_data = 1;
  st->pinned = pinned;
  if (pinned) st->pinned_for = dev;
  dama_storage_count(st->device, nbytes);
  *out = st;
  return DAMA_OK;
}

void dama_tensor_retain(dama_tensor *t) {
  if (t) atomic_fetch_add((_Atomic int64_t *)&t->refcount, 1);
}

void dama_tensor_release(dama_tensor *t) {
  if (!t) return;
  if (atomic_fetch_sub((_Atomic int64_t *)&t->refcount, 1) != 1) return;
  storage_release(t->storage);
  dama_memory_count_tensor(-1);
  free(t);
}

void dama_contiguous_strides(int32_t ndim, const int64_t *shape, int64_t *strides) {
  int64_t s = 1;
  for (int32_t i = ndim - 1; i >= 0; i--) { strides[i] = s; s *= shape[i] > 0 ? shape[i] : 1; }
}

/* The largest element count (and, with zero-size dims counted as 1, the largest stride product) a
 * tensor may have: byte offsets of 8-byte elements must fit in int64_t. */
#define DAMA_MAX_NUMEL (INT64_MAX / 8)

/* "2^93" for a product of powers of two, else "about 2^92.6" (log2 of the product of sizes, counting
 * zeros as 1 when `skip_zeros`). */
static const char *log2_product_str(int32_t ndim, const int64_t *shape, char *buf, size_t len) {
  double l2 = 0;
  bool exact = true;
  for (int32_t i = 0; i < ndim; i++) {
    if (shape[i] <= 1) continue;
    l2 += log2((double)shape[i]);
    if ((shape[i] & (shape[i] - 1)) != 0) exact = false;
  }
  if (exact) snprintf(buf, len, "2^%.0f", l2);
  else snprintf(buf, len, "about 2^%.1f", l2);
  return buf;
}

/* Checks a shape before anything is allocated: dims in range, sizes >= 0, and both the element count
 * and the product of the nonzero sizes (which the strides reach) small enough that no index or byte
 * offset overflows int64_t. Errors name the operation and the shape. */
static dama_status check_shape(const char *op, int32_t ndim, const int64_t *shape, int64_t *numel) {
  if (ndim < 0 || ndim > DAMA_MAX_DIMS)
    return dama_error(DAMA_ERR_SHAPE, "%s: expected 0 to %d dims, got %d", op, DAMA_MAX_DIMS, ndim);
  int64_t n = 1, extent = 1;
  bool too_big = false;
  for (int32_t i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return dama_error(DAMA_ERR_SHAPE, "%s: size of dim %d must be >= 0, got %lld", op, i, (long long)shape[i]);
    if (shape[i] > 0) {
      if (extent > DAMA_MAX_NUMEL / shape[i]) too_big = true;
      else extent *= shape[i];
    }
  }
  if (too_big) {
    char sb[200], lb[40];
    dama_dims_str(ndim, shape, sb, sizeof sb);
    log2_product_str(ndim, shape, lb, sizeof lb);
    bool has_zero = false;
    for (int32_t i = 0; i < ndim; i++) has_zero |= shape[i] == 0;
    if (has_zero)
      return dama_error(DAMA_ERR_SHAPE,
                        "%s: shape %s is too large: its nonzero sizes multiply to %s, more than 2^60 - 1 "
                        "(its strides would overflow a 64-bit integer)", op, sb, lb);
    return dama_error(DAMA_ERR_SHAPE, "%s: shape %s has %s elements, more than 2^60 - 1 (the most a tensor can hold)",
                      op, sb, lb);
  }
  for (int32_t i = 0; i < ndim; i++) n *= shape[i];
  *numel = n;
  return DAMA_OK;
}

dama_status dama_tensor_view_of(dama_tensor **out, dama_storage *st, int64_t offset, int32_t ndim,
                                const int64_t *shape, const int64_t *strides, dama_dtype dtype) {
  *out = NULL;
  dama_tensor *t = calloc(1, sizeof *t);
  if (!t) return dama_error(DAMA_ERR_OOM, "tensor: out of memory allocating a tensor header");
  atomic_fetch_add((_Atomic int64_t *)&st->refcount, 1);
  t->storage = st;
  t->offset = offset;
  t->ndim = ndim;
  t->dtype = dtype;
  for (int32_t i = 0; i < ndim; i++) { t->shape[i] = shape[i]; t->strides[i] = strides[i]; }
  t->refcount = 1;
  dama_memory_count_tensor(1);
  *out = t;
  return DAMA_OK;
}

static dama_status new_contiguous_in(dama_tensor **out, const char *op, int32_t ndim, const int64_t *shape,
                                     dama_dtype dtype, dama_device dev, int pinned) {
  *out = NULL;
  if ((unsigned)dtype >= DAMA_NUM_DTYPES)
    return dama_error(DAMA_ERR_DTYPE, "%s: invalid dtype %d", op, (int)dtype);
  int64_t n = 0;
  DAMA_TRY(check_shape(op, ndim, shape, &n));
  dama_storage *st = NULL;
  int64_t nbytes = n * dama_dtype_size(dtype);
  DAMA_TRY(storage_new_in(&st, nbytes, op, dev, pinned));
  int64_t strides[DAMA_MAX_DIMS];
  dama_contiguous_strides(ndim, shape, strides);
  dama_status s = dama_tensor_view_of(out, st, 0, ndim, shape, strides, dtype);
  storage_release(st);
  return s;
}

static dama_status new_contiguous(dama_tensor **out, const char *op, int32_t ndim, const int64_t *shape,
                                  dama_dtype dtype, dama_device dev) {
  return new_contiguous_in(out, op, ndim, shape, dtype, dev, 0);
}

static dama_status check_device(const char *op, dama_device dev) {
  if (dama_device_check(dev) == DAMA_OK) return DAMA_OK;
  char msg[256];
  snprintf(msg, sizeof msg, "%s", dama_last_error());
  return dama_error(DAMA_ERR_DEVICE, "%s: %s", op, msg);
}

/* ---- creation ---- */

dama_status dama_empty(dama_tensor **out, int32_t ndim, const int64_t *shape, dama_dtype dtype, dama_device dev) {
  return dama_empty_op(out, "empty", ndim, shape, dtype, dev);
}

dama_status dama_empty_op(dama_tensor **out, const char *op, int32_t ndim, const int64_t *shape, dama_dtype dtype,
                          dama_device dev) {
  *out = NULL;
  if (!op) op = "empty";
  DAMA_TRY(check_device(op, dev));
  return new_contiguous(out, op, ndim, shape, dtype, dev);
}

dama_status dama_zeros(dama_tensor **out, int32_t ndim, const int64_t *shape, dama_dtype dtype, dama_device dev) {
  *out = NULL;
  DAMA_TRY(check_device("zeros", dev));
  DAMA_TRY(new_contiguous(out, "zeros", ndim, shape, dtype, dev));
  if (dev.type == DAMA_CPU) {
    memset((*out)->storage->data, 0, (size_t)(*out)->storage->nbytes);
    return DAMA_OK;
  }
  dama_status s = dama_fill_(*out, 0);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

static void fill_contiguous(void *data, int64_t n, dama_dtype t, double v) {
  if (t == DAMA_F32) { float f = (float)v, *p = data; for (int64_t i = 0; i < n; i++) p[i] = f; return; }
  if (n == 0) return;
  dama_store_f64(data, 0, t, v);
  int sz = dama_dtype_size(t);
  for (int64_t i = 1; i < n; i++) memcpy((char *)data + i * sz, data, (size_t)sz);
}

dama_status dama_full(dama_tensor **out, int32_t ndim, const int64_t *shape, double value, dama_dtype dtype,
                      dama_device dev) {
  *out = NULL;
  DAMA_TRY(check_device("full", dev));
  DAMA_TRY(new_contiguous(out, "full", ndim, shape, dtype, dev));
  if (dev.type == DAMA_CPU) {
    fill_contiguous((*out)->storage->data, dama_numel(*out), dtype, value);
    return DAMA_OK;
  }
  dama_status s = dama_fill_(*out, value);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

/* Host values -> a tensor on dev: built on the host, then one copy to the device. */
static dama_status host_to(dama_tensor **out, dama_tensor *host, dama_device dev) {
  if (dev.type == DAMA_CPU) { *out = host; return DAMA_OK; }
  dama_status s = dama_to_device(out, host, dev);
  dama_tensor_release(host);
  return s;
}

static dama_status from_buffer_host(dama_tensor **out, int32_t ndim, const int64_t *shape, dama_dtype dtype,
                                    const void *src, dama_dtype src_dtype) {
  *out = NULL;
  if ((unsigned)src_dtype >= DAMA_NUM_DTYPES)
    return dama_error(DAMA_ERR_DTYPE, "from_buffer: invalid source dtype %d", (int)src_dtype);
  DAMA_TRY(new_contiguous(out, "from_buffer", ndim, shape, dtype, dama_cpu()));
  int64_t n = dama_numel(*out);
  void *dst = (*out)->storage->data;
  if (n > 0 && !src) {
    dama_tensor_release(*out); *out = NULL;
    return dama_error(DAMA_ERR_ARG, "from_buffer: source pointer is NULL");
  }
  if (dtype == src_dtype) memcpy(dst, src, (size_t)(n * dama_dtype_size(dtype)));
  else for (int64_t i = 0; i < n; i++) dama_store_f64(dst, i, dtype, dama_load_f64(src, i, src_dtype));
  return DAMA_OK;
}

dama_status dama_from_buffer(dama_tensor **out, int32_t ndim, const int64_t *shape, dama_dtype dtype,
                             const void *src, dama_dtype src_dtype, dama_device dev) {
  *out = NULL;
  DAMA_TRY(check_device("from_buffer", dev));
  dama_tensor *h = NULL;
  DAMA_TRY(from_buffer_host(&h, ndim, shape, dtype, src, src_dtype));
  return host_to(out, h, dev);
}

dama_status dama_from_blob(dama_tensor **out, int32_t ndim, const int64_t *shape, const int64_t *strides,
                           dama_dtype dtype, void *data, void *keepalive, void (*release_fn)(void *)) {
  *out = NULL;
  int64_t n = 0;
  DAMA_TRY(check_shape("from_blob", ndim, shape, &n));
  if ((unsigned)dtype >= DAMA_NUM_DTYPES) return dama_error(DAMA_ERR_DTYPE, "from_blob: invalid dtype %d", (int)dtype);
  dama_storage *st = calloc(1, sizeof *st);
  if (!st) return dama_error(DAMA_ERR_OOM, "from_blob: out of memory");
  st->data = data;
  st->nbytes = n * dama_dtype_size(dtype);
  st->refcount = 1;
  st->device = dama_cpu();
  st->keepalive = keepalive;
  st->release_fn = release_fn;
  int64_t cs[DAMA_MAX_DIMS];
  if (!strides) { dama_contiguous_strides(ndim, shape, cs); strides = cs; }
  dama_status s = dama_tensor_view_of(out, st, 0, ndim, shape, strides, dtype);
  storage_release(st);
  return s;
}

dama_status dama_arange(dama_tensor **out, double start, double end, double step, dama_dtype dtype, dama_device dev) {
  *out = NULL;
  DAMA_TRY(check_device("arange", dev));
  if (step == 0 || !isfinite(step) || !isfinite(start) || !isfinite(end))
    return dama_error(DAMA_ERR_ARG, "arange: expected finite start/end and a nonzero step, got (%g, %g, %g)",
                      start, end, step);
  if ((step > 0 && end < start) || (step < 0 && end > start))
    return dama_error(DAMA_ERR_ARG, "arange: step %g goes away from end (start %g, end %g)", step, start, end);
  int64_t n = (int64_t)ceil((end - start) / step);
  if (n < 0) n = 0;
  dama_tensor *h = NULL;
  DAMA_TRY(new_contiguous(&h, "arange", 1, &n, dtype, dama_cpu()));
  for (int64_t i = 0; i < n; i++) dama_store_f64(h->storage->data, i, dtype, start + (double)i * step);
  return host_to(out, h, dev);
}

dama_status dama_linspace(dama_tensor **out, double start, double end, int64_t steps, dama_dtype dtype,
                          dama_device dev) {
  *out = NULL;
  DAMA_TRY(check_device("linspace", dev));
  if (steps < 0) return dama_error(DAMA_ERR_ARG, "linspace: steps must be >= 0, got %lld", (long long)steps);
  dama_tensor *h = NULL;
  DAMA_TRY(new_contiguous(&h, "linspace", 1, &steps, dtype, dama_cpu()));
  double d = steps > 1 ? (end - start) / (double)(steps - 1) : 0;
  /* Like torch: the second half counts back from `end` so the last value is exactly `end`. */
  for (int64_t i = 0; i < steps; i++) {
    double v = i < steps / 2 ? start + d * (double)i : end - d * (double)(steps - 1 - i);
    dama_store_f64(h->storage->data, i, dtype, v);
  }
  return host_to(out, h, dev);
}

/* ---- queries ---- */

int64_t dama_numel(const dama_tensor *t) {
  int64_t n = 1;
  for (int32_t i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

int dama_is_contiguous(const dama_tensor *t) {
  int64_t s = 1;
  for (int32_t i = t->ndim - 1; i >= 0; i--) {
    if (t->shape[i] != 1 && t->strides[i] != s) return 0;
    s *= t->shape[i];
  }
  return 1;
}

void *dama_data_ptr(const dama_tensor *t) {
  if (t->storage->device.type != DAMA_CPU) {
    char d[32];
    dama_error(DAMA_ERR_DEVICE, "data_ptr: the tensor is on %s, whose memory host code cannot read; copy it to the "
               "cpu first", dama_device_str(t->storage->device, d, sizeof d));
    return NULL;
  }
  return (char *)t->storage->data + t->offset * dama_dtype_size(t->dtype);
}

void *dama_kernel_ptr(const dama_tensor *t) {
  const dama_backend *be = dama_backend_of(t);
  return (char *)be->kernel_ptr(t->storage->data) + t->offset * dama_dtype_size(t->dtype);
}

const char *dama_shape_str(const dama_tensor *t, char *buf, int64_t buflen) {
  if (buflen <= 0) return buf;
  return dama_dims_str(t->ndim, t->shape, buf, (size_t)buflen);
}

static dama_status element_offset(const char *op, const dama_tensor *t, const int64_t *index, int64_t *off) {
  int64_t o = t->offset;
  for (int32_t i = 0; i < t->ndim; i++) {
    int64_t k = index[i] < 0 ? index[i] + t->shape[i] : index[i];
    if (k < 0 || k >= t->shape[i])
      return dama_error(DAMA_ERR_INDEX, "%s: index %lld is out of range for dim %d of size %lld", op,
                        (long long)index[i], i, (long long)t->shape[i]);
    o += k * t->strides[i];
  }
  *off = o;
  return DAMA_OK;
}

dama_status dama_get(const dama_tensor *t, const int64_t *index, double *value) {
  int64_t o = 0;
  DAMA_TRY(element_offset("get", t, index, &o));
  if (t->storage->device.type == DAMA_CPU) {
    *value = dama_load_f64(t->storage->data, o, (dama_dtype)t->dtype);
    return DAMA_OK;
  }
  /* one element through the backend's device-to-host copy (a counted read) */
  const dama_backend *be = dama_backend_of(t);
  int sz = dama_dtype_size((dama_dtype)t->dtype);
  char buf[8];
  DAMA_TRY(be->copy_d2h(t->storage->device.index, buf, (const char *)t->storage->data + o * sz, sz));
  dama_count_device_read();
  *value = dama_load_f64(buf, 0, (dama_dtype)t->dtype);
  return DAMA_OK;
}

dama_status dama_set(dama_tensor *t, const int64_t *index, double value) {
  int64_t o = 0;
  DAMA_TRY(element_offset("set", t, index, &o));
  if (t->storage->device.type == DAMA_CPU) {
    dama_store_f64(t->storage->data, o, (dama_dtype)t->dtype, value);
    return DAMA_OK;
  }
  const dama_backend *be = dama_backend_of(t);
  int sz = dama_dtype_size((dama_dtype)t->dtype);
  char buf[8];
  dama_store_f64(buf, 0, (dama_dtype)t->dtype, value);
  return be->copy_h2d(t->storage->device.index, (char *)t->storage->data + o * sz, buf, sz);
}

/* ---- views ---- */

static dama_status derived(dama_tensor **out, const dama_tensor *t, int64_t offset, int32_t ndim,
                           const int64_t *shape, const int64_t *strides) {
  return dama_tensor_view_of(out, t->storage, offset, ndim, shape, strides, (dama_dtype)t->dtype);
}

/* Resolve a -1 entry and check that the element count matches. */
static dama_status infer_shape(const char *op, const dama_tensor *t, int32_t ndim, const int64_t *shape,
                               int64_t *resolved) {
  char a[160], b[160];
  if (ndim < 0 || ndim > DAMA_MAX_DIMS)
    return dama_error(DAMA_ERR_SHAPE, "%s: expected 0 to %d dims, got %d", op, DAMA_MAX_DIMS, ndim);
  int64_t n = dama_numel(t), known = 1;
  int32_t infer = -1;
  for (int32_t i = 0; i < ndim; i++) {
    resolved[i] = shape[i];
    if (shape[i] == -1) {
      if (infer >= 0) return dama_error(DAMA_ERR_SHAPE, "%s: only one dim can be -1", op);
      infer = i;
    } else if (shape[i] < 0) {
      return dama_error(DAMA_ERR_SHAPE, "%s: invalid size %lld in dim %d", op, (long long)shape[i], i);
    } else if (shape[i] > 0 && known > DAMA_MAX_NUMEL / shape[i]) {
      known = DAMA_MAX_NUMEL;   /* too large: check_shape below says so, naming the shape */
    } else known *= shape[i];
  }
  if (infer >= 0) {
    if (known == 0 || n % known != 0) goto mismatch;
    resolved[infer] = n / known;
  } else if (known != n) goto mismatch;
  int64_t unused = 0;
  return check_shape(op, ndim, resolved, &unused);   /* zero-size dims beside huge ones: strides overflow */
mismatch : {
  dama_tensor tmp = *t;
  dama_shape_str(&tmp, a, sizeof a);
  int64_t p = 0;
  p += snprintf(b + p, sizeof b - (size_t)p, "[");
  for (int32_t i = 0; i < ndim && p < (int64_t)sizeof b; i++)
    p += snprintf(b + p, sizeof b - (size_t)p, i ? ", %lld" : "%lld", (long long)shape[i]);
  if (p < (int64_t)sizeof b) snprintf(b + p, sizeof b - (size_t)p, "]");
  return dama_error(DAMA_ERR_SHAPE, "%s: shape %s is invalid for a tensor of shape %s (%lld elements)", op, b, a,
                    (long long)n);
}
}

/* Strides for viewing t as `shape` without a copy, or false: dims are grouped into chunks that are
 * contiguous among themselves; each chunk must map onto whole dims of the new shape. */
static bool view_strides(const dama_tensor *t, int32_t ndim, const int64_t *shape, int64_t *strides) {
  if (dama_numel(t) == 0 || t->ndim == 0) { dama_contiguous_strides(ndim, shape, strides); return true; }
  int32_t vd = ndim - 1;
  int64_t base = t->strides[t->ndim - 1], tensor_numel = 1, view_numel = 1;
  for (int32_t td = t->ndim - 1; td >= 0; td--) {
    tensor_numel *= t->shape[td];
    if (td == 0 || (t->shape[td - 1] != 1 && t->strides[td - 1] != tensor_numel * base)) {
      while (vd >= 0 && (view_numel < tensor_numel || shape[vd] == 1)) {
        strides[vd] = view_numel * base;
        view_numel *= shape[vd];
        vd--;
      }
      if (view_numel != tensor_numel) return false;
      if (td > 0) { base = t->strides[td - 1]; tensor_numel = 1; view_numel = 1; }
    }
  }
  return vd == -1;
}

dama_status dama_view(dama_tensor **out, const dama_tensor *t, int32_t ndim, const int64_t *shape) {
  *out = NULL;
  int64_t rs[DAMA_MAX_DIMS] = {0}, st[DAMA_MAX_DIMS] = {0};
  DAMA_TRY(infer_shape("view", t, ndim, shape, rs));
  if (!view_strides(t, ndim, rs, st))
    return dama_error(DAMA_ERR_SHAPE, "view: the tensor's strides are incompatible with the new shape; "
                                      "use reshape (which copies) or contiguous() first");
  return derived(out, t, t->offset, ndim, rs, st);
}

dama_status dama_reshape(dama_tensor **out, const dama_tensor *t, int32_t ndim, const int64_t *shape) {
  *out = NULL;
  int64_t rs[DAMA_MAX_DIMS] = {0}, st[DAMA_MAX_DIMS] = {0};
  DAMA_TRY(infer_shape("reshape", t, ndim, shape, rs));
  if (view_strides(t, ndim, rs, st)) return derived(out, t, t->offset, ndim, rs, st);
  dama_tensor *c;
  DAMA_TRY(dama_clone(&c, t));
  dama_contiguous_strides(ndim, rs, st);
  dama_status s = derived(out, c, 0, ndim, rs, st);
  dama_tensor_release(c);
  return s;
}

#define WRAP_DIM(op, d, nd)                                                                         \
  do { int32_t d0_ = (d);                                                                           \
    if (!dama_wrap_dim(&(d), (nd)))                                                                 \
      return dama_error(DAMA_ERR_INDEX, "%s: dim %d is out of range for a tensor with %d dims", op, \
                        d0_, (int)(nd)); } while (0)

dama_status dama_transpose(dama_tensor **out, const dama_tensor *t, int32_t d0, int32_t d1) {
  *out = NULL;
  if (t->ndim == 0) return derived(out, t, t->offset, 0, t->shape, t->strides);
  WRAP_DIM("transpose", d0, t->ndim);
  WRAP_DIM("transpose", d1, t->ndim);
  int64_t sh[DAMA_MAX_DIMS] = {0}, st[DAMA_MAX_DIMS] = {0};
  memcpy(sh, t->shape, sizeof sh); memcpy(st, t->strides, sizeof st);
  sh[d0] = t->shape[d1]; sh[d1] = t->shape[d0];
  st[d0] = t->strides[d1]; st[d1] = t->strides[d0];
  return derived(out, t, t->offset, t->ndim, sh, st);
}

dama_status dama_permute(dama_tensor **out, const dama_tensor *t, const int32_t *dims) {
  *out = NULL;
  int64_t sh[DAMA_MAX_DIMS] = {0}, st[DAMA_MAX_DIMS] = {0};
  int seen[DAMA_MAX_DIMS] = {0};
  for (int32_t i = 0; i < t->ndim; i++) {
    int32_t d = dims[i];
    WRAP_DIM("permute", d, t->ndim);
    if (seen[d]) return dama_error(DAMA_ERR_ARG, "permute: dim %d appears twice", dims[i]);
    seen[d] = 1;
    sh[i] = t->shape[d]; st[i] = t->strides[d];
  }
  return derived(out, t, t->offset, t->ndim, sh, st);
}

dama_status dama_slice(dama_tensor **out, const dama_tensor *t, int32_t dim, int64_t start, int64_t end, int64_t step) {
  *out = NULL;
  WRAP_DIM("slice", dim, t->ndim);
  if (t->ndim == 0) return dama_error(DAMA_ERR_INDEX, "slice: cannot slice a 0-dim tensor");
  if (step <= 0) return dama_error(DAMA_ERR_ARG, "slice: step must be positive, got %lld", (long long)step);
  int64_t n = t->shape[dim];
  if (start < 0) start += n;
  if (end < 0) end += n;
  if (start < 0) start = 0;
  if (end > n) end = n;
  if (start > n) start = n;
  int64_t len = end > start ? (end - start + step - 1) / step : 0;
  int64_t sh[DAMA_MAX_DIMS] = {0}, st[DAMA_MAX_DIMS] = {0};
  memcpy(sh, t->shape, sizeof sh); memcpy(st, t->strides, sizeof st);
  sh[dim] = len; st[dim] = t->strides[dim] * step;
  return derived(out, t, t->offset + start * t->strides[dim], t->ndim, sh, st);
}

dama_status dama_narrow(dama_tensor **out, const dama_tensor *t, int32_t dim, int64_t start, int64_t length) {
  *out = NULL;
  WRAP_DIM("narrow", dim, t->ndim);
  if (t->ndim == 0) return dama_error(DAMA_ERR_INDEX, "narrow: cannot narrow a 0-dim tensor");
  int64_t n = t->shape[dim];
  if (start < 0) start += n;
  if (start < 0 || length < 0 || start + length > n)
    return dama_error(DAMA_ERR_INDEX, "narrow: range [%lld, %lld) is out of bounds for dim %d of size %lld",
                      (long long)start, (long long)(start + length), dim, (long long)n);
  return dama_slice(out, t, dim, start, start + length, 1);
}

dama_status dama_select(dama_tensor **out, const dama_tensor *t, int32_t dim, int64_t index) {
  *out = NULL;
  if (t->ndim == 0) return dama_error(DAMA_ERR_INDEX, "select: cannot index a 0-dim tensor");
  WRAP_DIM("select", dim, t->ndim);
  int64_t n = t->shape[dim];
  int64_t k = index < 0 ? index + n : index;
  if (k < 0 || k >= n)
    return dama_error(DAMA_ERR_INDEX, "select: index %lld is out of range for dim %d of size %lld",
                      (long long)index, dim, (long long)n);
  int64_t sh[DAMA_MAX_DIMS] = {0}, st[DAMA_MAX_DIMS] = {0};
  int32_t j = 0;
  for (int32_t i = 0; i < t->ndim; i++)
    if (i != dim) { sh[j] = t->shape[i]; st[j] = t->strides[i]; j++; }
  return derived(out, t, t->offset + k * t->strides[dim], t->ndim - 1, sh, st);
}

dama_status dama_squeeze(dama_tensor **out, const dama_tensor *t, int32_t dim) {
  *out = NULL;
  int64_t sh[DAMA_MAX_DIMS] = {0}, st[DAMA_MAX_DIMS] = {0};
  int32_t j = 0;
  if (dim != -100) {
    if (t->ndim == 0) return derived(out, t, t->offset, 0, sh, st);
    WRAP_DIM("squeeze", dim, t->ndim);
  }
  for (int32_t i = 0; i < t->ndim; i++) {
    bool drop = t->shape[i] == 1 && (dim == -100 || dim == i);
    if (!drop) { sh[j] = t->shape[i]; st[j] = t->strides[i]; j++; }
  }
  return derived(out, t, t->offset, j, sh, st);
}

dama_status dama_unsqueeze(dama_tensor **out, const dama_tensor *t, int32_t dim) {
  *out = NULL;
  if (t->ndim >= DAMA_MAX_DIMS)
    return dama_error(DAMA_ERR_SHAPE, "unsqueeze: a tensor can have at most %d dims", DAMA_MAX_DIMS);
  WRAP_DIM("unsqueeze", dim, t->ndim + 1);
  int64_t sh[DAMA_MAX_DIMS] = {0}, st[DAMA_MAX_DIMS] = {0};
  int32_t j = 0;
  for (int32_t i = 0; i <= t->ndim; i++) {
    if (i == dim) {
      sh[i] = 1;
      st[i] = j < t->ndim ? t->strides[j] * t->shape[j] : 1;
    } else { sh[i] = t->shape[j]; st[i] = t->strides[j]; j++; }
  }
  return derived(out, t, t->offset, t->ndim + 1, sh, st);
}

dama_status dama_expand(dama_tensor **out, const dama_tensor *t, int32_t ndim, const int64_t *shape) {
  *out = NULL;
  char a[160], b[160];
  if (ndim < t->ndim || ndim > DAMA_MAX_DIMS) {
    dama_shape_str(t, a, sizeof a); dama_dims_str(ndim, shape, b, sizeof b);
    return dama_error(DAMA_ERR_SHAPE, "expand: cannot expand shape %s to %s", a, b);
  }
  int64_t sh[DAMA_MAX_DIMS] = {0}, st[DAMA_MAX_DIMS] = {0};
  int32_t lead = ndim - t->ndim;
  for (int32_t i = 0; i < ndim; i++) {
    int64_t want = shape[i];
    if (i < lead) {
      if (want < 0) goto bad;
      sh[i] = want; st[i] = 0;
    } else {
      int64_t have = t->shape[i - lead];
      if (want == -1 || want == have) { sh[i] = have; st[i] = t->strides[i - lead]; }
      else if (have == 1 && want >= 0) { sh[i] = want; st[i] = 0; }
      else goto bad;
    }
  }
  return derived(out, t, t->offset, ndim, sh, st);
bad:
  dama_shape_str(t, a, sizeof a); dama_dims_str(ndim, shape, b, sizeof b);
  return dama_error(DAMA_ERR_SHAPE, "expand: cannot expand shape %s to %s", a, b);
}

dama_status dama_broadcast_shapes(int32_t na, const int64_t *a, int32_t nb, const int64_t *b, int32_t *out_ndim,
                                  int64_t *out_shape) {
  int32_t n = na > nb ? na : nb;
  for (int32_t i = 0; i < n; i++) {
    int64_t x = i < n - na ? 1 : a[i - (n - na)];
    int64_t y = i < n - nb ? 1 : b[i - (n - nb)];
    if (x != y && x != 1 && y != 1) {
      char sa[160], sb[160];
      dama_dims_str(na, a, sa, sizeof sa); dama_dims_str(nb, b, sb, sizeof sb);
      return dama_error(DAMA_ERR_SHAPE, "shapes %s and %s cannot be broadcast (dim %d: %lld vs %lld)", sa, sb, i,
                        (long long)x, (long long)y);
    }
    out_shape[i] = x == 1 ? y : x;
  }
  *out_ndim = n;
  return DAMA_OK;
}

/* ---- copies ---- */

/* Copy with src already broadcast to dst's shape (same ndim, stride 0 where expanded), both on one device: one
 * memcpy when both are contiguous and of one dtype, else the backend's copy kernel. */
static dama_status copy_strided(dama_tensor *dst, const dama_tensor *src) {
  int64_t n = dama_numel(dst);
  if (n == 0) return DAMA_OK;
  const dama_backend *be = dama_backend_of(dst);
  if (dst->dtype == src->dtype && dama_is_contiguous(dst) && dama_is_contiguous(src) && dama_numel(src) == n) {
    int sz = dama_dtype_size((dama_dtype)dst->dtype);
    return be->copy_d2d(dst->storage->device.index, (char *)dst->storage->data + dst->offset * sz,
                        (const char *)src->storage->data + src->offset * sz, n * sz);
  }
  const dama_tensor *ts[2] = {dst, src};
  DAMA_NEED_OP(be, copy, "copy", 2, ts);
  if (be->set_device) DAMA_TRY(be->set_device(dst->storage->device.index));
  return be->ops->copy(dst, src);
}

static int same_device(dama_device a, dama_device b) { return a.type == b.type && a.index == b.index; }

dama_status dama_copy_(dama_tensor *dst, const dama_tensor *src) {
  if (!dst || !src) return dama_error(DAMA_ERR_ARG, "copy: %s is NULL", dst ? "the source" : "the destination");
  dama_tensor *moved = NULL;
  if (!same_device(dst->storage->device, src->storage->device)) {
    /* across devices: the source's values, contiguous, on the destination's device first */
    DAMA_TRY(dama_to_device(&moved, src, dst->storage->device));
    src = moved;
  }
  dama_tensor *b = NULL;
  dama_status s = dama_expand(&b, src, dst->ndim, dst->shape);
  if (s != DAMA_OK) {
    char a[160], c[160];
    dama_shape_str(src, a, sizeof a); dama_shape_str(dst, c, sizeof c);
    dama_tensor_release(moved);
    return dama_error(DAMA_ERR_SHAPE, "copy: source of shape %s cannot be broadcast to destination shape %s", a, c);
  }
  dama_status st = copy_strided(dst, b);
  dama_tensor_release(b);
  dama_tensor_release(moved);
  return st;
}

dama_status dama_clone(dama_tensor **out, const dama_tensor *t) {
  *out = NULL;
  DAMA_TRY(new_contiguous(out, "clone", t->ndim, t->shape, (dama_dtype)t->dtype, t->storage->device));
  dama_status st = copy_strided(*out, t);
  if (st != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return st;
}

dama_status dama_contiguous(dama_tensor **out, const dama_tensor *t) {
  *out = NULL;
  if (dama_is_contiguous(t)) { dama_tensor_retain((dama_tensor *)t); *out = (dama_tensor *)t; return DAMA_OK; }
  return dama_clone(out, t);
}

/* A contiguous copy of t on dev: contiguous on its own device, then one transfer of the bytes. */
dama_status dama_to_device(dama_tensor **out, const dama_tensor *t, dama_device dev) {
  *out = NULL;
  if (!t) return dama_error(DAMA_ERR_ARG, "to_device: the tensor is NULL");
  DAMA_TRY(check_device("to_device", dev));
  dama_device from = t->storage->device;
  if (same_device(from, dev)) return dama_contiguous(out, t);
  dama_tensor *c = NULL;
  DAMA_TRY(dama_contiguous(&c, t));
  dama_status s = new_contiguous(out, "to_device", t->ndim, t->shape, (dama_dtype)t->dtype, dev);
  int64_t nbytes = dama_numel(t) * dama_dtype_size((dama_dtype)t->dtype);
  const char *src = (const char *)c->storage->data + c->offset * dama_dtype_size((dama_dtype)c->dtype);
  if (s == DAMA_OK && nbytes > 0) {
    void *dst = (*out)->storage->data;
    const dama_backend *bf = dama_backend_of(c), *bt = dama_backend_of(*out);
    if (from.type == DAMA_CPU) s = bt->copy_h2d(dev.index, dst, src, nbytes);
    else if (dev.type == DAMA_CPU) {
      s = bf->copy_d2h(from.index, dst, src, nbytes);
      dama_count_device_read();
    } else {
      /* device to another device: through a host buffer */
      void *tmp = dama_alloc_bytes(nbytes);
      if (!tmp) s = dama_error(DAMA_ERR_OOM, "to_device: out of memory for a %lld-byte staging buffer",
                               (long long)nbytes);
      else {
        s = bf->copy_d2h(from.index, tmp, src, nbytes);
        dama_count_device_read();
        if (s == DAMA_OK) s = bt->copy_h2d(dev.index, dst, tmp, nbytes);
        dama_free_bytes(tmp, nbytes);
      }
    }
  }
  dama_tensor_release(c);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

dama_status dama_to_device_async(dama_tensor **out, const dama_tensor *t, dama_device dev) {
  *out = NULL;
  if (!t) return dama_error(DAMA_ERR_ARG, "to_device_async: the tensor is NULL");
  DAMA_TRY(check_device("to_device_async", dev));
  const dama_backend *bt = dama_backend_of_type(dev.type);
  const dama_storage *st = t->storage;
  if (!st->pinned || st->pinned_for.type != dev.type || !bt->copy_h2d_async || !dama_is_contiguous(t))
    return dama_to_device(out, t, dev);
  DAMA_TRY(new_contiguous(out, "to_device_async", t->ndim, t->shape, (dama_dtype)t->dtype, dev));
  int64_t nbytes = dama_numel(t) * dama_dtype_size((dama_dtype)t->dtype);
  const char *src = (const char *)st->data + t->offset * dama_dtype_size((dama_dtype)t->dtype);
  dama_status s = nbytes > 0 ? bt->copy_h2d_async(dev.index, (*out)->storage->data, src, nbytes) : DAMA_OK;
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

dama_status dama_empty_pinned(dama_tensor **out, int32_t ndim, const int64_t *shape, dama_dtype dtype,
                              dama_device for_dev) {
  *out = NULL;
  DAMA_TRY(check_device("empty_pinned", for_dev));
  return new_contiguous_in(out, "empty_pinned", ndim, shape, dtype, for_dev, 1);
}

int dama_is_pinned(const dama_tensor *t) { return t && t->storage && t->storage->pinned ? 1 : 0; }

dama_device dama_tensor_device(const dama_tensor *t) { return t->storage->device; }

dama_status dama_flat_span(dama_tensor **out, const dama_tensor *t, int64_t numel) {
  *out = NULL;
  if (!t) return dama_error(DAMA_ERR_ARG, "flat_span: the tensor is NULL");
  int64_t sz = dama_dtype_size((dama_dtype)t->dtype);
  if (numel < 0 || t->offset < 0 || numel > t->storage->nbytes / sz - t->offset)
    return dama_error(DAMA_ERR_INDEX, "flat_span: %lld elements from element %lld pass the end of a storage of %lld",
                      (long long)numel, (long long)t->offset, (long long)(t->storage->nbytes / sz));
  int64_t stride = 1;
  return dama_tensor_view_of(out, t->storage, t->offset, 1, &numel, &stride, (dama_dtype)t->dtype);
}

dama_status dama_to_dtype(dama_tensor **out, const dama_tensor *t, dama_dtype dtype) {
  *out = NULL;
  if ((unsigned)dtype >= DAMA_NUM_DTYPES) return dama_error(DAMA_ERR_DTYPE, "to: invalid dtype %d", (int)dtype);
  DAMA_TRY(new_contiguous(out, "to", t->ndim, t->shape, dtype, t->storage->device));
  dama_status st = copy_strided(*out, t);
  if (st != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return st;
}
