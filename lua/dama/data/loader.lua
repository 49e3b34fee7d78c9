-- dama.data.loader: the threaded loader (C workers decode and augment; runtime/api/data.h). loader(ds,
-- opts) turns a dataset into batches x f32 [B, C, H, W], y i64 [B]; the Loader methods: size,
-- batches_per_epoch, describe, cursor / set_cursor (exact resume), stats, order, next, epoch, peek.
-- Batches are identical for a seed whatever the number of workers. cells(cfg): the pretraining loader of a
-- recipe config.
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call
local tensor = require 'dama.tensor'
local dio = require 'dama.data.io'
local dataset = require 'dama.data.dataset'

local M = {}

local PIPELINES = {none = 0, train = 1, val = 2, resize = 3, rrc = 4}

local Loader = {}
Loader.__index = Loader
M.Loader = Loader

-- loader(ds, opts): batch (64), shuffle (true), drop_last (true), seed (0), workers (2; 0 = decode in the
-- calling thread), prefetch (2), pipeline ('train' | 'val' | 'resize' | 'rrc' | 'none'), out_size (128),
-- crop_size (val), resize_mode (resize: 0 nearest, 1 bilinear, 2 area), hflip (rrc), channels (0-based
-- source channel indices in output order; default ds.channels), expect_channels (files: channels every
-- file must have; default: the first file's), skip_bad (files: an unreadable file is replaced by the next
-- readable one and counted in loader:stats().skipped; a warning is printed at the end of each epoch that
-- met new ones), quiet (no warnings), device (where batches go; default: the default device).
function M.loader(ds, opts)
  opts = opts or {}
  local cfg = ffi.new('dama_loader_config')
  local keep = {}   -- Lua-owned memory referenced by cfg during create (copied by C)
  cfg.source = ({files = 0, array = 1, synth = 2})[ds.kind]
  local n = ds:size()
  cfg.n = n
  if ds.kind == 'files' then
    local paths = ffi.new('const char*[?]', n)
    for i = 1, n do paths[i - 1] = ds.paths[i] end
    keep.paths = paths
    keep.strings = ds.paths
    cfg.paths = paths
  elseif ds.kind == 'array' then
    if n == 0 then error('loader: the dataset is empty', 2) end
    local a = ds.array
    if not a:is_host() then a = a:cpu() end   -- the C workers read the array from host memory
    if not a:select(0, 0):is_contiguous() then a = a:contiguous() end
    cfg.array = a._c
    keep.array = a
  else
    cfg.synth_seed = ds.seed
    cfg.synth_size = ds.crop
    if ds.offset ~= 0 then error('loader: synthetic datasets with an offset are not supported', 2) end
  end
  if ds.labels then
    local lab = ffi.new('int64_t[?]', n)
    for i = 1, n do lab[i - 1] = ds.labels[i] end
    keep.labels = lab
    cfg.labels = lab
  end
  local pipeline = PIPELINES[opts.pipeline or 'train']
  if not pipeline then error("loader: pipeline must be one of train, val, resize, rrc, none, got '" ..
    tostring(opts.pipeline) .. "'", 2) end
  cfg.pipeline = pipeline
  cfg.out_size = opts.out_size or 128
  cfg.crop_size = opts.crop_size or 0
  cfg.resize_mode = opts.resize_mode or 2
  cfg.rrc_hflip = opts.hflip or 0
  local channels = opts.channels or ds.channels
  if channels then
    local ch = ffi.new('int32_t[?]', #channels)
    for i, c in ipairs(channels) do ch[i - 1] = c end
    keep.channels = ch
    cfg.channels = ch
    cfg.n_channels = #channels
  end
  cfg.expect_channels = opts.expect_channels or 0
  cfg.batch_size = opts.batch or 64
  cfg.shuffle = opts.shuffle == false and 0 or 1
  cfg.drop_last = opts.drop_last == false and 0 or 1
  cfg.seed = opts.seed or 0
  cfg.workers = opts.workers or 2
  cfg.prefetch = opts.prefetch or 2
  cfg.skip_bad = opts.skip_bad and 1 or 0
  local box = ffi.new('dama_loader*[1]')
  call(C.dama_loader_create, cfg, box)
  local handle = ffi.gc(box[0], C.dama_loader_destroy)
  local c, h, w = ffi.new('int32_t[1]'), ffi.new('int32_t[1]'), ffi.new('int32_t[1]')
  C.dama_loader_sample_shape(handle, c, h, w)
  return setmetatable({handle = handle, ds = ds, batch = tonumber(cfg.batch_size),
                       shape = {c[0], h[0], w[0]}, keep = keep, quiet = opts.quiet, reported_bad = 0,
                       device = opts.device}, Loader)
end

function Loader:size() return tonumber(C.dama_loader_num_samples(self.handle)) end
function Loader:batches_per_epoch() return tonumber(C.dama_loader_batches_per_epoch(self.handle)) end
function Loader:describe() return self.ds:describe() end

function Loader:cursor()
  local e, i = ffi.new('int64_t[1]'), ffi.new('int64_t[1]')
  C.dama_loader_get_cursor(self.handle, e, i)
  return {epoch = tonumber(e[0]), index = tonumber(i[0])}
end

function Loader:set_cursor(c)
  call(C.dama_loader_set_cursor, self.handle, c.epoch or 0, c.index or 0)
end

-- {skipped = distinct unreadable files met so far (skip_bad), samples = samples produced since creation}
function Loader:stats()
  local s, n = ffi.new('int64_t[1]'), ffi.new('int64_t[1]')
  C.dama_loader_stats(self.handle, s, n)
  return {skipped = tonumber(s[0]), samples = tonumber(n[0])}
end

-- The sample order of an epoch as a Lua array of 0-based dataset indices.
function Loader:order(epoch)
  local n = self.ds:size()
  local buf = ffi.new('int64_t[?]', n)
  call(C.dama_loader_epoch_order, self.handle, epoch or 0, buf)
  local r = {}
  for i = 1, n do r[i] = tonumber(buf[i - 1]) end
  return r
end

-- Host buffers for the next batch. For a host run, new tensors (the caller keeps them). For a device run, a ring
-- of two pinned staging pairs reused batch after batch: the copy of slot k to the device is issued non_blocking
-- and an event recorded after it; before the C workers' batch is written into slot k again, the event is waited
-- on, so the device has read the old bytes (runtime/api/core.h, the ordering rules at dama_synchronize).
local STAGES = 2
function Loader:_buffers(dev)
  local B, shape = self.batch, {self.batch, self.shape[1], self.shape[2], self.shape[3]}
  if dev == 'cpu' then
    return tensor.empty(shape, {dtype = 'f32', device = 'cpu'}), tensor.empty({B}, {dtype = 'i64', device = 'cpu'})
  end
  local ring = self._stages
  if not ring or ring.device ~= dev then
    ring = {device = dev, next = 1}
    self._stages = ring
  end
  local k = ring.next
  ring.next = k % STAGES + 1
  local slot = ring[k]
  if slot then
    slot.event:wait()
  else
    slot = {x = tensor.empty_pinned(shape, {dtype = 'f32', device = dev}),
            y = tensor.empty_pinned({B}, {dtype = 'i64', device = dev}), event = tensor.Event(dev)}
    ring[k] = slot
  end
  return slot.x, slot.y, slot
end

-- The next batch (x, y) or nil at the end of an epoch (the cursor then moves to the next epoch). The C workers
-- fill host memory (pinned where the device offers it); the batch is then copied once to the loader's device
-- (opts.device, else the default device), asynchronously from pinned memory.
function Loader:next()
  local B = self.batch
  local dev = tensor.device(self.device or tensor.get_default_device())
  local x, y, slot = self:_buffers(dev)
  local n = ffi.new('int64_t[1]')
  -- the C workers fill these host buffers (host-only by design); the batch moves to the device below
  call(C.dama_loader_next, self.handle, ffi.cast('float*', x:data()), ffi.cast('int64_t*', y:data()), n)
  local got = tonumber(n[0])
  if got == 0 then
    local bad = self:stats().skipped
    if bad > self.reported_bad and not self.quiet then
      io.stderr:write(string.format('data: skipped %d unreadable file(s) so far (%s)\n', bad, self.ds:describe()))
    end
    self.reported_bad = bad
    return nil
  end
  if got < B then x = x:narrow(0, 0, got); y = y:narrow(0, 0, got) end   -- the leading rows: still contiguous
  if slot then
    x, y = x:to{device = dev, non_blocking = true}, y:to{device = dev, non_blocking = true}
    slot.event:record()
  elseif got < B then
    x, y = x:contiguous(), y:contiguous()
  end
  return x, y
end

-- Iterate over the rest of the current epoch: x, y, i (i = batch index within the epoch).
function Loader:epoch()
  return function()
    local i = math.floor(self:cursor().index / self.batch)
    local x, y = self:next()
    if x == nil then return nil end
    return x, y, i
  end
end

-- The first n samples of epoch 0's order (x and y), without moving the cursor (e.g. a fixed batch to
-- visualise).
function Loader:peek(n)
  local saved = self:cursor()
  self:set_cursor{epoch = 0, index = 0}
  local x, y = self:next()
  self:set_cursor(saved)
  local k = math.min(n or x:size(0), x:size(0))
  return x:narrow(0, 0, k):contiguous(), y:narrow(0, 0, k):contiguous()
end

-- The pretraining data of a recipe config: cfg.data = a folder (ImageFolder; <data>/train if present,
-- as the reference reads data_path/train), a .npy file, or nil for the built-in synthetic cells.
-- cfg.channels (optional): a channel selection (names or 0-based indices, list or 'DAPI,NeuN'); without
-- it the synthetic data gives its first cfg.chans channels and files / arrays must have exactly cfg.chans.
-- The reference's training augmentation to cfg.img; cfg.batch, cfg.seed, cfg.workers, cfg.n_samples.
function M.cells(cfg)
  local ds
  if cfg.data == nil then
    local crop = cfg.synth_crop or math.max(16, math.floor(cfg.img * 100 / 128 + 0.5))
    ds = dataset.synthetic{n = cfg.n_samples or 30000, seed = cfg.seed + 1, crop = crop}
  elseif tostring(cfg.data):match('%.npy$') then
    ds = dataset.npy(cfg.data)
    if cfg.n_samples then
      local idx = {}
      for i = 1, math.min(cfg.n_samples, ds:size()) do idx[i] = i - 1 end
      ds = ds:subset(idx)
    end
  else
    local root = dio.is_dir(cfg.data .. '/train') and (cfg.data .. '/train') or cfg.data
    ds = dataset.ImageFolder(root)
  end
  if cfg.channels then
    ds = ds:select_channels(cfg.channels)
  elseif ds.kind == 'synth' and cfg.chans < 7 then
    local channels = {}
    for c = 1, cfg.chans do channels[c] = c - 1 end
    ds = ds:select_channels(channels)
  end
  local c = ds:num_channels()
  if c ~= cfg.chans then
    local what = ds.kind == 'files' and string.format("'%s' (first file of %s)", ds.paths[1], cfg.data) or
      string.format("'%s'", tostring(cfg.data or 'synthetic'))
    error(string.format('data: %s has %d channels per image%s, the recipe expects chans = %d', what, c,
      cfg.channels and ' after channel selection' or '', cfg.chans), 2)
  end
  return M.loader(ds, {batch = cfg.batch, pipeline = 'train', out_size = cfg.img, seed = cfg.seed,
                       workers = cfg.workers,
                       expect_channels = ds.kind == 'files' and ds:source_channels() or 0})
end

return M
