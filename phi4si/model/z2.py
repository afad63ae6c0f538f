"""Z2 symmetry of a model's law without a second network pass: the random global sign.

For a Z2-symmetric prior (h = 0: p(-phi) = p(phi)) a model can be made exactly symmetric in two
ways.  An *odd* network (``UNetConfig.odd``, ``train --odd``) evaluates its trunk on x and -x at
every drift evaluation.  A *one-pass* network (``train --no-odd``, learnt with random sign flips of
the data) is symmetrised at the end instead: each trajectory gets a global sign s = +-1 drawn with
probability 1/2, its start is multiplied by s and so is its end point,

    x = s * Flow(s * x_start),

so a sample comes from the model with drift b(x, a) (s = +1) or from its mirror image with drift
-b(-x, a) (s = -1).  The law of the samples is the mixture

    q_sym(phi) = (q(phi) + q(-phi)) / 2,

exactly Z2-symmetric whatever b is, at the cost of one network pass per evaluation; and, because
the target is symmetric, never further from it than q (by the convexity of the KL divergence,
KL(q_sym | p) <= KL(q | p)).  The density needs both terms, so log q_sym costs two log-density
flows (:func:`log_q`), the same work as the odd network's two trunk passes.

The sign applies to the tasks whose law the symmetry maps onto itself: generation, sequential
generation and inpainting (the observed sites enter the start, so the mirror model sees -phi_obs
and its completion is flipped back: observed sites end up unchanged), and posteriors with a
coupling k only.  A field h != 0 breaks the symmetry (the posterior of the mirror model is not the
mirror of the posterior), so there the sign is off.

Modes (``z2=`` of the tasks and of :class:`~phi4si.model.density.FlowSettings`, ``--z2`` on the
command line): ``"auto"`` (default) uses the sign where it is valid and needed: a trained one-pass
network of a Z2-symmetric prior, no field h; ``"sign"`` asks for it (refused where it is not valid:
a prior that is not symmetric, a field h, a network that is odd already); ``"none"`` never flips
(the law of the network alone; also the bits of runs made before this option existed).

>>> import torch
>>> from phi4si.interpolant.oracle import GaussianOracle
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.model import DriftModel
>>> orc = GaussianOracle(mean=[1.0, 1.0], cov=0.1 * torch.eye(2).numpy(), shape=(2,))   # not symmetric
>>> m = DriftModel(orc, Phi4Params((2,), m2=1.0, lam=0.0))
>>> from phi4si.model.generate import generate
>>> phi = generate(m, 2000, steps=20, solver="rk4", z2="sign", seed=0)
>>> bool(abs(phi.mean()) < 0.1), bool(abs(abs(phi).mean() - 1.0) < 0.05)    # +-1 with equal weight
(True, True)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ParameterError

__all__ = ["Z2_MODES", "check_mode", "prior_symmetric", "network_odd", "use_sign", "applied", "flip", "signs",
           "log_q"]

#: Values of ``z2=`` / ``--z2``.
Z2_MODES = ("auto", "sign", "none")


def check_mode(mode) -> str:
    """``mode`` if it is one of :data:`Z2_MODES`, else ``ParameterError``.

    >>> check_mode("flip")
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: unknown z2 mode 'flip' (choose from ('auto', 'sign', 'none'))
    """
    if mode not in Z2_MODES:
        raise ParameterError(f"unknown z2 mode {mode!r} (choose from {Z2_MODES})")
    return mode


def prior_symmetric(model) -> bool:
    """Whether the model's training law is Z2-symmetric: a phi^4 prior with h = 0, normalised
    with mean 0 (the sign flip of the normalised field is then the flip of phi)."""
    p = (getattr(model, "lattice", None) or {}).get("params") or {}
    return "m2" in p and float(p.get("h", 0.0)) == 0.0 and float(model.mean) == 0.0 \
        and int(getattr(model, "channels", 1)) == 1


def network_odd(model) -> bool | None:
    """True for an exactly Z2-odd network, False for a one-pass network, None when the model is not
    a trained network (an exact drift such as an oracle)."""
    net = getattr(model, "net", None)
    if net is None:
        return None
    return bool(getattr(getattr(net, "config", None), "odd", False))


def use_sign(model, mode: str = "auto", h: float = 0.0) -> bool:
    """Resolve ``mode`` for ``model`` and a task with field ``h``: whether each trajectory gets a
    random global sign.  ``"sign"`` is refused (``ParameterError``) where it is not valid.

    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.lattice import Phi4Params
    >>> from phi4si.model import DriftModel
    >>> m = DriftModel(free_field_oracle((4,), 1.0), Phi4Params((4,), m2=1.0, lam=0.0))
    >>> use_sign(m), use_sign(m, "sign"), use_sign(m, "none")     # an exact drift: only on request
    (False, True, False)
    >>> use_sign(m, "sign", h=0.1)
    Traceback (most recent call last):
    ...
    phi4si.errors.ParameterError: z2='sign' needs a Z2-symmetric task, but the field h = 0.1 breaks the symmetry (use z2='auto' or 'none')
    """
    if check_mode(mode) == "none":
        return False
    odd = network_odd(model)
    if mode == "auto":
        return odd is False and prior_symmetric(model) and float(h) == 0.0
    if float(h) != 0.0:
        raise ParameterError(f"z2='sign' needs a Z2-symmetric task, but the field h = {float(h):g} breaks the "
                             "symmetry (use z2='auto' or 'none')")
    if not prior_symmetric(model):
        raise ParameterError("z2='sign' needs a model of a Z2-symmetric prior (phi^4 data with h = 0, normalised "
                             "with mean 0); this model's training law is not symmetric")
    if odd:
        raise ParameterError("z2='sign': this network is exactly Z2-odd already (trained with --odd); "
                             "a random sign adds nothing (use z2='auto' or 'none')")
    return True


def applied(model, mode: str = "auto", h: float = 0.0) -> str:
    """What makes the samples of ``model`` symmetric under ``mode`` (what an output records):
    'sign' (the random global sign), 'odd' (an exactly odd network) or 'none'.

    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.lattice import Phi4Params
    >>> from phi4si.model import DriftModel
    >>> m = DriftModel(free_field_oracle((4,), 1.0), Phi4Params((4,), m2=1.0, lam=0.0))
    >>> applied(m), applied(m, "sign")
    ('none', 'sign')
    """
    return "sign" if use_sign(model, mode, h) else ("odd" if network_odd(model) else "none")


def signs(n: int, generator: torch.Generator) -> torch.Tensor:
    """n global signs +-1 (float64, shape (n,)), each with probability 1/2, from ``generator``."""
    return 1.0 - 2.0 * torch.randint(0, 2, (int(n),), generator=generator).double()


def flip(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """``x`` (n, ...) with sample i multiplied by ``s[i]``."""
    return x * s.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def log_q(log_q_plus, log_q_minus, err_plus=None, err_minus=None):
    """log q_sym(phi) = log((q(phi) + q(-phi)) / 2) from log q(phi) and log q(-phi) (arrays), and its
    standard error from theirs (linear propagation: the terms' weights are q(+-phi) / (q(phi) + q(-phi))).

    >>> lq, err = log_q(np.array([0.0, -1e3]), np.array([0.0, 0.0]), np.array([0.1, 0.1]), np.array([0.1, 0.0]))
    >>> np.round(lq, 6).tolist(), np.round(err, 6).tolist()       # equal terms; one negligible term
    ([0.0, -0.693147], [0.070711, 0.0])
    """
    a, b = np.asarray(log_q_plus, dtype=np.float64), np.asarray(log_q_minus, dtype=np.float64)
    lq = np.logaddexp(a, b) - math.log(2.0)
    if err_plus is None:
        return lq
    w = np.exp(a - np.logaddexp(a, b))
    err = np.hypot(w * np.asarray(err_plus, dtype=np.float64), (1 - w) * np.asarray(err_minus, dtype=np.float64))
    return lq, err
