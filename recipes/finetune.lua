-- recipes/finetune.lua: fine-tune a pretrained encoder for cell classification (spec §6).
--   dama recipes/finetune.lua ckpt=runs/pretrain_set3/checkpoint.safetensors data=cells/ [key=value ...]
--   dama recipes/finetune.lua ckpt=random ...                                  -- from scratch
-- ViT with global average pooling + fc_norm + head (timm), drop-path, layer-wise lr decay (BEiT), AdamW
-- (0.9, 0.999), warm-up then cosine to min_lr, mixup/cutmix with label smoothing (soft-target CE), the
-- reference's training augmentation and validation transform. The split is the paper's: a seeded
-- stratified 60/40 split, repeated `repeats` times (10 in the paper); each repeat reports the best epoch's
-- top-1, as the reference does ("Max accuracy").
local dama = require 'dama'
local F = require 'dama.nn.functional'

local cfg = dama.config{
  ckpt = 'random', branch = 'base_encoder',
  arch = 'vit_base', img = 128, patch = 16, chans = 7,
  epochs = 150, warmup = 5, batch = 512, blr = 5e-4, min_lr = 1e-6, layer_decay = 0.65, wd = 0.05,
  drop_path = 0.1, mixup = 0.8, cutmix = 1.0, smoothing = 0.1, switch_prob = 0.5,
  train_fraction = 0.6, repeats = 1, seed = 0, workers = 2, log_every = 20,
  optional = {'data', 'labels', 'dim', 'depth', 'heads', 'n_samples', 'out'},
  positive = {'blr', 'batch'},
  presets = {
    demo = {arch = 'custom', img = 32, patch = 8, dim = 96, depth = 4, heads = 3, epochs = 5, warmup = 1,
            batch = 64, blr = 1e-3, n_samples = 1000},
  },
}:override(arg)

-- encoder settings: from the checkpoint's saved config unless training from scratch
local enc = cfg:table()
local prefix
if cfg.ckpt ~= 'random' then
  prefix = dama.eval.encoder_prefix(cfg.ckpt, cfg.branch)
  print(string.format('encoder: %s of %s', prefix == '' and 'timm encoder' or cfg.branch, cfg.ckpt))
  local f = dama.checkpoint.open(cfg.ckpt)
  local info = dama.json.decode(f.metadata.dama or '{}')
  f:close()
  local saved = info.extra and info.extra.config and dama.json.decode(info.extra.config) or {}
  for _, k in ipairs{'arch', 'img', 'patch', 'chans', 'dim', 'depth', 'heads'} do
    if saved[k] ~= nil then enc[k] = saved[k] end
  end
end
local vit_opts = enc.arch == 'custom' and {dim = enc.dim, depth = enc.depth, heads = enc.heads, mlp_ratio = 4}
                 or dama.nn.vit_config(enc.arch)
vit_opts.img, vit_opts.patch, vit_opts.chans = enc.img, enc.patch, enc.chans

-- data
local ds
if cfg.data == nil then
  ds = dama.data.synthetic{n = cfg.n_samples or 5000, seed = 777, crop = math.floor(enc.img * 100 / 128 + 0.5)}
  local idx = {}
  for i = 1, ds:size() do idx[i] = i - 1 end
  ds = ds:subset(idx)
elseif tostring(cfg.data):match('%.npy$') then
  ds = dama.data.npy(cfg.data, {labels = cfg.labels})
else
  ds = dama.data.ImageFolder(cfg.data)
end
local n_classes = 0
for _, l in ipairs(dama.eval.require_labels(ds, 'finetune')) do n_classes = math.max(n_classes, l + 1) end

-- Mixup / CutMix (timm's 'batch' mode): one λ per batch from Beta(α, α); cutmix with switch_prob.
local function beta_sample(a)
  -- Beta(a, a) = G1 / (G1 + G2) with Gamma(a) by Marsaglia–Tsang (boosted for a < 1)
  local function gamma(k)
    local boost = 1
    if k < 1 then boost = dama.rand(1):item() ^ (1 / k); k = k + 1 end
    local d = k - 1 / 3
    local c = 1 / math.sqrt(9 * d)
    while true do
      local z = dama.randn(1):item()
      local v = (1 + c * z) ^ 3
      if v > 0 and math.log(dama.rand(1):item()) < 0.5 * z * z + d - d * v + d * math.log(v) then
        return d * v * boost
      end
    end
  end
  local g1, g2 = gamma(a), gamma(a)
  return g1 / (g1 + g2)
end

local function mix(x, y)
  local N = x:size(0)
  local onehot = dama.zeros(N, n_classes):scatter_(1, y:view(N, 1), 1)
  local soft = onehot * (1 - cfg.smoothing) + cfg.smoothing / n_classes
  if cfg.mixup <= 0 and cfg.cutmix <= 0 then return x, soft end
  local use_cut = cfg.cutmix > 0 and (cfg.mixup <= 0 or dama.rand(1):item() < cfg.switch_prob)
  local lam = beta_sample(use_cut and cfg.cutmix or cfg.mixup)
  local flipped = x:index_select(0, dama.arange(N - 1, -1, -1, 'i64'))
  if use_cut then
    local H, W = x:size(2), x:size(3)
    local r = math.sqrt(1 - lam)
    local ch, cw = math.floor(H * r), math.floor(W * r)
    local cy, cx = math.floor(dama.rand(1):item() * H), math.floor(dama.rand(1):item() * W)
    local y0, y1 = math.max(cy - math.floor(ch / 2), 0), math.min(cy + math.floor(ch / 2), H)
    local x0, x1 = math.max(cx - math.floor(cw / 2), 0), math.min(cx + math.floor(cw / 2), W)
    x = x:clone()
    if y1 > y0 and x1 > x0 then
      x:narrow(2, y0, y1 - y0):narrow(3, x0, x1 - x0):copy_(flipped:narrow(2, y0, y1 - y0):narrow(3, x0, x1 - x0))
    end
    lam = 1 - (y1 - y0) * (x1 - x0) / (H * W)
  else
    x = x * lam + flipped * (1 - lam)
  end
  local soft_flipped = soft:index_select(0, dama.arange(N - 1, -1, -1, 'i64'))
  return x, soft * lam + soft_flipped * (1 - lam)
end

local function evaluate(model, loader)
  local correct, total = 0, 0
  model:eval()
  dama.no_grad(function()
    for x, y in loader:epoch() do
      local _, pred = model(x):max(1)
      correct = correct + pred:eq(y):sum():item()
      total = total + y:size(0)
    end
  end)
  model:train()
  return 100 * correct / math.max(total, 1)
end

local results, per_repeat = {}, {}
local t0, total_steps, steps_done = dama.eval.now(), nil, 0
for r = 1, cfg.repeats do
  dama.manual_seed(cfg.seed + r)
  local split = dama.data.stratified_split(ds, cfg.train_fraction, cfg.seed + r)
  local train = dama.data.loader(split[1], {batch = cfg.batch, pipeline = 'train', out_size = enc.img,
                                            seed = cfg.seed + r, workers = cfg.workers})
  local val = dama.data.loader(split[2], {batch = cfg.batch, pipeline = 'val', out_size = enc.img, shuffle = false,
                                          drop_last = false, workers = cfg.workers})
  local o = {}
  for k, v in pairs(vit_opts) do o[k] = v end
  o.global_pool, o.num_classes, o.drop_path = 'avg', n_classes, cfg.drop_path
  local model = dama.nn.ViT(o)
  if cfg.ckpt ~= 'random' then
    local sd = dama.load(cfg.ckpt)
    local rep = model:load_pretrained(sd, {prefix = prefix})
    -- a fresh head and fc_norm; the pretrained final norm is replaced by fc_norm under avg pooling
    dama.eval.check_load(rep, cfg.ckpt, {'^head%.', '^fc_norm%.'}, {'^norm%.'})
  end
  model:set_pos_trainable(true)
  local groups = dama.optim.param_groups_lrd(model:named_parameters({trainable = true}), {
    weight_decay = cfg.wd, no_weight_decay_list = {'pos_embed', 'cls_token', 'dist_token'},
    layer_decay = cfg.layer_decay, num_layers = o.depth})
  local lr = cfg.blr * cfg.batch / 256
  local opt = dama.optim.AdamW(groups, {lr = lr, betas = {0.9, 0.999}, weight_decay = cfg.wd})
  local sched = dama.schedule.warmup_cosine{lr = lr, min_lr = cfg.min_lr, warmup_epochs = cfg.warmup,
                                            epochs = cfg.epochs}
  local iters = train:batches_per_epoch()
  local best, step, curve = 0, 0, {}
  total_steps = total_steps or iters * cfg.epochs * cfg.repeats
  for epoch = 0, cfg.epochs - 1 do
    for x, y, it in train:epoch() do
      sched:adjust(opt, epoch + it / iters)
      local xm, target = mix(x, y)
      opt:zero_grad()
      local loss = F.soft_cross_entropy(model(xm), target)
      loss:backward()
      opt:step()
      step = step + 1
      steps_done = steps_done + 1
      if step % cfg.log_every == 0 then
        print(string.format('repeat %d  epoch %d/%d  step %d  loss %.4f  lr %.3g  %s', r, epoch + 1, cfg.epochs, step,
          loss:item(), opt.param_groups[#opt.param_groups].lr, dama.eval.eta(steps_done, total_steps, t0)))
      end
    end
    local acc = evaluate(model, val)
    best = math.max(best, acc)
    curve[#curve + 1] = acc
    print(string.format('repeat %d  epoch %d/%d  val top-1 %.2f%%  (best %.2f%%)  %s', r, epoch + 1, cfg.epochs, acc,
      best, dama.eval.eta(steps_done, total_steps, t0)))
  end
  results[#results + 1] = best
  per_repeat[#per_repeat + 1] = {["repeat"] = r, train = split[1]:size(), val = split[2]:size(), best_top1 = best,
                                 val_top1_per_epoch = curve}
end
local mean = 0
for _, a in ipairs(results) do mean = mean + a / #results end
print(string.format('fine-tuning: best-epoch top-1 %.2f%% (mean of %d repeat(s))', mean, #results))
local out = cfg.out or ('runs/finetune' .. (cfg.preset and ('_' .. cfg.preset) or ''))
print('wrote ' .. dama.eval.write_results(out, {recipe = 'finetune', ckpt = cfg.ckpt, branch = cfg.branch,
  config = cfg:table(), splits = per_repeat, summary = {mean_best_top1 = mean, repeats = #results},
  seconds = dama.eval.now() - t0}))
