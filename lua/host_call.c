/* Protected calls with tracebacks, and Ctrl-C, SIGTERM and SIGUSR1 for the `dama` program.
 *
 * Ctrl-C has to stop two kinds of work: Lua code and long C operations. The SIGINT handler does
 * both: it raises the runtime's interrupt flag (C loops poll dama_interrupt_pending() and return
 * DAMA_ERR_INTERRUPTED), and it sets a Lua hook that fires on the next call, return or instruction
 * and raises "interrupted". LuaJIT does not run hooks inside compiled traces, so the REPL runs its
 * chunks with the JIT off (see repl.c); a script's compiled hot loop only notices at its next
 * trace exit, which is why a second, unanswered Ctrl-C kills a script.
 *
 * SIGTERM and SIGUSR1 (what batch schedulers send before SIGKILL) interrupt running Lua the same way,
 * with the error "interrupted (SIGTERM)", so a training loop saves its checkpoint as on Ctrl-C; the
 * process then ends: a REPL chunk's end kills it with the signal, a script exits with 128 + signal
 * (main.c). At the prompt or outside Lua they kill at once, as by default.
 *
 * The Lua module `dama.host` (dama_host_open) lets library code hold interrupts off a section that
 * must not stop half-way (dama.train's optimizer step and bookkeeping): host.critical(fn, ...) runs fn
 * with signals recorded but not acted on, then raises "interrupted" if one came. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>

#include "dama.h"
#include "host.h"

#include <cairo.h>

static lua_State *volatile host_L;
static volatile sig_atomic_t host_mode = DAMA_HOST_IDLE;
static volatile sig_atomic_t pending;          /* interrupting signals Lua has not seen yet */
static volatile sig_atomic_t pending_sig;      /* the signal of the first of them */
static volatile sig_atomic_t last_sig;         /* the signal of the last interrupt raised in Lua */
static volatile sig_atomic_t terminate_sig;    /* SIGTERM/SIGUSR1 met while running Lua: end after it */
static volatile sig_atomic_t defer_depth;      /* > 0 inside host.critical: hold interrupts */
static volatile sig_atomic_t prompt_interrupt; /* Ctrl-C at the REPL prompt */
static volatile sig_atomic_t last_press_valid;
static int stderr_is_tty;                      /* then end the echoed ^C's line */
static struct timespec last_press;             /* for "two presses within a second" in scripts */

static void signal_write(const char *s, size_t n)
{
  ssize_t r = write(STDERR_FILENO, s, n);
  (void)r;
}

static const char *signal_name(int sig)
{
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "signal";
  }
}

/* The default action: the process dies of the signal, so the shell sees it (130 for SIGINT). */
static void die_of(int sig)
{
  struct sigaction sa;
  sigset_t set;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
  sigemptyset(&set);
  sigaddset(&set, sig);
  sigprocmask(SIG_UNBLOCK, &set, NULL); /* inside the handler the signal is blocked */
  raise(sig);
}

static void killed_message(int sig)
{
  /* async-signal-safe: fixed strings only */
  static const char ci[] = "\ndama: killed by Ctrl-C\n", ct[] = "\ndama: killed by SIGTERM\n",
                    cu[] = "\ndama: killed by SIGUSR1\n";
  if (sig == SIGTERM) signal_write(ct, sizeof ct - 1);
  else if (sig == SIGUSR1) signal_write(cu, sizeof cu - 1);
  else signal_write(ci, sizeof ci - 1);
}

/* Push "<where>interrupted" (plus " (SIGTERM)" for a signal other than SIGINT) and clear the request. */
static void push_interrupt_message(lua_State *L, int level)
{
  int sig = pending_sig ? pending_sig : SIGINT;
  pending = 0;
  pending_sig = 0;
  last_sig = sig;
  dama_interrupt_clear(); /* consumed: error handlers (say, a checkpoint) may run C code again */
  luaL_where(L, level);
  if (sig == SIGINT) lua_pushfstring(L, "%sinterrupted", lua_tostring(L, -1));
  else lua_pushfstring(L, "%sinterrupted (%s)", lua_tostring(L, -1), signal_name(sig));
  lua_remove(L, -2);
}

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (!pending || defer_depth > 0) return; /* the call that set it has ended, or a critical section holds it */
  push_interrupt_message(L, 0);            /* a hook adds no frame: level 0 is the interrupted function */
  lua_error(L);
}

/* Make Lua notice an interrupt: the runtime's flag for C loops, a hook for Lua code. */
static void arm_interrupt(void)
{
  dama_interrupt_request();
  /* As luajit.c does: lua_sethook is safe enough from a signal handler (it sets a few fields). */
  lua_sethook(host_L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

static void on_signal(int sig)
{
  int saved_errno = errno;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  switch (host_mode) {
    case DAMA_HOST_PROMPT:
      if (sig == SIGINT) prompt_interrupt = 1;
      else die_of(sig);
      break;
    case DAMA_HOST_SCRIPT:
    case DAMA_HOST_REPL: {
      int quick = sig == SIGINT && last_press_valid &&
                  (now.tv_sec - last_press.tv_sec) * 1000000000L + (now.tv_nsec - last_press.tv_nsec) < 1000000000L;
      if (sig != SIGINT) terminate_sig = sig;
      if (pending) {
        pending++;
        if (host_mode == DAMA_HOST_SCRIPT || pending >= 3) {
          killed_message(sig);
          die_of(sig);
        } else {
          static const char msg[] = "\ndama: busy where Ctrl-C cannot reach it yet; "
                                    "press Ctrl-C again to kill the process\n";
          signal_write(msg, sizeof msg - 1);
        }
      } else if (host_mode == DAMA_HOST_SCRIPT && quick) {
        killed_message(sig);
        die_of(sig);
      } else {
        if (stderr_is_tty && sig == SIGINT) signal_write("\n", 1);
        pending_sig = sig;
        pending = 1;
        if (defer_depth == 0) arm_interrupt(); /* else host.critical raises it when it ends */
      }
      break;
    }
    default:
      die_of(sig);
  }
  if (sig == SIGINT) {
    last_press = now;
    last_press_valid = 1;
  }
  errno = saved_errno;
}

void dama_host_signals_init(lua_State *L)
{
  static const int sigs[] = {SIGINT, SIGTERM, SIGUSR1};
  host_L = L;
  stderr_is_tty = isatty(STDERR_FILENO);
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa, old;
    /* Started with the signal ignored (say, SIGINT in a background job of a non-interactive shell):
     * keep it so. */
    if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t j = 0; j < sizeof sigs / sizeof sigs[0]; j++) sigaddset(&sa.sa_mask, sigs[j]);
    sa.sa_flags = 0; /* no SA_RESTART: a read at the prompt returns EINTR so the line can be dropped */
    sigaction(sigs[i], &sa, NULL);
  }
}

void dama_host_set_mode(dama_host_mode mode) { host_mode = mode; }

int dama_host_take_prompt_interrupt(void)
{
  int r = prompt_interrupt != 0;
  prompt_interrupt = 0;
  return r;
}

int dama_host_termination_signal(void) { return terminate_sig; }

/* ---- the Lua module dama.host ---- */

static void clear_our_hook(lua_State *L)
{
  if (lua_gethook(L) == interrupt_hook) lua_sethook(L, NULL, 0, 0); /* leave a debug.sethook alone */
}

/* host.critical(fn, ...) -> fn's results. Signals that arrive while fn runs are held; when it returns,
 * one that came raises "interrupted" (as it would have inside fn). An interrupt already on its way
 * when critical is called is raised before fn starts. Errors of fn pass through unchanged. */
static int host_critical(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int nargs = lua_gettop(L) - 1;
  defer_depth++;
  if (defer_depth == 1 && pending) { /* armed before we held it: do not start fn */
    defer_depth--;
    clear_our_hook(L);
    push_interrupt_message(L, 1);
    return lua_error(L);
  }
  int status = lua_pcall(L, nargs, LUA_MULTRET, 0);
  defer_depth--;
  if (status != 0) return lua_error(L);
  if (defer_depth == 0 && pending) {
    clear_our_hook(L);
    push_interrupt_message(L, 1);
    return lua_error(L);
  }
  return lua_gettop(L);
}

/* host.take_interrupt() -> the name of the signal behind the last interrupt ('SIGINT', 'SIGTERM',
 * 'SIGUSR1') or nil, and clears any interrupt still on its way (the runtime's flag, the hook): for a
 * handler that has caught "interrupted" and must now run C code (a checkpoint). */
static int host_take_interrupt(lua_State *L)
{
  int sig = pending ? pending_sig : last_sig;
  if (pending && defer_depth == 0) {
    pending = 0;
    pending_sig = 0;
  }
  clear_our_hook(L);
  if (defer_depth == 0) dama_interrupt_clear();
  last_sig = 0;
  if (sig) lua_pushstring(L, signal_name(sig));
  else lua_pushnil(L);
  return 1;
}

/* host.terminating() -> 'SIGTERM' / 'SIGUSR1' when the process has been asked to end, else nil. */
static int host_terminating(lua_State *L)
{
  if (terminate_sig) lua_pushstring(L, signal_name(terminate_sig));
  else lua_pushnil(L);
  return 1;
}

static int host_luaopen(lua_State *L)
{
  static const luaL_Reg fns[] = {{"critical", host_critical},
                                 {"take_interrupt", host_take_interrupt},
                                 {"terminating", host_terminating},
                                 {NULL, NULL}};
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  return 1;
}

void dama_host_open(lua_State *L)
{
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, host_luaopen);
  lua_setfield(L, -2, "dama.host");
  lua_pop(L, 2);
}

/* Drop trailing traceback lines that only show the host's own C frames. */
static void push_trimmed(lua_State *L, const char *tb)
{
  size_t n = strlen(tb);
  for (;;) {
    const char *nl = NULL;
    for (size_t i = n; i > 0; i--)
      if (tb[i - 1] == '\n') { nl = tb + i - 1; break; }
    if (!nl) break;
    size_t len = (size_t)(tb + n - nl);
    if ((len >= 6 && strncmp(nl, "\n\t[C]:", 6) == 0 &&
         (strncmp(nl + 6, " ?", len - 6) == 0 || strncmp(nl + 6, " at 0x", 6) == 0)))
      n = (size_t)(nl - tb);
    else
      break;
  }
  lua_pushlstring(L, tb, n);
}

/* A frame of the dama Lua library (the source tree's lua/dama/ or an installed .../5.1/dama/). */
static int is_library_line(const char *line, size_t len)
{
  for (size_t i = 0; i + 9 <= len; i++)
    if (strncmp(line + i, "lua/dama/", 9) == 0 || (i + 10 <= len && strncmp(line + i, "/5.1/dama/", 10) == 0))
      return 1;
  return 0;
}

/* An error whose message points at a user's file (a recipe, the REPL, -e): a mistake of theirs, raised
 * by the library with an error level that names their line. */
static int is_user_error(const char *msg)
{
  const char *nl = strchr(msg, '\n');
  size_t len = nl ? (size_t)(nl - msg) : strlen(msg);
  const char *colon = memchr(msg, ':', len);
  if (!colon || colon == msg) return 0;
  if (!(colon[1] >= '0' && colon[1] <= '9')) return 0;   /* no "file:line:" position */
  return !is_library_line(msg, (size_t)(colon - msg));
}

/* For user mistakes, keep the message and the user's own frames: library frames and the [C] error()
 * frame say nothing to the user (DAMA_FULL_TRACEBACK=1 keeps them). Returns a string on L's stack. */
static const char *drop_library_frames(lua_State *L, const char *tb)
{
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  const char *p = tb;
  int in_tb = 0;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);
    int drop = 0;
    if (in_tb) {
      if (is_library_line(p, len)) drop = 1;
      else if (len >= 25 && strncmp(p, "\t[C]: in function 'error'", 25) == 0) drop = 1;
    }
    if (!in_tb && strncmp(p, "stack traceback:", 16) == 0) in_tb = 1;
    if (!drop) luaL_addlstring(&b, p, len);
    p += len;
  }
  luaL_pushresult(&b);
  return lua_tostring(L, -1);
}

static int message_handler(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  push_trimmed(L, lua_tostring(L, -1));
  if (is_user_error(msg) && getenv("DAMA_FULL_TRACEBACK") == NULL) {
    drop_library_frames(L, lua_tostring(L, -1));
  }
  return 1;
}

int dama_host_docall(lua_State *L, int narg, int nresults, dama_host_mode mode)
{
  int base = lua_gettop(L) - narg;
  dama_host_mode previous = (dama_host_mode)host_mode;
  lua_pushcfunction(L, message_handler);
  lua_insert(L, base);
  pending = 0;
  dama_interrupt_clear();
  host_mode = mode;
  int status = lua_pcall(L, narg, nresults, base);
  host_mode = previous;
  clear_our_hook(L);
  pending = 0;
  pending_sig = 0;
  dama_interrupt_clear();
  lua_remove(L, base);
  if (mode == DAMA_HOST_REPL && terminate_sig) {
    /* SIGTERM/SIGUSR1 while a REPL chunk ran: the chunk has had its chance to save; now end */
    int sig = terminate_sig;
    fflush(stdout);
    if (status != 0 && lua_tostring(L, -1)) fprintf(stderr, "%s\n", lua_tostring(L, -1));
    fprintf(stderr, "dama: terminated by %s\n", signal_name(sig));
    fflush(stderr);
    die_of(sig);
  }
  return status;
}

void dama_host_report(lua_State *L, int prefixed)
{
  const char *msg = lua_tostring(L, -1);
  if (msg == NULL) msg = "(error object is not a string)";
  fflush(stdout);
  fprintf(stderr, "%s%s\n", prefixed ? "dama: " : "", msg);
  fflush(stderr);
  lua_pop(L, 1);
}

/* The Cairo version is the library's at run time (dama.plot draws through it by FFI, so this reference also keeps
 * the linker from dropping libcairo). */
const char *dama_host_version(void)
{
  static char line[128];
  snprintf(line, sizeof line, "dama " DAMA_VERSION " (" LUAJIT_VERSION ", cairo %s)", cairo_version_string());
  return line;
}

const char *dama_host_devices(void)
{
  const char *cuda = dama_backend_info(DAMA_CUDA);
  return cuda ? cuda : "CUDA: not built in (no CUDA toolkit at build time, or DAMA_CUDA=OFF)";
}
