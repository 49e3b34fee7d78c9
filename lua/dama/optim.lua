-- Optimizers (PyTorch semantics), parameter-group rules (timm / MAE), gradient clipping and EMA.
--
--   local groups = dama.optim.param_groups_weight_decay(net, 0.05)   -- timm add_weight_decay; net's arena by group
--   local opt = dama.optim.AdamW(groups, {lr = 3e-4, betas = {0.9, 0.95}})
--   local sched = dama.schedule.warmup_cosine{lr = 3e-4, warmup_epochs = 40, epochs = 500}
--   for each iteration: sched:adjust(opt, epoch + it / iters); opt:zero_grad(); loss:backward(); opt:step()
--
-- Parameters are f32 CPU tensors whose gradient is the `.grad` field (same number of elements; nil = no
-- gradient this step, the parameter is skipped as in PyTorch). They can be one tensor per parameter, or a
-- flat arena tensor whose `.grad` is the gradient arena, or narrow()ed ranges of it: the math is element-wise.
-- Parameters whose data, gradient and state lie back to back in memory are updated by one C call
-- (dama_adamw_step / dama_sgd_step from runtime/api/nn.h), so views into one arena cost one call per run; an
-- arena laid out by group (param_groups_weight_decay / param_groups_lrd given the module) is one call per group.
--
-- params_or_groups: a list of tensors, a list of {name, tensor} pairs (from named_parameters()), a module
-- with named_parameters() / parameters(), or a list of groups {params = {...}, names = {...}, lr =, ...}
-- whose fields override the defaults. Each group keeps lr, weight_decay, lr_scale (read by dama.schedule)
-- and its optimizer's hyper-parameters in opt.param_groups[i]. State is keyed by parameter name (or the
-- parameter's 0-based index in the optimizer when unnamed), which names the tensors in a checkpoint.
local dffi = require 'dama.ffi'
local tensor = require 'dama.tensor'
local ffi, C = dffi.ffi, dffi.C
local call = dffi.call
local is_tensor = tensor.is_tensor

local M = {}

-- Counts of the optimizer kernel calls made so far (one per fused run of parameters): kernel_calls.adamw_step,
-- .sgd_step, .ema_update, and .grad_fill (the fills of Optimizer:zero_grad). Read-only for callers; tests and
-- benchmarks diff two readings to get calls per step (reset_kernel_calls() sets them to 0).
M.kernel_calls = {adamw_step = 0, sgd_step = 0, ema_update = 0, grad_fill = 0}
-- reset_kernel_calls(): set every count of dama.optim.kernel_calls to 0.
function M.reset_kernel_calls()
  for k in pairs(M.kernel_calls) do M.kernel_calls[k] = 0 end
end
local kcalls = M.kernel_calls

local function is_pair(x) return type(x) == 'table' and not is_tensor(x) and type(x[1]) == 'string' and is_tensor(x[2]) end

-- Normalise anything parameter-like into a list of {name = string|nil, param = tensor}.
local function param_list(x, op)
  if is_tensor(x) then return {{param = x}} end
  if type(x) ~= 'table' then error(op .. ': expected tensors, {name, tensor} pairs or a module, got ' .. type(x), 3) end
  if type(x.named_parameters) == 'function' then
    local r = {}
    for _, p in ipairs(x:named_parameters()) do r[#r + 1] = {name = p[1], param = p[2]} end
    return r
  end
  if type(x.parameters) == 'function' then
    local r = {}
    for _, p in ipairs(x:parameters()) do r[#r + 1] = {param = p} end
    return r
  end
  local r = {}
  for i, e in ipairs(x) do
    if is_tensor(e) then r[#r + 1] = {param = e}
    elseif is_pair(e) then r[#r + 1] = {name = e[1], param = e[2]}
    else error(string.format('%s: entry %d is not a tensor or a {name, tensor} pair', op, i), 3) end
  end
  return r
end
M._param_list = param_list

local function grad_of(p) return rawget(p, 'grad') end

local function check_f32(t, what, key)
  if t.dtype ~= 'f32' or not t:is_contiguous() then
    error(string.format("optimizer: %s of parameter '%s' must be a contiguous f32 tensor, got %s%s", what, key,
      t:summary(), t:is_contiguous() and '' or ' (not contiguous)'), 4)
  end
end

-- ---------------------------------------------------------------- the optimizer base

local Optimizer = {}
Optimizer.__index = Optimizer

local HYPER_SKIP = {params = true, names = true, keys = true}

local function new_optimizer(kind, params, defaults, opts, state_fields)
  opts = opts or {}
  local self = setmetatable({type = kind, defaults = {}, param_groups = {}, state = {}, _state_fields = state_fields},
    Optimizer)
  for k, v in pairs(defaults) do self.defaults[k] = v end
  for k, v in pairs(opts) do self.defaults[k] = v end
  -- groups: a list of tables with `params`, else one group of everything
  local raw_groups
  if type(params) == 'table' and not is_tensor(params) and #params > 0 and type(params[1]) == 'table'
     and not is_tensor(params[1]) and not is_pair(params[1]) and params[1].params ~= nil then
    raw_groups = params
  else
    raw_groups = {{params = params}}
  end
  local seen, seen_t, index = {}, {}, 0
  for gi, rg in ipairs(raw_groups) do
    local list = param_list(rg.params, kind)
    local g = {params = {}, keys = {}}
    for k, v in pairs(self.defaults) do g[k] = v end
    for k, v in pairs(rg) do if not HYPER_SKIP[k] then g[k] = v end end
    for i, e in ipairs(list) do
      local name = e.name or (rg.names and rg.names[i])
      local key = name or tostring(index)
      if seen[key] then error(string.format("%s: parameter '%s' appears twice", kind, key), 3) end
      if seen_t[e.param] then error(string.format("%s: parameter '%s' is given twice", kind, key), 3) end
      seen[key], seen_t[e.param] = true, true
      g.params[#g.params + 1] = e.param
      g.keys[#g.keys + 1] = key
      index = index + 1
    end
    if type(g.lr) ~= 'number' then error(kind .. ': lr must be a number (opts.lr or the group\'s lr)', 3) end
    self.param_groups[gi] = g
  end
  return self
end

-- Allocate the state of group g as one flat buffer per field, with a view for each parameter.
function Optimizer:_init_group_state(g)
  if g._flat or #self._state_fields == 0 then return end
  local total = 0
  for _, p in ipairs(g.params) do total = total + p:numel() end
  g._flat = {}
  local dev = #g.params > 0 and g.params[1]:device_of() or nil   -- state lives with the parameters
  for _, field in ipairs(self._state_fields) do g._flat[field] = tensor.zeros(math.max(total, 1), {device = dev}) end
  local off = 0
  for i, p in ipairs(g.params) do
    local key, n = g.keys[i], p:numel()
    local st = self.state[key] or {step = 0}
    for _, field in ipairs(self._state_fields) do
      local view = g._flat[field]:narrow(0, off, math.max(n, 0)):view(p:size())
      if st[field] then view:copy_(st[field]) end
      st[field] = view
    end
    self.state[key] = st
    off = off + n
  end
end

-- Call kernel(p, g, s, n, step) over runs of parameters that lie back to back in one storage (an arena), with
-- their gradients and state back to back too: p, g and s[f] are 1-D tensor spans of n elements over those runs, on
-- the parameters' device. Adjacency is read from storage and offsets, never from host pointers.
local spanbox = ffi.new('dama_tensor*[1]')
local function span(t, n)
  spanbox[0] = nil
  call(C.dama_flat_span, spanbox, t._c, n)
  return tensor.Tensor._wrap(spanbox[0])
end
local function follows(t, run_t, run_n)
  local a, b = t._c, run_t._c
  return a.storage == b.storage and tonumber(a.offset) == tonumber(b.offset) + run_n
end

function Optimizer:_foreach(g, kernel)
  local fields = self._state_fields
  local nf = #fields
  local run_p, run_g, run_s, run_n, run_step = nil, nil, {}, 0, nil
  local function flush()
    if run_n > 0 then
      local ss = {}
      for f = 1, nf do ss[f] = span(run_s[f], run_n) end
      kernel(span(run_p, run_n), span(run_g, run_n), ss, run_n, run_step)
    end
    run_n = 0
  end
  for i, p in ipairs(g.params) do
    local gr = grad_of(p)
    local n = p:numel()
    if gr ~= nil and n > 0 then
      local key = g.keys[i]
      check_f32(p, 'the data', key)
      check_f32(gr, 'the gradient', key)
      if gr:numel() ~= n then
        error(string.format("optimizer: the gradient of parameter '%s' has %d elements, the parameter %d", key,
          gr:numel(), n), 3)
      end
      local st = self.state[key]
      st.step = st.step + 1
      local contiguous = run_n > 0 and st.step == run_step and follows(p, run_p, run_n) and follows(gr, run_g, run_n)
      local sp = {}
      for f = 1, nf do
        sp[f] = st[fields[f]]
        if contiguous and not follows(sp[f], run_s[f], run_n) then contiguous = false end
      end
      if contiguous then
        run_n = run_n + n
      else
        flush()
        run_p, run_g, run_s, run_n, run_step = p, gr, sp, n, st.step
      end
    end
  end
  flush()
end

function Optimizer:step()
  for _, g in ipairs(self.param_groups) do
    self:_init_group_state(g)
    self:_step_group(g)
  end
end

-- Zero every gradient in place (keeps arena views valid); set_to_none = true drops them instead.
function Optimizer:zero_grad(set_to_none)
  -- gradients that lie back to back in one storage (the arena's .grad views) are zeroed by one fill per run
  local run, run_n = nil, 0
  local function flush()
    if run_n > 0 then kcalls.grad_fill = kcalls.grad_fill + 1; span(run, run_n):zero_() end
    run, run_n = nil, 0
  end
  for _, g in ipairs(self.param_groups) do
    for _, p in ipairs(g.params) do
      local gr = grad_of(p)
      if gr ~= nil then
        if set_to_none then rawset(p, 'grad', nil)
        elseif not gr:is_contiguous() then flush(); kcalls.grad_fill = kcalls.grad_fill + 1; gr:zero_()
        elseif run_n > 0 and follows(gr, run, run_n) then run_n = run_n + gr:numel()
        else flush(); run, run_n = gr, gr:numel() end
      end
    end
  end
  flush()
end

-- All parameters, in group order.
function Optimizer:parameters()
  local r = {}
  for _, g in ipairs(self.param_groups) do for _, p in ipairs(g.params) do r[#r + 1] = p end end
  return r
end

-- {type =, param_groups = {{lr =, ..., keys = {...}}}, state = {[key] = {step = n, <field> = tensor}}}.
-- The tensors are the live state (views); a checkpoint writer copies them out.
function Optimizer:state_dict()
  local groups = {}
  for i, g in ipairs(self.param_groups) do
    local c = {keys = {}}
    for k, v in pairs(g) do
      if k ~= 'params' and k ~= 'keys' and k:sub(1, 1) ~= '_' then c[k] = v end
    end
    for j, key in ipairs(g.keys) do c.keys[j] = key end
    groups[i] = c
  end
  local state = {}
  for key, st in pairs(self.state) do
    local c = {}
    for k, v in pairs(st) do c[k] = v end
    state[key] = c
  end
  return {type = self.type, param_groups = groups, state = state}
end

-- Problems with a state dict (list of strings naming each bad entry); empty when it fits.
function Optimizer:check_state_dict(sd)
  local problems = {}
  if sd.type and sd.type ~= self.type then
    problems[#problems + 1] = string.format('state is for %s, the optimizer is %s', tostring(sd.type), self.type)
  end
  local groups = sd.param_groups or {}
  if #groups ~= #self.param_groups then
    problems[#problems + 1] = string.format('%d parameter groups in the state, %d in the optimizer', #groups,
      #self.param_groups)
  end
  local params = {}
  for _, g in ipairs(self.param_groups) do
    for i, key in ipairs(g.keys) do params[key] = g.params[i] end
  end
  for gi, g in ipairs(groups) do
    local mine = self.param_groups[gi]
    if mine and g.keys and table.concat(g.keys, '\0') ~= table.concat(mine.keys, '\0') then
      problems[#problems + 1] = string.format('group %d holds different parameters (%d in the state, %d here)', gi,
        #g.keys, #mine.keys)
    end
  end
  local state = sd.state or {}
  local keys = {}
  for key in pairs(state) do keys[#keys + 1] = key end
  table.sort(keys)
  for _, key in ipairs(keys) do
    local p = params[key]
    if not p then
      problems[#problems + 1] = string.format("unexpected state for '%s'", key)
    else
      for _, field in ipairs(self._state_fields) do
        local t = state[key][field]
        if (state[key].step or 0) > 0 and not is_tensor(t) then
          problems[#problems + 1] = string.format("missing %s of '%s'", field, key)
        elseif is_tensor(t) and t:numel() ~= p:numel() then
          problems[#problems + 1] = string.format("%s of '%s' has shape %s, the parameter %s", field, key,
            t:shape_string(), p:shape_string())
        end
      end
    end
  end
  return problems
end

function Optimizer:load_state_dict(sd)
  local problems = self:check_state_dict(sd)
  if #problems > 0 then
    error(self.type .. ':load_state_dict: the state does not fit:\n  ' .. table.concat(problems, '\n  '), 2)
  end
  for gi, g in ipairs(sd.param_groups or {}) do
    local mine = self.param_groups[gi]
    for k, v in pairs(g) do
      if k ~= 'keys' and k ~= 'params' and k:sub(1, 1) ~= '_' then mine[k] = v end
    end
  end
  -- fresh state, copied into the flat buffers
  for _, g in ipairs(self.param_groups) do
    for i, key in ipairs(g.keys) do
      local st = self.state[key]
      if g._flat then
        for _, field in ipairs(self._state_fields) do st[field]:zero_() end
        st.step = 0
      else
        self.state[key] = nil
      end
      local src = (sd.state or {})[key]
      if src then
        if not g._flat then self.state[key] = {step = 0} end
        local dst = self.state[key]
        dst.step = src.step or 0
        for _, field in ipairs(self._state_fields) do
          if is_tensor(src[field]) then
            if g._flat then dst[field]:copy_(src[field]:view(g.params[i]:size()))
            else dst[field] = src[field]:to('f32'):contiguous():view(g.params[i]:size()):clone() end
          end
        end
      end
    end
  end
end

-- ---------------------------------------------------------------- AdamW

-- torch.optim.AdamW: p *= 1 - lr*wd; m, v moments; bias-corrected step. Defaults as PyTorch's.
function M.AdamW(params, opts)
  local self = new_optimizer('AdamW', params, {lr = 1e-3, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 1e-2},
    opts, {'exp_avg', 'exp_avg_sq'})
  for _, g in ipairs(self.param_groups) do
    if type(g.betas) ~= 'table' or #g.betas ~= 2 then error('AdamW: betas must be {beta1, beta2}', 2) end
  end
  self._step_group = function(opt, g)
    local lr, b1, b2, eps, wd = g.lr, g.betas[1], g.betas[2], g.eps, g.weight_decay
    opt:_foreach(g, function(pp, gp, sp, n, step)
      kcalls.adamw_step = kcalls.adamw_step + 1
      call(C.dama_nn_adamw_step, pp._c, gp._c, sp[1]._c, sp[2]._c, n, lr, b1, b2, eps, wd, step)
    end)
  end
  return self
end

-- torch.optim.SGD: g += wd p; momentum buffer (= g on the first step); nesterov; p -= lr g.
function M.SGD(params, opts)
  opts = opts or {}
  local momentum = opts.momentum or 0
  local self = new_optimizer('SGD', params, {lr = opts.lr, momentum = 0, dampening = 0, nesterov = false,
    weight_decay = 0}, opts, momentum ~= 0 and {'momentum_buffer'} or {})
  self._step_group = function(opt, g)
    local has_buf = #opt._state_fields > 0
    if not has_buf and g.momentum ~= 0 then
      error('SGD: a group has momentum but the optimizer was built without (pass momentum in the options)', 3)
    end
    opt:_foreach(g, function(pp, gp, sp, n, step)
      kcalls.sgd_step = kcalls.sgd_step + 1
      call(C.dama_nn_sgd_step, pp._c, gp._c, has_buf and sp[1]._c or nil, n, g.lr, g.momentum, g.dampening, g.weight_decay,
        g.nesterov and 1 or 0, step)
    end)
  end
  -- without momentum there is no state to allocate, but step counts are still kept
  local init = self._init_group_state
  self._init_group_state = function(opt, g)
    if #opt._state_fields == 0 then
      for _, key in ipairs(g.keys) do opt.state[key] = opt.state[key] or {step = 0} end
      return
    end
    return init(opt, g)
  end
  return self
end

-- ---------------------------------------------------------------- parameter-group rules

-- Parameters that take part (requires_grad == false, or nil while others are true, means frozen).
local function trainable(list)
  local any_flag = false
  for _, e in ipairs(list) do if rawget(e.param, 'requires_grad') == true then any_flag = true end end
  local r = {}
  for _, e in ipairs(list) do
    local rg = rawget(e.param, 'requires_grad')
    if not (rg == false or (any_flag and rg == nil)) then r[#r + 1] = e end
  end
  return r
end

local function set_of(list)
  local s = {}
  for k, v in pairs(list or {}) do
    if type(k) == 'number' then s[v] = true else s[k] = true end
  end
  return s
end

-- Given a module that owns a flat arena (dama.nn.Module:has_arena()), re-lay the arena so that each group's
-- parameters are back to back, in group order: then one group is one run for the optimizer's fused step
-- (Optimizer:_foreach), so AdamW makes one kernel call per group per step, and the whole gradient arena is
-- still one fill for zero_grad. The parameter tensors keep their identity (Module:relayout_arena), so the
-- groups returned hold the live views. A module without an arena of its own, or a list of parameters, is
-- left as it is.
local function lay_out_by_groups(x, groups)
  if type(x) ~= 'table' or is_tensor(x) or type(x.relayout_arena) ~= 'function' or not x:has_arena() then return end
  local order = {}
  for _, g in ipairs(groups) do
    for _, p in ipairs(g.params) do order[#order + 1] = p end
  end
  x:relayout_arena(order)
end
M._lay_out_by_groups = lay_out_by_groups

-- timm's param_groups_weight_decay (add_weight_decay): no decay for params with ndim <= 1, names ending
-- in '.bias' and names in skip_list; returns {{params, names, weight_decay = 0}, {params, names, weight_decay = wd}}.
-- named_params: the {name, tensor} list of named_parameters(), or the module itself; a module that owns its
-- arena has it re-laid by group (lay_out_by_groups above): AdamW makes one call per group, 2 per step.
function M.param_groups_weight_decay(named_params, weight_decay, skip_list)
  local list = trainable(param_list(named_params, 'param_groups_weight_decay'))
  local skip = set_of(skip_list)
  local no_decay = {params = {}, names = {}, weight_decay = 0}
  local decay = {params = {}, names = {}, weight_decay = weight_decay or 1e-5}
  for i, e in ipairs(list) do
    local name = e.name or tostring(i - 1)
    local g = (e.param:dim() <= 1 or name:sub(-5) == '.bias' or skip[name]) and no_decay or decay
    g.params[#g.params + 1] = e.param
    g.names[#g.names + 1] = name
  end
  lay_out_by_groups(named_params, {no_decay, decay})
  return {no_decay, decay}
end

-- MAE/BEiT layer id: 0 for cls_token, pos_embed, patch_embed.*; blocks.i.* -> i + 1; anything else num_layers + 1.
function M.layer_id_for_vit(name, num_layers)
  if name == 'cls_token' or name == 'pos_embed' or name:sub(1, 11) == 'patch_embed' then return 0 end
  local b = name:match('^blocks%.(%d+)')
  if b then return tonumber(b) + 1 end
  return num_layers + 1
end

-- MAE's param_groups_lrd (layer-wise lr decay). opts: weight_decay (0.05), no_weight_decay_list ({}),
-- layer_decay (0.75), num_layers (the number of blocks; default: largest blocks.i index + 1).
-- Group per (layer id, decay): lr_scale = layer_decay ^ (num_layers + 1 - id); no decay for ndim == 1 params
-- and names in the list. Groups come in first-seen order, like the Python dict. The lr_scale is applied by
-- dama.schedule's adjust(). Each group also has `layer_id` and `group_name` ('layer_3_decay').
-- named_params: the {name, tensor} list, or the module itself (its arena, when it owns one, is re-laid by
-- group as in param_groups_weight_decay: one AdamW call per group).
function M.param_groups_lrd(named_params, opts)
  opts = opts or {}
  local wd = opts.weight_decay or 0.05
  local layer_decay = opts.layer_decay or 0.75
  local skip = set_of(opts.no_weight_decay_list)
  local list = trainable(param_list(named_params, 'param_groups_lrd'))
  local num_layers = opts.num_layers
  if not num_layers then
    num_layers = 0
    for _, e in ipairs(list) do
      local b = e.name and e.name:match('^blocks%.(%d+)')
      if b then num_layers = math.max(num_layers, tonumber(b) + 1) end
    end
  end
  local groups, by_name = {}, {}
  for i, e in ipairs(list) do
    local name = e.name or tostring(i - 1)
    local no_decay = e.param:dim() == 1 or skip[name]
    local id = M.layer_id_for_vit(name, num_layers)
    local gname = string.format('layer_%d_%s', id, no_decay and 'no_decay' or 'decay')
    local g = by_name[gname]
    if not g then
      g = {params = {}, names = {}, weight_decay = no_decay and 0 or wd, lr_scale = layer_decay ^ (num_layers + 1 - id),
           layer_id = id, group_name = gname}
      by_name[gname] = g
      groups[#groups + 1] = g
    end
    g.params[#g.params + 1] = e.param
    g.names[#g.names + 1] = name
  end
  lay_out_by_groups(named_params, groups)
  return groups
end

-- ---------------------------------------------------------------- gradient norm and clipping

local normbox = ffi.new('double[1]')

-- Global L2 norm of all gradients (nil grads skipped); if max_norm is given and the norm exceeds it, scale
-- every gradient by max_norm / (norm + 1e-6) (torch.nn.utils.clip_grad_norm_). Returns the norm before
-- clipping. A non-finite norm leaves the gradients untouched (the caller decides, e.g. skips the step).
function M.clip_grad_norm(params, max_norm)
  local list
  if getmetatable(params) == Optimizer then list = params:parameters()
  else
    list = {}
    for _, e in ipairs(param_list(params, 'clip_grad_norm')) do list[#list + 1] = e.param end
  end
  local on_device = false
  for _, p in ipairs(list) do
    local g = grad_of(p)
    if g ~= nil and not g:is_host() then on_device = true end
  end
  if on_device then return M._clip_grad_norm_device(list, max_norm) end
  local sq, grads = 0, {}
  for i, p in ipairs(list) do
    local g = grad_of(p)
    if g ~= nil and g:numel() > 0 then
      check_f32(g, 'the gradient', tostring(i - 1))
      call(C.dama_l2_norm, normbox, g:data(), g:numel())   -- host-only path (devices: _clip_grad_norm_device)
      sq = sq + normbox[0] * normbox[0]
      grads[#grads + 1] = g
    end
  end
  local total = math.sqrt(sq)
  if max_norm and total == total and total < math.huge then
    local coef = max_norm / (total + 1e-6)
    if coef < 1 then
      for _, g in ipairs(grads) do call(C.dama_scale_inplace, g:data(), g:numel(), coef) end   -- host tensors
    end
  end
  return total
end
-- The same on a device, with no host read: the squares are summed in f64 on the device, the norm comes back as a
-- 0-d f64 tensor, and the gradients are scaled by min(1, max_norm / (norm + 1e-6)) as a device tensor (1 when the
-- norm is not finite). The f64 sums may round differently from the host path's in the last bits.
function M._clip_grad_norm_device(list, max_norm)
  local sq, grads = nil, {}
  for i, p in ipairs(list) do
    local g = grad_of(p)
    if g ~= nil and g:numel() > 0 then
      check_f32(g, 'the gradient', tostring(i - 1))
      local s = g:double():square():sum()
      sq = sq and sq:add(s) or s
      grads[#grads + 1] = g
    end
  end
  if not sq then return 0 end
  local total = sq:sqrt()
  if max_norm then
    local finite = total:eq(total):mul(total:lt(math.huge))
    local coef = (max_norm / (total + 1e-6)):clamp(-math.huge, 1)
    coef = tensor.where(finite, coef, total:new_full({}, 1)):float()
    for _, g in ipairs(grads) do g:mul_(coef) end
  end
  return total
end

-- get_grad_norm(params) -> the global L2 norm of the gradients of params (no clipping).
M.get_grad_norm = function(params) return M.clip_grad_norm(params, nil) end

-- ---------------------------------------------------------------- EMA of parameters

local EMA = {}
EMA.__index = EMA

-- EMA(params, momentum, {target = tensors}): shadow[i] <- m * shadow[i] + (1 - m) * params[i] on update(m).
-- The shadows are copies of params, or the given target tensors (e.g. a teacher model's parameters, which
-- are first set to params unless copy = false).
function M.EMA(params, momentum, opts)
  opts = opts or {}
  local list = param_list(params, 'EMA')
  local self = setmetatable({momentum = momentum or 0.999, params = {}, shadow = {}, names = {}}, EMA)
  local targets = opts.target and param_list(opts.target, 'EMA target') or nil
  if targets and #targets ~= #list then
    error(string.format('EMA: %d parameters but %d targets', #list, #targets), 2)
  end
  for i, e in ipairs(list) do
    local key = e.name or tostring(i - 1)
    check_f32(e.param, 'the data', key)
    local s
    if targets then
      s = targets[i].param
      check_f32(s, 'the EMA target', key)
      if s:numel() ~= e.param:numel() then
        error(string.format("EMA: target of '%s' has %d elements, the parameter %d", key, s:numel(), e.param:numel()), 2)
      end
      if opts.copy ~= false then s:copy_(e.param:view(s:size())) end
    else
      s = e.param:clone()
    end
    self.params[i], self.shadow[i], self.names[i] = e.param, s, key
  end
  return self
end

function EMA:update(momentum)
  local m = momentum or self.momentum
  for i, p in ipairs(self.params) do
    local n = p:numel()
    if n > 0 then
      local sh, pc = self.shadow[i], p
      if not sh:is_contiguous() or not pc:is_contiguous() then
        error(string.format("EMA: parameter '%s' and its shadow must be contiguous", self.names[i]), 2)
      end
      kcalls.ema_update = kcalls.ema_update + 1
      call(C.dama_nn_ema_update, sh._c, pc._c, n, m)
    end
  end
end

-- Copy the averaged values into the live parameters (e.g. for evaluation).
function EMA:copy_to(params)
  local dst = params and param_list(params, 'EMA:copy_to') or nil
  for i, s in ipairs(self.shadow) do
    local d = dst and dst[i].param or self.params[i]
    d:copy_(s:view(d:size()))
  end
end

function EMA:state_dict()
  local r = {}
  for i, s in ipairs(self.shadow) do r[self.names[i]] = s end
  return r
end

function EMA:load_state_dict(tbl)
  for i, s in ipairs(self.shadow) do
    local t = tbl[self.names[i]]
    if t == nil then error("EMA:load_state_dict: missing '" .. self.names[i] .. "'", 2) end
    s:copy_(t:view(s:size()))
  end
end

M.Optimizer = Optimizer
return M
