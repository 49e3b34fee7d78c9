/* gemm_launch.h — the GEMM area's C interface (cuda_ops.h says how an op area is built): the cuBLASLt wrapper
 * (cublaslt.c) and the kernel launchers of gemm_kernels.cu (im2col, attention head layouts, bias gradients, strided
 * operand copies, the softmax of attention). C and CUDA C++ include it; launchers take device pointers and a stream,
 * return the launch's cudaError_t and do nothing for an empty size. */
#ifndef DAMA_CUDA_GEMM_LAUNCH_H
#define DAMA_CUDA_GEMM_LAUNCH_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "core/dama_internal.h"

/* ---- cuBLASLt (cublaslt.c) ----
 * One GEMM, described ROW-MAJOR as dama_sgemm is (runtime/cpu/gemm.c): for each batch element i,
 *   C_i[M, N] = alpha * op(A_i) op(B_i) + beta * C_i (+ bias[N] added to every row),
 * op(X) = X or X^T (trans_x), X_i = X + i * stride_x elements, row-major with leading dims lda, ldb, ldc.
 * ab_type is A's and B's dtype, c_type C's (f32 with f32; f64 with f64; bf16/f16 with themselves or f32), bias is
 * of c_type or NULL; alpha, beta are host values. beta = 0: C is not read. F32 runs with CUBLAS_COMPUTE_32F, or
 * CUBLAS_COMPUTE_32F_FAST_TF32 while dama_cuda_set_allow_tf32(1); bf16/f16 accumulate in f32; f64 in f64.
 * The caller has checked the sizes (all > 0, 32-bit) and leading dims. Runs on the current device's stream, no host
 * synchronisation; the descriptors and the algorithm are cached per problem (shape, transposes, leading dims,
 * batch strides, types, compute type, epilogue, pointer alignments). */
typedef struct dama_cuda_gemm {
  int trans_a, trans_b;
  int64_t M, N, K;
  const void *A;
  int64_t lda, stride_a;
  const void *B;
  int64_t ldb, stride_b;
  void *C;
  int64_t ldc, stride_c;
  int64_t batch;
  dama_dtype ab_type, c_type;
  double alpha, beta;
  const void *bias;
} dama_cuda_gemm;

dama_status dama_cuda_gemm_run(const char *op, const dama_cuda_gemm *g);

/* FP32 GEMMs may use TF32 tensor cores (like torch.backends.cuda.matmul.allow_tf32; default off). For Lua (FFI). */
void dama_cuda_set_allow_tf32(int32_t allow);
int32_t dama_cuda_get_allow_tf32(void);
/* Fused epilogues (the bias of linear layers inside the GEMM; default on). Off: a plain GEMM, then a bias kernel.
 * For tests and for bisecting a GPU result (FFI). */
void dama_cuda_set_gemm_epilogues(int32_t allow);
int32_t dama_cuda_get_gemm_epilogues(void);
/* The plan cache, all devices: lookups that found a plan, lookups that made one (each one heuristic query), plans
 * held. For tests (FFI). */
void dama_cuda_gemm_cache_stats(int64_t *hits, int64_t *misses, int64_t *entries);

/* The table's sgemm_strided_batched (ops_gemm.c; runtime/cpu/gemm.c's semantics), exported so that tests can call
 * it on device pointers through FFI: core/ has no tensor-level entry for it. */
dama_status dama_cuda_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                            const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                                            int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c,
                                            int64_t batch);

/* ---- kernels (gemm_kernels.cu) ---- */

/* col[N*L, C*p*p] from imgs[N, C, H, W], rows = patches (row-major grid), columns in (c, i, j) order, L = (H/p)(W/p)
 * (runtime/cpu/nn_patch.c's im2col); col2im_add: imgs += the inverse (patches do not overlap, so a permutation). */
cudaError_t dama_cuda_gemm_im2col(float *col, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p,
                                  cudaStream_t stream);
cudaError_t dama_cuda_gemm_col2im_add(float *imgs, const float *col, int64_t N, int64_t C, int64_t H, int64_t W,
                                      int64_t p, cudaStream_t stream);

/* Attention head layouts. A token row (b, t) of `rows` holds S planes of NH heads of hd floats: element (s, h, d) at
 * rows + (b*T + t) * row_stride + s * plane_stride + h * hd + d (qkv: S = 3, row_stride 3C, plane_stride C; dout:
 * S = 1, row_stride C). heads_split: heads[S, B, NH, T, hd] (contiguous) from rows; heads_merge: rows = heads, or
 * rows += heads with accumulate. */
cudaError_t dama_cuda_gemm_heads_split(float *heads, const float *rows, int64_t B, int64_t T, int64_t S, int64_t NH,
                                       int64_t hd, int64_t row_stride, int64_t plane_stride, cudaStream_t stream);
cudaError_t dama_cuda_gemm_heads_merge(float *rows, const float *heads, int64_t B, int64_t T, int64_t S, int64_t NH,
                                       int64_t hd, int64_t row_stride, int64_t plane_stride, int accumulate,
                                       cudaStream_t stream);

/* dbias[OC] += column sums of d[N, OC], in a fixed order (deterministic, no atomics): per-chunk partial sums into
 * `partial` (dama_cuda_gemm_colsum_partials(N, OC) floats of scratch), then one pass over the chunks. */
int64_t dama_cuda_gemm_colsum_partials(int64_t N, int64_t OC);
cudaError_t dama_cuda_gemm_colsum_add(float *dbias, const float *d, float *partial, int64_t N, int64_t OC,
                                      cudaStream_t stream);

/* C_i[M, N] (row-major, ldc; batch element i at C + i * stride_c) += bias[N] on every row. */
cudaError_t dama_cuda_gemm_add_bias(void *C, const void *bias, int64_t M, int64_t N, int64_t ldc, int64_t stride_c,
                                    int64_t batch, cudaStream_t stream);

/* dst (contiguous) = the elements of a strided view: ndim <= 8 dims, strides in elements (any sign), element size
 * 2, 4 or 8 bytes (bit copies). */
cudaError_t dama_cuda_gemm_strided_copy(void *dst, const void *src, int esize, int32_t ndim, const int64_t *shape,
                                        const int64_t *strides, cudaStream_t stream);

/* The attention softmax, cuda/kernels/softmax.cuh's (rows of C floats, in place allowed), and its backward
 * (dinp += y * (dout - sum(y * dout)) per row). */
cudaError_t dama_cuda_gemm_softmax_forward(float *out, const float *inp, int64_t N, int64_t C, cudaStream_t stream);
cudaError_t dama_cuda_gemm_softmax_backward(float *dinp, const float *out, const float *dout, int64_t N, int64_t C,
                                            cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
