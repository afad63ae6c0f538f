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


def tables() -> str:
    parts = []
    for name, fn in (("hmc_throughput.json", throughput_table), ("sampler_efficiency.json", efficiency_table)):
        p = HERE / "results" / name
        if p.exists():
            parts.append(fn(json.loads(p.read_text())))
        else:
            parts.append(f"(no `results/{name}` yet)")
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
