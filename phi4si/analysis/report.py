"""File-level analysis used by ``phi4si analyze``: a table or JSON of observables with errors."""

from __future__ import annotations

import math

from ..errors import EnsembleFileError
from ..store import open_ensemble
from .observables import KEYS, analyze_dataset
from .stats import MIN_REPLICA

LABELS = {"m": "<m>", "abs_m": "<|m|>", "m2": "<m^2>", "chi": "chi", "chi0": "chi0", "binder": "U4",
          "xi2": "xi_2", "s": "<S>/V"}


def analyze_file(path, S: float = 2.0) -> dict:
    """Analyse an ensemble file; returns the JSON-ready dict printed by ``phi4si analyze --json``.

    Keys: ``abs_m, m, m2, chi, chi0, binder, xi2, s`` each ``{"value", "error", "tau_int",
    "tau_int_error", "ess"}``, plus ``acceptance``, ``n_chains``, ``n_traj``, ``params``, ``sampler``.
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
    """Human-readable table of :func:`analyze_file` output."""
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
    lines.append(f"{'observable':<10} {'value':>14} {'error':>11} {'tau_int':>9} {'ESS':>9}")
    if name == "interpolant":
        lines.insert(2, "NOTE: raw samples of a trained interpolant, not exact: they carry the model's bias (the "
                        "exact correction against the action: phi4si sample-neural)")
    elif s.get("exact") is False:
        lines.insert(2, "NOTE: unadjusted Langevin: results carry an O(dt) bias (use mala for exact results)")
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
    return "\n".join(lines)
