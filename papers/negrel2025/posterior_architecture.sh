#!/usr/bin/env bash
# Posterior bias against the architecture (issue: posterior sampling, "the hard part in practice"):
# near the noise end the transformed field x_r = x + a^2/(1-a) b' lies outside the training inputs and
# the network must extrapolate like the true drift (nearly linear in x). Three U-Nets, same data, same
# 1500 steps (L = 8, m2 = -4, lam = 8): the default (linear head W(a) x + c(a), no normalisation), no
# linear head, and GroupNorm without linear head (the design of the failing probe in the issue).
# Each samples the posterior at h = 0.1 from a0 = 0.9 (pilot start) and a0 = 0.99 (noise start).
#   bash papers/negrel2025/posterior_architecture.sh [WORKDIR]
# Needs l8_train.h5, l8_ref.h5 and the HMC files l8_h0.05.h5, l8_h0.1.h5 (posterior_study.sh hmc l8) in
# WORKDIR. CPU: ~25 min on 2 cores. Results: papers/negrel2025/results/posterior_arch_*.json/.md.
set -euo pipefail
W=${1:-negrel2025_work}
HERE=$(cd "$(dirname "$0")" && pwd)
export OMP_WAIT_POLICY=PASSIVE
declare -A NET=([b]="" [nolin]="--net linear_head=false" [groupnorm]="--net linear_head=false --net norm=group")
for A in b nolin groupnorm; do
  M="$W/l8_${A}_1500.pt"
  # l8_b_1500.pt is the parametrisation ablation's default model (phi4_generation.sh), same settings
  [[ -f $M ]] || phi4si train --data "$W/l8_train.h5" --out "$M" --steps 1500 --model small --param b --threads 2 \
      --seed 0 --odd --amp none --no-progress --overwrite ${NET[$A]}
  python "$HERE/posterior_study.py" --model "$M" --prior "$W/l8_ref.h5" --hmc "$W/l8_{reward}.h5" --h 0.1 \
      --n 6000 --steps 20 --solver heun --name "arch_$A" --variants a0=0.9,start=pilot a0=0.99,start=noise \
      --out "$HERE/results/posterior_arch_$A.json"
done
