/* Optimizer steps and flat-arena loops (PyTorch semantics), parallel over the arena with OpenMP. */
#include "core/dama_internal.h"
#include <math.h>

#if defined(__AVX__)
#include <immintrin.h>
#endif

/* Float selects may be if-converted only when traps are ignored; results are unchanged. */
#pragma GCC optimize("no-trapping-math")

/* AdamW's element update and step scalars are shared with the CUDA kernels (included after the pragma on purpose). */
#include "core/dama_math.h"

#define CHECK_N(fn, n) DAMA_CHECK((n) > 0, DAMA_ERR_ARG, fn ": n must be positive, got %lld", (long long)(n))
#define PAR_THRESHOLD 32768

dama_status dama_adamw_step(float *params, const float *grads, float *m, float *v, int64_t n, float lr, float beta1,
                            float beta2, float eps, float weight_decay, int64_t step) {
  CHECK_N("adamw_step", n);
  DAMA_CHECK(params && grads && m && v, DAMA_ERR_ARG, "adamw_step: params, grads, m and v must not be NULL");
  DAMA_CHECK(step >= 1, DAMA_ERR_ARG, "adamw_step: step must be >= 1, got %lld", (long long)step);
  DAMA_CHECK(beta1 >= 0.0f && beta1 < 1.0f && beta2 >= 0.0f && beta2 < 1.0f, DAMA_ERR_ARG,
             "adamw_step: betas must be in [0, 1), got (%g, %g)", (double)beta1, (double)beta2);
  DAMA_CHECK(lr >= 0.0f && eps >= 0.0f && weight_decay >= 0.0f, DAMA_ERR_ARG,
             "adamw_step: lr, eps and weight_decay must be >= 0, got %g, %g, %g", (double)lr, (double)eps,
             (double)weight_decay);
  const dama_adamw_coef k = dama_adamw_coeffs(lr, beta1, beta2, weight_decay, step);
  const float step_size = k.step_size, bc2_sqrt = k.bc2_sqrt, decay = k.decay, b1 = beta1, b2 = beta2;
  /* sqrtf keeps errno semantics, so GCC will not vectorise it without -fno-math-errno: with AVX the
   * loop is written with intrinsics (the same IEEE operations in the same order as the scalar tail). */
  int64_t n0 = 0;
#if defined(__AVX__)
  n0 = n / 8 * 8;
  {
    const __m256 vb1 = _mm256_set1_ps(b1), vb1c = _mm256_set1_ps(1.0f - b1), vb2 = _mm256_set1_ps(b2);
    const __m256 vb2c = _mm256_set1_ps(1.0f - b2), vdec = _mm256_set1_ps(decay), vss = _mm256_set1_ps(step_size);
    const __m256 vbc2 = _mm256_set1_ps(bc2_sqrt), veps = _mm256_set1_ps(eps);
#pragma omp parallel for schedule(static) if (n > PAR_THRESHOLD)
    for (int64_t i = 0; i < n0; i += 8) {
      __m256 g = _mm256_loadu_ps(grads + i);
      __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(vb1c, g));
      __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(vb2c, g), g));
      _mm256_storeu_ps(m + i, mi);
      _mm256_storeu_ps(v + i, vi);
      __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), vbc2), veps);
      __m256 p = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(params + i), vdec),
                               _mm256_div_ps(_mm256_mul_ps(vss, mi), denom));
      _mm256_storeu_ps(params + i, p);
    }
  }
#endif
  for (int64_t i = n0; i < n; i++) dama_adamw_elem(params + i, m + i, v + i, grads[i], b1, b2, eps, k);
  return DAMA_OK;
}

dama_status dama_sgd_step(float *params, const float *grads, float *buf, int64_t n, float lr, float momentum,
                          float dampening, float weight_decay, int nesterov, int64_t step) {
  CHECK_N("sgd_step", n);
  DAMA_CHECK(params && grads, DAMA_ERR_ARG, "sgd_step: params and grads must not be NULL");
  DAMA_CHECK(momentum == 0.0f || buf, DAMA_ERR_ARG, "sgd_step: momentum %g needs a momentum buffer", (double)momentum);
  DAMA_CHECK(step >= 1, DAMA_ERR_ARG, "sgd_step: step must be >= 1, got %lld", (long long)step);
  DAMA_CHECK(!nesterov || (momentum > 0.0f && dampening == 0.0f), DAMA_ERR_ARG,
             "sgd_step: nesterov needs momentum > 0 and dampening 0");
  const int first = step == 1;
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) {
    float g = grads[i] + weight_decay * params[i];
    if (momentum != 0.0f) {
      float b = first ? g : momentum * buf[i] + (1.0f - dampening) * g;
      buf[i] = b;
      g = nesterov ? g + momentum * b : b;
    }
    params[i] -= lr * g;
  }
  return DAMA_OK;
}

dama_status dama_l2_norm(double *out, const float *x, int64_t n) {
  CHECK_N("l2_norm", n);
  DAMA_CHECK(out && x, DAMA_ERR_ARG, "l2_norm: out and x must not be NULL");
  double acc = 0.0;
#pragma omp parallel for simd reduction(+ : acc) schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) acc += (double)x[i] * (double)x[i];
  *out = sqrt(acc);
  return DAMA_OK;
}

dama_status dama_scale_inplace(float *x, int64_t n, float s) {
  CHECK_N("scale_inplace", n);
  DAMA_CHECK(x, DAMA_ERR_ARG, "scale_inplace: x must not be NULL");
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) x[i] *= s;
  return DAMA_OK;
}

dama_status dama_ema_update(float *ema, const float *p, int64_t n, float momentum) {
  CHECK_N("ema_update", n);
  DAMA_CHECK(ema && p, DAMA_ERR_ARG, "ema_update: ema and p must not be NULL");
  const float a = momentum, b = 1.0f - momentum;
#pragma omp parallel for simd schedule(static) if (n > PAR_THRESHOLD)
  for (int64_t i = 0; i < n; i++) ema[i] = dama_ema_elem(ema[i], p[i], a, b);
  return DAMA_OK;
}
