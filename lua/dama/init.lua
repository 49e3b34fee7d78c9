-- dama: self-supervised ViT training for multiplexed microscopy (DAMA), a LuaJIT library over a C runtime.
--
--   local dama = require 'dama'
--   local x = dama.randn(3, 4)          -- f32, Philox-seeded by dama.manual_seed(n)
--   print(x:matmul(x:t()):sum())
--
-- Submodules load on first use: dama.nn, dama.optim, dama.data, dama.mask, ...
local dffi = require 'dama.ffi'
local tensor = require 'dama.tensor'
local autograd = require 'dama.autograd'   -- makes the Tensor methods differentiable
local C, ffi = dffi.C, dffi.ffi

local dama = {}
for k, v in pairs(tensor) do dama[k] = v end
dama.C = C
dama.ffi = ffi
dama.version = '0.1.0'
dama.autograd = autograd
dama.no_grad = autograd.no_grad
dama.is_grad_enabled = autograd.is_grad_enabled
dama.set_grad_enabled = autograd.set_grad_enabled

-- Bytes held by tensors now and at peak, and the number of live tensor headers.
function dama.memory()
  local a, b, c = ffi.new('int64_t[1]'), ffi.new('int64_t[1]'), ffi.new('int64_t[1]')
  C.dama_memory_stats(a, b, c)
  return {in_use = tonumber(a[0]), peak = tonumber(b[0]), tensors = tonumber(c[0])}
end
-- Restart the peak count of dama.memory().peak from the bytes in use now.
function dama.reset_peak_memory() C.dama_memory_reset_peak() end
-- Cap the bytes tensors may hold (0 = no cap); an allocation over it fails with "out of memory".
function dama.set_memory_limit(bytes) C.dama_memory_set_limit(bytes or 0) end

-- set_num_threads(n): the number of CPU threads the C kernels use (OpenMP).
function dama.set_num_threads(n) C.dama_set_num_threads(n) end
-- get_num_threads() -> the number of CPU threads the C kernels use.
function dama.get_num_threads() return C.dama_get_num_threads() end

-- Tensor files (safetensors): dama.save(path, {name = t}, metadata), dama.load(path) -> tensors, metadata.
function dama.save(...) return require('dama.checkpoint').save_tensors(...) end
-- dama.load(path) -> {name = tensor}, metadata: read a safetensors file.
function dama.load(...) return require('dama.checkpoint').load_tensors(...) end

-- Lazily loaded submodules: dama.nn -> require 'dama.nn', and so on.
setmetatable(dama, {
  __index = function(t, k)
    if type(k) ~= 'string' then return nil end
    local ok, mod = pcall(require, 'dama.' .. k)
    if ok then rawset(t, k, mod) return mod end
    if not tostring(mod):find("module 'dama%." .. k .. "' not found", 1) then error(mod, 2) end
    return nil
  end,
})

return dama
