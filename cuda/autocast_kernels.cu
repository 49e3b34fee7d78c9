// autocast_kernels.cu — the FP32 -> BF16/FP16 cast of GEMM operands under dama.amp's bf16/fp16 precision, with the
// CPU's rounding (dama_math.h's dama_ew_f32_to_bf16 / _f16), so a GEMM on cast operands is reproducible on the CPU.
#include "kernels/dialect.cuh"
#include "autocast_launch.h"

namespace {

template <int F16>
__global__ void cast_kernel(uint16_t *__restrict__ dst, const float *__restrict__ src, int64_t n) {
  for (int64_t i = dama_cuda::grid_first(); i < n; i += dama_cuda::grid_step())
    dst[i] = F16 ? dama_ew_f32_to_f16(src[i]) : dama_ew_f32_to_bf16(src[i]);
}

}  // namespace

extern "C" cudaError_t dama_cuda_cast_f32_to_half(uint16_t *dst, const float *src, int64_t n, int to_f16,
                                                  cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  const unsigned blocks = dama_cuda::grid_stride_blocks(n, dama_cuda::k_block);
  if (to_f16)
    DAMA_LAUNCH(cast_kernel<1>, blocks, dama_cuda::k_block, 0, stream, dst, src, n);
  else
    DAMA_LAUNCH(cast_kernel<0>, blocks, dama_cuda::k_block, 0, stream, dst, src, n);
  return cudaGetLastError();
}
