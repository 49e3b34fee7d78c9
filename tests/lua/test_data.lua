-- dama.data: datasets (ImageFolder, npy, synthetic, arrays), subsets and splits, channel selection by
-- index and OME name, the loader (order, determinism across worker counts, resume, skip_bad), the
-- single-image API and the set builders' helpers. Real data: shared/data/bbbc048 (skipped when absent),
-- plus the committed 21-tile fixture tests/fixtures/data/bbbc048_mini.
local dama = require 'dama'
local D = dama.data
local ffi = require 'ffi'
local C = ffi.C

local MINI = 'tests/fixtures/data/bbbc048_mini'
-- a prefix no other process uses: the suites run concurrently (cpu, sim and cuda runs of one file start in the same
-- second, and LuaJIT's math.random is unseeded), so os.tmpname's unique name, not the time, keeps them apart
local TMP = (function() local u = os.tmpname(); os.remove(u); return u .. '_dama_data' end)()
os.execute('mkdir -p ' .. TMP)

local function shared_data()
  for _, p in ipairs{'../shared/data', '/work/shared/data'} do
    if D.exists(p .. '/bbbc048/classes.txt') then return p end
  end
  return nil
end
local function bbbc048()
  local s = shared_data()
  if not s then skip('shared/data/bbbc048 not present (../shared/data or /work/shared/data)') end
  return s .. '/bbbc048'
end

local function max_abs_diff(a, b) return (a:to('f64'):cpu() - b:to('f64'):cpu()):abs():amax():item() end

local function all_batches(loader)
  local xs, ys = {}, {}
  for x, y in loader:epoch() do xs[#xs + 1] = x; ys[#ys + 1] = y end
  return dama.cat(xs, 0), dama.cat(ys, 0)
end

-- A labelled in-memory dataset: n_k samples of class k, sample i holds the value i (u16, 2 x 2 x 1).
local function toy(sizes)
  local n = 0
  for _, s in ipairs(sizes) do n = n + s end
  local t = dama.empty({n, 2, 2, 1}, {dtype = 'u16', device = 'cpu'})   -- filled by an FFI loop: host memory
  local p = t:data()
  local labels, i = {}, 0
  for k, s in ipairs(sizes) do
    for _ = 1, s do
      for j = 0, 3 do p[i * 4 + j] = i end
      labels[i + 1] = k - 1
      i = i + 1
    end
  end
  return D.array(t, {labels = labels})
end

-- ---------------------------------------------------------------- datasets

test('ImageFolder on the committed BBBC048 fixture: classes from classes.txt, sorted files', function()
  local ds = D.ImageFolder(MINI)
  expect_eq(ds:size(), 21)
  expect_eq(ds.classes, {'Anaphase', 'G1', 'G2', 'Metaphase', 'Prophase', 'S_phase', 'Telophase'})
  local counts = ds:class_counts()
  for k = 0, 6 do expect_eq(counts[k], 3) end
  expect(ds.paths[1]:match('Anaphase/Anaphase_exp1_CP0001_r00_c00%.tif$'), ds.paths[1])
  expect_eq(ds:num_channels(), 3)
  local img = D.read(ds.paths[1])
  expect_eq(img:size(), {40, 40, 3})
  expect_eq(img:type(), 'u16')
end)

test('ImageFolder over the real BBBC048 labelled folder agrees with labelled.npy row by row', function()
  local root = bbbc048()
  local ds = D.ImageFolder(root .. '/labelled', {classes = root .. '/classes.txt'})
  expect_eq(ds:size(), 2561)
  expect_eq(ds.classes, D.read_lines(root .. '/classes.txt'))
  local counts = ds:class_counts()
  expect_eq({counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]},
            {11, 675, 675, 51, 454, 675, 20})
  -- sorted folder names give the same classes as classes.txt
  local plain = D.ImageFolder(root .. '/labelled')
  expect_eq(plain.classes, ds.classes)
  -- labelled_files.txt: row i = file i
  local files = D.read_lines(root .. '/labelled_files.txt')
  expect_eq(#files, 2561)
  for i = 1, #files do
    if ds.paths[i]:sub(-#files[i]) ~= files[i] then error(string.format('row %d: %s vs %s', i - 1, ds.paths[i], files[i])) end
  end
  local arr = D.npy(root .. '/labelled.npy', {labels = root .. '/labelled_labels.npy'})
  expect_eq(arr:size(), 2561)
  expect_eq(arr:label_list(), ds:label_list())
  -- every pixel: decode all TIFFs through the loader (no augmentation, dataset order) and compare
  local opts = {batch = 2561, pipeline = 'none', out_size = 40, shuffle = false, workers = 2}
  local xf, yf = D.loader(ds, opts):next()
  local xa, ya = D.loader(arr, opts):next()
  expect_eq(max_abs_diff(xf, xa), 0)
  expect_eq(yf, ya)
  -- and one file read directly equals its row, in u16
  local img = D.read(ds.paths[1000])
  expect_eq(max_abs_diff(img, arr.array:select(0, 999)), 0)
end)

test('npy with labels, classes and a label count mismatch that names both files', function()
  local root = bbbc048()
  local ds = D.npy(root .. '/labelled.npy', {labels = root .. '/labelled_labels.npy', classes = root .. '/classes.txt'})
  expect_eq(ds.array:size(), {2561, 40, 40, 3})
  expect_eq(ds.classes[6], 'S_phase')
  expect_eq(ds:class_counts()[0], 11)
  local pre = D.npy(root .. '/pretrain.npy')
  expect_eq(pre:size(), 4499)
  expect_eq(pre:label_list()[1], -1)
  local e = expect_error(function() D.npy(root .. '/pretrain.npy', {labels = root .. '/labelled_labels.npy'}) end,
    'labelled_labels.npy')
  expect(e:find('4499') and e:find('2561') and e:find('pretrain.npy'), e)
end)

test('npy datasets written by npy_writer; labels as a table; subsets of a contiguous run are views', function()
  local path = TMP .. '/w.npy'
  local w = D.npy_writer(path, 'u16', {3, 2, 2})
  for i = 0, 4 do w:write_tensor(dama.full({3, 2, 2}, i * 100, 'u16')) end
  expect_eq(w:close(), 5)
  local ds = D.npy(path, {labels = {0, 1, 0, 1, 1}})
  expect_eq(ds.array:size(), {5, 3, 2, 2})
  expect_eq(ds.array:type(), 'u16')
  expect_eq(ds.array:get(4, 2, 1, 1), 400)
  local sub = ds:subset{1, 2, 3}
  expect_eq(sub.array:get(0, 0, 0, 0), 100)
  expect_eq(sub.index, {1, 2, 3})
  expect_eq(sub:label_list(), {1, 0, 1})
  local sub2 = sub:subset{2, 0}
  expect_eq(sub2.index, {3, 1})
  expect_eq(sub2.array:get(0, 0, 0, 0), 300)
  expect_error(function() ds:subset{5} end, 'out of range')
  expect_error(function() D.npy(path, {labels = {0, 1}}) end, '2 labels given for 5 images')
end)

test('synthetic crops: labels uniform over the 5 classes, subsets materialise the same crops', function()
  local ds = D.synthetic{n = 5000, seed = 3, crop = 24}
  expect_eq(ds.classes, {'neuron', 'astrocyte', 'oligodendrocyte', 'microglia', 'endothelial'})
  local counts = ds:class_counts()
  local chi2 = 0
  for k = 0, 4 do
    expect(counts[k] and counts[k] > 850 and counts[k] < 1150, 'class ' .. k .. ': ' .. tostring(counts[k]))
    chi2 = chi2 + (counts[k] - 1000) ^ 2 / 1000
  end
  expect(chi2 < 20, 'chi-square over 5 classes ' .. chi2)   -- p < 0.0005 for 4 degrees of freedom
  local sub = ds:subset{7, 3}
  expect_eq(sub.kind, 'array')
  expect_eq(sub:label_list(), {ds:label_list()[8], ds:label_list()[4]})
  local x = D.loader(sub, {batch = 2, pipeline = 'none', out_size = 24, shuffle = false, workers = 0}):next()
  local y = D.loader(D.synthetic{n = 8, seed = 3, crop = 24}, {batch = 8, pipeline = 'none', out_size = 24,
    shuffle = false, workers = 0}):next()
  expect_eq(max_abs_diff(x[0], y[7]), 0)
end)

-- ---------------------------------------------------------------- splits

local function index_set(ds)
  local s = {}
  for _, i in ipairs(ds.index) do s[i] = (s[i] or 0) + 1 end
  return s
end

test('random_split: disjoint, covering, sized by the fractions, reproducible for a seed', function()
  local ds = toy{500, 300, 150, 50}
  local a, b = unpack(D.random_split(ds, {0.6, 0.4}, 5))
  expect_eq(a:size(), 600); expect_eq(b:size(), 400)
  local seen = index_set(a)
  for i, c in pairs(index_set(b)) do seen[i] = (seen[i] or 0) + c end
  for i = 0, 999 do expect_eq(seen[i], 1, 'index ' .. i) end
  -- the array rows follow the index (value i in sample i)
  for k = 1, 10 do expect_eq(a.array:get(k - 1, 0, 0, 0), a.index[k]) end
  local a2 = D.random_split(ds, {0.6, 0.4}, 5)[1]
  expect_eq(a2.index, a.index)
  local a3 = D.random_split(ds, {0.6, 0.4}, 6)[1]
  expect(table.concat(a3.index, ',') ~= table.concat(a.index, ','), 'another seed gives another split')
  -- counts, and fractions that do not divide evenly
  local p = D.random_split(toy{7}, {3, 4}, 0)
  expect_eq({p[1]:size(), p[2]:size()}, {3, 4})
  p = D.random_split(toy{10}, {1 / 3, 1 / 3, 1 / 3}, 0)
  expect_eq({p[1]:size(), p[2]:size(), p[3]:size()}, {4, 3, 3})
  expect_error(function() D.random_split(toy{10}, {3, 4}, 0) end, 'parts sum to 7 samples, the dataset has 10')
end)

test('repeated_splits: the paper\'s ten seeded 60/40 splits, all different, each a partition', function()
  local ds = toy{500, 300, 150, 50}
  local splits = D.repeated_splits(ds, {0.6, 0.4}, 10, 100)
  expect_eq(#splits, 10)
  local keys = {}
  for r, s in ipairs(splits) do
    expect_eq({s[1]:size(), s[2]:size()}, {600, 400})
    local seen = index_set(s[1])
    for i in pairs(index_set(s[2])) do expect(not seen[i], 'overlap in split ' .. r) end
    local key = table.concat(s[1].index, ',')
    expect(not keys[key], 'split ' .. r .. ' repeats an earlier one')
    keys[key] = true
    expect_eq(s[1].index, D.random_split(ds, {0.6, 0.4}, 100 + r - 1)[1].index)
  end
  local strat = D.repeated_splits(ds, {0.6, 0.4}, 3, 7, {stratified = true})
  expect_eq(strat[1][1]:class_counts()[3], 30)
end)

test('stratified_split keeps every class\'s proportion', function()
  local ds = toy{500, 300, 150, 50, 3}
  local a, b = unpack(D.stratified_split(ds, 0.6, 9))
  local ca, cb = a:class_counts(), b:class_counts()
  local want = {[0] = 300, [1] = 180, [2] = 90, [3] = 30, [4] = 2}   -- 0.6 * 3 = 1.8 rounds to 2
  for k = 0, 4 do
    expect_eq(ca[k], want[k], 'class ' .. k)
    expect_eq(ca[k] + (cb[k] or 0), ({500, 300, 150, 50, 3})[k + 1])
  end
  local seen = index_set(a)
  for i in pairs(index_set(b)) do expect(not seen[i], 'overlap at ' .. i) end
  expect_eq(D.stratified_split(ds, 0.6, 9)[1].index, a.index)
  -- on the real data: 60 % of each class of BBBC048
  local s = shared_data()
  if s then
    local real = D.npy(s .. '/bbbc048/labelled.npy', {labels = s .. '/bbbc048/labelled_labels.npy'})
    local ra = D.stratified_split(real, 0.6, 0)[1]:class_counts()
    expect_eq({ra[0], ra[1], ra[3], ra[6]}, {7, 405, 31, 12})
  end
end)

test('concat joins files and arrays; mismatches are errors', function()
  local ds = D.ImageFolder(MINI)
  local a, b = unpack(D.random_split(ds, {10, 11}, 1))
  local c = D.concat{a, b}
  expect_eq(c:size(), 21)
  expect_eq(c.classes, ds.classes)
  local t1, t2 = toy{3, 2}, toy{4}
  local j = D.concat{t1, t2}
  expect_eq(j:size(), 9)
  expect_eq(j:label_list(), {0, 0, 0, 1, 1, 0, 0, 0, 0})
  expect_eq(j.array:get(8, 0, 0, 0), 3)
  expect_error(function() D.concat{ds, t1} end, 'dataset 2 is array, dataset 1 is files')
  expect_error(function() D.concat{ds, ds:select_channels{0}} end, 'selects channels')
  local odd = D.array(dama.zeros({2, 3, 3, 1}, 'u16'))
  expect_error(function() D.concat{t1, odd} end, 'dataset 2 is 2×3×3×1')
end)

-- ---------------------------------------------------------------- channels

-- Four 16 x 16 x 7 OME-TIFFs with the generator's channel names: channel c holds 1000 c + i.
local function ome_folder()
  local root = TMP .. '/ome'
  os.execute('mkdir -p ' .. root .. '/a ' .. root .. '/b')
  local names = ffi.new('const char*[7]')
  for k = 0, 6 do names[k] = C.dama_synth_channel_name(k) end
  for i = 0, 3 do
    local t = dama.empty({16, 16, 7}, {dtype = 'u16', device = 'cpu'})
    local p = t:data()
    for q = 0, 16 * 16 - 1 do for c = 0, 6 do p[q * 7 + c] = 1000 * c + i end end
    local path = string.format('%s/%s/cell%d.ome.tif', root, i < 2 and 'a' or 'b', i)
    require('dama.ffi').call(C.dama_tiff_write, path, t._c, 0, 1, 0, 0, names)
  end
  return root
end

test('OME-TIFF channels selected and ordered by name or index', function()
  local root = ome_folder()
  local ds = D.ImageFolder(root)
  expect_eq(D.ome_channel_names(ds.paths[1]), D.channel_names())
  local sel = ds:select_channels({'NeuN', 'DAPI', 'RECA1'}, {verify = true})
  expect_eq(sel.channels, {2, 0, 6})
  expect_eq(sel:channel_name_list(), {'NeuN', 'DAPI', 'RECA1'})
  local x = D.loader(sel, {batch = 4, pipeline = 'none', out_size = 16, shuffle = false, workers = 0}):next()
  expect_eq(x:size(), {4, 3, 16, 16})
  expect_close(x:get(1, 0, 5, 5), (2000 + 1) / 65535, 1e-7)
  expect_close(x:get(1, 1, 5, 5), (0 + 1) / 65535, 1e-7)
  expect_close(x:get(3, 2, 0, 0), (6000 + 3) / 65535, 1e-7)
  -- selections compose: {'RECA1', 'NeuN'} of the selection; indices count in the current channels
  expect_eq(sel:select_channels{'RECA1', 'NeuN'}.channels, {6, 2})
  expect_eq(sel:select_channels{1}.channels, {0})
  -- a string works too, and so does the ImageFolder option
  expect_eq(D.ImageFolder(root, {channels = 'Olig2, Iba1'}).channels, {4, 5})
  local e = expect_error(function() ds:select_channels{'GFAP'} end, "no channel 'GFAP'")
  expect(e:find('DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1', 1, true), e)
  expect(e:find('cell0.ome.tif', 1, true), e)
  expect_error(function() ds:select_channels{7} end, 'expected an index in [0, 7)')
end)

test('channel selection on arrays, synthetic data and the BBBC048 fixture; clear errors', function()
  local syn = D.synthetic{n = 16, seed = 1, crop = 20}:select_channels{'Iba1', 'DAPI'}
  expect_eq(syn.channels, {5, 0})
  local L = D.loader(syn, {batch = 4, pipeline = 'none', out_size = 20, shuffle = false, workers = 0})
  expect_eq(L.shape, {2, 20, 20})
  local full = D.loader(D.synthetic{n = 16, seed = 1, crop = 20}, {batch = 4, pipeline = 'none', out_size = 20,
    shuffle = false, workers = 0}):next()
  local x = L:next()
  expect_eq(max_abs_diff(x:select(1, 0), full:select(1, 5)), 0)
  expect_eq(max_abs_diff(x:select(1, 1), full:select(1, 0)), 0)
  local arr = D.array(dama.zeros({2, 4, 4, 3}, 'u16'), {channel_names = {'BF', 'DNA', 'DF'}})
  expect_eq(arr:select_channels{'DNA'}.channels, {1})
  local mini = D.ImageFolder(MINI)
  local e = expect_error(function() mini:select_channels{'DAPI'} end, 'has no channel names')
  expect(e:find('Anaphase_exp1_CP0001_r00_c00.tif', 1, true), e)
  expect_eq(mini:select_channels{2, 1}:num_channels(), 2)
end)

test('cells(): a chans mismatch names the file and both counts; channels= selects', function()
  local cfg = {data = MINI, chans = 7, img = 32, batch = 4, seed = 0, workers = 0}
  local e = expect_error(function() D.cells(cfg) end, 'has 3 channels per image')
  expect(e:find('Anaphase_exp1_CP0001_r00_c00.tif', 1, true) and e:find('chans = 7', 1, true), e)
  cfg.chans = 2; cfg.channels = '1,0'
  local L = D.cells(cfg)
  expect_eq(L.shape, {2, 32, 32})
  local x = L:next()
  expect_eq(x:size(), {4, 2, 32, 32})
  -- the synthetic default and its first chans channels
  local S = D.cells{chans = 3, img = 16, batch = 8, seed = 0, workers = 0, n_samples = 16}
  expect_eq(S.shape, {3, 16, 16})
  expect_eq(S:size(), 16)
  -- a .npy with the wrong channel count
  local path = TMP .. '/c.npy'
  D.write(path, dama.zeros({4, 8, 8, 5}, 'u16'))
  e = expect_error(function() D.cells{data = path, chans = 7, img = 8, batch = 2, seed = 0, workers = 0} end,
    'has 5 channels per image')
  expect(e:find(path, 1, true) and e:find('chans = 7', 1, true), e)
end)

-- ---------------------------------------------------------------- the loader

test('loader batches are identical for workers 0, 1 and 2 and resume exactly from a cursor', function()
  local ds = D.ImageFolder(MINI)
  local function make(w) return D.loader(ds, {batch = 4, pipeline = 'train', out_size = 32, seed = 11, workers = w}) end
  local L0 = make(0)
  expect_eq(L0:batches_per_epoch(), 5)   -- 21 samples, drop_last
  local x0, y0 = all_batches(L0)
  local e1 = {all_batches(L0)}            -- epoch 1: another order and other draws
  expect(max_abs_diff(e1[1], x0) > 0, 'epoch 1 differs from epoch 0')
  for _, w in ipairs{1, 2} do
    local L = make(w)
    local x, y = all_batches(L)
    expect_eq(max_abs_diff(x, x0), 0, 'workers ' .. w)
    expect_eq(y, y0)
    local x1 = all_batches(L)
    expect_eq(max_abs_diff(x1, e1[1]), 0, 'workers ' .. w .. ' epoch 1')
  end
  -- resume in the middle of epoch 1 from a saved cursor
  local L = make(2)
  L:set_cursor{epoch = 1, index = 8}
  local xr, yr = L:next()
  expect_eq(max_abs_diff(xr, e1[1]:narrow(0, 8, 4)), 0)
  expect_eq(yr, e1[2]:narrow(0, 8, 4))
  expect_eq(L:cursor(), {epoch = 1, index = 12})
  -- epoch order is a permutation and labels follow it
  local order = L:order(1)
  local labels = ds:label_list()
  for k = 1, 4 do expect_eq(yr:get(k - 1), labels[order[8 + k] + 1]) end
  -- peek returns epoch 0's first samples without moving the cursor
  local px, py = L:peek(3)
  expect_eq(px:size(), {3, 3, 32, 32})
  expect_eq(max_abs_diff(px, x0:narrow(0, 0, 3)), 0)
  expect_eq(py, y0:narrow(0, 0, 3))
  expect_eq(L:cursor(), {epoch = 1, index = 12})
end)

test('loader: val pipeline shape and values, drop_last off, no shuffle', function()
  local ds = D.ImageFolder(MINI)
  local L = D.loader(ds, {batch = 8, pipeline = 'val', out_size = 24, crop_size = 30, shuffle = false,
    drop_last = false, workers = 2})
  expect_eq(L.shape, {3, 24, 24})
  expect_eq(L:batches_per_epoch(), 3)
  local x, y = all_batches(L)
  expect_eq(x:size(), {21, 3, 24, 24})
  expect_eq(y, dama.tensor(ds:label_list(), 'i64'))
  -- the same as the single-image API on each file
  local v = D.augment_val(D.read(ds.paths[5]), 30, 24)
  expect_eq(v:size(), {3, 24, 24})
  expect_eq(max_abs_diff(v, x[4]), 0)
  expect(x:amin():item() >= 0 and x:amax():item() <= 1, 'ToTensor range')
end)

test('loader skip_bad: an unreadable file is skipped and counted; without it the error names the file', function()
  local root = TMP .. '/bad'
  os.execute(string.format('mkdir -p %s/x && cp %s/G1/*.tif %s/x/', root, MINI, root))
  local f = assert(io.open(root .. '/x/G1_zz_broken.tif', 'wb'))
  f:write('II*\0garbage'); f:close()
  local ds = D.ImageFolder(root)
  expect_eq(ds:size(), 4)
  local L = D.loader(ds, {batch = 4, pipeline = 'val', out_size = 16, shuffle = false, workers = 0, skip_bad = true,
    expect_channels = 3, quiet = true})
  local x = L:next()
  expect_eq(x:size(0), 4)
  expect_eq(L:stats().skipped, 1)
  expect_eq(max_abs_diff(x[3], x[0]), 0)   -- the broken last file is replaced by the next readable one (wraps)
  local L2 = D.loader(ds, {batch = 4, pipeline = 'val', out_size = 16, shuffle = false, workers = 0, expect_channels = 3})
  expect_error(function() L2:next() end, 'G1_zz_broken.tif')
end)

-- ---------------------------------------------------------------- single images

test('read / read_f32 / write round trips (.tif, .png, .npy) and write_tiff_fast', function()
  local img = D.read(MINI .. '/G2/' .. D.ImageFolder(MINI).paths[7]:match('([^/]+)$'))
  expect_eq(img:size(), {40, 40, 3})
  local f = D.read_f32(MINI .. '/G2/' .. D.ImageFolder(MINI).paths[7]:match('([^/]+)$'), 3)
  expect_close(f:get(3, 4, 1), img:get(3, 4, 1) / 65535, 1e-7)
  for _, ext in ipairs{'tif', 'npy'} do
    local p = TMP .. '/rt.' .. ext
    D.write(p, img)
    expect_eq(max_abs_diff(D.read(p), img), 0, ext)
  end
  local grey = img:narrow(2, 1, 1):contiguous()
  D.write(TMP .. '/rt.png', grey)
  expect_eq(max_abs_diff(D.read(TMP .. '/rt.png'), grey), 0)
  for _, dt in ipairs{'u8', 'u16', 'f32'} do
    for _, c in ipairs{1, 2, 3, 7} do
      local t = dt == 'f32' and dama.rand({5, 9, c}) or dama.randint(0, 200, {5, 9, c}, dt)
      D.write_tiff_fast(TMP .. '/fast.tif', t)
      local r = D.read(TMP .. '/fast.tif')
      expect_eq(r:type(), dt)
      expect_eq(max_abs_diff(r, t), 0, dt .. ' c=' .. c)
    end
  end
  expect_error(function() D.read_f32(TMP .. '/rt.tif', 7) end, '7')
  expect_error(function() D.read(TMP .. '/none.tif') end, 'none.tif')
end)

test('augment_train / augment_val on one image: shapes, determinism, range', function()
  local img = D.read(D.ImageFolder(MINI).paths[1])
  local a = D.augment_train(img, 48, 5, 0, 3)
  expect_eq(a:size(), {3, 48, 48})
  expect_eq(a:type(), 'f32')
  expect_eq(max_abs_diff(a, D.augment_train(img, 48, 5, 0, 3)), 0)
  expect(max_abs_diff(a, D.augment_train(img, 48, 5, 0, 4)) > 0, 'another index, other draws')
  expect(a:amin():item() >= 0 and a:amax():item() <= 1)
  local v = D.augment_val(img, 0, 40)   -- crop 40 * 3 / 8 = 15
  expect_eq(v:size(), {3, 40, 40})
end)

test('progress bar and npy_writer header', function()
  local out = {}
  local sink = {write = function(_, ...) for _, s in ipairs{...} do out[#out + 1] = s end end, flush = function() end}
  local bar = D.progress(10, 'tiles', {out = sink})
  bar:update(5, 'cells 7', true)
  bar:finish(10, 'cells 12')
  local text = table.concat(out)
  expect(text:find('tiles 5/10', 1, true) and text:find('cells 12', 1, true) and text:find('ETA', 1, true), text)
  local w = D.npy_writer(TMP .. '/h.npy', 'i64', {})
  expect_error(function() w:write(ffi.new('int64_t[2]'), 16) end, 'a row has 8 bytes')
  w:write(ffi.new('int64_t[1]', 42), 8)
  w:close()
  expect_eq(D.load_npy(TMP .. '/h.npy'):totable(), {42})
end)

test('cleanup', function() os.execute('rm -rf ' .. TMP) end)
