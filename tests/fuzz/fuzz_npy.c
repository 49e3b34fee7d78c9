/* libFuzzer: the .npy reader (header parser, copy and mmap paths). */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init_once();
  const char *p = fuzz_write(".npy", data, size);
  for (int mm = 0; mm < 2; mm++) {
    dama_tensor *t = NULL;
    dama_status st = dama_npy_load(p, mm, &t);
    fuzz_check_error(st, p);
    if (st == DAMA_OK) {
      /* touch every byte: a wrong size would be an ASan report here */
      const uint8_t *b = dama_data_ptr(t);
      size_t n = (size_t)(dama_numel(t) * dama_dtype_size((dama_dtype)t->dtype));
      volatile uint8_t acc = 0;
      for (size_t i = 0; i < n; i++) acc ^= b[i];
      (void)acc;
    }
    dama_tensor_release(t);
  }
  int32_t dt = 0, nd = 0;
  int64_t shape[DAMA_MAX_DIMS], off = 0;
  fuzz_check_error(dama_npy_header(p, &dt, &nd, shape, &off), p);
  dama_tensor *t = NULL;
  fuzz_check_error(dama_image_read(p, &t), p);   /* .npy as an image */
  dama_tensor_release(t);
  return 0;
}
