/* dama.h — the public C API of the dama runtime.
 *
 * A tour:
 *   dama_tensor *x = NULL, *y = NULL;
 *   int64_t shape[2] = {3, 4};
 *   if (dama_zeros(&x, 2, shape, DAMA_F32, (dama_device){DAMA_CPU, 0}) != DAMA_OK)
 *     fprintf(stderr, "%s\n", dama_last_error());
 *   dama_unary(&y, DAMA_EXP, x);            // y = exp(x), a new tensor
 *   dama_tensor_release(x); dama_tensor_release(y);
 *
 * Every call returns a dama_status and never aborts; the message of the last failure is in
 * dama_last_error(). The declarations live in the runtime/api/ fragments, which contain no preprocessor lines so
 * that the Lua binding can hand them to LuaJIT's ffi.cdef unchanged (see lua/dama/ffi.lua).
 */
#ifndef DAMA_H
#define DAMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAMA_MAX_DIMS 8
#define DAMA_VERSION "0.1.0"

#include "api/core.h"
#include "api/ops.h"
#include "dama_api_extra.h" /* generated: every other fragment in runtime/api/ */

#ifdef __cplusplus
}
#endif
#endif
