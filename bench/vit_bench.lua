-- bench/vit_bench.lua: time dama training steps of the two issue-4 workloads (a benchmark, not a test).
--
--   dama bench/vit_bench.lua model=mae|vitb [threads=2] [steps=3] [warmup=1] [profile=1]
--
--   mae : ViT-S/16 MAE (img 128, 7 channels, dim 384 x 12 / 6 heads, decoder 512 x 8 / 16 heads),
--         mask ratio 0.8, batch 64, AdamW step included
--   vitb: ViT-B/16 encoder (img 128 -> 64 patches + cls = 65 tokens), batch 32, forward, loss = mean of
--         the final features squared, backward, AdamW step
--   tiny: the `preset=demo` MAE shape (img 32, patch 8, dim 96 x 4, decoder 64 x 2), batch 64
--   gemm: dama_sgemm alone on the workload's GEMM shapes (steps = repetitions), for the "GEMM peak"
--
-- Prints one line per timed step ("step <seconds>") and a summary line "result key=value ...": median
-- seconds per step, samples/s, the step's analytic GEMM FLOPs (the same formula as bench/vit_bench_torch.py:
-- every Linear / patch-embedding / attention product, x3 for forward + both backward products, x2 for the
-- patch embedding whose input needs no gradient), GFLOP/s and dama's peak tensor memory.
-- profile=1 prints per-op wall times of forward, loss, backward and optimizer phases.
local dama = require 'dama'
local ffi = require 'ffi'

local opt = {model = 'mae', threads = 2, steps = 3, warmup = 1, seed = 0}
for _, a in ipairs(arg or {}) do
  local k, v = a:match('^([%w_]+)=(.*)$')
  if not k then error('vit_bench: arguments are key=value, got ' .. a, 0) end
  opt[k] = tonumber(v) or v
end

pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } vb_timespec; int clock_gettime(int, vb_timespec *);')
local tv = ffi.new('vb_timespec')
local function now() ffi.C.clock_gettime(1, tv) return tonumber(tv.tv_sec) + tonumber(tv.tv_nsec) * 1e-9 end
-- process CPU time (all threads): under a loaded machine, work done rather than time waited
local function cpu() ffi.C.clock_gettime(2, tv) return tonumber(tv.tv_sec) + tonumber(tv.tv_nsec) * 1e-9 end

dama.set_num_threads(opt.threads)
dama.manual_seed(opt.seed)

-- GEMM FLOPs of one forward through a pre-norm block on M = B*T tokens of width D (mlp 4D) + attention.
local function block_flops(B, T, D, H)
  local M = B * T
  local lin = 2 * M * (D * 3 * D + D * D + 2 * D * 4 * D)
  local att = 2 * 2 * B * T * T * D       -- q k^T and att v over all heads (H * hd = D)
  return lin, att
end

-- model=gemm: the GEMM rate on this workload's shapes through dama_sgemm (the "measured GEMM peak" the
-- step is compared with): out[M,N] = inp[M,K] @ W[N,K]^T, M = 8320 (128 x 65 tokens) and 2080 (ViT-B step).
if opt.model == 'gemm' then
  for _, shp in ipairs{{8320, 3072, 768}, {2080, 3072, 768}, {2080, 768, 3072}} do
    local M, N, K = shp[1], shp[2], shp[3]
    local a, w, c = dama.randn(M, K), dama.randn(N, K), dama.empty(M, N)
    local pa, pw, pc = ffi.cast('float*', a:data()), ffi.cast('float*', w:data()), ffi.cast('float*', c:data())
    local times, cpus = {}, {}
    for i = 0, opt.steps do
      local t0, c0 = now(), cpu()
      dama.C.dama_sgemm(0, 1, M, N, K, 1, pa, K, pw, K, 0, pc, N)
      if i > 0 then times[i], cpus[i] = now() - t0, cpu() - c0 end
    end
    table.sort(times); table.sort(cpus)
    local f = 2 * M * N * K / 1e9
    print(string.format('result impl=dama model=gemm threads=%d shape=%dx%dx%d gflops=%.1f gflops_per_core=%.1f ' ..
      'best_gflops=%.1f backend=%s', dama.get_num_threads(), M, N, K, f / times[math.ceil(#times / 2)],
      f / cpus[math.ceil(#cpus / 2)], f / times[1], ffi.string(dama.C.dama_gemm_backend())))
  end
  os.exit(0)
end

local cfg = {}
if opt.model == 'mae' or opt.model == 'tiny' then
  local s = opt.model == 'mae'
    and {img = 128, patch = 16, chans = 7, dim = 384, depth = 12, heads = 6, dec_dim = 512, dec_depth = 8,
         dec_heads = 16, batch = 64}
    or {img = 32, patch = 8, chans = 7, dim = 96, depth = 4, heads = 3, dec_dim = 64, dec_depth = 2,
        dec_heads = 2, batch = 64}
  cfg = s
  local L = (s.img / s.patch) ^ 2
  local K = dama.mask.visible_count and dama.mask.visible_count(L, 0.8) or math.floor(L * 0.2)
  local B, P = s.batch, s.patch * s.patch * s.chans
  local l, a = block_flops(B, K + 1, s.dim, s.heads)
  local fwd3 = s.depth * (l + a)                                  -- encoder blocks
  local dl, da = block_flops(B, L + 1, s.dec_dim, s.dec_heads)
  fwd3 = fwd3 + s.dec_depth * (dl + da)
  fwd3 = fwd3 + 2 * B * (K + 1) * s.dim * s.dec_dim                -- decoder_embed
  fwd3 = fwd3 + 2 * B * (L + 1) * s.dec_dim * P                    -- decoder_pred (on all 1+L tokens)
  cfg.flops = 3 * fwd3 + 2 * (2 * B * L * P * s.dim)               -- + patch embedding (weight grad only)
  cfg.L, cfg.K = L, K
elseif opt.model == 'vitb' then
  cfg = {img = 128, patch = 16, chans = 7, dim = 768, depth = opt.depth or 12, heads = 12, batch = 32}
  local L = (cfg.img / cfg.patch) ^ 2
  local l, a = block_flops(cfg.batch, L + 1, cfg.dim, cfg.heads)
  cfg.flops = 3 * cfg.depth * (l + a) + 2 * (2 * cfg.batch * L * cfg.patch * cfg.patch * cfg.chans * cfg.dim)
  cfg.L = L
else
  error("vit_bench: model must be 'mae', 'vitb' or 'tiny', got " .. tostring(opt.model), 0)
end

local model
if opt.model == 'vitb' then
  model = dama.nn.ViT{img = cfg.img, patch = cfg.patch, chans = cfg.chans, dim = cfg.dim, depth = cfg.depth,
                      heads = cfg.heads}
else
  model = dama.nn.MAE{img = cfg.img, patch = cfg.patch, chans = cfg.chans, dim = cfg.dim, depth = cfg.depth,
                      heads = cfg.heads, dec_dim = cfg.dec_dim, dec_depth = cfg.dec_depth, dec_heads = cfg.dec_heads}
end
local groups = dama.optim.param_groups_weight_decay(model:named_parameters(), 0.05)
local optim = dama.optim.AdamW(groups, {lr = 1.5e-4, betas = {0.9, 0.95}, weight_decay = 0.05})
local x = dama.randn(cfg.batch, cfg.chans, cfg.img, cfg.img)

local function step()
  optim:zero_grad()
  local loss
  if opt.model == 'vitb' then
    local latent = model:forward_encoder(x, nil)
    loss = (latent * latent):mean()
  else
    local m = dama.mask.random(cfg.batch, cfg.L, 0.8)
    local pred = model(x, m)
    loss = model:loss(x, pred, m)
  end
  local v = loss:item()
  loss:backward()
  optim:step()
  return v
end

for _ = 1, opt.warmup do step() end
dama.reset_peak_memory()
local times, cpus = {}, {}
for i = 1, opt.steps do
  local t0, c0 = now(), cpu()
  local v = step()
  times[i], cpus[i] = now() - t0, cpu() - c0
  print(string.format('step %.4f cpu %.4f loss %.5f', times[i], cpus[i], v))
  io.flush()
end
local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) / 2] or 0.5 * (t[n / 2] + t[n / 2 + 1])
end
local med, cmed = median(times), median(cpus)
local mem = dama.memory()
print(string.format('result impl=dama model=%s threads=%d batch=%d sec_per_step=%.4f samples_per_s=%.3f ' ..
  'cpu_per_step=%.4f gflop_per_step=%.2f gflops=%.1f gflops_per_core=%.1f peak_tensor_mb=%.1f backend=%s', opt.model,
  dama.get_num_threads(), cfg.batch, med, cfg.batch / med, cmed, cfg.flops / 1e9, cfg.flops / 1e9 / med,
  cfg.flops / 1e9 / cmed, mem.peak / 2 ^ 20, ffi.string(dama.C.dama_gemm_backend())))
