/* cublas_shim.cpp — cuBLASLt's matmul on the CPU for the interpreter build (cublasLt.h beside this file says which
 * subset): the handle, matmul descriptors, matrix layouts, preferences, the heuristic and cublasLtMatmul, with
 * cuBLAS's COLUMN-MAJOR semantics and its argument checks, so the transposes, leading dimensions, batch strides,
 * alignments and epilogues dama's cuda/cublaslt.c passes are really exercised, not just its arithmetic.
 *
 * The product: D = alpha * op(A) op(B) + beta * C (+ bias[row] with the BIAS epilogue), op(X) = X or X^T, per batch
 * element i at X + i * stride; beta = 0 means C is not read (as cuBLAS: NaN there does not leak). Sums run in double
 * over the inputs converted to double (inputs rounded to TF32 first for CUBLAS_COMPUTE_32F_FAST_TF32), then the
 * result is rounded once to D's type (through float for bf16/f16, as the GPU's float accumulator is). It runs as an
 * interpreter kernel launched on the call's stream, so it is ordered like cuBLASLt's own kernels and a CUDA-graph
 * capture records it.
 *
 * The heuristic returns one algorithm, which remembers the problem it was chosen for and the alignments it was
 * chosen under (the preference's MIN_ALIGNMENT_*_BYTES, default 256 as cuBLASLt's; the bias pointer's own
 * alignment, which cuBLASLt's heuristic reads from the descriptor): cublasLtMatmul refuses it for another problem
 * or for a pointer (of any batch element) less aligned than that, with CUBLAS_STATUS_INVALID_VALUE, where a GPU
 * kernel picked for aligned data would fault or misread. */
#include "cublasLt.h"

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "cuda_interp.h"

namespace {

const uint32_t k_handle_magic = 0x4c544831u, k_layout_magic = 0x4c544c31u, k_desc_magic = 0x4c544431u,
               k_pref_magic = 0x4c545031u;
const uint64_t k_algo_magic = 0x64616d614c54616cull;

std::atomic<int64_t> g_heuristics{0}, g_matmuls{0};

} // namespace

struct dama_shim_lt_context {
  uint32_t magic;
};
struct dama_shim_lt_layout {
  uint32_t magic;
  int32_t type, order, batch;
  uint64_t rows, cols;
  int64_t ld, stride;
};
struct dama_shim_lt_desc {
  uint32_t magic;
  int32_t compute, scale, pointer_mode, transa, transb, transc, bias_type;
  uint32_t epilogue;
  const void *bias;
};
struct dama_shim_lt_pref {
  uint32_t magic;
  uint64_t max_workspace;
  uint32_t align[4]; /* A, B, C, D */
};

namespace {

int elem_size(int32_t t) {
  switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_64F: return 8;
    case CUDA_R_16BF: case CUDA_R_16F: return 2;
    default: return 0;
  }
}

/* A value of buf, checked like cuBLASLt's SetAttribute: buf not NULL, sizeInBytes the attribute's size. */
template <class T> cublasStatus_t read_attr(const void *buf, size_t size, T *out) {
  if (!buf || size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(out, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

/* GetAttribute: sizeInBytes 0 asks for the size; else it must be the attribute's. */
template <class T> cublasStatus_t write_attr(void *buf, size_t size, size_t *written, T value) {
  if (size == 0) {
    if (!written) return CUBLAS_STATUS_INVALID_VALUE;
    *written = sizeof(T);
    return CUBLAS_STATUS_SUCCESS;
  }
  if (!buf || size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(buf, &value, sizeof(T));
  if (written) *written = sizeof(T);
  return CUBLAS_STATUS_SUCCESS;
}

bool valid(const dama_shim_lt_layout *l) { return l && l->magic == k_layout_magic; }
bool valid(const dama_shim_lt_desc *d) { return d && d->magic == k_desc_magic; }

/* The problem a descriptor and four layouts describe, once checked. */
struct problem {
  int64_t m, n, k, batch;
  bool ta, tb, tf32;
  const dama_shim_lt_layout *A, *B, *C, *D;
  const dama_shim_lt_desc *desc;
};

/* cuBLASLt's supported (compute, scale, A/B, C/D) combinations among f32, f64, bf16, f16. */
bool types_supported(const dama_shim_lt_desc *d, int32_t ab, int32_t c) {
  switch (d->compute) {
    case CUBLAS_COMPUTE_64F: return d->scale == CUDA_R_64F && ab == CUDA_R_64F && c == CUDA_R_64F;
    case CUBLAS_COMPUTE_32F_FAST_TF32: return d->scale == CUDA_R_32F && ab == CUDA_R_32F && c == CUDA_R_32F;
    case CUBLAS_COMPUTE_32F:
      if (d->scale != CUDA_R_32F) return false;
      if (ab == CUDA_R_32F) return c == CUDA_R_32F;
      if (ab == CUDA_R_16BF || ab == CUDA_R_16F) return c == ab || c == CUDA_R_32F;
      return false;
    default: return false;
  }
}

bool layout_ok(const dama_shim_lt_layout *l) {
  if (l->order == CUBLASLT_ORDER_COL) return l->ld >= 1 && (uint64_t)l->ld >= l->rows;
  return l->ld >= 1 && (uint64_t)l->ld >= l->cols; /* ROW */
}

cublasStatus_t check_problem(const dama_shim_lt_desc *d, const dama_shim_lt_layout *A, const dama_shim_lt_layout *B,
                             const dama_shim_lt_layout *C, const dama_shim_lt_layout *D, problem *p) {
  if (!valid(d) || !valid(A) || !valid(B) || !valid(C) || !valid(D)) return CUBLAS_STATUS_INVALID_VALUE;
  if (d->transc != CUBLAS_OP_N || d->pointer_mode != CUBLASLT_POINTER_MODE_HOST) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d->transa < CUBLAS_OP_N || d->transa > CUBLAS_OP_C || d->transb < CUBLAS_OP_N || d->transb > CUBLAS_OP_C)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (A->type != B->type || C->type != D->type || !types_supported(d, A->type, C->type))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const dama_shim_lt_layout *all[4] = {A, B, C, D};
  for (const dama_shim_lt_layout *l : all) {
    if (l->order != CUBLASLT_ORDER_COL && l->order != CUBLASLT_ORDER_ROW) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (l->rows > INT32_MAX || l->cols > INT32_MAX) return CUBLAS_STATUS_NOT_SUPPORTED;
    if (!layout_ok(l)) return CUBLAS_STATUS_INVALID_VALUE; /* ld too small: columns (rows) would overlap */
    if (l->batch < 1 || l->stride < 0) return CUBLAS_STATUS_INVALID_VALUE;
    if (l->batch != D->batch) return CUBLAS_STATUS_INVALID_VALUE;
  }
  const bool ta = d->transa != CUBLAS_OP_N, tb = d->transb != CUBLAS_OP_N;
  const uint64_t m = D->rows, n = D->cols;
  if (C->rows != m || C->cols != n) return CUBLAS_STATUS_INVALID_VALUE;
  const uint64_t am = ta ? A->cols : A->rows, k = ta ? A->rows : A->cols;
  const uint64_t bk = tb ? B->cols : B->rows, bn = tb ? B->rows : B->cols;
  if (am != m || bk != k || bn != n) return CUBLAS_STATUS_INVALID_VALUE;
  if (d->epilogue != CUBLASLT_EPILOGUE_DEFAULT && d->epilogue != CUBLASLT_EPILOGUE_BIAS)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (d->epilogue == CUBLASLT_EPILOGUE_BIAS) {
    if (!d->bias) return CUBLAS_STATUS_INVALID_VALUE;
    if (d->bias_type != -1 && d->bias_type != D->type) return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  *p = problem{(int64_t)m, (int64_t)n, (int64_t)k, (int64_t)D->batch, ta, tb,
               d->compute == CUBLAS_COMPUTE_32F_FAST_TF32, A, B, C, D, d};
  return CUBLAS_STATUS_SUCCESS;
}

/* Everything the descriptor and the layouts say, so an algorithm is used only for the problem it was chosen for. */
uint64_t fingerprint(const problem &p) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](uint64_t v) {
    for (int i = 0; i < 8; i++) { h ^= (v >> (8 * i)) & 0xffu; h *= 1099511628211ull; }
  };
  mix((uint64_t)p.desc->compute); mix((uint64_t)p.desc->scale); mix((uint64_t)p.desc->transa);
  mix((uint64_t)p.desc->transb); mix(p.desc->epilogue);
  const dama_shim_lt_layout *all[4] = {p.A, p.B, p.C, p.D};
  for (const dama_shim_lt_layout *l : all) {
    mix((uint64_t)l->type); mix((uint64_t)l->order); mix(l->rows); mix(l->cols); mix((uint64_t)l->ld);
    mix((uint64_t)l->batch); mix((uint64_t)l->stride);
  }
  return h;
}

uint32_t pointer_alignment(const void *ptr) {
  const uintptr_t a = (uintptr_t)ptr;
  uint32_t al = 256;
  while (al > 1 && a % al) al /= 2;
  return al;
}

/* Is every batch element's pointer X + i * stride at least `align`-byte aligned? */
bool aligned(const void *base, const dama_shim_lt_layout *l, int64_t batch, uint32_t align) {
  const int64_t esz = elem_size(l->type);
  for (int64_t i = 0; i < batch; i++)
    if (pointer_alignment((const char *)base + i * l->stride * esz) < align) return false;
  return true;
}

double load(const void *base, int32_t type, int64_t i) {
  switch (type) {
    case CUDA_R_32F: return ((const float *)base)[i];
    case CUDA_R_64F: return ((const double *)base)[i];
    case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)base)[i]);
    default: return __half2float(((const __half *)base)[i]);
  }
}

void store(void *base, int32_t type, int64_t i, double v) {
  switch (type) {
    case CUDA_R_32F: ((float *)base)[i] = (float)v; break;
    case CUDA_R_64F: ((double *)base)[i] = v; break;
    case CUDA_R_16BF: ((__nv_bfloat16 *)base)[i] = __float2bfloat16((float)v); break;
    default: ((__half *)base)[i] = __float2half((float)v); break;
  }
}

/* fp32 -> TF32 (10 mantissa bits), rounding to nearest with ties away from zero as cvt.rna.tf32.f32 */
double to_tf32(double v) {
  float f = (float)v;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&f, &u, 4);
  return f;
}

/* One GEMM as a kernel argument (layouts copied at the call, as cuBLASLt reads them then). */
struct operand {
  const void *p;
  int32_t type, order;
  int64_t ld, stride;
};
struct gemm_args {
  int64_t m, n, k, batch;
  int32_t ta, tb, tf32;
  double alpha, beta;
  operand A, B, C, D;
  const void *bias; /* of D's type, or NULL */
};

operand operand_of(const dama_shim_lt_layout *l, const void *p) { return operand{p, l->type, l->order, l->ld, l->stride}; }

/* element (r, c) of batch element b, in elements from the base pointer */
int64_t offset(const operand &o, int64_t b, int64_t r, int64_t c) {
  return b * o.stride + (o.order == CUBLASLT_ORDER_COL ? r + c * o.ld : r * o.ld + c);
}

/* The product runs as a kernel on the call's stream, so it is ordered with the kernels around it and a CUDA graph
 * capture records it (and replays it) like the GPU's cuBLASLt kernels. A one-thread block per column of D. */
__global__ void shim_gemm_kernel(gemm_args g) {
  for (int64_t job = blockIdx.x; job < g.batch * g.n; job += gridDim.x) {
    const int64_t bi = job / g.n, c = job - bi * g.n;
    for (int64_t r = 0; r < g.m; r++) {
      double acc = 0;
      for (int64_t l = 0; l < g.k; l++) {
        double x = load(g.A.p, g.A.type, g.ta ? offset(g.A, bi, l, r) : offset(g.A, bi, r, l));
        double y = load(g.B.p, g.B.type, g.tb ? offset(g.B, bi, c, l) : offset(g.B, bi, l, c));
        if (g.tf32) { x = to_tf32(x); y = to_tf32(y); }
        acc += x * y;
      }
      double v = g.alpha * acc;
      if (g.beta != 0) v += g.beta * load(g.C.p, g.C.type, offset(g.C, bi, r, c));
      if (g.bias) v += load(g.bias, g.D.type, r);
      store(const_cast<void *>(g.D.p), g.D.type, offset(g.D, bi, r, c), v);
    }
  }
}

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *lightHandle) {
  if (!lightHandle) return CUBLAS_STATUS_INVALID_VALUE;
  *lightHandle = new dama_shim_lt_context{k_handle_magic};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
  if (!h || h->magic != k_handle_magic) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->magic = 0;
  delete h;
  return CUBLAS_STATUS_SUCCESS;
}

const char *cublasLtGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "<unrecognized>";
}

const char *cublasLtGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "an error was detected when checking the current licensing";
  }
  return "an unknown error occurred";
}

size_t cublasLtGetVersion(void) { return 130000; }

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *out, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  if (!out) return CUBLAS_STATUS_INVALID_VALUE;
  if (!elem_size(type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  *out = new dama_shim_lt_layout{k_layout_magic, (int32_t)type, CUBLASLT_ORDER_COL, 1, rows, cols, ld, 0};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
  if (!valid(l)) return CUBLAS_STATUS_INVALID_VALUE;
  l->magic = 0;
  delete l;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                const void *buf, size_t size) {
  if (!valid(l)) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: {
      uint32_t v;
      cublasStatus_t s = read_attr(buf, size, &v);
      if (s == CUBLAS_STATUS_SUCCESS) { if (!elem_size((int32_t)v)) return CUBLAS_STATUS_NOT_SUPPORTED; l->type = (int32_t)v; }
      return s;
    }
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return read_attr(buf, size, &l->order);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return read_attr(buf, size, &l->rows);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return read_attr(buf, size, &l->cols);
    case CUBLASLT_MATRIX_LAYOUT_LD: return read_attr(buf, size, &l->ld);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return read_attr(buf, size, &l->batch);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return read_attr(buf, size, &l->stride);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                void *buf, size_t size, size_t *written) {
  if (!valid(l)) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: return write_attr(buf, size, written, (uint32_t)l->type);
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return write_attr(buf, size, written, l->order);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return write_attr(buf, size, written, l->rows);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return write_attr(buf, size, written, l->cols);
    case CUBLASLT_MATRIX_LAYOUT_LD: return write_attr(buf, size, written, l->ld);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return write_attr(buf, size, written, l->batch);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return write_attr(buf, size, written, l->stride);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *out, cublasComputeType_t compute, cudaDataType_t scale) {
  if (!out) return CUBLAS_STATUS_INVALID_VALUE;
  *out = new dama_shim_lt_desc{k_desc_magic, (int32_t)compute, (int32_t)scale, CUBLASLT_POINTER_MODE_HOST,
                               CUBLAS_OP_N, CUBLAS_OP_N, CUBLAS_OP_N, -1, CUBLASLT_EPILOGUE_DEFAULT, nullptr};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) {
  if (!valid(d)) return CUBLAS_STATUS_INVALID_VALUE;
  d->magic = 0;
  delete d;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t size) {
  if (!valid(d)) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return read_attr(buf, size, &d->compute);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return read_attr(buf, size, &d->scale);
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: return read_attr(buf, size, &d->pointer_mode);
    case CUBLASLT_MATMUL_DESC_TRANSA: return read_attr(buf, size, &d->transa);
    case CUBLASLT_MATMUL_DESC_TRANSB: return read_attr(buf, size, &d->transb);
    case CUBLASLT_MATMUL_DESC_TRANSC: return read_attr(buf, size, &d->transc);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return read_attr(buf, size, &d->epilogue);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return read_attr(buf, size, &d->bias);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return read_attr(buf, size, &d->bias_type);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t attr, void *buf,
                                              size_t size, size_t *written) {
  if (!valid(d)) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return write_attr(buf, size, written, d->compute);
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return write_attr(buf, size, written, d->scale);
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: return write_attr(buf, size, written, d->pointer_mode);
    case CUBLASLT_MATMUL_DESC_TRANSA: return write_attr(buf, size, written, d->transa);
    case CUBLASLT_MATMUL_DESC_TRANSB: return write_attr(buf, size, written, d->transb);
    case CUBLASLT_MATMUL_DESC_TRANSC: return write_attr(buf, size, written, d->transc);
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return write_attr(buf, size, written, d->epilogue);
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return write_attr(buf, size, written, d->bias);
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return write_attr(buf, size, written, d->bias_type);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *out) {
  if (!out) return CUBLAS_STATUS_INVALID_VALUE;
  *out = new dama_shim_lt_pref{k_pref_magic, 0, {256, 256, 256, 256}};
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
  if (!p || p->magic != k_pref_magic) return CUBLAS_STATUS_INVALID_VALUE;
  p->magic = 0;
  delete p;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
                                                    size_t size) {
  if (!p || p->magic != k_pref_magic) return CUBLAS_STATUS_INVALID_VALUE;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return read_attr(buf, size, &p->max_workspace);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return read_attr(buf, size, &p->align[0]);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return read_attr(buf, size, &p->align[1]);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return read_attr(buf, size, &p->align[2]);
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return read_attr(buf, size, &p->align[3]);
  }
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int *returned) {
  if (!h || h->magic != k_handle_magic) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (requested <= 0 || !results || !returned || !pref || pref->magic != k_pref_magic)
    return CUBLAS_STATUS_INVALID_VALUE;
  g_heuristics++;
  *returned = 0;
  problem p;
  cublasStatus_t s = check_problem(desc, Adesc, Bdesc, Cdesc, Ddesc, &p);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  cublasLtMatmulHeuristicResult_t r;
  std::memset(&r, 0, sizeof r);
  r.algo.data[0] = k_algo_magic;
  r.algo.data[1] = fingerprint(p);
  for (int i = 0; i < 4; i++) r.algo.data[2 + i] = pref->align[i];
  r.algo.data[6] = desc->epilogue == CUBLASLT_EPILOGUE_BIAS ? pointer_alignment(desc->bias) : 1;
  r.workspaceSize = 0;
  r.state = CUBLAS_STATUS_SUCCESS;
  r.wavesCount = 1.0f;
  results[0] = r;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void *alpha, const void *A,
                              cublasLtMatrixLayout_t Adesc, const void *B, cublasLtMatrixLayout_t Bdesc,
                              const void *beta, const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo, void *workspace,
                              size_t workspaceSize, cudaStream_t stream) {
  (void)workspace; (void)workspaceSize; /* the algorithm needs no workspace */
  if (!h || h->magic != k_handle_magic) return CUBLAS_STATUS_NOT_INITIALIZED;
  problem p;
  cublasStatus_t s = check_problem(desc, Adesc, Bdesc, Cdesc, Ddesc, &p);
  if (s != CUBLAS_STATUS_SUCCESS) return s;
  if (!alpha || !beta || !A || !B || !D) return CUBLAS_STATUS_INVALID_VALUE;
  const bool dbl = desc->scale == CUDA_R_64F;
  const double a = dbl ? *(const double *)alpha : *(const float *)alpha;
  const double b = dbl ? *(const double *)beta : *(const float *)beta;
  if (b != 0 && !C) return CUBLAS_STATUS_INVALID_VALUE;
  if (algo) {
    if (algo->data[0] != k_algo_magic || algo->data[1] != fingerprint(p)) return CUBLAS_STATUS_INVALID_VALUE;
    if (!aligned(A, p.A, p.batch, (uint32_t)algo->data[2]) || !aligned(B, p.B, p.batch, (uint32_t)algo->data[3]) ||
        (b != 0 && !aligned(C, p.C, p.batch, (uint32_t)algo->data[4])) || !aligned(D, p.D, p.batch, (uint32_t)algo->data[5]))
      return CUBLAS_STATUS_INVALID_VALUE;
    if (desc->epilogue == CUBLASLT_EPILOGUE_BIAS && pointer_alignment(desc->bias) < (uint32_t)algo->data[6])
      return CUBLAS_STATUS_INVALID_VALUE;
  }
  g_matmuls++;
  gemm_args ga{p.m, p.n, p.k, p.batch, p.ta, p.tb, p.tf32, a, b, operand_of(p.A, A), operand_of(p.B, B),
               operand_of(p.C, C), operand_of(p.D, D), desc->epilogue == CUBLASLT_EPILOGUE_BIAS ? desc->bias : nullptr};
  const int64_t jobs = p.batch * p.n;
  if (jobs > 0 && p.m > 0) {
    (void)cudaGetLastError(); /* only this launch's error below */
    DAMA_LAUNCH(shim_gemm_kernel, (unsigned)(jobs < 1024 ? jobs : 1024), 1, 0, stream, ga);
    if (cudaGetLastError() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

void dama_interp_cublaslt_counts(int64_t *heuristics, int64_t *matmuls) {
  if (heuristics) *heuristics = g_heuristics.load();
  if (matmuls) *matmuls = g_matmuls.load();
}

} // extern "C"
