"""Lattice momenta and the free-field propagator (THEORY.md section 1).

    p_mu = 2 pi n_mu / L_mu,   p_hat^2 = sum_mu 4 sin^2(p_mu / 2)
    free field (lam = 0):  < |phi~(p)|^2 > / V = 1 / (2 (m2 + p_hat^2)),   Var(m) = 1 / (2 m2 V)

Grids are returned in numpy's FFT layout (``np.fft.fftn`` order) or, with
``rfft=True``, in the half-spectrum layout of ``np.fft.rfftn`` over the last axis.
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def p_hat2(shape, rfft: bool = False) -> np.ndarray:
    """Lattice momentum squared p_hat^2 on the FFT grid of ``shape``.

    >>> p_hat2((4,))
    array([0., 2., 4., 2.])
    """
    shape = tuple(int(s) for s in shape)
    axes = []
    for i, L in enumerate(shape):
        n = np.arange(L // 2 + 1) if (rfft and i == len(shape) - 1) else np.arange(L)
        axes.append(4.0 * np.sin(np.pi * n / L) ** 2)
    grids = np.meshgrid(*axes, indexing="ij")
    return np.sum(grids, axis=0)


def free_propagator(shape, m2: float) -> np.ndarray:
    """Exact free-field two-point function in momentum space, <|phi~(p)|^2>/V = 1/(2(m2 + p_hat^2)).

    >>> float(free_propagator((8, 8), 0.5)[0, 0])
    1.0
    """
    if m2 <= 0:
        raise ParameterError(f"the free field needs m2 > 0, got m2={m2}")
    return 1.0 / (2.0 * (m2 + p_hat2(shape)))


def free_magnetisation_variance(shape, m2: float) -> float:
    """Var(m) = 1/(2 m2 V) of the free field."""
    return 1.0 / (2.0 * m2 * float(np.prod(shape)))


def power_spectrum(phi: np.ndarray, ndim: int) -> np.ndarray:
    """|phi~(p)|^2 / V over the last ``ndim`` axes (any leading batch axes)."""
    axes = tuple(range(phi.ndim - ndim, phi.ndim))
    V = int(np.prod([phi.shape[a] for a in axes]))
    ft = np.fft.fftn(phi, axes=axes)
    return (ft.real**2 + ft.imag**2) / V


def two_point_half(phi: np.ndarray, shape) -> np.ndarray:
    """Connected two-point function on the rfft half grid from a batch of flat configurations
    ``phi`` (n, V): G(p) = < |phi~(p)|^2 >/V - |< phi~(p) >|^2/V (the second term is the disconnected
    part, non-zero at p = 0 only, where h != 0 or the symmetry is broken).

    >>> rng = np.random.default_rng(0)
    >>> G = two_point_half(rng.standard_normal((4000, 16)), (4, 4))   # white noise: G = 1
    >>> G.shape, bool(np.allclose(G, 1.0, atol=0.1))
    ((4, 3), True)
    """
    s2, s1, n = fourier_sums(phi, shape)
    return connected_two_point(s2, s1, n, shape)


def fourier_sums(phi: np.ndarray, shape):
    """``(sum |phi~(p)|^2, sum phi~(p), n)`` of a batch of flat configurations on the rfft half grid: the
    sums behind :func:`two_point_half`, which can be accumulated over batches."""
    shape = tuple(int(s) for s in shape)
    X = np.fft.rfftn(np.asarray(phi, dtype=np.float64).reshape((-1,) + shape), axes=tuple(range(1, len(shape) + 1)))
    return (X.real**2 + X.imag**2).sum(0), X.sum(0), X.shape[0]


def connected_two_point(s2, s1, n, shape) -> np.ndarray:
    """G(p) = s2/(n V) - |s1/n|^2 / V from the sums of :func:`fourier_sums` over n configurations."""
    V = float(np.prod(shape))
    return s2 / (n * V) - np.abs(s1 / n) ** 2 / V


def momentum_orbits(shape) -> tuple[np.ndarray, np.ndarray]:
    """The symmetry orbit of every momentum: ``(index, labels)`` with ``index`` on the FFT grid of
    ``shape`` and ``labels[k]`` the |n_mu| (n_mu in -L/2 .. L/2) of orbit k, axes ordered by length and
    sorted among axes of equal length, orbits ordered by label.  Momenta related by reflections and by
    permutations of equal-length axes share G(p) in the lattice theory.

    >>> index, labels = momentum_orbits((4, 4))
    >>> labels.tolist()
    [[0, 0], [0, 1], [0, 2], [1, 1], [1, 2], [2, 2]]
    >>> int(index[1, 0]), int(index[0, 3])          # n = (1, 0) and (0, -1): the same orbit
    (1, 1)
    """
    shape = tuple(int(s) for s in shape)
    ns = np.meshgrid(*[np.minimum(np.arange(L), L - np.arange(L)) for L in shape], indexing="ij")
    order = np.argsort(shape, kind="stable")             # axes of equal length side by side
    key = np.stack([ns[i].ravel() for i in order], axis=1)
    for L in sorted(set(shape)):                          # permutations only among axes of one length
        cols = [j for j, i in enumerate(order) if shape[i] == L]
        key[:, cols] = np.sort(key[:, cols], axis=1)
    labels, inv = np.unique(key, axis=0, return_inverse=True)
    return inv.reshape(shape), labels


def orbit_p_hat2(shape) -> np.ndarray:
    """p_hat^2 of each momentum orbit of :func:`momentum_orbits` (the same for all its members).

    >>> orbit_p_hat2((4, 4)).tolist()
    [0.0, 2.0, 4.0, 4.0, 6.0, 8.0]
    """
    index, labels = momentum_orbits(shape)
    return np.bincount(index.ravel(), weights=p_hat2(shape).ravel()) / np.bincount(index.ravel())


def orbit_spectrum(phi: np.ndarray, shape) -> np.ndarray:
    """|phi~(p)|^2 / V averaged over each momentum orbit (:func:`momentum_orbits`), per configuration:
    shape ``(..., n_orbits)`` for fields ``(..., *shape)``.

    >>> float(orbit_spectrum(np.ones((1, 4, 4)), (4, 4))[0, 0])   # all weight at p = 0: V m^2
    16.0
    """
    shape = tuple(int(s) for s in shape)
    index, labels = momentum_orbits(shape)
    phi = np.asarray(phi)
    lead = phi.shape[: phi.ndim - len(shape)]
    flat = phi.reshape(-1, *shape)
    onehot = np.zeros((index.size, len(labels)))
    onehot[np.arange(index.size), index.ravel()] = 1.0
    onehot /= onehot.sum(0)
    out = np.empty((len(flat), len(labels)))
    for i in range(0, len(flat), ORBIT_CHUNK):                 # bounded memory for large ensembles
        pw = power_spectrum(np.asarray(flat[i:i + ORBIT_CHUNK], dtype=np.float64), len(shape))
        out[i:i + ORBIT_CHUNK] = pw.reshape(len(pw), -1) @ onehot
    return out.reshape(*lead, len(labels))


ORBIT_CHUNK = 2048
