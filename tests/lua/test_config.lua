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

test('choice and positive options refuse bad values, naming the key and what it accepts', function()
  local function mk()
    return dama.config{mask2 = 'adaptive', blr = 1.5e-4, choices = {mask2 = {'adaptive', 'random'}}, positive = {'blr'}}
  end
  expect_eq(mk():override{'mask2=random'}.mask2, 'random')
  expect_error(function() mk():override{'mask2=bogus'} end, "mask2 must be one of 'adaptive', 'random', got 'bogus'")
  expect_error(function() mk():override{'blr=-1'} end, "blr must be a number > 0, got '-1'")
  local c = mk()
  c.mask2 = function() end                        -- a Lua strategy is always accepted
  expect_eq(type(c.mask2), 'function')
  expect_error(function() dama.config{a = 1, choices = {b = {1}}} end, "choices for unknown option 'b'")
end)
