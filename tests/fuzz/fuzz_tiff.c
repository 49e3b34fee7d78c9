/* libFuzzer: the TIFF reader (libtiff + dama's layout logic): info, whole reads, float reads, windows. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init_once();
  const char *p = fuzz_write(".tif", data, size);
  dama_image_info info;
  dama_status st = dama_image_info_read(p, &info);
  fuzz_check_error(st, p);
  dama_tensor *t = NULL;
  st = dama_image_read(p, &t);
  fuzz_check_error(st, p);
  dama_tensor_release(t);
  t = NULL;
  st = dama_image_read_f32_tensor(p, 0, &t);
  fuzz_check_error(st, p);
  dama_tensor_release(t);
  t = NULL;
  st = dama_tiff_read_window(p, 1, 1, 3, 2, 0, NULL, &t);
  fuzz_check_error(st, p);
  dama_tensor_release(t);
  return 0;
}
