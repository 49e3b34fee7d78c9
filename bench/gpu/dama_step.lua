-- bench/gpu/dama_step.lua: time dama's own DAMA pretraining step (recipes/dama.lua's R.step: two MAEs + head,
-- random and adaptive masks, both norm-pix losses and the feature loss; backward; AdamW) on one device.
-- A benchmark, not a test: the PyTorch side is bench/gpu/torch_dama_bench.py, tools/gpu-check.sh runs both.
--
--   dama bench/gpu/dama_step.lua [device=cuda] [config=vitb|tiny] [batch=N] [steps=20] [warmup=3]
--                                [time_cap=120] [threads=0] [json=out.json] [precision=fp32|bf16|fp16] [graph=0|1]
--
-- config=vitb: recipes/dama.lua's defaults, i.e. the paper's Table 6 step (ViT-B/16, decoder 512 x 8, batch 512,
-- 128 x 128 x 7, mask 0.8, overlap 0.5, per-sample adaptive mask, K = 6, beta = 2); tiny: the recipe's 'tiny'
-- preset (seconds on a CPU, to rehearse the script). The optimizer is train.lua's: AdamW (0.9, 0.95), weight decay
-- 0.05 on param_groups_weight_decay, lr = blr * batch / 256. Inputs: one fixed batch of U[0, 1) images made on
-- the device (the loader is timed by loader_bench.lua). A step is zero_grad + R.step + backward + AdamW; each timed
-- step ends with a device synchronisation, and samples/s = batch * steps / the sum of the step times.
-- precision= (recipes/dama.lua's, default fp32) sets the device's GEMM precision as train.lua does
-- (dama.amp.set_precision; bf16/fp16 run on cuda only), and fp16 steps through dama.amp.GradScaler (scale the loss,
-- unscale, skip on overflow, update). graph=1 captures zero_grad + forward + losses + backward once as a CUDA graph
-- (dama.cuda.graph, after one eager step) and replays it every step, the update staying eager, as train.lua's
-- cuda_graph=true does; a failed capture is reported as not run.
--
-- If anything fails (no such device, or an op with no kernel on it yet: "<op>: not implemented on cuda:0 yet"),
-- the script prints "result impl=dama status=not_run reason=<error>", writes the same to json=, and exits 0:
-- the benchmark ran, the step did not.
local dama = require 'dama'
local ffi = require 'ffi'

local opt = {device = nil, config = 'vitb', batch = nil, steps = 20, warmup = 3, time_cap = 120, threads = 0,
             json = nil, precision = nil, seed = 0, graph = 0}
for _, a in ipairs(arg or {}) do
  local k, v = a:match('^([%w_]+)=(.*)$')
  if not k or opt[k] == nil and not ({device = 1, batch = 1, json = 1, precision = 1})[k] then
    error('dama_step: arguments are key=value with key one of device, config, batch, steps, warmup, time_cap, ' ..
          'threads, json, precision, graph, seed; got ' .. tostring(a), 0)
  end
  opt[k] = tonumber(v) or v
end

pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } ds_timespec; int clock_gettime(int, ds_timespec *);')
local tv = ffi.new('ds_timespec')
local function now() ffi.C.clock_gettime(1, tv) return tonumber(tv.tv_sec) + tonumber(tv.tv_nsec) * 1e-9 end

local here = (arg and arg[0] or 'bench/gpu/dama_step.lua'):match('^(.*)/[^/]*$') or '.'
local root = here .. '/../..'
local R = dofile(root .. '/recipes/dama.lua')

local result = {impl = 'dama', config = opt.config, device = opt.device or 'default', status = 'not run',
                precision = opt.precision or 'fp32', graph = opt.graph == 1}

local function write_json()
  if not opt.json then return end
  local f = assert(io.open(opt.json, 'w'))
  f:write(dama.json.encode(result), '\n')
  f:close()
end

-- GEMM FLOPs of the step, the same formula as bench/gpu/torch_dama_bench.py step_flops (see there).
local function step_flops(c)
  local N, p, C, D, E, d, e = c.batch, c.patch, c.chans, c.dim, c.depth, c.dec_dim, c.dec_depth
  local L = (c.img / p) ^ 2
  local K = dama.mask.visible_count and dama.mask.visible_count(L, c.mask) or math.floor(L * (1 - c.mask))
  local P = p * p * C
  local function block(T, w) return 24 * N * T * w * w + 4 * N * T * T * w end
  local patch = 2 * N * L * P * D
  local rest = E * block(1 + K, D) + 2 * N * (1 + K) * D * d + e * block(1 + L, d) + 2 * N * (1 + L) * d * P
  local head = 2 * N * (1 + K) * (D * 2 * D + 2 * D * D)
  return 2 * (3 * rest + 2 * patch) + 3 * head, L, K
end

local function run()
  if opt.threads > 0 then dama.set_num_threads(opt.threads) end
  local overrides, args = {}, {}
  if opt.config == 'tiny' then
    args[#args + 1] = 'preset=tiny'
  elseif opt.config ~= 'vitb' then
    error("dama_step: config must be 'vitb' or 'tiny', got '" .. tostring(opt.config) .. "'", 0)
  end
  if opt.batch then args[#args + 1] = 'batch=' .. opt.batch end
  if opt.device then args[#args + 1] = 'device=' .. opt.device end
  if opt.precision then args[#args + 1] = 'precision=' .. opt.precision end
  local cfg = R.config(overrides, args)
  result.precision = cfg.precision or 'fp32'
  local dev = R.device(cfg)                       -- the default device from here on (as R.run does)
  result.device = tostring(dev)
  local devname = tostring(dev)
  local on_cuda = devname:match('^cuda') ~= nil
  if on_cuda then result.gpu = dama.cuda.get_device_name(tonumber(devname:match(':(%d+)')) or 0) end
  -- the architecture's shape, for the FLOP count
  local o = dama.models.mae_options(cfg)
  local shape = {batch = cfg.batch, img = cfg.img, patch = cfg.patch, chans = cfg.chans, mask = cfg.mask,
                 dim = o.dim, depth = o.depth, dec_dim = o.dec_dim, dec_depth = o.dec_depth}
  local flops, L, K = step_flops(shape)
  result.shape, result.flops_per_step, result.L, result.K = shape, flops, L, K
  print(string.format('dama_step: %s on %s, batch %d, %d x %d x %d, dim %d x %d, decoder %d x %d, L %d, K %d, ' ..
    '%.4g GFLOP per step', opt.config, devname, cfg.batch, cfg.chans, cfg.img, cfg.img, o.dim, o.depth, o.dec_dim,
    o.dec_depth, L, K, flops / 1e9))
  io.flush()

  dama.manual_seed(opt.seed)
  local model = dama.models.dama(cfg)
  local groups = dama.optim.param_groups_weight_decay(model, cfg.wd)
  local optim = dama.optim.AdamW(groups, {lr = cfg.blr * cfg.batch / 256, betas = cfg.betas, weight_decay = cfg.wd})
  if dama.amp then dama.amp.set_precision(result.precision, dev) end    -- as train.lua does
  local scaler = result.precision == 'fp16' and dama.amp.GradScaler() or nil
  local x = dama.rand(cfg.batch, cfg.chans, cfg.img, cfg.img)
  local ctx = {epoch = 0}
  local function sync() dama.synchronize(dev) end
  local function forward_backward()
    optim:zero_grad()
    local total = R.step(model, x, cfg, ctx)
    if scaler then scaler:scale(total):backward() else total:backward() end
    return total
  end
  local function update()
    if scaler then scaler:step(optim); scaler:update() else optim:step() end
  end
  local function step()
    local total = forward_backward()
    update()
    return total
  end

  local t0 = now()
  local total = step()                           -- eager first: lazy set-up (handles, workspaces) happens here
  if opt.graph == 1 then
    if not on_cuda then error('graph=1: CUDA graphs need a cuda device, this is ' .. devname, 0) end
    sync()
    local ok, g = pcall(dama.cuda.graph, function() return forward_backward():detach() end)
    if not ok then error('graph=1: the capture failed: ' .. tostring(g), 0) end
    result.graph_nodes = g:info().nodes
    step = function()
      g:replay()
      update()
      return g.outputs[1]
    end
  end
  for _ = 2, math.max(1, opt.warmup) do total = step() end
  sync()
  result.warmup_s = now() - t0
  result.loss_first = total:item()
  dama.reset_peak_memory()
  local times, sum = {}, 0
  local deadline = t0 + opt.time_cap
  for i = 1, opt.steps do
    local s = now()
    total = step()
    sync()
    times[i] = now() - s
    sum = sum + times[i]
    if now() > deadline then break end
  end
  result.loss_last = total:item()
  table.sort(times)
  result.steps = #times
  result.total_s = sum
  result.samples_per_s = cfg.batch * #times / sum
  result.step_ms_median = 1e3 * times[math.floor((#times + 1) / 2)]
  result.step_ms_min = 1e3 * times[1]
  result.tflops = flops * #times / sum / 1e12
  result.peak_mem_bytes = dama.memory_stats(dev).peak
  result.status = 'ok'
end

local ok, err = xpcall(run, function(e) return tostring(e) end)
if not ok then
  result.status = 'not run'
  result.reason = (err:gsub('%s+', ' '))
  print('result impl=dama status=not_run reason=' .. result.reason)
else
  print(string.format('result impl=dama config=%s device=%s precision=%s graph=%s samples_per_s=%.2f step_ms=%.2f ' ..
    'tflops=%.4g peak_mem_gib=%.2f steps=%d loss=%.4f->%.4f', opt.config, result.device, result.precision,
    tostring(result.graph),
    result.samples_per_s, result.step_ms_median, result.tflops, result.peak_mem_bytes / 2 ^ 30, result.steps,
    result.loss_first, result.loss_last))
end
write_json()
