#!/usr/bin/env bash
# Exact sampling against HMC at L = 8 and L = 16 (benchmarks/README.md, "Exact sampling").
# Needs the models and HMC references of papers/negrel2025/phi4_generation.sh (in RUNS, its
# WORKDIR) and makes the posterior HMC references (h = 0.05). The committed results used models named
# l8_b_small.pt / l16_b_medium.pt (the same commands; files renamed).
set -euo pipefail
RUNS=${RUNS:-negrel2025_work}   # the WORKDIR of papers/negrel2025/phi4_generation.sh
cd "$(dirname "$0")/.."
[ -f "$RUNS/l8_ref_h005.h5" ] || phi4si sample-mcmc --shape 8 8 --m2 -4 --lam 8 --h 0.05 --sampler hmc --chains 64 \
    --n-traj 5000 --n-therm 500 --every 10 --seed 21 --out "$RUNS/l8_ref_h005.h5" --dtype float32 --no-progress
[ -f "$RUNS/l16_ref_h005.h5" ] || phi4si sample-mcmc --shape 16 16 --m2 -4 --lam 4.572 --h 0.05 --sampler hmc \
    --chains 64 --n-traj 10000 --n-therm 1000 --every 20 --seed 22 --out "$RUNS/l16_ref_h005.h5" --dtype float32 --no-progress
mkdir -p "$RUNS/exact"
python benchmarks/exact_sampling.py --model "$RUNS/l8.pt" --ref "$RUNS/l8_ref.h5" --ref-h "$RUNS/l8_ref_h005.h5" \
    --label l8 --n 2000 --block-chains 32 --block-sweeps 10 --workdir "$RUNS/exact"
python benchmarks/exact_sampling.py --model "$RUNS/l16.pt" --ref "$RUNS/l16_ref.h5" \
    --ref-h "$RUNS/l16_ref_h005.h5" --label l16 --n 400 --batch-size 50 --block-chains 32 --block-sweeps 2 \
    --workdir "$RUNS/exact"
python benchmarks/make_table.py --write
