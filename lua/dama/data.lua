-- dama.data: datasets and the threaded loader (C workers decode and augment; runtime/api/data.h).
--
--   local ds = dama.data.ImageFolder('cells/train')          -- root/<class>/*.tif|png, labels from sorted names
--   local ds = dama.data.npy('cells.npy', {labels = 'labels.npy'})   -- N x H x W x C, memory-mapped
--   local ds = dama.data.synthetic{n = 30000, seed = 1}       -- built-in 7-channel multiplex cells
--   local train, val = unpack(dama.data.random_split(ds, {0.6, 0.4}, seed))
--   local loader = dama.data.loader(train, {batch = 64, pipeline = 'train', out_size = 128, workers = 2})
--   for x, y, i in loader:epoch() do ... end                  -- x f32 [B, C, 128, 128], y i64 [B]
--
-- Datasets are descriptions (file lists, an array, or the synthetic generator), cheap to subset and
-- split; the loader turns one into batches. Batches are identical for a seed whatever the number of
-- workers; loader:cursor() / loader:set_cursor() give exact resume.
local dama = require 'dama'
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call
local tensor = require 'dama.tensor'

local D = {}

local Dataset = {}
Dataset.__index = Dataset

local function new_dataset(t) return setmetatable(t, Dataset) end

function Dataset:size()
  if self.kind == 'files' then return #self.paths end
  if self.kind == 'array' then return self.array:size(0) end
  return self.n
end
Dataset.__len = Dataset.size

-- Labels as a Lua array (1-based positions, values are class indices; -1 when unlabelled).
function Dataset:label_list()
  if self.kind == 'synth' then
    local r = {}
    for i = 1, self.n do r[i] = C.dama_synth_cell_label(self.seed, self.offset + i - 1) end
    return r
  end
  if not self.labels then
    local r = {}
    for i = 1, self:size() do r[i] = -1 end
    return r
  end
  return self.labels
end

function Dataset:describe()
  if self.kind == 'files' then return string.format('%d image files under %s', #self.paths, self.root or '?') end
  if self.kind == 'array' then
    return string.format('array %s (%s)', self.array:shape_string(), self.source or 'memory')
  end
  return string.format('synthetic multiplex cells (seed %d, %d×%d)', self.seed, self.crop, self.crop)
end

-- A new dataset with the samples at `indices` (0-based, in that order).
function Dataset:subset(indices)
  local n = #indices
  if self.kind == 'files' then
    local paths, labels = {}, self.labels and {} or nil
    for i = 1, n do
      local k = indices[i]
      if k < 0 or k >= #self.paths then error(string.format('subset: index %d out of range [0, %d)', k, #self.paths), 2) end
      paths[i] = self.paths[k + 1]
      if labels then labels[i] = self.labels[k + 1] end
    end
    return new_dataset{kind = 'files', paths = paths, labels = labels, classes = self.classes, root = self.root}
  elseif self.kind == 'array' then
    local idx = tensor.tensor(indices, 'i64')
    local labels
    if self.labels then
      labels = {}
      for i = 1, n do labels[i] = self.labels[indices[i] + 1] end
    end
    return new_dataset{kind = 'array', array = self.array:index_select(0, idx):contiguous(), labels = labels,
                       classes = self.classes, source = (self.source or 'array') .. ' (subset)'}
  end
  -- synthetic crops are a pure function of (seed, index): materialise the chosen ones
  local crop = self.crop
  local arr = tensor.empty({n, crop, crop, 7}, 'u16')
  local p = ffi.cast('uint16_t*', arr:data())
  local lab = ffi.new('int32_t[1]')
  local labels = {}
  for i = 1, n do
    call(C.dama_synth_cell, self.seed, self.offset + indices[i], crop, p + (i - 1) * crop * crop * 7, lab)
    labels[i] = lab[0]
  end
  return new_dataset{kind = 'array', array = arr, labels = labels, classes = self.classes,
                     source = 'synthetic (subset)'}
end

-- Shuffled index list from the Philox generator (reproducible for a seed).
local function permutation(n, seed)
  local rng = ffi.new('dama_rng', {seed, 0})
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_randperm, box, n, 7, rng)
  local t = tensor.Tensor._wrap(box[0])
  local p = ffi.cast('int64_t*', t:data())
  local r = {}
  for i = 1, n do r[i] = tonumber(p[i - 1]) end
  return r
end
D.permutation = permutation

-- random_split(ds, {0.6, 0.4}, seed) -> {ds1, ds2}; fractions (summing to 1) or counts.
function D.random_split(ds, parts, seed)
  local n = ds:size()
  local counts, total = {}, 0
  local frac = 0
  for _, v in ipairs(parts) do frac = frac + v end
  for i, v in ipairs(parts) do
    counts[i] = (math.abs(frac - 1) < 1e-6) and math.floor(v * n) or v
    total = total + counts[i]
  end
  if math.abs(frac - 1) < 1e-6 then
    local i = 1
    while total < n do counts[i] = counts[i] + 1; total = total + 1; i = i % #counts + 1 end
  end
  if total ~= n then error(string.format('random_split: parts sum to %d, the dataset has %d samples', total, n), 2) end
  local perm = permutation(n, seed or 0)
  local out, pos = {}, 0
  for i, c in ipairs(counts) do
    local idx = {}
    for k = 1, c do idx[k] = perm[pos + k] end
    pos = pos + c
    out[i] = ds:subset(idx)
  end
  return out
end

-- stratified_split(ds, 0.6, seed) -> {first, rest}: the fraction taken per class (rounded half up).
function D.stratified_split(ds, fraction, seed)
  local labels = ds:label_list()
  local by_class, classes = {}, {}
  for i, l in ipairs(labels) do
    if not by_class[l] then by_class[l] = {}; classes[#classes + 1] = l end
    table.insert(by_class[l], i - 1)
  end
  table.sort(classes)
  local a, b = {}, {}
  for ci, l in ipairs(classes) do
    local members = by_class[l]
    local perm = permutation(#members, (seed or 0) * 1000003 + ci)
    local take = math.floor(#members * fraction + 0.5)
    for k, p in ipairs(perm) do
      if k <= take then a[#a + 1] = members[p + 1] else b[#b + 1] = members[p + 1] end
    end
  end
  table.sort(a); table.sort(b)
  return {ds:subset(a), ds:subset(b)}
end

-- concat({ds1, ds2, ...}): file lists join; arrays join along dim 0 (same H, W, C).
function D.concat(list)
  local kind = list[1].kind
  for i, ds in ipairs(list) do
    if ds.kind ~= kind then error(string.format('concat: dataset %d is %s, dataset 1 is %s', i, ds.kind, kind), 2) end
  end
  if kind == 'files' then
    local paths, labels = {}, {}
    for _, ds in ipairs(list) do
      local ll = ds:label_list()
      for i, p in ipairs(ds.paths) do paths[#paths + 1] = p; labels[#labels + 1] = ll[i] end
    end
    return new_dataset{kind = 'files', paths = paths, labels = labels, classes = list[1].classes, root = list[1].root}
  elseif kind == 'array' then
    local arrays, labels = {}, {}
    for _, ds in ipairs(list) do
      arrays[#arrays + 1] = ds.array
      for _, l in ipairs(ds:label_list()) do labels[#labels + 1] = l end
    end
    return new_dataset{kind = 'array', array = tensor.cat(arrays, 0), labels = labels, classes = list[1].classes,
                       source = 'concat'}
  end
  error('concat: synthetic datasets cannot be concatenated; take subsets first', 2)
end

-- ---------------------------------------------------------------- constructors

local function list_dir(dir)
  local p = io.popen('ls -1 ' .. string.format('%q', dir) .. ' 2>/dev/null')
  local r = {}
  for line in p:lines() do r[#r + 1] = line end
  p:close()
  table.sort(r)
  return r
end

local function is_dir(path)
  local ok = os.execute('test -d ' .. string.format('%q', path))
  return ok == true or ok == 0
end

local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end

local IMAGE_EXT = {tif = true, tiff = true, png = true, jpg = true, jpeg = true, bmp = true, npy = true}

-- ImageFolder(root): root/<class>/<files>, classes sorted by name, label = class index.
function D.ImageFolder(root, opts)
  opts = opts or {}
  if not is_dir(root) then error(string.format("ImageFolder: '%s' is not a folder", root), 2) end
  local classes, paths, labels = {}, {}, {}
  for _, name in ipairs(list_dir(root)) do
    local dir = root .. '/' .. name
    if is_dir(dir) then
      classes[#classes + 1] = name
      for _, f in ipairs(list_dir(dir)) do
        local ext = f:match('%.([%w]+)$')
        if ext and (opts.extensions or IMAGE_EXT)[ext:lower()] then
          paths[#paths + 1] = dir .. '/' .. f
          labels[#labels + 1] = #classes - 1
        end
      end
    end
  end
  if #paths == 0 then
    error(string.format("ImageFolder: no images under '%s' (expected %s/<class>/*.tif|png)", root, root), 2)
  end
  return new_dataset{kind = 'files', paths = paths, labels = labels, classes = classes, root = root}
end

local function load_npy(path, mmap)
  if not exists(path) then error(string.format("npy: '%s' does not exist", path), 3) end
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_npy_load, path, mmap and 1 or 0, box)
  return tensor.Tensor._wrap(box[0])
end
D.load_npy = load_npy

-- npy(path[, {labels = path_or_table, mmap = true}]): an N x H x W x C (or N x H x W) u8/u16/f32 array.
function D.npy(path, opts)
  opts = opts or {}
  local arr = load_npy(path, opts.mmap ~= false)
  if arr:dim() ~= 3 and arr:dim() ~= 4 then
    error(string.format("npy: '%s' has shape %s, expected N x H x W x C or N x H x W", path, arr:shape_string()), 2)
  end
  local labels
  if type(opts.labels) == 'string' then
    local l = load_npy(opts.labels, false)
    if l:size(0) ~= arr:size(0) then
      error(string.format("npy: %d labels in '%s' for %d images", l:size(0), opts.labels, arr:size(0)), 2)
    end
    labels = {}
    local lt = l:to('i64'):contiguous()
    local p = ffi.cast('int64_t*', lt:data())
    for i = 1, lt:size(0) do labels[i] = tonumber(p[i - 1]) end
  elseif type(opts.labels) == 'table' then
    labels = opts.labels
  end
  return new_dataset{kind = 'array', array = arr, labels = labels, source = path, classes = opts.classes}
end

-- synthetic{n = 30000, seed = 1, crop = 100}: labelled single-cell crops (5 classes) of the built-in
-- 7-channel generator (DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1).
function D.synthetic(opts)
  opts = opts or {}
  local classes = {}
  for k = 0, 4 do classes[k + 1] = ffi.string(C.dama_synth_class_name(k)) end
  return new_dataset{kind = 'synth', n = opts.n or 30000, seed = opts.seed or 1, crop = opts.crop or 100,
                     offset = opts.offset or 0, classes = classes}
end

function D.channel_names()
  local r = {}
  for k = 0, 6 do r[k + 1] = ffi.string(C.dama_synth_channel_name(k)) end
  return r
end

-- ---------------------------------------------------------------- the loader

local PIPELINES = {none = 0, train = 1, val = 2, resize = 3, rrc = 4}

local Loader = {}
Loader.__index = Loader

-- loader(ds, opts): batch, shuffle (true), drop_last (true), seed (0), workers (2), prefetch (2),
-- pipeline ('train' | 'val' | 'resize' | 'rrc' | 'none'), out_size (128), crop_size (val), channels
-- (0-based source channel indices, in output order), expect_channels, skip_bad.
function D.loader(ds, opts)
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
    cfg.paths = paths
  elseif ds.kind == 'array' then
    cfg.array = ds.array._c
    keep.array = ds.array
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
  if opts.channels then
    local ch = ffi.new('int32_t[?]', #opts.channels)
    for i, c in ipairs(opts.channels) do ch[i - 1] = c end
    keep.channels = ch
    cfg.channels = ch
    cfg.n_channels = #opts.channels
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
                       shape = {c[0], h[0], w[0]}, keep = keep}, Loader)
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

function Loader:stats()
  local s, n = ffi.new('int64_t[1]'), ffi.new('int64_t[1]')
  C.dama_loader_stats(self.handle, s, n)
  return {skipped = tonumber(s[0]), samples = tonumber(n[0])}
end

-- The next batch (x, y) or nil at the end of an epoch (the cursor then moves to the next epoch).
function Loader:next()
  local B = self.batch
  local x = tensor.empty({B, self.shape[1], self.shape[2], self.shape[3]})
  local y = tensor.empty({B}, 'i64')
  local n = ffi.new('int64_t[1]')
  call(C.dama_loader_next, self.handle, ffi.cast('float*', x:data()), ffi.cast('int64_t*', y:data()), n)
  local got = tonumber(n[0])
  if got == 0 then return nil end
  if got < B then x = x:narrow(0, 0, got):contiguous(); y = y:narrow(0, 0, got):contiguous() end
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

-- The first n samples of epoch 0's order, without moving the cursor (e.g. a fixed batch to visualise).
function Loader:peek(n)
  local saved = self:cursor()
  self:set_cursor{epoch = 0, index = 0}
  local x = self:next()
  self:set_cursor(saved)
  return x:narrow(0, 0, math.min(n, x:size(0))):contiguous()
end

-- ---------------------------------------------------------------- what recipes use

-- The pretraining data of a recipe config: cfg.data = a folder (ImageFolder; <data>/train if present,
-- as the reference reads data_path/train), a .npy file, or nil for the built-in synthetic cells.
-- The reference's training augmentation to cfg.img; cfg.chans channels (checked against the files).
function D.cells(cfg)
  local ds
  if cfg.data == nil then
    local crop = cfg.synth_crop or math.max(16, math.floor(cfg.img * 100 / 128 + 0.5))
    ds = D.synthetic{n = cfg.n_samples or 30000, seed = cfg.seed + 1, crop = crop}
  elseif tostring(cfg.data):match('%.npy$') then
    ds = D.npy(cfg.data)
    if cfg.n_samples then
      local idx = {}
      for i = 1, math.min(cfg.n_samples, ds:size()) do idx[i] = i - 1 end
      ds = ds:subset(idx)
    end
  else
    local root = is_dir(cfg.data .. '/train') and (cfg.data .. '/train') or cfg.data
    ds = D.ImageFolder(root)
  end
  if ds.kind == 'array' then
    local a = ds.array
    local c = a:dim() == 4 and a:size(3) or 1
    if c ~= cfg.chans then
      error(string.format("data: '%s' has %d channels per image, the recipe expects chans = %d", cfg.data, c,
        cfg.chans), 2)
    end
  end
  local channels
  if ds.kind == 'synth' and cfg.chans < 7 then
    channels = {}
    for c = 1, cfg.chans do channels[c] = c - 1 end
  end
  return D.loader(ds, {batch = cfg.batch, pipeline = 'train', out_size = cfg.img, seed = cfg.seed,
                       workers = cfg.workers, channels = channels,
                       expect_channels = ds.kind == 'files' and cfg.chans or 0})
end

return D
