/* dama image file I/O: TIFF / BigTIFF / OME-TIFF (libtiff), PNG / JPEG / BMP (stb_image), .npy.
 * No preprocessor lines (read by ffi.cdef too). All functions follow core.h's conventions; every
 * error message names the operation and the file, e.g. "image_read_f32: 'a.tif': expected 7 channels, got 3".
 * All functions are thread-safe (the data loader calls them from worker threads).
 *
 * Images are H x W x C (channel fastest), in the file's own dtype: u8, u16, f32 (and f64 / i32 for TIFFs
 * that hold them). A TIFF whose channels are stored one page per channel (e.g. tifffile's (C, H, W)
 * arrays, imaging-mass-cytometry files), with PlanarConfiguration=2, or as tifffile's default pages of
 * an (H, W, C) array (DAMA_TIFF_ROW_PAGES) reads as H x W x C as well. Pages marked reduced-resolution
 * and trailing pages of another size (thumbnails) are not channels.
 * Formats are recognised by their magic bytes, not the file name.
 */

typedef enum dama_image_format {
  DAMA_FMT_UNKNOWN = 0, DAMA_FMT_TIFF = 1, DAMA_FMT_PNG = 2, DAMA_FMT_JPEG = 3, DAMA_FMT_BMP = 4,
  DAMA_FMT_NPY = 5, DAMA_FMT_OTHER_STB = 6 /* GIF, TGA, PSD, PNM, HDR: whatever stb_image reads */
} dama_image_format;

/* TIFF compression for dama_tiff_write. */
typedef enum dama_tiff_compression {
  DAMA_TIFF_NONE = 0, DAMA_TIFF_DEFLATE = 1, DAMA_TIFF_LZW = 2
} dama_tiff_compression;

/* TIFF channel layout for dama_tiff_write (and dama_image_info.planar). */
typedef enum dama_tiff_layout {
  DAMA_TIFF_INTERLEAVED = 0, /* one page, samples of a pixel together (PlanarConfiguration 1) */
  DAMA_TIFF_PAGES = 1,       /* one single-sample page per channel (tifffile's (C, H, W)) */
  DAMA_TIFF_SEPARATE = 2,    /* one page, PlanarConfiguration 2 (one plane of strips/tiles per channel) */
  DAMA_TIFF_ROW_PAGES = 3    /* read only: what tifffile.imwrite(path, a) makes of an (H, W, C) array with
                                C not 3/4: H pages of W x C, with {"shape": [H, W, C]} in the description.
                                Recognised when that shape is given and C is the smallest dim (otherwise
                                pages are channels, as for a (C, H, W) stack). Slow: one page per row. */
} dama_tiff_layout;

typedef struct dama_image_info {
  int64_t width, height, channels;
  int32_t dtype;      /* dama_dtype of the samples: DAMA_U8, DAMA_U16, DAMA_F32 (TIFF also DAMA_F64, DAMA_I32) */
  int32_t planar;     /* dama_tiff_layout; 0 for non-TIFF files */
  int32_t tiled;      /* 1 = TIFF tiles, 0 = strips (or not a TIFF) */
  int32_t bigtiff;    /* 1 = BigTIFF */
  int64_t tile_w, tile_h; /* tile size, or (width, rows per strip) for strips */
  int32_t n_pages;    /* TIFF pages (IFDs) in the main chain; 1 for other formats */
  int32_t format;     /* dama_image_format */
} dama_image_info;

/* Header facts of an image file without decoding its pixels. */
dama_status dama_image_info_read(const char *path, dama_image_info *info);

/* Whole image as a new contiguous H x W x C tensor of the file's dtype (a .npy of shape (H, W) or
 * (H, W, C) is accepted as well). */
dama_status dama_image_read(const char *path, dama_tensor **out);

/* The loader's hot path: decode into caller memory dst (h*w*c floats, H x W x C), scaled like the
 * reference's ToTensor: u16 / 65535, u8 / 255, floats kept. h, w and c must equal the file's
 * (DAMA_ERR_SHAPE names the file, the expected and the actual value). */
dama_status dama_image_read_f32(const char *path, float *dst, int64_t h, int64_t w, int64_t c);
/* Same scaling into a new f32 H x W x C tensor of whatever size the file has; expect_c > 0 checks
 * the channel count exactly, expect_c <= 0 takes any. */
dama_status dama_image_read_f32_tensor(const char *path, int64_t expect_c, dama_tensor **out);

/* A window [x, x+w) x [y, y+h) of a TIFF, reading only the strips/tiles it touches (bounded memory
 * for large BigTIFFs), as a new h x w x n tensor of the file's dtype. channels: n_channels indices
 * into the file's channels, in the order wanted; channels == NULL (or n_channels <= 0) = all. */
dama_status dama_tiff_read_window(const char *path, int64_t x, int64_t y, int64_t w, int64_t h,
                                  int32_t n_channels, const int32_t *channels, dama_tensor **out);

/* OME-TIFF channel names (Channel Name="..." in the OME-XML ImageDescription of page 0), written
 * into buf separated by '\n' (NUL-terminated; DAMA_ERR_ARG if buflen is too small). A TIFF without
 * OME-XML gives *n_channels = 0 and "". Channels without a Name get "C<i>". */
dama_status dama_ome_channel_names(const char *path, char *buf, int64_t buflen, int32_t *n_channels);
/* Map wanted channel names (separated by ',' or '\n', surrounding blanks ignored) to indices of the
 * file's OME channels; DAMA_ERR_ARG for an unknown name lists the names the file has. *n_out is the
 * number of names; max_out bounds indices[]. */
dama_status dama_ome_channel_indices(const char *path, const char *names, int32_t *indices,
                                     int32_t max_out, int32_t *n_out);

/* Write an H x W x C (or H x W) tensor of u8 / u16 / f32 (also f64, i32) as a TIFF.
 * planar: dama_tiff_layout. compression: dama_tiff_compression. tiled: 0 = strips (about 64 KiB
 * each), 1 = 256 x 256 tiles, >= 16 = tiles of that edge (a multiple of 16). bigtiff: 1 = BigTIFF,
 * 0 = classic (switched to BigTIFF automatically above 3.5 GiB). channel_names: NULL, or C names
 * written as OME-XML into the first page's ImageDescription (OME readers such as tifffile's OME series
 * and Bio-Formats expect DAMA_TIFF_PAGES; other layouts keep the names for dama and read fine as plain
 * TIFF pages elsewhere). No predictor; samples little-endian; ExtraSamples "unspecified" for C > 1
 * (PhotometricInterpretation MinIsBlack). The file is written atomically (temporary file in the same
 * folder, fsync, rename): a reader never sees a half-written file. */
dama_status dama_tiff_write(const char *path, const dama_tensor *img, int32_t planar, int32_t compression,
                            int32_t tiled, int32_t bigtiff, const char *const *channel_names);
/* PNG of an H x W or H x W x C tensor, u8 or u16 (16-bit PNG), C = 1 (grey), 2 (grey+alpha), 3 (RGB)
 * or 4 (RGBA); written atomically. */
dama_status dama_png_write(const char *path, const dama_tensor *img);
/* Writers fsync each file (and its folder) before the rename by default. on = 0 keeps the atomic
 * rename but skips the fsyncs: much faster when generating thousands of files, but a crash may then
 * lose recent files (never leaves a half-written one under the final name). Process-wide. */
void dama_io_set_fsync(int32_t on);
/* Write by extension: .tif/.tiff (interleaved, deflate, strips), .png, .npy. */
dama_status dama_image_write(const char *path, const dama_tensor *img);

/* .npy (versions 1, 2, 3; little- or big-endian; C order). dtypes: u1/b1 -> u8, u2 -> u16, i4 -> i32,
 * i8 -> i64, f2 -> f16, f4 -> f32, f8 -> f64. fortran_order True is DAMA_ERR_UNSUPPORTED.
 * mmap = 1 maps the file privately and wraps it without a copy (pages load on first touch; writes to
 * the tensor are copy-on-write and never reach the file; the mapping lives until the last view is
 * released); big-endian or misaligned data is copied instead. */
dama_status dama_npy_load(const char *path, int32_t mmap, dama_tensor **out);
/* Header only: dtype, ndim and shape (shape has room for 8) and the byte offset of the data. */
dama_status dama_npy_header(const char *path, int32_t *dtype, int32_t *ndim, int64_t *shape, int64_t *data_offset);
/* Write any CPU tensor (strided views too) as .npy v1, header byte-identical to numpy's np.save (data
 * 64-byte aligned); bf16 is DAMA_ERR_UNSUPPORTED (numpy has no bf16). Atomic. */
dama_status dama_npy_write(const char *path, const dama_tensor *t);
