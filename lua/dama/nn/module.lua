-- dama.nn.Module: the base of every layer and model (PyTorch's nn.Module, torch7's nn flavour).
--
--   local Net = nn.Module:extend('Net')
--   function Net:__init(d)
--     self.fc = nn.Linear(d, d)                       -- assigning a module registers a child
--     self:register_parameter('scale', dama.ones(d))  -- tensors are registered explicitly
--   end
--   function Net:forward(x) return self.fc(x):mul(self.scale) end
--   local net = Net(8)             -- constructor call; net(x) calls net:forward(x)
--
-- Children and parameters live in ordered registries (`_modules`, `_parameters`, `_buffers`) and read
-- as fields (`net.fc`, `net.scale`), so names and order are stable: named_parameters() gives
-- PyTorch's dotted names ("blocks.0.attn.qkv.weight") in registration order.
--
-- Parameters vs. buffers: a parameter registered with requires_grad = false (MAE's fixed sin-cos
-- pos_embed) is still a parameter, saved in state_dict and listed by named_parameters(), exactly as
-- PyTorch's nn.Parameter(requires_grad=False); num_parameters() and trainable_parameters() skip it.
-- Buffers (register_buffer) are saved in state_dict but never listed as parameters.
--
-- The flat arena (DESIGN.md, llm.c / torch7 getParameters): model:build_arena() copies every
-- trainable parameter into one contiguous f32 tensor `model.arena` and rebinds each parameter to a
-- view of it; a twin `model.grad_arena` supplies each parameter's `.grad` view, so backward
-- accumulates straight into it and optimizers, grad-norm, all-reduce and EMA are flat loops.
-- model.arena_layout lists {name, offset, numel, shape} per parameter (offsets 16-float aligned;
-- gaps are zero and stay zero). zero_grad() is one fill. The constructors of dama.nn.ViT and
-- dama.nn.MAE call build_arena() themselves.
--
-- Laid out by optimizer group (llm.c): model:relayout_arena(order) moves the parameters inside the SAME arena
-- so that those listed in `order` (names or the parameter tensors) come first, in that order and back to back
-- with no alignment gaps (the rest follow in named_parameters() order), so a run of them is one span for one
-- fused optimizer call. Values (and gradients) move with their parameters bit for bit, and every parameter,
-- its `.grad` view, model.arena and model.grad_arena stay the same tensor objects: each parameter view only
-- changes its offset into the arena, so an optimizer, an EMA or a state_dict built before still holds the
-- live tensors (optimizer state is kept per group, by name, and does not move). Views DERIVED from a
-- parameter before the call (p:t(), p:view(...), tensors saved by an autograd graph) keep the old offset
-- and read whatever moved there: re-lay between steps, not between forward and backward.
-- dama.optim.param_groups_weight_decay(model, wd) and param_groups_lrd(model, opts) do it for their
-- groups. build_arena{order = ...} builds a fresh arena in that order (new tensors, like build_arena()).
-- A packed arena keeps 16-float alignment for each parameter whose predecessors' sizes are multiples of 16
-- (all of a ViT's here). model.arena_layout lists the parameters in arena order; model.arena_order names
-- them when an order was given (nil for the default layout); m:to(device) keeps the order.
--
-- Sharing: building an arena re-homes the parameters it covers. If a submodule already lives in
-- another model's arena (or a model is wrapped in a bigger one that builds its own arena), the
-- parameters move to the newest arena; the older model notices (has_arena() turns false, its
-- `arena` field is cleared) and falls back to per-parameter loops, so nothing breaks, it is only
-- slower. Build the arena on the outermost model you optimise (e.g. the DAMA wrapper holding both
-- MAEs and the head) to get one flat loop for everything.
local tensor = require 'dama.tensor'
local is_tensor = tensor.is_tensor

local Module = {}
Module.__name = 'dama.nn.Module'
Module._is_module = true

local function is_module(x)
  return type(x) == 'table' and not is_tensor(x) and rawget(x, '_modules') ~= nil
end
Module.is_module = is_module

-- Metamethods are looked up raw in the metatable, so every class copies them.
local META = {'__call', '__tostring', '__index', '__newindex', '__len'}

local function instance_index(self, k)
  local p = rawget(self, '_parameters')
  if p then
    local v = p[k]; if v ~= nil then return v end
    v = rawget(self, '_buffers')[k]; if v ~= nil then return v end
    v = rawget(self, '_modules')[k]; if v ~= nil then return v end
  end
  return getmetatable(self)._class[k]
end

local function instance_newindex(self, k, v)
  local params = rawget(self, '_parameters')
  if params and type(k) == 'string' then
    if params[k] ~= nil then
      if v ~= nil and not is_tensor(v) then
        error(string.format("%s: cannot assign a %s to parameter '%s' (expected a tensor)", self.__name, type(v), k), 2)
      end
      if v == nil then self:_remove_name('_param_names', k) end
      params[k] = v
      return
    end
    local bufs = rawget(self, '_buffers')
    if bufs[k] ~= nil then
      if v == nil then self:_remove_name('_buffer_names', k) end
      bufs[k] = v
      return
    end
    local mods = rawget(self, '_modules')
    if mods[k] ~= nil or is_module(v) then
      if mods[k] == nil then local n = rawget(self, '_module_names'); n[#n + 1] = k end
      if v == nil then self:_remove_name('_module_names', k) end
      mods[k] = v
      return
    end
  end
  rawset(self, k, v)
end

Module._class = Module
Module.__index = instance_index
Module.__newindex = instance_newindex

-- Define a subclass: local Linear = Module:extend('Linear'); function Linear:__init(...) ... end
function Module.extend(parent, name)
  local cls = {}
  for k, v in pairs(parent) do
    if type(k) == 'string' and k:sub(1, 2) == '__' then cls[k] = v end
  end
  cls.__index = instance_index
  cls.__newindex = instance_newindex
  cls.__name = name or parent.__name
  cls._class = cls
  cls._parent = parent
  cls.__init = nil
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, ...) return c.new(c, ...) end,
    __tostring = function(c) return 'dama.nn.' .. tostring(c.__name) .. ' (class)' end,
  })
end

-- Instance construction: calls the class's __init (inherited through the class chain).
function Module.new(cls, ...)
  local self = setmetatable({
    _parameters = {}, _param_names = {},
    _buffers = {}, _buffer_names = {},
    _modules = {}, _module_names = {},
    training = true,
  }, cls)
  local init = cls.__init
  if init then init(self, ...) end
  return self
end

function Module:__init() end

function Module:_remove_name(list, k)
  local names = rawget(self, list)
  for i = #names, 1, -1 do if names[i] == k then table.remove(names, i) end end
end

Module.__call = function(self, ...) return self:forward(...) end

function Module:forward()
  error(self.__name .. ': forward() is not implemented', 2)
end

-- ---------------------------------------------------------------- registration

-- register_parameter(name, t[, requires_grad = true]) -> t. The tensor must be f32.
function Module:register_parameter(name, t, requires_grad)
  if not is_tensor(t) then
    error(string.format("%s.register_parameter: '%s' must be a tensor, got %s", self.__name, name, type(t)), 2)
  end
  if self._modules[name] ~= nil or self._buffers[name] ~= nil then
    error(string.format("%s.register_parameter: '%s' is already a child module or buffer", self.__name, name), 2)
  end
  if requires_grad == nil then requires_grad = true end
  rawset(t, 'requires_grad', requires_grad and true or false)
  if self._parameters[name] == nil then local n = self._param_names; n[#n + 1] = name end
  self._parameters[name] = t
  return t
end

-- register_buffer(name, t[, persistent = true]): saved in state_dict (unless persistent is false), no grad.
function Module:register_buffer(name, t, persistent)
  if t ~= nil and not is_tensor(t) then
    error(string.format("%s.register_buffer: '%s' must be a tensor or nil, got %s", self.__name, name, type(t)), 2)
  end
  if self._buffers[name] == nil then local n = self._buffer_names; n[#n + 1] = name end
  self._buffers[name] = t
  if persistent == false then
    rawset(self, '_nonpersistent', rawget(self, '_nonpersistent') or {})
    self._nonpersistent[name] = true
  end
  return t
end

function Module:add_module(name, m)
  if not is_module(m) then
    error(string.format("%s.add_module: '%s' must be a module, got %s", self.__name, tostring(name), type(m)), 2)
  end
  name = tostring(name)
  if self._modules[name] == nil then local n = self._module_names; n[#n + 1] = name end
  self._modules[name] = m
  return m
end

-- ---------------------------------------------------------------- traversal

-- children(): direct children in registration order; named_children(): {{name, module}, ...}
function Module:named_children()
  local r = {}
  for _, n in ipairs(self._module_names) do r[#r + 1] = {n, self._modules[n]} end
  return r
end
function Module:children()
  local r = {}
  for _, n in ipairs(self._module_names) do r[#r + 1] = self._modules[n] end
  return r
end

-- named_modules(): {{'', self}, {'blocks', ...}, {'blocks.0', ...}, ...} depth first, each module once
function Module:named_modules(prefix, out, seen)
  out, seen, prefix = out or {}, seen or {}, prefix or ''
  if seen[self] then return out end
  seen[self] = true
  out[#out + 1] = {prefix, self}
  for _, n in ipairs(self._module_names) do
    local m = self._modules[n]
    if m then m:named_modules(prefix == '' and n or (prefix .. '.' .. n), out, seen) end
  end
  return out
end
function Module:modules()
  local r = {}
  for _, e in ipairs(self:named_modules()) do r[#r + 1] = e[2] end
  return r
end

-- apply(fn): fn(m) on every submodule (children first, then self, as PyTorch); returns self
function Module:apply(fn)
  for _, m in ipairs(self:children()) do m:apply(fn) end
  fn(self)
  return self
end

-- named_parameters([opts]) -> {{name, tensor}, ...}; opts.trainable = true keeps requires_grad ones only.
-- A tensor shared by two modules is listed once (under its first name), as in PyTorch.
function Module:named_parameters(opts)
  local trainable = opts and opts.trainable
  local out, seen = {}, {}
  for _, e in ipairs(self:named_modules()) do
    local prefix, m = e[1], e[2]
    for _, n in ipairs(m._param_names) do
      local p = m._parameters[n]
      if p and not seen[p] then
        seen[p] = true
        if not trainable or rawget(p, 'requires_grad') == true then
          out[#out + 1] = {prefix == '' and n or (prefix .. '.' .. n), p}
        end
      end
    end
  end
  return out
end

function Module:parameters(opts)
  local r = {}
  for _, e in ipairs(self:named_parameters(opts)) do r[#r + 1] = e[2] end
  return r
end
function Module:trainable_parameters() return self:parameters{trainable = true} end

function Module:named_buffers()
  local out = {}
  for _, e in ipairs(self:named_modules()) do
    local prefix, m = e[1], e[2]
    for _, n in ipairs(m._buffer_names) do
      local b = m._buffers[n]
      if b then out[#out + 1] = {prefix == '' and n or (prefix .. '.' .. n), b, m, n} end
    end
  end
  return out
end

-- num_parameters([include_frozen]): element count of the trainable parameters (frozen ones too if asked)
function Module:num_parameters(include_frozen)
  local n = 0
  for _, p in ipairs(self:parameters{trainable = not include_frozen}) do n = n + p:numel() end
  return n
end

-- ---------------------------------------------------------------- modes and grads

function Module:train(on)
  if on == nil then on = true end
  for _, m in ipairs(self:modules()) do rawset(m, 'training', on and true or false) end
  return self
end
function Module:eval() return self:train(false) end

-- requires_grad_(on): set requires_grad of every parameter (freeze / unfreeze a model)
function Module:requires_grad_(on)
  if on == nil then on = true end
  for _, p in ipairs(self:parameters()) do rawset(p, 'requires_grad', on and true or false) end
  return self
end

-- zero_grad(): one fill of the gradient arena when this model owns a valid one, else per parameter.
-- Re-attaches the arena views as .grad (so a parameter whose .grad was set to nil is fixed too).
function Module:zero_grad()
  if self:has_arena() then
    self.grad_arena:zero_()
    local ps, gs = rawget(self, '_arena_params'), rawget(self, '_arena_grads')
    for i = 1, #ps do
      if rawget(ps[i], 'grad') ~= gs[i] then rawset(ps[i], 'grad', gs[i]) end
    end
    return self
  end
  for _, p in ipairs(self:parameters()) do
    local g = rawget(p, 'grad')
    if g then g:zero_() end
  end
  return self
end

-- ---------------------------------------------------------------- the flat arena

local ALIGN = 16   -- floats (64 bytes) between parameter starts

-- Find which module and local name own each parameter tensor.
local function owners(model)
  local own = {}
  for _, e in ipairs(model:named_modules()) do
    local m = e[2]
    for _, n in ipairs(m._param_names) do
      local p = m._parameters[n]
      if p then
        own[p] = own[p] or {}
        table.insert(own[p], {m, n})
      end
    end
  end
  return own
end

-- The trainable parameters {name, tensor} in arena order: those named (or given as tensors) in `order` first,
-- in that order, then the rest in named_parameters() order. Entries that are parameters of the module but not
-- trainable (not in an arena) are skipped; anything else is an error.
local function arena_order(self, named, order, op)
  if order == nil then return named end
  if type(order) ~= 'table' or is_tensor(order) then
    error(string.format('%s: order must be a list of parameter names or tensors, got %s', op, type(order)), 3)
  end
  local by_t, by_name = {}, {}
  for _, e in ipairs(named) do by_t[e[2]] = e end
  for _, e in ipairs(self:named_modules()) do
    local prefix, m = e[1], e[2]
    for _, n in ipairs(m._param_names) do
      local p = m._parameters[n]
      if p then by_name[prefix == '' and n or (prefix .. '.' .. n)] = p; by_name[p] = p end
    end
  end
  local out, used = {}, {}
  for i, x in ipairs(order) do
    local p = by_name[x]
    if p == nil then
      error(string.format("%s: order entry %d (%s) is not a parameter of this module", op, i,
        is_tensor(x) and 'a tensor' or ("'" .. tostring(x) .. "'")), 3)
    end
    local e = by_t[p]
    if e and not used[p] then used[p] = true; out[#out + 1] = e end
  end
  for _, e in ipairs(named) do if not used[e[2]] then out[#out + 1] = e end end
  return out
end

-- {name =, offset =, numel =, shape =} per parameter of `list` in that order: 16-float aligned starts by
-- default, back to back (packed) when an order was given. Returns layout, total length, used elements.
local function plan_layout(list, packed)
  local layout, total, used = {}, 0, 0
  for _, e in ipairs(list) do
    local n = e[2]:numel()
    layout[#layout + 1] = {name = e[1], offset = total, numel = n, shape = e[2]:size()}
    total = total + (packed and n or math.ceil(n / ALIGN) * ALIGN)
    used = used + n
  end
  return layout, total, used
end

local function order_names(layout)
  local names = {}
  for i, L in ipairs(layout) do names[i] = L.name end
  return names
end

-- build_arena([opts]): see the header. Returns self. Calling it again rebuilds (e.g. after adding a
-- head or unfreezing a parameter). opts.free_old = true frees the replaced tensors at once instead of
-- leaving them to the GC (constructors use it; only safe when nobody else holds them). opts.order: a list
-- of parameter names or tensors that come first, packed, in that order (see relayout_arena).
function Module:build_arena(opts)
  local free_old = opts and opts.free_old
  local order = opts and opts.order
  -- frozen parameters that still view the previous arena get their own memory, so that the old
  -- arena can be released
  local prev = rawget(self, 'arena')
  if prev then
    local copies = {}
    for _, e in ipairs(self:named_modules()) do
      local m = e[2]
      for _, n in ipairs(m._param_names) do
        local p = m._parameters[n]
        if p and rawget(p, 'requires_grad') ~= true and p._c.storage == prev._c.storage then
          if not copies[p] then
            copies[p] = p:clone()
            rawset(copies[p], 'requires_grad', false)
          end
          m._parameters[n] = copies[p]
        end
      end
    end
  end
  local named0 = self:named_parameters{trainable = true}
  local named = arena_order(self, named0, order, 'build_arena')
  local own = owners(self)
  for _, e in ipairs(named) do
    if e[2].dtype ~= 'f32' then
      error(string.format("build_arena: parameter '%s' is %s, expected f32", e[1], e[2].dtype), 2)
    end
  end
  local layout, total, used = plan_layout(named, order ~= nil)
  -- every element is overwritten below unless there are alignment gaps (which must be zero)
  -- on the parameters' device (the first parameter's; all must share it)
  local dev = #named > 0 and named[1][2]:device_of() or nil
  for _, e in ipairs(named) do
    if e[2].device ~= named[1][2].device then
      error(string.format("build_arena: parameter '%s' is on %s but '%s' is on %s; move the module with :to()",
        e[1], e[2].device, named[1][1], named[1][2].device), 2)
    end
  end
  local arena = (used == total and total > 0) and tensor.empty(total, {device = dev})
                or tensor.zeros(math.max(total, 1), {device = dev})
  local grad_arena = tensor.zeros(math.max(total, 1), {device = dev})
  local params, grads = {}, {}
  for i, e in ipairs(named) do
    local old, L = e[2], layout[i]
    local shape = L.shape
    local view = arena:narrow(0, L.offset, L.numel):view(#shape > 0 and shape or {})
    view:copy_(old)
    local gview = grad_arena:narrow(0, L.offset, L.numel):view(#shape > 0 and shape or {})
    local oldg = rawget(old, 'grad')
    if oldg then gview:copy_(oldg) end
    rawset(view, 'requires_grad', true)
    rawset(view, 'grad', gview)
    for _, o in ipairs(own[old]) do o[1]._parameters[o[2]] = view end
    params[i], grads[i] = view, gview
    if free_old then
      if oldg then oldg:free() end
      old:free()
    end
  end
  -- _arena_params / _arena_grads stay in named_parameters() order (has_arena() compares against it)
  if order ~= nil then
    local pos = {}
    for i, e in ipairs(named0) do pos[e[2]] = i end
    local np, ng = {}, {}
    for i, e in ipairs(named) do np[pos[e[2]]], ng[pos[e[2]]] = params[i], grads[i] end
    params, grads = np, ng
  end
  rawset(self, 'arena', arena)
  rawset(self, 'grad_arena', grad_arena)
  rawset(self, 'arena_layout', layout)
  rawset(self, 'arena_order', order ~= nil and order_names(layout) or nil)
  rawset(self, '_arena_params', params)
  rawset(self, '_arena_grads', grads)
  return self
end

-- relayout_arena(order) -> self: re-lay this model's arena in place so that the parameters in `order` (names
-- or tensors; e.g. an optimizer's groups one after the other) come first, in that order, back to back; the
-- others follow in named_parameters() order. See the header: the same tensor objects stay valid, values and
-- gradients move with their parameters bit for bit, derived views do not follow. Needs an arena this model
-- owns (has_arena()); costs one transient copy of the arena and of the gradient arena.
function Module:relayout_arena(order)
  if order == nil then error('relayout_arena: expected a list of parameter names or tensors', 2) end
  if not self:has_arena() then
    error(string.format('relayout_arena: %s owns no arena that backs its trainable parameters (build_arena{order ' ..
      '= ...} builds one in that order)', self.__name), 2)
  end
  local arena, garena = rawget(self, 'arena'), rawget(self, 'grad_arena')
  local ps, gs = rawget(self, '_arena_params'), rawget(self, '_arena_grads')
  local grad_of = {}
  for i, p in ipairs(ps) do grad_of[p] = gs[i] end
  local list = arena_order(self, self:named_parameters{trainable = true}, order, 'relayout_arena')
  local layout, total = plan_layout(list, true)
  local a0, g0 = tonumber(arena._c.offset), tonumber(garena._c.offset)
  local moves, same = {}, true
  for i, e in ipairs(list) do
    local p, g = e[2], grad_of[e[2]]
    if p._c.storage ~= arena._c.storage or g._c.storage ~= garena._c.storage or p._c == arena._c
       or not p:is_contiguous() or not g:is_contiguous() then
      error(string.format("relayout_arena: parameter '%s' is not a contiguous view of the arena", e[1]), 2)
    end
    local old, gold = tonumber(p._c.offset) - a0, tonumber(g._c.offset) - g0
    moves[i] = {p = p, g = g, old = old, gold = gold, new = layout[i].offset, n = layout[i].numel}
    if old ~= layout[i].offset or gold ~= layout[i].offset then same = false end
  end
  if not same then
    local tmp, gtmp = arena:clone(), garena:clone()
    local len = arena:numel()
    if total < len then   -- the tail past the packed parameters is a gap: zero, as gaps are
      arena:narrow(0, total, len - total):zero_()
      garena:narrow(0, total, len - total):zero_()
    end
    for _, m in ipairs(moves) do
      if m.n > 0 then
        arena:narrow(0, m.new, m.n):copy_(tmp:narrow(0, m.old, m.n))
        garena:narrow(0, m.new, m.n):copy_(gtmp:narrow(0, m.gold, m.n))
      end
    end
    tmp:free(); gtmp:free()
    -- each view keeps its identity (and its shape and strides); only where it starts in the storage changes
    for _, m in ipairs(moves) do
      m.p._c.offset = a0 + m.new
      m.g._c.offset = g0 + m.new
    end
  end
  rawset(self, 'arena_layout', layout)
  rawset(self, 'arena_order', order_names(layout))
  return self
end

-- get_parameters() -> arena, grad_arena (torch7's getParameters): the flat parameter and gradient
-- vectors, building the arena first when this model has none (or a stale one).
function Module:get_parameters()
  if not self:has_arena() then self:build_arena() end
  return self.arena, self.grad_arena
end
Module.getParameters = Module.get_parameters

-- True when this model owns an arena that still backs all of its trainable parameters.
function Module:has_arena()
  local ps = rawget(self, '_arena_params')
  if not ps then return false end
  local cur = self:parameters{trainable = true}
  local ok = #cur == #ps
  if ok then for i = 1, #ps do if cur[i] ~= ps[i] then ok = false break end end end
  if not ok then
    -- re-homed into another arena, or parameters were added / replaced: drop the stale arena
    rawset(self, 'arena', nil); rawset(self, 'grad_arena', nil); rawset(self, 'arena_layout', nil)
    rawset(self, 'arena_order', nil); rawset(self, '_arena_params', nil); rawset(self, '_arena_grads', nil)
  end
  return ok
end

-- ---------------------------------------------------------------- devices

-- m:to(device) -> m: move every parameter and buffer of m and its submodules to device ('cpu', 'cuda', 'sim'),
-- in place (PyTorch's Module.to). Gradients go with their parameters; a model that had an arena gets a new one
-- on the device, in the same order (so optimizers must be built after the move, as in PyTorch). Tensors already
-- there stay.
function Module:to(device)
  local dev = tensor.device(device)
  local had_arena = self:has_arena()
  local moved = {}   -- a parameter shared by several modules moves once
  for _, m in ipairs(self:modules()) do
    for _, name in ipairs(m._param_names) do
      local p = m._parameters[name]
      if p ~= nil and p.device ~= dev then
        local q = moved[p]
        if not q then
          q = p:to(dev)
          local g = rawget(p, 'grad')
          rawset(q, 'requires_grad', rawget(p, 'requires_grad'))
          if g ~= nil then rawset(q, 'grad', g:to(dev)) end
          moved[p] = q
        end
        m._parameters[name] = q
      end
    end
    for _, name in ipairs(m._buffer_names) do
      local b = m._buffers[name]
      if b ~= nil and b.device ~= dev then m._buffers[name] = b:to(dev) end
    end
  end
  if had_arena and next(moved) ~= nil then self:build_arena{order = rawget(self, 'arena_order')} end
  return self
end
-- m:cpu() -> m:to('cpu')
function Module:cpu() return self:to('cpu') end
-- m:cuda([n]) -> m:to('cuda:n')
function Module:cuda(n) return self:to('cuda:' .. (n or 0)) end

-- ---------------------------------------------------------------- state dict

-- state_dict() -> {name = tensor} (parameters, frozen ones included, and persistent buffers).
-- The tensors are the live ones (arena views), as PyTorch returns references; clone to snapshot.
-- state_dict_keys() gives the names in order.
function Module:state_dict()
  local sd = {}
  for _, e in ipairs(self:named_parameters()) do sd[e[1]] = e[2] end
  for _, e in ipairs(self:named_buffers()) do
    local np = rawget(e[3], '_nonpersistent')
    if not (np and np[e[4]]) then sd[e[1]] = e[2] end
  end
  return sd
end

function Module:state_dict_keys()
  local keys = {}
  for _, e in ipairs(self:named_parameters()) do keys[#keys + 1] = e[1] end
  for _, e in ipairs(self:named_buffers()) do
    local np = rawget(e[3], '_nonpersistent')
    if not (np and np[e[4]]) then keys[#keys + 1] = e[1] end
  end
  return keys
end

local function shape_str(s) return '[' .. table.concat(s, ', ') .. ']' end

-- load_state_dict(tbl[, strict = true]): copies values in place (arena views stay views; dtype is
-- converted). Strict: every missing, unexpected or mis-shaped name is reported in ONE error.
-- Non-strict: loads what fits by name and shape; returns {missing = {...}, unexpected = {...},
-- mismatched = {...}} (name lists) either way.
function Module:load_state_dict(tbl, strict)
  if strict == nil then strict = true end
  if type(tbl) ~= 'table' then error('load_state_dict: expected a table name -> tensor, got ' .. type(tbl), 2) end
  local own = self:state_dict()
  local keys = self:state_dict_keys()
  local missing, unexpected, mismatched, msgs = {}, {}, {}, {}
  for _, k in ipairs(keys) do
    local src = tbl[k]
    if src == nil then missing[#missing + 1] = k
    elseif not is_tensor(src) then
      mismatched[#mismatched + 1] = k
      msgs[#msgs + 1] = string.format('%s: expected a tensor, got %s', k, type(src))
    else
      local a, b = own[k]:size(), src:size()
      local same = #a == #b
      if same then for i = 1, #a do if a[i] ~= b[i] then same = false end end end
      if not same then
        mismatched[#mismatched + 1] = k
        msgs[#msgs + 1] = string.format('%s: shape %s in the checkpoint, %s in the model', k, shape_str(b), shape_str(a))
      end
    end
  end
  local names = {}
  for k in pairs(tbl) do names[#names + 1] = k end
  table.sort(names, function(x, y) return tostring(x) < tostring(y) end)
  for _, k in ipairs(names) do if own[k] == nil then unexpected[#unexpected + 1] = tostring(k) end end
  if strict and (#missing + #unexpected + #mismatched > 0) then
    local parts = {}
    if #missing > 0 then parts[#parts + 1] = 'missing keys: ' .. table.concat(missing, ', ') end
    if #unexpected > 0 then parts[#parts + 1] = 'unexpected keys: ' .. table.concat(unexpected, ', ') end
    if #mismatched > 0 then parts[#parts + 1] = 'size mismatch: ' .. table.concat(msgs, '; ') end
    error(string.format('load_state_dict (%s): %s', self.__name, table.concat(parts, '; ')), 2)
  end
  local bad = {}
  for _, k in ipairs(mismatched) do bad[k] = true end
  for _, k in ipairs(keys) do
    local src = tbl[k]
    if src ~= nil and not bad[k] then own[k]:copy_(src) end
  end
  return {missing = missing, unexpected = unexpected, mismatched = mismatched}
end

-- ---------------------------------------------------------------- printing

-- One-line description of this module's own configuration (subclasses override extra_repr).
function Module:extra_repr() return '' end

local function render(m, indent)
  local extra = m:extra_repr()
  local kids = m._module_names
  if #kids == 0 then return m.__name .. '(' .. extra .. ')' end
  local lines = {m.__name .. '('}
  local pad = string.rep('  ', indent + 1)
  if extra ~= '' then lines[#lines + 1] = pad .. extra end
  for _, n in ipairs(kids) do
    local c = m._modules[n]
    if c then lines[#lines + 1] = pad .. '(' .. n .. '): ' .. render(c, indent + 1) end
  end
  lines[#lines + 1] = string.rep('  ', indent) .. ')'
  return table.concat(lines, '\n')
end

Module.__tostring = function(self) return render(self, 0) end

-- One line, for tables and the REPL: 'MaskedAutoencoderViT (112.97M trainable parameters, arena)'.
function Module:summary()
  local n = self:num_parameters()
  local size = n >= 1e6 and string.format('%.2fM', n / 1e6) or (n >= 1e3 and string.format('%.1fK', n / 1e3) or tostring(n))
  return string.format('%s (%s trainable parameters%s)', self.__name, size, rawget(self, 'arena') and ', arena' or '')
end

-- nn.Module() builds a bare container (children added with add_module or by assignment).
setmetatable(Module, {__call = function(c, ...) return Module.new(c, ...) end})

return Module
