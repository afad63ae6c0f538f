"""Judging an ensemble against a reference: every observable, with errors, deviations and z-scores
(THEORY.md section 2), what ``phi4si compare`` prints.

For each ensemble (an ensemble file, an open dataset, or configurations in memory):

* the scalar observables of :mod:`~phi4si.analysis.observables` (<m>, <|m|>, <m^2>, chi, chi0, U4,
  xi_2, <S>/V) from every stored measurement, and the site moments <phi^2>, <phi^4> from the stored
  configurations;
* the momentum spectrum G(p) = <|phi~(p)|^2>/V on every momentum orbit
  (:func:`~phi4si.lattice.fourier.momentum_orbits`) and the zero-momentum correlator C(t);
* the histogram of m.

All errors are Gamma-method errors with the chains as replicas; a file with importance log-weights
(``sample-neural --method reweight``) enters with self-normalised weighted estimates.  Against the
reference, each observable gets the relative deviation (v - v_ref)/|v_ref| and the z-score
(v - v_ref)/sqrt(e^2 + e_ref^2); the m histograms get their total-variation distance
TV = (1/2) sum_bins |p_A - p_B| beside its null level, the distribution of TV between two samples of
the two ensembles' effective sizes drawn from one law (a parametric bootstrap from the pooled
histogram): a distance far above the null's 95 % point is a real difference of the laws.

Every ensemble is labelled by how it was made: ``exact (MCMC)``, ``exact (reweighted)``,
``exact (Metropolis)``, ``raw (model)`` or ``raw (unadjusted MCMC)`` (Langevin without Metropolis).  Ensembles of different lattices or couplings are refused.

>>> import numpy as np
>>> from phi4si.lattice import Phi4Params
>>> p = Phi4Params((4, 4), m2=1.0, lam=0.0)
>>> rng = np.random.default_rng(0)
>>> a = configurations(rng.normal(0, 0.5, (2000, 4, 4)), p, label="A")
>>> b = configurations(rng.normal(0, 0.5, (2000, 4, 4)), p, label="B")
>>> c = compare([a, b])
>>> abs(c.row("B", "phi2")["z"]) < 4
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ParameterError
from . import stats
from .observables import KEYS, analyze_configs, analyze_dataset, correlator_primaries, weighted_primary
from .report import KINDS, LABELS as REPORT_LABELS, kind_of, number

__all__ = ["Summary", "Comparison", "summarize", "configurations", "compare", "couplings", "kind_of", "KINDS"]

SCALARS = KEYS + ("phi2", "phi4")
LABELS = {**REPORT_LABELS, "phi2": "<phi^2>", "phi4": "<phi^4>"}
HIST_BINS = 40
NULL_DRAWS = 400
# what the couplings of two comparable ensembles must share
COUPLINGS = ("shape", "m2", "lam", "h", "k")


@dataclass
class Summary:
    """Everything :func:`compare` needs of one ensemble.  ``scalars``: {key: Estimate} for
    :data:`SCALARS`; ``spectrum``: (orbit labels, G, error); ``correlator``: (t, C, error);
    ``m``/``w``: the magnetisation of every measurement and its normalised weights (None: equal);
    ``n_eff``: the effective number of independent measurements of |m| (histogram null level)."""

    label: str
    kind: str
    params: dict
    scalars: dict
    spectrum: tuple
    correlator: tuple
    m: np.ndarray
    w: np.ndarray | None
    n_eff: float
    n: int
    ess_fraction: float | None = None
    notes: list = field(default_factory=list)

    def __repr__(self):
        am = self.scalars["abs_m"]
        return (f"Summary({self.label!r}, {self.kind}, {self.n} measurements, <|m|> = {am.value:.5g}({am.error:.2g}), "
                f"lattice {tuple(self.params['shape'])})")


def _config_part(phi, shape, log_w, S):
    """<phi^2>, <phi^4>, G(p) per orbit and C(t) from configurations (chain, n, *shape)."""
    from ..lattice.fourier import momentum_orbits, orbit_spectrum

    d = len(shape)
    V = int(np.prod(shape))
    phi = np.asarray(phi, dtype=np.float64)
    flat = phi.reshape(*phi.shape[:2], -1)
    _, labels = momentum_orbits(shape)
    g = orbit_spectrum(phi, shape)
    c = correlator_primaries(phi, d)
    series = {"phi2": (flat**2).mean(-1), "phi4": (flat**4).mean(-1), "m": flat.mean(-1)}
    series.update({f"g{k}": g[..., k] for k in range(len(labels))})
    series.update({f"c{t}": c[..., t] for t in range(shape[0])})
    prim = weighted_primary(series, log_w) if log_w is not None else stats.primary(series)
    est = {k: stats.estimate(prim[k], S=S) for k in ("phi2", "phi4")}
    G = [stats.estimate(prim[f"g{k}"], S=S) for k in range(len(labels))]
    Vperp = V // shape[0]
    C = [stats.estimate(prim[f"c{t}"] - Vperp * prim["m"] * prim["m"], S=S) for t in range(shape[0])]
    spectrum = (labels, np.array([e.value for e in G]), np.array([e.error for e in G]))
    correlator = (np.arange(shape[0]), np.array([e.value for e in C]), np.array([e.error for e in C]))
    return est, spectrum, correlator


def _summary(label, kind, params, res, m, log_w, phi, cfg_log_w, S, notes=()):
    shape = tuple(int(s) for s in params["shape"])
    if phi.shape[0] * phi.shape[1] < stats.MIN_REPLICA:
        raise ParameterError(f"{label}: needs at least {stats.MIN_REPLICA} stored configurations to compare "
                             f"(has {phi.shape[0] * phi.shape[1]})")
    est, spectrum, correlator = _config_part(phi, shape, cfg_log_w, S)
    scalars = {k: res[k] for k in KEYS}
    scalars.update(est)
    m = np.asarray(m, dtype=np.float64).ravel()
    w = None
    if log_w is not None:
        lw = np.asarray(log_w, dtype=np.float64).ravel()
        w = np.exp(lw - lw.max())
        w /= w.sum()
    ess = res.get("ess_fraction")
    n_eff = float(res["abs_m"].ess) if math.isfinite(res["abs_m"].ess) else float(m.size)
    if ess is not None:
        n_eff = min(n_eff, ess * m.size)
    return Summary(label, kind, dict(params), scalars, spectrum, correlator, m, w, max(n_eff, 1.0), int(m.size),
                   ess, list(notes))


def summarize(source, label: str | None = None, S: float = 2.0) -> Summary:
    """The :class:`Summary` of an ensemble file (path) or an open dataset (:func:`phi4si.open_ensemble`)."""
    from ..store import open_ensemble

    if isinstance(source, (str, Path, list, tuple)):          # a list: the parts of one ensemble
        with open_ensemble(source) as ds:
            name = "+".join(map(str, source)) if isinstance(source, (list, tuple)) else str(source)
            return summarize(ds, label=name if label is None else label, S=S)
    ds = source
    label = label or "ensemble"
    n_meas = ds.sizes.get("traj", 0) * ds.sizes.get("chain", 0)
    if n_meas < stats.MIN_REPLICA:
        raise ParameterError(f"{label}: needs at least {stats.MIN_REPLICA} measurements to compare (has {n_meas})")
    res = analyze_dataset(ds, S=S)
    params = dict(ds.attrs["params"])
    log_w = np.asarray(ds["log_w"].values, dtype=np.float64) if "log_w" in ds.variables else None
    phi = np.asarray(ds["phi"].values)
    cfg_log_w = None
    if log_w is not None:
        cfg = np.asarray(ds["cfg"].values, dtype=np.int64)
        cfg_log_w = log_w[:, cfg]
    return _summary(label, kind_of(ds.attrs.get("sampler")), params, res, ds["m"].values, log_w, phi, cfg_log_w, S)


def configurations(phi, params, log_w=None, label: str = "configurations", kind: str = "raw (model)",
                   S: float = 2.0) -> Summary:
    """The :class:`Summary` of configurations in memory: ``phi`` (n, *shape) independent samples or
    (chain, n, *shape) chains, ``params`` a :class:`~phi4si.lattice.Phi4Params`, optional importance
    log-weights of the same leading shape (then ``kind`` should say ``exact (reweighted)``)."""
    if kind not in KINDS:
        raise ParameterError(f"kind must be one of {KINDS}, got {kind!r}")
    shape = tuple(int(s) for s in params.shape)
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim == len(shape) + 1:
        phi = phi[None]
    if phi.shape[2:] != shape or phi.ndim != len(shape) + 2:
        raise ParameterError(f"configurations of shape {phi.shape[1:]} for a lattice {shape}")
    if log_w is not None:
        log_w = np.asarray(log_w, dtype=np.float64).reshape(phi.shape[:2])
    res = analyze_configs(phi, params, log_w=log_w, S=S)
    m = phi.reshape(*phi.shape[:2], -1).mean(-1)
    return _summary(label, kind, params.to_dict(), res, m, log_w, phi, log_w, S)


def couplings(p: dict) -> dict:
    """The lattice and couplings of a ``params`` record, normalised for comparison (absent h, k: 0).

    >>> couplings({"shape": [4, 4], "m2": -4, "lam": 8})
    {'shape': (4, 4), 'm2': -4.0, 'lam': 8.0, 'h': 0.0, 'k': 0.0}
    """
    return {k: (tuple(p[k]) if k == "shape" else float(p.get(k, 0.0))) for k in COUPLINGS}


def _tv(pa, pb) -> float:
    return 0.5 * float(np.abs(pa - pb).sum())


def histogram_distance(a: Summary, b: Summary, bins: int = HIST_BINS, seed: int = 0) -> dict:
    """Total-variation distance of the m histograms of ``a`` and ``b`` and its null level (module
    docstring): ``{"tv", "null_mean", "null_95", "edges", "a", "b"}``."""
    lo = min(a.m.min(), b.m.min())
    hi = max(a.m.max(), b.m.max())
    edges = np.linspace(lo, hi + 1e-12 * max(1.0, abs(hi)), bins + 1)
    ha = np.histogram(a.m, edges, weights=a.w)[0].astype(np.float64)
    hb = np.histogram(b.m, edges, weights=b.w)[0].astype(np.float64)
    ha, hb = ha / ha.sum(), hb / hb.sum()
    pooled = (a.n_eff * ha + b.n_eff * hb) / (a.n_eff + b.n_eff)
    rng = np.random.default_rng(seed)
    na, nb = max(int(round(a.n_eff)), 1), max(int(round(b.n_eff)), 1)
    null = np.array([_tv(rng.multinomial(na, pooled) / na, rng.multinomial(nb, pooled) / nb)
                     for _ in range(NULL_DRAWS)])
    return {"tv": _tv(ha, hb), "null_mean": float(null.mean()), "null_95": float(np.quantile(null, 0.95)),
            "edges": edges, "a": ha, "b": hb}


def _dev(v, e, ref, eref) -> tuple[float, float]:
    """(relative deviation, z); the relative deviation is undefined (NaN) where the reference is not
    resolved from zero (|v_ref| <= 2 e_ref, e.g. <m> of a Z2-symmetric theory)."""
    rel = (v - ref) / abs(ref) if abs(ref) > 2 * eref else float("nan")
    den = math.hypot(e, eref)
    z = (v - ref) / den if den > 0 and math.isfinite(den) else float("nan")
    return rel, z


@dataclass
class Comparison:
    """The result of :func:`compare`: ``summaries`` (the reference first), and per other ensemble the
    rows of scalar observables, the spectrum and correlator deviations and the histogram distance."""

    summaries: list
    rows: list
    spectra: dict
    correlators: dict
    histograms: dict

    @property
    def reference(self) -> Summary:
        return self.summaries[0]

    def row(self, label: str, key: str) -> dict:
        """The row of observable ``key`` (a :data:`SCALARS` key) for the ensemble ``label``."""
        for r in self.rows:
            if r["label"] == label and r["key"] == key:
                return r
        raise KeyError((label, key))

    def __repr__(self):
        worst = max((abs(r["z"]) for r in self.rows if math.isfinite(r["z"])), default=float("nan"))
        return (f"Comparison({len(self.summaries) - 1} ensemble(s) against {self.reference.label!r}, "
                f"{len(self.rows)} rows, largest |z| {worst:.2g})")

    def table(self) -> str:
        """The Markdown table ``phi4si compare`` prints (scalars, then a line per spectrum and histogram)."""
        ref = self.reference
        lines = [f"reference: {ref.label} [{ref.kind}], {ref.n} measurements", "",
                 "| observable | ensemble | kind | value | reference | deviation | z |", "|---|---|---|---|---|---|---|"]
        kinds = {s.label: s.kind for s in self.summaries}
        for r in self.rows:
            lines.append(f"| {LABELS[r['key']]} | {r['label']} | {kinds[r['label']]} | {number(r['value'], r['error'])} | "
                         f"{number(r['ref'], r['ref_error'])} | {_pct(r['rel'])} | {_z(r['z'])} |")
        lines.append("")
        for s in self.summaries[1:]:
            sp, cr, hi = self.spectra[s.label], self.correlators[s.label], self.histograms[s.label]
            lines.append(f"{s.label}: G(p) on {len(sp['rel'])} momentum orbits: largest |deviation| {_pct(sp['max_rel'])}"
                         f" at n = {sp['worst']}, largest |z| {sp['max_z']:.2f}, {sp['n_z3']} orbits with |z| > 3 "
                         f"({0.0027 * len(sp['rel']):.1f} expected by chance); "
                         f"C(t): largest |z| {cr['max_z']:.2f}; m histogram: TV {hi['tv']:.3f} "
                         f"(null {hi['null_mean']:.3f}, 95 % {hi['null_95']:.3f})"
                         + ("; ESS/N %.3f" % s.ess_fraction if s.ess_fraction is not None else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready dict of everything in the comparison."""
        def est(e):
            return {"value": _f(e.value), "error": _f(e.error), "tau_int": _f(e.tau_int)}

        out = {"reference": self.reference.label, "ensembles": [], "rows": [dict(r, value=_f(r["value"]),
               error=_f(r["error"]), ref=_f(r["ref"]), ref_error=_f(r["ref_error"]), rel=_f(r["rel"]), z=_f(r["z"]))
               for r in self.rows]}
        for s in self.summaries:
            out["ensembles"].append({
                "label": s.label, "kind": s.kind, "params": s.params, "n": s.n, "n_eff": s.n_eff,
                "ess_fraction": s.ess_fraction, "scalars": {k: est(v) for k, v in s.scalars.items()},
                "spectrum": {"orbits": s.spectrum[0].tolist(), "G": s.spectrum[1].tolist(), "error": s.spectrum[2].tolist()},
                "correlator": {"t": s.correlator[0].tolist(), "C": s.correlator[1].tolist(),
                               "error": s.correlator[2].tolist()}})
        for name in ("spectra", "correlators", "histograms"):
            out[name] = {label: {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in d.items()}
                         for label, d in getattr(self, name).items()}
        return out

    def plot(self, out_dir) -> list[Path]:
        """Overlaid figures in ``out_dir``: m histograms, G(p)/G_ref(p) against p_hat^2, C(t)."""
        from .plot import comparison_figures

        return comparison_figures(self, out_dir)


def _f(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def _pct(v):
    return "n/a" if not math.isfinite(v) else f"{100 * v:+.2f} %"


def _z(v):
    return "n/a" if not math.isfinite(v) else f"{v:+.2f}"


def _versus(a: tuple, ref: tuple, labels=None) -> dict:
    x, v, e = a
    _, rv, re_ = ref
    ok = np.abs(rv) > 2 * re_                     # as in _dev: only where the reference is resolved
    rel = np.where(ok, (v - rv) / np.where(ok, np.abs(rv), 1.0), np.nan)
    den = np.hypot(e, re_)
    z = np.where(den > 0, (v - rv) / np.where(den > 0, den, 1.0), np.nan)
    k = int(np.nanargmax(np.abs(rel))) if np.isfinite(rel).any() else 0
    out = {"rel": rel, "z": z, "max_rel": float(np.nanmax(np.abs(rel))) if np.isfinite(rel).any() else float("nan"),
           "max_z": float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else float("nan"),
           "n_z3": int(np.sum(np.abs(np.nan_to_num(z)) > 3))}
    if labels is not None:
        out["worst"] = [int(i) for i in labels[k]]
    return out


def _name(e, labels, i):
    if labels is not None:
        return labels[i]
    if isinstance(e, (list, tuple)):
        return "+".join(map(str, e))
    return e.label if isinstance(e, Summary) else str(e) if isinstance(e, (str, Path)) else f"ensemble {i}"


def _params_of(e) -> dict:
    from ..store import open_ensemble

    if isinstance(e, Summary):
        return e.params
    if isinstance(e, (list, tuple)):
        return _params_of(e[0])
    if isinstance(e, (str, Path)):
        with open_ensemble(e) as ds:
            return dict(ds.attrs["params"])
    return dict(e.attrs["params"])


def _check_couplings(named):
    (ref_name, ref), others = named[0], named[1:]
    for name, p in others:
        if couplings(p) != couplings(ref):
            raise ParameterError(f"{name} has couplings {couplings(p)}, the reference {ref_name} "
                                 f"{couplings(ref)}: compare ensembles of the same lattice and couplings")


def compare(ensembles, labels=None, S: float = 2.0, seed: int = 0) -> Comparison:
    """Compare ensembles with the first (the reference): paths, open datasets or :class:`Summary`
    objects (e.g. from :func:`configurations`).  ``labels`` name them (default: the paths).
    Refuses ensembles of other lattices or couplings than the reference."""
    ensembles = list(ensembles)
    if len(ensembles) < 2:
        raise ParameterError(f"compare needs a reference and at least one ensemble, got {len(ensembles)}")
    if labels is not None and len(labels) != len(ensembles):
        raise ParameterError(f"{len(labels)} labels for {len(ensembles)} ensembles")
    _check_couplings([(_name(e, labels, i), _params_of(e)) for i, e in enumerate(ensembles)])   # before the analysis
    sums = []
    for i, e in enumerate(ensembles):
        lab = None if labels is None else labels[i]
        s = e if isinstance(e, Summary) else summarize(e, label=lab, S=S)
        if lab is not None:
            s.label = lab
        sums.append(s)
    seen = [s.label for s in sums]
    if len(set(seen)) != len(seen):
        raise ParameterError(f"ensemble labels must differ, got {seen} (give labels=...)")
    ref = sums[0]
    rows, spectra, correlators, hists = [], {}, {}, {}
    for s in sums[1:]:
        for k in SCALARS:
            a, r = s.scalars[k], ref.scalars[k]
            rel, z = _dev(a.value, a.error, r.value, r.error)
            rows.append({"key": k, "label": s.label, "value": a.value, "error": a.error, "ref": r.value,
                         "ref_error": r.error, "rel": rel, "z": z})
        spectra[s.label] = _versus(s.spectrum, ref.spectrum, ref.spectrum[0])
        correlators[s.label] = _versus(s.correlator, ref.correlator)
        hists[s.label] = histogram_distance(s, ref, seed=seed)
    return Comparison(sums, rows, spectra, correlators, hists)
