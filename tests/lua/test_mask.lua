-- dama.mask: the reference's counts, random and adaptive masks reproduced exactly from the committed PyTorch
-- fixtures (tests/reference/README.md), masks from Lua tables / tensors / FFI loops, the by_score strategy,
-- and the token gather / unshuffle kernels against dama's generic gather.
local dama = require 'dama'
local M = dama.mask

local FIX = 'tests/reference/fixtures/'

-- fixture(name)(key) -> the tensor `key` of a committed fixture (read with dama.load)
local function fixture(name)
  local f = io.open(FIX .. name, 'rb')
  if not f then skip('fixture ' .. name .. ' not found (run from the repository root)') end
  f:close()
  local ts = dama.load(FIX .. name)
  return function(key) return assert(ts[key], 'fixture has no tensor ' .. key) end
end

-- ---------------------------------------------------------------- counts

test('visible_count truncates like the reference', function()
  expect_eq(M.visible_count(64, 0.8), 12)   -- 64 * (1 - 0.8) = 12.799999999999997
  expect_eq(M.visible_count(16, 0.75), 4)
  expect_eq(M.visible_count(10, 0.9), 0)    -- 0.9999999999999998
  expect_eq(M.visible_count(7, 0), 7)
  expect_error(function() M.visible_count(64, 1.2) end, 'mask ratio')
  expect_error(function() M.visible_count(0, 0.5) end, 'L must be a whole number >= 1')
end)

test('adaptive_counts: K, R, O and the ratio limit', function()
  local K, R, O = M.adaptive_counts(64, 0.8, 0.5)
  expect_eq({K, R, O}, {12, 40, 6})
  K, R, O = M.adaptive_counts(64, 0.6, 0.5)
  expect_eq({K, R, O}, {25, 14, 12})
  expect_error(function() M.adaptive_counts(16, 0.4, 0.5) end, 'R = L - 2K = -2 < 0')
end)

-- ---------------------------------------------------------------- the PyTorch fixtures

test('random masking reproduces the MAE fixture from its noise', function()
  local get = fixture('vit_mae_fwd_bwd.safetensors')
  local m = M.random(3, 16, 0.75, get('noise'))
  expect_eq(m.K, 4)
  expect_eq(m.ids_shuffle, get('ids_shuffle'))
  expect_eq(m.ids_restore, get('ids_restore'))
  expect_eq(m.mask, get('mask'))
  expect_eq(m.ids_keep, get('ids_shuffle'):narrow(1, 0, 4))
end)

for _, mode in ipairs{'union', 'per_sample'} do
  test('adaptive masking reproduces the DAMA fixture, mode ' .. mode, function()
    local get = fixture('dama_step_' .. mode .. '.safetensors')
    local m1 = M.random(3, 16, 0.75, get('noise1'))
    expect_eq(m1.mask, get('m1'))
    expect_eq(m1.ids_shuffle, get('ids_shuffle1'))
    expect_eq(m1.ids_restore, get('ids_restore1'))
    -- from the fixture's own m1 tensor, and from our mask object
    for _, src in ipairs{get('m1'), m1} do
      local m2 = M.adaptive(src, get('loss_per_patch1'), 0.75, 0.5, {mode = mode})
      expect_eq(m2.mask, get('m2'))
      expect_eq(m2.ids_shuffle, get('ids_shuffle2'))
      expect_eq(m2.ids_restore, get('ids_restore2'))
      expect_eq(m2.ids_keep, get('ids_shuffle2'):narrow(1, 0, 4))
      expect_eq(m2:visible_per_row(), mode == 'union' and {7, 7, 6} or {4, 4, 4})
    end
  end)
end

test('per_sample is the default mode and m2 = 1 - scatter(ids_keep2)', function()
  local get = fixture('dama_step_per_sample.safetensors')
  local m2 = M.adaptive(get('m1'), get('loss_per_patch1'), 0.75, 0.5)
  expect_eq(m2.mode, 'per_sample')
  local rebuilt = dama.ones(3, 16):scatter_(1, m2.ids_keep, 0)
  expect_eq(m2.mask, rebuilt)
end)

-- ---------------------------------------------------------------- adaptive edge cases

local function random_losses(N, L) return dama.rand(N, L):add(0.01) end

test('adaptive: N = 1 gives the same mask in both modes', function()
  dama.manual_seed(11)
  local m1 = M.random(1, 64, 0.8)
  local lpp = random_losses(1, 64)
  local a = M.adaptive(m1, lpp, 0.8, 0.5, {mode = 'per_sample'})
  local b = M.adaptive(m1, lpp, 0.8, 0.5, 'union')
  expect_eq(a.mask, b.mask)
  expect_eq(a.ids_shuffle, b.ids_shuffle)
end)

test('adaptive: overlap 0 is disjoint from branch 1, overlap 1 repeats it', function()
  dama.manual_seed(12)
  local m1 = M.random(8, 64, 0.8)
  local lpp = random_losses(8, 64)
  local a = M.adaptive(m1, lpp, 0.8, 0)
  expect_eq(a:visible_per_row(), {12, 12, 12, 12, 12, 12, 12, 12})
  -- visible in both = 0 everywhere
  expect_eq((a.mask:eq(0)):mul(m1.mask:eq(0)):sum():item(), 0)
  local b = M.adaptive(m1, lpp, 0.8, 1)
  expect_eq(b.mask, m1.mask)
end)

test('adaptive: R + O = 0 (ratio 0.5, overlap 0)', function()
  local m1 = M.from_mask{{0, 1, 1, 0}}
  local lpp = dama.tensor{{1, 2, 3, 4}}
  expect_eq(M.adaptive(m1, lpp, 0.5, 0).mask, {{1, 0, 0, 1}})          -- the K easiest masked patches
  expect_eq(M.adaptive(m1, lpp, 0.5, 0, 'union').mask, {{1, 1, 1, 1}})  -- the reference's [-0:] slice
end)

test('adaptive: clear errors', function()
  local m1 = M.random(2, 16, 0.75)
  local lpp = random_losses(2, 16)
  expect_error(function() M.adaptive(m1, lpp, 0.3, 0.5) end, 'needs K <= L/2')
  expect_error(function() M.adaptive(m1, lpp, 0.75, 1.5) end, 'overlap ratio must be a number in [0, 1]')
  expect_error(function() M.adaptive(m1, lpp, 0.75, 0.5, {mode = 'batch'}) end, "mode must be 'per_sample' or 'union'")
  expect_error(function() M.adaptive(m1, dama.rand(2, 15), 0.75, 0.5) end, 'loss_per_patch must have shape [2, 16]')
  local bad = m1.mask:clone(); bad[{0, 3}] = 0.5
  expect_error(function() M.adaptive(bad, lpp, 0.75, 0.5) end, 'm1[0, 3] = 0.5')
  expect_error(function() M.adaptive(dama.ones(2, 16), lpp, 0.75, 0.5) end, 'row 0 of m1 has 0 visible')
end)

test('adaptive: no gradient flows through the mask (loss only read)', function()
  local m1 = M.random(2, 16, 0.75)
  local lpp = random_losses(2, 16)
  lpp.requires_grad = true
  local m2 = M.adaptive(m1, lpp, 0.75, 0.5)
  expect(not rawget(m2.mask, 'requires_grad'))
end)

-- ---------------------------------------------------------------- random masks

test('random: Philox noise, seeded, K zeros per row', function()
  dama.manual_seed(5)
  local a = M.random(4, 64, 0.8)
  dama.manual_seed(5)
  local b = M.random(4, 64, 0.8)
  expect_eq(a.ids_shuffle, b.ids_shuffle)
  expect_eq(a:visible_per_row(), {12, 12, 12, 12})
  expect_eq(a.mask:sum():item(), 4 * 52)
  -- ids_restore inverts ids_shuffle
  expect_eq(a.ids_shuffle:gather(1, a.ids_restore), dama.arange(64, 'i64'):unsqueeze(0):expand(4, 64))
  expect_error(function() M.random(2, 16, 0.75, dama.rand(2, 17)) end, 'noise must have shape [2, 16]')
  expect(tostring(a):find('dama.mask%(random, N=4, L=64, K=12'))
end)

-- ---------------------------------------------------------------- masks from Lua

test('from_mask: a table, a tensor, and an FFI loop', function()
  local a = M.from_mask{{1, 0, 1, 0, 1, 1}, {0, 1, 1, 1, 0, 1}}
  expect_eq(a.K, 2)
  expect_eq(a.ids_shuffle, {{1, 3, 0, 2, 4, 5}, {0, 4, 1, 2, 3, 5}})
  expect_eq(a.ids_keep, {{1, 3}, {0, 4}})
  expect_eq(a.ids_restore, {{2, 0, 3, 1, 4, 5}, {0, 2, 3, 4, 1, 5}})
  local b = M.from_mask(dama.tensor({{true, false, true, false, true, true}, {false, true, true, true, false, true}}, 'u8'))
  expect_eq(b.ids_shuffle, a.ids_shuffle)
  -- a checkerboard built with an FFI loop over t:data() (host memory), then used on the default device
  local m = dama.zeros(2, 16, {dtype = 'u8', device = 'cpu'})
  local p = m:data()
  for n = 0, 1 do for l = 0, 15 do p[n * 16 + l] = ((math.floor(l / 4) + l) % 2 == n) and 1 or 0 end end
  local c = M.from_mask(m:to(dama.get_default_device()))
  expect_eq(c.K, 8)
  expect_eq(c.mask:sum():item(), 16)
  expect_error(function() M.from_mask{{1, 0, 1}, {0, 0, 1}} end, 'row 1 has 2 visible patches (zeros) but row 0 has 1')
  expect_error(function() M.from_mask{{1, 2, 1}} end, 'mask[0, 1] = 2')
  expect_error(function() M.from_mask{1, 0} end, 'table of rows')
end)

test('by_score: a strategy in pure Lua hides the highest scores', function()
  local s = dama.tensor{{0.5, 0.9, 0.1, 0.3}, {2, 2, 1, 2}}
  local m = M.by_score(s, 0.5)
  expect_eq(m.mask, {{1, 1, 0, 0}, {0, 1, 0, 1}})   -- row 1: of the tied 2s the lowest index stays visible
  expect_eq(m.ids_keep, {{2, 3}, {0, 2}})
  expect_eq(m.kind, 'by_score')
  -- feeds the same gather as any other mask
  local x = dama.randn(2, 4, 3)
  expect_eq(m:gather(x), x:gather(1, m.ids_keep:unsqueeze(-1):expand(2, 2, 3)))
end)

test('by_score: the module docs example (mean DAPI per patch) runs', function()
  dama.manual_seed(9)
  local N, C, H, W, p = 2, 7, 32, 32, 8
  local imgs = dama.rand(N, C, H, W)
  local L = (H / p) * (W / p)
  local score = imgs:select(1, 0):reshape(N, H / p, p, W / p, p):permute(0, 1, 3, 2, 4)
                    :reshape(N, L, p * p):mean(2)
  local m = M.by_score(score, 0.75)
  expect_eq(m:visible_per_row(), {4, 4})
  -- every shown patch is dimmer than every hidden one
  local s, mk = score:totable(), m.mask:totable()
  for n = 1, N do
    local lo, hi = -math.huge, math.huge
    for l = 1, L do
      if mk[n][l] == 0 then lo = math.max(lo, s[n][l]) else hi = math.min(hi, s[n][l]) end
    end
    expect(lo <= hi)
  end
end)

-- ---------------------------------------------------------------- token kernels

local function dot(a, b) return a:mul(b):sum():item() end

test('gather forward/backward', function()
  dama.manual_seed(3)
  local m = M.random(3, 16, 0.75)
  local x = dama.randn(3, 16, 5)
  local out = M.gather(x, m)
  expect_eq(out:size(), {3, 4, 5})
  expect_eq(out, x:gather(1, m.ids_keep:unsqueeze(-1):expand(3, 4, 5)))
  local g = dama.randn(3, 4, 5)
  local dx = M.gather_backward(g, m.ids_keep, 16)
  expect_close(dot(out, g), dot(x, dx), 1e-5)
  -- removed rows get zeros
  expect_eq(dx:mul(m.mask:unsqueeze(-1)):abs():sum():item(), 0)
  -- more than one trailing dim, and an ids tensor instead of a mask object
  local x4 = dama.randn(3, 16, 2, 3)
  expect_eq(M.gather_forward(x4, m.ids_keep):size(), {3, 4, 2, 3})
  expect_error(function() M.gather(x:to('f64'), m) end, 'x must be f32')
  local bad = m.ids_keep:clone(); bad[{1, 2}] = 16
  expect_error(function() M.gather(x, bad) end, 'ids_keep[1, 2] = 16 is out of range')
end)

test('unshuffle forward/backward', function()
  dama.manual_seed(4)
  local m = M.random(3, 16, 0.75)
  local tok = dama.randn(3, 4, 6)
  local mt = dama.randn(1, 1, 6)
  local out = M.unshuffle(tok, mt, m)
  expect_eq(out:size(), {3, 16, 6})
  -- the MAE decoder's cat + gather
  local full = dama.cat({tok, mt:expand(3, 12, 6)}, 1)
  expect_eq(out, full:gather(1, m.ids_restore:unsqueeze(-1):expand(3, 16, 6)))
  -- kept tokens return to their patches
  expect_eq(M.gather(out, m), tok)
  local g = dama.randn(3, 16, 6)
  local dtok, dmt = M.unshuffle_backward(g, m.ids_restore, 4)
  expect_eq(dmt:size(), {6})
  expect_close(dot(out, g), dot(tok, dtok) + dot(mt:reshape(6), dmt), 1e-5)
  expect_close(dmt, g:mul(m.mask:unsqueeze(-1)):sum({0, 1}), 1e-5)
  expect_error(function() M.unshuffle(tok, dama.randn(5), m) end, 'mask_token must be an f32 tensor of 6 elements')
end)

test('mask object methods', function()
  local m = M.from_mask{{1, 0, 1, 1}, {0, 1, 1, 1}}
  expect_eq(m:ascii(0, 2), '#.\n##')
  expect_eq(m:visible_per_row(), {1, 1})
  expect(M.is_mask(m))
  local g = fixture('dama_step_union.safetensors')
  local u = M.adaptive(g('m1'), g('loss_per_patch1'), 0.75, 0.5, 'union')
  -- union rows hold zeros beyond the first K: shown as '+'
  local pic = u:ascii(0)
  local _, plus = pic:gsub('%+', '')
  expect_eq(plus, 3)
end)
