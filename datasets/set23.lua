-- datasets/set23.lua: build a Set II / Set III cell dataset from whole-slide multi-channel images.
--
--   dama datasets/set23.lua slides=a.ome.tif,b.ome.tif out=set3/ tile=1000 crop=100 nuclear=DAPI,Histones
--   dama datasets/set23.lua slides=synthetic out=set3.npy synth_size=3000     -- built-in synthetic slide
--
-- For each slide (TIFF / BigTIFF / OME-TIFF, H x W x C, any layout the io API reads; a PNG / JPEG / .npy
-- image is read whole instead, so only TIFFs have memory bounded by the tile), tile by tile:
--   1. read the tile plus a margin of `margin` pixels on each side (default crop / 2) with
--      dama_tiff_read_window: only the strips / tiles it touches, so memory is bounded by the tile size,
--      not the slide size;
--   2. find cells on the nuclear channels (mean of the `nuclear` channels, Gaussian blur `sigma`, Otsu
--      threshold (or `threshold`), `erode` 3 x 3 erosions, distance transform, peak markers, watershed;
--      dama_find_cells, all in C). Otsu's threshold is computed once per slide by default, in a first pass
--      over a subsample of the blurred nuclear image (threshold_scope=tile: per tile, which splits the noise
--      of a tile without nuclei);
--   3. keep the cells whose rounded centroid lies in the tile proper (each cell is counted by exactly one
--      tile, and thanks to the margin a cell on a tile border is segmented whole and its crop comes from
--      pixels that were read: a crop needs at most crop / 2 around the centre);
--   4. crop crop x crop around each centre (dama_crop_pad: zero outside the slide) and write it.
-- Output: `out` ending in .npy: an N x crop x crop x C array of the slide's dtype (written row by row) +
-- <out>_manifest.csv (+ <out>_labels.npy for synthetic slides); otherwise a folder: an ImageFolder
-- out/<class>/<slide>_y<Y>_x<X>.tif (uncompressed TIFFs of the slide's dtype, dama.data.write_tiff_fast)
-- + out/manifest.csv. Class: 'cells' for real slides; for synthetic slides the type of the nearest generated
-- cell within match_px (neuron, astrocyte, oligodendrocyte, microglia, endothelial) or 'unmatched'.
-- The manifest has one row per cell: index, file, slide, x, y (centroid, slide pixels), area (pixels of
-- its watershed region), tile_x, tile_y (top-left of its tile), label (synthetic slides: the type of the
-- generated cell it matched, -1 if none).
--
-- slides=synthetic writes a synth_size x synth_size x 7 uint16 tiled BigTIFF with OME channel names
-- (DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1) from dama_synth_slide next to the output, plus its
-- generated cells (<slide>.cells.csv), then builds from it and reports the detection recall / precision
-- (a generated cell counts as found if an unmatched detection lies within `match_px`). The slide is
-- generated in strips into one tensor and written with one dama_tiff_write call (the TIFF writer has no
-- tile-by-tile API), so synth_size is limited to about 8000 (0.9 GB).
--
-- This file is also a module: local set23 = dofile('datasets/set23.lua'); set23.build(opts) with the
-- option names below (a plain table), and set23.synthetic_slide(path, size, seed).
local dama = require 'dama'
local D = dama.data
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call

local M = {}

M.defaults = {
  slides = 'synthetic',   -- comma-separated slide files, or 'synthetic'
  out = 'runs/set3',      -- a folder (ImageFolder of TIFFs) or a .npy file
  tile = 1000,            -- tile edge (pixels)
  crop = 100,             -- crop edge around each cell centre
  margin = -1,            -- pixels read around each tile; -1 = crop / 2
  nuclear = 'DAPI,Histones', -- nuclear channels: OME names or 0-based indices (names need an OME-TIFF)
  channels = '',          -- channels kept in the crops (names or indices, in that order); '' = all
  sigma = 2,              -- Gaussian blur of the nuclear image before thresholding
  threshold = 0,          -- on the nuclear image in [0, 1]; 0 = Otsu (see threshold_scope)
  threshold_scope = 'slide', -- Otsu over the whole slide (a first pass over a subsample of the blurred
                          -- nuclear image) or per 'tile' (a tile without nuclei then splits its noise)
  erode = 1,              -- 3 x 3 erosions of the thresholded mask
  peak_radius = 0,        -- min distance between two cells' markers; 0 = 4
  min_peak = 1.0,         -- smallest distance-map peak that seeds a cell
  min_area = 6,           -- smaller regions (pixels) are dropped
  max_area = 0,           -- larger regions are dropped; 0 = no limit
  max_cells = 0,          -- stop after this many cells in all; 0 = no limit
  synth_size = 3000,      -- slides=synthetic: slide edge
  synth_seed = 0,         -- slides=synthetic: generator seed
  match_px = 6,           -- synthetic recall: max distance from a generated centre to its detection
  quiet = false,          -- no progress bar
}

local function mkdir(path) os.execute('mkdir -p ' .. string.format('%q', path)) end
local function dirname(path) return path:match('^(.*)/[^/]*$') or '.' end
local function basename(path) return (path:match('([^/]+)$') or path) end
local function stem(path) return (basename(path):gsub('%.ome%.tiff?$', ''):gsub('%.[^.]+$', '')) end

-- Write the synthetic whole slide: size x size x 7 uint16, tiled BigTIFF (256 x 256 tiles, deflate) with
-- OME channel names. Returns the generated cells {y, x, type, radius} (slide coordinates) and writes them
-- to path .. '.cells.csv'.
function M.synthetic_slide(path, size, seed, opts)
  opts = opts or {}
  local bytes = size * size * 7 * 2
  if bytes > 0.9e9 then
    error(string.format('synthetic_slide: %d x %d x 7 is %.1f GB in memory; use synth_size <= 8000', size, size,
      bytes / 1e9), 2)
  end
  local img = dama.empty({size, size, 7}, {dtype = 'u16', device = 'cpu'})   -- a host image for FFI loops
  local base = img:data()
  local strip = 256
  local cap = 200000
  local info = ffi.new('dama_synth_cell_info[?]', cap)
  local n = ffi.new('int64_t[1]')
  local cells = {}
  for y0 = 0, size - 1, strip do
    local h = math.min(strip, size - y0)
    call(C.dama_synth_slide, seed, y0, 0, h, size, base + y0 * size * 7, info, cap, n)
    if n[0] > cap then error('synthetic_slide: more than ' .. cap .. ' cells in one strip', 2) end
    for i = 0, tonumber(n[0]) - 1 do
      cells[#cells + 1] = {y = info[i].y + y0, x = info[i].x, type = info[i].type, radius = info[i].radius}
    end
  end
  local names = ffi.new('const char*[7]')
  for k = 0, 6 do names[k] = C.dama_synth_channel_name(k) end
  call(C.dama_tiff_write, path, img._c, C.DAMA_TIFF_INTERLEAVED, C.DAMA_TIFF_DEFLATE, 256, 1, names)
  img:free()
  local f = assert(io.open(path .. '.cells.csv', 'w'))
  f:write('y,x,type,radius\n')
  for _, c in ipairs(cells) do f:write(string.format('%.2f,%.2f,%d,%.2f\n', c.y, c.x, c.type, c.radius)) end
  f:close()
  return cells
end

-- Read a <slide>.cells.csv written by synthetic_slide (nil if absent).
local function read_truth(path)
  local f = io.open(path .. '.cells.csv', 'r')
  if not f then return nil end
  f:read('*l')
  local cells = {}
  for line in f:lines() do
    local y, x, t, r = line:match('^([^,]+),([^,]+),([^,]+),([^,]+)$')
    if y then cells[#cells + 1] = {y = tonumber(y), x = tonumber(x), type = tonumber(t), radius = tonumber(r)} end
  end
  f:close()
  return cells
end

-- Greedy one-to-one matching of generated cells to detections within `radius` (spatial hash).
-- Returns matched count and, per detection (1-based), the matched truth index or nil.
local function match_cells(truth, found, radius)
  local g = math.max(1, radius)
  local grid = {}
  local function key(y, x) return math.floor(y / g) * 1000003 + math.floor(x / g) end
  for j, c in ipairs(found) do
    local k = key(c.y, c.x)
    grid[k] = grid[k] or {}
    table.insert(grid[k], j)
  end
  local used, owner, m = {}, {}, 0
  local r2 = radius * radius
  for i, t in ipairs(truth) do
    local best, bd = nil, r2
    local gy, gx = math.floor(t.y / g), math.floor(t.x / g)
    for dy = -1, 1 do for dx = -1, 1 do
      local list = grid[(gy + dy) * 1000003 + gx + dx]
      if list then
        for _, j in ipairs(list) do
          if not used[j] then
            local c = found[j]
            local d = (c.y - t.y) ^ 2 + (c.x - t.x) ^ 2
            if d <= bd then bd, best = d, j end
          end
        end
      end
    end end
    if best then used[best] = true; owner[best] = i; m = m + 1 end
  end
  return m, owner
end
M.match_cells = match_cells

-- Otsu threshold of a slide's nuclear image (the mean of its nuclear channels as fractions of full scale,
-- blurred by sigma, as dama_find_cells computes it) over a subsample of at most ~4M pixels, read tile by
-- tile: the first pass of threshold_scope = 'slide'.
local function slide_threshold(s, tile, sigma)
  local step = math.max(1, math.ceil(math.sqrt(s.h * s.w / 4e6)))
  local cap = math.ceil(s.h / step) * math.ceil(s.w / step) + 16
  local samples = ffi.new('float[?]', cap)
  local n = 0
  local nn = #s.nuclear
  local scale = (s.dtype == C.DAMA_U16 and 1 / 65535 or (s.dtype == C.DAMA_U8 and 1 / 255 or 1)) / nn
  local ct = ({[C.DAMA_U8] = 'uint8_t*', [C.DAMA_U16] = 'uint16_t*', [C.DAMA_F32] = 'float*'})[s.dtype]
  for ty = 0, s.h - 1, tile do
    for tx = 0, s.w - 1, tile do
      local th, tw = math.min(tile, s.h - ty), math.min(tile, s.w - tx)
      local win
      if s.whole then
        win = s.whole:narrow(0, ty, th):narrow(1, tx, tw):index_select(2, dama.tensor(s.nuclear, {dtype = 'i64', device = 'cpu'})):contiguous()
      else
        win = D.read_window(s.path, tx, ty, tw, th, s.nuclear)
      end
      local src = ffi.cast(ct, C.dama_data_ptr(win._c))
      local plane = ffi.new('float[?]', th * tw)
      for i = 0, th * tw - 1 do
        local a = 0
        for k = 0, nn - 1 do a = a + src[i * nn + k] end
        plane[i] = a * scale
      end
      if sigma > 0 then call(C.dama_gaussian_blur, plane, plane, th, tw, sigma) end
      -- the same global grid of sample positions whatever the tiling
      for y = (step - ty % step) % step, th - 1, step do
        for x = (step - tx % step) % step, tw - 1, step do
          if n < cap then samples[n] = plane[y * tw + x]; n = n + 1 end
        end
      end
      win:free()
    end
  end
  local thr = ffi.new('float[1]')
  call(C.dama_otsu_threshold, samples, n, thr)
  return thr[0]
end

-- label(y, x): the type of the nearest generated cell within radius, -1 if none.
local function truth_labeller(truth, radius)
  local g = math.max(1, radius)
  local grid = {}
  for _, t in ipairs(truth) do
    local k = math.floor(t.y / g) * 1000003 + math.floor(t.x / g)
    grid[k] = grid[k] or {}
    table.insert(grid[k], t)
  end
  return function(y, x)
    local best, bd = -1, radius * radius
    local gy, gx = math.floor(y / g), math.floor(x / g)
    for dy = -1, 1 do for dx = -1, 1 do
      for _, t in ipairs(grid[(gy + dy) * 1000003 + gx + dx] or {}) do
        local d = (t.y - y) ^ 2 + (t.x - x) ^ 2
        if d <= bd then bd, best = d, t.type end
      end
    end end
    return best
  end
end

local function cfg_value(cfg, k)
  local v = cfg[k]
  if v == nil then v = M.defaults[k] end
  return v
end

-- Build the set. opts: the keys of M.defaults. Returns a summary table: slides, tiles, cells, seconds,
-- tiles_per_s, cells_per_s, out, manifest, and for synthetic slides truth, matched, recall, precision.
function M.build(opts)
  local o = {}
  for k in pairs(M.defaults) do o[k] = cfg_value(opts, k) end
  local tile, crop = o.tile, o.crop
  if tile < 16 then error('set23: tile must be >= 16, got ' .. tile, 2) end
  if crop < 2 then error('set23: crop must be >= 2, got ' .. crop, 2) end
  local margin = o.margin >= 0 and o.margin or math.ceil(crop / 2)
  local as_npy = o.out:match('%.npy$') ~= nil
  local out_dir = as_npy and dirname(o.out) or o.out
  mkdir(out_dir)
  local prefix = as_npy and o.out:gsub('%.npy$', '') or (o.out .. '/')
  local manifest_path = as_npy and (prefix .. '_manifest.csv') or (o.out .. '/manifest.csv')

  -- slides (and their ground truth for synthetic ones)
  local slides = {}
  if o.slides == 'synthetic' then
    local path = string.format('%s/synthetic_slide_s%d_%d.ome.tif', out_dir, o.synth_seed, o.synth_size)
    local t0 = D.wall_time()
    local truth = M.synthetic_slide(path, o.synth_size, o.synth_seed)
    if not o.quiet then
      io.stderr:write(string.format('set23: wrote synthetic slide %s (%d x %d x 7, %d cells) in %.1f s\n', path,
        o.synth_size, o.synth_size, #truth, D.wall_time() - t0))
    end
    slides[1] = {path = path, truth = truth}
  else
    for p in tostring(o.slides):gmatch('[^,]+') do
      if not D.exists(p) then error(string.format("set23: slide '%s' does not exist", p), 2) end
      slides[#slides + 1] = {path = p, truth = read_truth(p)}
    end
  end
  if #slides == 0 then error('set23: no slides given (slides=a.tif,b.tif or slides=synthetic)', 2) end

  -- per-slide geometry and channels; the total tile count for the progress bar
  local total_tiles, out_c, out_dtype = 0, nil, nil
  for _, s in ipairs(slides) do
    local info = D.info(s.path)
    s.h, s.w, s.c, s.dtype = info.height, info.width, info.channels, info.dtype
    s.is_tiff = info.format == C.DAMA_FMT_TIFF
    local names = s.is_tiff and D.ome_channel_names(s.path) or {}
    local where = string.format("'%s'", s.path)
    s.nuclear = D.resolve_channels(o.nuclear, s.c, names, where)
    local keep = {}
    if o.channels ~= '' and o.channels ~= nil then keep = D.resolve_channels(o.channels, s.c, names, where)
    else for k = 1, s.c do keep[k] = k - 1 end end
    -- window channels: the kept ones in order, then nuclear channels that are not kept
    local win, pos = {}, {}
    for i, k in ipairs(keep) do win[i] = k; pos[k] = pos[k] or (i - 1) end
    local nuc = {}
    for i, k in ipairs(s.nuclear) do
      if pos[k] == nil then win[#win + 1] = k; pos[k] = #win - 1 end
      nuc[i] = pos[k]
    end
    s.win, s.keep, s.nuc_win = win, keep, nuc
    s.tiles_y, s.tiles_x = math.ceil(s.h / tile), math.ceil(s.w / tile)
    total_tiles = total_tiles + s.tiles_y * s.tiles_x
    if out_c and (#keep ~= out_c or s.dtype ~= out_dtype) then
      error(string.format("set23: '%s' gives %d channels of dtype %d, the first slide %d of dtype %d", s.path, #keep,
        s.dtype, out_c, out_dtype), 2)
    end
    out_c, out_dtype = #keep, s.dtype
  end
  local dtname = ({[C.DAMA_U8] = 'u8', [C.DAMA_U16] = 'u16', [C.DAMA_F32] = 'f32'})[out_dtype]
  if not dtname then error('set23: slides must be u8, u16 or f32, got dtype ' .. tostring(out_dtype), 2) end
  local have_truth = slides[1].truth ~= nil

  local class_names = {}
  for k = 0, 4 do class_names[k] = ffi.string(C.dama_synth_class_name(k)) end
  class_names[-1] = have_truth and 'unmatched' or 'cells'

  local writer, labels_out = nil, {}
  if as_npy then writer = D.npy_writer(o.out, dtname, {crop, crop, out_c}) end
  local manifest = assert(io.open(manifest_path .. '.part', 'w'))
  manifest:write('index,file,slide,x,y,area,tile_x,tile_y,label\n')

  local cfg = ffi.new('dama_cellfind_config')
  cfg.sigma, cfg.threshold, cfg.erode = o.sigma, o.threshold, o.erode
  cfg.peak_radius, cfg.min_peak, cfg.min_area, cfg.max_area = o.peak_radius, o.min_peak, o.min_area, o.max_area
  local cap = 4096
  local cellbuf = ffi.new('dama_cell[?]', cap)
  local ncells = ffi.new('int64_t[1]')
  local crop_t = dama.empty({crop, crop, #slides[1].win}, {dtype = dtname, device = 'cpu'})
  local made_dirs = {}

  local bar = D.progress(total_tiles, 'tiles', {quiet = o.quiet})
  local done_tiles, n_out = 0, 0
  local summary = {slides = #slides, truth = 0, matched = 0, found = 0}
  local stop = false
  for _, s in ipairs(slides) do
    if stop then break end
    local nuc = ffi.new('int32_t[?]', #s.nuc_win)
    for i, k in ipairs(s.nuc_win) do nuc[i - 1] = k end
    cfg.nuclear_channels, cfg.n_nuclear = nuc, #s.nuc_win
    if #s.win ~= crop_t:size(2) then crop_t = dama.empty({crop, crop, #s.win}, {dtype = dtname, device = 'cpu'}) end
    s.whole = (not s.is_tiff) and D.read(s.path) or nil   -- PNG / JPEG / .npy: read whole (no windowed reader)
    cfg.threshold = o.threshold
    if o.threshold <= 0 and o.threshold_scope == 'slide' then
      s.threshold = slide_threshold(s, tile, o.sigma)
      if s.threshold > 0 then cfg.threshold = s.threshold end
    elseif o.threshold_scope ~= 'slide' and o.threshold_scope ~= 'tile' then
      error("set23: threshold_scope must be 'slide' or 'tile', got '" .. tostring(o.threshold_scope) .. "'", 2)
    end
    local found = {}   -- centres of this slide's detections (for the recall)
    local sname = stem(s.path)
    local nearest_type = s.truth and truth_labeller(s.truth, o.match_px)
    for ty = 0, s.h - 1, tile do
      for tx = 0, s.w - 1, tile do
        if stop then break end
        local th, tw = math.min(tile, s.h - ty), math.min(tile, s.w - tx)
        local y0, x0 = math.max(0, ty - margin), math.max(0, tx - margin)
        local y1, x1 = math.min(s.h, ty + th + margin), math.min(s.w, tx + tw + margin)
        local win
        if s.whole then
          win = s.whole:narrow(0, y0, y1 - y0):narrow(1, x0, x1 - x0)
          win = win:index_select(2, dama.tensor(s.win, {dtype = 'i64', device = 'cpu'})):contiguous()
        else
          win = D.read_window(s.path, x0, y0, x1 - x0, y1 - y0, s.win)
        end
        local hwc = ffi.new('dama_hwc', {C.dama_data_ptr(win._c), out_dtype, y1 - y0, x1 - x0, #s.win, 0})
        call(C.dama_find_cells, hwc, cfg, nil, cellbuf, cap, ncells)
        if ncells[0] > cap then
          cap = tonumber(ncells[0]) * 2
          cellbuf = ffi.new('dama_cell[?]', cap)
          call(C.dama_find_cells, hwc, cfg, nil, cellbuf, cap, ncells)
        end
        local cp = crop_t:data()
        for i = 0, tonumber(ncells[0]) - 1 do
          local cy, cx = math.floor(cellbuf[i].y + 0.5), math.floor(cellbuf[i].x + 0.5)
          local sy, sx = cy + y0, cx + x0
          if sy >= ty and sy < ty + th and sx >= tx and sx < tx + tw then
            call(C.dama_crop_pad, cp, hwc, cy, cx, crop)
            local row = crop_t
            if #s.win > out_c then row = crop_t:narrow(2, 0, out_c):contiguous() end
            local fy, fx = cellbuf[i].y + y0, cellbuf[i].x + x0
            local label = s.truth and nearest_type(fy, fx) or -1
            local file
            if as_npy then
              writer:write_tensor(row)
              file = basename(o.out)
            else
              local cname = class_names[label]
              local dir = o.out .. '/' .. cname
              if not made_dirs[dir] then mkdir(dir); made_dirs[dir] = true end
              file = string.format('%s/%s_y%d_x%d.tif', cname, sname, sy, sx)
              D.write_tiff_fast(o.out .. '/' .. file, row)
            end
            if row ~= crop_t then row:free() end   -- the GC does not see tensor bytes: free now
            found[#found + 1] = {y = fy, x = fx}
            labels_out[n_out + 1] = label
            manifest:write(string.format('%d,%s,%s,%.1f,%.1f,%d,%d,%d,%d\n', n_out, file, s.path, fx, fy,
              tonumber(cellbuf[i].area), tx, ty, label))
            n_out = n_out + 1
            if o.max_cells > 0 and n_out >= o.max_cells then stop = true break end
          end
        end
        win:free()
        done_tiles = done_tiles + 1
        bar:update(done_tiles, string.format('cells %d', n_out))
      end
    end
    s.whole = nil
    if s.truth then
      summary.truth = summary.truth + #s.truth
      summary.matched = summary.matched + match_cells(s.truth, found, o.match_px)
    end
    summary.found = summary.found + #found
  end
  local seconds = bar:finish(done_tiles, string.format('cells %d', n_out))
  manifest:close()
  os.rename(manifest_path .. '.part', manifest_path)
  if writer then
    writer:close()
    if have_truth then
      local lt = dama.tensor(#labels_out > 0 and labels_out or {}, {dtype = 'i64', device = 'cpu'})
      D.write(prefix .. '_labels.npy', lt)
      summary.labels = prefix .. '_labels.npy'
    end
  end
  summary.tiles, summary.cells, summary.seconds = done_tiles, n_out, seconds
  summary.tiles_per_s = done_tiles / math.max(seconds, 1e-9)
  summary.cells_per_s = n_out / math.max(seconds, 1e-9)
  summary.out, summary.manifest = o.out, manifest_path
  summary.slide_paths = {}
  for i, s in ipairs(slides) do summary.slide_paths[i] = s.path end
  if summary.truth > 0 then
    summary.recall = summary.matched / summary.truth
    summary.precision = summary.found > 0 and summary.matched / summary.found or 0
  end
  return summary
end

function M.report(s)
  local r = string.format('set23: %d slide(s), %d tiles, %d cells in %.1f s (%.2f tiles/s, %.0f cells/s) -> %s; manifest %s',
    s.slides, s.tiles, s.cells, s.seconds, s.tiles_per_s, s.cells_per_s, s.out, s.manifest)
  if s.recall then
    r = r .. string.format('\nset23: detection vs generated cells: %d generated, %d detected, %d matched within match_px: ' ..
      'recall %.3f, precision %.3f', s.truth, s.found, s.matched, s.recall, s.precision)
  end
  return r
end

-- run as a script: dama datasets/set23.lua key=value ...
if arg and arg[0] and arg[0]:match('set23%.lua$') then
  local cfg = dama.config(M.defaults):override(arg)
  print(M.report(M.build(cfg:table())))
end

return M
