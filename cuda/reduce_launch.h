/* reduce_launch.h — the reduction and RNG launchers (cuda/reduce_kernels.cu; kernels in kernels/reduce_dim.cuh and
 * kernels/philox.cuh) behind cuda/ops_reduce.c: C declarations over device pointers, each returning the launches'
 * cudaError_t, never synchronising, allocating nothing (a launcher that needs device workspace says how much first).
 *
 * A reduction is described as the CPU's ops_reduce.c views it: R output rows (the kept dims, in order) of L reduced
 * elements (the reduced dims, in order, so that index l of a row is the row-major index over the reduced dims: argmax
 * over all dims gives the flattened index). Both dim lists are given with sizes and element strides of the input
 * (any strides: transposed, sliced, expanded), size-1 dims dropped and adjacent dims that are contiguous merged. */
#ifndef DAMA_CUDA_REDUCE_LAUNCH_H
#define DAMA_CUDA_REDUCE_LAUNCH_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAMA_CUDA_RED_DIMS 8 /* DAMA_MAX_DIMS */

/* What is accumulated (the CPU's rstate fields): a float-kind input (f32, bf16, f16, f64) is read as double, an
 * integer one as int64. */
enum {
  DAMA_CUDA_RED_SUM_F = 0, /* double sum (sum, mean) */
  DAMA_CUDA_RED_SUM_I,     /* int64 sum, wrapping (sum, mean of integers) */
  DAMA_CUDA_RED_PROD_F,    /* double product */
  DAMA_CUDA_RED_PROD_I,    /* int64 product, wrapping */
  DAMA_CUDA_RED_VAR,       /* sums of (x - x0) and (x - x0)^2, x0 the row's first element (var, std) */
  DAMA_CUDA_RED_NORM1,     /* sum |x| */
  DAMA_CUDA_RED_NORM2,     /* sum x^2 */
  DAMA_CUDA_RED_NORM0,     /* count of x != 0 */
  DAMA_CUDA_RED_NORMP,     /* sum |x|^p */
  DAMA_CUDA_RED_NORMINF,   /* max |x|, in the CPU's order (its NaN rule is order-dependent) */
  DAMA_CUDA_RED_NORMNINF,  /* min |x|, likewise */
  DAMA_CUDA_RED_MAX,       /* the first maximum and its index; the first NaN wins (float kinds) */
  DAMA_CUDA_RED_MIN
};

/* How a row's state becomes its output. */
enum {
  DAMA_CUDA_FIN_VALUE = 0, /* the sum / product / extreme / inf-norm as it is */
  DAMA_CUDA_FIN_MEAN,      /* / L */
  DAMA_CUDA_FIN_VAR,       /* sum of squared deviations / max(L - correction, 0); NaN for L = 0 */
  DAMA_CUDA_FIN_STD,       /* its square root */
  DAMA_CUDA_FIN_SQRT,      /* 2-norm */
  DAMA_CUDA_FIN_ROOT,      /* p-norm: ^(1/p) */
  DAMA_CUDA_FIN_NONE       /* no values output (argmax/argmin: the index only) */
};

typedef struct dama_cuda_red {
  int32_t acc, fin;          /* DAMA_CUDA_RED_*, DAMA_CUDA_FIN_* */
  int32_t in_dtype;          /* dama_dtype of the input */
  int32_t out_dtype;         /* dama_dtype of the values output (unused for FIN_NONE) */
  int32_t nk, nr;            /* kept / reduced dims after merging (0 ..= DAMA_CUDA_RED_DIMS) */
  int32_t correction;        /* var/std */
  int32_t pad_;
  int64_t R, L;              /* rows (outputs) and reduced elements per row; R > 0 */
  double p;                  /* the norm order (NORMP) */
  int64_t ksize[DAMA_CUDA_RED_DIMS], kstride[DAMA_CUDA_RED_DIMS];
  int64_t rsize[DAMA_CUDA_RED_DIMS], rstride[DAMA_CUDA_RED_DIMS];
} dama_cuda_red;

/* Bytes of device workspace dama_cuda_reduce needs for r (0: none; then pass NULL). */
int64_t dama_cuda_reduce_workspace(const dama_cuda_red *r);
/* values[R] (out_dtype, contiguous; NULL for FIN_NONE) and/or indices[R] (int64; NULL unless MAX/MIN) from the input
 * whose element 0 is `in`. Deterministic: a fixed tree of partial results whose shape depends only on r, no atomics. */
cudaError_t dama_cuda_reduce(const dama_cuda_red *r, const void *in, void *values, int64_t *indices, void *work,
                             cudaStream_t s);

/* RNG fills: element i (row-major over shape) gets draw i of Philox(seed, counter hi 0, lo offset + i*per/4) as the
 * CPU's rng.c computes it, converted to dtype as the CPU's f64 -> dtype copy does, and is written at
 * sum(index_k * strides_k); where several elements share an address (stride 0), the last in row-major order is the
 * one kept, as the CPU's sequential copy leaves it. n = prod(shape) > 0. Inside a CUDA graph capture the generator is
 * read on the device: `state` = graph.h's {seed, offset} words (filled before each replay) and `offset` this call's
 * offset from them; otherwise state is NULL and seed/offset are the generator's. */
enum { DAMA_CUDA_RNG_UNIFORM = 0, DAMA_CUDA_RNG_NORMAL = 1, DAMA_CUDA_RNG_INT = 2 };
typedef struct dama_cuda_rng {
  int32_t kind, dtype, ndim, contiguous; /* contiguous: strides are row-major and no dim expanded */
  const uint64_t *state;                 /* device {seed, offset} or NULL */
  uint64_t seed, offset;
  int64_t n;
  double a, b; /* lo, hi (uniform, int) or mean, std (normal) */
  int64_t shape[DAMA_CUDA_RED_DIMS], strides[DAMA_CUDA_RED_DIMS];
} dama_cuda_rng;
/* Philox blocks a fill of g uses (the generator's offset advances by this much). */
int64_t dama_cuda_rng_blocks(const dama_cuda_rng *g);
cudaError_t dama_cuda_rng_fill(const dama_cuda_rng *g, void *out, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
