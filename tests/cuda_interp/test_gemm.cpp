/* The GEMM area's own kernels (cuda/gemm_kernels.cu, cuda/kernels/im2col.cuh) through the interpreter: im2col and
 * col2im against runtime/cpu/nn_patch.c (its `col` output, and its input gradient with an identity weight, which
 * makes its GEMM exact), bit for bit; the attention head layouts and the strided operand copies against direct
 * index arithmetic, bit for bit; the bias gradient's column sums against a double reference within 1e-5 (of
 * sqrt(N)), accumulating onto what is there, with the same bits under all four fiber schedules. */
#include "interp_test.h"

#include "gemm_kernels.cu"

#include <algorithm>

using itest::DevBuf;

DAMA_TEST(im2col_and_col2im_match_the_cpu_patch_embedding) {
  itest::Rng r(701);
  const struct { int64_t N, C, H, W, p; } shapes[] = {
      {1, 1, 4, 4, 2}, {2, 3, 6, 9, 3}, {3, 2, 16, 8, 4}, {1, 5, 7, 7, 7}, {2, 1, 1, 1, 1}, {1, 3, 32, 16, 16}};
  for (const auto &s : shapes) {
    const int64_t L = (s.H / s.p) * (s.W / s.p), K = s.C * s.p * s.p, D = K, nimg = s.N * s.C * s.H * s.W;
    std::vector<float> imgs = itest::random_vec(r, (size_t)nimg, 1e-3f, 2.0f);
    std::vector<float> w((size_t)(D * K), 0.0f); /* identity: out = col, dimgs += col2im(dout) exactly */
    for (int64_t i = 0; i < K; i++) w[(size_t)(i * K + i)] = 1.0f;
    std::vector<float> out((size_t)(s.N * L * D)), col((size_t)(s.N * L * K));
    CHECK_OK(dama_patch_embed_forward(out.data(), col.data(), imgs.data(), w.data(), nullptr, s.N, s.C, s.H, s.W, s.p, D));
    DevBuf dimgs(imgs), dcol(col.size());
    CHECK_CUDA(dama_cuda_gemm_im2col(dcol.p, dimgs.p, s.N, s.C, s.H, s.W, s.p, 0));
    char what[96];
    snprintf(what, sizeof what, "im2col N=%lld C=%lld H=%lld W=%lld p=%lld", (long long)s.N, (long long)s.C,
             (long long)s.H, (long long)s.W, (long long)s.p);
    CHECK(itest::same_bits(what, dcol.download(), col));
    /* the input gradient accumulates onto what is there */
    std::vector<float> g = itest::random_vec(r, col.size(), 1e-3f, 1.0f), d0 = itest::random_vec(r, (size_t)nimg, 1e-3f, 1.0f);
    std::vector<float> want = d0, scratch(col.size());
    CHECK_OK(dama_patch_embed_backward(want.data(), nullptr, nullptr, g.data(), col.data(), w.data(), scratch.data(),
                                       s.N, s.C, s.H, s.W, s.p, D));
    DevBuf dd(d0), dg(g);
    CHECK_CUDA(dama_cuda_gemm_col2im_add(dd.p, dg.p, s.N, s.C, s.H, s.W, s.p, 0));
    CHECK(itest::same_bits("col2im_add", dd.download(), want));
  }
}

DAMA_TEST(attention_head_layouts_split_and_merge) {
  itest::Rng r(702);
  const struct { int64_t B, T, NH, hd; } shapes[] = {{1, 1, 1, 1}, {2, 13, 3, 8}, {3, 7, 2, 5}, {1, 65, 4, 16}};
  for (const auto &s : shapes) {
    const int64_t C = s.NH * s.hd, n = s.B * s.T * 3 * C;
    std::vector<float> qkv = itest::random_vec(r, (size_t)n, 1e-3f, 1.0f);
    DevBuf dq(qkv), heads((size_t)n);
    CHECK_CUDA(dama_cuda_gemm_heads_split(heads.p, dq.p, s.B, s.T, 3, s.NH, s.hd, 3 * C, C, 0));
    std::vector<float> want((size_t)n);
    for (int64_t p = 0; p < 3; p++)
      for (int64_t b = 0; b < s.B; b++)
        for (int64_t h = 0; h < s.NH; h++)
          for (int64_t t = 0; t < s.T; t++)
            for (int64_t d = 0; d < s.hd; d++)
              want[(size_t)((((p * s.B + b) * s.NH + h) * s.T + t) * s.hd + d)] =
                  qkv[(size_t)((b * s.T + t) * 3 * C + p * C + h * s.hd + d)];
    CHECK(itest::same_bits("heads_split", heads.download(), want));
    /* merge onto random rows: rows + heads, element by element */
    std::vector<float> rows0 = itest::random_vec(r, (size_t)n, 1e-3f, 1.0f), rows = rows0;
    DevBuf drows(rows0);
    CHECK_CUDA(dama_cuda_gemm_heads_merge(drows.p, heads.p, s.B, s.T, 3, s.NH, s.hd, 3 * C, C, 1, 0));
    for (size_t i = 0; i < rows.size(); i++) rows[i] = rows0[i] + qkv[i];
    CHECK(itest::same_bits("heads_merge accumulate", drows.download(), rows));
    CHECK_CUDA(dama_cuda_gemm_heads_merge(drows.p, heads.p, s.B, s.T, 3, s.NH, s.hd, 3 * C, C, 0, 0));
    CHECK(itest::same_bits("heads_merge overwrite", drows.download(), qkv));
  }
}

DAMA_TEST(strided_copies_of_2_4_and_8_byte_elements) {
  itest::Rng r(703);
  const struct { int32_t nd; int64_t shape[4]; int64_t strides[4]; int64_t base; } views[] = {
      {1, {7}, {-1}, 6},                          /* a flipped vector */
      {2, {5, 3}, {1, 5}, 0},                     /* a transpose */
      {2, {4, 6}, {0, 2}, 1},                     /* a broadcast row, gapped columns */
      {3, {2, 3, 4}, {40, -4, 9}, 12},            /* mixed signs */
      {4, {2, 1, 3, 2}, {30, 7, 1, -10}, 15}};
  for (int esz : {2, 4, 8})
    for (const auto &v : views) {
      std::vector<uint8_t> src(200 * 8);
      for (auto &b : src) b = (uint8_t)(r.next() & 0xff);
      int64_t n = 1;
      for (int32_t i = 0; i < v.nd; i++) n *= v.shape[i];
      void *dsrc = nullptr, *ddst = nullptr;
      CHECK_CUDA(cudaMalloc(&dsrc, src.size()));
      CHECK_CUDA(cudaMalloc(&ddst, (size_t)(n * esz)));
      CHECK_CUDA(cudaMemcpy(dsrc, src.data(), src.size(), cudaMemcpyHostToDevice));
      CHECK_CUDA(dama_cuda_gemm_strided_copy(ddst, (char *)dsrc + v.base * esz, esz, v.nd, v.shape, v.strides, 0));
      std::vector<uint8_t> got((size_t)(n * esz)), want((size_t)(n * esz));
      CHECK_CUDA(cudaMemcpy(got.data(), ddst, got.size(), cudaMemcpyDeviceToHost));
      for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, off = v.base;
        for (int32_t d = v.nd - 1; d >= 0; d--) { off += (rem % v.shape[d]) * v.strides[d]; rem /= v.shape[d]; }
        memcpy(&want[(size_t)(i * esz)], &src[(size_t)(off * esz)], (size_t)esz);
      }
      cudaFree(dsrc);
      cudaFree(ddst);
      CHECK_MSG(got == want, "strided copy: %d-byte elements, %d dims differ", esz, (int)v.nd);
    }
  int64_t shape[1] = {3}, strides[1] = {1};
  CHECK(dama_cuda_gemm_strided_copy(nullptr, nullptr, 3, 1, shape, strides, 0) == cudaErrorInvalidValue);
}

DAMA_TEST(bias_gradient_column_sums_accumulate_in_a_fixed_order) {
  itest::Rng r(704);
  double worst = 0;
  for (int64_t N : {1, 7, 63, 64, 65, 257, 4099})
    for (int64_t OC : {1, 7, 33, 65}) {
      std::vector<float> d = itest::random_vec(r, (size_t)(N * OC), 1e-3f, 1.0f);
      std::vector<float> db0 = itest::random_vec(r, (size_t)OC, 1e-3f, 1.0f);
      std::vector<float> want(db0.size());
      for (int64_t c = 0; c < OC; c++) {
        double s = db0[(size_t)c];
        for (int64_t i = 0; i < N; i++) s += d[(size_t)(i * OC + c)];
        want[(size_t)c] = (float)s;
      }
      DevBuf dd(d), ddb(db0), part((size_t)dama_cuda_gemm_colsum_partials(N, OC));
      std::vector<float> first;
      bool same = true;
      itest::each_schedule([&](cuda_interp::Schedule sch) {
        ddb.upload(db0);
        if (dama_cuda_gemm_colsum_add(ddb.p, dd.p, part.p, N, OC, 0) != cudaSuccess) same = false;
        std::vector<float> got = ddb.download();
        if (first.empty()) first = got;
        else same = same && itest::same_bits(itest::schedule_name(sch), got, first);
      });
      CHECK(same);
      char what[64];
      snprintf(what, sizeof what, "colsum N=%lld OC=%lld", (long long)N, (long long)OC);
      double e = 0;
      CHECK(itest::close(what, first, want, 1e-5, sqrt((double)N), &e));
      worst = std::max(worst, e);
    }
  fprintf(stderr, "  column sums: worst error %.3g (relative to |sum| + sqrt(N))\n", worst);
}
