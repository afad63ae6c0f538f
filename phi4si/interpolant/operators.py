"""Operator families of the interpolant I(alpha, beta) = alpha x0 + beta x1 (THEORY.md 4.1).

A family maps a real tensor ``a`` (the per-site or per-mode "time", same layout as the field,
shape ``(B, C_a, *spatial)`` broadcastable to ``(B, C, *spatial)``) to the two linear operators
alpha(a), beta(a).  Every family here but :class:`Corruption` has beta = Id - alpha, which makes the three drift
parametrisations convertible without any inversion (see :mod:`phi4si.interpolant.drifts`):

    x = alpha eta0 + beta eta1,  b = eta0 - eta1   =>   eta1 = x - alpha b,  eta0 = x + beta b

The trainer and the integrators only call ``alpha``/``beta``/``interpolate``/``velocity`` and
``features`` (what the network sees as its "a" input), so a new family needs no change there.

* :class:`Hadamard` - alpha = diag(a), beta = diag(1 - a) entrywise; a in [0,1]^V.  a_x = 1
  is pure noise at site x, a_x = 0 is data.  The scalar interpolant is a = t 1, block-constant
  interpolants are a constant on blocks (chosen by the training measure and the path, see
  :mod:`~phi4si.interpolant.measures` and :mod:`~phi4si.interpolant.paths`).
* :class:`FourierDiagonal` - alpha = F^-1 diag(a(p)) F, beta = Id - alpha, with ``a`` indexed by
  lattice momentum (FFT layout, a(p) = a(-p) so that the operators are real): multichannel
  denoising and scale-by-scale generation (coarse modes first).
* :class:`Haar` - alpha = H^T diag(a) H, H the orthonormal Haar wavelet transform: block averages are
  coordinates, so super-resolution (fine fields given their block averages) and coarse-to-fine
  generation are inpainting and sequential paths in wavelet coordinates (THEORY.md 8.2).
* :class:`Corruption` - the corruption channels of image restoration (THEORY.md 8.1): alpha = diag(sigma (1 - m) + m), beta = diag(1 - m) B_s, a Gaussian blur B_s of s pixels,
  noise of level sigma and missing pixels m.  Here beta is not Id - alpha: the family has no transport
  (``transports = False``); its models are trained on eta1 and used through
  :mod:`phi4si.tasks.restore`.

>>> import torch
>>> fam = Hadamard()
>>> x0, x1, a = torch.ones(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.25)
>>> float(fam.interpolate(x0, x1, a).mean())
0.25
"""

from __future__ import annotations

import math

import torch

from ..errors import ParameterError

__all__ = ["negated_momenta", "OperatorFamily", "Hadamard", "FourierDiagonal", "Corruption", "Haar", "family_from_dict"]


def negated_momenta(t: torch.Tensor, ndim: int) -> torch.Tensor:
    """t(-p) over the last ``ndim`` axes of an FFT-layout tensor: index i -> -i mod L along each.

    >>> negated_momenta(torch.tensor([0, 1, 2, 3]), 1)
    tensor([0, 3, 2, 1])
    """
    dims = tuple(range(-int(ndim), 0))
    return torch.roll(torch.flip(t, dims), (1,) * len(dims), dims) if dims else t


class OperatorFamily:
    """Base class: alpha(a), beta(a) = Id - alpha(a), linear in ``a``.

    Subclasses implement :meth:`alpha` (apply alpha(a) to a tensor).  Because alpha is linear
    in a, the path derivative is alpha'_s = alpha(da/ds) and beta'_s = -alpha(da/ds).
    """

    name = "base"
    transports = True        # beta = Id - alpha: the ODE/SDE of THEORY 4.3 and the b parametrisation apply
    a_channels = None        # channels of ``a`` the family needs (None: 1 or the field's, the U-Net default)

    def alpha(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def beta(self, a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """beta(a) v = v - alpha(a) v."""
        return v - self.alpha(a, v)

    def interpolate(self, x0: torch.Tensor, x1: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """I = alpha(a) x0 + beta(a) x1 = x1 + alpha(a)(x0 - x1)."""
        return x1 + self.alpha(a, x0 - x1)

    def velocity(self, da: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """ODE velocity alpha' eta0 + beta' eta1 = alpha(da)(eta0 - eta1) = alpha(da) b."""
        return self.alpha(da, b)

    def features(self, a: torch.Tensor) -> torch.Tensor:
        """What the network receives as its time input (default: ``a`` itself)."""
        return a

    def pin(self, x: torch.Tensor, x_start: torch.Tensor, pinned: torch.Tensor) -> torch.Tensor:
        """x with its pinned coordinates (``pinned``: a boolean ``a``-shaped mask, coordinates with a = 0 all
        along a path) reset to those of ``x_start``: x + alpha(1_pinned)(x_start - x), the projection onto the
        pinned coordinates of the family's basis (sites, Fourier modes, Haar coefficients)."""
        return x + self.alpha(pinned.to(x.dtype), x_start - x)

    def check_training(self, param: str, measure) -> "OperatorFamily":
        """Refuse a drift parametrisation or a training measure the family cannot use; returns the family."""
        if not self.transports and param != "eta1":
            raise ParameterError(f"the {self.name!r} family has no transport: train it on param='eta1', not {param!r}")
        if (self.a_channels or 1) != getattr(measure, "a_channels", 1):
            raise ParameterError(f"the {self.name!r} family needs a training measure over its "
                                 f"{self.a_channels or 1} coordinate channel(s); measure {measure.name!r} draws "
                                 f"{getattr(measure, 'a_channels', 1)}")
        return self

    def unet_overrides(self) -> dict:
        """U-Net settings the family imposes (its number of a-channels, if not the default)."""
        return {} if self.a_channels is None else {"a_channels": int(self.a_channels)}

    def loss_weight(self, a: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Weight of the training loss per coordinate of the family's basis (laid out like ``a``): 1 where the
        coordinate is not pinned data (a > 0)."""
        return (a > 0).to(like.dtype).expand_as(like)

    def residual_power(self, r: torch.Tensor) -> torch.Tensor:
        """|(T r)_c|^2 per coordinate c of the family's orthonormal basis T (sites: r^2), laid out like ``a``:
        the training loss is sum_c w_c |(T r)_c|^2 with w = :meth:`loss_weight`.  The weight must act in
        the basis the path's a lives in: a pinned coordinate's residual does not enter the velocity
        alpha(da) b, every other one does (THEORY.md 8.2)."""
        return r ** 2

    def basis(self, v: torch.Tensor) -> torch.Tensor:
        """T v: the coefficients of ``v`` in the real orthonormal basis T in which alpha(a) = T^T diag(a) T,
        laid out like ``a`` (THEORY.md 6: the log-density integrates the flow in these coordinates).  Families
        with no such basis (:class:`Corruption`) refuse."""
        raise ParameterError(f"the {self.name!r} family is not diagonal in an orthonormal basis: it has no "
                             "model log-density")

    def unbasis(self, c: torch.Tensor) -> torch.Tensor:
        """T^T c, the inverse of :meth:`basis`."""
        return self.basis(c)

    def check_diagonal(self, a: torch.Tensor) -> None:
        """Refuse an ``a`` for which alpha(a) is not T^T diag(a) T (default: every ``a`` is)."""

    def to_dict(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Hadamard(OperatorFamily):
    """Entrywise interpolant I = a * x0 + (1 - a) * x1 (the paper's main family).

    >>> Hadamard().alpha(torch.tensor([0.5]), torch.tensor([4.0]))
    tensor([2.])
    """

    name = "hadamard"

    def alpha(self, a, v):
        return a * v

    def interpolate(self, x0, x1, a):
        return torch.lerp(x1, x0, a) if a.shape == x0.shape else x1 + a * (x0 - x1)

    def pin(self, x, x_start, pinned):
        return torch.where(pinned, x_start, x)          # bit for bit: observed sites return as given

    def basis(self, v):
        return v

    def unbasis(self, c):
        return c


class FourierDiagonal(OperatorFamily):
    """alpha = F^-1 diag(a(p)) F over the last ``ndim`` axes; ``a`` holds a(p) in FFT layout.

    a(p) must be even in p (a(p) = a(-p)) for alpha to map real fields to real fields; the
    imaginary part of the inverse transform is discarded.  The network sees ``a`` in its
    momentum layout (translation-invariant operators have no site dependence to show).

    >>> fam = FourierDiagonal(ndim=1)
    >>> a = torch.tensor([[[1.0, 0.0, 0.0, 0.0]]])          # keep only the zero mode
    >>> fam.alpha(a, torch.tensor([[[1.0, 2.0, 3.0, 6.0]]]))
    tensor([[[3., 3., 3., 3.]]])
    """

    name = "fourier"

    def __init__(self, ndim: int = 2):
        if int(ndim) < 1:
            raise ParameterError(f"ndim must be >= 1, got {ndim}")
        self.ndim = int(ndim)

    def alpha(self, a, v):
        dims = tuple(range(-self.ndim, 0))
        return torch.fft.ifftn(a * torch.fft.fftn(v, dim=dims), dim=dims).real.to(v.dtype)

    def check_training(self, param, measure):
        """Also refuses a measure whose a(p) need not be even in p: only the diagonal and the momentum shells
        (``Sequential('shells')``, preset ``momenta``) keep a(p) = a(-p)."""
        super().check_training(param, measure)
        comps = list(getattr(measure, "components", {"": measure}).values())
        bad = [c.name + (f" ({c.partition})" if getattr(c, "partition", None) else "") for c in comps
               if not (c.name == "diagonal" or (c.name == "sequential" and getattr(c, "partition", "") == "shells"))]
        if bad:
            raise ParameterError(f"the 'fourier' family's a is a(p), which must be even in p (real fields): train it "
                                 f"with the measure 'momenta' (diagonal and momentum shells), not with {bad}")
        return self

    def residual_power(self, r):
        dims = tuple(range(-self.ndim, 0))
        return torch.fft.fftn(r, dim=dims, norm="ortho").abs() ** 2      # |F r|^2 per mode (unitary F)

    def _pairs(self, shape, device):
        """(flat index of each mode, flat index of its partner -p) over the last ``ndim`` axes ``shape``."""
        idx = torch.arange(math.prod(shape), device=device).reshape(shape)
        return idx.flatten(), negated_momenta(idx, len(shape)).flatten()

    def basis(self, v):
        """Real orthonormal Fourier coordinates: with X = F v (unitary), X(p) real where p = -p; for a pair
        p != -p (p the one of lower FFT index) sqrt2 Re X(p) at p and sqrt2 Im X(p) at -p.

        >>> fam = FourierDiagonal(ndim=1)
        >>> v = torch.tensor([[[1.0, 2.0, 3.0, 6.0]]], dtype=torch.float64)
        >>> c = fam.basis(v)
        >>> bool(torch.allclose((c ** 2).sum(), (v ** 2).sum())), bool(torch.allclose(fam.unbasis(c), v))
        (True, True)
        """
        dims = tuple(range(-self.ndim, 0))
        shape = v.shape[-self.ndim:]
        X = torch.fft.fftn(v, dim=dims, norm="ortho").flatten(-self.ndim)
        i, j = self._pairs(shape, v.device)
        r2 = math.sqrt(2.0)
        c = torch.where(i < j, r2 * X.real, torch.where(i == j, X.real, -r2 * X.imag))
        return c.to(v.dtype).reshape(v.shape)

    def unbasis(self, c):
        dims = tuple(range(-self.ndim, 0))
        shape = c.shape[-self.ndim:]
        flat = c.flatten(-self.ndim)
        i, j = self._pairs(shape, c.device)
        r2 = math.sqrt(2.0)
        re = torch.where(i == j, flat, flat.where(i < j, flat[..., j]) / r2)
        im = torch.where(i == j, torch.zeros_like(flat), torch.where(i < j, flat[..., j], -flat) / r2)
        X = torch.complex(re.to(torch.float64), im.to(torch.float64)).reshape(c.shape)
        return torch.fft.ifftn(X, dim=dims, norm="ortho").real.to(c.dtype)

    def check_diagonal(self, a):
        """alpha(a) is diagonal in the real basis only for a(p) = a(-p)."""
        if a.shape[-self.ndim:] != (1,) * self.ndim and not torch.equal(a, negated_momenta(a, self.ndim)):
            raise ParameterError("the 'fourier' family needs a(p) = a(-p) (real operators); this path's a is not even")

    def to_dict(self):
        return {"name": self.name, "ndim": self.ndim}

    def __repr__(self):
        return f"FourierDiagonal(ndim={self.ndim})"


class Corruption(OperatorFamily):
    """Corruption channels: I = alpha x0 + beta x1 with, per sample, a blur s, a noise level sigma and a
    missing-pixel mask m (``a`` has the three channels ``[s, sigma, m]``, shape (B, 3, *spatial)):

        alpha = diag(sigma (1 - m) + m),   beta = diag(1 - m) B_s,
        B_s = F^-1 diag(exp(-2 pi^2 s^2 |f|^2)) F      (periodic Gaussian blur of std s pixels,
                                                         f = FFT frequencies in cycles per pixel)

    so an observed pixel is the blurred image plus white noise of std sigma (model units) and a missing
    one is pure noise.  E[x1 | I = y] is then the posterior mean (MMSE restoration) of the clean image
    given y, for any mix of the channels; s = sigma = m = 0 is the clean image.  ``s_max`` and
    ``sigma_range`` only scale the network's features (``s / s_max`` and log sigma mapped to [0, 1]).

    >>> fam = Corruption()
    >>> a = Corruption.coordinates(1, (8, 8), blur=1.0, sigma=0.1)
    >>> x1 = torch.zeros(1, 1, 8, 8); x1[..., 4, 4] = 1.0
    >>> round(float(fam.beta(a, x1).sum()), 6), round(float(fam.beta(a, x1)[..., 4, 4]), 4)  # mass kept; ~1/(2 pi)
    (1.0, 0.1583)
    """

    name = "corruption"
    transports = False
    a_channels = 3

    def __init__(self, ndim: int = 2, s_max: float = 3.0, sigma_range=(1e-3, 1.0)):
        lo, hi = (float(v) for v in sigma_range)
        if int(ndim) < 1 or not (s_max > 0 and 0 < lo < hi):
            raise ParameterError(f"Corruption needs ndim >= 1, s_max > 0 and 0 < sigma_lo < sigma_hi, got "
                                 f"{ndim}, {s_max}, {sigma_range}")
        self.ndim, self.s_max, self.sigma_range = int(ndim), float(s_max), (lo, hi)

    @staticmethod
    def coordinates(n: int, shape, blur=0.0, sigma=0.0, missing=None, dtype=torch.float32) -> torch.Tensor:
        """``a`` (n, 3, *shape) for blur ``blur`` (pixels), noise ``sigma`` (model units; scalars or (n,)
        arrays) and ``missing`` (bool, ``shape`` or (n, *shape); True = missing pixel)."""
        shape = tuple(int(v) for v in shape)
        one = [1] * len(shape)
        s = torch.as_tensor(blur, dtype=dtype).reshape(-1, 1, *one).expand(n, 1, *shape)
        g = torch.as_tensor(sigma, dtype=dtype).reshape(-1, 1, *one).expand(n, 1, *shape)
        m = torch.zeros(n, 1, *shape, dtype=dtype) if missing is None else \
            torch.as_tensor(missing).to(dtype).reshape(-1, 1, *shape).expand(n, 1, *shape)
        return torch.cat([s, g, m], 1)

    def transfer(self, s: torch.Tensor, spatial, device=None, dtype=torch.float64) -> torch.Tensor:
        """exp(-2 pi^2 s^2 |f|^2) on the FFT grid of ``spatial``, per sample: shape (B, 1, *spatial)."""
        f2 = 0.0
        for ax, L in enumerate(spatial):
            f = torch.fft.fftfreq(L, device=device, dtype=dtype)
            f2 = f2 + (f * f).reshape([L if i == ax else 1 for i in range(len(spatial))])
        s = s.to(dtype).reshape(-1, 1, *[1] * len(spatial))
        return torch.exp(-2.0 * math.pi ** 2 * s * s * f2)

    def blur(self, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """B_s v (periodic), ``s`` per sample, shape (B,); exactly v where s = 0."""
        dims = tuple(range(-self.ndim, 0))
        s = torch.as_tensor(s).reshape(-1)
        if not bool((s != 0).any()):
            return v
        T = self.transfer(s, v.shape[-self.ndim:], v.device, torch.float64 if v.dtype == torch.float64 else torch.float32)
        out = torch.fft.ifftn(T * torch.fft.fftn(v, dim=dims), dim=dims).real.to(v.dtype)
        return torch.where((s == 0).to(v.device).reshape(-1, *[1] * (v.ndim - 1)), v, out)

    def _parts(self, a):
        s = a[:, 0].flatten(1)[:, 0]
        return s, a[:, 1:2], a[:, 2:3]

    def alpha(self, a, v):
        _, sig, m = self._parts(a)
        return (sig * (1 - m) + m) * v

    def beta(self, a, v):
        s, _, m = self._parts(a)
        return (1 - m) * self.blur(s, v)

    def interpolate(self, x0, x1, a):
        return self.alpha(a, x0) + self.beta(a, x1)

    def velocity(self, da, b):
        raise ParameterError("the corruption family has no transport path (beta != Id - alpha): restore with "
                             "phi4si.tasks.restore (E[x1 | I = y])")

    def features(self, a):
        lo, hi = (math.log(v) for v in self.sigma_range)
        s, sig, m = a[:, 0:1], a[:, 1:2], a[:, 2:3]
        ls = ((torch.log(sig.clamp_min(self.sigma_range[0])) - lo) / (hi - lo)).clamp(0, 1)
        return torch.cat([(s / self.s_max).clamp(0, 1), ls, m], 1)

    def loss_weight(self, a, like):
        return torch.ones_like(like)

    def to_dict(self):
        return {"name": self.name, "ndim": self.ndim, "s_max": self.s_max, "sigma_range": list(self.sigma_range)}

    def __repr__(self):
        return f"Corruption(ndim={self.ndim}, s_max={self.s_max}, sigma_range={self.sigma_range})"


class Haar(OperatorFamily):
    """alpha = H^T diag(a) H with H the orthonormal Haar wavelet transform of ``levels`` levels over the last
    ``ndim`` axes (THEORY.md 8.2): the Hadamard interpolant in wavelet coordinates, beta = Id - alpha.

    Layout (in place): level l pairs the sites i, i + 2^(l-1) (i = 0 mod 2^l) of the sublattice of stride
    2^(l-1) along each axis into (sum, difference) / sqrt 2.  After ``levels`` levels the coefficient at a site
    x = 0 mod 2^levels is the scaled block sum (block side b = 2^levels) sum_block phi / b^(d/2) = b^(d/2) x the
    block average, and every other site holds a detail coefficient.  ``a`` is laid out the same way: a = 0 on
    the block-sum coefficients pins the block averages exactly (super-resolution, :mod:`phi4si.tasks.superres`),
    and moving the levels from the coarsest to the finest is coarse-to-fine generation.  x0 ~ N(0, Id) stays
    N(0, Id) in these coordinates (H is orthogonal).

    >>> fam = Haar(ndim=1, levels=1)
    >>> (fam.forward(torch.tensor([[[1.0, 3.0, 2.0, 2.0]]])) * 2 ** 0.5).round(decimals=6)
    tensor([[[ 4., -2.,  4.,  0.]]])
    >>> a = torch.tensor([[[0.0, 1.0, 0.0, 1.0]]])         # keep the details: subtract the block averages
    >>> fam.alpha(a, torch.tensor([[[1.0, 3.0, 2.0, 2.0]]])).round(decimals=6)
    tensor([[[-1.,  1.,  0.,  0.]]])
    """

    name = "haar"

    def __init__(self, ndim: int = 2, levels: int = 2):
        if int(ndim) < 1 or int(levels) < 1:
            raise ParameterError(f"Haar needs ndim >= 1 and levels >= 1, got ndim={ndim}, levels={levels}")
        self.ndim, self.levels = int(ndim), int(levels)

    def check_shape(self, shape) -> tuple:
        """Refuse a lattice whose sides are not multiples of the block side 2^levels."""
        shape = tuple(int(v) for v in shape)
        b = 2 ** self.levels
        if len(shape) != self.ndim or any(L % b for L in shape):
            raise ParameterError(f"a Haar family of {self.levels} level(s) needs a {self.ndim}-d lattice with sides "
                                 f"divisible by {b}, got {shape}")
        return shape

    def _level(self, v, st):
        """One level on the sublattice of stride ``st`` (an involution: its own inverse)."""
        r = 2.0 ** -0.5
        idx = (Ellipsis,) + (slice(None, None, st),) * self.ndim
        sub = v[idx]
        for ax in range(self.ndim):
            x = sub.movedim(sub.ndim - self.ndim + ax, -1)
            a, b = x[..., 0::2], x[..., 1::2]
            x = torch.stack([(a + b) * r, (a - b) * r], -1).flatten(-2)
            sub = x.movedim(-1, sub.ndim - self.ndim + ax)
        out = v.clone()
        out[idx] = sub
        return out

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """H v (the coefficients in the in-place layout)."""
        self.check_shape(v.shape[-self.ndim:])
        for lev in range(self.levels):
            v = self._level(v, 2 ** lev)
        return v

    def inverse(self, c: torch.Tensor) -> torch.Tensor:
        """H^T c."""
        self.check_shape(c.shape[-self.ndim:])
        for lev in reversed(range(self.levels)):
            c = self._level(c, 2 ** lev)
        return c

    def alpha(self, a, v):
        return self.inverse(a * self.forward(v))

    basis, unbasis = forward, inverse

    def residual_power(self, r):
        return self.forward(r) ** 2                 # per Haar coefficient (H orthogonal)

    def coarse_mask(self, shape, level: int | None = None) -> torch.Tensor:
        """True at the block-sum coefficients of blocks of side 2^``level`` (default: ``levels``)."""
        shape = self.check_shape(shape)
        level = self.levels if level is None else int(level)
        if not 0 <= level <= self.levels:
            raise ParameterError(f"level must be in [0, {self.levels}], got {level}")
        m = torch.zeros(shape, dtype=torch.bool)
        m[(slice(None, None, 2 ** level),) * len(shape)] = True
        return m

    def to_dict(self):
        return {"name": self.name, "ndim": self.ndim, "levels": self.levels}

    def __repr__(self):
        return f"Haar(ndim={self.ndim}, levels={self.levels})"


FAMILIES = ("hadamard", "fourier", "corruption", "haar")


def family_from_dict(d: dict) -> OperatorFamily:
    """Rebuild a family from :meth:`OperatorFamily.to_dict` (checkpoints)."""
    name = d.get("name")
    if name == "hadamard":
        return Hadamard()
    if name == "fourier":
        return FourierDiagonal(ndim=d.get("ndim", 2))
    if name == "haar":
        return Haar(ndim=d.get("ndim", 2), levels=d.get("levels", 2))
    if name == "corruption":
        return Corruption(ndim=d.get("ndim", 2), s_max=d.get("s_max", 3.0), sigma_range=d.get("sigma_range", (1e-3, 1.0)))
    raise ParameterError(f"unknown operator family {name!r} (known: {', '.join(map(repr, FAMILIES))})")
