/* cublaslt.c — every GEMM of the CUDA backend goes through here (gemm_launch.h: dama_cuda_gemm_run): cuBLASLt with
 * one handle and one fixed 32 MiB workspace per device (the workspace from the device's caching allocator, taken on
 * the first GEMM outside a CUDA-graph capture and kept; GEMMs on one stream run in order, so they share it), and a
 * plan cache: for each problem (device, shape, transposes, leading dims, batch
 * count and strides, types, compute type, epilogue, pointer alignments) the matmul descriptor, the three matrix
 * layouts and the algorithm cublasLtMatmulAlgoGetHeuristic chose, made once and reused, so a repeated GEMM costs one
 * cublasLtMatmul call and no heuristic query (nothing here synchronises the host or allocates after the first use:
 * CUDA-graph friendly).
 *
 * Row-major callers, column-major cuBLAS: a row-major C[M, N] is the column-major C^T[N, M], and
 * C^T = op(B)^T op(A)^T, so cuBLAS is asked for m = N, n = M, k = K with A and B swapped (each keeping its own
 * transpose flag and leading dim).
 *
 * Alignment: cuBLASLt's heuristic assumes 256-byte aligned matrices unless told otherwise, and a kernel picked
 * for aligned data may fault on less aligned pointers; so the preference gives each operand's real alignment (of
 * its base pointer and, for batches, of its batch stride in bytes; up to 256, as PyTorch does), and the bias
 * pointer (which the heuristic reads from the descriptor) is set before the query. The alignments are part of the
 * cache key.
 *
 * The bias of linear layers goes into the GEMM's epilogue (CUBLASLT_EPILOGUE_BIAS: out is written once), unless the
 * heuristic has no algorithm with it for a problem, or dama_cuda_set_gemm_epilogues(0): then a plain GEMM and a
 * bias kernel. (The GELU epilogues are not used: cuBLASLt's GELU is the tanh approximation, dama's the exact erf
 * form, and no op here fuses it; the bias gradient is a deterministic column-sum kernel, as the CPU accumulates it
 * into the gradient, which CUBLASLT_EPILOGUE_BGRADB would overwrite.) */
#include <cublasLt.h>

#include "cuda_ops.h"
#include "autocast_launch.h"
#include "gemm_launch.h"
#include "graph.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define LT_MAX_DEVICES 64
#define LT_WORKSPACE_BYTES ((int64_t)32 << 20)
#define LT_BUCKETS 256
#define LT_MAX_PLANS 4096 /* then the cache is emptied and refilled: shapes of one training run are far fewer */

enum { K_DEVICE, K_TA, K_TB, K_M, K_N, K_K, K_LDA, K_LDB, K_LDC, K_SA, K_SB, K_SC, K_BATCH, K_AB, K_C, K_COMPUTE,
       K_EPILOGUE, K_ALIGN_A, K_ALIGN_B, K_ALIGN_C, K_ALIGN_BIAS, K_WORKSPACE, K_FIELDS };

typedef struct lt_key {
  int64_t v[K_FIELDS];
} lt_key;

typedef struct lt_plan {
  lt_key key;
  struct lt_plan *next;
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t a, b, c; /* cuBLAS's A (our B), B (our A), and C = D */
  cublasLtMatmulAlgo_t algo;
  int bias_separate; /* the heuristic had no algorithm with the bias epilogue: add the bias with a kernel */
} lt_plan;

typedef struct lt_device {
  cublasLtHandle_t handle;
  void *workspace;
} lt_device;

static pthread_mutex_t lt_mu = PTHREAD_MUTEX_INITIALIZER;
static lt_device lt_devices[LT_MAX_DEVICES];
static lt_plan *lt_table[LT_BUCKETS];
static int64_t lt_hits, lt_misses, lt_entries;
static atomic_int lt_allow_tf32;
static atomic_int lt_no_epilogues; /* 0: fused epilogues allowed (the default) */

void dama_cuda_set_allow_tf32(int32_t allow) { atomic_store(&lt_allow_tf32, allow ? 1 : 0); }
int32_t dama_cuda_get_allow_tf32(void) { return atomic_load(&lt_allow_tf32); }
void dama_cuda_set_gemm_epilogues(int32_t allow) { atomic_store(&lt_no_epilogues, allow ? 0 : 1); }
int32_t dama_cuda_get_gemm_epilogues(void) { return !atomic_load(&lt_no_epilogues); }

void dama_cuda_gemm_cache_stats(int64_t *hits, int64_t *misses, int64_t *entries) {
  pthread_mutex_lock(&lt_mu);
  if (hits) *hits = lt_hits;
  if (misses) *misses = lt_misses;
  if (entries) *entries = lt_entries;
  pthread_mutex_unlock(&lt_mu);
}

static uint64_t key_hash(const lt_key *k) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < K_FIELDS; i++) {
    h ^= (uint64_t)k->v[i];
    h *= 1099511628211ull;
    h ^= h >> 29;
  }
  return h;
}

/* The largest power of two up to 256 dividing the address of every batch element (base | stride bytes). */
static int64_t alignment(const void *p, int64_t stride, int64_t esize, int64_t batch) {
  uintptr_t a = (uintptr_t)p;
  if (batch > 1) a |= (uintptr_t)(stride * esize);
  int64_t al = 256;
  while (al > 1 && (a % (uintptr_t)al) != 0) al /= 2;
  return al;
}

static void plan_destroy(lt_plan *p) {
  if (!p) return;
  /* cleanup of objects we made: a failure here leaks a descriptor at worst, nothing to report it to */
  if (p->a) (void)cublasLtMatrixLayoutDestroy(p->a);
  if (p->b) (void)cublasLtMatrixLayoutDestroy(p->b);
  if (p->c) (void)cublasLtMatrixLayoutDestroy(p->c);
  if (p->desc) (void)cublasLtMatmulDescDestroy(p->desc);
  free(p);
}

static void cache_clear(void) {
  for (int i = 0; i < LT_BUCKETS; i++) {
    while (lt_table[i]) {
      lt_plan *p = lt_table[i];
      lt_table[i] = p->next;
      plan_destroy(p);
    }
  }
  lt_entries = 0;
}

static dama_status lt_type(dama_dtype t, cudaDataType *out) {
  switch (t) {
    case DAMA_F32: *out = CUDA_R_32F; return DAMA_OK;
    case DAMA_F64: *out = CUDA_R_64F; return DAMA_OK;
    case DAMA_BF16: *out = CUDA_R_16BF; return DAMA_OK;
    case DAMA_F16: *out = CUDA_R_16F; return DAMA_OK;
    default: return dama_error(DAMA_ERR_DTYPE, "cuBLASLt: dtype %s has no GEMM", dama_dtype_name(t));
  }
}

static dama_status batched_layout(cublasLtMatrixLayout_t *out, cudaDataType t, int64_t rows, int64_t cols, int64_t ld,
                                  int64_t batch, int64_t stride) {
  DAMA_CUBLAS_TRY(cublasLtMatrixLayoutCreate(out, t, (uint64_t)rows, (uint64_t)cols, ld));
  if (batch > 1) {
    const int32_t count = (int32_t)batch;
    DAMA_CUBLAS_TRY(cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    DAMA_CUBLAS_TRY(cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                     sizeof stride));
  }
  return DAMA_OK;
}

/* Descriptors, layouts and the heuristic's algorithm for key k (g's bias pointer set, for its alignment). */
static dama_status plan_fill(lt_plan *p, const lt_device *dev, const dama_cuda_gemm *g) {
  const int64_t *k = p->key.v;
  cudaDataType ab = CUDA_R_32F, c = CUDA_R_32F;
  DAMA_TRY(lt_type(g->ab_type, &ab));
  DAMA_TRY(lt_type(g->c_type, &c));
  const cublasComputeType_t compute = (cublasComputeType_t)k[K_COMPUTE];
  const cudaDataType scale = compute == CUBLAS_COMPUTE_64F ? CUDA_R_64F : CUDA_R_32F;
  DAMA_CUBLAS_TRY(cublasLtMatmulDescCreate(&p->desc, compute, scale));
  /* cuBLAS's A is our B, cuBLAS's B our A */
  const int32_t transa = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, transb = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  DAMA_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &transa, sizeof transa));
  DAMA_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &transb, sizeof transb));
  const uint32_t epilogue = (uint32_t)k[K_EPILOGUE];
  DAMA_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue));
  if (epilogue == CUBLASLT_EPILOGUE_BIAS)
    DAMA_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias,
                                                   sizeof g->bias));
  /* column-major: our B is [N, K] (no transpose) or [K, N]; our A is [K, M] or [M, K]; C is [N, M] */
  DAMA_TRY(batched_layout(&p->a, ab, g->trans_b ? g->K : g->N, g->trans_b ? g->N : g->K, g->ldb, g->batch,
                          g->stride_b));
  DAMA_TRY(batched_layout(&p->b, ab, g->trans_a ? g->M : g->K, g->trans_a ? g->K : g->M, g->lda, g->batch,
                          g->stride_a));
  DAMA_TRY(batched_layout(&p->c, c, g->N, g->M, g->ldc, g->batch, g->stride_c));

  cublasLtMatmulPreference_t pref = NULL;
  DAMA_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = (uint64_t)k[K_WORKSPACE];
  const uint32_t al_a = (uint32_t)k[K_ALIGN_B], al_b = (uint32_t)k[K_ALIGN_A], al_c = (uint32_t)k[K_ALIGN_C];
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c);
  if (st != CUBLAS_STATUS_SUCCESS) {
    (void)cublasLtMatmulPreferenceDestroy(pref);
    return dama_cublas_status(st, "cublasLtMatmulPreferenceSetAttribute(pref, ...)", __FILE__, __LINE__);
  }
  cublasLtMatmulHeuristicResult_t res;
  memset(&res, 0, sizeof res);
  int found = 0;
  st = cublasLtMatmulAlgoGetHeuristic(dev->handle, p->desc, p->a, p->b, p->c, p->c, pref, 1, &res, &found);
  if (st == CUBLAS_STATUS_SUCCESS && found < 1 && epilogue == CUBLASLT_EPILOGUE_BIAS) {
    /* no fused bias for this problem (e.g. a bias pointer the kernels cannot read vectorised): the plain GEMM, then
     * the bias kernel */
    const uint32_t plain = CUBLASLT_EPILOGUE_DEFAULT;
    st = cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &plain, sizeof plain);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(dev->handle, p->desc, p->a, p->b, p->c, p->c, pref, 1, &res, &found);
    p->bias_separate = 1;
  }
  (void)cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS)
    return dama_cublas_status(st, "cublasLtMatmulAlgoGetHeuristic(handle, desc, A, B, C, D, pref, 1, &res, &found)",
                              __FILE__, __LINE__);
  if (found < 1 || res.state != CUBLAS_STATUS_SUCCESS)
    return dama_error(DAMA_ERR_UNSUPPORTED, "cuBLASLt has no algorithm for a %s GEMM m=%lld n=%lld k=%lld (transa=%d "
                      "transb=%d, batch %lld, alignments %lld/%lld/%lld bytes)", dama_dtype_name(g->ab_type),
                      (long long)g->N, (long long)g->M, (long long)g->K, (int)transa, (int)transb,
                      (long long)g->batch, (long long)al_a, (long long)al_b, (long long)al_c);
  p->algo = res.algo;
  return DAMA_OK;
}

/* this device's handle and workspace, made on its first GEMM (lt_mu held). The workspace is not taken while a CUDA
 * graph captures (it would come from the graph's private pool): a GEMM captured before any eager one runs without
 * a workspace (its own plan, *ws = 0). */
static dama_status device_state(lt_device **out, int64_t *ws) {
  const int32_t d = dama_cuda_current_device();
  if (d < 0 || d >= LT_MAX_DEVICES) return dama_error(DAMA_ERR_DEVICE, "cuBLASLt: no state for cuda:%d", (int)d);
  lt_device *dev = &lt_devices[d];
  if (!dev->handle) DAMA_CUBLAS_TRY(cublasLtCreate(&dev->handle));
  if (!dev->workspace && !dama_cuda_device_capture(d))
    DAMA_TRY(dama_cuda_scratch_alloc("cuBLASLt workspace", LT_WORKSPACE_BYTES, &dev->workspace));
  *ws = dev->workspace ? LT_WORKSPACE_BYTES : 0;
  *out = dev;
  return DAMA_OK;
}

static dama_status run_locked(const dama_cuda_gemm *g) {
  lt_device *dev = NULL;
  int64_t ws = 0;
  DAMA_TRY(device_state(&dev, &ws));
  const int esa = dama_dtype_size(g->ab_type), esc = dama_dtype_size(g->c_type);
  int64_t compute = CUBLAS_COMPUTE_32F;
  if (g->ab_type == DAMA_F64 && g->c_type == DAMA_F64) compute = CUBLAS_COMPUTE_64F;
  else if (g->ab_type == DAMA_F32 && g->c_type == DAMA_F32 && atomic_load(&lt_allow_tf32))
    compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  else if (!((g->ab_type == DAMA_F32 && g->c_type == DAMA_F32) ||
             ((g->ab_type == DAMA_BF16 || g->ab_type == DAMA_F16) && (g->c_type == g->ab_type || g->c_type == DAMA_F32))))
    return dama_error(DAMA_ERR_DTYPE, "cuBLASLt: no GEMM of %s inputs into %s", dama_dtype_name(g->ab_type),
                      dama_dtype_name(g->c_type));
  lt_key key;
  memset(&key, 0, sizeof key);
  int64_t *k = key.v;
  k[K_DEVICE] = dama_cuda_current_device();
  k[K_TA] = g->trans_a != 0;
  k[K_TB] = g->trans_b != 0;
  k[K_M] = g->M; k[K_N] = g->N; k[K_K] = g->K;
  k[K_LDA] = g->lda; k[K_LDB] = g->ldb; k[K_LDC] = g->ldc;
  k[K_BATCH] = g->batch;
  if (g->batch > 1) { k[K_SA] = g->stride_a; k[K_SB] = g->stride_b; k[K_SC] = g->stride_c; }
  k[K_AB] = g->ab_type; k[K_C] = g->c_type;
  k[K_COMPUTE] = compute;
  const bool fuse_bias = g->bias && !atomic_load(&lt_no_epilogues);
  k[K_EPILOGUE] = fuse_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  k[K_ALIGN_A] = alignment(g->A, g->stride_a, esa, g->batch);
  k[K_ALIGN_B] = alignment(g->B, g->stride_b, esa, g->batch);
  k[K_ALIGN_C] = alignment(g->C, g->stride_c, esc, g->batch);
  k[K_ALIGN_BIAS] = fuse_bias ? alignment(g->bias, 0, esc, 1) : 0;
  k[K_WORKSPACE] = ws;
  const uint64_t h = key_hash(&key);
  lt_plan *p = lt_table[h % LT_BUCKETS];
  while (p && memcmp(&p->key, &key, sizeof key) != 0) p = p->next;
  if (p) {
    lt_hits++;
    if (fuse_bias && !p->bias_separate)
      DAMA_CUBLAS_TRY(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias,
                                                     sizeof g->bias));
  } else {
    lt_misses++;
    if (lt_entries >= LT_MAX_PLANS) cache_clear();
    p = calloc(1, sizeof *p);
    if (!p) return dama_error(DAMA_ERR_OOM, "cuBLASLt: out of host memory for a GEMM plan");
    p->key = key;
    dama_status s = plan_fill(p, dev, g);
    if (s != DAMA_OK) { plan_destroy(p); return s; }
    p->next = lt_table[h % LT_BUCKETS];
    lt_table[h % LT_BUCKETS] = p;
    lt_entries++;
  }
  const float alpha32 = (float)g->alpha, beta32 = (float)g->beta;
  const void *alpha = compute == CUBLAS_COMPUTE_64F ? (const void *)&g->alpha : (const void *)&alpha32;
  const void *beta = compute == CUBLAS_COMPUTE_64F ? (const void *)&g->beta : (const void *)&beta32;
  DAMA_CUBLAS_TRY(cublasLtMatmul(dev->handle, p->desc, alpha, g->B, p->a, g->A, p->b, beta, g->C, p->c, g->C, p->c,
                                 &p->algo, ws ? dev->workspace : NULL, (size_t)ws, dama_cuda_stream()));
  if (g->bias && (!fuse_bias || p->bias_separate)) {
    if (g->c_type != DAMA_F32)
      return dama_error(DAMA_ERR_UNSUPPORTED, "cuBLASLt: a %s bias without the bias epilogue",
                        dama_dtype_name(g->c_type));
    DAMA_CUDA_LAUNCH_TRY(dama_cuda_gemm_add_bias(g->C, g->bias, g->M, g->N, g->ldc, g->stride_c, g->batch,
                                                 dama_cuda_stream()));
  }
  return DAMA_OK;
}

/* Elements an operand spans in memory: `batch` matrices `stride` apart, each `rows` rows `ld` apart of `cols`. */
static int64_t operand_extent(int64_t rows, int64_t cols, int64_t ld, int64_t stride, int64_t batch) {
  return (batch > 1 ? (batch - 1) * stride : 0) + (rows - 1) * ld + cols;
}

/* Mixed precision (dama.amp, dama_cuda_autocast): an FP32 x FP32 -> FP32 GEMM runs on tensor cores with its A and B
 * cast to BF16 or FP16 (the CPU's rounding) in scratch of the same layout, accumulating and writing FP32 (C, bias and
 * beta unchanged), as torch.autocast casts the inputs of matmul and linear. */
static dama_status run_autocast(const char *op, const dama_cuda_gemm *g, dama_dtype half) {
  const int64_t ra = g->trans_a ? g->K : g->M, ca = g->trans_a ? g->M : g->K;
  const int64_t rb = g->trans_b ? g->N : g->K, cb = g->trans_b ? g->K : g->N;
  const int64_t na = operand_extent(ra, ca, g->lda, g->stride_a, g->batch);
  const int64_t nb = operand_extent(rb, cb, g->ldb, g->stride_b, g->batch);
  uint16_t *a16 = NULL, *b16 = NULL;
  DAMA_TRY(dama_cuda_scratch_alloc(op, na * 2, (void **)&a16));
  dama_status s = dama_cuda_scratch_alloc(op, nb * 2, (void **)&b16);
  const int f16 = half == DAMA_F16;
  cudaError_t e = cudaSuccess;
  if (s == DAMA_OK) e = dama_cuda_cast_f32_to_half(a16, (const float *)g->A, na, f16, dama_cuda_stream());
  if (s == DAMA_OK && e == cudaSuccess) e = dama_cuda_cast_f32_to_half(b16, (const float *)g->B, nb, f16,
                                                                       dama_cuda_stream());
  if (s == DAMA_OK && e != cudaSuccess) s = dama_cuda_status(e, "dama_cuda_cast_f32_to_half", __FILE__, __LINE__);
  if (s == DAMA_OK) {
    dama_cuda_gemm h = *g;
    h.A = a16;
    h.B = b16;
    h.ab_type = half;
    s = dama_cuda_gemm_run(op, &h);
  }
  /* freed once queued: the allocator hands the blocks only to later work on this stream */
  dama_cuda_scratch_free(b16, nb * 2);
  dama_cuda_scratch_free(a16, na * 2);
  return s;
}

dama_status dama_cuda_gemm_run(const char *op, const dama_cuda_gemm *g) {
  if (g->M <= 0 || g->N <= 0 || g->K <= 0 || g->batch <= 0) return DAMA_OK;
  const dama_dtype half = (dama_dtype)dama_cuda_autocast();
  if (half != DAMA_F32 && g->ab_type == DAMA_F32 && g->c_type == DAMA_F32) return run_autocast(op, g, half);
  dama_status s = DAMA_OK;
  /* cuBLASLt counts a batch in 32 bits */
  for (int64_t b0 = 0; b0 < g->batch && s == DAMA_OK; b0 += INT_MAX) {
    dama_cuda_gemm part = *g;
    part.batch = g->batch - b0 < INT_MAX ? g->batch - b0 : INT_MAX;
    part.A = (const char *)g->A + b0 * g->stride_a * dama_dtype_size(g->ab_type);
    part.B = (const char *)g->B + b0 * g->stride_b * dama_dtype_size(g->ab_type);
    part.C = (char *)g->C + b0 * g->stride_c * dama_dtype_size(g->c_type);
    pthread_mutex_lock(&lt_mu);
    s = run_locked(&part);
    pthread_mutex_unlock(&lt_mu);
  }
  if (s != DAMA_OK) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", dama_last_error());
    return dama_error(s, "%s: %s", op, msg);
  }
  return DAMA_OK;
}
