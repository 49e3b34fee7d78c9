/* mask.cuh — MAE random masking, DAMA's adaptive mask (per-sample rule and the reference's union code), ids from a
 * 0/1 mask, and the token gather / unshuffle with their backwards (runtime/cpu/mask.c is the twin; api/mask.h the
 * contract). Masks and ids equal the CPU's bit for bit: every ordering is a stable sort of (key, patch) pairs
 * (sort.cuh), keys mapped so that unsigned order is the CPU's (NaN after every number, ties by lower patch index),
 * and the token backwards add in the CPU's order (one thread per output column walks the contributions in sequence;
 * dmask_token through the CPU's 64 fixed chunks).
 *
 * Checks that depend on device values (m1 / a mask holding only 0 and 1, the per-row counts, ids in [0, L)) run as a
 * kernel first that records the first failure as a code in err[0] (atomicMin: the CPU's first error in its loop
 * order); every kernel after it is guarded by err and writes nothing then, so a failed op leaves its outputs as the
 * CPU's does (unwritten). The caller reads err back once (cuda/ops_mask.c) and words the CPU's message. */
#ifndef DAMA_CUDA_MASK_CUH
#define DAMA_CUDA_MASK_CUH

#include "dialect.cuh"
#include "index.cuh"
#include "sort.cuh"

namespace dama_cuda {

/* err[0]: the first failure's code (k_no_error: none); err[1]: row 0's count of zeros (mask_check's K). want_k >= 0
 * also blocks when that count differs (mask_ids' K). */
struct mask_guard {
  const unsigned long long *err;
  long long want_k;
  __device__ bool blocked(void) const {
    return err && (err[0] != k_no_error || (want_k >= 0 && err[1] != (unsigned long long)want_k));
  }
};

/* ---- validation of a 0/1 mask [N, L] ----
 * mode 0: entries only; 1: per-sample adaptive (>= O zeros and >= K - O ones per row); 2: every row as many zeros as
 * row 0 (mask_check). Row n's code: n * (L + 1) + l for a first bad entry at l, n * (L + 1) + L for a bad count, so
 * the smallest code is the CPU's first error (rows in order, entries before the count). zeros (optional) gets each
 * row's zeros; err[1] row 0's. One block per row. */
__device__ __forceinline__ int64_t count_zeros(const float *row, int64_t L, unsigned *first_bad) {
  int64_t zeros = 0;
  for (int64_t base = 0; base < L; base += blockDim.x) {
    const int64_t l = base + threadIdx.x;
    const float v = l < L ? row[l] : 1.0f;
    if (first_bad && v != 0.0f && v != 1.0f) atomicMin(first_bad, (unsigned)l);
    zeros += __syncthreads_count(l < L && v == 0.0f);
  }
  return zeros;
}

static __global__ void mask_validate_kernel(unsigned long long *err, int32_t *zeros, const float *m, int64_t N,
                                            int64_t L, int mode, int64_t K, int64_t O) {
  DAMA_SHARED(unsigned, first_bad, [1]);
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    if (threadIdx.x == 0) first_bad[0] = 0xFFFFFFFFu;
    __syncthreads();
    const int64_t z = count_zeros(m + n * L, L, first_bad);
    int64_t z0 = z;
    if (mode == 2 && n != 0) z0 = count_zeros(m, L, (unsigned *)nullptr);
    if (threadIdx.x == 0) {
      if (zeros) zeros[n] = (int32_t)z;
      if (n == 0) err[1] = (unsigned long long)z;
      const unsigned long long row_code = (unsigned long long)n * (unsigned long long)(L + 1);
      bool bad_count = false;
      if (mode == 1) bad_count = z < O || L - z < K - O;
      if (mode == 2) bad_count = z != z0;
      if (first_bad[0] != 0xFFFFFFFFu) atomicMin(err, row_code + first_bad[0]);
      else if (bad_count) atomicMin(err, row_code + (unsigned long long)L);
    }
    __syncthreads();
  }
}

static inline cudaError_t mask_validate(unsigned long long *err, int32_t *zeros, const float *m, int64_t N, int64_t L,
                                        int mode, int64_t K, int64_t O, cudaStream_t stream) {
  const unsigned threads = L >= 256 ? 256u : (L > 32 ? 128u : 32u);
  DAMA_LAUNCH(mask_validate_kernel, sort_row_blocks(N), threads, 0, stream, err, zeros, m, N, L, mode, K, O);
  return cudaGetLastError();
}

/* ---- loaders (keys of row n, patch l) and writers (row n, sorted position i, patch l) ---- */

struct noise_loader {
  const float *noise;
  int64_t L;
  __device__ uint32_t key(int64_t n, uint32_t l) const { return f32_order_key(noise[n * L + l]); }
};

/* Stable argsort of a 0/1 row: zeros by index, then everything else by index (cpu/mask.c's binary_row_ids). With
 * uni set, patches in the union (union mode) count as zeros. */
struct binary_loader {
  const float *m;
  const int32_t *uni;
  int64_t L;
  __device__ uint32_t key(int64_t n, uint32_t l) const {
    if (uni && uni[l]) return 0u;
    return m[n * L + l] == 0.0f ? 0u : 1u;
  }
};

/* ids_shuffle[n, i] = l, ids_restore[n, l] = i, ids_keep[n, i] = l for i < K; mask (random masking) 0 for the first
 * K, 1 after; uni (union mode): m2[n, l] = 0 where the union holds l. Any of them but shuffle may be NULL. */
struct ids_writer {
  int64_t *shuffle, *restore, *keep;
  float *mask;
  float *m2;
  const int32_t *uni;
  int64_t L, K;
  __device__ void operator()(int64_t n, uint32_t i, uint32_t l) const {
    shuffle[n * L + i] = l;
    if (restore) restore[n * L + l] = i;
    if (keep && (int64_t)i < K) keep[n * K + i] = l;
    if (mask) mask[n * L + l] = (int64_t)i < K ? 0.0f : 1.0f;
    if (m2 && uni[l]) m2[n * L + l] = 0.0f;
  }
};

/* per-sample rule: branch-1-masked patches first by (loss, patch), then the visible ones by patch */
struct adaptive_loader {
  const float *m1, *loss;
  int64_t L;
  __device__ uint32_t key(int64_t n, uint32_t l) const {
    return m1[n * L + l] != 0.0f ? f32_order_key(loss[n * L + l]) : 0xFFFFFFFFu;
  }
};
/* m2 = 0 at the K - O lowest-loss masked patches and at the first O visible ones (positions [nm, nm + O) of that
 * order, nm = L - zeros(m1[n])), 1 elsewhere: every entry of the row is written. */
struct adaptive_writer {
  float *m2;
  const int32_t *zeros;
  int64_t L, K, O;
  __device__ void operator()(int64_t n, uint32_t i, uint32_t l) const {
    const int64_t nm = L - zeros[n], p = (int64_t)i;
    m2[n * L + l] = (p < K - O || (p >= nm && p < nm + O)) ? 0.0f : 1.0f;
  }
};

/* union mode (the reference): s = loss * m1, sorted; m2 = 1 - m1 then 1 at the last R + O of that order */
struct union_score_loader {
  const float *m1, *loss;
  int64_t L;
  __device__ uint32_t key(int64_t n, uint32_t l) const { return f32_order_key(loss[n * L + l] * m1[n * L + l]); }
};
struct union_score_writer {
  float *m2;
  const float *m1;
  int64_t L, first;
  __device__ void operator()(int64_t n, uint32_t i, uint32_t l) const {
    m2[n * L + l] = (int64_t)i >= first ? 1.0f : (m1[n * L + l] == 1.0f ? 0.0f : 1.0f);
  }
};
/* V[n] = the first O of stable argsort(m1[n]); their union over the batch (order-free: an OR) */
struct union_v_writer {
  int32_t *uni;
  int64_t O;
  __device__ void operator()(int64_t, uint32_t i, uint32_t l) const {
    if ((int64_t)i < O) atomicOr(&uni[l], 1);
  }
};

/* ---- token kernels ---- */

/* four floats moved as one 16-byte access (the dialect has no float4) */
struct __align__(16) float_x4 {
  float v[4];
};

/* out[r, :] = src row of r: gather (x[n, ids_keep[r]]) or unshuffle (tokens[n, j] for j = ids_restore[r] < K, else
 * mask_token). VEC floats per access (4 when D % 4 == 0 and the pointers are 16-byte aligned). */
template <int VEC, int UNSHUFFLE>
static __global__ void token_rows_kernel(mask_guard g, float *out, const float *x, const float *mask_token,
                                         const int64_t *ids, int64_t rows, int64_t per_n, int64_t L, int64_t K,
                                         int64_t D) {
  if (g.blocked()) return;
  const int64_t dv = D / VEC, total = rows * dv;
  for (int64_t q = grid_first(); q < total; q += grid_step()) {
    const int64_t r = q / dv, c = (q % dv) * VEC, n = r / per_n, j = ids[r];
    const float *s;
    if (UNSHUFFLE) s = j < K ? x + (n * K + j) * D : mask_token;
    else s = x + (n * L + j) * D;
    if (VEC == 4) *reinterpret_cast<float_x4 *>(out + r * D + c) = *reinterpret_cast<const float_x4 *>(s + c);
    else out[r * D + c] = s[c];
  }
}

/* dx[n, ids_keep[n, k], c] += dout[n, k, c], k in order, one thread per (n, c) */
static __global__ void gather_backward_kernel(mask_guard g, float *dx, const float *dout, const int64_t *ids,
                                              int64_t N, int64_t L, int64_t K, int64_t D) {
  if (g.blocked()) return;
  for (int64_t c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; c < D; c += (int64_t)gridDim.y * blockDim.x)
    for (int64_t n = blockIdx.x; n < N; n += gridDim.x)
      for (int64_t k = 0; k < K; k++) dx[(n * L + ids[n * K + k]) * D + c] += dout[(n * K + k) * D + c];
}

/* Chunk ch of the CPU's min(N, 64) chunks, column c: dtokens[n, j] += dout[n, l] for j < K (l in order), and the
 * chunk's partial sum of the masked rows' dout into partial[ch, c]. */
static __global__ void unshuffle_backward_kernel(mask_guard g, float *dtokens, float *partial, const float *dout,
                                                 const int64_t *ids, int64_t N, int64_t L, int64_t K, int64_t D,
                                                 int64_t nchunks) {
  if (g.blocked()) return;
  for (int64_t c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; c < D; c += (int64_t)gridDim.y * blockDim.x)
  for (int64_t ch = blockIdx.x; ch < nchunks; ch += gridDim.x) {
    const int64_t n0 = N * ch / nchunks, n1 = N * (ch + 1) / nchunks;
    float acc = 0.0f;
    for (int64_t n = n0; n < n1; n++)
      for (int64_t l = 0; l < L; l++) {
        const int64_t j = ids[n * L + l];
        const float v = dout[(n * L + l) * D + c];
        if (j < K) { if (dtokens) dtokens[(n * K + j) * D + c] += v; }
        else acc += v;
      }
    if (partial) partial[ch * D + c] = acc;
  }
}

/* dmask_token[c] += partial[ch, c] for ch in order */
static __global__ void mask_token_finish_kernel(mask_guard g, float *dmask_token, const float *partial, int64_t D,
                                                int64_t nchunks) {
  if (g.blocked()) return;
  for (int64_t c = grid_first(); c < D; c += grid_step()) {
    float v = dmask_token[c];
    for (int64_t ch = 0; ch < nchunks; ch++) v += partial[ch * D + c];
    dmask_token[c] = v;
  }
}

static inline dim3 column_grid(int64_t rows, int64_t D, unsigned threads) {
  const int64_t cy = (D + threads - 1) / threads;
  return dim3(sort_row_blocks(rows), (unsigned)(cy > 65535 ? 65535 : cy), 1);
}

} // namespace dama_cuda

#endif
