/* backend.h — the device seam: one table of function pointers per device type (after ggml's ggml_backend_i and
 * cutorch's THC layer). The runtime reaches a device's memory and kernels only through its table.
 *
 * Shape of the table:
 * - memory: alloc/free (a backend may cache; empty_cache and memory_info report and release its cache), copies
 *   host->device, device->host and device->device, synchronise, and `kernel_ptr`, the address the backend's own
 *   kernels dereference for a storage's data; optionally pinned host memory, an asynchronous host->device copy
 *   from it and events on the device's one queue (the ordering rules are written at dama_synchronize, core.h);
 * - tensor-level ops (dama_backend_ops, first block): the element-wise, reduction, index, sort, join, matmul and RNG
 *   entries take the public functions' arguments after dispatch has checked them for NULL and for one device; each
 *   allocates its outputs on that device;
 * - raw kernels (second block): the NN forward/backward pairs, losses, masking ops and optimizer updates, on device
 *   pointers (llm.c's shape); a loss backward reads its incoming gradient `dloss` from device memory too. The tensor-level entries of nn.h/mask.h (nn_tensor.c) check shapes and dtypes once,
 *   allocate, and call these.
 * The CPU backend (backend_cpu.c) fills the table with the CPU kernels; the `sim` test device (backend_sim.c)
 * uses the same kernels over memory host code cannot read; the CUDA backend (cuda/) registers its own table.
 * runtime/ includes no CUDA header. */
#ifndef DAMA_BACKEND_H
#define DAMA_BACKEND_H

#include "core/dama_internal.h"

typedef struct dama_backend_ops {
  /* ---- tensor level (ops.h, core.h) ---- */
  dama_status (*binary)(dama_tensor **out, dama_binop op, const dama_tensor *a, const dama_tensor *b);
  dama_status (*binary_)(dama_tensor *a, dama_binop op, const dama_tensor *b);
  dama_status (*binary_scalar)(dama_tensor **out, dama_binop op, const dama_tensor *a, double s, int32_t scalar_first);
  dama_status (*binary_scalar_)(dama_tensor *a, dama_binop op, double s);
  dama_status (*unary)(dama_tensor **out, dama_unop op, const dama_tensor *a);
  dama_status (*unary_)(dama_tensor *a, dama_unop op);
  dama_status (*clamp)(dama_tensor **out, const dama_tensor *a, double lo, double hi);
  dama_status (*clamp_)(dama_tensor *a, double lo, double hi);
  dama_status (*where)(dama_tensor **out, const dama_tensor *cond, const dama_tensor *a, const dama_tensor *b);
  dama_status (*masked_fill_)(dama_tensor *a, const dama_tensor *mask, double value);
  dama_status (*fill_)(dama_tensor *a, double value);
  dama_status (*count_nonfinite)(const dama_tensor *a, int64_t *count);
  /* dst = src (src already broadcast to dst's shape), converting dtype; no overlap */
  dama_status (*copy)(dama_tensor *dst, const dama_tensor *src);
  dama_status (*reduce)(dama_tensor **out, dama_redop op, const dama_tensor *a, int32_t ndims, const int32_t *dims,
                        int32_t keepdim, int32_t correction, double p);
  dama_status (*max_dim)(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t keepdim);
  dama_status (*min_dim)(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t keepdim);
  dama_status (*matmul)(dama_tensor **out, const dama_tensor *a, const dama_tensor *b);
  dama_status (*sort)(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                      int32_t descending, int32_t stable);
  dama_status (*argsort)(dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t descending, int32_t stable);
  dama_status (*topk)(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int64_t k, int32_t dim,
                      int32_t largest, int32_t sorted);
  dama_status (*gather)(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index);
  dama_status (*scatter_)(dama_tensor *a, int32_t dim, const dama_tensor *index, const dama_tensor *src, int32_t reduce);
  dama_status (*index_select)(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index);
  dama_status (*cat)(dama_tensor **out, int32_t n, dama_tensor *const *ts, int32_t dim);
  dama_status (*uniform_)(dama_tensor *t, double lo, double hi, dama_rng *rng);
  dama_status (*normal_)(dama_tensor *t, double mean, double std, dama_rng *rng);
  dama_status (*randint_)(dama_tensor *t, int64_t lo, int64_t hi, dama_rng *rng);

  /* ---- raw kernels on device pointers (nn.h, mask.h) ---- */
  dama_status (*sgemm_strided_batched)(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                       const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                                       int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c,
                                       int64_t batch);
  dama_status (*linear_forward)(float *out, const float *inp, const float *weight, const float *bias, int64_t N,
                                int64_t C, int64_t OC);
  dama_status (*linear_backward)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                 const float *weight, int64_t N, int64_t C, int64_t OC);
  dama_status (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                   const float *bias, int64_t N, int64_t C, float eps);
  dama_status (*layernorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                    const float *weight, const float *mean, const float *rstd, int64_t N, int64_t C);
  dama_status (*gelu_forward)(float *out, const float *inp, int64_t n);
  dama_status (*gelu_backward)(float *dinp, const float *inp, const float *dout, int64_t n);
  dama_status (*softmax_forward)(float *out, const float *inp, int64_t N, int64_t C);
  dama_status (*softmax_backward)(float *dinp, const float *out, const float *dout, int64_t N, int64_t C);
  dama_status (*relu_forward)(float *out, const float *inp, int64_t n);
  dama_status (*relu_backward)(float *dinp, const float *out, const float *dout, int64_t n);
  dama_status (*dropout_forward)(float *out, const float *inp, const float *mask, float scale, int64_t n);
  dama_status (*dropout_backward)(float *dinp, const float *dout, const float *mask, float scale, int64_t n);
  dama_status (*dropout_u8_forward)(float *out, const float *inp, const uint8_t *mask, float scale, int64_t n);
  dama_status (*dropout_u8_backward)(float *dinp, const float *dout, const uint8_t *mask, float scale, int64_t n);
  dama_status (*drop_path_forward)(float *out, const float *inp, const float *mask, float scale, int64_t N, int64_t M);
  dama_status (*drop_path_backward)(float *dinp, const float *dout, const float *mask, float scale, int64_t N,
                                    int64_t M);
  dama_status (*attention_forward)(float *out, float *att, const float *qkv, int64_t B, int64_t T, int64_t C,
                                   int64_t NH, float scale);
  dama_status (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *att, int64_t B,
                                    int64_t T, int64_t C, int64_t NH, float scale);
  dama_status (*patchify)(float *patches, const float *imgs, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p);
  dama_status (*unpatchify)(float *imgs, const float *patches, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p);
  dama_status (*patch_embed_forward)(float *out, float *col, const float *imgs, const float *weight,
                                     const float *bias, int64_t N, int64_t C, int64_t H, int64_t W, int64_t p,
                                     int64_t D);
  dama_status (*patch_embed_backward)(float *dimgs, float *dweight, float *dbias, const float *dout, const float *col,
                                      const float *weight, float *scratch, int64_t N, int64_t C, int64_t H, int64_t W,
                                      int64_t p, int64_t D);
  dama_status (*pos_embed_2d_sincos)(float *out, int64_t D, int64_t grid_h, int64_t grid_w, int cls);
  dama_status (*sq_error_forward)(float *loss, const float *pred, const float *target, int64_t n, int reduction);
  dama_status (*sq_error_backward)(float *dpred, float *dtarget, const float *pred, const float *target, int64_t n,
                                   int reduction, const float *dloss);
  dama_status (*smooth_l1_loss_forward)(float *loss, const float *pred, const float *target, int64_t n, float beta,
                                        int reduction);
  dama_status (*smooth_l1_loss_backward)(float *dpred, float *dtarget, const float *pred, const float *target,
                                         int64_t n, float beta, int reduction, const float *dloss);
  dama_status (*cross_entropy_forward)(float *loss, const float *logits, const int64_t *target, int64_t N, int64_t K,
                                       float label_smoothing);
  dama_status (*cross_entropy_backward)(float *dlogits, const float *logits, const int64_t *target, int64_t N,
                                        int64_t K, float label_smoothing, const float *dloss);
  dama_status (*soft_cross_entropy_forward)(float *loss, const float *logits, const float *target, int64_t N,
                                            int64_t K);
  dama_status (*soft_cross_entropy_backward)(float *dlogits, const float *logits, const float *target, int64_t N,
                                             int64_t K, const float *dloss);
  dama_status (*normpix_loss_forward)(float *loss, float *loss_per_patch, const float *pred, const float *target,
                                      const float *mask, int64_t N, int64_t L, int64_t P, int norm_pix, float eps);
  dama_status (*normpix_loss_backward)(float *dpred, const float *pred, const float *target, const float *mask,
                                       int64_t N, int64_t L, int64_t P, int norm_pix, float eps, const float *dloss);
  dama_status (*adamw_step)(float *params, const float *grads, float *m, float *v, int64_t n, float lr, float beta1,
                            float beta2, float eps, float weight_decay, int64_t step);
  dama_status (*sgd_step)(float *params, const float *grads, float *buf, int64_t n, float lr, float momentum,
                          float dampening, float weight_decay, int nesterov, int64_t step);
  dama_status (*ema_update)(float *ema, const float *p, int64_t n, float momentum);
  dama_status (*mask_random)(float *mask, int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep,
                             const float *noise, int64_t N, int64_t L, int64_t K);
  dama_status (*mask_adaptive)(float *m2, int64_t *ids_shuffle2, int64_t *ids_restore2, int64_t *ids_keep2,
                               const float *m1, const float *loss, int64_t N, int64_t L, double ratio, double overlap,
                               int32_t mode);
  dama_status (*mask_check)(const float *mask, int64_t N, int64_t L, int64_t *K);
  dama_status (*mask_ids)(int64_t *ids_shuffle, int64_t *ids_restore, int64_t *ids_keep, const float *mask, int64_t N,
                          int64_t L, int64_t K);
  dama_status (*mask_gather_forward)(float *out, const float *x, const int64_t *ids_keep, int64_t N, int64_t L,
                                     int64_t K, int64_t D);
  dama_status (*mask_gather_backward)(float *dx, const float *dout, const int64_t *ids_keep, int64_t N, int64_t L,
                                      int64_t K, int64_t D);
  dama_status (*mask_unshuffle_forward)(float *out, const float *tokens, const float *mask_token,
                                        const int64_t *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D);
  dama_status (*mask_unshuffle_backward)(float *dtokens, float *dmask_token, const float *dout,
                                         const int64_t *ids_restore, int64_t N, int64_t L, int64_t K, int64_t D);
} dama_backend_ops;

typedef struct dama_backend {
  const char *name;          /* "cpu", "sim", "cuda": the text of dama_device_str */
  int32_t type;              /* dama_device_type */
  int host_visible;          /* storage data is a host address that host code may read */
  int32_t (*device_count)(void);
  /* memory (NULL on failure; free takes what alloc returned) */
  void *(*alloc)(int32_t index, int64_t nbytes);
  void (*free)(int32_t index, void *p, int64_t nbytes);
  dama_status (*copy_h2d)(int32_t index, void *dst, const void *src, int64_t nbytes);
  dama_status (*copy_d2h)(int32_t index, void *dst, const void *src, int64_t nbytes);
  dama_status (*copy_d2d)(int32_t index, void *dst, const void *src, int64_t nbytes);
  dama_status (*synchronize)(int32_t index);
  /* the address this backend's kernels use for a storage's data pointer */
  void *(*kernel_ptr)(void *data);
  const dama_backend_ops *ops;

  /* ---- optional: NULL where the device has none (the fallback in brackets) ---- */
  /* pinned host memory that this device copies from asynchronously [ordinary host memory] */
  void *(*host_alloc)(int32_t index, int64_t nbytes);
  void (*host_free)(int32_t index, void *p, int64_t nbytes);
  /* host->device copy queued on the device's queue, returning before it runs; src is pinned [copy_h2d] */
  dama_status (*copy_h2d_async)(int32_t index, void *dst, const void *src, int64_t nbytes);
  /* events on the device's queue: record marks the work issued so far, wait blocks until it has run
   * [nothing is ever pending: create gives a dummy, record and wait do nothing] */
  dama_status (*event_create)(int32_t index, void **event);
  void (*event_destroy)(int32_t index, void *event);
  dama_status (*event_record)(int32_t index, void *event);
  dama_status (*event_wait)(int32_t index, void *event);
  /* the caching allocator: give cached blocks back [nothing cached] */
  dama_status (*empty_cache)(int32_t index);
  /* cached bytes, the device's total and free bytes [0, 0, 0] */
  dama_status (*memory_info)(int32_t index, int64_t *cached, int64_t *total, int64_t *free);
  /* one line on the backend's build and what it found (dama_backend_info) [its name] */
  const char *(*info)(void);
  /* why device_count() is 0, in the driver's words (dama_device_check's message) [nothing said] */
  const char *(*unavailable_reason)(void);
  /* name, memory and compute capability of a device index that exists [name, memory_info's total] */
  dama_status (*properties)(int32_t index, dama_device_props *out);
  /* make device `index` the one this thread's next ops run on: the raw kernels of the second block name no device,
   * so dama_dispatch (and the copy kernel's caller) call this first; it fails only when the device cannot be
   * reached [one device: nothing to do] */
  dama_status (*set_device)(int32_t index);
} dama_backend;

/* Register a backend for its type (the CPU and sim backends are built in; cuda/ registers at start-up). */
void dama_backend_register(const dama_backend *be);
/* The backend of a device type, or NULL if none is registered. */
const dama_backend *dama_backend_of_type(int32_t type);
/* The backend of a tensor's device (never NULL for a tensor that exists). */
const dama_backend *dama_backend_of(const dama_tensor *t);

/* Dispatch: the tensors of one op (NULLs are skipped) must share one device; `names` names them in errors
 * ("binary: tensor 'b' is on sim:0 but tensor 'a' is on cpu"). Sets *be to that device's backend. */
dama_status dama_dispatch(const char *op, int32_t n, const dama_tensor *const *ts, const char *const *names,
                          const dama_backend **be);
/* The CPU backend's kernels, and the device-independent halves (ops_internal.h) need a tensor's element 0 as
 * the address its backend's kernels use: storage data + offset, through kernel_ptr. */
void *dama_kernel_ptr(const dama_tensor *t);
/* The error for an op whose slot a backend's table leaves NULL (a backend still being written, as cuda/ is):
 * DAMA_ERR_DEVICE "<op>: not implemented on cuda:0 yet", naming the device of the first non-NULL tensor in ts. */
dama_status dama_op_unimplemented(const char *op, int32_t n, const dama_tensor *const *ts);
/* Return that error from the calling function unless be's table fills `slot`; every call through be->ops checks
 * first (dispatch.c, nn_tensor.c, tensor.c), so a NULL slot or a NULL table is refused, never called. */
#define DAMA_NEED_OP(be, slot, op, n, ts) \
  do { if (!(be)->ops || !(be)->ops->slot) return dama_op_unimplemented((op), (n), (ts)); } while (0)
/* Count one device-to-host read (dama_get, copies to the host) for dama_device_reads(). */
void dama_count_device_read(void);

/* The built-in tables. */
extern const dama_backend dama_backend_cpu;
extern const dama_backend dama_backend_sim;
extern const dama_backend_ops dama_cpu_ops;

#endif
