-- dama.data.augment: the reference's augmentations of one H x W x C image (u8 / u16 / f32) in C:
-- augment_train (the training augmentation, seeded per epoch and index) and augment_val (centre crop and
-- INTER_AREA resize). Both give f32 C x out x out scaled like ToTensor. The loader runs the same code in its
-- workers; these are for single images (tests, figures, builders).
local dffi = require 'dama.ffi'
local ffi, C, call = dffi.ffi, dffi.C, dffi.call
local tensor = require 'dama.tensor'

local M = {}

-- The reference's training augmentation of one H x W x C image (u8 / u16 / f32): f32 C x out x out.
function M.augment_train(img, out_size, seed, epoch, index)
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_aug_train_tensor, box, img._c, out_size, seed or 0, epoch or 0, index or 0)
  return tensor.Tensor._wrap(box[0])
end

-- The reference's validation transform: centre crop (crop <= 0: out * 3 / 8), INTER_AREA resize to out.
function M.augment_val(img, crop, out_size)
  local box = ffi.new('dama_tensor*[1]')
  call(C.dama_aug_val_tensor, box, img._c, crop or 0, out_size)
  return tensor.Tensor._wrap(box[0])
end

return M
