/* The backend registry and dispatch: which table serves a device, and the one-device rule of every op. */
#include "core/backend.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const dama_backend *registry[DAMA_NUM_DEVICE_TYPES] = {&dama_backend_cpu, NULL, &dama_backend_sim};
static _Atomic int64_t device_reads;

static const char *const type_names[DAMA_NUM_DEVICE_TYPES] = {"cpu", "cuda", "sim"};

void dama_backend_register(const dama_backend *be) {
  if (be && be->type >= 0 && be->type < DAMA_NUM_DEVICE_TYPES) registry[be->type] = be;
}

const dama_backend *dama_backend_of_type(int32_t type) {
  return type >= 0 && type < DAMA_NUM_DEVICE_TYPES ? registry[type] : NULL;
}

const dama_backend *dama_backend_of(const dama_tensor *t) {
  const dama_backend *be = dama_backend_of_type(t->storage->device.type);
  return be ? be : &dama_backend_cpu;   /* a tensor exists only on a registered device */
}

dama_status dama_device_parse(const char *text, dama_device *out) {
  if (!text || !out) return dama_error(DAMA_ERR_ARG, "device: expected a device name, got NULL");
  for (int32_t t = 0; t < DAMA_NUM_DEVICE_TYPES; t++) {
    size_t n = strlen(type_names[t]);
    if (strncmp(text, type_names[t], n) != 0) continue;
    const char *rest = text + n;
    if (*rest == 0) { out->type = t; out->index = 0; return DAMA_OK; }
    if (*rest == ':' && rest[1] >= '0' && rest[1] <= '9') {
      char *end = NULL;
      long idx = strtol(rest + 1, &end, 10);
      if (*end == 0 && idx >= 0 && idx < 1024) { out->type = t; out->index = (int32_t)idx; return DAMA_OK; }
    }
  }
  return dama_error(DAMA_ERR_ARG, "device: expected 'cpu', 'cuda', 'cuda:N' or 'sim', got '%s'", text);
}

const char *dama_device_str(dama_device dev, char *buf, int64_t buflen) {
  if (buflen <= 0) return buf;
  if (dev.type == DAMA_CPU) snprintf(buf, (size_t)buflen, "cpu");
  else if (dev.type > 0 && dev.type < DAMA_NUM_DEVICE_TYPES)
    snprintf(buf, (size_t)buflen, "%s:%d", type_names[dev.type], (int)dev.index);
  else snprintf(buf, (size_t)buflen, "device type %d", (int)dev.type);
  return buf;
}

int32_t dama_device_count(int32_t type) {
  const dama_backend *be = dama_backend_of_type(type);
  return be ? be->device_count() : 0;
}

dama_status dama_device_check(dama_device dev) {
  char d[32];
  dama_device_str(dev, d, sizeof d);
  const dama_backend *be = dama_backend_of_type(dev.type);
  if (!be) {
    if (dev.type == DAMA_CUDA)
      return dama_error(DAMA_ERR_DEVICE, "device %s is not available (this build has no CUDA backend)", d);
    return dama_error(DAMA_ERR_DEVICE, "device %s is not a known device type", d);
  }
  int32_t n = be->device_count();
  if (dev.index < 0 || dev.index >= n) {
    const char *why = n == 0 && be->unavailable_reason ? be->unavailable_reason() : NULL;
    return dama_error(DAMA_ERR_DEVICE, "device %s is not available (%d %s device%s%s%s)", d, (int)n, be->name,
                      n == 1 ? "" : "s", why && why[0] ? ": " : "", why && why[0] ? why : "");
  }
  return DAMA_OK;
}

const char *dama_backend_info(int32_t type) {
  const dama_backend *be = dama_backend_of_type(type);
  if (!be) return NULL;
  return be->info ? be->info() : be->name;
}

const char *dama_device_unavailable_reason(int32_t type) {
  const dama_backend *be = dama_backend_of_type(type);
  if (!be || be->device_count() > 0 || !be->unavailable_reason) return NULL;
  const char *why = be->unavailable_reason();
  return why && why[0] ? why : NULL;
}

dama_status dama_device_properties(dama_device dev, dama_device_props *out) {
  if (!out) return dama_error(DAMA_ERR_ARG, "device_properties: out is NULL");
  memset(out, 0, sizeof *out);
  DAMA_TRY(dama_device_check(dev));
  const dama_backend *be = dama_backend_of_type(dev.type);
  if (be->properties) return be->properties(dev.index, out);
  snprintf(out->name, sizeof out->name, "%s", be->name);
  int64_t cached = 0, total = 0, free_bytes = 0;
  if (be->memory_info) DAMA_TRY(be->memory_info(dev.index, &cached, &total, &free_bytes));
  out->total_memory = total;
  return DAMA_OK;
}

int dama_device_host_visible(dama_device dev) {
  const dama_backend *be = dama_backend_of_type(dev.type);
  return be ? be->host_visible : 0;
}

dama_status dama_synchronize(dama_device dev) {
  DAMA_TRY(dama_device_check(dev));
  return dama_backend_of_type(dev.type)->synchronize(dev.index);
}

void dama_count_device_read(void) { atomic_fetch_add(&device_reads, 1); }
int64_t dama_device_reads(void) { return atomic_load(&device_reads); }
void dama_device_reads_reset(void) { atomic_store(&device_reads, 0); }

dama_status dama_op_unimplemented(const char *op, int32_t n, const dama_tensor *const *ts) {
  dama_device dev = dama_cpu();
  for (int32_t i = 0; i < n; i++)
    if (ts[i] && ts[i]->storage) { dev = ts[i]->storage->device; break; }
  char d[32];
  return dama_error(DAMA_ERR_DEVICE, "%s: not implemented on %s yet", op, dama_device_str(dev, d, sizeof d));
}

dama_status dama_dispatch(const char *op, int32_t n, const dama_tensor *const *ts, const char *const *names,
                          const dama_backend **be) {
  int32_t first = -1;
  for (int32_t i = 0; i < n; i++) {
    if (!ts[i]) continue;
    if (!ts[i]->storage) return dama_error(DAMA_ERR_ARG, "%s: tensor '%s' has no storage", op, names[i]);
    if (first < 0) { first = i; continue; }
    dama_device a = ts[first]->storage->device, b = ts[i]->storage->device;
    if (a.type != b.type || a.index != b.index) {
      char da[32], db[32];
      return dama_error(DAMA_ERR_DEVICE, "%s: tensor '%s' is on %s but tensor '%s' is on %s; move one with :to()",
                        op, names[i], dama_device_str(b, db, sizeof db), names[first],
                        dama_device_str(a, da, sizeof da));
    }
  }
  if (first < 0) return dama_error(DAMA_ERR_ARG, "%s: tensor '%s' is NULL", op, n > 0 ? names[0] : "?");
  *be = dama_backend_of(ts[first]);
  if ((*be)->set_device) DAMA_TRY((*be)->set_device(ts[first]->storage->device.index));
  return DAMA_OK;
}
