"""Typed errors of phi4si.

Every error says what went wrong and what to do about it.  All derive from
:class:`Phi4siError`, so ``except phi4si.errors.Phi4siError`` catches them all;
each also derives from the closest built-in (``ValueError``, ``FileExistsError``,
...) so generic handlers keep working.
"""

from __future__ import annotations


class Phi4siError(Exception):
    """Base class of every error phi4si raises on purpose."""


class ParameterError(Phi4siError, ValueError):
    """Invalid physical or sampler parameters (e.g. ``lam < 0``, a side < 2, NaN)."""


class EnsembleFileError(Phi4siError, OSError):
    """An ensemble file is missing, corrupted, incompatible, or not an ensemble."""


class OutputExistsError(Phi4siError, FileExistsError):
    """Refusing to overwrite an existing output file (pass ``overwrite=True``)."""


class FileBusyError(EnsembleFileError):
    """The file is open in another process (HDF5 file lock); try again later."""


class ResumeError(Phi4siError, ValueError):
    """A ``--resume`` request does not match the file it would continue."""


class SamplerDivergedError(Phi4siError, FloatingPointError):
    """A chain's field became non-finite (step size too large for an unadjusted scheme)."""


class DiskFullError(Phi4siError, OSError):
    """Too little free space for the next checkpoint: the run stopped before writing it, so the file
    holds the run up to its last checkpoint intact; free space and continue with ``--resume``."""


class OutputWriteError(Phi4siError, OSError):
    """Writing an output failed (no space, a file-size limit or quota, a read-only or failing disk):
    the run stopped; a file that had reached its name holds the run up to its last checkpoint."""


class CheckpointError(Phi4siError):
    """A model file that is missing, not a phi4si checkpoint, or incompatible with the request."""


class TrainingDivergedError(Phi4siError):
    """The loss became NaN or infinite."""


class InfeasibleRewardError(Phi4siError, ValueError):
    """The reward transform has no solution at some sites and times (A > 0 near the noise end)."""
