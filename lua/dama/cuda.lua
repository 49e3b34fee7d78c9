-- dama.cuda: is there a GPU, what is it, and its caching allocator (torch.cuda's names).
--
--   dama.cuda.available()            -- false on a machine without a GPU or a driver, or in a build without CUDA
--   dama.cuda.unavailable_reason()   -- why not, in the driver's words (nil when a device is there)
--   dama.cuda.get_device_name()      -- 'NVIDIA H200'
--   x = dama.randn(4, 4):cuda()      -- tensors move with t:cuda() / t:to('cuda:1') / {device = 'cuda'}
--
-- The CUDA backend is built when the toolkit is present at build time (is_built()); `dama --version` says what it
-- carries and what it found; an op whose kernel is not written yet raises "<op>: not implemented on cuda:0 yet"
-- (cuda/README.md says what exists). dama.cuda.graph captures a stretch of work and replays it as one launch.
local dffi = require 'dama.ffi'
local tensor = require 'dama.tensor'
local C, ffi = dffi.C, dffi.ffi

local M = {}
local CUDA = 1   -- DAMA_CUDA

local have_stats = pcall(function()
  ffi.cdef [[
    const char *dama_cuda_allocator_stat_names(void);
    int32_t dama_cuda_allocator_stats(int32_t index, int64_t *out, int32_t n);
  ]]
  return C.dama_cuda_allocator_stats
end)

local function dev(i)
  if i ~= nil and (type(i) ~= 'number' or i < 0 or i % 1 ~= 0) then
    error('dama.cuda: expected a device index (0, 1, ...), got ' .. tostring(i), 3)
  end
  return 'cuda:' .. (i or 0)
end

-- is_built() -> true when this build has the CUDA backend (the toolkit was found when it was built)
function M.is_built() return C.dama_backend_info(CUDA) ~= nil end

-- device_count() -> the number of CUDA devices (0 without a GPU, a driver, or the backend)
function M.device_count() return tonumber(C.dama_device_count(CUDA)) end

-- available() -> true when at least one CUDA device can be used
function M.available() return M.device_count() > 0 end

-- unavailable_reason() -> why there is no CUDA device ('this build has no CUDA backend', 'no NVIDIA driver: ...',
-- cudaGetDeviceCount's error), or nil when there is one
function M.unavailable_reason()
  if not M.is_built() then return 'this build has no CUDA backend' end
  local r = C.dama_device_unavailable_reason(CUDA)
  return r ~= nil and ffi.string(r) or nil
end

-- info() -> one line: the CUDA version built in, the GPU code it carries and the devices found (as `dama --version`)
function M.info()
  local s = C.dama_backend_info(CUDA)
  return s ~= nil and ffi.string(s) or 'CUDA: not built in'
end

local props_box = ffi.new('dama_device_props[1]')
-- get_device_properties([i]) -> {name, total_memory, major, minor, multi_processor_count} of cuda:i (default 0);
-- raises, naming why, when there is no such device
function M.get_device_properties(i)
  local d = tensor.device(dev(i))   -- raises "device cuda:0 is not available (0 cuda devices: <why>)"
  local boxdev = ffi.new('dama_device', {CUDA, tonumber(d:match(':(%d+)$'))})
  dffi.check(C.dama_device_properties(boxdev, props_box))
  local p = props_box[0]
  return {name = ffi.string(p.name), total_memory = tonumber(p.total_memory), major = tonumber(p.major),
          minor = tonumber(p.minor), multi_processor_count = tonumber(p.multi_processor_count)}
end

-- get_device_name([i]) -> the name of cuda:i (default 0), e.g. 'NVIDIA H200'; raises when there is no such device
function M.get_device_name(i) return M.get_device_properties(i).name end

-- get_device_capability([i]) -> major, minor compute capability of cuda:i (default 0)
function M.get_device_capability(i)
  local p = M.get_device_properties(i)
  return p.major, p.minor
end

-- synchronize([i]) -- wait until the work queued on cuda:i (default 0) has run; raises when there is no such device
function M.synchronize(i) tensor.synchronize(dev(i)) end

-- empty_cache([i]) -- give the caching allocator's free segments of cuda:i (default: every device) back to the driver;
-- nothing to do, and no error, when there is no CUDA device (as torch.cuda.empty_cache)
function M.empty_cache(i)
  if i ~= nil then tensor.empty_cache(dev(i)) return end
  for k = 0, M.device_count() - 1 do tensor.empty_cache('cuda:' .. k) end
end

local stat_names
-- memory_stats([i]) -> bytes and counts for cuda:i (default 0): allocated, peak (tensor storage now and at peak),
-- cached, total, free (the device), and the caching allocator's own counters: reserved (segments held), requested,
-- peak_reserved, active_blocks, segments, raw_allocs / raw_frees (cudaMalloc / cudaFree calls), cache_hits,
-- oom_retries (cache emptied and cudaMalloc retried), ooms; raises when there is no such device
function M.memory_stats(i)
  local name = dev(i)
  local s = tensor.memory_stats(name)
  if have_stats then
    if not stat_names then
      stat_names = {}
      for w in ffi.string(C.dama_cuda_allocator_stat_names()):gmatch('[^,]+') do stat_names[#stat_names + 1] = w end
    end
    local buf = ffi.new('int64_t[?]', #stat_names)
    local n = C.dama_cuda_allocator_stats(i or 0, buf, #stat_names)
    for k = 1, n do
      local key = stat_names[k]
      if key == 'allocated' or key == 'peak_allocated' or key == 'cached' then key = 'allocator_' .. key end
      s[key] = tonumber(buf[k - 1])
    end
  end
  return s
end

-- memory_allocated([i]) -> bytes of tensor storage on cuda:i (default 0) now
function M.memory_allocated(i) return M.memory_stats(i).allocated end
-- memory_reserved([i]) -> bytes of device memory the caching allocator holds for cuda:i (default 0), used or cached
function M.memory_reserved(i) return M.memory_stats(i).reserved or 0 end

-- ---- CUDA graphs ----
local have_graphs = pcall(function()
  ffi.cdef [[
    typedef struct dama_cuda_graph dama_cuda_graph;
    dama_status dama_cuda_graph_begin(int32_t index, dama_cuda_graph **out);
    dama_status dama_cuda_graph_end(dama_cuda_graph *g, int ok);
    dama_status dama_cuda_graph_replay(dama_cuda_graph *g);
    void dama_cuda_graph_destroy(dama_cuda_graph *g);
    void dama_cuda_graph_info(const dama_cuda_graph *g, int64_t *nodes, int64_t *replays);
  ]]
  return C.dama_cuda_graph_begin
end)

local Graph = {}
Graph.__index = Graph

local function last_error() return ffi.string(C.dama_last_error()) end

-- g = dama.cuda.graph(fn [, {device = i}]) -- capture fn() on cuda:i (default: the default device's index, else 0):
-- the work it queues there is recorded once (nothing runs during the capture) and g:replay() queues all of it as
-- one launch. g.outputs holds what fn returned: tensors made during the capture, which each replay refills. Inputs
-- are whatever tensors fn used: copy new data into them (x:copy_(batch)) before a replay. Shapes, and every value
-- fn computed on the host, are frozen at capture. Inside fn nothing may wait for the device or read it on the host
-- (:item(), :cpu(), printing a tensor, synchronize): that raises by name and ends the capture. Random numbers drawn
-- inside fn are fresh at every replay, the same a sequence of eager calls would draw. g:destroy() (or garbage
-- collection) frees the graph and its private memory pool. torch.cuda.CUDAGraph and torch.cuda.graph are the models.
function M.graph(fn, opts)
  if type(fn) ~= 'function' then error('dama.cuda.graph: expected a function to capture', 2) end
  if not have_graphs then error('dama.cuda.graph: this build has no CUDA backend', 2) end
  local index = opts and opts.device
  if index == nil then
    index = tonumber(tostring(tensor.get_default_device()):match('^cuda:(%d+)$')) or 0
  end
  dev(index)
  if M.device_count() <= index then
    error(string.format('dama.cuda.graph: no device cuda:%d (%s)', index, M.unavailable_reason() or 'absent'), 2)
  end
  local box = ffi.new('dama_cuda_graph*[1]')
  if C.dama_cuda_graph_begin(index, box) ~= 0 then error('dama.cuda.graph: ' .. last_error(), 2) end
  local handle = box[0]
  local res = (function(...) return {n = select('#', ...), ...} end)(pcall(fn))   -- LuaJIT has no table.pack
  local st = C.dama_cuda_graph_end(handle, res[1] and 1 or 0)
  local g = setmetatable({index = index, outputs = {}}, Graph)
  g._h = ffi.gc(handle, C.dama_cuda_graph_destroy)
  if not res[1] then
    g:destroy()
    error(res[2], 0)
  end
  if st ~= 0 then
    local msg = last_error()
    g:destroy()
    error('dama.cuda.graph: ' .. msg, 2)
  end
  for k = 2, res.n do g.outputs[k - 1] = res[k] end
  return g
end

-- g:replay() -- queue the captured work once more (returns before it runs, as any op on the device)
function Graph:replay()
  if not self._h then error('graph:replay: the graph was destroyed', 2) end
  if C.dama_cuda_graph_replay(self._h) ~= 0 then error('graph:replay: ' .. last_error(), 2) end
end

-- g:info() -> {nodes =, replays =}
function Graph:info()
  if not self._h then return {nodes = 0, replays = 0} end
  local n, r = ffi.new('int64_t[1]'), ffi.new('int64_t[1]')
  C.dama_cuda_graph_info(self._h, n, r)
  return {nodes = tonumber(n[0]), replays = tonumber(r[0])}
end

function Graph:destroy()
  if self._h then
    local h = self._h
    self._h = nil
    C.dama_cuda_graph_destroy(ffi.gc(h, nil))
  end
end

return M
