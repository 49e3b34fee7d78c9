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
