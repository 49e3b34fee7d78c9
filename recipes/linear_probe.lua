-- recipes/linear_probe.lua: linear probe of a pretrained encoder on labelled cells.
--   dama recipes/linear_probe.lua ckpt=runs/dama/checkpoint.safetensors data=cells.npy labels=labels.npy
--   dama recipes/linear_probe.lua ckpt=random arch=custom dim=192 ...      -- a random-init baseline
-- The encoder's settings (arch, img, patch, chans, ...) come from the checkpoint's saved config; with
-- ckpt=random they come from the command line. Features: mean of the patch tokens after the final norm
-- (no masking), standardised; a linear layer trained with AdamW; top-1 on a stratified held-out split,
-- averaged over `repeats` seeded splits (the paper's protocol uses 10 repeats of 60/40).
--   device=cpu|cuda|cuda:N|sim: where the encoder, features, head, optimizer state and batches live (default: the
--   GPU when there is one, else the cpu; sim is the test device). Features, the probe's steps and its accuracies
--   stay there; each split reads its two accuracies with one copy.
local dama = require 'dama'

local cfg = dama.config{
  ckpt = 'random', branch = 'base_encoder',
  arch = 'vit_tiny', img = 64, patch = 16, chans = 3, mask = 0.8,
  train_fraction = 0.6, repeats = 1, seed = 0, epochs = 100, lr = 1e-3, wd = 1e-4, batch = 256,
  pool = 'avg', workers = 2, resize = 'area',
  device = nil,   -- 'cpu', 'cuda', 'cuda:N' or 'sim' (the test device); nil: the GPU when there is one
  optional = {'data', 'labels', 'dim', 'depth', 'heads', 'dec_dim', 'dec_depth', 'dec_heads', 'out', 'device'},
  choices = {pool = {'avg', 'cls'}, resize = {'area', 'linear'}},
  positive = {'lr', 'batch'},
}:override(arg)
-- the device becomes the default one (a bad name fails here, before any work): encoder, head and batches go there
local device = dama.eval.device(cfg)
print('device: ' .. device)

-- the encoder
local enc_cfg = cfg:table()
if cfg.ckpt ~= 'random' then
  local f = dama.checkpoint.open(cfg.ckpt)
  local info = dama.json.decode(f.metadata.dama or '{}')
  f:close()
  local saved = info.extra and info.extra.config and dama.json.decode(info.extra.config) or {}
  for _, k in ipairs{'arch', 'img', 'patch', 'chans', 'dim', 'depth', 'heads', 'dec_dim', 'dec_depth',
                     'dec_heads', 'mask'} do
    if saved[k] ~= nil then enc_cfg[k] = saved[k] end
  end
end
local mae = dama.nn.MAE(dama.models.mae_options(enc_cfg))
if cfg.ckpt ~= 'random' then
  local prefix = dama.eval.encoder_prefix(cfg.ckpt, cfg.branch)
  -- a plain timm encoder file has no decoder: only the encoder's tensors are asked for then
  local enc_only = prefix == '' and function(name) return not name:find('decoder', 1, true) and name ~= 'mask_token' end or nil
  dama.checkpoint.load(cfg.ckpt, {model = mae, prefix = prefix, filter = enc_only, strict = true, rng = false})
  print(string.format('encoder: %s of %s', cfg.branch, cfg.ckpt))
else
  dama.manual_seed(cfg.seed)
  print('encoder: random initialisation')
end

-- the labelled data (default: the built-in synthetic cells, 5 classes)
local ds
if cfg.data == nil then
  ds = dama.data.synthetic{n = 2000, seed = 12345, crop = math.floor(enc_cfg.img * 100 / 128 + 0.5)}
  ds = ds:subset((function() local r = {} for i = 1, 2000 do r[i] = i - 1 end return r end)())
elseif tostring(cfg.data):match('%.npy$') then
  ds = dama.data.npy(cfg.data, {labels = cfg.labels})
else
  ds = dama.data.ImageFolder(cfg.data)
end

-- the classes from the host's label list (no device read): max label + 1, as the two parts' labels give
local n_classes = 0
for _, l in ipairs(dama.eval.require_labels(ds, 'linear_probe')) do n_classes = math.max(n_classes, l + 1) end
local accs, per_split, t0 = {}, {}, dama.eval.now()
for r = 1, cfg.repeats do
  local parts = dama.data.stratified_split(ds, cfg.train_fraction, cfg.seed + r)
  local function feats(part)
    local loader = dama.data.loader(part, {batch = 256, pipeline = 'resize', resize_mode = cfg.resize == 'area' and 2 or 1,
                                           out_size = enc_cfg.img, shuffle = false, drop_last = false,
                                           workers = cfg.workers})
    return dama.eval.features(mae, loader, {pool = cfg.pool})
  end
  local ftr, ytr = feats(parts[1])
  local fte, yte = feats(parts[2])
  local acc, train_acc = dama.eval.linear_probe(ftr, ytr, fte, yte, {epochs = cfg.epochs, lr = cfg.lr, wd = cfg.wd,
                                                                      batch = cfg.batch, seed = cfg.seed + r,
                                                                      classes = n_classes})
  accs[#accs + 1] = acc
  per_split[#per_split + 1] = {split = r, train = ytr:size(0), test = yte:size(0), top1 = acc, train_top1 = train_acc}
  print(string.format('split %d/%d: train %d, test %d cells; top-1 %.2f%% (train %.2f%%)  %s', r, cfg.repeats,
    ytr:size(0), yte:size(0), acc, train_acc, dama.eval.eta(r, cfg.repeats, t0)))
end
local mean, sd = 0, 0
for _, a in ipairs(accs) do mean = mean + a / #accs end
for _, a in ipairs(accs) do sd = sd + (a - mean) ^ 2 / math.max(#accs - 1, 1) end
print(string.format('linear probe top-1: %.2f%% ± %.2f over %d split(s)', mean, math.sqrt(sd), #accs))
local out = cfg.out or 'runs/linear_probe'
print('wrote ' .. dama.eval.write_results(out, {recipe = 'linear_probe', ckpt = cfg.ckpt, branch = cfg.branch,
  config = cfg:table(), splits = per_split, summary = {mean_top1 = mean, std_top1 = math.sqrt(sd), splits = #accs},
  seconds = dama.eval.now() - t0}))
