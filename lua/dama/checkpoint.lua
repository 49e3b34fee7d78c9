-- Tensor files and training checkpoints in the safetensors format (readable by PyTorch's `safetensors`).
--
-- Plain tensor files:
--   dama.checkpoint.save_tensors('w.safetensors', {weight = w, bias = b}, {note = 'x', epoch = 3})
--   local ts, meta = dama.checkpoint.load_tensors('w.safetensors')   -- ts.weight, meta.epoch == '3'
--   (also dama.save / dama.load once this module is loaded). Metadata is string -> string in the format:
--   non-string values are stored as JSON text; load_tensors(path, {decode = true}) decodes them back.
--   local f = dama.checkpoint.open(path)   -- lazy: f:names(), f:info(name), f:get(name), f.metadata, f:close()
--
-- Training checkpoints (resume bit-exactly: weights, optimizer moments and step counts, Philox RNG, cursor):
--   dama.checkpoint.save{path = 'ckpt.safetensors', model = net, optimizer = opt, step = it, epoch = ep,
--                        cursor = loader:state(), extra = {best = 0.9}}
--   local info = dama.checkpoint.load('ckpt.safetensors', {model = net, optimizer = opt})  -- strict by default
--   -- info.step, info.epoch, info.cursor, info.extra; the RNG state is restored (rng = false to skip)
-- Several models go under prefixes: save{models = {base_encoder = net1, momentum_encoder = net2, projs_head = h}}
-- gives tensor names 'base_encoder.<state_dict name>', ... (the reference's checkpoint keys); load takes the
-- same `models` table, or `model` + `prefix = 'base_encoder.'` to pull one branch out (fine-tuning).
-- Layout: model tensors under their state_dict names (timm names for the encoder), optimizer tensors under
-- 'optim.<field>.<param name>' (e.g. optim.exp_avg.blocks.0.attn.qkv.weight), everything else as JSON in the
-- metadata key 'dama'.
--
-- Duck-typed interfaces: model:state_dict() -> {name = tensor} and optionally model:load_state_dict(tbl, strict)
-- (otherwise values are copied into the state_dict tensors); opt:state_dict() / opt:load_state_dict(sd) with
-- sd = {type =, param_groups = {{lr =, ..., keys = {...}}}, state = {[key] = {step = n, exp_avg = T, ...}}}.
local dffi = require 'dama.ffi'
local tensor = require 'dama.tensor'
local ffi, C = dffi.ffi, dffi.C
local is_tensor = tensor.is_tensor

local M = {}

local DTYPES = {[0] = 'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'}

-- ---------------------------------------------------------------- JSON (for metadata values)

local json = require 'dama.json'
-- json_encode(v) -> JSON text of v: dama.json.encode (cJSON; sorted keys, 64-bit integers as strings)
M.json_encode = json.encode
-- json_decode(s) -> the Lua value of the JSON text s: dama.json.decode
M.json_decode = json.decode

-- ---------------------------------------------------------------- plain tensor files

-- Accepts {name = tensor} or a list of {name, tensor} pairs; returns sorted names and the map.
local function named_map(tensors, op)
  if type(tensors) ~= 'table' or is_tensor(tensors) then
    error(op .. ': expected a table {name = tensor}', 3)
  end
  local map = {}
  if #tensors > 0 and type(tensors[1]) == 'table' and not is_tensor(tensors[1]) then
    for i, pair in ipairs(tensors) do
      if type(pair[1]) ~= 'string' or not is_tensor(pair[2]) then
        error(string.format('%s: entry %d is not a {name, tensor} pair', op, i), 3)
      end
      map[pair[1]] = pair[2]
    end
  else
    for k, v in pairs(tensors) do
      if type(k) ~= 'string' then error(op .. ': tensor names must be strings, got a ' .. type(k), 3) end
      if not is_tensor(v) then error(string.format("%s: '%s' is a %s, not a tensor", op, k, type(v)), 3) end
      map[k] = v
    end
  end
  local names = {}
  for k in pairs(map) do names[#names + 1] = k end
  table.sort(names)
  return names, map
end

-- save_tensors(path, tensors, metadata): an atomic write (a crash never leaves a half-written `path`).
function M.save_tensors(path, tensors, metadata)
  if type(path) ~= 'string' then error('save: expected a path string, got ' .. type(path), 2) end
  local names, map = named_map(tensors or {}, 'save')
  local n = #names
  local cnames = ffi.new('const char*[?]', math.max(n, 1))
  local cts = ffi.new('dama_tensor*[?]', math.max(n, 1))
  local keep = {}
  for i, k in ipairs(names) do
    cnames[i - 1] = k
    cts[i - 1] = tensor.Tensor._cptr(map[k], k)
    keep[#keep + 1] = map[k]
  end
  local mkeys, mvals = {}, {}
  if metadata ~= nil then
    if type(metadata) ~= 'table' then error('save: metadata must be a table of string keys', 2) end
    for k, v in pairs(metadata) do
      if type(k) ~= 'string' then error('save: metadata keys must be strings, got a ' .. type(k), 2) end
      mkeys[#mkeys + 1] = k
    end
    table.sort(mkeys)
    for i, k in ipairs(mkeys) do
      local v = metadata[k]
      if type(v) == 'string' then mvals[i] = v
      else
        local ok, enc = pcall(json.encode, v)
        if not ok then error(string.format("save: metadata '%s': %s", k, enc), 2) end
        mvals[i] = enc
      end
    end
  end
  local nm = #mkeys
  local ck = ffi.new('const char*[?]', math.max(nm, 1))
  local cv = ffi.new('const char*[?]', math.max(nm, 1))
  for i = 1, nm do ck[i - 1] = mkeys[i]; cv[i - 1] = mvals[i] end
  dffi.call(C.dama_safetensors_save, path, n, cnames, cts, nm, ck, cv)
  return path
end

local File = {}
File.__index = File

-- open(path, {mmap = false}) -> a lazy reader over one file.
function M.open(path, opts)
  if type(path) ~= 'string' then error('open: expected a path string, got ' .. type(path), 2) end
  opts = opts or {}
  local box = ffi.new('dama_safetensors*[1]')
  dffi.call(C.dama_safetensors_open, box, path, opts.mmap and 1 or 0)
  local h = ffi.gc(box[0], C.dama_safetensors_close)
  local self = setmetatable({path = path, _h = h, metadata = {}}, File)
  for i = 0, tonumber(C.dama_safetensors_metadata_count(h)) - 1 do
    self.metadata[ffi.string(C.dama_safetensors_metadata_key(h, i))] =
      ffi.string(C.dama_safetensors_metadata_value(h, i))
  end
  return self
end

local function handle(f)
  if f._h == nil then error("safetensors file '" .. f.path .. "' is closed", 3) end
  return f._h
end

-- Names in file (header) order.
function File:names()
  local h = handle(self)
  local r = {}
  for i = 0, tonumber(C.dama_safetensors_count(h)) - 1 do r[#r + 1] = ffi.string(C.dama_safetensors_name(h, i)) end
  return r
end

local info_dt, info_nd, info_shape = ffi.new('int32_t[1]'), ffi.new('int32_t[1]'), ffi.new('int64_t[8]')
-- info(name) -> {dtype = 'f32', shape = {...}} or nil if absent.
function File:info(name)
  local h = handle(self)
  local i = C.dama_safetensors_find(h, name)
  if i < 0 then return nil end
  dffi.call(C.dama_safetensors_info, h, i, info_dt, info_nd, info_shape)
  local shape = {}
  for d = 0, info_nd[0] - 1 do shape[d + 1] = tonumber(info_shape[d]) end
  return {dtype = DTYPES[info_dt[0]], shape = shape}
end

local getbox = ffi.new('dama_tensor*[1]')
function File:get(name)
  local h = handle(self)
  getbox[0] = nil
  dffi.call(C.dama_safetensors_get, h, name, getbox)
  return tensor.Tensor._wrap(getbox[0])
end

function File:close()
  if self._h ~= nil then
    ffi.gc(self._h, nil)
    C.dama_safetensors_close(self._h)
    self._h = nil
  end
end

-- Decode metadata values that are JSON (numbers, tables, booleans); other strings stay strings.
local function decode_meta(meta)
  local r = {}
  for k, v in pairs(meta) do
    local ok, d = pcall(json.decode, v)
    if ok and d ~= nil then r[k] = d else r[k] = v end
  end
  return r
end
M.decode_metadata = decode_meta

-- load_tensors(path, {mmap = false, decode = false, device = default}) -> {name = tensor}, metadata, names (file
-- order). Tensors are read into host memory and copied to opts.device (default: the default device), like
-- torch.load's map_location.
function M.load_tensors(path, opts)
  opts = opts or {}
  local f = M.open(path, opts)
  local names = f:names()
  local ts = {}
  local dev = tensor.device(opts.device)
  for _, k in ipairs(names) do
    local t = f:get(k)
    if dev ~= 'cpu' then t = t:to(dev) end
    ts[k] = t
  end
  local meta = f.metadata
  f:close()
  if opts.decode then meta = decode_meta(meta) end
  return ts, meta, names
end

-- ---------------------------------------------------------------- training checkpoints

local OPTIM_PREFIX = 'optim.'

local function shape_str(shape) return '[' .. table.concat(shape, ', ') .. ']' end

local function state_dict_of(model, what)
  if type(model) ~= 'table' or type(model.state_dict) ~= 'function' then
    error(string.format('checkpoint: %s has no state_dict() method', what), 4)
  end
  local sd = model:state_dict()
  local _, map = named_map(sd, 'checkpoint: ' .. what .. ':state_dict()')
  return map
end

-- {prefix = model} from opts.models, or {[opts.prefix or ''] = opts.model}
local function models_of(opts)
  local r = {}
  if opts.models then
    for prefix, m in pairs(opts.models) do r[#r + 1] = {prefix = prefix ~= '' and (prefix .. '.') or '', model = m} end
    table.sort(r, function(a, b) return a.prefix < b.prefix end)
  elseif opts.model then
    r[1] = {prefix = opts.prefix or '', model = opts.model}
  end
  return r
end

local function u64_from_string(s)
  local v = ffi.new('uint64_t', 0)
  for d in tostring(s):gmatch('%d') do v = v * 10 + tonumber(d) end
  return v
end

-- save{path=, model= | models=, optimizer=, step=, epoch=, cursor=, extra=, rng =, metadata = {}}
-- rng: nil/true saves the current Philox state (dama.rng_state()), a {seed, offset} table saves that, false none.
-- cursor and extra: any JSON-able Lua values (64-bit cdata integers are stored as decimal strings).
function M.save(opts, tensors, metadata)
  if type(opts) == 'string' then return M.save_tensors(opts, tensors, metadata) end
  if type(opts) ~= 'table' or type(opts.path) ~= 'string' then
    error('checkpoint.save: expected {path = "...", model = ..., optimizer = ..., step = ..., epoch = ...}', 2)
  end
  local ts = {}
  for _, e in ipairs(models_of(opts)) do
    for name, t in pairs(state_dict_of(e.model, 'model')) do ts[e.prefix .. name] = t end
  end
  local info = {format = 'dama.checkpoint', version = 1, step = opts.step, epoch = opts.epoch,
                cursor = opts.cursor, extra = opts.extra}
  if opts.rng ~= false then
    local r = type(opts.rng) == 'table' and opts.rng or tensor.rng_state()
    info.rng = {seed = r.seed, offset = r.offset}
  end
  if opts.optimizer then
    local sd = opts.optimizer:state_dict()
    local groups = {}
    for i, g in ipairs(sd.param_groups or {}) do
      local copy = {}
      for k, v in pairs(g) do if k ~= 'params' and not is_tensor(v) then copy[k] = v end end
      groups[i] = copy
    end
    local steps = {}
    for key, st in pairs(sd.state or {}) do
      for field, v in pairs(st) do
        if is_tensor(v) then ts[OPTIM_PREFIX .. field .. '.' .. key] = v
        elseif field == 'step' then steps[key] = v end
      end
    end
    info.optimizer = {type = sd.type, param_groups = groups, steps = steps}
  end
  local meta = {}
  for k, v in pairs(opts.metadata or {}) do meta[k] = v end
  meta.dama = json.encode(info)
  return M.save_tensors(opts.path, ts, meta)
end

-- Compare the file's tensors with the model's state_dict; returns the mismatch report and the tensors to load.
local function match_model(path, file_ts, prefix, sd, filter, claimed)
  local rep = {missing = {}, unexpected = {}, shape = {}, dtype = {}}
  local load = {}
  for fname, t in pairs(file_ts) do
    if fname:sub(1, #prefix) == prefix and fname:sub(1, #OPTIM_PREFIX) ~= OPTIM_PREFIX then
      local name = fname:sub(#prefix + 1)
      if not filter or filter(name) then
        claimed[fname] = true
        local want = sd[name]
        if not want then rep.unexpected[#rep.unexpected + 1] = fname
        elseif table.concat(want:size(), ',') ~= table.concat(t:size(), ',') then
          rep.shape[#rep.shape + 1] = string.format('%s (file %s, model %s)', fname, shape_str(t:size()),
            shape_str(want:size()))
        else
          if want.dtype ~= t.dtype then
            rep.dtype[#rep.dtype + 1] = string.format('%s (file %s, model %s)', fname, t.dtype, want.dtype)
          end
          load[name] = t
        end
      end
    end
  end
  for name in pairs(sd) do
    if file_ts[prefix .. name] == nil and (not filter or filter(name)) then rep.missing[#rep.missing + 1] = prefix .. name end
  end
  for _, l in pairs(rep) do table.sort(l) end
  return rep, load
end

local function report_text(path, rep)
  local lines = {}
  local function add(label, list)
    if #list > 0 then lines[#lines + 1] = string.format('  %s (%d): %s', label, #list, table.concat(list, ', ')) end
  end
  add('missing from the file', rep.missing)
  add('unexpected in the file', rep.unexpected)
  add('wrong shape', rep.shape)
  add('wrong dtype', rep.dtype)
  add('optimizer', rep.optimizer or {})
  if #lines == 0 then return nil end
  return string.format("checkpoint.load: '%s' does not match:\n%s", path, table.concat(lines, '\n'))
end

-- load(path, {model= | models=, prefix=, filter=fn(name), optimizer=, strict = true, rng = true, mmap = false})
-- -> info {step, epoch, cursor, extra, rng = {seed, offset} (uint64 cdata; already restored unless rng = false),
--          metadata (raw strings), report = {missing, unexpected, shape, dtype, optimizer},
--          tensors (all file tensors, only when no model was given)}.
-- strict: any mismatch is one error naming every bad tensor, and nothing is loaded. Not strict: the matching
-- tensors are loaded (dtype converted) and the rest is returned in info.report.
function M.load(path, opts)
  opts = opts or {}
  if type(path) ~= 'string' then error('checkpoint.load: expected a path string, got ' .. type(path), 2) end
  local strict = opts.strict ~= false
  local file_ts, meta = M.load_tensors(path, {mmap = opts.mmap})
  local info = {}
  if meta.dama then
    local ok, d = pcall(json.decode, meta.dama)
    if not ok or type(d) ~= 'table' then error(string.format("checkpoint.load: '%s': bad 'dama' metadata: %s", path, d), 2) end
    info = d
  end
  local rep = {missing = {}, unexpected = {}, shape = {}, dtype = {}, optimizer = {}}
  local plans, claimed = {}, {}
  local models = models_of(opts)
  for _, e in ipairs(models) do
    local sd = state_dict_of(e.model, 'model')
    local r, load = match_model(path, file_ts, e.prefix, sd, opts.filter, claimed)
    for k, l in pairs(r) do for _, x in ipairs(l) do rep[k][#rep[k] + 1] = x end end
    plans[#plans + 1] = {model = e.model, sd = sd, load = load}
  end
  -- with several models, tensors under none of their prefixes are unexpected too (one model + prefix: ignored)
  if opts.models then
    for fname in pairs(file_ts) do
      if not claimed[fname] and fname:sub(1, #OPTIM_PREFIX) ~= OPTIM_PREFIX then rep.unexpected[#rep.unexpected + 1] = fname end
    end
    table.sort(rep.unexpected)
  end
  -- the optimizer's state, rebuilt from the 'optim.<field>.<key>' tensors and the JSON
  local osd
  if opts.optimizer then
    if not info.optimizer then
      rep.optimizer[#rep.optimizer + 1] = 'the file has no optimizer state'
    else
      osd = {type = info.optimizer.type, param_groups = info.optimizer.param_groups or {}, state = {}}
      for key, n in pairs(info.optimizer.steps or {}) do osd.state[key] = {step = n} end
      for fname, t in pairs(file_ts) do
        if fname:sub(1, #OPTIM_PREFIX) == OPTIM_PREFIX then
          local rest = fname:sub(#OPTIM_PREFIX + 1)
          local field, key = rest:match('^([%w_]+)%.(.+)$')
          if field then
            osd.state[key] = osd.state[key] or {}
            osd.state[key][field] = t
          end
        end
      end
      if type(opts.optimizer.check_state_dict) == 'function' then
        for _, p in ipairs(opts.optimizer:check_state_dict(osd)) do rep.optimizer[#rep.optimizer + 1] = p end
      end
    end
  end
  local text = report_text(path, rep)
  if text and strict then error(text, 2) end
  for _, p in ipairs(plans) do
    if type(p.model.load_state_dict) == 'function' then
      p.model:load_state_dict(p.load, strict)
    else
      for name, t in pairs(p.load) do p.sd[name]:copy_(t) end
    end
  end
  if osd and #rep.optimizer == 0 then opts.optimizer:load_state_dict(osd) end
  local rng
  if info.rng then
    rng = {seed = u64_from_string(info.rng.seed), offset = u64_from_string(info.rng.offset)}
    if opts.rng ~= false then tensor.set_rng_state(rng) end
  end
  return {step = info.step, epoch = info.epoch, cursor = info.cursor, extra = info.extra, rng = rng, metadata = meta,
          report = rep, tensors = (#models == 0) and file_ts or nil}
end

-- dama.save / dama.load: plain tensor files (installed on first use of this module).
do
  local ok, dama = pcall(require, 'dama')
  if ok and type(dama) == 'table' then
    if rawget(dama, 'save') == nil then rawset(dama, 'save', M.save_tensors) end
    if rawget(dama, 'load') == nil then rawset(dama, 'load', M.load_tensors) end
  end
end

return M
