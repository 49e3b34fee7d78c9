-- recipes/finetune.lua: fine-tune a pretrained encoder for cell classification (spec §6).
--   dama recipes/finetune.lua ckpt=runs/pretrain_set3/checkpoint.safetensors data=cells/ [key=value ...]
--   dama recipes/finetune.lua ckpt=random ...                                  -- from scratch
-- ViT with global average pooling + fc_norm + head (timm), drop-path, layer-wise lr decay (BEiT), AdamW
-- (0.9, 0.999), warm-up then cosine to min_lr, mixup/cutmix with label smoothing (soft-target CE), the
-- reference's training augmentation and validation transform. The split is the paper's: a seeded
-- stratified 60/40 split, repeated `repeats` times (10 in the paper); each repeat reports the best epoch's
-- top-1, as the reference does ("Max accuracy").
--   device=cpu|cuda|cuda:N|sim: where the model, head, optimizer state and batches live (default: the GPU when
--   there is one, else the cpu; sim is the test device). The step never waits on the host there: the losses are
--   read once per log line (log_every) and at each epoch's end, the validation count once per evaluation.
local dama = require 'dama'

local cfg = dama.config{
  ckpt = 'random', branch = 'base_encoder',
  arch = 'vit_base', img = 128, patch = 16, chans = 7,
  epochs = 150, warmup = 5, batch = 512, blr = 5e-4, min_lr = 1e-6, layer_decay = 0.65, wd = 0.05,
  drop_path = 0.1, mixup = 0.8, cutmix = 1.0, smoothing = 0.1, switch_prob = 0.5,
  train_fraction = 0.6, repeats = 1, seed = 0, workers = 2, log_every = 20,
  device = nil,   -- 'cpu', 'cuda', 'cuda:N' or 'sim' (the test device); nil: the GPU when there is one
  optional = {'data', 'labels', 'dim', 'depth', 'heads', 'n_samples', 'out', 'device'},
  positive = {'blr', 'batch'},
  presets = {
    demo = {arch = 'custom', img = 32, patch = 8, dim = 96, depth = 4, heads = 3, epochs = 5, warmup = 1,
            batch = 64, blr = 1e-3, n_samples = 1000},
  },
}:override(arg)
-- the device becomes the default one (a bad name fails here, before any work): model, optimizer state and the
-- loaders' batches are made there
local device = dama.eval.device(cfg)
print('device: ' .. device)

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

-- Mixup / CutMix (timm's 'batch' mode) with label smoothing: dama.eval.mixup, on the batch's device.
local mix_opts = {mixup = cfg.mixup, cutmix = cfg.cutmix, smoothing = cfg.smoothing, switch_prob = cfg.switch_prob}
local function mix(x, y) return dama.eval.mixup(x, y, n_classes, mix_opts) end

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
  local groups = dama.optim.param_groups_lrd(model, {   -- the module: its arena is re-laid by group
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
    -- the steps of one epoch (dama.eval.finetune_epoch): the losses stay on the device and are read once per log
    -- line and at the epoch's end, where a NaN or Inf stops the run naming its step
    local done_before = steps_done - step
    step = dama.eval.finetune_epoch(model, opt, train, {epoch = epoch, step = step, sched = sched, mix = mix,
      log_every = cfg.log_every, where = 'repeat ' .. r,
      log = function(s, loss, lr)
        print(string.format('repeat %d  epoch %d/%d  step %d  loss %.4f  lr %.3g  %s', r, epoch + 1, cfg.epochs, s,
          loss, lr, dama.eval.eta(done_before + s, total_steps, t0)))
      end})
    steps_done = done_before + step
    local acc = dama.eval.top1(model, val)   -- one read per evaluation
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
