-- The RNG fills on cuda against the CPU (cuda/ops_reduce.c, cuda/kernels/philox.cuh): Philox4x32-10 with the CPU's
-- counter layout and transforms (runtime/core/dama_math.h, shared with runtime/cpu/rng.c), so after the same seed
-- `dama.rand(n, {device = 'cuda'}):cpu()` is the CPU's `dama.rand(n)` byte for byte, for every dtype and size, and
-- the generator advances alike. On the interpreter (dama_interp) every fill is compared bit for bit. On a GPU,
-- normal_ uses CUDA's log and cos (documented at 1 and 2 ulp) where the CPU uses glibc's: its f64 values are compared
-- within 2e-15 relative there (a few ulp: the count of differing elements is printed), every other fill bit for bit.
-- Interpreter: interp.ops_rng; GPU: gpu.ops_rng. Without a device every case prints SKIPPED with the reason.
local dama = require 'dama'
local ffi = dama.ffi

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

local function interpreted() return dama.cuda.info():find('interpreter', 1, true) ~= nil end

-- t:randint_(lo, hi) (Lua has dama.randint for new tensors only)
local function randint_(t, lo, hi)
  if dama.C.dama_randint_(t._c, lo, hi, nil) ~= 0 then error(ffi.string(dama.C.dama_last_error()), 2) end
  return t
end

local SIZE = {f32 = 4, f64 = 8, bf16 = 2, f16 = 2, u8 = 1, u16 = 2, i32 = 4, i64 = 8}
local FLOATS = {'f32', 'f64', 'bf16', 'f16'}
local ALL = {'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'}
local SIZES = {1, 2, 3, 4, 5, 7, 33, 257, 1001, 4099}

-- the bytes of a tensor's values (its storage from element 0 on, for a contiguous CPU copy)
local function bytes(t)
  t = t:cpu():contiguous()
  local n = t:numel() * SIZE[t.dtype]
  return n == 0 and '' or ffi.string(dama.C.dama_data_ptr(t._c), n)
end

-- how many elements of two f64 tensors differ, and the largest relative difference
local function f64_diff(a, b)
  a, b = a:cpu():contiguous(), b:cpu():contiguous()
  local pa = ffi.cast('const double *', dama.C.dama_data_ptr(a._c))
  local pb = ffi.cast('const double *', dama.C.dama_data_ptr(b._c))
  local n, worst = 0, 0
  for i = 0, a:numel() - 1 do
    if pa[i] ~= pb[i] then
      n = n + 1
      local e = math.abs(pa[i] - pb[i]) / math.abs(pb[i])
      if not (e <= worst) then worst = e end
    end
  end
  return n, worst
end

-- the same fill after the same seed on both devices: the values' bytes and the generator's state agree
local function check_fill(what, seed, make)
  dama.manual_seed(seed)
  local want = make('cpu')
  local state_cpu = dama.rng_state()
  dama.manual_seed(seed)
  local got = make('cuda')
  local state_cuda = dama.rng_state()
  expect_eq(got.device, 'cuda:0', what .. ': device')
  expect_eq(got.dtype, want.dtype, what .. ': dtype')
  expect_eq(table.concat(got:size(), ','), table.concat(want:size(), ','), what .. ': shape')
  expect(state_cuda.offset == state_cpu.offset, what .. ': the generator advanced by ' ..
         tostring(state_cuda.offset) .. ', the CPU by ' .. tostring(state_cpu.offset))
  if bytes(got) == bytes(want) then return 0 end
  local normal_f64_on_gpu = what:find('normal', 1, true) and want.dtype == 'f64' and not interpreted()
  expect(normal_f64_on_gpu, what .. ': the values differ from the CPU\'s')
  local n, worst = f64_diff(got, want)
  expect(worst <= 2e-15, string.format('%s: %d values differ, by up to %.3g relative', what, n, worst))
  return n
end

test('rand, randn, uniform_ and normal_ give the CPU\'s bytes for every float dtype and size', function()
  need_gpu()
  local cases, differ = 0, 0
  for _, seed in ipairs{0, 7, 2 ^ 33 + 5} do
    for _, n in ipairs(SIZES) do
      for _, dt in ipairs(FLOATS) do
        local tag = string.format('n=%d %s seed %d', n, dt, seed)
        differ = differ + check_fill('rand ' .. tag, seed, function(dev) return dama.rand(n, {dtype = dt, device = dev}) end)
        differ = differ + check_fill('randn ' .. tag, seed, function(dev) return dama.randn(n, {dtype = dt, device = dev}) end)
        differ = differ + check_fill('uniform_ ' .. tag, seed, function(dev)
          return dama.empty({n}, {dtype = dt, device = dev}):uniform_(-3, 5.5)
        end)
        differ = differ + check_fill('normal_ ' .. tag, seed, function(dev)
          return dama.empty({n}, {dtype = dt, device = dev}):normal_(2, 0.25)
        end)
        cases = cases + 4
      end
    end
  end
  print(string.format('  %d fills compared, %d f64 normal values off by an ulp (GPU only; 0 on the interpreter)',
                      cases, differ))
end)

test('randint gives the CPU\'s bytes for every dtype, range and size', function()
  need_gpu()
  local cases = 0
  for _, n in ipairs{1, 2, 3, 5, 33, 257, 1001} do
    for _, dt in ipairs(ALL) do
      for _, r in ipairs{{0, 2}, {-5, 1000}, {3, 4}, {-2 ^ 40, 2 ^ 40}} do
        if not (dt == 'u8' or dt == 'u16') or r[1] >= 0 then
          check_fill(string.format('randint [%d, %d) n=%d %s', r[1], r[2], n, dt), n * 31 + 3, function(dev)
            return randint_(dama.empty({n}, {dtype = dt, device = dev}), r[1], r[2])
          end)
          cases = cases + 1
        end
      end
    end
    check_fill('dama.randint n=' .. n, 99, function(dev)
      dama.set_default_device(dev)
      local ok, t = pcall(dama.randint, -9, 9, {n, 3})
      dama.set_default_device('cpu')
      assert(ok, t)
      return t
    end)
  end
  print(string.format('  %d randint fills compared', cases))
end)

test('multi-dimensional and strided targets: views, slices with a step, expanded dims', function()
  need_gpu()
  for _, dt in ipairs{'f32', 'f64', 'bf16', 'i32'} do
    local fill = dt == 'i32' and function(t) return randint_(t, -100, 100) end
                 or function(t) return t:uniform_(-1, 2) end
    local views = {
      {'a 3-d tensor', function(b) return b end},
      {'transposed', function(b) return b:transpose(0, 2) end},
      {'a slice with a step', function(b) return b:slice(2, 1, 9, 3) end},
      {'a selected row', function(b) return b:select(1, 2) end},
      {'contiguous at an odd offset (no 16-byte stores)', function(b) return b:view(-1):narrow(0, 3, 201) end},
      {'an expanded dim (the last element along it is kept, as the CPU\'s copy leaves it)', function(b)
        return b:narrow(1, 3, 1):expand(5, 4, 9)
      end},
    }
    for _, v in ipairs(views) do
      local what = dt .. ' ' .. v[1]
      local base_cpu = dama.zeros({5, 7, 9}, {dtype = dt, device = 'cpu'})
      local base_cuda = base_cpu:cuda()
      dama.manual_seed(1234)
      fill(v[2](base_cpu))
      local s1 = dama.rng_state()
      dama.manual_seed(1234)
      fill(v[2](base_cuda))
      local s2 = dama.rng_state()
      expect(s1.offset == s2.offset, what .. ': the generator state')
      expect(bytes(base_cuda) == bytes(base_cpu), what .. ': the storage differs from the CPU\'s')
    end
  end
end)

test('the generator advances as on the CPU: fills on either device continue one stream', function()
  need_gpu()
  local function sequence(devs)
    dama.manual_seed(42)
    local out = {}
    for i, dev in ipairs(devs) do
      local n = ({5, 6, 1, 33, 2, 7})[i]
      out[#out + 1] = bytes(dama.rand(n, {device = dev}))
      out[#out + 1] = bytes(dama.randn(n, {device = dev, dtype = 'f32'}))
      out[#out + 1] = bytes(randint_(dama.empty({n}, {dtype = 'i64', device = dev}), 0, 10))
    end
    out[#out + 1] = tostring(dama.rng_state().offset)
    return table.concat(out, '|')
  end
  local cpu = sequence{'cpu', 'cpu', 'cpu', 'cpu', 'cpu', 'cpu'}
  expect(sequence{'cuda', 'cuda', 'cuda', 'cuda', 'cuda', 'cuda'} == cpu, 'all on cuda')
  expect(sequence{'cuda', 'cpu', 'cuda', 'cpu', 'cpu', 'cuda'} == cpu, 'alternating devices')
  -- an explicit generator state (set_rng_state) is honoured too
  dama.set_rng_state{seed = 5, offset = 1000}
  local a = bytes(dama.rand(9, {device = 'cuda'}))
  dama.set_rng_state{seed = 5, offset = 1000}
  expect(a == bytes(dama.rand(9, {device = 'cpu'})), 'seed 5 at offset 1000')
end)

test('empty fills do nothing and leave the generator where it was', function()
  need_gpu()
  dama.manual_seed(3)
  local t = dama.empty({0}, {device = 'cuda'}):uniform_()
  local t2 = dama.empty({4, 0}, {device = 'cuda'}):normal_()
  expect_eq(t:numel() + t2:numel(), 0)
  expect(dama.rng_state().offset == 0, 'offset still 0')
end)

test('bad arguments give the CPU\'s errors', function()
  need_gpu()
  local function same_error(what, f)
    local ok1, e1 = pcall(f, 'cpu')
    local ok2, e2 = pcall(f, 'cuda')
    expect(not ok1 and not ok2, what .. ': both refuse')
    expect_eq(tostring(e2), tostring(e1), what)
  end
  same_error('uniform_ of an int tensor', function(dev) return dama.empty({3}, {dtype = 'i32', device = dev}):uniform_() end)
  same_error('normal_ of a u8 tensor', function(dev) return dama.empty({3}, {dtype = 'u8', device = dev}):normal_() end)
  same_error('uniform_ with lo > hi', function(dev) return dama.empty({3}, {device = dev}):uniform_(2, 1) end)
  same_error('uniform_ with a NaN bound', function(dev) return dama.empty({3}, {device = dev}):uniform_(0 / 0, 1) end)
  same_error('normal_ with std < 0', function(dev) return dama.empty({3}, {device = dev}):normal_(0, -1) end)
  same_error('randint with low >= high', function(dev) return randint_(dama.empty({3}, {dtype = 'i64', device = dev}), 5, 5) end)
end)
