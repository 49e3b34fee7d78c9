-- dama.json: the one JSON codec (cJSON through lua/json.c) behind checkpoints, config.json, metrics.jsonl
-- and results.json.
local dama = require 'dama'
local json = dama.json

test('every writer shares the one codec', function()
  expect(dama.checkpoint.json_encode == json.encode, 'checkpoint.json_encode is dama.json.encode')
  expect(dama.checkpoint.json_decode == json.decode, 'checkpoint.json_decode is dama.json.decode')
  expect(require('dama.train').json_encode == json.encode, 'train.json_encode is dama.json.encode')
end)

test('round trip of nested values; keys sorted; integers as integers', function()
  local v = {b = {1, 2.5, -3e-9, {x = true}}, a = 'x\n"y"\\\t\1', c = false, big = 2^53 - 1, neg = -7, e = {}}
  local s = json.encode(v)
  expect_eq(s:sub(1, 6), '{"a":"')
  expect(s:find('"big":9007199254740991', 1, true), s)
  expect(s:find('"neg":-7', 1, true), s)
  local back = json.decode(s)
  expect_eq(back.a, v.a); expect_eq(back.b[1], 1); expect_eq(back.b[3], -3e-9); expect_eq(back.b[4].x, true)
  expect_eq(back.c, false); expect_eq(back.big, 2^53 - 1); expect_eq(back.neg, -7)
  expect_eq(type(back.e), 'table')
  expect_eq(json.encode({}), '{}')
  expect_eq(json.encode({1, 2, x = 3}), '{"1":1,"2":2,"x":3}')
  expect_eq(json.encode(-0.0), '0')
end)

test('doubles round-trip exactly', function()
  dama.manual_seed(3)
  local xs = dama.randn(200):totable()
  xs[#xs + 1] = 0.1; xs[#xs + 1] = 1 / 3; xs[#xs + 1] = 1e300; xs[#xs + 1] = 5e-324; xs[#xs + 1] = 2^60
  for _, x in ipairs(xs) do
    local y = x * 1.2345678901234567
    expect(json.decode(json.encode(y)) == y, string.format('%.17g did not round-trip: %s', y, json.encode(y)))
  end
end)

test('64-bit integers (RNG states) as decimal strings', function()
  expect_eq(json.encode(dama.ffi.new('uint64_t', 18446744073709551615ULL)), '"18446744073709551615"')
  expect_eq(json.encode({s = dama.ffi.new('int64_t', -5)}), '{"s":"-5"}')
end)

test('unicode: escapes decode to UTF-8, UTF-8 passes through', function()
  expect_eq(json.decode('"\\u00e9\\ud83d\\ude00"'), '\195\169\240\159\152\128')
  expect_eq(json.decode(json.encode('\195\169')), '\195\169')
end)

test('null decodes to nil: an absent key, a hole in an array', function()
  local v = json.decode('{"a":null,"b":[1,null,3]}')
  expect_eq(v.a, nil); expect_eq(v.b[1], 1); expect_eq(v.b[2], nil); expect_eq(v.b[3], 3)
  expect_eq(json.encode(nil), 'null')
end)

test('values JSON cannot hold are refused with their path', function()
  expect_error(function() json.encode({x = {y = {0 / 0}}}) end, 'cannot encode nan .* at %.x%.y%[1%]')
  expect_error(function() json.encode({lr = math.huge}) end, 'inf .* at %.lr')
  expect_error(function() json.encode({w = dama.ones(2)}) end, 'tensor .* at %.w')
  expect_error(function() json.encode({f = print}) end, 'function at %.f')
  expect_error(function() json.encode({s = 'a\0b'}) end, 'NUL byte at %.s')
  expect_error(function() json.encode({[1] = 1, ['1'] = 2}) end, "key '1' both")
  expect_error(function() json.encode({[true] = 1}) end, 'keys are not all strings')
  local t = {}; t.me = {t}
  expect_error(function() json.encode(t) end, 'contains itself at %.me%[1%]')
  local deep = {}
  for _ = 1, 300 do deep = {deep} end
  expect_error(function() json.encode(deep) end, 'nested more than 200')
  -- the same table twice (not a cycle) is fine
  local shared = {1}
  expect_eq(json.encode({a = shared, b = shared}), '{"a":[1],"b":[1]}')
end)

test('bad text names the byte', function()
  expect_error(function() json.decode('{"a":1,}') end, 'json: invalid JSON at byte 8')
  expect_error(function() json.decode('{"a":1} x') end, 'trailing characters at byte 9')
  expect_error(function() json.decode('') end, 'empty text')
  expect_error(function() json.decode('  \n') end, 'empty text')
  expect_error(function() json.decode('[1, 2') end, 'invalid JSON')
  expect_error(function() json.decode('NaN') end, 'invalid JSON')
  expect_error(function() json.decode(3) end, 'expected a string, got number')
  expect_eq(json.decode(' [1] \n'), {1})
  -- garbage never crashes
  dama.manual_seed(1)
  local bytes = dama.randint(0, 256, {4000}):totable()
  for i = 1, #bytes, 40 do
    local chunk = {}
    for k = i, math.min(i + 39, #bytes) do chunk[#chunk + 1] = string.char(bytes[k]) end
    pcall(json.decode, '{"a":' .. table.concat(chunk))
  end
end)

test('metrics.jsonl rows keep their shape', function()
  local row = dama.train.to_json({step = 12, epoch = 0, epoch_f = 0.5, lr = 1.5e-4, loss = 0.724})
  expect_eq(row, '{"epoch":0,"epoch_f":0.5,"loss":0.724,"lr":0.00015,"step":12}')
end)
