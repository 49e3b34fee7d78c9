-- dama.mask: which patches each encoder sees. MAE random masking, DAMA's adaptive mask (Algorithm 1), masks
-- built by any Lua function, and the token gather / unshuffle that every kind of mask feeds.
--
--   local dama = require 'dama'
--   local m1 = dama.mask.random(N, 64, 0.8)                    -- MAE: K = int(64 * 0.2) = 12 visible
--   local m2 = dama.mask.adaptive(m1, loss_per_patch1, 0.8, 0.5) -- Algorithm 1, per-sample rule
--   local m3 = dama.mask.adaptive(m1, lpp, 0.8, 0.5, {mode = 'union'}) -- the reference's rule (equal with stable sorts)
--   local tokens = dama.mask.gather(x, m1)                      -- x [N, L, D] -> [N, K, D]
--   local full = dama.mask.unshuffle(tokens, mask_token, m1)    -- [N, K, D] -> [N, L, D] for the decoder
--
-- A mask object is a table with:
--   mask        [N, L] f32, 1 = removed (hidden from the encoder), 0 = visible, original patch order
--   ids_shuffle [N, L] i64, the patch order: the K visible first, in the order the encoder sees them
--   ids_restore [N, L] i64, its inverse (ids_restore[n][ids_shuffle[n][i]] = i)
--   ids_keep    [N, K] i64, = ids_shuffle[:, :K]: encoder token i of sample n is patch ids_keep[n][i]
--   N, L, K     numbers; kind = 'random' | 'adaptive' | 'custom'; ratio, overlap, mode where they apply
-- and methods m:gather(x), m:unshuffle(tokens, mask_token), m:visible_per_row(), m:ascii([n[, grid_w]]).
-- Indices are 0-based, as everywhere in dama. All sorts are stable ascending (ties: lower patch index
-- first), which is what the committed PyTorch fixtures use.
--
-- Counts follow the reference (Python int() of a double): K = int(L(1 - r)) (64 * (1 - 0.8) is
-- 12.799999999999997, so K = 12), R = L - 2K, O = int(K * overlap). Algorithm 1 needs R >= 0, i.e. a mask
-- ratio of about 0.5 or more; below that adaptive() raises an error that says so.
--
-- A new masking strategy needs no C: build a [N, L] 0/1 tensor (or a Lua table of rows) with the same number
-- of zeros in every row and hand it to dama.mask.from_mask. dama.mask.by_score below is such a strategy,
-- written with an FFI loop over t:data():
--
--   -- hide the patches with the most nuclear (DAPI, channel 0) signal; show the K dimmest.
--   -- imgs [N, C, H, W], patch p: the mean of channel 0 over each p x p patch, row-major over the grid
--   local score = imgs:select(1, 0):reshape(N, H/p, p, W/p, p):permute(0, 1, 3, 2, 4)
--                     :reshape(N, L, p*p):mean(2)       -- [N, L]
--   local m = dama.mask.by_score(score, 0.8)            -- a mask object like random()'s
--   print(m:ascii(0))                                   -- '#' hidden, '.' shown
--   local pred, latent = mae:forward(imgs, m)           -- the same path as random masks
local dffi = require 'dama.ffi'
local tensor = require 'dama.tensor'
local ffi, C = dffi.ffi, dffi.C

-- Call a C function; on failure raise its message at the caller of the dama.mask function that called
-- ccall (after one retry following a full collection when memory ran out, as dama.ffi's call does).
local function ccall(f, ...)
  local s = f(...)
  if s == dffi.DAMA_ERR_OOM then
    collectgarbage('collect'); collectgarbage('collect')
    s = f(...)
  end
  if s ~= 0 then dffi.raise(s, 4) end
end
local is_tensor = tensor.is_tensor

local M = {}
local Mask = {}
Mask.__index = Mask
M.Mask = Mask

local i64box = ffi.new('int64_t[1]')
local i64box2 = ffi.new('int64_t[1]')
local i64box3 = ffi.new('int64_t[1]')

local MODES = {per_sample = 0, union = 1}

-- ---------------------------------------------------------------- helpers

local function whole(op, name, v, lo)
  if type(v) ~= 'number' or v ~= math.floor(v) or v < (lo or 0) then
    error(string.format('%s: %s must be a whole number >= %d, got %s', op, name, lo or 0, tostring(v)), 3)
  end
end

local function ratio_arg(op, name, r)
  if type(r) ~= 'number' or not (r >= 0 and r <= 1) then
    error(string.format('%s: %s must be a number in [0, 1], got %s', op, name, tostring(r)), 3)
  end
end

-- A contiguous CPU tensor of dtype dt (the same tensor when it already is one).
local function as(t, dt)
  if t.dtype ~= dt then t = t:to(dt) end
  if not t:is_contiguous() then t = t:contiguous() end
  return t
end

-- [N, L] check, naming the argument.
local function check_2d(op, name, t, N, L)
  if not is_tensor(t) then
    error(string.format('%s: %s must be a [N, L] tensor, got %s', op, name, type(t)), 3)
  end
  local s = t:size()
  if #s ~= 2 or (N and s[1] ~= N) or (L and s[2] ~= L) then
    error(string.format('%s: %s must have shape [%s, %s], got [%s]', op, name, N or 'N', L or 'L',
      table.concat(s, ', ')), 3)
  end
  return s[1], s[2]
end

local function new_mask(fields)
  return setmetatable(fields, Mask)
end

-- ---------------------------------------------------------------- counts

-- visible_count(L, ratio) -> K = int(L * (1 - ratio)) exactly as the reference.
function M.visible_count(L, ratio)
  whole('visible_count', 'L', L, 1)
  ccall(C.dama_mask_visible_count, L, ratio, i64box)
  return tonumber(i64box[0])
end

-- adaptive_counts(L, ratio, overlap) -> K, R, O of Algorithm 1 (an error when R < 0).
function M.adaptive_counts(L, ratio, overlap)
  whole('adaptive_counts', 'L', L, 1)
  ccall(C.dama_mask_adaptive_counts, L, ratio, overlap, i64box, i64box2, i64box3)
  return tonumber(i64box[0]), tonumber(i64box2[0]), tonumber(i64box3[0])
end

-- ---------------------------------------------------------------- random masking (MAE)

-- random(N, L, ratio[, noise]) -> mask object. noise: an [N, L] tensor (the reference draws U[0, 1)); when
-- nil, drawn with dama.rand(N, L) from the Philox generator (seed it with dama.manual_seed).
-- ids_shuffle = stable argsort(noise); the K lowest-noise patches are visible, in increasing-noise order.
function M.random(N, L, ratio, noise)
  whole('random', 'N', N, 1)
  whole('random', 'L', L, 1)
  ratio_arg('random', 'mask ratio', ratio)
  local K = M.visible_count(L, ratio)
  if noise == nil then noise = tensor.rand(N, L) else check_2d('random', 'noise', noise, N, L) end
  noise = as(noise, 'f32')
  -- the mask lives on the noise's device (the default device when drawn here)
  local mask = noise:new_empty({N, L}, 'f32')
  local ids_shuffle, ids_restore = noise:new_empty({N, L}, 'i64'), noise:new_empty({N, L}, 'i64')
  local ids_keep = noise:new_empty({N, K}, 'i64')
  ccall(C.dama_nn_mask_random, mask._c, ids_shuffle._c, ids_restore._c, K > 0 and ids_keep._c or nil,
       noise._c, N, L, K)
  return new_mask{mask = mask, ids_shuffle = ids_shuffle, ids_restore = ids_restore, ids_keep = ids_keep,
                  N = N, L = L, K = K, kind = 'random', ratio = ratio, noise = noise}
end

-- ---------------------------------------------------------------- adaptive masking (DAMA, Algorithm 1)

-- adaptive(m1, loss_per_patch, ratio, overlap[, opts]) -> mask object for branch 2.
--   m1: branch 1's mask object or its [N, L] 0/1 tensor; loss_per_patch: branch 1's [N, L] per-patch loss
--   (only its values are read: no gradient flows through a mask). ratio: the mask ratio (K, R as above),
--   overlap: the overlap ratio rho in [0, 1] (O = int(K * rho)). opts.mode (or a string as 5th argument):
--   'per_sample' (default): branch 2 sees exactly K patches: the K - O branch-1-masked patches with the
--     lowest loss plus the O lowest-index branch-1-visible patches (the reference's stable argsort(m1)[:O]).
--     overlap 0: none of branch 1's patches; overlap 1: exactly branch 1's visible patches.
--   'union': the reference code bit for bit, including its `m2[:, V] = 0`, which zeroes in EVERY sample
--     every patch that is an overlap patch of ANY sample of the batch. Rows then hold more than K zeros;
--     ids_keep holds the first K zeros by index, m2 keeps all of them (the reference's recon2 then counts
--     fewer patches). With R + O = 0 (ratio 0.5, overlap 0) the reference's slice [-0:] hides every patch.
-- With N = 1 (or a batch whose samples share their overlap patches) the two modes agree.
-- m.mask is m2 as the reference returns it; ids_shuffle = stable argsort(m2) (zeros, then ones, each by index).
function M.adaptive(m1, loss_per_patch, ratio, overlap, opts)
  local op = 'adaptive'
  if type(opts) == 'string' then opts = {mode = opts} end
  opts = opts or {}
  local mode = opts.mode or 'per_sample'
  if MODES[mode] == nil then
    error(string.format("adaptive: mode must be 'per_sample' or 'union', got %s", tostring(mode)), 2)
  end
  local m1t = (type(m1) == 'table' and not is_tensor(m1)) and m1.mask or m1
  local N, L = check_2d(op, 'm1', m1t)
  check_2d(op, 'loss_per_patch', loss_per_patch, N, L)
  ratio_arg(op, 'mask ratio', ratio)
  ratio_arg(op, 'overlap ratio', overlap)
  ccall(C.dama_mask_adaptive_counts, L, ratio, overlap, i64box, nil, nil)
  local K = tonumber(i64box[0])
  m1t = as(m1t, 'f32')
  local loss = as(loss_per_patch, 'f32')
  local m2 = m1t:new_empty({N, L}, 'f32')
  local ids_shuffle, ids_restore = m1t:new_empty({N, L}, 'i64'), m1t:new_empty({N, L}, 'i64')
  local ids_keep = m1t:new_empty({N, K}, 'i64')
  ccall(C.dama_nn_mask_adaptive, m2._c, ids_shuffle._c, ids_restore._c, K > 0 and ids_keep._c or nil,
       m1t._c, loss._c, N, L, ratio, overlap, MODES[mode])
  return new_mask{mask = m2, ids_shuffle = ids_shuffle, ids_restore = ids_restore, ids_keep = ids_keep,
                  N = N, L = L, K = K, kind = 'adaptive', ratio = ratio, overlap = overlap, mode = mode}
end

-- ---------------------------------------------------------------- masks from anywhere

-- from_mask(m) -> mask object. m: an [N, L] tensor (any dtype) or a Lua table of N rows of L values, 1 (or
-- true) = removed, 0 (or false) = visible, with the same number K of zeros in every row (else an error
-- naming the row). ids_shuffle lists the visible patches by increasing index, then the removed ones by
-- increasing index; so the encoder sees the kept patches in patch order.
function M.from_mask(m)
  local op = 'from_mask'
  if type(m) == 'table' and not is_tensor(m) then
    if m.mask and is_tensor(m.mask) then m = m.mask
    else
      if #m == 0 or type(m[1]) ~= 'table' then
        error('from_mask: expected an [N, L] tensor or a table of rows, got a table that is not a list of rows', 2)
      end
      m = tensor.tensor(m, 'f32')
    end
  end
  local N, L = check_2d(op, 'mask', m)
  local mask = as(m, 'f32')
  if mask == m then mask = m:clone() end   -- the object owns its mask
  -- K is a count the caller needs on the host: the check reads a host copy of the mask (one device read for a
  -- device mask; a Lua masking strategy builds its mask on the host anyway), the ids are made on the mask's device
  local hm = mask:cpu()
  ccall(C.dama_mask_check, hm:data(), N, L, i64box)
  local K = tonumber(i64box[0])
  local ids_shuffle, ids_restore = mask:new_empty({N, L}, 'i64'), mask:new_empty({N, L}, 'i64')
  local ids_keep = mask:new_empty({N, K}, 'i64')
  ccall(C.dama_nn_mask_ids, ids_shuffle._c, ids_restore._c, K > 0 and ids_keep._c or nil, mask._c, N, L, K)
  return new_mask{mask = mask, ids_shuffle = ids_shuffle, ids_restore = ids_restore, ids_keep = ids_keep,
                  N = N, L = L, K = K, kind = 'custom'}
end

-- by_score(score, ratio) -> mask object: an example strategy in pure Lua. In each row the K = int(L(1-r))
-- patches with the LOWEST score stay visible (ties: lower index) and the rest (the highest scores) are
-- removed; e.g. score = mean nuclear-channel intensity per patch hides the patches with the most nuclei.
function M.by_score(score, ratio)
  local N, L = check_2d('by_score', 'score', score)
  ratio_arg('by_score', 'mask ratio', ratio)
  local K = M.visible_count(L, ratio)
  local sd = as(score, 'f64'):cpu()          -- a host copy: a plain FFI loop from here on
  local s = sd:data()                        -- double*
  local mask = tensor.ones(N, L, {device = 'cpu'})
  local p = mask:data()                      -- float*
  local order = {}
  for n = 0, N - 1 do
    local row = n * L
    for l = 1, L do order[l] = l - 1 end
    table.sort(order, function(a, b)
      local x, y = s[row + a], s[row + b]
      if x ~= y then return x < y end
      return a < b
    end)
    for i = 1, K do p[row + order[i]] = 0 end
  end
  sd:numel()                                 -- keeps sd (the owner of s) alive through the loop
  local m = M.from_mask(mask:to(score:device_of()))   -- back on the score's device
  m.kind, m.ratio = 'by_score', ratio
  return m
end

-- ---------------------------------------------------------------- token kernels (no autograd here)

local function ids_of(op, m, field)
  local ids = m
  if type(m) == 'table' and not is_tensor(m) then ids = m[field] end
  if not is_tensor(ids) then
    error(string.format('%s: expected a mask object (with %s) or an i64 %s tensor, got %s', op, field, field,
      type(m)), 3)
  end
  return as(ids, 'i64')
end

local function f32_tokens(op, name, t)
  if not is_tensor(t) then error(string.format('%s: %s must be a tensor, got %s', op, name, type(t)), 3) end
  if t.dtype ~= 'f32' then
    error(string.format('%s: %s must be f32, got %s', op, name, t.dtype), 3)
  end
  if t:dim() < 2 then
    error(string.format('%s: %s must be [N, L, ...] (at least 2 dims), got [%s]', op, name,
      table.concat(t:size(), ', ')), 3)
  end
  return as(t, 'f32')
end

-- Trailing dims of t after the first two, and their product D.
local function tail_of(t)
  local s, tail, D = t:size(), {}, 1
  for i = 3, #s do tail[#tail + 1] = s[i]; D = D * s[i] end
  return tail, D
end

local function shape3(a, b, tail)
  local s = {a, b}
  for i = 1, #tail do s[#s + 1] = tail[i] end
  return s
end

-- gather_forward(x, ids_keep) -> out: x [N, L, ...] f32, ids_keep [N, K] i64 -> out [N, K, ...],
-- out[n][k] = x[n][ids_keep[n][k]].
function M.gather_forward(x, ids_keep)
  x = f32_tokens('gather', 'x', x)
  ids_keep = ids_of('gather', ids_keep, 'ids_keep')
  local s = x:size()
  local N, L = s[1], s[2]
  check_2d('gather', 'ids_keep', ids_keep, N)
  local K = ids_keep:size(1)
  local tail, D = tail_of(x)
  local out = x:new_empty(shape3(N, K, tail), 'f32')
  if K > 0 and D > 0 then
    ccall(C.dama_nn_mask_gather_forward, out._c, x._c, ids_keep._c, N, L, K, D)
  end
  return out
end

-- gather_backward(dout, ids_keep, L) -> dx [N, L, ...]: dout scattered to the kept rows, zeros elsewhere.
function M.gather_backward(dout, ids_keep, L)
  dout = f32_tokens('gather_backward', 'dout', dout)
  ids_keep = ids_of('gather_backward', ids_keep, 'ids_keep')
  whole('gather_backward', 'L', L, 1)
  local s = dout:size()
  local N, K = s[1], s[2]
  check_2d('gather_backward', 'ids_keep', ids_keep, N, K)
  local tail, D = tail_of(dout)
  local dx = dout:new_zeros(shape3(N, L, tail), 'f32')
  if K > 0 and D > 0 then
    ccall(C.dama_nn_mask_gather_backward, dx._c, dout._c, ids_keep._c, N, L, K, D)
  end
  return dx
end

-- unshuffle_forward(tokens, mask_token, ids_restore) -> out: tokens [N, K, ...] f32 (visible tokens in
-- ids_shuffle order, no cls), mask_token with D elements (any shape, e.g. [1, 1, D]), ids_restore [N, L]
-- -> out [N, L, ...], out[n][l] = tokens[n][ids_restore[n][l]] if that is < K, else mask_token.
function M.unshuffle_forward(tokens, mask_token, ids_restore)
  tokens = f32_tokens('unshuffle', 'tokens', tokens)
  ids_restore = ids_of('unshuffle', ids_restore, 'ids_restore')
  local s = tokens:size()
  local N, K = s[1], s[2]
  local _, L = check_2d('unshuffle', 'ids_restore', ids_restore, N)
  local tail, D = tail_of(tokens)
  if not is_tensor(mask_token) or mask_token:numel() ~= D or mask_token.dtype ~= 'f32' then
    error(string.format('unshuffle: mask_token must be an f32 tensor of %d elements (the token width), got %s', D,
      is_tensor(mask_token) and (mask_token.dtype .. ' [' .. table.concat(mask_token:size(), ', ') .. ']')
      or type(mask_token)), 2)
  end
  mask_token = as(mask_token, 'f32')
  local out = tokens:new_empty(shape3(N, L, tail), 'f32')
  if D > 0 then
    ccall(C.dama_nn_mask_unshuffle_forward, out._c, K > 0 and tokens._c or nil, mask_token._c, ids_restore._c,
         N, L, K, D)
  end
  return out
end

-- unshuffle_backward(dout, ids_restore, K) -> dtokens [N, K, ...], dmask_token [D] (the sum of dout over
-- every masked position; reshape it to the mask token's shape).
function M.unshuffle_backward(dout, ids_restore, K)
  dout = f32_tokens('unshuffle_backward', 'dout', dout)
  ids_restore = ids_of('unshuffle_backward', ids_restore, 'ids_restore')
  whole('unshuffle_backward', 'K', K, 0)
  local s = dout:size()
  local N, L = s[1], s[2]
  check_2d('unshuffle_backward', 'ids_restore', ids_restore, N, L)
  local tail, D = tail_of(dout)
  local dtokens = dout:new_zeros(shape3(N, K, tail), 'f32')
  local dmask = dout:new_zeros({D}, 'f32')
  if D > 0 then
    ccall(C.dama_nn_mask_unshuffle_backward, K > 0 and dtokens._c or nil, dmask._c, dout._c, ids_restore._c,
         N, L, K, D)
  end
  return dtokens, dmask
end

-- gather(x, m): x [N, L, ...] -> the visible tokens [N, K, ...] of mask object m (or an ids_keep tensor).
function M.gather(x, m) return M.gather_forward(x, m) end
-- unshuffle(tokens, mask_token, m): [N, K, ...] -> [N, L, ...] with mask tokens at the removed patches.
function M.unshuffle(tokens, mask_token, m) return M.unshuffle_forward(tokens, mask_token, m) end

-- ---------------------------------------------------------------- mask object methods

function Mask:gather(x) return M.gather_forward(x, self.ids_keep) end
function Mask:unshuffle(tokens, mask_token) return M.unshuffle_forward(tokens, mask_token, self.ids_restore) end

-- Zeros (visible patches) of each row of m.mask, as a Lua list: K everywhere except for 'union' masks.
function Mask:visible_per_row()
  local m = as(self.mask, 'f32'):cpu()   -- a host copy; keep the owner of p in a local while p is used
  local p, r = m:data(), {}
  for n = 0, self.N - 1 do
    local z = 0
    for l = 0, self.L - 1 do if p[n * self.L + l] == 0 then z = z + 1 end end
    r[n + 1] = z
  end
  return r
end

-- A picture of sample n (0-based, default 0) on a grid of width grid_w (default sqrt(L)):
-- '#' removed, '.' visible, '+' visible but not kept (a union-mode zero beyond the first K).
function Mask:ascii(n, grid_w)
  n = n or 0
  grid_w = grid_w or math.floor(math.sqrt(self.L) + 0.5)
  local m = as(self.mask, 'f32'):cpu()
  local p = m:data()   -- the host copy
  local kept = {}
  local ik = self.ids_keep:cpu()
  for k = 0, self.K - 1 do kept[ik:get(n, k)] = true end
  local lines, line = {}, {}
  for l = 0, self.L - 1 do
    local v = p[n * self.L + l]
    line[#line + 1] = v ~= 0 and '#' or (kept[l] and '.' or '+')
    if #line == grid_w or l == self.L - 1 then lines[#lines + 1] = table.concat(line); line = {} end
  end
  return table.concat(lines, '\n')
end

function Mask.__tostring(m)
  local extra = ''
  if m.kind == 'adaptive' then extra = string.format(', overlap=%g, mode=%s', m.overlap, m.mode) end
  return string.format('dama.mask(%s, N=%d, L=%d, K=%d%s%s)', m.kind or 'custom', m.N, m.L, m.K,
    m.ratio and string.format(', ratio=%g', m.ratio) or '', extra)
end

-- is_mask(x) -> true if x is a mask object (from random, adaptive, from_mask, by_score).
function M.is_mask(x) return getmetatable(x) == Mask end

return M
