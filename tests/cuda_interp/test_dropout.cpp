/* Dropout with a byte mask (no tensor entry reaches it from Lua) and drop-path through the interpreter against
 * runtime/cpu/nn_act.c, bit for bit (this file has nn_act.c's fp-contract=fast and no-trapping-math); drop-path in
 * both of its index types (the 64-bit one is taken only past 2^31 elements, so it is launched directly here). Odd
 * sizes, fresh random inputs that are never zero, gradients accumulating into random values. */
#include "interp_test.h"

#include "kernels/dropout.cuh"

using itest::DevBuf;

DAMA_TEST(dropout_with_a_byte_mask_matches_the_cpu_bit_for_bit) {
  itest::Rng r(81);
  for (int64_t n : {1, 7, 33, 257, 4099}) {
    std::vector<float> x = itest::random_vec(r, (size_t)n, 1e-3f, 3.0f), g = itest::random_vec(r, (size_t)n, 1e-3f, 1.0f);
    std::vector<uint8_t> m((size_t)n);
    for (uint8_t &v : m) v = (r.next() % 10) < 7 ? (uint8_t)(1 + r.next() % 255) : 0; /* any non-zero byte keeps */
    const float scale = 1.0f / 0.7f;
    uint8_t *dm = nullptr;
    CHECK_CUDA(cudaMalloc(&dm, (size_t)n));
    CHECK_CUDA(cudaMemcpy(dm, m.data(), (size_t)n, cudaMemcpyHostToDevice));
    std::vector<float> out((size_t)n), d0 = itest::random_vec(r, (size_t)n, 1e-3f, 1.0f), dwant = d0;
    DevBuf dx(x), dg(g), dout((size_t)n), dd(d0);
    CHECK_CUDA(dama_cuda::dropout_u8_forward(dout.p, dx.p, dm, scale, n, 0));
    CHECK_OK(dama_dropout_u8_forward(out.data(), x.data(), m.data(), scale, n));
    CHECK(itest::same_bits("dropout_u8_forward", dout.download(), out));
    CHECK_CUDA(dama_cuda::dropout_u8_backward(dd.p, dg.p, dm, scale, n, 0));
    CHECK_OK(dama_dropout_u8_backward(dwant.data(), g.data(), m.data(), scale, n));
    CHECK(itest::same_bits("dropout_u8_backward", dd.download(), dwant));
    cudaFree(dm);
  }
}

DAMA_TEST(drop_path_matches_the_cpu_in_both_index_types) {
  itest::Rng r(82);
  for (int64_t N : {1, 7, 33})
    for (int64_t M : {1, 33, 257}) {
      const size_t n = (size_t)(N * M);
      std::vector<float> x = itest::random_vec(r, n, 1e-3f, 3.0f), keep((size_t)N);
      for (float &v : keep) v = (r.next() & 1) ? 1.0f : 0.0f;
      std::vector<float> want(n), dwant = itest::random_vec(r, n, 1e-3f, 1.0f);
      const std::vector<float> d0 = dwant, g = itest::random_vec(r, n, 1e-3f, 1.0f);
      CHECK_OK(dama_drop_path_forward(want.data(), x.data(), keep.data(), 1.25f, N, M));
      CHECK_OK(dama_drop_path_backward(dwant.data(), g.data(), keep.data(), 1.25f, N, M));
      DevBuf dx(x), dk(keep), dg(g), out(n), dd(d0);
      CHECK_CUDA(dama_cuda::drop_path_forward(out.p, dx.p, dk.p, 1.25f, N, M, 0)); /* the 32-bit path */
      CHECK(itest::same_bits("drop_path_forward", out.download(), want));
      CHECK_CUDA(dama_cuda::drop_path_backward(dd.p, dg.p, dk.p, 1.25f, N, M, 0));
      CHECK(itest::same_bits("drop_path_backward", dd.download(), dwant));
      DevBuf out64(n), dd64(d0);
      const unsigned blocks = dama_cuda::grid_stride_blocks((int64_t)n, dama_cuda::k_block);
      DAMA_LAUNCH(dama_cuda::drop_path_forward_kernel<int64_t>, blocks, dama_cuda::k_block, 0, 0, out64.p,
                  (const float *)dx.p, (const float *)dk.p, 1.25f, (int64_t)n, M);
      DAMA_LAUNCH(dama_cuda::drop_path_backward_kernel<int64_t>, blocks, dama_cuda::k_block, 0, 0, dd64.p,
                  (const float *)dg.p, (const float *)dk.p, 1.25f, (int64_t)n, M);
      CHECK_CUDA(cudaGetLastError());
      CHECK(itest::same_bits("drop_path_forward (64-bit indices)", out64.download(), want));
      CHECK(itest::same_bits("drop_path_backward (64-bit indices)", dd64.download(), dwant));
    }
}
