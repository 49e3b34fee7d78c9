-- Export one encoder of a dama checkpoint as a plain timm VisionTransformer:
--   dama recipes/export_timm.lua ckpt=runs/pretrain_set3_demo/checkpoint.safetensors out=encoder [branch=momentum_encoder]
-- writes encoder.safetensors (timm names, encoder tensors only) and encoder.json (its keyword arguments):
--   import json, timm.models.vision_transformer as vt, safetensors.torch as st
--   m = vt.VisionTransformer(**json.load(open('encoder.json')))
--   m.load_state_dict(st.load_file('encoder.safetensors'), strict=True)
local dama = require 'dama'
local cfg = dama.config{ckpt = '', out = 'encoder', branch = 'base_encoder'}:override(arg)
if cfg.ckpt == '' then error('export_timm: give ckpt=<checkpoint.safetensors>', 0) end
local w, c, k = dama.eval.export_timm(cfg.ckpt, cfg.out, cfg.branch)
print(string.format('wrote %s and %s (embed_dim %d, depth %d, heads %d, img %d, patch %d, in_chans %d)', w, c,
  k.embed_dim, k.depth, k.num_heads, k.img_size, k.patch_size, k.in_chans))
