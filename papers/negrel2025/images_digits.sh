#!/usr/bin/env bash
# Images (the paper's section 5.2 on a CPU-sized dataset): one model on scikit-learn's 8x8 digits,
# trained once, then inpainting of 300 held-out digits with 70% random masks (observation noise
# sigma = 0.01) and 4x4 block masks (sigma = 0.05), scored by PSNR/SSIM against scikit-image's
# biharmonic inpainting and the mean / nearest fills; sequential generation and editing figures.
#   bash papers/negrel2025/images_digits.sh [WORKDIR]
# The model goes to WORKDIR (default ./negrel2025_work, not committed); results and figures to
# papers/negrel2025/results/images_digits*.{json,png} (committed).
# CPU time: 30 min of training (one thread), ~1 min of evaluation.
set -euo pipefail
W=${1:-negrel2025_work}
HERE=$(cd "$(dirname "$0")" && pwd)
R=$HERE/results
mkdir -p "$W"
export OMP_WAIT_POLICY=PASSIVE

phi4si image train --data digits --out "$W/digits.pt" --minutes 30 --threads 1 --checkpoint-every 250 \
    --no-progress --overwrite
phi4si image evaluate --model "$W/digits.pt" --n-images 300 --steps 50 --seed 0 --n-mean 8 \
    --out "$R/images_digits.json" --figure "$R/images_digits.png" --overwrite
phi4si image generate --model "$W/digits.pt" --n 32 --order random --block 4 --steps 20 --seed 1 \
    --out "$W/digits_sequential.h5" --figure "$R/images_digits_sequential.png" --overwrite
phi4si image edit --model "$W/digits.pt" --index 3 --region block:4x4@0,0 --region block:4x4@4,4 \
    --region block:8x3@0,0 --steps 50 --seed 2 --out "$W/digits_edit.h5" --figure "$R/images_digits_edit.png" \
    --overwrite
