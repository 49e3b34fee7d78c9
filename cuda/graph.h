/* graph.h — CUDA graphs: the work issued on a device's stream between begin and end is captured once (nothing
 * runs then) and replayed as one launch; Lua's dama.cuda.graph wraps it. Shapes, pointers and kernel arguments are
 * fixed at capture, so a replay redoes exactly the captured work on whatever the captured tensors hold then.
 *
 * Memory (PyTorch's private graph pools): allocations made while capturing come from the graph's own allocator key,
 * so replays find their temporaries where the capture put them and nothing outside the graph is ever handed that
 * memory; a block allocated before the capture and freed during it is kept until the graph is destroyed (captured
 * kernels still use it at every replay). Host waits and reads of device memory during a capture are refused by name
 * (backend_cuda.c), as CUDA would invalidate the capture.
 *
 * Random numbers: an RNG op captured in a graph must not replay the same numbers. While capturing, the RNG glue asks
 * dama_cuda_graph_rng for a device word pair {seed, offset} and its call's offset relative to the capture's start;
 * each replay first stores the generator's current seed and offset there, then advances the generator by what the
 * capture consumed, so k replays draw exactly what k eager runs would. */
#ifndef DAMA_CUDA_GRAPH_H
#define DAMA_CUDA_GRAPH_H

#include <stdint.h>
#include <cuda_runtime_api.h>

#include "core/dama_internal.h"

typedef struct dama_cuda_graph dama_cuda_graph;

/* Start capturing cuda:index's stream into a new graph (Relaxed mode: cudaMalloc stays allowed for new pool
 * segments). */
dama_status dama_cuda_graph_begin(int32_t index, dama_cuda_graph **out);
/* Stop capturing and instantiate. After a failure inside the capture (an error in the captured function), pass
 * ok = 0: the capture is ended and the graph stays unusable (replay refuses it); destroy it as usual. */
dama_status dama_cuda_graph_end(dama_cuda_graph *g, int ok);
/* Queue one replay on the device's stream (returns before it runs). */
dama_status dama_cuda_graph_replay(dama_cuda_graph *g);
/* Free the graph, its kept blocks and its pool's free segments (blocks of the pool still in use stay theirs). */
void dama_cuda_graph_destroy(dama_cuda_graph *g);
/* Kernels captured, copies captured, replays run (for tests and logs). */
void dama_cuda_graph_info(const dama_cuda_graph *g, int64_t *nodes, int64_t *replays);

/* For the RNG ops while capturing on the current device: *dev = the device words {seed, offset} that each replay
 * fills, *delta = this call's offset from the capture's first use of rng. NULL *dev when nothing captures. */
dama_status dama_cuda_graph_rng(const dama_rng *rng, const uint64_t **dev, uint64_t *delta);

/* backend_cuda.c's side: keep a block freed during the capture (1 if kept), and the device hooks */
int dama_cuda_graph_keep(dama_cuda_graph *g, void *p);
dama_status dama_cuda_device_begin_capture(int32_t index, dama_cuda_graph *g, uintptr_t pool, cudaStream_t *stream);
void dama_cuda_device_end_capture(int32_t index);
dama_status dama_cuda_device_stream(int32_t index, cudaStream_t *stream);
void dama_cuda_device_release_pool(int32_t index, uintptr_t pool, void *const *kept, int64_t nkept);
dama_cuda_graph *dama_cuda_device_capture(int32_t index);

#endif
