/* Philox4x32-10 counter-based RNG (Salmon et al., SC'11). A draw is a pure function of
 * (seed, counter), so CPU threads, GPU threads and resumed runs all see the same stream. */
#include "core/dama_internal.h"
#include "core/backend.h"
#include "core/dama_math.h"
#include <math.h>

static dama_rng default_rng = {0, 0};

dama_rng *dama_default_rng(void) { return &default_rng; }

void dama_manual_seed(uint64_t seed) { default_rng.seed = seed; default_rng.offset = 0; }

/* The round function and the bits -> value transforms are core/dama_math.h's, shared with the CUDA kernels. */
void dama_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]) {
  dama_philox4x32_10(key, counter_hi, counter_lo, out);
}

/* Element i of a fill uses counter (offset + i/4), lane i%4; the generator then advances by the
 * number of blocks used, so consecutive fills never overlap. */
typedef double (*draw_fn)(const uint32_t *lanes, int lane, double a, double b);

static dama_status fill_random(const char *op, dama_tensor *t, dama_rng *rng, int per_elem, double a, double b,
                               draw_fn draw) {
  if (!rng) rng = &default_rng;
  int64_t n = dama_numel(t);
  int64_t nblocks = (n * per_elem + 3) / 4;
  dama_tensor *tmp = NULL;
  DAMA_TRY(dama_empty(&tmp, t->ndim, t->shape, DAMA_F64, t->storage->device));
  double *d = (double *)dama_kernel_ptr(tmp);
  uint64_t base = rng->offset;
#pragma omp parallel for if (n > 65536) schedule(static)
  for (int64_t blk = 0; blk < nblocks; blk++) {
    uint32_t lanes[4];
    dama_philox4x32_10(rng->seed, 0, base + (uint64_t)blk, lanes);
    for (int l = 0; l + per_elem <= 4; l += per_elem) {
      int64_t i = (blk * 4 + l) / per_elem;
      if (i < n) d[i] = draw(lanes, l, a, b);
    }
  }
  rng->offset += (uint64_t)nblocks;
  dama_status s = dama_copy_(t, tmp);
  dama_tensor_release(tmp);
  (void)op;
  return s;
}

static double draw_uniform(const uint32_t *x, int l, double lo, double hi) { return dama_rng_uniform(x[l], lo, hi); }
static double draw_normal(const uint32_t *x, int l, double mean, double std) {
  return dama_rng_normal(x[l], x[l + 1], mean, std);
}
static double draw_int(const uint32_t *x, int l, double lo, double hi) { return dama_rng_int(x[l], x[l + 1], lo, hi); }

dama_status dama_cpu_uniform_(dama_tensor *t, double lo, double hi, dama_rng *rng) {
  if (!dama_dtype_is_float((dama_dtype)t->dtype))
    return dama_error(DAMA_ERR_DTYPE, "uniform_: expected a float tensor, got %s", dama_dtype_name((dama_dtype)t->dtype));
  if (!(hi >= lo)) return dama_error(DAMA_ERR_ARG, "uniform_: expected lo <= hi, got [%g, %g)", lo, hi);
  return fill_random("uniform_", t, rng, 1, lo, hi, draw_uniform);
}

dama_status dama_cpu_normal_(dama_tensor *t, double mean, double std, dama_rng *rng) {
  if (!dama_dtype_is_float((dama_dtype)t->dtype))
    return dama_error(DAMA_ERR_DTYPE, "normal_: expected a float tensor, got %s", dama_dtype_name((dama_dtype)t->dtype));
  if (!(std >= 0)) return dama_error(DAMA_ERR_ARG, "normal_: std must be >= 0, got %g", std);
  return fill_random("normal_", t, rng, 2, mean, std, draw_normal);
}

dama_status dama_cpu_randint_(dama_tensor *t, int64_t lo, int64_t hi, dama_rng *rng) {
  if (hi <= lo) return dama_error(DAMA_ERR_ARG, "randint: expected low < high, got [%lld, %lld)", (long long)lo, (long long)hi);
  return fill_random("randint_", t, rng, 2, (double)lo, (double)hi, draw_int);
}

dama_status dama_randperm(dama_tensor **out, int64_t n, dama_dtype dtype, dama_rng *rng, dama_device dev) {
  *out = NULL;
  if (!rng) rng = &default_rng;
  if (n < 0) return dama_error(DAMA_ERR_ARG, "randperm: n must be >= 0, got %lld", (long long)n);
  if (n > INT64_MAX / 8 - 1) /* n * 8 + 8 below would wrap to a tiny allocation */
    return dama_error(DAMA_ERR_SHAPE, "randperm: n = %lld is more than 2^60 - 1, the most a tensor can hold",
                      (long long)n);
  int64_t *p = dama_alloc_bytes(n * 8 + 8);
  if (!p) return dama_error(DAMA_ERR_OOM, "randperm: out of memory for n = %lld", (long long)n);
  for (int64_t i = 0; i < n; i++) p[i] = i;
  /* Fisher–Yates, one 64-bit draw (two lanes) per swap. */
  for (int64_t i = n - 1; i > 0; i--) {
    uint32_t x[4];
    dama_philox4x32_10(rng->seed, 1, rng->offset + (uint64_t)i / 2, x);
    int l = (int)(i % 2) * 2;
    uint64_t r = ((uint64_t)x[l] << 32) | x[l + 1];
    int64_t j = (int64_t)(r % (uint64_t)(i + 1));
    int64_t tmp = p[i]; p[i] = p[j]; p[j] = tmp;
  }
  rng->offset += (uint64_t)(n / 2 + 1);
  dama_status s = dama_from_buffer(out, 1, &n, dtype, p, DAMA_I64, dev);
  dama_free_bytes(p, n * 8 + 8);
  return s;
}

