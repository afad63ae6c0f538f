"""phi4si.tasks.maze.controller: the waypoint controller and the point-mass simulation."""

from __future__ import annotations

import numpy as np
import pytest

from phi4si.errors import ParameterError
from phi4si.tasks.maze.controller import ControllerConfig, simulate, waypoint_table
from phi4si.tasks.maze.geometry import Maze


def test_controller_config():
    cfg = ControllerConfig()
    assert cfg.v_max * cfg.dt == pytest.approx(0.1)
    assert ControllerConfig(kp=3).kp == 3.0
    for bad, match in [(dict(dt=0), "dt must be > 0"), (dict(noise_std=-1), "noise_std must be >= 0"),
                       (dict(kd=float("nan")), "finite"), (dict(a_max="1"), "real number"),
                       (dict(switch_radius=0.6), "switch_radius"), (dict(v_max=10), "v_max \\* dt"),
                       (dict(skip_straight=1), "skip_straight"), (dict(kp=True), "real number")]:
        with pytest.raises(ParameterError, match=match):
            ControllerConfig(**bad)


def test_simulate(maze):
    x = simulate(40, 600, seed=5)
    assert x.shape == (40, 600, 2) and x.dtype == np.float64
    assert np.array_equal(x, simulate(40, 600, seed=5))
    assert not np.allclose(x, simulate(40, 600, seed=6))
    # the dense trajectory never enters a wall
    assert maze.path_valid(x, upsample=1).all()
    assert not maze.segments_enter_walls(x[:, :-1], x[:, 1:]).any()
    cfg = ControllerConfig()
    step = np.linalg.norm(np.diff(x, axis=1), axis=-1)
    assert step.max() <= cfg.v_max * cfg.dt + 1e-12
    assert 0.08 < step[:, 100:].mean() <= 0.1  # cruise ~0.1 cell per step
    # agents travel: they visit many cells
    assert np.mean([len({tuple(c) for c in maze.cell_of(xa)}) for xa in x]) > 10
    # noisy, corner-cutting controllers still never enter walls (collisions are exact)
    wild = simulate(20, 500, seed=1, config=ControllerConfig(noise_std=30, kd=2, a_max=20, switch_radius=0.5))
    assert maze.path_valid(wild, upsample=1).all()
    # other layouts
    room = Maze("OOO\nO#O\nOOO")
    y = simulate(5, 300, seed=0, maze=room)
    assert room.path_valid(y, upsample=1).all()
    for kw, match in [(dict(n_agents=0), "n_agents"), (dict(seed=-1), "seed"), (dict(seed=1.5), "seed"),
                      (dict(config={}), "ControllerConfig"), (dict(maze="large"), "Maze")]:
        args = dict(n_agents=2, n_steps=10, seed=0) | kw
        with pytest.raises(ParameterError, match=match):
            simulate(**args)


def test_simulate_skip_straight_off(maze):
    x = simulate(10, 400, seed=2, config=ControllerConfig(skip_straight=False))
    assert maze.path_valid(x, upsample=1).all()


def test_waypoint_table(maze):
    nxt = maze.next_hop
    assert np.array_equal(waypoint_table(maze, skip_straight=False), nxt)
    w = waypoint_table(maze)
    cells, n = maze.free_cells, len(maze.free_cells)
    for i in range(n):
        for g in range(n):
            path = [i]                                   # the BFS cell path i -> g
            while path[-1] != g:
                path.append(nxt[path[-1], g])
            if i == g:
                assert w[i, g] == g
                continue
            assert w[i, g] in path[1:]                   # a cell of the path, at the end of its first straight run
            j = path.index(w[i, g])
            step = cells[path[1]] - cells[path[0]]
            assert (np.diff(cells[path[: j + 1]], axis=0) == step).all()
            assert j == len(path) - 1 or (cells[path[j + 1]] - cells[path[j]] != step).any()
    split = Maze("O#O")
    assert waypoint_table(split)[0, 1] == -1 and waypoint_table(split, skip_straight=False)[0, 1] < 0
