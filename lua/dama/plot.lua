-- dama.plot: PNG figures without a plotting stack — loss curves and image grids.
--
--   dama.plot.lines('loss.png', {recon1 = {...}, total = {...}}, {x = steps, title = 'loss', xlabel = 'epoch'})
--   dama.plot.grid('recon.png', {{img1, img2, ...}, {...}})   -- rows of [3, H, W] or [H, W] tensors in [0, 1]
--
-- Drawing happens in a u8 RGB tensor through LuaJIT FFI loops; text uses a built-in 5×7 font.
local dama = require 'dama'
local C = dama.C
local call = require('dama.ffi').call

local P = {}

-- 5×7 glyphs, one string of 7 rows per character, '#' = ink.
local GLYPHS = {
  ['0'] = {' ### ', '#   #', '#  ##', '# # #', '##  #', '#   #', ' ### '},
  ['1'] = {'  #  ', ' ##  ', '  #  ', '  #  ', '  #  ', '  #  ', ' ### '},
  ['2'] = {' ### ', '#   #', '    #', '   # ', '  #  ', ' #   ', '#####'},
  ['3'] = {'#####', '   # ', '  #  ', '   # ', '    #', '#   #', ' ### '},
  ['4'] = {'   # ', '  ## ', ' # # ', '#  # ', '#####', '   # ', '   # '},
  ['5'] = {'#####', '#    ', '#### ', '    #', '    #', '#   #', ' ### '},
  ['6'] = {'  ## ', ' #   ', '#    ', '#### ', '#   #', '#   #', ' ### '},
  ['7'] = {'#####', '    #', '   # ', '  #  ', ' #   ', ' #   ', ' #   '},
  ['8'] = {' ### ', '#   #', '#   #', ' ### ', '#   #', '#   #', ' ### '},
  ['9'] = {' ### ', '#   #', '#   #', ' ####', '    #', '   # ', ' ##  '},
  ['a'] = {'     ', '     ', ' ### ', '    #', ' ####', '#   #', ' ####'},
  ['b'] = {'#    ', '#    ', '# ## ', '##  #', '#   #', '#   #', '#### '},
  ['c'] = {'     ', '     ', ' ### ', '#    ', '#    ', '#   #', ' ### '},
  ['d'] = {'    #', '    #', ' ## #', '#  ##', '#   #', '#   #', ' ####'},
  ['e'] = {'     ', '     ', ' ### ', '#   #', '#####', '#    ', ' ### '},
  ['f'] = {'  ## ', ' #  #', ' #   ', '###  ', ' #   ', ' #   ', ' #   '},
  ['g'] = {'     ', ' ####', '#   #', '#   #', ' ####', '    #', ' ### '},
  ['h'] = {'#    ', '#    ', '# ## ', '##  #', '#   #', '#   #', '#   #'},
  ['i'] = {'  #  ', '     ', ' ##  ', '  #  ', '  #  ', '  #  ', ' ### '},
  ['j'] = {'   # ', '     ', '  ## ', '   # ', '   # ', '#  # ', ' ##  '},
  ['k'] = {'#    ', '#    ', '#  # ', '# #  ', '##   ', '# #  ', '#  # '},
  ['l'] = {' ##  ', '  #  ', '  #  ', '  #  ', '  #  ', '  #  ', ' ### '},
  ['m'] = {'     ', '     ', '## # ', '# # #', '# # #', '#   #', '#   #'},
  ['n'] = {'     ', '     ', '# ## ', '##  #', '#   #', '#   #', '#   #'},
  ['o'] = {'     ', '     ', ' ### ', '#   #', '#   #', '#   #', ' ### '},
  ['p'] = {'     ', '     ', '#### ', '#   #', '#### ', '#    ', '#    '},
  ['q'] = {'     ', '     ', ' ## #', '#  ##', ' ####', '    #', '    #'},
  ['r'] = {'     ', '     ', '# ## ', '##  #', '#    ', '#    ', '#    '},
  ['s'] = {'     ', '     ', ' ### ', '#    ', ' ### ', '    #', '#### '},
  ['t'] = {' #   ', ' #   ', '###  ', ' #   ', ' #   ', ' #  #', '  ## '},
  ['u'] = {'     ', '     ', '#   #', '#   #', '#   #', '#  ##', ' ## #'},
  ['v'] = {'     ', '     ', '#   #', '#   #', '#   #', ' # # ', '  #  '},
  ['w'] = {'     ', '     ', '#   #', '#   #', '# # #', '# # #', ' # # '},
  ['x'] = {'     ', '     ', '#   #', ' # # ', '  #  ', ' # # ', '#   #'},
  ['y'] = {'     ', '     ', '#   #', '#   #', ' ####', '    #', ' ### '},
  ['z'] = {'     ', '     ', '#####', '   # ', '  #  ', ' #   ', '#####'},
  ['.'] = {'     ', '     ', '     ', '     ', '     ', ' ##  ', ' ##  '},
  ['-'] = {'     ', '     ', '     ', '#####', '     ', '     ', '     '},
  ['+'] = {'     ', '  #  ', '  #  ', '#####', '  #  ', '  #  ', '     '},
  ['_'] = {'     ', '     ', '     ', '     ', '     ', '     ', '#####'},
  [':'] = {'     ', ' ##  ', ' ##  ', '     ', ' ##  ', ' ##  ', '     '},
  ['/'] = {'     ', '    #', '   # ', '  #  ', ' #   ', '#    ', '     '},
  ['('] = {'   # ', '  #  ', ' #   ', ' #   ', ' #   ', '  #  ', '   # '},
  [')'] = {' #   ', '  #  ', '   # ', '   # ', '   # ', '  #  ', ' #   '},
  ['='] = {'     ', '     ', '#####', '     ', '#####', '     ', '     '},
  [','] = {'     ', '     ', '     ', '     ', ' ##  ', '  #  ', ' #   '},
  [' '] = {'     ', '     ', '     ', '     ', '     ', '     ', '     '},
}

-- A canvas: u8 [H, W, 3] tensor and its raw pointer.
local Canvas = {}
Canvas.__index = Canvas

function P.canvas(w, h, rgb)
  local t = dama.full({h, w, 3}, 255, 'u8')
  local c = setmetatable({t = t, w = w, h = h, p = t:data()}, Canvas)
  if rgb then c:rect(0, 0, w, h, rgb) end
  return c
end

function Canvas:pixel(x, y, rgb)
  x, y = math.floor(x), math.floor(y)
  if x < 0 or y < 0 or x >= self.w or y >= self.h then return end
  local i = (y * self.w + x) * 3
  self.p[i], self.p[i + 1], self.p[i + 2] = rgb[1], rgb[2], rgb[3]
end

function Canvas:rect(x0, y0, w, h, rgb)
  for y = y0, y0 + h - 1 do for x = x0, x0 + w - 1 do self:pixel(x, y, rgb) end end
end

-- Bresenham line, `width` pixels thick.
function Canvas:line(x0, y0, x1, y1, rgb, width)
  width = width or 1
  x0, y0, x1, y1 = math.floor(x0 + 0.5), math.floor(y0 + 0.5), math.floor(x1 + 0.5), math.floor(y1 + 0.5)
  local dx, dy = math.abs(x1 - x0), -math.abs(y1 - y0)
  local sx, sy = x0 < x1 and 1 or -1, y0 < y1 and 1 or -1
  local err = dx + dy
  local half = math.floor((width - 1) / 2)
  while true do
    for oy = -half, width - 1 - half do for ox = -half, width - 1 - half do self:pixel(x0 + ox, y0 + oy, rgb) end end
    if x0 == x1 and y0 == y1 then break end
    local e2 = 2 * err
    if e2 >= dy then err = err + dy; x0 = x0 + sx end
    if e2 <= dx then err = err + dx; y0 = y0 + sy end
  end
end

-- Text at (x, y) = top-left, scale s (glyph cell 6s × 8s). Unknown characters draw as '?'-boxes.
function Canvas:text(x, y, str, rgb, s)
  s = s or 1
  str = tostring(str):lower()
  for k = 1, #str do
    local g = GLYPHS[str:sub(k, k)]
    local cx = x + (k - 1) * 6 * s
    if g then
      for row = 1, 7 do
        local line = g[row]
        for col = 1, 5 do
          if line:sub(col, col) == '#' then self:rect(cx + (col - 1) * s, y + (row - 1) * s, s, s, rgb) end
        end
      end
    else
      self:rect(cx, y, 5 * s, 7 * s, {200, 200, 200})
    end
  end
end

function P.text_width(str, s) return #tostring(str) * 6 * (s or 1) end

function Canvas:save(path)
  call(C.dama_png_write, path, self.t._c)
end

local PALETTE = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
                 {140, 86, 75}, {227, 119, 194}, {127, 127, 127}}

local function fmt_tick(v)
  if v == 0 then return '0' end
  local a = math.abs(v)
  if a >= 1e4 or a < 1e-2 then return string.format('%.1e', v):gsub('e%+?0?', 'e') end
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
  for v = math.ceil(lo / step) * step, hi + step * 1e-9, step do out[#out + 1] = v end
  return out
end

-- Line chart. series: {name = {y...}} or an array of {name=, y=, x=}. opts: x (shared x values),
-- title, xlabel, ylabel, width, height, log_y.
function P.lines(path, series, opts)
  opts = opts or {}
  local W, H = opts.width or 800, opts.height or 500
  local list = {}
  if #series > 0 then list = series
  else
    local names = {}
    for name in pairs(series) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do list[#list + 1] = {name = name, y = series[name]} end
  end
  local tf = opts.log_y and function(v) return v > 0 and math.log10(v) or nil end or function(v) return v end
  local xmin, xmax, ymin, ymax = math.huge, -math.huge, math.huge, -math.huge
  for _, s in ipairs(list) do
    s.x = s.x or opts.x
    for i, y in ipairs(s.y) do
      local x = s.x and s.x[i] or i
      local ty = tf(y)
      if ty and ty == ty and ty ~= math.huge and ty ~= -math.huge then
        xmin, xmax = math.min(xmin, x), math.max(xmax, x)
        ymin, ymax = math.min(ymin, ty), math.max(ymax, ty)
      end
    end
  end
  if xmin == math.huge then xmin, xmax, ymin, ymax = 0, 1, 0, 1 end
  if xmax == xmin then xmax = xmin + 1 end
  if ymax == ymin then ymin, ymax = ymin - 0.5, ymax + 0.5 end
  local pad = (ymax - ymin) * 0.05
  ymin, ymax = ymin - pad, ymax + pad
  local cv = P.canvas(W, H)
  local L, R, T, B = 80, 20, 40, 50
  local pw, ph = W - L - R, H - T - B
  local function px(x) return L + (x - xmin) / (xmax - xmin) * pw end
  local function py(y) return T + ph - (y - ymin) / (ymax - ymin) * ph end
  local grey, dark = {225, 225, 225}, {40, 40, 40}
  for _, v in ipairs(ticks(ymin, ymax, 6)) do
    cv:line(L, py(v), L + pw, py(v), grey)
    local label = fmt_tick(opts.log_y and 10 ^ v or v)
    cv:text(L - 8 - P.text_width(label), py(v) - 3, label, dark)
  end
  for _, v in ipairs(ticks(xmin, xmax, 8)) do
    cv:line(px(v), T, px(v), T + ph, grey)
    local label = fmt_tick(v)
    cv:text(px(v) - P.text_width(label) / 2, T + ph + 8, label, dark)
  end
  cv:line(L, T, L, T + ph, dark); cv:line(L, T + ph, L + pw, T + ph, dark)
  for k, s in ipairs(list) do
    local col = PALETTE[(k - 1) % #PALETTE + 1]
    local prev
    for i, y in ipairs(s.y) do
      local ty = tf(y)
      if ty and ty == ty and math.abs(ty) ~= math.huge then
        local pt = {px(s.x and s.x[i] or i), py(ty)}
        if prev then cv:line(prev[1], prev[2], pt[1], pt[2], col, 2) else cv:pixel(pt[1], pt[2], col) end
        prev = pt
      else prev = nil end
    end
    -- legend, top right
    local ly = T + 8 + (k - 1) * 14
    cv:rect(L + pw - 130, ly + 2, 14, 3, col)
    cv:text(L + pw - 110, ly, s.name or ('series ' .. k), dark)
  end
  if opts.title then cv:text(L, 12, opts.title, dark, 2) end
  if opts.xlabel then cv:text(L + pw / 2 - P.text_width(opts.xlabel) / 2, H - 18, opts.xlabel, dark) end
  if opts.ylabel then cv:text(8, T - 16, opts.ylabel, dark) end
  cv:save(path)
  return path
end

-- Image grid. rows: array of arrays of tensors, each [H, W] (grey), [3, H, W] (RGB) or [1, H, W],
-- float values in [0, 1] (clamped). opts: labels (one per column), pad, scale (integer upscaling).
function P.grid(path, rows, opts)
  opts = opts or {}
  local pad, sc = opts.pad or 4, opts.scale or 1
  local th, tw = 0, 0
  local ncol = 0
  for _, row in ipairs(rows) do
    ncol = math.max(ncol, #row)
    for _, img in ipairs(row) do
      local s = img:size()
      th, tw = math.max(th, s[#s - 1] * sc), math.max(tw, s[#s] * sc)
    end
  end
  local top = opts.labels and 16 or 0
  local W = ncol * (tw + pad) + pad
  local H = #rows * (th + pad) + pad + top
  local cv = P.canvas(W, H, {255, 255, 255})
  if opts.labels then
    for j, label in ipairs(opts.labels) do cv:text(pad + (j - 1) * (tw + pad), 4, label, {40, 40, 40}) end
  end
  for i, row in ipairs(rows) do
    for j, img in ipairs(row) do
      local x = img:float():clamp(0, 1)
      if x:dim() == 2 then x = x:unsqueeze(0) end
      if x:size(0) == 1 then x = x:expand(3, x:size(1), x:size(2)) end
      x = (x * 255 + 0.5):permute(1, 2, 0):contiguous()
      local h, w = x:size(0), x:size(1)
      local src = x:data()
      local ox, oy = pad + (j - 1) * (tw + pad), top + pad + (i - 1) * (th + pad)
      for yy = 0, h * sc - 1 do
        for xx = 0, w * sc - 1 do
          local k = (math.floor(yy / sc) * w + math.floor(xx / sc)) * 3
          local d = ((oy + yy) * W + ox + xx) * 3
          cv.p[d], cv.p[d + 1], cv.p[d + 2] = src[k], src[k + 1], src[k + 2]
        end
      end
    end
  end
  cv:save(path)
  return path
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

-- Multichannel image [C, H, W] -> RGB [3, H, W] for display: each channel gets a colour, is scaled to
-- [0, 1] by its range (its own min/max, or `ranges` from P.channel_ranges of another image, so an
-- input and its reconstruction share one scale), and the colours are added like a fluorescence overlay.
local CHANNEL_COLOURS = {{0.2, 0.4, 1}, {0, 1, 1}, {0, 1, 0}, {1, 0, 1}, {1, 1, 0}, {1, 0.3, 0}, {1, 0, 0},
                         {1, 1, 1}}
function P.composite(img, ranges, gain)
  local x = img:float()
  ranges = ranges or P.channel_ranges(x)
  local Cn, H, W = x:size(0), x:size(1), x:size(2)
  local out = dama.zeros(3, H, W)
  for c = 0, Cn - 1 do
    local lo, hi = ranges[c + 1][1], ranges[c + 1][2]
    local n = ((x:select(0, c) - lo) / math.max(hi - lo, 1e-8)):clamp(0, 1)
    local col = CHANNEL_COLOURS[c % #CHANNEL_COLOURS + 1]
    for k = 0, 2 do out:select(0, k):add_(n * (col[k + 1] * (gain or 0.6))) end
  end
  return out:clamp(0, 1)
end

return P
