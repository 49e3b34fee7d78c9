#!/usr/bin/env bash
# Quality at small scale (issue 6's note, not a test): pretrain DAMA and MAE on BBBC048's 4,499 unlabelled
# cells, then linear-probe both (and a random initialisation) on the 2,561 labelled cells, 7 classes,
# three seeded stratified 60/40 splits. Usage: bench/quality_bbbc048.sh [build/dama] [out-dir]
set -euo pipefail
DAMA=${1:-build/dama}
OUT=${2:-runs/quality}
D=${SHARED_DATA:-../shared/data}/bbbc048
[ -d "$D" ] || D=/work/shared/data/bbbc048
COMMON="data=$D/pretrain.npy chans=3 img=64 patch=8 arch=custom dim=128 depth=4 heads=4 dec_dim=64 dec_depth=2
        dec_heads=4 K=2 batch=64 epochs=12 warmup=2 blr=1.5e-3 workers=1 ckpt_every=4 grid_every=6 log_every=35"
PROBE="data=$D/labelled.npy labels=$D/labelled_labels.npy repeats=3 epochs=100 workers=1"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1     # the two pretraining runs share the two cores
"$DAMA" recipes/pretrain_set3.lua $COMMON out="$OUT/dama" > "$OUT.dama.log" 2>&1 &
"$DAMA" recipes/mae.lua $COMMON out="$OUT/mae" > "$OUT.mae.log" 2>&1 &
wait
for run in dama mae; do
  echo "== $run"; "$DAMA" recipes/linear_probe.lua ckpt="$OUT/$run/checkpoint.safetensors" $PROBE | tail -n 1
done
echo "== dama branch 2"
"$DAMA" recipes/linear_probe.lua ckpt="$OUT/dama/checkpoint.safetensors" branch=momentum_encoder $PROBE | tail -n 1
echo "== random init"
"$DAMA" recipes/linear_probe.lua ckpt=random arch=custom dim=128 depth=4 heads=4 img=64 patch=8 chans=3 $PROBE | tail -n 1
