"""Partitions of a lattice into groups of sites, shared by training measures and paths.

A partition is an integer array ``ids`` of the lattice shape with values 0..n_groups-1.  The
sequential tasks move one group at a time from noise (a = 1) to data (a = 0), in an order.

* :func:`block_ids` - hyper-rectangular blocks (edge blocks are smaller when the side does not
  divide), optionally shifted periodically by ``offset``.
* :func:`coarse_to_fine_ids` - nested sublattices: group 0 = sites with every coordinate
  divisible by 2^(levels-1), group 1 = divisible by 2^(levels-2) but not the coarser, ..., last
  group = the remaining sites.  Generating in the order 0, 1, ... is coarse-to-fine.
* :func:`momentum_shell_ids` - momentum shells of a Fourier-layout array (for the Fourier family, whose
  ``a`` holds a(p) in FFT layout): group 0 = the zero mode, then shells of |p_hat| from low to high.
  Every shell is even in p (a(p) = a(-p), as real fields need).
* :func:`group_order` - raster, random (seeded) or reversed orders of the groups.

>>> block_ids((4, 4), (2, 2))
array([[0, 0, 1, 1],
       [0, 0, 1, 1],
       [2, 2, 3, 3],
       [2, 2, 3, 3]])
>>> coarse_to_fine_ids((4, 4), 2)
array([[0, 1, 0, 1],
       [1, 1, 1, 1],
       [0, 1, 0, 1],
       [1, 1, 1, 1]])
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError
from ..lattice.fourier import p_hat2

__all__ = ["block_ids", "coarse_to_fine_ids", "momentum_shell_ids", "group_order", "group_masks"]


def _shape(shape):
    shape = tuple(int(s) for s in shape)
    if not shape or any(s < 1 for s in shape):
        raise ParameterError(f"invalid lattice shape {shape}")
    return shape


def block_ids(shape, block, offset=None) -> np.ndarray:
    """Block index of every site for blocks of size ``block`` (int or tuple), raster numbered."""
    shape = _shape(shape)
    block = (int(block),) * len(shape) if np.isscalar(block) else tuple(int(b) for b in block)
    if len(block) != len(shape) or any(b < 1 or b > L for b, L in zip(block, shape)):
        raise ParameterError(f"block {block} does not fit the lattice {shape}: need 1 <= block <= side per axis")
    offset = (0,) * len(shape) if offset is None else tuple(int(o) for o in offset)
    nb = [-(-L // b) for L, b in zip(shape, block)]
    ids = np.zeros(shape, dtype=np.int64)
    for ax, (L, b, o) in enumerate(zip(shape, block, offset)):
        coord = (np.arange(L) + o) % L // b
        ids = ids * nb[ax] + coord.reshape([-1 if i == ax else 1 for i in range(len(shape))])
    return ids


def coarse_to_fine_ids(shape, levels: int) -> np.ndarray:
    """Nested-sublattice groups, coarsest (stride 2^(levels-1)) first; ``levels`` >= 1."""
    shape = _shape(shape)
    levels = int(levels)
    if levels < 1 or any(L % 2 ** (levels - 1) for L in shape):
        raise ParameterError(f"coarse-to-fine with {levels} levels needs every side of {shape} divisible by "
                         f"{2 ** max(levels - 1, 0)}")
    ids = np.full(shape, levels - 1, dtype=np.int64)
    grids = np.meshgrid(*[np.arange(L) for L in shape], indexing="ij")
    for g in range(levels - 1, -1, -1):
        stride = 2 ** (levels - 1 - g)
        on = np.all([x % stride == 0 for x in grids], axis=0)
        ids[on] = np.minimum(ids[on], g)
    return ids


def momentum_shell_ids(shape, shells: int) -> np.ndarray:
    """Shell of every momentum in FFT layout: 0 for p = 0, then ``shells - 1`` bins of equal width in
    |p_hat| = (sum_mu 4 sin^2(p_mu / 2))^(1/2) over (0, max], empty bins dropped (ids stay consecutive).

    >>> momentum_shell_ids((8,), 3).tolist()       # |p_hat| = 0, 0.77, 1.41, 1.85, 2, ...: bins (0, 1], (1, 2]
    [0, 1, 2, 2, 2, 2, 2, 1]
    """
    shape = _shape(shape)
    shells = int(shells)
    if shells < 2:
        raise ParameterError(f"momentum shells need shells >= 2 (the zero mode and at least one shell), got {shells}")
    p = np.sqrt(p_hat2(shape))
    top = p.max()
    ids = np.zeros(shape, dtype=np.int64)
    if top > 0:
        ids = np.where(p > 1e-12, 1 + np.minimum((p / top * (shells - 1) - 1e-9).astype(np.int64), shells - 2), 0)
    _, ids = np.unique(ids, return_inverse=True)
    return ids.reshape(shape).astype(np.int64)


def group_order(n_groups: int, order: str = "raster", seed: int | None = None) -> np.ndarray:
    """The order in which groups are generated: 'raster', 'reverse' or 'random' (needs seed)."""
    if order == "raster":
        return np.arange(n_groups)
    if order == "reverse":
        return np.arange(n_groups)[::-1].copy()
    if order == "random":
        if seed is None:
            raise ParameterError("order='random' needs an explicit seed")
        return np.random.default_rng(seed).permutation(n_groups)
    raise ParameterError(f"unknown order {order!r} (choose 'raster', 'reverse', 'random')")


def group_masks(ids: np.ndarray, order) -> list[np.ndarray]:
    """Boolean masks of the groups, in generation order."""
    return [ids == g for g in order]
