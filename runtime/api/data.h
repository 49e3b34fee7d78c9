/* dama data: augmentation, the threaded batch loader, the built-in synthetic multiplex generator and
 * cell finding for the Set II/III builders. No preprocessor lines (read by ffi.cdef too); all functions
 * follow core.h's conventions.
 *
 * Images are passed as a dama_hwc: H x W x C interleaved (channel fastest) u8, u16 or f32 samples.
 * Augmented outputs are f32 C x H x W (channel first) scaled like the reference's ToTensor: u16 / 65535,
 * u8 / 255, f32 kept. Geometric steps on integer images round to the source type after each resampling
 * step, exactly as OpenCV does on the reference's uint16 arrays (so outputs are k/65535 values).
 *
 * Randomness is a Philox stream per sample: key = seed, counter = (epoch, sample index). A sample's
 * augmentation therefore does not depend on which thread runs it or in which order.
 */

typedef struct dama_hwc {
  const void *data;   /* sample (0, 0, 0) */
  int32_t dtype;      /* DAMA_U8, DAMA_U16 or DAMA_F32 */
  int32_t h, w, c;
  int64_t row_stride; /* elements from one row to the next; 0 = w * c */
} dama_hwc;

/* ---- augmentation ----
 * channels: n_channels indices into the source's channels, in output order; NULL or n_channels <= 0 = all. */

typedef enum dama_resize_mode {
  DAMA_RESIZE_NEAREST = 0,  /* cv2 INTER_NEAREST */
  DAMA_RESIZE_BILINEAR = 1, /* cv2 INTER_LINEAR (half-pixel centres, edge clamp) = torch bilinear, align_corners=False, no antialias */
  DAMA_RESIZE_AREA = 2      /* cv2 INTER_AREA: box average when shrinking, replication-like linear when enlarging */
} dama_resize_mode;

/* The reference's training transform with its random draws made explicit. */
typedef struct dama_aug_params {
  int32_t crop_top, crop_left, crop_size; /* square crop of the source */
  int32_t out_size;                       /* the crop is resized (INTER_AREA) to out_size x out_size */
  double angle;                           /* degrees, counter-clockwise, about (out/2, out/2) like cv2.getRotationMatrix2D */
  int32_t shift_x, shift_y;               /* content moves right / down by this many pixels, zero fill */
  int32_t hflip, vflip;                   /* 1 = flip (horizontal first, then vertical) */
} dama_aug_params;

/* Draw the training parameters for sample `index` of `epoch` from a source of h x w:
 * crop_size = out_size / 2, top/left uniform integers, angle ~ U(-90, 90), shift ~ U{-s..s} with
 * s = int(0.3 * out_size), flips with p = 0.5 each. */
dama_status dama_aug_train_draw(dama_aug_params *p, int32_t h, int32_t w, int32_t out_size,
                                uint64_t seed, uint64_t epoch, uint64_t index);
/* Apply fixed training parameters: crop, INTER_AREA resize (exact pixel replication for integer ratios),
 * rotation (cv2.warpAffine bilinear, its 1/32-pixel fixed-point coordinates, zero border), shift, flips.
 * out: n_channels x out_size x out_size floats. */
dama_status dama_aug_train_apply(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                                 const dama_aug_params *p);
/* dama_aug_train_draw + dama_aug_train_apply. */
dama_status dama_aug_train(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                           int32_t out_size, uint64_t seed, uint64_t epoch, uint64_t index);
/* The reference's validation transform: centre crop of crop_size (top = (h - crop) / 2, rounded down;
 * the reference uses 48 for out 128; crop_size <= 0 means out_size * 3 / 8), INTER_AREA resize to out_size. */
dama_status dama_aug_val(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                         int32_t crop_size, int32_t out_size);
/* Plain resize of the whole image to out_h x out_w. */
dama_status dama_aug_resize(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                            int32_t out_h, int32_t out_w, int32_t mode);
/* A crop window: the source region [top, top+h) x [left, left+w) resized to out_h x out_w. */
dama_status dama_aug_crop_resize(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                                 int32_t top, int32_t left, int32_t h, int32_t w, int32_t out_h, int32_t out_w,
                                 int32_t mode, int32_t hflip);
/* torchvision RandomResizedCrop window (scale and log-ratio uniform, 10 tries, then the centre fallback);
 * writes top, left, h, w and (when hflip_p > 0) the flip draw. */
dama_status dama_aug_rrc_draw(int32_t *top, int32_t *left, int32_t *h, int32_t *w, int32_t *hflip,
                              int32_t src_h, int32_t src_w, double scale_lo, double scale_hi,
                              double ratio_lo, double ratio_hi, double hflip_p,
                              uint64_t seed, uint64_t epoch, uint64_t index);
/* RandomResizedCrop (bilinear) plus an optional horizontal flip with probability hflip_p. */
dama_status dama_aug_random_resized_crop(float *out, const dama_hwc *src, const int32_t *channels, int32_t n_channels,
                                         int32_t out_h, int32_t out_w, double scale_lo, double scale_hi,
                                         double ratio_lo, double ratio_hi, double hflip_p,
                                         uint64_t seed, uint64_t epoch, uint64_t index);
/* Tensor forms for one H x W x C image (u8 / u16 / f32, contiguous or not in H and W; C contiguous):
 * a new f32 C x out x out tensor. */
dama_status dama_aug_train_tensor(dama_tensor **out, const dama_tensor *img, int32_t out_size,
                                  uint64_t seed, uint64_t epoch, uint64_t index);
dama_status dama_aug_val_tensor(dama_tensor **out, const dama_tensor *img, int32_t crop_size, int32_t out_size);

/* ---- the built-in synthetic multiplex data ----
 * 16-bit 7-channel "multiplexed brain tissue" in the paper's channel order: 0 DAPI, 1 Histones, 2 NeuN,
 * 3 S100, 4 Olig2, 5 Iba1, 6 RECA1. Cells of five types (0 neuron, 1 astrocyte, 2 oligodendrocyte,
 * 3 microglia, 4 endothelial) have a nucleus in DAPI and Histones and are bright in their own marker with a
 * shape of their own: neurons a large pale nucleus and a NeuN-filled soma; astrocytes an S100 soma with
 * star-like processes; oligodendrocytes a small dense nucleus with nuclear Olig2; microglia a small
 * elongated nucleus and thin branched Iba1 processes; endothelial cells an elongated nucleus on a RECA1
 * vessel segment. Then background, blur, cross-talk and shot noise. Everything is a pure function of
 * (seed, position or index). */

typedef struct dama_synth_cell_info {
  float y, x;         /* centre in slide coordinates (pixels) */
  int32_t type;       /* 0..4 as above */
  float radius;       /* nucleus radius (mean of its semi-axes) */
} dama_synth_cell_info;

/* The window [y0, y0+h) x [x0, x0+w) of the endless slide of `seed`, as h x w x 7 interleaved uint16 (so a
 * big slide can be made tile by tile with bounded memory; windows agree where they overlap). cells (may be
 * NULL) receives up to max_cells cells whose centre lies in the window, in window coordinates; *n_cells
 * (may be NULL) the number of such cells. */
dama_status dama_synth_slide(uint64_t seed, int64_t y0, int64_t x0, int32_t h, int32_t w, uint16_t *out,
                             dama_synth_cell_info *cells, int64_t max_cells, int64_t *n_cells);
/* Labelled single-cell crop `index` of `seed`: size x size x 7 interleaved uint16 with a cell of class
 * *label (uniform over the 5 types) near the centre and 0 to 4 neighbours of any type. */
dama_status dama_synth_cell(uint64_t seed, uint64_t index, int32_t size, uint16_t *out, int32_t *label);
/* Only the label of crop `index` (cheap). */
int32_t dama_synth_cell_label(uint64_t seed, uint64_t index);
/* "DAPI", "Histones", "NeuN", "S100", "Olig2", "Iba1", "RECA1"; NULL out of range. */
const char *dama_synth_channel_name(int32_t channel);
/* "neuron", "astrocyte", "oligodendrocyte", "microglia", "endothelial"; NULL out of range. */
const char *dama_synth_class_name(int32_t type);
