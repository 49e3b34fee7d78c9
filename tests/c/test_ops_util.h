/* Small helpers shared by the op tests (tests/c/test_ops_*.c). */
#ifndef TEST_OPS_UTIL_H
#define TEST_OPS_UTIL_H

#include "dama_test.h"
#include <stdlib.h>
#include <string.h>

static const dama_dtype ALL_DTYPES[8] = {DAMA_F32, DAMA_F64, DAMA_BF16, DAMA_F16, DAMA_U8, DAMA_U16, DAMA_I32, DAMA_I64};

/* A new tensor of dtype from row-major doubles (NULL on failure, message printed). */
static inline dama_tensor *mk(dama_dtype dt, int32_t nd, const int64_t *shape, const double *vals) {
  dama_tensor *t = NULL;
  if (dama_from_buffer(&t, nd, shape, dt, vals, DAMA_F64, (dama_device){DAMA_CPU, 0}) != DAMA_OK) {
    fprintf(stderr, "mk: %s\n", dama_last_error());
    return NULL;
  }
  return t;
}

/* Element i (row-major over the logical shape) as double. */
static inline double at(const dama_tensor *t, int64_t i) {
  int64_t idx[8];
  for (int32_t d = t->ndim - 1; d >= 0; d--) { idx[d] = i % t->shape[d]; i /= t->shape[d]; }
  double v = NAN;
  dama_get(t, idx, &v);
  return v;
}

static inline int shape_is(const dama_tensor *t, int32_t nd, const int64_t *shape) {
  if (t->ndim != nd) return 0;
  for (int32_t i = 0; i < nd; i++) if (t->shape[i] != shape[i]) return 0;
  return 1;
}

/* Compare all elements with expected (NaN matches NaN). Returns the first bad index or -1. */
static inline int64_t first_mismatch(const dama_tensor *t, const double *expect, double tol) {
  int64_t n = dama_numel(t);
  for (int64_t i = 0; i < n; i++) {
    double v = at(t, i), e = expect[i];
    if (isnan(e) && isnan(v)) continue;
    if (isinf(e) && v == e) continue;
    if (!(fabs(v - e) <= tol * (1.0 + fabs(e)))) {
      fprintf(stderr, "    element %lld: got %.9g, expected %.9g\n", (long long)i, v, e);
      return i;
    }
  }
  return -1;
}

#define CHECK_VALUES(t, expect, tol) CHECK_MSG(first_mismatch((t), (expect), (tol)) < 0, "values of %s differ", #t)
#define CHECK_ERRMSG(substr) \
  CHECK_MSG(strstr(dama_last_error(), (substr)) != NULL, "message '%s' lacks '%s'", dama_last_error(), (substr))

/* Deterministic pseudo-random doubles in [lo, hi). */
static inline void fill_rand(double *v, int64_t n, uint64_t seed, double lo, double hi) {
  uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
  for (int64_t i = 0; i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    v[i] = lo + (hi - lo) * (double)(s >> 11) / 9007199254740992.0;
  }
}

static inline double tol_of(dama_dtype t) {
  return t == DAMA_BF16 ? 1e-2 : t == DAMA_F16 ? 2e-3 : t == DAMA_F32 ? 1e-5 : t == DAMA_F64 ? 1e-12 : 0;
}

#endif
