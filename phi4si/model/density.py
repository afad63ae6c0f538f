"""The density of a trained model, in physical units: sample with log q, log q of any configuration,
and the conditional log q(x_B | x_rest) of a block (THEORY.md section 6).

The model works on normalised fields x = (phi - mean) / scale, so for the n sites that move

    log q(phi) = log q_x(x) - n log(scale).

* :func:`sample`            configurations from noise with their log q (forward flow)
* :func:`log_prob`          log q of given configurations (reverse flow: phi -> noise)
* :func:`propose_block`     regenerate the sites of ``unknown`` (one mask, or one per configuration)
  by inpainting and return the new configurations with log q(x_B' | x_rest)
* :func:`conditional_log_prob` log q(x_B | x_rest) of the current block (reverse inpainting flow)
* :func:`flow_proposal`     the forward flow of any path from given start states, with log q of the
  moving coordinates (e.g. super-resolution, :mod:`phi4si.tasks.superres_exact`)

Settings shared by all (:class:`FlowSettings`): ``steps`` per path segment and ``solver``
('euler', 'heun', 'rk4') of the augmented ODE, ``divergence`` ('exact' or 'hutchinson' with
``probes`` draws) or 'colored' (the default: Rademacher probes split by a colouring of period
``period``, see :mod:`phi4si.interpolant.likelihood`), ``quadrature`` of the divergence integral
('gauss2', the default / 'gauss1': at 2 / 1 Gauss points per step on the trajectory's Hermite
interpolant; 'stages': at every solver stage, the same configurations at about twice the cost with RK4), ``float64`` (integrate in double precision), ``batch_size`` configurations per call
and ``max_batch`` (copies of a batch evaluated together by the divergence), ``z2`` (the random global
sign of a one-pass model of a symmetric prior, :mod:`~phi4si.model.z2`: :func:`sample` and
:func:`log_prob` then give the symmetrised log q_sym(phi) = log((q(phi) + q(-phi)) / 2), at the
cost of a second flow; the block updates keep the network's own conditional, a valid proposal).  ``exact`` costs about
one network pass per moving site and step stage, ``colored`` ``probes`` x ``period``^d passes and
``hutchinson`` ``probes`` passes; both estimators add noise to log q (its standard error is returned
as ``log_q_error`` when ``probes`` >= 2).

With the exact Gaussian oracle as the "model", log q is the free field's exact log-density (up to
the ODE's discretisation):

>>> from phi4si.interpolant.oracle import free_field_oracle
>>> from phi4si.lattice import Phi4Params, action
>>> from phi4si.model import DriftModel
>>> p = Phi4Params((4, 4), m2=1.0, lam=0.0)
>>> m = DriftModel(free_field_oracle((4, 4), 1.0), p)
>>> s = sample(m, 8, FlowSettings(steps=20, divergence="exact"), seed=0)
>>> s.phi.shape, s.log_q.shape
((8, 4, 4), (8,))
>>> lq, _ = log_prob(m, s.phi, FlowSettings(steps=20, divergence="exact"))
>>> bool(np.allclose(lq, s.log_q, atol=1e-3))      # the forward and the reverse flow agree
True
>>> d = -action(s.phi, p) - s.log_q                 # log p - log q up to log Z: a constant
>>> bool(d.std() < 1e-2)
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import ParameterError
from .solve import progress_bar
from .z2 import log_q, signs, use_sign

__all__ = ["FlowSettings", "Proposal", "sample", "log_prob", "propose_block", "conditional_log_prob", "flow_proposal"]


@dataclass(frozen=True)
class FlowSettings:
    """How log q is computed (see the module docstring).  Validated on construction; ``probes``
    (colored, hutchinson) and ``period`` (colored) away from their defaults are refused with a
    divergence that does not use them."""

    steps: int = 10
    solver: str = "rk4"
    divergence: str = "colored"
    probes: int = 1
    period: int = 4
    float64: bool = False
    batch_size: int = 256
    max_batch: int = 512
    grid_power: float = 1.0
    z2: str = "auto"
    quadrature: str = "gauss2"          # before 2026-12: "stages" (LEGACY_FLOW)

    def __post_init__(self):
        from ..interpolant.integrate import SOLVERS
        from ..interpolant.likelihood import DIVERGENCES, QUADRATURES
        from .z2 import check_mode

        if int(self.steps) < 1:
            raise ParameterError(f"steps must be >= 1, got {self.steps}")
        if self.solver not in SOLVERS:
            raise ParameterError(f"unknown solver {self.solver!r} (choose from {SOLVERS})")
        if self.divergence not in DIVERGENCES:
            raise ParameterError(f"unknown divergence {self.divergence!r} (choose from {DIVERGENCES})")
        if int(self.probes) < 1:
            raise ParameterError(f"probes must be >= 1, got {self.probes}")
        if int(self.period) < 1:
            raise ParameterError(f"period must be >= 1, got {self.period}")
        check_mode(self.z2)
        if self.quadrature not in QUADRATURES:
            raise ParameterError(f"unknown quadrature {self.quadrature!r} (choose from {QUADRATURES})")
        for name in ("batch_size", "max_batch"):
            if int(getattr(self, name)) < 1:
                raise ParameterError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name, divergences in (("probes", ("colored", "hutchinson")), ("period", ("colored",))):
            default = FlowSettings.__dataclass_fields__[name].default
            if self.divergence not in divergences and getattr(self, name) != default:
                raise ParameterError(f"{name} applies to divergence {' or '.join(divergences)} only, got "
                                     f"{name}={getattr(self, name)} with divergence={self.divergence!r} "
                                     f"(leave it at {default})")
        from ..interpolant.paths import check_grid

        object.__setattr__(self, "grid_power", check_grid(self.grid_power, self.steps))

    def to_dict(self) -> dict:
        d = asdict(self)
        if isinstance(d["grid_power"], tuple):    # an explicit grid: a list, as JSON reads it back
            d["grid_power"] = list(d["grid_power"])
        return d


# what files written before a setting existed did: a resume reads their flow record with these filled in
LEGACY_FLOW = {"z2": "none", "quadrature": "stages"}


def recorded_flow(path) -> dict | None:
    """The flow settings (``FlowSettings.to_dict()``) an exact-sampling output was written with, the
    settings it lacks filled in from :data:`LEGACY_FLOW`; None for a missing or unreadable file or one
    without a flow record (the resume that reads it then says why)."""
    from ..store import open_verified, read_attrs

    try:
        with open_verified(path, strict=False) as f:
            flow = read_attrs(f).get("sampler", {}).get("flow")
    except Exception:
        return None
    return {**LEGACY_FLOW, **flow} if isinstance(flow, dict) else None


@dataclass
class Proposal:
    """Configurations (n, *shape) in physical units with their model log-density ``log_q`` (n,)
    and its Hutchinson standard error ``log_q_error`` (0 for the exact divergence)."""

    phi: np.ndarray
    log_q: np.ndarray
    log_q_error: np.ndarray


def _model(model, fs: FlowSettings):
    return model.astype(torch.float64) if fs.float64 else model


def _flow(model, path, x_start, fs: FlowSettings, direction, gen, drift=None, start_mean=0.0):
    from ..interpolant.likelihood import flow_log_density

    return flow_log_density(drift or model.drift(), path, x_start, steps=fs.steps, method=fs.solver,
                            direction=direction, divergence_method=fs.divergence, probes=fs.probes, generator=gen,
                            grid_power=fs.grid_power, max_batch=fs.max_batch,
                            period=min(fs.period, *x_start.shape[2:]), start_mean=start_mean,
                            quadrature=fs.quadrature)


def _generation(model, shape, posterior):
    """(drift, path, start mean in normalised units) of the prior or of a posterior with a fixed start."""
    from ..interpolant.paths import GenerationPath

    if posterior is None:
        return None, GenerationPath(shape), 0.0
    from .posterior import drift_and_path

    if isinstance(posterior.start, str):
        raise ParameterError("a posterior proposal needs a fixed start mean (phi4si.model.generate.resolve_start), "
                             f"got start={posterior.start!r}")
    drift, path = drift_and_path(model, GenerationPath(shape), posterior)
    return drift, path, (float(posterior.start) - model.mean) / model.scale


def _to_phys(model, res):
    phi = model.to_physical(res.data.double()).cpu().numpy()[:, 0]
    log_q = res.log_q.double().cpu().numpy() - res.n_moving.double().cpu().numpy() * math.log(model.scale)
    return phi, log_q, res.div_error.double().cpu().numpy()


def _gens(seed):
    ss = np.random.SeedSequence(int(seed)).generate_state(2)
    return torch.Generator().manual_seed(int(ss[0])), torch.Generator().manual_seed(int(ss[1]))


def _cat(parts):
    return Proposal(*(np.concatenate([p[i] for p in parts]) for i in range(3)))


def sample(model, n: int, fs: FlowSettings = FlowSettings(), shape=None, seed: int = 0,
           progress: bool | None = None, posterior=None) -> Proposal:
    """n configurations from noise with their log q (generation path, forward).  With ``posterior``
    (a :class:`~phi4si.model.posterior.Posterior` with a fixed start mean, see
    :func:`~phi4si.model.generate.resolve_start`), proposals from the posterior drift of the reward
    transform, started at a0 from N((1 - a0) m, a0^2): their log q is exact for that law too."""
    if int(n) < 1:
        raise ParameterError(f"n must be >= 1, got {n}")
    shape = model.check_shape(model.shape if shape is None else shape)
    m = _model(model, fs)
    sign = _sign(model, fs, posterior)
    drift, path, mean = _generation(m, shape, posterior)
    g_noise, g_probe = _gens(seed)
    parts, done = [], 0
    bar = progress_bar(progress, n, "sample")
    while done < n:
        b = min(fs.batch_size, n - done)
        z = torch.randn((b, 1, *shape), generator=g_noise).to(device=m.device, dtype=m.dtype)
        x0 = z if posterior is None else path.lift(z, mean)
        phi, lq, err = _to_phys(m, _flow(m, path, x0, fs, "forward", g_probe, drift, mean))
        if sign:                # s * phi has the density (q(phi) + q(-phi)) / 2, whatever s
            s = signs(b, g_noise).numpy().reshape(-1, *([1] * len(shape)))
            lq_m, err_m = _reverse(m, -phi, fs, g_probe, drift, path, mean)
            lq, err = log_q(lq, lq_m, err, err_m)
            phi = s * phi
        parts.append((phi, lq, err))
        done += b
        _tick(bar, b)
    _close(bar)
    return _cat(parts)


def _as_phi(model, phi):
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim < 2:
        raise ParameterError("configurations must have shape (n, *lattice)")
    shape = model.check_shape(phi.shape[1:])
    if not np.isfinite(phi).all():
        raise ParameterError("configurations contain NaN or inf")
    return phi, shape


def log_prob(model, phi, fs: FlowSettings = FlowSettings(), seed: int = 0, progress: bool | None = None,
             posterior=None):
    """(log q, standard error) of each configuration in ``phi`` (n, *shape) (reverse flow); with
    ``posterior``, the density of the posterior proposals of :func:`sample`."""
    phi, shape = _as_phi(model, phi)
    m = _model(model, fs)
    sign = _sign(model, fs, posterior)
    _, g_probe = _gens(seed)
    drift, path, mean = _generation(m, shape, posterior)
    parts = []
    bar = progress_bar(progress, len(phi), "log q")
    for lo in range(0, len(phi), fs.batch_size):
        batch = phi[lo:lo + fs.batch_size]
        lq, err = _reverse(m, batch, fs, g_probe, drift, path, mean)
        if sign:
            lq_m, err_m = _reverse(m, -batch, fs, g_probe, drift, path, mean)
            lq, err = log_q(lq, lq_m, err, err_m)
        parts.append((batch, lq, err))
        _tick(bar, len(batch))
    _close(bar)
    p = _cat(parts)
    return p.log_q, p.log_q_error


def _sign(model, fs, posterior) -> bool:
    return use_sign(model, fs.z2, 0.0 if posterior is None else posterior.h)


def _reverse(m, phi, fs, g_probe, drift, path, mean):
    """(log q, its standard error) of configurations ``phi`` (physical units) by the reverse flow."""
    x = m.to_normalised(torch.from_numpy(np.ascontiguousarray(phi))).unsqueeze(1).to(m.device, m.dtype)
    _, lq, err = _to_phys(m, _flow(m, path, x, fs, "reverse", g_probe, drift, mean))
    return lq, err


def _masks(unknown, phi, shape):
    u = np.asarray(unknown, dtype=bool)
    if u.shape == tuple(shape):
        return np.broadcast_to(u, (len(phi), *shape))
    if u.shape == (len(phi), *shape):
        return u
    raise ParameterError(f"unknown-site mask has shape {u.shape}; expected {tuple(shape)} or {(len(phi), *shape)}")


def _inpaint_flow(model, phi, unknown, fs, seed, direction, progress):
    from ..interpolant.paths import InpaintPath

    phi, shape = _as_phi(model, phi)
    masks = _masks(unknown, phi, shape)
    if not masks.reshape(len(phi), -1).any(1).all():
        raise ParameterError("every configuration needs at least one unknown site")
    m = _model(model, fs)
    g_noise, g_probe = _gens(seed)
    parts = []
    bar = progress_bar(progress, len(phi), "block")
    for lo in range(0, len(phi), fs.batch_size):
        xb = m.to_normalised(torch.from_numpy(phi[lo:lo + fs.batch_size])).unsqueeze(1)
        mk = torch.from_numpy(np.ascontiguousarray(masks[lo:lo + fs.batch_size]))
        path = InpaintPath(mk, batched=True)
        if direction == "forward":
            z = torch.randn(xb.shape, generator=g_noise, dtype=torch.float64)
            x_start = path.start(z, xb.double())
        else:
            x_start = xb
        res = _flow(m, path, x_start.to(m.device, m.dtype), fs, direction, g_probe)
        ph, lq, err = _to_phys(m, res)
        if direction == "forward":
            keep = ~masks[lo:lo + fs.batch_size]
            ph[keep] = phi[lo:lo + fs.batch_size][keep]         # bit-exact rest (float32 round trips otherwise)
        parts.append((ph, lq, err))
        _tick(bar, len(xb))
    _close(bar)
    return _cat(parts)


def propose_block(model, phi, unknown, fs: FlowSettings = FlowSettings(), seed: int = 0,
                  progress: bool | None = None) -> Proposal:
    """Regenerate the ``unknown`` sites of each configuration (mask of the lattice shape or one per
    configuration) with everything else fixed; returns the new configurations and
    log q(x_B' | x_rest) in physical units."""
    return _inpaint_flow(model, phi, unknown, fs, seed, "forward", progress)


def conditional_log_prob(model, phi, unknown, fs: FlowSettings = FlowSettings(), seed: int = 0,
                         progress: bool | None = None):
    """(log q(x_B | x_rest), standard error) of the current values on the ``unknown`` sites B."""
    p = _inpaint_flow(model, phi, unknown, fs, seed, "reverse", progress)
    return p.log_q, p.log_q_error


def flow_proposal(model, path, x_start, fs: FlowSettings = FlowSettings(), seed: int = 0) -> Proposal:
    """The configurations that the forward flow of ``path`` carries the start states ``x_start``
    (normalised units, (n, 1, *shape)) to, in physical units, with the log-density of their moving
    coordinates (the family's, given the pinned ones; THEORY.md 6), in one batch."""
    m = _model(model, fs)
    _, g_probe = _gens(seed)
    return Proposal(*_to_phys(m, _flow(m, path, x_start.to(m.device, m.dtype), fs, "forward", g_probe)))


def _tick(bar, n):
    if bar is not None:
        bar.update(n)


def _close(bar):
    if bar is not None:
        bar.close()
