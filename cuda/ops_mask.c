/* ops_mask.c — the CUDA backend's mask ops (cuda_ops.h says how an op area is built); none is filled in yet. */
#include "cuda_ops.h"

void dama_cuda_fill_ops_mask(dama_backend_ops *ops) { (void)ops; }
