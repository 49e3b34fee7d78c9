/* The `dama` REPL: read a chunk (continuing while it is incomplete), run it with the JIT off so that
 * Ctrl-C can stop its loops, print its results through dama.repl (lua/dama/repl.lua).
 *
 * Line editing, history and Tab completion come from libedit when stdin is a terminal; otherwise
 * lines are read plainly, no prompt is shown, and results are still printed. */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>

#include <lauxlib.h>
#include <lua.h>

#include "dama.h"
#include "host.h"

#define PROMPT1 "dama> "
#define PROMPT2 "  ..> "
#define HISTORY_SIZE 2000

static lua_State *repl_L;
static int repl_module_ref = LUA_NOREF; /* the dama.repl table */
static int jit_off_ref = LUA_NOREF;     /* jit.off, kept in case a chunk reassigns `jit` */
static int is_tty;
static char history_path[4096];

typedef enum { CHUNK_READY, CHUNK_ERROR, CHUNK_CANCEL, CHUNK_EOF } chunk_kind;

/* ---- reading lines ---- */

static char *read_plain_line(int *cancelled)
{
  char *line = NULL;
  size_t cap = 0;
  for (;;) {
    errno = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n >= 0) {
      if (n > 0 && line[n - 1] == '\n') line[n - 1] = '\0';
      return line;
    }
    if (errno == EINTR) {
      clearerr(stdin);
      if (dama_host_take_prompt_interrupt()) {
        *cancelled = 1;
        break;
      }
      continue;
    }
    break;
  }
  free(line);
  return NULL;
}

/* A line without its newline (malloc'ed), or NULL at end of input or on Ctrl-C (*cancelled = 1). */
static char *read_line(int first, int *cancelled)
{
  char *line;
  *cancelled = 0;
  dama_host_take_prompt_interrupt(); /* a press that landed between two chunks does not count */
  if (is_tty) {
    errno = 0;
    line = readline(first ? PROMPT1 : PROMPT2);
    int err = errno;
    if (dama_host_take_prompt_interrupt()) *cancelled = 1;
    if (line == NULL) {
      /* NULL is Ctrl-D or Ctrl-C. libedit passes Ctrl-C on by re-sending it to the process group, so our
       * handler may run just after readline returned: wait 50 ms and drain it here, so the press neither
       * reads as end of input (quitting the REPL) nor lands in the next readline (cancelling the line the
       * user types next). */
      struct timespec ts = {0, 50 * 1000 * 1000};
      nanosleep(&ts, NULL);
      if (dama_host_take_prompt_interrupt() || err == EINTR) *cancelled = 1;
    }
  } else {
    line = read_plain_line(cancelled);
  }
  if (*cancelled) {
    free(line);
    return NULL;
  }
  return line;
}

/* ---- compiling ---- */

/* A syntax error that only says the chunk ended too early: read another line. */
static int is_incomplete(lua_State *L, int status)
{
  if (status != LUA_ERRSYNTAX) return 0;
  size_t len;
  const char *msg = lua_tolstring(L, -1, &len);
  static const char eof_mark[] = "'<eof>'";
  size_t m = sizeof eof_mark - 1;
  return msg && len >= m && memcmp(msg + len - m, eof_mark, m) == 0;
}

static int is_blank(const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return 0;
  return 1;
}

typedef struct text {
  char *s;
  size_t len, cap;
} text;

static int text_append(text *t, const char *s, size_t n)
{
  if (t->len + n + 1 > t->cap) {
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + n + 1) cap *= 2;
    char *p = realloc(t->s, cap);
    if (!p) return -1;
    t->s = p;
    t->cap = cap;
  }
  memcpy(t->s + t->len, s, n);
  t->len += n;
  t->s[t->len] = '\0';
  return 0;
}

/* If BUF is `<statements>;<expression>`, push the chunk that runs the statements and returns the
 * expression's values, and return 1; else push nothing and return 0. Tries each ';' from the right. */
static int try_trailing_expression(lua_State *L, const text *buf)
{
  for (size_t i = buf->len; i-- > 0;) {
    if (buf->s[i] != ';' || is_blank(buf->s + i + 1, buf->len - i - 1)) continue;
    lua_pushlstring(L, buf->s, i + 1);
    lua_pushliteral(L, " local function dama_repl_values_(...) return ... end return dama_repl_values_(");
    lua_pushlstring(L, buf->s + i + 1, buf->len - i - 1);
    lua_pushliteral(L, "\n)");
    lua_concat(L, 4);
    size_t n;
    const char *code = lua_tolstring(L, -1, &n);
    if (luaL_loadbuffer(L, code, n, "=stdin") == 0) {
      lua_remove(L, -2);
      return 1;
    }
    lua_pop(L, 2);
  }
  return 0;
}

/* Read lines until they form a chunk. READY: the compiled function is on the stack (an expression
 * compiled to return its values). ERROR: the syntax error is on the stack. */
static chunk_kind read_chunk(lua_State *L)
{
  text buf = {NULL, 0, 0};
  int first = 1;
  chunk_kind kind;
  for (;;) {
    int cancelled;
    char *line = read_line(first, &cancelled);
    if (line == NULL) {
      if (cancelled) {
        if (is_tty) { fputs("\n", stdout); fflush(stdout); }
        kind = CHUNK_CANCEL;
      } else if (buf.len == 0) {
        kind = CHUNK_EOF;
      } else { /* input ended inside a chunk: report what the parser says */
        luaL_loadbuffer(L, buf.s, buf.len, "=stdin");
        kind = CHUNK_ERROR;
      }
      break;
    }
    if (is_tty && line[0] != '\0') add_history(line);
    if (!first) text_append(&buf, "\n", 1);
    const char *body = line;
    if (first && line[0] == '?') { /* `?f`: help(f) */
      static const char head[] = "require('dama.help').expr(\"";
      text_append(&buf, head, sizeof head - 1);
      for (const char *c = line + 1; *c; c++) {
        char esc[8];
        int k = snprintf(esc, sizeof esc, "\\%03u", (unsigned)(unsigned char)*c);
        text_append(&buf, esc, (size_t)k);
      }
      text_append(&buf, "\")", 2);
      body = "";
    } else if (first && line[0] == '=') { /* Lua 5.1's `=expr` */
      text_append(&buf, "return ", 7);
      body = line + 1;
    }
    if (text_append(&buf, body, strlen(body)) != 0) {
      free(line);
      lua_pushliteral(L, "repl: out of memory reading the input");
      kind = CHUNK_ERROR;
      break;
    }
    free(line);
    if (first && is_blank(buf.s, buf.len)) {
      buf.len = 0;
      continue;
    }
    first = 0;
    /* An expression? Then print its value, as lua.c 5.3 does. Not a plain `return <input>`: that
     * would make `error('x')` a tail call and lose its position and the chunk's traceback line. */
    lua_pushliteral(L, "local function dama_repl_values_(...) return ... end return dama_repl_values_(");
    lua_pushlstring(L, buf.s, buf.len);
    lua_pushliteral(L, "\n)");
    lua_concat(L, 3);
    size_t n;
    const char *with_return = lua_tolstring(L, -1, &n);
    if (luaL_loadbuffer(L, with_return, n, "=stdin") == 0) {
      lua_remove(L, -2);
      kind = CHUNK_READY;
      break;
    }
    lua_pop(L, 2);
    int status = luaL_loadbuffer(L, buf.s, buf.len, "=stdin");
    if (status == 0) { kind = CHUNK_READY; break; }
    /* `x = dama.randn(3); x.shape`: statements, then an expression after the last ';'. Print its values
     * instead of reading it as an unfinished statement (Lua says "'=' expected near '<eof>'"). */
    if (try_trailing_expression(L, &buf)) {
      lua_remove(L, -2);
      kind = CHUNK_READY;
      break;
    }
    if (!is_incomplete(L, status)) {
      /* `{` or `dama.tensor{` on a first line: not a statement, but the start of an expression. */
      lua_pushliteral(L, "return ");
      lua_pushlstring(L, buf.s, buf.len);
      lua_concat(L, 2);
      const char *as_return = lua_tolstring(L, -1, &n);
      int expr_status = luaL_loadbuffer(L, as_return, n, "=stdin");
      int more = is_incomplete(L, expr_status);
      lua_pop(L, 2);
      if (!more) { kind = CHUNK_ERROR; break; } /* the statement's error is on the stack */
    }
    lua_pop(L, 1);
  }
  free(buf.s);
  return kind;
}

/* ---- printing results ---- */

static void print_results(lua_State *L, int first, int n)
{
  int top = lua_gettop(L);
  if (repl_module_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, repl_module_ref);
    lua_getfield(L, -1, "format_results");
    lua_remove(L, -2);
  } else {
    lua_getglobal(L, "print"); /* without dama.repl, print does */
  }
  for (int i = 0; i < n; i++) lua_pushvalue(L, first + i);
  if (dama_host_docall(L, n, 1, DAMA_HOST_REPL) != 0) {
    lua_pushfstring(L, "error while printing the result: %s", lua_tostring(L, -1));
    lua_remove(L, -2);
    dama_host_report(L, 0);
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    fputs(lua_tostring(L, -1), stdout);
    fputc('\n', stdout);
  }
  lua_settop(L, top);
  fflush(stdout);
}

/* Run the function on top of the stack; returns 0 or 1 (failed). */
static int run_chunk(lua_State *L)
{
  int base = lua_gettop(L) - 1;
  if (jit_off_ref != LUA_NOREF) { /* interpret this chunk and every function it defines */
    lua_rawgeti(L, LUA_REGISTRYINDEX, jit_off_ref);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    if (lua_pcall(L, 2, 0, 0) != 0) lua_pop(L, 1);
  }
  if (dama_host_docall(L, 0, LUA_MULTRET, DAMA_HOST_REPL) != 0) {
    dama_host_report(L, 0);
    lua_settop(L, base);
    return 1;
  }
  int n = lua_gettop(L) - base;
  if (n > 0) {
    lua_pushvalue(L, base + 1);
    lua_setglobal(L, "_");
    print_results(L, base + 1, n);
  }
  lua_settop(L, base);
  return 0;
}

/* ---- Tab completion (libedit) ---- */

static char **candidates;
static size_t n_candidates, next_candidate;

static void free_candidates(void)
{
  for (size_t i = 0; i < n_candidates; i++) free(candidates[i]);
  free(candidates);
  candidates = NULL;
  n_candidates = next_candidate = 0;
}

static void fill_candidates(const char *word)
{
  lua_State *L = repl_L;
  int top = lua_gettop(L);
  free_candidates();
  if (repl_module_ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, repl_module_ref);
  lua_getfield(L, -1, "complete");
  lua_remove(L, -2);
  lua_pushstring(L, word);
  if (dama_host_docall(L, 1, 1, DAMA_HOST_PROMPT) == 0 && lua_istable(L, -1)) {
    size_t n = lua_objlen(L, -1);
    candidates = calloc(n ? n : 1, sizeof *candidates);
    for (size_t i = 0; candidates && i < n; i++) {
      lua_rawgeti(L, -1, (int)i + 1);
      const char *s = lua_tostring(L, -1);
      if (s && (candidates[n_candidates] = strdup(s)) != NULL) n_candidates++;
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
}

static char *completion_generator(const char *word, int state)
{
  if (state == 0) fill_candidates(word);
  if (next_candidate < n_candidates) return strdup(candidates[next_candidate++]);
  return NULL;
}

static char **attempted_completion(const char *word, int start, int end)
{
  (void)start;
  (void)end;
  rl_attempted_completion_over = 1; /* never fall back to file names */
  return rl_completion_matches(word, completion_generator);
}

/* ---- set-up ---- */

static void setup_editline(void)
{
  const char *h = getenv("DAMA_HISTORY");
  const char *home = getenv("HOME");
  history_path[0] = '\0';
  if (h) snprintf(history_path, sizeof history_path, "%s", h);
  else if (home && home[0]) snprintf(history_path, sizeof history_path, "%s/.dama_history", home);
  rl_readline_name = "dama";
  /* '.' and ':' stay inside a word so that `dama.ma` and `x:su` complete as a whole. */
  rl_basic_word_break_characters = " \t\n\"'`@$><=;|&{}()[],+-*/%^~#";
  rl_completer_word_break_characters = (char *)rl_basic_word_break_characters;
  rl_attempted_completion_function = attempted_completion;
  rl_completion_append_character = '\0';
  /* rl_catch_signals stays on: libedit then restores the terminal on Ctrl-Z/fg and hands Ctrl-C on
   * to our handler (which makes readline() return NULL, see read_line). */
  stifle_history(HISTORY_SIZE);
  if (history_path[0]) read_history(history_path);
}

static void save_history(void)
{
  if (is_tty && history_path[0]) write_history(history_path);
}

static void load_helpers(lua_State *L)
{
  lua_getglobal(L, "require");
  lua_pushliteral(L, "dama.repl");
  if (dama_host_docall(L, 1, 1, DAMA_HOST_SCRIPT) == 0 && lua_istable(L, -1)) {
    repl_module_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    fprintf(stderr, "dama: warning: dama.repl did not load, results print plainly: %s\n",
            lua_isstring(L, -1) ? lua_tostring(L, -1) : "(not a table)");
    lua_pop(L, 1);
  }
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, "jit");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "off");
    if (lua_isfunction(L, -1)) jit_off_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    else lua_pop(L, 1);
  }
  lua_pop(L, 2);
}

static void print_banner(lua_State *L)
{
  lua_getglobal(L, "dama");
  int have_dama = !lua_isnil(L, -1);
  lua_pop(L, 1);
  printf("%s -- Lua with the dama library; Tab completes, Ctrl-C interrupts, Ctrl-D exits.\n",
         dama_host_version());
  if (!have_dama) printf("(the dama library did not load: see the message above)\n");
  fflush(stdout);
}

int dama_repl_run(lua_State *L)
{
  int failures = 0;
  repl_L = L;
  is_tty = isatty(STDIN_FILENO);
  lua_settop(L, 0);
  load_helpers(L);
  if (is_tty) {
    setup_editline();
    print_banner(L);
  }
  dama_host_set_mode(DAMA_HOST_PROMPT);
  for (;;) {
    chunk_kind kind = read_chunk(L);
    if (kind == CHUNK_EOF) break;
    if (kind == CHUNK_CANCEL) continue;
    save_history(); /* before running: the line survives a crash or os.exit() */
    if (kind == CHUNK_ERROR) {
      dama_host_report(L, 0);
      failures++;
    } else {
      failures += run_chunk(L);
    }
    lua_settop(L, 0);
  }
  if (is_tty) {
    fputs("\n", stdout);
    save_history();
  }
  fflush(stdout);
  free_candidates();
  dama_host_set_mode(DAMA_HOST_IDLE);
  return (!is_tty && failures > 0) ? 1 : 0;
}
