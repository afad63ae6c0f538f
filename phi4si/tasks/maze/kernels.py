"""Numba kernels of the maze task: exact segment-versus-rectangle tests, geodesics through
corners and the point-mass simulation loop (no torch, no matplotlib; compiled on first use and
cached on disk, ``cache=True``).

The callers (:mod:`.geometry`, :mod:`.controller`) hold the tables the kernels read:

* ``rects`` (K, 4) float64: open wall rectangles ``(x0, x1) x (y0, y1)`` whose union is the
  complement of the free region;
* ``ptr``, ``idx``: per cell of the layout padded with a ring of walls (``(rows + 2) x (cols + 2)``,
  row-major, cell ``(r, c)`` at ``(r + 1) * (cols + 2) + c + 1``), the CSR list of the rectangles
  that contain it.

A segment ``p + t d``, ``t in [0, 1]``, *enters* a rectangle when its clipped parameter interval
``[t0, t1]`` (Liang-Barsky: the intersection of the x and y slabs with ``[0, 1]``) is non-empty
and the clipped part's midpoint lies inside the rectangle by more than :data:`TOL`; running along
an edge or touching a corner is not entering.

A 1 x 2 layout ``"O#"``: the wall cell (0, 1) is the rectangle ``[1, 2] x [0, 1]``, the only
member of padded cell ``(0 + 1) * 4 + 1 + 1 = 6``:

>>> import numpy as np
>>> rects = np.array([[1.0, 2.0, 0.0, 1.0]])
>>> ptr, idx = np.array([0] * 7 + [1] * 6), np.array([0])
>>> t, k = first_entry(0.0, 0.5, 1.5, 0.5, rects, ptr, idx, 1, 2)   # enters it at x = 1
>>> round(t, 6), k
(0.666667, 0)
>>> first_entry(0.0, 1.0, 1.5, 1.0, rects, ptr, idx, 1, 2)          # along its bottom edge: not entering
(inf, -1)
>>> out = np.empty(2, dtype=bool)
>>> segments_enter(np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([[1.5, 0.5], [1.0, 0.9]]), rects, ptr, idx,
...                1, 2, out)
>>> out.tolist()
[True, False]
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

__all__ = ["TOL", "slab", "enter_t", "first_entry", "segments_enter", "via_corners", "simulate_agents"]

TOL = 1e-9          # geometric tolerance (cells): touching a wall within TOL is not entering it


@nb.njit(cache=True, nogil=True)
def slab(p, d, lo, hi):
    """Parameters (t_in, t_out) at which p + t d is inside [lo, hi]: the sorted pair
    ((lo - p) / d, (hi - p) / d), or (-inf, inf) / (inf, -inf) for d = 0 with p inside / outside."""
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
def enter_t(px, py, dx, dy, x0, x1, y0, y1):
    """Liang-Barsky clip of p + t d, t in [0, 1], against the closed rectangle; returns
    (t0, tx_in, ty_in), t0 = inf unless the segment enters the rectangle's open interior
    (clipped interval t0 < t1 whose midpoint is inside by more than TOL)."""
    ax, bx = slab(px, dx, x0, x1)
    ay, by = slab(py, dy, y0, y1)
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
def first_entry(px, py, qx, qy, rects, ptr, idx, rows, cols):
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
                    t, _, _ = enter_t(px, py, dx, dy, rects[k, 0], rects[k, 1], rects[k, 2], rects[k, 3])
                    if t < best:
                        best = t
                        arg = k
    else:
        for k in range(rects.shape[0]):
            t, _, _ = enter_t(px, py, dx, dy, rects[k, 0], rects[k, 1], rects[k, 2], rects[k, 3])
            if t < best:
                best = t
                arg = k
    return best, arg


@nb.njit(cache=True, nogil=True)
def segments_enter(p, q, rects, ptr, idx, rows, cols, out):
    """out[i] = the segment p[i] -> q[i] ((N, 2) float64 arrays) enters some wall rectangle
    (:func:`first_entry` finite)."""
    for i in range(p.shape[0]):
        t, _ = first_entry(p[i, 0], p[i, 1], q[i, 0], q[i, 1], rects, ptr, idx, rows, cols)
        out[i] = t < np.inf


@nb.njit(cache=True, nogil=True)
def via_corners(s, g, vs, vg, nodes, dist, out, arg1, arg2):
    """Geodesics that bend at corners: out[b] = min over corners i visible from s[b] (``vs[b, i]``)
    and j visible from g[b] (``vg[b, j]``) of ``|s - c_i| + dist[i, j] + |c_j - g|`` (``nodes``
    (k, 2) the corners c, ``dist`` their all-pairs geodesic distances), with the minimising
    (i, j) in ``arg1``, ``arg2`` (inf and -1 when no corner is visible)."""
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
def simulate_agents(x0, cell0, goal0, noise, u, centres, waypoint, rects, ptr, idx, rows, cols,
                    dt, kp, kd, a_max, v_max, noise_std, switch_radius, out):
    """Point masses under the waypoint controller of :func:`.controller.simulate`, agent by agent,
    written into ``out`` (A, T, 2): row t is the state before step t.

    Agent a starts at rest at ``x0[a]`` in free cell ``cell0[a]`` aiming for goal cell ``goal0[a]``
    through ``waypoint[cell, goal]`` (the next free cell to aim at, centres ``centres``).  Step t:
    within ``switch_radius`` of the waypoint switch to the next one (at the goal, draw a new goal
    from ``u[a, t]``, uniform over the other free cells); ``v_des = kp (w - x)`` capped at
    ``v_max``; ``a = kd (v_des - v) + noise_std * noise[a, t]`` capped at ``a_max``;
    ``v += a dt`` capped at ``v_max``; move ``x += v dt`` unless the step enters a wall rectangle
    (:func:`first_entry`), in which case stop on the wall face and zero the velocity component(s)
    into it (the face whose slab is entered last, both at a corner)."""
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
            th, k = first_entry(x, y, x + dx, y + dy, rects, ptr, idx, rows, cols)
            if th == np.inf:
                x += dx
                y += dy
            else:  # stop on the wall face; drop the velocity component(s) into it
                _, tx, ty = enter_t(x, y, dx, dy, rects[k, 0], rects[k, 1], rects[k, 2], rects[k, 3])
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
