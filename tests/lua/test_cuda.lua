-- dama.cuda in whatever build and machine runs it: a CPU-only build, a CUDA build without a GPU or a driver (this
-- machine, CI), or a CUDA build on a GPU node (where the no-device checks skip; tests/cuda/test_gpu.lua covers it).
-- ctest also runs this file as cuda.nogpu in a CUDA build with CUDA_VISIBLE_DEVICES=-1 and
-- DAMA_TEST_EXPECT_NO_CUDA_DEVICE=1, so the no-device path is checked on a GPU node too.
local dama = require 'dama'

local DAMA = os.getenv('DAMA_BIN') or './build/dama'
local expect_none = os.getenv('DAMA_TEST_EXPECT_NO_CUDA_DEVICE') == '1'

local function no_device_here()
  if dama.cuda.available() then
    if expect_none then error('CUDA_VISIBLE_DEVICES=-1 should hide every device, yet ' ..
                              dama.cuda.device_count() .. ' are visible') end
    skip('a CUDA device is present here (' .. dama.cuda.get_device_name() .. '): tests/cuda/test_gpu.lua covers it')
  end
end

test('dama.cuda answers the same questions in every build', function()
  expect_eq(type(dama.cuda.is_built()), 'boolean')
  local n = dama.cuda.device_count()
  expect(type(n) == 'number' and n >= 0, 'a device count')
  expect_eq(dama.device_count('cuda'), n)
  expect_eq(dama.cuda.available(), n > 0)
  expect_eq(dama.cuda_available(), n > 0)
  expect_eq(type(dama.cuda.info()), 'string')
  if expect_none then expect(dama.cuda.is_built(), 'cuda.nogpu runs only in a CUDA build') end
end)

test('without a CUDA device: available() is false, the count 0, and asking for one names why', function()
  no_device_here()
  expect_eq(dama.cuda.device_count(), 0)
  expect(not dama.cuda.available() and not dama.cuda_available(), 'not available')
  local why = dama.cuda.unavailable_reason()
  expect(type(why) == 'string' and #why > 0, 'a reason')
  local err = expect_error(function() return dama.zeros(2, {device = 'cuda'}) end, 'device cuda:0 is not available')
  if dama.cuda.is_built() then
    expect(err:find('(0 cuda devices: ' .. why .. ')', 1, true), err)
    -- the reason is the driver's: no driver, a driver too old, or cudaGetDeviceCount's words
    expect(why:find('no NVIDIA driver', 1, true) or why:find('cudaGetDeviceCount', 1, true) or
           why:find('older than', 1, true), why)
  else
    expect(err:find('this build has no CUDA backend', 1, true), err)
  end
  expect_error(function() return dama.randn(3):cuda() end, 'device cuda:0 is not available')
  expect_error(function() return dama.randn(3):to('cuda:1') end, 'device cuda:1 is not available')
  expect_error(function() return dama.cuda.get_device_name() end, 'device cuda:0 is not available')
  expect_error(function() return dama.cuda.get_device_properties(0) end, 'not available')
  expect_error(function() dama.cuda.synchronize() end, 'not available')
  expect_error(function() return dama.cuda.memory_stats() end, 'not available')
  expect_error(function() return dama.empty_pinned({4}, {device = 'cuda'}) end, 'not available')
  expect_error(function() return dama.Event('cuda') end, 'not available')
  expect_error(function() return dama.cuda.get_device_name(-1) end, 'expected a device index')
  dama.cuda.empty_cache()   -- nothing to give back, no error (as torch.cuda.empty_cache)
end)

test('cpu and sim work runs as usual next to an absent CUDA device', function()
  no_device_here()
  dama.manual_seed(7)
  local m = dama.nn.MAE{img = 16, patch = 8, chans = 3, dim = 16, depth = 1, heads = 2, dec_dim = 16, dec_depth = 1,
                        dec_heads = 2}
  local x = dama.rand(2, 3, 16, 16, {device = 'cpu'})
  local mask = dama.mask.random(2, m.num_patches, 0.5)
  local pred = m(x, mask)
  local loss = (pred * pred):mean()
  loss:backward()
  expect(loss.device == 'cpu' and loss:item() == loss:item(), 'a finite cpu loss')
  local s = dama.arange(6, {device = 'sim'}):float():mul(2):sum():item()
  expect_eq(s, 30)
end)

test('dama --version says whether CUDA is built in and what it found', function()
  local f = io.popen(string.format("'%s' --version 2>&1", DAMA))
  local out = f:read('*a')
  f:close()
  expect(out:match('^dama %d+%.%d+%.%d+ %(LuaJIT'), out)
  if dama.cuda.is_built() then
    expect(out:find('\nCUDA %d+%.%d+ built in %(code for sm_'), out)
    if not dama.cuda.available() then
      expect(out:find(': 0 devices: ' .. dama.cuda.unavailable_reason(), 1, true), out)
    else
      expect(out:find(dama.cuda.device_count() .. ' device', 1, true), out)
    end
  else
    expect(out:find('\nCUDA: not built in', 1, true), out)
  end
end)

test('the cpu and sim devices keep their names and counts in a CUDA build', function()
  expect_eq(dama.device('cpu'), 'cpu')
  expect_eq(dama.device_count('sim'), 1)
  expect(dama.cuda.unavailable_reason() == nil or not dama.cuda.available(), 'a reason only without a device')
end)
