"""What the machine has: its memory, and how phi4si says a size.  The up-front refusals of runs that
cannot fit (sample-mcmc's fields and file, the trainer's step, a U-Net's parameters) compare their
estimates with these.

>>> format_bytes(3 * 2**40), format_bytes(5 * 2**20)
('3 TiB', '5 MiB')
>>> physical_memory() is None or physical_memory() > 2**20
True
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

__all__ = ["physical_memory", "format_bytes", "free_space", "torch_threads_kept", "exit_now"]


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (psutil if installed, else sysconf); None where unknown."""
    try:
        import psutil

        return int(psutil.virtual_memory().total)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def format_bytes(n: float) -> str:
    """A size in the largest binary unit below it (MiB at least), to 3 significant digits."""
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 2**20:.3g} MiB"


def free_space(path, replacing: bool = False) -> int | None:
    """Bytes a new file at ``path`` may take: the free space of its folder, plus the size of the file
    already there when the run replaces or continues it (``replacing``); None where the folder
    cannot be asked (a missing folder is refused elsewhere, with its own message)."""
    import shutil

    path = os.path.abspath(os.fspath(path))
    try:
        free = shutil.disk_usage(os.path.dirname(path)).free
    except OSError:
        return None
    if replacing and os.path.isfile(path):
        free += os.path.getsize(path)
    return free


@contextmanager
def torch_threads_kept():
    """Keep torch's CPU thread count across a numba parallel kernel.  numba's OpenMP threading layer
    sets the process's OpenMP thread count when a parallel region starts, and torch's intra-op pool is
    the same OpenMP runtime: without this, one call of an ensemble measurement turns a model run with
    one torch thread into two (slower on a busy machine, and the float32 convolutions then sum in
    another order: results 1 ulp apart, e.g. a resumed run against an uninterrupted one).  Nothing
    happens when torch is not loaded.

    >>> with torch_threads_kept():
    ...     pass
    """
    torch = sys.modules.get("torch")
    n = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        if torch is not None and torch.get_num_threads() != n:
            torch.set_num_threads(n)


def exit_now(status: int) -> None:
    """Flush stdout and stderr and end the process with ``status`` at once: no finalisers, no atexit
    handlers, no interpreter shutdown (for a program whose files are all consistent on disk already)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)
