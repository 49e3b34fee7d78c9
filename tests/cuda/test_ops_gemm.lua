-- The CUDA backend's GEMM ops (cuda/ops_gemm.c over cuBLASLt, cuda/cublaslt.c) against their CPU twins: the table's
-- sgemm_strided_batched (through its exported entry dama_cuda_sgemm_strided_batched, on device pointers), matmul
-- (x:matmul(y)), and linear, attention and patch_embed forward/backward through the C entries of
-- runtime/api/nn_tensor.h (dama_nn_*): the same call on cpu tensors and on cuda copies, the results compared.
-- Inputs are seeded random values that are never zero (DAMA_TEST_SEED, printed on a failure), at odd sizes (1, 7, 33,
-- 65, 130), both transposes, padded leading dims, gapped and broadcast batches, non-zero beta; gradients accumulate
-- into random values and outputs start as whatever the allocator holds (NaN bytes on the interpreter), so a product
-- that skips an element or reads C when beta = 0 fails. Error cases must give the CPU's message. Also: the plan cache
-- hits on repeated shapes (dama_cuda_gemm_cache_stats), and the TF32 flag (default off) changes the compute type.
-- Runs on the interpreter build (interp.ops_gemm, cuBLASLt = tests/cuda_interp/cublas_shim.cpp) and on a GPU
-- (gpu.ops_gemm); without a device every case skips with the reason.
--
-- Tolerances (normwise: max |got - want| / max |want|): f32 1e-5 (another summation order; the shim sums in
-- double), f64 1e-12, f16 2e-3, bf16 1e-2 (one rounding of the output either way), TF32 1e-2.
local dama = require 'dama'
local ffi = dama.ffi
local C = dama.C

local SEED = tonumber(os.getenv('DAMA_TEST_SEED') or '') or 20240611
math.randomseed(SEED)

pcall(ffi.cdef, [[
dama_status dama_cuda_sgemm_strided_batched(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                                            const float *A, int64_t lda, int64_t stride_a, const float *B, int64_t ldb,
                                            int64_t stride_b, float beta, float *C, int64_t ldc, int64_t stride_c,
                                            int64_t batch);
void dama_cuda_set_allow_tf32(int32_t allow);
int32_t dama_cuda_get_allow_tf32(void);
void dama_cuda_gemm_cache_stats(int64_t *hits, int64_t *misses, int64_t *entries);
void dama_cuda_set_gemm_epilogues(int32_t allow);
int32_t dama_cuda_get_gemm_epilogues(void);
]])

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

-- ---------------------------------------------------------------- inputs

-- a cpu f32 tensor of magnitudes in [lo, hi) with random signs: never zero
local function rnd(shape, lo, hi)
  lo, hi = lo or 0.05, hi or 1
  local t = dama.empty(shape, {device = 'cpu', dtype = 'f32'})
  local p = t:data()
  for i = 0, t:numel() - 1 do
    local v = lo + (hi - lo) * math.random()
    p[i] = math.random() < 0.5 and -v or v
  end
  return t
end

local function c(t) return t and t._c or nil end
local function dev(t) return t and t:cuda() or nil end
local function fptr(t) return ffi.cast('float *', t._c.storage.data) + t._c.offset end

-- ---------------------------------------------------------------- comparisons

local worst_seen = {}
-- normwise error of got against want (any float dtype, any device): max |got - want| / max |want|
local function nerr(got, want)
  got, want = got:cpu():to('f64'):contiguous(), want:cpu():to('f64'):contiguous()
  assert(got:numel() == want:numel(), 'element counts differ')
  local g, w = ffi.cast('const double *', got:data()), ffi.cast('const double *', want:data())
  local num, den, where = 0, 0, nil
  for i = 0, got:numel() - 1 do
    local d = math.abs(g[i] - w[i])
    if d ~= d or g[i] ~= g[i] then d = math.huge end
    if d > num then num, where = d, string.format('element %d: %.9g, expected %.9g', i, g[i], w[i]) end
    if math.abs(w[i]) > den then den = math.abs(w[i]) end
  end
  return num / (den > 0 and den or 1), where
end

local function check(what, got, want, tol, kind)
  local e, where = nerr(got, want)
  kind = kind or 'f32'
  worst_seen[kind] = math.max(worst_seen[kind] or 0, e)
  expect(e <= tol, string.format('%s: normwise error %.3g > %.3g at %s [seed %d]', what, e, tol, where or '?', SEED))
end

-- the CPU's and the device's error for the same call must be the same text
local function same_error(what, st_cpu, msg_cpu, st_dev, msg_dev)
  expect(st_cpu ~= 0, what .. ': the CPU accepted it')
  expect_eq(st_dev, st_cpu, what .. ': status')
  expect_eq(msg_dev, msg_cpu, what .. ': message')
end
local function last_error() return ffi.string(C.dama_last_error()) end

local function cache_stats()
  local v = ffi.new('int64_t[3]')
  C.dama_cuda_gemm_cache_stats(v, v + 1, v + 2)
  return tonumber(v[0]), tonumber(v[1]), tonumber(v[2])
end

-- ---------------------------------------------------------------- sgemm_strided_batched

-- one call on cpu buffers and on cuda copies; the whole C buffer (padding and gaps included) must agree
local function sgemm_case(ta, tb, M, N, K, batch, beta, pad, gap, opts)
  opts = opts or {}
  local lda = (ta == 1 and M or K) + pad
  local ldb = (tb == 1 and K or N) + pad
  local ldc = N + pad
  local sa = (ta == 1 and K or M) * lda + gap
  local sb = opts.bcast_b and 0 or (tb == 1 and N or K) * ldb + gap
  local sc = opts.sc or (M * ldc + gap)
  local na = (batch - 1) * sa + (ta == 1 and K or M) * lda
  local nb = (batch - 1) * sb + (tb == 1 and N or K) * ldb
  local nc = (batch - 1) * sc + M * ldc
  local A, B, Cm = rnd({na}), rnd({nb}), rnd({nc})
  local dA, dB, dC = A:cuda(), B:cuda(), Cm:cuda()
  local alpha = 1.25
  local st = C.dama_sgemm_strided_batched(ta, tb, M, N, K, alpha, fptr(A), lda, sa, fptr(B), ldb, sb, beta,
                                          fptr(Cm), ldc, sc, batch)
  expect(st == 0, 'cpu sgemm: ' .. last_error())
  st = C.dama_cuda_sgemm_strided_batched(ta, tb, M, N, K, alpha, fptr(dA), lda, sa, fptr(dB), ldb, sb, beta,
                                         fptr(dC), ldc, sc, batch)
  expect(st == 0, 'cuda sgemm: ' .. last_error())
  check(string.format('sgemm ta=%d tb=%d M=%d N=%d K=%d batch=%d beta=%g', ta, tb, M, N, K, batch, beta),
        dC, Cm, 1e-5)
end

test('sgemm_strided_batched: odd sizes, both transposes, padded leading dims, batches, beta', function()
  need_gpu()
  worst_seen = {}
  local n = 0
  for _, M in ipairs{1, 7, 33, 65, 130} do
    for _, N in ipairs{1, 7, 33, 130} do
      for _, K in ipairs{1, 33, 130} do
        for ta = 0, 1 do
          for tb = 0, 1 do
            local batch = (M + N + K + ta) % 3 == 0 and 1 or 3
            sgemm_case(ta, tb, M, N, K, batch, (M + tb) % 2 == 0 and 0 or 0.5, (M + N) % 3, 5)
            n = n + 1
          end
        end
      end
    end
  end
  -- a broadcast B (stride 0), and output matrices that overlap (stride_c 0: the CPU applies them in turn)
  sgemm_case(0, 1, 7, 33, 65, 4, 1.0, 1, 3, {bcast_b = true})
  sgemm_case(1, 0, 33, 7, 5, 3, 1.0, 0, 0, {sc = 0})
  sgemm_case(0, 0, 5, 7, 9, 3, 0.5, 2, 0, {sc = 9})
  print(string.format('  %d products, worst normwise error %.3g', n + 3, worst_seen.f32 or 0))
end)

test('sgemm_strided_batched: bad arguments give the CPU messages', function()
  need_gpu()
  worst_seen = {}
  local A, dA = rnd({64}), rnd({64}):cuda()
  local cases = {
    {'M = 0', {0, 0, 0, 4, 4}, {4, 0, 4, 0, 1, 4, 0, 1}},
    {'lda too small', {0, 0, 4, 4, 4}, {3, 0, 4, 0, 1, 4, 0, 1}},
    {'lda too small (transposed)', {1, 0, 5, 4, 4}, {4, 0, 4, 0, 1, 4, 0, 1}},
    {'ldb too small', {0, 1, 4, 4, 5}, {5, 0, 4, 0, 1, 4, 0, 1}},
    {'ldc too small', {0, 0, 4, 4, 4}, {4, 0, 4, 0, 1, 3, 0, 1}},
    {'batch 0', {0, 0, 4, 4, 4}, {4, 0, 4, 0, 1, 4, 0, 0}},
    {'negative stride', {0, 0, 4, 4, 4}, {4, -1, 4, 0, 1, 4, 0, 2}},
  }
  for _, cs in ipairs(cases) do
    local t, v = cs[2], cs[3]
    local function run(f, p)
      local st = f(t[1], t[2], t[3], t[4], t[5], 1, p, v[1], v[2], p, v[3], v[4], v[5], p, v[6], v[7], v[8])
      return st, last_error()
    end
    local s1, m1 = run(C.dama_sgemm_strided_batched, fptr(A))
    local s2, m2 = run(C.dama_cuda_sgemm_strided_batched, fptr(dA))
    same_error(cs[1], s1, m1, s2, m2)
  end
  local s1 = C.dama_sgemm_strided_batched(0, 0, 2, 2, 2, 1, nil, 2, 4, fptr(A), 2, 4, 0, fptr(A), 2, 4, 1)
  local m1 = last_error()
  local s2 = C.dama_cuda_sgemm_strided_batched(0, 0, 2, 2, 2, 1, nil, 2, 4, fptr(dA), 2, 4, 0, fptr(dA), 2, 4, 1)
  same_error('A NULL', s1, m1, s2, last_error())
end)

-- ---------------------------------------------------------------- the plan cache, TF32

test('the plan cache hits on repeated shapes and TF32 is off by default', function()
  need_gpu()
  worst_seen = {}
  expect_eq(C.dama_cuda_get_allow_tf32(), 0, 'TF32 default')
  expect_eq(C.dama_cuda_get_gemm_epilogues(), 1, 'fused epilogues by default')
  local x, w = rnd({37, 29}), rnd({41, 29})
  local dx, dw = x:cuda(), w:cuda()
  local want = dama.empty({37, 41}, {device = 'cpu'})
  expect(C.dama_nn_linear_forward(c(want), c(x), c(w), nil, 37, 29, 41) == 0, last_error())
  local h0, m0 = cache_stats()
  local outs = {}
  for i = 1, 3 do
    outs[i] = dama.empty({37, 41}, {device = 'cuda'})
    expect(C.dama_nn_linear_forward(c(outs[i]), c(dx), c(dw), nil, 37, 29, 41) == 0, last_error())
  end
  local h1, m1, e1 = cache_stats()
  expect_eq(m1 - m0, 1, 'one heuristic query for three products of one shape')
  expect_eq(h1 - h0, 2, 'the second and third found the plan')
  for i = 1, 3 do check('linear (cached plan) ' .. i, outs[i], want, 1e-5) end
  -- another shape is another plan
  local o2 = dama.empty({36, 41}, {device = 'cuda'})
  expect(C.dama_nn_linear_forward(c(o2), c(dx:narrow(0, 0, 36)), c(dw), nil, 36, 29, 41) == 0, last_error())
  local h2, m2, e2 = cache_stats()
  expect_eq(m2 - m1, 1, 'a new shape: a new plan')
  expect_eq(h2, h1, 'no hit for it')
  expect(e2 == e1 + 1, 'plans held')
  -- TF32: its own plan; the result differs from FP32's but stays close to it
  local a, b = rnd({65, 130}, 0.5, 1), rnd({130, 33}, 0.5, 1)
  local da, db = a:cuda(), b:cuda()
  local ref = a:matmul(b)
  local fp32 = da:matmul(db)
  C.dama_cuda_set_allow_tf32(1)
  local ok, tf32 = pcall(function() return da:matmul(db) end)
  C.dama_cuda_set_allow_tf32(0)
  expect(ok, tostring(tf32))
  local _, m3 = cache_stats()
  check('matmul fp32', fp32, ref, 1e-5)
  check('matmul tf32', tf32, ref, 1e-2, 'tf32')
  local e = nerr(tf32, fp32)
  expect(e > 1e-6, string.format('TF32 changed nothing (normwise difference %.3g)', e))
  expect_eq(m3 - m2, 2, 'the fp32 product and its tf32 twin are two plans')
  print(string.format('  cache: %d hits, %d misses, %d plans; TF32 vs FP32 normwise %.3g', h2, m3, e2 + 1, e))
end)

-- ---------------------------------------------------------------- matmul

local function mm_case(what, a, b, dtype, tol, viewa, viewb)
  a, b = a:to(dtype), b:to(dtype)
  local da, db = a:cuda(), b:cuda()
  if viewa then a, da = viewa(a), viewa(da) end
  if viewb then b, db = viewb(b), viewb(db) end
  local want = a:matmul(b)
  local got = da:matmul(db)
  expect_eq(got.device, 'cuda:0', what .. ': device')
  expect_eq(got.dtype, want.dtype, what .. ': dtype')
  expect_eq(got:size(), want:size(), what .. ': shape')
  check(what .. ' (' .. dtype .. ')', got, want, tol, dtype)
end

local TOL = {f32 = 1e-5, f64 = 1e-12, f16 = 2e-3, bf16 = 1e-2}

test('matmul: 1-D, 2-D, batched and broadcast, every float dtype', function()
  need_gpu()
  worst_seen = {}
  for _, dt in ipairs{'f32', 'f64', 'bf16', 'f16'} do
    local tol = TOL[dt]
    mm_case('dot', rnd({33}), rnd({33}), dt, tol)
    mm_case('vec @ mat', rnd({7}), rnd({7, 65}), dt, tol)
    mm_case('mat @ vec', rnd({65, 7}), rnd({7}), dt, tol)
    mm_case('mat @ mat', rnd({33, 65}), rnd({65, 7}), dt, tol)
    mm_case('1x1', rnd({1, 1}), rnd({1, 1}), dt, tol)
    mm_case('a^T @ b', rnd({65, 33}), rnd({65, 7}), dt, tol, function(t) return t:t() end)
    mm_case('a @ b^T', rnd({33, 65}), rnd({7, 65}), dt, tol, nil, function(t) return t:t() end)
    mm_case('a^T @ b^T', rnd({130, 7}), rnd({33, 130}), dt, tol, function(t) return t:t() end,
            function(t) return t:t() end)
    mm_case('batched', rnd({3, 7, 33}), rnd({3, 33, 65}), dt, tol)
    mm_case('batched @ shared (folded rows)', rnd({2, 3, 13, 33}), rnd({33, 7}), dt, tol)
    mm_case('shared @ batched', rnd({7, 33}), rnd({4, 33, 13}), dt, tol)
    mm_case('broadcast batch dims', rnd({2, 1, 7, 33}), rnd({3, 33, 5}), dt, tol)
    mm_case('broadcast both ways', rnd({1, 3, 7, 33}), rnd({2, 1, 33, 5}), dt, tol)
    mm_case('batched vec', rnd({4, 1, 33}), rnd({33}), dt, tol)
  end
  print(string.format('  worst normwise error: f32 %.3g, f64 %.3g, bf16 %.3g, f16 %.3g', worst_seen.f32 or 0,
                      worst_seen.f64 or 0, worst_seen.bf16 or 0, worst_seen.f16 or 0))
end)

test('matmul: strided, offset, expanded and transposed-batch operands', function()
  need_gpu()
  worst_seen = {}
  for _, dt in ipairs{'f32', 'bf16', 'f64'} do
    local tol = TOL[dt]
    -- a narrowed view: an offset (alignment 4 bytes) and a leading dim above the width
    mm_case('narrowed', rnd({40, 70}), rnd({33, 9}), dt, tol, function(t) return t:narrow(0, 3, 33):narrow(1, 1, 33) end,
            function(t) return t:narrow(1, 2, 7) end)
    -- every other column: a gapped inner stride, copied once
    mm_case('column step 2', rnd({7, 66}), rnd({33, 5}), dt, tol, function(t) return t:slice(1, 0, 66, 2) end)
    -- an expanded (stride 0) matrix and an expanded batch
    mm_case('expanded rows', rnd({1, 33}), rnd({33, 7}), dt, tol, function(t) return t:expand(13, 33) end)
    mm_case('expanded batch', rnd({1, 7, 33}), rnd({3, 33, 5}), dt, tol, function(t) return t:expand(3, 7, 33) end)
    -- batch dims in another order: a permuted batch of matrices (no single batch stride)
    mm_case('permuted batch', rnd({3, 2, 7, 33}), rnd({2, 3, 33, 5}), dt, tol,
            function(t) return t:transpose(0, 1) end)
    mm_case('transposed matrices in a batch', rnd({3, 33, 7}), rnd({3, 5, 33}), dt, tol,
            function(t) return t:transpose(1, 2) end, function(t) return t:transpose(1, 2) end)
  end
end)

test('matmul: empty operands and K = 0', function()
  need_gpu()
  worst_seen = {}
  for _, dt in ipairs{'f32', 'f64', 'bf16', 'f16'} do
    local function shapes(sa, sb, want)
      local a = dama.empty(sa, {device = 'cuda', dtype = dt})
      local b = dama.empty(sb, {device = 'cuda', dtype = dt})
      local got = a:matmul(b)
      expect_eq(got:size(), want, dt .. ' shape')
      return got
    end
    shapes({0, 5}, {5, 7}, {0, 7})
    shapes({3, 0, 5}, {5, 7}, {3, 0, 7})
    local z = shapes({4, 0}, {0, 6}, {4, 6})
    local h = z:cpu():to('f64')
    local p = ffi.cast('const double *', h:data())
    for i = 0, h:numel() - 1 do expect(p[i] == 0, dt .. ': K = 0 gives zeros') end
  end
end)

test('matmul: bad arguments give the CPU messages', function()
  need_gpu()
  worst_seen = {}
  local function both(what, fa, fb)
    local ok1, e1 = pcall(function() return fa('cpu'):matmul(fb('cpu')) end)
    local ok2, e2 = pcall(function() return fa('cuda'):matmul(fb('cuda')) end)
    expect(not ok1 and not ok2, what .. ': both must fail')
    expect_eq(tostring(e2), tostring(e1), what)
  end
  local function t(shape, dt) return function(d) return dama.empty(shape, {device = d, dtype = dt or 'f32'}) end end
  both('inner sizes', t({3, 4}), t({5, 6}))
  both('batch dims', t({2, 3, 4}), t({3, 4, 5}))
  both('0-d', t({}), t({3}))
  both('dtypes', t({3, 4}), t({4, 5}, 'f64'))
  both('integer dtype', t({3, 4}, 'i32'), t({4, 5}, 'i32'))
end)

-- ---------------------------------------------------------------- linear

test('linear forward and backward (bias, accumulation) against the CPU', function()
  need_gpu()
  worst_seen = {}
  local n = 0
  for _, N in ipairs{1, 7, 130} do
    for _, Cn in ipairs{1, 33, 65} do
      for _, OC in ipairs{1, 7, 65} do
        for _, with_bias in ipairs{false, true} do
          local x, w, b = rnd({N, Cn}), rnd({OC, Cn}), with_bias and rnd({OC}) or nil
          local out = dama.empty({N, OC}, {device = 'cpu'})
          local dout = dama.empty({N, OC}, {device = 'cuda'})
          expect(C.dama_nn_linear_forward(c(out), c(x), c(w), c(b), N, Cn, OC) == 0, last_error())
          expect(C.dama_nn_linear_forward(c(dout), c(dev(x)), c(dev(w)), c(dev(b)), N, Cn, OC) == 0, last_error())
          local what = string.format('linear N=%d C=%d OC=%d bias=%s', N, Cn, OC, tostring(with_bias))
          check(what, dout, out, 1e-5)
          if with_bias then -- the same without the fused bias epilogue: a plain GEMM and the bias kernel
            local d2 = dama.empty({N, OC}, {device = 'cuda'})
            C.dama_cuda_set_gemm_epilogues(0)
            local st = C.dama_nn_linear_forward(c(d2), c(dev(x)), c(dev(w)), c(dev(b)), N, Cn, OC)
            C.dama_cuda_set_gemm_epilogues(1)
            expect(st == 0, last_error())
            check(what .. ' (bias kernel)', d2, out, 1e-5)
          end
          -- backward: every combination of the three gradients, accumulating onto random values
          for mode = 0, 3 do
            local g = rnd({N, OC})
            local dx = (mode == 0 or mode == 1) and rnd({N, Cn}) or nil
            local dw = (mode == 0 or mode == 2) and rnd({OC, Cn}) or nil
            local db = (mode == 0 or mode == 3) and rnd({OC}) or nil
            local ddx, ddw, ddb = dev(dx), dev(dw), dev(db)
            expect(C.dama_nn_linear_backward(c(dx), c(dw), c(db), c(g), c(x), c(w), N, Cn, OC) == 0, last_error())
            expect(C.dama_nn_linear_backward(c(ddx), c(ddw), c(ddb), c(dev(g)), c(dev(x)), c(dev(w)), N, Cn, OC) == 0,
                   last_error())
            if dx then check(what .. ' dinp', ddx, dx, 1e-5) end
            if dw then check(what .. ' dweight', ddw, dw, 1e-5) end
            if db then check(what .. ' dbias', ddb, db, 1e-5) end
          end
          n = n + 1
        end
      end
    end
  end
  print(string.format('  %d shapes, worst normwise error %.3g', n, worst_seen.f32 or 0))
end)

test('linear: a large N for the bias gradient chunks; bad arguments give the CPU messages', function()
  need_gpu()
  worst_seen = {}
  local N, Cn, OC = 4099, 3, 33
  local x, w, g, db = rnd({N, Cn}), rnd({OC, Cn}), rnd({N, OC}), rnd({OC})
  local ddb = db:cuda()
  expect(C.dama_nn_linear_backward(nil, nil, c(db), c(g), c(x), c(w), N, Cn, OC) == 0, last_error())
  expect(C.dama_nn_linear_backward(nil, nil, c(ddb), c(dev(g)), c(dev(x)), c(dev(w)), N, Cn, OC) == 0, last_error())
  check('dbias over 4099 rows', ddb, db, 1e-5)
  local function both(what, f)
    local s1 = f('cpu'); local m1 = last_error()
    local s2 = f('cuda'); local m2 = last_error()
    same_error(what, s1, m1, s2, m2)
  end
  local function e(shape, d) return dama.empty(shape, {device = d}) end
  both('linear_backward: dinp needs weight', function(d)
    return C.dama_nn_linear_backward(c(e({4, 3}, d)), nil, nil, c(e({4, 5}, d)), c(e({4, 3}, d)), nil, 4, 3, 5)
  end)
  both('linear_backward: dweight needs inp', function(d)
    return C.dama_nn_linear_backward(nil, c(e({5, 3}, d)), nil, c(e({4, 5}, d)), nil, c(e({5, 3}, d)), 4, 3, 5)
  end)
  both('linear_forward: N = 0', function(d)
    return C.dama_nn_linear_forward(c(e({0, 5}, d)), c(e({0, 3}, d)), c(e({5, 3}, d)), nil, 0, 3, 5)
  end)
  both('linear_backward: OC = 0', function(d)
    return C.dama_nn_linear_backward(nil, nil, nil, c(e({4, 0}, d)), nil, nil, 4, 3, 0)
  end)
end)

-- ---------------------------------------------------------------- attention

local function qkv_rand(B, T, Cd) return rnd({B, T, 3, Cd}, 0.05, 1.5) end

test('attention forward and backward against the CPU (short sequences, odd sizes)', function()
  need_gpu()
  worst_seen = {}
  local shapes = {{1, 1, 4, 1}, {2, 13, 24, 3}, {1, 65, 32, 2}, {3, 7, 12, 4}, {2, 33, 10, 5}}
  for _, s in ipairs(shapes) do
    local B, T, Cd, NH = s[1], s[2], s[3], s[4]
    for _, scale in ipairs{0, 0.3} do
      local qkv = qkv_rand(B, T, Cd)
      local out, att = dama.empty({B, T, Cd}, {device = 'cpu'}), dama.empty({B, NH, T, T}, {device = 'cpu'})
      local dout_, datt = dama.empty({B, T, Cd}, {device = 'cuda'}), dama.empty({B, NH, T, T}, {device = 'cuda'})
      local dqkv_in = qkv:cuda()
      expect(C.dama_nn_attention_forward(c(out), c(att), c(qkv), B, T, Cd, NH, scale) == 0, last_error())
      expect(C.dama_nn_attention_forward(c(dout_), c(datt), c(dqkv_in), B, T, Cd, NH, scale) == 0, last_error())
      local what = string.format('attention B=%d T=%d C=%d NH=%d scale=%g', B, T, Cd, NH, scale)
      check(what .. ' out', dout_, out, 1e-5)
      check(what .. ' att', datt, att, 1e-5)
      -- backward from the CPU's att (both sides read the same probabilities), accumulating into random dqkv
      local g, dq = rnd({B, T, Cd}), rnd({B, T, 3, Cd})
      local ddq = dq:cuda()
      expect(C.dama_nn_attention_backward(c(dq), c(g), c(qkv), c(att), B, T, Cd, NH, scale) == 0, last_error())
      expect(C.dama_nn_attention_backward(c(ddq), c(dev(g)), c(dqkv_in), c(dev(att)), B, T, Cd, NH, scale) == 0,
             last_error())
      check(what .. ' dqkv', ddq, dq, 1e-5)
    end
  end
  print(string.format('  worst normwise error %.3g', worst_seen.f32 or 0))
end)

test('attention: bad arguments give the CPU messages', function()
  need_gpu()
  worst_seen = {}
  local function both(what, B, T, Cd, NH)
    local function run(d)
      local o = dama.empty({B, T, Cd}, {device = d})
      local a = dama.empty({B, NH, T, T}, {device = d})
      local q = dama.empty({B, T, 3, Cd}, {device = d})
      local s1 = C.dama_nn_attention_forward(c(o), c(a), c(q), B, T, Cd, NH, 0)
      local m1 = last_error()
      local s2 = C.dama_nn_attention_backward(c(q), c(o), c(q), c(a), B, T, Cd, NH, 0)
      return s1, m1, s2, last_error()
    end
    local a1, b1, c1, d1 = run('cpu')
    local a2, b2, c2, d2 = run('cuda')
    same_error(what .. ' (forward)', a1, b1, a2, b2)
    same_error(what .. ' (backward)', c1, d1, c2, d2)
  end
  both('C not a multiple of NH', 1, 3, 10, 4)
  both('head dim too large', 1, 2, 2050, 1)
end)

-- ---------------------------------------------------------------- patch embedding

test('patch_embed forward and backward against the CPU', function()
  need_gpu()
  worst_seen = {}
  local shapes = {{1, 1, 4, 4, 2, 3}, {2, 3, 8, 12, 4, 7}, {1, 2, 16, 16, 16, 33}, {3, 1, 5, 5, 1, 2}}
  for _, s in ipairs(shapes) do
    local N, Cn, H, W, p, D = s[1], s[2], s[3], s[4], s[5], s[6]
    local L, K = (H / p) * (W / p), Cn * p * p
    for _, with_bias in ipairs{false, true} do
      local imgs, w, b = rnd({N, Cn, H, W}), rnd({D, Cn, p, p}), with_bias and rnd({D}) or nil
      local out, col = dama.empty({N, L, D}, {device = 'cpu'}), dama.empty({N * L, K}, {device = 'cpu'})
      local dout_, dcol = dama.empty({N, L, D}, {device = 'cuda'}), dama.empty({N * L, K}, {device = 'cuda'})
      expect(C.dama_nn_patch_embed_forward(c(out), c(col), c(imgs), c(w), c(b), N, Cn, H, W, p, D) == 0, last_error())
      expect(C.dama_nn_patch_embed_forward(c(dout_), c(dcol), c(dev(imgs)), c(dev(w)), c(dev(b)), N, Cn, H, W, p, D)
             == 0, last_error())
      local what = string.format('patch_embed N=%d C=%d H=%d W=%d p=%d D=%d bias=%s', N, Cn, H, W, p, D,
                                 tostring(with_bias))
      check(what .. ' col', dcol, col, 0)
      check(what .. ' out', dout_, out, 1e-5)
      for mode = 0, 2 do -- all; the image gradient only; the parameter gradients only
        local g = rnd({N, L, D})
        local dimgs = mode ~= 2 and rnd({N, Cn, H, W}) or nil
        local dw = mode ~= 1 and rnd({D, Cn, p, p}) or nil
        local db = (mode ~= 1 and with_bias) and rnd({D}) or nil
        local scratch = dimgs and dama.empty({N * L, K}, {device = 'cpu'}) or nil
        local ddimgs, ddw, ddb = dev(dimgs), dev(dw), dev(db)
        local dscratch = dimgs and dama.empty({N * L, K}, {device = 'cuda'}) or nil
        expect(C.dama_nn_patch_embed_backward(c(dimgs), c(dw), c(db), c(g), c(col), c(w), c(scratch),
                                              N, Cn, H, W, p, D) == 0, last_error())
        expect(C.dama_nn_patch_embed_backward(c(ddimgs), c(ddw), c(ddb), c(dev(g)), c(dcol), c(dev(w)), c(dscratch),
                                              N, Cn, H, W, p, D) == 0, last_error())
        if dimgs then check(what .. ' dimgs', ddimgs, dimgs, 1e-5) end
        if dw then check(what .. ' dweight', ddw, dw, 1e-5) end
        if db then check(what .. ' dbias', ddb, db, 1e-5) end
      end
    end
  end
  print(string.format('  worst normwise error %.3g', worst_seen.f32 or 0))
end)

test('patch_embed: bad arguments give the CPU messages', function()
  need_gpu()
  worst_seen = {}
  local function both(what, N, Cn, H, W, p, D, no_scratch)
    local function run(d)
      local L = math.max(1, math.floor(H / p) * math.floor(W / p))
      local o = dama.empty({N, L, D}, {device = d})
      local col = dama.empty({N, Cn, H, W}, {device = d})
      local im = dama.empty({N, Cn, H, W}, {device = d})
      local w = dama.empty({D, Cn, p, p}, {device = d})
      local s1 = C.dama_nn_patch_embed_forward(c(o), c(col), c(im), c(w), nil, N, Cn, H, W, p, D)
      local m1 = last_error()
      local scratch = col
      if no_scratch then scratch = nil end
      local s2 = C.dama_nn_patch_embed_backward(c(im), nil, nil, c(o), c(col), c(w), c(scratch), N, Cn, H, W, p, D)
      return s1, m1, s2, last_error()
    end
    local a1, b1, c1, d1 = run('cpu')
    local a2, b2, c2, d2 = run('cuda')
    if not no_scratch then same_error(what .. ' (forward)', a1, b1, a2, b2) end
    same_error(what .. ' (backward)', c1, d1, c2, d2)
  end
  both('H not a multiple of p', 1, 1, 6, 8, 4, 3)
  both('dimgs needs scratch', 1, 1, 8, 8, 4, 3, true)
end)

-- ---------------------------------------------------------------- CUDA graphs

-- The DAMA step is replayed as a CUDA graph: the GEMM ops must queue the same work under stream capture (cuBLASLt
-- calls and kernels on the device's stream, scratch from the graph's pool, no host wait) and a replay must give the
-- eager bits, also after new inputs are copied in.
test('the GEMM ops are capture-safe: a CUDA graph replay gives the eager results bit for bit', function()
  need_gpu()
  pcall(ffi.cdef, [[
    typedef struct dama_cuda_graph dama_cuda_graph;
    dama_status dama_cuda_graph_begin(int32_t index, dama_cuda_graph **out);
    dama_status dama_cuda_graph_end(dama_cuda_graph *g, int ok);
    dama_status dama_cuda_graph_replay(dama_cuda_graph *g);
    void dama_cuda_graph_destroy(dama_cuda_graph *g);
  ]])
  local N, Cn, OC = 65, 33, 7
  local B, T, Cd, NH = 2, 13, 24, 3
  local Ni, Ci, H, W, p, D = 2, 3, 8, 8, 4, 5
  local L, K = (H / p) * (W / p), Ci * p * p
  local x, w, b, g = rnd({N, Cn}), rnd({OC, Cn}), rnd({OC}), rnd({N, OC})
  local qkv, ga = qkv_rand(B, T, Cd), rnd({B, T, Cd})
  local imgs, pw, pb, pg = rnd({Ni, Ci, H, W}), rnd({D, Ci, p, p}), rnd({D}), rnd({Ni, L, D})
  local dx0, dw0, db0 = rnd({N, Cn}), rnd({OC, Cn}), rnd({OC})
  local dq0, di0, dpw0, dpb0 = rnd({B, T, 3, Cd}), rnd({Ni, Ci, H, W}), rnd({D, Ci, p, p}), rnd({D})
  local inputs = {x = x:cuda(), w = w:cuda(), b = b:cuda(), g = g:cuda(), qkv = qkv:cuda(), ga = ga:cuda(),
                  imgs = imgs:cuda(), pw = pw:cuda(), pb = pb:cuda(), pg = pg:cuda()}
  local I = inputs
  local init = {dx = dx0, dw = dw0, db = db0, dq = dq0, di = di0, dpw = dpw0, dpb = dpb0}
  local function buffers()
    local o = {out = dama.empty({N, OC}, {device = 'cuda'}), aout = dama.empty({B, T, Cd}, {device = 'cuda'}),
               att = dama.empty({B, NH, T, T}, {device = 'cuda'}), pout = dama.empty({Ni, L, D}, {device = 'cuda'}),
               col = dama.empty({Ni * L, K}, {device = 'cuda'}), scratch = dama.empty({Ni * L, K}, {device = 'cuda'})}
    for k, v in pairs(init) do o[k] = v:cuda() end
    return o
  end
  local function ok0(st) if st ~= 0 then error(last_error(), 2) end end
  local function step(o)
    ok0(C.dama_nn_linear_forward(c(o.out), c(I.x), c(I.w), c(I.b), N, Cn, OC))
    ok0(C.dama_nn_linear_backward(c(o.dx), c(o.dw), c(o.db), c(I.g), c(I.x), c(I.w), N, Cn, OC))
    ok0(C.dama_nn_attention_forward(c(o.aout), c(o.att), c(I.qkv), B, T, Cd, NH, 0))
    ok0(C.dama_nn_attention_backward(c(o.dq), c(I.ga), c(I.qkv), c(o.att), B, T, Cd, NH, 0))
    ok0(C.dama_nn_patch_embed_forward(c(o.pout), c(o.col), c(I.imgs), c(I.pw), c(I.pb), Ni, Ci, H, W, p, D))
    ok0(C.dama_nn_patch_embed_backward(c(o.di), c(o.dpw), c(o.dpb), c(I.pg), c(o.col), c(I.pw), c(o.scratch),
                                       Ni, Ci, H, W, p, D))
  end
  local names = {'out', 'dx', 'dw', 'db', 'aout', 'att', 'dq', 'pout', 'col', 'di', 'dpw', 'dpb'}
  local function compare(eager, graphed, what)
    for _, k in ipairs(names) do
      local e = nerr(graphed[k], eager[k])
      expect(e == 0, string.format('%s: %s differs from the eager run (normwise %.3g)', what, k, e))
    end
  end
  local eager = buffers()
  step(eager)
  local o = buffers()
  local box = ffi.new('dama_cuda_graph*[1]')
  expect(C.dama_cuda_graph_begin(0, box) == 0, 'begin: ' .. last_error())
  local ok, err = pcall(step, o)
  local st = C.dama_cuda_graph_end(box[0], ok and 1 or 0)
  local h = ffi.gc(box[0], C.dama_cuda_graph_destroy)
  expect(ok, 'the capture: ' .. tostring(err))
  expect(st == 0, 'end: ' .. last_error())
  expect(nerr(o.dw, dw0) == 0, 'the capture ran nothing (dweight untouched until the replay)')
  expect(C.dama_cuda_graph_replay(h) == 0, 'replay: ' .. last_error())
  compare(eager, o, 'first replay')
  -- new inputs copied in, the accumulating buffers reset: the replay follows them
  local x2, qkv2, imgs2 = rnd({N, Cn}), qkv_rand(B, T, Cd), rnd({Ni, Ci, H, W})
  I.x:copy_(x2); I.qkv:copy_(qkv2); I.imgs:copy_(imgs2)
  for k, v in pairs(init) do o[k]:copy_(v) end
  expect(C.dama_cuda_graph_replay(h) == 0, 'replay: ' .. last_error())
  local eager2 = buffers()
  step(eager2)
  compare(eager2, o, 'replay after new inputs')
  expect(nerr(eager2.out, eager.out) > 0, 'the new inputs changed the result')
end)
