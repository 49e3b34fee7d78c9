/* mask_launch.h — C launchers of the mask area's kernels (cuda/mask_kernels.cu over cuda/kernels/mask.cuh), for
 * cuda/ops_mask.c. Device pointers in, the launch's cudaError_t out; everything is queued on `stream`.
 *
 * err: a device error word pair (mask.cuh): err[0] the first failure's code, DAMA_CUDA_NO_ERROR (index_launch.h)
 * when none; err[1] row 0's count of zeros. Launchers given err do nothing once err[0] holds an error. */
#ifndef DAMA_CUDA_MASK_LAUNCH_H
#define DAMA_CUDA_MASK_LAUNCH_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Checks of a mask m [N, L] that must hold only 0 and 1. mode 0: entries; 1: per-sample adaptive counts (>= O
 * zeros, >= K - O ones); 2: every row as many zeros as row 0. Row n's failure code: n * (L + 1) + l for a first bad
 * entry l, n * (L + 1) + L for its count. zeros (optional): each row's zeros. */
cudaError_t dama_cuda_mask_validate(unsigned long long *err, int32_t *zeros, const float *m, int64_t N, int64_t L,
                                    int32_t mode, int64_t K, int64_t O, cudaStream_t stream);

/* Scratch bytes for the sorts of N rows of L patches (0 when a row fits one block). */
int64_t dama_cuda_mask_sort_scratch_bytes(int64_t N, int64_t L);

/* Random masking from noise (cpu/mask.c dama_mask_random); restore, keep, mask may be NULL. */
cudaError_t dama_cuda_mask_random(float *mask, int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep,
                                  const float *noise, int64_t N, int64_t L, int64_t K, void *scratch,
                                  cudaStream_t stream);
/* The per-sample adaptive rule; zeros: m1's zeros per row (dama_cuda_mask_validate mode 1). */
cudaError_t dama_cuda_mask_adaptive_per_sample(float *m2, int64_t *ids_shuffle, int64_t *ids_restore,
                                               int64_t *ids_keep, const float *m1, const float *loss,
                                               const int32_t *zeros, int64_t N, int64_t L, int64_t K, int64_t O,
                                               const unsigned long long *err, void *scratch, cudaStream_t stream);
/* The reference's union code; uni: L ints of device memory (zeroed here). first: the first position of the
 * reference's slice [-(R + O):]. */
cudaError_t dama_cuda_mask_adaptive_union(float *m2, int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep,
                                          const float *m1, const float *loss, int32_t *uni, int64_t N, int64_t L,
                                          int64_t K, int64_t O, int64_t first, const unsigned long long *err,
                                          void *scratch, cudaStream_t stream);
/* Ids of a 0/1 mask with K zeros per row (checked by dama_cuda_mask_validate mode 2: nothing is written unless
 * err[1] == K). */
cudaError_t dama_cuda_mask_ids(int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep, const float *mask,
                               int64_t N, int64_t L, int64_t K, const unsigned long long *err, void *scratch,
                               cudaStream_t stream);

/* err[0] = min(err[0], the first position of ids [count] outside [0, L)). */
cudaError_t dama_cuda_mask_check_ids(unsigned long long *err, const int64_t *ids, int64_t count, int64_t L,
                                     cudaStream_t stream);
/* The token kernels (cpu/mask.c), after dama_cuda_mask_check_ids on their ids. */
cudaError_t dama_cuda_mask_gather_forward(float *out, const float *x, const int64_t *ids_keep, int64_t N, int64_t L,
                                          int64_t K, int64_t D, const unsigned long long *err, cudaStream_t stream);
cudaError_t dama_cuda_mask_gather_backward(float *dx, const float *dout, const int64_t *ids_keep, int64_t N,
                                           int64_t L, int64_t K, int64_t D, const unsigned long long *err,
                                           cudaStream_t stream);
cudaError_t dama_cuda_mask_unshuffle_forward(float *out, const float *tokens, const float *mask_token,
                                             const int64_t *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D,
                                             const unsigned long long *err, cudaStream_t stream);
/* Chunks of the dmask_token sum (the CPU's min(N, 64)), and the floats of scratch `partial` it needs. */
int64_t dama_cuda_mask_token_chunks(int64_t N);
cudaError_t dama_cuda_mask_unshuffle_backward(float *dtokens, float *dmask_token, const float *dout,
                                              const int64_t *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D,
                                              float *partial, const unsigned long long *err, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
