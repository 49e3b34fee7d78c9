-- dama.plot draws with Cairo: figures read back with the expected size and content, in every format.
local dama = require 'dama'
local ffi = require 'ffi'
local dffi = require 'dama.ffi'

local function read_png(path)
  local box = ffi.new('dama_tensor*[1]')
  dffi.call(dama.C.dama_image_read, path, box)
  return dama.Tensor._wrap(box[0])
end

local function read_all(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

local tmp = os.tmpname()
os.remove(tmp)

-- pixels of colour c (0..255 components, within tol) in a u8 [H, W, 3] image
local function count_colour(img, c, tol)
  tol = tol or 2
  local hit = nil
  for k = 0, 2 do
    local ch = img:select(2, k):float()
    local m = (ch - c[k + 1]):abs():le(tol)
    hit = hit and hit:mul(m) or m
  end
  return hit:sum():item()
end
local function u8(col) return {math.floor(col[1] * 255 + 0.5), math.floor(col[2] * 255 + 0.5), math.floor(col[3] * 255 + 0.5)} end

test('Cairo is linked and named by --version', function()
  expect(dama.cairo.version():match('^%d+%.%d+%.%d+$'), dama.cairo.version())
end)

test('line chart: size, series colours, antialiasing', function()
  local y = {}
  for i = 1, 50 do y[i] = 1 / i end
  local path = dama.plot.lines(tmp .. '.png', {loss = y, other = {0 / 0, 0.5, 0.4}},
    {width = 320, height = 200, title = 'loss', scale = 1})
  expect_eq(path, tmp .. '.png')
  local img = read_png(tmp .. '.png')
  expect_eq(img.shape, {200, 320, 3})
  expect_eq(img.dtype, 'u8')
  local blue = count_colour(img, u8(dama.plot.PALETTE[1]))
  expect(blue > 60, 'first series drawn: ' .. blue)
  -- antialiased: the pixels around the curve are blends, not only pure colours
  local distinct = {}
  local flat = img:view(-1, 3)
  local rows = flat:totable()
  for _, px in ipairs(rows) do distinct[px[1] * 65536 + px[2] * 256 + px[3]] = true end
  local n = 0
  for _ in pairs(distinct) do n = n + 1 end
  expect(n > 100, 'antialiased colours: ' .. n)
  -- PNG pixel density
  dama.plot.lines(tmp .. '.png', {loss = y}, {width = 320, height = 200, scale = 2})
  expect_eq(read_png(tmp .. '.png').shape, {400, 640, 3})
  os.remove(tmp .. '.png')
end)

test('log axis: a series 1000x smaller is not flat; values <= 0 are left out and named', function()
  local big, small = {}, {}
  for i = 1, 100 do big[i] = 1 + 1 / i; small[i] = 1e-3 * (1 + 1 / i) end
  small[10] = 0
  local function height_of(img, col)
    -- the rows where the series colour appears
    local c = u8(col)
    local m
    for k = 0, 2 do
      local hit = (img:select(2, k):float() - c[k + 1]):abs():le(2)
      m = m and m:mul(hit) or hit
    end
    local rows = m:float():sum(1):gt(0):float()
    return rows:sum():item()
  end
  dama.plot.lines(tmp .. '.png', {a = big, b = small}, {width = 400, height = 300, scale = 1})
  local lin = read_png(tmp .. '.png')
  dama.plot.lines(tmp .. '.png', {a = big, b = small}, {width = 400, height = 300, scale = 1, log_y = true})
  local lg = read_png(tmp .. '.png')
  local b_lin, b_log = height_of(lin, dama.plot.PALETTE[2]), height_of(lg, dama.plot.PALETTE[2])
  expect(b_log > 3 * b_lin, string.format('series b spans %d rows on a log axis, %d on a linear one', b_log, b_lin))
  dama.plot.lines(tmp .. '.svg', {a = big, b = small}, {log_y = true})
  local svg = read_all(tmp .. '.svg')
  expect(svg:find('<svg', 1, true), 'an SVG file')
  os.remove(tmp .. '.png'); os.remove(tmp .. '.svg')
end)

test('SVG and PDF by extension; an unknown extension or folder is named', function()
  dama.plot.lines(tmp .. '.pdf', {loss = {3, 2, 1}}, {title = 'loss'})
  expect_eq(read_all(tmp .. '.pdf'):sub(1, 5), '%PDF-')
  dama.plot.grid(tmp .. '.svg', {{dama.rand(8, 8)}}, {labels = {'x'}})
  local svg = read_all(tmp .. '.svg')
  expect(svg:find('<svg', 1, true) and svg:find('<image', 1, true), 'an SVG with an embedded image')
  os.remove(tmp .. '.pdf'); os.remove(tmp .. '.svg')
  expect_error(function() dama.plot.lines(tmp .. '.jpg', {loss = {1}}) end, "unknown figure format 'jpg' %(expected .png, .svg or .pdf%)")
  expect_error(function() dama.plot.lines('/nonexistent-dir/x.png', {loss = {1}}) end, "cannot write '/nonexistent%-dir/x.png'")
  expect_error(function() dama.plot.lines('/nonexistent-dir/x.pdf', {loss = {1}}) end, "cannot write '/nonexistent%-dir/x.pdf'")
  expect_error(function() dama.plot.lines(tmp .. '.png', {loss = 3}) end, "series 'loss' must be a list")
end)

test('writes are atomic: a new file replaces the old by rename; a failed write leaves no temporary', function()
  local dir = tmp .. '_d'
  os.execute('mkdir -p ' .. dir)
  local path = dir .. '/loss.png'
  local function inode(p)
    local h = io.popen('stat -c %i ' .. p)
    local s = h:read('*l'); h:close()
    return s
  end
  dama.plot.lines(path, {loss = {3, 2, 1}}, {scale = 1})
  local first = inode(path)
  dama.plot.lines(path, {loss = {1, 2, 3}}, {scale = 1})
  expect(inode(path) ~= first, 'the figure is a new file renamed over the old one, never rewritten in place')
  -- a folder in the way of the rename: the error names the path and the temporary is removed
  os.execute('mkdir -p ' .. dir .. '/busy.pdf')
  expect_error(function() dama.plot.lines(dir .. '/busy.pdf', {loss = {1}}) end, "cannot write '.*busy.pdf'")
  local h = io.popen('ls ' .. dir)
  local listing = h:read('*a'); h:close()
  expect_eq(listing, 'busy.pdf\nloss.png\n')
  os.execute('rm -rf ' .. dir)
end)

test('image grid: layout, scaling, pixels stay pixels', function()
  local a = dama.zeros(8, 8)
  local b = dama.ones(3, 8, 8)
  dama.plot.grid(tmp .. '.png', {{a, b}, {b, a}}, {pad = 2, scale = 2, png_scale = 1})
  local img = read_png(tmp .. '.png')
  expect_eq(img.shape, {2 * (16 + 2) + 2, 2 * (16 + 2) + 2, 3})
  expect_eq(img[{2 + 5, 2 + 5, 0}], 0)         -- black tile (row 0, col 0)
  expect_eq(img[{2 + 5, 2 + 18 + 5, 0}], 255)  -- white tile (row 0, col 1)
  expect_eq(img[{2 + 18 + 5, 2 + 5, 0}], 255)  -- white tile (row 1, col 0)
  -- nearest-neighbour: a 2x2 checker scaled x4 has only two colours inside the tile
  local checker = dama.tensor({{0, 1}, {1, 0}})
  dama.plot.grid(tmp .. '.png', {{checker}}, {pad = 0, scale = 4, png_scale = 1})
  local c = read_png(tmp .. '.png')
  expect_eq(c.shape, {8, 8, 3})
  expect_eq(c:select(2, 0):totable(), {{0, 0, 0, 0, 255, 255, 255, 255}, {0, 0, 0, 0, 255, 255, 255, 255},
    {0, 0, 0, 0, 255, 255, 255, 255}, {0, 0, 0, 0, 255, 255, 255, 255}, {255, 255, 255, 255, 0, 0, 0, 0},
    {255, 255, 255, 255, 0, 0, 0, 0}, {255, 255, 255, 255, 0, 0, 0, 0}, {255, 255, 255, 255, 0, 0, 0, 0}})
  os.remove(tmp .. '.png')
  expect_error(function() dama.plot.grid(tmp .. '.png', {{dama.zeros(2, 4, 4)}}) end, 'tile %(1, 1%) must be')
  expect_error(function() dama.plot.grid(tmp .. '.png', {}) end, 'non%-empty list')
end)

test('hidden patches are neutral grey, distinct from dark tissue', function()
  local black = dama.zeros(3, 16, 16)              -- dark tissue
  local hidden = dama.tensor({1, 0, 0, 1})          -- 2x2 patches of 8 pixels: top-left, bottom-right hidden
  dama.plot.grid(tmp .. '.png', {{{image = black, hidden = hidden, patch = 8}}}, {pad = 0, png_scale = 1})
  local img = read_png(tmp .. '.png'):float()
  local function mean_of(y0, x0) return img:narrow(0, y0 + 2, 4):narrow(1, x0 + 2, 4):mean():item() end
  local grey = dama.plot.HIDDEN[1] * 255
  expect(math.abs(mean_of(0, 0) - grey) < 25, 'hidden patch grey: ' .. mean_of(0, 0))
  expect(math.abs(mean_of(8, 8) - grey) < 25, 'hidden patch grey: ' .. mean_of(8, 8))
  expect(mean_of(0, 8) < 1 and mean_of(8, 0) < 1, 'visible patches stay black')
  -- the grey is neutral: equal components
  local r, g, b = img[{2, 2, 0}], img[{2, 2, 1}], img[{2, 2, 2}]
  expect(math.abs(r - g) < 1 and math.abs(g - b) < 1, string.format('neutral grey: %g %g %g', r, g, b))
  expect_error(function()
    dama.plot.grid(tmp .. '.png', {{{image = black, hidden = dama.ones(3), patch = 8}}})
  end, 'does not fit')
  os.remove(tmp .. '.png')
end)

test('a channel legend names every channel in its colour', function()
  local legend = dama.plot.channel_legend({'DAPI', 'CD3', 'CD20'})
  expect_eq(#legend, 3)
  expect_eq(legend[2][1], 'CD3')
  expect_eq(legend[2][2], dama.plot.channel_colour(1))
  expect_eq(dama.plot.channel_legend(2)[2][1], 'channel 1')
  dama.plot.grid(tmp .. '.png', {{dama.zeros(3, 8, 8)}}, {legend = legend, png_scale = 1, pad = 4})
  local img = read_png(tmp .. '.png')
  for c = 0, 2 do
    local n = count_colour(img, u8(dama.plot.channel_colour(c)), 3)
    expect(n >= 50, string.format('swatch of channel %d: %d pixels', c, n))
  end
  os.remove(tmp .. '.png')
end)

test('composite: seven bright channels do not saturate to white; each channel keeps its colour', function()
  -- every channel at half its range (0..0.8): a typical tissue pixel where all markers are present
  local x = dama.full({7, 4, 4}, 0.4)
  for ch = 0, 6 do x[{ch, 0, 0}] = 0; x[{ch, 3, 3}] = 0.8 end
  local c = dama.plot.composite(x)
  expect_eq(c.shape, {3, 4, 4})
  expect(c:amax():item() <= 1 and c:amin():item() >= 0)
  local add = dama.plot.composite(x, nil, {blend = 'add'})
  -- additive: all of R, G, B clip at 1 (white); max blend: stays below, as the brightest tint per component
  expect(add[{0, 1, 1}] == 1 and add[{1, 1, 1}] == 1 and add[{2, 1, 1}] == 1, 'add saturates to white')
  local mr, mg, mb = c[{0, 1, 1}], c[{1, 1, 1}], c[{2, 1, 1}]
  expect(mr <= 0.51 and mg <= 0.51 and mb <= 0.51, string.format('max blend is not white: %g %g %g', mr, mg, mb))
  -- one channel on: exactly its colour
  local one = dama.zeros(7, 2, 2)
  one[{3, 0, 0}] = 1
  local o = dama.plot.composite(one)
  local col = dama.plot.channel_colour(3)
  expect_close({o[{0, 0, 0}], o[{1, 0, 0}], o[{2, 0, 0}]}, col, 1e-6)
  expect_error(function() dama.plot.composite(x, nil, {blend = 'screen'}) end, "blend must be 'max' or 'add'")
  expect_error(function() dama.plot.composite(dama.zeros(4, 4)) end, 'expected a %[C, H, W%] image')
end)
