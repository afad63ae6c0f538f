#!/usr/bin/env bash
# Issue 14 at L = 16 (m2 = -4, lam = 4.572): today's default model (medium U-Net, exactly Z2-odd,
# 3586 steps: what the 55-minute run of papers/negrel2025/phi4_generation.sh made) against one-pass
# models (--no-odd, symmetrised by the random global sign at generation) trained for 18 minutes and
# for 6000 steps; then generation speed and bias against a long HMC ensemble, and the cost of exact-
# sampling proposals, every ratio measured in one run (benchmarks/README.md, "The model side at L = 16").
# At L = 8 (m2 = -4, lam = 8) the same comparison with small U-Nets trained for 3000 steps each (one
# thread; odd = today's default, and one-pass: the shipped model l8).
#   bash benchmarks/model_side.sh [l16|l8|all|train16] [WORKDIR]
# train16 (after l16): the training target with bfloat16 autocast on the CPU (18 minutes, idle machine).
# GENERATION=0 or PROPOSALS=0 leaves out the L = 16 generation or proposal benchmark (the models and
# data are made whenever they are missing).
# The data and models go to WORKDIR (default ./model_side_work, not committed). The two long
# trainings ran side by side with one thread each (about 45 minutes); the 18-minute one alone with
# two threads (its limit is wall-clock time, so it needs an otherwise idle machine).
set -euo pipefail
WHAT=${1:-all}
W=${2:-model_side_work}
cd "$(dirname "$0")/.."
mkdir -p "$W"
export OMP_WAIT_POLICY=PASSIVE
if [[ $WHAT == l16 || $WHAT == all ]]; then
HMC="--shape 16 16 --m2 -4 --lam 4.572 --sampler hmc --chains 64 --n-traj 20000 --n-therm 1000 --dtype float32 --no-progress"
[ -f "$W/l16_train.h5" ] || phi4si sample-mcmc $HMC --every 10 --seed 11 --out "$W/l16_train.h5"
[ -f "$W/l16_ref.h5" ] || phi4si sample-mcmc $HMC --every 20 --seed 12 --out "$W/l16_ref.h5"
TRAIN="--data $W/l16_train.h5 --model medium --batch-size 128 --seed 0 --no-progress"
[[ ${GENERATION:-1} == 0 || -f "$W/l16_even18.pt" ]] || phi4si train $TRAIN --out "$W/l16_even18.pt" --minutes 18 --no-odd --amp none --threads 2
[ -f "$W/l16_base.pt" ] || phi4si train $TRAIN --out "$W/l16_base.pt" --steps 3586 --odd --amp none --threads 1 &
[ -f "$W/l16_onepass6k.pt" ] || phi4si train $TRAIN --out "$W/l16_onepass6k.pt" --steps 6000 --no-odd --amp none --threads 1 &
wait
if [[ ${GENERATION:-1} == 1 ]]; then
python benchmarks/generation_speed.py --ref "$W/l16_ref.h5" --model base="$W/l16_base.pt" \
    --model one="$W/l16_onepass6k.pt" --model one18="$W/l16_even18.pt" \
    --run base:heun:20 --run base:ab3:6:opt \
    --run one:heun:20 --run one:heun:50 --run one:ab3:16 --run one:ab3:6:opt --run one:ab3:4:opt \
    --run one:heun:20:z2=none --run one18:heun:20 --run one18:ab3:6:opt \
    --n 2000 --out generation_speed_l16.json
fi
if [[ ${PROPOSALS:-1} == 1 ]]; then
python benchmarks/proposal_cost.py --model base="$W/l16_base.pt" --model one="$W/l16_onepass6k.pt" \
    --run base:rk4:10 --run base:rk4:10:q=gauss2 --run base:rk4:3:opt:q=gauss2 \
    --run one:rk4:3:opt --run one:rk4:3:opt:q=gauss2 --n 256 --out proposal_cost_l16.json
fi
fi

if [[ $WHAT == train16 ]]; then
# the training target at L = 16: one-pass + bfloat16 autocast on the CPU, 18 minutes with both cores on
# an otherwise idle machine (--minutes: wall-clock), against the base model from the same data
[ -f "$W/l16_bf18.pt" ] || phi4si train --data "$W/l16_train.h5" --model medium --batch-size 128 --seed 0 \
    --no-progress --out "$W/l16_bf18.pt" --minutes 18 --no-odd --threads 2 --amp bf16
python benchmarks/generation_speed.py --ref "$W/l16_ref.h5" --model base="$W/l16_base.pt" \
    --model bf18="$W/l16_bf18.pt" --run base:heun:20 --run bf18:heun:20 --run bf18:ab3:16 --run bf18:ab3:6:opt \
    --n 2000 --out training_l16.json
fi

if [[ $WHAT == l8 || $WHAT == all ]]; then
# the data and the one-pass model are those of the shipped model l8 (data/models/rebuild.sh: same commands)
HMC8="--shape 8 8 --m2 -4 --lam 8 --sampler hmc --chains 64 --n-traj 20000 --n-therm 1000 --dtype float32 --no-progress"
[ -f "$W/l8_train.h5" ] || phi4si sample-mcmc $HMC8 --every 10 --seed 21 --out "$W/l8_train.h5"
[ -f "$W/l8_ref.h5" ] || phi4si sample-mcmc $HMC8 --every 20 --seed 22 --out "$W/l8_ref.h5"
TRAIN8="--data $W/l8_train.h5 --model small --batch-size 128 --seed 2 --steps 3000 --threads 1 --amp none --no-progress"
[ -f "$W/l8_base.pt" ] || phi4si train $TRAIN8 --odd --out "$W/l8_base.pt" &
[ -f "$W/l8_one.pt" ] || phi4si train $TRAIN8 --no-odd --out "$W/l8_one.pt" &
wait
python benchmarks/generation_speed.py --ref "$W/l8_ref.h5" --model base="$W/l8_base.pt" \
    --model one="$W/l8_one.pt" --run base:heun:20 --run base:ab3:6:opt --run one:heun:20 \
    --run one:ab3:16 --run one:ab3:6:opt --run one:ab3:4:opt --run one:heun:20:z2=none --n 2000 \
    --out generation_speed_l8.json
python benchmarks/proposal_cost.py --model base="$W/l8_base.pt" --model one="$W/l8_one.pt" \
    --run base:rk4:10 --run base:rk4:10:q=gauss2 --run base:rk4:3:opt:q=gauss2 --run one:rk4:3:opt \
    --run one:rk4:3:opt:q=gauss2 --n 512 --out proposal_cost_l8.json
fi
