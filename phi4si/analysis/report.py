"""File-level analysis used by ``phi4si analyze``: a table or JSON of observables with errors."""

from __future__ import annotations

import math

from ..errors import EnsembleFileError
from ..store import open_ensemble
from .observables import KEYS, analyze_dataset
from .stats import MIN_REPLICA

LABELS = {"m": "<m>", "abs_m": "<|m|>", "m2": "<m^2>", "chi": "chi", "chi0": "chi0", "binder": "U4",
          "xi2": "xi_2", "s": "<S>/V"}


KINDS = ("exact (MCMC)", "exact (reweighted)", "exact (Metropolis)", "raw (model)", "raw (unadjusted MCMC)")
# thresholds of the warnings of analyze (:func:`warnings_for`)
ESS_FRACTION_WARN = 0.1       # importance weights: below this the estimate rests on few samples
TAU_LENGTHS_WARN = 50         # chains shorter than this many tau_int (emcee's rule of thumb)
Z2_SIGMAS_WARN = 4.0          # h = 0: <m> this many errors from 0 means the chains did not tunnel


def kind_of(sampler: dict) -> str:
    """How an ensemble file was made, from its ``sampler`` record: one of :data:`KINDS`.

    >>> kind_of({"sampler": "hmc", "exact": True}), kind_of({"sampler": "interpolant"}), kind_of({"method": "imh"})
    ('exact (MCMC)', 'raw (model)', 'exact (Metropolis)')
    """
    sampler = sampler or {}
    method = sampler.get("method")
    if method == "reweight":
        return "exact (reweighted)"
    if method in ("imh", "block", "hybrid"):
        return "exact (Metropolis)"
    if sampler.get("exact") is False:
        return "raw (unadjusted MCMC)"
    if sampler.get("sampler") in ("hmc", "fahmc", "mala") or sampler.get("exact") is True:
        return "exact (MCMC)"
    return "raw (model)"


def warnings_for(res: dict) -> list[str]:
    """What a careful reader should be told about an :func:`analyze_file` result: importance weights
    with ESS/N below :data:`ESS_FRACTION_WARN`, chains shorter than :data:`TAU_LENGTHS_WARN` tau_int,
    <m> significantly non-zero in the Z2-symmetric theory (h = 0), raw (not exact) samples.

    >>> r = {"params": {"h": 0.0}, "sampler": {"sampler": "hmc", "exact": True}, "n_traj": 100, "n_chains": 1,
    ...      "m": {"value": -0.093, "error": 0.013, "tau_int": 30.0}}
    >>> [w.split(":")[0] for w in warnings_for(r)]
    ['chains too short', 'Z2 symmetry']
    """
    out = []
    if res.get("ess_fraction") is not None and res["ess_fraction"] < ESS_FRACTION_WARN:
        n = res["n_traj"] * res["n_chains"]
        out.append(f"few effective samples: ESS/N = {res['ess_fraction']:.3f}, i.e. about {res['ess_fraction'] * n:.0f} "
                   f"of {n} weighted samples carry the estimates; their errors may be underestimated")
    taus = {k: res[k]["tau_int"] for k in KEYS if isinstance(res.get(k), dict) and res[k].get("tau_int") is not None}
    if taus and kind_of(res.get("sampler")) != "exact (reweighted)":
        k, tau = max(taus.items(), key=lambda kv: kv[1])
        if res["n_traj"] < TAU_LENGTHS_WARN * tau:
            out.append(f"chains too short: {res['n_traj']} measurements per chain, {res['n_traj'] / tau:.0f} x "
                       f"tau_int({LABELS[k]}) = {tau:.3g}; below {TAU_LENGTHS_WARN} tau_int the errors and "
                       "tau_int themselves are unreliable (run longer chains)")
    m = res.get("m") or {}
    h = float((res.get("params") or {}).get("h", 0.0))
    if h == 0 and m.get("value") is not None and m.get("error") and abs(m["value"]) > Z2_SIGMAS_WARN * m["error"]:
        out.append(f"Z2 symmetry: <m> = {m['value']:.4g} is {abs(m['value']) / m['error']:.1f} errors from 0 in a "
                   "theory symmetric under phi -> -phi (h = 0): the chains do not move between the two signs "
                   "(too short) or the sampler is biased; trust <|m|>, not <m>")
    return out


def analyze_file(path, S: float = 2.0) -> dict:
    """Analyse an ensemble file (or a list of the parts of one ensemble,
    :func:`phi4si.store.open_ensembles`); returns the JSON-ready dict printed by ``phi4si analyze --json``.

    Keys: ``abs_m, m, m2, chi, chi0, binder, xi2, s`` each ``{"value", "error", "tau_int",
    "tau_int_error", "ess"}``, plus ``acceptance``, ``n_chains``, ``n_traj``, ``params``, ``sampler``,
    ``kind`` (exact or raw, :func:`kind_of`) and ``warnings`` (:func:`warnings_for`).
    Where a value or an error cannot be computed it is ``None`` (JSON null) and the entry has
    a ``"note"`` saying why (e.g. xi2 when G~(0)/G~(p_min) <= 1).

    >>> import os, tempfile
    >>> import phi4si
    >>> from phi4si.mcmc.run import sample_mcmc
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = sample_mcmc(phi4si.Phi4Params((4, 4), m2=1.0, lam=0.0), os.path.join(tmp.name, "ens.h5"), n_traj=50,
    ...                    n_therm=10, progress=False)
    >>> r = phi4si.analyze(path)
    >>> tmp.cleanup()
    >>> sorted(r["abs_m"]), r["n_chains"], r["n_traj"]
    (['error', 'ess', 'tau_int', 'tau_int_error', 'value'], 4, 50)
    """
    ds = open_ensemble(path)
    try:
        n_meas = ds.sizes.get("traj", 0) * ds.sizes.get("chain", 0)
        if ds.sizes.get("traj", 0) == 0 or n_meas < MIN_REPLICA:
            raise EnsembleFileError(f"{path}: needs at least {MIN_REPLICA} measurements to analyse (has {n_meas}); "
                                    "was the run interrupted during thermalisation?")
        res = analyze_dataset(ds, S=S)
        out = {k: _clean(res[k].to_dict()) for k in KEYS}
        out["acceptance"] = res["acceptance"]
        if "ess_fraction" in res:
            out["ess_fraction"] = res["ess_fraction"]
        out["n_chains"] = res["n_chains"]
        out["n_traj"] = res["n_traj"]
        out["params"] = ds.attrs["params"]
        out["sampler"] = ds.attrs["sampler"]
        out["eps"] = ds.attrs.get("eps")
        out["wall_time"] = ds.attrs.get("wall_time")
        out["kind"] = kind_of(out["sampler"])
        out["warnings"] = warnings_for(out)
    finally:
        ds.close()
    return out


def _clean(d):
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def _num(v, spec: str) -> str:
    """``format(v, spec)``, or ``n/a`` for a missing or non-finite number."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "n/a"
    return format(v, spec)


def number(value, error) -> str:
    """``value(error)`` with the error's two leading digits in the last places, e.g. 0.13160(40);
    ``n/a`` for a missing value, ``value(n/a)`` for a missing error.

    >>> number(0.131604, 0.000401), number(7.7549, 0.0301), number(12.5, 3.2), number(float("nan"), 1.0)
    ('0.13160(40)', '7.755(30)', '12.5(3.2)', 'n/a')
    """
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "n/a"
    if not isinstance(error, (int, float)) or not math.isfinite(error) or error <= 0:
        return f"{value:.6g}(n/a)"
    digits = max(0, 1 - int(math.floor(math.log10(error))))
    if digits == 0:
        return f"{value:.0f}({error:.0f})"
    err = round(error * 10**digits)
    if err >= 100:          # rounding carried into a third digit
        digits -= 1
        err = round(error * 10**digits)
    if digits <= 0:
        return f"{value:.0f}({error:.0f})"
    if err >= 10 ** digits:  # the error reaches the units: print it as a number
        return f"{value:.{digits}f}({error:.{digits}f})"
    return f"{value:.{digits}f}({err})"


def format_table(res: dict) -> str:
    """Human-readable table of :func:`analyze_file` output, or of the estimates of
    :func:`~phi4si.analysis.observables.analyze_configs` (configurations in memory: no file record, so
    the table says only what the estimates say).

    >>> import numpy as np
    >>> from phi4si.analysis.observables import analyze_configs
    >>> from phi4si.lattice import Phi4Params
    >>> r = analyze_configs(np.random.default_rng(0).normal(size=(100, 4, 4)), Phi4Params((4, 4), m2=1.0, lam=0.0))
    >>> format_table(r).splitlines()[0]
    'configurations in memory: chains 1  samples/chain 100'
    """
    from .stats import Estimate

    if "params" not in res:                               # analyze_configs: Estimates, no file record
        res = {k: (_clean(v.to_dict()) if isinstance(v, Estimate) else v) for k, v in res.items()}
        lines = [f"configurations in memory: chains {res['n_chains']}  samples/chain {res['n_traj']}"]
        if "ess_fraction" in res:
            lines.append(f"importance weights: ESS/N {_num(res['ess_fraction'], '.3f')}")
        return "\n".join(lines + _rows(res))
    p = res["params"]
    s = res["sampler"] or {}
    name = s.get("sampler", "?")
    head = f"phi^4 on {'x'.join(map(str, p['shape']))}: m2={p['m2']} lam={p['lam']} h={p['h']} k={p['k']}"
    if name == "interpolant":
        task = s.get("task", "generate")
        how = (f"solver {s.get('solver', '?')}  steps {s.get('steps', '?')}"
               + (f" per block ({s['order']})" if s.get("order") else "")
               + (f"  sde {_num(s.get('sde'), '.4g')}" if s.get("sde") else ""))
        lines = [head, f"sampler interpolant ({task})  chains {res['n_chains']}  samples/chain {res['n_traj']}  {how}"]
    elif name == "neural":
        method, flow = s.get("method", "?"), s.get("flow") or {}
        how = f"log q: {flow.get('solver', '?')} {flow.get('steps', '?')} steps, {flow.get('divergence', '?')} divergence"
        rew = s.get("reward") or {}
        lines = [head + (f"  (reward h={rew.get('h')} k={rew.get('k')})" if any(rew.values()) else ""),
                 f"sampler neural ({method})  chains {res['n_chains']}  samples/chain {res['n_traj']}  {how}"]
        if "ess_fraction" in res:
            lines.append(f"importance weights: ESS/N {_num(res['ess_fraction'], '.3f')} (self-normalised weighted "
                         "estimates; tau_int and ESS columns are of the weighted series)")
        else:
            lines.append(f"acceptance {_num(res.get('acceptance'), '.3f')}")
    else:
        lines = [head, f"sampler {name}  chains {res['n_chains']}  trajectories/chain {res['n_traj']}  "
                       f"acceptance {_num(res.get('acceptance'), '.3f')}  eps {_num(res.get('eps'), '.4g')}"]
    lines.append(f"samples: {res.get('kind') or kind_of(s)}")
    if name == "interpolant":
        lines.insert(2, "NOTE: raw samples of a trained interpolant, not exact: they carry the model's bias (the "
                        "exact correction against the action: phi4si sample-neural)")
    elif s.get("exact") is False:
        lines.insert(2, "NOTE: unadjusted Langevin: results carry an O(dt) bias (use mala for exact results)")
    lines += _rows(res)
    lines += [f"WARNING: {w}" for w in res.get("warnings", warnings_for(res))]
    return "\n".join(lines)


def _rows(res) -> list[str]:
    lines = [f"{'observable':<10} {'value':>14} {'error':>11} {'tau_int':>9} {'ESS':>9}"]
    for k in KEYS:
        e = res[k]
        note = f"  ({e['note']})" if e.get("note") else ""
        if e["value"] is None:
            lines.append(f"{LABELS[k]:<10} {'n/a':>14}{note}")
        elif e["error"] is None or e["tau_int"] is None or e["ess"] is None:
            lines.append(f"{LABELS[k]:<10} {e['value']:>14.6g} {'n/a':>11}{note or '  (error not computable)'}")
        else:
            lines.append(f"{LABELS[k]:<10} {e['value']:>14.6g} {e['error']:>11.3g} {e['tau_int']:>9.2f} "
                         f"{e['ess']:>9.0f}{note}")
    return lines
