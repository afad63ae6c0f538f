"""torch twin of the phi^4 action and force (THEORY.md section 1).

Same formulas as :mod:`phi4si.lattice.kernels`, written with ``torch.roll`` over a
batch ``(n, L_1, ..., L_d)`` so they run on any device and are differentiable; the
interpolant side uses them.  ``tests/lattice/test_lattice.py`` keeps the twins equal.

>>> import torch
>>> from phi4si.lattice import Phi4Params
>>> p = Phi4Params((4, 4), m2=-4.0, lam=8.0)
>>> action_torch(torch.zeros(2, 4, 4), p).tolist()
[0.0, 0.0]
"""

from __future__ import annotations

import torch

from .params import Phi4Params


def hop_sum_torch(phi: torch.Tensor, d: int) -> torch.Tensor:
    """sum_mu (phi_{x+mu} + phi_{x-mu}) over the last ``d`` axes."""
    out = torch.zeros_like(phi)
    for mu in range(phi.ndim - d, phi.ndim):
        out = out + torch.roll(phi, 1, mu) + torch.roll(phi, -1, mu)
    return out


def action_torch(phi: torch.Tensor, params: Phi4Params) -> torch.Tensor:
    """S(phi) for a batch of shape ``(n, *params.shape)``; returns shape ``(n,)``."""
    d = params.d
    hop = hop_sum_torch(phi, d)
    dens = -phi * hop + (params.mass_term + params.lam * phi * phi) * phi * phi - params.h * phi
    return dens.flatten(start_dim=phi.ndim - d).sum(-1)


def force_torch(phi: torch.Tensor, params: Phi4Params) -> torch.Tensor:
    """F = -dS/dphi = 2 hop - 2 c phi - 4 lam phi^3 + h, same shape as ``phi``."""
    hop = hop_sum_torch(phi, params.d)
    return 2.0 * hop - (2.0 * params.mass_term + 4.0 * params.lam * phi * phi) * phi + params.h
