"""Exact drifts for Gaussian and Gaussian-mixture targets (THEORY.md 4.4): the Gaussian oracle.

For mu_1 = N(mu, C) and x0 ~ N(0, Id), I = alpha x0 + beta x1 is Gaussian with mean beta mu and
covariance Sigma = alpha alpha^T + beta C beta^T, and

    eta1(x) = mu + C beta^T Sigma^-1 (x - beta mu),     eta0(x) = alpha^T Sigma^-1 (x - beta mu)

exactly (for any linear alpha, beta; phi4si's families are symmetric so alpha^T = alpha).  For a
mixture sum_k w_k N(mu_k, C_k) the drifts are the responsibility-weighted sums of the component
drifts, responsibilities r_k(x) proportional to w_k N(x; beta mu_k, Sigma_k).

With C = (2K)^-1 of the free field (:func:`free_field_oracle`) every integrator, path, mask and
reward transform can be checked against exact answers with no training.  Everything runs in
float64 on flattened fields (V = prod(shape) <= a few hundred: dense V x V algebra).

>>> import torch
>>> orc = free_field_oracle((4, 4), m2=1.0)
>>> x, a = torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.full((2, 1, 4, 4), 0.5, dtype=torch.float64)
>>> float(orc.b(x, a).abs().max())        # mean-zero target: b(0) = 0
0.0
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ParameterError
from .drifts import Drift
from .operators import Hadamard, OperatorFamily

__all__ = ["GaussianOracle", "MixtureOracle", "free_field_covariance", "free_field_oracle", "gaussian_conditional"]


def free_field_covariance(shape, m2: float) -> np.ndarray:
    """Dense covariance (2K)^-1, K = -Delta_lat + m2, of the free field (action phi^T K phi)."""
    shape = tuple(int(s) for s in shape)
    if not m2 > 0:
        raise ParameterError("the free field needs m2 > 0")
    V = int(np.prod(shape))
    E = np.eye(V).reshape(V, *shape)
    K = (2 * len(shape) + m2) * E
    for ax in range(len(shape)):
        K = K - np.roll(E, 1, axis=ax + 1) - np.roll(E, -1, axis=ax + 1)
    K = K.reshape(V, V)
    return np.linalg.inv(2.0 * 0.5 * (K + K.T))


def gaussian_conditional(mu, C, observed: np.ndarray, x_obs: np.ndarray):
    """Exact law of x_U | x_O = x_obs for N(mu, C) (flat arrays; ``observed`` boolean mask).

    Returns (mean of the unobserved sites, their covariance):
    mu_U + C_UO C_OO^-1 (x_O - mu_O),  C_UU - C_UO C_OO^-1 C_OU.
    """
    mu, C, o = np.asarray(mu, float), np.asarray(C, float), np.asarray(observed, bool).ravel()
    u = ~o
    if not o.any():
        return mu[u], C[np.ix_(u, u)]
    K = np.linalg.solve(C[np.ix_(o, o)], C[np.ix_(o, u)]).T
    return mu[u] + K @ (np.asarray(x_obs, float).ravel() - mu[o]), C[np.ix_(u, u)] - K @ C[np.ix_(o, u)]


class GaussianOracle(Drift):
    """Exact drift of the interpolant for the target N(mean, cov) on a lattice ``shape``.

    ``b(x, a)`` takes fields (n, 1, *shape) and times (n or 1, 1, *shape); computations in float64.
    ``sample(n, generator)`` draws exact target samples (for comparisons).
    """

    def __init__(self, mean, cov, shape, family: OperatorFamily | None = None):
        self.shape = tuple(int(s) for s in shape)
        V = int(np.prod(self.shape))
        self.mu = torch.as_tensor(np.asarray(mean, dtype=np.float64).reshape(V))
        C = torch.as_tensor(np.asarray(cov, dtype=np.float64))
        if C.shape != (V, V):
            raise ParameterError(f"covariance must be {V}x{V} for shape {self.shape}, got {tuple(C.shape)}")
        self.C = 0.5 * (C + C.T)
        self.L = torch.linalg.cholesky(self.C)
        self.family = family if family is not None else Hadamard()
        self.V = V

    # -- operators as dense matrices (n, V, V) or diagonals (n, V) --
    def _ops(self, a):
        n = a.shape[0]
        if isinstance(self.family, Hadamard):
            av = a.reshape(n, -1)
            av = av.expand(n, self.V) if av.shape[1] == 1 else av
            return av, None
        return None, self.dense_operators(a)

    def dense_operators(self, a):
        """(alpha, beta) of the family at ``a`` as dense (n, V, V) matrices (any family, beta != Id - alpha too)."""
        E = torch.eye(self.V, dtype=torch.float64).reshape(self.V, 1, *self.shape)
        ops = [[f(a[i:i + 1].expand(self.V, *a.shape[1:]), E).reshape(self.V, self.V).T for i in range(a.shape[0])]
               for f in (self.family.alpha, self.family.beta)]
        return tuple(torch.stack(o) for o in ops)

    def _parts(self, x, a):
        """Return (r = x - beta mu, Sigma, diag-alpha or None, dense alpha or None).

        When ``a`` has batch size 1 (the same operators for every sample, as along a path) the
        operators and Sigma are built once, with a leading dimension of 1 that broadcasts.
        """
        n = x.shape[0]
        xf = x.reshape(n, self.V).to(torch.float64)
        a = a.to(torch.float64)
        if a.shape[0] != 1:
            a = a.expand(n, *a.shape[1:])
        ad, AB = self._ops(a)
        if AB is None:
            bd = 1.0 - ad
            r = xf - bd * self.mu
            Sigma = torch.diag_embed(ad ** 2) + bd[:, :, None] * self.C * bd[:, None, :]
        else:
            A, B = AB
            r = xf - (B @ self.mu)
            Sigma = A @ A.transpose(1, 2) + B @ self.C @ B.transpose(1, 2)
        return r, Sigma, ad, AB

    def _solve(self, Sigma, r):
        """Sigma^-1 r for r (n, V); Sigma (n, V, V) or (1, V, V) (then one factorisation)."""
        if Sigma.shape[0] == 1:
            return torch.linalg.solve(Sigma[0], r.T).T
        return torch.linalg.solve(Sigma, r[..., None])[..., 0]

    def etas(self, x, a):
        """Exact (eta0, eta1) at (x, a), returned with the shape and dtype of x."""
        r, Sigma, ad, AB = self._parts(x, a)
        y = self._solve(Sigma, r)
        if AB is None:
            eta0 = ad * y
            eta1 = self.mu + ((1.0 - ad) * y) @ self.C
        else:
            A, B = AB
            eta0 = (A.transpose(1, 2) @ y[..., None])[..., 0]
            eta1 = self.mu + (self.C @ (B.transpose(1, 2) @ y[..., None]))[..., 0]
        return eta0.reshape(x.shape).to(x.dtype), eta1.reshape(x.shape).to(x.dtype)

    def b(self, x, a):
        eta0, eta1 = self.etas(x, a)
        return eta0 - eta1

    def log_density_I(self, x, a):
        """log of the Gaussian density of I(alpha(a), beta(a)) at x (for mixtures and tests)."""
        r, Sigma, _, _ = self._parts(x, a)
        Lc = torch.linalg.cholesky(Sigma).expand(r.shape[0], self.V, self.V)
        z = torch.linalg.solve_triangular(Lc, r[..., None], upper=False)[..., 0]
        logdet = 2.0 * torch.log(torch.diagonal(Lc, dim1=-2, dim2=-1)).sum(-1)
        return -0.5 * (z ** 2).sum(-1) - 0.5 * logdet - 0.5 * self.V * math.log(2 * math.pi)

    def sample(self, n, generator=None):
        z = torch.randn(n, self.V, generator=generator, dtype=torch.float64)
        return (self.mu + z @ self.L.T).reshape(n, 1, *self.shape)

    def eta1_operators(self, x, alpha, beta):
        """eta1 = mu + C beta^T Sigma^-1 (x - beta mu) for dense operators ``alpha``, ``beta`` (V x V, any
        invertible alpha, not necessarily of a family); ``x`` (n, V) -> (n, V), float64."""
        alpha, beta = (torch.as_tensor(t, dtype=torch.float64) for t in (alpha, beta))
        x = torch.as_tensor(x, dtype=torch.float64).reshape(-1, self.V)
        Sigma = alpha @ alpha.T + beta @ self.C @ beta.T
        y = torch.linalg.solve(Sigma, (x - beta @ self.mu).T)
        return (self.mu[:, None] + self.C @ beta.T @ y).T

    def posterior(self, A, b) -> "GaussianOracle":
        """The oracle of the exact posterior exp(1/2 <x, A x> + <b, x>) N(mu, C): precision C^-1 - A,
        mean (C^-1 - A)^-1 (C^-1 mu + b).  ``A``: dense (V, V) or a diagonal (V,); ``b``: (V,) or scalar.

        >>> orc = free_field_oracle((4,), 1.0)
        >>> post = orc.posterior(np.zeros(4), 0.3)            # a field h = 0.3: mean C h 1
        >>> bool(np.allclose(post.mu.numpy(), orc.C.numpy() @ np.full(4, 0.3)))
        True
        """
        A = np.asarray(A, dtype=np.float64)
        A = np.diag(np.broadcast_to(A, (self.V,))) if A.ndim <= 1 else A
        P = np.linalg.inv(self.C.numpy()) - 0.5 * (A + A.T)
        if np.linalg.eigvalsh(P).min() <= 0:
            raise ParameterError("the posterior is not normalisable (C^-1 - A is not positive definite)")
        Cp = np.linalg.inv(P)
        mp = Cp @ (np.linalg.solve(self.C.numpy(), self.mu.numpy()) + np.broadcast_to(np.asarray(b, float), (self.V,)))
        return GaussianOracle(mp, Cp, self.shape, self.family)


class MixtureOracle(Drift):
    """Exact drift for sum_k w_k N(mean_k, cov_k): responsibility-weighted component drifts.

    >>> import torch
    >>> C = np.eye(4)
    >>> mix = MixtureOracle([0.5, 0.5], [np.ones(4), -np.ones(4)], [C, C], (4,))
    >>> x, a = torch.zeros(1, 1, 4, dtype=torch.float64), torch.full((1, 1, 4), 0.5, dtype=torch.float64)
    >>> float(mix.etas(x, a)[1].abs().max())   # symmetric point: E[x1 | I = 0] = 0
    0.0
    """

    def __init__(self, weights, means, covs, shape, family: OperatorFamily | None = None):
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or len(w) != len(means) or len(w) != len(covs) or (w < 0).any() or w.sum() <= 0:
            raise ParameterError("need one non-negative weight per component (positive sum)")
        self.logw = torch.as_tensor(np.log(w / w.sum()))
        self.parts = [GaussianOracle(m, c, shape, family) for m, c in zip(means, covs)]
        self.family, self.shape, self.V = self.parts[0].family, self.parts[0].shape, self.parts[0].V

    def responsibilities(self, x, a):
        logp = torch.stack([lw + p.log_density_I(x, a) for lw, p in zip(self.logw, self.parts)], dim=-1)
        return torch.softmax(logp, dim=-1)

    def etas(self, x, a):
        r = self.responsibilities(x, a).to(x.dtype)
        e = [p.etas(x, a) for p in self.parts]
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        eta0 = sum(r[:, k].reshape(shape) * e[k][0] for k in range(len(e)))
        eta1 = sum(r[:, k].reshape(shape) * e[k][1] for k in range(len(e)))
        return eta0, eta1

    def b(self, x, a):
        eta0, eta1 = self.etas(x, a)
        return eta0 - eta1

    def sample(self, n, generator=None):
        k = torch.multinomial(self.logw.exp(), n, replacement=True, generator=generator)
        out = torch.empty(n, 1, *self.shape, dtype=torch.float64)
        for i, p in enumerate(self.parts):
            idx = (k == i).nonzero().flatten()
            if len(idx):
                out[idx] = p.sample(len(idx), generator)
        return out


def free_field_oracle(shape, m2: float, family: OperatorFamily | None = None) -> GaussianOracle:
    """The oracle for the free field N(0, (2K)^-1) on ``shape`` (THEORY.md section 1)."""
    V = int(np.prod(shape))
    return GaussianOracle(np.zeros(V), free_field_covariance(shape, m2), shape, family)
