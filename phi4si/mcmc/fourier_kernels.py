"""Compiled kernels of the Fourier-accelerated samplers (THEORY.md section 3): whole FA-HMC
trajectories and Langevin/MALA steps with the FFTs inside the kernel, parallel over chains.

The FFTs are numpy.fft's ``rfftn``/``irfftn`` called from numba-compiled code, which the rocket-fft
package provides (it registers itself with numba and compiles the pocketfft C++ library that scipy.fft
uses): no Python runs between the FFTs of a trajectory, each chain's trajectory runs on one thread
(``prange`` over chains), any side length and any dimension work, float64 throughout.

Momenta are kept in Fourier space on the rfft half grid, P~ = F pi, so one leapfrog step is one real
FFT pair (the forward transform of the force for the kick, the inverse of M^-1 P~ for the drift) and
the kinetic energy needs no transform at all (Parseval on the half grid, the weights of
:func:`parseval_weights`)::

    K = 1/2 <pi, M^-1 pi> = 1/(2V) sum_{p in half grid} w_p |P~_p|^2 / M_p,
    w_p = 1 on the planes p_d = 0 and p_d = L_d/2 (L_d even), 2 elsewhere.

The same pair serves the Fourier-preconditioned Langevin update and MALA: the new field is one
inverse transform of  (X~ - dt D G~ + sqrt(2 dt D) Xi~) / (1 + 2 dt)  (G = the explicit gradient,
Xi = the noise), and MALA's reverse-move density is a Parseval sum as well.

:class:`phi4si.mcmc.fourier.FourierHMC`, :class:`~phi4si.mcmc.fourier.Langevin` and
:class:`~phi4si.mcmc.fourier.MALA` call these kernels; their ``engine="scipy"`` path (batched
scipy.fft from Python) is the reference the tests hold these kernels to, to round-off.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import rocket_fft  # noqa: F401  (registers numpy.fft/scipy.fft with numba; also done by its entry point)

from ..lattice.kernels import action_with, force_into

__all__ = ["LEAPFROG", "OMELYAN", "parseval_weights", "fahmc_trajectories", "langevin_steps", "mala_steps"]

LEAPFROG, OMELYAN = 0, 1


def parseval_weights(shape) -> np.ndarray:
    """w_p on the rfft half grid of ``shape``: sum_x a_x b_x = (1/V) sum_half w_p Re(A~_p conj(B~_p))."""
    shape = tuple(int(s) for s in shape)
    w = np.full(shape[:-1] + (shape[-1] // 2 + 1,), 2.0)
    w[..., 0] = 1.0
    if shape[-1] % 2 == 0:
        w[..., -1] = 1.0
    return w


@nb.njit(cache=True, nogil=True)
def _fwd(x, dims):
    return np.fft.rfftn(x.reshape(dims))


@nb.njit(cache=True, nogil=True)
def _inv(X, dims):
    return np.fft.irfftn(X, s=dims).ravel()


@nb.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _weighted_norm2(X, mult, wgt):
    """sum_half w_p |X_p|^2 mult_p (the Parseval sum, times V)."""
    s = 0.0
    Xf, mf, wf = X.ravel(), mult.ravel(), wgt.ravel()
    for i in range(Xf.shape[0]):
        z = Xf[i]
        s += wf[i] * mf[i] * (z.real * z.real + z.imag * z.imag)
    return s


@nb.njit(cache=True, nogil=True, fastmath={"contract"})
def _kick(P, f, a, dims):
    """P~ += a F f (the transform's output folded in without a temporary)."""
    F = _fwd(f, dims).ravel()
    Pf = P.ravel()
    for i in range(Pf.shape[0]):
        Pf[i] += a * F[i]


@nb.njit(cache=True, nogil=True, fastmath={"contract"})
def _drift(x, P, invM, buf, a, dims):
    """x += a F^-1[M^-1 P~] (``buf``: the half-grid workspace)."""
    Pf, mf, bf = P.ravel(), invM.ravel(), buf.ravel()
    for i in range(Pf.shape[0]):
        bf[i] = mf[i] * Pf[i]
    y = _inv(buf, dims)
    for i in range(x.shape[0]):
        x[i] += a * y[i]


@nb.njit(cache=True, parallel=True)
def fahmc_trajectories(phi, xi, sqrtM, invM, wgt, shape, dims, c, lam, h, eps, n_steps, integrator, lm,
                       x_out, p_out, dH):
    """One FA-HMC trajectory per chain: pi = F^-1[sqrt(M) F xi], ``n_steps`` leapfrog (``integrator``
    LEAPFROG) or Omelyan (OMELYAN, parameter ``lm``) steps of size ``eps``, H = K + S.  Writes the end
    field to ``x_out``, dH = H(end) - H(start) to ``dH`` and, when ``p_out`` has rows, the end
    momentum (real space) to ``p_out``.  ``sqrtM``, ``invM``, ``wgt``: rfft half-grid arrays."""
    n, V = phi.shape
    for b in nb.prange(n):
        x = phi[b].copy()
        f = np.empty(V)
        P = sqrtM * _fwd(xi[b], dims)
        buf = np.empty_like(P)
        h0 = _weighted_norm2(P, invM, wgt) / (2.0 * V) + action_with(x, f, shape, c, lam, h)
        force_into(x, f, shape, c, lam, h)
        if integrator == LEAPFROG:
            _kick(P, f, 0.5 * eps, dims)
            for s in range(n_steps):
                _drift(x, P, invM, buf, eps, dims)
                force_into(x, f, shape, c, lam, h)
                _kick(P, f, eps if s < n_steps - 1 else 0.5 * eps, dims)
        else:
            _kick(P, f, lm * eps, dims)
            for s in range(n_steps):
                _drift(x, P, invM, buf, 0.5 * eps, dims)
                force_into(x, f, shape, c, lam, h)
                _kick(P, f, (1.0 - 2.0 * lm) * eps, dims)
                _drift(x, P, invM, buf, 0.5 * eps, dims)
                force_into(x, f, shape, c, lam, h)
                _kick(P, f, 2.0 * lm * eps if s < n_steps - 1 else lm * eps, dims)
        dH[b] = _weighted_norm2(P, invM, wgt) / (2.0 * V) + action_with(x, f, shape, c, lam, h) - h0
        x_out[b] = x
        if p_out.shape[0] > 0:
            p_out[b] = _inv(P, dims)


@nb.njit(cache=True, nogil=True, fastmath={"contract"})
def _rest_grad(x, g, a, lam, h):
    """g = grad of S minus its implicit quadratic part: a x + 4 lam x^3 - h, a = 2 (m2 - k - M^2)."""
    l4 = 4.0 * lam
    for i in range(x.shape[0]):
        xi = x[i]
        g[i] = (a + l4 * xi * xi) * xi - h


@nb.njit(cache=True, parallel=True)
def langevin_steps(phi, xi, D, B, sqrtD, dims, a, lam, h, dt, n_steps):
    """``n_steps`` semi-implicit preconditioned Langevin updates of every chain, in place:
    phi~' = (phi~ - dt D g~ + sqrt(2 dt D) xi~) / (1 + 2 dt), g~ = (a x + 4 lam x^3 - h)~ + B phi~ (B = 0 for
    the lattice kernel, see :class:`phi4si.mcmc.fourier.Langevin`); ``xi`` has shape (n_steps, n, V)."""
    n, V = phi.shape
    r = 1.0 / (1.0 + 2.0 * dt)
    cn = np.sqrt(2.0 * dt)
    for b in nb.prange(n):
        x = phi[b].copy()
        g = np.empty(V)
        X = _fwd(x, dims)
        for s in range(n_steps):
            _rest_grad(x, g, a, lam, h)
            X = (X - dt * D * (_fwd(g, dims) + B * X) + cn * sqrtD * _fwd(xi[s, b], dims)) * r
            x = _inv(X, dims)
        phi[b] = x


@nb.njit(cache=True, parallel=True)
def mala_steps(phi, xi, u, D, B, sqrtD, wgt, shape, dims, c, a, lam, h, dt, n_steps, acc_out, dH_out):
    """``n_steps`` MALA steps of every chain, in place: the Langevin update y = mu(x) + C xi as the
    proposal (C~ = sqrt(2 dt D) / (1 + 2 dt); g~ as in :func:`langevin_steps`), accepted when u < exp(-dH),
    dH = S(y) - S(x) + |C^-1 (x - mu(y))|^2 / 2 - |xi|^2 / 2 (the reverse norm by Parseval).  Writes the
    fraction of accepted steps to ``acc_out`` and the last step's dH to ``dH_out``; ``xi``: (n_steps, n, V),
    ``u``: (n_steps, n)."""
    n, V = phi.shape
    r = 1.0 / (1.0 + 2.0 * dt)
    cn = np.sqrt(2.0 * dt)
    inv_c2 = 1.0 / ((cn * r) ** 2 * D)              # |C~|^-2 on the half grid
    for b in nb.prange(n):
        x = phi[b].copy()
        g = np.empty(V)
        X = _fwd(x, dims)
        _rest_grad(x, g, a, lam, h)
        G = _fwd(g, dims) + B * X
        s_x = action_with(x, g, shape, c, lam, h)
        acc = 0.0
        dH = 0.0
        for s in range(n_steps):
            Y = (X - dt * D * G + cn * sqrtD * _fwd(xi[s, b], dims)) * r
            y = _inv(Y, dims)
            s_y = action_with(y, g, shape, c, lam, h)
            _rest_grad(y, g, a, lam, h)
            Gy = _fwd(g, dims) + B * Y
            back = _weighted_norm2(X - (Y - dt * D * Gy) * r, inv_c2, wgt) / V
            xs = xi[s, b]
            dH = (s_y - s_x) + 0.5 * back - 0.5 * np.dot(xs, xs)
            if u[s, b] < np.exp(-dH):
                x, X, G, s_x = y, Y, Gy, s_y
                acc += 1.0
        phi[b] = x
        acc_out[b] = acc / n_steps
        dH_out[b] = dH
