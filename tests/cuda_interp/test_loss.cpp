/* The loss kernels of cuda/kernels/loss.cuh through the interpreter against runtime/cpu/nn_loss.c, under every fiber
 * schedule and with 1 and 3 worker threads: the two-pass reductions (per-block partial sums in double, then one block
 * in a fixed order) must give the same bits every time, and the CPU's value within 1e-6 relative (it sums in another
 * order, in double too). Sizes that need several first-pass blocks; fresh random inputs that are never zero. This
 * file has nn_loss.c's FP contraction (off), so the gradients' element math is compared bit for bit. */
#include "interp_test.h"

#include "kernels/loss.cuh"

using itest::DevBuf;

/* device workspace of `bytes` (a DevBuf of floats, at least one) as doubles */
struct Work {
  DevBuf buf;
  explicit Work(int64_t bytes) : buf((size_t)(bytes / 4 + 1)) {}
  double *p() { return reinterpret_cast<double *>(buf.p); }
};

/* Runs f() (which computes on the device and returns the result) under every schedule and worker count; true if all
 * runs give the bits of the first. */
template <class F> static bool same_everywhere(const char *what, F f, std::vector<float> *first_out) {
  std::vector<float> first;
  bool same = true;
  const int saved = cuda_interp::workers();
  for (int nw : {1, 3}) {
    cuda_interp::set_workers(nw);
    itest::each_schedule([&](cuda_interp::Schedule s) {
      std::vector<float> got = f();
      if (first.empty()) first = got;
      else if (!itest::same_bits(itest::schedule_name(s), got, first)) {
        fprintf(stderr, "  %s: differs with %d workers\n", what, nw);
        same = false;
      }
    });
  }
  cuda_interp::set_workers(saved);
  *first_out = first;
  return same;
}

DAMA_TEST(sq_error_and_smooth_l1_forward_are_deterministic_and_match_the_cpu) {
  itest::Rng r(71);
  const int64_t n = 20011; /* 79 first-pass blocks */
  std::vector<float> p = itest::random_vec(r, (size_t)n, 1e-3f, 2.0f), t = itest::random_vec(r, (size_t)n, 1e-3f, 2.0f);
  DevBuf dp(p), dt(t), loss(1);
  CHECK(dama_cuda::elementwise_loss_blocks(n) > 1);
  Work w(dama_cuda::sq_error_forward_workspace(n));
  for (int red = 0; red < 2; red++) {
    std::vector<float> got, want(1);
    CHECK(same_everywhere("sq_error", [&] {
      dama_cuda::sq_error_forward(loss.p, dp.p, dt.p, n, red, w.p(), 0);
      return loss.download();
    }, &got));
    CHECK_OK(dama_sq_error_forward(want.data(), p.data(), t.data(), n, red));
    CHECK(itest::close("sq_error", got, want, 1e-6, 0.0));
    for (float beta : {0.0f, 0.7f}) {
      CHECK(same_everywhere("smooth_l1", [&] {
        dama_cuda::smooth_l1_loss_forward(loss.p, dp.p, dt.p, n, beta, red, w.p(), 0);
        return loss.download();
      }, &got));
      CHECK_OK(dama_smooth_l1_loss_forward(want.data(), p.data(), t.data(), n, beta, red));
      CHECK(itest::close("smooth_l1", got, want, 1e-6, 0.0));
    }
  }
}

DAMA_TEST(cross_entropy_forward_and_backward_are_deterministic_and_match_the_cpu) {
  itest::Rng r(72);
  const int64_t N = 300, K = 37; /* 38 first-pass blocks of 8 rows */
  std::vector<float> x = itest::random_vec(r, (size_t)(N * K), 1e-3f, 4.0f);
  std::vector<int64_t> tgt((size_t)N);
  for (int64_t &v : tgt) v = (int64_t)(r.next() % (uint64_t)K);
  std::vector<float> q = itest::positive_vec(r, (size_t)(N * K), 1e-3f, 1.0f);
  DevBuf dx(x), dq(q), loss(1), dl(std::vector<float>{0.625f});
  int64_t *dt = nullptr;
  CHECK_CUDA(cudaMalloc(&dt, (size_t)N * sizeof(int64_t)));
  CHECK_CUDA(cudaMemcpy(dt, tgt.data(), (size_t)N * sizeof(int64_t), cudaMemcpyHostToDevice));
  Work w(dama_cuda::cross_entropy_forward_workspace(N));
  for (float ls : {0.0f, 0.1f}) {
    std::vector<float> got, want(1);
    CHECK(same_everywhere("cross_entropy", [&] {
      dama_cuda::cross_entropy_forward(loss.p, dx.p, dt, N, K, ls, w.p(), 0);
      return loss.download();
    }, &got));
    CHECK_OK(dama_cross_entropy_forward(want.data(), x.data(), tgt.data(), N, K, ls));
    CHECK(itest::close("cross_entropy", got, want, 1e-6, 0.0));
    /* the gradient accumulates into what is there */
    std::vector<float> g0 = itest::random_vec(r, (size_t)(N * K), 1e-3f, 0.5f), gw = g0;
    DevBuf dg(g0);
    CHECK_CUDA(dama_cuda::cross_entropy_backward(dg.p, dx.p, dt, N, K, ls, dl.p, 0));
    CHECK_OK(dama_cross_entropy_backward(gw.data(), x.data(), tgt.data(), N, K, ls, 0.625f));
    CHECK(itest::close("cross_entropy backward", dg.download(), gw, 1e-6, 1.0));
  }
  std::vector<float> got, want(1);
  CHECK(same_everywhere("soft_cross_entropy", [&] {
    dama_cuda::soft_cross_entropy_forward(loss.p, dx.p, dq.p, N, K, w.p(), 0);
    return loss.download();
  }, &got));
  CHECK_OK(dama_soft_cross_entropy_forward(want.data(), x.data(), q.data(), N, K));
  CHECK(itest::close("soft_cross_entropy", got, want, 1e-6, 0.0));
  cudaFree(dt);
}

DAMA_TEST(normpix_loss_is_deterministic_and_matches_the_cpu) {
  itest::Rng r(73);
  const int64_t N = 4, L = 75, P = 49; /* 300 patches: 38 first-pass blocks */
  const size_t n = (size_t)(N * L * P), R = (size_t)(N * L);
  std::vector<float> y = itest::random_vec(r, n, 1e-3f, 2.0f), t = itest::random_vec(r, n, 1e-3f, 2.0f);
  std::vector<float> m(R);
  for (float &v : m) v = (r.next() & 3) ? 1.0f : 0.0f;
  m[0] = 1.0f;
  DevBuf dy(y), dt(t), dm(m), loss(1), lpp(R), dl(std::vector<float>{1.5f});
  Work w(dama_cuda::normpix_forward_workspace(N, L)), wb(dama_cuda::normpix_backward_workspace());
  for (int norm_pix = 0; norm_pix < 2; norm_pix++) {
    std::vector<float> got, want(1), want_lpp(R);
    CHECK(same_everywhere("normpix", [&] {
      dama_cuda::normpix_loss_forward(loss.p, lpp.p, dy.p, dt.p, dm.p, N, L, P, norm_pix, 1e-6f, w.p(), 0);
      std::vector<float> v = loss.download(), l = lpp.download();
      v.insert(v.end(), l.begin(), l.end());
      return v;
    }, &got));
    CHECK_OK(dama_normpix_loss_forward(want.data(), want_lpp.data(), y.data(), t.data(), m.data(), N, L, P, norm_pix,
                                       1e-6f));
    CHECK(itest::close("normpix loss", std::vector<float>(got.begin(), got.begin() + 1), want, 1e-6, 0.0));
    CHECK(itest::close("normpix per patch", std::vector<float>(got.begin() + 1, got.end()), want_lpp, 1e-5, 0.0));
    std::vector<float> first;
    const std::vector<float> g0 = itest::random_vec(r, n, 1e-3f, 0.5f);
    DevBuf dg(n);
    CHECK(same_everywhere("normpix backward", [&] {
      dg.upload(g0);
      dama_cuda::normpix_loss_backward(dg.p, dy.p, dt.p, dm.p, N, L, P, norm_pix, 1e-6f, dl.p, wb.p(), 0);
      return dg.download();
    }, &first));
    std::vector<float> gw = g0;
    CHECK_OK(dama_normpix_loss_backward(gw.data(), y.data(), t.data(), m.data(), N, L, P, norm_pix, 1e-6f, 1.5f));
    CHECK(itest::close("normpix backward", first, gw, 1e-5, 1.0));
  }
}

DAMA_TEST(elementwise_loss_gradients_match_the_cpu_bit_for_bit) {
  itest::Rng r(74);
  for (int64_t n : {1, 7, 257, 5003}) {
    std::vector<float> p = itest::random_vec(r, (size_t)n, 1e-3f, 2.0f), t = itest::random_vec(r, (size_t)n, 1e-3f, 2.0f);
    DevBuf dp(p), dt(t), dl(std::vector<float>{0.8125f});
    for (int red = 0; red < 2; red++) {
      std::vector<float> gp = itest::random_vec(r, (size_t)n, 1e-3f, 1.0f), gt = itest::random_vec(r, (size_t)n, 1e-3f, 1.0f);
      DevBuf dgp(gp), dgt(gt);
      CHECK_CUDA(dama_cuda::sq_error_backward(dgp.p, dgt.p, dp.p, dt.p, n, red, dl.p, 0));
      CHECK_OK(dama_sq_error_backward(gp.data(), gt.data(), p.data(), t.data(), n, red, 0.8125f));
      CHECK(itest::same_bits("sq_error dpred", dgp.download(), gp));
      CHECK(itest::same_bits("sq_error dtarget", dgt.download(), gt));
      CHECK_CUDA(dama_cuda::smooth_l1_loss_backward(dgp.p, nullptr, dp.p, dt.p, n, 0.5f, red, dl.p, 0));
      CHECK_OK(dama_smooth_l1_loss_backward(gp.data(), nullptr, p.data(), t.data(), n, 0.5f, red, 0.8125f));
      CHECK(itest::same_bits("smooth_l1 dpred", dgp.download(), gp));
    }
  }
}
