"""Operator families of the interpolant I(alpha, beta) = alpha x0 + beta x1 (THEORY.md 4.1).

A family maps a real tensor ``a`` (the per-site or per-mode "time", same layout as the field,
shape ``(B, C_a, *spatial)`` broadcastable to ``(B, C, *spatial)``) to the two linear operators
alpha(a), beta(a).  Every family here has beta = Id - alpha, which makes the three drift
parametrisations convertible without any inversion (see :mod:`phi4si.interpolant.drifts`):

    x = alpha eta0 + beta eta1,  b = eta0 - eta1   =>   eta1 = x - alpha b,  eta0 = x + beta b

The trainer and the integrators only call ``alpha``/``beta``/``interpolate``/``velocity`` and
``features`` (what the network sees as its "a" input), so a new family needs no change there.

* :class:`Hadamard` - alpha = diag(a), beta = diag(1 - a) entrywise; a in [0,1]^V.  a_x = 1
  is pure noise at site x, a_x = 0 is data.  The scalar interpolant is a = t 1, block-constant
  interpolants are a constant on blocks (chosen by the training measure and the path, see
  :mod:`~phi4si.interpolant.measures` and :mod:`~phi4si.interpolant.paths`).
* :class:`FourierDiagonal` - alpha = F^-1 diag(a(p)) F, beta = Id - alpha, with ``a`` indexed by
  lattice momentum (FFT layout, a(p) = a(-p) so that the operators are real): multichannel
  denoising and scale-by-scale generation (coarse modes first).

>>> import torch
>>> fam = Hadamard()
>>> x0, x1, a = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.25)
>>> float(fam.interpolate(x0, x1, a).mean())
0.25
"""

from __future__ import annotations

import torch

from ..errors import ParameterError

__all__ = ["OperatorFamily", "Hadamard", "FourierDiagonal", "family_from_dict"]


class OperatorFamily:
    """Base class: alpha(a), beta(a) = Id - alpha(a), linear in ``a``.

    Subclasses implement :meth:`alpha` (apply alpha(a) to a tensor).  Because alpha is linear
    in a, the path derivative is alpha'_s = alpha(da/ds) and beta'_s = -alpha(da/ds).
    """

    name = "base"

    def alpha(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def beta(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """beta(a) v = v - alpha(a) v."""
        return v - self.alpha(a, v)

    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """I = alpha(a) x0 + beta(a) x1 = x1 + alpha(a)(x0 - x1)."""
        return x1 + self.alpha(a, x0 - x1)

    def velocity(self, da: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """ODE velocity alpha' eta0 + beta' eta1 = alpha(da)(eta0 - eta1) = alpha(da) b."""
        return self.alpha(da, b)

    def features(self, a: torch.Tensor) -> torch.Tensor:
        """What the network receives as its time input (default: ``a`` itself)."""
        return a

    def to_dict(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Hadamard(OperatorFamily):
    """Entrywise interpolant I = a * x0 + (1 - a) * x1 (the paper's main family).

    >>> Hadamard().alpha(torch.tensor([0.5]), torch.tensor([4.0]))
    tensor([2.])
    """

    name = "hadamard"

    def alpha(self, a, v):
        return a * v

    def interpolate(self, x0, x1, a):
        return torch.lerp(x1, x0, a) if a.shape == x0.shape else x1 + a * (x0 - x1)


class FourierDiagonal(OperatorFamily):
    """alpha = F^-1 diag(a(p)) F over the last ``ndim`` axes; ``a`` holds a(p) in FFT layout.

    a(p) must be even in p (a(p) = a(-p)) for alpha to map real fields to real fields; the
    imaginary part of the inverse transform is discarded.  The network sees ``a`` in its
    momentum layout (translation-invariant operators have no site dependence to show).

    >>> fam = FourierDiagonal(ndim=1)
    >>> a = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])          # keep only the zero mode
    >>> fam.alpha(a, torch.tensor([[[1.0, 2.0, 3.0, 6.0]]]))
    tensor([[[3., 3., 3., 3.]]])
    """

    name = "fourier"

    def __init__(self, ndim: int = 2):
        if int(ndim) < 1:
            raise ParameterError(f"ndim must be >= 1, got {ndim}")
        self.ndim = int(ndim)

    def alpha(self, a, v):
        dims = tuple(range(-self.ndim, 0))
        return torch.fft.ifftn(a * torch.fft.fftn(v, dim=dims), dim=dims).real.to(v.dtype)

    def to_dict(self):
        return {"name": self.name, "ndim": self.ndim}

    def __repr__(self):
        return f"FourierDiagonal(ndim={self.ndim})"


def family_from_dict(d: dict) -> OperatorFamily:
    """Rebuild a family from :meth:`OperatorFamily.to_dict` (checkpoints)."""
    name = d.get("name")
    if name == "hadamard":
        return Hadamard()
    if name == "fourier":
        return FourierDiagonal(ndim=d.get("ndim", 2))
    raise ParameterError(f"unknown operator family {name!r} (known: 'hadamard', 'fourier')")
