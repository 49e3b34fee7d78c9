-- dama.nn: torch-flavoured modules, the ViT encoder and the MAE.
--
--   local nn = require 'dama.nn'            -- or dama.nn
--   local head = nn.Sequential(nn.Linear(768, 1536), nn.LayerNorm(1536), nn.ReLU(),
--                              nn.Linear(1536, 768), nn.LayerNorm(768), nn.ReLU(), nn.Softmax())
--   local mae = nn.MAE(nn.mae_config('vit_base', {img = 128, chans = 7}))
--   print(mae)                               -- the module tree, PyTorch style
--   for _, e in ipairs(mae:named_parameters()) do print(e[1], e[2]:shape_string()) end
--   mae:zero_grad(); loss:backward()        -- grads land in mae.grad_arena
--
-- Contents: Module (module.lua: registration, named_parameters, state_dict / load_state_dict,
-- train/eval, zero_grad, the flat parameter arena); layers (layers.lua); ViT, vit_config,
-- sincos_pos_embed (vit.lua); MAE, mae_config (mae.lua); nn.init (initializers.lua);
-- nn.functional (functional.lua, the differentiable ops), loaded on first use.
pcall(require, 'dama.autograd')   -- the tensor methods record graph nodes once autograd is loaded

local Module = require 'dama.nn.module'
local layers = require 'dama.nn.layers'
local vit = require 'dama.nn.vit'
local mae = require 'dama.nn.mae'

local nn = {}
nn.Module = Module
nn.init = require 'dama.nn.initializers'
for k, v in pairs(layers) do nn[k] = v end
nn.ViT = vit.ViT
nn.VisionTransformer = vit.ViT
nn.vit_config = vit.vit_config
nn.sincos_pos_embed = vit.sincos_pos_embed
nn.MAE = mae.MAE
nn.mae_config = mae.mae_config
nn.is_module = Module.is_module

setmetatable(nn, {__index = function(t, k)
  if k == 'functional' or k == 'F' then
    local f = require 'dama.nn.functional'
    rawset(t, 'functional', f); rawset(t, 'F', f)
    return f
  end
end})

return nn
