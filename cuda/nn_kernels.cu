/* nn_kernels.cu — the NN area's launchers for activations, LayerNorm, softmax, dropout and drop-path (kernels in
 * cuda/kernels/, declared for the glue in nn_launch.h). In the interpreter build this file is compiled with
 * -ffp-contract=fast, the contraction of the CPU twins nn_act.c and nn_norm.c, so GELU, ReLU and dropout give the
 * CPU's bits there; nvcc contracts too. */
#include "kernels/dropout.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/layernorm.cuh"
#include "kernels/softmax.cuh"
#include "nn_launch.h"

extern "C" cudaError_t dama_cuda_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                                      const float *weight, const float *bias, int64_t N, int64_t C,
                                                      float eps, cudaStream_t s) {
  return dama_cuda::layernorm_forward(out, mean, rstd, inp, weight, bias, N, C, eps, s);
}

extern "C" int64_t dama_cuda_nn_layernorm_backward_workspace(int64_t N, int64_t C) {
  return dama_cuda::layernorm_backward_workspace(N, C) * (int64_t)sizeof(float);
}

extern "C" cudaError_t dama_cuda_nn_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                                       const float *inp, const float *weight, const float *mean,
                                                       const float *rstd, int64_t N, int64_t C, void *work,
                                                       cudaStream_t s) {
  return dama_cuda::layernorm_backward_ws(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C,
                                          static_cast<float *>(work), s);
}

extern "C" cudaError_t dama_cuda_nn_gelu_forward(float *out, const float *inp, int64_t n, cudaStream_t s) {
  return dama_cuda::gelu_forward(out, inp, n, s);
}

extern "C" cudaError_t dama_cuda_nn_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n,
                                                  cudaStream_t s) {
  return dama_cuda::gelu_backward(dinp, inp, dout, n, s);
}

extern "C" cudaError_t dama_cuda_nn_relu_forward(float *out, const float *inp, int64_t n, cudaStream_t s) {
  return dama_cuda::relu_forward(out, inp, n, s);
}

extern "C" cudaError_t dama_cuda_nn_relu_backward(float *dinp, const float *out, const float *dout, int64_t n,
                                                  cudaStream_t s) {
  return dama_cuda::relu_backward(dinp, out, dout, n, s);
}

extern "C" cudaError_t dama_cuda_nn_softmax_forward(float *out, const float *inp, int64_t N, int64_t C,
                                                    cudaStream_t s) {
  return dama_cuda::softmax_forward(out, inp, N, C, s);
}

extern "C" cudaError_t dama_cuda_nn_softmax_backward(float *dinp, const float *out, const float *dout, int64_t N,
                                                     int64_t C, cudaStream_t s) {
  return dama_cuda::softmax_backward(dinp, out, dout, N, C, s);
}

extern "C" cudaError_t dama_cuda_nn_dropout_forward(float *out, const float *inp, const float *mask, float scale,
                                                    int64_t n, cudaStream_t s) {
  return dama_cuda::dropout_forward(out, inp, mask, scale, n, s);
}

extern "C" cudaError_t dama_cuda_nn_dropout_backward(float *dinp, const float *dout, const float *mask, float scale,
                                                     int64_t n, cudaStream_t s) {
  return dama_cuda::dropout_backward(dinp, dout, mask, scale, n, s);
}

extern "C" cudaError_t dama_cuda_nn_dropout_u8_forward(float *out, const float *inp, const uint8_t *mask, float scale,
                                                       int64_t n, cudaStream_t s) {
  return dama_cuda::dropout_u8_forward(out, inp, mask, scale, n, s);
}

extern "C" cudaError_t dama_cuda_nn_dropout_u8_backward(float *dinp, const float *dout, const uint8_t *mask,
                                                        float scale, int64_t n, cudaStream_t s) {
  return dama_cuda::dropout_u8_backward(dinp, dout, mask, scale, n, s);
}

extern "C" cudaError_t dama_cuda_nn_drop_path_forward(float *out, const float *inp, const float *mask, float scale,
                                                      int64_t N, int64_t M, cudaStream_t s) {
  return dama_cuda::drop_path_forward(out, inp, mask, scale, N, M, s);
}

extern "C" cudaError_t dama_cuda_nn_drop_path_backward(float *dinp, const float *dout, const float *mask, float scale,
                                                       int64_t N, int64_t M, cudaStream_t s) {
  return dama_cuda::drop_path_backward(dinp, dout, mask, scale, N, M, s);
}
