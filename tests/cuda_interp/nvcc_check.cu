/* nvcc_check.cu — compiles every kernel header of cuda/kernels/ with nvcc (nvcc_check.sh: sm_80 and sm_90a, warnings
 * as errors) and instantiates every launcher, so the kernels' device code is generated and checked. Never run. */
#include "kernels/adamw.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/reduce.cuh"
#include "kernels/softmax.cuh"

static __global__ void atomic_max_f32_kernel(float *m, const float *x, int64_t n) {
  for (int64_t i = dama_cuda::grid_first(); i < n; i += dama_cuda::grid_step()) dama_cuda::atomic_max_f32(m, x[i]);
}

extern "C" int dama_cuda_kernels_nvcc_check(float *a, float *b, float *c, float *d, int64_t n, cudaStream_t s) {
  int bad = 0;
  bad |= dama_cuda::fill_f32(a, 1.0f, n, s);
  bad |= dama_cuda::scale_inplace(a, n, 2.0f, s);
  bad |= dama_cuda::ema_update(a, b, n, 0.99f, s);
  bad |= dama_cuda::gelu_forward(a, b, n, s);
  bad |= dama_cuda::gelu_backward(a, b, c, n, s);
  bad |= dama_cuda::sum_f32(a, b, n, c, s);
  bad |= dama_cuda::softmax_forward(a, b, n, 65, s);
  bad |= dama_cuda::softmax_forward_warp(a, b, n, 65, s);
  bad |= dama_cuda::softmax_forward_block(a, b, n, 4096, s);
  bad |= dama_cuda::softmax_backward(a, b, c, n, 65, s);
  bad |= dama_cuda::layernorm_forward(a, c, d, b, c, d, n, 768, 1e-6f, s);
  bad |= dama_cuda::layernorm_backward(a, c, d, b, c, d, a, b, n, 768, s);
  bad |= dama_cuda::adamw_step(a, b, c, d, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.05f, 1, s);
  DAMA_LAUNCH(atomic_max_f32_kernel, 1, 256, 0, s, a, b, n);
  return bad | (int)cudaGetLastError();
}
