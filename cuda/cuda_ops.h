/* cuda_ops.h — what the CUDA backend's op files share (C; the .c glue files include it, never a .cu).
 *
 * The table. backend_cuda.c owns the cuda `dama_backend_ops` table; each op area fills its own slots from its own
 * files at registration (dama_cuda_fill_ops_*), so an area is one .c glue file (tensor arguments, shapes, strides,
 * output allocation, error codes) plus a .cu launcher file (kernels from the headers in cuda/kernels/) behind a C header
 * (cuda/<area>_launch.h: extern "C" launchers taking device pointers, sizes and a cudaStream_t, returning the launch's
 * cudaError_t). A slot an area leaves NULL is refused by name by core/ ("<op>: not implemented on cuda:0 yet").
 *
 * The same .cu files build twice: by nvcc for the GPU, and by the host C++ compiler against tests/cuda_interp (the
 * interpreter build, program `dama_interp`), where every kernel runs on the CPU; so kernels stay inside the dialect
 * of tests/cuda_interp/README.md and launch through DAMA_LAUNCH.
 *
 * Ordering: everything for cuda:N runs on its one stream in issue order (api/core.h, dama_synchronize). The seam
 * calls set_device before each op, so an op's glue takes its stream from dama_cuda_stream(). A temporary buffer from
 * dama_cuda_scratch_alloc may be freed as soon as the kernels that use it are queued: the caching allocator hands a
 * freed block only to later work on the same stream. */
#ifndef DAMA_CUDA_OPS_H
#define DAMA_CUDA_OPS_H

#include "cuda_check.h"
#include "core/backend.h"

/* The current device of this thread (set by the seam's set_device; 0 before any) and its stream. */
int32_t dama_cuda_current_device(void);
dama_status dama_cuda_set_current(int32_t index);
cudaStream_t dama_cuda_stream(void);

/* Device memory for an op's temporaries on the current device, from its caching allocator (NULL and a dama_error
 * naming the op and the bytes on failure: check with DAMA_CUDA_SCRATCH). */
dama_status dama_cuda_scratch_alloc(const char *op, int64_t nbytes, void **out);
void dama_cuda_scratch_free(void *p, int64_t nbytes);

/* The dtype GEMM inputs are cast to (dama.amp.set_precision): DAMA_F32 (no cast), DAMA_BF16 or DAMA_F16. */
int32_t dama_cuda_autocast(void);

/* Return a dama_status when a launcher fails: its cudaError_t, named by the launcher's call text. */
#define DAMA_CUDA_LAUNCH_TRY(call) DAMA_CUDA_TRY(call)

/* Each op area fills its slots (cuda/ops_<area>.c). */
void dama_cuda_fill_ops_tensor(dama_backend_ops *ops); /* element-wise, where, masked_fill, fill, copy,
                                                        * count_nonfinite */
void dama_cuda_fill_ops_reduce(dama_backend_ops *ops); /* reduce, max_dim/min_dim, RNG fills (Philox) */
void dama_cuda_fill_ops_index(dama_backend_ops *ops);  /* sort/argsort/topk, gather/scatter/index_select, cat */
void dama_cuda_fill_ops_mask(dama_backend_ops *ops);   /* mask_* (random, adaptive, check, ids, gather, unshuffle) */
void dama_cuda_fill_ops_nn(dama_backend_ops *ops);     /* LayerNorm, activations, softmax, dropout, patchify,
                                                        * pos-embed, losses, optimizers, EMA */
void dama_cuda_fill_ops_gemm(dama_backend_ops *ops);   /* cuBLASLt: sgemm_strided_batched, matmul, linear,
                                                        * attention, patch_embed */

#endif
