/* patchify / unpatchify and the 2-D sin-cos position table through the interpreter against runtime/cpu/nn_patch.c:
 * the patch ops are copies (bit for bit) in both of their index types (the 64-bit one is taken only past 2^31
 * elements, so it is launched directly here); the table is double sin/cos/pow on both sides (this layer's device
 * math is the host's libm: bit for bit). Odd channel counts and image sizes, patch sizes 1 to 8. */
#include "interp_test.h"

#include "kernels/patch.cuh"

using itest::DevBuf;

struct Shape {
  int64_t N, C, H, W, p;
};
static const Shape k_shapes[] = {{1, 1, 4, 4, 1}, {2, 3, 8, 12, 4}, {3, 7, 16, 16, 8}, {1, 2, 6, 10, 2}, {2, 5, 9, 3, 3}};

DAMA_TEST(patchify_and_unpatchify_match_the_cpu_in_both_index_types) {
  itest::Rng r(91);
  for (const Shape &s : k_shapes) {
    const size_t n = (size_t)(s.N * s.C * s.H * s.W);
    std::vector<float> img = itest::random_vec(r, n, 1e-3f, 1.0f), patches(n), back(n);
    CHECK_OK(dama_patchify(patches.data(), img.data(), s.N, s.C, s.H, s.W, s.p));
    CHECK_OK(dama_unpatchify(back.data(), patches.data(), s.N, s.C, s.H, s.W, s.p));
    CHECK(itest::same_bits("cpu round trip", back, img));
    DevBuf di(img), dp(n), db(n), dp64(n), db64(n);
    CHECK_CUDA(dama_cuda::patchify(dp.p, di.p, s.N, s.C, s.H, s.W, s.p, 0));
    CHECK_MSG(itest::same_bits("patchify", dp.download(), patches), "N=%lld C=%lld H=%lld W=%lld p=%lld",
              (long long)s.N, (long long)s.C, (long long)s.H, (long long)s.W, (long long)s.p);
    CHECK_CUDA(dama_cuda::unpatchify(db.p, dp.p, s.N, s.C, s.H, s.W, s.p, 0));
    CHECK(itest::same_bits("unpatchify", db.download(), img));
    const unsigned blocks = dama_cuda::grid_stride_blocks((int64_t)n, dama_cuda::k_block);
    const dama_cuda::patch_dims<int64_t> d = dama_cuda::make_patch_dims<int64_t>(s.N, s.C, s.H, s.W, s.p);
    DAMA_LAUNCH(dama_cuda::patchify_kernel<int64_t>, blocks, dama_cuda::k_block, 0, 0, dp64.p, (const float *)di.p, d);
    DAMA_LAUNCH(dama_cuda::unpatchify_kernel<int64_t>, blocks, dama_cuda::k_block, 0, 0, db64.p, (const float *)dp64.p,
                d);
    CHECK_CUDA(cudaGetLastError());
    CHECK(itest::same_bits("patchify (64-bit indices)", dp64.download(), patches));
    CHECK(itest::same_bits("unpatchify (64-bit indices)", db64.download(), img));
  }
}

DAMA_TEST(pos_embed_2d_sincos_matches_the_cpu) {
  const int64_t cases[][3] = {{4, 1, 1}, {8, 3, 5}, {64, 4, 4}, {768, 8, 8}, {12, 1, 7}};
  for (const auto &c : cases)
    for (int cls = 0; cls < 2; cls++) {
      const size_t n = (size_t)((cls + c[1] * c[2]) * c[0]);
      std::vector<float> want(n);
      CHECK_OK(dama_pos_embed_2d_sincos(want.data(), c[0], c[1], c[2], cls));
      DevBuf d(n);
      CHECK_CUDA(dama_cuda::pos_embed_2d_sincos(d.p, c[0], c[1], c[2], cls, 0));
      CHECK_MSG(itest::same_bits("pos_embed", d.download(), want), "D=%lld grid %lldx%lld cls=%d", (long long)c[0],
                (long long)c[1], (long long)c[2], cls);
    }
}
