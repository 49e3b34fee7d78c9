-- datasets/set1.lua: build Set I — a folder of labelled cells augmented up to a fixed count (30,000 in
-- the paper) for pretraining.
--
--   dama datasets/set1.lua src=cells/ out=set1/ count=30000 seed=0 size=100
--   dama datasets/set1.lua src=cells.npy labels=cells_labels.npy out=set1.npy count=30000
--   dama datasets/set1.lua out=set1.npy count=2000          -- src=synthetic: built-in labelled crops
--
-- src: an ImageFolder (root/<class>/*.tif|png; root/classes.txt fixes the class order), a .npy (N x H x W
-- x C, labels= its labels .npy) or 'synthetic' (synth_n crops of the built-in generator, synth_crop px).
-- channels: a selection kept in the output (names or 0-based indices; '' = all).
--
-- How the count is reached (mode):
--   balanced      every class gets count / K outputs (the remainder goes to the first classes), so rare
--                 classes are augmented more (the default);
--   proportional  class k gets count * n_k / N outputs (largest remainders round up), keeping the source's
--                 class proportions.
-- Within class k its n_k cells are visited in a seeded random order, over and over: the first visit of
-- each cell is the original (resized to `size` if it differs; a non-square source is centre-cropped),
-- later visits are random augmentations (originals=false: every output is augmented). If a class gets
-- fewer outputs than it has cells, a seeded random subset of its originals is taken.
-- Augmentation (C, dama_aug_train_apply; draws from Philox(seed, output index), so the set is a pure
-- function of the arguments): a random square crop of scale U(min_scale, 1) of the shorter side at a
-- uniform position, INTER_AREA resize to size x size, rotation U(-max_angle, max_angle) degrees about the
-- centre (bilinear, zero outside; rotation=right draws 0/90/180/270 degrees instead, done exactly by
-- index remapping: no interpolation, no empty corners), horizontal and vertical flips with p = 0.5 each. Values stay in the source dtype
-- (u16 in, u16 out; the resampling rounds to integers as OpenCV does).
--
-- Output: out ending in .npy: an N x size x size x C array (written row by row, bounded memory) +
-- <out>_labels.npy (int64) + <out>_manifest.csv; otherwise an ImageFolder out/<class>/<class>_<n>.tif
-- (uncompressed TIFFs in the source dtype) + out/classes.txt + out/manifest.csv. Manifest columns: index,
-- file, label, class, source (path or row), augmented (0/1), crop_top, crop_left, crop_size, angle, hflip,
-- vflip. Outputs are ordered class by class.
--
-- Also a module: local set1 = dofile('datasets/set1.lua'); set1.build{src = ..., out = ..., count = ...}.
local dama = require 'dama'
local D = dama.data
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call

local M = {}

M.defaults = {
  src = 'synthetic',   -- ImageFolder, .npy, or 'synthetic'
  labels = '',         -- labels .npy for a .npy src
  classes = '',        -- class names for a .npy src: a classes.txt (default: classes.txt beside the .npy)
  out = 'runs/set1',   -- folder (ImageFolder) or .npy
  count = 30000,       -- outputs in all
  seed = 0,
  size = 0,            -- output edge; 0 = the source's (shorter side)
  mode = 'balanced',   -- 'balanced' or 'proportional'
  originals = true,    -- the first visit of each cell is the unaugmented original
  rotation = 'any',    -- 'any' (U(-max_angle, max_angle)) or 'right' (multiples of 90 degrees)
  max_angle = 180,
  min_scale = 0.8,     -- crop scale range [min_scale, 1] of the shorter side
  channels = '',       -- channels kept ('' = all), names or indices
  synth_n = 500,       -- src=synthetic: crops
  synth_crop = 100,    -- src=synthetic: crop edge
  synth_seed = 1,
  quiet = false,
}

local function mkdir(path) os.execute('mkdir -p ' .. string.format('%q', path)) end
local function dirname(path) return path:match('^(.*)/[^/]*$') or '.' end
local function basename(path) return (path:match('([^/]+)$') or path) end

-- The source dataset of the options.
function M.source(o)
  local ds
  if o.src == 'synthetic' or o.src == '' or o.src == nil then
    ds = D.synthetic{n = o.synth_n, seed = o.synth_seed, crop = o.synth_crop}
    local idx = {}
    for i = 1, ds:size() do idx[i] = i - 1 end
    ds = ds:subset(idx)   -- materialised: an array with labels
  elseif tostring(o.src):match('%.npy$') then
    local classes = o.classes ~= '' and o.classes or nil
    local beside = (o.src:match('^(.*)/[^/]*$') or '.') .. '/classes.txt'
    if not classes and D.exists(beside) then classes = beside end
    ds = D.npy(o.src, {labels = (o.labels ~= '' and o.labels) or nil, classes = classes})
    if not ds.labels then
      error(string.format("set1: '%s' has no labels; give labels=<labels.npy> (Set I balances classes)", o.src), 2)
    end
  else
    ds = D.ImageFolder(o.src)
  end
  if o.channels and o.channels ~= '' then ds = ds:select_channels(o.channels) end
  return ds
end

-- Outputs per class: {[class index] = count} for the class sizes `sizes` ({[class] = n}).
function M.plan(sizes, count, mode)
  local classes = {}
  for k, n in pairs(sizes) do if n > 0 then classes[#classes + 1] = k end end
  table.sort(classes)
  local K = #classes
  if K == 0 then error('set1: the source has no labelled samples', 2) end
  local out = {}
  if mode == 'balanced' then
    for i, k in ipairs(classes) do out[k] = math.floor(count / K) + ((i <= count % K) and 1 or 0) end
  elseif mode == 'proportional' then
    local N = 0
    for _, k in ipairs(classes) do N = N + sizes[k] end
    local total, rema = 0, {}
    for _, k in ipairs(classes) do
      local exact = count * sizes[k] / N
      out[k] = math.floor(exact)
      total = total + out[k]
      rema[#rema + 1] = {k = k, r = exact - out[k]}
    end
    table.sort(rema, function(a, b) if a.r ~= b.r then return a.r > b.r end return a.k < b.k end)
    for i = 1, count - total do out[rema[i].k] = out[rema[i].k] + 1 end
  else
    error("set1: mode must be 'balanced' or 'proportional', got '" .. tostring(mode) .. "'", 2)
  end
  return out, classes
end

-- Uniform numbers in [0, 1) for output `index`: Philox(seed, (index, 0)), 4 per block.
local philox_out = ffi.new('uint32_t[4]')
local function draws(seed, index)
  C.dama_philox4x32(seed, index, 0, philox_out)
  local r = {}
  for i = 0, 3 do r[i + 1] = philox_out[i] / 4294967296 end
  C.dama_philox4x32(seed, index, 1, philox_out)
  for i = 0, 3 do r[i + 5] = philox_out[i] / 4294967296 end
  return r
end

local DT = {[C.DAMA_U8] = 'u8', [C.DAMA_U16] = 'u16', [C.DAMA_F32] = 'f32'}
local SCALE = {u8 = 255, u16 = 65535, f32 = 1}

function M.build(opts)
  local o = {}
  for k, v in pairs(M.defaults) do o[k] = opts[k]; if o[k] == nil then o[k] = v end end
  local t_start = D.wall_time()
  local ds = M.source(o)
  local labels = ds:label_list()
  local by_class, sizes = {}, {}
  for i, l in ipairs(labels) do
    if l < 0 then error(string.format('set1: sample %d is unlabelled (-1); Set I needs labels', i - 1), 2) end
    by_class[l] = by_class[l] or {}
    table.insert(by_class[l], i - 1)
    sizes[l] = (sizes[l] or 0) + 1
  end
  local per_class, classes = M.plan(sizes, o.count, o.mode)
  local class_name = function(k) return ds.classes and ds.classes[k + 1] or string.format('class%d', k) end

  -- geometry from the first sample
  local function load(i)   -- H x W x C tensor (source dtype) of sample i (0-based), a dama_hwc for it
    local t
    if ds.kind == 'files' then t = D.read(ds.paths[i + 1])
    else t = ds.array:select(0, i); if t:dim() == 2 then t = t:unsqueeze(2) end; t = t:contiguous() end
    local hwc = ffi.new('dama_hwc', {C.dama_data_ptr(t._c), t._c.dtype, t:size(0), t:size(1), t:size(2), 0})
    return t, hwc
  end
  local first = load(0)
  local dt = DT[first._c.dtype]
  if not dt then error('set1: the source must be u8, u16 or f32, got ' .. first:type(), 2) end
  local size = o.size > 0 and o.size or math.min(first:size(0), first:size(1))
  local nch = ds:num_channels()
  local chan = nil
  if ds.channels then
    chan = ffi.new('int32_t[?]', #ds.channels)
    for i, c in ipairs(ds.channels) do chan[i - 1] = c end
  end

  local as_npy = o.out:match('%.npy$') ~= nil
  local prefix = as_npy and o.out:gsub('%.npy$', '') or (o.out .. '/')
  mkdir(as_npy and dirname(o.out) or o.out)
  local manifest_path = as_npy and (prefix .. '_manifest.csv') or (o.out .. '/manifest.csv')
  local manifest = assert(io.open(manifest_path .. '.part', 'w'))
  manifest:write('index,file,label,class,source,augmented,crop_top,crop_left,crop_size,angle,hflip,vflip\n')
  local writer = as_npy and D.npy_writer(o.out, dt, {size, size, nch}) or nil
  local out_labels = {}

  local fbuf = ffi.new('float[?]', nch * size * size)
  local img = dama.empty({size, size, nch}, {dtype = dt, device = 'cpu'})   -- a host image for FFI loops
  local ip = img:data()
  local scale = SCALE[dt]
  local params = ffi.new('dama_aug_params')
  local bar = D.progress(o.count, 'cells', {quiet = o.quiet})
  local n_out, n_aug = 0, 0
  for _, k in ipairs(classes) do
    local members = by_class[k]
    local nk = #members
    local perm = D.permutation(nk, o.seed * 1000003 + k + 1)
    local cname = class_name(k)
    if not as_npy then mkdir(o.out .. '/' .. cname) end
    for j = 0, per_class[k] - 1 do
      local src_i = members[perm[(j % nk) + 1] + 1]
      local t, hwc = load(src_i)
      local h, w = t:size(0), t:size(1)
      local side = math.min(h, w)
      local augmented = not (o.originals and j < nk)
      local r = draws(o.seed, n_out)
      local quarter = 0   -- rotation=right: quarter turns, done exactly while converting below
      if augmented then
        local cs = math.max(1, math.floor(side * (o.min_scale + (1 - o.min_scale) * r[1]) + 0.5))
        cs = math.min(cs, side)
        params.crop_size = cs
        params.crop_top = math.floor(r[2] * (h - cs + 1))
        params.crop_left = math.floor(r[3] * (w - cs + 1))
        if o.rotation == 'right' then quarter = math.floor(r[4] * 4); params.angle = 0
        else params.angle = (2 * r[4] - 1) * o.max_angle end
        params.hflip = r[5] < 0.5 and 1 or 0
        params.vflip = r[6] < 0.5 and 1 or 0
        n_aug = n_aug + 1
      else
        params.crop_size = side
        params.crop_top, params.crop_left = math.floor((h - side) / 2), math.floor((w - side) / 2)
        params.angle, params.hflip, params.vflip = 0, 0, 0
      end
      params.out_size, params.shift_x, params.shift_y = size, 0, 0
      call(C.dama_aug_train_apply, fbuf, hwc, chan, chan and #ds.channels or 0, params)
      -- f32 C x H x W (ToTensor scale) back to the source dtype, H x W x C
      local plane, S1 = size * size, size - 1
      for c = 0, nch - 1 do
        local base = c * plane
        for y = 0, S1 do
          for x = 0, S1 do
            local sy, sx = y, x   -- counter-clockwise quarter turns: output (y, x) <- (sy, sx)
            if quarter == 1 then sy, sx = x, S1 - y
            elseif quarter == 2 then sy, sx = S1 - y, S1 - x
            elseif quarter == 3 then sy, sx = S1 - x, y end
            local v = fbuf[base + sy * size + sx] * scale
            if scale ~= 1 then v = math.floor(v + 0.5) end
            ip[(y * size + x) * nch + c] = v
          end
        end
      end
      local file
      if as_npy then
        writer:write_tensor(img)
        file = basename(o.out)
      else
        file = string.format('%s/%s_%06d.tif', cname, cname, n_out)
        D.write_tiff_fast(o.out .. '/' .. file, img)
      end
      out_labels[n_out + 1] = k
      local source = ds.kind == 'files' and ds.paths[src_i + 1] or string.format('row %d', ds.index and ds.index[src_i + 1] or src_i)
      manifest:write(string.format('%d,%s,%d,%s,%s,%d,%d,%d,%d,%.3f,%d,%d\n', n_out, file, k, cname, source,
        augmented and 1 or 0, params.crop_top, params.crop_left, params.crop_size, params.angle + 90 * quarter, params.hflip,
        params.vflip))
      n_out = n_out + 1
      bar:update(n_out)
    end
  end
  local seconds = bar:finish(n_out)
  manifest:close()
  os.rename(manifest_path .. '.part', manifest_path)
  if as_npy then
    writer:close()
    D.write(prefix .. '_labels.npy', dama.tensor(out_labels, {dtype = 'i64', device = 'cpu'}))
  else
    local f = assert(io.open(o.out .. '/classes.txt', 'w'))
    -- every source class in index order (classes without cells keep their index)
    local maxk = classes[#classes]
    for k = 0, maxk do f:write(class_name(k), '\n') end
    f:close()
  end
  return {count = n_out, augmented = n_aug, originals = n_out - n_aug, per_class = per_class, classes = classes,
          class_names = ds.classes, size = size, channels = nch, seconds = seconds,
          total_seconds = D.wall_time() - t_start, per_s = n_out / math.max(seconds, 1e-9), out = o.out,
          manifest = manifest_path, labels = as_npy and (prefix .. '_labels.npy') or nil}
end

function M.report(s)
  local parts = {}
  for _, k in ipairs(s.classes) do
    parts[#parts + 1] = string.format('%s %d', s.class_names and s.class_names[k + 1] or tostring(k), s.per_class[k])
  end
  return string.format('set1: %d cells (%d originals, %d augmented), %d x %d x %d, in %.1f s (%.0f cells/s) -> %s; ' ..
    'manifest %s\nset1: per class: %s', s.count, s.originals, s.augmented, s.size, s.size, s.channels, s.seconds,
    s.per_s, s.out, s.manifest, table.concat(parts, ', '))
end

if arg and arg[0] and arg[0]:match('set1%.lua$') then
  local cfg = dama.config(M.defaults):override(arg)
  print(M.report(M.build(cfg:table())))
end

return M
