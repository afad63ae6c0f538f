"""Masks of unknown sites (True = unknown) from one spec grammar, for lattices and images.

The grammar (what ``--mask`` and ``--region`` take on the command line)::

    block:S1x...xSd@I1,...,Id   a block of sides S starting at (I1, ..., Id)
    block:S1x...xSd             the same block at a uniformly random position, drawn per mask
                                (per-sample masks only)
    random:F                    every site unknown with probability F, 0 < F <= 1
    FILE.npy                    booleans or 0/1 of the lattice shape (per-sample masks: also
                                (n, *shape)), True/1 = unknown

Two options choose the variant:

* ``periodic`` - True: blocks wrap around the periodic lattice (``block:2x2@3,3`` on a 4x4 lattice
  holds the four corners); False: blocks must lie inside (images, which have edges).
* ``n`` - None: one mask of the lattice shape, shared by every sample; a random mask that selects
  no site is refused.  An integer: ``n`` masks ``(n, *shape)``, one per sample, each random mask
  drawn independently (one with no unknown site gets one at a random site) and each position-less
  block at its own random position.

The random numbers come from ``numpy.random.default_rng(seed)`` only, so the same spec, shape and
seed give the same masks.  :func:`parse_mask` reads a spec; :func:`random_masks` and
:func:`block_masks` make the same masks from numbers.

>>> parse_mask("block:2x2@3,3", (4, 4), periodic=True).astype(int)    # the lattice's corners
array([[1, 0, 0, 1],
       [0, 0, 0, 0],
       [0, 0, 0, 0],
       [1, 0, 0, 1]])
>>> parse_mask("block:2x2@3,3", (4, 4), periodic=False)
Traceback (most recent call last):
    ...
phi4si.errors.ParameterError: mask 'block:2x2@3,3' does not fit images of size 4x4
>>> parse_mask("block:2x3", (4, 4), periodic=False, n=5, seed=1).sum(axis=(1, 2))   # 5 random positions
array([6, 6, 6, 6, 6])
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ParameterError

__all__ = ["parse_mask", "random_masks", "block_masks"]

_BLOCK = re.compile(r"^block:(\d+(?:x\d+)*)(?:@(\d+(?:,\d+)*))?$")
_RANDOM = re.compile(r"^random:([0-9.eE+-]+)$")


def _where(shape, periodic: bool) -> str:
    """How messages name the domain: "the lattice (4, 4)" or "images of size 4x4"."""
    return f"the lattice {shape}" if periodic else f"images of size {'x'.join(map(str, shape))}"


def _forms(n, periodic: bool) -> str:
    """The spec forms :func:`parse_mask` takes with these options (for the 'cannot parse' message)."""
    if n is None:
        return "block:RxC@I,J, random:FRACTION or FILE.npy"
    block = "block:RxC@I,J" if periodic else "block:HxW, block:HxW@I,J"
    return f"random:FRACTION, {block} or FILE.npy"


def parse_mask(spec: str, shape, *, periodic: bool, n: int | None = None, seed: int | None = 0) -> np.ndarray:
    """Boolean mask(s) of UNKNOWN sites from ``spec`` (grammar and options: module docstring).

    Returns an array of ``shape`` (``n`` None) or ``(n, *shape)``; a spec that is not understood, or
    does not fit, raises :class:`~phi4si.errors.ParameterError` naming the spec.

    >>> parse_mask("random:0.5", (2, 3), periodic=True, seed=0).astype(int)
    array([[0, 1, 1],
           [1, 0, 0]])
    """
    shape = tuple(int(s) for s in shape)
    d = len(shape)
    m = _BLOCK.match(spec)
    if m and (m.group(2) is not None or n is not None):
        size = [int(v) for v in m.group(1).split("x")]
        at = None if m.group(2) is None else [int(v) for v in m.group(2).split(",")]
        if len(size) != d or (at is not None and len(at) != d):
            what = f"{d} sizes" + ("" if at is None else f" and {d} coordinates")
            raise ParameterError(f"mask {spec!r}: give {what} for {_where(shape, periodic)}")
        masks = block_masks(1 if n is None else n, shape, size, seed, at, periodic=periodic, label=f"mask {spec!r}")
        return masks[0] if n is None else masks
    m = _RANDOM.match(spec)
    if m:
        try:
            f = float(m.group(1))
        except ValueError:
            raise ParameterError(f"mask {spec!r}: the fraction is not a number") from None
        if not 0 < f <= 1:
            raise ParameterError(f"mask {spec!r}: the fraction must be in (0, 1], got {f}")
        if n is not None:
            return random_masks(n, shape, f, seed)
        mask = np.random.default_rng(seed).random(shape) < f
        if not mask.any():
            raise ParameterError(f"mask {spec!r} selected no site (seed {seed}); use a larger fraction")
        return mask
    if spec.endswith(".npy"):
        return _mask_file(spec, shape, n, periodic)
    raise ParameterError(f"cannot parse mask {spec!r}: use {_forms(n, periodic)}")


def random_masks(n: int, shape, fraction: float, seed: int | None = 0) -> np.ndarray:
    """n independent masks ``(n, *shape)``: every site unknown with probability ``fraction``; a mask
    with no unknown site gets one, at a random site."""
    if not 0 < fraction <= 1:
        raise ParameterError(f"mask fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(seed)
    m = rng.random((int(n), *shape)) < fraction
    for i in np.flatnonzero(~m.reshape(len(m), -1).any(1)):
        m[i].flat[rng.integers(m[i].size)] = True
    return m


def block_masks(n: int, shape, size, seed: int | None = 0, at=None, *, periodic: bool,
                label: str | None = None) -> np.ndarray:
    """n block masks ``(n, *shape)`` of sides ``size`` (an int for every axis, or one per axis) at
    ``at`` (one coordinate per axis) or, with ``at=None``, at a uniformly random position per mask
    (drawn axis by axis from ``default_rng(seed)``).  ``periodic``: the block wraps around the
    lattice; otherwise it must lie inside.  ``label`` names the block in errors (default
    "block HxW at (I, J)")."""
    shape = tuple(int(s) for s in shape)
    size = (int(size),) * len(shape) if np.isscalar(size) else tuple(int(s) for s in size)
    at = None if at is None else tuple(int(i) for i in at)
    if len(size) != len(shape) or (at is not None and len(at) != len(shape)):
        raise ParameterError(f"block {size} at {at}: give one side and coordinate per axis of {shape}")
    where = _where(shape, periodic)

    def refuse(pos):
        name = label or f"block {'x'.join(map(str, size))}" + ("" if pos is None else f" at {pos}")
        raise ParameterError(f"{name} does not fit {where}")

    if not all(1 <= s <= L for s, L in zip(size, shape)):
        refuse(at)
    rng = np.random.default_rng(seed)
    m = np.zeros((int(n), *shape), bool)
    for k in range(int(n)):
        pos = at if at is not None else tuple(int(rng.integers(0, L if periodic else L - s + 1))
                                              for s, L in zip(size, shape))
        if not all(0 <= i < L if periodic else 0 <= i <= L - s for i, s, L in zip(pos, size, shape)):
            refuse(pos)
        if periodic:
            m[(k,) + np.ix_(*[(np.arange(s) + i) % L for s, i, L in zip(size, pos, shape)])] = True
        else:
            m[(k,) + tuple(slice(i, i + s) for i, s in zip(pos, size))] = True
    return m


def _mask_file(spec: str, shape, n, periodic: bool) -> np.ndarray:
    """The mask(s) of a ``.npy`` file: ``shape`` or, for per-sample masks, also ``(n, *shape)``."""
    p = Path(spec)
    if not p.exists():
        raise ParameterError(f"mask file {spec} does not exist")
    try:
        arr = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        raise ParameterError(f"mask file {spec}: not a readable .npy array ({e})") from None
    shapes = [shape] if n is None else [shape, (int(n), *shape)]
    if arr.shape not in shapes:
        size = f"the lattice is {shape}" if periodic else f"the images are {'x'.join(map(str, shape))}"
        raise ParameterError(f"mask file {spec} has shape {arr.shape}, {size}"
                             + ("" if n is None else f" (give {shape}, one mask for every sample, or {(int(n), *shape)}, one per sample)"))
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ParameterError(f"mask file {spec} must hold booleans or 0/1")
    arr = arr.astype(bool)
    rows = arr.reshape(-1, int(np.prod(shape)))  # one row per mask
    if not rows.any(1).all():
        raise ParameterError(f"mask file {spec} marks no site as unknown" + (" in some mask" if len(rows) > 1 else ""))
    return arr if n is None else np.broadcast_to(arr, (int(n), *shape)).copy()
