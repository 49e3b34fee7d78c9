-- dama.nn.MAE: a masked autoencoder (the ViT encoder above + an MAE decoder), spec §1.1-§1.4, with the
-- reference's state_dict names (timm names for the encoder; decoder_embed, mask_token,
-- decoder_pos_embed, decoder_blocks.i.*, decoder_norm, decoder_pred).
--
--   local mae = dama.nn.MAE{img = 128, patch = 16, chans = 7, dim = 768, depth = 12, heads = 12,
--                           dec_dim = 512, dec_depth = 8, dec_heads = 16}
--   local m = dama.mask.random(N, mae.num_patches, 0.8)
--   local pred, latent, feats = mae(x, m)          -- pred [N, L, p*p*C]; feats: every block's f
--   local loss, loss_per_patch = mae:loss(x, pred, m)
--
-- Options: the ViT's (img, patch, chans, dim, depth, heads, mlp_ratio, qkv_bias, eps, drop_path, init,
-- arena) plus dec_dim [512], dec_depth [8], dec_heads [16], norm_pix [true], norm_pix_eps [1e-6],
-- mask_ratio [0.75] (used when forward gets no mask). pos_embed and decoder_pos_embed are fixed sin-cos
-- tables: parameters with requires_grad = false, in state_dict but not in the arena.
local tensor = require 'dama.tensor'
local L = require 'dama.nn.layers'
local vit = require 'dama.nn.vit'

local F = setmetatable({}, {__index = function(self, k)
  local f = require 'dama.nn.functional'
  setmetatable(self, {__index = f})
  return f[k]
end})

local MAE = vit.ViT:extend('MaskedAutoencoderViT')

function MAE:__init(o)
  o = o or {}
  local known = {dec_dim = true, dec_depth = true, dec_heads = true, norm_pix = true, norm_pix_eps = true, mask_ratio = true}
  for k in pairs(vit.VIT_OPTIONS) do known[k] = true end
  vit.check_options(self.__name, o, known)
  local enc = {_checked = true}
  for k, v in pairs(o) do enc[k] = v end
  enc.arena, enc.global_pool, enc.num_classes, enc.pos_embed, enc.init = false, nil, 0, 'sincos', 'torch'
  local kind = o.init or 'mae'
  enc._deferred = kind == 'mae'   -- every layer is re-initialised below: skip the default draws
  vit.ViT.__init(self, enc)
  local D, grid, p, C = self.embed_dim, self.cfg.grid, self.patch_size, self.in_chans
  local dd, ddepth, dheads = o.dec_dim or 512, o.dec_depth or 8, o.dec_heads or 16
  if dd % 4 ~= 0 or dd % dheads ~= 0 then
    error(string.format('%s: dec_dim %d must be a multiple of 4 and of dec_heads %d', self.__name, dd, dheads), 3)
  end
  local c = self.cfg
  c.dec_dim, c.dec_depth, c.dec_heads = dd, ddepth, dheads
  c.norm_pix = o.norm_pix ~= false
  c.norm_pix_eps = o.norm_pix_eps or 1e-6
  c.mask_ratio = o.mask_ratio or 0.75
  rawset(self, 'decoder_embed_dim', dd)

  local function decoder()
    self.decoder_embed = L.Linear(D, dd, true)
    self:register_parameter('mask_token', tensor.zeros(1, 1, dd))
    self:register_parameter('decoder_pos_embed', vit.sincos_pos_embed(dd, grid, grid, true):clone(), false)
    self.decoder_blocks = L.ModuleList()
    for _ = 1, ddepth do
      self.decoder_blocks:append(L.Block{dim = dd, heads = dheads, mlp_ratio = c.mlp_ratio, qkv_bias = c.qkv_bias,
                                         eps = c.eps})
    end
    self.decoder_norm = L.LayerNorm(dd, c.eps)
    self.decoder_pred = L.Linear(dd, p * p * C, true)
  end
  if kind == 'mae' then L.deferred_init(decoder) else decoder() end

  self:init_weights(kind)
  if o.arena ~= false then self:build_arena{free_old = true} end
end

-- Spec §1.4: the encoder's init, mask_token N(0, 0.02), every decoder Linear xavier with zero bias.
function MAE:init_weights(kind)
  vit.ViT.init_weights(self, kind)
  if kind == 'mae' then self.mask_token:normal_(0, 0.02) end
  return self
end

-- forward_decoder(latent [N, 1+K, D], ids_restore [N, L] i64) -> pred [N, L, p*p*C] (cls row dropped).
-- All 1+K tokens are embedded; the K visible ones plus L-K mask tokens are put back in patch order.
function MAE:forward_decoder(latent, ids_restore)
  local x = self.decoder_embed(latent)
  local K = x:size(1) - 1
  local vis = x:narrow(1, 1, K)
  local full = F.unshuffle_tokens(vis, self.mask_token, ids_restore)       -- [N, L, dd]
  x = tensor.cat({x:narrow(1, 0, 1), full}, 1) + self.decoder_pos_embed
  for _, blk in ipairs(self.decoder_blocks) do x = blk(x) end
  x = self.decoder_pred(self.decoder_norm(x))
  return x:narrow(1, 1, x:size(1) - 1)
end

-- forward(imgs[, mask]) -> pred, latent, feats, mask. mask: a dama.mask object ({mask, ids_keep,
-- ids_restore, ...}); nil draws dama.mask.random with cfg.mask_ratio.
function MAE:forward(imgs, mask)
  if mask == nil then
    local dmask = require 'dama.mask'
    mask = dmask.random(imgs:size(0), self.num_patches, self.cfg.mask_ratio)
  end
  if not (mask.ids_keep and mask.ids_restore) then
    error('MAE.forward: mask must be a dama.mask object with ids_keep and ids_restore', 2)
  end
  local latent, feats = self:forward_encoder(imgs, mask)
  local pred = self:forward_decoder(latent, mask.ids_restore)
  return pred, latent, feats, mask
end

-- Patch targets [N, L, p*p*C] in the reference layout ((i*p + j)*C + c).
function MAE:patchify(imgs) return F.patchify(imgs, self.patch_size) end
function MAE:unpatchify(patches)
  local c = self.cfg
  return F.unpatchify(patches, c.patch, c.chans, c.img, c.img)
end

-- loss(imgs, pred, mask) -> loss (mean over removed patches), loss_per_patch [N, L] (detached).
-- Norm-pix target per cfg.norm_pix (spec §3.1: per-patch mean, unbiased variance, eps 1e-6).
function MAE:loss(imgs, pred, mask)
  local m = mask.mask or mask
  return F.normpix_loss(pred, self:patchify(imgs), m, {norm_pix = self.cfg.norm_pix, eps = self.cfg.norm_pix_eps})
end

function MAE:extra_repr()
  local c = self.cfg
  return string.format('img=%d, patch=%d, chans=%d, dim=%d, depth=%d, heads=%d, dec_dim=%d, dec_depth=%d, dec_heads=%d',
    c.img, c.patch, c.chans, c.dim, c.depth, c.heads, c.dec_dim, c.dec_depth, c.dec_heads)
end

local M = {MAE = MAE}

-- mae_config(name[, overrides]): vit_config plus the MAE decoder defaults (512 / 8 / 16).
function M.mae_config(name, overrides)
  local cfg = vit.vit_config(name, {dec_dim = 512, dec_depth = 8, dec_heads = 16})
  for k, v in pairs(overrides or {}) do cfg[k] = v end
  return cfg
end

return M
