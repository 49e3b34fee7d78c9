-- dama.data.io: reading and writing files for dama.data. Single images by extension (TIFF, PNG, .npy):
-- info (header facts), ome_channel_names (OME-XML channel names of a TIFF), read / read_f32 (whole image,
-- H x W x C), read_window (a TIFF window, bounded memory), write (atomic) and write_tiff_fast (uncompressed,
-- no fsync); whole .npy arrays (load_npy, memory-mapped or read); and the small file-system helpers the
-- dataset constructors use (list_dir, is_dir, exists, read_lines). dama.data re-exports the public ones.
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call
local tensor = require 'dama.tensor'

local M = {}

-- Header facts of an image file: {width, height, channels, dtype (dama_dtype id), tiled, bigtiff,
-- pages, format, tile_w, tile_h}.
function M.info(path)
  local info = ffi.new('dama_image_info')
  call(C.dama_image_info_read, path, info)
  return {width = tonumber(info.width), height = tonumber(info.height), channels = tonumber(info.channels),
          dtype = tonumber(info.dtype), planar = tonumber(info.planar), tiled = info.tiled ~= 0,
          bigtiff = info.bigtiff ~= 0, tile_w = tonumber(info.tile_w), tile_h = tonumber(info.tile_h),
          pages = tonumber(info.n_pages), format = tonumber(info.format)}
end

-- OME channel names of a TIFF as a Lua array ({} when the file has no OME-XML).
function M.ome_channel_names(path)
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
function M.read(path)
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_image_read, path, box)
  local t = tensor.Tensor._wrap(box[0])
  if t:dim() == 2 then t = t:unsqueeze(2) end
  return t
end

-- The whole image as f32 H x W x C scaled like ToTensor (u16 / 65535, u8 / 255); expect_c > 0 checks
-- the channel count.
function M.read_f32(path, expect_c)
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_image_read_f32_tensor, path, expect_c or 0, box)
  local t = tensor.Tensor._wrap(box[0])
  if t:dim() == 2 then t = t:unsqueeze(2) end
  return t
end

-- Write an H x W x C (or H x W) tensor by extension: .tif/.tiff, .png, .npy (atomic).
function M.write(path, t)
  call(C.dama_image_write, path, t._c)
  return path
end

-- An uncompressed little-endian TIFF of an H x W x C (or H x W) u8 / u16 / f32 tensor, one strip,
-- PlanarConfiguration 1, written without fsync (dama.data.write is atomic and fsyncs, about 12 ms a
-- file: too slow for the set builders' many small crops). Readable by libtiff and tifffile ((H, W, C)).
local TIFF_BITS = {u8 = 8, u16 = 16, f32 = 32}
-- write_tiff_fast(path, t): write an [H, W, C] u8/u16/f32 tensor as an uncompressed interleaved TIFF.
function M.write_tiff_fast(path, t)
  local dt = t:type()
  local bits = TIFF_BITS[dt]
  if not bits then error(string.format("write_tiff_fast: '%s': expected u8, u16 or f32, got %s", path, dt), 2) end
  if t:dim() ~= 2 and t:dim() ~= 3 then
    error(string.format("write_tiff_fast: '%s': expected H x W x C, got shape %s", path, t:shape_string()), 2)
  end
  t = t:contiguous():cpu()   -- written from host memory
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
  f:write(ffi.string(ffi.cast('const char*', t:data()), nbytes))   -- t is the host copy made above
  if nbytes % 2 == 1 then f:write('\0') end
  f:write(u16(ntags), table.concat(tags), u32(0), table.concat(extra))
  f:close()
  return path
end

-- A window [x, x+w) x [y, y+h) of a TIFF (reads only the strips/tiles it touches); channels: 0-based
-- indices in output order or nil for all.
function M.read_window(path, x, y, w, h, channels)
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

-- list_dir(dir) -> the names in a folder, sorted ({} when it cannot be listed).
local function list_dir(dir)
  local p = io.popen('ls -1 ' .. string.format('%q', dir) .. ' 2>/dev/null')
  local r = {}
  for line in p:lines() do r[#r + 1] = line end
  p:close()
  table.sort(r)
  return r
end
M.list_dir = list_dir

-- is_dir(path) -> true if path is a directory.
local function is_dir(path)
  local ok = os.execute('test -d ' .. string.format('%q', path))
  return ok == true or ok == 0
end
M.is_dir = is_dir

-- exists(path) -> true if path exists.
local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() return true end
  return false
end
M.exists = exists

-- read_lines(path) -> the lines of a text file as a list.
local function read_lines(path)
  local r = {}
  for line in io.lines(path) do
    line = line:match('^%s*(.-)%s*$')
    if line ~= '' then r[#r + 1] = line end
  end
  return r
end
M.read_lines = read_lines

-- load_npy(path[, mmap]) -> tensor: read a .npy array (memory-mapped when mmap).
local function load_npy(path, mmap)
  if not exists(path) then error(string.format("npy: '%s' does not exist", path), 3) end
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_npy_load, path, mmap and 1 or 0, box)
  return tensor.Tensor._wrap(box[0])
end
M.load_npy = load_npy

return M
