"""phi4si: lattice phi^4 sampling and multitask stochastic interpolants.

Importing the package is cheap: numba kernels compile (and are cached) on first use,
torch is imported only by the modules that need it.

>>> import phi4si
>>> p = phi4si.Phi4Params((16, 16), m2=-4.0, lam=4.572)
>>> p.volume
256
"""

from __future__ import annotations

from ._version import __version__
from .errors import Phi4siError
from .lattice.params import Phi4Params

__all__ = ["__version__", "Phi4Params", "Phi4siError", "open_ensemble", "sample_mcmc", "analyze"]


def __getattr__(name):
    if name == "open_ensemble":
        from .store import open_ensemble

        return open_ensemble
    if name == "sample_mcmc":
        from .mcmc.run import sample_mcmc

        return sample_mcmc
    if name == "analyze":
        from .analysis.report import analyze_file

        return analyze_file
    raise AttributeError(f"module 'phi4si' has no attribute {name!r}")
