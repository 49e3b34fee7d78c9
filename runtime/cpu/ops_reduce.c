/* Reductions on the CPU: sum, mean, var/std, max/min, argmax/argmin, norm, prod over any set of dims,
 * and max_dim/min_dim (values + indices).
 *
 * The input is viewed as [R rows, L reduced elements]: the kept dims are moved first and the reduced dims
 * last; when that view is not contiguous it is copied once. Each row is cut into fixed chunks of RCHUNK
 * elements, every (row, chunk) gets its own partial state, and partials are combined in chunk order, so
 * results never depend on the thread count. Float sums accumulate in double; var/std combine per-chunk
 * two-pass moments with Chan's formula. NaN propagates through max/min (and argmax/argmin point at the
 * first NaN), like torch. */
#include "cpu/ops_internal.h"
#include "core/backend.h"
#include <stdlib.h>

#define RCHUNK 8192

/* Partial state of one chunk. d: float sum / mean / extreme value; m2: second moment; i: int sum /
 * extreme; n: count; idx: arg index (in the row). */
typedef struct rstate { double d, m2; int64_t i, n, idx; } rstate;

typedef struct rctx {
  dama_redop op;
  ops_kind kind;        /* compute kind of the input */
  dama_dtype dt;        /* input dtype */
  const char *data;     /* contiguous [R, L] */
  int64_t R, L, nch;
  double p;             /* norm order */
  rstate *st;           /* R * nch partial states */
} rctx;

static inline bool is_max(dama_redop op) { return op == DAMA_RMAX || op == DAMA_RARGMAX; }

/* Sums with 8 independent double accumulators: vectorisable (a single accumulator is a latency-bound
 * dependency chain) and still a fixed order, so results stay deterministic. */
#define DEFINE_SUMS(S, T)                                                                        \
  static inline double sum8_##S(const T *x, int64_t n) {                                          \
    double a[8] = {0}; int64_t k = 0;                                                            \
    for (; k + 8 <= n; k += 8) for (int j = 0; j < 8; j++) a[j] += (double)x[k + j];             \
    double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));               \
    for (; k < n; k++) s += (double)x[k];                                                        \
    return s;                                                                                    \
  }                                                                                              \
  static inline double dev8_##S(const T *x, int64_t n, double m) { /* sum of (x - m)^2 */         \
    double a[8] = {0}; int64_t k = 0;                                                            \
    for (; k + 8 <= n; k += 8) for (int j = 0; j < 8; j++) { double d = (double)x[k + j] - m; a[j] += d * d; } \
    double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));               \
    for (; k < n; k++) { double d = (double)x[k] - m; s += d * d; }                              \
    return s;                                                                                    \
  }
DEFINE_SUMS(f32, float)
DEFINE_SUMS(f64, double)
DEFINE_SUMS(i64, int64_t)

/* Reduce n values of type T (a chunk starting at row index base) into *s. */
#define CHUNK_BODY(T, ISFLOAT, S)                                                                 \
  do {                                                                                           \
    const T *x = (const T *)buf;                                                                 \
    switch (c->op) {                                                                             \
      case DAMA_RSUM: case DAMA_RMEAN:                                                           \
        if (ISFLOAT) s->d = sum8_##S(x, n);                                                     \
        else { uint64_t acc = 0; for (int64_t k = 0; k < n; k++) acc += (uint64_t)(int64_t)x[k]; s->i = (int64_t)acc; } \
        break;                                                                                   \
      case DAMA_RPROD:                                                                           \
        if (ISFLOAT) { double acc = 1; for (int64_t k = 0; k < n; k++) acc *= (double)x[k]; s->d = acc; } \
        else { uint64_t acc = 1; for (int64_t k = 0; k < n; k++) acc *= (uint64_t)(int64_t)x[k]; s->i = (int64_t)acc; } \
        break;                                                                                   \
      case DAMA_RVAR: case DAMA_RSTD: {                                                          \
        double mean = sum8_##S(x, n) / (double)n;                                                 \
        s->d = mean; s->m2 = dev8_##S(x, n, mean); break; }                                      \
      case DAMA_RNORM: {                                                                         \
        double acc = 0, p = c->p;                                                                \
        if (p == 2) acc = dev8_##S(x, n, 0);                                                     \
        else if (p == 1) { for (int64_t k = 0; k < n; k++) acc += fabs((double)x[k]); }           \
        else if (p == INFINITY) { for (int64_t k = 0; k < n; k++) { double v = fabs((double)x[k]); if (!(v <= acc)) acc = v; } } \
        else if (p == -INFINITY) { acc = INFINITY; for (int64_t k = 0; k < n; k++) { double v = fabs((double)x[k]); if (!(v >= acc)) acc = v; } } \
        else if (p == 0) { for (int64_t k = 0; k < n; k++) acc += x[k] != 0; }                    \
        else { for (int64_t k = 0; k < n; k++) acc += pow(fabs((double)x[k]), p); }               \
        s->d = acc; break; }                                                                     \
      default: { /* max/min/argmax/argmin: first extreme, NaN wins and sticks */                 \
        const bool mx = is_max(c->op);                                                           \
        T best = x[0]; int64_t bi = 0;                                                           \
        for (int64_t k = 1; k < n; k++) {                                                        \
          T v = x[k];                                                                            \
          if (best != best) break;                                                               \
          if (v != v || (mx ? v > best : v < best)) { best = v; bi = k; }                        \
        }                                                                                        \
        if (ISFLOAT) s->d = (double)best; else s->i = (int64_t)best;                              \
        s->idx = base + bi; break; }                                                             \
    }                                                                                            \
  } while (0)

static void reduce_chunk(const rctx *c, int64_t r, int64_t ch, rstate *s) {
  const int64_t base = ch * RCHUNK;
  int64_t n = c->L - base;
  if (n > RCHUNK) n = RCHUNK;
  s->n = n;
  const int esz = dama_dtype_size(c->dt);
  const char *src = c->data + (r * c->L + base) * esz;
  _Alignas(64) char tmp[RCHUNK * 8];
  const void *buf = src;
  if (c->dt != ops_kind_dtype(c->kind)) { ops_load(c->kind, c->dt, src, 1, n, tmp); buf = tmp; }
  if (c->kind == OPS_KF32) CHUNK_BODY(float, 1, f32);
  else if (c->kind == OPS_KF64) CHUNK_BODY(double, 1, f64);
  else CHUNK_BODY(int64_t, 0, i64);
}

static void combine(const rctx *c, rstate *a, const rstate *b) {
  const bool fl = c->kind != OPS_KI64;
  switch (c->op) {
    case DAMA_RSUM: case DAMA_RMEAN:
      if (fl) a->d += b->d; else a->i = (int64_t)((uint64_t)a->i + (uint64_t)b->i);
      break;
    case DAMA_RPROD:
      if (fl) a->d *= b->d; else a->i = (int64_t)((uint64_t)a->i * (uint64_t)b->i);
      break;
    case DAMA_RVAR: case DAMA_RSTD: {
      double na = (double)a->n, nb = (double)b->n, nn = na + nb, delta = b->d - a->d;
      a->d += delta * nb / nn;
      a->m2 += b->m2 + delta * delta * na * nb / nn;
      break;
    }
    case DAMA_RNORM:
      if (c->p == INFINITY) { if (!(b->d <= a->d)) a->d = b->d; }
      else if (c->p == -INFINITY) { if (!(b->d >= a->d)) a->d = b->d; }
      else a->d += b->d;
      break;
    default: {
      const bool mx = is_max(c->op);
      if (fl) {
        if (a->d != a->d) break;
        if (b->d != b->d || (mx ? b->d > a->d : b->d < a->d)) { a->d = b->d; a->idx = b->idx; }
      } else if (mx ? b->i > a->i : b->i < a->i) { a->i = b->i; a->idx = b->idx; }
    }
  }
  a->n += b->n;
}

static void reduce_range(void *vctx, int64_t b, int64_t e) {
  const rctx *c = vctx;
  for (int64_t w = b; w < e; w++) reduce_chunk(c, w / c->nch, w % c->nch, &c->st[w]);
}

/* Finished value of a row as double (float results) or int64 (int results). */
static void finish(const rctx *c, const rstate *s, int correction, double *d, int64_t *i) {
  const bool fl = c->kind != OPS_KI64;
  const int64_t L = c->L;
  switch (c->op) {
    case DAMA_RSUM: case DAMA_RPROD:
      if (fl) *d = s->d; else *i = s->i;
      break;
    case DAMA_RMEAN: *d = (fl ? s->d : (double)s->i) / (double)L; break;
    case DAMA_RVAR: case DAMA_RSTD: {
      double dof = (double)L - correction;
      double v = L == 0 ? NAN : s->m2 / (dof > 0 ? dof : 0);
      *d = c->op == DAMA_RSTD ? sqrt(v) : v;
      break;
    }
    case DAMA_RNORM: {
      double p = c->p;
      *d = (p == 1 || p == 0 || isinf(p)) ? s->d : p == 2 ? sqrt(s->d) : pow(s->d, 1.0 / p);
      if (L == 0 && p == -INFINITY) *d = INFINITY;
      break;
    }
    case DAMA_RARGMAX: case DAMA_RARGMIN: *i = s->idx; break;
    default: if (fl) *d = s->d; else *i = s->i;
  }
}

/* Identity state of an empty row. */
static void empty_state(const rctx *c, rstate *s) {
  memset(s, 0, sizeof *s);
  if (c->op == DAMA_RPROD) { s->d = 1; s->i = 1; }
  if (c->op == DAMA_RNORM && c->p == -INFINITY) s->d = INFINITY;
}

/* Compute every row's state into st[R] (combined). `a` is contiguous [R, L]. */
static dama_status reduce_rows(rctx *c, rstate *rows, const char *name) {
  if (c->R == 0) return DAMA_OK;
  if (c->L == 0) {
    for (int64_t r = 0; r < c->R; r++) empty_state(c, &rows[r]);
    return DAMA_OK;
  }
  c->nch = (c->L + RCHUNK - 1) / RCHUNK;
  const int64_t W = c->R * c->nch;
  c->st = c->nch == 1 ? rows : malloc((size_t)W * sizeof(rstate));
  if (!c->st) return dama_error(DAMA_ERR_OOM, "%s: out of memory for partial results", name);
  /* grain: whole rows of small work items at once */
  int64_t per = c->L < RCHUNK ? c->L : RCHUNK;
  int64_t grain = (RCHUNK * 4) / per;
  if (grain < 1) grain = 1;
  dama_status s = ops_parallel_range(W, grain, per, reduce_range, c, name);
  if (s == DAMA_OK && c->nch > 1) {
    for (int64_t r = 0; r < c->R; r++) {
      rows[r] = c->st[r * c->nch];
      for (int64_t k = 1; k < c->nch; k++) combine(c, &rows[r], &c->st[r * c->nch + k]);
    }
  }
  if (c->st != rows) free(c->st);
  return s;
}

/* ---- sum/mean where the reduced elements of one output are not contiguous: the input is laid out as
 * [O, L, Ri] (kept dims outer O and inner Ri, reduced dims L in between; e.g. a column sum of a matrix or a
 * mean over tokens of [B, T, C]). Each output column is summed in blocks of COLB columns with one
 * accumulator per column (vectorisable, no transposing copy); L is cut into fixed chunks of COLL whose
 * partials are combined in order, so the result does not depend on the thread count. */
#define COLB 256
#define COLL 512

typedef struct colctx { const rctx *c; int64_t O, Ri, nb, nl; double *pd; int64_t *pi; } colctx;

static void cols_range(void *vctx, int64_t b, int64_t e) {
  const colctx *cc = vctx;
  const rctx *c = cc->c;
  const int esz = dama_dtype_size(c->dt);
  const int64_t Ri = cc->Ri, L = c->L;
  _Alignas(64) char tmp[COLB * 8];
  for (int64_t w = b; w < e; w++) {
    const int64_t lc = w % cc->nl, blk = (w / cc->nl) % cc->nb, o = w / (cc->nl * cc->nb);
    const int64_t r0 = blk * COLB, l0 = lc * COLL;
    const int64_t nr = Ri - r0 < COLB ? Ri - r0 : COLB, nrows = L - l0 < COLL ? L - l0 : COLL;
    const char *base = c->data + ((o * L + l0) * Ri + r0) * esz;
    if (c->kind == OPS_KI64) {
      int64_t *acc = cc->pi + w * COLB;
      for (int64_t j = 0; j < nr; j++) acc[j] = 0;
      for (int64_t l = 0; l < nrows; l++) {
        const char *row = base + l * Ri * esz;
        const int64_t *x = (const int64_t *)(const void *)row;
        if (c->dt != DAMA_I64) { ops_load(OPS_KI64, c->dt, row, 1, nr, tmp); x = (const int64_t *)(void *)tmp; }
        for (int64_t j = 0; j < nr; j++) acc[j] = (int64_t)((uint64_t)acc[j] + (uint64_t)x[j]);
      }
    } else {
      double *acc = cc->pd + w * COLB;
      for (int64_t j = 0; j < nr; j++) acc[j] = 0;
      for (int64_t l = 0; l < nrows; l++) {
        const char *row = base + l * Ri * esz;
        if (c->dt == DAMA_F64) {
          const double *x = (const double *)(const void *)row;
          for (int64_t j = 0; j < nr; j++) acc[j] += x[j];
        } else {
          const float *x = (const float *)(const void *)row;
          if (c->dt != DAMA_F32) { ops_load(OPS_KF32, c->dt, row, 1, nr, tmp); x = (const float *)(void *)tmp; }
          for (int64_t j = 0; j < nr; j++) acc[j] += (double)x[j];
        }
      }
    }
  }
}

static dama_status reduce_cols(rctx *c, int64_t O, int64_t Ri, rstate *rows, const char *name) {
  const int64_t nb = (Ri + COLB - 1) / COLB, nl = (c->L + COLL - 1) / COLL, W = O * nb * nl;
  colctx cc = {c, O, Ri, nb, nl, NULL, NULL};
  void *part = malloc((size_t)(W * COLB) * 8);
  if (!part) return dama_error(DAMA_ERR_OOM, "%s: out of memory for partial results", name);
  if (c->kind == OPS_KI64) cc.pi = part; else cc.pd = part;
  dama_status s = ops_parallel_range(W, 1, COLB * COLL, cols_range, &cc, name);
  if (s == DAMA_OK) {
    for (int64_t r = 0; r < c->R; r++) {
      const int64_t o = r / Ri, rr = r % Ri, blk = rr / COLB, j = rr % COLB;
      memset(&rows[r], 0, sizeof rows[r]);
      rows[r].n = c->L;
      for (int64_t lc = 0; lc < nl; lc++) {
        const int64_t at = ((o * nb + blk) * nl + lc) * COLB + j;
        if (c->kind == OPS_KI64) rows[r].i = (int64_t)((uint64_t)rows[r].i + (uint64_t)cc.pi[at]);
        else rows[r].d += cc.pd[at];
      }
    }
  }
  free(part);
  return s;
}

/* Parse dims into a mask; ndims == 0 = all. */
/* The shared driver: rows[R] states, plus the output shape. ctx filled. */
static dama_status reduce_core(const char *name, dama_redop op, const dama_tensor *a, const bool *mask, int32_t keepdim,
                               double p, rctx *c, rstate **rows_out, int32_t *ond, int64_t *oshape) {
  *rows_out = NULL;
  int32_t perm[DAMA_MAX_DIMS] = {0}, np = 0, nd = 0;
  int64_t R = 1, L = 1;
  for (int32_t i = 0; i < a->ndim; i++)
    if (!mask[i]) { perm[np++] = i; R *= a->shape[i]; oshape[nd++] = a->shape[i]; }
    else if (keepdim) oshape[nd++] = 1;
  for (int32_t i = 0; i < a->ndim; i++)
    if (mask[i]) { perm[np++] = i; L *= a->shape[i]; }
  *ond = nd;
  if (L == 0 && R > 0 && (op == DAMA_RMAX || op == DAMA_RMIN || op == DAMA_RARGMAX || op == DAMA_RARGMIN)) {
    char sa[160];
    return dama_error(DAMA_ERR_ARG, "%s: empty tensor (reducing zero elements of shape %s)", name,
                      dama_shape_str(a, sa, sizeof sa));
  }
  dama_tensor *pv = NULL, *ct = NULL;
  DAMA_TRY(dama_permute(&pv, a, perm));
  /* sum/mean: if memory holds the input as [O, L, Ri] with Ri > 1 (kept-before, reduced, kept-after; or
   * reduced-first for a transposed input), sum columns in place instead of copying into rows */
  bool cols = false;
  int64_t O = 1, Ri = 1;
  if ((op == DAMA_RSUM || op == DAMA_RMEAN) && L > 1 && R > 1 && !dama_is_contiguous(pv)) {
    int32_t first = 0;
    while (first < a->ndim && !mask[first]) first++;
    for (int layout = 0; layout < 2 && !cols; layout++) {
      int32_t p3[DAMA_MAX_DIMS] = {0}, k = 0;
      int64_t o = 1;
      if (layout == 0) for (int32_t i = 0; i < first; i++) { p3[k++] = i; o *= a->shape[i]; }
      for (int32_t i = 0; i < a->ndim; i++) if (mask[i]) p3[k++] = i;
      for (int32_t i = layout == 0 ? first : 0; i < a->ndim; i++) if (!mask[i]) p3[k++] = i;
      if (R / o <= 1) continue;
      dama_tensor *pv3 = NULL;
      if (dama_permute(&pv3, a, p3) != DAMA_OK) { dama_tensor_release(pv); return DAMA_ERR_INTERNAL; }
      if (dama_is_contiguous(pv3)) { dama_tensor_release(pv); pv = pv3; cols = true; O = o; Ri = R / o; }
      else dama_tensor_release(pv3);
    }
  }
  dama_status s = ops_contiguous(&ct, pv);
  dama_tensor_release(pv);
  if (s != DAMA_OK) return s;
  memset(c, 0, sizeof *c);
  c->op = op;
  c->dt = (dama_dtype)a->dtype;
  c->kind = ops_kind_of(c->dt);
  c->data = dama_kernel_ptr(ct);
  c->R = R;
  c->L = L;
  c->p = p;
  rstate *rows = malloc((size_t)(R > 0 ? R : 1) * sizeof(rstate));
  if (!rows) { dama_tensor_release(ct); return dama_error(DAMA_ERR_OOM, "%s: out of memory", name); }
  s = cols ? reduce_cols(c, O, Ri, rows, name) : reduce_rows(c, rows, name);
  dama_tensor_release(ct);
  if (s != DAMA_OK) { free(rows); return s; }
  *rows_out = rows;
  return DAMA_OK;
}

/* Write finished row values into `out` (contiguous, R elements). */
static dama_status write_rows(const rctx *c, const rstate *rows, int correction, dama_tensor *out, bool values_of_arg) {
  const int64_t R = c->R;
  const bool int_res = values_of_arg ? c->kind == OPS_KI64
                                     : (c->op == DAMA_RARGMAX || c->op == DAMA_RARGMIN ||
                                        (c->kind == OPS_KI64 && (c->op == DAMA_RSUM || c->op == DAMA_RPROD ||
                                                                 c->op == DAMA_RMAX || c->op == DAMA_RMIN)));
  void *buf = malloc((size_t)(R > 0 ? R : 1) * 8);
  if (!buf) return dama_error(DAMA_ERR_OOM, "reduce: out of memory");
  for (int64_t r = 0; r < R; r++) {
    double d = 0;
    int64_t i = 0;
    if (values_of_arg) { d = rows[r].d; i = rows[r].i; }
    else finish(c, &rows[r], correction, &d, &i);
    if (int_res) ((int64_t *)buf)[r] = i; else ((double *)buf)[r] = d;
  }
  ops_store(int_res ? OPS_KI64 : OPS_KF64, buf, (dama_dtype)out->dtype, dama_kernel_ptr(out), 1, R);
  free(buf);
  return DAMA_OK;
}

dama_status dama_cpu_reduce(dama_tensor **out, dama_redop op, const dama_tensor *a, int32_t ndims, const int32_t *dims,
                        int32_t keepdim, int32_t correction, double p) {
  if (!out) return dama_error(DAMA_ERR_ARG, "reduce: out is NULL");
  *out = NULL;
  if ((unsigned)op > DAMA_RPROD) return dama_error(DAMA_ERR_ARG, "reduce: unknown op %d", (int)op);
  const char *name = ops_redop_name(op);
  DAMA_TRY(ops_check(name, "a", a));
  if ((op == DAMA_RARGMAX || op == DAMA_RARGMIN) && ndims > 1)
    return dama_error(DAMA_ERR_ARG, "%s: takes one dim or all dims, got %d dims", name, ndims);
  if (op == DAMA_RNORM && isnan(p)) return dama_error(DAMA_ERR_ARG, "norm: p must not be NaN");
  if ((op == DAMA_RVAR || op == DAMA_RSTD) && correction < 0)
    return dama_error(DAMA_ERR_ARG, "%s: correction must be >= 0, got %d", name, correction);
  bool mask[DAMA_MAX_DIMS];
  DAMA_TRY(ops_reduce_dims(name, a, ndims, dims, mask));
  /* argmax/argmin over all dims of a >1-d tensor: index into the flattened tensor, no kept dims */
  rctx c;
  rstate *rows;
  int32_t nd;
  int64_t oshape[DAMA_MAX_DIMS];
  DAMA_TRY(reduce_core(name, op, a, mask, keepdim, p, &c, &rows, &nd, oshape));
  dama_status s = dama_empty(out, nd, oshape, ops_reduce_result(op, (dama_dtype)a->dtype), a->storage->device);
  if (s == DAMA_OK) s = write_rows(&c, rows, correction, *out, false);
  free(rows);
  if (s != DAMA_OK) { dama_tensor_release(*out); *out = NULL; }
  return s;
}

static dama_status minmax_dim(const char *name, dama_redop op, dama_tensor **values, dama_tensor **indices,
                              const dama_tensor *a, int32_t dim, int32_t keepdim) {
  if (!values || !indices) return dama_error(DAMA_ERR_ARG, "%s: values/indices output is NULL", name);
  *values = *indices = NULL;
  DAMA_TRY(ops_check(name, "a", a));
  bool mask[DAMA_MAX_DIMS];
  DAMA_TRY(ops_reduce_dims(name, a, 1, &dim, mask));
  rctx c;
  rstate *rows;
  int32_t nd;
  int64_t oshape[DAMA_MAX_DIMS];
  DAMA_TRY(reduce_core(name, op, a, mask, keepdim, 0, &c, &rows, &nd, oshape));
  dama_status s = dama_empty(values, nd, oshape, (dama_dtype)a->dtype, a->storage->device);
  if (s == DAMA_OK) s = dama_empty(indices, nd, oshape, DAMA_I64, a->storage->device);
  if (s == DAMA_OK) s = write_rows(&c, rows, 0, *values, true);
  if (s == DAMA_OK) s = write_rows(&c, rows, 0, *indices, false);
  free(rows);
  if (s != DAMA_OK) {
    dama_tensor_release(*values); dama_tensor_release(*indices);
    *values = *indices = NULL;
  }
  return s;
}

dama_status dama_cpu_max_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t keepdim) {
  return minmax_dim("max", DAMA_RARGMAX, values, indices, a, dim, keepdim);
}

dama_status dama_cpu_min_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t keepdim) {
  return minmax_dim("min", DAMA_RARGMIN, values, indices, a, dim, keepdim);
}
