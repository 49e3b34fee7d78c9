-- dama.nn.init: in-place weight initialisers with torch.nn.init's names and formulas, drawing from
-- dama's Philox generator (dama.manual_seed). Each returns its tensor. They work on views too
-- (xavier_uniform_(w:view(D, -1)) fills w), and never record autograd nodes.
--
-- Fans follow PyTorch: for a tensor [out, in, k...], fan_in = in * prod(k), fan_out = out * prod(k).
local tensor = require 'dama.tensor'

local init = {}

local function fans(t, op)
  local s = t:size()
  if #s < 2 then
    error(string.format('%s: fan in/out need a tensor with at least 2 dims, got shape [%s]', op,
      table.concat(s, ', ')), 3)
  end
  local rf = 1
  for i = 3, #s do rf = rf * s[i] end
  return s[2] * rf, s[1] * rf
end
init.calculate_fans = function(t) return fans(t, 'calculate_fans') end

-- gain for a nonlinearity, as torch.nn.init.calculate_gain
function init.calculate_gain(nonlinearity, param)
  if nonlinearity == nil or nonlinearity == 'linear' or nonlinearity == 'sigmoid' or nonlinearity:match('^conv') then
    return 1
  elseif nonlinearity == 'tanh' then return 5 / 3
  elseif nonlinearity == 'relu' then return math.sqrt(2)
  elseif nonlinearity == 'leaky_relu' then
    local a = param or 0.01
    return math.sqrt(2 / (1 + a * a))
  elseif nonlinearity == 'selu' then return 3 / 4
  end
  error("calculate_gain: unknown nonlinearity '" .. tostring(nonlinearity) .. "'", 2)
end

function init.uniform_(t, a, b) return t:uniform_(a or 0, b or 1) end
function init.normal_(t, mean, std) return t:normal_(mean or 0, std or 1) end
function init.constant_(t, v) return t:fill_(v) end
function init.zeros_(t) return t:fill_(0) end
function init.ones_(t) return t:fill_(1) end

-- U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))
function init.xavier_uniform_(t, gain)
  local fi, fo = fans(t, 'xavier_uniform_')
  local b = (gain or 1) * math.sqrt(6 / (fi + fo))
  return t:uniform_(-b, b)
end

function init.xavier_normal_(t, gain)
  local fi, fo = fans(t, 'xavier_normal_')
  return t:normal_(0, (gain or 1) * math.sqrt(2 / (fi + fo)))
end

-- U(-b, b), b = gain(nonlinearity, a) * sqrt(3 / fan). PyTorch's Linear/Conv default is a = sqrt(5),
-- which gives b = 1 / sqrt(fan_in).
function init.kaiming_uniform_(t, a, mode, nonlinearity)
  local fi, fo = fans(t, 'kaiming_uniform_')
  local fan = (mode == 'fan_out') and fo or fi
  local gain = init.calculate_gain(nonlinearity or 'leaky_relu', a or 0)
  local b = gain * math.sqrt(3 / fan)
  return t:uniform_(-b, b)
end

function init.kaiming_normal_(t, a, mode, nonlinearity)
  local fi, fo = fans(t, 'kaiming_normal_')
  local fan = (mode == 'fan_out') and fo or fi
  local gain = init.calculate_gain(nonlinearity or 'leaky_relu', a or 0)
  return t:normal_(0, gain / math.sqrt(fan))
end

-- N(mean, std) truncated to [a, b] (absolute bounds, as torch/timm trunc_normal_), by redrawing
-- the values that fall outside.
function init.trunc_normal_(t, mean, std, a, b)
  mean, std, a, b = mean or 0, std or 1, a or -2, b or 2
  if not (a < b) then error(string.format('trunc_normal_: expected a < b, got a = %g, b = %g', a, b), 2) end
  local n = t:numel()
  local buf = tensor.empty(n, {device = 'cpu'})   -- drawn and redrawn on the host, then copied to t's device
  buf:normal_(mean, std)
  local p = buf:data()
  for i = 0, n - 1 do
    local tries = 0
    while p[i] < a or p[i] > b do
      tries = tries + 1
      if tries > 1000 then
        error(string.format('trunc_normal_: [%g, %g] holds almost no mass of N(%g, %g)', a, b, mean, std), 2)
      end
      p[i] = tensor.randn(1, {device = 'cpu'}):mul_(std):add_(mean):item()
    end
  end
  t:copy_(buf:view(t:size()))
  return t
end

-- PyTorch's default for Linear / Conv weights and biases: weight kaiming_uniform(a = sqrt 5) =
-- U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in)).
function init.default_linear_(weight, bias)
  init.kaiming_uniform_(weight, math.sqrt(5))
  if bias then
    local fi = fans(weight, 'default_linear_')
    local bnd = fi > 0 and 1 / math.sqrt(fi) or 0
    bias:uniform_(-bnd, bnd)
  end
  return weight, bias
end

return init
