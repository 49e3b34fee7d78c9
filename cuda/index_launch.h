/* index_launch.h — C launchers of the index area's kernels (cuda/index_kernels.cu over cuda/kernels/sort.cuh and
 * index.cuh), for cuda/ops_index.c. Device pointers in, the launch's cudaError_t out; everything is queued on
 * `stream`, nothing waits. Tensor layouts go as dama_cuda_tdesc (shape and strides in elements). */
#ifndef DAMA_CUDA_INDEX_LAUNCH_H
#define DAMA_CUDA_INDEX_LAUNCH_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dama_cuda_tdesc {
  int32_t ndim;
  int64_t shape[8];
  int64_t strides[8];
} dama_cuda_tdesc;

/* "no error" in an error word: the bytes cudaMemsetAsync(err, 0x7f, ...) writes. */
#define DAMA_CUDA_NO_ERROR 0x7f7f7f7f7f7f7f7full

/* The longest row the sorts take (indices are 32 bits wide): 2^31 elements. */
#define DAMA_CUDA_SORT_MAX_ROW ((int64_t)1 << 31)

/* Scratch bytes for sorting rows x n (0 when each row fits one block); wide: 64-bit keys (f64, i64). */
int64_t dama_cuda_sort_scratch_bytes(int64_t rows, int64_t n, int wide);
/* Stable sort of the rows of `a` (layout in, along dim, n elements) by value, descending when desc; the first k of
 * each row into inds (i64) and, unless NULL, vals (a's dtype), both of layout out (dim of size k). */
cudaError_t dama_cuda_sort_rows(void *vals, int64_t *inds, const dama_cuda_tdesc *out, const void *a,
                                const dama_cuda_tdesc *in, int32_t dim, int32_t dtype, int32_t esize, int32_t desc,
                                int64_t n, int64_t k, int64_t rows, void *scratch, cudaStream_t stream);

/* err[0] = min(err[0], the first row-major position of index (layout ix, i32 or i64) whose value is not in [0, size)). */
cudaError_t dama_cuda_check_index(unsigned long long *err, const void *index, int is_i32, const dama_cuda_tdesc *ix,
                                  int64_t size, cudaStream_t stream);
/* out (contiguous, shape o->shape, esize bytes per element) = a (strides as) at each position's multi-index with
 * dim replaced by the index read under strides ixs (ixs->strides; gather: the index's, index_select: 0 but at dim);
 * indices outside [0, size) are skipped (check_index reports them). */
cudaError_t dama_cuda_gather(void *out, const void *a, const dama_cuda_tdesc *o, const dama_cuda_tdesc *as,
                             const void *index, int is_i32, const dama_cuda_tdesc *ixs, int32_t dim, int64_t size,
                             int32_t esize, cudaStream_t stream);

/* Scratch bytes for a scatter over n index positions. */
int64_t dama_cuda_scatter_scratch_bytes(int64_t n);
/* a[dest] (= or += when reduce) src for every position of index (layout ix; a and src strides in as, ss, src
 * 0-d when ss->ndim == 0), in the CPU's order (row-major over index: the last write wins, sums in that order).
 * Does nothing when err holds an error (check_index ran before it on the same stream). n = numel(index) < 2^31. */
cudaError_t dama_cuda_scatter(void *a, const void *src, const void *index, int is_i32, const dama_cuda_tdesc *ix,
                              const dama_cuda_tdesc *as, const dama_cuda_tdesc *ss, int32_t dim, int32_t dtype,
                              int32_t esize, int32_t reduce, const unsigned long long *err, void *scratch,
                              cudaStream_t stream);

/* dst (shape and strides d) = src (strides s, same shape), dtype st -> dt as the CPU's copy converts. */
cudaError_t dama_cuda_convert_copy(void *dst, const dama_cuda_tdesc *d, int32_t dt, int32_t des, const void *src,
                                   const dama_cuda_tdesc *s, int32_t st, int32_t ses, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
