"""Optimised time grids ("path optimisation at inference", offline): for one trained model, one task
and one solver with a fixed number of steps, the grid of integration times that minimises the
measured discretisation error of the model's own transport on a pilot batch.

The path between the task's end points stays what it is (the interpolant's operators, the task's
pinned sites); what is optimised is its time parametrisation: where the ``steps`` solver steps of
each segment fall, u_0 = 0 < u_1 < ... < u_steps = 1 (each segment of the path's time s is mapped
onto [0, 1]; :func:`~phi4si.interpolant.paths.time_grid`).  The objective is the mean squared
difference, in the model's normalised units, between the task's samples integrated on the grid and
a fine reference solve (RK4, ``ref_steps`` per segment) of the same pilot noise: the error itself,
measured, not a proxy.  The grid is parametrised as u = cumsum(softmax(theta)) (increasing, ends
fixed), started from the best power-law grid 1 - (1 - u)^P of the solver, and improved by Powell's
method; a second noise batch (``seed + 1``) that the optimisation never saw checks the result.

The outcome is a *path file* (JSON, :func:`write_path_file`) that ``phi4si generate``, ``inpaint`` and
``posterior`` take with ``--path FILE`` (its solver and steps come with it), and
``phi4si optimize-path`` writes.

>>> from phi4si.interpolant.oracle import free_field_oracle
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.model import DriftModel
>>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
>>> r = optimise_grid(m, steps=3, solver="euler", pilot=16, ref_steps=32, maxfev=60)
>>> len(r["grid"]), r["grid"][0], r["grid"][-1], r["held_out"]["mse"] <= r["held_out"]["mse_start"]
(4, 0.0, 1.0, True)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .._version import __version__
from ..errors import ParameterError

__all__ = ["optimise_grid", "write_path_file", "read_path_file", "PATH_FORMAT", "TASKS"]

PATH_FORMAT = "phi4si-path/1"
TASKS = ("generate", "inpaint", "sequential")
START_POWERS = (1.0, 1.5, 2.0, 3.0)


def _runner(model, task: str, shape, mask, order, block, levels, n: int):
    """``run(seed, steps, solver, grid) -> normalised samples`` of the task on ``n`` pilot samples."""
    from .generate import generate, inpaint, sequential

    data = None
    if task == "inpaint" or (task == "sequential" and mask is not None):
        data = generate(model, n, shape=shape, steps=20, solver="rk4", seed=10**6, batch_size=n)

    def run(seed, steps, solver, grid):
        kw = dict(steps=steps, solver=solver, seed=seed, batch_size=n, grid_power=grid)
        if task == "generate":
            x = generate(model, n, shape=shape, **kw)
        elif task == "inpaint":
            x = inpaint(model, data, mask, **kw)
        else:
            extra = {} if mask is None else {"data": data, "observed": ~mask}
            x = sequential(model, None if data is not None else n, order=order, block=block, levels=levels,
                           shape=shape, **extra, **kw)
        return (x - model.mean) / model.scale

    return run


def _grid(theta) -> tuple:
    w = np.exp(theta - np.max(theta))
    u = np.concatenate([[0.0], np.cumsum(w / w.sum())])
    u[-1] = 1.0
    return tuple(float(v) for v in u)


def optimise_grid(model, steps: int, solver: str = "ab3", task: str = "generate", shape=None, mask=None,
                  order: str | None = None, block=None, levels: int | None = None, pilot: int = 64, seed: int = 0,
                  ref_steps: int = 64, maxfev: int | None = None) -> dict:
    """The optimised grid of ``steps`` steps of ``solver`` for ``task`` ('generate', 'inpaint' with the
    bool ``mask`` of unknown sites, 'sequential' with ``order``/``block``/``levels`` and optionally a
    ``mask``) on the lattice ``shape`` (default the model's), from ``pilot`` samples of seed ``seed``
    (see the module docstring).  Returns a dict: ``grid`` (u_0..u_steps), the objective before and
    after (``mse_start``, ``mse``, with the power-law start ``start_power``) on the pilot and on the
    held-out batch, and the number of objective evaluations."""
    from scipy.optimize import minimize

    from .solve import SolveSettings

    SolveSettings(steps=steps, solver=solver, seed=seed, batch_size=pilot)       # validates
    if task not in TASKS:
        raise ParameterError(f"unknown task {task!r} (choose from {TASKS})")
    if task == "inpaint" and mask is None:
        raise ParameterError("task 'inpaint' needs the mask of unknown sites")
    if task != "sequential" and order is not None:
        raise ParameterError("order applies to task 'sequential' only")
    if task == "sequential" and order is None:
        raise ParameterError("task 'sequential' needs an order")
    if int(pilot) < 2 or int(ref_steps) < 1:
        raise ParameterError(f"pilot must be >= 2 and ref_steps >= 1, got {pilot}, {ref_steps}")
    shape = model.check_shape(model.shape if shape is None else shape)
    mask = None if mask is None else np.asarray(mask, bool)
    run = _runner(model, task, shape, mask, order, block, levels, int(pilot))
    refs = {s: run(s, int(ref_steps), "rk4", 1.0) for s in (seed, seed + 1)}

    def mse(grid, s=seed):
        return float(np.mean((run(s, steps, solver, grid) - refs[s]) ** 2))

    starts = {p: mse(p) for p in START_POWERS}
    p0 = min(starts, key=starts.get)
    u0 = 1.0 - (1.0 - np.linspace(0.0, 1.0, int(steps) + 1)) ** p0
    theta0 = np.log(np.diff(u0))
    evals = [0]

    def objective(theta):
        evals[0] += 1
        v = mse(_grid(theta))
        return v if math.isfinite(v) else 1e300

    res = minimize(objective, theta0, method="Powell",
                   options={"maxfev": int(maxfev or 40 * steps), "xtol": 1e-3, "ftol": 1e-4})
    grid = _grid(res.x)
    best = mse(grid)
    if not best < starts[p0]:                 # never worse than the start
        grid, best = tuple(float(v) for v in u0), starts[p0]
    held_start, held = mse(p0, seed + 1), mse(grid, seed + 1)
    return {"grid": list(grid), "steps": int(steps), "solver": solver, "task": task, "start_power": p0,
            "pilot": {"n": int(pilot), "seed": int(seed), "mse_start": starts[p0], "mse": best,
                      "mse_power_grids": {str(p): v for p, v in starts.items()}},
            "held_out": {"n": int(pilot), "seed": int(seed) + 1, "mse_start": held_start, "mse": held},
            "reference": {"solver": "rk4", "steps": int(ref_steps)}, "evaluations": evals[0] + len(starts) + 1}


def write_path_file(out, result: dict, model, shape, task_spec: dict, command: str | None = None) -> Path:
    """Write an :func:`optimise_grid` result as a path file (JSON, atomically): the grid with the solver,
    steps, task (``task_spec``: task, mask spec, order, block, levels), lattice and model it was made for."""
    from ..io import utc_now, write_json

    doc = {"format": PATH_FORMAT, "solver": result["solver"], "steps": result["steps"], "grid": result["grid"],
           "task": task_spec, "lattice": list(shape), "model_step": model.meta.get("step"),
           "model_shape": list(model.shape), "optimisation": {k: result[k] for k in
                                                               ("start_power", "pilot", "held_out", "reference",
                                                                "evaluations")},
           "version": __version__, "date": utc_now(), "command": command}
    return write_json(out, doc)


def read_path_file(path, task: str | None = None, shape=None) -> dict:
    """A path file, checked: its format and grid, and (when given) that it was made for ``task`` and the
    lattice ``shape``; a :class:`~phi4si.errors.ParameterError` says what does not fit."""
    from ..interpolant.paths import check_grid

    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"{path}: no such path file")
    try:
        doc = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParameterError(f"{path}: not a phi4si path file ({type(e).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != PATH_FORMAT:
        raise ParameterError(f"{path}: not a phi4si path file (format {PATH_FORMAT!r} expected)")
    try:
        steps = int(doc["steps"])
        doc["grid"] = list(check_grid(doc["grid"], steps))
        made = doc["task"]["task"]
    except (KeyError, TypeError, ValueError) as e:
        raise ParameterError(f"{path}: damaged path file ({type(e).__name__}: {e})") from None
    if task is not None and made != task:
        raise ParameterError(f"{path} was optimised for the task {made!r}, not {task!r}; make one with "
                             f"phi4si optimize-path --task {task}")
    if shape is not None and list(doc.get("lattice", [])) != list(shape):
        raise ParameterError(f"{path} was optimised on the lattice {doc.get('lattice')}, not {list(shape)}")
    return doc
