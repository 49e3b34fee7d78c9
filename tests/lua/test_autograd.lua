-- Autograd: finite-difference checks of every differentiable tensor op, graph semantics.
local dama = require 'dama'
local gradcheck = dama.autograd.gradcheck

local function r(...) return dama.randn(...):double() end
local function pos(...) return (dama.rand(...):double() + 0.5) end

local function check(name, fn, inputs, eps, tol)
  test('gradcheck ' .. name, function()
    dama.manual_seed(1)
    local ok, msg = gradcheck(fn, inputs(), eps, tol)
    expect(ok, msg)
  end)
end

check('add broadcast', function(a, b) return a + b end, function() return {r(3, 4), r(4)} end)
check('sub', function(a, b) return a - b * 2 end, function() return {r(3, 1), r(1, 4)} end)
check('scalar first', function(a) return 1 - a + (2 / (a:square() + 1)) end, function() return {r(5)} end)
check('mul div', function(a, b) return a * b / (b:square() + 1) end, function() return {r(2, 3), r(2, 3)} end)
check('div by tensor', function(a, b) return a / b end, function() return {r(2, 3), pos(3)} end)
check('pow', function(a, b) return a ^ 3 + a:pow(b) end, function() return {pos(4), r(4)} end)
check('scalar pow', function(a) return 2 ^ a end, function() return {r(4)} end)
check('max min', function(a, b) return a:maximum(b) + a:minimum(b * 0.5) end, function() return {r(6), r(6)} end)
check('unary', function(a)
  return a:exp() + a:sin() + a:cos() + a:tanh() + a:sigmoid() + a:erf() + a:gelu() + a:square() + a:abs() + (-a)
end, function() return {r(3, 3)} end)
check('log sqrt rsqrt reciprocal', function(a) return a:log() + a:sqrt() + a:rsqrt() + a:reciprocal() end,
  function() return {pos(5)} end)
check('relu clamp', function(a) return a:relu() * 3 + a:clamp(-0.5, 0.5) end, function() return {r(10)} end)
check('where masked_fill', function(a, b)
  return dama.where(a:gt(0), a, b) + b:masked_fill(b:lt(0), 0)
end, function() return {r(7), r(7)} end)
check('sum mean over dims', function(a)
  return a:sum(1):sum() + a:mean({0, 2}, true):sum() * 3 + a:mean()
end, function() return {r(2, 3, 4)} end)
check('var std norm', function(a)
  return a:var(1) + a:std(1, false) + a:norm(2, 1) + a:norm(1, 1) * 0.5 + a:var():expand(3)
end, function() return {r(3, 5)} end)
check('max min amax prod', function(a)
  local v = a:max(1)
  local w = a:min(0, true)
  return v:sum() + w:sum() + a:amax() + a:prod(1):sum()
end, function() return {r(3, 4)} end)
check('matmul 2d batched and vectors', function(a, b, v)
  return a:matmul(b):sum() + dama.stack({a, a}):matmul(b):sum() + a:matmul(v):sum() + v:matmul(b):sum()
end, function() return {r(3, 4), r(4, 2), r(4)} end)
check('views', function(a)
  return a:view(6, 2):t():reshape(3, 4):permute(1, 0):contiguous():unsqueeze(0):squeeze():narrow(0, 1, 2)
    :slice(1, 0, 3, 2):select(1, 1):unsqueeze(1):expand(2, 5)
end, function() return {r(3, 4)} end)
check('gather index_select', function(a)
  local idx = dama.tensor({{0, 2}, {1, 1}, {2, 0}}, 'i64')
  return a:gather(1, idx):sum() + a:index_select(0, dama.tensor({2, 0, 2}, 'i64')):sum() * 2
end, function() return {r(3, 3)} end)
check('sort topk', function(a)
  local v = a:sort(1)
  local t = a:topk(2, 1)
  return (v * dama.arange(4):double()):sum() + t:sum()
end, function() return {r(3, 4)} end)
check('cat stack', function(a, b)
  return dama.cat({a, b, a}, 1):square():sum() + dama.stack({a, b}, 0):sum(0):exp():sum()
end, function() return {r(2, 2), r(2, 2)} end)
check('dtype round trip', function(a) return a:float():double() * 2 end, function() return {r(3)} end, 1e-2, 1e-3)

test('gradients accumulate into leaves and into a preassigned grad', function()
  local w = dama.tensor{1, 2, 3}:requires_grad_();
  (w * 2):sum():backward()
  expect_eq(w.grad:totable(), {2, 2, 2});
  (w * w):sum():backward()
  expect_eq(w.grad:totable(), {4, 6, 8})
  local arena = dama.zeros(3)
  local p = dama.tensor{1, 1, 1}:requires_grad_()
  p.grad = arena:view(3);
  (p * 5):sum():backward()
  expect_eq(arena:totable(), {5, 5, 5})
end)

test('shared subexpressions sum their gradients', function()
  local x = dama.tensor{2}:double():requires_grad_()
  local y = x * x
  local z = y + y * 3
  z:sum():backward()
  expect_eq(x.grad:totable(), {16})
end)

test('no_grad, detach and second backward', function()
  local x = dama.tensor{1, 2}:requires_grad_()
  local y = dama.no_grad(function() return x * 2 end)
  expect(not y.requires_grad)
  expect(not (x:detach() * 2).requires_grad)
  local l = (x * 3):sum()
  l:backward()
  expect_error(function() l:backward() end, 'second time')
  local l2 = (x * 3):sum()
  l2:backward({retain_graph = true}); l2:backward()
  expect_eq(x.grad:totable(), {9, 9})
  expect_error(function() (x * 2):backward() end, 'one-element')
  expect_error(function() dama.tensor{1}:sum():backward() end, 'does not require grad')
end)

test('deep graphs do not overflow', function()
  local x = dama.tensor{1}:requires_grad_()
  local y = x
  for _ = 1, 20000 do y = y + 1 end
  y:sum():backward()
  expect_eq(x.grad:totable(), {1})
end)
