-- dama.models: the networks of DAMA pretraining and their model settings (paper Table 5).
--
--   local model = dama.models.dama{arch = 'vit_base', img = 128, patch = 16, chans = 7, setting = 'student1-student2'}
--   model.net1, model.net2, model.head      -- branch-1 MAE, branch-2 MAE, projection head (F_Z)
--
-- Settings:
--   'student1-student2'  two independently initialised MAEs, both trained, no stop-gradient (the reference)
--   'shared'             one MAE used by both branches
--   'ema'                branch 2 is an EMA teacher of branch 1: not trained, updated after each step with
--                        a momentum scheduled by cosine from cfg.ema_momentum (0.996) to 1
-- With feature_loss = false (the MAE baseline) there is no head. The container's state_dict uses the reference's checkpoint names: base_encoder.*, momentum_encoder.*,
-- projs_head.*. Its parameters live in one arena (one flat AdamW loop for everything).
local tensor = require 'dama.tensor'
local nn = require 'dama.nn'
local F = require 'dama.nn.functional'
local autograd = require 'dama.autograd'

local M = {}

-- The feature-regression head (spec §1.3): Linear(D, 2D), LN, ReLU, Linear(2D, D), LN, ReLU, Softmax,
-- LayerNorm eps 1e-5, PyTorch default init.
function M.projection_head(D, hidden)
  hidden = hidden or 2 * D
  return nn.Sequential(nn.Linear(D, hidden), nn.LayerNorm(hidden, 1e-5), nn.ReLU(), nn.Linear(hidden, D),
                       nn.LayerNorm(D, 1e-5), nn.ReLU(), nn.Softmax())
end

-- MAE options from a recipe config: arch name (vit_tiny/small/base/large, or 'custom' with dim/depth/heads)
-- plus img, patch, chans, and optional dec_dim/dec_depth/dec_heads overrides.
function M.mae_options(cfg)
  local o
  if cfg.arch == 'custom' then
    o = {img = cfg.img, patch = cfg.patch, chans = cfg.chans, mlp_ratio = 4, dec_dim = 512, dec_depth = 8,
         dec_heads = 16}
  else
    o = nn.mae_config(cfg.arch or 'vit_base', {img = cfg.img, patch = cfg.patch, chans = cfg.chans})
  end
  for _, k in ipairs{'dim', 'depth', 'heads', 'dec_dim', 'dec_depth', 'dec_heads', 'mlp_ratio'} do
    if cfg[k] ~= nil then o[k] = cfg[k] end
  end
  o.mask_ratio = cfg.mask
  o.arena = false
  return o
end

local DAMA = nn.Module:extend('DAMA')

function DAMA:__init(cfg)
  local setting = cfg.setting or 'student1-student2'
  local o = M.mae_options(cfg)
  rawset(self, 'setting', setting)
  self.base_encoder = nn.MAE(o)
  if setting == 'student1-student2' then
    self.momentum_encoder = nn.MAE(o)
  elseif setting == 'ema' then
    local teacher = nn.MAE(o)
    teacher:load_state_dict(self.base_encoder:state_dict())
    for _, p in ipairs(teacher:parameters()) do p.requires_grad = nil end
    rawset(self, 'teacher', teacher)   -- not a registered child: not optimised; saved by state_dict below
  elseif setting ~= 'shared' then
    error("dama: setting must be 'student1-student2', 'shared' or 'ema', got '" .. tostring(setting) .. "'", 3)
  end
  if cfg.feature_loss ~= false then self.projs_head = M.projection_head(self.base_encoder.embed_dim) end
  self:build_arena()
end

-- The two branches' networks.
function DAMA:branches()
  local net1 = self.base_encoder
  local net2 = self.momentum_encoder or rawget(self, 'teacher') or net1
  return net1, net2
end

-- The EMA teacher is saved under momentum_encoder.* like the reference's commented-out variant.
function DAMA:state_dict()
  local sd = nn.Module.state_dict(self)
  local teacher = rawget(self, 'teacher')
  if teacher then
    for name, t in pairs(teacher:state_dict()) do sd['momentum_encoder.' .. name] = t end
  end
  return sd
end

function DAMA:load_state_dict(sd, strict)
  local teacher = rawget(self, 'teacher')
  if teacher then
    local own, tsd = {}, {}
    for name, t in pairs(sd) do
      local rest = name:match('^momentum_encoder%.(.*)$')
      if rest then tsd[rest] = t else own[name] = t end
    end
    teacher:load_state_dict(tsd, strict)
    return nn.Module.load_state_dict(self, own, strict)
  end
  return nn.Module.load_state_dict(self, sd, strict)
end

-- θ_teacher ← m·θ_teacher + (1 − m)·θ_student (setting 'ema' only).
function DAMA:update_teacher(momentum)
  local teacher = rawget(self, 'teacher')
  if not teacher then return end
  autograd.no_grad(function()
    local tp, sp = teacher:parameters(), self.base_encoder:parameters()
    for i = 1, #tp do
      if sp[i].requires_grad then tp[i]:mul_(momentum):add_(sp[i] * (1 - momentum)) end
    end
  end)
end

M.DAMA = DAMA
function M.dama(cfg) return DAMA(cfg) end

-- ---------------------------------------------------------------- losses (dama.loss)

local loss = {}
M.loss = loss

-- Norm-pix reconstruction loss of an MAE's prediction: (mean over removed patches, per-patch loss).
function loss.normpix(net, x, pred, mask)
  return net:loss(x, pred, mask)
end

-- Feature-regression target (spec §3.2): softmax over features of the mean of the per-token, affine-free
-- LayerNorm (eps 1e-5) of the MLP-branch outputs of the last K blocks.
function loss.feature_target(feats, K)
  if K < 1 or K > #feats then
    error(string.format('feature loss: K = %d blocks, but the encoder has %d', K, #feats), 3)
  end
  local acc
  for b = #feats - K + 1, #feats do
    local n = F.layer_norm(feats[b], nil, nil, 1e-5)
    acc = acc and (acc + n) or n
  end
  return F.softmax(acc / K)
end

-- Feature regression (spec §3.2): SmoothL1(β) (β = 0: squared error, as the reference) summed over features and over all N×(1+K) token slots
-- (paired slot by slot, cls included), no stop-gradient on the target.
function loss.feature(student, feats, K, beta, opts)
  opts = opts or {}
  local target = loss.feature_target(feats, K)
  if opts.detach_target then target = target:detach() end
  local ss, ts = student:size(), target:size()
  if ss[1] ~= ts[1] or ss[2] ~= ts[2] or ss[3] ~= ts[3] then
    error(string.format('feature loss: student %s and target %s differ', student:shape_string(),
      target:shape_string()), 2)
  end
  beta = beta or 2
  -- The reference (builder_sampling.py) switches to a summed MSE at loss_beta = 0; SmoothL1 with beta 0 would be L1.
  if beta == 0 then return F.mse_loss(student, target, opts.reduction or 'sum') end
  return F.smooth_l1_loss(student, target, beta, opts.reduction or 'sum')
end

return M
