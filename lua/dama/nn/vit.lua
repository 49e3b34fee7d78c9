-- dama.nn.ViT: the Vision Transformer encoder with timm's VisionTransformer parameter names, a
-- masking hook for MAE/DAMA pretraining, and timm's classification heads for fine-tuning.
--
--   local vit = dama.nn.ViT{img = 128, patch = 16, chans = 7, dim = 768, depth = 12, heads = 12}
--   local latent, feats = vit:forward_encoder(x, mask)    -- mask from dama.mask (nil: all tokens)
--   local cls = dama.nn.ViT(dama.nn.vit_config('vit_base', {chans = 7, img = 128,
--                           global_pool = 'avg', num_classes = 5, drop_path = 0.1}))
--   local logits = cls(x)
--
-- Options (defaults in brackets): img, patch, chans, dim, depth, heads; mlp_ratio [4]; qkv_bias [true];
-- eps [1e-6] (LayerNorm); drop_path [0] (stochastic depth, rising linearly to this over the blocks);
-- global_pool [nil | 'token' | 'avg']; num_classes [0]; pos_embed ['sincos' fixed | 'learned'];
-- pos_trainable [false for sincos] (fine-tuning makes the sin-cos table trainable, spec §6.2);
-- init ['mae' (spec §1.4) | 'torch' (PyTorch layer defaults)]; head_init_std [2e-5, spec §6.2];
-- arena [true]: build the flat parameter arena at the end of construction (see dama.nn.Module).
--
-- Names: cls_token [1,1,D], pos_embed [1,1+L,D], patch_embed.proj.{weight [D,C,p,p], bias},
-- blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}.{weight, bias}, norm.* (absent with
-- global_pool = 'avg', as in timm), fc_norm.* (global_pool = 'avg'), head.* (num_classes > 0).
local tensor = require 'dama.tensor'
local dffi = require 'dama.ffi'
local Module = require 'dama.nn.module'
local L = require 'dama.nn.layers'
local init = require 'dama.nn.initializers'

local F = setmetatable({}, {__index = function(self, k)
  local f = require 'dama.nn.functional'
  setmetatable(self, {__index = f})
  return f[k]
end})

local M = {}

-- Fixed 2-D sin-cos table [1, cls + gh*gw, D] (MAE convention: first half column, second half row;
-- cls slot zero), straight from the C kernel.
function M.sincos_pos_embed(D, gh, gw, cls)
  local n = (cls and 1 or 0) + gh * gw
  local t = tensor.empty(n, D)   -- on the default device
  dffi.call(dffi.C.dama_nn_pos_embed_2d_sincos, t._c, D, gh, gw, cls and 1 or 0)
  return t:view(1, n, D)
end

-- Bicubic resampling of a position table to another grid, as MAE's interpolate_pos_embed / timm's
-- resample_abs_pos_embed (torch F.interpolate mode 'bicubic', align_corners false, A = -0.75, border
-- clamped): pos [1, cls + g*g, D] -> [1, cls + new*new, D]; the cls rows are kept as they are.
local function cubic_weights(t)
  local A = -0.75
  local function near(x) return ((A + 2) * x - (A + 3)) * x * x + 1 end
  local function far(x) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A end
  return far(t + 1), near(t), near(1 - t), far(2 - t)
end

function M.resample_pos_embed(pos, new_grid, cls)
  local s = pos:size()
  local ncls = cls == nil and 1 or cls
  local n, D = s[#s - 1], s[#s]
  local g = math.floor(math.sqrt(n - ncls) + 0.5)
  if g * g ~= n - ncls then
    error(string.format('resample_pos_embed: %d rows after %d cls rows is not a square grid', n - ncls, ncls), 2)
  end
  if g == new_grid then return pos:contiguous():view(1, n, D) end
  -- a host loop over a host copy; the result goes back to pos's device
  local src = pos:contiguous():view(n, D):to('f64'):contiguous():cpu()
  local sp = src:data()
  local out = tensor.zeros(ncls + new_grid * new_grid, D, {dtype = 'f64', device = 'cpu'})
  local op = out:data()   -- host memory (out was made on the cpu)
  for r = 0, ncls - 1 do for d = 0, D - 1 do op[r * D + d] = sp[r * D + d] end end
  -- per output coordinate: 4 source indices (clamped) and weights
  local scale = g / new_grid
  local idx, wts = {}, {}
  for i = 0, new_grid - 1 do
    local x = (i + 0.5) * scale - 0.5
    local x0 = math.floor(x)
    local w0, w1, w2, w3 = cubic_weights(x - x0)
    local id = {}
    for k = 0, 3 do id[k + 1] = math.min(math.max(x0 - 1 + k, 0), g - 1) end
    idx[i], wts[i] = id, {w0, w1, w2, w3}
  end
  for oy = 0, new_grid - 1 do
    local iy, wy = idx[oy], wts[oy]
    for ox = 0, new_grid - 1 do
      local ix, wx = idx[ox], wts[ox]
      local obase = (ncls + oy * new_grid + ox) * D
      for a = 1, 4 do
        for b = 1, 4 do
          local w = wy[a] * wx[b]
          local sbase = (ncls + iy[a] * g + ix[b]) * D
          for d = 0, D - 1 do op[obase + d] = op[obase + d] + w * sp[sbase + d] end
        end
      end
    end
  end
  return out:to(pos.dtype):view(1, ncls + new_grid * new_grid, D)
end

local CONFIGS = {
  vit_tiny = {dim = 192, depth = 12, heads = 3},
  vit_small = {dim = 384, depth = 12, heads = 6},
  vit_base = {dim = 768, depth = 12, heads = 12},
  vit_large = {dim = 1024, depth = 24, heads = 16},
  vit_huge = {dim = 1280, depth = 32, heads = 16},
}
M.CONFIGS = CONFIGS

-- vit_config(name[, overrides]) -> an options table for ViT/MAE: 'vit_tiny' 192/12/3, 'vit_small' 384/12/6,
-- 'vit_base' 768/12/12, 'vit_large' 1024/24/16, 'vit_huge' 1280/32/16 (aliases main_vit_base, vit_base_patch16);
-- defaults img 224, patch 16, chans 3, mlp_ratio 4, overridden by the second table.
function M.vit_config(name, overrides)
  local key = tostring(name):gsub('^main_', ''):gsub('_patch%d+.*$', '')
  local c = CONFIGS[key]
  if not c then
    local names = {}
    for k in pairs(CONFIGS) do names[#names + 1] = k end
    table.sort(names)
    error(string.format("vit_config: unknown architecture '%s' (known: %s)", tostring(name), table.concat(names, ', ')), 2)
  end
  local patch = tonumber(tostring(name):match('_patch(%d+)'))
  local cfg = {arch = key, img = 224, patch = patch or 16, chans = 3, mlp_ratio = 4,
               dim = c.dim, depth = c.depth, heads = c.heads}
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  return cfg
end

local function need(o, k, who)
  local v = o[k]
  if type(v) ~= 'number' or v <= 0 or v ~= math.floor(v) then
    error(string.format('%s: option %s must be a positive whole number, got %s', who, k, tostring(v)), 4)
  end
  return v
end

-- check_options(who, o, known[, level]): an option name not in `known` (a set) is an error naming the
-- closest known name, so a typo (drop_pth, mlp_ratoi) never passes silently as a default.
function M.check_options(who, o, known, level)
  local function dist(a, b)   -- Levenshtein distance
    local prev = {}
    for j = 0, #b do prev[j] = j end
    for i = 1, #a do
      local cur = {[0] = i}
      for j = 1, #b do
        cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a:sub(i, i) == b:sub(j, j) and 0 or 1))
      end
      prev = cur
    end
    return prev[#b]
  end
  for k in pairs(o) do
    if not known[k] then
      local best, bd = nil, math.huge
      for name in pairs(known) do
        if name:sub(1, 1) ~= '_' then
          local d = dist(tostring(k), name)
          if d < bd or (d == bd and name < best) then best, bd = name, d end
        end
      end
      error(string.format("%s: unknown option '%s' (did you mean '%s'?)", who, tostring(k), best), level or 4)
    end
  end
end

local VIT_OPTIONS = {}
for k in ([[img patch chans dim depth heads global_pool eps mlp_ratio qkv_bias drop_path num_classes pos_embed
            pos_trainable init arena head_init_std arch _deferred _checked]]):gmatch('%S+') do VIT_OPTIONS[k] = true end
M.VIT_OPTIONS = VIT_OPTIONS

local ViT = Module:extend('VisionTransformer')

function ViT:__init(o)
  o = o or {}
  local who = self.__name
  if not o._checked then M.check_options(who, o, VIT_OPTIONS) end
  local img, patch, chans = need(o, 'img', who), need(o, 'patch', who), need(o, 'chans', who)
  local dim, depth, heads = need(o, 'dim', who), need(o, 'depth', who), need(o, 'heads', who)
  if img % patch ~= 0 then error(string.format('%s: img %d is not a multiple of patch %d', who, img, patch), 3) end
  if dim % heads ~= 0 then error(string.format('%s: dim %d is not a multiple of heads %d', who, dim, heads), 3) end
  local gp = o.global_pool
  if gp == '' then gp = nil end
  if gp ~= nil and gp ~= 'token' and gp ~= 'avg' then
    error(string.format("%s: global_pool must be nil, 'token' or 'avg', got '%s'", who, tostring(gp)), 3)
  end
  local grid = img / patch
  local eps = o.eps or 1e-6
  local cfg = {img = img, patch = patch, chans = chans, dim = dim, depth = depth, heads = heads,
               mlp_ratio = o.mlp_ratio or 4, qkv_bias = o.qkv_bias ~= false, eps = eps,
               drop_path = o.drop_path or 0, global_pool = gp, num_classes = o.num_classes or 0,
               pos_embed = o.pos_embed or 'sincos', grid = grid, num_patches = grid * grid}
  rawset(self, 'cfg', cfg)
  rawset(self, 'embed_dim', dim); rawset(self, 'num_patches', grid * grid); rawset(self, 'patch_size', patch)
  rawset(self, 'in_chans', chans); rawset(self, 'global_pool', gp); rawset(self, 'num_classes', cfg.num_classes)

  -- parameter order as timm / MAE: cls_token, pos_embed, then patch_embed, blocks, norm, fc_norm, head
  self:register_parameter('cls_token', tensor.zeros(1, 1, dim))
  if cfg.pos_embed == 'sincos' then
    self:register_parameter('pos_embed', M.sincos_pos_embed(dim, grid, grid, true):clone(),
      o.pos_trainable == true)
  elseif cfg.pos_embed == 'learned' then
    self:register_parameter('pos_embed', tensor.zeros(1, 1 + grid * grid, dim), o.pos_trainable ~= false)
  else
    error(string.format("%s: pos_embed must be 'sincos' or 'learned', got '%s'", who, tostring(cfg.pos_embed)), 3)
  end
  local kind = o.init or 'mae'
  local function layers()
    self.patch_embed = L.PatchEmbed(img, patch, chans, dim)
    self.blocks = L.ModuleList()
    for i = 1, depth do
      local dp = depth > 1 and cfg.drop_path * (i - 1) / (depth - 1) or 0
      self.blocks:append(L.Block{dim = dim, heads = heads, mlp_ratio = cfg.mlp_ratio, qkv_bias = cfg.qkv_bias,
                                 drop_path = dp, eps = eps})
    end
    if gp == 'avg' then
      self.norm = L.Identity()
      self.fc_norm = L.LayerNorm(dim, eps)
    else
      self.norm = L.LayerNorm(dim, eps)
    end
    if cfg.num_classes > 0 then self.head = L.Linear(dim, cfg.num_classes) end
  end
  if kind == 'mae' or o._deferred then L.deferred_init(layers) else layers() end

  self:init_weights(kind, o)
  if o.arena ~= false then self:build_arena{free_old = true} end
end

-- init_weights(kind): 'mae' = spec §1.4 (xavier Linears with zero bias, patch-embed xavier on its
-- [D, C*p*p] view with the conv's default bias, cls N(0, 0.02), LN 1/0; a classifier head
-- trunc_normal(std head_init_std = 2e-5) with zero bias, spec §6.2); 'torch' keeps layer defaults.
function ViT:init_weights(kind, o)
  o = o or {}
  if kind == 'torch' or kind == 'none' then return self end
  if kind ~= 'mae' then error(string.format("init_weights: kind must be 'mae' or 'torch', got '%s'", tostring(kind)), 2) end
  local w, b = self.patch_embed.proj.weight, self.patch_embed.proj.bias
  init.xavier_uniform_(w:view(w:size(0), -1))
  if b then   -- the conv bias keeps PyTorch's default U(+-1/sqrt(C*p*p))
    local bnd = 1 / math.sqrt(w:numel() / w:size(0))
    b:uniform_(-bnd, bnd)
  end
  if self.cfg.pos_embed == 'learned' then init.trunc_normal_(self.pos_embed, 0, 0.02, -2, 2) end
  self.cls_token:normal_(0, 0.02)
  for _, m in ipairs(self:modules()) do
    if m.__name == 'Linear' and m ~= self.head then
      init.xavier_uniform_(m.weight)
      if m.bias then m.bias:fill_(0) end
    elseif m.__name == 'LayerNorm' then
      m:reset_parameters()
    end
  end
  if self.head then
    init.trunc_normal_(self.head.weight, 0, o.head_init_std or 2e-5, -2, 2)
    self.head.bias:fill_(0)
  end
  return self
end

-- Token embeddings with position: [N, L, D] = patch_embed(x) + pos_embed[:, 1:].
function ViT:embed(x)
  local c, sz = self.cfg, x:size()
  if #sz ~= 4 or sz[2] ~= c.chans or sz[3] ~= c.img or sz[4] ~= c.img then
    error(string.format('%s: expected images [N, %d, %d, %d] (chans %d, img %d), got [%s]', self.__name, c.chans,
      c.img, c.img, c.chans, c.img, table.concat(sz, ', ')), 3)
  end
  local t = self.patch_embed(x)
  return t + self.pos_embed:narrow(1, 1, self.num_patches)
end

-- Prepend cls + pos_embed[:, 0] to tokens [N, K, D], run the blocks and the final norm.
-- Returns the output [N, 1+K, D] and the list of every block's MLP-branch output f.
function ViT:forward_tokens(t)
  local N, D = t:size(0), self.embed_dim
  local cls = (self.cls_token + self.pos_embed:narrow(1, 0, 1)):expand(N, 1, D)
  local x = tensor.cat({cls, t}, 1)
  local feats = {}
  for i, blk in ipairs(self.blocks) do
    local f
    x, f = blk(x)
    feats[i] = f
  end
  return self.norm(x), feats
end

-- forward_encoder(x[, masking]): patch-embed all L tokens, add pos[1:], keep masking.ids_keep
-- ([N, K] i64, kept tokens in that order; nil keeps all L), prepend cls + pos[0], blocks, final norm.
-- Returns latent [N, 1+K, D] and feats (one [N, 1+K, D] MLP output per block).
function ViT:forward_encoder(x, masking)
  local t = self:embed(x)
  if masking ~= nil then
    local ids = masking.ids_keep or masking
    if not tensor.is_tensor(ids) then
      error('forward_encoder: masking must be a mask object with ids_keep (dama.mask) or an [N, K] i64 tensor', 2)
    end
    t = F.gather_tokens(t, ids)
  end
  return self:forward_tokens(t)
end

-- timm's forward_features: all tokens, [N, 1+L, D] (final norm applied; Identity with global_pool 'avg').
function ViT:forward_features(x)
  return (self:forward_encoder(x, nil))
end

-- timm's forward_head: pool ('token': cls; 'avg': mean of the patch tokens then fc_norm), then head.
-- pre_logits = true stops before the head.
function ViT:forward_head(features, pre_logits)
  local gp = self.global_pool or 'token'
  local z
  if gp == 'avg' then
    z = features:narrow(1, 1, features:size(1) - 1):mean(1)
    z = self.fc_norm(z)
  else
    z = features:select(1, 0)
  end
  if pre_logits or not self.head then return z end
  return self.head(z)
end

-- forward(x[, masking]): a classifier (global_pool or num_classes set) returns logits (pre-logits when
-- num_classes = 0); a plain encoder returns forward_encoder(x, masking).
function ViT:forward(x, masking)
  if self.global_pool or self.head then return self:forward_head(self:forward_features(x)) end
  return self:forward_encoder(x, masking)
end

-- load_pretrained(sd[, opts]) -> report: load a pretrained MAE/DAMA checkpoint's encoder (spec §6.2):
-- keys under opts.prefix ('' by default; 'base_encoder.' or 'momentum_encoder.' for DAMA checkpoints)
-- with the prefix stripped, minus keys containing 'decoder' or 'mask', loaded non-strictly.
-- report = {missing, unexpected, mismatched} (for a classifier, missing should be fc_norm.* / head.*).
-- A pos_embed of another grid size is resampled bicubically (resample_pos_embed, as MAE's
-- interpolate_pos_embed).
function ViT:load_pretrained(sd, opts)
  local prefix = (opts and opts.prefix) or ''
  local t = {}
  for k, v in pairs(sd) do
    if type(k) == 'string' and k:sub(1, #prefix) == prefix then
      local name = k:sub(#prefix + 1)
      if not name:find('decoder', 1, true) and not name:find('mask', 1, true) then t[name] = v end
    end
  end
  local pe = t.pos_embed
  if pe and pe:dim() == 3 and pe:size(2) == self.embed_dim and pe:size(1) ~= self.pos_embed:size(1) then
    t.pos_embed = M.resample_pos_embed(pe, self.cfg.grid, 1)
  end
  return self:load_state_dict(t, false)
end

-- set_pos_trainable(on): make the position table trainable (fine-tuning) or frozen, and rebuild the
-- arena so that it covers exactly the trainable parameters.
function ViT:set_pos_trainable(on)
  rawset(self.pos_embed, 'requires_grad', on ~= false)
  if not (on ~= false) then rawset(self.pos_embed, 'grad', nil) end
  self:build_arena()
  return self
end

function ViT:extra_repr()
  local c = self.cfg
  return string.format('img=%d, patch=%d, chans=%d, dim=%d, depth=%d, heads=%d%s%s', c.img, c.patch, c.chans,
    c.dim, c.depth, c.heads, c.global_pool and (", global_pool='" .. c.global_pool .. "'") or '',
    c.num_classes > 0 and (', num_classes=' .. c.num_classes) or '')
end

M.ViT = ViT
return M
