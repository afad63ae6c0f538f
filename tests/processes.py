"""Helpers of the tests that run ``phi4si`` as a separate process and interrupt it (test_faults.py,
test_interrupts.py, test_writers.py)."""

from __future__ import annotations

import time

import h5py


def n_done(path) -> int:
    """The committed measurement count of an ensemble file being written (0 while it has none)."""
    try:
        with h5py.File(path, "r", swmr=True, locking=False) as f:
            return int(f["state/counters"][0])
    except (OSError, KeyError):
        return 0


def wait_for(cond, proc, timeout: float = 120.0) -> None:
    """Poll ``cond()`` until it holds; fail if the process ends first or after ``timeout`` seconds."""
    t0 = time.time()
    while not cond():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the fault: {proc.communicate()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.02)
