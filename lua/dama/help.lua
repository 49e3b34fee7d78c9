-- help(f): the signature and doc of a dama function, class, module or method; help() lists the modules.
--
--   help(dama.zeros)          help(dama.nn.Linear)      help(dama.mask)      help 'Tensor:sum'
--   ?dama.optim.AdamW          (at the REPL: `?expr` is help(expr))
--
-- The doc text lives next to the code: the `--` comment lines right above a function's definition (or, for
-- a module, the comment block at the top of its file), read from the source file when asked for. A function
-- without such a comment can be given one with help.doc(fn, 'signature -- text').
local M = {}

-- The modules help() lists, in this order, with a one-line summary.
M.modules = {
  {'dama', 'tensors: creation (zeros, randn, tensor, arange, ...), random seed, save/load, memory'},
  {'dama.Tensor', 'tensor methods: x:sum(), x:matmul(y), x:view(...), x:backward(), ...'},
  {'dama.autograd', 'reverse-mode autograd: no_grad, gradcheck'},
  {'dama.nn', 'modules: Linear, LayerNorm, Attention, Block, MAE, VisionTransformer, Module'},
  {'dama.nn.functional', 'functions: linear, layer_norm, softmax, attention, losses'},
  {'dama.mask', 'MAE random and DAMA adaptive masks, strategies in Lua'},
  {'dama.models', 'the DAMA model (two MAEs + projection head) and its losses (dama.loss)'},
  {'dama.loss', 'normpix and feature losses'},
  {'dama.optim', 'AdamW, SGD, EMA, parameter groups, gradient clipping'},
  {'dama.schedule', 'learning-rate schedules (warmup cosine)'},
  {'dama.data', 'datasets, readers (TIFF, PNG, .npy), loaders, augmentation, splits'},
  {'dama.checkpoint', 'safetensors checkpoints'},
  {'dama.json', 'JSON encode/decode (cJSON): metadata, config.json, metrics.jsonl, results.json'},
  {'dama.train', 'the training loop'},
  {'dama.eval', 'features, linear probe, accuracy'},
  {'dama.plot', 'figures (Cairo; PNG/SVG/PDF): loss curves, reconstruction grids, channel composites'},
  {'dama.cairo', 'the Cairo binding dama.plot draws with: figure(w, h), fig:text/line/rect/image, fig:save(path)'},
  {'dama.config', 'recipe configuration: keys, types, command-line overrides'},
  {'dama.cuda', 'is there a GPU (available, device_count, unavailable_reason), its name, memory stats, empty_cache'},
}

local explicit = setmetatable({}, {__mode = 'k'})   -- fn -> doc text given with help.doc
local by_name = {}                                  -- 'Tensor:sum', 'dama.zeros' -> doc text

-- Give `fn` a doc text: 'signature -- text'. Returns fn.
function M.doc(fn, text)
  explicit[fn] = text
  return fn
end

-- Doc texts by qualified name, for functions made in loops or wrapped later (tensor methods, which autograd
-- replaces): docs_by_name('Tensor:', {add = 'x:add(other) -- ...'}).
function M.docs_by_name(prefix, t)
  for k, v in pairs(t) do by_name[prefix .. k] = v end
end

local file_cache = {}
local function source_lines(path)
  local lines = file_cache[path]
  if lines == nil then
    lines = false
    local f = io.open(path, 'r')
    if f then
      lines = {}
      for l in f:lines() do lines[#lines + 1] = l end
      f:close()
    end
    file_cache[path] = lines
  end
  return lines or nil
end

-- Doc text for functions whose files carry none right above them (kept here by name; a comment above the
-- definition, when one is added, is shown instead only if this table has no entry for that name).
M.docs_by_name('', {
  ['dama.autograd.raw_cat'] = 'raw_cat(tensors[, dim]) -- dama.cat without autograd recording',
  ['dama.autograd.raw_stack'] = 'raw_stack(tensors[, dim]) -- dama.stack without autograd recording',
  ['dama.nn.Module'] = 'dama.nn.Module() -- the base class of every layer: parameters, buffers, submodules, state_dict, train/eval; subclass with Module:extend(name)',
  ['dama.nn.Module:forward'] = 'm:forward(...) -- the computation of the module; m(...) calls it. Subclasses define it',
  ['dama.nn.Module:add_module'] = 'm:add_module(name, child) -- register child as the submodule m[name]; returns child',
  ['dama.nn.Module:children'] = 'm:children() -- the direct submodules, in registration order',
  ['dama.nn.Module:modules'] = 'm:modules() -- m and every submodule below it, depth first',
  ['dama.nn.Module:named_buffers'] = 'm:named_buffers() -- {{name, tensor}, ...} of every buffer (e.g. pos_embed), dotted names',
  ['dama.nn.Module:parameters'] = 'm:parameters([opts]) -- the parameter tensors (opts.trainable: only those with requires_grad)',
  ['dama.nn.Module:trainable_parameters'] = 'm:trainable_parameters() -- the parameters with requires_grad (for an optimizer)',
  ['dama.nn.Module:train'] = 'm:train([on = true]) -- training mode (dropout, drop path on) for m and its submodules; returns m',
  ['dama.nn.Module:eval'] = 'm:eval() -- evaluation mode: m:train(false); returns m',
  ['dama.nn.Module:is_module'] = 'Module.is_module(x) -- true if x is a dama.nn module instance',
  ['dama.nn.Module:state_dict_keys'] = 'm:state_dict_keys() -- the sorted names m:state_dict() would hold',
  ['dama.nn.Module:reset_parameters'] = 'm:reset_parameters() -- draw the layer\'s initial weights again (PyTorch\'s default init)',
  ['Linear:reset_parameters'] = 'm:reset_parameters() -- draw the initial weights again (PyTorch\'s default init)',
  ['Conv2d:reset_parameters'] = 'm:reset_parameters() -- draw the initial weights again (PyTorch\'s default init)',
  ['LayerNorm:reset_parameters'] = 'm:reset_parameters() -- weight 1, bias 0',
  ['Sequential:add'] = 'seq:add(m) -- append the module m (also seq:append); returns seq',
  ['Sequential:append'] = 'seq:append(m) -- append the module m; returns seq',
  ['MaskedAutoencoderViT:extra_repr'] = 'm:extra_repr() -- the one-line configuration shown when m is printed',
  ['dama.nn.is_module'] = 'dama.nn.is_module(x) -- true if x is a dama.nn module instance',
  ['dama.nn.deferred_init'] = 'deferred_init(fn, ...) -- run fn(...) building layers without their default init draws (the caller initialises them all afterwards)',
  ['dama.nn.Dropout'] = 'dama.nn.Dropout(p) -- zero elements with probability p in training mode, scaling the rest by 1/(1-p)',
  ['dama.nn.GELU'] = 'dama.nn.GELU() -- exact (erf) GELU as a module',
  ['dama.nn.ReLU'] = 'dama.nn.ReLU() -- max(x, 0) as a module',
  ['dama.nn.Identity'] = 'dama.nn.Identity() -- returns its input',
  ['dama.nn.ViT'] = 'dama.nn.ViT{img, patch, chans, dim, depth, heads, ...} -- the Vision Transformer encoder with timm names (see help(dama.nn.vit) options: mlp_ratio, drop_path, global_pool, num_classes, pos_embed); vit:forward_encoder(x, mask) -> latent, feats',
  ['dama.nn.VisionTransformer'] = 'dama.nn.VisionTransformer{...} -- = dama.nn.ViT',
  ['dama.nn.MAE'] = 'dama.nn.MAE{img, patch, chans, dim, depth, heads, dec_dim, dec_depth, dec_heads, ...} -- a masked autoencoder: m(x, mask) -> pred [N, L, p*p*C], latent, feats; m:loss(x, pred, mask) is the norm-pix loss',
  ['MaskedAutoencoderViT:unpatchify'] = 'm:unpatchify(pred) -- [N, L, p*p*C] predictions -> images [N, C, H, W]',
  ['dama.models.DAMA'] = 'dama.models.DAMA(cfg) -- the DAMA model: base_encoder and momentum_encoder (two MAEs) and projs_head, with the reference\'s checkpoint names',
  ['dama.models.dama'] = 'dama.models.dama(cfg) -- = dama.models.DAMA(cfg); cfg: a recipes/dama.lua config (arch, img, patch, chans, mask, overlap, K, beta, ...)',
  ['DAMA:load_state_dict'] = 'model:load_state_dict(sd[, strict]) -- load base_encoder.*, momentum_encoder.*, projs_head.* tensors',
  ['dama.config.new'] = 'dama.config.new(defaults) -- a recipe config: the keys and types of defaults, overridable as key=value on the command line',
  ['dama.eval.accuracy'] = 'accuracy(logits, y) -- the fraction of rows whose argmax equals the label y (i64)',
  ['dama.train.now'] = 'now() -- monotonic time in seconds (for timing steps)',
  ['dama.train.to_json'] = 'to_json(v) -- v as one line of JSON (as metrics.jsonl rows are written)',
  ['dama.train.train'] = 'train(cfg, loader, model, step[, opts]) -- the training loop: AdamW, warmup-cosine lr per step, metrics.jsonl, plots, checkpoints, exact resume and Ctrl-C/SIGTERM checkpoints',
})

-- The contiguous `--` lines right above line n (a blank line ends the block), without the dashes.
local function comment_above(lines, n)
  local out = {}
  local i = n - 1
  while i >= 1 do
    local c = lines[i]:match('^%s*%-%-%s?(.*)$')
    if not c or lines[i]:match('^%s*%-%-%[%[') then break end
    table.insert(out, 1, c)
    i = i - 1
  end
  return out
end

-- The module's header: the comment block at the top of its file.
local function header_of(lines)
  local out = {}
  for _, l in ipairs(lines) do
    local c = l:match('^%-%-%s?(.*)$')
    if not c then break end
    out[#out + 1] = c
  end
  return out
end

local function source_of(fn)
  local ok, info = pcall(debug.getinfo, fn, 'S')
  if not ok or not info or info.what ~= 'Lua' or info.source:sub(1, 1) ~= '@' then return nil end
  return source_lines(info.source:sub(2)), info.linedefined, info.source:sub(2)
end

-- {signature = 'f(a, b)' or nil, doc = {lines}} of a function, from its source; nil if it has none.
local names     -- fn/table -> qualified name
local members   -- module/class name -> sorted list of {name, value, display}

local function function_doc(fn, name)
  local text = explicit[fn] or by_name[name or ''] or (names and by_name[names[fn] or ''])
  if text then
    local sig, rest = text:match('^(.-)%s+%-%-%s+(.*)$')
    return {signature = sig or text, doc = rest and {rest} or {}}
  end
  local lines, n = source_of(fn)
  if not lines or not lines[n] then return nil end
  local params = lines[n]:match('function%s*[%w_.:]*%s*(%b())')
  local doc = comment_above(lines, n)
  return {signature = (name or '?') .. (params or '(...)'), doc = doc}
end

-- ---------------------------------------------------------------- names

local function is_class(v)
  return type(v) == 'table' and rawget(v, '_class') == v and rawget(v, '__name') ~= nil
end

local function module_value(name)
  local dama = require 'dama'
  if name == 'dama' then return dama end
  if name == 'dama.Tensor' then return dama.Tensor end
  local ok, m = pcall(require, name)
  if ok then return m end
  return nil
end

-- Does the line that defines fn name it k (function X.k( / def('k', ...)?
local function defined_as(fn, k)
  local lines, n = source_of(fn)
  local l = lines and lines[n]
  return l ~= nil and (l:find('[.:]' .. k .. '%s*[(=]') ~= nil or l:find("['\"]" .. k .. "['\"]") ~= nil)
end

local function add_members(qual, t, method_sep)
  local list = {}
  for k, v in pairs(t) do
    if type(k) == 'string' and k:sub(1, 1) ~= '_' and (type(v) == 'function' or is_class(v)) then
      local full = qual .. method_sep .. k
      if names[v] == nil or (type(v) == 'function' and defined_as(v, k) and not defined_as(v, names[v]:match('[%w_]+$'))) then
        names[v] = full   -- aliases (Tensor.mm = Tensor.matmul): the name the definition line uses
      end
      list[#list + 1] = {name = k, value = v, full = full}
    end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  members[qual] = list
  return list
end

local function build_index()
  if names then return end
  names, members = {}, {}
  for _, e in ipairs(M.modules) do
    local t = module_value(e[1])
    if type(t) == 'table' then
      names[t] = names[t] or e[1]
      local sep = e[1] == 'dama.Tensor' and ':' or '.'
      local label = e[1] == 'dama.Tensor' and 'Tensor' or e[1]
      for _, m in ipairs(add_members(label, t, sep)) do
        if is_class(m.value) then
          names[m.value] = m.full
          add_members(m.value.__name, m.value, ':')
        end
      end
    end
  end
end

-- Every public function and class of the modules help() lists: {{name = 'dama.zeros', value = fn}, ...}.
function M.public_api()
  build_index()
  local out = {}
  for _, list in pairs(members) do
    for _, m in ipairs(list) do out[#out + 1] = {name = m.full, value = m.value} end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- The doc lines of a class: its constructor's comment, else the comment above `X = Module:extend('Name')`.
local function class_doc(cls)
  local init = rawget(cls, '__init') or cls.__init
  local d = init and function_doc(init, names and names[cls])
  if d and #d.doc > 0 then return d end
  local text = names and by_name[names[cls] or '']
  if text then
    local sig, rest = text:match('^(.-)%s+%-%-%s+(.*)$')
    return {signature = sig or text, doc = rest and {rest} or {}}
  end
  if init then
    local lines = source_of(init)
    if lines then
      for i, l in ipairs(lines) do
        if l:find(":extend%(['\"]" .. tostring(cls.__name) .. "['\"]%)") then
          local c = comment_above(lines, i)
          if #c > 0 then return {signature = d and d.signature, doc = c} end
          break
        end
      end
    end
  end
  return d
end

-- A method without doc text of its own takes its parent class's (Linear:forward -> Module:forward).
local function method_doc(fn, name)
  local d = function_doc(fn, name)
  if d and #d.doc > 0 then return d end
  local cname, mname = (name or ''):match('^(.-):([%w_]+)$')
  if cname then
    for cls, q in pairs(names) do
      if is_class(cls) and (q == cname or q:match('[^.]+$') == cname) then
        local p = cls._parent
        while p do
          local f = rawget(p, mname)
          if f then
            local pd = function_doc(f, (names[p] or p.__name) .. ':' .. mname)
            if pd and #pd.doc > 0 then return {signature = d and d.signature or pd.signature, doc = pd.doc} end
          end
          p = p._parent
        end
      end
    end
  end
  return d
end

-- ---------------------------------------------------------------- text

local function indent(lines, prefix)
  local out = {}
  for _, l in ipairs(lines) do out[#out + 1] = prefix .. l end
  return table.concat(out, '\n')
end

local function first_line(fn, name)
  local d = type(fn) == 'function' and method_doc(fn, name or names[fn]) or nil
  if is_class(fn) then d = class_doc(fn) end
  return d and d.doc[1] or ''
end

local function module_text(qual, t)
  build_index()
  local parts = {}
  local path = qual ~= 'dama.Tensor' and package.searchpath(qual, package.path)
  if qual == 'dama.Tensor' then path = package.searchpath('dama.tensor', package.path) end
  local lines = path and source_lines(path)
  parts[#parts + 1] = qual
  if lines then
    local h = header_of(lines)
    if #h > 0 then parts[#parts + 1] = indent(h, '  ') end
  end
  local list = members[qual] or members[is_class(t) and t.__name or ''] or add_members(qual, t, '.')
  if #list > 0 then
    parts[#parts + 1] = ''
    for _, m in ipairs(list) do
      parts[#parts + 1] = string.format('  %-28s %s', m.full, first_line(m.value, m.full))
    end
  end
  return table.concat(parts, '\n')
end

local function class_text(cls)
  build_index()
  local name = names[cls] or ('dama.nn.' .. tostring(cls.__name))
  local parts = {}
  local d = class_doc(cls)
  local sig = d and d.signature and (d.signature:gsub('^.-(%b())', function(p) return name .. p end))
  parts[#parts + 1] = (sig and sig:gsub('%(self,?%s*', '(') or name) .. '    (class)'
  if d and #d.doc > 0 then parts[#parts + 1] = indent(d.doc, '  ') end
  local list = members[cls.__name] or add_members(cls.__name, cls, ':')
  local own = {}
  for _, m in ipairs(list) do
    if rawget(cls, m.name) ~= nil then own[#own + 1] = string.format('  %-28s %s', m.full, first_line(m.value, m.full)) end
  end
  if #own > 0 then parts[#parts + 1] = '\nmethods:\n' .. table.concat(own, '\n') end
  if cls._parent then
    local pn = names[cls._parent] or tostring(cls._parent.__name)
    parts[#parts + 1] = string.format('(and the methods of %s: help(%s))', pn, pn)
  end
  return table.concat(parts, '\n')
end

-- Resolve 'dama.nn.Linear', 'Tensor:sum', 'zeros' (a dama function) or any global path to a value.
local function resolve(s)
  build_index()
  local dama = require 'dama'
  local head, method = s:match('^(.-):([%w_]+)$')
  if head then
    local obj = resolve(head)
    if obj == nil and (head == 'Tensor' or head == 'x') then obj = dama.Tensor end
    if obj ~= nil then
      local ok, v = pcall(function() return obj[method] end)
      if ok and v ~= nil then
        if obj == dama.Tensor or dama.is_tensor(obj) then return v, 'Tensor:' .. method end
        return v
      end
    end
    return nil
  end
  for _, e in ipairs(M.modules) do if e[1] == s then return module_value(s) end end
  local obj = _G
  for part in s:gmatch('[^.]+') do
    local ok, v = pcall(function() return obj[part] end)
    if not ok or v == nil then obj = nil break end
    obj = v
  end
  if obj ~= nil then return obj end
  local ok, v = pcall(function() return dama[s] end)
  if ok and v ~= nil then return v end
  if dama.Tensor[s] then return dama.Tensor[s], 'Tensor:' .. s end
  return nil
end

-- The help text of x (a value, or a name as a string); nil and a message if there is none.
function M.text(x, label)
  build_index()
  if x == nil then
    local out = {'dama modules (help(module) lists its functions; help(f) shows one; ?f at the REPL):'}
    for _, e in ipairs(M.modules) do out[#out + 1] = string.format('  %-20s %s', e[1], e[2]) end
    return table.concat(out, '\n')
  end
  if type(x) == 'string' and label == nil then
    local v, l = resolve(x)
    if v == nil then return nil, string.format("help: no dama function, module or method named '%s'", x) end
    return M.text(v, l or x)
  end
  if type(x) == 'function' then
    local d = method_doc(x, (label and by_name[label]) and label or names[x] or label)
    if not d then
      return nil, string.format('help: %s has no doc text (a C or built-in function)', label or names[x] or tostring(x))
    end
    if #d.doc == 0 then return d.signature .. '\n  (no doc text)' end
    return d.signature .. '\n' .. indent(d.doc, '  ')
  end
  if is_class(x) then return class_text(x) end
  local dama = require 'dama'
  if dama.is_tensor(x) then return M.text(dama.Tensor) .. '\n\n(a tensor: ' .. x:shape_string() .. ')' end
  if type(x) == 'table' and rawget(x, '_modules') and getmetatable(x) and is_class(getmetatable(x)) then
    return class_text(getmetatable(x))
  end
  if type(x) == 'table' then
    build_index()
    return module_text(names[x] or label or 'table', x)
  end
  return nil, string.format('help: %s is a %s, not a function, module or method', label or tostring(x), type(x))
end

-- Does fn have doc text (a comment above its definition or help.doc)?
function M.has_doc(fn, name)
  build_index()
  local d
  if is_class(fn) then d = class_doc(fn)
  elseif type(fn) == 'function' then d = method_doc(fn, name or names[fn]) end
  return d ~= nil and #d.doc > 0
end

-- help(x): print the help text of x; help() lists the modules.
function M.help(...)
  if select('#', ...) == 0 then print(M.text()) return end
  local x = ...
  if x == nil then print('help: the value is nil (no such function or module?); help() lists the modules') return end
  local s, err = M.text(x)
  print(s or err)
end

-- `?expr` at the REPL: help for a name ('dama.zeros', 'x:sum', 'Tensor:view') or the value of an expression.
function M.expr(s)
  s = s:match('^%s*(.-)%s*$')
  if s == '' then return M.help() end
  local v, l = resolve(s)
  if v ~= nil then
    local t, err = M.text(v, l or s)
    print(t or err)
    return
  end
  local f = loadstring('return ' .. s, '=?')
  local ok, val = false, nil
  if f then ok, val = pcall(f) end
  if ok and val ~= nil then
    local t, err = M.text(val, s)
    print(t or err)
  else
    print(string.format("help: no dama function, module or method named '%s'; help() lists the modules", s))
  end
end

return setmetatable(M, {__call = function(_, ...) return M.help(...) end})
