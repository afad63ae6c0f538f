"""Tasks as paths s -> a(s) in the space of per-site times (THEORY.md 4.3).

A :class:`Path` gives ``a(s)`` and ``da(s) = d a/ds`` for s in [0, 1] as tensors of shape
``(1, 1, *shape)`` (or ``(B, 1, *shape)``), plus ``breakpoints``: the values of s where the path
has kinks (segment ends of sequential generation), which every integration grid contains so that
no step straddles a kink.  Integrating the transport equation along the path from s = 0 to 1
moves X from I(a(0)) to I(a(1)); with a(1) = 0 everywhere the result is a data sample.

* :class:`GenerationPath`   a = 1 - s on every site (plain generation from noise)
* :class:`InpaintPath`      a = (1 - s) on unknown sites, 0 (and da = 0) on observed sites:
  observed sites never move; also "regenerate a block of an existing configuration"
* :class:`SequentialPath`   groups move 1 -> 0 one after another (any order: raster, random,
  coarse-to-fine; see :mod:`~phi4si.interpolant.partitions`), optionally with observed sites
* :class:`TablePath`        piecewise-linear interpolation of a table (s_k, a_k)
* :class:`FunctionPath`     any callable s -> a (derivative given or by central differences)
* :class:`StartAt`          any path scaled to start at a0 < 1 (a -> a0 a): posterior paths, whose
  reward transform is singular at the noise end (THEORY.md section 5)

>>> import torch
>>> p = InpaintPath(torch.tensor([[True, False], [False, False]]))   # True = unknown site
>>> p.a(0.25)[0, 0], p.da(0.25)[0, 0]
(tensor([[0.7500, 0.0000],
        [0.0000, 0.0000]], dtype=torch.float64), tensor([[-1., -0.],
        [-0., -0.]], dtype=torch.float64))
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import ParameterError
from .partitions import block_ids, coarse_to_fine_ids, group_masks, group_order, momentum_shell_ids

__all__ = ["Path", "GenerationPath", "InpaintPath", "SequentialPath", "TablePath", "FunctionPath",
           "StartAt", "sequential_path", "time_grid", "check_grid"]

_DT = torch.float64


def _as_mask(mask, shape=None) -> torch.Tensor:
    m = torch.as_tensor(np.asarray(mask, dtype=bool))
    if shape is not None and tuple(m.shape) != tuple(shape):
        raise ParameterError(f"mask has shape {tuple(m.shape)}, the lattice is {tuple(shape)}")
    return m


class Path:
    """Base class: ``a(s)``, ``da(s)``, ``shape``, ``breakpoints`` (always contains 0 and 1)."""

    shape: tuple = ()
    breakpoints: tuple = (0.0, 1.0)

    def a(self, s: float) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def da(self, s: float) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def start(self, noise: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        """X(0) = a(0) noise + (1 - a(0)) data (Hadamard); data may be None where a(0) = 1."""
        a0 = self.a(0.0).to(noise.dtype)
        if data is None:
            if bool((a0 != 1).any()):
                raise ParameterError("this path starts with some data sites (a(0) < 1): pass the data")
            return noise.clone()
        return a0 * noise + (1 - a0) * data.to(noise.dtype)

    def pinned(self) -> torch.Tensor:
        """Boolean mask (1, 1, *shape) of sites with a = 0 along the whole path (never move)."""
        pts = np.unique(np.concatenate([np.linspace(0, 1, 5), np.asarray(self.breakpoints)]))
        return torch.stack([self.a(float(s)) == 0 for s in pts]).all(0)


class GenerationPath(Path):
    """a(s) = 1 - s everywhere.

    >>> float(GenerationPath((2, 2)).a(0.25).mean())
    0.75
    """

    def __init__(self, shape):
        self.shape = tuple(int(s) for s in shape)

    def a(self, s):
        return torch.full((1, 1, *self.shape), 1.0 - s, dtype=_DT)

    def da(self, s):
        return torch.full((1, 1, *self.shape), -1.0, dtype=_DT)


class InpaintPath(Path):
    """Inpainting: ``unknown`` sites (bool mask of the lattice shape, or (B, *shape) with
    ``batched=True``: one mask per sample) go 1 -> 0, the observed ones stay at a = ``a_observed``
    (0: exact observations; a > 0: observations y with Gaussian noise of standard deviation
    a / (1 - a), entering as the state (1 - a) y, see :class:`~phi4si.interpolant.measures.Masks`)."""

    def __init__(self, unknown, batched: bool = False, a_observed: float = 0.0):
        m = _as_mask(unknown)
        self.m = (m[:, None] if batched else m[None, None]).to(_DT)
        self.shape = tuple(m.shape[1:] if batched else m.shape)
        if not bool(m.reshape(m.shape[0] if batched else 1, -1).any(1).all()):
            raise ParameterError("the mask has no unknown site (in some sample): nothing to inpaint")
        if not 0.0 <= float(a_observed) < 1.0:
            raise ParameterError(f"a_observed must be in [0, 1), got {a_observed}")
        self.a_observed = float(a_observed)

    def a(self, s):
        return (1.0 - s) * self.m + self.a_observed * (1.0 - self.m)

    def da(self, s):
        return -self.m


class SequentialPath(Path):
    """Groups generated one after another: in segment j (s in [j/G, (j+1)/G]) group j moves from
    a = 1 to 0; earlier groups sit at 0, later ones at 1.  ``observed`` sites stay at 0 throughout.

    >>> masks = [np.array([True, False]), np.array([False, True])]
    >>> p = SequentialPath(masks)
    >>> p.a(0.25)[0, 0].tolist(), p.a(0.75)[0, 0].tolist(), p.breakpoints
    ([0.5, 1.0], [0.0, 0.5], (0.0, 0.5, 1.0))
    """

    def __init__(self, groups: Sequence, observed=None):
        gs = [_as_mask(g) for g in groups]
        if not gs:
            raise ParameterError("a sequential path needs at least one group")
        self.shape = tuple(gs[0].shape)
        gs = [_as_mask(g, self.shape) for g in gs]
        obs = torch.zeros(self.shape, dtype=torch.bool) if observed is None else _as_mask(observed, self.shape)
        total = torch.zeros(self.shape, dtype=torch.int64)
        for g in gs:
            total += g.long()
        if bool((total > 1).any()):
            raise ParameterError("groups overlap: every site may belong to one group only")
        gs = [g & ~obs for g in gs]
        gs = [g for g in gs if bool(g.any())]
        if not gs:
            raise ParameterError("no unknown site left to generate")
        self.groups = torch.stack([g.to(_DT) for g in gs])                  # (G, *shape)
        self.rest = (~(total.bool() | obs)).to(_DT)                          # sites in no group: never generated
        if bool(self.rest.any()):
            raise ParameterError("some unobserved sites belong to no group")
        G = len(gs)
        self.breakpoints = tuple(float(j) / G for j in range(G + 1))
        self.G = G

    def _seg(self, s):
        j = min(int(np.floor(s * self.G)), self.G - 1)
        return j, s * self.G - j

    def a(self, s):
        j, u = self._seg(s)
        a = self.groups[j + 1:].sum(0) + (1.0 - u) * self.groups[j]
        return a[None, None]

    def da(self, s):
        j, _ = self._seg(s)
        return (-self.G * self.groups[j])[None, None]


class TablePath(Path):
    """Piecewise-linear path through a table: ``s`` (K,) increasing from 0 to 1, ``a`` (K, *shape)."""

    def __init__(self, s, a):
        self.s = np.asarray(s, dtype=np.float64)
        self.tab = torch.as_tensor(np.asarray(a, dtype=np.float64))
        if self.s.ndim != 1 or len(self.s) < 2 or self.s[0] != 0 or self.s[-1] != 1 or np.any(np.diff(self.s) <= 0):
            raise ParameterError("table s must increase strictly from 0 to 1")
        if self.tab.shape[0] != len(self.s) or ((self.tab < 0) | (self.tab > 1)).any():
            raise ParameterError("table a must have one row per s and values in [0, 1]")
        self.shape = tuple(self.tab.shape[1:])
        self.breakpoints = tuple(float(v) for v in self.s)

    def _seg(self, s):
        j = int(np.clip(np.searchsorted(self.s, s, side="right") - 1, 0, len(self.s) - 2))
        return j, (s - self.s[j]) / (self.s[j + 1] - self.s[j])

    def a(self, s):
        j, u = self._seg(s)
        return ((1 - u) * self.tab[j] + u * self.tab[j + 1])[None, None]

    def da(self, s):
        j, _ = self._seg(s)
        return ((self.tab[j + 1] - self.tab[j]) / (self.s[j + 1] - self.s[j]))[None, None]


class FunctionPath(Path):
    """Any smooth callable ``fn(s) -> a`` (array of the lattice shape, values in [0, 1]);
    ``dfn`` its derivative (central differences with step 1e-6 if omitted)."""

    def __init__(self, fn: Callable, shape, dfn: Callable | None = None, breakpoints=(0.0, 1.0)):
        self.fn, self.dfn, self.shape = fn, dfn, tuple(int(s) for s in shape)
        self.breakpoints = tuple(sorted(set(float(b) for b in breakpoints) | {0.0, 1.0}))

    def _eval(self, f, s):
        v = torch.as_tensor(np.asarray(f(s), dtype=np.float64))
        return v.expand(self.shape)[None, None].clone()

    def a(self, s):
        return self._eval(self.fn, s)

    def da(self, s):
        if self.dfn is not None:
            return self._eval(self.dfn, s)
        h = 1e-6
        lo, hi = max(s - h, 0.0), min(s + h, 1.0)
        return (self._eval(self.fn, hi) - self._eval(self.fn, lo)) / (hi - lo)


class StartAt(Path):
    """``path`` with every time scaled by ``a0`` in (0, 1]: a(s) = a0 a_path(s), same breakpoints.

    Sites that start as noise (a_path(0) = 1) now start at a0: X(a0) = a0 z + (1 - a0) x1, whose
    data part is unknown before sampling; :meth:`start` replaces x1 by ``mean`` (0, a number or a
    field in the drift's coordinates), an approximation whose error vanishes with 1 - a0.

    >>> p = StartAt(GenerationPath((2,)), 0.9)
    >>> p.a(0.0).tolist(), p.start(torch.ones(1, 1, 2, dtype=torch.float64), mean=2.0).tolist()
    ([[[0.9, 0.9]]], [[[1.1, 1.1]]])
    """

    def __init__(self, path: Path, a0: float):
        a0 = float(a0)
        if not 0 < a0 <= 1:
            raise ParameterError(f"the start time a0 must be in (0, 1], got {a0}")
        self.path, self.a0 = path, a0
        self.shape, self.breakpoints = path.shape, path.breakpoints

    def a(self, s):
        return self.a0 * self.path.a(s)

    def da(self, s):
        return self.a0 * self.path.da(s)

    def start(self, noise, data=None, mean=0.0):
        """X(0) = a0 (a_p noise + (1 - a_p) data) + (1 - a0) a_p mean with a_p = a_path(0) (1 on moving
        sites, 0 on observed ones)."""
        return self.lift(self.path.start(noise, data) if data is not None else self.path.start(noise), mean)

    def lift(self, x, mean=0.0):
        """The start of this path from the start ``x`` of the unscaled path (noise on moving sites)."""
        ap = self.path.a(0.0).to(device=x.device, dtype=x.dtype)
        mean = torch.as_tensor(mean).to(device=x.device, dtype=x.dtype)
        return self.a0 * x + (1 - self.a0) * (ap * mean + (1 - ap) * x)


def sequential_path(shape, order: str = "raster", block=None, levels: int = 3, seed: int | None = None,
                    observed=None) -> SequentialPath:
    """Blockwise generation in an order: ``order`` in 'raster', 'reverse', 'random' (blocks of size
    ``block``), 'coarse_to_fine' (nested sublattices with ``levels`` levels) or 'low_to_high' (``levels``
    momentum shells, the zero mode first: the groups of a Fourier-family path, whose a is a(p)).

    >>> sequential_path((4, 4), "raster", block=2).G
    4
    """
    if order in ("coarse_to_fine", "low_to_high"):
        ids = coarse_to_fine_ids(shape, levels) if order == "coarse_to_fine" else momentum_shell_ids(shape, levels)
        return SequentialPath(group_masks(ids, range(int(ids.max()) + 1)), observed)
    if block is None:
        raise ParameterError(f"order {order!r} needs a block size")
    ids = block_ids(shape, block)
    return SequentialPath(group_masks(ids, group_order(int(ids.max()) + 1, order, seed)), observed)


def check_grid(power, steps: int):
    """A time-grid spec, checked: a power P > 0 (u -> 1 - (1 - u)^P) or an explicit grid, ``steps + 1``
    increasing numbers from 0 to 1 (an optimised grid, :mod:`phi4si.model.schedule`); returned as a
    float or a tuple of floats.

    >>> check_grid([0, 0.5, 0.9, 1], 3)
    (0.0, 0.5, 0.9, 1.0)
    >>> check_grid([0, 0.5, 1], 3)
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: a time grid of 3 steps needs 4 points from 0 to 1, got 3
    """
    steps = int(steps)
    if steps < 1:
        raise ParameterError(f"steps must be >= 1, got {steps}")
    if isinstance(power, (int, float, np.integer, np.floating)) and not isinstance(power, bool):
        if not (np.isfinite(power) and power > 0):
            raise ParameterError(f"grid_power must be a finite number > 0, got {power}")
        return float(power)
    try:
        u = np.asarray(power, dtype=np.float64)
    except (TypeError, ValueError):
        raise ParameterError(f"a time grid is a power > 0 or a list of numbers, got {power!r}") from None
    if u.ndim != 1 or len(u) != steps + 1:
        raise ParameterError(f"a time grid of {steps} steps needs {steps + 1} points from 0 to 1, got "
                             f"{u.size if u.ndim == 1 else u.shape}")
    if not (np.isfinite(u).all() and u[0] == 0.0 and u[-1] == 1.0 and (np.diff(u) > 0).all()):
        raise ParameterError("a time grid must increase strictly from 0 to 1")
    return tuple(float(v) for v in u)


def time_grid(path: Path, steps: int, power=1.0) -> np.ndarray:
    """Integration grid: ``steps`` steps in each segment between breakpoints; within a segment
    u_k = k/steps is mapped to 1 - (1 - u)^power (power > 1 puts more steps near each segment's end,
    i.e. near the data end a -> 0 of the sites that move), or ``power`` is the explicit grid of u
    values itself (:func:`check_grid`).

    >>> time_grid(GenerationPath((2,)), 4).tolist()
    [0.0, 0.25, 0.5, 0.75, 1.0]
    >>> time_grid(GenerationPath((2,)), 2, [0.0, 0.8, 1.0]).tolist()
    [0.0, 0.8, 1.0]
    """
    spec = check_grid(power, steps)
    if isinstance(spec, float):
        u = 1.0 - (1.0 - np.linspace(0.0, 1.0, int(steps) + 1)) ** spec
    else:
        u = np.asarray(spec)
    bp = np.asarray(path.breakpoints, dtype=np.float64)
    pts = [bp[:1]] + [lo + (hi - lo) * u[1:] for lo, hi in zip(bp[:-1], bp[1:])]
    return np.concatenate(pts)
