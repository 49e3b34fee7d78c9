/* The block reduction helpers and the two-pass sum through the interpreter: against dama_reduce's sum (double
 * accumulators, so the float sum's error is measured against sum |x|), bit-identical across fiber schedules and worker
 * counts (deterministic: no atomics), odd sizes, block sizes from one warp to 1024 threads. */
#include "interp_test.h"

#include "kernels/reduce.cuh"

using itest::DevBuf;

static double cpu_sum(const std::vector<float> &x) {
  int64_t n = (int64_t)x.size();
  dama_tensor *t = nullptr, *s = nullptr;
  if (dama_from_buffer(&t, 1, &n, DAMA_F32, x.data(), DAMA_F32, dama_device{DAMA_CPU, 0}) != DAMA_OK) return NAN;
  double v = NAN;
  if (dama_reduce(&s, DAMA_RSUM, t, 0, nullptr, 0, 0, 2.0) == DAMA_OK) v = *static_cast<const float *>(dama_data_ptr(s));
  dama_tensor_release(s);
  dama_tensor_release(t);
  return v;
}

DAMA_TEST(sum_matches_dama_reduce) {
  itest::Rng r(51);
  for (int64_t n : {1, 2, 31, 33, 255, 257, 1000, 65537, 1000003 /* > 1024 blocks: strided */}) {
    std::vector<float> x = itest::random_vec(r, (size_t)n, 1e-3f, 10.0f);
    double abs_sum = 0;
    for (float v : x) abs_sum += fabs(v);
    DevBuf dx(x), out(1), work((size_t)std::max<int64_t>(1, dama_cuda::sum_f32_workspace(n)));
    CHECK_CUDA(dama_cuda::sum_f32(out.p, dx.p, n, work.p, 0));
    const double got = out.download()[0], want = cpu_sum(x);
    CHECK_MSG(fabs(got - want) <= 1e-5 * abs_sum, "n=%lld: %.9g vs the CPU's %.9g (sum |x| %.6g)", (long long)n, got,
              want, abs_sum);
  }
  /* all positive: plain relative error */
  std::vector<float> x = itest::positive_vec(r, 33333, 0.5f, 1.5f);
  DevBuf dx(x), out(1), work((size_t)dama_cuda::sum_f32_workspace(33333));
  CHECK_CUDA(dama_cuda::sum_f32(out.p, dx.p, 33333, work.p, 0));
  const double got = out.download()[0], want = cpu_sum(x);
  CHECK_MSG(fabs(got - want) <= 1e-5 * fabs(want), "%.9g vs %.9g", got, want);
  /* n = 0 writes 0 */
  CHECK_CUDA(dama_cuda::sum_f32(out.p, dx.p, 0, nullptr, 0));
  CHECK(out.download()[0] == 0.0f);
}

DAMA_TEST(sum_gives_the_same_bits_under_every_schedule_and_worker_count) {
  itest::Rng r(52);
  const int64_t n = 20011;
  std::vector<float> x = itest::random_vec(r, (size_t)n, 1e-3f, 10.0f);
  DevBuf dx(x), out(1), work((size_t)dama_cuda::sum_f32_workspace(n));
  std::vector<float> first;
  bool same = true;
  const int saved = cuda_interp::workers();
  for (int nw : {1, 2, 4}) {
    cuda_interp::set_workers(nw);
    itest::each_schedule([&](cuda_interp::Schedule s) {
      dama_cuda::sum_f32(out.p, dx.p, n, work.p, 0);
      std::vector<float> got = out.download();
      if (first.empty()) first = got;
      else same = same && itest::same_bits(itest::schedule_name(s), got, first);
    });
  }
  cuda_interp::set_workers(saved);
  CHECK(same);
}

/* block_sum / block_max for every block size, each block reducing its own slice, the result seen by every thread */
static __global__ void block_reduce_kernel(float *sums, float *maxes, const float *x) {
  DAMA_SHARED(float, scratch, [32]);
  const float v = x[blockIdx.x * blockDim.x + threadIdx.x];
  const float s = dama_cuda::block_sum(v, scratch);
  const float m = dama_cuda::block_max(v, scratch); /* reuses scratch straight away */
  const float s2 = dama_cuda::block_sum(-v, scratch);
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  sums[i] = s - s2 * 0.0f + (s2 == -s ? 0.0f : 1.0f);
  maxes[i] = m;
}

DAMA_TEST(block_sum_and_max_for_every_block_size) {
  itest::Rng r(53);
  for (unsigned block : {32u, 64u, 96u, 160u, 256u, 1024u}) {
    const unsigned grid = 3, n = block * grid;
    std::vector<float> x = itest::random_vec(r, n, 1e-3f, 4.0f);
    DevBuf dx(x), ds(n), dm(n);
    bool ok = true;
    std::vector<float> first;
    itest::each_schedule([&](cuda_interp::Schedule s) {
      DAMA_LAUNCH(block_reduce_kernel, grid, block, 0, 0, ds.p, dm.p, dx.p);
      std::vector<float> sums = ds.download(), maxes = dm.download();
      for (unsigned b = 0; b < grid; b++) {
        double want = 0, abs_sum = 0;
        float mx = -INFINITY;
        for (unsigned t = 0; t < block; t++) {
          const float v = x[b * block + t];
          want += v;
          abs_sum += fabs(v);
          mx = v > mx ? v : mx;
        }
        for (unsigned t = 0; t < block; t++) {
          const size_t i = b * block + t;
          if (sums[i] != sums[b * block] || fabs(sums[i] - want) > 1e-6 * abs_sum || maxes[i] != mx) ok = false;
        }
      }
      if (first.empty()) first = sums;
      else if (!itest::same_bits(itest::schedule_name(s), sums, first)) ok = false;
    });
    CHECK_MSG(ok, "block %u", block);
  }
}
