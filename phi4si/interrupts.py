"""Stopping a long run at a consistent point on Ctrl-C (SIGINT) or SIGTERM.

A signal that arrives in the middle of a trajectory or an optimisation step would leave the fields,
the random state and the counters out of step with each other; a checkpoint written from that state
resumes into a different run.  Inside :func:`graceful_stop` the first SIGINT or SIGTERM is only
recorded: the run polls :meth:`Stop.requested` between units of work (trajectories, steps,
chunks), writes its final checkpoint from a consistent state and raises :class:`KeyboardInterrupt`
(exit status 130 on the command line).  A second signal interrupts at once, as usual.

Handlers can be installed only in the main thread; elsewhere (and with ``enabled=False``)
:func:`graceful_stop` changes nothing and ``requested()`` stays False.

A signal can also come while a command starts (importing numba and torch, compiling kernels):
there a :class:`KeyboardInterrupt` may be raised inside a finaliser or a weak-reference callback,
where Python prints "Exception ignored" and goes on.  :func:`watch_start` (installed by the
command line before anything else) raises it *and* records it, so that the next
:func:`graceful_stop` starts as already stopped and the command line ends with exit status 130 even
when the exception was swallowed.  Inside the import of torch the exception is not raised at once:
torch's import runs Python code from C++, and an exception there can abort the whole process; it is
raised as soon as that import is over.

>>> with graceful_stop() as stop:
...     stop.requested()
False
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

__all__ = ["Stop", "graceful_stop", "watch_start", "pending", "settle", "said", "was_said"]

_PENDING: list[int] = []   # signals seen by watch_start's handler, in order
_WATCHING = False          # watch_start's handlers are installed


class Stop:
    """What :func:`graceful_stop` yields: whether a stop was asked for, and by which signal."""

    def __init__(self):
        self.signal: int | None = None

    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal is not None else ""


SAID = "the run said where it stopped"


def said() -> KeyboardInterrupt:
    """The KeyboardInterrupt a run raises once it has saved its state and told the user how to continue
    (the command line then adds nothing to its message)."""
    return KeyboardInterrupt(SAID)


def was_said(e: BaseException) -> bool:
    return isinstance(e, KeyboardInterrupt) and e.args == (SAID,)


def _signals():
    return [signal.SIGINT] + ([signal.SIGTERM] if hasattr(signal, "SIGTERM") else [])


def watch_start() -> None:
    """Install SIGINT/SIGTERM handlers that record the signal (:func:`pending`) and raise
    :class:`KeyboardInterrupt` (see the module docstring); main thread only."""
    global _WATCHING
    if _WATCHING or threading.current_thread() is not threading.main_thread():
        return                   # (installed once: the program's entry and main() both ask for it)
    _WATCHING = True

    def handler(signum, frame):
        _PENDING.append(signum)
        if _inside_torch_import(frame) and _raise_later():
            return
        raise KeyboardInterrupt

    for s in _signals():
        signal.signal(s, handler)
    previous = sys.unraisablehook

    def quiet(u):        # a KeyboardInterrupt swallowed in a finaliser: recorded, acted on at the next poll
        if not (_PENDING and isinstance(u.exc_value, KeyboardInterrupt)):
            previous(u)

    sys.unraisablehook = quiet


_RECHECK_SECONDS = 0.01
_LATER = [False]         # a KeyboardInterrupt is due once torch's import is over


def _inside_torch_import(frame) -> bool:
    """Whether ``frame`` runs inside the import of a torch module.  Torch's import calls Python from
    C++ (pybind11); a KeyboardInterrupt raised there can go through a C++ frame that cannot pass it
    on, and the process aborts (``terminate called after throwing ... error_already_set``)."""
    while frame is not None:
        if frame.f_code.co_name == "<module>" and str(frame.f_globals.get("__name__", "")).split(".")[0] == "torch":
            return True
        frame = frame.f_back
    return False


def _raise_later() -> bool:
    """Raise the KeyboardInterrupt at the first check (every 10 ms, by SIGALRM) that finds torch's
    import over; False where there is no interval timer (then it is raised at once, as before)."""
    if not hasattr(signal, "setitimer"):
        return False
    if _LATER[0]:
        return True

    def recheck(signum, frame):
        if not _LATER[0]:                 # a graceful_stop took the signal over meanwhile
            return
        if _inside_torch_import(frame):
            signal.setitimer(signal.ITIMER_REAL, _RECHECK_SECONDS)
            return
        settle()
        raise KeyboardInterrupt

    _LATER[0] = True
    signal.signal(signal.SIGALRM, recheck)
    signal.setitimer(signal.ITIMER_REAL, _RECHECK_SECONDS)
    return True


def settle() -> None:
    """No KeyboardInterrupt is due any more: the command is over, or a :func:`graceful_stop` took the
    signal over (:func:`pending` still tells that it came)."""
    if _LATER[0]:
        _LATER[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)


def pending() -> int | None:
    """The first signal :func:`watch_start`'s handler saw (None if none)."""
    return _PENDING[0] if _PENDING else None


@contextmanager
def graceful_stop(enabled: bool = True):
    """Defer the first SIGINT/SIGTERM to the next :meth:`Stop.requested` poll (see the module docstring)."""
    stop = Stop()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return
    if _PENDING:                 # a signal during the start-up that was swallowed (or is still due): stop
        stop.signal = _PENDING[0]   # at the first poll
        settle()
    sigs = _signals()
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
