"""Stopping a long run at a consistent point on Ctrl-C (SIGINT) or SIGTERM.

A signal that arrives in the middle of a trajectory or an optimisation step would leave the fields,
the random state and the counters out of step with each other; a checkpoint written from that state
resumes into a different run.  Inside :func:`graceful_stop` the first SIGINT or SIGTERM is only
recorded: the run polls :meth:`Stop.requested` between units of work (trajectories, steps,
chunks), writes its final checkpoint from a consistent state and raises :class:`KeyboardInterrupt`
(exit status 130 on the command line).  A second signal interrupts at once, as usual.

Handlers can be installed only in the main thread; elsewhere (and with ``enabled=False``)
:func:`graceful_stop` changes nothing and ``requested()`` stays False.

>>> with graceful_stop() as stop:
...     stop.requested()
False
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

__all__ = ["Stop", "graceful_stop"]


class Stop:
    """What :func:`graceful_stop` yields: whether a stop was asked for, and by which signal."""

    def __init__(self):
        self.signal: int | None = None

    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""


@contextmanager
def graceful_stop(enabled: bool = True):
    """Defer the first SIGINT/SIGTERM to the next :meth:`Stop.requested` poll (see the module docstring)."""
    stop = Stop()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    sigs = [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])
    old = {s: signal.getsignal(s) for s in sigs}

    def handler(signum, frame):
        if stop.signal is not None:       # asked twice: stop now
            raise KeyboardInterrupt
        stop.signal = signum

    for s in sigs:
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
