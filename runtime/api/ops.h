/* dama tensor math: element-wise with broadcasting, reductions, matmul, sort, indexing, joins.
 * No preprocessor lines (read by ffi.cdef too). All functions follow core.h's conventions.
 *
 * Result dtypes: arithmetic on two tensors promotes like torch (float beats int, wider beats narrower;
 * bf16+f16 -> f32); comparisons give u8 masks (1/0); integer division by `div` gives f32 ("true divide").
 * Float math on bf16/f16 is computed in f32 and rounded on store.
 */

typedef enum dama_binop {
  DAMA_ADD = 0, DAMA_SUB = 1, DAMA_MUL = 2, DAMA_DIV = 3, DAMA_POW = 4,
  DAMA_MAXIMUM = 5, DAMA_MINIMUM = 6,
  DAMA_EQ = 7, DAMA_NE = 8, DAMA_LT = 9, DAMA_LE = 10, DAMA_GT = 11, DAMA_GE = 12,
  DAMA_NUM_BINOPS = 13
} dama_binop;

typedef enum dama_unop {
  DAMA_NEG = 0, DAMA_EXP = 1, DAMA_LOG = 2, DAMA_SQRT = 3, DAMA_ABS = 4,
  DAMA_SIN = 5, DAMA_COS = 6, DAMA_TANH = 7, DAMA_SIGMOID = 8, DAMA_RELU = 9,
  DAMA_RSQRT = 10, DAMA_SQUARE = 11, DAMA_RECIPROCAL = 12, DAMA_SIGN = 13,
  DAMA_FLOOR = 14, DAMA_CEIL = 15, DAMA_ROUND = 16, DAMA_ERF = 17, DAMA_GELU = 18,
  DAMA_NUM_UNOPS = 19
} dama_unop;

const char *dama_binop_name(dama_binop op);
const char *dama_unop_name(dama_unop op);

/* out = a (op) b with broadcasting. */
dama_status dama_binary(dama_tensor **out, dama_binop op, const dama_tensor *a, const dama_tensor *b);
/* a = a (op) b in place; b must broadcast to a's shape; result cast to a's dtype. */
dama_status dama_binary_(dama_tensor *a, dama_binop op, const dama_tensor *b);
/* out = a (op) s, or s (op) a when scalar_first != 0. A float scalar on an int tensor gives f32. */
dama_status dama_binary_scalar(dama_tensor **out, dama_binop op, const dama_tensor *a, double s, int32_t scalar_first);
dama_status dama_binary_scalar_(dama_tensor *a, dama_binop op, double s);
dama_status dama_unary(dama_tensor **out, dama_unop op, const dama_tensor *a);
dama_status dama_unary_(dama_tensor *a, dama_unop op);
/* clamp to [lo, hi]; pass -INFINITY / INFINITY for one-sided. */
dama_status dama_clamp(dama_tensor **out, const dama_tensor *a, double lo, double hi);
dama_status dama_clamp_(dama_tensor *a, double lo, double hi);
/* out = cond ? a : b (cond any dtype, nonzero = true), all three broadcast. */
dama_status dama_where(dama_tensor **out, const dama_tensor *cond, const dama_tensor *a, const dama_tensor *b);
/* a[mask != 0] = value, mask broadcast to a. */
dama_status dama_masked_fill_(dama_tensor *a, const dama_tensor *mask, double value);
dama_status dama_fill_(dama_tensor *a, double value);
/* Count of NaN/Inf elements (float dtypes; 0 for ints). */
dama_status dama_count_nonfinite(const dama_tensor *a, int64_t *count);

typedef enum dama_redop {
  DAMA_RSUM = 0, DAMA_RMEAN = 1, DAMA_RVAR = 2, DAMA_RSTD = 3,
  DAMA_RMAX = 4, DAMA_RMIN = 5, DAMA_RARGMAX = 6, DAMA_RARGMIN = 7, DAMA_RNORM = 8, DAMA_RPROD = 9
} dama_redop;

/* Reduce over `ndims` dims (ndims == 0: over all dims). correction: 1 = unbiased var/std, 0 = biased.
 * p: the order for DAMA_RNORM (2 = Euclidean; 1; INFINITY). argmax/argmin take exactly one dim (or all
 * dims: index into the flattened tensor) and return i64. Sum/mean of ints give i64/f32. */
dama_status dama_reduce(dama_tensor **out, dama_redop op, const dama_tensor *a, int32_t ndims,
                        const int32_t *dims, int32_t keepdim, int32_t correction, double p);
/* max/min along one dim returning both values and i64 indices (first occurrence). */
dama_status dama_max_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t keepdim);
dama_status dama_min_dim(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t keepdim);

/* Matrix products through BLAS (f32/f64). 1-D, 2-D and batched (>2-D, batch dims broadcast) like torch.matmul. */
dama_status dama_matmul(dama_tensor **out, const dama_tensor *a, const dama_tensor *b);

/* Sort along dim. stable != 0 keeps equal elements in input order (always true for this CPU kernel).
 * indices are i64. argsort: indices only. topk: the k largest (largest != 0) or smallest, sorted. */
dama_status dama_sort(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int32_t dim,
                      int32_t descending, int32_t stable);
dama_status dama_argsort(dama_tensor **indices, const dama_tensor *a, int32_t dim, int32_t descending, int32_t stable);
dama_status dama_topk(dama_tensor **values, dama_tensor **indices, const dama_tensor *a, int64_t k, int32_t dim,
                      int32_t largest, int32_t sorted);

/* gather: out[i][j][k] = a[index[i][j][k]][j][k] for dim 0 (torch.gather semantics; index i64 or i32). */
dama_status dama_gather(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index);
/* scatter: a[index[i][j]][j] = src[i][j] (dim 0), in place; reduce 0 = assign, 1 = add. */
dama_status dama_scatter_(dama_tensor *a, int32_t dim, const dama_tensor *index, const dama_tensor *src, int32_t reduce);
dama_status dama_index_select(dama_tensor **out, const dama_tensor *a, int32_t dim, const dama_tensor *index);
dama_status dama_cat(dama_tensor **out, int32_t n, dama_tensor *const *ts, int32_t dim);
dama_status dama_stack(dama_tensor **out, int32_t n, dama_tensor *const *ts, int32_t dim);
