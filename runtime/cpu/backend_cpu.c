/* The CPU backend: host memory from the tracked allocator, memcpy copies, and the CPU kernels (ops_*.c, nn_*.c,
 * mask.c, rng.c) as its table. */
#include "core/backend.h"
#include "cpu/cpu_ops.h"
#include "cpu/ops_internal.h"
#include <string.h>

static int32_t cpu_count(void) { return 1; }
static void *cpu_alloc(int32_t index, int64_t nbytes) { (void)index; return dama_alloc_bytes(nbytes); }
static void cpu_free(int32_t index, void *p, int64_t nbytes) { (void)index; dama_free_bytes(p, nbytes); }
static dama_status cpu_copy(int32_t index, void *dst, const void *src, int64_t nbytes) {
  (void)index;
  if (nbytes > 0) memcpy(dst, src, (size_t)nbytes);
  return DAMA_OK;
}
static dama_status cpu_sync(int32_t index) { (void)index; return DAMA_OK; }
static void *cpu_kernel_ptr(void *data) { return data; }
static dama_status cpu_memory_info(int32_t index, int64_t *cached, int64_t *total, int64_t *free_bytes) {
  (void)index;
  *cached = 0;
  dama_host_memory_info(total, free_bytes);
  return DAMA_OK;
}

/* The raw CPU loss backwards take dloss by value; the table's take it from (host-addressable) memory. */
static dama_status cpu_sq_error_backward(float *dpred, float *dtarget, const float *pred, const float *target,
                                         int64_t n, int reduction, const float *dloss) {
  return dama_sq_error_backward(dpred, dtarget, pred, target, n, reduction, *dloss);
}
static dama_status cpu_smooth_l1_loss_backward(float *dpred, float *dtarget, const float *pred, const float *target,
                                               int64_t n, float beta, int reduction, const float *dloss) {
  return dama_smooth_l1_loss_backward(dpred, dtarget, pred, target, n, beta, reduction, *dloss);
}
static dama_status cpu_cross_entropy_backward(float *dlogits, const float *logits, const int64_t *target, int64_t N,
                                              int64_t K, float label_smoothing, const float *dloss) {
  return dama_cross_entropy_backward(dlogits, logits, target, N, K, label_smoothing, *dloss);
}
static dama_status cpu_soft_cross_entropy_backward(float *dlogits, const float *logits, const float *target, int64_t N,
                                                   int64_t K, const float *dloss) {
  return dama_soft_cross_entropy_backward(dlogits, logits, target, N, K, *dloss);
}
static dama_status cpu_normpix_loss_backward(float *dpred, const float *pred, const float *target, const float *mask,
                                             int64_t N, int64_t L, int64_t P, int norm_pix, float eps,
                                             const float *dloss) {
  return dama_normpix_loss_backward(dpred, pred, target, mask, N, L, P, norm_pix, eps, *dloss);
}

const dama_backend_ops dama_cpu_ops = {
  .binary = dama_cpu_binary, .binary_ = dama_cpu_binary_, .binary_scalar = dama_cpu_binary_scalar,
  .binary_scalar_ = dama_cpu_binary_scalar_, .unary = dama_cpu_unary, .unary_ = dama_cpu_unary_,
  .clamp = dama_cpu_clamp, .clamp_ = dama_cpu_clamp_, .where = dama_cpu_where, .masked_fill_ = dama_cpu_masked_fill_,
  .fill_ = dama_cpu_fill_, .count_nonfinite = dama_cpu_count_nonfinite, .copy = dama_copy_kernel,
  .reduce = dama_cpu_reduce, .max_dim = dama_cpu_max_dim, .min_dim = dama_cpu_min_dim, .matmul = dama_cpu_matmul,
  .sort = dama_cpu_sort, .argsort = dama_cpu_argsort, .topk = dama_cpu_topk, .gather = dama_cpu_gather,
  .scatter_ = dama_cpu_scatter_, .index_select = dama_cpu_index_select, .cat = dama_cpu_cat,
  .uniform_ = dama_cpu_uniform_, .normal_ = dama_cpu_normal_, .randint_ = dama_cpu_randint_,

  .sgemm_strided_batched = dama_sgemm_strided_batched,
  .linear_forward = dama_linear_forward, .linear_backward = dama_linear_backward,
  .layernorm_forward = dama_layernorm_forward, .layernorm_backward = dama_layernorm_backward,
  .gelu_forward = dama_gelu_forward, .gelu_backward = dama_gelu_backward,
  .softmax_forward = dama_softmax_forward, .softmax_backward = dama_softmax_backward,
  .relu_forward = dama_relu_forward, .relu_backward = dama_relu_backward,
  .dropout_forward = dama_dropout_forward, .dropout_backward = dama_dropout_backward,
  .dropout_u8_forward = dama_dropout_u8_forward, .dropout_u8_backward = dama_dropout_u8_backward,
  .drop_path_forward = dama_drop_path_forward, .drop_path_backward = dama_drop_path_backward,
  .attention_forward = dama_attention_forward, .attention_backward = dama_attention_backward,
  .patchify = dama_patchify, .unpatchify = dama_unpatchify,
  .patch_embed_forward = dama_patch_embed_forward, .patch_embed_backward = dama_patch_embed_backward,
  .pos_embed_2d_sincos = dama_pos_embed_2d_sincos,
  .sq_error_forward = dama_sq_error_forward, .sq_error_backward = cpu_sq_error_backward,
  .smooth_l1_loss_forward = dama_smooth_l1_loss_forward, .smooth_l1_loss_backward = cpu_smooth_l1_loss_backward,
  .cross_entropy_forward = dama_cross_entropy_forward, .cross_entropy_backward = cpu_cross_entropy_backward,
  .soft_cross_entropy_forward = dama_soft_cross_entropy_forward,
  .soft_cross_entropy_backward = cpu_soft_cross_entropy_backward,
  .normpix_loss_forward = dama_normpix_loss_forward, .normpix_loss_backward = cpu_normpix_loss_backward,
  .adamw_step = dama_adamw_step, .sgd_step = dama_sgd_step, .ema_update = dama_ema_update,
  .mask_random = dama_mask_random, .mask_adaptive = dama_mask_adaptive, .mask_check = dama_mask_check,
  .mask_ids = dama_mask_ids, .mask_gather_forward = dama_mask_gather_forward,
  .mask_gather_backward = dama_mask_gather_backward, .mask_unshuffle_forward = dama_mask_unshuffle_forward,
  .mask_unshuffle_backward = dama_mask_unshuffle_backward,
};

const dama_backend dama_backend_cpu = {
  .name = "cpu", .type = DAMA_CPU, .host_visible = 1, .device_count = cpu_count,
  .alloc = cpu_alloc, .free = cpu_free, .copy_h2d = cpu_copy, .copy_d2h = cpu_copy, .copy_d2d = cpu_copy,
  .synchronize = cpu_sync, .kernel_ptr = cpu_kernel_ptr, .ops = &dama_cpu_ops, .memory_info = cpu_memory_info,
};
