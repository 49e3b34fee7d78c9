-- The Lua tensor binding: creation, views, indexing, math, reductions, errors.
local dama = require 'dama'

test('acceptance: matmul sum prints 54', function()
  local t = dama.tensor{{1, 2}, {3, 4}}
  expect_eq(tostring(t:matmul(t):sum()), '54')
end)

test('creation and queries', function()
  local z = dama.zeros(2, 3)
  expect_eq(z.shape, {2, 3}); expect_eq(z.dtype, 'f32'); expect_eq(z.device, test_device or 'cpu')
  expect_eq(z:numel(), 6); expect_eq(z:dim(), 2); expect_eq(z:stride(), {3, 1})
  expect_eq(dama.ones({2}, 'i64'):totable(), {1, 1})
  expect_eq(dama.full({2, 2}, 7, 'u8'):totable(), {{7, 7}, {7, 7}})
  expect_eq(dama.arange(5):totable(), {0, 1, 2, 3, 4})
  expect_eq(dama.arange(1, 2, 0.5, 'f64'):totable(), {1, 1.5})
  expect_close(dama.linspace(0, 1, 5), {0, 0.25, 0.5, 0.75, 1})
  for _, dt in ipairs{'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'} do
    local t = dama.tensor({{1, 2}, {3, 4}}, dt)
    expect_eq(t.dtype, dt); expect_eq(t:totable(), {{1, 2}, {3, 4}})
  end
  expect_eq(dama.empty({2, 0}):numel(), 0)
end)

test('random numbers are seeded and reproducible', function()
  dama.manual_seed(7); local a = dama.randn(100)
  dama.manual_seed(7); local b = dama.randn(100)
  expect_eq(a:totable(), b:totable())
  local u = dama.rand(1000)
  expect(u:min():item() >= 0 and u:max():item() < 1)
  local r = dama.randint(3, 6, {500})
  expect_eq(r.dtype, 'i64'); expect(r:min():item() >= 3 and r:max():item() <= 5)
  local p = dama.randperm(10):sort()
  expect_eq(p:totable(), dama.arange(10, 'i64'):totable())
end)

test('views share storage and copy when asked', function()
  local a = dama.arange(6):view(2, 3)
  local t = a:t()
  expect(not t:is_contiguous())
  expect_eq(t:contiguous():totable(), {{0, 3}, {1, 4}, {2, 5}})
  local row = a:select(0, 1)
  row[0] = 42
  expect_eq(a[{1, 0}], 42)
  expect_eq(a:narrow(1, 1, 2):totable(), {{1, 2}, {42, 4, 5} and {4, 5}})
  expect_eq(a:unsqueeze(0).shape, {1, 2, 3}); expect_eq(a:unsqueeze(0):squeeze().shape, {2, 3})
  expect_eq(dama.tensor{1, 2}:view(2, 1):expand(2, 3):totable(), {{1, 1, 1}, {2, 2, 2}})
  expect_eq(a:permute(1, 0).shape, {3, 2})
  expect_eq(a:slice(1, 0, 3, 2):totable(), {{0, 2}, {42, 5}})
  expect_eq(a:t():reshape(6):totable(), {0, 42, 1, 4, 2, 5})
  expect_error(function() a:t():view(6) end, 'reshape')
  local c = a:clone(); c[{0, 0}] = -1
  expect_eq(a[{0, 0}], 0)
  expect_eq(a:to('i32').dtype, 'i32')
end)

test('indexing reads and writes', function()
  local x = dama.zeros(3, 4)
  x[{1, 2}] = 5
  expect_eq(x[{1, 2}], 5)
  expect_eq(x[1][2], 5)
  x[2] = 1                       -- a whole row
  expect_eq(x[2]:totable(), {1, 1, 1, 1})
  x[{{0, 2}, 0}] = 9             -- rows 0..1 of column 0
  expect_eq(x:select(1, 0):totable(), {9, 9, 1})
  expect_eq(x[{-1, -1}], 1)
  expect_error(function() return x[{3, 0}] end, 'out of range')
end)

test('element-wise math with broadcasting', function()
  local a = dama.tensor{{1, 2}, {3, 4}}
  local b = dama.tensor{10, 20}
  expect_eq((a + b):totable(), {{11, 22}, {13, 24}})
  expect_eq((a - 1):totable(), {{0, 1}, {2, 3}})
  expect_eq((1 - a):totable(), {{0, -1}, {-2, -3}})
  expect_eq((a * 2):totable(), {{2, 4}, {6, 8}})
  expect_eq((a / b):totable(), (dama.tensor{{0.1, 0.1}, {0.3, 0.2}}):totable())
  expect_eq((-a):totable(), {{-1, -2}, {-3, -4}})
  expect_close(a:exp():log(), a, 1e-6)
  expect_close((a ^ 2):sqrt(), a, 1e-6)
  expect_eq(a:clamp(2, 3):totable(), {{2, 2}, {3, 3}})
  expect_eq(a:maximum(dama.tensor{2, 3}):totable(), {{2, 3}, {3, 4}})
  local m = a:gt(2)
  expect_eq(m.dtype, 'u8'); expect_eq(m:totable(), {{0, 0}, {1, 1}})
  local c = a:clone(); c:add_(1):mul_(2)
  expect_eq(c:totable(), {{4, 6}, {8, 10}})
  expect_eq(a:masked_fill(m, 0):totable(), {{1, 2}, {0, 0}})
  expect_eq(dama.where(m, a, -1):totable(), {{-1, -1}, {3, 4}})
end)

test('reductions over dims', function()
  local a = dama.tensor{{1, 2, 3}, {4, 5, 6}}
  expect_eq(a:sum():item(), 21)
  expect_eq(a:sum(0):totable(), {5, 7, 9})
  expect_eq(a:sum(1, true).shape, {2, 1})
  expect_close(a:mean(1), {2, 5})
  expect_close(a:var(1), {1, 1}); expect_close(a:var(1, false), {2 / 3, 2 / 3})
  expect_close(a:std():item(), math.sqrt(3.5))
  local v, i = a:max(1)
  expect_eq(v:totable(), {3, 6}); expect_eq(i:totable(), {2, 2}); expect_eq(i.dtype, 'i64')
  expect_eq(a:argmin(0):totable(), {0, 0, 0})
  expect_close(a:norm():item(), math.sqrt(91))
end)

test('matmul, sort, topk, gather, scatter, cat, stack', function()
  local a = dama.tensor{{1, 2}, {3, 4}}
  expect_eq(a:matmul(a):totable(), {{7, 10}, {15, 22}})
  local bat = dama.stack({a, a * 2})
  expect_eq(bat:matmul(a)[1]:totable(), {{14, 20}, {30, 44}})
  local v, i = dama.tensor{3, 1, 2, 1}:sort()
  expect_eq(v:totable(), {1, 1, 2, 3}); expect_eq(i:totable(), {1, 3, 2, 0})
  local tv, ti = dama.tensor{5, 9, 1, 7}:topk(2)
  expect_eq(tv:totable(), {9, 7}); expect_eq(ti:totable(), {1, 3})
  local idx = dama.tensor({{1, 0}, {0, 0}}, 'i64')
  expect_eq(a:gather(1, idx):totable(), {{2, 1}, {3, 3}})
  local z = dama.zeros(2, 2):scatter_(1, idx, dama.tensor{{5, 6}, {7, 8}})
  expect_eq(z[{0, 1}], 5)
  expect_eq(a:index_select(0, dama.tensor({1}, 'i64')):totable(), {{3, 4}})
  expect_eq(dama.cat({a, a}, 1).shape, {2, 4})
  expect_eq(dama.stack({a, a}, 2).shape, {2, 2, 2})
end)

test('errors name the operation and the bad argument', function()
  local e = expect_error(function() return dama.tensor{1, 2} + dama.tensor{1, 2, 3} end)
  expect(e:find('[2]', 1, true) and e:find('[3]', 1, true), e)
  expect_error(function() dama.zeros(2, 3):matmul(dama.zeros(2, 3)) end, '[2, 3]')
  expect_error(function() dama.zeros(2):select(0, 5) end, 'out of range')
  expect_error(function() dama.zeros(2, 'f33') end, 'f33')
  expect_error(function() dama.tensor{{1, 2}, {3}} end, 'ragged')
  expect_error(function() dama.zeros(2):gather(0, dama.tensor({7}, 'i64')) end, '7')
  expect_error(function() dama.cat({dama.zeros(2), 3}) end, 'element 2')
  expect_error(function() dama.zeros(2):add('x') end, 'expected a dama tensor')
  local t = dama.zeros(2); t:free()
  expect_error(function() return t + 1 end, 'freed')
end)

test('memory is tracked and freed', function()
  collectgarbage(); collectgarbage()
  -- dama.memory() and its limit are host memory (the cpu and sim devices); a GPU's tensors count in memory_stats
  local gpu = tostring(test_device):match('^cuda') ~= nil
  local function in_use() return gpu and dama.memory_stats(test_device).allocated or dama.memory().in_use end
  local before = in_use()
  local t = dama.zeros(1000, 1000)
  expect(in_use() >= before + 4e6)
  t:free()
  expect_eq(in_use(), before)
  if gpu then return end
  dama.set_memory_limit(before + 1000)
  local err = expect_error(function() return dama.zeros(1000, 1000) end, 'out of memory')
  dama.set_memory_limit(0)
  expect(err:find('4000000'), err)
end)

test('FFI access to raw data', function()
  local dev = dama.zeros(1).device
  if dev ~= 'cpu' then
    -- a device tensor's memory is not host memory: data() refuses it, naming the device; the host copy works
    expect_error(function() return dama.zeros({4, 8}, 'u8'):data() end, 'data: the tensor is on ' .. dev)
  end
  local m = dama.zeros({4, 8}, {dtype = 'u8', device = 'cpu'})
  local p = m:data()
  for i = 0, m:numel() - 1 do p[i] = i % 3 == 0 and 1 or 0 end
  expect_eq(m:sum():item(), 11)
  expect_error(function() return m:t():data() end, 'contiguous')
end)

test('printing shows values, dtype, shape and device', function()
  local s = tostring(dama.tensor{{1, 2.5}, {3, 4}})
  expect(s:find('2.5', 1, true) and s:find('f32') and s:find('2×2') and s:find(test_device or 'cpu', 1, true), s)
  local big = tostring(dama.zeros(100, 100))
  expect(big:find('...', 1, true) and #big < 2000, big)
end)

test('creation with an options table stays right once the JIT compiles the call (LuaJIT vararg trace bug)', function()
  local function mk(shape) return dama.zeros(shape, {dtype = 'f32'}) end
  for i = 1, 300 do
    local r = mk({2, 3, 4})
    if r:dim() ~= 3 then error('iteration ' .. i .. ': got a ' .. r:dim() .. '-d tensor') end
    local e = dama.empty(2, 3, {dtype = 'f64'})
    if e:dim() ~= 2 or e.dtype ~= 'f64' then error('iteration ' .. i .. ': empty(2, 3, opts) wrong') end
  end
end)
