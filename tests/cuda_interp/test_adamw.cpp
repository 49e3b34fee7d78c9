/* AdamW over a flat arena through the interpreter against dama_adamw_step: the same bits after several steps (the
 * step scalars and the element update are core/dama_math.h's; this file is compiled without FP contraction, as
 * runtime/cpu/nn_optim.c is). Odd sizes, fresh random parameters, gradients and moments, never zero. */
#include "interp_test.h"

#include "kernels/adamw.cuh"

using itest::DevBuf;

struct Hyper {
  float lr, beta1, beta2, eps, wd;
};

DAMA_TEST(adamw_steps_match_the_cpu_bit_for_bit) {
  itest::Rng r(21);
  const Hyper hs[] = {{1e-3f, 0.9f, 0.999f, 1e-8f, 0.05f}, {3e-4f, 0.9f, 0.95f, 1e-6f, 0.0f}, {0.1f, 0.5f, 0.6f, 1e-3f, 0.3f}};
  for (int64_t n : {1, 7, 33, 1000, 12345, 300001}) {
    for (const Hyper &h : hs) {
      std::vector<float> p = itest::random_vec(r, (size_t)n, 1e-3f, 1.0f);
      std::vector<float> m = itest::random_vec(r, (size_t)n, 1e-6f, 1e-2f);
      std::vector<float> v = itest::positive_vec(r, (size_t)n, 1e-8f, 1e-4f);
      std::vector<float> pc = p, mc = m, vc = v;
      DevBuf dp(p), dm(m), dv(v), dg((size_t)n);
      for (int64_t step = 1; step <= 4; step++) {
        const std::vector<float> g = itest::random_vec(r, (size_t)n, 1e-4f, 2.0f);
        dg.upload(g);
        const float lr = h.lr * (float)step / 4.0f; /* a warm-up: the scalars change per step */
        CHECK_CUDA(dama_cuda::adamw_step(dp.p, dg.p, dm.p, dv.p, n, lr, h.beta1, h.beta2, h.eps, h.wd, step, 0));
        CHECK_OK(dama_adamw_step(pc.data(), g.data(), mc.data(), vc.data(), n, lr, h.beta1, h.beta2, h.eps, h.wd, step));
      }
      CHECK_MSG(itest::same_bits("params", dp.download(), pc), "n=%lld lr=%g", (long long)n, (double)h.lr);
      CHECK_MSG(itest::same_bits("exp_avg", dm.download(), mc), "n=%lld", (long long)n);
      CHECK_MSG(itest::same_bits("exp_avg_sq", dv.download(), vc), "n=%lld", (long long)n);
    }
  }
}

DAMA_TEST(adamw_late_steps_use_the_bias_corrections_of_their_step) {
  itest::Rng r(22);
  const int64_t n = 513;
  std::vector<float> p = itest::random_vec(r, n, 0.1f, 1.0f), m = itest::random_vec(r, n, 1e-3f, 1e-2f);
  std::vector<float> v = itest::positive_vec(r, n, 1e-6f, 1e-4f), g = itest::random_vec(r, n, 1e-3f, 1.0f);
  std::vector<float> pc = p, mc = m, vc = v;
  DevBuf dp(p), dm(m), dv(v), dg(g);
  for (int64_t step : {1000, 123457}) {
    CHECK_CUDA(dama_cuda::adamw_step(dp.p, dg.p, dm.p, dv.p, n, 2e-4f, 0.9f, 0.999f, 1e-8f, 0.05f, step, 0));
    CHECK_OK(dama_adamw_step(pc.data(), g.data(), mc.data(), vc.data(), n, 2e-4f, 0.9f, 0.999f, 1e-8f, 0.05f, step));
  }
  CHECK(itest::same_bits("params", dp.download(), pc));
  CHECK(itest::same_bits("exp_avg_sq", dv.download(), vc));
}
