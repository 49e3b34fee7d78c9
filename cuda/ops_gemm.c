/* ops_gemm.c — the CUDA backend's GEMM ops (cuda_ops.h says how an op area is built): sgemm_strided_batched,
 * matmul, linear, attention and patch_embed, each with its CPU twin's semantics (runtime/cpu/gemm.c, ops_matmul.c,
 * nn_linear.c, nn_attention.c, nn_patch.c): the same argument checks and messages, overwrite vs accumulate as
 * there, outputs on the inputs' device. Every product runs through cuBLASLt (cublaslt.c), the rest through the
 * kernels of gemm_kernels.cu; temporaries come from the device's caching allocator; no op synchronises the host.
 *
 * Attention ((B, T, 3C) qkv, timm's layout): the heads are first copied into head-major arrays [B*NH, T, hd]
 * (a (b, h) pair's rows are no single stride apart in qkv, so no batched GEMM can read them in place), then one
 * strided-batched GEMM per product over all B*NH pairs, softmax.cuh's kernels for the rows of `att`, and a copy back
 * to token-major rows. Forward: 5 launches, backward: 10, whatever B and NH are. */
#include "cuda_ops.h"
#include "gemm_launch.h"

#include "core/op_args.h"

#include <limits.h>
#include <math.h>

#define LAUNCH_OR(call, cleanup)                                               \
  do {                                                                         \
    cudaError_t e_ = (call);                                                   \
    if (e_ != cudaSuccess) {                                                   \
      cleanup;                                                                 \
      return dama_cuda_status(e_, #call, __FILE__, __LINE__);                  \
    }                                                                          \
  } while (0)

/* ---- sgemm_strided_batched: runtime/cpu/gemm.c's checks and messages ---- */

static dama_status check_args(const char *fn, int trans_a, int trans_b, int64_t M, int64_t N, int64_t K,
                              const float *A, int64_t lda, const float *B, int64_t ldb, const float *C, int64_t ldc) {
  DAMA_CHECK(M > 0 && N > 0 && K > 0, DAMA_ERR_ARG, "%s: sizes must be positive, got M=%lld N=%lld K=%lld", fn,
             (long long)M, (long long)N, (long long)K);
  DAMA_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX && ldc <= INT_MAX,
             DAMA_ERR_ARG, "%s: sizes and leading dims must fit in 32 bits", fn);
  DAMA_CHECK(A && B && C, DAMA_ERR_ARG, "%s: A, B and C must not be NULL", fn);
  int64_t min_lda = trans_a ? M : K, min_ldb = trans_b ? K : N;
  DAMA_CHECK(lda >= min_lda, DAMA_ERR_ARG, "%s: lda=%lld, expected >= %lld", fn, (long long)lda, (long long)min_lda);
  DAMA_CHECK(ldb >= min_ldb, DAMA_ERR_ARG, "%s: ldb=%lld, expected >= %lld", fn, (long long)ldb, (long long)min_ldb);
  DAMA_CHECK(ldc >= N, DAMA_ERR_ARG, "%s: ldc=%lld, expected >= %lld", fn, (long long)ldc, (long long)N);
  return DAMA_OK;
}

static dama_cuda_gemm f32_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                               int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb, float beta, float *C,
                               int64_t ldc, int64_t sc, int64_t batch) {
  dama_cuda_gemm g = {ta, tb, M, N, K, A, lda, sa, B, ldb, sb, C, ldc, sc, batch, DAMA_F32, DAMA_F32, alpha, beta, NULL};
  return g;
}

dama_status dama_cuda_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                            const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                                            int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c,
                                            int64_t batch) {
  static const char op[] = "sgemm_strided_batched";
  DAMA_TRY(check_args(op, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc));
  DAMA_CHECK(batch > 0, DAMA_ERR_ARG, "sgemm_strided_batched: batch must be positive, got %lld", (long long)batch);
  DAMA_CHECK(stride_a >= 0 && stride_b >= 0 && stride_c >= 0, DAMA_ERR_ARG,
             "sgemm_strided_batched: strides must be >= 0");
  /* The CPU runs the batch in order, so output matrices that overlap (stride_c 0: one C for all) see each product
   * in turn; in one batched call they would race: run those one by one, in order, on the stream. */
  if (batch > 1 && stride_c < (M - 1) * ldc + N) {
    for (int64_t i = 0; i < batch; i++) {
      dama_cuda_gemm g = f32_gemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, 0, B + i * stride_b, ldb, 0,
                                  beta, C + i * stride_c, ldc, 0, 1);
      DAMA_TRY(dama_cuda_gemm_run(op, &g));
    }
    return DAMA_OK;
  }
  dama_cuda_gemm g = f32_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, stride_a, B, ldb, stride_b, beta, C, ldc,
                              stride_c, batch);
  return dama_cuda_gemm_run(op, &g);
}

/* ---- linear: runtime/cpu/nn_linear.c (out = inp weight^T + bias; the backward accumulates) ---- */

static dama_status cuda_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int64_t N,
                                       int64_t C, int64_t OC) {
  DAMA_CHECK(N > 0 && C > 0 && OC > 0, DAMA_ERR_ARG,
             "linear_forward: sizes must be positive, got N=%lld C=%lld OC=%lld", (long long)N, (long long)C,
             (long long)OC);
  DAMA_CHECK(out && inp && weight, DAMA_ERR_ARG, "linear_forward: out, inp and weight must not be NULL");
  DAMA_TRY(check_args("sgemm", 0, 1, N, OC, C, inp, C, weight, C, out, OC));
  dama_cuda_gemm g = f32_gemm(0, 1, N, OC, C, 1.0f, inp, C, 0, weight, C, 0, 0.0f, out, OC, 0, 1);
  g.bias = bias; /* the bias epilogue: one pass over out, not two */
  return dama_cuda_gemm_run("linear_forward", &g);
}

static dama_status cuda_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                        const float *inp, const float *weight, int64_t N, int64_t C, int64_t OC) {
  static const char op[] = "linear_backward";
  DAMA_CHECK(N > 0 && C > 0 && OC > 0, DAMA_ERR_ARG,
             "linear_backward: sizes must be positive, got N=%lld C=%lld OC=%lld", (long long)N, (long long)C,
             (long long)OC);
  DAMA_CHECK(dout, DAMA_ERR_ARG, "linear_backward: dout must not be NULL");
  DAMA_CHECK(!dinp || weight, DAMA_ERR_ARG, "linear_backward: dinp needs weight");
  DAMA_CHECK(!dweight || inp, DAMA_ERR_ARG, "linear_backward: dweight needs inp");
  if (dinp) {
    DAMA_TRY(check_args("sgemm", 0, 0, N, C, OC, dout, OC, weight, C, dinp, C));
    dama_cuda_gemm g = f32_gemm(0, 0, N, C, OC, 1.0f, dout, OC, 0, weight, C, 0, 1.0f, dinp, C, 0, 1);
    DAMA_TRY(dama_cuda_gemm_run(op, &g));
  }
  if (dweight) {
    DAMA_TRY(check_args("sgemm", 1, 0, OC, C, N, dout, OC, inp, C, dweight, C));
    dama_cuda_gemm g = f32_gemm(1, 0, OC, C, N, 1.0f, dout, OC, 0, inp, C, 0, 1.0f, dweight, C, 0, 1);
    DAMA_TRY(dama_cuda_gemm_run(op, &g));
  }
  if (dbias) {
    const int64_t np = dama_cuda_gemm_colsum_partials(N, OC);
    float *partial = NULL;
    DAMA_TRY(dama_cuda_scratch_alloc(op, np * (int64_t)sizeof(float), (void **)&partial));
    LAUNCH_OR(dama_cuda_gemm_colsum_add(dbias, dout, partial, N, OC, dama_cuda_stream()),
              dama_cuda_scratch_free(partial, np * (int64_t)sizeof(float)));
    dama_cuda_scratch_free(partial, np * (int64_t)sizeof(float));
  }
  return DAMA_OK;
}

/* ---- attention: runtime/cpu/nn_attention.c ---- */

#define ATT_MAX_T 8192
#define ATT_MAX_HD (16384 / 8)

static dama_status att_check_sizes(const char *fn, int64_t B, int64_t T, int64_t C, int64_t NH) {
  DAMA_CHECK(B > 0 && T > 0 && C > 0 && NH > 0, DAMA_ERR_ARG,
             "%s: sizes must be positive, got B=%lld T=%lld C=%lld NH=%lld", fn, (long long)B, (long long)T,
             (long long)C, (long long)NH);
  DAMA_CHECK(C % NH == 0, DAMA_ERR_ARG, "%s: C=%lld must be a multiple of NH=%lld", fn, (long long)C, (long long)NH);
  DAMA_CHECK(T <= ATT_MAX_T, DAMA_ERR_UNSUPPORTED, "%s: T=%lld, expected <= %d", fn, (long long)T, ATT_MAX_T);
  DAMA_CHECK(C / NH <= ATT_MAX_HD, DAMA_ERR_UNSUPPORTED, "%s: head dim %lld, expected <= %d", fn,
             (long long)(C / NH), ATT_MAX_HD);
  return DAMA_OK;
}

/* per (b, h) pair, head-major [BH, rows, cols] arrays */
static dama_cuda_gemm att_gemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                               int64_t lda, int64_t sa, const float *B, int64_t ldb, int64_t sb, float *C, int64_t ldc,
                               int64_t sc, int64_t BH) {
  return f32_gemm(ta, tb, M, N, K, alpha, A, lda, sa, B, ldb, sb, 0.0f, C, ldc, sc, BH);
}

static dama_status cuda_attention_forward(float *out, float *att, const float *qkv, int64_t B, int64_t T, int64_t C,
                                          int64_t NH, float scale) {
  static const char op[] = "attention_forward";
  DAMA_TRY(att_check_sizes(op, B, T, C, NH));
  DAMA_CHECK(out && att && qkv, DAMA_ERR_ARG, "attention_forward: out, att and qkv must not be NULL");
  const int64_t hd = C / NH, BH = B * NH, X = B * T * C, TT = T * T, Th = T * hd;
  if (scale <= 0.0f) scale = 1.0f / sqrtf((float)hd);
  const int64_t nbytes = 4 * X * (int64_t)sizeof(float);
  float *heads = NULL; /* q, k, v [3, BH, T, hd], then the output's heads [BH, T, hd] */
  DAMA_TRY(dama_cuda_scratch_alloc(op, nbytes, (void **)&heads));
  float *q = heads, *k = heads + X, *v = heads + 2 * X, *oh = heads + 3 * X;
  cudaStream_t s = dama_cuda_stream();
  dama_status st = DAMA_OK;
  LAUNCH_OR(dama_cuda_gemm_heads_split(heads, qkv, B, T, 3, NH, hd, 3 * C, C, s), dama_cuda_scratch_free(heads, nbytes));
  /* att = softmax(scale * q k^T): the scale goes into the GEMM (the CPU scales inside its exp; the same for scale > 0) */
  dama_cuda_gemm g1 = att_gemm(0, 1, T, T, hd, scale, q, hd, Th, k, hd, Th, att, T, TT, BH);
  st = dama_cuda_gemm_run(op, &g1);
  if (st == DAMA_OK) {
    LAUNCH_OR(dama_cuda_gemm_softmax_forward(att, att, BH * T, T, s), dama_cuda_scratch_free(heads, nbytes));
    dama_cuda_gemm g2 = att_gemm(0, 0, T, hd, T, 1.0f, att, T, TT, v, hd, Th, oh, hd, Th, BH);
    st = dama_cuda_gemm_run(op, &g2);
  }
  if (st == DAMA_OK)
    LAUNCH_OR(dama_cuda_gemm_heads_merge(out, oh, B, T, 1, NH, hd, C, C, 0, s), dama_cuda_scratch_free(heads, nbytes));
  dama_cuda_scratch_free(heads, nbytes); /* the allocator hands it only to later work on this stream */
  return st;
}

static dama_status cuda_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                                           int64_t B, int64_t T, int64_t C, int64_t NH, float scale) {
  static const char op[] = "attention_backward";
  DAMA_TRY(att_check_sizes(op, B, T, C, NH));
  DAMA_CHECK(dqkv && dout && qkv && att, DAMA_ERR_ARG,
             "attention_backward: dqkv, dout, qkv and att must not be NULL");
  const int64_t hd = C / NH, BH = B * NH, X = B * T * C, TT = T * T, Th = T * hd, Y = BH * TT;
  if (scale <= 0.0f) scale = 1.0f / sqrtf((float)hd);
  const int64_t nbytes = (7 * X + 2 * Y) * (int64_t)sizeof(float);
  float *buf = NULL;
  DAMA_TRY(dama_cuda_scratch_alloc(op, nbytes, (void **)&buf));
  /* q, k, v heads [3, BH, T, hd]; dout's heads g; dP = g v^T and dS [BH, T, T]; dq, dk, dv heads [3, BH, T, hd] */
  float *q = buf, *k = buf + X, *v = buf + 2 * X, *g = buf + 3 * X, *dp = buf + 4 * X, *ds = dp + Y, *dh = ds + Y;
  float *dq = dh, *dk = dh + X, *dv = dh + 2 * X;
  cudaStream_t s = dama_cuda_stream();
  const int64_t dsbytes = Y * (int64_t)sizeof(float);
  LAUNCH_OR(dama_cuda_gemm_heads_split(q, qkv, B, T, 3, NH, hd, 3 * C, C, s), dama_cuda_scratch_free(buf, nbytes));
  LAUNCH_OR(dama_cuda_gemm_heads_split(g, dout, B, T, 1, NH, hd, C, C, s), dama_cuda_scratch_free(buf, nbytes));
  dama_cuda_gemm g1 = att_gemm(0, 1, T, T, hd, 1.0f, g, hd, Th, v, hd, Th, dp, T, TT, BH); /* dP = g v^T */
  dama_status st = dama_cuda_gemm_run(op, &g1);
  if (st == DAMA_OK) {
    /* dS = P (dP - rowsum(P dP)); the scale goes into the two GEMMs that read dS */
    LAUNCH_OR(cudaMemsetAsync(ds, 0, (size_t)dsbytes, s), dama_cuda_scratch_free(buf, nbytes));
    LAUNCH_OR(dama_cuda_gemm_softmax_backward(ds, att, dp, BH * T, T, s), dama_cuda_scratch_free(buf, nbytes));
    dama_cuda_gemm g2 = att_gemm(0, 0, T, hd, T, scale, ds, T, TT, k, hd, Th, dq, hd, Th, BH); /* dq = scale dS k */
    st = dama_cuda_gemm_run(op, &g2);
  }
  if (st == DAMA_OK) {
    dama_cuda_gemm g3 = att_gemm(1, 0, T, hd, T, scale, ds, T, TT, q, hd, Th, dk, hd, Th, BH); /* dk = scale dS^T q */
    st = dama_cuda_gemm_run(op, &g3);
  }
  if (st == DAMA_OK) {
    dama_cuda_gemm g4 = att_gemm(1, 0, T, hd, T, 1.0f, att, T, TT, g, hd, Th, dv, hd, Th, BH); /* dv = P^T g */
    st = dama_cuda_gemm_run(op, &g4);
  }
  if (st == DAMA_OK) /* dqkv += the three gradients (the CPU accumulates too) */
    LAUNCH_OR(dama_cuda_gemm_heads_merge(dqkv, dh, B, T, 3, NH, hd, 3 * C, C, 1, s),
              dama_cuda_scratch_free(buf, nbytes));
  dama_cuda_scratch_free(buf, nbytes);
  return st;
}

/* ---- patch embedding: runtime/cpu/nn_patch.c (im2col + linear) ---- */

static dama_status check_img(const char *fn, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p) {
  DAMA_CHECK(N > 0 && C > 0 && H > 0 && W > 0 && p > 0, DAMA_ERR_ARG,
             "%s: sizes must be positive, got N=%lld C=%lld H=%lld W=%lld p=%lld", fn, (long long)N, (long long)C,
             (long long)H, (long long)W, (long long)p);
  DAMA_CHECK(H % p == 0 && W % p == 0, DAMA_ERR_ARG, "%s: H=%lld and W=%lld must be multiples of the patch size %lld",
             fn, (long long)H, (long long)W, (long long)p);
  return DAMA_OK;
}

static dama_status cuda_patch_embed_forward(float *out, float *col, const float *imgs, const float *weight,
                                            const float *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p,
                                            int64_t D) {
  DAMA_TRY(check_img("patch_embed_forward", N, C, H, W, p));
  DAMA_CHECK(D > 0, DAMA_ERR_ARG, "patch_embed_forward: D must be positive, got %lld", (long long)D);
  DAMA_CHECK(out && col && imgs && weight, DAMA_ERR_ARG,
             "patch_embed_forward: out, col, imgs and weight must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_gemm_im2col(col, imgs, N, C, H, W, p, dama_cuda_stream()));
  const int64_t L = (H / p) * (W / p);
  return cuda_linear_forward(out, col, weight, bias, N * L, C * p * p, D);
}

static dama_status cuda_patch_embed_backward(float *dimgs, float *dweight, float *dbias, const float *dout,
                                             const float *col, const float *weight, float *scratch, int64_t N,
                                             int64_t C, int64_t H, int64_t W, int64_t p, int64_t D) {
  DAMA_TRY(check_img("patch_embed_backward", N, C, H, W, p));
  DAMA_CHECK(D > 0, DAMA_ERR_ARG, "patch_embed_backward: D must be positive, got %lld", (long long)D);
  DAMA_CHECK(dout, DAMA_ERR_ARG, "patch_embed_backward: dout must not be NULL");
  DAMA_CHECK(!dweight || col, DAMA_ERR_ARG, "patch_embed_backward: dweight needs col");
  DAMA_CHECK(!dimgs || (weight && scratch), DAMA_ERR_ARG, "patch_embed_backward: dimgs needs weight and scratch");
  const int64_t L = (H / p) * (W / p), K = C * p * p;
  DAMA_TRY(cuda_linear_backward(NULL, dweight, dbias, dout, col, weight, N * L, K, D));
  if (dimgs) {
    /* scratch = dout @ weight (the CPU zeroes it and accumulates: the same), then col2im onto dimgs */
    DAMA_TRY(check_args("sgemm", 0, 0, N * L, K, D, dout, D, weight, K, scratch, K));
    dama_cuda_gemm g = f32_gemm(0, 0, N * L, K, D, 1.0f, dout, D, 0, weight, K, 0, 0.0f, scratch, K, 0, 1);
    DAMA_TRY(dama_cuda_gemm_run("patch_embed_backward", &g));
    DAMA_CUDA_LAUNCH_TRY(dama_cuda_gemm_col2im_add(dimgs, scratch, N, C, H, W, p, dama_cuda_stream()));
  }
  return DAMA_OK;
}

/* ---- matmul: runtime/cpu/ops_matmul.c's semantics (torch.matmul), every float dtype natively ---- */

/* Can cuBLAS read a rows x cols row-major-described matrix with strides (rs, cs)? (ops_matmul.c's rule) */
static bool blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs, int *trans, int64_t *ld) {
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= cols)) {
    *trans = 0;
    *ld = rows == 1 ? cols : rs;
    return *ld >= 1 && *ld <= INT_MAX;
  }
  if ((rows == 1 || rs == 1) && (cols == 1 || cs >= rows)) {
    *trans = 1;
    *ld = cols == 1 ? rows : cs;
    return *ld >= 1 && *ld <= INT_MAX;
  }
  return false;
}

typedef struct mm_operand {
  dama_tensor *t; /* the (possibly copied) >= 2-d view, owned */
  int trans;
  int64_t ld;
  int64_t bstride[DAMA_MAX_DIMS]; /* batch strides aligned to the output batch dims (0 = broadcast) */
} mm_operand;

/* takes v (a reference) */
static dama_status mm_prepare(const char *op, mm_operand *o, dama_tensor *v, int32_t nb) {
  const int32_t nd = v->ndim;
  const int64_t rows = v->shape[nd - 2], cols = v->shape[nd - 1];
  if (!blas_layout(rows, cols, v->strides[nd - 2], v->strides[nd - 1], &o->trans, &o->ld)) {
    /* stride 0, negative or gapped inner strides: one contiguous copy */
    dama_tensor *c = NULL;
    dama_status s = dama_empty(&c, nd, v->shape, (dama_dtype)v->dtype, v->storage->device);
    if (s != DAMA_OK) { dama_tensor_release(v); return s; }
    cudaError_t e = dama_cuda_gemm_strided_copy(dama_kernel_ptr(c), dama_kernel_ptr(v),
                                                dama_dtype_size((dama_dtype)v->dtype), nd, v->shape, v->strides,
                                                dama_cuda_stream());
    dama_tensor_release(v);
    if (e != cudaSuccess) {
      dama_tensor_release(c);
      return dama_cuda_status(e, "dama_cuda_gemm_strided_copy(operand)", __FILE__, __LINE__);
    }
    v = c;
    if (!blas_layout(rows, cols, v->strides[nd - 2], v->strides[nd - 1], &o->trans, &o->ld)) {
      dama_tensor_release(v);
      return dama_error(DAMA_ERR_INTERNAL, "%s: contiguous operand not BLAS-compatible", op);
    }
  }
  o->t = v;
  const int32_t vb = nd - 2;
  for (int32_t i = 0; i < nb; i++) {
    int32_t j = i - (nb - vb);
    o->bstride[i] = (j >= 0 && v->shape[j] != 1) ? v->strides[j] : 0;
  }
  return DAMA_OK;
}

/* Do batch dims [i0, nb) step through the operand by one stride (*flat) in row-major batch order? */
static bool mm_collapses(const int64_t *bstride, const int64_t *bshape, int32_t i0, int32_t nb, int64_t *flat) {
  int64_t inner = 1, s = 0;
  bool have = false;
  for (int32_t j = nb - 1; j >= i0; j--) {
    if (bshape[j] == 1) continue;
    if (!have) { s = bstride[j]; have = true; }
    else if (bstride[j] != s * inner) return false;
    inner *= bshape[j];
  }
  *flat = s;
  return true;
}

static dama_status mm_run(const char *op, dama_dtype dt, const mm_operand *A, const mm_operand *B, dama_tensor *out,
                          int32_t nb, const int64_t *bshape, int64_t m, int64_t n, int64_t k) {
  int64_t batch = 1;
  for (int32_t i = 0; i < nb; i++) batch *= bshape[i];
  const int esz = dama_dtype_size(dt);
  const char *abase = dama_kernel_ptr(A->t), *bbase = dama_kernel_ptr(B->t);
  char *cbase = dama_kernel_ptr(out);
  if (m == 0 || n == 0 || batch == 0) return DAMA_OK;
  if (k == 0) {
    DAMA_CUDA_TRY(cudaMemsetAsync(cbase, 0, (size_t)(batch * m * n * esz), dama_cuda_stream()));
    return DAMA_OK;
  }
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
    return dama_error(DAMA_ERR_ARG, "%s: matrix sizes must fit in 32 bits for BLAS (m=%lld n=%lld k=%lld)", op,
                      (long long)m, (long long)n, (long long)k);
  /* fold a's batch into its rows when b is shared and a's batch dims are contiguous over its rows (one GEMM) */
  bool b_shared = true;
  for (int32_t i = 0; i < nb; i++) b_shared = b_shared && (B->bstride[i] == 0 || bshape[i] == 1);
  if (b_shared && !A->trans && batch > 1) {
    bool chain = true;
    int64_t expect = A->ld * m;
    for (int32_t i = nb - 1; i >= 0 && chain; i--) {
      if (bshape[i] == 1) continue;
      chain = A->bstride[i] == expect;
      expect *= bshape[i];
    }
    if (chain && batch * m <= INT_MAX) {
      dama_cuda_gemm g = {A->trans, B->trans, batch * m, n, k, abase, A->ld, 0, bbase, B->ld, 0, cbase, n, 0, 1,
                          dt, dt, 1.0, 0.0, NULL};
      return dama_cuda_gemm_run(op, &g);
    }
  }
  /* the innermost batch dims that step through both operands by one stride run as one strided-batched GEMM; any
   * outer dims (a broadcast that is no single stride) loop on the host */
  int32_t i0 = nb;
  int64_t sa = 0, sb = 0;
  while (i0 > 0) {
    int64_t fa, fb;
    if (!mm_collapses(A->bstride, bshape, i0 - 1, nb, &fa) || !mm_collapses(B->bstride, bshape, i0 - 1, nb, &fb)) break;
    i0--;
    sa = fa;
    sb = fb;
  }
  int64_t inner = 1, outer = 1;
  for (int32_t i = i0; i < nb; i++) inner *= bshape[i];
  for (int32_t i = 0; i < i0; i++) outer *= bshape[i];
  for (int64_t o = 0; o < outer; o++) {
    int64_t ao = 0, bo = 0, rem = o;
    for (int32_t i = i0 - 1; i >= 0; i--) {
      const int64_t x = rem % bshape[i];
      rem /= bshape[i];
      ao += x * A->bstride[i];
      bo += x * B->bstride[i];
    }
    dama_cuda_gemm g = {A->trans, B->trans, m, n, k, abase + ao * esz, A->ld, sa, bbase + bo * esz, B->ld, sb,
                        cbase + o * inner * m * n * esz, n, m * n, inner, dt, dt, 1.0, 0.0, NULL};
    DAMA_TRY(dama_cuda_gemm_run(op, &g));
  }
  return DAMA_OK;
}

static dama_status cuda_matmul(dama_tensor **out, const dama_tensor *a, const dama_tensor *b) {
  const char *op = "matmul";
  if (!out) return dama_error(DAMA_ERR_ARG, "matmul: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_arg_check(op, "a", a));
  DAMA_TRY(ops_arg_check(op, "b", b));
  DAMA_TRY(ops_matmul_check(a, b));
  const dama_dtype ta = (dama_dtype)a->dtype;
  ops_matmul_shape sh;
  DAMA_TRY(ops_matmul_shapes(a, b, &sh));
  dama_tensor *va = sh.va, *vb = sh.vb;
  const int64_t m = sh.m, k = sh.k, n = sh.n;
  const int32_t nb = sh.nb, ond = sh.ond;
  const int64_t *bshape = sh.bshape, *oshape = sh.oshape;
  dama_status s;
  mm_operand A, B;
  memset(&A, 0, sizeof A);
  memset(&B, 0, sizeof B);
  s = mm_prepare(op, &A, va, nb);
  if (s != DAMA_OK) { dama_tensor_release(vb); return s; }
  s = mm_prepare(op, &B, vb, nb);
  if (s != DAMA_OK) { dama_tensor_release(A.t); return s; }
  s = dama_empty(out, ond, oshape, ta, a->storage->device);
  if (s == DAMA_OK) s = mm_run(op, ta, &A, &B, *out, nb, bshape, m, n, k);
  dama_tensor_release(A.t);
  dama_tensor_release(B.t);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

void dama_cuda_fill_ops_gemm(dama_backend_ops *ops) {
  ops->sgemm_strided_batched = dama_cuda_sgemm_strided_batched;
  ops->matmul = cuda_matmul;
  ops->linear_forward = cuda_linear_forward;
  ops->linear_backward = cuda_linear_backward;
  ops->attention_forward = cuda_attention_forward;
  ops->attention_backward = cuda_attention_backward;
  ops->patch_embed_forward = cuda_patch_embed_forward;
  ops->patch_embed_backward = cuda_patch_embed_backward;
}
