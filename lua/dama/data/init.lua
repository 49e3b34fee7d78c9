-- dama.data: datasets and the threaded loader (C workers decode and augment; runtime/api/data.h).
--
--   local ds = dama.data.ImageFolder('cells/train')          -- root/<class>/*.tif|png, labels from sorted names
--   local ds = dama.data.npy('cells.npy', {labels = 'labels.npy'})   -- N x H x W x C, memory-mapped
--   local ds = dama.data.synthetic{n = 30000, seed = 1}       -- built-in 7-channel multiplex cells
--   ds = ds:select_channels{'DAPI', 'NeuN'}                   -- by OME / generator name, or {0, 2} by index
--   local train, val = unpack(dama.data.random_split(ds, {0.6, 0.4}, seed))
--   for r, s in ipairs(dama.data.repeated_splits(ds, {0.6, 0.4}, 10, seed)) do ... s[1], s[2] ... end
--   local loader = dama.data.loader(train, {batch = 64, pipeline = 'train', out_size = 128, workers = 2})
--   for x, y, i in loader:epoch() do ... end                  -- x f32 [B, C, 128, 128], y i64 [B]
--
-- Datasets are descriptions (file lists, an array, or the synthetic generator), cheap to subset and
-- split; the loader turns one into batches. Batches are identical for a seed whatever the number of
-- workers; loader:cursor() / loader:set_cursor() give exact resume.
--
-- Every dataset has:
--   ds:size() (#ds), ds:label_list() (Lua array of class indices, -1 = unlabelled), ds.classes (names or
--   nil), ds.index (positions in the dataset it was derived from by subset/split, 0-based; nil for a
--   root dataset), ds.channels (0-based source channel indices in output order, nil = all),
--   ds:num_channels() (channels the loader will produce), ds:subset(indices), ds:select_channels(sel).
--
-- Single images (H x W x C tensors in the file's dtype; outputs of the augmentations are f32 C x H x W
-- scaled like ToTensor):
--   dama.data.read(path), dama.data.read_f32(path[, expect_c]), dama.data.write(path, t),
--   dama.data.info(path), dama.data.ome_channel_names(path),
--   dama.data.augment_train(img, out_size, seed, epoch, index), dama.data.augment_val(img, crop, out_size),
--   dama.data.read_window(path, x, y, w, h[, channels]) (TIFF, bounded memory), dama.data.write_tiff_fast(path, t)
--   (uncompressed, no fsync: for many small files).
-- For builders (datasets/): dama.data.npy_writer(path, dtype, row_shape) (row by row, bounded memory) and
-- dama.data.progress(total, unit) (a progress bar with rate and ETA).

-- The code, one concern per file under dama/data/ (this file only assembles the dama.data table):
--   io.lua          image and file I/O: info, ome_channel_names, read, read_f32, read_window, write,
--                   write_tiff_fast, load_npy, is_dir, exists, read_lines
--   augment.lua     augment_train, augment_val (one image)
--   channels.lua    channel_names, split_names, resolve_channels and the Dataset channel methods
--   dataset.lua     the Dataset class (subset, ...), concat, ImageFolder, npy, array, synthetic
--   splits.lua      permutation, random_split, stratified_split, repeated_splits
--   loader.lua      the threaded loader: loader, the Loader methods, cells (a recipe's pretraining data)
--   npy_writer.lua  npy_writer (a .npy written row by row)
--   progress.lua    progress (a progress bar), wall_time
local dio = require 'dama.data.io'
local augment = require 'dama.data.augment'
local channels = require 'dama.data.channels'
local dataset = require 'dama.data.dataset'
local splits = require 'dama.data.splits'
local loader = require 'dama.data.loader'
local npy_writer = require 'dama.data.npy_writer'
local progress = require 'dama.data.progress'

local D = {}

-- datasets
D.Dataset = dataset.Dataset
D.ImageFolder = dataset.ImageFolder
D.npy = dataset.npy
D.array = dataset.array
D.synthetic = dataset.synthetic
D.concat = dataset.concat

-- single images and files
D.info = dio.info
D.ome_channel_names = dio.ome_channel_names
D.read = dio.read
D.read_f32 = dio.read_f32
D.write = dio.write
D.write_tiff_fast = dio.write_tiff_fast
D.read_window = dio.read_window
D.load_npy = dio.load_npy
D.is_dir = dio.is_dir
D.exists = dio.exists
D.read_lines = dio.read_lines
D.augment_train = augment.augment_train
D.augment_val = augment.augment_val

-- channels
D.channel_names = channels.channel_names
D.split_names = channels.split_names
D.resolve_channels = channels.resolve_channels

-- splits
D.permutation = splits.permutation
D.random_split = splits.random_split
D.stratified_split = splits.stratified_split
D.repeated_splits = splits.repeated_splits

-- the loader
D.Loader = loader.Loader
D.loader = loader.loader
D.cells = loader.cells

-- writing sets
D.npy_writer = npy_writer.npy_writer
D.progress = progress.progress
D.wall_time = progress.wall_time

return D
