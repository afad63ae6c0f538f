"""Random lattice symmetries, applied identically to several tensors (data augmentation).

A transform g acts on every tensor of shape ``(B, C, *spatial)`` of a training example, e.g.
``(x0, x1, a)`` together, with independent random choices per sample b:

    translation   t(b, x) -> t(b, x - s_b)          (torch.roll semantics, periodic)
    reflection    x_mu -> L_mu - 1 - x_mu           (each axis with probability 1/2)
    rotation      by k_b * 90 degrees, in the plane of the two axes (dim = 2; k in {0, 2} only
                  when the lattice is not square)
    field flip    phi -> -phi                       (optional; only the tensors named as fields)

Which are exact symmetries of the phi^4 prior (THEORY.md section 1)? On a periodic lattice the
action is invariant under all translations, all axis reflections and, on a square lattice, the
90 degree rotations (the whole point group D4 for d = 2); the flip phi -> -phi is exact for h = 0
and broken by an applied field h != 0 (a quadratic reward k keeps it). The noise x0 ~ N(0, Id) is
invariant under all of them, so the optimal drift of the Hadamard interpolant is equivariant:
``b(g x, g a) = g b(x, a)`` for the spatial g (``a`` moves with the lattice), and
``b(-x, a) = -b(x, a)`` for the flip (``a`` is never sign-flipped) -- provided the measure on a
is itself invariant (e.g. masks at uniformly random positions). For images and mazes (no periodic
boundary) translations by roll are *not* symmetries: use ``translate=False``.

>>> import torch
>>> from phi4si.nn.augment import random_symmetry
>>> g = torch.Generator().manual_seed(0)
>>> x0, x1, a = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
>>> x0, x1, a = random_symmetry([x0, x1, a], g, fields=(0, 1), flip_sign=True)
>>> x0.shape, a.shape
(torch.Size([4, 1, 8, 8]), torch.Size([4, 1, 8, 8]))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from ..errors import ParameterError

__all__ = ["SymmetryDraw", "sample_symmetry", "apply_symmetry", "random_symmetry"]


@dataclass(frozen=True)
class SymmetryDraw:
    """One random group element per sample (all tensors on the same device).

    shifts: (B, d) int64 roll per spatial axis; flips: (B, d) bool reflection per axis;
    quarter_turns: (B,) int64 rotation by ``k * 90`` degrees (zeros unless d = 2);
    sign: (B,) +-1 factor for field tensors. Draw one with :func:`sample_symmetry`, apply it to
    any number of tensors with :func:`apply_symmetry` (e.g. to x0, x1 and a, or later to a model
    output to check equivariance).

    >>> s = sample_symmetry(2, (4, 4), torch.Generator().manual_seed(0), rotate=False)
    >>> s.batch, s.quarter_turns.tolist()
    (2, [0, 0])
    """

    shifts: torch.Tensor
    flips: torch.Tensor
    quarter_turns: torch.Tensor
    sign: torch.Tensor

    @property
    def batch(self) -> int:
        return self.shifts.shape[0]


def sample_symmetry(batch: int, shape: Sequence[int], generator: torch.Generator | None = None, *,
                    translate: bool = True, reflect: bool = True, rotate: bool = True,
                    flip_sign: bool = False, device=None) -> SymmetryDraw:
    """Draw a uniformly random element of the enabled symmetries for each of ``batch`` samples.

    ``shape`` is the spatial shape. Random numbers come from ``generator`` (on its own device),
    so the same seed gives the same draw. Rotations by 90 degrees need d = 2 and a square lattice;
    otherwise only the 180-degree turn is drawn (d = 2) or none (d != 2).

    >>> g = torch.Generator().manual_seed(1)
    >>> s = sample_symmetry(5, (8, 8), g, flip_sign=True)
    >>> s.shifts.shape, s.flips.shape, s.quarter_turns.shape, s.sign.shape
    (torch.Size([5, 2]), torch.Size([5, 2]), torch.Size([5]), torch.Size([5]))
    """
    shape = tuple(int(n) for n in shape)
    d = len(shape)
    gdev = generator.device if generator is not None else torch.device("cpu")
    kw = dict(generator=generator, device=gdev)
    zeros = torch.zeros(batch, d, dtype=torch.int64, device=gdev)
    shifts = (torch.stack([torch.randint(0, n, (batch,), **kw) for n in shape], dim=1)
              if translate and d else zeros)
    flips = torch.randint(0, 2, (batch, d), **kw).bool() if reflect else zeros.bool()
    if rotate and d == 2:
        turns = torch.randint(0, 4, (batch,), **kw) if shape[0] == shape[1] else 2 * torch.randint(0, 2, (batch,), **kw)
    else:
        turns = torch.zeros(batch, dtype=torch.int64, device=gdev)
    ones = torch.ones(batch, dtype=torch.int64, device=gdev)
    sign = 1 - 2 * torch.randint(0, 2, (batch,), **kw) if flip_sign else ones
    dev = device if device is not None else gdev
    return SymmetryDraw(shifts.to(dev), flips.to(dev), turns.to(dev), sign.to(dev))


def apply_symmetry(draw: SymmetryDraw, t: torch.Tensor, *, field: bool = True) -> torch.Tensor:
    """Apply ``draw`` to ``t`` of shape (B, C, *spatial): translate, reflect, rotate, then (only if
    ``field``) multiply by the sign. Out of place; differentiable; any dtype and device.

    Per sample b this equals ``torch.roll(t[b], shifts[b], dims=spatial)``, then ``flip`` of the
    axes with ``flips[b]``, then ``torch.rot90(., quarter_turns[b], dims=(-2, -1))``.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> y = apply_symmetry(sample_symmetry(1, (4, 4), g), x)
    >>> sorted(y.flatten().tolist()) == sorted(x.flatten().tolist())
    True
    """
    B, d = draw.batch, draw.shifts.shape[1]
    if t.ndim != d + 2 or t.shape[0] != B:
        raise ParameterError(f"apply_symmetry: expected a tensor of shape (B={B}, C, {d} spatial axes), "
                             f"got {tuple(t.shape)}")
    dev = t.device
    bshape = lambda axis=None, n=None: [B] + [n if i == axis else 1 for i in range(1, t.ndim)]  # noqa: E731
    for j in range(d):  # per-sample roll along spatial axis j: out[..., i, ...] = t[..., (i - s) mod n, ...]
        ax, n = 2 + j, t.shape[2 + j]
        idx = (torch.arange(n, device=dev)[None, :] - draw.shifts[:, j].to(dev)[:, None]) % n
        t = torch.gather(t, ax, idx.reshape(bshape(ax, n)).expand(t.shape))
        t = torch.where(draw.flips[:, j].to(dev).reshape(bshape()), t.flip(ax), t)
    turns = draw.quarter_turns.to(dev).reshape(bshape())
    if d == 2:  # no data-dependent shortcut: no device sync, vmap/compile friendly
        out = t
        for k in (1, 2, 3):
            if k % 2 and t.shape[-1] != t.shape[-2]:
                continue
            out = torch.where(turns == k, torch.rot90(t, k, dims=(-2, -1)), out)
        t = out
    if field:
        t = t * draw.sign.to(dev, t.dtype).reshape(bshape())
    return t


def random_symmetry(tensors, generator: torch.Generator | None = None, *, fields=None, translate: bool = True,
            reflect: bool = True, rotate: bool = True, flip_sign: bool = False):
    """Apply one random symmetry per sample, the same to every tensor in ``tensors``.

    ``tensors``: a list/tuple or a dict of tensors of shape (B, C_i, *spatial) (same B and spatial
    shape, any channels). ``fields``: indices (list) or keys (dict) of the field tensors, the only
    ones the sign flip touches; required when ``flip_sign`` (the time a must never be flipped).
    Returns the same kind of container.

    >>> g = torch.Generator().manual_seed(0)
    >>> out = random_symmetry({"x1": torch.randn(2, 1, 4, 4), "a": torch.rand(2, 1, 4, 4)}, g, fields=["x1"])
    >>> sorted(out)
    ['a', 'x1']
    """
    is_map = isinstance(tensors, Mapping)
    keys = list(tensors) if is_map else list(range(len(tensors)))
    items = [tensors[k] for k in keys]
    if not items:
        raise ParameterError("random_symmetry: no tensors given")
    if flip_sign and fields is None:
        raise ParameterError("random_symmetry: flip_sign=True needs fields=... naming the field tensors "
                             "(the time a must not be sign-flipped)")
    fields = set(fields or ())
    if not fields <= set(keys):
        raise ParameterError(f"random_symmetry: fields {sorted(map(str, fields - set(keys)))} are not among {keys}")
    ref = items[0]
    for k, t in zip(keys, items):
        if t.ndim < 3 or t.shape[0] != ref.shape[0] or t.shape[2:] != ref.shape[2:]:
            raise ParameterError(f"random_symmetry: tensor {k!r} has shape {tuple(t.shape)}; all need (B, C, *spatial) "
                                 f"with B={ref.shape[0]} and spatial {tuple(ref.shape[2:])}")
    draw = sample_symmetry(ref.shape[0], ref.shape[2:], generator, translate=translate, reflect=reflect,
                           rotate=rotate, flip_sign=flip_sign, device=ref.device)
    out = [apply_symmetry(draw, t, field=k in fields) for k, t in zip(keys, items)]
    return dict(zip(keys, out)) if is_map else tuple(out) if isinstance(tensors, tuple) else out
