/* probe.h — the probe kernel's launcher (probe.cu), callable from C. */
#ifndef DAMA_CUDA_PROBE_H
#define DAMA_CUDA_PROBE_H

#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __CUDACC__
#define DAMA_PROBE_HD __host__ __device__
#else
#define DAMA_PROBE_HD
#endif

/* The word the probe writes at index i: the host checks it with the same function. */
static inline DAMA_PROBE_HD uint32_t dama_probe_pattern(uint32_t i, uint32_t seed) {
  uint32_t x = (i + 1u) * 2654435761u ^ seed;
  x ^= x >> 16;
  return x * 2246822519u;
}

#ifdef __cplusplus
extern "C" {
#endif
/* Queue the fill of out[0..n) on `stream`; returns the launch's error. */
cudaError_t dama_cuda_probe_fill(cudaStream_t stream, uint32_t *out, uint32_t n, uint32_t seed);
/* The probe's cudaFuncAttributes versions (e.g. 90 for sm_90 code); cudaErrorNoKernelImageForDevice when this build
 * holds no code the current device can run. */
cudaError_t dama_cuda_probe_attributes(int *binary_version, int *ptx_version);
#ifdef __cplusplus
}
#endif

#endif
