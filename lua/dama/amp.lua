-- dama.amp — mixed precision: which precision a device's GEMMs run in, and the dynamic loss scaler that FP16
-- training needs (the reference trained with torch.cuda.amp: autocast + GradScaler).
--
--   dama.amp.set_precision('bf16', 'cuda')   -- GEMM inputs in BF16, FP32 accumulation and outputs (fp32 | bf16 | fp16)
--   local scaler = dama.amp.GradScaler()     -- for 'fp16': scale the loss, unscale and check the gradients
--   local loss = step(x); scaler:scale(loss):backward()
--   local skipped = scaler:step(opt)          -- opt:step() unless a gradient overflowed; then the step is skipped
--   scaler:update()                           -- halve the scale after an overflow, double it after 2000 good steps
--
-- The scaler follows torch.cuda.amp.GradScaler's rules (init 2^16, growth 2 every 2000 finite steps, backoff 0.5):
-- gradients are unscaled in place (one multiply per run of back-to-back gradients in the arena) and counted for
-- non-finite values; a step with any is skipped. FP32 master weights, optimizer state, reductions, norms and losses
-- stay FP32 in every precision. Precision is a property of the cuda backend's GEMMs only: the CPU runs FP32
-- (CPU BF16 is a later issue), so asking for bf16/fp16 on a cpu or sim device is an error.
local ffi = require 'ffi'
local core = require 'dama.ffi'
local C = core.C

local A = {}

local PRECISIONS = {fp32 = 0, bf16 = 2, fp16 = 3}   -- dama_dtype: DAMA_F32, DAMA_BF16, DAMA_F16
A.precisions = {'fp32', 'bf16', 'fp16'}

pcall(ffi.cdef, [[
dama_status dama_cuda_set_autocast(int32_t dtype);
int32_t dama_cuda_get_autocast(void);
]])

local function cuda_sym(name)
  local ok, f = pcall(function() return C[name] end)
  return ok and f or nil
end

-- Set the precision of `device`'s GEMMs ('cuda', 'cuda:0', a dama device string). fp32 is accepted everywhere.
function A.set_precision(p, device)
  p = p or 'fp32'
  if PRECISIONS[p] == nil then
    error(string.format("precision: expected one of fp32, bf16, fp16, got '%s'", tostring(p)), 2)
  end
  device = tostring(device or 'cpu')
  local set = cuda_sym('dama_cuda_set_autocast')
  if device:match('^cuda') then
    if not set then error("precision: this build has no CUDA backend", 2) end
    if set(PRECISIONS[p]) ~= 0 then error('precision: ' .. ffi.string(C.dama_last_error()), 2) end
  elseif p ~= 'fp32' then
    error(string.format("precision=%s: mixed precision runs on a cuda device; %s computes in fp32", p, device), 2)
  elseif set then
    set(0)
  end
end

-- The precision of the cuda backend's GEMMs now ('fp32' without a CUDA backend).
function A.get_precision()
  local get = cuda_sym('dama_cuda_get_autocast')
  local d = get and get() or 0
  for k, v in pairs(PRECISIONS) do if v == d then return k end end
  return 'fp32'
end

-- ---- the dynamic loss scaler ----
local GradScaler = {}
GradScaler.__index = GradScaler

function A.GradScaler(opts)
  opts = opts or {}
  local s = setmetatable({
    scale_value = opts.init_scale or 65536.0,
    growth_factor = opts.growth_factor or 2.0,
    backoff_factor = opts.backoff_factor or 0.5,
    growth_interval = opts.growth_interval or 2000,
    enabled = opts.enabled ~= false,
    growth_tracker = 0,     -- finite steps since the last change of scale
    found_inf = false,      -- the last unscale_ saw a non-finite gradient
    unscaled = false,       -- unscale_ already ran for this step
    skipped_steps = 0,
  }, GradScaler)
  if not (s.growth_factor > 1) then error('GradScaler: growth_factor must be > 1', 2) end
  if not (s.backoff_factor > 0 and s.backoff_factor < 1) then error('GradScaler: backoff_factor must be in (0, 1)', 2) end
  if not (s.growth_interval >= 1) then error('GradScaler: growth_interval must be >= 1', 2) end
  return s
end

function GradScaler:get_scale() return self.enabled and self.scale_value or 1.0 end

-- loss * scale (a new tensor in the graph; loss itself is unchanged). The scale is a 0-d tensor on the loss's device,
-- made at the first call and refilled by update() when the scale changes, so a captured CUDA graph (which froze the
-- tensor, not the number) multiplies by the current scale at every replay.
function GradScaler:scale(loss)
  if not self.enabled then return loss end
  local t = self._scale_t
  if t == nil or t.device ~= loss.device then
    t = loss:new_full({}, self.scale_value)
    self._scale_t = t
  end
  return loss * t
end

local function refill(self)
  if self._scale_t ~= nil then self._scale_t:fill_(self.scale_value) end
end

-- runs of back-to-back gradients of the optimizer's parameters (one span per run of the arena)
local spanbox = ffi.new('dama_tensor*[1]')
local function grad_runs(opt)
  local Tensor = require('dama.tensor').Tensor
  local runs, run, run_n = {}, nil, 0
  local function flush()
    if run_n > 0 then
      spanbox[0] = nil
      core.call(C.dama_flat_span, spanbox, run._c, run_n)
      runs[#runs + 1] = Tensor._wrap(spanbox[0])
    end
    run, run_n = nil, 0
  end
  for _, g in ipairs(opt.param_groups) do
    for _, p in ipairs(g.params) do
      local gr = rawget(p, 'grad')
      if gr ~= nil and gr:numel() > 0 then
        if not gr:is_contiguous() then flush(); runs[#runs + 1] = gr
        elseif run_n > 0 and gr._c.storage == run._c.storage and tonumber(gr._c.offset) == tonumber(run._c.offset) + run_n then
          run_n = run_n + gr:numel()
        else flush(); run, run_n = gr, gr:numel() end
      end
    end
  end
  flush()
  return runs
end

-- Divide every gradient by the scale in place and note whether any is non-finite. Once per step (step() calls it
-- when the caller has not, e.g. before clipping gradients).
function GradScaler:unscale_(opt)
  if not self.enabled or self.unscaled then return self.found_inf end
  local inv = 1.0 / self.scale_value
  local bad = 0
  for _, g in ipairs(grad_runs(opt)) do
    g:mul_(inv)
    bad = bad + g:count_nonfinite()
  end
  self.found_inf = bad > 0
  self.unscaled = true
  return self.found_inf
end

-- opt:step() unless the unscaled gradients hold an inf or NaN; returns true when the step was skipped.
function GradScaler:step(opt)
  if not self.enabled then opt:step(); return false end
  self:unscale_(opt)
  if self.found_inf then
    self.skipped_steps = self.skipped_steps + 1
    return true
  end
  opt:step()
  return false
end

-- The next step's scale: backoff after an overflow, growth after growth_interval finite steps in a row.
function GradScaler:update()
  if not self.enabled then return end
  if self.found_inf then
    self.scale_value = self.scale_value * self.backoff_factor
    self.growth_tracker = 0
    refill(self)
  else
    self.growth_tracker = self.growth_tracker + 1
    if self.growth_tracker >= self.growth_interval then
      local grown = self.scale_value * self.growth_factor
      if grown < math.huge then self.scale_value = grown; refill(self) end
      self.growth_tracker = 0
    end
  end
  self.found_inf, self.unscaled = false, false
end

-- What a checkpoint keeps, so a resumed run scales exactly as the uninterrupted one.
function GradScaler:state_dict()
  return {scale = self.scale_value, growth_tracker = self.growth_tracker, growth_factor = self.growth_factor,
          backoff_factor = self.backoff_factor, growth_interval = self.growth_interval,
          skipped_steps = self.skipped_steps}
end

function GradScaler:load_state_dict(sd)
  if type(sd) ~= 'table' or type(sd.scale) ~= 'number' or not (sd.scale > 0) then
    error('GradScaler:load_state_dict: expected a table with a positive number `scale`', 2)
  end
  self.scale_value = sd.scale
  refill(self)
  self.growth_tracker = tonumber(sd.growth_tracker) or 0
  self.growth_factor = tonumber(sd.growth_factor) or self.growth_factor
  self.backoff_factor = tonumber(sd.backoff_factor) or self.backoff_factor
  self.growth_interval = tonumber(sd.growth_interval) or self.growth_interval
  self.skipped_steps = tonumber(sd.skipped_steps) or 0
end

return A
