/* Element-wise ops on the CPU: binary (with broadcasting), scalar, unary, clamp, where, fills, and
 * count_nonfinite. Kernels exist for three compute kinds (f32, f64, i64, see ops_internal.h); each kernel
 * takes operands with a stride flag (1 = contiguous run, 0 = one broadcast value) so the contiguous,
 * scalar-broadcast and row-broadcast cases run as plain vectorisable loops. */
#include "cpu/ops_internal.h"
#include "core/backend.h"
#include "core/dama_math.h"
#include <stdlib.h>

/* The per-element expressions are core/dama_math.h's (the CUDA kernels call the same ones), keyed by these codes. */
#define SAME_CODE(x) ((int)DAMA_EW_##x == (int)DAMA_##x)
_Static_assert(SAME_CODE(ADD) && SAME_CODE(SUB) && SAME_CODE(MUL) && SAME_CODE(DIV) && SAME_CODE(POW) &&
               SAME_CODE(MAXIMUM) && SAME_CODE(MINIMUM) && SAME_CODE(EQ) && SAME_CODE(NE) && SAME_CODE(LT) &&
               SAME_CODE(LE) && SAME_CODE(GT) && SAME_CODE(GE) && SAME_CODE(NUM_BINOPS),
               "dama_math.h's binop codes are dama_binop's");
_Static_assert(SAME_CODE(NEG) && SAME_CODE(EXP) && SAME_CODE(LOG) && SAME_CODE(SQRT) && SAME_CODE(ABS) &&
               SAME_CODE(SIN) && SAME_CODE(COS) && SAME_CODE(TANH) && SAME_CODE(SIGMOID) && SAME_CODE(RELU) &&
               SAME_CODE(RSQRT) && SAME_CODE(SQUARE) && SAME_CODE(RECIPROCAL) && SAME_CODE(SIGN) && SAME_CODE(FLOOR) &&
               SAME_CODE(CEIL) && SAME_CODE(ROUND) && SAME_CODE(ERF) && SAME_CODE(GELU) && SAME_CODE(NUM_UNOPS),
               "dama_math.h's unop codes are dama_unop's");
#undef SAME_CODE

static const char *const binop_names[DAMA_NUM_BINOPS] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum",
                                                          "eq",  "ne",  "lt",  "le",  "gt",  "ge"};
static const char *const unop_names[DAMA_NUM_UNOPS] = {
    "neg", "exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu",
    "rsqrt", "square", "reciprocal", "sign", "floor", "ceil", "round", "erf", "gelu"};

const char *dama_binop_name(dama_binop op) { return (unsigned)op < DAMA_NUM_BINOPS ? binop_names[op] : "binop?"; }
const char *dama_unop_name(dama_unop op) { return (unsigned)op < DAMA_NUM_UNOPS ? unop_names[op] : "unop?"; }

/* ---- binary kernels ---- */

typedef void (*bin_kernel)(int64_t n, const void *a, int sa, const void *b, int sb, void *o);

#define BIN_BODY(T, EXPR)                                                                   \
  const T *A = (const T *)a, *B = (const T *)b; T *O = (T *)o;                              \
  if (sa && sb) { for (int64_t i = 0; i < n; i++) { T x = A[i], y = B[i]; O[i] = (T)(EXPR); } } \
  else if (sa) { T y = B[0]; for (int64_t i = 0; i < n; i++) { T x = A[i]; O[i] = (T)(EXPR); } } \
  else if (sb) { T x = A[0]; for (int64_t i = 0; i < n; i++) { T y = B[i]; O[i] = (T)(EXPR); } } \
  else { T x = A[0], y = B[0]; T r = (T)(EXPR); for (int64_t i = 0; i < n; i++) O[i] = r; }

#define BIN_FN(name, T, EXPR) \
  static void name(int64_t n, const void *a, int sa, const void *b, int sb, void *o) { BIN_BODY(T, EXPR) }

#define BINS(S)                                           \
  BIN_FN(add_##S, T_##S, dama_ew_binop_##S(DAMA_ADD, x, y))     \
  BIN_FN(sub_##S, T_##S, dama_ew_binop_##S(DAMA_SUB, x, y))     \
  BIN_FN(mul_##S, T_##S, dama_ew_binop_##S(DAMA_MUL, x, y))     \
  BIN_FN(div_##S, T_##S, dama_ew_binop_##S(DAMA_DIV, x, y))     \
  BIN_FN(pow_##S, T_##S, dama_ew_binop_##S(DAMA_POW, x, y))     \
  BIN_FN(max_##S, T_##S, dama_ew_binop_##S(DAMA_MAXIMUM, x, y)) \
  BIN_FN(min_##S, T_##S, dama_ew_binop_##S(DAMA_MINIMUM, x, y)) \
  BIN_FN(eq_##S, T_##S, dama_ew_binop_##S(DAMA_EQ, x, y))       \
  BIN_FN(ne_##S, T_##S, dama_ew_binop_##S(DAMA_NE, x, y))       \
  BIN_FN(lt_##S, T_##S, dama_ew_binop_##S(DAMA_LT, x, y))       \
  BIN_FN(le_##S, T_##S, dama_ew_binop_##S(DAMA_LE, x, y))       \
  BIN_FN(gt_##S, T_##S, dama_ew_binop_##S(DAMA_GT, x, y))       \
  BIN_FN(ge_##S, T_##S, dama_ew_binop_##S(DAMA_GE, x, y))

typedef float T_f32;
typedef double T_f64;
typedef int64_t T_i64;
BINS(f32)
BINS(f64)
/* Integer arithmetic wraps (two's complement) like torch; integer division is never computed in the i64 kind
 * (div promotes to f32), kept for the table. */
BINS(i64)

#define BIN_ROW(S) {add_##S, sub_##S, mul_##S, div_##S, pow_##S, max_##S, min_##S, eq_##S, ne_##S, lt_##S, le_##S, gt_##S, ge_##S}
static const bin_kernel bin_kernels[3][DAMA_NUM_BINOPS] = {BIN_ROW(f32), BIN_ROW(f64), BIN_ROW(i64)};

/* ---- the run driver shared by every element-wise op ----
 * Operand 0 is the output; inputs 1..nin. An input is read in place when its dtype is the kind's
 * own type and its inner stride is 0 or 1, else converted into a stack buffer. */

typedef struct ew_ctx {
  ops_kind kind;              /* compute kind */
  dama_dtype dt[OPS_MAX_OPERANDS];
  ops_kind in_kind[OPS_MAX_OPERANDS]; /* kind each input is converted to (normally `kind`) */
  int nin;
  void (*apply)(const struct ew_ctx *c, int64_t n, const void *const *in, const int *flag, void *out);
  bin_kernel bk;
  int unop;
  double lo, hi;              /* clamp bounds (float kinds) */
  int64_t ilo, ihi;           /* clamp bounds (i64 kind) */
} ew_ctx;

static void ew_run(void *vctx, char *const *ptrs, const int64_t *strides, int64_t n) {
  const ew_ctx *c = vctx;
  _Alignas(64) char buf[OPS_MAX_OPERANDS][OPS_BLOCK * 8];
  const bool out_direct = c->dt[0] == ops_kind_dtype(c->kind) && strides[0] == 1;
  for (int64_t done = 0; done < n;) {
    int64_t m = n - done;
    if (m > OPS_BLOCK) m = OPS_BLOCK;
    const void *in[OPS_MAX_OPERANDS];
    int flag[OPS_MAX_OPERANDS];
    for (int k = 1; k <= c->nin; k++) {
      const ops_kind ik = c->in_kind[k];
      const int64_t s = strides[k];
      const char *p = ptrs[k] + done * s * dama_dtype_size(c->dt[k]);
      flag[k] = s != 0;
      if (c->dt[k] == ops_kind_dtype(ik) && (s == 0 || s == 1)) in[k] = p;
      else { ops_load(ik, c->dt[k], p, s, s == 0 ? 1 : m, buf[k]); in[k] = buf[k]; }
    }
    char *optr = ptrs[0] + done * strides[0] * dama_dtype_size(c->dt[0]);
    void *o = out_direct ? (void *)optr : (void *)buf[0];
    c->apply(c, m, in + 1, flag + 1, o);
    if (!out_direct) ops_store(c->kind, buf[0], c->dt[0], optr, strides[0], m);
    done += m;
  }
}

static void apply_binary(const ew_ctx *c, int64_t n, const void *const *in, const int *flag, void *out) {
  c->bk(n, in[0], flag[0], in[1], flag[1], out);
}

/* Run an element-wise op: out (already allocated, any layout) and inputs broadcast to out's shape. */
static dama_status ew_launch(ew_ctx *c, dama_tensor *out, int nin, const dama_tensor *const *ins, const char *op) {
  const dama_tensor *ts[OPS_MAX_OPERANDS];
  ts[0] = out;
  c->dt[0] = (dama_dtype)out->dtype;
  c->nin = nin;
  for (int k = 0; k < nin; k++) {
    ts[k + 1] = ins[k];
    c->dt[k + 1] = (dama_dtype)ins[k]->dtype;
  }
  ops_iter it;
  ops_iter_init(&it, out->ndim, out->shape, nin + 1, ts, 1);
  return ops_iter_run(&it, ew_run, c, op);
}

/* ---- binary ---- */

/* Inputs that alias the output in a different layout are copied first. */
static dama_status unalias(dama_tensor *out, const dama_tensor **in, dama_tensor **tmp) {
  *tmp = NULL;
  if (!ops_overlaps_differently(out, *in)) return DAMA_OK;
  DAMA_TRY(ops_to_dtype(tmp, *in, (dama_dtype)(*in)->dtype));
  *in = *tmp;
  return DAMA_OK;
}

static dama_status binary_into(dama_tensor *out, dama_binop op, const dama_tensor *a, const dama_tensor *b,
                               dama_dtype compute) {
  ew_ctx c;
  memset(&c, 0, sizeof c);
  c.kind = ops_kind_of(compute);
  c.bk = bin_kernels[c.kind][op];
  c.apply = apply_binary;
  c.in_kind[1] = c.in_kind[2] = c.kind;
  dama_tensor *ta = NULL, *tb = NULL;
  DAMA_TRY(unalias(out, &a, &ta));
  dama_status s = unalias(out, &b, &tb);
  if (s == DAMA_OK) {
    const dama_tensor *ins[2] = {a, b};
    s = ew_launch(&c, out, 2, ins, dama_binop_name(op));
  }
  dama_tensor_release(ta);
  dama_tensor_release(tb);
  return s;
}

dama_status dama_cpu_binary(dama_tensor **out, dama_binop op, const dama_tensor *a, const dama_tensor *b) {
  if (!out) return dama_error(DAMA_ERR_ARG, "binary: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check_binop(op));
  const char *name = dama_binop_name(op);
  DAMA_TRY(ops_check(name, "a", a));
  DAMA_TRY(ops_check(name, "b", b));
  int32_t nd;
  int64_t shape[DAMA_MAX_DIMS];
  DAMA_TRY(ops_broadcast(name, a, b, &nd, shape));
  dama_dtype compute, rt = ops_binary_result(op, ops_promote((dama_dtype)a->dtype, (dama_dtype)b->dtype), &compute);
  DAMA_TRY(dama_empty(out, nd, shape, rt, a->storage->device));
  dama_status s = binary_into(*out, op, a, b, compute);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

dama_status dama_cpu_binary_(dama_tensor *a, dama_binop op, const dama_tensor *b) {
  DAMA_TRY(ops_check_binop(op));
  char name[32];
  snprintf(name, sizeof name, "%s_", dama_binop_name(op));
  DAMA_TRY(ops_check(name, "a", a));
  DAMA_TRY(ops_check(name, "b", b));
  DAMA_TRY(ops_check_writable(name, a));
  DAMA_TRY(ops_check_into(name, a, b, "b"));
  dama_dtype compute;
  ops_binary_result(op, ops_promote((dama_dtype)a->dtype, (dama_dtype)b->dtype), &compute);
  return binary_into(a, op, a, b, compute);
}

/* Scalars keep the tensor's dtype (torch's rule for Python numbers): an integral value on an int tensor
 * stays int; a fractional/non-finite value on an int tensor gives f32. The scalar itself is held in the
 * compute precision (f32 for f32/bf16/f16, f64, or i64), never rounded to bf16/f16. */
static void scalar_types(dama_binop op, dama_dtype at, double s, dama_dtype *rt, dama_dtype *compute, dama_dtype *st) {
  *rt = ops_scalar_result(op, at, s, compute);
  *st = ops_kind_dtype(ops_kind_of(*compute));
}

dama_status dama_cpu_binary_scalar(dama_tensor **out, dama_binop op, const dama_tensor *a, double s, int32_t scalar_first) {
  if (!out) return dama_error(DAMA_ERR_ARG, "binary_scalar: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check_binop(op));
  const char *name = dama_binop_name(op);
  DAMA_TRY(ops_check(name, "a", a));
  dama_dtype rt, compute, st;
  scalar_types(op, (dama_dtype)a->dtype, s, &rt, &compute, &st);
  DAMA_TRY(ops_scalar_pow_check(name, op, compute, s, scalar_first));
  ops_scalar sc;
  ops_scalar_init(&sc, s, st);
  DAMA_TRY(dama_empty(out, a->ndim, a->shape, rt, a->storage->device));
  dama_status r = scalar_first ? binary_into(*out, op, &sc.t, a, compute) : binary_into(*out, op, a, &sc.t, compute);
  if (r != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return r;
}

dama_status dama_cpu_binary_scalar_(dama_tensor *a, dama_binop op, double s) {
  DAMA_TRY(ops_check_binop(op));
  char name[32];
  snprintf(name, sizeof name, "%s_", dama_binop_name(op));
  DAMA_TRY(ops_check(name, "a", a));
  DAMA_TRY(ops_check_writable(name, a));
  dama_dtype rt, compute, st;
  scalar_types(op, (dama_dtype)a->dtype, s, &rt, &compute, &st);
  DAMA_TRY(ops_scalar_pow_check(name, op, compute, s, 0));
  ops_scalar sc;
  ops_scalar_init(&sc, s, st);
  return binary_into(a, op, a, &sc.t, compute);
}

/* ---- unary ---- */

#define UN_FN(name, T, EXPR)                                                              \
  static void name(int64_t n, const void *a, int sa, void *o) {                            \
    const T *A = (const T *)a; T *O = (T *)o;                                             \
    if (sa) { for (int64_t i = 0; i < n; i++) { T x = A[i]; O[i] = (T)(EXPR); } }          \
    else { T x = A[0]; T r = (T)(EXPR); for (int64_t i = 0; i < n; i++) O[i] = r; }       \
  }
typedef void (*un_kernel)(int64_t n, const void *a, int sa, void *o);

#define FLOAT_UNS(S)                                                  \
  UN_FN(neg_##S, T_##S, dama_ew_unop_##S(DAMA_NEG, x))                \
  UN_FN(exp_##S, T_##S, dama_ew_unop_##S(DAMA_EXP, x))                \
  UN_FN(log_##S, T_##S, dama_ew_unop_##S(DAMA_LOG, x))                \
  UN_FN(sqrt_##S, T_##S, dama_ew_unop_##S(DAMA_SQRT, x))              \
  UN_FN(abs_##S, T_##S, dama_ew_unop_##S(DAMA_ABS, x))                \
  UN_FN(sin_##S, T_##S, dama_ew_unop_##S(DAMA_SIN, x))                \
  UN_FN(cos_##S, T_##S, dama_ew_unop_##S(DAMA_COS, x))                \
  UN_FN(tanh_##S, T_##S, dama_ew_unop_##S(DAMA_TANH, x))              \
  UN_FN(sigmoid_##S, T_##S, dama_ew_unop_##S(DAMA_SIGMOID, x))        \
  UN_FN(relu_##S, T_##S, dama_ew_unop_##S(DAMA_RELU, x))              \
  UN_FN(rsqrt_##S, T_##S, dama_ew_unop_##S(DAMA_RSQRT, x))            \
  UN_FN(square_##S, T_##S, dama_ew_unop_##S(DAMA_SQUARE, x))          \
  UN_FN(recip_##S, T_##S, dama_ew_unop_##S(DAMA_RECIPROCAL, x))       \
  UN_FN(sign_##S, T_##S, dama_ew_unop_##S(DAMA_SIGN, x))              \
  UN_FN(floor_##S, T_##S, dama_ew_unop_##S(DAMA_FLOOR, x))            \
  UN_FN(ceil_##S, T_##S, dama_ew_unop_##S(DAMA_CEIL, x))              \
  UN_FN(round_##S, T_##S, dama_ew_unop_##S(DAMA_ROUND, x))            \
  UN_FN(erf_##S, T_##S, dama_ew_unop_##S(DAMA_ERF, x))                \
  UN_FN(gelu_##S, T_##S, dama_ew_unop_##S(DAMA_GELU, x))

FLOAT_UNS(f32)
FLOAT_UNS(f64)

UN_FN(neg_i64, int64_t, dama_ew_unop_i64(DAMA_NEG, x))
UN_FN(abs_i64, int64_t, dama_ew_unop_i64(DAMA_ABS, x))
UN_FN(relu_i64, int64_t, dama_ew_unop_i64(DAMA_RELU, x))
UN_FN(square_i64, int64_t, dama_ew_unop_i64(DAMA_SQUARE, x))
UN_FN(sign_i64, int64_t, dama_ew_unop_i64(DAMA_SIGN, x))
UN_FN(id_i64, int64_t, dama_ew_unop_i64(DAMA_FLOOR, x))

#define UN_ROW(S) {neg_##S, exp_##S, log_##S, sqrt_##S, abs_##S, sin_##S, cos_##S, tanh_##S, sigmoid_##S, relu_##S, \
                   rsqrt_##S, square_##S, recip_##S, sign_##S, floor_##S, ceil_##S, round_##S, erf_##S, gelu_##S}
static const un_kernel un_float[2][DAMA_NUM_UNOPS] = {UN_ROW(f32), UN_ROW(f64)};

/* Unary ops that keep an int dtype (computed in i64); the others promote ints to f32. */
static un_kernel un_int(dama_unop op) {
  if (!dama_ew_unop_keeps_int((int)op)) return NULL;
  switch (op) {
    case DAMA_NEG: return neg_i64;
    case DAMA_ABS: return abs_i64;
    case DAMA_RELU: return relu_i64;
    case DAMA_SQUARE: return square_i64;
    case DAMA_SIGN: return sign_i64;
    case DAMA_FLOOR: case DAMA_CEIL: case DAMA_ROUND: return id_i64;
    default: return NULL;
  }
}

static void apply_unary(const ew_ctx *c, int64_t n, const void *const *in, const int *flag, void *out) {
  un_kernel k = c->kind == OPS_KI64 ? un_int((dama_unop)c->unop) : un_float[c->kind][c->unop];
  k(n, in[0], flag[0], out);
}

static dama_status unary_into(dama_tensor *out, dama_unop op, const dama_tensor *a, dama_dtype compute) {
  ew_ctx c;
  memset(&c, 0, sizeof c);
  c.kind = ops_kind_of(compute);
  c.in_kind[1] = c.kind;
  c.unop = op;
  c.apply = apply_unary;
  return ew_launch(&c, out, 1, &a, dama_unop_name(op));
}

dama_status dama_cpu_unary(dama_tensor **out, dama_unop op, const dama_tensor *a) {
  if (!out) return dama_error(DAMA_ERR_ARG, "unary: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check_unop("unary", op));
  DAMA_TRY(ops_check(dama_unop_name(op), "a", a));
  dama_dtype compute, rt = ops_unary_result(op, (dama_dtype)a->dtype, &compute);
  DAMA_TRY(dama_empty(out, a->ndim, a->shape, rt, a->storage->device));
  dama_status s = unary_into(*out, op, a, compute);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

dama_status dama_cpu_unary_(dama_tensor *a, dama_unop op) {
  DAMA_TRY(ops_check_unop("unary_", op));
  DAMA_TRY(ops_check(dama_unop_name(op), "a", a));
  DAMA_TRY(ops_check_writable(dama_unop_name(op), a));
  dama_dtype compute;
  ops_unary_result(op, (dama_dtype)a->dtype, &compute);
  return unary_into(a, op, a, compute);
}

/* ---- clamp ---- */

static void apply_clamp(const ew_ctx *c, int64_t n, const void *const *in, const int *flag, void *out) {
  const int64_t sa = flag[0];
  if (c->kind == OPS_KF32) {
    const float *A = in[0]; float *O = out, lo = (float)c->lo, hi = (float)c->hi;
    for (int64_t i = 0; i < n; i++) O[i] = dama_ew_clamp_f32(A[i * sa], lo, hi);
  } else if (c->kind == OPS_KF64) {
    const double *A = in[0]; double *O = out, lo = c->lo, hi = c->hi;
    for (int64_t i = 0; i < n; i++) O[i] = dama_ew_clamp_f64(A[i * sa], lo, hi);
  } else {
    const int64_t *A = in[0]; int64_t *O = out, lo = c->ilo, hi = c->ihi;
    for (int64_t i = 0; i < n; i++) O[i] = dama_ew_clamp_i64(A[i * sa], lo, hi);
  }
}

static dama_status clamp_into(dama_tensor *out, const dama_tensor *a, double lo, double hi, const char *name) {
  DAMA_TRY(ops_check_clamp_bounds(name, lo, hi));
  ew_ctx c;
  memset(&c, 0, sizeof c);
  c.kind = ops_kind_of((dama_dtype)a->dtype);
  c.in_kind[1] = c.kind;
  c.lo = lo; c.hi = hi;
  c.ilo = dama_ew_bound_i64(ceil(lo));
  c.ihi = dama_ew_bound_i64(floor(hi));
  c.apply = apply_clamp;
  return ew_launch(&c, out, 1, &a, name);
}

dama_status dama_cpu_clamp(dama_tensor **out, const dama_tensor *a, double lo, double hi) {
  if (!out) return dama_error(DAMA_ERR_ARG, "clamp: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check("clamp", "a", a));
  DAMA_TRY(dama_empty(out, a->ndim, a->shape, (dama_dtype)a->dtype, a->storage->device));
  dama_status s = clamp_into(*out, a, lo, hi, "clamp");
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

dama_status dama_cpu_clamp_(dama_tensor *a, double lo, double hi) {
  DAMA_TRY(ops_check("clamp_", "a", a));
  DAMA_TRY(ops_check_writable("clamp_", a));
  return clamp_into(a, a, lo, hi, "clamp_");
}

/* ---- where ---- */

static void apply_where(const ew_ctx *c, int64_t n, const void *const *in, const int *flag, void *out) {
  /* in[0] is the condition in its own kind (in_kind[1]); in[1], in[2] in the compute kind */
  const ops_kind ck = c->in_kind[1];
  const int64_t sc = flag[0], sa = flag[1], sb = flag[2];
#define WHERE_LOOP(T)                                                                             \
  do { const T *A = in[1], *B = in[2]; T *O = out;                                                \
    if (ck == OPS_KF32) { const float *C = in[0]; for (int64_t i = 0; i < n; i++) O[i] = C[i * sc] != 0 ? A[i * sa] : B[i * sb]; } \
    else if (ck == OPS_KF64) { const double *C = in[0]; for (int64_t i = 0; i < n; i++) O[i] = C[i * sc] != 0 ? A[i * sa] : B[i * sb]; } \
    else { const int64_t *C = in[0]; for (int64_t i = 0; i < n; i++) O[i] = C[i * sc] != 0 ? A[i * sa] : B[i * sb]; } \
  } while (0)
  if (c->kind == OPS_KF32) WHERE_LOOP(float);
  else if (c->kind == OPS_KF64) WHERE_LOOP(double);
  else WHERE_LOOP(int64_t);
#undef WHERE_LOOP
}

dama_status dama_cpu_where(dama_tensor **out, const dama_tensor *cond, const dama_tensor *a, const dama_tensor *b) {
  if (!out) return dama_error(DAMA_ERR_ARG, "where: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check("where", "cond", cond));
  DAMA_TRY(ops_check("where", "a", a));
  DAMA_TRY(ops_check("where", "b", b));
  int32_t n2;
  int64_t s2[DAMA_MAX_DIMS];
  DAMA_TRY(ops_where_shape(cond, a, b, &n2, s2));
  dama_dtype rt = ops_promote((dama_dtype)a->dtype, (dama_dtype)b->dtype);
  DAMA_TRY(dama_empty(out, n2, s2, rt, a->storage->device));
  ew_ctx c;
  memset(&c, 0, sizeof c);
  c.kind = ops_kind_of(rt);
  c.in_kind[1] = ops_kind_of((dama_dtype)cond->dtype);
  c.in_kind[2] = c.in_kind[3] = c.kind;
  c.apply = apply_where;
  const dama_tensor *ins[3] = {cond, a, b};
  dama_status s = ew_launch(&c, *out, 3, ins, "where");
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

/* ---- fills ---- */

typedef struct fill_ctx { int elsize; ops_kind mk; dama_dtype mt; union { uint8_t b[8]; float f; double d; int64_t i; } v; } fill_ctx;  /* d, i: 8-byte alignment for f64/i64 stores */

static inline void put(char *p, const void *v, int sz) {
  switch (sz) {
    case 1: *(uint8_t *)p = *(const uint8_t *)v; break;
    case 2: memcpy(p, v, 2); break;
    case 4: memcpy(p, v, 4); break;
    default: memcpy(p, v, 8); break;
  }
}

static void fill_run(void *vctx, char *const *ptrs, const int64_t *strides, int64_t n) {
  const fill_ctx *c = vctx;
  const int sz = c->elsize;
  const int64_t step = strides[0] * sz;
  if (sz == 4 && strides[0] == 1) {
    uint32_t v, *p = (uint32_t *)ptrs[0];
    memcpy(&v, c->v.b, 4);
    for (int64_t i = 0; i < n; i++) p[i] = v;
    return;
  }
  for (int64_t i = 0; i < n; i++) put(ptrs[0] + i * step, c->v.b, sz);
}

dama_status dama_cpu_fill_(dama_tensor *a, double value) {
  DAMA_TRY(ops_check("fill_", "a", a));
  fill_ctx c;
  memset(&c, 0, sizeof c);
  c.elsize = dama_dtype_size((dama_dtype)a->dtype);
  ops_scalar_bytes(value, (dama_dtype)a->dtype, c.v.b);
  ops_iter it;
  const dama_tensor *ts[1] = {a};
  ops_iter_init(&it, a->ndim, a->shape, 1, ts, 1);
  return ops_iter_run(&it, fill_run, &c, "fill_");
}

static void masked_fill_run(void *vctx, char *const *ptrs, const int64_t *strides, int64_t n) {
  const fill_ctx *c = vctx;
  const int sz = c->elsize;
  _Alignas(64) char mb[OPS_BLOCK * 8];
  for (int64_t done = 0; done < n;) {
    int64_t m = n - done < OPS_BLOCK ? n - done : OPS_BLOCK;
    const char *mp = ptrs[1] + done * strides[1] * dama_dtype_size(c->mt);
    char *ap = ptrs[0] + done * strides[0] * sz;
    if (c->mt == DAMA_U8) {
      const uint8_t *M = (const uint8_t *)mp;
      for (int64_t i = 0; i < m; i++) if (M[i * strides[1]]) put(ap + i * strides[0] * sz, c->v.b, sz);
    } else {
      ops_load(c->mk, c->mt, mp, strides[1], m, mb);
      for (int64_t i = 0; i < m; i++) {
        bool on = c->mk == OPS_KF32 ? ((float *)mb)[i] != 0 : c->mk == OPS_KF64 ? ((double *)mb)[i] != 0
                                                                                  : ((int64_t *)mb)[i] != 0;
        if (on) put(ap + i * strides[0] * sz, c->v.b, sz);
      }
    }
    done += m;
  }
}

dama_status dama_cpu_masked_fill_(dama_tensor *a, const dama_tensor *mask, double value) {
  DAMA_TRY(ops_check("masked_fill_", "a", a));
  DAMA_TRY(ops_check("masked_fill_", "mask", mask));
  DAMA_TRY(ops_check_writable("masked_fill_", a));
  DAMA_TRY(ops_check_into("masked_fill_", a, mask, "mask"));
  fill_ctx c;
  memset(&c, 0, sizeof c);
  c.elsize = dama_dtype_size((dama_dtype)a->dtype);
  c.mt = (dama_dtype)mask->dtype;
  c.mk = ops_kind_of(c.mt);
  ops_scalar_bytes(value, (dama_dtype)a->dtype, c.v.b);
  dama_tensor *tm = NULL;
  DAMA_TRY(unalias(a, &mask, &tm));
  ops_iter it;
  const dama_tensor *ts[2] = {a, mask};
  ops_iter_init(&it, a->ndim, a->shape, 2, ts, 1);
  dama_status s = ops_iter_run(&it, masked_fill_run, &c, "masked_fill_");
  dama_tensor_release(tm);
  return s;
}

/* ---- count_nonfinite ---- */

typedef struct nf_ctx { dama_dtype t; int64_t *counts; } nf_ctx;

static void nonfinite_run(void *vctx, char *const *ptrs, const int64_t *strides, int64_t n) {
  const nf_ctx *c = vctx;
  int64_t cnt = 0;
  if (c->t == DAMA_F32) {
    const float *p = (const float *)ptrs[0];
    for (int64_t i = 0; i < n; i++) cnt += !isfinite(p[i * strides[0]]);
  } else if (c->t == DAMA_F64) {
    const double *p = (const double *)ptrs[0];
    for (int64_t i = 0; i < n; i++) cnt += !isfinite(p[i * strides[0]]);
  } else { /* bf16 / f16: exponent all ones */
    const uint16_t *p = (const uint16_t *)ptrs[0];
    const uint16_t e = c->t == DAMA_BF16 ? 0x7f80 : 0x7c00;
    for (int64_t i = 0; i < n; i++) cnt += (p[i * strides[0]] & e) == e;
  }
  *c->counts += cnt; /* one partial slot per fixed chunk, so no two threads share it */
}

typedef struct nf_range { const ops_iter *it; dama_dtype t; int64_t *partial; int64_t grain; } nf_range;

static void nonfinite_range(void *vctx, int64_t b, int64_t e) {
  const nf_range *r = vctx;
  nf_ctx c = {r->t, &r->partial[b / r->grain]};
  /* iterate [b, e) of the flat index through a 1-operand iterator run */
  const ops_iter *it = r->it;
  const int32_t L = it->ndim - 1;
  int64_t idx[DAMA_MAX_DIMS], rem = b;
  for (int32_t d = L; d >= 0; d--) { idx[d] = rem % it->shape[d]; rem /= it->shape[d]; }
  int64_t pos = b;
  while (pos < e) {
    int64_t off = 0;
    for (int32_t d = 0; d <= L; d++) off += idx[d] * it->strides[0][d];
    int64_t n = it->shape[L] - idx[L];
    if (n > e - pos) n = e - pos;
    char *p = it->base[0] + off * it->elsize[0];
    int64_t st = it->strides[0][L];
    nonfinite_run(&c, &p, &st, n);
    pos += n;
    idx[L] += n;
    for (int32_t d = L; d > 0 && idx[d] == it->shape[d]; d--) { idx[d] = 0; idx[d - 1]++; }
  }
}

dama_status dama_cpu_count_nonfinite(const dama_tensor *a, int64_t *count) {
  DAMA_TRY(ops_check("count_nonfinite", "a", a));
  if (!count) return dama_error(DAMA_ERR_ARG, "count_nonfinite: count is NULL");
  *count = 0;
  if (!dama_dtype_is_float((dama_dtype)a->dtype)) return DAMA_OK;
  ops_iter it;
  const dama_tensor *ts[1] = {a};
  ops_iter_init(&it, a->ndim, a->shape, 1, ts, 1);
  if (it.numel == 0) return DAMA_OK;
  const int64_t grain = OPS_CHUNK / 4;
  const int64_t nchunks = (it.numel + grain - 1) / grain;
  int64_t *partial = calloc((size_t)nchunks, sizeof *partial);
  if (!partial) return dama_error(DAMA_ERR_OOM, "count_nonfinite: out of memory");
  nf_range r = {&it, (dama_dtype)a->dtype, partial, grain};
  dama_status s = ops_parallel_range(it.numel, grain, 1, nonfinite_range, &r, "count_nonfinite");
  for (int64_t i = 0; i < nchunks; i++) *count += partial[i];
  free(partial);
  return s;
}

/* ---- a fast strided copy with dtype conversion (offered to tensor.c's dama_copy_/clone/contiguous) ---- */

static void copy_same_run(void *vctx, char *const *ptrs, const int64_t *strides, int64_t n) {
  const int sz = *(const int *)vctx;
  const int64_t sd = strides[0], ss = strides[1];
  if (sd == 1 && ss == 1) { memcpy(ptrs[0], ptrs[1], (size_t)(n * sz)); return; }
#define COPY_LOOP(T)                                                        \
  do { T *d_ = (T *)(void *)ptrs[0]; const T *s_ = (const T *)(const void *)ptrs[1]; \
    for (int64_t i = 0; i < n; i++) d_[i * sd] = s_[i * ss]; } while (0)
  switch (sz) {
    case 1: COPY_LOOP(uint8_t); break;
    case 2: COPY_LOOP(uint16_t); break;
    case 4: COPY_LOOP(uint32_t); break;
    default: COPY_LOOP(uint64_t); break;
  }
#undef COPY_LOOP
}

static void apply_identity(const ew_ctx *c, int64_t n, const void *const *in, const int *flag, void *out) {
  const int ks = ops_kind_size(c->kind);
  if (flag[0]) { memcpy(out, in[0], (size_t)(n * ks)); return; }
  for (int64_t i = 0; i < n; i++) memcpy((char *)out + i * ks, in[0], (size_t)ks);
}

dama_status dama_copy_kernel(dama_tensor *dst, const dama_tensor *src) {
  DAMA_TRY(ops_check("copy", "dst", dst));
  DAMA_TRY(ops_check("copy", "src", src));
  DAMA_TRY(ops_check_into("copy", dst, src, "source"));
  const dama_dtype dt = (dama_dtype)dst->dtype, st = (dama_dtype)src->dtype;
  const dama_tensor *ts[2] = {dst, src};
  ops_iter it;
  ops_iter_init(&it, dst->ndim, dst->shape, 2, ts, 1);
  if (dt == st) {
    int sz = dama_dtype_size(dt);
    return ops_iter_run(&it, copy_same_run, &sz, "copy");
  }
  ew_ctx c;
  memset(&c, 0, sizeof c);
  const bool fi = !dama_dtype_is_float(dt) && !dama_dtype_is_float(st);
  const bool narrow_floats = ops_kind_of(dt) == OPS_KF32 && ops_kind_of(st) == OPS_KF32;
  c.kind = fi ? OPS_KI64 : narrow_floats ? OPS_KF32 : OPS_KF64;
  c.in_kind[1] = c.kind;
  c.apply = apply_identity;
  return ew_launch(&c, dst, 1, &src, "copy");
}

dama_status ops_contiguous(dama_tensor **out, const dama_tensor *t) {
  *out = NULL;
  if (dama_is_contiguous(t)) { dama_tensor_retain((dama_tensor *)t); *out = (dama_tensor *)t; return DAMA_OK; }
  DAMA_TRY(dama_empty(out, t->ndim, t->shape, (dama_dtype)t->dtype, t->storage->device));
  dama_status s = dama_copy_kernel(*out, t);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

dama_status ops_to_dtype(dama_tensor **out, const dama_tensor *t, dama_dtype dtype) {
  DAMA_TRY(dama_empty(out, t->ndim, t->shape, dtype, t->storage->device));
  dama_status s = dama_copy_kernel(*out, t);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}
