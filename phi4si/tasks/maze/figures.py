"""Figures of the maze task (matplotlib, imported here only): the maze with paths and markers
(:func:`draw_maze`) and a grid of planned paths against
the exact geodesics (:func:`plot_plans`).  No pyplot: every figure is a
``matplotlib.figure.Figure``, so any backend works.

Coordinates are those of :mod:`.geometry`: ``x`` the column and ``y`` the row coordinate, row 0
on top, so the y axis is drawn inverted, with equal aspect.

>>> from phi4si.tasks.maze.geometry import Maze
>>> ax = draw_maze(Maze.large(), paths=[[1.5, 1.5], [4.5, 1.5]], starts=[1.5, 1.5], goals=[4.5, 1.5])
>>> len(ax.collections)                      # walls, paths, starts, goals
4
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...errors import ParameterError
from .checks import as_points

if TYPE_CHECKING:
    from .geometry import Maze

__all__ = ["draw_maze", "plot_plans"]


def draw_maze(maze: Maze, ax=None, paths=None, starts=None, goals=None, *, path_color=None, alpha: float = 0.8,
              linewidth: float = 1.0, wall_color="0.25", title: str | None = None):
    """Draw ``maze``: walls as dark squares, optional paths ((n, 2) or (B, n, 2) polylines),
    start (circles) and goal (stars) markers; returns the matplotlib Axes.

    Without ``ax``, a new ``matplotlib.figure.Figure`` is made (no pyplot, so any backend
    works; save it with ``ax.figure.savefig(...)``).  The y axis is inverted (row 0 on
    top), the aspect is equal.  ``path_color`` is one colour for all paths (default: a
    colour cycle).

    >>> from phi4si.tasks.maze.geometry import Maze
    >>> ax = draw_maze(Maze.large(), paths=[[1.5, 1.5], [4.5, 1.5]], starts=[1.5, 1.5], goals=[4.5, 1.5])
    >>> tuple(float(v) for v in ax.get_ylim())
    (9.0, 0.0)
    """
    from matplotlib.collections import LineCollection, PolyCollection

    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(0.5 * maze.shape[1] + 1, 0.5 * maze.shape[0] + 1)).add_subplot()
    rows, cols = maze.shape
    rc = np.argwhere(maze.walls)
    squares = np.stack([rc[:, [1, 0]] + o for o in ((0, 0), (1, 0), (1, 1), (0, 1))], axis=1)
    ax.add_collection(PolyCollection(squares, facecolors=wall_color, edgecolors=wall_color, linewidths=0.5))
    if paths is not None:
        p = np.asarray(paths, dtype=np.float64)
        if p.ndim == 2:
            p = p[None]
        if p.ndim != 3 or p.shape[-1] != 2:
            raise ParameterError(f"paths must have shape (n, 2) or (B, n, 2), got {p.shape}")
        colors = path_color if path_color is not None else [f"C{i % 10}" for i in range(len(p))]
        ax.add_collection(LineCollection(p, colors=colors, linewidths=linewidth, alpha=alpha))
    for pts, kw in ((starts, dict(marker="o", color="tab:green", label="start")),
                    (goals, dict(marker="*", s=90, color="tab:red", label="goal"))):
        if pts is not None:
            q = as_points(pts, kw["label"]).reshape(-1, 2)
            ax.scatter(q[:, 0], q[:, 1], zorder=3, edgecolors="k", linewidths=0.5, **kw)
    ax.set_xlim(0, cols)
    ax.set_ylim(rows, 0)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_plans(path, maze: Maze, plans, starts, goals, n: int = 12, shortest=True, title: str = "") -> Path:
    """Figure of the first ``n`` plans, one maze per panel (4 per row), saved to ``path`` (PNG,
    110 dpi): the plan (blue, dots at its points; orange when invalid), the exact geodesic
    (dashed grey, :meth:`.geometry.Maze.shortest_path`) when ``shortest``, start (green) and goal
    (red).  ``plans`` is a :class:`.planner.Plans` (or anything with ``paths``, ``valid``, ``k``).

    >>> import os, tempfile
    >>> from types import SimpleNamespace
    >>> from phi4si.tasks.maze.geometry import Maze
    >>> maze, s, g = Maze.large(), [[1.5, 1.5]], [[2.5, 3.5]]
    >>> plans = SimpleNamespace(paths=[maze.shortest_path(s[0], g[0])], valid=[True], k=[2])
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     png = plot_plans(os.path.join(tmp, "plans.png"), maze, plans, s, g)
    ...     png.stat().st_size > 0
    True
    """
    from matplotlib.figure import Figure

    n = min(int(n), len(plans.paths))
    if n < 1:
        raise ParameterError("nothing to draw: n must be >= 1")
    ncol = min(4, n)
    nrow = -(-n // ncol)
    rows, cols = maze.shape
    fig = Figure(figsize=(ncol * (0.32 * cols + 0.3), nrow * (0.32 * rows + 0.55)))
    for j in range(n):
        ax = fig.add_subplot(nrow, ncol, j + 1)
        p = plans.paths[j]
        draw_maze(maze, ax, starts=starts[j], goals=goals[j])
        if shortest:
            sp = maze.shortest_path(starts[j], goals[j])
            ax.plot(sp[:, 0], sp[:, 1], "--", color="0.55", lw=1)
        ax.plot(p[:, 0], p[:, 1], "-", color="tab:blue" if plans.valid[j] else "tab:orange", lw=1.2)
        ax.plot(p[:, 0], p[:, 1], ".", color="tab:blue", ms=2.5)
        ax.set_title(f"k = {plans.k[j]}{'' if plans.valid[j] else ' (invalid)'}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    from ...io import save_figure

    save_figure(fig, path, dpi=110)
    return path
