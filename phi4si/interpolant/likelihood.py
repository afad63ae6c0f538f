"""Log-density of what the flow generates: the ODE integrated together with its divergence
(THEORY.md section 6).

Along a path s -> a(s) the probability-flow ODE dX/ds = v(s, X) = alpha(da/ds) b(X, a(s)) carries
the law of X(0) to the law of X(1), and the instantaneous change of variables gives

    log q_1(X(1)) = log q_0(X(0)) - int_0^1 div v(s, X(s)) ds,
    div v = sum_x (da_x/ds) d b_x / d x_x              (Hadamard family, v_x = da_x b_x).

Every path used here starts at a = 1 on the sites that move (they are pure noise, q_0 = N(0, Id)
there) and ends at a = 0 everywhere; sites that never move are conditioned on (their a stays 0).
Families diagonal in another orthonormal basis T (alpha(a) = T^T diag(a) T: Haar, the real Fourier basis)
are integrated in the coordinates c = T x, where the flow is the Hadamard one with drift T b and the
sum above runs over coordinates; |det T| = 1, so log q is the same in sites (THEORY.md 6).

So one routine gives

* the model density log q(x) of a generated configuration (generation path, forward: noise -> x),
* log q(x) of *any* configuration (same path, reverse: x -> noise), and
* the conditional log q(x_B | x_rest) of a block B under the inpainting path (only B moves).

Divergence: ``"colored"`` (the default of :mod:`phi4si.model.density`) splits Rademacher probes by a
colouring of the lattice (sites equal modulo ``period`` share a colour, one probe per colour and
draw): the estimate is unbiased and its variance comes only from Jacobian entries between sites at
least ``period`` apart, which are small for drifts of local fields; it costs ``probes`` x
``period``^d passes (16 in 2-d with period 4) whatever the volume, and falls back to the exact trace
when that is not cheaper.  ``"exact"`` takes the diagonal of the Jacobian of b by automatic differentiation,
one copy of the batch per moving site (``max_batch`` bounds the copies evaluated together), so it
costs ~(number of moving sites) network passes: cheap for blocks, fine for small lattices.
``"hutchinson"`` estimates it as E_eps[eps^T (dv/dx) eps] with Rademacher probes on the moving
sites (``probes`` per step, fresh ones every step, the same within a Runge-Kutta step): unbiased
for the integral, cost ~``probes`` passes, with a variance that the returned ``div_error``
(the standard error over probes, added in quadrature over steps; NaN with one probe) quantifies.

Quadrature of the divergence integral (``quadrature``): ``"stages"`` integrates it with the same
Runge-Kutta tableau as X (Euler, Heun, RK4), so X(1) and log q(X(1)) come from one integration and
the divergence is taken at every stage (4 per RK4 step).  ``"gauss2"`` (``"gauss1"``) takes it at the
2 (1) Gauss-Legendre points of each step instead, on the cubic Hermite interpolant of the trajectory
between the step's ends (from X and v at both ends: one extra network pass per step):

    int_{s_k}^{s_k+h} div v ds ~ h sum_j w_j div v(s_k + theta_j h, X_H(theta_j)),
    X_H(t) = (2t^3 - 3t^2 + 1) X_k + (t^3 - 2t^2 + t) h v_k + (3t^2 - 2t^3) X_k+1 + (t^3 - t^2) h v_k+1,

with (theta, w) = (1/2 -+ sqrt(3)/6, 1/2) for gauss2 and (1/2, 1) for gauss1.  The divergence is
the expensive part (``probes`` x ``period``^d passes against one for v), so gauss2 costs about half
of ``stages`` with RK4 at the same order (4: the Hermite interpolant's error is O(h^4), the rule's
O(h^4) per unit time); X itself, the generated configuration, is the same bits under every
quadrature.  The Gauss points lie inside the steps, so a kink of the path at a step's end is harmless.
Forward and reverse agree to the solver's order.

>>> import torch
>>> from phi4si.interpolant.oracle import free_field_oracle
>>> from phi4si.interpolant.paths import GenerationPath
>>> orc, path = free_field_oracle((4,), 1.0), GenerationPath((4,))
>>> z = torch.randn(2, 1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> res = flow_log_density(orc, path, z, steps=20, method="rk4")
>>> res.x.shape, res.log_q.shape
(torch.Size([2, 1, 4]), torch.Size([2]))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import ParameterError
from .drifts import Drift
from .paths import Path, time_grid

__all__ = ["DIVERGENCES", "QUADRATURES", "FlowResult", "hermite", "colored_probes", "divergence", "flow_log_density", "rademacher", "standard_normal_log_density"]

DIVERGENCES = ("exact", "hutchinson", "colored")
QUADRATURES = ("stages", "gauss1", "gauss2")
_GAUSS = {"gauss1": ((0.5, 1.0),),
          "gauss2": ((0.5 - math.sqrt(3.0) / 6.0, 0.5), (0.5 + math.sqrt(3.0) / 6.0, 0.5))}


def hermite(x0: torch.Tensor, x1: torch.Tensor, v0: torch.Tensor, v1: torch.Tensor, h: float, t: float):
    """The cubic Hermite interpolant at fraction ``t`` of a step of length ``h`` (signed) from the
    states ``x0``, ``x1`` and velocities ``v0``, ``v1`` at its ends: exact for cubic trajectories.

    >>> x = hermite(torch.tensor(0.0), torch.tensor(1.0), torch.tensor(0.0), torch.tensor(3.0), 1.0, 0.5)
    >>> float(x)          # s^3 on [0, 1]: 1/8
    0.125
    """
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * x0 + (t3 - 2 * t2 + t) * h * v0 + (3 * t2 - 2 * t3) * x1
            + (t3 - t2) * h * v1)


@dataclass
class FlowResult:
    """Outcome of :func:`flow_log_density` (all per sample, in the drift's coordinates).

    ``x``: the end state (data end for ``forward``, noise end for ``reverse``); ``log_q``: model
    log-density of the data-end configuration (conditional on the sites that never move);
    ``log_q0``: the reference N(0, Id) log-density of the noise-end state on the moving sites;
    ``div_integral``: int_0^1 div v ds; ``div_error``: its Hutchinson standard error (0 if exact);
    ``noise``/``data``: the noise-end and data-end states; ``n_moving``: moving sites per sample.
    """

    x: torch.Tensor
    log_q: torch.Tensor
    log_q0: torch.Tensor
    div_integral: torch.Tensor
    div_error: torch.Tensor
    noise: torch.Tensor
    data: torch.Tensor
    n_moving: torch.Tensor


def standard_normal_log_density(z: torch.Tensor, sites: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, Id) over the boolean ``sites`` (broadcast to z), per sample."""
    sites = sites.expand_as(z).to(z.dtype)
    n = sites.flatten(1).sum(1)
    return -0.5 * (z * z * sites).flatten(1).sum(1) - 0.5 * n * math.log(2 * math.pi)


def rademacher(probes: int, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``probes`` Rademacher (+-1) fields shaped like ``x``: (probes, *x.shape)."""
    if int(probes) < 1:
        raise ParameterError(f"probes must be >= 1, got {probes}")
    r = torch.randint(0, 2, (int(probes), *x.shape), generator=generator)
    return (2 * r - 1).to(device=x.device, dtype=x.dtype)


def colored_probes(repeats: int, period: int, x: torch.Tensor, generator: torch.Generator | None = None):
    """Rademacher probes split by a colouring of the lattice: sites with equal coordinates modulo
    ``period`` share a colour; for each of ``repeats`` sign draws there is one probe per colour
    (zero off its colour).  Shape (repeats * period^d, *x.shape), colours fastest.

    Summed over the colours of one draw, eps_c^T J eps_c is an unbiased estimate of tr J whose
    variance comes only from pairs of sites of equal colour, i.e. at least ``period`` apart.
    """
    shape = x.shape[2:]
    if int(period) < 1 or any(int(period) > L for L in shape):
        raise ParameterError(f"colour period must be in [1, min lattice side], got {period}")
    grids = torch.meshgrid(*[torch.arange(L) % int(period) for L in shape], indexing="ij")
    colour = torch.zeros(shape, dtype=torch.long)
    for g in grids:
        colour = colour * int(period) + g
    n_col = int(period) ** len(shape)
    onehot = torch.stack([(colour == c) for c in range(n_col)]).to(x.dtype)          # (n_col, *shape)
    signs = rademacher(repeats, x, generator)                                         # (R, B, 1, *shape)
    eps = signs[:, None] * onehot[None, :, None, None].to(x.device)                   # (R, n_col, B, 1, *shape)
    return eps.reshape(int(repeats) * n_col, *x.shape)


def _copies(x: torch.Tensor, k: int) -> torch.Tensor:
    """k detached copies of the batch x stacked along the batch axis (k blocks of B), with grad."""
    return x.detach().repeat(k, *([1] * (x.ndim - 1))).requires_grad_(True)


def _tile(t: torch.Tensor, n: int) -> torch.Tensor:
    """Repeat a batch (B, ...) n times along the batch axis (copies stacked as n blocks of B)."""
    return t.repeat(n, *([1] * (t.ndim - 1))) if t.shape[0] != 1 else t


def divergence(fn: Callable, x: torch.Tensor, weight: torch.Tensor, method: str = "exact",
               eps: torch.Tensor | None = None, max_batch: int = 4096, groups: int = 1):
    """b = fn(x) and estimates of sum_x weight_x d b_x / d x_x per sample (weight = da/ds, zero on
    sites that do not move).

    Returns ``(b, est)`` with ``est`` of shape (P, B): the exact value (P = 1) for ``exact``, one
    estimate eps^T diag(weight) (db/dx) eps per Rademacher probe ``eps`` (P, *x.shape) for
    ``hutchinson``; for ``colored`` the probes come in consecutive groups of ``groups`` (one per
    colour, :func:`colored_probes`) whose estimates are summed.  ``fn`` must treat batch entries independently (true for the phi4si networks in
    eval mode and for the oracles) and accept batches that tile ``x`` (see :func:`_tile`).
    """
    if method not in DIVERGENCES:
        raise ParameterError(f"unknown divergence {method!r} (choose from {DIVERGENCES})")
    B = x.shape[0]
    w = weight.expand_as(x)
    flat_w = w.reshape(B, -1)
    with torch.no_grad():
        b = fn(x)
    active = (flat_w != 0).any(0).nonzero().flatten()      # sites moving in some sample
    if active.numel() == 0:
        P = 1 if eps is None else eps.shape[0]
        return b, torch.zeros(P, B, dtype=x.dtype, device=x.device)
    per = max(1, int(max_batch) // max(B, 1))               # copies of the batch per network call
    if method == "exact":
        div = torch.zeros(B, dtype=x.dtype, device=x.device)
        for lo in range(0, active.numel(), per):
            idx = active[lo:lo + per]
            k = idx.numel()
            xr = _copies(x, k)
            pick = idx.view(k, 1, 1).expand(k, B, 1)
            with torch.enable_grad():
                y = fn(xr).reshape(k, B, -1)
                (g,) = torch.autograd.grad(y.gather(2, pick).sum(), xr)      # copy k: d b_{i_k} / d x
            g = g.reshape(k, B, -1).gather(2, pick).squeeze(2)               # (k, B): d b_i / d x_i
            div = div + (g * flat_w[:, idx].T).sum(0)
        return b, div[None]
    if eps is None:
        raise ParameterError("the Hutchinson divergence needs probes eps (see rademacher, colored_probes)")
    P = eps.shape[0]
    out = []
    for lo in range(0, P, per):
        hi = min(P, lo + per)
        k = hi - lo
        xc = _copies(x, k)
        e = (eps[lo:hi] * (w != 0).to(x.dtype)).reshape(k * B, *x.shape[1:])
        with torch.enable_grad():
            y = fn(xc)
            (g,) = torch.autograd.grad((y * e * _tile(w, k)).sum(), xc)
        out.append((g * e).reshape(k, B, -1).sum(2))
    est = torch.cat(out)
    if method == "colored":
        est = est.reshape(P // int(groups), int(groups), B).sum(1)
    return b, est


def _check_path(path: Path, x: torch.Tensor):
    if tuple(x.shape[2:]) != tuple(path.shape):
        raise ParameterError(f"field shape {tuple(x.shape[2:])} does not match the path's lattice {path.shape}")
    if not torch.isfinite(x).all():
        raise ParameterError("the state contains NaN or inf")
    pinned = path.pinned()
    a0, a1 = path.a(0.0), path.a(1.0)
    if bool((a1 != 0).any()):
        raise ParameterError("a log-density needs a path that ends at the data end (a(1) = 0 on every site)")
    moving = ~pinned
    start = float(getattr(path, "a0", 1.0))              # StartAt paths: moving sites start at a0
    if bool(((a0 != start) & moving.expand_as(a0)).any()):
        raise ParameterError("a log-density needs a path whose moving sites all start at the same time a(0) = a0 "
                         "(1 = pure noise, or a StartAt path)")
    return pinned.to(x.device), moving.to(x.device), start


def flow_log_density(drift: Drift, path: Path, x_start: torch.Tensor, steps: int = 50, method: str = "rk4",
                     direction: str = "forward", divergence_method: str = "exact", probes: int = 1,
                     generator: torch.Generator | None = None, grid_power: float = 1.0,
                     max_batch: int = 4096, period: int = 4, start_mean=0.0,
                     quadrature: str = "stages") -> FlowResult:
    """Integrate X and log q together along ``path``.

    The start law on the moving sites is N(0, Id) for paths from the noise end, and
    N((1 - a0) m, a0^2 Id) for a :class:`~phi4si.interpolant.paths.StartAt` path from a0 < 1 started at
    a0 z + (1 - a0) m (``start_mean`` m, a number or a field), as posterior paths are.

    ``direction="forward"``: ``x_start`` is the state at s = 0 (noise on the moving sites, data on
    the pinned ones); returns the generated configuration and its log q.  ``direction="reverse"``:
    ``x_start`` is a configuration (s = 1); returns its noise-end state and log q of ``x_start``.
    ``steps`` per path segment, ``method`` in 'euler', 'heun', 'rk4'; see the module docstring for
    ``divergence_method``, ``probes``, ``max_batch`` and ``quadrature``.
    """
    from .integrate import SOLVERS, rk_step, step_ends

    if method not in SOLVERS:
        raise ParameterError(f"unknown solver {method!r} (choose from {SOLVERS})")
    if direction not in ("forward", "reverse"):
        raise ParameterError(f"direction must be 'forward' or 'reverse', got {direction!r}")
    if divergence_method not in DIVERGENCES:
        raise ParameterError(f"unknown divergence {divergence_method!r} (choose from {DIVERGENCES})")
    if quadrature not in QUADRATURES:
        raise ParameterError(f"unknown quadrature {quadrature!r} (choose from {QUADRATURES})")
    pinned, moving, a_start = _check_path(path, x_start)
    grid = time_grid(path, steps, grid_power)
    if direction == "reverse":
        grid = grid[::-1]
    fam = drift.family
    T, Tt = fam.basis, fam.unbasis          # the family's orthonormal coordinates (sites for Hadamard)
    dev, dt = x_start.device, x_start.dtype
    x_fixed = T(x_start.detach())
    x = x_fixed.clone()
    B = x.shape[0]
    n_moving_max = int((~pinned).expand_as(x).flatten(1).sum(1).max()) if x.numel() else 0
    if divergence_method == "colored" and int(probes) * int(period) ** len(path.shape) >= n_moving_max:
        divergence_method = "exact"          # as many passes as moving sites: the exact trace is cheaper
    use_probes = divergence_method in ("hutchinson", "colored")
    groups = int(period) ** len(path.shape) if divergence_method == "colored" else 1
    integral = torch.zeros(B, dtype=dt, device=dev)
    var_sum = torch.zeros(B, dtype=dt, device=dev)

    def f(s, y, eps):
        a = path.a(s).to(device=dev, dtype=dt)
        da = path.da(s).to(device=dev, dtype=dt)
        b, est = divergence(lambda z: T(drift.b(Tt(z), _tile(a, z.shape[0] // a.shape[0]))), y, da,
                            divergence_method, eps, max_batch, groups)
        return da * b, est

    def v(s, y):                     # the velocity alone (same bits as f's)
        a = path.a(s).to(device=dev, dtype=dt)
        with torch.no_grad():
            b = T(drift.b(Tt(y), a))
        return path.da(s).to(device=dev, dtype=dt) * b

    def gauss_step(sa, sb, x, eps):  # X by the RK tableau, the divergence at the Gauss points
        first = []

        def g(s, y):
            out = v(s, y)
            if not first:
                first.append(out)
            return out, None

        x_new, _ = rk_step(g, sa, sb, x, method)
        x_new = torch.where(pinned, x_fixed, x_new)
        h = sb - sa
        v1 = v(step_ends(sa, sb)[1], x_new)
        est = 0.0
        for theta, w in _GAUSS[quadrature]:
            est = est + (h * w) * f(sa + theta * h, hermite(x, x_new, first[0], v1, h, theta), eps)[1]
        return x_new, est

    n = len(grid) - 1
    for k in range(n):
        sb = float(grid[k + 1])
        fam.check_diagonal(path.a(float(grid[k])))
        # one set of probes per step, shared by its stages (or Gauss points)
        eps = (None if not use_probes else colored_probes(probes, period, x, generator)
               if divergence_method == "colored" else rademacher(probes, x, generator))
        if quadrature == "stages":
            x, est = rk_step(lambda s, y: f(s, y, eps), float(grid[k]), sb, x, method)
        else:
            x, est = gauss_step(float(grid[k]), sb, x, eps)
        integral = integral + est.mean(0)
        if use_probes and est.shape[0] > 1:       # probes are independent between steps: variances add
            var_sum = var_sum + est.var(0) / est.shape[0]
        elif use_probes:
            var_sum = var_sum + float("nan")
        x = torch.where(pinned, x_fixed, x)
        if not torch.isfinite(x).all() or not torch.isfinite(integral).all():
            raise FloatingPointError(f"the integration produced NaN/inf at s = {sb:.4g} (step {k + 1}/{n}); "
                                     "use more steps or check the model")
    n_moving = moving.expand_as(x).flatten(1).sum(1)
    m = T(torch.as_tensor(start_mean).to(device=dev, dtype=dt).expand_as(x_start))   # start N((1 - a0) m, a0^2)
    noise_c = x_fixed if direction == "forward" else x
    log_q0 = standard_normal_log_density((noise_c - (1 - a_start) * m) / a_start, moving) \
        - n_moving.to(dt) * math.log(a_start)
    x = Tt(x)
    if direction == "forward":
        noise, data, div_int = x_start.detach(), x, integral
    else:
        noise, data, div_int = x, x_start.detach(), -integral
    err = torch.zeros_like(var_sum) if divergence_method == "exact" else var_sum.clamp_min(0).sqrt()
    return FlowResult(x=x, log_q=log_q0 - div_int, log_q0=log_q0, div_integral=div_int, div_error=err,
                      noise=noise, data=data, n_moving=n_moving)
