/* dama_math.h — element-wise math shared by the CPU kernels (C11) and the CUDA kernels (cuda/kernels/ headers,
 * compiled by nvcc and, for the tests, by the host C++ compiler against tests/cuda_interp).
 *
 * Plain static inline functions on scalars, no state, no errors: each one is the single definition of a formula,
 * so a GPU kernel computes what its CPU twin computes. DAMA_HD marks them __host__ __device__ under nvcc.
 *
 * Bit-identical results need the same floating-point contraction on both sides. The CPU files set it with
 * `#pragma GCC optimize(...)` (nn_act.c, nn_attention.c: fp-contract=fast; nn_optim.c: off, as -std=c11), and that
 * pragma applies only to functions defined after it, so a CPU file includes this header AFTER its pragma (an inline
 * function whose FP options differ from its caller's is not inlined by GCC). nvcc contracts a*b+c into FMA by
 * default, so on a GPU the results agree to rounding, not bit for bit.
 *
 * Runtime folders: core/ (this header includes only libc headers), usable from cpu/ and ../cuda/. */
#ifndef DAMA_MATH_H
#define DAMA_MATH_H

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define DAMA_HD static __host__ __device__ __forceinline__
#else
#define DAMA_HD static inline
#endif

/* The float whose bits are u. */
DAMA_HD float dama_u32_as_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  union { uint32_t u; float f; } s;
  s.u = u;
  return s.f;
#endif
}

/* e^x for x in [-87, 88] (clamped outside): 2^k * e^r with |r| <= ln2/2 and a degree-7 Taylor polynomial
 * (~2 ulp; vectorisable, unlike libm's expf without -ffast-math). NaN in, NaN out, without a shift of a
 * negative value or an out-of-range float-to-int conversion (UBSan). */
DAMA_HD float dama_vexpf(float x) {
  const int nan = x != x;
  float xc = nan ? 0.0f : x;
  xc = xc < -87.0f ? -87.0f : (xc > 88.0f ? 88.0f : xc);
  float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest, vectorisable */
  float r = xc - k * 0.693145751953125f - k * 1.428606765330187e-06f;
  float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
  float s = dama_u32_as_f32((uint32_t)((int32_t)k + 127) << 23);
  return nan ? x : p * s;
}

/* erf(x) by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), given e = exp(-x^2). */
DAMA_HD float dama_verff_e(float x, float e) {
  float a = fabsf(x);
  float t = 1.0f / (1.0f + 0.3275911f * a);
  float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
  return copysignf(1.0f - poly * e, x);
}
DAMA_HD float dama_verff(float x) { return dama_verff_e(x, dama_vexpf(-x * x)); }

/* GELU, the exact (erf) form as torch.nn.GELU(): x * Phi(x). */
DAMA_HD float dama_gelu(float x) { return 0.5f * x * (1.0f + dama_verff(x * 0.70710678118654752f)); }
/* d GELU / dx = Phi(x) + x * phi(x); exp(-x^2/2) is shared by erf and the normal pdf. */
DAMA_HD float dama_gelu_grad(float x) {
  float e = dama_vexpf(-0.5f * x * x);
  float cdf = 0.5f * (1.0f + dama_verff_e(x * 0.70710678118654752f, e));
  float pdf = 0.39894228040143268f * e;
  return cdf + x * pdf;
}

/* AdamW (torch.optim.AdamW, decoupled weight decay, bias correction, eps outside the square root).
 * The per-step scalars are computed once on the host, in double as PyTorch does: */
typedef struct dama_adamw_coef {
  float step_size; /* lr / (1 - beta1^step) */
  float bc2_sqrt;  /* sqrt(1 - beta2^step) */
  float decay;     /* 1 - lr * weight_decay */
} dama_adamw_coef;

static inline dama_adamw_coef dama_adamw_coeffs(float lr, float beta1, float beta2, float weight_decay, int64_t step) {
  const double bc1 = 1.0 - pow((double)beta1, (double)step), bc2 = 1.0 - pow((double)beta2, (double)step);
  dama_adamw_coef k;
  k.step_size = (float)((double)lr / bc1);
  k.bc2_sqrt = (float)sqrt(bc2);
  k.decay = 1.0f - lr * weight_decay;
  return k;
}

/* One element: m, v updated in place, then p. The order of the IEEE operations is the one nn_optim.c's AVX
 * body uses too. */
DAMA_HD void dama_adamw_elem(float *p, float *m, float *v, float g, float b1, float b2, float eps, dama_adamw_coef k) {
  float mi = b1 * *m + (1.0f - b1) * g;
  float vi = b2 * *v + (1.0f - b2) * g * g;
  *m = mi;
  *v = vi;
  *p = *p * k.decay - k.step_size * mi / (sqrtf(vi) / k.bc2_sqrt + eps);
}

/* The EMA update of a teacher / momentum encoder: ema = momentum * ema + (1 - momentum) * p (as a, b). */
DAMA_HD float dama_ema_elem(float ema, float p, float a, float b) { return a * ema + b * p; }

/* ==== element-wise tensor ops (cpu/ops_elementwise.c and cuda/kernels/tensor_elementwise.cuh) ====
 * The per-element expressions of the binary, unary and clamp ops in their three compute kinds (f32 for f32/bf16/f16,
 * f64, i64 for the integer dtypes), and the dtype conversions of the CPU's loads and stores (cpu/ops_common.c).
 * `op` is a dama_binop / dama_unop value (api/ops.h; ops_elementwise.c checks the numbering with static asserts);
 * every caller passes a constant, so the switch folds away (DAMA_HD_EW forces the inlining on the host too, where
 * GCC would otherwise weigh the whole switch). None of these expressions has an a*b+c that could be contracted. */
#if defined(__CUDACC__)
#define DAMA_HD_EW DAMA_HD
#elif defined(__GNUC__)
#define DAMA_HD_EW static inline __attribute__((always_inline))
#else
#define DAMA_HD_EW static inline
#endif

enum {
  DAMA_EW_ADD = 0, DAMA_EW_SUB = 1, DAMA_EW_MUL = 2, DAMA_EW_DIV = 3, DAMA_EW_POW = 4, DAMA_EW_MAXIMUM = 5,
  DAMA_EW_MINIMUM = 6, DAMA_EW_EQ = 7, DAMA_EW_NE = 8, DAMA_EW_LT = 9, DAMA_EW_LE = 10, DAMA_EW_GT = 11,
  DAMA_EW_GE = 12, DAMA_EW_NUM_BINOPS = 13
};
enum {
  DAMA_EW_NEG = 0, DAMA_EW_EXP = 1, DAMA_EW_LOG = 2, DAMA_EW_SQRT = 3, DAMA_EW_ABS = 4, DAMA_EW_SIN = 5,
  DAMA_EW_COS = 6, DAMA_EW_TANH = 7, DAMA_EW_SIGMOID = 8, DAMA_EW_RELU = 9, DAMA_EW_RSQRT = 10, DAMA_EW_SQUARE = 11,
  DAMA_EW_RECIPROCAL = 12, DAMA_EW_SIGN = 13, DAMA_EW_FLOOR = 14, DAMA_EW_CEIL = 15, DAMA_EW_ROUND = 16,
  DAMA_EW_ERF = 17, DAMA_EW_GELU = 18, DAMA_EW_NUM_UNOPS = 19
};

/* NaN-propagating maximum/minimum like torch.maximum; sign(-0) = +0, sign(NaN) = NaN. */
#define DAMA_EW_FMAX(x, y) ((x) != (x) ? (x) : (y) != (y) ? (y) : (x) > (y) ? (x) : (y))
#define DAMA_EW_FMIN(x, y) ((x) != (x) ? (x) : (y) != (y) ? (y) : (x) < (y) ? (x) : (y))
#define DAMA_EW_SIGNF(x) ((x) > 0 ? 1 : (x) < 0 ? -1 : (x) == (x) ? 0 : (x))

DAMA_HD_EW float dama_ew_binop_f32(int op, float x, float y) {
  switch (op) {
    case DAMA_EW_ADD: return x + y;
    case DAMA_EW_SUB: return x - y;
    case DAMA_EW_MUL: return x * y;
    case DAMA_EW_DIV: return x / y;
    case DAMA_EW_POW: return powf(x, y);
    case DAMA_EW_MAXIMUM: return DAMA_EW_FMAX(x, y);
    case DAMA_EW_MINIMUM: return DAMA_EW_FMIN(x, y);
    case DAMA_EW_EQ: return (float)(x == y);
    case DAMA_EW_NE: return (float)(x != y);
    case DAMA_EW_LT: return (float)(x < y);
    case DAMA_EW_LE: return (float)(x <= y);
    case DAMA_EW_GT: return (float)(x > y);
    default: return (float)(x >= y);
  }
}
DAMA_HD_EW double dama_ew_binop_f64(int op, double x, double y) {
  switch (op) {
    case DAMA_EW_ADD: return x + y;
    case DAMA_EW_SUB: return x - y;
    case DAMA_EW_MUL: return x * y;
    case DAMA_EW_DIV: return x / y;
    case DAMA_EW_POW: return pow(x, y);
    case DAMA_EW_MAXIMUM: return DAMA_EW_FMAX(x, y);
    case DAMA_EW_MINIMUM: return DAMA_EW_FMIN(x, y);
    case DAMA_EW_EQ: return (double)(x == y);
    case DAMA_EW_NE: return (double)(x != y);
    case DAMA_EW_LT: return (double)(x < y);
    case DAMA_EW_LE: return (double)(x <= y);
    case DAMA_EW_GT: return (double)(x > y);
    default: return (double)(x >= y);
  }
}

/* Integers wrap (two's complement) like torch: the arithmetic is done in uint64. A negative power is 0 except for
 * the bases 1 and -1 (the tensor ops refuse negative integer exponents before computing one); division is never
 * computed in the i64 kind (div promotes to f32) and is kept for completeness. */
DAMA_HD_EW int64_t dama_ew_ipow(int64_t x, int64_t y) {
  if (y < 0) return x == 1 ? 1 : x == -1 ? ((y & 1) ? -1 : 1) : 0;
  uint64_t r = 1, b = (uint64_t)x;
  while (y) { if (y & 1) r *= b; b *= b; y >>= 1; }
  return (int64_t)r;
}
DAMA_HD_EW int64_t dama_ew_idiv(int64_t x, int64_t y) {
  return y == 0 ? 0 : (y == -1 ? (int64_t)(0 - (uint64_t)x) : x / y);
}
DAMA_HD_EW int64_t dama_ew_binop_i64(int op, int64_t x, int64_t y) {
  switch (op) {
    case DAMA_EW_ADD: return (int64_t)((uint64_t)x + (uint64_t)y);
    case DAMA_EW_SUB: return (int64_t)((uint64_t)x - (uint64_t)y);
    case DAMA_EW_MUL: return (int64_t)((uint64_t)x * (uint64_t)y);
    case DAMA_EW_DIV: return dama_ew_idiv(x, y);
    case DAMA_EW_POW: return dama_ew_ipow(x, y);
    case DAMA_EW_MAXIMUM: return x > y ? x : y;
    case DAMA_EW_MINIMUM: return x < y ? x : y;
    case DAMA_EW_EQ: return x == y;
    case DAMA_EW_NE: return x != y;
    case DAMA_EW_LT: return x < y;
    case DAMA_EW_LE: return x <= y;
    case DAMA_EW_GT: return x > y;
    default: return x >= y;
  }
}

DAMA_HD_EW float dama_ew_unop_f32(int op, float x) {
  switch (op) {
    case DAMA_EW_NEG: return -x;
    case DAMA_EW_EXP: return expf(x);
    case DAMA_EW_LOG: return logf(x);
    case DAMA_EW_SQRT: return sqrtf(x);
    case DAMA_EW_ABS: return fabsf(x);
    case DAMA_EW_SIN: return sinf(x);
    case DAMA_EW_COS: return cosf(x);
    case DAMA_EW_TANH: return tanhf(x);
    case DAMA_EW_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case DAMA_EW_RELU: return x < 0 ? 0.0f : x;
    case DAMA_EW_RSQRT: return 1.0f / sqrtf(x);
    case DAMA_EW_SQUARE: return x * x;
    case DAMA_EW_RECIPROCAL: return 1.0f / x;
    case DAMA_EW_SIGN: return (float)DAMA_EW_SIGNF(x);
    case DAMA_EW_FLOOR: return floorf(x);
    case DAMA_EW_CEIL: return ceilf(x);
    case DAMA_EW_ROUND: return nearbyintf(x);
    case DAMA_EW_ERF: return erff(x);
    default: return 0.5f * x * (1.0f + erff(x * (float)0.70710678118654752440)); /* GELU, erf form */
  }
}
DAMA_HD_EW double dama_ew_unop_f64(int op, double x) {
  switch (op) {
    case DAMA_EW_NEG: return -x;
    case DAMA_EW_EXP: return exp(x);
    case DAMA_EW_LOG: return log(x);
    case DAMA_EW_SQRT: return sqrt(x);
    case DAMA_EW_ABS: return fabs(x);
    case DAMA_EW_SIN: return sin(x);
    case DAMA_EW_COS: return cos(x);
    case DAMA_EW_TANH: return tanh(x);
    case DAMA_EW_SIGMOID: return 1.0 / (1.0 + exp(-x));
    case DAMA_EW_RELU: return x < 0 ? 0.0 : x;
    case DAMA_EW_RSQRT: return 1.0 / sqrt(x);
    case DAMA_EW_SQUARE: return x * x;
    case DAMA_EW_RECIPROCAL: return 1.0 / x;
    case DAMA_EW_SIGN: return (double)DAMA_EW_SIGNF(x);
    case DAMA_EW_FLOOR: return floor(x);
    case DAMA_EW_CEIL: return ceil(x);
    case DAMA_EW_ROUND: return nearbyint(x);
    case DAMA_EW_ERF: return erf(x);
    default: return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
  }
}
/* The unary ops that keep an integer dtype (computed in i64: floor, ceil and round are the identity); the others
 * promote integers to f32. */
DAMA_HD_EW int dama_ew_unop_keeps_int(int op) {
  return op == DAMA_EW_NEG || op == DAMA_EW_ABS || op == DAMA_EW_RELU || op == DAMA_EW_SQUARE || op == DAMA_EW_SIGN ||
         op == DAMA_EW_FLOOR || op == DAMA_EW_CEIL || op == DAMA_EW_ROUND;
}
DAMA_HD_EW int64_t dama_ew_unop_i64(int op, int64_t x) {
  switch (op) {
    case DAMA_EW_NEG: return (int64_t)(0 - (uint64_t)x);
    case DAMA_EW_ABS: return x < 0 ? (int64_t)(0 - (uint64_t)x) : x;
    case DAMA_EW_RELU: return x < 0 ? 0 : x;
    case DAMA_EW_SQUARE: return (int64_t)((uint64_t)x * (uint64_t)x);
    case DAMA_EW_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
    default: return x; /* floor, ceil, round */
  }
}

/* clamp: lower bound first, so lo > hi gives hi; NaN stays NaN. The i64 kind's bounds are ceil(lo), floor(hi)
 * saturated to the i64 range (dama_ew_bound_i64). */
DAMA_HD_EW float dama_ew_clamp_f32(float x, float lo, float hi) { x = x < lo ? lo : x; return x > hi ? hi : x; }
DAMA_HD_EW double dama_ew_clamp_f64(double x, double lo, double hi) { x = x < lo ? lo : x; return x > hi ? hi : x; }
DAMA_HD_EW int64_t dama_ew_clamp_i64(int64_t x, int64_t lo, int64_t hi) { x = x < lo ? lo : x; return x > hi ? hi : x; }
DAMA_HD_EW int64_t dama_ew_bound_i64(double v) {
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}

/* ---- conversions, as the CPU's loads and stores do them (cpu/ops_common.c) ---- */

/* The bits of a float. */
DAMA_HD uint32_t dama_f32_as_u32(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  union { uint32_t u; float f; } s;
  s.f = f;
  return s.u;
#endif
}
/* float -> int: truncation toward zero, NaN -> 0, saturated to the i64 range (a narrower int then wraps like a C
 * cast of the i64). */
DAMA_HD int64_t dama_ew_f2i(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}
/* bf16 as core/dama_internal.h's dama_bf16_to_f32 / dama_f32_to_bf16: round to nearest even, a NaN keeps its sign
 * and top payload bits and is made quiet (CUDA's __float2bfloat16 would give 0x7fff). */
DAMA_HD float dama_ew_bf16_to_f32(uint16_t h) { return dama_u32_as_f32((uint32_t)h << 16); }
DAMA_HD uint16_t dama_ew_f32_to_bf16(float f) {
  const uint32_t u = dama_f32_as_u32(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
/* f16 as the CPU converts it with F16C (_cvtsh_ss / _cvtss_sh, round to nearest even; what -march=native gives on
 * x86-64): exact widening, a NaN made quiet keeping its sign and top payload bits in both directions. Without F16C
 * the CPU's dama_f16_to_f32 / dama_f32_to_f16 agree on every value but NaN payloads. */
DAMA_HD float dama_ew_f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  if (e == 0) {
    if (mant == 0) return dama_u32_as_f32(sign);
    const float v = (float)mant * 5.9604644775390625e-8f; /* subnormal: mant * 2^-24, exact */
    return sign ? -v : v;
  }
  if (e == 31) return dama_u32_as_f32(sign | 0x7f800000u | (mant << 13) | (mant ? 0x400000u : 0u));
  return dama_u32_as_f32(sign | ((e + 112) << 23) | (mant << 13));
}
DAMA_HD uint16_t dama_ew_f32_to_f16(float f) {
  const uint32_t u = dama_f32_as_u32(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu)); /* NaN */
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);                      /* overflow to Inf (>= 65520) */
  if (a < 0x38800000u)                                                          /* subnormal or zero */
    return (uint16_t)(sign | (uint32_t)lrintf(dama_u32_as_f32(a) * 16777216.0f)); /* exact scaling, then RNE */
  return (uint16_t)(sign | ((a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13));       /* rebias exponent, RNE */
}

/* ---- NN area (cuda/kernels/optim.cuh): the SGD element update, runtime/cpu/nn_optim.c's dama_sgd_step loop body
 * (torch.optim.SGD: weight decay into the gradient, momentum buffer, dampening, Nesterov; `first` is step == 1,
 * where the buffer starts as the gradient). buf may be NULL when momentum is 0. ---- */
DAMA_HD void dama_sgd_elem(float *p, float *buf, float grad, float lr, float momentum, float dampening,
                           float weight_decay, int nesterov, int first) {
  float g = grad + weight_decay * *p;
  if (momentum != 0.0f) {
    float b = first ? g : momentum * *buf + (1.0f - dampening) * g;
    *buf = b;
    g = nesterov ? g + momentum * b : b;
  }
  *p -= lr * g;
}

/* ==== reductions and RNG (runtime/cpu/rng.c, cuda/kernels/philox.cuh) ====
 * Philox4x32-10 (Salmon et al., SC'11) and the transforms of its 32-bit draws into values, so that a seed gives the
 * same numbers on every device. The transforms compute in double and are written without an a*b+c that a compiler
 * could contract into an FMA: the products go through dama_rng_mul, which rounds on its own (__dmul_rn on a GPU; on
 * the host a volatile store, since -ffp-contract=fast would fuse across statements). log/cos/sqrt are the device's:
 * sqrt is correctly rounded everywhere, log and cos are glibc's on the CPU (and in the interpreter) but CUDA's on a
 * GPU (documented error 1 and 2 ulp), so on a GPU normal_ agrees with the CPU to about an ulp of double (its f32 /
 * bf16 / f16 results round alike except in the rarest ties), while uniform_ and randint_ agree bit for bit. */
DAMA_HD void dama_philox4x32_10(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
  uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
  uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
  uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1; c3 = (uint32_t)p0; c0 = n0; c2 = n2;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

/* a * b rounded to double on its own, never fused with a following addition */
DAMA_HD double dama_rng_mul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  volatile double p = a * b;
  return p;
#endif
}

/* A 24-bit uniform in [0, 1) from a 32-bit draw (float and double fills agree on it). */
DAMA_HD double dama_rng_u01(uint32_t x) { return (double)(x >> 8) * (1.0 / 16777216.0); }
/* Element i of a fill uses Philox counter (offset + i * per_elem / 4), lanes (i * per_elem) % 4 ..: uniform_ takes one
 * lane per element, normal_ and randint_ two. */
DAMA_HD double dama_rng_uniform(uint32_t x, double lo, double hi) { return lo + dama_rng_mul(hi - lo, dama_rng_u01(x)); }
/* Box-Muller from two lanes (1 - u avoids log(0)). */
DAMA_HD double dama_rng_normal(uint32_t x0, uint32_t x1, double mean, double std) {
  const double u1 = 1.0 - dama_rng_u01(x0), u2 = dama_rng_u01(x1);
  return mean + dama_rng_mul(dama_rng_mul(std, sqrt(-2.0 * log(u1))), cos(6.283185307179586 * u2));
}
/* An integer in [lo, hi) from two lanes (a 64-bit draw modulo the span; lo and hi as the CPU passes them, in double). */
DAMA_HD double dama_rng_int(uint32_t x0, uint32_t x1, double lo, double hi) {
  const uint64_t r = ((uint64_t)x0 << 32) | x1;
  const uint64_t span = (uint64_t)(hi - lo);
  return lo + (double)(r % span);
}

#endif
