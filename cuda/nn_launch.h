/* nn_launch.h — the NN area's launchers (cuda/nn_kernels.cu, cuda/nn_loss_optim.cu) for its glue, cuda/ops_nn.c:
 * device pointers and sizes the glue has checked, device workspace where named (its size from the *_workspace
 * function, 0 = none, then pass NULL), the stream; each returns the launches' cudaError_t and never synchronises. */
#ifndef DAMA_CUDA_NN_LAUNCH_H
#define DAMA_CUDA_NN_LAUNCH_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* nn_kernels.cu (activations, normalisation, dropout: FP contraction as runtime/cpu/nn_act.c, nn_norm.c) */
cudaError_t dama_cuda_nn_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                           const float *bias, int64_t N, int64_t C, float eps, cudaStream_t s);
int64_t dama_cuda_nn_layernorm_backward_workspace(int64_t N, int64_t C); /* bytes */
cudaError_t dama_cuda_nn_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                            const float *inp, const float *weight, const float *mean,
                                            const float *rstd, int64_t N, int64_t C, void *work, cudaStream_t s);
cudaError_t dama_cuda_nn_gelu_forward(float *out, const float *inp, int64_t n, cudaStream_t s);
cudaError_t dama_cuda_nn_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n, cudaStream_t s);
cudaError_t dama_cuda_nn_relu_forward(float *out, const float *inp, int64_t n, cudaStream_t s);
cudaError_t dama_cuda_nn_relu_backward(float *dinp, const float *out, const float *dout, int64_t n, cudaStream_t s);
cudaError_t dama_cuda_nn_softmax_forward(float *out, const float *inp, int64_t N, int64_t C, cudaStream_t s);
cudaError_t dama_cuda_nn_softmax_backward(float *dinp, const float *out, const float *dout, int64_t N, int64_t C,
                                          cudaStream_t s);
cudaError_t dama_cuda_nn_dropout_forward(float *out, const float *inp, const float *mask, float scale, int64_t n,
                                         cudaStream_t s);
cudaError_t dama_cuda_nn_dropout_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t n,
                                          cudaStream_t s);
cudaError_t dama_cuda_nn_dropout_u8_forward(float *out, const float *inp, const uint8_t *mask, float scale, int64_t n,
                                            cudaStream_t s);
cudaError_t dama_cuda_nn_dropout_u8_backward(float *dinp, const float *dout, const uint8_t *mask, float scale,
                                             int64_t n, cudaStream_t s);
cudaError_t dama_cuda_nn_drop_path_forward(float *out, const float *inp, const float *mask, float scale, int64_t N,
                                           int64_t M, cudaStream_t s);
cudaError_t dama_cuda_nn_drop_path_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t N,
                                            int64_t M, cudaStream_t s);

/* nn_loss_optim.cu (losses, patches, optimizers: no FP contraction, as nn_loss.c, nn_patch.c, nn_optim.c) */
cudaError_t dama_cuda_nn_patchify(float *patches, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W,
                                  int64_t p, cudaStream_t s);
cudaError_t dama_cuda_nn_unpatchify(float *imgs, const float *patches, int64_t N, int64_t C, int64_t H, int64_t W,
                                    int64_t p, cudaStream_t s);
cudaError_t dama_cuda_nn_pos_embed_2d_sincos(float *out, int64_t D, int64_t grid_h, int64_t grid_w, int cls,
                                             cudaStream_t s);
/* the forwards' workspace in bytes (per-block partial sums; 0 when one block writes the loss) */
int64_t dama_cuda_nn_sq_error_forward_workspace(int64_t n);
int64_t dama_cuda_nn_smooth_l1_loss_forward_workspace(int64_t n);
int64_t dama_cuda_nn_cross_entropy_forward_workspace(int64_t N); /* also soft_cross_entropy */
int64_t dama_cuda_nn_normpix_loss_forward_workspace(int64_t N, int64_t L);
int64_t dama_cuda_nn_normpix_loss_backward_workspace(void);
cudaError_t dama_cuda_nn_sq_error_forward(float *loss, const float *pred, const float *target, int64_t n,
                                          int reduction, void *work, cudaStream_t s);
cudaError_t dama_cuda_nn_sq_error_backward(float *dpred, float *dtarget, const float *pred, const float *target,
                                           int64_t n, int reduction, const float *dloss, cudaStream_t s);
cudaError_t dama_cuda_nn_smooth_l1_loss_forward(float *loss, const float *pred, const float *target, int64_t n,
                                                float beta, int reduction, void *work, cudaStream_t s);
cudaError_t dama_cuda_nn_smooth_l1_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target,
                                                 int64_t n, float beta, int reduction, const float *dloss,
                                                 cudaStream_t s);
cudaError_t dama_cuda_nn_cross_entropy_forward(float *loss, const float *logits, const int64_t *target, int64_t N,
                                               int64_t K, float label_smoothing, void *work, cudaStream_t s);
cudaError_t dama_cuda_nn_cross_entropy_backward(float *dlogits, const float *logits, const int64_t *target, int64_t N,
                                                int64_t K, float label_smoothing, const float *dloss, cudaStream_t s);
cudaError_t dama_cuda_nn_soft_cross_entropy_forward(float *loss, const float *logits, const float *target, int64_t N,
                                                    int64_t K, void *work, cudaStream_t s);
cudaError_t dama_cuda_nn_soft_cross_entropy_backward(float *dlogits, const float *logits, const float *target,
                                                     int64_t N, int64_t K, const float *dloss, cudaStream_t s);
cudaError_t dama_cuda_nn_normpix_loss_forward(float *loss, float *loss_per_patch, const float *pred,
                                              const float *target, const float *mask, int64_t N, int64_t L, int64_t P,
                                              int norm_pix, float eps, void *work, cudaStream_t s);
cudaError_t dama_cuda_nn_normpix_loss_backward(float *dpred, const float *pred, const float *target, const float *mask,
                                               int64_t N, int64_t L, int64_t P, int norm_pix, float eps,
                                               const float *dloss, void *work, cudaStream_t s);
cudaError_t dama_cuda_nn_adamw_step(float *params, const float *grads, float *m, float *v, int64_t n, float lr,
                                    float beta1, float beta2, float eps, float weight_decay, int64_t step,
                                    cudaStream_t s);
cudaError_t dama_cuda_nn_sgd_step(float *params, const float *grads, float *buf, int64_t n, float lr, float momentum,
                                  float dampening, float weight_decay, int nesterov, int64_t step, cudaStream_t s);
cudaError_t dama_cuda_nn_ema_update(float *ema, const float *p, int64_t n, float momentum, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
