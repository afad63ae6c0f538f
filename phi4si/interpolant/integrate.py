"""ODE and SDE integrators for transport along a path (THEORY.md 4.3).

    ODE:  dX/ds = alpha(da/ds) b(X, a(s))                         (= alpha' eta0 + beta' eta1)
    SDE:  dX = [alpha(da/ds) b - eps_s alpha^-1 eta0] ds + sqrt(2 eps_s) dW,   eta0 = X + beta b

The SDE's diffusion eps_s >= 0 is free after training (eps = 0 is the ODE).  phi4si uses
eps_s = c(s) a(s) on the sites that move (da != 0) and 0 elsewhere, so that eps alpha^-1 eta0 =
c eta0 stays finite at a -> 0, data/pinned sites (a = 0 or da = 0) are untouched, and the noise
sqrt(2 c a ds) vanishes at the data end.  ``c`` is a number or a callable c(s).

Solvers of the ODE (``method`` of :func:`solve`; N = steps per path segment, "evals" = calls of
the drift per step):

* ``SOLVERS`` (explicit Runge-Kutta, :func:`rk_step`): 'euler' (order 1, 1 eval), 'heun' (2, 2
  evals), 'rk4' (4, 4 evals).  Only these also integrate an augmented quantity (log-densities).
* ``MULTISTEP`` (one eval per step, history restarted at every breakpoint of the path, where the
  velocity has a kink):

  - 'ab2', 'ab3': Adams-Bashforth on dX/ds with variable-step weights (the integral over the step
    of the Lagrange polynomial through the last 2 or 3 velocities of the segment; the grid is
    non-uniform for grid_power != 1).  Start of each segment: 'ab2' takes one Euler step (AB1);
    'ab3' takes one Heun step (2 evals, so N + 1 evals per segment) then AB2, keeping order 3.
  - 'ddim' (order 1): with the predictions eta0 = x + beta(a) b, eta1 = x - alpha(a) b of one
    evaluation at (x, a), jump to x' = alpha(a') eta0 + beta(a') eta1 = x + alpha(a' - a) b.  It is
    exact when the predictions are constant along the trajectory (a point-mass target); on a path
    linear in s it coincides with 'euler', on curved paths it steps exactly in ``a``.
  - 'ddim2' (order 2, DPM-Solver++(2M)-like): per site/mode dX/da = (X - eta1)/a; the linear part is
    integrated exactly and eta1 is extrapolated linearly in a from the previous node a_ of the
    segment, D = (eta1 - eta1_)/(a - a_):  x' = ddim(x) - alpha(phi / (a - a_)) (eta1 - eta1_),
    phi = a' log(a'/a) + a - a' (-> a at a' = 0).  The first step of a segment is 'ddim'.  On a
    grid uniform near a = 0 the weight 1/a^2 of the exact integral gives h^2 log(1/h) (measured
    slope ~1.85 on the free field); ``grid_power`` 2 gives a clean order 2.

  The DDIM steps apply elementwise functions of ``a`` through the family (alpha(g(a)) = g(alpha)),
  so they hold for any family diagonal per site or per Fourier mode (Hadamard, FourierDiagonal).

Euler-Maruyama for the SDE.  The grid (:func:`~phi4si.interpolant.paths.time_grid`) contains
every breakpoint of the path.  Pinned sites are re-set to their start value after every step, so
observed data stay *exactly* fixed.

>>> import torch
>>> from phi4si.interpolant.oracle import free_field_oracle
>>> from phi4si.interpolant.paths import GenerationPath
>>> orc, path = free_field_oracle((4,), 1.0), GenerationPath((4,))
>>> x0 = torch.randn(3, 1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
>>> solve(orc, path, x0, steps=8, method="rk4").shape
torch.Size([3, 1, 4])
>>> ref = solve(orc, path, x0, steps=64, method="rk4")
>>> err = {m: float((solve(orc, path, x0, steps=16, method=m) - ref).abs().max()) for m in ODE_SOLVERS}
>>> err["ab3"] < err["ab2"] < err["ddim"]        # 16 evaluations each (ab3: 17)
True
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import numpy.polynomial.polynomial as P
import torch

from ..errors import ParameterError
from .drifts import Drift
from .paths import Path, time_grid

__all__ = ["SOLVERS", "MULTISTEP", "ODE_SOLVERS", "rk_step", "solve", "solve_sde", "skip_sde_noise", "step_ends", "velocity"]

SOLVERS = ("euler", "heun", "rk4")                # Runge-Kutta: also for augmented ODEs (rk_step)
MULTISTEP = ("ab2", "ab3", "ddim", "ddim2")       # one drift evaluation per step
ODE_SOLVERS = SOLVERS + MULTISTEP


def velocity(drift: Drift, path: Path, s: float, x: torch.Tensor) -> torch.Tensor:
    """dX/ds of the probability-flow ODE at (s, x)."""
    a = path.a(s).to(device=x.device, dtype=x.dtype)
    da = path.da(s).to(device=x.device, dtype=x.dtype)
    return drift.family.velocity(da, drift.b(x, a))


def _check(path, x, steps):
    if tuple(x.shape[2:]) != tuple(path.shape):
        raise ParameterError(f"field shape {tuple(x.shape[2:])} does not match the path's lattice {path.shape}")
    if not torch.isfinite(x).all():
        raise ParameterError("the start state contains NaN or inf")
    if int(steps) < 1:
        raise ParameterError(f"steps must be >= 1, got {steps}")


def _pinning(drift, path, x_start):
    """(family, mask) of the path's pinned coordinates (sites, modes or coefficients), or None."""
    pinned = path.pinned().to(x_start.device)
    return (drift.family, pinned) if bool(pinned.any()) else None


def _finish(x, x_start, pinned, grid_s, callback, k, n):
    if pinned is not None:
        x = pinned[0].pin(x, x_start, pinned[1])
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"the integration produced NaN/inf at s = {grid_s:.4g} (step {k + 1}/{n}); "
                                 "use more steps, a lower-order solver or check the model")
    if callback is not None:
        callback(k + 1, n)
    return x


def step_ends(sa: float, sb: float) -> tuple:
    """The times just inside a step's two ends (1e-9 of the step in from each), where a kink of the
    path at sa or sb takes this step's derivative.

    >>> step_ends(0.0, 1.0)
    (1e-09, 0.999999999)
    """
    lo, hi = min(sa, sb), max(sa, sb)
    return (min(max(sa, lo + 1e-9 * (hi - lo)), hi - 1e-9 * (hi - lo)),
            min(max(sb, lo + 1e-9 * (hi - lo)), hi - 1e-9 * (hi - lo)))


def rk_step(f: Callable, sa: float, sb: float, x: torch.Tensor, method: str):
    """One explicit Runge-Kutta step of dX/ds = v from s = sa to sb (sb < sa integrates backwards).

    ``f(s, x)`` returns ``(v, aux)``; ``aux`` (a tensor, or None) is integrated with the same
    tableau, so an augmented quantity (e.g. the divergence of v) rides along with X.  Stages at the
    step's ends are evaluated just inside it, so a kink of the path at sa or sb uses this step's
    derivative.  Returns ``(x_new, aux_increment)`` (the increment is None when ``aux`` is).
    """
    h = sb - sa
    start, end = step_ends(sa, sb)

    def comb(c, *terms):                       # c * (sum of weight * aux) in the tableau's order
        if terms[0][1] is None:
            return None
        total = terms[0][1]
        for w, d in terms[1:]:
            total = total + (d if w == 1 else w * d)
        return c * total

    if method == "euler":
        k1, d1 = f(start, x)
        return x + h * k1, comb(h, (1, d1))
    if method == "heun":
        k1, d1 = f(start, x)
        k2, d2 = f(end, x + h * k1)
        return x + 0.5 * h * (k1 + k2), comb(0.5 * h, (1, d1), (1, d2))
    mid = 0.5 * (sa + sb)
    k1, d1 = f(start, x)
    k2, d2 = f(mid, x + 0.5 * h * k1)
    k3, d3 = f(mid, x + 0.5 * h * k2)
    k4, d4 = f(end, x + h * k3)
    return x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4), comb(h / 6.0, (1, d1), (2, d2), (2, d3), (1, d4))


def _ab_weights(nodes, t_new: float) -> list:
    """Variable-step Adams-Bashforth weights: w_j = integral from nodes[-1] to t_new of the Lagrange
    basis polynomial of node j (so x' = x + sum_j w_j v_j is exact for polynomial v of degree < len)."""
    t0 = nodes[-1]
    h = t_new - t0
    tau = [(t - t0) / h for t in nodes]                     # scaled: the step is [0, 1]
    out = []
    for j, tj in enumerate(tau):
        others = [tm for m, tm in enumerate(tau) if m != j]
        c = P.polyint(P.polyfromroots(others) / np.prod([tj - tm for tm in others]))
        out.append(h * float(P.polyval(1.0, c) - P.polyval(0.0, c)))
    return out


def _adams(drift, path, x_start, grid, steps, order, pinned, callback):
    """Adams-Bashforth of ``order`` 2 or 3 (see the module docstring for the start of a segment)."""
    x, n = x_start.clone(), len(grid) - 1
    hist: list = []                                         # (s, v) of this segment, oldest first
    for k in range(n):
        sa, sb = float(grid[k]), float(grid[k + 1])
        h = sb - sa
        if k % steps == 0:                                  # a breakpoint: the velocity has a kink
            hist = []
        v = velocity(drift, path, sa + 1e-9 * h if not hist else sa, x)   # just inside the segment
        if order == 3 and not hist:                         # Heun start (local error O(h^3))
            v2 = velocity(drift, path, sb - 1e-9 * h, x + h * v)
            hist = [(sa, v)]
            x_new = x + (0.5 * h) * (v + v2)
        else:
            hist = (hist + [(sa, v)])[-order:]
            x_new = x
            for w, (_, vj) in zip(_ab_weights([t for t, _ in hist], sb), hist):
                x_new = x_new + w * vj
        x = _finish(x_new, x_start, pinned, sb, callback, k, n)
    return x


def _ddim2_coef(a_prev, a, a_next):
    """phi(a, a') / (a - a_prev) elementwise, phi = a' log(a'/a) + a - a' = integral over the step of
    the linear correction of eta1 (see the module docstring); 0 on sites/modes that do not move."""
    one = torch.ones_like(a)
    pos = a > 0
    d = a_next - a
    lg = torch.where(pos & (a_next > 0), torch.log1p(d / torch.where(pos, a, one)), torch.zeros_like(a))
    phi = torch.where(pos, a_next * lg - d, torch.zeros_like(a))
    den = a - a_prev
    moving = den != 0
    return torch.where(moving, phi / torch.where(moving, den, one), torch.zeros_like(a))


def _ddim(drift, path, x_start, grid, steps, second, pinned, callback):
    """'ddim' (``second`` False) or 'ddim2' steps in the time ``a`` of the path."""
    fam = drift.family
    x, n = x_start.clone(), len(grid) - 1
    prev = None                                             # (a, eta1) at the last node of this segment
    for k in range(n):
        sa, sb = float(grid[k]), float(grid[k + 1])
        if k % steps == 0:
            prev = None
        a = path.a(sa).to(device=x.device, dtype=x.dtype)
        a_next = path.a(sb).to(device=x.device, dtype=x.dtype)
        b = drift.b(x, a)
        eta0, eta1 = x + fam.beta(a, b), x - fam.alpha(a, b)
        x_new = fam.interpolate(eta0, eta1, a_next)          # alpha(a') eta0 + beta(a') eta1
        if second and prev is not None:
            x_new = x_new - fam.alpha(_ddim2_coef(prev[0], a, a_next), eta1 - prev[1])
        prev = (a, eta1)
        x = _finish(x_new, x_start, pinned, sb, callback, k, n)
    return x


@torch.no_grad()
def solve(drift: Drift, path: Path, x_start: torch.Tensor, steps: int = 50, method: str = "heun",
          grid_power: float = 1.0, callback: Callable | None = None) -> torch.Tensor:
    """Integrate the ODE from s = 0 (state ``x_start``, e.g. ``path.start(noise, data)``) to s = 1.

    ``steps`` per path segment; ``method`` in :data:`ODE_SOLVERS` (Runge-Kutta 'euler', 'heun',
    'rk4'; one evaluation per step 'ab2', 'ab3', 'ddim', 'ddim2'); returns X(1).
    ``callback(k, n)`` is called after each step (progress bars).
    """
    if method not in ODE_SOLVERS:
        raise ParameterError(f"unknown solver {method!r} (choose from {ODE_SOLVERS})")
    _check(path, x_start, steps)
    grid = time_grid(path, steps, grid_power)
    pinned = _pinning(drift, path, x_start)
    steps = int(steps)
    if method in ("ab2", "ab3"):
        return _adams(drift, path, x_start, grid, steps, int(method[2]), pinned, callback)
    if method in ("ddim", "ddim2"):
        return _ddim(drift, path, x_start, grid, steps, method == "ddim2", pinned, callback)
    x = x_start.clone()
    n = len(grid) - 1
    f = lambda s, y: (velocity(drift, path, s, y), None)  # noqa: E731
    for k in range(n):
        x, _ = rk_step(f, float(grid[k]), float(grid[k + 1]), x, method)
        x = _finish(x, x_start, pinned, float(grid[k + 1]), callback, k, n)
    return x


@torch.no_grad()
def solve_sde(drift: Drift, path: Path, x_start: torch.Tensor, steps: int = 100, eps=1.0,
              generator: torch.Generator | None = None, grid_power: float = 1.0,
              callback: Callable | None = None) -> torch.Tensor:
    """Euler-Maruyama for the SDE with eps_s = c(s) a(s) on moving sites (``eps`` = c or c(s)).

    The last step of each segment reaches a = 0 on the moving sites, where the noise vanishes.
    """
    _check(path, x_start, steps)
    c = eps if callable(eps) else (lambda s, _c=float(eps): _c)
    if not callable(eps) and not (np.isfinite(float(eps)) and float(eps) >= 0):
        raise ParameterError(f"eps must be a finite number >= 0, got {eps}")
    grid = time_grid(path, steps, grid_power)
    pinned = _pinning(drift, path, x_start)
    fam = drift.family
    x = x_start.clone()
    n = len(grid) - 1
    for k in range(n):
        s0, s1 = float(grid[k]), float(grid[k + 1])
        h = s1 - s0
        s = s0 + 1e-9 * h
        a = path.a(s).to(device=x.device, dtype=x.dtype)
        da = path.da(s).to(device=x.device, dtype=x.dtype)
        moving = (da != 0).to(x.dtype)
        cs = float(c(s))
        if cs < 0 or not np.isfinite(cs):
            raise ParameterError(f"eps schedule gave {cs} at s = {s:.4g}; it must be finite and >= 0")
        bx = drift.b(x, a)
        eta0 = x + fam.beta(a, bx)
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        x = (x + h * (fam.velocity(da, bx) - cs * moving * eta0)
             + np.sqrt(2.0 * cs * h) * fam.alpha((a * moving).clamp_min(0).sqrt(), noise))
        x = _finish(x, x_start, pinned, s1, callback, k, n)
    return x


def skip_sde_noise(path: Path, x_start: torch.Tensor, steps: int = 100, grid_power: float = 1.0,
                   generator: torch.Generator | None = None) -> None:
    """Advance ``generator`` past the noise :func:`solve_sde` would draw for ``x_start`` (one normal
    array of its shape and dtype per step of the grid), without solving: a process that leaves a
    batch to another (:mod:`phi4si.model.ranks`) keeps the one noise stream of a single process.

    >>> from phi4si.interpolant.oracle import free_field_oracle
    >>> from phi4si.interpolant.paths import GenerationPath
    >>> x0, path = torch.zeros(2, 1, 4, dtype=torch.float64), GenerationPath((4,))
    >>> g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    >>> _ = solve_sde(free_field_oracle((4,), 1.0), path, x0, steps=3, generator=g1)
    >>> skip_sde_noise(path, x0, steps=3, generator=g2)
    >>> bool(torch.equal(g1.get_state(), g2.get_state()))
    True
    """
    for _ in range(len(time_grid(path, steps, grid_power)) - 1):
        torch.randn(x_start.shape, generator=generator, dtype=x_start.dtype)
