-- GPU-only (ctest label `gpu`): the CUDA backend's memory half on a real device through Lua: properties, bit-exact
-- round trips, pinned memory with non_blocking copies and events, the caching allocator's reuse and empty_cache,
-- out of memory that names requested/free/total bytes and leaves the process usable, the element-wise ops, and one
-- kernel of this build. Without a device every case prints SKIPPED with the reason.
-- None of this has run on a GPU yet: it was written and checked for its skip path on a machine without one.
local dama = require 'dama'
local ffi = dama.ffi

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

local function bits_equal(a, b)
  a, b = a:cpu():contiguous(), b:cpu():contiguous()
  if a.dtype ~= b.dtype or table.concat(a:size(), ',') ~= table.concat(b:size(), ',') then return false end
  return a:ne(b):sum():item() == 0
end

test('the device: name, memory and compute capability', function()
  need_gpu()
  local p = dama.cuda.get_device_properties(0)
  print(string.format('  cuda:0 = %s, %.1f GiB, sm_%d%d, %d SMs; %s', p.name, p.total_memory / 2^30, p.major, p.minor,
                      p.multi_processor_count, dama.cuda.info()))
  expect(#p.name > 0 and p.total_memory > 0 and p.major >= 1 and p.multi_processor_count > 0, 'properties')
  expect_eq(dama.cuda.get_device_name(), p.name)
  local s = dama.cuda.memory_stats()
  expect(s.total == p.total_memory or s.total > 0, 'cudaMemGetInfo total')
  expect(s.free > 0 and s.free <= s.total, 'cudaMemGetInfo free')
end)

test('a kernel of this build runs on the device', function()
  need_gpu()
  pcall(ffi.cdef, 'dama_status dama_cuda_selftest(int32_t index, uint32_t n, uint32_t seed);')
  for _, n in ipairs{1, 255, 256, 1000003} do
    local st = dama.C.dama_cuda_selftest(0, n, 12345)
    expect(st == 0, 'selftest ' .. n .. ': ' .. ffi.string(dama.C.dama_last_error()))
  end
end)

test('round trips to the device and back are bit-exact for every dtype', function()
  need_gpu()
  dama.manual_seed(3)
  for _, dt in ipairs{'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'} do
    local h = (dama.rand(37, 53, {device = 'cpu'}) * 200):to(dt)
    local d = h:cuda()
    expect_eq(d.device, 'cuda:0')
    expect_eq(d.dtype, dt)
    expect(bits_equal(d:cpu(), h), dt .. ' h2d + d2h')
    expect(bits_equal(d:clone():cpu(), h), dt .. ' d2d (clone)')
    expect(bits_equal(h:t():cuda():cpu(), h:t():contiguous()), dt .. ' from a non-contiguous source')
  end
  local big = dama.rand(3 * 1024 * 1024, {device = 'cpu'})   -- 12 MiB: the large pool
  expect(bits_equal(big:cuda():cpu(), big), 'a 12 MiB round trip')
  local z = dama.empty({0}, {device = 'cuda'})
  expect_eq(z:cpu():numel(), 0)
  dama.cuda.synchronize()
end)

test('pinned memory, non_blocking copies and an event', function()
  need_gpu()
  local x = dama.arange(2 ^ 20, {device = 'cpu'}):float()
  local p = x:pin_memory('cuda')
  expect(p:is_pinned() and p.device == 'cpu', 'pinned host memory')
  local d = p:to{device = 'cuda', non_blocking = true}
  dama.Event('cuda'):record():wait()
  p:fill_(-1)
  expect(bits_equal(d:cpu(), x), 'after the event the device holds the copied values')
  local q = dama.empty_pinned({4, 5}, {dtype = 'i64', device = 'cuda'})
  expect(q:is_pinned(), 'empty_pinned for cuda')
  q:free(); p:free()
end)

test('the caching allocator reuses a freed block and empty_cache gives segments back', function()
  need_gpu()
  collectgarbage(); collectgarbage()
  dama.cuda.empty_cache()
  local s0 = dama.cuda.memory_stats()
  local a = dama.empty({1000}, {device = 'cuda'})
  local s1 = dama.cuda.memory_stats()
  expect_eq(s1.allocated - s0.allocated, 4000, 'tensor bytes')
  expect_eq(s1.allocator_allocated - s0.allocator_allocated, 4096, 'rounded to 512-byte granules')
  expect(s1.reserved >= s0.reserved + 2 * 2^20 or s1.cache_hits > s0.cache_hits, 'a 2 MiB small-pool segment')
  local ptr = ffi.cast('uintptr_t', a._c.storage.data)
  a:free()
  local b = dama.empty({1000}, {device = 'cuda'})
  local s2 = dama.cuda.memory_stats()
  expect(ffi.cast('uintptr_t', b._c.storage.data) == ptr, 'the same block again')
  expect_eq(s2.raw_allocs, s1.raw_allocs, 'no cudaMalloc for it')
  expect_eq(s2.cache_hits, s1.cache_hits + 1, 'a cache hit')
  b:free()
  dama.cuda.empty_cache()
  local s3 = dama.cuda.memory_stats()
  expect(s3.reserved <= s0.reserved, 'empty_cache returned the segment')
  expect(s3.raw_frees > s2.raw_frees or s0.reserved > 0, 'cudaFree was called')
end)

test('out of memory names the requested, free and total bytes, and the device stays usable', function()
  need_gpu()
  local total = dama.cuda.memory_stats().total
  local n = 2 ^ math.ceil(math.log(total * 4) / math.log(2))   -- a power of two over four times the device
  local err = expect_error(function() return dama.empty({n}, {dtype = 'u8', device = 'cuda'}) end,
                           'out of memory allocating ' .. string.format('%d', n) .. ' bytes')
  expect(err:find('bytes free of ' .. string.format('%d', total), 1, true), err)
  local s = dama.cuda.memory_stats()
  expect(s.ooms >= 1 and s.oom_retries >= 1, 'the allocator emptied its cache and retried before failing')
  local ok = dama.arange(10, {device = 'cpu'}):float():cuda():cpu()
  expect_eq(ok:sum():item(), 45)
end)

test('element-wise ops and strided copies run on the device (tests/cuda/test_ops_tensor.lua: all against the CPU)', function()
  need_gpu()
  local d = dama.arange(6, {device = 'cpu'}):float():cuda()
  if (dama.cuda.info() or ''):find('fake CUDA runtime', 1, true) then
    -- the fake runtime's table has no kernels: every op is refused by name
    expect_error(function() return dama.zeros(2, {device = 'cuda'}) end, 'fill_: not implemented on cuda:0 yet')
    expect_error(function() return d + d end, 'not implemented on cuda:0 yet')
    expect_error(function() return d:view(2, 3):t():contiguous() end, 'copy: not implemented on cuda:0 yet')
    expect_error(function() return d:float():to('f64') end, 'copy: not implemented on cuda:0 yet')
  else
    expect_eq(dama.zeros(2, {device = 'cuda'}):cpu():totable(), {0, 0}, 'fill_')
    expect_eq((d + d):cpu():totable(), {0, 2, 4, 6, 8, 10}, 'add')
    expect_eq(d:view(2, 3):t():contiguous():cpu():totable(), {{0, 3}, {1, 4}, {2, 5}}, 'a strided copy')
    expect_eq(d:float():to('f64'):cpu():totable(), {0, 1, 2, 3, 4, 5}, 'a dtype conversion')
  end
  expect_eq(d:view(2, 3):cpu():sum():item(), 15, 'views and copies still work')
end)
