/* interp_test.h — helpers for the interpreter tests: dama_test.h's DAMA_TEST/CHECK in C++, random inputs that are
 * never zero, device buffers through the interpreter's cudaMalloc/cudaMemcpy, and comparisons (bitwise, or within a
 * relative tolerance) that print the worst element. */
#ifndef DAMA_INTERP_TEST_H
#define DAMA_INTERP_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dama.h"
extern "C" {
#include "dama_test.h"
}

#include <cstdint>
#include <cstring>
#include <vector>

#include "cuda_interp.h"

#define CHECK_CUDA(call)                                                                                         \
  do {                                                                                                           \
    cudaError_t e_ = (call);                                                                                     \
    if (e_ != cudaSuccess) {                                                                                     \
      dama_test_fail(__FILE__, __LINE__, "%s -> %s (%s)", #call, cudaGetErrorName(e_), cudaGetErrorString(e_)); \
      return;                                                                                                    \
    }                                                                                                            \
  } while (0)

namespace itest {

/* The seed of every test's inputs: DAMA_INTERP_SEED, or a fixed default (printed when a comparison fails). */
inline uint64_t seed() {
  static uint64_t s = [] {
    const char *e = getenv("DAMA_INTERP_SEED");
    return e ? strtoull(e, nullptr, 10) : 20240611ull;
  }();
  return s;
}

/* splitmix64: a small, good generator for test inputs */
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t salt) : s(seed() * 0x9E3779B97F4A7C15ull + salt) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double u01() { return (double)(next() >> 11) * (1.0 / 9007199254740992.0); }
  /* uniform in [lo, hi) */
  float uniform(float lo, float hi) { return (float)(lo + (hi - lo) * u01()); }
  /* magnitude in [lo, hi), random sign: never zero when lo > 0 */
  float signed_mag(float lo, float hi) { return (next() & 1 ? 1.0f : -1.0f) * uniform(lo, hi); }
};

inline std::vector<float> random_vec(Rng &r, size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (float &x : v) x = r.signed_mag(lo, hi);
  return v;
}
inline std::vector<float> positive_vec(Rng &r, size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (float &x : v) x = r.uniform(lo, hi);
  return v;
}

/* A device buffer of floats in the interpreter's device memory. */
struct DevBuf {
  float *p = nullptr;
  size_t n = 0;
  explicit DevBuf(size_t count) : n(count) {
    if (cudaMalloc(&p, n * sizeof(float)) != cudaSuccess) p = nullptr;
  }
  explicit DevBuf(const std::vector<float> &h) : DevBuf(h.size()) { upload(h); }
  DevBuf(const DevBuf &) = delete;
  DevBuf &operator=(const DevBuf &) = delete;
  ~DevBuf() { cudaFree(p); }
  void upload(const std::vector<float> &h) { cudaMemcpy(p, h.data(), h.size() * sizeof(float), cudaMemcpyHostToDevice); }
  std::vector<float> download() const {
    std::vector<float> h(n);
    cudaMemcpy(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost);
    return h;
  }
};

/* true if got and want hold the same bits; else reports the first difference */
inline bool same_bits(const char *what, const std::vector<float> &got, const std::vector<float> &want) {
  if (got.size() != want.size()) {
    fprintf(stderr, "  %s: %zu values, expected %zu\n", what, got.size(), want.size());
    return false;
  }
  for (size_t i = 0; i < got.size(); i++) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      fprintf(stderr, "  %s: element %zu is %.9g (%a), expected %.9g (%a) [seed %llu]\n", what, i, got[i], got[i],
              want[i], want[i], (unsigned long long)seed());
      return false;
    }
  }
  return true;
}

/* max over i of |got - want| / (|want| + floor); true if <= rtol. floor keeps values near zero (cancellation) from
 * dominating: pass the scale of the quantity (e.g. 1 for normalised outputs), 0 for pure relative error. */
inline bool close(const char *what, const std::vector<float> &got, const std::vector<float> &want, double rtol,
                  double floor, double *worst_out = nullptr) {
  if (got.size() != want.size()) {
    fprintf(stderr, "  %s: %zu values, expected %zu\n", what, got.size(), want.size());
    return false;
  }
  double worst = 0;
  size_t wi = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double g = got[i], w = want[i];
    const double e = (g == w) ? 0.0 : fabs(g - w) / (fabs(w) + floor);
    if (!(e <= worst) || e != e) { worst = e != e ? INFINITY : e; wi = i; }
  }
  if (worst_out) *worst_out = worst;
  if (!(worst <= rtol)) {
    fprintf(stderr, "  %s: element %zu is %.9g, expected %.9g: relative error %.3g > %.3g [seed %llu]\n", what, wi,
            got[wi], want[wi], worst, rtol, (unsigned long long)seed());
    return false;
  }
  return true;
}

/* Runs f under each fiber schedule (forward, reverse, warps, random) and restores the default. */
template <class F> inline void each_schedule(F f) {
  const cuda_interp::Schedule saved = cuda_interp::schedule();
  const cuda_interp::Schedule all[4] = {cuda_interp::Schedule::forward, cuda_interp::Schedule::reverse,
                                        cuda_interp::Schedule::warps, cuda_interp::Schedule::random};
  for (cuda_interp::Schedule s : all) {
    cuda_interp::set_schedule(s, seed());
    f(s);
  }
  cuda_interp::set_schedule(saved, seed());
}

inline const char *schedule_name(cuda_interp::Schedule s) {
  return s == cuda_interp::Schedule::forward   ? "forward"
         : s == cuda_interp::Schedule::reverse ? "reverse"
         : s == cuda_interp::Schedule::warps   ? "warps"
                                               : "random";
}

} // namespace itest

#endif
