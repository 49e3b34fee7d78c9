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

/* ---- the threaded batch loader ----
 * Worker threads decode and augment samples into a ring of batch buffers; batches come out in order and,
 * for a given seed, identical whatever the number of workers (each sample's randomness depends only on
 * (seed, epoch, sample index)). The cursor (epoch, index) is the position in the epoch's sample order
 * where the next batch starts; get it, save it with a checkpoint, set it to resume exactly. */

typedef enum dama_loader_source {
  DAMA_LOADER_FILES = 0, /* paths[n] with labels[n]: TIFF / PNG / JPEG / .npy images, decoded by the io API */
  DAMA_LOADER_ARRAY = 1, /* an N x H x W x C (or N x H x W) u8 / u16 / f32 tensor, e.g. an mmap'ed .npy */
  DAMA_LOADER_SYNTH = 2  /* the synthetic labelled single-cell crops dama_synth_cell(synth_seed, i) */
} dama_loader_source;

typedef enum dama_pipeline {
  DAMA_PIPE_NONE = 0,   /* ToTensor only (the sample must be out_size x out_size) */
  DAMA_PIPE_TRAIN = 1,  /* dama_aug_train */
  DAMA_PIPE_VAL = 2,    /* dama_aug_val */
  DAMA_PIPE_RESIZE = 3, /* dama_aug_resize to out_size x out_size with resize_mode */
  DAMA_PIPE_RRC = 4     /* dama_aug_random_resized_crop */
} dama_pipeline;

typedef struct dama_loader_config {
  int32_t source;               /* dama_loader_source */
  int64_t n;                    /* samples: FILES the number of paths; ARRAY 0 = all rows; SYNTH crops per epoch */
  const char *const *paths;     /* FILES (copied) */
  const int64_t *labels;        /* FILES / ARRAY: n labels (copied), or NULL for -1 */
  dama_tensor *array;           /* ARRAY (retained until destroy) */
  uint64_t synth_seed;          /* SYNTH */
  int32_t synth_size;           /* SYNTH crop size; 0 = 100 */
  int32_t pipeline;             /* dama_pipeline */
  int32_t out_size;             /* output height = width; 0 = 128 */
  int32_t crop_size;            /* VAL centre crop; 0 = out_size * 3 / 8 */
  int32_t resize_mode;          /* RESIZE: dama_resize_mode */
  double rrc_scale_lo, rrc_scale_hi, rrc_ratio_lo, rrc_ratio_hi; /* RRC; all 0 = (0.08, 1), (3/4, 4/3) */
  double rrc_hflip;             /* RRC horizontal flip probability */
  const int32_t *channels;      /* output channels as indices into the source's (copied); NULL = all */
  int32_t n_channels;
  int32_t expect_channels;      /* FILES: channels every file must have; 0 = those of the first file */
  int64_t batch_size;
  int32_t shuffle;              /* 1 = a new order each epoch: Fisher-Yates on Philox(seed, epoch) */
  int32_t drop_last;            /* 1 = drop the last incomplete batch of each epoch */
  uint64_t seed;
  int32_t workers;              /* worker threads; 0 = decode in the calling thread */
  int32_t prefetch;             /* batch buffers in the ring; 0 = 2 */
  int32_t skip_bad;             /* FILES: an unreadable file is replaced by the next readable one (in
                                   dataset order) and counted; 0 = next() fails naming the file */
} dama_loader_config;

typedef struct dama_loader dama_loader;

dama_status dama_loader_create(const dama_loader_config *cfg, dama_loader **out);
void dama_loader_destroy(dama_loader *loader);  /* NULL is fine; joins the workers */
/* The next batch: images (n x C x out x out floats; may be NULL) and labels (n int64; may be NULL) are
 * copied into caller memory sized for a full batch. *n = samples in the batch; *n = 0 marks the end of an
 * epoch (the cursor then moves to the start of the next epoch, so the following call starts it). */
dama_status dama_loader_next(dama_loader *loader, float *images, int64_t *labels, int64_t *n);
/* The same without copying: *images and *labels point into the loader's ring and stay valid until the
 * next call of next / next_borrow / set_cursor / destroy. */
dama_status dama_loader_next_borrow(dama_loader *loader, const float **images, const int64_t **labels, int64_t *n);
dama_status dama_loader_set_cursor(dama_loader *loader, int64_t epoch, int64_t index);
void dama_loader_get_cursor(const dama_loader *loader, int64_t *epoch, int64_t *index);
int64_t dama_loader_batches_per_epoch(const dama_loader *loader);
int64_t dama_loader_num_samples(const dama_loader *loader);
/* Shape of one output sample: channels, height, width. */
void dama_loader_sample_shape(const dama_loader *loader, int32_t *c, int32_t *h, int32_t *w);
/* Distinct unreadable files met so far (skip_bad) and samples produced since create. */
void dama_loader_stats(const dama_loader *loader, int64_t *skipped, int64_t *samples);
/* The sample order of an epoch (n dataset indices), as the loader uses it. */
dama_status dama_loader_epoch_order(const dama_loader *loader, int64_t epoch, int64_t *order);

/* ---- cell finding (the Set II/III builders: tile a slide, find cells, crop around each centre) ----
 * Images here are single planes, row-major h x w. */

/* Otsu's threshold of n values (256 bins between their min and max). */
dama_status dama_otsu_threshold(const float *values, int64_t n, float *threshold);
/* Gaussian blur of a plane (sigma in pixels, truncated at 3 sigma, edges replicated); in place is fine. */
dama_status dama_gaussian_blur(float *out, const float *img, int32_t h, int32_t w, float sigma);
/* Binary erosion with a 3 x 3 square, `iterations` times; pixels outside the image count as foreground
 * (cells touching the tile edge are not eaten from the edge). */
dama_status dama_erode(uint8_t *out, const uint8_t *mask, int32_t h, int32_t w, int32_t iterations);
/* Exact Euclidean distance of every foreground pixel (mask != 0) to the nearest background pixel, 0 on
 * the background (Felzenszwalb-Huttenlocher; like scipy's distance_transform_edt, the outside of the
 * image is not background; a plane without background gets 1e20). */
dama_status dama_distance_transform(float *dist, const uint8_t *mask, int32_t h, int32_t w);
/* Connected components of mask != 0 with connectivity 4 or 8: labels 1..*n in raster order, 0 elsewhere. */
dama_status dama_label_components(int32_t *labels, const uint8_t *mask, int32_t h, int32_t w, int32_t connectivity,
                                  int32_t *n);
/* Markers at the peaks of a distance map: local maxima within a (2 radius + 1)^2 window with value >=
 * min_value, plateaus merged, then peaks closer than `radius` to a higher accepted peak dropped (like
 * skimage's peak_local_max(min_distance=radius)). markers: labels 1..*n, 0 elsewhere. */
dama_status dama_peak_markers(int32_t *markers, const float *dist, int32_t h, int32_t w, int32_t radius,
                              float min_value, int32_t *n);
/* Marker-based watershed by priority flood (4-neighbour, ties first-in first-out) of `elevation` from
 * the markers (labels > 0), restricted to mask != 0 (mask NULL = everywhere). labels: h x w out. */
dama_status dama_watershed(int32_t *labels, const float *elevation, const int32_t *markers, const uint8_t *mask,
                           int32_t h, int32_t w);
/* Area (pixels) and centroid (y, x) of labels 1..n (areas: n entries; centroids: 2n, y then x). */
dama_status dama_region_props(const int32_t *labels, int32_t h, int32_t w, int32_t n, int64_t *areas,
                              double *centroids);
/* The size x size window of an H x W x C image whose top-left is (cy - size/2, cx - size/2), zero outside
 * the image, in the image's dtype (size * size * C samples, interleaved). */
dama_status dama_crop_pad(void *out, const dama_hwc *src, int32_t cy, int32_t cx, int32_t size);

typedef struct dama_cellfind_config {
  const int32_t *nuclear_channels; /* averaged (as fractions of full scale) into the nuclear image; NULL = {0, 1} (DAPI, Histones) */
  int32_t n_nuclear;
  float sigma;        /* Gaussian smoothing of the nuclear image before thresholding (0 = none) */
  float threshold;    /* on the nuclear image in [0, 1] (u16 / 65535); <= 0 = Otsu */
  int32_t erode;      /* 3 x 3 erosions of the thresholded mask (0 = none) */
  int32_t peak_radius;/* minimum distance between two cells' markers; 0 = 4 */
  float min_peak;     /* smallest distance-map peak that seeds a cell; 0 = 1.5 */
  int64_t min_area;   /* regions smaller than this (pixels) are dropped; 0 = 16 */
  int64_t max_area;   /* and larger than this; 0 = no limit */
} dama_cellfind_config;

typedef struct dama_cell {
  float y, x;         /* centroid (pixels, tile coordinates) */
  int64_t area;
  int32_t label;      /* its label in labels_out */
} dama_cell;

/* Find cells in one tile: nuclear image, threshold, erosion, distance transform, peak markers, watershed
 * of the negated distance inside the mask, region sizes and centroids. labels_out (h x w, may be NULL)
 * gets the kept regions' labels; cells (may be NULL) up to max_cells in label order; *n_cells the count
 * kept. Memory: a few planes of the tile. */
dama_status dama_find_cells(const dama_hwc *tile, const dama_cellfind_config *cfg, int32_t *labels_out,
                            dama_cell *cells, int64_t max_cells, int64_t *n_cells);
/* One tile of a whole-slide pass (bounded memory): `win` is a window of the slide that holds a core rectangle
 * [core_y, core_y + core_h) x [core_x, core_x + core_w) (window coordinates) plus a margin of context around it
 * (clipped at the slide's edges). Cells are found in the whole window; those whose centroid (rounded) lies in
 * the core are kept, so tiles whose cores partition the slide find each cell once. For each kept cell, crops
 * (may be NULL; room for max_cells * crop * crop * C samples of the window's dtype) receives the crop x crop
 * window around it (dama_crop_pad: zero outside the window) and cells (may be NULL) its centroid in window
 * coordinates. *n_cells = cells kept (crops and cells hold the first max_cells). A margin of crop / 2 makes every
 * crop of a cell away from the slide's edge complete. */
dama_status dama_tile_cells(const dama_hwc *win, int32_t core_y, int32_t core_x, int32_t core_h, int32_t core_w,
                            const dama_cellfind_config *cfg, int32_t crop, void *crops, dama_cell *cells,
                            int64_t max_cells, int64_t *n_cells);
