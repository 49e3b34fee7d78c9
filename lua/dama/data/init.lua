-- dama.data: datasets and the threaded loader (C workers decode and augment; runtime/api/data.h).
--
--   local ds = dama.data.ImageFolder('cells/train')          -- root/<class>/*.tif|png, labels from sorted names
--   local ds = dama.data.npy('cells.npy', {labels = 'labels.npy'})   -- N x H x W x C, memory-mapped
--   local ds = dama.data.synthetic{n = 30000, seed = 1}       -- built-in 7-channel multiplex cells
--   ds = ds:select_channels{'DAPI', 'NeuN'}                   -- by OME / generator name, or {0, 2} by index
--   local train, val = unpack(dama.data.random_split(ds, {0.6, 0.4}, seed))
--   for r, s in ipairs(dama.data.repeated_splits(ds, {0.6, 0.4}, 10, seed)) do ... s[1], s[2] ... end
--   local loader = dama.data.loader(train, {batch = 64, pipeline = 'train', out_size = 128, workers = 2})
--   for x, y, i in loader:epoch() do ... end                  -- x f32 [B, C, 128, 128], y i64 [B]
--
-- Datasets are descriptions (file lists, an array, or the synthetic generator), cheap to subset and
-- split; the loader turns one into batches. Batches are identical for a seed whatever the number of
-- workers; loader:cursor() / loader:set_cursor() give exact resume.
--
-- Every dataset has:
--   ds:size() (#ds), ds:label_list() (Lua array of class indices, -1 = unlabelled), ds.classes (names or
--   nil), ds.index (positions in the dataset it was derived from by subset/split, 0-based; nil for a
--   root dataset), ds.channels (0-based source channel indices in output order, nil = all),
--   ds:num_channels() (channels the loader will produce), ds:subset(indices), ds:select_channels(sel).
--
-- Single images (H x W x C tensors in the file's dtype; outputs of the augmentations are f32 C x H x W
-- scaled like ToTensor):
--   dama.data.read(path), dama.data.read_f32(path[, expect_c]), dama.data.write(path, t),
--   dama.data.info(path), dama.data.ome_channel_names(path),
--   dama.data.augment_train(img, out_size, seed, epoch, index), dama.data.augment_val(img, crop, out_size),
--   dama.data.read_window(path, x, y, w, h[, channels]) (TIFF, bounded memory), dama.data.write_tiff_fast(path, t)
--   (uncompressed, no fsync: for many small files).
-- For builders (datasets/): dama.data.npy_writer(path, dtype, row_shape) (row by row, bounded memory) and
-- dama.data.progress(total, unit) (a progress bar with rate and ETA).
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call
local tensor = require 'dama.tensor'

local D = {}

local Dataset = {}
Dataset.__index = Dataset
D.Dataset = Dataset

local function new_dataset(t) return setmetatable(t, Dataset) end

-- Metadata every derived dataset inherits.
local INHERIT = {'classes', 'channels', 'channel_names', 'root', 'source', 'kind', 'seed', 'crop', 'offset'}
local function derive(ds, fields)
  local t = {}
  for _, k in ipairs(INHERIT) do t[k] = ds[k] end
  for k, v in pairs(fields) do t[k] = v end
  return new_dataset(t)
end

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

-- ---------------------------------------------------------------- single images

-- Header facts of an image file: {width, height, channels, dtype (dama_dtype id), tiled, bigtiff,
-- pages, format, tile_w, tile_h}.
function D.info(path)
  local info = ffi.new('dama_image_info')
  call(C.dama_image_info_read, path, info)
  return {width = tonumber(info.width), height = tonumber(info.height), channels = tonumber(info.channels),
          dtype = tonumber(info.dtype), planar = tonumber(info.planar), tiled = info.tiled ~= 0,
          bigtiff = info.bigtiff ~= 0, tile_w = tonumber(info.tile_w), tile_h = tonumber(info.tile_h),
          pages = tonumber(info.n_pages), format = tonumber(info.format)}
end

-- OME channel names of a TIFF as a Lua array ({} when the file has no OME-XML).
function D.ome_channel_names(path)
  local n = ffi.new('int32_t[1]')
  local len = 4096
  for _ = 1, 6 do
    local buf = ffi.new('char[?]', len)
    local s = C.dama_ome_channel_names(path, buf, len, n)
    if s == 0 then
      local r = {}
      if n[0] == 0 then return r end
      for name in (ffi.string(buf) .. '\n'):gmatch('([^\n]*)\n') do r[#r + 1] = name end
      return r
    end
    if s ~= 1 or len >= 4096 * 32 then dffi.raise(s, 2) end   -- 1 = DAMA_ERR_ARG: buffer too small
    len = len * 4
  end
  return {}
end

-- The whole image as an H x W x C tensor of the file's dtype (an H x W file gives H x W x 1).
function D.read(path)
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_image_read, path, box)
  local t = tensor.Tensor._wrap(box[0])
  if t:dim() == 2 then t = t:unsqueeze(2) end
  return t
end

-- The whole image as f32 H x W x C scaled like ToTensor (u16 / 65535, u8 / 255); expect_c > 0 checks
-- the channel count.
function D.read_f32(path, expect_c)
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_image_read_f32_tensor, path, expect_c or 0, box)
  local t = tensor.Tensor._wrap(box[0])
  if t:dim() == 2 then t = t:unsqueeze(2) end
  return t
end

-- Write an H x W x C (or H x W) tensor by extension: .tif/.tiff, .png, .npy (atomic).
function D.write(path, t)
  call(C.dama_image_write, path, t._c)
  return path
end

-- An uncompressed little-endian TIFF of an H x W x C (or H x W) u8 / u16 / f32 tensor, one strip,
-- PlanarConfiguration 1, written without fsync (dama.data.write is atomic and fsyncs, about 12 ms a
-- file: too slow for the set builders' many small crops). Readable by libtiff and tifffile ((H, W, C)).
local TIFF_BITS = {u8 = 8, u16 = 16, f32 = 32}
-- write_tiff_fast(path, t): write an [H, W, C] u8/u16/f32 tensor as an uncompressed interleaved TIFF.
function D.write_tiff_fast(path, t)
  local dt = t:type()
  local bits = TIFF_BITS[dt]
  if not bits then error(string.format("write_tiff_fast: '%s': expected u8, u16 or f32, got %s", path, dt), 2) end
  if t:dim() ~= 2 and t:dim() ~= 3 then
    error(string.format("write_tiff_fast: '%s': expected H x W x C, got shape %s", path, t:shape_string()), 2)
  end
  t = t:contiguous()
  local h, w, c = t:size(0), t:size(1), t:dim() == 3 and t:size(2) or 1
  local nbytes = h * w * c * bits / 8
  local function u16(v) return string.char(v % 256, math.floor(v / 256) % 256) end
  local function u32(v) return u16(v % 65536) .. u16(math.floor(v / 65536)) end
  local ntags = c > 1 and 12 or 11
  local ifd_off = 8 + nbytes + (nbytes % 2)
  local extra_off = ifd_off + 2 + ntags * 12 + 4
  local extra = {}
  local function shorts(vals)   -- a SHORT array: inline when it fits in 4 bytes, else in the extra area
    local s = {}
    for i, v in ipairs(vals) do s[i] = u16(v) end
    s = table.concat(s)
    if #s <= 4 then return s .. string.rep('\0', 4 - #s) end
    local off = extra_off + #table.concat(extra)
    extra[#extra + 1] = s
    return u32(off)
  end
  local function rep(v, n) local r = {} for i = 1, n do r[i] = v end return r end
  local tags = {}
  local function tag(id, typ, count, value) tags[#tags + 1] = u16(id) .. u16(typ) .. u32(count) .. value end
  tag(256, 4, 1, u32(w))
  tag(257, 4, 1, u32(h))
  tag(258, 3, c, shorts(rep(bits, c)))
  tag(259, 3, 1, u16(1) .. u16(0))
  tag(262, 3, 1, u16(1) .. u16(0))
  tag(273, 4, 1, u32(8))
  tag(277, 3, 1, u16(c) .. u16(0))
  tag(278, 4, 1, u32(h))
  tag(279, 4, 1, u32(nbytes))
  tag(284, 3, 1, u16(1) .. u16(0))
  if c > 1 then tag(338, 3, c - 1, shorts(rep(0, c - 1))) end
  tag(339, 3, c, shorts(rep(dt == 'f32' and 3 or 1, c)))
  local f, err = io.open(path, 'wb')
  if not f then error(string.format("write_tiff_fast: cannot write '%s': %s", path, err), 2) end
  f:write('II', u16(42), u32(ifd_off))
  f:write(ffi.string(ffi.cast('const char*', t:data()), nbytes))
  if nbytes % 2 == 1 then f:write('\0') end
  f:write(u16(ntags), table.concat(tags), u32(0), table.concat(extra))
  f:close()
  return path
end

-- A window [x, x+w) x [y, y+h) of a TIFF (reads only the strips/tiles it touches); channels: 0-based
-- indices in output order or nil for all.
function D.read_window(path, x, y, w, h, channels)
  local box = ffi.new('dama_tensor*[1]')
  local ch, nch = nil, 0
  if channels then
    nch = #channels
    ch = ffi.new('int32_t[?]', nch)
    for i, c in ipairs(channels) do ch[i - 1] = c end
  end
  call(C.dama_tiff_read_window, path, x, y, w, h, nch, ch, box)
  return tensor.Tensor._wrap(box[0])
end

-- The reference's training augmentation of one H x W x C image (u8 / u16 / f32): f32 C x out x out.
function D.augment_train(img, out_size, seed, epoch, index)
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_aug_train_tensor, box, img._c, out_size, seed or 0, epoch or 0, index or 0)
  return tensor.Tensor._wrap(box[0])
end

-- The reference's validation transform: centre crop (crop <= 0: out * 3 / 8), INTER_AREA resize to out.
function D.augment_val(img, crop, out_size)
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_aug_val_tensor, box, img._c, crop or 0, out_size)
  return tensor.Tensor._wrap(box[0])
end

-- ---------------------------------------------------------------- channels

-- Names of the built-in generator's channels: DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1.
function D.channel_names()
  local r = {}
  for k = 0, 6 do r[k + 1] = ffi.string(C.dama_synth_channel_name(k)) end
  return r
end

-- Channels of the source samples (before any selection).
function Dataset:source_channels()
  if self.kind == 'synth' then return 7 end
  if self.kind == 'array' then return self.array:dim() == 4 and self.array:size(3) or 1 end
  if not self._src_c then self._src_c = D.info(self.paths[1]).channels end
  return self._src_c
end

function Dataset:num_channels()
  return self.channels and #self.channels or self:source_channels()
end

-- Names of the samples' channels as the dataset sees them (after selection), or nil if unknown.
function Dataset:channel_name_list()
  local names = self.channel_names
  if not names and self.kind == 'synth' then names = D.channel_names() end
  if not names and self.kind == 'files' then
    local ok, r = pcall(D.ome_channel_names, self.paths[1])
    if ok and #r > 0 then names = r end
  end
  if not names then return nil end
  if not self.channels then return names end
  local r = {}
  for i, c in ipairs(self.channels) do r[i] = names[c + 1] end
  return r
end

-- split_names(sel) -> list: a channel selection 'DAPI,NeuN' (or a table) as a list of names.
local function split_names(sel)
  if type(sel) == 'string' then
    local r = {}
    for part in sel:gmatch('[^,]+') do r[#r + 1] = tonumber(part) or part:match('^%s*(.-)%s*$') end
    return r
  end
  return sel
end
D.split_names = split_names

-- Resolve a channel selection (0-based indices and / or names) against a file's OME names or a name list.
-- Returns 0-based indices in the order given.
local function resolve_channels(sel, n_src, names, where)
  sel = split_names(sel)
  if type(sel) ~= 'table' or #sel == 0 then
    error(string.format('select_channels: expected a non-empty list of channel indices or names, got %s',
      tostring(sel)), 3)
  end
  local r = {}
  for i, s in ipairs(sel) do
    if type(s) == 'number' then
      if s ~= math.floor(s) or s < 0 or s >= n_src then
        error(string.format('select_channels: %s: channel %s: expected an index in [0, %d)', where, tostring(s), n_src), 3)
      end
      r[i] = s
    else
      if not names or #names == 0 then
        error(string.format("select_channels: %s has no channel names (not an OME-TIFF?); select channel '%s' " ..
          'by its 0-based index instead', where, tostring(s)), 3)
      end
      local found
      for k, nm in ipairs(names) do if nm == s then found = k - 1 break end end
      if not found then
        error(string.format("select_channels: %s has no channel '%s' (it has: %s)", where, tostring(s),
          table.concat(names, ', ')), 3)
      end
      r[i] = found
    end
  end
  return r
end
-- resolve_channels(sel, n_channels, names, where) -> 0-based indices: sel is a list (or a comma-separated
-- string) of 0-based indices and / or names looked up in `names` (a Lua array, may be nil); errors name
-- `where`, the bad entry and the names available.
D.resolve_channels = function(sel, n_src, names, where) return resolve_channels(sel, n_src, names, where) end

-- A new dataset whose samples have the channels `sel` in that order: 0-based indices into the current
-- channels and / or names (OME-XML names for OME-TIFF files, the generator's for synthetic data,
-- opts.channel_names for arrays), a list or a 'DAPI,NeuN' string. Selections compose. For files the names
-- are resolved on the first file; opts.verify = true checks every file's OME names resolve to the same
-- indices (error naming the first file that differs).
function Dataset:select_channels(sel, opts)
  opts = opts or {}
  local n_cur = self:num_channels()
  local names = self:channel_name_list()
  local where = self.kind == 'files' and string.format("'%s'", self.paths[1]) or self:describe()
  local idx = resolve_channels(sel, n_cur, names, where)
  local src = {}
  for i, c in ipairs(idx) do src[i] = self.channels and self.channels[c + 1] or c end
  if opts.verify and self.kind == 'files' then
    local wanted = {}
    for i, s in ipairs(split_names(sel)) do if type(s) == 'string' then wanted[#wanted + 1] = {i, s} end end
    if #wanted > 0 then
      local list = {}
      for k, w in ipairs(wanted) do list[k] = w[2] end
      local joined = table.concat(list, ',')
      local out, n = ffi.new('int32_t[?]', #list), ffi.new('int32_t[1]')
      local src_names = self.channels and nil or true
      for _, p in ipairs(self.paths) do
        call(C.dama_ome_channel_indices, p, joined, out, #list, n)
        for k, w in ipairs(wanted) do
          local expect = src[w[1]]
          if src_names and out[k - 1] ~= expect then
            error(string.format("select_channels: '%s' has channel '%s' at index %d, '%s' at %d", p, w[2],
              out[k - 1], self.paths[1], expect), 2)
          end
        end
      end
    end
  end
  return derive(self, {paths = self.paths, labels = self.labels, array = self.array, n = self.n,
                       index = self.index, channels = src, _src_c = self._src_c})
end

-- ---------------------------------------------------------------- subsets, splits, concatenation

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
      arr = self.array:index_select(0, tensor.tensor(n > 0 and indices or {}, 'i64')):contiguous()
    end
    return derive(self, {array = arr, labels = labels, index = index,
                         source = (self.source or 'array'):gsub(' %(subset%)$', '') .. ' (subset)'})
  end
  -- synthetic crops are a pure function of (seed, index): materialise the chosen ones
  local crop = self.crop
  local arr = tensor.empty({n, crop, crop, 7}, 'u16')
  local p = n > 0 and ffi.cast('uint16_t*', arr:data()) or nil
  local lab = ffi.new('int32_t[1]')
  labels = {}
  for i = 1, n do
    call(C.dama_synth_cell, self.seed, self.offset + indices[i], crop, p + (i - 1) * crop * crop * 7, lab)
    labels[i] = lab[0]
  end
  return derive(self, {kind = 'array', array = arr, labels = labels, index = index, channel_names = D.channel_names(),
                       source = 'synthetic (subset)'})
end

-- Shuffled 0-based index list from the Philox generator (reproducible for a seed).
local function permutation(n, seed)
  if n == 0 then return {} end
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

-- Sample counts for parts given as fractions summing to 1 (floors, the remainder handed out one by one
-- from the first part) or as counts summing to n.
local function part_counts(parts, n, op)
  local frac, all_int = 0, true
  for _, v in ipairs(parts) do
    frac = frac + v
    if v ~= math.floor(v) then all_int = false end
  end
  local counts, total = {}, 0
  local fractional = math.abs(frac - 1) < 1e-6 and not (all_int and n == 1)
  for i, v in ipairs(parts) do
    if v < 0 then error(string.format('%s: part %d is negative (%g)', op, i, v), 3) end
    counts[i] = fractional and math.floor(v * n + 1e-9) or v
    total = total + counts[i]
  end
  if fractional then
    local i = 1
    while total < n do counts[i] = counts[i] + 1; total = total + 1; i = i % #counts + 1 end
  end
  if total ~= n then
    error(string.format('%s: parts sum to %d samples, the dataset has %d (give fractions summing to 1 or counts)',
      op, total, n), 3)
  end
  return counts
end

-- random_split(ds, {0.6, 0.4}, seed) -> {ds1, ds2}; fractions (summing to 1) or counts. Each part keeps
-- the permuted order; part.index gives the positions in ds.
function D.random_split(ds, parts, seed)
  local n = ds:size()
  local counts = part_counts(parts, n, 'random_split')
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

-- stratified_split(ds, 0.6, seed) -> {first, rest}: the fraction taken per class (rounded half up), so
-- every class keeps its proportion; both parts in ascending dataset order. Unlabelled samples (-1) are
-- a class of their own.
function D.stratified_split(ds, fraction, seed)
  if type(fraction) == 'table' then fraction = fraction[1] end
  if type(fraction) ~= 'number' or fraction < 0 or fraction > 1 then
    error('stratified_split: expected a fraction in [0, 1], got ' .. tostring(fraction), 2)
  end
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

-- repeated_splits(ds, {0.6, 0.4}, 10, seed[, {stratified = true}]) -> a list of n_repeats splits
-- ({part1, part2, ...} each): split r (1-based) is random_split(ds, parts, seed + r - 1), or with
-- stratified = true stratified_split(ds, parts[1], seed + r - 1) — the paper's 10 seeded 60/40
-- fine-tuning splits.
function D.repeated_splits(ds, parts, n_repeats, seed, opts)
  opts = opts or {}
  local r = {}
  for k = 1, n_repeats or 10 do
    local s = (seed or 0) + k - 1
    r[k] = opts.stratified and D.stratified_split(ds, parts[1], s) or D.random_split(ds, parts, s)
  end
  return r
end

-- concat({ds1, ds2, ...}): file lists join; arrays join along dim 0 (same H, W, C and dtype); the
-- channel selections must agree. Labels of unlabelled parts become -1.
function D.concat(list)
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

-- ---------------------------------------------------------------- constructors

local function list_dir(dir)
  local p = io.popen('ls -1 ' .. string.format('%q', dir) .. ' 2>/dev/null')
  local r = {}
  for line in p:lines() do r[#r + 1] = line end
  p:close()
  table.sort(r)
  return r
end

-- is_dir(path) -> true if path is a directory.
local function is_dir(path)
  local ok = os.execute('test -d ' .. string.format('%q', path))
  return ok == true or ok == 0
end
D.is_dir = is_dir

-- exists(path) -> true if path exists.
local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end
D.exists = exists

-- read_lines(path) -> the lines of a text file as a list.
local function read_lines(path)
  local r = {}
  for line in io.lines(path) do
    line = line:match('^%s*(.-)%s*$')
    if line ~= '' then r[#r + 1] = line end
  end
  return r
end
D.read_lines = read_lines

local IMAGE_EXT = {tif = true, tiff = true, png = true, jpg = true, jpeg = true, bmp = true, npy = true}

-- ImageFolder(root[, opts]): root/<class>/<files>, label = class index. Classes are the sub-folders in
-- sorted order, or opts.classes (a list of names, or a classes.txt path: one name a line), or
-- root/classes.txt when present. opts.extensions: a set of lower-case extensions (default tif, tiff,
-- png, jpg, jpeg, bmp, npy). opts.channels: a channel selection (see select_channels).
function D.ImageFolder(root, opts)
  opts = opts or {}
  if not is_dir(root) then error(string.format("ImageFolder: '%s' is not a folder", root), 2) end
  local classes = opts.classes
  if type(classes) == 'string' then classes = read_lines(classes) end
  if classes == nil and exists(root .. '/classes.txt') then classes = read_lines(root .. '/classes.txt') end
  if classes == nil then
    classes = {}
    for _, name in ipairs(list_dir(root)) do
      if is_dir(root .. '/' .. name) then classes[#classes + 1] = name end
    end
  end
  local paths, labels = {}, {}
  for ci, name in ipairs(classes) do
    local dir = root .. '/' .. name
    if not is_dir(dir) then
      error(string.format("ImageFolder: class '%s' has no folder '%s'", name, dir), 2)
    end
    for _, f in ipairs(list_dir(dir)) do
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

-- load_npy(path[, mmap]) -> tensor: read a .npy array (memory-mapped when mmap).
local function load_npy(path, mmap)
  if not exists(path) then error(string.format("npy: '%s' does not exist", path), 3) end
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_npy_load, path, mmap and 1 or 0, box)
  return tensor.Tensor._wrap(box[0])
end
D.load_npy = load_npy

-- npy(path[, opts]): an N x H x W x C (or N x H x W) u8/u16/f32 array, memory-mapped unless
-- opts.mmap == false. opts.labels: a .npy of N integers (any integer dtype) or a Lua table;
-- opts.classes: class names; opts.channel_names: names of the C channels (for select_channels by name);
-- opts.channels: a channel selection.
function D.npy(path, opts)
  opts = opts or {}
  local arr = load_npy(path, opts.mmap ~= false)
  if arr:dim() ~= 3 and arr:dim() ~= 4 then
    error(string.format("npy: '%s' has shape %s, expected N x H x W x C or N x H x W", path, arr:shape_string()), 2)
  end
  local labels
  if type(opts.labels) == 'string' then
    local l = load_npy(opts.labels, false)
    if l:dim() ~= 1 or l:size(0) ~= arr:size(0) then
      error(string.format("npy: '%s' has labels of shape %s for %d images in '%s' (expected (%d,))", opts.labels,
        l:shape_string(), arr:size(0), path, arr:size(0)), 2)
    end
    labels = {}
    local lt = l:to('i64'):contiguous()
    local p = ffi.cast('int64_t*', lt:data())
    for i = 1, lt:size(0) do labels[i] = tonumber(p[i - 1]) end
  elseif type(opts.labels) == 'table' then
    if #opts.labels ~= arr:size(0) then
      error(string.format("npy: %d labels given for %d images in '%s'", #opts.labels, arr:size(0), path), 2)
    end
    labels = opts.labels
  end
  local classes = opts.classes
  if type(classes) == 'string' then classes = read_lines(classes) end
  local ds = new_dataset{kind = 'array', array = arr, labels = labels, source = path, classes = classes,
                         channel_names = opts.channel_names}
  if opts.channels then ds = ds:select_channels(opts.channels) end
  return ds
end

-- array(t[, opts]): an in-memory N x H x W x C tensor as a dataset (opts as for npy, labels a table).
function D.array(t, opts)
  opts = opts or {}
  local ds = new_dataset{kind = 'array', array = t, labels = opts.labels, source = opts.source or 'memory',
                         classes = opts.classes, channel_names = opts.channel_names}
  if opts.channels then ds = ds:select_channels(opts.channels) end
  return ds
end

-- synthetic{n = 30000, seed = 1, crop = 100}: labelled single-cell crops (5 classes, uniform) of the
-- built-in 7-channel generator (DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1); opts.channels selects.
function D.synthetic(opts)
  opts = opts or {}
  local classes = {}
  for k = 0, 4 do classes[k + 1] = ffi.string(C.dama_synth_class_name(k)) end
  local ds = new_dataset{kind = 'synth', n = opts.n or 30000, seed = opts.seed or 1, crop = opts.crop or 100,
                         offset = opts.offset or 0, classes = classes}
  if opts.channels then ds = ds:select_channels(opts.channels) end
  return ds
end

-- ---------------------------------------------------------------- the loader

local PIPELINES = {none = 0, train = 1, val = 2, resize = 3, rrc = 4}

local Loader = {}
Loader.__index = Loader
D.Loader = Loader

-- loader(ds, opts): batch (64), shuffle (true), drop_last (true), seed (0), workers (2; 0 = decode in the
-- calling thread), prefetch (2), pipeline ('train' | 'val' | 'resize' | 'rrc' | 'none'), out_size (128),
-- crop_size (val), resize_mode (resize: 0 nearest, 1 bilinear, 2 area), hflip (rrc), channels (0-based
-- source channel indices in output order; default ds.channels), expect_channels (files: channels every
-- file must have; default: the first file's), skip_bad (files: an unreadable file is replaced by the next
-- readable one and counted in loader:stats().skipped; a warning is printed at the end of each epoch that
-- met new ones), quiet (no warnings).
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
    keep.strings = ds.paths
    cfg.paths = paths
  elseif ds.kind == 'array' then
    if n == 0 then error('loader: the dataset is empty', 2) end
    local a = ds.array
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
                       shape = {c[0], h[0], w[0]}, keep = keep, quiet = opts.quiet, reported_bad = 0}, Loader)
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

-- The next batch (x, y) or nil at the end of an epoch (the cursor then moves to the next epoch).
function Loader:next()
  local B = self.batch
  local x = tensor.empty({B, self.shape[1], self.shape[2], self.shape[3]})
  local y = tensor.empty({B}, 'i64')
  local n = ffi.new('int64_t[1]')
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

-- ---------------------------------------------------------------- what recipes use

-- The pretraining data of a recipe config: cfg.data = a folder (ImageFolder; <data>/train if present,
-- as the reference reads data_path/train), a .npy file, or nil for the built-in synthetic cells.
-- cfg.channels (optional): a channel selection (names or 0-based indices, list or 'DAPI,NeuN'); without
-- it the synthetic data gives its first cfg.chans channels and files / arrays must have exactly cfg.chans.
-- The reference's training augmentation to cfg.img; cfg.batch, cfg.seed, cfg.workers, cfg.n_samples.
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
  return D.loader(ds, {batch = cfg.batch, pipeline = 'train', out_size = cfg.img, seed = cfg.seed,
                       workers = cfg.workers,
                       expect_channels = ds.kind == 'files' and ds:source_channels() or 0})
end

-- ---------------------------------------------------------------- writing sets

-- A .npy written row by row (bounded memory): w = D.npy_writer(path, 'u16', {H, W, C}); w:write(ptr,
-- bytes) per row (or w:write_tensor(t)); w:close() fixes the row count in the header. Written to
-- path .. '.part' and renamed on close.
local NPY_DESCR = {u8 = '|u1', u16 = '<u2', f32 = '<f4', i32 = '<i4', i64 = '<i8'}
local NPY_SIZE = {u8 = 1, u16 = 2, f32 = 4, i32 = 4, i64 = 8}
local NpyWriter = {}
NpyWriter.__index = NpyWriter

local function npy_header(descr, shape)
  local dims = {}
  for i, s in ipairs(shape) do dims[i] = tostring(s) end
  local shp = '(' .. table.concat(dims, ', ') .. (#dims == 1 and ',)' or ')')
  local dict = string.format("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shp)
  local total = 128   -- fixed, so the row count can be rewritten in place
  while 10 + #dict + 1 > total do total = total + 64 end
  dict = dict .. string.rep(' ', total - 10 - #dict - 1) .. '\n'
  return '\147NUMPY\1\0' .. string.char(#dict % 256, math.floor(#dict / 256)) .. dict
end

-- npy_writer(path, dtype, row_shape) -> writer, a .npy written row by row (bounded memory): w:write(ptr, bytes)
-- per row (or w:write_tensor(t)); w:close() fixes the row count in the header. Written to path .. '.part' and
-- renamed on close. dtype: u8, u16, f32, i32, i64.
function D.npy_writer(path, dtype, row_shape)
  local descr = NPY_DESCR[dtype]
  if not descr then error("npy_writer: dtype must be u8, u16, f32, i32 or i64, got '" .. tostring(dtype) .. "'", 2) end
  local f, err = io.open(path .. '.part', 'wb')
  if not f then error(string.format("npy_writer: cannot write '%s': %s", path, err), 2) end
  local row = NPY_SIZE[dtype]
  for _, s in ipairs(row_shape) do row = row * s end
  local w = setmetatable({f = f, path = path, descr = descr, row_shape = row_shape, row_bytes = row, n = 0}, NpyWriter)
  local shape = {0}
  for i, s in ipairs(row_shape) do shape[i + 1] = s end
  w.header_len = #npy_header(descr, shape)
  f:write(npy_header(descr, shape))
  return w
end

function NpyWriter:write(ptr, bytes)
  if bytes ~= self.row_bytes then
    error(string.format("npy_writer: '%s': a row has %d bytes, got %d", self.path, self.row_bytes, bytes), 2)
  end
  self.f:write(ffi.string(ptr, bytes))
  self.n = self.n + 1
end

function NpyWriter:write_tensor(t)
  t = t:contiguous()
  self:write(ffi.cast('const char*', t:data()), t:numel() * NPY_SIZE[t:type()])
end

function NpyWriter:close()
  local shape = {self.n}
  for i, s in ipairs(self.row_shape) do shape[i + 1] = s end
  local h = npy_header(self.descr, shape)
  if #h ~= self.header_len then error("npy_writer: header grew for '" .. self.path .. "'", 2) end
  self.f:seek('set', 0)
  self.f:write(h)
  self.f:close()
  local ok, err = os.rename(self.path .. '.part', self.path)
  if not ok then error(string.format("npy_writer: cannot rename to '%s': %s", self.path, err), 2) end
  return self.n
end

-- A one-line progress bar on stderr: bar = D.progress(total, 'tiles'); bar:update(done, 'extra text');
-- bar:finish(). Rate and ETA from the wall clock; redraws at most 10 times a second (always on finish).
local Progress = {}
Progress.__index = Progress

-- Monotonic wall clock in seconds: the same declaration as dama.train's (whichever runs first wins).
local function wall()
  if not D._tv then
    pcall(ffi.cdef, 'typedef struct { long tv_sec; long tv_nsec; } dama_timespec; int clock_gettime(int, dama_timespec *);')
    D._tv = ffi.new('dama_timespec')
  end
  ffi.C.clock_gettime(1, D._tv)
  return tonumber(D._tv.tv_sec) + tonumber(D._tv.tv_nsec) * 1e-9
end
D.wall_time = wall

local function fmt_time(s)
  s = math.max(0, math.floor(s + 0.5))
  if s >= 3600 then return string.format('%d:%02d:%02d', math.floor(s / 3600), math.floor(s / 60) % 60, s % 60) end
  return string.format('%d:%02d', math.floor(s / 60), s % 60)
end

local function stderr_is_tty()
  pcall(ffi.cdef, 'int isatty(int fd);')
  local ok, r = pcall(function() return ffi.C.isatty(2) end)
  return ok and r == 1
end

-- opts: quiet, out (a file-like object; default io.stderr), tty (redraw in place with '\r'; default: whether
-- stderr is a terminal; otherwise a new line at most every 10 s and at the end).
function D.progress(total, unit, opts)
  opts = opts or {}
  local tty = opts.tty
  if tty == nil then tty = opts.out == nil and stderr_is_tty() end
  return setmetatable({total = total, unit = unit or 'items', t0 = wall(), last = -1e9, quiet = opts.quiet,
                       out = opts.out or io.stderr, tty = tty}, Progress)
end

function Progress:update(done, extra, force)
  if self.quiet then return end
  local t = wall()
  if not force and t - self.last < (self.tty and 0.1 or 10) then return end
  if not self.tty and done == self.last_done then return end   -- a log gets each state once
  self.last, self.last_done = t, done
  local el = t - self.t0
  local rate = el > 0 and done / el or 0
  local eta = rate > 0 and (self.total - done) / rate or 0
  local width = 24
  local fill = self.total > 0 and math.floor(width * done / self.total) or width
  self.out:write(string.format('%s[%s%s] %s %d/%d  %s  %.2f %s/s  elapsed %s  ETA %s %s', self.tty and '\r' or '',
    string.rep('#', fill),
    string.rep('.', width - fill), self.unit, done, self.total, extra or '', rate, self.unit, fmt_time(el),
    fmt_time(eta), self.tty and '' or '\n'))
  self.out:flush()
end

function Progress:finish(done, extra)
  self:update(done or self.total, extra, true)
  if not self.quiet and self.tty then self.out:write('\n') end
  return wall() - self.t0
end

return D
