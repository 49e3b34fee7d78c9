/* The CUDA-semantics layer itself: barriers order memory, shuffles follow PTX's lane rules, votes, atomics from many
 * blocks on several OS threads, static and dynamic shared memory, launch errors, bf16/fp16 conversions against the
 * runtime's, streams and events, and the faults it reports (deadlock, bad masks) in a child process. */
#include "interp_test.h"

#include <stdbool.h>
#include <string.h>
extern "C" {
#include "core/dama_internal.h" /* the runtime's bf16/f16 conversions */
}

#include "kernels/dialect.cuh"

#include <sys/wait.h>
#include <unistd.h>

#include <string>

using itest::DevBuf;

/* ---------------------------------------------------------------- barriers */

/* each thread writes its slot, then (after the barrier) reads its neighbour's; with `sync` false the read may come
 * before the neighbour's write, which the fiber schedules expose */
static __global__ void neighbour_kernel(int *out, int sync) {
  DAMA_SHARED(int, s, [256]);
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned n = blockDim.x * blockDim.y * blockDim.z;
  s[t] = (int)(t * 3 + 1 + blockIdx.x);
  if (sync) __syncthreads();
  out[blockIdx.x * n + t] = s[(t + 1) % n];
}

DAMA_TEST(syncthreads_orders_shared_memory_under_every_schedule) {
  const dim3 blocks[3] = {dim3(256), dim3(16, 4, 2), dim3(7, 3, 5)}; /* 256, 128 and 105 threads */
  for (const dim3 &b : blocks) {
    const unsigned n = b.x * b.y * b.z, grid = 5;
    int *d = nullptr;
    CHECK_CUDA(cudaMalloc(&d, grid * n * sizeof(int)));
    bool ok_all = true;
    itest::each_schedule([&](cuda_interp::Schedule) {
      DAMA_LAUNCH(neighbour_kernel, grid, b, 0, 0, d, 1);
      std::vector<int> h(grid * n);
      cudaMemcpy(h.data(), d, h.size() * sizeof(int), cudaMemcpyDeviceToHost);
      for (unsigned g = 0; g < grid; g++)
        for (unsigned t = 0; t < n; t++)
          if (h[g * n + t] != (int)(((t + 1) % n) * 3 + 1 + g)) ok_all = false;
    });
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(ok_all);
    /* without the barrier the forward schedule reads slots nobody wrote yet (0xFF bytes: -1) */
    cuda_interp::set_schedule(cuda_interp::Schedule::forward);
    DAMA_LAUNCH(neighbour_kernel, grid, b, 0, 0, d, 0);
    std::vector<int> h(grid * n);
    cudaMemcpy(h.data(), d, h.size() * sizeof(int), cudaMemcpyDeviceToHost);
    CHECK(h[0] == -1);
    cudaFree(d);
  }
}

/* each warp publishes a value in its slot, every thread reads the next warp's, twice over the same slots; a warp
 * shuffle stands between the read and the next write (as in a block reduction). Without the second barrier a warp
 * that runs ahead overwrites a slot that a slower warp has still to read: in passes every thread reads before any
 * writes, so only the warp-by-warp schedules show it */
static __global__ void slot_reuse_kernel(int *out, int sync) {
  DAMA_SHARED(int, slot, [32]);
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  int acc = 0;
  for (int round = 0; round < 2; round++) {
    if (lane == 0) slot[warp] = round * 100 + (int)warp;
    __syncthreads();
    acc += __shfl_sync(0xffffffffu, slot[(warp + 1) % nw], (int)lane);
    if (sync) __syncthreads();
  }
  out[threadIdx.x] = acc;
}

DAMA_TEST(the_warp_by_warp_schedules_expose_a_missing_barrier_before_reuse) {
  const unsigned n = 256;
  int *d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, n * sizeof(int)));
  std::vector<int> h(n);
  const cuda_interp::Schedule saved = cuda_interp::schedule();
  for (int sync = 0; sync < 2; sync++) {
    itest::each_schedule([&](cuda_interp::Schedule s) {
      DAMA_LAUNCH(slot_reuse_kernel, 2, n, 0, 0, d, sync);
      cudaMemcpy(h.data(), d, n * sizeof(int), cudaMemcpyDeviceToHost);
      bool right = true;
      for (unsigned t = 0; t < n; t++) right = right && h[t] == 100 + 2 * (int)((t / 32 + 1) % 8);
      const bool pass_based = s == cuda_interp::Schedule::forward || s == cuda_interp::Schedule::reverse;
      CHECK_MSG(right == (sync || pass_based), "sync=%d schedule %s: right=%d", sync, itest::schedule_name(s), right);
    });
  }
  cuda_interp::set_schedule(saved);
  cudaFree(d);
}

/* a shared-memory tree sum with a barrier per level, and the count/and/or barriers */
static __global__ void tree_and_votes_kernel(int *out) {
  DAMA_SHARED(int, s, [512]);
  const unsigned t = threadIdx.x;
  s[t] = (int)t + 1;
  __syncthreads();
  for (unsigned h = blockDim.x / 2; h > 0; h /= 2) {
    if (t < h) s[t] += s[t + h];
    __syncthreads();
  }
  const int count = __syncthreads_count(t % 3 == 0);
  const int all = __syncthreads_and(t < blockDim.x);
  const int none = __syncthreads_or(t > 100000);
  const int any = __syncthreads_or(t == blockDim.x - 1);
  if (t == 0) {
    out[0] = s[0];
    out[1] = count;
    out[2] = all;
    out[3] = none;
    out[4] = any;
  }
}

DAMA_TEST(barrier_loops_and_syncthreads_count_and_or) {
  int *d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, 5 * sizeof(int)));
  for (unsigned n : {512u, 64u, 32u, 1u}) {
    DAMA_LAUNCH(tree_and_votes_kernel, 1, n, 0, 0, d);
    int h[5];
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    CHECK_MSG(h[0] == (int)(n * (n + 1) / 2), "n=%u: tree sum %d", n, h[0]);
    CHECK_MSG(h[1] == (int)((n + 2) / 3), "n=%u: count %d", n, h[1]);
    CHECK(h[2] == 1 && h[3] == 0 && h[4] == 1);
  }
  cudaFree(d);
}

/* ---------------------------------------------------------------- grid and block coordinates */
static __global__ void coords_kernel(unsigned *out) {
  const unsigned bl = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned tl = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned n = blockDim.x * blockDim.y * blockDim.z;
  unsigned *o = out + 6 * (bl * n + tl);
  o[0] = blockIdx.x; o[1] = blockIdx.y; o[2] = blockIdx.z;
  o[3] = threadIdx.x; o[4] = threadIdx.y; o[5] = threadIdx.z;
}

DAMA_TEST(grid_and_block_coordinates_cover_3d_launches) {
  const dim3 g(3, 2, 2), b(5, 3, 2);
  const unsigned nb = 12, nt = 30;
  unsigned *d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, 6 * nb * nt * sizeof(unsigned)));
  DAMA_LAUNCH(coords_kernel, g, b, 0, 0, d);
  CHECK_CUDA(cudaGetLastError());
  std::vector<unsigned> h(6 * nb * nt);
  cudaMemcpy(h.data(), d, h.size() * sizeof(unsigned), cudaMemcpyDeviceToHost);
  for (unsigned bz = 0; bz < 2; bz++)
    for (unsigned by = 0; by < 2; by++)
      for (unsigned bx = 0; bx < 3; bx++)
        for (unsigned tz = 0; tz < 2; tz++)
          for (unsigned ty = 0; ty < 3; ty++)
            for (unsigned tx = 0; tx < 5; tx++) {
              const unsigned bl = bx + 3 * (by + 2 * bz), tl = tx + 5 * (ty + 3 * tz);
              const unsigned *o = &h[6 * (bl * nt + tl)];
              CHECK(o[0] == bx && o[1] == by && o[2] == bz && o[3] == tx && o[4] == ty && o[5] == tz);
            }
  cudaFree(d);
}

/* ---------------------------------------------------------------- warp shuffles */

/* expected source lane by the CUDA programming guide's description (not the layer's PTX formula) */
static int guide_source(int kind, int lane, int b, int width) {
  const int seg = lane / width * width; /* first lane of this lane's width-group */
  switch (kind) {
    case 0: return seg + (b % width + width) % width;                              /* __shfl_sync: srcLane % width */
    case 1: return lane - b >= seg ? lane - b : lane;                              /* up: unchanged below the group */
    case 2: return lane + b < seg + width ? lane + b : lane;                       /* down: unchanged past the group */
    default: return (lane ^ b) < seg + width ? (lane ^ b) : lane;                  /* xor: later groups unreachable */
  }
}

static __global__ void shuffle_kernel(float *outf, double *outd, long long *outl, int kind, int b, int width) {
  const int lane = (int)(threadIdx.x & 31u);
  const float vf = 1000.0f * blockIdx.x + (float)threadIdx.x + 0.25f;
  const double vd = -(double)threadIdx.x - 1e-9;
  const long long vl = ((long long)threadIdx.x << 40) | 7;
  float rf;
  double rd;
  long long rl;
  const int bb = kind == 0 ? b + lane * 7 : b; /* __shfl_sync takes a per-lane source */
  switch (kind) {
    case 0:
      rf = __shfl_sync(0xffffffffu, vf, bb, width);
      rd = __shfl_sync(0xffffffffu, vd, bb, width);
      rl = __shfl_sync(0xffffffffu, vl, bb, width);
      break;
    case 1:
      rf = __shfl_up_sync(0xffffffffu, vf, (unsigned)b, width);
      rd = __shfl_up_sync(0xffffffffu, vd, (unsigned)b, width);
      rl = __shfl_up_sync(0xffffffffu, vl, (unsigned)b, width);
      break;
    case 2:
      rf = __shfl_down_sync(0xffffffffu, vf, (unsigned)b, width);
      rd = __shfl_down_sync(0xffffffffu, vd, (unsigned)b, width);
      rl = __shfl_down_sync(0xffffffffu, vl, (unsigned)b, width);
      break;
    default:
      rf = __shfl_xor_sync(0xffffffffu, vf, b, width);
      rd = __shfl_xor_sync(0xffffffffu, vd, b, width);
      rl = __shfl_xor_sync(0xffffffffu, vl, b, width);
      break;
  }
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  outf[i] = rf;
  outd[i] = rd;
  outl[i] = rl;
}

DAMA_TEST(shuffles_follow_the_lane_rules_for_every_width) {
  const unsigned threads = 96, grid = 2, n = threads * grid;
  float *df;
  double *dd;
  long long *dl;
  CHECK_CUDA(cudaMalloc(&df, n * sizeof(float)));
  CHECK_CUDA(cudaMalloc(&dd, n * sizeof(double)));
  CHECK_CUDA(cudaMalloc(&dl, n * sizeof(long long)));
  std::vector<float> hf(n);
  std::vector<double> hd(n);
  std::vector<long long> hl(n);
  int cases = 0;
  for (int kind = 0; kind < 4; kind++)
    for (int width = 1; width <= 32; width *= 2)
      for (int b : {0, 1, 3, 5, 16, 31}) {
        if (kind == 3 && b >= 32) continue;
        DAMA_LAUNCH(shuffle_kernel, grid, threads, 0, 0, df, dd, dl, kind, b, width);
        cudaMemcpy(hf.data(), df, n * sizeof(float), cudaMemcpyDeviceToHost);
        cudaMemcpy(hd.data(), dd, n * sizeof(double), cudaMemcpyDeviceToHost);
        cudaMemcpy(hl.data(), dl, n * sizeof(long long), cudaMemcpyDeviceToHost);
        for (unsigned i = 0; i < n; i++) {
          const unsigned blk = i / threads, t = i % threads, warp = t / 32;
          const int lane = (int)(t % 32);
          const int src = guide_source(kind, lane, kind == 0 ? b + lane * 7 : b, width);
          const unsigned st = warp * 32 + (unsigned)src;
          CHECK_MSG(hf[i] == 1000.0f * blk + (float)st + 0.25f && hd[i] == -(double)st - 1e-9 &&
                        hl[i] == (((long long)st << 40) | 7),
                    "kind %d width %d b %d thread %u: got lane %g", kind, width, b, t, (double)hf[i] - 1000.0 * blk);
        }
        cases++;
      }
  CHECK(cases == 4 * 6 * 6);
  cudaFree(df);
  cudaFree(dd);
  cudaFree(dl);
}

/* a warp-shuffle reduction of bf16 values (2-byte type) and of a struct-free pair packed in 8 bytes */
static __global__ void warp_sum_bf16_kernel(float *out) {
  __nv_bfloat16 v = __float2bfloat16((float)(threadIdx.x & 31u));
  for (int o = 16; o > 0; o >>= 1) v = __hadd(v, __shfl_xor_sync(0xffffffffu, v, o));
  out[threadIdx.x] = __bfloat162float(v);
}

DAMA_TEST(shuffles_move_bf16_values) {
  DevBuf d(64);
  DAMA_LAUNCH(warp_sum_bf16_kernel, 1, 64, 0, 0, d.p);
  std::vector<float> h = d.download();
  for (float x : h) CHECK(x == 496.0f); /* 0 + ... + 31, exact in bf16 */
}

/* ---------------------------------------------------------------- votes, partial masks, __syncwarp */
static __global__ void votes_kernel(unsigned *out) {
  const unsigned lane = threadIdx.x & 31u, i = threadIdx.x;
  out[8 * i + 0] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  out[8 * i + 1] = (unsigned)__any_sync(0xffffffffu, lane == 17);
  out[8 * i + 2] = (unsigned)__all_sync(0xffffffffu, lane < 32);
  out[8 * i + 3] = (unsigned)__all_sync(0xffffffffu, lane != 5);
  /* the two halves of the warp diverge and vote among themselves */
  if (lane < 16) out[8 * i + 4] = __ballot_sync(0x0000ffffu, lane & 1);
  else out[8 * i + 4] = __ballot_sync(0xffff0000u, lane >= 30);
  __syncwarp();
  out[8 * i + 5] = __reduce_add_sync(0xffffffffu, lane);
  out[8 * i + 6] = (unsigned)__reduce_max_sync(0xffffffffu, (int)lane - 10);
  out[8 * i + 7] = __match_any_sync(0xffffffffu, lane / 8);
}

/* lanes 0 and 31 meet in a two-lane shuffle while the others already wait in a full-warp vote: overlapping masks
 * pending at once are legal, the vote completes once 0 and 31 get there */
static __global__ void overlapping_masks_kernel(unsigned *out) {
  const unsigned lane = threadIdx.x & 31u;
  unsigned v = lane;
  if (lane == 0 || lane == 31) v = __shfl_sync(0x80000001u, v, lane == 0 ? 31 : 0);
  out[threadIdx.x] = __ballot_sync(0xffffffffu, v == 31 - lane || (lane != 0 && lane != 31)) ^ v;
}

DAMA_TEST(votes_partial_masks_and_warp_reductions) {
  unsigned *d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, 64 * 8 * sizeof(unsigned)));
  DAMA_LAUNCH(votes_kernel, 1, 64, 0, 0, d);
  CHECK_CUDA(cudaGetLastError());
  std::vector<unsigned> h(64 * 8);
  cudaMemcpy(h.data(), d, h.size() * sizeof(unsigned), cudaMemcpyDeviceToHost);
  unsigned every3 = 0;
  for (unsigned l = 0; l < 32; l += 3) every3 |= 1u << l;
  for (unsigned i = 0; i < 64; i++) {
    const unsigned lane = i % 32, *o = &h[8 * i];
    CHECK(o[0] == every3);
    CHECK(o[1] == 1 && o[2] == 1 && o[3] == 0);
    CHECK(o[4] == (lane < 16 ? 0x0000aaaau : 0xc0000000u));
    CHECK(o[5] == 496 && o[6] == 21);
    CHECK(o[7] == 0xffu << (lane / 8 * 8));
  }
  itest::each_schedule([&](cuda_interp::Schedule) { DAMA_LAUNCH(overlapping_masks_kernel, 1, 64, 0, 0, d); });
  cudaMemcpy(h.data(), d, 64 * sizeof(unsigned), cudaMemcpyDeviceToHost);
  for (unsigned i = 0; i < 64; i++) {
    const unsigned lane = i % 32, v = lane == 0 ? 31 : lane == 31 ? 0 : lane;
    CHECK_MSG(h[i] == (0xffffffffu ^ v), "thread %u: %#x", i, h[i]);
  }
  cudaFree(d);
}

/* ---------------------------------------------------------------- atomics */
static __global__ void atomics_kernel(float *fsum, int *isum, unsigned long long *usum, double *dsum, int *imax,
                                      unsigned long long *umax, unsigned *umin, float *fmax, int *cas_count) {
  const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(fsum, (float)(i % 7));
  atomicAdd(isum, (int)i);
  atomicAdd(usum, (unsigned long long)i << 33);
  atomicAdd(dsum, 0.5 * (double)i);
  atomicMax(imax, (int)((i * 2654435761u) % 100003u) - 50000);
  atomicMax(umax, (unsigned long long)i * 3);
  atomicMin(umin, 1000000u - i);
  dama_cuda::atomic_max_f32(fmax, -1000.0f + 0.5f * (float)(i % 1999));
  /* a CAS loop increment */
  int old = *cas_count, assumed;
  do {
    assumed = old;
    old = atomicCAS(cas_count, assumed, assumed + 1);
  } while (old != assumed);
}

DAMA_TEST(atomics_from_many_blocks_on_several_os_threads) {
  CHECK(cuda_interp::workers() >= 1);
  const int saved = cuda_interp::workers();
  for (int nw : {1, 3}) {
    cuda_interp::set_workers(nw);
    const unsigned grid = 40, block = 128, n = grid * block;
    float *fsum, *fmax;
    int *isum, *imax, *cas;
    unsigned long long *usum, *umax;
    unsigned *umin;
    double *dsum;
    CHECK_CUDA(cudaMalloc(&fsum, 4));
    CHECK_CUDA(cudaMalloc(&fmax, 4));
    CHECK_CUDA(cudaMalloc(&isum, 4));
    CHECK_CUDA(cudaMalloc(&imax, 4));
    CHECK_CUDA(cudaMalloc(&cas, 4));
    CHECK_CUDA(cudaMalloc(&usum, 8));
    CHECK_CUDA(cudaMalloc(&umax, 8));
    CHECK_CUDA(cudaMalloc(&umin, 4));
    CHECK_CUDA(cudaMalloc(&dsum, 8));
    const float f0 = 0.0f, fm = -1e30f;
    const int i0 = 0, im = -2147483647;
    const unsigned long long u0 = 0;
    const unsigned um = 0xffffffffu;
    const double d0 = 0;
    cudaMemcpy(fsum, &f0, 4, cudaMemcpyHostToDevice);
    cudaMemcpy(fmax, &fm, 4, cudaMemcpyHostToDevice);
    cudaMemcpy(isum, &i0, 4, cudaMemcpyHostToDevice);
    cudaMemcpy(cas, &i0, 4, cudaMemcpyHostToDevice);
    cudaMemcpy(imax, &im, 4, cudaMemcpyHostToDevice);
    cudaMemcpy(usum, &u0, 8, cudaMemcpyHostToDevice);
    cudaMemcpy(umax, &u0, 8, cudaMemcpyHostToDevice);
    cudaMemcpy(umin, &um, 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dsum, &d0, 8, cudaMemcpyHostToDevice);
    DAMA_LAUNCH(atomics_kernel, grid, block, 0, 0, fsum, isum, usum, dsum, imax, umax, umin, fmax, cas);
    CHECK_CUDA(cudaGetLastError());
    float hf, hfm;
    int hi, him, hc;
    unsigned long long hu, hum;
    unsigned humin;
    double hd;
    cudaMemcpy(&hf, fsum, 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hfm, fmax, 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hi, isum, 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(&him, imax, 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hc, cas, 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hu, usum, 8, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hum, umax, 8, cudaMemcpyDeviceToHost);
    cudaMemcpy(&humin, umin, 4, cudaMemcpyDeviceToHost);
    cudaMemcpy(&hd, dsum, 8, cudaMemcpyDeviceToHost);
    double ef = 0;
    long long ei = 0;
    int emax = -2147483647;
    float efm = -1e30f;
    for (unsigned i = 0; i < n; i++) {
      ef += i % 7;
      ei += i;
      const int v = (int)((i * 2654435761u) % 100003u) - 50000;
      emax = v > emax ? v : emax;
      const float fv = -1000.0f + 0.5f * (float)(i % 1999);
      efm = fv > efm ? fv : efm;
    }
    CHECK_MSG(hf == (float)ef, "workers %d: float sum %g, expected %g", nw, (double)hf, ef); /* integers: exact */
    CHECK(hi == (int)ei);
    CHECK(hu == ((unsigned long long)ei << 33));
    CHECK(hd == 0.5 * (double)ei);
    CHECK(him == emax);
    CHECK(hum == 3ull * (n - 1));
    CHECK(humin == 1000000u - (n - 1));
    CHECK(hfm == efm);
    CHECK_MSG(hc == (int)n, "workers %d: CAS count %d", nw, hc);
    cudaFree(fsum); cudaFree(fmax); cudaFree(isum); cudaFree(imax); cudaFree(cas);
    cudaFree(usum); cudaFree(umax); cudaFree(umin); cudaFree(dsum);
  }
  cuda_interp::set_workers(saved);
}

/* ---------------------------------------------------------------- shared memory */
static __global__ void dynamic_shared_kernel(float *out, int n) {
  DAMA_DYNAMIC_SHARED(float, buf);
  DAMA_SHARED(float, fixed, [2][33]);
  for (int i = (int)threadIdx.x; i < n; i += (int)blockDim.x) buf[i] = (float)(i * 2 + (int)blockIdx.x);
  if (threadIdx.x < 66) fixed[threadIdx.x / 33][threadIdx.x % 33] = (float)threadIdx.x;
  __syncthreads();
  for (int i = (int)threadIdx.x; i < n; i += (int)blockDim.x)
    out[blockIdx.x * n + i] = buf[n - 1 - i] + fixed[1][32] * 0.0f + (sizeof(fixed) == 2 * 33 * sizeof(float) ? 0 : 1);
}

DAMA_TEST(dynamic_and_static_shared_memory_are_per_block) {
  for (int n : {1, 1000, 12288 /* 48 KiB */}) {
    DevBuf d((size_t)n * 3);
    DAMA_LAUNCH(dynamic_shared_kernel, 3, 128, (size_t)n * sizeof(float), 0, d.p, n);
    CHECK_CUDA(cudaGetLastError());
    std::vector<float> h = d.download();
    for (int b = 0; b < 3; b++)
      for (int i = 0; i < n; i++) CHECK(h[(size_t)b * n + i] == (float)((n - 1 - i) * 2 + b));
  }
  /* more than 48 KiB needs the opt-in attribute, as on a GPU */
  const int big = 20000;
  DevBuf d(big);
  DAMA_LAUNCH(dynamic_shared_kernel, 1, 128, big * sizeof(float), 0, d.p, big);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK_CUDA(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)(big * sizeof(float))));
  DAMA_LAUNCH(dynamic_shared_kernel, 1, 128, big * sizeof(float), 0, d.p, big);
  CHECK_CUDA(cudaGetLastError());
  CHECK(d.download()[0] == (float)((big - 1) * 2));
}

/* ---------------------------------------------------------------- launch configuration */
static __global__ void noop_kernel(int *p) {
  if (p) *p = 1;
}

DAMA_TEST(bad_launch_configurations_set_the_last_error) {
  const uint64_t before = cuda_interp::launch_count();
  DAMA_LAUNCH(noop_kernel, 1, 1025, 0, 0, nullptr);
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cudaGetLastError() == cudaSuccess); /* read and cleared */
  DAMA_LAUNCH(noop_kernel, 0, 32, 0, 0, nullptr);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  DAMA_LAUNCH(noop_kernel, dim3(1, 70000), 32, 0, 0, nullptr);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  DAMA_LAUNCH(noop_kernel, 1, dim3(32, 32, 2), 0, 0, nullptr);
  CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration);
  CHECK(cuda_interp::launch_count() == before); /* none of them ran */
  DAMA_LAUNCH(noop_kernel, 1, dim3(32, 32, 1), 0, 0, nullptr);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(cuda_interp::launch_count() == before + 1);
}

/* ---------------------------------------------------------------- memory, streams, events */
DAMA_TEST(device_memory_starts_unzeroed_and_streams_run_in_order) {
  float *d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, 64 * sizeof(float)));
  float h[64];
  CHECK_CUDA(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
  CHECK(h[0] != h[0]); /* 0xFF bytes: NaN, so a kernel that assumes zeroed memory fails its test */
  CHECK(cudaFree(h) == cudaErrorInvalidValue); /* not a device allocation */
  (void)cudaGetLastError();
  cudaStream_t s;
  cudaEvent_t e0, e1;
  CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  CHECK_CUDA(cudaEventCreate(&e0));
  CHECK_CUDA(cudaEventCreate(&e1));
  float *pinned = nullptr;
  CHECK_CUDA(cudaMallocHost(&pinned, sizeof h));
  for (int i = 0; i < 64; i++) pinned[i] = (float)i + 0.5f;
  CHECK_CUDA(cudaEventRecord(e0, s));
  CHECK_CUDA(cudaMemcpyAsync(d, pinned, sizeof h, cudaMemcpyHostToDevice, s));
  int *flag = nullptr;
  CHECK_CUDA(cudaMalloc(&flag, sizeof(int)));
  DAMA_LAUNCH(noop_kernel, 1, 32, 0, s, flag);
  CHECK_CUDA(cudaMemsetAsync(d, 0, 8 * sizeof(float), s));
  CHECK_CUDA(cudaEventRecord(e1, s));
  CHECK_CUDA(cudaStreamWaitEvent(0, e1, 0));
  CHECK(cudaEventQuery(e1) == cudaSuccess);
  CHECK(cudaStreamQuery(s) == cudaSuccess);
  CHECK_CUDA(cudaEventSynchronize(e1));
  float ms = -1;
  CHECK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
  CHECK(ms >= 0.0f);
  CHECK_CUDA(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
  CHECK(h[0] == 0.0f && h[7] == 0.0f && h[8] == 8.5f && h[63] == 63.5f);
  int hflag = 0;
  CHECK_CUDA(cudaMemcpy(&hflag, flag, sizeof hflag, cudaMemcpyDeviceToHost));
  CHECK(hflag == 1);
  size_t fr = 0, tot = 0;
  CHECK_CUDA(cudaMemGetInfo(&fr, &tot));
  CHECK(fr < tot);
  CHECK_CUDA(cudaEventDestroy(e0));
  CHECK_CUDA(cudaEventDestroy(e1));
  CHECK_CUDA(cudaStreamDestroy(s));
  CHECK_CUDA(cudaFreeHost(pinned));
  CHECK_CUDA(cudaFree(flag));
  CHECK_CUDA(cudaFree(d));
  int v = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&v, cudaDevAttrWarpSize, 0));
  CHECK(v == 32);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  CHECK(cudaGetLastError() == cudaErrorInvalidDevice);
}

/* ---------------------------------------------------------------- bf16 / fp16 */
static float bits_f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

DAMA_TEST(bf16_and_fp16_conversions_match_the_runtime) {
  itest::Rng r(11);
  int checked = 0;
  /* every half bit pattern decodes as the runtime decodes it */
  for (uint32_t h = 0; h < 65536; h++) {
    const float a = __half2float(__ushort_as_half((unsigned short)h)), b = dama_f16_to_f32((uint16_t)h);
    CHECK_MSG((a != a && b != b) || memcmp(&a, &b, 4) == 0, "half %#x: %a vs %a", h, a, b);
  }
  /* random bit patterns, values near the rounding ties and the half range edges */
  std::vector<uint32_t> pats;
  for (int i = 0; i < 200000; i++) pats.push_back((uint32_t)r.next());
  for (uint32_t e = 0; e < 256; e++)
    for (uint32_t low : {0u, 0x1000u, 0x0fffu, 0x1001u, 0x3000u, 0x8000u, 0x7fffu, 0x18000u, 0x7fffffu})
      for (uint32_t s : {0u, 0x80000000u}) pats.push_back(s | (e << 23) | low);
  for (uint32_t u : pats) {
    const float f = bits_f(u);
    const unsigned short hb = __bfloat16_as_ushort(__float2bfloat16(f)), rb = dama_f32_to_bf16(f);
    const unsigned short hh = __half_as_ushort(__float2half(f)), rh = dama_f32_to_f16(f);
    if (f != f) {
      CHECK(hb == 0x7fff && hh == 0x7fff); /* CUDA's canonical NaN; the runtime keeps the payload's sign */
      CHECK((rb & 0x7f80) == 0x7f80 && (rb & 0x7f) && (rh & 0x7c00) == 0x7c00 && (rh & 0x3ff));
      continue;
    }
    CHECK_MSG(hb == rb, "bf16 of %a: %#x vs the runtime's %#x", f, hb, rb);
    CHECK_MSG(hh == rh, "f16 of %a: %#x vs the runtime's %#x", f, hh, rh);
    checked++;
  }
  CHECK(checked > 190000);
  CHECK(__bfloat162float(__hmul(__float2bfloat16(3.0f), __float2bfloat16(-0.5f))) == -1.5f);
  CHECK(__half2float(__hadd(__float2half(65504.0f), __float2half(32.0f))) == INFINITY);
  CHECK(__half2float(__hfma(__float2half(2.0f), __float2half(3.0f), __float2half(0.25f))) == 6.25f);
}

/* ---------------------------------------------------------------- faults, in a child process */
/* runs f in a child with stderr captured; true if the child died abnormally and its stderr contains `needle` */
template <class F> static bool dies_with(F f, const char *needle, std::string *err) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  fflush(stdout);
  fflush(stderr);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 2);
    close(fds[0]);
    cuda_interp::set_workers(1);
    f();
    _exit(0);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t k;
  err->clear();
  while ((k = read(fds[0], buf, sizeof buf)) > 0) err->append(buf, (size_t)k);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  const bool abnormal = WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
  return abnormal && err->find(needle) != std::string::npos;
}

static __global__ void divergent_barrier_kernel(int *p) {
  if (threadIdx.x < 16) __syncthreads();
  if (p) p[threadIdx.x] = 1;
}
static __global__ void early_return_shuffle_kernel(float *p) {
  if (threadIdx.x == 3) return;
  const float v = __shfl_down_sync(0xffffffffu, 1.0f, 1);
  if (p) p[threadIdx.x] = v;
}
static __global__ void mask_without_self_kernel(unsigned *p) {
  const unsigned b = __ballot_sync(0xfffffffeu, 1);
  if (p) p[threadIdx.x] = b;
}
static __global__ void mask_past_block_kernel(unsigned *p) {
  const unsigned b = __ballot_sync(0xffffffffu, 1); /* a 40-thread block: the second warp has 8 lanes */
  if (p) p[threadIdx.x] = b;
}
static __global__ void shared_oob_kernel(float *out, int dynamic) {
  DAMA_SHARED(float, s, [64]);
  DAMA_DYNAMIC_SHARED(float, dyn);
  s[threadIdx.x] = 1.0f;
  dyn[threadIdx.x] = 2.0f;
  __syncthreads();
  volatile int k = 64; /* one past the end, through a pointer (UBSan would see an index into the array type) */
  const float *p = dynamic ? dyn : &s[0];
  if (threadIdx.x == 0) out[0] = p[k];
}

static __global__ void global_oob_kernel(float *out, const float *x, int n) {
  const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i <= n) out[i % n] = x[i]; /* `<=`: the last thread reads one past the end */
}

DAMA_TEST(faults_are_reported_with_the_block_and_threads) {
  std::string err;
  CHECK_MSG(dies_with([] { DAMA_LAUNCH(divergent_barrier_kernel, 2, 32, 0, 0, nullptr); }, "deadlock in block (0,0,0)",
                      &err),
            "divergent __syncthreads: %s", err.c_str());
  CHECK(err.find("at __syncthreads: 16") != std::string::npos);
  CHECK_MSG(dies_with([] { DAMA_LAUNCH(early_return_shuffle_kernel, 1, 32, 0, 0, nullptr); }, "ended: 1 (3)", &err),
            "early return before a shuffle: %s", err.c_str());
  CHECK_MSG(dies_with([] { DAMA_LAUNCH(mask_without_self_kernel, 1, 32, 0, 0, nullptr); },
                      "__ballot_sync: the calling lane 0 is not in the mask", &err),
            "mask without the caller: %s", err.c_str());
  CHECK_MSG(dies_with([] { DAMA_LAUNCH(mask_past_block_kernel, 1, 40, 0, 0, nullptr); },
                      "names lanes that do not exist", &err),
            "mask past the block: %s", err.c_str());
#if defined(__SANITIZE_ADDRESS__)
  /* the reason shared memory is heap memory: AddressSanitizer sees an index past a DAMA_SHARED array */
  for (int dynamic = 0; dynamic < 2; dynamic++)
    CHECK_MSG(dies_with(
                  [dynamic] {
                    DevBuf d(1);
                    DAMA_LAUNCH(shared_oob_kernel, 1, 64, 64 * sizeof(float), 0, d.p, dynamic);
                  },
                  "heap-buffer-overflow", &err),
              "%s shared-memory overflow under ASan: %s", dynamic ? "dynamic" : "static", err.c_str());
  /* and device memory is host heap memory: one past a cudaMalloc'd buffer */
  CHECK_MSG(dies_with(
                [] {
                  DevBuf x(100), out(100);
                  DAMA_LAUNCH(global_oob_kernel, 4, 32, 0, 0, out.p, x.p, 100);
                },
                "heap-buffer-overflow", &err),
            "device-memory overflow under ASan: %s", err.c_str());
#else
  (void)shared_oob_kernel;
  (void)global_oob_kernel;
#endif
}

static __global__ void add_kernel(float *x, float v, int n) {
  const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) x[i] += v;
}

/* CUDA graphs: a capture records (it runs nothing), the arguments are copied at capture, replays run the nodes in
 * order, and what CUDA refuses during a capture is refused here and invalidates it. */
DAMA_TEST(stream_capture_records_and_graph_replays_run_in_order) {
  cudaStream_t s;
  CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  const int n = 300;
  float *d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, n * sizeof(float)));
  std::vector<float> h(n, 0.0f), back(n);
  CHECK_CUDA(cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  const uint64_t launches0 = cuda_interp::launch_count();
  CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  cudaStreamCaptureStatus st;
  CHECK_CUDA(cudaStreamIsCapturing(s, &st));
  CHECK(st == cudaStreamCaptureStatusActive);
  float v = 1.0f;
  DAMA_LAUNCH(add_kernel, (n + 127) / 128, 128, 0, s, d, v, n);
  v = 100.0f;   /* changed after the capture: the graph keeps 1.0 */
  CHECK_CUDA(cudaMemsetAsync(d + 7, 0, sizeof(float), s));
  DAMA_LAUNCH(add_kernel, (n + 127) / 128, 128, 0, s, d, 2.0f, n);
  cudaGraph_t g;
  CHECK_CUDA(cudaStreamEndCapture(s, &g));
  CHECK_MSG(cuda_interp::launch_count() == launches0, "the capture ran a kernel");
  CHECK_CUDA(cudaMemcpy(back.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
  CHECK_MSG(back[0] == 0.0f && back[7] == 0.0f, "the capture changed memory: %g", back[0]);
  cudaGraphExec_t ex;
  CHECK_CUDA(cudaGraphInstantiate(&ex, g, 0));
  for (int rep = 1; rep <= 3; rep++) {
    CHECK_CUDA(cudaGraphLaunch(ex, s));
    CHECK_CUDA(cudaStreamSynchronize(s));
    CHECK_CUDA(cudaMemcpy(back.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost));
    CHECK_MSG(back[0] == 3.0f * rep && back[299] == 3.0f * rep, "replay %d: %g", rep, back[0]);
    CHECK_MSG(back[7] == 2.0f, "replay %d: the memset runs between the two kernels: %g", rep, back[7]);
  }
  (void)v;
  CHECK_CUDA(cudaGraphExecDestroy(ex));
  CHECK_CUDA(cudaGraphDestroy(g));

  /* refused during a capture, which is then invalid */
  CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  CHECK(cudaStreamSynchronize(s) == cudaErrorStreamCaptureUnsupported);
  (void)cudaGetLastError();
  CHECK_CUDA(cudaStreamIsCapturing(s, &st));
  CHECK(st == cudaStreamCaptureStatusInvalidated);
  CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
  (void)cudaGetLastError();
  void *p = nullptr;
  CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  CHECK(cudaMalloc(&p, 64) == cudaErrorStreamCaptureUnsupported);
  (void)cudaGetLastError();
  CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
  (void)cudaGetLastError();
  CHECK_CUDA(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));   /* Relaxed allows cudaMalloc */
  CHECK_CUDA(cudaMalloc(&p, 64));
  CHECK(cudaFree(p) == cudaErrorStreamCaptureUnsupported);               /* never cudaFree */
  (void)cudaGetLastError();
  CHECK(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated);
  (void)cudaGetLastError();
  CHECK_CUDA(cudaFree(p));
  CHECK(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal) == cudaErrorStreamCaptureUnsupported);
  (void)cudaGetLastError();
  CHECK_CUDA(cudaFree(d));
  CHECK_CUDA(cudaStreamDestroy(s));
}

/* Changing the worker count replaces the pool of OS threads: the old threads leave and give their fiber stacks back
 * (they once stayed, and ~120 changes exhausted the process's memory mappings). */
DAMA_TEST(changing_the_worker_count_many_times_releases_the_old_threads) {
  const int saved = cuda_interp::workers();
  float *d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, 4096 * sizeof(float)));
  CHECK_CUDA(cudaMemset(d, 0, 4096 * sizeof(float)));
  for (int i = 0; i < 400; i++) {
    cuda_interp::set_workers(2 + (i % 3));
    DAMA_LAUNCH(add_kernel, 16, 256, 0, 0, d, 1.0f, 4096);   /* 16 blocks of 256 fibers on the new pool */
    CHECK_CUDA(cudaGetLastError());
  }
  std::vector<float> h(4096);
  CHECK_CUDA(cudaMemcpy(h.data(), d, h.size() * sizeof(float), cudaMemcpyDeviceToHost));
  CHECK_MSG(h[0] == 400.0f && h[4095] == 400.0f, "%g %g", h[0], h[4095]);
  CHECK_CUDA(cudaFree(d));
  cuda_interp::set_workers(saved);
}
