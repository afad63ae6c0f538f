#!/usr/bin/env bash
# The GPU check, ready for the day a GPU is lent (<= 8 minutes on one GPU):
#
#   bash benchmarks/gpu_check.sh [OUTDIR] [DEVICE]        # DEVICE: cuda (default) or cpu (a dry run)
#
# 1. HMC 8x8 (m2 = -4, lam = 8): training data and an independent reference (CPU, numba);
# 2. train on DEVICE with bf16 autocast (--amp bf16) and the reference compared at each validation;
# 3. generate, inpaint (4x4 block), posterior (h = 0.05) and sample-neural reweight on DEVICE, and the
#    same commands with --device cpu and the same seeds;
# 4. a single-GPU torchrun of generate (nccl on CUDA, gloo on the CPU);
# 5. benchmarks/gpu_check.py: DEVICE against CPU and HMC (statistical checks, PASS/FAIL), eager
#    against torch.compile drift throughput, and the timings of every step; with DEVICE cuda the
#    figures go to benchmarks/results/gpu_check.json (a dry run writes them into OUTDIR only).
set -euo pipefail
OUT=${1:-/tmp/gpu_check}
DEV=${2:-cuda}
HERE=$(cd "$(dirname "$0")" && pwd)
STEPS=${GPU_CHECK_STEPS:-1500}        # training steps (a CPU dry run: e.g. GPU_CHECK_STEPS=60)
N=${GPU_CHECK_N:-2000}                # samples per task on DEVICE (and on the CPU)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"
TIMES="$OUT/times.tsv"
: > "$TIMES"
step() {  # name, n (configurations), command...
  local name=$1 n=$2; shift 2
  echo "== $name: $*" >&2
  local t0; t0=$(date +%s.%N)
  "$@"
  printf '%s\t%s\t%s\n' "$name" "$n" "$(echo "$(date +%s.%N) - $t0" | bc)" >> "$TIMES"
}
P="--shape 8 8 --m2 -4 --lam 8 --sampler hmc --chains 16 --n-therm 200 --every 2 --no-progress --overwrite"
step hmc_data 8000 phi4si sample-mcmc $P --n-traj 1000 --seed 1 --out "$OUT/data.h5"
step hmc_ref 8000 phi4si sample-mcmc $P --n-traj 1000 --seed 2 --out "$OUT/ref.h5"
step train "$STEPS" phi4si train --data "$OUT/data.h5" --out "$OUT/model.pt" --steps "$STEPS" --model small \
    --amp bf16 --device "$DEV" --val-every $((STEPS / 3)) --reference "$OUT/ref.h5" --seed 0 --no-progress --overwrite
for D in "$DEV" cpu; do
  [[ $D == "$DEV" || $DEV != cpu ]] || continue          # (a dry run: the cpu pass is the DEVICE pass)
  T=(--model "$OUT/model.pt" --device "$D" --seed 5 --no-progress --overwrite)
  NN=$N; [[ $D == cpu && $DEV != cpu ]] && NN=$((N / 4))
  step "generate_$D" "$NN" phi4si generate "${T[@]}" --n "$NN" --out "$OUT/gen_$D.h5"
  step "inpaint_$D" "$NN" phi4si inpaint "${T[@]}" --data "$OUT/ref.h5" --n "$NN" --mask block:4x4@2,2 \
      --out "$OUT/inp_$D.h5"
  step "posterior_$D" "$NN" phi4si posterior "${T[@]}" --n "$NN" --h 0.05 --out "$OUT/post_$D.h5"
  step "reweight_$D" $((NN / 4)) phi4si sample-neural "${T[@]}" --method reweight --n $((NN / 4)) \
      --out "$OUT/rw_$D.h5"
done
BACKEND=nccl; [[ $DEV == cpu ]] && BACKEND=gloo
step torchrun "$N" env PHI4SI_DDP_BACKEND=$BACKEND torchrun --standalone --nproc_per_node 1 --no-python -- \
    phi4si generate --model "$OUT/model.pt" --device "$DEV" --seed 5 --n "$N" --out "$OUT/gen_torchrun.h5" \
    --no-progress --overwrite
phi4si sample-mcmc $P --n-traj 1000 --h 0.05 --seed 3 --out "$OUT/ref_h0.05.h5"
python "$HERE/gpu_check.py" "$OUT" "$DEV"
