/* dama_cuda.h — what the program and the tests see of the CUDA backend (plain C, no CUDA header).
 *
 * The `dama` program calls dama_cuda_register() at start-up (lua/main.c) in a build with DAMA_CUDA=ON; from then on
 * `cuda:N` devices go through this backend's table (backend_cuda.c). Nothing touches the driver before the first
 * question about CUDA devices (dama_device_count(DAMA_CUDA), a cuda tensor, `dama --version`): the CUDA runtime is
 * linked statically and loads libcuda.so.1 itself, so the program starts on a machine without a GPU or a driver and
 * sees 0 devices, with the reason in dama_device_unavailable_reason(DAMA_CUDA). */
#ifndef DAMA_CUDA_H
#define DAMA_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "dama.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Register the CUDA backend's table for DAMA_CUDA (idempotent). */
void dama_cuda_register(void);

/* The caching allocator's counters for cuda:index, by name: dama_cuda_allocator_stat_names() is a comma-separated
 * list ("allocated,requested,reserved,..."), and dama_cuda_allocator_stats writes up to n of those values in that
 * order and returns how many it wrote (0 for a device that does not exist). */
const char *dama_cuda_allocator_stat_names(void);
int32_t dama_cuda_allocator_stats(int32_t index, int64_t *out, int32_t n);

/* A kernel of this build run on cuda:index on the device's stream: fills n words with a pattern from `seed` and
 * checks them on the host. DAMA_OK when the device ran code from this build (the right machine code or JIT-able
 * PTX is in the binary); the GPU tests call it. */
/* The dtype the CUDA GEMMs cast their inputs to (DAMA_F32: none; DAMA_BF16 / DAMA_F16: tensor-core GEMMs with FP32
 * accumulation and FP32 outputs), for every cuda device; dama.amp.set_precision sets it. */
dama_status dama_cuda_set_autocast(int32_t dtype);
int32_t dama_cuda_get_autocast(void);

dama_status dama_cuda_selftest(int32_t index, uint32_t n, uint32_t seed);

#ifdef __cplusplus
}
#endif

#endif
