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

__all__ = ["physical_memory", "format_bytes"]


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
