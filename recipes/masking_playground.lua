-- recipes/masking_playground.lua: a new masking strategy in a few lines of Lua, trained with DAMA.
--   dama recipes/masking_playground.lua preset=demo
--
-- Strategy "nuclear": branch 2 sees the K patches with the LEAST nuclear signal (DAPI, channel 0) and must
-- reconstruct the nucleus-rich ones — a content-driven alternative to Algorithm 1's loss-driven choice.
-- It is plain Lua: a LuaJIT FFI loop over the image's raw floats scores each patch, another writes a 0/1
-- mask, and dama.mask.from_mask turns it into the same mask object random() and adaptive() return.
-- FFI loops read host memory, so on a GPU (or the sim test device) the strategy works on an explicit host copy
-- (x:cpu()) and sends its mask back to the batch's device (mask:to(x.device)); on the cpu both are no-ops.
local dama = require 'dama'
local recipe = dofile((arg and arg[0] and arg[0]:match('^(.*/)') or 'recipes/') .. 'dama.lua')

local function nuclear_mask(x, m1, _, cfg)
  local N, C, H, W = x:size(0), x:size(1), x:size(2), x:size(3)
  local p = cfg.patch
  local gw = W / p
  local L = (H / p) * gw
  local K = dama.mask.visible_count(L, cfg.mask)
  local xc = x:contiguous():cpu()                  -- host copy; keep the owner of px alive while px is used
  local px = xc:data()                             -- float* over [N, C, H, W]
  local mask = dama.ones(N, L, {device = 'cpu'})
  local pm = mask:data()
  for n = 0, N - 1 do
    local score = {}
    for l = 0, L - 1 do
      local r0, c0, s = math.floor(l / gw) * p, (l % gw) * p, 0
      for i = 0, p - 1 do
        local row = ((n * C + 0) * H + r0 + i) * W + c0   -- channel 0 = DAPI
        for j = 0, p - 1 do s = s + px[row + j] end
      end
      score[l + 1] = {s, l}
    end
    table.sort(score, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
    for k = 1, K do pm[n * L + score[k][2]] = 0 end  -- show the K dimmest patches
  end
  return dama.mask.from_mask(mask:to(x.device))   -- the mask lives with the batch
end

local cfg = recipe.config({out = 'runs/masking_playground'}, arg)
cfg.mask2 = nuclear_mask
recipe.run(cfg)
