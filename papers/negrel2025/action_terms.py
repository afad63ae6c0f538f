"""Why <S>/V is hard for a generator: its terms, from a generation_speed.py result file.

<S>/V = (1/V) sum_p p_hat^2 G(p)  +  m2 <phi^2>  +  lam <phi^4>   (THEORY.md sections 1-2), with
<phi^2> = (1/V) sum_p G(p); the kinetic and mass terms come from the spectrum G(p) of each run (and of
the reference), the quartic term is what remains of the measured <S>/V.  The script prints each term
for the reference and the change of each term in every run.

    python papers/negrel2025/action_terms.py papers/negrel2025/results/l32_solver.json \
        --out papers/negrel2025/results/l32_action_terms.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def terms(G, s, shape, m2):
    from phi4si.lattice import momentum_orbits, orbit_p_hat2

    index, _ = momentum_orbits(shape)
    count = np.bincount(index.ravel())
    V = int(np.prod(shape))
    kinetic = float((orbit_p_hat2(shape) * G * count).sum() / V)
    mass = float(m2 * (G * count).sum() / V)
    return {"kinetic": kinetic, "mass": mass, "quartic": float(s - kinetic - mass), "s": float(s)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("result", help="a benchmarks/generation_speed.py JSON file")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    d = json.load(open(a.result))
    shape, m2 = tuple(d["shape"]), float(d["params"]["m2"])
    s_ref = d["rows"][0]["observables"]["s"]["ref"]
    ref = terms(np.asarray(d["ref_G"]), s_ref, shape, m2)
    doc = {"source": a.result, "reference": ref, "runs": {}}
    print("reference: " + ", ".join(f"{k} {v:+.4f}" for k, v in ref.items()))
    for r in d["rows"]:
        t = terms(np.asarray(r["G"]["gen"]), r["observables"]["s"]["gen"], shape, m2)
        delta = {k: t[k] - ref[k] for k in t}
        rel = {k: delta[k] / abs(ref[k]) for k in t}
        doc["runs"][r["spec"]] = {"terms": t, "delta": delta, "rel": rel}
        print(f"{r['spec']}: " + ", ".join(f"{k} {delta[k]:+.4f} ({100 * rel[k]:+.2f} %)" for k in t))
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
