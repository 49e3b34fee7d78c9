/* ops_mask.c — the CUDA backend's mask ops (cuda_ops.h says how an op area is built): random and adaptive masking,
 * mask_check / mask_ids, the token gather / unshuffle and their backwards, with runtime/cpu/mask.c's semantics and
 * messages (the host-side checks are the same code; the masks and ids are the same bits).
 *
 * What the CPU checks in device memory (a 0/1 mask, per-row counts, ids in [0, L)) runs as a kernel that records the
 * first failure (mask.cuh); the kernels after it write nothing then, and the op reads the result back once at its end
 * to return the CPU's error. So mask_random never waits for the device; mask_check waits (it returns K to the host),
 * and mask_adaptive, mask_ids and the token kernels wait once for their check (a 16-byte copy). While a CUDA graph
 * captures the device's stream (cuda_graph=true captures the DAMA step) nothing may wait: the checks still run and
 * keep a failing op from writing, but no error is returned (each capture follows an eager step that ran the same
 * checks), and mask_check is refused by name. */
#include "cuda_ops.h"
#include "graph.h"
#include "index_launch.h"
#include "mask_launch.h"

#include <string.h>

/* ---- the host-side checks of cpu/mask.c ---- */

static dama_status check_sizes(const char *op, int64_t N, int64_t L, int64_t K) {
  DAMA_CHECK(N >= 1, DAMA_ERR_ARG, "%s: N (batch) must be >= 1, got %lld", op, (long long)N);
  DAMA_CHECK(L >= 1, DAMA_ERR_ARG, "%s: L (patches) must be >= 1, got %lld", op, (long long)L);
  DAMA_CHECK(K >= 0 && K <= L, DAMA_ERR_ARG, "%s: K (visible patches) must be in [0, L = %lld], got %lld", op,
             (long long)L, (long long)K);
  return DAMA_OK;
}

/* Rows longer than the sorts take (2^31 patches) or batches whose [N, L] indices overflow are refused. */
static dama_status check_sortable(const char *op, int64_t L) {
  DAMA_CHECK(L < DAMA_CUDA_SORT_MAX_ROW, DAMA_ERR_ARG, "%s: L = %lld patches; the CUDA mask ops take fewer than 2^31",
             op, (long long)L);
  return DAMA_OK;
}

/* ---- scratch: the error words, and the sorts' pairs ---- */

typedef struct op_scratch {
  const char *op;
  unsigned long long *err; /* 2 words, then extra bytes */
  void *extra;
  void *sort;
  int64_t extra_bytes, sort_bytes;
} op_scratch;

static dama_status scratch_open(op_scratch *s, const char *op, int with_err, int64_t extra_bytes, int64_t N,
                                int64_t L) {
  memset(s, 0, sizeof *s);
  s->op = op;
  s->extra_bytes = extra_bytes;
  s->sort_bytes = L > 0 ? dama_cuda_mask_sort_scratch_bytes(N, L) : 0;
  if (with_err || extra_bytes > 0) {
    void *p = NULL;
    DAMA_TRY(dama_cuda_scratch_alloc(op, 16 + extra_bytes, &p));
    s->err = p;
    s->extra = (unsigned char *)p + 16;
    cudaError_t e = cudaMemsetAsync(p, 0x7f, 16, dama_cuda_stream());
    if (e != cudaSuccess) {
      dama_cuda_scratch_free(p, 16 + extra_bytes);
      s->err = NULL;
      return dama_cuda_status(e, "cudaMemsetAsync(err, 0x7f, 16, stream)", __FILE__, __LINE__);
    }
  }
  if (s->sort_bytes > 0) {
    dama_status st = dama_cuda_scratch_alloc(op, s->sort_bytes, &s->sort);
    if (st != DAMA_OK) {
      if (s->err) dama_cuda_scratch_free(s->err, 16 + s->extra_bytes);
      s->err = NULL;
      return st;
    }
  }
  return DAMA_OK;
}

static void scratch_close(op_scratch *s) {
  if (s->err) dama_cuda_scratch_free(s->err, 16 + s->extra_bytes);
  if (s->sort) dama_cuda_scratch_free(s->sort, s->sort_bytes);
  s->err = NULL;
  s->sort = NULL;
}

static int capturing(void) { return dama_cuda_device_capture(dama_cuda_current_device()) != NULL; }

/* Wait for the queued kernels and read the error words (h stays "no error" while a graph captures). */
static dama_status read_err(const op_scratch *s, unsigned long long h[2]) {
  if (capturing()) return DAMA_OK;
  DAMA_CUDA_TRY(cudaMemcpyAsync(h, s->err, 16, cudaMemcpyDeviceToHost, dama_cuda_stream()));
  DAMA_CUDA_TRY(cudaStreamSynchronize(dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status read_floats(float *dst, const float *src, int64_t n) {
  DAMA_CUDA_TRY(cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost, dama_cuda_stream()));
  DAMA_CUDA_TRY(cudaStreamSynchronize(dama_cuda_stream()));
  return DAMA_OK;
}

/* The zeros of row n of a device mask, and its entry at l (for the messages). */
static dama_status row_zeros(const float *m, int64_t n, int64_t L, int64_t *zeros) {
  float buf[1024];
  *zeros = 0;
  for (int64_t at = 0; at < L; at += 1024) {
    const int64_t c = L - at < 1024 ? L - at : 1024;
    DAMA_TRY(read_floats(buf, m + n * L + at, c));
    for (int64_t i = 0; i < c; i++) *zeros += buf[i] == 0.0f;
  }
  return DAMA_OK;
}

/* ---- random masking ---- */

static dama_status cuda_mask_random(float *mask, int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep,
                                    const float *noise, int64_t N, int64_t L, int64_t K) {
  const char *op = "mask_random";
  DAMA_CHECK(ids_shuffle != NULL, DAMA_ERR_ARG, "%s: ids_shuffle must not be NULL", op);
  DAMA_CHECK(noise != NULL, DAMA_ERR_ARG, "%s: noise must not be NULL", op);
  DAMA_TRY(check_sizes(op, N, L, K));
  DAMA_TRY(check_sortable(op, L));
  op_scratch s;
  DAMA_TRY(scratch_open(&s, op, 0, 0, N, L));
  cudaError_t e = dama_cuda_mask_random(mask, ids_shuffle, ids_restore, ids_keep, noise, N, L, K, s.sort,
                                        dama_cuda_stream());
  scratch_close(&s);
  if (e != cudaSuccess) return dama_cuda_status(e, "dama_cuda_mask_random", __FILE__, __LINE__);
  return DAMA_OK;
}

/* ---- adaptive masking ---- */

/* The CPU's error for m1's first failure (code from dama_cuda_mask_validate mode 1). */
static dama_status m1_error(const float *m1, unsigned long long code, int64_t L, int64_t K, int64_t O, double ratio) {
  const char *op = "mask_adaptive";
  const int64_t n = (int64_t)(code / (unsigned long long)(L + 1)), l = (int64_t)(code % (unsigned long long)(L + 1));
  if (l < L) {
    float v;
    DAMA_TRY(read_floats(&v, m1 + n * L + l, 1));
    return dama_error(DAMA_ERR_ARG, "%s: m1[%lld, %lld] = %g; m1 must hold only 0 (visible) and 1 (removed)", op,
                      (long long)n, (long long)l, (double)v);
  }
  int64_t zeros;
  DAMA_TRY(row_zeros(m1, n, L, &zeros));
  return dama_error(DAMA_ERR_ARG,
                    "%s: row %lld of m1 has %lld visible and %lld masked patches; the per-sample rule needs at "
                    "least O = %lld visible and K - O = %lld masked (K = %lld, from mask ratio %g: build m1 with "
                    "the same ratio)", op, (long long)n, (long long)zeros, (long long)(L - zeros), (long long)O,
                    (long long)(K - O), (long long)K, ratio);
}

static dama_status cuda_mask_adaptive(float *m2, int64_t *ids_shuffle2, int64_t *ids_restore2, int64_t *ids_keep2,
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
  DAMA_TRY(check_sortable(op, L));
  const int per_sample = mode == DAMA_ADAPTIVE_PER_SAMPLE;
  /* extra scratch: the zeros of each row of m1 (per-sample) or the union of the overlap patches (L ints) */
  const int64_t extra = (per_sample ? N : L) * (int64_t)sizeof(int32_t);
  op_scratch s;
  DAMA_TRY(scratch_open(&s, op, 1, extra, N, L));
  int32_t *ints = s.extra;
  cudaError_t e = dama_cuda_mask_validate(s.err, per_sample ? ints : NULL, m1, N, L, per_sample ? 1 : 0, K, O,
                                          dama_cuda_stream());
  if (e == cudaSuccess) {
    if (per_sample) {
      e = dama_cuda_mask_adaptive_per_sample(m2, ids_shuffle2, ids_restore2, ids_keep2, m1, loss, ints, N, L, K, O,
                                             s.err, s.sort, dama_cuda_stream());
    } else {
      const int64_t first = (R + O == 0) ? 0 : L - (R + O); /* Python's [-0:] is the whole row */
      e = dama_cuda_mask_adaptive_union(m2, ids_shuffle2, ids_restore2, ids_keep2, m1, loss, ints, N, L, K, O, first,
                                        s.err, s.sort, dama_cuda_stream());
    }
  }
  unsigned long long h[2] = {DAMA_CUDA_NO_ERROR, 0};
  dama_status st = e != cudaSuccess ? dama_cuda_status(e, "the adaptive mask's kernels", __FILE__, __LINE__)
                                    : read_err(&s, h);
  scratch_close(&s);
  DAMA_TRY(st);
  if (h[0] != DAMA_CUDA_NO_ERROR) return m1_error(m1, h[0], L, K, O, ratio);
  return DAMA_OK;
}

/* ---- masks from anywhere ---- */

/* The CPU's mask_check error for a failure code of dama_cuda_mask_validate mode 2. */
static dama_status mask_error(const float *mask, unsigned long long code, int64_t L, unsigned long long zeros0) {
  const char *op = "mask_check";
  const int64_t n = (int64_t)(code / (unsigned long long)(L + 1)), l = (int64_t)(code % (unsigned long long)(L + 1));
  if (l < L) {
    float v;
    DAMA_TRY(read_floats(&v, mask + n * L + l, 1));
    return dama_error(DAMA_ERR_ARG, "%s: mask[%lld, %lld] = %g; a mask holds only 0 (visible) and 1 (removed)", op,
                      (long long)n, (long long)l, (double)v);
  }
  int64_t zeros;
  DAMA_TRY(row_zeros(mask, n, L, &zeros));
  return dama_error(DAMA_ERR_ARG,
                    "%s: row %lld has %lld visible patches (zeros) but row 0 has %lld; every row needs the same "
                    "count because the encoder takes [N, K] tokens", op, (long long)n, (long long)zeros,
                    (long long)zeros0);
}

static dama_status cuda_mask_check(const float *mask, int64_t N, int64_t L, int64_t *K) {
  const char *op = "mask_check";
  DAMA_CHECK(mask != NULL && K != NULL, DAMA_ERR_ARG, "%s: mask and K must not be NULL", op);
  DAMA_TRY(check_sizes(op, N, L, 0));
  DAMA_CHECK(!capturing(), DAMA_ERR_DEVICE, "%s on cuda:%d while a CUDA graph is being captured there: K is read to "
             "the host, and the captured work must stay on the device; move it out of the captured function", op,
             (int)dama_cuda_current_device());
  op_scratch s;
  DAMA_TRY(scratch_open(&s, op, 1, 0, N, 0));
  cudaError_t e = dama_cuda_mask_validate(s.err, NULL, mask, N, L, 2, 0, 0, dama_cuda_stream());
  unsigned long long h[2] = {DAMA_CUDA_NO_ERROR, 0};
  dama_status st = e != cudaSuccess ? dama_cuda_status(e, "dama_cuda_mask_validate", __FILE__, __LINE__)
                                    : read_err(&s, h);
  scratch_close(&s);
  DAMA_TRY(st);
  if (h[0] != DAMA_CUDA_NO_ERROR) return mask_error(mask, h[0], L, h[1]);
  *K = (int64_t)h[1];
  return DAMA_OK;
}

static dama_status cuda_mask_ids(int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep, const float *mask,
                                 int64_t N, int64_t L, int64_t K) {
  const char *op = "mask_ids";
  DAMA_CHECK(ids_shuffle != NULL, DAMA_ERR_ARG, "%s: ids_shuffle must not be NULL", op);
  DAMA_TRY(check_sizes(op, N, L, K));
  /* dama_mask_check's own checks, in its order */
  DAMA_CHECK(mask != NULL, DAMA_ERR_ARG, "%s: mask and K must not be NULL", "mask_check");
  DAMA_TRY(check_sortable(op, L));
  op_scratch s;
  DAMA_TRY(scratch_open(&s, op, 1, 0, N, L));
  cudaError_t e = dama_cuda_mask_validate(s.err, NULL, mask, N, L, 2, 0, 0, dama_cuda_stream());
  if (e == cudaSuccess)
    e = dama_cuda_mask_ids(ids_shuffle, ids_restore, ids_keep, mask, N, L, K, s.err, s.sort, dama_cuda_stream());
  unsigned long long h[2] = {DAMA_CUDA_NO_ERROR, (unsigned long long)K};
  dama_status st = e != cudaSuccess ? dama_cuda_status(e, "the mask ids' kernels", __FILE__, __LINE__)
                                    : read_err(&s, h);
  scratch_close(&s);
  DAMA_TRY(st);
  if (h[0] != DAMA_CUDA_NO_ERROR) return mask_error(mask, h[0], L, h[1]);
  DAMA_CHECK((int64_t)h[1] == K, DAMA_ERR_ARG, "%s: the mask has %lld visible patches per row, but K = %lld was given",
             op, (long long)h[1], (long long)K);
  return DAMA_OK;
}

/* ---- token kernels ---- */

static dama_status check_token_sizes(const char *op, const int64_t *ids, int64_t N, int64_t L, int64_t K, int64_t D,
                                     const char *ids_name) {
  DAMA_TRY(check_sizes(op, N, L, K));
  DAMA_CHECK(D >= 1, DAMA_ERR_ARG, "%s: D (token width) must be >= 1, got %lld", op, (long long)D);
  DAMA_CHECK(ids != NULL, DAMA_ERR_ARG, "%s: %s must not be NULL", op, ids_name);
  return DAMA_OK;
}

/* Queue the range check of ids [rows, cols] into a fresh error word. */
static dama_status open_ids_check(op_scratch *s, const char *op, const int64_t *ids, int64_t rows, int64_t cols,
                                  int64_t L, int64_t extra_bytes) {
  DAMA_TRY(scratch_open(s, op, 1, extra_bytes, 0, 0));
  cudaError_t e = dama_cuda_mask_check_ids(s->err, ids, rows * cols, L, dama_cuda_stream());
  if (e != cudaSuccess) {
    scratch_close(s);
    return dama_cuda_status(e, "dama_cuda_mask_check_ids", __FILE__, __LINE__);
  }
  return DAMA_OK;
}

/* After the op's kernels (e: their launch result): the CPU's error for the first id out of range. */
static dama_status close_ids_check(op_scratch *s, cudaError_t e, const int64_t *ids, int64_t cols, int64_t L,
                                   const char *ids_name) {
  unsigned long long h[2] = {DAMA_CUDA_NO_ERROR, 0};
  dama_status st = e != cudaSuccess ? dama_cuda_status(e, "the token kernel", __FILE__, __LINE__) : read_err(s, h);
  scratch_close(s);
  DAMA_TRY(st);
  if (h[0] == DAMA_CUDA_NO_ERROR) return DAMA_OK;
  int64_t v = 0;
  DAMA_CUDA_TRY(cudaMemcpyAsync(&v, ids + h[0], 8, cudaMemcpyDeviceToHost, dama_cuda_stream()));
  DAMA_CUDA_TRY(cudaStreamSynchronize(dama_cuda_stream()));
  return dama_error(DAMA_ERR_INDEX, "%s: %s[%lld, %lld] = %lld is out of range [0, %lld)", s->op, ids_name,
                    (long long)(h[0] / (unsigned long long)cols), (long long)(h[0] % (unsigned long long)cols),
                    (long long)v, (long long)L);
}

static dama_status cuda_mask_gather_forward(float *out, const float *x, const int64_t *ids_keep, int64_t N, int64_t L,
                                            int64_t K, int64_t D) {
  const char *op = "mask_gather_forward";
  DAMA_CHECK(out != NULL && x != NULL, DAMA_ERR_ARG, "%s: out and x must not be NULL", op);
  DAMA_TRY(check_token_sizes(op, ids_keep, N, L, K, D, "ids_keep"));
  op_scratch s;
  DAMA_TRY(open_ids_check(&s, op, ids_keep, N, K, L, 0));
  cudaError_t e = dama_cuda_mask_gather_forward(out, x, ids_keep, N, L, K, D, s.err, dama_cuda_stream());
  return close_ids_check(&s, e, ids_keep, K, L, "ids_keep");
}

static dama_status cuda_mask_gather_backward(float *dx, const float *dout, const int64_t *ids_keep, int64_t N,
                                             int64_t L, int64_t K, int64_t D) {
  const char *op = "mask_gather_backward";
  DAMA_CHECK(dx != NULL && dout != NULL, DAMA_ERR_ARG, "%s: dx and dout must not be NULL", op);
  DAMA_TRY(check_token_sizes(op, ids_keep, N, L, K, D, "ids_keep"));
  op_scratch s;
  DAMA_TRY(open_ids_check(&s, op, ids_keep, N, K, L, 0));
  cudaError_t e = dama_cuda_mask_gather_backward(dx, dout, ids_keep, N, L, K, D, s.err, dama_cuda_stream());
  return close_ids_check(&s, e, ids_keep, K, L, "ids_keep");
}

static dama_status cuda_mask_unshuffle_forward(float *out, const float *tokens, const float *mask_token,
                                               const int64_t *ids_restore, int64_t N, int64_t L, int64_t K,
                                               int64_t D) {
  const char *op = "mask_unshuffle_forward";
  DAMA_CHECK(out != NULL && mask_token != NULL, DAMA_ERR_ARG, "%s: out and mask_token must not be NULL", op);
  DAMA_CHECK(tokens != NULL || K == 0, DAMA_ERR_ARG, "%s: tokens must not be NULL", op);
  DAMA_TRY(check_token_sizes(op, ids_restore, N, L, K, D, "ids_restore"));
  op_scratch s;
  DAMA_TRY(open_ids_check(&s, op, ids_restore, N, L, L, 0));
  cudaError_t e = dama_cuda_mask_unshuffle_forward(out, tokens, mask_token, ids_restore, N, L, K, D, s.err,
                                                   dama_cuda_stream());
  return close_ids_check(&s, e, ids_restore, L, L, "ids_restore");
}

static dama_status cuda_mask_unshuffle_backward(float *dtokens, float *dmask_token, const float *dout,
                                                const int64_t *ids_restore, int64_t N, int64_t L, int64_t K,
                                                int64_t D) {
  const char *op = "mask_unshuffle_backward";
  DAMA_CHECK(dout != NULL, DAMA_ERR_ARG, "%s: dout must not be NULL", op);
  DAMA_TRY(check_token_sizes(op, ids_restore, N, L, K, D, "ids_restore"));
  const int64_t partial = dmask_token ? dama_cuda_mask_token_chunks(N) * D * (int64_t)sizeof(float) : 0;
  op_scratch s;
  DAMA_TRY(open_ids_check(&s, op, ids_restore, N, L, L, partial));
  cudaError_t e = dama_cuda_mask_unshuffle_backward(dtokens, dmask_token, dout, ids_restore, N, L, K, D,
                                                    partial ? (float *)s.extra : NULL, s.err, dama_cuda_stream());
  return close_ids_check(&s, e, ids_restore, L, L, "ids_restore");
}

void dama_cuda_fill_ops_mask(dama_backend_ops *ops) {
  ops->mask_random = cuda_mask_random;
  ops->mask_adaptive = cuda_mask_adaptive;
  ops->mask_check = cuda_mask_check;
  ops->mask_ids = cuda_mask_ids;
  ops->mask_gather_forward = cuda_mask_gather_forward;
  ops->mask_gather_backward = cuda_mask_gather_backward;
  ops->mask_unshuffle_forward = cuda_mask_unshuffle_forward;
  ops->mask_unshuffle_backward = cuda_mask_unshuffle_backward;
}
