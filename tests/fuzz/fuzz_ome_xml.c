/* libFuzzer: the OME-XML parser. The input is the ImageDescription of page 0 of a small valid
 * 3-page TIFF written here with libtiff; channel names, name lookups and whole reads must not crash. */
#include "fuzz_common.h"
#include <tiffio.h>

static int write_tiff(const char *p, const uint8_t *data, size_t size) {
  char *desc = malloc(size + 1);
  if (!desc) return 0;
  memcpy(desc, data, size);
  desc[size] = 0;
  TIFF *t = TIFFOpen(p, "w");
  if (!t) { free(desc); return 0; }
  uint8_t row[4] = {1, 2, 3, 4};
  for (int page = 0; page < 3; page++) {
    TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 4);
    TIFFSetField(t, TIFFTAG_IMAGELENGTH, 2);
    TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 1);
    TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK);
    TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 2);
    if (page == 0) TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, desc);
    for (int r = 0; r < 2; r++) TIFFWriteScanline(t, row, (uint32_t)r, 0);
    TIFFWriteDirectory(t);
  }
  TIFFClose(t);
  free(desc);
  return 1;
}

static void quiet(const char *m, const char *f, va_list ap) { (void)m; (void)f; (void)ap; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init_once();
  TIFFSetErrorHandler(quiet);
  TIFFSetWarningHandler(quiet);
  if (size > 1 << 16) return 0;
  const char *p = fuzz_path(".ome.tif");
  if (!write_tiff(p, data, size)) return 0;
  char buf[4096];
  int32_t n = 0;
  dama_status st = dama_ome_channel_names(p, buf, sizeof buf, &n);
  fuzz_check_error(st, p);
  if (st == DAMA_OK && (n < 0 || strlen(buf) >= sizeof buf)) abort();
  int32_t idx[8];
  int32_t nout = 0;
  st = dama_ome_channel_indices(p, "DAPI\nC1\nCD45", idx, 8, &nout);
  fuzz_check_error(st, p);
  dama_tensor *t = NULL;
  fuzz_check_error(dama_image_read(p, &t), p);
  dama_tensor_release(t);
  return 0;
}
