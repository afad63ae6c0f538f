"""Posterior sampling with a prior model, no retraining (THEORY.md section 5).

The posterior of the phi^4 model under a field h and an extra coupling k,

    p_{h,k}(phi) ~ exp(h sum_x phi_x + k sum_x phi_x^2) p(phi),

is sampled by running any task (generation, inpainting, sequential generation) with the posterior
drift of the reward transform (:class:`~phi4si.interpolant.rewards.PosteriorDrift`) in place of the
prior drift.  The reward is given in physical units and mapped to the model's normalised
coordinates (A' = scale^2 A, b' = scale (A mean + b)) here.

Start point.  The transform is singular at the noise end, so posterior paths run from a = a0 < 1
(:class:`~phi4si.interpolant.paths.StartAt`).  The exact law there is a0 z + (1 - a0) x1 with x1
from the posterior; the start replaces x1 by an approximation:

* ``start="noise"``: m = 0 - the mean of the result is off by O(1 - a0) (for a Gaussian target
  exactly by T (1 - a0) m_r, T = C_r^(1/2) (a0^2 + (1 - a0)^2 C_r)^(-1/2) per mode);
* ``start="pilot"`` (default): x1 = a random, randomly translated sample of a short pilot run started
  from noise (``pilot`` samples; for inpainting, the pilot's mean) - the O(1 - a0) error in the mean
  and in the variance becomes O((1 - a0)^2);
* a number: m in physical units (e.g. the posterior <phi> if known).

Choosing a0 trades that start error against extrapolation: near the noise end the transformed
field x_r = x + a^2/(1 - a) b' leaves the training distribution like 1/(1 - a)
(the Gaussian-oracle formulas are tested in tests/model/test_posterior.py; ``posterior_study.sh start`` and
``posterior_architecture.sh`` in papers/negrel2025 measure the bias against a0 and the architecture on
trained models).  For a Gaussian mode of variance C (normalised units) one pilot round multiplies the
start error by f = T (1 - a0); near the transition the zero mode's C is large (about 100 at L = 32,
m2 = -4, lam = 4.572), so f = 0.74 at a0 = 0.9 but 0.46 at a0 = 0.95, where the transform still moves
the field by less than 0.2 of the data's spread at h <= 0.02 (:meth:`Posterior.reach`).  The default is
a0 = 0.95 with three pilot rounds, lowered (not below 0.9) where the reach would exceed
:data:`REACH_TARGET` (or just below the feasibility bound of a positive k; at L = 32,
papers/negrel2025/l32.sh posterior: <m> within 2 % of HMC at h = 0.01 ... 0.05 where a0 = 0.9 with two
rounds was 22 % low at h = 0.01).  A
negative k has no singularity at the noise end (rho_r^2 = rho^2 + |A| > 0 for every a, so x_r stays
finite there even with a field h): its default is a0 = 0.999, where the start error of the critical
zero mode, (1 - a0)^2 c against a0^2, is negligible (papers/negrel2025/k_bias.py measures it).

The tasks themselves run in :mod:`phi4si.model.generate` (``generate(model, n, posterior=Posterior(h=0.05))``,
:func:`~phi4si.model.generate.sample_posterior`); this module holds what they need of the posterior.

>>> Posterior(h=0.05, k=0.01).describe()["reward"]
{'h': 0.05, 'k': 0.01}
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import torch

from ..errors import ParameterError
from ..seeds import torch_generator

__all__ = ["Posterior", "posterior_drift", "drift_and_path", "pilot_start", "DEFAULT_A0", "DEFAULT_A0_NEGATIVE_K",
           "DEFAULT_PILOT", "DEFAULT_ROUNDS"]

DEFAULT_A0 = 0.95
DEFAULT_PILOT = 256      # pilot-run size and rounds of start="pilot"
DEFAULT_ROUNDS = 3
# k < 0 everywhere: the transform has no singularity at the noise end (rho_r^2 = rho^2 + |A| > 0), so the
# path starts next to it, where the start error (1 - a0) is negligible even for the critical zero mode
# (papers/negrel2025/k_bias.py: at L = 16 the a0 = 0.9 start made most of the k < 0 bias)
DEFAULT_A0_NEGATIVE_K = 0.999
STARTS = ("pilot", "noise")
# reach of the reward transform (Posterior.reach, in training-data standard deviations): the paper's rewards
# (h <= 0.05, |k| <= 0.5) reach < 2; beyond REACH_WARN the drift is evaluated where the model never saw data,
# beyond REACH_MAX (h = 1e12 reaches ~1e12) the samples would be numbers without meaning
REACH_WARN = 10.0
# the default a0 of a field h is capped so that the reach stays <= REACH_TARGET (not below A0_FLOOR): at L = 8,
# h = 0.1 the reach is 0.68 at a0 = 0.95 and <m> comes out +4.0 % high (extrapolation) against -0.5 % at
# a0 = 0.9 (reach 0.31) and -0.3 % at the capped 0.92 (papers/negrel2025/posterior_study.sh cap); at L = 32, h <= 0.02 (reach <= 0.2 at 0.95) the cap does not act
REACH_TARGET = 0.4
A0_FLOOR = 0.9
REACH_MAX = 1000.0


@dataclass
class Posterior:
    """Reward (physical units) and start settings of a posterior run.

    h, k: r(phi) = h sum phi + k sum phi^2; a0: start time (None: :data:`DEFAULT_A0`, or just below
    the feasibility bound 1/(1 + sqrt(2k scale^2)) when k > 0, or :data:`DEFAULT_A0_NEGATIVE_K` when
    k < 0); start: 'pilot', 'noise' or a number
    (the start mean in physical units); pilot, rounds: size and number of the pilot runs for
    ``start='pilot'``.

    >>> Posterior(h=0.05).describe()["reward"]
    {'h': 0.05, 'k': 0.0}
    """

    h: float = 0.0
    k: float = 0.0
    a0: float | None = None
    start: str | float = "pilot"
    pilot: int = DEFAULT_PILOT
    rounds: int = DEFAULT_ROUNDS

    def __post_init__(self):
        for name in ("h", "k"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ParameterError(f"posterior {name} must be a finite number, got {v!r}")
        if self.a0 is not None and not (isinstance(self.a0, (int, float)) and 0 < self.a0 < 1):
            raise ParameterError(f"posterior start time a0 must be in (0, 1), got {self.a0!r}")
        if isinstance(self.start, str):
            if self.start not in STARTS:
                raise ParameterError(f"posterior start must be one of {STARTS} or a number, got {self.start!r}")
        elif not (isinstance(self.start, (int, float)) and math.isfinite(self.start)):
            raise ParameterError(f"posterior start mean must be finite, got {self.start!r}")
        if int(self.pilot) < 2:
            raise ParameterError(f"pilot run size must be >= 2, got {self.pilot}")
        if int(self.rounds) < 1:
            raise ParameterError(f"pilot rounds must be >= 1, got {self.rounds}")

    def reward(self, model):
        """The reward in the model's normalised coordinates."""
        from ..interpolant.rewards import Reward

        return Reward.physical(self.h, self.k, model.mean, model.scale)

    def start_time(self, model) -> float:
        """a0, checked against the feasibility bound of a positive k and against the reach of the
        transform (:meth:`reach`: refused beyond :data:`REACH_MAX`, a warning beyond :data:`REACH_WARN`)."""
        from ..interpolant.rewards import feasible_start

        bound = feasible_start(self.reward(model), model.family)
        if self.a0 is None:
            a0 = DEFAULT_A0_NEGATIVE_K if self.k < 0 else self._capped(model, min(DEFAULT_A0, bound))
        elif self.a0 > bound:
            raise ParameterError(f"k = {self.k} > 0: the reward transform exists only for a <= {bound + 1e-3:.4g} "
                                 f"(scale {model.scale:.4g}); got a0 = {self.a0}")
        else:
            a0 = float(self.a0)
        reach = self.reach(model, a0)
        what = (f"the reward h = {self.h:g}, k = {self.k:g} moves the field the model sees at a0 = {a0:.3g} by "
                f"{reach:.3g} standard deviations of its training data")
        if reach > REACH_MAX:
            raise ParameterError(f"{what}: far outside anything the model was trained on, so its samples would be "
                                 f"meaningless; lower |h| and |k| (or a0) to keep that under {REACH_MAX:g}")
        if reach > REACH_WARN and not getattr(self, "_warned", False):
            self._warned = True
            print(f"phi4si: warning: {what}; the model extrapolates there (check against sample-mcmc at these "
                  "couplings, or use sample-neural for exact results)", file=sys.stderr)
        return a0

    def _capped(self, model, a0: float) -> float:
        """The default start time for k >= 0: ``a0``, lowered (not below :data:`A0_FLOOR`) until the
        transform moves the field by at most :data:`REACH_TARGET` (the reach grows like a^2/(1 - a))."""
        if self.reach(model, a0) <= REACH_TARGET:
            return a0
        lo, hi = min(A0_FLOOR, a0), a0
        if self.reach(model, lo) >= REACH_TARGET:
            return lo
        for _ in range(40):                                  # bisection: the reach is increasing in a
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.reach(model, mid) <= REACH_TARGET else (lo, mid)
        return lo

    def reach(self, model, a0: float) -> float:
        """How far (in the training data's standard deviations, the model's normalised units) the reward
        transform moves the field at the start time a0: max |x_r - x| over the fields x = 0 and x = 1
        of :func:`~phi4si.interpolant.rewards.transform` (the b' = scale (A mean + b) shift and the
        A' = scale^2 A stretch, each amplified by a0^2/(1 - a0) near the noise end).

        >>> from phi4si.interpolant.oracle import free_field_oracle
        >>> from phi4si.lattice import Phi4Params
        >>> from phi4si.model import DriftModel
        >>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
        >>> Posterior(h=0.05).reach(m, 0.9) < 1, Posterior(h=1e12).reach(m, 0.9) > REACH_MAX
        (True, True)
        """
        from ..interpolant.rewards import transform

        reward, shape = self.reward(model), tuple(model.shape)
        a = torch.full((1, 1, *shape), float(a0), dtype=torch.float64)
        out = 0.0
        for v in (0.0, 1.0):
            x = torch.full((1, 1, *shape), v, dtype=torch.float64)
            _, xr, _, _ = transform(reward, x, a, model.family)
            out = max(out, float((xr - x).abs().max()))
        return out

    def describe(self) -> dict:
        return {"reward": {"h": float(self.h), "k": float(self.k)}, "a0": self.a0, "start": self.start,
                "pilot": int(self.pilot), "rounds": int(self.rounds)}


def posterior_drift(model, h: float = 0.0, k: float = 0.0):
    """The posterior drift of a trained model under the physical reward (h, k).

    >>> import torch
    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.model import DriftModel
    >>> from phi4si.lattice import Phi4Params
    >>> m = DriftModel(free_field_oracle((4, 4), 1.0), Phi4Params((4, 4), m2=1.0, lam=0.0))
    >>> type(posterior_drift(m, h=0.1)).__name__
    'PosteriorDrift'
    """
    from ..interpolant.rewards import PosteriorDrift

    return PosteriorDrift(model.drift(), Posterior(h=h, k=k).reward(model))


def drift_and_path(model, path, posterior: Posterior | None):
    """(drift, path) of a task: the prior drift and ``path``, or with a posterior its drift under the
    reward transform and the path from a0 (:class:`~phi4si.interpolant.paths.StartAt`)."""
    if posterior is None:
        return model.drift(), path
    from ..interpolant.paths import StartAt
    from ..interpolant.rewards import PosteriorDrift

    return PosteriorDrift(model.drift(), posterior.reward(model)), StartAt(path, posterior.start_time(model))


def pilot_start(model, posterior: Posterior, pilot_run, translation_invariant: bool, seed: int = 0):
    """The data part x1 of the start a0 z + (1 - a0) x1, as a function of the batch size b (normalised
    coordinates): 0 (``start='noise'``), the given number, or for ``start='pilot'`` the result of
    ``rounds`` pilot runs (``pilot_run(n, x1, round)`` returns normalised samples (n, 1, *shape) of the
    task started with data part ``x1``), each started from the previous one (the first from noise):

    * translation-invariant tasks (generation): a random pilot sample, randomly translated, per start -
      the start law then has the posterior's mean *and* covariance up to the last pilot's error; each
      round multiplies the start error by T (1 - a0) < 1 per mode (T as in the module docstring; it
      approaches 1 for the critical zero mode when (1 - a0)^2 c >> a0^2, hence several rounds);
    * tasks with observed data (inpainting): the pilot's per-site mean (its samples belong to other
      data), which fixes the mean only.
    """
    if posterior.start == "noise":
        return lambda b: 0.0
    if posterior.start != "pilot":
        v = (float(posterior.start) - model.mean) / model.scale
        return lambda b: v
    g = torch_generator(seed, "pilot_draws")     # which pilot sample, which translation

    def sampler(x):
        if not translation_invariant:
            mean = x.mean(0, keepdim=True)
            return lambda b: mean
        sp = tuple(range(1, x.dim() - 1))

        def draw(b):
            idx = torch.randint(len(x), (b,), generator=g)
            shifts = [torch.randint(int(L), (b,), generator=g) for L in x.shape[2:]]
            return torch.stack([torch.roll(x[int(j)], tuple(int(s[i]) for s in shifts), dims=sp)
                                for i, j in enumerate(idx)])
        return draw

    x1 = lambda b: 0.0  # noqa: E731
    for r in range(int(posterior.rounds)):
        x1 = sampler(pilot_run(int(posterior.pilot), x1, r))
    return x1
