-- dama.nn layers: Linear, LayerNorm, activations, Dropout/DropPath, Sequential/ModuleList, Conv2d
-- (patchify form), PatchEmbed, and the ViT parts (Attention, Mlp, Block) with timm's names.
-- Forwards call dama.nn.functional, whose ops are differentiable (fused C kernels + autograd).
local tensor = require 'dama.tensor'
local Module = require 'dama.nn.module'
local init = require 'dama.nn.initializers'

-- dama.nn.functional is loaded on first use.
local F = setmetatable({}, {__index = function(self, k)
  local f = require 'dama.nn.functional'
  setmetatable(self, {__index = f})
  return f[k]
end})

local L = {}

-- Model constructors that re-initialise every Linear/Conv2d right away (ViT/MAE with init 'mae') build
-- their layers inside L.deferred_init(fn), which skips the PyTorch default draws (half the RNG work
-- for a ViT-B); the weights are uninitialised until the model's init_weights runs.
local defer_init = false
function L.deferred_init(fn, ...)
  local old = defer_init
  defer_init = true
  local res = {pcall(fn, ...)}
  defer_init = old
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2)
end

local function bool_str(b) return b and 'True' or 'False' end

-- ---------------------------------------------------------------- containers

-- Sequential(m1, m2, ...) or Sequential{m1, m2, ...}: children named '0', '1', ... (PyTorch's
-- state_dict names); seq[i] is the i-th module, 1-based as Lua arrays are, so ipairs(seq) works.
local Sequential = Module:extend('Sequential')
function Sequential:__init(...)
  local mods = {...}
  if #mods == 1 and type(mods[1]) == 'table' and not Module.is_module(mods[1]) then mods = mods[1] end
  for _, m in ipairs(mods) do self:append(m) end
end
function Sequential:append(m)
  local i = #self + 1
  self:add_module(tostring(i - 1), m)
  rawset(self, i, m)
  return self
end
Sequential.add = Sequential.append   -- torch7's name
Sequential.__len = function(self) local n = 0 while rawget(self, n + 1) do n = n + 1 end return n end
function Sequential:forward(x, ...)
  for i = 1, #self do x = self[i](x, ...) end
  return x
end
L.Sequential = Sequential

-- ModuleList: like Sequential but without a forward (ViT's blocks: each returns two values).
local ModuleList = Sequential:extend('ModuleList')
function ModuleList:forward() error('ModuleList has no forward; iterate over it with ipairs', 2) end
L.ModuleList = ModuleList

-- ---------------------------------------------------------------- Linear

-- Linear(in, out[, bias = true]): y = x W^T + b, weight [out, in]. PyTorch's default init.
local Linear = Module:extend('Linear')
function Linear:__init(in_features, out_features, bias)
  if bias == nil then bias = true end
  rawset(self, 'in_features', in_features); rawset(self, 'out_features', out_features)
  self:register_parameter('weight', tensor.empty(out_features, in_features))
  if bias then self:register_parameter('bias', tensor.empty(out_features)) end
  if not defer_init then self:reset_parameters() end
end
function Linear:reset_parameters() init.default_linear_(self.weight, self.bias) return self end
function Linear:forward(x) return F.linear(x, self.weight, self.bias) end
function Linear:extra_repr()
  return string.format('in_features=%d, out_features=%d, bias=%s', self.in_features, self.out_features,
    bool_str(self.bias ~= nil))
end
L.Linear = Linear

-- ---------------------------------------------------------------- LayerNorm

-- LayerNorm(dim[, eps = 1e-5][, affine = true]) over the last dim.
local LayerNorm = Module:extend('LayerNorm')
function LayerNorm:__init(dim, eps, affine)
  if affine == nil then affine = true end
  rawset(self, 'normalized_shape', dim); rawset(self, 'eps', eps or 1e-5)
  rawset(self, 'elementwise_affine', affine)
  if affine then
    self:register_parameter('weight', tensor.ones(dim))
    self:register_parameter('bias', tensor.zeros(dim))
  end
end
function LayerNorm:reset_parameters()
  if self.weight then self.weight:fill_(1); self.bias:fill_(0) end
  return self
end
function LayerNorm:forward(x) return F.layer_norm(x, self.weight, self.bias, self.eps) end
function LayerNorm:extra_repr()
  return string.format('(%d,), eps=%g, elementwise_affine=%s', self.normalized_shape, self.eps,
    bool_str(self.elementwise_affine))
end
L.LayerNorm = LayerNorm

-- ---------------------------------------------------------------- parameter-free layers

local Identity = Module:extend('Identity')
function Identity:forward(x) return x end
L.Identity = Identity

local ReLU = Module:extend('ReLU')
function ReLU:forward(x) return F.relu(x) end
L.ReLU = ReLU

-- GELU, exact erf form (PyTorch's default, timm's ViT)
local GELU = Module:extend('GELU')
function GELU:forward(x) return F.gelu(x) end
L.GELU = GELU

-- Softmax over the last dim (the only dim supported).
local Softmax = Module:extend('Softmax')
function Softmax:__init(dim)
  if dim ~= nil and dim ~= -1 then error('Softmax: only the last dim (-1) is supported, got ' .. tostring(dim), 3) end
  rawset(self, 'dim', -1)
end
function Softmax:forward(x) return F.softmax(x) end
function Softmax:extra_repr() return 'dim=-1' end
L.Softmax = Softmax

local Dropout = Module:extend('Dropout')
function Dropout:__init(p) rawset(self, 'p', p or 0.5) end
function Dropout:forward(x)
  if self.p == 0 or not self.training then return x end
  return F.dropout(x, self.p, self.training)
end
function Dropout:extra_repr() return string.format('p=%g', self.p) end
L.Dropout = Dropout

-- DropPath (stochastic depth): drops whole samples of a residual branch in training.
local DropPath = Module:extend('DropPath')
function DropPath:__init(p) rawset(self, 'drop_prob', p or 0) end
function DropPath:forward(x)
  if self.drop_prob == 0 or not self.training then return x end
  return F.drop_path(x, self.drop_prob, self.training)
end
function DropPath:extra_repr() return string.format('drop_prob=%.3f', self.drop_prob) end
L.DropPath = DropPath

-- ---------------------------------------------------------------- Conv2d (patchify) and PatchEmbed

-- Conv2d(in, out, kernel, stride): only the non-overlapping patchify form (kernel == stride,
-- no padding) that ViTs use. weight [out, in, k, k]; PyTorch's default init. forward gives
-- [N, out, H/k, W/k] like torch; PatchEmbed uses the token layout [N, L, D] directly.
local Conv2d = Module:extend('Conv2d')
function Conv2d:__init(in_ch, out_ch, kernel, stride, bias)
  stride = stride or kernel
  if stride ~= kernel then
    error(string.format('Conv2d: only kernel == stride (patchify) is supported, got kernel %d, stride %d',
      kernel, stride), 3)
  end
  if bias == nil then bias = true end
  rawset(self, 'in_channels', in_ch); rawset(self, 'out_channels', out_ch); rawset(self, 'kernel_size', kernel)
  self:register_parameter('weight', tensor.empty(out_ch, in_ch, kernel, kernel))
  if bias then self:register_parameter('bias', tensor.empty(out_ch)) end
  if not defer_init then self:reset_parameters() end
end
function Conv2d:reset_parameters() init.default_linear_(self.weight, self.bias) return self end
function Conv2d:forward(x)
  local s = x:size()
  local k = self.kernel_size
  local tokens = F.patch_embed(x, self.weight, self.bias, k)          -- [N, L, D]
  return tokens:transpose(1, 2):reshape(s[1], self.out_channels, s[3] / k, s[4] / k)
end
function Conv2d:extra_repr()
  return string.format('%d, %d, kernel_size=(%d, %d), stride=(%d, %d)', self.in_channels, self.out_channels,
    self.kernel_size, self.kernel_size, self.kernel_size, self.kernel_size)
end
L.Conv2d = Conv2d

-- PatchEmbed(img, patch, chans, dim): imgs [N, C, H, W] -> tokens [N, L, D], L row-major over the grid.
local PatchEmbed = Module:extend('PatchEmbed')
function PatchEmbed:__init(img, patch, chans, dim)
  if img % patch ~= 0 then
    error(string.format('PatchEmbed: img %d is not a multiple of patch %d', img, patch), 3)
  end
  rawset(self, 'img_size', img); rawset(self, 'patch_size', patch); rawset(self, 'in_chans', chans)
  rawset(self, 'grid_size', img / patch); rawset(self, 'num_patches', (img / patch) ^ 2)
  self.proj = Conv2d(chans, dim, patch, patch)
end
function PatchEmbed:forward(x)
  local s = x:size()
  if #s ~= 4 or s[2] ~= self.in_chans or s[3] % self.patch_size ~= 0 or s[4] % self.patch_size ~= 0 then
    error(string.format('PatchEmbed: expected images [N, %d, H, W] with H, W multiples of %d, got [%s]',
      self.in_chans, self.patch_size, table.concat(s, ', ')), 2)
  end
  return F.patch_embed(x, self.proj.weight, self.proj.bias, self.patch_size)
end
L.PatchEmbed = PatchEmbed

-- ---------------------------------------------------------------- ViT parts (timm names)

-- Attention(dim, heads[, qkv_bias = true]): fused qkv Linear(dim, 3 dim), softmax(q k^T / sqrt(hd)) v,
-- proj Linear(dim, dim).
local Attention = Module:extend('Attention')
function Attention:__init(dim, heads, qkv_bias, attn_drop, proj_drop)
  if dim % heads ~= 0 then error(string.format('Attention: dim %d is not a multiple of heads %d', dim, heads), 3) end
  if qkv_bias == nil then qkv_bias = true end
  rawset(self, 'num_heads', heads); rawset(self, 'head_dim', dim / heads)
  rawset(self, 'scale', (dim / heads) ^ -0.5)
  self.qkv = Linear(dim, 3 * dim, qkv_bias)
  if (attn_drop or 0) > 0 then
    error('Attention: attention dropout is not supported (the reference uses 0)', 3)
  end
  self.proj = Linear(dim, dim, true)
  self.proj_drop = Dropout(proj_drop or 0)
end
function Attention:forward(x)
  local y = F.attention(self.qkv(x), self.num_heads, self.scale)
  return self.proj_drop(self.proj(y))
end
L.Attention = Attention

-- Mlp(in, hidden[, out]): fc1, GELU, fc2.
local Mlp = Module:extend('Mlp')
function Mlp:__init(in_features, hidden, out_features, drop)
  self.fc1 = Linear(in_features, hidden)
  self.act = GELU()
  self.fc2 = Linear(hidden, out_features or in_features)
  self.drop = Dropout(drop or 0)
end
function Mlp:forward(x)
  return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
end
L.Mlp = Mlp

-- Block{dim, heads, mlp_ratio = 4, qkv_bias = true, drop_path = 0, eps = 1e-6}: pre-norm ViT block.
--   x = x + drop_path(attn(norm1(x))); f = mlp(norm2(x)); x = x + drop_path(f)
-- forward(x) returns x and f (the MLP-branch output before the residual add: DAMA's feature target).
local Block = Module:extend('Block')
function Block:__init(o)
  local dim, heads = o.dim, o.heads
  self.norm1 = LayerNorm(dim, o.eps or 1e-6)
  self.attn = Attention(dim, heads, o.qkv_bias)
  self.drop_path1 = DropPath(o.drop_path or 0)
  self.norm2 = LayerNorm(dim, o.eps or 1e-6)
  self.mlp = Mlp(dim, math.floor(dim * (o.mlp_ratio or 4)))
  self.drop_path2 = DropPath(o.drop_path or 0)
end
function Block:forward(x)
  x = x + self.drop_path1(self.attn(self.norm1(x)))
  local f = self.mlp(self.norm2(x))
  return x + self.drop_path2(f), f
end
L.Block = Block

return L
