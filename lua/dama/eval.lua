-- dama.eval: evaluation protocols for pretrained encoders.
--
--   local feats, labels = dama.eval.features(encoder, loader)          -- frozen features [N, D], labels [N]
--   local acc = dama.eval.linear_probe(train_f, train_y, test_f, test_y, {epochs = 100})
--
-- Features are the mean of the encoder's patch tokens after its final norm (the reference's
-- fine-tuning pools the same way, spec §6.2), or the cls token (pool = 'cls'). The linear probe
-- standardises features with the training set's mean and std, then trains one Linear layer with AdamW
-- and cross-entropy, and reports top-1 accuracy (%) on the test set.
--
-- Devices: everything here runs on the device of its inputs (the model's parameters, the loader's batches, the
-- features). The steps keep their losses and counts there and read them with one copy where a number is needed
-- on the host: once per log line and once at the end of an epoch while fine-tuning, once per evaluation
-- (E.top1, the probe's accuracies), so a GPU is never stalled by a host read per batch.
local dama = require 'dama'
local F = require 'dama.nn.functional'

local E = {}

-- device(cfg) -> the canonical name of the device an evaluation recipe runs on: cfg.device ('cpu', 'cuda',
-- 'cuda:N' or 'sim', the test device), else the first GPU when this build and machine have one, else the cpu,
-- as the pretraining recipes choose (recipes/dama.lua, R.device). It becomes the default device, so the model,
-- the head, the optimizer state and the loaders' batches are made there. A bad name is dama.device's error
-- ("device: expected 'cpu', 'cuda', 'cuda:N' or 'sim', got 'gpu'").
function E.device(cfg)
  local dev = cfg.device or (dama.cuda_available() and 'cuda' or 'cpu')
  dama.set_default_device(dev)
  return dama.get_default_device()
end

-- Frozen features of every batch of a loader (one pass over its current epoch, in order).
function E.features(encoder, loader, opts)
  opts = opts or {}
  local was = encoder.training
  encoder:eval()
  local feats, labels = {}, {}
  dama.no_grad(function()
    for x, y in loader:epoch() do
      local latent = encoder:forward_encoder(x, nil)
      local f
      if opts.pool == 'cls' then f = latent:select(1, 0)
      else f = latent:narrow(1, 1, latent:size(1) - 1):mean(1) end
      feats[#feats + 1] = f:contiguous()
      labels[#labels + 1] = y
    end
  end)
  if was then encoder:train() end
  return dama.cat(feats, 0), dama.cat(labels, 0)
end

-- now() -> seconds on the monotonic clock (for eta).
function E.now()
  if not E._tv then
    local ffi = require 'ffi'
    pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } dama_timespec; int clock_gettime(int, dama_timespec *);')
    E._tv = ffi.new('dama_timespec')
  end
  require('ffi').C.clock_gettime(1, E._tv)
  return tonumber(E._tv.tv_sec) + tonumber(E._tv.tv_nsec) * 1e-9
end

-- eta(done, total, t0) -> 'ETA 1m23s' from the wall time since t0 (an E.now()); '' before any work.
function E.eta(done, total, t0)
  if done <= 0 then return '' end
  local left = (E.now() - t0) / done * math.max(total - done, 0)
  if left >= 3600 then return string.format('ETA %dh%02dm', math.floor(left / 3600), math.floor(left % 3600 / 60)) end
  if left >= 60 then return string.format('ETA %dm%02ds', math.floor(left / 60), math.floor(left % 60)) end
  return string.format('ETA %ds', math.floor(left + 0.5))
end

-- write_results(dir, results) -> path: results (a table) as dir/results.json, written atomically
-- (temporary file, then rename); the folder is made if missing.
function E.write_results(dir, results)
  os.execute("mkdir -p '" .. tostring(dir):gsub("'", "'\\''") .. "'")
  local path = dir .. '/results.json'
  local tmp = path .. '.tmp'
  local f, err = io.open(tmp, 'w')
  if not f then error(string.format("write_results: cannot write '%s': %s", tmp, tostring(err)), 2) end
  f:write(dama.json.encode(results), '\n')
  f:close()
  local ok, rerr = os.rename(tmp, path)
  if not ok then error(string.format("write_results: cannot rename to '%s': %s", path, tostring(rerr)), 2) end
  return path
end

-- require_labels(ds, what): an evaluation needs class labels; a dataset without them (an .npy given
-- no labels=, unlabelled crops) is an error that says so instead of probing one class of -1s.
function E.require_labels(ds, what)
  local labels = ds:label_list()
  local n = 0
  for _, l in ipairs(labels) do if l ~= nil and l >= 0 then n = n + 1 end end
  if n < #labels or #labels == 0 then
    error(string.format('%s: the data has no class labels (%d of %d samples labelled); give an ImageFolder ' ..
      '(root/<class>/...) or an .npy with labels=<labels.npy>', what, n, #labels), 2)
  end
  return labels
end

-- The encoder tensors of a checkpoint by their timm names, for fine-tuning and probes:
-- a dama checkpoint's branch ('base_encoder', 'momentum_encoder', ...) or a plain timm-named
-- encoder file (no prefix; taken when the default branch is absent). A branch the file lacks is an
-- error that lists the branches it has, so a typo never falls back to random weights.
function E.encoder_prefix(path, branch)
  local f = dama.checkpoint.open(path)
  local names = f:names()
  f:close()
  local branches, has_plain, has_branch = {}, false, false
  for _, k in ipairs(names) do
    local pre = k:match('^(.-)%.?patch_embed%.proj%.weight$')
    if pre == '' then has_plain = true elseif pre and not pre:find('decoder', 1, true) then branches[#branches + 1] = pre end
    if k:sub(1, #branch + 1) == branch .. '.' then has_branch = true end
  end
  if has_branch then return branch .. '.' end
  if has_plain and branch == 'base_encoder' then return '' end
  table.sort(branches)
  if has_plain then branches[#branches + 1] = "'' (a plain timm encoder: leave branch at its default)" end
  error(string.format("checkpoint '%s' has no encoder branch '%s'; it has: %s", path, branch,
    #branches > 0 and table.concat(branches, ', ') or 'no encoder at all (no *patch_embed.proj.weight)'), 2)
end

-- export_timm(ckpt, out[, branch]) -> weights path, config path: one encoder of a dama checkpoint (or
-- a timm-named file) as a plain timm VisionTransformer state_dict, out .. '.safetensors' (encoder
-- tensors only, timm names, no prefix) plus out .. '.json', the VisionTransformer keyword arguments
-- (img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, qkv_bias, num_classes = 0,
-- global_pool = 'token', class_token), so that in Python
--   VisionTransformer(**json.load(open(cfg))).load_state_dict(safetensors.torch.load_file(w), strict=True)
-- needs no key surgery. global_pool 'token' keeps the encoder's final norm (timm's 'avg' swaps it for
-- fc_norm); set global_pool after loading to pool otherwise.
function E.export_timm(ckpt, out, branch)
  local prefix = E.encoder_prefix(ckpt, branch or 'base_encoder')
  local f = dama.checkpoint.open(ckpt)
  local tensors, depth = {}, 0
  for _, k in ipairs(f:names()) do
    local name = k:sub(#prefix + 1)
    if k:sub(1, #prefix) == prefix and not name:find('decoder', 1, true) and name ~= 'mask_token'
       and not name:find('^optim%.') and not name:find('^head%.') and not name:find('^fc_norm%.') then
      tensors[name] = f:get(k):contiguous()
    end
  end
  local meta = dama.json.decode(f.metadata.dama or '{}')
  f:close()
  local w = tensors['patch_embed.proj.weight']
  local sz = w:size()
  local dim, chans, patch = sz[1], sz[2], sz[3]
  for name in pairs(tensors) do
    local i = tonumber(name:match('^blocks%.(%d+)%.'))
    if i then depth = math.max(depth, i + 1) end
  end
  local L = tensors.pos_embed:size(1) - 1
  local mlp = tensors['blocks.0.mlp.fc1.weight']:size(0) / dim
  local grid = math.floor(math.sqrt(L) + 0.5)
  local saved = meta.extra and meta.extra.config and dama.json.decode(meta.extra.config) or {}
  local heads = saved.heads
  if not heads and saved.arch and saved.arch ~= 'custom' then heads = dama.nn.vit_config(saved.arch).heads end
  if not heads then error(string.format("export_timm: '%s' does not record the number of heads; pass a checkpoint " ..
    'written by a dama recipe', ckpt), 2) end
  local cfg = {img_size = grid * patch, patch_size = patch, in_chans = chans, embed_dim = dim, depth = depth,
               num_heads = heads, mlp_ratio = mlp, qkv_bias = tensors['blocks.0.attn.qkv.bias'] ~= nil,
               num_classes = 0, global_pool = 'token', class_token = true}
  local wpath, cpath = out .. '.safetensors', out .. '.json'
  dama.checkpoint.save_tensors(wpath, tensors, {format = 'pt'})
  local fh, err = io.open(cpath .. '.tmp', 'w')
  if not fh then error(string.format("export_timm: cannot write '%s': %s", cpath, tostring(err)), 2) end
  fh:write(dama.json.encode(cfg), '\n')
  fh:close()
  assert(os.rename(cpath .. '.tmp', cpath))
  return wpath, cpath, cfg
end

-- Check a load_pretrained report strictly: every missing, unexpected or mis-shaped tensor by name.
-- `allowed_missing` / `allowed_unexpected` are name patterns (a fresh head, a replaced final norm).
function E.check_load(report, path, allowed_missing, allowed_unexpected)
  local function filt(list, pats)
    local r = {}
    for _, k in ipairs(list) do
      local ok = false
      for _, p in ipairs(pats or {}) do if k:match(p) then ok = true end end
      if not ok then r[#r + 1] = k end
    end
    return r
  end
  local miss, unexp = filt(report.missing, allowed_missing), filt(report.unexpected, allowed_unexpected)
  local parts = {}
  if #miss > 0 then parts[#parts + 1] = 'missing: ' .. table.concat(miss, ', ') end
  if #unexp > 0 then parts[#parts + 1] = 'unexpected: ' .. table.concat(unexp, ', ') end
  if #report.mismatched > 0 then parts[#parts + 1] = 'wrong shape: ' .. table.concat(report.mismatched, ', ') end
  if #parts > 0 then
    error(string.format("checkpoint '%s' does not fit the model: %s", path, table.concat(parts, '; ')), 2)
  end
  return report
end

-- accuracy_tensor(logits, y) -> the fraction of rows whose arg-max is y, a 0-dim f32 tensor on their device
-- (no host read); accuracy(logits, y) -> that in percent, as a number (one read).
function E.accuracy_tensor(logits, y)
  local _, pred = logits:max(1)
  return pred:eq(y):float():mean()
end

function E.accuracy(logits, y)
  return E.accuracy_tensor(logits, y):item() * 100
end

-- top1(model, loader) -> top-1 accuracy (%) of a classifier over one pass of a loader (the rest of its current
-- epoch), in eval mode without gradients (the model's training mode is restored). The correct count is summed on
-- the batches' device and read once, at the end.
function E.top1(model, loader)
  local correct, total = nil, 0
  local was = model.training
  model:eval()
  dama.no_grad(function()
    for x, y in loader:epoch() do
      local _, pred = model(x):max(1)
      local c = pred:eq(y):sum()
      correct = correct and correct + c or c
      total = total + y:size(0)
    end
  end)
  if was then model:train() end
  return 100 * (correct and correct:item() or 0) / math.max(total, 1)   -- the one read
end

-- ---------------------------------------------------------------- fine-tuning

-- Draws that steer host control flow (mixup's λ, the cutmix switch and box) come from the global generator through
-- 1-element host tensors: on a device each would otherwise be a read. The generator is one stream whatever the
-- device, so the draws, and the run, equal the cpu run's.
local function host_rand() return dama.rand(1, {device = 'cpu'}):item() end
local function host_randn() return dama.randn(1, {device = 'cpu'}):item() end

-- beta_sample(a) -> a draw from Beta(a, a) = G1 / (G1 + G2), Gamma(a) by Marsaglia–Tsang (boosted for a < 1).
function E.beta_sample(a)
  local function gamma(k)
    local boost = 1
    if k < 1 then boost = host_rand() ^ (1 / k); k = k + 1 end
    local d = k - 1 / 3
    local c = 1 / math.sqrt(9 * d)
    while true do
      local z = host_randn()
      local v = (1 + c * z) ^ 3
      if v > 0 and math.log(host_rand()) < 0.5 * z * z + d - d * v + d * math.log(v) then
        return d * v * boost
      end
    end
  end
  local g1, g2 = gamma(a), gamma(a)
  return g1 / (g1 + g2)
end

-- mixup(x, y, n_classes, opts) -> mixed x, soft targets [N, n_classes]: Mixup / CutMix in timm's 'batch' mode
-- (one λ per batch from Beta(α, α), each batch mixed with itself reversed; cutmix with opts.switch_prob) and label
-- smoothing. opts: mixup (α, <= 0 off), cutmix (α, <= 0 off), smoothing, switch_prob. The images and targets stay on
-- x's device; only the scalar draws are on the host.
function E.mixup(x, y, n_classes, opts)
  local N = x:size(0)
  local onehot = x:new_zeros({N, n_classes}):scatter_(1, y:view(N, 1), 1)
  local soft = onehot * (1 - opts.smoothing) + opts.smoothing / n_classes
  if opts.mixup <= 0 and opts.cutmix <= 0 then return x, soft end
  local use_cut = opts.cutmix > 0 and (opts.mixup <= 0 or host_rand() < opts.switch_prob)
  local lam = E.beta_sample(use_cut and opts.cutmix or opts.mixup)
  local reverse = dama.arange(N - 1, -1, -1, {dtype = 'i64', device = x.device})
  local flipped = x:index_select(0, reverse)
  if use_cut then
    local H, W = x:size(2), x:size(3)
    local r = math.sqrt(1 - lam)
    local ch, cw = math.floor(H * r), math.floor(W * r)
    local cy, cx = math.floor(host_rand() * H), math.floor(host_rand() * W)
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
  local soft_flipped = soft:index_select(0, reverse)
  return x, soft * lam + soft_flipped * (1 - lam)
end

-- finetune_epoch(model, opt, loader, o) -> steps: one epoch (the rest of the loader's current one) of supervised
-- fine-tuning, the step of recipes/finetune.lua: per batch the lr from o.sched at the fractional epoch
-- (o.epoch + i / batches per epoch), o.mix(x, y) -> inputs and soft targets (E.mixup), soft-target cross-entropy,
-- backward, an optimizer step. Steps are counted on from o.step (0); every o.log_every-th (20) calls
-- o.log(step, loss, lr) with that step's loss as a number and the last parameter group's lr.
-- The losses stay on the model's device: each step's is kept (detached) and the pending ones are read with one
-- copy per log line and one at the end of the epoch, where each is checked: a NaN or Inf stops the run with an
-- error naming the step (o.where, e.g. 'repeat 1', is named too); the steps after a bad one have then run. On the
-- cpu that copy costs nothing and the numbers are the ones an item() per step gives. o.after_step(step), if given,
-- runs after every step (tests count device reads with it).
function E.finetune_epoch(model, opt, loader, o)
  local iters = loader:batches_per_epoch()
  local step, log_every = o.step or 0, o.log_every or 20
  local pending = {}
  local function flush()
    if #pending == 0 then return end
    local list = {}
    for i, p in ipairs(pending) do list[i] = p.loss end
    local values = dama.stack(list, 0):cpu():totable()   -- the one read: every step since the last one
    local done = pending
    pending = {}
    for i, p in ipairs(done) do
      local v = values[i]
      if v ~= v or math.abs(v) == math.huge then
        error(string.format('finetune: non-finite loss %s at %sepoch %d, step %d; stopped', tostring(v),
          o.where and (o.where .. ', ') or '', o.epoch + 1, p.step), 0)
      end
      if p.log and o.log then o.log(p.step, v, p.lr) end
    end
  end
  for x, y, it in loader:epoch() do
    o.sched:adjust(opt, o.epoch + it / iters)
    local xm, target = o.mix(x, y)
    opt:zero_grad()
    local loss = F.soft_cross_entropy(model(xm), target)
    loss:backward()
    opt:step()
    step = step + 1
    local log = step % log_every == 0
    pending[#pending + 1] = {loss = loss:detach(), step = step, log = log,
                             lr = opt.param_groups[#opt.param_groups].lr}
    if log then flush() end
    if o.after_step then o.after_step(step) end
  end
  flush()
  return step
end

-- Train a linear classifier on train features; returns test top-1 (%), train top-1 and the layer.
function E.linear_probe(train_f, train_y, test_f, test_y, opts)
  opts = opts or {}
  -- the number of classes: opts.classes, else read from the labels (one read: both maxima in one copy)
  local classes = opts.classes or (dama.stack({train_y:amax(), test_y:amax()}, 0):amax():item() + 1)
  local mu = train_f:mean(0, true)
  local sd = (train_f:var(0, false, true) + 1e-6):sqrt()
  local xtr, xte = (train_f - mu) / sd, (test_f - mu) / sd
  local D = xtr:size(1)
  local dev = train_f.device
  dama.manual_seed(opts.seed or 0)
  local head = dama.nn.Linear(D, classes):to(dev)   -- on the features' device (a no-op when it is the default)
  local opt = dama.optim.AdamW(head:parameters(), {lr = opts.lr or 1e-3, weight_decay = opts.wd or 1e-4})
  local N = xtr:size(0)
  local bs = math.min(opts.batch or 256, N)
  for epoch = 1, opts.epochs or 100 do
    local perm = dama.randperm(N, {device = dev})
    for s = 0, N - bs, bs do
      local idx = perm:narrow(0, s, bs)
      opt:zero_grad()
      local loss = F.cross_entropy(head(xtr:index_select(0, idx)), train_y:index_select(0, idx), 0)
      loss:backward()
      opt:step()
    end
  end
  -- both accuracies on the device, read with one copy
  local accs = dama.no_grad(function()
    return dama.stack({E.accuracy_tensor(head(xte), test_y), E.accuracy_tensor(head(xtr), train_y)}, 0)
  end):cpu():totable()
  return accs[1] * 100, accs[2] * 100, head
end

return E
