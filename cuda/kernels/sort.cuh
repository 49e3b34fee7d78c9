/* sort.cuh — stable row sorts of (key, index) pairs: the engine behind sort/argsort/topk, scatter_'s ordering of
 * duplicate destinations and every mask op (cuda/kernels/mask.cuh).
 *
 * Keys are unsigned integers (32 or 64 bits) whose unsigned order is the order wanted; the pair (key, index) is
 * compared as a whole, so equal keys keep their index order: any comparison sort of such pairs gives the unique
 * stable order, which is what the CPU's stable merge sorts give (runtime/cpu/ops_sort.c, cpu/mask.c). A row of n
 * elements is padded to P = the next power of two with (max key, index >= n), which sorts after every element.
 *
 * - P <= k_sort_chunk (4096; the DAMA case L = 64 or 196): one block per row, a bitonic network over shared memory,
 *   then a Writer is called for each sorted position (sort_block_kernel, and sort2_block_kernel for two sorts of the
 *   same row in one launch).
 * - longer rows: the same network across launches over a global scratch of rows * P pairs: chunks of k_sort_chunk
 *   sorted in shared memory (directions alternating as the network needs), then per stage the steps of distance
 *   >= k_sort_chunk in global memory (one launch each) and the shorter ones in shared memory (one launch), then a
 *   writer kernel. O(P log^2 P) work, log2(P / 4096) * (log2(P / 4096) + 3) / 2 + 2 launches.
 *
 * A Loader gives key(row, i) for i < n; a Writer takes (row, position, index). A Guard can make every kernel return
 * at once (a check kernel before found an error: the op then writes nothing, as the CPU's). */
#ifndef DAMA_CUDA_SORT_CUH
#define DAMA_CUDA_SORT_CUH

#include "dialect.cuh"

namespace dama_cuda {

static const uint32_t k_sort_chunk = 4096;

/* ---- keys: unsigned order = the CPU's order ---- */

/* Ascending floats with NaN after every number (torch.sort), -0 == +0 (a tie, broken by index), every NaN equal.
 * NaN maps to all-ones minus one, so a caller can still put something after every NaN. */
__device__ __forceinline__ uint32_t f32_order_key(float v) {
  if (v != v) return 0xFFFFFFFEu;
  if (v == 0.0f) v = 0.0f;
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ uint64_t f64_order_key(double v) {
  if (v != v) return 0xFFFFFFFFFFFFFFFEull;
  if (v == 0.0) v = 0.0;
  const uint64_t u = (uint64_t)__double_as_longlong(v);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

/* bf16 / f16 bits to float (exact widening; the CPU's dama_bf16_to_f32 and IEEE half). */
__device__ __forceinline__ float bf16_bits_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }
__device__ __forceinline__ float f16_bits_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }

template <typename K> __device__ __forceinline__ K key_max(void) { return (K)~(K)0; }

/* The bitonic network on P = 2^m pairs in shared memory, sorted ascending by (key, index). Every thread of the
 * block calls it. dir_base: the row position of keys[0] in a longer network, whose stage k runs descending where
 * (position & k) != 0; 0 (and P the row length) for a whole row. k_first / k_last: the stages to run (2, P for a
 * whole sort; a merge of a longer network runs only its stage k from distance P/2 down). */
template <typename K>
__device__ void bitonic_shared(K *keys, uint32_t *idx, uint32_t P, uint64_t dir_base, uint64_t k_first,
                               uint64_t k_last) {
  const uint32_t half = P >> 1;
  for (uint64_t k = k_first; k <= k_last; k <<= 1) {
    for (uint32_t j = (uint32_t)((k >> 1) < half ? (k >> 1) : half); j > 0; j >>= 1) {
      for (uint32_t t = threadIdx.x; t < half; t += blockDim.x) {
        const uint32_t i = 2 * t - (t & (j - 1)), l = i + j;
        const bool up = ((dir_base + i) & k) == 0;
        const K ki = keys[i], kl = keys[l];
        const uint32_t ii = idx[i], il = idx[l];
        const bool gt = ki > kl || (ki == kl && ii > il);
        if (gt == up) {
          keys[i] = kl; keys[l] = ki;
          idx[i] = il; idx[l] = ii;
        }
      }
      __syncthreads();
    }
  }
}

static inline uint32_t sort_pow2(int64_t n) {
  uint32_t p = 1;
  while ((int64_t)p < n) p <<= 1;
  return p;
}

/* Threads for a block that runs the network over P pairs. */
static inline unsigned sort_threads(uint32_t P) {
  const uint32_t t = P / 2;
  return t < 32 ? 32u : (t > 1024 ? 1024u : t);
}

/* No guard: every kernel runs. */
struct no_guard {
  __device__ bool blocked(void) const { return false; }
};

/* Fill keys/idx (P pairs) of one row from a loader, with padding. */
template <typename K, typename Loader>
__device__ void load_row(K *keys, uint32_t *idx, const Loader &ld, int64_t row, uint32_t base, uint32_t P, int64_t n) {
  for (uint32_t i = threadIdx.x; i < P; i += blockDim.x) {
    const int64_t p = (int64_t)base + i;
    keys[i] = p < n ? ld.key(row, (uint32_t)p) : key_max<K>();
    idx[i] = (uint32_t)p;
  }
}

/* One row per block (grid-stride over rows): load, sort, then w(row, i, index) for i < n. Dynamic shared memory:
 * P * (sizeof(K) + 4) bytes. */
template <typename K, typename Loader, typename Writer, typename Guard>
static __global__ void sort_block_kernel(Loader ld, Writer w, Guard g, int64_t rows, int64_t n, uint32_t P) {
  if (g.blocked()) return;
  DAMA_DYNAMIC_SHARED(unsigned char, smem);
  K *keys = reinterpret_cast<K *>(smem);
  uint32_t *idx = reinterpret_cast<uint32_t *>(smem + (size_t)P * sizeof(K));
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    load_row<K>(keys, idx, ld, row, 0, P, n);
    __syncthreads();
    bitonic_shared<K>(keys, idx, P, 0, 2, P);
    for (uint32_t i = threadIdx.x; (int64_t)i < n; i += blockDim.x) w(row, i, idx[i]);
    __syncthreads(); /* before the next row overwrites the pairs */
  }
}

/* Two sorts of the same row in one launch: (ld1, w1), then (ld2, w2); w1's global writes are visible to ld2 (the
 * block's barrier orders them). */
template <typename K, typename L1, typename W1, typename L2, typename W2, typename Guard>
static __global__ void sort2_block_kernel(L1 ld1, W1 w1, L2 ld2, W2 w2, Guard g, int64_t rows, int64_t n, uint32_t P) {
  if (g.blocked()) return;
  DAMA_DYNAMIC_SHARED(unsigned char, smem);
  K *keys = reinterpret_cast<K *>(smem);
  uint32_t *idx = reinterpret_cast<uint32_t *>(smem + (size_t)P * sizeof(K));
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    load_row<K>(keys, idx, ld1, row, 0, P, n);
    __syncthreads();
    bitonic_shared<K>(keys, idx, P, 0, 2, P);
    for (uint32_t i = threadIdx.x; (int64_t)i < n; i += blockDim.x) w1(row, i, idx[i]);
    __syncthreads();
    load_row<K>(keys, idx, ld2, row, 0, P, n);
    __syncthreads();
    bitonic_shared<K>(keys, idx, P, 0, 2, P);
    for (uint32_t i = threadIdx.x; (int64_t)i < n; i += blockDim.x) w2(row, i, idx[i]);
    __syncthreads();
  }
}

/* ---- the global network (rows longer than k_sort_chunk): pairs in gkeys/gidx, rows * P of them ---- */

/* Chunks of C = k_sort_chunk: load (or, from_scratch, read the scratch) and run stages k_first..k_last of the row's
 * network with distances < C. Blocks: one per chunk (grid-stride). */
template <typename K, typename Loader, typename Guard>
static __global__ void sort_chunk_kernel(Loader ld, Guard g, K *gkeys, uint32_t *gidx, int64_t rows, int64_t n,
                                         uint64_t P, int from_scratch, uint64_t k_first, uint64_t k_last) {
  if (g.blocked()) return;
  DAMA_DYNAMIC_SHARED(unsigned char, smem);
  const uint32_t C = k_sort_chunk;
  K *keys = reinterpret_cast<K *>(smem);
  uint32_t *idx = reinterpret_cast<uint32_t *>(smem + (size_t)C * sizeof(K));
  const int64_t per_row = (int64_t)(P / C), chunks = rows * per_row;
  for (int64_t c = blockIdx.x; c < chunks; c += gridDim.x) {
    const int64_t row = c / per_row;
    const uint64_t base = (uint64_t)(c % per_row) * C;
    K *rk = gkeys + (size_t)row * P + base;
    uint32_t *ri = gidx + (size_t)row * P + base;
    if (from_scratch) {
      for (uint32_t i = threadIdx.x; i < C; i += blockDim.x) { keys[i] = rk[i]; idx[i] = ri[i]; }
    } else {
      load_row<K>(keys, idx, ld, row, (uint32_t)base, C, n);
    }
    __syncthreads();
    bitonic_shared<K>(keys, idx, C, base, k_first, k_last);
    for (uint32_t i = threadIdx.x; i < C; i += blockDim.x) { rk[i] = keys[i]; ri[i] = idx[i]; }
    __syncthreads();
  }
}

/* One compare-exchange step of stage k at distance j (>= C) over every row: a thread per pair, grid-stride. */
template <typename K, typename Guard>
static __global__ void sort_step_kernel(Guard g, K *gkeys, uint32_t *gidx, int64_t rows, uint64_t P, uint64_t k,
                                        uint64_t j) {
  if (g.blocked()) return;
  const int64_t half = (int64_t)(P >> 1), pairs = rows * half;
  for (int64_t q = grid_first(); q < pairs; q += grid_step()) {
    const int64_t row = q / half;
    const uint64_t t = (uint64_t)(q % half), i = 2 * t - (t & (j - 1)), l = i + j;
    K *rk = gkeys + (size_t)row * P;
    uint32_t *ri = gidx + (size_t)row * P;
    const bool up = (i & k) == 0;
    const K ki = rk[i], kl = rk[l];
    const uint32_t ii = ri[i], il = ri[l];
    const bool gt = ki > kl || (ki == kl && ii > il);
    if (gt == up) {
      rk[i] = kl; rk[l] = ki;
      ri[i] = il; ri[l] = ii;
    }
  }
}

/* w(row, i, index) for every row and i < n, from the sorted scratch. */
template <typename Writer, typename Guard>
static __global__ void sort_write_kernel(Writer w, Guard g, const uint32_t *gidx, int64_t rows, int64_t n, uint64_t P) {
  if (g.blocked()) return;
  const int64_t total = rows * n;
  for (int64_t q = grid_first(); q < total; q += grid_step()) {
    const int64_t row = q / n, i = q % n;
    w(row, (uint32_t)i, gidx[(size_t)row * P + (size_t)i]);
  }
}

/* Bytes of global scratch a sort of rows x n with K keys needs (0: the one-block path, no scratch). */
template <typename K> static inline int64_t sort_scratch_bytes(int64_t rows, int64_t n) {
  const uint32_t P = sort_pow2(n);
  if (P <= k_sort_chunk || rows <= 0) return 0;
  return rows * (int64_t)P * (int64_t)(sizeof(K) + sizeof(uint32_t));
}

/* Largest row a sort takes: indices are 32 bits wide and padding needs room (2^31 elements). */
static const int64_t k_sort_max_row = (int64_t)1 << 31;

static inline unsigned sort_row_blocks(int64_t rows) { return rows > 65535 ? 65535u : (unsigned)rows; }

/* Sort rows x n (n <= k_sort_max_row) and call w for every sorted position. scratch: sort_scratch_bytes<K> bytes. */
template <typename K, typename Loader, typename Writer, typename Guard>
static inline cudaError_t sort_rows(const Loader &ld, const Writer &w, const Guard &g, int64_t rows, int64_t n,
                                    void *scratch, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return cudaGetLastError();
  const uint32_t P = sort_pow2(n);
  if (P <= k_sort_chunk) {
    void (*k)(Loader, Writer, Guard, int64_t, int64_t, uint32_t) = sort_block_kernel<K, Loader, Writer, Guard>;
    DAMA_LAUNCH(k, sort_row_blocks(rows), sort_threads(P), (size_t)P * (sizeof(K) + 4), stream, ld, w, g, rows, n, P);
    return cudaGetLastError();
  }
  const uint64_t C = k_sort_chunk;
  K *gkeys = static_cast<K *>(scratch);
  uint32_t *gidx = reinterpret_cast<uint32_t *>(static_cast<unsigned char *>(scratch) + (size_t)rows * P * sizeof(K));
  const int64_t chunks = rows * (int64_t)(P / C);
  const unsigned cb = chunks > 65535 ? 65535u : (unsigned)chunks;
  const size_t sh = (size_t)C * (sizeof(K) + 4);
  void (*chunk)(Loader, Guard, K *, uint32_t *, int64_t, int64_t, uint64_t, int, uint64_t, uint64_t) =
      sort_chunk_kernel<K, Loader, Guard>;
  void (*step)(Guard, K *, uint32_t *, int64_t, uint64_t, uint64_t, uint64_t) = sort_step_kernel<K, Guard>;
  DAMA_LAUNCH(chunk, cb, 1024, sh, stream, ld, g, gkeys, gidx, rows, n, (uint64_t)P, 0, (uint64_t)2, C);
  for (uint64_t k = 2 * C; k <= P; k <<= 1) {
    for (uint64_t j = k >> 1; j >= C; j >>= 1)
      DAMA_LAUNCH(step, grid_stride_blocks(rows * (int64_t)(P / 2), k_block, 65535), k_block, 0, stream, g, gkeys,
                  gidx, rows, (uint64_t)P, k, j);
    DAMA_LAUNCH(chunk, cb, 1024, sh, stream, ld, g, gkeys, gidx, rows, n, (uint64_t)P, 1, k, k);
  }
  void (*wk)(Writer, Guard, const uint32_t *, int64_t, int64_t, uint64_t) = sort_write_kernel<Writer, Guard>;
  DAMA_LAUNCH(wk, grid_stride_blocks(rows * n, k_block, 65535), k_block, 0, stream, w, g, gidx, rows, n, (uint64_t)P);
  return cudaGetLastError();
}

/* Two sorts of each row, (ld1, w1) then (ld2, w2): one launch on the one-block path. */
template <typename K, typename L1, typename W1, typename L2, typename W2, typename Guard>
static inline cudaError_t sort2_rows(const L1 &ld1, const W1 &w1, const L2 &ld2, const W2 &w2, const Guard &g,
                                     int64_t rows, int64_t n, void *scratch, cudaStream_t stream) {
  if (rows <= 0 || n <= 0) return cudaGetLastError();
  const uint32_t P = sort_pow2(n);
  if (P <= k_sort_chunk) {
    void (*k)(L1, W1, L2, W2, Guard, int64_t, int64_t, uint32_t) = sort2_block_kernel<K, L1, W1, L2, W2, Guard>;
    DAMA_LAUNCH(k, sort_row_blocks(rows), sort_threads(P), (size_t)P * (sizeof(K) + 4), stream, ld1, w1, ld2, w2, g,
                rows, n, P);
    return cudaGetLastError();
  }
  cudaError_t e = sort_rows<K>(ld1, w1, g, rows, n, scratch, stream);
  if (e != cudaSuccess) return e;
  return sort_rows<K>(ld2, w2, g, rows, n, scratch, stream);
}

/* ---- the sort / argsort / topk ops: rows of a strided tensor along one dim ---- */

/* Rows of a tensor along `dim`: row r is the r-th combination of the other dims (row-major, as ops_sort.c). */
struct row_desc {
  int32_t ndim, dim;
  int64_t shape[8];
  int64_t strides[8]; /* in elements */
};
__device__ __forceinline__ int64_t row_offset(const row_desc &d, int64_t r) {
  int64_t off = 0;
  for (int32_t k = d.ndim - 1; k >= 0; k--) {
    if (k == d.dim) continue;
    const int64_t s = d.shape[k];
    off += (r % s) * d.strides[k];
    r /= s;
  }
  return off;
}

/* dtype codes as dama_dtype (api/core.h): f32 f64 bf16 f16 u8 u16 i32 i64 */
enum { k_f32 = 0, k_f64 = 1, k_bf16 = 2, k_f16 = 3, k_u8 = 4, k_u16 = 5, k_i32 = 6, k_i64 = 7 };

/* The key of element i of a row: 32-bit keys for f32/bf16/f16/u8/u16/i32, 64-bit for f64/i64; descending
 * inverts the key (equal keys still keep index order, as the CPU's stable descending sort). */
template <typename K> struct tensor_key_loader {
  const unsigned char *base;
  row_desc rd;
  int32_t dtype, esize, desc;
  __device__ K key(int64_t row, uint32_t i) const {
    const unsigned char *p = base + (row_offset(rd, row) + (int64_t)i * (rd.ndim ? rd.strides[rd.dim] : 0)) * esize;
    uint64_t k;
    switch (dtype) {
      case k_f32: { float v; memcpy(&v, p, 4); k = f32_order_key(v); break; }
      case k_f64: { double v; memcpy(&v, p, 8); k = f64_order_key(v); break; }
      case k_bf16: { uint16_t h; memcpy(&h, p, 2); k = f32_order_key(bf16_bits_to_f32(h)); break; }
      case k_f16: { uint16_t h; memcpy(&h, p, 2); k = f32_order_key(f16_bits_to_f32(h)); break; }
      case k_u8: k = *p; break;
      case k_u16: { uint16_t h; memcpy(&h, p, 2); k = h; break; }
      case k_i32: { uint32_t v; memcpy(&v, p, 4); k = v ^ 0x80000000u; break; }
      default: { uint64_t v; memcpy(&v, p, 8); k = v ^ 0x8000000000000000ull; break; }
    }
    const K kk = (K)k;
    return desc ? (K)~kk : kk;
  }
};

/* Writes the first k sorted positions of each row: indices (i64) and, when vals is set, the values (the input's
 * element; a bf16/f16 NaN quieted, as the CPU's round trip through float does). */
struct sort_out_writer {
  const unsigned char *src;
  row_desc in;     /* the input's rows */
  unsigned char *vals;
  int64_t *inds;
  row_desc out;    /* the outputs' rows (contiguous, dim of size k) */
  int32_t dtype, esize;
  int64_t k;
  __device__ void operator()(int64_t row, uint32_t i, uint32_t index) const {
    if ((int64_t)i >= k) return;
    const int64_t os = out.ndim ? out.strides[out.dim] : 0;
    const int64_t o = row_offset(out, row) + (int64_t)i * os;
    inds[o] = (int64_t)index;
    if (!vals) return;
    const unsigned char *p = src + (row_offset(in, row) + (int64_t)index * (in.ndim ? in.strides[in.dim] : 0)) * esize;
    unsigned char *q = vals + o * esize;
    switch (esize) {
      case 1: *q = *p; break;
      case 2: {
        uint16_t h;
        memcpy(&h, p, 2);
        if (dtype == k_bf16 && (h & 0x7fffu) > 0x7f80u) h = (uint16_t)(h | 0x40u);
        if (dtype == k_f16 && (h & 0x7fffu) > 0x7c00u) h = (uint16_t)(h | 0x200u);
        memcpy(q, &h, 2);
        break;
      }
      case 4: memcpy(q, p, 4); break;
      default: memcpy(q, p, 8); break;
    }
  }
};

} // namespace dama_cuda

#endif
