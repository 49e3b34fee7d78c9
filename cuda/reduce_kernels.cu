// reduce_kernels.cu — the reduction and RNG launchers of reduce_launch.h over kernels/reduce_dim.cuh and
// kernels/philox.cuh (nvcc for the GPU; the host C++ compiler for the interpreter build, tests/cuda_interp).
#include "reduce_launch.h"

#include "kernels/philox.cuh"
#include "kernels/reduce_dim.cuh"

extern "C" int64_t dama_cuda_reduce_workspace(const dama_cuda_red *r) { return dama_cuda::red::reduce_workspace(*r); }

extern "C" cudaError_t dama_cuda_reduce(const dama_cuda_red *r, const void *in, void *values, int64_t *indices,
                                        void *work, cudaStream_t s) {
  return dama_cuda::red::reduce(*r, in, values, indices, work, s);
}

extern "C" int64_t dama_cuda_rng_blocks(const dama_cuda_rng *g) { return dama_cuda::rng::fill_blocks(*g); }

extern "C" cudaError_t dama_cuda_rng_fill(const dama_cuda_rng *g, void *out, cudaStream_t s) {
  return dama_cuda::rng::fill(*g, out, s);
}
