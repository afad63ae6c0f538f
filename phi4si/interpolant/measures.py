"""Training measures nu over the per-site time a (THEORY.md 4.2).

The regression E_{a~nu} E |net(I_a, a) - target|^2 learns the drift on the support of nu, so nu
must cover every a that inference will visit:

* :class:`Diagonal`   a = t 1, t ~ U(0, 1)                       (plain generation)
* :class:`Hypercube`  a_x iid U(0, 1) per site, or per block     (the paper's "hypercube")
* :class:`Sequential` groups done (a = 0), one group at a = t, the rest at 1  (sequential and
  blockwise generation; groups are blocks of given sizes or coarse-to-fine sublattices)
* :class:`Masks`      observed sites at a = 0 exactly, the others at a = t  (inpainting: random
  site fractions and random rectangles); optionally noisy observations at a small a_obs > 0
* :class:`Anchors`    a few pinned sites (the first one, one random site, a few extra) at a = 0,
  the rest at a = t  (planning: start, goal and waypoints of a trajectory)
* :class:`Mixture`    a weighted mixture of the above, with a curriculum: weights that change
  with the training progress (e.g. the paper's "diagonal first, then hypercube and blocks").
* :class:`Corruptions` the channels (blur s, noise sigma, missing mask m) of the
  :class:`~phi4si.interpolant.operators.Corruption` family, ``a`` of shape ``(n, 3, *spatial)``.

Every measure but :class:`Corruptions` draws ``a`` of shape ``(n, 1, *spatial)`` from a
``torch.Generator`` (same seed, same draws); all round-trip through ``to_dict``/:func:`measure_from_dict`
(checkpoints).

>>> import torch
>>> g = torch.Generator().manual_seed(0)
>>> a = Mixture({"diagonal": Diagonal(), "masks": Masks()}, [0.5, 0.5]).sample(4, (8, 8), g)
>>> tuple(a.shape), bool(((a >= 0) & (a <= 1)).all())
((4, 1, 8, 8), True)
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from .partitions import block_ids, coarse_to_fine_ids, momentum_shell_ids

__all__ = ["Measure", "Diagonal", "Hypercube", "Sequential", "Masks", "Anchors", "Mixture", "Corruptions",
           "MEASURE_PRESETS", "measure_from_dict", "preset_measure"]


def _u(n, gen, device, dtype, *shape):
    return torch.rand((n, *shape), generator=gen, dtype=dtype).to(device)


class Measure:
    """Base class: ``sample(n, shape, generator, device='cpu', dtype=float32, progress=0.0)``."""

    name = "base"

    def sample(self, n, shape, generator, device="cpu", dtype=torch.float32, progress: float = 0.0):  # pragma: no cover
        raise NotImplementedError

    def to_dict(self) -> dict:
        return {"name": self.name}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if k != "name")
        return f"{type(self).__name__}({args})"


class Diagonal(Measure):
    """a = t 1 with t ~ U(t_min, t_max) (default the whole [0, 1])."""

    name = "diagonal"

    def __init__(self, t_min: float = 0.0, t_max: float = 1.0):
        if not 0.0 <= t_min < t_max <= 1.0:
            raise ParameterError(f"need 0 <= t_min < t_max <= 1, got {t_min}, {t_max}")
        self.t_min, self.t_max = float(t_min), float(t_max)

    def sample(self, n, shape, generator, device="cpu", dtype=torch.float32, progress=0.0):
        t = self.t_min + (self.t_max - self.t_min) * _u(n, generator, "cpu", dtype)
        return t.reshape(n, 1, *([1] * len(shape))).expand(n, 1, *shape).contiguous().to(device)

    def to_dict(self):
        return {"name": self.name, "t_min": self.t_min, "t_max": self.t_max}


class Hypercube(Measure):
    """a_x iid U(0, 1) per site (block=None) or constant on random-offset blocks of size ``block``."""

    name = "hypercube"

    def __init__(self, block: int | None = None):
        self.block = None if block is None else int(block)
        if self.block is not None and self.block < 1:
            raise ParameterError(f"block must be >= 1, got {block}")

    def sample(self, n, shape, generator, device="cpu", dtype=torch.float32, progress=0.0):
        if self.block is None or self.block == 1:
            return _u(n, generator, device, dtype, 1, *shape)
        blk = tuple(min(self.block, L) for L in shape)
        offs = torch.randint(0, 1 << 30, (n, len(shape)), generator=generator).numpy()
        ids = np.stack([block_ids(shape, blk, o % np.array(shape)) for o in offs])
        vals = _u(n, generator, "cpu", dtype, int(ids.max()) + 1)
        a = torch.gather(vals, 1, torch.from_numpy(ids.reshape(n, -1)))
        return a.reshape(n, 1, *shape).to(device)

    def to_dict(self):
        return {"name": self.name, "block": self.block}


def _sequential_a(ids: torch.Tensor, n_groups: torch.Tensor, rank: torch.Tensor, gen, dtype):
    """ids (n, V) group of each site; rank (n, G) position of each group in the order."""
    n = ids.shape[0]
    k = (torch.rand(n, generator=gen, dtype=torch.float64) * n_groups).long()      # groups done
    t = torch.rand(n, 1, generator=gen, dtype=dtype)
    r = torch.gather(rank, 1, ids)                                                  # rank per site
    k = k[:, None]
    return torch.where(r < k, torch.zeros((), dtype=dtype), torch.where(r == k, t, torch.ones((), dtype=dtype)))


class Sequential(Measure):
    """Sequential generation states: k groups done (a = 0), one at a = t ~ U(0,1), rest at a = 1.

    ``partition='blocks'``: blocks of a size drawn from ``blocks`` (sides, clipped to the lattice)
    at a random periodic offset, taken in a random order; ``partition='coarse_to_fine'``: the
    nested sublattices of :func:`~phi4si.interpolant.partitions.coarse_to_fine_ids` with
    ``levels`` levels, coarse first (``random_order=True`` shuffles them too); ``partition='shells'``: the
    momentum shells of :func:`~phi4si.interpolant.partitions.momentum_shell_ids` (``levels`` of them, the
    zero mode first), low to high, for the Fourier family (its ``a`` is a(p) in FFT layout).
    """

    name = "sequential"

    def __init__(self, partition: str = "blocks", blocks=(2, 4), levels: int = 3, random_order: bool = True):
        if partition not in ("blocks", "coarse_to_fine", "shells"):
            raise ParameterError(f"partition must be 'blocks', 'coarse_to_fine' or 'shells', got {partition!r}")
        self.partition, self.levels, self.random_order = partition, int(levels), bool(random_order)
        self.blocks = tuple(int(b) for b in (blocks if not np.isscalar(blocks) else (blocks,)))
        if not self.blocks or min(self.blocks) < 1:
            raise ParameterError(f"block sizes must be >= 1, got {blocks}")

    def sample(self, n, shape, generator, device="cpu", dtype=torch.float32, progress=0.0):
        shape = tuple(shape)
        if self.partition == "blocks":
            sizes = torch.randint(0, len(self.blocks), (n,), generator=generator).numpy()
            offs = torch.randint(0, 1 << 30, (n, len(shape)), generator=generator).numpy()
            ids = np.stack([block_ids(shape, tuple(min(self.blocks[s], L) for L in shape), o % np.array(shape))
                            for s, o in zip(sizes, offs)])
        elif self.partition == "shells":
            ids = np.broadcast_to(momentum_shell_ids(shape, self.levels), (n, *shape))
        else:
            levels = min(self.levels, 1 + int(np.log2(np.gcd.reduce(shape)) if len(shape) else 0))
            ids = np.broadcast_to(coarse_to_fine_ids(shape, levels), (n, *shape))
        ids = torch.from_numpy(np.array(ids, dtype=np.int64).reshape(n, -1))
        ng = ids.max(dim=1).values + 1
        G = int(ng.max())
        if self.random_order or self.partition == "blocks":
            keys = torch.rand(n, G, generator=generator, dtype=torch.float64)
            keys = torch.where(torch.arange(G)[None, :] < ng[:, None], keys, torch.full_like(keys, 2.0))
            rank = torch.argsort(torch.argsort(keys, dim=1), dim=1)
        else:
            rank = torch.arange(G).expand(n, G)
        a = _sequential_a(ids, ng.to(torch.float64), rank, generator, dtype)
        return a.reshape(n, 1, *shape).to(device)

    def to_dict(self):
        return {"name": self.name, "partition": self.partition, "blocks": list(self.blocks),
                "levels": self.levels, "random_order": self.random_order}


class Masks(Measure):
    """Inpainting states: observed sites at a = 0 exactly, unobserved at a = t ~ U(0, 1).

    With probability ``p_random`` the observed set is iid per site with a fraction f ~ U(f_min,
    f_max); otherwise the unobserved set is a random periodic rectangle with sides ~ U{1..L}.

    ``a_obs_max > 0``: noisy observations.  A datum observed with Gaussian noise of standard
    deviation sigma (in the model's normalised units), y = x1 + sigma z, is the interpolant state
    (1 - a) y = a z + (1 - a) x1 at a = sigma / (1 + sigma); so observed sites sit at
    a = u a_obs_max, u ~ U(0, 1) per sample (u = 0 exactly with probability 1/2, the noise-free case).
    """

    name = "masks"

    def __init__(self, p_random: float = 0.5, f_min: float = 0.0, f_max: float = 0.95, a_obs_max: float = 0.0):
        if not 0.0 <= p_random <= 1.0 or not 0.0 <= f_min <= f_max < 1.0:
            raise ParameterError("need 0 <= p_random <= 1 and 0 <= f_min <= f_max < 1")
        if not 0.0 <= a_obs_max < 1.0:
            raise ParameterError(f"need 0 <= a_obs_max < 1, got {a_obs_max}")
        self.p_random, self.f_min, self.f_max = float(p_random), float(f_min), float(f_max)
        self.a_obs_max = float(a_obs_max)

    def sample(self, n, shape, generator, device="cpu", dtype=torch.float32, progress=0.0):
        shape = tuple(shape)
        d = len(shape)
        use_random = torch.rand(n, generator=generator) < self.p_random
        f = self.f_min + (self.f_max - self.f_min) * torch.rand(n, generator=generator, dtype=torch.float64)
        observed_random = torch.rand((n, *shape), generator=generator, dtype=torch.float64) < f.reshape(n, *[1] * d)
        unobserved_rect = torch.ones((n, *shape), dtype=torch.bool)
        for ax, L in enumerate(shape):
            side = torch.randint(1, L + 1, (n,), generator=generator)
            start = torch.randint(0, L, (n,), generator=generator)
            inside = ((torch.arange(L)[None, :] - start[:, None]) % L) < side[:, None]
            unobserved_rect &= inside.reshape(n, *[L if i == ax else 1 for i in range(d)])
        observed = torch.where(use_random.reshape(n, *[1] * d), observed_random, ~unobserved_rect)
        t = torch.rand(n, generator=generator, dtype=dtype).reshape(n, *[1] * d)
        a_obs = torch.zeros((), dtype=dtype)
        if self.a_obs_max > 0:           # extra draws only then: the noise-free stream is unchanged
            u = torch.rand(n, generator=generator, dtype=dtype) * (torch.rand(n, generator=generator) < 0.5)
            a_obs = (self.a_obs_max * u).reshape(n, *[1] * d)
        a = torch.where(observed, a_obs, t.expand(n, *shape))
        return a.reshape(n, 1, *shape).to(device)

    def to_dict(self):
        d = {"name": self.name, "p_random": self.p_random, "f_min": self.f_min, "f_max": self.f_max}
        return {**d, "a_obs_max": self.a_obs_max} if self.a_obs_max else d


class Anchors(Measure):
    """Planning states: pinned sites at a = 0 exactly, every other site at a = t ~ U(0, 1).

    With probability ``p_first`` the first site (flat index 0: the start of a trajectory) is
    pinned; one more site uniformly at random (the goal) always is, and ``extra`` ~ U{0..max_extra}
    further random sites (waypoints).  Covers "pin index 0 and index k, generate the rest".

    >>> import torch
    >>> a = Anchors(max_extra=0).sample(3, (10,), torch.Generator().manual_seed(1))
    >>> [int((row == 0).sum()) <= 2 for row in a[:, 0]]
    [True, True, True]
    """

    name = "anchors"

    def __init__(self, p_first: float = 0.9, max_extra: int = 2):
        if not 0.0 <= p_first <= 1.0 or int(max_extra) < 0:
            raise ParameterError(f"need 0 <= p_first <= 1 and max_extra >= 0, got {p_first}, {max_extra}")
        self.p_first, self.max_extra = float(p_first), int(max_extra)

    def sample(self, n, shape, generator, device="cpu", dtype=torch.float32, progress=0.0):
        V = int(np.prod(shape))
        pinned = torch.zeros(n, V, dtype=torch.bool)
        pinned[:, 0] = torch.rand(n, generator=generator) < self.p_first
        k = 1 + torch.randint(0, self.max_extra + 1, (n,), generator=generator)
        for j in range(1 + self.max_extra):
            idx = torch.randint(0, V, (n,), generator=generator)
            pinned[torch.arange(n), idx] |= j < k
        t = torch.rand(n, 1, generator=generator, dtype=dtype)
        a = torch.where(pinned, torch.zeros((), dtype=dtype), t.expand(n, V))
        return a.reshape(n, 1, *shape).to(device)

    def to_dict(self):
        return {"name": self.name, "p_first": self.p_first, "max_extra": self.max_extra}


class Mixture(Measure):
    """Per-sample mixture of named measures; ``weights`` is a list (one per component) or a
    curriculum: a list of ``(until_progress, weights)`` stages, progress in [0, 1] being the
    fraction of training done (the last stage applies to the end).

    >>> cur = [(0.3, [1, 0]), (1.0, [0.5, 0.5])]       # diagonal only for the first 30 %
    >>> m = Mixture({"diagonal": Diagonal(), "hypercube": Hypercube()}, cur)
    >>> m.weights_at(0.1), m.weights_at(0.9)
    ([1.0, 0.0], [0.5, 0.5])
    """

    name = "mixture"

    def __init__(self, components: dict, weights):
        if not components:
            raise ParameterError("a mixture needs at least one component")
        self.components = dict(components)
        k = len(self.components)
        if len(weights) and isinstance(weights[0], (list, tuple)):
            stages = [(float(u), [float(w) for w in ws]) for u, ws in weights]
        else:
            stages = [(1.0, [float(w) for w in weights])]
        for u, ws in stages:
            if len(ws) != k or min(ws) < 0 or sum(ws) <= 0 or not np.all(np.isfinite(ws)):
                raise ParameterError(f"mixture weights {ws} must be {k} non-negative numbers with a positive sum")
        if [u for u, _ in stages] != sorted(u for u, _ in stages):
            raise ParameterError("curriculum stages must have increasing 'until' progress")
        self.stages = stages

    def weights_at(self, progress: float) -> list[float]:
        for u, ws in self.stages:
            if progress <= u:
                return [w / sum(ws) for w in ws]
        ws = self.stages[-1][1]
        return [w / sum(ws) for w in ws]

    def sample(self, n, shape, generator, device="cpu", dtype=torch.float32, progress=0.0):
        w = torch.tensor(self.weights_at(progress), dtype=torch.float64)
        choice = torch.multinomial(w, n, replacement=True, generator=generator)
        out = torch.empty((n, 1, *shape), dtype=dtype)
        for i, m in enumerate(self.components.values()):
            idx = (choice == i).nonzero().flatten()
            if len(idx):
                out[idx] = m.sample(len(idx), shape, generator, "cpu", dtype, progress)
        return out.to(device)

    def to_dict(self):
        return {"name": self.name, "components": {k: m.to_dict() for k, m in self.components.items()},
                "stages": [[u, ws] for u, ws in self.stages]}


class Corruptions(Measure):
    """Channels of the :class:`~phi4si.interpolant.operators.Corruption` family, per sample:

    * blur s = 0 with probability ``p_sharp``, else s ~ U(0, ``s_max``) pixels;
    * noise sigma log-uniform on ``sigma_range`` (model units: the data's standard deviation is 1);
    * with probability ``p_mask`` missing pixels, drawn as by :class:`Masks` (an iid fraction or a
      rectangle; observed fraction in [``f_min``, ``f_max``]); else none.

    >>> a = Corruptions().sample(4, (8, 8), torch.Generator().manual_seed(0))
    >>> tuple(a.shape), bool((a[:, 0] <= 3).all() and (a[:, 1] > 0).all())
    ((4, 3, 8, 8), True)
    """

    name = "corruptions"
    a_channels = 3

    def __init__(self, s_max: float = 3.0, p_sharp: float = 0.2, sigma_range=(1e-3, 1.0), p_mask: float = 0.3,
                 f_min: float = 0.2, f_max: float = 0.95):
        lo, hi = (float(v) for v in sigma_range)
        if not (s_max > 0 and 0 <= p_sharp <= 1 and 0 < lo <= hi and 0 <= p_mask <= 1):
            raise ParameterError(f"Corruptions needs s_max > 0, 0 <= p_sharp, p_mask <= 1 and 0 < sigma_lo <= "
                                 f"sigma_hi, got s_max={s_max}, p_sharp={p_sharp}, sigma_range={sigma_range}, "
                                 f"p_mask={p_mask}")
        self.s_max, self.p_sharp, self.sigma_range, self.p_mask = float(s_max), float(p_sharp), (lo, hi), float(p_mask)
        self.masks = Masks(0.5, f_min, f_max)

    def sample(self, n, shape, generator, device="cpu", dtype=torch.float32, progress=0.0):
        shape = tuple(shape)
        one = [1] * len(shape)
        s = self.s_max * torch.rand(n, generator=generator, dtype=torch.float64)
        s = torch.where(torch.rand(n, generator=generator, dtype=torch.float64) < self.p_sharp, 0.0, s)
        lo, hi = np.log(self.sigma_range[0]), np.log(self.sigma_range[1])
        sig = torch.exp(lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64))
        missing = self.masks.sample(n, shape, generator, dtype=torch.float64) > 0
        missing &= (torch.rand(n, generator=generator) < self.p_mask).reshape(n, 1, *one)
        a = torch.cat([s.reshape(n, 1, *one).expand(n, 1, *shape), sig.reshape(n, 1, *one).expand(n, 1, *shape),
                       missing.to(torch.float64)], 1)
        return a.to(device=device, dtype=dtype)

    def to_dict(self):
        return {"name": self.name, "s_max": self.s_max, "p_sharp": self.p_sharp, "sigma_range": list(self.sigma_range),
                "p_mask": self.p_mask, "f_min": self.masks.f_min, "f_max": self.masks.f_max}


_KINDS = {c.name: c for c in (Diagonal, Hypercube, Sequential, Masks, Anchors, Corruptions)}


def measure_from_dict(d: dict) -> Measure:
    """Inverse of ``Measure.to_dict``."""
    d = dict(d)
    name = d.pop("name", None)
    if name == "mixture":
        return Mixture({k: measure_from_dict(v) for k, v in d["components"].items()}, d["stages"])
    if name not in _KINDS:
        raise ParameterError(f"unknown measure {name!r} (known: {sorted(_KINDS) + ['mixture']})")
    return _KINDS[name](**d)


def preset_measure(name: str = "multitask") -> Measure:
    """Named training measures.

    * ``generation``: diagonal only (plain generation; other tasks are then out of support).
    * ``multitask`` (default): diagonal 40 %, inpainting masks 25 %, sequential blocks and
      coarse-to-fine 20 %, per-site hypercube 15 %.
    * ``curriculum``: the paper's appendix B.1 shape - diagonal only for the first 20 % of
      training, then the multitask mixture.
    * ``images``: the multitask mixture whose inpainting masks include noisy observations
      (observed pixels at a <= 0.2, i.e. noise up to a quarter of the data's standard deviation).
    * ``maze``: trajectories - diagonal 30 %, anchors (start, goal, waypoints) 45 %, masks 15 %,
      per-site hypercube 10 %.
    * ``scales``: scale-by-scale work with the ``haar`` family (THEORY.md 8.2): the multitask mixture with
      the coarse-to-fine component at 40 % (diagonal 30 %, masks 10 %, blocks 5 %, hypercube 15 %).  In
      Haar coordinates that component holds the states of super-resolution by a factor 2 and of
      generation level by level, which the multitask mixture visits in 8 % of its draws.
    * ``momenta``: for the ``fourier`` family: diagonal 50 %, momentum shells generated low to high 50 % (4
      shells: the zero mode, then three bins of |p_hat|); the measures a Fourier path can use are those
      whose a(p) is even in p.
    * ``restore``: :class:`Corruptions` (blur, noise, missing pixels) for the ``corruption`` family.
    """
    comps = {"diagonal": Diagonal(), "masks": Masks(), "sequential": Sequential("blocks", (2, 4)),
             "coarse_to_fine": Sequential("coarse_to_fine", levels=3, random_order=False),
             "hypercube": Hypercube()}
    multi = [0.40, 0.25, 0.12, 0.08, 0.15]
    if name == "generation":
        return Diagonal()
    if name == "multitask":
        return Mixture(comps, multi)
    if name == "curriculum":
        return Mixture(comps, [(0.2, [1, 0, 0, 0, 0]), (1.0, multi)])
    if name == "images":
        return Mixture({**comps, "masks": Masks(a_obs_max=0.2)}, multi)
    if name == "maze":
        return Mixture({"diagonal": Diagonal(), "anchors": Anchors(), "masks": Masks(),
                        "hypercube": Hypercube()}, [0.30, 0.45, 0.15, 0.10])
    if name == "scales":
        return Mixture(comps, [0.30, 0.10, 0.05, 0.40, 0.15])
    if name == "momenta":
        return Mixture({"diagonal": Diagonal(), "shells": Sequential("shells", levels=4, random_order=False)},
                       [0.5, 0.5])
    if name == "restore":
        return Corruptions()
    raise ParameterError(f"unknown measure preset {name!r} (choose from {MEASURE_PRESETS})")


#: Names accepted by :func:`preset_measure`.
MEASURE_PRESETS = ("generation", "multitask", "curriculum", "images", "maze", "scales", "momenta", "restore")
