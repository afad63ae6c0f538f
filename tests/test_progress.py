"""One rule for progress bars (phi4si.progress): terminals and notebooks only, unless forced."""

import io
import sys

import pytest

from phi4si import progress


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


@pytest.mark.parametrize("tty,env,expect", [(True, None, True), (False, None, False), (False, "1", True),
                                            (True, "0", False)])
def test_bars_only_where_someone_watches(monkeypatch, tty, env, expect):
    monkeypatch.setattr(sys, "stderr", _Stream(tty))
    monkeypatch.delitem(sys.modules, "ipykernel.kernelapp", raising=False)
    if env is None:
        monkeypatch.delenv("PHI4SI_PROGRESS", raising=False)
    else:
        monkeypatch.setenv("PHI4SI_PROGRESS", env)
    assert progress.wanted(None) is expect
    assert progress.wanted(True) is True and progress.wanted(False) is False


def test_a_notebook_counts_as_watched_an_imported_ipykernel_does_not(monkeypatch):
    import types

    monkeypatch.setattr(sys, "stderr", _Stream(False))
    monkeypatch.delenv("PHI4SI_PROGRESS", raising=False)
    running = types.SimpleNamespace(IPKernelApp=types.SimpleNamespace(initialized=lambda: True))
    idle = types.SimpleNamespace(IPKernelApp=types.SimpleNamespace(initialized=lambda: False))
    monkeypatch.setitem(sys.modules, "ipykernel.kernelapp", running)
    assert progress.wanted(None)
    monkeypatch.setitem(sys.modules, "ipykernel.kernelapp", idle)          # imported by a test runner, say
    assert not progress.wanted(None)


def test_cli_logs_stay_free_of_bars_and_progress_forces_one(cli, tmp_path):
    """stderr is captured (not a terminal): no bar by default; --progress draws one, labelled by task."""
    rc, _, err = cli("sample-mcmc", "--shape", 4, 4, "--n-traj", 50, "--n-therm", 5, "--out", tmp_path / "a.h5")
    assert rc == 0 and "sample-mcmc hmc" not in err and "traj/s" not in err, err
    rc, _, err = cli("sample-mcmc", "--shape", 4, 4, "--n-traj", 50, "--n-therm", 5, "--out", tmp_path / "b.h5",
                     "--progress")
    assert rc == 0 and "sample-mcmc hmc" in err, err
    rc, _, err = cli("sample-mcmc", "--shape", 4, 4, "--n-traj", 5, "--out", tmp_path / "c.h5", "--progress",
                     "--no-progress")
    assert rc == 2 and "not allowed with argument" in err
