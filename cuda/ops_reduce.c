/* ops_reduce.c — the CUDA backend's reduction and RNG ops (cuda_ops.h says how an op area is built); none is filled
 * in yet. */
#include "cuda_ops.h"

void dama_cuda_fill_ops_reduce(dama_backend_ops *ops) { (void)ops; }
