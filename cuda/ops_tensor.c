/* ops_tensor.c — the CUDA backend's element-wise tensor ops (cuda_ops.h says how an op area is built): binary,
 * binary_, binary_scalar(_), unary(_), clamp(_), where, masked_fill_, fill_, count_nonfinite and copy, with the CPU
 * slots' semantics (cpu/ops_elementwise.c): the same argument checks and messages (core/op_args.h), the same result
 * dtypes and compute kinds, outputs allocated on the inputs' device, in-place inputs that alias the target in
 * another layout copied first. The operands are folded by the CPU's own iterator (ops_iter_init: broadcasting,
 * dims ordered by the output's strides, contiguous dims merged) and a scalar is converted by its ops_scalar_init, so
 * both devices see the same layout and the same scalar; the kernels are in kernels/tensor_elementwise.cuh, launched
 * by tensor_kernels.cu (tensor_launch.h), one launch per op on the current device's stream. */
#include "cuda_ops.h"
#include "graph.h"
#include "tensor_launch.h"
#include "core/dama_math.h"
#include "cpu/ops_internal.h" /* ops_iter_init, ops_kind_of, ops_scalar_init, ops_scalar_bytes: no CPU memory use */

#include <math.h>

_Static_assert(DAMA_CUDA_EW_DIMS == DAMA_MAX_DIMS && DAMA_CUDA_EW_OPS == OPS_MAX_OPERANDS, "tensor_launch.h sizes");
_Static_assert((int)DAMA_CUDA_K_F32 == (int)OPS_KF32 && (int)DAMA_CUDA_K_F64 == (int)OPS_KF64 &&
               (int)DAMA_CUDA_K_I64 == (int)OPS_KI64, "tensor_launch.h kinds are ops_kind's");
_Static_assert(DAMA_F32 == 0 && DAMA_F64 == 1 && DAMA_BF16 == 2 && DAMA_F16 == 3 && DAMA_U8 == 4 && DAMA_U16 == 5 &&
               DAMA_I32 == 6 && DAMA_I64 == 7, "the kernels' dtype codes (tensor_elementwise.cuh)");

/* A tensor argument: non-NULL, a valid dtype (ops_arg_check), on a cuda device. */
static dama_status cuda_check(const char *op, const char *what, const dama_tensor *t) {
  DAMA_TRY(ops_arg_check(op, what, t));
  if (t->storage && t->storage->device.type != DAMA_CUDA) {
    char dev[32];
    return dama_error(DAMA_ERR_DEVICE, "%s: tensor '%s' is on %s; the CUDA kernels need cuda tensors", op, what,
                      dama_device_str(t->storage->device, dev, sizeof dev));
  }
  return DAMA_OK;
}

/* The launch geometry of ts[0] (the output, whose shape is the iteration's) and the inputs after it; `scalar`, when
 * not NULL, is one of ts: an ops_scalar on the host, passed to the kernel by value. */
static void ew_geom(dama_cuda_ew *g, int nops, const dama_tensor *const *ts, const ops_scalar *scalar) {
  ops_iter it;
  ops_iter_init(&it, ts[0]->ndim, ts[0]->shape, nops, ts, 1);
  memset(g, 0, sizeof *g);
  g->numel = it.numel;
  g->ndim = it.ndim;
  for (int32_t d = 0; d < it.ndim; d++) g->shape[d] = it.shape[d];
  for (int k = 0; k < nops; k++) {
    for (int32_t d = 0; d < it.ndim; d++) g->strides[k][d] = it.strides[k][d];
    g->dtype[k] = ts[k]->dtype;
    if (scalar && ts[k] == &scalar->t) {
      g->scalar = k;
      memcpy(&g->value, &scalar->v, sizeof g->value);
    } else {
      g->ptr[k] = it.base[k];
    }
  }
}

#define LAUNCH_STATUS(call) \
  dama_status s_ = DAMA_OK; \
  { cudaError_t e_ = (call); if (e_ != cudaSuccess) s_ = dama_cuda_status(e_, #call, __FILE__, __LINE__); }

/* ---- copy: dst = src converted, src already broadcast to dst's shape, no overlap ---- */

static dama_status cuda_copy(dama_tensor *dst, const dama_tensor *src) {
  DAMA_TRY(cuda_check("copy", "dst", dst));
  DAMA_TRY(cuda_check("copy", "src", src));
  DAMA_TRY(ops_check_into("copy", dst, src, "source"));
  const dama_dtype dt = (dama_dtype)dst->dtype, st = (dama_dtype)src->dtype;
  /* dama_copy_kernel's kind: i64 between ints, f32 between f32/bf16/f16, else f64 */
  const bool fi = !dama_dtype_is_float(dt) && !dama_dtype_is_float(st);
  const bool narrow_floats = ops_kind_of(dt) == OPS_KF32 && ops_kind_of(st) == OPS_KF32;
  const int kind = fi ? OPS_KI64 : narrow_floats ? OPS_KF32 : OPS_KF64;
  const dama_tensor *ts[2] = {dst, src};
  dama_cuda_ew g;
  ew_geom(&g, 2, ts, NULL);
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_ew_copy(kind, &g, dama_cuda_stream()));
  return DAMA_OK;
}

/* A new contiguous copy of t in its own dtype (an input that overlaps the in-place target differently). */
static dama_status unalias(const dama_tensor *out, const dama_tensor **in, dama_tensor **tmp) {
  *tmp = NULL;
  if (!ops_overlaps_differently(out, *in)) return DAMA_OK;
  const dama_tensor *t = *in;
  DAMA_TRY(dama_empty(tmp, t->ndim, t->shape, (dama_dtype)t->dtype, t->storage->device));
  dama_status s = cuda_copy(*tmp, t);
  if (s != DAMA_OK) { dama_tensor_release(*tmp); *tmp = NULL; return s; }
  *in = *tmp;
  return DAMA_OK;
}

/* ---- binary ---- */

static dama_status binary_into(dama_tensor *out, dama_binop op, const dama_tensor *a, const dama_tensor *b,
                               dama_dtype compute, const ops_scalar *sc) {
  dama_tensor *ta = NULL, *tb = NULL;
  DAMA_TRY(unalias(out, &a, &ta));
  dama_status s = unalias(out, &b, &tb);
  if (s == DAMA_OK) {
    const dama_tensor *ts[3] = {out, a, b};
    dama_cuda_ew g;
    ew_geom(&g, 3, ts, sc);
    LAUNCH_STATUS(dama_cuda_ew_binary((int)op, (int)ops_kind_of(compute), &g, dama_cuda_stream()));
    s = s_;
  }
  dama_tensor_release(ta);
  dama_tensor_release(tb);
  return s;
}

static dama_status cuda_binary(dama_tensor **out, dama_binop op, const dama_tensor *a, const dama_tensor *b) {
  if (!out) return dama_error(DAMA_ERR_ARG, "binary: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check_binop(op));
  const char *name = dama_binop_name(op);
  DAMA_TRY(cuda_check(name, "a", a));
  DAMA_TRY(cuda_check(name, "b", b));
  int32_t nd;
  int64_t shape[DAMA_MAX_DIMS];
  DAMA_TRY(ops_broadcast(name, a, b, &nd, shape));
  dama_dtype compute, rt = ops_binary_result(op, ops_promote((dama_dtype)a->dtype, (dama_dtype)b->dtype), &compute);
  DAMA_TRY(dama_empty(out, nd, shape, rt, a->storage->device));
  dama_status s = binary_into(*out, op, a, b, compute, NULL);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

static dama_status cuda_binary_(dama_tensor *a, dama_binop op, const dama_tensor *b) {
  DAMA_TRY(ops_check_binop(op));
  char name[32];
  snprintf(name, sizeof name, "%s_", dama_binop_name(op));
  DAMA_TRY(cuda_check(name, "a", a));
  DAMA_TRY(cuda_check(name, "b", b));
  DAMA_TRY(ops_check_writable(name, a));
  DAMA_TRY(ops_check_into(name, a, b, "b"));
  dama_dtype compute;
  ops_binary_result(op, ops_promote((dama_dtype)a->dtype, (dama_dtype)b->dtype), &compute);
  return binary_into(a, op, a, b, compute, NULL);
}

/* The scalar is held in the compute kind (f32, f64 or i64), never rounded to bf16/f16, as on the CPU. */
static dama_status cuda_binary_scalar(dama_tensor **out, dama_binop op, const dama_tensor *a, double s,
                                      int32_t scalar_first) {
  if (!out) return dama_error(DAMA_ERR_ARG, "binary_scalar: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check_binop(op));
  const char *name = dama_binop_name(op);
  DAMA_TRY(cuda_check(name, "a", a));
  dama_dtype compute, rt = ops_scalar_result(op, (dama_dtype)a->dtype, s, &compute);
  DAMA_TRY(ops_scalar_pow_check(name, op, compute, s, scalar_first));
  ops_scalar sc;
  ops_scalar_init(&sc, s, ops_kind_dtype(ops_kind_of(compute)));
  DAMA_TRY(dama_empty(out, a->ndim, a->shape, rt, a->storage->device));
  dama_status r = scalar_first ? binary_into(*out, op, &sc.t, a, compute, &sc) : binary_into(*out, op, a, &sc.t, compute, &sc);
  if (r != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return r;
}

static dama_status cuda_binary_scalar_(dama_tensor *a, dama_binop op, double s) {
  DAMA_TRY(ops_check_binop(op));
  char name[32];
  snprintf(name, sizeof name, "%s_", dama_binop_name(op));
  DAMA_TRY(cuda_check(name, "a", a));
  DAMA_TRY(ops_check_writable(name, a));
  dama_dtype compute;
  ops_scalar_result(op, (dama_dtype)a->dtype, s, &compute);
  DAMA_TRY(ops_scalar_pow_check(name, op, compute, s, 0));
  ops_scalar sc;
  ops_scalar_init(&sc, s, ops_kind_dtype(ops_kind_of(compute)));
  return binary_into(a, op, a, &sc.t, compute, &sc);
}

/* ---- unary ---- */

static dama_status unary_into(dama_tensor *out, dama_unop op, const dama_tensor *a, dama_dtype compute) {
  const dama_tensor *ts[2] = {out, a};
  dama_cuda_ew g;
  ew_geom(&g, 2, ts, NULL);
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_ew_unary((int)op, (int)ops_kind_of(compute), &g, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_unary(dama_tensor **out, dama_unop op, const dama_tensor *a) {
  if (!out) return dama_error(DAMA_ERR_ARG, "unary: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check_unop("unary", op));
  DAMA_TRY(cuda_check(dama_unop_name(op), "a", a));
  dama_dtype compute, rt = ops_unary_result(op, (dama_dtype)a->dtype, &compute);
  DAMA_TRY(dama_empty(out, a->ndim, a->shape, rt, a->storage->device));
  dama_status s = unary_into(*out, op, a, compute);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

static dama_status cuda_unary_(dama_tensor *a, dama_unop op) {
  DAMA_TRY(ops_check_unop("unary_", op));
  DAMA_TRY(cuda_check(dama_unop_name(op), "a", a));
  DAMA_TRY(ops_check_writable(dama_unop_name(op), a));
  dama_dtype compute;
  ops_unary_result(op, (dama_dtype)a->dtype, &compute);
  return unary_into(a, op, a, compute);
}

/* ---- clamp ---- */

static dama_status clamp_into(dama_tensor *out, const dama_tensor *a, double lo, double hi, const char *name) {
  DAMA_TRY(ops_check_clamp_bounds(name, lo, hi));
  const dama_tensor *ts[2] = {out, a};
  dama_cuda_ew g;
  ew_geom(&g, 2, ts, NULL);
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_ew_clamp((int)ops_kind_of((dama_dtype)a->dtype), &g, lo, hi,
                                          dama_ew_bound_i64(ceil(lo)), dama_ew_bound_i64(floor(hi)),
                                          dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_clamp(dama_tensor **out, const dama_tensor *a, double lo, double hi) {
  if (!out) return dama_error(DAMA_ERR_ARG, "clamp: out is NULL");
  *out = NULL;
  DAMA_TRY(cuda_check("clamp", "a", a));
  DAMA_TRY(dama_empty(out, a->ndim, a->shape, (dama_dtype)a->dtype, a->storage->device));
  dama_status s = clamp_into(*out, a, lo, hi, "clamp");
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

static dama_status cuda_clamp_(dama_tensor *a, double lo, double hi) {
  DAMA_TRY(cuda_check("clamp_", "a", a));
  DAMA_TRY(ops_check_writable("clamp_", a));
  return clamp_into(a, a, lo, hi, "clamp_");
}

/* ---- where ---- */

static dama_status cuda_where(dama_tensor **out, const dama_tensor *cond, const dama_tensor *a, const dama_tensor *b) {
  if (!out) return dama_error(DAMA_ERR_ARG, "where: out is NULL");
  *out = NULL;
  DAMA_TRY(cuda_check("where", "cond", cond));
  DAMA_TRY(cuda_check("where", "a", a));
  DAMA_TRY(cuda_check("where", "b", b));
  int32_t nd;
  int64_t shape[DAMA_MAX_DIMS];
  DAMA_TRY(ops_where_shape(cond, a, b, &nd, shape));
  dama_dtype rt = ops_promote((dama_dtype)a->dtype, (dama_dtype)b->dtype);
  DAMA_TRY(dama_empty(out, nd, shape, rt, a->storage->device));
  const dama_tensor *ts[4] = {*out, cond, a, b};
  dama_cuda_ew g;
  ew_geom(&g, 4, ts, NULL);
  LAUNCH_STATUS(dama_cuda_ew_where((int)ops_kind_of(rt), &g, dama_cuda_stream()));
  if (s_ != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s_;
}

/* ---- fills ---- */

static dama_status cuda_fill_(dama_tensor *a, double value) {
  DAMA_TRY(cuda_check("fill_", "a", a));
  const dama_tensor *ts[1] = {a};
  dama_cuda_ew g;
  ew_geom(&g, 1, ts, NULL);
  ops_scalar_bytes(value, (dama_dtype)a->dtype, &g.value); /* the element's bytes, as the CPU stores them */
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_ew_fill(&g, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_masked_fill_(dama_tensor *a, const dama_tensor *mask, double value) {
  DAMA_TRY(cuda_check("masked_fill_", "a", a));
  DAMA_TRY(cuda_check("masked_fill_", "mask", mask));
  DAMA_TRY(ops_check_writable("masked_fill_", a));
  DAMA_TRY(ops_check_into("masked_fill_", a, mask, "mask"));
  dama_tensor *tm = NULL;
  DAMA_TRY(unalias(a, &mask, &tm));
  const dama_tensor *ts[2] = {a, mask};
  dama_cuda_ew g;
  ew_geom(&g, 2, ts, NULL);
  ops_scalar_bytes(value, (dama_dtype)a->dtype, &g.value);
  LAUNCH_STATUS(dama_cuda_ew_masked_fill(&g, dama_cuda_stream()));
  dama_tensor_release(tm);
  return s_;
}

/* ---- count_nonfinite: one reduction kernel into a device counter, one 8-byte copy back (a host sync, counted as a
 * device read: the caller asked for a host value) ---- */

static dama_status cuda_count_nonfinite(const dama_tensor *a, int64_t *count) {
  DAMA_TRY(cuda_check("count_nonfinite", "a", a));
  if (!count) return dama_error(DAMA_ERR_ARG, "count_nonfinite: count is NULL");
  *count = 0;
  if (!dama_dtype_is_float((dama_dtype)a->dtype)) return DAMA_OK;
  const dama_tensor *ts[1] = {a};
  dama_cuda_ew g;
  ew_geom(&g, 1, ts, NULL);
  if (g.numel == 0) return DAMA_OK;
  const int32_t dev = dama_cuda_current_device();
  if (dama_cuda_device_capture(dev)) /* a host read would end the capture (backend_cuda.c refuses its own alike) */
    return dama_error(DAMA_ERR_DEVICE, "count_nonfinite on cuda:%d while a CUDA graph is being captured there: the "
                      "captured work must stay on the device (no reads to the host, no synchronisation); move it out "
                      "of the captured function", (int)dev);
  void *d = NULL;
  DAMA_TRY(dama_cuda_scratch_alloc("count_nonfinite", (int64_t)sizeof(unsigned long long), &d));
  cudaStream_t stream = dama_cuda_stream();
  unsigned long long host = 0;
  cudaError_t e = dama_cuda_ew_count_nonfinite(&g, (unsigned long long *)d, stream);
  const char *call = "dama_cuda_ew_count_nonfinite";
  if (e == cudaSuccess) {
    e = cudaMemcpyAsync(&host, d, sizeof host, cudaMemcpyDeviceToHost, stream);
    call = "cudaMemcpyAsync (count_nonfinite's count)";
  }
  if (e == cudaSuccess) {
    e = cudaStreamSynchronize(stream);
    call = "cudaStreamSynchronize (count_nonfinite)";
  }
  dama_cuda_scratch_free(d, (int64_t)sizeof(unsigned long long));
  if (e != cudaSuccess) return dama_cuda_status(e, call, __FILE__, __LINE__);
  dama_count_device_read();
  *count = (int64_t)host;
  return DAMA_OK;
}

void dama_cuda_fill_ops_tensor(dama_backend_ops *ops) {
  ops->binary = cuda_binary;
  ops->binary_ = cuda_binary_;
  ops->binary_scalar = cuda_binary_scalar;
  ops->binary_scalar_ = cuda_binary_scalar_;
  ops->unary = cuda_unary;
  ops->unary_ = cuda_unary_;
  ops->clamp = cuda_clamp;
  ops->clamp_ = cuda_clamp_;
  ops->where = cuda_where;
  ops->masked_fill_ = cuda_masked_fill_;
  ops->fill_ = cuda_fill_;
  ops->count_nonfinite = cuda_count_nonfinite;
  ops->copy = cuda_copy;
}
