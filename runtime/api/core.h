/* dama core API: status codes, dtypes, devices, tensors, memory, RNG, threads.
 *
 * This file (like every file in runtime/api/) holds no preprocessor lines: it is read both by the
 * C compiler (through runtime/dama.h) and by LuaJIT's ffi.cdef (embedded verbatim in the binary).
 *
 * Conventions
 * - Every call that can fail returns dama_status; DAMA_OK is 0. On failure the thread-local message
 *   from dama_last_error() names the operation, the bad argument and what was expected.
 * - Functions that create a tensor write it to `dama_tensor **out`; the caller owns one reference
 *   and drops it with dama_tensor_release(). *out is left NULL on failure.
 * - Tensors are views (shape, strides in elements, offset in elements) over refcounted storage.
 *   Views share storage; dama_tensor_release() of the last view frees the bytes.
 * - Shapes are int64_t arrays of length ndim (0 <= ndim <= DAMA_MAX_DIMS = 8).
 *   Dims may be negative (counted from the end) wherever a dim is taken.
 */

typedef enum dama_status {
  DAMA_OK = 0,
  DAMA_ERR_ARG = 1,         /* a bad argument value or type */
  DAMA_ERR_SHAPE = 2,       /* shapes that do not fit together */
  DAMA_ERR_DTYPE = 3,       /* a dtype the operation does not take */
  DAMA_ERR_INDEX = 4,       /* an index out of range */
  DAMA_ERR_OOM = 5,         /* an allocation failed */
  DAMA_ERR_IO = 6,          /* a file could not be opened, read or written */
  DAMA_ERR_FORMAT = 7,      /* a file's content is corrupt or unsupported */
  DAMA_ERR_INTERRUPTED = 8, /* Ctrl-C arrived while the operation ran */
  DAMA_ERR_NUMERIC = 9,     /* NaN/Inf where a finite value is required */
  DAMA_ERR_DEVICE = 10,     /* a device that is absent or does not fit */
  DAMA_ERR_UNSUPPORTED = 11,/* valid, but not implemented for this case */
  DAMA_ERR_INTERNAL = 12
} dama_status;

/* The message of the last failure on this thread ("" if none). */
const char *dama_last_error(void);
/* Name of a status code, e.g. "shape error". */
const char *dama_status_name(dama_status s);
/* Set the thread-local error message (printf-style); returns s, so `return dama_error(...)` works. */
dama_status dama_error(dama_status s, const char *fmt, ...);
void dama_clear_error(void);

/* Interrupts (Ctrl-C). The host's signal handler calls dama_interrupt_request(); long C loops poll
 * dama_interrupt_pending() and return DAMA_ERR_INTERRUPTED; the host clears it before each chunk. */
void dama_interrupt_request(void);
int dama_interrupt_pending(void);
void dama_interrupt_clear(void);

typedef enum dama_dtype {
  DAMA_F32 = 0, DAMA_F64 = 1, DAMA_BF16 = 2, DAMA_F16 = 3,
  DAMA_U8 = 4, DAMA_U16 = 5, DAMA_I32 = 6, DAMA_I64 = 7,
  DAMA_NUM_DTYPES = 8
} dama_dtype;

const char *dama_dtype_name(dama_dtype t);          /* "f32", "bf16", ... */
int dama_dtype_size(dama_dtype t);                  /* bytes per element */
int dama_dtype_is_float(dama_dtype t);
/* Parse "f32"/"float32"/"float" ... into *out; DAMA_ERR_ARG for an unknown name. */
dama_status dama_dtype_parse(const char *name, dama_dtype *out);

/* Devices. Every tensor's storage lives on one; ops run on their inputs' device (all inputs on one device, else
 * DAMA_ERR_DEVICE naming both) and allocate their outputs there. DAMA_SIM is the test device: the CPU kernels over
 * memory that host code cannot read (dama_data_ptr refuses it; only the backend's copies reach it), so a host-only
 * path that would break on a GPU fails a test on any machine. A backend registers itself (runtime/core/backend.h). */
typedef enum dama_device_type { DAMA_CPU = 0, DAMA_CUDA = 1, DAMA_SIM = 2, DAMA_NUM_DEVICE_TYPES = 3 } dama_device_type;
typedef struct dama_device { int32_t type; int32_t index; } dama_device;


typedef struct dama_storage {
  void *data;
  int64_t nbytes;
  int64_t refcount;
  dama_device device;
  int32_t owns_data;  /* 0 for storage that wraps foreign memory (e.g. an mmap'ed .npy kept alive by `keepalive`) */
  int32_t pinned;     /* host storage from pinned_for's backend (page-locked on a GPU): async copies to it */
  dama_device pinned_for;
  void *keepalive;
  void (*release_fn)(void *keepalive);
} dama_storage;

typedef struct dama_tensor {
  dama_storage *storage;
  int64_t offset;        /* in elements */
  int32_t ndim;
  int32_t dtype;         /* dama_dtype */
  int64_t shape[8];
  int64_t strides[8];    /* in elements */
  int64_t refcount;
} dama_tensor;

/* ---- devices ---- */
/* "cpu", "cuda", "cuda:1", "sim" -> a device (index 0 when none is given); DAMA_ERR_ARG for other text. */
dama_status dama_device_parse(const char *text, dama_device *out);
/* "cpu", "cuda:0", "sim:0" into buf (always NUL-terminated); returns buf. */
const char *dama_device_str(dama_device dev, char *buf, int64_t buflen);
/* DAMA_OK if a backend for dev is registered and has that device index, else DAMA_ERR_DEVICE saying why. */
dama_status dama_device_check(dama_device dev);
/* Number of devices of a type (1 for cpu and sim; 0 for cuda in a build or on a machine without one). */
int32_t dama_device_count(int32_t type);
/* Whether host code may read the device's memory through dama_data_ptr (cpu: yes; sim, cuda: no). */
int dama_device_host_visible(dama_device dev);
/* One line on a device type's backend in this build, what it was built with and what it found (cuda: "CUDA 13.0,
 * code for sm_80 sm_90a, PTX compute_90: 1 device"), or NULL when this build has no backend for the type. */
const char *dama_backend_info(int32_t type);
/* Why a device type has no device (cuda: "no NVIDIA driver: libcuda.so.1: cannot open shared object file ...", or
 * cudaGetDeviceCount's words), or NULL when it has one or when this build has no backend for it. */
const char *dama_device_unavailable_reason(int32_t type);
/* What a device is: its name, memory and (GPUs) compute capability and multiprocessor count (0 elsewhere). */
typedef struct dama_device_props {
  char name[256];
  int64_t total_memory;
  int32_t major, minor, multi_processor_count;
} dama_device_props;
/* DAMA_ERR_DEVICE for a device that is not available (dama_device_check's message). */
dama_status dama_device_properties(dama_device dev, dama_device_props *out);
/* The device a tensor lives on. */
dama_device dama_tensor_device(const dama_tensor *t);
/* A contiguous copy of t on dev (t itself, retained, when it is already there and contiguous). */
dama_status dama_to_device(dama_tensor **out, const dama_tensor *t, dama_device dev);
/* Wait for the device's queued work (a no-op on cpu; sim runs its deferred copies).
 *
 * Ordering rules. Every device has one queue (a CUDA stream): the ops, kernels and copies issued for it run in
 * issue order, so a kernel always sees the copies issued before it. A call that returns data to the host
 * (dama_get, dama_to_device to the cpu, dama_item-like reads) waits for the queue first. Only
 * dama_to_device_async from pinned host memory returns before its copy has run: its source must not be written
 * until an event recorded after it has been waited on (or dama_synchronize). */
dama_status dama_synchronize(dama_device dev);
/* dama_to_device that may return before the copy has run: from pinned host memory (dama_empty_pinned) to a device
 * whose backend copies asynchronously; any other case is dama_to_device. See the ordering rules above. */
dama_status dama_to_device_async(dama_tensor **out, const dama_tensor *t, dama_device dev);
/* Host tensors in pinned memory for copies to `for_dev` (page-locked memory on a GPU, so copies to it can run
 * asynchronously and at full bus speed); ordinary host memory where for_dev offers none (cpu). */
dama_status dama_empty_pinned(dama_tensor **out, int32_t ndim, const int64_t *shape, dama_dtype dtype,
                              dama_device for_dev);
/* 1 if t's storage is pinned host memory from a device's backend, else 0. */
int dama_is_pinned(const dama_tensor *t);
/* Events mark a point in a device's queue: record captures the work issued so far, wait blocks the host until
 * it has run (cpu: nothing is ever pending). */
typedef struct dama_event dama_event;
dama_status dama_event_create(dama_event **out, dama_device dev);
void dama_event_destroy(dama_event *ev);   /* NULL is fine */
dama_status dama_event_record(dama_event *ev);
dama_status dama_event_wait(dama_event *ev);
/* Device-to-host copies made so far (reads of device memory: dama_get, dama_to_device to cpu, ...), and reset.
 * A training step should make at most one per log interval. */
int64_t dama_device_reads(void);
void dama_device_reads_reset(void);

/* ---- lifetime ---- */
void dama_tensor_retain(dama_tensor *t);
void dama_tensor_release(dama_tensor *t);            /* NULL is fine */
/* Bytes of storage currently held by tensors, and the peak since start (or the last reset). */
void dama_memory_stats(int64_t *in_use, int64_t *peak, int64_t *n_tensors);
void dama_memory_reset_peak(void);
/* Memory of one device: bytes held by live tensor storage there and their peak (since start or
 * dama_memory_reset_peak), bytes its allocator keeps cached for reuse (0 where it has no cache), and the device's
 * total and free bytes (physical memory for cpu; 0 when unknown). Pinned host tensors count as cpu memory. */
typedef struct dama_device_memory { int64_t allocated, peak, cached, total, free; } dama_device_memory;
dama_status dama_device_memory_stats(dama_device dev, dama_device_memory *out);
/* Hand the device allocator's cached blocks back (a no-op where there is no cache). */
dama_status dama_device_empty_cache(dama_device dev);
/* Bytes held by live tensor storage on all devices together, as a counter the caller reads with a plain load
 * (autograd's collection trigger reads it once per graph node, without a call). */
const int64_t *dama_memory_live_bytes(void);
/* Make every allocation larger than `bytes` fail with DAMA_ERR_OOM (0 = no limit); for tests of the
 * out-of-memory path and to cap a run's memory. */
void dama_memory_set_limit(int64_t bytes);

/* ---- creation ---- */
dama_status dama_empty(dama_tensor **out, int32_t ndim, const int64_t *shape, dama_dtype dtype, dama_device dev);
/* dama_empty whose errors name `op` (e.g. "randn: shape [...] has 2^93 elements, ...") */
dama_status dama_empty_op(dama_tensor **out, const char *op, int32_t ndim, const int64_t *shape, dama_dtype dtype,
                          dama_device dev);
dama_status dama_zeros(dama_tensor **out, int32_t ndim, const int64_t *shape, dama_dtype dtype, dama_device dev);
dama_status dama_full(dama_tensor **out, int32_t ndim, const int64_t *shape, double value, dama_dtype dtype, dama_device dev);
/* Copy n elements of `src_dtype` from host memory into a new contiguous tensor of `dtype` on dev. */
dama_status dama_from_buffer(dama_tensor **out, int32_t ndim, const int64_t *shape, dama_dtype dtype,
                             const void *src, dama_dtype src_dtype, dama_device dev);
/* Wrap foreign host memory without copying; release_fn(keepalive) runs when the storage dies. */
dama_status dama_from_blob(dama_tensor **out, int32_t ndim, const int64_t *shape, const int64_t *strides,
                           dama_dtype dtype, void *data, void *keepalive, void (*release_fn)(void *));
/* [start, end) with step, like torch.arange. */
dama_status dama_arange(dama_tensor **out, double start, double end, double step, dama_dtype dtype, dama_device dev);
dama_status dama_linspace(dama_tensor **out, double start, double end, int64_t steps, dama_dtype dtype,
                          dama_device dev);

/* ---- queries ---- */
int64_t dama_numel(const dama_tensor *t);
int dama_is_contiguous(const dama_tensor *t);
/* Pointer to element 0 of the view (storage data + offset) for host code: cpu tensors only. For a tensor on
 * another device it returns NULL with DAMA_ERR_DEVICE set (copy it with dama_to_device first). */
void *dama_data_ptr(const dama_tensor *t);
/* Read/write one element at a full index (ndim entries, negative allowed) as double. */
dama_status dama_get(const dama_tensor *t, const int64_t *index, double *value);
dama_status dama_set(dama_tensor *t, const int64_t *index, double value);
/* Shape as text, e.g. "[3, 4]", into buf (always NUL-terminated). */
const char *dama_shape_str(const dama_tensor *t, char *buf, int64_t buflen);

/* ---- views (share storage, no copy) ---- */
/* view: requires compatible strides (like torch.view); reshape: copies when it must. One entry may be -1. */
dama_status dama_view(dama_tensor **out, const dama_tensor *t, int32_t ndim, const int64_t *shape);
dama_status dama_reshape(dama_tensor **out, const dama_tensor *t, int32_t ndim, const int64_t *shape);
dama_status dama_transpose(dama_tensor **out, const dama_tensor *t, int32_t d0, int32_t d1);
dama_status dama_permute(dama_tensor **out, const dama_tensor *t, const int32_t *dims);
/* narrow(dim, start, length); slice(dim, start, end, step) with Python-style negative start/end. */
dama_status dama_narrow(dama_tensor **out, const dama_tensor *t, int32_t dim, int64_t start, int64_t length);
dama_status dama_slice(dama_tensor **out, const dama_tensor *t, int32_t dim, int64_t start, int64_t end, int64_t step);
dama_status dama_select(dama_tensor **out, const dama_tensor *t, int32_t dim, int64_t index);
/* squeeze: dim = -100 squeezes every size-1 dim. */
dama_status dama_squeeze(dama_tensor **out, const dama_tensor *t, int32_t dim);
dama_status dama_unsqueeze(dama_tensor **out, const dama_tensor *t, int32_t dim);
/* expand: -1 keeps a dim; new leading dims allowed; expanded dims get stride 0. */
dama_status dama_expand(dama_tensor **out, const dama_tensor *t, int32_t ndim, const int64_t *shape);
/* A 1-D view of `numel` elements of t's storage starting at t's first element (t's dtype); DAMA_ERR_INDEX when
 * the span passes the storage's end. For fused updates over parameters that lie back to back in one arena. */
dama_status dama_flat_span(dama_tensor **out, const dama_tensor *t, int64_t numel);
/* A new reference to t itself when already contiguous, else a contiguous copy. */
dama_status dama_contiguous(dama_tensor **out, const dama_tensor *t);
dama_status dama_clone(dama_tensor **out, const dama_tensor *t);
/* dst[...] = src, broadcasting src to dst's shape and converting dtype. */
dama_status dama_copy_(dama_tensor *dst, const dama_tensor *src);
dama_status dama_to_dtype(dama_tensor **out, const dama_tensor *t, dama_dtype dtype);
/* Shape broadcasting of two shapes into out_shape (ndim returned in *out_ndim); DAMA_ERR_SHAPE shows both. */
dama_status dama_broadcast_shapes(int32_t na, const int64_t *a, int32_t nb, const int64_t *b,
                                  int32_t *out_ndim, int64_t *out_shape);

/* ---- random numbers: a counter-based Philox4x32-10 generator ---- */
typedef struct dama_rng { uint64_t seed; uint64_t offset; } dama_rng;
/* The global generator used when rng == NULL. */
dama_rng *dama_default_rng(void);
void dama_manual_seed(uint64_t seed);
/* Philox4x32-10 block for (key, counter): 4 uint32 outputs. Shared by CPU and CUDA code. */
void dama_philox4x32(uint64_t key, uint64_t counter_hi, uint64_t counter_lo, uint32_t out[4]);
/* Fill t (any float dtype, contiguous or not) with U[lo, hi) / N(mean, std) / integers in [lo, hi). */
dama_status dama_uniform_(dama_tensor *t, double lo, double hi, dama_rng *rng);
dama_status dama_normal_(dama_tensor *t, double mean, double std, dama_rng *rng);
dama_status dama_randint_(dama_tensor *t, int64_t lo, int64_t hi, dama_rng *rng);
dama_status dama_randperm(dama_tensor **out, int64_t n, dama_dtype dtype, dama_rng *rng, dama_device dev);

/* ---- threads ---- */
void dama_set_num_threads(int n);
int dama_get_num_threads(void);
