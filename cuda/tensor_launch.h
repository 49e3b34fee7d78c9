/* tensor_launch.h — the element-wise launchers (cuda/tensor_kernels.cu, kernels in kernels/tensor_elementwise.cuh)
 * behind cuda/ops_tensor.c: C declarations over device pointers, each returning the launch's cudaError_t.
 *
 * Every launcher takes one dama_cuda_ew: the operands of one op (operand 0 is the output) already broadcast to the
 * output's shape and folded by the CPU's iterator (cpu/ops_common.c's ops_iter_init: size-1 dims dropped, dims
 * ordered by the output's strides, dims contiguous for every operand merged), so a contiguous op is one dim. Its
 * dtypes are read at run time by the kernels; the compute kind (f32 for f32/bf16/f16, f64, i64 for the integer
 * dtypes, as cpu/ops_internal.h's ops_kind) is a launcher argument. */
#ifndef DAMA_CUDA_TENSOR_LAUNCH_H
#define DAMA_CUDA_TENSOR_LAUNCH_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAMA_CUDA_EW_DIMS 8 /* DAMA_MAX_DIMS (ops_tensor.c checks) */
#define DAMA_CUDA_EW_OPS 4  /* operands: the output and up to three inputs (where) */

/* compute kinds, ops_kind's values */
enum { DAMA_CUDA_K_F32 = 0, DAMA_CUDA_K_F64 = 1, DAMA_CUDA_K_I64 = 2 };

typedef union dama_cuda_scalar { float f; double d; int64_t i; uint64_t bits; } dama_cuda_scalar;

typedef struct dama_cuda_ew {
  int64_t numel;                                            /* > 0 */
  int32_t ndim;                                             /* 1 ..= DAMA_CUDA_EW_DIMS, the last dim innermost */
  int32_t scalar;                                           /* k > 0: input k is `value` (in the compute kind) */
  int64_t shape[DAMA_CUDA_EW_DIMS];
  int64_t strides[DAMA_CUDA_EW_OPS][DAMA_CUDA_EW_DIMS];    /* in elements */
  void *ptr[DAMA_CUDA_EW_OPS];                              /* element 0 of each operand (device memory) */
  int32_t dtype[DAMA_CUDA_EW_OPS];                          /* dama_dtype */
  dama_cuda_scalar value;
} dama_cuda_ew;

/* out = op(a, b), operands 0, 1, 2; op a dama_binop, computed in `kind` */
cudaError_t dama_cuda_ew_binary(int op, int kind, const dama_cuda_ew *g, cudaStream_t stream);
/* out = op(a), operands 0, 1; op a dama_unop */
cudaError_t dama_cuda_ew_unary(int op, int kind, const dama_cuda_ew *g, cudaStream_t stream);
/* out = clamp(a, lo, hi), operands 0, 1: f32 and f64 kinds use lo, hi (as float in f32), i64 uses ilo, ihi */
cudaError_t dama_cuda_ew_clamp(int kind, const dama_cuda_ew *g, double lo, double hi, int64_t ilo, int64_t ihi,
                               cudaStream_t stream);
/* out = cond != 0 ? a : b, operands 0 (out), 1 (cond, any dtype), 2, 3 (a, b, converted to `kind`) */
cudaError_t dama_cuda_ew_where(int kind, const dama_cuda_ew *g, cudaStream_t stream);
/* every element of operand 0 = the element bytes `value.bits` (little-endian, its dtype's size) */
cudaError_t dama_cuda_ew_fill(const dama_cuda_ew *g, cudaStream_t stream);
/* operand 0 = value.bits where operand 1 (any dtype) is non-zero */
cudaError_t dama_cuda_ew_masked_fill(const dama_cuda_ew *g, cudaStream_t stream);
/* operand 0 = operand 1: the same bytes when the dtypes agree (kind ignored), else converted through `kind` */
cudaError_t dama_cuda_ew_copy(int kind, const dama_cuda_ew *g, cudaStream_t stream);
/* *count (device memory, zeroed by the launcher on the stream) += the NaN and infinite elements of operand 0
 * (f32, f64, bf16 or f16) */
cudaError_t dama_cuda_ew_count_nonfinite(const dama_cuda_ew *g, unsigned long long *count, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
