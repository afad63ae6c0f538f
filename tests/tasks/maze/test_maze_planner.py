"""phi4si.tasks.maze.planner: the k search, waypoints, refusals, evaluation against geodesics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from phi4si.errors import ParameterError
from phi4si.tasks.maze.geometry import path_length
from phi4si.tasks.maze.planner import evaluate_plans, leg_indices, plan
from phi4si.tasks.maze.training import load_maze_model


def test_leg_indices():
    idx = leg_indices(np.array([2, 1, 3]), np.array([4.0, 1.0, 5.0]), 12)
    assert idx[0] == 0 and idx[-1] == 12 and (np.diff(idx) >= [2, 1, 3]).all()
    assert leg_indices(np.array([1]), np.array([0.0]), 5).tolist() == [0, 5]


def test_plan_search(tiny_maze_model, maze):
    """Anchors are exact, the reported validity and length are those of the returned path, the
    search starts at k_min and stops at the first k with a valid sample (rerunning up to k - 1
    finds none)."""
    model = load_maze_model(tiny_maze_model / "m.pt")
    s = np.array([[1.5, 1.5], [2.5, 1.2], [6.5, 1.5], [10.5, 7.5]])
    g = np.array([[1.5, 1.9], [1.5, 2.5], [6.5, 3.5], [1.5, 7.5]])
    res = plan(model, s, g, tries=3, steps=3, seed=2)
    assert len(res) == 4 and res.k.shape == res.valid.shape == res.length.shape == (4,)
    step_max = model.lattice["params"]["step_max"]
    for i, p in enumerate(res.paths):
        assert p.shape == (res.k[i] + 1, 2)
        assert np.array_equal(p[0], s[i]) and np.array_equal(p[-1], g[i])
        assert res.valid[i] == maze.path_valid(p)
        assert res.length[i] == pytest.approx(path_length(p))
        assert res.k_min[i] >= max(2, math.ceil(np.linalg.norm(g[i] - s[i]) / step_max))
        assert res.samples[i] == 3 * (res.k[i] - res.k_min[i] + 1 + (res.rounds[i] - 1) * (50 - res.k_min[i]))
        assert res.rounds[i] == 1 or not res.valid[i] or res.rounds[i] == 2
        assert res.valid[i] or res.k[i] == 49
    again = plan(model, s, g, tries=3, steps=3, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(res.paths, again.paths))
    for i in range(len(s)):             # the sequential search (k_batch=1) stops at the first valid k
        one = plan(model, s[i], g[i], tries=3, steps=3, seed=2, k_batch=1, rounds=1)
        assert one.samples[0] == 3 * (one.k[0] - one.k_min[0] + 1)
        if one.valid[0] and one.k[0] > one.k_min[0]:
            earlier = plan(model, s[i], g[i], tries=3, steps=3, seed=2, k_max=int(one.k[0]) - 1, k_batch=1, rounds=1)
            assert not earlier.valid[0] and earlier.k[0] == one.k[0] - 1


def test_plan_via_waypoints(tiny_maze_model):
    model = load_maze_model(tiny_maze_model / "m.pt")
    via = np.array([[4.5, 3.5], [6.5, 5.5]])
    res = plan(model, [1.5, 1.5], [10.5, 7.5], via, tries=1, steps=2, k_min=30, k_max=31)
    p = res.paths[0]
    assert res.k[0] in (30, 31) and p.shape == (res.k[0] + 1, 2)
    hits = [int(np.flatnonzero((p == w).all(1))[0]) for w in via]
    assert 0 < hits[0] < hits[1] < res.k[0]


@pytest.mark.parametrize("kw, match", [
    (dict(starts=[3.5, 2.5]), "start .* inside a wall"),
    (dict(goals=[13.0, 1.0]), "goal .* outside the maze"),
    (dict(via=[[0.5, 0.5]]), r"waypoint\[0\] .* inside a wall"),
    (dict(via=np.full((2, 1, 1, 2), 1.5)), "via must be"),
    (dict(k_max=50), "k_max <= 49"),
    (dict(k_max=3), "split it into shorter plans"),
    (dict(tries=0), "tries"),
    (dict(rounds=0), "rounds"),
    (dict(k_batch=0), "k_batch"),
    (dict(k_min=0), "k_min"),
    (dict(batch_size=0), "batch_size"),
])
def test_plan_refusals(tiny_maze_model, kw, match):
    model = load_maze_model(tiny_maze_model / "m.pt")
    args = dict(starts=[1.5, 1.5], goals=[10.5, 7.5])
    args.update(kw)
    with pytest.raises(ParameterError, match=match):
        plan(model, args.pop("starts"), args.pop("goals"), **args)


def test_evaluate_plans_and_figure(tiny_maze_model, maze, tmp_path):
    from phi4si.tasks.maze.figures import plot_plans

    model = load_maze_model(tiny_maze_model / "m.pt")
    r = evaluate_plans(model, 5, seed=1, tries=1, steps=2, margin=0.1)
    assert r["n_plans"] == 5 and r["n_valid"] == int(r["_plans"].valid.sum())
    assert np.allclose(r["_shortest"], maze.shortest_path_length(r["_starts"], r["_goals"]))
    if r["n_valid"]:
        assert r["length_ratio"]["median"] >= 1.0 - 1e-9   # no path beats the geodesic
    assert plot_plans(tmp_path / "p.png", maze, r["_plans"], r["_starts"], r["_goals"], n=3).stat().st_size > 0
