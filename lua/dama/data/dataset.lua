-- dama.data.dataset: the Dataset class and the datasets. A dataset is a description (a file list, an
-- N x H x W x C array, or the built-in synthetic generator), cheap to subset and split: Dataset:size (#ds),
-- label_list, class_counts, describe, subset (0-based indices; array views when contiguous) and the channel
-- methods from channels.lua; derive() (a new dataset inheriting the metadata); concat; the constructors
-- ImageFolder (root/<class>/<files>), npy (a memory-mapped .npy), array (an in-memory tensor) and synthetic
-- (labelled crops of the 7-channel generator).
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call
local tensor = require 'dama.tensor'
local dio = require 'dama.data.io'
local channels = require 'dama.data.channels'

local M = {}

local Dataset = {}
Dataset.__index = Dataset
M.Dataset = Dataset

local function new_dataset(t) return setmetatable(t, Dataset) end

-- Metadata every derived dataset inherits.
local INHERIT = {'classes', 'channels', 'channel_names', 'root', 'source', 'kind', 'seed', 'crop', 'offset'}
local function derive(ds, fields)
  local t = {}
  for _, k in ipairs(INHERIT) do t[k] = ds[k] end
  for k, v in pairs(fields) do t[k] = v end
  return new_dataset(t)
end

-- The channel methods (source_channels, num_channels, channel_name_list, select_channels): channels.lua.
channels.install(Dataset, derive)

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

-- Samples per class index: {[class] = count}.
function Dataset:class_counts()
  local r = {}
  for _, l in ipairs(self:label_list()) do r[l] = (r[l] or 0) + 1 end
  return r
end

function Dataset:describe()
  local ch = self.channels and string.format(', channels {%s}', table.concat(self.channels, ',')) or ''
  if self.kind == 'files' then
    return string.format('%d image files under %s%s', #self.paths, self.root or '?', ch)
  end
  if self.kind == 'array' then
    return string.format('array %s (%s)%s', self.array:shape_string(), self.source or 'memory', ch)
  end
  return string.format('synthetic multiplex cells (seed %d, %d×%d)%s', self.seed, self.crop, self.crop, ch)
end

-- Indices i, i+1, ..., j (0-based) form one ascending run?
local function contiguous_run(indices)
  for k = 2, #indices do if indices[k] ~= indices[k - 1] + 1 then return false end end
  return true
end

-- A new dataset with the samples at `indices` (0-based, in that order). Arrays: a contiguous ascending
-- run is a view (no copy), anything else copies the chosen rows (index_select).
function Dataset:subset(indices)
  local n = #indices
  local size = self:size()
  for i = 1, n do
    local k = indices[i]
    if type(k) ~= 'number' or k < 0 or k >= size or k ~= math.floor(k) then
      error(string.format('subset: index %s (position %d) out of range [0, %d)', tostring(k), i, size), 2)
    end
  end
  local index = {}
  for i = 1, n do index[i] = self.index and self.index[indices[i] + 1] or indices[i] end
  local labels
  if self.labels then
    labels = {}
    for i = 1, n do labels[i] = self.labels[indices[i] + 1] end
  end
  if self.kind == 'files' then
    local paths = {}
    for i = 1, n do paths[i] = self.paths[indices[i] + 1] end
    return derive(self, {paths = paths, labels = labels, index = index, _src_c = self._src_c})
  elseif self.kind == 'array' then
    local arr
    if n > 0 and contiguous_run(indices) then
      arr = self.array:narrow(0, indices[1], n)
    else
      arr = self.array:index_select(0, tensor.tensor(n > 0 and indices or {}, {dtype = 'i64', device = self.array.device})):contiguous()
    end
    return derive(self, {array = arr, labels = labels, index = index,
                         source = (self.source or 'array'):gsub(' %(subset%)$', '') .. ' (subset)'})
  end
  -- synthetic crops are a pure function of (seed, index): materialise the chosen ones
  local crop = self.crop
  local arr = tensor.empty({n, crop, crop, 7}, {dtype = 'u16', device = 'cpu'})   -- filled on the host
  local p = n > 0 and ffi.cast('uint16_t*', arr:data()) or nil
  local lab = ffi.new('int32_t[1]')
  labels = {}
  for i = 1, n do
    call(C.dama_synth_cell, self.seed, self.offset + indices[i], crop, p + (i - 1) * crop * crop * 7, lab)
    labels[i] = lab[0]
  end
  return derive(self, {kind = 'array', array = arr, labels = labels, index = index, channel_names = channels.channel_names(),
                       source = 'synthetic (subset)'})
end

-- concat({ds1, ds2, ...}): file lists join; arrays join along dim 0 (same H, W, C and dtype); the
-- channel selections must agree. Labels of unlabelled parts become -1.
function M.concat(list)
  if #list == 0 then error('concat: expected at least one dataset', 2) end
  local kind = list[1].kind
  local ch1 = table.concat(list[1].channels or {}, ',')
  for i, ds in ipairs(list) do
    if ds.kind ~= kind then error(string.format('concat: dataset %d is %s, dataset 1 is %s', i, ds.kind, kind), 2) end
    if table.concat(ds.channels or {}, ',') ~= ch1 then
      error(string.format('concat: dataset %d selects channels {%s}, dataset 1 {%s}', i,
        table.concat(ds.channels or {}, ','), ch1), 2)
    end
  end
  if kind == 'files' then
    local paths, labels = {}, {}
    for _, ds in ipairs(list) do
      local ll = ds:label_list()
      for i, p in ipairs(ds.paths) do paths[#paths + 1] = p; labels[#labels + 1] = ll[i] end
    end
    return derive(list[1], {paths = paths, labels = labels, index = nil})
  elseif kind == 'array' then
    local arrays, labels = {}, {}
    for i, ds in ipairs(list) do
      local a = list[1].array
      if ds.array:type() ~= a:type() or ds.array:dim() ~= a:dim() or ds.array:size(1) ~= a:size(1) or
         ds.array:size(2) ~= a:size(2) or (a:dim() == 4 and ds.array:size(3) ~= a:size(3)) then
        error(string.format('concat: dataset %d is %s %s, dataset 1 is %s %s', i, ds.array:shape_string(),
          ds.array:type(), a:shape_string(), a:type()), 2)
      end
      arrays[#arrays + 1] = ds.array
      for _, l in ipairs(ds:label_list()) do labels[#labels + 1] = l end
    end
    return derive(list[1], {array = tensor.cat(arrays, 0), labels = labels, source = 'concat', index = nil})
  end
  error('concat: synthetic datasets cannot be concatenated; take subsets first', 2)
end

local IMAGE_EXT = {tif = true, tiff = true, png = true, jpg = true, jpeg = true, bmp = true, npy = true}

-- ImageFolder(root[, opts]): root/<class>/<files>, label = class index. Classes are the sub-folders in
-- sorted order, or opts.classes (a list of names, or a classes.txt path: one name a line), or
-- root/classes.txt when present. opts.extensions: a set of lower-case extensions (default tif, tiff,
-- png, jpg, jpeg, bmp, npy). opts.channels: a channel selection (see select_channels).
function M.ImageFolder(root, opts)
  opts = opts or {}
  if not dio.is_dir(root) then error(string.format("ImageFolder: '%s' is not a folder", root), 2) end
  local classes = opts.classes
  if type(classes) == 'string' then classes = dio.read_lines(classes) end
  if classes == nil and dio.exists(root .. '/classes.txt') then classes = dio.read_lines(root .. '/classes.txt') end
  if classes == nil then
    classes = {}
    for _, name in ipairs(dio.list_dir(root)) do
      if dio.is_dir(root .. '/' .. name) then classes[#classes + 1] = name end
    end
  end
  local paths, labels = {}, {}
  for ci, name in ipairs(classes) do
    local dir = root .. '/' .. name
    if not dio.is_dir(dir) then
      error(string.format("ImageFolder: class '%s' has no folder '%s'", name, dir), 2)
    end
    for _, f in ipairs(dio.list_dir(dir)) do
      local ext = f:match('%.([%w]+)$')
      if ext and (opts.extensions or IMAGE_EXT)[ext:lower()] then
        paths[#paths + 1] = dir .. '/' .. f
        labels[#labels + 1] = ci - 1
      end
    end
  end
  if #paths == 0 then
    error(string.format("ImageFolder: no images under '%s' (expected %s/<class>/*.tif|png)", root, root), 2)
  end
  local ds = new_dataset{kind = 'files', paths = paths, labels = labels, classes = classes, root = root}
  if opts.channels then ds = ds:select_channels(opts.channels, {verify = opts.verify_channels}) end
  return ds
end


-- npy(path[, opts]): an N x H x W x C (or N x H x W) u8/u16/f32 array, memory-mapped unless
-- opts.mmap == false. opts.labels: a .npy of N integers (any integer dtype) or a Lua table;
-- opts.classes: class names; opts.channel_names: names of the C channels (for select_channels by name);
-- opts.channels: a channel selection.
function M.npy(path, opts)
  opts = opts or {}
  local arr = dio.load_npy(path, opts.mmap ~= false)
  if arr:dim() ~= 3 and arr:dim() ~= 4 then
    error(string.format("npy: '%s' has shape %s, expected N x H x W x C or N x H x W", path, arr:shape_string()), 2)
  end
  local labels
  if type(opts.labels) == 'string' then
    local l = dio.load_npy(opts.labels, false)
    if l:dim() ~= 1 or l:size(0) ~= arr:size(0) then
      error(string.format("npy: '%s' has labels of shape %s for %d images in '%s' (expected (%d,))", opts.labels,
        l:shape_string(), arr:size(0), path, arr:size(0)), 2)
    end
    labels = {}
    local lt = l:to('i64'):contiguous():cpu()   -- labels are read on the host
    local p = ffi.cast('int64_t*', lt:data())
    for i = 1, lt:size(0) do labels[i] = tonumber(p[i - 1]) end
  elseif type(opts.labels) == 'table' then
    if #opts.labels ~= arr:size(0) then
      error(string.format("npy: %d labels given for %d images in '%s'", #opts.labels, arr:size(0), path), 2)
    end
    labels = opts.labels
  end
  local classes = opts.classes
  if type(classes) == 'string' then classes = dio.read_lines(classes) end
  local ds = new_dataset{kind = 'array', array = arr, labels = labels, source = path, classes = classes,
                         channel_names = opts.channel_names}
  if opts.channels then ds = ds:select_channels(opts.channels) end
  return ds
end

-- array(t[, opts]): an in-memory N x H x W x C tensor as a dataset (opts as for npy, labels a table).
function M.array(t, opts)
  opts = opts or {}
  local ds = new_dataset{kind = 'array', array = t, labels = opts.labels, source = opts.source or 'memory',
                         classes = opts.classes, channel_names = opts.channel_names}
  if opts.channels then ds = ds:select_channels(opts.channels) end
  return ds
end

-- synthetic{n = 30000, seed = 1, crop = 100}: labelled single-cell crops (5 classes, uniform) of the
-- built-in 7-channel generator (DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1); opts.channels selects.
function M.synthetic(opts)
  opts = opts or {}
  local classes = {}
  for k = 0, 4 do classes[k + 1] = ffi.string(C.dama_synth_class_name(k)) end
  local ds = new_dataset{kind = 'synth', n = opts.n or 30000, seed = opts.seed or 1, crop = opts.crop or 100,
                         offset = opts.offset or 0, classes = classes}
  if opts.channels then ds = ds:select_channels(opts.channels) end
  return ds
end

return M
