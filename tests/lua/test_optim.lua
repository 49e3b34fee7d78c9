-- Optimizers, schedules, parameter groups, clipping and EMA; AdamW + schedule against the PyTorch fixture.
local dama = require 'dama'
local optim = require 'dama.optim'
local schedule = require 'dama.schedule'
local checkpoint = require 'dama.checkpoint'
local C = dama.C
local ffi = dama.ffi

local ROOT = os.getenv('DAMA_SOURCE_ROOT') or '.'
local FIX = ROOT .. '/tests/reference/fixtures/'

local function param(values, shape)
  local t = dama.tensor(values)
  if shape then t = t:view(shape) end
  t.requires_grad = true
  return t
end

-- The fixture's TinyNet: y = LayerNorm_8(x W^T + b) + tok[0, 0], loss = mean((y - target)^2).
-- Forward and backward through the C kernels (runtime/api/nn.h); writes the grads, returns the loss.
local function tinynet_step(P, x, y)
  local N = x:size(0)
  local function call(f, ...) assert(f(...) == 0, dama.ffi.string(C.dama_last_error())) end
  local h = x:new_empty({N, 8})
  local out = x:new_empty({N, 8})
  local mean, rstd = x:new_empty({N}), x:new_empty({N})
  call(C.dama_nn_linear_forward, h._c, x._c, P['lin.weight']._c, P['lin.bias']._c, N, 16, 8)
  call(C.dama_nn_layernorm_forward, out._c, mean._c, rstd._c, h._c, P['ln.weight']._c, P['ln.bias']._c, N, 8, 1e-5)
  out = out + P.tok:view(1, 8)
  local loss, one = x:new_empty({}), x:new_full({}, 1)
  call(C.dama_nn_sq_error_forward, loss._c, out._c, y._c, N * 8, 1)
  local dout = x:new_zeros({N, 8})
  call(C.dama_nn_sq_error_backward, dout._c, nil, out._c, y._c, N * 8, 1, one._c)
  P.tok.grad:copy_(dout:sum(0):view(1, 1, 8))
  local dh = x:new_zeros({N, 8})
  call(C.dama_nn_layernorm_backward, dh._c, P['ln.weight'].grad._c, P['ln.bias'].grad._c, dout._c, h._c,
    P['ln.weight']._c, mean._c, rstd._c, N, 8)
  call(C.dama_nn_linear_backward, nil, P['lin.weight'].grad._c, P['lin.bias'].grad._c, dh._c, x._c,
    P['lin.weight']._c, N, 16, 8)
  return loss:item()
end

local NAMES = {'tok', 'lin.weight', 'lin.bias', 'ln.weight', 'ln.bias'}   -- torch's named_parameters order

test('AdamW + warmup-cosine reproduce the PyTorch adamw_10 fixture', function()
  local F, meta = checkpoint.load_tensors(FIX .. 'adamw_10.safetensors')
  local info = checkpoint.json_decode(meta.meta)
  local cfg = info.config
  local P, named = {}, {}
  for _, n in ipairs(NAMES) do
    P[n] = F['init.' .. n]:clone()
    P[n].requires_grad = true
    P[n].grad = dama.zeros(P[n]:size())
    named[#named + 1] = {n, P[n]}
  end
  local groups = optim.param_groups_weight_decay(named, cfg.weight_decay)
  expect_eq(groups[2].names, {'tok', 'lin.weight'})              -- decayed, as the fixture's meta says
  local decayed = info.decayed; table.sort(decayed)
  local mine = {unpack(groups[2].names)}; table.sort(mine)
  expect_eq(mine, decayed)
  expect_eq(groups[1].names, {'lin.bias', 'ln.weight', 'ln.bias'})
  local opt = optim.AdamW(groups, {lr = cfg.lr, betas = cfg.betas, eps = cfg.eps})
  local sched = schedule.warmup_cosine{lr = cfg.lr, min_lr = cfg.min_lr, warmup_epochs = cfg.warmup_epochs,
                                       epochs = cfg.epochs}
  local step, worst_loss = 0, 0
  for epoch = 0, cfg.epochs - 1 do
    for it = 0, cfg.iters_per_epoch - 1 do
      local lr = sched:adjust(opt, epoch + it / cfg.iters_per_epoch)
      expect_close(lr, F.lrs[step], 1e-15, 'lr of step ' .. step)
      expect_eq(opt.param_groups[1].lr, lr); expect_eq(opt.param_groups[2].lr, lr)
      opt:zero_grad()
      local loss = tinynet_step(P, F.x:select(0, step):contiguous(), F.y:select(0, step):contiguous())
      local want = F.losses[step]
      local rel = math.abs(loss - want) / math.abs(want)
      worst_loss = math.max(worst_loss, rel)
      expect(rel <= 1e-5, string.format('step %d: loss %.9g vs %.9g (rel %.3g)', step, loss, want, rel))
      opt:step()
      for _, n in ipairs(NAMES) do
        expect_close(P[n], F['after.' .. step .. '.' .. n], 1e-4, 'after step ' .. step .. ' ' .. n)
      end
      step = step + 1
    end
  end
  local worst_w = 0
  for _, n in ipairs(NAMES) do
    local d = (P[n] - F['final.' .. n]):abs():max():item()
    local s = F['final.' .. n]:abs():max():item()
    worst_w = math.max(worst_w, d / s)
    expect(d / s <= 1e-4, n .. ': final weights differ, max rel ' .. d / s)
    expect_close(opt.state[n].exp_avg, F['exp_avg.' .. n], 1e-4, 'exp_avg ' .. n)
    expect_close(opt.state[n].exp_avg_sq, F['exp_avg_sq.' .. n], 1e-4, 'exp_avg_sq ' .. n)
    expect_eq(opt.state[n].step, 10)
  end
  print(string.format('     adamw_10: worst loss rel err %.3g, worst final weight rel err (max|d|/max|w|) %.3g',
    worst_loss, worst_w))
end)

test('warmup_cosine equals the fixture lrs and MAE formula; adjust applies lr_scale', function()
  local F = checkpoint.load_tensors(FIX .. 'adamw_10.safetensors')
  local s = schedule.warmup_cosine{lr = 0.01, warmup_epochs = 1, epochs = 2}
  for i = 0, 9 do
    local t = math.floor(i / 5) + (i % 5) / 5
    expect_close(s(t), F.lrs[i], 1e-16)
  end
  local s2 = schedule.warmup_cosine{lr = 3e-4, min_lr = 1e-6, warmup_epochs = 40, epochs = 500}
  expect_close(s2(20), 1.5e-4, 1e-15)
  expect_close(s2(40), 3e-4, 1e-15)
  expect_close(s2(270), 1e-6 + (3e-4 - 1e-6) * 0.5, 1e-15)
  expect_close(s2(500), 1e-6, 1e-15)
  local p1, p2 = param{1, 2}, param{3}
  local opt = optim.AdamW({{params = {p1}, lr_scale = 0.25}, {params = {p2}}}, {lr = 1})
  local lr = s2:adjust(opt, 20)
  expect_eq(lr, s2(20))
  expect_eq(opt.param_groups[1].lr, s2(20) * 0.25)
  expect_eq(opt.param_groups[2].lr, s2(20))
  expect_error(function() schedule.warmup_cosine{lr = 1, warmup_epochs = 5, epochs = 5} end, 'exceed')
end)

test('momentum cosine schedule 0.996 -> 1', function()
  local m = schedule.momentum_cosine{m0 = 0.996, epochs = 100}
  expect_close(m(0), 0.996, 1e-15)
  expect_close(m(50), 0.998, 1e-15)
  expect_close(m(100), 1.0, 1e-15)
  expect_close(m(25), 1 - 0.004 * 0.5 * (1 + math.cos(math.pi / 4)), 1e-15)
end)

-- torch.optim.SGD in double precision, for comparison
local function sgd_reference(p, grads, lr, momentum, dampening, wd, nesterov)
  local buf
  for step, g0 in ipairs(grads) do
    local g = {}
    for i = 1, #p do g[i] = g0[i] + wd * p[i] end
    if momentum ~= 0 then
      if step == 1 then buf = {unpack(g)}
      else for i = 1, #p do buf[i] = momentum * buf[i] + (1 - dampening) * g[i] end end
      for i = 1, #p do g[i] = nesterov and (g[i] + momentum * buf[i]) or buf[i] end
    end
    for i = 1, #p do p[i] = p[i] - lr * g[i] end
  end
  return p
end

test('SGD matches hand-computed steps (plain, momentum, nesterov, weight decay)', function()
  local grads = {{0.5, -1, 2}, {0.25, 0.5, -1.5}, {-0.75, 1, 0.1}}
  for _, c in ipairs{{0, 0, false, 0}, {0.9, 0, false, 0}, {0.9, 0, true, 1e-2}, {0.8, 0.1, false, 0.05}} do
    local momentum, dampening, nesterov, wd = c[1], c[2], c[3], c[4]
    local p = param{1, -2, 3}
    local opt = optim.SGD({p}, {lr = 0.1, momentum = momentum, dampening = dampening, nesterov = nesterov,
                                weight_decay = wd})
    for _, g in ipairs(grads) do
      p.grad = dama.tensor(g)
      opt:step()
    end
    local want = sgd_reference({1, -2, 3}, grads, 0.1, momentum, dampening, wd, nesterov)
    expect_close(p, want, 1e-6, string.format('momentum %g nesterov %s', momentum, tostring(nesterov)))
  end
  expect_error(function() optim.SGD({param{1}}) end, 'lr')
end)

test('AdamW first step by hand; params without grad are skipped; zero_grad', function()
  local p, q = param{1, -2}, param{5}
  local opt = optim.AdamW({p, q}, {lr = 0.1, betas = {0.9, 0.999}, eps = 1e-8, weight_decay = 0.5})
  p.grad = dama.tensor{0.3, -0.4}
  opt:step()
  -- step 1: m = 0.1 g, v = 0.001 g^2; mhat = g, vhat = g^2; p = p (1 - lr wd) - lr * g / (|g| + eps)
  expect_close(p, {1 * 0.95 - 0.1 * 0.3 / (0.3 + 1e-8), -2 * 0.95 + 0.1 * 0.4 / (0.4 + 1e-8)}, 1e-6)
  expect_eq(q:totable(), {5})
  expect(opt.state['1'] == nil or opt.state['1'].step == 0)
  expect_eq(opt.state['0'].step, 1)
  opt:zero_grad()
  expect_eq(p.grad:totable(), {0, 0})
  opt:zero_grad(true)
  expect(p.grad == nil)
end)

test('a flat arena with views steps exactly like separate tensors', function()
  dama.manual_seed(3)
  local arena, garena = dama.randn(20), dama.randn(20)
  local a = arena:narrow(0, 0, 12):view(3, 4); a.grad = garena:narrow(0, 0, 12):view(3, 4)
  local b = arena:narrow(0, 12, 8); b.grad = garena:narrow(0, 12, 8)
  local a2, b2 = a:clone(), b:clone()
  a2.grad, b2.grad = a.grad:clone(), b.grad:clone()
  local o1 = optim.AdamW({{'a', a}, {'b', b}}, {lr = 0.01, weight_decay = 0.1})
  local o2 = optim.AdamW({{'a', a2}, {'b', b2}}, {lr = 0.01, weight_decay = 0.1})
  -- the whole arena as one parameter, too
  local whole = arena:clone(); whole.grad = garena:clone()
  local o3 = optim.AdamW({whole}, {lr = 0.01, weight_decay = 0.1})
  for _ = 1, 3 do o1:step(); o2:step(); o3:step() end
  expect_eq(a:totable(), a2:totable()); expect_eq(b:totable(), b2:totable())
  expect_eq(arena:totable(), whole:totable())
  expect_eq(o1.state.a.exp_avg:totable(), o2.state.a.exp_avg:totable())
end)

test('kernel_calls counts one AdamW / SGD call per fused run and one fill per zero_grad run', function()
  dama.manual_seed(3)
  local arena, garena = dama.randn(20), dama.randn(20)
  local a = arena:narrow(0, 0, 12):view(3, 4); a.grad = garena:narrow(0, 0, 12):view(3, 4)
  local b = arena:narrow(0, 12, 8); b.grad = garena:narrow(0, 12, 8)
  local c = param{1, 2, 3}; c.grad = dama.tensor{0.1, 0.2, 0.3}
  local kc = optim.kernel_calls
  local opt = optim.AdamW({{'a', a}, {'b', b}, {'c', c}}, {lr = 0.01})
  local n0, f0 = kc.adamw_step, kc.grad_fill
  opt:step()
  expect_eq(kc.adamw_step - n0, 2)   -- a, b back to back in one arena: one call; c on its own: one
  opt:zero_grad()
  expect_eq(kc.grad_fill - f0, 2)
  local sgd = optim.SGD({b, a}, {lr = 0.1, momentum = 0.9})   -- b before a: not one run in this order
  local s0 = kc.sgd_step
  sgd:step()
  expect_eq(kc.sgd_step - s0, 2)
  optim.reset_kernel_calls()
  expect_eq(kc.adamw_step, 0); expect_eq(kc.sgd_step, 0); expect_eq(kc.grad_fill, 0)
end)

test('optimizer state_dict / load_state_dict resume exactly', function()
  local function make()
    dama.manual_seed(11)
    local w, b = param(dama.randn(4, 3):totable()), param(dama.randn(3):totable())
    return w, b
  end
  local w, b = make()
  local opt = optim.AdamW(optim.param_groups_weight_decay({{'w', w}, {'b', b}}, 0.05), {lr = 0.01})
  local function grads(step)
    dama.manual_seed(100 + step)
    w.grad = dama.randn(4, 3); b.grad = dama.randn(3)
  end
  for s = 1, 3 do grads(s); opt:step() end
  local sd = opt:state_dict()
  local w2, b2 = w:clone(), b:clone()
  w2.requires_grad, b2.requires_grad = true, true
  local opt2 = optim.AdamW(optim.param_groups_weight_decay({{'w', w2}, {'b', b2}}, 0.05), {lr = 0.01})
  -- copy the state (the live views would otherwise be shared)
  local copy = {type = sd.type, param_groups = sd.param_groups, state = {}}
  for k, st in pairs(sd.state) do
    copy.state[k] = {step = st.step, exp_avg = st.exp_avg:clone(), exp_avg_sq = st.exp_avg_sq:clone()}
  end
  opt2:load_state_dict(copy)
  grads(4); opt:step()
  local gw, gb = w.grad, b.grad
  w2.grad, b2.grad = gw, gb
  opt2:step()
  expect_eq(w2:totable(), w:totable()); expect_eq(b2:totable(), b:totable())
  expect_eq(opt2.state.w.step, 4)
  -- a state for other parameters is refused, naming them
  local bad = {type = 'AdamW', param_groups = sd.param_groups, state = {zz = {step = 1, exp_avg = dama.zeros(2),
    exp_avg_sq = dama.zeros(2)}, w = {step = 1, exp_avg = dama.zeros(5), exp_avg_sq = dama.zeros(4, 3)}}}
  local msg = expect_error(function() opt2:load_state_dict(bad) end, "unexpected state for 'zz'")
  expect(msg:find("exp_avg of 'w' has shape 5", 1, true), msg)
end)

test('clip_grad_norm: global L2 norm, scaling above max_norm', function()
  local p, q = param{0, 0}, param{0}
  p.grad, q.grad = dama.tensor{3, 4}, dama.tensor{12}
  local n = optim.clip_grad_norm({p, q}, 100)
  expect_close(n, 13, 1e-12)
  expect_eq(p.grad:totable(), {3, 4})
  n = optim.clip_grad_norm({p, q}, 6.5)
  expect_close(n, 13, 1e-12)
  local c = 6.5 / (13 + 1e-6)
  expect_close(p.grad, {3 * c, 4 * c}, 1e-6); expect_close(q.grad, {12 * c}, 1e-6)
  expect_close(optim.clip_grad_norm({p, q}), 6.5, 1e-6)
  local r = param{1}   -- no grad: skipped
  expect_close(optim.clip_grad_norm({p, q, r}), 6.5, 1e-6)
end)

test('EMA: shadow = m * shadow + (1 - m) * param; targets; copy_to', function()
  local p = param{1, 2, 3}
  local ema = optim.EMA({p}, 0.9)
  p:copy_(dama.tensor{11, 12, 13})
  ema:update()
  expect_close(ema.shadow[1], {2, 3, 4}, 1e-6)
  ema:update(0.5)
  expect_close(ema.shadow[1], {6.5, 7.5, 8.5}, 1e-6)
  local teacher = dama.zeros(3)
  local e2 = optim.EMA({p}, 0.99, {target = {teacher}})
  expect_eq(teacher:totable(), {11, 12, 13})
  p:copy_(dama.tensor{111, 112, 113})
  e2:update()
  expect_close(teacher, {12, 13, 14}, 1e-5)
  ema:copy_to()
  expect_close(p, {6.5, 7.5, 8.5}, 1e-6)
end)

local function vit_named()
  local function t(...) local x = dama.zeros(...); x.requires_grad = true; return x end
  local pos = dama.zeros(1, 5, 4)   -- frozen (requires_grad unset while the others are true)
  return {
    {'cls_token', t(1, 1, 4)}, {'pos_embed', pos}, {'patch_embed.proj.weight', t(4, 3, 2, 2)},
    {'patch_embed.proj.bias', t(4)},
    {'blocks.0.norm1.weight', t(4)}, {'blocks.0.attn.qkv.weight', t(12, 4)}, {'blocks.0.attn.qkv.bias', t(12)},
    {'blocks.1.attn.qkv.weight', t(12, 4)}, {'blocks.1.attn.qkv.bias', t(12)},
    {'norm.weight', t(4)}, {'norm.bias', t(4)}, {'head.weight', t(5, 4)}, {'head.bias', t(5)},
  }
end

test('param_groups_weight_decay follows timm add_weight_decay', function()
  local g = optim.param_groups_weight_decay(vit_named(), 0.05)
  expect_eq(g[1].weight_decay, 0); expect_eq(g[2].weight_decay, 0.05)
  expect_eq(g[1].names, {'patch_embed.proj.bias', 'blocks.0.norm1.weight', 'blocks.0.attn.qkv.bias',
    'blocks.1.attn.qkv.bias', 'norm.weight', 'norm.bias', 'head.bias'})
  expect_eq(g[2].names, {'cls_token', 'patch_embed.proj.weight', 'blocks.0.attn.qkv.weight',
    'blocks.1.attn.qkv.weight', 'head.weight'})   -- 3-D tokens ARE decayed; frozen pos_embed is left out
  local g2 = optim.param_groups_weight_decay(vit_named(), 0.05, {'cls_token'})
  expect_eq(g2[1].names[1], 'cls_token')
  -- a 2-D parameter named *.bias is not decayed either
  local w = dama.zeros(2, 2)
  expect_eq(optim.param_groups_weight_decay({{'x.bias', w}}, 0.1)[1].names, {'x.bias'})
end)

test('param_groups_lrd follows MAE lr_decay (layer ids, scales, no-decay list)', function()
  expect_eq(optim.layer_id_for_vit('cls_token', 12), 0)
  expect_eq(optim.layer_id_for_vit('pos_embed', 12), 0)
  expect_eq(optim.layer_id_for_vit('patch_embed.proj.weight', 12), 0)
  expect_eq(optim.layer_id_for_vit('blocks.0.attn.qkv.bias', 12), 1)
  expect_eq(optim.layer_id_for_vit('blocks.11.mlp.fc2.weight', 12), 12)
  expect_eq(optim.layer_id_for_vit('fc_norm.weight', 12), 13)
  expect_eq(optim.layer_id_for_vit('head.weight', 12), 13)
  local named = vit_named()
  named[2][2].requires_grad = true   -- fine-tuning trains pos_embed
  local groups = optim.param_groups_lrd(named, {weight_decay = 0.05, layer_decay = 0.5,
    no_weight_decay_list = {'pos_embed', 'cls_token', 'dist_token'}})
  local by = {}
  for _, g in ipairs(groups) do by[g.group_name] = g end
  expect_eq(groups[1].group_name, 'layer_0_no_decay')    -- first-seen order, like the Python dict
  expect_eq(by.layer_0_no_decay.names, {'cls_token', 'pos_embed', 'patch_embed.proj.bias'})
  expect_eq(by.layer_0_decay.names, {'patch_embed.proj.weight'})
  expect_eq(by.layer_1_no_decay.names, {'blocks.0.norm1.weight', 'blocks.0.attn.qkv.bias'})
  expect_eq(by.layer_2_decay.names, {'blocks.1.attn.qkv.weight'})
  expect_eq(by.layer_3_no_decay.names, {'norm.weight', 'norm.bias', 'head.bias'})
  expect_eq(by.layer_3_decay.names, {'head.weight'})
  -- num_layers inferred = 2 blocks: scale = 0.5 ^ (3 - id)
  expect_eq(by.layer_0_decay.lr_scale, 0.125); expect_eq(by.layer_1_no_decay.lr_scale, 0.25)
  expect_eq(by.layer_2_decay.lr_scale, 0.5); expect_eq(by.layer_3_decay.lr_scale, 1)
  expect_eq(by.layer_0_no_decay.weight_decay, 0); expect_eq(by.layer_2_decay.weight_decay, 0.05)
  -- ViT-B: 0.65 ^ (13 - id)
  local g12 = optim.param_groups_lrd(named, {layer_decay = 0.65, num_layers = 12})
  for _, g in ipairs(g12) do expect_close(g.lr_scale, 0.65 ^ (13 - g.layer_id), 1e-15) end
  -- the scheduler applies the scale
  local opt = optim.AdamW(groups, {lr = 1})
  schedule.warmup_cosine{lr = 1e-3, warmup_epochs = 5, epochs = 50}:adjust(opt, 10)
  local s = schedule.warmup_cosine{lr = 1e-3, warmup_epochs = 5, epochs = 50}(10)
  for _, g in ipairs(opt.param_groups) do expect_close(g.lr, s * g.lr_scale, 1e-15) end
end)

test('bad parameters give clear errors', function()
  local p = param{1, 2}
  local opt = optim.AdamW({{'w', p}}, {lr = 0.1})
  p.grad = dama.tensor({1, 2}, 'f64')
  expect_error(function() opt:step() end, "gradient of parameter 'w' must be a contiguous f32")
  p.grad = dama.tensor{1, 2, 3}
  expect_error(function() opt:step() end, "has 3 elements")
  expect_error(function() optim.AdamW({p, p}, {lr = 1}) end, 'twice')
end)

-- The same fixture through dama.nn modules, autograd and the model's flat arena (skipped without dama.nn).
test('adamw_10 through dama.nn + autograd + the parameter arena', function()
  local ok, nn = pcall(require, 'dama.nn')
  if not ok then skip('dama.nn is not available: ' .. tostring(nn)) end
  local F, meta = checkpoint.load_tensors(FIX .. 'adamw_10.safetensors')
  local cfg = checkpoint.json_decode(meta.meta).config
  local TinyNet = nn.Module:extend('TinyNet')
  function TinyNet:__init()
    self.lin = nn.Linear(16, 8)
    self.ln = nn.LayerNorm(8, 1e-5)
    self:register_parameter('tok', dama.zeros(1, 1, 8))
  end
  function TinyNet:forward(x) return self.ln(self.lin(x)) + self.tok:view(1, 8) end
  local net = TinyNet()
  local init = {}
  for _, n in ipairs(NAMES) do init[n] = F['init.' .. n] end
  net:load_state_dict(init, true)
  net:build_arena()
  local opt = optim.AdamW(optim.param_groups_weight_decay(net:named_parameters(), cfg.weight_decay),
                          {lr = cfg.lr, betas = cfg.betas, eps = cfg.eps})
  local sched = schedule.warmup_cosine{lr = cfg.lr, min_lr = cfg.min_lr, warmup_epochs = cfg.warmup_epochs,
                                       epochs = cfg.epochs}
  local step = 0
  for epoch = 0, cfg.epochs - 1 do
    for it = 0, cfg.iters_per_epoch - 1 do
      sched:adjust(opt, epoch + it / cfg.iters_per_epoch)
      net:zero_grad()
      local y = net(F.x:select(0, step))
      local loss = (y - F.y:select(0, step)):square():mean()
      loss:backward()
      opt:step()
      expect_close(loss:item(), F.losses[step], 1e-5, 'loss of step ' .. step)
      step = step + 1
    end
  end
  for name, t in pairs(net:state_dict()) do expect_close(t, F['final.' .. name], 1e-4, name) end
end)

-- ---------------------------------------------------------------- the arena laid out by parameter group

local function tiny_mae(arena)
  local nn = require 'dama.nn'
  -- LayerNorm / bias sizes 24 and 20 are not multiples of 16, so the default arena has alignment gaps
  return nn.MAE{img = 16, patch = 4, chans = 3, dim = 24, depth = 2, heads = 4, dec_dim = 20, dec_depth = 1,
                dec_heads = 4, arena = arena}
end
local function bits_equal(a, b) return a:numel() == b:numel() and a:ne(b):sum():item() == 0 end
local function mae_loss(m, x, mobj) return m:loss(x, m(x, mobj), mobj) end

test('param_groups_weight_decay(model): arena by group, one AdamW call per group, bit-identical to no arena', function()
  local ok = pcall(require, 'dama.nn')
  if not ok then skip('dama.nn is not available') end
  dama.manual_seed(21)
  local a = tiny_mae()
  local b = tiny_mae(false)          -- the per-parameter path: every parameter its own tensor
  b:load_state_dict(a:state_dict())
  expect(a:has_arena() and not b:has_arena())
  local ga = optim.param_groups_weight_decay(a, 0.05)
  local gb = optim.param_groups_weight_decay(b:named_parameters(), 0.05)
  expect_eq(#ga, 2)
  expect_eq(ga[1].names, gb[1].names); expect_eq(ga[2].names, gb[2].names)
  -- the arena holds group 1, then group 2, back to back
  local k = 0
  for _, g in ipairs(ga) do
    for _, n in ipairs(g.names) do k = k + 1; expect_eq(a.arena_layout[k].name, n) end
  end
  expect_eq(k, #a.arena_layout)
  for _, g in ipairs(ga) do
    for j, p in ipairs(g.params) do expect(p._c.storage == a.arena._c.storage, 'in the arena: ' .. g.names[j]) end
  end
  local oa = optim.AdamW(ga, {lr = 1e-2, betas = {0.9, 0.95}})
  local ob = optim.AdamW(gb, {lr = 1e-2, betas = {0.9, 0.95}})
  local kc = optim.kernel_calls
  for step = 1, 3 do
    local x = dama.rand(2, 3, 16, 16)
    local mobj = dama.mask.random(2, a.num_patches, 0.75, dama.rand(2, a.num_patches))
    local f0 = kc.grad_fill
    oa:zero_grad()
    expect_eq(kc.grad_fill - f0, 1, 'zero_grad is one fill over the re-laid gradient arena')
    ob:zero_grad()
    local la, lb = mae_loss(a, x, mobj), mae_loss(b, x, mobj)
    la:backward(); lb:backward()
    expect_eq(la:item(), lb:item(), 'loss of step ' .. step)
    local n0 = kc.adamw_step
    oa:step()
    expect_eq(kc.adamw_step - n0, #ga, 'AdamW calls per step = number of groups')
    n0 = kc.adamw_step
    ob:step()
    expect_eq(kc.adamw_step - n0, #gb[1].params + #gb[2].params)   -- no arena: one call per parameter
    local sb = b:state_dict()
    for name, t in pairs(a:state_dict()) do expect(bits_equal(t, sb[name]), name .. ' after step ' .. step) end
    for key, st in pairs(oa.state) do
      expect_eq(st.step, ob.state[key].step)
      expect(bits_equal(st.exp_avg, ob.state[key].exp_avg), 'exp_avg ' .. key)
      expect(bits_equal(st.exp_avg_sq, ob.state[key].exp_avg_sq), 'exp_avg_sq ' .. key)
    end
  end
  -- the old call form (a list) leaves the default layout: decay and no-decay interleave, more calls
  dama.manual_seed(21)
  local c = tiny_mae()
  local gc = optim.param_groups_weight_decay(c:named_parameters(), 0.05)
  expect(c.arena_order == nil)
  local oc = optim.AdamW(gc, {lr = 1e-2})
  c:zero_grad()
  mae_loss(c, dama.rand(2, 3, 16, 16), dama.mask.random(2, c.num_patches, 0.75)):backward()
  local n0 = kc.adamw_step
  oc:step()
  expect(kc.adamw_step - n0 > #gc, 'interleaved groups take more calls')
end)

test('param_groups_lrd(model): one AdamW call per layer-decay group', function()
  local ok, nn = pcall(require, 'dama.nn')
  if not ok then skip('dama.nn is not available') end
  dama.manual_seed(22)
  local v = nn.ViT{img = 16, patch = 4, chans = 3, dim = 24, depth = 3, heads = 4, num_classes = 5,
                   global_pool = 'avg'}
  local groups = optim.param_groups_lrd(v, {weight_decay = 0.05, layer_decay = 0.75})
  expect(#groups >= 8, 'layer 0..4, decay and no decay: ' .. #groups)
  local k = 0
  for _, g in ipairs(groups) do
    for _, n in ipairs(g.names) do k = k + 1; expect_eq(v.arena_layout[k].name, n) end
  end
  local opt = optim.AdamW(groups, {lr = 1e-3})
  local kc = optim.kernel_calls
  for _ = 1, 2 do
    opt:zero_grad()
    local logits = v(dama.rand(2, 3, 16, 16))
    logits:square():mean():backward()
    local n0 = kc.adamw_step
    opt:step()
    expect_eq(kc.adamw_step - n0, #groups)
  end
end)

test('an optimizer and an EMA built before a re-lay keep working, bit-identical to no re-lay', function()
  local ok = pcall(require, 'dama.nn')
  if not ok then skip('dama.nn is not available') end
  dama.manual_seed(23)
  local a = tiny_mae()
  dama.manual_seed(23)
  local b = tiny_mae()
  local oa = optim.AdamW(optim.param_groups_weight_decay(a:named_parameters(), 0.05), {lr = 1e-2})
  local ob = optim.AdamW(optim.param_groups_weight_decay(b:named_parameters(), 0.05), {lr = 1e-2})
  local ea = optim.EMA(a:named_parameters{trainable = true}, 0.9)
  local eb = optim.EMA(b:named_parameters{trainable = true}, 0.9)
  local function step(relay)
    local x = dama.rand(2, 3, 16, 16)
    local mobj = dama.mask.random(2, a.num_patches, 0.75, dama.rand(2, a.num_patches))
    oa:zero_grad(); ob:zero_grad()
    mae_loss(a, x, mobj):backward(); mae_loss(b, x, mobj):backward()
    if relay then optim.param_groups_weight_decay(a, 0.05) end   -- between backward and step: grads move too
    oa:step(); ob:step(); ea:update(); eb:update()
  end
  step(false)
  step(true)
  expect(a.arena_order ~= nil and b.arena_order == nil)
  step(false)
  local sb = b:state_dict()
  for name, t in pairs(a:state_dict()) do expect(bits_equal(t, sb[name]), name) end
  local eas, ebs = ea:state_dict(), eb:state_dict()
  for name, t in pairs(eas) do expect(bits_equal(t, ebs[name]), 'EMA ' .. name) end
end)

test('checkpoint round trip with an arena laid out by group', function()
  local ok = pcall(require, 'dama.nn')
  if not ok then skip('dama.nn is not available') end
  local path = os.tmpname()
  local function build(seed)
    dama.manual_seed(seed)
    local m = tiny_mae()
    return m, optim.AdamW(optim.param_groups_weight_decay(m, 0.05), {lr = 1e-2})
  end
  local function step(m, opt, seed)
    dama.manual_seed(seed)
    local x = dama.rand(2, 3, 16, 16)
    local mobj = dama.mask.random(2, m.num_patches, 0.75, dama.rand(2, m.num_patches))
    opt:zero_grad()
    mae_loss(m, x, mobj):backward()
    opt:step()
  end
  local m, opt = build(31)
  for s = 1, 2 do step(m, opt, 100 + s) end
  checkpoint.save{path = path, model = m, optimizer = opt, step = 2, rng = false}
  local m2, opt2 = build(32)   -- other weights; its arena is re-laid the same way
  checkpoint.load(path, {model = m2, optimizer = opt2})
  expect(m2:has_arena())
  local s2 = m2:state_dict()
  for name, t in pairs(m:state_dict()) do expect(bits_equal(t, s2[name]), name) end
  step(m, opt, 103); step(m2, opt2, 103)
  s2 = m2:state_dict()
  for name, t in pairs(m:state_dict()) do expect(bits_equal(t, s2[name]), 'after a step: ' .. name) end
  -- and into a model with the default layout (the file names tensors, not offsets)
  dama.manual_seed(33)
  local m3 = tiny_mae()
  checkpoint.load(path, {model = m3})
  local s3 = m3:state_dict()
  local want = dama.load(path)
  for name, t in pairs(s3) do expect(bits_equal(t, want[name]), 'default layout: ' .. name) end
  os.remove(path)
end)
