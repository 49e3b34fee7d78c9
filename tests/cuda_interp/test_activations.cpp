/* GELU and softmax through the interpreter against runtime/cpu/nn_act.c. GELU's element math is core/dama_math.h's,
 * shared with the CPU, so forward and backward give the CPU's bits (this file is compiled with nn_act.c's
 * fp-contract=fast and no-trapping-math). Softmax sums in another order: within 1e-5 relative. Odd sizes, fresh
 * random inputs that are never zero; the block-per-row kernel under every fiber schedule. */
#include "interp_test.h"

#include "kernels/elementwise.cuh"
#include "kernels/softmax.cuh"

using itest::DevBuf;

DAMA_TEST(gelu_forward_and_backward_match_the_cpu_bit_for_bit) {
  itest::Rng r(31);
  for (int64_t n : {1, 31, 33, 1000, 4097, 65537}) {
    for (float scale : {0.5f, 4.0f, 12.0f}) {
      std::vector<float> x = itest::random_vec(r, (size_t)n, 1e-4f, scale), g = itest::random_vec(r, (size_t)n, 1e-3f, 2.0f);
      std::vector<float> acc = itest::random_vec(r, (size_t)n, 1e-3f, 1.0f); /* backward accumulates */
      std::vector<float> want(n), want_d = acc;
      DevBuf dx(x), dg(g), dout((size_t)n), dd(acc);
      CHECK_CUDA(dama_cuda::gelu_forward(dout.p, dx.p, n, 0));
      CHECK_CUDA(dama_cuda::gelu_backward(dd.p, dx.p, dg.p, n, 0));
      CHECK_OK(dama_gelu_forward(want.data(), x.data(), n));
      CHECK_OK(dama_gelu_backward(want_d.data(), x.data(), g.data(), n));
      CHECK_MSG(itest::same_bits("gelu forward", dout.download(), want), "n=%lld scale=%g", (long long)n, (double)scale);
      CHECK_MSG(itest::same_bits("gelu backward", dd.download(), want_d), "n=%lld scale=%g", (long long)n, (double)scale);
      CHECK_CUDA(dama_cuda::gelu_forward(dx.p, dx.p, n, 0)); /* in place */
      CHECK(itest::same_bits("gelu forward in place", dx.download(), want));
    }
  }
}

DAMA_TEST(gelu_keeps_the_cpu_bits_at_the_edges) {
  std::vector<float> x = {0.0f, -0.0f, 1e-30f, -1e-30f, 9.0f, -9.0f, 88.0f, -88.0f, 200.0f, -200.0f, INFINITY, -INFINITY,
                          NAN, 1e-40f};
  const int64_t n = (int64_t)x.size();
  std::vector<float> want(n), g(n, 1.0f), want_d(n, 0.5f);
  DevBuf dx(x), dout((size_t)n), dg(g), dd(want_d);
  CHECK_CUDA(dama_cuda::gelu_forward(dout.p, dx.p, n, 0));
  CHECK_CUDA(dama_cuda::gelu_backward(dd.p, dx.p, dg.p, n, 0));
  CHECK_OK(dama_gelu_forward(want.data(), x.data(), n));
  CHECK_OK(dama_gelu_backward(want_d.data(), x.data(), g.data(), n));
  CHECK(itest::same_bits("gelu forward", dout.download(), want));
  CHECK(itest::same_bits("gelu backward", dd.download(), want_d));
}

/* the column counts: below, at and above a warp, the ViT's 13/65-token rows, and long rows for the block kernel */
static const int64_t k_cols[] = {1, 5, 13, 31, 32, 33, 65, 100, 257, 1023, 1025, 3001};

typedef cudaError_t (*softmax_fn)(float *, const float *, int64_t, int64_t, cudaStream_t);

static bool softmax_case(softmax_fn fn, const char *name, itest::Rng &r, int64_t N, int64_t C, double *worst) {
  std::vector<float> x = itest::random_vec(r, (size_t)(N * C), 1e-3f, 8.0f), want((size_t)(N * C));
  DevBuf dx(x), dout((size_t)(N * C));
  if (fn(dout.p, dx.p, N, C, 0) != cudaSuccess) return false;
  dama_softmax_forward(want.data(), x.data(), N, C);
  char what[96];
  snprintf(what, sizeof what, "%s N=%lld C=%lld", name, (long long)N, (long long)C);
  double w = 0;
  const bool ok = itest::close(what, dout.download(), want, 1e-5, 0.0, &w);
  if (w > *worst) *worst = w;
  /* in place */
  if (fn(dx.p, dx.p, N, C, 0) != cudaSuccess) return false;
  return ok && itest::same_bits(what, dx.download(), dout.download());
}

DAMA_TEST(softmax_forward_warp_block_and_auto_match_the_cpu) {
  itest::Rng r(32);
  double worst = 0;
  for (int64_t C : k_cols) {
    for (int64_t N : {1, 3, 9, 37}) {
      CHECK(softmax_case(dama_cuda::softmax_forward_warp, "softmax warp", r, N, C, &worst));
      CHECK(softmax_case(dama_cuda::softmax_forward_block, "softmax block", r, N, C, &worst));
      CHECK(softmax_case(dama_cuda::softmax_forward, "softmax", r, N, C, &worst));
    }
  }
  fprintf(stderr, "  softmax forward: worst relative error %.3g\n", worst);
}

DAMA_TEST(softmax_block_kernel_gives_the_same_bits_under_every_schedule) {
  itest::Rng r(33);
  const int64_t N = 5, C = 2049;
  std::vector<float> x = itest::random_vec(r, (size_t)(N * C), 1e-3f, 8.0f);
  DevBuf dx(x), dout((size_t)(N * C));
  std::vector<float> first;
  bool same = true;
  itest::each_schedule([&](cuda_interp::Schedule s) {
    dama_cuda::softmax_forward_block(dout.p, dx.p, N, C, 0);
    std::vector<float> got = dout.download();
    if (first.empty()) first = got;
    else if (!itest::same_bits(itest::schedule_name(s), got, first)) same = false;
  });
  CHECK(same);
}

DAMA_TEST(softmax_backward_matches_the_cpu) {
  itest::Rng r(34);
  double worst = 0;
  for (int64_t C : k_cols) {
    for (int64_t N : {1, 7, 37}) {
      const size_t n = (size_t)(N * C);
      std::vector<float> x = itest::random_vec(r, n, 1e-3f, 4.0f), y(n), g = itest::random_vec(r, n, 1e-3f, 2.0f);
      dama_softmax_forward(y.data(), x.data(), N, C);
      std::vector<float> acc = itest::random_vec(r, n, 1e-3f, 1.0f), want = acc;
      DevBuf dy(y), dg(g), dd(acc);
      CHECK_CUDA(dama_cuda::softmax_backward(dd.p, dy.p, dg.p, N, C, 0));
      CHECK_OK(dama_softmax_backward(want.data(), y.data(), g.data(), N, C));
      char what[64];
      snprintf(what, sizeof what, "softmax backward N=%lld C=%lld", (long long)N, (long long)C);
      double w = 0;
      /* dx = acc + y * (g - s): cancellation in g - s; measure against the scale of the terms */
      CHECK(itest::close(what, dd.download(), want, 1e-5, 1.0, &w));
      worst = w > worst ? w : worst;
    }
  }
  fprintf(stderr, "  softmax backward: worst error %.3g (relative to |cpu| + 1)\n", worst);
}
