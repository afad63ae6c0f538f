"""Exact super-resolution: a Metropolis chain within the fibre of each coarse configuration (THEORY.md 6
and 8.2).

Given the block averages c of side b, the fine configurations with those averages form a fibre (an affine
subspace: the Haar detail coordinates d move, the block sums are fixed).  The target on it is the
conditional law p(d | c) proportional to exp(-S(phi(c, d))).  The super-resolution flow of a Haar model
proposes d' with a density q(d' | c) that the augmented flow gives exactly (the flow integrated in Haar
coordinates, whose Jacobian is 1); so the independence Metropolis test

    accept d' with probability min(1, w(d') / w(d)),   log w = -S(phi) - log q(d | c),

leaves p(d | c) invariant, and each chain converges to it whatever the model's errors.  The model's
quality sets only the acceptance and the ESS.  With coarse configurations drawn from the exact blocked
law (e.g. HMC at L / b), the final states are exact fine configurations: the joint law is
p(c) p(d | c).

* :func:`superres_proposals`   ``proposals`` fine configurations per coarse one with log q(d | c);
* :func:`superres_metropolis`  one independence-Metropolis chain per coarse configuration through its
  proposals: final states, acceptance, the fibre's ESS/T.

The Gaussian oracle of a wrong mass is a wrong model with an exact log q; its chain still targets the
right conditional law (here the free field at m2 = 1, proposals from m2 = 2):

>>> import numpy as np
>>> from phi4si.interpolant.operators import Haar
>>> from phi4si.interpolant.oracle import free_field_oracle
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.model import DriftModel
>>> from phi4si.model.density import FlowSettings
>>> from phi4si.tasks.superres import block_average
>>> model = DriftModel(free_field_oracle((4, 4), 2.0, Haar(levels=1)), Phi4Params((4, 4), m2=1.0, lam=0.0))
>>> coarse = np.array([[[0.5, -0.5], [1.0, 0.0]]])
>>> r = superres_metropolis(model, coarse, 2, proposals=8, fs=FlowSettings(steps=8, divergence="exact"))
>>> r.phi.shape, bool(0.0 < r.acceptance[0] <= 1.0)
((1, 4, 4), True)
>>> bool(np.allclose(block_average(r.phi, 2), coarse, atol=1e-10))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ParameterError
from .superres import keep_blocks, superres_start

__all__ = ["superres_proposals", "superres_metropolis", "FibreChains"]


@dataclass(frozen=True)
class FibreChains:
    """The outcome of :func:`superres_metropolis` for N coarse configurations and T proposals each:
    ``phi`` (N, *shape) the chains' final states; ``acceptance`` (N,) the fraction of accepted proposals
    after the first; ``ess_fraction`` (N,) the importance ESS/T of each fibre's proposals;
    ``log_w`` (N, T) their log-weights; ``index`` (N,) the proposal each chain ends on; ``proposals``
    (N, T, *shape) every proposal (the first of each fibre is a plain super-resolution draw)."""

    phi: np.ndarray
    acceptance: np.ndarray
    ess_fraction: np.ndarray
    log_w: np.ndarray
    index: np.ndarray
    proposals: np.ndarray


def superres_proposals(model, coarse, factor: int, proposals: int = 1, fs=None, seed: int = 0,
                       scale_by_scale: bool = False):
    """``proposals`` fine configurations for each coarse one (``coarse``: (N, *coarse_shape), physical
    units; the output (N * proposals, *shape) in the order config-major), drawn by the super-resolution
    flow, with the log-density of their details given the coarse field (a
    :class:`~phi4si.model.density.Proposal`; physical units, so log w = -S - log q up to a constant per
    coarse configuration)."""
    from ..model.density import FlowSettings, Proposal, flow_proposal

    fs = FlowSettings() if fs is None else fs
    if int(proposals) < 1:
        raise ParameterError(f"proposals must be >= 1, got {proposals}")
    T = int(proposals)
    c = np.asarray(coarse, dtype=np.float64)
    cc, shape, path, start = superres_start(model, np.repeat(c, T, axis=0) if c.ndim else c, factor, scale_by_scale)
    g = torch.Generator().manual_seed(int(np.random.SeedSequence(int(seed)).generate_state(1)[0]))
    parts = []
    for lo in range(0, len(cc), fs.batch_size):
        b = min(fs.batch_size, len(cc) - lo)
        z = torch.randn((b, 1, *shape), generator=g, dtype=torch.float64)
        p = flow_proposal(model, path, start(z, lo, b), fs, seed=int(seed) + lo)
        parts.append((keep_blocks(p.phi, cc[lo:lo + b], factor), p.log_q, p.log_q_error))
    return Proposal(*(np.concatenate([q[i] for q in parts]) for i in range(3)))


def superres_metropolis(model, coarse, factor: int, proposals: int = 16, fs=None, seed: int = 0,
                        scale_by_scale: bool = False, params=None) -> FibreChains:
    """One independence-Metropolis chain per coarse configuration through ``proposals`` draws of
    :func:`superres_proposals`, targeting the conditional law of the fine field given its block averages
    under ``params`` (default: the model's target); returns a :class:`FibreChains`."""
    from ..analysis.weights import ess_fraction, log_weights
    from ..model.exact import imh_chain

    c = np.asarray(coarse, dtype=np.float64)
    shape = superres_start(model, c, factor, scale_by_scale)[1]          # every input checked before any flow
    params = model.target_params(shape=shape) if params is None else params
    if tuple(params.shape) != tuple(shape):
        raise ParameterError(f"params are for the lattice {tuple(params.shape)}, the fine fields have {tuple(shape)}")
    p = superres_proposals(model, c, factor, proposals, fs, seed, scale_by_scale)
    T = int(proposals)
    lw = log_weights(p.phi, p.log_q, params).reshape(len(c), T)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    idx, acc, _ = imh_chain(lw, rng)
    last = idx[:, -1]
    props = p.phi.reshape(len(c), T, *p.phi.shape[1:])
    acceptance = acc[:, 1:].mean(1) if T > 1 else np.ones(len(c))
    return FibreChains(props[np.arange(len(c)), last], acceptance, np.array([ess_fraction(r) for r in lw]), lw, last,
                       props)
