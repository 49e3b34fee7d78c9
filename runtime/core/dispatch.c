/* The public tensor ops of ops.h and the RNG fills: each checks that its tensors share one device (naming both
 * when they do not) and calls that device's backend table. The kernels behind the table check shapes and
 * dtypes and allocate their outputs on the same device. */
#include "core/backend.h"

/* DISPATCHn(op, slot, tensors...): one device for the tensors, then that device's table must fill `slot`
 * (DAMA_ERR_DEVICE "<op>: not implemented on cuda:0 yet" where a backend leaves it NULL). */
#define DISPATCH1(op, slot, x) \
  const dama_backend *be; \
  { const dama_tensor *ts_[1] = {x}; const char *ns_[1] = {#x}; DAMA_TRY(dama_dispatch(op, 1, ts_, ns_, &be)); \
    DAMA_NEED_OP(be, slot, op, 1, ts_); }
#define DISPATCH2(op, slot, x, y) \
  const dama_backend *be; \
  { const dama_tensor *ts_[2] = {x, y}; const char *ns_[2] = {#x, #y}; DAMA_TRY(dama_dispatch(op, 2, ts_, ns_, &be)); \
    DAMA_NEED_OP(be, slot, op, 2, ts_); }
#define DISPATCH3(op, slot, x, y, z) \
  const dama_backend *be; \
  { const dama_tensor *ts_[3] = {x, y, z}; const char *ns_[3] = {#x, #y, #z}; \
    DAMA_TRY(dama_dispatch(op, 3, ts_, ns_, &be)); DAMA_NEED_OP(be, slot, op, 3, ts_); }
#define NEED_OUT(op, o) do { if (!(o)) return dama_error(DAMA_ERR_ARG, "%s: out is NULL", op); *(o) = NULL; } while (0)
#define NEED(op, t, name) do { if (!(t)) return dama_error(DAMA_ERR_ARG, "%s: tensor '%s' is NULL", op, name); } while (0)

dama_status dama_binary(dama_tensor **out, dama_binop op, const dama_tensor *a, const dama_tensor *b) {
  NEED_OUT(dama_binop_name(op), out); NEED(dama_binop_name(op), a, "a"); NEED(dama_binop_name(op), b, "b");
  DISPATCH2(dama_binop_name(op), binary, a, b);
  return be->ops->binary(out, op, a, b);
}
dama_status dama_binary_(dama_tensor *a, dama_binop op, const dama_tensor *b) {
  NEED(dama_binop_name(op), a, "a"); NEED(dama_binop_name(op), b, "b");
  DISPATCH2(dama_binop_name(op), binary_, a, b);
  return be->ops->binary_(a, op, b);
}
dama_status dama_binary_scalar(dama_tensor **out, dama_binop op, const dama_tensor *a, double s, int32_t scalar_first) {
  NEED_OUT(dama_binop_name(op), out); NEED(dama_binop_name(op), a, "a");
  DISPATCH1(dama_binop_name(op), binary_scalar, a);
  return be->ops->binary_scalar(out, op, a, s, scalar_first);
}
dama_status dama_binary_scalar_(dama_tensor *a, dama_binop op, double s) {
  NEED(dama_binop_name(op), a, "a");
  DISPATCH1(dama_binop_name(op), binary_scalar_, a);
  return be->ops->binary_scalar_(a, op, s);
}
dama_status dama_unary(dama_tensor **out, dama_unop op, const dama_tensor *a) {
  NEED_OUT(dama_unop_name(op), out); NEED(dama_unop_name(op), a, "a");
  DISPATCH1(dama_unop_name(op), unary, a);
  return be->ops->unary(out, op, a);
}
dama_status dama_unary_(dama_tensor *a, dama_unop op) {
  NEED(dama_unop_name(op), a, "a");
  DISPATCH1(dama_unop_name(op), unary_, a);
  return be->ops->unary_(a, op);
}
dama_status dama_clamp(dama_tensor **out, const dama_tensor *a, double lo, double hi) {
  NEED_OUT("clamp", out); NEED("clamp", a, "a");
  DISPATCH1("clamp", clamp, a);
  return be->ops->clamp(out, a, lo, hi);
}
dama_status dama_clamp_(dama_tensor *a, double lo, double hi) {
  NEED("clamp_", a, "a");
  DISPATCH1("clamp_", clamp_, a);
  return be->ops->clamp_(a, lo, hi);
}
dama_status dama_where(dama_tensor **out, const dama_tensor *cond, const dama_tensor *a, const dama_tensor *b) {
  NEED_OUT("where", out); NEED("where", cond, "cond"); NEED("where", a, "a"); NEED("where", b, "b");
  DISPATCH3("where", where, cond, a, b);
  return be->ops->where(out, cond, a, b);
}
dama_status dama_masked_fill_(dama_tensor *a, const dama_tensor *mask, double value) {
  NEED("masked_fill_", a, "a"); NEED("masked_fill_", mask, "mask");
  DISPATCH2("masked_fill_", masked_fill_, a, mask);
  return be->ops->masked_fill_(a, mask, value);
}
dama_status dama_fill_(dama_tensor *a, double value) {
  NEED("fill_", a, "a");
  DISPATCH1("fill_", fill_, a);
  return be->ops->fill_(a, value);
}
dama_status dama_count_nonfinite(const dama_tensor *a, int64_t *count) {
  NEED("count_nonfinite", a, "a");
  DISPATCH1("count_nonfinite", count_nonfinite, a);
  return be->ops->count_nonfinite(a, count);
}
dama_status dama_reduce(dama_tensor **out, dama_redop op, const dama_tensor *a, int32_t ndims, const int32_t *dims,
                        int32_t keepdim, int32_t correction, double p) {
  NEED_OUT("reduce", out); NEED("reduce", a, "a");
  DISPATCH1("reduce", reduce, a);
  return be->ops->reduce(out, op, a, ndims, dims, keepdim, correction, p);
}
dama_status dama_max_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t keepdim) {
  NEED("max", a, "a");
  DISPATCH1("max", max_dim, a);
  return be->ops->max_dim(values, indices, a, dim, keepdim);
}
dama_status dama_min_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t keepdim) {
  NEED("min", a, "a");
  DISPATCH1("min", min_dim, a);
  return be->ops->min_dim(values, indices, a, dim, keepdim);
}
dama_status dama_matmul(dama_tensor **out, const dama_tensor *a, const dama_tensor *b) {
  NEED_OUT("matmul", out); NEED("matmul", a, "a"); NEED("matmul", b, "b");
  DISPATCH2("matmul", matmul, a, b);
  return be->ops->matmul(out, a, b);
}
dama_status dama_sort(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                      int32_t descending, int32_t stable) {
  NEED("sort", a, "a");
  DISPATCH1("sort", sort, a);
  return be->ops->sort(values, indices, a, dim, descending, stable);
}
dama_status dama_argsort(dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t descending, int32_t stable) {
  NEED("argsort", a, "a");
  DISPATCH1("argsort", argsort, a);
  return be->ops->argsort(indices, a, dim, descending, stable);
}
dama_status dama_topk(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int64_t k, int32_t dim,
                      int32_t largest, int32_t sorted) {
  NEED("topk", a, "a");
  DISPATCH1("topk", topk, a);
  return be->ops->topk(values, indices, a, k, dim, largest, sorted);
}
dama_status dama_gather(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index) {
  NEED_OUT("gather", out); NEED("gather", a, "a"); NEED("gather", index, "index");
  DISPATCH2("gather", gather, a, index);
  return be->ops->gather(out, a, dim, index);
}
dama_status dama_scatter_(dama_tensor *a, int32_t dim, const dama_tensor *index, const dama_tensor *src, int32_t reduce) {
  NEED("scatter_", a, "a"); NEED("scatter_", index, "index"); NEED("scatter_", src, "src");
  DISPATCH3("scatter_", scatter_, a, index, src);
  return be->ops->scatter_(a, dim, index, src, reduce);
}
dama_status dama_index_select(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index) {
  NEED_OUT("index_select", out); NEED("index_select", a, "a"); NEED("index_select", index, "index");
  DISPATCH2("index_select", index_select, a, index);
  return be->ops->index_select(out, a, dim, index);
}
dama_status dama_cat(dama_tensor **out, int32_t n, dama_tensor *const *ts, int32_t dim) {
  NEED_OUT("cat", out);
  if (n <= 0 || !ts) return dama_error(DAMA_ERR_ARG, "cat: expected a non-empty list of tensors, got %d", n);
  for (int32_t i = 0; i < n; i++)
    if (!ts[i]) return dama_error(DAMA_ERR_ARG, "cat: tensor 'tensor %d' is NULL", i);
  for (int32_t i = 1; i < n; i++) {
    dama_device a = ts[0]->storage->device, b = ts[i]->storage->device;
    if (a.type != b.type || a.index != b.index) {
      char da[32], db[32];
      return dama_error(DAMA_ERR_DEVICE, "cat: tensor %d is on %s but tensor 0 is on %s; move one with :to()", i,
                        dama_device_str(b, db, sizeof db), dama_device_str(a, da, sizeof da));
    }
  }
  const dama_backend *be = dama_backend_of(ts[0]);
  DAMA_NEED_OP(be, cat, "cat", n, (const dama_tensor *const *)ts);
  if (be->set_device) DAMA_TRY(be->set_device(ts[0]->storage->device.index)); /* as dama_dispatch does */
  return be->ops->cat(out, n, ts, dim);
}
dama_status dama_uniform_(dama_tensor *t, double lo, double hi, dama_rng *rng) {
  NEED("uniform_", t, "t");
  DISPATCH1("uniform_", uniform_, t);
  return be->ops->uniform_(t, lo, hi, rng);
}
dama_status dama_normal_(dama_tensor *t, double mean, double std, dama_rng *rng) {
  NEED("normal_", t, "t");
  DISPATCH1("normal_", normal_, t);
  return be->ops->normal_(t, mean, std, rng);
}
dama_status dama_randint_(dama_tensor *t, int64_t lo, int64_t hi, dama_rng *rng) {
  NEED("randint_", t, "t");
  DISPATCH1("randint_", randint_, t);
  return be->ops->randint_(t, lo, hi, rng);
}
