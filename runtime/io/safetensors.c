/* safetensors reader and atomic writer (runtime/api/safetensors.h).
 *
 * The header is parsed with cJSON and validated up front, so get() only has to read bytes. Numbers in
 * the header are JSON doubles; shapes and offsets must be whole, non-negative and below 2^53.
 * Byte order: the format is little-endian, as are all hosts we target (x86-64, aarch64). */
#define _GNU_SOURCE
#include "core/dama_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100LL * 1024 * 1024) /* the official reader's limit */
#define ST_MAX_EXACT 9007199254740992.0      /* 2^53 */

typedef struct st_entry {
  char *name;
  int32_t dtype;
  int32_t ndim;
  int64_t shape[DAMA_MAX_DIMS];
  int64_t begin, end; /* within the data section */
} st_entry;

/* A shared read-only-file mapping, refcounted by the handle and by every tensor viewing it. */
typedef struct st_map {
  void *base;
  size_t len;
  int64_t refcount;
} st_map;

struct dama_safetensors {
  char *path;
  int fd;
  st_map *map;
  int64_t file_size, data_start, data_len;
  int64_t n;
  st_entry *entries;
  int64_t *sorted; /* entry indices sorted by name, for find */
  int64_t n_meta;
  char **meta_keys, **meta_values;
};

static void map_release(void *p) {
  st_map *m = p;
  if (!m) return;
  if (__atomic_sub_fetch(&m->refcount, 1, __ATOMIC_ACQ_REL) == 0) {
    munmap(m->base, m->len);
    free(m);
  }
}

static const struct { const char *name; int32_t dtype; } ST_DTYPES[] = {
  {"F32", DAMA_F32}, {"F64", DAMA_F64}, {"BF16", DAMA_BF16}, {"F16", DAMA_F16}, {"I64", DAMA_I64},
  {"I32", DAMA_I32}, {"U8", DAMA_U8}, {"U16", DAMA_U16}, {"BOOL", DAMA_U8},
};

static const char *st_dtype_name(int32_t dtype) {
  for (size_t i = 0; i < sizeof ST_DTYPES / sizeof ST_DTYPES[0]; i++)
    if (ST_DTYPES[i].dtype == dtype) return ST_DTYPES[i].name;
  return NULL;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *r = malloc(n);
  if (r) memcpy(r, s, n);
  return r;
}

/* A format error that names the file (and the tensor, when given). */
static dama_status st_err(dama_status s, const char *op, const char *path, const char *tensor, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (tensor) return dama_error(s, "%s: '%s': tensor '%s': %s", op, path, tensor, msg);
  return dama_error(s, "%s: '%s': %s", op, path, msg);
}

void dama_safetensors_close(dama_safetensors *f) {
  if (!f) return;
  if (f->fd >= 0) close(f->fd);
  map_release(f->map);
  for (int64_t i = 0; i < f->n; i++) free(f->entries[i].name);
  free(f->entries);
  free(f->sorted);
  for (int64_t i = 0; i < f->n_meta; i++) { free(f->meta_keys[i]); free(f->meta_values[i]); }
  free(f->meta_keys);
  free(f->meta_values);
  free(f->path);
  free(f);
}

static int read_exact(int fd, void *buf, int64_t n, int64_t off) {
  uint8_t *p = buf;
  int64_t done = 0;
  while (done < n) {
    size_t chunk = n - done > (1 << 30) ? (size_t)1 << 30 : (size_t)(n - done);
    ssize_t r = pread(fd, p + done, chunk, (off_t)(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r == 0 ? -2 : -1; /* -2: end of file */
    done += r;
  }
  return 0;
}

/* A whole non-negative JSON number below 2^53. */
static int json_u53(const cJSON *v, int64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= 0 && d < ST_MAX_EXACT) || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

static const char *OPEN = "safetensors_open";

/* Fill entry e from its header object; returns a status with a message naming path and tensor. */
static dama_status parse_entry(dama_safetensors *f, st_entry *e, const cJSON *obj) {
  const char *path = f->path, *name = e->name;
  if (!cJSON_IsObject(obj)) return st_err(DAMA_ERR_FORMAT, OPEN, path, name, "expected a JSON object in the header");
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(obj, "dtype");
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(obj, "shape");
  const cJSON *of = cJSON_GetObjectItemCaseSensitive(obj, "data_offsets");
  if (!cJSON_IsString(dt)) return st_err(DAMA_ERR_FORMAT, OPEN, path, name, "missing or non-string \"dtype\"");
  int found = 0;
  for (size_t i = 0; i < sizeof ST_DTYPES / sizeof ST_DTYPES[0]; i++)
    if (strcmp(dt->valuestring, ST_DTYPES[i].name) == 0) { e->dtype = ST_DTYPES[i].dtype; found = 1; }
  if (!found)
    return st_err(DAMA_ERR_FORMAT, OPEN, path, name,
                  "unsupported dtype \"%s\" (expected F32, F64, BF16, F16, I64, I32, U8, U16 or BOOL)", dt->valuestring);
  if (!cJSON_IsArray(sh)) return st_err(DAMA_ERR_FORMAT, OPEN, path, name, "missing or non-array \"shape\"");
  int nd = cJSON_GetArraySize(sh);
  if (nd > DAMA_MAX_DIMS)
    return st_err(DAMA_ERR_UNSUPPORTED, OPEN, path, name, "%d dims; at most %d are supported", nd, DAMA_MAX_DIMS);
  e->ndim = nd;
  int64_t numel = 1;
  int overflow = 0;
  for (int d = 0; d < nd; d++) {
    int64_t v;
    if (!json_u53(cJSON_GetArrayItem(sh, d), &v))
      return st_err(DAMA_ERR_FORMAT, OPEN, path, name, "shape[%d] is not a whole number >= 0", d);
    e->shape[d] = v;
    if (v != 0 && numel > (INT64_MAX / 16) / v) overflow = 1;
    else numel *= v;
  }
  if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
    return st_err(DAMA_ERR_FORMAT, OPEN, path, name, "\"data_offsets\" must be an array [begin, end]");
  if (!json_u53(cJSON_GetArrayItem(of, 0), &e->begin) || !json_u53(cJSON_GetArrayItem(of, 1), &e->end))
    return st_err(DAMA_ERR_FORMAT, OPEN, path, name, "data_offsets are not whole numbers >= 0");
  if (e->end < e->begin)
    return st_err(DAMA_ERR_FORMAT, OPEN, path, name, "data_offsets [%" PRId64 ", %" PRId64 ") end before they begin",
                  e->begin, e->end);
  if (e->end > f->data_len)
    return st_err(DAMA_ERR_FORMAT, OPEN, path, name,
                  "data_offsets [%" PRId64 ", %" PRId64 ") extend past the data section (%" PRId64
                  " bytes; file truncated?)", e->begin, e->end, f->data_len);
  int64_t es = dama_dtype_size(e->dtype);
  if (overflow || numel * es != e->end - e->begin) {
    char sbuf[160] = "[";
    for (int d = 0; d < nd; d++)
      snprintf(sbuf + strlen(sbuf), sizeof sbuf - strlen(sbuf), "%s%" PRId64, d ? ", " : "", e->shape[d]);
    strncat(sbuf, "]", sizeof sbuf - strlen(sbuf) - 1);
    return st_err(DAMA_ERR_FORMAT, OPEN, path, name,
                  "shape %s of %s needs %s bytes but data_offsets [%" PRId64 ", %" PRId64 ") hold %" PRId64, sbuf,
                  dt->valuestring, overflow ? "too many" : "a different number of", e->begin, e->end, e->end - e->begin);
  }
  return DAMA_OK;
}

static const dama_safetensors *g_sort_file; /* qsort has no context argument in C11 */

static int cmp_by_name(const void *a, const void *b) {
  return strcmp(g_sort_file->entries[*(const int64_t *)a].name, g_sort_file->entries[*(const int64_t *)b].name);
}
static int cmp_by_begin(const void *a, const void *b) {
  const st_entry *x = &g_sort_file->entries[*(const int64_t *)a], *y = &g_sort_file->entries[*(const int64_t *)b];
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

static pthread_mutex_t g_sort_lock = PTHREAD_MUTEX_INITIALIZER;

static dama_status parse_header(dama_safetensors *f, const char *text, int64_t len) {
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)len, &end, 0);
  if (!root) {
    const char *at = cJSON_GetErrorPtr();
    int64_t pos = at && at >= text && at <= text + len ? (int64_t)(at - text) : -1;
    return st_err(DAMA_ERR_FORMAT, OPEN, f->path, NULL, "header is not valid JSON (near byte %" PRId64 " of %" PRId64 ")",
                  pos, len);
  }
  dama_status s = DAMA_OK;
  for (const char *p = end; p && p < text + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
      s = st_err(DAMA_ERR_FORMAT, OPEN, f->path, NULL, "unexpected bytes after the header JSON at byte %" PRId64,
                 (int64_t)(p - text));
      goto done;
    }
  if (!cJSON_IsObject(root)) {
    s = st_err(DAMA_ERR_FORMAT, OPEN, f->path, NULL, "header is not a JSON object");
    goto done;
  }
  int64_t count = 0;
  const cJSON *meta = NULL;
  for (const cJSON *c = root->child; c; c = c->next) {
    if (c->string && strcmp(c->string, "__metadata__") == 0) {
      if (meta) { s = st_err(DAMA_ERR_FORMAT, OPEN, f->path, NULL, "two __metadata__ entries"); goto done; }
      meta = c;
    } else {
      count++;
    }
  }
  f->entries = calloc(count ? (size_t)count : 1, sizeof *f->entries);
  f->sorted = calloc(count ? (size_t)count : 1, sizeof *f->sorted);
  if (!f->entries || !f->sorted) { s = dama_error(DAMA_ERR_OOM, "%s: '%s': out of memory", OPEN, f->path); goto done; }
  for (const cJSON *c = root->child; c; c = c->next) {
    if (c == meta) continue;
    st_entry *e = &f->entries[f->n];
    e->name = dup_str(c->string ? c->string : "");
    if (!e->name) { s = dama_error(DAMA_ERR_OOM, "%s: '%s': out of memory", OPEN, f->path); goto done; }
    f->n++;
    if ((s = parse_entry(f, e, c)) != DAMA_OK) goto done;
  }
  if (meta) {
    if (!cJSON_IsObject(meta)) { s = st_err(DAMA_ERR_FORMAT, OPEN, f->path, NULL, "__metadata__ is not an object"); goto done; }
    int nm = cJSON_GetArraySize(meta);
    f->meta_keys = calloc(nm ? (size_t)nm : 1, sizeof(char *));
    f->meta_values = calloc(nm ? (size_t)nm : 1, sizeof(char *));
    if (!f->meta_keys || !f->meta_values) { s = dama_error(DAMA_ERR_OOM, "%s: '%s': out of memory", OPEN, f->path); goto done; }
    for (const cJSON *c = meta->child; c; c = c->next) {
      if (!cJSON_IsString(c)) {
        s = st_err(DAMA_ERR_FORMAT, OPEN, f->path, NULL, "__metadata__ value of '%s' is not a string",
                   c->string ? c->string : "");
        goto done;
      }
      for (int64_t i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], c->string) == 0) {
          s = st_err(DAMA_ERR_FORMAT, OPEN, f->path, NULL, "__metadata__ key '%s' appears twice", c->string);
          goto done;
        }
      f->meta_keys[f->n_meta] = dup_str(c->string);
      f->meta_values[f->n_meta] = dup_str(c->valuestring);
      f->n_meta++;
      if (!f->meta_keys[f->n_meta - 1] || !f->meta_values[f->n_meta - 1]) {
        s = dama_error(DAMA_ERR_OOM, "%s: '%s': out of memory", OPEN, f->path);
        goto done;
      }
    }
  }
  /* duplicates (by name) and overlaps (by offset) */
  int64_t *by_begin = calloc(f->n ? (size_t)f->n : 1, sizeof *by_begin);
  if (!by_begin) { s = dama_error(DAMA_ERR_OOM, "%s: '%s': out of memory", OPEN, f->path); goto done; }
  for (int64_t i = 0; i < f->n; i++) f->sorted[i] = by_begin[i] = i;
  pthread_mutex_lock(&g_sort_lock);
  g_sort_file = f;
  qsort(f->sorted, (size_t)f->n, sizeof *f->sorted, cmp_by_name);
  qsort(by_begin, (size_t)f->n, sizeof *by_begin, cmp_by_begin);
  pthread_mutex_unlock(&g_sort_lock);
  for (int64_t i = 1; i < f->n && s == DAMA_OK; i++)
    if (strcmp(f->entries[f->sorted[i - 1]].name, f->entries[f->sorted[i]].name) == 0)
      s = st_err(DAMA_ERR_FORMAT, OPEN, f->path, f->entries[f->sorted[i]].name, "appears twice in the header");
  const st_entry *prev = NULL;
  for (int64_t i = 0; i < f->n && s == DAMA_OK; i++) {
    const st_entry *e = &f->entries[by_begin[i]];
    if (e->end == e->begin) continue;
    if (prev && e->begin < prev->end)
      s = st_err(DAMA_ERR_FORMAT, OPEN, f->path, e->name,
                 "data_offsets [%" PRId64 ", %" PRId64 ") overlap those of tensor '%s' [%" PRId64 ", %" PRId64 ")",
                 e->begin, e->end, prev->name, prev->begin, prev->end);
    prev = e;
  }
  free(by_begin);
done:
  cJSON_Delete(root);
  return s;
}

dama_status dama_safetensors_open(dama_safetensors **out, const char *path, int32_t use_mmap) {
  if (!out) return dama_error(DAMA_ERR_ARG, "%s: out is NULL", OPEN);
  *out = NULL;
  if (!path) return dama_error(DAMA_ERR_ARG, "%s: path is NULL", OPEN);
  dama_safetensors *f = calloc(1, sizeof *f);
  if (!f) return dama_error(DAMA_ERR_OOM, "%s: out of memory", OPEN);
  f->fd = -1;
  dama_status s = DAMA_OK;
  char *header = NULL;
  if (!(f->path = dup_str(path))) { s = dama_error(DAMA_ERR_OOM, "%s: out of memory", OPEN); goto fail; }
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) { s = st_err(DAMA_ERR_IO, OPEN, path, NULL, "cannot open: %s", strerror(errno)); goto fail; }
  struct stat sb;
  if (fstat(f->fd, &sb) != 0) { s = st_err(DAMA_ERR_IO, OPEN, path, NULL, "cannot stat: %s", strerror(errno)); goto fail; }
  if (!S_ISREG(sb.st_mode)) { s = st_err(DAMA_ERR_IO, OPEN, path, NULL, "not a regular file"); goto fail; }
  f->file_size = (int64_t)sb.st_size;
  if (f->file_size < 8) {
    s = st_err(DAMA_ERR_FORMAT, OPEN, path, NULL, "file is %" PRId64 " bytes, too short for the 8-byte header length",
               f->file_size);
    goto fail;
  }
  uint8_t lenbuf[8];
  if (read_exact(f->fd, lenbuf, 8, 0) != 0) { s = st_err(DAMA_ERR_IO, OPEN, path, NULL, "read failed: %s", strerror(errno)); goto fail; }
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | lenbuf[i];
  if (hlen > (uint64_t)(f->file_size - 8)) {
    s = st_err(DAMA_ERR_FORMAT, OPEN, path, NULL,
               "header length %" PRIu64 " runs past the end of the file (%" PRId64 " bytes; truncated or not safetensors?)",
               hlen, f->file_size);
    goto fail;
  }
  if (hlen > (uint64_t)ST_MAX_HEADER || hlen < 2) {
    s = st_err(DAMA_ERR_FORMAT, OPEN, path, NULL, "header length %" PRIu64 " is outside [2, %lld]", hlen, ST_MAX_HEADER);
    goto fail;
  }
  f->data_start = 8 + (int64_t)hlen;
  f->data_len = f->file_size - f->data_start;
  header = malloc((size_t)hlen + 1);
  if (!header) { s = dama_error(DAMA_ERR_OOM, "%s: '%s': out of memory for a %" PRIu64 "-byte header", OPEN, path, hlen); goto fail; }
  if (read_exact(f->fd, header, (int64_t)hlen, 8) != 0) {
    s = st_err(DAMA_ERR_IO, OPEN, path, NULL, "cannot read the header: %s", strerror(errno));
    goto fail;
  }
  header[hlen] = 0;
  if (header[0] != '{') { s = st_err(DAMA_ERR_FORMAT, OPEN, path, NULL, "header does not start with '{'"); goto fail; }
  if ((s = parse_header(f, header, (int64_t)hlen)) != DAMA_OK) goto fail;
  free(header);
  header = NULL;
  if (use_mmap) {
    void *base = mmap(NULL, (size_t)f->file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, f->fd, 0);
    if (base == MAP_FAILED) { s = st_err(DAMA_ERR_IO, OPEN, path, NULL, "mmap failed: %s", strerror(errno)); goto fail; }
    f->map = malloc(sizeof *f->map);
    if (!f->map) { munmap(base, (size_t)f->file_size); s = dama_error(DAMA_ERR_OOM, "%s: out of memory", OPEN); goto fail; }
    f->map->base = base;
    f->map->len = (size_t)f->file_size;
    f->map->refcount = 1;
    close(f->fd);
    f->fd = -1;
  }
  *out = f;
  return DAMA_OK;
fail:
  free(header);
  dama_safetensors_close(f);
  return s;
}

int64_t dama_safetensors_count(const dama_safetensors *f) { return f ? f->n : 0; }

const char *dama_safetensors_name(const dama_safetensors *f, int64_t i) {
  return f && i >= 0 && i < f->n ? f->entries[i].name : NULL;
}

int64_t dama_safetensors_find(const dama_safetensors *f, const char *name) {
  if (!f || !name) return -1;
  int64_t lo = 0, hi = f->n - 1;
  while (lo <= hi) {
    int64_t mid = lo + (hi - lo) / 2;
    int c = strcmp(f->entries[f->sorted[mid]].name, name);
    if (c == 0) return f->sorted[mid];
    if (c < 0) lo = mid + 1; else hi = mid - 1;
  }
  return -1;
}

dama_status dama_safetensors_info(const dama_safetensors *f, int64_t i, int32_t *dtype, int32_t *ndim, int64_t *shape) {
  if (!f) return dama_error(DAMA_ERR_ARG, "safetensors_info: handle is NULL");
  if (i < 0 || i >= f->n)
    return dama_error(DAMA_ERR_INDEX, "safetensors_info: '%s': index %" PRId64 " is outside [0, %" PRId64 ")", f->path, i, f->n);
  const st_entry *e = &f->entries[i];
  if (dtype) *dtype = e->dtype;
  if (ndim) *ndim = e->ndim;
  if (shape) for (int d = 0; d < e->ndim; d++) shape[d] = e->shape[d];
  return DAMA_OK;
}

dama_status dama_safetensors_get_index(const dama_safetensors *f, int64_t i, dama_tensor **out) {
  static const char *op = "safetensors_get";
  if (!out) return dama_error(DAMA_ERR_ARG, "%s: out is NULL", op);
  *out = NULL;
  if (!f) return dama_error(DAMA_ERR_ARG, "%s: handle is NULL", op);
  if (i < 0 || i >= f->n)
    return dama_error(DAMA_ERR_INDEX, "%s: '%s': index %" PRId64 " is outside [0, %" PRId64 ")", op, f->path, i, f->n);
  const st_entry *e = &f->entries[i];
  int64_t nbytes = e->end - e->begin, pos = f->data_start + e->begin;
  int es = dama_dtype_size(e->dtype);
  if (f->map && nbytes > 0 && pos % es == 0) {
    __atomic_add_fetch(&f->map->refcount, 1, __ATOMIC_ACQ_REL);
    dama_status s = dama_from_blob(out, e->ndim, e->shape, NULL, e->dtype, (uint8_t *)f->map->base + pos, f->map,
                                   map_release);
    if (s != DAMA_OK) return st_err(s, op, f->path, e->name, "%s", dama_last_error());
    return DAMA_OK;
  }
  dama_tensor *t = NULL;
  dama_status s = dama_empty(&t, e->ndim, e->shape, e->dtype, dama_cpu());
  if (s != DAMA_OK) return st_err(s, op, f->path, e->name, "%s", dama_last_error());
  if (nbytes > 0) {
    if (f->map) {
      memcpy(dama_data_ptr(t), (uint8_t *)f->map->base + pos, (size_t)nbytes);
    } else {
      int r = read_exact(f->fd, dama_data_ptr(t), nbytes, pos);
      if (r != 0) {
        dama_tensor_release(t);
        if (r == -2) return st_err(DAMA_ERR_FORMAT, op, f->path, e->name, "the file ends before the tensor's data (truncated?)");
        return st_err(DAMA_ERR_IO, op, f->path, e->name, "read failed: %s", strerror(errno));
      }
    }
  }
  *out = t;
  return DAMA_OK;
}

dama_status dama_safetensors_get(const dama_safetensors *f, const char *name, dama_tensor **out) {
  if (!out) return dama_error(DAMA_ERR_ARG, "safetensors_get: out is NULL");
  *out = NULL;
  if (!f || !name) return dama_error(DAMA_ERR_ARG, "safetensors_get: handle or name is NULL");
  int64_t i = dama_safetensors_find(f, name);
  if (i < 0) return st_err(DAMA_ERR_ARG, "safetensors_get", f->path, name, "no such tensor in the file");
  return dama_safetensors_get_index(f, i, out);
}

int64_t dama_safetensors_metadata_count(const dama_safetensors *f) { return f ? f->n_meta : 0; }
const char *dama_safetensors_metadata_key(const dama_safetensors *f, int64_t i) {
  return f && i >= 0 && i < f->n_meta ? f->meta_keys[i] : NULL;
}
const char *dama_safetensors_metadata_value(const dama_safetensors *f, int64_t i) {
  return f && i >= 0 && i < f->n_meta ? f->meta_values[i] : NULL;
}
const char *dama_safetensors_metadata_get(const dama_safetensors *f, const char *key) {
  if (!f || !key) return NULL;
  for (int64_t i = 0; i < f->n_meta; i++)
    if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
  return NULL;
}

/* ---------------------------------------------------------------- writing */

typedef struct sbuf { char *p; size_t len, cap; int oom; } sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) cap *= 2;
    char *q = realloc(b->p, cap);
    if (!q) { b->oom = 1; return; }
    b->p = q;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }
static void sb_json_str(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    if (*p == '"' || *p == '\\') { esc[0] = '\\'; esc[1] = (char)*p; sb_put(b, esc, 2); }
    else if (*p < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", *p); sb_put(b, esc, 6); }
    else sb_put(b, (const char *)p, 1);
  }
  sb_put(b, "\"", 1);
}

static const char *const *g_save_names;
static dama_tensor *const *g_save_tensors;
static int cmp_save_order(const void *a, const void *b) {
  int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
  int si = dama_dtype_size(g_save_tensors[i]->dtype), sj = dama_dtype_size(g_save_tensors[j]->dtype);
  if (si != sj) return si > sj ? -1 : 1;
  return strcmp(g_save_names[i], g_save_names[j]);
}

static int write_all(FILE *fp, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, fp) == n; }

dama_status dama_safetensors_save(const char *path, int64_t n, const char *const *names, dama_tensor *const *tensors,
                                  int64_t n_meta, const char *const *meta_keys, const char *const *meta_values) {
  static const char *op = "safetensors_save";
  if (!path || !*path) return dama_error(DAMA_ERR_ARG, "%s: path is NULL or empty", op);
  if (n < 0 || n_meta < 0) return dama_error(DAMA_ERR_ARG, "%s: '%s': negative count", op, path);
  if (n > 0 && (!names || !tensors)) return dama_error(DAMA_ERR_ARG, "%s: '%s': names or tensors is NULL", op, path);
  if (n_meta > 0 && (!meta_keys || !meta_values))
    return dama_error(DAMA_ERR_ARG, "%s: '%s': metadata keys or values is NULL", op, path);
  for (int64_t i = 0; i < n; i++) {
    const char *nm = names[i];
    if (!nm || !*nm) return dama_error(DAMA_ERR_ARG, "%s: '%s': tensor %" PRId64 " has no name", op, path, i);
    if (strcmp(nm, "__metadata__") == 0)
      return st_err(DAMA_ERR_ARG, op, path, nm, "the name is reserved for the metadata map");
    const dama_tensor *t = tensors[i];
    if (!t) return st_err(DAMA_ERR_ARG, op, path, nm, "tensor is NULL");
    /* a tensor on another device is copied to the host as it is written (dama_to_device below) */
    if (!st_dtype_name(t->dtype)) return st_err(DAMA_ERR_DTYPE, op, path, nm, "unsupported dtype %d", (int)t->dtype);
    for (int64_t j = 0; j < i; j++)
      if (strcmp(names[j], nm) == 0) return st_err(DAMA_ERR_ARG, op, path, nm, "the name is given twice");
  }
  for (int64_t i = 0; i < n_meta; i++) {
    if (!meta_keys[i] || !meta_values[i])
      return dama_error(DAMA_ERR_ARG, "%s: '%s': metadata entry %" PRId64 " is NULL", op, path, i);
    for (int64_t j = 0; j < i; j++)
      if (strcmp(meta_keys[j], meta_keys[i]) == 0)
        return dama_error(DAMA_ERR_ARG, "%s: '%s': metadata key '%s' is given twice", op, path, meta_keys[i]);
  }

  int64_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
  if (!order) return dama_error(DAMA_ERR_OOM, "%s: '%s': out of memory", op, path);
  for (int64_t i = 0; i < n; i++) order[i] = i;
  pthread_mutex_lock(&g_sort_lock);
  g_save_names = names;
  g_save_tensors = tensors;
  qsort(order, (size_t)n, sizeof *order, cmp_save_order);
  pthread_mutex_unlock(&g_sort_lock);

  /* header */
  sbuf h = {0};
  char num[64];
  sb_str(&h, "{");
  int first = 1;
  if (n_meta > 0) {
    sb_str(&h, "\"__metadata__\":{");
    for (int64_t i = 0; i < n_meta; i++) {
      if (i) sb_str(&h, ",");
      sb_json_str(&h, meta_keys[i]);
      sb_str(&h, ":");
      sb_json_str(&h, meta_values[i]);
    }
    sb_str(&h, "}");
    first = 0;
  }
  int64_t offset = 0;
  for (int64_t k = 0; k < n; k++) {
    const dama_tensor *t = tensors[order[k]];
    if (!first) sb_str(&h, ",");
    first = 0;
    sb_json_str(&h, names[order[k]]);
    sb_str(&h, ":{\"dtype\":\"");
    sb_str(&h, st_dtype_name(t->dtype));
    sb_str(&h, "\",\"shape\":[");
    for (int d = 0; d < t->ndim; d++) {
      snprintf(num, sizeof num, "%s%" PRId64, d ? "," : "", t->shape[d]);
      sb_str(&h, num);
    }
    int64_t nb = dama_numel(t) * dama_dtype_size(t->dtype);
    snprintf(num, sizeof num, "],\"data_offsets\":[%" PRId64 ",%" PRId64 "]}", offset, offset + nb);
    sb_str(&h, num);
    offset += nb;
  }
  sb_str(&h, "}");
  while (h.len % 8) sb_str(&h, " ");
  if (h.oom) { free(h.p); free(order); return dama_error(DAMA_ERR_OOM, "%s: '%s': out of memory", op, path); }

  /* temporary file in the same directory, then rename */
  size_t plen = strlen(path);
  char *tmp = malloc(plen + 40);
  if (!tmp) { free(h.p); free(order); return dama_error(DAMA_ERR_OOM, "%s: '%s': out of memory", op, path); }
  snprintf(tmp, plen + 40, "%s.tmp.%ld", path, (long)getpid());
  dama_status s = DAMA_OK;
  FILE *fp = NULL;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) { s = st_err(DAMA_ERR_IO, op, path, NULL, "cannot create '%s': %s", tmp, strerror(errno)); goto out; }
  fp = fdopen(fd, "wb");
  if (!fp) { close(fd); s = st_err(DAMA_ERR_IO, op, path, NULL, "fdopen failed: %s", strerror(errno)); goto cleanup; }
  uint8_t lenbuf[8];
  uint64_t hl = h.len;
  for (int i = 0; i < 8; i++) lenbuf[i] = (uint8_t)(hl >> (8 * i));
  if (!write_all(fp, lenbuf, 8) || !write_all(fp, h.p, h.len)) {
    s = st_err(DAMA_ERR_IO, op, path, NULL, "write failed: %s", strerror(errno));
    goto cleanup;
  }
  for (int64_t k = 0; k < n; k++) {
    const char *nm = names[order[k]];
    if (dama_interrupt_pending()) { s = st_err(DAMA_ERR_INTERRUPTED, op, path, nm, "interrupted; the file was not changed"); goto cleanup; }
    dama_tensor *c = NULL;
    dama_status cs = dama_to_device(&c, tensors[order[k]], (dama_device){DAMA_CPU, 0});
    if (cs != DAMA_OK) {
      char inner[512];
      snprintf(inner, sizeof inner, "%s", dama_last_error());
      s = st_err(cs, op, path, nm, "%s", inner);
      goto cleanup;
    }
    int ok = write_all(fp, dama_data_ptr(c), (size_t)(dama_numel(c) * dama_dtype_size(c->dtype)));
    dama_tensor_release(c);
    if (!ok) { s = st_err(DAMA_ERR_IO, op, path, nm, "write failed: %s", strerror(errno)); goto cleanup; }
  }
  if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
    s = st_err(DAMA_ERR_IO, op, path, NULL, "flush/fsync failed: %s", strerror(errno));
    goto cleanup;
  }
  int rc = fclose(fp);
  fp = NULL;
  if (rc != 0) { s = st_err(DAMA_ERR_IO, op, path, NULL, "close failed: %s", strerror(errno)); goto cleanup; }
  if (rename(tmp, path) != 0) {
    s = st_err(DAMA_ERR_IO, op, path, NULL, "cannot rename '%s' over it: %s", tmp, strerror(errno));
    goto cleanup;
  }
  /* make the rename durable */
  {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (dir) {
      int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) { fsync(dfd); close(dfd); }
      free(dir);
    }
  }
  goto out;
cleanup:
  if (fp) fclose(fp);
  unlink(tmp);
out:
  free(tmp);
  free(h.p);
  free(order);
  return s;
}
