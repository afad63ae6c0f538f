"""Parameters of the lattice phi^4 model (THEORY.md section 1).

Action (Albergo, Kanwar & Shanahan 2019 convention), periodic lattice of any
dimension d, with the reward terms of THEORY.md section 5::

    S(phi) = sum_x [ -2 sum_mu phi_x phi_{x+mu} + (2d + m2) phi_x^2 + lam phi_x^4 ]
             - h sum_x phi_x - k sum_x phi_x^2

The density exp(-S) is normalisable iff lam > 0, or lam = 0 and m2 - k > 0
(the quadratic form -Delta + m2 - k is then positive definite).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from ..errors import ParameterError


def _finite(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v):
        raise ParameterError(f"{name} must be finite, got {v}")
    return v


def validate_shape(shape) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of ints, refusing empty shapes and sides < 2."""
    try:
        shp = tuple(int(s) for s in shape)
        if any(float(s) != int(s) for s in shape):
            raise ValueError
    except (TypeError, ValueError):
        raise ParameterError(f"lattice shape must be a sequence of integers, got {shape!r}") from None
    if len(shp) == 0:
        raise ParameterError("lattice shape must have at least one dimension")
    bad = [s for s in shp if s < 2]
    if bad:
        raise ParameterError(
            f"every lattice side must be >= 2 (periodic neighbours must be distinct sites); got shape {shp}"
        )
    return shp


def coupling_bound(shape) -> float:
    """Largest |m2|, lam, |h|, |k| that float64 arithmetic of the samplers survives on ``shape``.

    For |phi_x| <= 1 the force dS/dphi_x = -2 sum(neighbours) + 2 (2d + m2 - k) phi_x + 4 lam phi_x^3 - h
    is bounded by 8d + 9 g, g = max(|m2|, lam, |h|, |k|); HMC's kinetic energy after one kick, and
    MALA's proposal density, hold about V F^2, which must stay below float64's max (1.8e308):
    g <= (sqrt(max / V) - 8d) / 9 (about 1.9e152 on 8 x 8 sites, 1.3e148 on 10^12 sites).

    >>> f"{coupling_bound((8, 8)):.3g}"
    '1.86e+152'
    """
    import sys

    shp = tuple(shape)
    return (math.sqrt(sys.float_info.max / math.prod(shp)) - 8 * len(shp)) / 9


@dataclass(frozen=True)
class Phi4Params:
    """Lattice shape and couplings of phi^4 with optional reward terms.

    Parameters
    ----------
    shape : sequence of int
        Lattice sides (L_1, ..., L_d), each >= 2; any d >= 1.
    m2 : float
        Bare mass squared (may be negative).
    lam : float
        Quartic coupling, >= 0.  ``lam == 0`` (free field) needs ``m2 - k > 0``.
    h : float
        Applied field: adds ``-h sum_x phi_x`` to S (reward b = h 1).
    k : float
        Extra quadratic coupling: adds ``-k sum_x phi_x^2`` to S (reward A = 2k Id).

    Example
    -------
    >>> p = Phi4Params((16, 16), m2=-4.0, lam=4.572)
    >>> p.d, p.volume
    (2, 256)
    """

    shape: tuple[int, ...]
    m2: float
    lam: float
    h: float = 0.0
    k: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "shape", validate_shape(self.shape))
        for name in ("m2", "lam", "h", "k"):
            object.__setattr__(self, name, _finite(name, getattr(self, name)))
        if self.lam < 0:
            raise ParameterError(f"lam must be >= 0 (the action is unbounded below otherwise); got lam={self.lam}")
        bound = coupling_bound(self.shape)
        big = [(n, getattr(self, n)) for n in ("m2", "lam", "h", "k") if abs(getattr(self, n)) > bound]
        if big:
            n, v = big[0]
            raise ParameterError(
                f"{n}={v:.3g} is too large for float64 on {self.volume} sites: every |m2|, lam, |h|, |k| "
                f"must be <= {bound:.3g} = (sqrt(float64 max / V) - 8d) / 9, otherwise the squared force summed "
                "over the lattice (the sampler's kinetic energy) overflows already for fields of order 1; "
                "rescale the field (phi -> s phi turns lam into lam / s^4)")
        if self.lam == 0 and self.m2 - self.k <= 0:
            raise ParameterError(
                "lam = 0 (free field) needs m2 - k > 0, otherwise exp(-S) is not normalisable; "
                f"got m2={self.m2}, k={self.k}"
            )

    @property
    def d(self) -> int:
        """Number of lattice dimensions."""
        return len(self.shape)

    @property
    def volume(self) -> int:
        """Number of sites V."""
        return math.prod(self.shape)

    @property
    def mass_term(self) -> float:
        """Coefficient of phi_x^2 in S: 2d + m2 - k."""
        return 2 * self.d + self.m2 - self.k

    @classmethod
    def from_hopping(cls, shape: Sequence[int], kappa: float, l: float, h: float = 0.0, k: float = 0.0) -> "Phi4Params":
        """Convert from the hopping-parameter form.

        ``S = sum_x [ -2 kappa sum_mu p_x p_{x+mu} + (1 - 2 l) p_x^2 + l p_x^4 ]`` maps to
        the standard form by ``phi = sqrt(kappa) p``: ``lam = l / kappa^2`` and
        ``2d + m2 = (1 - 2 l) / kappa``.  ``h`` and ``k`` are taken in the phi
        normalisation.

        >>> p = Phi4Params.from_hopping((8, 8), kappa=0.2, l=0.0)      # free field, 2d + m2 = 1/kappa
        >>> round(p.m2, 12), p.lam
        (1.0, 0.0)
        >>> p = Phi4Params.from_hopping((8, 8), kappa=0.25, l=0.02)
        >>> round(p.m2, 12), round(p.lam, 12)
        (-0.16, 0.32)
        >>> [round(v, 12) for v in p.to_hopping()]
        [0.25, 0.02]
        """
        kappa = _finite("kappa", kappa)
        l = _finite("l", l)
        if kappa <= 0:
            raise ParameterError(f"hopping parameter kappa must be > 0, got {kappa}")
        d = len(validate_shape(shape))
        return cls(shape, m2=(1 - 2 * l) / kappa - 2 * d, lam=l / kappa**2, h=h, k=k)

    def to_hopping(self) -> tuple[float, float]:
        """Return ``(kappa, l)`` of the hopping form (for lam = 0 it needs 2d + m2 > 0).

        Inverse of :meth:`from_hopping` for ``h = k = 0``; solves
        ``l = lam kappa^2`` and ``(1 - 2 l)/kappa = 2d + m2``.
        """
        c = 2 * self.d + self.m2
        if self.lam == 0:
            if c <= 0:
                raise ParameterError("no hopping form for lam = 0 and 2d + m2 <= 0")
            return 1.0 / c, 0.0
        # 2 lam kappa^2 + c kappa - 1 = 0, positive root in the cancellation-free form
        disc = math.sqrt(c * c + 8 * self.lam)
        kappa = 2.0 / (c + disc) if c >= 0 else (disc - c) / (4 * self.lam)
        return kappa, self.lam * kappa**2

    def with_rewards(self, h: float = 0.0, k: float = 0.0) -> "Phi4Params":
        """The same model with reward terms ``h`` and ``k`` replaced."""
        return Phi4Params(self.shape, self.m2, self.lam, h, k)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Phi4Params":
        return cls(tuple(d["shape"]), d["m2"], d["lam"], d.get("h", 0.0), d.get("k", 0.0))
