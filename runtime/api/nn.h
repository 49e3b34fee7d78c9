/* dama nn kernels: raw-pointer forward/backward pairs for the ViT, its losses and its optimizers.
 *
 * These work on float32, contiguous, row-major host memory (pass dama_data_ptr() of contiguous CPU
 * tensors). The caller allocates every output and scratch buffer; kernels never allocate.
 * Conventions (llm.c style):
 * - Outputs first, then inputs, then sizes, then hyper-parameters. Shapes are in the comments.
 * - Every function returns dama_status: DAMA_ERR_ARG for a NULL required pointer, a non-positive
 *   size or a bad hyper-parameter, with a message naming the function and the argument.
 * - Every backward ACCUMULATES (+=) into each gradient it writes (zero the buffers first), and any
 *   gradient output documented as optional may be NULL to skip its work.
 * - Loss forwards write one float; loss backwards take `dloss`, the upstream gradient of that float.
 * - OpenMP parallelises over rows; BLAS is only called outside OpenMP regions (no oversubscription).
 */

/* ---- GEMM (row-major, through cblas; oneDNN when built with DAMA_USE_DNNL) ---- */
/* C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C. op(X) = X^T when trans_x != 0.
 * Storage: A is [M,lda>=K] (or [K,lda>=M] when trans_a), B is [K,ldb>=N] (or [N,ldb>=K]), C [M,ldc>=N]. */
dama_status dama_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                       const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* The same for `batch` independent products: A + i*stride_a, B + i*stride_b, C + i*stride_c. */
dama_status dama_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                       const float *A, int64_t lda, int64_t stride_a,
                                       const float *B, int64_t ldb, int64_t stride_b, float beta,
                                       float *C, int64_t ldc, int64_t stride_c, int64_t batch);
/* "openblas" or "onednn". */
const char *dama_gemm_backend(void);

/* ---- Linear (PyTorch weight layout [out, in]) ---- */
/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC]; bias may be NULL. */
dama_status dama_linear_forward(float *out, const float *inp, const float *weight, const float *bias,
                                int64_t N, int64_t C, int64_t OC);
/* dinp[N,C] += dout[N,OC] @ weight; dweight[OC,C] += dout^T @ inp; dbias[OC] += column sums of dout.
 * dinp, dweight, dbias each optional (NULL = skip); inp may be NULL when dweight is, weight when dinp is. */
dama_status dama_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, int64_t N, int64_t C, int64_t OC);

/* ---- LayerNorm over the last dim ---- */
/* out[N,C] = (inp - mean) * rstd * weight[C] + bias[C]; saves mean[N], rstd[N] = 1/sqrt(var_biased + eps).
 * weight / bias may be NULL (no affine: 1 and 0). */
dama_status dama_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                   const float *weight, const float *bias, int64_t N, int64_t C, float eps);
/* dinp[N,C] +=, dweight[C] +=, dbias[C] += (each optional); weight NULL = no affine. */
dama_status dama_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                    const float *inp, const float *weight, const float *mean, const float *rstd,
                                    int64_t N, int64_t C);

/* ---- element-wise activations over n floats (out may equal inp in the forwards) ---- */
/* GELU, exact erf form: 0.5 x (1 + erf(x / sqrt 2)). */
dama_status dama_gelu_forward(float *out, const float *inp, int64_t n);
/* dinp[n] += dout * GELU'(inp). */
dama_status dama_gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n);
dama_status dama_relu_forward(float *out, const float *inp, int64_t n);
/* dinp += dout where out > 0 (takes the forward output, so in-place ReLU works). */
dama_status dama_relu_backward(float *dinp, const float *out, const float *dout, int64_t n);
/* Softmax over the last dim: out[N,C]. */
dama_status dama_softmax_forward(float *out, const float *inp, int64_t N, int64_t C);
/* dinp[N,C] += out * (dout - sum_c(out * dout)), from the forward output. */
dama_status dama_softmax_backward(float *dinp, const float *out, const float *dout, int64_t N, int64_t C);

/* ---- dropout and drop-path with a caller-drawn keep mask (1 keep, 0 drop) ---- */
/* out[n] = inp * mask * scale (scale usually 1/(1-p)); mask is float [n]. out may equal inp. */
dama_status dama_dropout_forward(float *out, const float *inp, const float *mask, float scale, int64_t n);
/* dinp[n] += dout * mask * scale. */
dama_status dama_dropout_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t n);
/* The same with a uint8 mask [n] (nonzero = keep). */
dama_status dama_dropout_u8_forward(float *out, const float *inp, const uint8_t *mask, float scale, int64_t n);
dama_status dama_dropout_u8_backward(float *dinp, const float *dout, const uint8_t *mask, float scale, int64_t n);
/* Drop-path (stochastic depth): out[N,M] = inp[N,M] * mask[N] * scale, one keep value per sample. */
dama_status dama_drop_path_forward(float *out, const float *inp, const float *mask, float scale, int64_t N, int64_t M);
/* dinp[N,M] += dout * mask[N] * scale. */
dama_status dama_drop_path_backward(float *dinp, const float *dout, const float *mask, float scale, int64_t N, int64_t M);

/* ---- fused multi-head self-attention (timm layout) ---- */
/* qkv[B,T,3*C] viewed as [B,T,3,NH,hd] with hd = C/NH; out[B,T,C] = heads concatenated ([B,T,NH,hd]);
 * att[B,NH,T,T] = softmax(q k^T * scale) saved for backward. scale <= 0 means hd^-0.5.
 * T <= 8192 and hd <= 2048 (DAMA_ERR_UNSUPPORTED beyond); uses 128 KiB of stack per thread. */
dama_status dama_attention_forward(float *out, float *att, const float *qkv, int64_t B, int64_t T, int64_t C,
                                   int64_t NH, float scale);
/* dqkv[B,T,3*C] += gradient for q, k and v, from dout[B,T,C], the forward's qkv and att. */
dama_status dama_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att,
                                    int64_t B, int64_t T, int64_t C, int64_t NH, float scale);

/* ---- patches ---- */
/* imgs[N,C,H,W] -> patches[N, L, p*p*C], L = (H/p)*(W/p) row-major over the grid, element (i*p + j)*C + c
 * (MAE's patchify; the norm-pix target). H and W must be multiples of p. Overwrites patches. */
dama_status dama_patchify(float *patches, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p);
/* The inverse (and the gradient of patchify): overwrites imgs[N,C,H,W]. */
dama_status dama_unpatchify(float *imgs, const float *patches, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p);
/* Patch embedding = Conv2d(C -> D, kernel p, stride p): col[N*L, C*p*p] = im2col(imgs) in the conv weight's
 * (c, i, j) order (saved for backward), out[N, L, D] = col @ weight[D, C*p*p]^T + bias[D] (bias may be NULL). */
dama_status dama_patch_embed_forward(float *out, float *col, const float *imgs, const float *weight, const float *bias,
                                     int64_t N, int64_t C, int64_t H, int64_t W, int64_t p, int64_t D);
/* dweight[D, C*p*p] +=, dbias[D] +=, dimgs[N,C,H,W] += (each optional). dimgs needs weight and a scratch
 * of N*L*C*p*p floats (NULL otherwise). */
dama_status dama_patch_embed_backward(float *dimgs, float *dweight, float *dbias, const float *dout, const float *col,
                                      const float *weight, float *scratch, int64_t N, int64_t C, int64_t H, int64_t W,
                                      int64_t p, int64_t D);
/* Fixed 2-D sin-cos position embedding out[cls + gh*gw, D] (D % 4 == 0; cls != 0 prepends a zero row).
 * With F = D/4, w_k = 10000^(-k/F): dims [0,F) sin(col w_k), [F,2F) cos(col w_k), [2F,3F) sin(row w_k),
 * [3F,4F) cos(row w_k); token index = row*gw + col (MAE / timm convention). */
dama_status dama_pos_embed_2d_sincos(float *out, int64_t D, int64_t grid_h, int64_t grid_w, int cls);

/* ---- losses (sums accumulate in double) ---- */
/* loss = mean((pred - target)^2) over n. */
dama_status dama_mse_loss_forward(float *loss, const float *pred, const float *target, int64_t n);
/* dpred += dloss * 2 (pred - target) / n; dtarget += the negative (either may be NULL). */
dama_status dama_mse_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target, int64_t n,
                                   float dloss);
/* Squared error with a reduction: 0 = sum of (pred - target)^2 (the reference's loss_beta = 0 feature loss),
 * 1 = mean (= dama_mse_loss_forward). Backward: dpred += dloss * 2 (pred - target) [/ n]; dtarget the negative. */
dama_status dama_sq_error_forward(float *loss, const float *pred, const float *target, int64_t n, int reduction);
dama_status dama_sq_error_backward(float *dpred, float *dtarget, const float *pred, const float *target, int64_t n,
                                   int reduction, float dloss);
/* Smooth L1 (torch semantics): 0.5 d^2 / beta if |d| < beta else |d| - beta/2; beta = 0 is L1.
 * reduction: 0 = sum, 1 = mean. */
dama_status dama_smooth_l1_loss_forward(float *loss, const float *pred, const float *target, int64_t n, float beta,
                                        int reduction);
/* dpred += dloss * d loss / d pred; dtarget += the negative (either may be NULL). */
dama_status dama_smooth_l1_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target,
                                         int64_t n, float beta, int reduction, float dloss);
/* Cross-entropy of logits[N,K] against class indices target[N] (0 <= t < K) with label smoothing eps:
 * q = (1 - eps) onehot + eps/K, loss = mean_n -sum_k q_k log_softmax(logits)_k. */
dama_status dama_cross_entropy_forward(float *loss, const float *logits, const int64_t *target, int64_t N, int64_t K,
                                       float label_smoothing);
/* dlogits[N,K] += dloss / N * (softmax - q). */
dama_status dama_cross_entropy_backward(float *dlogits, const float *logits, const int64_t *target, int64_t N,
                                        int64_t K, float label_smoothing, float dloss);
/* Soft-target cross-entropy: loss = mean_n -sum_k target[n,k] log_softmax(logits)_k (target [N,K]). */
dama_status dama_soft_cross_entropy_forward(float *loss, const float *logits, const float *target, int64_t N, int64_t K);
/* dlogits += dloss / N * (softmax * sum_k target - target). */
dama_status dama_soft_cross_entropy_backward(float *dlogits, const float *logits, const float *target, int64_t N,
                                             int64_t K, float dloss);
/* MAE/DAMA pixel loss. pred, target [N,L,P] (target = patchify(imgs)), mask [N,L] (1 = removed).
 * norm_pix != 0: t = (t - mean) / sqrt(var_unbiased + eps) per patch (needs P >= 2; the reference uses eps 1e-6).
 * loss_per_patch[N,L] = mean_P (pred - t)^2 (may be NULL); loss = sum(lpp * mask) / sum(mask) (0 if sum(mask) == 0). */
dama_status dama_normpix_loss_forward(float *loss, float *loss_per_patch, const float *pred, const float *target,
                                      const float *mask, int64_t N, int64_t L, int64_t P, int norm_pix, float eps);
/* dpred[N,L,P] += dloss * mask / sum(mask) * 2 (pred - t) / P. No gradient to the target or through loss_per_patch. */
dama_status dama_normpix_loss_backward(float *dpred, const float *pred, const float *target, const float *mask,
                                       int64_t N, int64_t L, int64_t P, int norm_pix, float eps, float dloss);

/* ---- optimizers and flat-arena loops (n floats, OpenMP) ---- */
/* torch.optim.AdamW, one step (step = t >= 1 after increment): p *= 1 - lr*wd; m = b1 m + (1-b1) g;
 * v = b2 v + (1-b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 * Call once per parameter group range for per-group lr / weight decay. */
dama_status dama_adamw_step(float *params, const float *grads, float *m, float *v, int64_t n, float lr, float beta1,
                            float beta2, float eps, float weight_decay, int64_t step);
/* torch.optim.SGD: g += wd p; buf = g at step 1, else momentum buf + (1 - dampening) g;
 * g = nesterov ? g + momentum buf : buf; p -= lr g. buf may be NULL when momentum == 0. */
dama_status dama_sgd_step(float *params, const float *grads, float *buf, int64_t n, float lr, float momentum,
                          float dampening, float weight_decay, int nesterov, int64_t step);
/* *out = sqrt(sum x^2) (accumulated in double). */
dama_status dama_l2_norm(double *out, const float *x, int64_t n);
/* x *= s. */
dama_status dama_scale_inplace(float *x, int64_t n, float s);
/* ema = momentum * ema + (1 - momentum) * p. */
dama_status dama_ema_update(float *ema, const float *p, int64_t n, float momentum);
