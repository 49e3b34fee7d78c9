-- Learning-rate and momentum schedules over the fractional epoch t = epoch + it / iters_per_epoch.
--
--   local sched = dama.schedule.warmup_cosine{lr = 3e-4, min_lr = 0, warmup_epochs = 40, epochs = 500}
--   sched(12.5)                       -- the lr at t = 12.5 (also sched:lr(t))
--   sched:adjust(opt, epoch + it / n) -- sets every group's lr = lr(t) * (group.lr_scale or 1); returns lr(t)
--   local mom = dama.schedule.momentum_cosine{m0 = 0.996, epochs = 500}
--   ema:update(mom(t))                -- 0.996 at t = 0 rising to 1 at t = epochs
--
-- warmup_cosine is MAE's util/lr_sched.adjust_learning_rate exactly (computed in double precision):
--   t < warmup: lr * t / warmup;  else min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * (t - warmup) / (epochs - warmup))).
local M = {}

local Schedule = {}
Schedule.__index = Schedule
Schedule.__call = function(self, t) return self:lr(t) end

local function need_number(opts, key, op, default)
  local v = opts[key]
  if v == nil then v = default end
  if type(v) ~= 'number' then error(string.format('%s: %s must be a number, got %s', op, key, type(v)), 3) end
  return v
end

-- warmup_cosine{lr =, min_lr = 0, warmup_epochs = 0, epochs =} -> schedule: sched(epoch_f) is the lr at a
-- fractional epoch (linear warmup, then half-cosine to min_lr), MAE's adjust_learning_rate exactly.
function M.warmup_cosine(opts)
  if type(opts) ~= 'table' then error('warmup_cosine: expected {lr =, min_lr =, warmup_epochs =, epochs =}', 2) end
  local self = setmetatable({}, Schedule)
  self.base_lr = need_number(opts, 'lr', 'warmup_cosine')
  self.min_lr = need_number(opts, 'min_lr', 'warmup_cosine', 0)
  self.warmup_epochs = need_number(opts, 'warmup_epochs', 'warmup_cosine', 0)
  self.epochs = need_number(opts, 'epochs', 'warmup_cosine')
  if self.epochs <= self.warmup_epochs then
    error(string.format('warmup_cosine: epochs (%g) must exceed warmup_epochs (%g)', self.epochs, self.warmup_epochs), 2)
  end
  return self
end

function Schedule:lr(t)
  if t < self.warmup_epochs then
    return self.base_lr * t / self.warmup_epochs
  end
  return self.min_lr + (self.base_lr - self.min_lr) * 0.5 *
    (1.0 + math.cos(math.pi * (t - self.warmup_epochs) / (self.epochs - self.warmup_epochs)))
end

-- Set each group's lr to lr(t) times its lr_scale (layer-wise decay); returns lr(t).
function Schedule:adjust(optimizer, t)
  local lr = self:lr(t)
  M.set_lr(optimizer, lr)
  return lr
end

-- Set every group's lr to lr * (group.lr_scale or 1).
function M.set_lr(optimizer, lr)
  local groups = optimizer.param_groups or optimizer
  for _, g in ipairs(groups) do
    if g.lr_scale ~= nil then g.lr = lr * g.lr_scale else g.lr = lr end
  end
end

-- A constant schedule (same interface).
function M.constant(opts)
  local lr = type(opts) == 'table' and opts.lr or opts
  local self = setmetatable({base_lr = lr}, Schedule)
  self.lr = function(_, _) return lr end
  return self
end

-- The EMA / momentum-encoder schedule: m(t) = 1 - (1 - m0) * 0.5 * (1 + cos(pi * t / epochs)).
local Momentum = {}
Momentum.__index = Momentum
Momentum.__call = function(self, t) return self:value(t) end

-- momentum_cosine{m0 =, epochs =} -> schedule: m(epoch) rises from m0 to 1 along a half cosine (EMA momentum).
function M.momentum_cosine(opts)
  if type(opts) ~= 'table' then error('momentum_cosine: expected {m0 =, epochs =}', 2) end
  local self = setmetatable({}, Momentum)
  self.m0 = need_number(opts, 'm0', 'momentum_cosine', 0.996)
  self.epochs = need_number(opts, 'epochs', 'momentum_cosine')
  return self
end

function Momentum:value(t)
  return 1.0 - (1.0 - self.m0) * 0.5 * (1.0 + math.cos(math.pi * t / self.epochs))
end

return M
