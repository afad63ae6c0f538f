"""A fully convolutional U-Net for lattice fields with a per-site interpolation time.

The network learns a drift of the Hadamard operator interpolant (THEORY.md section 4)

    I = a * x0 + (1 - a) * x1,      a in [0, 1]^V  (a_x = 1: site x is noise, a_x = 0: data),

as a map ``f(x, a)``: ``x`` has shape ``(B, C, *spatial)``, ``a`` has shape ``(B, Ca, *spatial)``
(``Ca`` = 1 or C; any shape that broadcasts to it, or a plain number, is accepted), and the output
``(B, C_out, *spatial)`` is the drift, by default the velocity b = E[x0 - x1 | I = x].

Architecture (all maps are convolutions, so one set of weights serves every compatible size):

    feats  = phi(a)                               per-site a-features (``a_features``), no padding
    emb_0  = act(W2 act(W1 feats))                1x1 convs; emb_l = avgpool^l(emb_0) per level
    h      = conv3x3([x, feats])
    down:  n_res_blocks ResBlocks per level, then avg-pool by 2
    up:    nearest x2 + conv3x3, concat the skip, n_res_blocks ResBlocks
    g(x,a) = conv3x3(act(norm(h)))                zero-initialised when ``zero_init``
    f(x,a) = g(x,a) + W(a) x + c(a)               linear head (``linear_head``)

ResBlock: ``h + conv(act(norm(FiLM_e(conv(act(norm(h)))))))`` with per-site FiLM
``r -> r (1 + s(e)) + t(e)`` from the level's pooled embedding ``e``: the time enters every block
at its own site, which keeps translation equivariance.

Linear head: ``W(a)`` and ``c(a)`` come from a 1x1-conv MLP of the a-features only, so for every a
the output is affine in x plus the trunk. With ``linear_kernel = k > 1``, ``W(a)`` acts on the k^d
neighbourhood of each site (a per-site stencil, the local part of the Gaussian drift of THEORY 4.4).
For Gaussian data the exact drift is linear in x; the head represents its local part exactly and
makes the model extrapolate linearly to large |x| (iid Gaussian data, variance 2, preset "tiny",
400 Adam steps at L = 8: relative error of b 0.6% on the training distribution and 0.6% at 10x the
field; with ``linear_head=False`` 2% and 30%). With ``zero_init`` the initial model *is* the
linear head. With ``odd = True`` the model is exactly Z2-odd, ``f(-x, a) = -f(x, a)``:
``f = (g(x, a) - g(-x, a)) / 2 + W(a) x`` (c is dropped); this costs one more trunk pass (the
two passes are batched together). The identity is bitwise when the backend computes a sample's
convolution independently of its position in the batch (true on CPU; on GPU it can hold only
to round-off).

Symmetries. With ``padding = "circular"`` (periodic lattice) the model is exactly translation
equivariant for shifts by multiples of ``2 ** (len(channel_mult) - 1)`` (the pooling grid), and for
every shift when ``channel_mult`` has one entry. Rotations and reflections of square lattices are
*not* built in: learn them with :mod:`phi4si.nn.augment`. ``padding = "zeros"``/``"reflect"`` are
for non-periodic data (images, mazes).

Compatibility: float32/float64 (``model.double()``), any device (no device-specific code),
``torch.autocast`` (bf16), and ``torch.func`` (``jacrev``, ``vmap`` over ``functional_call``):
there are no in-place operations and no data-dependent control flow (the shape checks use shapes
only). Default ``norm = "none"``: group norm divides out the scale of its input, so a model with it
cannot extrapolate linearly in |x|.

Presets (:func:`preset`), parameter counts for ``in_channels = 1, dim = 2``, and CPU time of one
forward + backward pass of a batch of 64 (float32, torch 2.13, 2 cores of a shared, loaded machine,
so +-50%; ``odd = True`` costs up to 2x):

    ======  =========  =========================  =========  ==========
    name    params     base, channel_mult, res    L = 8      L = 16
    ======  =========  =========================  =========  ==========
    tiny        3,395   8, (1,), 1                 (tests)
    small      36,211  12, (1, 2), 1              ~50 ms     ~0.1-0.2 s
    medium    191,651  16, (1, 2, 2), 2           ~0.1 s     ~0.2-0.3 s
    large   4,596,035  64, (1, 2, 2, 2), 2        (GPU; sides a multiple of 8)
    ======  =========  =========================  =========  ==========

On small CPU models, ``torch.set_num_threads(1)`` is often as fast as 2 threads, and much faster
when the cores are oversubscribed (OpenMP threads then wait on each other).

>>> import torch
>>> from phi4si.nn import LatticeUNet, preset
>>> model = LatticeUNet(preset("tiny"))
>>> x, a = torch.randn(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
>>> model(x, a).shape
torch.Size([4, 1, 8, 8])
>>> model(torch.randn(2, 1, 16, 16), 0.5).shape       # same weights, another size, scalar time
torch.Size([2, 1, 16, 16])
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

from .. import resources
from ..errors import ParameterError
from . import budget

__all__ = ["A_FEATURES", "DEFAULT_A_FEATURES", "UNetConfig", "LatticeUNet", "preset", "count_parameters"]


def _safe_sqrt(u: torch.Tensor) -> torch.Tensor:
    """sqrt(max(u, 0)) with a finite (zero) gradient at u <= 0."""
    pos = u > 0
    return torch.where(pos, torch.sqrt(torch.where(pos, u, torch.ones_like(u))), torch.zeros_like(u))


#: Per-site functions of the time a that the network sees (name -> function), applied per channel.
A_FEATURES = {
    "a": lambda a: a,
    "1-a": lambda a: 1 - a,
    "sqrt(a)": _safe_sqrt,
    "sqrt(1-a)": lambda a: _safe_sqrt(1 - a),
    "a(1-a)": lambda a: a * (1 - a),
    "a^2": lambda a: a * a,
    "(1-a)^2": lambda a: (1 - a) * (1 - a),
    "1/(a^2+(1-a)^2)": lambda a: 1 / (a * a + (1 - a) * (1 - a)),
}

#: Default features. ``a`` itself; ``sqrt(a)``, ``sqrt(1-a)`` resolve the end points, where the
#: optimal drift changes fastest; ``a(1-a)`` vanishes on pure data and pure noise; and
#: ``1/(a^2+(1-a)^2)`` is the inverse variance of I for unit-variance data, the factor of the
#: Gaussian drift (THEORY 4.4: per site eta0 = a x / (a^2 + (1-a)^2 c)).
DEFAULT_A_FEATURES = ("a", "sqrt(a)", "sqrt(1-a)", "a(1-a)", "1/(a^2+(1-a)^2)")

_PADDINGS = ("circular", "zeros", "reflect")
_PAD_MODE = {"circular": "circular", "zeros": "constant", "reflect": "reflect"}
_ACTIVATIONS = {"silu": nn.SiLU, "gelu": nn.GELU}


@dataclass(frozen=True)
class UNetConfig:
    """Hyper-parameters of :class:`LatticeUNet` (validated; JSON-friendly via ``to_dict``).

    Fields:
        dim: number of spatial dimensions, 1 (sequences) or 2 (lattices, images).
        in_channels: field channels C.
        a_channels: channels of the time a: 1 (one time per site), C (one per channel and site), or as
            many as the operator family's coordinates (3 for the corruption channels s, sigma, m).
        out_channels: drift channels; ``None`` means ``in_channels``.
        base_channels: width of the first level; level l has ``base_channels * channel_mult[l]``.
        channel_mult: one entry per resolution level; ``len - 1`` down-samplings by 2, so every side
            must be a multiple of ``2 ** (len(channel_mult) - 1)``.
        n_res_blocks: residual blocks per level (on each of the down and up paths).
        padding: ``"circular"`` (periodic lattice, translation equivariant), ``"zeros"``, ``"reflect"``.
        norm: ``"none"`` (default; keeps the input's scale) or ``"group"`` (GroupNorm, <= 8 groups).
        activation: ``"silu"`` or ``"gelu"``.
        a_features: names from :data:`A_FEATURES`, computed per site from a.
        head_hidden: width of the 1x1-conv MLP that gives the linear head's W(a), c(a).
        linear_kernel: stencil size k (odd) of the linear head, 1 = on-site only.
        odd: exact Z2 symmetry f(-x, a) = -f(x, a).
        linear_head: add W(a) x + c(a) (c dropped when ``odd``).
        zero_init: zero the last convolution, so the initial model is the linear head alone.

    >>> cfg = UNetConfig(base_channels=8, channel_mult=(1, 2))
    >>> UNetConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> cfg.size_multiple
    2
    """

    dim: int = 2
    in_channels: int = 1
    a_channels: int = 1
    out_channels: int | None = None
    base_channels: int = 16
    channel_mult: tuple[int, ...] = (1, 2)
    n_res_blocks: int = 1
    padding: str = "circular"
    norm: str = "none"
    activation: str = "silu"
    a_features: tuple[str, ...] = DEFAULT_A_FEATURES
    head_hidden: int = 32
    linear_kernel: int = 1
    odd: bool = False
    linear_head: bool = True
    zero_init: bool = True

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        for k in ("channel_mult", "a_features"):
            v = getattr(self, k)
            if isinstance(v, (str, int)) or not hasattr(v, "__iter__"):
                raise ParameterError(f"UNetConfig.{k} must be a tuple, got {v!r}")
            set_(k, tuple(v))
        if self.out_channels is None:
            set_("out_channels", self.in_channels)

        def pos_int(k):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParameterError(f"UNetConfig.{k} must be a positive integer, got {v!r}")

        for k in ("in_channels", "a_channels", "out_channels", "base_channels", "n_res_blocks",
                  "head_hidden", "linear_kernel"):
            pos_int(k)
        if self.dim not in (1, 2) or isinstance(self.dim, bool):
            raise ParameterError(f"UNetConfig.dim must be 1 or 2 (spatial dimensions), got {self.dim!r}")
        if not self.channel_mult or any(isinstance(m, bool) or not isinstance(m, int) or m < 1
                                        for m in self.channel_mult):
            raise ParameterError(f"UNetConfig.channel_mult must be a non-empty tuple of positive "
                                 f"integers (one per resolution level), got {self.channel_mult!r}")
        for k, allowed in (("padding", _PADDINGS), ("norm", ("none", "group")),
                           ("activation", tuple(_ACTIVATIONS))):
            if getattr(self, k) not in allowed:
                raise ParameterError(f"UNetConfig.{k} must be one of {allowed}, got {getattr(self, k)!r}")
        bad = [f for f in self.a_features if f not in A_FEATURES]
        if not self.a_features or bad or len(set(self.a_features)) != len(self.a_features):
            raise ParameterError(f"UNetConfig.a_features must be distinct names from {tuple(A_FEATURES)}, "
                                 f"got {self.a_features!r}")
        if self.linear_kernel % 2 == 0:
            raise ParameterError(f"UNetConfig.linear_kernel must be odd (centred stencil), got {self.linear_kernel}")
        for k in ("odd", "linear_head", "zero_init"):
            if not isinstance(getattr(self, k), bool):
                raise ParameterError(f"UNetConfig.{k} must be a bool, got {getattr(self, k)!r}")
        n, have = budget.estimate_parameters(self), resources.physical_memory()
        if have is not None and 4 * n > have:  # the float32 weights alone; training needs about 5 x that
            raise ParameterError(f"UNetConfig.base_channels={self.base_channels} (channel_mult={self.channel_mult}, "
                                 f"n_res_blocks={self.n_res_blocks}) gives about {n:.3g} parameters, "
                                 f"{resources.format_bytes(4 * n)} in float32, but the machine has {resources.format_bytes(have)}; "
                                 "lower base_channels (or channel_mult, n_res_blocks)")

    @property
    def size_multiple(self) -> int:
        """Every spatial side must be a multiple of this: ``2 ** (len(channel_mult) - 1)``."""
        return 2 ** (len(self.channel_mult) - 1)

    def to_dict(self) -> dict:
        """Plain dict (lists for tuples), e.g. for JSON or a checkpoint's metadata."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ParameterError`` (a ``ValueError``)."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ParameterError(f"UNetConfig.from_dict: unknown keys {sorted(unknown)}")
        return cls(**d)


_PRESETS = {
    "tiny": dict(base_channels=8, channel_mult=(1,), n_res_blocks=1, head_hidden=8),
    "small": dict(base_channels=12, channel_mult=(1, 2), n_res_blocks=1, head_hidden=32),
    "medium": dict(base_channels=16, channel_mult=(1, 2, 2), n_res_blocks=2, head_hidden=32),
    "large": dict(base_channels=64, channel_mult=(1, 2, 2, 2), n_res_blocks=2, head_hidden=64),
    # 1-d trajectories of 50 points (maze planning): one pooling level (50 = 2 x 25) and three
    # blocks per level give a receptive field of ~80 points, so every point sees start and goal
    "maze": dict(base_channels=32, channel_mult=(1, 2), n_res_blocks=3, head_hidden=32),
}


def preset(name: str, dim: int = 2, **overrides) -> UNetConfig:
    """Named configurations: ``"tiny"`` (tests, ~3k parameters), ``"small"`` (CPU, L = 8, ~36k),
    ``"medium"`` (CPU, L = 16, ~190k), ``"large"`` (GPU, ~4.6M; sides a multiple of 8), ``"maze"``
    (1-d trajectories of 50 points; one pooling level, receptive field ~80 points).

    ``overrides`` replace fields, e.g. ``preset("small", in_channels=3, padding="zeros")``.

    >>> preset("small").channel_mult
    (1, 2)
    >>> preset("tiny", dim=1, padding="zeros").dim
    1
    """
    if name not in _PRESETS:
        raise ParameterError(f"unknown UNet preset {name!r}; choose one of {tuple(_PRESETS)}")
    return UNetConfig(**{**_PRESETS[name], "dim": dim, **overrides})


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars. ``count_parameters(LatticeUNet(preset("tiny")))`` -> 3395."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------- building blocks
def _conv(cfg: UNetConfig, cin: int, cout: int, k: int = 3) -> nn.Module:
    conv = (nn.Conv1d, nn.Conv2d)[cfg.dim - 1]
    if k == 1:
        return conv(cin, cout, 1)
    return conv(cin, cout, k, padding=k // 2, padding_mode=cfg.padding)


def _norm(cfg: UNetConfig, c: int) -> nn.Module:
    if cfg.norm == "none":
        return nn.Identity()
    groups = max(g for g in range(1, min(8, c) + 1) if c % g == 0)
    return nn.GroupNorm(groups, c)


class _ResBlock(nn.Module):
    """Pre-activation residual block with per-site FiLM conditioning on the time embedding."""

    def __init__(self, cfg: UNetConfig, cin: int, cout: int, emb: int):
        super().__init__()
        self.act = _ACTIVATIONS[cfg.activation]()
        self.norm1, self.conv1 = _norm(cfg, cin), _conv(cfg, cin, cout)
        self.film = _conv(cfg, emb, 2 * cout, k=1)
        self.norm2, self.conv2 = _norm(cfg, cout), _conv(cfg, cout, cout)
        self.skip = _conv(cfg, cin, cout, k=1) if cin != cout else nn.Identity()

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        r = self.conv1(self.act(self.norm1(h)))
        s, t = self.film(e).chunk(2, dim=1)
        r = self.conv2(self.act(self.norm2(r * (1 + s) + t)))
        return self.skip(h) + r


class LatticeUNet(nn.Module):
    """U-Net drift model ``f(x, a)`` for the Hadamard interpolant (see the module docstring).

    ``forward(x, a)``: ``x`` of shape ``(B, in_channels, *spatial)``; ``a`` broadcastable to
    ``(B, a_channels, *spatial)`` (e.g. shape ``(B,)`` for a scalar time per sample, or a number);
    returns ``(B, out_channels, *spatial)``. Every side must be a multiple of
    ``config.size_multiple`` (``ParameterError``, a ``ValueError``, otherwise).

    >>> import torch
    >>> model = LatticeUNet(UNetConfig(base_channels=8, channel_mult=(1, 2), odd=True))
    >>> x, a = torch.randn(3, 1, 8, 8), torch.rand(3, 1, 8, 8)
    >>> bool(torch.equal(model(-x, a), -model(x, a)))
    True
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        if not isinstance(config, UNetConfig):
            raise ParameterError(f"LatticeUNet needs a UNetConfig, got {type(config).__name__}")
        cfg = self.config = config
        act = _ACTIVATIONS[cfg.activation]
        nf = len(cfg.a_features) * cfg.a_channels
        ch = [cfg.base_channels * m for m in cfg.channel_mult]
        emb = cfg.base_channels
        self.embed = nn.Sequential(_conv(cfg, nf, emb, 1), act(), _conv(cfg, emb, emb, 1), act())
        self.conv_in = _conv(cfg, cfg.in_channels + nf, ch[0])
        self.down, self.up, self.upconv = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = ch[0]
        for level, cl in enumerate(ch):
            blocks = nn.ModuleList()
            for _ in range(cfg.n_res_blocks):
                blocks.append(_ResBlock(cfg, c, cl, emb))
                c = cl
            self.down.append(blocks)
        self.mid = _ResBlock(cfg, c, c, emb)
        for level in reversed(range(len(ch) - 1)):
            self.upconv.append(_conv(cfg, c, c))
            blocks = nn.ModuleList()
            for i in range(cfg.n_res_blocks):
                blocks.append(_ResBlock(cfg, c + ch[level] if i == 0 else ch[level], ch[level], emb))
            c = ch[level]
            self.up.append(blocks)
        self.out = nn.Sequential(_norm(cfg, c), act(), _conv(cfg, c, cfg.out_channels))
        if cfg.zero_init:
            nn.init.zeros_(self.out[-1].weight)
            nn.init.zeros_(self.out[-1].bias)
        if cfg.linear_head:
            self._n_w = cfg.out_channels * cfg.in_channels * cfg.linear_kernel**cfg.dim
            n_c = 0 if cfg.odd else cfg.out_channels
            hh = cfg.head_hidden
            self.head = nn.Sequential(_conv(cfg, nf, hh, 1), act(), _conv(cfg, hh, hh, 1), act(),
                                      _conv(cfg, hh, self._n_w + n_c, 1))

    # ------------------------------------------------------------------------------------- helpers
    def _prepare(self, x: torch.Tensor, a) -> torch.Tensor:
        """Check shapes, return a expanded to (B, a_channels, *spatial)."""
        cfg = self.config
        if x.ndim != cfg.dim + 2 or x.shape[1] != cfg.in_channels:
            raise ParameterError(f"LatticeUNet expects x of shape (B, {cfg.in_channels}, "
                                 f"{', '.join(['L'] * cfg.dim)}), got {tuple(x.shape)}")
        spatial, m = tuple(x.shape[2:]), cfg.size_multiple
        if any(s % m for s in spatial) or (cfg.padding == "reflect" and min(spatial) < 2 * m):
            extra = " and at least 2 * that (reflect padding)" if cfg.padding == "reflect" else ""
            raise ParameterError(
                f"LatticeUNet: spatial size {spatial} is incompatible with channel_mult={cfg.channel_mult}: "
                f"every side must be a multiple of 2**{len(cfg.channel_mult) - 1} = {m}{extra}. "
                f"Use such a size, or fewer resolution levels (a shorter channel_mult).")
        a = torch.as_tensor(a, dtype=x.dtype, device=x.device)
        if a.ndim <= 1:
            a = a.reshape(-1, *([1] * (cfg.dim + 1)))
        target = (x.shape[0], cfg.a_channels, *spatial)
        if a.ndim != len(target) or any(s not in (1, t) for s, t in zip(a.shape, target)):
            raise ParameterError(f"LatticeUNet: a of shape {tuple(a.shape)} does not broadcast to {target} "
                                 f"(batch, a_channels, *spatial)")
        return a.expand(target)

    def a_features(self, a: torch.Tensor) -> torch.Tensor:
        """Per-site features of a, shape (B, len(a_features) * a_channels, *spatial): feature-major,
        ``[phi_1(a), phi_2(a), ...]`` with each ``phi_i`` applied to all a-channels.

        >>> m = LatticeUNet(preset("tiny"))
        >>> [round(v, 4) for v in m.a_features(torch.full((1, 1, 2, 2), 0.25))[0, :, 0, 0].tolist()]
        [0.25, 0.5, 0.866, 0.1875, 1.6]
        """
        return torch.cat([A_FEATURES[name](a) for name in self.config.a_features], dim=1)

    def _neighbours(self, x: torch.Tensor) -> torch.Tensor:
        """The k^d stencil around every site, (B, C * k^d, *spatial), padded like the convolutions."""
        k, d = self.config.linear_kernel, self.config.dim
        if k == 1:
            return x
        p = k // 2
        xp = F.pad(x, [p] * (2 * d), mode=_PAD_MODE[self.config.padding])
        spatial = x.shape[2:]
        parts = [xp[(..., *(slice(o, o + n) for o, n in zip(offs, spatial)))]
                 for offs in itertools.product(range(k), repeat=d)]
        return torch.stack(parts, dim=2).flatten(1, 2)

    def linear_coefficients(self, x: torch.Tensor, a) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The linear head's ``W(a)`` of shape (B, C_out, C_in * k^d, *spatial) and ``c(a)`` of shape
        (B, C_out, *spatial) (``None`` when ``odd``); ``x`` is only used for shapes.

        The head adds ``sum_j W[:, o, j] * stencil(x)[:, j] + c[:, o]`` (for k = 1: ``W x + c``);
        stencil offsets run row-major over ``{-k//2, ..., k//2}^d``.

        >>> import torch
        >>> m = LatticeUNet(preset("tiny"))                       # zero_init: the model is the head
        >>> x, a = torch.randn(2, 1, 4, 4), torch.rand(2, 1, 4, 4)
        >>> w, c = m.linear_coefficients(x, a)
        >>> bool(torch.equal(m(x, a), w[:, :, 0] * x + c))
        True
        """
        if not self.config.linear_head:
            raise ParameterError("linear_coefficients: this model has linear_head=False")
        coef = self.head(self.a_features(self._prepare(x, a)))
        w = coef[:, : self._n_w].unflatten(1, (self.config.out_channels, -1))
        return w, (None if self.config.odd else coef[:, self._n_w:])

    def _trunk(self, x: torch.Tensor, feats: torch.Tensor, embs: list[torch.Tensor]) -> torch.Tensor:
        pool = (F.avg_pool1d, F.avg_pool2d)[self.config.dim - 1]
        h = self.conv_in(torch.cat([x, feats], dim=1))
        skips = []
        for level, blocks in enumerate(self.down):
            for blk in blocks:
                h = blk(h, embs[level])
            if level < len(self.down) - 1:
                skips.append(h)
                h = pool(h, 2)
        h = self.mid(h, embs[-1])
        for upconv, blocks in zip(self.upconv, self.up):
            h = torch.cat([upconv(F.interpolate(h, scale_factor=2, mode="nearest")), skips.pop()], dim=1)
            level = len(skips)
            for blk in blocks:
                h = blk(h, embs[level])
        return self.out(h)

    def forward(self, x: torch.Tensor, a) -> torch.Tensor:
        """Drift ``f(x, a)``, shape (B, out_channels, *spatial)."""
        cfg = self.config
        a = self._prepare(x, a)
        feats = self.a_features(a)
        pool = (F.avg_pool1d, F.avg_pool2d)[cfg.dim - 1]
        embs = [self.embed(feats)]
        for _ in range(len(cfg.channel_mult) - 1):
            embs.append(pool(embs[-1], 2))
        if cfg.odd:  # one batched pass over (x, -x)
            two = lambda t: torch.cat([t, t], dim=0)  # noqa: E731
            g_pos, g_neg = self._trunk(torch.cat([x, -x], dim=0), two(feats), [two(e) for e in embs]).chunk(2)
            out = 0.5 * (g_pos - g_neg)
        else:
            out = self._trunk(x, feats, embs)
        if cfg.linear_head:
            coef = self.head(feats)
            w = coef[:, : self._n_w].unflatten(1, (cfg.out_channels, -1))
            out = out + (w * self._neighbours(x).unsqueeze(1)).sum(2)
            if not cfg.odd:
                out = out + coef[:, self._n_w:]
        return out
