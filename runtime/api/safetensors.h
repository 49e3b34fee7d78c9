/* dama safetensors: read and write the safetensors format (https://github.com/huggingface/safetensors).
 *
 * Layout: 8 bytes little-endian header length H, H bytes of JSON {"name": {"dtype": "F32", "shape": [..],
 * "data_offsets": [begin, end]}, ..., "__metadata__": {"key": "value"}}, then the data section; offsets are
 * relative to the data section. dtypes read: F32 F64 BF16 F16 I64 I32 U8 U16, and BOOL (read as u8).
 *
 *   dama_safetensors *f = NULL;
 *   if (dama_safetensors_open(&f, "ckpt.safetensors", 0) != DAMA_OK) puts(dama_last_error());
 *   for (int64_t i = 0; i < dama_safetensors_count(f); i++) {
 *     dama_tensor *t = NULL;
 *     dama_safetensors_get_index(f, i, &t);      (a new tensor named dama_safetensors_name(f, i))
 *     dama_tensor_release(t);
 *   }
 *   dama_safetensors_close(f);
 *
 * open validates the whole header (length within the file, JSON, dtypes, shapes, offsets inside the data
 * section, size = numel * element size, no overlapping tensors, no duplicate names); every error names the
 * file and the tensor. Tensors may have gaps between them (the official writer never makes any).
 */

typedef struct dama_safetensors dama_safetensors;

/* Open and validate `path`. use_mmap != 0 maps the file: tensors from get are then views of the private
 * (copy-on-write) mapping, which stays alive while any of them does; otherwise get reads a copy. */
dama_status dama_safetensors_open(dama_safetensors **out, const char *path, int32_t use_mmap);
/* Close the handle (NULL is fine); tensors already returned stay valid. */
void dama_safetensors_close(dama_safetensors *f);
/* Tensors in header order; name(i) is NULL when i is out of range; find gives -1 for an absent name. */
int64_t dama_safetensors_count(const dama_safetensors *f);
const char *dama_safetensors_name(const dama_safetensors *f, int64_t i);
int64_t dama_safetensors_find(const dama_safetensors *f, const char *name);
/* dtype, ndim and shape (room for 8) of tensor i, without reading its data. */
dama_status dama_safetensors_info(const dama_safetensors *f, int64_t i, int32_t *dtype, int32_t *ndim, int64_t *shape);
/* The tensor called `name` / tensor i as a new contiguous CPU tensor (see use_mmap above). */
dama_status dama_safetensors_get(const dama_safetensors *f, const char *name, dama_tensor **out);
dama_status dama_safetensors_get_index(const dama_safetensors *f, int64_t i, dama_tensor **out);
/* The string-to-string __metadata__ map: entries in header order; get returns NULL for an absent key. */
int64_t dama_safetensors_metadata_count(const dama_safetensors *f);
const char *dama_safetensors_metadata_key(const dama_safetensors *f, int64_t i);
const char *dama_safetensors_metadata_value(const dama_safetensors *f, int64_t i);
const char *dama_safetensors_metadata_get(const dama_safetensors *f, const char *key);

/* Write n named CPU tensors (any dtype above but BOOL, any strides) and n_meta metadata strings to `path`
 * atomically: the bytes go to `<path>.tmp.<pid>` in the same directory, are flushed and fsync'ed, then
 * renamed over `path` and the directory is fsync'ed. On any failure `path` is untouched and the temporary
 * file removed. Tensors are stored like the official writer: by element size (largest first), then name,
 * back to back; the header is padded with spaces to a multiple of 8 bytes. */
dama_status dama_safetensors_save(const char *path, int64_t n, const char *const *names, dama_tensor *const *tensors,
                                  int64_t n_meta, const char *const *meta_keys, const char *const *meta_values);
