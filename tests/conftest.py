"""Shared test set-up.

* matplotlib draws off-screen (``MPLBACKEND=Agg``) and progress bars stay quiet, so the
  suite runs the same on a headless CI machine as on a laptop;
* the ``cli`` fixture runs ``phi4si.cli.main`` in-process and returns
  ``(exit_code, stdout, stderr)``, turning argparse's ``SystemExit`` into an exit code.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("PHI4SI_PROGRESS", None)


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``phi4si ARGS...`` in this process: (exit code, stdout, stderr)."""
    from phi4si.cli import main

    capsys.readouterr()  # drop anything printed before
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:  # argparse errors (2), --help and --version (0)
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def cli(capsys):
    """``cli("sample-mcmc", "--shape", 4, 4, ...) -> (rc, stdout, stderr)``."""

    def _run(*args):
        return run_cli(capsys, *args)

    return _run


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Small models on a shared 2-core machine: one torch thread per test process is as fast as two
    and does not collapse when another process competes for the cores (see phi4si.nn.unet)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
