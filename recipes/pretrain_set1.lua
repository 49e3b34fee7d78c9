-- recipes/pretrain_set1.lua: DAMA pretraining on Set I (paper Table 6: ViT-B/16, 128×128×7 cells,
-- batch 512, 500 epochs, 40 warm-up, blr 1.5e-4, AdamW (0.9, 0.95), wd 0.05, mask 0.8, overlap 0.5,
-- K 6, β 2, α 1, two students).
--   dama recipes/pretrain_set1.lua data=/path/to/set3 [key=value ...]
--   dama recipes/pretrain_set1.lua preset=demo          -- small, CPU, built-in synthetic data
-- The step (Algorithm 1, Eq. 2) is in recipes/dama.lua.
local recipe = dofile((arg and arg[0] and arg[0]:match('^(.*/)') or 'recipes/') .. 'dama.lua')

local cfg = recipe.config({
  out = 'runs/pretrain_set1',
  -- Table 6 is the default of recipes/dama.lua; Set I differs from Set I/II only by its data
}, arg)
recipe.run(cfg)
