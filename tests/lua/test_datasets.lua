-- The set builders end to end: datasets/set23.lua (Set II/III: tile a whole slide, find cells, crop) on
-- the synthetic slide (detection recall against the generated cells) and on a real DSB2018 nuclei image;
-- datasets/set1.lua (Set I: augment a labelled folder to a fixed count) on BBBC048 tiles.
local dama = require 'dama'
local D = dama.data
local ffi = require 'ffi'

local set23 = dofile('datasets/set23.lua')
local set1 = dofile('datasets/set1.lua')

local MINI = 'tests/fixtures/data/bbbc048_mini'
-- a prefix no other process uses: the suites run concurrently (cpu, sim and cuda runs of one file start in the same
-- second, and LuaJIT's math.random is unseeded), so os.tmpname's unique name, not the time, keeps them apart
local TMP = (function() local u = os.tmpname(); os.remove(u); return u .. '_dama_sets' end)()
os.execute('mkdir -p ' .. TMP)

local function shared_data()
  for _, p in ipairs{'../shared/data', '/work/shared/data'} do
    if D.exists(p .. '/README.md') then return p end
  end
  return nil
end

local function csv(path)
  local rows, header = {}, nil
  for line in io.lines(path) do
    local f = {}
    for v in (line .. ','):gmatch('([^,]*),') do f[#f + 1] = v end
    if not header then header = f else
      local r = {}
      for i, k in ipairs(header) do r[k] = tonumber(f[i]) or f[i] end
      rows[#rows + 1] = r
    end
  end
  return rows
end

local function max_abs_diff(a, b) return (a:to('f64') - b:to('f64')):abs():amax():item() end

-- ---------------------------------------------------------------- Set II / III

local SLIDE   -- the synthetic slide of the first test, reused by the others

test('set23 on a synthetic 1200 x 1200 slide (tile 600): cells found match the generated cells', function()
  local out = TMP .. '/s3/set.npy'
  local s = set23.build{slides = 'synthetic', synth_size = 1200, synth_seed = 4, tile = 600, crop = 100, out = out,
                        quiet = true}
  SLIDE = s.slide_paths[1]
  print(set23.report(s))
  -- the slide: a tiled BigTIFF with the OME channel names
  local info = D.info(SLIDE)
  expect_eq({info.width, info.height, info.channels}, {1200, 1200, 7})
  expect(info.tiled and info.bigtiff, 'tiled BigTIFF')
  expect_eq(D.ome_channel_names(SLIDE), D.channel_names())
  -- detection against the generator's cells
  expect(s.truth > 800, 'generated cells: ' .. s.truth)
  expect(s.recall >= 0.9, string.format('recall %.3f', s.recall))
  expect(s.precision >= 0.95, string.format('precision %.3f', s.precision))
  expect(math.abs(s.cells - s.truth) <= 0.1 * s.truth, s.cells .. ' cells vs ' .. s.truth .. ' generated')
  expect_eq(s.tiles, 4)
  -- outputs: N x 100 x 100 x 7 u16, labels, a manifest row per cell
  local arr = D.load_npy(out)
  expect_eq(arr:size(), {s.cells, 100, 100, 7})
  expect_eq(arr:type(), 'u16')
  local labels = D.load_npy(s.labels)
  expect_eq(labels:size(0), s.cells)
  local rows = csv(s.manifest)
  expect_eq(#rows, s.cells)
  local matched = 0
  for i, r in ipairs(rows) do
    expect_eq(r.index, i - 1)
    expect(r.x >= r.tile_x and r.x < r.tile_x + 600.5 and r.y >= r.tile_y and r.y < r.tile_y + 600.5, 'centre in its tile')
    expect(r.area >= 6, 'area')
    expect_eq(r.label, labels:get(i - 1))
    if r.label >= 0 then matched = matched + 1 end
  end
  expect(matched >= 0.95 * #rows, 'labelled crops ' .. matched)
  -- each crop is the slide window around its centre (zero outside the slide)
  for _, i in ipairs{1, math.floor(#rows / 2), #rows} do
    local r = rows[i]
    local cy, cx = math.floor(r.y + 0.5), math.floor(r.x + 0.5)
    local y0, x0 = math.max(0, cy - 50), math.max(0, cx - 50)
    local y1, x1 = math.min(1200, cy + 50), math.min(1200, cx + 50)
    local want = D.read_window(SLIDE, x0, y0, x1 - x0, y1 - y0)
    local got = arr:select(0, i - 1):narrow(0, y0 - (cy - 50), y1 - y0):narrow(1, x0 - (cx - 50), x1 - x0)
    expect_eq(max_abs_diff(got, want), 0, 'crop ' .. i)
  end
  -- the nucleus is at the centre: the DAPI centre is brighter than the crop's mean
  local dapi = arr:narrow(3, 0, 1):to('f32')
  local centre = dapi:narrow(1, 47, 6):narrow(2, 47, 6):mean():item()
  expect(centre > 2 * dapi:mean():item(), 'DAPI bright at the centre')
end)

test('set23: the cells do not depend on the tiling (margins handle tile borders); ImageFolder output', function()
  if not SLIDE then skip('needs the slide of the previous test') end
  local a = set23.build{slides = SLIDE, tile = 1200, crop = 64, out = TMP .. '/one.npy', quiet = true}
  local b = set23.build{slides = SLIDE, tile = 300, crop = 64, out = TMP .. '/folder', quiet = true}
  expect_eq(b.tiles, 16)
  -- Otsu runs per tile, so a few cells may differ; the border handling may not lose or double any
  expect(math.abs(a.cells - b.cells) <= 0.02 * a.cells, a.cells .. ' cells with one tile, ' .. b.cells .. ' with 16')
  local ra, rb = csv(a.manifest), csv(b.manifest)
  local key = {}
  for _, r in ipairs(ra) do key[math.floor(r.y / 4) .. ':' .. math.floor(r.x / 4)] = true end
  local near = 0
  for _, r in ipairs(rb) do
    for dy = -1, 1 do for dx = -1, 1 do
      if key[(math.floor(r.y / 4) + dy) .. ':' .. (math.floor(r.x / 4) + dx)] then near = near + 1; goto next end
    end end
    ::next::
  end
  expect(near >= 0.97 * #rb, near .. ' of ' .. #rb .. ' cells found by both tilings')
  -- no cell twice: no two centres closer than 2 px
  table.sort(rb, function(p, q) return p.y < q.y end)
  for i = 2, #rb do
    for j = i - 1, math.max(1, i - 20), -1 do
      if rb[i].y - rb[j].y > 2 then break end
      expect(math.abs(rb[i].x - rb[j].x) > 2 or math.abs(rb[i].y - rb[j].y) > 2, 'duplicate cell near ' .. rb[i].y)
    end
  end
  -- the folder is an ImageFolder of 64 x 64 x 7 TIFFs whose classes are the generated types
  local ds = D.ImageFolder(TMP .. '/folder')
  expect_eq(ds:size(), b.cells)
  local img = D.read(ds.paths[1])
  expect_eq(img:size(), {64, 64, 7})
  local counts = ds:class_counts()
  expect(#ds.classes >= 5, table.concat(ds.classes, ','))
  for k, name in ipairs(ds.classes) do
    if name ~= 'unmatched' then expect((counts[k - 1] or 0) > 20, name .. ': ' .. tostring(counts[k - 1])) end
  end
end)

test('set23: memory is bounded by the tile, not the slide; channel selection by name', function()
  if not SLIDE then skip('needs the slide of the previous test') end
  collectgarbage('collect')
  dama.reset_peak_memory()
  local base = dama.memory().in_use
  local s = set23.build{slides = SLIDE, tile = 200, crop = 32, out = TMP .. '/small.npy', channels = 'NeuN,DAPI',
                        nuclear = 'Histones,DAPI', quiet = true}
  local peak = dama.memory().peak - base
  local slide_bytes = 1200 * 1200 * 7 * 2
  local window_bytes = (200 + 32) ^ 2 * 7 * 2
  print(string.format('set23 tile 200: peak tensor memory %.1f MB (window %.1f MB, slide %.1f MB)', peak / 1e6,
    window_bytes / 1e6, slide_bytes / 1e6))
  -- the reader decodes whole 256 x 256 x 7 TIFF tiles (0.9 MB each) around a window; far below the slide
  expect(peak < 0.3 * slide_bytes, string.format('peak %d bytes for a %d-byte slide', peak, slide_bytes))
  local arr = D.load_npy(TMP .. '/small.npy')
  expect_eq(arr:size(), {s.cells, 32, 32, 2})
  -- channel 0 = NeuN (2), channel 1 = DAPI (0) of the slide
  local r = csv(s.manifest)[1]
  local cy, cx = math.floor(r.y + 0.5), math.floor(r.x + 0.5)
  if cy >= 16 and cx >= 16 and cy + 16 <= 1200 and cx + 16 <= 1200 then
    local want = D.read_window(SLIDE, cx - 16, cy - 16, 32, 32, {2, 0})
    expect_eq(max_abs_diff(arr:select(0, 0), want), 0)
  end
  expect_error(function() set23.build{slides = SLIDE, out = TMP .. '/x.npy', nuclear = 'DAPI,GFAP', quiet = true} end,
    "no channel 'GFAP'")
  expect_error(function() set23.build{slides = TMP .. '/missing.tif', out = TMP .. '/x.npy', quiet = true} end,
    'does not exist')
end)

test('set23 on a real nuclei image (DSB2018 / StarDist test image, 125 annotated nuclei)', function()
  local s = shared_data()
  local img = s and s .. '/seg/stardist_img2d.tif'
  if not img or not D.exists(img) then skip('shared/data/seg/stardist_img2d.tif not present') end
  local r = set23.build{slides = img, nuclear = '0', tile = 256, crop = 32, sigma = 1.5, peak_radius = 5,
                        out = TMP .. '/dsb.npy', quiet = true}
  print(string.format('set23 on stardist_img2d (512 x 512, 4 tiles of 256): %d cells vs 125 annotated', r.cells))
  expect(r.cells >= 100 and r.cells <= 150, r.cells .. ' cells')
  expect_eq(D.load_npy(TMP .. '/dsb.npy'):size(), {r.cells, 32, 32, 1})
  -- a sparse image (4 nuclei, 520 x 696 PNG): Otsu per tile splits the noise of empty tiles, per slide not
  local sparse = s .. '/seg/dsb/images/c15c652c08153fb781a5349123ab8f80bb2a8680a41eb8e89e547ae01b7a5441.png'
  if not D.exists(sparse) then return end
  local per_tile = set23.build{slides = sparse, nuclear = '0', tile = 256, crop = 32, sigma = 1, threshold_scope = 'tile',
                               out = TMP .. '/sparse_t.npy', quiet = true}
  local per_slide = set23.build{slides = sparse, nuclear = '0', tile = 256, crop = 32, sigma = 1,
                                out = TMP .. '/sparse_s.npy', quiet = true}
  print(string.format('sparse DSB image (4 nuclei): %d cells with Otsu per tile, %d per slide', per_tile.cells,
    per_slide.cells))
  expect(per_slide.cells >= 3 and per_slide.cells <= 8, per_slide.cells .. ' cells')
  expect(per_tile.cells > 50, 'per-tile Otsu over-detects: ' .. per_tile.cells)
end)

-- ---------------------------------------------------------------- Set I

test('set1 on the BBBC048 fixture: balanced counts, originals unchanged, augmented copies, reproducible', function()
  local out = TMP .. '/s1/set1.npy'
  local s = set1.build{src = MINI, out = out, count = 70, seed = 3, quiet = true}
  print(set1.report(s))
  expect_eq(s.count, 70)
  for k = 0, 6 do expect_eq(s.per_class[k], 10) end
  expect_eq(s.originals, 21)
  local arr = D.load_npy(out)
  expect_eq(arr:size(), {70, 40, 40, 3})
  expect_eq(arr:type(), 'u16')
  local labels = D.load_npy(out:gsub('%.npy$', '_labels.npy'))
  local rows = csv(s.manifest)
  expect_eq(#rows, 70)
  local n_same = 0
  for i, r in ipairs(rows) do
    expect_eq(labels:get(i - 1), r.label)
    expect_eq(r.label, math.floor((i - 1) / 10))
    local src = D.read(r.source)
    local diff = max_abs_diff(arr:select(0, i - 1), src)
    if r.augmented == 0 then expect_eq(diff, 0, 'original ' .. i) else
      expect(diff > 0, 'augmented ' .. i)
      -- an augmented cell keeps the source's intensity range (no rescaling; zero only outside a rotation)
      expect(arr:select(0, i - 1):amax():item() <= src:amax():item(), 'range ' .. i)
      if r.hflip == 0 and r.vflip == 0 and math.abs(r.angle) < 1e-9 then n_same = n_same + 1 end
    end
  end
  expect(n_same < 10, 'nearly every augmented copy is flipped or rotated')
  -- the same arguments give the same bytes
  local s2 = set1.build{src = MINI, out = TMP .. '/s1/again.npy', count = 70, seed = 3, quiet = true}
  expect_eq(s2.count, 70)
  expect_eq(max_abs_diff(D.load_npy(TMP .. '/s1/again.npy'), arr), 0)
  local s3 = set1.build{src = MINI, out = TMP .. '/s1/other.npy', count = 70, seed = 4, quiet = true}
  expect(max_abs_diff(D.load_npy(TMP .. '/s1/other.npy'), arr) > 0, 'another seed, another set')
  expect_eq(s3.count, 70)
end)

test('set1: ImageFolder output, right-angle rotations, resize, proportional mode on real BBBC048', function()
  local s = set1.build{src = MINI, out = TMP .. '/s1f', count = 30, size = 32, rotation = 'right', originals = false,
                       channels = '1', quiet = true}
  local ds = D.ImageFolder(TMP .. '/s1f')
  expect_eq(ds:size(), 30)
  expect_eq(ds.classes, D.ImageFolder(MINI).classes)
  local img = D.read(ds.paths[1])
  expect_eq(img:size(), {32, 32, 1})
  expect_eq(s.augmented, 30)
  for _, r in ipairs(csv(s.manifest)) do expect_eq(r.angle % 90, 0) end
  -- with the whole tile kept, a right-angle augmentation only moves pixels: same values per channel
  local e = set1.build{src = MINI, out = TMP .. '/s1e.npy', count = 14, rotation = 'right', originals = false,
                       min_scale = 1, quiet = true}
  local arr = D.load_npy(TMP .. '/s1e.npy')
  local turned = 0
  for i, r in ipairs(csv(e.manifest)) do
    local src = D.read(r.source)
    if r.angle ~= 0 then turned = turned + 1 end
    for c = 0, 2 do
      local a = arr:select(0, i - 1):select(2, c):contiguous():view(-1):to('f32'):sort()
      local b = src:select(2, c):contiguous():view(-1):to('f32'):sort()
      expect_eq(max_abs_diff(a, b), 0, 'cell ' .. i .. ' channel ' .. c)
    end
  end
  expect(turned >= 6, 'quarter turns drawn: ' .. turned)
  -- proportional on the real labelled set (2,561 cells, 7 classes): counts follow the class sizes
  local sd = shared_data()
  if not sd then return end
  local root = sd .. '/bbbc048'
  local t0 = D.wall_time()
  local p = set1.build{src = root .. '/labelled.npy', labels = root .. '/labelled_labels.npy', out = TMP .. '/p.npy',
                       count = 1000, mode = 'proportional', quiet = true}
  print(string.format('set1 proportional, BBBC048 labelled.npy -> 1000 cells: %.2f s (%.0f cells/s)',
    D.wall_time() - t0, p.per_s))
  expect_eq(p.class_names[1], 'Anaphase')   -- classes.txt beside the .npy
  local want = {4, 264, 264, 20, 177, 263, 8}   -- 1000 * {11, 675, 675, 51, 454, 675, 20} / 2561, largest remainders (ties: lower class)
  local got = {}
  for k = 0, 6 do got[k + 1] = p.per_class[k] end
  expect_eq(got, want)
  expect_eq(p.originals, 1000)   -- fewer outputs than cells: a random subset of originals
end)

test('cleanup', function() os.execute('rm -rf ' .. TMP) end)
