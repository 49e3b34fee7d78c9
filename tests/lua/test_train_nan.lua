-- A NaN in the input data: the trainer stops at the first step with a message naming the step and the
-- non-finite losses. Runs in CI's ASan+UBSan pass too, where the attention softmax's exp (vexpf) once
-- shifted a negative value on NaN input and the sanitizer aborted before the trainer could report.
local dama = require 'dama'
local dffi = require 'dama.ffi'
local R = dofile('recipes/dama.lua')

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  os.execute("mkdir -p '" .. d .. "'")
  return d
end

test('a NaN in the input data stops training at step 0 with the non-finite losses named', function()
  local dir = tmpdir()
  dama.manual_seed(1)
  local x = dama.rand(16, 32, 32, 7)
  x[{3}] = 0 / 0                      -- every pixel of sample 3 (and so its batch) is NaN
  local npy = dir .. '/nan.npy'
  dffi.call(dffi.C.dama_npy_write, npy, x._c)
  local cfg = R.config({}, {'preset=tiny', 'out=' .. dir .. '/run', 'data=' .. npy, 'max_steps=3',
                            'n_samples=8'})
  local real_print = print
  print = function() end              -- the recipe's config table and model line
  local ok, err = pcall(R.run, cfg)
  print = real_print
  os.execute("rm -rf '" .. dir .. "'")
  expect(not ok, 'training on NaN data must fail')
  err = tostring(err)
  expect(err:find('non%-finite loss', 1) and err:find('epoch 0, step 0', 1, true) and err:find('nan', 1, true), err)
end)
