-- The cuda sort/argsort/topk, gather, scatter_/scatter_add_, index_select and cat (cuda/ops_index.c) against their
-- CPU twins (cpu/ops_sort.c, ops_index.c, ops_join.c): fresh seeded random inputs in every dtype, with ties (the
-- stable order and the lower index on ties must match), NaN / +-inf / -0 in the floats (NaN sorts last ascending,
-- first descending), odd sizes (1, 7, 33, 257 and 5000, which takes the multi-launch global sort), along the first,
-- a middle and the last dim, on strided (transposed, narrowed) inputs, empty and 0-d tensors, duplicate scatter
-- destinations, i32 and i64 indices, mixed-dtype cat, and the error messages of bad arguments (the same text as the
-- CPU's, bad indices included). Every result is integer indices or moved elements (scatter_add_: sums in the CPU's
-- order), so every comparison is bit for bit, in the interpreter and on a GPU.
local dama = require 'dama'
local ffi = dama.ffi
local C = dama.C
local unpack = table.unpack or unpack

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

local DTYPES = {'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'}
local FLOATS = {f32 = true, f64 = true, bf16 = true, f16 = true}

local function shape_of(t) return table.concat(t:size(), 'x') end
local function bytes_of(t)
  local h = t:cpu():contiguous()
  return ffi.string(C.dama_data_ptr(h._c), h:numel() * C.dama_dtype_size(h._c.dtype))
end

local compared = 0
-- got (cuda) has want's (cpu) dtype, shape and bits
local function same(what, got, want)
  expect_eq(got.device, 'cuda:0', what .. ': device')
  expect_eq(got.dtype, want.dtype, what .. ': dtype')
  expect_eq(shape_of(got), shape_of(want), what .. ': shape')
  if bytes_of(got) ~= bytes_of(want) then
    local g, w = got:cpu():to('f64'):contiguous():view(-1), want:to('f64'):contiguous():view(-1)
    for i = 0, w:numel() - 1 do
      local a, b = g:get(i), w:get(i)
      if not (a == b or (a ~= a and b ~= b)) then
        error(string.format('%s: element %d is %.9g, the CPU gives %.9g', what, i, a, b), 2)
      end
    end
    error(what .. ': same values but different bits (a NaN payload or the sign of zero)', 2)
  end
  compared = compared + 1
end

-- The error text of f() (nil if it succeeds), without the position prefix.
local function err_of(f)
  local ok, e = pcall(f)
  if ok then return nil end
  return (tostring(e):gsub('^[^:]*:%d+: ', ''))
end
-- f(cpu tensors...) and f(the same on cuda...) fail with the same message
local function same_error(what, f, ...)
  local args, dargs = {...}, {}
  for i, a in ipairs(args) do dargs[i] = dama.is_tensor(a) and a:cuda() or a end
  local ec = err_of(function() return f(unpack(args)) end)
  local ed = err_of(function() return f(unpack(dargs)) end)
  expect(ec ~= nil, what .. ': the CPU accepted it')
  expect_eq(ed, ec, what .. ': the message')
end

-- values in dtype with ties: a few levels (never all zero), floats with NaN, +-inf, -0 and 0 sprinkled in
local function keys(dtype, ...)
  local x = (dama.rand({...}, {device = 'cpu'}) * 7):floor() - 3   -- -3 .. 3
  if FLOATS[dtype] then
    x = x * 0.5 + 0.25
    local flat = x:view(-1)
    local n = flat:numel()
    local special = {0 / 0, math.huge, -math.huge, -0.0, 0.0, -(0 / 0)}
    for i = 0, n - 1, 5 do flat:set(special[math.floor(i / 5) % #special + 1], i) end
  elseif dtype == 'u8' or dtype == 'u16' then
    x = (x + 3) * 37
  elseif dtype == 'i64' then
    x = x * 1e12
  end
  return x:to(dtype)
end

test('sort, argsort and topk: every dtype, ties, NaN and infinities, every dim, stable in both directions', function()
  need_gpu()
  dama.manual_seed(11)
  for _, dt in ipairs(DTYPES) do
    for _, shape in ipairs{{1}, {7}, {257}, {3, 33}, {5, 4, 7}} do
      local a = keys(dt, unpack(shape))
      local d = a:cuda()
      for dim = -1, #shape - 1 do
        for _, desc in ipairs{false, true} do
          local what = string.format('%s %s dim %d desc %s', dt, table.concat(shape, 'x'), dim, tostring(desc))
          local v, i = a:sort(dim, desc)
          local dv, di = d:sort(dim, desc)
          same(what .. ' sort values', dv, v)
          same(what .. ' sort indices', di, i)
          same(what .. ' argsort', d:argsort(dim, desc), a:argsort(dim, desc))
          local n = a:size(dim)
          for _, k in ipairs{0, 1, math.floor((n + 1) / 2), n} do
            local tv, ti = a:topk(k, dim, not desc)
            local tdv, tdi = d:topk(k, dim, not desc)
            same(what .. ' topk ' .. k .. ' values', tdv, tv)
            same(what .. ' topk ' .. k .. ' indices', tdi, ti)
          end
        end
      end
    end
  end
end)

test('sort on strided inputs and rows longer than one block (the global network)', function()
  need_gpu()
  dama.manual_seed(12)
  local a = keys('f32', 33, 40)
  local d = a:cuda()
  for _, v in ipairs{{d:t(), a:t()}, {d:narrow(1, 3, 29), a:narrow(1, 3, 29)}, {d:select(1, 5), a:select(1, 5)}} do
    for _, desc in ipairs{false, true} do
      local x, y = v[1], v[2]
      expect(not x:is_contiguous() or x:dim() == 1, 'a strided view')
      local dv, di = x:sort(-1, desc)
      local cv, ci = y:sort(-1, desc)
      same('strided sort values', dv, cv)
      same('strided sort indices', di, ci)
      same('strided argsort dim 0', x:argsort(0, desc), y:argsort(0, desc))
    end
  end
  for _, dt in ipairs{'f32', 'i64', 'f64', 'u8'} do
    local b = keys(dt, 2, 5000)
    local db = b:cuda()
    for _, desc in ipairs{false, true} do
      local v, i = b:sort(1, desc)
      local dv, di = db:sort(1, desc)
      same(dt .. ' 5000 sort values', dv, v)
      same(dt .. ' 5000 sort indices', di, i)
      local tv, ti = b:topk(100, 1, desc)
      local tdv, tdi = db:topk(100, 1, desc)
      same(dt .. ' 5000 topk values', tdv, tv)
      same(dt .. ' 5000 topk indices', tdi, ti)
    end
    same(dt .. ' 5000 along dim 0 (strided rows)', db:t():contiguous():argsort(0), b:t():contiguous():argsort(0))
  end
end)

test('sort of empty and 0-d tensors, and its errors', function()
  need_gpu()
  for _, shape in ipairs{{0}, {3, 0}, {0, 4}} do
    local a = dama.empty(shape, {device = 'cpu'})
    for dim = 0, #shape - 1 do
      local v, i = a:sort(dim)
      local dv, di = a:cuda():sort(dim)
      same('empty ' .. table.concat(shape, 'x') .. ' values', dv, v)
      same('empty indices', di, i)
    end
  end
  local s = dama.tensor(2.5)
  local v, i = s:sort()
  local dv, di = s:cuda():sort()
  same('0-d values', dv, v)
  same('0-d indices', di, i)
  local a = keys('f32', 3, 5)
  same_error('topk k > n', function(x) return x:topk(6, 1) end, a)
  same_error('topk k < 0', function(x) return x:topk(-1, 1) end, a)
  same_error('sort dim out of range', function(x) return x:sort(2) end, a)
  same_error('argsort dim out of range', function(x) return x:argsort(-3) end, a)
end)

-- an index in [0, size) of dtype idt (ties on purpose)
local function index_of(idt, size, ...)
  return (dama.rand({...}, {device = 'cpu'}) * size):floor():to(idt)
end

test('gather: every dtype, i32 and i64 indices, every dim, strided input, index smaller than the input', function()
  need_gpu()
  dama.manual_seed(13)
  for _, dt in ipairs(DTYPES) do
    local a = keys(dt, 4, 7, 9)
    local d = a:cuda()
    for dim = 0, 2 do
      for _, idt in ipairs{'i64', 'i32'} do
        local shape = {3, 5, 6}
        shape[dim + 1] = 11   -- any size along dim
        local ix = index_of(idt, a:size(dim), unpack(shape))
        same(string.format('gather %s dim %d %s', dt, dim, idt), d:gather(dim, ix:cuda()), a:gather(dim, ix))
      end
    end
    local a2 = keys(dt, 4, 9)
    local d2 = a2:cuda()
    local ix = index_of('i64', 4, 9, 4)
    same('gather ' .. dt .. ' strided input', d2:t():gather(1, ix:cuda()), a2:t():gather(1, ix))
    same('gather ' .. dt .. ' strided index', d2:gather(0, ix:cuda():t()), a2:gather(0, ix:t()))
  end
  local e = dama.empty({0, 3}, {dtype = 'i64', device = 'cpu'})
  local a = keys('f32', 4, 3)
  same('gather with an empty index', a:cuda():gather(0, e:cuda()), a:gather(0, e))
  same('gather of a 0-d input', dama.tensor(4.5):cuda():gather(0, dama.tensor(0, 'i64'):cuda()),
       dama.tensor(4.5):gather(0, dama.tensor(0, 'i64')))
end)

test('gather and index_select errors: bad indices name the first bad value, as the CPU', function()
  need_gpu()
  local a = keys('f32', 4, 6)
  local bad = dama.tensor({{0, 1, 2}, {3, 9, -1}}, 'i64')
  same_error('gather out of bounds', function(x, i) return x:gather(1, i) end, a, bad)
  same_error('gather negative', function(x, i) return x:gather(1, i) end, a, dama.tensor({{0, -2}}, 'i32'))
  same_error('gather float index', function(x, i) return x:gather(1, i) end, a, dama.tensor({{0, 1}}, 'f32'))
  same_error('gather index dims', function(x, i) return x:gather(1, i) end, a, dama.tensor({0, 1}, 'i64'))
  same_error('gather index larger', function(x, i) return x:gather(1, i) end, a, dama.zeros(5, 2, 'i64'))
  same_error('gather bad dim', function(x, i) return x:gather(2, i) end, a, dama.zeros(1, 1, 'i64'))
  same_error('index_select out of bounds', function(x, i) return x:index_select(0, i) end, a,
             dama.tensor({1, 3, 4, 7}, 'i64'))
  same_error('index_select 2-d index', function(x, i) return x:index_select(0, i) end, a, dama.zeros(2, 2, 'i64'))
  same_error('index_select 0-d input', function(x, i) return x:index_select(0, i) end, dama.tensor(1.0),
             dama.tensor({0}, 'i64'))
  -- an input with no elements still checks its indices
  same_error('index_select on an empty input', function(x, i) return x:index_select(1, i) end,
             dama.empty({0, 3}, {device = 'cpu'}), dama.tensor({5}, 'i64'))
end)

test('index_select: every dtype, every dim, i32 / i64 / 0-d / empty / strided index, strided input', function()
  need_gpu()
  dama.manual_seed(14)
  for _, dt in ipairs(DTYPES) do
    local a = keys(dt, 5, 6, 33)
    local d = a:cuda()
    for dim = 0, 2 do
      for _, idt in ipairs{'i64', 'i32'} do
        local ix = index_of(idt, a:size(dim), 13)
        same(string.format('index_select %s dim %d %s', dt, dim, idt), d:index_select(dim, ix:cuda()),
             a:index_select(dim, ix))
      end
    end
    local ix2 = index_of('i64', 6, 4, 3):select(1, 1)   -- a strided 1-d index
    same('index_select strided index', d:index_select(1, ix2:cuda()), a:index_select(1, ix2))
    same('index_select strided input', d:transpose(0, 2):index_select(1, ix2:cuda()),
         a:transpose(0, 2):index_select(1, ix2))
    same('index_select 0-d index', d:index_select(2, dama.tensor(32, 'i64'):cuda()),
         a:index_select(2, dama.tensor(32, 'i64')))
    local e = dama.empty({0}, {dtype = 'i32', device = 'cpu'})
    same('index_select empty index', d:index_select(1, e:cuda()), a:index_select(1, e))
  end
end)

test('scatter_ and scatter_add_: duplicates in the CPU order, every dtype, strided target, scalar and aliased source',
     function()
  need_gpu()
  dama.manual_seed(15)
  for _, dt in ipairs(DTYPES) do
    for dim = 0, 1 do
      local a = keys(dt, 6, 7)
      local ishape = {5, 4}
      ishape[dim + 1] = 33   -- many duplicate destinations
      local ix = index_of('i64', a:size(dim), unpack(ishape))
      local src = keys(dt, 33, 33)
      for _, add in ipairs{false, true} do
        local what = string.format('%s %s dim %d', add and 'scatter_add_' or 'scatter_', dt, dim)
        local want, got = a:clone(), a:cuda()
        if add then want:scatter_add_(dim, ix, src); got:scatter_add_(dim, ix:cuda(), src:cuda())
        else want:scatter_(dim, ix, src); got:scatter_(dim, ix:cuda(), src:cuda()) end
        same(what, got, want)
      end
    end
  end
  -- a strided target (a transposed view), an i32 index, a source of another dtype (converted), a 0-d source
  local a = keys('f32', 9, 8)
  local ix = index_of('i32', 9, 8, 12)
  local src = keys('f64', 8, 12)
  local want, base = a:clone(), a:cuda()
  want:t():scatter_add_(1, ix, src)
  base:t():scatter_add_(1, ix:cuda(), src:cuda())
  same('scatter_add_ into a transposed view from f64', base, want)
  local s0 = dama.tensor(-7.25)
  want = a:clone(); want:scatter_(0, ix:t(), s0)
  local got = a:cuda(); got:scatter_(0, ix:t():cuda(), s0:cuda())
  same('scatter_ of a 0-d source', got, want)
  -- the source is the target itself (the CPU copies it first)
  local sq = dama.tensor({{0, 0, 1}, {2, 0, 0}}, 'i64')
  want = a:clone(); want:narrow(0, 0, 2):scatter_add_(1, sq, want)
  got = a:cuda(); got:narrow(0, 0, 2):scatter_add_(1, sq:cuda(), got)
  same('scatter_add_ from an alias of the target', got, want)
  -- an empty index changes nothing
  got = a:cuda(); got:scatter_(1, dama.empty({0, 0}, {dtype = 'i64', device = 'cpu'}):cuda(), src:cuda())
  same('scatter_ with an empty index', got, a)
end)

test('scatter_ errors name the first bad index and leave the target unchanged', function()
  need_gpu()
  local a = keys('f32', 4, 6)
  local src = keys('f32', 4, 6)
  local bad = dama.tensor({{0, 1, 2}, {3, 4, 6}}, 'i64')
  same_error('scatter_ out of bounds', function(x, i, s) return x:scatter_(1, i, s) end, a, bad, src)
  local d = a:cuda()
  expect(not pcall(function() d:scatter_add_(1, bad:cuda(), src:cuda()) end), 'scatter_add_ with a bad index')
  same('target unchanged after a failed scatter_add_', d, a)
  same_error('scatter_ float index', function(x, i, s) return x:scatter_(1, i, s) end, a,
             dama.tensor({{0}}, 'f64'), src)
  same_error('scatter_ src smaller', function(x, i, s) return x:scatter_(1, i, s) end, a, dama.zeros(4, 6, 'i64'),
             keys('f32', 4, 5))
  same_error('scatter_ into an expanded view', function(x, i, s) return x:expand(4, 6):scatter_(1, i, s) end,
             keys('f32', 1, 6), dama.zeros(1, 1, 'i64'), src)
end)

test('cat: dims, mixed dtypes (promotion), strided inputs, the legacy empty [0], and its errors', function()
  need_gpu()
  dama.manual_seed(16)
  for _, dt in ipairs(DTYPES) do
    local a, b, c = keys(dt, 3, 7), keys(dt, 3, 1), keys(dt, 3, 33)
    same('cat ' .. dt .. ' dim 1', dama.cat({a:cuda(), b:cuda(), c:cuda()}, 1), dama.cat({a, b, c}, 1))
    same('cat ' .. dt .. ' dim 0', dama.cat({a:cuda(), a:cuda()}, 0), dama.cat({a, a}, 0))
    same('cat ' .. dt .. ' strided', dama.cat({a:cuda():t(), c:cuda():t()}, 0), dama.cat({a:t(), c:t()}, 0))
  end
  -- mixed dtypes: the result promotes, each input converted as the CPU's copy converts
  local parts = {}
  for _, dt in ipairs(DTYPES) do parts[#parts + 1] = keys(dt, 2, 5) end
  for i = 1, #DTYPES do
    for j = 1, #DTYPES do
      local x, y = parts[i], parts[j]
      same('cat ' .. DTYPES[i] .. ' + ' .. DTYPES[j], dama.cat({x:cuda(), y:cuda()}, 1), dama.cat({x, y}, 1))
    end
  end
  local e = dama.empty({0}, {device = 'cpu'})
  local a = keys('f32', 4, 3)
  local raw_cat = require('dama.autograd').raw_cat   -- dama.cat's autograd wrapper asks every input for size(dim)
  same('cat skips a legacy [0]', raw_cat({e:cuda(), a:cuda(), e:cuda()}, 1), raw_cat({e, a, e}, 1))
  same('cat of empties', dama.cat({e:cuda(), e:cuda()}, 0), dama.cat({e, e}, 0))
  same('cat with an empty slice', dama.cat({a:cuda(), dama.empty({4, 0}, {device = 'cpu'}):cuda()}, 1),
       dama.cat({a, dama.empty({4, 0}, {device = 'cpu'})}, 1))
  same_error('cat shapes differ', function(x, y) return dama.cat({x, y}, 0) end, a, keys('f32', 4, 2))
  same_error('cat ranks differ', function(x, y) return dama.cat({x, y}, 0) end, a, keys('f32', 4))
  same_error('cat 0-d', function(x) return dama.cat({x}, 0) end, dama.tensor(1.0))
  same_error('cat bad dim', function(x) return dama.cat({x}, 2) end, a)
  local big = keys('f32', 3, 4000)
  same('cat of long rows', dama.cat({big:cuda(), big:cuda()}, 1), dama.cat({big, big}, 1))
end)

test('captured in a CUDA graph: nothing waits for the device, and replays equal eager calls', function()
  need_gpu()
  dama.manual_seed(17)
  local a = keys('f32', 6, 33):cuda()
  local ix = index_of('i64', 33, 6, 40):cuda()
  local sel = index_of('i32', 6, 9):cuda()
  local src = keys('f32', 6, 40):cuda()
  local function work()
    local t = a:clone()
    t:scatter_add_(1, ix, src)
    local v, i = t:sort(1, true)
    return v, i, t:gather(1, ix), t:index_select(0, sel), dama.cat({t, a}, 1), a:topk(5, 0)
  end
  local eager = {work()}
  local g = dama.cuda.graph(work)
  g:replay()
  for k, t in ipairs(eager) do same('replay output ' .. k, g.outputs[k], t:cpu()) end
  a:copy_(keys('f32', 6, 33):cuda())   -- new inputs: the replay follows them
  g:replay()
  local again = {work()}
  for k, t in ipairs(again) do same('replay on new inputs, output ' .. k, g.outputs[k], t:cpu()) end
  g:destroy()
end)

test('summary', function()
  need_gpu()
  print(string.format('  %d cuda results compared bit for bit with the CPU', compared))
end)
