/* ops_nn.c — the CUDA backend's NN raw kernels (cuda_ops.h says how an op area is built): LayerNorm, GELU, ReLU,
 * softmax, dropout (float and byte masks), drop-path, patchify / unpatchify, the sin-cos position table, the losses
 * (squared error, smooth L1, cross-entropy, soft cross-entropy, norm-pix) and the optimizer steps (AdamW, SGD, EMA).
 *
 * Each slot has its CPU twin's semantics (runtime/cpu/nn_*.c): the same argument checks with the same messages, in
 * the same order, then the launchers of nn_launch.h on this device's stream. Overwrite or accumulate as the twin:
 * every backward adds into its input gradient. Losses write their value to device memory and read `dloss` from it;
 * nothing here waits for the device. Reductions have no atomics: per-block partial sums in a grid fixed by the sizes,
 * then one block adds them in order, so a shape gives the same bits on every run (the deterministic mode is the only
 * mode). Temporaries come from the caching allocator (dama_cuda_scratch_alloc) and are freed once the kernels that use
 * them are queued.
 *
 * One difference from the CPU, by necessity: cross-entropy's hard targets live on the device and are not read by the
 * host, so a target outside [0, K) is not refused with DAMA_ERR_INDEX; it makes the loss (and that row's gradient)
 * NaN. */
#include "cuda_ops.h"
#include "nn_launch.h"

#define CHECK_N(fn, n) DAMA_CHECK((n) > 0, DAMA_ERR_ARG, fn ": n must be positive, got %lld", (long long)(n))

/* Queue a launcher whose temporaries are `work` (`bytes` from dama_cuda_scratch_alloc, or NULL/0), give them back
 * (safe once queued: the allocator hands the block only to later work on this stream), and return the launch's
 * error naming the launcher. */
#define NN_LAUNCH(call, work, bytes)                                                        \
  do {                                                                                      \
    cudaError_t e_ = (call);                                                                \
    if (work) dama_cuda_scratch_free((work), (bytes));                                      \
    if (e_ != cudaSuccess) return dama_cuda_status(e_, #call, __FILE__, __LINE__);          \
  } while (0)

/* scratch of `bytes` (none when 0) for op */
static dama_status nn_scratch(const char *op, int64_t bytes, void **work) {
  *work = NULL;
  if (bytes <= 0) return DAMA_OK;
  return dama_cuda_scratch_alloc(op, bytes, work);
}

/* ---- LayerNorm (nn_norm.c) ---- */

static dama_status cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                          const float *bias, int64_t N, int64_t C, float eps) {
  DAMA_CHECK(N > 0 && C > 0, DAMA_ERR_ARG, "layernorm_forward: sizes must be positive, got N=%lld C=%lld",
             (long long)N, (long long)C);
  DAMA_CHECK(out && mean && rstd && inp, DAMA_ERR_ARG, "layernorm_forward: out, mean, rstd and inp must not be NULL");
  DAMA_CHECK(eps >= 0.0f, DAMA_ERR_ARG, "layernorm_forward: eps must be >= 0, got %g", (double)eps);
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_layernorm_forward(out, mean, rstd, inp, weight, bias, N, C, eps,
                                                      dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                           const float *inp, const float *weight, const float *mean, const float *rstd,
                                           int64_t N, int64_t C) {
  static const char op[] = "layernorm_backward";
  DAMA_CHECK(N > 0 && C > 0, DAMA_ERR_ARG, "layernorm_backward: sizes must be positive, got N=%lld C=%lld",
             (long long)N, (long long)C);
  DAMA_CHECK(dout && inp && mean && rstd, DAMA_ERR_ARG,
             "layernorm_backward: dout, inp, mean and rstd must not be NULL");
  const int64_t bytes = (dweight || dbias) ? dama_cuda_nn_layernorm_backward_workspace(N, C) : 0;
  void *work;
  DAMA_TRY(nn_scratch(op, bytes, &work));
  NN_LAUNCH(dama_cuda_nn_layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C, work,
                                            dama_cuda_stream()),
            work, bytes);
  return DAMA_OK;
}

/* ---- activations, softmax, dropout, drop-path (nn_act.c) ---- */

static dama_status cuda_gelu_forward(float *out, const float *inp, int64_t n) {
  CHECK_N("gelu_forward", n);
  DAMA_CHECK(out && inp, DAMA_ERR_ARG, "gelu_forward: out and inp must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_gelu_forward(out, inp, n, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n) {
  CHECK_N("gelu_backward", n);
  DAMA_CHECK(dinp && inp && dout, DAMA_ERR_ARG, "gelu_backward: dinp, inp and dout must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_gelu_backward(dinp, inp, dout, n, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_relu_forward(float *out, const float *inp, int64_t n) {
  CHECK_N("relu_forward", n);
  DAMA_CHECK(out && inp, DAMA_ERR_ARG, "relu_forward: out and inp must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_relu_forward(out, inp, n, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_relu_backward(float *dinp, const float *out, const float *dout, int64_t n) {
  CHECK_N("relu_backward", n);
  DAMA_CHECK(dinp && out && dout, DAMA_ERR_ARG, "relu_backward: dinp, out and dout must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_relu_backward(dinp, out, dout, n, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_softmax_forward(float *out, const float *inp, int64_t N, int64_t C) {
  DAMA_CHECK(N > 0 && C > 0, DAMA_ERR_ARG, "softmax_forward: sizes must be positive, got N=%lld C=%lld",
             (long long)N, (long long)C);
  DAMA_CHECK(out && inp, DAMA_ERR_ARG, "softmax_forward: out and inp must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_softmax_forward(out, inp, N, C, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_softmax_backward(float *dinp, const float *out, const float *dout, int64_t N, int64_t C) {
  DAMA_CHECK(N > 0 && C > 0, DAMA_ERR_ARG, "softmax_backward: sizes must be positive, got N=%lld C=%lld",
             (long long)N, (long long)C);
  DAMA_CHECK(dinp && out && dout, DAMA_ERR_ARG, "softmax_backward: dinp, out and dout must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_softmax_backward(dinp, out, dout, N, C, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_dropout_forward(float *out, const float *inp, const float *mask, float scale, int64_t n) {
  CHECK_N("dropout_forward", n);
  DAMA_CHECK(out && inp && mask, DAMA_ERR_ARG, "dropout_forward: out, inp and mask must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_dropout_forward(out, inp, mask, scale, n, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_dropout_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t n) {
  CHECK_N("dropout_backward", n);
  DAMA_CHECK(dinp && dout && mask, DAMA_ERR_ARG, "dropout_backward: dinp, dout and mask must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_dropout_backward(dinp, dout, mask, scale, n, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_dropout_u8_forward(float *out, const float *inp, const uint8_t *mask, float scale,
                                           int64_t n) {
  CHECK_N("dropout_u8_forward", n);
  DAMA_CHECK(out && inp && mask, DAMA_ERR_ARG, "dropout_u8_forward: out, inp and mask must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_dropout_u8_forward(out, inp, mask, scale, n, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_dropout_u8_backward(float *dinp, const float *dout, const uint8_t *mask, float scale,
                                            int64_t n) {
  CHECK_N("dropout_u8_backward", n);
  DAMA_CHECK(dinp && dout && mask, DAMA_ERR_ARG, "dropout_u8_backward: dinp, dout and mask must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_dropout_u8_backward(dinp, dout, mask, scale, n, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_drop_path_forward(float *out, const float *inp, const float *mask, float scale, int64_t N,
                                          int64_t M) {
  DAMA_CHECK(N > 0 && M > 0, DAMA_ERR_ARG, "drop_path_forward: sizes must be positive, got N=%lld M=%lld",
             (long long)N, (long long)M);
  DAMA_CHECK(out && inp && mask, DAMA_ERR_ARG, "drop_path_forward: out, inp and mask must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_drop_path_forward(out, inp, mask, scale, N, M, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_drop_path_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t N,
                                           int64_t M) {
  DAMA_CHECK(N > 0 && M > 0, DAMA_ERR_ARG, "drop_path_backward: sizes must be positive, got N=%lld M=%lld",
             (long long)N, (long long)M);
  DAMA_CHECK(dinp && dout && mask, DAMA_ERR_ARG, "drop_path_backward: dinp, dout and mask must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_drop_path_backward(dinp, dout, mask, scale, N, M, dama_cuda_stream()));
  return DAMA_OK;
}

/* ---- patches and the position table (nn_patch.c) ---- */

static dama_status check_img(const char *fn, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p) {
  DAMA_CHECK(N > 0 && C > 0 && H > 0 && W > 0 && p > 0, DAMA_ERR_ARG,
             "%s: sizes must be positive, got N=%lld C=%lld H=%lld W=%lld p=%lld", fn, (long long)N, (long long)C,
             (long long)H, (long long)W, (long long)p);
  DAMA_CHECK(H % p == 0 && W % p == 0, DAMA_ERR_ARG, "%s: H=%lld and W=%lld must be multiples of the patch size %lld",
             fn, (long long)H, (long long)W, (long long)p);
  return DAMA_OK;
}

static dama_status cuda_patchify(float *patches, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W,
                                 int64_t p) {
  DAMA_TRY(check_img("patchify", N, C, H, W, p));
  DAMA_CHECK(patches && imgs, DAMA_ERR_ARG, "patchify: patches and imgs must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_patchify(patches, imgs, N, C, H, W, p, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_unpatchify(float *imgs, const float *patches, int64_t N, int64_t C, int64_t H, int64_t W,
                                   int64_t p) {
  DAMA_TRY(check_img("unpatchify", N, C, H, W, p));
  DAMA_CHECK(patches && imgs, DAMA_ERR_ARG, "unpatchify: imgs and patches must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_unpatchify(imgs, patches, N, C, H, W, p, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_pos_embed_2d_sincos(float *out, int64_t D, int64_t grid_h, int64_t grid_w, int cls) {
  DAMA_CHECK(D > 0 && grid_h > 0 && grid_w > 0, DAMA_ERR_ARG,
             "pos_embed_2d_sincos: sizes must be positive, got D=%lld grid %lldx%lld", (long long)D,
             (long long)grid_h, (long long)grid_w);
  DAMA_CHECK(D % 4 == 0, DAMA_ERR_ARG, "pos_embed_2d_sincos: D=%lld must be a multiple of 4", (long long)D);
  DAMA_CHECK(out, DAMA_ERR_ARG, "pos_embed_2d_sincos: out must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_pos_embed_2d_sincos(out, D, grid_h, grid_w, cls, dama_cuda_stream()));
  return DAMA_OK;
}

/* ---- losses (nn_loss.c) ---- */

static dama_status cuda_sq_error_forward(float *loss, const float *pred, const float *target, int64_t n,
                                         int reduction) {
  static const char op[] = "sq_error_forward";
  CHECK_N("sq_error_forward", n);
  DAMA_CHECK(loss && pred && target, DAMA_ERR_ARG, "sq_error_forward: loss, pred and target must not be NULL");
  DAMA_CHECK(reduction == 0 || reduction == 1, DAMA_ERR_ARG,
             "sq_error_forward: reduction must be 0 (sum) or 1 (mean), got %d", reduction);
  const int64_t bytes = dama_cuda_nn_sq_error_forward_workspace(n);
  void *work;
  DAMA_TRY(nn_scratch(op, bytes, &work));
  NN_LAUNCH(dama_cuda_nn_sq_error_forward(loss, pred, target, n, reduction, work, dama_cuda_stream()), work, bytes);
  return DAMA_OK;
}

static dama_status cuda_sq_error_backward(float *dpred, float *dtarget, const float *pred, const float *target,
                                          int64_t n, int reduction, const float *dloss) {
  CHECK_N("sq_error_backward", n);
  DAMA_CHECK(pred && target, DAMA_ERR_ARG, "sq_error_backward: pred and target must not be NULL");
  DAMA_CHECK(reduction == 0 || reduction == 1, DAMA_ERR_ARG,
             "sq_error_backward: reduction must be 0 (sum) or 1 (mean), got %d", reduction);
  DAMA_CHECK(dloss, DAMA_ERR_ARG, "sq_error_backward: dloss must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_sq_error_backward(dpred, dtarget, pred, target, n, reduction, dloss,
                                                      dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status check_sl1(const char *fn, int64_t n, float beta, int reduction) {
  DAMA_CHECK(n > 0, DAMA_ERR_ARG, "%s: n must be positive, got %lld", fn, (long long)n);
  DAMA_CHECK(beta >= 0.0f, DAMA_ERR_ARG, "%s: beta must be >= 0, got %g", fn, (double)beta);
  DAMA_CHECK(reduction == 0 || reduction == 1, DAMA_ERR_ARG, "%s: reduction must be 0 (sum) or 1 (mean), got %d", fn,
             reduction);
  return DAMA_OK;
}

static dama_status cuda_smooth_l1_loss_forward(float *loss, const float *pred, const float *target, int64_t n,
                                               float beta, int reduction) {
  static const char op[] = "smooth_l1_loss_forward";
  DAMA_TRY(check_sl1(op, n, beta, reduction));
  DAMA_CHECK(loss && pred && target, DAMA_ERR_ARG, "smooth_l1_loss_forward: loss, pred and target must not be NULL");
  const int64_t bytes = dama_cuda_nn_smooth_l1_loss_forward_workspace(n);
  void *work;
  DAMA_TRY(nn_scratch(op, bytes, &work));
  NN_LAUNCH(dama_cuda_nn_smooth_l1_loss_forward(loss, pred, target, n, beta, reduction, work, dama_cuda_stream()),
            work, bytes);
  return DAMA_OK;
}

static dama_status cuda_smooth_l1_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target,
                                                int64_t n, float beta, int reduction, const float *dloss) {
  DAMA_TRY(check_sl1("smooth_l1_loss_backward", n, beta, reduction));
  DAMA_CHECK(pred && target, DAMA_ERR_ARG, "smooth_l1_loss_backward: pred and target must not be NULL");
  DAMA_CHECK(dloss, DAMA_ERR_ARG, "smooth_l1_loss_backward: dloss must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_smooth_l1_loss_backward(dpred, dtarget, pred, target, n, beta, reduction, dloss,
                                                            dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status check_ce(const char *fn, int64_t N, int64_t K) {
  DAMA_CHECK(N > 0 && K > 0, DAMA_ERR_ARG, "%s: sizes must be positive, got N=%lld K=%lld", fn, (long long)N,
             (long long)K);
  return DAMA_OK;
}

static dama_status cuda_cross_entropy_forward(float *loss, const float *logits, const int64_t *target, int64_t N,
                                              int64_t K, float label_smoothing) {
  static const char op[] = "cross_entropy_forward";
  DAMA_TRY(check_ce(op, N, K));
  DAMA_CHECK(loss && logits && target, DAMA_ERR_ARG, "cross_entropy_forward: loss, logits and target must not be NULL");
  DAMA_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f, DAMA_ERR_ARG,
             "cross_entropy_forward: label_smoothing must be in [0, 1], got %g", (double)label_smoothing);
  const int64_t bytes = dama_cuda_nn_cross_entropy_forward_workspace(N);
  void *work;
  DAMA_TRY(nn_scratch(op, bytes, &work));
  NN_LAUNCH(dama_cuda_nn_cross_entropy_forward(loss, logits, target, N, K, label_smoothing, work, dama_cuda_stream()),
            work, bytes);
  return DAMA_OK;
}

static dama_status cuda_cross_entropy_backward(float *dlogits, const float *logits, const int64_t *target, int64_t N,
                                               int64_t K, float label_smoothing, const float *dloss) {
  DAMA_TRY(check_ce("cross_entropy_backward", N, K));
  DAMA_CHECK(dlogits && logits && target, DAMA_ERR_ARG,
             "cross_entropy_backward: dlogits, logits and target must not be NULL");
  DAMA_CHECK(label_smoothing >= 0.0f && label_smoothing <= 1.0f, DAMA_ERR_ARG,
             "cross_entropy_backward: label_smoothing must be in [0, 1], got %g", (double)label_smoothing);
  DAMA_CHECK(dloss, DAMA_ERR_ARG, "cross_entropy_backward: dloss must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_cross_entropy_backward(dlogits, logits, target, N, K, label_smoothing, dloss,
                                                           dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_soft_cross_entropy_forward(float *loss, const float *logits, const float *target, int64_t N,
                                                   int64_t K) {
  static const char op[] = "soft_cross_entropy_forward";
  DAMA_TRY(check_ce(op, N, K));
  DAMA_CHECK(loss && logits && target, DAMA_ERR_ARG,
             "soft_cross_entropy_forward: loss, logits and target must not be NULL");
  const int64_t bytes = dama_cuda_nn_cross_entropy_forward_workspace(N);
  void *work;
  DAMA_TRY(nn_scratch(op, bytes, &work));
  NN_LAUNCH(dama_cuda_nn_soft_cross_entropy_forward(loss, logits, target, N, K, work, dama_cuda_stream()), work,
            bytes);
  return DAMA_OK;
}

static dama_status cuda_soft_cross_entropy_backward(float *dlogits, const float *logits, const float *target,
                                                    int64_t N, int64_t K, const float *dloss) {
  DAMA_TRY(check_ce("soft_cross_entropy_backward", N, K));
  DAMA_CHECK(dlogits && logits && target, DAMA_ERR_ARG,
             "soft_cross_entropy_backward: dlogits, logits and target must not be NULL");
  DAMA_CHECK(dloss, DAMA_ERR_ARG, "soft_cross_entropy_backward: dloss must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_soft_cross_entropy_backward(dlogits, logits, target, N, K, dloss,
                                                                dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status check_normpix(const char *fn, int64_t N, int64_t L, int64_t P, int norm_pix, float eps) {
  DAMA_CHECK(N > 0 && L > 0 && P > 0, DAMA_ERR_ARG, "%s: sizes must be positive, got N=%lld L=%lld P=%lld", fn,
             (long long)N, (long long)L, (long long)P);
  DAMA_CHECK(!norm_pix || P >= 2, DAMA_ERR_ARG, "%s: norm_pix needs P >= 2 (unbiased variance), got %lld", fn,
             (long long)P);
  DAMA_CHECK(eps >= 0.0f, DAMA_ERR_ARG, "%s: eps must be >= 0, got %g", fn, (double)eps);
  return DAMA_OK;
}

static dama_status cuda_normpix_loss_forward(float *loss, float *loss_per_patch, const float *pred,
                                             const float *target, const float *mask, int64_t N, int64_t L, int64_t P,
                                             int norm_pix, float eps) {
  static const char op[] = "normpix_loss_forward";
  DAMA_TRY(check_normpix(op, N, L, P, norm_pix, eps));
  DAMA_CHECK(loss && pred && target && mask, DAMA_ERR_ARG,
             "normpix_loss_forward: loss, pred, target and mask must not be NULL");
  const int64_t bytes = dama_cuda_nn_normpix_loss_forward_workspace(N, L);
  void *work;
  DAMA_TRY(nn_scratch(op, bytes, &work));
  NN_LAUNCH(dama_cuda_nn_normpix_loss_forward(loss, loss_per_patch, pred, target, mask, N, L, P, norm_pix, eps, work,
                                              dama_cuda_stream()),
            work, bytes);
  return DAMA_OK;
}

static dama_status cuda_normpix_loss_backward(float *dpred, const float *pred, const float *target, const float *mask,
                                              int64_t N, int64_t L, int64_t P, int norm_pix, float eps,
                                              const float *dloss) {
  static const char op[] = "normpix_loss_backward";
  DAMA_TRY(check_normpix(op, N, L, P, norm_pix, eps));
  DAMA_CHECK(dpred && pred && target && mask, DAMA_ERR_ARG,
             "normpix_loss_backward: dpred, pred, target and mask must not be NULL");
  DAMA_CHECK(dloss, DAMA_ERR_ARG, "normpix_loss_backward: dloss must not be NULL");
  const int64_t bytes = dama_cuda_nn_normpix_loss_backward_workspace();
  void *work;
  DAMA_TRY(nn_scratch(op, bytes, &work));
  NN_LAUNCH(dama_cuda_nn_normpix_loss_backward(dpred, pred, target, mask, N, L, P, norm_pix, eps, dloss, work,
                                               dama_cuda_stream()),
            work, bytes);
  return DAMA_OK;
}

/* ---- optimizers (nn_optim.c) ---- */

static dama_status cuda_adamw_step(float *params, const float *grads, float *m, float *v, int64_t n, float lr,
                                   float beta1, float beta2, float eps, float weight_decay, int64_t step) {
  CHECK_N("adamw_step", n);
  DAMA_CHECK(params && grads && m && v, DAMA_ERR_ARG, "adamw_step: params, grads, m and v must not be NULL");
  DAMA_CHECK(step >= 1, DAMA_ERR_ARG, "adamw_step: step must be >= 1, got %lld", (long long)step);
  DAMA_CHECK(beta1 >= 0.0f && beta1 < 1.0f && beta2 >= 0.0f && beta2 < 1.0f, DAMA_ERR_ARG,
             "adamw_step: betas must be in [0, 1), got (%g, %g)", (double)beta1, (double)beta2);
  DAMA_CHECK(lr >= 0.0f && eps >= 0.0f && weight_decay >= 0.0f, DAMA_ERR_ARG,
             "adamw_step: lr, eps and weight_decay must be >= 0, got %g, %g, %g", (double)lr, (double)eps,
             (double)weight_decay);
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_adamw_step(params, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, step,
                                               dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_sgd_step(float *params, const float *grads, float *buf, int64_t n, float lr, float momentum,
                                 float dampening, float weight_decay, int nesterov, int64_t step) {
  CHECK_N("sgd_step", n);
  DAMA_CHECK(params && grads, DAMA_ERR_ARG, "sgd_step: params and grads must not be NULL");
  DAMA_CHECK(momentum == 0.0f || buf, DAMA_ERR_ARG, "sgd_step: momentum %g needs a momentum buffer", (double)momentum);
  DAMA_CHECK(step >= 1, DAMA_ERR_ARG, "sgd_step: step must be >= 1, got %lld", (long long)step);
  DAMA_CHECK(!nesterov || (momentum > 0.0f && dampening == 0.0f), DAMA_ERR_ARG,
             "sgd_step: nesterov needs momentum > 0 and dampening 0");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_sgd_step(params, grads, buf, n, lr, momentum, dampening, weight_decay, nesterov,
                                             step, dama_cuda_stream()));
  return DAMA_OK;
}

static dama_status cuda_ema_update(float *ema, const float *p, int64_t n, float momentum) {
  CHECK_N("ema_update", n);
  DAMA_CHECK(ema && p, DAMA_ERR_ARG, "ema_update: ema and p must not be NULL");
  DAMA_CUDA_LAUNCH_TRY(dama_cuda_nn_ema_update(ema, p, n, momentum, dama_cuda_stream()));
  return DAMA_OK;
}

void dama_cuda_fill_ops_nn(dama_backend_ops *ops) {
  ops->layernorm_forward = cuda_layernorm_forward;
  ops->layernorm_backward = cuda_layernorm_backward;
  ops->gelu_forward = cuda_gelu_forward;
  ops->gelu_backward = cuda_gelu_backward;
  ops->relu_forward = cuda_relu_forward;
  ops->relu_backward = cuda_relu_backward;
  ops->softmax_forward = cuda_softmax_forward;
  ops->softmax_backward = cuda_softmax_backward;
  ops->dropout_forward = cuda_dropout_forward;
  ops->dropout_backward = cuda_dropout_backward;
  ops->dropout_u8_forward = cuda_dropout_u8_forward;
  ops->dropout_u8_backward = cuda_dropout_u8_backward;
  ops->drop_path_forward = cuda_drop_path_forward;
  ops->drop_path_backward = cuda_drop_path_backward;
  ops->patchify = cuda_patchify;
  ops->unpatchify = cuda_unpatchify;
  ops->pos_embed_2d_sincos = cuda_pos_embed_2d_sincos;
  ops->sq_error_forward = cuda_sq_error_forward;
  ops->sq_error_backward = cuda_sq_error_backward;
  ops->smooth_l1_loss_forward = cuda_smooth_l1_loss_forward;
  ops->smooth_l1_loss_backward = cuda_smooth_l1_loss_backward;
  ops->cross_entropy_forward = cuda_cross_entropy_forward;
  ops->cross_entropy_backward = cuda_cross_entropy_backward;
  ops->soft_cross_entropy_forward = cuda_soft_cross_entropy_forward;
  ops->soft_cross_entropy_backward = cuda_soft_cross_entropy_backward;
  ops->normpix_loss_forward = cuda_normpix_loss_forward;
  ops->normpix_loss_backward = cuda_normpix_loss_backward;
  ops->adamw_step = cuda_adamw_step;
  ops->sgd_step = cuda_sgd_step;
  ops->ema_update = cuda_ema_update;
}
