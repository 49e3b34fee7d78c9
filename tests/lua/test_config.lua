-- dama.config: typed key=value overrides and presets.
local dama = require 'dama'

local function make()
  return dama.config{epochs = 500, batch = 512, blr = 1.5e-4, betas = {0.9, 0.95}, amp = false, arch = 'vit_base',
                     optional = {'data'}, presets = {demo = {epochs = 3, arch = 'vit_tiny'}}}
end

test('defaults and typed overrides', function()
  local c = make():override{'epochs=10', 'blr=1e-3', 'betas=0.8,0.9', 'amp=true', 'data=/x/y', 'arch=vit_small'}
  expect_eq(c.epochs, 10); expect_eq(c.blr, 1e-3); expect_eq(c.betas, {0.8, 0.9}); expect_eq(c.amp, true)
  expect_eq(c.data, '/x/y'); expect_eq(c.arch, 'vit_small'); expect_eq(c.batch, 512)
  expect_eq(make().data, nil)
end)

test('preset applies before the other pairs', function()
  local c = make():override{'epochs=7', 'preset=demo'}
  expect_eq(c.epochs, 7); expect_eq(c.arch, 'vit_tiny'); expect_eq(c.preset, 'demo')
end)

test('bad input is named', function()
  expect_error(function() make():override{'epoch=3'} end, "unknown option 'epoch'")
  expect_error(function() make():override{'epochs=ten'} end, 'expects a number')
  expect_error(function() make():override{'betas=0.9'} end, '2 comma-separated')
  expect_error(function() make():override{'preset=nope'} end, 'presets: demo')
  expect_error(function() make():override{'justaword'} end, 'key=value')
end)
