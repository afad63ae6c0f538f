"""Exact posterior sampling: prior proposals vs posterior-drift proposals, same model, same flow.

The model trained at h = 0 is used for the target exp(-S + h sum phi) in two ways (phi4si.model.exact,
method reweight): proposals from the prior model (the exact-sampling issue's setting) and proposals
from its posterior drift under the same h (reward transform, a0 = 0.9, pilot start).  Both are
exact after reweighting; the point is the ESS.  Each is compared with an HMC ensemble at that h.

    python benchmarks/posterior_proposal.py --model W/l16.pt --ref-h W/l16_h0.05.h5 --h 0.05 --n 192 \
        --label l16 --workdir W/exact

Writes benchmarks/results/posterior_proposal_<label>.json and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, save  # noqa: E402

OBS = ("m", "abs_m", "chi")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--ref-h", required=True, help="HMC ensemble at h = --h")
    ap.add_argument("--h", type=float, default=0.05)
    ap.add_argument("--n", type=int, default=192)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--label", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args(argv)

    import torch

    from phi4si.analysis.report import analyze_file
    from phi4si.model.density import FlowSettings
    from phi4si.model import load_model
    from phi4si.model.exact import sample_neural
    from phi4si.model.posterior import Posterior

    torch.set_num_threads(a.threads)
    model = load_model(a.model)
    fs = FlowSettings(steps=a.steps, solver="rk4", divergence="colored", batch_size=a.batch_size)
    ref = analyze_file(a.ref_h)
    out = {"machine": machine_info(), "model": Path(a.model).name, "h": a.h, "n": a.n, "flow": fs.to_dict(),
           "command": " ".join(sys.argv),
           "hmc": {o: [ref[o]["value"], ref[o]["error"]] for o in OBS}, "runs": {}}
    Path(a.workdir).mkdir(parents=True, exist_ok=True)
    for name, prop in (("prior", None), ("posterior", Posterior(h=a.h))):
        path = Path(a.workdir) / f"posterior_proposal_{a.label}_{name}.h5"
        t0 = time.perf_counter()
        sample_neural(model, "reweight", path, a.n, h=a.h, fs=fs, seed=a.seed, overwrite=True, posterior=prop)
        dt = time.perf_counter() - t0
        r = analyze_file(path)
        row = {"ess_fraction": r["ess_fraction"], "seconds": dt, "seconds_per_proposal": dt / a.n}
        for o in OBS:
            v, e = r[o]["value"], r[o]["error"]
            rv, re_ = out["hmc"][o]
            row[o] = [v, e]
            row[f"z_{o}"] = (v - rv) / float(np.hypot(e, re_))
        out["runs"][name] = row
        print(f"{a.label} {name:9s} ESS/N {row['ess_fraction']:.3f}  <m> {row['m'][0]:.4f}({row['m'][1]:.4f}) "
              f"z={row['z_m']:+.1f}  <|m|> z={row['z_abs_m']:+.1f}  chi z={row['z_chi']:+.1f}  "
              f"{row['seconds_per_proposal']:.2f} s/proposal", flush=True)
    print(f"wrote {save(f'posterior_proposal_{a.label}.json', out)}")


if __name__ == "__main__":
    main()
