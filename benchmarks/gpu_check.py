"""The checks and figures of benchmarks/gpu_check.sh (run by it):

    python benchmarks/gpu_check.py OUTDIR DEVICE

* DEVICE against CPU, same model and seeds: <|m|>, chi, <S>/V of generate, inpaint and posterior
  within 4 combined standard errors (phi4si.compare; bf16/TF32 kernels give other bits, the same law);
* the model against HMC (generation vs the reference, the posterior vs HMC at h = 0.05): relative
  deviations, reported (they judge the short training, not the device), PASS within 15 %;
* torchrun (one process) equals the plain DEVICE run of the same seed (up to 1e-4: GPU kernels need
  not be bitwise deterministic);
* reweighting ESS/N on DEVICE and CPU;
* eager against torch.compile: drift evaluations per second of the trained network;
* throughput (configurations per second) of every step from OUTDIR/times.tsv.

Prints a table, writes benchmarks/results/gpu_check.json (DEVICE cuda) or OUTDIR/gpu_check.json (a
CPU dry run), and exits 1 when a check fails.
"""

from __future__ import annotations

import json
import math
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def _z(c, key):
    r = c.row(c.summaries[1].label, key)
    return r["rel"], r["z"]


def _timed_drift(model, n=256, reps=20, compiled=False):
    import torch

    net = torch.compile(model.net) if compiled else model.net
    x = torch.randn(n, 1, *model.shape, device=model.device, dtype=model.dtype)
    a = torch.full_like(x, 0.5)
    with torch.no_grad():
        t_first = time.perf_counter()
        net(x, a)
        t_first = time.perf_counter() - t_first
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            net(x, a)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
    return {"per_s": n * reps / (time.perf_counter() - t0), "first_call_s": t_first}


def main(out: Path, dev: str) -> int:
    import h5py

    from phi4si import compare, load_model

    checks, figures = [], {}

    def check(name, ok, detail):
        checks.append({"check": name, "pass": bool(ok), "detail": detail})

    cpu = "cpu" if dev != "cpu" else None
    for task in ("gen", "inp", "post"):
        if cpu:
            c = compare([out / f"{task}_cpu.h5", out / f"{task}_{dev}.h5"], labels=["cpu", dev])
            zs = {k: _z(c, k)[1] for k in ("abs_m", "chi", "s")}
            check(f"{task}: {dev} = cpu (same seeds)", all(abs(z) < 4 for z in zs.values() if math.isfinite(z)),
                  ", ".join(f"{k} z={z:+.2f}" for k, z in zs.items()))
    for task, ref in (("gen", "ref.h5"), ("post", "ref_h0.05.h5")):
        c = compare([out / ref, out / f"{task}_{dev}.h5"], labels=["hmc", "model"])
        rel = {k: _z(c, k)[0] for k in ("abs_m", "chi", "s")}
        check(f"{task}: model vs HMC", abs(rel["abs_m"]) < 0.15,
              ", ".join(f"{k} {100 * v:+.1f} %" for k, v in rel.items()))
    with h5py.File(out / f"gen_{dev}.h5", "r") as f, h5py.File(out / "gen_torchrun.h5", "r") as g:
        d = float(np.max(np.abs(f["phi"][:] - g["phi"][:])))
    check("torchrun (1 process) = plain run", d < 1e-4, f"max |difference| {d:.2e}")
    for d_ in (dev, cpu):
        if d_:
            from phi4si.analysis.observables import ess_fraction

            with h5py.File(out / f"rw_{d_}.h5", "r") as f:
                figures[f"reweight_ess_fraction_{d_}"] = float(ess_fraction(f["log_w"][:]))
    model = load_model(out / "model.pt", device=dev)
    figures["drift_eager"] = _timed_drift(model)
    try:
        figures["drift_compiled"] = _timed_drift(model, compiled=True)
        check("torch.compile runs", True, f"{figures['drift_compiled']['per_s'] / figures['drift_eager']['per_s']:.2f}x eager")
    except Exception as e:  # noqa: BLE001 - report any compile failure, it is what this check is for
        check("torch.compile runs", False, f"{type(e).__name__}: {str(e)[:200]}")
    steps = {}
    for line in (out / "times.tsv").read_text().splitlines():
        name, n, sec = line.split("\t")
        steps[name] = {"n": int(n), "seconds": float(sec), "per_s": int(n) / float(sec)}
    figures["steps"] = steps

    import torch

    res = {"device": dev, "device_name": torch.cuda.get_device_name() if dev.startswith("cuda") else "cpu",
           "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "command": f"bash benchmarks/gpu_check.sh {out} {dev}", "torch": torch.__version__,
           "checks": checks, "figures": figures}
    print(f"{'check':45s} {'':5s} detail")
    for c in checks:
        print(f"{c['check']:45s} {'PASS' if c['pass'] else 'FAIL':5s} {c['detail']}")
    print(f"\n{'step':18s} {'n':>7s} {'seconds':>8s} {'per s':>9s}")
    for k, v in steps.items():
        print(f"{k:18s} {v['n']:7d} {v['seconds']:8.1f} {v['per_s']:9.1f}")
    dest = Path(__file__).parent / "results" / "gpu_check.json" if dev != "cpu" else out / "gpu_check.json"
    dest.write_text(json.dumps(res, indent=1))
    print(f"\nwrote {dest}")
    return 0 if all(c["pass"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "cuda"))
