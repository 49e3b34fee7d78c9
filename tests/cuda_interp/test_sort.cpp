/* The sort engine (cuda/kernels/sort.cuh), the mask kernels (mask.cuh) and scatter's ordering (index.cuh) through the
 * interpreter, driven by their C launchers (cuda/index_kernels.cu, cuda/mask_kernels.cu, compiled into this test),
 * against the CPU twins: dama_sort (cpu/ops_sort.c), dama_mask_* (cpu/mask.c), dama_scatter_ (cpu/ops_index.c).
 * Everything here is integer ids, 0/1 masks, moved elements or sums in the CPU's order, so every comparison is bit
 * for bit. Rows of 1 to 5000 elements: the one-block bitonic path (P <= 4096) and the multi-launch global network
 * (P = 8192), keys with ties, NaN, -0 and +-inf; the barrier kernels under all four fiber schedules. */
#include "interp_test.h"

#include "../../cuda/index_kernels.cu"
#include "../../cuda/mask_kernels.cu"

#include <algorithm>

namespace {

template <typename T> struct Dev {
  T *p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) {
    if (cudaMalloc(&p, std::max<size_t>(1, n) * sizeof(T)) != cudaSuccess) p = nullptr;
  }
  explicit Dev(const std::vector<T> &h) : Dev(h.size()) { upload(h); }
  Dev(const Dev &) = delete;
  Dev &operator=(const Dev &) = delete;
  ~Dev() { cudaFree(p); }
  void upload(const std::vector<T> &h) { cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
};

template <typename T> bool same(const char *what, const std::vector<T> &got, const std::vector<T> &want) {
  if (got.size() != want.size()) {
    fprintf(stderr, "  %s: %zu values, expected %zu\n", what, got.size(), want.size());
    return false;
  }
  for (size_t i = 0; i < got.size(); i++)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
      fprintf(stderr, "  %s: element %zu differs (got %.9g, expected %.9g) [seed %llu]\n", what, i, (double)got[i],
              (double)want[i], (unsigned long long)itest::seed());
      return false;
    }
  return true;
}

dama_device cpu() { return dama_device{DAMA_CPU, 0}; }

/* A scratch buffer of device memory (nothing when bytes == 0). */
struct Scratch {
  void *p = nullptr;
  explicit Scratch(int64_t bytes) {
    if (bytes > 0 && cudaMalloc(&p, (size_t)bytes) != cudaSuccess) p = nullptr;
  }
  ~Scratch() { cudaFree(p); }
};

/* Keys with many ties and special values: quantised to a few levels, some NaN, -0, +0, +-inf. */
std::vector<float> tricky_floats(itest::Rng &r, size_t n, bool specials) {
  std::vector<float> v(n);
  for (float &x : v) {
    const uint64_t u = r.next();
    x = (float)((int)(u % 9) - 4) * 0.5f + 0.25f; /* 9 levels, never zero */
    if (specials) {
      switch ((u >> 8) % 23) {
        case 0: x = NAN; break;
        case 1: x = -NAN; break;
        case 2: x = 0.0f; break;
        case 3: x = -0.0f; break;
        case 4: x = INFINITY; break;
        case 5: x = -INFINITY; break;
        default: break;
      }
    }
  }
  return v;
}

dama_cuda_tdesc contiguous(int32_t nd, const int64_t *shape) {
  dama_cuda_tdesc d;
  memset(&d, 0, sizeof d);
  d.ndim = nd;
  int64_t s = 1;
  for (int32_t k = nd - 1; k >= 0; k--) {
    d.shape[k] = shape[k];
    d.strides[k] = s;
    s *= shape[k];
  }
  return d;
}

/* dama_cuda_sort_rows on [rows, n] (sorted along dim 1, or along dim 0 of the transposed layout when strided)
 * against dama_sort / dama_topk on the CPU. */
template <typename T>
void sort_case(const std::vector<T> &h, dama_dtype dt, int64_t rows, int64_t n, int desc, int64_t k, bool strided,
               const char *what, bool *ok) {
  *ok = false;
  /* the data lives as [rows, n] (dim 1) or as [n, rows] transposed (dim 0, stride rows) */
  const int64_t shape[2] = {rows, n}, tshape[2] = {n, rows};
  dama_tensor *a = nullptr, *vals = nullptr, *inds = nullptr, *at = nullptr;
  if (dama_from_buffer(&a, 2, strided ? tshape : shape, dt, h.data(), dt, cpu()) != DAMA_OK) return;
  const int32_t dim = strided ? 0 : 1;
  dama_status st = k == n ? dama_sort(&vals, &inds, a, dim, desc, 1) : dama_topk(&vals, &inds, a, k, dim, desc, 1);
  if (st != DAMA_OK) { fprintf(stderr, "  %s: cpu: %s\n", what, dama_last_error()); return; }
  (void)at;
  Dev<T> da(h);
  dama_cuda_tdesc in = contiguous(2, strided ? tshape : shape);
  const int64_t oshape[2] = {rows, k}, otshape[2] = {k, rows};
  dama_cuda_tdesc out = contiguous(2, strided ? otshape : oshape);
  Dev<T> dv((size_t)(rows * k));
  Dev<int64_t> di((size_t)(rows * k));
  Scratch s(dama_cuda_sort_scratch_bytes(rows, n, sizeof(T) == 8));
  if (dama_cuda_sort_rows(dv.p, di.p, &out, da.p, &in, dim, dt, (int32_t)sizeof(T), desc, n, k, rows, s.p, 0) !=
      cudaSuccess) {
    fprintf(stderr, "  %s: launch failed\n", what);
    return;
  }
  const size_t m = (size_t)(rows * k);
  std::vector<int64_t> wi(static_cast<const int64_t *>(dama_data_ptr(inds)),
                          static_cast<const int64_t *>(dama_data_ptr(inds)) + m);
  std::vector<T> wv(static_cast<const T *>(dama_data_ptr(vals)), static_cast<const T *>(dama_data_ptr(vals)) + m);
  *ok = same(what, di.get(), wi) && same(what, dv.get(), wv);
  dama_tensor_release(a);
  dama_tensor_release(vals);
  dama_tensor_release(inds);
}

} // namespace

static const int64_t k_lens[] = {1, 2, 7, 33, 64, 196, 257, 1000, 4096, 4097, 5000};

DAMA_TEST(sort_rows_match_the_cpu_sort_for_every_key_type) {
  itest::Rng r(71);
  for (int64_t n : k_lens)
    for (int64_t rows : {1, 3})
      for (int desc = 0; desc < 2; desc++) {
        const bool big = n > 4096;
        if (big && rows > 1 && desc) continue; /* the global path: enough with rows 1 descending */
        char what[96];
        bool ok;
        const size_t m = (size_t)(rows * n);
        snprintf(what, sizeof what, "f32 n=%lld rows=%lld desc=%d", (long long)n, (long long)rows, desc);
        sort_case<float>(tricky_floats(r, m, true), DAMA_F32, rows, n, desc, n, false, what, &ok);
        CHECK(ok);
        snprintf(what, sizeof what, "f32 strided n=%lld rows=%lld desc=%d", (long long)n, (long long)rows, desc);
        sort_case<float>(tricky_floats(r, m, true), DAMA_F32, rows, n, desc, n, true, what, &ok);
        CHECK(ok);
        std::vector<int64_t> i64(m);
        for (int64_t &v : i64) v = (int64_t)(r.next() % 7) * (int64_t)0x123456789ll - 3 * (int64_t)0x123456789ll;
        if (m > 2) { i64[0] = INT64_MAX; i64[1] = INT64_MIN; }
        snprintf(what, sizeof what, "i64 n=%lld rows=%lld desc=%d", (long long)n, (long long)rows, desc);
        sort_case<int64_t>(i64, DAMA_I64, rows, n, desc, n, false, what, &ok);
        CHECK(ok);
        if (big) continue;
        std::vector<double> f64(m);
        const std::vector<float> f = tricky_floats(r, m, true);
        for (size_t i = 0; i < m; i++) f64[i] = (double)f[i] * (1.0 + 1e-12);
        snprintf(what, sizeof what, "f64 n=%lld rows=%lld desc=%d", (long long)n, (long long)rows, desc);
        sort_case<double>(f64, DAMA_F64, rows, n, desc, n, false, what, &ok);
        CHECK(ok);
        std::vector<int32_t> i32(m);
        for (int32_t &v : i32) v = (int32_t)(r.next() % 11) - 5;
        snprintf(what, sizeof what, "i32 n=%lld rows=%lld desc=%d", (long long)n, (long long)rows, desc);
        sort_case<int32_t>(i32, DAMA_I32, rows, n, desc, n, false, what, &ok);
        CHECK(ok);
        std::vector<uint8_t> u8(m);
        for (uint8_t &v : u8) v = (uint8_t)(r.next() % 4 * 80);
        snprintf(what, sizeof what, "u8 topk n=%lld rows=%lld desc=%d", (long long)n, (long long)rows, desc);
        sort_case<uint8_t>(u8, DAMA_U8, rows, n, desc, (n + 1) / 2, false, what, &ok);
        CHECK(ok);
      }
}

DAMA_TEST(sort_rows_give_the_same_bits_under_every_schedule) {
  itest::Rng r(72);
  itest::each_schedule([&](cuda_interp::Schedule s) {
    for (int64_t n : {257, 5000}) {
      char what[80];
      snprintf(what, sizeof what, "f32 n=%lld under %s", (long long)n, itest::schedule_name(s));
      bool ok;
      sort_case<float>(tricky_floats(r, (size_t)(2 * n), true), DAMA_F32, 2, n, 0, n, false, what, &ok);
      if (!ok) { dama_test_fail(__FILE__, __LINE__, "%s", what); return; }
    }
  });
}

namespace {

/* The CPU's mask_random on noise, and the launcher's, compared. */
void random_case(itest::Rng &r, int64_t N, int64_t L, int64_t K, bool specials, const char *what, bool *ok) {
  *ok = false;
  const size_t m = (size_t)(N * L);
  std::vector<float> noise = tricky_floats(r, m, specials);
  if (!specials)
    for (float &v : noise) v = r.uniform(0.0f, 1.0f);
  std::vector<float> mask(m);
  std::vector<int64_t> sh(m), re(m), keep((size_t)(N * K) + 1);
  if (dama_mask_random(mask.data(), sh.data(), re.data(), keep.data(), noise.data(), N, L, K) != DAMA_OK) return;
  keep.resize((size_t)(N * K));
  Dev<float> dn(noise), dm(m);
  Dev<int64_t> dsh(m), dre(m), dk((size_t)(N * K));
  Scratch s(dama_cuda_mask_sort_scratch_bytes(N, L));
  if (dama_cuda_mask_random(dm.p, dsh.p, dre.p, dk.p, dn.p, N, L, K, s.p, 0) != cudaSuccess) return;
  *ok = same(what, dm.get(), mask) && same(what, dsh.get(), sh) && same(what, dre.get(), re) &&
        same(what, dk.get(), keep);
}

} // namespace

DAMA_TEST(mask_random_equals_the_cpu_bit_for_bit) {
  itest::Rng r(73);
  for (int64_t L : {1, 7, 33, 64, 196, 257, 4100})
    for (int64_t N : {1, 5}) {
      if (L > 4096 && N > 1) continue;
      for (int specials = 0; specials < 2; specials++) {
        const int64_t K = L * 3 / 10;
        char what[80];
        snprintf(what, sizeof what, "mask_random N=%lld L=%lld K=%lld specials=%d", (long long)N, (long long)L,
                 (long long)K, specials);
        bool ok;
        random_case(r, N, L, K, specials, what, &ok);
        CHECK(ok);
      }
    }
}

namespace {

/* The adaptive mask through the launchers in ops_mask.c's order: validate (mode 1 per-sample, 0 union), then the
 * sorts; against dama_mask_adaptive. */
void adaptive_case(itest::Rng &r, int64_t N, int64_t L, double ratio, double overlap, int mode, const char *what,
                   bool *ok) {
  *ok = false;
  int64_t K, R, O;
  if (dama_mask_adaptive_counts(L, ratio, overlap, &K, &R, &O) != DAMA_OK) return;
  const size_t m = (size_t)(N * L);
  std::vector<float> noise(m), m1(m), loss = tricky_floats(r, m, true);
  for (float &v : noise) v = r.uniform(0.0f, 1.0f);
  std::vector<int64_t> sh1(m);
  if (dama_mask_random(m1.data(), sh1.data(), nullptr, nullptr, noise.data(), N, L, K) != DAMA_OK) return;
  std::vector<float> m2(m);
  std::vector<int64_t> sh(m), re(m), keep((size_t)(N * K) + 1);
  if (dama_mask_adaptive(m2.data(), sh.data(), re.data(), keep.data(), m1.data(), loss.data(), N, L, ratio, overlap,
                         mode) != DAMA_OK) {
    fprintf(stderr, "  %s: cpu: %s\n", what, dama_last_error());
    return;
  }
  keep.resize((size_t)(N * K));
  Dev<float> dm1(m1), dloss(loss), dm2(m);
  Dev<int64_t> dsh(m), dre(m), dk((size_t)(N * K));
  Dev<unsigned long long> err(2);
  Dev<int32_t> ints((size_t)std::max(N, L));
  Scratch s(dama_cuda_mask_sort_scratch_bytes(N, L));
  cudaMemset(err.p, 0x7f, 16);
  if (dama_cuda_mask_validate(err.p, mode == 0 ? ints.p : nullptr, dm1.p, N, L, mode == 0 ? 1 : 0, K, O, 0) !=
      cudaSuccess)
    return;
  const cudaError_t e =
      mode == 0 ? dama_cuda_mask_adaptive_per_sample(dm2.p, dsh.p, dre.p, dk.p, dm1.p, dloss.p, ints.p, N, L, K, O,
                                                      err.p, s.p, 0)
                : dama_cuda_mask_adaptive_union(dm2.p, dsh.p, dre.p, dk.p, dm1.p, dloss.p, ints.p, N, L, K, O,
                                                (R + O == 0) ? 0 : L - (R + O), err.p, s.p, 0);
  if (e != cudaSuccess) return;
  const std::vector<unsigned long long> he = err.get();
  if (he[0] != DAMA_CUDA_NO_ERROR) {
    fprintf(stderr, "  %s: the validation reported code %llu\n", what, he[0]);
    return;
  }
  *ok = same(what, dm2.get(), m2) && same(what, dsh.get(), sh) && same(what, dre.get(), re) &&
        same(what, dk.get(), keep);
}

} // namespace

DAMA_TEST(mask_adaptive_equals_the_cpu_bit_for_bit_in_both_modes) {
  itest::Rng r(74);
  for (int mode = 0; mode < 2; mode++)
    for (int64_t L : {16, 37, 64, 196, 4100})
      for (int64_t N : {1, 4}) {
        if (L > 4096 && N > 1) continue;
        for (double ratio : {0.5, 0.75, 0.8})
          for (double overlap : {0.0, 0.5, 1.0}) {
            char what[120];
            snprintf(what, sizeof what, "adaptive mode=%d N=%lld L=%lld ratio=%g overlap=%g", mode, (long long)N,
                     (long long)L, ratio, overlap);
            bool ok;
            adaptive_case(r, N, L, ratio, overlap, mode, what, &ok);
            CHECK(ok);
          }
      }
}

DAMA_TEST(mask_kernels_give_the_same_bits_under_every_schedule) {
  itest::Rng r(77);
  itest::each_schedule([&](cuda_interp::Schedule s) {
    char what[96];
    bool ok;
    snprintf(what, sizeof what, "mask_random under %s", itest::schedule_name(s));
    random_case(r, 3, 196, 49, true, what, &ok);
    if (!ok) { dama_test_fail(__FILE__, __LINE__, "%s", what); return; }
    for (int mode = 0; mode < 2; mode++) {
      snprintf(what, sizeof what, "adaptive mode %d under %s", mode, itest::schedule_name(s));
      adaptive_case(r, 3, 64, 0.75, 0.5, mode, what, &ok);
      if (!ok) { dama_test_fail(__FILE__, __LINE__, "%s", what); return; }
    }
  });
}

DAMA_TEST(mask_validation_codes_name_the_cpus_first_error) {
  itest::each_schedule([&](cuda_interp::Schedule) { /* the count and first-bad-entry reductions */
  const int64_t N = 3, L = 5;
  /* row 1 has a 0.5 at l = 3 and row 0 a count error (mode 2: rows differ from row 0): the first is row 1's count */
  std::vector<float> m = {0, 1, 1, 1, 1, /**/ 0, 0, 1, 0.5f, 1, /**/ 1, 2, 1, 1, 0};
  Dev<float> dm(m);
  Dev<unsigned long long> err(2);
  cudaMemset(err.p, 0x7f, 16);
  CHECK_CUDA(dama_cuda_mask_validate(err.p, nullptr, dm.p, N, L, 2, 0, 0, 0));
  std::vector<unsigned long long> h = err.get();
  CHECK_MSG(h[0] == 1 * (L + 1) + 3 && h[1] == 1, "code %llu, zeros of row 0 %llu", h[0], h[1]);
  int64_t K;
  CHECK_STATUS(dama_mask_check(m.data(), N, L, &K), DAMA_ERR_ARG);
  CHECK(strstr(dama_last_error(), "mask[1, 3] = 0.5") != nullptr);
  /* counts only: rows 0 and 2 have 1 zero, row 1 has 2 -> row 1's count */
  m[8] = 1.0f;
  m[11] = 1.0f;
  dm.upload(m);
  cudaMemset(err.p, 0x7f, 16);
  CHECK_CUDA(dama_cuda_mask_validate(err.p, nullptr, dm.p, N, L, 2, 0, 0, 0));
  h = err.get();
  CHECK_MSG(h[0] == 1 * (L + 1) + L, "code %llu", h[0]);
  /* per-sample (mode 1) with O = 2: a row with one zero fails at its count */
  Dev<int32_t> zeros(3);
  cudaMemset(err.p, 0x7f, 16);
  CHECK_CUDA(dama_cuda_mask_validate(err.p, zeros.p, dm.p, N, L, 1, 3, 2, 0));
  h = err.get();
  CHECK_MSG(h[0] == 0 * (L + 1) + L, "code %llu", h[0]);
  CHECK(same("zeros per row", zeros.get(), std::vector<int32_t>{1, 2, 1}));
  });
}

DAMA_TEST(token_backwards_add_in_the_cpus_order_under_every_schedule) {
  itest::Rng r(75);
  itest::each_schedule([&](cuda_interp::Schedule s) {
    for (int64_t N : {3, 70}) {
      const int64_t L = 9, K = 4, D = 37;
      /* ids_restore with repeats (not a permutation) and ids_keep with duplicates: the order of the adds matters */
      std::vector<int64_t> restore((size_t)(N * L)), keep((size_t)(N * K));
      for (int64_t &v : restore) v = (int64_t)(r.next() % (uint64_t)L);
      for (int64_t &v : keep) v = (int64_t)(r.next() % 3);
      std::vector<float> dout = itest::random_vec(r, (size_t)(N * L * D), 1e-3f, 3.0f);
      std::vector<float> dtok = itest::random_vec(r, (size_t)(N * K * D), 1e-3f, 1.0f);
      std::vector<float> dmt = itest::random_vec(r, (size_t)D, 1e-3f, 1.0f);
      std::vector<float> gout = itest::random_vec(r, (size_t)(N * K * D), 1e-3f, 3.0f);
      std::vector<float> dx = itest::random_vec(r, (size_t)(N * L * D), 1e-3f, 1.0f);
      Dev<float> d_dout(dout), d_dtok(dtok), d_dmt(dmt), d_gout(gout), d_dx(dx);
      Dev<int64_t> d_restore(restore), d_keep(keep);
      Dev<unsigned long long> err(2);
      Dev<float> partial((size_t)(dama_cuda_mask_token_chunks(N) * D));
      cudaMemset(err.p, 0x7f, 16);
      if (dama_cuda_mask_unshuffle_backward(d_dtok.p, d_dmt.p, d_dout.p, d_restore.p, N, L, K, D, partial.p, err.p,
                                            0) != cudaSuccess ||
          dama_cuda_mask_gather_backward(d_dx.p, d_gout.p, d_keep.p, N, L, K, D, err.p, 0) != cudaSuccess) {
        dama_test_fail(__FILE__, __LINE__, "launch failed");
        return;
      }
      if (dama_mask_unshuffle_backward(dtok.data(), dmt.data(), dout.data(), restore.data(), N, L, K, D) != DAMA_OK ||
          dama_mask_gather_backward(dx.data(), gout.data(), keep.data(), N, L, K, D) != DAMA_OK) {
        dama_test_fail(__FILE__, __LINE__, "cpu: %s", dama_last_error());
        return;
      }
      char what[80];
      snprintf(what, sizeof what, "N=%lld under %s", (long long)N, itest::schedule_name(s));
      if (!same(what, d_dtok.get(), dtok) || !same(what, d_dmt.get(), dmt) || !same(what, d_dx.get(), dx)) {
        dama_test_fail(__FILE__, __LINE__, "token backwards %s", what);
        return;
      }
    }
  });
}

DAMA_TEST(scatter_with_duplicate_destinations_follows_the_cpus_order) {
  itest::Rng r(76);
  itest::each_schedule([&](cuda_interp::Schedule s) {
    for (int reduce = 0; reduce < 2; reduce++)
      for (int64_t cols : {5, 3000}) { /* 3000 x 2 positions: the global sort */
        const int64_t rows = 2, size = 4; /* a [2, 4], index [2, cols] along dim 1 */
        const int64_t n = rows * cols;
        std::vector<int64_t> ix((size_t)n);
        for (int64_t &v : ix) v = (int64_t)(r.next() % (uint64_t)size);
        std::vector<float> src = itest::random_vec(r, (size_t)n, 1e-3f, 100.0f), a = itest::random_vec(r, 8, 0.1f, 1.0f);
        /* the CPU (src must be [2, cols] too: it may not be smaller than index) */
        const int64_t ashape[2] = {rows, size}, ishape[2] = {rows, cols};
        dama_tensor *ta = nullptr, *ti = nullptr, *ts = nullptr;
        if (dama_from_buffer(&ta, 2, ashape, DAMA_F32, a.data(), DAMA_F32, cpu()) != DAMA_OK ||
            dama_from_buffer(&ti, 2, ishape, DAMA_I64, ix.data(), DAMA_I64, cpu()) != DAMA_OK ||
            dama_from_buffer(&ts, 2, ishape, DAMA_F32, src.data(), DAMA_F32, cpu()) != DAMA_OK ||
            dama_scatter_(ta, 1, ti, ts, reduce) != DAMA_OK) {
          dama_test_fail(__FILE__, __LINE__, "cpu: %s", dama_last_error());
          return;
        }
        std::vector<float> want(static_cast<const float *>(dama_data_ptr(ta)),
                                static_cast<const float *>(dama_data_ptr(ta)) + 8);
        dama_tensor_release(ta);
        dama_tensor_release(ti);
        dama_tensor_release(ts);
        Dev<float> da(a), dsrc(src);
        Dev<int64_t> di(ix);
        Dev<unsigned long long> err(2);
        cudaMemset(err.p, 0x7f, 16);
        const dama_cuda_tdesc dix = contiguous(2, ishape), das = contiguous(2, ashape), dss = contiguous(2, ishape);
        Scratch sc(dama_cuda_scatter_scratch_bytes(n));
        if (dama_cuda_check_index(err.p, di.p, 0, &dix, size, 0) != cudaSuccess ||
            dama_cuda_scatter(da.p, dsrc.p, di.p, 0, &dix, &das, &dss, 1, DAMA_F32, 4, reduce, err.p, sc.p, 0) !=
                cudaSuccess) {
          dama_test_fail(__FILE__, __LINE__, "launch failed");
          return;
        }
        char what[80];
        snprintf(what, sizeof what, "scatter reduce=%d cols=%lld under %s", reduce, (long long)cols,
                 itest::schedule_name(s));
        if (!same(what, da.get(), want)) {
          dama_test_fail(__FILE__, __LINE__, "%s", what);
          return;
        }
        /* a bad index: the check names its position and the scatter writes nothing */
        ix[(size_t)n - 2] = size;
        di.upload(ix);
        da.upload(a);
        cudaMemset(err.p, 0x7f, 16);
        if (dama_cuda_check_index(err.p, di.p, 0, &dix, size, 0) != cudaSuccess ||
            dama_cuda_scatter(da.p, dsrc.p, di.p, 0, &dix, &das, &dss, 1, DAMA_F32, 4, reduce, err.p, sc.p, 0) !=
                cudaSuccess) {
          dama_test_fail(__FILE__, __LINE__, "launch failed");
          return;
        }
        if (err.get()[0] != (unsigned long long)(n - 2) || !same("untouched", da.get(), a)) {
          dama_test_fail(__FILE__, __LINE__, "%s: bad index not reported at %lld (got %llu)", what,
                         (long long)(n - 2), err.get()[0]);
          return;
        }
      }
  });
}
