/* PNG writing for 8- and 16-bit grey / grey+alpha / RGB / RGBA images. stb_image_write only writes 8-bit
 * PNGs, so this file assembles the PNG itself (per-row filter chosen by the usual minimum-sum-of-absolute
 * -differences rule, IHDR/IDAT/IEND chunks, CRC-32) and borrows only stb's zlib compressor. */
#define _GNU_SOURCE
#include "core/dama_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
/* stb declares static functions it never defines (v2.27); the warning fires at the end of the file. */
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image_write.h>

/* io_util.c */
dama_status dama_io_err(dama_status st, const char *op, const char *path, const char *fmt, ...);
dama_status dama_io_tmp_open(const char *op, const char *path, char *tmp, size_t tmplen, int *fd);
dama_status dama_io_write_all(const char *op, const char *path, int fd, const void *data, int64_t n);
dama_status dama_io_commit(const char *op, const char *tmp, const char *path);
void dama_io_discard(const char *tmp);

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[i] = c;
  }
}

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
  pthread_once(&crc_once, crc_init);
  const uint32_t *table = crc_table;
  crc = ~crc;
  for (size_t i = 0; i < n; i++) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static dama_status write_chunk(const char *op, const char *path, int fd, const char *type, const uint8_t *data,
                               uint32_t n) {
  uint8_t head[8], tail[4];
  put_be32(head, n);
  memcpy(head + 4, type, 4);
  uint32_t crc = crc32_update(0, head + 4, 4);
  if (n) crc = crc32_update(crc, data, n);
  put_be32(tail, crc);
  DAMA_TRY(dama_io_write_all(op, path, fd, head, 8));
  if (n) DAMA_TRY(dama_io_write_all(op, path, fd, data, n));
  return dama_io_write_all(op, path, fd, tail, 4);
}

static inline int paeth(int a, int b, int c) {
  int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Filter one row of n bytes (bpp bytes per pixel; prev NULL for the first row) into out[0..n]. */
static void filter_row(uint8_t *out, const uint8_t *row, const uint8_t *prev, int64_t n, int bpp, uint8_t *scratch) {
  int64_t best_sum = -1;
  for (int f = 0; f < 5; f++) {
    uint8_t *d = f == 0 ? out + 1 : scratch;
    int64_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
      int a = i >= bpp ? row[i - bpp] : 0, b = prev ? prev[i] : 0, c = (prev && i >= bpp) ? prev[i - bpp] : 0;
      int pred = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : paeth(a, b, c);
      uint8_t v = (uint8_t)(row[i] - pred);
      d[i] = v;
      sum += v < 128 ? v : 256 - v;
    }
    if (f == 0) {
      best_sum = sum;
      out[0] = 0;
    } else if (sum < best_sum) {
      best_sum = sum;
      out[0] = (uint8_t)f;
      memcpy(out + 1, scratch, (size_t)n);
    }
  }
}

dama_status dama_png_write(const char *path, const dama_tensor *img) {
  const char *op = "png_write";
  if (!path || !img) return dama_error(DAMA_ERR_ARG, "%s: path and img are required", op);
  /* a tensor on another device is copied to the host for writing (dama_to_device below) */
  if (img->ndim != 2 && img->ndim != 3)
    return dama_io_err(DAMA_ERR_SHAPE, op, path, "expected an H x W or H x W x C tensor, got %d dims", (int)img->ndim);
  if (img->dtype != DAMA_U8 && img->dtype != DAMA_U16)
    return dama_io_err(DAMA_ERR_DTYPE, op, path, "expected u8 or u16, got %s", dama_dtype_name((dama_dtype)img->dtype));
  int64_t H = img->shape[0], W = img->shape[1], C = img->ndim == 3 ? img->shape[2] : 1;
  if (C < 1 || C > 4)
    return dama_io_err(DAMA_ERR_SHAPE, op, path, "expected 1, 2, 3 or 4 channels, got %lld", (long long)C);
  if (H <= 0 || W <= 0 || H > 0x7fffffff || W > 0x7fffffff)
    return dama_io_err(DAMA_ERR_SHAPE, op, path, "unsupported size %lldx%lld", (long long)H, (long long)W);
  int es = img->dtype == DAMA_U16 ? 2 : 1;
  int64_t rowbytes = W * C * es;
  if ((double)(rowbytes + 1) * (double)H > 2.0e9)
    return dama_io_err(DAMA_ERR_UNSUPPORTED, op, path, "image too large for the PNG writer (over 2 GB raw)");
  dama_tensor *ct = NULL;
  DAMA_TRY(dama_to_device(&ct, img, (dama_device){DAMA_CPU, 0}));
  const uint8_t *data = dama_data_ptr(ct);
  uint8_t *filt = malloc((size_t)((rowbytes + 1) * H));
  uint8_t *rows = malloc((size_t)(rowbytes * 2)); /* current and previous big-endian rows */
  uint8_t *scratch = malloc((size_t)rowbytes);
  dama_status st = DAMA_OK;
  if (!filt || !rows || !scratch) st = dama_io_err(DAMA_ERR_OOM, op, path, "out of memory");
  for (int64_t y = 0; y < H && st == DAMA_OK; y++) {
    uint8_t *cur = rows + (y & 1) * rowbytes, *prev = y ? rows + ((y - 1) & 1) * rowbytes : NULL;
    const uint8_t *src = data + y * rowbytes;
    if (es == 1) {
      memcpy(cur, src, (size_t)rowbytes);
    } else {
      for (int64_t i = 0; i < rowbytes; i += 2) { /* PNG stores 16-bit samples big-endian */
        uint16_t v;
        memcpy(&v, src + i, 2);
        cur[i] = (uint8_t)(v >> 8);
        cur[i + 1] = (uint8_t)v;
      }
    }
    filter_row(filt + y * (rowbytes + 1), cur, prev, rowbytes, (int)(C * es), scratch);
  }
  free(rows);
  free(scratch);
  int zlen = 0;
  unsigned char *z = NULL;
  if (st == DAMA_OK) {
    z = stbi_zlib_compress(filt, (int)((rowbytes + 1) * H), &zlen, 8);
    if (!z) st = dama_io_err(DAMA_ERR_OOM, op, path, "compression ran out of memory");
  }
  free(filt);
  if (st == DAMA_OK) {
    static const uint8_t colour_type[5] = {0, 0, 4, 2, 6};
    uint8_t ihdr[13];
    put_be32(ihdr, (uint32_t)W);
    put_be32(ihdr + 4, (uint32_t)H);
    ihdr[8] = (uint8_t)(es * 8);
    ihdr[9] = colour_type[C];
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    char tmp[4200];
    int fd;
    st = dama_io_tmp_open(op, path, tmp, sizeof tmp, &fd);
    if (st == DAMA_OK) {
      st = dama_io_write_all(op, path, fd, "\x89PNG\r\n\x1a\n", 8);
      if (st == DAMA_OK) st = write_chunk(op, path, fd, "IHDR", ihdr, 13);
      if (st == DAMA_OK) st = write_chunk(op, path, fd, "IDAT", z, (uint32_t)zlen);
      if (st == DAMA_OK) st = write_chunk(op, path, fd, "IEND", NULL, 0);
      if (close(fd) != 0 && st == DAMA_OK) st = dama_io_err(DAMA_ERR_IO, op, path, "close failed: %s", strerror(errno));
      if (st == DAMA_OK) st = dama_io_commit(op, tmp, path);
      else dama_io_discard(tmp);
    }
  }
  STBIW_FREE(z);
  dama_tensor_release(ct);
  return st;
}
