"""Exact MCMC samplers for lattice phi^4 and the driver that writes ensembles.

Samplers are small objects with ``step(phi, rng, eps) -> (accepted, dH)`` acting in place
on a flat ``(n_chains, V)`` float64 batch (the protocol and its contract:
:class:`phi4si.mcmc.base.Sampler`); the driver (:func:`phi4si.mcmc.run.sample_mcmc`) owns
thermalisation, step-size adaptation, measurement, storage and resume.

* :mod:`~phi4si.mcmc.base`    the :class:`~phi4si.mcmc.base.Sampler` protocol
* :mod:`~phi4si.mcmc.hmc`     HMC (leapfrog, Omelyan) with fused numba kernels
* :mod:`~phi4si.mcmc.fourier` Fourier-accelerated HMC, preconditioned Langevin and MALA
* :mod:`~phi4si.mcmc.run`     the driver
"""

from __future__ import annotations

from ..errors import ParameterError
from .base import Sampler

SAMPLERS = ("hmc", "fahmc", "langevin", "mala")


def make_sampler(name: str, params, n_steps=None, integrator: str = "leapfrog", mass: float = 1.0) -> Sampler:
    """Build a sampler by name: ``hmc``, ``fahmc``, ``langevin`` or ``mala``.

    >>> from phi4si.lattice import Phi4Params
    >>> make_sampler("hmc", Phi4Params((4, 4), 1.0, 0.0)).name
    'hmc'
    """
    if name == "hmc":
        from .hmc import HMC

        return HMC(params, n_steps=n_steps or HMC.default_n_steps, integrator=integrator)
    if name == "fahmc":
        from .fourier import FourierHMC

        return FourierHMC(params, n_steps=n_steps or FourierHMC.default_n_steps, integrator=integrator, mass=mass)
    if name in ("langevin", "mala"):
        from .fourier import MALA, Langevin

        cls = Langevin if name == "langevin" else MALA
        return cls(params, n_steps=n_steps or cls.default_n_steps, mass=mass)
    raise ParameterError(f"unknown sampler {name!r}; choose from {', '.join(SAMPLERS)}")
