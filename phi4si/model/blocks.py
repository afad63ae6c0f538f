"""Neural block updates: Metropolis-Hastings by inpainting a random block (THEORY.md section 6),
the move of the ``block`` and ``hybrid`` methods of :func:`phi4si.model.exact.sample_neural`.

A block B at a uniformly random periodic offset is regenerated with the rest fixed (the inpainting
flow, forward), the old block's conditional density comes from the reverse flow, and the proposal
is accepted with min(1, p(phi') q(x_B | x_rest) / (p(phi) q(x_B' | x_rest))).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..analysis.weights import log_target
from ..errors import ParameterError
from ..seeds import stream_seed
from .density import FlowSettings, conditional_log_prob, propose_block

__all__ = ["block_size", "random_blocks", "random_offsets", "block_update"]


def block_size(block, shape):
    """The sides of a block (B for every axis, or one per axis), refused when it does not fit ``shape``.

    >>> block_size(2, (4, 4))
    (2, 2)
    """
    b = (int(block),) * len(shape) if np.isscalar(block) else tuple(int(v) for v in block)
    if len(b) != len(shape) or any(v < 1 or v > L for v, L in zip(b, shape)):
        raise ParameterError(f"block {block} does not fit the lattice {tuple(shape)}")
    return b


def random_blocks(shape, block, n: int, rng: np.random.Generator) -> np.ndarray:
    """n boolean masks (n, *shape): a block of sides ``block`` at a uniformly random periodic offset.

    >>> random_blocks((4, 4), 2, 3, np.random.default_rng(0)).sum(axis=(1, 2)).tolist()
    [4, 4, 4]
    """
    shape = tuple(shape)
    b = block_size(block, shape)
    masks = np.zeros((n, *shape), dtype=bool)
    offs = random_offsets(shape, n, rng)
    for i in range(n):
        masks[(i,) + np.ix_(*[(np.arange(bs) + o) % L for bs, o, L in zip(b, offs[i], shape)])] = True
    return masks


def random_offsets(shape, n: int, rng: np.random.Generator) -> np.ndarray:
    """n uniformly random periodic block offsets (n, d)."""
    return np.stack([rng.integers(0, L, n) for L in shape], 1)


def block_update(model, phi: np.ndarray, params, block, rng: np.random.Generator,
                 fs: FlowSettings = FlowSettings(), window=None):
    """One neural block Metropolis-Hastings update of every chain in ``phi`` (C, *shape); with
    ``window`` (sides W, or one per axis) the conditional flow runs on a window around each block
    (:mod:`phi4si.model.window`: exact for any window, the cost of the window at any volume).

    Returns ``(phi_new, accepted, log_alpha)``; ``phi`` is not modified.
    """
    from .window import cut, paste, window_indices, window_size

    fam = getattr(model.drift(), "family", None)
    if getattr(fam, "name", "hadamard") != "hadamard":
        raise ParameterError(f"a block update regenerates a block of sites: it needs a model of the hadamard family "
                             f"(a time per site), this one has {fam!r}")
    phi = np.asarray(phi, dtype=np.float64)
    shape, b = phi.shape[1:], block_size(block, phi.shape[1:])
    w = window_size(window, b, shape)
    if w is None:                      # the flow runs on the whole lattice, one mask per chain
        src, masks = phi, random_blocks(shape, block, len(phi), rng)
    else:                              # on each chain's window, the block at the window's centre
        rows, masks = window_indices(shape, b, random_offsets(shape, len(phi), rng), w)
        src = cut(phi, rows)
    seed = int(rng.integers(0, 2**62))
    prop = propose_block(model, src, masks, fs, seed=seed)
    lq_old, _ = conditional_log_prob(model, src, masks, fs, seed=stream_seed(seed, "block_reverse"))
    if w is not None:
        prop = dataclasses.replace(prop, phi=paste(phi, prop.phi, rows, masks))
    log_alpha = (log_target(prop.phi, params) - prop.log_q) - (log_target(phi, params) - lq_old)
    acc = np.log(rng.random(len(phi))) < log_alpha
    new = np.where(acc.reshape(-1, *([1] * (phi.ndim - 1))), prop.phi, phi)
    return new, acc, log_alpha
