#!/usr/bin/env python
"""Markdown tables from benchmarks/results/*.json; ``--write`` updates benchmarks/README.md in place.

    python benchmarks/make_table.py            # print the tables
    python benchmarks/make_table.py --write    # replace the generated block in README.md
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- BEGIN GENERATED TABLES (make_table.py) -->", "<!-- END GENERATED TABLES -->"


def _e(x):
    return f"{x:.2e}".replace("e+0", "e").replace("e-0", "e-")


def throughput_table(d) -> str:
    m, roof = d["machine"], d["roofline"]
    out = [f"**HMC throughput** (`hmc_throughput.py`, {m['date'][:10]}, {m['cpu']['model']}, "
           f"{m['cores_usable']} cores, numba {m['numba']} / torch {m['torch']}, load average "
           f"{m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}). Site-updates per second, median (best) of "
           f"{d['setup']['blocks']} interleaved blocks; d=2, m2=-4, lam=4.572, leapfrog 10 steps, eps 0.07.", "",
           "| L | numba HMC (float64) | torch baseline (float32) | ratio | torch autograd | numba, numpy momenta "
           "| numba before | GFLOP/s | % fp64 peak |",
           "|---|---|---|---|---|---|---|---|---|"]
    for res in d["results"]:
        s = res["summary"]
        by = {}
        for r in res["runners"]:
            if r["runner"] not in by or r["site_updates_per_s_median"] > by[r["runner"]]["site_updates_per_s_median"]:
                by[r["runner"]] = r

        def cell(name):
            r = by.get(name)
            return "-" if r is None else f"{_e(r['site_updates_per_s_median'])} ({_e(r['site_updates_per_s_best'])})"

        out.append(f"| {s['L']} | {cell('numba')} | {cell('torch')} [{s['torch_chains']} chains] | "
                   f"**{s['ratio_median']:.1f}x** | {cell('torch_autograd')} | {cell('numba_npmom')} | "
                   f"{cell('numba_before')} | {s.get('gflops_median', float('nan')):.1f} | "
                   f"{100 * s.get('fraction_of_peak_flops', float('nan')):.0f} % |")
    out += ["", f"Peak: {roof['cores']} cores x {roof['ghz_nominal']:.2f} GHz (nominal) x {roof['simd_lanes_fp64']} fp64 "
            f"lanes x {roof['fma_units_per_core_assumed']} FMA units x 2 = {roof['peak_fp64_flops'] / 1e9:.1f} GFLOP/s; "
            f"{roof['flops_per_site_update']} flops, {roof['loads_per_site_update']} loads + "
            f"{roof['stores_per_site_update']} stores per site-update in the hot loops; L1 load/store bound "
            f"{_e(roof['l1_bound_site_updates_per_s'])} site-updates/s."]
    return "\n".join(out)


def efficiency_table(d) -> str:
    m, st = d["machine"], d["setup"]
    out = [f"**Sampler efficiency** (`sampler_efficiency.py`, {m['date'][:10]}, {st['chains']} chains, "
           f"n_steps {st['n_steps']}, wall budget per run {st['budget_seconds_per_run']} s, "
           f"OMP_WAIT_POLICY={m.get('env', {}).get('OMP_WAIT_POLICY', 'default')}, load average "
           f"{m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}). ESS/s = ESS / file `wall_time` "
           "(thermalisation included).", "",
           "| L | sampler | eps | acc | therm+traj | ms/traj | <\\|m\\|> | tau(\\|m\\|) | ESS/s(\\|m\\|) | <m^2> | tau(m^2) "
           "| ESS/s(m^2) | z vs hmc (\\|m\\|, m^2) |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["runs"]:
        lab = r["sampler"] + ("" if r["mass"] is None else f" M={r['mass']:g}")
        a, b = r["abs_m"], r["m2"]
        out.append(f"| {r['L']} | {lab} | {r['eps']:.4f} | {r['acceptance']:.2f} | {r['n_therm']}+{r['n_traj']} | "
                   f"{1e3 * r['seconds_per_traj']:.2f} | {a['value']:.4f}({1e4 * a['error']:.0f}) | "
                   f"{a['tau_int']:.1f}({a['tau_int_error']:.1f}) | {a['ess_per_s']:.1f} | "
                   f"{b['value']:.5f}({1e5 * b['error']:.0f}) | {b['tau_int']:.1f}({b['tau_int_error']:.1f}) | "
                   f"{b['ess_per_s']:.1f} | {r['z_vs_hmc']['abs_m']:+.1f}, {r['z_vs_hmc']['m2']:+.1f} |")
    out += ["", "| L | best FA-HMC mass | ESS/s(m^2) FA/HMC | tau(m^2) HMC/FA | cost per trajectory FA/HMC |",
            "|---|---|---|---|---|"]
    for a in d["analysis"]:
        out.append(f"| {a['L']} | {a['best_fa_mass']:g} | **{a['fa_over_hmc_ess_per_s_m2']:.2f}** | "
                   f"{a['hmc_over_fa_tau_m2']:.2f} | {a['fa_over_hmc_cost_per_traj']:.1f} |")
    return "\n".join(out)


def interpolant_table(d) -> str:
    m, st = d["machine"], d["setup"]
    dev = m.get("device", {}).get("name", m["cpu"]["model"])
    out = [f"**Interpolant throughput** (`interpolant_throughput.py`, {m['date'][:10]}, {dev} ({st['device']}), "
           f"torch {m['torch']}, load average {m['loadavg_start'][0]:.2f} -> {m['loadavg_end'][0]:.2f}). "
           f"Training: samples/s of a whole step (multitask measure, Hadamard, b, AdamW, EMA), batch "
           f"{st['train_batch']}, {st['amp_train'] if st['amp_train'] != 'none' else st['dtype']}, median of "
           f"{st['timed_steps']} steps after {st['warmup_steps']} warm-up; in brackets batch / process CPU seconds "
           "(1 thread: the rate if the process had never waited for a core; 2 threads: per core-second).", "",
           "| model | L | params | odd | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in st["train_threads"])
           + f" | prep share ({st['train_threads'][0]} thr.) |",
           "|---|---|---|---|" + "---|" * len(st["train_threads"]) + "---|"]
    keys = []
    for r in d["train"]:
        k = (r["model"], r["L"], r["odd"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        rows = {r["threads"]: r for r in d["train"] if (r["model"], r["L"], r["odd"]) == k}
        cells = [f"{rows[t]['samples_per_s']:.0f} ({rows[t]['samples_per_cpu_s']:.0f})" if t in rows else "-"
                 for t in st["train_threads"]]
        first = rows[st["train_threads"][0]]
        out.append(f"| {k[0]} | {k[1]} | {first['params']:,} | {'yes' if k[2] else 'no'} | " + " | ".join(cells)
                   + f" | {100 * first['prep_fraction']:.0f} % |")
    solvers = st["solvers"]
    out += ["", f"Generation: configurations/s (network evaluations/s) of a full ODE solve along `GenerationPath`, "
            f"batch {st['gen_batch']}, float32, `no_grad`, {st['gen_reps']} timed solve(s) each.", "",
            "| model | L | odd | threads | " + " | ".join(s.replace(":", " ") + " steps" for s in solvers) + " |",
            "|---|---|---|---|" + "---|" * len(solvers)]
    gkeys = []
    for r in d["generate"]:
        k = (r["model"], r["L"], r["odd"], r["threads"])
        if k not in gkeys:
            gkeys.append(k)
    for k in gkeys:
        rows = {f"{r['method']}:{r['steps']}": r for r in d["generate"]
                if (r["model"], r["L"], r["odd"], r["threads"]) == k}
        cells = [f"{rows[s]['cfg_per_s']:.0f} ({rows[s]['nfe_per_s']:.1f})" if s in rows else "-" for s in solvers]
        out.append(f"| {k[0]} | {k[1]} | {'yes' if k[2] else 'no'} | {k[3]} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _pm(e, digits=4):
    if e is None or e.get("value") is None:
        return "-"
    return f"{e['value']:.{digits}f}({e['error']:.{digits}f})" if e.get("error") is not None else f"{e['value']:.{digits}f}"


def exact_table(runs) -> str:
    """Tables of ``exact_sampling.py`` results (one per lattice)."""
    out = ["**Exact sampling** (`exact_sampling.py`): one model per lattice trained at h = 0 on CPU, proposals "
           "with log q from the ODE and its divergence (RK4, colored probes), corrected by importance weights (reweight) "
           "or independence Metropolis (imh, chains through the same proposals); the posterior h = 0.05 uses the same "
           "proposals. z = (x - x_HMC) / combined error against long HMC ensembles.", "",
           "| L | couplings | model | s / proposal | ESS/N prior | ESS/N h=0.05 | IMH acc. prior / h | block acc. | "
           "hybrid acc. block / HMC | s / block update |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for d in runs:
        p = d["params"]
        hy = d["hybrid"]["summary"]
        out.append(f"| {d['shape'][0]} | m2={p['m2']}, lam={p['lam']} | {d['train_seconds'] / 60:.0f} min, "
                   f"{d['model_step']} steps | {d['seconds_per_proposal']:.2f} | {d['prior']['ess_fraction']:.2f} | "
                   f"{d['posterior']['ess_fraction']:.2f} | {d['prior']['imh_acceptance']:.2f} / "
                   f"{d['posterior']['imh_acceptance']:.2f} | {d['block']['summary']['acceptance_block']:.2f} | "
                   f"{hy['acceptance_block']:.2f} / {hy['acceptance_hmc']:.2f} | "
                   f"{d['block']['seconds_per_update']:.2f} |")
    out += ["", "| L | target | observable | HMC | raw model (z) | reweight (z) | IMH (z) |", "|---|---|---|---|---|---|---|"]
    names = {"abs_m": "<\\|m\\|>", "chi": "chi", "binder": "U4", "m": "<m>"}
    for d in runs:
        for tag, ref in (("prior", d["hmc_reference"]["prior"]), ("posterior", d["hmc_reference"]["posterior"])):
            if ref is None:
                continue
            sec = d[tag]
            keys = ("abs_m", "chi", "binder") if tag == "prior" else ("m", "abs_m", "chi")
            for k in keys:
                cells = [f"{_pm(sec[m][k])} ({sec['z'][m][k]:+.1f})" for m in ("raw", "reweight", "imh")]
                out.append(f"| {d['shape'][0]} | {'h = 0' if tag == 'prior' else 'h = ' + str(d['h'])} | {names[k]} | "
                           f"{_pm(ref[k])} | " + " | ".join(cells) + " |")
    out += ["", "ESS per second relative to HMC on the same machine in the same run: the ratio of 1/(err^2 x seconds) "
                "(neural / HMC; \"with training\" adds the model's training time).", "",
            "| L | observable | HMC ESS/s (1/(err^2 s)) | reweight / HMC | IMH / HMC | reweight incl. training | "
            "IMH incl. training |", "|---|---|---|---|---|---|---|"]
    for d in runs:
        for k in ("abs_m", "chi"):
            e = d["efficiency"][k]
            out.append(f"| {d['shape'][0]} | {names[k]} | {_e(e['hmc'])} | {e['reweight_ratio']:.1e} | "
                       f"{e['imh_ratio']:.1e} | {e['reweight_with_training_ratio']:.1e} | "
                       f"{e['imh_with_training_ratio']:.1e} |")
    return "\n".join(out)


def accuracy_table(d) -> str:
    out = [f"**Log-density accuracy** (`log_density_accuracy.py`, L = {d['shape'][0]}, {d['n']} samples of the "
           f"model): difference of log q from the reference, time in the same run (spread of log w on these "
           f"samples: {d['log_w_std']:.2f}).", "",
           "| setting | seconds | cost / reference | std of difference | mean of difference |", "|---|---|---|---|---|"]
    for r in d["rows"]:
        if "dlogq_std" not in r:
            out.append(f"| {r['setting']} | {r['seconds']:.1f} | 1 | - | - |")
        else:
            out.append(f"| {r['setting']} | {r['seconds']:.1f} | {r['cost_vs_reference']:.2f} | {r['dlogq_std']:.3f} | "
                       f"{r['dlogq_mean']:+.3f} |")
    return "\n".join(out)


def tables() -> str:
    parts = []
    for name, fn in (("hmc_throughput.json", throughput_table), ("sampler_efficiency.json", efficiency_table),
                     ("interpolant_throughput.json", interpolant_table)):
        p = HERE / "results" / name
        if p.exists():
            parts.append(fn(json.loads(p.read_text())))
        else:
            parts.append(f"(no `results/{name}` yet)")
    runs = sorted((json.loads(p.read_text()) for p in (HERE / "results").glob("exact_sampling_*.json")),
                  key=lambda d: d["shape"][0])
    parts.append(exact_table(runs) if runs else "(no `results/exact_sampling_*.json` yet)")
    for p in sorted((HERE / "results").glob("log_density_accuracy_*.json")):
        parts.append(accuracy_table(json.loads(p.read_text())))
    return "\n\n".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="update the generated block of benchmarks/README.md")
    args = ap.parse_args(argv)
    t = tables()
    if not args.write:
        print(t)
        return
    readme = HERE / "README.md"
    text = readme.read_text()
    i, j = text.index(BEGIN), text.index(END)
    readme.write_text(text[: i + len(BEGIN)] + "\n" + t + "\n" + text[j:])
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
