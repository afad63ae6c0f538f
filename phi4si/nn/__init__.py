"""Neural networks for drifts of operator interpolants on lattices, images and sequences.

:class:`LatticeUNet` (built from a :class:`UNetConfig` or a :func:`preset`) maps a field ``x`` and a
per-site time ``a`` to a drift; :mod:`phi4si.nn.augment` draws random lattice symmetries.

>>> import torch
>>> from phi4si.nn import LatticeUNet, preset
>>> model = LatticeUNet(preset("tiny"))
>>> model(torch.randn(2, 1, 8, 8), torch.rand(2, 1, 8, 8)).shape
torch.Size([2, 1, 8, 8])
"""

from .augment import SymmetryDraw, apply_symmetry, random_symmetry, sample_symmetry
from .unet import A_FEATURES, DEFAULT_A_FEATURES, LatticeUNet, UNetConfig, count_parameters, preset

__all__ = [
    "A_FEATURES",
    "DEFAULT_A_FEATURES",
    "LatticeUNet",
    "UNetConfig",
    "count_parameters",
    "preset",
    "SymmetryDraw",
    "apply_symmetry",
    "random_symmetry",
    "sample_symmetry",
]
