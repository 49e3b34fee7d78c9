/* Element-wise ops: binary/scalar/unary/clamp/where/fills/count_nonfinite, all dtypes, broadcasting,
 * non-contiguous inputs, in-place variants and every class of bad input. */
#include "test_ops_util.h"
#include "core/dama_internal.h"
#include "cpu/ops_internal.h"

static const int64_t S23[2] = {2, 3}, S3[1] = {3}, S2[1] = {2};

DAMA_TEST(add_f32_values) {
  double av[6] = {1, 2, 3, 4, 5, 6}, bv[6] = {10, 20, 30, 40, 50, 60};
  dama_tensor *a = mk(DAMA_F32, 2, S23, av), *b = mk(DAMA_F32, 2, S23, bv), *c = NULL;
  CHECK_OK(dama_binary(&c, DAMA_ADD, a, b));
  double e[6] = {11, 22, 33, 44, 55, 66};
  CHECK(c->dtype == DAMA_F32 && shape_is(c, 2, S23));
  CHECK_VALUES(c, e, 0);
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(c);
}

DAMA_TEST(promotion_table) {
  struct { dama_dtype a, b, r; } cases[] = {
      {DAMA_F32, DAMA_I64, DAMA_F32}, {DAMA_U8, DAMA_I32, DAMA_I32}, {DAMA_BF16, DAMA_F16, DAMA_F32},
      {DAMA_I32, DAMA_F64, DAMA_F64}, {DAMA_U8, DAMA_U16, DAMA_U16}, {DAMA_U8, DAMA_U8, DAMA_U8},
      {DAMA_BF16, DAMA_F32, DAMA_F32}, {DAMA_F16, DAMA_I64, DAMA_F16}, {DAMA_U16, DAMA_I32, DAMA_I32},
      {DAMA_I32, DAMA_I64, DAMA_I64}, {DAMA_BF16, DAMA_U8, DAMA_BF16},
  };
  double v[3] = {1, 2, 3};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dama_tensor *a = mk(cases[i].a, 1, S3, v), *b = mk(cases[i].b, 1, S3, v), *c = NULL, *d = NULL, *q = NULL;
    CHECK_OK(dama_binary(&c, DAMA_MUL, a, b));
    CHECK_MSG(c->dtype == (int)cases[i].r, "%s*%s gave %s", dama_dtype_name(cases[i].a), dama_dtype_name(cases[i].b),
              dama_dtype_name((dama_dtype)c->dtype));
    CHECK_OK(dama_binary(&d, DAMA_LT, a, b));
    CHECK(d->dtype == DAMA_U8);
    CHECK_OK(dama_binary(&q, DAMA_DIV, a, b));
    CHECK(dama_dtype_is_float((dama_dtype)q->dtype));
    double e[3] = {1, 4, 9};
    CHECK_VALUES(c, e, 1e-6);
    dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(c); dama_tensor_release(d);
    dama_tensor_release(q);
  }
}

static double naive_bin(dama_binop op, double x, double y, int isint) {
  switch (op) {
    case DAMA_ADD: return x + y;
    case DAMA_SUB: return x - y;
    case DAMA_MUL: return x * y;
    case DAMA_DIV: return x / y;
    case DAMA_POW: return isint ? (double)(int64_t)llround(pow(x, y)) : pow(x, y);
    case DAMA_MAXIMUM: return x > y ? x : y;
    case DAMA_MINIMUM: return x < y ? x : y;
    case DAMA_EQ: return x == y;
    case DAMA_NE: return x != y;
    case DAMA_LT: return x < y;
    case DAMA_LE: return x <= y;
    case DAMA_GT: return x > y;
    case DAMA_GE: return x >= y;
    default: return NAN;
  }
}

DAMA_TEST(every_binop_every_dtype) {
  /* small non-negative values so u8 and bf16 hold them exactly; a - b may go negative for signed only */
  double av[6] = {3, 5, 2, 7, 4, 6}, bv[6] = {2, 5, 3, 1, 4, 2};
  for (int t = 0; t < 8; t++) {
    dama_dtype dt = ALL_DTYPES[t];
    int isint = !dama_dtype_is_float(dt);
    dama_tensor *a = mk(dt, 2, S23, av), *b = mk(dt, 2, S23, bv);
    for (int op = 0; op < DAMA_NUM_BINOPS; op++) {
      if (op == DAMA_SUB && (dt == DAMA_U8 || dt == DAMA_U16)) continue;
      dama_tensor *c = NULL;
      CHECK_OK(dama_binary(&c, (dama_binop)op, a, b));
      double e[6];
      for (int i = 0; i < 6; i++) {
        e[i] = naive_bin((dama_binop)op, av[i], bv[i], isint);
        if (op < DAMA_EQ && dt == DAMA_U8) e[i] = fmod(e[i], 256); /* u8 wraps */
      }
      double tol = op == DAMA_DIV && isint ? 1e-6 : tol_of(dt);
      if (op == DAMA_POW && dt == DAMA_F16) tol = 1e-3;
      if (op == DAMA_POW && dt == DAMA_BF16) tol = 1e-2;
      CHECK_MSG(first_mismatch(c, e, tol) < 0, "%s on %s", dama_binop_name((dama_binop)op), dama_dtype_name(dt));
      if (op >= DAMA_EQ) CHECK(c->dtype == DAMA_U8);
      else if (op == DAMA_DIV && isint) CHECK(c->dtype == DAMA_F32);
      else CHECK(c->dtype == (int)dt);
      dama_tensor_release(c);
    }
    dama_tensor_release(a); dama_tensor_release(b);
  }
}

DAMA_TEST(int_arithmetic_wraps_like_torch) {
  double av[2] = {250, 3}, bv[2] = {10, 5};
  dama_tensor *a = mk(DAMA_U8, 1, S2, av), *b = mk(DAMA_U8, 1, S2, bv), *c = NULL, *d = NULL;
  CHECK_OK(dama_binary(&c, DAMA_ADD, a, b));
  double e[2] = {4, 8};
  CHECK_VALUES(c, e, 0);
  CHECK_OK(dama_binary(&d, DAMA_SUB, b, a)); /* 10 - 250 wraps to 16; 5 - 3 = 2 */
  double e2[2] = {16, 2};
  CHECK_VALUES(d, e2, 0);
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(c); dama_tensor_release(d);
}

DAMA_TEST(float_max_min_propagate_nan) {
  double av[3] = {1, NAN, 3}, bv[3] = {NAN, 2, 1};
  dama_tensor *a = mk(DAMA_F32, 1, S3, av), *b = mk(DAMA_F32, 1, S3, bv), *c = NULL, *d = NULL;
  CHECK_OK(dama_binary(&c, DAMA_MAXIMUM, a, b));
  CHECK_OK(dama_binary(&d, DAMA_MINIMUM, a, b));
  double e[3] = {NAN, NAN, 3}, f[3] = {NAN, NAN, 1};
  CHECK_VALUES(c, e, 0);
  CHECK_VALUES(d, f, 0);
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(c); dama_tensor_release(d);
}

DAMA_TEST(broadcasting) {
  double av[6] = {1, 2, 3, 4, 5, 6}, bv[3] = {10, 20, 30}, cv[2] = {100, 200};
  const int64_t S21[2] = {2, 1}, S13[2] = {1, 3};
  dama_tensor *a = mk(DAMA_F32, 2, S23, av), *row = mk(DAMA_F32, 1, S3, bv), *col = mk(DAMA_F64, 2, S21, cv);
  dama_tensor *r1 = NULL, *r2 = NULL, *r3 = NULL, *rowv = NULL;
  CHECK_OK(dama_binary(&r1, DAMA_ADD, a, row)); /* row-vector broadcast */
  double e1[6] = {11, 22, 33, 14, 25, 36};
  CHECK_VALUES(r1, e1, 0);
  CHECK_OK(dama_binary(&r2, DAMA_SUB, col, a)); /* column broadcast, f64 result */
  double e2[6] = {99, 98, 97, 196, 195, 194};
  CHECK(r2->dtype == DAMA_F64);
  CHECK_VALUES(r2, e2, 0);
  CHECK_OK(dama_view(&rowv, row, 2, S13)); /* [2,1] x [1,3] -> [2,3] outer sum */
  CHECK_OK(dama_binary(&r3, DAMA_MUL, col, rowv));
  double e3[6] = {1000, 2000, 3000, 2000, 4000, 6000};
  CHECK(shape_is(r3, 2, S23));
  CHECK_VALUES(r3, e3, 0);
  dama_tensor *x = NULL, *y = NULL, *z = NULL;
  x = mk(DAMA_F32, 1, S2, cv);
  y = mk(DAMA_F32, 1, S3, bv);
  CHECK_STATUS(dama_binary(&z, DAMA_ADD, x, y), DAMA_ERR_SHAPE);
  CHECK(z == NULL);
  CHECK_ERRMSG("add: shapes [2] and [3] cannot be broadcast");
  CHECK_STATUS(dama_binary_(x, DAMA_ADD, a), DAMA_ERR_SHAPE); /* in place cannot grow a */
  CHECK_ERRMSG("add_");
  CHECK_ERRMSG("[2, 3]");
  dama_tensor *objs[] = {a, row, col, r1, r2, r3, rowv, x, y};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(non_contiguous_inputs) {
  /* a: [3, 4] values i; at = a^T [4, 3]; sliced every 2nd column; expanded [1,3] -> [4,3] */
  double av[12], bv[3] = {1, 2, 3};
  for (int i = 0; i < 12; i++) av[i] = i;
  const int64_t S34[2] = {3, 4}, S43[2] = {4, 3}, S13[2] = {1, 3};
  dama_tensor *a = mk(DAMA_F32, 2, S34, av), *at_ = NULL, *b = mk(DAMA_F32, 2, S13, bv), *be = NULL, *c = NULL;
  CHECK_OK(dama_transpose(&at_, a, 0, 1));
  CHECK_OK(dama_expand(&be, b, 2, S43));
  CHECK_OK(dama_binary(&c, DAMA_MUL, at_, be));
  CHECK(dama_is_contiguous(c) && shape_is(c, 2, S43));
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) CHECK_CLOSE(at(c, i * 3 + j), av[j * 4 + i] * bv[j], 0);
  dama_tensor *sl = NULL, *d = NULL;
  CHECK_OK(dama_slice(&sl, a, 1, 0, 4, 2)); /* [3, 2]: columns 0, 2 */
  CHECK_OK(dama_binary_scalar(&d, DAMA_ADD, sl, 0.5, 0));
  double e[6] = {0.5, 2.5, 4.5, 6.5, 8.5, 10.5};
  CHECK_VALUES(d, e, 0);
  /* same on f64 and bf16 operands (conversion path with strides) */
  dama_tensor *a64 = NULL, *t64 = NULL, *r64 = NULL;
  CHECK_OK(dama_to_dtype(&a64, a, DAMA_BF16));
  CHECK_OK(dama_transpose(&t64, a64, 0, 1));
  CHECK_OK(dama_binary(&r64, DAMA_SUB, t64, be));
  CHECK(r64->dtype == DAMA_F32);
  for (int i = 0; i < 4; i++)
    for (int j = 0; j < 3; j++) CHECK_CLOSE(at(r64, i * 3 + j), av[j * 4 + i] - bv[j], 0);
  dama_tensor *objs[] = {a, at_, b, be, c, sl, d, a64, t64, r64};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(in_place_non_contiguous_and_aliasing) {
  double av[9];
  for (int i = 0; i < 9; i++) av[i] = i;
  const int64_t S33[2] = {3, 3};
  dama_tensor *a = mk(DAMA_F32, 2, S33, av), *at_ = NULL, *row = NULL;
  double rv[3] = {100, 200, 300};
  row = mk(DAMA_I32, 1, S3, rv);
  CHECK_OK(dama_transpose(&at_, a, 0, 1));
  CHECK_OK(dama_binary_(at_, DAMA_ADD, row)); /* at[i][j] += row[j]  ->  a[j][i] += row[j] */
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) CHECK_CLOSE(at(a, j * 3 + i), av[j * 3 + i] + rv[j], 0);
  /* a += a^T: the reader aliases the output in another layout and must be read before writing */
  dama_tensor *b = mk(DAMA_F64, 2, S33, av), *bt = NULL;
  CHECK_OK(dama_transpose(&bt, b, 0, 1));
  CHECK_OK(dama_binary_(b, DAMA_ADD, bt));
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) CHECK_CLOSE(at(b, i * 3 + j), av[i * 3 + j] + av[j * 3 + i], 0);
  /* in-place on an int tensor casts the float result back (truncation) */
  dama_tensor *ci = mk(DAMA_I32, 1, S3, rv);
  CHECK_OK(dama_binary_scalar_(ci, DAMA_DIV, 7));
  double e[3] = {14, 28, 42};
  CHECK_VALUES(ci, e, 0);
  CHECK_OK(dama_binary_scalar_(ci, DAMA_MUL, 2.5));
  double e2[3] = {35, 70, 105};
  CHECK_VALUES(ci, e2, 0);
  dama_tensor *objs[] = {a, at_, row, b, bt, ci};
  for (size_t i = 0; i < sizeof objs / sizeof objs[0]; i++) dama_tensor_release(objs[i]);
}

DAMA_TEST(scalar_ops_and_types) {
  double v[3] = {1, 2, 3};
  dama_tensor *i = mk(DAMA_I32, 1, S3, v), *r = NULL;
  CHECK_OK(dama_binary_scalar(&r, DAMA_MUL, i, 2, 0));
  CHECK(r->dtype == DAMA_I32);
  double e1[3] = {2, 4, 6};
  CHECK_VALUES(r, e1, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_binary_scalar(&r, DAMA_MUL, i, 0.5, 0));
  CHECK(r->dtype == DAMA_F32);
  double e2[3] = {0.5, 1, 1.5};
  CHECK_VALUES(r, e2, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_binary_scalar(&r, DAMA_SUB, i, 10, 1)); /* 10 - i */
  double e3[3] = {9, 8, 7};
  CHECK_VALUES(r, e3, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_binary_scalar(&r, DAMA_DIV, i, 2, 0));
  CHECK(r->dtype == DAMA_F32);
  double e4[3] = {0.5, 1, 1.5};
  CHECK_VALUES(r, e4, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_binary_scalar(&r, DAMA_POW, i, 2, 1)); /* 2^i */
  double e5[3] = {2, 4, 8};
  CHECK_VALUES(r, e5, 0);
  dama_tensor_release(r);
  CHECK_STATUS(dama_binary_scalar(&r, DAMA_POW, i, -1, 0), DAMA_ERR_ARG);
  CHECK_ERRMSG("negative integer powers");
  /* the scalar is not truncated to the tensor's dtype for comparisons */
  dama_tensor *u = mk(DAMA_U8, 1, S3, v);
  CHECK_OK(dama_binary_scalar(&r, DAMA_LT, u, 2.5, 0));
  double e6[3] = {1, 1, 0};
  CHECK_VALUES(r, e6, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_binary_scalar(&r, DAMA_EQ, u, 257, 0));
  double e7[3] = {0, 0, 0};
  CHECK_VALUES(r, e7, 0);
  dama_tensor_release(r);
  /* bf16 tensor * 0.1: the scalar is held in f32, the product rounded once to bf16 */
  double w[1] = {3};
  const int64_t S1[1] = {1};
  dama_tensor *h = mk(DAMA_BF16, 1, S1, w);
  CHECK_OK(dama_binary_scalar(&r, DAMA_MUL, h, 0.1, 0));
  CHECK(r->dtype == DAMA_BF16);
  CHECK_CLOSE(at(r, 0), dama_bf16_to_f32(dama_f32_to_bf16(3.0f * 0.1f)), 0);
  dama_tensor_release(r);
  dama_tensor_release(h); dama_tensor_release(i); dama_tensor_release(u);
}

static double naive_un(dama_unop op, double x) {
  switch (op) {
    case DAMA_NEG: return -x;
    case DAMA_EXP: return exp(x);
    case DAMA_LOG: return log(x);
    case DAMA_SQRT: return sqrt(x);
    case DAMA_ABS: return fabs(x);
    case DAMA_SIN: return sin(x);
    case DAMA_COS: return cos(x);
    case DAMA_TANH: return tanh(x);
    case DAMA_SIGMOID: return 1 / (1 + exp(-x));
    case DAMA_RELU: return x > 0 ? x : 0;
    case DAMA_RSQRT: return 1 / sqrt(x);
    case DAMA_SQUARE: return x * x;
    case DAMA_RECIPROCAL: return 1 / x;
    case DAMA_SIGN: return (x > 0) - (x < 0);
    case DAMA_FLOOR: return floor(x);
    case DAMA_CEIL: return ceil(x);
    case DAMA_ROUND: return nearbyint(x);
    case DAMA_ERF: return erf(x);
    case DAMA_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    default: return NAN;
  }
}

DAMA_TEST(every_unop_float_dtypes) {
  double v[6] = {0.25, 1.5, 2.5, 3.75, 0.5, 4.0}; /* positive so log/sqrt are defined */
  double vn[6] = {-1.5, -0.5, 0.5, 2.5, -2.5, 0}; /* for the sign-sensitive ops */
  dama_dtype fl[4] = {DAMA_F32, DAMA_F64, DAMA_BF16, DAMA_F16};
  for (int t = 0; t < 4; t++) {
    for (int op = 0; op < DAMA_NUM_UNOPS; op++) {
      int pos_only = op == DAMA_LOG || op == DAMA_SQRT || op == DAMA_RSQRT || op == DAMA_RECIPROCAL;
      const double *src = pos_only ? v : vn;
      dama_tensor *a = mk(fl[t], 2, S23, src), *r = NULL;
      CHECK_OK(dama_unary(&r, (dama_unop)op, a));
      CHECK(r->dtype == (int)fl[t]);
      double e[6];
      for (int i = 0; i < 6; i++) e[i] = naive_un((dama_unop)op, at(a, i)); /* from the stored (rounded) input */
      double tol = fl[t] == DAMA_F64 ? 1e-12 : fl[t] == DAMA_F32 ? 1e-6 : fl[t] == DAMA_F16 ? 1e-3 : 8e-3;
      CHECK_MSG(first_mismatch(r, e, tol) < 0, "%s on %s", dama_unop_name((dama_unop)op), dama_dtype_name(fl[t]));
      /* in place gives the same */
      CHECK_OK(dama_unary_(a, (dama_unop)op));
      CHECK_MSG(first_mismatch(a, e, tol) < 0, "%s_ on %s", dama_unop_name((dama_unop)op), dama_dtype_name(fl[t]));
      dama_tensor_release(a); dama_tensor_release(r);
    }
  }
}

DAMA_TEST(unary_on_ints) {
  double v[3] = {-2, 0, 3};
  dama_tensor *a = mk(DAMA_I32, 1, S3, v), *r = NULL;
  CHECK_OK(dama_unary(&r, DAMA_EXP, a)); /* float math promotes to f32 */
  CHECK(r->dtype == DAMA_F32);
  double e[3] = {exp(-2.0), 1, exp(3.0)};
  CHECK_VALUES(r, e, 1e-6);
  dama_tensor_release(r);
  CHECK_OK(dama_unary(&r, DAMA_NEG, a)); /* int-preserving ops stay int */
  CHECK(r->dtype == DAMA_I32);
  double e2[3] = {2, 0, -3};
  CHECK_VALUES(r, e2, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_unary(&r, DAMA_ABS, a));
  double e3[3] = {2, 0, 3};
  CHECK_VALUES(r, e3, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_unary(&r, DAMA_SIGN, a));
  double e4[3] = {-1, 0, 1};
  CHECK_VALUES(r, e4, 0);
  dama_tensor_release(r);
  double uv[3] = {1, 0, 255};
  dama_tensor *u = mk(DAMA_U8, 1, S3, uv);
  CHECK_OK(dama_unary(&r, DAMA_NEG, u)); /* wraps like torch */
  CHECK(r->dtype == DAMA_U8);
  double e5[3] = {255, 0, 1};
  CHECK_VALUES(r, e5, 0);
  dama_tensor_release(r);
  CHECK_STATUS(dama_unary_(u, DAMA_SQRT), DAMA_OK); /* in place on ints: computed in f32, truncated */
  double e6[3] = {1, 0, 15};
  CHECK_VALUES(u, e6, 0);
  dama_tensor_release(a); dama_tensor_release(u);
}

DAMA_TEST(unary_special_values) {
  double v[6] = {0.5, 1.5, 2.5, -0.5, NAN, -INFINITY};
  dama_tensor *a = mk(DAMA_F32, 2, S23, v), *r = NULL;
  CHECK_OK(dama_unary(&r, DAMA_ROUND, a)); /* half to even */
  double e[6] = {0, 2, 2, -0.0, NAN, -INFINITY};
  CHECK_VALUES(r, e, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_unary(&r, DAMA_RELU, a)); /* NaN passes through relu */
  double e2[6] = {0.5, 1.5, 2.5, 0, NAN, 0};
  CHECK_VALUES(r, e2, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_unary(&r, DAMA_SIGN, a));
  double e3[6] = {1, 1, 1, -1, NAN, -1};
  CHECK_VALUES(r, e3, 0);
  dama_tensor_release(r);
  CHECK_STATUS(dama_unary(&r, (dama_unop)99, a), DAMA_ERR_ARG);
  CHECK_ERRMSG("unknown op 99");
  dama_tensor_release(a);
}

DAMA_TEST(clamp_all_cases) {
  double v[6] = {-3, -0.5, 0.25, 0.75, NAN, 9};
  dama_tensor *a = mk(DAMA_F32, 2, S23, v), *r = NULL;
  CHECK_OK(dama_clamp(&r, a, 0, 1));
  double e[6] = {0, 0, 0.25, 0.75, NAN, 1};
  CHECK_VALUES(r, e, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_clamp(&r, a, -INFINITY, 0.5)); /* one-sided */
  double e2[6] = {-3, -0.5, 0.25, 0.5, NAN, 0.5};
  CHECK_VALUES(r, e2, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_clamp(&r, a, 2, 1)); /* lo > hi: everything becomes hi, like torch */
  double e3[6] = {1, 1, 1, 1, NAN, 1};
  CHECK_VALUES(r, e3, 0);
  dama_tensor_release(r);
  double iv[6] = {-3, -1, 0, 1, 2, 9};
  dama_tensor *b = mk(DAMA_I64, 2, S23, iv), *bt = NULL;
  CHECK_OK(dama_clamp(&r, b, -0.5, 1.5)); /* int tensors: bounds ceil/floor to [0, 1] */
  CHECK(r->dtype == DAMA_I64);
  double e4[6] = {0, 0, 0, 1, 1, 1};
  CHECK_VALUES(r, e4, 0);
  dama_tensor_release(r);
  CHECK_OK(dama_transpose(&bt, b, 0, 1));
  CHECK_OK(dama_clamp_(bt, -1, 2));
  double e5[6] = {-1, -1, 0, 1, 2, 2};
  CHECK_VALUES(b, e5, 0);
  CHECK_STATUS(dama_clamp(&r, a, NAN, 1), DAMA_ERR_ARG);
  CHECK_ERRMSG("clamp");
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(bt);
}

DAMA_TEST(where_broadcast_and_promote) {
  double cv[3] = {1, 0, NAN}, av[6] = {1, 2, 3, 4, 5, 6}, bv[1] = {-1};
  const int64_t S1[1] = {1};
  dama_tensor *c = mk(DAMA_F32, 1, S3, cv), *a = mk(DAMA_I32, 2, S23, av), *b = mk(DAMA_F64, 1, S1, bv), *r = NULL;
  CHECK_OK(dama_where(&r, c, a, b));
  CHECK(r->dtype == DAMA_F64 && shape_is(r, 2, S23));
  double e[6] = {1, -1, 3, 4, -1, 6}; /* NaN counts as true */
  CHECK_VALUES(r, e, 0);
  dama_tensor_release(r);
  dama_tensor *c2 = mk(DAMA_U8, 1, S2, cv);
  CHECK_STATUS(dama_where(&r, c2, a, b), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("where");
  CHECK_ERRMSG("[2]");
  CHECK_ERRMSG("[2, 3]");
  dama_tensor_release(c); dama_tensor_release(c2); dama_tensor_release(a); dama_tensor_release(b);
}

DAMA_TEST(masked_fill_and_fill) {
  double av[6] = {1, 2, 3, 4, 5, 6}, mv[3] = {0, 1, 0};
  dama_tensor *a = mk(DAMA_BF16, 2, S23, av), *m = mk(DAMA_U8, 1, S3, mv), *at_ = NULL;
  CHECK_OK(dama_masked_fill_(a, m, -7));
  double e[6] = {1, -7, 3, 4, -7, 6};
  CHECK_VALUES(a, e, 0);
  /* non-contiguous target, float mask */
  double m2v[2] = {0.5, 0};
  dama_tensor *m2 = mk(DAMA_F32, 1, S2, m2v);
  CHECK_OK(dama_transpose(&at_, a, 0, 1)); /* [3, 2]; mask [2] broadcasts over rows -> column 0 of at = row 0 of a */
  CHECK_OK(dama_masked_fill_(at_, m2, 0));
  double e2[6] = {0, 0, 0, 4, -7, 6};
  CHECK_VALUES(a, e2, 0);
  CHECK_STATUS(dama_masked_fill_(a, m2, 0), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("masked_fill_: mask of shape [2] cannot be broadcast to the in-place shape [2, 3]");
  CHECK_OK(dama_fill_(at_, 2.5));
  double e3[6] = {2.5, 2.5, 2.5, 2.5, 2.5, 2.5};
  CHECK_VALUES(a, e3, 0);
  dama_tensor *i = mk(DAMA_I32, 2, S23, av), *col = NULL;
  CHECK_OK(dama_select(&col, i, 1, 1));
  CHECK_OK(dama_fill_(col, 9.7)); /* truncates to 9 */
  double e4[6] = {1, 9, 3, 4, 9, 6};
  CHECK_VALUES(i, e4, 0);
  dama_tensor *objs[] = {a, m, at_, m2, i, col};
  for (size_t k = 0; k < sizeof objs / sizeof objs[0]; k++) dama_tensor_release(objs[k]);
}

DAMA_TEST(count_nonfinite_all_dtypes) {
  double v[6] = {1, NAN, INFINITY, -INFINITY, 0, 5};
  dama_dtype fl[4] = {DAMA_F32, DAMA_F64, DAMA_BF16, DAMA_F16};
  for (int t = 0; t < 4; t++) {
    dama_tensor *a = mk(fl[t], 2, S23, v), *at_ = NULL;
    int64_t n = -1;
    CHECK_OK(dama_count_nonfinite(a, &n));
    CHECK_MSG(n == 3, "%s: %lld", dama_dtype_name(fl[t]), (long long)n);
    CHECK_OK(dama_transpose(&at_, a, 0, 1));
    CHECK_OK(dama_count_nonfinite(at_, &n));
    CHECK(n == 3);
    dama_tensor_release(a); dama_tensor_release(at_);
  }
  double w[3] = {1, 2, 3};
  dama_tensor *i = mk(DAMA_I64, 1, S3, w);
  int64_t n = -1;
  CHECK_OK(dama_count_nonfinite(i, &n));
  CHECK(n == 0);
  dama_tensor_release(i);
  /* large: parallel chunks */
  int64_t big = 3000000;
  dama_tensor *z = NULL;
  CHECK_OK(dama_zeros(&z, 1, &big, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  float *p = dama_data_ptr(z);
  p[0] = NAN; p[1234567] = INFINITY; p[big - 1] = -INFINITY;
  CHECK_OK(dama_count_nonfinite(z, &n));
  CHECK(n == 3);
  dama_tensor_release(z);
}

DAMA_TEST(large_parallel_paths_match_naive) {
  const int64_t N = 1 << 20, C = 96, R = N / C;
  double *av = malloc(sizeof(double) * (size_t)(R * C)), bv[96];
  fill_rand(av, R * C, 1, -2, 2);
  fill_rand(bv, C, 2, -1, 1);
  const int64_t SA[2] = {R, C}, SB[1] = {C};
  dama_tensor *a = mk(DAMA_F32, 2, SA, av), *b = mk(DAMA_F32, 1, SB, bv), *r = NULL, *r2 = NULL, *r3 = NULL;
  CHECK_OK(dama_binary(&r, DAMA_MUL, a, b)); /* row broadcast */
  CHECK_OK(dama_binary(&r2, DAMA_ADD, a, a)); /* contiguous same shape */
  CHECK_OK(dama_binary_scalar(&r3, DAMA_SUB, a, 0.25, 0)); /* scalar */
  const float *pa = dama_data_ptr(a), *p1 = dama_data_ptr(r), *p2 = dama_data_ptr(r2), *p3 = dama_data_ptr(r3);
  const float *pb = dama_data_ptr(b);
  int bad = 0;
  for (int64_t i = 0; i < R * C; i++) {
    bad += p1[i] != pa[i] * pb[i % C];
    bad += p2[i] != pa[i] + pa[i];
    bad += p3[i] != pa[i] - 0.25f;
  }
  CHECK(bad == 0);
  free(av);
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(r); dama_tensor_release(r2); dama_tensor_release(r3);
}

DAMA_TEST(interrupt_stops_long_ops) {
  int64_t n = 4 << 20;
  dama_tensor *a = NULL, *r = NULL;
  CHECK_OK(dama_zeros(&a, 1, &n, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  dama_interrupt_request();
  dama_status s = dama_binary(&r, DAMA_ADD, a, a);
  dama_interrupt_clear();
  CHECK(s == DAMA_ERR_INTERRUPTED && r == NULL);
  CHECK_ERRMSG("add: interrupted");
  dama_tensor_release(a);
}

DAMA_TEST(bad_arguments) {
  double v[3] = {1, 2, 3};
  dama_tensor *a = mk(DAMA_F32, 1, S3, v), *r = NULL;
  CHECK_STATUS(dama_binary(&r, DAMA_ADD, a, NULL), DAMA_ERR_ARG);
  CHECK_ERRMSG("add: tensor 'b' is NULL");
  CHECK_STATUS(dama_binary(&r, (dama_binop)42, a, a), DAMA_ERR_ARG);
  CHECK_STATUS(dama_unary(&r, DAMA_EXP, NULL), DAMA_ERR_ARG);
  CHECK_STATUS(dama_fill_(NULL, 1), DAMA_ERR_ARG);
  int64_t cnt;
  CHECK_STATUS(dama_count_nonfinite(a, NULL), DAMA_ERR_ARG);
  (void)cnt;
  CHECK(strcmp(dama_binop_name(DAMA_GE), "ge") == 0 && strcmp(dama_unop_name(DAMA_GELU), "gelu") == 0);
  dama_tensor_release(a);
}

DAMA_TEST(zero_size_and_0d) {
  int64_t z[2] = {0, 3};
  dama_tensor *a = NULL, *r = NULL, *s = NULL;
  CHECK_OK(dama_zeros(&a, 2, z, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_binary_scalar(&r, DAMA_ADD, a, 1, 0));
  CHECK(shape_is(r, 2, z));
  double v = 2;
  dama_tensor *sc = mk(DAMA_F64, 0, NULL, &v);
  CHECK_OK(dama_unary(&s, DAMA_SQUARE, sc));
  CHECK(s->ndim == 0);
  CHECK_CLOSE(at(s, 0), 4, 0);
  dama_tensor_release(a); dama_tensor_release(r); dama_tensor_release(s); dama_tensor_release(sc);
}

DAMA_TEST(tiled_transposed_operands_3d) {
  /* [3, 70, 45] + transpose of [3, 45, 70]: the tiled path with partial tiles and an outer dim */
  const int64_t sa[3] = {3, 70, 45}, sb[3] = {3, 45, 70};
  double *av = malloc(sizeof(double) * 9450), *bv = malloc(sizeof(double) * 9450);
  fill_rand(av, 9450, 11, -1, 1);
  fill_rand(bv, 9450, 12, -1, 1);
  dama_tensor *a = mk(DAMA_F64, 3, sa, av), *b = mk(DAMA_F32, 3, sb, bv), *bt = NULL, *r = NULL;
  CHECK_OK(dama_transpose(&bt, b, 1, 2));
  CHECK_OK(dama_binary(&r, DAMA_SUB, a, bt));
  int bad = 0;
  for (int z = 0; z < 3; z++)
    for (int i = 0; i < 70; i++)
      for (int j = 0; j < 45; j++)
        bad += at(r, (z * 70 + i) * 45 + j) != av[(z * 70 + i) * 45 + j] - (double)(float)bv[(z * 45 + j) * 70 + i];
  CHECK(bad == 0);
  /* in place into the transposed view: b^T *= a */
  CHECK_OK(dama_binary_(bt, DAMA_MUL, a));
  for (int z = 0; z < 3; z++)
    for (int i = 0; i < 70; i++)
      for (int j = 0; j < 45; j++)
        bad += at(b, (z * 45 + j) * 70 + i) != (double)(float)((double)(float)bv[(z * 45 + j) * 70 + i] * av[(z * 70 + i) * 45 + j]);
  CHECK(bad == 0);
  free(av); free(bv);
  dama_tensor_release(a); dama_tensor_release(b); dama_tensor_release(bt); dama_tensor_release(r);
}

DAMA_TEST(in_place_into_expanded_view_is_refused) {
  double v[3] = {1, 2, 3};
  const int64_t S43[2] = {4, 3};
  dama_tensor *a = mk(DAMA_F32, 1, S3, v), *e = NULL;
  CHECK_OK(dama_expand(&e, a, 2, S43));
  CHECK_STATUS(dama_binary_scalar_(e, DAMA_ADD, 1), DAMA_ERR_ARG);
  CHECK_ERRMSG("add_: the in-place target of shape [4, 3] is expanded (stride 0 in dim 0)");
  CHECK_STATUS(dama_unary_(e, DAMA_NEG), DAMA_ERR_ARG);
  CHECK_STATUS(dama_binary_(e, DAMA_MUL, a), DAMA_ERR_ARG);
  CHECK_STATUS(dama_clamp_(e, 0, 1), DAMA_ERR_ARG);
  double e0[3] = {1, 2, 3};
  CHECK_VALUES(a, e0, 0);
  CHECK_OK(dama_fill_(e, 5)); /* every element gets the same value: allowed */
  double e1[3] = {5, 5, 5};
  CHECK_VALUES(a, e1, 0);
  dama_tensor_release(a); dama_tensor_release(e);
}

DAMA_TEST(f16_conversions_match_the_scalar_helpers) {
  /* widening: every f16 bit pattern through the op path (f16 + f32 zero -> f32) vs dama_f16_to_f32 */
  int64_t n = 65536;
  uint16_t *bits = malloc(sizeof(uint16_t) * 65536);
  for (int64_t i = 0; i < n; i++) bits[i] = (uint16_t)i;
  dama_tensor *h = NULL, *z = NULL, *w = NULL;
  CHECK_OK(dama_from_buffer(&h, 1, &n, DAMA_F16, bits, DAMA_U16, (dama_device){DAMA_CPU, 0}));
  memcpy(dama_data_ptr(h), bits, sizeof(uint16_t) * 65536); /* raw bits, not values */
  CHECK_OK(dama_zeros(&z, 1, &n, DAMA_F32, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_binary(&w, DAMA_ADD, h, z));
  const float *pw = dama_data_ptr(w);
  int bad = 0;
  for (int64_t i = 0; i < n; i++) {
    float e = dama_f16_to_f32(bits[i]);
    if (isnan(e) ? !isnan(pw[i]) : pw[i] != e) bad++;
  }
  CHECK_MSG(bad == 0, "%d f16 values widen differently", bad);
  /* narrowing: random, tiny, huge and halfway floats through the op path vs dama_f32_to_f16 */
  int64_t m = 200000;
  double *v = malloc(sizeof(double) * (size_t)m);
  fill_rand(v, m, 3, -1, 1);
  for (int64_t i = 0; i < m; i++) v[i] = v[i] * pow(2.0, (double)(i % 48) - 30); /* 2^-30 .. 2^17 */
  dama_tensor *f = mk(DAMA_F32, 1, &m, v), *o = NULL;
  CHECK_OK(dama_zeros(&o, 1, &m, DAMA_F16, (dama_device){DAMA_CPU, 0}));
  CHECK_OK(dama_binary_(o, DAMA_ADD, f)); /* computed in f32, stored as f16 */
  const float *pf = dama_data_ptr(f);
  const uint16_t *po = dama_data_ptr(o);
  bad = 0;
  for (int64_t i = 0; i < m; i++) bad += po[i] != dama_f32_to_f16(pf[i]);
  CHECK_MSG(bad == 0, "%d floats narrow differently", bad);
  free(bits); free(v);
  dama_tensor_release(h); dama_tensor_release(z); dama_tensor_release(w); dama_tensor_release(f); dama_tensor_release(o);
}

DAMA_TEST(copy_kernel_matches_copy_for_all_dtype_pairs) {
  /* dama_copy_kernel (ops_internal.h) against the reference dama_copy_: every dtype pair, a transposed
   * source, an expanded source and a strided destination */
  const int64_t S45[2] = {4, 5}, S54[2] = {5, 4}, S15[2] = {1, 5};
  double v[20];
  for (int i = 0; i < 20; i++) v[i] = (double)(i * 7 % 23) - 6.5 + (i % 3) * 0.25; /* negatives, fractions */
  for (int s = 0; s < 8; s++)
    for (int d = 0; d < 8; d++) {
      dama_tensor *src = mk(ALL_DTYPES[s], 2, S54, v), *srct = NULL, *rowe = NULL;
      dama_tensor *d1 = NULL, *d2 = NULL, *big = NULL, *dv = NULL;
      CHECK_OK(dama_transpose(&srct, src, 0, 1)); /* [4, 5] */
      CHECK_OK(dama_zeros(&d1, 2, S45, ALL_DTYPES[d], (dama_device){DAMA_CPU, 0}));
      const int64_t S810[2] = {8, 10};
      CHECK_OK(dama_zeros(&big, 2, S810, ALL_DTYPES[d], (dama_device){DAMA_CPU, 0}));
      CHECK_OK(dama_slice(&dv, big, 0, 0, 8, 2)); /* [4, 10] rows 0,2,4,6 */
      dama_tensor *dv2 = NULL;
      CHECK_OK(dama_slice(&dv2, dv, 1, 1, 10, 2)); /* [4, 5] columns 1,3,5,7,9: strides (20, 2) */
      CHECK_OK(dama_copy_(d1, srct));
      CHECK_OK(dama_copy_kernel(dv2, srct));
      CHECK_OK(dama_clone(&d2, dv2));
      for (int i = 0; i < 20; i++)
        CHECK_MSG(at(d1, i) == at(d2, i) || (isnan(at(d1, i)) && isnan(at(d2, i))), "%s -> %s element %d: %g vs %g",
                  dama_dtype_name(ALL_DTYPES[s]), dama_dtype_name(ALL_DTYPES[d]), i, at(d1, i), at(d2, i));
      /* expanded source row */
      dama_tensor *r5 = mk(ALL_DTYPES[s], 2, S15, v);
      CHECK_OK(dama_expand(&rowe, r5, 2, S45));
      CHECK_OK(dama_copy_kernel(d1, rowe));
      for (int i = 0; i < 20; i++) CHECK(at(d1, i) == at(d1, i % 5));
      dama_tensor *objs[] = {src, srct, rowe, d1, d2, big, dv, dv2, r5};
      for (size_t k = 0; k < sizeof objs / sizeof objs[0]; k++) dama_tensor_release(objs[k]);
    }
  dama_tensor *a = mk(DAMA_F32, 2, S45, v), *b = mk(DAMA_F32, 2, S54, v);
  CHECK_STATUS(dama_copy_kernel(a, b), DAMA_ERR_SHAPE);
  CHECK_ERRMSG("copy: source of shape [5, 4] cannot be broadcast to the in-place shape [4, 5]");
  dama_tensor_release(a); dama_tensor_release(b);
}
