/* mask_kernels.cu — the mask area's launchers (mask_launch.h) over cuda/kernels/mask.cuh. */
#include "kernels/mask.cuh"

#include "mask_launch.h"

using namespace dama_cuda;

extern "C" cudaError_t dama_cuda_mask_validate(unsigned long long *err, int32_t *zeros, const float *m, int64_t N,
                                               int64_t L, int32_t mode, int64_t K, int64_t O, cudaStream_t stream) {
  return mask_validate(err, zeros, m, N, L, mode, K, O, stream);
}

extern "C" int64_t dama_cuda_mask_sort_scratch_bytes(int64_t N, int64_t L) {
  return sort_scratch_bytes<uint32_t>(N, L);
}

extern "C" cudaError_t dama_cuda_mask_random(float *mask, int64_t *ids_shuffle, int64_t *ids_restore,
                                             int64_t *ids_keep, const float *noise, int64_t N, int64_t L, int64_t K,
                                             void *scratch, cudaStream_t stream) {
  const ids_writer w{ids_shuffle, ids_restore, ids_keep, mask, nullptr, nullptr, L, K};
  return sort_rows<uint32_t>(noise_loader{noise, L}, w, mask_guard{nullptr, -1}, N, L, scratch, stream);
}

extern "C" cudaError_t dama_cuda_mask_adaptive_per_sample(float *m2, int64_t *ids_shuffle, int64_t *ids_restore,
                                                          int64_t *ids_keep, const float *m1, const float *loss,
                                                          const int32_t *zeros, int64_t N, int64_t L, int64_t K,
                                                          int64_t O, const unsigned long long *err, void *scratch,
                                                          cudaStream_t stream) {
  const adaptive_loader ld1{m1, loss, L};
  const adaptive_writer w1{m2, zeros, L, K, O};
  const binary_loader ld2{m2, nullptr, L};
  const ids_writer w2{ids_shuffle, ids_restore, ids_keep, nullptr, nullptr, nullptr, L, K};
  return sort2_rows<uint32_t>(ld1, w1, ld2, w2, mask_guard{err, -1}, N, L, scratch, stream);
}

extern "C" cudaError_t dama_cuda_mask_adaptive_union(float *m2, int64_t *ids_shuffle, int64_t *ids_restore,
                                                     int64_t *ids_keep, const float *m1, const float *loss,
                                                     int32_t *uni, int64_t N, int64_t L, int64_t K, int64_t O,
                                                     int64_t first, const unsigned long long *err, void *scratch,
                                                     cudaStream_t stream) {
  cudaError_t e = cudaMemsetAsync(uni, 0, (size_t)L * sizeof(int32_t), stream);
  if (e != cudaSuccess) return e;
  const mask_guard g{err, -1};
  /* per row: m2 from the sorted scores; V = the first O of stable argsort(m1), OR-ed into the union */
  e = sort2_rows<uint32_t>(union_score_loader{m1, loss, L}, union_score_writer{m2, m1, L, first},
                           binary_loader{m1, nullptr, L}, union_v_writer{uni, O}, g, N, L, scratch, stream);
  if (e != cudaSuccess) return e;
  /* then m2[:, union] = 0 and the ids of the result */
  const ids_writer w{ids_shuffle, ids_restore, ids_keep, nullptr, m2, uni, L, K};
  return sort_rows<uint32_t>(binary_loader{m2, uni, L}, w, g, N, L, scratch, stream);
}

extern "C" cudaError_t dama_cuda_mask_ids(int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep,
                                          const float *mask, int64_t N, int64_t L, int64_t K,
                                          const unsigned long long *err, void *scratch, cudaStream_t stream) {
  const ids_writer w{ids_shuffle, ids_restore, ids_keep, nullptr, nullptr, nullptr, L, K};
  return sort_rows<uint32_t>(binary_loader{mask, nullptr, L}, w, mask_guard{err, (long long)K}, N, L, scratch,
                             stream);
}

extern "C" cudaError_t dama_cuda_mask_check_ids(unsigned long long *err, const int64_t *ids, int64_t count, int64_t L,
                                                cudaStream_t stream) {
  tensor_desc d;
  memset(&d, 0, sizeof d);
  d.ndim = 1;
  d.shape[0] = count;
  d.strides[0] = 1;
  return check_index(err, ids, 0, d, L, count, stream);
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

template <int UNSHUFFLE>
static cudaError_t token_rows(float *out, const float *x, const float *mask_token, const int64_t *ids, int64_t rows,
                              int64_t per_n, int64_t L, int64_t K, int64_t D, const unsigned long long *err,
                              cudaStream_t stream) {
  const mask_guard g{err, -1};
  const bool vec = D % 4 == 0 && aligned16(out) && (!x || aligned16(x)) && (!mask_token || aligned16(mask_token));
  const int64_t total = rows * (vec ? D / 4 : D);
  if (total <= 0) return cudaGetLastError();
  if (vec) {
    void (*k)(mask_guard, float *, const float *, const float *, const int64_t *, int64_t, int64_t, int64_t, int64_t,
              int64_t) = token_rows_kernel<4, UNSHUFFLE>;
    DAMA_LAUNCH(k, grid_stride_blocks(total, k_block), k_block, 0, stream, g, out, x, mask_token, ids, rows, per_n, L,
                K, D);
  } else {
    void (*k)(mask_guard, float *, const float *, const float *, const int64_t *, int64_t, int64_t, int64_t, int64_t,
              int64_t) = token_rows_kernel<1, UNSHUFFLE>;
    DAMA_LAUNCH(k, grid_stride_blocks(total, k_block), k_block, 0, stream, g, out, x, mask_token, ids, rows, per_n, L,
                K, D);
  }
  return cudaGetLastError();
}

extern "C" cudaError_t dama_cuda_mask_gather_forward(float *out, const float *x, const int64_t *ids_keep, int64_t N,
                                                     int64_t L, int64_t K, int64_t D, const unsigned long long *err,
                                                     cudaStream_t stream) {
  return token_rows<0>(out, x, nullptr, ids_keep, N * K, K, L, K, D, err, stream);
}

extern "C" cudaError_t dama_cuda_mask_unshuffle_forward(float *out, const float *tokens, const float *mask_token,
                                                        const int64_t *ids_restore, int64_t N, int64_t L, int64_t K,
                                                        int64_t D, const unsigned long long *err,
                                                        cudaStream_t stream) {
  return token_rows<1>(out, tokens, mask_token, ids_restore, N * L, L, L, K, D, err, stream);
}

static unsigned column_threads(int64_t D) { return D >= 256 ? 256u : (D > 64 ? 128u : 32u); }

extern "C" cudaError_t dama_cuda_mask_gather_backward(float *dx, const float *dout, const int64_t *ids_keep,
                                                      int64_t N, int64_t L, int64_t K, int64_t D,
                                                      const unsigned long long *err, cudaStream_t stream) {
  if (N <= 0 || K <= 0 || D <= 0) return cudaGetLastError();
  const unsigned t = column_threads(D);
  DAMA_LAUNCH(gather_backward_kernel, column_grid(N, D, t), t, 0, stream, mask_guard{err, -1}, dx, dout, ids_keep, N,
              L, K, D);
  return cudaGetLastError();
}

extern "C" int64_t dama_cuda_mask_token_chunks(int64_t N) { return N < 64 ? N : 64; }

extern "C" cudaError_t dama_cuda_mask_unshuffle_backward(float *dtokens, float *dmask_token, const float *dout,
                                                         const int64_t *ids_restore, int64_t N, int64_t L, int64_t K,
                                                         int64_t D, float *partial, const unsigned long long *err,
                                                         cudaStream_t stream) {
  if (N <= 0 || D <= 0 || (!dtokens && !dmask_token)) return cudaGetLastError();
  const int64_t nchunks = dama_cuda_mask_token_chunks(N);
  const unsigned t = column_threads(D);
  const mask_guard g{err, -1};
  DAMA_LAUNCH(unshuffle_backward_kernel, column_grid(nchunks, D, t), t, 0, stream, g, dtokens,
              dmask_token ? partial : nullptr, dout, ids_restore, N, L, K, D, nchunks);
  if (dmask_token)
    DAMA_LAUNCH(mask_token_finish_kernel, grid_stride_blocks(D, k_block), k_block, 0, stream, g, dmask_token, partial,
                D, nchunks);
  return cudaGetLastError();
}
