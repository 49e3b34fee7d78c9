-- Writes the small seed corpora of tests/fuzz/corpus/<target>/ with dama's own writers:
--   build/dama tests/fuzz/make_corpus.lua
-- Seeds are kept tiny (a few hundred bytes) so the fuzzers mutate headers, not pixels.
local dama = require 'dama'
local dffi = require 'dama.ffi'
local C = dffi.C
local root = 'tests/fuzz/corpus/'
for _, d in ipairs{'tiff', 'npy', 'png', 'safetensors', 'ome_xml', 'roundtrip'} do os.execute('mkdir -p ' .. root .. d) end

local function img(h, w, c, dt)
  dama.manual_seed(h * 100 + w * 10 + c)
  local t = dama.rand(h, w, c):mul(dt == 'u8' and 255 or 60000)
  return dt == 'f32' and t or t:to(dt)
end

-- TIFF: every layout, a few codecs, strips and tiles, classic and BigTIFF, with OME channel names
local n = 0
for _, dt in ipairs{'u8', 'u16', 'f32'} do
  for layout = 0, 2 do
    for _, comp in ipairs{0, 1, 2} do
      local tiled = (layout + comp) % 2 == 1 and 16 or 0
      local big = (n % 4 == 3) and 1 or 0
      n = n + 1
      local path = string.format('%stiff/%s_l%d_c%d_t%d_b%d.tif', root, dt, layout, comp, tiled, big)
      dffi.call(C.dama_tiff_write, path, img(4, 5, 3, dt)._c, layout, comp, tiled, big, nil)
    end
  end
end
local ffi = require 'ffi'
local names = ffi.new('const char*[3]', {'DAPI', 'CD45', 'Ki67'})
dffi.call(C.dama_tiff_write, root .. 'tiff/ome_pages.tif', img(3, 4, 3, 'u16')._c, 2, 0, 0, 0, names)
dffi.call(C.dama_tiff_write, root .. 'tiff/gray.tif', img(6, 6, 1, 'u8')._c, 0, 0, 0, 0, nil)

-- OME-XML: the ImageDescription dama writes, and variants
local function write(path, s) local f = assert(io.open(path, 'wb')) f:write(s) f:close() end
write(root .. 'ome_xml/three_channels.xml',
  '<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">' ..
  '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="4" SizeY="2" SizeC="3" ' ..
  'SizeZ="1" SizeT="1"><Channel ID="Channel:0:0" Name="DAPI" SamplesPerPixel="1"/><Channel ID="Channel:0:1" ' ..
  'Name="CD45" SamplesPerPixel="1"/><Channel ID="Channel:0:2" SamplesPerPixel="1"/><TiffData/></Pixels></Image></OME>')
write(root .. 'ome_xml/escaped_names.xml',
  '<OME><Image><Pixels SizeC="2"><Channel Name="a&amp;b &lt;1&gt;"/><Channel Name=\'C1\'/></Pixels></Image></OME>')
write(root .. 'ome_xml/tifffile_json.txt', '{"shape": [3, 2, 4]}')

-- .npy: dtypes and shapes, including empty arrays
local npys = {{'u8', {4, 5, 3}}, {'u16', {2, 3}}, {'f32', {3}}, {'f32', {0, 3}}, {'i64', {2, 2}}, {'f64', {1, 1, 1, 2}}}
for i, s in ipairs(npys) do
  local t = dama.rand(s[2]):mul(100):to(s[1])
  dffi.call(C.dama_npy_write, string.format('%snpy/%d_%s.npy', root, i, s[1]), t._c)
end

-- PNG: grey, grey+alpha, RGB, RGBA, 8 and 16 bit
for c = 1, 4 do
  for _, dt in ipairs{'u8', 'u16'} do
    dffi.call(C.dama_png_write, string.format('%spng/c%d_%s.png', root, c, dt), img(3, 4, c, dt)._c)
  end
end

-- safetensors: a few tensors and metadata
dama.checkpoint.save_tensors(root .. 'safetensors/small.safetensors',
  {w = dama.rand(2, 3), b = dama.zeros(3), step = dama.tensor({7}, 'i64'), h = dama.rand(2):to('bf16')},
  {format = 'pt', note = 'seed'})
dama.checkpoint.save_tensors(root .. 'safetensors/empty_tensor.safetensors', {e = dama.zeros(0, 4)}, nil)

-- round trip: header bytes (H, W, C, dtype, layout/codec, tiling) then pixel bytes
local rt = {'\3\4\2\0\0\0abcdefgh', '\7\5\3\1\5\1\0\1\2\3\4\5\6', '\2\2\1\2\10\2\63\128\0\0',
            '\16\16\4\3\11\3xyz', '\1\1\7\4\2\0\255\255\255\255'}
for i, s in ipairs(rt) do write(string.format('%sroundtrip/%d.bin', root, i), s) end
print('wrote the seed corpora under ' .. root)
