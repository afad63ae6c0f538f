"""phi4si: lattice phi^4 sampling and multitask stochastic interpolants.

What a notebook needs is here, imported lazily (importing the package is cheap: numba kernels
compile, and are cached, on first use; torch is imported only by the model side):

ground truth and analysis
    :class:`Phi4Params` (lattice and couplings), :func:`sample_mcmc` (HMC, FA-HMC, Langevin, MALA ->
    ensemble file), :func:`open_ensemble` (file -> ``xarray.Dataset``), :func:`analyze` (file ->
    observables with Gamma-method errors), :func:`format_table`
the trained model
    :func:`train`, :class:`TrainConfig`, :func:`load_model`
one model, many tasks
    :func:`generate`, :func:`inpaint`, :func:`sequential`, :func:`sample_posterior` with a
    :class:`Posterior` (rewards h, k), :func:`write_samples`
exactness
    :func:`log_prob` and :func:`sample_with_log_prob` (the model's log q), :class:`FlowSettings`,
    :func:`log_weights` (importance weights against exp(-S)), :func:`sample_neural` (reweighting,
    independence Metropolis, block and hybrid updates -> ensemble file)

>>> import phi4si
>>> p = phi4si.Phi4Params((16, 16), m2=-4.0, lam=4.572)
>>> p.volume
256
>>> sorted(set(phi4si.__all__) - {"__version__"})[:4]
['FlowSettings', 'Phi4Params', 'Phi4siError', 'Posterior']
"""

from __future__ import annotations

from ._version import __version__
from .errors import Phi4siError

# public name -> (module, attribute): the one table of the lazy top-level API (nothing heavy is imported
# with the package itself: ``phi4si`` starts in milliseconds, so the program's Ctrl-C handling is in
# place before numpy is loaded)
_LAZY = {
    "Phi4Params": ("lattice.params", "Phi4Params"),
    "open_ensemble": ("store", "open_ensemble"),
    "sample_mcmc": ("mcmc.run", "sample_mcmc"),
    "analyze": ("analysis.report", "analyze_file"),
    "format_table": ("analysis.report", "format_table"),
    "compare": ("analysis.compare", "compare"),
    "configurations": ("analysis.compare", "configurations"),
    "train": ("model.train", "train"),
    "TrainConfig": ("model.train", "TrainConfig"),
    "load_model": ("model.checkpoint", "load_model"),
    "generate": ("model.generate", "generate"),
    "inpaint": ("model.generate", "inpaint"),
    "sequential": ("model.generate", "sequential"),
    "sample_posterior": ("model.generate", "sample_posterior"),
    "write_samples": ("model.generate", "write_samples"),
    "Posterior": ("model.posterior", "Posterior"),
    "FlowSettings": ("model.density", "FlowSettings"),
    "log_prob": ("model.density", "log_prob"),
    "sample_with_log_prob": ("model.density", "sample"),
    "log_weights": ("analysis.weights", "log_weights"),
    "sample_neural": ("model.exact", "sample_neural"),
}

__all__ = ["__version__", "Phi4siError", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{mod}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'phi4si' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
