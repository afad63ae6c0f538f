#!/usr/bin/env bash
# Raw generation on phi^4 (issue: "On phi^4"): HMC ensembles -> train one model -> generate -> compare.
#   bash papers/negrel2025/phi4_generation.sh [l8|l16|all] [WORKDIR]
# Data and models go to WORKDIR (default ./negrel2025_work, large files, not committed);
# comparison tables go to papers/negrel2025/results/*.json (committed).
# CPU times: L=8 ~15 min (10 min training), L=16 ~75 min (55 min training) on 2 cores.
set -euo pipefail
WHAT=${1:-l8}
W=${2:-negrel2025_work}
HERE=$(cd "$(dirname "$0")" && pwd)
EV="python $HERE/evaluate_generation.py"
mkdir -p "$W"
export OMP_WAIT_POLICY=PASSIVE

if [[ $WHAT == l8 || $WHAT == all ]]; then
  phi4si sample-mcmc --shape 8 8 --m2 -4 --lam 8 --sampler hmc --chains 64 --n-traj 10000 --n-therm 500 --every 5 \
      --seed 1 --out "$W/l8_train.h5" --dtype float32 --no-progress --overwrite
  phi4si sample-mcmc --shape 8 8 --m2 -4 --lam 8 --sampler hmc --chains 64 --n-traj 10000 --n-therm 500 --every 10 \
      --seed 2 --out "$W/l8_ref.h5" --dtype float32 --no-progress --overwrite
  phi4si train --data "$W/l8_train.h5" --out "$W/l8.pt" --minutes 10 --model small --threads 2 --seed 0 \
      --odd --amp none --no-progress --overwrite
  $EV --model "$W/l8.pt" --ref "$W/l8_ref.h5" --n 5000 --settings heun:10 heun:20 euler:40 \
      --out "$HERE/results/l8_eval.json"
  # the same model on the other tasks: sequential generation, inpainting of HMC configurations, SDE
  $EV --model "$W/l8.pt" --ref "$W/l8_ref.h5" --n 3000 --settings seq=raster,4/heun:10 seq=coarse_to_fine,3/heun:10 \
      inpaint=block:4x4@2,2/heun:10 inpaint=random:0.5/heun:10 sde1:40 --out "$HERE/results/l8_tasks_eval.json"
  # ablation: parametrisation at equal steps (1500)
  for P in b eta1; do
    phi4si train --data "$W/l8_train.h5" --out "$W/l8_${P}_1500.pt" --steps 1500 --model small --param $P \
        --threads 2 --seed 0 --odd --amp none --no-progress --overwrite
    $EV --model "$W/l8_${P}_1500.pt" --ref "$W/l8_ref.h5" --n 3000 --settings heun:10 heun:20 euler:40 \
        --out "$HERE/results/ablation_${P}_1500.json"
  done
fi

if [[ $WHAT == l16 || $WHAT == all ]]; then
  phi4si sample-mcmc --shape 16 16 --m2 -4 --lam 4.572 --sampler hmc --chains 64 --n-traj 20000 --n-therm 1000 \
      --every 10 --seed 11 --out "$W/l16_train.h5" --dtype float32 --no-progress --overwrite
  phi4si sample-mcmc --shape 16 16 --m2 -4 --lam 4.572 --sampler hmc --chains 64 --n-traj 20000 --n-therm 1000 \
      --every 20 --seed 12 --out "$W/l16_ref.h5" --dtype float32 --no-progress --overwrite
  phi4si sample-mcmc --shape 32 32 --m2 -4 --lam 4.572 --sampler hmc --chains 32 --n-traj 20000 --n-therm 2000 \
      --every 50 --seed 13 --out "$W/l32_ref.h5" --dtype float32 --no-progress --overwrite
  phi4si train --data "$W/l16_train.h5" --out "$W/l16.pt" --minutes 55 --model medium --batch-size 128 \
      --threads 2 --seed 0 --odd --amp none --no-progress --overwrite
  $EV --model "$W/l16.pt" --ref "$W/l16_ref.h5" --n 2000 --settings heun:10 heun:20 --out "$HERE/results/l16_eval.json"
  # train small, generate large
  $EV --model "$W/l16.pt" --ref "$W/l32_ref.h5" --shape 32 32 --n 1000 --settings heun:10 \
      --out "$HERE/results/l16_at_l32_eval.json"
  $EV --model "$W/l16.pt" --ref "$W/l32_ref.h5" --shape 32 32 --n 1000 --settings heun:20 \
      --out "$HERE/results/l16_at_l32_heun20_eval.json"
fi
