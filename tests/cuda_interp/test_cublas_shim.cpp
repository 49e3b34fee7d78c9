/* The cuBLASLt shim (cublas_shim.cpp) against a naive column-major reference written here from cuBLAS's definition
 * D = alpha op(A) op(B) + beta C: both transposes, padded leading dims, strided batches with gaps and a broadcast
 * (stride 0) operand, row-major order, f32 / f64 / bf16 / f16 (bf16 and f16 into their own type and into f32), the
 * bias epilogue, beta = 0 not reading C, TF32; and what cuBLASLt refuses: a leading dim below the rows, shapes or
 * batch counts that disagree, an attribute of the wrong size, an unsupported type combination or epilogue, an
 * algorithm used for another problem, pointers less aligned than the preference the algorithm was chosen under. */
#include "interp_test.h"

#include "cublasLt.h"

#include <algorithm>
#include <cstdlib>

/* a status or count equal to the expected one (both printed) */
#define CHECK_EQ(a, b)                                                                                   \
  do {                                                                                                   \
    const long long a_ = (long long)(a), b_ = (long long)(b);                                            \
    if (a_ != b_) { dama_test_fail(__FILE__, __LINE__, "%s is %lld, expected %lld", #a, a_, b_); return; } \
  } while (0)

namespace {

/* 256-byte aligned host memory (the shim reads pointers directly; its default alignment preference is 256) */
struct Mem {
  void *p = nullptr;
  size_t bytes = 0;
  explicit Mem(size_t n) : bytes(n) {
    if (posix_memalign(&p, 256, n ? n : 1) != 0) p = nullptr;
    if (p) memset(p, 0xff, n);
  }
  Mem(const Mem &) = delete;
  Mem &operator=(const Mem &) = delete;
  ~Mem() { free(p); }
};

int esize(cudaDataType t) { return t == CUDA_R_64F ? 8 : t == CUDA_R_32F ? 4 : 2; }

double get(const void *p, cudaDataType t, int64_t i) {
  switch (t) {
    case CUDA_R_32F: return ((const float *)p)[i];
    case CUDA_R_64F: return ((const double *)p)[i];
    case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    default: return __half2float(((const __half *)p)[i]);
  }
}
void put(void *p, cudaDataType t, int64_t i, double v) {
  switch (t) {
    case CUDA_R_32F: ((float *)p)[i] = (float)v; break;
    case CUDA_R_64F: ((double *)p)[i] = v; break;
    case CUDA_R_16BF: ((__nv_bfloat16 *)p)[i] = __float2bfloat16((float)v); break;
    default: ((__half *)p)[i] = __float2half((float)v); break;
  }
}

/* One problem in cuBLAS's terms. */
struct Spec {
  int ta = 0, tb = 0;
  int64_t m = 1, n = 1, k = 1, batch = 1;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0; /* ld = rows (COL) or cols (ROW) + pad */
  int64_t gap = 0;                         /* extra elements between batch elements */
  bool broadcast_b = false;                /* B's batch stride 0 */
  int order = CUBLASLT_ORDER_COL;
  cudaDataType ab = CUDA_R_32F, c = CUDA_R_32F;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  double alpha = 1.0, beta = 0.0;
  bool bias = false;
};

struct Mat {
  int64_t rows, cols, ld, stride;
};

Mat mat(int64_t rows, int64_t cols, int64_t pad, int order, int64_t batch_gap, bool bcast) {
  Mat x{rows, cols, (order == CUBLASLT_ORDER_COL ? rows : cols) + pad, 0};
  x.stride = bcast ? 0 : x.ld * (order == CUBLASLT_ORDER_COL ? cols : rows) + batch_gap;
  return x;
}
int64_t at(const Mat &x, int order, int64_t b, int64_t r, int64_t c) {
  return b * x.stride + (order == CUBLASLT_ORDER_COL ? r + c * x.ld : r * x.ld + c);
}
size_t elems(const Mat &x, int order, int64_t batch) {
  return (size_t)(at(x, order, batch - 1, x.rows - 1, x.cols - 1) + 1);
}

double tf32(double v) {
  float f = (float)v;
  uint32_t u;
  memcpy(&u, &f, 4);
  u = (u + 0x1000u) & 0xffffe000u;
  memcpy(&f, &u, 4);
  return f;
}

/* the alignment of every batch element's pointer: base and stride bytes */
uint32_t alignment(const void *p, int64_t stride_bytes) {
  const uintptr_t a = (uintptr_t)p | (uintptr_t)stride_bytes;
  uint32_t al = 256;
  while (al > 1 && a % al) al /= 2;
  return al;
}

struct Layouts {
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  ~Layouts() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
  }
};

cublasStatus_t make_layout(cublasLtMatrixLayout_t *l, cudaDataType t, const Mat &x, int order, int64_t batch) {
  cublasStatus_t s = cublasLtMatrixLayoutCreate(l, t, (uint64_t)x.rows, (uint64_t)x.cols, x.ld);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  int32_t o = order, bc = (int32_t)batch;
  if ((s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_ORDER, &o, sizeof o))) return s;
  if ((s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc))) return s;
  return cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &x.stride, sizeof x.stride);
}

/* Runs spec through the shim (heuristic + matmul) on fresh random inputs; checks the result against the reference
 * and returns the shim's status (the reference is compared only on success). */
cublasStatus_t run(cublasLtHandle_t h, const Spec &sp, itest::Rng &r, double *worst) {
  const Mat A = mat(sp.ta ? sp.k : sp.m, sp.ta ? sp.m : sp.k, sp.pad_a, sp.order, sp.gap, false);
  const Mat B = mat(sp.tb ? sp.n : sp.k, sp.tb ? sp.k : sp.n, sp.pad_b, sp.order, sp.gap, sp.broadcast_b);
  const Mat C = mat(sp.m, sp.n, sp.pad_c, sp.order, sp.gap, false);
  const size_t na = elems(A, sp.order, sp.batch), nb = elems(B, sp.order, sp.batch), nc = elems(C, sp.order, sp.batch);
  Mem ma(na * esize(sp.ab)), mb(nb * esize(sp.ab)), mc(nc * esize(sp.c)), md(nc * esize(sp.c)), mbias(sp.m * esize(sp.c));
  for (size_t i = 0; i < na; i++) put(ma.p, sp.ab, (int64_t)i, r.signed_mag(0.05f, 1.0f));
  for (size_t i = 0; i < nb; i++) put(mb.p, sp.ab, (int64_t)i, r.signed_mag(0.05f, 1.0f));
  for (size_t i = 0; i < nc; i++) put(mc.p, sp.c, (int64_t)i, sp.beta != 0 ? r.signed_mag(0.05f, 1.0f) : NAN);
  for (int64_t i = 0; i < sp.m; i++) put(mbias.p, sp.c, i, r.signed_mag(0.05f, 1.0f));
  memcpy(md.p, mc.p, nc * esize(sp.c));

  cublasLtMatmulDesc_t desc = nullptr;
  const cudaDataType scale = sp.compute == CUBLAS_COMPUTE_64F ? CUDA_R_64F : CUDA_R_32F;
  cublasStatus_t s = cublasLtMatmulDescCreate(&desc, sp.compute, scale);
  if (s) return s;
  int32_t ta = sp.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = sp.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  uint32_t epi = sp.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  if (sp.bias) cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &mbias.p, sizeof mbias.p);
  Layouts L;
  if ((s = make_layout(&L.a, sp.ab, A, sp.order, sp.batch)) || (s = make_layout(&L.b, sp.ab, B, sp.order, sp.batch)) ||
      (s = make_layout(&L.c, sp.c, C, sp.order, sp.batch))) {
    cublasLtMatmulDescDestroy(desc);
    return s;
  }
  /* the real alignments (the default preference, 256 bytes, would refuse batch elements at odd strides) */
  cublasLtMatmulPreference_t pref = nullptr;
  cublasLtMatmulPreferenceCreate(&pref);
  const uint32_t al[4] = {alignment(ma.p, A.stride * esize(sp.ab)), alignment(mb.p, B.stride * esize(sp.ab)),
                          alignment(mc.p, C.stride * esize(sp.c)), alignment(md.p, C.stride * esize(sp.c))};
  const cublasLtMatmulPreferenceAttributes_t which[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4; i++) cublasLtMatmulPreferenceSetAttribute(pref, which[i], &al[i], sizeof al[i]);
  cublasLtMatmulHeuristicResult_t res;
  int found = 0;
  s = cublasLtMatmulAlgoGetHeuristic(h, desc, L.a, L.b, L.c, L.c, pref, 1, &res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s == CUBLAS_STATUS_SUCCESS && found == 1) {
    float fa = (float)sp.alpha, fb = (float)sp.beta;
    const void *alpha = scale == CUDA_R_64F ? (const void *)&sp.alpha : &fa;
    const void *beta = scale == CUDA_R_64F ? (const void *)&sp.beta : &fb;
    s = cublasLtMatmul(h, desc, alpha, ma.p, L.a, mb.p, L.b, beta, mc.p, L.c, md.p, L.c, &res.algo, nullptr, 0, 0);
  }
  cublasLtMatmulDescDestroy(desc);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  /* the reference */
  double w = 0, scale_ref = 0;
  std::vector<double> want(nc, 0.0);
  for (int64_t bi = 0; bi < sp.batch; bi++)
    for (int64_t i = 0; i < sp.m; i++)
      for (int64_t j = 0; j < sp.n; j++) {
        double acc = 0;
        for (int64_t l = 0; l < sp.k; l++) {
          double x = get(ma.p, sp.ab, sp.ta ? at(A, sp.order, bi, l, i) : at(A, sp.order, bi, i, l));
          double y = get(mb.p, sp.ab, sp.tb ? at(B, sp.order, bi, j, l) : at(B, sp.order, bi, l, j));
          if (sp.compute == CUBLAS_COMPUTE_32F_FAST_TF32) { x = tf32(x); y = tf32(y); }
          acc += x * y;
        }
        double v = sp.alpha * acc;
        if (sp.beta != 0) v += sp.beta * get(mc.p, sp.c, at(C, sp.order, bi, i, j));
        if (sp.bias) v += get(mbias.p, sp.c, i);
        const int64_t o = at(C, sp.order, bi, i, j);
        want[(size_t)o] = v;
        scale_ref = std::max(scale_ref, fabs(v));
      }
  /* relative to the largest value: bf16/f16 outputs are rounded to 8/11 bits */
  const double tol = sp.c == CUDA_R_16BF ? 8e-3 : sp.c == CUDA_R_16F ? 1e-3 : sp.c == CUDA_R_32F ? 1e-6 : 1e-14;
  for (int64_t bi = 0; bi < sp.batch; bi++)
    for (int64_t i = 0; i < sp.m; i++)
      for (int64_t j = 0; j < sp.n; j++) {
        const int64_t o = at(C, sp.order, bi, i, j);
        const double e = fabs(get(md.p, sp.c, o) - want[(size_t)o]) / (scale_ref > 0 ? scale_ref : 1);
        if (!(e <= tol)) {
          fprintf(stderr, "  shim vs reference: batch %lld (%lld, %lld): %.9g, expected %.9g (ta=%d tb=%d m=%lld "
                  "n=%lld k=%lld order=%d types %d/%d) [seed %llu]\n", (long long)bi, (long long)i, (long long)j,
                  get(md.p, sp.c, o), want[(size_t)o], sp.ta, sp.tb, (long long)sp.m, (long long)sp.n,
                  (long long)sp.k, sp.order, (int)sp.ab, (int)sp.c, (unsigned long long)itest::seed());
          return CUBLAS_STATUS_EXECUTION_FAILED;
        }
        w = std::max(w, e);
      }
  /* padding and gaps between batch elements are left alone */
  std::vector<bool> inside(nc, false);
  for (int64_t bi = 0; bi < sp.batch; bi++)
    for (int64_t i = 0; i < sp.m; i++)
      for (int64_t j = 0; j < sp.n; j++) inside[(size_t)at(C, sp.order, bi, i, j)] = true;
  for (size_t o = 0; o < nc; o++)
    if (!inside[o] && memcmp((char *)md.p + o * esize(sp.c), (char *)mc.p + o * esize(sp.c), esize(sp.c)) != 0) {
      fprintf(stderr, "  shim wrote element %zu outside D\n", o);
      return CUBLAS_STATUS_EXECUTION_FAILED;
    }
  if (worst) *worst = std::max(*worst, w);
  return CUBLAS_STATUS_SUCCESS;
}

} // namespace

DAMA_TEST(shim_matches_a_naive_column_major_reference) {
  cublasLtHandle_t h;
  CHECK_EQ(cublasLtCreate(&h), CUBLAS_STATUS_SUCCESS);
  itest::Rng r(601);
  double worst = 0;
  int cases = 0;
  const int64_t sizes[] = {1, 7, 33};
  for (int order = 0; order < 2; order++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int64_t m : sizes)
          for (int64_t n : sizes)
            for (int64_t k : {(int64_t)1, (int64_t)7, (int64_t)65}) {
              Spec sp;
              sp.order = order; sp.ta = ta; sp.tb = tb; sp.m = m; sp.n = n; sp.k = k;
              sp.batch = (m + n + k) % 3 == 0 ? 1 : 3;
              sp.pad_a = (m + k) % 3; sp.pad_b = (n + k) % 2; sp.pad_c = m % 2; sp.gap = 5;
              sp.broadcast_b = k == 7;
              sp.alpha = 0.75; sp.beta = (m + n) % 2 ? 0.0 : -1.5;
              sp.bias = n == 7;
              CHECK_EQ(run(h, sp, r, &worst), CUBLAS_STATUS_SUCCESS);
              cases++;
            }
  /* every type combination cuBLASLt supports among f32, f64, bf16, f16 */
  const struct { cudaDataType ab, c; cublasComputeType_t compute; } types[] = {
      {CUDA_R_64F, CUDA_R_64F, CUBLAS_COMPUTE_64F},   {CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F},
      {CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F},  {CUDA_R_16F, CUDA_R_16F, CUBLAS_COMPUTE_32F},
      {CUDA_R_16F, CUDA_R_32F, CUBLAS_COMPUTE_32F},   {CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_TF32}};
  for (const auto &t : types)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        Spec sp;
        sp.ab = t.ab; sp.c = t.c; sp.compute = t.compute; sp.ta = ta; sp.tb = tb;
        sp.m = 33; sp.n = 7; sp.k = 65; sp.batch = 2; sp.pad_a = 3; sp.beta = 0.5; sp.bias = tb;
        CHECK_EQ(run(h, sp, r, nullptr), CUBLAS_STATUS_SUCCESS);
        cases++;
      }
  fprintf(stderr, "  %d problems, worst relative difference (f32) %.3g\n", cases, worst);
  CHECK_EQ(cublasLtDestroy(h), CUBLAS_STATUS_SUCCESS);
}

DAMA_TEST(shim_refuses_what_cublaslt_refuses) {
  cublasLtHandle_t h;
  CHECK_EQ(cublasLtCreate(&h), CUBLAS_STATUS_SUCCESS);
  itest::Rng r(602);
  /* a leading dim below the rows: a deliberately wrong ld */
  cublasLtMatrixLayout_t l = nullptr, ok = nullptr;
  CHECK_EQ(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 8, 4, 7), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatrixLayoutCreate(&ok, CUDA_R_32F, 8, 8, 8), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulDesc_t d = nullptr;
  CHECK_EQ(cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulPreference_t pref = nullptr;
  CHECK_EQ(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulHeuristicResult_t res;
  int found = -1;
  cublasLtMatrixLayout_t b4 = nullptr;
  CHECK_EQ(cublasLtMatrixLayoutCreate(&b4, CUDA_R_32F, 4, 8, 4), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, l, b4, ok, ok, pref, 1, &res, &found), CUBLAS_STATUS_INVALID_VALUE);
  CHECK_EQ(found, 0);
  Mem a(8 * 8 * 4), b(8 * 8 * 4), c(8 * 8 * 4);
  float one = 1.0f, zero = 0.0f;
  CHECK_EQ(cublasLtMatmul(h, d, &one, a.p, l, b.p, b4, &zero, c.p, ok, c.p, ok, nullptr, nullptr, 0, 0),
           CUBLAS_STATUS_INVALID_VALUE);
  /* the same problem with ld = rows is fine */
  int64_t ld8 = 8;
  CHECK_EQ(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_LD, &ld8, sizeof ld8), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, l, b4, ok, ok, pref, 1, &res, &found), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(found, 1);
  CHECK_EQ(cublasLtMatmul(h, d, &one, a.p, l, b.p, b4, &zero, c.p, ok, c.p, ok, &res.algo, nullptr, 0, 0),
           CUBLAS_STATUS_SUCCESS);
  /* shapes that disagree: A is 8x4 (k = 4) but B is 8x8 */
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, l, ok, ok, ok, pref, 1, &res, &found), CUBLAS_STATUS_INVALID_VALUE);
  /* the algorithm of another problem */
  cublasLtMatmulHeuristicResult_t res8;
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, ok, ok, ok, ok, pref, 1, &res8, &found), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmul(h, d, &one, a.p, l, b.p, b4, &zero, c.p, ok, c.p, ok, &res8.algo, nullptr, 0, 0),
           CUBLAS_STATUS_INVALID_VALUE);
  /* batch counts that disagree */
  int32_t two = 2;
  CHECK_EQ(cublasLtMatrixLayoutSetAttribute(b4, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &two, sizeof two),
           CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, l, b4, ok, ok, pref, 1, &res, &found), CUBLAS_STATUS_INVALID_VALUE);
  /* attributes of the wrong size */
  int64_t two64 = 2;
  CHECK_EQ(cublasLtMatrixLayoutSetAttribute(b4, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &two64, sizeof two64),
           CUBLAS_STATUS_INVALID_VALUE);
  int64_t trans64 = CUBLAS_OP_T;
  CHECK_EQ(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &trans64, sizeof trans64),
           CUBLAS_STATUS_INVALID_VALUE);
  uint64_t al64 = 4;
  CHECK_EQ(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al64, sizeof al64),
           CUBLAS_STATUS_INVALID_VALUE);
  size_t need = 0;
  CHECK_EQ(cublasLtMatrixLayoutGetAttribute(b4, CUBLASLT_MATRIX_LAYOUT_LD, nullptr, 0, &need), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ((int)need, 8);
  /* an unsupported type combination and epilogue */
  cublasLtMatrixLayout_t c64 = nullptr;
  CHECK_EQ(cublasLtMatrixLayoutCreate(&c64, CUDA_R_64F, 8, 8, 8), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, ok, ok, c64, c64, pref, 1, &res, &found), CUBLAS_STATUS_NOT_SUPPORTED);
  uint32_t gelu = 32; /* CUBLASLT_EPILOGUE_GELU: not in the shim */
  CHECK_EQ(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &gelu, sizeof gelu), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, ok, ok, ok, ok, pref, 1, &res, &found), CUBLAS_STATUS_NOT_SUPPORTED);
  uint32_t bias_epi = CUBLASLT_EPILOGUE_BIAS; /* without a bias pointer */
  CHECK_EQ(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &bias_epi, sizeof bias_epi),
           CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, ok, ok, ok, ok, pref, 1, &res, &found), CUBLAS_STATUS_INVALID_VALUE);
  uint32_t def = CUBLASLT_EPILOGUE_DEFAULT;
  CHECK_EQ(cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &def, sizeof def), CUBLAS_STATUS_SUCCESS);
  /* alignment: chosen under the default 256-byte preference, refused for a pointer 4 bytes off; chosen under a 4-byte
   * preference, accepted */
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, ok, ok, ok, ok, pref, 1, &res8, &found), CUBLAS_STATUS_SUCCESS);
  Mem big(9 * 8 * 4);
  const float *off = (const float *)big.p + 1;
  CHECK_EQ(cublasLtMatmul(h, d, &one, off, ok, b.p, ok, &zero, c.p, ok, c.p, ok, &res8.algo, nullptr, 0, 0),
           CUBLAS_STATUS_INVALID_VALUE);
  uint32_t al4 = 4;
  CHECK_EQ(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al4, sizeof al4),
           CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, ok, ok, ok, ok, pref, 1, &res8, &found), CUBLAS_STATUS_SUCCESS);
  for (int i = 0; i < 9 * 8; i++) ((float *)big.p)[i] = r.signed_mag(0.1f, 1.0f);
  for (int i = 0; i < 64; i++) ((float *)b.p)[i] = r.signed_mag(0.1f, 1.0f);
  CHECK_EQ(cublasLtMatmul(h, d, &one, off, ok, b.p, ok, &zero, c.p, ok, c.p, ok, &res8.algo, nullptr, 0, 0),
           CUBLAS_STATUS_SUCCESS);
  /* a batch element's pointer counts too: stride 1 element leaves batch element 1 4-byte aligned */
  int64_t stride1 = 1;
  cublasLtMatrixLayout_t bat[3];
  for (auto &x : bat) {
    CHECK_EQ(cublasLtMatrixLayoutCreate(&x, CUDA_R_32F, 8, 8, 8), CUBLAS_STATUS_SUCCESS);
    CHECK_EQ(cublasLtMatrixLayoutSetAttribute(x, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &two, sizeof two),
             CUBLAS_STATUS_SUCCESS);
  }
  CHECK_EQ(cublasLtMatrixLayoutSetAttribute(bat[1], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride1,
                                            sizeof stride1), CUBLAS_STATUS_SUCCESS);
  int64_t stride64 = 64;
  CHECK_EQ(cublasLtMatrixLayoutSetAttribute(bat[2], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride64,
                                            sizeof stride64), CUBLAS_STATUS_SUCCESS);
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, bat[0], bat[1], bat[2], bat[2], pref, 1, &res8, &found),
           CUBLAS_STATUS_SUCCESS);
  Mem cc(2 * 64 * 4);
  CHECK_EQ(cublasLtMatmul(h, d, &one, big.p, bat[0], big.p, bat[1], &zero, cc.p, bat[2], cc.p, bat[2], &res8.algo,
                          nullptr, 0, 0), CUBLAS_STATUS_INVALID_VALUE);
  for (auto &x : bat) cublasLtMatrixLayoutDestroy(x);
  /* a destroyed or foreign handle */
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(nullptr, d, ok, ok, ok, ok, pref, 1, &res, &found),
           CUBLAS_STATUS_NOT_INITIALIZED);
  CHECK_EQ(cublasLtMatmulAlgoGetHeuristic(h, d, ok, ok, ok, ok, pref, 0, &res, &found), CUBLAS_STATUS_INVALID_VALUE);
  cublasLtMatrixLayoutDestroy(c64);
  cublasLtMatrixLayoutDestroy(b4);
  cublasLtMatrixLayoutDestroy(l);
  cublasLtMatrixLayoutDestroy(ok);
  cublasLtMatmulDescDestroy(d);
  cublasLtMatmulPreferenceDestroy(pref);
  CHECK(strcmp(cublasLtGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE") == 0);
  CHECK_EQ(cublasLtDestroy(h), CUBLAS_STATUS_SUCCESS);
}

DAMA_TEST(shim_tf32_rounds_the_inputs_and_fp32_does_not) {
  /* the same inputs under COMPUTE_32F and COMPUTE_32F_FAST_TF32: the reference check in run() holds for each (with
   * and without rounding), and the two results differ, so the compute type really reaches the arithmetic */
  cublasLtHandle_t h;
  CHECK_EQ(cublasLtCreate(&h), CUBLAS_STATUS_SUCCESS);
  const int64_t m = 7, n = 5, k = 33;
  Mem a(m * k * 4), b(k * n * 4), c32(m * n * 4), ctf(m * n * 4);
  itest::Rng r(603);
  for (int64_t i = 0; i < m * k; i++) ((float *)a.p)[i] = 1.0f + r.uniform(1e-4f, 1e-3f);
  for (int64_t i = 0; i < k * n; i++) ((float *)b.p)[i] = 1.0f + r.uniform(1e-4f, 1e-3f);
  float one = 1.0f, zero = 0.0f;
  for (int tf = 0; tf < 2; tf++) {
    cublasLtMatmulDesc_t d;
    CHECK_EQ(cublasLtMatmulDescCreate(&d, tf ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F),
             CUBLAS_STATUS_SUCCESS);
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatrixLayoutCreate(&la, CUDA_R_32F, m, k, m);
    cublasLtMatrixLayoutCreate(&lb, CUDA_R_32F, k, n, k);
    cublasLtMatrixLayoutCreate(&lc, CUDA_R_32F, m, n, m);
    CHECK_EQ(cublasLtMatmul(h, d, &one, a.p, la, b.p, lb, &zero, tf ? ctf.p : c32.p, lc, tf ? ctf.p : c32.p, lc,
                            nullptr, nullptr, 0, 0), CUBLAS_STATUS_SUCCESS);
    cublasLtMatrixLayoutDestroy(la); cublasLtMatrixLayoutDestroy(lb); cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(d);
  }
  /* inputs 1 + [1e-4, 1e-3) lose their last bits in TF32 (2^-10 ~ 1e-3): the products differ by ~1e-3 relative */
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < m * n; i++) {
    diff = std::max(diff, (double)fabsf(((float *)ctf.p)[i] - ((float *)c32.p)[i]));
    ref = std::max(ref, (double)fabsf(((float *)c32.p)[i]));
  }
  fprintf(stderr, "  TF32 vs FP32: largest difference %.3g of %.3g\n", diff, ref);
  CHECK(diff > 1e-4 * ref && diff < 3e-3 * ref);
  CHECK_EQ(cublasLtDestroy(h), CUBLAS_STATUS_SUCCESS);
}
