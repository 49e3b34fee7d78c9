-- recipes/dama.lua: DAMA pretraining — the step of the paper's Algorithm 1 and Eq. (2), and the run.
-- recipes/pretrain_set1/2/3.lua, mae.lua and dama_rand.lua set the knobs and call run(cfg); this file
-- is also loaded by the tests (dofile), so what is tested is what trains.
local dama = require 'dama'

local R = {}

-- Paper Table 6 (and spec §5): every knob in one table. Overridable as key=value on the command line.
R.defaults = {
  data = nil,                   -- a folder (ImageFolder of .tif/.png) or a .npy; nil = built-in synthetic cells
  arch = 'vit_base', img = 128, patch = 16, chans = 7,
  batch = 512, epochs = 500, warmup = 40, blr = 1.5e-4, min_lr = 0, wd = 0.05, betas = {0.9, 0.95},
  mask = 0.8,                   -- mask ratio r (K = int(L(1 - r)) visible patches)
  mask2 = 'adaptive',           -- branch-2 mask: 'adaptive' (Algorithm 1), 'random', or a Lua function
                                -- (x, m1, loss_per_patch1, cfg) -> mask (see recipes/masking_playground.lua)
  overlap = 0.5,                -- overlap ratio ρ
  adaptive_mode = 'per_sample', -- 'per_sample' (the paper's rule) or 'union' (the reference code's bug)
  alpha = 1, beta = 2, K = 6,   -- feature-loss weight α, SmoothL1 β, last K blocks
  setting = 'student1-student2',-- 'student1-student2', 'shared' or 'ema' (Table 5)
  ema_momentum = 0.996,         -- 'ema' only: cosine-scheduled to 1
  stable_epoch = 0,             -- epochs trained with the reconstruction losses only
  feature_loss = true,          -- false = MAE (a single branch, recon1 only)
  seed = 0, workers = 2, threads = 0,
  device = nil,                 -- 'cpu', 'cuda', 'cuda:N' or 'sim' (the test device); nil: the GPU when there is one
  precision = 'fp32',           -- cuda GEMMs: 'fp32', 'bf16' or 'fp16' (+ dynamic loss scaling); dama.amp
  cuda_graph = false,           -- cuda: capture the step's forward + backward once, replay it every step
  out = 'runs/dama',             -- the run folder; with preset=NAME and no out=: runs/<recipe>_NAME
  ckpt_every = 10,              -- checkpoint every N epochs, and also every ckpt_steps steps and every
  ckpt_steps = 0,               -- ckpt_minutes minutes when > 0 (so a kill -9 loses at most that much);
  ckpt_minutes = 0,             -- Ctrl-C, SIGTERM and SIGUSR1 always save
  overwrite = false,            -- start over in a folder that holds a checkpoint (else: refused)
  grid_every = 10, log_every = 10, resume = false, max_steps = 0,
  plot_format = 'png',          -- loss and reconstruction figures as 'png', 'svg' or 'pdf' (Cairo)
  plot_log = true,              -- the loss curve on a log axis (the feature loss is ~1e-3 of the others)
  grid_channels = 'overlay',    -- reconstruction grids: 'overlay' (all channels in one colour image, with a
                                -- channel-to-colour legend) or 'panels' (every channel its own grey panel)
  optional = {'data', 'dim', 'depth', 'heads', 'dec_dim', 'dec_depth', 'dec_heads', 'n_samples', 'device'},
  choices = {mask2 = {'adaptive', 'random'}, adaptive_mode = {'per_sample', 'union'},
             precision = {'fp32', 'bf16', 'fp16'},
             setting = {'student1-student2', 'shared', 'ema'}, plot_format = {'png', 'svg', 'pdf'},
             grid_channels = {'overlay', 'panels'}},
  positive = {'blr', 'batch'},
  presets = {
    -- a small ViT that visibly learns in a few minutes on 2 CPU cores (the README's main command)
    demo = {arch = 'custom', img = 32, patch = 8, dim = 96, depth = 4, heads = 3, dec_dim = 64, dec_depth = 2,
            dec_heads = 2, K = 2, batch = 64, epochs = 24, warmup = 2, blr = 1.5e-3, n_samples = 2048,
            ckpt_every = 4, grid_every = 8, log_every = 32},
    -- seconds: for tests
    tiny = {arch = 'custom', img = 32, patch = 8, dim = 32, depth = 2, heads = 2, dec_dim = 32, dec_depth = 1,
            dec_heads = 2, K = 1, batch = 8, epochs = 2, warmup = 1, blr = 1.5e-3, n_samples = 64, workers = 0,
            ckpt_every = 1, grid_every = 0, log_every = 1000},
  },
}

-- The recipe's config: its overrides of R.defaults, then the command line. Every recipe has its own
-- folder (overrides.out); a preset run without out= goes to <that folder>_<preset>, so a demo never
-- overwrites a full run or another recipe's demo.
function R.config(overrides, args)
  local d = {}
  for k, v in pairs(R.defaults) do d[k] = v end
  for k, v in pairs(overrides or {}) do d[k] = v end
  local cfg = dama.config(d):override(args)
  local explicit_out = false
  for _, a in ipairs(args or {}) do
    if tostring(a):match('^%-*out=') then explicit_out = true end
  end
  if cfg.preset and not explicit_out then cfg.out = d.out .. '_' .. cfg.preset end
  return cfg
end

-- One DAMA step on images x [N, C, H, W]. noise: optional branch-1 masking noise [N, L] (tests).
-- Returns the total loss, its named parts, and what the visualisation needs.
function R.step(model, x, cfg, ctx, noise)
  local net1, net2 = model:branches()
  local N, L = x:size(0), net1.num_patches

  local m1 = dama.mask.random(N, L, cfg.mask, noise)                 -- branch 1: MAE's random mask
  local p1, z1 = net1(x, m1)
  local l1, lpp1 = dama.loss.normpix(net1, x, p1, m1)                -- per-patch loss ℓ1 [N, L]
  if not cfg.feature_loss then
    return l1, {recon = l1}, {m1 = m1, p1 = p1}
  end

  local m2                                                           -- branch 2: Algorithm 1
  if type(cfg.mask2) == 'function' then                              -- a strategy written in Lua
    m2 = cfg.mask2(x, m1, lpp1, cfg)
  elseif cfg.mask2 == 'adaptive' then
    m2 = dama.mask.adaptive(m1, lpp1, cfg.mask, cfg.overlap, {mode = cfg.adaptive_mode})
  else
    m2 = dama.mask.random(N, L, cfg.mask)
  end
  local function branch2()
    local p2, _, f2 = net2(x, m2)
    return p2, f2, (dama.loss.normpix(net2, x, p2, m2))
  end
  local p2, f2, l2
  if model.setting == 'ema' then p2, f2, l2 = dama.no_grad(branch2) else p2, f2, l2 = branch2() end

  local lf = dama.loss.feature(model.projs_head(z1), f2, cfg.K, cfg.beta)   -- F_Z(z1) vs target of f2
  local total = l1 + l2                                              -- Eq. (2)
  if not (ctx and ctx.epoch and ctx.epoch < cfg.stable_epoch) then total = total + lf * cfg.alpha end
  return total, {recon1 = l1, recon2 = l2, feature = lf}, {m1 = m1, m2 = m2, p1 = p1, p2 = p2}
end

-- A reconstruction grid (paper Fig. 6): input, branch-1 mask and reconstruction, branch-2 mask and reconstruction.
-- Reconstructions undo the norm-pix normalisation with each patch's statistics and paste the visible patches
-- back, as MAE's visualisation does; hidden patches are drawn in neutral grey. cfg.grid_channels = 'overlay' shows
-- up to six samples as colour composites with a channel legend (channel_names: the dataset's, when known);
-- 'panels' shows the first two samples one channel per row.
function R.visualize(model, x, cfg, path, channel_names)
  local net1 = model:branches()
  local was = model.training
  model:eval()
  local _, _, st = dama.no_grad(R.step, model, x, cfg, nil)
  if was then model:train() end
  local p = net1.patch_size
  local target = dama.nn.F.patchify(x, p)
  local mu = target:mean(-1, true)
  local sd = (target:var(-1, true, true) + 1e-6):sqrt()
  local function recon(pred, m)
    local mm = m.mask:unsqueeze(-1)
    return net1:unpatchify((pred:detach() * sd + mu) * mm + target * (1 - mm))
  end
  local r1 = recon(st.p1, st.m1)
  local r2 = st.m2 and recon(st.p2, st.m2)
  local labels = {'input', 'mask 1', 'recon 1'}
  if st.m2 then labels[4], labels[5] = 'mask 2', 'recon 2' end
  local scale = math.max(1, math.floor(128 / x:size(2)))
  local nc = x:size(1)
  local names = channel_names or {}
  for c = 1, nc do names[c] = names[c] or ('channel ' .. (c - 1)) end
  local rows, row_labels = {}, {}
  local function row_of(show, i)
    local row = {show(x), {image = show(x), hidden = st.m1.mask[i], patch = p}, show(r1)}
    if st.m2 then row[4] = {image = show(x), hidden = st.m2.mask[i], patch = p}; row[5] = show(r2) end
    return row
  end
  if cfg.grid_channels == 'panels' then
    for i = 0, math.min(x:size(0), 2) - 1 do
      local ranges = dama.plot.channel_ranges(x[i])
      for c = 0, nc - 1 do
        rows[#rows + 1] = row_of(function(t) return dama.plot.channel_image(t[i], c, ranges[c + 1]) end, i)
        row_labels[#rows] = string.format('%d: %s', i, names[c + 1])
      end
    end
    dama.plot.grid(path, rows, {scale = scale, labels = labels, row_labels = row_labels})
  else
    for i = 0, math.min(x:size(0), 6) - 1 do
      local ranges = dama.plot.channel_ranges(x[i])        -- one display scale per sample
      rows[#rows + 1] = row_of(function(t) return dama.plot.composite(t[i], ranges) end, i)
    end
    dama.plot.grid(path, rows, {scale = scale, labels = labels, legend = dama.plot.channel_legend(names)})
  end
  return path
end

-- The whole run: data, model, optimiser, loop, outputs under cfg.out.
-- The device a run trains on: cfg.device, else the first GPU when this build and machine have one, else the cpu.
-- It becomes the default device, so the model, masks and the loader's batches are made there.
function R.device(cfg)
  local dev = cfg.device or (dama.cuda_available() and 'cuda' or 'cpu')
  dama.set_default_device(dev)
  return dama.get_default_device()
end

function R.run(cfg)
  R.device(cfg)
  dama.manual_seed(cfg.seed)
  if cfg.threads and cfg.threads > 0 then dama.set_num_threads(cfg.threads) end
  print(cfg)
  dama.train.prepare_out(cfg)   -- a bad or occupied out= fails here, before data and model are built
  local loader = dama.data.cells(cfg)
  local model = dama.models.dama(cfg)
  print(string.format('model: %s, %d trainable parameters on %s; data: %s (%d samples, %d batches/epoch)',
    cfg.setting, model:num_parameters(), dama.get_default_device(), loader:describe(), loader:size(),
    loader:batches_per_epoch()))
  local vis_batch = loader:peek(math.min(cfg.batch, 6))
  local epochs = cfg.epochs
  local result = dama.train(cfg, loader, model, function(x, ctx) return R.step(model, x, cfg, ctx) end, {
    visualize = function(path)
      R.visualize(model, vis_batch, cfg, path, loader.ds and loader.ds:channel_name_list())
      print('wrote ' .. path)
    end,
    -- what the step decides on the host from ctx: a CUDA graph is captured once per value (cuda_graph=true)
    graph_key = function(ctx) return (ctx.epoch < cfg.stable_epoch) and 'recon-only' or 'dual' end,
    after_step = function(ctx)
      if model.setting == 'ema' then
        local m = 1 - (1 - cfg.ema_momentum) * 0.5 * (1 + math.cos(math.pi * ctx.epoch_f / epochs))
        model:update_teacher(m)
      end
    end,
  })
  print(string.format('done: %d steps; checkpoint %s; metrics %s; loss curve %s', result.step,
    result.checkpoint, result.metrics, result.loss_plot))
  return result, model
end

return R
