-- dama.nn.functional: fused NN ops with hand-written C backward (runtime/api/nn.h), recorded on the
-- autograd graph like any tensor op. Inputs are made contiguous f32 first (a no-op when they are).
--
--   local F = require 'dama.nn.functional'
--   local h = F.gelu(F.linear(x, w1, b1))
--   local loss = F.mse_loss(F.linear(h, w2, b2), y)
local dama_ffi = require 'dama.ffi'
local tensor = require 'dama.tensor'
local autograd = require 'dama.autograd'
local ffi, C, call = dama_ffi.ffi, dama_ffi.C, dama_ffi.call
local raw, record, needs_grad = autograd.raw, autograd.record, autograd.needs_grad
local Tensor, is_tensor = tensor.Tensor, tensor.is_tensor

local F = {}

-- contiguous f32 (raw, not recorded: the op's own node carries the gradient)
local function c32(t, what)
  if not is_tensor(t) then error((what or 'input') .. ': expected a tensor, got ' .. type(t), 3) end
  if raw.type(t) ~= 'f32' then t = raw.to(t, 'f32') end
  if not raw.is_contiguous(t) then t = raw.contiguous(t) end
  return t
end

-- the tensor argument of a kernel entry (runtime/api/nn_tensor.h): no raw pointer leaves Lua
local function tc(t)
  if t == nil then return nil end
  return t._c
end

-- f32 buffers on the device of `like` (an input of the op)
local function empty(like, shape) return raw.new_empty(like, shape, 'f32') end
local function zeros(like, shape) return raw.new_zeros(like, shape, 'f32') end

-- Where a backward kernel puts the gradient of parameter w (wc: the contiguous f32 tensor the forward used):
-- straight into w.grad when w is a leaf whose .grad has wc's layout (the kernels accumulate, +=), so nothing is left
-- for autograd to add and the function returns nil for w; else into fresh zeros (returned for autograd to add).
-- This removes a zeroed temporary and an add per parameter per step (the arena's .grad views take the sums).
local function param_grad(w, wc, like)
  if w ~= nil and w == wc and rawget(w, 'grad_fn') == nil then
    local g = rawget(w, 'grad')
    if g ~= nil and raw.type(g) == 'f32' and raw.is_contiguous(g) and raw.numel(g) == raw.numel(w) then
      return g, true
    end
  end
  return zeros(like, raw.size(wc)), false
end
-- the value a backward returns for a parameter: nil when its gradient already went into .grad
local function ret(buf, in_place) if in_place then return nil end return buf end

local function last_dim(x) local s = raw.size(x) return s[#s], raw.numel(x) / math.max(s[#s], 1), s end

local function check_last(op, x, want, what)
  local s = raw.size(x)
  if #s == 0 or s[#s] ~= want then
    error(string.format('%s: expected %s with last dim %d, got shape [%s]', op, what, want, table.concat(s, ', ')), 3)
  end
end

-- ---------------------------------------------------------------- linear

-- x [..., C] @ w[OC, C]^T + b[OC]
function F.linear(x, w, b)
  local wc, bc = c32(w, 'linear weight'), b and c32(b, 'linear bias')
  local ws = raw.size(wc)
  if #ws ~= 2 then error('linear: expected a 2-D weight [out, in], got ' .. #ws .. ' dims', 2) end
  local OC, Cin = ws[1], ws[2]
  check_last('linear', x, Cin, 'an input')
  local xc = c32(x)
  local _, N, xs = last_dim(xc)
  local os = {unpack(xs)}; os[#os] = OC
  local out = empty(x, os)
  call(C.dama_nn_linear_forward, tc(out), tc(xc), tc(wc), tc(bc), N, Cin, OC)
  return record('linear', out, {x, w, b, n = 3}, function(g)
    g = c32(g)
    local dx = needs_grad(x) and zeros(x, xs) or nil
    local dw, dw_in, db, db_in
    if needs_grad(w) then dw, dw_in = param_grad(w, wc, x) end
    if b and needs_grad(b) then db, db_in = param_grad(b, bc, x) end
    call(C.dama_nn_linear_backward, tc(dx), tc(dw), tc(db), tc(g), tc(xc), tc(wc), N, Cin, OC)
    return dx, ret(dw, dw_in), ret(db, db_in)
  end)
end

-- ---------------------------------------------------------------- layer norm

-- over the last dim; w, b may be nil (no affine)
function F.layer_norm(x, w, b, eps)
  eps = eps or 1e-5
  local xc = c32(x)
  local Cn, N, xs = last_dim(xc)
  local wc, bc = w and c32(w), b and c32(b)
  if wc and raw.numel(wc) ~= Cn then error('layer_norm: weight has ' .. raw.numel(wc) .. ' elements, expected ' .. Cn, 2) end
  local out, mean, rstd = empty(x, xs), empty(x, {N}), empty(x, {N})
  call(C.dama_nn_layernorm_forward, tc(out), tc(mean), tc(rstd), tc(xc), tc(wc), tc(bc), N, Cn, eps)
  return record('layer_norm', out, {x, w, b, n = 3}, function(g)
    g = c32(g)
    local dx = needs_grad(x) and zeros(x, xs) or nil
    local dw, dw_in, db, db_in
    if w and needs_grad(w) then dw, dw_in = param_grad(w, wc, x) end
    if b and needs_grad(b) then db, db_in = param_grad(b, bc, x) end
    call(C.dama_nn_layernorm_backward, tc(dx), tc(dw), tc(db), tc(g), tc(xc), tc(wc), tc(mean), tc(rstd), N, Cn)
    return dx, ret(dw, dw_in), ret(db, db_in)
  end)
end

-- ---------------------------------------------------------------- activations

-- gelu(x): exact GELU, x * Phi(x) with erf (the reference and timm default).
function F.gelu(x)
  local xc = c32(x)
  local n = raw.numel(xc)
  local out = empty(x, raw.size(xc))
  call(C.dama_nn_gelu_forward, tc(out), tc(xc), n)
  return record('gelu', out, {x, n = 1}, function(g)
    g = c32(g)
    local dx = zeros(x, raw.size(xc))
    call(C.dama_nn_gelu_backward, tc(dx), tc(xc), tc(g), n)
    return dx
  end)
end

-- relu(x): max(x, 0).
function F.relu(x)
  local xc = c32(x)
  local n = raw.numel(xc)
  local out = empty(x, raw.size(xc))
  call(C.dama_nn_relu_forward, tc(out), tc(xc), n)
  return record('relu', out, {x, n = 1}, function(g)
    g = c32(g)
    local dx = zeros(x, raw.size(xc))
    call(C.dama_nn_relu_backward, tc(dx), tc(out), tc(g), n)
    return dx
  end)
end

-- softmax over the last dim
function F.softmax(x)
  local xc = c32(x)
  local Cn, N, xs = last_dim(xc)
  local out = empty(x, xs)
  call(C.dama_nn_softmax_forward, tc(out), tc(xc), N, Cn)
  return record('softmax', out, {x, n = 1}, function(g)
    g = c32(g)
    local dx = zeros(x, xs)
    call(C.dama_nn_softmax_backward, tc(dx), tc(out), tc(g), N, Cn)
    return dx
  end)
end

-- ---------------------------------------------------------------- attention

-- qkv [B, T, 3C] (timm layout: reshape(B, T, 3, heads, C/heads)) -> [B, T, C]; scale nil = hd^-0.5
function F.attention(qkv, num_heads, scale)
  local q = c32(qkv, 'attention qkv')
  local s = raw.size(q)
  if #s ~= 3 or s[3] % 3 ~= 0 then
    error('attention: expected qkv of shape [B, T, 3*C], got [' .. table.concat(s, ', ') .. ']', 2)
  end
  local B, T, Cd = s[1], s[2], s[3] / 3
  if Cd % num_heads ~= 0 then
    error(string.format('attention: width %d is not divisible by %d heads', Cd, num_heads), 2)
  end
  scale = scale or 0
  local out, att = empty(qkv, {B, T, Cd}), empty(qkv, {B, num_heads, T, T})
  call(C.dama_nn_attention_forward, tc(out), tc(att), tc(q), B, T, Cd, num_heads, scale)
  return record('attention', out, {qkv, n = 1}, function(g)
    g = c32(g)
    local dq = zeros(qkv, s)
    call(C.dama_nn_attention_backward, tc(dq), tc(g), tc(q), tc(att), B, T, Cd, num_heads, scale)
    return dq
  end)
end

-- ---------------------------------------------------------------- dropout, drop-path

-- dropout(x, p, training): zero each element with probability p and scale the rest by 1/(1-p); x when not training or p = 0.
function F.dropout(x, p, training)
  if not training or not p or p == 0 then return x end
  if p >= 1 then return Tensor.mul(x, 0) end
  local xc = c32(x)
  local n = raw.numel(xc)
  local mask = raw.to(raw.ge(raw.uniform_(raw.new_empty(xc, raw.size(xc), 'f32')), p), 'f32')
  local scale = 1 / (1 - p)
  local out = empty(x, raw.size(xc))
  call(C.dama_nn_dropout_forward, tc(out), tc(xc), tc(mask), scale, n)
  return record('dropout', out, {x, n = 1}, function(g)
    g = c32(g)
    local dx = zeros(x, raw.size(xc))
    call(C.dama_nn_dropout_backward, tc(dx), tc(g), tc(mask), scale, n)
    return dx
  end)
end

-- stochastic depth: one keep draw per sample (dim 0)
function F.drop_path(x, p, training)
  if not training or not p or p == 0 then return x end
  local xc = c32(x)
  local s = raw.size(xc)
  local N = s[1]
  local M = raw.numel(xc) / N
  local mask = raw.to(raw.ge(raw.uniform_(raw.new_empty(xc, {N}, 'f32')), p), 'f32')
  local scale = 1 / (1 - p)
  local out = empty(x, s)
  call(C.dama_nn_drop_path_forward, tc(out), tc(xc), tc(mask), scale, N, M)
  return record('drop_path', out, {x, n = 1}, function(g)
    g = c32(g)
    local dx = zeros(x, s)
    call(C.dama_nn_drop_path_backward, tc(dx), tc(g), tc(mask), scale, N, M)
    return dx
  end)
end

-- ---------------------------------------------------------------- patches

local function image_dims(op, imgs, p)
  local s = raw.size(imgs)
  if #s ~= 4 then error(op .. ': expected images [N, C, H, W], got ' .. #s .. ' dims', 3) end
  if s[3] % p ~= 0 or s[4] % p ~= 0 then
    error(string.format('%s: image size %d×%d is not a multiple of the patch size %d', op, s[3], s[4], p), 3)
  end
  return s[1], s[2], s[3], s[4]
end

-- imgs [N, C, H, W] -> [N, L, p*p*C] (element (i*p + j)*C + c: the reference's norm-pix target layout)
function F.patchify(imgs, p)
  local x = c32(imgs)
  local N, Cn, H, W = image_dims('patchify', x, p)
  local L = (H / p) * (W / p)
  local out = empty(imgs, {N, L, p * p * Cn})
  call(C.dama_nn_patchify, tc(out), tc(x), N, Cn, H, W, p)
  return record('patchify', out, {imgs, n = 1}, function(g)
    g = c32(g)
    local dx = empty(imgs, {N, Cn, H, W})
    call(C.dama_nn_unpatchify, tc(dx), tc(g), N, Cn, H, W, p)
    return dx
  end)
end

-- unpatchify(patches, p, C, H, W): [N, L, p*p*C] -> images [N, C, H, W] (inverse of patchify, channel fastest).
function F.unpatchify(patches, p, Cn, H, W)
  local x = c32(patches)
  local N = raw.size(x, 0)
  local out = empty(patches, {N, Cn, H, W})
  call(C.dama_nn_unpatchify, tc(out), tc(x), N, Cn, H, W, p)
  return record('unpatchify', out, {patches, n = 1}, function(g)
    g = c32(g)
    local dx = empty(patches, raw.size(x))
    call(C.dama_nn_patchify, tc(dx), tc(g), N, Cn, H, W, p)
    return dx
  end)
end

-- Conv2d(C -> D, kernel p, stride p) as im2col + GEMM: imgs [N, C, H, W], w [D, C, p, p] -> [N, L, D]
function F.patch_embed(imgs, w, b, p)
  local x = c32(imgs)
  local N, Cn, H, W = image_dims('patch_embed', x, p)
  local wc, bc = c32(w, 'patch_embed weight'), b and c32(b)
  local D = raw.size(wc, 0)
  if raw.numel(wc) ~= D * Cn * p * p then
    error(string.format('patch_embed: weight has %d elements, expected [%d, %d, %d, %d]', raw.numel(wc), D, Cn, p, p), 2)
  end
  local L = (H / p) * (W / p)
  local out, col = empty(imgs, {N, L, D}), empty(imgs, {N * L, Cn * p * p})
  call(C.dama_nn_patch_embed_forward, tc(out), tc(col), tc(x), tc(wc), tc(bc), N, Cn, H, W, p, D)
  return record('patch_embed', out, {imgs, w, b, n = 3}, function(g)
    g = c32(g)
    local dx = needs_grad(imgs) and zeros(imgs, {N, Cn, H, W}) or nil
    local scratch = dx and empty(imgs, {N * L, Cn * p * p}) or nil
    local dw, dw_in, db, db_in
    if needs_grad(w) then dw, dw_in = param_grad(w, wc, imgs) end
    if b and needs_grad(b) then db, db_in = param_grad(b, bc, imgs) end
    call(C.dama_nn_patch_embed_backward, tc(dx), tc(dw), tc(db), tc(g), tc(col), tc(wc), tc(scratch),
         N, Cn, H, W, p, D)
    return dx, ret(dw, dw_in), ret(db, db_in)
  end)
end

-- Fixed 2-D sin-cos position embedding [cls + gh*gw, D] (MAE convention; no gradient).
function F.sincos_pos_embed(D, grid_h, grid_w, cls, device)
  local rows = (cls and 1 or 0) + grid_h * grid_w
  local out = tensor.empty({rows, D}, {dtype = 'f32', device = device})
  call(C.dama_nn_pos_embed_2d_sincos, tc(out), D, grid_h, grid_w, cls and 1 or 0)
  return out
end

-- ---------------------------------------------------------------- token selection (masking)

-- x [N, L, D], ids_keep [N, K] (i64) -> [N, K, D]
function F.gather_tokens(x, ids_keep)
  local s = raw.size(x)
  local k = raw.size(ids_keep)
  local idx = raw.expand(raw.unsqueeze(ids_keep, -1), {k[1], k[2], s[3]})
  return Tensor.gather(x, 1, idx)
end

-- tokens [N, K, D] (visible, no cls), mask_token [D] / [1, 1, D], ids_restore [N, L] -> [N, L, D]:
-- out[n, l] = tokens[n, ids_restore[n, l]] if that is < K, else the mask token.
function F.unshuffle_tokens(tokens, mask_token, ids_restore)
  local s = raw.size(tokens)
  local N, K, D = s[1], s[2], s[3]
  local L = raw.size(ids_restore, 1)
  local mt = Tensor.expand(Tensor.reshape(mask_token, {1, 1, D}), {N, L - K, D})
  local full = tensor.cat({tokens, mt}, 1)
  local idx = raw.expand(raw.unsqueeze(ids_restore, -1), {N, L, D})
  return Tensor.gather(full, 1, idx)
end

-- ---------------------------------------------------------------- losses (0-dim outputs)

local function scalar_out(like) return empty(like, {}) end
-- the incoming gradient of a loss as a one-element f32 tensor on the loss's device: no host read
local function dloss_of(g) return tc(c32(g)) end

local function same_numel(op, a, b)
  if raw.numel(a) ~= raw.numel(b) then
    error(string.format('%s: prediction has %d elements, target has %d (shapes %s and %s)', op, raw.numel(a),
      raw.numel(b), raw.shape_string(a), raw.shape_string(b)), 3)
  end
end

-- reduction: 'mean' (default) or 'sum' (the sum of squared errors)
function F.mse_loss(pred, target, reduction)
  same_numel('mse_loss', pred, target)
  if reduction ~= nil and reduction ~= 'mean' and reduction ~= 'sum' then
    error(string.format("mse_loss: reduction must be 'mean' or 'sum', got %s", tostring(reduction)), 2)
  end
  local red = (reduction == 'sum') and 0 or 1
  local p, t = c32(pred), c32(target)
  local n = raw.numel(p)
  local out = scalar_out(pred)
  call(C.dama_nn_sq_error_forward, tc(out), tc(p), tc(t), n, red)
  return record('mse_loss', out, {pred, target, n = 2}, function(g)
    local dp = needs_grad(pred) and zeros(pred, raw.size(p)) or nil
    local dt = needs_grad(target) and zeros(pred, raw.size(t)) or nil
    call(C.dama_nn_sq_error_backward, tc(dp), tc(dt), tc(p), tc(t), n, red, dloss_of(g))
    return dp, dt
  end)
end

-- reduction: 'mean' (default) or 'sum'; beta = 0 is L1
function F.smooth_l1_loss(pred, target, beta, reduction)
  same_numel('smooth_l1_loss', pred, target)
  beta = beta or 1
  local red = (reduction == 'sum') and 0 or 1
  local p, t = c32(pred), c32(target)
  local n = raw.numel(p)
  local out = scalar_out(pred)
  call(C.dama_nn_smooth_l1_loss_forward, tc(out), tc(p), tc(t), n, beta, red)
  return record('smooth_l1_loss', out, {pred, target, n = 2}, function(g)
    local dp = needs_grad(pred) and zeros(pred, raw.size(p)) or nil
    local dt = needs_grad(target) and zeros(pred, raw.size(t)) or nil
    call(C.dama_nn_smooth_l1_loss_backward, tc(dp), tc(dt), tc(p), tc(t), n, beta, red, dloss_of(g))
    return dp, dt
  end)
end

-- logits [N, K], target [N] class indices (0-based), mean over N
function F.cross_entropy(logits, target, label_smoothing)
  local l = c32(logits)
  local s = raw.size(l)
  local N, K = s[1], s[2]
  local t = raw.contiguous(raw.to(target, 'i64'))
  local out = scalar_out(logits)
  local tp = tc(t)
  call(C.dama_nn_cross_entropy_forward, tc(out), tc(l), tp, N, K, label_smoothing or 0)
  return record('cross_entropy', out, {logits, n = 1}, function(g)
    local dl = zeros(logits, s)
    call(C.dama_nn_cross_entropy_backward, tc(dl), tc(l), tp, N, K, label_smoothing or 0, dloss_of(g))
    return dl
  end)
end

-- soft targets [N, K] (e.g. mixup): mean over N of -sum target * log_softmax(logits)
function F.soft_cross_entropy(logits, target)
  local l, t = c32(logits), c32(target)
  local s = raw.size(l)
  local out = scalar_out(logits)
  call(C.dama_nn_soft_cross_entropy_forward, tc(out), tc(l), tc(t), s[1], s[2])
  return record('soft_cross_entropy', out, {logits, n = 1}, function(g)
    local dl = zeros(logits, s)
    call(C.dama_nn_soft_cross_entropy_backward, tc(dl), tc(l), tc(t), s[1], s[2], dloss_of(g))
    return dl
  end)
end

-- MAE/DAMA pixel loss: pred, target [N, L, P], mask [N, L] (1 = removed).
-- Returns the loss (mean over removed patches) and the per-patch loss [N, L] (no gradient).
function F.normpix_loss(pred, target, mask, opts)
  opts = opts or {}
  local norm_pix = opts.norm_pix == false and 0 or 1
  local eps = opts.eps or 1e-6
  local p, t, m = c32(pred), c32(target), c32(mask)
  local s = raw.size(p)
  if #s ~= 3 then error('normpix_loss: expected pred [N, L, P], got ' .. raw.shape_string(p), 2) end
  local N, L, P = s[1], s[2], s[3]
  same_numel('normpix_loss', p, t)
  if raw.numel(m) ~= N * L then
    error(string.format('normpix_loss: mask has %d elements, expected N*L = %d', raw.numel(m), N * L), 2)
  end
  local out, lpp = scalar_out(pred), empty(pred, {N, L})
  call(C.dama_nn_normpix_loss_forward, tc(out), tc(lpp), tc(p), tc(t), tc(m), N, L, P, norm_pix, eps)
  record('normpix_loss', out, {pred, n = 1}, function(g)
    local dp = zeros(pred, s)
    call(C.dama_nn_normpix_loss_backward, tc(dp), tc(p), tc(t), tc(m), N, L, P, norm_pix, eps, dloss_of(g))
    return dp
  end)
  return out, lpp
end

return F
