/* loss.cuh — the losses of runtime/cpu/nn_loss.c: squared error (sum / mean), smooth L1, cross-entropy with hard
 * targets and label smoothing, soft-target cross-entropy, and MAE/DAMA's norm-pix loss (per-patch normalised target,
 * the per-patch loss for the adaptive mask, the mean over masked patches).
 *
 * Deterministic, no atomics: a forward's first pass leaves one partial sum (in double, as the CPU accumulates) per
 * block, in a fixed grid that depends only on the sizes; loss_finish adds them in a fixed order and writes the
 * float loss to device memory. With one block, the first pass writes the loss itself (one launch). Backwards read
 * their incoming gradient `dloss` from device memory and accumulate (+=) into the input gradients, as the CPU
 * kernels; nothing here synchronises with the host.
 *
 * Row losses (cross-entropy, norm-pix) run a warp per row; the row index is warp-uniform, so the full-mask shuffles
 * are always legal. A hard target outside [0, K) cannot be refused without reading it on the host, so it makes that
 * row's loss and gradient NaN (the CPU kernel refuses it with DAMA_ERR_INDEX). */
#ifndef DAMA_CUDA_LOSS_CUH
#define DAMA_CUDA_LOSS_CUH

#include "reduce.cuh"

namespace dama_cuda {

/* ---- double reductions (reduce.cuh has the float ones) ---- */
__device__ __forceinline__ double nn_warp_sum_f64(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
/* every thread of a 1-D block (a multiple of 32 threads) calls it; scratch: 32 doubles of shared memory */
__device__ __forceinline__ double nn_block_sum_f64(double v, double *scratch) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = nn_warp_sum_f64(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = nn_warp_sum_f64(lane < nwarps ? scratch[lane] : 0.0);
  __syncthreads();
  return v;
}

static const unsigned k_loss_block = 256, k_loss_max_blocks = 1024;

/* The loss from the sums: num / den when the loss has a denominator (0 when den is 0, as the norm-pix loss), else
 * num / divisor (1 for a sum). */
__device__ __forceinline__ float loss_value(double num, double den, int has_den, double divisor) {
  if (has_den) return den != 0.0 ? (float)(num / den) : 0.0f;
  return (float)(num / divisor);
}

/* The end of a first pass: thread 0 writes the loss (one block) or the block's partial sums (num at [b], den at
 * [gridDim.x + b]). num and den must be block-wide sums already. */
__device__ __forceinline__ void loss_store(float *loss, double *partials, double num, double den, int has_den,
                                           double divisor) {
  if (threadIdx.x != 0) return;
  if (gridDim.x == 1) {
    *loss = loss_value(num, den, has_den, divisor);
  } else {
    partials[blockIdx.x] = num;
    if (has_den) partials[gridDim.x + blockIdx.x] = den;
  }
}

/* one block: adds the G partials of a first pass in a fixed order and writes the loss */
static __global__ void loss_finish_kernel(float *loss, const double *__restrict__ partials, int64_t G, int has_den,
                                          double divisor) {
  DAMA_SHARED(double, scratch, [32]);
  double num = 0.0, den = 0.0;
  for (int64_t i = threadIdx.x; i < G; i += blockDim.x) {
    num += partials[i];
    if (has_den) den += partials[G + i];
  }
  num = nn_block_sum_f64(num, scratch);
  if (has_den) den = nn_block_sum_f64(den, scratch); /* has_den is uniform: every thread reaches the barriers */
  if (threadIdx.x == 0) *loss = loss_value(num, den, has_den, divisor);
}

/* ---- squared error and smooth L1: grid-stride over n elements ---- */

static __global__ void sq_error_forward_kernel(float *loss, double *partials, const float *__restrict__ pred,
                                               const float *__restrict__ target, int64_t n, double divisor) {
  DAMA_SHARED(double, scratch, [32]);
  double acc = 0.0;
  for (int64_t i = grid_first(); i < n; i += grid_step()) {
    const double d = (double)pred[i] - (double)target[i];
    acc += d * d;
  }
  acc = nn_block_sum_f64(acc, scratch);
  loss_store(loss, partials, acc, 0.0, 0, divisor);
}

/* g = s * (pred - target), s = 2 dloss (/ n for the mean), in float as the CPU; dpred += g, dtarget -= g */
static __global__ void sq_error_backward_kernel(float *__restrict__ dpred, float *__restrict__ dtarget,
                                                const float *__restrict__ pred, const float *__restrict__ target,
                                                int64_t n, int reduction, const float *__restrict__ dloss) {
  const float dl = *dloss;
  const float s = reduction == 1 ? 2.0f * dl / (float)n : 2.0f * dl;
  for (int64_t i = grid_first(); i < n; i += grid_step()) {
    const float g = s * (pred[i] - target[i]);
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
}

static __global__ void smooth_l1_forward_kernel(float *loss, double *partials, const float *__restrict__ pred,
                                                const float *__restrict__ target, int64_t n, double beta,
                                                double divisor) {
  DAMA_SHARED(double, scratch, [32]);
  double acc = 0.0;
  for (int64_t i = grid_first(); i < n; i += grid_step()) {
    const double d = fabs((double)pred[i] - (double)target[i]);
    acc += d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
  }
  acc = nn_block_sum_f64(acc, scratch);
  loss_store(loss, partials, acc, 0.0, 0, divisor);
}

static __global__ void smooth_l1_backward_kernel(float *__restrict__ dpred, float *__restrict__ dtarget,
                                                 const float *__restrict__ pred, const float *__restrict__ target,
                                                 int64_t n, float beta, int reduction,
                                                 const float *__restrict__ dloss) {
  const float dl = *dloss;
  const float s = reduction == 1 ? dl / (float)n : dl;
  for (int64_t i = grid_first(); i < n; i += grid_step()) {
    const float d = pred[i] - target[i];
    float g = fabsf(d) < beta ? d / beta : (d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f));
    g *= s;
    if (dpred) dpred[i] += g;
    if (dtarget) dtarget[i] -= g;
  }
}

/* ---- cross-entropy: a warp per row of [N, K] logits ---- */

/* log-sum-exp of one row in double, as nn_loss.c's row_lse: the float max (NaN ignored), then the double sum of
 * exp(x - max); every lane gets the same bits */
__device__ __forceinline__ double nn_row_lse(const float *x, int64_t K, unsigned lane) {
  float mx = -INFINITY;
  for (int64_t k = lane; k < K; k += 32) mx = x[k] > mx ? x[k] : mx;
  mx = warp_max(mx);
  double s = 0.0;
  for (int64_t k = lane; k < K; k += 32) s += exp((double)x[k] - (double)mx);
  return (double)mx + log(nn_warp_sum_f64(s));
}

static inline unsigned warp_row_blocks(int64_t rows) {
  const int64_t per_block = k_loss_block / 32, b = (rows + per_block - 1) / per_block;
  return b < 1 ? 1u : (b > (int64_t)k_loss_max_blocks ? k_loss_max_blocks : (unsigned)b);
}

/* row i: lse - eps / K * sum(x) - (1 - eps) * x[target]; the loss is the mean over rows */
static __global__ void cross_entropy_forward_kernel(float *loss, double *partials, const float *__restrict__ logits,
                                                    const int64_t *__restrict__ target, int64_t N, int64_t K,
                                                    double eps) {
  DAMA_SHARED(double, scratch, [32]);
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  double acc = 0.0; /* this warp's rows, in order (the same in every lane) */
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < N; row += warps) {
    const float *x = logits + row * K;
    const double lse = nn_row_lse(x, K, lane);
    double sx = 0.0;
    for (int64_t k = lane; k < K; k += 32) sx += x[k];
    sx = nn_warp_sum_f64(sx);
    const int64_t t = target[row];
    const double xt = t >= 0 && t < K ? (double)x[t] : (double)NAN;
    acc += lse - eps / (double)K * sx - (1.0 - eps) * xt;
  }
  acc = nn_block_sum_f64(lane == 0 ? acc : 0.0, scratch);
  loss_store(loss, partials, acc, 0.0, 0, (double)N);
}

/* dlogits[i, k] += dloss / N * (softmax(x)[k] - q[k]), q = eps / K + (1 - eps) [k == target] */
static __global__ void cross_entropy_backward_kernel(float *__restrict__ dlogits, const float *__restrict__ logits,
                                                     const int64_t *__restrict__ target, int64_t N, int64_t K,
                                                     float label_smoothing, const float *__restrict__ dloss) {
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  const double s = (double)*dloss / (double)N, off = (double)label_smoothing / (double)K;
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < N; row += warps) {
    const float *x = logits + row * K;
    float *dx = dlogits + row * K;
    const double lse = nn_row_lse(x, K, lane);
    const int64_t t = target[row];
    const bool bad = !(t >= 0 && t < K);
    for (int64_t k = lane; k < K; k += 32) {
      const double q = off + (k == t ? 1.0 - (double)label_smoothing : 0.0);
      dx[k] += bad ? NAN : (float)(s * (exp((double)x[k] - lse) - q));
    }
  }
}

/* row i: lse * sum(q) - sum(q * x); the loss is the mean over rows */
static __global__ void soft_cross_entropy_forward_kernel(float *loss, double *partials,
                                                         const float *__restrict__ logits,
                                                         const float *__restrict__ target, int64_t N, int64_t K) {
  DAMA_SHARED(double, scratch, [32]);
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  double acc = 0.0;
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < N; row += warps) {
    const float *x = logits + row * K, *q = target + row * K;
    const double lse = nn_row_lse(x, K, lane);
    double sq = 0.0, sqx = 0.0;
    for (int64_t k = lane; k < K; k += 32) {
      sq += q[k];
      sqx += (double)q[k] * (double)x[k];
    }
    sq = nn_warp_sum_f64(sq);
    sqx = nn_warp_sum_f64(sqx);
    acc += lse * sq - sqx;
  }
  acc = nn_block_sum_f64(lane == 0 ? acc : 0.0, scratch);
  loss_store(loss, partials, acc, 0.0, 0, (double)N);
}

/* dlogits[i, k] += dloss / N * (softmax(x)[k] * sum(q) - q[k]) */
static __global__ void soft_cross_entropy_backward_kernel(float *__restrict__ dlogits,
                                                          const float *__restrict__ logits,
                                                          const float *__restrict__ target, int64_t N, int64_t K,
                                                          const float *__restrict__ dloss) {
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  const double s = (double)*dloss / (double)N;
  for (int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < N; row += warps) {
    const float *x = logits + row * K, *q = target + row * K;
    float *dx = dlogits + row * K;
    const double lse = nn_row_lse(x, K, lane);
    double sq = 0.0;
    for (int64_t k = lane; k < K; k += 32) sq += q[k];
    sq = nn_warp_sum_f64(sq);
    for (int64_t k = lane; k < K; k += 32) dx[k] += (float)(s * (exp((double)x[k] - lse) * sq - (double)q[k]));
  }
}

/* ---- the norm-pix loss: a warp per patch of [N * L, P] ---- */

/* nn_loss.c's patch_stats: t_hat = (t - mu) * inv with the patch's mean and unbiased variance (float sums), or the
 * identity without norm_pix (uniform over the grid) */
__device__ __forceinline__ void nn_patch_stats(const float *t, int64_t P, int norm_pix, float eps, unsigned lane,
                                               float *mu, float *inv) {
  if (!norm_pix) {
    *mu = 0.0f;
    *inv = 1.0f;
    return;
  }
  float s = 0.0f;
  for (int64_t k = lane; k < P; k += 32) s += t[k];
  const float m = warp_sum(s) / (float)P;
  float v = 0.0f;
  for (int64_t k = lane; k < P; k += 32) {
    const float d = t[k] - m;
    v += d * d;
  }
  *mu = m;
  *inv = 1.0f / sqrtf(warp_sum(v) / (float)(P - 1) + eps);
}

/* loss_per_patch[r] = mean over the patch of (pred - t_hat)^2 (if wanted); the loss is sum(l * mask) / sum(mask) */
static __global__ void normpix_forward_kernel(float *loss, double *partials, float *__restrict__ loss_per_patch,
                                              const float *__restrict__ pred, const float *__restrict__ target,
                                              const float *__restrict__ mask, int64_t R, int64_t P, int norm_pix,
                                              float eps) {
  DAMA_SHARED(double, scratch, [32]);
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  double num = 0.0, den = 0.0;
  for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < R; r += warps) {
    const float *t = target + r * P, *y = pred + r * P;
    float mu, inv;
    nn_patch_stats(t, P, norm_pix, eps, lane, &mu, &inv);
    float s = 0.0f;
    for (int64_t k = lane; k < P; k += 32) {
      const float d = y[k] - (t[k] - mu) * inv;
      s += d * d;
    }
    const float l = warp_sum(s) / (float)P;
    if (loss_per_patch && lane == 0) loss_per_patch[r] = l;
    num += (double)l * (double)mask[r];
    den += (double)mask[r];
  }
  num = nn_block_sum_f64(lane == 0 ? num : 0.0, scratch);
  den = nn_block_sum_f64(lane == 0 ? den : 0.0, scratch);
  loss_store(loss, partials, num, den, 1, 1.0);
}

/* *den = sum of the R mask values in double (one block, a fixed order) */
static __global__ void normpix_den_kernel(double *den, const float *__restrict__ mask, int64_t R) {
  DAMA_SHARED(double, scratch, [32]);
  double s = 0.0;
  for (int64_t r = threadIdx.x; r < R; r += blockDim.x) s += (double)mask[r];
  s = nn_block_sum_f64(s, scratch);
  if (threadIdx.x == 0) *den = s;
}

/* dpred[r] += 2 dloss mask[r] / (sum(mask) P) * (pred - t_hat) for the masked patches; nothing when sum(mask) is 0 */
static __global__ void normpix_backward_kernel(float *__restrict__ dpred, const float *__restrict__ pred,
                                               const float *__restrict__ target, const float *__restrict__ mask,
                                               int64_t R, int64_t P, int norm_pix, float eps,
                                               const double *__restrict__ den, const float *__restrict__ dloss) {
  const double d = *den;
  if (d == 0.0) return;
  const float s = (float)(2.0 * (double)*dloss / (d * (double)P));
  const unsigned lane = threadIdx.x & 31u;
  const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
  for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < R; r += warps) {
    const float mr = mask[r];
    if (mr == 0.0f) continue; /* warp-uniform */
    const float *t = target + r * P, *y = pred + r * P;
    float *dy = dpred + r * P;
    float mu, inv;
    nn_patch_stats(t, P, norm_pix, eps, lane, &mu, &inv);
    const float g = s * mr;
    for (int64_t k = lane; k < P; k += 32) dy[k] += g * (y[k] - (t[k] - mu) * inv);
  }
}

/* ---- launchers: the table's arguments (after its checks) plus device workspace and the stream ---- */

/* Blocks of the first pass of each forward (a function of the sizes only), and the bytes of workspace it needs
 * (0 with one block: no second pass). */
static inline unsigned elementwise_loss_blocks(int64_t n) { return grid_stride_blocks(n, k_loss_block, k_loss_max_blocks); }
static inline int64_t partials_bytes(unsigned blocks, int has_den) {
  return blocks > 1 ? (int64_t)blocks * (has_den ? 2 : 1) * (int64_t)sizeof(double) : 0;
}
static inline int64_t sq_error_forward_workspace(int64_t n) { return partials_bytes(elementwise_loss_blocks(n), 0); }
static inline int64_t smooth_l1_forward_workspace(int64_t n) { return partials_bytes(elementwise_loss_blocks(n), 0); }
static inline int64_t cross_entropy_forward_workspace(int64_t N) { return partials_bytes(warp_row_blocks(N), 0); }
static inline int64_t normpix_forward_workspace(int64_t N, int64_t L) {
  return partials_bytes(warp_row_blocks(N * L), 1);
}
/* the backward's workspace: the mask sum */
static inline int64_t normpix_backward_workspace(void) { return (int64_t)sizeof(double); }

static inline cudaError_t loss_finish(float *loss, const double *partials, unsigned blocks, int has_den,
                                      double divisor, cudaStream_t stream) {
  if (blocks > 1)
    DAMA_LAUNCH(loss_finish_kernel, 1, k_loss_block, 0, stream, loss, partials, (int64_t)blocks, has_den, divisor);
  return cudaGetLastError();
}

/* reduction: 0 sum, 1 mean */
static inline cudaError_t sq_error_forward(float *loss, const float *pred, const float *target, int64_t n,
                                           int reduction, double *work, cudaStream_t stream) {
  const unsigned g = elementwise_loss_blocks(n);
  const double divisor = reduction == 1 ? (double)n : 1.0;
  DAMA_LAUNCH(sq_error_forward_kernel, g, k_loss_block, 0, stream, loss, work, pred, target, n, divisor);
  return loss_finish(loss, work, g, 0, divisor, stream);
}

static inline cudaError_t sq_error_backward(float *dpred, float *dtarget, const float *pred, const float *target,
                                            int64_t n, int reduction, const float *dloss, cudaStream_t stream) {
  if (n <= 0 || (!dpred && !dtarget)) return cudaSuccess;
  DAMA_LAUNCH(sq_error_backward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, dpred, dtarget, pred,
              target, n, reduction, dloss);
  return cudaGetLastError();
}

static inline cudaError_t smooth_l1_loss_forward(float *loss, const float *pred, const float *target, int64_t n,
                                                 float beta, int reduction, double *work, cudaStream_t stream) {
  const unsigned g = elementwise_loss_blocks(n);
  const double divisor = reduction == 1 ? (double)n : 1.0;
  DAMA_LAUNCH(smooth_l1_forward_kernel, g, k_loss_block, 0, stream, loss, work, pred, target, n, (double)beta,
              divisor);
  return loss_finish(loss, work, g, 0, divisor, stream);
}

static inline cudaError_t smooth_l1_loss_backward(float *dpred, float *dtarget, const float *pred,
                                                  const float *target, int64_t n, float beta, int reduction,
                                                  const float *dloss, cudaStream_t stream) {
  if (n <= 0 || (!dpred && !dtarget)) return cudaSuccess;
  DAMA_LAUNCH(smooth_l1_backward_kernel, grid_stride_blocks(n, k_block), k_block, 0, stream, dpred, dtarget, pred,
              target, n, beta, reduction, dloss);
  return cudaGetLastError();
}

static inline cudaError_t cross_entropy_forward(float *loss, const float *logits, const int64_t *target, int64_t N,
                                                int64_t K, float label_smoothing, double *work, cudaStream_t stream) {
  const unsigned g = warp_row_blocks(N);
  DAMA_LAUNCH(cross_entropy_forward_kernel, g, k_loss_block, 0, stream, loss, work, logits, target, N, K,
              (double)label_smoothing);
  return loss_finish(loss, work, g, 0, (double)N, stream);
}

static inline cudaError_t cross_entropy_backward(float *dlogits, const float *logits, const int64_t *target,
                                                 int64_t N, int64_t K, float label_smoothing, const float *dloss,
                                                 cudaStream_t stream) {
  if (N <= 0 || K <= 0) return cudaSuccess;
  DAMA_LAUNCH(cross_entropy_backward_kernel, warp_row_blocks(N), k_loss_block, 0, stream, dlogits, logits, target, N,
              K, label_smoothing, dloss);
  return cudaGetLastError();
}

static inline cudaError_t soft_cross_entropy_forward(float *loss, const float *logits, const float *target, int64_t N,
                                                     int64_t K, double *work, cudaStream_t stream) {
  const unsigned g = warp_row_blocks(N);
  DAMA_LAUNCH(soft_cross_entropy_forward_kernel, g, k_loss_block, 0, stream, loss, work, logits, target, N, K);
  return loss_finish(loss, work, g, 0, (double)N, stream);
}

static inline cudaError_t soft_cross_entropy_backward(float *dlogits, const float *logits, const float *target,
                                                      int64_t N, int64_t K, const float *dloss, cudaStream_t stream) {
  if (N <= 0 || K <= 0) return cudaSuccess;
  DAMA_LAUNCH(soft_cross_entropy_backward_kernel, warp_row_blocks(N), k_loss_block, 0, stream, dlogits, logits,
              target, N, K, dloss);
  return cudaGetLastError();
}

/* loss_per_patch may be NULL */
static inline cudaError_t normpix_loss_forward(float *loss, float *loss_per_patch, const float *pred,
                                               const float *target, const float *mask, int64_t N, int64_t L,
                                               int64_t P, int norm_pix, float eps, double *work,
                                               cudaStream_t stream) {
  const int64_t R = N * L;
  const unsigned g = warp_row_blocks(R);
  DAMA_LAUNCH(normpix_forward_kernel, g, k_loss_block, 0, stream, loss, work, loss_per_patch, pred, target, mask, R,
              P, norm_pix, eps);
  return loss_finish(loss, work, g, 1, 1.0, stream);
}

/* work: normpix_backward_workspace() bytes (the mask sum, computed first) */
static inline cudaError_t normpix_loss_backward(float *dpred, const float *pred, const float *target,
                                                const float *mask, int64_t N, int64_t L, int64_t P, int norm_pix,
                                                float eps, const float *dloss, double *work, cudaStream_t stream) {
  const int64_t R = N * L;
  if (R <= 0 || P <= 0) return cudaSuccess;
  DAMA_LAUNCH(normpix_den_kernel, 1, 1024, 0, stream, work, mask, R);
  DAMA_LAUNCH(normpix_backward_kernel, warp_row_blocks(R), k_loss_block, 0, stream, dpred, pred, target, mask, R, P,
              norm_pix, eps, (const double *)work, dloss);
  return cudaGetLastError();
}

} // namespace dama_cuda

#endif
