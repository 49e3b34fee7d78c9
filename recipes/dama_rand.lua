-- recipes/dama_rand.lua: DAMA with a random branch-2 mask instead of Algorithm 1 (paper Table 5, "random").
--   dama recipes/dama_rand.lua [data=...] [key=value ...]
local recipe = dofile((arg and arg[0] and arg[0]:match('^(.*/)') or 'recipes/') .. 'dama.lua')

local cfg = recipe.config({
  out = 'runs/dama_rand',
  mask2 = 'random',
}, arg)
recipe.run(cfg)
