// probe.cu — the one kernel of this slice: a pattern fill that dama_cuda_selftest runs to show that the device
// executes code from this build (machine code for its architecture, or PTX the driver can compile for it), and the
// first CUDA C++ the build compiles for every architecture in DAMA_CUDA_ARCHS with warnings as errors.
#include "kernels/dialect.cuh"
#include "probe.h"

namespace {

static __global__ void pattern_fill(uint32_t *out, uint32_t n, uint32_t seed) {
  uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = dama_probe_pattern(i, seed);
}

}  // namespace

extern "C" cudaError_t dama_cuda_probe_fill(cudaStream_t stream, uint32_t *out, uint32_t n, uint32_t seed) {
  if (n == 0) return cudaSuccess;
  const uint32_t threads = 256;
  DAMA_LAUNCH(pattern_fill, (n + threads - 1) / threads, threads, 0, stream, out, n, seed);
  return cudaGetLastError();
}

extern "C" cudaError_t dama_cuda_probe_attributes(int *binary_version, int *ptx_version) {
  cudaFuncAttributes a;
  cudaError_t e = cudaFuncGetAttributes(&a, pattern_fill);
  if (e == cudaSuccess) {
    *binary_version = a.binaryVersion;
    *ptx_version = a.ptxVersion;
  }
  return e;
}
