/* nn losses and optimizers: values against double references, finite-difference checks of every loss
 * backward, PyTorch-semantics optimizer steps, flat-arena helpers and argument validation. */
#include "dama_test.h"
#include <stdlib.h>
#include <string.h>

#define NN_TEST_SEED 0x13198a2e03707344ull
#include "nn_test_util.h"

#define GRAD_TOL 1e-3
#define DLOSS 1.7f /* upstream gradient, so the scaling by dloss is checked too */

/* ---------------- MSE and smooth L1 ---------------- */
typedef struct { int which; float *pred, *target; int64_t n; float beta; int red; } pt_ctx;
static double pt_obj(void *p) {
  pt_ctx *c = p;
  float l = 0.0f;
  if (c->which == 0) dama_mse_loss_forward(&l, c->pred, c->target, c->n);
  else dama_smooth_l1_loss_forward(&l, c->pred, c->target, c->n, c->beta, c->red);
  return (double)DLOSS * l;
}

DAMA_TEST(mse_value_and_gradcheck) {
  float p[3] = {1, 2, 3}, t[3] = {0, 2, 5}, l;
  CHECK_OK(dama_mse_loss_forward(&l, p, t, 3));
  CHECK_CLOSE(l, 5.0 / 3.0, 1e-6);
  pt_ctx c = {0, rnd(50, 1), rnd(50, 1), 50, 0, 0};
  float *dp = zeros(50), *dt = zeros(50);
  CHECK_OK(dama_mse_loss_backward(dp, dt, c.pred, c.target, c.n, DLOSS));
  CHECK(gradcheck(c.pred, c.n, dp, pt_obj, &c, 1e-2f) < GRAD_TOL);
  CHECK(gradcheck(c.target, c.n, dt, pt_obj, &c, 1e-2f) < GRAD_TOL);
  free(c.pred); free(c.target); free(dp); free(dt);
}

DAMA_TEST(smooth_l1_value_and_gradcheck) {
  /* beta 2: d = 1 -> 0.25 (quadratic), d = 3 -> 2 (linear) */
  float p[2] = {1, 0}, t[2] = {0, 3}, l;
  CHECK_OK(dama_smooth_l1_loss_forward(&l, p, t, 2, 2.0f, 0));
  CHECK_CLOSE(l, 2.25, 1e-6);
  CHECK_OK(dama_smooth_l1_loss_forward(&l, p, t, 2, 2.0f, 1));
  CHECK_CLOSE(l, 1.125, 1e-6);
  CHECK_OK(dama_smooth_l1_loss_forward(&l, p, t, 2, 0.0f, 0)); /* beta 0 = L1 */
  CHECK_CLOSE(l, 4.0, 1e-6);
  for (int red = 0; red < 2; red++)
    for (int bi = 0; bi < 2; bi++) {
      pt_ctx c = {1, rnd(64, 2), rnd(64, 2), 64, bi ? 0.5f : 2.0f, red};
      for (int64_t i = 0; i < c.n; i++) /* stay away from the |d| = beta seam for finite differences */
        if (fabsf(fabsf(c.pred[i] - c.target[i]) - c.beta) < 0.05f) c.pred[i] += 0.2f;
      float *dp = zeros(64), *dt = zeros(64);
      CHECK_OK(dama_smooth_l1_loss_backward(dp, dt, c.pred, c.target, c.n, c.beta, red, DLOSS));
      double e1 = gradcheck(c.pred, c.n, dp, pt_obj, &c, 1e-2f), e2 = gradcheck(c.target, c.n, dt, pt_obj, &c, 1e-2f);
      free(c.pred); free(c.target); free(dp); free(dt);
      CHECK_MSG(e1 < GRAD_TOL && e2 < GRAD_TOL, "smooth l1 red=%d beta=%d: %g %g", red, bi, e1, e2);
    }
  CHECK_STATUS(dama_smooth_l1_loss_forward(&l, p, t, 2, -1.0f, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_smooth_l1_loss_forward(&l, p, t, 2, 1.0f, 2), DAMA_ERR_ARG);
}

/* ---------------- cross-entropy ---------------- */
typedef struct { float *logits, *soft; int64_t *target; int64_t N, K; float eps; } ce_ctx;
static double ce_obj(void *p) {
  ce_ctx *c = p;
  float l = 0.0f;
  if (c->soft) dama_soft_cross_entropy_forward(&l, c->logits, c->soft, c->N, c->K);
  else dama_cross_entropy_forward(&l, c->logits, c->target, c->N, c->K, c->eps);
  return (double)DLOSS * l;
}

DAMA_TEST(cross_entropy_value_and_gradcheck) {
  const int64_t N = 4, K = 7;
  float *x = rnd(N * K, 3);
  int64_t t[4] = {0, 6, 3, 3};
  for (int s = 0; s < 2; s++) {
    float eps = s ? 0.1f : 0.0f, l;
    CHECK_OK(dama_cross_entropy_forward(&l, x, t, N, K, eps));
    double ref = 0.0;
    for (int64_t i = 0; i < N; i++) {
      double lse = 0.0;
      for (int64_t k = 0; k < K; k++) lse += exp(x[i * K + k]);
      lse = log(lse);
      for (int64_t k = 0; k < K; k++) {
        double q = eps / K + (k == t[i] ? 1.0 - eps : 0.0);
        ref -= q * (x[i * K + k] - lse);
      }
    }
    CHECK_CLOSE(l, ref / N, 1e-5);
    ce_ctx c = {x, NULL, t, N, K, eps};
    float *d = zeros(N * K);
    CHECK_OK(dama_cross_entropy_backward(d, x, t, N, K, eps, DLOSS));
    CHECK(gradcheck(x, N * K, d, ce_obj, &c, 1e-2f) < GRAD_TOL);
    free(d);
  }
  float l;
  int64_t bad[4] = {0, 7, 0, 0};
  CHECK_STATUS(dama_cross_entropy_forward(&l, x, bad, N, K, 0.0f), DAMA_ERR_INDEX);
  CHECK_STATUS(dama_cross_entropy_forward(&l, x, t, N, K, 1.5f), DAMA_ERR_ARG);
  free(x);
}

DAMA_TEST(soft_cross_entropy_value_and_gradcheck) {
  const int64_t N = 3, K = 5;
  float *x = rnd(N * K, 3), *q = zeros(N * K);
  for (int64_t i = 0; i < N * K; i++) q[i] = 0.5f + 0.5f * frand();
  for (int64_t i = 0; i < N; i++) { /* rows of probabilities */
    float s = 0.0f;
    for (int64_t k = 0; k < K; k++) s += q[i * K + k];
    for (int64_t k = 0; k < K; k++) q[i * K + k] /= s;
  }
  float l;
  CHECK_OK(dama_soft_cross_entropy_forward(&l, x, q, N, K));
  double ref = 0.0;
  for (int64_t i = 0; i < N; i++) {
    double lse = 0.0;
    for (int64_t k = 0; k < K; k++) lse += exp(x[i * K + k]);
    lse = log(lse);
    for (int64_t k = 0; k < K; k++) ref -= q[i * K + k] * (x[i * K + k] - lse);
  }
  CHECK_CLOSE(l, ref / N, 1e-5);
  /* a one-hot soft target equals the hard-target loss */
  float oh[5] = {0, 0, 1, 0, 0}, l1, l2;
  int64_t t2 = 2;
  CHECK_OK(dama_soft_cross_entropy_forward(&l1, x, oh, 1, K));
  CHECK_OK(dama_cross_entropy_forward(&l2, x, &t2, 1, K, 0.0f));
  CHECK_CLOSE(l1, l2, 1e-6);
  q[0] += 0.3f; /* unnormalised targets are differentiated correctly too */
  ce_ctx c = {x, q, NULL, N, K, 0};
  float *d = zeros(N * K);
  CHECK_OK(dama_soft_cross_entropy_backward(d, x, q, N, K, DLOSS));
  CHECK(gradcheck(x, N * K, d, ce_obj, &c, 1e-2f) < GRAD_TOL);
  free(x); free(q); free(d);
}

/* ---------------- norm-pix loss ---------------- */
typedef struct { float *pred, *target, *mask, *lpp; int64_t N, L, P; int norm; } np_ctx;
static double np_obj(void *p) {
  np_ctx *c = p;
  float l = 0.0f;
  dama_normpix_loss_forward(&l, c->lpp, c->pred, c->target, c->mask, c->N, c->L, c->P, c->norm, 1e-6f);
  return (double)DLOSS * l;
}

DAMA_TEST(normpix_value_and_gradcheck) {
  const int64_t N = 2, L = 5, P = 12;
  float *pred = rnd(N * L * P, 1), *target = rnd(N * L * P, 3), *lpp = zeros(N * L);
  float mask[10] = {1, 0, 1, 1, 0, 0, 0, 1, 0, 1};
  for (int norm = 0; norm < 2; norm++) {
    float l;
    CHECK_OK(dama_normpix_loss_forward(&l, lpp, pred, target, mask, N, L, P, norm, 1e-6f));
    double num = 0.0, den = 0.0;
    for (int64_t r = 0; r < N * L; r++) {
      const float *t = target + r * P, *y = pred + r * P;
      double mu = 0.0, var = 0.0, s = 0.0;
      for (int64_t k = 0; k < P; k++) mu += t[k];
      mu /= P;
      for (int64_t k = 0; k < P; k++) var += (t[k] - mu) * (t[k] - mu);
      var /= (P - 1); /* unbiased, as torch.var */
      for (int64_t k = 0; k < P; k++) {
        double th = norm ? (t[k] - mu) / sqrt(var + 1e-6) : t[k];
        s += (y[k] - th) * (y[k] - th);
      }
      CHECK_CLOSE(lpp[r], s / P, 1e-5);
      num += s / P * mask[r];
      den += mask[r];
    }
    CHECK_CLOSE(l, num / den, 1e-5);
    np_ctx c = {pred, target, mask, NULL, N, L, P, norm};
    float *d = zeros(N * L * P);
    CHECK_OK(dama_normpix_loss_backward(d, pred, target, mask, N, L, P, norm, 1e-6f, DLOSS));
    CHECK(gradcheck(pred, N * L * P, d, np_obj, &c, 1e-2f) < GRAD_TOL);
    CHECK(d[1 * P] == 0.0f); /* visible patch: no gradient */
    free(d);
  }
  float zero_mask[10] = {0}, l = 1.0f;
  CHECK_OK(dama_normpix_loss_forward(&l, NULL, pred, target, zero_mask, N, L, P, 1, 1e-6f));
  CHECK(l == 0.0f);
  CHECK_STATUS(dama_normpix_loss_forward(&l, NULL, pred, target, mask, N, L, 1, 1, 1e-6f), DAMA_ERR_ARG);
  free(pred); free(target); free(lpp);
}

/* ---------------- optimizers ---------------- */
DAMA_TEST(adamw_matches_pytorch_formula) {
  const int64_t n = 37;
  float *p = rnd(n, 1), *m = zeros(n), *v = zeros(n);
  double *pr = malloc(sizeof(double) * n), *mr = calloc(n, sizeof(double)), *vr = calloc(n, sizeof(double));
  for (int64_t i = 0; i < n; i++) pr[i] = p[i];
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.05;
  for (int64_t t = 1; t <= 5; t++) {
    float *g = rnd(n, 1);
    CHECK_OK(dama_adamw_step(p, g, m, v, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, t));
    for (int64_t i = 0; i < n; i++) { /* torch.optim.AdamW (foreach=False) in double */
      pr[i] *= 1.0 - lr * wd;
      mr[i] = b1 * mr[i] + (1 - b1) * g[i];
      vr[i] = b2 * vr[i] + (1 - b2) * (double)g[i] * g[i];
      double denom = sqrt(vr[i]) / sqrt(1 - pow(b2, (double)t)) + eps;
      pr[i] -= lr / (1 - pow(b1, (double)t)) * mr[i] / denom;
    }
    free(g);
  }
  double worst = 0.0;
  for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(p[i] - pr[i]));
  CHECK_MSG(worst < 1e-6, "adamw error %g", worst);
  /* step 1 closed form: p(1 - lr wd) - lr sign(g) (|g| >> eps) */
  float p1 = 0.5f, g1 = -0.25f, m1 = 0, v1 = 0;
  CHECK_OK(dama_adamw_step(&p1, &g1, &m1, &v1, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 1));
  CHECK_CLOSE(p1, 0.5 * (1 - 0.01) + 0.1, 1e-6);
  CHECK_STATUS(dama_adamw_step(&p1, &g1, &m1, &v1, 1, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_adamw_step(&p1, &g1, &m1, &v1, 0, 0.1f, 0.9f, 0.999f, 1e-8f, 0.1f, 1), DAMA_ERR_ARG);
  free(p); free(m); free(v); free(pr); free(mr); free(vr);
}

DAMA_TEST(sgd_momentum_and_nesterov) {
  for (int nest = 0; nest < 2; nest++) {
    float p = 1.0f, buf = 0.0f;
    double pr = 1.0, br = 0.0;
    const double lr = 0.1, mom = 0.9, wd = 0.01;
    const float gs[3] = {0.5f, -0.2f, 0.3f};
    for (int t = 1; t <= 3; t++) {
      CHECK_OK(dama_sgd_step(&p, &gs[t - 1], &buf, 1, (float)lr, (float)mom, 0.0f, (float)wd, nest, t));
      double g = gs[t - 1] + wd * pr;
      br = t == 1 ? g : mom * br + g;
      pr -= lr * (nest ? g + mom * br : br);
    }
    CHECK_CLOSE(p, pr, 1e-6);
  }
  float p = 1.0f, g = 0.5f;
  CHECK_OK(dama_sgd_step(&p, &g, NULL, 1, 0.1f, 0.0f, 0.0f, 0.0f, 0, 1));
  CHECK_CLOSE(p, 0.95, 1e-7);
  CHECK_STATUS(dama_sgd_step(&p, &g, NULL, 1, 0.1f, 0.9f, 0.0f, 0.0f, 0, 1), DAMA_ERR_ARG);
}

DAMA_TEST(flat_arena_helpers) {
  const int64_t n = 100003; /* large enough for the OpenMP path */
  float *x = zeros(n), *e = zeros(n);
  for (int64_t i = 0; i < n; i++) { x[i] = (float)(i % 7) - 3.0f; e[i] = 1.0f; }
  double ref = 0.0, nrm;
  for (int64_t i = 0; i < n; i++) ref += (double)x[i] * x[i];
  CHECK_OK(dama_l2_norm(&nrm, x, n));
  CHECK_CLOSE(nrm, sqrt(ref), 1e-12);
  CHECK_OK(dama_scale_inplace(x, n, 0.5f));
  CHECK(x[0] == -1.5f && x[6] == 1.5f);
  CHECK_OK(dama_ema_update(e, x, n, 0.9f));
  CHECK_CLOSE(e[0], 0.9 - 0.15, 1e-6);
  CHECK_STATUS(dama_l2_norm(&nrm, x, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_scale_inplace(NULL, n, 1.0f), DAMA_ERR_ARG);
  CHECK_STATUS(dama_ema_update(e, x, -5, 0.9f), DAMA_ERR_ARG);
  free(x); free(e);
}
