/* graph.c — CUDA graphs over a device's stream (graph.h says what is captured, the memory rules and the RNG). */
#include "graph.h"

#include "cuda_check.h"
#include "cuda_ops.h"
#include "graph_launch.h"

#include <stdlib.h>
#include <string.h>

#define MAX_RNG 8

enum { CAPTURING = 1, READY = 2, FAILED = 3 };

typedef struct graph_rng {
  dama_rng *rng;
  uint64_t start;       /* rng->offset when the capture first used it */
  uint64_t consumed;    /* what the captured work draws per replay */
  uint64_t *dev;        /* {seed, offset}, written before each replay */
} graph_rng;

struct dama_cuda_graph {
  int32_t index;
  int state;
  cudaStream_t stream;
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  void **kept;          /* blocks freed during the capture that were not the graph's own, and the RNG words */
  int64_t nkept, capkept;
  graph_rng rngs[MAX_RNG];
  int nrng;
  int64_t replays;
};

static uintptr_t pool_of(dama_cuda_graph *g) { return (uintptr_t)g; }

dama_status dama_cuda_graph_begin(int32_t index, dama_cuda_graph **out) {
  *out = NULL;
  dama_cuda_graph *g = calloc(1, sizeof *g);
  if (!g) return dama_error(DAMA_ERR_OOM, "cuda graph: out of host memory");
  g->index = index;
  dama_status s = dama_cuda_device_begin_capture(index, g, pool_of(g), &g->stream);
  if (s != DAMA_OK) { free(g); return s; }
  cudaError_t e = cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) {
    dama_cuda_device_end_capture(index);
    free(g);
    return dama_cuda_status(e, "cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed)", __FILE__, __LINE__);
  }
  g->state = CAPTURING;
  *out = g;
  return DAMA_OK;
}

dama_status dama_cuda_graph_end(dama_cuda_graph *g, int ok) {
  if (!g || g->state != CAPTURING) return dama_error(DAMA_ERR_ARG, "cuda graph: end without a capture running");
  dama_cuda_device_end_capture(g->index);
  /* the capture ran nothing: give the generators back what it drew, each replay draws it */
  for (int i = 0; i < g->nrng; i++) {
    g->rngs[i].consumed = g->rngs[i].rng->offset - g->rngs[i].start;
    g->rngs[i].rng->offset = g->rngs[i].start;
  }
  cudaGraph_t graph = NULL;
  cudaError_t e = cudaStreamEndCapture(g->stream, &graph);
  g->state = FAILED;
  if (e != cudaSuccess) return dama_cuda_status(e, "cudaStreamEndCapture", __FILE__, __LINE__);
  g->graph = graph;
  if (!ok) return DAMA_OK;
  DAMA_CUDA_TRY(cudaGraphInstantiate(&g->exec, g->graph, 0));
  g->state = READY;
  return DAMA_OK;
}

dama_status dama_cuda_graph_replay(dama_cuda_graph *g) {
  if (!g) return dama_error(DAMA_ERR_ARG, "cuda graph: replay of NULL");
  if (g->state != READY)
    return dama_error(DAMA_ERR_ARG, "cuda graph: replay of a graph whose capture %s",
                      g->state == CAPTURING ? "has not ended" : "failed");
  DAMA_TRY(dama_cuda_set_current(g->index));
  for (int i = 0; i < g->nrng; i++) {
    graph_rng *r = &g->rngs[i];
    DAMA_CUDA_LAUNCH_TRY(dama_cuda_store_u64x2(r->dev, r->rng->seed, r->rng->offset, g->stream));
    r->rng->offset += r->consumed;
  }
  DAMA_CUDA_TRY(cudaGraphLaunch(g->exec, g->stream));
  g->replays++;
  return DAMA_OK;
}

void dama_cuda_graph_destroy(dama_cuda_graph *g) {
  if (!g) return;
  if (g->state == CAPTURING) (void)dama_cuda_graph_end(g, 0);
  if (g->exec) (void)cudaGraphExecDestroy(g->exec);
  if (g->graph) (void)cudaGraphDestroy(g->graph);
  dama_cuda_device_release_pool(g->index, pool_of(g), g->kept, g->nkept);
  free(g->kept);
  free(g);
}

void dama_cuda_graph_info(const dama_cuda_graph *g, int64_t *nodes, int64_t *replays) {
  size_t n = 0;
  if (g && g->graph && cudaGraphGetNodes(g->graph, NULL, &n) != cudaSuccess) {
    (void)cudaGetLastError();
    n = 0;
  }
  if (nodes) *nodes = (int64_t)n;
  if (replays) *replays = g ? g->replays : 0;
}

int dama_cuda_graph_keep(dama_cuda_graph *g, void *p) {
  if (g->nkept == g->capkept) {
    int64_t cap = g->capkept ? 2 * g->capkept : 64;
    void **k = realloc(g->kept, (size_t)cap * sizeof *k);
    if (!k) return 0;   /* no host memory to remember it: free it now (a later replay may then see it reused) */
    g->kept = k;
    g->capkept = cap;
  }
  g->kept[g->nkept++] = p;
  return 1;
}

dama_status dama_cuda_graph_rng(const dama_rng *rng, const uint64_t **dev, uint64_t *delta) {
  *dev = NULL;
  *delta = 0;
  dama_cuda_graph *g = dama_cuda_device_capture(dama_cuda_current_device());
  if (!g) return DAMA_OK;
  int i = 0;
  while (i < g->nrng && g->rngs[i].rng != rng) i++;
  if (i == g->nrng) {
    if (g->nrng == MAX_RNG)
      return dama_error(DAMA_ERR_ARG, "cuda graph: more than %d random generators used in one capture", MAX_RNG);
    void *words = NULL;
    DAMA_TRY(dama_cuda_scratch_alloc("cuda graph (RNG state)", 2 * sizeof(uint64_t), &words));
    if (!dama_cuda_graph_keep(g, words)) {
      dama_cuda_scratch_free(words, 2 * sizeof(uint64_t));
      return dama_error(DAMA_ERR_OOM, "cuda graph: out of host memory");
    }
    g->rngs[i] = (graph_rng){(dama_rng *)rng, rng->offset, 0, words};
    g->nrng++;
  }
  *dev = g->rngs[i].dev;
  *delta = rng->offset - g->rngs[i].start;
  return DAMA_OK;
}
