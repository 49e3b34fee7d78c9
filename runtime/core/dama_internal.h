/* Private helpers shared by the runtime's .c files. Not part of the public API. */
#ifndef DAMA_INTERNAL_H
#define DAMA_INTERNAL_H

#include "dama.h"
#include <stdbool.h>
#include <string.h>

/* Return the status of a failing call. */
#define DAMA_TRY(expr) do { dama_status s_ = (expr); if (s_ != DAMA_OK) return s_; } while (0)
/* Check a condition, else fail with a formatted message. */
#define DAMA_CHECK(cond, status, ...) do { if (!(cond)) return dama_error((status), __VA_ARGS__); } while (0)

static inline dama_device dama_cpu(void) { dama_device d = {DAMA_CPU, 0}; return d; }

/* Normalise a possibly negative dim against ndim; false if out of range. */
static inline bool dama_wrap_dim(int32_t *dim, int32_t ndim) {
  if (*dim < 0) *dim += ndim;
  return *dim >= 0 && *dim < (ndim > 0 ? ndim : 1);
}

/* Allocation through the tracked allocator: honours the memory limit, counts bytes, 64-byte aligned. */
void *dama_alloc_bytes(int64_t nbytes);
void dama_free_bytes(void *p, int64_t nbytes);
/* The machine's physical memory and what is free of it (0 when the system does not say). */
void dama_host_memory_info(int64_t *total, int64_t *free_bytes);
/* Count live tensor headers (+1 on create, -1 on destroy). */
void dama_memory_count_tensor(int delta);
/* Count bytes of tensor storage made (+) or released (-) on a device (core/device_memory.c). */
void dama_storage_count(dama_device dev, int64_t delta);
/* Reset the per-device peaks to what is held now (dama_memory_reset_peak). */
void dama_storage_reset_peaks(void);

/* A new tensor header over existing storage (storage is retained). */
dama_status dama_tensor_view_of(dama_tensor **out, dama_storage *st, int64_t offset, int32_t ndim,
                                const int64_t *shape, const int64_t *strides, dama_dtype dtype);
/* "[d0, d1, ...]" for a shape given as dims (dama_shape_str formats a tensor's). */
const char *dama_dims_str(int32_t nd, const int64_t *shape, char *buf, size_t len);
/* Contiguous row-major strides for shape. */
void dama_contiguous_strides(int32_t ndim, const int64_t *shape, int64_t *strides);

/* Element load/store as double for any dtype (slow paths, conversions, printing). */
double dama_load_f64(const void *base, int64_t i, dama_dtype t);
void dama_store_f64(void *base, int64_t i, dama_dtype t, double v);

/* bf16/f16 <-> f32 (round to nearest even). Shared by CPU and CUDA code. */
static inline float dama_bf16_to_f32(uint16_t h) {
  union { uint32_t u; float f; } v; v.u = (uint32_t)h << 16; return v.f;
}
static inline uint16_t dama_f32_to_bf16(float f) {
  union { uint32_t u; float f; } v; v.f = f;
  if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* quiet NaN */
  uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
  return (uint16_t)((v.u + rounding) >> 16);
}
float dama_f16_to_f32(uint16_t h);
uint16_t dama_f32_to_f16(float f);

#endif
