/* libFuzzer: the PNG path of the image reader (stb_image behind dama_image_read / read_f32). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init_once();
  const char *p = fuzz_write(".png", data, size);
  dama_image_info info;
  fuzz_check_error(dama_image_info_read(p, &info), p);
  dama_tensor *t = NULL;
  fuzz_check_error(dama_image_read(p, &t), p);
  dama_tensor_release(t);
  t = NULL;
  fuzz_check_error(dama_image_read_f32_tensor(p, 0, &t), p);
  dama_tensor_release(t);
  return 0;
}
