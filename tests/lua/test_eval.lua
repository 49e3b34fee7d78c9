-- dama.eval: feature extraction and the linear probe.
local dama = require 'dama'

test('linear probe separates separable features and not random labels', function()
  dama.manual_seed(5)
  local centers = dama.randn(3, 8) * 3
  local function make(n)
    local y = dama.randint(0, 3, {n})
    local x = centers:index_select(0, y) + dama.randn(n, 8)
    return x, y
  end
  local xtr, ytr = make(300)
  local xte, yte = make(200)
  local acc = dama.eval.linear_probe(xtr, ytr, xte, yte, {epochs = 30, lr = 1e-2})
  expect(acc > 90, 'separable accuracy ' .. acc)
  local acc_rand = dama.eval.linear_probe(xtr, dama.randint(0, 3, {300}), xte, dama.randint(0, 3, {200}),
                                          {epochs = 30, lr = 1e-2})
  expect(acc_rand < 60, 'random-label accuracy ' .. acc_rand)
end)

test('features of a ViT encoder over a loader', function()
  local vit = dama.nn.MAE{img = 32, patch = 8, chans = 7, dim = 32, depth = 1, heads = 2, dec_dim = 32, dec_depth = 1,
                          dec_heads = 2}
  local ds = dama.data.synthetic{n = 20, seed = 3, crop = 25}
  local loader = dama.data.loader(ds, {batch = 8, pipeline = 'resize', out_size = 32, shuffle = false,
                                       drop_last = false, workers = 0})
  local f, y = dama.eval.features(vit, loader)
  expect_eq(f.shape, {20, 32}); expect_eq(y.shape, {20})
  local f2 = dama.eval.features(vit, loader, {pool = 'cls'})
  expect_eq(f2.shape, {20, 32})
end)

test('encoder_prefix: a dama branch, a plain timm file, and a misspelt branch is an error listing the branches', function()
  local dir = os.tmpname(); os.remove(dir); os.execute('mkdir -p ' .. dir)
  local vit = dama.nn.ViT{img = 16, patch = 8, chans = 1, dim = 16, depth = 1, heads = 2}
  local sd = vit:state_dict()
  local dama_file, timm_file = dir .. '/d.safetensors', dir .. '/t.safetensors'
  local pre = {}
  for k, v in pairs(sd) do pre['base_encoder.' .. k] = v; pre['momentum_encoder.' .. k] = v end
  dama.save(dama_file, pre)
  dama.save(timm_file, sd)
  expect_eq(dama.eval.encoder_prefix(dama_file, 'base_encoder'), 'base_encoder.')
  expect_eq(dama.eval.encoder_prefix(dama_file, 'momentum_encoder'), 'momentum_encoder.')
  expect_eq(dama.eval.encoder_prefix(timm_file, 'base_encoder'), '')
  expect_error(function() dama.eval.encoder_prefix(dama_file, 'base_encodr') end,
    "has no encoder branch 'base_encodr'; it has: base_encoder, momentum_encoder")
  -- a model of another layout: every missing or mis-shaped tensor by name
  local other = dama.nn.ViT{img = 16, patch = 8, chans = 1, dim = 32, depth = 1, heads = 2, global_pool = 'avg', num_classes = 3}
  local rep = other:load_pretrained(dama.load(dama_file), {prefix = 'base_encoder.'})
  expect_error(function() dama.eval.check_load(rep, dama_file, {'^head%.', '^fc_norm%.'}, {'^norm%.'}) end,
    'wrong shape: .*patch_embed.proj.weight')
  local ok_model = dama.nn.ViT{img = 16, patch = 8, chans = 1, dim = 16, depth = 1, heads = 2, global_pool = 'avg', num_classes = 3}
  dama.eval.check_load(ok_model:load_pretrained(dama.load(dama_file), {prefix = 'base_encoder.'}), dama_file,
    {'^head%.', '^fc_norm%.'}, {'^norm%.'})
  os.execute('rm -rf ' .. dir)
end)

-- One fine-tuning epoch (the step of recipes/finetune.lua: mixup/cutmix, soft-target CE, AdamW, lr schedule) and a
-- validation pass on `device`, from one seed; the device reads after every step are recorded.
local function finetune_on(device, log_every)
  local saved = dama.get_default_device()
  dama.set_default_device(device)
  dama.manual_seed(11)
  local ds = dama.data.synthetic{n = 40, seed = 5, crop = 20}
  local train = dama.data.loader(ds, {batch = 4, pipeline = 'train', out_size = 16, seed = 2, workers = 0})
  local val = dama.data.loader(ds, {batch = 16, pipeline = 'val', out_size = 16, shuffle = false, drop_last = false,
                                    workers = 0})
  local model = dama.nn.ViT{img = 16, patch = 8, chans = 7, dim = 16, depth = 1, heads = 2, global_pool = 'avg',
                            num_classes = 5, drop_path = 0.1}
  model:set_pos_trainable(true)
  local opt = dama.optim.AdamW(model:trainable_parameters(), {lr = 1e-3, betas = {0.9, 0.999}, weight_decay = 0.05})
  local sched = dama.schedule.warmup_cosine{lr = 1e-3, min_lr = 1e-6, warmup_epochs = 1, epochs = 2}
  local mix_opts = {mixup = 0.8, cutmix = 1.0, smoothing = 0.1, switch_prob = 0.5}
  local r = {losses = {}, reads = {}}
  dama.reset_device_reads()
  r.steps = dama.eval.finetune_epoch(model, opt, train, {epoch = 0, sched = sched, log_every = log_every,
    mix = function(x, y) return dama.eval.mixup(x, y, 5, mix_opts) end,
    log = function(step, loss, lr) r.losses[#r.losses + 1] = {step, loss, lr} end,
    after_step = function(step) r.reads[step] = dama.device_reads() end})
  r.epoch_reads = dama.device_reads()
  r.top1 = dama.eval.top1(model, val)
  r.eval_reads = dama.device_reads() - r.epoch_reads
  r.weight = model:named_parameters()[1][2]:cpu()
  dama.set_default_device(saved)
  return r
end

test('fine-tuning on a device reads the host once per log line, once at the epoch end and once per evaluation', function()
  local cpu, sim = finetune_on('cpu', 4), finetune_on('sim', 4)
  expect_eq(sim.steps, 10)
  -- steps 4 and 8 log (a read each, in the step); steps 9 and 10 are read at the epoch's end
  local per_step = {}
  for s = 1, sim.steps do per_step[s] = sim.reads[s] - (sim.reads[s - 1] or 0) end
  print('device reads per fine-tuning step (log_every 4): ' .. table.concat(per_step, ' ') .. '; epoch end ' ..
    (sim.epoch_reads - sim.reads[sim.steps]) .. '; evaluation ' .. sim.eval_reads)
  expect_eq(per_step, {0, 0, 0, 1, 0, 0, 0, 1, 0, 0})
  expect(sim.epoch_reads <= math.floor(sim.steps / 4) + 1, 'reads over the epoch: ' .. sim.epoch_reads)
  expect_eq(sim.eval_reads, 1, 'reads per evaluation')
  expect_eq(cpu.epoch_reads, 0, 'the cpu run reads no device')
  -- the same numbers as the cpu run, bit for bit
  expect_eq(sim.losses, cpu.losses)
  expect_eq(#sim.losses, 2)
  expect_eq(sim.top1, cpu.top1)
  expect_eq(sim.weight:ne(cpu.weight):sum():item(), 0, 'weights after the epoch')
end)

test('fine-tuning stops on a non-finite loss, naming its step', function()
  local model = dama.nn.ViT{img = 16, patch = 8, chans = 7, dim = 16, depth = 1, heads = 2, global_pool = 'avg',
                            num_classes = 5}
  local ds = dama.data.synthetic{n = 12, seed = 5, crop = 20}
  local train = dama.data.loader(ds, {batch = 4, pipeline = 'val', out_size = 16, workers = 0})
  local opt = dama.optim.AdamW(model:trainable_parameters(), {lr = 1e-3})
  local sched = dama.schedule.warmup_cosine{lr = 1e-3, min_lr = 0, warmup_epochs = 0, epochs = 1}
  local n = 0
  expect_error(function()
    dama.eval.finetune_epoch(model, opt, train, {epoch = 0, sched = sched, log_every = 100, where = 'repeat 1',
      mix = function(x, y)
        n = n + 1
        local x2, t = dama.eval.mixup(x, y, 5, {mixup = 0, cutmix = 0, smoothing = 0})
        if n == 2 then x2 = x2 * (0 / 0) end   -- step 2's inputs are NaN
        return x2, t
      end})
  end, 'finetune: non%-finite loss %-?nan at repeat 1, epoch 1, step 2; stopped')
end)

test('linear probe and features on a device: no read for the features, one for both accuracies; cpu numbers', function()
  local function probe(device)
    local saved = dama.get_default_device()
    dama.set_default_device(device)
    dama.manual_seed(2)
    local vit = dama.nn.MAE{img = 16, patch = 8, chans = 7, dim = 16, depth = 1, heads = 2, dec_dim = 16,
                            dec_depth = 1, dec_heads = 2}
    local ds = dama.data.synthetic{n = 30, seed = 4, crop = 20}
    local parts = dama.data.stratified_split(ds, 0.6, 1)
    local function loader(p)
      return dama.data.loader(p, {batch = 8, pipeline = 'resize', out_size = 16, shuffle = false, drop_last = false,
                                  workers = 0})
    end
    dama.reset_device_reads()
    local ftr, ytr = dama.eval.features(vit, loader(parts[1]))
    local fte, yte = dama.eval.features(vit, loader(parts[2]))
    local r = {feature_reads = dama.device_reads(), device = ftr.device}
    r.acc, r.train_acc = dama.eval.linear_probe(ftr, ytr, fte, yte, {epochs = 3, batch = 8, seed = 1, classes = 5})
    r.probe_reads = dama.device_reads() - r.feature_reads
    dama.reset_device_reads()
    r.acc2 = dama.eval.linear_probe(ftr, ytr, fte, yte, {epochs = 3, batch = 8, seed = 1})
    r.probe_reads_no_classes = dama.device_reads()
    dama.set_default_device(saved)
    return r
  end
  local cpu, sim = probe('cpu'), probe('sim')
  expect_eq(sim.device, 'sim:0')
  print(string.format('device reads: features %d, probe %d (%d without classes=)', sim.feature_reads,
    sim.probe_reads, sim.probe_reads_no_classes))
  expect_eq(sim.feature_reads, 0, 'features')
  expect_eq(sim.probe_reads, 1, 'probe with classes=')
  expect_eq(sim.probe_reads_no_classes, 2, 'probe reading the classes from the labels')
  expect_eq({sim.acc, sim.train_acc, sim.acc2}, {cpu.acc, cpu.train_acc, cpu.acc2})
end)
