-- dama.nn: module API, names and order, the flat arena, state_dict, init statistics, parameter counts.
local dama = require 'dama'
local nn = require 'dama.nn'

local function has_functional()
  return pcall(require, 'dama.nn.functional')
end

local function small_mae(extra)
  local o = {img = 32, patch = 8, chans = 7, dim = 64, depth = 3, heads = 4, dec_dim = 32, dec_depth = 2, dec_heads = 4}
  for k, v in pairs(extra or {}) do o[k] = v end
  return nn.MAE(o)
end

local function names_of(m, opts)
  local r = {}
  for _, e in ipairs(m:named_parameters(opts)) do r[#r + 1] = e[1] end
  return r
end

test('Module: registration by assignment, fields, children, custom modules', function()
  local Net = nn.Module:extend('Net')
  function Net:__init(d)
    self.fc = nn.Linear(d, 2 * d)
    self.act = nn.ReLU()
    self:register_parameter('scale', dama.ones(2 * d))
    self:register_buffer('count', dama.zeros(1))
  end
  function Net:forward(x) return self.act(self.fc(x)) * self.scale end
  local net = Net(4)
  expect_eq(net.fc.weight.shape, {8, 4})
  expect_eq(net.fc.bias.shape, {8})
  expect_eq(#net:children(), 2)
  expect_eq(names_of(net), {'scale', 'fc.weight', 'fc.bias'})
  local keys = net:state_dict_keys()
  expect_eq(keys, {'scale', 'fc.weight', 'fc.bias', 'count'})
  expect(net.training)
  net:eval()
  expect(not net.training and not net.fc.training)
  net:train()
  expect(net.fc.training)
  expect_eq(net:num_parameters(), 8 + 32 + 8)
  local s = tostring(net)
  expect(s:find('Net%(') and s:find('%(fc%): Linear%(in_features=4, out_features=8, bias=True%)'), s)
  -- assigning a non-tensor to a parameter is refused
  expect_error(function() net.scale = 3 end, 'parameter')
end)

test('Sequential: names 0..n-1, 1-based Lua access, forward chain', function()
  local seq = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.ReLU(), nn.Linear(4, 2, false))
  expect_eq(#seq, 4)
  expect_eq(names_of(seq), {'0.weight', '0.bias', '1.weight', '1.bias', '3.weight'})
  expect(seq[4].bias == nil)
  if not has_functional() then return end
  local y = seq(dama.randn(5, 3))
  expect_eq(y.shape, {5, 2})
end)

test('ViT names and order match timm (token and avg heads)', function()
  local v = nn.ViT{img = 32, patch = 8, chans = 7, dim = 64, depth = 2, heads = 4, global_pool = 'token',
                   num_classes = 5, pos_embed = 'learned'}
  local n = names_of(v)
  expect_eq(n[1], 'cls_token'); expect_eq(n[2], 'pos_embed')
  expect_eq(n[3], 'patch_embed.proj.weight'); expect_eq(n[4], 'patch_embed.proj.bias')
  expect_eq({n[5], n[6], n[7], n[8]}, {'blocks.0.norm1.weight', 'blocks.0.norm1.bias', 'blocks.0.attn.qkv.weight',
                                       'blocks.0.attn.qkv.bias'})
  expect_eq({n[#n - 3], n[#n - 2], n[#n - 1], n[#n]}, {'norm.weight', 'norm.bias', 'head.weight', 'head.bias'})
  expect_eq(#n, 4 + 2 * 12 + 4)
  local a = nn.ViT{img = 32, patch = 8, chans = 7, dim = 64, depth = 2, heads = 4, global_pool = 'avg', num_classes = 5}
  local sd = a:state_dict()
  expect(sd['norm.weight'] == nil and sd['fc_norm.weight'] ~= nil and sd['head.bias'] ~= nil)
  expect(rawget(sd.pos_embed, 'requires_grad') == false)
  local ft = nn.ViT{img = 32, patch = 8, chans = 7, dim = 64, depth = 2, heads = 4, pos_trainable = true}
  expect(rawget(ft.pos_embed, 'requires_grad') == true)
end)

test('MAE names match the reference state_dict; frozen pos embeds outside the arena', function()
  local m = small_mae()
  local sd = m:state_dict()
  local count = 0
  for _ in pairs(sd) do count = count + 1 end
  expect_eq(count, 74)
  for _, k in ipairs{'cls_token', 'pos_embed', 'mask_token', 'decoder_pos_embed', 'decoder_embed.weight',
                     'decoder_blocks.1.mlp.fc2.bias', 'decoder_norm.weight', 'decoder_pred.weight', 'norm.bias',
                     'blocks.2.attn.proj.weight'} do
    expect(sd[k] ~= nil, 'missing ' .. k)
  end
  expect_eq(sd['decoder_pred.weight'].shape, {448, 32})
  expect_eq(#m:trainable_parameters(), 72)
  expect_eq(m:num_parameters(), m.arena:numel())
  expect_eq(m:num_parameters(true) - m:num_parameters(), 17 * 64 + 17 * 32)
  expect(rawget(m.pos_embed, 'grad') == nil)
end)

test('arena: parameters are views of one buffer, grads are views of its twin', function()
  local m = small_mae()
  local a, g = m.arena, m.grad_arena
  expect_eq(a:dim(), 1); expect_eq(g:numel(), a:numel())
  for _, L in ipairs(m.arena_layout) do expect_eq(L.offset % 16, 0, L.name) end
  -- writing through the arena changes the parameter, and the other way round
  local w = m.blocks[2].attn.qkv.weight
  local off
  for _, L in ipairs(m.arena_layout) do if L.name == 'blocks.1.attn.qkv.weight' then off = L.offset end end
  expect(off ~= nil)
  a[off + 5] = 123.5
  expect_eq(w[{0, 5}], 123.5)
  w[{1, 0}] = -7
  expect_eq(a[off + 64], -7)
  -- grad views
  local gw = rawget(w, 'grad')
  expect(gw ~= nil)
  gw[{0, 1}] = 2
  expect_eq(g[off + 1], 2)
  m:zero_grad()
  expect_eq(g:abs():sum():item(), 0)
  -- a dropped .grad is re-attached by zero_grad
  rawset(w, 'grad', nil)
  m:zero_grad()
  expect(rawget(w, 'grad') ~= nil)
  g:fill_(1)
  expect_eq(rawget(w, 'grad'):sum():item(), 192 * 64)
  -- frozen tensors are not in the arena
  for _, L in ipairs(m.arena_layout) do expect(L.name ~= 'pos_embed' and L.name ~= 'decoder_pos_embed') end
end)

test('arena: sharing a submodule re-homes it, older owner falls back gracefully', function()
  local shared = nn.Linear(4, 4)
  local A = nn.Module(); A.fc = shared; A.other = nn.Linear(4, 2); A:build_arena()
  expect(A:has_arena())
  local B = nn.Module(); B.fc = shared; B:build_arena()
  expect(B:has_arena())
  expect(not A:has_arena())      -- its fc now lives in B's arena
  expect(A.arena == nil)
  -- both still see the same live tensor
  expect(A.fc.weight == B.fc.weight)
  B.arena:fill_(0.25)
  expect_eq(A.fc.weight[{0, 0}], 0.25)
  A:zero_grad()                 -- per-parameter path, no error
  local pa, ga = A:get_parameters()   -- rebuilds: back into A's arena
  expect(A:has_arena() and pa == A.arena and ga == A.grad_arena)
  expect_eq(pa:numel(), 64)   -- 16-float aligned: fc.weight 16, fc.bias 4->16, other.weight 8->16, other.bias 2->16
  expect_eq(A.fc.weight[{0, 0}], 0.25)
end)

-- A tiny MAE whose LayerNorm / bias sizes (24, 20) are not multiples of 16: its default arena has gaps.
local function odd_mae()
  return nn.MAE{img = 16, patch = 4, chans = 3, dim = 24, depth = 2, heads = 4, dec_dim = 20, dec_depth = 1,
                dec_heads = 4}
end
local function same_bits(a, b) return a:numel() == b:numel() and a:ne(b):sum():item() == 0 end

test('arena: relayout_arena moves parameters by an order in place (same tensors, same values, packed)', function()
  dama.manual_seed(7)
  local m = odd_mae()
  local x = dama.rand(2, 3, 16, 16)
  local mobj = dama.mask.random(2, m.num_patches, 0.75, dama.rand(2, m.num_patches))
  local pred0 = m(x, mobj)
  local named = m:named_parameters{trainable = true}
  local before, by_name = {}, {}
  for i, e in ipairs(named) do
    local g = rawget(e[2], 'grad')
    g:copy_(dama.randn(g:numel()):view(g:size()))
    before[i] = {name = e[1], p = e[2], g = g, val = e[2]:clone(), gval = g:clone()}
    by_name[e[1]] = before[i]
  end
  local arena, garena, len = m.arena, m.grad_arena, m.arena:numel()
  -- every other parameter, last first; the rest follow in named order
  local order = {}
  for i = #named, 1, -2 do order[#order + 1] = named[i][1] end
  expect(m:relayout_arena(order) == m)
  expect(m:has_arena())
  expect(m.arena == arena and m.grad_arena == garena, 'the arena tensors are the same objects')
  local L = m.arena_layout
  expect_eq(#L, #named)
  for i, name in ipairs(order) do expect_eq(L[i].name, name) end
  local listed = {}
  for _, n in ipairs(order) do listed[n] = true end
  local k = #order
  for _, e in ipairs(named) do
    if not listed[e[1]] then k = k + 1; expect_eq(L[k].name, e[1]) end
  end
  expect_eq(L[1].offset, 0)
  for i = 2, #L do expect_eq(L[i].offset, L[i - 1].offset + L[i - 1].numel, 'packed: ' .. L[i].name) end
  for i, n in ipairs(m.arena_order) do expect_eq(n, L[i].name) end
  -- the same tensor objects, values and gradients bit for bit, now at the new offsets
  for i, e in ipairs(m:named_parameters{trainable = true}) do
    local b = before[i]
    expect(e[2] == b.p, 'same parameter object: ' .. e[1])
    expect(rawget(e[2], 'grad') == b.g, 'same .grad object: ' .. e[1])
    expect(same_bits(e[2], b.val), 'value of ' .. e[1])
    expect(same_bits(b.g, b.gval), 'gradient of ' .. e[1])
  end
  for _, l in ipairs(L) do
    expect(same_bits(arena:narrow(0, l.offset, l.numel), by_name[l.name].val:view(-1)), 'arena holds ' .. l.name)
    expect(same_bits(garena:narrow(0, l.offset, l.numel), by_name[l.name].gval:view(-1)), 'grad arena ' .. l.name)
  end
  local used = L[#L].offset + L[#L].numel
  expect(used < len, 'the default layout had gaps')
  expect_eq(arena:narrow(0, used, len - used):abs():sum():item(), 0)
  expect_eq(garena:narrow(0, used, len - used):abs():sum():item(), 0)
  -- writes through the arena reach the parameter
  local w = by_name['blocks.1.norm1.weight']
  for _, l in ipairs(L) do if l.name == 'blocks.1.norm1.weight' then arena[l.offset + 3] = 42.5 end end
  expect_eq(w.p[3], 42.5)
  w.p:copy_(w.val)
  -- the model computes the same, and backward lands in the moved views
  expect(same_bits(m(x, mobj), pred0), 'forward unchanged')
  m:zero_grad()
  expect_eq(garena:abs():sum():item(), 0)
  local pred = m(x, mobj)
  m:loss(x, pred, mobj):backward()
  local sum = 0
  for _, b in ipairs(before) do sum = sum + b.g:double():abs():sum():item() end
  expect(sum > 0)
  expect_close(garena:double():abs():sum():item(), sum, 1e-9 * sum)
  -- build_arena{order = ...} on a twin lays it out the same
  dama.manual_seed(7)
  local m2 = odd_mae()
  m2:build_arena{order = order}
  for i, l in ipairs(m2.arena_layout) do expect_eq(l.offset, L[i].offset, l.name); expect_eq(l.name, L[i].name) end
  expect_eq(m2.arena:numel(), used)
  expect(same_bits(m2.arena, arena:narrow(0, 0, used)))
  -- a move keeps the order
  local other = m.arena.device == 'cpu' and 'sim' or 'cpu'
  m2:to(other)
  expect(m2:has_arena() and m2.arena.device:sub(1, 3) == other)
  for i, l in ipairs(m2.arena_layout) do expect_eq(l.name, L[i].name) end
  -- errors
  expect_error(function() m:relayout_arena{'blocks.0.nope'} end, "%('blocks%.0%.nope'%) is not a parameter")
  expect_error(function() m:relayout_arena{dama.zeros(2)} end, '%(a tensor%) is not a parameter')
  expect_error(function() nn.Linear(2, 2):relayout_arena{} end, 'owns no arena')
  -- a frozen parameter named in the order is skipped (it is not in the arena)
  m:relayout_arena{'pos_embed', 'norm.bias'}
  expect_eq(m.arena_layout[1].name, 'norm.bias')
end)

test('state_dict round trip and load_state_dict errors by name', function()
  dama.manual_seed(1)
  local m1 = small_mae()
  dama.manual_seed(2)
  local m2 = small_mae()
  local sd1 = m1:state_dict()
  expect((m2:state_dict()['blocks.0.attn.qkv.weight'] - sd1['blocks.0.attn.qkv.weight']):abs():max():item() > 0)
  m2:load_state_dict(sd1)
  for k, v in pairs(m2:state_dict()) do
    expect_eq((v - sd1[k]):abs():max():item(), 0, k)
  end
  -- load copies in place: m2's parameters are still arena views
  expect(m2:has_arena())
  local before = m2.arena:sum():item()
  expect(math.abs(before - m1.arena:sum():item()) < 1e-3)
  -- strict errors list every problem at once
  local bad = {}
  for k, v in pairs(sd1) do bad[k] = v end
  bad['norm.weight'] = nil
  bad['decoder_pred.bias'] = nil
  bad['blocks.0.attn.qkv.weight'] = dama.zeros(3, 3)
  bad['extra.thing'] = dama.zeros(1)
  local err = expect_error(function() m2:load_state_dict(bad) end, 'missing keys')
  expect(err:find('norm.weight', 1, true) and err:find('decoder_pred.bias', 1, true), err)
  expect(err:find('unexpected keys: extra.thing', 1, true), err)
  expect(err:find('blocks.0.attn.qkv.weight: shape [3, 3] in the checkpoint, [192, 64] in the model', 1, true), err)
  -- non-strict loads what fits and reports the rest
  local r = m2:load_state_dict(bad, false)
  expect_eq(#r.missing, 2); expect_eq(r.unexpected, {'extra.thing'}); expect_eq(r.mismatched, {'blocks.0.attn.qkv.weight'})
end)

test('init statistics follow spec 1.4', function()
  dama.manual_seed(3)
  local m = nn.MAE{img = 64, patch = 8, chans = 7, dim = 128, depth = 2, heads = 4, dec_dim = 64, dec_depth = 1,
                   dec_heads = 4}
  local function stats(t) return t:min():item(), t:max():item(), t:mean():item(), t:std():item() end
  -- xavier_uniform on the fused qkv as one [3D, D] matrix: bound sqrt(6 / (D + 3D))
  local qkv = m.blocks[1].attn.qkv.weight
  local lo, hi, mean, std = stats(qkv)
  local b = math.sqrt(6 / (128 + 384))
  expect(lo >= -b and hi <= b and hi > 0.95 * b and lo < -0.95 * b, ('qkv range %g %g bound %g'):format(lo, hi, b))
  expect(math.abs(std - b / math.sqrt(3)) < 0.02 * b, 'qkv std')
  expect(math.abs(mean) < 0.01 * b)
  expect_eq(m.blocks[1].attn.qkv.bias:abs():max():item(), 0)
  expect_eq(m.decoder_pred.bias:abs():max():item(), 0)
  -- decoder_pred xavier bound
  lo, hi = stats(m.decoder_pred.weight)
  b = math.sqrt(6 / (64 + 448))
  expect(lo >= -b and hi <= b and hi > 0.9 * b)
  -- patch embed: xavier on [D, C*p*p]; bias U(+-1/sqrt(C*p*p))
  lo, hi = stats(m.patch_embed.proj.weight)
  b = math.sqrt(6 / (128 + 7 * 64))
  expect(lo >= -b and hi <= b and hi > 0.95 * b, 'patch embed bound')
  lo, hi = stats(m.patch_embed.proj.bias)
  local bb = 1 / math.sqrt(7 * 64)
  expect(lo >= -bb and hi <= bb and hi > 0.5 * bb and lo < -0.5 * bb, 'conv bias')
  -- tokens N(0, 0.02)
  local _, _, cm, cs = stats(m.cls_token)
  expect(math.abs(cs - 0.02) < 0.006 and math.abs(cm) < 0.006, ('cls std %g'):format(cs))
  _, _, _, cs = stats(m.mask_token)
  expect(math.abs(cs - 0.02) < 0.008)
  -- LayerNorm 1 / 0
  expect_eq(m.blocks[2].norm2.weight:min():item(), 1); expect_eq(m.decoder_norm.bias:abs():max():item(), 0)
  -- fixed sin-cos: cls row zero, first half of row 1 (col 0) = [0..., 1...]
  expect_eq(m.pos_embed:select(1, 0):abs():max():item(), 0)
  expect_eq(m.pos_embed[{0, 1, 0}], 0); expect_eq(m.pos_embed[{0, 1, 32}], 1)
  -- two constructions draw different weights
  local m2 = nn.MAE{img = 64, patch = 8, chans = 7, dim = 128, depth = 2, heads = 4, dec_dim = 64, dec_depth = 1,
                    dec_heads = 4}
  expect((m2.blocks[1].attn.qkv.weight - qkv):abs():max():item() > 0)
  -- PyTorch default for a plain Linear: U(+-1/sqrt(fan_in)) for weight and bias
  local lin = nn.Linear(1536, 768)
  lo, hi = stats(lin.weight)
  b = 1 / math.sqrt(1536)
  expect(lo >= -b and hi <= b and hi > 0.99 * b)
  lo, hi = stats(lin.bias)
  expect(lo >= -b and hi <= b and hi > 0.9 * b)
  -- trunc_normal head of a classifier, std 2e-5
  local v = nn.ViT{img = 32, patch = 8, chans = 7, dim = 64, depth = 1, heads = 4, global_pool = 'avg', num_classes = 50}
  local _, _, hm, hs = stats(v.head.weight)
  expect(hs > 1.5e-5 and hs < 2.5e-5 and math.abs(hm) < 5e-6, ('head std %g'):format(hs))
end)

test('vit_config names and parameter counts (spec 1.5: encoder 86.43M, decoder 26.53M)', function()
  local c = nn.vit_config('vit_base', {chans = 7, img = 128})
  expect_eq({c.dim, c.depth, c.heads, c.patch}, {768, 12, 12, 16})
  expect_eq(nn.vit_config('vit_tiny').dim, 192); expect_eq(nn.vit_config('vit_small').heads, 6)
  expect_eq(nn.vit_config('vit_large').depth, 24); expect_eq(nn.vit_config('main_vit_base').dim, 768)
  expect_error(function() nn.vit_config('vit_giant') end, "unknown architecture 'vit_giant'")
  local mae = nn.MAE(nn.mae_config('vit_base', {chans = 7, img = 128}))
  local enc, dec = 0, 0
  for _, e in ipairs(mae:named_parameters{trainable = true}) do
    local n = e[1]
    if n:match('^decoder') or n == 'mask_token' then dec = dec + e[2]:numel() else enc = enc + e[2]:numel() end
  end
  expect_eq(enc, 86433792)    -- 86.43M
  expect_eq(dec, 26533632)    -- 26.53M
  expect_eq(mae:num_parameters(), 112967424)   -- 112.97M
  expect_eq(mae.pos_embed.shape, {1, 65, 768}); expect_eq(mae.decoder_pos_embed.shape, {1, 65, 512})
  -- projection head (spec 1.3): 2.37M
  local head = nn.Sequential(nn.Linear(768, 1536), nn.LayerNorm(1536, 1e-5), nn.ReLU(), nn.Linear(1536, 768),
                             nn.LayerNorm(768, 1e-5), nn.ReLU(), nn.Softmax())
  expect_eq(head:num_parameters(), 2366208)   -- 2.37M
end)

test('forward shapes, masking hook, backward fills the grad arena', function()
  if not has_functional() then skip('dama.nn.functional not available yet') end
  dama.manual_seed(5)
  local m = small_mae()
  local x = dama.rand(2, 7, 32, 32)
  local noise = dama.rand(2, 16)
  local ids_shuffle = noise:argsort(1)
  local ids_restore = ids_shuffle:argsort(1)
  local mask = dama.ones(2, 16)
  mask:narrow(1, 0, 4):fill_(0)
  mask = mask:gather(1, ids_restore)
  local mobj = {mask = mask, ids_keep = ids_shuffle:narrow(1, 0, 4):contiguous(), ids_restore = ids_restore,
                ids_shuffle = ids_shuffle, K = 4}
  m:zero_grad()
  local pred, latent, feats = m(x, mobj)
  expect_eq(pred.shape, {2, 16, 448}); expect_eq(latent.shape, {2, 5, 64}); expect_eq(#feats, 3)
  expect_eq(feats[1].shape, {2, 5, 64})
  local loss, lpp = m:loss(x, pred, mobj)
  expect_eq(lpp.shape, {2, 16})
  loss:backward()
  local g = m.grad_arena
  expect(g:abs():sum():item() > 0)
  expect_eq(g:count_nonfinite(), 0)
  -- every trainable parameter got a gradient, in the arena
  for _, e in ipairs(m:named_parameters{trainable = true}) do
    expect(rawget(e[2], 'grad') ~= nil, e[1])
  end
  expect(rawget(m.pos_embed, 'grad') == nil)
  -- the full-token encoder path
  local lat2, f2 = m:forward_encoder(x)
  expect_eq(lat2.shape, {2, 17, 64}); expect_eq(f2[3].shape, {2, 17, 64})
end)

test('fine-tuning: load_pretrained filters a DAMA checkpoint, pos_embed becomes trainable', function()
  dama.manual_seed(11)
  local mae = small_mae()
  local ckpt = {}
  for k, v in pairs(mae:state_dict()) do ckpt['base_encoder.' .. k] = v; ckpt['momentum_encoder.' .. k] = v * 0 end
  local v = nn.ViT{img = 32, patch = 8, chans = 7, dim = 64, depth = 3, heads = 4, global_pool = 'avg', num_classes = 5,
                   drop_path = 0.1}
  local r = v:load_pretrained(ckpt, {prefix = 'base_encoder.'})
  table.sort(r.missing)
  expect_eq(r.missing, {'fc_norm.bias', 'fc_norm.weight', 'head.bias', 'head.weight'})
  expect_eq(r.unexpected, {'norm.bias', 'norm.weight'})   -- the avg-pool model has no final norm (timm)
  expect_eq((v.blocks[3].mlp.fc2.weight - mae.blocks[3].mlp.fc2.weight):abs():max():item(), 0)
  expect_eq((v.pos_embed - mae.pos_embed):abs():max():item(), 0)
  -- drop-path rises linearly over the blocks
  expect_eq(v.blocks[1].drop_path1.drop_prob, 0); expect(math.abs(v.blocks[3].drop_path2.drop_prob - 0.1) < 1e-12)
  local n0 = v:num_parameters()
  expect(not v.pos_embed.requires_grad)
  v:set_pos_trainable(true)
  expect(v:has_arena() and v.pos_embed.requires_grad)
  expect_eq(v:num_parameters(), n0 + 17 * 64)
  expect_eq((v.pos_embed - mae.pos_embed):abs():max():item(), 0)
  v:set_pos_trainable(false)
  expect(v:has_arena()); expect_eq(v:num_parameters(), n0)
  expect(v.pos_embed._c.storage ~= v.arena._c.storage)
  if not has_functional() then return end
  -- train mode draws drop-path masks, eval mode is deterministic
  local x = dama.rand(4, 7, 32, 32)
  v:eval()
  local a, b = v(x), v(x)
  expect_eq((a - b):abs():max():item(), 0)
  expect_eq(a.shape, {4, 5})
  v:train()
  local c = v(x)
  expect_eq(c.shape, {4, 5})
end)

test('resample_pos_embed: bicubic like torch F.interpolate (align_corners false)', function()
  local vit = require 'dama.nn.vit'
  local D, g = 3, 4
  local rows = {}
  for i = 0, g * g do
    rows[i + 1] = {}
    for d = 0, D - 1 do rows[i + 1][d + 1] = math.sin(0.37 * i + 1.3 * d) end
  end
  local pos = dama.tensor({rows}, 'f64')
  -- reference values: torch 1.13, F.interpolate(size=(n, n), mode='bicubic', align_corners=False) on the grid rows
  local want = {
    [6] = {0.278822751526, 1.089203138448, 0.106372837496, 0.968967374656, 0.603552084894, -0.435241045855, 0.776551050795},
    [3] = {0.500489909163, 0.851358455249, -0.481682282849, 0.207394025917, -0.962620835564, 0.754222749926, 0.810104461803},
  }
  for n, vals in pairs(want) do
    local r = vit.resample_pos_embed(pos, n, 1)
    expect_eq(r.shape, {1, 1 + n * n, D})
    expect_eq(r[{0, 0, 1}], pos[{0, 0, 1}])                  -- cls row kept
    local flat = r:narrow(1, 1, n * n):contiguous():view(-1)
    local at = {0, 1, 5, 7, 13, 20, n * n * D - 1}
    for i, k in ipairs(at) do expect_close(flat[k], vals[i], 1e-10) end
  end
  expect_eq(vit.resample_pos_embed(pos, 4, 1):totable(), pos:totable())
  -- load_pretrained resamples a checkpoint's table from another grid (8x8 -> 4x4 here)
  local v = nn.ViT{img = 32, patch = 8, chans = 7, dim = 64, depth = 1, heads = 4, global_pool = 'avg', num_classes = 2}
  local src = nn.ViT{img = 64, patch = 8, chans = 7, dim = 64, depth = 1, heads = 4}
  local r = v:load_pretrained(src:state_dict())
  expect_eq(#r.mismatched, 0)
  expect_close(v.pos_embed, vit.resample_pos_embed(src.pos_embed, 4, 1), 1e-6)
end)

test('classifier ViT: whole-arena directional derivative matches backward (avg and token pooling)', function()
  if not has_functional() then skip('dama.nn.functional not available yet') end
  local F = require 'dama.nn.functional'
  for _, gp in ipairs{'avg', 'token'} do
    dama.manual_seed(21)
    local v = nn.ViT{img = 16, patch = 4, chans = 3, dim = 32, depth = 2, heads = 4, global_pool = gp, num_classes = 3,
                     pos_trainable = true, head_init_std = 0.5}
    v:eval()
    local x = dama.rand(2, 3, 16, 16)
    local y = dama.tensor({0, 2}, 'i64')
    local function loss_at() return dama.no_grad(function() return F.cross_entropy(v(x), y, 0.1):item() end) end
    v:zero_grad()
    F.cross_entropy(v(x), y, 0.1):backward()
    local dir = dama.randn(v.arena:numel())
    local analytic = (v.grad_arena:to('f64') * dir:to('f64')):sum():item()
    local base = v.arena:clone()
    local eps = 1e-3
    v.arena:copy_(base + dir * eps); local lp = loss_at()
    v.arena:copy_(base - dir * eps); local lm = loss_at()
    v.arena:copy_(base)
    local numeric = (lp - lm) / (2 * eps)
    local rel = math.abs(numeric - analytic) / math.max(math.abs(analytic), 1e-6)
    print(string.format("     %s: numeric %.6g backward %.6g rel %.2g", gp, numeric, analytic, rel))
    expect(rel < 2e-2, string.format('%s: directional derivative %g numeric vs %g backward (rel %.2g)', gp, numeric,
      analytic, rel))
    expect(rawget(v.pos_embed, 'grad'):abs():sum():item() > 0, 'pos_embed got no gradient')
  end
end)

test('a ViT fed the wrong image size names the expected and the given shape', function()
  local vit = dama.nn.ViT{img = 16, patch = 8, chans = 3, dim = 16, depth = 1, heads = 2}
  expect_error(function() vit:forward_features(dama.rand(2, 3, 32, 32)) end,
    'expected images %[N, 3, 16, 16%] %(chans 3, img 16%), got %[2, 3, 32, 32%]')
  expect_error(function() vit:forward_features(dama.rand(2, 4, 16, 16)) end, 'got %[2, 4, 16, 16%]')
  local f = vit:forward_features(dama.rand(2, 3, 16, 16))
  expect_eq(f:size(0), 2)
end)

test('unknown constructor options are named with the closest valid name', function()
  expect_error(function() dama.nn.ViT{img = 16, patch = 8, chans = 3, dim = 16, depth = 1, heads = 2, drop_pth = 0.1} end,
    "VisionTransformer: unknown option 'drop_pth' (did you mean 'drop_path'?)")
  expect_error(function()
    dama.nn.MAE{img = 16, patch = 8, chans = 3, dim = 16, depth = 1, heads = 2, dec_dim = 16, dec_depth = 1,
                dec_heads = 2, mlp_ratoi = 4}
  end, "MaskedAutoencoderViT: unknown option 'mlp_ratoi' (did you mean 'mlp_ratio'?)")
end)
