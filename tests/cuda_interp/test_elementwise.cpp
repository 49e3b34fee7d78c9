/* fill, scale and scale-add (the EMA update) through the interpreter against the CPU kernels: the same bits (the
 * per-element math is one expression, core/dama_math.h's for the EMA; this file is compiled without FP contraction,
 * as runtime/cpu/nn_optim.c is). Odd sizes, fresh random inputs that are never zero. */
#include "interp_test.h"

#include "kernels/elementwise.cuh"

using itest::DevBuf;

static const int64_t k_sizes[] = {1, 31, 33, 255, 257, 1000, 4099, 65537, 1048583 /* > 4096 blocks: strided */};

static dama_device cpu() { return dama_device{DAMA_CPU, 0}; }

DAMA_TEST(fill_matches_dama_full) {
  itest::Rng r(1);
  for (int64_t n : k_sizes) {
    const float v = r.signed_mag(0.1f, 100.0f);
    DevBuf d((size_t)n);
    CHECK_CUDA(dama_cuda::fill_f32(d.p, v, n, 0));
    dama_tensor *t = nullptr;
    CHECK_OK(dama_full(&t, 1, &n, (double)v, DAMA_F32, cpu()));
    const float *w = static_cast<const float *>(dama_data_ptr(t));
    const bool ok = itest::same_bits("fill", d.download(), std::vector<float>(w, w + n));
    dama_tensor_release(t);
    CHECK_MSG(ok, "n=%lld", (long long)n);
  }
  CHECK_CUDA(dama_cuda::fill_f32(nullptr, 1.0f, 0, 0)); /* nothing to do */
}

DAMA_TEST(scale_inplace_matches_the_cpu_bit_for_bit) {
  itest::Rng r(2);
  for (int64_t n : k_sizes) {
    std::vector<float> x = itest::random_vec(r, (size_t)n, 1e-3f, 50.0f), want = x;
    const float s = r.signed_mag(0.01f, 3.0f);
    DevBuf d(x);
    CHECK_CUDA(dama_cuda::scale_inplace(d.p, n, s, 0));
    CHECK_OK(dama_scale_inplace(want.data(), n, s));
    CHECK_MSG(itest::same_bits("scale", d.download(), want), "n=%lld", (long long)n);
  }
}

DAMA_TEST(ema_update_matches_the_cpu_bit_for_bit) {
  itest::Rng r(3);
  for (int64_t n : k_sizes) {
    std::vector<float> ema = itest::random_vec(r, (size_t)n, 1e-3f, 5.0f), p = itest::random_vec(r, (size_t)n, 1e-3f, 5.0f);
    std::vector<float> want = ema;
    const float momentum = r.uniform(0.9f, 0.9999f);
    DevBuf de(ema), dp(p);
    CHECK_CUDA(dama_cuda::ema_update(de.p, dp.p, n, momentum, 0));
    CHECK_OK(dama_ema_update(want.data(), p.data(), n, momentum));
    CHECK_MSG(itest::same_bits("ema", de.download(), want), "n=%lld", (long long)n);
  }
}

DAMA_TEST(scale_add_is_a_times_y_plus_b_times_x) {
  itest::Rng r(4);
  const int64_t n = 777;
  std::vector<float> y = itest::random_vec(r, n, 0.1f, 2.0f), x = itest::random_vec(r, n, 0.1f, 2.0f);
  const float a = r.signed_mag(0.5f, 2.0f), b = r.signed_mag(0.5f, 2.0f);
  DevBuf dy(y), dx(x);
  CHECK_CUDA(dama_cuda::scale_add_f32(dy.p, dx.p, a, b, n, 0));
  std::vector<float> got = dy.download();
  for (int64_t i = 0; i < n; i++) {
    const float ay = a * y[i], bx = b * x[i], want = ay + bx; /* no contraction in this file */
    CHECK_MSG(got[i] == want, "i=%lld: %g vs %g", (long long)i, (double)got[i], (double)want);
  }
}
