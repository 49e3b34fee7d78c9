/* cuda_check.h — every CUDA runtime and cuBLASLt return code becomes a dama_status: the call's
 * text, the runtime's words and the error's name, with the file and line. Never abort, never exit: the REPL and a
 * training run's checkpoint-on-error must survive a failed call. For C (backend_cuda.c) and CUDA C++ (*.cu). */
#ifndef DAMA_CUDA_CHECK_H
#define DAMA_CUDA_CHECK_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "core/dama_internal.h"
#ifdef __cplusplus
}
#endif

static inline dama_status dama_cuda_status(cudaError_t e, const char *call, const char *file, int line) {
  /* a failed launch or a sticky error also sits in the runtime's last-error slot; read it so it is not reported twice */
  (void)cudaGetLastError();
  return dama_error(DAMA_ERR_DEVICE, "%s failed: %s (%s) at %s:%d", call, cudaGetErrorString(e), cudaGetErrorName(e),
                    file, line);
}

/* Return a dama_status from the calling function when a CUDA runtime call fails. */
#define DAMA_CUDA_TRY(call)                                                       \
  do {                                                                            \
    cudaError_t e_ = (call);                                                      \
    if (e_ != cudaSuccess) return dama_cuda_status(e_, #call, __FILE__, __LINE__); \
  } while (0)

#endif

/* The same for cuBLASLt calls (cuda/cublaslt.c): the call's text, cuBLASLt's words and the status's name. Defined
 * wherever cublasLt.h (the toolkit's, or the interpreter build's shim in tests/cuda_interp) was included before this
 * header, which it recognises by a macro both define (the toolkit's header has no include guard: #pragma once);
 * outside the include guard above, so a file that includes cublasLt.h after this header gets it at its second
 * include. cublasLtGetStatusString/Name are libcublasLt's own (cublasGetStatusString would pull in libcublas). */
#if defined(CUBLASLT_NUMERICAL_IMPL_FLAGS_FMA) && !defined(DAMA_CUBLAS_TRY)
static inline dama_status dama_cublas_status(cublasStatus_t s, const char *call, const char *file, int line) {
  return dama_error(DAMA_ERR_DEVICE, "%s failed: %s (%s, status %d) at %s:%d", call, cublasLtGetStatusString(s),
                    cublasLtGetStatusName(s), (int)s, file, line);
}
#define DAMA_CUBLAS_TRY(call)                                                                  \
  do {                                                                                         \
    cublasStatus_t s_ = (call);                                                                \
    if (s_ != CUBLAS_STATUS_SUCCESS) return dama_cublas_status(s_, #call, __FILE__, __LINE__); \
  } while (0)
#endif
