/* NumPy .npy files: header parsing (format versions 1-3), loading by copy or by a private memory map that
 * a tensor wraps without copying, and atomic writing.
 *
 * Format: "\x93NUMPY", major, minor, header length (u16 LE in v1, u32 LE in v2/v3), then a Python dict
 * literal {'descr': '<u2', 'fortran_order': False, 'shape': (N, H, W, C), } padded with spaces and a
 * final '\n' so that the data starts at a multiple of 64 (16 in old files). */
#define _GNU_SOURCE
#include "core/dama_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* io_util.c */
dama_status dama_io_err(dama_status st, const char *op, const char *path, const char *fmt, ...);
dama_status dama_io_tmp_open(const char *op, const char *path, char *tmp, size_t tmplen, int *fd);
dama_status dama_io_write_all(const char *op, const char *path, int fd, const void *data, int64_t n);
dama_status dama_io_commit(const char *op, const char *tmp, const char *path);
void dama_io_discard(const char *tmp);

typedef struct npy_header {
  dama_dtype dtype;
  int swap;             /* big-endian data on this little-endian host */
  int32_t ndim;
  int64_t shape[DAMA_MAX_DIMS];
  int64_t offset;       /* data start */
  int64_t nbytes;       /* data size */
} npy_header;

enum { NPY_MAX_HEADER = 1 << 20 };

static const char *skip_ws(const char *p) {
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
  return p;
}

/* The value after 'key': in the dict text, or NULL. */
static const char *dict_value(const char *dict, const char *key) {
  char pat[32];
  const char *quotes = "'\"";
  for (int q = 0; q < 2; q++) {
    snprintf(pat, sizeof pat, "%c%s%c", quotes[q], key, quotes[q]);
    const char *p = strstr(dict, pat);
    if (!p) continue;
    p = skip_ws(p + strlen(pat));
    if (*p != ':') return NULL;
    return skip_ws(p + 1);
  }
  return NULL;
}

static dama_status parse_descr(const char *op, const char *path, const char *v, npy_header *h) {
  if (*v == '[') return dama_io_err(DAMA_ERR_UNSUPPORTED, op, path, "structured dtypes are not supported");
  if (*v != '\'' && *v != '"') return dama_io_err(DAMA_ERR_FORMAT, op, path, "malformed 'descr' in the header");
  char q = *v++;
  char d[16];
  size_t n = 0;
  while (*v && *v != q && n + 1 < sizeof d) d[n++] = *v++;
  d[n] = 0;
  if (*v != q) return dama_io_err(DAMA_ERR_FORMAT, op, path, "malformed 'descr' in the header");
  char order = d[0], kind = d[1];
  int size = atoi(d + 2);
  if (order != '<' && order != '>' && order != '|' && order != '=')
    return dama_io_err(DAMA_ERR_FORMAT, op, path, "malformed dtype '%s'", d);
  if ((kind == 'u' || kind == 'b') && size == 1) h->dtype = DAMA_U8;
  else if (kind == 'u' && size == 2) h->dtype = DAMA_U16;
  else if (kind == 'i' && size == 4) h->dtype = DAMA_I32;
  else if (kind == 'i' && size == 8) h->dtype = DAMA_I64;
  else if (kind == 'f' && size == 2) h->dtype = DAMA_F16;
  else if (kind == 'f' && size == 4) h->dtype = DAMA_F32;
  else if (kind == 'f' && size == 8) h->dtype = DAMA_F64;
  else
    return dama_io_err(DAMA_ERR_UNSUPPORTED, op, path,
                       "unsupported dtype '%s' (supported: u1, b1, u2, i4, i8, f2, f4, f8)", d);
  h->swap = order == '>' && size > 1;
  return DAMA_OK;
}

static dama_status parse_shape(const char *op, const char *path, const char *v, npy_header *h) {
  if (*v != '(') return dama_io_err(DAMA_ERR_FORMAT, op, path, "malformed 'shape' in the header");
  v = skip_ws(v + 1);
  h->ndim = 0;
  while (*v != ')') {
    if (*v < '0' || *v > '9') return dama_io_err(DAMA_ERR_FORMAT, op, path, "malformed 'shape' in the header");
    if (h->ndim >= DAMA_MAX_DIMS)
      return dama_io_err(DAMA_ERR_UNSUPPORTED, op, path, "more than %d dimensions", DAMA_MAX_DIMS);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || x < 0) return dama_io_err(DAMA_ERR_FORMAT, op, path, "bad dimension in 'shape'");
    h->shape[h->ndim++] = x;
    v = end;
    if (*v == 'L') v++; /* Python 2 longs */
    v = skip_ws(v);
    if (*v == ',') v = skip_ws(v + 1);
    else if (*v != ')') return dama_io_err(DAMA_ERR_FORMAT, op, path, "malformed 'shape' in the header");
  }
  return DAMA_OK;
}

/* Parse the header from the file's first bytes (buf, n of them); file_size checks for truncation. */
static dama_status parse_header(const char *op, const char *path, const uint8_t *buf, int64_t n, int64_t file_size,
                                npy_header *h) {
  memset(h, 0, sizeof *h);
  if (n < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
    return dama_io_err(DAMA_ERR_FORMAT, op, path, "not a .npy file (no \\x93NUMPY magic)");
  int major = buf[6];
  int64_t hlen, start;
  if (major == 1) {
    hlen = buf[8] | (buf[9] << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (n < 12) return dama_io_err(DAMA_ERR_FORMAT, op, path, "truncated header");
    hlen = (int64_t)buf[8] | ((int64_t)buf[9] << 8) | ((int64_t)buf[10] << 16) | ((int64_t)buf[11] << 24);
    start = 12;
  } else {
    return dama_io_err(DAMA_ERR_UNSUPPORTED, op, path, "unsupported .npy format version %d", major);
  }
  if (hlen > NPY_MAX_HEADER) return dama_io_err(DAMA_ERR_UNSUPPORTED, op, path, "header of %lld bytes is too large", (long long)hlen);
  if (start + hlen > n) return dama_io_err(DAMA_ERR_FORMAT, op, path, "truncated header (needs %lld bytes, file has %lld)",
                                           (long long)(start + hlen), (long long)file_size);
  char *dict = malloc((size_t)hlen + 1);
  if (!dict) return dama_io_err(DAMA_ERR_OOM, op, path, "out of memory");
  memcpy(dict, buf + start, (size_t)hlen);
  dict[hlen] = 0;
  dama_status st = DAMA_OK;
  const char *d = dict_value(dict, "descr"), *fo = dict_value(dict, "fortran_order"), *sh = dict_value(dict, "shape");
  if (!d || !fo || !sh) st = dama_io_err(DAMA_ERR_FORMAT, op, path, "header lacks descr, fortran_order or shape");
  if (st == DAMA_OK) st = parse_descr(op, path, d, h);
  if (st == DAMA_OK && strncmp(fo, "False", 5) != 0) {
    if (strncmp(fo, "True", 4) == 0)
      st = dama_io_err(DAMA_ERR_UNSUPPORTED, op, path,
                       "fortran_order=True is not supported (save a C-ordered array, e.g. np.ascontiguousarray)");
    else
      st = dama_io_err(DAMA_ERR_FORMAT, op, path, "malformed fortran_order");
  }
  if (st == DAMA_OK) st = parse_shape(op, path, sh, h);
  free(dict);
  if (st != DAMA_OK) return st;
  char shp[200];
  int k = snprintf(shp, sizeof shp, "(");
  for (int i = 0; i < h->ndim && k < (int)sizeof shp - 24; i++)
    k += snprintf(shp + k, sizeof shp - (size_t)k, "%s%lld", i ? ", " : "", (long long)h->shape[i]);
  snprintf(shp + k, sizeof shp - (size_t)k, ")");
  /* Both the element count and the product of the nonzero sizes (what the strides reach, even when
   * a zero-size dim makes the array empty) must stay far from int64_t overflow. */
  int64_t numel = 1, extent = 1;
  for (int i = 0; i < h->ndim; i++) {
    if (h->shape[i] != 0 && extent > INT64_MAX / 16 / h->shape[i])
      return dama_io_err(DAMA_ERR_FORMAT, op, path,
                         "'shape' %s in the header is too large (its nonzero sizes multiply past 2^59)", shp);
    if (h->shape[i] != 0) extent *= h->shape[i];
    numel *= h->shape[i];
  }
  h->offset = start + hlen;
  h->nbytes = numel * dama_dtype_size(h->dtype);
  if (h->offset + h->nbytes > file_size) {
    return dama_io_err(DAMA_ERR_FORMAT, op, path,
                       "truncated: shape %s needs %lld data bytes after the %lld-byte header, the file has %lld",
                       shp, (long long)h->nbytes, (long long)h->offset, (long long)(file_size - h->offset));
  }
  return DAMA_OK;
}

/* Open, stat and parse. fd stays open on success. */
static dama_status open_npy(const char *op, const char *path, int *fd_out, int64_t *file_size, npy_header *h) {
  *fd_out = -1;
  if (!path) return dama_error(DAMA_ERR_ARG, "%s: path is NULL", op);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return dama_io_err(DAMA_ERR_IO, op, path, "cannot open: %s", strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0 || S_ISDIR(sb.st_mode)) {
    close(fd);
    return dama_io_err(DAMA_ERR_IO, op, path, "is not a readable file");
  }
  int64_t fsz = sb.st_size;
  int64_t want = fsz < 4096 ? fsz : 4096;
  uint8_t small[4096];
  uint8_t *buf = small;
  ssize_t got = pread(fd, buf, (size_t)want, 0);
  dama_status st = DAMA_OK;
  if (got < 0) st = dama_io_err(DAMA_ERR_IO, op, path, "read failed: %s", strerror(errno));
  else if (got >= 12 && memcmp(buf, "\x93NUMPY", 6) == 0) {
    /* A header longer than 4 KiB: read it whole. */
    int64_t hl = buf[6] == 1 ? (buf[8] | (buf[9] << 8)) + 10
                             : ((int64_t)buf[8] | ((int64_t)buf[9] << 8) | ((int64_t)buf[10] << 16) |
                                ((int64_t)buf[11] << 24)) + 12;
    if (hl > got && hl <= NPY_MAX_HEADER + 12 && hl <= fsz) {
      buf = malloc((size_t)hl);
      if (!buf) st = dama_io_err(DAMA_ERR_OOM, op, path, "out of memory");
      else {
        got = pread(fd, buf, (size_t)hl, 0);
        if (got < 0) st = dama_io_err(DAMA_ERR_IO, op, path, "read failed: %s", strerror(errno));
      }
    }
  }
  if (st == DAMA_OK) st = parse_header(op, path, buf, got, fsz, h);
  if (buf != small) free(buf);
  if (st != DAMA_OK) {
    close(fd);
    return st;
  }
  *fd_out = fd;
  *file_size = fsz;
  return DAMA_OK;
}

dama_status dama_npy_header(const char *path, int32_t *dtype, int32_t *ndim, int64_t *shape, int64_t *data_offset) {
  int fd;
  int64_t fsz;
  npy_header h;
  DAMA_TRY(open_npy("npy_header", path, &fd, &fsz, &h));
  close(fd);
  if (dtype) *dtype = h.dtype;
  if (ndim) *ndim = h.ndim;
  if (shape) for (int i = 0; i < h.ndim; i++) shape[i] = h.shape[i];
  if (data_offset) *data_offset = h.offset;
  return DAMA_OK;
}

typedef struct npy_map { void *base; size_t len; } npy_map;

static void npy_unmap(void *p) {
  npy_map *m = p;
  if (!m) return;
  munmap(m->base, m->len);
  free(m);
}

static void byteswap(void *data, int64_t n, int es) {
  uint8_t *p = data;
  for (int64_t i = 0; i < n; i++, p += es)
    for (int a = 0, b = es - 1; a < b; a++, b--) {
      uint8_t t = p[a];
      p[a] = p[b];
      p[b] = t;
    }
}

dama_status dama_npy_load(const char *path, int32_t use_mmap, dama_tensor **out) {
  const char *op = "npy_load";
  if (!out) return dama_error(DAMA_ERR_ARG, "%s: out is NULL", op);
  *out = NULL;
  int fd;
  int64_t fsz;
  npy_header h;
  DAMA_TRY(open_npy(op, path, &fd, &fsz, &h));
  int es = dama_dtype_size(h.dtype);
  if (use_mmap && !h.swap && h.nbytes > 0 && h.offset % es == 0) {
    /* Private, writable mapping: in-place ops on the tensor never reach the file. */
    void *base = mmap(NULL, (size_t)fsz, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED) return dama_io_err(DAMA_ERR_IO, op, path, "mmap failed: %s", strerror(errno));
    npy_map *m = malloc(sizeof *m);
    if (!m) {
      munmap(base, (size_t)fsz);
      return dama_io_err(DAMA_ERR_OOM, op, path, "out of memory");
    }
    m->base = base;
    m->len = (size_t)fsz;
    /* from_blob takes ownership of m (npy_unmap runs when the storage dies). */
    return dama_from_blob(out, h.ndim, h.shape, NULL, h.dtype, (uint8_t *)base + h.offset, m, npy_unmap);
  }
  dama_tensor *t = NULL;
  dama_status st = dama_empty(&t, h.ndim, h.shape, h.dtype, dama_cpu());
  if (st != DAMA_OK) {
    char m[256];
    snprintf(m, sizeof m, "%s", dama_last_error());
    st = dama_io_err(st, op, path, "%s", m);
  }
  if (st == DAMA_OK) {
    uint8_t *dst = dama_data_ptr(t);
    int64_t done = 0;
    while (done < h.nbytes) {
      size_t chunk = h.nbytes - done > (1 << 30) ? (size_t)1 << 30 : (size_t)(h.nbytes - done);
      ssize_t r = pread(fd, dst + done, chunk, h.offset + done);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        st = dama_io_err(DAMA_ERR_IO, op, path, "read failed at byte %lld: %s", (long long)(h.offset + done),
                         r < 0 ? strerror(errno) : "unexpected end of file");
        break;
      }
      done += r;
    }
    if (st == DAMA_OK && h.swap) byteswap(dst, h.nbytes / es, es);
  }
  close(fd);
  if (st != DAMA_OK) {
    dama_tensor_release(t);
    return st;
  }
  *out = t;
  return DAMA_OK;
}

static const char *npy_descr(dama_dtype t) {
  switch (t) {
  case DAMA_U8: return "|u1";
  case DAMA_U16: return "<u2";
  case DAMA_I32: return "<i4";
  case DAMA_I64: return "<i8";
  case DAMA_F16: return "<f2";
  case DAMA_F32: return "<f4";
  case DAMA_F64: return "<f8";
  default: return NULL;
  }
}

dama_status dama_npy_write(const char *path, const dama_tensor *t) {
  const char *op = "npy_write";
  if (!path || !t) return dama_error(DAMA_ERR_ARG, "%s: path and tensor are required", op);
  /* a tensor on another device is copied to the host for writing (dama_to_device below) */
  const char *descr = npy_descr((dama_dtype)t->dtype);
  if (!descr)
    return dama_io_err(DAMA_ERR_UNSUPPORTED, op, path, "dtype %s has no .npy equivalent",
                       dama_dtype_name((dama_dtype)t->dtype));
  char dict[512];
  int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int i = 0; i < t->ndim; i++) k += snprintf(dict + k, sizeof dict - (size_t)k, "%lld,%s",
                                                  (long long)t->shape[i], i + 1 < t->ndim ? " " : "");
  if (t->ndim > 1) k--; /* numpy writes "(2, 3)" but "(5,)" */
  k += snprintf(dict + k, sizeof dict - (size_t)k, "), }");
  /* pad with spaces and '\n' to a 64-byte boundary */
  int total = 10 + k + 1;
  int pad = (64 - total % 64) % 64;
  uint8_t hdr[640];
  memcpy(hdr, "\x93NUMPY\x01\x00", 8);
  int hlen = k + pad + 1;
  hdr[8] = (uint8_t)(hlen & 0xff);
  hdr[9] = (uint8_t)(hlen >> 8);
  memcpy(hdr + 10, dict, (size_t)k);
  memset(hdr + 10 + k, ' ', (size_t)pad);
  hdr[10 + k + pad] = '\n';
  dama_tensor *c = NULL;
  DAMA_TRY(dama_to_device(&c, t, (dama_device){DAMA_CPU, 0}));
  char tmp[4200];
  int fd;
  dama_status st = dama_io_tmp_open(op, path, tmp, sizeof tmp, &fd);
  if (st == DAMA_OK) {
    st = dama_io_write_all(op, path, fd, hdr, 10 + hlen);
    if (st == DAMA_OK)
      st = dama_io_write_all(op, path, fd, dama_data_ptr(c), dama_numel(c) * dama_dtype_size((dama_dtype)c->dtype));
    if (close(fd) != 0 && st == DAMA_OK) st = dama_io_err(DAMA_ERR_IO, op, path, "close failed: %s", strerror(errno));
    if (st == DAMA_OK) st = dama_io_commit(op, tmp, path);
    else dama_io_discard(tmp);
  }
  dama_tensor_release(c);
  return st;
}
