"""Posterior drifts by the analytic reward transform (THEORY.md section 5).

Prior mu_1, reward r(x) = 1/2 <x, A x> + <b, x>, posterior mu_1^r ~ exp(r) mu_1.  If (alpha_r, beta_r)
and x_r solve

    beta_r^T alpha_r^-T alpha_r^-1 beta_r = beta^T alpha^-T alpha^-1 beta - A,
    x_r = alpha_r alpha_r^T beta_r^-T (beta^T alpha^-T alpha^-1 x + b),

then eta1^r(alpha, beta, x) = eta1(alpha_r, beta_r, x_r): the posterior drift is one call of the
prior drift at shifted arguments (no retraining).

Diagonal case (:func:`transform`).  When alpha, beta = 1 - alpha and A are diagonal in one basis
(sites for :class:`~phi4si.interpolant.operators.Hadamard`, lattice momenta for
:class:`~phi4si.interpolant.operators.FourierDiagonal`), per site/mode with rho = beta/alpha:

    rho_r^2 = rho^2 - A,   alpha_r = 1/(1 + rho_r),   beta_r = rho_r/(1 + rho_r),
    x_r = (alpha_r^2 / beta_r) (beta x / alpha^2 + b)

(the trained manifold beta = 1 - alpha is kept).  In terms of sigma = a/(1 - a) = 1/rho (0 at the
data end) and q = sqrt(1 - A sigma^2), without cancellations:

    a_r = sigma / (sigma + q),      a_r / a = (1 + sigma) / (sigma + q),
    alpha^-1 (x_r - x) = sigma (1 + sigma) / (q (sigma + q)) * [ A (1 + sigma / (1 + q)) x + b ],

so the posterior velocity b^r = alpha^-1 (x - eta1^r) = -alpha^-1 (x_r - x) + (a_r/a) b(x_r, a_r) is
finite at the data end (b^r = b there).  A positive A needs A sigma^2 <= 1, i.e.
a <= 1/(1 + sqrt(A)): near the noise end the transform has no solution
(:class:`InfeasibleRewardError` names the sites or modes); at the noise end itself (a = 1) x_r is
singular for any reward, so posterior paths start at a = 1 - delta (:mod:`phi4si.model.posterior`).

General operators (:func:`transform_matrix`): alpha_r^-1 beta_r = R, the symmetric square root of
M = beta^T alpha^-T alpha^-1 beta - A (eigendecomposition; M must be positive definite), with
alpha_r = (1 + R)^-1 and beta_r = 1 - alpha_r, so x_r = (1 + R)^-1 R^-1 (beta^T alpha^-T alpha^-1 x + b).

>>> import torch
>>> from phi4si.interpolant.oracle import free_field_oracle
>>> r = Reward(torch.zeros(1, 1, 4), torch.full((1, 1, 4), 0.1))
>>> post = PosteriorDrift(free_field_oracle((4,), 1.0), r)
>>> post.b(torch.zeros(1, 1, 4, dtype=torch.float64), torch.full((1, 1, 4), 0.5, dtype=torch.float64)).shape
torch.Size([1, 1, 4])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InfeasibleRewardError, ParameterError
from .drifts import Drift
from .operators import FourierDiagonal, Hadamard, OperatorFamily, negated_momenta

__all__ = ["Reward", "transform", "transform_matrix", "feasible_start", "PosteriorDrift"]

BASES = ("site", "fourier")


def _lattice_momenta_sq(shape) -> torch.Tensor:
    """hat p^2 = sum_mu 4 sin^2(p_mu / 2) in FFT layout (the eigenvalues of -Delta_lat)."""
    p2 = torch.zeros(tuple(int(s) for s in shape), dtype=torch.float64)
    for ax, L in enumerate(shape):
        k = 4.0 * torch.sin(math.pi * torch.arange(int(L), dtype=torch.float64) / int(L)) ** 2
        view = [1] * len(shape)
        view[ax] = int(L)
        p2 = p2 + k.reshape(view)
    return p2


@dataclass
class Reward:
    """r(x) = 1/2 <x, A x> + <b, x> in the drift's (normalised) coordinates.

    ``basis = "site"``: ``A`` holds the diagonal of A per site (A = diag(A)); ``basis = "fourier"``:
    ``A`` holds the eigenvalues A(p) of a translation-invariant A in FFT layout over the last
    ``A.dim()`` axes (A = F^-1 diag(A(p)) F; A(p) = A(-p) so that A is real).  ``b`` is always a field
    in position space.  Both broadcast to the field (scalars, or (1, 1, *shape)); a scalar ``A`` is
    c Id, diagonal in every basis.

    >>> r = Reward.laplacian(0.5, (4, 4))                  # r = 0.25 <x, Delta x> = -0.25 sum |grad x|^2
    >>> r.basis, tuple(r.A.shape), float(r.A.min())
    ('fourier', (4, 4), -4.0)
    """

    A: torch.Tensor
    b: torch.Tensor
    basis: str = "site"

    def __post_init__(self):
        self.A = torch.as_tensor(self.A, dtype=torch.float64)
        self.b = torch.as_tensor(self.b, dtype=torch.float64)
        if self.basis not in BASES:
            raise ParameterError(f"unknown reward basis {self.basis!r} (choose from {BASES})")
        if not (torch.isfinite(self.A).all() and torch.isfinite(self.b).all()):
            raise ParameterError("reward coefficients must be finite")
        if self.basis == "fourier" and self.A.dim() > 0:
            flipped = negated_momenta(self.A, self.A.dim())
            if not torch.allclose(flipped, self.A, rtol=1e-12, atol=1e-12 * float(self.A.abs().max())):
                raise ParameterError("a Fourier-diagonal A needs A(p) = A(-p) (a real operator)")

    @property
    def is_scalar_A(self) -> bool:
        """A = c Id (diagonal in every basis)."""
        return self.A.numel() == 1 or bool((self.A == self.A.flatten()[0]).all())

    @classmethod
    def physical(cls, h: float = 0.0, k: float = 0.0, mean: float = 0.0, scale: float = 1.0) -> "Reward":
        """The phi^4 reward h sum phi + k sum phi^2 (b = h 1, A = 2k Id) for a model trained on
        y = (phi - mean)/scale: A' = scale^2 A, b' = scale (A mean + b) (constants dropped).

        >>> r = Reward.physical(h=0.1, k=-0.5, mean=0.0, scale=2.0)
        >>> float(r.A), float(r.b)
        (-4.0, 0.2)
        """
        return cls(torch.tensor(2.0 * float(k), dtype=torch.float64),
                   torch.tensor(float(h), dtype=torch.float64)).normalised(mean, scale)

    @classmethod
    def laplacian(cls, c: float, shape, b=0.0) -> "Reward":
        """A = c Delta_lat (periodic lattice Laplacian, Fourier eigenvalues -c hat p^2): for c > 0 the
        reward -c/2 sum_<xy> (x_x - x_y)^2 stiffens the field, for c < 0 it softens it."""
        return cls(-float(c) * _lattice_momenta_sq(shape), torch.as_tensor(b, dtype=torch.float64), "fourier")

    def normalised(self, mean: float = 0.0, scale: float = 1.0) -> "Reward":
        """The same reward for y = (x - mean)/scale with a constant ``mean``: A' = scale^2 A,
        b' = scale (A mean + b) (for a Fourier-diagonal A, A mean = A(p = 0) mean)."""
        if not (math.isfinite(scale) and scale > 0 and math.isfinite(mean)):
            raise ParameterError(f"need a finite mean and a scale > 0, got mean={mean}, scale={scale}")
        A0 = self.A if self.basis == "site" else self.A.flatten()[0]
        return Reward(scale**2 * self.A, scale * (A0 * mean + self.b), self.basis)

    def __add__(self, other: "Reward") -> "Reward":
        if self.basis != other.basis and not (self.is_scalar_A or other.is_scalar_A):
            raise ParameterError("cannot add a site-diagonal and a Fourier-diagonal A (no common diagonal basis)")
        basis = self.basis if not self.is_scalar_A else other.basis
        return Reward(self.A + other.A, self.b + other.b, basis)

    def diagonal_in(self, family: OperatorFamily) -> torch.Tensor:
        """A as a diagonal in ``family``'s basis (sites for Hadamard, momenta for FourierDiagonal)."""
        want = "site" if isinstance(family, Hadamard) else "fourier" if isinstance(family, FourierDiagonal) else None
        if want is None:
            raise ParameterError(f"the diagonal reward transform needs a Hadamard or FourierDiagonal family, got {family!r}")
        if self.basis == want or self.is_scalar_A:
            return self.A if self.basis == want else self.A.flatten()[0]
        raise ParameterError(f"A is {self.basis}-diagonal but the drift's operators are diagonal in the {want} basis: "
                         "the transformed operators would leave the family the model was trained on "
                         "(use transform_matrix with an oracle, or a model of the matching family)")


def feasible_start(reward: Reward, family: OperatorFamily | None = None, margin: float = 1e-3) -> float:
    """The largest time a0 < 1 at which the transform exists on every site/mode:
    min over A > 0 of 1/(1 + sqrt(A)) (minus ``margin``), or 1 when A <= 0 everywhere."""
    A = reward.A if family is None else reward.diagonal_in(family)
    Amax = float(A.max())
    return 1.0 if Amax <= 0 else 1.0 / (1.0 + math.sqrt(Amax)) - float(margin)


def transform(reward: Reward, x: torch.Tensor, a: torch.Tensor, family: OperatorFamily | None = None):
    """The diagonal reward transform at per-site (Hadamard) or per-mode (FourierDiagonal) times ``a``.

    Returns ``(a_r, x_r, shift, ratio)``: the transformed times a_r (< 1), the transformed field x_r,
    shift = alpha^-1 (x_r - x) (a field, finite at the data end) and ratio = a_r / a (in the
    family's basis), all float64.
    """
    family = family if family is not None else Hadamard()
    A = reward.diagonal_in(family).to(device=x.device)
    bb = reward.b.to(device=x.device)
    a64 = a.to(torch.float64)
    if bool((a64 >= 1).any()):
        raise InfeasibleRewardError("the reward transform is singular at the noise end (a = 1): start the "
                                    "posterior path at a = 1 - delta")
    sigma = a64 / (1.0 - a64)
    disc = 1.0 - A * sigma * sigma
    if bool((disc <= 0).any()):
        bad = disc <= 0
        amax = 1.0 / (1.0 + math.sqrt(float(A.max())))
        idx = bad.reshape(bad.shape[0], -1).any(0).nonzero().flatten().tolist() if bad.dim() > 1 else [0]
        what = "site(s)" if isinstance(family, Hadamard) else "mode(s)"
        raise InfeasibleRewardError(f"no posterior drift at {len(idx)} {what} (flat indices {idx[:10]}"
                                    f"{'...' if len(idx) > 10 else ''}): A > 0 needs a <= 1/(1 + sqrt(A)) "
                                    f"= {amax:.4g} (largest A = {float(A.max()):.4g}); start the path below that")
    q = disc.sqrt()
    c1 = sigma * (1 + sigma) / (q * (sigma + q))
    xd = x.to(torch.float64)
    shift = family.alpha(c1 * A * (1 + sigma / (1 + q)), xd) + family.alpha(c1, bb.expand_as(xd))
    a_r = sigma / (sigma + q)
    ratio = (1 + sigma) / (sigma + q)
    return a_r, xd + family.alpha(a64, shift), shift, ratio


def transform_matrix(alpha, beta, A, b, x):
    """The general reward transform for dense operators (small V): returns (alpha_r, beta_r, x_r).

    ``alpha``, ``beta``: (V, V) invertible; ``A``: (V, V) symmetric; ``b``: (V,); ``x``: (n, V).
    alpha_r^-1 beta_r = R = M^(1/2) (symmetric root, eigendecomposition) with
    M = beta^T alpha^-T alpha^-1 beta - A, alpha_r = (1 + R)^-1, beta_r = 1 - alpha_r (commuting, symmetric),
    x_r = alpha_r alpha_r^T beta_r^-T (beta^T alpha^-T alpha^-1 x + b) = (1 + R)^-1 R^-1 (...).
    Raises :class:`InfeasibleRewardError` when M is not positive definite.

    >>> import torch
    >>> I = torch.eye(2, dtype=torch.float64)
    >>> ar, br, xr = transform_matrix(0.5 * I, 0.5 * I, -3 * I, torch.zeros(2), torch.ones(1, 2))
    >>> round(float(ar[0, 0]), 6), round(float(xr[0, 0]), 6)           # rho_r = sqrt(1 + 3) = 2
    (0.333333, 0.333333)
    """
    alpha, beta, A = (torch.as_tensor(t, dtype=torch.float64) for t in (alpha, beta, A))
    b = torch.as_tensor(b, dtype=torch.float64)
    x = torch.as_tensor(x, dtype=torch.float64)
    V = alpha.shape[0]
    if alpha.shape != (V, V) or beta.shape != (V, V) or A.shape != (V, V):
        raise ParameterError(f"alpha, beta and A must be {V}x{V} matrices")
    if not torch.allclose(A, A.T, atol=1e-12 * (1 + float(A.abs().max()))):
        raise ParameterError("A must be symmetric")
    G = torch.linalg.solve(alpha, beta)                      # alpha^-1 beta
    M = G.T @ G - A
    M = 0.5 * (M + M.T)
    lam, U = torch.linalg.eigh(M)
    tol = 1e-12 * max(1.0, float(lam.abs().max()))
    if bool((lam <= tol).any()):
        bad = lam[lam <= tol].tolist()
        raise InfeasibleRewardError(f"no posterior operators: beta^T alpha^-T alpha^-1 beta - A has {len(bad)} "
                                    f"non-positive eigenvalue(s) {[round(v, 6) for v in bad[:5]]} (A too large "
                                    "for these operators, or alpha at the noise end)")
    r = lam.sqrt()
    Id = torch.eye(V, dtype=torch.float64)
    alpha_r = (U / (1 + r)) @ U.T
    beta_r = Id - alpha_r
    rhs = (G.T @ torch.linalg.solve(alpha, x.T)).T + b      # beta^T alpha^-T alpha^-1 x + b, per row
    x_r = rhs @ (U / (r * (1 + r))) @ U.T
    return alpha_r, beta_r, x_r


class PosteriorDrift(Drift):
    """The posterior drift of ``prior`` (a Hadamard or FourierDiagonal :class:`Drift`) under ``reward``:
    a drop-in for the prior drift in every path and integrator (no retraining).

        b^r(x, a) = (a_r/a) b(x_r, a_r) - alpha^-1 (x_r - x)     (products in the family's basis)
    """

    def __init__(self, prior: Drift, reward: Reward):
        reward.diagonal_in(prior.family)                     # refuses operators outside the family
        self.prior, self.reward, self.family = prior, reward, prior.family

    def b(self, x, a):
        a_r, x_r, shift, ratio = transform(self.reward, x, a, self.family)
        b_prior = self.prior.b(x_r.to(x.dtype), a_r.to(x.dtype)).to(torch.float64)
        return (self.family.alpha(ratio, b_prior) - shift).to(x.dtype)
