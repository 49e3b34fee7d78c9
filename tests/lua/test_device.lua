-- Devices: the backend seam seen from Lua. The `sim` test device runs the CPU kernels over memory host code cannot
-- read, so every check here that passes on sim is one a GPU backend must pass too; numbers on sim equal cpu's.
local dama = require 'dama'
local R = dofile('recipes/dama.lua')

local DAMA = os.getenv('DAMA_BIN') or './build/dama'   -- ctest sets DAMA_BIN to the binary under test

local function bits_equal(a, b)
  a, b = a:cpu():contiguous(), b:cpu():contiguous()
  if a.dtype ~= b.dtype or table.concat(a:size(), ',') ~= table.concat(b:size(), ',') then return false end
  return a:ne(b):sum():item() == 0
end

test('device names: parse, canonical form, unknown and absent devices named', function()
  expect_eq(dama.device('cpu'), 'cpu')
  expect_eq(dama.device('sim'), 'sim:0')
  expect_eq(dama.device_count('sim'), 1)
  expect_eq(dama.device_count('cpu'), 1)
  expect_error(function() dama.device('gpu') end, "expected 'cpu', 'cuda', 'cuda:N' or 'sim', got 'gpu'")
  expect_error(function() dama.device('sim:3') end, 'device sim:3 is not available %(1 sim device%)')
  if not dama.cuda_available() then
    expect_error(function() dama.zeros(2, {device = 'cuda'}) end, 'cuda:0 is not available')
  end
end)

test('creation on a device; to / cpu round trips are bit-exact for every dtype', function()
  dama.manual_seed(4)
  for _, dt in ipairs{'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'} do
    local h = (dama.rand(3, 5, {device = 'cpu'}) * 200):to(dt)
    local d = h:to('sim')
    expect_eq(d.device, 'sim:0')
    expect_eq(d.dtype, dt)
    expect(bits_equal(d:cpu(), h), dt .. ' round trip')
    expect(bits_equal(h:t():to('sim'), h:t()), dt .. ' non-contiguous source')
  end
  expect_eq(dama.arange(5, {device = 'sim'}):cpu():totable(), {0, 1, 2, 3, 4})
  expect_eq(dama.linspace(0, 1, 3, {device = 'sim'}):cpu():totable(), {0, 0.5, 1})
  expect_eq(dama.tensor({{1, 2}, {3, 4}}, {device = 'sim'}).device, 'sim:0')
  expect_eq(dama.full({2}, 7, {dtype = 'i64', device = 'sim'}):totable(), {7, 7})
  local p = dama.randperm(6, {device = 'sim'})
  expect_eq(p.device, 'sim:0')
  expect_eq(p:sort():totable(), {0, 1, 2, 3, 4, 5})
  local t = dama.randn(2, 3, {device = 'sim'})
  expect_eq(dama.zeros_like(t).device, 'sim:0')
  expect_eq(t:new_zeros({4}, 'i64').device, 'sim:0')
  expect(t:to('sim') == t, 'to() its own device returns the tensor itself')
end)

test('host code cannot read sim memory: data() refuses it, a raw dereference faults', function()
  local t = dama.ones(4, {device = 'sim'})
  expect_error(function() return t:data() end, 'data: the tensor is on sim:0, whose memory host code cannot read')
  expect_eq(dama.C.dama_data_ptr(t._c), nil)
  expect(dama.ffi.string(dama.C.dama_last_error()):find('sim:0', 1, true), 'dama_data_ptr names the device')
  -- reading the storage pointer directly, as a careless FFI loop would, kills the process (it is not a host address)
  local code = "local t = dama.ones(4, {device = 'sim'}); local p = dama.ffi.cast('float*', t._c.storage.data); " ..
               "io.write(p[0])"
  local ok, how, rc = os.execute(string.format("'%s' -e %q >/dev/null 2>&1", DAMA, code))
  expect(not (ok == true or ok == 0), string.format('the dereference must fault (got %s %s %s)', tostring(ok),
    tostring(how), tostring(rc)))
end)

test('ops keep to one device: mixing names both; outputs stay on the inputs device', function()
  local a, b = dama.ones(3, {device = 'sim'}), dama.ones(3, {device = 'cpu'})   -- named: any default device
  expect_error(function() return a + b end, "add: tensor 'b' is on cpu but tensor 'a' is on sim:0")
  expect_error(function() return dama.cat({a, b}) end, 'cat: tensor 1 is on cpu but tensor 0 is on sim:0')
  expect_error(function() return dama.nn.F.linear(a:view(1, 3), dama.ones(2, 3, {device = 'cpu'})) end,
    "linear_forward: tensor 'weight' is on cpu but tensor 'out' is on sim:0")
  expect_eq((a * 2):sum().device, 'sim:0')
  expect_eq(a:matmul(a).device, 'sim:0')
  expect_eq(a:sort().device, 'sim:0')
  -- copy_ across devices is allowed (like torch)
  local c = dama.zeros(3, {device = 'sim'})
  c:copy_(dama.tensor({1, 2, 3}, {device = 'cpu'}))
  expect_eq(c:totable(), {1, 2, 3})
end)

test('device reads are counted: item, totable and printing read once each', function()
  local t = dama.randn(50, 50, {device = 'sim'})
  dama.reset_device_reads()
  local s = (t * t):sum()
  expect_eq(dama.device_reads(), 0, 'math on the device reads nothing')
  s:item()
  expect_eq(dama.device_reads(), 1)
  t:totable()
  expect_eq(dama.device_reads(), 2)
  local _ = tostring(t)
  expect_eq(dama.device_reads(), 3, 'printing copies once, not once per element')
end)

test('Module:to moves parameters, buffers and grads; the arena is rebuilt on the device', function()
  dama.manual_seed(0)
  local vit = dama.nn.ViT{img = 16, patch = 8, chans = 3, dim = 16, depth = 1, heads = 2}
  vit:build_arena()
  vit:to('sim')
  for _, e in ipairs(vit:named_parameters()) do expect_eq(e[2].device, 'sim:0', e[1]) end
  for _, e in ipairs(vit:named_buffers()) do expect_eq(e[2].device, 'sim:0', e[1]) end
  expect(vit:has_arena(), 'arena rebuilt')
  expect_eq(vit.arena.device, 'sim:0')
  local x = dama.randn(2, 3, 16, 16, {device = 'sim'})
  local y = vit(x)
  expect_eq(y.device, 'sim:0')
  y:sum():backward()
  local e = vit:named_parameters()[1]
  expect_eq(e[2].grad.device, 'sim:0')
end)

-- One DAMA step, its gradients and one AdamW update on cpu and on sim from the same seed: bit-identical.
local function dama_step_on(device)
  local cfg = {arch = 'custom', img = 16, patch = 8, chans = 3, dim = 16, depth = 2, heads = 2, dec_dim = 16,
               dec_depth = 1, dec_heads = 2, mask = 0.5, overlap = 0.5, K = 1, beta = 2, alpha = 1,
               setting = 'student1-student2', feature_loss = true, mask2 = 'adaptive', adaptive_mode = 'per_sample',
               stable_epoch = 0}
  local saved = dama.get_default_device()
  dama.set_default_device(device)
  dama.manual_seed(7)
  local model = dama.models.dama(cfg)
  local x = dama.rand(4, 3, 16, 16)
  local opt = dama.optim.AdamW(model:trainable_parameters(), {lr = 1e-3, weight_decay = 0.05})
  model:zero_grad()
  local total, parts = R.step(model, x, cfg, nil)
  total:backward()
  local norm = dama.optim.clip_grad_norm(model:trainable_parameters(), 1.0)
  opt:step()
  dama.set_default_device(saved)
  return model, total, parts, norm
end

test('a DAMA step, its gradients and an AdamW step are bit-identical on cpu and sim', function()
  local m1, t1, p1 = dama_step_on('cpu')
  local m2, t2, p2 = dama_step_on('sim')
  expect_eq(t2.device, 'sim:0')
  expect_eq(t1:item(), t2:item(), 'total loss')
  for k, v in pairs(p1) do expect_eq(v:item(), p2[k]:item(), k) end
  local n2 = m2:named_parameters()
  for i, e in ipairs(m1:named_parameters()) do
    expect_eq(n2[i][2].device, 'sim:0', e[1])
    expect(bits_equal(e[2], n2[i][2]), 'parameter after the step: ' .. e[1])
    if e[2].grad then expect(bits_equal(e[2].grad, n2[i][2].grad), 'gradient: ' .. e[1]) end
  end
end)

test('grad clipping on a device reads nothing and scales like the host', function()
  local g_host = dama.tensor({3, 4, 0}, {device = 'cpu'})
  local g_dev = g_host:to('sim')
  local p_host, p_dev = dama.zeros(3, {device = 'cpu'}), dama.zeros(3, {device = 'sim'})
  p_host.requires_grad, p_dev.requires_grad = true, true
  p_host.grad, p_dev.grad = g_host, g_dev
  dama.reset_device_reads()
  local n_dev = dama.optim.clip_grad_norm({p_dev}, 1)
  expect_eq(dama.device_reads(), 0, 'no host read while clipping')
  local n_host = dama.optim.clip_grad_norm({p_host}, 1)
  expect_close(n_dev:item(), n_host, 1e-12)
  expect_close(g_dev:totable(), g_host:totable(), 1e-7)
end)

test('pinned memory and non_blocking copies: sim really copies late, an event makes it safe to rewrite', function()
  local x = dama.arange(10, {device = 'cpu'}):float()
  expect(not x:is_pinned(), 'an ordinary host tensor is not pinned')
  local p = x:pin_memory('sim')
  expect(p:is_pinned() and p.device == 'cpu', 'pin_memory gives a pinned host tensor')
  expect(p:pin_memory('sim') == p, 'pinning a pinned tensor is a no-op')
  expect(bits_equal(p, x), 'pin_memory copies the values')
  expect(not x:pin_memory('cpu'):is_pinned(), 'the cpu offers no pinned memory: ordinary host memory')
  expect_error(function() x:to('sim'):pin_memory() end, 'pin_memory: expected a host tensor, got one on sim:0')
  -- a late copy: rewriting the source before waiting on an event recorded after the copy sends the new bytes
  local late = p:to{device = 'sim', non_blocking = true}
  p:fill_(1)
  expect_eq(late:cpu():sum():item(), 10, 'the copy ran after the rewrite (as a GPU copy may)')
  -- the rule: record after the copy, wait before rewriting
  p:copy_(x)
  local ok = p:to{device = 'sim', non_blocking = true}
  local ev = dama.Event('sim'):record()
  ev:wait()
  p:fill_(1)
  expect_eq(ok:cpu():sum():item(), 45, 'waited on the event: the device holds the values of the copy')
  -- a kernel on the device orders after the copies issued before it
  p:copy_(x)
  local k = p:to{device = 'sim', non_blocking = true}:mul(2)
  p:fill_(0)
  expect_eq(k:cpu():sum():item(), 90, 'a kernel issued after the copy saw its bytes')
  -- non_blocking from ordinary memory, or to the cpu, is an ordinary copy
  local plain = x:to{device = 'sim', non_blocking = true}
  x:fill_(0)
  expect_eq(plain:cpu():sum():item(), 45)
  expect(dama.empty_pinned({2, 3}, {dtype = 'i64', device = 'sim'}):is_pinned())
end)

test('memory per device: allocated and peak follow tensor storage; the live-bytes counter needs no call', function()
  collectgarbage(); collectgarbage()
  local live = dama.C.dama_memory_live_bytes()
  local before, sim0, cpu0 = tonumber(live[0]), dama.memory_stats('sim'), dama.memory_stats('cpu')
  local t = dama.zeros(1000, {device = 'sim'})   -- f32
  local sim1 = dama.memory_stats('sim')
  expect_eq(sim1.allocated - sim0.allocated, 4000, 'sim bytes held')
  expect(sim1.peak >= sim1.allocated, 'peak >= allocated')
  expect_eq(tonumber(live[0]) - before, 4000, 'the all-device counter moved with it')
  local h = dama.empty_pinned({250}, {device = 'sim'})
  expect_eq(dama.memory_stats('cpu').allocated - cpu0.allocated, 1000, 'pinned host memory is cpu memory')
  expect_eq(tonumber(live[0]) - before, 5000, 'pinned host memory counts too')
  t:free(); h:free()
  expect_eq(tonumber(live[0]), before, 'freed storage leaves the counter')
  local c = dama.memory_stats('cpu')
  expect(c.total > 0 and c.free > 0 and c.free <= c.total, 'cpu total/free from the system')
  expect_eq(c.cached, 0)
  dama.empty_cache('sim'); dama.empty_cache('cpu')
  expect_error(function() dama.memory_stats('sim:2') end, 'sim:2 is not available')
end)

test('the loader stages device batches in pinned memory and gives the cpu loader\'s batches', function()
  local cfg = R.config({}, {'preset=tiny', 'workers=1'})
  local function batches(dev)
    cfg.device = dev
    local L = dama.data.cells(cfg)
    L.device = dev
    local xs, ys = {}, {}
    -- take three batches before using any: with two staging slots, the third reuses the first slot, so its copy
    -- must have run first (the event wait); on sim a copy runs only when the device next works
    for i = 1, 3 do xs[i], ys[i] = L:next() end
    return xs, ys, L
  end
  local hx, hy = batches('cpu')
  local dx, dy, L = batches('sim')
  for i = 1, 3 do
    expect_eq(dx[i].device, 'sim:0')
    expect(bits_equal(dx[i], hx[i]) and bits_equal(dy[i], hy[i]), 'batch ' .. i .. ' equals the host loader\'s')
  end
  expect(L._stages[1].x:is_pinned() and L._stages[2].y:is_pinned(), 'staging buffers are pinned')
end)

test('a training step on a device reads the host at most once per log line', function()
  local out = os.tmpname(); os.remove(out)
  local cfg = R.config({out = out}, {'preset=tiny', 'device=sim', 'log_every=4', 'epochs=2', 'ckpt_every=0',
                                     'grid_every=0'})
  R.device(cfg)
  dama.manual_seed(cfg.seed)
  dama.train.prepare_out(cfg)
  local loader = dama.data.cells(cfg)
  local model = dama.models.dama(cfg)
  local reads = {}
  local saved = dama.get_default_device()
  dama.reset_device_reads()
  dama.train(cfg, loader, model, function(x, ctx) return R.step(model, x, cfg, ctx) end, {
    after_step = function(ctx) reads[#reads + 1] = dama.device_reads() end,
  })
  dama.set_default_device(saved)
  -- reads made by the steps of the first epoch (8 batches): the count after each step, differenced; the loss read
  -- for the log line falls in the step after it (step 1 and 4 log, then 8 ends the epoch)
  local per_step = {}
  for i = 2, 8 do per_step[#per_step + 1] = reads[i] - reads[i - 1] end
  local total = reads[8] - reads[1]
  print('device reads per step (steps 2..8): ' .. table.concat(per_step, ' '))
  expect(total <= 2, 'device reads over steps 2..8 with log_every 4: ' .. total .. ' (' .. table.concat(per_step, ' ') .. ')')
  os.execute('rm -rf ' .. out)
end)

test('no raw pointer reaches a kernel from lua/dama or recipes outside documented host-only helpers', function()
  -- every :data() / dama_data_ptr use must say, on its line or the three before, that it works on host memory
  local root = os.getenv('DAMA_SOURCE_ROOT') or '.'
  local h = io.popen('cd ' .. root .. " && grep -rn ':data()\\|dama_data_ptr' lua/dama recipes --include=*.lua")
  local undocumented, n = {}, 0
  local cache = {}
  for line in h:lines() do
    local file, ln, text = line:match('^([^:]+):(%d+):(.*)$')
    ln = tonumber(ln)
    if file and not text:match('^%s*%-%-') and not text:match("data = 'x:data%(%)") then
      n = n + 1
      if not cache[file] then
        cache[file] = {}
        for l in io.lines(root .. '/' .. file) do cache[file][#cache[file] + 1] = l end
      end
      local ok = false
      for k = math.max(1, ln - 3), ln do if cache[file][k]:lower():find('host', 1, true) then ok = true end end
      if not ok then undocumented[#undocumented + 1] = file .. ':' .. ln end
    end
  end
  h:close()
  expect(n > 0, 'the scan found the host-only helpers')
  expect(#undocumented == 0, 'raw pointers without a host-only note: ' .. table.concat(undocumented, ', '))
end)
