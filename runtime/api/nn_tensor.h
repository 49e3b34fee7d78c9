/* dama tensor-level NN, loss, mask and optimizer kernels: THNN's shape (tensors, then sizes and options).
 * No preprocessor lines (read by ffi.cdef too).
 *
 * Each entry checks once that its tensors share one device, have the kernel's dtype (f32, or i64 for ids and
 * class targets), are contiguous and hold at least the elements the sizes need, then runs its device's kernel
 * (the raw-pointer functions of nn.h and mask.h are the CPU backend's). Arguments documented there as optional
 * may be NULL here too. Losses write a one-element tensor (no host read), and their backward takes the incoming
 * gradient as a one-element tensor `dloss`, so a training step needs no device-to-host copy. */

dama_status dama_nn_linear_forward(dama_tensor *out, const dama_tensor *inp, const dama_tensor *weight, const dama_tensor *bias, int64_t N, int64_t C, int64_t OC);
dama_status dama_nn_linear_backward(dama_tensor *dinp, dama_tensor *dweight, dama_tensor *dbias, const dama_tensor *dout, const dama_tensor *inp, const dama_tensor *weight, int64_t N, int64_t C, int64_t OC);
dama_status dama_nn_layernorm_forward(dama_tensor *out, dama_tensor *mean, dama_tensor *rstd, const dama_tensor *inp, const dama_tensor *weight, const dama_tensor *bias, int64_t N, int64_t C, float eps);
dama_status dama_nn_layernorm_backward(dama_tensor *dinp, dama_tensor *dweight, dama_tensor *dbias, const dama_tensor *dout, const dama_tensor *inp, const dama_tensor *weight, const dama_tensor *mean, const dama_tensor *rstd, int64_t N, int64_t C);
dama_status dama_nn_gelu_forward(dama_tensor *out, const dama_tensor *inp, int64_t n);
dama_status dama_nn_gelu_backward(dama_tensor *dinp, const dama_tensor *inp, const dama_tensor *dout, int64_t n);
dama_status dama_nn_relu_forward(dama_tensor *out, const dama_tensor *inp, int64_t n);
dama_status dama_nn_relu_backward(dama_tensor *dinp, const dama_tensor *out, const dama_tensor *dout, int64_t n);
dama_status dama_nn_softmax_forward(dama_tensor *out, const dama_tensor *inp, int64_t N, int64_t C);
dama_status dama_nn_softmax_backward(dama_tensor *dinp, const dama_tensor *out, const dama_tensor *dout, int64_t N, int64_t C);
dama_status dama_nn_dropout_forward(dama_tensor *out, const dama_tensor *inp, const dama_tensor *mask, float scale, int64_t n);
dama_status dama_nn_dropout_backward(dama_tensor *dinp, const dama_tensor *dout, const dama_tensor *mask, float scale, int64_t n);
dama_status dama_nn_drop_path_forward(dama_tensor *out, const dama_tensor *inp, const dama_tensor *mask, float scale, int64_t N, int64_t M);
dama_status dama_nn_drop_path_backward(dama_tensor *dinp, const dama_tensor *dout, const dama_tensor *mask, float scale, int64_t N, int64_t M);
dama_status dama_nn_attention_forward(dama_tensor *out, dama_tensor *att, const dama_tensor *qkv, int64_t B, int64_t T, int64_t C, int64_t NH, float scale);
dama_status dama_nn_attention_backward(dama_tensor *dqkv, const dama_tensor *dout, const dama_tensor *qkv, const dama_tensor *att, int64_t B, int64_t T, int64_t C, int64_t NH, float scale);
dama_status dama_nn_patchify(dama_tensor *patches, const dama_tensor *imgs, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p);
dama_status dama_nn_unpatchify(dama_tensor *imgs, const dama_tensor *patches, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p);
dama_status dama_nn_patch_embed_forward(dama_tensor *out, dama_tensor *col, const dama_tensor *imgs, const dama_tensor *weight, const dama_tensor *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, int64_t D);
dama_status dama_nn_patch_embed_backward(dama_tensor *dimgs, dama_tensor *dweight, dama_tensor *dbias, const dama_tensor *dout, const dama_tensor *col, const dama_tensor *weight, dama_tensor *scratch, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, int64_t D);
dama_status dama_nn_pos_embed_2d_sincos(dama_tensor *out, int64_t D, int64_t grid_h, int64_t grid_w, int cls);
dama_status dama_nn_sq_error_forward(dama_tensor *loss, const dama_tensor *pred, const dama_tensor *target, int64_t n, int reduction);
dama_status dama_nn_sq_error_backward(dama_tensor *dpred, dama_tensor *dtarget, const dama_tensor *pred, const dama_tensor *target, int64_t n, int reduction, const dama_tensor *dloss);
dama_status dama_nn_smooth_l1_loss_forward(dama_tensor *loss, const dama_tensor *pred, const dama_tensor *target, int64_t n, float beta, int reduction);
dama_status dama_nn_smooth_l1_loss_backward(dama_tensor *dpred, dama_tensor *dtarget, const dama_tensor *pred, const dama_tensor *target, int64_t n, float beta, int reduction, const dama_tensor *dloss);
dama_status dama_nn_cross_entropy_forward(dama_tensor *loss, const dama_tensor *logits, const dama_tensor *target, int64_t N, int64_t K, float label_smoothing);
dama_status dama_nn_cross_entropy_backward(dama_tensor *dlogits, const dama_tensor *logits, const dama_tensor *target, int64_t N, int64_t K, float label_smoothing, const dama_tensor *dloss);
dama_status dama_nn_soft_cross_entropy_forward(dama_tensor *loss, const dama_tensor *logits, const dama_tensor *target, int64_t N, int64_t K);
dama_status dama_nn_soft_cross_entropy_backward(dama_tensor *dlogits, const dama_tensor *logits, const dama_tensor *target, int64_t N, int64_t K, const dama_tensor *dloss);
dama_status dama_nn_normpix_loss_forward(dama_tensor *loss, dama_tensor *loss_per_patch, const dama_tensor *pred, const dama_tensor *target, const dama_tensor *mask, int64_t N, int64_t L, int64_t P, int norm_pix, float eps);
dama_status dama_nn_normpix_loss_backward(dama_tensor *dpred, const dama_tensor *pred, const dama_tensor *target, const dama_tensor *mask, int64_t N, int64_t L, int64_t P, int norm_pix, float eps, const dama_tensor *dloss);
dama_status dama_nn_mask_random(dama_tensor *mask, dama_tensor *ids_shuffle, dama_tensor *ids_restore, dama_tensor *ids_keep, const dama_tensor *noise, int64_t N, int64_t L, int64_t K);
dama_status dama_nn_mask_adaptive(dama_tensor *m2, dama_tensor *ids_shuffle2, dama_tensor *ids_restore2, dama_tensor *ids_keep2, const dama_tensor *m1, const dama_tensor *loss, int64_t N, int64_t L, double ratio, double overlap, int32_t mode);
dama_status dama_nn_mask_ids(dama_tensor *ids_shuffle, dama_tensor *ids_restore, dama_tensor *ids_keep, const dama_tensor *mask, int64_t N, int64_t L, int64_t K);
dama_status dama_nn_mask_gather_forward(dama_tensor *out, const dama_tensor *x, const dama_tensor *ids_keep, int64_t N, int64_t L, int64_t K, int64_t D);
dama_status dama_nn_mask_gather_backward(dama_tensor *dx, const dama_tensor *dout, const dama_tensor *ids_keep, int64_t N, int64_t L, int64_t K, int64_t D);
dama_status dama_nn_mask_unshuffle_forward(dama_tensor *out, const dama_tensor *tokens, const dama_tensor *mask_token, const dama_tensor *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D);
dama_status dama_nn_mask_unshuffle_backward(dama_tensor *dtokens, dama_tensor *dmask_token, const dama_tensor *dout, const dama_tensor *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D);
dama_status dama_nn_adamw_step(dama_tensor *params, const dama_tensor *grads, dama_tensor *m, dama_tensor *v, int64_t n, float lr, float beta1, float beta2, float eps, float weight_decay, int64_t step);
dama_status dama_nn_sgd_step(dama_tensor *params, const dama_tensor *grads, dama_tensor *buf, int64_t n, float lr, float momentum, float dampening, float weight_decay, int nesterov, int64_t step);
dama_status dama_nn_ema_update(dama_tensor *ema, const dama_tensor *p, int64_t n, float momentum);
