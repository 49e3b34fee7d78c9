-- Mixed precision on cuda (dama.amp.set_precision): under bf16/fp16 every FP32 GEMM (linear, attention, patch
-- embedding, matmul) runs on operands rounded to BF16/FP16 with FP32 accumulation and FP32 outputs. Checked against
-- the CPU computing in FP32 on inputs rounded the same way (so the cast really happened: FP32 inputs would differ by
-- ~1e-3), and a DAMA step in bf16 against the same step in fp32. Interpreter build and (label gpu) a real device.
local dama = require 'dama'
local amp = dama.amp

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

local function rel_err(a, b)
  a, b = a:cpu():double(), b:cpu():double()
  return (a - b):abs():amax():item() / math.max(b:abs():amax():item(), 1e-30)
end

local function rounded(t, p) return t:to(p == 'bf16' and 'bf16' or 'f16'):float() end

local function with_precision(p, fn)
  amp.set_precision(p, 'cuda')
  local ok, err = pcall(fn)
  amp.set_precision('fp32', 'cuda')
  if not ok then error(err, 0) end
end

test('linear under bf16 and fp16: the GEMM of the rounded operands, FP32 accumulation and output', function()
  need_gpu()
  dama.manual_seed(11)
  for _, p in ipairs{'bf16', 'fp16'} do
    for _, sz in ipairs{{N = 7, C = 33, OC = 5}, {N = 65, C = 130, OC = 48}} do
      local x = dama.randn(sz.N, sz.C, {device = 'cpu'})
      local w = dama.randn(sz.OC, sz.C, {device = 'cpu'}) * 0.2
      local b = dama.randn(sz.OC, {device = 'cpu'})
      local want = rounded(x, p):matmul(rounded(w, p):t()) + b
      local fp32 = x:matmul(w:t()) + b
      local got
      with_precision(p, function()
        expect_eq(amp.get_precision(), p)
        got = dama.nn.functional.linear(x:cuda(), w:cuda(), b:cuda())
      end)
      expect_eq(got.dtype, 'f32')
      local e, e32 = rel_err(got, want), rel_err(got, fp32)
      expect(e < 1e-5, string.format('%s %dx%dx%d: %.3g from the rounded-operand GEMM', p, sz.N, sz.C, sz.OC, e))
      expect(e32 > 1e-5, string.format('%s: the result equals the FP32 GEMM (%.3g): no cast happened', p, e32))
    end
  end
  expect_eq(amp.get_precision(), 'fp32')
end)

test('the backward GEMMs are cast too, and fp32 stays exact FP32', function()
  need_gpu()
  dama.manual_seed(12)
  local x = dama.randn(9, 40, {device = 'cpu'})
  local w = dama.randn(24, 40, {device = 'cpu'}) * 0.2
  local g = dama.randn(9, 24, {device = 'cpu'})
  local function grads(dev, p)
    local xd, wd = x:to(dev), w:to(dev)
    xd.requires_grad, wd.requires_grad = true, true
    local y
    if p then with_precision(p, function() y = dama.nn.functional.linear(xd, wd); (y * g:to(dev)):sum():backward() end)
    else y = dama.nn.functional.linear(xd, wd); (y * g:to(dev)):sum():backward() end
    return xd.grad, wd.grad
  end
  local dx, dw = grads('cuda', 'bf16')
  local want_dx = rounded(g, 'bf16'):matmul(rounded(w, 'bf16'))
  local want_dw = rounded(g, 'bf16'):t():matmul(rounded(x, 'bf16'))
  expect(rel_err(dx, want_dx) < 1e-5, 'dinp: ' .. rel_err(dx, want_dx))
  expect(rel_err(dw, want_dw) < 1e-5, 'dweight: ' .. rel_err(dw, want_dw))
  local dx32, dw32 = grads('cuda', nil)
  local cx, cw = grads('cpu', nil)
  expect(rel_err(dx32, cx) < 1e-5 and rel_err(dw32, cw) < 1e-5, 'fp32 on cuda is the CPU FP32 result')
end)

test('a DAMA step in bf16 and fp16 stays within 1e-2 of the fp32 step', function()
  need_gpu()
  local R = dofile('recipes/dama.lua')
  local cfg = {arch = 'custom', img = 32, patch = 8, chans = 3, dim = 32, depth = 2, heads = 2, dec_dim = 32,
               dec_depth = 1, dec_heads = 2, mask = 0.75, overlap = 0.5, K = 1, beta = 2, alpha = 1,
               setting = 'student1-student2', feature_loss = true, mask2 = 'adaptive', adaptive_mode = 'per_sample',
               stable_epoch = 0}
  dama.set_default_device('cuda')
  local ok, err = pcall(function()
    dama.manual_seed(4)
    local model = dama.models.dama(cfg)
    local x = dama.randn(4, 3, 32, 32)
    local noise = dama.rand(4, 16)
    local base = R.step(model, x, cfg, nil, noise):item()
    for _, p in ipairs{'bf16', 'fp16'} do
      with_precision(p, function()
        local v = R.step(model, x, cfg, nil, noise):item()
        expect(math.abs(v - base) <= 1e-2 * math.abs(base), string.format('%s: %.6g vs fp32 %.6g', p, v, base))
        expect(v ~= base, p .. ': the same loss as fp32 to the last bit: no cast happened')
      end)
    end
  end)
  dama.set_default_device('cpu')
  if not ok then error(err, 0) end
end)
