/* Masking for MAE / DAMA (runtime/api/mask.h): random masking, the adaptive mask of Algorithm 1 (per-sample
 * rule and the reference's batch-union code), ids from any 0/1 mask, token gather / unshuffle.
 *
 * Masks are small (N x L, L = 64 for the paper's config), so sorting is a plain per-row merge sort on
 * indices keyed by (value, index): ties resolve to the lower index, i.e. the stable ascending order the
 * reference fixtures use. Rows run in parallel once the batch is large enough to pay for threads. */
#include "core/dama_internal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MASK_OMP_MIN 8192 /* elements below which a loop runs on one thread */

/* ---------------------------------------------------------------- sorting */

/* a before b: ascending, NaN after every number (torch.sort), ties by lower index. */
static inline int key_before(float a, int64_t ia, float b, int64_t ib) {
  int na = isnan(a), nb = isnan(b);
  if (na || nb) return (na && nb) ? ia < ib : nb;
  if (a < b) return 1;
  if (b < a) return 0;
  return ia < ib;
}

static void insertion_sort(int64_t *idx, int64_t lo, int64_t hi, const float *key) {
  for (int64_t i = lo + 1; i < hi; i++) {
    int64_t v = idx[i], j = i;
    while (j > lo && key_before(key[v], v, key[idx[j - 1]], idx[j - 1])) { idx[j] = idx[j - 1]; j--; }
    idx[j] = v;
  }
}

/* idx[0..n) = the indices 0..n-1 of key sorted stably ascending; tmp holds n entries of scratch. */
static void argsort_row(int64_t *idx, int64_t *tmp, const float *key, int64_t n) {
  const int64_t run = 16;
  for (int64_t i = 0; i < n; i++) idx[i] = i;
  for (int64_t lo = 0; lo < n; lo += run) insertion_sort(idx, lo, lo + run < n ? lo + run : n, key);
  int64_t *src = idx, *dst = tmp;
  for (int64_t w = run; w < n; w *= 2) {
    for (int64_t lo = 0; lo < n; lo += 2 * w) {
      int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
      int64_t a = lo, b = mid, o = lo;
      while (a < mid && b < hi) dst[o++] = key_before(key[src[b]], src[b], key[src[a]], src[a]) ? src[b++] : src[a++];
      while (a < mid) dst[o++] = src[a++];
      while (b < hi) dst[o++] = src[b++];
    }
    int64_t *t = src; src = dst; dst = t;
  }
  if (src != idx) memcpy(idx, src, sizeof(int64_t) * (size_t)n);
}

/* From one row's ordering: the inverse permutation and the first K entries. */
static void finish_row(int64_t *ids_restore, int64_t *ids_keep, const int64_t *ids_shuffle, int64_t L, int64_t K) {
  if (ids_restore)
    for (int64_t i = 0; i < L; i++) ids_restore[ids_shuffle[i]] = i;
  if (ids_keep) memcpy(ids_keep, ids_shuffle, sizeof(int64_t) * (size_t)K);
}

/* ids of a 0/1 row (stable argsort): zeros by increasing index, then ones by increasing index. */
static void binary_row_ids(int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep, const float *m, int64_t L,
                           int64_t K) {
  int64_t z = 0;
  for (int64_t l = 0; l < L; l++) if (m[l] == 0.0f) ids_shuffle[z++] = l;
  for (int64_t l = 0; l < L; l++) if (m[l] != 0.0f) ids_shuffle[z++] = l;
  finish_row(ids_restore, ids_keep, ids_shuffle, L, K);
}

/* ---------------------------------------------------------------- counts */

static dama_status check_ratio(const char *op, const char *name, double r) {
  if (!(r >= 0.0 && r <= 1.0))
    return dama_error(DAMA_ERR_ARG, "%s: %s must be in [0, 1], got %g", op, name, r);
  return DAMA_OK;
}

dama_status dama_mask_visible_count(int64_t L, double ratio, int64_t *K) {
  DAMA_CHECK(K != NULL, DAMA_ERR_ARG, "mask_visible_count: K must not be NULL");
  DAMA_CHECK(L >= 1, DAMA_ERR_ARG, "mask_visible_count: L (patches per sample) must be >= 1, got %lld", (long long)L);
  DAMA_TRY(check_ratio("mask_visible_count", "mask ratio", ratio));
  /* Python's int(L * (1 - r)): the product in double, truncated (64 * (1 - 0.8) = 12.799999999999997 -> 12). */
  *K = (int64_t)((double)L * (1.0 - ratio));
  return DAMA_OK;
}

dama_status dama_mask_adaptive_counts(int64_t L, double ratio, double overlap, int64_t *K, int64_t *R, int64_t *O) {
  const char *op = "mask_adaptive";
  int64_t k;
  DAMA_CHECK(L >= 1, DAMA_ERR_ARG, "%s: L (patches per sample) must be >= 1, got %lld", op, (long long)L);
  DAMA_TRY(check_ratio(op, "mask ratio", ratio));
  DAMA_TRY(check_ratio(op, "overlap ratio", overlap));
  k = (int64_t)((double)L * (1.0 - ratio));
  int64_t r = L - 2 * k; /* int(L - K * 2) */
  int64_t o = (int64_t)((double)k * overlap);
  if (r < 0)
    return dama_error(DAMA_ERR_ARG,
                      "%s: mask ratio %g leaves K = %lld of L = %lld patches visible, so R = L - 2K = %lld < 0; "
                      "Algorithm 1 shows branch 2 the patches branch 1 did not see and needs K <= L/2 "
                      "(mask ratio >= about 0.5)", op, ratio, (long long)k, (long long)L, (long long)r);
  if (K) *K = k;
  if (R) *R = r;
  if (O) *O = o;
  return DAMA_OK;
}

static dama_status check_sizes(const char *op, int64_t N, int64_t L, int64_t K) {
  DAMA_CHECK(N >= 1, DAMA_ERR_ARG, "%s: N (batch) must be >= 1, got %lld", op, (long long)N);
  DAMA_CHECK(L >= 1, DAMA_ERR_ARG, "%s: L (patches) must be >= 1, got %lld", op, (long long)L);
  DAMA_CHECK(K >= 0 && K <= L, DAMA_ERR_ARG, "%s: K (visible patches) must be in [0, L = %lld], got %lld", op,
             (long long)L, (long long)K);
  return DAMA_OK;
}

/* ---------------------------------------------------------------- random masking */

dama_status dama_mask_random(float *mask, int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep,
                             const float *noise, int64_t N, int64_t L, int64_t K) {
  const char *op = "mask_random";
  DAMA_CHECK(ids_shuffle != NULL, DAMA_ERR_ARG, "%s: ids_shuffle must not be NULL", op);
  DAMA_CHECK(noise != NULL, DAMA_ERR_ARG, "%s: noise must not be NULL", op);
  DAMA_TRY(check_sizes(op, N, L, K));
  int64_t *scratch = malloc(sizeof(int64_t) * (size_t)(N * L));
  DAMA_CHECK(scratch != NULL, DAMA_ERR_OOM, "%s: no memory for %lld sort entries", op, (long long)(N * L));
#pragma omp parallel for schedule(static) if (N * L >= MASK_OMP_MIN)
  for (int64_t n = 0; n < N; n++) {
    int64_t *sh = ids_shuffle + n * L;
    argsort_row(sh, scratch + n * L, noise + n * L, L);
    finish_row(ids_restore ? ids_restore + n * L : NULL, ids_keep ? ids_keep + n * K : NULL, sh, L, K);
    if (mask) {
      float *m = mask + n * L;
      for (int64_t i = 0; i < L; i++) m[sh[i]] = i < K ? 0.0f : 1.0f;
    }
  }
  free(scratch);
  return DAMA_OK;
}

/* ---------------------------------------------------------------- adaptive masking */

dama_status dama_mask_adaptive(float *m2, int64_t *ids_shuffle2, int64_t *ids_restore2, int64_t *ids_keep2,
                               const float *m1, const float *loss, int64_t N, int64_t L, double ratio,
                               double overlap, int32_t mode) {
  const char *op = "mask_adaptive";
  int64_t K, R, O;
  DAMA_CHECK(m2 != NULL && ids_shuffle2 != NULL, DAMA_ERR_ARG, "%s: m2 and ids_shuffle2 must not be NULL", op);
  DAMA_CHECK(m1 != NULL && loss != NULL, DAMA_ERR_ARG, "%s: m1 and loss_per_patch must not be NULL", op);
  DAMA_CHECK(N >= 1, DAMA_ERR_ARG, "%s: N (batch) must be >= 1, got %lld", op, (long long)N);
  DAMA_CHECK(mode == DAMA_ADAPTIVE_PER_SAMPLE || mode == DAMA_ADAPTIVE_UNION, DAMA_ERR_ARG,
             "%s: mode must be 0 (per_sample) or 1 (union), got %d", op, (int)mode);
  DAMA_TRY(dama_mask_adaptive_counts(L, ratio, overlap, &K, &R, &O));

  /* m1 must be a 0/1 mask; per-sample mode needs O visible and K - O masked patches in each row. */
  for (int64_t n = 0; n < N; n++) {
    int64_t zeros = 0;
    for (int64_t l = 0; l < L; l++) {
      float v = m1[n * L + l];
      if (v == 0.0f) zeros++;
      else if (v != 1.0f)
        return dama_error(DAMA_ERR_ARG, "%s: m1[%lld, %lld] = %g; m1 must hold only 0 (visible) and 1 (removed)",
                          op, (long long)n, (long long)l, (double)v);
    }
    if (mode == DAMA_ADAPTIVE_PER_SAMPLE && (zeros < O || L - zeros < K - O))
      return dama_error(DAMA_ERR_ARG,
                        "%s: row %lld of m1 has %lld visible and %lld masked patches; the per-sample rule needs at "
                        "least O = %lld visible and K - O = %lld masked (K = %lld, from mask ratio %g: build m1 with "
                        "the same ratio)", op, (long long)n, (long long)zeros, (long long)(L - zeros), (long long)O,
                        (long long)(K - O), (long long)K, ratio);
  }

  /* scratch per row: L sort indices + L merge buffer + L patch ids + L float keys, rounded up to 8 bytes so that
   * every row's int64 arrays stay aligned when L is odd (UBSan found the misaligned stores through the CUDA tests) */
  size_t row_bytes = ((size_t)L * (3 * sizeof(int64_t) + sizeof(float)) + 7) / 8 * 8;
  unsigned char *scratch = malloc(row_bytes * (size_t)N + (size_t)L);
  DAMA_CHECK(scratch != NULL, DAMA_ERR_OOM, "%s: no memory for scratch (%lld x %lld)", op, (long long)N, (long long)L);
  unsigned char *in_union = scratch + row_bytes * (size_t)N;

  if (mode == DAMA_ADAPTIVE_PER_SAMPLE) {
#pragma omp parallel for schedule(static) if (N * L >= MASK_OMP_MIN)
    for (int64_t n = 0; n < N; n++) {
      int64_t *idx = (int64_t *)(void *)(scratch + row_bytes * (size_t)n);
      int64_t *tmp = idx + L, *masked = tmp + L;
      float *key = (float *)(void *)(masked + L);
      const float *a = m1 + n * L, *s = loss + n * L;
      float *b = m2 + n * L;
      int64_t nm = 0, seen = 0;
      for (int64_t l = 0; l < L; l++) b[l] = 1.0f;
      /* rank the branch-1-masked patches by loss (ties: lower index); the K - O easiest are shown to branch 2 */
      for (int64_t l = 0; l < L; l++) if (a[l] != 0.0f) { masked[nm] = l; key[nm] = s[l]; nm++; }
      argsort_row(idx, tmp, key, nm);
      for (int64_t i = 0; i < K - O; i++) b[masked[idx[i]]] = 0.0f;
      /* overlap: the O lowest-index branch-1-visible patches (stable argsort(m1)[:O]) */
      for (int64_t l = 0; l < L && seen < O; l++) if (a[l] == 0.0f) { b[l] = 0.0f; seen++; }
      binary_row_ids(ids_shuffle2 + n * L, ids_restore2 ? ids_restore2 + n * L : NULL,
                     ids_keep2 ? ids_keep2 + n * K : NULL, b, L, K);
    }
  } else {
    /* the reference code: s = loss * m1; T = argsort(s)[:, -(R+O):]; m2 = where(m1 == 1, 0, 1); m2[n, T] = 1 */
    int64_t first = (R + O == 0) ? 0 : L - (R + O); /* Python's [-0:] is the whole row */
#pragma omp parallel for schedule(static) if (N * L >= MASK_OMP_MIN)
    for (int64_t n = 0; n < N; n++) {
      int64_t *idx = (int64_t *)(void *)(scratch + row_bytes * (size_t)n);
      int64_t *tmp = idx + L;
      float *key = (float *)(void *)(tmp + 2 * L);
      const float *a = m1 + n * L, *s = loss + n * L;
      float *b = m2 + n * L;
      for (int64_t l = 0; l < L; l++) { key[l] = s[l] * a[l]; b[l] = a[l] == 1.0f ? 0.0f : 1.0f; }
      argsort_row(idx, tmp, key, L);
      for (int64_t i = first; i < L; i++) b[idx[i]] = 1.0f;
    }
    /* V[n] = argsort(m1[n])[:O]: zeros by index, then ones by index if a row has fewer than O zeros.
     * m2[:, V] = 0 zeroes the union of V over the batch in every row. */
    memset(in_union, 0, (size_t)L);
    for (int64_t n = 0; n < N; n++) {
      const float *a = m1 + n * L;
      int64_t taken = 0;
      for (int64_t l = 0; l < L && taken < O; l++) if (a[l] == 0.0f) { in_union[l] = 1; taken++; }
      for (int64_t l = 0; l < L && taken < O; l++) if (a[l] != 0.0f) { in_union[l] = 1; taken++; }
    }
#pragma omp parallel for schedule(static) if (N * L >= MASK_OMP_MIN)
    for (int64_t n = 0; n < N; n++) {
      float *b = m2 + n * L;
      for (int64_t l = 0; l < L; l++) if (in_union[l]) b[l] = 0.0f;
      binary_row_ids(ids_shuffle2 + n * L, ids_restore2 ? ids_restore2 + n * L : NULL,
                     ids_keep2 ? ids_keep2 + n * K : NULL, b, L, K);
    }
  }
  free(scratch);
  return DAMA_OK;
}

/* ---------------------------------------------------------------- masks from anywhere */

dama_status dama_mask_check(const float *mask, int64_t N, int64_t L, int64_t *K) {
  const char *op = "mask_check";
  DAMA_CHECK(mask != NULL && K != NULL, DAMA_ERR_ARG, "%s: mask and K must not be NULL", op);
  DAMA_TRY(check_sizes(op, N, L, 0));
  int64_t first = -1;
  for (int64_t n = 0; n < N; n++) {
    int64_t zeros = 0;
    for (int64_t l = 0; l < L; l++) {
      float v = mask[n * L + l];
      if (v == 0.0f) zeros++;
      else if (v != 1.0f)
        return dama_error(DAMA_ERR_ARG, "%s: mask[%lld, %lld] = %g; a mask holds only 0 (visible) and 1 (removed)",
                          op, (long long)n, (long long)l, (double)v);
    }
    if (n == 0) first = zeros;
    else if (zeros != first)
      return dama_error(DAMA_ERR_ARG,
                        "%s: row %lld has %lld visible patches (zeros) but row 0 has %lld; every row needs the same "
                        "count because the encoder takes [N, K] tokens", op, (long long)n, (long long)zeros,
                        (long long)first);
  }
  *K = first;
  return DAMA_OK;
}

dama_status dama_mask_ids(int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep, const float *mask,
                          int64_t N, int64_t L, int64_t K) {
  const char *op = "mask_ids";
  int64_t k;
  DAMA_CHECK(ids_shuffle != NULL, DAMA_ERR_ARG, "%s: ids_shuffle must not be NULL", op);
  DAMA_TRY(check_sizes(op, N, L, K));
  DAMA_TRY(dama_mask_check(mask, N, L, &k));
  DAMA_CHECK(k == K, DAMA_ERR_ARG, "%s: the mask has %lld visible patches per row, but K = %lld was given", op,
             (long long)k, (long long)K);
#pragma omp parallel for schedule(static) if (N * L >= MASK_OMP_MIN)
  for (int64_t n = 0; n < N; n++)
    binary_row_ids(ids_shuffle + n * L, ids_restore ? ids_restore + n * L : NULL, ids_keep ? ids_keep + n * K : NULL,
                   mask + n * L, L, K);
  return DAMA_OK;
}

/* ---------------------------------------------------------------- token kernels */

static dama_status check_token_args(const char *op, const int64_t *ids, int64_t rows, int64_t cols, int64_t N,
                                    int64_t L, int64_t K, int64_t D, const char *ids_name) {
  DAMA_TRY(check_sizes(op, N, L, K));
  DAMA_CHECK(D >= 1, DAMA_ERR_ARG, "%s: D (token width) must be >= 1, got %lld", op, (long long)D);
  DAMA_CHECK(ids != NULL, DAMA_ERR_ARG, "%s: %s must not be NULL", op, ids_name);
  for (int64_t n = 0; n < rows; n++)
    for (int64_t i = 0; i < cols; i++) {
      int64_t v = ids[n * cols + i];
      if (v < 0 || v >= L)
        return dama_error(DAMA_ERR_INDEX, "%s: %s[%lld, %lld] = %lld is out of range [0, %lld)", op, ids_name,
                          (long long)n, (long long)i, (long long)v, (long long)L);
    }
  return DAMA_OK;
}

dama_status dama_mask_gather_forward(float *out, const float *x, const int64_t *ids_keep, int64_t N, int64_t L,
                                     int64_t K, int64_t D) {
  const char *op = "mask_gather_forward";
  DAMA_CHECK(out != NULL && x != NULL, DAMA_ERR_ARG, "%s: out and x must not be NULL", op);
  DAMA_TRY(check_token_args(op, ids_keep, N, K, N, L, K, D, "ids_keep"));
  int64_t rows = N * K;
#pragma omp parallel for schedule(static) if (rows * D >= MASK_OMP_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t n = r / K;
    memcpy(out + r * D, x + (n * L + ids_keep[r]) * D, sizeof(float) * (size_t)D);
  }
  return DAMA_OK;
}

dama_status dama_mask_gather_backward(float *dx, const float *dout, const int64_t *ids_keep, int64_t N, int64_t L,
                                      int64_t K, int64_t D) {
  const char *op = "mask_gather_backward";
  DAMA_CHECK(dx != NULL && dout != NULL, DAMA_ERR_ARG, "%s: dx and dout must not be NULL", op);
  DAMA_TRY(check_token_args(op, ids_keep, N, K, N, L, K, D, "ids_keep"));
  /* one sample per iteration: repeated ids within a sample accumulate without races */
#pragma omp parallel for schedule(static) if (N * K * D >= MASK_OMP_MIN)
  for (int64_t n = 0; n < N; n++)
    for (int64_t k = 0; k < K; k++) {
      float *d = dx + (n * L + ids_keep[n * K + k]) * D;
      const float *g = dout + (n * K + k) * D;
      for (int64_t c = 0; c < D; c++) d[c] += g[c];
    }
  return DAMA_OK;
}

dama_status dama_mask_unshuffle_forward(float *out, const float *tokens, const float *mask_token,
                                        const int64_t *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D) {
  const char *op = "mask_unshuffle_forward";
  DAMA_CHECK(out != NULL && mask_token != NULL, DAMA_ERR_ARG, "%s: out and mask_token must not be NULL", op);
  DAMA_CHECK(tokens != NULL || K == 0, DAMA_ERR_ARG, "%s: tokens must not be NULL", op);
  DAMA_TRY(check_token_args(op, ids_restore, N, L, N, L, K, D, "ids_restore"));
  int64_t rows = N * L;
#pragma omp parallel for schedule(static) if (rows * D >= MASK_OMP_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int64_t n = r / L, j = ids_restore[r];
    const float *src = j < K ? tokens + (n * K + j) * D : mask_token;
    memcpy(out + r * D, src, sizeof(float) * (size_t)D);
  }
  return DAMA_OK;
}

dama_status dama_mask_unshuffle_backward(float *dtokens, float *dmask_token, const float *dout,
                                         const int64_t *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D) {
  const char *op = "mask_unshuffle_backward";
  DAMA_CHECK(dout != NULL, DAMA_ERR_ARG, "%s: dout must not be NULL", op);
  DAMA_TRY(check_token_args(op, ids_restore, N, L, N, L, K, D, "ids_restore"));
  /* One pass over dout. Samples are split into at most 64 chunks fixed by N (not by the thread count);
   * each chunk sums its masked rows into its own partial, and the partials are added in chunk order, so
   * dmask_token does not depend on the number of threads. */
  int64_t nchunks = N < 64 ? N : 64;
  float *partial = NULL;
  if (dmask_token) {
    partial = calloc((size_t)(nchunks * D), sizeof(float));
    DAMA_CHECK(partial != NULL, DAMA_ERR_OOM, "%s: no memory for %lld partial sums", op, (long long)(nchunks * D));
  }
#pragma omp parallel for schedule(static) if (N * L * D >= MASK_OMP_MIN && nchunks > 1)
  for (int64_t ch = 0; ch < nchunks; ch++) {
    int64_t n0 = N * ch / nchunks, n1 = N * (ch + 1) / nchunks;
    float *acc = partial ? partial + ch * D : NULL;
    for (int64_t n = n0; n < n1; n++)
      for (int64_t l = 0; l < L; l++) {
        int64_t j = ids_restore[n * L + l];
        const float *g = dout + (n * L + l) * D;
        float *d = j < K ? (dtokens ? dtokens + (n * K + j) * D : NULL) : acc;
        if (d)
          for (int64_t c = 0; c < D; c++) d[c] += g[c];
      }
  }
  if (dmask_token) {
    for (int64_t ch = 0; ch < nchunks; ch++)
      for (int64_t c = 0; c < D; c++) dmask_token[c] += partial[ch * D + c];
    free(partial);
  }
  return DAMA_OK;
}
