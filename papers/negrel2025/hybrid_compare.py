"""Hybrid neural-block + HMC against plain HMC, from their ensemble files (issue: L = 64 by exact
block updates): acceptance, tau_int of |m| and m^2 (Gamma method, in sweeps and in HMC trajectories),
observables of both against a long HMC reference (z-scores), and ESS per second of wall time of
each run (the files record their wall time), so the ratio is measured on runs of this machine.

    python papers/negrel2025/hybrid_compare.py --hybrid hy.h5 --hmc hmc.h5 --ref l64_ref.h5 --out results/x.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OBS = ("abs_m", "m2", "chi", "binder", "xi2", "s")


def summary(path) -> dict:
    from phi4si import open_ensemble
    from phi4si.analysis.report import analyze_file

    r = analyze_file(path)
    with open_ensemble(path) as ds:
        attrs = dict(ds.attrs)
    wall = float(attrs.get("wall_time") or r.get("wall_time") or 0.0)
    out = {"file": str(Path(path).resolve()), "sampler": attrs.get("sampler"), "wall_time_s": wall,
           "observables": {k: {f: r[k].get(f) for f in ("value", "error", "tau_int", "ess")} for k in OBS}}
    for k in ("acceptance", "acceptance_block", "acceptance_hmc"):
        if k in r:
            out[k] = r[k]
    for k in ("abs_m", "m2"):
        ess = r[k].get("ess")
        out["observables"][k]["ess_per_s"] = ess / wall if wall and ess else None
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hybrid", required=True)
    ap.add_argument("--hmc", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    hy, hm, ref = summary(args.hybrid), summary(args.hmc), summary(args.ref)
    for run in (hy, hm):
        o, r = run["observables"], ref["observables"]
        run["z_vs_ref"] = {k: (o[k]["value"] - r[k]["value"]) / (o[k]["error"] ** 2 + r[k]["error"] ** 2) ** 0.5
                           if None not in (o[k]["value"], o[k]["error"], r[k]["value"], r[k]["error"]) else None
                           for k in OBS}
    ratio = {k: (hy["observables"][k]["ess_per_s"] / hm["observables"][k]["ess_per_s"]
                 if hy["observables"][k]["ess_per_s"] and hm["observables"][k]["ess_per_s"] else None)
             for k in ("abs_m", "m2")}
    res = {"hybrid": hy, "hmc": hm, "reference": ref, "ess_per_s_ratio_hybrid_over_hmc": ratio,
           "command": " ".join(sys.argv)}
    Path(args.out).write_text(json.dumps(res, indent=1, default=float) + "\n")
    for name, run in (("hybrid", hy), ("hmc", hm)):
        o = run["observables"]
        print(f"{name:6s} wall {run['wall_time_s']:8.1f} s  " + "  ".join(
            f"{k} {o[k]['value']:.5g}({o[k]['error']:.2g}) z {run['z_vs_ref'][k]:+.1f}" for k in OBS
            if run["z_vs_ref"][k] is not None))
        print(f"       tau_int |m| {o['abs_m']['tau_int']:.1f}, m^2 {o['m2']['tau_int']:.1f} (per stored step); "
              + ", ".join(f"{k} {run[k]:.3f}" for k in ("acceptance", "acceptance_block", "acceptance_hmc") if k in run))
    print(f"ESS/s hybrid / HMC: |m| {ratio['abs_m']}, m^2 {ratio['m2']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
