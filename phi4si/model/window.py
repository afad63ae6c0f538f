"""Windowed neural block updates: the conditional flow of a block runs on a window around it, so a
block update costs what the window costs, at any lattice size.

A neural block update (:func:`phi4si.model.exact.block_update`) regenerates the sites B of a block
from the model's inpainting flow and accepts with the Metropolis-Hastings ratio

    alpha = min(1, exp(-S(x')) q(x_B | c) / (exp(-S(x)) q(x'_B | c))),

where c is what the proposal conditions on.  On the whole lattice c = x_rest, and every network
pass costs the whole volume.  Here c = x_{W \\ B}, the sites of a window W (sides ``window``, the
block at its centre, at the block's random periodic offset) outside the block: the window is cut
from the lattice, taken as a periodic lattice of its own by the network, the block is inpainted
there (forward flow for x'_B, reverse flow for the current x_B) and written back.  The proposal
then depends on x_rest only through x_{W \\ B}, which the update leaves unchanged, so the ratio
above is the exact MH ratio of a valid proposal kernel: the chain keeps exp(-S) invariant for every
window (S is evaluated on the whole lattice; only its change around B matters).  The window
decides the quality of the proposal, not its correctness: a window much larger than the network's
receptive field (papers/negrel2025/l32_transfer.py measures it) gives the whole-lattice proposal's
acceptance, a small one a lower acceptance, never a bias.

>>> import numpy as np
>>> rows, mask = window_indices((8, 8), (2, 2), np.array([[7, 0]]), (4, 4))
>>> rows[0][0].tolist(), rows[0][1].tolist(), np.argwhere(mask).tolist()
([6, 7, 0, 1], [7, 0, 1, 2], [[1, 1], [1, 2], [2, 1], [2, 2]])
"""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError

__all__ = ["window_size", "window_indices", "cut", "paste"]


def window_size(window, block, shape) -> tuple | None:
    """The window's sides (None: no window, the whole lattice): each side at least the block's plus 2
    (a margin to condition on) and at most the lattice's; a window as large as the lattice is the
    whole-lattice update (None)."""
    if window is None:
        return None
    w = (int(window),) * len(shape) if np.isscalar(window) else tuple(int(v) for v in window)
    if len(w) != len(shape) or any(isinstance(v, bool) for v in np.atleast_1d(window)):
        raise ParameterError(f"window must be a side W or one side per lattice axis {tuple(shape)}, got {window}")
    for v, b, L in zip(w, block, shape):
        if not b + 2 <= v <= L:
            raise ParameterError(f"window {window}: every side must be at least the block's plus 2 ({tuple(block)}) "
                                 f"and at most the lattice's {tuple(shape)}")
    return None if tuple(w) == tuple(shape) else w


def window_indices(shape, block, offsets: np.ndarray, window) -> tuple[list, np.ndarray]:
    """Per chain, the lattice index of every window row along each axis (periodic), for blocks of
    sides ``block`` at ``offsets`` (n, d); and the block's mask in window coordinates (the same for
    every chain: the block sits at margin (W - b) // 2)."""
    margin = [(w - b) // 2 for w, b in zip(window, block)]
    rows = [[(o - m + np.arange(w)) % L for o, m, w, L in zip(off, margin, window, shape)] for off in offsets]
    mask = np.zeros(window, dtype=bool)
    mask[tuple(slice(m, m + b) for m, b in zip(margin, block))] = True
    return rows, mask


def cut(phi: np.ndarray, rows) -> np.ndarray:
    """The windows (n, *window) of the configurations ``phi`` (n, *shape)."""
    return np.stack([p[np.ix_(*r)] for p, r in zip(phi, rows)])


def paste(phi: np.ndarray, windows: np.ndarray, rows, mask: np.ndarray) -> np.ndarray:
    """A copy of ``phi`` with the block sites (``mask`` of each window) taken from ``windows``."""
    out = np.array(phi, copy=True)
    for p, w, r in zip(out, windows, rows):
        sub = p[np.ix_(*r)]
        sub[mask] = w[mask]
        p[np.ix_(*r)] = sub
    return out
