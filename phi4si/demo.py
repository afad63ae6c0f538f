"""The demo (``phi4si demo``): the paper's method end to end on an 8x8 lattice, in about two minutes.

One trained model (the shipped ``l8``: 8x8, m2 = -4, lam = 8, or one trained on the spot with
``train=True``) does every task without retraining, and every estimate stands beside HMC's:

1. HMC ground truth at h = 0 and at the fields of :data:`H_SCAN` (exact);
2. raw generation, inpainting of a 4x4 block of HMC configurations, raster sequential generation in
   4x4 blocks, and the posterior at every h of :data:`H_SCAN` through the reward transform (raw: they
   carry the model's bias);
3. the exact versions: importance reweighting of the model's proposals with its log-density, an
   independence Metropolis chain through the same proposals, and the reweighted posterior at
   h = :data:`H_DEMO` with posterior-drift proposals (exact up to the accuracy of log q).

The results go to ``out``: ``report.md`` (the table, the figures, how to read them), ``table.md``,
``demo.json`` (every number), the figures ``hist_m.png`` (HMC, raw and exact), ``configs.png``
(HMC, generated and inpainted configurations, inpainted sites outlined) and ``m_of_h.png``
(<m>(h) of the one model against HMC), and the HMC and exact-sampler ensemble files.  The maths:
papers/negrel2025/THEORY.md sections 4-6.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DemoSettings", "run_demo", "H_SCAN", "H_DEMO"]

H_SCAN = (0.01, 0.02, 0.05, 0.1)
H_DEMO = 0.05
SHAPE = (8, 8)
M2, LAM = -4.0, 8.0
BLOCK = 4                  # inpainted block and sequential blocks: 4x4
MAIN = ("abs_m", "chi", "s")


@dataclass
class DemoSettings:
    """Sizes of the demo's runs (the defaults take about two minutes on 2 cores once numba's cache is
    warm); ``model``: a shipped name or a checkpoint; ``train``: train a model first (``train_minutes``)."""

    model: str = "l8"
    train: bool = False
    train_minutes: float = 4.0
    n: int = 2000                 # raw samples per task
    n_exact: int = 384            # proposals of each exact run
    chains: int = 8
    n_traj: int = 20000           # HMC trajectories per chain, at h = 0 and at each h of H_SCAN
    seed: int = 0
    progress: bool | None = None

    def __post_init__(self):
        from .errors import ParameterError

        for name in ("n", "n_exact", "chains", "n_traj"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (8 if name != "chains" else 2):
                raise ParameterError(f"demo {name} must be an integer >= {8 if name != 'chains' else 2}, got {v!r}")
        if not (isinstance(self.train_minutes, (int, float)) and 0 < self.train_minutes <= 60):
            raise ParameterError(f"demo train_minutes must be in (0, 60], got {self.train_minutes!r}")


class _Steps:
    """Numbered progress lines on standard error, each with its wall time."""

    def __init__(self, total):
        self.total, self.i, self.t0 = total, 0, time.perf_counter()

    def __call__(self, what):
        self.i += 1
        print(f"[{self.i}/{self.total}] {what} ...", file=sys.stderr, flush=True)
        return _Timer(self)


class _Timer:
    def __init__(self, steps):
        self.steps = steps

    def __enter__(self):
        self.t = time.perf_counter()

    def __exit__(self, *exc):
        if exc[0] is None:
            now = time.perf_counter()
            print(f"      done in {now - self.t:.1f} s (total {now - self.steps.t0:.0f} s)", file=sys.stderr, flush=True)


def _hmc(params, path, chains, n_traj, seed, progress):
    from .mcmc.run import sample_mcmc

    return sample_mcmc(params, path, sampler="hmc", chains=chains, n_traj=n_traj, n_therm=200, every=10, seed=seed,
                       overwrite=True, progress=progress, command="phi4si demo")


def _configs(path, n=None):
    from .store import open_ensemble

    with open_ensemble(path) as ds:
        phi = np.asarray(ds["phi"].values, dtype=np.float64)
    flat = phi.reshape(-1, *phi.shape[2:])
    if n is None:
        return flat
    idx = np.linspace(0, len(flat) - 1, n).astype(int)
    return flat[idx]


def run_demo(out, settings: DemoSettings | None = None) -> dict:
    """Run the demo into the folder ``out``; returns what ``demo.json`` holds (``rows``: the table)."""
    import torch

    from .analysis.plot import output_folder
    from .lattice.params import Phi4Params
    from .model.checkpoint import load_model
    from .model.density import FlowSettings
    from .model.exact import sample_neural
    from .model.generate import generate, inpaint, sample_posterior, sequential
    from .model.posterior import DEFAULT_PILOT, Posterior

    st = settings or DemoSettings()
    if not st.train:                                   # a wrong model is refused before anything runs
        _checked(load_model(st.model), st.model)
    out = output_folder(out)
    params = Phi4Params(SHAPE, m2=M2, lam=LAM)
    steps = _Steps(9 + st.train)
    ss = np.random.SeedSequence(st.seed)
    seeds = [int(s.generate_state(1)[0]) for s in ss.spawn(16)]
    t_start = time.perf_counter()

    with steps(f"HMC ground truth on {SHAPE[0]}x{SHAPE[1]}, m2 = {M2:g}, lam = {LAM:g}: h = 0, "
               f"{st.chains} chains x {st.n_traj} trajectories"):
        hmc = {0.0: _hmc(params, out / "hmc_h0.h5", st.chains, st.n_traj, seeds[0], st.progress)}
    with steps(f"HMC at h = {', '.join(map(str, H_SCAN))}"):
        for i, h in enumerate(H_SCAN):
            hmc[h] = _hmc(params.with_rewards(h=h), out / f"hmc_h{h:g}.h5", st.chains, st.n_traj, seeds[1 + i],
                          st.progress)
    model_name = st.model
    if st.train:
        from .model.train import TrainConfig, train

        with steps(f"training a small model for {st.train_minutes:g} minutes on the h = 0 ensemble"):
            cfg = TrainConfig(steps=None, minutes=float(st.train_minutes), model="small", batch_size=64,
                              seed=seeds[6])
            train(hmc[0.0], out / "model.pt", cfg, overwrite=True, progress=st.progress, command="phi4si demo --train")
        model_name = str(out / "model.pt")
    model = _checked(load_model(model_name), model_name)
    torch.manual_seed(seeds[7])
    ref_phi = _configs(hmc[0.0], st.n)
    unknown = np.zeros(SHAPE, dtype=bool)
    unknown[2:2 + BLOCK, 2:2 + BLOCK] = True

    raw = {}
    with steps(f"raw tasks of the one model: generation, inpainting of a {BLOCK}x{BLOCK} block of HMC "
               f"configurations, raster sequential generation ({st.n} samples each)"):
        raw["generate"] = generate(model, st.n, seed=seeds[8], progress=st.progress)
        raw["inpaint"] = inpaint(model, ref_phi, unknown, seed=seeds[9], progress=st.progress)
        raw["sequential"] = sequential(model, st.n, order="raster", block=BLOCK, steps=10, seed=seeds[10],
                                       progress=st.progress)
    post = {}
    with steps(f"raw posterior at h = {', '.join(map(str, H_SCAN))} from the same model (reward transform, "
               "no retraining)"):
        for i, h in enumerate(H_SCAN):
            post[h] = sample_posterior(model, st.n, h=h, seed=seeds[11] + i, progress=st.progress,
                                       pilot=min(DEFAULT_PILOT, st.n))
    fs = FlowSettings(steps=4)
    with steps(f"exact: {st.n_exact} proposals reweighted with the model's log-density"):
        sample_neural(model, "reweight", out / "exact_reweight.h5", st.n_exact, fs=fs, seed=seeds[12], overwrite=True,
                      progress=st.progress, model_path=model_name, command="phi4si demo")
    with steps(f"exact posterior at h = {H_DEMO}: {st.n_exact} posterior-drift proposals reweighted"):
        sample_neural(model, "reweight", out / f"exact_posterior_h{H_DEMO:g}.h5", st.n_exact, h=H_DEMO, fs=fs,
                      seed=seeds[13], overwrite=True, progress=st.progress, model_path=model_name,
                      posterior=Posterior(h=H_DEMO, pilot=min(DEFAULT_PILOT, st.n)), command="phi4si demo")

    with steps("comparing every estimate with HMC"):
        rows, comps, entries, ref0, refs, imh_acc = _compare_all(out, params, hmc, raw, post, seeds[14])
    with steps("writing the report"):
        files = _figures(out, ref0, raw, ref_phi, unknown, comps, refs, entries, hmc)
        table = _table(rows, ref0, refs)
        doc = {"settings": st.__dict__, "model": model_name, "model_repr": repr(model), "imh_acceptance": imh_acc,
               "rows": rows, "seconds": time.perf_counter() - t_start,
               "hmc": {f"{h:g}": str(p) for h, p in hmc.items()}}
        from .io import atomic_write, write_json

        write_json(out / "demo.json", doc)
        atomic_write(out / "table.md", lambda tmp: Path(tmp).write_text(table + "\n"))
        report = _report(doc, table, files)
        atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(report))
    doc["table"] = table
    doc["report"] = str(out / "report.md")
    return doc


def _compare_all(out, params, hmc, raw, post, seed):
    """Every raw and exact ensemble of the demo against HMC at its h: (rows, comparisons, entries,
    HMC summary at h = 0, HMC summaries at each h, IMH acceptance)."""
    from .analysis.compare import compare, configurations, summarize
    from .model.exact import imh_chain
    from .store import open_ensemble

    with open_ensemble(out / "exact_reweight.h5") as ds:
        prop = np.asarray(ds["phi"].values, dtype=np.float64)[0]
        log_w = np.asarray(ds["log_w"].values, dtype=np.float64)
    idx, acc, _ = imh_chain(log_w, np.random.default_rng(seed))
    imh_phi = prop[np.maximum(idx[0], 0)]
    imh_acc = float(acc[0, 1:].mean())
    ref0 = summarize(hmc[0.0], label="HMC")
    entries = [
        ("generation", 0.0, configurations(raw["generate"], params, label="generation")),
        (f"inpainting ({BLOCK}x{BLOCK} block)", 0.0, configurations(raw["inpaint"], params, label="inpainting")),
        (f"sequential (raster, {BLOCK}x{BLOCK})", 0.0, configurations(raw["sequential"], params, label="sequential")),
        ("reweighted proposals", 0.0, summarize(out / "exact_reweight.h5", label="reweighted")),
        (f"independence Metropolis (acceptance {imh_acc:.2f})", 0.0,
         configurations(imh_phi[None], params, label="independence Metropolis", kind="exact (Metropolis)")),
    ]
    refs = {h: summarize(hmc[h], label=f"HMC h={h:g}") for h in H_SCAN}
    for h in H_SCAN:
        entries.append((f"posterior h = {h:g}", h, configurations(post[h], params.with_rewards(h=h),
                                                                   label=f"posterior h={h:g}")))
    entries.append((f"posterior h = {H_DEMO:g}, reweighted", H_DEMO,
                    summarize(out / f"exact_posterior_h{H_DEMO:g}.h5", label="posterior reweighted")))
    rows, comps = [], {}
    for task, h, s in entries:
        ref = ref0 if h == 0 else refs[h]
        c = compare([ref, s])
        comps[s.label] = c
        rows.append(_row(task, h, s, c))
    return rows, comps, entries, ref0, refs, imh_acc


def _checked(model, name):
    if tuple(model.shape) != SHAPE or model.target_params().lam != LAM or model.target_params().m2 != M2:
        from .errors import ParameterError

        raise ParameterError(f"the demo needs a model of the 8x8, m2 = {M2:g}, lam = {LAM:g} lattice; {name} is "
                             f"{model!r}")
    return model


def _row(task, h, s, c) -> dict:
    keys = (("m",) if h else ("abs_m",)) + ("chi", "s")
    row = {"task": task, "h": h, "kind": s.kind, "ess_fraction": s.ess_fraction}
    for k in keys:
        r = c.row(s.label, k)
        row[k] = {kk: (float(v) if isinstance(v, (int, float)) and np.isfinite(v) else None)
                  for kk, v in r.items() if kk in ("value", "error", "ref", "ref_error", "rel", "z")}
    sp = c.spectra[s.label]
    row["gp"] = {"orbits": len(sp["rel"]), "max_z": sp["max_z"], "n_z3": sp["n_z3"], "max_rel": sp["max_rel"]}
    return row


def _cell(e) -> str:
    from .analysis.report import number

    if e is None or e["value"] is None:
        return "n/a | n/a"
    dev = "n/a" if e["rel"] is None else f"{100 * e['rel']:+.1f} %"
    z = "" if e["z"] is None else f" (z {e['z']:+.1f})"
    return f"{number(e['value'], e['error'])} | {dev}{z}"


def _table(rows, ref0, refs) -> str:
    from .analysis.report import number

    r0 = ref0.scalars
    lines = ["HMC (exact) at h = 0: <|m|> = " + number(r0["abs_m"].value, r0["abs_m"].error)
             + ", chi = " + number(r0["chi"].value, r0["chi"].error) + ", <S>/V = " + number(r0["s"].value, r0["s"].error),
             "", "| task | h | kind | <\\|m\\|> or <m> | vs HMC | chi | vs HMC | <S>/V | vs HMC | G(p): largest \\|z\\| |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        first = r.get("abs_m") or r.get("m")
        kind = r["kind"] + (f", ESS/N {r['ess_fraction']:.2f}" if r.get("ess_fraction") is not None else "")
        gp = r["gp"]
        lines.append(f"| {r['task']} | {r['h']:g} | {kind} | {_cell(first)} | {_cell(r['chi'])} | {_cell(r['s'])} | "
                     f"{gp['max_z']:.1f} ({gp['n_z3']} of {gp['orbits']} orbits > 3) |")
    return "\n".join(lines)


def _figures(out, ref0, raw, ref_phi, unknown, comps, refs, entries, hmc) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from .analysis.plot import save_png

    files = []
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    h = comps["generation"].histograms["generation"]
    mid = 0.5 * (h["edges"][1:] + h["edges"][:-1])
    width = h["edges"][1] - h["edges"][0]
    ax.step(mid, h["b"] / width, where="mid", color="k", lw=1.8, label="HMC (exact)")
    ax.step(mid, h["a"] / width, where="mid", lw=1.2, label=f"model, raw (TV {h['tv']:.3f}, null {h['null_95']:.3f})")
    hw = comps["reweighted"].histograms["reweighted"]
    ax.step(0.5 * (hw["edges"][1:] + hw["edges"][:-1]), hw["a"] / (hw["edges"][1] - hw["edges"][0]), where="mid",
            lw=1.2, ls="--", label="model, reweighted (exact)")
    ax.set_xlabel("magnetisation m")
    ax.set_ylabel("density")
    ax.set_title("8x8, m2 = -4, lam = 8, h = 0", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    files.append(save_png(fig, out / "hist_m.png"))

    fig, axes = plt.subplots(3, 4, figsize=(7.0, 5.6))
    rows = [("HMC", ref_phi), ("generated", raw["generate"]), ("inpainted", raw["inpaint"])]
    vmax = float(np.quantile(np.abs(ref_phi), 0.99))
    im = None
    for i, (name, phi) in enumerate(rows):
        for j in range(4):
            ax = axes[i, j]
            im = ax.imshow(phi[j * (len(phi) // 4)], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if name == "inpainted":
                ys, xs = np.nonzero(unknown)
                ax.add_patch(Rectangle((xs.min() - 0.5, ys.min() - 0.5), np.ptp(xs) + 1, np.ptp(ys) + 1, fill=False,
                                       ec="k", lw=1.5))
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
    fig.colorbar(im, ax=axes, shrink=0.8, label="phi")
    fig.suptitle("configurations (inpainted: the outlined 4x4 block is drawn by the model, the rest is HMC's)",
                 fontsize=8)
    files.append(save_png(fig, out / "configs.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    hs = np.array(H_SCAN)
    ref_m = np.array([refs[h].scalars["m"].value for h in H_SCAN])
    ref_e = np.array([refs[h].scalars["m"].error for h in H_SCAN])
    ax.errorbar(hs, ref_m, yerr=ref_e, fmt="ko", ms=5, capsize=3, label="HMC at each h (exact)")
    gen = [s for task, hh, s in entries if task.startswith("posterior h") and "reweighted" not in task]
    ax.errorbar(hs * 1.02, [s.scalars["m"].value for s in gen], yerr=[s.scalars["m"].error for s in gen], fmt="s",
                ms=4, capsize=3, label="one model trained at h = 0, posterior (raw)")
    rw = [s for task, hh, s in entries if "reweighted" in task and task.startswith("posterior")][0]
    ax.errorbar([H_DEMO * 0.98], [rw.scalars["m"].value], yerr=[rw.scalars["m"].error], fmt="D", ms=5, capsize=3,
                label="posterior proposals, reweighted (exact)")
    ax.set_xscale("log")
    ax.set_xlabel("field h")
    ax.set_ylabel("<m>")
    ax.legend(fontsize=7)
    fig.tight_layout()
    files.append(save_png(fig, out / "m_of_h.png"))
    return files


def _report(doc, table, files) -> str:
    t = doc["seconds"]
    return f"""# phi4si demo: one model, every task, against HMC

Lattice 8x8, m2 = -4, lam = 8 (d = 2). Model: `{doc['model']}` - {doc['model_repr']}.
Run time {t:.0f} s. Every number below comes from this run (`demo.json`); `phi4si compare FILE_A FILE_B`
compares any two ensembles the same way (every observable, the momentum spectrum, the m histogram).

{table}

How to read it. **exact** rows are correct up to their statistical error (HMC; the model's proposals
reweighted with its log-density, or accepted by independence Metropolis): their deviations from HMC
must stay within a few z. **raw** rows are the trained model used directly - generation, inpainting,
sequential generation and the posterior under a field h, all from one model trained once at h = 0 -
and carry its bias; "vs HMC" says how large it is. ESS/N is the fraction of the proposals that
effectively count after reweighting.

![m histograms](hist_m.png)

![configurations](configs.png)

![<m>(h)](m_of_h.png)

Next steps: `phi4si models` lists the shipped models (`l16`, `l32` at the paper's point L = 32,
m2 = -4, lam = 4.572); `phi4si generate --model l32 --n 1000 --out gen.h5`, then
`phi4si compare REFERENCE.h5 gen.h5` against your own `phi4si sample-mcmc` ensemble; exact samples
with `phi4si sample-neural --method reweight|imh`. The maths: papers/negrel2025/THEORY.md.
"""
