"""Maze planning (Negrel et al. 2025, section 5.3): the D4RL maze2d-large layout, point-mass
trajectories, path validity and exact geodesic distances.

Geometry
--------
A layout is a rectangle of cells, ``'#'`` wall and ``'O'`` free, of side 1.  A point is
``(x, y)`` with ``x`` the column coordinate in ``[0, cols]`` and ``y`` the row coordinate in
``[0, rows]`` (row 0 on top); cell ``(r, c)`` is the closed square ``[c, c+1] x [r, r+1]``.
The *free region* ``F`` is the union of the closed free cells: a point on the edge between a
free and a wall cell is free, a point on the seam between two wall cells (or on the box edge
of a wall cell) is not -- it lies inside the wall mass.

Walls as rectangles
-------------------
The complement of ``F`` is the open interior of the union of the wall cells, the outside of
the box counting as wall.  It is covered exactly by open rectangles: the maximal horizontal
runs of wall cells in every row and the vertical runs (of two cells or more) in every column
of the layout padded with a ring of wall cells.  Merging runs matters: a segment sliding along
the seam between two wall cells enters no single wall square, yet cuts through the wall.  A
segment stays in ``F`` iff it enters the open interior of none of these rectangles, which
Liang-Barsky slab clipping decides exactly (:meth:`Maze.segments_enter_walls`).

Geodesics
---------
Shortest paths in a polygonal domain are polylines bending only at reflex vertices of the
domain; here those are the wall corners with three free cells around them, plus "pinch"
corners where two free cells touch diagonally.  :meth:`Maze.shortest_path_length` runs
all-pairs Dijkstra once on their visibility graph and answers each query with
``min(|s - g| if visible, min_{c1, c2} |s - c1| + D[c1, c2] + |c2 - g|)``.

Data
----
:func:`simulate` drives point masses through the maze with a noisy waypoint controller
(:class:`ControllerConfig`); :func:`make_dataset` cuts random 300-step windows and keeps
every 6th point (50 points per path), dropping windows whose subsampled polyline is not
valid; :func:`write_dataset` / :func:`read_dataset` store them in HDF5.

>>> maze = Maze.large()
>>> maze.shape, len(maze.free_cells)
((9, 12), 46)
>>> bool(maze.path_valid([[1.5, 1.5], [4.5, 1.5], [4.5, 3.5]]))
True
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path

import numba as nb
import numpy as np
import torch

from ...errors import ParameterError
from ...io import atomic_write, prepare_output, utc_now

__all__ = [
    "MAZE2D_LARGE",
    "Maze",
    "ControllerConfig",
    "simulate",
    "path_length",
    "make_dataset",
    "write_dataset",
    "read_dataset",
    "maze_data",
    "train_maze",
    "load_maze_model",
    "model_maze",
    "Plans",
    "plan",
    "evaluate_plans",
    "plot_plans",
    "write_plans",
]

MAZE2D_LARGE = """\
############
#OOOO#OOOOO#
#O##O#O#O#O#
#OOOOOO#OOO#
#O####O###O#
#OO#O#OOOOO#
##O#O#O#O###
#OO#OOO#OOO#
############"""

TOL = 1e-9          # geometric tolerance (cells): touching a wall within TOL is not entering it
_CHUNK = 1 << 14    # queries per chunk in the geodesic and validity loops (bounds memory)
DATASET_KIND = "maze-trajectories"


# ----------------------------------------------------------------------------- numba kernels


@nb.njit(cache=True, nogil=True)
def _slab(p, d, lo, hi):
    """Parameters (t_in, t_out) at which p + t d is inside [lo, hi] (+-inf for d = 0)."""
    if d == 0.0:
        if lo <= p <= hi:
            return -np.inf, np.inf
        return np.inf, -np.inf
    ta = (lo - p) / d
    tb = (hi - p) / d
    if ta <= tb:
        return ta, tb
    return tb, ta


@nb.njit(cache=True, nogil=True)
def _enter_t(px, py, dx, dy, x0, x1, y0, y1):
    """Liang-Barsky clip of p + t d, t in [0, 1], against the closed rectangle; returns
    (t0, tx_in, ty_in), t0 = inf unless the segment enters the rectangle's open interior
    (clipped interval t0 < t1 whose midpoint is inside by more than TOL)."""
    ax, bx = _slab(px, dx, x0, x1)
    ay, by = _slab(py, dy, y0, y1)
    t0 = max(0.0, max(ax, ay))
    t1 = min(1.0, min(bx, by))
    if t0 < t1:
        tm = 0.5 * (t0 + t1)
        mx = px + tm * dx
        my = py + tm * dy
        if x0 + TOL < mx < x1 - TOL and y0 + TOL < my < y1 - TOL:
            return t0, ax, ay
    return np.inf, ax, ay


@nb.njit(cache=True, nogil=True)
def _first_entry(px, py, qx, qy, rects, ptr, idx, rows, cols):
    """Smallest entry parameter of segment p -> q into any rectangle (inf if none) and the
    index of that rectangle.  Short segments test only the rectangles filling the cells that
    their bounding box covers (``ptr``/``idx``: CSR list per padded cell), long ones all."""
    dx = qx - px
    dy = qy - py
    c0 = max(-1, min(cols, int(math.floor(min(px, qx)))))
    c1 = max(-1, min(cols, int(math.floor(max(px, qx)))))
    r0 = max(-1, min(rows, int(math.floor(min(py, qy)))))
    r1 = max(-1, min(rows, int(math.floor(max(py, qy)))))
    best = np.inf
    arg = -1
    if (c1 - c0 + 1) * (r1 - r0 + 1) <= 16:
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                cell = (r + 1) * (cols + 2) + (c + 1)
                for m in range(ptr[cell], ptr[cell + 1]):
                    k = idx[m]
                    t, _, _ = _enter_t(px, py, dx, dy, rects[k, 0], rects[k, 1], rects[k, 2], rects[k, 3])
                    if t < best:
                        best = t
                        arg = k
    else:
        for k in range(rects.shape[0]):
            t, _, _ = _enter_t(px, py, dx, dy, rects[k, 0], rects[k, 1], rects[k, 2], rects[k, 3])
            if t < best:
                best = t
                arg = k
    return best, arg


@nb.njit(cache=True, nogil=True)
def _enters_kernel(p, q, rects, ptr, idx, rows, cols, out):
    for i in range(p.shape[0]):
        t, _ = _first_entry(p[i, 0], p[i, 1], q[i, 0], q[i, 1], rects, ptr, idx, rows, cols)
        out[i] = t < np.inf


@nb.njit(cache=True, nogil=True)
def _via_corners(s, g, vs, vg, nodes, dist, out, arg1, arg2):
    """out[b] = min over corners i visible from s[b], j visible from g[b] of
    |s - c_i| + dist[i, j] + |c_j - g|, with the minimising (i, j)."""
    k = nodes.shape[0]
    dg = np.empty(k)
    for b in range(s.shape[0]):
        for j in range(k):
            dg[j] = math.hypot(nodes[j, 0] - g[b, 0], nodes[j, 1] - g[b, 1]) if vg[b, j] else np.inf
        best = np.inf
        bi = -1
        bj = -1
        for i in range(k):
            if not vs[b, i]:
                continue
            di = math.hypot(nodes[i, 0] - s[b, 0], nodes[i, 1] - s[b, 1])
            for j in range(k):
                v = di + dist[i, j] + dg[j]
                if v < best:
                    best = v
                    bi = i
                    bj = j
        out[b] = best
        arg1[b] = bi
        arg2[b] = bj


@nb.njit(cache=True, nogil=True)
def _simulate_kernel(x0, cell0, goal0, noise, u, centres, waypoint, rects, ptr, idx, rows, cols,
                     dt, kp, kd, a_max, v_max, noise_std, switch_radius, out):
    """Point masses under the waypoint controller (see :func:`simulate`), agent by agent."""
    n_free = centres.shape[0]
    r2 = switch_radius * switch_radius
    for a in range(out.shape[0]):
        x = x0[a, 0]
        y = x0[a, 1]
        vx = 0.0
        vy = 0.0
        g = goal0[a]
        w = waypoint[cell0[a], g]
        for t in range(out.shape[1]):
            out[a, t, 0] = x
            out[a, t, 1] = y
            ex = centres[w, 0] - x
            ey = centres[w, 1] - y
            if ex * ex + ey * ey < r2:
                if w == g:  # goal reached: a new goal, uniform over the other free cells
                    g = (w + 1 + int(u[a, t] * (n_free - 1))) % n_free if n_free > 1 else w
                w = waypoint[w, g]
                ex = centres[w, 0] - x
                ey = centres[w, 1] - y
            # desired velocity kp * e capped at v_max; acceleration kd * (v_des - v) + noise capped at a_max
            ux = kp * ex
            uy = kp * ey
            un = math.hypot(ux, uy)
            if un > v_max:
                ux *= v_max / un
                uy *= v_max / un
            ax = kd * (ux - vx) + noise_std * noise[a, t, 0]
            ay = kd * (uy - vy) + noise_std * noise[a, t, 1]
            an = math.hypot(ax, ay)
            if an > a_max:
                ax *= a_max / an
                ay *= a_max / an
            vx += ax * dt
            vy += ay * dt
            vn = math.hypot(vx, vy)
            if vn > v_max:
                vx *= v_max / vn
                vy *= v_max / vn
            dx = vx * dt
            dy = vy * dt
            th, k = _first_entry(x, y, x + dx, y + dy, rects, ptr, idx, rows, cols)
            if th == np.inf:
                x += dx
                y += dy
            else:  # stop on the wall face; drop the velocity component(s) into it
                _, tx, ty = _enter_t(x, y, dx, dy, rects[k, 0], rects[k, 1], rects[k, 2], rects[k, 3])
                nx = tx >= ty
                ny = ty >= tx
                x += th * dx
                y += th * dy
                if nx:
                    x = rects[k, 0] if dx > 0 else rects[k, 1]
                    vx = 0.0
                if ny:
                    y = rects[k, 2] if dy > 0 else rects[k, 3]
                    vy = 0.0


# ----------------------------------------------------------------------------- helpers


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop indices of the runs of True in a 1-d bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _fmt(p) -> str:
    return f"({p[0]:g}, {p[1]:g})"


def _label(name: str, points: np.ndarray, flat_index: int) -> str:
    if points.ndim == 1:
        return name
    ix = np.unravel_index(flat_index, points.shape[:-1])
    return f"{name}[{', '.join(str(int(i)) for i in ix)}]"


def _points(points, name: str) -> np.ndarray:
    """float64 array (..., 2), refusing other shapes and non-finite values."""
    try:
        p = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be an (x, y) pair or an array of them, got {points!r}") from None
    if p.ndim == 0 or p.shape[-1] != 2:
        raise ParameterError(f"{name} must be an (x, y) pair or an array of them with last axis 2; got shape {p.shape}")
    bad = ~np.isfinite(p).all(-1)
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ParameterError(f"{_label(name, p, i)} {_fmt(p.reshape(-1, 2)[i])} is not finite; give finite (x, y) coordinates")
    return p


def _int(name: str, value, lo: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    if value < lo:
        raise ParameterError(f"{name} must be >= {lo}, got {value}")
    return int(value)


def path_length(paths) -> np.ndarray:
    """Euclidean length of polylines: ``sum_i |p_{i+1} - p_i|`` over the point axis.

    ``paths`` is ``(..., n, 2)``; the result has shape ``(...)`` (0 for a single point).

    >>> float(path_length([[0, 0], [3, 4], [3, 5]]))
    6.0
    """
    p = np.asarray(paths, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] != 2:
        raise ParameterError(f"paths must have shape (..., n, 2), got {p.shape}")
    return np.linalg.norm(np.diff(p, axis=-2), axis=-1).sum(-1)


# ----------------------------------------------------------------------------- the maze


class Maze:
    """A grid maze of ``'#'`` (wall) and ``'O'`` (free) cells of side 1 (see the module docstring).

    Attributes: ``layout`` (the normalised layout string), ``walls`` (bool, rows x cols,
    read-only), ``shape`` = (rows, cols), ``free_cells`` ((n, 2) int (row, col), row-major).
    Precomputed tables (wall rectangles, BFS next hops, the corner visibility graph and its
    all-pairs distances) are built on first use and cached on the instance.

    >>> m = Maze("####\\n#OO#\\n####")
    >>> m.shape, m.free_cells.tolist()
    ((3, 4), [[1, 1], [1, 2]])
    """

    def __init__(self, layout: str = MAZE2D_LARGE):
        if not isinstance(layout, str):
            raise ParameterError(f"layout must be a string of '#' (wall) and 'O' (free) rows, got {type(layout).__name__}")
        lines = [ln.strip() for ln in layout.strip().splitlines() if ln.strip()]
        if not lines:
            raise ParameterError("layout is empty; give rows of '#' (wall) and 'O' (free) characters")
        for r, ln in enumerate(lines):
            bad = [ch for ch in ln if ch not in "#O"]
            if bad:
                c = next(i for i, ch in enumerate(ln) if ch not in "#O")
                raise ParameterError(f"layout row {r} has character {bad[0]!r} at column {c}; "
                                     "only '#' (wall) and 'O' (free) are allowed")
        widths = {len(ln) for ln in lines}
        if len(widths) > 1:
            r = next(i for i, ln in enumerate(lines) if len(ln) != len(lines[0]))
            raise ParameterError(f"layout is not rectangular: row 0 has {len(lines[0])} cells, row {r} has "
                                 f"{len(lines[r])}; every row must have the same number of cells")
        walls = np.array([[ch == "#" for ch in ln] for ln in lines], dtype=bool)
        if walls.all():
            raise ParameterError("layout has no free cell; mark at least one cell 'O'")
        walls.setflags(write=False)
        self.layout = "\n".join(lines)
        self.walls = walls
        self.shape = walls.shape
        self.free_cells = np.argwhere(~walls)
        self.free_cells.setflags(write=False)

    @classmethod
    def large(cls) -> Maze:
        """The D4RL maze2d-large layout (:data:`MAZE2D_LARGE`, 9 x 12 cells, 46 free); one shared
        instance, so its precomputed tables are built once per process.

        >>> Maze.large() is Maze.large()
        True
        """
        return _large() if cls is Maze else cls(MAZE2D_LARGE)

    def __repr__(self) -> str:
        return f"Maze({self.shape[0]}x{self.shape[1]}, {len(self.free_cells)} free cells)"

    # ---- precomputed tables

    @cached_property
    def _pad(self) -> np.ndarray:
        """Walls padded with a ring of wall cells: padded[r + 1, c + 1] = walls[r, c]."""
        p = np.ones((self.shape[0] + 2, self.shape[1] + 2), dtype=bool)
        p[1:-1, 1:-1] = self.walls
        return p

    @cached_property
    def _rects(self) -> tuple:
        """Open wall rectangles (x0, x1, y0, y1) covering the complement of the free region,
        and, per padded cell, the CSR list (ptr, idx) of the rectangles containing it."""
        pad = self._pad
        rects = []
        for i, row in enumerate(pad):
            rects += [(a - 1, b - 1, i - 1, i) for a, b in zip(*_runs(row))]
        for j, col in enumerate(pad.T):
            rects += [(j - 1, j, a - 1, b - 1) for a, b in zip(*_runs(col)) if b - a >= 2]
        rects = np.array(rects, dtype=np.float64)
        width = pad.shape[1]
        members = [[] for _ in range(pad.size)]
        for k, (x0, x1, y0, y1) in enumerate(rects.astype(int)):
            for r in range(y0, y1):
                for c in range(x0, x1):
                    members[(r + 1) * width + (c + 1)].append(k)
        ptr = np.concatenate([[0], np.cumsum([len(m) for m in members])]).astype(np.int64)
        idx = np.array([k for m in members for k in m], dtype=np.int64)
        return rects, ptr, idx

    @cached_property
    def _index(self) -> np.ndarray:
        """free-cell index of every cell (-1 for walls)."""
        ix = np.full(self.shape, -1, dtype=np.int64)
        ix[tuple(self.free_cells.T)] = np.arange(len(self.free_cells))
        return ix

    @cached_property
    def _next_hop(self) -> np.ndarray:
        """next_hop[i, g]: the free cell after i on a BFS shortest 4-connected path from i to g."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import shortest_path

        ix, n = self._index, len(self.free_cells)
        pairs = [(ix[:, :-1], ix[:, 1:]), (ix[:-1, :], ix[1:, :])]
        a = np.concatenate([u[(u >= 0) & (v >= 0)] for u, v in pairs])
        b = np.concatenate([v[(u >= 0) & (v >= 0)] for u, v in pairs])
        graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
        _, pred = shortest_path(graph, directed=False, unweighted=True, return_predecessors=True)
        nxt = pred.T.astype(np.int64)  # pred[g, i]: predecessor of i on the path from g = next hop from i to g
        np.fill_diagonal(nxt, np.arange(n))
        return nxt  # -9999 where g is unreachable from i

    @cached_property
    def _waypoint(self) -> np.ndarray:
        """waypoint[i, g]: the last cell of the straight run that starts the path i -> g."""
        nxt, cells = self._next_hop, self.free_cells
        goal = np.broadcast_to(np.arange(len(cells)), nxt.shape)
        reach = nxt >= 0
        w = np.where(reach, nxt, goal)
        step = cells[w] - cells[np.arange(len(cells))][:, None]
        for _ in range(max(self.shape)):
            nw = nxt[w, goal]
            more = reach & (w != goal) & (cells[nw] - cells[w] == step).all(-1)
            if not more.any():
                break
            w = np.where(more, nw, w)
        return np.where(reach, w, -1)

    @cached_property
    def _graph(self) -> tuple:
        """Reflex and pinch corners of the free region, (x, y); all-pairs geodesic distances
        between them over their visibility graph; Dijkstra predecessors."""
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import shortest_path

        pw = self._pad.astype(np.int8)
        n_walls = pw[:-1, :-1] + pw[:-1, 1:] + pw[1:, :-1] + pw[1:, 1:]
        pinch = (n_walls == 2) & (pw[:-1, :-1] == pw[1:, 1:])
        r, c = np.nonzero((n_walls == 1) | pinch)
        nodes = np.stack([c, r], axis=1).astype(np.float64)
        i, j = np.triu_indices(len(nodes), 1)
        vis = ~self._enter(nodes[i], nodes[j])
        w = np.linalg.norm(nodes[i] - nodes[j], axis=1)
        graph = coo_matrix((w[vis], (i[vis], j[vis])), shape=(len(nodes),) * 2).tocsr()
        dist, pred = shortest_path(graph, method="D", directed=False, return_predecessors=True)
        return nodes, dist, pred

    # ---- points and cells

    def _enter(self, p: np.ndarray, q: np.ndarray) -> np.ndarray:
        """segments_enter_walls on flat (N, 2) float arrays, without checks."""
        rects, ptr, idx = self._rects
        out = np.empty(len(p), dtype=bool)
        _enters_kernel(np.ascontiguousarray(p, dtype=np.float64), np.ascontiguousarray(q, dtype=np.float64),
                       rects, ptr, idx, self.shape[0], self.shape[1], out)
        return out

    def cell_of(self, points) -> np.ndarray:
        """(row, col) = (floor(y), floor(x)) of points (..., 2), as an int array (..., 2).

        A point on a cell edge belongs to the cell right of / below it, except on the box's far
        edges (x = cols or y = rows), which belong to the last column / row.  Points outside
        the box ``[0, cols] x [0, rows]`` or not finite raise :class:`ParameterError`.

        >>> Maze.large().cell_of([[1.5, 2.5], [12.0, 9.0]]).tolist()
        [[2, 1], [8, 11]]
        """
        p = _points(points, "point")
        rows, cols = self.shape
        out = (p[..., 0] < 0) | (p[..., 0] > cols) | (p[..., 1] < 0) | (p[..., 1] > rows)
        if out.any():
            i = int(np.flatnonzero(out.ravel())[0])
            raise ParameterError(f"{_label('point', p, i)} {_fmt(p.reshape(-1, 2)[i])} lies outside the maze "
                                 f"(x in [0, {cols}], y in [0, {rows}])")
        col = np.minimum(np.floor(p[..., 0]), cols - 1).astype(np.int64)
        row = np.minimum(np.floor(p[..., 1]), rows - 1).astype(np.int64)
        return np.stack([row, col], axis=-1)

    def is_free(self, points) -> np.ndarray:
        """bool (...): the point lies in the free region, i.e. in some closed free cell.

        Equivalently: inside the box and in the open interior of no wall cell, where a point on
        the seam between two wall cells counts as inside the wall.  Edges and corners shared
        with a free cell are free; the test is made with tolerance ``TOL`` = 1e-9 (a point less
        than TOL inside a wall cell next to a free cell is free).  Non-finite points are not free.

        >>> Maze.large().is_free([[1.5, 1.5], [5.5, 1.5], [5.0, 1.5], [13.0, 1.0]]).tolist()
        [True, False, True, False]
        """
        try:
            p = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterError(f"points must be an array of (x, y) pairs, got {points!r}") from None
        if p.ndim == 0 or p.shape[-1] != 2:
            raise ParameterError(f"points must have last axis 2 (x, y); got shape {p.shape}")
        rows, cols = self.shape
        x, y = p[..., 0], p[..., 1]
        inside = (x >= -TOL) & (x <= cols + TOL) & (y >= -TOL) & (y <= rows + TOL)
        x, y = np.where(inside, x, 0.0), np.where(inside, y, 0.0)
        free = np.zeros(x.shape, dtype=bool)
        for cx in (x - TOL, x + TOL):
            c = np.clip(np.floor(cx), -1, cols).astype(np.int64) + 1
            for cy in (y - TOL, y + TOL):
                r = np.clip(np.floor(cy), -1, rows).astype(np.int64) + 1
                free |= ~self._pad[r, c]
        return inside & free

    def check_points(self, points, name: str = "point") -> np.ndarray:
        """Return ``points`` as float64 (..., 2) if every one is free; else raise
        :class:`ParameterError` naming the first offenders (non-finite, outside the box, or
        inside a wall) and the fix.

        >>> Maze.large().check_points([2.5, 1.5], "start").tolist()
        [2.5, 1.5]
        >>> Maze.large().check_points([3.5, 2.5], "goal")
        Traceback (most recent call last):
        ...
        phi4si.errors.ParameterError: goal (3.5, 2.5) lies inside a wall cell (row 2, col 3); pick a point in a free ('O') cell
        """
        p = _points(points, name)
        bad = ~self.is_free(p)
        if not bad.any():
            return p
        rows, cols = self.shape
        flat = p.reshape(-1, 2)
        where = np.flatnonzero(bad.ravel())
        msgs = []
        for i in where[:3]:
            x, y = flat[i]
            if not (0 <= x <= cols and 0 <= y <= rows):
                why = f"lies outside the maze (x in [0, {cols}], y in [0, {rows}])"
            else:
                r, c = min(int(y), rows - 1), min(int(x), cols - 1)
                why = f"lies inside a wall cell (row {r}, col {c})"
            msgs.append(f"{_label(name, p, int(i))} {_fmt(flat[i])} {why}")
        more = f" (and {len(where) - 3} more)" if len(where) > 3 else ""
        raise ParameterError("; ".join(msgs) + more + "; pick a point in a free ('O') cell")

    def random_free_points(self, n: int, rng: np.random.Generator, margin: float = 0.0) -> np.ndarray:
        """n points uniform over the free region, (n, 2): a free cell uniformly at random (all
        cells have the same area), then a uniform point of ``[c + m, c + 1 - m] x [r + m, r + 1 - m]``.

        ``margin`` m in [0, 0.5) keeps the points at least m from the cell's sides.

        >>> pts = Maze.large().random_free_points(1000, np.random.default_rng(0), margin=0.2)
        >>> pts.shape, bool(Maze.large().is_free(pts).all())
        ((1000, 2), True)
        """
        n = _int("n", n, 0)
        if not isinstance(rng, np.random.Generator):
            raise ParameterError(f"rng must be a numpy Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
        if not (isinstance(margin, (int, float, np.floating, np.integer)) and 0 <= margin < 0.5):
            raise ParameterError(f"margin must be a number in [0, 0.5), got {margin!r}")
        cells = self.free_cells[rng.integers(len(self.free_cells), size=n)]
        off = margin + (1 - 2 * margin) * rng.random((n, 2))
        return cells[:, ::-1] + off

    def _cell(self, cell, name: str) -> tuple[int, int]:
        try:
            r, c = (int(v) for v in cell)
            if any(float(v) != int(v) for v in cell):
                raise ValueError
        except (TypeError, ValueError):
            raise ParameterError(f"{name} must be a (row, col) pair of integers, got {cell!r}") from None
        rows, cols = self.shape
        if not (0 <= r < rows and 0 <= c < cols):
            raise ParameterError(f"{name} (row {r}, col {c}) is outside the {rows} x {cols} grid")
        if self.walls[r, c]:
            raise ParameterError(f"{name} (row {r}, col {c}) is a wall cell; pick a free ('O') cell")
        return r, c

    def cell_path(self, start_cell, goal_cell) -> np.ndarray:
        """Shortest 4-connected path of free cells from ``start_cell`` to ``goal_cell`` (both
        (row, col), included), (k, 2) int; breadth-first search on the grid graph (the BFS
        trees of all goals are computed once and cached).  Raises :class:`ParameterError` for a
        wall cell or when the goal cannot be reached.

        >>> Maze.large().cell_path((1, 1), (3, 2)).tolist()
        [[1, 1], [2, 1], [3, 1], [3, 2]]
        """
        s = self._index[self._cell(start_cell, "start_cell")]
        g = self._index[self._cell(goal_cell, "goal_cell")]
        nxt = self._next_hop
        if nxt[s, g] < 0:
            raise ParameterError(f"goal_cell {tuple(goal_cell)} cannot be reached from start_cell {tuple(start_cell)}")
        path = [s]
        while path[-1] != g:
            path.append(nxt[path[-1], g])
        return self.free_cells[path].copy()

    # ---- segments and paths

    def segments_enter_walls(self, p, q) -> np.ndarray:
        """bool (...): the closed segment p -> q (p, q broadcastable, (..., 2)) meets the open
        interior of the walls.

        Exact test (module docstring): for each open wall rectangle ``(x0, x1) x (y0, y1)``,
        Liang-Barsky clipping gives the parameter interval ``[t0, t1]`` of ``p + t (q - p)``,
        ``t in [0, 1]``, inside the closed rectangle (``t0`` = max of the slab entries and 0,
        ``t1`` = min of the slab exits and 1); the segment enters iff ``t0 < t1`` and the
        clipped part's midpoint is inside the rectangle by more than TOL = 1e-9.  A segment
        running along a wall edge or touching a wall corner does not enter; a degenerate
        segment (p = q) enters iff p lies inside the walls.  A numba loop over segments tests
        only the rectangles of the cells covered by the segment's bounding box (all of them
        for long segments); memory is O(number of segments), ~1e6 segments take well under a
        second.

        >>> m = Maze.large()
        >>> m.segments_enter_walls([[1.5, 1.5], [1.0, 2.0]], [[6.5, 1.5], [1.0, 3.0]]).tolist()
        [True, False]
        """
        p, q = _points(p, "p"), _points(q, "q")
        try:
            p, q = np.broadcast_arrays(p, q)
        except ValueError:
            raise ParameterError(f"p and q must have broadcastable shapes, got {p.shape} and {q.shape}") from None
        return self._enter(p.reshape(-1, 2), q.reshape(-1, 2)).reshape(p.shape[:-1])

    def path_valid(self, paths, upsample: int = 6):
        """bool (B,) for paths (B, n, 2), or a bool for one path (n, 2): the polyline stays in
        the free region.

        Each path is re-interpolated linearly with ``upsample`` points per segment (n points
        -> (n - 1) * upsample + 1, e.g. 50 -> 295, close to the original 300-step trajectory);
        it is valid iff every point is free (:meth:`is_free`; non-finite points are invalid)
        and no segment enters a wall (:meth:`segments_enter_walls`).  Re-interpolation
        does not change the polyline, so the answer is the same for every ``upsample`` (the
        check is exact for any); it is kept so that a caller may ask about the dense path.

        >>> m = Maze.large()
        >>> m.path_valid([[[1.5, 1.5], [4.5, 1.5]], [[4.5, 1.5], [6.5, 1.5]]]).tolist()
        [True, False]
        """
        try:
            p = np.asarray(paths, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterError(f"paths must be an array (B, n, 2) or (n, 2), got {paths!r}") from None
        if p.ndim not in (2, 3) or p.shape[-1] != 2 or p.shape[-2] < 1:
            raise ParameterError(f"paths must have shape (B, n, 2) or (n, 2) with n >= 1, got {p.shape}")
        up = _int("upsample", upsample, 1)
        single = p.ndim == 2
        p = p.reshape(-1, *p.shape[-2:])
        t = np.arange(up) / up
        out = np.empty(len(p), dtype=bool)
        step = max(1, _CHUNK * 16 // (p.shape[1] * up))
        for a in range(0, len(p), step):
            c = p[a:a + step]
            dense = (c[:, :-1, None] + t[:, None] * (c[:, 1:, None] - c[:, :-1, None])).reshape(len(c), -1, 2)
            dense = np.concatenate([dense, c[:, -1:]], axis=1)
            ok = self.is_free(dense).all(-1)
            if dense.shape[1] > 1:
                enter = self._enter(dense[:, :-1].reshape(-1, 2), dense[:, 1:].reshape(-1, 2))
                ok &= ~enter.reshape(len(c), -1).any(-1)
            out[a:a + step] = ok
        return bool(out[0]) if single else out

    path_length = staticmethod(path_length)

    # ---- geodesics

    def _geodesic(self, s: np.ndarray, g: np.ndarray):
        """Lengths and corner indices (i, j; -1 when direct) of geodesics s -> g, flat arrays."""
        nodes, dist, _ = self._graph
        n, k = len(s), len(nodes)
        length = np.linalg.norm(g - s, axis=1)
        i1 = np.full(n, -1)
        i2 = np.full(n, -1)
        far = np.flatnonzero(self._enter(s, g))
        if len(far) and k:
            ss, gg = s[far], g[far]
            vs = ~self._enter(np.repeat(ss, k, axis=0), np.tile(nodes, (len(far), 1))).reshape(-1, k)
            vg = ~self._enter(np.repeat(gg, k, axis=0), np.tile(nodes, (len(far), 1))).reshape(-1, k)
            out, a1, a2 = np.empty(len(far)), np.empty(len(far), np.int64), np.empty(len(far), np.int64)
            _via_corners(ss, gg, vs, vg, nodes, dist, out, a1, a2)
            length[far], i1[far], i2[far] = out, a1, a2
        elif len(far):
            length[far] = np.inf
        return length, i1, i2

    def shortest_path_length(self, starts, goals) -> np.ndarray:
        """Exact Euclidean geodesic distance between free points inside the free region.

        ``starts`` and ``goals`` are broadcastable (..., 2) arrays (e.g. (B, 2) and (B, 2));
        the result has the broadcast shape without the last axis (inf where a goal cannot be
        reached).  Visibility-graph algorithm (module docstring): the nodes are the reflex and
        pinch corners of the free region, edges join mutually visible corners (no wall entered)
        with Euclidean weights, and all-pairs Dijkstra distances D are computed once per maze.
        A query is ``|s - g|`` when s sees g, else ``min |s - c1| + D[c1, c2] + |c2 - g|`` over
        corners c1 visible from s and c2 visible from g.  Chunked numba loops: 10,000 queries
        take a fraction of a second.

        >>> m = Maze.large()
        >>> m.shortest_path_length([[1.5, 1.5], [1.5, 1.5]], [[4.5, 1.5], [2.5, 3.5]]).round(4).tolist()
        [3.0, 2.2882]
        """
        s, g = self.check_points(starts, "start"), self.check_points(goals, "goal")
        try:
            s, g = np.broadcast_arrays(s, g)
        except ValueError:
            raise ParameterError(f"starts and goals must have broadcastable shapes, got {s.shape} and {g.shape}") from None
        shape = s.shape[:-1]
        s, g = s.reshape(-1, 2), g.reshape(-1, 2)
        out = np.empty(len(s))
        for a in range(0, len(s), _CHUNK):
            out[a:a + _CHUNK] = self._geodesic(s[a:a + _CHUNK], g[a:a + _CHUNK])[0]
        return out.reshape(shape)

    def shortest_path(self, start, goal) -> np.ndarray:
        """One geodesic from ``start`` to ``goal`` (free (x, y) points) as a polyline (k, 2):
        start, the corners it bends at, goal.  Its :func:`path_length` is
        :meth:`shortest_path_length`; raises :class:`ParameterError` if the goal cannot be reached.

        >>> Maze.large().shortest_path([1.5, 1.5], [2.5, 3.5]).tolist()
        [[1.5, 1.5], [2.0, 3.0], [2.5, 3.5]]
        """
        s = self.check_points(start, "start")
        g = self.check_points(goal, "goal")
        if s.shape != (2,) or g.shape != (2,):
            raise ParameterError(f"start and goal must be single (x, y) points, got shapes {s.shape} and {g.shape}")
        length, i, j = self._geodesic(s[None], g[None])
        if not np.isfinite(length[0]):
            raise ParameterError(f"goal {_fmt(g)} cannot be reached from start {_fmt(s)}: they lie in disconnected parts")
        if i[0] < 0:
            return np.stack([s, g])
        nodes, _, pred = self._graph
        chain = [int(j[0])]
        while chain[-1] != i[0]:
            chain.append(int(pred[i[0], chain[-1]]))
        return np.concatenate([s[None], nodes[chain[::-1]], g[None]])

    def geodesic_diameter(self) -> tuple[float, tuple, tuple]:
        """Longest geodesic between free-cell centres: ``(length, start_cell, goal_cell)``,
        max over all pairs of :meth:`shortest_path_length` (cached).  For maze2d-large it is
        13.53 cells, between the centres of cells (7, 1) and (7, 10) (the longest BFS cell
        path, 19 moves with 7 turns, joins (3, 10) and (7, 1)).

        >>> length, a, b = Maze.large().geodesic_diameter()
        >>> round(length, 2), a, b
        (13.53, (7, 1), (7, 10))
        """
        return self._diameter

    @cached_property
    def _diameter(self):
        c = self.free_cells[:, ::-1] + 0.5
        i, j = np.triu_indices(len(c), 1)
        d = self.shortest_path_length(c[i], c[j])
        k = int(np.argmax(d))
        return float(d[k]), tuple(int(v) for v in self.free_cells[i[k]]), tuple(int(v) for v in self.free_cells[j[k]])

    # ---- plotting

    def plot(self, ax=None, paths=None, starts=None, goals=None, *, path_color=None, alpha: float = 0.8,
             linewidth: float = 1.0, wall_color="0.25", title: str | None = None):
        """Draw the maze: walls as dark squares, optional paths ((n, 2) or (B, n, 2) polylines),
        start (circles) and goal (stars) markers; returns the matplotlib Axes.

        Without ``ax``, a new ``matplotlib.figure.Figure`` is made (no pyplot, so any backend
        works; save it with ``ax.figure.savefig(...)``).  The y axis is inverted (row 0 on
        top), the aspect is equal.  ``path_color`` is one colour for all paths (default: a
        colour cycle).

        >>> ax = Maze.large().plot(paths=[[1.5, 1.5], [4.5, 1.5]], starts=[1.5, 1.5], goals=[4.5, 1.5])
        >>> tuple(float(v) for v in ax.get_ylim())
        (9.0, 0.0)
        """
        from matplotlib.collections import LineCollection, PolyCollection

        if ax is None:
            from matplotlib.figure import Figure

            ax = Figure(figsize=(0.5 * self.shape[1] + 1, 0.5 * self.shape[0] + 1)).add_subplot()
        rows, cols = self.shape
        rc = np.argwhere(self.walls)
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
                q = _points(pts, kw["label"]).reshape(-1, 2)
                ax.scatter(q[:, 0], q[:, 1], zorder=3, edgecolors="k", linewidths=0.5, **kw)
        ax.set_xlim(0, cols)
        ax.set_ylim(rows, 0)
        ax.set_aspect("equal")
        if title:
            ax.set_title(title)
        return ax


@lru_cache(maxsize=1)
def _large() -> Maze:
    return Maze(MAZE2D_LARGE)


# ----------------------------------------------------------------------------- trajectories


@dataclass(frozen=True)
class ControllerConfig:
    """Point-mass waypoint controller of :func:`simulate` (lengths in cells, time in the units of ``dt``).

    Each step: the desired velocity is ``v_des = kp (w - x)`` capped at ``v_max`` (w: the
    current waypoint), the acceleration ``a = kd (v_des - v) + noise_std * xi`` (xi standard
    normal, 2-d) capped at ``a_max``; then ``v += a dt`` (capped at ``v_max``) and
    ``x += v dt`` (semi-implicit Euler).  Equivalently a PD law ``kp kd (w - x) - kd v`` with a
    saturated velocity reference.  Within ``switch_radius`` of the waypoint the agent switches
    to the next one.

    Defaults: ``dt = 0.1``, ``kp = 2.5``, ``kd = 8``, ``a_max = 4``, ``v_max = 1``,
    ``noise_std = 1``, ``switch_radius = 0.3``, ``skip_straight = True``.  The cruise speed is
    ``v_max dt`` = 0.1 cell per step (mean speed with turns and noise 0.092), so a 300-step
    window covers ~26 cells.  The longest geodesic of maze2d-large between free-cell centres is
    13.5 cells (:meth:`Maze.geodesic_diameter`); the agent follows cell centre lines, and the
    longest such route (19 cells, 7 turns, cell (3, 10) to (7, 1)) takes it ~187 steps, so
    every pair of cells can be joined within one window.  The agent stays on average 0.06 cell
    from the corridor centre lines (99% within 0.18) and slows to ~kp * switch_radius = 0.75
    cell/time before a turn, so the trajectory subsampled every 6 steps stays valid
    (:func:`make_dataset` reports the dropped fraction: 0 in 20,000 windows with these
    defaults).

    Fields: ``dt`` time step (> 0); ``kp`` position gain (1/time, > 0); ``kd`` velocity gain
    (1/time, > 0); ``a_max`` maximal acceleration (cells/time^2, > 0); ``v_max`` maximal speed
    (cells/time, > 0, with ``v_max * dt <= 0.5``: less than half a cell per step);
    ``noise_std`` standard deviation of the acceleration noise per component (>= 0);
    ``switch_radius`` waypoint switching radius (cells, in (0, 0.5]); ``skip_straight``: aim at
    the end of each straight run of the cell path rather than at every cell centre.

    >>> ControllerConfig().v_max * ControllerConfig().dt
    0.1
    >>> ControllerConfig(v_max=-1)
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: ControllerConfig.v_max must be > 0, got -1.0
    """

    dt: float = 0.1
    kp: float = 2.5
    kd: float = 8.0
    a_max: float = 4.0
    v_max: float = 1.0
    noise_std: float = 1.0
    switch_radius: float = 0.3
    skip_straight: bool = True

    def __post_init__(self):
        for name in ("dt", "kp", "kd", "a_max", "v_max", "noise_std", "switch_radius"):
            v = getattr(self, name)
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise ParameterError(f"ControllerConfig.{name} must be a real number, got {v!r}")
            v = float(v)
            if not math.isfinite(v):
                raise ParameterError(f"ControllerConfig.{name} must be finite, got {v}")
            if v < 0 or (v == 0 and name != "noise_std"):
                raise ParameterError(f"ControllerConfig.{name} must be {'>= 0' if name == 'noise_std' else '> 0'}, got {v}")
            object.__setattr__(self, name, v)
        if self.switch_radius > 0.5:
            raise ParameterError(f"ControllerConfig.switch_radius must be <= 0.5 cell (the agent switches inside the "
                                 f"waypoint's cell), got {self.switch_radius}")
        if self.v_max * self.dt > 0.5:
            raise ParameterError(f"ControllerConfig: a step may move v_max * dt = {self.v_max * self.dt:g} cells; "
                                 "keep it <= 0.5 (lower v_max or dt)")
        if not isinstance(self.skip_straight, (bool, np.bool_)):
            raise ParameterError(f"ControllerConfig.skip_straight must be True or False, got {self.skip_straight!r}")
        object.__setattr__(self, "skip_straight", bool(self.skip_straight))


def _maze(maze) -> Maze:
    if maze is None:
        return Maze.large()
    if not isinstance(maze, Maze):
        raise ParameterError(f"maze must be a Maze (or None for maze2d-large), got {type(maze).__name__}")
    return maze


def _config(config) -> ControllerConfig:
    if not isinstance(config, ControllerConfig):
        raise ParameterError(f"config must be a ControllerConfig, got {type(config).__name__}")
    return config


_START_MARGIN = 0.2   # agents start at rest, uniform in a free cell at least this far from its sides
_AGENT_BLOCK = 4096   # agents whose noise is drawn at once (bounds memory; part of the seed -> data map)


def simulate(n_agents: int, n_steps: int, seed: int, config: ControllerConfig = ControllerConfig(),
             maze: Maze | None = None) -> np.ndarray:
    """Trajectories of independent point masses, float64 (n_agents, n_steps, 2) of (x, y).

    Each agent starts at rest at a uniform point of a free cell (``0.2`` from its sides) and
    repeatedly: picks a goal cell uniformly among the other free cells, follows the centres of
    the BFS cell path to it (:meth:`Maze.cell_path`, without the centre of the cell it starts
    from; with ``config.skip_straight`` only the ends of straight runs), switching to the next
    centre within ``config.switch_radius``, under the controller of :class:`ControllerConfig`.
    Collisions: each step moves along the straight segment x -> x + v dt; if it would enter a
    wall (:meth:`Maze.segments_enter_walls`) the agent stops on the wall face and loses the
    velocity component into it, so the dense trajectory never enters a wall.  Row ``t`` is
    the state before step ``t`` (row 0: the start).

    Deterministic given ``seed`` (``np.random.default_rng(seed)``: start points, first goals,
    then per block of agents the noise and goal draws), compiled with numba: ~1e6 agent-steps
    per second or more on one core.

    >>> x = simulate(3, 200, seed=1)
    >>> x.shape, bool(Maze.large().path_valid(x, upsample=1).all())
    ((3, 200, 2), True)
    """
    n_agents = _int("n_agents", n_agents, 1)
    n_steps = _int("n_steps", n_steps, 1)
    seed = _int("seed", seed, 0)
    cfg, maze = _config(config), _maze(maze)
    rng = np.random.default_rng(seed)
    nodes = maze.free_cells
    n_free = len(nodes)
    x0 = maze.random_free_points(n_agents, rng, margin=_START_MARGIN)
    cell0 = maze._index[tuple(maze.cell_of(x0).T)]
    goal0 = (cell0 + 1 + rng.integers(max(n_free - 1, 1), size=n_agents)) % n_free if n_free > 1 else cell0
    waypoint = maze._waypoint if cfg.skip_straight else maze._next_hop
    reach = waypoint[cell0, goal0] >= 0
    if not reach.all():  # disconnected layout: aim at the own cell until a reachable goal is drawn
        goal0 = np.where(reach, goal0, cell0)
        waypoint = np.where(waypoint >= 0, waypoint, np.arange(n_free)[:, None])
    centres = (nodes[:, ::-1] + 0.5).astype(np.float64)
    rects, ptr, idx = maze._rects
    out = np.empty((n_agents, n_steps, 2))
    for a in range(0, n_agents, _AGENT_BLOCK):
        b = min(n_agents, a + _AGENT_BLOCK)
        noise = rng.standard_normal((b - a, n_steps, 2), dtype=np.float32)
        u = rng.random((b - a, n_steps))
        _simulate_kernel(x0[a:b], cell0[a:b], goal0[a:b], noise, u, centres, np.ascontiguousarray(waypoint),
                         rects, ptr, idx, maze.shape[0], maze.shape[1], cfg.dt, cfg.kp, cfg.kd, cfg.a_max,
                         cfg.v_max, cfg.noise_std, cfg.switch_radius, out[a:b])
    return out


# ----------------------------------------------------------------------------- datasets

_ROUND_STEPS = 2_000_000   # dense agent-steps simulated per round of make_dataset (bounds memory)


def make_dataset(n_windows: int, seed: int, window: int = 300, every: int = 6,
                 config: ControllerConfig = ControllerConfig(), maze: Maze | None = None,
                 n_agents: int | None = None, burn_in: int = 100) -> dict:
    """Training paths for a maze planner: ``n_windows`` valid windows of ``window`` steps,
    subsampled every ``every`` steps.

    Rounds of :func:`simulate` (``n_agents`` agents, default ``min(n_windows, 1000)``, each of
    ``burn_in + k * window`` steps, k windows per agent, k chosen so that a round simulates at
    most ~2e6 agent-steps when ``n_agents * (burn_in + window)`` allows it)
    until enough windows are kept: each agent gives k windows starting at uniform random times
    in ``[burn_in, n_steps - window]``, subsampled at offsets ``0, every, ...`` (window 300,
    every 6 -> 50 points at 0, 6, ..., 294).  Windows whose subsampled polyline is not
    :meth:`Maze.path_valid` are dropped and replaced.  Deterministic given ``seed``.

    Returns a dict: ``paths`` float32 (n_windows, window // every, 2); ``stats`` (n_windows,
    n_cut windows examined, n_dropped, frac_dropped, path length mean / std / min / median /
    max, mean start-to-end distance, mean dense speed in cells per step, dense agent-steps
    simulated, rounds); and the settings ``layout``, ``window``, ``every``, ``seed``,
    ``burn_in``, ``n_agents``, ``controller`` (dict).

    >>> d = make_dataset(8, seed=0)
    >>> d["paths"].shape, d["paths"].dtype, bool(Maze.large().path_valid(d["paths"]).all())
    ((8, 50, 2), dtype('float32'), True)
    """
    n_windows = _int("n_windows", n_windows, 1)
    seed = _int("seed", seed, 0)
    window = _int("window", window, 1)
    every = _int("every", every, 1)
    burn_in = _int("burn_in", burn_in, 0)
    if window % every:
        raise ParameterError(f"every = {every} must divide window = {window} (e.g. window 300, every 6)")
    if window < 2 * every:
        raise ParameterError(f"window = {window} must be at least 2 * every = {2 * every} so that a path has two points")
    cfg, maze = _config(config), _maze(maze)
    n_agents = min(n_windows, 1000) if n_agents is None else _int("n_agents", n_agents, 1)
    per_agent = max(1, min(-(-n_windows // n_agents), _ROUND_STEPS // (n_agents * window)))
    n_steps = burn_in + per_agent * window
    rng = np.random.default_rng(seed)
    offsets = np.arange(0, window, every)
    kept, n_kept, n_cut, n_dense, rounds, speed_sum = [], 0, 0, 0, 0, 0.0
    while n_kept < n_windows:
        traj = simulate(n_agents, n_steps, int(rng.integers(2**63)), cfg, maze)
        starts = rng.integers(burn_in, n_steps - window + 1, size=(n_agents, per_agent))
        sub = traj[np.arange(n_agents)[:, None, None], starts[..., None] + offsets].reshape(-1, len(offsets), 2)
        ok = maze.path_valid(sub, upsample=every)
        rounds += 1
        n_dense += traj.shape[0] * traj.shape[1]
        speed_sum += np.linalg.norm(np.diff(traj[:, burn_in:], axis=1), axis=-1).sum()
        if not ok.any():
            raise ParameterError(f"no valid window in {len(sub)} simulated ones: the controller cuts corners; "
                                 "lower v_max or noise_std, or raise a_max")
        need = n_windows - n_kept
        good = np.flatnonzero(ok)
        n_cut += int(good[need - 1]) + 1 if len(good) >= need else len(sub)
        kept.append(sub[good[:need]])
        n_kept += min(need, len(good))
    paths = np.concatenate(kept).astype(np.float32)
    length = path_length(paths.astype(np.float64))
    stats = dict(
        n_windows=n_windows, n_cut=n_cut, n_dropped=n_cut - n_windows, frac_dropped=(n_cut - n_windows) / n_cut,
        path_length_mean=float(length.mean()), path_length_std=float(length.std()),
        path_length_min=float(length.min()), path_length_median=float(np.median(length)),
        path_length_max=float(length.max()),
        displacement_mean=float(np.linalg.norm(paths[:, -1] - paths[:, 0], axis=-1).mean()),
        speed_mean=float(speed_sum / (rounds * n_agents * (n_steps - burn_in - 1))) if n_steps - burn_in > 1 else 0.0,
        n_agent_steps=int(n_dense), rounds=rounds,
    )
    return dict(paths=paths, stats=stats, layout=maze.layout, window=window, every=every, seed=seed,
                burn_in=burn_in, n_agents=n_agents, controller=asdict(cfg))


def write_dataset(out, data: dict, meta: dict | None = None, overwrite: bool = False) -> Path:
    """Write a :func:`make_dataset` result to HDF5; returns the path.

    Dataset ``paths`` (float32, chunked, gzip); root attributes ``kind`` =
    ``"maze-trajectories"``, ``layout``, ``window``, ``every``, ``seed``, ``burn_in``,
    ``n_agents``, ``controller`` and ``statistics`` (JSON), ``version``, ``command``
    (``meta["command"]``, default ""), ``meta`` (the other ``meta`` items, JSON) and ``date``.
    The file is written under a temporary name and renamed, so a failed write leaves nothing.
    Refuses an existing ``out`` unless ``overwrite`` (:class:`OutputExistsError`) and a
    missing parent directory (:class:`ParameterError`).

    >>> import tempfile, os
    >>> d = make_dataset(2, seed=0)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     f = write_dataset(os.path.join(tmp, "maze.h5"), d, {"command": "doctest"})
    ...     paths, attrs = read_dataset(f)
    >>> paths.shape, attrs["kind"], attrs["command"]
    ((2, 50, 2), 'maze-trajectories', 'doctest')
    """
    import h5py

    from ..._version import __version__

    out = prepare_output(out, overwrite, hint="pass overwrite=True (or choose another path) to replace it")
    if not isinstance(data, dict) or "paths" not in data:
        raise ParameterError("data must be the dict returned by make_dataset (with 'paths', 'stats', ...)")
    paths = np.asarray(data["paths"], dtype=np.float32)
    if paths.ndim != 3 or paths.shape[-1] != 2 or len(paths) == 0:
        raise ParameterError(f"data['paths'] must have shape (N, n, 2) with N >= 1, got {paths.shape}")
    meta = dict(meta or {})
    command = str(meta.pop("command", ""))

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.create_dataset("paths", data=paths, chunks=(min(len(paths), 1024), *paths.shape[1:]),
                             compression="gzip", shuffle=True)
            f.attrs["kind"] = DATASET_KIND
            f.attrs["layout"] = str(data.get("layout", MAZE2D_LARGE))
            for key in ("window", "every", "seed", "burn_in", "n_agents"):
                if data.get(key) is not None:
                    f.attrs[key] = int(data[key])
            f.attrs["controller"] = json.dumps(data.get("controller", {}))
            f.attrs["statistics"] = json.dumps(data.get("stats", {}))
            f.attrs["version"] = __version__
            f.attrs["command"] = command
            f.attrs["meta"] = json.dumps(meta, default=str)
            f.attrs["date"] = utc_now()

    return atomic_write(out, write)


def read_dataset(path) -> tuple[np.ndarray, dict]:
    """Read a file written by :func:`write_dataset`: ``(paths float32 (N, n, 2), attrs)``, the
    JSON attributes (``controller``, ``statistics``, ``meta``) decoded.  Anything else (missing
    file, not HDF5, another kind of file, malformed paths) raises :class:`ParameterError`.

    >>> read_dataset("/nonexistent/maze.h5")
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: /nonexistent/maze.h5: no such file; give the path of a file written by write_dataset
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"{path}: no such file; give the path of a file written by write_dataset")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ParameterError(f"{path}: not an HDF5 file ({e}); give a file written by write_dataset") from None
    with f:
        kind = f.attrs.get("kind")
        if kind != DATASET_KIND:
            raise ParameterError(f"{path}: not a maze trajectory dataset (attribute kind = {kind!r}, expected "
                                 f"{DATASET_KIND!r}); give a file written by write_dataset")
        if "paths" not in f or not isinstance(f["paths"], h5py.Dataset):
            raise ParameterError(f"{path}: maze dataset without a 'paths' array; the file is corrupted, regenerate it")
        paths = f["paths"][()]
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    if paths.ndim != 3 or paths.shape[-1] != 2:
        raise ParameterError(f"{path}: 'paths' has shape {paths.shape}, expected (N, n, 2); regenerate the file")
    for key in ("controller", "statistics", "meta"):
        if key in attrs:
            try:
                attrs[key] = json.loads(attrs[key])
            except (TypeError, ValueError):
                raise ParameterError(f"{path}: attribute {key!r} is not valid JSON; the file is corrupted") from None
    return paths.astype(np.float32, copy=False), attrs


# ----------------------------------------------------------------------------- the planner
#
# The same interpolant core as the lattice and image tasks: the Hadamard interpolant over the
# sequence axis, I = a * x0 + (1 - a) * x1 with one time a_i per point of a trajectory (shared by
# x and y), learned once by :func:`phi4si.model.train.train` on :func:`maze_data`; planning is
# inpainting (THEORY.md 4.3 and 7): the start is pinned at index 0 and the goal at index k
# (a = 0, a' = 0 there), every other point moves a: 1 -> 0, and k is searched upward until a
# sampled path avoids the walls.

MAZE_KIND = "maze"


def _reverse_in_time(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Training augmentation: each trajectory (B, 2, n) read backwards with probability 1/2 (a
    path from s to g, reversed, is a path from g to s; planning pins both ends)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    return torch.where(flip.reshape(-1, *[1] * (x.ndim - 1)), x.flip(-1), x)


def maze_data(path, reverse: bool = True, val_fraction: float = 0.05):
    """The trajectories of a :func:`write_dataset` file as training data for the 1-d U-Net:
    an :class:`~phi4si.model.data.ArrayData` of shape (N, 2, n) (channels x, y; the sequence is the
    lattice axis, non-periodic: zero padding), time-reversal augmentation when ``reverse``.
    The layout and the largest step between consecutive points (``step_max``, which bounds the
    k search of :func:`plan`) go into the checkpoint.

    >>> # train(maze_data("maze.h5"), "maze.pt", TrainConfig(measure="maze", model="maze"))
    """
    from ...model.data import ArrayData

    paths, attrs = read_dataset(path)
    layout = str(attrs.get("layout", MAZE2D_LARGE))
    Maze(layout)
    if paths.shape[1] < 3:
        raise ParameterError(f"{path}: paths of {paths.shape[1]} points; planning needs at least 3")
    step = np.linalg.norm(np.diff(paths.astype(np.float64), axis=1), axis=-1)
    src = str(Path(path).resolve())
    params = {"kind": MAZE_KIND, "layout": layout, "n_points": int(paths.shape[1]), "window": attrs.get("window"),
              "every": attrs.get("every"), "reverse": bool(reverse), "step_max": float(step.max()),
              "step_mean": float(step.mean()), "n_paths": int(len(paths)), "source": src}
    return ArrayData(np.transpose(paths, (0, 2, 1)), params, val_fraction=val_fraction,
                     augment=_reverse_in_time if reverse else None, model_defaults={"padding": "zeros"}, source=src)


def train_maze(data_path, out, config=None, reverse: bool = True, **kw) -> dict:
    """Train a planner on a trajectory file (see :func:`phi4si.model.train.train`; the config defaults
    to the ``"maze"`` measure (diagonal, anchors, masks, hypercube) and the ``"maze"`` U-Net)."""
    from ...model.train import TrainConfig, train

    cfg = config if config is not None else TrainConfig(measure="maze", model="maze")
    return train(maze_data(data_path, reverse=reverse), out, cfg, **kw)


def load_maze_model(path, device="cpu", dtype=torch.float32):
    """Load a checkpoint written by :func:`train_maze` (refuses other checkpoints)."""
    from ...errors import CheckpointError
    from ...model.checkpoint import load_model

    model = load_model(path, device=device, dtype=dtype)
    if (model.lattice.get("params") or {}).get("kind") != MAZE_KIND:
        raise CheckpointError(f"{path}: not a maze model (it was trained on {model.lattice.get('params')})")
    return model


def model_maze(model) -> Maze:
    """The layout a maze model was trained in."""
    return Maze(model.lattice["params"]["layout"])


@dataclass
class Plans:
    """Result of :func:`plan`, one entry per plan.

    ``paths``: list of (k + 1, 2) polylines (start at 0, waypoints, goal at k); ``k`` the goal
    index used; ``valid`` whether the path avoids the walls (False: no sample at any k up to
    ``k_max`` was valid, the path is the last sample at ``k_max``); ``length`` polyline length;
    ``k_min`` where the search started; ``samples`` trajectories sampled for the plan;
    ``rounds`` searches from ``k_min`` it took (1 unless no sample up to ``k_max`` was valid);
    ``seconds`` wall time of the whole call."""

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


def _leg_indices(legs_lb: np.ndarray, legs: np.ndarray, k: int) -> np.ndarray:
    """Indices (m + 2,) of the anchors for goal index k: each leg j gets its lower bound lb_j
    index steps, the remaining k - sum(lb) are shared in proportion to the leg lengths
    (largest remainder)."""
    extra = k - int(legs_lb.sum())
    tot = float(legs.sum())
    share = extra * (legs / tot if tot > 0 else np.full(len(legs), 1.0 / len(legs)))
    base = np.floor(share).astype(np.int64)
    rest = extra - int(base.sum())
    base[np.argsort(-(share - base), kind="stable")[:rest]] += 1
    return np.concatenate([[0], np.cumsum(legs_lb + base)])


def plan(model, starts, goals, via=None, *, tries: int = 4, steps: int = 20, solver: str = "heun", seed: int = 0,
         k_min=None, k_max: int | None = None, k_batch: int | None = None, rounds: int = 2,
         batch_size: int = 1024, progress: bool = False) -> Plans:
    """Plan paths from ``starts`` to ``goals`` ((2,) or (N, 2) free points), optionally through
    waypoints ``via`` ((m, 2) for every plan, or (N, m, 2)), by inpainting with a maze model.

    For goal index k the anchors are pinned (a = 0): the start at index 0, the goal at k and the
    waypoints in between (each leg gets at least ceil(leg length / step_max) index steps, the
    rest in proportion to its length), the other points of the n-point sequence move a: 1 -> 0
    along the ODE with ``steps`` steps of ``solver``.  ``tries`` paths are sampled per plan and
    k; the plan is the shortest valid one (:meth:`Maze.path_valid`) of points 0..k at the
    smallest k that has one.  The search starts at ``k_min`` (default: the fewest index steps
    the training data could cover, sum over legs of ceil(leg / step_max), at least m + 2) and
    ends at ``k_max`` (default n - 1).  Each pass samples every unfinished plan at its next
    ``k_batch`` values of k at once (default: as many as fill ``batch_size`` trajectories, so the
    last hard plans cost one pass instead of one per k) and keeps the smallest k with a valid
    sample; ``k_batch=1`` is the strictly sequential search.  A plan with no valid sample up to
    ``k_max`` is searched again from ``k_min`` with fresh noise, up to ``rounds`` searches in all
    (more samples, nothing else changes).  Deterministic given ``seed``.

    >>> # p = plan(load_maze_model("maze.pt"), [1.5, 1.5], [10.5, 7.5]); p.valid[0], p.k[0], p.paths[0].shape
    """
    from ...interpolant.paths import InpaintPath
    from ...model.solve import SolveSettings, solve_batches

    maze = model_maze(model)
    n = int(model.shape[0])
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
    m = w.shape[1]
    tries = _int("tries", tries, 1)
    batch_size = _int("batch_size", batch_size, 1)
    anchors = np.concatenate([s[:, None], w, g[:, None]], axis=1)            # (N, m + 2, 2)
    legs = np.linalg.norm(np.diff(anchors, axis=1), axis=-1)                 # (N, m + 1)
    lb = np.maximum(1, np.ceil(legs / model.lattice["params"]["step_max"] - 1e-9)).astype(np.int64)
    k_lo = np.maximum(lb.sum(1), m + 2)
    if k_min is not None:
        k_lo = np.maximum(k_lo, _int("k_min", k_min, 1))
    k_hi = n - 1 if k_max is None else _int("k_max", k_max, 1)
    if k_hi > n - 1:
        raise ParameterError(f"k_max = {k_hi}: the model's paths have {n} points, so k_max <= {n - 1}")
    if (k_lo > k_hi).any():
        i = int(np.flatnonzero(k_lo > k_hi)[0])
        raise ParameterError(f"plan {i}: start, waypoints and goal are {legs[i].sum():.2f} cells apart in straight "
                             f"lines, more than {k_hi} steps of at most {model.lattice['params']['step_max']:.3f} "
                             f"cells (the longest step in the training data) can cover; split it into shorter plans")
    if k_batch is not None:
        k_batch = _int("k_batch", k_batch, 1)
    mean = torch.tensor(model.mean, dtype=torch.float64)
    scale = torch.tensor(model.scale, dtype=torch.float64)
    out_paths = [None] * N
    k_out = np.full(N, -1, np.int64)
    valid = np.zeros(N, bool)
    length = np.full(N, np.inf)
    samples = np.zeros(N, np.int64)
    k_cur = k_lo.copy()
    active = np.ones(N, bool)
    rounds = _int("rounds", rounds, 1)
    used = np.ones(N, np.int64)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=N, desc="plan", unit="plan", dynamic_ncols=True)
    n_pass = 0
    while active.any():
        act = np.flatnonzero(active)
        J = k_batch if k_batch is not None else max(1, batch_size // (len(act) * tries))
        n_k = np.minimum(k_cur[act] + J, k_hi + 1) - k_cur[act]          # k values of each plan this pass
        plan_of = np.repeat(act, n_k)                                     # rows: (plan, k), k increasing
        ks = np.concatenate([np.arange(k_cur[i], k_cur[i] + c) for i, c in zip(act, n_k)])
        R = len(ks)
        pins = np.stack([_leg_indices(lb[i], legs[i], int(k)) for i, k in zip(plan_of, ks)])  # (R, m + 2)
        unknown = np.ones((R, n), bool)
        unknown[np.arange(R)[:, None], pins] = False
        vals = np.zeros((R, n, 2))
        vals[np.arange(R)[:, None], pins] = anchors[plan_of]
        unknown = np.repeat(unknown, tries, axis=0)
        vals_n = (torch.from_numpy(np.repeat(vals, tries, axis=0)).permute(0, 2, 1) - mean) / scale
        um = torch.from_numpy(unknown)[:, None]
        start = lambda z, i, b: torch.where(um[i:i + b], z.double(), vals_n[i:i + b])  # noqa: E731
        path = lambda i, b: InpaintPath(unknown[i:i + b], batched=True)  # noqa: E731
        x = solve_batches(model, R * tries, (n,), start, path,
                          SolveSettings(steps, solver, None, seed + 1009 * n_pass, batch_size))
        n_pass += 1
        cand = (x * scale + mean).permute(0, 2, 1).numpy().copy()                               # (R * tries, n, 2)
        rep = np.repeat(np.arange(R), tries)
        cand[np.arange(R * tries)[:, None], pins[rep]] = anchors[plan_of][rep]                  # exact anchors
        kk = np.repeat(ks, tries)
        beyond = np.arange(n)[None, :] > kk[:, None]          # the plan ends at k: the rest waits at the goal,
        cand = np.where(beyond[..., None], cand[np.arange(R * tries), kk][:, None], cand)   # zero-length segments
        ok = maze.path_valid(cand).reshape(R, tries)
        L = path_length(cand).reshape(R, tries)
        best = np.argmin(np.where(ok, L, np.inf), axis=1)
        for i, r1, c in zip(act, np.cumsum(n_k), n_k):      # rows of plan i: r0 .. r1 - 1
            r0 = r1 - c
            hit = np.flatnonzero(ok[r0:r1].any(1))
            last = r0 + (hit[0] if len(hit) else r1 - 1 - r0)
            samples[i] += tries * (last - r0 + 1)
            if not len(hit) and ks[last] == k_hi and used[i] < rounds:
                used[i] += 1                                  # no valid path up to k_max: search again
                k_cur[i] = k_lo[i]
            elif len(hit) or ks[last] == k_hi:
                out_paths[i] = cand[last * tries + best[last], : ks[last] + 1]
                k_out[i], valid[i], length[i] = int(ks[last]), bool(len(hit)), float(L[last, best[last]])
                active[i] = False
            else:
                k_cur[i] = ks[last] + 1
        if bar is not None:
            bar.update(int(len(act) - active.sum()))
    if bar is not None:
        bar.close()
    return Plans(out_paths, k_out, valid, length, k_lo, samples, used, time.perf_counter() - t0)


def evaluate_plans(model, n_plans: int = 1000, seed: int = 0, margin: float = 0.0, tries: int = 4, steps: int = 20,
                   solver: str = "heun", rounds: int = 2, batch_size: int = 1024, progress: bool = False) -> dict:
    """Plans between ``n_plans`` pairs of uniform random free points (:meth:`Maze.random_free_points`
    with ``margin``, drawn with ``seed``): validity, length against the exact geodesic
    (:meth:`Maze.shortest_path_length`), k-search statistics and time per plan.

    Returns a JSON-able dict (``"_plans"``, ``"_starts"``, ``"_goals"`` and ``"_shortest"`` hold the
    arrays, for figures)."""
    maze = model_maze(model)
    n_plans = _int("n_plans", n_plans, 1)
    rng = np.random.default_rng(_int("seed", seed, 0))
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


def plot_plans(path, maze: Maze, plans, starts, goals, n: int = 12, shortest=True, title: str = "") -> Path:
    """Figure of the first ``n`` plans, one maze per panel: the plan (blue, dots at the 50-point
    grid), the exact geodesic (dashed grey) when ``shortest``, start (green) and goal (red)."""
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
        maze.plot(ax, starts=starts[j], goals=goals[j])
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
    fig.savefig(path, dpi=110)
    return path


def write_plans(out, plans: Plans, starts, goals, shortest=None, attrs: dict | None = None,
                overwrite: bool = False) -> Path:
    """Write :func:`plan` results to HDF5: ``paths`` (N, n, 2) float64 with NaN after each plan's
    goal index, ``k``, ``valid``, ``length``, ``k_min``, ``samples``, ``rounds``, ``starts``,
    ``goals`` and (if given) ``shortest``; root attributes ``kind`` = ``"maze-plans"``, ``version``,
    ``date`` and ``attrs`` (JSON).  Written under a temporary name and renamed; refuses an
    existing ``out`` unless ``overwrite``.  Read the paths back with
    ``[p[: k + 1] for p, k in zip(f["paths"], f["k"])]``."""
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
