-- dama.Tensor: the Lua face of the C tensor (runtime/api/core.h, runtime/api/ops.h).
--
-- Conventions (PyTorch's): dims and indices start at 0, negative ones count from the end; index
-- tensors returned by sort/argmax/topk hold 0-based i64 positions. Shapes are given as numbers
-- (`dama.zeros(3, 4)`) or one table (`dama.zeros{3, 4}`), optionally followed by a dtype name
-- ('f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64') or an options table {dtype=..., device=...}.
-- The default dtype is f32, also for tensors built from Lua tables of whole numbers.
--
-- A tensor is a Lua table {_c = <dama_tensor* cdata>} whose metatable is Tensor; the cdata carries a
-- finaliser, so tensors die with the GC, or at once with t:free(). Fields such as `grad` live in the
-- table (see dama.autograd).
local dffi = require 'dama.ffi'
local ffi, C = dffi.ffi, dffi.C
local call, check = dffi.call, dffi.check

local Tensor = {}
Tensor.__name = 'dama.Tensor'

local DTYPES = {[0] = 'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'}
local DTYPE_ID = {}
for id, name in pairs(DTYPES) do DTYPE_ID[name] = id end
local CTYPE = {[0] = 'float*', 'double*', 'uint16_t*', 'uint16_t*', 'uint8_t*', 'uint16_t*', 'int32_t*', 'int64_t*'}
local CPU = ffi.new('dama_device', {0, 0})

local outbox = ffi.new('dama_tensor*[1]')
local outbox2 = ffi.new('dama_tensor*[1]')
local shapebuf = ffi.new('int64_t[8]')
local shapebuf2 = ffi.new('int64_t[8]')
local dimbuf = ffi.new('int32_t[8]')
local dblbox = ffi.new('double[1]')
local i64box = ffi.new('int64_t[1]')

local function wrap(ptr)
  return setmetatable({_c = ffi.gc(ptr, C.dama_tensor_release)}, Tensor)
end
Tensor._wrap = wrap

local function is_tensor(x) return getmetatable(x) == Tensor end
Tensor.is_tensor = is_tensor

local function cptr(t, argname)
  if not is_tensor(t) then
    error(string.format('%s: expected a dama tensor, got %s', argname or 'argument', type(t)), 3)
  end
  local c = t._c
  if c == nil then error('tensor was freed (t:free() was called on it)', 3) end
  return c
end
Tensor._cptr = cptr

-- Wrap a C call that writes one new tensor into outbox.
local function new1(f, ...)
  outbox[0] = nil
  call(f, outbox, ...)
  return wrap(outbox[0])
end

local function parse_dtype(name, default)
  if name == nil then return default end
  if type(name) == 'number' then return name end
  local id = DTYPE_ID[name]
  if id then return id end
  local box = ffi.new('int32_t[1]')
  check(C.dama_dtype_parse(name, ffi.cast('dama_dtype*', box)))
  return box[0]
end
Tensor._parse_dtype = parse_dtype

-- Devices: 'cpu', 'cuda', 'cuda:N', 'sim' (the test device whose memory host code cannot read), or a
-- dama_device cdata. nil means the default device (dama.set_default_device; 'cpu' unless changed).
local default_device = CPU
local devbox = ffi.new('dama_device[1]')
-- One cached dama_device value per (type, index): passing a reference into a tensor's storage (st.device) by value
-- to C miscompiles under LuaJIT 2.1.0-beta3's JIT (a 0-d tensor comes back), and a cache allocates nothing.
local device_cache = {}
local function device_value(d)
  local ty, ix = tonumber(d.type), tonumber(d.index)
  if ty == 0 and ix == 0 then return CPU end
  local key = ty * 4096 + ix
  local v = device_cache[key]
  if not v then v = ffi.new('dama_device', {ty, ix}); device_cache[key] = v end
  return v
end

local function parse_device(dev)
  if dev == nil then return default_device end
  if dev == 'cpu' then return CPU end
  if type(dev) == 'cdata' and ffi.istype('dama_device', dev) then return device_value(dev) end
  if type(dev) ~= 'string' then
    error(string.format("device: expected 'cpu', 'cuda[:N]' or 'sim', got %s", tostring(dev)), 3)
  end
  local st = C.dama_device_parse(dev, devbox)
  if st ~= 0 then error(ffi.string(C.dama_last_error()), 3) end
  local d = device_value(devbox[0])
  st = C.dama_device_check(d)
  if st ~= 0 then error(ffi.string(C.dama_last_error()), 3) end
  return d
end
Tensor._parse_device = parse_device
local devstr = ffi.new('char[32]')
local function device_name(d)
  if d.type == 0 then return 'cpu' end
  return ffi.string(C.dama_device_str(d, devstr, 32))
end

-- Parse (n1, n2, ..., [dtype|opts]) or ({n1, n2, ...}, [dtype|opts]) into ndim, shapebuf, dtype, device.
local function parse_shape_args(op, ...)
  -- one packed table, not select('#', ...)/select(n, ...): LuaJIT 2.1.0-beta3's JIT mis-traces that pair when the
  -- last argument is an options table (a 0-d tensor came back after ~40 calls)
  local args = {...}
  local n = select('#', ...)
  local last = args[n]
  local dtype, device
  if type(last) == 'string' then dtype = last; n = n - 1
  elseif type(last) == 'table' and not is_tensor(last) and (last.dtype or last.device) and #last == 0 then
    dtype, device = last.dtype, last.device; n = n - 1
  end
  local first = args[1]
  local dims
  if n == 1 and type(first) == 'table' then dims = first
  else dims = {}; for i = 1, n do dims[i] = args[i] end end
  for i = 1, #dims do
    local d = dims[i]
    if type(d) ~= 'number' or d ~= math.floor(d) then
      error(string.format('%s: size of dim %d must be a whole number, got %s', op, i - 1, tostring(d)), 3)
    end
    shapebuf[i - 1] = d
  end
  return #dims, shapebuf, parse_dtype(dtype, 0), parse_device(device)
end

-- ---------------------------------------------------------------- queries

function Tensor.dim(t) return cptr(t).ndim end
Tensor.ndimension = Tensor.dim
-- numel and is_contiguous read the header's fields (JIT-compiled loads, no C call: autograd and nn.functional ask
-- them for every tensor they touch); they compute what dama_numel / dama_is_contiguous do.
function Tensor.numel(t)
  local c = cptr(t)
  local n = 1
  for i = 0, c.ndim - 1 do n = n * tonumber(c.shape[i]) end
  return n
end
Tensor.nelement = Tensor.numel

-- t:size() -> {3, 4}; t:size(d) -> the size of dim d (0-based, negative allowed)
function Tensor.size(t, d)
  local c = cptr(t)
  if d ~= nil then
    if d < 0 then d = d + c.ndim end
    if d < 0 or d >= c.ndim then
      error(string.format('size: dim %d is out of range for a tensor with %d dims', d, c.ndim), 2)
    end
    return tonumber(c.shape[d])
  end
  local s = {}
  for i = 0, c.ndim - 1 do s[i + 1] = tonumber(c.shape[i]) end
  return s
end

function Tensor.stride(t, d)
  local c = cptr(t)
  if d ~= nil then if d < 0 then d = d + c.ndim end return tonumber(c.strides[d]) end
  local s = {}
  for i = 0, c.ndim - 1 do s[i + 1] = tonumber(c.strides[i]) end
  return s
end

function Tensor.is_contiguous(t)
  local c = cptr(t)
  local st = 1
  for i = c.ndim - 1, 0, -1 do
    local n = tonumber(c.shape[i])
    if n ~= 1 and tonumber(c.strides[i]) ~= st then return false end
    st = st * n
  end
  return true
end

local function dtype_of(t) return DTYPES[cptr(t).dtype] end
function Tensor.type(t) return dtype_of(t) end
function Tensor.is_floating_point(t) return C.dama_dtype_is_float(cptr(t).dtype) ~= 0 end

local function device_of(t) return device_name(cptr(t).storage.device) end
-- t:is_host() -> true when t lives in host memory (the cpu device)
local function is_host(t) return cptr(t).storage.device.type == 0 end
Tensor.is_host = is_host

local function shape_string(t)
  local s = t:size()
  if #s == 0 then return 'scalar' end
  return table.concat(s, '×')
end
Tensor.shape_string = shape_string

-- Properties read as fields: t.shape, t.dtype, t.device, t.ndim.
local properties = {
  shape = Tensor.size,
  dtype = dtype_of,
  device = device_of,
  ndim = Tensor.dim,
}

-- The raw data for LuaJIT FFI loops: a typed pointer to element 0 of a contiguous CPU tensor
-- (float* for f32, int64_t* for i64, uint16_t* for bf16/f16/u16, ...), valid while t is alive: keep t in
-- a local (not a temporary such as x:contiguous():data(), and not across a tail call) while using it.
--   local m = dama.zeros(8, 64, 'u8'); local p = m:data()
--   for i = 0, m:numel() - 1 do p[i] = (i % 5 == 0) and 1 or 0 end
function Tensor.data(t)
  local c = cptr(t)
  if c.storage.device.type ~= 0 then
    error(string.format('data: the tensor is on %s, whose memory host code cannot read; use t:cpu() for a host ' ..
      'copy (and copy the result back with :to(device))', device_of(t)), 2)
  end
  if C.dama_is_contiguous(c) == 0 then
    error('data: tensor is not contiguous (strides ' .. table.concat(t:stride(), ',') .. '); call contiguous() first', 2)
  end
  return ffi.cast(CTYPE[c.dtype], C.dama_data_ptr(c))   -- host tensors only (checked above)
end

-- ---------------------------------------------------------------- creation

local M = {}   -- module-level functions (dama.zeros, ...), merged into `dama` by init.lua

function M.empty(...) local n, s, dt, dev = parse_shape_args('empty', ...) return new1(C.dama_empty, n, s, dt, dev) end
function M.zeros(...) local n, s, dt, dev = parse_shape_args('zeros', ...) return new1(C.dama_zeros, n, s, dt, dev) end
function M.ones(...)
  local n, s, dt, dev = parse_shape_args('ones', ...)
  local t = new1(C.dama_empty_op, 'ones', n, s, dt, dev)   -- errors say `ones:`, not `full:`
  call(C.dama_fill_, t._c, 1)
  return t
end
function M.full(shape, value, dtype)
  if type(value) ~= 'number' then error('full: expected a number as the fill value, got ' .. type(value), 2) end
  local n, s, dt, dev
  if dtype == nil then n, s, dt, dev = parse_shape_args('full', shape)
  else n, s, dt, dev = parse_shape_args('full', shape, dtype) end
  return new1(C.dama_full, n, s, value, dt, dev)
end

-- dtype, or {dtype =, device =}, as the last argument of a creation function -> dtype id, device
local function dtype_device(opt, default_dtype)
  if type(opt) == 'table' and not is_tensor(opt) then
    return parse_dtype(opt.dtype, default_dtype), parse_device(opt.device)
  end
  return parse_dtype(opt, default_dtype), parse_device(nil)
end

local function is_opt(v) return type(v) == 'string' or (type(v) == 'table' and not is_tensor(v)) end

function M.arange(a, b, step, dtype)
  if is_opt(b) then dtype, b = b, nil end
  if is_opt(step) then dtype, step = step, nil end
  if b == nil then a, b = 0, a end
  local dt, dev = dtype_device(dtype, 0)
  return new1(C.dama_arange, a, b, step or 1, dt, dev)
end

function M.linspace(a, b, steps, dtype)
  if is_opt(steps) then dtype, steps = steps, nil end
  local dt, dev = dtype_device(dtype, 0)
  return new1(C.dama_linspace, a, b, steps or 100, dt, dev)
end

-- Nested Lua tables (or a number) to a tensor. Ragged tables are an error naming the bad row.
function M.tensor(data, dtype)
  if is_tensor(data) then return data:clone() end
  local shape, flat = {}, {}
  if type(data) == 'number' then
    flat[1] = data
  elseif type(data) == 'boolean' then
    flat[1] = data and 1 or 0
  elseif type(data) == 'table' then
    local t = data
    while type(t) == 'table' do shape[#shape + 1] = #t; t = t[1] end
    local depth = #shape
    local function walk(x, d, path)
      if d > depth then
        local v = x
        if type(v) == 'boolean' then v = v and 1 or 0 end
        if type(v) ~= 'number' then
          error(string.format('tensor: expected a number at %s, got %s', path, type(v)), 4)
        end
        flat[#flat + 1] = v
        return
      end
      if type(x) ~= 'table' or #x ~= shape[d] then
        error(string.format('tensor: ragged nested table at %s: expected %d entries, got %s', path, shape[d],
          type(x) == 'table' and #x or type(x)), 4)
      end
      for i = 1, shape[d] do walk(x[i], d + 1, path .. '[' .. i .. ']') end
    end
    walk(data, 1, 'data')
  else
    error('tensor: expected a table of numbers or a number, got ' .. type(data), 2)
  end
  local n = #flat
  local buf = ffi.new('double[?]', n > 0 and n or 1)
  for i = 1, n do buf[i - 1] = flat[i] end
  for i = 1, #shape do shapebuf[i - 1] = shape[i] end
  local dt, dev = dtype_device(dtype, 0)
  return new1(C.dama_from_buffer, #shape, shapebuf, dt, buf, 1, dev)
end

-- ---------------------------------------------------------------- random numbers (Philox)

function M.manual_seed(seed) C.dama_manual_seed(seed) end
function M.rng_state()
  local r = C.dama_default_rng()
  return {seed = r.seed, offset = r.offset}
end
function M.set_rng_state(s)
  local r = C.dama_default_rng()
  r.seed = s.seed; r.offset = s.offset
end

-- an empty tensor whose shape errors name the calling function (`randn: shape [...] has 2^93 elements`)
local function empty_for(op, ...)
  local n, s, dt, dev = parse_shape_args(op, ...)
  return new1(C.dama_empty_op, op, n, s, dt, dev)
end
function M.rand(...) local t = empty_for('rand', ...) call(C.dama_uniform_, t._c, 0, 1, nil) return t end
function M.randn(...) local t = empty_for('randn', ...) call(C.dama_normal_, t._c, 0, 1, nil) return t end
-- randint(low, high, shape, [dtype]) or randint(high, shape): integers in [low, high), i64 by default
function M.randint(low, high, shape, dtype)
  if type(high) == 'table' then low, high, shape, dtype = 0, low, high, shape end
  local t = empty_for('randint', shape, dtype or 'i64')
  call(C.dama_randint_, t._c, low, high, nil)
  return t
end
function M.randperm(n, dtype)
  local dt, dev = dtype_device(dtype, 7)
  return new1(C.dama_randperm, n, dt, nil, dev)
end

-- ---------------------------------------------------------------- allocation on another tensor's device

-- t:new_empty(shape[, dtype]) -> an uninitialised tensor on t's device (t's dtype by default)
function Tensor.new_empty(t, shape, dtype)
  return M.empty(shape, {dtype = dtype or DTYPES[cptr(t).dtype], device = device_value(cptr(t).storage.device)})
end
-- t:new_zeros(shape[, dtype]) -> zeros on t's device (t's dtype by default)
function Tensor.new_zeros(t, shape, dtype)
  return M.zeros(shape, {dtype = dtype or DTYPES[cptr(t).dtype], device = device_value(cptr(t).storage.device)})
end
-- t:new_full(shape, value[, dtype]) -> a tensor of value on t's device
function Tensor.new_full(t, shape, value, dtype)
  return M.full(shape, value, {dtype = dtype or DTYPES[cptr(t).dtype], device = device_value(cptr(t).storage.device)})
end
-- t:new_tensor(data[, dtype]) -> dama.tensor(data) on t's device (t's dtype by default)
function Tensor.new_tensor(t, data, dtype)
  return M.tensor(data, {dtype = dtype or DTYPES[cptr(t).dtype], device = device_value(cptr(t).storage.device)})
end
-- zeros_like(t[, dtype]) -> zeros of t's shape on t's device
function M.zeros_like(t, dtype) return Tensor.new_zeros(t, t:size(), dtype) end
-- ones_like(t[, dtype]) -> ones of t's shape on t's device
function M.ones_like(t, dtype) return Tensor.new_full(t, t:size(), 1, dtype) end
-- empty_like(t[, dtype]) -> an uninitialised tensor of t's shape on t's device
function M.empty_like(t, dtype) return Tensor.new_empty(t, t:size(), dtype) end
-- full_like(t, value[, dtype]) -> value in t's shape on t's device
function M.full_like(t, value, dtype) return Tensor.new_full(t, t:size(), value, dtype) end

-- ---------------------------------------------------------------- devices

-- device(d) -> the canonical name of a device ('cpu', 'cuda:0', 'sim:0'); raises for one this build or machine lacks
function M.device(d) return device_name(parse_device(d)) end
-- set_default_device(d) -- the device creation functions use when given none ('cpu' at start)
function M.set_default_device(d) default_device = parse_device(d or 'cpu') end
-- get_default_device() -> the name of the device creation functions use when given none
function M.get_default_device() return device_name(default_device) end
-- device_count(kind) -> how many devices of a kind ('cpu', 'cuda', 'sim') there are
function M.device_count(kind)
  local types = {cpu = 0, cuda = 1, sim = 2}
  local ty = types[kind or 'cuda']
  if not ty then error("device_count: expected 'cpu', 'cuda' or 'sim', got " .. tostring(kind), 2) end
  return C.dama_device_count(ty)
end
-- cuda_available() -> true when a CUDA device can be used
function M.cuda_available() return C.dama_device_count(1) > 0 end
-- device_reads() -> device-to-host reads since the last reset (one per item(), per copy to the host, ...)
function M.device_reads() return tonumber(C.dama_device_reads()) end
-- reset_device_reads() -- start counting device-to-host reads from zero
function M.reset_device_reads() C.dama_device_reads_reset() end
-- synchronize([device]) -- wait for the device's queued work (no-op on cpu and sim)
function M.synchronize(d) call(C.dama_synchronize, parse_device(d)) end

function Tensor.uniform_(t, lo, hi) call(C.dama_uniform_, cptr(t), lo or 0, hi or 1, nil) return t end
function Tensor.normal_(t, mean, std) call(C.dama_normal_, cptr(t), mean or 0, std or 1, nil) return t end

-- ---------------------------------------------------------------- views and copies

local function shape_from(op, ...)
  local first = ...
  local dims = type(first) == 'table' and first or {...}
  for i = 1, #dims do shapebuf2[i - 1] = dims[i] end
  return #dims, shapebuf2
end

function Tensor.view(t, ...) local n, s = shape_from('view', ...) return new1(C.dama_view, cptr(t), n, s) end
function Tensor.reshape(t, ...) local n, s = shape_from('reshape', ...) return new1(C.dama_reshape, cptr(t), n, s) end
function Tensor.expand(t, ...) local n, s = shape_from('expand', ...) return new1(C.dama_expand, cptr(t), n, s) end
function Tensor.expand_as(t, o) return t:expand(o:size()) end
function Tensor.view_as(t, o) return t:view(o:size()) end
function Tensor.flatten(t) return t:reshape(-1) end
function Tensor.transpose(t, d0, d1) return new1(C.dama_transpose, cptr(t), d0 or 0, d1 or 1) end
Tensor.t = function(t) return t:transpose(0, 1) end
function Tensor.permute(t, ...)
  local first = ...
  local dims = type(first) == 'table' and first or {...}
  if #dims ~= t:dim() then
    error(string.format('permute: expected %d dims, got %d', t:dim(), #dims), 2)
  end
  for i = 1, #dims do dimbuf[i - 1] = dims[i] end
  return new1(C.dama_permute, cptr(t), dimbuf)
end
function Tensor.narrow(t, dim, start, length) return new1(C.dama_narrow, cptr(t), dim, start, length) end
-- slice(dim, start, end, step): Python-style [start:end:step], end exclusive, negatives allowed
function Tensor.slice(t, dim, start, stop, step)
  return new1(C.dama_slice, cptr(t), dim, start or 0, stop or 2^62, step or 1)
end
function Tensor.select(t, dim, index) return new1(C.dama_select, cptr(t), dim, index) end
function Tensor.squeeze(t, dim) return new1(C.dama_squeeze, cptr(t), dim or -100) end
function Tensor.unsqueeze(t, dim) return new1(C.dama_unsqueeze, cptr(t), dim) end
function Tensor.contiguous(t) return new1(C.dama_contiguous, cptr(t)) end
function Tensor.clone(t) return new1(C.dama_clone, cptr(t)) end
function Tensor.copy_(t, src)
  if type(src) == 'number' then call(C.dama_fill_, cptr(t), src) return t end
  call(C.dama_copy_, cptr(t), cptr(src, 'copy_ source'))
  return t
end
function Tensor.fill_(t, v) call(C.dama_fill_, cptr(t), v) return t end
function Tensor.zero_(t) return t:fill_(0) end
local function is_device_name(v)
  return (type(v) == 'string' and (v == 'cpu' or v:match('^cuda') or v:match('^sim'))) or
         (type(v) == 'cdata' and ffi.istype('dama_device', v))
end

local function same_device(a, b) return a.type == b.type and a.index == b.index end

-- t:to(dtype), t:to(device) or t:to{dtype =, device =, non_blocking =}: t itself when nothing changes, else a new
-- tensor. non_blocking = true from pinned host memory (t:pin_memory()) lets the copy run after :to returns (see
-- dama.Event and the ordering rules at dama_synchronize in runtime/api/core.h); otherwise it changes nothing.
function Tensor.to(t, what)
  local dtype, device, non_blocking
  if type(what) == 'table' and not is_tensor(what) then
    dtype, device, non_blocking = what.dtype, what.device, what.non_blocking
  elseif is_device_name(what) then device = what
  else dtype = what end
  local r = t
  if device ~= nil then
    local d = parse_device(device)
    if not same_device(d, cptr(t).storage.device) then
      r = new1(non_blocking and C.dama_to_device_async or C.dama_to_device, cptr(t), d)
    end
  end
  if dtype ~= nil then
    local id = parse_dtype(dtype)
    if id ~= cptr(r).dtype then r = new1(C.dama_to_dtype, cptr(r), id) end
  end
  return r
end
-- t:cpu() -> t on the host (t itself when it is there)
function Tensor.cpu(t) return t:to('cpu') end
-- t:cuda([n]) -> t on cuda:n (default 0)
function Tensor.cuda(t, n) return t:to('cuda:' .. (n or 0)) end
-- t:pin_memory([device]) -> a copy of host tensor t in pinned memory for copies to `device` (default: the default
-- device), whose :to{device =, non_blocking = true} may run asynchronously; ordinary host memory where the device
-- offers none (cpu). t itself when it is already pinned.
function Tensor.pin_memory(t, device)
  local c = cptr(t)
  if c.storage.device.type ~= 0 then error('pin_memory: expected a host tensor, got one on ' .. t.device, 2) end
  if c.storage.pinned ~= 0 then return t end
  local d = device ~= nil and parse_device(device) or default_device
  for i = 0, c.ndim - 1 do shapebuf[i] = c.shape[i] end
  local r = new1(C.dama_empty_pinned, c.ndim, shapebuf, c.dtype, d)
  call(C.dama_copy_, cptr(r), c)
  return r
end
-- t:is_pinned() -> whether t lives in pinned host memory
function Tensor.is_pinned(t) return C.dama_is_pinned(cptr(t)) ~= 0 end
-- empty_pinned(shape, {dtype =, device =}) -> an uninitialised host tensor in memory pinned for `device`
function M.empty_pinned(shape, opts)
  opts = opts or {}
  local n, s = shape_from('empty_pinned', shape)
  local d = opts.device ~= nil and parse_device(opts.device) or default_device
  return new1(C.dama_empty_pinned, n, s, parse_dtype(opts.dtype or 'f32'), d)
end

local Event = {}
Event.__index = Event
local event_box = ffi.new('dama_event *[1]')
-- Event(device): a mark in the device's queue. ev:record() marks the work issued so far, ev:wait() blocks until it
-- has run (e.g. before rewriting a pinned buffer whose non_blocking copy was issued before the record).
function M.Event(device)
  local d = device ~= nil and parse_device(device) or default_device
  call(C.dama_event_create, event_box, d)
  return setmetatable({_e = ffi.gc(event_box[0], C.dama_event_destroy), device = device_name(d)}, Event)
end
function Event:record() call(C.dama_event_record, self._e) return self end
function Event:wait() call(C.dama_event_wait, self._e) return self end

local memstat_box = ffi.new('dama_device_memory[1]')
-- memory_stats([device]) -> {allocated, peak, cached, total, free} in bytes for one device (default: the default
-- device): tensor storage held there now and at peak, the allocator's cache, the device's total and free memory.
function M.memory_stats(device)
  local d = device ~= nil and parse_device(device) or default_device
  call(C.dama_device_memory_stats, d, memstat_box)
  local m = memstat_box[0]
  return {allocated = tonumber(m.allocated), peak = tonumber(m.peak), cached = tonumber(m.cached),
          total = tonumber(m.total), free = tonumber(m.free), device = device_name(d)}
end
-- empty_cache([device]) -- give the device allocator's cached blocks back (nothing to do on cpu and sim)
function M.empty_cache(device) call(C.dama_device_empty_cache, device ~= nil and parse_device(device) or default_device) end

-- t:device_of() -> the dama_device cdata of t (t.device is its name)
function Tensor.device_of(t) return device_value(cptr(t).storage.device) end
for name, dt in pairs{float = 'f32', double = 'f64', long = 'i64', int = 'i32', byte = 'u8', half = 'f16',
                      bfloat16 = 'bf16'} do
  Tensor[name] = function(t) return t:to(dt) end
end

-- Free the storage reference now instead of waiting for the GC; t is unusable afterwards.
function Tensor.free(t)
  local c = rawget(t, '_c')
  if c ~= nil then
    ffi.gc(c, nil)
    C.dama_tensor_release(c)
    rawset(t, '_c', nil)
  end
end

-- ---------------------------------------------------------------- element access

local function scalar_value(t)
  local c = cptr(t)
  if C.dama_numel(c) ~= 1 then
    error('item: expected a tensor with one element, got shape ' .. shape_string(t), 3)
  end
  for i = 0, c.ndim - 1 do shapebuf[i] = 0 end
  call(C.dama_get, c, shapebuf, dblbox)
  return dblbox[0]
end
function Tensor.item(t) return scalar_value(t) end

-- t:get(i, j, ...) / t:set(value, i, j, ...): one element by full index
function Tensor.get(t, ...)
  local c = cptr(t)
  local n = select('#', ...)
  if n ~= c.ndim then error(string.format('get: expected %d indices, got %d', c.ndim, n), 2) end
  for i = 1, n do shapebuf[i - 1] = select(i, ...) end
  call(C.dama_get, c, shapebuf, dblbox)
  return dblbox[0]
end

function Tensor.set(t, value, ...)
  local c = cptr(t)
  local n = select('#', ...)
  if n ~= c.ndim then error(string.format('set: expected %d indices, got %d', c.ndim, n), 2) end
  for i = 1, n do shapebuf[i - 1] = select(i, ...) end
  call(C.dama_set, c, shapebuf, value)
  return t
end

-- t[{i, j}]: numbers select, {a, b} (or {a, b, step}) slices [a, b), and 'all' or {} keeps a dim
local function index_view(t, key)
  local v, dim = t, 0
  for k = 1, #key do
    local e = key[k]
    if type(e) == 'number' then
      v = v:select(dim, e)
    elseif e == 'all' or (type(e) == 'table' and #e == 0) then
      dim = dim + 1
    elseif type(e) == 'table' then
      v = v:slice(dim, e[1] or 0, e[2] or 2^62, e[3] or 1)
      dim = dim + 1
    else
      error('index: expected numbers, {start, stop[, step]} ranges or "all", got ' .. type(e), 3)
    end
  end
  return v
end

local function tensor_index(t, k)
  local kt = type(k)
  if kt == 'string' then
    local p = properties[k]
    if p then return p(t) end
    return Tensor[k]
  elseif kt == 'number' then
    local c = cptr(t)
    if c.ndim == 1 then
      shapebuf[0] = k
      call(C.dama_get, c, shapebuf, dblbox)
      return dblbox[0]
    end
    return t:select(0, k)
  elseif kt == 'table' then
    local c = cptr(t)
    local all_numbers = #k == c.ndim
    for i = 1, #k do if type(k[i]) ~= 'number' then all_numbers = false end end
    if all_numbers then
      for i = 1, #k do shapebuf[i - 1] = k[i] end
      call(C.dama_get, c, shapebuf, dblbox)
      return dblbox[0]
    end
    return index_view(t, k)
  end
  return nil
end

local function tensor_newindex(t, k, v)
  local kt = type(k)
  if kt == 'number' or kt == 'table' then
    local c = cptr(t)
    if kt == 'number' and c.ndim == 1 and type(v) == 'number' then
      shapebuf[0] = k
      call(C.dama_set, c, shapebuf, v)
      return
    end
    local target
    if kt == 'table' and #k == c.ndim and type(v) == 'number' then
      local all_numbers = true
      for i = 1, #k do if type(k[i]) ~= 'number' then all_numbers = false end end
      if all_numbers then
        for i = 1, #k do shapebuf[i - 1] = k[i] end
        call(C.dama_set, c, shapebuf, v)
        return
      end
    end
    target = kt == 'number' and t:select(0, k) or index_view(t, k)
    target:copy_(v)
    return
  end
  rawset(t, k, v)
end

Tensor.__index = tensor_index
Tensor.__newindex = tensor_newindex
Tensor.__len = function(t) return cptr(t).ndim > 0 and tonumber(cptr(t).shape[0]) or 0 end

-- Nested Lua tables of numbers (1-based, as Lua tables are).
function Tensor.totable(t)
  local c = cptr(t)
  if c.ndim == 0 then return scalar_value(t) end
  local d = t:contiguous():to('f64'):cpu()   -- one copy to the host for a device tensor
  local p = ffi.cast('double*', C.dama_data_ptr(d._c))
  local shape = t:size()
  local pos = 0
  local function build(dim)
    local r = {}
    for i = 1, shape[dim] do
      if dim == #shape then r[i] = p[pos]; pos = pos + 1 else r[i] = build(dim + 1) end
    end
    return r
  end
  -- not a tail call: this frame keeps `d`, the owner of the memory p points into, alive until build is done
  local r = build(1)
  return r
end

-- ---------------------------------------------------------------- element-wise math

local BINOP = {add = 0, sub = 1, mul = 2, div = 3, pow = 4, maximum = 5, minimum = 6,
               eq = 7, ne = 8, lt = 9, le = 10, gt = 11, ge = 12}
local UNOP = {neg = 0, exp = 1, log = 2, sqrt = 3, abs = 4, sin = 5, cos = 6, tanh = 7, sigmoid = 8,
              relu = 9, rsqrt = 10, square = 11, reciprocal = 12, sign = 13, floor = 14, ceil = 15,
              round = 16, erf = 17, gelu = 18}
Tensor._BINOP, Tensor._UNOP = BINOP, UNOP

local function binary(op, a, b)
  local code = BINOP[op]
  if type(b) == 'number' then
    return new1(C.dama_binary_scalar, code, cptr(a, op), b, 0)
  elseif type(a) == 'number' then
    return new1(C.dama_binary_scalar, code, cptr(b, op), a, 1)
  end
  return new1(C.dama_binary, code, cptr(a, op), cptr(b, op))
end
Tensor._binary = binary

for op, code in pairs(BINOP) do
  Tensor[op] = function(a, b) return binary(op, a, b) end
  Tensor[op .. '_'] = function(a, b)
    if type(b) == 'number' then call(C.dama_binary_scalar_, cptr(a), code, b)
    else call(C.dama_binary_, cptr(a), code, cptr(b, op .. '_')) end
    return a
  end
end
for op, code in pairs(UNOP) do
  Tensor[op] = function(a) return new1(C.dama_unary, code, cptr(a)) end
  Tensor[op .. '_'] = function(a) call(C.dama_unary_, cptr(a), code) return a end
end

Tensor.__add = function(a, b) if is_tensor(a) then return a:add(b) end return b:add(a) end
Tensor.__sub = function(a, b) if is_tensor(a) then return a:sub(b) end return binary('sub', a, b) end
Tensor.__mul = function(a, b) if is_tensor(a) then return a:mul(b) end return b:mul(a) end
Tensor.__div = function(a, b) if is_tensor(a) then return a:div(b) end return binary('div', a, b) end
Tensor.__pow = function(a, b) if is_tensor(a) then return a:pow(b) end return binary('pow', a, b) end
Tensor.__unm = function(a) return a:neg() end

function Tensor.clamp(t, lo, hi) return new1(C.dama_clamp, cptr(t), lo or -math.huge, hi or math.huge) end
function Tensor.clamp_(t, lo, hi) call(C.dama_clamp_, cptr(t), lo or -math.huge, hi or math.huge) return t end

local function as_tensor_like(x, ref)
  if is_tensor(x) then return x end
  return M.full({}, x, ref.dtype)
end

-- where(cond, a, b): a and b may be numbers
function M.where(cond, a, b)
  local ref = is_tensor(a) and a or (is_tensor(b) and b or cond)
  return new1(C.dama_where, cptr(cond, 'where condition'), cptr(as_tensor_like(a, ref)), cptr(as_tensor_like(b, ref)))
end
function Tensor.where(cond, a, b) return M.where(cond, a, b) end
function Tensor.masked_fill_(t, mask, value) call(C.dama_masked_fill_, cptr(t), cptr(mask, 'mask'), value) return t end
function Tensor.masked_fill(t, mask, value) return t:clone():masked_fill_(mask, value) end

function Tensor.count_nonfinite(t)
  call(C.dama_count_nonfinite, cptr(t), i64box)
  return tonumber(i64box[0])
end

-- ---------------------------------------------------------------- reductions

local REDOP = {sum = 0, mean = 1, var = 2, std = 3, amax = 4, amin = 5, argmax = 6, argmin = 7, norm = 8, prod = 9}

-- dims: nil (all), a number, or a table of numbers
local function dims_arg(dims)
  if dims == nil then return 0 end
  if type(dims) == 'number' then dimbuf[0] = dims return 1 end
  for i = 1, #dims do dimbuf[i - 1] = dims[i] end
  return #dims
end

local function reduce(op, t, dims, keepdim, correction, p)
  local nd = dims_arg(dims)
  return new1(C.dama_reduce, REDOP[op], cptr(t), nd, dimbuf, keepdim and 1 or 0, correction or 0, p or 2)
end
Tensor._reduce = reduce

function Tensor.sum(t, dims, keepdim) return reduce('sum', t, dims, keepdim) end
function Tensor.mean(t, dims, keepdim) return reduce('mean', t, dims, keepdim) end
function Tensor.prod(t, dims, keepdim) return reduce('prod', t, dims, keepdim) end
-- var/std: unbiased (correction 1) by default, like torch; pass unbiased = false for the biased form
function Tensor.var(t, dims, unbiased, keepdim)
  return reduce('var', t, dims, keepdim, unbiased == false and 0 or 1)
end
function Tensor.std(t, dims, unbiased, keepdim)
  return reduce('std', t, dims, keepdim, unbiased == false and 0 or 1)
end
function Tensor.norm(t, p, dims, keepdim) return reduce('norm', t, dims, keepdim, 0, p or 2) end
function Tensor.amax(t, dims, keepdim) return reduce('amax', t, dims, keepdim) end
function Tensor.amin(t, dims, keepdim) return reduce('amin', t, dims, keepdim) end
function Tensor.argmax(t, dim, keepdim) return reduce('argmax', t, dim, keepdim) end
function Tensor.argmin(t, dim, keepdim) return reduce('argmin', t, dim, keepdim) end
-- max()/min(): the largest value as a 0-dim tensor; max(dim[, keepdim]): values, indices
function Tensor.max(t, dim, keepdim)
  if dim == nil then return reduce('amax', t) end
  outbox[0] = nil; outbox2[0] = nil
  call(C.dama_max_dim, outbox, outbox2, cptr(t), dim, keepdim and 1 or 0)
  return wrap(outbox[0]), wrap(outbox2[0])
end
function Tensor.min(t, dim, keepdim)
  if dim == nil then return reduce('amin', t) end
  outbox[0] = nil; outbox2[0] = nil
  call(C.dama_min_dim, outbox, outbox2, cptr(t), dim, keepdim and 1 or 0)
  return wrap(outbox[0]), wrap(outbox2[0])
end

-- ---------------------------------------------------------------- matmul, sort, indexing, joins

function Tensor.matmul(a, b) return new1(C.dama_matmul, cptr(a, 'matmul'), cptr(b, 'matmul')) end
Tensor.mm = Tensor.matmul
Tensor.bmm = Tensor.matmul

-- sort(dim = -1, descending = false, stable = true) -> values, indices
function Tensor.sort(t, dim, descending, stable)
  outbox[0] = nil; outbox2[0] = nil
  call(C.dama_sort, outbox, outbox2, cptr(t), dim or -1, descending and 1 or 0, stable == false and 0 or 1)
  return wrap(outbox[0]), wrap(outbox2[0])
end
function Tensor.argsort(t, dim, descending, stable)
  return new1(C.dama_argsort, cptr(t), dim or -1, descending and 1 or 0, stable == false and 0 or 1)
end
-- topk(k, dim = -1, largest = true, sorted = true) -> values, indices
function Tensor.topk(t, k, dim, largest, sorted)
  outbox[0] = nil; outbox2[0] = nil
  call(C.dama_topk, outbox, outbox2, cptr(t), k, dim or -1, largest == false and 0 or 1, sorted == false and 0 or 1)
  return wrap(outbox[0]), wrap(outbox2[0])
end

function Tensor.gather(t, dim, index) return new1(C.dama_gather, cptr(t), dim, cptr(index, 'gather index')) end
function Tensor.scatter_(t, dim, index, src)
  if type(src) == 'number' then src = M.full(index:size(), src, t.dtype) end
  call(C.dama_scatter_, cptr(t), dim, cptr(index, 'scatter index'), cptr(src, 'scatter source'), 0)
  return t
end
function Tensor.scatter_add_(t, dim, index, src)
  call(C.dama_scatter_, cptr(t), dim, cptr(index, 'scatter index'), cptr(src, 'scatter source'), 1)
  return t
end
function Tensor.scatter(t, dim, index, src) return t:clone():scatter_(dim, index, src) end
function Tensor.index_select(t, dim, index)
  return new1(C.dama_index_select, cptr(t), dim, cptr(index, 'index_select index'))
end

local function tensor_array(op, ts)
  if type(ts) ~= 'table' or is_tensor(ts) then
    error(op .. ': expected a table of tensors', 3)
  end
  local arr = ffi.new('dama_tensor*[?]', math.max(#ts, 1))
  for i = 1, #ts do
    if not is_tensor(ts[i]) then
      error(string.format('%s: element %d is a %s, expected a tensor', op, i, type(ts[i])), 3)
    end
    arr[i - 1] = cptr(ts[i])
  end
  return arr, #ts
end

function M.cat(ts, dim)
  local arr, n = tensor_array('cat', ts)
  return new1(C.dama_cat, n, arr, dim or 0)
end
function M.stack(ts, dim)
  local arr, n = tensor_array('stack', ts)
  return new1(C.dama_stack, n, arr, dim or 0)
end

-- ---------------------------------------------------------------- printing

local function fmt_number(v, is_float)
  if not is_float then return string.format('%d', v) end
  if v ~= v then return 'nan' end
  if v == math.huge then return 'inf' elseif v == -math.huge then return '-inf' end
  if v == math.floor(v) and math.abs(v) < 1e15 then return string.format('%d', v) end
  return string.format('%.4g', v)
end

local MAX_SHOW = 6   -- per dim, shown as first 3 ... last 3 beyond this

local function indices_to_show(n)
  if n <= MAX_SHOW then
    local r = {} for i = 0, n - 1 do r[#r + 1] = i end return r
  end
  return {0, 1, 2, false, n - 3, n - 2, n - 1}
end

local function format_values(t)
  if not is_host(t) then t = t:cpu() end   -- printing reads every element: one copy, not one read each
  local c = cptr(t)
  local is_float = C.dama_dtype_is_float(c.dtype) ~= 0
  if c.ndim == 0 then return fmt_number(scalar_value(t), is_float) end
  local strs, width = {}, 0
  -- collect the strings first to align columns
  local function cell(idx)
    for i = 1, #idx do shapebuf[i - 1] = idx[i] end
    check(C.dama_get(c, shapebuf, dblbox))
    local s = fmt_number(dblbox[0], is_float)
    if #s > width then width = #s end
    return s
  end
  local shape = t:size()
  local function build(prefix)
    local d = #prefix + 1
    local node = {}
    for _, i in ipairs(indices_to_show(shape[d])) do
      if i == false then node[#node + 1] = false
      else
        local idx = {unpack(prefix)}; idx[d] = i
        if d == #shape then node[#node + 1] = cell(idx) else node[#node + 1] = build(idx) end
      end
    end
    return node
  end
  if C.dama_numel(c) == 0 then return '[]' end
  local tree = build({})
  local function render(node, indent, d)
    if d == #shape then
      local parts = {}
      for _, s in ipairs(node) do
        parts[#parts + 1] = s == false and string.rep(' ', width - 3) .. '...' or string.rep(' ', width - #s) .. s
      end
      return '[' .. table.concat(parts, ', ') .. ']'
    end
    local rows = {}
    for _, sub in ipairs(node) do
      rows[#rows + 1] = sub == false and '...' or render(sub, indent .. ' ', d + 1)
    end
    local sep = ',\n' .. string.rep('\n', #shape - d - 1) .. indent .. ' '
    return '[' .. table.concat(rows, sep) .. ']'
  end
  strs = render(tree, '', 1)
  return strs
end

-- 0-dim tensors print as their value (so print(t:sum()) prints 54); others print their values
-- followed by a line with dtype, shape and device.
function Tensor.__tostring(t)
  local c = rawget(t, '_c')
  if c == nil then return 'dama.Tensor (freed)' end
  local body = format_values(t)
  if c.ndim == 0 then return body end
  local extra = ''
  if rawget(t, 'requires_grad') then extra = ', requires_grad' end
  return string.format('%s\n[%s tensor, shape %s, %s%s]', body, dtype_of(t), shape_string(t), device_of(t), extra)
end

-- One line, for tables and the REPL's summaries.
function Tensor.summary(t)
  if rawget(t, '_c') == nil then return 'dama.Tensor (freed)' end
  return string.format('dama.Tensor(%s, %s, %s)', shape_string(t), dtype_of(t), device_of(t))
end

-- ---------------------------------------------------------------- doc text (help(x.sum), ?Tensor:view)
-- Most methods are made in loops above or wrapped by dama.autograd, so their doc text is kept here by name.
local DOCS = {
  dim = 'x:dim() -- the number of dimensions (also x:ndimension())',
  ndimension = 'x:ndimension() -- the number of dimensions (= x:dim())',
  numel = 'x:numel() -- the number of elements (also x:nelement())',
  nelement = 'x:nelement() -- the number of elements (= x:numel())',
  size = 'x:size([d]) -- the shape as a Lua table of numbers, or the size of dim d (0-based; negative counts from the end)',
  stride = 'x:stride([d]) -- the strides in elements, as a table, or the stride of dim d',
  is_contiguous = 'x:is_contiguous() -- true if the elements lie in row-major order without gaps',
  type = "x:type() -- the dtype name: 'f32', 'f64', 'f16', 'bf16', 'i64', 'i32', 'u8', ...",
  is_floating_point = 'x:is_floating_point() -- true for f32, f64, f16 and bf16',
  shape_string = "x:shape_string() -- the shape as text, e.g. '[2, 16, 448]'",
  data = 'x:data() -- the raw FFI pointer of a contiguous tensor (float * for f32), for fast LuaJIT loops',
  uniform_ = 'x:uniform_([lo = 0[, hi = 1]]) -- fill in place with U[lo, hi) from the Philox generator',
  normal_ = 'x:normal_([mean = 0[, std = 1]]) -- fill in place with N(mean, std^2) from the Philox generator',
  view = 'x:view(d0, d1, ...) -- the same storage with another shape (one dim may be -1); x must be contiguous',
  reshape = 'x:reshape(d0, d1, ...) -- another shape (one dim may be -1): a view when possible, else a copy',
  expand = 'x:expand(d0, d1, ...) -- broadcast size-1 dims to the given sizes without copying (-1 keeps a dim)',
  expand_as = 'x:expand_as(y) -- x:expand to the shape of y',
  view_as = 'x:view_as(y) -- x:view to the shape of y',
  flatten = 'x:flatten() -- a 1-D tensor of all the elements',
  transpose = 'x:transpose(d0, d1) -- a view with dims d0 and d1 swapped',
  t = 'x:t() -- the transpose of a 2-D tensor (a view)',
  permute = 'x:permute(d0, d1, ...) -- a view with the dims reordered',
  narrow = 'x:narrow(dim, start, length) -- a view of length elements of dim from start (0-based)',
  slice = 'x:slice(dim, start, stop[, step]) -- a view of [start, stop) along dim (0-based, Python-style)',
  select = 'x:select(dim, index) -- a view at index of dim, with that dim removed',
  squeeze = 'x:squeeze([dim]) -- remove size-1 dims (all, or just dim)',
  unsqueeze = 'x:unsqueeze(dim) -- insert a size-1 dim at dim',
  contiguous = 'x:contiguous() -- x itself if contiguous, else a row-major copy',
  clone = 'x:clone() -- a contiguous copy (differentiable)',
  copy_ = 'x:copy_(src) -- copy src into x in place (broadcasts, converts dtype); returns x',
  fill_ = 'x:fill_(v) -- set every element to the number v; returns x',
  zero_ = 'x:zero_() -- set every element to 0; returns x',
  to = "x:to(dtype) -- a copy converted to dtype ('f32', 'f64', 'f16', 'bf16', 'i64', 'i32', 'u8', ...); x if already",
  float = "x:float() -- x:to('f32')", double = "x:double() -- x:to('f64')", half = "x:half() -- x:to('f16')",
  bfloat16 = "x:bfloat16() -- x:to('bf16')", long = "x:long() -- x:to('i64')", int = "x:int() -- x:to('i32')",
  byte = "x:byte() -- x:to('u8')",
  free = 'x:free() -- release the storage now (the tensor must not be used afterwards)',
  item = 'x:item() -- the value of a one-element tensor as a Lua number',
  get = 'x:get(i, j, ...) -- one element as a Lua number (0-based indices)',
  set = 'x:set(value, i, j, ...) -- set one element (0-based indices); returns x',
  totable = 'x:totable() -- the values as nested Lua tables',
  clamp = 'x:clamp([lo[, hi]]) -- elements limited to [lo, hi] (nil: no bound)',
  clamp_ = 'x:clamp_([lo[, hi]]) -- clamp in place; returns x',
  where = 'cond:where(a, b) -- elementwise a where cond ~= 0, else b (a, b: tensors or numbers; broadcasts)',
  masked_fill = 'x:masked_fill(mask, value) -- a copy of x with value where mask ~= 0',
  masked_fill_ = 'x:masked_fill_(mask, value) -- set value where mask ~= 0, in place; returns x',
  count_nonfinite = 'x:count_nonfinite() -- the number of NaN and infinite elements',
  sum = 'x:sum([dims[, keepdim]]) -- the sum over dims (a number or a table of dims; all when nil)',
  mean = 'x:mean([dims[, keepdim]]) -- the mean over dims (all when nil)',
  prod = 'x:prod([dims[, keepdim]]) -- the product over dims (all when nil)',
  var = 'x:var([dims[, unbiased = true[, keepdim]]]) -- the variance over dims (÷(n-1) when unbiased)',
  std = 'x:std([dims[, unbiased = true[, keepdim]]]) -- the standard deviation over dims',
  norm = 'x:norm([p = 2[, dims[, keepdim]]]) -- the p-norm over dims (all when nil)',
  amax = 'x:amax([dims[, keepdim]]) -- the maximum over dims', amin = 'x:amin([dims[, keepdim]]) -- the minimum over dims',
  argmax = 'x:argmax([dim[, keepdim]]) -- the i64 index of the maximum (over all elements when dim is nil)',
  argmin = 'x:argmin([dim[, keepdim]]) -- the i64 index of the minimum',
  max = 'x:max([dim[, keepdim]]) -- the maximum (a tensor); with dim: values and i64 indices',
  min = 'x:min([dim[, keepdim]]) -- the minimum (a tensor); with dim: values and i64 indices',
  matmul = 'x:matmul(y) -- matrix product; batched over leading dims (also x:mm, x:bmm)',
  mm = 'x:mm(y) -- = x:matmul(y)', bmm = 'x:bmm(y) -- = x:matmul(y) (batched)',
  sort = 'x:sort([dim = -1[, descending[, stable]]]) -- sorted values and their i64 indices along dim',
  argsort = 'x:argsort([dim = -1[, descending[, stable]]]) -- the i64 indices that sort x along dim (stable: ties keep index order)',
  topk = 'x:topk(k[, dim = -1[, largest = true[, sorted = true]]]) -- the k largest (or smallest) values and indices',
  gather = 'x:gather(dim, index) -- out[i][j] = x[i][index[i][j]] along dim (index: i64)',
  scatter_ = 'x:scatter_(dim, index, src) -- x[..index..] = src along dim, in place (src: tensor or number)',
  scatter_add_ = 'x:scatter_add_(dim, index, src) -- x[..index..] += src along dim, in place',
  scatter = 'x:scatter(dim, index, src) -- a copy of x with x:scatter_(dim, index, src) applied',
  index_select = 'x:index_select(dim, index) -- the slices of dim listed in the i64 tensor index',
  summary = 'x:summary() -- one line: shape, dtype, min, max, mean, and NaN/Inf counts',
  is_tensor = 'x:is_tensor() -- true (dama.is_tensor(v) tests any value)',
  backward = 'loss:backward([grad]) -- reverse-mode autograd: accumulate d loss / d leaf into each leaf.grad',
  detach = 'x:detach() -- a tensor sharing storage with x, cut from the autograd graph',
  requires_grad_ = 'x:requires_grad_([on = true]) -- make x a leaf that collects .grad; returns x',
}
local BINDOC = {add = 'x + y', sub = 'x - y', mul = 'x * y', div = 'x / y', pow = 'x ^ y', maximum = 'max(x, y)',
  minimum = 'min(x, y)', eq = 'x == y (1/0)', ne = 'x ~= y (1/0)', lt = 'x < y (1/0)', le = 'x <= y (1/0)',
  gt = 'x > y (1/0)', ge = 'x >= y (1/0)'}
for op, what in pairs(BINDOC) do
  DOCS[op] = string.format('x:%s(y) -- elementwise %s; y a tensor (broadcasts) or a number', op, what)
  DOCS[op .. '_'] = string.format('x:%s_(y) -- elementwise %s in place; returns x', op, what)
end
local UNDOC = {neg = '-x', exp = 'e^x', log = 'ln x', sqrt = 'sqrt(x)', abs = '|x|', sin = 'sin x', cos = 'cos x',
  tanh = 'tanh x', sigmoid = '1 / (1 + e^-x)', relu = 'max(x, 0)', rsqrt = '1 / sqrt(x)', square = 'x^2',
  reciprocal = '1 / x', sign = 'sign(x) (-1, 0, 1)', floor = 'floor(x)', ceil = 'ceil(x)',
  round = 'x rounded to nearest, ties to even', erf = 'erf(x)', gelu = 'GELU(x) (exact, with erf)'}
for op, what in pairs(UNDOC) do
  DOCS[op] = string.format('x:%s() -- elementwise %s', op, what)
  DOCS[op .. '_'] = string.format('x:%s_() -- elementwise %s in place; returns x', op, what)
end
local FDOCS = {
  empty = 'dama.empty(d0, d1, ...[, dtype]) -- an uninitialised tensor (f32 by default; the shape may be a table)',
  zeros = "dama.zeros(d0, d1, ...[, dtype]) -- a tensor of zeros, e.g. dama.zeros(2, 3), dama.zeros({2, 3}, 'f64')",
  ones = 'dama.ones(d0, d1, ...[, dtype]) -- a tensor of ones',
  full = 'dama.full(shape, value[, dtype]) -- a tensor of the table shape filled with value',
  arange = 'dama.arange([start, ]stop[, step[, dtype]]) -- start, start + step, ... below stop (f32; i64 for integer steps with a dtype)',
  linspace = 'dama.linspace(a, b, steps[, dtype]) -- steps values evenly spaced from a to b inclusive',
  tensor = "dama.tensor(data[, dtype]) -- a tensor from a number or nested Lua tables (f32 unless dtype, e.g. 'i64')",
  manual_seed = 'dama.manual_seed(n) -- seed the Philox generator behind rand, randn, randint, randperm and init',
  rng_state = 'dama.rng_state() -- the generator state (a table), for dama.set_rng_state',
  set_rng_state = 'dama.set_rng_state(s) -- restore a state from dama.rng_state()',
  rand = 'dama.rand(d0, d1, ...) -- U[0, 1) samples',
  randn = 'dama.randn(d0, d1, ...) -- N(0, 1) samples',
  randint = "dama.randint(low, high, shape[, dtype = 'i64']) -- integers uniform in [low, high)",
  randperm = "dama.randperm(n[, dtype = 'i64']) -- a random permutation of 0 .. n-1",
  where = 'dama.where(cond, a, b) -- elementwise a where cond ~= 0, else b (a, b: tensors or numbers)',
  cat = 'dama.cat(tensors[, dim = 0]) -- join a list of tensors along an existing dim',
  stack = 'dama.stack(tensors[, dim = 0]) -- join a list of same-shape tensors along a new dim',
  is_tensor = 'dama.is_tensor(v) -- true if v is a dama tensor',
}
do
  local ok, help = pcall(require, 'dama.help')
  if ok then
    help.docs_by_name('Tensor:', DOCS)
    help.docs_by_name('dama.', FDOCS)
  end
end

M.Tensor = Tensor
M.is_tensor = is_tensor
return M
