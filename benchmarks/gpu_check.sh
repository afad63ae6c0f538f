#!/usr/bin/env bash
# The GPU check, ready for the day a GPU machine is lent (<= 8 minutes on one H200; estimated ~6, not
# yet measured: numba's first compile ~40 s, training 2 min, eight task runs, torchrun, torch.compile):
#
#   bash benchmarks/gpu_check.sh [OUTDIR] [DEVICE]     # OUTDIR default /tmp/gpu_check, DEVICE default cuda
#   bash benchmarks/gpu_check.sh /tmp/gpu_check_dry cpu   # the dry run on a CPU machine (~3.5 min on 2 cores)
#
# Needs phi4si installed (pip install -e .) with a CUDA build of torch for DEVICE cuda.
#
# Steps, each timed into OUTDIR/times.tsv (step, device, n, unit, seconds, command) with its output
# in OUTDIR/logs/STEP.log:
#   0. preflight: phi4si, torch, the device (DEVICE cuda without a usable GPU fails here, clearly);
#   1. HMC 8x8, m2 = -4, lam = 8 (CPU, numba): training data (seed 1), an independent reference
#      (seed 2) and a reference at h = 0.05 (seed 3) for the posterior; 8 chains x 500 trajectories each;
#   2. phi4si train on DEVICE with bf16 autocast (--amp bf16), --reference ref.h5 logged at each
#      validation; --compile (inductor on cuda; aot_eager on a CPU dry run, which traces the same graph
#      without generating code) when phi4si train has that flag, and gpu_check.py compares the trained
#      network compiled with inductor against eager as well; --minutes 2 (GPU_CHECK_MINUTES),
#      or GPU_CHECK_STEPS steps (a CPU dry run defaults to 1000 steps);
#   3. generate, inpaint (block:4x4@0,0 of data.h5), posterior (--h 0.05) and sample-neural --method
#      reweight with the trained model on DEVICE, then the same commands with --device cpu and the same
#      seeds and batch sizes (fewer samples: the first ones of the DEVICE runs, same noise);
#   4. torchrun --standalone --nproc_per_node 1 of the DEVICE generate (same seed; nccl on cuda,
#      PHI4SI_DDP_BACKEND=gloo on cpu; with WORLD_SIZE 1 phi4si.model.ranks starts no process group, so
#      this checks the launch path and the output, not nccl itself);
#   5. benchmarks/gpu_check.py OUTDIR DEVICE: the statistical checks (DEVICE = CPU, model vs HMC),
#      paired same-seed differences, torchrun = plain run, torch.compile = eager, throughput; a table
#      with PASS/FAIL, benchmarks/results/gpu_check.json (DEVICE cpu: OUTDIR/gpu_check.json only);
#      its exit status is the script's (non-zero when a check fails).
#
# Sizes (environment): GPU_CHECK_MINUTES (2), GPU_CHECK_STEPS (unset on cuda, 1000 on cpu),
# GPU_CHECK_N (DEVICE samples: 4096 on cuda, 1024 on cpu), GPU_CHECK_N_CPU (1024), GPU_CHECK_N_RW
# (DEVICE reweight samples: 1024 on cuda, 256 on cpu), GPU_CHECK_N_RW_CPU (256), GPU_CHECK_THREADS
# (torch CPU threads: 1 on a dry run, torch's default otherwise). phi4si is taken from PATH, else
# from /work/venv/bin.
set -Eeuo pipefail

OUT=${1:-/tmp/gpu_check}
DEV=${2:-cuda}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
T_START=$EPOCHREALTIME

die() { echo "gpu_check: FAILED: $*" >&2; exit 1; }
case $DEV in cpu|cuda|cuda:[0-9]*) ;; *) die "DEVICE must be cpu, cuda or cuda:N, got '$DEV'";; esac

if ! command -v phi4si >/dev/null 2>&1; then
  [[ -x /work/venv/bin/phi4si ]] || die "phi4si not found on PATH (nor /work/venv/bin/phi4si): pip install -e . first"
  PATH=/work/venv/bin:$PATH
fi
BIN=$(dirname "$(command -v phi4si)")
PY=${PYTHON:-$BIN/python}
[[ -x $PY ]] || PY=$(command -v python3) || die "no python next to phi4si ($BIN) nor on PATH"
command -v torchrun >/dev/null 2>&1 || die "torchrun not found on PATH (it comes with torch)"

if [[ $DEV == cpu ]]; then
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  THREADS=${GPU_CHECK_THREADS:-1}
  STEPS=${GPU_CHECK_STEPS:-1000}
  N_DEV=${GPU_CHECK_N:-1024}
  N_RW_DEV=${GPU_CHECK_N_RW:-256}
  VAL_EVERY=$(( STEPS / 3 > 0 ? STEPS / 3 : 1 ))
else
  THREADS=${GPU_CHECK_THREADS:-}
  STEPS=${GPU_CHECK_STEPS:-}
  N_DEV=${GPU_CHECK_N:-4096}
  N_RW_DEV=${GPU_CHECK_N_RW:-1024}
  VAL_EVERY=1000
fi
MINUTES=${GPU_CHECK_MINUTES:-2}
N_CPU=${GPU_CHECK_N_CPU:-1024}
N_RW_CPU=${GPU_CHECK_N_RW_CPU:-256}
BATCH=512          # generate/inpaint/posterior batch (the same on both devices: the same noise per batch)
RW_BATCH=256       # sample-neural batch
(( N_CPU <= N_DEV && N_RW_CPU <= N_RW_DEV )) || die "GPU_CHECK_N_CPU/N_RW_CPU must not exceed GPU_CHECK_N/N_RW"
(( N_CPU % BATCH == 0 || N_CPU == N_DEV )) || die "GPU_CHECK_N_CPU must be a multiple of $BATCH"
(( N_RW_CPU % RW_BATCH == 0 || N_RW_CPU == N_RW_DEV )) || die "GPU_CHECK_N_RW_CPU must be a multiple of $RW_BATCH"
THR=(); [[ -n $THREADS ]] && THR=(--threads "$THREADS")

mkdir -p "$OUT/logs"
TIMES=$OUT/times.tsv
printf 'step\tdevice\tn\tunit\tseconds\tcommand\n' > "$TIMES"
CURRENT=preflight
trap 'rc=$?; echo "gpu_check: FAILED in step ${CURRENT} (exit $rc); its output: $OUT/logs/${CURRENT}.log" >&2' ERR

step() {  # name device n unit command...: run, tee the output to logs/NAME.log, time it into times.tsv
  local name=$1 dev=$2 n=$3 unit=$4; shift 4
  CURRENT=$name
  echo "== [$(date +%T)] $name ($dev): $*"
  local t0=$EPOCHREALTIME
  "$@" 2>&1 | tee "$OUT/logs/$name.log"
  local t1=$EPOCHREALTIME
  local sec; sec=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$dev" "$n" "$unit" "$sec" "$*" >> "$TIMES"
  echo "   $name: ${sec} s"
}

# ---------------------------------------------------------------------------------------- 0. preflight
echo "gpu_check: OUTDIR $OUT, DEVICE $DEV, phi4si $(command -v phi4si), python $PY"
step preflight "$DEV" 0 - "$PY" - "$DEV" <<'EOF'
import sys, torch, phi4si
dev = sys.argv[1]
print(f"phi4si {phi4si.__version__} ({phi4si.__file__}), torch {torch.__version__}, cuda build {torch.version.cuda}")
if dev.startswith("cuda"):
    if not torch.cuda.is_available():
        sys.exit(f"DEVICE {dev} but torch.cuda.is_available() is False (a CPU-only torch build, or no GPU visible)")
    i = int(dev.split(":")[1]) if ":" in dev else 0
    if i >= torch.cuda.device_count():
        sys.exit(f"DEVICE {dev}: only {torch.cuda.device_count()} GPU(s) visible")
    p = torch.cuda.get_device_properties(i)
    print(f"GPU {i}: {torch.cuda.get_device_name(i)}, {p.total_memory / 2**30:.0f} GiB, "
          f"bf16 {torch.cuda.is_bf16_supported()}")
    torch.ones(1, device=dev).sum().item()
EOF
if [[ $DEV != cpu ]] && command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total --format=csv \
      > "$OUT/logs/nvidia-smi.csv" 2>&1 || true
fi
COMPILE=()
TRAIN_HELP=$(phi4si train --help)            # (not piped into grep -q: with pipefail a SIGPIPE reads as false)
if [[ $TRAIN_HELP == *--compile* ]]; then
  if [[ $DEVICE == cuda* ]]; then COMPILE=(--compile inductor); else COMPILE=(--compile aot_eager); fi
  echo "   phi4si train has --compile: training with ${COMPILE[*]}"
else
  echo "   phi4si train has no --compile flag: gpu_check.py compares torch.compile with eager on the trained net"
fi

# ---------------------------------------------------------------------------------------- 1. HMC
HMC=(phi4si sample-mcmc --shape 8 8 --m2 -4 --lam 8 --sampler hmc --chains 8 --n-traj 500 --n-therm 200
     --every 1 --no-progress --overwrite)
step hmc_data cpu 4000 configurations "${HMC[@]}" --seed 1 --out "$OUT/data.h5"
step hmc_ref cpu 4000 configurations "${HMC[@]}" --seed 2 --out "$OUT/ref.h5"
step hmc_ref_h0.05 cpu 4000 configurations "${HMC[@]}" --seed 3 --h 0.05 --out "$OUT/ref_h0.05.h5"

# ---------------------------------------------------------------------------------------- 2. train
LIMIT=(--minutes "$MINUTES"); [[ -n $STEPS ]] && LIMIT+=(--steps "$STEPS")
rm -f "$OUT/train.log"
step train "$DEV" "${STEPS:-0}" steps phi4si train --data "$OUT/data.h5" --reference "$OUT/ref.h5" \
    --out "$OUT/model.pt" --log "$OUT/train.log" "${LIMIT[@]}" --model small --device "$DEV" --amp bf16 \
    "${COMPILE[@]}" --val-every "$VAL_EVERY" --seed 0 "${THR[@]}" --no-progress --overwrite
[[ -s $OUT/model.pt ]] || die "train wrote no $OUT/model.pt"

# ---------------------------------------------------------------------------------------- 3. tasks
tasks() {  # device suffix n n_reweight
  local d=$1 s=$2 n=$3 nrw=$4
  local thr=("${THR[@]}")
  [[ $d == cpu ]] || thr=()
  local c=(--model "$OUT/model.pt" --device "$d" "${thr[@]}" --no-progress --overwrite)
  step "generate_$s" "$d" "$n" configurations phi4si generate "${c[@]}" --seed 5 --batch-size $BATCH \
      --n "$n" --out "$OUT/gen_$s.h5"
  step "inpaint_$s" "$d" "$n" configurations phi4si inpaint "${c[@]}" --seed 6 --batch-size $BATCH \
      --data "$OUT/data.h5" --n "$n" --mask block:4x4@0,0 --out "$OUT/inp_$s.h5"
  step "posterior_$s" "$d" "$n" configurations phi4si posterior "${c[@]}" --seed 7 --batch-size $BATCH \
      --n "$n" --h 0.05 --out "$OUT/post_$s.h5"
  step "reweight_$s" "$d" "$nrw" configurations phi4si sample-neural "${c[@]}" --seed 8 --batch-size $RW_BATCH \
      --method reweight --n "$nrw" --out "$OUT/rw_$s.h5"
}
tasks "$DEV" dev "$N_DEV" "$N_RW_DEV"
tasks cpu cpu "$N_CPU" "$N_RW_CPU"

# ---------------------------------------------------------------------------------------- 4. torchrun
BACKEND=nccl; [[ $DEV == cpu ]] && BACKEND=gloo
TR_THR=(); [[ $DEV == cpu ]] && TR_THR=("${THR[@]}")
step torchrun "$DEV" "$N_DEV" configurations env PHI4SI_DDP_BACKEND=$BACKEND \
    torchrun --standalone --nproc_per_node 1 --no-python -- \
    phi4si generate --model "$OUT/model.pt" --device "$DEV" "${TR_THR[@]}" --seed 5 --batch-size $BATCH \
    --n "$N_DEV" --out "$OUT/gen_torchrun.h5" --no-progress --overwrite

# ---------------------------------------------------------------------------------------- 5. checks
T_END=$EPOCHREALTIME
awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "gpu_check: steps 0-4 took %.1f s\n", b - a }'
CURRENT=checks
trap - ERR
rc=0
GPU_CHECK_COMPILE_FLAG=${#COMPILE[@]} GPU_CHECK_THREADS_USED=$THREADS \
    "$PY" "$ROOT/benchmarks/gpu_check.py" "$OUT" "$DEV" 2>&1 | tee "$OUT/logs/checks.log" || rc=$?
awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "gpu_check: total %.1f s\n", b - a }'
if (( rc != 0 )); then
  echo "gpu_check: FAILED: gpu_check.py exit $rc (a failed check, or an error: $OUT/logs/checks.log)" >&2
fi
exit $rc
