-- The C API for Lua: declarations (embedded in the binary at build time) and the error boundary.
--
-- Every C call returns a status; M.check turns a failure into a Lua error carrying the C message,
-- which names the operation and the bad argument. An out-of-memory failure first runs a full
-- collection (the GC cannot see tensor bytes, so unreferenced tensors may still hold memory) and
-- retries once, via M.call.
local ffi = require 'ffi'

local M = {ffi = ffi}

if not pcall(function() return ffi.C.dama_last_error end) then
  ffi.cdef 'extern const char dama_api_text[];'
  ffi.cdef(ffi.string(ffi.C.dama_api_text))
end
local C = ffi.C
M.C = C

local DAMA_ERR_OOM, DAMA_ERR_INTERRUPTED = 5, 8
M.DAMA_ERR_OOM = DAMA_ERR_OOM

function M.last_error()
  return ffi.string(C.dama_last_error())
end

-- Raise the current C error. The message already names the operation, so it carries no file:line of
-- the binding's internals (level 0); the traceback shows the caller.
function M.raise(status, level)
  local msg = ffi.string(C.dama_last_error())
  if status == DAMA_ERR_INTERRUPTED then
    C.dama_interrupt_clear()
    if msg == '' then msg = 'interrupted' end
  end
  if msg == '' then msg = ffi.string(C.dama_status_name(status)) end
  error(msg, level or 0)
end

function M.check(status)
  if status ~= 0 then M.raise(status) end
end

-- Call f(...) and retry once after a full collection if it ran out of memory.
function M.call(f, ...)
  local s = f(...)
  if s == DAMA_ERR_OOM then
    collectgarbage('collect'); collectgarbage('collect')
    s = f(...)
  end
  if s ~= 0 then M.raise(s) end
end

return M
