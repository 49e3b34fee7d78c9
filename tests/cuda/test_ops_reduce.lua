-- The reductions on cuda against the CPU (cuda/ops_reduce.c, cuda/kernels/reduce_dim.cuh): sum, mean, prod, var and
-- std (both corrections), amax/amin, argmax/argmin, norm of orders 2, 1, 0, 3, 0.5, -1, inf and -inf, max(dim) and
-- min(dim) with their indices; over every dim set, keepdim or not, on contiguous, transposed, sliced, permuted and
-- expanded inputs of every dtype; shapes that reach every kernel plan (a warp per row, a block per row, rows and
-- columns cut into segments, columns, the ordered inf-norm over 8192-element chunks); ties, NaN and inf, empty
-- tensors, 0-d tensors; the same error messages. Fresh seeded random inputs, never all zero.
-- Tolerances: integer results, max/min, the indices and the inf/0-norms exactly; float results, which both devices
-- accumulate in double, within 1e-5 relative for f32 (the count of results with the CPU's bits is printed), 1e-12
-- for f64, one unit in the last place for bf16 and f16.
-- Interpreter: interp.ops_reduce; GPU: gpu.ops_reduce. Without a device every case prints SKIPPED with the reason.
local dama = require 'dama'
local ffi = dama.ffi

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

local FLOAT = {f32 = true, f64 = true, bf16 = true, f16 = true}
local ALL = {'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'}
local RTOL = {f32 = 1e-5, f64 = 1e-12, bf16 = 2 ^ -7, f16 = 2 ^ -10}

local stats = {compared = 0, identical = 0, worst = 0}

-- a CPU tensor's values: doubles for float dtypes, int64 cdata for integer ones
local function values(t)
  local isf = FLOAT[t.dtype]
  local c = t:cpu():to(isf and 'f64' or 'i64'):contiguous()
  local p = ffi.cast(isf and 'const double *' or 'const int64_t *', dama.C.dama_data_ptr(c._c))
  local out = {}
  for i = 0, c:numel() - 1 do out[i + 1] = p[i] end
  return out
end

-- got (cuda) against want (cpu): device, dtype, shape, then every value (NaN matches NaN)
local function compare(what, got, want, exact)
  local rtol = not exact and RTOL[want.dtype] or nil
  expect_eq(got.device, 'cuda:0', what .. ': device')
  expect_eq(got.dtype, want.dtype, what .. ': dtype')
  expect_eq(table.concat(got:size(), 'x'), table.concat(want:size(), 'x'), what .. ': shape')
  local g, w = values(got), values(want)
  local isf = FLOAT[want.dtype]
  for i = 1, #w do
    local a, b = g[i], w[i]
    stats.compared = stats.compared + 1
    if a == b or (isf and a ~= a and b ~= b) then
      stats.identical = stats.identical + 1
    else
      local e = isf and math.abs(a - b) / math.abs(b) or math.huge
      expect(rtol and e <= rtol, string.format('%s: element %d is %s, the CPU gives %s (relative %.3g)', what, i - 1,
                                               tostring(a), tostring(b), e))
      if e > stats.worst then stats.worst = e end
    end
  end
end

-- random inputs on the CPU, never zero (floats: |x| >= 0.05; integers mostly non-zero)
local function input(shape, dt, kind)
  local x
  if FLOAT[dt] then
    local r = dama.randn(shape)
    x = r + r:sign() * 0.05
    if kind == 'near1' then x = x * 1e-3 + 1 end
    if kind == 'ties' then x = dama.randint(-1, 2, shape, 'i64'):float() end
    x = x:to(dt)
  else
    local lo, hi = (dt == 'u8' or dt == 'u16') and 1 or -50, 50
    if kind == 'near1' then lo, hi = (dt == 'u8' or dt == 'u16') and 1 or -2, 3 end
    if kind == 'ties' then lo, hi = (dt == 'u8' or dt == 'u16') and 0 or -1, 2 end
    x = dama.randint(lo, hi, shape, dt)
  end
  return x
end

-- the same view on both devices: a function of the base tensor
local VIEWS = {
  {'contiguous', function(x) return x end},
  {'transposed', function(x) return x:dim() >= 2 and x:transpose(0, x:dim() - 1) or nil end},
  {'sliced with a step', function(x) return x:size(x:dim() - 1) >= 3 and x:slice(x:dim() - 1, 1, x:size(x:dim() - 1), 2) or nil end},
  {'expanded', function(x) return x:dim() >= 2 and x:narrow(0, 0, 1):expand(x:size()) or nil end},
}

local function dims_str(d)
  if d == nil or d == 'all' then return 'all' end
  if type(d) == 'number' then return tostring(d) end
  return '{' .. table.concat(d, ',') .. '}'
end

-- every reduce op over dims, on x (cpu) and xc (the same view on cuda)
local function check_ops(tag, x, xc, dims, keepdim, ops)
  if dims == 'all' then dims = nil end
  local function pair(name, f)
    local ok1, want = pcall(f, x)
    local ok2, got = pcall(f, xc)
    if not ok1 then
      expect(not ok2, tag .. ' ' .. name .. ': the CPU refuses (' .. tostring(want) .. '), cuda does not')
      expect_eq(tostring(got), tostring(want), tag .. ' ' .. name .. ': the error')
      return
    end
    expect(ok2, tag .. ' ' .. name .. ': ' .. tostring(got))
    compare(tag .. ' ' .. name, got, want, name:match('^arg') or name:match('^am') or name:match('^max') or
                                           name:match('^min') or name == 'norm inf' or name == 'norm -inf' or
                                           name == 'norm 0')
  end
  local single = dims == nil or type(dims) == 'number'
  for _, op in ipairs(ops or {'sum', 'mean', 'prod', 'var', 'var0', 'std', 'std0', 'amax', 'amin', 'argmax', 'argmin',
                              'norm', 'max', 'min'}) do
    if op == 'sum' then pair('sum', function(t) return t:sum(dims, keepdim) end)
    elseif op == 'mean' then pair('mean', function(t) return t:mean(dims, keepdim) end)
    elseif op == 'prod' then pair('prod', function(t) return t:prod(dims, keepdim) end)
    elseif op == 'var' then pair('var', function(t) return t:var(dims, true, keepdim) end)
    elseif op == 'var0' then pair('var biased', function(t) return t:var(dims, false, keepdim) end)
    elseif op == 'std' then pair('std', function(t) return t:std(dims, true, keepdim) end)
    elseif op == 'std0' then pair('std biased', function(t) return t:std(dims, false, keepdim) end)
    elseif op == 'amax' then pair('amax', function(t) return t:amax(dims, keepdim) end)
    elseif op == 'amin' then pair('amin', function(t) return t:amin(dims, keepdim) end)
    elseif op == 'argmax' and single then pair('argmax', function(t) return t:argmax(dims, keepdim) end)
    elseif op == 'argmin' and single then pair('argmin', function(t) return t:argmin(dims, keepdim) end)
    elseif op == 'norm' then
      for _, p in ipairs{2, 1, 0, 3, 0.5, -1, math.huge, -math.huge} do
        local name = p == math.huge and 'norm inf' or p == -math.huge and 'norm -inf' or ('norm ' .. p)
        pair(name, function(t) return t:norm(p, dims, keepdim) end)
      end
    elseif (op == 'max' or op == 'min') and type(dims) == 'number' then
      for k = 1, 2 do
        pair(op .. '(dim) ' .. (k == 1 and 'values' or 'indices'), function(t)
          local v, i = t[op](t, dims, keepdim)
          return k == 1 and v or i
        end)
      end
    end
  end
end

local CASES = {
  {{1}, {'all', 0}},
  {{7}, {'all', 0, -1}},
  {{33}, {'all'}},
  {{257}, {'all', 0}},
  {{3, 5}, {'all', 0, 1, -1, {0, 1}}},
  {{4, 7, 9}, {'all', 0, 1, 2, {0, 2}, {1, 2}, {0, 1}, {2, 0}}},
  {{2, 3, 4, 5}, {{1, 3}, {0, 2, 3}, 2}},
  {{65, 33}, {0, 1}},
  {{3, 2100}, {1}},        -- a block per row
  {{2100, 3}, {0}},        -- columns in segments
  {{9000}, {'all'}},         -- a row in segments; two chunks for the inf-norms
}

test('every reduction of f32 over every dim set and view matches the CPU', function()
  need_gpu()
  dama.manual_seed(101)
  local n = 0
  for _, case in ipairs(CASES) do
    local shape, dimsets = case[1], case[2]
    local big = shape[1] * (shape[2] or 1) > 2000
    for _, near1 in ipairs{false, true} do
      local base = input(shape, 'f32', near1 and 'near1' or nil)
      local base_c = base:cuda()
      for vi, v in ipairs(VIEWS) do
        local x = v[2](base)
        if x and not (big and vi > 2) then
          local xc = v[2](base_c)
          for _, dims in ipairs(dimsets) do
            for _, keepdim in ipairs{false, true} do
              if not (big and keepdim) then
                local tag = string.format('f32 %s %s dims %s%s%s', table.concat(shape, 'x'), v[1], dims_str(dims),
                                          keepdim and ' keepdim' or '', near1 and ' (near 1)' or '')
                check_ops(tag, x, xc, dims, keepdim, near1 and {'prod'} or nil)
                n = n + 1
              end
            end
          end
        end
      end
    end
  end
  print(string.format('  %d reductions: %d of %d values with the CPU\'s bits, worst relative difference %.3g', n,
                      stats.identical, stats.compared, stats.worst))
end)

test('every dtype: integer results and extremes exact, floats within the tolerance', function()
  need_gpu()
  dama.manual_seed(102)
  stats = {compared = 0, identical = 0, worst = 0}
  for _, dt in ipairs(ALL) do
    for _, case in ipairs{{{7}, {'all', 0}, {'plain', 'near1'}}, {{4, 7, 9}, {'all', 1, {0, 2}}, {'plain', 'ties'}},
                          {{2100, 3}, {0}, {'plain'}}, {{3, 2100}, {1}, {'plain'}}} do
      local shape, dimsets = case[1], case[2]
      for _, kind in ipairs(case[3]) do
        local base = input(shape, dt, kind)
        local base_c = base:cuda()
        for vi = 1, kind == 'plain' and 2 or 1 do -- contiguous and transposed (the f32 test covers the other views)
          local x = VIEWS[vi][2](base)
          if x then
            for _, dims in ipairs(dimsets) do
              local tag = string.format('%s %s %s dims %s (%s)', dt, table.concat(shape, 'x'), VIEWS[vi][1],
                                        dims_str(dims), kind)
              check_ops(tag, x, VIEWS[vi][2](base_c), dims, false,
                        kind == 'near1' and {'prod'} or kind == 'ties' and {'amax', 'amin', 'argmax', 'argmin', 'max', 'min'}
                        or nil)
            end
          end
        end
      end
    end
  end
  print(string.format('  %d values compared, %d with the CPU\'s bits, worst relative difference %.3g', stats.compared,
                      stats.identical, stats.worst))
end)

test('NaN and inf: propagation, the first NaN for max/argmax, the inf-norms\' chunk order', function()
  need_gpu()
  dama.manual_seed(103)
  for _, dt in ipairs{'f32', 'f64', 'bf16'} do
    local x = input({6, 9000}, 'f32'):to('f64')
    local p = ffi.cast('double *', dama.C.dama_data_ptr(x._c))
    -- row 0: no NaN; 1: one NaN after a large value; 2: a NaN at a chunk's end; 3: NaN last; 4: two NaNs; 5: +-inf
    local function set(r, c, v) p[r * 9000 + c] = v end
    set(1, 99, 1e3); set(1, 100, 0 / 0)
    set(2, 8190, 1e3); set(2, 8191, 0 / 0)
    set(3, 8999, 0 / 0)
    set(4, 5, 1e3); set(4, 6, 0 / 0); set(4, 8192, 0 / 0)
    set(5, 10, math.huge); set(5, 20, -math.huge)
    x = x:to(dt)
    local xc = x:cuda()
    check_ops(dt .. ' with NaN/inf', x, xc, 1, false, {'sum', 'mean', 'var', 'amax', 'amin', 'argmax', 'argmin', 'norm', 'max', 'min'})
    check_ops(dt .. ' with NaN/inf, columns', x:t(), xc:t(), 0, false, {'sum', 'amax', 'argmax', 'argmin', 'norm', 'min'})
    check_ops(dt .. ' with NaN/inf, all', x, xc, 'all', false, {'sum', 'amax', 'argmin', 'norm'})
  end
end)

test('ties keep the first index in every kernel plan', function()
  need_gpu()
  dama.manual_seed(104)
  for _, case in ipairs{{{37, 33}, 1}, {{5, 2000}, 1}, {{3, 9000}, 1}, {{2000, 40}, 0}, {{9, 7, 11}, 1}} do
    local x = input(case[1], 'f32', 'ties')
    -- -0 and +0 tie too: the first of them is the one returned
    x = x * (dama.randint(0, 2, case[1], 'i64'):float() * 2 - 1)
    check_ops('ties ' .. table.concat(case[1], 'x'), x, x:cuda(), case[2], false, {'amax', 'argmax', 'argmin', 'max', 'min'})
  end
end)

test('empty tensors, 0-d tensors and size-1 dims', function()
  need_gpu()
  for _, shape in ipairs{{0}, {3, 0}, {0, 4}} do
    local x = dama.zeros(shape)
    local xc = x:cuda()
    for _, d in ipairs{'all', 0, -1} do
      check_ops('empty ' .. table.concat(shape, 'x') .. ' dims ' .. dims_str(d), x, xc, d, false)
      check_ops('empty ' .. table.concat(shape, 'x') .. ' dims ' .. dims_str(d) .. ' keepdim', x, xc, d, true,
                {'sum', 'prod', 'mean', 'var', 'norm', 'amax', 'max'})
    end
  end
  local s = dama.tensor(-3.5)
  check_ops('0-d', s, s:cuda(), 'all', false)
  check_ops('0-d dim 0', s, s:cuda(), 0, false)
  check_ops('0-d dim -1 keepdim', s, s:cuda(), -1, true)
  local o = input({1, 1, 5, 1}, 'f32')
  check_ops('size-1 dims', o, o:cuda(), {0, 3}, true)
  check_ops('size-1 dims', o, o:cuda(), 1, false)
end)

test('bad arguments give the CPU\'s errors', function()
  need_gpu()
  local x = input({3, 4}, 'f32')
  local xc = x:cuda()
  local function same_error(what, f)
    local ok1, e1 = pcall(f, x)
    local ok2, e2 = pcall(f, xc)
    expect(not ok1 and not ok2, what .. ': both refuse')
    expect_eq(tostring(e2), tostring(e1), what)
  end
  same_error('argmax over two dims', function(t) return t._reduce('argmax', t, {0, 1}) end)
  same_error('norm of order NaN', function(t) return t:norm(0 / 0) end)
  same_error('a negative correction', function(t) return t._reduce('var', t, 1, false, -1) end)
  same_error('a dim twice', function(t) return t:sum({1, 1}) end)
  same_error('a dim twice, negative', function(t) return t:sum({1, -1}) end)
  same_error('a dim out of range', function(t) return t:mean(2) end)
  same_error('max(dim) out of range', function(t) return t:max(-3) end)
  same_error('min(dim) out of range', function(t) return t:min(5) end)
  same_error('amax of nothing', function(t) return t:narrow(1, 0, 0):amax(1) end)
  same_error('max(dim) of nothing', function(t) return t:narrow(0, 0, 0):max(0) end)
end)

test('results are deterministic: the same bits on every run', function()
  need_gpu()
  dama.manual_seed(105)
  local x = input({9000}, 'f32'):cuda()
  local y = input({2100, 3}, 'f32'):cuda()
  local a = {values(x:sum())[1], values(x:var())[1], values(y:sum(0))[1], values(y:std(0))[3]}
  for _ = 1, 3 do
    local b = {values(x:sum())[1], values(x:var())[1], values(y:sum(0))[1], values(y:std(0))[3]}
    for i = 1, #a do expect(a[i] == b[i], 'run-to-run bits of result ' .. i) end
  end
end)
