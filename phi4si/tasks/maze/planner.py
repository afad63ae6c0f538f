"""Maze planning by inpainting (Negrel et al. 2025, section 5.3; THEORY.md 4.3 and 7): with a
model of :mod:`.training`, the start is pinned at index 0 of the n-point sequence and the goal at
index k (a = 0, a' = 0 there; waypoints in between), every other point moves a: 1 -> 0 along the
ODE, and k is searched upward until a sampled path avoids the walls (:func:`plan`).
:func:`evaluate_plans` scores plans between random free points against the exact geodesics,
:func:`write_plans` stores them in HDF5.

A tiny model trained for one step (plumbing, not quality; its paths are rarely valid):

>>> import os, tempfile, h5py
>>> from phi4si.model.train import TrainConfig
>>> from phi4si.tasks.maze.dataset import make_dataset, write_dataset
>>> from phi4si.tasks.maze.training import load_maze_model, train_maze
>>> cfg = TrainConfig(steps=1, batch_size=4, model="tiny", measure="maze", val_size=4, val_every=1)
>>> tmp = tempfile.TemporaryDirectory()
>>> data = write_dataset(os.path.join(tmp.name, "maze.h5"), make_dataset(16, seed=0))
>>> _ = train_maze(data, os.path.join(tmp.name, "maze.pt"), cfg, progress=False)
>>> model = load_maze_model(os.path.join(tmp.name, "maze.pt"))
>>> p = plan(model, [1.5, 1.5], [2.5, 3.5], tries=2, steps=2, seed=0)
>>> path = p.paths[0]
>>> path[0].tolist(), path[-1].tolist(), len(path) == int(p.k[0]) + 1, int(p.k_min[0])
([1.5, 1.5], [2.5, 3.5], True, 4)
>>> r = evaluate_plans(model, 3, seed=1, tries=1, steps=2)
>>> r["n_plans"], len(r["_plans"]), r["_shortest"].shape
(3, 3, (3,))
>>> out = write_plans(os.path.join(tmp.name, "plans.h5"), r["_plans"], r["_starts"], r["_goals"], r["_shortest"])
>>> with h5py.File(out, "r") as f:
...     f.attrs["kind"], f["paths"].shape[0]
('maze-plans', 3)
>>> tmp.cleanup()
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import ParameterError
from ...io import atomic_write, prepare_output, utc_now
from ...seeds import stream_seed
from .checks import check_int
from .geometry import Maze, path_length
from .training import model_maze

__all__ = ["Plans", "plan", "leg_indices", "evaluate_plans", "write_plans"]



@dataclass
class Plans:
    """Result of :func:`plan`, one entry per plan.

    ``paths``: list of (k + 1, 2) polylines (start at 0, waypoints, goal at k); ``k`` the goal
    index used; ``valid`` whether the path avoids the walls (False: no sample at any k up to
    ``k_max`` was valid, the path is the last sample at ``k_max``); ``length`` polyline length;
    ``k_min`` where the search started; ``samples`` trajectories sampled for the plan;
    ``rounds`` searches from ``k_min`` it took (1 unless no sample up to ``k_max`` was valid);
    ``seconds`` wall time of the whole call.

    >>> one = np.ones(1, np.int64)
    >>> len(Plans([np.zeros((3, 2))], 2 * one, one > 0, 0.0 * one, 2 * one, 4 * one, one, 0.1))
    1
    """

    paths: list
    k: np.ndarray
    valid: np.ndarray
    length: np.ndarray
    k_min: np.ndarray
    samples: np.ndarray
    rounds: np.ndarray
    seconds: float

    def __len__(self):
        return len(self.paths)


def leg_indices(legs_lb: np.ndarray, legs: np.ndarray, k: int) -> np.ndarray:
    """Indices (m + 2,) of the anchors (start, m waypoints, goal) for goal index k: each leg j
    gets its lower bound ``legs_lb[j]`` index steps, the remaining ``k - sum(legs_lb)`` are shared
    in proportion to the leg lengths ``legs`` (largest remainder; equally if all are 0).

    >>> leg_indices(np.array([2, 1, 3]), np.array([4.0, 1.0, 5.0]), 12).tolist()
    [0, 4, 6, 12]
    """
    extra = k - int(legs_lb.sum())
    tot = float(legs.sum())
    share = extra * (legs / tot if tot > 0 else np.full(len(legs), 1.0 / len(legs)))
    base = np.floor(share).astype(np.int64)
    rest = extra - int(base.sum())
    base[np.argsort(-(share - base), kind="stable")[:rest]] += 1
    return np.concatenate([[0], np.cumsum(legs_lb + base)])


# ----------------------------------------------------------------------------- plan's steps


def _anchors(maze: Maze, starts, goals, via) -> np.ndarray:
    """(N, m + 2, 2): every plan's start, waypoints and goal, checked free and broadcast."""
    s = maze.check_points(starts, "start")
    g = maze.check_points(goals, "goal")
    if s.shape[-1:] != (2,) or s.ndim > 2 or g.ndim > 2:
        raise ParameterError(f"starts and goals must be (2,) or (N, 2) points, got shapes {s.shape} and {g.shape}")
    try:
        s, g = (np.array(v) for v in np.broadcast_arrays(np.atleast_2d(s), np.atleast_2d(g)))
    except ValueError:
        raise ParameterError(f"starts {s.shape} and goals {g.shape} do not broadcast") from None
    N = len(s)
    if via is None:
        w = np.zeros((N, 0, 2))
    else:
        w = maze.check_points(via, "waypoint")
        if w.ndim == 1:
            w = w[None]
        w = np.broadcast_to(w, (N, *w.shape[-2:])).copy() if w.ndim == 2 else w
        if w.ndim != 3 or w.shape[0] != N:
            raise ParameterError(f"via must be (m, 2) or ({N}, m, 2) points, got shape {np.shape(via)}")
    return np.concatenate([s[:, None], w, g[:, None]], axis=1)


def _k_range(model, anchors: np.ndarray, k_min, k_max):
    """Leg lengths (N, m + 1), their least index steps ``lb = ceil(leg / step_max)`` (at least 1),
    every plan's first goal index ``k_lo`` (sum of lb, at least m + 2, at least ``k_min``) and the
    last one ``k_hi`` (``k_max``, default n - 1); refuses plans that cannot fit."""
    n = int(model.shape[0])
    step_max = model.lattice["params"]["step_max"]
    legs = np.linalg.norm(np.diff(anchors, axis=1), axis=-1)                 # (N, m + 1)
    lb = np.maximum(1, np.ceil(legs / step_max - 1e-9)).astype(np.int64)
    k_lo = np.maximum(lb.sum(1), anchors.shape[1])
    if k_min is not None:
        k_lo = np.maximum(k_lo, check_int("k_min", k_min, 1))
    k_hi = n - 1 if k_max is None else check_int("k_max", k_max, 1)
    if k_hi > n - 1:
        raise ParameterError(f"k_max = {k_hi}: the model's paths have {n} points, so k_max <= {n - 1}")
    if (k_lo > k_hi).any():
        i = int(np.flatnonzero(k_lo > k_hi)[0])
        raise ParameterError(f"plan {i}: start, waypoints and goal are {legs[i].sum():.2f} cells apart in straight "
                             f"lines, more than {k_hi} steps of at most {step_max:.3f} "
                             f"cells (the longest step in the training data) can cover; split it into shorter plans")
    return legs, lb, k_lo, k_hi


def _inpaint(model, anchors: np.ndarray, pins: np.ndarray, ks: np.ndarray, tries: int, settings) -> np.ndarray:
    """``tries`` sampled paths (R * tries, n, 2) per row r: the anchors ``anchors[r]`` pinned at the
    indices ``pins[r]`` (exactly, after the solve), the other points inpainted by the model's ODE
    (:func:`phi4si.model.solve.solve_batches` with ``settings``), the points after the goal
    index ``ks[r]`` set to the goal (zero-length segments: the plan ends at k)."""
    from ...interpolant.paths import InpaintPath
    from ...model.solve import solve_batches

    n = int(model.shape[0])
    R = len(ks)
    mean = torch.tensor(model.mean, dtype=torch.float64)
    scale = torch.tensor(model.scale, dtype=torch.float64)
    unknown = np.ones((R, n), bool)
    unknown[np.arange(R)[:, None], pins] = False
    vals = np.zeros((R, n, 2))
    vals[np.arange(R)[:, None], pins] = anchors
    unknown = np.repeat(unknown, tries, axis=0)
    vals_n = (torch.from_numpy(np.repeat(vals, tries, axis=0)).permute(0, 2, 1) - mean) / scale
    um = torch.from_numpy(unknown)[:, None]
    start = lambda z, i, b: torch.where(um[i:i + b], z.double(), vals_n[i:i + b])  # noqa: E731
    path = lambda i, b: InpaintPath(unknown[i:i + b], batched=True)  # noqa: E731
    x = solve_batches(model, R * tries, (n,), start, path, settings)
    cand = (x * scale + mean).permute(0, 2, 1).numpy().copy()                               # (R * tries, n, 2)
    rep = np.repeat(np.arange(R), tries)
    cand[np.arange(R * tries)[:, None], pins[rep]] = anchors[rep]                           # exact anchors
    kk = np.repeat(ks, tries)
    beyond = np.arange(n)[None, :] > kk[:, None]          # the plan ends at k: the rest waits at the goal,
    return np.where(beyond[..., None], cand[np.arange(R * tries), kk][:, None], cand)    # zero-length segments


@dataclass
class _Search:
    """plan's k search, one entry per plan: the result so far (``paths``, ``k``, ``valid``,
    ``length``, ``samples``), the next goal index to try (``k_cur``), whether the plan is still
    searched (``active``) and how many searches from ``k_lo`` it has begun (``used``)."""

    k_lo: np.ndarray
    k_hi: int
    rounds: int
    paths: list
    k: np.ndarray
    valid: np.ndarray
    length: np.ndarray
    samples: np.ndarray
    k_cur: np.ndarray
    active: np.ndarray
    used: np.ndarray

    @classmethod
    def begin(cls, k_lo: np.ndarray, k_hi: int, rounds: int) -> _Search:
        N = len(k_lo)
        return cls(k_lo, k_hi, rounds, [None] * N, np.full(N, -1, np.int64), np.zeros(N, bool), np.full(N, np.inf),
                   np.zeros(N, np.int64), k_lo.copy(), np.ones(N, bool), np.ones(N, np.int64))

    def rows(self, act: np.ndarray, J: int):
        """This pass's rows (plan, k), k increasing within a plan: each active plan's next ``J``
        goal indices up to k_hi.  Returns (k values per plan, plan of each row, k of each row)."""
        n_k = np.minimum(self.k_cur[act] + J, self.k_hi + 1) - self.k_cur[act]
        plan_of = np.repeat(act, n_k)
        ks = np.concatenate([np.arange(self.k_cur[i], self.k_cur[i] + c) for i, c in zip(act, n_k)])
        return n_k, plan_of, ks

    def record(self, act, n_k, ks, ok, L, cand, tries: int) -> None:
        """Per active plan: stop at its first row with a valid sample (keep the shortest valid
        one), or at k_hi with none (search again from k_lo while rounds are left, else keep the
        shortest sample at k_hi, invalid); otherwise go on after its last row."""
        best = np.argmin(np.where(ok, L, np.inf), axis=1)
        for i, r1, c in zip(act, np.cumsum(n_k), n_k):      # rows of plan i: r0 .. r1 - 1
            r0 = r1 - c
            hit = np.flatnonzero(ok[r0:r1].any(1))
            last = r0 + (hit[0] if len(hit) else r1 - 1 - r0)
            self.samples[i] += tries * (last - r0 + 1)
            if not len(hit) and ks[last] == self.k_hi and self.used[i] < self.rounds:
                self.used[i] += 1                             # no valid path up to k_max: search again
                self.k_cur[i] = self.k_lo[i]
            elif len(hit) or ks[last] == self.k_hi:
                self.paths[i] = cand[last * tries + best[last], : ks[last] + 1]
                self.k[i], self.valid[i], self.length[i] = int(ks[last]), bool(len(hit)), float(L[last, best[last]])
                self.active[i] = False
            else:
                self.k_cur[i] = ks[last] + 1


def plan(model, starts, goals, via=None, *, tries: int = 4, steps: int = 20, solver: str = "heun", seed: int = 0,
         k_min=None, k_max: int | None = None, k_batch: int | None = None, rounds: int = 2,
         batch_size: int = 1024, progress: bool | None = None) -> Plans:
    """Plan paths from ``starts`` to ``goals`` ((2,) or (N, 2) free points), optionally through
    waypoints ``via`` ((m, 2) for every plan, or (N, m, 2)), by inpainting with a maze model.

    For goal index k the anchors are pinned (a = 0): the start at index 0, the goal at k and the
    waypoints in between (each leg gets at least ceil(leg length / step_max) index steps, the
    rest in proportion to its length, :func:`leg_indices`), the other points of the n-point
    sequence move a: 1 -> 0 along the ODE with ``steps`` steps of ``solver``.  ``tries`` paths are
    sampled per plan and k; the plan is the shortest valid one (:meth:`.geometry.Maze.path_valid`)
    of points 0..k at the smallest k that has one.  The search starts at ``k_min`` (default: the
    fewest index steps the training data could cover, sum over legs of ceil(leg / step_max), at
    least m + 2) and ends at ``k_max`` (default n - 1).  Each pass samples every unfinished plan at
    its next ``k_batch`` values of k at once (default: as many as fill ``batch_size`` trajectories,
    so the last hard plans cost one pass instead of one per k) and keeps the smallest k with a
    valid sample; ``k_batch=1`` is the strictly sequential search.  A plan with no valid sample up
    to ``k_max`` is searched again from ``k_min`` with fresh noise, up to ``rounds`` searches in all
    (more samples, nothing else changes).  Pass p solves with seed ``seed + 1009 p``:
    deterministic given ``seed``.  Example: the module docstring.
    """
    from ...model.solve import SolveSettings

    maze = model_maze(model)
    anchors = _anchors(maze, starts, goals, via)                             # (N, m + 2, 2)
    tries = check_int("tries", tries, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    legs, lb, k_lo, k_hi = _k_range(model, anchors, k_min, k_max)
    if k_batch is not None:
        k_batch = check_int("k_batch", k_batch, 1)
    search = _Search.begin(k_lo, k_hi, check_int("rounds", rounds, 1))
    t0 = time.perf_counter()
    from ...progress import bar as progress_bar

    bar = progress_bar(len(anchors), "maze plan", unit="plan", enabled=progress)
    n_pass = 0
    while search.active.any():
        act = np.flatnonzero(search.active)
        J = k_batch if k_batch is not None else max(1, batch_size // (len(act) * tries))
        n_k, plan_of, ks = search.rows(act, J)
        pins = np.stack([leg_indices(lb[i], legs[i], int(k)) for i, k in zip(plan_of, ks)])  # (R, m + 2)
        settings = SolveSettings(steps, solver, None, stream_seed(seed, "plan_pass", n_pass), batch_size)
        cand = _inpaint(model, anchors[plan_of], pins, ks, tries, settings)
        n_pass += 1
        ok = maze.path_valid(cand).reshape(len(ks), tries)
        L = path_length(cand).reshape(len(ks), tries)
        search.record(act, n_k, ks, ok, L, cand, tries)
        if bar is not None:
            bar.update(int(len(act) - search.active.sum()))
    if bar is not None:
        bar.close()
    return Plans(search.paths, search.k, search.valid, search.length, k_lo, search.samples, search.used,
                 time.perf_counter() - t0)


# ----------------------------------------------------------------------------- evaluation and files


def evaluate_plans(model, n_plans: int = 1000, seed: int = 0, margin: float = 0.0, tries: int = 4, steps: int = 20,
                   solver: str = "heun", rounds: int = 2, batch_size: int = 1024, progress: bool | None = None) -> dict:
    """Plans between ``n_plans`` pairs of uniform random free points
    (:meth:`.geometry.Maze.random_free_points` with ``margin``, drawn with ``seed``): validity,
    length against the exact geodesic (:meth:`.geometry.Maze.shortest_path_length`), k-search
    statistics (k values searched per plan: ``k - k_min + 1 + (rounds - 1) (k_max - k_min + 1)``)
    and time per plan.

    Returns a JSON-able dict (``"_plans"``, ``"_starts"``, ``"_goals"`` and ``"_shortest"`` hold the
    arrays, for figures).  Example: the module docstring."""
    maze = model_maze(model)
    n_plans = check_int("n_plans", n_plans, 1)
    rng = np.random.default_rng(check_int("seed", seed, 0))
    starts = maze.random_free_points(n_plans, rng, margin)
    goals = maze.random_free_points(n_plans, rng, margin)
    res = plan(model, starts, goals, tries=tries, steps=steps, solver=solver, seed=seed, rounds=rounds,
               batch_size=batch_size, progress=progress)
    shortest = maze.shortest_path_length(starts, goals)
    ratio = res.length / np.maximum(shortest, 1e-12)
    v = res.valid
    k_hi = int(model.shape[0]) - 1
    searched = res.k - res.k_min + 1 + (res.rounds - 1) * (k_hi - res.k_min + 1)     # k values sampled

    def q(a, p):
        return float(np.quantile(a, p)) if len(a) else float("nan")

    return {
        "n_plans": n_plans, "n_valid": int(v.sum()), "valid_fraction": float(v.mean()),
        "settings": {"seed": seed, "margin": margin, "tries": tries, "steps": steps, "solver": solver, "rounds": rounds,
                     "batch_size": batch_size, "k_max": int(model.shape[0]) - 1,
                     "step_max": model.lattice["params"]["step_max"]},
        "length_ratio": {"median": q(ratio[v], 0.5), "mean": float(ratio[v].mean()) if v.any() else float("nan"),
                         "q10": q(ratio[v], 0.1), "q90": q(ratio[v], 0.9), "q99": q(ratio[v], 0.99),
                         "max": float(ratio[v].max()) if v.any() else float("nan")},
        "shortest_length": {"median": q(shortest, 0.5), "max": float(shortest.max())},
        "k": {"mean": float(res.k.mean()), "median": q(res.k, 0.5), "max": int(res.k.max()),
              "k_values_searched_mean": float(searched.mean()), "k_values_searched_median": q(searched, 0.5),
              "k_values_searched_max": int(searched.max()),
              "found_at_first_k": float(((searched == 1) & (res.rounds == 1)).mean()),
              "needed_another_round": int((res.rounds > 1).sum()),
              "samples_per_plan_mean": float(res.samples.mean())},
        "seconds": res.seconds, "seconds_per_plan": res.seconds / n_plans,
        "_plans": res, "_starts": starts, "_goals": goals, "_shortest": shortest,
    }


def write_plans(out, plans: Plans, starts, goals, shortest=None, attrs: dict | None = None,
                overwrite: bool = False) -> Path:
    """Write :func:`plan` results to HDF5: ``paths`` (N, n, 2) float64 with NaN after each plan's
    goal index, ``k``, ``valid``, ``length``, ``k_min``, ``samples``, ``rounds``, ``starts``,
    ``goals`` and (if given) ``shortest``; root attributes ``kind`` = ``"maze-plans"``, ``version``,
    ``date`` and ``attrs`` (JSON).  Written under a temporary name and renamed; refuses an
    existing ``out`` unless ``overwrite``.  Read the paths back with
    ``[p[: k + 1] for p, k in zip(f["paths"], f["k"])]``.  Example: the module docstring."""
    import h5py

    from ..._version import __version__

    out = prepare_output(out, overwrite, hint="pass overwrite=True (or choose another path) to replace it")
    n = max(len(p) for p in plans.paths)
    padded = np.full((len(plans), n, 2), np.nan)
    for i, p in enumerate(plans.paths):
        padded[i, : len(p)] = p

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("paths", data=padded, compression="gzip", shuffle=True)
            for key in ("k", "valid", "length", "k_min", "samples", "rounds"):
                f[key] = np.asarray(getattr(plans, key))
            f["starts"], f["goals"] = np.asarray(starts, float), np.asarray(goals, float)
            if shortest is not None:
                f["shortest"] = np.asarray(shortest, float)
            f.attrs["kind"] = "maze-plans"
            f.attrs["version"] = __version__
            f.attrs["date"] = utc_now()
            f.attrs["seconds"] = float(plans.seconds)
            f.attrs["attrs"] = json.dumps(attrs or {}, default=str)

    atomic_write(out, write)
    return out
