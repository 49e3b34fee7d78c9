/* Private helpers shared by augment.c, loader.c, synth.c and cells.c. Not part of the public API. */
#ifndef DAMA_DATA_INTERNAL_H
#define DAMA_DATA_INTERNAL_H

#include "core/dama_internal.h"
#include <math.h>

/* Domain constants xor-ed into the Philox key so that augmentation, shuffling and the synthetic
 * generator never share a stream with each other (or with masking) for the same seed. */
#define DAMA_KEY_AUG 0x6175672d64616d61ull     /* "aug-dama" */
#define DAMA_KEY_SHUFFLE 0x73687566666c6521ull /* "shuffle!" */
#define DAMA_KEY_SYNTH 0x73796e7468657469ull   /* "syntheti" */

/* A sequential reader of one Philox stream (key, counter_hi, counter_lo + block...). */
typedef struct dama_prng {
  uint64_t key, hi, lo;
  uint32_t buf[4];
  int used;
} dama_prng;

static inline void dama_prng_init(dama_prng *r, uint64_t key, uint64_t hi, uint64_t lo) {
  r->key = key; r->hi = hi; r->lo = lo; r->used = 4;
}
static inline uint32_t dama_prng_u32(dama_prng *r) {
  if (r->used == 4) { dama_philox4x32(r->key, r->hi, r->lo++, r->buf); r->used = 0; }
  return r->buf[r->used++];
}
/* Uniform double in [0, 1) with 53 random bits. */
static inline double dama_prng_double(dama_prng *r) {
  uint32_t a = dama_prng_u32(r) >> 5, b = dama_prng_u32(r) >> 6;
  return (a * 67108864.0 + b) * (1.0 / 9007199254740992.0);
}
/* Uniform float in [0, 1) with 24 bits. */
static inline float dama_prng_float(dama_prng *r) { return (float)(dama_prng_u32(r) >> 8) * (1.0f / 16777216.0f); }
/* Uniform integer in [0, n) (multiply-shift; bias < n / 2^32). */
static inline uint32_t dama_prng_below(dama_prng *r, uint32_t n) {
  return (uint32_t)(((uint64_t)dama_prng_u32(r) * n) >> 32);
}
/* Standard normal (Box-Muller). */
static inline double dama_prng_normal(dama_prng *r) {
  double u = 1.0 - dama_prng_double(r), v = dama_prng_double(r);
  return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Free this thread's augmentation scratch memory (loader workers call it before exiting). */
void dama_aug_thread_cleanup(void);
/* Free this thread's synthetic-crop scratch memory. */
void dama_synth_thread_cleanup(void);

#endif
