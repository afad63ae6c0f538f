"""The drifts eta0, eta1 and the velocity b, and how they relate (THEORY.md 4.2).

    eta0(x) = E[x0 | I = x],   eta1(x) = E[x1 | I = x],   b = eta0 - eta1
    x = alpha eta0 + beta eta1            (beta = Id - alpha for every family with a transport)
    =>  eta1 = x - alpha b,   eta0 = x + beta b           (no inversion needed from b)
        b = alpha^-1 (x - eta1)  (from eta1),   b = beta^-1 (eta0 - x)  (from eta0)
    score of the law of I (x0 ~ N(0, Id)):  s(x) = -alpha^-1 eta0

Every generator in phi4si consumes a :class:`Drift`: an object with ``b(x, a)``.  The ODE
velocity along a path is alpha(da/ds) b (:meth:`OperatorFamily.velocity`), so ``b`` is all the
ODE needs and the SDE adds eta0 = x + beta b.

Which one to learn.  A network regressing eta1 must output ~x near the data end a -> 0 and the
ODE then divides by a (eta0 - eta1 = (x - eta1)/a): its error is amplified like 1/a exactly where
the samples are finalised, and the endpoint a = 0 (evaluated by Heun and RK4) is singular.
Regressing eta0 has the mirror problem at the noise end.  ``b`` gives both drifts and the
velocity with bounded coefficients everywhere, so phi4si trains ``b`` by default (the ablation
in papers/negrel2025 measures the three).

>>> import torch
>>> from phi4si.interpolant.operators import Hadamard
>>> x, a, b = torch.tensor([1.0]), torch.tensor([0.25]), torch.tensor([2.0])
>>> eta0, eta1 = etas_from_b(Hadamard(), x, a, b)
>>> float(eta0), float(eta1), float(0.25 * eta0 + 0.75 * eta1)
(2.5, 0.5, 1.0)
"""

from __future__ import annotations

import torch

from ..errors import ParameterError
from .operators import Hadamard, OperatorFamily

__all__ = ["PARAMETRISATIONS", "Drift", "etas_from_b", "b_from", "raw_from_b", "score_from_b", "NeuralDrift"]

PARAMETRISATIONS = ("b", "eta1", "eta0")


def etas_from_b(family: OperatorFamily, x, a, b):
    """(eta0, eta1) = (x + beta b, x - alpha b)."""
    return x + family.beta(a, b), x - family.alpha(a, b)


def _safe_inverse(t, floor):
    """1/t where |t| > floor, else 0 (the coefficient it multiplies vanishes there)."""
    return torch.where(t.abs() > floor, 1.0 / torch.where(t.abs() > floor, t, torch.ones_like(t)),
                       torch.zeros_like(t))


def b_from(param: str, family: OperatorFamily, x, a, raw, floor: float = 1e-6):
    """Convert a network output in parametrisation ``param`` to b.

    eta1 -> b = alpha^-1 (x - eta1);  eta0 -> b = beta^-1 (eta0 - x); both are set to 0 where the
    operator is (numerically) singular, i.e. on sites with a = 0 (eta1) or a = 1 (eta0) where the
    velocity coefficient of a pinned site is also 0.  Only elementwise-invertible families
    (Hadamard, FourierDiagonal) are supported.
    """
    if param == "b":
        return raw
    if param == "eta1":
        return family.alpha(_safe_inverse(a, floor), x - raw)
    if param == "eta0":
        return family.alpha(_safe_inverse(1.0 - a, floor), raw - x)
    raise ParameterError(f"unknown parametrisation {param!r} (choose from {PARAMETRISATIONS})")


def raw_from_b(param: str, family: OperatorFamily, x, a, b):
    """The regression target in parametrisation ``param`` given b (training targets use x0, x1)."""
    if param == "b":
        return b
    eta0, eta1 = etas_from_b(family, x, a, b)
    if param == "eta1":
        return eta1
    if param == "eta0":
        return eta0
    raise ParameterError(f"unknown parametrisation {param!r} (choose from {PARAMETRISATIONS})")


def score_from_b(family: OperatorFamily, x, a, b, floor: float = 1e-12):
    """Score of the law of I: s = -alpha^-1 eta0 (defined where alpha is invertible)."""
    eta0 = x + family.beta(a, b)
    return -family.alpha(_safe_inverse(a, floor), eta0)


class Drift:
    """What generators consume: ``b(x, a)`` (tensor like x) for a given operator family.

    Subclasses: :class:`NeuralDrift` (a trained network), :class:`~phi4si.interpolant.oracle.
    GaussianOracle` and :class:`~phi4si.interpolant.oracle.MixtureOracle` (exact), and the reward
    transform of the posterior module.
    """

    family: OperatorFamily = Hadamard()

    def b(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def etas(self, x, a):
        """(eta0, eta1) at (x, a)."""
        return etas_from_b(self.family, x, a, self.b(x, a))


class NeuralDrift(Drift):
    """Wrap a network ``model(features(a), x)``-style module as a :class:`Drift`.

    ``model(x, a_features)`` returns the drift in parametrisation ``param`` (b, eta1 or eta0), in
    the model's normalised coordinates; conversion to b uses :func:`b_from`.

    >>> net = lambda x, a: 0.0 * x          # a "model" that predicts b = 0
    >>> NeuralDrift(net).b(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2)).sum().item()
    0.0
    """

    def __init__(self, model, param: str = "b", family: OperatorFamily | None = None):
        if param not in PARAMETRISATIONS:
            raise ParameterError(f"unknown parametrisation {param!r} (choose from {PARAMETRISATIONS})")
        self.model, self.param = model, param
        self.family = family if family is not None else Hadamard()
        if not self.family.transports:
            raise ParameterError(f"a model of the {self.family.name!r} family has no drift to transport along a "
                                 f"path (generation, inpainting, posteriors); use it through phi4si.tasks.restore")

    def b(self, x, a):
        a = a.expand(x.shape[0], *a.shape[1:]) if a.shape[0] != x.shape[0] else a
        raw = self.model(x, self.family.features(a))
        return b_from(self.param, self.family, x, a, raw)
