-- dama.data.splits: splitting a dataset into parts by 0-based index lists (each part is ds:subset(...)):
-- permutation (a Philox shuffle, reproducible for a seed), random_split (fractions or counts),
-- stratified_split (a fraction per class) and repeated_splits (n seeded splits, e.g. the paper's ten 60/40
-- fine-tuning splits).
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call
local tensor = require 'dama.tensor'

local M = {}

-- Shuffled 0-based index list from the Philox generator (reproducible for a seed).
local function permutation(n, seed)
  if n == 0 then return {} end
  local rng = ffi.new('dama_rng', {seed, 0})
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_randperm, box, n, 7, rng, ffi.new('dama_device', {0, 0}))   -- host-only: splits are index lists
  local t = tensor.Tensor._wrap(box[0])
  local p = ffi.cast('int64_t*', t:data())
  local r = {}
  for i = 1, n do r[i] = tonumber(p[i - 1]) end
  return r
end
M.permutation = permutation

-- Sample counts for parts given as fractions summing to 1 (floors, the remainder handed out one by one
-- from the first part) or as counts summing to n.
local function part_counts(parts, n, op)
  local frac, all_int = 0, true
  for _, v in ipairs(parts) do
    frac = frac + v
    if v ~= math.floor(v) then all_int = false end
  end
  local counts, total = {}, 0
  local fractional = math.abs(frac - 1) < 1e-6 and not (all_int and n == 1)
  for i, v in ipairs(parts) do
    if v < 0 then error(string.format('%s: part %d is negative (%g)', op, i, v), 3) end
    counts[i] = fractional and math.floor(v * n + 1e-9) or v
    total = total + counts[i]
  end
  if fractional then
    local i = 1
    while total < n do counts[i] = counts[i] + 1; total = total + 1; i = i % #counts + 1 end
  end
  if total ~= n then
    error(string.format('%s: parts sum to %d samples, the dataset has %d (give fractions summing to 1 or counts)',
      op, total, n), 3)
  end
  return counts
end

-- random_split(ds, {0.6, 0.4}, seed) -> {ds1, ds2}; fractions (summing to 1) or counts. Each part keeps
-- the permuted order; part.index gives the positions in ds.
function M.random_split(ds, parts, seed)
  local n = ds:size()
  local counts = part_counts(parts, n, 'random_split')
  local perm = permutation(n, seed or 0)
  local out, pos = {}, 0
  for i, c in ipairs(counts) do
    local idx = {}
    for k = 1, c do idx[k] = perm[pos + k] end
    pos = pos + c
    out[i] = ds:subset(idx)
  end
  return out
end

-- stratified_split(ds, 0.6, seed) -> {first, rest}: the fraction taken per class (rounded half up), so
-- every class keeps its proportion; both parts in ascending dataset order. Unlabelled samples (-1) are
-- a class of their own.
function M.stratified_split(ds, fraction, seed)
  if type(fraction) == 'table' then fraction = fraction[1] end
  if type(fraction) ~= 'number' or fraction < 0 or fraction > 1 then
    error('stratified_split: expected a fraction in [0, 1], got ' .. tostring(fraction), 2)
  end
  local labels = ds:label_list()
  local by_class, classes = {}, {}
  for i, l in ipairs(labels) do
    if not by_class[l] then by_class[l] = {}; classes[#classes + 1] = l end
    table.insert(by_class[l], i - 1)
  end
  table.sort(classes)
  local a, b = {}, {}
  for ci, l in ipairs(classes) do
    local members = by_class[l]
    local perm = permutation(#members, (seed or 0) * 1000003 + ci)
    local take = math.floor(#members * fraction + 0.5)
    for k, p in ipairs(perm) do
      if k <= take then a[#a + 1] = members[p + 1] else b[#b + 1] = members[p + 1] end
    end
  end
  table.sort(a); table.sort(b)
  return {ds:subset(a), ds:subset(b)}
end

-- repeated_splits(ds, {0.6, 0.4}, 10, seed[, {stratified = true}]) -> a list of n_repeats splits
-- ({part1, part2, ...} each): split r (1-based) is random_split(ds, parts, seed + r - 1), or with
-- stratified = true stratified_split(ds, parts[1], seed + r - 1) — the paper's 10 seeded 60/40
-- fine-tuning splits.
function M.repeated_splits(ds, parts, n_repeats, seed, opts)
  opts = opts or {}
  local r = {}
  for k = 1, n_repeats or 10 do
    local s = (seed or 0) + k - 1
    r[k] = opts.stratified and M.stratified_split(ds, parts[1], s) or M.random_split(ds, parts, s)
  end
  return r
end


return M
