"""Progress bars, one rule for every long loop (sampling, training, generation, exact sampling, planning).

``progress`` is ``True`` (show a bar), ``False`` (none) or ``None``, the default of the commands and of
the long-running library functions: a bar only where someone watches - standard error is a terminal,
or the code runs in a Jupyter kernel - so logs and pipes stay free of bar lines.  The environment
variable ``PHI4SI_PROGRESS=1`` (or ``0``) forces the answer for ``None``; the commands' ``--progress``
and ``--no-progress`` force it per run.  Bars are labelled by task and show totals and a rate
(tqdm's ETA included).

>>> bar(10, "demo", enabled=False) is None
True
>>> wanted(True), wanted(False)
(True, False)
"""

from __future__ import annotations

import os
import sys

__all__ = ["wanted", "bar"]


def wanted(enabled: bool | None = None) -> bool:
    """Whether a bar is shown: ``enabled`` itself when given, else the rule of the module docstring."""
    if enabled is not None:
        return bool(enabled)
    env = os.environ.get("PHI4SI_PROGRESS")
    if env is not None and env.strip() in ("0", "1"):
        return env.strip() == "1"
    try:
        tty = sys.stderr.isatty()
    except (AttributeError, ValueError):       # a replaced or closed stderr
        tty = False
    return tty or _in_kernel()


def _in_kernel() -> bool:
    """Running inside a Jupyter kernel (not merely with ipykernel imported, as a test runner may have)."""
    app = sys.modules.get("ipykernel.kernelapp")
    try:
        return bool(app is not None and app.IPKernelApp.initialized())
    except Exception:                             # an ipykernel without that API: no bar rather than an error
        return False


def bar(total, desc: str, unit: str = "it", initial: int = 0, enabled: bool | None = None):
    """A tqdm bar labelled ``desc`` (None when :func:`wanted` says no)."""
    if not wanted(enabled):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=None if total is None else int(total), initial=int(initial), desc=desc, unit=unit,
                dynamic_ncols=True)
