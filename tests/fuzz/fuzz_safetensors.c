/* libFuzzer: the safetensors reader (JSON header, offsets, dtypes, metadata), copy and mmap. */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_init_once();
  const char *p = fuzz_write(".safetensors", data, size);
  for (int mm = 0; mm < 2; mm++) {
    dama_safetensors *f = NULL;
    dama_status st = dama_safetensors_open(&f, p, mm);
    fuzz_check_error(st, p);
    if (st != DAMA_OK) continue;
    int64_t n = dama_safetensors_count(f);
    for (int64_t i = 0; i < n; i++) {
      const char *name = dama_safetensors_name(f, i);
      if (!name || dama_safetensors_find(f, name) < 0) abort();
      int32_t dt = 0, nd = 0;
      int64_t shape[DAMA_MAX_DIMS];
      dama_safetensors_info(f, i, &dt, &nd, shape);
      dama_tensor *t = NULL;
      if (dama_safetensors_get_index(f, i, &t) == DAMA_OK) {
        const uint8_t *b = dama_data_ptr(t);
        size_t nb = (size_t)(dama_numel(t) * dama_dtype_size((dama_dtype)t->dtype));
        volatile uint8_t acc = 0;
        for (size_t k = 0; k < nb; k++) acc ^= b[k];
        (void)acc;
      }
      dama_tensor_release(t);
    }
    for (int64_t i = 0; i < dama_safetensors_metadata_count(f); i++) {
      const char *k = dama_safetensors_metadata_key(f, i), *v = dama_safetensors_metadata_value(f, i);
      if (!k || !v) abort();
      (void)dama_safetensors_metadata_get(f, k);
    }
    dama_safetensors_close(f);
  }
  return 0;
}
