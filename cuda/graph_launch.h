/* graph_launch.h — the one kernel CUDA graphs need of their own (graph_kernels.cu), callable from C. */
#ifndef DAMA_CUDA_GRAPH_LAUNCH_H
#define DAMA_CUDA_GRAPH_LAUNCH_H

#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
/* dst[0] = a, dst[1] = b, queued on `stream` (values by argument: no host buffer to keep alive) */
cudaError_t dama_cuda_store_u64x2(uint64_t *dst, uint64_t a, uint64_t b, cudaStream_t stream);
#ifdef __cplusplus
}
#endif

#endif
