-- dama.data.npy_writer: a .npy written row by row with bounded memory, for the set builders (datasets/):
-- npy_writer(path, dtype, row_shape) and the writer's methods write(ptr, bytes), write_tensor(t) and close()
-- (fixes the row count in the fixed-size header, renames path .. '.part' to path).
local ffi = require('dama.ffi').ffi

local M = {}

-- A .npy written row by row (bounded memory): w = D.npy_writer(path, 'u16', {H, W, C}); w:write(ptr,
-- bytes) per row (or w:write_tensor(t)); w:close() fixes the row count in the header. Written to
-- path .. '.part' and renamed on close.
local NPY_DESCR = {u8 = '|u1', u16 = '<u2', f32 = '<f4', i32 = '<i4', i64 = '<i8'}
local NPY_SIZE = {u8 = 1, u16 = 2, f32 = 4, i32 = 4, i64 = 8}
local NpyWriter = {}
NpyWriter.__index = NpyWriter

local function npy_header(descr, shape)
  local dims = {}
  for i, s in ipairs(shape) do dims[i] = tostring(s) end
  local shp = '(' .. table.concat(dims, ', ') .. (#dims == 1 and ',)' or ')')
  local dict = string.format("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shp)
  local total = 128   -- fixed, so the row count can be rewritten in place
  while 10 + #dict + 1 > total do total = total + 64 end
  dict = dict .. string.rep(' ', total - 10 - #dict - 1) .. '\n'
  return '\147NUMPY\1\0' .. string.char(#dict % 256, math.floor(#dict / 256)) .. dict
end

-- npy_writer(path, dtype, row_shape) -> writer, a .npy written row by row (bounded memory): w:write(ptr, bytes)
-- per row (or w:write_tensor(t)); w:close() fixes the row count in the header. Written to path .. '.part' and
-- renamed on close. dtype: u8, u16, f32, i32, i64.
function M.npy_writer(path, dtype, row_shape)
  local descr = NPY_DESCR[dtype]
  if not descr then error("npy_writer: dtype must be u8, u16, f32, i32 or i64, got '" .. tostring(dtype) .. "'", 2) end
  local f, err = io.open(path .. '.part', 'wb')
  if not f then error(string.format("npy_writer: cannot write '%s': %s", path, err), 2) end
  local row = NPY_SIZE[dtype]
  for _, s in ipairs(row_shape) do row = row * s end
  local w = setmetatable({f = f, path = path, descr = descr, row_shape = row_shape, row_bytes = row, n = 0}, NpyWriter)
  local shape = {0}
  for i, s in ipairs(row_shape) do shape[i + 1] = s end
  w.header_len = #npy_header(descr, shape)
  f:write(npy_header(descr, shape))
  return w
end

function NpyWriter:write(ptr, bytes)
  if bytes ~= self.row_bytes then
    error(string.format("npy_writer: '%s': a row has %d bytes, got %d", self.path, self.row_bytes, bytes), 2)
  end
  self.f:write(ffi.string(ptr, bytes))
  self.n = self.n + 1
end

function NpyWriter:write_tensor(t)
  t = t:contiguous():cpu()   -- written from host memory
  self:write(ffi.cast('const char*', t:data()), t:numel() * NPY_SIZE[t:type()])
end

function NpyWriter:close()
  local shape = {self.n}
  for i, s in ipairs(self.row_shape) do shape[i + 1] = s end
  local h = npy_header(self.descr, shape)
  if #h ~= self.header_len then error("npy_writer: header grew for '" .. self.path .. "'", 2) end
  self.f:seek('set', 0)
  self.f:write(h)
  self.f:close()
  local ok, err = os.rename(self.path .. '.part', self.path)
  if not ok then error(string.format("npy_writer: cannot rename to '%s': %s", self.path, err), 2) end
  return self.n
end

return M
