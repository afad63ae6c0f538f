"""One writer per output file, and an existing file survives a failed or killed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import h5py
import pytest
from processes import n_done, wait_for

from phi4si.errors import FileBusyError
from phi4si.io import lock_output, lock_path, temporary_name

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
LONG = ["sample-mcmc", "--shape", "16", "16", "--chains", "2", "--n-therm", "10", "--n-traj", "1000000", "--every",
        "100", "--seed", "1", "--flush-seconds", "0.05", "--no-progress"]


def _start(*args):
    return subprocess.Popen([sys.executable, "-m", "phi4si", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def _run(*args):
    return subprocess.run([sys.executable, "-m", "phi4si", *map(str, args)], capture_output=True, text=True, env=ENV,
                          timeout=120)






def test_lock_refuses_a_second_writer_and_names_the_first(tmp_path):
    out = tmp_path / "x.h5"
    with lock_output(out):
        with pytest.raises(FileBusyError, match=rf"x.h5 is being written by another process \(pid {os.getpid()}"):
            with lock_output(out):
                pass
    assert not lock_path(out).exists()
    with lock_output(out):          # free again
        pass


def test_a_live_run_refuses_resume_overwrite_and_a_twin(tmp_path):
    out = tmp_path / "live.h5"
    p = _start(*LONG, "--out", out)
    try:
        wait_for(lambda: n_done(out) > 20, p)
        before = out.stat().st_ino
        for extra in (["--resume"], ["--overwrite"]):
            r = _run(*LONG, "--out", out, *extra)
            assert r.returncode == 1, r.stderr
            assert "is being written by another process (pid" in r.stderr and r.stderr.count("\n") == 1, r.stderr
        assert out.stat().st_ino == before and p.poll() is None        # the live run and its file untouched
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)
    assert p.returncode == 130 and n_done(out) > 20
    assert not lock_path(out).exists()


def test_a_killed_overwrite_keeps_the_old_file(tmp_path):
    out = tmp_path / "old.h5"
    r = _run("sample-mcmc", "--shape", "4", "4", "--n-traj", "20", "--seed", "2", "--out", out, "--no-progress")
    assert r.returncode == 0, r.stderr
    old = out.read_bytes()
    # a long thermalisation and no flush before it ends: killed, the new run has nothing durable
    p = _start("sample-mcmc", "--shape", "16", "16", "--n-therm", "1000000", "--n-traj", "10", "--flush-seconds",
               "1000", "--seed", "3", "--out", out, "--overwrite", "--no-progress")
    wait_for(lambda: any(tmp_path.glob(".old.h5.*.tmp")), p)
    time.sleep(0.5)
    p.kill()
    p.wait(timeout=60)
    assert out.read_bytes() == old
    assert list(tmp_path.glob(".old.h5.*.tmp"))          # what SIGKILL leaves ...
    r = _run("sample-mcmc", "--shape", "4", "4", "--n-traj", "20", "--seed", "4", "--out", out, "--overwrite",
             "--no-progress")
    assert r.returncode == 0, r.stderr
    assert sorted(q.name for q in tmp_path.iterdir()) == ["old.h5"]   # ... the next writer removes


def test_temporary_names_are_per_process(tmp_path):
    assert str(os.getpid()) in temporary_name(tmp_path / "a.h5").name


def test_train_and_write_samples_refuse_a_held_output(tmp_path):
    import numpy as np

    from phi4si import Phi4Params, TrainConfig, sample_mcmc, train
    from phi4si.model.generate import write_samples

    ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), tmp_path / "e.h5", chains=2, n_traj=20, progress=False)
    out = tmp_path / "m.pt"
    with lock_output(out):
        with pytest.raises(FileBusyError):
            train(ens, out, TrainConfig(steps=2, model="tiny", batch_size=4), progress=False)
    assert not out.exists()
    p = Phi4Params((4, 4), -1.0, 1.0)
    with lock_output(tmp_path / "g.h5"):
        with pytest.raises(FileBusyError):
            write_samples(tmp_path / "g.h5", np.zeros((2, 4, 4)), p, {"sampler": "test"}, {})


def test_a_failed_write_samples_keeps_the_old_file(tmp_path, monkeypatch):
    import numpy as np

    from phi4si import Phi4Params, store
    from phi4si.model.generate import write_samples

    p = Phi4Params((4, 4), -1.0, 1.0)
    out = write_samples(tmp_path / "g.h5", np.zeros((2, 4, 4)), p, {"sampler": "test"}, {})
    old = out.read_bytes()

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.ConfigurationWriter, "append", boom)
    with pytest.raises(OSError):
        write_samples(out, np.ones((3, 4, 4)), p, {"sampler": "test"}, {}, overwrite=True)
    assert out.read_bytes() == old
    assert sorted(q.name for q in tmp_path.iterdir()) == ["g.h5"]


def test_a_full_disk_stops_cleanly_and_resumes_bit_identical(tmp_path, monkeypatch):
    """The free space seen by the run drops to nothing after a few checkpoints: the run stops with
    DiskFullError before writing, the file holds the run to its last checkpoint, and --resume (with
    space again) ends exactly where an uninterrupted run ends."""
    import shutil

    import numpy as np

    from phi4si import Phi4Params, open_ensemble, sample_mcmc
    from phi4si.errors import DiskFullError

    p = Phi4Params((8, 8), -4.0, 8.0)
    kw = dict(chains=2, n_traj=120, n_therm=10, every=1, seed=5, progress=False, flush_seconds=1e-9)
    ref = sample_mcmc(p, tmp_path / "ref.h5", **kw)
    real, calls = shutil.disk_usage, []

    def usage(path):
        calls.append(1)
        u = real(path)
        return u._replace(free=0) if len(calls) > 30 else u

    monkeypatch.setattr(shutil, "disk_usage", usage)
    out = tmp_path / "full.h5"
    with pytest.raises(DiskFullError, match=r"disk is nearly full .* holds the run up to measurement \d+, intact; free space and continue with --resume"):
        sample_mcmc(p, out, **kw)
    monkeypatch.setattr(shutil, "disk_usage", real)
    with open_ensemble(out) as ds:
        n = int(ds.attrs["n_done"])
        assert 0 < n < 120 and np.isfinite(ds["phi"].values).all()
    assert sorted(q.name for q in tmp_path.iterdir()) == ["full.h5", "ref.h5"]
    sample_mcmc(p, out, resume=True, **kw)
    with h5py.File(ref, "r") as a, h5py.File(out, "r") as b:
        for k in ("m", "S", "phi", "state/phi"):
            assert np.array_equal(a[k][...], b[k][...]), k
