/* host.h — the pieces of the `dama` program shared by main.c (command line, scripts),
 * host_call.c (protected calls, tracebacks, Ctrl-C) and repl.c (the interactive loop). */
#ifndef DAMA_HOST_H
#define DAMA_HOST_H

#include <lua.h>

/* What the program is doing when SIGINT arrives; decides what Ctrl-C does. */
typedef enum dama_host_mode {
  DAMA_HOST_IDLE = 0,   /* not running Lua (start-up, shutdown): Ctrl-C kills the process */
  DAMA_HOST_PROMPT,     /* REPL waiting for input: Ctrl-C discards the line being typed */
  DAMA_HOST_SCRIPT,     /* running a script or -e chunk: Ctrl-C raises "interrupted" in Lua; a second
                           one before Lua has seen the first kills the process */
  DAMA_HOST_REPL        /* running a REPL chunk: like SCRIPT, but it takes three unanswered presses to kill */
} dama_host_mode;

/* Install the SIGINT, SIGTERM and SIGUSR1 handlers (once, at start-up). */
void dama_host_signals_init(lua_State *L);
/* Make `require 'dama.host'` give host.critical / take_interrupt / terminating (host_call.c). */
void dama_host_open(lua_State *L);
/* Make `require 'dama.json_core'` give the cJSON-backed encode/decode behind dama.json (json.c). */
void dama_host_json_open(lua_State *L);
/* The SIGTERM or SIGUSR1 that asked the process to end while Lua ran, or 0. */
int dama_host_termination_signal(void);
void dama_host_set_mode(dama_host_mode mode);
/* Nonzero (and reset) if Ctrl-C was pressed while in DAMA_HOST_PROMPT since the last call. */
int dama_host_take_prompt_interrupt(void);

/* lua_pcall of the function below `narg` arguments on the stack, under a message handler that adds a
 * traceback, with Ctrl-C turned into a Lua error "interrupted" while it runs (mode SCRIPT or REPL).
 * On failure the stack holds the message (with traceback) in place of the function and arguments. */
int dama_host_docall(lua_State *L, int narg, int nresults, dama_host_mode mode);
/* Print the error message on top of the stack to stderr (prefixed by "dama: " when `prefixed`), pop it. */
void dama_host_report(lua_State *L, int prefixed);

/* Version line, e.g. "dama 0.1.0 (LuaJIT 2.1.0-beta3)". */
const char *dama_host_version(void);
/* One line on the CUDA backend: built in or not, the GPU code it carries, the devices found or why none (asks the
 * driver, once). */
const char *dama_host_devices(void);

/* The read-eval-print loop on stdin; returns the exit status (0, or 1 if a chunk failed while stdin
 * was not a terminal). */
int dama_repl_run(lua_State *L);

#endif
