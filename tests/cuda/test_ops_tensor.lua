-- The cuda element-wise ops (cuda/ops_tensor.c) against their CPU twins (cpu/ops_elementwise.c): binary, binary_,
-- binary_scalar(_), unary(_), clamp(_), where, masked_fill_, fill_, count_nonfinite and copy (dtype conversions,
-- :contiguous(), :to(dtype)), on fresh seeded random inputs that are never all zero, at odd sizes, contiguous,
-- strided, broadcast, misaligned and in place, in every dtype, with NaN/inf/-0 where the CPU defines the result,
-- and the error messages of bad arguments. In the interpreter build (dama_interp) every result must have the CPU's
-- bits: the math is core/dama_math.h's on both sides. On a GPU the IEEE-exact ops (+ - * /, comparisons, sqrt,
-- rounding, conversions, fills, copies) must still match bit for bit and the transcendental ones (exp, log, pow,
-- sin, cos, tanh, sigmoid, erf, gelu; CUDA's libm) within 1e-5 relative in f32, 1e-12 in f64 and 1e-2 in bf16/f16.
local dama = require 'dama'
local ffi = dama.ffi
local C = dama.C
local unpack = table.unpack or unpack

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

local INTERP = dama.cuda.is_built() and (dama.cuda.info() or ''):find('interpreter', 1, true) ~= nil
local DTYPES = {'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'}
local FLOATS = {f32 = true, f64 = true, bf16 = true, f16 = true}
local INEXACT = {pow = true, exp = true, log = true, sin = true, cos = true, tanh = true, sigmoid = true, erf = true,
                 gelu = true}
local SIZES = {1, 7, 33, 257}

local function shape_of(t) return table.concat(t:size(), 'x') end

local function bytes_of(t)
  local h = t:cpu():contiguous()
  return ffi.string(C.dama_data_ptr(h._c), h:numel() * C.dama_dtype_size(h._c.dtype))
end

-- the values of t as f64 on the host (a flat Lua table); NaNs made LuaJIT's own NaN (some payloads read through a
-- double * would be taken for tagged values)
local function values(t)
  local h = t:cpu():contiguous():to('f64')
  if h:numel() > 0 then h:masked_fill_(h:ne(h), 0 / 0) end
  local p = ffi.cast('double *', C.dama_data_ptr(h._c))
  local r = {}
  for i = 0, h:numel() - 1 do r[i + 1] = p[i] end
  return r
end

local worst_inexact = {}

-- got (cuda) against want (cpu): dtype, shape, then the bits, or on a GPU within tol for inexact math
local function same(what, got, want, inexact)
  expect_eq(got.device, 'cuda:0', what .. ': device')
  expect_eq(got.dtype, want.dtype, what .. ': dtype')
  expect_eq(shape_of(got), shape_of(want), what .. ': shape')
  if INTERP or not inexact or not FLOATS[want.dtype] then
    if bytes_of(got) ~= bytes_of(want) then
      local g, w = values(got), values(want)
      for i = 1, #w do
        if not (g[i] == w[i] or (g[i] ~= g[i] and w[i] ~= w[i])) then
          error(string.format('%s: element %d is %.9g, the CPU gives %.9g (bits differ)', what, i, g[i], w[i]), 2)
        end
      end
      error(what .. ': same values but different bits (NaN payload or the sign of zero)', 2)
    end
    return
  end
  local tol = (want.dtype == 'f64') and 1e-12 or (want.dtype == 'f32') and 1e-5 or 1e-2
  local g, w = values(got), values(want)
  local worst = 0
  for i = 1, #w do
    local a, b = g[i], w[i]
    if not (a == b or (a ~= a and b ~= b)) then
      local e = math.abs(a - b) / (math.abs(b) + 1e-30)
      if e ~= e then e = math.huge end
      if e > worst then worst = e end
      if not (e <= tol) then
        error(string.format('%s: element %d is %.9g, the CPU gives %.9g (relative error %.3g > %.3g)', what, i, a, b,
                            e, tol), 2)
      end
    end
  end
  worst_inexact[want.dtype] = math.max(worst_inexact[want.dtype] or 0, worst)
end

-- random values of a dtype on the cpu, never all zero: floats in +-(0.05 .. 3.05), ints spread over the dtype
local function rnd(dtype, ...)
  local shape = {...}
  local x = dama.rand(shape, {device = 'cpu'})
  if FLOATS[dtype] then
    local sign = dama.rand(shape, {device = 'cpu'}):lt(0.5):to('f32') * 2 - 1
    return ((x * 3 + 0.05) * sign):to(dtype)
  end
  local span = ({u8 = 250, u16 = 60000, i32 = 2000, i64 = 2000})[dtype]
  local lo = (dtype == 'u8' or dtype == 'u16') and 1 or -1000
  return (x * span + lo):floor():to(dtype)
end

-- special values placed into a float tensor (cpu): NaN, +-inf, -0, 0, and large ones
local function with_specials(t)
  local n = t:numel()
  local flat = t:reshape(-1)
  local sp = {0 / 0, math.huge, -math.huge, -0.0, 0.0, 1e30, -1e30, 0.5, -2.5, 65504, 70000}
  for i, v in ipairs(sp) do
    if i <= n then flat:narrow(0, (i * 7) % n, 1):fill_(v) end
  end
  return t
end

-- run f on cpu tensors and on their cuda copies, compare
local function both(what, f, inputs, inexact)
  local cu = {}
  for i, t in ipairs(inputs) do cu[i] = t:cuda() end
  local want = f(unpack(inputs))
  local got = f(unpack(cu))
  same(what, got, want, inexact)
  return got
end

-- the error of f on the cpu and on cuda: the same message
local function same_error(what, f, inputs)
  local cu = {}
  for i, t in ipairs(inputs) do cu[i] = t:cuda() end
  local ok1, e1 = pcall(f, unpack(inputs))
  local ok2, e2 = pcall(f, unpack(cu))
  expect(not ok1 and not ok2, what .. ': both devices refuse')
  e1, e2 = tostring(e1):gsub('^.-:%d+: ', ''), tostring(e2):gsub('^.-:%d+: ', '')
  expect_eq(e2, e1, what .. ': the same message')
end

-- layouts of an input of n x m elements: the views to apply (same on both devices)
local LAYOUTS = {
  {'contiguous', function(x) return x end},
  {'transposed', function(x) return x:t() end},
  {'offset 1 (misaligned)', function(x) return x:reshape(-1):narrow(0, 1, x:numel() - 1) end},
  {'offset 4 (aligned)', function(x) return x:reshape(-1):narrow(0, 4, x:numel() - 4) end},
  {'every other row', function(x) return x:slice(0, 0, nil, 2) end},
}

test('fill_ writes every dtype, contiguous, strided and empty, with the CPU bits', function()
  need_gpu()
  for _, dt in ipairs(DTYPES) do
    for _, v in ipairs{0, 1.5, -3, 300, 70000, -0.0, 1e300, 0 / 0, math.huge, -math.huge, 2^40 + 3} do
      for _, n in ipairs{1, 7, 257} do
        both(string.format('fill_ %s %g n=%d', dt, v, n), function(x) return x:clone():fill_(v) end,
             {rnd(dt, n)})
      end
      both(string.format('fill_ %s %g on a transposed view', dt, v), function(x)
        local c = x:clone(); c:t():fill_(v); return c end, {rnd(dt, 9, 13)})
      both(string.format('fill_ %s %g on every other column', dt, v), function(x)
        local c = x:clone(); c:slice(1, 0, 13, 2):fill_(v); return c end, {rnd(dt, 5, 13)})
    end
    local e = dama.empty({0, 3}, {dtype = dt, device = 'cuda'}):fill_(1)
    expect_eq(e:numel(), 0)
  end
  local z = dama.zeros(33, 7, {device = 'cuda'})
  expect_eq(z:sum():item(), 0, 'dama.zeros on cuda')
  expect_eq(dama.ones(5, {device = 'cuda', dtype = 'i64'}):cpu():totable(), {1, 1, 1, 1, 1})
end)

test('copy converts between all 8 dtypes like the CPU (contiguous, strided, broadcast)', function()
  need_gpu()
  for _, from in ipairs(DTYPES) do
    local x = rnd(from, 17, 33)
    if FLOATS[from] then
      x = with_specials(x:to('f64') * 20):to(from) -- beyond u8/i32 ranges, NaN and inf: saturation, wrapping
    end
    for _, to in ipairs(DTYPES) do
      both(from .. ' -> ' .. to, function(a) return a:to(to) end, {x})
      both(from .. ' -> ' .. to .. ', transposed source', function(a) return a:t():to(to) end, {x})
      both(from .. ' -> ' .. to .. ', broadcast source', function(a)
        local d = dama.empty({4, 17, 33}, {dtype = to, device = a.device}); d:copy_(a); return d end, {x})
    end
    both(from .. ' contiguous() of a transpose', function(a) return a:t():contiguous() end, {x})
    both(from .. ' contiguous() of a permuted 4-d view', function(a)
      return a:reshape(17, 3, 11):permute(2, 0, 1):contiguous() end, {x})
    both(from .. ' clone of a slice', function(a) return a:slice(1, 1, 33, 3):clone() end, {x})
  end
  -- transposes of the last two dims go through 32 x 32 shared-memory tiles
  for _, dt in ipairs(DTYPES) do
    local x = rnd(dt, 3, 45, 70)
    both(dt .. ' transpose of the last two dims (tiles)', function(a) return a:transpose(1, 2):contiguous() end, {x})
    both(dt .. ' transpose of a narrowed view (tiles)', function(a)
      return a:narrow(2, 3, 50):narrow(1, 1, 40):transpose(1, 2):contiguous() end, {x})
    both(dt .. ' t() of 16 x 33 (tiles)', function(a) return a:select(0, 1):narrow(0, 0, 16):narrow(1, 0, 33):t():contiguous() end,
         {x})
    both(dt .. ' permute (2, 0, 1)', function(a) return a:permute(2, 0, 1):contiguous() end, {x})
    both(dt .. ' transpose into a strided destination', function(a)
      local d = dama.zeros({70, 2, 45}, {dtype = dt, device = a.device}); d:select(1, 1):copy_(a:select(0, 2):t()); return d end, {x})
  end
  -- rounding to bf16/f16: ties, subnormals, overflow, NaN payloads
  local bits = dama.tensor({0x3f808000, 0x3f818000, 0x3f80ffff, 0x7f7fffff, 0x00000001, 0x387fc000, 0x33000001,
                            0x477ff000, 0x477fefff, 0x7fc00001, 0xffa00000, 0x7f800001, 0x80000000, 0x38800000},
                           'i64'):to('i32')
  local f = dama.empty({bits:numel()}, {dtype = 'f32', device = 'cpu'})
  ffi.copy(C.dama_data_ptr(f._c), C.dama_data_ptr(bits._c), bits:numel() * 4)
  for _, to in ipairs{'bf16', 'f16', 'f64', 'i32', 'u8'} do
    both('f32 bit patterns -> ' .. to, function(a) return a:to(to) end, {f})
  end
  local h = dama.arange(65536):to('u16')
  local halves = dama.empty({65536}, {dtype = 'f16', device = 'cpu'})
  ffi.copy(C.dama_data_ptr(halves._c), C.dama_data_ptr(h._c), 65536 * 2)
  both('all 65536 f16 values -> f32', function(a) return a:to('f32') end, {halves})
  both('all 65536 f16 values -> f64 -> f16', function(a) return a:to('f64'):to('f16') end, {halves})
  local bf = dama.empty({65536}, {dtype = 'bf16', device = 'cpu'})
  ffi.copy(C.dama_data_ptr(bf._c), C.dama_data_ptr(h._c), 65536 * 2)
  both('all 65536 bf16 values -> f32 -> f16', function(a) return a:to('f32'):to('f16') end, {bf})
  both('all 65536 bf16 values -> i64', function(a) return a:to('i64') end, {bf})
  local big = dama.tensor({2^53 + 1, -2^62 - 3, 2^31 + 5, -2^31 - 7, 2^24 + 1, 65537, 255, 256, -1}, 'f64')
  for _, to in ipairs{'i64', 'i32', 'u16', 'u8'} do
    both('f64 -> i64 -> ' .. to, function(a) return a:to('i64'):to(to) end, {big})
  end
  both('i64 -> f32 (rounding)', function(a) return a:to('i64'):to('f32') end, {big})
  both('i64 -> bf16 (double rounding as the CPU)', function(a) return a:to('i64'):to('bf16') end, {big})
  local z = dama.empty({0, 5}, {device = 'cuda'})
  expect_eq(z:to('f64'):numel(), 0)
end)

local BINOPS = {'add', 'sub', 'mul', 'div', 'pow', 'maximum', 'minimum', 'eq', 'ne', 'lt', 'le', 'gt', 'ge'}

-- small non-negative integer exponents for integer pow (wrapping products are defined, negative ones refused)
local function int_exponents(dt, shape)
  return (dama.rand(shape, {device = 'cpu'}) * 5):floor():to(dt)
end

test('binary ops on every dtype: contiguous, broadcast, strided, misaligned, with the CPU bits', function()
  need_gpu()
  for _, op in ipairs(BINOPS) do
    for _, dt in ipairs(DTYPES) do
      for _, n in ipairs(SIZES) do
        local a = rnd(dt, n)
        local b = (op == 'pow' and not FLOATS[dt]) and int_exponents(dt, {n}) or rnd(dt, n)
        if op == 'pow' and FLOATS[dt] then a = a:to('f32'):abs():to(dt) end
        if FLOATS[dt] and n >= 33 then a = with_specials(a:to('f64')):to(dt) end
        both(string.format('%s %s n=%d', op, dt, n), function(x, y) return x[op](x, y) end, {a, b}, INEXACT[op])
        both(string.format('%s %s n=%d, b broadcast', op, dt, n), function(x, y) return x[op](x, y:narrow(0, 0, 1)) end,
             {a, b}, INEXACT[op])
        both(string.format('%s %s n=%d, a broadcast', op, dt, n), function(x, y) return x:narrow(0, 0, 1)[op](x:narrow(0, 0, 1), y) end,
             {a, b}, INEXACT[op])
      end
      local a, b = rnd(dt, 9, 35), (op == 'pow' and not FLOATS[dt]) and int_exponents(dt, {9, 35}) or rnd(dt, 9, 35)
      if op == 'pow' and FLOATS[dt] then a = a:to('f32'):abs():to(dt) end
      for _, l in ipairs(LAYOUTS) do
        both(string.format('%s %s, %s', op, dt, l[1]), function(x, y) return l[2](x)[op](l[2](x), l[2](y)) end,
             {a, b}, INEXACT[op])
      end
      both(string.format('%s %s, a transposed + b contiguous', op, dt), function(x, y)
        return x:t()[op](x:t(), y:reshape(35, 9)) end, {a, b}, INEXACT[op])
      both(string.format('%s %s, row broadcast', op, dt), function(x, y) return x[op](x, y:narrow(0, 0, 1)) end,
           {a, b}, INEXACT[op])
      both(string.format('%s %s, column broadcast', op, dt), function(x, y) return x[op](x, y:narrow(1, 2, 1)) end,
           {a, b}, INEXACT[op])
      both(string.format('%s %s, outer product shape', op, dt), function(x, y)
        return x:narrow(1, 0, 1)[op](x:narrow(1, 0, 1), y:narrow(0, 1, 1)) end, {a, b}, INEXACT[op])
      both(string.format('%s %s, 0-d', op, dt), function(x, y) return x:select(0, 0):select(0, 0)[op](
        x:select(0, 0):select(0, 0), y:select(0, 1):select(0, 2)) end, {a, b}, INEXACT[op])
    end
    -- promotion between dtypes
    for _, p in ipairs{{'f32', 'bf16'}, {'bf16', 'f16'}, {'i32', 'f32'}, {'u8', 'i64'}, {'f64', 'f16'}, {'u16', 'i32'},
                       {'i64', 'bf16'}, {'u8', 'f64'}} do
      local a, b = rnd(p[1], 5, 33), rnd(p[2], 5, 33)
      if op == 'pow' then a, b = a:abs(), (FLOATS[p[2]] or FLOATS[p[1]]) and b or int_exponents(p[2], {5, 33}) end
      both(string.format('%s %s with %s', op, p[1], p[2]), function(x, y) return x[op](x, y) end, {a, b}, INEXACT[op])
    end
    local e = dama.empty({0, 4}, {device = 'cuda'})
    expect_eq(e[op](e, e):numel(), 0, op .. ' of empty tensors')
  end
  -- integer division gives f32 (inf/nan for /0), integer arithmetic wraps
  both('div i32 by zero', function(x, y) return x:div(y) end,
       {dama.tensor({7, -7, 0, 5}, 'i32'), dama.tensor({0, 0, 0, 2}, 'i32')})
  both('i64 wrapping', function(x, y) return x * y + x end,
       {dama.tensor({2^62, -2^62, 3037000500}, 'i64'), dama.tensor({4, 3, 3037000500}, 'i64')})
  both('u8 wrapping', function(x, y) return x + y end, {dama.tensor({200, 255, 1}, 'u8'), dama.tensor({100, 1, 255}, 'u8')})
end)

test('binary ops with a scalar (either side) and in place, with the CPU bits', function()
  need_gpu()
  for _, op in ipairs(BINOPS) do
    for _, dt in ipairs(DTYPES) do
      local a = rnd(dt, 7, 33)
      if op == 'pow' then a = a:abs() end
      for _, s in ipairs{2, -3, 0.5, 1e10, 0 / 0, math.huge} do
        local neg_int_pow = op == 'pow' and not FLOATS[dt] and s < 0 and s == math.floor(s)
        if neg_int_pow then
          same_error(string.format('%s %s ^ %g', op, dt, s), function(x) return x[op](x, s) end, {a})
          same_error(string.format('%s_ %s ^ %g', op, dt, s), function(x) return x:clone()[op .. '_'](x:clone(), s) end, {a})
        else
          both(string.format('%s %s tensor, %g', op, dt, s), function(x) return x[op](x, s) end, {a}, INEXACT[op])
          both(string.format('%s %s %g, tensor', op, dt, s), function(x) return dama.Tensor._binary(op, s, x) end, {a},
               INEXACT[op])
          both(string.format('%s_ %s %g on a transposed view', op, dt, s), function(x)
            local c = x:clone(); c:t()[op .. '_'](c:t(), s); return c end, {a}, INEXACT[op])
        end
      end
      local b = (op == 'pow' and not FLOATS[dt]) and int_exponents(dt, {7, 33}) or rnd(dt, 7, 33)
      both(string.format('%s_ %s', op, dt), function(x, y) local c = x:clone(); c[op .. '_'](c, y); return c end,
           {a, b}, INEXACT[op])
      both(string.format('%s_ %s, b a row', op, dt), function(x, y)
        local c = x:clone(); c[op .. '_'](c, y:narrow(0, 3, 1)); return c end, {a, b}, INEXACT[op])
      both(string.format('%s_ %s with f64 b (computed in f64, stored in %s)', op, dt, dt), function(x, y)
        local c = x:clone(); c[op .. '_'](c, y:to('f64')); return c end, {a, b}, INEXACT[op])
      -- b aliases a in another layout: copied first
      local sq = (op == 'pow' and not FLOATS[dt]) and int_exponents(dt, {9, 9}) or rnd(dt, 9, 9)
      if op == 'pow' then sq = sq:abs() end
      both(string.format('%s_ %s with b = a transposed', op, dt), function(x)
        local c = x:clone(); c[op .. '_'](c, c:t()); return c end, {sq}, INEXACT[op])
      both(string.format('%s_ %s with b = a itself', op, dt), function(x)
        local c = x:clone(); c[op .. '_'](c, c); return c end, {sq}, INEXACT[op])
    end
  end
end)

local UNOPS = {'neg', 'exp', 'log', 'sqrt', 'abs', 'sin', 'cos', 'tanh', 'sigmoid', 'relu', 'rsqrt', 'square',
               'reciprocal', 'sign', 'floor', 'ceil', 'round', 'erf', 'gelu'}

test('unary ops on every dtype: contiguous, strided, misaligned, in place, NaN/inf/-0', function()
  need_gpu()
  for _, op in ipairs(UNOPS) do
    for _, dt in ipairs(DTYPES) do
      for _, n in ipairs(SIZES) do
        local a = rnd(dt, n)
        if FLOATS[dt] then a = with_specials((a:to('f64') * 4)):to(dt) end
        both(string.format('%s %s n=%d', op, dt, n), function(x) return x[op](x) end, {a}, INEXACT[op])
      end
      local a = rnd(dt, 9, 35)
      if FLOATS[dt] then a = (a:to('f64') * 4):to(dt) end
      for _, l in ipairs(LAYOUTS) do
        both(string.format('%s %s, %s', op, dt, l[1]), function(x) return l[2](x)[op](l[2](x)) end, {a}, INEXACT[op])
      end
      both(string.format('%s %s, expanded', op, dt), function(x) local r = x:narrow(0, 0, 1):expand(6, 35); return r[op](r) end,
           {a}, INEXACT[op])
      if FLOATS[dt] or op == 'neg' or op == 'abs' or op == 'relu' or op == 'square' or op == 'sign' or op == 'floor'
         or op == 'ceil' or op == 'round' then
        both(string.format('%s_ %s on a transposed view', op, dt), function(x)
          local c = x:clone(); c:t()[op .. '_'](c:t()); return c end, {a}, INEXACT[op])
      else -- the in-place op of an integer tensor stores the f32 result truncated
        both(string.format('%s_ %s (f32 result truncated)', op, dt), function(x)
          local c = x:clone(); c[op .. '_'](c); return c end, {a}, INEXACT[op])
      end
    end
  end
  local e = dama.empty({3, 0}, {device = 'cuda'})
  expect_eq(e:exp():numel(), 0)
  -- round is to nearest even, sign(-0) = +0, relu(-0) = -0
  both('round ties', function(x) return x:round() end, {dama.tensor({0.5, 1.5, 2.5, -0.5, -1.5, 2.4999999})})
  both('sign and relu of -0', function(x) return x:sign():add(x:relu()) end, {dama.tensor({-0.0, 0.0, -1, 1})})
end)

test('clamp and clamp_ on every dtype, bounds crossing, infinite and fractional bounds', function()
  need_gpu()
  for _, dt in ipairs(DTYPES) do
    local a = rnd(dt, 9, 35)
    if FLOATS[dt] then a = with_specials(a:to('f64') * 50):to(dt) end
    for _, b in ipairs{{-1, 1}, {-1e30, 0.5}, {2, -2}, {-math.huge, math.huge}, {0.3, 0.7}, {-2.5, 1e20},
                       {-1e300, -1e299}, {1000.5, 2^62}} do
      for _, l in ipairs(LAYOUTS) do
        both(string.format('clamp %s [%g, %g], %s', dt, b[1], b[2], l[1]), function(x) return l[2](x):clamp(b[1], b[2]) end,
             {a})
      end
      both(string.format('clamp_ %s [%g, %g] on a transposed view', dt, b[1], b[2]), function(x)
        local c = x:clone(); c:t():clamp_(b[1], b[2]); return c end, {a})
    end
    same_error('clamp ' .. dt .. ' with a NaN bound', function(x) return x:clamp(0 / 0, 1) end, {a})
    same_error('clamp_ ' .. dt .. ' with a NaN bound', function(x) return x:clone():clamp_(0, 0 / 0) end, {a})
  end
end)

test('where: any condition dtype (NaN true, -0 false), promotion, broadcasting', function()
  need_gpu()
  for _, cdt in ipairs(DTYPES) do
    local c = rnd(cdt, 7, 33):to('f64'):gt(0.3):to('f64'):mul(rnd('f32', 7, 33):to('f64')):to(cdt)
    if FLOATS[cdt] then c = with_specials(c:to('f64')):to(cdt) end
    for _, p in ipairs{{'f32', 'f32'}, {'bf16', 'f32'}, {'i32', 'u8'}, {'f64', 'i64'}, {'f16', 'bf16'}, {'i64', 'i64'}} do
      local a, b = rnd(p[1], 7, 33), rnd(p[2], 7, 33)
      both(string.format('where %s ? %s : %s', cdt, p[1], p[2]), function(k, x, y) return dama.where(k, x, y) end,
           {c, a, b})
      both(string.format('where %s ? %s : %s, transposed', cdt, p[1], p[2]), function(k, x, y)
        return dama.where(k:t(), x:t(), y:t()) end, {c, a, b})
      both(string.format('where %s row ? %s : %s column', cdt, p[1], p[2]), function(k, x, y)
        return dama.where(k:narrow(0, 1, 1), x, y:narrow(1, 5, 1)) end, {c, a, b})
      both(string.format('where %s column ? %s 0-d : %s', cdt, p[1], p[2]), function(k, x, y)
        return dama.where(k:narrow(1, 1, 1):narrow(0, 0, 7), x:select(0, 0):select(0, 0), y) end, {c, a, b})
    end
  end
  local c, a = rnd('u8', 3, 4), rnd('f32', 3, 4)
  same_error('where with shapes that do not broadcast', function(k, x, y) return dama.where(k, x, y) end,
             {c, a, rnd('f32', 5)})
  same_error('where with a condition that does not broadcast', function(k, x, y) return dama.where(k, x, y) end,
             {rnd('u8', 2, 4), a, a})
end)

test('masked_fill_: any mask dtype, broadcast masks, a mask aliasing the target', function()
  need_gpu()
  for _, dt in ipairs(DTYPES) do
    local a = rnd(dt, 9, 33)
    for _, mdt in ipairs{'u8', 'f32', 'bf16', 'i64', 'f64'} do
      local m = rnd(mdt, 9, 33):to('f64'):gt(0):to('f64'):mul(rnd('f32', 9, 33):to('f64')):to(mdt)
      if FLOATS[mdt] then m = with_specials(m:to('f64')):to(mdt) end
      for _, v in ipairs{-7.5, 0 / 0, 1e10, 3} do
        both(string.format('masked_fill_ %s, %s mask, %g', dt, mdt, v), function(x, k)
          local r = x:clone(); r:masked_fill_(k, v); return r end, {a, m})
        both(string.format('masked_fill_ %s transposed, %s mask transposed, %g', dt, mdt, v), function(x, k)
          local r = x:clone(); r:t():masked_fill_(k:t(), v); return r end, {a, m})
        both(string.format('masked_fill_ %s, %s row mask, %g', dt, mdt, v), function(x, k)
          local r = x:clone(); r:masked_fill_(k:narrow(0, 2, 1), v); return r end, {a, m})
      end
    end
    local sq = rnd(dt, 9, 9)
    both('masked_fill_ ' .. dt .. ' by its own transpose', function(x)
      local r = x:clone(); r:masked_fill_(r:t(), 5); return r end, {sq})
    both('masked_fill_ ' .. dt .. ' by itself', function(x)
      local r = x:clone(); r:masked_fill_(r, 2); return r end, {sq})
  end
end)

test('count_nonfinite: f32/f64/bf16/f16 with NaN and inf planted, strided, empty; integers count 0', function()
  need_gpu()
  for _, dt in ipairs{'f32', 'f64', 'bf16', 'f16'} do
    for _, n in ipairs{1, 7, 33, 257, 4099, 70001} do
      local x = rnd(dt, n):to('f64')
      local k = 0
      for i = 0, n - 1, math.max(1, math.floor(n / 13)) do
        x:narrow(0, i, 1):fill_(({0 / 0, math.huge, -math.huge})[k % 3 + 1]); k = k + 1
      end
      x = x:to(dt)
      if dt == 'f16' then x = (x:to('f64') * 1000):to('f16') end -- f16 overflows to inf past 65504
      local want = x:count_nonfinite()
      expect(want > 0, 'the input has non-finite values')
      expect_eq(x:cuda():count_nonfinite(), want, dt .. ' n=' .. n)
      expect_eq(x:cuda():narrow(0, 1, n - 1):count_nonfinite(), x:narrow(0, 1, n - 1):count_nonfinite(),
                dt .. ' misaligned')
      if n > 100 then
        local v = x:narrow(0, 0, 100):reshape(10, 10):t()
        expect_eq(x:cuda():narrow(0, 0, 100):reshape(10, 10):t():count_nonfinite(), v:count_nonfinite(),
                  dt .. ' transposed')
      end
    end
    expect_eq(dama.empty({0}, {dtype = dt, device = 'cuda'}):count_nonfinite(), 0)
    expect_eq(rnd(dt, 100):cuda():count_nonfinite(), 0, dt .. ' all finite')
  end
  for _, dt in ipairs{'u8', 'u16', 'i32', 'i64'} do
    expect_eq(rnd(dt, 50):cuda():count_nonfinite(), 0, dt)
  end
  local r0 = dama.device_reads()
  rnd('f32', 10):cuda():count_nonfinite()
  expect_eq(dama.device_reads() - r0, 1, 'one device read (the 8-byte count)')
end)

test('bad arguments are refused with the CPU messages', function()
  need_gpu()
  local a, b = rnd('f32', 3, 4), rnd('f32', 5)
  same_error('add of shapes that do not broadcast', function(x, y) return x + y end, {a, b})
  same_error('add_ that would grow the target', function(x, y) return x:clone():add_(y) end,
             {rnd('f32', 4), rnd('f32', 3, 4)})
  same_error('mul_ of an expanded target', function(x, y) return x:narrow(0, 0, 1):expand(3, 4):mul_(y) end, {a, a})
  same_error('mul_ scalar of an expanded target', function(x) return x:narrow(0, 0, 1):expand(3, 4):mul_(2) end, {a})
  same_error('neg_ of an expanded target', function(x) return x:narrow(0, 0, 1):expand(3, 4):neg_() end, {a})
  same_error('clamp_ of an expanded target', function(x) return x:narrow(0, 0, 1):expand(3, 4):clamp_(0, 1) end, {a})
  same_error('masked_fill_ with a mask that does not fit', function(x, m) return x:clone():masked_fill_(m, 1) end,
             {a, rnd('u8', 2, 4)})
  same_error('masked_fill_ of an expanded target', function(x, m) return x:narrow(0, 0, 1):expand(3, 4):masked_fill_(m, 1) end,
             {a, rnd('u8', 3, 4)})
  same_error('pow of integers to a negative integer', function(x) return x:pow(-2) end, {rnd('i32', 4)})
  same_error('copy_ of a source that does not broadcast', function(x, y) return x:clone():copy_(y) end, {a, b})
  for _, code in ipairs{-1, 13, 99} do
    same_error('binary op code ' .. code, function(x, y)
      local out = ffi.new('dama_tensor *[1]')
      if C.dama_binary(out, code, x._c, y._c) ~= 0 then error(ffi.string(C.dama_last_error())) end
    end, {a, a})
    same_error('binary_ op code ' .. code, function(x, y)
      if C.dama_binary_(x._c, code, y._c) ~= 0 then error(ffi.string(C.dama_last_error())) end
    end, {a, a})
  end
  for _, code in ipairs{-1, 19} do
    same_error('unary op code ' .. code, function(x)
      local out = ffi.new('dama_tensor *[1]')
      if C.dama_unary(out, code, x._c) ~= 0 then error(ffi.string(C.dama_last_error())) end
    end, {a})
    same_error('unary_ op code ' .. code, function(x)
      if C.dama_unary_(x._c, code) ~= 0 then error(ffi.string(C.dama_last_error())) end
    end, {a})
  end
  -- a cuda op with a cpu operand is refused by the seam, naming both devices
  expect_error(function() return a:cuda() + a end, 'cpu')
end)

test('the element-wise ops replay in a CUDA graph with new inputs; count_nonfinite is refused inside a capture', function()
  need_gpu()
  local x, m = rnd('f32', 33, 9):cuda(), rnd('u8', 33, 9):to('f32'):gt(120):cuda()
  local function step(a, k)
    local y = (a * 2 + 1):clamp(-3, 3)
    local z = dama.where(k, y, a:t():contiguous():t()):exp():to('bf16')
    local w = z:to('f32')
    w:masked_fill_(k, 7)
    w:add_(a:t():t())
    w:sub_(1.5)
    return w:to('f64')
  end
  local g = dama.cuda.graph(function() return step(x, m) end)
  for r = 1, 3 do
    local h = rnd('f32', 33, 9)
    x:copy_(h:cuda())
    g:replay()
    same('graph replay ' .. r, g.outputs[1], step(h, m:cpu()), true)
  end
  g:destroy()
  expect_error(function() dama.cuda.graph(function() return x:count_nonfinite() end) end,
               'count_nonfinite on cuda:0 while a CUDA graph is being captured there')
  expect_eq(x:count_nonfinite(), 0, 'and outside a capture it works')
end)

test('worst differences seen on transcendental ops (a GPU; the interpreter matches bit for bit)', function()
  need_gpu()
  local parts = {}
  for dt, w in pairs(worst_inexact) do parts[#parts + 1] = string.format('%s %.3g', dt, w) end
  table.sort(parts)
  print('  ' .. (INTERP and 'interpreter: every op bit for bit' or ('worst relative error: ' .. table.concat(parts, ', '))))
end)
