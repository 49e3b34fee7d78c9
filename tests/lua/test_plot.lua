-- dama.plot writes PNG charts and grids that read back with the expected size and content.
local dama = require 'dama'
local ffi = require 'ffi'
local dffi = require 'dama.ffi'

local function read_png(path)
  local box = ffi.new('dama_tensor*[1]')
  dffi.call(dama.C.dama_image_read, path, box)
  return dama.Tensor._wrap(box[0])
end

local tmp = os.tmpname()
os.remove(tmp)

test('line chart', function()
  local y = {}
  for i = 1, 50 do y[i] = 1 / i end
  dama.plot.lines(tmp .. '.png', {loss = y, other = {0 / 0, 0.5, 0.4}}, {width = 320, height = 200, title = 'loss'})
  local img = read_png(tmp .. '.png')
  expect_eq(img.shape, {200, 320, 3})
  expect_eq(img.dtype, 'u8')
  -- the first series' colour (31, 119, 180) appears
  local hits = img:select(2, 0):eq(31):mul(img:select(2, 2):eq(180)):sum():item()
  expect(hits > 50, 'series pixels drawn: ' .. hits)
  os.remove(tmp .. '.png')
end)

test('image grid with labels and scaling', function()
  local a = dama.zeros(8, 8)
  local b = dama.ones(3, 8, 8)
  dama.plot.grid(tmp .. '.png', {{a, b}, {b, a}}, {pad = 2, scale = 2, labels = {'x', 'y'}})
  local img = read_png(tmp .. '.png')
  expect_eq(img.shape, {16 + 2 * (16 + 2) + 2, 2 * (16 + 2) + 2, 3})
  expect_eq(img[{16 + 2 + 5, 2 + 5, 0}], 0)        -- black tile (row 0, col 0)
  expect_eq(img[{16 + 2 + 5, 2 + 18 + 5, 0}], 255) -- white tile (row 0, col 1)
  os.remove(tmp .. '.png')
end)

test('composite maps channels to colours in [0, 1]', function()
  local c = dama.plot.composite(dama.rand(7, 4, 4))
  expect_eq(c.shape, {3, 4, 4})
  expect(c:amax():item() <= 1 and c:amin():item() >= 0)
end)
