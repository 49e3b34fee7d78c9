/* cat / stack on the CPU. The result dtype promotes over all inputs (like torch.cat); each input is copied
 * into its slice of the result by dama_copy_kernel (any layout, dtype conversion, parallel). Like torch,
 * cat skips 1-d empty tensors of shape [0] whatever the other shapes are. Errors name the offending
 * tensor's position. */
#include "cpu/ops_internal.h"
#include "core/backend.h"
#include <stdlib.h>

dama_status dama_cpu_cat(dama_tensor **out, int32_t n, dama_tensor *const *ts, int32_t dim) {
  if (!out) return dama_error(DAMA_ERR_ARG, "cat: out is NULL");
  *out = NULL;
  if (n <= 0 || !ts) return dama_error(DAMA_ERR_ARG, "cat: expected a non-empty list of tensors, got %d", n);
  for (int32_t i = 0; i < n; i++) {
    char what[32];
    snprintf(what, sizeof what, "tensor %d", i);
    DAMA_TRY(ops_check("cat", what, ts[i]));
  }
  /* the reference tensor: the first that is not a legacy empty [0] */
  int32_t ref = -1;
  for (int32_t i = 0; i < n && ref < 0; i++)
    if (!(ts[i]->ndim == 1 && ts[i]->shape[0] == 0)) ref = i;
  if (ref < 0) ref = 0;
  const dama_tensor *r = ts[ref];
  if (r->ndim == 0) return dama_error(DAMA_ERR_SHAPE, "cat: tensor %d is 0-d; zero-dimensional tensors cannot be concatenated", ref);
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
      return dama_error(DAMA_ERR_SHAPE, "cat: tensor %d has %d dims (shape %s) but tensor %d has %d (shape %s)", i, t->ndim,
                        dama_shape_str(t, s1, sizeof s1), ref, r->ndim, dama_shape_str(r, s2, sizeof s2));
    for (int32_t k = 0; k < r->ndim; k++)
      if (k != d && t->shape[k] != r->shape[k])
        return dama_error(DAMA_ERR_SHAPE,
                          "cat: tensor %d has shape %s but tensor %d has shape %s; sizes must match except in dim %d", i,
                          dama_shape_str(t, s1, sizeof s1), ref, dama_shape_str(r, s2, sizeof s2), d);
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
    if (s == DAMA_OK && t->shape[d] > 0) s = dama_copy_kernel(slot, t);
    dama_tensor_release(slot);
    at += t->shape[d];
  }
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

dama_status dama_stack(dama_tensor **out, int32_t n, dama_tensor *const *ts, int32_t dim) {
  if (!out) return dama_error(DAMA_ERR_ARG, "stack: out is NULL");
  *out = NULL;
  if (n <= 0 || !ts) return dama_error(DAMA_ERR_ARG, "stack: expected a non-empty list of tensors, got %d", n);
  for (int32_t i = 0; i < n; i++) {
    char what[32];
    snprintf(what, sizeof what, "tensor %d", i);
    DAMA_TRY(ops_arg_check("stack", what, ts[i])); /* any device: views, then dama_cat dispatches */
  }
  const dama_tensor *r = ts[0];
  if (r->ndim >= DAMA_MAX_DIMS) return dama_error(DAMA_ERR_SHAPE, "stack: inputs already have %d dims", r->ndim);
  int32_t d = dim;
  DAMA_TRY(ops_wrap_dim("stack", &d, r->ndim + 1));
  for (int32_t i = 1; i < n; i++) {
    const dama_tensor *t = ts[i];
    bool same = t->ndim == r->ndim;
    for (int32_t k = 0; same && k < r->ndim; k++) same = t->shape[k] == r->shape[k];
    if (!same) {
      char s1[160], s2[160];
      return dama_error(DAMA_ERR_SHAPE, "stack: tensor %d has shape %s but tensor 0 has shape %s; all must be equal", i,
                        dama_shape_str(t, s1, sizeof s1), dama_shape_str(r, s2, sizeof s2));
    }
  }
  dama_tensor *small[16], **views = n <= 16 ? small : calloc((size_t)n, sizeof *views);
  if (!views) return dama_error(DAMA_ERR_OOM, "stack: out of memory");
  dama_status s = DAMA_OK;
  int32_t made = 0;
  for (; made < n && s == DAMA_OK; made++) s = dama_unsqueeze(&views[made], ts[made], d);
  if (s == DAMA_OK) s = dama_cat(out, n, views, d);
  for (int32_t i = 0; i < made; i++) dama_tensor_release(views[i]);
  if (views != small) free(views);
  return s;
}
