-- Tensor files and training checkpoints (safetensors): round trips, atomic writes, strict loading,
-- resume, and the committed PyTorch fixtures read back with the values tests/reference/README.md documents.
local dama = require 'dama'
local checkpoint = require 'dama.checkpoint'
local optim = require 'dama.optim'
local ffi = dama.ffi

local FIX = 'tests/reference/fixtures/'
-- a prefix no other process uses: the suites run concurrently (cpu, sim and cuda runs of one file start in the same
-- second, and LuaJIT's math.random is unseeded), so os.tmpname's unique name, not the time, keeps them apart
local TMP = (function() local u = os.tmpname(); os.remove(u); return u .. '_dama_ckpt' end)()

local function tmpfile(name) return TMP .. '_' .. name end

local function read_all(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local s = f:read('*a'); f:close(); return s
end

local function tmp_leftovers(path)
  local dir, base = path:match('^(.*)/([^/]+)$')
  local p = io.popen('ls -a ' .. dir)
  local n = 0
  for line in p:lines() do
    if line:sub(1, #base) == base and line:find('.tmp.', #base, true) then n = n + 1 end
  end
  p:close()
  return n
end

-- A minimal duck-typed model: named parameters and state_dict / load_state_dict.
local function toy_model(seed, with_extra)
  dama.manual_seed(seed)
  local m = {params = {
    {'blocks.0.attn.qkv.weight', dama.randn(6, 2)}, {'blocks.0.attn.qkv.bias', dama.randn(6)},
    {'cls_token', dama.randn(1, 1, 2)}, {'norm.weight', dama.randn(2)},
  }}
  if with_extra then m.params[#m.params + 1] = {'head.weight', dama.randn(3, 2)} end
  for _, p in ipairs(m.params) do p[2].requires_grad = true end
  function m:named_parameters() return self.params end
  function m:state_dict()
    local r = {}
    for _, p in ipairs(self.params) do r[p[1]] = p[2] end
    return r
  end
  function m:load_state_dict(tbl, strict)
    local sd = self:state_dict()
    for k, v in pairs(tbl) do sd[k]:copy_(v) end
  end
  return m
end

local function set_grads(m, seed)
  dama.manual_seed(seed)
  for _, p in ipairs(m.params) do p[2].grad = dama.randn(p[2]:size()) end
end

test('save/load round trip: every dtype, scalars, empty tensors, metadata', function()
  local path = tmpfile('rt.safetensors')
  local ts = {}
  for _, dt in ipairs{'f32', 'f64', 'bf16', 'f16', 'u8', 'u16', 'i32', 'i64'} do
    ts['t.' .. dt] = dama.tensor({{1, 2, 3}, {4, 5, 250}}, dt)
  end
  ts.scalar = dama.tensor(2.5)
  ts.empty = dama.zeros(3, 0)
  ts.strided = dama.arange(12):view(3, 4):t()
  dama.save(path, ts, {note = 'hello "world"', epoch = 3, cfg = {lr = 1.5e-4, betas = {0.9, 0.95}}, flag = true})
  local back, meta, names = dama.load(path)
  expect_eq(#names, 11)
  for k, t in pairs(ts) do
    expect_eq(back[k].dtype, t.dtype, k)
    expect_eq(back[k].shape, t.shape, k)
    expect_eq(back[k]:totable(), t:totable(), k)
  end
  expect_eq(meta.note, 'hello "world"')
  expect_eq(meta.epoch, '3')
  local dec = checkpoint.decode_metadata(meta)
  expect_eq(dec.epoch, 3); expect_eq(dec.flag, true); expect_eq(dec.cfg.betas, {0.9, 0.95}); expect_eq(dec.cfg.lr, 1.5e-4)
  local _, meta2 = dama.load(path, {decode = true, mmap = true})
  expect_eq(meta2.note, 'hello "world"'); expect_eq(meta2.epoch, 3)
  -- mmap'ed tensors stay valid after the file handle is closed, and writes to them never reach the file
  local mm = dama.load(path, {mmap = true})
  collectgarbage(); collectgarbage()
  mm['t.f32'][{0, 0}] = 99
  expect_eq(dama.load(path)['t.f32'][{0, 0}], 1)
  -- the lazy reader
  local f = checkpoint.open(path)
  expect_eq(f:info('t.i64'), {dtype = 'i64', shape = {2, 3}})
  expect(f:info('nope') == nil)
  expect_eq(f:get('scalar'):item(), 2.5)
  expect_error(function() f:get('nope') end, "tensor 'nope'")
  f:close()
  expect_error(function() f:get('scalar') end, 'closed')
  -- list-of-pairs input and bad inputs
  dama.save(path, {{'a', dama.ones(2)}})
  expect_eq(dama.load(path).a:totable(), {1, 1})
  expect_error(function() dama.save(path, {a = 3}) end, "'a' is a number")
  expect_error(function() dama.save(path, {a = dama.ones(1)}, {bad = 0 / 0}) end, "metadata 'bad'")
  os.remove(path)
end)

test('JSON encode/decode round trip', function()
  local v = {a = 1, b = {1, 2.5, -3e-9}, c = 'x\n"y"\\', d = false, e = {nested = {k = 'v'}}, big = 2^52 + 1}
  local back = checkpoint.json_decode(checkpoint.json_encode(v))
  expect_eq(back.a, 1); expect_eq(back.b, {1, 2.5, -3e-9}); expect_eq(back.c, v.c); expect_eq(back.d, false)
  expect_eq(back.e.nested.k, 'v'); expect_eq(back.big, 2^52 + 1)
  expect_eq(checkpoint.json_decode('"\\u00e9\\ud83d\\ude00"'), '\195\169\240\159\152\128')
  expect_error(function() checkpoint.json_decode('{"a":1,}') end, 'json')
end)

test('writes are atomic: a failed save leaves the old file intact and no temporary file', function()
  local path = tmpfile('atomic.safetensors')
  dama.save(path, {a = dama.ones(4)}, {v = '1'})
  local before = read_all(path)
  -- the second tensor needs a contiguous copy, which the memory cap refuses half-way through the write
  local big, one = dama.zeros(256, 512):t(), dama.ones(4)
  collectgarbage(); collectgarbage()
  dama.set_memory_limit(dama.memory().in_use + 64 * 1024)   -- a cap on the total held
  local ok, err = pcall(dama.save, path, {a = one, big = big}, {v = '2'})
  dama.set_memory_limit(0)
  expect(not ok)
  expect(tostring(err):find("'big'", 1, true) and tostring(err):find(path, 1, true), err)
  expect(read_all(path) == before, 'the old file changed')
  expect_eq(tmp_leftovers(path), 0)
  expect_error(function() dama.save('/nonexistent-dir/x.safetensors', {a = dama.ones(1)}) end, 'nonexistent')
  dama.save(path, {a = dama.ones(4), big = big}, {v = '2'})
  local _, meta = dama.load(path)
  expect_eq(meta.v, '2')
  expect_eq(tmp_leftovers(path), 0)
  os.remove(path)
end)

test('strict load names every missing, unexpected, mis-shaped and mis-typed tensor', function()
  local path = tmpfile('strict.safetensors')
  local m = toy_model(1)
  dama.save(path, {
    ['blocks.0.attn.qkv.weight'] = dama.zeros(6, 2),         -- fine
    ['blocks.0.attn.qkv.bias'] = dama.zeros(7),              -- wrong shape
    ['cls_token'] = dama.zeros({1, 1, 2}, 'f16'),            -- wrong dtype
    ['decoder_pred.weight'] = dama.zeros(2, 2),              -- unexpected
  })                                                         -- norm.weight missing
  local before = m.params[1][2]:totable()
  local msg = expect_error(function() checkpoint.load(path, {model = m}) end, 'does not match')
  for _, want in ipairs{'missing from the file (1): norm.weight', 'unexpected in the file (1): decoder_pred.weight',
                        'blocks.0.attn.qkv.bias (file [7], model [6])', 'cls_token (file f16, model f32)', path} do
    expect(msg:find(want, 1, true), 'message lacks "' .. want .. '":\n' .. msg)
  end
  expect_eq(m.params[1][2]:totable(), before)   -- nothing loaded
  -- not strict: loads what fits (dtype converted) and reports the rest
  local info = checkpoint.load(path, {model = m, strict = false})
  expect_eq(info.report.missing, {'norm.weight'})
  expect_eq(info.report.unexpected, {'decoder_pred.weight'})
  expect_eq(#info.report.shape, 1); expect_eq(#info.report.dtype, 1)
  expect_eq(m.params[1][2]:abs():sum():item(), 0)
  expect_eq(m.params[3][2]:abs():sum():item(), 0)
  -- a filter (the fine-tuning rule: drop decoder/mask keys)
  local m2 = toy_model(2)
  checkpoint.save{path = path, model = toy_model(3), rng = false}
  dama.save(path .. '2', (function()
    local t = dama.load(path); t['decoder_pred.weight'] = dama.zeros(1); return t end)())
  checkpoint.load(path .. '2', {model = m2, filter = function(n) return not n:find('decoder') end})
  expect_eq(m2.params[1][2]:totable(), toy_model(3).params[1][2]:totable())
  os.remove(path); os.remove(path .. '2')
end)

test('training checkpoint resumes bit-exactly (weights, AdamW state, RNG, step, cursor)', function()
  local path = tmpfile('resume.safetensors')
  local function build(seed)
    local m = toy_model(seed)
    local opt = optim.AdamW(optim.param_groups_weight_decay(m:named_parameters(), 0.05), {lr = 0.01, betas = {0.9, 0.95}})
    return m, opt
  end
  local m, opt = build(1)
  for s = 1, 3 do set_grads(m, s); opt:step() end
  dama.manual_seed(77); dama.randn(5)
  checkpoint.save{path = path, model = m, optimizer = opt, step = 3, epoch = 0.6, cursor = {index = 42, perm_seed = 9},
                  extra = {best = 0.5}}
  local r1 = dama.randn(4):totable()
  for s = 4, 5 do set_grads(m, s); opt:step() end
  local want = m:state_dict()

  local m2, opt2 = build(2)
  dama.manual_seed(123)
  local info = checkpoint.load(path, {model = m2, optimizer = opt2})
  expect_eq(info.step, 3); expect_eq(info.epoch, 0.6); expect_eq(info.cursor.index, 42); expect_eq(info.extra.best, 0.5)
  expect_eq(dama.randn(4):totable(), r1)              -- the Philox state came back
  dama.set_rng_state(info.rng)
  expect_eq(dama.randn(4):totable(), r1)
  expect_eq(opt2.state['cls_token'].step, 3)
  for s = 4, 5 do set_grads(m2, s); opt2:step() end
  for name, t in pairs(m2:state_dict()) do expect_eq(t:totable(), want[name]:totable(), name) end

  -- the file is plain safetensors with readable names
  local ts, meta = dama.load(path)
  expect(ts['optim.exp_avg.blocks.0.attn.qkv.weight'] ~= nil)
  expect(ts['optim.exp_avg_sq.norm.weight'] ~= nil)
  expect(ts['cls_token'] ~= nil)
  expect_eq(checkpoint.json_decode(meta.dama).format, 'dama.checkpoint')

  -- an optimizer over different parameters is refused by name
  local m3 = toy_model(4, true)
  local opt3 = optim.AdamW(m3:named_parameters(), {lr = 0.1})
  local msg = expect_error(function() checkpoint.load(path, {model = toy_model(5), optimizer = opt3}) end, 'optimizer')
  expect(msg:find('parameter groups', 1, true), msg)
  os.remove(path)
end)

test('several models under prefixes (base_encoder., projs_head.), and one branch pulled out', function()
  local path = tmpfile('multi.safetensors')
  local a, b = toy_model(1), toy_model(2)
  checkpoint.save{path = path, models = {base_encoder = a, momentum_encoder = b}, rng = false}
  local ts = dama.load(path)
  expect(ts['base_encoder.cls_token'] and ts['momentum_encoder.norm.weight'])
  local a2, b2 = toy_model(3), toy_model(4)
  checkpoint.load(path, {models = {base_encoder = a2, momentum_encoder = b2}})
  expect_eq(a2.params[1][2]:totable(), a.params[1][2]:totable())
  expect_eq(b2.params[4][2]:totable(), b.params[4][2]:totable())
  local one = toy_model(5)
  checkpoint.load(path, {model = one, prefix = 'momentum_encoder.'})
  expect_eq(one.params[2][2]:totable(), b.params[2][2]:totable())
  local msg = expect_error(function() checkpoint.load(path, {models = {base_encoder = a2}}) end, 'unexpected')
  expect(msg:find('momentum_encoder.cls_token', 1, true), msg)
  os.remove(path)
end)

-- The committed PyTorch fixtures: written by tests/reference/safetensors_io.py, read here.
test('PyTorch fixtures load with the documented values', function()
  local a, meta = dama.load(FIX .. 'adamw_10.safetensors', {decode = true})
  expect_eq(meta.meta.fixture, 'adamw_10')
  expect_eq(a.lrs.dtype, 'f64')
  expect_close(a.lrs, {0, .002, .004, .006, .008, .01, .009045, .006545, .003455, .000955}, 1e-6)
  expect_eq(a.x.shape, {10, 4, 16}); expect_eq(a.y.shape, {10, 4, 8}); expect_eq(a.losses.shape, {10})
  expect_eq(a['init.tok'].shape, {1, 1, 8}); expect_eq(a['final.lin.weight'].shape, {8, 16})
  expect(a['after.9.ln.bias'] ~= nil and a['exp_avg_sq.lin.bias'] ~= nil)

  local v = dama.load(FIX .. 'vit_mae_fwd_bwd.safetensors', {mmap = true})
  expect_close(v.loss:item(), 1.15718901, 1e-7)
  expect_eq(v.loss.shape, {})
  expect_eq(v.x.shape, {3, 7, 32, 32}); expect_eq(v.pred.shape, {3, 16, 448}); expect_eq(v['feat.2'].shape, {3, 5, 64})
  expect_eq(v.ids_shuffle.dtype, 'i64'); expect_eq(v['patch_embed.proj.weight'].shape, {64, 7, 8, 8})
  expect_eq(v.pos_embed.shape, {1, 17, 64}); expect(v['grad.pos_embed'] == nil and v['grad.cls_token'] ~= nil)
  -- K = 4 visible patches per row; loss = sum(lpp * mask) / sum(mask)
  expect_eq((v.mask:eq(0)):sum(1):totable(), {4, 4, 4})
  expect_close((v.loss_per_patch * v.mask):sum():item() / v.mask:sum():item(), v.loss:item(), 1e-6)
  local n = 0
  for k in pairs(v) do if k:sub(1, 5) == 'grad.' then n = n + 1 end end
  expect_eq(n, 72)

  for _, c in ipairs{{'union', 2.3589964, {7, 7, 6}}, {'per_sample', 2.3657620, {4, 4, 4}}} do
    local d = dama.load(FIX .. 'dama_step_' .. c[1] .. '.safetensors')
    expect_close(d.loss_total:item(), c[2], 1e-7)
    expect_eq(d.m2:eq(0):sum(1):totable(), c[3], c[1] .. ': zeros per row of m2')
    expect_eq(d['projs_head.0.weight'].shape, {128, 64})
  end
  local t = dama.load(FIX .. 'timm_vit.safetensors')
  expect_eq(t.features.shape, {3, 17, 64}); expect_eq(t.logits.shape, {3, 5})
  expect_close(t.pre_logits, t.features:select(1, 0), 0)
  expect(t['norm.weight'] ~= nil and t['blocks.1.mlp.fc2.bias'] ~= nil)
  local ta = dama.load(FIX .. 'timm_vit_avg.safetensors')
  expect(ta['fc_norm.weight'] ~= nil and ta['norm.weight'] == nil)
end)

test('a corrupt file is a clear error naming the file', function()
  local path = tmpfile('corrupt.safetensors')
  local f = io.open(path, 'wb'); f:write('\16\0\0\0\0\0\0\0{"a":{"dtype":"'); f:close()
  expect_error(function() dama.load(path) end, path)
  local g = io.open(path, 'wb'); g:write('not a safetensors file at all'); g:close()
  expect_error(function() dama.load(path) end, 'header length')
  expect_error(function() dama.load(path .. '.absent') end, 'cannot open')
  os.remove(path)
end)

-- With the real dama.nn modules (skipped while dama.nn cannot be loaded).
local function nn_or_skip()
  local ok, nn = pcall(require, 'dama.nn')
  if not ok then skip('dama.nn is not available: ' .. tostring(nn)) end
  return nn
end

local function tiny_vit(nn, seed)
  dama.manual_seed(seed)
  return nn.ViT(nn.vit_config('vit_tiny', {img = 32, patch = 8, chans = 7, depth = 2, dim = 64, heads = 4,
                                           num_classes = 5}))
end

test('dama.nn ViT: timm fixture weights load strictly by their timm names', function()
  local nn = nn_or_skip()
  local v = tiny_vit(nn, 1)
  local path = FIX .. 'timm_vit.safetensors'
  local not_weights = {x = true, features = true, pre_logits = true, logits = true}
  checkpoint.load(path, {model = v, filter = function(n) return not not_weights[n] end})
  local F = dama.load(path)
  for name, t in pairs(v:state_dict()) do expect_eq(t:totable(), F[name]:totable(), name) end
  -- without the filter the extra fixture tensors are reported by name
  local msg = expect_error(function() checkpoint.load(path, {model = tiny_vit(nn, 2)}) end, 'unexpected in the file (4)')
  expect(msg:find('features, logits, pre_logits, x', 1, true), msg)
end)

test('dama.nn ViT + AdamW over the arena: checkpoint resume is bit-exact', function()
  local nn = nn_or_skip()
  local path = tmpfile('vit.safetensors')
  local function build(seed)
    local v = tiny_vit(nn, seed)
    local opt = optim.AdamW(optim.param_groups_weight_decay(v:named_parameters(), 0.05), {lr = 1e-3, betas = {0.9, 0.95}})
    return v, opt
  end
  local function train_step(v, opt, s)
    dama.manual_seed(1000 + s)
    local x = dama.rand(2, 7, 32, 32)
    v:zero_grad()
    local loss = v:forward(x):square():mean()
    loss:backward()
    optim.clip_grad_norm(opt, 1.0)
    opt:step()
    return loss:item()
  end
  local v, opt = build(1)
  expect(opt.param_groups[2].keys[1] == 'cls_token')          -- decayed; pos_embed (frozen) left out
  for s = 1, 2 do train_step(v, opt, s) end
  checkpoint.save{path = path, model = v, optimizer = opt, step = 2, epoch = 0}
  local l3 = {train_step(v, opt, 3), train_step(v, opt, 4)}
  local v2, opt2 = build(2)
  local info = checkpoint.load(path, {model = v2, optimizer = opt2})
  expect_eq(info.step, 2)
  local l3b = {train_step(v2, opt2, 3), train_step(v2, opt2, 4)}
  expect_eq(l3b, l3)
  local a, b = v:state_dict(), v2:state_dict()
  for name, t in pairs(a) do expect_eq(b[name]:totable(), t:totable(), name) end
  os.remove(path)
end)

-- dama.train's interrupt checkpoint holds the state after the last finished step: an "interrupted" raised
-- inside a step (after its batch was taken from the loader) or inside the epoch-end grid (which draws
-- random masks) abandons that work, and the resumed run ends bit-identical to one never stopped.
do
  local R = dofile('recipes/dama.lua')
  local function quiet(fn, ...)
    local print0, out0 = print, io.output()
    print = function() end
    io.output('/dev/null')
    local res = {pcall(fn, ...)}
    print = print0
    io.output(out0)
    return unpack(res)
  end
  local function run(out, extra, hooks)
    local args = {'preset=tiny', 'grid_every=1', 'out=' .. out}
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    local cfg = R.config({}, args)
    dama.manual_seed(cfg.seed)
    local loader = dama.data.cells(cfg)
    local model = dama.models.dama(cfg)
    local vis = loader:peek(4)
    hooks = hooks or {}
    return quiet(dama.train, cfg, loader, model, function(x, ctx)
      if hooks.step then hooks.step(ctx) end
      return R.step(model, x, cfg, ctx)
    end, {visualize = function(path)
      if hooks.visualize then hooks.visualize(path) end
      R.visualize(model, vis, cfg, path)
    end})
  end
  local function rows(path)
    local r = {}
    for line in io.lines(path) do r[#r + 1] = (line:gsub(',"time":.*}$', '}')) end
    return r
  end
  local function same_tensors(a, b)
    local A, B = checkpoint.load_tensors(a), checkpoint.load_tensors(b)
    local n = 0
    for name, t in pairs(A) do
      expect(B[name] ~= nil, name)
      if B[name] then expect_eq(B[name]:totable(), t:totable(), name) end
      n = n + 1
    end
    for name in pairs(B) do expect(A[name] ~= nil, name) end
    return n
  end

  test('train: an interrupt inside a step or the epoch-end grid saves the last finished step exactly', function()
    local base = TMP .. '_train'
    local ok, err = run(base .. '_ref')
    expect(ok, err)
    -- inside step 6's forward: the checkpoint is step 5's, cursor after batch 5
    local fired = false
    ok, err = run(base .. '_a', {}, {step = function(ctx)
      if ctx.step == 5 and not fired then fired = true; error('interrupted') end
    end})
    expect(not ok and tostring(err):find('interrupted'), tostring(err))
    local info = checkpoint.load(base .. '_a/checkpoint.safetensors', {rng = false})
    expect_eq(info.step, 5)
    expect_eq(info.cursor, {epoch = 0, index = 40})
    expect_eq(#rows(base .. '_a/metrics.jsonl'), 5)
    -- inside the grid at the end of epoch 1 (resumed run): the state of step 8, before the grid
    fired = false
    ok, err = run(base .. '_a', {'resume=true'}, {visualize = function()
      if not fired then fired = true; error('interrupted') end
    end})
    expect(not ok and tostring(err):find('interrupted'), tostring(err))
    info = checkpoint.load(base .. '_a/checkpoint.safetensors', {rng = false})
    expect_eq(info.step, 8)
    expect_eq(info.cursor, {epoch = 0, index = 64})
    ok, err = run(base .. '_a', {'resume=true'})
    expect(ok, err)
    expect_eq(rows(base .. '_a/metrics.jsonl'), rows(base .. '_ref/metrics.jsonl'))
    expect_eq(#rows(base .. '_ref/metrics.jsonl'), 16)
    expect(same_tensors(base .. '_ref/checkpoint.safetensors', base .. '_a/checkpoint.safetensors') > 100)
    os.execute('rm -rf ' .. base .. '_ref ' .. base .. '_a')
  end)
end
