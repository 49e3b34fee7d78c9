/* ops_tensor.c — the CUDA backend's tensor ops (cuda_ops.h says how an op area is built); none is filled in yet. */
#include "cuda_ops.h"

void dama_cuda_fill_ops_tensor(dama_backend_ops *ops) { (void)ops; }
