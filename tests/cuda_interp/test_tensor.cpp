/* The element-wise kernels (cuda/kernels/tensor_elementwise.cuh through cuda/tensor_kernels.cu's launchers) below
 * the Lua suite tests/cuda/test_ops_tensor.lua: the dtype conversions of core/dama_math.h against the CPU's for
 * every f16 and bf16 value and a sweep of float bit patterns (rounding ties, subnormals, overflow, NaN payloads);
 * the strided indexer's 32- and 64-bit paths against a plain computation (the 64-bit one needs 2^31 elements,
 * which no test can launch); the f32 fast path (vectorised and not) against the general kernel and the math run
 * on the host; count_nonfinite under every fiber schedule with 1 and 3 workers; and one launch per op. */
#include "interp_test.h"

#include "tensor_kernels.cu"

extern "C" {
#include "core/dama_internal.h"
}

#if defined(__F16C__)
#include <immintrin.h>
#endif

namespace ew = dama_cuda::ew;

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* what the CPU's loads and stores use for f16 (cpu/ops_common.c: F16C where the build has it) */
static float cpu_f16_to_f32(uint16_t h) {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return dama_f16_to_f32(h);
#endif
}
static uint16_t cpu_f32_to_f16(float f) {
#if defined(__F16C__)
  return _cvtss_sh(f, 0);
#else
  return dama_f32_to_f16(f);
#endif
}

DAMA_TEST(conversions_match_the_cpu_for_every_half_and_a_sweep_of_floats) {
  long checked = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    const uint16_t x = (uint16_t)h;
    const bool nan = (x & 0x7c00) == 0x7c00 && (x & 0x3ff);
    CHECK_MSG(f2u(dama_ew_f16_to_f32(x)) == f2u(cpu_f16_to_f32(x)), "f16 %04x -> %08x, the CPU gives %08x", h,
              f2u(dama_ew_f16_to_f32(x)), f2u(cpu_f16_to_f32(x)));
    if (!nan) CHECK(f2u(dama_ew_f16_to_f32(x)) == f2u(dama_f16_to_f32(x)));
    CHECK(f2u(dama_ew_bf16_to_f32(x)) == f2u(dama_bf16_to_f32(x)));
  }
  /* every 251st float bit pattern, and around each half's rounding boundaries: the midpoint to the next half and
   * the floats one ulp either side (ties go to even) */
  std::vector<uint32_t> pats;
  for (uint64_t u = 0; u < (1ull << 32); u += 251) pats.push_back((uint32_t)u);
  for (uint32_t h = 0; h < 0x7c00; h++) {
    const float lo = dama_f16_to_f32((uint16_t)h), hi = dama_f16_to_f32((uint16_t)(h + 1));
    const float mid = (float)(((double)lo + (double)hi) / 2);
    for (int d = -1; d <= 1; d++)
      for (uint32_t s : {0u, 0x80000000u}) pats.push_back((f2u(mid) + (uint32_t)d) | s);
  }
  for (uint32_t b = 0; b < 65536; b++) /* bf16 ties: the low 16 bits at 0x8000 +- 1 */
    for (uint32_t low : {0x7fffu, 0x8000u, 0x8001u}) pats.push_back((b << 16) | low);
  for (uint32_t u : pats) {
    const float f = u2f(u);
    const bool nan = (u & 0x7fffffffu) > 0x7f800000u;
    CHECK_MSG(dama_ew_f32_to_f16(f) == cpu_f32_to_f16(f), "f32 %08x -> f16 %04x, the CPU gives %04x", u,
              dama_ew_f32_to_f16(f), cpu_f32_to_f16(f));
    if (!nan) CHECK_MSG(dama_ew_f32_to_f16(f) == dama_f32_to_f16(f), "f32 %08x -> f16 (software)", u);
    CHECK_MSG(dama_ew_f32_to_bf16(f) == dama_f32_to_bf16(f), "f32 %08x -> bf16 %04x, the CPU gives %04x", u,
              dama_ew_f32_to_bf16(f), dama_f32_to_bf16(f));
    checked++;
  }
  /* f2i: truncation, NaN -> 0, saturation */
  CHECK(dama_ew_f2i(NAN) == 0 && dama_ew_f2i(-2.9) == -2 && dama_ew_f2i(2.9) == 2);
  CHECK(dama_ew_f2i(1e300) == INT64_MAX && dama_ew_f2i(-INFINITY) == INT64_MIN && dama_ew_f2i(9.2233720368547758e18) == INT64_MAX);
  fprintf(stderr, "  conversions: 65536 halves and bf16s, %ld float patterns, as the CPU\n", checked);
}

/* the offsets of flat index i, the plain way */
static void ref_offsets(const dama_cuda_ew &g, int nops, int64_t i, int64_t *off) {
  for (int k = 0; k < nops; k++) off[k] = 0;
  for (int d = g.ndim - 1; d >= 0; d--) {
    const int64_t x = i % g.shape[d];
    i /= g.shape[d];
    for (int k = 0; k < nops; k++) off[k] += x * g.strides[k][d];
  }
}

DAMA_TEST(the_indexer_gives_every_operands_offset_in_both_index_widths) {
  itest::Rng r(71);
  long checked = 0;
  for (int trial = 0; trial < 400; trial++) {
    dama_cuda_ew g;
    memset(&g, 0, sizeof g);
    g.ndim = 1 + (int)(r.next() % DAMA_CUDA_EW_DIMS);
    int64_t n = 1;
    for (int d = 0; d < g.ndim; d++) {
      g.shape[d] = 1 + (int64_t)(r.next() % 7);
      n *= g.shape[d];
      for (int k = 0; k < DAMA_CUDA_EW_OPS; k++) g.strides[k][d] = (int64_t)(r.next() % 2000) - 700; /* any sign, 0 */
    }
    for (int wide = 0; wide < 2; wide++) {
      /* the 64-bit path is taken past 2^31 elements: claim that many, visit the real ones */
      g.numel = wide ? ((int64_t)1 << 33) : n;
      for (int64_t i = 0; i < n; i++) {
        int64_t got[DAMA_CUDA_EW_OPS], want[DAMA_CUDA_EW_OPS];
        ew::offsets<DAMA_CUDA_EW_OPS>(g, i, got);
        ref_offsets(g, DAMA_CUDA_EW_OPS, i, want);
        for (int k = 0; k < DAMA_CUDA_EW_OPS; k++)
          CHECK_MSG(got[k] == want[k], "ndim %d, index %lld, operand %d: %lld, expected %lld (%s)", g.ndim,
                    (long long)i, k, (long long)got[k], (long long)want[k], wide ? "64-bit" : "32-bit");
        checked++;
      }
    }
  }
  /* one dim: no division */
  dama_cuda_ew g;
  memset(&g, 0, sizeof g);
  g.ndim = 1;
  g.numel = (int64_t)1 << 40;
  g.shape[0] = g.numel;
  g.strides[0][0] = 1; g.strides[1][0] = 0; g.strides[2][0] = -3;
  int64_t off[3];
  ew::offsets<3>(g, ((int64_t)1 << 39) + 5, off);
  CHECK(off[0] == ((int64_t)1 << 39) + 5 && off[1] == 0 && off[2] == -3 * (((int64_t)1 << 39) + 5));
  fprintf(stderr, "  indexer: %ld offsets, 1 to 8 dims\n", checked);
}

/* A 1-d f32 geometry: out, a, b contiguous (strides 1) from the given pointers; flat: one dim (the fast path), else
 * the same elements as two dims (the general kernel). */
static dama_cuda_ew flat_geom(void *out, int out_dtype, const float *a, const float *b, int64_t n, bool flat) {
  dama_cuda_ew g;
  memset(&g, 0, sizeof g);
  g.numel = n;
  const void *p[3] = {out, a, b};
  for (int k = 0; k < 3; k++) {
    g.ptr[k] = const_cast<void *>(p[k]);
    g.dtype[k] = k == 0 ? out_dtype : ew::F32;
  }
  if (flat || n < 2) {
    g.ndim = 1;
    g.shape[0] = n;
    for (int k = 0; k < 3; k++) g.strides[k][0] = 1;
  } else { /* n = q * m + r is not always a product: use rows of 1 element when n is prime */
    int64_t m = 1;
    for (int64_t c = 2; c * c <= n; c++) if (n % c == 0) { m = c; break; }
    g.ndim = 2;
    g.shape[0] = n / m;
    g.shape[1] = m;
    for (int k = 0; k < 3; k++) { g.strides[k][0] = m; g.strides[k][1] = 1; }
  }
  return g;
}

DAMA_TEST(the_f32_fast_path_matches_the_general_kernel_and_the_host_math) {
  itest::Rng r(72);
  const int64_t sizes[] = {1, 3, 4, 7, 33, 256, 257, 1031};
  for (int op = 0; op < DAMA_EW_NUM_BINOPS; op++)
    for (int64_t n : sizes)
      for (int shift = 0; shift < 3; shift++) { /* 0: aligned (vectorised); 1, 2: one operand off by an element */
        std::vector<float> a = itest::random_vec(r, (size_t)n + 1, 0.05f, 3.0f), b = itest::random_vec(r, (size_t)n + 1, 0.05f, 3.0f);
        if (op == DAMA_EW_POW) for (float &x : a) x = fabsf(x);
        if (n > 8) { a[3] = NAN; b[5] = INFINITY; a[6] = -0.0f; b[6] = 0.0f; }
        itest::DevBuf da(a), db(b), dout((size_t)n + 4), dref((size_t)n + 4);
        const bool cmp = op >= DAMA_EW_EQ;
        const float *pa = da.p + (shift == 1), *pb = db.p + (shift == 2);
        dama_cuda_ew fast = flat_geom(dout.p, cmp ? ew::U8 : ew::F32, pa, pb, n, true);
        dama_cuda_ew slow = flat_geom(dref.p, cmp ? ew::U8 : ew::F32, pa, pb, n, false);
        CHECK_CUDA(dama_cuda_ew_binary(op, DAMA_CUDA_K_F32, &fast, 0));
        CHECK_CUDA(dama_cuda_ew_binary(op, DAMA_CUDA_K_F32, &slow, 0));
        std::vector<float> got = dout.download(), ref = dref.download();
        const size_t bytes = (size_t)n * (cmp ? 1 : 4);
        CHECK_MSG(memcmp(got.data(), ref.data(), bytes) == 0, "op %d n=%lld shift %d: fast and general kernels differ",
                  op, (long long)n, shift);
        for (int64_t i = 0; i < n; i++) {
          const float want = dama_ew_binop_f32(op, a[(size_t)(i + (shift == 1))], b[(size_t)(i + (shift == 2))]);
          if (cmp) {
            const uint8_t g8 = reinterpret_cast<const uint8_t *>(got.data())[i];
            CHECK_MSG(g8 == (uint8_t)want, "op %d n=%lld element %lld: %u, expected %g", op, (long long)n,
                      (long long)i, g8, want);
          } else {
            CHECK_MSG(memcmp(&got[(size_t)i], &want, 4) == 0, "op %d n=%lld element %lld: %a, expected %a", op,
                      (long long)n, (long long)i, got[(size_t)i], want);
          }
        }
      }
  /* unary, vectorised and not */
  for (int op = 0; op < DAMA_EW_NUM_UNOPS; op++)
    for (int64_t n : sizes)
      for (int shift = 0; shift < 2; shift++) {
        std::vector<float> a = itest::random_vec(r, (size_t)n + 1, 0.05f, 4.0f);
        itest::DevBuf da(a), dout((size_t)n + 1);
        dama_cuda_ew g = flat_geom(dout.p, ew::F32, da.p + shift, da.p, n, true);
        CHECK_CUDA(dama_cuda_ew_unary(op, DAMA_CUDA_K_F32, &g, 0));
        std::vector<float> got = dout.download();
        for (int64_t i = 0; i < n; i++) {
          const float want = dama_ew_unop_f32(op, a[(size_t)(i + shift)]);
          CHECK_MSG(memcmp(&got[(size_t)i], &want, 4) == 0, "unop %d n=%lld element %lld: %a, expected %a", op,
                    (long long)n, (long long)i, got[(size_t)i], want);
        }
      }
}

/* float data of dtype t with every 97th element NaN or +-inf */
static std::vector<uint8_t> nonfinite_data(int t, int64_t n, int64_t *planted) {
  const size_t sz = t == ew::F64 ? 8 : t == ew::F32 ? 4 : 2;
  std::vector<uint8_t> buf((size_t)n * sz);
  *planted = 0;
  for (int64_t i = 0; i < n; i++) {
    double v = (double)((i * 37) % 101) - 50.25;
    if (i % 97 == 3) { v = (i % 3 == 0) ? NAN : (i % 3 == 1) ? INFINITY : -INFINITY; (*planted)++; }
    uint8_t *p = &buf[(size_t)i * sz];
    if (t == ew::F64) memcpy(p, &v, 8);
    else if (t == ew::F32) { float f = (float)v; memcpy(p, &f, 4); }
    else { uint16_t h = t == ew::BF16 ? dama_f32_to_bf16((float)v) : dama_f32_to_f16((float)v); memcpy(p, &h, 2); }
  }
  return buf;
}

DAMA_TEST(count_nonfinite_is_exact_under_every_schedule_and_worker_count) {
  const int saved = cuda_interp::workers();
  for (int t : {(int)ew::F32, (int)ew::F64, (int)ew::BF16, (int)ew::F16})
    for (int64_t n : {(int64_t)1, (int64_t)255, (int64_t)4099, (int64_t)70001}) {
      int64_t planted = 0;
      std::vector<uint8_t> h = nonfinite_data(t, n, &planted);
      void *d = nullptr;
      unsigned long long *count = nullptr;
      CHECK_CUDA(cudaMalloc(&d, h.size()));
      CHECK_CUDA(cudaMalloc((void **)&count, sizeof *count));
      CHECK_CUDA(cudaMemcpy(d, h.data(), h.size(), cudaMemcpyHostToDevice));
      dama_cuda_ew g;
      memset(&g, 0, sizeof g);
      g.numel = n;
      g.ndim = 1;
      g.shape[0] = n;
      g.strides[0][0] = 1;
      g.ptr[0] = d;
      g.dtype[0] = t;
      bool ok = true;
      for (int nw : {1, 3}) {
        cuda_interp::set_workers(nw);
        itest::each_schedule([&](cuda_interp::Schedule s) {
          unsigned long long got = 0;
          if (dama_cuda_ew_count_nonfinite(&g, count, 0) != cudaSuccess ||
              cudaMemcpy(&got, count, sizeof got, cudaMemcpyDeviceToHost) != cudaSuccess || (int64_t)got != planted) {
            fprintf(stderr, "  dtype %d n=%lld, %s, %d workers: %llu, expected %lld\n", t, (long long)n,
                    itest::schedule_name(s), nw, got, (long long)planted);
            ok = false;
          }
        });
      }
      cuda_interp::set_workers(saved);
      cudaFree(d);
      cudaFree(count);
      CHECK(ok);
    }
}

DAMA_TEST(each_op_is_one_launch) {
  itest::Rng r(73);
  const int64_t n = 300;
  std::vector<float> a = itest::random_vec(r, (size_t)n, 0.1f, 2.0f);
  itest::DevBuf da(a), db(a), dout((size_t)n);
  dama_cuda_ew g = flat_geom(dout.p, ew::F32, da.p, db.p, n, false);
  dama_cuda_ew w = g; /* where: out, cond, a, b */
  w.ptr[3] = db.p;
  w.dtype[3] = ew::F32;
  for (int d = 0; d < w.ndim; d++) w.strides[3][d] = w.strides[2][d];
  unsigned long long *count = nullptr;
  CHECK_CUDA(cudaMalloc((void **)&count, sizeof *count));
  struct { const char *what; std::function<cudaError_t()> call; uint64_t launches; } cases[] = {
    {"binary", [&] { return dama_cuda_ew_binary(DAMA_EW_MUL, DAMA_CUDA_K_F32, &g, 0); }, 1},
    {"binary (f64 kind)", [&] { return dama_cuda_ew_binary(DAMA_EW_ADD, DAMA_CUDA_K_F64, &g, 0); }, 1},
    {"unary", [&] { return dama_cuda_ew_unary(DAMA_EW_EXP, DAMA_CUDA_K_F32, &g, 0); }, 1},
    {"clamp", [&] { return dama_cuda_ew_clamp(DAMA_CUDA_K_F32, &g, -1, 1, -1, 1, 0); }, 1},
    {"where", [&] { return dama_cuda_ew_where(DAMA_CUDA_K_F32, &w, 0); }, 1},
    {"copy (strided)", [&] { return dama_cuda_ew_copy(DAMA_CUDA_K_F32, &g, 0); }, 1},
    {"masked_fill", [&] { dama_cuda_ew m = g; m.value.bits = 0x3f800000u; return dama_cuda_ew_masked_fill(&m, 0); }, 1},
    {"fill of 1.0", [&] { dama_cuda_ew m = g; m.value.bits = 0x3f800000u; return dama_cuda_ew_fill(&m, 0); }, 1},
    {"fill of zeros, contiguous (a memset)", [&] {
       dama_cuda_ew m = flat_geom(dout.p, ew::F32, da.p, db.p, n, true); m.value.bits = 0; return dama_cuda_ew_fill(&m, 0); }, 0},
    {"count_nonfinite (+ a memset)", [&] { return dama_cuda_ew_count_nonfinite(&g, count, 0); }, 1},
  };
  for (auto &c : cases) {
    const uint64_t before = cuda_interp::launch_count();
    CHECK_CUDA(c.call());
    CHECK_MSG(cuda_interp::launch_count() - before == c.launches, "%s: %llu launches, expected %llu", c.what,
              (unsigned long long)(cuda_interp::launch_count() - before), (unsigned long long)c.launches);
  }
  /* an empty op launches nothing */
  dama_cuda_ew e = g;
  e.numel = 0;
  const uint64_t before = cuda_interp::launch_count();
  CHECK_CUDA(dama_cuda_ew_binary(DAMA_EW_ADD, DAMA_CUDA_K_F32, &e, 0));
  CHECK_CUDA(dama_cuda_ew_copy(DAMA_CUDA_K_F32, &e, 0));
  CHECK(cuda_interp::launch_count() == before);
  cudaFree(count);
}

DAMA_TEST(the_tiled_transpose_copy_is_exact_under_every_schedule) {
  itest::Rng r(74);
  const int64_t dims[][3] = {{1, 16, 16}, {1, 33, 17}, {3, 45, 70}, {2, 64, 32}, {1, 100, 16}};
  for (int sz : {1, 2, 4, 8})
    for (const auto &dm : dims) {
      const int64_t B = dm[0], I = dm[1], J = dm[2], n = B * I * J; /* dst [B][I][J] = src [B][J][I] transposed */
      std::vector<uint8_t> h((size_t)(n * sz));
      for (auto &b : h) b = (uint8_t)r.next();
      void *src = nullptr, *dst = nullptr;
      CHECK_CUDA(cudaMalloc(&src, h.size()));
      CHECK_CUDA(cudaMalloc(&dst, h.size()));
      CHECK_CUDA(cudaMemcpy(src, h.data(), h.size(), cudaMemcpyHostToDevice));
      const int dt = sz == 1 ? ew::U8 : sz == 2 ? ew::BF16 : sz == 4 ? ew::F32 : ew::I64;
      dama_cuda_ew g;
      memset(&g, 0, sizeof g);
      g.numel = n;
      g.ndim = 3;
      g.shape[0] = B; g.shape[1] = I; g.shape[2] = J;
      g.strides[0][0] = I * J; g.strides[0][1] = J; g.strides[0][2] = 1;
      g.strides[1][0] = I * J; g.strides[1][1] = 1; g.strides[1][2] = I;
      g.ptr[0] = dst; g.ptr[1] = src;
      g.dtype[0] = g.dtype[1] = dt;
      bool ok = true;
      itest::each_schedule([&](cuda_interp::Schedule s) {
        cudaMemset(dst, 0xAB, h.size());
        const uint64_t before = cuda_interp::launch_count();
        if (dama_cuda_ew_copy(DAMA_CUDA_K_F32, &g, 0) != cudaSuccess || cuda_interp::launch_count() != before + 1) {
          ok = false;
          return;
        }
        std::vector<uint8_t> got(h.size());
        cudaMemcpy(got.data(), dst, got.size(), cudaMemcpyDeviceToHost);
        for (int64_t b = 0; b < B && ok; b++)
          for (int64_t i = 0; i < I && ok; i++)
            for (int64_t j = 0; j < J && ok; j++)
              if (memcmp(&got[(size_t)(((b * I + i) * J + j) * sz)], &h[(size_t)(((b * J + j) * I + i) * sz)], (size_t)sz)) {
                fprintf(stderr, "  %d-byte %lldx%lldx%lld, %s: element (%lld, %lld, %lld) differs\n", sz, (long long)B,
                        (long long)I, (long long)J, itest::schedule_name(s), (long long)b, (long long)i, (long long)j);
                ok = false;
              }
      });
      cudaFree(src);
      cudaFree(dst);
      CHECK_MSG(ok, "%d-byte transpose %lldx%lldx%lld", sz, (long long)B, (long long)I, (long long)J);
    }
}
