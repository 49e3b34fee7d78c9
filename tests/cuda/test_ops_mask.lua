-- The cuda mask ops (cuda/ops_mask.c) against their CPU twins (cpu/mask.c): random masking, the adaptive mask in
-- both modes (per-sample rule, the reference's batch union), ids from a 0/1 mask, mask_check, and the token gather /
-- unshuffle with their accumulating backwards. Masks and ids are integers and 0/1 floats, the token kernels move or
-- add floats in the CPU's order, so every comparison is bit for bit (the interpreter and a GPU alike). Inputs: fresh
-- seeded noise and losses with ties, NaN, +-inf, zeros and negatives; L = 1 .. 257 (one block per row) and 4100 (the
-- multi-launch sort); N up to 70 (more than dmask_token's 64 chunks); the committed PyTorch fixtures on cuda; every
-- error of a bad argument with the CPU's message; and the DAMA step's mask ops captured in a CUDA graph and replayed.
local dama = require 'dama'
local ffi = dama.ffi
local C = dama.C
local M = dama.mask

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

local function shape_of(t) return table.concat(t:size(), 'x') end
local function bytes_of(t)
  local h = t:cpu():contiguous()
  return ffi.string(C.dama_data_ptr(h._c), h:numel() * C.dama_dtype_size(h._c.dtype))
end

local compared = 0
local function same(what, got, want)
  expect_eq(got.device, 'cuda:0', what .. ': device')
  expect_eq(got.dtype, want.dtype, what .. ': dtype')
  expect_eq(shape_of(got), shape_of(want), what .. ': shape')
  if bytes_of(got) ~= bytes_of(want) then
    local g, w = got:cpu():to('f64'):contiguous():view(-1), want:to('f64'):contiguous():view(-1)
    for i = 0, w:numel() - 1 do
      local a, b = g:get(i), w:get(i)
      if not (a == b or (a ~= a and b ~= b)) then
        error(string.format('%s: element %d is %.9g, the CPU gives %.9g', what, i, a, b), 2)
      end
    end
    error(what .. ': same values but different bits', 2)
  end
  compared = compared + 1
end

local function same_mask(what, got, want)
  for _, k in ipairs{'mask', 'ids_shuffle', 'ids_restore', 'ids_keep'} do same(what .. ' ' .. k, got[k], want[k]) end
  expect_eq(got.K, want.K, what .. ' K')
end

-- the message of a failing call (nil if it succeeds), without the position prefix
local function err_of(f)
  local ok, e = pcall(f)
  if ok then return nil end
  return (tostring(e):gsub('^[^:]*:%d+: ', ''))
end
local function same_error(what, f_cpu, f_cuda)
  local ec, ed = err_of(f_cpu), err_of(f_cuda)
  expect(ec ~= nil, what .. ': the CPU accepted it')
  expect_eq(ed, ec, what .. ': the message')
end
local raise = require('dama.ffi').raise
-- a raw dama_nn_* call that raises the C error
local function nn(f, ...)
  local s = f(...)
  if s ~= 0 then raise(s) end
end

-- [N, L] values with ties (a few levels), NaN, +-inf, 0, -0 and negatives sprinkled in
local function scores(N, L, seed)
  dama.manual_seed(seed)
  local x = ((dama.rand({N, L}, {device = 'cpu'}) * 6):floor() - 2) * 0.5   -- -1 .. 1.5, ties
  local flat = x:view(-1)
  local special = {0 / 0, math.huge, -math.huge, -0.0, 0.0}
  for i = 3, flat:numel() - 1, 7 do flat:set(special[(i % #special) + 1], i) end
  return x
end
local function noise(N, L, seed, ties)
  dama.manual_seed(seed)
  local u = dama.rand({N, L}, {device = 'cpu'})
  if ties then u = (u * 4):floor() * 0.25 end
  return u
end

test('random masking: ids and masks equal the CPU bit for bit, ties and NaN in the noise', function()
  need_gpu()
  for _, L in ipairs{1, 7, 16, 64, 196, 257} do
    for _, N in ipairs{1, 3, 8} do
      for _, ratio in ipairs{0, 0.5, 0.75, 0.8, 1} do
        for _, kind in ipairs{'uniform', 'ties', 'specials'} do
          local z = kind == 'specials' and scores(N, L, L + N) or noise(N, L, 7 * L + N, kind == 'ties')
          local what = string.format('random N=%d L=%d ratio=%g %s', N, L, ratio, kind)
          same_mask(what, M.random(N, L, ratio, z:cuda()), M.random(N, L, ratio, z))
        end
      end
    end
  end
  local z = noise(2, 4100, 3, true)
  same_mask('random L=4100 (the global sort)', M.random(2, 4100, 0.75, z:cuda()), M.random(2, 4100, 0.75, z))
end)

test('adaptive masking, per-sample and union: equal to the CPU for every ratio and overlap', function()
  need_gpu()
  for _, mode in ipairs{'per_sample', 'union'} do
    for _, L in ipairs{16, 37, 64, 196} do
      for _, N in ipairs{1, 4, 33} do
        for _, ratio in ipairs{0.5, 0.75, 0.8} do
          local m1 = M.random(N, L, ratio, noise(N, L, L * N, false))
          local m1d = M.random(N, L, ratio, m1.noise:cuda())
          local loss = scores(N, L, N + L)
          for _, overlap in ipairs{0, 0.25, 0.5, 1} do
            local what = string.format('adaptive %s N=%d L=%d ratio=%g overlap=%g', mode, N, L, ratio, overlap)
            same_mask(what, M.adaptive(m1d, loss:cuda(), ratio, overlap, mode),
                      M.adaptive(m1, loss, ratio, overlap, mode))
          end
        end
      end
    end
    local m1 = M.random(2, 4100, 0.75, noise(2, 4100, 5, false))
    local loss = scores(2, 4100, 6)
    same_mask('adaptive ' .. mode .. ' L=4100', M.adaptive(m1.mask:cuda(), loss:cuda(), 0.75, 0.5, mode),
              M.adaptive(m1, loss, 0.75, 0.5, mode))
  end
end)

test('the committed PyTorch fixtures, on cuda', function()
  need_gpu()
  local f = io.open('tests/reference/fixtures/dama_step_union.safetensors', 'rb')
  if not f then skip('fixtures not found (run from the repository root)') end
  f:close()
  for _, mode in ipairs{'union', 'per_sample'} do
    local ts = dama.load('tests/reference/fixtures/dama_step_' .. mode .. '.safetensors')
    local m1 = M.random(3, 16, 0.75, ts.noise1:cuda())
    same('fixture ' .. mode .. ' m1', m1.mask, ts.m1)
    same('fixture ' .. mode .. ' ids_shuffle1', m1.ids_shuffle, ts.ids_shuffle1)
    local m2 = M.adaptive(m1, ts.loss_per_patch1:cuda(), 0.75, 0.5, {mode = mode})
    same('fixture ' .. mode .. ' m2', m2.mask, ts.m2)
    same('fixture ' .. mode .. ' ids_shuffle2', m2.ids_shuffle, ts.ids_shuffle2)
  end
end)

test('ids from a 0/1 mask (mask_ids) and its checks, with the CPU\'s messages', function()
  need_gpu()
  for _, L in ipairs{1, 9, 64, 257} do
    local m = M.random(5, L, 0.6, noise(5, L, L, false)).mask
    same_mask('from_mask L=' .. L, M.from_mask(m:cuda()), M.from_mask(m))
  end
  local function ids_call(mask, K)
    local N, L = mask:size(0), mask:size(1)
    local sh, re = mask:new_empty({N, L}, 'i64'), mask:new_empty({N, L}, 'i64')
    local kp = mask:new_empty({N, math.max(K, 1)}, 'i64')
    nn(C.dama_nn_mask_ids, sh._c, re._c, K > 0 and kp:narrow(1, 0, K)._c or nil, mask._c, N, L, K)
    return sh
  end
  local good = dama.tensor({{0, 1, 1, 0}, {1, 0, 0, 1}}, 'f32')
  local bad_entry = dama.tensor({{0, 1, 1, 0}, {1, 0, 0.5, 1}}, 'f32')
  local bad_count = dama.tensor({{0, 1, 1, 0}, {1, 0, 1, 1}}, 'f32')
  same('mask_ids', ids_call(good:cuda(), 2), ids_call(good, 2))
  same_error('mask_ids: an entry not 0/1', function() ids_call(bad_entry, 2) end,
             function() ids_call(bad_entry:cuda(), 2) end)
  same_error('mask_ids: rows with different counts', function() ids_call(bad_count, 2) end,
             function() ids_call(bad_count:cuda(), 2) end)
  same_error('mask_ids: K differs from the mask', function() ids_call(good, 1) end,
             function() ids_call(good:cuda(), 1) end)
  same_error('mask_ids: K > L', function() ids_call(good, 5) end, function() ids_call(good:cuda(), 5) end)
  -- a failed mask_ids writes nothing
  local sh = good:cuda():new_empty({2, 4}, 'i64')
  local before = bytes_of(sh)
  expect(not pcall(nn, C.dama_nn_mask_ids, sh._c, nil, nil, bad_entry:cuda()._c, 2, 4, 2), 'mask_ids accepted 0.5')
  expect(bytes_of(sh) == before, 'a failed mask_ids wrote its ids')
end)

-- mask_check is a raw slot with no tensor entry (dama.mask.from_mask checks a host copy): reach the cuda table's
-- slot through backend.h's layout (every member of dama_backend_ops is a function pointer; the slot's position is
-- read from the header, so a reordered table cannot silently test the wrong slot)
local function cuda_mask_check_slot()
  local f = io.open('runtime/core/backend.h', 'rb')
  if not f then return nil end
  local text = f:read('*a')
  f:close()
  local body = text:match('typedef struct dama_backend_ops {(.-)} dama_backend_ops;')
  local i, at = 0, nil
  for name in body:gmatch('%(%*([%w_]+)%)') do
    if name == 'mask_check' then at = i end
    i = i + 1
  end
  pcall(ffi.cdef, [[
    typedef struct dama_backend_head { const char *name; int32_t type; int host_visible; void *memory_fns[8];
                                       void **ops; } dama_backend_head;
    const dama_backend_head *dama_backend_of_type(int32_t type);
  ]])
  local be = C.dama_backend_of_type(1)   -- DAMA_CUDA
  expect_eq(ffi.string(be.name), 'cuda', 'the cuda backend')
  return ffi.cast('int (*)(const float *, int64_t, int64_t, int64_t *)', be.ops[at])
end

test('mask_check returns K to the host, or the CPU\'s error for the first bad row', function()
  need_gpu()
  local slot = cuda_mask_check_slot()
  if not slot then skip('runtime/core/backend.h not found (run from the repository root)') end
  local K = ffi.new('int64_t[1]')
  local function check(m)
    local d = m:cuda()
    K[0] = -1
    local s = slot(ffi.cast('const float *', d._c.storage.data) + d._c.offset, m:size(0), m:size(1), K)
    if s ~= 0 then raise(s) end
    return tonumber(K[0])
  end
  local function host_check(m)
    local h = m:contiguous()
    K[0] = -1
    nn(C.dama_mask_check, C.dama_data_ptr(h._c), h:size(0), h:size(1), K)
    return tonumber(K[0])
  end
  for _, L in ipairs{1, 5, 64, 300} do
    local m = M.random(7, L, 0.7, noise(7, L, L, false)).mask
    expect_eq(check(m), host_check(m), 'K for L=' .. L)
  end
  local cases = {
    {{0, 1, 1, 0}, {1, 0, 0.5, 1}},        -- a bad entry in row 1
    {{0, 1, 1, 0}, {1, 1, 0, 1}, {0, 0, 0, 1}},   -- row 1's count differs, row 2's too: row 1 is named
    {{0, 2, 1, 0}, {1, 1, 1, 1}},          -- row 0's entry comes first
    {{1, 1, 1, 0}, {0 / 0, 0, 1, 1}},      -- a NaN entry
  }
  for i, rows in ipairs(cases) do
    local m = dama.tensor(rows, 'f32')
    same_error('mask_check case ' .. i, function() return host_check(m) end, function() return check(m) end)
  end
end)

test('token gather / unshuffle and their accumulating backwards: the CPU\'s bits, duplicates in the CPU order',
     function()
  need_gpu()
  for _, N in ipairs{1, 5, 70} do
    for _, D in ipairs{1, 3, 8, 33, 64} do
      local L, ratio = 16, 0.75
      local m = M.random(N, L, ratio, noise(N, L, N * D, false))
      local K = m.K
      dama.manual_seed(N + D)
      local x = dama.randn({N, L, D}, {device = 'cpu'})
      local tokens = dama.randn({N, K, D}, {device = 'cpu'})
      local mt = dama.randn({D}, {device = 'cpu'})
      local what = string.format('N=%d D=%d', N, D)
      same('gather ' .. what, M.gather_forward(x:cuda(), m.ids_keep:cuda()), M.gather_forward(x, m.ids_keep))
      same('unshuffle ' .. what, M.unshuffle_forward(tokens:cuda(), mt:cuda(), m.ids_restore:cuda()),
           M.unshuffle_forward(tokens, mt, m.ids_restore))
      -- backwards add into what is there; ids with repeats make the order of the adds matter
      local keep = (dama.rand({N, K}, {device = 'cpu'}) * 3):floor():to('i64')
      local restore = (dama.rand({N, L}, {device = 'cpu'}) * L):floor():to('i64')
      local gout = dama.randn({N, K, D}, {device = 'cpu'})
      local dout = dama.randn({N, L, D}, {device = 'cpu'})
      local dx0 = dama.randn({N, L, D}, {device = 'cpu'})
      local dt0, dm0 = dama.randn({N, K, D}, {device = 'cpu'}), dama.randn({D}, {device = 'cpu'})
      local dx, ddx = dx0:clone(), dx0:cuda()
      nn(C.dama_nn_mask_gather_backward, dx._c, gout._c, keep._c, N, L, K, D)
      nn(C.dama_nn_mask_gather_backward, ddx._c, gout:cuda()._c, keep:cuda()._c, N, L, K, D)
      same('gather_backward ' .. what, ddx, dx)
      local dt, dm, ddt, ddm = dt0:clone(), dm0:clone(), dt0:cuda(), dm0:cuda()
      nn(C.dama_nn_mask_unshuffle_backward, dt._c, dm._c, dout._c, restore._c, N, L, K, D)
      nn(C.dama_nn_mask_unshuffle_backward, ddt._c, ddm._c, dout:cuda()._c, restore:cuda()._c, N, L, K, D)
      same('unshuffle_backward dtokens ' .. what, ddt, dt)
      same('unshuffle_backward dmask_token ' .. what, ddm, dm)
      -- either gradient alone
      dt, ddt = dt0:clone(), dt0:cuda()
      nn(C.dama_nn_mask_unshuffle_backward, dt._c, nil, dout._c, restore._c, N, L, K, D)
      nn(C.dama_nn_mask_unshuffle_backward, ddt._c, nil, dout:cuda()._c, restore:cuda()._c, N, L, K, D)
      same('unshuffle_backward dtokens only ' .. what, ddt, dt)
      dm, ddm = dm0:clone(), dm0:cuda()
      nn(C.dama_nn_mask_unshuffle_backward, nil, dm._c, dout._c, restore._c, N, L, K, D)
      nn(C.dama_nn_mask_unshuffle_backward, nil, ddm._c, dout:cuda()._c, restore:cuda()._c, N, L, K, D)
      same('unshuffle_backward dmask_token only ' .. what, ddm, dm)
    end
  end
  -- K = 0: every patch is a mask token
  local m = M.random(3, 8, 1, noise(3, 8, 1, false))
  local mt = dama.randn({5}, {device = 'cpu'})
  same('unshuffle with K = 0', M.unshuffle_forward(dama.empty({3, 0, 5}, {device = 'cpu'}):cuda(), mt:cuda(),
                                                    m.ids_restore:cuda()),
       M.unshuffle_forward(dama.empty({3, 0, 5}, {device = 'cpu'}), mt, m.ids_restore))
  -- a misaligned x (a view one float in): the kernels' 16-byte path must not be taken
  local x = dama.randn({2 * 16 * 8 + 1}, {device = 'cpu'})
  local xv = x:narrow(0, 1, 2 * 16 * 8):view(2, 16, 8)
  local mm = M.random(2, 16, 0.5, noise(2, 16, 9, false))
  same('gather from a misaligned view', M.gather_forward(x:cuda():narrow(0, 1, 256):view(2, 16, 8),
                                                         mm.ids_keep:cuda()), M.gather_forward(xv, mm.ids_keep))
end)

test('bad arguments give the CPU\'s messages (device-side checks included) and write nothing', function()
  need_gpu()
  local m1 = dama.tensor({{0, 1, 1, 1}, {1, 0, 1, 1}}, 'f32')
  local loss = dama.tensor({{1, 2, 3, 4}, {4, 3, 2, 1}}, 'f32')
  local function adaptive(m, l, ratio, overlap, mode)
    return function() return M.adaptive(m, l, ratio, overlap, mode) end
  end
  local function both(what, mk)
    same_error(what, mk(false), mk(true))
  end
  both('adaptive m1 not 0/1', function(d)
    local m = dama.tensor({{0, 1, 1, 1}, {1, 0.25, 1, 1}}, 'f32')
    return adaptive(d and m:cuda() or m, d and loss:cuda() or loss, 0.75, 1, 'union')
  end)
  both('adaptive per-sample counts', function(d)
    local m = dama.tensor({{0, 0, 1, 1}, {1, 1, 1, 1}}, 'f32')   -- row 1: no visible patch, O = 1
    return adaptive(d and m:cuda() or m, d and loss:cuda() or loss, 0.75, 1, 'per_sample')
  end)
  both('adaptive ratio too low', function(d)
    return adaptive(d and m1:cuda() or m1, d and loss:cuda() or loss, 0.25, 0.5, 'per_sample')
  end)
  local bad = dama.tensor({{0, 3}, {5, 1}}, 'i64')   -- 5 is out of [0, 4)
  local x = dama.randn({2, 4, 3}, {device = 'cpu'})
  both('gather ids out of range', function(d)
    return function() return M.gather_forward(d and x:cuda() or x, d and bad:cuda() or bad) end
  end)
  local restore = dama.tensor({{0, 1, 2, 3}, {3, 2, -1, 0}}, 'i64')
  local mt = dama.randn({3}, {device = 'cpu'})
  local tok = dama.randn({2, 2, 3}, {device = 'cpu'})
  both('unshuffle ids out of range', function(d)
    return function() return M.unshuffle_forward(d and tok:cuda() or tok, d and mt:cuda() or mt,
                                                 d and restore:cuda() or restore) end
  end)
  both('gather_backward ids out of range', function(d)
    local dx, g, ids = dama.randn({2, 4, 3}, {device = 'cpu'}), dama.randn({2, 2, 3}, {device = 'cpu'}), bad
    if d then dx, g, ids = dx:cuda(), g:cuda(), ids:cuda() end
    return function() nn(C.dama_nn_mask_gather_backward, dx._c, g._c, ids._c, 2, 4, 2, 3) end
  end)
  both('unshuffle_backward ids out of range', function(d)
    local dt, dm, g, ids = dama.randn({2, 2, 3}, {device = 'cpu'}), dama.randn({3}, {device = 'cpu'}),
                           dama.randn({2, 4, 3}, {device = 'cpu'}), restore
    if d then dt, dm, g, ids = dt:cuda(), dm:cuda(), g:cuda(), ids:cuda() end
    return function() nn(C.dama_nn_mask_unshuffle_backward, dt._c, dm._c, g._c, ids._c, 2, 4, 2, 3) end
  end)
  both('mask_random K > L', function(d)
    local z = d and noise(2, 4, 1):cuda() or noise(2, 4, 1)
    local sh, r, k, mk = z:new_empty({2, 4}, 'i64'), z:new_empty({2, 4}, 'i64'), z:new_empty({2, 4}, 'i64'),
                         z:new_empty({2, 4}, 'f32')
    return function() nn(C.dama_nn_mask_random, mk._c, sh._c, r._c, nil, z._c, 2, 4, 5) end
  end)
  both('adaptive bad mode', function(d)
    local a, l = d and m1:cuda() or m1, d and loss:cuda() or loss
    local m2, sh = a:new_empty({2, 4}, 'f32'), a:new_empty({2, 4}, 'i64')
    return function() nn(C.dama_nn_mask_adaptive, m2._c, sh._c, nil, nil, a._c, l._c, 2, 4, 0.75, 0.5, 7) end
  end)
  -- the failed backwards left their gradients alone
  local dx0, g = dama.randn({2, 4, 3}, {device = 'cpu'}), dama.randn({2, 2, 3}, {device = 'cpu'})
  local ddx = dx0:cuda()
  expect(not pcall(nn, C.dama_nn_mask_gather_backward, ddx._c, g:cuda()._c, bad:cuda()._c, 2, 4, 2, 3), 'accepted')
  same('gather_backward wrote nothing', ddx, dx0)
  local dt0, dm0 = dama.randn({2, 2, 3}, {device = 'cpu'}), dama.randn({3}, {device = 'cpu'})
  local ddt, ddm = dt0:cuda(), dm0:cuda()
  expect(not pcall(nn, C.dama_nn_mask_unshuffle_backward, ddt._c, ddm._c, dama.randn({2, 4, 3}, {device = 'cpu'})
                     :cuda()._c, restore:cuda()._c, 2, 4, 2, 3), 'accepted')
  same('unshuffle_backward left dtokens', ddt, dt0)
  same('unshuffle_backward left dmask_token', ddm, dm0)
end)

test('the DAMA step\'s mask ops in a CUDA graph: no host wait, replays equal eager calls', function()
  need_gpu()
  local N, L, D, ratio = 4, 16, 8, 0.75
  local z = noise(N, L, 21, false):cuda()
  local loss = scores(N, L, 22):cuda()
  local x = dama.randn({N, L, D}, {device = 'cpu'}):cuda()
  local mt = dama.randn({D}, {device = 'cpu'}):cuda()
  local function step()
    local m1 = M.random(N, L, ratio, z)
    local m2 = M.adaptive(m1, loss, ratio, 0.5, 'per_sample')
    local u = M.adaptive(m1, loss, ratio, 0.5, 'union')
    local t = M.gather_forward(x, m2.ids_keep)
    return m1.mask, m2.mask, m2.ids_restore, u.ids_shuffle, t, M.unshuffle_forward(t, mt, m2.ids_restore)
  end
  local eager = {step()}
  local g = dama.cuda.graph(step)
  for i, t in ipairs(eager) do expect_eq(shape_of(g.outputs[i]), shape_of(t), 'graph output ' .. i) end
  g:replay()
  for i, t in ipairs(eager) do same('replay output ' .. i, g.outputs[i], t:cpu()) end
  -- new inputs: the replay follows them
  z:copy_(noise(N, L, 23, false):cuda())
  loss:copy_(scores(N, L, 24):cuda())
  g:replay()
  local again = {step()}
  for i, t in ipairs(again) do same('replay on new inputs, output ' .. i, g.outputs[i], t:cpu()) end
  g:destroy()
end)

test('summary', function()
  need_gpu()
  print(string.format('  %d cuda results compared bit for bit with the CPU', compared))
end)
