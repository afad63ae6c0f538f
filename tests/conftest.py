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
