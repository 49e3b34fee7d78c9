-- dama.amp: the precision switch and the dynamic loss scaler (torch.cuda.amp.GradScaler's rules), on whatever
-- device the suite runs on; the scaler's arithmetic is device-independent (unscale by a power of two is exact).
local dama = require 'dama'
local amp = dama.amp

-- y = x W^T + b, loss = mean(y^2): a model small enough to compare parameters bit for bit
local function model(seed)
  dama.manual_seed(seed)
  local w = dama.randn(5, 7) * 0.3
  local b = dama.randn(5) * 0.1
  w.requires_grad, b.requires_grad = true, true
  return {w, b}
end

local function loss_of(p, x)
  local y = x:matmul(p[1]:t()) + p[2]
  return (y * y):mean()
end

local function bits_equal(a, b) return a:cpu():ne(b:cpu()):sum():item() == 0 end

test('precision: fp32 everywhere; bf16/fp16 only on a cuda device, with a clear error elsewhere', function()
  amp.set_precision('fp32', test_device)
  expect_eq(amp.get_precision(), 'fp32')
  if not tostring(test_device):match('^cuda') then
    expect_error(function() amp.set_precision('bf16', test_device) end, 'mixed precision runs on a cuda device')
    expect_error(function() amp.set_precision('fp16', 'cpu') end, 'precision=fp16')
  end
  expect_error(function() amp.set_precision('fp8', test_device) end, "expected one of fp32, bf16, fp16, got 'fp8'")
end)

test('a scaled backward and the scaler step give exactly the unscaled update', function()
  local x = dama.randn(9, 7)
  local p1, p2 = model(5), model(5)
  local o1 = dama.optim.AdamW({p1[1], p1[2]}, {lr = 1e-2, weight_decay = 0.05})
  local o2 = dama.optim.AdamW({p2[1], p2[2]}, {lr = 1e-2, weight_decay = 0.05})
  local scaler = amp.GradScaler({init_scale = 2 ^ 12})
  for _ = 1, 3 do
    o1:zero_grad(); o2:zero_grad()
    loss_of(p1, x):backward()
    o1:step()
    local l = loss_of(p2, x)
    scaler:scale(l):backward()
    expect(not bits_equal(p2[1].grad, p1[1].grad), 'the gradient is scaled before unscale_')
    expect_eq(scaler:step(o2), false, 'a finite step is not skipped')
    scaler:update()
    expect(bits_equal(p2[1].grad, p1[1].grad) and bits_equal(p2[2].grad, p1[2].grad), 'unscaled gradients')
  end
  expect(bits_equal(p1[1], p2[1]) and bits_equal(p1[2], p2[2]), 'the same parameters after three steps')
  expect_eq(scaler:get_scale(), 2 ^ 12)
end)

test('an overflowing gradient skips the step and halves the scale; finite steps grow it back', function()
  local x = dama.randn(4, 7)
  local p = model(8)
  local opt = dama.optim.SGD({p[1], p[2]}, {lr = 0.1})
  local scaler = amp.GradScaler({init_scale = 1024, growth_interval = 3})
  opt:zero_grad()
  scaler:scale(loss_of(p, x)):backward()
  local before = p[1]:clone()
  p[1].grad:narrow(0, 2, 1):fill_(math.huge)   -- an overflow in one row
  expect_eq(scaler:step(opt), true, 'the step is skipped')
  scaler:update()
  expect(bits_equal(p[1], before), 'the parameters are untouched')
  expect_eq(scaler:get_scale(), 512)
  expect_eq(scaler.skipped_steps, 1)
  p[2].grad:fill_(0 / 0)   -- NaN counts too
  scaler.unscaled = false
  expect_eq(scaler:step(opt), true)
  scaler:update()
  expect_eq(scaler:get_scale(), 256)
  for i = 1, 3 do
    opt:zero_grad()
    scaler:scale(loss_of(p, x)):backward()
    expect_eq(scaler:step(opt), false)
    scaler:update()
    expect_eq(scaler:get_scale(), i < 3 and 256 or 512, 'growth after growth_interval finite steps')
  end
end)

test('the scaler state round-trips (exact resume) and bad options are refused', function()
  local s = amp.GradScaler({init_scale = 8, growth_interval = 5})
  s.growth_tracker = 3; s.skipped_steps = 2
  local t = amp.GradScaler()
  t:load_state_dict(dama.json.decode(dama.json.encode(s:state_dict())))
  expect_eq(t:get_scale(), 8); expect_eq(t.growth_tracker, 3); expect_eq(t.growth_interval, 5)
  expect_eq(t.skipped_steps, 2)
  expect_error(function() t:load_state_dict({scale = -1}) end, 'positive number')
  expect_error(function() amp.GradScaler({backoff_factor = 2}) end, 'backoff_factor')
  local off = amp.GradScaler({enabled = false})
  expect_eq(off:get_scale(), 1.0)
end)
