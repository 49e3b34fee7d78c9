-- DAMA end to end: one full step against the PyTorch reference (both adaptive modes), exact resume,
-- and a short run whose loss goes down.
local dama = require 'dama'
local R = dofile('recipes/dama.lua')

local FIX = 'tests/reference/fixtures/'

local function small_cfg(mode)
  return {arch = 'custom', img = 32, patch = 8, chans = 7, dim = 64, depth = 3, heads = 4, dec_dim = 32,
          dec_depth = 2, dec_heads = 4, mask = 0.75, overlap = 0.5, K = 2, beta = 2, alpha = 1,
          setting = 'student1-student2', feature_loss = true, mask2 = 'adaptive', adaptive_mode = mode,
          stable_epoch = 0}
end

-- max |a - b| / max |b| over the tensor (robust for gradients with many near-zero entries)
local function rel_err(a, b)
  local scale = math.max(b:double():abs():amax():item(), 1e-12)
  return (a:double() - b:double()):abs():amax():item() / scale
end

-- The paper's L = 64 (img 64, patch 8, mask 0.8 -> K = 12), small widths (make_fixtures.py L64)
local function l64_cfg(mode)
  local c = small_cfg(mode)
  c.img, c.chans, c.dim, c.depth, c.heads, c.dec_dim, c.dec_depth, c.dec_heads, c.mask = 64, 3, 32, 2, 2, 16, 1, 2, 0.8
  return c
end

local cases = {
  {name = 'per_sample', file = 'dama_step_per_sample', cfg = small_cfg('per_sample'), n = 152},
  {name = 'union', file = 'dama_step_union', cfg = small_cfg('union'), n = 152},
  -- loss_beta = 0: the reference's feature loss is then a summed MSE (SmoothL1 with beta 0 would be L1)
  {name = 'beta 0 (summed MSE)', file = 'dama_step_beta0', cfg = (function()
    local c = small_cfg('per_sample'); c.beta = 0; return c end)(), n = 152},
  {name = 'union at L = 64', file = 'dama_step_L64_union', cfg = l64_cfg('union'), n = 104},
}

for _, case in ipairs(cases) do
  test('one DAMA step matches the PyTorch reference: ' .. case.name, function()
    local ts = dama.checkpoint.load_tensors(FIX .. case.file .. '.safetensors')
    local cfg = case.cfg
    local model = dama.models.dama(cfg)
    local sd = {}
    for name, t in pairs(ts) do
      if name:match('^base_encoder%.') or name:match('^momentum_encoder%.') or name:match('^projs_head%.') then
        sd[name] = t
      end
    end
    model:load_state_dict(sd, true)
    model:zero_grad()
    local total, parts, st = R.step(model, ts.x, cfg, nil, ts.noise1)
    expect_close(parts.recon1:item(), ts.loss_recon1:item(), 1e-5, 'recon1')
    expect_close(parts.recon2:item(), ts.loss_recon2:item(), 1e-5, 'recon2')
    expect_close(parts.feature:item(), ts.loss_info:item(), 1e-5, 'feature')
    expect_close(total:item(), ts.loss_total:item(), 1e-5, 'total')
    expect_eq(st.m2.mask:totable(), ts.m2:totable(), 'branch-2 mask')
    expect_eq(st.m2.ids_shuffle:totable(), ts.ids_shuffle2:totable(), 'ids_shuffle2')
    total:backward()
    local worst, worst_name, n = 0, '', 0
    for _, e in ipairs(model:named_parameters()) do
      local name, p = e[1], e[2]
      local ref = ts['grad.' .. name]
      if p.requires_grad then
        expect(ref ~= nil, 'the fixture has no gradient for ' .. name)
        local err = rel_err(p.grad, ref)
        if err > worst then worst, worst_name = err, name end
        n = n + 1
      end
    end
    expect_eq(n, case.n, 'trainable parameters compared')
    expect(worst < 1e-4, string.format('worst gradient %s: relative error %.3g', worst_name, worst))
  end)
end

local function run_tiny(out, extra)
  local args = {'preset=tiny', 'out=' .. out}
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local cfg = R.config({}, args)
  local saved = io.output()
  io.output('/dev/null')
  local ok, res = pcall(function()
    local print0 = print
    print = function() end
    local r = R.run(cfg)
    print = print0
    return r
  end)
  io.output(saved)
  if not ok then error(res, 0) end
  return res
end

local function losses(path)
  local r = {}
  for line in io.lines(path) do r[#r + 1] = line:match('"total":([%d%.eE%-]+)') end
  return r
end

test('exact resume: an interrupted and resumed run gives the same losses', function()
  local base = os.tmpname(); os.remove(base)
  local _print = print
  local ok, err = pcall(function()
    run_tiny(base .. '_a')
    run_tiny(base .. '_b', {'max_steps=5'})
    run_tiny(base .. '_b', {'resume=true'})
  end)
  print = _print
  expect(ok, err)
  local a, b = losses(base .. '_a/metrics.jsonl'), losses(base .. '_b/metrics.jsonl')
  expect_eq(#a, 16)
  expect_eq(b, a)
  os.execute('rm -rf ' .. base .. '_a ' .. base .. '_b')
end)

test('a short run lowers the reconstruction loss', function()
  local base = os.tmpname(); os.remove(base)
  local _print = print
  local ok, err = pcall(run_tiny, base, {'epochs=6', 'n_samples=128', 'blr=3e-3'})
  print = _print
  expect(ok, err)
  local recon = {}
  for line in io.lines(base .. '/metrics.jsonl') do recon[#recon + 1] = tonumber(line:match('"recon1":([%d%.eE%-]+)')) end
  local function mean(i, j) local s = 0 for k = i, j do s = s + recon[k] end return s / (j - i + 1) end
  local first, last = mean(1, 8), mean(#recon - 7, #recon)
  expect(last < first * 0.95, string.format('recon1 %.4f -> %.4f', first, last))
  expect(io.open(base .. '/loss.png') ~= nil, 'loss curve written')
  os.execute('rm -rf ' .. base)
end)

test('recipe errors are clear', function()
  expect_error(function() R.config({}, {'mask=0.3', 'preset=tiny'}) ; R.step(dama.models.dama(R.config({}, {'preset=tiny', 'mask=0.3'})),
    dama.rand(2, 7, 32, 32), R.config({}, {'preset=tiny', 'mask=0.3'})) end, 'ratio')
  expect_error(function() dama.models.dama{arch = 'custom', img = 32, patch = 8, chans = 7, dim = 32, depth = 2,
    heads = 2, dec_dim = 32, dec_depth = 1, dec_heads = 2, setting = 'teacher'} end, "setting must be")
end)
