"""numba kernels of the phi^4 action, force and measurements (THEORY.md sections 1-2).

Fields are stored flat: a configuration of a lattice of shape (L_1, ..., L_d) is a
contiguous C-order vector of length V; batches are ``(n_chains, V)`` arrays.  The
nearest-neighbour sum is done direction by direction on contiguous runs so that
LLVM vectorises every inner loop, in any dimension d.

Conventions (one home per formula; :mod:`phi4si.lattice.torch_ops` is the torch twin
and ``tests/lattice/test_lattice.py`` keeps the two equal)::

    hop_x = sum_mu (phi_{x+mu} + phi_{x-mu})
    S     = sum_x [ -phi_x hop_x + c phi_x^2 + lam phi_x^4 - h phi_x ],  c = 2d + m2 - k
    F_x   = -dS/dphi_x = 2 hop_x - 2 c phi_x - 4 lam phi_x^3 + h

(``-phi_x hop_x`` summed over x equals ``-2 sum_{x,mu} phi_x phi_{x+mu}``.)

Fast molecular dynamics (used by :mod:`phi4si.mcmc.hmc`)
---------------------------------------------------------
:func:`md_pass` does one fused "drift + force + kick" sweep of a leapfrog/Omelyan
integrator on a *row-padded* copy of a configuration: the lattice is viewed as
``n_rows = V / L_d`` rows of length ``L_d`` (the last, contiguous axis), each stored with
one ghost site on either side (``W = L_d + 2``), so the periodic left/right neighbours
of every site of a row are plain shifted loads and the inner loop over a row is a
branch-free, fully vectorised loop of exactly ``L_d`` iterations.  Neighbouring rows
in the other directions come from a small table (:func:`row_neighbours`).  The drift
``x += a p`` of the rows one slab (index of the first axis) ahead is interleaved with
the force/kick of the current slab, so each step touches the field once while it is
hot in cache.  d = 3 has a dedicated inner loop; other d use a row buffer.  (d = 2 has its own
fully padded layout, :func:`md_pass_2d`, which is what :mod:`phi4si.mcmc.hmc` uses there.)

:func:`gaussian_fill` draws N(0, 1) numbers as a pure function of a 64-bit key
(SplitMix64 counter hash + Box-Muller with branch-free polynomial log/sin/cos), so
momenta can be drawn in parallel inside the kernels while every run stays an exact
function of the caller's ``numpy.random.Generator`` (which supplies the keys).

All kernels are compiled lazily with ``cache=True``; importing this module does not
compile anything.  Reductions (sums over sites) are compiled with reassociation
allowed (``fastmath`` reassoc/contract only: no "no-NaN" or "no-Inf" assumptions, so
a diverging trajectory still gives a NaN/Inf energy that the Metropolis test rejects);
the results are deterministic run to run on a given machine.
"""

# layout: every numba kernel of the action in one module: the fused MD sweeps (row layout, d = 2
# layout) repeat the force formula inline beside the plain kernels, and the Gaussian generator's
# branch-free log/sin/cos kernels belong with the sweeps that call them.
from __future__ import annotations

import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

# reassociation (vectorised sums) and FMA contraction only: NaN/Inf semantics are kept
FAST = {"reassoc", "contract", "nsz"}


@nb.njit(cache=True, nogil=True)
def hop_sum(phi, out, shape):
    """out[x] = sum_mu (phi[x+mu] + phi[x-mu]) on a periodic lattice (flat vectors).

    Direction by direction on contiguous runs; indices are unsigned so that numba emits no
    negative-index wraparound and LLVM vectorises the inner loops.
    """
    V = phi.shape[0]
    d = shape.shape[0]
    Ld = shape[d - 1]
    nrow = V // Ld
    one = np.uint64(1)
    for r in range(nrow):
        b = np.uint64(r * Ld)
        last = b + np.uint64(Ld - 1)
        out[b] = phi[b + one] + phi[last]
        for i in range(1, Ld - 1):
            k = b + np.uint64(i)
            out[k] = phi[k + one] + phi[k - one]
        out[last] = phi[b] + phi[last - one]
    inner = Ld
    for mu in range(d - 2, -1, -1):
        L = shape[mu]
        outer = V // (L * inner)
        for o in range(outer):
            for i in range(L):
                ip = i + 1 if i + 1 < L else 0
                im = i - 1 if i > 0 else L - 1
                b = np.uint64((o * L + i) * inner)
                bp = np.uint64((o * L + ip) * inner)
                bm = np.uint64((o * L + im) * inner)
                for j in range(inner):
                    ju = np.uint64(j)
                    out[b + ju] += phi[bp + ju] + phi[bm + ju]
        inner *= L


@nb.njit(cache=True, nogil=True, fastmath=FAST)
def force_into(phi, out, shape, c, lam, h):
    """out = F(phi) = 2 hop - 2 c phi - 4 lam phi^3 + h, with c = 2d + m2 - k."""
    hop_sum(phi, out, shape)
    c2 = 2.0 * c
    l4 = 4.0 * lam
    for i in range(phi.shape[0]):
        x = phi[i]
        out[i] = 2.0 * out[i] - (c2 + l4 * x * x) * x + h


@nb.njit(cache=True, nogil=True, fastmath=FAST)
def action_with(phi, scratch, shape, c, lam, h):
    """S(phi) using ``scratch`` (length V) as workspace."""
    hop_sum(phi, scratch, shape)
    s = 0.0
    for i in range(phi.shape[0]):
        x = phi[i]
        s += x * (-scratch[i] + (c + lam * x * x) * x - h)
    return s


@nb.njit(cache=True, nogil=True)
def action(phi, shape, c, lam, h):
    """S(phi) for one flat configuration."""
    return action_with(phi, np.empty_like(phi), shape, c, lam, h)


@nb.njit(cache=True, parallel=True)
def action_batch(phi, shape, c, lam, h):
    """S for every row of a ``(n, V)`` batch (parallel over rows)."""
    n = phi.shape[0]
    out = np.empty(n)
    for i in nb.prange(n):
        out[i] = action(phi[i], shape, c, lam, h)
    return out


@nb.njit(cache=True, parallel=True)
def force_batch(phi, out, shape, c, lam, h):
    """out[i] = F(phi[i]) for every row of a ``(n, V)`` batch (parallel over rows)."""
    for i in nb.prange(phi.shape[0]):
        force_into(phi[i], out[i], shape, c, lam, h)


@nb.njit(cache=True, parallel=True, fastmath=FAST)
def measure_batch(phi, shape, c, lam, h, cos_t, sin_t, strides):
    """Per row: magnetisation m, action S and |phi~(p_min, mu)|^2 / V for each direction mu.

    ``cos_t[mu, n] = cos(2 pi n / L_mu)`` (padded), ``strides`` the C-order strides in sites.
    Returns ``(m, S, gp)`` with ``gp`` of shape ``(n, d)``.

    phi~(p_min e_mu) only depends on the profile P_mu(n) = sum of phi over the sites with
    x_mu = n, so each direction costs one vectorised pass (contiguous runs of ``strides[mu]``
    sites) plus an L_mu-term phase sum.
    """
    n, V = phi.shape
    d = shape.shape[0]
    m = np.empty(n)
    S = np.empty(n)
    gp = np.empty((n, d))
    Lmax = cos_t.shape[1]
    for r in nb.prange(n):
        x = phi[r]
        S[r] = action(x, shape, c, lam, h)
        tot = 0.0
        for i in range(V):
            tot += x[i]
        m[r] = tot / V
        prof = np.empty(Lmax)
        for mu in range(d):
            L = shape[mu]
            st = strides[mu]
            for k in range(L):
                prof[k] = 0.0
            if st == 1:  # last axis: accumulate whole rows (vectorised over k)
                for o in range(V // L):
                    b = np.uint64(o * L)
                    for k in range(L):
                        prof[k] += x[b + np.uint64(k)]
            else:  # contiguous runs of st sites share x_mu = k
                for o in range(V // (L * st)):
                    for k in range(L):
                        b = np.uint64((o * L + k) * st)
                        acc = 0.0
                        for j in range(st):
                            acc += x[b + np.uint64(j)]
                        prof[k] += acc
            re = 0.0
            im = 0.0
            for k in range(L):
                re += prof[k] * cos_t[mu, k]
                im += prof[k] * sin_t[mu, k]
            gp[r, mu] = (re * re + im * im) / V
    return m, S, gp


def phase_tables(shape):
    """cos/sin tables and strides used by :func:`measure_batch`."""
    shape = tuple(int(s) for s in shape)
    Lmax = max(shape)
    cos_t = np.zeros((len(shape), Lmax))
    sin_t = np.zeros((len(shape), Lmax))
    for mu, L in enumerate(shape):
        n = np.arange(L)
        cos_t[mu, :L] = np.cos(2 * math.pi * n / L)
        sin_t[mu, :L] = np.sin(2 * math.pi * n / L)
    strides = np.array([math.prod(shape[mu + 1:]) for mu in range(len(shape))], dtype=np.int64)
    return cos_t, sin_t, strides


# ---------------------------------------------------------------------------------------
# Row-padded layout and the fused molecular-dynamics sweep
# ---------------------------------------------------------------------------------------


@nb.njit(cache=True, nogil=True)
def row_neighbours(shape):
    """Table ``(n_rows, 2 (d - 1))`` of the rows adjacent to each row (C order, periodic).

    Row ``r`` is the run of ``L_d`` sites with fixed first ``d - 1`` coordinates; columns
    ``2 mu`` and ``2 mu + 1`` hold its neighbours at ``-1`` and ``+1`` along axis ``mu``.
    """
    d = shape.shape[0]
    nrows = 1
    for mu in range(d - 1):
        nrows *= shape[mu]
    nb_ = np.empty((nrows, max(2 * (d - 1), 1)), dtype=np.int64)
    for r in range(nrows):
        stride = 1
        for mu in range(d - 2, -1, -1):
            L = shape[mu]
            coord = (r // stride) % L
            base = r - coord * stride
            nb_[r, 2 * mu] = base + ((coord - 1 + L) % L) * stride
            nb_[r, 2 * mu + 1] = base + ((coord + 1) % L) * stride
            stride *= L
    return nb_


@nb.njit(cache=True, nogil=True)
def pad_rows(x, xp):
    """Copy flat field ``x`` into the row-padded 2-D ``xp`` (n_rows, L_d + 2), filling the ghosts."""
    nrows, W = xp.shape
    Lr = W - 2
    for r in range(nrows):
        xr = x[r * Lr: (r + 1) * Lr]
        for i in range(Lr):
            xp[r, i + 1] = xr[i]
        xp[r, 0] = xp[r, Lr]
        xp[r, Lr + 1] = xp[r, 1]


@nb.njit(cache=True, nogil=True)
def unpad_rows(xp, x):
    """Inverse of :func:`pad_rows`."""
    nrows, W = xp.shape
    Lr = W - 2
    for r in range(nrows):
        xr = x[r * Lr: (r + 1) * Lr]
        for i in range(Lr):
            xr[i] = xp[r, i + 1]


@nb.njit(cache=True, nogil=True, fastmath=FAST)
def md_pass(xp, p, hb, shape, nbr, c, lam, h, a, w, measure):
    """One fused integrator sweep on a row-padded field: ``x += a p`` (if ``a != 0``), then
    ``p += w F(x)``.  ``xp`` is ``(n_rows, L_d + 2)`` (see :func:`pad_rows`), ``p`` is
    ``(n_rows, L_d)``, ``hb`` scratch of length ``L_d``.  Any d works; d = 3 has its own
    unrolled inner loop (HMC runs d = 2 in the layout of :func:`md_pass_2d` instead).

    Returns ``(S(x), |p|^2)`` after the sweep when ``measure`` is true, else ``(0, 0)``.

    Order: the kick of slab s (first-axis index s) needs slabs s - 1, s, s + 1 drifted,
    so the sweep drifts slabs nslab - 1 and 0 first, then alternates "drift slab s + 1,
    kick slab s"; every slab is drifted exactly once (also for nslab = 1, 2).

    Row ``r`` of ``xp`` holds the left ghost, the ``L_d`` sites, the right ghost: the
    left/centre/right values of site i are ``xp[r, i]``, ``xp[r, i + 1]``, ``xp[r, i + 2]``.
    Everything is in this one function on purpose: the inner loops index 2-D arrays with
    the loop counter only (unit stride, provably non-negative, so no wraparound selects)
    and no array views or calls are made per row (numba would reference-count them with
    atomic operations), so LLVM vectorises every inner loop.
    """
    d = shape.shape[0]
    nrows, Lr = p.shape
    nn = 2 * (d - 1)
    nslab = shape[0] if d >= 2 else 1
    rps = nrows // nslab
    drift = a != 0.0
    c2 = 2.0 * c
    l4 = 4.0 * lam
    S = 0.0
    K = 0.0
    for t in range(-2, nslab):
        # ---- drift one slab ahead ----
        if t == -2:
            ds = nslab - 1
        elif t == -1:
            ds = 0 if nslab > 1 else -1
        else:
            ds = t + 1 if t + 1 <= nslab - 2 else -1
        if drift and ds >= 0:
            for r in range(ds * rps, (ds + 1) * rps):
                for i in range(Lr):
                    xp[r, i + 1] += a * p[r, i]
                xp[r, 0] = xp[r, Lr]
                xp[r, Lr + 1] = xp[r, 1]
        if t < 0:
            continue
        # ---- kick slab t ----
        for r in range(t * rps, (t + 1) * rps):
            if nn == 4:
                u0 = nbr[r, 0]
                v0 = nbr[r, 1]
                u1 = nbr[r, 2]
                v1 = nbr[r, 3]
                if measure:
                    for i in range(Lr):
                        x = xp[r, i + 1]
                        hop = (((xp[r, i] + xp[r, i + 2]) + (xp[u0, i + 1] + xp[v0, i + 1]))
                               + (xp[u1, i + 1] + xp[v1, i + 1]))
                        x2 = x * x
                        S += x * (-hop + (c + lam * x2) * x - h)
                        q = p[r, i] + w * (2.0 * hop - (c2 + l4 * x2) * x + h)
                        p[r, i] = q
                        K += q * q
                else:
                    for i in range(Lr):
                        x = xp[r, i + 1]
                        hop = (((xp[r, i] + xp[r, i + 2]) + (xp[u0, i + 1] + xp[v0, i + 1]))
                               + (xp[u1, i + 1] + xp[v1, i + 1]))
                        p[r, i] += w * (2.0 * hop - (c2 + l4 * x * x) * x + h)
            else:  # any other d: accumulate the hop sum in a row buffer
                for i in range(Lr):
                    hb[i] = xp[r, i] + xp[r, i + 2]
                for k in range(nn):
                    u = nbr[r, k]
                    for i in range(Lr):
                        hb[i] += xp[u, i + 1]
                for i in range(Lr):
                    x = xp[r, i + 1]
                    hop = hb[i]
                    x2 = x * x
                    if measure:
                        S += x * (-hop + (c + lam * x2) * x - h)
                    q = p[r, i] + w * (2.0 * hop - (c2 + l4 * x2) * x + h)
                    p[r, i] = q
                    if measure:
                        K += q * q
    return S, K


@nb.njit(cache=True, nogil=True)
def md_trajectory(xp, p, hb, shape, nbr, c, lam, h, eps, n_steps, integrator, omelyan_lambda):
    """Integrate Hamilton's equations for H = |p|^2/2 + S in place on a padded field
    ``xp`` (n_rows, L_d + 2) with momenta ``p`` (n_rows, L_d).

    ``integrator`` 0: leapfrog (n_steps + 1 forces), 1: Omelyan minimum-norm
    (2 n_steps + 1 forces).  Returns ``(S(x_0), S(x_T), |p_T|^2)``.
    """
    if integrator == 0:
        S0, _ = md_pass(xp, p, hb, shape, nbr, c, lam, h, 0.0, 0.5 * eps, True)
        S1 = S0
        K1 = 0.0
        for s in range(n_steps):
            last = s == n_steps - 1
            w = 0.5 * eps if last else eps
            S1, K1 = md_pass(xp, p, hb, shape, nbr, c, lam, h, eps, w, last)
    else:
        lm = omelyan_lambda
        S0, _ = md_pass(xp, p, hb, shape, nbr, c, lam, h, 0.0, lm * eps, True)
        half = 0.5 * eps
        mid = (1.0 - 2.0 * lm) * eps
        S1 = S0
        K1 = 0.0
        for s in range(n_steps):
            last = s == n_steps - 1
            md_pass(xp, p, hb, shape, nbr, c, lam, h, half, mid, False)
            w = lm * eps if last else 2.0 * lm * eps
            S1, K1 = md_pass(xp, p, hb, shape, nbr, c, lam, h, half, w, last)
    return S0, S1, K1


# ---------------------------------------------------------------------------------------
# d = 2: fully padded layout, one flat loop per block of rows
# ---------------------------------------------------------------------------------------
#
# x lives in a flat array of (L0 + 2) rows of W = L1 + 2 values: row 0 and row L0 + 1 are
# ghost copies of rows L0 - 1 and 0, and every row has a ghost column on either side.
# Real site (r, i) sits at (r + 1) W + 1 + i.  The momenta (and a 0/1 mask of the real
# columns) use the same row layout without the ghost rows: p[r W + 1 + i].  Then all
# four neighbours of any position j are the flat positions j +- 1, j +- W, and a kick is
# one branch-free loop over r W .. r' W that LLVM vectorises with long trip counts.  The
# ghost columns get meaningless (finite) momenta that are never used: after each drift
# the ghosts of x are re-copied from the real sites, and sums use the mask.  Indices are
# unsigned so that numba emits no negative-index wraparound in the loops.

_U1 = np.uint64(1)


@nb.njit(cache=True, nogil=True)
def pad2d(x, xp, L0, L1):
    """Copy the flat (L0 L1) field ``x`` into the padded ``xp`` ((L0 + 2)(L1 + 2)), ghosts included."""
    W = L1 + 2
    for r in range(L0):
        b = np.uint64((r + 1) * W + 1)
        a = np.uint64(r * L1)
        for i in range(L1):
            xp[b + np.uint64(i)] = x[a + np.uint64(i)]
        xp[b - _U1] = xp[b + np.uint64(L1 - 1)]
        xp[b + np.uint64(L1)] = xp[b]
    t = np.uint64(L0 * W)
    u = np.uint64((L0 + 1) * W)
    w = np.uint64(W)
    for i in range(W):
        xp[np.uint64(i)] = xp[t + np.uint64(i)]
        xp[u + np.uint64(i)] = xp[w + np.uint64(i)]


@nb.njit(cache=True, nogil=True)
def unpad2d(xp, x, L0, L1):
    """Inverse of :func:`pad2d`."""
    W = L1 + 2
    for r in range(L0):
        b = np.uint64((r + 1) * W + 1)
        a = np.uint64(r * L1)
        for i in range(L1):
            x[a + np.uint64(i)] = xp[b + np.uint64(i)]


@nb.njit(cache=True, nogil=True)
def pad2d_mom(p, pp, L0, L1):
    """Flat momenta ``p`` (L0 L1) into the row layout ``pp`` (L0 (L1 + 2)); ghost columns = 0."""
    W = L1 + 2
    for r in range(L0):
        b = np.uint64(r * W)
        a = np.uint64(r * L1)
        pp[b] = 0.0
        pp[b + np.uint64(W - 1)] = 0.0
        for i in range(L1):
            pp[b + _U1 + np.uint64(i)] = p[a + np.uint64(i)]


@nb.njit(cache=True, nogil=True)
def unpad2d_mom(pp, p, L0, L1):
    """Inverse of :func:`pad2d_mom`."""
    W = L1 + 2
    for r in range(L0):
        b = np.uint64(r * W + 1)
        a = np.uint64(r * L1)
        for i in range(L1):
            p[a + np.uint64(i)] = pp[b + np.uint64(i)]


@nb.njit(cache=True, nogil=True)
def mask2d(L0, L1):
    """1.0 on real columns, 0.0 on ghost columns, in the momentum row layout."""
    W = L1 + 2
    m = np.ones(L0 * W)
    for r in range(L0):
        m[r * W] = 0.0
        m[r * W + W - 1] = 0.0
    return m


@nb.njit(cache=True, nogil=True, fastmath=FAST)
def md_pass_2d(xp, pp, mask, L0, L1, B, c, lam, h, a, w, measure):
    """One fused integrator sweep ``x += a p`` (if ``a != 0``), ``p += w F(x)`` for d = 2 in the
    padded layout (see above), in blocks of ``B`` rows: the drift of block k + 1 precedes
    the kick of block k (which needs rows up to the first of block k + 1), so each block is
    reused while in cache.  Returns ``(S(x), |p|^2)`` over real sites if ``measure``.
    """
    W = L1 + 2
    uW = np.uint64(W)
    nblk = (L0 + B - 1) // B
    drift = a != 0.0
    c2 = 2.0 * c
    l4 = 4.0 * lam
    S = 0.0
    K = 0.0
    for t in range(-2, nblk):
        if t == -2:
            ds = nblk - 1
        elif t == -1:
            ds = 0 if nblk > 1 else -1
        else:
            ds = t + 1 if t + 1 <= nblk - 2 else -1
        if drift and ds >= 0:
            r0 = ds * B
            r1 = min(L0, r0 + B)
            o = np.uint64(r0 * W)
            for j in range((r1 - r0) * W):
                k = o + np.uint64(j)
                xp[k + uW] += a * pp[k]
            for r in range(r0, r1):
                b = (r + 1) * W
                xp[b] = xp[b + L1]
                xp[b + L1 + 1] = xp[b + 1]
            if r1 == L0:
                for i in range(W):
                    xp[i] = xp[L0 * W + i]
            if r0 == 0:
                for i in range(W):
                    xp[(L0 + 1) * W + i] = xp[W + i]
        if t < 0:
            continue
        r0 = t * B
        r1 = min(L0, r0 + B)
        o = np.uint64(r0 * W)
        n = (r1 - r0) * W
        if measure:
            for j in range(n):
                k = o + np.uint64(j)
                kc = k + uW
                x = xp[kc]
                hop = (xp[kc - _U1] + xp[kc + _U1]) + (xp[k] + xp[kc + uW])
                x2 = x * x
                q = pp[k] + w * (2.0 * hop - (c2 + l4 * x2) * x + h)
                pp[k] = q
                m = mask[k]  # 0 on ghost columns, whose (finite, meaningless) values drop out
                S += m * (x * (-hop + (c + lam * x2) * x - h))
                K += m * (q * q)
        else:
            for j in range(n):
                k = o + np.uint64(j)
                kc = k + uW
                x = xp[kc]
                hop = (xp[kc - _U1] + xp[kc + _U1]) + (xp[k] + xp[kc + uW])
                pp[k] += w * (2.0 * hop - (c2 + l4 * x * x) * x + h)
    return S, K


@nb.njit(cache=True, nogil=True)
def md_trajectory_2d(xp, pp, mask, L0, L1, B, c, lam, h, eps, n_steps, integrator, omelyan_lambda):
    """:func:`md_trajectory` for d = 2 in the padded layout of :func:`md_pass_2d`."""
    if integrator == 0:
        S0, _ = md_pass_2d(xp, pp, mask, L0, L1, B, c, lam, h, 0.0, 0.5 * eps, True)
        S1 = S0
        K1 = 0.0
        for s in range(n_steps):
            last = s == n_steps - 1
            w = 0.5 * eps if last else eps
            S1, K1 = md_pass_2d(xp, pp, mask, L0, L1, B, c, lam, h, eps, w, last)
    else:
        lm = omelyan_lambda
        S0, _ = md_pass_2d(xp, pp, mask, L0, L1, B, c, lam, h, 0.0, lm * eps, True)
        half = 0.5 * eps
        mid = (1.0 - 2.0 * lm) * eps
        S1 = S0
        K1 = 0.0
        for s in range(n_steps):
            last = s == n_steps - 1
            md_pass_2d(xp, pp, mask, L0, L1, B, c, lam, h, half, mid, False)
            w = lm * eps if last else 2.0 * lm * eps
            S1, K1 = md_pass_2d(xp, pp, mask, L0, L1, B, c, lam, h, half, w, last)
    return S0, S1, K1


@nb.njit(cache=True, nogil=True)
def block_rows(L1):
    """Rows per block of :func:`md_pass_2d` (about 1000 sites: x and p of a block stay in L1)."""
    return max(1, 1024 // (L1 + 2))


# ---------------------------------------------------------------------------------------
# Gaussian numbers as a pure function of a key (parallel, vectorised)
# ---------------------------------------------------------------------------------------


@intrinsic
def _as_bits(typingctx, x):
    """Reinterpret a float64 as uint64 (no conversion)."""
    if isinstance(x, types.Float) and x.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.IntType(64))

        return types.uint64(types.float64), codegen
    return None


@intrinsic
def _as_f64(typingctx, x):
    """Reinterpret a uint64 as float64 (no conversion)."""
    if isinstance(x, types.Integer) and x.bitwidth == 64:
        def codegen(context, builder, sig, args):
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(x), codegen
    return None


_GOLD = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_ONE_BITS = np.uint64(0x3FF0000000000000)
_MANT = np.uint64(0x000FFFFFFFFFFFFF)
_MAGIC_BITS = np.uint64(0x4330000000000000)  # 2^52 as a double
_U12 = np.uint64(12)
_U27 = np.uint64(27)
_U30 = np.uint64(30)
_U31 = np.uint64(31)
_U52 = np.uint64(52)
_TWO52 = 4503599627370496.0
_SQRT2 = 1.4142135623730951
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_S1 = -1.66666666666666324348e-01
_S2 = 8.33333333332248946124e-03
_S3 = -1.98412698298579493134e-04
_S4 = 2.75573137070700676789e-06
_S5 = -2.50507602534068634195e-08
_S6 = 1.58969099521155010221e-10
_C1 = 4.16666666666666019037e-02
_C2 = -1.38888888888741095749e-03
_C3 = 2.48015872894767294178e-05
_C4 = -2.75573143513906633035e-07
_C5 = 2.08757232129817482790e-09
_C6 = -1.13596475577881948265e-11
_TWO_PI = 6.283185307179586


@nb.njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath={"contract"})
def _bm_radius2(b1):
    """-2 log u1 (the squared Box-Muller radius), u1 = (k + 1/2) 2^-52 in (0, 1) from the top 52 bits k of ``b1``.

    |z| <= 8.5 (the missing tail has probability 2^-52).  log is fdlibm's (< 1 ulp),
    written branch-free (exponent/mantissa split by bit manipulation, selects) so that
    LLVM vectorises the loop: no libm calls.
    """
    u1 = (_as_f64((b1 >> _U12) | _ONE_BITS) - 1.0) + 1.1102230246251565e-16
    ub = _as_bits(u1)
    eb = _as_f64((ub >> _U52) | _MAGIC_BITS) - (_TWO52 + 1023.0)  # unbiased exponent as a double
    m = _as_f64((ub & _MANT) | _ONE_BITS)  # mantissa in [1, 2)
    big = m > _SQRT2
    m = 0.5 * m if big else m
    e = eb + 1.0 if big else eb
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    R = t2 + t1
    hfsq = 0.5 * f * f
    lg = e * _LN2_HI - ((hfsq - (s * (hfsq + R) + e * _LN2_LO)) - f)
    return -2.0 * lg


@nb.njit(cache=True, nogil=True, inline="always", error_model="numpy", fastmath={"contract"})
def _bm_angle(b2):
    """(cos, sin) of 2 pi v, v = k 2^-52 from the top 52 bits of ``b2`` (fdlibm kernels on
    |x| <= pi/4 after an exact quadrant reduction; branch-free)."""
    v = _as_f64((b2 >> _U12) | _ONE_BITS) - 1.0
    qf = np.floor(4.0 * v + 0.5)
    x = _TWO_PI * (v - 0.25 * qf)
    x2 = x * x
    sn = x + x * x2 * (_S1 + x2 * (_S2 + x2 * (_S3 + x2 * (_S4 + x2 * (_S5 + x2 * _S6)))))
    cs = 1.0 - 0.5 * x2 + x2 * x2 * (_C1 + x2 * (_C2 + x2 * (_C3 + x2 * (_C4 + x2 * (_C5 + x2 * _C6)))))
    q4 = qf - 4.0 * np.floor(0.25 * qf)  # 0, 1, 2, 3
    odd = (q4 == 1.0) | (q4 == 3.0)
    ca = sn if odd else cs
    sa = cs if odd else sn
    ca = -ca if (q4 == 1.0) | (q4 == 2.0) else ca
    sa = -sa if q4 >= 2.0 else sa
    return ca, sa


@nb.njit(cache=True, nogil=True, inline="always")
def _mix64(z):
    """SplitMix64 output function (Stafford's Mix13 variant)."""
    z = (z ^ (z >> _U30)) * _MIX1
    z = (z ^ (z >> _U27)) * _MIX2
    return z ^ (z >> _U31)


@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"contract"})
def gaussian_fill(key, out):
    """Fill ``out`` (1-D float64) with N(0, 1) numbers, a pure function of ``key`` (uint64).

    Numbers i and H + i (H = ceil(n/2)) are the Box-Muller pair of SplitMix64 words i + 1
    (radius) and H + i + 1 (angle) of the stream seeded by ``key`` (word j = Mix(key + j G),
    G the golden-ratio increment).  Two passes (squared radii, then angles with the square root) keep each loop short
    enough for the CPU to overlap iterations.
    """
    n = out.shape[0]
    H = (n + 1) // 2
    key = np.uint64(key)
    lo = out[:H]
    hi = out[H:]
    z = key
    for k in range(H):
        z += _GOLD
        lo[k] = _bm_radius2(_mix64(z))
    for k in range(n - H):  # the square root sits here, beside the independent sin/cos work
        z += _GOLD
        ca, sa = _bm_angle(_mix64(z))
        r = math.sqrt(lo[k])
        lo[k] = r * ca
        hi[k] = r * sa
    if n % 2 == 1:
        ca, sa = _bm_angle(_mix64(z + _GOLD))
        lo[H - 1] = math.sqrt(lo[H - 1]) * ca


@nb.njit(cache=True, nogil=True, fastmath=FAST)
def sum_squares(x):
    """sum_i x_i^2 (reassociated, vectorised)."""
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s
