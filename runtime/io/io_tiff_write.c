/* TIFF writing with libtiff: interleaved, one page per channel, or PlanarConfiguration 2; strips or
 * tiles; no / deflate / LZW compression; classic or BigTIFF; optional OME-XML channel names.
 * Written to a temporary file in the same folder, fsync'ed and renamed into place. */
#define _GNU_SOURCE
#include "core/dama_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <tiffio.h>
#include <unistd.h>

/* io_util.c / io_tiff_read.c */
dama_status dama_io_err(dama_status st, const char *op, const char *path, const char *fmt, ...);
dama_status dama_io_tmp_open(const char *op, const char *path, char *tmp, size_t tmplen, int *fd);
dama_status dama_io_commit(const char *op, const char *tmp, const char *path);
void dama_io_discard(const char *tmp);
void dama_io_tiff_init(void);

typedef struct wctx { char err[400]; } wctx;

static int w_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  (void)tif; (void)module;
  wctx *c = user;
  if (!c->err[0]) vsnprintf(c->err, sizeof c->err, fmt, ap);
  return 1;
}
static int w_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  (void)tif; (void)user; (void)module; (void)fmt; (void)ap;
  return 1;
}

/* Growable string for the OME-XML. */
typedef struct sbuf { char *p; size_t n, cap; int oom; } sbuf;
static void sb_add(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) { b->oom = 1; return; }
    if (b->p && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
    size_t nc = (b->cap + (size_t)k + 1) * 2;
    char *np = realloc(b->p, nc);
    if (!np) { b->oom = 1; return; }
    b->p = np;
    b->cap = nc;
  }
}
static void sb_add_escaped(sbuf *b, const char *s) {
  for (; *s; s++) {
    switch (*s) {
    case '&': sb_add(b, "&amp;"); break;
    case '<': sb_add(b, "&lt;"); break;
    case '>': sb_add(b, "&gt;"); break;
    case '"': sb_add(b, "&quot;"); break;
    case '\'': sb_add(b, "&apos;"); break;
    default: sb_add(b, "%c", *s); break;
    }
  }
}

static const char *ome_type(dama_dtype t) {
  switch (t) {
  case DAMA_U8: return "uint8";
  case DAMA_U16: return "uint16";
  case DAMA_I32: return "int32";
  case DAMA_F32: return "float";
  default: return "double";
  }
}

static char *ome_xml(int64_t H, int64_t W, int64_t C, dama_dtype dt, int layout, const char *const *names) {
  sbuf b = {0};
  sb_add(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
             "<OME xmlns=\"http://www.openmicroscopy.org/Schemas/OME/2016-06\" "
             "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
             "xsi:schemaLocation=\"http://www.openmicroscopy.org/Schemas/OME/2016-06 "
             "http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd\" Creator=\"dama\">"
             "<Image ID=\"Image:0\" Name=\"Image0\">"
             "<Pixels ID=\"Pixels:0\" DimensionOrder=\"XYCZT\" Type=\"%s\" SizeX=\"%lld\" SizeY=\"%lld\" "
             "SizeC=\"%lld\" SizeZ=\"1\" SizeT=\"1\" BigEndian=\"false\" Interleaved=\"%s\">",
         ome_type(dt), (long long)W, (long long)H, (long long)C, layout == DAMA_TIFF_INTERLEAVED ? "true" : "false");
  for (int64_t c = 0; c < C; c++) {
    sb_add(&b, "<Channel ID=\"Channel:0:%lld\" Name=\"", (long long)c);
    sb_add_escaped(&b, names[c]);
    sb_add(&b, "\" SamplesPerPixel=\"1\"/>");
  }
  sb_add(&b, "<TiffData IFD=\"0\" PlaneCount=\"%lld\"/></Pixels></Image></OME>",
         (long long)(layout == DAMA_TIFF_PAGES ? C : 1));
  if (b.oom) {
    free(b.p);
    return NULL;
  }
  return b.p;
}

/* Copy an r x cw block at (y, x) of channel ch (or all channels when ch < 0) from the contiguous
 * H x W x C image into buf (rows of bw pixels), zero-padding past the image edge. */
static void gather(uint8_t *buf, int64_t bw, int64_t bh, const uint8_t *img, int64_t H, int64_t W, int64_t C,
                   int es, int64_t y, int64_t x, int64_t ch) {
  int64_t bsp = ch < 0 ? C : 1;
  int64_t rows = H - y < bh ? H - y : bh, cols = W - x < bw ? W - x : bw;
  if (rows < bh || cols < bw) memset(buf, 0, (size_t)(bw * bh * bsp * es));
  for (int64_t r = 0; r < rows; r++) {
    uint8_t *d = buf + r * bw * bsp * es;
    const uint8_t *s = img + ((y + r) * W + x) * C * es;
    if (ch < 0) {
      memcpy(d, s, (size_t)(cols * C * es));
    } else {
      s += ch * es;
      for (int64_t c = 0; c < cols; c++) memcpy(d + c * es, s + c * C * es, (size_t)es);
    }
  }
}

dama_status dama_tiff_write(const char *path, const dama_tensor *img, int32_t planar, int32_t compression,
                            int32_t tiled, int32_t bigtiff, const char *const *channel_names) {
  const char *op = "tiff_write";
  if (!path || !img) return dama_error(DAMA_ERR_ARG, "%s: path and img are required", op);
  /* a tensor on another device is copied to the host for writing (dama_to_device below) */
  if (img->ndim != 2 && img->ndim != 3)
    return dama_io_err(DAMA_ERR_SHAPE, op, path, "expected an H x W or H x W x C tensor, got %d dims", (int)img->ndim);
  dama_dtype dt = (dama_dtype)img->dtype;
  if (dt != DAMA_U8 && dt != DAMA_U16 && dt != DAMA_F32 && dt != DAMA_F64 && dt != DAMA_I32)
    return dama_io_err(DAMA_ERR_DTYPE, op, path, "expected u8, u16, f32, f64 or i32, got %s", dama_dtype_name(dt));
  int64_t H = img->shape[0], W = img->shape[1], C = img->ndim == 3 ? img->shape[2] : 1;
  if (H <= 0 || W <= 0 || C <= 0 || H > UINT32_MAX || W > UINT32_MAX || C > 65535)
    return dama_io_err(DAMA_ERR_SHAPE, op, path, "unsupported size %lldx%lldx%lld", (long long)H, (long long)W,
                       (long long)C);
  if (planar < 0 || planar > 2)
    return dama_io_err(DAMA_ERR_ARG, op, path, "planar must be 0 (interleaved), 1 (pages) or 2 (separate), got %d",
                       (int)planar);
  if (compression < 0 || compression > 2)
    return dama_io_err(DAMA_ERR_ARG, op, path, "compression must be 0 (none), 1 (deflate) or 2 (lzw), got %d",
                       (int)compression);
  int64_t tile = tiled == 1 ? 256 : tiled;
  if (tile < 0 || (tile > 0 && (tile < 16 || tile % 16 != 0)))
    return dama_io_err(DAMA_ERR_ARG, op, path, "tiled must be 0, 1 or a multiple of 16 >= 16, got %d", (int)tiled);
  if (channel_names) {
    for (int64_t c = 0; c < C; c++)
      if (!channel_names[c] || strchr(channel_names[c], '\n'))
        return dama_io_err(DAMA_ERR_ARG, op, path, "channel name %lld is NULL or contains a newline", (long long)c);
  }
  int es = dama_dtype_size(dt);
  int layout = C == 1 ? DAMA_TIFF_INTERLEAVED : planar;
  if ((double)H * W * C * es > 3.5 * (double)(1u << 30)) bigtiff = 1;

  dama_io_tiff_init();
  dama_tensor *ct = NULL;
  DAMA_TRY(dama_to_device(&ct, img, (dama_device){DAMA_CPU, 0}));
  const uint8_t *data = dama_data_ptr(ct);
  char *xml = channel_names ? ome_xml(H, W, C, dt, layout, channel_names) : NULL;
  if (channel_names && !xml) {
    dama_tensor_release(ct);
    return dama_io_err(DAMA_ERR_OOM, op, path, "out of memory");
  }

  char tmp[4200];
  int fd = -1;
  dama_status st = dama_io_tmp_open(op, path, tmp, sizeof tmp, &fd);
  wctx ctx;
  ctx.err[0] = 0;
  TIFF *tif = NULL;
  if (st == DAMA_OK) {
    TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
    if (o) {
      TIFFOpenOptionsSetErrorHandlerExtR(o, w_on_error, &ctx);
      TIFFOpenOptionsSetWarningHandlerExtR(o, w_on_warning, &ctx);
      tif = TIFFFdOpenExt(fd, tmp, bigtiff ? "w8" : "w", o);
      TIFFOpenOptionsFree(o);
    }
    if (!tif) {
      close(fd);
      st = dama_io_err(DAMA_ERR_IO, op, path, "cannot start the TIFF (libtiff: %s)", ctx.err);
    }
  }
  int64_t pages = layout == DAMA_TIFF_PAGES ? C : 1;
  int64_t spp = layout == DAMA_TIFF_PAGES ? 1 : C;
  int64_t bsp = layout == DAMA_TIFF_INTERLEAVED ? spp : 1; /* samples per pixel inside one block */
  int64_t bw = tile ? tile : W;
  int64_t bh = tile ? tile : (65536 / (W * bsp * es) > 0 ? 65536 / (W * bsp * es) : 1);
  if (bh > H && !tile) bh = H;
  uint8_t *buf = NULL;
  if (st == DAMA_OK) {
    buf = malloc((size_t)(bw * bh * bsp * es));
    if (!buf) st = dama_io_err(DAMA_ERR_OOM, op, path, "out of memory for a block buffer");
  }
  uint16_t sfmt = dt == DAMA_F32 || dt == DAMA_F64 ? SAMPLEFORMAT_IEEEFP : dt == DAMA_I32 ? SAMPLEFORMAT_INT
                                                                                        : SAMPLEFORMAT_UINT;
  uint16_t comp = compression == DAMA_TIFF_DEFLATE ? COMPRESSION_ADOBE_DEFLATE
                  : compression == DAMA_TIFF_LZW ? COMPRESSION_LZW : COMPRESSION_NONE;
  for (int64_t pg = 0; pg < pages && st == DAMA_OK; pg++) {
    int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)W) && TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)H) &&
             TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, (uint16_t)(es * 8)) &&
             TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)spp) && TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, sfmt) &&
             TIFFSetField(tif, TIFFTAG_PLANARCONFIG,
                          layout == DAMA_TIFF_SEPARATE ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG) &&
             TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK) &&
             TIFFSetField(tif, TIFFTAG_COMPRESSION, comp) && TIFFSetField(tif, TIFFTAG_SOFTWARE, "dama");
    if (ok && spp > 1) {
      uint16_t *extra = calloc((size_t)spp, sizeof(uint16_t)); /* EXTRASAMPLE_UNSPECIFIED = 0 */
      ok = extra && TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, (uint16_t)(spp - 1), extra);
      free(extra);
    }
    if (ok && pages > 1) ok = TIFFSetField(tif, TIFFTAG_PAGENUMBER, (uint16_t)pg, (uint16_t)pages);
    if (ok && pg == 0 && xml) ok = TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, xml);
    if (ok && tile) ok = TIFFSetField(tif, TIFFTAG_TILEWIDTH, (uint32_t)tile) &&
                         TIFFSetField(tif, TIFFTAG_TILELENGTH, (uint32_t)tile);
    if (ok && !tile) ok = TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, (uint32_t)bh);
    if (!ok) {
      st = dama_io_err(DAMA_ERR_IO, op, path, "cannot set the TIFF tags of page %lld (libtiff: %s)", (long long)pg, ctx.err);
      break;
    }
    int64_t planes = layout == DAMA_TIFF_SEPARATE ? C : 1;
    for (int64_t p = 0; p < planes && st == DAMA_OK; p++) {
      int64_t ch = layout == DAMA_TIFF_PAGES ? pg : layout == DAMA_TIFF_SEPARATE ? p : -1;
      for (int64_t y = 0; y < H && st == DAMA_OK; y += bh) {
        for (int64_t x = 0; x < W; x += bw) {
          gather(buf, bw, bh, data, H, W, C, es, y, x, ch);
          tmsize_t r;
          if (tile) {
            r = TIFFWriteEncodedTile(tif, TIFFComputeTile(tif, (uint32_t)x, (uint32_t)y, 0, (uint16_t)p), buf,
                                     (tmsize_t)(bw * bh * bsp * es));
          } else {
            int64_t rows = H - y < bh ? H - y : bh;
            r = TIFFWriteEncodedStrip(tif, TIFFComputeStrip(tif, (uint32_t)y, (uint16_t)p), buf,
                                      (tmsize_t)(rows * W * bsp * es));
          }
          if (r < 0) {
            st = dama_io_err(DAMA_ERR_IO, op, path, "writing page %lld failed (libtiff: %s)", (long long)pg, ctx.err);
            break;
          }
        }
      }
    }
    if (st == DAMA_OK && pg + 1 < pages && !TIFFWriteDirectory(tif))
      st = dama_io_err(DAMA_ERR_IO, op, path, "writing page %lld failed (libtiff: %s)", (long long)pg, ctx.err);
  }
  if (tif) {
    /* TIFFClose flushes the last directory; it reports failure only through the error handler. */
    ctx.err[0] = 0;
    if (st == DAMA_OK) TIFFFlush(tif);
    TIFFClose(tif);
    if (st == DAMA_OK && ctx.err[0]) st = dama_io_err(DAMA_ERR_IO, op, path, "finishing the TIFF failed (libtiff: %s)", ctx.err);
  }
  free(buf);
  free(xml);
  dama_tensor_release(ct);
  if (fd >= 0) {
    if (st == DAMA_OK) st = dama_io_commit(op, tmp, path);
    else dama_io_discard(tmp);
  }
  return st;
}
