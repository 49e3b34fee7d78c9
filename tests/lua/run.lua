-- Lua test runner: dama tests/lua/run.lua FILE... [--filter PATTERN] [--device DEV]
--   --device sim: run the cases with DEV as the default device (dama.set_default_device), so every tensor a test
--   makes without naming a device lives there; `test_device` holds its name ('cpu' otherwise).
--
-- A test file registers cases with the globals below and returns nothing:
--   test('adds', function() expect_eq(1 + 1, 2) end)
--   test('gpu only', function() skip('no GPU') end)
-- Helpers: expect(cond, msg), expect_eq(a, b), expect_close(a, b, tol) (numbers, tables or tensors),
-- expect_error(fn, pattern) (returns the message), skip(why).
-- Prints one line per case and "N passed, N failed, N skipped"; exits 1 on failure, 77 if all skipped.
local dama = require 'dama'

local cases = {}
local SKIP = {}

function test(name, fn) cases[#cases + 1] = {name = name, fn = fn} end
function skip(why) error(setmetatable({why = why}, SKIP), 0) end

local function describe(v)
  if dama.is_tensor(v) then return v:summary() .. '\n' .. tostring(v) end
  if type(v) == 'table' then
    local parts = {}
    for i = 1, #v do parts[i] = describe(v[i]) end
    return '{' .. table.concat(parts, ', ') .. '}'
  end
  return tostring(v)
end

function expect(cond, msg)
  if not cond then error(msg or 'expectation failed', 2) end
end

function expect_eq(a, b, msg)
  if dama.is_tensor(a) then a = a:totable() end
  if dama.is_tensor(b) then b = b:totable() end
  local function eq(x, y)
    if type(x) == 'table' and type(y) == 'table' then
      if #x ~= #y then return false end
      for i = 1, #x do if not eq(x[i], y[i]) then return false end end
      for k, v in pairs(x) do if type(k) ~= 'number' and not eq(v, y[k]) then return false end end
      return true
    end
    return x == y
  end
  if not eq(a, b) then
    error(string.format('%sexpected %s, got %s', msg and (msg .. ': ') or '', describe(b), describe(a)), 2)
  end
end

-- |a - b| <= tol * (1 + |b|) elementwise
function expect_close(a, b, tol, msg)
  tol = tol or 1e-6
  local worst, where = 0, nil
  local function cmp(x, y, path)
    if dama.is_tensor(x) then x = x:totable() end
    if dama.is_tensor(y) then y = y:totable() end
    if type(x) == 'table' then
      if type(y) ~= 'table' or #x ~= #y then
        error(string.format('%sshape mismatch at %s', msg and (msg .. ': ') or '', path), 4)
      end
      for i = 1, #x do cmp(x[i], y[i], path .. '[' .. i .. ']') end
      return
    end
    local err = math.abs(x - y) / (1 + math.abs(y))
    if err ~= err then err = math.huge end
    if err > worst then worst, where = err, string.format('%s: %.9g vs %.9g', path, x, y) end
  end
  cmp(a, b, 'value')
  if worst > tol then
    error(string.format('%snot close (rel err %.3g > %.3g) at %s', msg and (msg .. ': ') or '', worst, tol, where), 2)
  end
end

function expect_error(fn, pattern)
  local ok, err = pcall(fn)
  if ok then error('expected an error' .. (pattern and (' matching "' .. pattern .. '"') or ''), 2) end
  err = tostring(err)
  if pattern and not err:find(pattern, 1, true) and not err:find(pattern) then
    error(string.format('error "%s" does not match "%s"', err, pattern), 2)
  end
  return err
end

local files, filter = {}, nil
local i = 1
while i <= #arg do
  if arg[i] == '--filter' then filter = arg[i + 1]; i = i + 1
  elseif arg[i] == '--device' then dama.set_default_device(arg[i + 1]); i = i + 1
  else files[#files + 1] = arg[i] end
  i = i + 1
end

test_device = dama.get_default_device()
local passed, failed, skipped = 0, 0, 0
for _, file in ipairs(files) do
  cases = {}
  local chunk, err = loadfile(file)
  if not chunk then
    print('FAIL ' .. file .. ': ' .. err); failed = failed + 1
  else
    local ok, lerr = xpcall(chunk, debug.traceback)
    if not ok then print('FAIL loading ' .. file .. ': ' .. lerr); failed = failed + 1 end
  end
  for _, c in ipairs(cases) do
    if not filter or c.name:find(filter, 1, true) then
      local ok, e = xpcall(c.fn, function(m)
        if getmetatable(m) == SKIP then return m end
        return debug.traceback(tostring(m), 2)
      end)
      if ok then passed = passed + 1; print('ok   ' .. c.name)
      elseif getmetatable(e) == SKIP then skipped = skipped + 1; print('SKIP ' .. c.name .. ': ' .. e.why)
      else failed = failed + 1; print('FAIL ' .. c.name .. '\n  ' .. tostring(e):gsub('\n', '\n  ')) end
      collectgarbage()
    end
  end
end
print(string.format('%d passed, %d failed, %d skipped', passed, failed, skipped))
os.exit(failed > 0 and 1 or ((skipped > 0 and passed == 0) and 77 or 0))
