-- dama.plot: figures for runs and papers, drawn with Cairo (antialiased lines, DejaVu Sans, PNG/SVG/PDF by the
-- file's extension) — loss curves and image grids.
--
--   dama.plot.lines('loss.pdf', {recon1 = {...}, feature = {...}}, {x = epochs, log_y = true, xlabel = 'epoch'})
--   dama.plot.grid('recon.png', {{img1, {image = img2, hidden = mask, patch = 8}}, ...},
--                  {labels = {'input', 'mask'}, legend = dama.plot.channel_legend(names)})
--   dama.plot.composite(x)     -- a [C, H, W] multiplex image as one RGB image, one colour per channel
--
-- Hidden (masked) patches are drawn in a neutral grey with a light hatch, so they never read as dark tissue.
-- Every file is written atomically (a temporary, then a rename).
local dama = require 'dama'
local cairo = require 'dama.cairo'

local P = {}

-- The series colours (matplotlib's tab10 order), components in 0..1.
P.PALETTE = {{0.122, 0.467, 0.706}, {1.0, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
             {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}}
-- The fill of hidden patches: a neutral grey lighter than any dark tissue, hatched.
P.HIDDEN = {0.62, 0.62, 0.62}

-- figure(width, height) -> a Cairo figure to draw on (see dama.cairo) and fig:save(path) as PNG/SVG/PDF
function P.figure(width, height) return cairo.figure(width, height) end

local function fmt_tick(v)
  if v == 0 then return '0' end
  local a = math.abs(v)
  if a >= 1e4 or a < 1e-3 then return (string.format('%.0e', v):gsub('e([%+%-])0*(%d)', 'e%1%2'):gsub('e%+', 'e')) end
  if a >= 100 then return string.format('%d', v) end
  return (string.format('%.3g', v))
end

-- "nice" tick positions covering [lo, hi]
local function ticks(lo, hi, n)
  local span = hi - lo
  if span <= 0 then return {lo} end
  local raw_step = span / (n or 5)
  local mag = 10 ^ math.floor(math.log10(raw_step))
  local step = mag
  for _, m in ipairs{1, 2, 2.5, 5, 10} do if m * mag >= raw_step then step = m * mag break end end
  local out = {}
  for i = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9) do out[#out + 1] = i * step end
  return out
end

-- Ticks of a log axis over [lo, hi] (log10 units): major at decades (or at 1, 2, 5 x 10^k when the range is
-- under two decades), minor at 2..9 x 10^k.
local function log_ticks(lo, hi)
  local major, minor = {}, {}
  local d0, d1 = math.floor(lo), math.ceil(hi)
  local mantissas = (hi - lo) < 2 and {1, 2, 5} or {1}
  local step = math.max(1, math.floor((d1 - d0) / 8))
  for d = d0, d1 do
    for m = 1, 9 do
      local v = math.log10(m) + d
      if v >= lo - 1e-9 and v <= hi + 1e-9 then
        local is_major = false
        for _, mm in ipairs(mantissas) do if m == mm and (mm ~= 1 or (d - d0) % step == 0) then is_major = true end end
        if is_major then major[#major + 1] = v else minor[#minor + 1] = v end
      end
    end
  end
  return major, minor
end

local function finite(v) return type(v) == 'number' and v == v and v ~= math.huge and v ~= -math.huge end

local function series_list(series)
  if #series > 0 then return series end
  local names, list = {}, {}
  for name in pairs(series) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do list[#list + 1] = {name = name, y = series[name]} end
  return list
end

-- lines(path, series, opts) -> path: a line chart. series: {name = {y...}} or a list of {name =, y =[, x =]}.
-- opts: x (shared x values; default 1..n), title, xlabel, ylabel, width, height (points; 720 x 440), log_y (a log
-- y axis: values <= 0 cannot be shown there and are left out, which the legend says), scale (PNG pixels per
-- point, 2). NaN and Inf values leave gaps.
function P.lines(path, series, opts)
  opts = opts or {}
  local W, H = opts.width or 720, opts.height or 440
  local list = series_list(series)
  local log = opts.log_y and true or false
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  local hidden_counts = {}
  for k, s in ipairs(list) do
    if type(s.y) ~= 'table' then
      error(string.format("plot.lines: series '%s' must be a list of numbers, got %s", tostring(s.name or k),
        type(s.y)), 2)
    end
    s.x = s.x or opts.x
    hidden_counts[k] = 0
    for i = 1, #s.y do
      local y = s.y[i]
      local x = s.x and s.x[i] or i
      if finite(y) and finite(x) then
        if log and y <= 0 then hidden_counts[k] = hidden_counts[k] + 1
        else
          local ty = log and math.log10(y) or y
          xmin, xmax = math.min(xmin, x), math.max(xmax, x)
          ymin, ymax = math.min(ymin, ty), math.max(ymax, ty)
        end
      end
    end
  end
  if xmin == math.huge then xmin, xmax, ymin, ymax = 0, 1, 0, 1 end
  if xmax == xmin then xmin, xmax = xmin - 0.5, xmax + 0.5 end
  if ymax == ymin then ymin, ymax = ymin - (log and 0.5 or 0.5), ymax + 0.5 end
  local pad = (ymax - ymin) * 0.04
  ymin, ymax = ymin - pad, ymax + pad

  local fig = cairo.figure(W, H)
  local L, R, T, B = 72, 24, opts.title and 40 or 20, 52
  local pw, ph = W - L - R, H - T - B
  local function px(x) return L + (x - xmin) / (xmax - xmin) * pw end
  local function py(y) return T + ph - (y - ymin) / (ymax - ymin) * ph end
  local grid_c, minor_c, axis_c = {0.88, 0.88, 0.88}, {0.94, 0.94, 0.94}, {0.25, 0.25, 0.25}

  -- grid and ticks
  local ymajor, yminor
  if log then ymajor, yminor = log_ticks(ymin, ymax) else ymajor, yminor = ticks(ymin, ymax, 6), {} end
  for _, v in ipairs(yminor) do fig:line({{L, py(v)}, {L + pw, py(v)}}, {colour = minor_c, width = 0.6}) end
  for _, v in ipairs(ymajor) do
    fig:line({{L, py(v)}, {L + pw, py(v)}}, {colour = grid_c, width = 0.8})
    fig:text(L - 6, py(v), fmt_tick(log and 10 ^ v or v), {size = 10, align = 'right', valign = 'middle'})
  end
  for _, v in ipairs(ticks(xmin, xmax, 8)) do
    fig:line({{px(v), T}, {px(v), T + ph}}, {colour = grid_c, width = 0.8})
    fig:text(px(v), T + ph + 6, fmt_tick(v), {size = 10, align = 'center', valign = 'top'})
  end
  fig:rect(L, T, pw, ph, nil, {axis_c, 1})

  -- the series, clipped to the plot area
  local C = cairo.C
  C.cairo_save(fig.cr)
  C.cairo_rectangle(fig.cr, L, T, pw, ph)
  C.cairo_clip(fig.cr)
  for k, s in ipairs(list) do
    local col = s.colour or P.PALETTE[(k - 1) % #P.PALETTE + 1]
    local run = {}
    local function flush()
      if #run == 1 then fig:rect(run[1][1] - 1.2, run[1][2] - 1.2, 2.4, 2.4, col)
      elseif #run > 1 then fig:line(run, {colour = col, width = 1.6}) end
      run = {}
    end
    for i = 1, #s.y do
      local y, x = s.y[i], s.x and s.x[i] or i
      if finite(y) and finite(x) and not (log and y <= 0) then
        run[#run + 1] = {px(x), py(log and math.log10(y) or y)}
      else flush() end
    end
    flush()
  end
  C.cairo_restore(fig.cr)

  -- legend, top right, on a white box
  if #list > 0 then
    local labels, lw = {}, 0
    for k, s in ipairs(list) do
      labels[k] = tostring(s.name or ('series ' .. k))
      if hidden_counts[k] > 0 then labels[k] = string.format('%s (%d values <= 0 not shown)', labels[k], hidden_counts[k]) end
      lw = math.max(lw, (fig:text_size(labels[k], 10)))
    end
    local bw, bh = lw + 40, #list * 16 + 8
    local bx, by = L + pw - bw - 8, T + 8
    fig:rect(bx, by, bw, bh, {1, 1, 1, 0.85}, {{0.8, 0.8, 0.8}, 0.8})
    for k, s in ipairs(list) do
      local col = s.colour or P.PALETTE[(k - 1) % #P.PALETTE + 1]
      local ly = by + 4 + (k - 1) * 16 + 8
      fig:line({{bx + 8, ly}, {bx + 28, ly}}, {colour = col, width = 2})
      fig:text(bx + 34, ly, labels[k], {size = 10, valign = 'middle'})
    end
  end
  if opts.title then fig:text(L, 24, opts.title, {size = 14, bold = true}) end
  if opts.xlabel then fig:text(L + pw / 2, H - 12, opts.xlabel, {size = 11, align = 'center'}) end
  if opts.ylabel then
    fig:text(18, T + ph / 2, opts.ylabel .. (log and ' (log scale)' or ''), {size = 11, align = 'center', angle = -math.pi / 2})
  end
  return fig:save(path, {scale = opts.scale or 2})
end

-- A grid tile: a tensor, or {image = tensor, hidden = 0/1 tensor ([L] or [gh, gw], 1 = hidden), patch = p}.
local function tile_parts(tile, i, j)
  local img, hidden, patch
  if dama.is_tensor(tile) then img = tile
  elseif type(tile) == 'table' and dama.is_tensor(tile.image) then img, hidden, patch = tile.image, tile.hidden, tile.patch
  else error(string.format('plot.grid: tile (%d, %d) must be a tensor or {image = tensor, hidden = mask, patch = p}', i, j), 3) end
  local x = img:float()
  if x:dim() == 2 then x = x:unsqueeze(0) end
  if x:dim() ~= 3 or (x:size(0) ~= 1 and x:size(0) ~= 3) then
    error(string.format('plot.grid: tile (%d, %d) must be [H, W], [1, H, W] or [3, H, W], got [%s]', i, j,
      table.concat(img.shape, ', ')), 3)
  end
  if x:size(0) == 1 then x = x:expand(3, x:size(1), x:size(2)) end
  local rgb = (x:clamp(0, 1) * 255 + 0.5):permute(1, 2, 0):contiguous():to('u8')
  if hidden then
    if not patch then error(string.format('plot.grid: tile (%d, %d) has hidden patches but no patch size', i, j), 3) end
    local gh, gw = x:size(1) / patch, x:size(2) / patch
    if gh ~= math.floor(gh) or gw ~= math.floor(gw) or hidden:numel() ~= gh * gw then
      error(string.format('plot.grid: tile (%d, %d): a hidden mask of %d patches does not fit a %dx%d image in %d-pixel patches',
        i, j, hidden:numel(), x:size(1), x:size(2), patch), 3)
    end
    hidden = hidden:float():contiguous():view(gh * gw):totable()
    return rgb, hidden, patch, gw
  end
  return rgb
end

-- Grey fill and a diagonal hatch over the hidden patches of one tile at (ox, oy), s points per pixel.
local function draw_hidden(fig, hidden, patch, gw, ox, oy, s)
  local C, cr = cairo.C, fig.cr
  local size = patch * s
  C.cairo_save(cr)
  for l, h in ipairs(hidden) do
    if h > 0.5 then
      local r, c = math.floor((l - 1) / gw), (l - 1) % gw
      C.cairo_rectangle(cr, ox + c * size, oy + r * size, size, size)
    end
  end
  C.cairo_clip(cr)
  fig:colour(P.HIDDEN)
  C.cairo_paint(cr)
  local n = #hidden
  local w = gw * size
  local hgt = math.ceil(n / gw) * size
  local step = math.max(3, size / 4)
  fig:colour({0.72, 0.72, 0.72})
  C.cairo_set_line_width(cr, math.max(0.6, step / 5))
  for d = -hgt, w, step do
    C.cairo_move_to(cr, ox + d, oy + hgt)
    C.cairo_line_to(cr, ox + d + hgt, oy)
  end
  C.cairo_stroke(cr)
  C.cairo_restore(cr)
end

-- grid(path, rows, opts) -> path: an image grid. rows: a list of rows, each a list of tiles: tensors [H, W],
-- [1, H, W] or [3, H, W] with values in [0, 1] (clamped), or {image = tensor, hidden = mask, patch = p} to draw the
-- patches where mask is 1 (a [L] or [H/p, W/p] tensor) in neutral grey. opts: labels (one per column),
-- row_labels (one per row), title, legend ({{name, {r, g, b}}, ...}: colour swatches under the grid, e.g.
-- channel_legend), pad (points, 6), scale (points per image pixel, 1), png_scale (PNG pixels per point, 2).
function P.grid(path, rows, opts)
  opts = opts or {}
  if type(rows) ~= 'table' or #rows == 0 then error('plot.grid: expected a non-empty list of rows of tiles', 2) end
  local pad, sc = opts.pad or 6, opts.scale or 1
  local parts, th, tw, ncol = {}, 0, 0, 0
  for i, row in ipairs(rows) do
    parts[i] = {}
    ncol = math.max(ncol, #row)
    for j, tile in ipairs(row) do
      local rgb, hidden, patch, gw = tile_parts(tile, i, j)
      parts[i][j] = {rgb = rgb, hidden = hidden, patch = patch, gw = gw}
      th, tw = math.max(th, rgb:size(0) * sc), math.max(tw, rgb:size(1) * sc)
    end
  end
  local fig0 = cairo.figure(1, 1)
  local left = 0
  for _, l in ipairs(opts.row_labels or {}) do left = math.max(left, fig0:text_size(l, 10) + 8) end
  local title_h = opts.title and 24 or 0
  local top = title_h + (opts.labels and 18 or 0)
  local legend = opts.legend or {}
  local W = left + ncol * (tw + pad) + pad
  -- legend entries flow in lines of swatch + name under the grid
  local legend_lines, line, line_w = {}, {}, pad
  for _, e in ipairs(legend) do
    local w = 14 + 4 + fig0:text_size(e[1], 10) + 12
    if #line > 0 and line_w + w > W then legend_lines[#legend_lines + 1] = line; line, line_w = {}, pad end
    line[#line + 1] = {e, line_w}
    line_w = line_w + w
  end
  if #line > 0 then legend_lines[#legend_lines + 1] = line end
  local H = top + #rows * (th + pad) + pad + #legend_lines * 18 + (#legend_lines > 0 and 4 or 0)
  local fig = cairo.figure(W, H)
  if opts.title then fig:text(pad, 18, opts.title, {size = 13, bold = true}) end
  for j, label in ipairs(opts.labels or {}) do
    fig:text(left + pad + (j - 1) * (tw + pad) + tw / 2, title_h + 13, label, {size = 11, align = 'center'})
  end
  for i, row in ipairs(parts) do
    local oy = top + pad + (i - 1) * (th + pad)
    if opts.row_labels and opts.row_labels[i] then
      fig:text(left, oy + th / 2, opts.row_labels[i], {size = 10, align = 'right', valign = 'middle'})
    end
    for j, p in ipairs(row) do
      local ox = left + pad + (j - 1) * (tw + pad)
      fig:image(p.rgb, ox, oy, sc)
      if p.hidden then draw_hidden(fig, p.hidden, p.patch, p.gw, ox, oy, sc) end
    end
  end
  local ly = top + #rows * (th + pad) + pad + 8
  for _, ln in ipairs(legend_lines) do
    for _, item in ipairs(ln) do
      local e, x = item[1], item[2]
      fig:rect(x, ly - 5, 14, 10, e[2], {{0.5, 0.5, 0.5}, 0.5})
      fig:text(x + 18, ly, e[1], {size = 10, valign = 'middle'})
    end
    ly = ly + 18
  end
  return fig:save(path, {scale = opts.png_scale or 2})
end

-- Per-channel display ranges {{lo, hi}, ...} of a [C, H, W] image (min and max of each channel).
function P.channel_ranges(img)
  local x = img:float()
  local r = {}
  for c = 0, x:size(0) - 1 do
    local ch = x:select(0, c)
    r[c + 1] = {ch:amin():item(), ch:amax():item()}
  end
  return r
end

-- The display colour of each channel (fluorescence-like: blue, green, red, cyan, magenta, yellow, orange, ...).
P.CHANNEL_COLOURS = {{0.25, 0.45, 1}, {0.1, 1, 0.1}, {1, 0.15, 0.15}, {0, 0.95, 0.95}, {1, 0.2, 1}, {1, 0.9, 0},
                     {1, 0.55, 0}, {0.6, 0.4, 1}, {0.6, 1, 0.5}, {1, 0.6, 0.7}}

-- channel_colour(c) -> {r, g, b}: the colour of channel c (0-based) in composite and channel_legend
function P.channel_colour(c) return P.CHANNEL_COLOURS[c % #P.CHANNEL_COLOURS + 1] end

-- channel_legend(names_or_count) -> {{name, colour}, ...} for grid's legend: which colour is which channel
function P.channel_legend(names)
  local list = {}
  if type(names) == 'number' then for c = 1, names do list[c] = 'channel ' .. (c - 1) end
  else list = names end
  local out = {}
  for c, name in ipairs(list) do out[c] = {tostring(name), P.channel_colour(c - 1)} end
  return out
end

-- composite(img[, ranges[, opts]]) -> RGB [3, H, W]: a multiplex image [C, H, W] for display. Each channel is
-- scaled to [0, 1] by its range (its own min/max, or `ranges` from channel_ranges of another image, so an input and
-- its reconstruction share one scale) and tinted with channel_colour(c). opts.blend: 'max' (default: each pixel
-- takes the brightest tint per colour component, so seven channels never sum to white) or 'add' (additive, like a
-- fluorescence overlay; fine for two or three channels); opts.gain (1; a number opts means the gain).
function P.composite(img, ranges, opts)
  if type(opts) == 'number' then opts = {gain = opts} end
  opts = opts or {}
  local blend, gain = opts.blend or 'max', opts.gain or 1
  if blend ~= 'max' and blend ~= 'add' then
    error(string.format("plot.composite: blend must be 'max' or 'add', got '%s'", tostring(blend)), 2)
  end
  local x = img:float()
  if x:dim() ~= 3 then error('plot.composite: expected a [C, H, W] image, got [' .. table.concat(img.shape, ', ') .. ']', 2) end
  ranges = ranges or P.channel_ranges(x)
  local Cn, H, W = x:size(0), x:size(1), x:size(2)
  if #ranges < Cn then error(string.format('plot.composite: %d ranges for %d channels', #ranges, Cn), 2) end
  local out = dama.zeros(3, H, W)
  for c = 0, Cn - 1 do
    local lo, hi = ranges[c + 1][1], ranges[c + 1][2]
    local n = ((x:select(0, c) - lo) / math.max(hi - lo, 1e-8)):clamp(0, 1)
    local col = P.channel_colour(c)
    for k = 0, 2 do
      local o = out:select(0, k)
      if col[k + 1] > 0 then
        local v = n * (col[k + 1] * gain)
        if blend == 'add' then o:add_(v) else o:maximum_(v) end
      end
    end
  end
  return out:clamp(0, 1)
end

-- channel_image(img, c[, range]) -> RGB [3, H, W]: channel c (0-based) of a [C, H, W] image on a black-to-white
-- scale (its own min/max or range {lo, hi}), for per-channel panels
function P.channel_image(img, c, range)
  local ch = img:float():select(0, c)
  local lo, hi
  if range then lo, hi = range[1], range[2] else lo, hi = ch:amin():item(), ch:amax():item() end
  local n = ((ch - lo) / math.max(hi - lo, 1e-8)):clamp(0, 1)
  return n:unsqueeze(0):expand(3, n:size(0), n:size(1)):contiguous()
end

return P
