#!/usr/bin/env bash
# Every recipe runs end to end on the built-in synthetic data with a tiny configuration.
set -u
DAMA=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
fail=0 passed=0
run() { # name expected-regex command...
  local name=$1 want=$2; shift 2
  local out
  out=$("$@" 2>&1)
  local rc=$?
  if [ $rc -eq 0 ] && grep -qE "$want" <<<"$out"; then
    echo "ok   $name"; passed=$((passed + 1))
  else
    echo "FAIL $name (rc $rc)"; tail -20 <<<"$out" | sed 's/^/  /'; fail=$((fail + 1))
  fi
}
run pretrain_set3 'done: 16 steps' "$DAMA" recipes/pretrain_set3.lua preset=tiny out="$tmp/set3"
run pretrain_set1 'done: 4 steps' "$DAMA" recipes/pretrain_set1.lua preset=tiny max_steps=4 out="$tmp/set1"
run pretrain_set2 'done: 4 steps' "$DAMA" recipes/pretrain_set2.lua preset=tiny max_steps=4 out="$tmp/set2"
run mae 'recon [0-9.]+' "$DAMA" recipes/mae.lua preset=tiny max_steps=4 log_every=1 out="$tmp/mae"
run dama_rand 'done: 4 steps' "$DAMA" recipes/dama_rand.lua preset=tiny max_steps=4 out="$tmp/rand"
run setting_ema 'done: 4 steps' "$DAMA" recipes/pretrain_set3.lua preset=tiny max_steps=4 setting=ema out="$tmp/ema"
run setting_shared 'done: 4 steps' "$DAMA" recipes/pretrain_set3.lua preset=tiny max_steps=4 setting=shared out="$tmp/shared"
run union_mode 'done: 4 steps' "$DAMA" recipes/pretrain_set3.lua preset=tiny max_steps=4 adaptive_mode=union out="$tmp/union"
run masking_playground 'done: 4 steps' "$DAMA" recipes/masking_playground.lua preset=tiny max_steps=4 out="$tmp/mp"
run grid_png 'wrote .*recon_e001.png' "$DAMA" recipes/pretrain_set3.lua preset=tiny epochs=2 grid_every=1 out="$tmp/grid"
# vector figures for a paper, per-channel panels; the loss curve in the same format
run grid_pdf_panels 'wrote .*recon_e002.pdf' "$DAMA" recipes/pretrain_set3.lua preset=tiny epochs=2 grid_every=2 plot_format=pdf grid_channels=panels out="$tmp/pdf"
run grid_pdf_files '^%PDF-.*%PDF-' bash -c "head -c 5 '$tmp/pdf/loss.pdf'; head -c 5 '$tmp/pdf/recon_e002.pdf'"
run bad_plot_format "plot_format must be one of 'png', 'svg', 'pdf', got 'jpg'" bash -c "! '$DAMA' recipes/pretrain_set3.lua preset=tiny plot_format=jpg out='$tmp/jpg'"
# the sim test device (memory host code cannot read): the same run, bit for bit, and a Lua masking strategy on it
run sim_run 'parameters on sim:0' "$DAMA" recipes/pretrain_set3.lua preset=tiny device=sim out="$tmp/sim"
run sim_same_losses '^$' bash -c "diff <(sed 's/,\"time\".*//' '$tmp/sim/metrics.jsonl') <(sed 's/,\"time\".*//' '$tmp/set3/metrics.jsonl')"
run sim_playground 'done: 4 steps' "$DAMA" recipes/masking_playground.lua preset=tiny max_steps=4 device=sim out="$tmp/mpsim"
run bad_device "device: expected 'cpu', 'cuda', 'cuda:N' or 'sim', got 'gpu'" bash -c "! '$DAMA' recipes/pretrain_set3.lua preset=tiny device=gpu out='$tmp/gpu'"
run linear_probe 'linear probe top-1: [0-9.]+%' "$DAMA" recipes/linear_probe.lua ckpt="$tmp/set3/checkpoint.safetensors" epochs=5 out="$tmp/probe"
run finetune 'val top-1 [0-9.]+%  \(best [0-9.]+%\)  ETA [0-9]+' "$DAMA" recipes/finetune.lua preset=demo epochs=2 n_samples=200 batch=32 ckpt="$tmp/set3/checkpoint.safetensors" out="$tmp/ft"
# the evaluation recipes on the sim test device: the same printed losses and top-1s and the same results.json
# (splits and summary) as the cpu run, bit for bit; a bad device= is the pretraining recipes' error
eval_numbers() { # run folder: its log (<folder>.txt) loss and top-1 lines without the ETA, results.json's numbers
  grep -E 'loss|top-1' "$1.txt" | sed 's/  ETA .*//'
  "$DAMA" -e "local r = dama.json.decode(io.open('$1/results.json'):read('*a')); print(dama.json.encode({splits = r.splits, summary = r.summary}))"
}
same_numbers() { # cpu-folder sim-folder
  diff <(eval_numbers "$1") <(eval_numbers "$2") && [ "$(eval_numbers "$1" | grep -c 'top-1')" -gt 0 ] && echo identical
}
ft_args="preset=demo epochs=2 n_samples=200 batch=32 log_every=1 ckpt=$tmp/set3/checkpoint.safetensors"
run finetune_cpu 'step 6  loss [0-9.]+' bash -c "set -o pipefail; '$DAMA' recipes/finetune.lua $ft_args device=cpu out='$tmp/ftc' | tee '$tmp/ftc.txt'"
run finetune_sim 'device: sim:0' bash -c "set -o pipefail; '$DAMA' recipes/finetune.lua $ft_args device=sim out='$tmp/fts' | tee '$tmp/fts.txt'"
run finetune_sim_same '^identical$' same_numbers "$tmp/ftc" "$tmp/fts"
probe_args="ckpt=$tmp/set3/checkpoint.safetensors epochs=5 repeats=2"
run probe_cpu 'split 2/2: .* top-1 [0-9.]+%' bash -c "set -o pipefail; '$DAMA' recipes/linear_probe.lua $probe_args device=cpu out='$tmp/prc' | tee '$tmp/prc.txt'"
run probe_sim 'device: sim:0' bash -c "set -o pipefail; '$DAMA' recipes/linear_probe.lua $probe_args device=sim out='$tmp/prs' | tee '$tmp/prs.txt'"
run probe_sim_same '^identical$' same_numbers "$tmp/prc" "$tmp/prs"
run finetune_bad_device "device: expected 'cpu', 'cuda', 'cuda:N' or 'sim', got 'gpu'" bash -c "! '$DAMA' recipes/finetune.lua preset=demo epochs=1 n_samples=64 device=gpu out='$tmp/ftgpu'"
run probe_bad_device "device: expected 'cpu', 'cuda', 'cuda:N' or 'sim', got 'gpu'" bash -c "! '$DAMA' recipes/linear_probe.lua epochs=1 device=gpu out='$tmp/prgpu'"
run bad_option "unknown option 'epoch'" bash -c "! '$DAMA' recipes/pretrain_set3.lua epoch=3"
run bad_choice "mask2 must be one of 'adaptive', 'random', got 'bogus'" bash -c "! '$DAMA' recipes/pretrain_set3.lua preset=tiny mask2=bogus out='$tmp/bogus'"
run bad_blr "blr must be a number > 0, got '-1'" bash -c "! '$DAMA' recipes/pretrain_set3.lua preset=tiny blr=-1 out='$tmp/blr'"
# a misspelt branch or another layout never falls back to random weights
run finetune_bad_branch "has no encoder branch 'base_encodr'; it has: base_encoder, momentum_encoder" bash -c "! '$DAMA' recipes/finetune.lua preset=demo epochs=1 n_samples=64 branch=base_encodr ckpt='$tmp/set3/checkpoint.safetensors'"
run finetune_momentum 'encoder: momentum_encoder of' "$DAMA" recipes/finetune.lua preset=demo epochs=2 n_samples=64 batch=32 branch=momentum_encoder ckpt="$tmp/set3/checkpoint.safetensors" out="$tmp/ft2"
# data without labels is named as such, not probed as one class
"$DAMA" -e "dama.data.write('$tmp/nolab.npy', dama.rand(12, 16, 16, 3))" >/dev/null 2>&1
run probe_no_labels 'linear_probe: the data has no class labels \(0 of 12 samples labelled\)' bash -c "! '$DAMA' recipes/linear_probe.lua epochs=1 data='$tmp/nolab.npy'"
run finetune_no_labels 'finetune: the data has no class labels' bash -c "! '$DAMA' recipes/finetune.lua preset=demo epochs=2 data='$tmp/nolab.npy'"
run probe_bad_branch "has no encoder branch 'teacher'" bash -c "! '$DAMA' recipes/linear_probe.lua epochs=1 branch=teacher ckpt='$tmp/set3/checkpoint.safetensors'"
# a timm export: encoder tensors only under timm names, reloaded strictly from its own config
run export_timm 'wrote .*enc.safetensors and .*enc.json \(embed_dim [0-9]+, depth [0-9]+' "$DAMA" recipes/export_timm.lua ckpt="$tmp/set3/checkpoint.safetensors" out="$tmp/enc" branch=momentum_encoder
run export_reload 'strict 30' "$DAMA" -e "local c = dama.checkpoint.json_decode(io.open('$tmp/enc.json'):read('*a')); assert(c.num_classes == 0 and c.global_pool == 'token'); local v = dama.nn.ViT{img = c.img_size, patch = c.patch_size, chans = c.in_chans, dim = c.embed_dim, depth = c.depth, heads = c.num_heads, mlp_ratio = c.mlp_ratio}; local sd = dama.load('$tmp/enc.safetensors'); local n = 0; for _ in pairs(sd) do n = n + 1 end; v:load_state_dict(sd, true); print('strict ' .. n)"
# evaluation results as JSON in their run folders, per split and summary
run probe_results '"mean_top1":[0-9.]+' bash -c "grep -o '\"mean_top1\":[0-9.]*' '$tmp/probe/results.json' && grep -q '\"splits\":\[{' '$tmp/probe/results.json'"
run finetune_results '"mean_best_top1":[0-9.]+' bash -c "grep -o '\"mean_best_top1\":[0-9.]*' '$tmp/ft/results.json' && grep -q 'val_top1_per_epoch' '$tmp/ft/results.json'"
for f in metrics.jsonl loss.png checkpoint.safetensors; do
  if [ -s "$tmp/set3/$f" ]; then echo "ok   output $f"; passed=$((passed + 1)); else echo "FAIL output $f missing"; fail=$((fail + 1)); fi
done
echo "$passed passed, $fail failed, 0 skipped"
[ $fail -eq 0 ]
