"""phi4si.tasks.maze.figures: the maze drawing (draw_maze) and the figure of plans."""

from __future__ import annotations

import numpy as np
import pytest

from phi4si.errors import ParameterError
from phi4si.tasks.maze.dataset import make_dataset
from phi4si.tasks.maze.figures import draw_maze


def test_plot(maze):
    d = make_dataset(3, seed=0)
    ax = draw_maze(maze, paths=d["paths"], starts=d["paths"][:, 0], goals=d["paths"][:, -1], title="maze")
    assert tuple(ax.get_ylim()) == (9.0, 0.0) and tuple(ax.get_xlim()) == (0.0, 12.0)
    assert ax.get_aspect() == 1.0 and ax.get_title() == "maze"
    assert len(ax.collections) == 4  # walls, paths, starts, goals
    ax2 = draw_maze(maze, ax=ax.figure.add_subplot(2, 1, 2))
    assert ax2 is not ax and len(ax2.collections) == 1
    with pytest.raises(ParameterError, match="shape"):
        draw_maze(maze, paths=np.zeros((2, 3, 3)))


def test_draw_maze_is_maze_plot(maze):
    from phi4si.tasks.maze.figures import draw_maze

    a = draw_maze(maze, paths=[[1.5, 1.5], [4.5, 1.5]], starts=[1.5, 1.5], path_color="k", linewidth=2.0)
    b = draw_maze(maze, paths=[[1.5, 1.5], [4.5, 1.5]], starts=[1.5, 1.5], path_color="k", linewidth=2.0)
    assert len(a.collections) == len(b.collections) == 3
    assert np.array_equal(a.collections[1].get_linewidths(), b.collections[1].get_linewidths())
    with pytest.raises(ParameterError, match="not finite"):
        draw_maze(maze, goals=[np.nan, 1.0])


def test_plot_plans_without_a_model(maze, tmp_path):
    from types import SimpleNamespace

    from phi4si.tasks.maze.figures import plot_plans

    s, g = maze.random_free_points(5, np.random.default_rng(0)), maze.random_free_points(5, np.random.default_rng(1))
    paths = [maze.shortest_path(a, b) for a, b in zip(s, g)]
    plans = SimpleNamespace(paths=paths, valid=[True, False] * 2 + [True], k=[len(p) - 1 for p in paths])
    out = plot_plans(tmp_path / "p.png", maze, plans, s, g, n=5, title="five")
    assert out == tmp_path / "p.png" and out.stat().st_size > 0
    with pytest.raises(ParameterError, match="nothing to draw"):
        plot_plans(tmp_path / "q.png", maze, plans, s, g, n=0)
