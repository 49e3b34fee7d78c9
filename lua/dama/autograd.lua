-- Reverse-mode autograd over dama tensors.
--
--   local w = dama.randn(3, 3); w.requires_grad = true
--   local loss = (x:matmul(w) - y):square():mean()
--   loss:backward()            -- w.grad now holds d loss / d w
--
-- Every differentiable Tensor method (arithmetic, math, reductions, matmul, views, indexing, joins)
-- records a node {inputs, backward} on its output when grad mode is on and an input requires grad.
-- The graph is the tape: backward() visits it in reverse topological order, calls each node's
-- backward with the upstream gradient and accumulates into the inputs. Leaves keep their gradient in
-- `.grad`; an existing `.grad` is updated in place (so a grad view into a model's flat gradient arena
-- is filled directly). In-place ops (`add_`, `copy_`, ...) are not recorded. Fused NN ops with
-- hand-written C backward live in dama.nn.functional and use `autograd.record` the same way.
local tensor = require 'dama.tensor'
local Tensor = tensor.Tensor
local is_tensor = tensor.is_tensor

local A = {}
local grad_enabled = true
local function pack(...) return {n = select('#', ...), ...} end

-- is_grad_enabled() -> true unless inside dama.no_grad / set_grad_enabled(false).
function A.is_grad_enabled() return grad_enabled end
-- set_grad_enabled(on) -> the previous setting. Off: operations record no graph.
function A.set_grad_enabled(on) local old = grad_enabled; grad_enabled = not not on; return old end

-- Run fn(...) with grad mode off; returns fn's results.
function A.no_grad(fn, ...)
  local old = grad_enabled
  grad_enabled = false
  local res = pack(pcall(fn, ...))
  grad_enabled = old
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

-- needs_grad(t) -> true if t is a tensor with requires_grad (a leaf or a recorded result).
local function needs_grad(t)
  return is_tensor(t) and (rawget(t, 'requires_grad') == true)
end
A.needs_grad = needs_grad

-- Attach a node to `out` if any input requires grad. backward(g) returns one gradient per input
-- (nil where there is none). Returns out.
function A.record(name, out, inputs, backward)
  if not grad_enabled then return out end
  local any = false
  for i = 1, inputs.n or #inputs do if needs_grad(inputs[i]) then any = true break end end
  if not any then return out end
  rawset(out, 'requires_grad', true)
  rawset(out, 'grad_fn', {name = name, inputs = inputs, backward = backward})
  return out
end
local record = A.record

-- ---------------------------------------------------------------- helpers on raw ops

local raw = {}
for k, v in pairs(Tensor) do if type(v) == 'function' then raw[k] = v end end
raw.where = tensor.where   -- the module-level, non-recording where
A.raw = raw

-- Sum g down to `shape` (undo broadcasting).
local function sum_to(g, shape)
  local gs = raw.size(g)
  if #gs == #shape then
    local same = true
    for i = 1, #gs do if gs[i] ~= shape[i] then same = false break end end
    if same then return g end
  end
  local lead = #gs - #shape
  local dims = {}
  for i = 1, #gs do
    if i <= lead or (shape[i - lead] == 1 and gs[i] ~= 1) then dims[#dims + 1] = i - 1 end
  end
  local r = g
  if #dims > 0 then r = raw.sum(g, dims, true) end
  return raw.reshape(r, shape)
end
A.sum_to = sum_to

-- zeros on t's device (gradients live where their tensors do)
local function zeros_like(t, dtype) return raw.new_zeros(t, raw.size(t), dtype or raw.type(t)) end

-- Expand a reduced gradient back over the reduced dims.
local function unreduce(g, input_shape, dims, keepdim)
  local nd = #input_shape
  if not keepdim and nd > 0 then
    local list = {}
    if dims == nil then for d = 0, nd - 1 do list[#list + 1] = d end
    elseif type(dims) == 'number' then list[1] = dims
    else for i = 1, #dims do list[i] = dims[i] end end
    for i = 1, #list do if list[i] < 0 then list[i] = list[i] + nd end end
    table.sort(list)
    for _, d in ipairs(list) do g = raw.unsqueeze(g, d) end
  end
  return raw.expand(g, input_shape)
end

local function reduced_count(shape, dims)
  local n = 1
  if dims == nil then for i = 1, #shape do n = n * shape[i] end return n end
  if type(dims) == 'number' then dims = {dims} end
  for _, d in ipairs(dims) do if d < 0 then d = d + #shape end n = n * shape[d + 1] end
  return n
end

-- ---------------------------------------------------------------- element-wise

local function def(name, fn) Tensor[name] = fn end

local function shape_of(x) return is_tensor(x) and raw.size(x) or nil end

def('add', function(a, b)
  local out = raw.add(a, b)
  local sa, sb = shape_of(a), shape_of(b)
  return record('add', out, {a, b, n = 2}, function(g)
    return sa and sum_to(g, sa), sb and sum_to(g, sb)
  end)
end)

def('sub', function(a, b)
  local out = raw.sub(a, b)
  local sa, sb = shape_of(a), shape_of(b)
  return record('sub', out, {a, b, n = 2}, function(g)
    return sa and sum_to(g, sa), sb and sum_to(raw.neg(g), sb)
  end)
end)

def('mul', function(a, b)
  local out = raw.mul(a, b)
  local sa, sb = shape_of(a), shape_of(b)
  return record('mul', out, {a, b, n = 2}, function(g)
    local ga = needs_grad(a) and sum_to(raw.mul(g, b), sa) or nil
    local gb = needs_grad(b) and sum_to(raw.mul(g, a), sb) or nil
    return ga, gb
  end)
end)

def('div', function(a, b)
  local out = raw.div(a, b)
  local sa, sb = shape_of(a), shape_of(b)
  return record('div', out, {a, b, n = 2}, function(g)
    local ga = needs_grad(a) and sum_to(raw.div(g, b), sa) or nil
    local gb = needs_grad(b) and sum_to(raw.neg(raw.div(raw.mul(g, out), b)), sb) or nil
    return ga, gb
  end)
end)

def('pow', function(a, b)
  local out = raw.pow(a, b)
  local sa, sb = shape_of(a), shape_of(b)
  return record('pow', out, {a, b, n = 2}, function(g)
    local ga, gb
    if needs_grad(a) then
      if type(b) == 'number' then ga = raw.mul(g, raw.mul(raw.pow(a, b - 1), b))
      else ga = sum_to(raw.mul(g, raw.mul(b, raw.pow(a, raw.sub(b, 1)))), sa) end
    end
    if needs_grad(b) then
      local loga = type(a) == 'number' and math.log(a) or raw.log(a)
      gb = sum_to(raw.mul(raw.mul(g, out), loga), sb)
    end
    return ga, gb
  end)
end)

local function minmax(name)
  def(name, function(a, b)
    local out = raw[name](a, b)
    local sa, sb = shape_of(a), shape_of(b)
    return record(name, out, {a, b, n = 2}, function(g)
      -- the gradient goes to a where a won (ties to a), else to b
      local pick = name == 'maximum' and raw.ge(a, b) or raw.le(a, b)
      local ga = needs_grad(a) and sum_to(raw.where(pick, g, 0), sa) or nil
      local gb = needs_grad(b) and sum_to(raw.where(pick, 0, g), sb) or nil
      return ga, gb
    end)
  end)
end
minmax('maximum'); minmax('minimum')

local unary_grad = {
  neg = function(g) return raw.neg(g) end,
  exp = function(g, a, out) return raw.mul(g, out) end,
  log = function(g, a) return raw.div(g, a) end,
  sqrt = function(g, a, out) return raw.div(raw.mul(g, 0.5), out) end,
  abs = function(g, a) return raw.mul(g, raw.sign(a)) end,
  sin = function(g, a) return raw.mul(g, raw.cos(a)) end,
  cos = function(g, a) return raw.neg(raw.mul(g, raw.sin(a))) end,
  tanh = function(g, a, out) return raw.mul(g, raw.sub(1, raw.square(out))) end,
  sigmoid = function(g, a, out) return raw.mul(g, raw.mul(out, raw.sub(1, out))) end,
  relu = function(g, a, out) return raw.mul(g, raw.gt(out, 0)) end,
  rsqrt = function(g, a, out) return raw.mul(g, raw.mul(raw.pow(out, 3), -0.5)) end,
  square = function(g, a) return raw.mul(g, raw.mul(a, 2)) end,
  reciprocal = function(g, a, out) return raw.neg(raw.mul(g, raw.square(out))) end,
  erf = function(g, a) return raw.mul(g, raw.mul(raw.exp(raw.neg(raw.square(a))), 2 / math.sqrt(math.pi))) end,
  gelu = function(g, a)
    -- d/dx x·Φ(x) = Φ(x) + x·φ(x)
    local cdf = raw.mul(raw.add(raw.erf(raw.mul(a, 1 / math.sqrt(2))), 1), 0.5)
    local pdf = raw.mul(raw.exp(raw.mul(raw.square(a), -0.5)), 1 / math.sqrt(2 * math.pi))
    return raw.mul(g, raw.add(cdf, raw.mul(a, pdf)))
  end,
}
for name, grad in pairs(unary_grad) do
  def(name, function(a)
    local out = raw[name](a)
    return record(name, out, {a, n = 1}, function(g) return grad(g, a, out) end)
  end)
end

def('clamp', function(a, lo, hi)
  local out = raw.clamp(a, lo, hi)
  return record('clamp', out, {a, n = 1}, function(g)
    local inside = raw.mul(raw.ge(a, lo or -math.huge), raw.le(a, hi or math.huge))
    return raw.mul(g, inside)
  end)
end)

def('where', function(cond, a, b)
  local out = raw.where(cond, a, b)
  local sa, sb = shape_of(a), shape_of(b)
  return record('where', out, {cond, a, b, n = 3}, function(g)
    local ga = needs_grad(a) and sum_to(raw.where(cond, g, 0), sa) or nil
    local gb = needs_grad(b) and sum_to(raw.where(cond, 0, g), sb) or nil
    return nil, ga, gb
  end)
end)
tensor.where = Tensor.where

def('masked_fill', function(a, mask, value)
  local out = raw.masked_fill(a, mask, value)
  return record('masked_fill', out, {a, n = 1}, function(g) return raw.masked_fill(g, mask, 0) end)
end)

-- ---------------------------------------------------------------- reductions

def('sum', function(a, dims, keepdim)
  local out = raw.sum(a, dims, keepdim)
  local sa = raw.size(a)
  return record('sum', out, {a, n = 1}, function(g) return unreduce(g, sa, dims, keepdim) end)
end)

def('mean', function(a, dims, keepdim)
  local out = raw.mean(a, dims, keepdim)
  local sa = raw.size(a)
  return record('mean', out, {a, n = 1}, function(g)
    return raw.div(unreduce(g, sa, dims, keepdim), reduced_count(sa, dims))
  end)
end)

def('var', function(a, dims, unbiased, keepdim)
  local out = raw.var(a, dims, unbiased, keepdim)
  local sa = raw.size(a)
  return record('var', out, {a, n = 1}, function(g)
    local n = reduced_count(sa, dims) - (unbiased == false and 0 or 1)
    local centered = raw.sub(a, raw.mean(a, dims, true))
    return raw.mul(unreduce(g, sa, dims, keepdim), raw.mul(centered, 2 / n))
  end)
end)

def('std', function(a, dims, unbiased, keepdim)
  local out = raw.std(a, dims, unbiased, keepdim)
  local sa = raw.size(a)
  return record('std', out, {a, n = 1}, function(g)
    local n = reduced_count(sa, dims) - (unbiased == false and 0 or 1)
    local centered = raw.sub(a, raw.mean(a, dims, true))
    local o = unreduce(out, sa, dims, keepdim)
    return raw.div(raw.mul(unreduce(g, sa, dims, keepdim), centered), raw.mul(o, n))
  end)
end)

def('norm', function(a, p, dims, keepdim)
  p = p or 2
  local out = raw.norm(a, p, dims, keepdim)
  local sa = raw.size(a)
  return record('norm', out, {a, n = 1}, function(g)
    local ge = unreduce(g, sa, dims, keepdim)
    local o = unreduce(out, sa, dims, keepdim)
    if p == 2 then return raw.mul(ge, raw.div(a, o)) end
    if p == 1 then return raw.mul(ge, raw.sign(a)) end
    if p == math.huge then return raw.mul(ge, raw.mul(raw.eq(raw.abs(a), o), raw.sign(a))) end
    -- general p: sign(a)|a|^(p-1) / ||a||^(p-1)
    return raw.mul(ge, raw.div(raw.mul(raw.sign(a), raw.pow(raw.abs(a), p - 1)), raw.pow(o, p - 1)))
  end)
end)

def('prod', function(a, dims, keepdim)
  local out = raw.prod(a, dims, keepdim)
  local sa = raw.size(a)
  return record('prod', out, {a, n = 1}, function(g)
    -- out / a (inputs with zeros get no exact gradient here; documented)
    return raw.mul(unreduce(g, sa, dims, keepdim), raw.div(unreduce(out, sa, dims, keepdim), a))
  end)
end)

local function extreme(name)
  def(name, function(a, dims, keepdim)
    local out = raw[name](a, dims, keepdim)
    local sa = raw.size(a)
    return record(name, out, {a, n = 1}, function(g)
      -- shared evenly between ties, like torch
      local hit = raw.to(raw.eq(a, unreduce(out, sa, dims, keepdim)), raw.type(g))
      local count = unreduce(raw.sum(hit, dims, keepdim), sa, dims, keepdim)
      return raw.div(raw.mul(unreduce(g, sa, dims, keepdim), hit), count)
    end)
  end)
end
extreme('amax'); extreme('amin')

local function dim_extreme(name, whole)
  def(name, function(a, dim, keepdim)
    if dim == nil then return Tensor[whole](a) end
    local values, indices = raw[name](a, dim, keepdim)
    local sa = raw.size(a)
    record(name, values, {a, n = 1}, function(g)
      local gi, ii = g, indices
      if not keepdim then gi = raw.unsqueeze(g, dim); ii = raw.unsqueeze(indices, dim) end
      return raw.scatter_(zeros_like(a, raw.type(g)), dim, ii, gi)
    end)
    return values, indices
  end)
end
dim_extreme('max', 'amax'); dim_extreme('min', 'amin')

-- ---------------------------------------------------------------- matmul

def('matmul', function(a, b)
  local out = raw.matmul(a, b)
  local sa, sb = raw.size(a), raw.size(b)
  return record('matmul', out, {a, b, n = 2}, function(g)
    local a2 = #sa == 1 and raw.unsqueeze(a, 0) or a
    local b2 = #sb == 1 and raw.unsqueeze(b, -1) or b
    local g2 = g
    if #sa == 1 then g2 = raw.unsqueeze(g2, -2) end
    if #sb == 1 then g2 = raw.unsqueeze(g2, -1) end
    local ga, gb
    if needs_grad(a) then
      ga = raw.matmul(g2, raw.transpose(b2, -1, -2))
      if #sa == 1 then ga = raw.squeeze(ga, -2) end
      ga = sum_to(ga, sa)
    end
    if needs_grad(b) then
      gb = raw.matmul(raw.transpose(a2, -1, -2), g2)
      if #sb == 1 then gb = raw.squeeze(gb, -1) end
      gb = sum_to(gb, sb)
    end
    return ga, gb
  end)
end)
Tensor.mm = Tensor.matmul
Tensor.bmm = Tensor.matmul

-- ---------------------------------------------------------------- views and copies

local function def_view(name, backward)
  def(name, function(a, ...)
    local out = raw[name](a, ...)
    local sa = raw.size(a)
    local args = pack(...)
    return record(name, out, {a, n = 1}, function(g) return backward(g, sa, args) end)
  end)
end

local function reshape_back(g, sa) return raw.reshape(g, sa) end
def_view('view', reshape_back)
def_view('reshape', reshape_back)
def_view('squeeze', reshape_back)
def_view('unsqueeze', reshape_back)
def_view('flatten', reshape_back)
def_view('contiguous', function(g) return g end)
def_view('clone', function(g) return g end)
def_view('expand', function(g, sa) return sum_to(g, sa) end)
def_view('transpose', function(g, sa, args) return raw.transpose(g, args[1] or 0, args[2] or 1) end)
Tensor.t = function(t) return t:transpose(0, 1) end
def_view('permute', function(g, sa, args)
  local dims = type(args[1]) == 'table' and args[1] or {unpack(args, 1, args.n)}
  local inv = {}
  for i, d in ipairs(dims) do if d < 0 then d = d + #dims end inv[d + 1] = i - 1 end
  return raw.permute(g, inv)
end)

local function into_zeros(g, sa, place)
  local z = raw.new_zeros(g, sa, raw.type(g))
  raw.copy_(place(z), g)
  return z
end
def_view('narrow', function(g, sa, args)
  return into_zeros(g, sa, function(z) return raw.narrow(z, args[1], args[2], args[3]) end)
end)
def_view('slice', function(g, sa, args)
  return into_zeros(g, sa, function(z) return raw.slice(z, args[1], args[2], args[3], args[4]) end)
end)
def_view('select', function(g, sa, args)
  return into_zeros(g, sa, function(z) return raw.select(z, args[1], args[2]) end)
end)

def('to', function(a, dtype)
  local out = raw.to(a, dtype)
  if out == a then return a end
  local from = raw.type(a)
  if not out:is_floating_point() then return out end
  return record('to', out, {a, n = 1}, function(g) return raw.to(g, from) end)
end)
for name, dt in pairs{float = 'f32', double = 'f64', half = 'f16', bfloat16 = 'bf16'} do
  Tensor[name] = function(t) return t:to(dt) end
end

-- A tensor sharing storage with t, cut from the graph.
function Tensor.detach(t)
  return raw.view(t, raw.size(t))
end

-- ---------------------------------------------------------------- indexing and joins

def('gather', function(a, dim, index)
  local out = raw.gather(a, dim, index)
  local sa = raw.size(a)
  return record('gather', out, {a, n = 1}, function(g)
    return raw.scatter_add_(raw.new_zeros(g, sa, raw.type(g)), dim, index, g)
  end)
end)

def('index_select', function(a, dim, index)
  local out = raw.index_select(a, dim, index)
  local sa = raw.size(a)
  return record('index_select', out, {a, n = 1}, function(g)
    local gs = raw.size(g)
    local d = dim < 0 and dim + #gs or dim
    local shape = {}
    for i = 1, #gs do shape[i] = (i - 1 == d) and gs[i] or 1 end
    local idx = raw.expand(raw.view(index, shape), gs)
    return raw.scatter_add_(raw.new_zeros(g, sa, raw.type(g)), dim, idx, g)
  end)
end)

def('sort', function(a, dim, descending, stable)
  local values, indices = raw.sort(a, dim, descending, stable)
  local sa = raw.size(a)
  record('sort', values, {a, n = 1}, function(g)
    return raw.scatter_(raw.new_zeros(g, sa, raw.type(g)), dim or -1, indices, g)
  end)
  return values, indices
end)

def('topk', function(a, k, dim, largest, sorted)
  local values, indices = raw.topk(a, k, dim, largest, sorted)
  local sa = raw.size(a)
  record('topk', values, {a, n = 1}, function(g)
    return raw.scatter_(raw.new_zeros(g, sa, raw.type(g)), dim or -1, indices, g)
  end)
  return values, indices
end)

-- raw_cat(ts, dim), raw_stack(ts, dim): dama.cat / dama.stack without autograd recording.
local raw_cat, raw_stack = tensor.cat, tensor.stack
A.raw_cat, A.raw_stack = raw_cat, raw_stack

function tensor.cat(ts, dim)
  dim = dim or 0
  local out = raw_cat(ts, dim)
  local sizes = {}
  for i, t in ipairs(ts) do sizes[i] = raw.size(t, dim) end
  local inputs = {n = #ts}
  for i, t in ipairs(ts) do inputs[i] = t end
  return record('cat', out, inputs, function(g)
    local grads, off = {}, 0
    for i = 1, #sizes do grads[i] = raw.narrow(g, dim, off, sizes[i]); off = off + sizes[i] end
    return unpack(grads, 1, #sizes)
  end)
end

function tensor.stack(ts, dim)
  dim = dim or 0
  local out = raw_stack(ts, dim)
  local inputs = {n = #ts}
  for i, t in ipairs(ts) do inputs[i] = t end
  return record('stack', out, inputs, function(g)
    local grads = {}
    for i = 1, #ts do grads[i] = raw.select(g, dim, i - 1) end
    return unpack(grads, 1, #ts)
  end)
end

-- ---------------------------------------------------------------- metamethods follow the methods

Tensor.__add = function(a, b) if is_tensor(a) then return a:add(b) end return b:add(a) end
Tensor.__sub = function(a, b)
  if is_tensor(a) then return a:sub(b) end
  return Tensor.add(Tensor.neg(b), a)
end
Tensor.__mul = function(a, b) if is_tensor(a) then return a:mul(b) end return b:mul(a) end
Tensor.__div = function(a, b)
  if is_tensor(a) then return a:div(b) end
  return Tensor.mul(Tensor.reciprocal(b), a)
end
Tensor.__pow = function(a, b)
  if is_tensor(a) then return a:pow(b) end
  -- s ^ t = exp(t log s)
  return Tensor.exp(Tensor.mul(b, math.log(a)))
end
Tensor.__unm = function(a) return a:neg() end

-- ---------------------------------------------------------------- backward

-- Reverse topological order of the nodes reachable from root (iterative DFS: graphs can be deep).
local function topo_order(root)
  local order, visited = {}, {}
  local stack = {{root, 0}}
  visited[root] = true
  while #stack > 0 do
    local top = stack[#stack]
    local t, i = top[1], top[2]
    local node = rawget(t, 'grad_fn')
    local inputs = node and node.inputs
    local n = inputs and (inputs.n or #inputs) or 0
    local advanced = false
    while i < n do
      i = i + 1
      local x = inputs[i]
      if needs_grad(x) and rawget(x, 'grad_fn') and not visited[x] then
        visited[x] = true
        top[2] = i
        stack[#stack + 1] = {x, 0}
        advanced = true
        break
      end
    end
    if not advanced then
      order[#order + 1] = t
      stack[#stack] = nil
    end
  end
  return order   -- children before parents; iterate from the end
end

local function accumulate_leaf(t, g)
  local existing = rawget(t, 'grad')
  if existing then
    raw.add_(existing, g)
  else
    if raw.type(g) ~= raw.type(t) then g = raw.to(g, raw.type(t)) end
    -- own the memory (g may be a view of something else or shared between inputs)
    rawset(t, 'grad', raw.clone(raw.expand(g, raw.size(t))))
  end
end

-- Tensors are freed by the Lua GC, which sees only their small Lua tables, not the buffers behind
-- them: without help a step's dead gradients and its freed graph (every saved activation) wait for a
-- collection long after they are unreachable, and the next forward allocates beside them (ViT-B:
-- 3x the live memory). So backward runs a full collection whenever the bytes held by tensor storage (on every
-- device together: host, GPU, pinned) grew by GC_SLACK since the last one, and once at the end when the graph it
-- freed was large. The runtime keeps that total in a counter read here with a plain load, no call per node.
local C = require('dama.ffi').C
local live_bytes = C.dama_memory_live_bytes()
local function bytes_in_use() return tonumber(live_bytes[0]) end
local GC_SLACK = 256 * 2 ^ 20

-- loss:backward([grad], [{retain_graph = true}]): grad defaults to 1 for a one-element loss.
function Tensor.backward(root, grad, opts)
  if type(grad) == 'table' and not is_tensor(grad) then opts, grad = grad, nil end
  opts = opts or {}
  if not needs_grad(root) then
    error('backward: the tensor does not require grad (no input of its graph has requires_grad = true)', 2)
  end
  if grad == nil then
    if raw.numel(root) ~= 1 then
      error('backward: grad can be implied only for a one-element tensor, got shape ' ..
            root:shape_string() .. '; pass a gradient', 2)
    end
    grad = raw.new_full(root, raw.size(root), 1, raw.type(root))   -- the seed lives on the loss's device
  end
  if not rawget(root, 'grad_fn') then accumulate_leaf(root, grad) return end
  local order = topo_order(root)
  local grads = {[root] = grad}
  local old = grad_enabled
  grad_enabled = false
  local start = bytes_in_use()
  local mark = start + GC_SLACK
  local ok, err = pcall(function()
    for k = #order, 1, -1 do
      if bytes_in_use() > mark then
        collectgarbage()
        mark = bytes_in_use() + GC_SLACK
      end
      local t = order[k]
      order[k] = nil   -- the tape must not keep visited activations alive for the collections
      local node = rawget(t, 'grad_fn')
      local g = grads[t]
      grads[t] = nil
      if g and node then
        local results = pack(node.backward(g))
        for i = 1, node.inputs.n or #node.inputs do
          local x, gx = node.inputs[i], results[i]
          if gx ~= nil and needs_grad(x) then
            if rawget(x, 'grad_fn') then
              local prev = grads[x]
              grads[x] = prev and raw.add(prev, gx) or gx
            else
              accumulate_leaf(x, gx)
            end
          end
        end
        if not opts.retain_graph then
          -- free what the node saved; a second backward through it is an error, as in PyTorch
          node.inputs = {n = 0}
          node.backward = function()
            error('backward: trying to backward through the graph a second time; pass {retain_graph = true} ' ..
                  'to the first backward', 0)
          end
        end
      end
    end
  end)
  grad_enabled = old
  if not ok then error(err, 0) end
  if not opts.retain_graph and start > GC_SLACK then collectgarbage() end
end

-- Mark t as a leaf that needs a gradient (returns t).
function Tensor.requires_grad_(t, on)
  if on == nil then on = true end
  rawset(t, 'requires_grad', on and true or nil)
  return t
end

-- Finite-difference check of fn's gradient w.r.t. each tensor in `inputs` (use f64 inputs).
-- fn(...) must return a tensor; its sum is differentiated. Returns true, or false and a message.
function A.gradcheck(fn, inputs, eps, tol)
  eps, tol = eps or 1e-6, tol or 1e-5
  for _, x in ipairs(inputs) do rawset(x, 'grad', nil); rawset(x, 'requires_grad', true) end
  local out = fn(unpack(inputs))
  Tensor.backward(raw.sum(out) == nil and out or Tensor.sum(out))
  for k, x in ipairs(inputs) do
    local analytic = rawget(x, 'grad')
    local flat = raw.reshape(x, {-1})  -- a view: x is contiguous here
    local n = raw.numel(x)
    for i = 0, n - 1 do
      local v = raw.get(flat, i)
      local f = function(delta)
        raw.set(flat, v + delta, i)
        local r = A.no_grad(function() return raw.item(raw.sum(fn(unpack(inputs)))) end)
        raw.set(flat, v, i)
        return r
      end
      local numeric = (f(eps) - f(-eps)) / (2 * eps)
      local a = analytic and raw.get(raw.reshape(analytic, {-1}), i) or 0
      if math.abs(a - numeric) > tol * (1 + math.abs(numeric)) then
        return false, string.format('input %d element %d: analytic %.9g vs numeric %.9g', k, i, a, numeric)
      end
    end
  end
  return true
end

-- zero_grad(params): zero the .grad (where present) of every tensor in the list params.
function A.zero_grad(params)
  for _, p in ipairs(params) do
    local g = rawget(p, 'grad')
    if g then raw.zero_(g) end
  end
end

return A
