"""Maze geometry (Negrel et al. 2025, section 5.3): the D4RL maze2d-large layout, free points
and cells, exact segment and path validity, exact geodesic distances.  numpy and numba only:
importing this module imports neither torch nor matplotlib (:func:`.figures.draw_maze` draws a
maze).

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

>>> maze = Maze.large()
>>> maze.shape, len(maze.free_cells)
((9, 12), 46)
>>> bool(maze.path_valid([[1.5, 1.5], [4.5, 1.5], [4.5, 3.5]]))
True
>>> round(float(maze.shortest_path_length([1.5, 1.5], [10.5, 7.5])), 4)
11.2017
"""
# layout: one Maze class (~460 lines, a third of them docstrings) whose cached tables serve the
# point tests, segment tests and geodesics together; splitting it would make other modules reach
# into those tables.

from __future__ import annotations

from functools import cached_property, lru_cache

import numpy as np

from ...errors import ParameterError
from .checks import as_points, as_xy, check_int, fmt_point, point_label
from .kernels import TOL, segments_enter, via_corners

__all__ = ["MAZE2D_LARGE", "TOL", "Maze", "path_length"]

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

CHUNK = 1 << 14    # queries per chunk in the geodesic and validity loops (bounds memory)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop indices of the runs of True in a 1-d bool array."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


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
#
# This module runs past ~500 lines because Maze is one class (~460 lines, a third of them docstrings
# and examples): its cached tables (padded walls, wall rectangles, free-cell index, the corner
# visibility graph) serve the point tests, the segment tests and the geodesics alike, and splitting
# the class would have another module reach into them.


class Maze:
    """A grid maze of ``'#'`` (wall) and ``'O'`` (free) cells of side 1 (see the module docstring).

    Attributes: ``layout`` (the normalised layout string), ``walls`` (bool, rows x cols,
    read-only), ``shape`` = (rows, cols), ``free_cells`` ((n, 2) int (row, col), row-major).
    Precomputed tables (:attr:`wall_rects`, :attr:`free_index`, the BFS :attr:`next_hop`, the
    corner visibility graph and its all-pairs distances) are built on first use and cached on
    the instance.

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
    def wall_rects(self) -> tuple:
        """``(rects, ptr, idx)``: the open wall rectangles (K, 4) of (x0, x1, y0, y1) covering the
        complement of the free region (module docstring), and, per cell of the padded layout
        (row-major, ``(rows + 2) x (cols + 2)``), the CSR list ``idx[ptr[c]:ptr[c + 1]]`` of the
        rectangles containing it: the tables the :mod:`.kernels` read.

        >>> rects, ptr, idx = Maze("OO").wall_rects     # the ring around a 1 x 2 room
        >>> rects.astype(int).tolist()  # rows' runs, then columns' runs of >= 2 cells  # doctest: +NORMALIZE_WHITESPACE
        [[-1, 3, -1, 0], [-1, 0, 0, 1], [2, 3, 0, 1], [-1, 3, 1, 2],
         [-1, 0, -1, 2], [2, 3, -1, 2]]
        >>> idx[ptr[1 * 4 + 0]:ptr[1 * 4 + 1]].tolist()   # padded cell (1, 0): the middle row's left cell
        [1, 4]
        """
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
    def free_index(self) -> np.ndarray:
        """int (rows, cols): the index of every free cell in :attr:`free_cells`, -1 for walls.

        >>> Maze("O#O").free_index.tolist()
        [[0, -1, 1]]
        """
        ix = np.full(self.shape, -1, dtype=np.int64)
        ix[tuple(self.free_cells.T)] = np.arange(len(self.free_cells))
        return ix

    @cached_property
    def next_hop(self) -> np.ndarray:
        """int (n, n): ``next_hop[i, g]`` is the free cell (index in :attr:`free_cells`) after i on a
        BFS shortest 4-connected path from i to g (``i`` itself when ``i == g``, negative when g
        cannot be reached from i).

        >>> Maze("OOO").next_hop.tolist()
        [[0, 1, 1], [0, 1, 2], [1, 1, 2]]
        """
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import shortest_path

        ix, n = self.free_index, len(self.free_cells)
        pairs = [(ix[:, :-1], ix[:, 1:]), (ix[:-1, :], ix[1:, :])]
        a = np.concatenate([u[(u >= 0) & (v >= 0)] for u, v in pairs])
        b = np.concatenate([v[(u >= 0) & (v >= 0)] for u, v in pairs])
        graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
        _, pred = shortest_path(graph, directed=False, unweighted=True, return_predecessors=True)
        nxt = pred.T.astype(np.int64)  # pred[g, i]: predecessor of i on the path from g = next hop from i to g
        np.fill_diagonal(nxt, np.arange(n))
        return nxt  # -9999 where g is unreachable from i

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
        rects, ptr, idx = self.wall_rects
        out = np.empty(len(p), dtype=bool)
        segments_enter(np.ascontiguousarray(p, dtype=np.float64), np.ascontiguousarray(q, dtype=np.float64),
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
        p = as_points(points, "point")
        rows, cols = self.shape
        out = (p[..., 0] < 0) | (p[..., 0] > cols) | (p[..., 1] < 0) | (p[..., 1] > rows)
        if out.any():
            i = int(np.flatnonzero(out.ravel())[0])
            raise ParameterError(f"{point_label('point', p, i)} {fmt_point(p.reshape(-1, 2)[i])} lies outside the maze "
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
        p = as_xy(points, "points")
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
        p = as_points(points, name)
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
            msgs.append(f"{point_label(name, p, int(i))} {fmt_point(flat[i])} {why}")
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
        n = check_int("n", n, 0)
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
        s = self.free_index[self._cell(start_cell, "start_cell")]
        g = self.free_index[self._cell(goal_cell, "goal_cell")]
        nxt = self.next_hop
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
        p, q = as_points(p, "p"), as_points(q, "q")
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
        up = check_int("upsample", upsample, 1)
        single = p.ndim == 2
        p = p.reshape(-1, *p.shape[-2:])
        t = np.arange(up) / up
        out = np.empty(len(p), dtype=bool)
        step = max(1, CHUNK * 16 // (p.shape[1] * up))
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
            via_corners(ss, gg, vs, vg, nodes, dist, out, a1, a2)
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
        for a in range(0, len(s), CHUNK):
            out[a:a + CHUNK] = self._geodesic(s[a:a + CHUNK], g[a:a + CHUNK])[0]
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
            raise ParameterError(f"goal {fmt_point(g)} cannot be reached from start {fmt_point(s)}: they lie in disconnected parts")
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


@lru_cache(maxsize=1)
def _large() -> Maze:
    return Maze(MAZE2D_LARGE)
