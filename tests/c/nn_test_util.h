/* Helpers shared by the nn kernel tests: a seeded float generator, buffers, and central-difference
 * gradient checks. Define NN_TEST_SEED before including (each test file keeps its own stream). */
#ifndef NN_TEST_UTIL_H
#define NN_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static uint64_t rng_state = NN_TEST_SEED;
static float frand(void) { /* uniform in [-1, 1) */
  rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static float *rnd(int64_t n, float scale) {
  float *p = malloc(sizeof(float) * (n > 0 ? (size_t)n : 1));
  for (int64_t i = 0; i < n; i++) p[i] = scale * frand();
  return p;
}
static float *zeros(int64_t n) { return calloc(n > 0 ? (size_t)n : 1, sizeof(float)); }

/* Central differences of a scalar objective f(ctx) (computed in double) against analytic[i], on up to
 * 60 evenly spaced entries of x; returns the worst relative error. */
typedef double (*objective_fn)(void *ctx);
static double gradcheck(float *x, int64_t n, const float *analytic, objective_fn f, void *ctx, float h) {
  double worst = 0.0;
  int64_t stride = n > 60 ? n / 60 : 1;
  for (int64_t i = 0; i < n; i += stride) {
    float keep = x[i];
    x[i] = keep + h;
    double fp = f(ctx);
    x[i] = keep - h;
    double fm = f(ctx);
    x[i] = keep;
    double num = (fp - fm) / (2.0 * (double)h);
    double err = fabs(num - (double)analytic[i]) / fmax(1.0, fmax(fabs(num), fabs((double)analytic[i])));
    if (err > worst) worst = err;
  }
  return worst;
}

#endif
