/* cuda_interp.cpp — the scheduler, fibers and runtime API behind cuda_interp.h (see README.md for the dialect).
 *
 * A grid runs block by block; up to workers() OS threads take blocks from a shared counter. A block's threads are
 * fibers on the OS thread that took the block: each runs until it waits (__syncthreads, a warp collective) or ends,
 * then the scheduler resumes the next runnable one in the schedule's order. A barrier releases its waiters when the
 * last participant arrives; a pass in which no fiber can run while some have not ended is a deadlock, reported with
 * what every thread waits for. Fibers switch with a few instructions of assembly on x86-64 (glibc's swapcontext
 * makes a system call per switch) and with ucontext elsewhere; under AddressSanitizer every switch is announced
 * (__sanitizer_start/finish_switch_fiber) so that ASan follows the stacks. */
#include "cuda_interp.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdarg>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define DAMA_INTERP_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DAMA_INTERP_ASAN 1
#endif
#endif
#if defined(DAMA_INTERP_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

/* DAMA_INTERP_UCONTEXT forces the portable path on x86-64 too (to test it) */
#if defined(__x86_64__) && !defined(DAMA_INTERP_UCONTEXT)
#define DAMA_INTERP_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

namespace cuda_interp {

thread_local uint3 t_threadIdx;
thread_local uint3 t_blockIdx;
thread_local dim3 t_blockDim;
thread_local dim3 t_gridDim;

namespace {

/* ---------------------------------------------------------------- context switch */
#if defined(DAMA_INTERP_ASM_SWITCH)
extern "C" void dama_interp_switch(void **save_sp, void *load_sp);
/* Saves the callee-saved registers on the current stack, stores the stack pointer in *save_sp, loads load_sp and
 * restores the same from there; `ret` resumes the other context. MXCSR and the x87 control word are not switched
 * (ldmxcsr is slow): all fibers of a thread share its floating-point environment, which kernels do not change. */
__asm__(".pushsection .text\n"
        ".globl dama_interp_switch\n"
        ".type dama_interp_switch,@function\n"
        "dama_interp_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size dama_interp_switch, .-dama_interp_switch\n"
        ".popsection\n");
#endif

struct Stack {
  char *map = nullptr; /* guard page + usable part */
  size_t map_size = 0;
  char *bottom = nullptr;
  size_t size = 0;
};

size_t stack_bytes() {
  static size_t bytes = [] {
    size_t kb = 256;
    if (const char *e = getenv("DAMA_INTERP_STACK_KB")) kb = (size_t)strtoul(e, nullptr, 10);
    if (kb < 64) kb = 64;
    return kb * 1024;
  }();
  return bytes;
}

Stack make_stack() {
  Stack s;
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  s.size = (stack_bytes() + page - 1) / page * page;
  s.map_size = s.size + page;
  void *p = mmap(nullptr, s.map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
                 -1, 0);
  if (p == MAP_FAILED) fatal("cannot map a %zu-byte fiber stack", s.map_size);
  s.map = static_cast<char *>(p);
  mprotect(s.map, page, PROT_NONE); /* overflow faults instead of overwriting the neighbour */
  s.bottom = s.map + page;
  return s;
}

enum class State : uint8_t { runnable, at_barrier, at_warp, done };

struct Fiber {
  void *sp = nullptr;
#if !defined(DAMA_INTERP_ASM_SWITCH)
  ucontext_t uc;
#endif
  Stack stack;
  uint3 tid{0, 0, 0};
  unsigned lin = 0; /* linear thread index in the block */
  State state = State::done;
  /* a pending block barrier */
  int bar_kind = 0;
  /* a pending warp collective */
  WarpOp op = op_syncwarp;
  unsigned op_mask = 0;
  uint64_t op_value = 0, op_result = 0;
  int op_b = 0, op_width = 32;
  const char *op_name = "";
  void *asan_fake = nullptr;
};

/* the warp collectives now pending in one warp, one group per mask */
struct WarpGroups {
  unsigned n = 0;
  unsigned mask[32];
  unsigned arrived[32];
};

struct SharedVar {
  const void *key;
  void *p;
  size_t bytes;
};

/* One per OS thread that runs blocks. */
struct Worker {
  std::vector<Fiber> fibers;
  std::vector<WarpGroups> warps;
  unsigned nthreads = 0;
  Fiber *current = nullptr;
  void *sched_sp = nullptr;
#if !defined(DAMA_INTERP_ASM_SWITCH)
  ucontext_t sched_uc;
#endif
  const void *sched_bottom = nullptr; /* the OS thread's own stack, as ASan reports it */
  size_t sched_size = 0;
  void *sched_fake = nullptr;
  const LaunchSpec *spec = nullptr;
  unsigned bar_arrived = 0, bar_pred = 0;
  int bar_result = 0;
  std::vector<SharedVar> statics;
  size_t static_bytes = 0;
  void *dynamic = nullptr;
  std::vector<unsigned> order;
  std::mt19937_64 rng;
  uint3 block{0, 0, 0};
  Worker() = default;
  Worker(const Worker &) = delete;
  Worker &operator=(const Worker &) = delete;
  /* an OS thread that ends (a replaced worker pool's) gives its fiber stacks back */
  ~Worker() {
    for (Fiber &f : fibers)
      if (f.stack.map) munmap(f.stack.map, f.stack.map_size);
  }
};

thread_local Worker *t_worker = nullptr;

Worker &this_worker() {
  static thread_local Worker w;
  return w;
}

/* ---------------------------------------------------------------- settings */
std::atomic<int> g_schedule{-1};
std::atomic<uint64_t> g_seed{1};
std::atomic<int> g_workers{0};
std::atomic<uint64_t> g_launches{0};

void read_env_settings() {
  if (g_schedule.load() < 0) {
    int s = (int)Schedule::forward;
    uint64_t seed = 1;
    if (const char *e = getenv("DAMA_INTERP_SCHEDULE")) {
      if (!strcmp(e, "reverse")) s = (int)Schedule::reverse;
      else if (!strcmp(e, "warps")) s = (int)Schedule::warps;
      else if (!strncmp(e, "random", 6)) {
        s = (int)Schedule::random;
        if (e[6] == ':') seed = strtoull(e + 7, nullptr, 10);
      }
    }
    g_seed = seed;
    int expected = -1;
    g_schedule.compare_exchange_strong(expected, s);
  }
  if (g_workers.load() == 0) {
    int n = 2;
    if (const char *e = getenv("DAMA_INTERP_WORKERS")) n = atoi(e);
    if (n < 1) n = 1;
    if (n > 64) n = 64;
    int expected = 0;
    g_workers.compare_exchange_strong(expected, n);
  }
}

/* ---------------------------------------------------------------- fibers */
[[noreturn]] void fiber_main();

void start_fiber(Fiber &f) {
#if defined(DAMA_INTERP_ASAN)
  /* the stack's last user ended without unwinding its first frame; clear what its redzones left poisoned */
  const size_t top = std::min<size_t>(f.stack.size, 16384);
  __asan_unpoison_memory_region(f.stack.bottom + f.stack.size - top, top);
#endif
#if defined(DAMA_INTERP_ASM_SWITCH)
  uint64_t *p = reinterpret_cast<uint64_t *>(f.stack.bottom + f.stack.size); /* 16-byte aligned */
  *--p = 0;                                         /* fiber_main's "return address": it never returns */
  *--p = reinterpret_cast<uint64_t>(&fiber_main);   /* where dama_interp_switch's ret goes */
  for (int i = 0; i < 6; i++) *--p = 0;             /* rbp rbx r12 r13 r14 r15 */
  f.sp = p;
#else
  getcontext(&f.uc);
  f.uc.uc_stack.ss_sp = f.stack.bottom;
  f.uc.uc_stack.ss_size = f.stack.size;
  f.uc.uc_link = nullptr;
  makecontext(&f.uc, reinterpret_cast<void (*)()>(&fiber_main), 0);
#endif
}

/* scheduler -> fiber */
void resume(Worker &w, Fiber &f) {
  w.current = &f;
  t_threadIdx = f.tid;
#if defined(DAMA_INTERP_ASAN)
  __sanitizer_start_switch_fiber(&w.sched_fake, f.stack.bottom, f.stack.size);
#endif
#if defined(DAMA_INTERP_ASM_SWITCH)
  dama_interp_switch(&w.sched_sp, f.sp);
#else
  swapcontext(&w.sched_uc, &f.uc);
#endif
#if defined(DAMA_INTERP_ASAN)
  __sanitizer_finish_switch_fiber(w.sched_fake, nullptr, nullptr);
#endif
  w.current = nullptr;
}

/* fiber -> scheduler; returns when the scheduler resumes this fiber */
void yield(Worker &w) {
  Fiber &f = *w.current;
#if defined(DAMA_INTERP_ASAN)
  __sanitizer_start_switch_fiber(f.state == State::done ? nullptr : &f.asan_fake, w.sched_bottom, w.sched_size);
#endif
#if defined(DAMA_INTERP_ASM_SWITCH)
  dama_interp_switch(&f.sp, w.sched_sp);
#else
  swapcontext(&f.uc, &w.sched_uc);
#endif
#if defined(DAMA_INTERP_ASAN)
  __sanitizer_finish_switch_fiber(f.asan_fake, nullptr, nullptr);
#endif
}

[[noreturn]] void fiber_main() {
  Worker &w = *t_worker;
#if defined(DAMA_INTERP_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &w.sched_bottom, &w.sched_size);
#endif
  w.spec->call(w.spec->ctx);
  w.current->state = State::done;
  yield(w);
  fatal("a finished fiber was resumed");
}

/* ---------------------------------------------------------------- messages */
std::string where() {
  Worker *w = t_worker;
  if (!w || !w->spec) return "";
  char buf[160];
  if (w->current)
    snprintf(buf, sizeof buf, " [block (%u,%u,%u), thread (%u,%u,%u)]", w->block.x, w->block.y, w->block.z,
             w->current->tid.x, w->current->tid.y, w->current->tid.z);
  else
    snprintf(buf, sizeof buf, " [block (%u,%u,%u)]", w->block.x, w->block.y, w->block.z);
  return buf;
}

Worker &in_kernel(const char *what) {
  Worker *w = t_worker;
  if (!w || !w->current) fatal("%s called outside a kernel", what);
  return *w;
}

std::string thread_list(const Worker &w, State s, int max_items) {
  std::string out;
  int n = 0, shown = 0;
  for (unsigned i = 0; i < w.nthreads; i++) {
    const Fiber &f = w.fibers[i];
    if (f.state != s) continue;
    n++;
    if (shown < max_items) {
      char buf[128];
      if (s == State::at_warp)
        snprintf(buf, sizeof buf, "%s%u (%s, mask %#x)", shown ? ", " : "", i, f.op_name, f.op_mask);
      else
        snprintf(buf, sizeof buf, "%s%u", shown ? ", " : "", i);
      out += buf;
      shown++;
    }
  }
  if (n > shown) out += ", ...";
  return std::to_string(n) + (n ? " (" + out + ")" : "");
}

[[noreturn]] void deadlock(Worker &w) {
  fatal("deadlock in block (%u,%u,%u) of %u threads: at __syncthreads: %s; in warp collectives: %s; ended: %s. "
        "Every thread of a block must reach each __syncthreads(), and every lane named in a warp collective's mask "
        "must call the same collective (no early return before them)",
        w.block.x, w.block.y, w.block.z, w.nthreads, thread_list(w, State::at_barrier, 8).c_str(),
        thread_list(w, State::at_warp, 8).c_str(), thread_list(w, State::done, 8).c_str());
}

/* ---------------------------------------------------------------- running a block */
void free_block_memory(Worker &w) {
  for (SharedVar &s : w.statics) free(s.p);
  w.statics.clear();
  w.static_bytes = 0;
  free(w.dynamic);
  w.dynamic = nullptr;
}

void run_block(Worker &w, const LaunchSpec &spec, uint3 b) {
  const unsigned n = spec.block.x * spec.block.y * spec.block.z;
  w.spec = &spec;
  w.block = b;
  t_blockIdx = b;
  t_blockDim = spec.block;
  t_gridDim = spec.grid;
  if (w.fibers.size() < n) w.fibers.resize(n);
  w.nthreads = n;
  w.warps.assign((n + 31) / 32, WarpGroups());
  for (unsigned i = 0; i < n; i++) {
    Fiber &f = w.fibers[i];
    if (!f.stack.map) f.stack = make_stack();
    f.lin = i;
    f.tid = uint3{i % spec.block.x, (i / spec.block.x) % spec.block.y, i / (spec.block.x * spec.block.y)};
    f.state = State::runnable;
    f.asan_fake = nullptr;
    start_fiber(f);
  }
  w.bar_arrived = w.bar_pred = 0;
  if (spec.shmem) {
    if (posix_memalign(&w.dynamic, 16, spec.shmem) != 0) fatal("cannot allocate %zu bytes of dynamic shared memory", spec.shmem);
    memset(w.dynamic, fill_byte, spec.shmem);
  }
  const Schedule sched = (Schedule)g_schedule.load();
  if (sched == Schedule::random) {
    const uint64_t lin_block = b.x + (uint64_t)spec.grid.x * (b.y + (uint64_t)spec.grid.y * b.z);
    w.rng.seed(g_seed.load() * 0x9E3779B97F4A7C15ull ^ (g_launches.load() << 20) ^ lin_block);
  }
  unsigned remaining = n;
  if (sched == Schedule::forward || sched == Schedule::reverse) {
    /* passes: every runnable thread makes one step (to its next wait) per pass */
    w.order.resize(n);
    for (unsigned i = 0; i < n; i++) w.order[i] = sched == Schedule::reverse ? n - 1 - i : i;
    while (remaining) {
      bool ran = false;
      for (unsigned k = 0; k < n; k++) {
        Fiber &f = w.fibers[w.order[k]];
        if (f.state != State::runnable) continue;
        resume(w, f);
        ran = true;
        if (f.state == State::done) remaining--;
      }
      if (!ran && remaining) deadlock(w);
    }
  } else {
    /* warp by warp: one warp runs as far as it can (to a __syncthreads or its end) before the next one starts, so a
     * warp races ahead of the others as far as the barriers allow */
    const unsigned nwarps = (n + 31) / 32;
    std::vector<unsigned> &warp_order = w.order;
    warp_order.resize(nwarps);
    for (unsigned i = 0; i < nwarps; i++) warp_order[i] = i;
    unsigned lanes[32];
    while (remaining) {
      if (sched == Schedule::random) std::shuffle(warp_order.begin(), warp_order.end(), w.rng);
      bool ran = false;
      for (unsigned wi = 0; wi < nwarps; wi++) {
        const unsigned base = warp_order[wi] * 32, count = std::min(32u, n - base);
        for (unsigned l = 0; l < count; l++) lanes[l] = l;
        for (bool any = true; any;) {
          any = false;
          if (sched == Schedule::random) std::shuffle(lanes, lanes + count, w.rng);
          for (unsigned l = 0; l < count; l++) {
            Fiber &f = w.fibers[base + lanes[l]];
            if (f.state != State::runnable) continue;
            resume(w, f);
            any = ran = true;
            if (f.state == State::done) remaining--;
          }
        }
      }
      if (!ran && remaining) deadlock(w);
    }
  }
  free_block_memory(w);
  w.spec = nullptr;
}

/* ---------------------------------------------------------------- the worker pool */
struct Pool {
  std::mutex mu;
  std::condition_variable work_cv, done_cv;
  const LaunchSpec *job = nullptr;
  uint64_t generation = 0;
  std::atomic<uint64_t> next{0};
  uint64_t total = 0;
  int busy = 0;
  int nthreads = 0;
  int alive = 0;     /* threads still running; the last to leave a stopped pool frees it */
  bool stop = false; /* replaced by a pool of another size */
  pid_t pid = 0;
};

Pool *g_pool = nullptr;
std::mutex g_pool_mu;
std::mutex g_launch_mu; /* one grid at a time: launches are synchronous and in order */

void run_blocks(const LaunchSpec &spec, std::atomic<uint64_t> &next, uint64_t total) {
  Worker &w = this_worker();
  Worker *saved = t_worker;
  t_worker = &w;
  for (;;) {
    const uint64_t i = next.fetch_add(1);
    if (i >= total) break;
    const uint3 b{(unsigned)(i % spec.grid.x), (unsigned)((i / spec.grid.x) % spec.grid.y),
                  (unsigned)(i / ((uint64_t)spec.grid.x * spec.grid.y))};
    run_block(w, spec, b);
  }
  t_worker = saved;
}

void pool_thread(Pool *p) {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lk(p->mu);
  for (;;) {
    p->work_cv.wait(lk, [&] { return p->generation != seen || p->stop; });
    if (p->stop) {
      const bool last = --p->alive == 0;
      lk.unlock();
      if (last) delete p;
      return; /* this thread's Worker (its fiber stacks) goes with it */
    }
    seen = p->generation;
    const LaunchSpec *job = p->job;
    lk.unlock();
    run_blocks(*job, p->next, p->total);
    lk.lock();
    if (--p->busy == 0) p->done_cv.notify_all();
  }
}

Pool &pool(int nthreads) {
  std::lock_guard<std::mutex> lk(g_pool_mu);
  /* a forked child (a death test) has none of its parent's threads: start afresh, leaking the old pool */
  if (!g_pool || g_pool->pid != getpid() || g_pool->nthreads != nthreads) {
    if (g_pool && g_pool->pid == getpid()) {
      /* another worker count: the old pool's threads leave (no grid runs: launches hold g_launch_mu) */
      std::lock_guard<std::mutex> plk(g_pool->mu);
      g_pool->stop = true;
      g_pool->work_cv.notify_all();
    }
    g_pool = new Pool;
    g_pool->pid = getpid();
    g_pool->nthreads = nthreads;
    g_pool->alive = nthreads;
    for (int i = 0; i < nthreads; i++) std::thread(pool_thread, g_pool).detach();
  }
  return *g_pool;
}

/* ---------------------------------------------------------------- runtime API state */
thread_local cudaError_t t_last_error = cudaSuccess;
std::mutex g_mem_mu;
std::map<const void *, size_t> g_device_allocs, g_host_allocs;
std::map<const void *, int> g_func_max_dynamic;
size_t g_device_bytes = 0;
const size_t k_device_total = (size_t)80 << 30; /* reported by cudaMemGetInfo, and cudaMalloc's limit */
const size_t k_static_limit = 48 * 1024, k_dynamic_default = 48 * 1024, k_shared_optin = 227 * 1024;

cudaError_t set_error(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}

} // namespace

/* ---------------------------------------------------------------- public: controls */
void fatal(const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "cuda_interp: %s%s\n", msg, where().c_str());
  fflush(stderr);
  abort();
}

void set_schedule(Schedule s, uint64_t seed) {
  read_env_settings();
  g_seed = seed;
  g_schedule = (int)s;
}
Schedule schedule() {
  read_env_settings();
  return (Schedule)g_schedule.load();
}
void set_workers(int n) {
  read_env_settings();
  g_workers = n < 1 ? 1 : (n > 64 ? 64 : n);
}
int workers() {
  read_env_settings();
  return g_workers.load();
}
uint64_t launch_count() { return g_launches.load(); }

/* ---------------------------------------------------------------- public: launch */
bool launch_config_ok(const LaunchSpec &spec) {
  read_env_settings();
  const dim3 g = spec.grid, b = spec.block;
  const uint64_t threads = (uint64_t)b.x * b.y * b.z;
  if (b.x == 0 || b.y == 0 || b.z == 0 || b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024 || g.x == 0 ||
      g.y == 0 || g.z == 0 || g.x > 2147483647u || g.y > 65535 || g.z > 65535) {
    set_error(cudaErrorInvalidConfiguration);
    return false;
  }
  std::lock_guard<std::mutex> lk(g_mem_mu);
  size_t limit = k_dynamic_default;
  auto it = g_func_max_dynamic.find(spec.func);
  if (it != g_func_max_dynamic.end()) limit = (size_t)it->second;
  if (spec.shmem > limit) {
    set_error(cudaErrorInvalidValue);
    return false;
  }
  return true;
}

void run_grid(const LaunchSpec &spec) {
  if (!launch_config_ok(spec)) return;
  const dim3 g = spec.grid;
  if (t_worker && t_worker->current) fatal("a kernel launched a kernel (dynamic parallelism is not in the dialect)");
  std::lock_guard<std::mutex> launch_lock(g_launch_mu);
  g_launches++;
  const uint64_t total = (uint64_t)g.x * g.y * g.z;
  const int nw = g_workers.load();
  if (nw <= 1 || total == 1) {
    std::atomic<uint64_t> next{0};
    run_blocks(spec, next, total);
    return;
  }
  Pool &p = pool(nw - 1); /* the calling thread is the last worker */
  {
    std::lock_guard<std::mutex> lk(p.mu);
    p.job = &spec;
    p.next = 0;
    p.total = total;
    p.busy = p.nthreads;
    p.generation++;
  }
  p.work_cv.notify_all();
  run_blocks(spec, p.next, total);
  std::unique_lock<std::mutex> lk(p.mu);
  p.done_cv.wait(lk, [&] { return p.busy == 0; });
  p.job = nullptr;
}

/* ---------------------------------------------------------------- public: shared memory */
void *shared_static(const void *key, size_t bytes, size_t align) {
  Worker &w = in_kernel("DAMA_SHARED");
  for (const SharedVar &s : w.statics)
    if (s.key == key) return s.p;
  if (w.static_bytes + bytes > k_static_limit)
    fatal("static shared memory of the block exceeds %zu bytes (%zu + %zu)", k_static_limit, w.static_bytes, bytes);
  if (w.static_bytes + bytes + w.spec->shmem > k_shared_optin)
    fatal("shared memory of the block exceeds %zu bytes (static %zu, dynamic %zu)", k_shared_optin,
          w.static_bytes + bytes, w.spec->shmem);
  void *p = nullptr;
  if (posix_memalign(&p, align < 16 ? 16 : align, bytes ? bytes : 1) != 0) fatal("cannot allocate shared memory");
  memset(p, fill_byte, bytes);
  w.statics.push_back(SharedVar{key, p, bytes});
  w.static_bytes += bytes;
  return p;
}

void *shared_dynamic() {
  Worker &w = in_kernel("DAMA_DYNAMIC_SHARED");
  return w.dynamic;
}

/* ---------------------------------------------------------------- public: barriers */
int block_barrier(int kind, int pred) {
  Worker &w = in_kernel("__syncthreads");
  Fiber &f = *w.current;
  f.state = State::at_barrier;
  f.bar_kind = kind;
  w.bar_arrived++;
  w.bar_pred += pred != 0;
  if (w.bar_arrived == w.nthreads) {
    for (unsigned i = 0; i < w.nthreads; i++) {
      Fiber &g = w.fibers[i];
      if (g.bar_kind != kind)
        fatal("threads %u and %u meet at different barriers (__syncthreads%s and __syncthreads%s)", f.lin, i,
              kind == 0 ? "" : kind == 1 ? "_count" : kind == 2 ? "_and" : "_or",
              g.bar_kind == 0 ? "" : g.bar_kind == 1 ? "_count" : g.bar_kind == 2 ? "_and" : "_or");
      g.state = State::runnable;
    }
    const unsigned count = w.bar_pred;
    w.bar_result = kind == 1 ? (int)count : kind == 2 ? count == w.nthreads : kind == 3 ? count != 0 : 0;
    w.bar_arrived = w.bar_pred = 0;
  }
  yield(w);
  /* bar_result stays valid until the next barrier completes, which needs this thread to arrive first */
  return w.bar_result;
}

/* ---------------------------------------------------------------- public: warp collectives */
namespace {
unsigned lanes_of_warp(const Worker &w, unsigned warp) {
  const unsigned first = warp * 32, count = std::min(32u, w.nthreads - first);
  return count == 32 ? 0xffffffffu : ((1u << count) - 1);
}

/* The source lane of a shuffle, by PTX's shfl.sync rules (c = ((32 - width) << 8) | clamp). */
unsigned shfl_source(WarpOp op, unsigned lane, int b, int width) {
  const unsigned segmask = (unsigned)(32 - width) & 31u; /* high lane bits that name the segment */
  const unsigned bval = (unsigned)b & 31u;
  const unsigned cval = op == op_shfl_up ? 0u : 31u;
  const unsigned max_lane = (lane & segmask) | (cval & ~segmask);
  const unsigned min_lane = lane & segmask;
  int j = 0;
  bool ok = false;
  switch (op) {
    case op_shfl_up: j = (int)lane - (int)bval; ok = j >= (int)max_lane; break;
    case op_shfl_down: j = (int)(lane + bval); ok = j <= (int)max_lane; break;
    case op_shfl_xor: j = (int)(lane ^ bval); ok = j <= (int)max_lane; break;
    default: j = (int)(min_lane | (bval & ~segmask)); ok = j <= (int)max_lane; break;
  }
  return ok ? (unsigned)j : lane;
}
} // namespace

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int b, int width, const char *name) {
  Worker &w = in_kernel(name);
  Fiber &f = *w.current;
  const unsigned warp = f.lin / 32, lane = f.lin % 32, base = warp * 32;
  const unsigned lanes = lanes_of_warp(w, warp);
  if (!((mask >> lane) & 1u)) fatal("%s: the calling lane %u is not in the mask %#x", name, lane, mask);
  if (mask & ~lanes)
    fatal("%s: the mask %#x names lanes that do not exist (warp %u of a %u-thread block has lanes %#x)", name, mask,
          warp, w.nthreads, lanes);
  if (width < 1 || width > 32 || (width & (width - 1)))
    fatal("%s: width %d is not a power of two in [1, 32]", name, width);
  f.state = State::at_warp;
  f.op = op;
  f.op_mask = mask;
  f.op_value = value;
  f.op_b = b;
  f.op_width = width;
  f.op_name = name;
  /* lanes that name the same mask meet in one group; groups of different masks may be pending at once (their masks
   * may overlap: a lane waits in one group at a time) */
  WarpGroups &wg = w.warps[warp];
  unsigned gi = 0;
  while (gi < wg.n && wg.mask[gi] != mask) gi++;
  if (gi == wg.n) {
    wg.mask[gi] = mask;
    wg.arrived[gi] = 0;
    wg.n++;
  }
  wg.arrived[gi] |= 1u << lane;
  const bool complete = wg.arrived[gi] == mask;
  if (complete) {
    wg.n--;
    wg.mask[gi] = wg.mask[wg.n];
    wg.arrived[gi] = wg.arrived[wg.n];
  }
  if (complete) {
    uint64_t ballot = 0, results[32];
    for (unsigned l = 0; l < 32; l++) {
      if (!((mask >> l) & 1u)) continue;
      const Fiber &g = w.fibers[base + l];
      if (g.op != op) fatal("lanes %u and %u meet in different warp collectives (%s and %s)", lane, l, name, g.op_name);
      if (g.op == op_ballot) ballot |= (uint64_t)(g.op_value != 0) << l;
    }
    for (unsigned l = 0; l < 32; l++) {
      if (!((mask >> l) & 1u)) continue;
      const Fiber &g = w.fibers[base + l];
      uint64_t r = 0;
      switch (op) {
        case op_shfl_idx: case op_shfl_up: case op_shfl_down: case op_shfl_xor: {
          const unsigned src = shfl_source(op, l, g.op_b, g.op_width);
          if (!((mask >> src) & 1u))
            fatal("%s: lane %u reads lane %u, which is not in the mask %#x", name, l, src, mask);
          r = w.fibers[base + src].op_value;
          break;
        }
        case op_ballot: r = ballot; break;
        case op_syncwarp: r = 0; break;
        case op_match_any: {
          for (unsigned k = 0; k < 32; k++)
            if (((mask >> k) & 1u) && w.fibers[base + k].op_value == g.op_value) r |= 1ull << k;
          break;
        }
        default: {
          uint32_t acc = 0;
          bool first = true;
          for (unsigned k = 0; k < 32; k++) {
            if (!((mask >> k) & 1u)) continue;
            const uint32_t v = (uint32_t)w.fibers[base + k].op_value;
            if (first) { acc = v; first = false; continue; }
            if (op == op_reduce_add) acc += v;
            else if (op == op_reduce_min) acc = (int32_t)v < (int32_t)acc ? v : acc;
            else if (op == op_reduce_max) acc = (int32_t)v > (int32_t)acc ? v : acc;
            else if (op == op_reduce_umin) acc = v < acc ? v : acc;
            else acc = v > acc ? v : acc;
          }
          r = acc;
          break;
        }
      }
      results[l] = r;
    }
    for (unsigned l = 0; l < 32; l++) {
      if (!((mask >> l) & 1u)) continue;
      Fiber &g = w.fibers[base + l];
      g.op_result = results[l];
      g.state = State::runnable;
    }
  }
  yield(w);
  return f.op_result;
}

unsigned active_mask() {
  Worker &w = in_kernel("__activemask");
  const unsigned warp = w.current->lin / 32;
  unsigned m = 0;
  for (unsigned l = 0; l < 32 && warp * 32 + l < w.nthreads; l++)
    if (w.fibers[warp * 32 + l].state != State::done) m |= 1u << l;
  return m;
}

/* ---------------------------------------------------------------- fp16 */
unsigned short float_to_half_bits(float f) {
  const uint32_t x = f2u(f), sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7fff;                      /* NaN, as CUDA gives */
  if (a == 0x7f800000u) return (unsigned short)(sign | 0x7c00u);
  const int e = (int)(a >> 23) - 127 + 15;                 /* the half's biased exponent */
  uint32_t m = a & 0x7fffffu;
  if (e >= 31) return (unsigned short)(sign | 0x7c00u);    /* >= 65536 */
  if (e <= 0) {                                            /* subnormal half (or zero) */
    if (e < -10) return (unsigned short)sign;              /* below 2^-25: rounds to zero */
    m |= 0x800000u;
    const int shift = 14 - e;                              /* 14..24 */
    uint32_t hm = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1), tie = 1u << (shift - 1);
    if (rem > tie || (rem == tie && (hm & 1u))) hm++;
    return (unsigned short)(sign | hm);
  }
  uint32_t h = ((uint32_t)e << 10) | (m >> 13);
  const uint32_t rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;  /* a carry into the exponent is right, up to Inf */
  return (unsigned short)(sign | h);
}

float half_bits_to_float(unsigned short h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = ldexpf((float)m, -24);
    return sign ? -v : v;
  }
  if (e == 31) return u2f(sign | 0x7f800000u | (m << 13));
  return u2f(sign | ((e + 112) << 23) | (m << 13));
}

} // namespace cuda_interp

/* ---------------------------------------------------------------- runtime API */
using namespace cuda_interp;

struct CUgraph_st { std::vector<std::function<void()>> nodes; };
struct CUgraphExec_st { std::vector<std::function<void()>> nodes; };
struct CUstream_st {
  int flags;
  CUgraph_st *cap = nullptr;  /* the graph being captured, or none */
  int mode = 0;
  bool invalid = false;       /* the capture was invalidated by a call CUDA refuses during capture */
};
/* streams that are capturing now, and how many of them are not in Relaxed mode */
static std::mutex g_cap_mu;
static std::vector<CUstream_st *> g_capturing;

namespace cuda_interp {
bool capturing(cudaStream_t s) { return s && s->cap; }
void capture(cudaStream_t s, std::function<void()> node) {
  if (s->invalid) {
    set_error(cudaErrorStreamCaptureInvalidated);
    return;
  }
  s->cap->nodes.push_back(std::move(node));
}
} // namespace cuda_interp

/* A call CUDA refuses while a capture runs: invalidate `s` (or every strict capture when s is null) and fail. */
static cudaError_t refuse_in_capture(cudaStream_t s, cudaError_t e, bool only_strict) {
  std::lock_guard<std::mutex> lk(g_cap_mu);
  bool hit = false;
  for (CUstream_st *c : g_capturing) {
    if ((s && c != s) || (only_strict && c->mode == cudaStreamCaptureModeRelaxed)) continue;
    c->invalid = true;
    hit = true;
  }
  return hit ? set_error(e) : cudaSuccess;
}
static bool any_capture(bool only_strict) {
  std::lock_guard<std::mutex> lk(g_cap_mu);
  for (CUstream_st *c : g_capturing)
    if (!only_strict || c->mode != cudaStreamCaptureModeRelaxed) return true;
  return false;
}
struct CUevent_st {
  unsigned flags;
  bool recorded;
  std::chrono::steady_clock::time_point t;
};

const char *cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
    case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
  }
  return "cudaErrorUnknown";
}
const char *cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoKernelImageForDevice: return "no kernel image is available for execution on the device";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
  }
  return "unknown error";
}
cudaError_t cudaGetLastError() {
  cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return t_last_error; }
cudaError_t cudaGetDeviceCount(int *count) {
  if (!count) return set_error(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice); }
cudaError_t cudaGetDevice(int *device) {
  if (!device) return set_error(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
  if (!value) return set_error(cudaErrorInvalidValue);
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = (int)k_static_limit; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMultiProcessorCount: *value = 8; break;
    case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = (int)k_shared_optin; break;
    default: return set_error(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() {
  if (any_capture(false)) return refuse_in_capture(nullptr, cudaErrorStreamCaptureUnsupported, false);
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *version) {
  if (!version) return set_error(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *prop, int device) {
  if (!prop) return set_error(cudaErrorInvalidValue);
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  memset(prop, 0, sizeof *prop);
  snprintf(prop->name, sizeof prop->name, "dama CUDA interpreter (CPU; not a GPU)");
  prop->totalGlobalMem = k_device_total;
  prop->sharedMemPerBlock = k_static_limit;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 8;
  return cudaSuccess;
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes *attr, const void *func) {
  if (!attr || !func) return set_error(cudaErrorInvalidValue);
  attr->binaryVersion = 90;
  attr->ptxVersion = 90;
  return cudaSuccess;
}

static cudaError_t alloc_into(std::map<const void *, size_t> &table, void **p, size_t bytes) {
  if (!p) return set_error(cudaErrorInvalidValue);
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  if (&table == &g_device_allocs) {
    /* the device's memory is what cudaMemGetInfo reports: beyond it, out of memory (never a host allocation that
     * large, which AddressSanitizer would abort on instead of failing) */
    std::lock_guard<std::mutex> lk(g_mem_mu);
    if (bytes > k_device_total - std::min(g_device_bytes, k_device_total)) return set_error(cudaErrorMemoryAllocation);
  }
  void *q = nullptr;
  if (posix_memalign(&q, 256, bytes) != 0) return set_error(cudaErrorMemoryAllocation);
  memset(q, fill_byte, bytes);
  std::lock_guard<std::mutex> lk(g_mem_mu);
  table[q] = bytes;
  if (&table == &g_device_allocs) g_device_bytes += bytes;
  *p = q;
  return cudaSuccess;
}
static cudaError_t free_from(std::map<const void *, size_t> &table, void *p) {
  if (!p) return cudaSuccess;
  std::lock_guard<std::mutex> lk(g_mem_mu);
  auto it = table.find(p);
  if (it == table.end()) return set_error(cudaErrorInvalidValue);
  if (&table == &g_device_allocs) g_device_bytes -= it->second;
  table.erase(it);
  free(p);
  return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t bytes) {
  if (any_capture(true)) return refuse_in_capture(nullptr, cudaErrorStreamCaptureUnsupported, true);
  return alloc_into(g_device_allocs, p, bytes);
}
cudaError_t cudaFree(void *p) {
  if (any_capture(false)) return refuse_in_capture(nullptr, cudaErrorStreamCaptureUnsupported, false);
  return free_from(g_device_allocs, p);
}
cudaError_t cudaMallocHost(void **p, size_t bytes) { return alloc_into(g_host_allocs, p, bytes); }
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned int) { return alloc_into(g_host_allocs, p, bytes); }
cudaError_t cudaFreeHost(void *p) { return free_from(g_host_allocs, p); }
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
  if (!free_bytes || !total_bytes) return set_error(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lk(g_mem_mu);
  *total_bytes = k_device_total;
  *free_bytes = k_device_total - std::min(g_device_bytes, k_device_total);
  return cudaSuccess;
}
static cudaError_t memcpy_now(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
  if ((int)kind < 0 || (int)kind > 4) return set_error(cudaErrorInvalidMemcpyDirection);
  if (bytes == 0) return cudaSuccess;
  if (!dst || !src) return set_error(cudaErrorInvalidValue);
  memcpy(dst, src, bytes); /* overlapping ranges are undefined in CUDA too; ASan reports them */
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
  if (any_capture(true)) return refuse_in_capture(nullptr, cudaErrorStreamCaptureImplicit, true);
  return memcpy_now(dst, src, bytes, kind);
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (capturing(s)) {
    if ((int)kind < 0 || (int)kind > 4) return set_error(cudaErrorInvalidMemcpyDirection);
    capture(s, [=]() { (void)memcpy_now(dst, src, bytes, kind); });
    return cudaPeekAtLastError();
  }
  return memcpy_now(dst, src, bytes, kind);
}
static cudaError_t memset_now(void *p, int value, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  if (!p) return set_error(cudaErrorInvalidValue);
  memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset(void *p, int value, size_t bytes) {
  if (any_capture(true)) return refuse_in_capture(nullptr, cudaErrorStreamCaptureImplicit, true);
  return memset_now(p, value, bytes);
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s) {
  if (capturing(s)) {
    capture(s, [=]() { (void)memset_now(p, value, bytes); });
    return cudaPeekAtLastError();
  }
  return memset_now(p, value, bytes);
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned int flags) {
  if (!s) return set_error(cudaErrorInvalidValue);
  *s = new CUstream_st{(int)flags};
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  if (!s) return set_error(cudaErrorInvalidResourceHandle);
  if (s->cap) return refuse_in_capture(s, cudaErrorStreamCaptureUnsupported, false);
  delete s;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (s && s->cap) return refuse_in_capture(s, cudaErrorStreamCaptureUnsupported, false);
  if (!s && any_capture(true)) return refuse_in_capture(nullptr, cudaErrorStreamCaptureImplicit, true);
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  if (s && s->cap) return refuse_in_capture(s, cudaErrorStreamCaptureUnsupported, false);
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  if (!s) return set_error(cudaErrorStreamCaptureUnsupported); /* the legacy stream cannot capture */
  if ((int)mode < 0 || (int)mode > 2) return set_error(cudaErrorInvalidValue);
  if (s->cap) return set_error(cudaErrorIllegalState);
  s->cap = new CUgraph_st();
  s->mode = (int)mode;
  s->invalid = false;
  std::lock_guard<std::mutex> lk(g_cap_mu);
  g_capturing.push_back(s);
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) {
  if (!s || !graph) return set_error(cudaErrorInvalidValue);
  if (!s->cap) return set_error(cudaErrorIllegalState);
  {
    std::lock_guard<std::mutex> lk(g_cap_mu);
    g_capturing.erase(std::find(g_capturing.begin(), g_capturing.end(), s));
  }
  CUgraph_st *g = s->cap;
  s->cap = nullptr;
  if (s->invalid) {
    s->invalid = false;
    delete g;
    *graph = nullptr;
    return set_error(cudaErrorStreamCaptureInvalidated);
  }
  *graph = g;
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *status) {
  if (!status) return set_error(cudaErrorInvalidValue);
  *status = !s || !s->cap ? cudaStreamCaptureStatusNone
                          : s->invalid ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long) {
  if (!exec || !graph) return set_error(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->nodes};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
  if (!exec) return set_error(cudaErrorInvalidResourceHandle);
  if (capturing(s)) {
    capture(s, [exec]() { for (auto &n : exec->nodes) n(); });
    return cudaPeekAtLastError();
  }
  for (auto &n : exec->nodes) n();
  return cudaPeekAtLastError();
}
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, void **nodes, size_t *count) {
  if (!graph || !count) return set_error(cudaErrorInvalidValue);
  if (nodes) return set_error(cudaErrorInvalidValue); /* node handles are not modelled: count only */
  *count = graph->nodes.size();
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t e, unsigned int) {
  return e ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle);
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned int flags) {
  if (!e) return set_error(cudaErrorInvalidValue);
  *e = new CUevent_st{flags, false, std::chrono::steady_clock::now()};
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  if (!e) return set_error(cudaErrorInvalidResourceHandle);
  delete e;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
  if (!e) return set_error(cudaErrorInvalidResourceHandle);
  if (capturing(s)) {
    capture(s, [e]() { e->recorded = true; e->t = std::chrono::steady_clock::now(); });
    return cudaPeekAtLastError();
  }
  e->recorded = true;
  e->t = std::chrono::steady_clock::now(); /* everything issued before has completed */
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) { return e ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventQuery(cudaEvent_t e) { return e ? cudaSuccess : set_error(cudaErrorInvalidResourceHandle); }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end) {
  if (!ms) return set_error(cudaErrorInvalidValue);
  if (!start || !end) return set_error(cudaErrorInvalidResourceHandle);
  if (!start->recorded || !end->recorded || (start->flags & cudaEventDisableTiming) ||
      (end->flags & cudaEventDisableTiming))
    return set_error(cudaErrorInvalidResourceHandle);
  *ms = std::chrono::duration<float, std::milli>(end->t - start->t).count();
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
  if (!func || attr != cudaFuncAttributeMaxDynamicSharedMemorySize) return set_error(cudaErrorInvalidValue);
  if (value < 0 || (size_t)value > k_shared_optin) return set_error(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lk(g_mem_mu);
  g_func_max_dynamic[func] = value;
  return cudaSuccess;
}
