/* Memory per device and events: bytes held by tensor storage on each device (counted where storage is made and
 * released, core/tensor.c), the all-device counter autograd's collection trigger reads without a call, the
 * backends' caches and memory facts, and events on a device's queue (the ordering rules are at dama_synchronize in
 * runtime/api/core.h). */
#include "core/backend.h"
#include <stdatomic.h>
#include <stdlib.h>

#define MAX_INDEX 16   /* devices of one type counted separately; higher indices share the last slot */

static _Atomic int64_t live_total;
static _Atomic int64_t held[DAMA_NUM_DEVICE_TYPES][MAX_INDEX], peak[DAMA_NUM_DEVICE_TYPES][MAX_INDEX];

static int slot_of(dama_device dev, int32_t *type, int32_t *index) {
  if (dev.type < 0 || dev.type >= DAMA_NUM_DEVICE_TYPES || dev.index < 0) return 0;
  *type = dev.type;
  *index = dev.index < MAX_INDEX ? dev.index : MAX_INDEX - 1;
  return 1;
}

void dama_storage_count(dama_device dev, int64_t delta) {
  int32_t t = 0, i = 0;
  atomic_fetch_add(&live_total, delta);
  if (!slot_of(dev, &t, &i)) return;
  int64_t now = atomic_fetch_add(&held[t][i], delta) + delta;
  int64_t p = atomic_load(&peak[t][i]);
  while (now > p && !atomic_compare_exchange_weak(&peak[t][i], &p, now)) {}
}

void dama_storage_reset_peaks(void) {
  for (int t = 0; t < DAMA_NUM_DEVICE_TYPES; t++)
    for (int i = 0; i < MAX_INDEX; i++) atomic_store(&peak[t][i], atomic_load(&held[t][i]));
}

/* A plain int64_t load of an always-lock-free _Atomic int64_t reads a whole value on the platforms we build for
 * (x86-64, AArch64); the counter is a trigger, a value one update old is fine. */
const int64_t *dama_memory_live_bytes(void) { return (const int64_t *)&live_total; }

dama_status dama_device_memory_stats(dama_device dev, dama_device_memory *out) {
  if (!out) return dama_error(DAMA_ERR_ARG, "device_memory_stats: out is NULL");
  DAMA_TRY(dama_device_check(dev));
  int32_t t = 0, i = 0;
  slot_of(dev, &t, &i);
  *out = (dama_device_memory){.allocated = atomic_load(&held[t][i]), .peak = atomic_load(&peak[t][i])};
  const dama_backend *be = dama_backend_of_type(dev.type);
  if (be->memory_info) DAMA_TRY(be->memory_info(dev.index, &out->cached, &out->total, &out->free));
  return DAMA_OK;
}

dama_status dama_device_empty_cache(dama_device dev) {
  DAMA_TRY(dama_device_check(dev));
  const dama_backend *be = dama_backend_of_type(dev.type);
  return be->empty_cache ? be->empty_cache(dev.index) : DAMA_OK;
}

struct dama_event {
  dama_device dev;
  const dama_backend *be;
  void *handle;   /* the backend's event; NULL where the backend has no events (nothing is ever pending) */
};

dama_status dama_event_create(dama_event **out, dama_device dev) {
  if (!out) return dama_error(DAMA_ERR_ARG, "event_create: out is NULL");
  *out = NULL;
  DAMA_TRY(dama_device_check(dev));
  dama_event *ev = calloc(1, sizeof *ev);
  if (!ev) return dama_error(DAMA_ERR_OOM, "event_create: out of memory");
  ev->dev = dev;
  ev->be = dama_backend_of_type(dev.type);
  if (ev->be->event_create) {
    dama_status s = ev->be->event_create(dev.index, &ev->handle);
    if (s != DAMA_OK) { free(ev); return s; }
  }
  *out = ev;
  return DAMA_OK;
}

void dama_event_destroy(dama_event *ev) {
  if (!ev) return;
  if (ev->handle && ev->be->event_destroy) ev->be->event_destroy(ev->dev.index, ev->handle);
  free(ev);
}

dama_status dama_event_record(dama_event *ev) {
  if (!ev) return dama_error(DAMA_ERR_ARG, "event_record: the event is NULL");
  return ev->handle && ev->be->event_record ? ev->be->event_record(ev->dev.index, ev->handle) : DAMA_OK;
}

dama_status dama_event_wait(dama_event *ev) {
  if (!ev) return dama_error(DAMA_ERR_ARG, "event_wait: the event is NULL");
  return ev->handle && ev->be->event_wait ? ev->be->event_wait(ev->dev.index, ev->handle) : DAMA_OK;
}
