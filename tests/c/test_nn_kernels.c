/* nn kernels: known values, naive references and finite-difference gradient checks for every backward
 * (linear, layernorm, GELU, ReLU, softmax, dropout, drop-path, attention, patch embedding), plus patchify
 * layout, the sin-cos position table and argument validation. */
#include "dama_test.h"
#include <stdlib.h>
#include <string.h>

#define NN_TEST_SEED 0x243f6a8885a308d3ull
#include "nn_test_util.h"
static double max_abs_diff(const float *a, const float *b, int64_t n) {
  double m = 0.0;
  for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - (double)b[i]));
  return m;
}

/* The objective whose gradient the checks compare: sum(out * R) in double, R fixed random weights. */
static double dot_r(const float *out, const float *R, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += (double)out[i] * (double)R[i];
  return s;
}
#define GRAD_TOL 1e-3

/* ---------------- linear ---------------- */
typedef struct { float *out, *inp, *w, *b, *R; int64_t N, C, OC; } lin_ctx;
static double lin_obj(void *p) {
  lin_ctx *c = p;
  dama_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
  return dot_r(c->out, c->R, c->N * c->OC);
}

DAMA_TEST(linear_forward_matches_naive) {
  const int64_t N = 5, C = 7, OC = 3;
  float *inp = rnd(N * C, 1), *w = rnd(OC * C, 1), *b = rnd(OC, 1), *out = zeros(N * OC);
  CHECK_OK(dama_linear_forward(out, inp, w, b, N, C, OC));
  for (int64_t i = 0; i < N; i++)
    for (int64_t o = 0; o < OC; o++) {
      double s = b[o];
      for (int64_t k = 0; k < C; k++) s += (double)inp[i * C + k] * w[o * C + k];
      CHECK_CLOSE(out[i * OC + o], s, 1e-5);
    }
  CHECK_OK(dama_linear_forward(out, inp, w, NULL, N, C, OC));
  double s = 0.0;
  for (int64_t k = 0; k < C; k++) s += (double)inp[k] * w[k];
  CHECK_CLOSE(out[0], s, 1e-5);
  free(inp); free(w); free(b); free(out);
}

DAMA_TEST(linear_backward_gradcheck) {
  lin_ctx c = {0};
  c.N = 6; c.C = 9; c.OC = 5;
  c.inp = rnd(c.N * c.C, 1); c.w = rnd(c.OC * c.C, 1); c.b = rnd(c.OC, 1);
  c.out = zeros(c.N * c.OC); c.R = rnd(c.N * c.OC, 1);
  float *dinp = zeros(c.N * c.C), *dw = zeros(c.OC * c.C), *db = zeros(c.OC);
  CHECK_OK(dama_linear_backward(dinp, dw, db, c.R, c.inp, c.w, c.N, c.C, c.OC));
  CHECK(gradcheck(c.inp, c.N * c.C, dinp, lin_obj, &c, 1e-2f) < GRAD_TOL);
  CHECK(gradcheck(c.w, c.OC * c.C, dw, lin_obj, &c, 1e-2f) < GRAD_TOL);
  CHECK(gradcheck(c.b, c.OC, db, lin_obj, &c, 1e-2f) < GRAD_TOL);
  /* accumulation, and NULL grads are skipped */
  float d0 = dinp[0], w0 = dw[0], b0 = db[0];
  CHECK_OK(dama_linear_backward(NULL, dw, NULL, c.R, c.inp, NULL, c.N, c.C, c.OC));
  CHECK_CLOSE(dw[0], 2 * w0, 1e-5);
  CHECK(dinp[0] == d0 && db[0] == b0);
  CHECK_OK(dama_linear_backward(NULL, NULL, db, c.R, NULL, NULL, c.N, c.C, c.OC));
  CHECK_CLOSE(db[0], 2 * b0, 1e-5);
  CHECK_STATUS(dama_linear_backward(dinp, NULL, NULL, c.R, c.inp, NULL, c.N, c.C, c.OC), DAMA_ERR_ARG);
  free(c.inp); free(c.w); free(c.b); free(c.out); free(c.R); free(dinp); free(dw); free(db);
}

/* ---------------- layernorm ---------------- */
DAMA_TEST(layernorm_known_row) {
  float x[4] = {1, 2, 3, 4}, out[4], mean, rstd, w[4] = {1, 2, 1, 1}, b[4] = {0, 0, 0, 10};
  CHECK_OK(dama_layernorm_forward(out, &mean, &rstd, x, NULL, NULL, 1, 4, 0.0f));
  CHECK_CLOSE(mean, 2.5, 1e-6);
  CHECK_CLOSE(rstd, 1.0 / sqrt(1.25), 1e-6);
  CHECK_CLOSE(out[0], -1.5 / sqrt(1.25), 1e-6);
  CHECK_CLOSE(out[3], 1.5 / sqrt(1.25), 1e-6);
  CHECK_OK(dama_layernorm_forward(out, &mean, &rstd, x, w, b, 1, 4, 1e-6f));
  CHECK_CLOSE(out[1], 2.0 * -0.5 / sqrt(1.25 + 1e-6), 1e-6);
  CHECK_CLOSE(out[3], 1.5 / sqrt(1.25 + 1e-6) + 10.0, 1e-6);
}

typedef struct { float *out, *mean, *rstd, *inp, *w, *b, *R; int64_t N, C; float eps; } ln_ctx;
static double ln_obj(void *p) {
  ln_ctx *c = p;
  dama_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, c->eps);
  return dot_r(c->out, c->R, c->N * c->C);
}

DAMA_TEST(layernorm_backward_gradcheck) {
  for (int affine = 0; affine < 2; affine++) {
    ln_ctx c = {0};
    c.N = 5; c.C = 67; c.eps = 1e-5f;
    c.inp = rnd(c.N * c.C, 2); c.out = zeros(c.N * c.C); c.R = rnd(c.N * c.C, 1);
    c.mean = zeros(c.N); c.rstd = zeros(c.N);
    if (affine) { c.w = rnd(c.C, 1); c.b = rnd(c.C, 1); }
    ln_obj(&c);
    float *dinp = zeros(c.N * c.C), *dw = zeros(c.C), *db = zeros(c.C);
    CHECK_OK(dama_layernorm_backward(dinp, affine ? dw : NULL, affine ? db : NULL, c.R, c.inp, c.w, c.mean, c.rstd,
                                     c.N, c.C));
    CHECK(gradcheck(c.inp, c.N * c.C, dinp, ln_obj, &c, 1e-2f) < GRAD_TOL);
    if (affine) {
      CHECK(gradcheck(c.w, c.C, dw, ln_obj, &c, 1e-2f) < GRAD_TOL);
      CHECK(gradcheck(c.b, c.C, db, ln_obj, &c, 1e-2f) < GRAD_TOL);
    }
    free(c.inp); free(c.out); free(c.R); free(c.mean); free(c.rstd); free(c.w); free(c.b);
    free(dinp); free(dw); free(db);
  }
}

/* ---------------- activations ---------------- */
DAMA_TEST(gelu_known_values_and_accuracy) {
  float x[3] = {1.0f, -1.0f, 0.0f}, y[3];
  CHECK_OK(dama_gelu_forward(y, x, 3));
  CHECK_CLOSE(y[0], 0.8413447, 2e-7);
  CHECK_CLOSE(y[1], -0.1586553, 2e-7);
  CHECK(y[2] == 0.0f);
  const int64_t n = 4001;
  float *xs = zeros(n), *ys = zeros(n);
  for (int64_t i = 0; i < n; i++) xs[i] = -20.0f + 40.0f * (float)i / (float)(n - 1);
  CHECK_OK(dama_gelu_forward(ys, xs, n));
  double worst = 0.0;
  for (int64_t i = 0; i < n; i++) {
    double ref = 0.5 * xs[i] * (1.0 + erf(xs[i] / sqrt(2.0)));
    worst = fmax(worst, fabs(ys[i] - ref) / fmax(1.0, fabs(ref)));
  }
  CHECK_MSG(worst < 1e-6, "gelu max error %g", worst);
  free(xs); free(ys);
}

typedef struct { int which; float *out, *inp, *R, *mask; int64_t n, N, C; } act_ctx;
static double act_obj(void *p) {
  act_ctx *c = p;
  switch (c->which) {
    case 0: dama_gelu_forward(c->out, c->inp, c->n); break;
    case 1: dama_relu_forward(c->out, c->inp, c->n); break;
    case 2: dama_softmax_forward(c->out, c->inp, c->N, c->C); break;
    case 3: dama_dropout_forward(c->out, c->inp, c->mask, 1.25f, c->n); break;
    case 4: dama_drop_path_forward(c->out, c->inp, c->mask, 2.0f, c->N, c->C); break;
  }
  return dot_r(c->out, c->R, c->n);
}

DAMA_TEST(activations_gradcheck) {
  for (int which = 0; which < 5; which++) {
    act_ctx c = {0};
    c.which = which; c.N = 4; c.C = 37; c.n = c.N * c.C;
    c.inp = rnd(c.n, 3); c.out = zeros(c.n); c.R = rnd(c.n, 1); c.mask = zeros(c.n);
    for (int64_t i = 0; i < c.n; i++) {
      c.mask[i] = frand() > -0.4f ? 1.0f : 0.0f;
      if (which == 1 && fabsf(c.inp[i]) < 0.05f) c.inp[i] = 0.5f; /* keep away from the kink */
    }
    act_obj(&c);
    float *d = zeros(c.n);
    switch (which) {
      case 0: CHECK_OK(dama_gelu_backward(d, c.inp, c.R, c.n)); break;
      case 1: CHECK_OK(dama_relu_backward(d, c.out, c.R, c.n)); break;
      case 2: CHECK_OK(dama_softmax_backward(d, c.out, c.R, c.N, c.C)); break;
      case 3: CHECK_OK(dama_dropout_backward(d, c.R, c.mask, 1.25f, c.n)); break;
      case 4: CHECK_OK(dama_drop_path_backward(d, c.R, c.mask, 2.0f, c.N, c.C)); break;
    }
    double err = gradcheck(c.inp, c.n, d, act_obj, &c, 1e-2f);
    CHECK_MSG(err < GRAD_TOL, "activation %d: gradient error %g", which, err);
    free(c.inp); free(c.out); free(c.R); free(c.mask); free(d);
  }
}

DAMA_TEST(softmax_rows_sum_to_one_and_are_stable) {
  float x[6] = {1000.0f, 1001.0f, 999.0f, -5.0f, 0.0f, 5.0f}, y[6];
  CHECK_OK(dama_softmax_forward(y, x, 2, 3));
  CHECK_CLOSE(y[0] + y[1] + y[2], 1.0, 1e-6);
  CHECK_CLOSE(y[1], exp(1.0) / (1.0 + exp(1.0) + exp(-1.0)), 1e-6);
  CHECK_CLOSE(y[5], exp(5.0) / (exp(-5.0) + 1.0 + exp(5.0)), 1e-6);
}

DAMA_TEST(dropout_masks) {
  float x[4] = {1, 2, 3, 4}, m[4] = {1, 0, 1, 0}, y[4], d[4] = {0};
  uint8_t mu[4] = {0, 1, 1, 0};
  CHECK_OK(dama_dropout_forward(y, x, m, 2.0f, 4));
  CHECK(y[0] == 2.0f && y[1] == 0.0f && y[2] == 6.0f);
  CHECK_OK(dama_dropout_u8_forward(y, x, mu, 2.0f, 4));
  CHECK(y[0] == 0.0f && y[1] == 4.0f && y[3] == 0.0f);
  CHECK_OK(dama_dropout_u8_backward(d, x, mu, 2.0f, 4));
  CHECK(d[0] == 0.0f && d[2] == 6.0f);
  float pm[2] = {0, 1};
  CHECK_OK(dama_drop_path_forward(y, x, pm, 3.0f, 2, 2));
  CHECK(y[0] == 0.0f && y[1] == 0.0f && y[2] == 9.0f && y[3] == 12.0f);
}

/* ---------------- attention ---------------- */
/* naive double reference of the forward */
static void attention_ref(double *out, const float *qkv, int64_t B, int64_t T, int64_t C, int64_t NH, double scale) {
  int64_t hd = C / NH;
  double *s = malloc(sizeof(double) * (size_t)T);
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < NH; h++)
      for (int64_t i = 0; i < T; i++) {
        double mx = -1e300, sum = 0.0;
        for (int64_t j = 0; j < T; j++) {
          double d = 0.0;
          for (int64_t k = 0; k < hd; k++)
            d += (double)qkv[(b * T + i) * 3 * C + h * hd + k] * qkv[(b * T + j) * 3 * C + C + h * hd + k];
          s[j] = d * scale;
          mx = fmax(mx, s[j]);
        }
        for (int64_t j = 0; j < T; j++) { s[j] = exp(s[j] - mx); sum += s[j]; }
        for (int64_t k = 0; k < hd; k++) {
          double o = 0.0;
          for (int64_t j = 0; j < T; j++) o += s[j] / sum * qkv[(b * T + j) * 3 * C + 2 * C + h * hd + k];
          out[(b * T + i) * C + h * hd + k] = o;
        }
      }
  free(s);
}

typedef struct { float *out, *att, *qkv, *R; int64_t B, T, C, NH; float scale; } att_ctx;
static double att_obj(void *p) {
  att_ctx *c = p;
  dama_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->NH, c->scale);
  return dot_r(c->out, c->R, c->B * c->T * c->C);
}

/* naive double reference of the backward: dqkv = d(sum out * R)/d qkv */
static void attention_bwd_ref(double *dqkv, const float *R, const float *qkv, int64_t B, int64_t T, int64_t C,
                              int64_t NH, double scale) {
  int64_t hd = C / NH, C3 = 3 * C;
  double *p = malloc(sizeof(double) * (size_t)T), *dp = malloc(sizeof(double) * (size_t)T);
  for (int64_t i = 0; i < B * T * C3; i++) dqkv[i] = 0.0;
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < NH; h++)
      for (int64_t i = 0; i < T; i++) {
        const float *q = qkv + (b * T + i) * C3 + h * hd, *g = R + (b * T + i) * C + h * hd;
        double mx = -1e300, sum = 0.0, s = 0.0;
        for (int64_t j = 0; j < T; j++) {
          const float *k = qkv + (b * T + j) * C3 + C + h * hd;
          double d = 0.0;
          for (int64_t c = 0; c < hd; c++) d += (double)q[c] * k[c];
          p[j] = d * scale;
          mx = fmax(mx, p[j]);
        }
        for (int64_t j = 0; j < T; j++) { p[j] = exp(p[j] - mx); sum += p[j]; }
        for (int64_t j = 0; j < T; j++) {
          const float *v = qkv + (b * T + j) * C3 + 2 * C + h * hd;
          p[j] /= sum;
          dp[j] = 0.0;
          for (int64_t c = 0; c < hd; c++) { dp[j] += (double)g[c] * v[c]; dqkv[(b * T + j) * C3 + 2 * C + h * hd + c] += p[j] * g[c]; }
          s += p[j] * dp[j];
        }
        for (int64_t j = 0; j < T; j++) {
          double ds = p[j] * (dp[j] - s) * scale;
          const float *k = qkv + (b * T + j) * C3 + C + h * hd;
          for (int64_t c = 0; c < hd; c++) {
            dqkv[(b * T + i) * C3 + h * hd + c] += ds * k[c];
            dqkv[(b * T + j) * C3 + C + h * hd + c] += ds * q[c];
          }
        }
      }
  free(p); free(dp);
}

/* forward and backward against the double references, for the workload's shapes (hd 32/64, T 13/65)
 * and for odd head dims and long sequences that take the remainder and tiling paths */
DAMA_TEST(attention_matches_reference) {
  const int64_t cases[][4] = {{2, 13, 24, 3}, {2, 13, 64, 2}, {1, 65, 128, 2}, {2, 37, 96, 3}, {1, 300, 128, 2},
                              {1, 5, 12, 2}};
  for (size_t cs = 0; cs < sizeof cases / sizeof cases[0]; cs++) {
    const int64_t B = cases[cs][0], T = cases[cs][1], C = cases[cs][2], NH = cases[cs][3], n = B * T * 3 * C;
    float *qkv = rnd(n, 1.5f), *out = zeros(B * T * C), *att = zeros(B * NH * T * T), *R = rnd(B * T * C, 1);
    float *dqkv = rnd(n, 1); /* nonzero: the backward accumulates */
    float *dqkv0 = malloc(sizeof(float) * (size_t)n);
    memcpy(dqkv0, dqkv, sizeof(float) * (size_t)n);
    double *ref = malloc(sizeof(double) * (size_t)(B * T * C)), *dref = malloc(sizeof(double) * (size_t)n);
    double scale = 1.0 / sqrt((double)(C / NH));
    CHECK_OK(dama_attention_forward(out, att, qkv, B, T, C, NH, 0.0f)); /* default scale hd^-0.5 */
    attention_ref(ref, qkv, B, T, C, NH, scale);
    double worst = 0.0, dworst = 0.0, rowsum = 0.0;
    for (int64_t i = 0; i < B * T * C; i++) worst = fmax(worst, fabs(out[i] - ref[i]));
    for (int64_t j = 0; j < T; j++) rowsum += att[(B * NH - 1) * T * T + (T / 2) * T + j];
    CHECK_OK(dama_attention_backward(dqkv, R, qkv, att, B, T, C, NH, 0.0f));
    attention_bwd_ref(dref, R, qkv, B, T, C, NH, scale);
    for (int64_t i = 0; i < n; i++) dworst = fmax(dworst, fabs(dqkv[i] - dqkv0[i] - dref[i]));
    free(qkv); free(out); free(att); free(R); free(dqkv); free(dqkv0); free(ref); free(dref);
    CHECK_MSG(worst < 1e-5, "case %zu: attention forward error %g", cs, worst);
    CHECK_MSG(dworst < 1e-4, "case %zu: attention backward error %g", cs, dworst);
    CHECK_CLOSE(rowsum, 1.0, 1e-5);
  }
}

DAMA_TEST(attention_backward_gradcheck) {
  for (int shape = 0; shape < 2; shape++) {
  att_ctx c = {0};
  c.B = 2; c.T = shape ? 6 : 5; c.C = shape ? 32 : 12; c.NH = 2; c.scale = 0.3f;
  int64_t nqkv = c.B * c.T * 3 * c.C;
  c.qkv = rnd(nqkv, 1); c.out = zeros(c.B * c.T * c.C); c.att = zeros(c.B * c.NH * c.T * c.T);
  c.R = rnd(c.B * c.T * c.C, 1);
  att_obj(&c);
  float *dqkv = zeros(nqkv);
  CHECK_OK(dama_attention_backward(dqkv, c.R, c.qkv, c.att, c.B, c.T, c.C, c.NH, c.scale));
  /* check every entry: q, k and v parts */
  double worst = 0.0;
  for (int64_t i = 0; i < nqkv; i++) {
    float keep = c.qkv[i];
    c.qkv[i] = keep + 1e-2f; double fp = att_obj(&c);
    c.qkv[i] = keep - 1e-2f; double fm = att_obj(&c);
    c.qkv[i] = keep;
    double num = (fp - fm) / 2e-2;
    worst = fmax(worst, fabs(num - dqkv[i]) / fmax(1.0, fabs(num)));
  }
  CHECK_MSG(worst < GRAD_TOL, "attention gradient error %g", worst);
  CHECK_STATUS(dama_attention_forward(c.out, c.att, c.qkv, 2, 5, 12, 5, 0.0f), DAMA_ERR_ARG); /* C % NH */
  CHECK_STATUS(dama_attention_backward(dqkv, c.R, c.qkv, c.att, 0, 5, 12, 2, 0.0f), DAMA_ERR_ARG);
  free(c.qkv); free(c.out); free(c.att); free(c.R); free(dqkv);
  }
}

/* ---------------- patches ---------------- */
DAMA_TEST(patchify_layout_and_roundtrip) {
  const int64_t N = 2, C = 3, H = 4, W = 6, p = 2, L = 6, P = p * p * C;
  float *img = rnd(N * C * H * W, 1), *pat = zeros(N * L * P), *back = zeros(N * C * H * W);
  CHECK_OK(dama_patchify(pat, img, N, C, H, W, p));
  /* patch (gy=1, gx=2) of sample 1, element (i=1, j=0, c=2) */
  int64_t n = 1, gy = 1, gx = 2, i = 1, j = 0, c = 2;
  CHECK(pat[(n * L + gy * 3 + gx) * P + (i * p + j) * C + c] == img[((n * C + c) * H + gy * p + i) * W + gx * p + j]);
  CHECK_OK(dama_unpatchify(back, pat, N, C, H, W, p));
  CHECK(max_abs_diff(back, img, N * C * H * W) == 0.0);
  CHECK_STATUS(dama_patchify(pat, img, N, C, 5, W, p), DAMA_ERR_ARG);
  free(img); free(pat); free(back);
}

typedef struct { float *out, *col, *img, *w, *b, *R; int64_t N, C, H, W, p, D; } pe_ctx;
static double pe_obj(void *q) {
  pe_ctx *c = q;
  dama_patch_embed_forward(c->out, c->col, c->img, c->w, c->b, c->N, c->C, c->H, c->W, c->p, c->D);
  return dot_r(c->out, c->R, c->N * (c->H / c->p) * (c->W / c->p) * c->D);
}

DAMA_TEST(patch_embed_matches_conv_and_gradcheck) {
  pe_ctx c = {0};
  c.N = 2; c.C = 3; c.H = 4; c.W = 6; c.p = 2; c.D = 5;
  int64_t L = (c.H / c.p) * (c.W / c.p), K = c.C * c.p * c.p, nimg = c.N * c.C * c.H * c.W;
  c.img = rnd(nimg, 1); c.w = rnd(c.D * K, 1); c.b = rnd(c.D, 1);
  c.out = zeros(c.N * L * c.D); c.col = zeros(c.N * L * K); c.R = rnd(c.N * L * c.D, 1);
  CHECK_OK(dama_patch_embed_forward(c.out, c.col, c.img, c.w, c.b, c.N, c.C, c.H, c.W, c.p, c.D));
  /* direct convolution: out[n, gy*gw+gx, d] = b[d] + sum_{c,i,j} w[d, c, i, j] img[n, c, gy*p+i, gx*p+j] */
  double worst = 0.0;
  for (int64_t n = 0; n < c.N; n++)
    for (int64_t gy = 0; gy < 2; gy++)
      for (int64_t gx = 0; gx < 3; gx++)
        for (int64_t d = 0; d < c.D; d++) {
          double s = c.b[d];
          for (int64_t ch = 0; ch < c.C; ch++)
            for (int64_t i = 0; i < c.p; i++)
              for (int64_t j = 0; j < c.p; j++)
                s += (double)c.w[((d * c.C + ch) * c.p + i) * c.p + j] *
                     c.img[((n * c.C + ch) * c.H + gy * c.p + i) * c.W + gx * c.p + j];
          worst = fmax(worst, fabs(s - c.out[(n * L + gy * 3 + gx) * c.D + d]));
        }
  CHECK_MSG(worst < 1e-5, "patch embed error %g", worst);
  float *dimg = zeros(nimg), *dw = zeros(c.D * K), *db = zeros(c.D), *scratch = zeros(c.N * L * K);
  CHECK_OK(dama_patch_embed_backward(dimg, dw, db, c.R, c.col, c.w, scratch, c.N, c.C, c.H, c.W, c.p, c.D));
  CHECK(gradcheck(c.img, nimg, dimg, pe_obj, &c, 1e-2f) < GRAD_TOL);
  CHECK(gradcheck(c.w, c.D * K, dw, pe_obj, &c, 1e-2f) < GRAD_TOL);
  CHECK(gradcheck(c.b, c.D, db, pe_obj, &c, 1e-2f) < GRAD_TOL);
  CHECK_STATUS(dama_patch_embed_backward(dimg, dw, db, c.R, c.col, c.w, NULL, c.N, c.C, c.H, c.W, c.p, c.D),
               DAMA_ERR_ARG);
  free(c.img); free(c.w); free(c.b); free(c.out); free(c.col); free(c.R); free(dimg); free(dw); free(db); free(scratch);
}

DAMA_TEST(pos_embed_sincos_formula) {
  const int64_t D = 16, gh = 3, gw = 4, F = D / 4;
  float *e = zeros((1 + gh * gw) * D);
  CHECK_OK(dama_pos_embed_2d_sincos(e, D, gh, gw, 1));
  for (int64_t k = 0; k < D; k++) CHECK(e[k] == 0.0f);
  for (int64_t r = 0; r < gh; r++)
    for (int64_t c = 0; c < gw; c++)
      for (int64_t k = 0; k < F; k++) {
        const float *row = e + (1 + r * gw + c) * D;
        double w = pow(10000.0, -(double)k / (double)F);
        CHECK_CLOSE(row[k], sin(c * w), 1e-6);
        CHECK_CLOSE(row[F + k], cos(c * w), 1e-6);
        CHECK_CLOSE(row[2 * F + k], sin(r * w), 1e-6);
        CHECK_CLOSE(row[3 * F + k], cos(r * w), 1e-6);
      }
  /* token (row 2, col 1), k = 1: w_1 = 10000^(-1/4) = 0.1 */
  CHECK_CLOSE(e[(1 + 2 * gw + 1) * D + 1], sin(0.1), 1e-6);
  CHECK_CLOSE(e[(1 + 2 * gw + 1) * D + 2 * F + 1], sin(0.2), 1e-6);
  CHECK_OK(dama_pos_embed_2d_sincos(e, D, gh, gw, 0));
  CHECK(e[0] == 0.0f && e[F] == 1.0f); /* token 0: sin 0, cos 0 */
  CHECK_STATUS(dama_pos_embed_2d_sincos(e, 18, gh, gw, 0), DAMA_ERR_ARG);
  free(e);
}

DAMA_TEST(nn_kernels_validate_sizes) {
  float a[8] = {0}, b[8] = {0}, c[8] = {0}, d[8] = {0};
  CHECK_STATUS(dama_linear_forward(a, b, c, NULL, 0, 1, 1), DAMA_ERR_ARG);
  CHECK_STATUS(dama_linear_forward(a, b, c, NULL, 1, -1, 1), DAMA_ERR_ARG);
  CHECK_STATUS(dama_linear_forward(NULL, b, c, NULL, 1, 1, 1), DAMA_ERR_ARG);
  CHECK_STATUS(dama_layernorm_forward(a, b, c, d, NULL, NULL, 1, 0, 1e-5f), DAMA_ERR_ARG);
  CHECK_STATUS(dama_layernorm_backward(a, NULL, NULL, b, c, NULL, d, d, -2, 4), DAMA_ERR_ARG);
  CHECK_STATUS(dama_gelu_forward(a, b, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_gelu_backward(a, b, c, -1), DAMA_ERR_ARG);
  CHECK_STATUS(dama_relu_forward(a, b, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_relu_backward(a, b, c, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_softmax_forward(a, b, 0, 3), DAMA_ERR_ARG);
  CHECK_STATUS(dama_softmax_backward(a, b, c, 3, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_dropout_forward(a, b, c, 1.0f, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_drop_path_backward(a, b, c, 1.0f, 1, 0), DAMA_ERR_ARG);
  CHECK_STATUS(dama_attention_forward(a, b, c, 1, 0, 4, 2, 0.0f), DAMA_ERR_ARG);
  CHECK_STATUS(dama_patch_embed_forward(a, b, c, d, NULL, 1, 1, 2, 2, 0, 1), DAMA_ERR_ARG);
  CHECK_STATUS(dama_unpatchify(a, b, 1, 1, 3, 2, 2), DAMA_ERR_ARG);
  CHECK_STATUS(dama_pos_embed_2d_sincos(a, 0, 1, 1, 0), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "pos_embed_2d_sincos") != NULL);
}

/* The row kernels give bit-identical results for any thread count (no reductions across threads). */
DAMA_TEST(kernels_independent_of_thread_count) {
  const int64_t N = 37, C = 96, B = 2, T = 13, NH = 3;
  float *x = rnd(N * C, 2), *g = rnd(N * C, 1), *w = rnd(C, 1), *bb = rnd(C, 1), *qkv = rnd(B * T * 3 * C, 1);
  float *res[2][6];
  int saved = dama_get_num_threads();
  for (int run = 0; run < 2; run++) {
    dama_set_num_threads(run ? 2 : 1);
    float *y = zeros(N * C), *m = zeros(N), *r = zeros(N), *dx = zeros(N * C), *dw = zeros(C), *db = zeros(C);
    float *out = zeros(B * T * C), *att = zeros(B * NH * T * T), *dqkv = zeros(B * T * 3 * C);
    dama_layernorm_forward(y, m, r, x, w, bb, N, C, 1e-6f);
    dama_layernorm_backward(dx, dw, db, g, x, w, m, r, N, C);
    dama_attention_forward(out, att, qkv, B, T, C, NH, 0.0f);
    dama_attention_backward(dqkv, out, qkv, att, B, T, C, NH, 0.0f);
    float *dlin = zeros(C);
    dama_linear_backward(NULL, NULL, dlin, g, NULL, NULL, N, C, C);
    res[run][0] = dx; res[run][1] = dw; res[run][2] = db; res[run][3] = dqkv; res[run][4] = dlin; res[run][5] = y;
    free(m); free(r); free(out); free(att);
  }
  dama_set_num_threads(saved);
  const int64_t sizes[6] = {N * C, C, C, B * T * 3 * C, C, N * C};
  int same = 1;
  for (int k = 0; k < 6; k++) {
    if (memcmp(res[0][k], res[1][k], sizeof(float) * (size_t)sizes[k]) != 0) same = 0;
    free(res[0][k]); free(res[1][k]);
  }
  free(x); free(g); free(w); free(bb); free(qkv);
  CHECK(same);
}
