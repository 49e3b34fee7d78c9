-- bench/gpu/loader_bench.lua: the input pipeline's throughput against the number of loader workers (issue 11:
-- "the input pipeline keeps the GPU fed"; at 40 % MFU the Table 6 step eats about 9,000 samples/s).
-- A benchmark, not a test; tools/gpu-check.sh runs it on the GPU machine's 16 cores.
--
--   dama bench/gpu/loader_bench.lua [workers=0,1,2,4,8,16] [devices=cpu,cuda] [n=2048] [batch=512] [seconds=2]
--                                   [prefetch=2] [json=out.json]
--
-- The data: n synthetic 100 x 100 x 7 uint16 crops (dama_synth_cell, the built-in generator) made once into an
-- in-memory array, the shape of the paper's Set III crops; the loader (dama.data.loader, the one the pretraining
-- recipes use) applies the reference's training augmentation (64 x 64 crop, x2 INTER_AREA, rotation, shift, flips,
-- ToTensor) to 128 x 128 x 7 f32 batches of `batch`, shuffled, in epochs over the array. workers=0 decodes in the
-- calling thread. Per device and worker count: one batch to start (thread start-up, not timed), then batches until
-- `seconds` have passed; samples/s of wall time and process CPU seconds per sample.
-- devices: cpu = batches stay in host memory; cuda = they are copied to the GPU as training does (pinned staging
-- ring, asynchronous copy, event), synchronised at the end. A device that fails says "not run: <error>".
local dama = require 'dama'
local ffi = require 'ffi'

local opt = {workers = '0,1,2,4,8,16', devices = 'cpu,cuda', n = 2048, batch = 512, seconds = 2, prefetch = 2,
             json = nil, seed = 0}
for _, a in ipairs(arg or {}) do
  local k, v = a:match('^([%w_]+)=(.*)$')
  if not k or (opt[k] == nil and k ~= 'json') then
    error('loader_bench: arguments are key=value (workers, devices, n, batch, seconds, prefetch, json, seed), got ' ..
          tostring(a), 0)
  end
  opt[k] = tonumber(v) or v
end
local function list(s)
  local r = {}
  for w in tostring(s):gmatch('[^,]+') do r[#r + 1] = tonumber(w) or w end
  return r
end

pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } lb_timespec; int clock_gettime(int, lb_timespec *);')
local tv = ffi.new('lb_timespec')
local function clock(id) ffi.C.clock_gettime(id, tv) return tonumber(tv.tv_sec) + tonumber(tv.tv_nsec) * 1e-9 end
local function wall() return clock(1) end
local function cpu() return clock(2) end

local out = {n = opt.n, batch = opt.batch, seconds = opt.seconds, prefetch = opt.prefetch, runs = {}}
local f = io.open('/proc/cpuinfo')
if f then
  local s = f:read('*a')
  f:close()
  out.cpus = select(2, s:gsub('\nprocessor', '')) + (s:match('^processor') and 1 or 0)
  out.cpu_model = s:match('model name%s*:%s*([^\n]+)')
end

-- the crops, once
local t0 = wall()
local crops = dama.empty({opt.n, 100, 100, 7}, {dtype = 'u16', device = 'cpu'})
local base = ffi.cast('uint16_t*', crops:data())
for i = 0, opt.n - 1 do
  local st = dama.C.dama_synth_cell(2024, i, 100, base + i * 70000, nil)
  if st ~= 0 then error('loader_bench: dama_synth_cell failed: ' .. ffi.string(dama.C.dama_last_error()), 0) end
end
out.gen_s = wall() - t0
print(string.format('loader_bench: %d crops 100x100x7 u16 made in %.2f s; batch %d, %.1f s per case, %s cpus (%s)',
  opt.n, out.gen_s, opt.batch, opt.seconds, tostring(out.cpus), tostring(out.cpu_model)))
io.flush()
local ds = dama.data.array(crops)

local function one(devname, w)
  local r = {device = devname, workers = w}
  local ok, err = xpcall(function()
    local L = dama.data.loader(ds, {batch = opt.batch, pipeline = 'train', out_size = 128, seed = opt.seed,
                                    workers = w, prefetch = opt.prefetch, device = devname, quiet = true})
    local x = L:next()                                          -- start-up: not timed
    if x == nil then x = L:next() end
    dama.synchronize(devname)
    local samples, w0, c0 = 0, wall(), cpu()
    repeat
      x = L:next()
      if x ~= nil then samples = samples + x:size(0) end
    until wall() - w0 >= opt.seconds
    dama.synchronize(devname)
    local dt, dc = wall() - w0, cpu() - c0
    r.samples, r.wall_s, r.cpu_s = samples, dt, dc
    r.samples_per_s = samples / dt
    r.cpu_ms_per_sample = 1e3 * dc / math.max(samples, 1)
    r.status = 'ok'
  end, function(e) return tostring(e) end)
  if not ok then r.status, r.reason = 'not run', (err:gsub('%s+', ' ')) end
  collectgarbage()
  return r
end

for _, devname in ipairs(list(opt.devices)) do
  for _, w in ipairs(list(opt.workers)) do
    local r = one(devname, w)
    out.runs[#out.runs + 1] = r
    if r.status == 'ok' then
      print(string.format('result impl=dama_loader device=%s workers=%d samples_per_s=%.0f cpu_ms_per_sample=%.3f ' ..
        'samples=%d wall_s=%.2f', devname, w, r.samples_per_s, r.cpu_ms_per_sample, r.samples, r.wall_s))
    else
      print(string.format('result impl=dama_loader device=%s workers=%d status=not_run reason=%s', devname, w,
        r.reason))
      io.flush()
      if devname ~= 'cpu' then break end                         -- the same failure for every worker count
    end
    io.flush()
  end
end
if opt.json then
  local fh = assert(io.open(opt.json, 'w'))
  fh:write(dama.json.encode(out), '\n')
  fh:close()
end
