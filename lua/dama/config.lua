-- dama.config: a recipe's settings in one table, overridable from the command line.
--
--   local cfg = dama.config{epochs = 500, batch = 512, blr = 1.5e-4, data = nil,
--                           presets = {demo = {epochs = 3, batch = 32}}}:override(arg)
--   -- dama recipes/x.lua epochs=10 blr=1e-4 betas=0.9,0.95 preset=demo data=/path
--
-- Values from the command line are converted to the type of the default (number, boolean, list of
-- numbers); keys whose default is nil are listed in `optional` and take strings or numbers; an unknown key is an error naming the known ones, so typos do not pass silently.
-- A preset (preset=name) applies first, then the other key=value pairs.
-- `choices = {key = {'a', 'b'}}` limits a key to those values and `positive = {'blr'}` to numbers > 0;
-- a bad value is an error naming the key and what it accepts.
local Config = {}
Config.__index = Config

local M = {}

local function copy(v)
  if type(v) ~= 'table' then return v end
  local r = {}
  for k, x in pairs(v) do r[k] = copy(x) end
  return r
end

function M.new(defaults)
  local cfg = {}
  local types = {}
  for k, v in pairs(defaults) do
    if k ~= 'presets' and k ~= 'optional' then cfg[k] = copy(v); types[k] = type(v) end
  end
  -- keys whose default is nil (a table cannot hold nil) are listed in `optional`
  for _, k in ipairs(defaults.optional or {}) do types[k] = types[k] or 'any' end
  types.preset = 'string'
  local checks = {}
  for k, list in pairs(defaults.choices or {}) do
    if not types[k] then error(string.format("config: choices for unknown option '%s'", k), 2) end
    checks[k] = {choices = list}
  end
  for _, k in ipairs(defaults.positive or {}) do
    if not types[k] then error(string.format("config: positive names unknown option '%s'", k), 2) end
    checks[k] = checks[k] or {}
    checks[k].positive = true
  end
  return setmetatable({_values = cfg, _types = types, _checks = checks, _presets = defaults.presets or {}}, Config)
end

local function parse_value(key, s, kind, default)
  if kind == 'number' then
    local n = tonumber(s)
    if not n then error(string.format("config: %s expects a number, got '%s'", key, s), 4) end
    return n
  elseif kind == 'boolean' then
    if s == 'true' or s == '1' or s == 'yes' then return true end
    if s == 'false' or s == '0' or s == 'no' then return false end
    error(string.format("config: %s expects true or false, got '%s'", key, s), 4)
  elseif kind == 'table' then
    local list = {}
    for part in s:gmatch('[^,]+') do
      local n = tonumber(part)
      list[#list + 1] = n or part
    end
    if type(default) == 'table' and #default > 0 and #list ~= #default then
      error(string.format("config: %s expects %d comma-separated values, got '%s'", key, #default, s), 4)
    end
    return list
  end
  if s == 'nil' or s == '' then return nil end
  return tonumber(s) or s
end

function Config:set(key, value)
  local kind = self._types[key]
  if kind == nil then
    local known = {}
    for k in pairs(self._types) do known[#known + 1] = k end
    table.sort(known)
    error(string.format("config: unknown option '%s' (known: %s)", key, table.concat(known, ', ')), 3)
  end
  if type(value) == 'string' and kind ~= 'string' then value = parse_value(key, value, kind, self._values[key]) end
  local c = rawget(self, '_checks')[key]
  if c and c.choices and type(value) ~= 'function' then   -- a Lua function stands for a user strategy
    local ok = false
    for _, v in ipairs(c.choices) do if v == value then ok = true end end
    if not ok then
      local q = {}
      for i, v in ipairs(c.choices) do q[i] = "'" .. tostring(v) .. "'" end
      error(string.format("config: %s must be one of %s, got '%s'", key, table.concat(q, ', '), tostring(value)), 3)
    end
  end
  if c and c.positive and not (type(value) == 'number' and value > 0) then
    error(string.format("config: %s must be a number > 0, got '%s'", key, tostring(value)), 3)
  end
  self._values[key] = value
  return self
end

-- Apply a preset by name; its values go through set().
function Config:apply_preset(name)
  local p = self._presets[name]
  if not p then
    local names = {}
    for k in pairs(self._presets) do names[#names + 1] = k end
    table.sort(names)
    error(string.format("config: unknown preset '%s' (presets: %s)", tostring(name), table.concat(names, ', ')), 3)
  end
  for k, v in pairs(p) do self:set(k, copy(v)) end
  self._values.preset = name
  return self
end

-- Apply key=value strings (e.g. the script's `arg`), preset first. Returns self.
function Config:override(args)
  args = args or {}
  local pairs_list = {}
  for i = 1, #args do
    local a = args[i]
    local k, v = tostring(a):match('^%-*([%w_%.]+)=(.*)$')
    if not k then error(string.format("config: expected key=value, got '%s'", tostring(a)), 2) end
    if k == "preset" then self:apply_preset(v) else pairs_list[#pairs_list + 1] = {k, v} end
  end
  for _, kv in ipairs(pairs_list) do self:set(kv[1], kv[2]) end
  return self
end

-- Plain table of the values (for logging and checkpoints).
function Config:table() return copy(self._values) end

Config.__index = function(self, k)
  local m = rawget(Config, k)
  if m ~= nil then return m end
  return rawget(self, '_values')[k]
end
Config.__newindex = function(self, k, v) self:set(k, v) end

function Config:__tostring()
  local keys = {}
  for k in pairs(self._types) do keys[#keys + 1] = k end
  table.sort(keys)
  local lines = {}
  for _, k in ipairs(keys) do
    local v = self._values[k]
    if type(v) == 'table' then v = '{' .. table.concat(v, ', ') .. '}' end
    lines[#lines + 1] = string.format('  %-14s %s', k, tostring(v))
  end
  return 'config:\n' .. table.concat(lines, '\n')
end

M.Config = Config
setmetatable(M, {__call = function(_, defaults) return M.new(defaults) end})
return M
