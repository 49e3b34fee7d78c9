-- help(f): signature and doc text of dama functions, classes, modules and methods; every public function has
-- doc text (a function added without one fails here, naming it).
local dama = require 'dama'
local help = require 'dama.help'

local function expect_match(s, pat)
  expect(type(s) == 'string' and s:find(pat) ~= nil, string.format('%q does not match %q', tostring(s), pat))
end

local function text(x)
  local s, err = help.text(x)
  expect(s ~= nil, tostring(err))
  return s
end

test('every public function, class and method of the dama modules has doc text', function()
  local missing, n = {}, 0
  for _, e in ipairs(help.public_api()) do
    n = n + 1
    if not help.has_doc(e.value, e.name) then missing[#missing + 1] = e.name end
  end
  expect(n > 300, 'the public API listed ' .. n .. ' names')
  expect(#missing == 0, #missing .. ' without doc text: ' .. table.concat(missing, ', '))
end)

test('help text of a sample of functions: signature and doc', function()
  expect_match(text(dama.zeros), '^dama%.zeros%(d0, d1, %.%.%.%[, dtype%]%)\n  a tensor of zeros')
  expect_match(text(dama.randn(2).sum), '^x:sum%(%[dims%[, keepdim%]%]%)\n  the sum over dims')
  expect_match(text('Tensor:view'), '^x:view%(d0, d1, %.%.%.%)')
  expect_match(text(dama.nn.functional.mse_loss), "^dama%.nn%.functional%.mse_loss%(pred, target, reduction%)\n  reduction: 'mean'")
  expect_match(text(dama.mask.random), '^dama%.mask%.random%(N, L, ratio, noise%)\n  random%(N, L, ratio%[, noise%]%)')
  expect_match(text(dama.optim.AdamW), '^dama%.optim%.AdamW%(')
  expect_match(text(dama.schedule.warmup_cosine), 'warmup_cosine{lr =')
  expect_match(text(dama.checkpoint.save), '^dama%.checkpoint%.save%(')
  expect_match(text(dama.data.read_lines), 'the lines of a text file')
  expect_match(text(dama.loss.feature), 'SmoothL1')
  expect_match(text(dama.train.train), 'the training loop')
  expect_match(text(dama.eval.linear_probe), '^dama%.eval%.linear_probe%(')
  expect_match(text(dama.plot.lines), '^dama%.plot%.lines%(')
end)

test('help of classes, instances, inherited methods and modules', function()
  local lin = text(dama.nn.Linear)
  expect_match(lin, '^dama%.nn%.Linear%(in_features, out_features, bias%)    %(class%)\n  Linear%(in, out')
  expect_match(lin, 'Linear:forward')
  expect_match(lin, 'help%(dama%.nn%.Module%)')
  local m = dama.nn.Linear(2, 3)
  expect_match(text(m), '^dama%.nn%.Linear%(')                       -- an instance: its class
  expect_match(text(m.state_dict), 'state_dict')                    -- inherited from Module
  expect_match(text(dama.nn.Linear.forward), '^Linear:forward%(x%)\n  the computation of the module')   -- the parent's doc
  local mod = text(dama.mask)
  expect_match(mod, '^dama%.mask\n  dama%.mask: which patches')
  expect_match(mod, '\n  dama%.mask%.adaptive +adaptive%(m1')
  expect_match(text('dama.nn'), 'dama%.nn%.Linear')
end)

test('help() lists the modules; unknown names and non-functions are named', function()
  local s = help.text()
  for _, name in ipairs{'dama ', 'dama.Tensor', 'dama.nn ', 'dama.nn.functional', 'dama.mask', 'dama.loss',
                        'dama.optim', 'dama.schedule', 'dama.data', 'dama.checkpoint', 'dama.train', 'dama.eval',
                        'dama.plot'} do
    expect(s:find('\n  ' .. name, 1, true), 'help() lists ' .. name)
  end
  local t, err = help.text('dama.nope')
  expect(t == nil and err:find("no dama function, module or method named 'dama.nope'", 1, true), tostring(err))
  t, err = help.text(42)
  expect(t == nil and err:find('a number, not a function', 1, true), tostring(err))
end)
