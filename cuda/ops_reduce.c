/* ops_reduce.c — the CUDA backend's reductions and RNG fills (cuda_ops.h says how an op area is built): reduce (sum,
 * mean, var/std with a correction, max/min, argmax/argmin, norm of any order, prod), max_dim/min_dim (values and
 * int64 indices), uniform_, normal_, randint_.
 *
 * Each slot has its CPU twin's semantics (runtime/cpu/ops_reduce.c, rng.c): the same argument checks with the same
 * messages in the same order, the same output shapes and dtypes (allocated on the input's device), every dtype. The
 * input is read where it lies, with its strides (no contiguous copy): the kept and reduced dims go to the kernels as
 * two folded dim lists (reduce_launch.h). Float reductions accumulate in double like the CPU's, so f32 results round
 * to the same float almost always; integer ones and max/min/argmax are exact. Results are deterministic (fixed trees,
 * no atomics). The RNG fills give the CPU's Philox streams and advance the generator as the CPU does, with nothing
 * read back from the device; captured in a CUDA graph, each replay draws what the next eager call would. */
#include "cuda_ops.h"
#include "graph.h"
#include "reduce_launch.h"
#include "core/op_args.h"
#include <math.h>
#include <string.h>

_Static_assert(DAMA_F32 == 0 && DAMA_F64 == 1 && DAMA_BF16 == 2 && DAMA_F16 == 3 && DAMA_U8 == 4 && DAMA_U16 == 5 &&
                   DAMA_I32 == 6 && DAMA_I64 == 7,
               "kernels/reduce_dim.cuh and kernels/philox.cuh number the dtypes as dama_dtype");
_Static_assert(DAMA_CUDA_RED_DIMS == DAMA_MAX_DIMS, "reduce_launch.h's dim lists hold DAMA_MAX_DIMS dims");

/* Append dims (size, stride) in order to a folded list: size-1 dims dropped, a dim merged into the previous one when
 * the two are contiguous (prev stride = stride * size), so the row-major flat index over the list is unchanged. */
static void fold_push(int32_t *n, int64_t *size, int64_t *stride, int64_t sz, int64_t st) {
  if (sz == 1) return;
  if (*n > 0 && stride[*n - 1] == st * sz) {
    size[*n - 1] *= sz;
    stride[*n - 1] = st;
    return;
  }
  size[*n] = sz;
  stride[*n] = st;
  (*n)++;
}

/* The accumulator and finish of op (norm: by p) on a float or integer input. */
static void red_kind(dama_redop op, bool fl, double p, int32_t *acc, int32_t *fin) {
  *fin = DAMA_CUDA_FIN_VALUE;
  switch (op) {
    case DAMA_RSUM: *acc = fl ? DAMA_CUDA_RED_SUM_F : DAMA_CUDA_RED_SUM_I; break;
    case DAMA_RMEAN: *acc = fl ? DAMA_CUDA_RED_SUM_F : DAMA_CUDA_RED_SUM_I; *fin = DAMA_CUDA_FIN_MEAN; break;
    case DAMA_RPROD: *acc = fl ? DAMA_CUDA_RED_PROD_F : DAMA_CUDA_RED_PROD_I; break;
    case DAMA_RVAR: *acc = DAMA_CUDA_RED_VAR; *fin = DAMA_CUDA_FIN_VAR; break;
    case DAMA_RSTD: *acc = DAMA_CUDA_RED_VAR; *fin = DAMA_CUDA_FIN_STD; break;
    case DAMA_RMAX: *acc = DAMA_CUDA_RED_MAX; break;
    case DAMA_RMIN: *acc = DAMA_CUDA_RED_MIN; break;
    case DAMA_RARGMAX: *acc = DAMA_CUDA_RED_MAX; *fin = DAMA_CUDA_FIN_NONE; break;
    case DAMA_RARGMIN: *acc = DAMA_CUDA_RED_MIN; *fin = DAMA_CUDA_FIN_NONE; break;
    case DAMA_RNORM:
      if (p == 2) { *acc = DAMA_CUDA_RED_NORM2; *fin = DAMA_CUDA_FIN_SQRT; }
      else if (p == 1) *acc = DAMA_CUDA_RED_NORM1;
      else if (p == 0) *acc = DAMA_CUDA_RED_NORM0;
      else if (p == INFINITY) *acc = DAMA_CUDA_RED_NORMINF;
      else if (p == -INFINITY) *acc = DAMA_CUDA_RED_NORMNINF;
      else { *acc = DAMA_CUDA_RED_NORMP; *fin = DAMA_CUDA_FIN_ROOT; }
      break;
  }
}

/* The shared driver (ops_reduce.c's reduce_core + write_rows): checks the shape, allocates `*values` (dtype vdt) and
 * `*indices` (int64) where asked for, and queues the kernels. */
static dama_status reduce_run(const char *name, dama_redop op, const dama_tensor *a, const bool *mask, int32_t keepdim,
                              int32_t correction, double p, dama_tensor **values, dama_dtype vdt,
                              dama_tensor **indices) {
  dama_cuda_red r;
  memset(&r, 0, sizeof r);
  int64_t oshape[DAMA_MAX_DIMS];
  int32_t nd = 0;
  int64_t R = 1, L = 1;
  for (int32_t i = 0; i < a->ndim; i++) {
    if (!mask[i]) {
      R *= a->shape[i];
      oshape[nd++] = a->shape[i];
      fold_push(&r.nk, r.ksize, r.kstride, a->shape[i], a->strides[i]);
    } else {
      L *= a->shape[i];
      if (keepdim) oshape[nd++] = 1;
      fold_push(&r.nr, r.rsize, r.rstride, a->shape[i], a->strides[i]);
    }
  }
  if (L == 0 && R > 0 && (op == DAMA_RMAX || op == DAMA_RMIN || op == DAMA_RARGMAX || op == DAMA_RARGMIN)) {
    char sa[160];
    return dama_error(DAMA_ERR_ARG, "%s: empty tensor (reducing zero elements of shape %s)", name,
                      dama_shape_str(a, sa, sizeof sa));
  }
  const dama_device dev = a->storage->device;
  if (values) DAMA_TRY(dama_empty(values, nd, oshape, vdt, dev));
  if (indices) {
    dama_status s = dama_empty(indices, nd, oshape, DAMA_I64, dev);
    if (s != DAMA_OK) {
      if (values) { dama_tensor_release(*values); *values = NULL; }
      return s;
    }
  }
  if (R == 0) return DAMA_OK;
  red_kind(op, dama_dtype_is_float((dama_dtype)a->dtype), p, &r.acc, &r.fin);
  if (values && r.fin == DAMA_CUDA_FIN_NONE) r.fin = DAMA_CUDA_FIN_VALUE; /* max_dim / min_dim: values too */
  r.in_dtype = a->dtype;
  r.out_dtype = vdt;
  r.correction = correction;
  r.R = R;
  r.L = L;
  r.p = p;
  const int64_t bytes = dama_cuda_reduce_workspace(&r);
  void *work = NULL;
  dama_status s = bytes > 0 ? dama_cuda_scratch_alloc(name, bytes, &work) : DAMA_OK;
  if (s == DAMA_OK) {
    const cudaError_t e = dama_cuda_reduce(&r, dama_kernel_ptr(a), values ? dama_kernel_ptr(*values) : NULL,
                                           indices ? (int64_t *)dama_kernel_ptr(*indices) : NULL, work,
                                           dama_cuda_stream());
    if (work) dama_cuda_scratch_free(work, bytes);
    if (e != cudaSuccess) s = dama_cuda_status(e, "dama_cuda_reduce", __FILE__, __LINE__);
  }
  if (s != DAMA_OK) {
    if (values) { dama_tensor_release(*values); *values = NULL; }
    if (indices) { dama_tensor_release(*indices); *indices = NULL; }
  }
  return s;
}

static dama_status cuda_reduce(dama_tensor **out, dama_redop op, const dama_tensor *a, int32_t ndims,
                               const int32_t *dims, int32_t keepdim, int32_t correction, double p) {
  if (!out) return dama_error(DAMA_ERR_ARG, "reduce: out is NULL");
  *out = NULL;
  if ((unsigned)op > DAMA_RPROD) return dama_error(DAMA_ERR_ARG, "reduce: unknown op %d", (int)op);
  const char *name = ops_redop_name(op);
  DAMA_TRY(ops_arg_check(name, "a", a));
  if ((op == DAMA_RARGMAX || op == DAMA_RARGMIN) && ndims > 1)
    return dama_error(DAMA_ERR_ARG, "%s: takes one dim or all dims, got %d dims", name, ndims);
  if (op == DAMA_RNORM && isnan(p)) return dama_error(DAMA_ERR_ARG, "norm: p must not be NaN");
  if ((op == DAMA_RVAR || op == DAMA_RSTD) && correction < 0)
    return dama_error(DAMA_ERR_ARG, "%s: correction must be >= 0, got %d", name, correction);
  bool mask[DAMA_MAX_DIMS];
  DAMA_TRY(ops_reduce_dims(name, a, ndims, dims, mask));
  const dama_dtype rdt = ops_reduce_result(op, (dama_dtype)a->dtype);
  if (op == DAMA_RARGMAX || op == DAMA_RARGMIN) return reduce_run(name, op, a, mask, keepdim, 0, p, NULL, rdt, out);
  return reduce_run(name, op, a, mask, keepdim, correction, p, out, rdt, NULL);
}

static dama_status minmax_dim(const char *name, dama_redop op, dama_tensor **values, dama_tensor **indices,
                              const dama_tensor *a, int32_t dim, int32_t keepdim) {
  if (!values || !indices) return dama_error(DAMA_ERR_ARG, "%s: values/indices output is NULL", name);
  *values = *indices = NULL;
  DAMA_TRY(ops_arg_check(name, "a", a));
  bool mask[DAMA_MAX_DIMS];
  DAMA_TRY(ops_reduce_dims(name, a, 1, &dim, mask));
  return reduce_run(name, op, a, mask, keepdim, 0, 0, values, (dama_dtype)a->dtype, indices);
}

static dama_status cuda_max_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                                int32_t keepdim) {
  return minmax_dim("max", DAMA_RARGMAX, values, indices, a, dim, keepdim);
}

static dama_status cuda_min_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                                int32_t keepdim) {
  return minmax_dim("min", DAMA_RARGMIN, values, indices, a, dim, keepdim);
}

/* ---- RNG fills (rng.c's fill_random): draw i is element i in row-major order; the generator advances by the
 * Philox blocks used, whatever the device ---- */

static dama_status rng_fill(dama_tensor *t, dama_rng *rng, int32_t kind, double a, double b) {
  if (!rng) rng = dama_default_rng();
  dama_cuda_rng g;
  memset(&g, 0, sizeof g);
  g.kind = kind;
  g.dtype = t->dtype;
  g.ndim = t->ndim;
  g.contiguous = dama_is_contiguous(t);
  g.seed = rng->seed;
  g.offset = rng->offset;
  /* in a CUDA graph capture: the generator's device words, refilled before each replay (graph.h) */
  uint64_t delta = 0;
  DAMA_TRY(dama_cuda_graph_rng(rng, &g.state, &delta));
  if (g.state) g.offset = delta;
  g.n = dama_numel(t);
  g.a = a;
  g.b = b;
  for (int32_t i = 0; i < t->ndim; i++) { g.shape[i] = t->shape[i]; g.strides[i] = t->strides[i]; }
  const int64_t blocks = dama_cuda_rng_blocks(&g);
  if (g.n > 0) DAMA_CUDA_LAUNCH_TRY(dama_cuda_rng_fill(&g, dama_kernel_ptr(t), dama_cuda_stream()));
  rng->offset += (uint64_t)blocks;
  return DAMA_OK;
}

static dama_status cuda_uniform_(dama_tensor *t, double lo, double hi, dama_rng *rng) {
  if (!dama_dtype_is_float((dama_dtype)t->dtype))
    return dama_error(DAMA_ERR_DTYPE, "uniform_: expected a float tensor, got %s", dama_dtype_name((dama_dtype)t->dtype));
  if (!(hi >= lo)) return dama_error(DAMA_ERR_ARG, "uniform_: expected lo <= hi, got [%g, %g)", lo, hi);
  return rng_fill(t, rng, DAMA_CUDA_RNG_UNIFORM, lo, hi);
}

static dama_status cuda_normal_(dama_tensor *t, double mean, double std, dama_rng *rng) {
  if (!dama_dtype_is_float((dama_dtype)t->dtype))
    return dama_error(DAMA_ERR_DTYPE, "normal_: expected a float tensor, got %s", dama_dtype_name((dama_dtype)t->dtype));
  if (!(std >= 0)) return dama_error(DAMA_ERR_ARG, "normal_: std must be >= 0, got %g", std);
  return rng_fill(t, rng, DAMA_CUDA_RNG_NORMAL, mean, std);
}

static dama_status cuda_randint_(dama_tensor *t, int64_t lo, int64_t hi, dama_rng *rng) {
  if (hi <= lo)
    return dama_error(DAMA_ERR_ARG, "randint: expected low < high, got [%lld, %lld)", (long long)lo, (long long)hi);
  return rng_fill(t, rng, DAMA_CUDA_RNG_INT, (double)lo, (double)hi);
}

void dama_cuda_fill_ops_reduce(dama_backend_ops *ops) {
  ops->reduce = cuda_reduce;
  ops->max_dim = cuda_max_dim;
  ops->min_dim = cuda_min_dim;
  ops->uniform_ = cuda_uniform_;
  ops->normal_ = cuda_normal_;
  ops->randint_ = cuda_randint_;
}
