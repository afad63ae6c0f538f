"""The first plots a physicist looks at, as PNGs: ``phi4si plot FILE.h5 --out DIR``.

* ``hist_m.png``      histogram of the magnetisation m (all chains)
* ``history.png``     Monte Carlo history of m and S/V for a few chains
* ``correlator.png``  zero-momentum correlator C(t) with Gamma-method errors (log scale)
                      and the effective mass arccosh((C(t-1)+C(t+1))/(2C(t))), when at least 5
                      configurations are stored
* ``configs.png``     a few stored configurations (2-D slices for d > 2; line plots for d = 1) with colour
                      bars, the inpainted sites of ``phi4si inpaint`` outlined, when at least 2 are stored
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_ensemble(path, out_dir, max_chains: int = 4) -> list[Path]:
    """Write the PNGs listed in the module docstring; returns their paths (``phi4si plot --reference``
    adds the overlays of :func:`comparison_figures`).

    >>> import os, tempfile
    >>> from phi4si.lattice import Phi4Params
    >>> from phi4si.mcmc.run import sample_mcmc
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = sample_mcmc(Phi4Params((4, 4), m2=1.0, lam=0.0), os.path.join(tmp.name, "ens.h5"), n_traj=20,
    ...                    n_therm=5, progress=False)
    >>> [p.name for p in plot_ensemble(path, os.path.join(tmp.name, "plots"))]
    ['hist_m.png', 'history.png', 'correlator.png', 'configs.png']
    >>> tmp.cleanup()
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..store import open_ensemble
    from .stats import MIN_REPLICA

    from ..errors import ParameterError

    out_dir = output_folder(out_dir, create=False)
    ds = open_ensemble(path)
    if ds.sizes.get("traj", 0) == 0:
        ds.close()
        from ..errors import EnsembleFileError

        raise EnsembleFileError(f"{path}: holds no measured trajectories yet (interrupted during thermalisation?)")
    try:
        output_folder(out_dir)
    except ParameterError:
        ds.close()
        raise
    p = ds.attrs["params"]
    shape = tuple(p["shape"])
    V = int(np.prod(shape))
    title = f"{'x'.join(map(str, shape))}, m2={p['m2']}, lam={p['lam']}, h={p['h']}, k={p['k']} ({ds.attrs['sampler']['sampler']})"
    written = []
    m = np.asarray(ds["m"].values)
    S = np.asarray(ds["S"].values) / V

    fig, ax = plt.subplots(figsize=(5, 3.5))
    if "log_w" in ds.variables:                  # a reweighted ensemble: the target's histogram, not the proposal's
        from .observables import ess_fraction

        lw = np.asarray(ds["log_w"].values, dtype=np.float64).ravel()
        w = np.exp(lw - lw.max())
        ax.hist(m.ravel(), bins=60, density=True, color="C1", alpha=0.8, weights=w,
                label=f"importance-weighted (ESS/N {ess_fraction(lw):.2f})")
        ax.hist(m.ravel(), bins=60, density=True, histtype="step", color="C0", label="proposals (unweighted)")
        ax.legend(fontsize=7)
    else:
        ax.hist(m.ravel(), bins=60, density=True, color="C0", alpha=0.8)
    ax.set_xlabel("m")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    written.append(save_png(fig, out_dir / "hist_m.png"))

    fig, axs = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
    for c in range(min(max_chains, m.shape[0])):
        axs[0].plot(ds["traj"].values, m[c], lw=0.6)
        axs[1].plot(ds["traj"].values, S[c], lw=0.6)
    axs[0].set_ylabel("m")
    axs[1].set_ylabel("S / V")
    axs[1].set_xlabel("trajectory")
    axs[0].set_title(title, fontsize=8)
    fig.tight_layout()
    written.append(save_png(fig, out_dir / "history.png"))

    nphi = ds.sizes.get("cfg", 0) * ds.sizes.get("chain", 0)
    if nphi >= MIN_REPLICA:  # the Gamma-method errors of C(t) need 5 configurations
        written.append(_correlator_figure(ds, title, out_dir))

    if nphi >= 2:
        phi = ds["phi"]
        rec = (ds.attrs.get("sampler") or {}).get("unknown")
        unknown = None if rec is None else np.asarray(rec, dtype=bool)
        while unknown is not None and unknown.ndim > 2:
            unknown = unknown[..., 0]
        n = min(4, ds.sizes["cfg"])
        fig, axs = plt.subplots(1, n, figsize=(2.6 * n, 2.6), squeeze=False)
        for i in range(n):
            cfg = np.asarray(phi.isel(chain=0, cfg=ds.sizes["cfg"] - 1 - i).values)
            while cfg.ndim > 2:
                cfg = cfg[..., 0]
            ax = axs[0, i]
            if cfg.ndim == 1:
                ax.plot(cfg)
            else:
                vmax = float(np.abs(cfg).max()) or 1.0
                im = ax.imshow(cfg, cmap="RdBu_r", vmin=-vmax, vmax=vmax)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
                if unknown is not None and unknown.shape == cfg.shape and unknown.any():
                    # the sites the model drew (phi4si inpaint), outlined; the rest is the input data
                    up = np.kron(unknown.astype(float), np.ones((10, 10)))       # sharp cell edges
                    ys, xs = ((np.arange(n) + 0.5) / 10 - 0.5 for n in up.shape)
                    ax.contour(xs, ys, up, levels=[0.5], colors="k", linewidths=1.2)
                ax.set_xticks([])
                ax.set_yticks([])
            ax.set_title(f"traj {int(ds['cfg'].values[ds.sizes['cfg'] - 1 - i])}", fontsize=8)
        fig.tight_layout()
        written.append(save_png(fig, out_dir / "configs.png"))
    ds.close()
    return written


def _correlator_figure(ds, title, out_dir):
    """correlator.png: C(t) with Gamma-method errors (log scale) and the effective mass."""
    import matplotlib.pyplot as plt

    from .observables import zero_momentum_correlator

    t, C, dC = zero_momentum_correlator(ds)
    fig, axs = plt.subplots(1, 2, figsize=(9, 3.5))
    pos = C > 0
    axs[0].errorbar(t[pos], C[pos], dC[pos], fmt="o", ms=3, capsize=2)
    axs[0].set_yscale("log")
    axs[0].set_xlabel("t")
    axs[0].set_ylabel("C(t)")
    with np.errstate(invalid="ignore", divide="ignore"):
        num = np.roll(C, 1) + np.roll(C, -1)
        arg = num / (2 * C)
        meff = np.arccosh(arg)
        # linear error propagation with the C(t) errors taken as independent (their correlations are
        # neglected; the axis label says so)
        darg = np.abs(arg) * np.hypot(np.hypot(np.roll(dC, 1), np.roll(dC, -1)) / num, dC / C)
        dmeff = darg / np.sqrt(arg**2 - 1)
    axs[1].errorbar(t[1:-1], meff[1:-1], dmeff[1:-1], fmt="o", ms=3, capsize=2)
    axs[1].set_xlabel("t")
    axs[1].set_ylabel("effective mass (errors: uncorrelated propagation)")
    axs[0].set_title(title, fontsize=8)
    fig.tight_layout()
    return save_png(fig, out_dir / "correlator.png")


def save_png(fig, path):
    import matplotlib.pyplot as plt

    from ..io import save_figure

    save_figure(fig, path, dpi=110)
    plt.close(fig)
    return path


def output_folder(out_dir, create: bool = True) -> Path:
    """The folder figures go to, checked (a name, not a file) and created unless ``create=False``."""
    from ..errors import ParameterError

    if not str(out_dir).strip():
        raise ParameterError("the plot output folder is empty: give a folder name (it is created if needed)")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ParameterError(f"plot output {out_dir} exists and is a file, not a directory")
    if not create:
        return out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ParameterError(f"cannot create the plot output folder {out_dir}: {e.strerror or e}") from None
    return out_dir


def comparison_figures(comparison, out_dir) -> list[Path]:
    """The overlays of a :class:`~phi4si.analysis.compare.Comparison`: ``compare_hist_m.png`` (the m
    histograms, importance weights applied), ``compare_spectrum.png`` (G(p)/G_ref(p) on every momentum
    orbit against p_hat^2, with errors) and ``compare_correlator.png`` (C(t), log scale, with errors)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = output_folder(out_dir)
    ref = comparison.reference
    shape = tuple(ref.params["shape"])
    written = []
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for s in comparison.summaries[1:]:
        h = comparison.histograms[s.label]
        mid = 0.5 * (h["edges"][1:] + h["edges"][:-1])
        width = h["edges"][1] - h["edges"][0]
        if s is comparison.summaries[1]:
            ax.step(mid, h["b"] / width, where="mid", color="k", lw=1.5, label=f"{ref.label} [{ref.kind}]")
        ax.step(mid, h["a"] / width, where="mid", lw=1.2,
                label=f"{s.label} [{s.kind}] TV {h['tv']:.3f} (null {h['null_95']:.3f})")
    ax.set_xlabel("m")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(save_png(fig, out_dir / "compare_hist_m.png"))

    from ..lattice.fourier import orbit_p_hat2

    p_abs = np.sqrt(orbit_p_hat2(shape))
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for s in comparison.summaries[1:]:
        _, v, e = s.spectrum
        rv, re_ = ref.spectrum[1], ref.spectrum[2]
        ratio = v / rv
        ax.errorbar(p_abs, ratio, yerr=np.abs(ratio) * np.hypot(e / v, re_ / rv), fmt="o", ms=3, capsize=2,
                    label=f"{s.label} [{s.kind}]")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("|p_hat| (momentum orbits)")
    ax.set_ylabel(f"G(p) / G(p) of {ref.label}")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(save_png(fig, out_dir / "compare_spectrum.png"))

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for s in comparison.summaries:
        t, c, e = s.correlator
        ok = c > 0
        ax.errorbar(t[ok], c[ok], yerr=e[ok], fmt="o-", ms=3, capsize=2, lw=0.8, label=f"{s.label} [{s.kind}]")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("C(t)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    written.append(save_png(fig, out_dir / "compare_correlator.png"))
    return written
