/* nn_loss_optim.cu — the NN area's launchers for the losses, the patch ops, the position table and the optimizer
 * steps (kernels in cuda/kernels/, declared for the glue in nn_launch.h).
 *
 * Their CPU twins (nn_loss.c, nn_patch.c, nn_optim.c) are compiled without FP contraction (C11's default), while the
 * interpreter build compiles every launcher file with -ffp-contract=fast; so here, in the interpreter only, the
 * contraction is turned off for everything defined below (core/dama_math.h included), which makes AdamW, SGD, the
 * EMA and the loss gradients' element math the CPU's bit for bit. nvcc never sees the pragma: on a GPU a*b+c
 * contracts, and the results agree with the CPU to rounding. */
#if defined(DAMA_CUDA_INTERP) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "kernels/adamw.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/loss.cuh"
#include "kernels/optim.cuh"
#include "kernels/patch.cuh"
#include "nn_launch.h"

extern "C" cudaError_t dama_cuda_nn_patchify(float *patches, const float *imgs, int64_t N, int64_t C, int64_t H,
                                             int64_t W, int64_t p, cudaStream_t s) {
  return dama_cuda::patchify(patches, imgs, N, C, H, W, p, s);
}

extern "C" cudaError_t dama_cuda_nn_unpatchify(float *imgs, const float *patches, int64_t N, int64_t C, int64_t H,
                                               int64_t W, int64_t p, cudaStream_t s) {
  return dama_cuda::unpatchify(imgs, patches, N, C, H, W, p, s);
}

extern "C" cudaError_t dama_cuda_nn_pos_embed_2d_sincos(float *out, int64_t D, int64_t grid_h, int64_t grid_w,
                                                        int cls, cudaStream_t s) {
  return dama_cuda::pos_embed_2d_sincos(out, D, grid_h, grid_w, cls, s);
}

extern "C" int64_t dama_cuda_nn_sq_error_forward_workspace(int64_t n) {
  return dama_cuda::sq_error_forward_workspace(n);
}
extern "C" int64_t dama_cuda_nn_smooth_l1_loss_forward_workspace(int64_t n) {
  return dama_cuda::smooth_l1_forward_workspace(n);
}
extern "C" int64_t dama_cuda_nn_cross_entropy_forward_workspace(int64_t N) {
  return dama_cuda::cross_entropy_forward_workspace(N);
}
extern "C" int64_t dama_cuda_nn_normpix_loss_forward_workspace(int64_t N, int64_t L) {
  return dama_cuda::normpix_forward_workspace(N, L);
}
extern "C" int64_t dama_cuda_nn_normpix_loss_backward_workspace(void) {
  return dama_cuda::normpix_backward_workspace();
}

extern "C" cudaError_t dama_cuda_nn_sq_error_forward(float *loss, const float *pred, const float *target, int64_t n,
                                                     int reduction, void *work, cudaStream_t s) {
  return dama_cuda::sq_error_forward(loss, pred, target, n, reduction, static_cast<double *>(work), s);
}

extern "C" cudaError_t dama_cuda_nn_sq_error_backward(float *dpred, float *dtarget, const float *pred,
                                                      const float *target, int64_t n, int reduction,
                                                      const float *dloss, cudaStream_t s) {
  return dama_cuda::sq_error_backward(dpred, dtarget, pred, target, n, reduction, dloss, s);
}

extern "C" cudaError_t dama_cuda_nn_smooth_l1_loss_forward(float *loss, const float *pred, const float *target,
                                                           int64_t n, float beta, int reduction, void *work,
                                                           cudaStream_t s) {
  return dama_cuda::smooth_l1_loss_forward(loss, pred, target, n, beta, reduction, static_cast<double *>(work), s);
}

extern "C" cudaError_t dama_cuda_nn_smooth_l1_loss_backward(float *dpred, float *dtarget, const float *pred,
                                                            const float *target, int64_t n, float beta, int reduction,
                                                            const float *dloss, cudaStream_t s) {
  return dama_cuda::smooth_l1_loss_backward(dpred, dtarget, pred, target, n, beta, reduction, dloss, s);
}

extern "C" cudaError_t dama_cuda_nn_cross_entropy_forward(float *loss, const float *logits, const int64_t *target,
                                                          int64_t N, int64_t K, float label_smoothing, void *work,
                                                          cudaStream_t s) {
  return dama_cuda::cross_entropy_forward(loss, logits, target, N, K, label_smoothing, static_cast<double *>(work), s);
}

extern "C" cudaError_t dama_cuda_nn_cross_entropy_backward(float *dlogits, const float *logits, const int64_t *target,
                                                           int64_t N, int64_t K, float label_smoothing,
                                                           const float *dloss, cudaStream_t s) {
  return dama_cuda::cross_entropy_backward(dlogits, logits, target, N, K, label_smoothing, dloss, s);
}

extern "C" cudaError_t dama_cuda_nn_soft_cross_entropy_forward(float *loss, const float *logits, const float *target,
                                                               int64_t N, int64_t K, void *work, cudaStream_t s) {
  return dama_cuda::soft_cross_entropy_forward(loss, logits, target, N, K, static_cast<double *>(work), s);
}

extern "C" cudaError_t dama_cuda_nn_soft_cross_entropy_backward(float *dlogits, const float *logits,
                                                                const float *target, int64_t N, int64_t K,
                                                                const float *dloss, cudaStream_t s) {
  return dama_cuda::soft_cross_entropy_backward(dlogits, logits, target, N, K, dloss, s);
}

extern "C" cudaError_t dama_cuda_nn_normpix_loss_forward(float *loss, float *loss_per_patch, const float *pred,
                                                         const float *target, const float *mask, int64_t N, int64_t L,
                                                         int64_t P, int norm_pix, float eps, void *work,
                                                         cudaStream_t s) {
  return dama_cuda::normpix_loss_forward(loss, loss_per_patch, pred, target, mask, N, L, P, norm_pix, eps,
                                         static_cast<double *>(work), s);
}

extern "C" cudaError_t dama_cuda_nn_normpix_loss_backward(float *dpred, const float *pred, const float *target,
                                                          const float *mask, int64_t N, int64_t L, int64_t P,
                                                          int norm_pix, float eps, const float *dloss, void *work,
                                                          cudaStream_t s) {
  return dama_cuda::normpix_loss_backward(dpred, pred, target, mask, N, L, P, norm_pix, eps, dloss,
                                          static_cast<double *>(work), s);
}

extern "C" cudaError_t dama_cuda_nn_adamw_step(float *params, const float *grads, float *m, float *v, int64_t n,
                                               float lr, float beta1, float beta2, float eps, float weight_decay,
                                               int64_t step, cudaStream_t s) {
  return dama_cuda::adamw_step(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, step, s);
}

extern "C" cudaError_t dama_cuda_nn_sgd_step(float *params, const float *grads, float *buf, int64_t n, float lr,
                                             float momentum, float dampening, float weight_decay, int nesterov,
                                             int64_t step, cudaStream_t s) {
  return dama_cuda::sgd_step(params, grads, buf, n, lr, momentum, dampening, weight_decay, nesterov, step, s);
}

extern "C" cudaError_t dama_cuda_nn_ema_update(float *ema, const float *p, int64_t n, float momentum,
                                               cudaStream_t s) {
  return dama_cuda::ema_update(ema, p, n, momentum, s);
}
