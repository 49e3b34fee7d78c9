-- dama.nn.functional: each fused C op against the same math composed from autograd tensor ops
-- (themselves finite-difference checked in test_autograd.lua), forward and every gradient.
local dama = require 'dama'
local F = require 'dama.nn.functional'

local function leaf(t) return t:requires_grad_() end

-- run f(inputs) and ref(inputs) on copies, compare outputs and the gradients of sum(out * w)
local function compare(name, f, ref, make, tol)
  test('functional ' .. name, function()
    dama.manual_seed(3)
    local ins = make()
    local a, b = {}, {}
    for i, x in ipairs(ins) do
      a[i] = x:clone(); b[i] = x:double()
      if x:is_floating_point() and not x.no_grad then leaf(a[i]); leaf(b[i]) end
    end
    local out_a, out_b = f(unpack(a)), ref(unpack(b))
    expect_close(out_a:double(), out_b, tol or 1e-4, name .. ' forward')
    local w = dama.randn(out_a:size()):double()
    ;(out_a:double() * w):sum():backward()
    ;(out_b * w):sum():backward()
    for i = 1, #ins do
      if b[i].grad then
        expect(a[i].grad ~= nil, name .. ': no gradient for input ' .. i)
        expect_close(a[i].grad:double(), b[i].grad, tol or 1e-4, name .. ' grad ' .. i)
      end
    end
  end)
end

local function ln_ref(x, w, b, eps)
  local mu = x:mean(-1, true)
  local var = x:var(-1, false, true)
  local y = (x - mu) / (var + eps):sqrt()
  if w then y = y * w + b end
  return y
end

compare('linear', F.linear, function(x, w, b) return x:matmul(w:t()) + b end,
  function() return {dama.randn(2, 3, 5), dama.randn(4, 5), dama.randn(4)} end)
compare('layer_norm', function(x, w, b) return F.layer_norm(x, w, b, 1e-6) end,
  function(x, w, b) return ln_ref(x, w, b, 1e-6) end,
  function() return {dama.randn(6, 8), dama.randn(8), dama.randn(8)} end)
compare('layer_norm no affine', function(x) return F.layer_norm(x, nil, nil, 1e-5) end,
  function(x) return ln_ref(x, nil, nil, 1e-5) end, function() return {dama.randn(4, 16)} end)
compare('gelu', F.gelu, function(x) return x:gelu() end, function() return {dama.randn(50)} end)
compare('relu', F.relu, function(x) return x:relu() end, function() return {dama.randn(50)} end)
compare('softmax', F.softmax, function(x)
  local e = (x - x:amax(-1, true)):exp()
  return e / e:sum(-1, true)
end, function() return {dama.randn(3, 7)} end)

compare('attention', function(qkv) return F.attention(qkv, 2) end, function(qkv)
  local B, T, C3 = qkv:size(0), qkv:size(1), qkv:size(2)
  local C, H = C3 / 3, 2
  local hd = C / H
  local r = qkv:reshape(B, T, 3, H, hd):permute(2, 0, 3, 1, 4)   -- 3, B, H, T, hd
  local q, k, v = r:select(0, 0), r:select(0, 1), r:select(0, 2)
  local s = q:matmul(k:transpose(-2, -1)) * (hd ^ -0.5)
  local e = (s - s:amax(-1, true)):exp()
  local a = e / e:sum(-1, true)
  return a:matmul(v):transpose(1, 2):reshape(B, T, C)
end, function() return {dama.randn(2, 5, 12)} end)

compare('patchify', function(x) return F.patchify(x, 2) end, function(x)
  local N, C, H, W = x:size(0), x:size(1), x:size(2), x:size(3)
  -- nchpwq -> nhwpqc
  return x:reshape(N, C, H / 2, 2, W / 2, 2):permute(0, 2, 4, 3, 5, 1):reshape(N, H * W / 4, 4 * C)
end, function() return {dama.randn(2, 3, 4, 6)} end)

compare('patch_embed', function(x, w, b) return F.patch_embed(x, w, b, 2) end, function(x, w, b)
  local N, C, H, W = x:size(0), x:size(1), x:size(2), x:size(3)
  local cols = x:reshape(N, C, H / 2, 2, W / 2, 2):permute(0, 2, 4, 1, 3, 5):reshape(N, H * W / 4, C * 4)
  return cols:matmul(w:reshape(w:size(0), -1):t()) + b
end, function() return {dama.randn(2, 3, 4, 4), dama.randn(5, 3, 2, 2), dama.randn(5)} end)

compare('mse_loss', F.mse_loss, function(p, t) return (p - t):square():mean() end,
  function() return {dama.randn(4, 3), dama.randn(4, 3)} end)
compare('mse_loss sum', function(p, t) return F.mse_loss(p, t, 'sum') end,
  function(p, t) return (p - t):square():sum() end, function() return {dama.randn(4, 3), dama.randn(4, 3)} end)
compare('smooth_l1 sum beta 2', function(p, t) return F.smooth_l1_loss(p, t, 2, 'sum') end, function(p, t)
  local d = (p - t):abs()
  return dama.where(d:lt(2), d:square() * 0.25, d - 1):sum()
end, function() return {dama.randn(20) * 2, dama.randn(20)} end)
compare('cross_entropy smoothing', function(l) return F.cross_entropy(l, dama.tensor({1, 0, 3}, 'i64'), 0.1) end,
  function(l)
    local lse = (l - l:amax(-1, true)):exp():sum(-1, true):log() + l:amax(-1, true)
    local logp = l - lse
    local q = dama.full({3, 4}, 0.1 / 4):double()
    q[{0, 1}] = 0.9 + 0.025; q[{1, 0}] = 0.925; q[{2, 3}] = 0.925
    return -(q * logp):sum(-1):mean()
  end, function() return {dama.randn(3, 4)} end)

compare('normpix_loss', function(p, t, m) return (F.normpix_loss(p, t, m)) end, function(p, t, m)
  local mu = t:mean(-1, true)
  local var = t:var(-1, true, true)
  local tn = (t - mu) / (var + 1e-6):sqrt()
  local lpp = (p - tn):square():mean(-1)
  return (lpp * m):sum() / m:sum()
end, function()
  local m = dama.tensor{{1, 0, 1, 1}, {0, 1, 1, 0}}; m.no_grad = true
  local t = dama.randn(2, 4, 6); t.no_grad = true
  return {dama.randn(2, 4, 6), t, m}
end)

test('token gather and unshuffle', function()
  local x = dama.arange(2 * 4 * 3):view(2, 4, 3):float():requires_grad_()
  local keep = dama.tensor({{2, 0}, {1, 3}}, 'i64')
  local g = F.gather_tokens(x, keep)
  expect_eq(g[0][0]:totable(), {6, 7, 8})
  g:sum():backward({retain_graph = true})
  expect_eq(x.grad[0]:sum(1):totable(), {3, 0, 3, 0})
  local mt = dama.full({3}, -1):requires_grad_()
  local restore = dama.tensor({{1, 2, 0, 3}, {2, 0, 3, 1}}, 'i64')
  local u = F.unshuffle_tokens(g, mt, restore)
  expect_eq(u[0]:totable(), {{0, 1, 2}, {-1, -1, -1}, {6, 7, 8}, {-1, -1, -1}})
  u:sum():backward()
  expect_eq(mt.grad:totable(), {4, 4, 4})
end)

test('sin-cos position embedding follows the reference formula', function()
  local D, gh, gw = 8, 2, 3
  local pe = F.sincos_pos_embed(D, gh, gw, true)
  expect_eq(pe.shape, {7, 8})
  expect_eq(pe[0]:totable(), {0, 0, 0, 0, 0, 0, 0, 0})
  -- token 1 + r*gw + c: dims [0,2) sin(c w_k), [2,4) cos(c w_k), [4,6) sin(r w_k), [6,8) cos(r w_k)
  local r, c = 1, 2
  local row = pe[1 + r * gw + c]
  local w1 = 10000 ^ (-1 / 2)
  expect_close(row:totable(), {math.sin(c), math.sin(c * w1), math.cos(c), math.cos(c * w1),
                               math.sin(r), math.sin(r * w1), math.cos(r), math.cos(r * w1)}, 1e-6)
end)

test('bad shapes give clear errors', function()
  expect_error(function() F.linear(dama.zeros(2, 3), dama.zeros(4, 5)) end, 'last dim 5')
  expect_error(function() F.patchify(dama.zeros(1, 3, 5, 4), 2) end, 'not a multiple')
  expect_error(function() F.attention(dama.zeros(1, 2, 10), 2) end, '3*C')
  expect_error(function() F.mse_loss(dama.zeros(3), dama.zeros(4)) end, '3 elements')
  expect_error(function() F.mse_loss(dama.zeros(3), dama.zeros(3), 'none') end, "'mean' or 'sum'")
end)
