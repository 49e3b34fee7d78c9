/* json.c — JSON for Lua through cJSON, the codec the runtime already uses for safetensors headers.
 * `require 'dama.json_core'` gives encode(v, on_cdata, tensor_mt) and decode(s); lua/dama/json.lua documents and wraps them.
 *
 * encode: nil/boolean/number/string/table -> compact JSON. Object keys are sorted (deterministic files); a table is
 * an array when its keys are exactly 1..n with n > 0 (an empty table is {}). Integral numbers below 2^53 print as
 * integers; others in the shortest of 15..17 significant digits that reads back bit for bit. NaN/Inf, functions, self-containing tables and
 * strings holding a NUL byte are refused with the path of the bad value. A cdata value is passed to on_cdata, which
 * returns its JSON stand-in (a string or number) or raises; a table whose metatable is tensor_mt is refused.
 * decode: JSON text -> Lua value; null becomes nil (an absent key, or a hole in an array).
 *
 * Every cJSON tree lives in a userdata box whose __gc frees it, so a Lua error (out of memory, a raising on_cdata)
 * cannot leak it. */
#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

#define JSON_MAX_DEPTH 200
#define BOX_MT "dama.json.box"

typedef struct { cJSON *root; } json_box;

static int box_gc(lua_State *L)
{
  json_box *b = (json_box *)lua_touserdata(L, 1);
  if (b && b->root) { cJSON_Delete(b->root); b->root = NULL; }
  return 0;
}

static json_box *push_box(lua_State *L)
{
  json_box *b = (json_box *)lua_newuserdata(L, sizeof *b);
  b->root = NULL;
  if (luaL_newmetatable(L, BOX_MT)) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

/* ---------------------------------------------------------------- encode */

typedef struct {
  lua_State *L;
  int seen;        /* stack index of a table: tables on the current path */
  int on_cdata;    /* stack index of the cdata handler, or 0 */
  int tensor_mt;   /* stack index of the tensor metatable (tables with it are refused), or 0 */
  char path[256];  /* where the value being encoded sits, e.g. .extra.config[3] */
} enc_state;

static int enc_fail(enc_state *s, const char *what)
{
  lua_pushfstring(s->L, "json: cannot encode %s at %s", what, s->path[0] ? s->path : "the top level");
  lua_error(s->L);
  return 0;
}

static void path_push(enc_state *s, size_t *saved, const char *key, lua_Number index)
{
  *saved = strlen(s->path);
  size_t room = sizeof s->path - *saved;
  if (key) snprintf(s->path + *saved, room, ".%s", key);
  else snprintf(s->path + *saved, room, "[%.0f]", index);
}

static cJSON *enc_number(enc_state *s, lua_Number v)
{
  if (v != v) enc_fail(s, "nan (JSON has no NaN)");
  if (isinf(v)) enc_fail(s, v > 0 ? "inf (JSON has no Infinity)" : "-inf (JSON has no Infinity)");
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.0f", v);
    if (strcmp(buf, "-0") == 0) strcpy(buf, "0");
    return cJSON_CreateRaw(buf);
  }
  /* cJSON's own printer accepts a 15-digit form within an epsilon of v, which can lose the last bit (a learning
   * rate saved in a checkpoint must come back exactly): use the shortest of 15..17 digits that reads back equal */
  char buf[40];
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(buf, sizeof buf, "%.*g", digits, v);
    if (strtod(buf, NULL) == v) break;
  }
  return cJSON_CreateRaw(buf);
}

static cJSON *enc_string(enc_state *s, int idx)
{
  size_t n;
  const char *str = lua_tolstring(s->L, idx, &n);
  if (memchr(str, 0, n)) enc_fail(s, "a string with a NUL byte");
  return cJSON_CreateString(str);
}

static cJSON *enc_value(enc_state *s, int idx, int depth);

typedef struct { const char *key; int ref; } enc_key;

static int key_cmp(const void *a, const void *b)
{
  return strcmp(((const enc_key *)a)->key, ((const enc_key *)b)->key);
}

/* The value to encode is at the top of the stack; its subtree is attached to `into` right away so that an error
 * part-way leaves nothing unowned. */
static cJSON *enc_table(enc_state *s, int idx, int depth, cJSON *into)
{
  lua_State *L = s->L;
  size_t n = lua_objlen(L, idx), count = 0;
  int all_keys_ok = 1;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    count++;
    int kt = lua_type(L, -2);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER) all_keys_ok = 0;
  }
  if (!all_keys_ok) enc_fail(s, "a table whose keys are not all strings or numbers");
  size_t saved;
  if (n > 0 && n == count) {
    for (size_t i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, (int)i);
      path_push(s, &saved, NULL, (lua_Number)i);
      cJSON_AddItemToArray(into, enc_value(s, lua_gettop(L), depth + 1));
      s->path[saved] = 0;
      lua_pop(L, 1);
    }
    return into;
  }
  /* keys as strings (numbers through tostring, as Lua prints them), sorted; the strings stay referenced from a
   * scratch table so they live while we sort */
  lua_createtable(L, (int)count, 0);
  int keep = lua_gettop(L);
  enc_key *keys = (enc_key *)lua_newuserdata(L, (count ? count : 1) * sizeof *keys);
  size_t k = 0;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    lua_pushvalue(L, -2);
    const char *ks = lua_tostring(L, -1);   /* converts a number copy, not the iteration key */
    lua_rawseti(L, keep, (int)(k + 1));
    keys[k].key = ks;
    keys[k].ref = (int)(k + 1);
    k++;
  }
  qsort(keys, count, sizeof *keys, key_cmp);
  for (size_t i = 0; i < count; i++) {
    if (i > 0 && strcmp(keys[i - 1].key, keys[i].key) == 0) {
      char what[160];
      snprintf(what, sizeof what, "a table with the key '%.100s' both as a number and as a string", keys[i].key);
      enc_fail(s, what);
    }
    /* the value: t[key string], or t[number] when the key was a number */
    lua_rawgeti(L, keep, keys[i].ref);
    lua_pushvalue(L, -1);
    lua_rawget(L, idx);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_Number num = lua_tonumber(L, -1);
      lua_pushnumber(L, num);
      lua_rawget(L, idx);
    }
    path_push(s, &saved, keys[i].key, 0);
    cJSON_AddItemToObject(into, keys[i].key, enc_value(s, lua_gettop(L), depth + 1));
    s->path[saved] = 0;
    lua_pop(L, 2);
  }
  lua_pop(L, 2);   /* keys, keep */
  return into;
}

/* A cJSON item for the Lua value at idx; the caller attaches it (or boxes it) before anything can raise again. */
static cJSON *enc_value(enc_state *s, int idx, int depth)
{
  lua_State *L = s->L;
  if (!lua_checkstack(L, 8)) enc_fail(s, "a value nested too deeply for the Lua stack");
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return cJSON_CreateNull();
  case LUA_TBOOLEAN: return cJSON_CreateBool(lua_toboolean(L, idx));
  case LUA_TNUMBER: return enc_number(s, lua_tonumber(L, idx));
  case LUA_TSTRING: return enc_string(s, idx);
  case LUA_TTABLE: {
    if (depth >= JSON_MAX_DEPTH) enc_fail(s, "a table nested more than 200 deep");
    if (s->tensor_mt && lua_getmetatable(L, idx)) {
      int same = lua_rawequal(L, -1, s->tensor_mt);
      lua_pop(L, 1);
      if (same) enc_fail(s, "a tensor (save it as a tensor)");
    }
    lua_pushvalue(L, idx);
    lua_rawget(L, s->seen);
    if (lua_toboolean(L, -1)) enc_fail(s, "a table that contains itself");
    lua_pop(L, 1);
    size_t n = lua_objlen(L, idx);
    int is_array = 0;
    if (n > 0) {
      size_t count = 0;
      for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) count++;
      is_array = count == n;
    }
    /* box the new container while its children are built: an error below frees it */
    json_box *b = push_box(L);
    b->root = is_array ? cJSON_CreateArray() : cJSON_CreateObject();
    if (!b->root) enc_fail(s, "a table (out of memory)");
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, s->seen);
    enc_table(s, idx, depth, b->root);
    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, s->seen);
    cJSON *out = b->root;
    b->root = NULL;
    lua_pop(L, 1);
    return out;
  }
  default:
    if (s->on_cdata && lua_type(L, idx) == 10 /* LuaJIT cdata */) {
      lua_pushvalue(L, s->on_cdata);
      lua_pushvalue(L, idx);
      lua_pushstring(L, s->path[0] ? s->path : "the top level");
      lua_call(L, 2, 1);
      int t = lua_type(L, -1);
      cJSON *out = NULL;
      if (t == LUA_TSTRING) out = enc_string(s, lua_gettop(L));
      else if (t == LUA_TNUMBER) out = enc_number(s, lua_tonumber(L, -1));
      else enc_fail(s, "a cdata value (the handler returned neither a string nor a number)");
      lua_pop(L, 1);
      return out;
    }
    {
      char what[64];
      snprintf(what, sizeof what, "a %s", luaL_typename(L, idx));
      enc_fail(s, what);
    }
  }
  return NULL;
}

/* encode(v[, on_cdata[, tensor_mt]]) -> JSON text */
static int json_encode(lua_State *L)
{
  lua_settop(L, 3);
  enc_state s = {L, 0, 0, 0, {0}};
  if (!lua_isnil(L, 2)) {
    luaL_checktype(L, 2, LUA_TFUNCTION);
    s.on_cdata = 2;
  }
  if (!lua_isnil(L, 3)) s.tensor_mt = 3;
  lua_newtable(L);
  s.seen = lua_gettop(L);
  json_box *b = push_box(L);
  b->root = enc_value(&s, 1, 0);
  if (!b->root) return luaL_error(L, "json: out of memory");
  char *text = cJSON_PrintUnformatted(b->root);
  if (!text) return luaL_error(L, "json: out of memory");
  lua_pushstring(L, text);
  cJSON_free(text);
  return 1;
}

/* ---------------------------------------------------------------- decode */

static void dec_push(lua_State *L, const cJSON *v)
{
  if (!lua_checkstack(L, 4)) luaL_error(L, "json: nested too deeply");
  if (cJSON_IsObject(v)) {
    lua_newtable(L);
    for (const cJSON *c = v->child; c; c = c->next) {
      if (cJSON_IsNull(c)) continue;
      lua_pushstring(L, c->string);
      dec_push(L, c);
      lua_rawset(L, -3);
    }
  } else if (cJSON_IsArray(v)) {
    lua_newtable(L);
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
      i++;
      if (cJSON_IsNull(c)) continue;
      dec_push(L, c);
      lua_rawseti(L, -2, i);
    }
  } else if (cJSON_IsString(v)) {
    lua_pushstring(L, v->valuestring);
  } else if (cJSON_IsNumber(v)) {
    lua_pushnumber(L, v->valuedouble);
  } else if (cJSON_IsBool(v)) {
    lua_pushboolean(L, cJSON_IsTrue(v));
  } else {
    lua_pushnil(L);
  }
}

static int dec_error(lua_State *L, const char *s, size_t n, size_t at, const char *what)
{
  size_t from = at > 20 ? at - 20 : 0;
  size_t len = n - from < 60 ? n - from : 60;
  lua_pushfstring(L, "json: %s at byte %d of \"", what, (int)(at + 1));
  lua_pushlstring(L, s + from, len);
  lua_pushstring(L, "\"");
  lua_concat(L, 3);
  return lua_error(L);
}

/* decode(s) -> value */
static int json_decode(lua_State *L)
{
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  json_box *b = push_box(L);
  const char *end = NULL;
  b->root = cJSON_ParseWithLengthOpts(s, n, &end, 0);
  if (!b->root) {
    const char *at = cJSON_GetErrorPtr();
    size_t pos = at && at >= s && at <= s + n ? (size_t)(at - s) : 0;
    if (n == 0 || strspn(s, " \t\r\n") == n) return dec_error(L, s, n, n, "empty text");
    return dec_error(L, s, n, pos, "invalid JSON");
  }
  size_t used = end ? (size_t)(end - s) : n;
  while (used < n && strchr(" \t\r\n", s[used]) && s[used]) used++;
  if (used < n) return dec_error(L, s, n, used, "trailing characters");
  dec_push(L, b->root);
  cJSON_Delete(b->root);
  b->root = NULL;
  return 1;
}

static int json_luaopen(lua_State *L)
{
  static const luaL_Reg fns[] = {{"encode", json_encode}, {"decode", json_decode}, {NULL, NULL}};
  lua_newtable(L);
  luaL_register(L, NULL, fns);
  return 1;
}

void dama_host_json_open(lua_State *L)
{
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, json_luaopen);
  lua_setfield(L, -2, "dama.json_core");
  lua_pop(L, 2);
}
