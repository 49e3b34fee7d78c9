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
--   - a progress line (epoch, step, each loss, lr, samples/s, ETA), a JSONL metrics log (metrics.jsonl,
--     one row per finished step with its wall-clock `time` (training seconds, summed over resumes) and
--     `unix_time`), the resolved config (config.json), a loss-curve figure (loss.png; cfg.plot_format
--     'svg'/'pdf' for vector files, cfg.plot_log = false for a linear axis) at each epoch end,
--     reconstruction grids (recon_eNNN.png) every cfg.grid_every epochs through opts.visualize(path);
--   - checkpoints (checkpoint.safetensors, written atomically) every cfg.ckpt_every epochs, every
--     cfg.ckpt_steps steps and every cfg.ckpt_minutes minutes (so a kill -9 loses at most that much), at
--     the end, and on Ctrl-C, SIGTERM or SIGUSR1, holding model, optimizer, step, RNG and data cursor, so
--     `resume=true` continues exactly (the same losses and bit-identical weights as a run never stopped);
--   - run folders: a fresh run refuses a folder that already holds a checkpoint (resume=true continues
--     it, overwrite=true starts over), resume=true refuses one without a checkpoint, and an unwritable
--     out= fails naming the folder (T.prepare_out, which recipes call before building the model);
--   - NaN/Inf detection: the run stops with a message naming the step and the losses, and the last good
--     checkpoint is left untouched.
-- Exactness on a signal: a step is either finished or abandoned. The optimizer update, after_step (an
-- EMA teacher), the step count and the metrics row run as one critical section (dama.host.critical:
-- a signal is held until it ends); an interrupt anywhere else abandons the step in progress, and the
-- checkpoint holds the state after the last finished step (its step, data cursor, RNG and lr), the
-- same state a checkpoint written right after that step would hold.
-- Config keys read: epochs, warmup, blr, min_lr, batch, wd, betas, out, ckpt_every, ckpt_steps,
-- ckpt_minutes, grid_every, log_every, resume, overwrite, max_steps (stop early, for tests and demos),
-- seed.
local dama = require 'dama'
local ffi = require 'ffi'

local T = {}

local function fmt_time(s)
  if s ~= s or s == math.huge then return '?' end
  s = math.floor(s + 0.5)
  if s >= 3600 then return string.format('%dh%02dm', s / 3600, (s % 3600) / 60) end
  if s >= 60 then return string.format('%dm%02ds', s / 60, s % 60) end
  return s .. 's'
end

local function clock(id)
  if not T._tv then
    pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } dama_timespec; int clock_gettime(int, dama_timespec *);')
    T._tv = ffi.new('dama_timespec')
  end
  ffi.C.clock_gettime(id, T._tv)
  return tonumber(T._tv.tv_sec) + tonumber(T._tv.tv_nsec) * 1e-9
end
local function now() return clock(1) end          -- CLOCK_MONOTONIC
local function unix_time() return clock(0) end    -- CLOCK_REALTIME
T.now = now

-- The host's signal handling (the `dama` program); plain no-ops when the library runs elsewhere.
local host do
  local ok, h = pcall(require, 'dama.host')
  host = ok and type(h) == 'table' and h or {
    critical = function(f, ...) return f(...) end,
    take_interrupt = function() return nil end,
    terminating = function() return nil end,
  }
end
T.host = host

-- ---------------------------------------------------------------- files and folders

for _, decl in ipairs{'int mkdir(const char *, unsigned int);', 'char *strerror(int);', 'int getpid(void);',
                      'int kill(int, int);', 'void *opendir(const char *);', 'void *readdir(void *);',
                      'int closedir(void *);'} do
  pcall(ffi.cdef, decl)
end
local C = ffi.C
local EEXIST, EPERM = 17, 1

local function strerror(e) return ffi.string(C.strerror(e)) end

local function is_dir(path)
  local d = C.opendir(path)
  if d == nil then return false end
  C.closedir(d)
  return true
end

-- Names in a folder (no '.' / '..'); {} if it cannot be read.
local function list_dir(path)
  local r = {}
  local d = C.opendir(path)
  if d == nil then return r end
  while true do
    local e = C.readdir(d)
    if e == nil then break end
    local name = ffi.string(ffi.cast('const char *', e) + 19)   -- glibc's struct dirent: d_name at 19
    if name ~= '.' and name ~= '..' then r[#r + 1] = name end
  end
  C.closedir(d)
  table.sort(r)
  return r
end
T.list_dir = list_dir

-- mkdir -p; returns true or nil, message (naming the part that failed).
local function mkdir_p(path)
  local prefix = path:sub(1, 1) == '/' and '/' or ''
  for part in path:gmatch('[^/]+') do
    prefix = prefix .. part
    if C.mkdir(prefix, 511) ~= 0 then
      local e = ffi.errno()
      if e ~= EEXIST then return nil, string.format("cannot create the folder '%s': %s", prefix, strerror(e)) end
      if not is_dir(prefix) then return nil, string.format("'%s' exists and is not a folder", prefix) end
    end
    prefix = prefix .. '/'
  end
  return true
end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

local function pid_alive(pid)
  if C.kill(pid, 0) == 0 then return true end
  return ffi.errno() == EPERM
end

-- Remove '<name>.tmp.<pid>' files in dir (every '*.tmp.<pid>' when name is nil) left by a process killed while
-- writing <name> (the checkpoint writer's temporary, see safetensors.c; figures and JSON files), when that
-- process is gone (or is this one: our writes are synchronous, so a leftover of ours is from a write that failed).
function T.remove_stale_tmp(dir, name)
  local removed = {}
  local me = C.getpid()
  local pat = name and ('^' .. name:gsub('%p', '%%%0') .. '%.tmp%.(%d+)$') or '^.+%.tmp%.(%d+)$'
  for _, f in ipairs(list_dir(dir)) do
    local pid = tonumber(f:match(pat))
    if pid and (pid == me or pid > 2^31 - 1 or not pid_alive(pid)) then
      if os.remove(dir .. '/' .. f) then removed[#removed + 1] = f end
    end
  end
  return removed
end

-- Write a whole file atomically (a temporary in the same folder, then rename).
local function write_atomic(path, text)
  local tmp = string.format('%s.tmp.%d', path, C.getpid())
  local f, err = io.open(tmp, 'wb')
  if not f then error(string.format("train: cannot write '%s': %s", tmp, err), 0) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then os.remove(tmp); error(string.format("train: cannot write '%s': %s", tmp, werr), 0) end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp); error(string.format("train: cannot rename '%s' to '%s': %s", tmp, path, rerr), 0) end
end
T.write_atomic = write_atomic

-- JSON for one metrics line / the saved config: dama.json (cJSON), as everything else dama writes.
local json = require 'dama.json'
-- json_encode(t) -> one line of JSON text: dama.json.encode
T.json_encode = json.encode
local to_json = json.encode
T.to_json = to_json

local function item(v) return type(v) == 'number' and v or v:item() end

-- Read back the loss history of a run (for the curve after a resume).
local function read_metrics(path)
  local hist = {}
  local f = io.open(path, 'r')
  if not f then return hist end
  for line in f:lines() do
    -- a line cut short by a kill mid-write is not JSON: skip it
    local ok, rec = pcall(json.decode, line)
    if ok and type(rec) == 'table' and type(rec.step) == 'number' then hist[#hist + 1] = rec end
  end
  f:close()
  return hist
end

-- Keep the rows of metrics.jsonl up to `step` (a resumed run re-executes the steps after its checkpoint;
-- their old rows go, so no step is logged twice). Atomic. Returns the number of rows kept and the last
-- kept row's time.
local function truncate_metrics(path, step)
  local f = io.open(path, 'r')
  if not f then return 0 end
  local kept, dropped, last_time = {}, 0, nil
  for line in f:lines() do
    local ok, rec = pcall(json.decode, line)
    local s = ok and type(rec) == 'table' and tonumber(rec.step)
    if s and s <= step then
      kept[#kept + 1] = line
      last_time = tonumber(rec.time) or last_time
    elseif line:match('%S') then
      dropped = dropped + 1
    end
  end
  f:close()
  if dropped > 0 then write_atomic(path, #kept > 0 and (table.concat(kept, '\n') .. '\n') or '') end
  return #kept, last_time, dropped
end

-- The loss curves of a run (cfg.plot_log: on a log axis, default true).
local function plot_history(path, hist, names, cfg)
  local series, xs = {}, {}
  for _, n in ipairs(names) do series[n] = {} end
  for i, rec in ipairs(hist) do
    xs[i] = rec.epoch_f or rec.step
    for _, n in ipairs(names) do series[n][i] = rec[n] or (0 / 0) end
  end
  dama.plot.lines(path, series, {x = xs, title = 'training loss', xlabel = 'epoch', ylabel = 'loss',
                                 log_y = cfg.plot_log ~= false})
end

-- The run folder of cfg.out, checked before anything expensive is built (recipes call this before the
-- model): created if missing, writable, and holding a checkpoint exactly when resume=true expects one.
-- overwrite=true (without resume) removes the old checkpoint and metrics to start over. Errors name the
-- folder and what to do. Returns {out =, checkpoint =, metrics =, config =}.
function T.prepare_out(cfg)
  local out = cfg.out or 'runs/default'
  if type(out) ~= 'string' or out == '' then
    error(string.format('train: out= must be a folder name, got %s', tostring(out)), 0)
  end
  out = out:gsub('(.)/+$', '%1')
  local ok, err = mkdir_p(out)
  if not ok then error(string.format("train: out='%s' is not usable: %s", out, err), 0) end
  local probe = string.format('%s/.dama_write_test.%d', out, C.getpid())
  local f, ferr = io.open(probe, 'w')
  if not f then
    error(string.format("train: out='%s': the folder is not writable (%s)", out, ferr), 0)
  end
  f:close()
  os.remove(probe)
  local paths = {out = out, checkpoint = out .. '/checkpoint.safetensors', metrics = out .. '/metrics.jsonl',
                 config = out .. '/config.json'}
  local have = exists(paths.checkpoint)
  if cfg.resume then
    if not have then
      local n = #read_metrics(paths.metrics)
      error(string.format("train: resume=true, but '%s' holds no checkpoint%s; start the run without " ..
        'resume=true (or point out= at the run to continue)', out,
        n > 0 and string.format(' (metrics.jsonl logs %d step(s): the run stopped before its first ' ..
          'checkpoint; ckpt_steps= or ckpt_minutes= bound that)', n) or ''), 0)
    end
  elseif have then
    if cfg.overwrite then
      for _, p in ipairs{paths.checkpoint, paths.metrics, paths.config} do os.remove(p) end
    else
      error(string.format("train: '%s' already holds a checkpoint; continue that run with resume=true, " ..
        'start it over with overwrite=true, or choose another out=', paths.checkpoint), 0)
    end
  end
  T.remove_stale_tmp(out)   -- a checkpoint, figure or JSON temporary of a killed run
  return paths
end

-- The resolved config as a plain JSON-able table (Lua functions, e.g. a custom mask strategy, by name).
local function config_table(cfg)
  local t = cfg.table and cfg:table() or {}
  if not cfg.table then for k, v in pairs(cfg) do t[k] = v end end
  for k, v in pairs(t) do
    local ty = type(v)
    if ty == 'function' then t[k] = 'lua function'
    elseif ty ~= 'number' and ty ~= 'string' and ty ~= 'boolean' and ty ~= 'table' then t[k] = tostring(v) end
    if ty == 'number' and (v ~= v or math.abs(v) == math.huge) then t[k] = tostring(v) end
  end
  return t
end

function T.train(cfg, loader, model, step, opts)
  opts = opts or {}
  local paths = T.prepare_out(cfg)
  local out, ckpt_path, metrics_path = paths.out, paths.checkpoint, paths.metrics
  local fmt = cfg.plot_format or 'png'   -- figures: loss.<fmt>, recon_eNNN.<fmt>
  local loss_plot = out .. '/loss.' .. fmt
  local epochs, warmup = cfg.epochs, cfg.warmup or 0
  local batch = cfg.batch
  local lr = cfg.lr or (cfg.blr * batch / 256)
  local iters = loader:batches_per_epoch()
  if iters < 1 then
    error(string.format('train: the data gives no full batch of %d (dataset of %d samples, drop_last)', batch,
      loader:size()), 2)
  end

  -- given the model, the groups also re-lay its arena by group (decay, no-decay): one AdamW call per group
  local groups = dama.optim.param_groups_weight_decay(model, cfg.wd or 0.05)
  local opt = dama.optim.AdamW(groups, {lr = lr, betas = cfg.betas or {0.9, 0.95}, weight_decay = cfg.wd or 0.05})
  local sched = dama.schedule.warmup_cosine{lr = lr, min_lr = cfg.min_lr or 0, warmup_epochs = warmup,
                                            epochs = epochs}
  local global_step, start_epoch, time0 = 0, 0, 0
  -- precision (fp32 | bf16 | fp16): the GEMMs of the default device; fp16 also scales the loss (dama.amp)
  local precision = cfg.precision or 'fp32'
  dama.amp.set_precision(precision, dama.get_default_device())
  local scaler = precision == 'fp16' and dama.amp.GradScaler() or nil

  if cfg.resume then
    local info = dama.checkpoint.load(ckpt_path, {model = model, optimizer = opt})   -- restores the RNG too
    if scaler then
      local sd = type(info.extra) == 'table' and info.extra.grad_scaler or nil
      if type(sd) ~= 'table' then
        error(string.format("train: checkpoint '%s' holds no loss-scaler state, so a precision=fp16 run cannot be " ..
          "resumed from it exactly (was it written with another precision?)", ckpt_path), 0)
      end
      scaler:load_state_dict(sd)
    end
    global_step = info.step or 0
    local c = info.cursor
    if type(c) ~= 'table' or type(c.epoch) ~= 'number' or type(c.index) ~= 'number' then
      error(string.format("train: checkpoint '%s' holds no data position (cursor), so it cannot be resumed " ..
        'exactly', ckpt_path), 0)
    end
    local ok, err = pcall(loader.set_cursor, loader, c)
    if not ok then
      error(string.format("train: checkpoint '%s' holds the data position epoch %s, index %s, which this " ..
        'data cannot take (%d samples, %d batches of %d an epoch): was it saved with other data, n_samples= ' ..
        'or batch=? (%s)', ckpt_path, tostring(c.epoch), tostring(c.index), loader:size(), iters, batch,
        tostring(err)), 0)
    end
    start_epoch = loader:cursor().epoch
    time0 = type(info.extra) == 'table' and tonumber(info.extra.train_time) or nil
    local _, last_time, dropped = truncate_metrics(metrics_path, global_step)
    time0 = time0 or last_time or 0
    print(string.format('resumed from %s at epoch %d, step %d', ckpt_path, start_epoch, global_step))
    if dropped and dropped > 0 then
      print(string.format('metrics.jsonl: dropped %d row(s) logged after step %d (they run again)', dropped,
        global_step))
    end
  else
    local f = io.open(metrics_path, 'w'); if f then f:close() end
  end

  local saved_cfg = config_table(cfg)
  local cfg_json = to_json(saved_cfg)
  write_atomic(paths.config, cfg_json .. '\n')

  local t_start = now()
  local function train_time() return time0 + (now() - t_start) end

  -- The state after the last finished step (or epoch end): what a checkpoint holds. Model and optimizer
  -- tensors only change inside the critical section, so they always match it.
  local function snapshot()
    local lrs = {}
    for i, g in ipairs(opt.param_groups) do lrs[i] = g.lr end
    return {step = global_step, cursor = loader:cursor(), rng = dama.rng_state(), lrs = lrs, time = train_time(),
            scaler = scaler and scaler:state_dict() or nil}
  end
  local state = snapshot()

  local t_ckpt = now()
  local function save_checkpoint(reason, st)
    st = st or snapshot()
    for i, g in ipairs(opt.param_groups) do if st.lrs[i] then g.lr = st.lrs[i] end end
    T.remove_stale_tmp(out, 'checkpoint.safetensors')
    dama.checkpoint.save{path = ckpt_path, model = model, optimizer = opt, step = st.step,
                         epoch = st.cursor.epoch, rng = st.rng, cursor = st.cursor,
                         extra = {reason = reason, config = cfg_json, train_time = st.time,
                                  grad_scaler = st.scaler}}
    t_ckpt = now()
  end

  local names = nil
  local metrics = io.open(metrics_path, 'a')
  if not metrics then error(string.format("train: cannot append to '%s'", metrics_path), 0) end
  -- samples/s over the steps since the previous progress line (so start-up costs fade out)
  local t_last, step_last = now(), global_step
  local total_steps = epochs * iters
  local max_steps = cfg.max_steps and cfg.max_steps > 0 and cfg.max_steps or math.huge
  local ckpt_steps = tonumber(cfg.ckpt_steps) or 0
  local ckpt_seconds = (tonumber(cfg.ckpt_minutes) or 0) * 60
  local last_losses = {}

  -- the end of a step that must not stop half-way (a signal waits for it): the update, the teacher,
  -- the count, the log row, the new snapshot
  local function write_row(rec, values, t, ut)
    for k, v in pairs(values) do rec[k] = v end
    -- wall-clock fields last, in milliseconds' precision
    local line = to_json(rec):gsub('}$', string.format(',"time":%.3f,"unix_time":%.3f}', t, ut))
    metrics:write(line, '\n'); metrics:flush()
  end
  local function check_finite(values, epoch, step_index)
    for k, v in pairs(values) do
      if v ~= v or math.abs(v) == math.huge then
        local desc = {}
        for n, u in pairs(values) do desc[#desc + 1] = string.format('%s=%.6g', n, u) end
        table.sort(desc)
        error(string.format('train: non-finite loss %s at epoch %d, step %d (%s); stopped without saving — ' ..
          'the last good checkpoint is %s', k, epoch, step_index, table.concat(desc, ', '), ckpt_path), 0)
      end
    end
  end
  -- the update: AdamW, or under fp16 the scaler's (skipped when a gradient overflowed; the scale adapts)
  local function update()
    if scaler then scaler:step(opt); scaler:update() else opt:step() end
  end
  local function finish_step(ctx, values, epoch, it)
    update()
    if opts.after_step then opts.after_step(ctx) end
    global_step = global_step + 1
    last_losses = values
    local rec = {step = global_step, epoch = epoch, epoch_f = epoch + (it + 1) / iters, lr = opt.param_groups[1].lr}
    write_row(rec, values, train_time(), unix_time())
    state = snapshot()
  end

  -- On a device whose memory the host cannot read (a GPU, the sim test device) the losses of each step stay there:
  -- each step's are stacked into one small tensor, and the pending rows are read with one copy per log line
  -- (and before a checkpoint, a plot, the end). The NaN check goes with that read and still names the step; the
  -- steps after a bad one have then run, but nothing is saved.
  local pending, loss_names = {}, nil
  local function flush_losses()
    if #pending == 0 then return end
    local vecs = {}
    for i, p in ipairs(pending) do vecs[i] = p.losses end
    local rows = dama.no_grad(function() return dama.stack(vecs, 0) end):cpu():totable()   -- the one read
    local list = pending
    pending = {}
    for i, p in ipairs(list) do
      local values = {}
      for j, n in ipairs(loss_names) do values[n] = rows[i][j] end
      check_finite(values, p.epoch, p.step_index)
      write_row(p.rec, values, p.time, p.unix)
      last_losses = values
    end
  end
  local function finish_step_deferred(ctx, losses, epoch, it)
    update()
    if opts.after_step then opts.after_step(ctx) end
    pending[#pending + 1] = {losses = losses, epoch = epoch, step_index = global_step, time = train_time(),
                             unix = unix_time(),
                             rec = {step = global_step + 1, epoch = epoch, epoch_f = epoch + (it + 1) / iters,
                                    lr = opt.param_groups[1].lr}}
    global_step = global_step + 1
    state = snapshot()
  end
  local base_save = save_checkpoint
  save_checkpoint = function(reason, st)
    flush_losses()   -- every finished step's row is on disk before the checkpoint that counts it
    return base_save(reason, st)
  end

  -- the names of the losses, from the first step's parts (sorted, 'total' last)
  local function set_names(parts)
    if names then return end
    names = {}
    for k in pairs(parts or {}) do if k ~= 'total' then names[#names + 1] = k end end
    table.sort(names)
    names[#names + 1] = 'total'
    loss_names = names
  end
  -- the step's losses as one small device tensor, in loss_names order (read back by flush_losses)
  local function loss_vector(total, parts)
    return dama.no_grad(function()
      local list = {}
      for j, n in ipairs(loss_names) do
        local v = n == 'total' and total or parts[n]
        list[j] = (type(v) == 'number' and total:new_full({}, v) or v:detach()):float()
      end
      return dama.stack(list, 0)
    end)
  end

  -- cuda_graph = true on a cuda device: the forward and backward of a step are captured once per graph key
  -- (opts.graph_key(ctx): what the step's host-side choices depend on, e.g. the stable epochs) and batch shape,
  -- after one eager step with that key, then replayed; a capture that fails (a host read in the step, an op
  -- without a capture-safe kernel) says why and the run goes on eagerly.
  local graphs = nil
  if cfg.cuda_graph then
    if not tostring(dama.get_default_device()):match('^cuda') then
      error(string.format('train: cuda_graph=true needs a cuda device, the run is on %s', dama.get_default_device()), 0)
    end
    graphs = {warm = {}, cur = nil}
  end
  local function same_shape(a, b)
    if a:dim() ~= b:dim() then return false end
    for d = 0, a:dim() - 1 do if a:size(d) ~= b:size(d) then return false end end
    return a.dtype == b.dtype
  end
  local function capture_step(x, ctx, key)
    if graphs.cur then graphs.cur.g:destroy(); graphs.cur = nil end
    if graphs.failed then return end
    local xs = x:clone()
    local ok, g = pcall(dama.cuda.graph, function()
      opt:zero_grad()
      local total, parts = step(xs, ctx)
      set_names(parts)
      local vec = loss_vector(total, parts)
      if scaler then scaler:scale(total):backward() else total:backward() end
      return vec
    end)
    if ok then
      graphs.cur = {g = g, x = xs, key = key}
      print(string.format('cuda graph: the step (%s) is captured: %d nodes, replayed from now on', key, g:info().nodes))
    else
      graphs.failed = tostring(g)
      print('cuda graph: the capture failed, the run goes on eagerly: ' .. graphs.failed)
    end
  end

  local function run()
    for epoch = start_epoch, epochs - 1 do
      if loader:cursor().epoch ~= epoch then loader:set_cursor{epoch = epoch, index = 0} end
      for x, y, it in loader:epoch() do
        local epoch_f = epoch + it / iters
        sched:adjust(opt, epoch_f)
        local ctx = {epoch = epoch, iter = it, step = global_step, epoch_f = epoch_f, cfg = cfg, y = y}
        local log_every = cfg.log_every or 10
        local gkey = graphs and (opts.graph_key and opts.graph_key(ctx) or 'step') or nil
        if gkey and graphs.warm[gkey] and not (graphs.cur and graphs.cur.key == gkey and same_shape(graphs.cur.x, x)) then
          capture_step(x, ctx, gkey)
        end
        if gkey and graphs.cur and graphs.cur.key == gkey then
          -- the captured forward + backward, replayed on this batch; the update stays eager (lr, scaler, EMA)
          graphs.cur.x:copy_(x)
          graphs.cur.g:replay()
          local vec = graphs.cur.g.outputs[1]:clone()   -- the graph refills its output at every replay
          host.critical(finish_step_deferred, ctx, vec, epoch, it)
          if global_step % log_every == 0 or global_step == 1 or global_step >= max_steps then flush_losses() end
        else
          opt:zero_grad()
          local total, parts = step(x, ctx)
          set_names(parts)
          if total:is_host() then
            local values = {total = item(total)}
            for k, v in pairs(parts or {}) do values[k] = item(v) end
            check_finite(values, epoch, global_step)
            if scaler then scaler:scale(total):backward() else total:backward() end
            host.critical(finish_step, ctx, values, epoch, it)
          else
            local vec = loss_vector(total, parts)
            if scaler then scaler:scale(total):backward() else total:backward() end
            host.critical(finish_step_deferred, ctx, vec, epoch, it)
            if global_step % log_every == 0 or global_step == 1 or global_step >= max_steps then flush_losses() end
            if gkey then graphs.warm[gkey] = true end   -- one eager step per key first: lazy set-up is done then
          end
        end
        local values = last_losses
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
        if ckpt_steps > 0 and global_step % ckpt_steps == 0 then save_checkpoint('steps', state)
        elseif ckpt_seconds > 0 and now() - t_ckpt >= ckpt_seconds then save_checkpoint('minutes', state) end
      end
      -- end of epoch (the grid draws random masks: it is part of what a resumed run repeats)
      flush_losses()
      if names then plot_history(loss_plot, read_metrics(metrics_path), names, cfg) end
      local ge = cfg.grid_every or 0
      if opts.visualize and ge > 0 and ((epoch + 1) % ge == 0 or epoch + 1 == epochs) then
        opts.visualize(string.format('%s/recon_e%03d.%s', out, epoch + 1, fmt))
      end
      state = snapshot()
      local ce = cfg.ckpt_every or 1
      if ce > 0 and (epoch + 1) % ce == 0 then save_checkpoint('epoch', state) end
    end
    return 'done'
  end

  local ok, res = pcall(run)
  if not ok then
    if tostring(res):find('interrupted') then
      local sig = host.take_interrupt() or 'SIGINT'
      -- held as a critical section: a second signal waits until the checkpoint is complete (the pending loss rows
      -- of a device run are written first, so metrics.jsonl and the checkpoint agree)
      local saved = false
      local sok, serr = pcall(host.critical, function()
        save_checkpoint('interrupt', state)
        saved = true
      end)
      metrics:close()
      if not saved then error(sok and res or serr, 0) end
      print(string.format('\ninterrupted at step %d: checkpoint saved to %s (resume with resume=true)', state.step,
        ckpt_path))
      error(sig == 'SIGINT' and 'interrupted' or ('interrupted (' .. sig .. ')'), 0)
    end
    metrics:close()
    error(res, 0)
  end
  flush_losses()
  metrics:close()
  if names then plot_history(loss_plot, read_metrics(metrics_path), names, cfg) end
  save_checkpoint(res, state)
  if opts.visualize and res == 'max_steps' and (cfg.grid_every or 0) > 0 then
    opts.visualize(out .. '/recon_final.' .. fmt)
  end
  return {step = global_step, losses = last_losses, checkpoint = ckpt_path, metrics = metrics_path,
          loss_plot = names and loss_plot or nil}
end

setmetatable(T, {__call = function(_, ...) return T.train(...) end})
return T
