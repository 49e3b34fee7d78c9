/* The CPU backend's tensor-level kernels (ops_*.c, rng.c): the bodies behind the public ops of ops.h and the
 * RNG fills of core.h. Public callers go through dispatch.c, which checks for one device and picks the table;
 * these run on cpu and sim tensors (memory reached through dama_kernel_ptr). */
#ifndef DAMA_CPU_OPS_H
#define DAMA_CPU_OPS_H

#include "core/dama_internal.h"

dama_status dama_cpu_binary(dama_tensor **out, dama_binop op, const dama_tensor *a, const dama_tensor *b);
dama_status dama_cpu_binary_(dama_tensor *a, dama_binop op, const dama_tensor *b);
dama_status dama_cpu_binary_scalar(dama_tensor **out, dama_binop op, const dama_tensor *a, double s,
                                   int32_t scalar_first);
dama_status dama_cpu_binary_scalar_(dama_tensor *a, dama_binop op, double s);
dama_status dama_cpu_unary(dama_tensor **out, dama_unop op, const dama_tensor *a);
dama_status dama_cpu_unary_(dama_tensor *a, dama_unop op);
dama_status dama_cpu_clamp(dama_tensor **out, const dama_tensor *a, double lo, double hi);
dama_status dama_cpu_clamp_(dama_tensor *a, double lo, double hi);
dama_status dama_cpu_where(dama_tensor **out, const dama_tensor *cond, const dama_tensor *a, const dama_tensor *b);
dama_status dama_cpu_masked_fill_(dama_tensor *a, const dama_tensor *mask, double value);
dama_status dama_cpu_fill_(dama_tensor *a, double value);
dama_status dama_cpu_count_nonfinite(const dama_tensor *a, int64_t *count);
dama_status dama_cpu_reduce(dama_tensor **out, dama_redop op, const dama_tensor *a, int32_t ndims,
                            const int32_t *dims, int32_t keepdim, int32_t correction, double p);
dama_status dama_cpu_max_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                             int32_t keepdim);
dama_status dama_cpu_min_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                             int32_t keepdim);
dama_status dama_cpu_matmul(dama_tensor **out, const dama_tensor *a, const dama_tensor *b);
dama_status dama_cpu_sort(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                          int32_t descending, int32_t stable);
dama_status dama_cpu_argsort(dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t descending,
                             int32_t stable);
dama_status dama_cpu_topk(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int64_t k, int32_t dim,
                          int32_t largest, int32_t sorted);
dama_status dama_cpu_gather(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index);
dama_status dama_cpu_scatter_(dama_tensor *a, int32_t dim, const dama_tensor *index, const dama_tensor *src,
                              int32_t reduce);
dama_status dama_cpu_index_select(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index);
dama_status dama_cpu_cat(dama_tensor **out, int32_t n, dama_tensor *const *ts, int32_t dim);
dama_status dama_cpu_uniform_(dama_tensor *t, double lo, double hi, dama_rng *rng);
dama_status dama_cpu_normal_(dama_tensor *t, double mean, double std, dama_rng *rng);
dama_status dama_cpu_randint_(dama_tensor *t, int64_t lo, int64_t hi, dama_rng *rng);

#endif
