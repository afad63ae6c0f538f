#!/usr/bin/env bash
# Rebuilds the shipped models of data/models/ and their entries in manifest.json (phi4si.model.shipped, phi4si.model.export):
# HMC training and reference ensembles (independent seeds), the training (bounded by steps, one torch
# thread: the same bits again on the same kind of machine), the weights-only export, and the quality
# against the reference ensemble at generate's defaults (benchmarks/generation_speed.py, 2000
# configurations; its result file goes to benchmarks/results/shipped_NAME.json).
#   bash data/models/rebuild.sh [l8|l16|l32|haar32|all] [WORKDIR]
# WORKDIR (default ./rebuild_work, not committed) keeps the ensembles and training checkpoints; what
# is there already is reused. Wall time on 2 cores: l8 about 15 minutes, l16 about 60, l32 about 95 (l32 fine-tunes l16),
# haar32 about 125 (the super-resolution model: papers/negrel2025/l32.sh superres).
set -euo pipefail
WHAT=${1:-all}
W=${2:-rebuild_work}
cd "$(dirname "$0")/../.."
mkdir -p "$W"
export OMP_WAIT_POLICY=PASSIVE

# NAME L M2 LAM NETWORK STEPS TRAIN_SEED HMC_SEED_TRAIN HMC_SEED_REF
build() {
  local name=$1 L=$2 m2=$3 lam=$4 net=$5 steps=$6 seed=$7 s_train=$8 s_ref=$9
  local hmc="--shape $L $L --m2 $m2 --lam $lam --sampler hmc --chains 64 --n-traj 20000 --n-therm 1000 --dtype float32 --no-progress"
  [ -f "$W/${name}_train.h5" ] || phi4si sample-mcmc $hmc --every 10 --seed "$s_train" --out "$W/${name}_train.h5"
  [ -f "$W/${name}_ref.h5" ] || phi4si sample-mcmc $hmc --every 20 --seed "$s_ref" --out "$W/${name}_ref.h5"
  local train="phi4si train --data $W/${name}_train.h5 --model $net --batch-size 128 --seed $seed --steps $steps --no-odd --amp none --threads 1 --no-progress --out $W/${name}_train.pt"
  [ -f "$W/${name}_train.pt" ] || $train
  ship "$name" "$W/${name}_train.pt" "$train" "phi4si sample-mcmc $hmc --every 10 --seed $s_train (reference: --every 20 --seed $s_ref)" "$seed"
}

# NAME CHECKPOINT TRAIN_COMMAND DATA SEED [EXTRA_JSON_FIELDS]: export, quality at generate's defaults, manifest entry
ship() {
  local name=$1 ck=$2 train=$3 data=$4 seed=$5 extra=${6:-}
  [ -f "data/models/$name.pt" ] || python -m phi4si.model.export export "$ck" "$name"
  python benchmarks/generation_speed.py --ref "$W/${name}_ref.h5" --model "$name=data/models/$name.pt" \
      --run "$name:ab3:16" --n 2000 --out "shipped_$name.json"
  python -m phi4si.model.export entry "$name" --quality "benchmarks/results/shipped_$name.json" "{
      \"command\": \"$train\", \"data\": \"$data\",
      \"seed\": $seed, \"rebuild\": \"bash data/models/rebuild.sh $name\"$extra}"
}

if [[ $WHAT == l8 || $WHAT == all ]]; then build l8 8 -4 8 small 3000 2 21 22; fi
if [[ $WHAT == l16 || $WHAT == all ]]; then build l16 16 -4 4.572 medium 6000 0 11 12; fi
if [[ $WHAT == l32 || $WHAT == all ]]; then
  # train small, fine-tune large: the shipped l16 fine-tuned at L = 32 (papers/negrel2025/l32.sh: the data and
  # the fine-tune, resumable; about 90 minutes on 2 cores)
  bash papers/negrel2025/l32.sh hmc "$W"
  bash papers/negrel2025/l32.sh train "$W"
  ship l32 "$W/l32_ft.pt" "$(sed -n 's/^FT="\(.*\)"$/\1/p' papers/negrel2025/l32.sh | sed "s#\$W#$W#g")" \
      "phi4si sample-mcmc --shape 32 32 --m2 -4 --lam 4.572 --sampler hmc --chains 64 --n-therm 2000 --dtype float32 --n-traj 80000 --every 40 --seed 31 (reference: --n-traj 160000 --every 160 --seed 32)" 3 \
      ", \"init\": \"l16\", \"init_train_wall_time_s\": $(python -c 'import phi4si.model.shipped as s; print(s.shipped()["l16"]["train_wall_time_s"])')"
fi
if [[ $WHAT == haar32 || $WHAT == all ]]; then
  # super-resolution (issue 18): Haar family, trained at L = 16 then fine-tuned at L = 32 with --measure scales;
  # its quality is that of benchmarks/superres.py --L 32 (x2, x4, the x4 chain, coarse-to-fine)
  bash papers/negrel2025/l32.sh hmc "$W"
  bash papers/negrel2025/l32.sh superres "$W"
  chain() { sed -n "s/^$1=\"\(.*\)\"$/\1/p" papers/negrel2025/l32.sh | sed "s#\$W#$W#g"; }
  python -m phi4si.model.export entry haar32 --quality benchmarks/results/superres_l32.json "{
      \"command\": \"$(chain H3)\", \"init_commands\": [\"$(chain H1)\", \"$(chain H2)\"],
      \"data\": \"L = 32: phi4si sample-mcmc --shape 32 32 --m2 -4 --lam 4.572 --sampler hmc --chains 64 --n-therm 2000 --dtype float32 --n-traj 80000 --every 40 --seed 31 (reference: --n-traj 160000 --every 160 --seed 32); L = 16: --n-traj 4000 --every 10 --n-therm 1000 --seed 11\",
      \"seed\": 5, \"family\": \"haar\", \"task\": \"superres\", \"rebuild\": \"bash data/models/rebuild.sh haar32\",
      \"init_train_wall_time_s\": [$(python -c "import sys, torch; print(', '.join(str(torch.load(f, weights_only=False, map_location='cpu')['wall_time']) for f in sys.argv[1:]))" "$W/haar16.pt" "$W/haar16s.pt")]}"
fi
