/* Image reading by format (sniffed from the magic bytes): TIFF through io_tiff_read.c, PNG / JPEG / BMP
 * and the other stb formats through stb_image, .npy through io_npy.c; plus dama_image_write by extension.
 * A file is read with one read() into memory and decoded from there (the loader's hot path); TIFFs over
 * 64 MiB are opened by path instead so that big BigTIFFs are not read whole for their header. */
#define _GNU_SOURCE
#include "core/dama_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* stb_image, private to this file (static functions, thread-local failure reason). */
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
/* stb declares static functions it never defines (v2.27); the warning fires at the end of the file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image.h>

/* io_util.c */
dama_status dama_io_err(dama_status st, const char *op, const char *path, const char *fmt, ...);
dama_status dama_io_slurp(const char *op, const char *path, uint8_t **data, int64_t *size);
int dama_io_sniff(const uint8_t *p, int64_t n);
/* io_tiff_read.c (data == NULL: open the file by path) */
dama_status dama_io_tiff_info_mem(const char *op, const char *path, const uint8_t *data, int64_t size,
                                  dama_image_info *info);
dama_status dama_io_tiff_read_mem(const char *op, const char *path, const uint8_t *data, int64_t size,
                                  int out_f32, int64_t eh, int64_t ew, int64_t ec, float *dst, dama_tensor **out);

enum { BIG_TIFF_BYTES = 64 << 20 };

/* The file's bytes and format. *data stays NULL for a TIFF that libtiff should open by path (over
 * 64 MiB, or header_only) and for a .npy (read by io_npy.c). */
static dama_status open_image(const char *op, const char *path, int header_only, uint8_t **data, int64_t *size,
                              int *fmt) {
  *data = NULL;
  *size = 0;
  *fmt = DAMA_FMT_UNKNOWN;
  if (!path) return dama_error(DAMA_ERR_ARG, "%s: path is NULL", op);
  struct stat sb;
  if (stat(path, &sb) != 0) return dama_io_err(DAMA_ERR_IO, op, path, "cannot open: %s", strerror(errno));
  if (S_ISREG(sb.st_mode) && (header_only || sb.st_size > BIG_TIFF_BYTES)) {
    uint8_t head[16] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return dama_io_err(DAMA_ERR_IO, op, path, "cannot open: %s", strerror(errno));
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    int f = got > 0 ? dama_io_sniff(head, got) : DAMA_FMT_UNKNOWN;
    if (f == DAMA_FMT_TIFF || f == DAMA_FMT_NPY) {
      *fmt = f;
      return DAMA_OK;
    }
  }
  DAMA_TRY(dama_io_slurp(op, path, data, size));
  *fmt = dama_io_sniff(*data, *size);
  if (*fmt == DAMA_FMT_UNKNOWN) {
    free(*data);
    *data = NULL;
    return dama_io_err(DAMA_ERR_FORMAT, op, path,
                       "unknown image format (expected TIFF, PNG, JPEG, BMP, GIF, PSD, PNM, HDR or .npy magic bytes)");
  }
  return DAMA_OK;
}

/* ---- stb_image formats ---- */

/* stb_image 2.27 (Debian 12) trusts the code counts of a JPEG Huffman table: more than 256 codes
 * overrun its 257-entry size table (UBSan/heap overwrite; found by tests/fuzz/fuzz_npy). Walk the
 * markers (also those between the scans of a progressive JPEG) and refuse such tables first.
 * Returns the offending count (> 256), or 0 when every table is sane. */
static int jpeg_bad_huffman_count(const uint8_t *d, int64_t n) {
  int64_t i = 2; /* after SOI */
  while (i + 4 <= n) {
    if (d[i] != 0xFF) { i++; continue; }             /* entropy-coded data: skip to the next marker */
    uint8_t m = d[i + 1];
    if (m == 0xFF) { i++; continue; }                 /* fill byte */
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { i += 2; continue; } /* stuffed / RSTn / SOI */
    if (m == 0xD9) return 0;                          /* EOI */
    int64_t len = (int64_t)d[i + 2] << 8 | d[i + 3];
    if (len < 2) return 0;                            /* stb rejects it itself */
    if (m == 0xC4) {
      /* as stb reads it: tables until the segment length runs out, each 1 + 16 + total bytes even
       * past the segment's end, bytes past the end of the file as 0; the next marker follows */
      int64_t L = len - 2, q = i + 4;
      while (L > 0) {
        int total = 0;
        for (int k = 1; k <= 16; k++) total += q + k < n ? d[q + k] : 0;
        if (total > 256) return total;
        L -= 17 + total;
        q += 17 + total;
      }
      i = q;
      continue;
    }
    i = i + 2 + len;
  }
  return 0;
}

/* stb_image grows its buffer to a PNG chunk's claimed length before reading it (a 115-byte file
 * claimed a 2 GB IDAT; found by fuzz_png). Returns the offset of the first chunk that claims more
 * bytes than the file has left, or 0. */
static int64_t png_bad_chunk(const uint8_t *d, int64_t n, uint32_t *claimed) {
  int64_t i = 8;
  while (i + 8 <= n) {
    uint32_t len = (uint32_t)d[i] << 24 | (uint32_t)d[i + 1] << 16 | (uint32_t)d[i + 2] << 8 | d[i + 3];
    if ((int64_t)len + 12 > n - i) { *claimed = len; return i; }
    if (memcmp(d + i + 4, "IEND", 4) == 0) return 0;
    i += 12 + (int64_t)len;
  }
  return 0;
}

/* stb_image 2.27 parses a binary PNM header's width, height and maxval with an unchecked int multiply (signed
 * overflow: undefined behaviour, found by tests/fuzz/fuzz_tiff). Returns the byte offset of the first header number
 * with more than 9 digits (0: the header is safe to hand to stb), *digits its length. */
static int64_t pnm_long_number(const uint8_t *d, int64_t n, int64_t *digits) {
  if (n < 2 || d[0] != 'P' || (d[1] != '5' && d[1] != '6')) return 0;
  int64_t i = 2;
  for (int field = 0; field < 3 && i < n; field++) {
    for (;;) {   /* whitespace and '#' comments, as stbi__pnm_skip_whitespace */
      while (i < n && (d[i] == ' ' || (d[i] >= '\t' && d[i] <= '\r'))) i++;
      if (i < n && d[i] == '#') { while (i < n && d[i] != '\n' && d[i] != '\r') i++; continue; }
      break;
    }
    int64_t start = i;
    while (i < n && d[i] >= '0' && d[i] <= '9') i++;
    if (i - start > 9) { *digits = i - start; return start; }
    if (i == start) break;   /* not a number: stb refuses the header itself */
  }
  return 0;
}

/* out_f32 / eh / ew / ec / dst as in dama_io_tiff_read_mem; info != NULL: header only. */
static dama_status stb_read(const char *op, const char *path, const uint8_t *data, int64_t size, int fmt,
                            dama_image_info *info, int out_f32, int64_t eh, int64_t ew, int64_t ec, float *dst,
                            dama_tensor **out) {
  if (size > INT_MAX) return dama_io_err(DAMA_ERR_UNSUPPORTED, op, path, "file over 2 GiB is too large for stb_image");
  int x = 0, y = 0, comp = 0;
  int bad_codes = fmt == DAMA_FMT_JPEG ? jpeg_bad_huffman_count(data, size) : 0;
  if (bad_codes)
    return dama_io_err(DAMA_ERR_FORMAT, op, path,
                       "corrupt JPEG: a Huffman table (DHT) declares %d codes, at most 256 are possible", bad_codes);
  uint32_t chunk_len = 0;
  int64_t bad_chunk = fmt == DAMA_FMT_PNG ? png_bad_chunk(data, size, &chunk_len) : 0;
  if (bad_chunk)
    return dama_io_err(DAMA_ERR_FORMAT, op, path,
                       "corrupt or truncated PNG: the chunk at byte %lld claims %u bytes, the file has %lld left",
                       (long long)bad_chunk, chunk_len, (long long)(size - bad_chunk - 12));
  int64_t digits = 0, long_at = fmt == DAMA_FMT_OTHER_STB ? pnm_long_number(data, size, &digits) : 0;
  if (long_at)
    return dama_io_err(DAMA_ERR_FORMAT, op, path,
                       "corrupt PNM header: the number at byte %lld has %lld digits, expected at most 9",
                       (long long)long_at, (long long)digits);
  if (!stbi_info_from_memory(data, (int)size, &x, &y, &comp))
    return dama_io_err(DAMA_ERR_FORMAT, op, path, "corrupt or unsupported image: %s", stbi_failure_reason());
  int is16 = stbi_is_16_bit_from_memory(data, (int)size);
  int ishdr = stbi_is_hdr_from_memory(data, (int)size);
  dama_dtype dt = ishdr ? DAMA_F32 : is16 ? DAMA_U16 : DAMA_U8;
  if (info) {
    memset(info, 0, sizeof *info);
    info->width = x;
    info->height = y;
    info->channels = comp;
    info->dtype = dt;
    info->tile_w = x;
    info->tile_h = y;
    info->n_pages = 1;
    info->format = fmt;
    return DAMA_OK;
  }
  /* Before stb_image allocates: the pixels the header claims must fit in the file at the codec's best
   * ratio (a 13-byte GIF header claiming 23000 x 10000 pixels made stb allocate 2 GiB; found by fuzzing). */
  double ratio = fmt == DAMA_FMT_PNG ? 1100 : 4096;
  const int dec_c = fmt == DAMA_FMT_PNG ? comp : (comp > 4 ? comp : 4); /* stb decodes GIF frames as RGBA */
  double claimed = (double)x * (double)y * (double)dec_c * (double)dama_dtype_size(dt);
  if (claimed > (double)size * ratio + 65536.0)
    return dama_io_err(DAMA_ERR_FORMAT, op, path,
                       "header claims %d x %d pixels x %d channels (%.0f bytes decoded), more than a %lld-byte file "
                       "can hold", x, y, comp, claimed, (long long)size);
  if (ec > 0 && comp != ec)
    return dama_io_err(DAMA_ERR_SHAPE, op, path, "expected %lld channels, got %d", (long long)ec, comp);
  if (dst && (y != eh || x != ew))
    return dama_io_err(DAMA_ERR_SHAPE, op, path, "expected %lldx%lld pixels (HxW), got %dx%d", (long long)eh,
                       (long long)ew, y, x);
  int w2 = 0, h2 = 0, c2 = 0;
  void *pix = ishdr ? (void *)stbi_loadf_from_memory(data, (int)size, &w2, &h2, &c2, 0)
              : is16 ? (void *)stbi_load_16_from_memory(data, (int)size, &w2, &h2, &c2, 0)
                     : (void *)stbi_load_from_memory(data, (int)size, &w2, &h2, &c2, 0);
  if (!pix) return dama_io_err(DAMA_ERR_FORMAT, op, path, "cannot decode: %s", stbi_failure_reason());
  if (w2 != x || h2 != y || c2 != comp) {
    stbi_image_free(pix);
    return dama_io_err(DAMA_ERR_FORMAT, op, path, "header and decoded size disagree");
  }
  int64_t n = (int64_t)x * y * comp;
  dama_tensor *t = NULL;
  if (!dst) {
    int64_t shape[3] = {y, x, comp};
    dama_status st = dama_empty(&t, 3, shape, out_f32 ? DAMA_F32 : dt, dama_cpu());
    if (st != DAMA_OK) {
      stbi_image_free(pix);
      return st;
    }
  }
  if (!out_f32) {
    memcpy(dama_data_ptr(t), pix, (size_t)(n * dama_dtype_size(dt)));
  } else {
    float *d = dst ? dst : dama_data_ptr(t);
    if (dt == DAMA_U8) {
      const uint8_t *s = pix;
      for (int64_t i = 0; i < n; i++) d[i] = (float)s[i] / 255.0f;
    } else if (dt == DAMA_U16) {
      const uint16_t *s = pix;
      for (int64_t i = 0; i < n; i++) d[i] = (float)s[i] / 65535.0f;
    } else {
      memcpy(d, pix, (size_t)n * sizeof(float));
    }
  }
  stbi_image_free(pix);
  if (out) *out = t;
  return DAMA_OK;
}

/* ---- .npy as an image: (H, W) or (H, W, C) ---- */

static dama_status npy_image(const char *op, const char *path, int out_f32, int64_t eh, int64_t ew, int64_t ec,
                             float *dst, dama_tensor **out, dama_image_info *info) {
  dama_tensor *t = NULL;
  if (info) {
    int32_t dt, nd;
    int64_t shape[8], off;
    DAMA_TRY(dama_npy_header(path, &dt, &nd, shape, &off));
    if (nd != 2 && nd != 3)
      return dama_io_err(DAMA_ERR_SHAPE, op, path, "expected an (H, W) or (H, W, C) array, got %d dims", (int)nd);
    memset(info, 0, sizeof *info);
    info->height = shape[0];
    info->width = shape[1];
    info->channels = nd == 3 ? shape[2] : 1;
    info->dtype = dt;
    info->tile_w = shape[1];
    info->tile_h = shape[0];
    info->n_pages = 1;
    info->format = DAMA_FMT_NPY;
    return DAMA_OK;
  }
  DAMA_TRY(dama_npy_load(path, 0, &t));
  dama_status st = DAMA_OK;
  int64_t H = t->ndim >= 2 ? t->shape[0] : 0, W = t->ndim >= 2 ? t->shape[1] : 0;
  int64_t C = t->ndim == 3 ? t->shape[2] : 1;
  if (t->ndim != 2 && t->ndim != 3)
    st = dama_io_err(DAMA_ERR_SHAPE, op, path, "expected an (H, W) or (H, W, C) array, got %d dims", (int)t->ndim);
  else if (ec > 0 && C != ec)
    st = dama_io_err(DAMA_ERR_SHAPE, op, path, "expected %lld channels, got %lld", (long long)ec, (long long)C);
  else if (dst && (H != eh || W != ew))
    st = dama_io_err(DAMA_ERR_SHAPE, op, path, "expected %lldx%lld pixels (HxW), got %lldx%lld", (long long)eh,
                     (long long)ew, (long long)H, (long long)W);
  else if (out_f32 && t->dtype != DAMA_U8 && t->dtype != DAMA_U16 && t->dtype != DAMA_F32 && t->dtype != DAMA_F64)
    st = dama_io_err(DAMA_ERR_DTYPE, op, path, "%s data has no defined scaling to float (expected uint8, uint16 or float)",
                     dama_dtype_name((dama_dtype)t->dtype));
  if (st != DAMA_OK) {
    dama_tensor_release(t);
    return st;
  }
  int64_t shape3[3] = {H, W, C};
  dama_tensor *r = NULL;
  if (!out_f32) {
    st = dama_view(&r, t, 3, shape3);
    dama_tensor_release(t);
    if (st == DAMA_OK) *out = r;
    return st;
  }
  float *d = dst;
  if (!d) {
    st = dama_empty(&r, 3, shape3, DAMA_F32, dama_cpu());
    if (st != DAMA_OK) {
      dama_tensor_release(t);
      return st;
    }
    d = dama_data_ptr(r);
  }
  int64_t n = H * W * C;
  const void *s = dama_data_ptr(t);
  switch (t->dtype) {
  case DAMA_U8: for (int64_t i = 0; i < n; i++) d[i] = (float)((const uint8_t *)s)[i] / 255.0f; break;
  case DAMA_U16: for (int64_t i = 0; i < n; i++) d[i] = (float)((const uint16_t *)s)[i] / 65535.0f; break;
  case DAMA_F32: memcpy(d, s, (size_t)n * 4); break;
  default: for (int64_t i = 0; i < n; i++) d[i] = (float)((const double *)s)[i]; break;
  }
  dama_tensor_release(t);
  if (out) *out = r;
  return DAMA_OK;
}

/* One dispatcher for all reads. */
static dama_status read_any(const char *op, const char *path, dama_image_info *info, int out_f32, int64_t eh,
                            int64_t ew, int64_t ec, float *dst, dama_tensor **out) {
  uint8_t *data = NULL;
  int64_t size = 0;
  int fmt = 0;
  DAMA_TRY(open_image(op, path, info != NULL, &data, &size, &fmt));
  dama_status st;
  if (fmt == DAMA_FMT_TIFF) {
    st = info ? dama_io_tiff_info_mem(op, path, data, size, info)
              : dama_io_tiff_read_mem(op, path, data, size, out_f32, eh, ew, ec, dst, out);
  } else if (fmt == DAMA_FMT_NPY) {
    free(data);
    data = NULL;
    st = npy_image(op, path, out_f32, eh, ew, ec, dst, out, info);
  } else {
    st = stb_read(op, path, data, size, fmt, info, out_f32, eh, ew, ec, dst, out);
  }
  free(data);
  return st;
}

dama_status dama_image_info_read(const char *path, dama_image_info *info) {
  if (!info) return dama_error(DAMA_ERR_ARG, "image_info_read: info is NULL");
  return read_any("image_info_read", path, info, 0, 0, 0, 0, NULL, NULL);
}

dama_status dama_image_read(const char *path, dama_tensor **out) {
  if (!out) return dama_error(DAMA_ERR_ARG, "image_read: out is NULL");
  *out = NULL;
  return read_any("image_read", path, NULL, 0, 0, 0, 0, NULL, out);
}

dama_status dama_image_read_f32(const char *path, float *dst, int64_t h, int64_t w, int64_t c) {
  if (!dst || h <= 0 || w <= 0 || c <= 0)
    return dama_error(DAMA_ERR_ARG, "image_read_f32: '%s': expected dst and positive h, w, c, got h=%lld w=%lld c=%lld",
                      path ? path : "(null)", (long long)h, (long long)w, (long long)c);
  return read_any("image_read_f32", path, NULL, 1, h, w, c, dst, NULL);
}

dama_status dama_image_read_f32_tensor(const char *path, int64_t expect_c, dama_tensor **out) {
  if (!out) return dama_error(DAMA_ERR_ARG, "image_read_f32_tensor: out is NULL");
  *out = NULL;
  return read_any("image_read_f32_tensor", path, NULL, 1, 0, 0, expect_c, NULL, out);
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

dama_status dama_image_write(const char *path, const dama_tensor *img) {
  if (!path || !img) return dama_error(DAMA_ERR_ARG, "image_write: path and img are required");
  if (ends_with(path, ".tif") || ends_with(path, ".tiff"))
    return dama_tiff_write(path, img, DAMA_TIFF_INTERLEAVED, DAMA_TIFF_DEFLATE, 0, 0, NULL);
  if (ends_with(path, ".png")) return dama_png_write(path, img);
  if (ends_with(path, ".npy")) return dama_npy_write(path, img);
  return dama_io_err(DAMA_ERR_ARG, "image_write", path, "unknown extension (expected .tif, .tiff, .png or .npy)");
}
