-- dama.nn against the committed PyTorch fixtures (tests/reference/README.md):
--   vit_mae_fwd_bwd.safetensors: the reference MAE (small config), forward with the fixture's noise and
--     backward; every output and every parameter gradient is compared.
--   timm_vit.safetensors / timm_vit_avg.safetensors: timm VisionTransformer weights reproduce features,
--     pre_logits and logits.
-- Criterion per tensor: max |ours - ref| / max |ref| (relative to the tensor's largest magnitude);
-- FP32 tolerance 1e-4. The worst value per group is printed.
local dama = require 'dama'
local nn = require 'dama.nn'

local FIX = 'tests/reference/fixtures/'
local TOL = 1e-4

local function load(path) return dama.load(path) end

-- ---------------------------------------------------------------- comparison

local report = {}
local function rel_err(a, b)
  local ref = b:to('f64')
  local scale = ref:abs():max():item()
  local diff = (a:to('f64') - ref):abs():max():item()
  if scale == 0 then return diff end
  return diff / scale
end

local function compare(group, name, ours, ref, tol)
  expect_eq(ours.shape, ref.shape, name .. ' shape')
  local e = rel_err(ours:contiguous(), ref)
  local r = report[group] or {worst = -1}
  report[group] = r
  if e > r.worst then r.worst, r.name = e, name end
  if not (e <= (tol or TOL)) then
    error(string.format('%s: %s differs from the reference: max|d|/max|ref| = %.3g > %.1g', group, name, e, tol or TOL), 2)
  end
  return e
end

local function print_report(group)
  local r = report[group]
  if r then print(string.format('     %-14s worst max|d|/max|ref| = %.3g (%s)', group, r.worst, r.name)) end
end

-- random masking from the fixture's noise: dama.mask.random when present, else spec §2.1 directly
local function random_mask(N, L, ratio, noise)
  local ok, dmask = pcall(require, 'dama.mask')
  if ok and type(dmask) == 'table' and dmask.random then return dmask.random(N, L, ratio, noise) end
  local K = math.floor(L * (1 - ratio))
  local ids_shuffle = noise:argsort(1)
  local ids_restore = ids_shuffle:argsort(1)
  local mask = dama.ones(N, L)
  mask:narrow(1, 0, K):fill_(0)
  mask = mask:gather(1, ids_restore)
  return {mask = mask, ids_keep = ids_shuffle:narrow(1, 0, K):contiguous(), ids_restore = ids_restore,
          ids_shuffle = ids_shuffle, K = K}
end

-- ---------------------------------------------------------------- MAE forward / backward

local fx = load(FIX .. 'vit_mae_fwd_bwd.safetensors')
local NON_WEIGHTS = {x = true, noise = true, ids_shuffle = true, ids_restore = true, mask = true, latent = true,
                     pred = true, target = true, loss_per_patch = true, loss = true,
                     ['feat.0'] = true, ['feat.1'] = true, ['feat.2'] = true}

local function fixture_mae()
  local m = nn.MAE{img = 32, patch = 8, chans = 7, dim = 64, depth = 3, heads = 4, mlp_ratio = 4,
                   dec_dim = 32, dec_depth = 2, dec_heads = 4}
  local weights = {}
  for k, v in pairs(fx) do
    if not NON_WEIGHTS[k] and not k:match('^grad%.') then weights[k] = v end
  end
  m:load_state_dict(weights)    -- strict: names and shapes must match exactly
  return m
end

test('MAE fixture: names, shapes and the fixed sin-cos tables', function()
  local m = fixture_mae()
  -- the fixture's frozen pos embeds are the reference's sin-cos; ours are built by the C kernel
  local fresh = nn.MAE{img = 32, patch = 8, chans = 7, dim = 64, depth = 3, heads = 4, dec_dim = 32, dec_depth = 2,
                       dec_heads = 4}
  compare('sincos', 'pos_embed', fresh.pos_embed, fx.pos_embed, 1e-6)
  compare('sincos', 'decoder_pos_embed', fresh.decoder_pos_embed, fx.decoder_pos_embed, 1e-6)
  local n = 0
  for _, e in ipairs(m:named_parameters{trainable = true}) do
    expect(fx['grad.' .. e[1]] ~= nil, 'fixture has no grad for ' .. e[1]); n = n + 1
  end
  expect_eq(n, 72)
  print_report('sincos')
end)

test('MAE fixture: forward (mask, latent, feats, pred, loss_per_patch, loss) and every gradient', function()
  local m = fixture_mae()
  m:train()
  local N, L = 3, 16
  local mk = random_mask(N, L, 0.75, fx.noise)
  expect_eq(mk.mask:totable(), fx.mask:totable())
  expect_eq(mk.ids_restore:totable(), fx.ids_restore:totable())
  m:zero_grad()
  local pred, latent, feats = m(fx.x, mk)
  local loss, lpp = m:loss(fx.x, pred, mk)
  compare('forward', 'latent', latent, fx.latent)
  for i = 1, 3 do compare('forward', 'feat.' .. (i - 1), feats[i], fx['feat.' .. (i - 1)]) end
  compare('forward', 'pred', pred, fx.pred)
  compare('forward', 'loss_per_patch', lpp, fx.loss_per_patch)
  compare('forward', 'loss', loss, fx.loss)
  print_report('forward')
  loss:backward()
  local count = 0
  for _, e in ipairs(m:named_parameters{trainable = true}) do
    local g = rawget(e[2], 'grad')
    expect(g ~= nil, 'no gradient for ' .. e[1])
    compare('gradients', e[1], g, fx['grad.' .. e[1]])
    count = count + 1
  end
  expect_eq(count, 72)
  -- and they are in the arena: its norm equals the norm over the per-parameter grads
  local s = 0
  for _, e in ipairs(m:named_parameters{trainable = true}) do s = s + fx['grad.' .. e[1]]:to('f64'):square():sum():item() end
  local an = m.grad_arena:to('f64'):square():sum():item()
  expect(math.abs(an - s) <= 1e-4 * s, string.format('grad arena norm^2 %g vs fixture %g', an, s))
  print_report('gradients')
  -- a second backward accumulates (grads double) until zero_grad
  local pred2 = m(fx.x, mk)
  local loss2 = m:loss(fx.x, pred2, mk)
  loss2:backward()
  compare('accumulate', 'blocks.0.attn.qkv.weight', m.blocks[1].attn.qkv.weight.grad,
    fx['grad.blocks.0.attn.qkv.weight'] * 2)
  m:zero_grad()
  expect_eq(m.grad_arena:abs():max():item(), 0)
end)

-- ---------------------------------------------------------------- timm interop

local function timm_case(file, gp)
  local t = load(FIX .. file)
  local v = nn.ViT{img = 32, patch = 8, chans = 7, dim = 64, depth = 2, heads = 4, mlp_ratio = 4, qkv_bias = true,
                   global_pool = gp, num_classes = 5, pos_embed = 'learned'}
  local w = {}
  for k, x in pairs(t) do
    if k ~= 'x' and k ~= 'features' and k ~= 'pre_logits' and k ~= 'logits' then w[k] = x end
  end
  v:load_state_dict(w)
  v:eval()
  local feats = v:forward_features(t.x)
  compare('timm_' .. gp, 'features', feats, t.features)
  compare('timm_' .. gp, 'pre_logits', v:forward_head(feats, true), t.pre_logits)
  compare('timm_' .. gp, 'logits', v(t.x), t.logits)
  print_report('timm_' .. gp)
end

test('timm VisionTransformer (global_pool token): features, pre_logits, logits', function()
  timm_case('timm_vit.safetensors', 'token')
end)

test('timm VisionTransformer (global_pool avg, fc_norm): features, pre_logits, logits', function()
  timm_case('timm_vit_avg.safetensors', 'avg')
end)
