-- JSON text for metadata, config.json, metrics.jsonl and results.json, through cJSON (the codec the runtime
-- uses for safetensors headers; lua/json.c):
--
--   dama.json.encode{step = 3, loss = {0.5, 0.25}}   --> '{"loss":[0.5,0.25],"step":3}'
--   dama.json.decode('{"a": [1, null, 3]}')          --> {a = {1, nil, 3}}
--
-- Keys are written sorted, integers below 2^53 as integers, other numbers in the fewest digits (15..17) that read
-- back bit for bit.
-- NaN and Inf, functions, tensors, tables that contain themselves and strings holding a NUL byte are refused with
-- the path of the bad value (e.g. `json: cannot encode nan at .extra.best`). 64-bit integer cdata (RNG states)
-- are written as decimal strings, so no bit is lost. null decodes to nil.
local core = require 'dama.json_core'
local tensor = require 'dama.tensor'

local M = {}

local function on_cdata(v, where)
  local s = tostring(v)
  local int = s:match('^(%-?%d+)U?LL$')
  if not int then error('json: cannot encode a cdata value at ' .. where .. ' (' .. s .. ')', 0) end
  return int
end

-- encode(v) -> JSON text of a Lua value (tables, strings, numbers, booleans; 64-bit integer cdata as strings)
function M.encode(v)
  return core.encode(v, on_cdata, tensor.Tensor)
end

-- decode(s) -> the Lua value of the JSON text s (null -> nil); bad text raises naming the byte position
function M.decode(s)
  if type(s) ~= 'string' then error('json.decode: expected a string, got ' .. type(s), 2) end
  return core.decode(s)
end

return M
