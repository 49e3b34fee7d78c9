/* adamw.cuh — one AdamW step over a flat arena (torch.optim.AdamW semantics, as runtime/cpu/nn_optim.c): the step
 * scalars come from dama_adamw_coeffs on the host (in double, as PyTorch) and each element from dama_adamw_elem. */
#ifndef DAMA_CUDA_ADAMW_CUH
#define DAMA_CUDA_ADAMW_CUH

#include "dialect.cuh"

namespace dama_cuda {

static __global__ void adamw_step_kernel(float *__restrict__ params, const float *__restrict__ grads,
                                         float *__restrict__ m, float *__restrict__ v, int64_t n, float beta1,
                                         float beta2, float eps, dama_adamw_coef k) {
  for (int64_t i = grid_first(); i < n; i += grid_step())
    dama_adamw_elem(params + i, m + i, v + i, grads[i], beta1, beta2, eps, k);
}

/* as dama_adamw_step (the caller has checked step >= 1 and the ranges of the hyper-parameters) */
static inline cudaError_t adamw_step(float *params, const float *grads, float *m, float *v, int64_t n, float lr,
                                     float beta1, float beta2, float eps, float weight_decay, int64_t step,
                                     cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const dama_adamw_coef k = dama_adamw_coeffs(lr, beta1, beta2, weight_decay, step);
  DAMA_LAUNCH(adamw_step_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, params, grads, m, v, n, beta1,
              beta2, eps, k);
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
