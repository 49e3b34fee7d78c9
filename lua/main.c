/* The `dama` program: a LuaJIT host with the dama library loaded as the global `dama`.
 *
 *   dama script.lua a b     run a script; `arg` and `...` as the luajit binary sets them
 *   dama -e 'chunk'         run a chunk (repeatable, in order with -l)
 *   dama -                  run a script read from standard input
 *   dama                    the REPL (repl.c)
 */
#define _POSIX_C_SOURCE 200809L

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>
#include <lualib.h>

#include "dama.h"
#include "host.h"
#ifdef DAMA_WITH_CUDA
#include "dama_cuda.h"
#endif

#ifndef DAMA_SOURCE_LUA_DIR
#define DAMA_SOURCE_LUA_DIR ""
#endif
#ifndef DAMA_SOURCE_ROOT
#define DAMA_SOURCE_ROOT ""
#endif

static void print_usage(FILE *f)
{
  fputs("usage: dama [options] [script [args...]]\n"
        "Runs a Lua script, a chunk or the interactive REPL, with the dama library loaded as the\n"
        "global `dama` (LuaJIT; `require 'dama'` works too).\n"
        "\n"
        "Options:\n"
        "  -e chunk     execute the string 'chunk' (repeatable; runs in order with -l)\n"
        "  -l name      require module 'name' and store it in the global 'name'\n"
        "  -i           enter the REPL after running the script and/or chunks\n"
        "  -v           print the version and the CUDA devices found, then go on\n"
        "  -j cmd       LuaJIT control command, e.g. -joff, -jv, -jdump\n"
        "  -O[opt]      LuaJIT optimisation flags, e.g. -O3, -O-fold\n"
        "  -h, --help   print this help and exit\n"
        "  --version    print the version and the CUDA devices found, and exit\n"
        "  --           stop handling options\n"
        "  -            execute standard input as a script and stop handling options\n"
        "\n"
        "A script sees its arguments in `arg` (arg[0] = script name, arg[1..n] = arguments, negative\n"
        "indices = the interpreter and its options) and as `...`.\n"
        "With no script and no -e, dama starts the REPL: expression results are printed, an unfinished\n"
        "chunk continues on the next line, Tab completes globals and fields, Ctrl-C interrupts\n"
        "running code (or drops the line being typed), Ctrl-D exits. When standard input is not a\n"
        "terminal, the REPL reads lines silently and exits with status 1 if any chunk failed.\n"
        "Chunks typed at the REPL run interpreted (jit.off) so that Ctrl-C can stop their loops;\n"
        "library code stays compiled, and long C operations stop on Ctrl-C too.\n"
        "In a script, Ctrl-C raises the Lua error \"interrupted\" (pcall can catch it, e.g. to save\n"
        "a checkpoint); a second Ctrl-C before Lua has seen the first, or within a second, kills\n"
        "the process. SIGTERM and SIGUSR1 (batch schedulers) raise \"interrupted (SIGTERM)\" the same\n"
        "way, then the process ends with status 128 + signal (a training run saves its checkpoint).\n"
        "\n"
        "Environment:\n"
        "  DAMA_LUA_PATH  directories (':'-separated) searched first for Lua modules\n"
        "  DAMA_HISTORY   REPL history file (default ~/.dama_history; empty: no history)\n",
        f);
  fflush(f);
}

typedef struct options {
  int script;      /* argv index of the script (or "-"), 0 if none */
  int interactive; /* -i */
  int version;     /* -v */
  int exec;        /* some -e, -l, -j or -O */
  int help;        /* --help */
  int version_only;/* --version */
} options;

/* Parse the options the way luajit does; returns -1 (with a message printed) on a bad command line. */
static int collect_args(int argc, char **argv, options *o)
{
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') { o->script = i; return 0; }
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) { o->help = 1; return 0; }
    if (strcmp(a, "--version") == 0) { o->version_only = 1; return 0; }
    if (strcmp(a, "--") == 0) { o->script = (i + 1 < argc) ? i + 1 : 0; return 0; }
    if (strcmp(a, "-") == 0) { o->script = i; return 0; }
    switch (a[1]) {
      case 'i':
      case 'v':
        if (a[2] != '\0') goto bad;
        if (a[1] == 'i') o->interactive = 1;
        else o->version = 1;
        break;
      case 'e':
      case 'l':
      case 'j':
        o->exec = 1;
        if (a[2] == '\0') {
          if (i + 1 >= argc) {
            fprintf(stderr, "dama: option '%s' needs an argument\n", a);
            return -1;
          }
          i++;
        }
        break;
      case 'O':
        o->exec = 1;
        break;
      default:
        goto bad;
    }
    continue;
  bad:
    fprintf(stderr, "dama: unrecognized option '%s'\n", a);
    return -1;
  }
  return 0;
}

/* Directory of the running executable (no trailing slash), or "" if unknown. */
static void exe_dir(char *buf, size_t n)
{
  ssize_t len = readlink("/proc/self/exe", buf, n - 1);
  if (len <= 0) { buf[0] = '\0'; return; }
  buf[len] = '\0';
  char *slash = strrchr(buf, '/');
  if (slash) *slash = '\0';
  else buf[0] = '\0';
}

/* Push "<dir>/?.lua;<dir>/?/init.lua;" and return 1, or push nothing and return 0 for an empty dir. */
static int push_dir_patterns(lua_State *L, const char *dir, size_t len)
{
  if (len == 0) return 0;
  lua_pushlstring(L, dir, len);
  const char *d = lua_tostring(L, -1);
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", d, d);
  lua_remove(L, -2);
  return 1;
}

/* package.path = DAMA_LUA_PATH dirs, the source tree's lua/, <exe>/../lua, <exe>/../share/dama/lua,
 * then LuaJIT's default. A searcher maps 'datasets.x' to <root>/datasets/x.lua. */
static const char datasets_searcher[] =
  "local roots = {...}\n"
  "local loaders = package.loaders or package.searchers\n"
  "loaders[#loaders + 1] = function(name)\n"
  "  local sub = name == 'datasets' and 'init' or name:match('^datasets%.(.+)$')\n"
  "  if not sub then return nil end\n"
  "  local patterns = {}\n"
  "  for _, r in ipairs(roots) do\n"
  "    if r ~= '' then patterns[#patterns + 1] = r .. '/datasets/?.lua;' .. r .. '/datasets/?/init.lua' end\n"
  "  end\n"
  "  local file, err = package.searchpath(sub, table.concat(patterns, ';'))\n"
  "  if not file then return err end\n"
  "  local chunk, lerr = loadfile(file)\n"
  "  if not chunk then\n"
  "    error(string.format(\"error loading module '%s' from file '%s':\\n\\t%s\", name, file, lerr), 0)\n"
  "  end\n"
  "  return chunk\n"
  "end\n";

static void setup_paths(lua_State *L)
{
  char exe[PATH_MAX];
  int n = 0;
  exe_dir(exe, sizeof exe);
  lua_getglobal(L, "package");
  const char *env = getenv("DAMA_LUA_PATH");
  if (env) {
    const char *p = env;
    for (;;) {
      const char *colon = strchr(p, ':');
      size_t len = colon ? (size_t)(colon - p) : strlen(p);
      n += push_dir_patterns(L, p, len);
      if (!colon) break;
      p = colon + 1;
    }
  }
  n += push_dir_patterns(L, DAMA_SOURCE_LUA_DIR, strlen(DAMA_SOURCE_LUA_DIR));
  if (exe[0]) {
    lua_pushfstring(L, "%s/../lua/?.lua;%s/../lua/?/init.lua;%s/../share/dama/lua/?.lua;"
                       "%s/../share/dama/lua/?/init.lua;", exe, exe, exe, exe);
    n++;
  }
  lua_getfield(L, -1 - n, "path");
  lua_concat(L, n + 1);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);

  if (luaL_loadbuffer(L, datasets_searcher, sizeof datasets_searcher - 1, "=dama-datasets-searcher") == 0) {
    lua_pushstring(L, DAMA_SOURCE_ROOT);
    lua_pushfstring(L, "%s/..", exe);
    lua_pushfstring(L, "%s/../share/dama", exe);
    if (dama_host_docall(L, 3, 0, DAMA_HOST_SCRIPT) != 0) dama_host_report(L, 1);
  } else {
    dama_host_report(L, 1);
  }
}

/* arg as luajit sets it: arg[0] = script, arg[1..] = its arguments, arg[-1..] = the interpreter and
 * options. Without a script every word is at a negative index (arg[0] is nil). */
static void create_arg_table(lua_State *L, int argc, char **argv, int script)
{
  int n = script > 0 ? script : argc;
  lua_createtable(L, argc - n > 0 ? argc - n : 0, n + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - n);
  }
  lua_setglobal(L, "arg");
}

/* dama = require 'dama'; on failure warn and go on (a plain LuaJIT is still useful). */
static void load_dama(lua_State *L)
{
  lua_getglobal(L, "require");
  lua_pushliteral(L, "dama");
  if (dama_host_docall(L, 1, 1, DAMA_HOST_SCRIPT) != 0) {
    const char *msg = lua_tostring(L, -1);
    fflush(stdout);
    fprintf(stderr, "dama: warning: could not load the dama library, going on without it:\n%s\n",
            msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
    return;
  }
  lua_setglobal(L, "dama");
}

static int run_chunk(lua_State *L, const char *chunk, const char *name)
{
  int status = luaL_loadbuffer(L, chunk, strlen(chunk), name);
  if (status == 0) status = dama_host_docall(L, 0, 0, DAMA_HOST_SCRIPT);
  if (status) dama_host_report(L, 1);
  return status;
}

static int run_library(lua_State *L, const char *name)
{
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  if (dama_host_docall(L, 1, 1, DAMA_HOST_SCRIPT) != 0) {
    dama_host_report(L, 1);
    return 1;
  }
  int simple = (name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z'));
  for (const char *p = name; *p && simple; p++)
    simple = (*p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'));
  if (simple) lua_setglobal(L, name);
  else lua_pop(L, 1);
  return 0;
}

/* -j cmd[=arg,...] and -O[flags], as luajit does them. */
static const char jit_control[] =
  "local kind, cmd = ...\n"
  "local name, rest\n"
  "if kind == 'O' then name, rest = 'opt', cmd else name, rest = cmd:match('^([^=]*)=?(.*)$') end\n"
  "local args = {}\n"
  "if rest ~= '' then for a in (rest .. ','):gmatch('([^,]*),') do args[#args + 1] = a end end\n"
  "local f = kind ~= 'O' and jit[name]\n"
  "if type(f) ~= 'function' then\n"
  "  local ok, mod = pcall(require, 'jit.' .. name)\n"
  "  if not ok or type(mod) ~= 'table' or not mod.start then\n"
  "    error('unknown LuaJIT command or jit.* modules not installed: ' .. name, 0)\n"
  "  end\n"
  "  f = mod.start\n"
  "end\n"
  "f(unpack(args))\n";

static int run_jit(lua_State *L, const char *kind, const char *cmd)
{
  int status = luaL_loadbuffer(L, jit_control, sizeof jit_control - 1, "=(jit control)");
  if (status == 0) {
    lua_pushstring(L, kind);
    lua_pushstring(L, cmd);
    status = dama_host_docall(L, 2, 0, DAMA_HOST_SCRIPT);
  }
  if (status) dama_host_report(L, 1);
  return status;
}

static int run_options(lua_State *L, char **argv, int end)
{
  for (int i = 1; i < end; i++) {
    const char *a = argv[i];
    if (a[0] != '-') continue;
    char opt = a[1];
    if (opt == 'O') {
      if (run_jit(L, "O", a + 2)) return 1;
      continue;
    }
    if (opt != 'e' && opt != 'l' && opt != 'j') continue;
    const char *value = a[2] ? a + 2 : argv[++i];
    int status = opt == 'e' ? run_chunk(L, value, "=(command line)")
               : opt == 'l' ? run_library(L, value)
                            : run_jit(L, "j", value);
    if (status) return 1;
  }
  return 0;
}

static int run_script(lua_State *L, int argc, char **argv, int n)
{
  const char *fname = argv[n];
  if (strcmp(fname, "-") == 0 && strcmp(argv[n - 1], "--") != 0) fname = NULL; /* stdin */
  if (luaL_loadfile(L, fname) != 0) {
    dama_host_report(L, 1);
    return 1;
  }
  int narg = argc - n - 1;
  luaL_checkstack(L, narg + 3, "too many arguments to script");
  for (int i = n + 1; i < argc; i++) lua_pushstring(L, argv[i]);
  if (dama_host_docall(L, narg, 0, DAMA_HOST_SCRIPT) != 0) {
    dama_host_report(L, 1);
    return 1;
  }
  return 0;
}

/* libgomp reads OMP_WAIT_POLICY once, when it is loaded. Its default (spin before sleeping) makes idle
 * OpenMP workers and the single-threaded BLAS calls they share the cores with fight over 2 cores: the
 * demo ran at ~60 samples/s spinning against ~420 passive (bench/VIT.md). So unless the user chose a
 * policy, restart once with PASSIVE set; a failed exec just carries on. */
static void prefer_passive_openmp(char **argv)
{
  if (getenv("OMP_WAIT_POLICY") || getenv("DAMA_NO_REEXEC")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  setenv("DAMA_NO_REEXEC", "1", 1);
  execv("/proc/self/exe", argv);
}

int main(int argc, char **argv)
{
  prefer_passive_openmp(argv);
#ifdef DAMA_WITH_CUDA
  dama_cuda_register();   /* cuda:N's table; the driver is first touched when a CUDA device is asked about */
#endif
  options o;
  memset(&o, 0, sizeof o);
  if (collect_args(argc, argv, &o) < 0) {
    print_usage(stderr);
    return 1;
  }
  if (o.help) {
    print_usage(stdout);
    return 0;
  }
  if (o.version_only) {
    printf("%s\n%s\n", dama_host_version(), dama_host_devices());
    return 0;
  }

  lua_State *L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "dama: cannot create the Lua state: not enough memory\n");
    return 1;
  }
  dama_host_signals_init(L);
  lua_gc(L, LUA_GCSTOP, 0);
  luaL_openlibs(L);
  lua_gc(L, LUA_GCRESTART, -1);
  dama_host_open(L);
  dama_host_json_open(L);
  setup_paths(L);
  create_arg_table(L, argc, argv, o.script);
  load_dama(L);

  if (o.version) printf("%s\n%s\n", dama_host_version(), dama_host_devices());
  int status = run_options(L, argv, o.script > 0 ? o.script : argc);
  if (status == 0 && o.script > 0) status = run_script(L, argc, argv, o.script);
  /* SIGTERM/SIGUSR1 during the script or chunks: they have had their chance to save; end (no REPL),
   * with the status of a death by that signal */
  int term = dama_host_termination_signal();
  if (!term && (o.interactive || (o.script == 0 && !o.exec && !o.version))) {
    int repl_status = dama_repl_run(L);
    if (!o.interactive) status = repl_status;
  }
  fflush(stdout);
  dama_host_set_mode(DAMA_HOST_IDLE);
  lua_close(L);
  if (term) return 128 + term;
  return status ? 1 : 0;
}
