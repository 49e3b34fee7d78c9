/* Losses with forward (one float) and backward (accumulating, scaled by the upstream dloss):
 * MSE, smooth L1, cross-entropy (hard targets with label smoothing, soft targets) and MAE's norm-pix loss. */
#include "core/dama_internal.h"
#include <math.h>

/* Let sqrtf and float selects vectorise: no errno from sqrtf (its inputs are >= 0) and no FP traps. */
#pragma GCC optimize("no-math-errno", "no-trapping-math")

#define CHECK_N(fn, n) DAMA_CHECK((n) > 0, DAMA_ERR_ARG, fn ": n must be positive, got %lld", (long long)(n))

dama_status dama_sq_error_forward(float *loss, const float *pred, const float *target, int64_t n, int reduction) {
  CHECK_N("sq_error_forward", n);
  DAMA_CHECK(loss && pred && target, DAMA_ERR_ARG, "sq_error_forward: loss, pred and target must not be NULL");
  DAMA_CHECK(reduction == 0 || reduction == 1, DAMA_ERR_ARG,
             "sq_error_forward: reduction must be 0 (sum) or 1 (mean), got %d", reduction);
  double acc = 0.0;
#pragma omp parallel for reduction(+ : acc) schedule(static)
  for (int64_t i = 0; i < n; i++) { double d = (double)pred[i] - (double)target[i]; acc += d * d; }
  *loss = (float)(reduction == 1 ? acc / (double)n : acc);
  return DAMA_OK;
}

dama_status dama_sq_error_backward(float *dpred, float *dtarget, const float *pred, const float *target, int64_t n,
                                   int reduction, float dloss) {
  CHECK_N("sq_error_backward", n);
  DAMA_CHECK(pred && target, DAMA_ERR_ARG, "sq_error_backward: pred and target must not be NULL");
  DAMA_CHECK(reduction == 0 || reduction == 1, DAMA_ERR_ARG,
             "sq_error_backward: reduction must be 0 (sum) or 1 (mean), got %d", reduction);
  const float s = reduction == 1 ? 2.0f * dloss / (float)n : 2.0f * dloss;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float g = s * (pred[i] - target[i]);
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
  return DAMA_OK;
}

dama_status dama_mse_loss_forward(float *loss, const float *pred, const float *target, int64_t n) {
  CHECK_N("mse_loss_forward", n);
  DAMA_CHECK(loss && pred && target, DAMA_ERR_ARG, "mse_loss_forward: loss, pred and target must not be NULL");
  return dama_sq_error_forward(loss, pred, target, n, 1);
}

dama_status dama_mse_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target, int64_t n,
                                   float dloss) {
  CHECK_N("mse_loss_backward", n);
  DAMA_CHECK(pred && target, DAMA_ERR_ARG, "mse_loss_backward: pred and target must not be NULL");
  return dama_sq_error_backward(dpred, dtarget, pred, target, n, 1, dloss);
}

static dama_status check_sl1(const char *fn, int64_t n, float beta, int reduction) {
  DAMA_CHECK(n > 0, DAMA_ERR_ARG, "%s: n must be positive, got %lld", fn, (long long)n);
  DAMA_CHECK(beta >= 0.0f, DAMA_ERR_ARG, "%s: beta must be >= 0, got %g", fn, (double)beta);
  DAMA_CHECK(reduction == 0 || reduction == 1, DAMA_ERR_ARG, "%s: reduction must be 0 (sum) or 1 (mean), got %d", fn,
             reduction);
  return DAMA_OK;
}

dama_status dama_smooth_l1_loss_forward(float *loss, const float *pred, const float *target, int64_t n, float beta,
                                        int reduction) {
  DAMA_TRY(check_sl1("smooth_l1_loss_forward", n, beta, reduction));
  DAMA_CHECK(loss && pred && target, DAMA_ERR_ARG, "smooth_l1_loss_forward: loss, pred and target must not be NULL");
  double acc = 0.0;
  const double b = beta;
#pragma omp parallel for reduction(+ : acc) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)pred[i] - (double)target[i]);
    acc += d < b ? 0.5 * d * d / b : d - 0.5 * b;
  }
  *loss = (float)(reduction == 1 ? acc / (double)n : acc);
  return DAMA_OK;
}

dama_status dama_smooth_l1_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target,
                                         int64_t n, float beta, int reduction, float dloss) {
  DAMA_TRY(check_sl1("smooth_l1_loss_backward", n, beta, reduction));
  DAMA_CHECK(pred && target, DAMA_ERR_ARG, "smooth_l1_loss_backward: pred and target must not be NULL");
  const float s = reduction == 1 ? dloss / (float)n : dloss;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float d = pred[i] - target[i];
    float g = fabsf(d) < beta ? d / beta : (d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f));
    g *= s;
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
  return DAMA_OK;
}

/* log-sum-exp of one row, in double */
static double row_lse(const float *x, int64_t K) {
  float mx = -INFINITY;
  for (int64_t k = 0; k < K; k++) mx = x[k] > mx ? x[k] : mx;
  double s = 0.0;
  for (int64_t k = 0; k < K; k++) s += exp((double)x[k] - (double)mx);
  return (double)mx + log(s);
}

static dama_status check_ce(const char *fn, int64_t N, int64_t K) {
  DAMA_CHECK(N > 0 && K > 0, DAMA_ERR_ARG, "%s: sizes must be positive, got N=%lld K=%lld", fn, (long long)N,
             (long long)K);
  return DAMA_OK;
}

static dama_status check_targets(const char *fn, const int64_t *target, int64_t N, int64_t K) {
  for (int64_t i = 0; i < N; i++)
    DAMA_CHECK(target[i] >= 0 && target[i] < K, DAMA_ERR_INDEX, "%s: target[%lld]=%lld, expected a class in [0, %lld)",
               fn, (long long)i, (long long)target[i], (long long)K);
  return DAMA_OK;
}

dama_status dama_cross_entropy_forward(float *loss, const float *logits, const int64_t *target, int64_t N, int64_t K,
                                       float label_smoothing) {
  DAMA_TRY(check_ce("cross_entropy_forward", N, K));
  DAMA_CHECK(loss && logits && target, DAMA_ERR_ARG, "cross_entropy_forward: loss, logits and target must not be NULL");
  DAMA_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f, DAMA_ERR_ARG,
             "cross_entropy_forward: label_smoothing must be in [0, 1], got %g", (double)label_smoothing);
  DAMA_TRY(check_targets("cross_entropy_forward", target, N, K));
  const double eps = label_smoothing;
  double acc = 0.0;
#pragma omp parallel for reduction(+ : acc) schedule(static)
  for (int64_t i = 0; i < N; i++) {
    const float *x = logits + i * K;
    double sx = 0.0;
    for (int64_t k = 0; k < K; k++) sx += x[k];
    acc += row_lse(x, K) - eps / (double)K * sx - (1.0 - eps) * (double)x[target[i]];
  }
  *loss = (float)(acc / (double)N);
  return DAMA_OK;
}

dama_status dama_cross_entropy_backward(float *dlogits, const float *logits, const int64_t *target, int64_t N,
                                        int64_t K, float label_smoothing, float dloss) {
  DAMA_TRY(check_ce("cross_entropy_backward", N, K));
  DAMA_CHECK(dlogits && logits && target, DAMA_ERR_ARG,
             "cross_entropy_backward: dlogits, logits and target must not be NULL");
  DAMA_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f, DAMA_ERR_ARG,
             "cross_entropy_backward: label_smoothing must be in [0, 1], got %g", (double)label_smoothing);
  DAMA_TRY(check_targets("cross_entropy_backward", target, N, K));
  const double s = (double)dloss / (double)N, off = (double)label_smoothing / (double)K;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; i++) {
    const float *x = logits + i * K;
    float *dx = dlogits + i * K;
    double lse = row_lse(x, K);
    for (int64_t k = 0; k < K; k++) {
      double q = off + (k == target[i] ? 1.0 - (double)label_smoothing : 0.0);
      dx[k] += (float)(s * (exp((double)x[k] - lse) - q));
    }
  }
  return DAMA_OK;
}

dama_status dama_soft_cross_entropy_forward(float *loss, const float *logits, const float *target, int64_t N,
                                            int64_t K) {
  DAMA_TRY(check_ce("soft_cross_entropy_forward", N, K));
  DAMA_CHECK(loss && logits && target, DAMA_ERR_ARG,
             "soft_cross_entropy_forward: loss, logits and target must not be NULL");
  double acc = 0.0;
#pragma omp parallel for reduction(+ : acc) schedule(static)
  for (int64_t i = 0; i < N; i++) {
    const float *x = logits + i * K, *q = target + i * K;
    double lse = row_lse(x, K), sq = 0.0, sqx = 0.0;
    for (int64_t k = 0; k < K; k++) { sq += q[k]; sqx += (double)q[k] * (double)x[k]; }
    acc += lse * sq - sqx;
  }
  *loss = (float)(acc / (double)N);
  return DAMA_OK;
}

dama_status dama_soft_cross_entropy_backward(float *dlogits, const float *logits, const float *target, int64_t N,
                                             int64_t K, float dloss) {
  DAMA_TRY(check_ce("soft_cross_entropy_backward", N, K));
  DAMA_CHECK(dlogits && logits && target, DAMA_ERR_ARG,
             "soft_cross_entropy_backward: dlogits, logits and target must not be NULL");
  const double s = (double)dloss / (double)N;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < N; i++) {
    const float *x = logits + i * K, *q = target + i * K;
    float *dx = dlogits + i * K;
    double lse = row_lse(x, K), sq = 0.0;
    for (int64_t k = 0; k < K; k++) sq += q[k];
    for (int64_t k = 0; k < K; k++) dx[k] += (float)(s * (exp((double)x[k] - lse) * sq - (double)q[k]));
  }
  return DAMA_OK;
}

static dama_status check_normpix(const char *fn, int64_t N, int64_t L, int64_t P, int norm_pix, float eps) {
  DAMA_CHECK(N > 0 && L > 0 && P > 0, DAMA_ERR_ARG, "%s: sizes must be positive, got N=%lld L=%lld P=%lld", fn,
             (long long)N, (long long)L, (long long)P);
  DAMA_CHECK(!norm_pix || P >= 2, DAMA_ERR_ARG, "%s: norm_pix needs P >= 2 (unbiased variance), got %lld", fn,
             (long long)P);
  DAMA_CHECK(eps >= 0.0f, DAMA_ERR_ARG, "%s: eps must be >= 0, got %g", fn, (double)eps);
  return DAMA_OK;
}

/* per-patch normalisation of t: t_hat = (t - mu) * inv */
static void patch_stats(const float *t, int64_t P, int norm_pix, float eps, float *mu, float *inv) {
  if (!norm_pix) { *mu = 0.0f; *inv = 1.0f; return; }
  float s = 0.0f;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < P; k++) s += t[k];
  float m = s / (float)P, v = 0.0f;
#pragma omp simd reduction(+ : v)
  for (int64_t k = 0; k < P; k++) { float d = t[k] - m; v += d * d; }
  *mu = m;
  *inv = 1.0f / sqrtf(v / (float)(P - 1) + eps);
}

dama_status dama_normpix_loss_forward(float *loss, float *loss_per_patch, const float *pred, const float *target,
                                      const float *mask, int64_t N, int64_t L, int64_t P, int norm_pix, float eps) {
  DAMA_TRY(check_normpix("normpix_loss_forward", N, L, P, norm_pix, eps));
  DAMA_CHECK(loss && pred && target && mask, DAMA_ERR_ARG,
             "normpix_loss_forward: loss, pred, target and mask must not be NULL");
  double num = 0.0, den = 0.0;
#pragma omp parallel for reduction(+ : num, den) schedule(static)
  for (int64_t r = 0; r < N * L; r++) {
    const float *t = target + r * P, *y = pred + r * P;
    float mu, inv;
    patch_stats(t, P, norm_pix, eps, &mu, &inv);
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < P; k++) { float d = y[k] - (t[k] - mu) * inv; s += d * d; }
    float l = s / (float)P;
    if (loss_per_patch) loss_per_patch[r] = l;
    num += (double)l * (double)mask[r];
    den += (double)mask[r];
  }
  *loss = den != 0.0 ? (float)(num / den) : 0.0f;
  return DAMA_OK;
}

dama_status dama_normpix_loss_backward(float *dpred, const float *pred, const float *target, const float *mask,
                                       int64_t N, int64_t L, int64_t P, int norm_pix, float eps, float dloss) {
  DAMA_TRY(check_normpix("normpix_loss_backward", N, L, P, norm_pix, eps));
  DAMA_CHECK(dpred && pred && target && mask, DAMA_ERR_ARG,
             "normpix_loss_backward: dpred, pred, target and mask must not be NULL");
  double den = 0.0;
  for (int64_t r = 0; r < N * L; r++) den += (double)mask[r];
  if (den == 0.0) return DAMA_OK;
  const float s = (float)(2.0 * (double)dloss / (den * (double)P));
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < N * L; r++) {
    if (mask[r] == 0.0f) continue;
    const float *t = target + r * P, *y = pred + r * P;
    float *dy = dpred + r * P;
    float mu, inv, g = s * mask[r];
    patch_stats(t, P, norm_pix, eps, &mu, &inv);
#pragma omp simd
    for (int64_t k = 0; k < P; k++) dy[k] += g * (y[k] - (t[k] - mu) * inv);
  }
  return DAMA_OK;
}
