-- dama.eval: feature extraction and the linear probe.
local dama = require 'dama'

test('linear probe separates separable features and not random labels', function()
  dama.manual_seed(5)
  local centers = dama.randn(3, 8) * 3
  local function make(n)
    local y = dama.randint(0, 3, {n})
    local x = centers:index_select(0, y) + dama.randn(n, 8)
    return x, y
  end
  local xtr, ytr = make(300)
  local xte, yte = make(200)
  local acc = dama.eval.linear_probe(xtr, ytr, xte, yte, {epochs = 30, lr = 1e-2})
  expect(acc > 90, 'separable accuracy ' .. acc)
  local acc_rand = dama.eval.linear_probe(xtr, dama.randint(0, 3, {300}), xte, dama.randint(0, 3, {200}),
                                          {epochs = 30, lr = 1e-2})
  expect(acc_rand < 60, 'random-label accuracy ' .. acc_rand)
end)

test('features of a ViT encoder over a loader', function()
  local vit = dama.nn.MAE{img = 32, patch = 8, chans = 7, dim = 32, depth = 1, heads = 2, dec_dim = 32, dec_depth = 1,
                          dec_heads = 2}
  local ds = dama.data.synthetic{n = 20, seed = 3, crop = 25}
  local loader = dama.data.loader(ds, {batch = 8, pipeline = 'resize', out_size = 32, shuffle = false,
                                       drop_last = false, workers = 0})
  local f, y = dama.eval.features(vit, loader)
  expect_eq(f.shape, {20, 32}); expect_eq(y.shape, {20})
  local f2 = dama.eval.features(vit, loader, {pool = 'cls'})
  expect_eq(f2.shape, {20, 32})
end)

test('encoder_prefix: a dama branch, a plain timm file, and a misspelt branch is an error listing the branches', function()
  local dir = os.tmpname(); os.remove(dir); os.execute('mkdir -p ' .. dir)
  local vit = dama.nn.ViT{img = 16, patch = 8, chans = 1, dim = 16, depth = 1, heads = 2}
  local sd = vit:state_dict()
  local dama_file, timm_file = dir .. '/d.safetensors', dir .. '/t.safetensors'
  local pre = {}
  for k, v in pairs(sd) do pre['base_encoder.' .. k] = v; pre['momentum_encoder.' .. k] = v end
  dama.save(dama_file, pre)
  dama.save(timm_file, sd)
  expect_eq(dama.eval.encoder_prefix(dama_file, 'base_encoder'), 'base_encoder.')
  expect_eq(dama.eval.encoder_prefix(dama_file, 'momentum_encoder'), 'momentum_encoder.')
  expect_eq(dama.eval.encoder_prefix(timm_file, 'base_encoder'), '')
  expect_error(function() dama.eval.encoder_prefix(dama_file, 'base_encodr') end,
    "has no encoder branch 'base_encodr'; it has: base_encoder, momentum_encoder")
  -- a model of another layout: every missing or mis-shaped tensor by name
  local other = dama.nn.ViT{img = 16, patch = 8, chans = 1, dim = 32, depth = 1, heads = 2, global_pool = 'avg', num_classes = 3}
  local rep = other:load_pretrained(dama.load(dama_file), {prefix = 'base_encoder.'})
  expect_error(function() dama.eval.check_load(rep, dama_file, {'^head%.', '^fc_norm%.'}, {'^norm%.'}) end,
    'wrong shape: .*patch_embed.proj.weight')
  local ok_model = dama.nn.ViT{img = 16, patch = 8, chans = 1, dim = 16, depth = 1, heads = 2, global_pool = 'avg', num_classes = 3}
  dama.eval.check_load(ok_model:load_pretrained(dama.load(dama_file), {prefix = 'base_encoder.'}), dama_file,
    {'^head%.', '^fc_norm%.'}, {'^norm%.'})
  os.execute('rm -rf ' .. dir)
end)
