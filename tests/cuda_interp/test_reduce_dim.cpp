/* The reduction kernels (kernels/reduce_dim.cuh) and the RNG fills (kernels/philox.cuh) through the interpreter, against
 * dama_reduce / dama_uniform_ / dama_normal_ / dama_randint_ on the CPU: every plan (a warp per row, a block per row,
 * rows cut into segments, columns, columns cut into segments, the ordered inf-norm over several 8192-element chunks),
 * strided inputs, the inf-norm's order-dependent NaN rule, the same bits under all four fiber schedules and 1/2/4
 * workers, and the RNG streams bit for bit (this file is compiled with -ffp-contract=fast: the transforms' products
 * must not fuse). */
#include "interp_test.h"

#include "kernels/philox.cuh"
#include "kernels/reduce_dim.cuh"

namespace red = dama_cuda::red;

namespace {

/* device bytes */
struct Bytes {
  void *p = nullptr;
  size_t n = 0;
  explicit Bytes(size_t count) : n(count ? count : 1) {
    if (cudaMalloc(&p, n) != cudaSuccess) p = nullptr;
  }
  Bytes(const void *h, size_t count) : Bytes(count) { cudaMemcpy(p, h, count, cudaMemcpyHostToDevice); }
  Bytes(const Bytes &) = delete;
  Bytes &operator=(const Bytes &) = delete;
  ~Bytes() { cudaFree(p); }
  std::vector<unsigned char> download(size_t count) const {
    std::vector<unsigned char> h(count);
    cudaMemcpy(h.data(), p, count, cudaMemcpyDeviceToHost);
    return h;
  }
};

/* A CPU tensor of the shape, f32 values from r, never zero. */
dama_tensor *random_tensor(itest::Rng &r, std::vector<int64_t> shape, float lo, float hi) {
  dama_tensor *t = nullptr;
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<float> v = itest::random_vec(r, (size_t)n, lo, hi);
  if (dama_from_buffer(&t, (int32_t)shape.size(), shape.data(), DAMA_F32, v.data(), DAMA_F32, dama_device{DAMA_CPU, 0}) !=
      DAMA_OK)
    return nullptr;
  return t;
}

/* The folded dim lists of a reduction over mask, as cuda/ops_reduce.c builds them. */
void fold_push(int32_t *n, int64_t *size, int64_t *stride, int64_t sz, int64_t st) {
  if (sz == 1) return;
  if (*n > 0 && stride[*n - 1] == st * sz) { size[*n - 1] *= sz; stride[*n - 1] = st; return; }
  size[*n] = sz; stride[*n] = st; (*n)++;
}
dama_cuda_red describe(const dama_tensor *t, const std::vector<int32_t> &dims, int acc, int fin, double p = 2,
                       int32_t correction = 0) {
  dama_cuda_red r;
  memset(&r, 0, sizeof r);
  bool mask[8] = {false};
  for (int32_t d : dims) mask[d] = true;
  if (dims.empty()) for (int32_t i = 0; i < t->ndim; i++) mask[i] = true;
  r.R = r.L = 1;
  for (int32_t i = 0; i < t->ndim; i++) {
    if (mask[i]) { r.L *= t->shape[i]; fold_push(&r.nr, r.rsize, r.rstride, t->shape[i], t->strides[i]); }
    else { r.R *= t->shape[i]; fold_push(&r.nk, r.ksize, r.kstride, t->shape[i], t->strides[i]); }
  }
  r.acc = acc; r.fin = fin; r.in_dtype = t->dtype; r.out_dtype = DAMA_F64; r.p = p; r.correction = correction;
  return r;
}

struct Result {
  std::vector<double> v;
  std::vector<int64_t> idx;
};

/* Runs the kernels on t's storage copied to the device; values come back as f64. */
bool run_device(const dama_tensor *t, const dama_cuda_red &r, Result *out) {
  const size_t esz = (size_t)dama_dtype_size((dama_dtype)t->dtype);
  Bytes in(t->storage->data, (size_t)t->storage->nbytes), vals((size_t)r.R * 8), idx((size_t)r.R * 8);
  const int64_t wbytes = red::reduce_workspace(r);
  Bytes work((size_t)wbytes);
  const bool want_idx = r.acc == DAMA_CUDA_RED_MAX || r.acc == DAMA_CUDA_RED_MIN;
  const cudaError_t e = red::reduce(r, static_cast<const char *>(in.p) + t->offset * esz,
                                    r.fin == DAMA_CUDA_FIN_NONE ? nullptr : vals.p,
                                    want_idx ? static_cast<int64_t *>(idx.p) : nullptr, wbytes ? work.p : nullptr, 0);
  if (e != cudaSuccess) return false;
  out->v.resize((size_t)r.R);
  out->idx.assign((size_t)r.R, -1);
  std::vector<unsigned char> h = vals.download((size_t)r.R * 8);
  memcpy(out->v.data(), h.data(), h.size());
  if (want_idx) {
    h = idx.download((size_t)r.R * 8);
    memcpy(out->idx.data(), h.data(), h.size());
  }
  return true;
}

/* dama_reduce on the CPU, as f64 values (f64 output: the input is converted first, exactly) or i64 indices. */
bool run_cpu(const dama_tensor *t, dama_redop op, const std::vector<int32_t> &dims, double p, int32_t correction,
             std::vector<double> *v, std::vector<int64_t> *idx) {
  dama_tensor *t64 = nullptr, *o = nullptr;
  if (dama_to_dtype(&t64, t, DAMA_F64) != DAMA_OK) return false;
  const dama_status s = dama_reduce(&o, op, t64, (int32_t)dims.size(), dims.data(), 0, correction, p);
  dama_tensor_release(t64);
  if (s != DAMA_OK) return false;
  const int64_t n = dama_numel(o);
  if (o->dtype == DAMA_I64) {
    const int64_t *q = static_cast<const int64_t *>(dama_data_ptr(o));
    idx->assign(q, q + n);
  } else {
    const double *q = static_cast<const double *>(dama_data_ptr(o));
    v->assign(q, q + n);
  }
  dama_tensor_release(o);
  return true;
}

bool close_values(const char *what, const std::vector<double> &got, const std::vector<double> &want, double rtol) {
  if (got.size() != want.size()) { fprintf(stderr, "  %s: %zu values, expected %zu\n", what, got.size(), want.size()); return false; }
  for (size_t i = 0; i < got.size(); i++) {
    const double g = got[i], w = want[i];
    if (g != g && w != w) continue;
    if (g == w) continue;
    if (!(fabs(g - w) <= rtol * fabs(w))) {
      fprintf(stderr, "  %s: row %zu is %.17g, expected %.17g [seed %llu]\n", what, i, g, w,
              (unsigned long long)itest::seed());
      return false;
    }
  }
  return true;
}

struct Layout {
  const char *name;
  std::vector<int64_t> shape;
  std::vector<int32_t> perm; /* a permuted view when not empty */
  std::vector<int32_t> dims;
  int plan; /* the plan expected for a sum */
};

const Layout k_layouts[] = {
    {"rows, a warp per row", {37, 33}, {}, {1}, red::P_ROWS_WARP},
    {"rows, a block per row", {5, 2000}, {}, {1}, red::P_ROWS_BLOCK},
    {"rows in segments", {3, 20000}, {}, {1}, red::P_ROWS_BLOCK},
    {"all of it, in segments", {30011}, {}, {}, red::P_ROWS_BLOCK},
    {"cols", {9, 7, 11}, {}, {1}, red::P_COLS},
    {"cols in segments", {2000, 40}, {}, {0}, red::P_COLS},
    {"short rows, a thread each", {300, 3}, {}, {1}, red::P_COLS},
    {"two reduced dims apart", {7, 9, 11}, {}, {0, 2}, red::P_ROWS_WARP},
    {"a transposed input", {33, 65}, {1, 0}, {1}, red::P_COLS},
    {"a permuted input, reduced inner dims", {6, 5, 4, 3}, {2, 0, 3, 1}, {0, 2}, red::P_ROWS_WARP},
};

dama_tensor *layout_tensor(itest::Rng &r, const Layout &lay, float lo, float hi) {
  dama_tensor *t = random_tensor(r, lay.shape, lo, hi);
  if (!t || lay.perm.empty()) return t;
  dama_tensor *v = nullptr;
  dama_permute(&v, t, lay.perm.data());
  dama_tensor_release(t);
  return v;
}

} // namespace

DAMA_TEST(every_reduction_and_plan_matches_the_cpu) {
  itest::Rng r(71);
  struct Op { const char *name; dama_redop op; int acc, fin; double p; int32_t corr; float lo, hi; };
  const Op ops[] = {
      {"sum", DAMA_RSUM, DAMA_CUDA_RED_SUM_F, DAMA_CUDA_FIN_VALUE, 2, 0, 1e-3f, 10.0f},
      {"mean", DAMA_RMEAN, DAMA_CUDA_RED_SUM_F, DAMA_CUDA_FIN_MEAN, 2, 0, 1e-3f, 10.0f},
      {"var", DAMA_RVAR, DAMA_CUDA_RED_VAR, DAMA_CUDA_FIN_VAR, 2, 1, 1e-3f, 10.0f},
      {"std", DAMA_RSTD, DAMA_CUDA_RED_VAR, DAMA_CUDA_FIN_STD, 2, 0, 1e-3f, 10.0f},
      {"prod", DAMA_RPROD, DAMA_CUDA_RED_PROD_F, DAMA_CUDA_FIN_VALUE, 2, 0, 0.9995f, 1.0005f},
      {"norm2", DAMA_RNORM, DAMA_CUDA_RED_NORM2, DAMA_CUDA_FIN_SQRT, 2, 0, 1e-3f, 10.0f},
      {"norm1", DAMA_RNORM, DAMA_CUDA_RED_NORM1, DAMA_CUDA_FIN_VALUE, 1, 0, 1e-3f, 10.0f},
      {"norm3", DAMA_RNORM, DAMA_CUDA_RED_NORMP, DAMA_CUDA_FIN_ROOT, 3, 0, 1e-3f, 10.0f},
      {"norm inf", DAMA_RNORM, DAMA_CUDA_RED_NORMINF, DAMA_CUDA_FIN_VALUE, INFINITY, 0, 1e-3f, 10.0f},
      {"norm -inf", DAMA_RNORM, DAMA_CUDA_RED_NORMNINF, DAMA_CUDA_FIN_VALUE, -INFINITY, 0, 1e-3f, 10.0f},
      {"max", DAMA_RARGMAX, DAMA_CUDA_RED_MAX, DAMA_CUDA_FIN_VALUE, 2, 0, 1e-3f, 10.0f},
      {"min", DAMA_RARGMIN, DAMA_CUDA_RED_MIN, DAMA_CUDA_FIN_VALUE, 2, 0, 1e-3f, 10.0f},
  };
  int plans[5] = {0, 0, 0, 0, 0};
  for (const Layout &lay : k_layouts) {
    for (const Op &op : ops) {
      dama_tensor *t = layout_tensor(r, lay, op.lo, op.hi);
      CHECK(t != nullptr);
      if (!t) return;
      const dama_cuda_red d = describe(t, lay.dims, op.acc, op.fin, op.p, op.corr);
      const red::Plan plan = red::plan(d);
      plans[plan.kind]++;
      if (op.acc == DAMA_CUDA_RED_SUM_F) CHECK_MSG(plan.kind == lay.plan, "%s: plan %d, expected %d", lay.name, plan.kind, lay.plan);
      Result got;
      CHECK(run_device(t, d, &got));
      std::vector<double> want;
      std::vector<int64_t> want_idx;
      char what[160];
      snprintf(what, sizeof what, "%s over %s", op.name, lay.name);
      if (op.acc == DAMA_CUDA_RED_MAX || op.acc == DAMA_CUDA_RED_MIN) {
        if (lay.dims.size() <= 1) { /* argmax takes one dim or all */
          CHECK(run_cpu(t, op.op, lay.dims, 0, 0, &want, &want_idx));
          CHECK_MSG(got.idx == want_idx, "%s: indices differ", what);
        }
        CHECK(run_cpu(t, op.op == DAMA_RARGMAX ? DAMA_RMAX : DAMA_RMIN, lay.dims, 0, 0, &want, &want_idx));
        CHECK_MSG(got.v == want, "%s: values differ", what); /* exact */
      } else {
        CHECK(run_cpu(t, op.op, lay.dims, op.p, op.corr, &want, &want_idx));
        /* both accumulate in double: ~1e-16 relative apart, products of 20000 factors ~1e-13 */
        CHECK(close_values(what, got.v, want, op.acc == DAMA_CUDA_RED_PROD_F ? 1e-12 : 1e-13));
      }
      dama_tensor_release(t);
    }
  }
  fprintf(stderr, "  plans exercised: rows/warp %d, rows/block %d, cols %d, ordered %d, ordered/short %d\n", plans[0],
          plans[1], plans[2], plans[3], plans[4]);
  CHECK(plans[0] > 0 && plans[1] > 0 && plans[2] > 0 && plans[3] > 0 && plans[4] > 0);
}

DAMA_TEST(every_plan_gives_the_same_bits_under_every_schedule_and_worker_count) {
  itest::Rng r(72);
  std::vector<dama_tensor *> ts;
  for (const Layout &lay : k_layouts) {
    ts.push_back(lay.shape.size() == 1 && lay.shape[0] > 20000 ? nullptr /* the segmented plans are covered */
                                                                : layout_tensor(r, lay, 1e-3f, 10.0f));
  }
  const int accs[] = {DAMA_CUDA_RED_SUM_F, DAMA_CUDA_RED_VAR, DAMA_CUDA_RED_MAX, DAMA_CUDA_RED_NORMINF};
  std::vector<Result> first(ts.size() * 4);
  std::vector<bool> have(ts.size() * 4, false);
  bool same = true;
  const int saved = cuda_interp::workers();
  for (int nw : {1, 2, 4}) { /* workers outermost: each change starts a new pool of OS threads */
    cuda_interp::set_workers(nw);
    for (size_t k = 0; k < ts.size(); k++) {
      if (!ts[k]) continue;
      for (int a = 0; a < 4; a++) {
        const int fin = accs[a] == DAMA_CUDA_RED_VAR ? DAMA_CUDA_FIN_VAR : DAMA_CUDA_FIN_VALUE;
        const dama_cuda_red d = describe(ts[k], k_layouts[k].dims, accs[a], fin, INFINITY, 1);
        const size_t slot = k * 4 + (size_t)a;
        itest::each_schedule([&](cuda_interp::Schedule s) {
          Result got;
          if (!run_device(ts[k], d, &got)) { same = false; return; }
          if (!have[slot]) { first[slot] = got; have[slot] = true; return; }
          if (memcmp(got.v.data(), first[slot].v.data(), got.v.size() * 8) != 0 || got.idx != first[slot].idx) {
            fprintf(stderr, "  %s, acc %d: %s with %d workers differs\n", k_layouts[k].name, accs[a],
                    itest::schedule_name(s), nw);
            same = false;
          }
        });
      }
    }
  }
  cuda_interp::set_workers(saved);
  for (dama_tensor *t : ts) dama_tensor_release(t);
  CHECK(same);
}

DAMA_TEST(the_inf_norms_follow_the_cpus_order_around_nans) {
  /* the CPU's max over |x| lets the value after a NaN replace it, chunk by chunk of 8192: place NaNs mid-chunk, at a
   * chunk's end, at the row's end, and two in one chunk, and compare NaN-ness and values exactly */
  itest::Rng r(73);
  const int64_t L = 20000;
  const std::vector<std::vector<int64_t>> nans = {{}, {100}, {8191}, {8192}, {19999}, {5, 9000}, {8191, 16383}, {3, 4}};
  dama_tensor *t = random_tensor(r, {(int64_t)nans.size(), L}, 1e-3f, 10.0f);
  CHECK(t != nullptr);
  if (!t) return;
  float *x = static_cast<float *>(dama_data_ptr(t));
  for (size_t row = 0; row < nans.size(); row++)
    for (int64_t at : nans[row]) { /* an extreme just before each NaN: the CPU's reset drops it within a chunk */
      if (at >= 2) { x[row * L + at - 2] = 1000.0f; x[row * L + at - 1] = 1e-6f; }
      x[row * L + at] = NAN;
    }
  for (double p : {INFINITY, -INFINITY}) {
    const dama_cuda_red d = describe(t, {1}, p > 0 ? DAMA_CUDA_RED_NORMINF : DAMA_CUDA_RED_NORMNINF,
                                     DAMA_CUDA_FIN_VALUE, p);
    CHECK(red::plan(d).kind == red::P_ORDERED && red::plan(d).S == 3);
    Result got;
    std::vector<double> want;
    std::vector<int64_t> unused;
    CHECK(run_device(t, d, &got));
    CHECK(run_cpu(t, DAMA_RNORM, {1}, p, 0, &want, &unused));
    CHECK(close_values(p > 0 ? "norm inf" : "norm -inf", got.v, want, 0.0));
    int nan_rows = 0;
    for (double v : want) nan_rows += v != v;
    CHECK(nan_rows > 0 && nan_rows < (int)nans.size()); /* the cases cover both outcomes */
  }
  { /* short rows (a thread per row): NaNs and extremes at random places */
    dama_tensor *u = random_tensor(r, {300, 5}, 1e-3f, 10.0f);
    CHECK(u != nullptr);
    if (!u) return;
    float *y = static_cast<float *>(dama_data_ptr(u));
    for (int64_t i = 0; i < 1500; i++) {
      const uint64_t k = r.next() % 8;
      if (k == 0) y[i] = NAN;
      else if (k == 1) y[i] = 1000.0f;
      else if (k == 2) y[i] = 1e-6f;
    }
    for (double p : {INFINITY, -INFINITY}) {
      const dama_cuda_red d = describe(u, {1}, p > 0 ? DAMA_CUDA_RED_NORMINF : DAMA_CUDA_RED_NORMNINF,
                                       DAMA_CUDA_FIN_VALUE, p);
      CHECK(red::plan(d).kind == red::P_ORDERED_SHORT);
      Result got;
      std::vector<double> want;
      std::vector<int64_t> unused;
      CHECK(run_device(u, d, &got));
      CHECK(run_cpu(u, DAMA_RNORM, {1}, p, 0, &want, &unused));
      CHECK(close_values("short rows", got.v, want, 0.0));
    }
    dama_tensor_release(u);
  }
  /* max/argmax: the first NaN wins, in every plan */
  for (const std::vector<int32_t> &dims : {std::vector<int32_t>{1}}) {
    const dama_cuda_red d = describe(t, dims, DAMA_CUDA_RED_MAX, DAMA_CUDA_FIN_VALUE);
    Result got;
    std::vector<double> want;
    std::vector<int64_t> want_idx;
    CHECK(run_device(t, d, &got));
    CHECK(run_cpu(t, DAMA_RARGMAX, dims, 0, 0, &want, &want_idx));
    CHECK(got.idx == want_idx);
  }
  dama_tensor_release(t);
}

DAMA_TEST(ties_keep_the_first_index) {
  /* values from {-1, 0, 1} (and -0): many ties; the first extreme wins in every plan, as on the CPU */
  itest::Rng r(74);
  for (const Layout &lay : k_layouts) {
    if (lay.dims.size() > 1) continue;
    dama_tensor *t = layout_tensor(r, lay, 1e-3f, 1.0f);
    CHECK(t != nullptr);
    if (!t) return;
    float *x = static_cast<float *>(t->storage->data);
    const int64_t n = t->storage->nbytes / 4;
    for (int64_t i = 0; i < n; i++) { const uint64_t k = r.next() % 4; x[i] = k == 0 ? -1.0f : k == 1 ? 1.0f : k == 2 ? 0.0f : -0.0f; }
    for (int acc : {DAMA_CUDA_RED_MAX, DAMA_CUDA_RED_MIN}) {
      const dama_cuda_red d = describe(t, lay.dims, acc, DAMA_CUDA_FIN_VALUE);
      Result got;
      std::vector<double> unused;
      std::vector<int64_t> want_idx;
      CHECK(run_device(t, d, &got));
      CHECK(run_cpu(t, acc == DAMA_CUDA_RED_MAX ? DAMA_RARGMAX : DAMA_RARGMIN, lay.dims, 0, 0, &unused, &want_idx));
      CHECK_MSG(got.idx == want_idx, "%s: the indices of ties differ", lay.name);
    }
    dama_tensor_release(t);
  }
}

/* ---- the RNG fills ---- */

namespace {

/* fills a CPU view and the same view of a device copy of its storage; true when the storages' bytes agree */
bool same_fill(dama_tensor *view, int kind, double a, double b, dama_rng rng, const char *what) {
  dama_storage *st = view->storage;
  std::vector<unsigned char> before(static_cast<unsigned char *>(st->data), static_cast<unsigned char *>(st->data) + st->nbytes);
  Bytes dev(before.data(), before.size());
  dama_cuda_rng g;
  memset(&g, 0, sizeof g);
  g.kind = kind; g.dtype = view->dtype; g.ndim = view->ndim; g.contiguous = dama_is_contiguous(view);
  g.seed = rng.seed; g.offset = rng.offset; g.n = dama_numel(view); g.a = a; g.b = b;
  for (int32_t i = 0; i < view->ndim; i++) { g.shape[i] = view->shape[i]; g.strides[i] = view->strides[i]; }
  const size_t esz = (size_t)dama_dtype_size((dama_dtype)view->dtype);
  if (dama_cuda::rng::fill(g, static_cast<char *>(dev.p) + view->offset * esz, 0) != cudaSuccess) return false;
  dama_rng cpu = rng;
  dama_status s = kind == DAMA_CUDA_RNG_UNIFORM ? dama_uniform_(view, a, b, &cpu)
                  : kind == DAMA_CUDA_RNG_NORMAL ? dama_normal_(view, a, b, &cpu)
                                                 : dama_randint_(view, (int64_t)a, (int64_t)b, &cpu);
  if (s != DAMA_OK) { fprintf(stderr, "  %s: %s\n", what, dama_last_error()); return false; }
  if (cpu.offset - rng.offset != (uint64_t)dama_cuda::rng::fill_blocks(g)) {
    fprintf(stderr, "  %s: the CPU advanced by %llu blocks, the fill uses %lld\n", what,
            (unsigned long long)(cpu.offset - rng.offset), (long long)dama_cuda::rng::fill_blocks(g));
    return false;
  }
  const std::vector<unsigned char> got = dev.download(before.size());
  if (memcmp(got.data(), st->data, before.size()) != 0) {
    for (size_t i = 0; i < before.size(); i++)
      if (got[i] != static_cast<unsigned char *>(st->data)[i]) {
        fprintf(stderr, "  %s: byte %zu differs (element %zu)\n", what, i, i / esz);
        break;
      }
    return false;
  }
  return true;
}

} // namespace

DAMA_TEST(rng_fills_give_the_cpus_bits) {
  const dama_dtype floats[] = {DAMA_F32, DAMA_F64, DAMA_BF16, DAMA_F16};
  const dama_dtype all[] = {DAMA_F32, DAMA_F64, DAMA_BF16, DAMA_F16, DAMA_U8, DAMA_U16, DAMA_I32, DAMA_I64};
  int cases = 0;
  for (int64_t n : {1, 2, 3, 5, 7, 33, 257, 1001}) {
    for (int kind : {DAMA_CUDA_RNG_UNIFORM, DAMA_CUDA_RNG_NORMAL, DAMA_CUDA_RNG_INT}) {
      const dama_dtype *dts = kind == DAMA_CUDA_RNG_INT ? all : floats;
      const int ndt = kind == DAMA_CUDA_RNG_INT ? 8 : 4;
      for (int k = 0; k < ndt; k++) {
        dama_tensor *t = nullptr;
        CHECK_OK(dama_zeros(&t, 1, &n, dts[k], dama_device{DAMA_CPU, 0}));
        const dama_rng rng = {0x1234567890ull + (uint64_t)n, (uint64_t)(n * 7 + k)};
        const double a = kind == DAMA_CUDA_RNG_NORMAL ? 0.5 : kind == DAMA_CUDA_RNG_INT ? -7 : -2.5;
        const double b = kind == DAMA_CUDA_RNG_NORMAL ? 3.0 : kind == DAMA_CUDA_RNG_INT ? 300 : 4.0;
        char what[96];
        snprintf(what, sizeof what, "kind %d, %s, n=%lld", kind, dama_dtype_name(dts[k]), (long long)n);
        CHECK(same_fill(t, kind, a, b, rng, what));
        dama_tensor_release(t);
        cases++;
      }
    }
  }
  /* strided targets: a transposed view, a slice with a step, an expanded dim (the last element along it is kept) */
  for (int kind : {DAMA_CUDA_RNG_UNIFORM, DAMA_CUDA_RNG_NORMAL, DAMA_CUDA_RNG_INT}) {
    const int64_t shape[2] = {7, 9};
    dama_tensor *base = nullptr, *v = nullptr;
    CHECK_OK(dama_zeros(&base, 2, shape, DAMA_F32, dama_device{DAMA_CPU, 0}));
    CHECK_OK(dama_transpose(&v, base, 0, 1));
    CHECK(same_fill(v, kind, 1, 50, dama_rng{99, 3}, "transposed"));
    dama_tensor_release(v);
    CHECK_OK(dama_slice(&v, base, 1, 1, 9, 3));
    CHECK(same_fill(v, kind, 1, 50, dama_rng{98, 0}, "sliced"));
    dama_tensor_release(v);
    dama_tensor *row = nullptr;
    CHECK_OK(dama_narrow(&row, base, 0, 2, 1));
    const int64_t ex[2] = {5, 9};
    CHECK_OK(dama_expand(&v, row, 2, ex));
    CHECK(same_fill(v, kind, 1, 50, dama_rng{97, 11}, "expanded"));
    dama_tensor_release(v);
    dama_tensor_release(row);
    dama_tensor_release(base);
    cases += 3;
  }
  fprintf(stderr, "  %d fills bit for bit\n", cases);
}
