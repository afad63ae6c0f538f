"""Posterior magnetisation study (the paper's figure 5): one prior model, many rewards, three methods.

For each reward (a field h, or an extra coupling k) the script compares

1. HMC run directly at that h or k (an ensemble file per reward, made by posterior_study.sh),
2. importance reweighting of the prior (h = k = 0) HMC ensemble by exp(h sum phi + k sum phi^2)
   (self-normalised, delta-method errors; it checks the prior ensemble and the reward, not the model),
3. the raw posterior generator: the model trained at h = 0 run with the posterior drift of the reward
   transform (phi4si.model.posterior; no retraining), for one or several start settings (a0, start),

on <m>, <|m|>, chi, U4 and <S>/V (Gamma-method errors; S with the reward's terms) and, for the
generator, the worst relative deviation of the momentum spectrum G(p) from HMC's (phi4si.compare),
writes a JSON file, a markdown table and a figure of
the histograms of m.

    python papers/negrel2025/posterior_study.py --model W/l8.pt --prior W/l8_ref.h5 \
        --hmc 'W/l8_{reward}.h5' --h 0.01 0.02 0.05 0.1 --k -0.5 -0.25 --n 2000 \
        --out results/posterior_l8.json --figure results/posterior_l8.png

``--variants a0=0.9,start=pilot a0=0.99,start=noise`` runs the generator once per variant (the
start-point study); the first variant is the one the targets are judged on.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

OBS = ("m", "abs_m", "chi", "binder", "s")
LABEL = {"m": "<m>", "abs_m": "<|m|>", "chi": "chi", "binder": "U4", "s": "<S>/V"}


def _est(res):
    return {k: [res[k].value, res[k].error] for k in OBS}


def _parse_variant(spec):
    out = {"a0": None, "start": "pilot", "steps": None, "rounds": None}
    for part in spec.split(","):
        key, _, val = part.partition("=")
        if key == "a0":
            out["a0"] = float(val)
        elif key == "steps":
            out["steps"] = int(val)
        elif key == "rounds":
            out["rounds"] = int(val)
        elif key == "start":
            out["start"] = val if val in ("pilot", "noise") else float(val)
        else:
            raise SystemExit(f"bad variant {spec!r}: use a0=VALUE,start=pilot|noise|VALUE[,steps=N][,rounds=R]")
    return out


def _prior_configs(path):
    from phi4si import open_ensemble

    with open_ensemble(path) as ds:
        return np.asarray(ds["phi"].values, dtype=np.float64)


def _hmc_m(path):
    from phi4si import open_ensemble

    with open_ensemble(path) as ds:
        return np.asarray(ds["m"].values).ravel()


def run_reward(model, params, prior_phi, hmc_path, h, k, n, steps, solver, variants, seed):
    from phi4si.analysis.report import analyze_file
    from phi4si.model.generate import generate
    from phi4si.analysis.observables import analyze_configs
    from phi4si.model.posterior import Posterior

    pr = params.with_rewards(h=h, k=k)
    row = {"reward": {"h": h, "k": k}}
    hm = analyze_file(hmc_path)
    row["hmc"] = {o: [hm[o]["value"], hm[o]["error"]] for o in OBS}
    row["hmc"]["file"] = str(hmc_path)
    m_hmc = _hmc_m(hmc_path)

    sums = prior_phi.reshape(*prior_phi.shape[:2], -1)
    log_w = h * sums.sum(-1) + k * (sums**2).sum(-1)
    rw = analyze_configs(prior_phi, pr, log_w=log_w)
    row["reweight"] = dict(_est(rw), ess_fraction=rw["ess_fraction"], n=int(log_w.size))
    m_prior = sums.mean(-1).ravel()
    w = np.exp(log_w.ravel() - log_w.max())

    row["generator"] = []
    hists = {"hmc": (m_hmc, None), "reweight": (m_prior, w / w.sum())}
    for i, var in enumerate(variants):
        t0 = time.perf_counter()
        post = Posterior(h=h, k=k, a0=var["a0"], start=var["start"],
                         **({} if var["rounds"] is None else {"rounds": var["rounds"]}))
        phi = generate(model, n, steps=var["steps"] or steps, solver=solver, seed=seed, batch_size=500, posterior=post)
        dt = time.perf_counter() - t0
        g = analyze_configs(phi, pr)
        ent = dict(_est(g), variant={"a0": post.start_time(model), "start": var["start"], "steps": var["steps"] or steps,
                                     "rounds": post.rounds},
                   n=n, seconds=dt)
        for o in OBS:
            ref, err = row["hmc"][o]
            v, e = ent[o]
            ent[f"rel_{o}"] = (v - ref) / ref if ref else None
            ent[f"z_{o}"] = (v - ref) / np.hypot(e, err)
        from phi4si.analysis.compare import compare, configurations

        sp = compare([hmc_path, configurations(phi, pr, label="generator")]).spectra["generator"]
        ent["G_p"] = {"max_rel": sp["max_rel"], "max_z": sp["max_z"], "n_z3": sp["n_z3"]}
        row["generator"].append(ent)
        if i == 0:
            hists["generator"] = (phi.reshape(n, -1).mean(-1), None)
    for o in OBS:
        ref, err = row["hmc"][o]
        v, e = row["reweight"][o]
        row["reweight"][f"z_{o}"] = (v - ref) / np.hypot(e, err)
    return row, hists


def table(rows, name, shape, meta):
    out = [f"**posterior_{name}**: model {meta['model']} trained at h = k = 0 on {meta['train_shape']}, "
           f"{meta['n']} posterior samples per row ({meta['solver']}:{meta['steps']}); HMC at the same h or k; "
           f"reweighting of the prior HMC ensemble ({rows[0]['reweight']['n']} configurations).",
           "",
           "| reward | method | <m> | <\\|m\\|> | chi | U4 | <S>/V | vs HMC (<m> for h, <\\|m\\|> for k) | <S>/V vs HMC "
           "| G(p): worst rel. dev. | note |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        rew = ", ".join(f"{k}={v:g}" for k, v in r["reward"].items() if v)

        def cells(d):
            return " | ".join(f"{d[o][0]:.4g}({d[o][1]:.2g})" for o in OBS)
        out.append(f"| {rew} | HMC | {cells(r['hmc'])} | | | | |")
        rw = r["reweight"]
        o = "m" if r["reward"]["h"] else "abs_m"           # <m> vanishes for a pure k reward
        out.append(f"| {rew} | reweight | {cells(rw)} | z={rw['z_' + o]:+.1f} | z={rw['z_s']:+.1f} | | "
                   f"ESS/N {rw['ess_fraction']:.2f} |")
        for g in r["generator"]:
            v = g["variant"]
            st = f" {meta['solver']}:{v['steps']}" if v.get("steps", meta["steps"]) != meta["steps"] else ""
            st += f" {v['rounds']} rounds" if v.get("rounds") is not None and v["rounds"] != 2 else ""
            gp = g.get("G_p") or {}
            gps = f"{100 * gp['max_rel']:.1f}% (max z {gp['max_z']:.1f})" if gp.get("max_rel") is not None else ""
            out.append(f"| {rew} | generator a0={v['a0']:.3g} {v['start']}{st} | {cells(g)} | "
                       f"{100 * g['rel_' + o]:+.1f}% z={g['z_' + o]:+.1f} | {100 * g['rel_s']:+.1f}% z={g['z_s']:+.1f} | "
                       f"{gps} | {g['seconds']:.0f} s |")
    return "\n".join(out) + "\n"


def figure(all_hists, rows, path, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(rows)
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 2.8), squeeze=False)
    for ax, r, hs in zip(axes[0], rows, all_hists):
        lo = min(np.quantile(v, 0.001) for v, _ in hs.values())
        hi = max(np.quantile(v, 0.999) for v, _ in hs.values())
        bins = np.linspace(lo, hi, 41)
        for lab, (v, w) in hs.items():
            ax.hist(v, bins=bins, weights=w, density=True, histtype="step", label=lab)
        ax.set_title(", ".join(f"{k}={v:g}" for k, v in r["reward"].items() if v), fontsize=9)
        ax.set_xlabel("m")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"posterior of m, {name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--render", metavar="JSON", help="only rewrite the markdown table of a finished JSON file")
    ap.add_argument("--model")
    ap.add_argument("--prior", help="prior (h = k = 0) HMC ensemble with stored configurations")
    ap.add_argument("--hmc", help="HMC file pattern with {reward} -> h0.05, k-0.5, ...")
    ap.add_argument("--h", type=float, nargs="*", default=[])
    ap.add_argument("--k", type=float, nargs="*", default=[])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--solver", default="heun")
    ap.add_argument("--variants", nargs="+", default=["a0=0.9,start=pilot"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--name", default="")
    ap.add_argument("--out")
    ap.add_argument("--figure")
    a = ap.parse_args(argv)
    if a.render:
        d = json.loads(Path(a.render).read_text())
        Path(a.render).with_suffix(".md").write_text(table(d["rows"], d["name"], None, d["meta"]))
        return
    if not (a.model and a.prior and a.hmc and a.out):
        ap.error("--model, --prior, --hmc and --out are required")

    import torch

    from phi4si.model import load_model

    torch.set_num_threads(a.threads)
    model = load_model(a.model)
    params = model.target_params()
    prior_phi = _prior_configs(a.prior)
    variants = [_parse_variant(v) for v in a.variants]
    rewards = [(h, 0.0, f"h{h:g}") for h in a.h] + [(0.0, k, f"k{k:g}") for k in a.k]
    rows, hists = [], []
    for h, k, tag in rewards:
        row, hs = run_reward(model, params, prior_phi, Path(a.hmc.format(reward=tag)), h, k, a.n, a.steps, a.solver,
                             variants, a.seed)
        rows.append(row)
        hists.append(hs)
        Path(a.out).write_text(json.dumps({"name": a.name, "partial": True, "rows": rows}, indent=1))
        g = row["generator"][0]
        print(f"{tag}: HMC <m> {row['hmc']['m'][0]:.4f}({row['hmc']['m'][1]:.1g})  reweight z={row['reweight']['z_m']:+.1f}"
              f"  generator {100 * g['rel_m']:+.1f}% z={g['z_m']:+.1f}", flush=True)
    meta = {"model": Path(a.model).name, "train_shape": "x".join(map(str, model.shape)), "n": a.n,
            "steps": a.steps, "solver": a.solver, "variants": a.variants, "seed": a.seed,
            "command": " ".join(sys.argv)}
    Path(a.out).write_text(json.dumps({"name": a.name, "meta": meta, "rows": rows}, indent=1))
    md = table(rows, a.name, model.shape, meta)
    Path(a.out).with_suffix(".md").write_text(md)
    print(md)
    if a.figure:
        figure(hists, rows, a.figure, a.name)


if __name__ == "__main__":
    main()
