/* TIFF reading with libtiff: header facts, whole images (raw dtype or scaled f32), windows that decode
 * only the strips/tiles they touch, and OME-XML channel names.
 *
 * Channel layouts: interleaved (PlanarConfiguration 1), separate planes in one page (PlanarConfiguration
 * 2), one single-sample page per channel (tifffile's (C, H, W), IMC files), and tifffile's default for an
 * (H, W, C) array (one W x C page per row, recognised by its {"shape": ...} description). All come out H x W x C.
 * libtiff's messages never reach stderr: each TIFF* gets its own error handler that stores the first
 * message in the handle's context, and the global handlers are silenced once (thread-safe). */
#define _GNU_SOURCE
#include "core/dama_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

/* io_util.c */
dama_status dama_io_err(dama_status st, const char *op, const char *path, const char *fmt, ...);
dama_status dama_io_slurp(const char *op, const char *path, uint8_t **data, int64_t *size);
int dama_io_sniff(const uint8_t *p, int64_t n);

/* shared with io_image.c / io_tiff_write.c */
void dama_io_tiff_init(void);
dama_status dama_io_tiff_info_mem(const char *op, const char *path, const uint8_t *data, int64_t size,
                                  dama_image_info *info);
dama_status dama_io_tiff_read_mem(const char *op, const char *path, const uint8_t *data, int64_t size,
                                  int out_f32, int64_t eh, int64_t ew, int64_t ec, float *dst, dama_tensor **out);

/* ---- libtiff setup ---- */

static _Thread_local char g_tiff_global_msg[256];

static void tiff_global_handler(const char *module, const char *fmt, va_list ap) {
  (void)module;
  vsnprintf(g_tiff_global_msg, sizeof g_tiff_global_msg, fmt, ap);
}
static void tiff_global_warning(const char *module, const char *fmt, va_list ap) {
  (void)module; (void)fmt; (void)ap;
}
static pthread_once_t g_tiff_once = PTHREAD_ONCE_INIT;
static void tiff_init_once(void) {
  TIFFSetErrorHandler(tiff_global_handler);
  TIFFSetWarningHandler(tiff_global_warning);
}
void dama_io_tiff_init(void) { pthread_once(&g_tiff_once, tiff_init_once); }

/* ---- an open TIFF (from memory or a file) with its channel layout ---- */

typedef struct memfile { const uint8_t *data; uint64_t size, pos; } memfile;

typedef struct tfile {
  TIFF *tif;
  const char *op, *path;
  memfile mf;
  char err[400];          /* first libtiff message for this handle */
  int64_t width, height, channels;
  dama_dtype dtype;
  int layout;             /* dama_tiff_layout */
  int n_pages, bigtiff, tiled;
  int64_t tile_w, tile_h;
  uint16_t spp, bps, sfmt;
  tdir_t *pages;          /* DAMA_TIFF_PAGES: directory of each channel; ROW_PAGES: of each row */
  int64_t page_w, page_h; /* size of page 0 */
  int unverified;         /* pages assumed to be all directories, checked while reading */
  int fallback;           /* that assumption failed: read again with a full page scan */
  int64_t file_size;      /* bytes in the file (bounds what its header may claim) */
} tfile;

static int tf_on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  (void)tif; (void)module;
  tfile *f = user;
  if (!f->err[0]) vsnprintf(f->err, sizeof f->err, fmt, ap);
  return 1; /* handled: keep it off stderr */
}
static int tf_on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap) {
  (void)tif; (void)user; (void)module; (void)fmt; (void)ap;
  return 1;
}

static tmsize_t mf_read(thandle_t h, void *buf, tmsize_t n) {
  memfile *m = (memfile *)h;
  if (n <= 0 || m->pos >= m->size) return 0;
  uint64_t k = (uint64_t)n;
  if (k > m->size - m->pos) k = m->size - m->pos;
  memcpy(buf, m->data + m->pos, (size_t)k);
  m->pos += k;
  return (tmsize_t)k;
}
static tmsize_t mf_write(thandle_t h, void *buf, tmsize_t n) { (void)h; (void)buf; (void)n; return 0; }
static toff_t mf_seek(thandle_t h, toff_t off, int whence) {
  memfile *m = (memfile *)h;
  uint64_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
  uint64_t np = base + off;
  if (np < base && off > 0) return (toff_t)-1;
  m->pos = np;
  return np;
}
static int mf_close(thandle_t h) { (void)h; return 0; }
static toff_t mf_size(thandle_t h) { return ((memfile *)h)->size; }
static int mf_map(thandle_t h, void **base, toff_t *size) {
  memfile *m = (memfile *)h;
  *base = (void *)m->data; /* libtiff only reads through the map in read mode */
  *size = m->size;
  return 1;
}
static void mf_unmap(thandle_t h, void *base, toff_t size) { (void)h; (void)base; (void)size; }

/* "op: 'path': <msg> (libtiff: <first libtiff message>)" */
static dama_status tf_fail(tfile *f, dama_status st, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (f->err[0]) return dama_io_err(st, f->op, f->path, "%s (libtiff: %s)", msg, f->err);
  return dama_io_err(st, f->op, f->path, "%s", msg);
}

static void tf_close(tfile *f) {
  if (f->tif) TIFFClose(f->tif);
  f->tif = NULL;
  free(f->pages);
  f->pages = NULL;
}

static TIFFOpenOptions *tf_options(tfile *f) {
  TIFFOpenOptions *o = TIFFOpenOptionsAlloc();
  if (!o) return NULL;
  TIFFOpenOptionsSetErrorHandlerExtR(o, tf_on_error, f);
  TIFFOpenOptionsSetWarningHandlerExtR(o, tf_on_warning, f);
  /* A corrupt header must not make libtiff allocate gigabytes for one buffer. */
  TIFFOpenOptionsSetMaxSingleMemAlloc(o, (tmsize_t)2 << 30);
  return o;
}

static dama_status tf_open_path(tfile *f, const char *op, const char *path);

/* data == NULL: open by path instead. */
static dama_status tf_open_mem(tfile *f, const char *op, const char *path, const uint8_t *data, int64_t size) {
  if (!data) return tf_open_path(f, op, path);
  memset(f, 0, sizeof *f);
  f->op = op;
  f->path = path;
  dama_io_tiff_init();
  if (dama_io_sniff(data, size) != DAMA_FMT_TIFF)
    return tf_fail(f, DAMA_ERR_FORMAT, "not a TIFF file (no II*/MM* header)");
  f->mf.data = data;
  f->mf.size = (uint64_t)size;
  f->file_size = size;
  TIFFOpenOptions *o = tf_options(f);
  if (!o) return dama_io_err(DAMA_ERR_OOM, op, path, "cannot allocate TIFF options");
  f->tif = TIFFClientOpenExt(path, "r", (thandle_t)&f->mf, mf_read, mf_write, mf_seek, mf_close, mf_size,
                             mf_map, mf_unmap, o);
  TIFFOpenOptionsFree(o);
  if (!f->tif) return tf_fail(f, DAMA_ERR_FORMAT, "corrupt or truncated TIFF");
  return DAMA_OK;
}

/* From the file system without reading it whole ('m': no memory map, so windows stay bounded). */
static dama_status tf_open_path(tfile *f, const char *op, const char *path) {
  memset(f, 0, sizeof *f);
  f->op = op;
  f->path = path;
  dama_io_tiff_init();
  if (!path) return dama_error(DAMA_ERR_ARG, "%s: path is NULL", op);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return dama_io_err(DAMA_ERR_IO, op, path, "cannot open: %s", strerror(errno));
  uint8_t head[4] = {0};
  struct stat sb;
  ssize_t got = read(fd, head, 4);
  int have_stat = fstat(fd, &sb) == 0;
  int isdir = have_stat && S_ISDIR(sb.st_mode);
  f->file_size = have_stat ? (int64_t)sb.st_size : 0;
  close(fd);
  if (isdir) return dama_io_err(DAMA_ERR_IO, op, path, "is a directory, expected a TIFF file");
  if (got != 4 || dama_io_sniff(head, 4) != DAMA_FMT_TIFF)
    return tf_fail(f, DAMA_ERR_FORMAT, "not a TIFF file (no II*/MM* header)");
  TIFFOpenOptions *o = tf_options(f);
  if (!o) return dama_io_err(DAMA_ERR_OOM, op, path, "cannot allocate TIFF options");
  f->tif = TIFFOpenExt(path, "rm", o);
  TIFFOpenOptionsFree(o);
  if (!f->tif) return tf_fail(f, DAMA_ERR_FORMAT, "corrupt or truncated TIFF");
  return DAMA_OK;
}

static int tf_map_dtype(uint16_t bps, uint16_t sfmt, dama_dtype *dt) {
  if (sfmt == SAMPLEFORMAT_UINT && bps == 8) *dt = DAMA_U8;
  else if (sfmt == SAMPLEFORMAT_UINT && bps == 16) *dt = DAMA_U16;
  else if (sfmt == SAMPLEFORMAT_IEEEFP && bps == 32) *dt = DAMA_F32;
  else if (sfmt == SAMPLEFORMAT_IEEEFP && bps == 64) *dt = DAMA_F64;
  else if (sfmt == SAMPLEFORMAT_INT && bps == 32) *dt = DAMA_I32;
  else return 0;
  return 1;
}

static const char *sfmt_name(uint16_t s) {
  switch (s) {
  case SAMPLEFORMAT_UINT: return "unsigned integer";
  case SAMPLEFORMAT_INT: return "signed integer";
  case SAMPLEFORMAT_IEEEFP: return "float";
  case SAMPLEFORMAT_COMPLEXINT: return "complex integer";
  case SAMPLEFORMAT_COMPLEXIEEEFP: return "complex float";
  default: return "untyped";
  }
}

/* Checks of the current directory that every read needs: size, sample type, codec. */
static dama_status tf_check_dir(tfile *f, uint32_t *w, uint32_t *h, uint16_t *spp, uint16_t *bps, uint16_t *sfmt,
                                dama_dtype *dt) {
  TIFF *tif = f->tif;
  if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, w) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, h))
    return tf_fail(f, DAMA_ERR_FORMAT, "page %u has no ImageWidth/ImageLength", (unsigned)TIFFCurrentDirectory(tif));
  if (*w == 0 || *h == 0)
    return tf_fail(f, DAMA_ERR_FORMAT, "page %u has an empty size %ux%u", (unsigned)TIFFCurrentDirectory(tif), *w, *h);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, sfmt);
  if (*spp == 0) return tf_fail(f, DAMA_ERR_FORMAT, "SamplesPerPixel is 0");
  if (!tf_map_dtype(*bps, *sfmt, dt))
    return tf_fail(f, DAMA_ERR_UNSUPPORTED,
                   "unsupported sample type: %u-bit %s (supported: 8/16-bit unsigned, 32-bit signed, 32/64-bit float)",
                   *bps, sfmt_name(*sfmt));
  uint16_t comp = COMPRESSION_NONE;
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
  if (!TIFFIsCODECConfigured(comp))
    return tf_fail(f, DAMA_ERR_UNSUPPORTED, "compression %u is not available in this libtiff", comp);
  uint16_t photo = PHOTOMETRIC_MINISBLACK;
  if (TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo) && photo == PHOTOMETRIC_YCBCR) {
    if (comp == COMPRESSION_JPEG) TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    else return tf_fail(f, DAMA_ERR_UNSUPPORTED, "YCbCr data without JPEG compression is not supported");
  }
  return DAMA_OK;
}

/* The most a codec can expand its input: what a file of n bytes can decode to is at most n times this. */
static double tf_max_ratio(uint16_t comp) {
  return comp == COMPRESSION_NONE       ? 1
         : comp == COMPRESSION_PACKBITS ? 128
         : (comp == COMPRESSION_ADOBE_DEFLATE || comp == COMPRESSION_DEFLATE) ? 1100
         : comp == COMPRESSION_LZW      ? 4096
                                        : 65536; /* zstd, LZMA, JPEG, ...: generous */
}

/* verify_pages = 0 (whole-image reads): assume every directory is a channel page and check each while
 * reading it (tf_goto_page), instead of parsing every directory twice. */
static dama_status tf_layout(tfile *f, int verify_pages) {
  TIFF *tif = f->tif;
  uint32_t w, h;
  uint16_t spp, bps, sfmt, planar = PLANARCONFIG_CONTIG;
  dama_dtype dt;
  DAMA_TRY(tf_check_dir(f, &w, &h, &spp, &bps, &sfmt, &dt));
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  f->width = w;
  f->height = h;
  f->page_w = w;
  f->page_h = h;
  f->spp = spp;
  f->bps = bps;
  f->sfmt = sfmt;
  f->dtype = dt;
  f->bigtiff = TIFFIsBigTIFF(tif) ? 1 : 0;
  f->tiled = TIFFIsTiled(tif) ? 1 : 0;
  if (f->tiled) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    f->tile_w = tw;
    f->tile_h = th;
  } else {
    uint32_t rps = h;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
    f->tile_w = w;
    f->tile_h = rps > h ? h : rps;
  }
  /* tifffile's shaped series: {"shape": [a, b, c]} in page 0's description. */
  int64_t shaped[3] = {0, 0, 0};
  int n_shaped = 0;
  char *desc = NULL;
  if (TIFFGetField(tif, TIFFTAG_IMAGEDESCRIPTION, &desc) && desc && desc[0] == '{') {
    const char *q = strstr(desc, "\"shape\":");
    q = q ? strchr(q, '[') : NULL;
    while (q && n_shaped < 4) {
      q++;
      while (*q == ' ') q++;
      if (*q < '0' || *q > '9') break;
      char *e;
      long long v = strtoll(q, &e, 10);
      if (n_shaped < 3) shaped[n_shaped] = v;
      n_shaped++;
      q = e;
      while (*q == ' ') q++;
      if (*q != ',') break;
    }
  }
  f->n_pages = (int)TIFFNumberOfDirectories(tif);
  if (f->n_pages < 1) f->n_pages = 1;
  f->channels = spp;
  f->layout = (planar == PLANARCONFIG_SEPARATE && spp > 1) ? DAMA_TIFF_SEPARATE : DAMA_TIFF_INTERLEAVED;
  if (f->n_pages > 1 && spp == 1) {
    /* One page per channel: every following full-resolution page of the same size and type. */
    f->pages = malloc(sizeof(tdir_t) * (size_t)f->n_pages);
    if (!f->pages) return tf_fail(f, DAMA_ERR_OOM, "cannot allocate the page list");
    int nch = 0;
    f->pages[nch++] = 0;
    if (!verify_pages) {
      for (int d = 1; d < f->n_pages; d++) f->pages[nch++] = (tdir_t)d;
      f->unverified = 1;
    }
    for (int d = nch; d < f->n_pages; d++) {
      if (!TIFFSetDirectory(tif, (tdir_t)d)) break;
      uint32_t sub = 0, w2 = 0, h2 = 0;
      uint16_t spp2 = 1, bps2 = 1, sfmt2 = 1;
      TIFFGetFieldDefaulted(tif, TIFFTAG_SUBFILETYPE, &sub);
      if (sub & FILETYPE_REDUCEDIMAGE) continue;
      TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w2);
      TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h2);
      TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp2);
      TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps2);
      TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &sfmt2);
      if (w2 != w || h2 != h || spp2 != 1 || bps2 != bps || sfmt2 != sfmt) break;
      f->pages[nch++] = (tdir_t)d;
    }
    if (TIFFCurrentDirectory(tif) != 0 && !TIFFSetDirectory(tif, 0))
      return tf_fail(f, DAMA_ERR_FORMAT, "cannot return to page 0");
    if (nch > 1) {
      f->layout = DAMA_TIFF_PAGES;
      f->channels = nch;
      /* (H, W, C) written by tifffile as H pages of W x C: C is the smallest of the three. */
      if (n_shaped == 3 && shaped[0] == nch && nch == f->n_pages && shaped[1] == h && shaped[2] == w &&
          shaped[2] < shaped[0] && shaped[2] < shaped[1]) {
        f->layout = DAMA_TIFF_ROW_PAGES;
        f->height = shaped[0];
        f->width = shaped[1];
        f->channels = shaped[2];
        f->tile_w = f->width;
        f->tile_h = 1;
      }
    }
  }
  /* Before anything is allocated: page 0's pixels must fit in the file at the codec's best ratio
   * (a 200-byte file cannot hold a 2^30-pixel-wide page), and the whole image under a sane limit. */
  uint16_t comp = COMPRESSION_NONE;
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
  double ratio = tf_max_ratio(comp);
  double page0 = (double)w * (double)h * (double)spp * (double)dama_dtype_size(dt);
  if (f->file_size > 0 && page0 > (double)f->file_size * ratio)
    return tf_fail(f, DAMA_ERR_FORMAT,
                   "page 0 claims ImageWidth %u x ImageLength %u x SamplesPerPixel %u of %d-byte samples = %.0f "
                   "bytes, more than a %lld-byte file can hold (compression %u expands at most %.0f:1)",
                   w, h, (unsigned)spp, dama_dtype_size(dt), page0, (long long)f->file_size, (unsigned)comp, ratio);
  double total = (double)f->width * (double)f->height * (double)f->channels * (double)dama_dtype_size(dt);
  if (total > (double)((int64_t)1 << 40))
    return tf_fail(f, DAMA_ERR_FORMAT,
                   "implausible image size %lld x %lld pixels x %lld channels (%.0f bytes, more than the 2^40-byte "
                   "limit)", (long long)f->height, (long long)f->width, (long long)f->channels, total);
  return DAMA_OK;
}

static void tf_fill_info(const tfile *f, dama_image_info *info) {
  memset(info, 0, sizeof *info);
  info->width = f->width;
  info->height = f->height;
  info->channels = f->channels;
  info->dtype = f->dtype;
  info->planar = f->layout;
  info->tiled = f->tiled;
  info->bigtiff = f->bigtiff;
  info->tile_w = f->tile_w;
  info->tile_h = f->tile_h;
  info->n_pages = f->n_pages;
  info->format = DAMA_FMT_TIFF;
}

/* ---- sample conversion ---- */

static inline float load_as_f32(const uint8_t *p, dama_dtype dt) {
  switch (dt) {
  case DAMA_U8: return (float)p[0] / 255.0f;
  case DAMA_U16: { uint16_t v; memcpy(&v, p, 2); return (float)v / 65535.0f; }
  case DAMA_F32: { float v; memcpy(&v, p, 4); return v; }
  case DAMA_F64: { double v; memcpy(&v, p, 8); return (float)v; }
  default: { int32_t v; memcpy(&v, p, 4); return (float)v; }
  }
}

/* n samples from src (stride src_stride samples) to dst (stride dst_stride elements of the output). */
static void conv_run(void *dst, int64_t dst_stride, const uint8_t *src, int64_t src_stride, int64_t n,
                     dama_dtype dt, int out_f32) {
  int es = dama_dtype_size(dt);
  if (out_f32) {
    float *d = dst;
    if (dt == DAMA_U16 && src_stride == 1 && dst_stride == 1) {
      for (int64_t i = 0; i < n; i++) { uint16_t v; memcpy(&v, src + 2 * i, 2); d[i] = (float)v / 65535.0f; }
    } else if (dt == DAMA_U8 && src_stride == 1 && dst_stride == 1) {
      for (int64_t i = 0; i < n; i++) d[i] = (float)src[i] / 255.0f;
    } else if (dt == DAMA_U16) {
      for (int64_t i = 0; i < n; i++) {
        uint16_t v;
        memcpy(&v, src + 2 * i * src_stride, 2);
        d[i * dst_stride] = (float)v / 65535.0f;
      }
    } else if (dt == DAMA_U8) {
      for (int64_t i = 0; i < n; i++) d[i * dst_stride] = (float)src[i * src_stride] / 255.0f;
    } else if (dt == DAMA_F32) {
      for (int64_t i = 0; i < n; i++) memcpy(&d[i * dst_stride], src + 4 * i * src_stride, 4);
    } else {
      for (int64_t i = 0; i < n; i++) d[i * dst_stride] = load_as_f32(src + i * src_stride * es, dt);
    }
    return;
  }
  uint8_t *d = dst;
  if (src_stride == 1 && dst_stride == 1) {
    memcpy(d, src, (size_t)(n * es));
    return;
  }
  switch (es) {
  case 1: for (int64_t i = 0; i < n; i++) d[i * dst_stride] = src[i * src_stride]; break;
  case 2: for (int64_t i = 0; i < n; i++) memcpy(d + 2 * i * dst_stride, src + 2 * i * src_stride, 2); break;
  case 4: for (int64_t i = 0; i < n; i++) memcpy(d + 4 * i * dst_stride, src + 4 * i * src_stride, 4); break;
  default: for (int64_t i = 0; i < n; i++) memcpy(d + 8 * i * dst_stride, src + 8 * i * src_stride, 8); break;
  }
}

/* Widen raw u8/u16 samples that sit at the END of the float buffer dst into scaled floats, in place.
 * Writing dst[i] never reaches raw samples not yet read (see the bound in the comment below). */
static void widen_in_place(float *dst, int64_t total, dama_dtype dt) {
  int es = dama_dtype_size(dt);
  const uint8_t *raw = (const uint8_t *)dst + total * (4 - es);
  enum { CH = 1024 };
  uint8_t tmp[CH * 2];
  /* Chunk [i0, i0+k) writes bytes [4*i0, 4*(i0+k)) <= raw offset of sample i0+k, since
   * 4*(i0+k) <= total*(4-es) + (i0+k)*es whenever i0+k <= total; its own raw bytes are copied first. */
  for (int64_t i0 = 0; i0 < total; i0 += CH) {
    int64_t k = total - i0 < CH ? total - i0 : CH;
    memcpy(tmp, raw + i0 * es, (size_t)(k * es));
    if (dt == DAMA_U16) {
      uint16_t v16[CH];
      memcpy(v16, tmp, (size_t)(k * 2));
      for (int64_t i = 0; i < k; i++) dst[i0 + i] = (float)v16[i] / 65535.0f;
    } else {
      for (int64_t i = 0; i < k; i++) dst[i0 + i] = (float)tmp[i] / 255.0f;
    }
  }
}

/* ---- region reading ---- */

/* Window [x0, x0+w) x [y0, y0+h) of the CURRENT directory. For each k < nsel, sample sel[k] of this
 * directory goes to output channel dst_ch0 + k of dst (h x w x dst_nch, row-major, channel fastest). */
static dama_status tf_read_dir_region(tfile *f, int64_t x0, int64_t y0, int64_t w, int64_t h, int nsel,
                                      const int32_t *sel, void *dst, int64_t dst_nch, int64_t dst_ch0, int out_f32) {
  TIFF *tif = f->tif;
  unsigned dir = (unsigned)TIFFCurrentDirectory(tif);
  uint32_t iw, ih;
  uint16_t spp, bps, sfmt, planar = PLANARCONFIG_CONTIG;
  dama_dtype dt;
  DAMA_TRY(tf_check_dir(f, &iw, &ih, &spp, &bps, &sfmt, &dt));
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  int sep = planar == PLANARCONFIG_SEPARATE && spp > 1;
  int tiled = TIFFIsTiled(tif);
  int es = dama_dtype_size(dt);
  int64_t tw, th;
  if (tiled) {
    uint32_t a = 0, b = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &a);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &b);
    if (a == 0 || b == 0) return tf_fail(f, DAMA_ERR_FORMAT, "page %u has a zero tile size", dir);
    tw = a;
    th = b;
  } else {
    uint32_t rps = ih;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
    if (rps == 0) return tf_fail(f, DAMA_ERR_FORMAT, "page %u has RowsPerStrip 0", dir);
    tw = iw;
    th = rps > ih ? ih : rps;
  }
  int64_t bsp = sep ? 1 : spp; /* samples per pixel inside one block */
  int64_t need_full = tw * th * bsp * es;
  tmsize_t bsize = tiled ? TIFFTileSize(tif) : TIFFStripSize(tif);
  if (bsize <= 0 || bsize < need_full)
    return tf_fail(f, DAMA_ERR_FORMAT, "page %u: block size %lld is smaller than %lld", dir, (long long)bsize,
                   (long long)need_full);
  /* a tile or strip of TileWidth x TileLength (or ImageWidth x RowsPerStrip) must fit in the file
   * at the codec's best ratio too (a 489-byte file claimed 5 GB tiles; found by fuzz_tiff) */
  uint16_t bcomp = COMPRESSION_NONE;
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &bcomp);
  if (f->file_size > 0 && (double)bsize > (double)f->file_size * tf_max_ratio(bcomp) + (double)(1 << 20))
    return tf_fail(f, DAMA_ERR_FORMAT,
                   "page %u: a %s of %lld x %lld pixels is %lld bytes, more than a %lld-byte file can hold "
                   "(compression %u)", dir, tiled ? "tile (TileWidth x TileLength)" : "strip (ImageWidth x RowsPerStrip)",
                   (long long)tw, (long long)th, (long long)bsize, (long long)f->file_size, (unsigned)bcomp);
  uint8_t *buf = malloc((size_t)bsize);
  if (!buf) return tf_fail(f, DAMA_ERR_OOM, "cannot allocate a %lld-byte block buffer", (long long)bsize);
  int oes = out_f32 ? 4 : es;
  int identity = !sep && nsel == spp && dst_nch == spp;
  for (int k = 0; identity && k < nsel; k++) identity = sel[k] == k;
  dama_status st = DAMA_OK;
  int nplanes = sep ? nsel : 1;
  for (int64_t by = (y0 / th) * th; by < y0 + h && st == DAMA_OK; by += th) {
    if (dama_interrupt_pending()) {
      st = dama_io_err(DAMA_ERR_INTERRUPTED, f->op, f->path, "interrupted");
      break;
    }
    int64_t r0 = by > y0 ? by : y0;
    int64_t r1 = by + th < y0 + h ? by + th : y0 + h;
    for (int64_t bx = (x0 / tw) * tw; bx < x0 + w && st == DAMA_OK; bx += tw) {
      int64_t c0 = bx > x0 ? bx : x0;
      int64_t c1 = bx + tw < x0 + w ? bx + tw : x0 + w;
      for (int p = 0; p < nplanes; p++) {
        uint16_t plane = sep ? (uint16_t)sel[p] : 0;
        tmsize_t got;
        int64_t need;
        uint32_t idx;
        if (tiled) {
          idx = TIFFComputeTile(tif, (uint32_t)bx, (uint32_t)by, 0, plane);
          need = need_full;
          got = TIFFReadEncodedTile(tif, idx, buf, bsize);
        } else {
          idx = TIFFComputeStrip(tif, (uint32_t)by, plane);
          int64_t rows = ih - by < th ? ih - by : th;
          need = rows * tw * bsp * es;
          got = TIFFReadEncodedStrip(tif, idx, buf, (tmsize_t)need);
        }
        if (got < 0 || (int64_t)got < need) {
          st = tf_fail(f, DAMA_ERR_FORMAT, "page %u: %s %u is truncated or corrupt (decoded %lld of %lld bytes)", dir,
                       tiled ? "tile" : "strip", idx, (long long)got, (long long)need);
          break;
        }
        for (int64_t r = r0; r < r1; r++) {
          const uint8_t *srow = buf + ((r - by) * tw + (c0 - bx)) * bsp * es;
          uint8_t *drow = (uint8_t *)dst + (((r - y0) * w + (c0 - x0)) * dst_nch + dst_ch0) * oes;
          if (sep) {
            conv_run(drow + p * oes, dst_nch, srow, 1, c1 - c0, dt, out_f32);
          } else if (identity) {
            conv_run(drow, 1, srow, 1, (c1 - c0) * spp, dt, out_f32);
          } else {
            for (int k = 0; k < nsel; k++)
              conv_run(drow + k * oes, dst_nch, srow + sel[k] * es, spp, c1 - c0, dt, out_f32);
          }
        }
      }
    }
  }
  free(buf);
  return st;
}

/* Make directory d current; in unverified mode check that it is a page like page 0. */
static dama_status tf_goto_page(tfile *f, tdir_t d) {
  if (TIFFCurrentDirectory(f->tif) != d && !TIFFSetDirectory(f->tif, d)) {
    if (f->unverified) f->fallback = 1;
    return tf_fail(f, DAMA_ERR_FORMAT, "cannot read page %u", (unsigned)d);
  }
  if (f->unverified && d != 0) {
    uint32_t sub = 0, w2 = 0, h2 = 0;
    uint16_t spp2 = 1, bps2 = 1, sfmt2 = 1;
    TIFFGetFieldDefaulted(f->tif, TIFFTAG_SUBFILETYPE, &sub);
    TIFFGetField(f->tif, TIFFTAG_IMAGEWIDTH, &w2);
    TIFFGetField(f->tif, TIFFTAG_IMAGELENGTH, &h2);
    TIFFGetFieldDefaulted(f->tif, TIFFTAG_SAMPLESPERPIXEL, &spp2);
    TIFFGetFieldDefaulted(f->tif, TIFFTAG_BITSPERSAMPLE, &bps2);
    TIFFGetFieldDefaulted(f->tif, TIFFTAG_SAMPLEFORMAT, &sfmt2);
    if ((sub & FILETYPE_REDUCEDIMAGE) || w2 != f->page_w || h2 != f->page_h || spp2 != 1 || bps2 != f->bps ||
        sfmt2 != f->sfmt) {
      f->fallback = 1;
      return tf_fail(f, DAMA_ERR_FORMAT, "page %u is not a channel page", (unsigned)d);
    }
  }
  return DAMA_OK;
}

/* Window of the whole image's channels chan[0..n) into dst (h x w x n). */
static dama_status tf_read_region(tfile *f, int64_t x0, int64_t y0, int64_t w, int64_t h, int n, const int32_t *chan,
                                  void *dst, int out_f32) {
  if (f->layout == DAMA_TIFF_ROW_PAGES) {
    /* Page r is image row r, stored as a W x C single-sample image. */
    int64_t C = f->channels;
    int oes = out_f32 ? 4 : dama_dtype_size(f->dtype);
    int identity = n == C;
    for (int k = 0; identity && k < n; k++) identity = chan[k] == k;
    uint8_t *tmp = identity ? NULL : malloc((size_t)(w * C * oes));
    if (!identity && !tmp) return tf_fail(f, DAMA_ERR_OOM, "cannot allocate a row buffer");
    dama_status st = DAMA_OK;
    for (int64_t r = y0; r < y0 + h && st == DAMA_OK; r++) {
      st = tf_goto_page(f, f->pages[r]);
      if (st != DAMA_OK) break;
      uint8_t *drow = (uint8_t *)dst + (r - y0) * w * n * oes;
      int32_t zero = 0;
      st = tf_read_dir_region(f, 0, x0, C, w, 1, &zero, identity ? drow : tmp, 1, 0, out_f32);
      if (st == DAMA_OK && !identity)
        for (int64_t c = 0; c < w; c++)
          for (int k = 0; k < n; k++) memcpy(drow + (c * n + k) * oes, tmp + (c * C + chan[k]) * oes, (size_t)oes);
    }
    free(tmp);
    return st;
  }
  if (f->layout == DAMA_TIFF_PAGES) {
    for (int k = 0; k < n; k++) {
      DAMA_TRY(tf_goto_page(f, f->pages[chan[k]]));
      int32_t zero = 0;
      DAMA_TRY(tf_read_dir_region(f, x0, y0, w, h, 1, &zero, dst, n, k, out_f32));
    }
    return DAMA_OK;
  }
  return tf_read_dir_region(f, x0, y0, w, h, n, chan, dst, n, 0, out_f32);
}

/* The whole image, all channels. Interleaved strips decode straight into dst (for f32 output from
 * u8/u16 into the tail of dst, then widened in place): no intermediate buffer. */
static dama_status tf_read_full(tfile *f, void *dst, int out_f32) {
  int64_t total = f->width * f->height * f->channels;
  int es = dama_dtype_size(f->dtype);
  int direct = f->layout == DAMA_TIFF_INTERLEAVED && !f->tiled && f->tile_h > 0 &&
               (!out_f32 || f->dtype == DAMA_F32 || f->dtype == DAMA_U16 || f->dtype == DAMA_U8);
  if (direct) {
    uint8_t *raw = (out_f32 && f->dtype != DAMA_F32) ? (uint8_t *)dst + total * (4 - es) : (uint8_t *)dst;
    int64_t rowbytes = f->width * f->spp * es;
    int64_t nstrips = (f->height + f->tile_h - 1) / f->tile_h;
    if ((int64_t)TIFFNumberOfStrips(f->tif) < nstrips)
      return tf_fail(f, DAMA_ERR_FORMAT, "has %u strips, expected %lld", TIFFNumberOfStrips(f->tif),
                     (long long)nstrips);
    for (int64_t s = 0; s < nstrips; s++) {
      int64_t rows = f->height - s * f->tile_h < f->tile_h ? f->height - s * f->tile_h : f->tile_h;
      int64_t need = rows * rowbytes;
      tmsize_t got = TIFFReadEncodedStrip(f->tif, (uint32_t)s, raw + s * f->tile_h * rowbytes, (tmsize_t)need);
      if (got < 0 || (int64_t)got < need)
        return tf_fail(f, DAMA_ERR_FORMAT, "strip %lld is truncated or corrupt (decoded %lld of %lld bytes)",
                       (long long)s, (long long)got, (long long)need);
    }
    if (out_f32 && f->dtype != DAMA_F32) widen_in_place(dst, total, f->dtype);
    return DAMA_OK;
  }
  int32_t *ch = malloc(sizeof(int32_t) * (size_t)f->channels);
  if (!ch) return tf_fail(f, DAMA_ERR_OOM, "cannot allocate the channel list");
  for (int64_t k = 0; k < f->channels; k++) ch[k] = (int32_t)k;
  dama_status st = tf_read_region(f, 0, 0, f->width, f->height, (int)f->channels, ch, dst, out_f32);
  free(ch);
  return st;
}

/* ---- entry points used by io_image.c ---- */

dama_status dama_io_tiff_info_mem(const char *op, const char *path, const uint8_t *data, int64_t size,
                                  dama_image_info *info) {
  tfile f;
  dama_status st = tf_open_mem(&f, op, path, data, size);
  if (st == DAMA_OK) st = tf_layout(&f, 1);
  if (st == DAMA_OK) tf_fill_info(&f, info);
  tf_close(&f);
  return st;
}

/* One attempt of dama_io_tiff_read_mem; *again is set when the optimistic page layout was wrong. */
static dama_status read_mem_once(const char *op, const char *path, const uint8_t *data, int64_t size, int out_f32,
                                 int64_t eh, int64_t ew, int64_t ec, float *dst, dama_tensor **out, int verify,
                                 int *again) {
  tfile f;
  dama_tensor *t = NULL;
  dama_status st = tf_open_mem(&f, op, path, data, size);
  if (st == DAMA_OK) st = tf_layout(&f, verify);
  if (st == DAMA_OK && f.unverified && ec > 0 && f.channels != ec) {
    f.fallback = 1; /* count the channel pages properly before reporting a mismatch */
    st = DAMA_ERR_FORMAT;
  }
  if (st == DAMA_OK && out_f32 && f.dtype == DAMA_I32)
    st = tf_fail(&f, DAMA_ERR_DTYPE, "32-bit signed integer samples have no defined scaling to float "
                                     "(expected uint8, uint16 or float)");
  if (st == DAMA_OK && ec > 0 && f.channels != ec)
    st = tf_fail(&f, DAMA_ERR_SHAPE, "expected %lld channels, got %lld", (long long)ec, (long long)f.channels);
  if (st == DAMA_OK && dst && (f.height != eh || f.width != ew))
    st = tf_fail(&f, DAMA_ERR_SHAPE, "expected %lldx%lld pixels (HxW), got %lldx%lld", (long long)eh, (long long)ew,
                 (long long)f.height, (long long)f.width);
  if (st == DAMA_OK && !dst) {
    int64_t shape[3] = {f.height, f.width, f.channels};
    st = dama_empty(&t, 3, shape, out_f32 ? DAMA_F32 : f.dtype, dama_cpu());
    if (st == DAMA_OK) dst = dama_data_ptr(t);
    else st = tf_fail(&f, st, "%s", dama_last_error());
  }
  if (st == DAMA_OK) st = tf_read_full(&f, dst, out_f32);
  *again = st != DAMA_OK && f.fallback;
  tf_close(&f);
  if (st != DAMA_OK) {
    dama_tensor_release(t);
    return st;
  }
  if (out) *out = t;
  return DAMA_OK;
}

/* out_f32 = 0: new tensor of the file's dtype in *out. out_f32 = 1 and dst: scaled floats into dst,
 * whose h x w x c must match exactly. out_f32 = 1 and !dst: new f32 tensor (ec > 0 checks channels).
 * Multi-page files are first read assuming every page is a channel (one pass over the directories);
 * if a page turns out not to be one, the file is read again after a full page scan. */
dama_status dama_io_tiff_read_mem(const char *op, const char *path, const uint8_t *data, int64_t size,
                                  int out_f32, int64_t eh, int64_t ew, int64_t ec, float *dst, dama_tensor **out) {
  int again = 0;
  dama_status st = read_mem_once(op, path, data, size, out_f32, eh, ew, ec, dst, out, 0, &again);
  if (st != DAMA_OK && again) st = read_mem_once(op, path, data, size, out_f32, eh, ew, ec, dst, out, 1, &again);
  return st;
}

/* ---- public: windows ---- */

dama_status dama_tiff_read_window(const char *path, int64_t x, int64_t y, int64_t w, int64_t h,
                                  int32_t n_channels, const int32_t *channels, dama_tensor **out) {
  const char *op = "tiff_read_window";
  if (!out) return dama_error(DAMA_ERR_ARG, "%s: out is NULL", op);
  *out = NULL;
  tfile f;
  dama_status st = tf_open_path(&f, op, path);
  if (st == DAMA_OK) st = tf_layout(&f, 1);
  if (st != DAMA_OK) {
    tf_close(&f);
    return st;
  }
  if (w <= 0 || h <= 0 || x < 0 || y < 0 || x + w > f.width || y + h > f.height) {
    st = tf_fail(&f, DAMA_ERR_INDEX, "window x=%lld y=%lld w=%lld h=%lld is outside the %lldx%lld (WxH) image",
                 (long long)x, (long long)y, (long long)w, (long long)h, (long long)f.width, (long long)f.height);
    tf_close(&f);
    return st;
  }
  int all = !channels || n_channels <= 0;
  int n = all ? (int)f.channels : n_channels;
  int32_t *ch = malloc(sizeof(int32_t) * (size_t)n);
  if (!ch) {
    tf_close(&f);
    return dama_error(DAMA_ERR_OOM, "%s: out of memory", op);
  }
  for (int k = 0; k < n; k++) {
    ch[k] = all ? k : channels[k];
    if (ch[k] < 0 || ch[k] >= f.channels) {
      st = tf_fail(&f, DAMA_ERR_INDEX, "channel index %d is out of range: the file has %lld channels", (int)ch[k],
                   (long long)f.channels);
      break;
    }
  }
  dama_tensor *t = NULL;
  if (st == DAMA_OK) {
    int64_t shape[3] = {h, w, n};
    st = dama_empty(&t, 3, shape, f.dtype, dama_cpu());
    if (st != DAMA_OK) st = tf_fail(&f, st, "%s", dama_last_error());
  }
  if (st == DAMA_OK) st = tf_read_region(&f, x, y, w, h, n, ch, dama_data_ptr(t), 0);
  free(ch);
  tf_close(&f);
  if (st != DAMA_OK) {
    dama_tensor_release(t);
    return st;
  }
  *out = t;
  return DAMA_OK;
}

/* ---- public: OME-XML channel names ---- */

/* Tag scanner over XML text: finds the next '<name' (namespace prefix dropped) at or after *pos. */
static const char *xml_next_tag(const char *s, char *name, size_t namelen) {
  for (const char *p = strchr(s, '<'); p; p = strchr(p + 1, '<')) {
    const char *q = p + 1;
    size_t n = 0;
    while (*q && *q != ' ' && *q != '\t' && *q != '\r' && *q != '\n' && *q != '>' && !(*q == '/' && n > 0)) {
      if (n + 1 < namelen) name[n++] = *q;
      q++;
    }
    name[n] = 0;
    char *colon = strrchr(name, ':');
    if (colon) memmove(name + (name[0] == '/' ? 1 : 0), colon + 1, strlen(colon + 1) + 1);
    return p;
  }
  return NULL;
}

/* Value of attribute `attr` in the tag starting at `tag` (up to its '>'), unescaped into out. */
static int xml_attr(const char *tag, const char *attr, char *out, size_t outlen) {
  const char *end = strchr(tag, '>');
  size_t al = strlen(attr);
  for (const char *p = tag + 1; *p && (!end || p < end); p++) {
    if ((p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\n' || p[-1] == '\r') && strncmp(p, attr, al) == 0) {
      const char *q = p + al;
      while (*q == ' ') q++;
      if (*q != '=') continue;
      q++;
      while (*q == ' ') q++;
      char quote = *q;
      if (quote != '"' && quote != '\'') continue;
      q++;
      size_t n = 0;
      while (*q && *q != quote) {
        char c = *q++;
        if (c == '&') {
          const char *semi = strchr(q, ';');
          if (semi && semi - q < 10) {
            if (strncmp(q, "amp;", 4) == 0) c = '&';
            else if (strncmp(q, "lt;", 3) == 0) c = '<';
            else if (strncmp(q, "gt;", 3) == 0) c = '>';
            else if (strncmp(q, "quot;", 5) == 0) c = '"';
            else if (strncmp(q, "apos;", 5) == 0) c = '\'';
            else if (q[0] == '#') c = (char)(q[1] == 'x' ? strtol(q + 2, NULL, 16) : strtol(q + 1, NULL, 10));
            q = semi + 1;
          }
        }
        if (n + 1 < outlen) out[n++] = c;
      }
      out[n] = 0;
      return 1;
    }
  }
  return 0;
}

dama_status dama_ome_channel_names(const char *path, char *buf, int64_t buflen, int32_t *n_channels) {
  const char *op = "ome_channel_names";
  if (!buf || buflen < 1 || !n_channels) return dama_error(DAMA_ERR_ARG, "%s: buf, buflen >= 1 and n_channels are required", op);
  buf[0] = 0;
  *n_channels = 0;
  tfile f;
  dama_status st = tf_open_path(&f, op, path);
  if (st != DAMA_OK) {
    tf_close(&f);
    return st;
  }
  char *desc = NULL;
  if (!TIFFGetField(f.tif, TIFFTAG_IMAGEDESCRIPTION, &desc) || !desc || !strstr(desc, "<OME")) {
    tf_close(&f);
    return DAMA_OK;
  }
  /* Channels of the first Pixels element only. */
  const char *p = desc;
  char name[64], value[512];
  int in_pixels = 0, n = 0;
  int64_t used = 0;
  while ((p = xml_next_tag(p, name, sizeof name)) != NULL) {
    if (strcmp(name, "Pixels") == 0) in_pixels = 1;
    else if (strcmp(name, "/Pixels") == 0 && in_pixels) break;
    else if (in_pixels && strcmp(name, "Channel") == 0) {
      if (!xml_attr(p, "Name", value, sizeof value) || !value[0]) snprintf(value, sizeof value, "C%d", n);
      int64_t len = (int64_t)strlen(value);
      if (used + len + (n > 0) + 1 > buflen) {
        st = dama_io_err(DAMA_ERR_ARG, op, path, "buffer of %lld bytes is too small for the channel names",
                         (long long)buflen);
        break;
      }
      if (n > 0) buf[used++] = '\n';
      memcpy(buf + used, value, (size_t)len);
      used += len;
      buf[used] = 0;
      n++;
    }
    p++;
  }
  tf_close(&f);
  if (st != DAMA_OK) {
    buf[0] = 0;
    return st;
  }
  *n_channels = n;
  return DAMA_OK;
}

dama_status dama_ome_channel_indices(const char *path, const char *names, int32_t *indices, int32_t max_out,
                                     int32_t *n_out) {
  const char *op = "ome_channel_indices";
  if (!names || !indices || !n_out) return dama_error(DAMA_ERR_ARG, "%s: names, indices and n_out are required", op);
  *n_out = 0;
  int64_t cap = 1 << 16;
  char *have = malloc((size_t)cap);
  if (!have) return dama_error(DAMA_ERR_OOM, "%s: out of memory", op);
  int32_t nh = 0;
  dama_status st = dama_ome_channel_names(path, have, cap, &nh);
  if (st != DAMA_OK) {
    free(have);
    return st;
  }
  if (nh == 0) {
    free(have);
    return dama_io_err(DAMA_ERR_FORMAT, op, path, "has no OME-XML channel names");
  }
  int32_t n = 0;
  const char *p = names;
  while (*p && st == DAMA_OK) {
    while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\n' || *p == '\r') p++;
    if (!*p) break;
    const char *e = p;
    while (*e && *e != ',' && *e != '\n') e++;
    const char *t = e;
    while (t > p && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r')) t--;
    size_t len = (size_t)(t - p);
    int found = -1, idx = 0;
    for (const char *h = have; ; idx++) {
      const char *he = strchr(h, '\n');
      size_t hl = he ? (size_t)(he - h) : strlen(h);
      if (hl == len && strncmp(h, p, len) == 0) { found = idx; break; }
      if (!he) break;
      h = he + 1;
    }
    if (found < 0) {
      for (char *c = have; *c; c++) if (*c == '\n') *c = ',';
      st = dama_io_err(DAMA_ERR_ARG, op, path, "no channel named '%.*s'; the file has: %s", (int)len, p, have);
    } else if (n >= max_out) {
      st = dama_io_err(DAMA_ERR_ARG, op, path, "more than max_out=%d names given", (int)max_out);
    } else {
      indices[n++] = found;
    }
    p = e;
  }
  free(have);
  if (st == DAMA_OK) *n_out = n;
  return st;
}
