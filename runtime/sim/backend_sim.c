/* The `sim` test device: the CPU kernels over memory that host code cannot read.
 *
 * Its storage pointers are host addresses moved by SIM_TAG (2^62) into the non-canonical half of the x86-64 /
 * AArch64 address space, so any dereference outside the backend faults at once (SIGSEGV; ASan names it), and
 * dama_data_ptr refuses sim tensors. Only this table turns them back into addresses: kernel_ptr for the CPU
 * kernels it shares with the cpu backend, and the copies, which count device-to-host reads like a GPU's would
 * cost a synchronisation. A host-only code path that would read garbage on a GPU therefore fails a test here. */
#include "core/backend.h"
#include <stdint.h>
#include <string.h>

#define SIM_TAG ((uintptr_t)1 << 62)

static void *hide(void *p) { return p ? (void *)((uintptr_t)p + SIM_TAG) : NULL; }
static void *reveal(const void *p) { return p ? (void *)((uintptr_t)p - SIM_TAG) : NULL; }

static int32_t sim_count(void) { return 1; }
static void *sim_alloc(int32_t index, int64_t nbytes) { (void)index; return hide(dama_alloc_bytes(nbytes)); }
static void sim_free(int32_t index, void *p, int64_t nbytes) { (void)index; dama_free_bytes(reveal(p), nbytes); }
static dama_status sim_h2d(int32_t index, void *dst, const void *src, int64_t nbytes) {
  (void)index;
  if (nbytes > 0) memcpy(reveal(dst), src, (size_t)nbytes);
  return DAMA_OK;
}
static dama_status sim_d2h(int32_t index, void *dst, const void *src, int64_t nbytes) {
  (void)index;
  if (nbytes > 0) memcpy(dst, reveal(src), (size_t)nbytes);
  return DAMA_OK;
}
static dama_status sim_d2d(int32_t index, void *dst, const void *src, int64_t nbytes) {
  (void)index;
  if (nbytes > 0) memmove(reveal(dst), reveal(src), (size_t)nbytes);
  return DAMA_OK;
}
static dama_status sim_sync(int32_t index) { (void)index; return DAMA_OK; }
static void *sim_kernel_ptr(void *data) { return reveal(data); }

const dama_backend dama_backend_sim = {
  .name = "sim", .type = DAMA_SIM, .host_visible = 0, .device_count = sim_count,
  .alloc = sim_alloc, .free = sim_free, .copy_h2d = sim_h2d, .copy_d2h = sim_d2h, .copy_d2d = sim_d2d,
  .synchronize = sim_sync, .kernel_ptr = sim_kernel_ptr, .ops = &dama_cpu_ops,
};
