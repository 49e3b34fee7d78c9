/* dama_matmul on the CPU through cblas: f32 (sgemm), f64 (dgemm); bf16/f16 are converted to f32, multiplied
 * with sgemm and rounded back (result keeps the input dtype). Semantics of torch.matmul: 1-D operands get a
 * dim prepended (a) / appended (b) that is removed from the result; batch dims broadcast.
 * A matrix operand whose strides BLAS can describe (row-major or transposed, any leading dim) is passed
 * as is; any other layout (stride 0, negative or gapped inner strides) is copied once. A batched `a` whose
 * batch dims are contiguous over its rows, times an unbatched `b`, runs as one large GEMM. */
#include "cpu/ops_internal.h"
#include "core/backend.h"
#include <cblas.h>
#include <limits.h>
#include <omp.h>

/* Can BLAS read a rows x cols matrix with strides (rs, cs)? Sets trans and the leading dim. */
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

typedef struct mat_operand {
  dama_tensor *t;        /* the (possibly copied) >= 2-d view */
  int trans;
  int64_t ld;
  int64_t bstride[DAMA_MAX_DIMS]; /* batch strides aligned to the output batch dims (0 = broadcast) */
} mat_operand;

static dama_status prepare(const char *op, mat_operand *o, dama_tensor *v, int32_t nb) {
  const int32_t nd = v->ndim;
  const int64_t rows = v->shape[nd - 2], cols = v->shape[nd - 1];
  if (!blas_layout(rows, cols, v->strides[nd - 2], v->strides[nd - 1], &o->trans, &o->ld)) {
    dama_tensor *c = NULL;
    dama_status s = ops_to_dtype(&c, v, (dama_dtype)v->dtype);
    dama_tensor_release(v);
    if (s != DAMA_OK) return s;
    v = c;
    if (!blas_layout(rows, cols, v->strides[nd - 2], v->strides[nd - 1], &o->trans, &o->ld))
      return dama_error(DAMA_ERR_INTERNAL, "%s: contiguous operand not BLAS-compatible", op);
  }
  o->t = v;
  const int32_t vb = nd - 2;
  for (int32_t i = 0; i < nb; i++) {
    int32_t j = i - (nb - vb);
    o->bstride[i] = (j >= 0 && v->shape[j] != 1) ? v->strides[j] : 0;
  }
  return DAMA_OK;
}

typedef struct mm_batch {
  dama_dtype dt;
  const mat_operand *A, *B;
  const char *abase, *bbase;
  char *cbase;
  int32_t nb;
  const int64_t *bshape;
  int64_t m, n, k;
} mm_batch;

/* rows [r0, r0 + rows) of product bi */
static void mm_rows(const mm_batch *c, int64_t bi, int64_t r0, int64_t rows) {
  const mat_operand *A = c->A, *B = c->B;
  const CBLAS_TRANSPOSE ta = A->trans ? CblasTrans : CblasNoTrans, tb = B->trans ? CblasTrans : CblasNoTrans;
  const int n = (int)c->n, k = (int)c->k;
  int64_t ao = 0, bo = 0, rem = bi;
  for (int32_t i = c->nb - 1; i >= 0; i--) {
    const int64_t x = rem % c->bshape[i];
    rem /= c->bshape[i];
    ao += x * A->bstride[i];
    bo += x * B->bstride[i];
  }
  ao += A->trans ? r0 : r0 * A->ld;           /* row r0 of op(A) */
  const int64_t co = bi * c->m * c->n + r0 * c->n;
  if (c->dt == DAMA_F32)
    cblas_sgemm(CblasRowMajor, ta, tb, (int)rows, n, k, 1.0f, (const float *)(const void *)c->abase + ao, (int)A->ld,
                (const float *)(const void *)c->bbase + bo, (int)B->ld, 0.0f, (float *)(void *)c->cbase + co, n);
  else
    cblas_dgemm(CblasRowMajor, ta, tb, (int)rows, n, k, 1.0, (const double *)(const void *)c->abase + ao, (int)A->ld,
                (const double *)(const void *)c->bbase + bo, (int)B->ld, 0.0, (double *)(void *)c->cbase + co, n);
}

/* products [b, e) of the batch */
static void mm_range(void *vctx, int64_t b, int64_t e) {
  const mm_batch *c = vctx;
  for (int64_t bi = b; bi < e; bi++) mm_rows(c, bi, 0, c->m);
}

static dama_status gemm_batches(const char *op, dama_dtype dt, const mat_operand *A, const mat_operand *B,
                                dama_tensor *out, int32_t nb, const int64_t *bshape, int64_t m, int64_t n, int64_t k) {
  int64_t batch = 1;
  for (int32_t i = 0; i < nb; i++) batch *= bshape[i];
  const int esz = dama_dtype_size(dt);
  char *abase = dama_kernel_ptr(A->t), *bbase = dama_kernel_ptr(B->t), *cbase = dama_kernel_ptr(out);
  if (m == 0 || n == 0 || batch == 0) return DAMA_OK;
  if (k == 0) { memset(cbase, 0, (size_t)(batch * m * n * esz)); return DAMA_OK; }
  if (m > INT_MAX || n > INT_MAX || k > INT_MAX)
    return dama_error(DAMA_ERR_ARG, "%s: matrix sizes must fit in 32 bits for BLAS (m=%lld n=%lld k=%lld)", op,
                      (long long)m, (long long)n, (long long)k);
  /* fold a's batch into its rows when b is shared and a's batch dims are contiguous over its rows */
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
    if (chain && batch * m <= INT_MAX) { m *= batch; batch = 1; }
  }
  mm_batch mb = {dt, A, B, abase, bbase, cbase, nb, bshape, m, n, k};
  /* many small products: one BLAS thread per product, products spread over OpenMP threads (each product
   * is computed by exactly one call, so results do not depend on the thread count) */
  const int nt = omp_get_max_threads();
  if (nt > 1 && batch >= 2 * nt && m * n * k <= (int64_t)128 * 128 * 128) {
    const int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    dama_status s = ops_parallel_range(batch, 1, m * n * k / 64 + 1, mm_range, &mb, op);
    openblas_set_num_threads(blas_threads);
    return s;
  }
  /* big products run as panels of rows so Ctrl-C stops them within a fraction of the call (each panel
   * repacks op(B): O(k n) against O(panel k n) work) */
  const int64_t panel = m * n * k > ((int64_t)1 << 28) ? 256 : m;
  for (int64_t bi = 0; bi < batch; bi++) {
    for (int64_t r0 = 0; r0 < m; r0 += panel) {
      if (dama_interrupt_pending()) return dama_error(DAMA_ERR_INTERRUPTED, "%s: interrupted", op);
      mm_rows(&mb, bi, r0, m - r0 < panel ? m - r0 : panel);
    }
  }
  return DAMA_OK;
}

static dama_status matmul_float(dama_tensor **out, const dama_tensor *a, const dama_tensor *b) {
  const char *op = "matmul";
  ops_matmul_shape sh;
  DAMA_TRY(ops_matmul_shapes(a, b, &sh));
  dama_tensor *va = sh.va, *vb = sh.vb;
  const int64_t m = sh.m, k = sh.k, n = sh.n;
  const int32_t nb = sh.nb, ond = sh.ond;
  const int64_t *bshape = sh.bshape, *oshape = sh.oshape;
  dama_status s;
  mat_operand A = {0}, B = {0};
  s = prepare(op, &A, va, nb);
  if (s != DAMA_OK) { dama_tensor_release(vb); return s; }
  s = prepare(op, &B, vb, nb);
  if (s != DAMA_OK) { dama_tensor_release(A.t); return s; }
  s = dama_empty(out, ond, oshape, (dama_dtype)a->dtype, a->storage->device);
  if (s == DAMA_OK) s = gemm_batches(op, (dama_dtype)a->dtype, &A, &B, *out, nb, bshape, m, n, k);
  dama_tensor_release(A.t);
  dama_tensor_release(B.t);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

dama_status dama_cpu_matmul(dama_tensor **out, const dama_tensor *a, const dama_tensor *b) {
  if (!out) return dama_error(DAMA_ERR_ARG, "matmul: out is NULL");
  *out = NULL;
  DAMA_TRY(ops_check("matmul", "a", a));
  DAMA_TRY(ops_check("matmul", "b", b));
  DAMA_TRY(ops_matmul_check(a, b));
  const dama_dtype ta = (dama_dtype)a->dtype;
  if (ta == DAMA_F32 || ta == DAMA_F64) return matmul_float(out, a, b);
  /* bf16 / f16: through f32 */
  dama_tensor *fa = NULL, *fb = NULL, *fo = NULL;
  dama_status s = ops_to_dtype(&fa, a, DAMA_F32);
  if (s == DAMA_OK) s = ops_to_dtype(&fb, b, DAMA_F32);
  if (s == DAMA_OK) s = matmul_float(&fo, fa, fb);
  if (s == DAMA_OK) s = ops_to_dtype(out, fo, ta);
  dama_tensor_release(fa);
  dama_tensor_release(fb);
  dama_tensor_release(fo);
  return s;
}
