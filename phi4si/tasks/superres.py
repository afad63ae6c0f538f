"""Lattice fields scale by scale in Haar coordinates (THEORY.md 8.2): super-resolution (fine configurations
given their block averages, the inverse of a blocking step) and coarse-to-fine generation.

With the :class:`~phi4si.interpolant.operators.Haar` family the block averages of side b = 2^l are
coordinates (the block-sum coefficients, b^(d/2) x the average), so sampling a fine field given its blocked
one is inpainting in wavelet coordinates: the block sums are pinned at a = 0 and every detail coefficient
moves from a = 1 (noise) to 0.  The start state is I = alpha(a0) z + beta(a0) x_c with x_c any field with
the given block averages (the blocks filled with their average); the transport of THEORY 4.3 then samples
the conditional law of the fine field given the coarse one, exactly for the exact drift (the Gaussian oracle
checks it), and the block averages of the result equal the input to float64 round-off.

>>> import numpy as np
>>> from phi4si.interpolant.operators import Haar
>>> from phi4si.interpolant.oracle import GaussianOracle, free_field_covariance
>>> from phi4si.lattice import Phi4Params
>>> from phi4si.model import DriftModel
>>> orc = GaussianOracle(np.zeros(16), free_field_covariance((4, 4), 1.0), (4, 4), family=Haar(levels=1))
>>> model = DriftModel(orc, Phi4Params((4, 4), m2=1.0, lam=0.0))
>>> coarse = np.array([[[0.5, -0.5], [1.0, 0.0]]])
>>> fine = superresolve(model, coarse, 2, steps=10)
>>> bool(np.allclose(block_average(fine, 2), coarse, atol=1e-10))
True
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ParameterError
from ..interpolant.operators import Haar
from ..interpolant.paths import InpaintPath, SequentialPath

__all__ = ["block_average", "block_fill", "haar_groups", "superres_shape", "superres_path", "superres_start",
           "keep_blocks", "superresolve", "coarse_to_fine_path"]


def block_average(phi, b: int) -> np.ndarray:
    """Averages over blocks of side ``b`` of fields (N, *shape) (every side divisible by b)."""
    x = np.asarray(phi, dtype=np.float64)
    shape = x.shape[1:]
    b = int(b)
    if b < 1 or any(L % b for L in shape):
        raise ParameterError(f"block factor {b} does not divide the lattice {shape}")
    new = [x.shape[0]]
    for L in shape:
        new += [L // b, b]
    return x.reshape(new).mean(axis=tuple(range(2, 2 * len(shape) + 1, 2)))


def block_fill(coarse, b: int) -> np.ndarray:
    """The fine field whose blocks of side ``b`` are constant at the coarse values (N, *coarse_shape)."""
    c = np.asarray(coarse, dtype=np.float64)
    for ax in range(1, c.ndim):
        c = np.repeat(c, int(b), axis=ax)
    return c


def _level(fam, factor) -> int:
    lev = int(round(np.log2(factor))) if factor >= 1 else -1
    if factor < 2 or 2 ** lev != factor or lev > fam.levels:
        raise ParameterError(f"block factor {factor}: the model's Haar family resolves blocks of side 2, ..., "
                             f"{2 ** fam.levels} (powers of two)")
    return lev


def _haar(model):
    fam = getattr(model.drift(), "family", None)
    if not isinstance(fam, Haar):
        raise ParameterError(f"super-resolution needs a model of the Haar family (block averages as coordinates), "
                             f"this one has {fam!r}; train with family='haar'")
    return fam


def superres_shape(model, coarse_shape, factor: int) -> tuple:
    """The fine lattice of super-resolution by ``factor`` from ``coarse_shape``, checked: a model of the Haar
    family, a factor it resolves (a power of two up to 2^levels), a fine lattice it accepts."""
    fam = _haar(model)
    _level(fam, int(factor))
    if len(coarse_shape) != fam.ndim:
        raise ParameterError(f"coarse lattice {tuple(coarse_shape)}: the model is {fam.ndim}-dimensional")
    shape = fam.check_shape(tuple(int(factor) * int(L) for L in coarse_shape))
    return tuple(model.check_shape(shape))


def superres_path(fam: Haar, shape, factor: int, scale_by_scale: bool = False):
    """The path of super-resolution by ``factor``: the block sums of side ``factor`` pinned at a = 0 and every
    finer coefficient moving from noise to data, all at once (an :class:`InpaintPath`) or, with
    ``scale_by_scale``, level by level from the coarsest detail to the finest (a :class:`SequentialPath`: a
    chain factor -> factor/2 -> ... -> 1 whose intermediate block averages are drawn before the finer
    details, and never changed by them)."""
    lev = _level(fam, int(factor))
    keep = fam.coarse_mask(shape, lev)
    if not scale_by_scale or lev == 1:
        return InpaintPath(~keep)
    groups = [fam.coarse_mask(shape, j - 1) & ~fam.coarse_mask(shape, j) for j in range(lev, 0, -1)]
    return SequentialPath(groups, observed=keep)


def superresolve(model, coarse, factor: int, steps: int = 50, solver: str = "heun", seed: int = 0,
                 scale_by_scale: bool = False, batch_size: int = 512, z2: str = "auto", progress: bool | None = None,
                 output=None) -> np.ndarray | None:
    """Fine configurations (N, *shape) sampled given their averages over blocks of side ``factor``
    (``coarse``: (N, *coarse_shape), physical units), from a model of the Haar family (a trained one, or a
    :class:`~phi4si.model.DriftModel` around an exact drift).  ``scale_by_scale``: the details level by level
    (:func:`superres_path`; ``steps`` per level), else all at once.  ``z2``: the random global sign of a
    one-pass model of a symmetric prior (the coarse field is flipped with the sample, so the law given it is
    the symmetrised one).  ``output``: a :class:`~phi4si.model.output.SampleFile` written batch by batch
    (resumable), as for :func:`~phi4si.model.generate.generate`; nothing is returned then."""
    from ..model.solve import SolveSettings, run_task

    c, shape, path, start = superres_start(model, coarse, factor, scale_by_scale)
    settings = SolveSettings(steps, solver, None, seed, batch_size, 1.0, progress, z2)

    def finish(phi, i):
        keep_blocks(phi, c[i:i + len(phi)], factor)

    return run_task(model, len(c), shape, start, path, settings, finish=finish, output=output,
                    task=f"superres x{factor}")


def superres_start(model, coarse, factor: int, scale_by_scale: bool = False):
    """(coarse fields as float64, fine shape, path, start) of super-resolution by ``factor``, every input
    checked: ``start(z, i, b)`` is the start state I = alpha(a0) z + beta(a0) x_c of coarse fields i..i+b
    for noise z (normalised units; x_c: the blocks filled with their averages)."""
    fam = _haar(model)
    c = np.asarray(coarse, dtype=np.float64)
    if c.ndim != fam.ndim + 1 or len(c) == 0 or not np.isfinite(c).all():
        raise ParameterError(f"coarse fields must be a finite, non-empty (N, {', '.join(['L'] * fam.ndim)}) array, "
                             f"got shape {c.shape}")
    factor = int(factor)
    shape = superres_shape(model, c.shape[1:], factor)
    x_c = model.to_normalised(torch.from_numpy(block_fill(c, factor))[:, None])
    path = superres_path(fam, shape, factor, scale_by_scale)
    a0 = path.a(0.0).to(torch.float64)
    return c, shape, path, lambda z, i, b: fam.interpolate(z.double(), x_c[i:i + b], a0)


def keep_blocks(phi, coarse, factor: int) -> np.ndarray:
    """Set the block averages of ``phi`` to ``coarse`` to float64 round-off, in place (a float32 network's
    drift leaves them ~1e-8 off); returns ``phi``."""
    phi += block_fill(coarse - block_average(phi, factor), factor)
    return phi


def haar_groups(fam: Haar, shape) -> list:
    """Coefficient groups from coarse to fine: the block sums of side 2^levels, then the details of each
    level from the coarsest to the finest (boolean masks of ``shape``)."""
    groups = [fam.coarse_mask(shape)]
    for lev in range(fam.levels, 0, -1):
        groups.append(fam.coarse_mask(shape, lev - 1) & ~fam.coarse_mask(shape, lev))
    return groups


def coarse_to_fine_path(fam: Haar, shape) -> SequentialPath:
    """Generation scale by scale: the :func:`haar_groups` one after another, each from noise to data."""
    return SequentialPath(haar_groups(fam, fam.check_shape(shape)))
