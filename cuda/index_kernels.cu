/* index_kernels.cu — the index area's launchers (index_launch.h) over cuda/kernels/sort.cuh and index.cuh. */
#include "kernels/index.cuh"
#include "kernels/sort.cuh"

#include "index_launch.h"

using namespace dama_cuda;

static tensor_desc desc_of(const dama_cuda_tdesc *t) {
  tensor_desc d;
  memset(&d, 0, sizeof d);
  d.ndim = t->ndim;
  for (int32_t k = 0; k < 8; k++) {
    d.shape[k] = t->shape[k];
    d.strides[k] = t->strides[k];
  }
  return d;
}

static row_desc rows_of(const dama_cuda_tdesc *t, int32_t dim) {
  row_desc r;
  memset(&r, 0, sizeof r);
  r.ndim = t->ndim;
  r.dim = dim;
  for (int32_t k = 0; k < 8; k++) {
    r.shape[k] = t->shape[k];
    r.strides[k] = t->strides[k];
  }
  return r;
}

extern "C" int64_t dama_cuda_sort_scratch_bytes(int64_t rows, int64_t n, int wide) {
  return wide ? sort_scratch_bytes<uint64_t>(rows, n) : sort_scratch_bytes<uint32_t>(rows, n);
}

template <typename K>
static cudaError_t sort_rows_k(void *vals, int64_t *inds, const dama_cuda_tdesc *out, const void *a,
                               const dama_cuda_tdesc *in, int32_t dim, int32_t dtype, int32_t esize, int32_t desc,
                               int64_t n, int64_t k, int64_t rows, void *scratch, cudaStream_t stream) {
  tensor_key_loader<K> ld;
  ld.base = static_cast<const unsigned char *>(a);
  ld.rd = rows_of(in, dim);
  ld.dtype = dtype;
  ld.esize = esize;
  ld.desc = desc;
  sort_out_writer w;
  w.src = static_cast<const unsigned char *>(a);
  w.in = ld.rd;
  w.vals = static_cast<unsigned char *>(vals);
  w.inds = inds;
  w.out = rows_of(out, dim);
  w.dtype = dtype;
  w.esize = esize;
  w.k = k;
  return sort_rows<K>(ld, w, no_guard(), rows, n, scratch, stream);
}

extern "C" cudaError_t dama_cuda_sort_rows(void *vals, int64_t *inds, const dama_cuda_tdesc *out, const void *a,
                                           const dama_cuda_tdesc *in, int32_t dim, int32_t dtype, int32_t esize,
                                           int32_t desc, int64_t n, int64_t k, int64_t rows, void *scratch,
                                           cudaStream_t stream) {
  const bool wide = dtype == k_f64 || dtype == k_i64;
  return wide ? sort_rows_k<uint64_t>(vals, inds, out, a, in, dim, dtype, esize, desc, n, k, rows, scratch, stream)
              : sort_rows_k<uint32_t>(vals, inds, out, a, in, dim, dtype, esize, desc, n, k, rows, scratch, stream);
}

extern "C" cudaError_t dama_cuda_check_index(unsigned long long *err, const void *index, int is_i32,
                                             const dama_cuda_tdesc *ix, int64_t size, cudaStream_t stream) {
  int64_t n = 1;
  for (int32_t k = 0; k < ix->ndim; k++) n *= ix->shape[k];
  return check_index(err, index, is_i32, desc_of(ix), size, n, stream);
}

extern "C" cudaError_t dama_cuda_gather(void *out, const void *a, const dama_cuda_tdesc *o, const dama_cuda_tdesc *as,
                                        const void *index, int is_i32, const dama_cuda_tdesc *ixs, int32_t dim,
                                        int64_t size, int32_t esize, cudaStream_t stream) {
  return gather(out, a, desc_of(o), desc_of(as), index, is_i32, desc_of(ixs), dim, size, esize, stream);
}

extern "C" int64_t dama_cuda_scatter_scratch_bytes(int64_t n) { return scatter_scratch_bytes(n); }

extern "C" cudaError_t dama_cuda_scatter(void *a, const void *src, const void *index, int is_i32,
                                         const dama_cuda_tdesc *ix, const dama_cuda_tdesc *as,
                                         const dama_cuda_tdesc *ss, int32_t dim, int32_t dtype, int32_t esize,
                                         int32_t reduce, const unsigned long long *err, void *scratch,
                                         cudaStream_t stream) {
  scatter_geom g;
  memset(&g, 0, sizeof g);
  g.ix = desc_of(ix);
  g.a = desc_of(as);
  g.src = desc_of(ss);
  g.dim = dim;
  g.is_i32 = is_i32;
  int64_t n = 1;
  for (int32_t k = 0; k < ix->ndim; k++) n *= ix->shape[k];
  return scatter(a, src, index, g, n, dtype, esize, reduce, err, scratch, stream);
}

extern "C" cudaError_t dama_cuda_convert_copy(void *dst, const dama_cuda_tdesc *d, int32_t dt, int32_t des,
                                              const void *src, const dama_cuda_tdesc *s, int32_t st, int32_t ses,
                                              cudaStream_t stream) {
  return convert_copy(dst, desc_of(d), dt, des, src, desc_of(s), st, ses, stream);
}
