#!/usr/bin/env bash
# The paper's own point, L = 32, m2 = -4, lam = 4.572 (issue: phi^4 at L = 32, every task and exact).
#   bash papers/negrel2025/l32.sh [hmc|train|short|generation|transfer|exact|exactpost|tasks|scales|superres|posterior|kbias|blocks|hybrid|all] [WORKDIR]
# Stages (each reuses what WORKDIR holds; results go to papers/negrel2025/results/l32_*.json):
#   hmc         HMC training (seed 31) and reference (seed 32, 160000 trajectories) ensembles at L = 32
#   train       "train small, fine-tune large": the shipped L = 16 model fine-tuned at L = 32 (7000 steps,
#               bf16 autocast, one torch thread; resumable: rerun the stage, it continues with --resume)
#               and its export as the shipped model l32 (data/models/rebuild.sh l32 does the same)
#   generation  raw generation of l16 without fine-tune at L = 32, and of l32 with more solver steps
#   transfer    why l16 fails at L = 32: receptive field, momenta, pooling pyramid (l32_transfer.py)
#   exact       reweighting and independence Metropolis with l32 (sample-neural), ESS/N, corrected observables
#               (the committed run was stopped after its first 256 of 512 proposals, ~4 s each on one thread)
#   tasks       inpainting (8x8 block, 50 % random) and sequential generation (raster, coarse-to-fine)
#   scales      the coarse-to-fine remedy: l32 fine-tuned with --measure scales, its task rows and levels again
#   superres    super-resolution at L = 32 (issue 18): a Haar-family model trained at L = 16 (multitask 15 min, then
#               --measure scales 25 min), fine-tuned at L = 32 with scales (45 min), exported as the shipped
#               model haar32, and benchmarks/superres.py --L 32 with it (x2, x4, the x4 chain, coarse-to-fine)
#   posterior   h in {0.01, 0.02, 0.05}, k in {-0.5, -0.25}: HMC at each, the raw posterior generator
#   kbias       the k < 0 bias against the start time a0 at L = 16 (k_bias.py, the shipped l16)
#   blocks      seconds per windowed neural block update at L = 16, 32, 64 (benchmarks/block_update_cost.py)
#   hybrid      L = 64: windowed neural block updates of l32 + HMC against plain HMC (hybrid_compare.py)
# Wall time on 2 cores: hmc ~6 min, train ~85 min (1 thread), generation ~40 (with the solver study), exact ~30,
# exactpost ~25, tasks ~25 (with c2f_levels), posterior ~50 (with the start scan and the k = -0.5 check),
# kbias ~10, blocks ~10, superres ~90 (training, bounded by minutes: resumable) + ~35 (evaluation, 2 threads).
set -euo pipefail
STAGE=${1:-all}
W=${2:-negrel2025_work}
HERE=$(cd "$(dirname "$0")" && pwd)
R="$HERE/results"
ROOT="$HERE/../.."
export OMP_WAIT_POLICY=PASSIVE
mkdir -p "$W" "$R"
want() { [[ $STAGE == all || $STAGE == "$1" ]]; }
HMC32="--shape 32 32 --m2 -4 --lam 4.572 --sampler hmc --chains 64 --n-therm 2000 --dtype float32 --no-progress"

if want hmc; then
  [ -f "$W/l32_train.h5" ] || phi4si sample-mcmc $HMC32 --n-traj 80000 --every 40 --seed 31 --out "$W/l32_train.h5"
  [ -f "$W/l32_ref.h5" ] || phi4si sample-mcmc $HMC32 --n-traj 160000 --every 160 --seed 32 --out "$W/l32_ref.h5"
  [ -f "$W/l16_ref.h5" ] || phi4si sample-mcmc --shape 16 16 --m2 -4 --lam 4.572 --sampler hmc --chains 64 \
      --n-traj 20000 --n-therm 1000 --dtype float32 --no-progress --every 20 --seed 12 --out "$W/l16_ref.h5"
  phi4si analyze --json "$W/l32_ref.h5" > "$R/l32_ref_analysis.json"
  phi4si analyze --json "$W/l32_train.h5" > "$R/l32_train_analysis.json"
fi

FT="phi4si train --data $W/l32_train.h5 --init l16 --batch-size 128 --seed 3 --steps 7000 --lr 1e-3 --amp bf16 --threads 1 --no-progress --out $W/l32_ft.pt --log $W/l32_ft.log"
if want train; then
  if [ ! -f "$W/l32_ft.pt" ]; then $FT; else $FT --resume; fi
  [ -f "$ROOT/data/models/l32.pt" ] || python -m phi4si.model.export export "$W/l32_ft.pt" l32
fi

# a short fine-tune (10 minutes of the same run's settings) for "with and without a short fine-tune"
if want short; then
  [ -f "$W/l32_short.pt" ] || phi4si train --data "$W/l32_train.h5" --init l16 --batch-size 128 --seed 3 --minutes 10 \
      --lr 1e-3 --amp bf16 --threads 1 --no-progress --out "$W/l32_short.pt"
  python "$ROOT/benchmarks/generation_speed.py" --ref "$W/l32_ref.h5" --model short="$W/l32_short.pt" \
      --run short:ab3:16 --n 4000 --out "$R/l32_short.json"
fi

# raw generation of l32 at generate's defaults: benchmarks/results/shipped_l32.json (data/models/rebuild.sh l32);
# here the L = 16 model without fine-tune at L = 32
if want generation; then
  python "$ROOT/benchmarks/generation_speed.py" --ref "$W/l32_ref.h5" --model l16=l16 --shape 32 32 \
      --run l16:ab3:16 --n 2000 --out "$R/l32_l16_at_32.json"
  # l32 with more solver work (4000 samples each, ~35 min): which part of the bias is the solver's
  python "$ROOT/benchmarks/generation_speed.py" --ref "$W/l32_ref.h5" --model l32=l32 --run l32:ab3:16 \
      --run l32:ab3:32 --run l32:rk4:16 --n 4000 --seed 5 --out "$R/l32_solver.json"
  python "$HERE/action_terms.py" "$R/l32_solver.json" --out "$R/l32_action_terms.json"   # <S>/V term by term
fi

if want transfer; then
  python "$HERE/l32_transfer.py" --model l16 --ref16 "$W/l16_ref.h5" --ref32 "$W/l32_ref.h5" \
      --gen "l16_at_32=$R/l32_l16_at_32.json" --gen "l32_short_ft=$R/l32_short.json" \
      --gen "l32=$ROOT/benchmarks/results/shipped_l32.json" --out "$R/l32_transfer.json"
fi

if want exact; then
  [ -f "$W/l32_reweight.h5" ] || phi4si sample-neural --model l32 --method reweight --n 512 --steps 5 --solver rk4 \
      --seed 5 --threads 1 --no-progress --out "$W/l32_reweight.h5"
  phi4si analyze --json "$W/l32_reweight.h5" > "$R/l32_exact_reweight.json"
  # independence Metropolis through the same proposals (the chain needs only their weights): acceptance
  python - "$W/l32_reweight.h5" "$R/l32_exact_imh.json" <<'PY'
import json, sys
import numpy as np
from phi4si import open_ensemble
from phi4si.model.exact import imh_chain
with open_ensemble(sys.argv[1]) as ds:
    lw = np.asarray(ds["log_w"].values, dtype=np.float64).reshape(1, -1)
_, acc, _ = imh_chain(lw, np.random.default_rng(0))
def ess(x):
    w = np.exp(x - x.max())
    return float(w.sum() ** 2 / (len(w) * (w ** 2).sum()))
rng = np.random.default_rng(1)
boot = [ess(lw[0, rng.integers(0, lw.size, lw.size)]) for _ in range(1000)]
res = {"proposals": int(lw.size), "acceptance": float(acc[0, 1:].mean()), "ess_fraction": ess(lw[0]),
       "ess_fraction_bootstrap_err": float(np.std(boot)), "log_w_std": float(lw.std()), "file": sys.argv[1]}
json.dump(res, open(sys.argv[2], "w"), indent=1)
print(res)
PY
fi

if want tasks; then
  python "$HERE/evaluate_generation.py" --model l32 --ref "$W/l32_ref.h5" --n 1000 --threads 1 \
      --settings ab3:16 inpaint=block:8x8@12,12/heun:10 inpaint=random:0.5/heun:10 seq=raster,16/heun:10 \
      seq=coarse_to_fine,3/heun:10 --out "$R/l32_tasks.json"
  # where coarse-to-fine goes wrong: each sublattice level against HMC's, at L = 32 and (l16) L = 16 (~10 min)
  python "$HERE/c2f_levels.py" --model l32 --ref "$W/l32_ref.h5" --n 600 --run 3:heun:10 --run 2:heun:10 \
      --out "$R/l32_c2f_levels.json"
  python "$HERE/c2f_levels.py" --model l16 --ref "$W/l16_ref.h5" --n 1000 --run 3:heun:10 --out "$R/l16_c2f_levels.json"
fi

# the coarse-to-fine remedy: l32 fine-tuned 30 more minutes with the coarse-to-fine states weighted 40 % instead
# of 8 % (--measure scales, the same mixture otherwise), then the task rows and the level analysis again (~45 min)
SC="phi4si train --data $W/l32_train.h5 --init l32 --measure scales --batch-size 128 --seed 8 --minutes 30 --lr 5e-4 --threads 1 --no-progress --out $W/l32_scales.pt --log $W/l32_scales.log"
if want scales; then
  if [ ! -f "$W/l32_scales.pt" ]; then $SC; else $SC --resume; fi
  python "$HERE/evaluate_generation.py" --model "$W/l32_scales.pt" --ref "$W/l32_ref.h5" --n 1000 --threads 1 \
      --settings ab3:16 inpaint=block:8x8@12,12/heun:10 seq=raster,16/heun:10 seq=coarse_to_fine,3/heun:10 \
      --out "$R/l32_scales_tasks.json"
  python "$HERE/c2f_levels.py" --model "$W/l32_scales.pt" --ref "$W/l32_ref.h5" --n 600 --run 3:heun:10 \
      --out "$R/l32_scales_c2f_levels.json"
fi

# the trainings are bounded by wall time (--minutes) and resumable: rerun the stage after a stop
H1="phi4si train --data $W/l16_train_4k.h5 --family haar --model medium --measure multitask --batch-size 128 --seed 0 --minutes 15 --threads 1 --checkpoint-every 250 --val-every 500 --no-progress --out $W/haar16.pt"
H2="phi4si train --data $W/l16_train_4k.h5 --init $W/haar16.pt --family haar --measure scales --lr 1e-3 --batch-size 128 --seed 6 --minutes 25 --threads 1 --checkpoint-every 250 --val-every 500 --no-progress --out $W/haar16s.pt"
H3="phi4si train --data $W/l32_train.h5 --init $W/haar16s.pt --family haar --measure scales --lr 1e-3 --batch-size 128 --seed 5 --minutes 45 --threads 1 --checkpoint-every 250 --val-every 500 --no-progress --out $W/haar32.pt"
if want superres; then
  [ -f "$W/l16_train_4k.h5" ] || phi4si sample-mcmc --shape 16 16 --m2 -4 --lam 4.572 --sampler hmc --chains 64 \
      --n-traj 4000 --every 10 --n-therm 1000 --seed 11 --dtype float32 --no-progress --out "$W/l16_train_4k.h5"
  for H in "$H1" "$H2" "$H3"; do
    out=${H##*--out }
    if [ ! -f "$out" ]; then $H; else $H --resume; fi
  done
  [ -f "$ROOT/data/models/haar32.pt" ] || python -m phi4si.model.export export "$W/haar32.pt" haar32
  python "$ROOT/benchmarks/superres.py" --L 32 --workdir "$W" --model "$W/haar32.pt" --train-minutes 0 --threads 2
fi

if want posterior; then
  SEED=300
  for RW in h0.01 h0.02 h0.05 k-0.5 k-0.25; do
    SEED=$((SEED + 1))
    [ -f "$W/l32_$RW.h5" ] || phi4si sample-mcmc $HMC32 --${RW:0:1} ${RW:1} --n-traj 40000 --every 40 --seed $SEED \
        --out "$W/l32_$RW.h5"
  done
  python "$HERE/posterior_study.py" --model l32 --prior "$W/l32_ref.h5" --hmc "$W/l32_{reward}.h5" \
      --h 0.01 0.02 0.05 --k -0.5 -0.25 --n 1000 --steps 16 --solver ab3 --name l32 --threads 1 \
      --variants start=pilot --out "$R/posterior_l32.json" --figure "$R/posterior_l32.png"
  # h = 0.01: the start against a0 and the pilot rounds (500 samples each, ~12 min)
  python "$HERE/posterior_study.py" --model l32 --prior "$W/l32_ref.h5" --hmc "$W/l32_{reward}.h5" \
      --h 0.01 --n 500 --steps 16 --solver ab3 --name l32_start --threads 1 --seed 7 \
      --variants a0=0.9,rounds=2 a0=0.9,rounds=8 a0=0.95,rounds=3 a0=0.97,rounds=3 a0=0.99,rounds=3 \
      --out "$R/posterior_l32_start.json"
  # k = -0.5: is the bias the solver or the start? (more steps, a0 nearer the noise end; ~15 min)
  python "$HERE/posterior_study.py" --model l32 --prior "$W/l32_ref.h5" --hmc "$W/l32_{reward}.h5" \
      --k -0.5 --n 1000 --steps 16 --solver ab3 --name l32_kcheck --threads 1 \
      --variants start=pilot,steps=32 a0=0.99,start=pilot a0=0.9999,start=pilot --out "$R/posterior_l32_kcheck.json"
fi

if want kbias; then
  python "$HERE/k_bias.py" --model l16 --k -0.5 -0.25 --n 2000 --work "$W/kbias" --out "$R/k_bias_l16.json"
fi

if want blocks; then
  python "$ROOT/benchmarks/block_update_cost.py" --model l32 --block 4 --chains 16 --updates 2 \
      --run 16:full:4 --run 16:12:4 --run 32:12:4 --run 64:12:4 --run 64:16:4 --out "$R/l32_block_update_cost.json"
fi

if want hybrid; then
  HMC64="--shape 64 64 --m2 -4 --lam 4.572 --sampler hmc --dtype float32 --no-progress"
  [ -f "$W/l64_ref.h5" ] || phi4si sample-mcmc $HMC64 --chains 64 --n-therm 2000 --n-traj 40000 --every 100 --seed 64 \
      --out "$W/l64_ref.h5"
  # 16 chains, each sweep one 4x4 block update on a 12x12 window and 5 HMC trajectories (eps of the reference's
  # adaptation, 10 leapfrog steps); plain HMC with the same chains and trajectories in the same session
  [ -f "$W/l64_hybrid.h5" ] || phi4si sample-neural --model l32 --method hybrid --shape 64 64 --window 12 --block 4 \
      --chains 16 --n 120 --hmc-traj 5 --hmc-eps 0.049 --hmc-steps 10 --steps 4 --divergence exact --seed 7 \
      --threads 1 --no-progress --out "$W/l64_hybrid.h5"
  [ -f "$W/l64_hmc.h5" ] || phi4si sample-mcmc $HMC64 --chains 16 --n-therm 2000 --n-traj 20000 --every 20 --eps 0.049 \
      --no-adapt --seed 65 --out "$W/l64_hmc.h5"
  python "$HERE/hybrid_compare.py" --hybrid "$W/l64_hybrid.h5" --hmc "$W/l64_hmc.h5" --ref "$W/l64_ref.h5" \
      --out "$R/l64_hybrid.json"
fi

# exact posteriors by reweighting posterior-drift proposals (short runs: ~1.4 s per proposal on 2 threads)
if want exactpost; then
  for RW in h0.05 h0.01 k-0.5 h0.02 k-0.25; do
    # the start these runs were made with (pinned: the package default became a0 = 0.95, 3 rounds for h later)
    START="--pilot-rounds 2"; [ "${RW:0:1}" = h ] && START="--a0 0.9 --pilot-rounds 2"
    [ -f "$W/l32_post_$RW.h5" ] || phi4si sample-neural --model l32 --method reweight --${RW:0:1} ${RW:1} \
        --proposal posterior $START --n 128 --batch-size 128 --steps 5 --solver rk4 --seed 6 --threads 2 --no-progress \
        --out "$W/l32_post_$RW.h5"
    phi4si analyze --json "$W/l32_post_$RW.h5" > "$R/l32_exact_post_$RW.json"
  done
fi
