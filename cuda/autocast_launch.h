/* autocast_launch.h — mixed precision's one kernel (autocast_kernels.cu), callable from C: the cast of an FP32 GEMM
 * operand to BF16 or FP16 before a tensor-core GEMM (dama.amp.set_precision; cublaslt.c). */
#ifndef DAMA_CUDA_AUTOCAST_LAUNCH_H
#define DAMA_CUDA_AUTOCAST_LAUNCH_H

#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
/* dst[i] = src[i] rounded to nearest even (to_f16: FP16, else BF16; the CPU's conversions, dama_math.h), i < n */
cudaError_t dama_cuda_cast_f32_to_half(uint16_t *dst, const float *src, int64_t n, int to_f16, cudaStream_t stream);
#ifdef __cplusplus
}
#endif

#endif
