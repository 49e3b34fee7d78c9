-- dama.data.channels: channel names and channel selection. channel_names (the built-in generator's),
-- split_names ('DAPI,NeuN' -> a list) and resolve_channels (a selection of 0-based indices and / or names
-- -> 0-based indices, with errors naming the bad entry and the names available); and the Dataset methods
-- about channels: source_channels, num_channels, channel_name_list and select_channels. Those are defined
-- here on a method table and copied onto dama.data.Dataset by dataset.lua (M.install), which also hands
-- over its derive(); this file does not require dataset.lua.
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call
local dio = require 'dama.data.io'

local M = {}

-- The Dataset methods below; M.install copies them onto the class.
local Dataset = {}
local derive   -- dataset.lua's derive(ds, fields), set by M.install

-- install(Dataset, derive): add the channel methods to the Dataset class; derive makes the new datasets.
function M.install(cls, derive_fn)
  derive = derive_fn
  for k, v in pairs(Dataset) do cls[k] = v end
end

-- Names of the built-in generator's channels: DAPI, Histones, NeuN, S100, Olig2, Iba1, RECA1.
function M.channel_names()
  local r = {}
  for k = 0, 6 do r[k + 1] = ffi.string(C.dama_synth_channel_name(k)) end
  return r
end

-- Channels of the source samples (before any selection).
function Dataset:source_channels()
  if self.kind == 'synth' then return 7 end
  if self.kind == 'array' then return self.array:dim() == 4 and self.array:size(3) or 1 end
  if not self._src_c then self._src_c = dio.info(self.paths[1]).channels end
  return self._src_c
end

function Dataset:num_channels()
  return self.channels and #self.channels or self:source_channels()
end

-- Names of the samples' channels as the dataset sees them (after selection), or nil if unknown.
function Dataset:channel_name_list()
  local names = self.channel_names
  if not names and self.kind == 'synth' then names = M.channel_names() end
  if not names and self.kind == 'files' then
    local ok, r = pcall(dio.ome_channel_names, self.paths[1])
    if ok and #r > 0 then names = r end
  end
  if not names then return nil end
  if not self.channels then return names end
  local r = {}
  for i, c in ipairs(self.channels) do r[i] = names[c + 1] end
  return r
end

-- split_names(sel) -> list: a channel selection 'DAPI,NeuN' (or a table) as a list of names.
local function split_names(sel)
  if type(sel) == 'string' then
    local r = {}
    for part in sel:gmatch('[^,]+') do r[#r + 1] = tonumber(part) or part:match('^%s*(.-)%s*$') end
    return r
  end
  return sel
end
M.split_names = split_names

-- Resolve a channel selection (0-based indices and / or names) against a file's OME names or a name list.
-- Returns 0-based indices in the order given.
local function resolve_channels(sel, n_src, names, where)
  sel = split_names(sel)
  if type(sel) ~= 'table' or #sel == 0 then
    error(string.format('select_channels: expected a non-empty list of channel indices or names, got %s',
      tostring(sel)), 3)
  end
  local r = {}
  for i, s in ipairs(sel) do
    if type(s) == 'number' then
      if s ~= math.floor(s) or s < 0 or s >= n_src then
        error(string.format('select_channels: %s: channel %s: expected an index in [0, %d)', where, tostring(s), n_src), 3)
      end
      r[i] = s
    else
      if not names or #names == 0 then
        error(string.format("select_channels: %s has no channel names (not an OME-TIFF?); select channel '%s' " ..
          'by its 0-based index instead', where, tostring(s)), 3)
      end
      local found
      for k, nm in ipairs(names) do if nm == s then found = k - 1 break end end
      if not found then
        error(string.format("select_channels: %s has no channel '%s' (it has: %s)", where, tostring(s),
          table.concat(names, ', ')), 3)
      end
      r[i] = found
    end
  end
  return r
end
-- resolve_channels(sel, n_channels, names, where) -> 0-based indices: sel is a list (or a comma-separated
-- string) of 0-based indices and / or names looked up in `names` (a Lua array, may be nil); errors name
-- `where`, the bad entry and the names available.
M.resolve_channels = function(sel, n_src, names, where) return resolve_channels(sel, n_src, names, where) end

-- A new dataset whose samples have the channels `sel` in that order: 0-based indices into the current
-- channels and / or names (OME-XML names for OME-TIFF files, the generator's for synthetic data,
-- opts.channel_names for arrays), a list or a 'DAPI,NeuN' string. Selections compose. For files the names
-- are resolved on the first file; opts.verify = true checks every file's OME names resolve to the same
-- indices (error naming the first file that differs).
function Dataset:select_channels(sel, opts)
  opts = opts or {}
  local n_cur = self:num_channels()
  local names = self:channel_name_list()
  local where = self.kind == 'files' and string.format("'%s'", self.paths[1]) or self:describe()
  local idx = resolve_channels(sel, n_cur, names, where)
  local src = {}
  for i, c in ipairs(idx) do src[i] = self.channels and self.channels[c + 1] or c end
  if opts.verify and self.kind == 'files' then
    local wanted = {}
    for i, s in ipairs(split_names(sel)) do if type(s) == 'string' then wanted[#wanted + 1] = {i, s} end end
    if #wanted > 0 then
      local list = {}
      for k, w in ipairs(wanted) do list[k] = w[2] end
      local joined = table.concat(list, ',')
      local out, n = ffi.new('int32_t[?]', #list), ffi.new('int32_t[1]')
      local src_names = self.channels and nil or true
      for _, p in ipairs(self.paths) do
        call(C.dama_ome_channel_indices, p, joined, out, #list, n)
        for k, w in ipairs(wanted) do
          local expect = src[w[1]]
          if src_names and out[k - 1] ~= expect then
            error(string.format("select_channels: '%s' has channel '%s' at index %d, '%s' at %d", p, w[2],
              out[k - 1], self.paths[1], expect), 2)
          end
        end
      end
    end
  end
  return derive(self, {paths = self.paths, labels = self.labels, array = self.array, n = self.n,
                       index = self.index, channels = src, _src_c = self._src_c})
end

return M
