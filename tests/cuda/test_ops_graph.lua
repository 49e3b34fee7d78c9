-- CUDA graphs (dama.cuda.graph): capture records without running, replays redo the captured work on the captured
-- tensors, host reads inside a capture are refused by name, the graph's memory is its own, and random numbers drawn
-- inside a capture are fresh at each replay and equal to the eager sequence. Runs on the interpreter build (whose
-- capture refuses what CUDA refuses) and, label gpu, on a real device; without one every case is SKIPPED.
local dama = require 'dama'

local function need_gpu()
  if not dama.cuda.is_built() then skip('SKIPPED (this build has no CUDA backend)') end
  if not dama.cuda.available() then skip('SKIPPED (no CUDA device): ' .. dama.cuda.unavailable_reason()) end
end

local function bits_equal(a, b) return a:cpu():ne(b:cpu()):sum():item() == 0 end

test('a capture runs nothing; each replay redoes the captured work on the captured tensors', function()
  need_gpu()
  local x = dama.tensor({1, 2, 3, 4, 5}, {device = 'cuda'})
  local g = dama.cuda.graph(function()
    x:add_(1)
    return x * 2 + 1
  end)
  local y = g.outputs[1]
  expect_eq(y.device, 'cuda:0')
  expect(bits_equal(x, dama.tensor({1, 2, 3, 4, 5})), 'the capture changed x')
  expect(g:info().nodes >= 2, 'the graph holds the captured kernels: ' .. g:info().nodes)
  for rep = 1, 3 do
    g:replay()
    expect(bits_equal(x, dama.tensor({1, 2, 3, 4, 5}) + rep), 'x after replay ' .. rep)
    expect(bits_equal(y, (dama.tensor({1, 2, 3, 4, 5}) + rep) * 2 + 1), 'the output after replay ' .. rep)
  end
  expect_eq(g:info().replays, 3)
  x:copy_(dama.tensor({10, 20, 30, 40, 50}))   -- new input data: the next replay uses it
  g:replay()
  expect(bits_equal(y, dama.tensor({23, 43, 63, 83, 103})), 'a replay on new input data')
  g:destroy()
  expect_error(function() g:replay() end, 'destroyed')
end)

test('a host read inside the capture is refused by name, and the device works on afterwards', function()
  need_gpu()
  local x = dama.rand(64, {device = 'cuda'})
  local msg = expect_error(function()
    dama.cuda.graph(function() return x:sum():item() end)
  end, 'while a CUDA graph is being captured')
  expect(msg:find('cuda:0', 1, true), msg)
  expect_close((x + 1):sum():item(), x:sum():item() + 64, 1e-3)
  local g = dama.cuda.graph(function() return x:mul(3) end)   -- a new capture works
  g:replay()
  expect(bits_equal(g.outputs[1], x * 3), 'a capture after a failed one')
  g:destroy()
  expect_error(function() dama.cuda.graph(42) end, 'expected a function')
end)

test('memory allocated after the capture never aliases the graph\'s temporaries', function()
  need_gpu()
  local x = dama.rand(4096, {device = 'cuda'})
  local g = dama.cuda.graph(function()
    local t = x * 3 + 1          -- temporaries freed inside the capture
    local u = (t * t):sub(2)
    return u:sum()
  end)
  collectgarbage(); collectgarbage()
  local z = dama.full({4096}, 7, {device = 'cuda'})   -- eager, after the capture
  local w = dama.full({4096}, 9, {device = 'cuda'})
  for _ = 1, 2 do g:replay() end
  expect(bits_equal(z, dama.full({4096}, 7)), 'an eager tensor was overwritten by a replay')
  expect(bits_equal(w, dama.full({4096}, 9)), 'an eager tensor was overwritten by a replay')
  local want = ((x * 3 + 1) * (x * 3 + 1)):sub(2):sum()
  expect_close(g.outputs[1]:item(), want:item(), 1e-5)
  g:destroy()
end)

test('random numbers inside a capture are fresh at every replay and equal the eager sequence', function()
  need_gpu()
  dama.manual_seed(123)
  local e1 = dama.rand(1000, {device = 'cuda'}):cpu()
  local n1 = dama.randn(333, {device = 'cuda'}):cpu()
  local e2 = dama.rand(1000, {device = 'cuda'}):cpu()
  local n2 = dama.randn(333, {device = 'cuda'}):cpu()
  local after = dama.rand(5, {device = 'cuda'}):cpu()
  dama.manual_seed(123)
  local g = dama.cuda.graph(function()
    return dama.rand(1000, {device = 'cuda'}), dama.randn(333, {device = 'cuda'})
  end)
  g:replay()
  expect(bits_equal(g.outputs[1], e1) and bits_equal(g.outputs[2], n1), 'replay 1 = the first eager draws')
  g:replay()
  expect(bits_equal(g.outputs[1], e2) and bits_equal(g.outputs[2], n2), 'replay 2 = the second eager draws')
  expect(bits_equal(dama.rand(5, {device = 'cuda'}), after), 'the generator continues where eager calls would')
  g:destroy()
end)

test('cuda_graph=true trains exactly as the eager run: the same losses and the same weights', function()
  need_gpu()
  local R = dofile('recipes/dama.lua')
  local function run(graph)
    local out = os.tmpname()
    os.remove(out)
    local cfg = R.config({}, {'preset=tiny', 'device=cuda', 'cuda_graph=' .. tostring(graph), 'out=' .. out,
                              'max_steps=5', 'workers=0', 'log_every=1'})
    local _, model = R.run(cfg)
    local rows = {}
    for line in io.lines(out .. '/metrics.jsonl') do
      local r = dama.json.decode(line)
      if r.step then rows[#rows + 1] = r end
    end
    os.execute("rm -rf '" .. out .. "'")
    return rows, model:state_dict()
  end
  local eager_rows, eager_sd = run(false)
  local graph_rows, graph_sd = run(true)
  expect_eq(#graph_rows, #eager_rows)
  expect_eq(#eager_rows, 5)
  for i, r in ipairs(eager_rows) do
    for _, k in ipairs{'total', 'recon1', 'recon2', 'feature'} do
      expect_eq(graph_rows[i][k], r[k], string.format('step %d, %s', i, k))
    end
  end
  local n = 0
  for k, v in pairs(eager_sd) do
    expect(bits_equal(graph_sd[k], v), 'weights differ: ' .. k)
    n = n + 1
  end
  expect(n > 10, 'compared ' .. n .. ' tensors')
end)
