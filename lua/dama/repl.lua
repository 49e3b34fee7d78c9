-- dama.repl: the Lua side of the `dama` REPL (lua/repl.c): how results are shown, and what Tab
-- completes. Usable on its own: `require('dama.repl').format(t)` renders any value as the REPL does.
local M = {}

M.max_depth = 3    -- tables nested deeper than this show as {...}
M.max_items = 40   -- entries shown per table; the rest are counted
M.width = 100      -- a table that fits in this many columns is shown on one line

local keywords = {
  'and', 'break', 'do', 'else', 'elseif', 'end', 'false', 'for', 'function', 'goto', 'if', 'in',
  'local', 'nil', 'not', 'or', 'repeat', 'return', 'then', 'true', 'until', 'while',
}
local is_keyword = {}
for _, k in ipairs(keywords) do is_keyword[k] = true end

local function is_identifier(s)
  return type(s) == 'string' and s:match('^[%a_][%w_]*$') ~= nil and not is_keyword[s]
end

local escapes = { ['\n'] = '\\n', ['\t'] = '\\t', ['\r'] = '\\r', ['"'] = '\\"', ['\\'] = '\\\\' }

-- A string as a Lua literal on one line.
function M.quote(s)
  return '"' .. (s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format('\\%03d', c:byte())
  end)) .. '"'
end

local type_rank = { number = 1, string = 2, boolean = 3 }

local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (type_rank[ta] or 9) < (type_rank[tb] or 9) end
  if ta == 'number' or ta == 'string' then return a < b end
  return tostring(a) < tostring(b)
end

local function has_tostring(v)
  local mt = getmetatable(v)
  return type(mt) == 'table' and rawget(mt, '__tostring') ~= nil
end

local format

local function format_key(k, seen, depth)
  if is_identifier(k) then return k end
  return '[' .. format(k, '', depth + 1, seen) .. ']'
end

-- Render v; `indent` is the current line's indentation, `seen` guards against cycles.
format = function(v, indent, depth, seen)
  local t = type(v)
  if t == 'string' then return M.quote(v) end
  if depth > 0 and (t == 'userdata' or t == 'cdata' or
                    (t == 'table' and getmetatable(v) ~= nil and rawget(v, 'summary') == nil)) then
    -- Inside a table, an object with a :summary() method (tensors, modules) shows as that one line.
    local ok, s = pcall(function()
      local f = v.summary
      if type(f) == 'function' then return f(v) end
    end)
    if ok and type(s) == 'string' then return s end
  end
  if t ~= 'table' or has_tostring(v) then
    local ok, s = pcall(tostring, v)
    if not ok then return '<' .. t .. ': __tostring failed: ' .. tostring(s) .. '>' end
    return (tostring(s):gsub('\n', '\n' .. indent))
  end
  if seen[v] then return '<cycle: ' .. tostring(v) .. '>' end
  if next(v) == nil then return '{}' end
  if depth >= M.max_depth then return '{...}' end
  seen[v] = true
  local items, shown, total = {}, 0, 0
  local n = 0
  while rawget(v, n + 1) ~= nil do n = n + 1 end
  local keys = {}
  for k in next, v do
    if not (type(k) == 'number' and k >= 1 and k <= n and k % 1 == 0) then keys[#keys + 1] = k end
  end
  table.sort(keys, key_less)
  local inner = indent .. '  '
  for i = 1, n do
    total = total + 1
    if shown < M.max_items then
      shown = shown + 1
      items[#items + 1] = format(v[i], inner, depth + 1, seen)
    end
  end
  for _, k in ipairs(keys) do
    total = total + 1
    if shown < M.max_items then
      shown = shown + 1
      items[#items + 1] = format_key(k, seen, depth) .. ' = ' .. format(rawget(v, k), inner, depth + 1, seen)
    end
  end
  if total > shown then items[#items + 1] = '... (' .. (total - shown) .. ' more)' end
  seen[v] = nil
  local one = '{' .. table.concat(items, ', ') .. '}'
  if #one + #indent <= M.width and not one:find('\n', 1, true) then return one end
  return '{\n' .. inner .. table.concat(items, ',\n' .. inner) .. '\n' .. indent .. '}'
end

-- One value as the REPL shows it: strings quoted, tables nested with sorted keys, values with a
-- __tostring (tensors) through it; inside a table, values with a :summary() method (tensors) show
-- as its one line.
function M.format(v)
  return format(v, '', 0, {})
end

-- Several results, tab-separated (what the REPL prints after an expression).
function M.format_results(...)
  local parts = {}
  for i = 1, select('#', ...) do parts[i] = M.format((select(i, ...))) end
  return table.concat(parts, '\t')
end

---------------------------------------------------------------------------------------------------
-- Tab completion

-- Field tables for cdata types, which have no visible metatable: {ctype = ..., fields = {...}}.
M.cdata_types = {}

-- Make Tab complete the fields (methods) of cdata values of `ctype` (an ffi ctype or a C type
-- name) from the table `fields`, e.g. register_type('dama_tensor *', Tensor).
function M.register_type(ctype, fields)
  M.cdata_types[#M.cdata_types + 1] = { ctype = ctype, fields = fields }
end

local function safe_index(obj, k)
  local ok, v = pcall(function() return obj[k] end)
  if ok then return v end
  return nil
end

-- Every key reachable from obj: its own (tables), its metatable's __index chain, registered
-- cdata fields, and strings' methods.
local function collect_keys(obj, add, seen)
  local t = type(obj)
  if t == 'table' then
    if seen[obj] then return end
    seen[obj] = true
    for k in next, obj do add(k) end
    -- dama.nn modules keep parameters, buffers and submodules (m.blocks) in tables of their own
    for _, f in ipairs{'_parameters', '_buffers', '_modules'} do
      local inner = rawget(obj, f)
      if type(inner) == 'table' then for k in next, inner do add(k) end end
    end
  end
  if t == 'cdata' then
    local ok, ffi = pcall(require, 'ffi')
    if ok then
      for _, e in ipairs(M.cdata_types) do
        local ok2, is = pcall(ffi.istype, e.ctype, obj)
        if ok2 and is then collect_keys(e.fields, add, seen) end
      end
    end
  end
  local mt = getmetatable(obj)
  if type(mt) == 'table' then
    local idx = rawget(mt, '__index')
    if type(idx) == 'table' then
      collect_keys(idx, add, seen)
    elseif type(idx) == 'function' and not seen[mt] then
      -- A class whose metatable holds the methods and whose __index is a function (tensors):
      -- offer the metatable's own functions.
      -- Then the class's parents (dama.nn: a class's metatable __index is its parent class), so inherited
      -- methods such as m:state_dict show.
      local cls = mt
      while type(cls) == 'table' and not seen[cls] do
        seen[cls] = true
        for k, v in next, cls do
          if type(v) == 'function' and type(k) == 'string' and k:sub(1, 2) ~= '__' then add(k) end
        end
        local pm = getmetatable(cls)
        cls = type(pm) == 'table' and rawget(pm, '__index') or nil
      end
    end
  end
end

-- Submodules of the module `modname` that are on package.path but not loaded yet (dama.nn, ...):
-- file names found with libc's glob(), since Lua cannot list a directory.
local glob_ok, glob_ffi = pcall(function()
  local ffi = require 'ffi'
  ffi.cdef [[
    int glob(const char *pattern, int flags, void *errfunc, void *pglob);
    void globfree(void *pglob);
  ]]
  return ffi
end)

local function submodules(modname, add)
  if not glob_ok then return end
  local ffi = glob_ffi
  local modpath = modname:gsub('%.', '/')
  -- glob_t starts with size_t gl_pathc; char **gl_pathv (glibc, musl, BSD); the rest fits in 512 bytes.
  local g = ffi.new('uint64_t[64]')
  local header = ffi.cast('struct { size_t gl_pathc; char **gl_pathv; } *', g)
  for template in package.path:gmatch('[^;]+') do
    local prefix, suffix = template:match('^(.-)%?(.*)$')
    local pattern, strip
    if suffix == '.lua' then
      pattern, strip = prefix .. modpath .. '/*.lua', '([^/]+)%.lua$'
    elseif suffix == '/init.lua' then
      pattern, strip = prefix .. modpath .. '/*/init.lua', '([^/]+)/init%.lua$'
    end
    if pattern and ffi.C.glob(pattern, 0, nil, g) == 0 then
      for i = 0, tonumber(header.gl_pathc) - 1 do
        local name = ffi.string(header.gl_pathv[i]):match(strip)
        if name and name ~= 'init' then add(name) end
      end
      ffi.C.globfree(g)
    end
  end
end

-- Resolve "a.b.c" from the globals without calling anything but __index; nil if it does not resolve.
local function resolve(path)
  local obj = _G
  for name in (path .. '.'):gmatch('([^.]*)%.') do
    if not is_identifier(name) then return nil end
    obj = safe_index(obj, name)
    if obj == nil then return nil end
  end
  return obj
end

-- Candidates for the word `text` at the cursor, as full replacements: `pri` -> {'print'},
-- `dama.ma` -> {'dama.matmul', ...}, `x:su` -> {'x:sum('}. Sorted, without duplicates.
function M.complete(text)
  local out, have = {}, {}
  local function add(s)
    if not have[s] then have[s] = true; out[#out + 1] = s end
  end
  local head, sep, partial = text:match('^(.*)([.:])([%w_]*)$')
  if head then
    local obj = resolve(head)
    if obj == nil then return out end
    local function consider(k)
      if is_identifier(k) and k:sub(1, #partial) == partial and (k:sub(1, 1) ~= '_' or partial ~= '') then
        if sep == ':' then
          if type(safe_index(obj, k)) == 'function' then add(head .. ':' .. k .. '(') end
        else
          add(head .. '.' .. k)
        end
      end
    end
    collect_keys(obj, consider, {})
    if sep == '.' and type(obj) == 'table' then
      for name, mod in pairs(package.loaded) do
        if mod == obj and type(name) == 'string' then pcall(submodules, name, consider) end
      end
    end
  elseif text:match('^[%a_]?[%w_]*$') then
    collect_keys(_G, function(k)
      if is_identifier(k) and k:sub(1, #text) == text then add(k) end
    end, {})
    for _, k in ipairs(keywords) do
      if k:sub(1, #text) == text then add(k) end
    end
  end
  table.sort(out)
  return out
end

-- help(f) in the REPL (also dama.help in scripts); `?f` is help for f.
if rawget(_G, 'help') == nil then
  local ok, h = pcall(require, 'dama.help')
  if ok then _G.help = h end
end

return M
