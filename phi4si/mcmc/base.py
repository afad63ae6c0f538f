"""The sampler protocol: what the MCMC driver (:mod:`phi4si.mcmc.run`) needs from a sampler.

A sampler is a small object built for one :class:`~phi4si.lattice.Phi4Params`; the driver owns
everything else (the chains' fields, the random numbers, thermalisation, step-size adaptation,
measurement, storage and resume).  :class:`~phi4si.mcmc.hmc.HMC`,
:class:`~phi4si.mcmc.fourier.FourierHMC`, :class:`~phi4si.mcmc.fourier.Langevin` and
:class:`~phi4si.mcmc.fourier.MALA` satisfy it (structurally: none of them inherits from it).

Contract of ``step(phi, rng, eps) -> (accepted, dH)``:

* **State is the caller's array.**  ``phi`` is a C-contiguous float64 batch ``(n_chains, V)`` of
  flat configurations (C order over the lattice shape), updated in place: one trajectory (or, for
  Langevin and MALA, ``n_steps`` updates) per chain.  A sampler keeps no per-chain state between
  calls, so the fields and the Generator's state are all a resume needs.
* **Randomness only from** ``rng`` (a ``numpy.random.Generator``): the same ``phi``, Generator
  state and ``eps`` give the same bits.  ``eps`` is the step size (dt for Langevin and MALA); it
  may change from call to call (the driver jitters and adapts it).
* **accepted**: float64 ``(n_chains,)``, the fraction of this call's Metropolis tests that
  accepted (0 or 1 for HMC and FA-HMC, a multiple of 1/n_steps for MALA, 1 for Langevin).
* **dH**: float64 ``(n_chains,)``, minus the log Metropolis-Hastings ratio of the (last) test:
  the proposal is accepted with probability min(1, exp(-dH)).  For HMC it is the energy violation
  H(end) - H(start); for MALA it includes the proposal densities; NaN where there is no test
  (Langevin).  A NaN or +inf dH (a diverging trajectory) is always rejected, so exact samplers
  keep ``phi`` finite.
* **exact**: True when the chain leaves exp(-S) exactly invariant (a Metropolis test corrects
  the discretisation), for any eps > 0; False for the unadjusted Langevin update (biased by
  O(dt), and able to diverge: the driver checks ``phi`` for non-finite values).
* **adaptive**: whether the acceptance depends on eps, so that the driver may adapt eps toward
  ``default_target`` during thermalisation (``default_target`` is None when it is not).

:meth:`Sampler.meta` is the JSON-ready record of the sampler's settings written to the ensemble
file (``"sampler"``: its name, then e.g. ``n_steps``, ``integrator``, ``mass``), which a resume
compares.

>>> from phi4si.lattice import Phi4Params
>>> from phi4si.mcmc import make_sampler
>>> isinstance(make_sampler("mala", Phi4Params((4, 4), 1.0, 0.0)), Sampler)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ..lattice.params import Phi4Params

__all__ = ["Sampler"]


@runtime_checkable
class Sampler(Protocol):
    """What :func:`phi4si.mcmc.run.sample_mcmc` uses of a sampler (see the module docstring).

    ``isinstance(obj, Sampler)`` checks that every member below exists, not their types.
    """

    name: str                    # the ``--sampler`` name, also ``meta()["sampler"]``
    exact: bool                  # exp(-S) exactly invariant (Metropolis-corrected)
    adaptive: bool               # eps may be adapted toward default_target
    default_eps: float           # step size (dt) when none is given
    default_n_steps: int         # integrator steps (updates) per step() when none are given
    default_target: float | None  # acceptance the adaptation aims at; None if not adaptive
    params: Phi4Params           # the target exp(-S)
    n_steps: int                 # integrator steps (updates) per step()

    @property
    def forces_per_trajectory(self) -> int:
        """Force evaluations per chain and call of :meth:`step` (the cost in units of V sites)."""
        ...

    def meta(self) -> dict:
        """JSON-ready settings: ``{"sampler": name, ...}``."""
        ...

    def step(self, phi: np.ndarray, rng: np.random.Generator, eps: float) -> tuple[np.ndarray, np.ndarray]:
        """Advance every chain of ``phi`` (n_chains, V) in place; returns ``(accepted, dH)``."""
        ...
