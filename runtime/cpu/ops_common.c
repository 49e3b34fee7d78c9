/* Shared machinery of the CPU op kernels: the CPU's argument check, typed run conversion, the strided iterator and
 * its parallel driver (see ops_internal.h). The device-independent checks are in core/op_args.c. */
#include "cpu/ops_internal.h"
#include "core/backend.h"
#include <omp.h>

dama_status ops_check(const char *op, const char *what, const dama_tensor *t) {
  DAMA_TRY(ops_arg_check(op, what, t));
  /* the CPU kernels run on cpu and on the sim test device (host memory, reached through dama_kernel_ptr) */
  if (t->storage && t->storage->device.type != DAMA_CPU && t->storage->device.type != DAMA_SIM) {
    char dev[32];
    return dama_error(DAMA_ERR_DEVICE, "%s: tensor '%s' is on %s; the CPU kernels need cpu or sim tensors", op, what,
                      dama_device_str(t->storage->device, dev, sizeof dev));
  }
  return DAMA_OK;
}

/* ---- typed conversion of runs ---- */

/* f16 <-> f32 in one instruction where the CPU has F16C (same IEEE results as dama_f16_to_f32 /
 * dama_f32_to_f16: exact widening, round-to-nearest-even narrowing). */
#if defined(__F16C__)
#include <immintrin.h>
#define F16_TO_F32(h) _cvtsh_ss(h)
#define F32_TO_F16(f) _cvtss_sh((f), 0)
#else
#define F16_TO_F32(h) dama_f16_to_f32(h)
#define F32_TO_F16(f) dama_f32_to_f16(f)
#endif

static inline int64_t f2i(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}

#define LOAD_LOOP(ST, DT, CONV)                                                       \
  do { const ST *s_ = (const ST *)src; DT *d_ = (DT *)dst;                              \
    if (stride == 1) for (int64_t i = 0; i < n; i++) d_[i] = (DT)CONV(s_[i]);           \
    else for (int64_t i = 0; i < n; i++) d_[i] = (DT)CONV(s_[i * stride]); } while (0)
#define ID(x) (x)

#define LOAD_ALL(DT)                                                                  \
  switch (t) {                                                                        \
    case DAMA_F32: LOAD_LOOP(float, DT, ID); break;                                   \
    case DAMA_F64: LOAD_LOOP(double, DT, ID); break;                                  \
    case DAMA_BF16: LOAD_LOOP(uint16_t, DT, dama_bf16_to_f32); break;                 \
    case DAMA_F16: LOAD_LOOP(uint16_t, DT, F16_TO_F32); break;                   \
    case DAMA_U8: LOAD_LOOP(uint8_t, DT, ID); break;                                  \
    case DAMA_U16: LOAD_LOOP(uint16_t, DT, ID); break;                                \
    case DAMA_I32: LOAD_LOOP(int32_t, DT, ID); break;                                 \
    case DAMA_I64: LOAD_LOOP(int64_t, DT, ID); break;                                 \
    default: break;                                                                   \
  }

void ops_load(ops_kind k, dama_dtype t, const char *src, int64_t stride, int64_t n, void *dst) {
  if (k == OPS_KF32) { LOAD_ALL(float) }
  else if (k == OPS_KF64) { LOAD_ALL(double) }
  else {
    switch (t) { /* floats to ints only happen for in-place stores of float results; truncate */
      case DAMA_F32: LOAD_LOOP(float, int64_t, f2i); break;
      case DAMA_F64: LOAD_LOOP(double, int64_t, f2i); break;
      case DAMA_BF16: LOAD_LOOP(uint16_t, int64_t, (double)dama_bf16_to_f32); break;
      case DAMA_F16: LOAD_LOOP(uint16_t, int64_t, (double)F16_TO_F32); break;
      default: LOAD_ALL(int64_t)
    }
  }
}

#define STORE_LOOP(ST, DT, CONV)                                                      \
  do { const ST *s_ = (const ST *)src; DT *d_ = (DT *)dst;                              \
    if (stride == 1) for (int64_t i = 0; i < n; i++) d_[i] = (DT)CONV(s_[i]);           \
    else for (int64_t i = 0; i < n; i++) d_[i * stride] = (DT)CONV(s_[i]); } while (0)
#define TO_BF16(x) dama_f32_to_bf16((float)(x))
#define TO_F16(x) F32_TO_F16((float)(x))

#define STORE_FLOAT(ST)                                                               \
  switch (t) {                                                                        \
    case DAMA_F32: STORE_LOOP(ST, float, ID); break;                                  \
    case DAMA_F64: STORE_LOOP(ST, double, ID); break;                                 \
    case DAMA_BF16: STORE_LOOP(ST, uint16_t, TO_BF16); break;                         \
    case DAMA_F16: STORE_LOOP(ST, uint16_t, TO_F16); break;                           \
    case DAMA_U8: STORE_LOOP(ST, uint8_t, f2i); break;                                \
    case DAMA_U16: STORE_LOOP(ST, uint16_t, f2i); break;                              \
    case DAMA_I32: STORE_LOOP(ST, int32_t, f2i); break;                               \
    case DAMA_I64: STORE_LOOP(ST, int64_t, f2i); break;                               \
    default: break;                                                                   \
  }

void ops_store(ops_kind k, const void *src, dama_dtype t, char *dst, int64_t stride, int64_t n) {
  if (k == OPS_KF32) { STORE_FLOAT(float) }
  else if (k == OPS_KF64) { STORE_FLOAT(double) }
  else {
    switch (t) {
      case DAMA_F32: STORE_LOOP(int64_t, float, ID); break;
      case DAMA_F64: STORE_LOOP(int64_t, double, ID); break;
      case DAMA_BF16: STORE_LOOP(int64_t, uint16_t, TO_BF16); break;
      case DAMA_F16: STORE_LOOP(int64_t, uint16_t, TO_F16); break;
      case DAMA_U8: STORE_LOOP(int64_t, uint8_t, ID); break;
      case DAMA_U16: STORE_LOOP(int64_t, uint16_t, ID); break;
      case DAMA_I32: STORE_LOOP(int64_t, int32_t, (uint32_t)); break;
      case DAMA_I64: STORE_LOOP(int64_t, int64_t, ID); break;
      default: break;
    }
  }
}

void ops_scalar_bytes(double v, dama_dtype t, void *out) {
  if (dama_dtype_is_float(t)) ops_store(OPS_KF64, &v, t, out, 1, 1);
  else { int64_t i = f2i(v); ops_store(OPS_KI64, &i, t, out, 1, 1); }
}

void ops_scalar_init(ops_scalar *s, double v, dama_dtype t) {
  memset(s, 0, sizeof *s);
  ops_scalar_bytes(v, t, &s->v);
  s->st.data = &s->v;
  s->st.nbytes = 8;
  s->st.refcount = 1;
  s->st.device = dama_cpu();
  s->t.storage = &s->st;
  s->t.ndim = 0;
  s->t.dtype = t;
  s->t.refcount = 1;
}

/* ---- iterator ---- */

void ops_iter_init(ops_iter *it, int32_t nd, const int64_t *shape, int32_t nops, const dama_tensor *const *ts,
                   int reorder) {
  memset(it, 0, sizeof *it);
  it->nops = nops;
  int64_t sh[DAMA_MAX_DIMS], st[OPS_MAX_OPERANDS][DAMA_MAX_DIMS];
  int64_t numel = 1;
  for (int32_t i = 0; i < nd; i++) numel *= shape[i];
  it->numel = numel;
  for (int32_t k = 0; k < nops; k++) {
    const dama_tensor *t = ts[k];
    it->elsize[k] = dama_dtype_size((dama_dtype)t->dtype);
    it->base[k] = (char *)dama_kernel_ptr(t);
  }
  /* keep the dims of size != 1, with broadcast strides */
  int32_t m = 0;
  for (int32_t i = 0; i < nd; i++) {
    if (shape[i] == 1) continue;
    sh[m] = shape[i];
    for (int32_t k = 0; k < nops; k++) {
      const dama_tensor *t = ts[k];
      int32_t j = i - (nd - t->ndim);
      st[k][m] = (j >= 0 && t->shape[j] != 1) ? t->strides[j] : 0;
    }
    m++;
  }
  /* order dims by operand 0's |stride| (stable insertion sort, largest first) */
  if (reorder) {
    for (int32_t i = 1; i < m; i++) {
      for (int32_t j = i; j > 0; j--) {
        int64_t s0 = st[0][j - 1] < 0 ? -st[0][j - 1] : st[0][j - 1], s1 = st[0][j] < 0 ? -st[0][j] : st[0][j];
        if (s0 >= s1 || s0 == 0) break;
        int64_t tmp = sh[j]; sh[j] = sh[j - 1]; sh[j - 1] = tmp;
        for (int32_t k = 0; k < nops; k++) { tmp = st[k][j]; st[k][j] = st[k][j - 1]; st[k][j - 1] = tmp; }
      }
    }
  }
  /* merge adjacent dims that are contiguous for every operand */
  int32_t r = 0;
  for (int32_t i = 0; i < m; i++) {
    if (r > 0) {
      bool ok = true;
      for (int32_t k = 0; k < nops && ok; k++) ok = st[k][r - 1] == st[k][i] * sh[i];
      if (ok) {
        it->shape[r - 1] *= sh[i];
        for (int32_t k = 0; k < nops; k++) it->strides[k][r - 1] = st[k][i];
        continue;
      }
    }
    it->shape[r] = sh[i];
    for (int32_t k = 0; k < nops; k++) it->strides[k][r] = st[k][i];
    r++;
  }
  if (r == 0) { /* a single element (or an empty tensor with all other dims 1) */
    it->shape[0] = numel;
    for (int32_t k = 0; k < nops; k++) it->strides[k][0] = 0;
    r = 1;
  }
  it->ndim = r;
}

static void run_range(const ops_iter *it, ops_run_fn fn, void *ctx, int64_t start, int64_t end) {
  if (start >= end) return;
  const int32_t L = it->ndim - 1, nops = it->nops;
  int64_t idx[DAMA_MAX_DIMS];
  char *ptr[OPS_MAX_OPERANDS];
  int64_t inner[OPS_MAX_OPERANDS];
  int64_t rem = start;
  for (int32_t d = L; d >= 0; d--) { idx[d] = rem % it->shape[d]; rem /= it->shape[d]; }
  for (int32_t k = 0; k < nops; k++) {
    int64_t off = 0;
    for (int32_t d = 0; d <= L; d++) off += idx[d] * it->strides[k][d];
    ptr[k] = it->base[k] + off * it->elsize[k];
    inner[k] = it->strides[k][L];
  }
  int64_t pos = start;
  while (pos < end) {
    int64_t n = it->shape[L] - idx[L];
    if (n > end - pos) n = end - pos;
    fn(ctx, ptr, inner, n);
    pos += n;
    if (pos >= end) break;
    idx[L] += n;
    for (int32_t k = 0; k < nops; k++) ptr[k] += n * inner[k] * it->elsize[k];
    for (int32_t d = L; d > 0 && idx[d] == it->shape[d]; d--) {
      idx[d] = 0;
      idx[d - 1]++;
      for (int32_t k = 0; k < nops; k++)
        ptr[k] += (it->strides[k][d - 1] - it->shape[d] * it->strides[k][d]) * it->elsize[k];
    }
  }
}

/* ---- tiled traversal: when some operand walks the inner dim with a large stride but the next dim with
 * stride 1 (a transposed operand), go through the last two dims in TILE x TILE blocks so both the
 * row-major and the transposed operand stay in cache. */
#define TILE 32

typedef struct tiled { const ops_iter *it; ops_run_fn fn; void *ctx; int64_t t0, t1, outer; } tiled;

static void tiled_range(void *vctx, int64_t b, int64_t e) {
  const tiled *tc = vctx;
  const ops_iter *it = tc->it;
  const int32_t L = it->ndim - 1, nops = it->nops;
  const int64_t n0 = it->shape[L], n1 = it->shape[L - 1];
  int64_t inner[OPS_MAX_OPERANDS];
  for (int32_t k = 0; k < nops; k++) inner[k] = it->strides[k][L];
  for (int64_t w = b; w < e; w++) {
    int64_t rem = w;
    const int64_t j0 = (rem % tc->t0) * TILE; rem /= tc->t0;
    const int64_t i0 = (rem % tc->t1) * TILE; rem /= tc->t1;
    int64_t off[OPS_MAX_OPERANDS] = {0};
    for (int32_t d = L - 2; d >= 0; d--) {
      const int64_t x = rem % it->shape[d];
      rem /= it->shape[d];
      for (int32_t k = 0; k < nops; k++) off[k] += x * it->strides[k][d];
    }
    const int64_t ni = n1 - i0 < TILE ? n1 - i0 : TILE, nj = n0 - j0 < TILE ? n0 - j0 : TILE;
    for (int64_t i = 0; i < ni; i++) {
      char *ptr[OPS_MAX_OPERANDS];
      for (int32_t k = 0; k < nops; k++)
        ptr[k] = it->base[k] + (off[k] + (i0 + i) * it->strides[k][L - 1] + j0 * inner[k]) * it->elsize[k];
      tc->fn(tc->ctx, ptr, inner, nj);
    }
  }
}

static bool wants_tiles(const ops_iter *it) {
  if (it->ndim < 2) return false;
  const int32_t L = it->ndim - 1;
  if (it->shape[L] < TILE || it->shape[L - 1] < TILE) return false;
  for (int32_t k = 0; k < it->nops; k++) {
    int64_t si = it->strides[k][L], so = it->strides[k][L - 1];
    if ((si > 1 || si < -1) && (so == 1 || so == -1)) return true;
  }
  return false;
}

dama_status ops_iter_run(const ops_iter *it, ops_run_fn fn, void *ctx, const char *op) {
  const int64_t N = it->numel;
  if (N == 0) return DAMA_OK;
  if (wants_tiles(it)) {
    const int32_t L = it->ndim - 1;
    tiled tc = {it, fn, ctx, (it->shape[L] + TILE - 1) / TILE, (it->shape[L - 1] + TILE - 1) / TILE, 0};
    tc.outer = N / (it->shape[L] * it->shape[L - 1]);
    return ops_parallel_range(tc.outer * tc.t1 * tc.t0, 16, TILE * TILE, tiled_range, &tc, op);
  }
  /* One parallel region per op (every extra region costs a join, which is slow when the machine is
   * oversubscribed); each thread polls for Ctrl-C between OPS_CHUNK-element pieces of its range. */
  const int nt = omp_get_max_threads();
  volatile int stop = 0;
  if (dama_interrupt_pending()) return dama_error(DAMA_ERR_INTERRUPTED, "%s: interrupted", op);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && N >= OPS_PAR_MIN)
  for (int t = 0; t < nt; t++) {
    const int64_t b = N * t / nt, e = N * (t + 1) / nt;
    for (int64_t s = b; s < e && !stop; s += OPS_CHUNK) {
      if (s > b && dama_interrupt_pending()) { stop = 1; break; }
      run_range(it, fn, ctx, s, s + OPS_CHUNK < e ? s + OPS_CHUNK : e);
    }
  }
  if (stop) return dama_error(DAMA_ERR_INTERRUPTED, "%s: interrupted", op);
  return DAMA_OK;
}

dama_status ops_parallel_range(int64_t n, int64_t grain, int64_t work, ops_range_fn fn, void *ctx, const char *op) {
  if (n <= 0) return DAMA_OK;
  if (grain < 1) grain = 1;
  if (work < 1) work = 1;
  const int nt = omp_get_max_threads();
  const int64_t nchunks = (n + grain - 1) / grain;
  const int par = nt > 1 && nchunks > 1 && n * work >= OPS_PAR_MIN;
  /* poll for Ctrl-C about every OPS_CHUNK elements of work */
  int64_t poll = OPS_CHUNK / (grain * work);
  if (poll < 1) poll = 1;
  volatile int stop = 0;
  if (dama_interrupt_pending()) return dama_error(DAMA_ERR_INTERRUPTED, "%s: interrupted", op);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t c = 0; c < nchunks; c++) {
    if (stop) continue;
    if (c % poll == poll - 1 && dama_interrupt_pending()) { stop = 1; continue; }
    int64_t b = c * grain, e = b + grain < n ? b + grain : n;
    fn(ctx, b, e);
  }
  if (stop) return dama_error(DAMA_ERR_INTERRUPTED, "%s: interrupted", op);
  return DAMA_OK;
}
