/* Argument checks shared by the tensor-level kernel entries (nn_tensor.c). */
#ifndef DAMA_NN_TENSOR_ARGS_H
#define DAMA_NN_TENSOR_ARGS_H

#include "core/backend.h"

/* One device for every non-NULL tensor (at least one must be given). */
dama_status nn_dispatch(const char *op, int32_t n, const dama_tensor *const *ts, const char *const *names,
                        const dama_backend **be);
/* t (NULL allowed when optional) as a kernel pointer: dtype, contiguous, and at least prod(dims) elements
 * (every dim >= 0; the product must not overflow). A NULL t gives *ptr = NULL. */
dama_status nn_arg(const char *op, const char *name, const dama_tensor *t, dama_dtype dtype, int32_t ndims,
                   const int64_t *dims, int optional, void **ptr);

#endif
