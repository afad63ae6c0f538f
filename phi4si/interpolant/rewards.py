"""Posterior drifts by the analytic reward transform (THEORY.md section 5), Hadamard family.

Prior mu_1, reward r(x) = 1/2 <x, A x> + <b, x> with A diagonal (per site), posterior
mu_1^r ~ exp(r) mu_1.  On the trained manifold beta = 1 - alpha, per site with rho = beta/alpha:

    rho_r^2 = rho^2 - A,   alpha_r = 1/(1 + rho_r),   beta_r = rho_r/(1 + rho_r),
    x_r = (alpha_r^2 / beta_r) (beta x / alpha^2 + b),     eta1^r(a, x) = eta1(a_r, x_r).

In terms of sigma = a/(1 - a) = 1/rho (0 at the data end) and q = sqrt(1 - A sigma^2), everything
is written without cancellations:

    a_r = sigma / (sigma + q),      a_r / a = (1 + sigma) / (sigma + q),
    (x_r - x) / a = sigma (1 + sigma) / (q (sigma + q)) * [ A (1 + sigma / (1 + q)) x + b ],

so the posterior velocity b^r = (x - eta1^r)/a = -(x_r - x)/a + (a_r/a) b(x_r, a_r) is finite at
the data end (b^r = b there).  A positive A needs A sigma^2 <= 1, i.e. a <= 1/(1 + sqrt(A)): near
the noise end the transform has no solution (:class:`InfeasibleRewardError` names the sites); at
the noise end itself (a = 1) x_r is singular for any reward, so posterior paths start at
a = 1 - delta.

>>> import torch
>>> from phi4si.interpolant.oracle import free_field_oracle
>>> r = Reward(torch.zeros(1, 1, 4), torch.full((1, 1, 4), 0.1))
>>> post = PosteriorDrift(free_field_oracle((4,), 1.0), r)
>>> post.b(torch.zeros(1, 1, 4, dtype=torch.float64), torch.full((1, 1, 4), 0.5, dtype=torch.float64)).shape
torch.Size([1, 1, 4])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import Phi4siError
from .drifts import Drift
from .operators import Hadamard

__all__ = ["InfeasibleRewardError", "Reward", "transform", "PosteriorDrift"]


class InfeasibleRewardError(Phi4siError, ValueError):
    """The reward transform has no solution at some sites and times (A > 0 near the noise end)."""


@dataclass
class Reward:
    """r(x) = 1/2 sum_x A_x x^2 + sum_x b_x x in the drift's (normalised) coordinates; ``A`` and ``b``
    broadcast to the field (e.g. scalars, or (1, 1, *shape))."""

    A: torch.Tensor
    b: torch.Tensor

    def __post_init__(self):
        self.A = torch.as_tensor(self.A, dtype=torch.float64)
        self.b = torch.as_tensor(self.b, dtype=torch.float64)
        if not (torch.isfinite(self.A).all() and torch.isfinite(self.b).all()):
            raise ValueError("reward coefficients must be finite")

    @classmethod
    def physical(cls, h: float = 0.0, k: float = 0.0, mean: float = 0.0, scale: float = 1.0) -> "Reward":
        """The phi^4 reward h sum phi + k sum phi^2 (b = h 1, A = 2k Id) for a model trained on
        y = (phi - mean)/scale: A' = scale^2 A, b' = scale (A mean + b) (constants dropped).

        >>> r = Reward.physical(h=0.1, k=-0.5, mean=0.0, scale=2.0)
        >>> float(r.A), float(r.b)
        (-4.0, 0.2)
        """
        A = 2.0 * float(k)
        return cls(torch.tensor(scale**2 * A), torch.tensor(scale * (A * mean + float(h))))

    def __add__(self, other: "Reward") -> "Reward":
        return Reward(self.A + other.A, self.b + other.b)


def transform(reward: Reward, x: torch.Tensor, a: torch.Tensor):
    """(a_r, x_r, (x_r - x)/a, a_r/a) of the reward transform at per-site times ``a`` (< 1)."""
    A = reward.A.to(device=x.device, dtype=torch.float64)
    bb = reward.b.to(device=x.device, dtype=torch.float64)
    a64 = a.to(torch.float64).expand_as(x) if a.shape[0] == 1 else a.to(torch.float64)
    if bool((a64 >= 1).any()):
        raise InfeasibleRewardError("the reward transform is singular at the noise end (a = 1): start the "
                                    "posterior path at a = 1 - delta")
    sigma = a64 / (1.0 - a64)
    disc = 1.0 - A * sigma * sigma
    if bool((disc <= 0).any()):
        bad = (disc <= 0)
        amax = float((1.0 / (1.0 + A.clamp_min(1e-300).sqrt())).min()) if bool((A > 0).any()) else float("nan")
        idx = bad.flatten(1).any(0).nonzero().flatten().tolist()
        raise InfeasibleRewardError(f"no posterior drift at {len(idx)} site(s) (flat indices {idx[:10]}"
                                    f"{'...' if len(idx) > 10 else ''}): A > 0 needs a <= 1/(1 + sqrt(A)) "
                                    f"= {amax:.4g}; start the path below that")
    q = disc.sqrt()
    xd = x.to(torch.float64)
    shift = sigma * (1 + sigma) / (q * (sigma + q)) * (A * (1 + sigma / (1 + q)) * xd + bb)
    a_r = sigma / (sigma + q)
    ratio = (1 + sigma) / (sigma + q)
    return a_r, xd + a64 * shift, shift, ratio


class PosteriorDrift(Drift):
    """The posterior drift of ``prior`` (any Hadamard-family :class:`Drift`) under ``reward``:
    a drop-in for the prior drift in every path and integrator (no retraining)."""

    def __init__(self, prior: Drift, reward: Reward):
        if not isinstance(prior.family, Hadamard):
            raise ValueError("the per-site reward transform needs the Hadamard family")
        self.prior, self.reward, self.family = prior, reward, prior.family

    def b(self, x, a):
        a_r, x_r, shift, ratio = transform(self.reward, x, a)
        b_prior = self.prior.b(x_r.to(x.dtype), a_r.to(x.dtype)).to(torch.float64)
        return (ratio * b_prior - shift).to(x.dtype)
