"""numba kernels of the phi^4 action, force and measurements (THEORY.md sections 1-2).

Fields are stored flat: a configuration of a lattice of shape (L_1, ..., L_d) is a
contiguous C-order vector of length V; batches are ``(n_chains, V)`` arrays.  The
nearest-neighbour sum is done direction by direction on contiguous runs so that
LLVM vectorises every inner loop, in any dimension d.

Conventions (one home per formula; :mod:`phi4si.lattice.torch_ops` is the torch twin
and ``tests/test_lattice.py`` keeps the two equal)::

    hop_x = sum_mu (phi_{x+mu} + phi_{x-mu})
    S     = sum_x [ -phi_x hop_x + c phi_x^2 + lam phi_x^4 - h phi_x ],  c = 2d + m2 - k
    F_x   = -dS/dphi_x = 2 hop_x - 2 c phi_x - 4 lam phi_x^3 + h

(``-phi_x hop_x`` summed over x equals ``-2 sum_{x,mu} phi_x phi_{x+mu}``.)

All kernels are compiled lazily with ``cache=True``; importing this module does not
compile anything.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def hop_sum(phi, out, shape):
    """out[x] = sum_mu (phi[x+mu] + phi[x-mu]) on a periodic lattice (flat vectors)."""
    V = phi.shape[0]
    d = shape.shape[0]
    Ld = shape[d - 1]
    nrow = V // Ld
    for r in range(nrow):
        b = r * Ld
        out[b] = phi[b + 1] + phi[b + Ld - 1]
        for i in range(1, Ld - 1):
            out[b + i] = phi[b + i + 1] + phi[b + i - 1]
        out[b + Ld - 1] = phi[b] + phi[b + Ld - 2]
    inner = Ld
    for mu in range(d - 2, -1, -1):
        L = shape[mu]
        outer = V // (L * inner)
        for o in range(outer):
            for i in range(L):
                ip = i + 1 if i + 1 < L else 0
                im = i - 1 if i > 0 else L - 1
                b = (o * L + i) * inner
                bp = (o * L + ip) * inner
                bm = (o * L + im) * inner
                for j in range(inner):
                    out[b + j] += phi[bp + j] + phi[bm + j]
        inner *= L


@nb.njit(cache=True, nogil=True)
def force_into(phi, out, shape, c, lam, h):
    """out = F(phi) = 2 hop - 2 c phi - 4 lam phi^3 + h, with c = 2d + m2 - k."""
    hop_sum(phi, out, shape)
    c2 = 2.0 * c
    l4 = 4.0 * lam
    for i in range(phi.shape[0]):
        x = phi[i]
        out[i] = 2.0 * out[i] - (c2 + l4 * x * x) * x + h


@nb.njit(cache=True, nogil=True)
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


@nb.njit(cache=True, parallel=True)
def measure_batch(phi, shape, c, lam, h, cos_t, sin_t, strides):
    """Per row: magnetisation m, action S and |phi~(p_min, mu)|^2 / V for each direction mu.

    ``cos_t[mu, n] = cos(2 pi n / L_mu)`` (padded), ``strides`` the C-order strides in sites.
    Returns ``(m, S, gp)`` with ``gp`` of shape ``(n, d)``.
    """
    n, V = phi.shape
    d = shape.shape[0]
    m = np.empty(n)
    S = np.empty(n)
    gp = np.empty((n, d))
    for r in nb.prange(n):
        x = phi[r]
        S[r] = action(x, shape, c, lam, h)
        tot = 0.0
        for i in range(V):
            tot += x[i]
        m[r] = tot / V
        for mu in range(d):
            L = shape[mu]
            st = strides[mu]
            re = 0.0
            im = 0.0
            for i in range(V):
                xm = (i // st) % L
                re += x[i] * cos_t[mu, xm]
                im += x[i] * sin_t[mu, xm]
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
