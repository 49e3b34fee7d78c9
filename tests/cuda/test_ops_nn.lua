-- The CUDA backend's NN raw kernels (cuda/ops_nn.c) against their CPU twins (runtime/cpu/nn_*.c), through the C
-- entry points of runtime/api/nn_tensor.h (dama_nn_*): the same call on cpu tensors and on cuda copies of them, the
-- results compared element by element. Inputs are seeded random values that are never zero (DAMA_TEST_SEED, printed
-- on a failure), at odd sizes (1, 7, 33, 257, ...: not multiples of a warp or a block), with the special values the
-- CPU defines (NaN, inf); gradients accumulate into random values and outputs start random, so a kernel that skips
-- an element fails. Error cases must give the CPU's message. Runs on the interpreter build (interp.ops_nn) and on a
-- GPU (gpu.ops_nn); without a device every case skips with the reason.
--
-- Tolerances: FP32 within 1e-5 relative (reductions sum in another order); element-wise math shared through
-- core/dama_math.h (GELU, ReLU, dropout, drop-path, AdamW, SGD, EMA) and the patch copies are compared bit for bit
-- on the interpreter, within 1e-6 on a GPU (nvcc contracts a*b+c into FMAs).
local dama = require 'dama'
local ffi = dama.ffi
local C = dama.C
local call = require('dama.ffi').call

local SEED = tonumber(os.getenv('DAMA_TEST_SEED') or '') or 20240611
math.randomseed(SEED)

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

-- the interpreter runs the kernels' own element math with the CPU's FP contraction: bit-exact there
local interp = dama.cuda.is_built() and dama.cuda.available() and
               (dama.cuda.info():find('interpreter', 1, true) ~= nil)
local EXACT = interp and 0 or 1e-6

-- ---------------------------------------------------------------- inputs

-- a cpu tensor filled by gen(i) (i from 0)
local function host(shape, gen, dtype)
  local t = dama.empty(shape, {device = 'cpu', dtype = dtype or 'f32'})
  local p = t:data()
  for i = 0, t:numel() - 1 do p[i] = gen(i) end
  return t
end
-- magnitudes in [lo, hi) with a random sign: never zero
local function rnd(shape, lo, hi)
  lo, hi = lo or 1e-3, hi or 1
  return host(shape, function() local v = lo + (hi - lo) * math.random(); return math.random() < 0.5 and -v or v end)
end
local function pos(shape, lo, hi)
  lo, hi = lo or 1e-3, hi or 1
  return host(shape, function() return lo + (hi - lo) * math.random() end)
end
local function mask01(shape, p_keep)
  return host(shape, function() return math.random() < p_keep and 1 or 0 end)
end
local function scalar(v) return host({1}, function() return v end) end

local function c(t) return t and t._c or nil end
local function dev(t) return t and t:cuda() or nil end

-- ---------------------------------------------------------------- comparisons

-- max over elements of |got - want| / (|want| + floor); NaN must meet NaN. Returns the worst error and whether every
-- element has the same bits.
local function diff(got, want, floor)
  got, want = got:cpu():contiguous(), want:cpu():contiguous()
  assert(got:numel() == want:numel(), 'element counts differ')
  local g, w = got:data(), want:data()
  local gb, wb = ffi.cast('const uint32_t *', g), ffi.cast('const uint32_t *', w)
  local worst, where, same = 0, nil, true
  for i = 0, got:numel() - 1 do
    if gb[i] ~= wb[i] then
      same = false
      local a, b = g[i], w[i]
      local e
      if a ~= a or b ~= b then e = (a ~= a and b ~= b) and 0 or math.huge
      elseif a == b then e = 0 -- +0 / -0
      else e = math.abs(a - b) / (math.abs(b) + floor) end
      if e ~= e then e = math.huge end
      if e > worst then worst, where = e, string.format('element %d: %.9g, expected %.9g', i, a, b) end
    end
  end
  return worst, same, where
end

-- got (cuda) close to want (cpu) within rtol (floor: the quantity's scale, 0 for purely relative); returns the error
local function close(what, got, want, rtol, floor)
  local e, _, where = diff(got, want, floor or 0)
  if e > rtol then
    error(string.format('%s: relative error %.3g > %.3g at %s [DAMA_TEST_SEED=%d]', what, e, rtol, where, SEED), 2)
  end
  return e
end
-- bit for bit on the interpreter, within 1e-6 on a GPU
local function exact(what, got, want, floor)
  local e, same, where = diff(got, want, floor or 0)
  if not (same or (EXACT > 0 and e <= EXACT)) then
    error(string.format('%s: not bit-exact (%s; rel err %.3g) [DAMA_TEST_SEED=%d]', what, where, e, SEED), 2)
  end
  return e
end

-- the same entry on cpu tensors (clones: outputs are compared afterwards) and on cuda copies; args.n counts nils
local function both(entry, args)
  local n = args.n or #args
  local a_cpu, a_dev, p_cpu, p_dev = {}, {}, {}, {}
  for i = 1, n do
    local v = args[i]
    if dama.is_tensor(v) then
      a_cpu[i], a_dev[i] = v:clone(), v:cuda()
      p_cpu[i], p_dev[i] = a_cpu[i]._c, a_dev[i]._c
    else
      a_cpu[i], a_dev[i], p_cpu[i], p_dev[i] = v, v, v, v
    end
  end
  call(C['dama_nn_' .. entry], unpack(p_cpu, 1, n))
  call(C['dama_nn_' .. entry], unpack(p_dev, 1, n))
  return a_cpu, a_dev
end

-- the error of an entry on the cpu and on cuda copies of the same arguments (both must fail); {transposed = t}
-- passes t:t() on each device (a non-contiguous view)
local function errors_of(entry, args)
  local n = args.n or #args
  local p_cpu, p_dev, keep = {}, {}, {}
  for i = 1, n do
    local v = args[i]
    if type(v) == 'table' and v.transposed then
      local h, d = v.transposed:t(), v.transposed:cuda():t()
      keep[#keep + 1], keep[#keep + 2] = h, d
      p_cpu[i], p_dev[i] = h._c, d._c
    elseif dama.is_tensor(v) then
      local d = v:cuda()
      keep[#keep + 1] = d
      p_cpu[i], p_dev[i] = v._c, d._c
    else
      p_cpu[i], p_dev[i] = v, v
    end
  end
  local ok1, e1 = pcall(call, C['dama_nn_' .. entry], unpack(p_cpu, 1, n))
  local ok2, e2 = pcall(call, C['dama_nn_' .. entry], unpack(p_dev, 1, n))
  expect(not ok1, entry .. ': expected the cpu to refuse')
  expect(not ok2, entry .. ': expected cuda to refuse (the cpu said: ' .. tostring(e1) .. ')')
  return tostring(e1), tostring(e2)
end

local function report(fmt, ...) print(string.format('  ' .. fmt, ...)) end

-- ---------------------------------------------------------------- LayerNorm

test('layernorm forward matches the cpu (affine or not, odd sizes, in place)', function()
  need_gpu()
  local worst = 0
  for _, Cn in ipairs{1, 7, 33, 257, 768} do
    for _, N in ipairs{1, 7, 33} do
      for affine = 0, 3 do
        local x = host({N, Cn}, function() return 3 + (math.random() - 0.5) * 4 end) -- a large mean
        local w = (affine % 2 == 1) and rnd({Cn}, 0.5, 1.5) or nil
        local b = (affine >= 2) and rnd({Cn}, 0.1, 1) or nil
        local a, d = both('layernorm_forward', {rnd({N, Cn}), rnd({N}), rnd({N}), x, w, b, N, Cn, 1e-5, n = 9})
        local what = string.format('layernorm N=%d C=%d affine=%d', N, Cn, affine)
        worst = math.max(worst, close(what .. ' out', d[1], a[1], 1e-5, 1), close(what .. ' mean', d[2], a[2], 1e-5),
                         close(what .. ' rstd', d[3], a[3], 1e-5))
      end
    end
  end
  -- in place (out == inp), as the CPU allows
  local x = rnd({5, 65}, 0.1, 2)
  local xc, xd = x:clone(), x:cuda()
  local mc, rc = dama.empty({5}, {device = 'cpu'}), dama.empty({5}, {device = 'cpu'})
  local md, rd = dama.empty({5}, {device = 'cuda'}), dama.empty({5}, {device = 'cuda'})
  call(C.dama_nn_layernorm_forward, xc._c, mc._c, rc._c, xc._c, nil, nil, 5, 65, 1e-6)
  call(C.dama_nn_layernorm_forward, xd._c, md._c, rd._c, xd._c, nil, nil, 5, 65, 1e-6)
  close('layernorm in place', xd, xc, 1e-5, 1)
  report('worst relative error %.3g', worst)
end)

test('layernorm backward matches the cpu (dinp, dweight, dbias accumulate; row chunks for N > 256)', function()
  need_gpu()
  local wx, wp = 0, 0
  for _, shape in ipairs{{1, 1}, {7, 33}, {33, 7}, {5, 257}, {300, 33}, {601, 65}} do
    local N, Cn = shape[1], shape[2]
    for mode = 0, 3 do -- 0: all three; 1: dinp only; 2: params only; 3: no weight
      local x = rnd({N, Cn}, 1e-3, 3)
      local w = mode ~= 3 and rnd({Cn}, 0.5, 1.5) or nil
      local mean, rstd = dama.empty({N}, {device = 'cpu'}), dama.empty({N}, {device = 'cpu'})
      call(C.dama_nn_layernorm_forward, dama.empty({N, Cn}, {device = 'cpu'})._c, mean._c, rstd._c, x._c, c(w), nil,
           N, Cn, 1e-5)
      local dx = mode ~= 2 and rnd({N, Cn}, 1e-3, 0.5) or nil
      local dw = (mode ~= 1 and w) and rnd({Cn}, 1e-3, 0.5) or nil
      local db = mode ~= 1 and rnd({Cn}, 1e-3, 0.5) or nil
      local a, d = both('layernorm_backward', {dx, dw, db, rnd({N, Cn}), x, w, mean, rstd, N, Cn, n = 10})
      local what = string.format('layernorm backward N=%d C=%d mode=%d', N, Cn, mode)
      if dx then wx = math.max(wx, close(what .. ' dinp', d[1], a[1], 1e-5, 1)) end
      -- sums over N rows of O(1) terms: their scale is sqrt(N)
      if dw then wp = math.max(wp, close(what .. ' dweight', d[2], a[2], 1e-5, math.sqrt(N))) end
      if db then wp = math.max(wp, close(what .. ' dbias', d[3], a[3], 1e-5, math.sqrt(N))) end
    end
  end
  report('worst relative error dinp %.3g, dweight/dbias %.3g', wx, wp)
end)

-- ---------------------------------------------------------------- activations, softmax

local SPECIAL = {0 / 0, math.huge, -math.huge, 0, -0.0, 1e-30, -1e-30, 88, -88, 10, -10}
local function with_specials(n)
  local t = rnd({n}, 1e-3, 6)
  local p = t:data()
  for i, v in ipairs(SPECIAL) do if i <= n then p[(i * 7) % n] = v end end
  return t
end

test('gelu and relu, forward and backward, match the cpu bit for bit (NaN, inf, odd sizes)', function()
  need_gpu()
  for _, n in ipairs{1, 7, 33, 257, 1000, 4099} do
    local x = with_specials(n)
    local a, d = both('gelu_forward', {rnd({n}), x, n})
    exact('gelu_forward n=' .. n, d[1], a[1])
    a, d = both('gelu_backward', {rnd({n}), rnd({n}, 1e-3, 4), rnd({n}), n})
    exact('gelu_backward n=' .. n, d[1], a[1])
    a, d = both('relu_forward', {rnd({n}), x, n})
    exact('relu_forward n=' .. n, d[1], a[1])
    local out = a[1]
    a, d = both('relu_backward', {rnd({n}), out, rnd({n}), n})
    exact('relu_backward n=' .. n, d[1], a[1])
  end
  -- in place forward
  local x = rnd({257}, 1e-3, 4)
  local xc, xd = x:clone(), x:cuda()
  call(C.dama_nn_gelu_forward, xc._c, xc._c, 257)
  call(C.dama_nn_gelu_forward, xd._c, xd._c, 257)
  exact('gelu in place', xd, xc)
  report(interp and 'bit-exact on the interpreter' or 'within %g', EXACT)
end)

test('softmax forward and backward match the cpu (warp and block rows, -inf entries)', function()
  need_gpu()
  local wf, wb = 0, 0
  for _, Cn in ipairs{1, 7, 33, 65, 257, 1024, 1025, 2049} do
    for _, N in ipairs{1, 7, 33} do
      if N * Cn <= 40000 then
        local x = rnd({N, Cn}, 1e-3, 8)
        if Cn > 2 then x:data()[1] = -math.huge end
        local a, d = both('softmax_forward', {rnd({N, Cn}), x, N, Cn})
        local what = string.format('softmax N=%d C=%d', N, Cn)
        wf = math.max(wf, close(what, d[1], a[1], 1e-5, 0))
        local y = a[1]
        a, d = both('softmax_backward', {rnd({N, Cn}), y, rnd({N, Cn}), N, Cn})
        wb = math.max(wb, close(what .. ' backward', d[1], a[1], 1e-5, 1))
      end
    end
  end
  -- a NaN poisons its row on both
  local x = rnd({3, 40})
  x:data()[45] = 0 / 0
  local a, d = both('softmax_forward', {rnd({3, 40}), x, 3, 40})
  close('softmax with a NaN', d[1], a[1], 1e-5, 0)
  report('worst relative error forward %.3g, backward %.3g', wf, wb)
end)

-- ---------------------------------------------------------------- dropout, drop-path

-- (the byte-mask dropout has no tensor entry in nn_tensor.h: tests/cuda_interp/test_dropout.cpp checks its kernels)
test('dropout and drop-path match the cpu bit for bit', function()
  need_gpu()
  for _, n in ipairs{1, 7, 33, 257, 4099} do
    local scale = 1 / (1 - 0.3)
    local m = mask01({n}, 0.7)
    local a, d = both('dropout_forward', {rnd({n}), rnd({n}), m, scale, n})
    exact('dropout_forward n=' .. n, d[1], a[1])
    a, d = both('dropout_backward', {rnd({n}), rnd({n}), m, scale, n})
    exact('dropout_backward n=' .. n, d[1], a[1])
  end
  for _, s in ipairs{{1, 1}, {7, 33}, {33, 257}, {3, 1}} do
    local N, M = s[1], s[2]
    local m = mask01({N}, 0.6)
    local a, d = both('drop_path_forward', {rnd({N, M}), rnd({N, M}), m, 2.5, N, M})
    exact(string.format('drop_path_forward %dx%d', N, M), d[1], a[1])
    a, d = both('drop_path_backward', {rnd({N, M}), rnd({N, M}), m, 2.5, N, M})
    exact(string.format('drop_path_backward %dx%d', N, M), d[1], a[1])
  end
end)

-- ---------------------------------------------------------------- patches, position table

test('patchify and unpatchify match the cpu bit for bit and invert each other', function()
  need_gpu()
  for _, s in ipairs{{1, 1, 4, 4, 1}, {2, 3, 8, 12, 4}, {3, 7, 16, 16, 8}, {1, 2, 6, 10, 2}} do
    local N, Cn, H, W, p = s[1], s[2], s[3], s[4], s[5]
    local L, P = (H / p) * (W / p), p * p * Cn
    local what = string.format('N=%d C=%d %dx%d p=%d', N, Cn, H, W, p)
    local a, d = both('patchify', {rnd({N, L, P}), rnd({N, Cn, H, W}), N, Cn, H, W, p})
    exact('patchify ' .. what, d[1], a[1])
    local back = dama.empty({N, Cn, H, W}, {device = 'cuda'})
    call(C.dama_nn_unpatchify, back._c, d[1]._c, N, Cn, H, W, p)
    exact('unpatchify(patchify) ' .. what, back, a[2])
    a, d = both('unpatchify', {rnd({N, Cn, H, W}), rnd({N, L, P}), N, Cn, H, W, p})
    exact('unpatchify ' .. what, d[1], a[1])
  end
end)

test('the 2-D sin-cos position table matches the cpu', function()
  need_gpu()
  local worst = 0
  for _, s in ipairs{{4, 1, 1}, {8, 3, 5}, {64, 4, 4}, {768, 8, 8}} do
    for cls = 0, 1 do
      local D, gh, gw = s[1], s[2], s[3]
      local a, d = both('pos_embed_2d_sincos', {rnd({cls + gh * gw, D}), D, gh, gw, cls})
      worst = math.max(worst, close(string.format('pos_embed D=%d %dx%d cls=%d', D, gh, gw, cls), d[1], a[1], 1e-6, 1))
    end
  end
  report('worst error %.3g (double sin/cos/pow on both)', worst)
end)

-- ---------------------------------------------------------------- losses

-- the loss of both runs (one float on the device) and its relative error
local function loss_close(what, d, a, rtol)
  return close(what, d, a, rtol or 1e-6, 0)
end

test('squared error and smooth L1: forward (sum, mean) and backward (dpred, dtarget, both) match the cpu', function()
  need_gpu()
  local wl, wg = 0, 0
  for _, n in ipairs{1, 7, 33, 257, 5000, 70001} do
    local p, t = rnd({n}, 1e-3, 2), rnd({n}, 1e-3, 2)
    for red = 0, 1 do
      local a, d = both('sq_error_forward', {rnd({1}), p, t, n, red})
      wl = math.max(wl, loss_close(string.format('sq_error n=%d red=%d', n, red), d[1], a[1]))
      for _, beta in ipairs{0, 0.5, 1} do
        a, d = both('smooth_l1_loss_forward', {rnd({1}), p, t, n, beta, red})
        wl = math.max(wl, loss_close(string.format('smooth_l1 n=%d beta=%g red=%d', n, beta, red), d[1], a[1]))
      end
      for which = 1, 3 do -- dpred, dtarget, both
        local dp = which ~= 2 and rnd({n}) or nil
        local dt = which ~= 1 and rnd({n}) or nil
        local dl = scalar(0.37 + math.random())
        a, d = both('sq_error_backward', {dp, dt, p, t, n, red, dl, n = 7})
        if dp then wg = math.max(wg, exact('sq_error_backward dpred n=' .. n, d[1], a[1])) end
        if dt then wg = math.max(wg, exact('sq_error_backward dtarget n=' .. n, d[2], a[2])) end
        a, d = both('smooth_l1_loss_backward', {dp, dt, p, t, n, 0.5, red, dl, n = 8})
        if dp then wg = math.max(wg, exact('smooth_l1_backward dpred n=' .. n, d[1], a[1])) end
        if dt then wg = math.max(wg, exact('smooth_l1_backward dtarget n=' .. n, d[2], a[2])) end
      end
    end
  end
  report('worst relative error loss %.3g, gradients %.3g (element math bit-exact on the interpreter)', wl, wg)
end)

local function targets(N, K)
  return host({N}, function() return math.random(0, K - 1) end, 'i64')
end

test('cross-entropy with hard targets and label smoothing, forward and backward, matches the cpu', function()
  need_gpu()
  local wl, wg = 0, 0
  for _, s in ipairs{{1, 1}, {1, 5}, {7, 33}, {33, 7}, {300, 10}, {5, 1000}} do
    local N, K = s[1], s[2]
    for _, ls in ipairs{0, 0.1, 1} do
      local x, t = rnd({N, K}, 1e-3, 5), targets(N, K)
      local what = string.format('cross_entropy N=%d K=%d ls=%g', N, K, ls)
      local a, d = both('cross_entropy_forward', {rnd({1}), x, t, N, K, ls})
      wl = math.max(wl, loss_close(what, d[1], a[1]))
      a, d = both('cross_entropy_backward', {rnd({N, K}), x, t, N, K, ls, scalar(0.5 + math.random())})
      wg = math.max(wg, close(what .. ' backward', d[1], a[1], 1e-5, 1))
    end
  end
  report('worst relative error loss %.3g, dlogits %.3g', wl, wg)
end)

test('a hard target outside [0, K): the cpu refuses it, cuda gives a NaN loss and NaN gradient rows', function()
  need_gpu()
  local N, K = 4, 6
  local x = rnd({N, K})
  local t = host({N}, function(i) return i == 2 and K or i end, 'i64')
  local ok, e = pcall(call, C.dama_nn_cross_entropy_forward, dama.empty({1}, {device = 'cpu'})._c, x._c, t._c, N, K,
                      0.0)
  expect(not ok and tostring(e):find('cross_entropy_forward: target[2]=6, expected a class in [0, 6)', 1, true),
         'the cpu error: ' .. tostring(e))
  local l = dama.empty({1}, {device = 'cuda'})
  call(C.dama_nn_cross_entropy_forward, l._c, x:cuda()._c, t:cuda()._c, N, K, 0.0)
  local v = l:cpu():item()
  expect(v ~= v, 'the loss is NaN, got ' .. v)
  local g = rnd({N, K}):cuda()
  call(C.dama_nn_cross_entropy_backward, g._c, x:cuda()._c, t:cuda()._c, N, K, 0.0, scalar(1):cuda()._c)
  local gp = g:cpu():data()
  for i = 0, N * K - 1 do
    local row = math.floor(i / K)
    if row == 2 then expect(gp[i] ~= gp[i], 'row 2 is NaN') else expect(gp[i] == gp[i], 'other rows are finite') end
  end
end)

test('soft-target cross-entropy, forward and backward, matches the cpu', function()
  need_gpu()
  local wl, wg = 0, 0
  for _, s in ipairs{{1, 1}, {7, 33}, {33, 7}, {300, 10}, {3, 700}} do
    local N, K = s[1], s[2]
    for _, normalised in ipairs{true, false} do
      local x = rnd({N, K}, 1e-3, 5)
      local q = pos({N, K}, 1e-3, 1)
      if normalised then -- rows of probabilities (mixup's targets)
        local qp = q:data()
        for i = 0, N - 1 do
          local sum = 0
          for k = 0, K - 1 do sum = sum + qp[i * K + k] end
          for k = 0, K - 1 do qp[i * K + k] = qp[i * K + k] / sum end
        end
      end
      local what = string.format('soft_cross_entropy N=%d K=%d normalised=%s', N, K, tostring(normalised))
      local a, d = both('soft_cross_entropy_forward', {rnd({1}), x, q, N, K})
      wl = math.max(wl, loss_close(what, d[1], a[1]))
      a, d = both('soft_cross_entropy_backward', {rnd({N, K}), x, q, N, K, scalar(0.5 + math.random())})
      wg = math.max(wg, close(what .. ' backward', d[1], a[1], 1e-5, 1))
    end
  end
  report('worst relative error loss %.3g, dlogits %.3g', wl, wg)
end)

test('the norm-pix loss: forward (loss, loss per patch) and backward match the cpu; an empty mask gives 0', function()
  need_gpu()
  local wl, wp, wg = 0, 0, 0
  for _, s in ipairs{{1, 1, 2}, {2, 7, 48}, {5, 49, 3}, {3, 33, 300}, {2, 150, 17}} do
    local N, L, P = s[1], s[2], s[3]
    for norm_pix = 0, 1 do
      for kind = 1, 3 do -- 1: a 0/1 mask, 2: fractional weights, 3: nothing masked
        local pred, target = rnd({N, L, P}, 1e-3, 2), rnd({N, L, P}, 1e-3, 2)
        local m = kind == 1 and mask01({N, L}, 0.75) or (kind == 2 and pos({N, L}, 0.1, 1) or
                  host({N, L}, function() return 0 end))
        if kind == 1 then m:data()[0] = 1 end
        local what = string.format('normpix N=%d L=%d P=%d norm_pix=%d mask=%d', N, L, P, norm_pix, kind)
        local a, d = both('normpix_loss_forward', {rnd({1}), rnd({N, L}), pred, target, m, N, L, P, norm_pix, 1e-6})
        wl = math.max(wl, loss_close(what, d[1], a[1], 1e-5))
        wp = math.max(wp, close(what .. ' per patch', d[2], a[2], 1e-5, 0))
        if kind == 3 then expect(d[1]:cpu():item() == 0, what .. ': an empty mask gives loss 0') end
        a, d = both('normpix_loss_backward', {rnd({N, L, P}), pred, target, m, N, L, P, norm_pix, 1e-6,
                                               scalar(0.5 + math.random())})
        wg = math.max(wg, close(what .. ' backward', d[1], a[1], 1e-5, 1))
      end
    end
  end
  -- without the per-patch output
  local pred, target, m = rnd({2, 9, 12}), rnd({2, 9, 12}), mask01({2, 9}, 0.5)
  m:data()[3] = 1
  local a, d = both('normpix_loss_forward', {rnd({1}), nil, pred, target, m, 2, 9, 12, 1, 1e-6, n = 10})
  loss_close('normpix without loss_per_patch', d[1], a[1], 1e-5)
  report('worst relative error loss %.3g, per patch %.3g, dpred %.3g', wl, wp, wg)
end)

test('loss reductions give the same bits on every run (no atomics)', function()
  need_gpu()
  local n = 70001
  local p, t = rnd({n}):cuda(), rnd({n}):cuda()
  local N, L, P = 3, 70, 48
  local pr, tg, m = rnd({N, L, P}):cuda(), rnd({N, L, P}):cuda(), mask01({N, L}, 0.7):cuda()
  local first
  for run = 1, 3 do
    local l1, l2 = dama.empty({1}, {device = 'cuda'}), dama.empty({1}, {device = 'cuda'})
    call(C.dama_nn_sq_error_forward, l1._c, p._c, t._c, n, 1)
    call(C.dama_nn_normpix_loss_forward, l2._c, nil, pr._c, tg._c, m._c, N, L, P, 1, 1e-6)
    local bits = {ffi.cast('uint32_t *', l1:cpu():data())[0], ffi.cast('uint32_t *', l2:cpu():data())[0]}
    if run == 1 then first = bits else expect_eq(bits, first, 'run ' .. run) end
  end
end)

-- ---------------------------------------------------------------- optimizers

test('AdamW, SGD and the EMA update match the cpu bit for bit over several steps', function()
  need_gpu()
  for _, n in ipairs{1, 7, 33, 1000, 12345} do
    -- AdamW with a warm-up (the step scalars change every step) and a late step
    local hs = {{1e-3, 0.9, 0.999, 1e-8, 0.05}, {0.1, 0.5, 0.6, 1e-3, 0.3}}
    for _, h in ipairs(hs) do
      local p, m, v = rnd({n}), rnd({n}, 1e-6, 1e-2), pos({n}, 1e-8, 1e-4)
      local pc, mc, vc, pd, md, vd = p:clone(), m:clone(), v:clone(), p:cuda(), m:cuda(), v:cuda()
      for _, step in ipairs{1, 2, 3, 4, 1000} do
        local g = rnd({n}, 1e-4, 2)
        local lr = h[1] * math.min(step, 4) / 4
        call(C.dama_nn_adamw_step, pc._c, g._c, mc._c, vc._c, n, lr, h[2], h[3], h[4], h[5], step)
        call(C.dama_nn_adamw_step, pd._c, g:cuda()._c, md._c, vd._c, n, lr, h[2], h[3], h[4], h[5], step)
      end
      exact('adamw params n=' .. n, pd, pc)
      exact('adamw exp_avg n=' .. n, md, mc)
      exact('adamw exp_avg_sq n=' .. n, vd, vc)
    end
    -- SGD: plain, momentum, dampening, Nesterov, weight decay
    for _, h in ipairs{{0.1, 0, 0, 0, 0}, {0.05, 0.9, 0, 1e-4, 0}, {0.05, 0.9, 0.1, 0, 0}, {0.01, 0.8, 0, 0.01, 1}} do
      local p = rnd({n})
      local buf = h[2] ~= 0 and rnd({n}) or nil
      local pc, pd, bc, bd = p:clone(), p:cuda(), buf and buf:clone(), buf and buf:cuda()
      for step = 1, 3 do
        local g = rnd({n}, 1e-4, 2)
        call(C.dama_nn_sgd_step, pc._c, g._c, c(bc), n, h[1], h[2], h[3], h[4], h[5], step)
        call(C.dama_nn_sgd_step, pd._c, g:cuda()._c, c(bd), n, h[1], h[2], h[3], h[4], h[5], step)
      end
      exact('sgd params n=' .. n, pd, pc)
      if buf then exact('sgd momentum buffer n=' .. n, bd, bc) end
    end
    local a, d = both('ema_update', {rnd({n}), rnd({n}), n, 0.996})
    exact('ema_update n=' .. n, d[1], a[1])
  end
  report(interp and 'bit-exact on the interpreter' or 'within %g', EXACT)
end)

-- ---------------------------------------------------------------- errors

test('bad arguments give the cpu message on cuda', function()
  need_gpu()
  local x, y, z = rnd({8}), rnd({8}), rnd({8})
  local e0 = dama.empty({0}, {device = 'cpu'})
  local m2, x2 = rnd({2, 4}), rnd({2, 4})
  local i64 = targets(2, 4)
  local cases = {
    {'gelu_forward', {e0, e0, 0}},
    {'relu_backward', {e0, e0, e0, 0}},
    {'softmax_forward', {e0, e0, 0, 4}},
    {'dropout_backward', {e0, e0, e0, 2.0, 0}},
    {'drop_path_backward', {e0, e0, e0, 2.0, 0, 3}},
    {'layernorm_forward', {x2, rnd({2}), rnd({2}), x2, nil, nil, 2, 4, -1, n = 9}},
    {'layernorm_forward', {x2, nil, rnd({2}), x2, nil, nil, 2, 4, 1e-5, n = 9}},
    {'layernorm_backward', {x2, nil, nil, x2, x2, nil, rnd({2}), rnd({2}), 0, 4, n = 10}},
    {'patchify', {rnd({1, 4, 3}), rnd({1, 3, 4, 4}), 1, 3, 4, 4, 3}},
    {'unpatchify', {rnd({1, 3, 4, 4}), rnd({1, 1, 48}), 1, 3, 4, 4, 0}},
    {'pos_embed_2d_sincos', {rnd({4, 6}), 6, 2, 2, 0}},
    {'sq_error_forward', {rnd({1}), x, y, 8, 2}},
    {'sq_error_backward', {z, nil, x, y, 0, 1, rnd({1}), n = 7}},
    {'smooth_l1_loss_forward', {rnd({1}), x, y, 8, -0.5, 1}},
    {'smooth_l1_loss_backward', {z, nil, x, y, 8, 1.0, 3, rnd({1}), n = 8}},
    {'cross_entropy_forward', {rnd({1}), m2, i64, 2, 4, 1.5}},
    {'cross_entropy_backward', {m2, m2, i64, 2, 4, -0.1, rnd({1})}},
    {'soft_cross_entropy_forward', {rnd({1}), m2, x2, 0, 4}},
    {'normpix_loss_forward', {rnd({1}), rnd({2, 4}), rnd({2, 4, 1}), rnd({2, 4, 1}), m2, 2, 4, 1, 1, 1e-6}},
    {'normpix_loss_backward', {rnd({2, 4, 3}), rnd({2, 4, 3}), rnd({2, 4, 3}), m2, 2, 4, 3, 1, -1, rnd({1})}},
    {'adamw_step', {x, y, z, rnd({8}), 8, 1e-3, 1.0, 0.999, 1e-8, 0, 1}},
    {'adamw_step', {x, y, z, rnd({8}), 8, 1e-3, 0.9, 0.999, 1e-8, 0, 0}},
    {'adamw_step', {x, y, z, rnd({8}), 8, -1, 0.9, 0.999, 1e-8, 0, 1}},
    {'sgd_step', {x, y, nil, 8, 0.1, 0.9, 0, 0, 0, 1, n = 10}},
    {'sgd_step', {x, y, z, 8, 0.1, 0.9, 0.1, 0, 1, 1}},
    {'sgd_step', {x, y, z, 8, 0.1, 0.9, 0, 0, 0, 0}},
    {'ema_update', {e0, e0, 0, 0.99}},
    -- the core's checks (nn_tensor.c) before any kernel: dtype, size, contiguity
    {'gelu_forward', {rnd({8}):to('f64'), x, 8}},
    {'gelu_forward', {x, x, 9}},
    {'softmax_forward', {rnd({4, 2}), {transposed = rnd({2, 4})}, 4, 2}},
  }
  for _, cs in ipairs(cases) do
    local e1, e2 = errors_of(cs[1], cs[2])
    expect_eq(e2, e1, cs[1])
  end
  report('%d error cases: the same message on both', #cases)
end)

-- ---------------------------------------------------------------- the Lua API

-- dama.nn.functional makes its gradients with zeros on the op's device and lets autograd add them: that needs the
-- tensor area's fill_ and add on cuda; until those exist these cases say so.
local function need_tensor_ops()
  local ok, e = pcall(function()
    local z = dama.zeros({2}, {device = 'cuda'})
    return z + z
  end)
  if not ok then skip('needs the tensor ops fill_ and add on cuda: ' .. tostring(e)) end
end

-- fn(device) returns a list of tensors; run it on cpu and cuda from the same seed and compare them pairwise
local function same_on_both(fn, names, rtol)
  math.randomseed(SEED + 7)
  local want = fn('cpu')
  math.randomseed(SEED + 7)
  local got = fn('cuda')
  for i = 1, #want do
    expect(got[i].device == 'cuda:0', names[i] .. ' is on cuda:0, got ' .. tostring(got[i].device))
    close(names[i], got[i], want[i], rtol or 1e-5, 1)
  end
end

test('dama.nn.functional on cuda: LayerNorm, GELU, softmax, MSE forward and autograd backward match the cpu', function()
  need_gpu()
  need_tensor_ops()
  local F = require 'dama.nn.functional'
  same_on_both(function(device)
    local x = rnd({7, 33}):to(device)
    local w, b = rnd({33}, 0.5, 1.5):to(device), rnd({33}):to(device)
    local target = rnd({7, 33}):to(device)
    x.requires_grad, w.requires_grad, b.requires_grad = true, true, true
    local h = F.gelu(F.layer_norm(x, w, b, 1e-5))
    local loss = F.mse_loss(F.softmax(h), target)
    loss:backward()
    return {loss, x.grad, w.grad, b.grad}
  end, {'loss', 'x.grad', 'w.grad', 'b.grad'})
end)

test('dama.nn.functional on cuda: patches, the norm-pix loss, ReLU and the other losses with autograd', function()
  need_gpu()
  need_tensor_ops()
  local F = require 'dama.nn.functional'
  same_on_both(function(device)
    local imgs = rnd({2, 3, 8, 8}):to(device)
    imgs.requires_grad = true
    local target = F.patchify(rnd({2, 3, 8, 8}):to(device), 4)           -- [2, 4, 48]
    local pred = F.relu(F.patchify(imgs, 4))
    local m = mask01({2, 4}, 0.5)
    m:data()[0] = 1
    local l1, lpp = F.normpix_loss(pred, target, m:to(device))
    local back = F.unpatchify(F.patchify(imgs, 4), 4, 3, 8, 8)
    local l2 = F.smooth_l1_loss(back, rnd({2, 3, 8, 8}):to(device), 0.5)
    local logits = F.patchify(imgs, 4):reshape({8, 48})
    local l3 = F.cross_entropy(logits, targets(8, 48):to(device), 0.1)
    local l4 = F.soft_cross_entropy(logits, pos({8, 48}):to(device))
    local loss = l1 + l2 + l3 + l4
    loss:backward()
    local pe = F.sincos_pos_embed(16, 2, 2, true, device)
    return {l1, lpp, l2, l3, l4, imgs.grad, pe}
  end, {'normpix loss', 'loss per patch', 'smooth_l1', 'cross_entropy', 'soft_cross_entropy', 'imgs.grad', 'pos_embed'})
end)

test('dama.optim AdamW, SGD (Nesterov) and EMA on cuda parameters match the cpu', function()
  need_gpu()
  need_tensor_ops()
  local optim = require 'dama.optim'
  same_on_both(function(device)
    local p1, p2, p3 = rnd({33}):to(device), rnd({7, 5}):to(device), rnd({257}):to(device)
    local adamw = optim.AdamW({p1, p2}, {lr = 1e-2, betas = {0.9, 0.95}, weight_decay = 0.05})
    local sgd = optim.SGD({p3}, {lr = 0.1, momentum = 0.9, nesterov = true, weight_decay = 1e-4})
    local ema = optim.EMA({p1, p2, p3}, 0.99)
    for _ = 1, 3 do
      p1.grad, p2.grad, p3.grad = rnd({33}):to(device), rnd({7, 5}):to(device), rnd({257}):to(device)
      adamw:step()
      sgd:step()
      ema:update()
    end
    return {p1, p2, p3, ema.shadow[1], ema.shadow[2], ema.shadow[3]}
  end, {'adamw p1', 'adamw p2', 'sgd p3', 'ema 1', 'ema 2', 'ema 3'}, EXACT)
end)

-- The DAMA step is replayed as a CUDA graph: these ops must queue the same work under stream capture (no host
-- wait, scratch from the graph's pool) and a replay must give the eager bits, also after new inputs are copied in.
test('the NN ops are capture-safe: a CUDA graph replay gives the eager results bit for bit', function()
  need_gpu()
  local N, Cn, L, P = 300, 33, 75, 12 -- LayerNorm's row chunks and several loss partials: scratch in the capture
  local x, w, b = rnd({N, Cn}):cuda(), rnd({Cn}, 0.5, 1.5):cuda(), rnd({Cn}):cuda()
  local g = rnd({N, Cn}):cuda()
  local pred, tgt, m = rnd({4, L, P}):cuda(), rnd({4, L, P}):cuda(), mask01({4, L}, 0.7):cuda()
  local dl = scalar(0.75):cuda()
  local p0, m0, v0 = rnd({N * Cn}), rnd({N * Cn}, 1e-6, 1e-2), pos({N * Cn}, 1e-8, 1e-4)
  local dx0, dw0, db0, dp0 = rnd({N, Cn}), rnd({Cn}), rnd({Cn}), rnd({4, L, P})
  local function buffers()
    local o = {out = dama.empty({N, Cn}, {device = 'cuda'}), mean = dama.empty({N}, {device = 'cuda'}),
               rstd = dama.empty({N}, {device = 'cuda'}), loss = dama.empty({1}, {device = 'cuda'}),
               lpp = dama.empty({4, L}, {device = 'cuda'}), mse = dama.empty({1}, {device = 'cuda'}),
               dx = dx0:cuda(), dw = dw0:cuda(), db = db0:cuda(), dp = dp0:cuda(),
               p = p0:cuda(), m = m0:cuda(), v = v0:cuda()}
    return o
  end
  local function step(o)
    call(C.dama_nn_layernorm_forward, o.out._c, o.mean._c, o.rstd._c, x._c, w._c, b._c, N, Cn, 1e-5)
    call(C.dama_nn_layernorm_backward, o.dx._c, o.dw._c, o.db._c, g._c, x._c, w._c, o.mean._c, o.rstd._c, N, Cn)
    call(C.dama_nn_normpix_loss_forward, o.loss._c, o.lpp._c, pred._c, tgt._c, m._c, 4, L, P, 1, 1e-6)
    call(C.dama_nn_normpix_loss_backward, o.dp._c, pred._c, tgt._c, m._c, 4, L, P, 1, 1e-6, dl._c)
    call(C.dama_nn_sq_error_forward, o.mse._c, o.out._c, g._c, N * Cn, 1)
    call(C.dama_nn_adamw_step, o.p._c, o.dx._c, o.m._c, o.v._c, N * Cn, 1e-3, 0.9, 0.999, 1e-8, 0.05, 3)
  end
  local names = {'out', 'mean', 'rstd', 'dx', 'dw', 'db', 'loss', 'lpp', 'dp', 'mse', 'p', 'm', 'v'}
  local function compare(eager, graphed, what)
    for _, k in ipairs(names) do
      local e, same = diff(graphed[k], eager[k], 0)
      expect(same, string.format('%s: %s differs from the eager run (rel %.3g)', what, k, e))
    end
  end
  -- the C entry points of dama.cuda.graph (lua/dama/cuda.lua), so that a capture error ends the capture here
  local function replay(h) expect(C.dama_cuda_graph_replay(h) == 0, 'replay: ' .. ffi.string(C.dama_last_error())) end
  local eager = buffers()
  step(eager)
  local o = buffers()
  local box = ffi.new('dama_cuda_graph*[1]')
  expect(C.dama_cuda_graph_begin(0, box) == 0, 'begin: ' .. ffi.string(C.dama_last_error()))
  local ok, err = pcall(step, o)
  local st = C.dama_cuda_graph_end(box[0], ok and 1 or 0)
  local h = ffi.gc(box[0], C.dama_cuda_graph_destroy)
  expect(ok, 'the capture: ' .. tostring(err))
  expect(st == 0, 'end: ' .. ffi.string(C.dama_last_error()))
  expect(select(2, diff(o.dw, dw0, 0)), 'the capture ran nothing (dweight untouched)')
  replay(h)
  compare(eager, o, 'first replay')
  -- new inputs in place, the accumulating buffers reset: the replay follows them
  local x2 = rnd({N, Cn}):cuda()
  x:copy_(x2)
  for _, k in ipairs{'dx', 'dw', 'db', 'dp', 'p', 'm', 'v'} do
    o[k]:copy_(({dx = dx0, dw = dw0, db = db0, dp = dp0, p = p0, m = m0, v = v0})[k]:cuda())
  end
  replay(h)
  local eager2 = buffers()
  step(eager2)
  compare(eager2, o, 'replay after new inputs')
end)
