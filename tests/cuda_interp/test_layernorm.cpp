/* LayerNorm forward and backward through the interpreter against runtime/cpu/nn_norm.c, with and without weight and
 * bias: within 1e-5 relative (the sums run in another order; this file has nn_norm.c's fp-contract=fast). Odd row
 * lengths, inputs with a large mean (the two-pass variance matters), fresh random values that are never zero; the
 * weight/bias gradient's column reduction under every fiber schedule. */
#include "interp_test.h"

#include "kernels/layernorm.cuh"

using itest::DevBuf;

static const int64_t k_cols[] = {1, 3, 31, 33, 65, 192, 257, 771};
static const int64_t k_rows[] = {1, 5, 37};

DAMA_TEST(layernorm_forward_matches_the_cpu) {
  itest::Rng r(41);
  double worst = 0;
  for (int64_t C : k_cols)
    for (int64_t N : k_rows)
      for (int affine = 0; affine < 4; affine++) {
        const size_t n = (size_t)(N * C);
        std::vector<float> x(n);
        for (float &v : x) v = 3.0f + r.signed_mag(1e-3f, 2.0f);
        std::vector<float> w = itest::random_vec(r, (size_t)C, 0.5f, 1.5f), b = itest::random_vec(r, (size_t)C, 0.1f, 1.0f);
        const float eps = 1e-6f;
        std::vector<float> out(n), mean((size_t)N), rstd((size_t)N);
        const float *wp = (affine & 1) ? w.data() : nullptr, *bp = (affine & 2) ? b.data() : nullptr;
        CHECK_OK(dama_layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), wp, bp, N, C, eps));
        DevBuf dx(x), dw(w), db(b), dout(n), dmean((size_t)N), drstd((size_t)N);
        CHECK_CUDA(dama_cuda::layernorm_forward(dout.p, dmean.p, drstd.p, dx.p, (affine & 1) ? dw.p : nullptr,
                                                (affine & 2) ? db.p : nullptr, N, C, eps, 0));
        char what[80];
        snprintf(what, sizeof what, "layernorm N=%lld C=%lld affine=%d", (long long)N, (long long)C, affine);
        double e1 = 0, e2 = 0, e3 = 0;
        CHECK(itest::close(what, dout.download(), out, 1e-5, 1.0, &e1)); /* normalised values: scale 1 */
        CHECK(itest::close("mean", dmean.download(), mean, 1e-5, 0.0, &e2));
        CHECK(itest::close("rstd", drstd.download(), rstd, 1e-5, 0.0, &e3));
        worst = std::max(worst, std::max(e1, std::max(e2, e3)));
        if (affine == 3) { /* in place gives the same bits as out of place */
          CHECK_CUDA(dama_cuda::layernorm_forward(dx.p, dmean.p, drstd.p, dx.p, dw.p, db.p, N, C, eps, 0));
          CHECK(itest::same_bits("layernorm in place", dx.download(), dout.download()));
        }
      }
  fprintf(stderr, "  layernorm forward: worst relative error %.3g\n", worst);
}

DAMA_TEST(layernorm_backward_matches_the_cpu) {
  itest::Rng r(42);
  double worst_dx = 0, worst_dp = 0;
  for (int64_t C : k_cols)
    for (int64_t N : k_rows)
      for (int mode = 0; mode < 4; mode++) { /* 0: all three; 1: dinp only; 2: params only; 3: no weight */
        const size_t n = (size_t)(N * C);
        std::vector<float> x(n);
        for (float &v : x) v = -2.0f + r.signed_mag(1e-3f, 3.0f);
        std::vector<float> w = itest::random_vec(r, (size_t)C, 0.5f, 1.5f), b = itest::random_vec(r, (size_t)C, 0.1f, 1.0f);
        std::vector<float> g = itest::random_vec(r, n, 1e-3f, 1.0f), out(n), mean((size_t)N), rstd((size_t)N);
        const float *wp = mode == 3 ? nullptr : w.data();
        CHECK_OK(dama_layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), wp, b.data(), N, C, 1e-5f));
        /* gradients accumulate into what is there */
        std::vector<float> dx = itest::random_vec(r, n, 1e-3f, 0.5f), dwt = itest::random_vec(r, (size_t)C, 1e-3f, 0.5f),
                           dbs = itest::random_vec(r, (size_t)C, 1e-3f, 0.5f);
        std::vector<float> want_dx = dx, want_dw = dwt, want_db = dbs;
        const bool want_in = mode != 2, want_params = mode != 1;
        CHECK_OK(dama_layernorm_backward(want_in ? want_dx.data() : nullptr, want_params && wp ? want_dw.data() : nullptr,
                                         want_params ? want_db.data() : nullptr, g.data(), x.data(), wp, mean.data(),
                                         rstd.data(), N, C));
        DevBuf ddx(dx), ddw(dwt), ddb(dbs), dg(g), dxin(x), dw(w), dmean(mean), drstd(rstd);
        CHECK_CUDA(dama_cuda::layernorm_backward(want_in ? ddx.p : nullptr, want_params && wp ? ddw.p : nullptr,
                                                 want_params ? ddb.p : nullptr, dg.p, dxin.p, wp ? dw.p : nullptr,
                                                 dmean.p, drstd.p, N, C, 0));
        char what[80];
        snprintf(what, sizeof what, "layernorm backward N=%lld C=%lld mode=%d", (long long)N, (long long)C, mode);
        double e = 0;
        CHECK(itest::close(what, ddx.download(), want_dx, 1e-5, 1.0, &e));
        worst_dx = std::max(worst_dx, e);
        /* dweight, dbias: sums over N rows of O(1) terms; the scale of the sum is sqrt(N) */
        const double floor = sqrt((double)N);
        CHECK(itest::close("dweight", ddw.download(), want_dw, 1e-5, floor, &e));
        worst_dp = std::max(worst_dp, e);
        CHECK(itest::close("dbias", ddb.download(), want_db, 1e-5, floor, &e));
        worst_dp = std::max(worst_dp, e);
      }
  fprintf(stderr, "  layernorm backward: worst error dinp %.3g, dweight/dbias %.3g\n", worst_dx, worst_dp);
}

DAMA_TEST(layernorm_parameter_gradients_give_the_same_bits_under_every_schedule) {
  itest::Rng r(43);
  const int64_t N = 45, C = 97;
  std::vector<float> x = itest::random_vec(r, (size_t)(N * C), 1e-3f, 2.0f), g = itest::random_vec(r, (size_t)(N * C), 1e-3f, 1.0f);
  std::vector<float> out((size_t)(N * C)), mean((size_t)N), rstd((size_t)N);
  CHECK_OK(dama_layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), nullptr, nullptr, N, C, 1e-5f));
  DevBuf dx(x), dg(g), dmean(mean), drstd(rstd), dw((size_t)C), db((size_t)C);
  std::vector<float> first_w, first_b;
  bool same = true;
  itest::each_schedule([&](cuda_interp::Schedule s) {
    cudaMemset(dw.p, 0, C * sizeof(float));
    cudaMemset(db.p, 0, C * sizeof(float));
    dama_cuda::layernorm_backward(nullptr, dw.p, db.p, dg.p, dx.p, nullptr, dmean.p, drstd.p, N, C, 0);
    std::vector<float> w = dw.download(), b = db.download();
    if (first_w.empty()) { first_w = w; first_b = b; }
    else same = same && itest::same_bits(itest::schedule_name(s), w, first_w) && itest::same_bits("dbias", b, first_b);
  });
  CHECK(same);
}

/* Many rows: the weight/bias gradient in row chunks (a function of N only), partial sums, then a second pass in
 * chunk order: the CPU's values within 1e-5, and the same bits under every schedule and with 1 and 3 workers. */
DAMA_TEST(layernorm_parameter_gradients_in_row_chunks_match_the_cpu_under_every_schedule) {
  itest::Rng r(44);
  for (int64_t N : {257, 600, 20000}) {
    const int64_t C = N > 1000 ? 7 : 97;
    CHECK(dama_cuda::layernorm_params_chunks(N) > 1);
    const size_t n = (size_t)(N * C);
    std::vector<float> x = itest::random_vec(r, n, 1e-3f, 2.0f), g = itest::random_vec(r, n, 1e-3f, 1.0f);
    std::vector<float> out(n), mean((size_t)N), rstd((size_t)N);
    CHECK_OK(dama_layernorm_forward(out.data(), mean.data(), rstd.data(), x.data(), nullptr, nullptr, N, C, 1e-5f));
    const std::vector<float> w0 = itest::random_vec(r, (size_t)C, 1e-3f, 0.5f), b0 = itest::random_vec(r, (size_t)C, 1e-3f, 0.5f);
    std::vector<float> want_w = w0, want_b = b0;
    CHECK_OK(dama_layernorm_backward(nullptr, want_w.data(), want_b.data(), g.data(), x.data(), nullptr, mean.data(),
                                     rstd.data(), N, C));
    DevBuf dx(x), dg(g), dmean(mean), drstd(rstd), dw((size_t)C), db((size_t)C),
        work((size_t)dama_cuda::layernorm_backward_workspace(N, C));
    std::vector<float> first_w, first_b;
    bool same = true;
    const int saved = cuda_interp::workers();
    for (int nw : {1, 3}) {
      cuda_interp::set_workers(nw);
      itest::each_schedule([&](cuda_interp::Schedule s) {
        dw.upload(w0);
        db.upload(b0);
        dama_cuda::layernorm_backward_ws(nullptr, dw.p, db.p, dg.p, dx.p, nullptr, dmean.p, drstd.p, N, C, work.p, 0);
        std::vector<float> w = dw.download(), b = db.download();
        if (first_w.empty()) { first_w = w; first_b = b; }
        else same = same && itest::same_bits(itest::schedule_name(s), w, first_w) && itest::same_bits("dbias", b, first_b);
      });
    }
    cuda_interp::set_workers(saved);
    CHECK(same);
    const double floor = sqrt((double)N);
    CHECK(itest::close("dweight (chunks)", first_w, want_w, 1e-5, floor));
    CHECK(itest::close("dbias (chunks)", first_b, want_b, 1e-5, floor));
  }
}
