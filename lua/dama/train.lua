-- dama.train: the training loop shared by every recipe.
--
--   dama.train(cfg, loader, model, step, {visualize = fn, after_step = fn})
--
-- loader: for x, y, i in loader:epoch() do ... end yields the rest of the current epoch's batches (x f32
-- [B, C, H, W], y i64 [B], i the batch index in the epoch) and leaves the cursor at the next epoch;
-- loader:cursor() / loader:set_cursor{epoch =, index =}, loader:batches_per_epoch(), loader:size().
-- step(x, ctx) returns the total loss (a 0-dim tensor) and a table of named parts {recon1 = t, ...};
-- ctx = {epoch =, iter =, step =, cfg =}. The loop owns everything else:
--   - AdamW over model's parameters with the reference's weight-decay rule (no decay for 1-D parameters
--     and biases), lr = blr·batch/256 set every iteration from the fractional epoch (warm-up, cosine);
--   - a progress line (epoch, step, each loss, lr, samples/s, ETA), a JSONL metrics log (metrics.jsonl),
--     a loss-curve PNG (loss.png) at each epoch end, reconstruction grids (recon_eNNN.png) every
--     cfg.grid_every epochs through opts.visualize(x) -> rows of images;
--   - checkpoints (checkpoint.safetensors, written atomically) every cfg.ckpt_every epochs, at the end and
--     on Ctrl-C, holding model, optimizer, step, RNG and data cursor, so `resume=true` continues exactly;
--   - NaN/Inf detection: the run stops with a message naming the step and the losses, and the last good
--     checkpoint is left untouched.
-- Config keys read: epochs, warmup, blr, min_lr, batch, wd, betas, out, ckpt_every, grid_every,
-- log_every, resume, max_steps (stop early, for tests and demos), seed.
local dama = require 'dama'

local T = {}

local function fmt_time(s)
  if s ~= s or s == math.huge then return '?' end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format('%dh%02dm', s / 3600, (s % 3600) / 60) end
  if s >= 60 then return string.format('%dm%02ds', s / 60, s % 60) end
  return s .. 's'
end

local function now()
  local ffi = require 'ffi'
  if not T._tv then
    pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } dama_timespec; int clock_gettime(int, dama_timespec *);')
    T._tv = ffi.new('dama_timespec')
  end
  ffi.C.clock_gettime(1, T._tv)
  return tonumber(T._tv.tv_sec) + tonumber(T._tv.tv_nsec) * 1e-9
end
T.now = now

-- JSON for one metrics line / the saved config (dama.checkpoint's encoder: nested tables, NaN as null).
local function to_json(t) return dama.checkpoint.json_encode(t) end
T.to_json = to_json

local function mkdir_p(path)
  os.execute('mkdir -p ' .. string.format('%q', path))
end

local function item(v) return type(v) == 'number' and v or v:item() end

-- Read back the loss history of a run (for the curve after a resume).
local function read_metrics(path)
  local hist = {}
  local f = io.open(path, 'r')
  if not f then return hist end
  for line in f:lines() do
    local rec = {}
    for k, v in line:gmatch('"([%w_]+)":(%-?[%d%.eE%+%-]+)') do rec[k] = tonumber(v) end
    if rec.step then hist[#hist + 1] = rec end
  end
  f:close()
  return hist
end

local function plot_history(path, hist, names)
  local series, xs = {}, {}
  for _, n in ipairs(names) do series[n] = {} end
  for i, rec in ipairs(hist) do
    xs[i] = rec.epoch_f or rec.step
    for _, n in ipairs(names) do series[n][i] = rec[n] or (0 / 0) end
  end
  dama.plot.lines(path, series, {x = xs, title = 'training loss', xlabel = 'epoch', ylabel = 'loss'})
end

function T.train(cfg, loader, model, step, opts)
  opts = opts or {}
  local out = cfg.out or 'runs/default'
  mkdir_p(out)
  local ckpt_path = out .. '/checkpoint.safetensors'
  local metrics_path = out .. '/metrics.jsonl'
  local epochs, warmup = cfg.epochs, cfg.warmup or 0
  local batch = cfg.batch
  local lr = cfg.lr or (cfg.blr * batch / 256)
  local iters = loader:batches_per_epoch()
  if iters < 1 then
    error(string.format('train: the data gives no full batch of %d (dataset of %d samples, drop_last)', batch,
      loader:size()), 2)
  end

  local groups = dama.optim.param_groups_weight_decay(model:named_parameters(), cfg.wd or 0.05)
  local opt = dama.optim.AdamW(groups, {lr = lr, betas = cfg.betas or {0.9, 0.95}, weight_decay = cfg.wd or 0.05})
  local sched = dama.schedule.warmup_cosine{lr = lr, min_lr = cfg.min_lr or 0, warmup_epochs = warmup,
                                            epochs = epochs}
  local global_step, start_epoch = 0, 0

  if cfg.resume then
    local f = io.open(ckpt_path, 'r')
    if f then
      f:close()
      local info = dama.checkpoint.load(ckpt_path, {model = model, optimizer = opt})
      global_step = info.step or 0
      if info.rng then dama.set_rng_state(info.rng) end
      if info.cursor then loader:set_cursor(info.cursor) end
      start_epoch = loader:cursor().epoch
      print(string.format('resumed from %s at epoch %d, step %d', ckpt_path, start_epoch, global_step))
    else
      print('resume: no checkpoint at ' .. ckpt_path .. ', starting fresh')
    end
  end
  if not cfg.resume or global_step == 0 then
    local f = io.open(metrics_path, 'w'); if f then f:close() end
  end

  -- the config as JSON for the checkpoint (Lua functions, e.g. a custom mask strategy, by name only)
  local saved_cfg = cfg.table and cfg:table() or {}
  for k, v in pairs(saved_cfg) do if type(v) == 'function' then saved_cfg[k] = 'lua function' end end
  local function save_checkpoint(reason)
    dama.checkpoint.save{path = ckpt_path, model = model, optimizer = opt, step = global_step,
                         epoch = loader:cursor().epoch, rng = dama.rng_state(), cursor = loader:cursor(),
                         extra = {reason = reason, config = to_json(saved_cfg)}}
  end

  local names = nil
  local metrics = io.open(metrics_path, 'a')
  -- samples/s over the steps since the previous progress line (so start-up costs fade out)
  local t_last, step_last = now(), global_step
  local total_steps = epochs * iters
  local max_steps = cfg.max_steps and cfg.max_steps > 0 and cfg.max_steps or math.huge
  local last_losses = {}

  local function run()
    for epoch = start_epoch, epochs - 1 do
      if loader:cursor().epoch ~= epoch then loader:set_cursor{epoch = epoch, index = 0} end
      for x, y, it in loader:epoch() do
        local epoch_f = epoch + it / iters
        sched:adjust(opt, epoch_f)
        opt:zero_grad()
        local ctx = {epoch = epoch, iter = it, step = global_step, epoch_f = epoch_f, cfg = cfg, y = y}
        local total, parts = step(x, ctx)
        local values = {total = item(total)}
        for k, v in pairs(parts or {}) do values[k] = item(v) end
        for k, v in pairs(values) do
          if v ~= v or math.abs(v) == math.huge then
            local desc = {}
            for n, u in pairs(values) do desc[#desc + 1] = string.format('%s=%.6g', n, u) end
            table.sort(desc)
            error(string.format('train: non-finite loss %s at epoch %d, step %d (%s); stopped without saving — ' ..
              'the last good checkpoint is %s', k, epoch, global_step, table.concat(desc, ', '), ckpt_path), 0)
          end
        end
        total:backward()
        opt:step()
        if opts.after_step then opts.after_step(ctx) end
        global_step = global_step + 1
        last_losses = values
        if not names then
          names = {}
          for k in pairs(values) do if k ~= 'total' then names[#names + 1] = k end end
          table.sort(names)
          names[#names + 1] = 'total'
        end
        local rec = {step = global_step, epoch = epoch, epoch_f = epoch + (it + 1) / iters, lr = opt.param_groups[1].lr}
        for k, v in pairs(values) do rec[k] = v end
        metrics:write(to_json(rec), '\n'); metrics:flush()
        local log_every = cfg.log_every or 10
        if global_step % log_every == 0 or global_step == 1 then
          local t = now()
          local sps = (global_step - step_last) * batch / math.max(t - t_last, 1e-9)
          t_last, step_last = t, global_step
          local parts_s = {}
          for _, n in ipairs(names) do parts_s[#parts_s + 1] = string.format('%s %.4f', n, values[n]) end
          local remaining = (math.min(total_steps, max_steps) - global_step) * batch / math.max(sps, 1e-9)
          io.write(string.format('epoch %d/%d  step %d  %s  lr %.3g  %.1f samples/s  ETA %s\n', epoch + 1,
            epochs, global_step, table.concat(parts_s, '  '), opt.param_groups[1].lr, sps, fmt_time(remaining)))
          io.flush()
        end
        if global_step >= max_steps then return 'max_steps' end
      end
      -- end of epoch
      if names then plot_history(out .. '/loss.png', read_metrics(metrics_path), names) end
      local ge = cfg.grid_every or 0
      if opts.visualize and ge > 0 and ((epoch + 1) % ge == 0 or epoch + 1 == epochs) then
        opts.visualize(string.format('%s/recon_e%03d.png', out, epoch + 1))
      end
      local ce = cfg.ckpt_every or 1
      if ce > 0 and (epoch + 1) % ce == 0 then save_checkpoint('epoch') end
    end
    return 'done'
  end

  local ok, res = pcall(run)
  metrics:close()
  if not ok then
    if tostring(res):find('interrupted') then
      save_checkpoint('interrupt')
      print(string.format('\ninterrupted at step %d: checkpoint saved to %s (resume with resume=true)', global_step,
        ckpt_path))
      error('interrupted', 0)
    end
    error(res, 0)
  end
  if names then plot_history(out .. '/loss.png', read_metrics(metrics_path), names) end
  save_checkpoint(res)
  if opts.visualize and res == 'max_steps' and (cfg.grid_every or 0) > 0 then
    opts.visualize(out .. '/recon_final.png')
  end
  return {step = global_step, losses = last_losses, checkpoint = ckpt_path, metrics = metrics_path}
end

setmetatable(T, {__call = function(_, ...) return T.train(...) end})
return T
