-- recipes/mae.lua: the MAE baseline (one branch, random mask, norm-pix loss) with DAMA's Table 6 settings.
--   dama recipes/mae.lua [data=...] [key=value ...]
local recipe = dofile((arg and arg[0] and arg[0]:match('^(.*/)') or 'recipes/') .. 'dama.lua')

local cfg = recipe.config({
  out = 'runs/mae',
  feature_loss = false,   -- recon1 only: R.step returns after branch 1
  setting = 'shared',     -- a single MAE
}, arg)
recipe.run(cfg)
