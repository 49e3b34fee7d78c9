/* optim.cuh — SGD (torch.optim.SGD: weight decay, momentum, dampening, Nesterov) over a flat arena, as
 * runtime/cpu/nn_optim.c's dama_sgd_step; the element update is core/dama_math.h's dama_sgd_elem. AdamW is in
 * adamw.cuh, the EMA update in elementwise.cuh. One launch per contiguous run of parameters (lua/dama/optim.lua calls
 * the step once per arena group), grid-stride. */
#ifndef DAMA_CUDA_OPTIM_CUH
#define DAMA_CUDA_OPTIM_CUH

#include "dialect.cuh"

namespace dama_cuda {

/* buf is NULL when momentum is 0 (dama_sgd_elem does not touch it then) */
static __global__ void sgd_step_kernel(float *__restrict__ params, const float *__restrict__ grads,
                                       float *__restrict__ buf, int64_t n, float lr, float momentum, float dampening,
                                       float weight_decay, int nesterov, int first) {
  for (int64_t i = grid_first(); i < n; i += grid_step())
    dama_sgd_elem(params + i, buf ? buf + i : buf, grads[i], lr, momentum, dampening, weight_decay, nesterov, first);
}

/* as dama_sgd_step (the caller has checked step >= 1, the momentum buffer and Nesterov's conditions) */
static inline cudaError_t sgd_step(float *params, const float *grads, float *buf, int64_t n, float lr, float momentum,
                                   float dampening, float weight_decay, int nesterov, int64_t step,
                                   cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  DAMA_LAUNCH(sgd_step_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, params, grads, buf, n, lr, momentum,
              dampening, weight_decay, nesterov, step == 1 ? 1 : 0);
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
