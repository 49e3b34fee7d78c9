-- Creation functions given impossible shapes: the error names the function the user called and the
-- shape, never an internal helper (`empty: tensor too large` before).
local dama = require 'dama'

test('huge shapes name the creation function and the shape', function()
  local big = 2 ^ 31
  local cases = {
    {'randn', function() return dama.randn(big, big, big) end},
    {'rand', function() return dama.rand(big, big, big) end},
    {'randint', function() return dama.randint(0, 10, {big, big, big}) end},
    {'zeros', function() return dama.zeros(big, big, big) end},
    {'ones', function() return dama.ones(big, big, big) end},
    {'empty', function() return dama.empty(big, big, big) end},
    {'full', function() return dama.full({big, big, big}, 1) end},
  }
  for _, c in ipairs(cases) do
    local e = expect_error(c[2], '^' .. c[1] .. ': shape %[2147483648, 2147483648, 2147483648%] has 2%^93 elements')
    expect(e:find('2^60', 1, true), e)
  end
end)

test('a zero-size dim beside a huge one is refused, not an overflow', function()
  local e = expect_error(function() return dama.zeros(0, 2 ^ 62, 4) end,
    '^zeros: shape %[0, 4611686018427387904, 4%] is too large')
  expect(e:find('2^64', 1, true), e)
  local z = dama.zeros(0, 4)
  expect_error(function() return z:reshape(0, 2 ^ 62, 4) end, '^reshape: shape %[0, 4611686018427387904, 4%]')
end)
