/* Protected calls with tracebacks, and Ctrl-C for the `dama` program.
 *
 * Ctrl-C has to stop two kinds of work: Lua code and long C operations. The SIGINT handler does
 * both: it raises the runtime's interrupt flag (C loops poll dama_interrupt_pending() and return
 * DAMA_ERR_INTERRUPTED), and it sets a Lua hook that fires on the next call, return or instruction
 * and raises "interrupted". LuaJIT does not run hooks inside compiled traces, so the REPL runs its
 * chunks with the JIT off (see repl.c); a script's compiled hot loop only notices at its next
 * trace exit, which is why a second, unanswered Ctrl-C kills a script. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>

#include "dama.h"
#include "host.h"

static lua_State *volatile host_L;
static volatile sig_atomic_t host_mode = DAMA_HOST_IDLE;
static volatile sig_atomic_t pending;          /* Ctrl-C presses Lua has not seen yet */
static volatile sig_atomic_t prompt_interrupt; /* Ctrl-C at the REPL prompt */
static volatile sig_atomic_t last_press_valid;
static int stderr_is_tty;                      /* then end the echoed ^C's line */
static struct timespec last_press;             /* for "two presses within a second" in scripts */

static void signal_write(const char *s, size_t n)
{
  ssize_t r = write(STDERR_FILENO, s, n);
  (void)r;
}

/* The default action: the process dies of SIGINT, so the shell sees it (exit status 130). */
static void die_of_sigint(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  raise(SIGINT);
}

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  if (!pending) return; /* the call that set it has already ended */
  pending = 0;
  dama_interrupt_clear(); /* consumed: error handlers (say, a checkpoint) may run C code again */
  luaL_where(L, 0);       /* a hook adds no frame: level 0 is the interrupted function */
  lua_pushfstring(L, "%sinterrupted", lua_tostring(L, -1));
  lua_error(L);
}

static void on_sigint(int sig)
{
  int saved_errno = errno;
  struct timespec now;
  (void)sig;
  clock_gettime(CLOCK_MONOTONIC, &now);
  switch (host_mode) {
    case DAMA_HOST_PROMPT:
      prompt_interrupt = 1;
      break;
    case DAMA_HOST_SCRIPT:
    case DAMA_HOST_REPL: {
      int quick = last_press_valid && (now.tv_sec - last_press.tv_sec) * 1000000000L +
                                              (now.tv_nsec - last_press.tv_nsec) < 1000000000L;
      if (pending) {
        pending++;
        if (host_mode == DAMA_HOST_SCRIPT || pending >= 3) {
          static const char msg[] = "\ndama: killed by Ctrl-C\n";
          signal_write(msg, sizeof msg - 1);
          die_of_sigint();
        } else {
          static const char msg[] = "\ndama: busy where Ctrl-C cannot reach it yet; "
                                    "press Ctrl-C again to kill the process\n";
          signal_write(msg, sizeof msg - 1);
        }
      } else if (host_mode == DAMA_HOST_SCRIPT && quick) {
        static const char msg[] = "\ndama: killed by Ctrl-C\n";
        signal_write(msg, sizeof msg - 1);
        die_of_sigint();
      } else {
        if (stderr_is_tty) signal_write("\n", 1);
        pending = 1;
        dama_interrupt_request();
        /* As luajit.c does: lua_sethook is safe enough from a signal handler (it sets a few fields). */
        lua_sethook(host_L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
      }
      break;
    }
    default:
      die_of_sigint();
  }
  last_press = now;
  last_press_valid = 1;
  errno = saved_errno;
}

void dama_host_signals_init(lua_State *L)
{
  struct sigaction sa, old;
  host_L = L;
  stderr_is_tty = isatty(STDERR_FILENO);
  /* Started with SIGINT ignored (a background job of a non-interactive shell): keep it so. */
  if (sigaction(SIGINT, NULL, &old) == 0 && old.sa_handler == SIG_IGN) return;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART: a read at the prompt returns EINTR so the line can be dropped */
  sigaction(SIGINT, &sa, NULL);
}

void dama_host_set_mode(dama_host_mode mode) { host_mode = mode; }

int dama_host_take_prompt_interrupt(void)
{
  int r = prompt_interrupt != 0;
  prompt_interrupt = 0;
  return r;
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
  if (lua_gethook(L) == interrupt_hook) lua_sethook(L, NULL, 0, 0); /* leave a debug.sethook alone */
  pending = 0;
  dama_interrupt_clear();
  lua_remove(L, base);
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

const char *dama_host_version(void) { return "dama " DAMA_VERSION " (" LUAJIT_VERSION ")"; }
