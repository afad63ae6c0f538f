"""Ensemble files: bit-identical resume, files of killed runs, open_ensemble, h5netcdf."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import xarray as xr

from phi4si.errors import EnsembleFileError, OutputExistsError, ResumeError
from phi4si.lattice import Phi4Params
from phi4si.mcmc.run import sample_mcmc
from phi4si.store import open_ensemble

P = Phi4Params((6, 4), m2=-4.0, lam=8.0)
DATASETS = ("m", "S", "accepted", "dH", "gp", "phi", "traj", "cfg")


def _arrays(path):
    with h5py.File(path, "r") as f:
        n = int(f.attrs["n_done"])
        out = {k: f[k][...] for k in DATASETS}
        out["state"] = f["state/phi"][...]
        out["rng"] = f["state/rng"][...]
        out["counters"] = f["state/counters"][:4]  # all but wall time
        out["eps"] = f.attrs["eps"]
        out["n"] = n
    return out


def assert_same(a, b):
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("sampler,stop", [("hmc", 7), ("hmc", 25), ("fahmc", 18), ("mala", 18), ("langevin", 4)])
def test_resume_is_bit_identical(tmp_path, sampler, stop):
    """Stop after `stop` trajectories (during thermalisation if < n_therm), resume, compare bits."""
    kw = dict(sampler=sampler, chains=3, n_traj=20, n_therm=10, every=3, seed=7, progress=False, dtype="float32",
              flush_seconds=1e9)
    full = tmp_path / "full.h5"
    part = tmp_path / "part.h5"
    sample_mcmc(P, full, **kw)
    sample_mcmc(P, part, max_trajectories=stop, **kw)
    assert _arrays(part)["n"] == max(0, stop - 10)
    sample_mcmc(P, part, resume=True, **kw)
    assert_same(_arrays(full), _arrays(part))


def test_resume_extends_and_checks_settings(tmp_path):
    kw = dict(chains=2, n_therm=5, seed=3, progress=False)
    a = tmp_path / "a.h5"
    b = tmp_path / "b.h5"
    sample_mcmc(P, a, n_traj=30, **kw)
    sample_mcmc(P, b, n_traj=12, **kw)
    sample_mcmc(P, b, n_traj=30, resume=True, **kw)
    assert_same(_arrays(a), _arrays(b))
    before = b.read_bytes()
    with pytest.raises(ResumeError):
        sample_mcmc(P, b, n_traj=40, resume=True, chains=2, n_therm=5, seed=4, progress=False)
    with pytest.raises(ResumeError):
        sample_mcmc(P.with_rewards(h=0.1), b, n_traj=40, resume=True, **kw)
    with pytest.raises(ResumeError):
        sample_mcmc(P, b, n_traj=40, resume=True, sampler="mala", **kw)
    with pytest.raises(ResumeError):
        sample_mcmc(P, b, n_traj=10, resume=True, **kw)
    with pytest.raises(OutputExistsError):
        sample_mcmc(P, b, n_traj=10, **kw)
    assert b.read_bytes() == before  # nothing clobbered
    with pytest.raises(ResumeError):
        sample_mcmc(P, tmp_path / "missing.h5", n_traj=10, resume=True, **kw)


def test_killed_run_leaves_readable_file_and_resumes(tmp_path):
    """SIGKILL a running `phi4si sample-mcmc`; the file opens, and --resume equals an uninterrupted run."""
    out = tmp_path / "k.h5"
    # long enough (40000 trajectories) that it cannot finish before the reader sees 200 of them
    args = [sys.executable, "-m", "phi4si", "sample-mcmc", "--shape", "16", "16", "--m2", "-4", "--lam", "8",
            "--chains", "4", "--n-therm", "20", "--every", "50", "--seed", "5", "--flush-seconds", "0.05",
            "--no-progress"]
    proc = subprocess.Popen(args + ["--n-traj", "40000", "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            with h5py.File(out, "r", swmr=True) as f:  # the live file, read while it is written
                n = int(f["state/counters"][0])
        except (OSError, KeyError):
            continue
        if n >= 200:
            break
    assert proc.poll() is None, "run finished before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    ds = open_ensemble(out)  # readable, with every completed measurement up to the last flush
    assert ds.sizes["traj"] >= 200 and ds.sizes["traj"] < 40000
    assert np.all(np.isfinite(ds.m.values))
    ds.close()
    # resume to a shorter target than the original run, then compare to an uninterrupted run
    n_target = max(n, ds.sizes["traj"]) + 100
    common = ["--n-traj", str(n_target)]
    r = subprocess.run(args + common + ["--out", str(out), "--resume"], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    ref = tmp_path / "ref.h5"
    r = subprocess.run(args + common + ["--out", str(ref)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    assert_same(_arrays(ref), _arrays(out))


def test_open_ensemble_dims_and_h5netcdf(tmp_path):
    out = tmp_path / "e.h5"
    sample_mcmc(Phi4Params((4, 3, 2), m2=1.0, lam=0.5), out, chains=2, n_traj=9, n_therm=2, every=2, seed=1,
                progress=False, dtype="float32")
    ds = open_ensemble(out)
    assert ds.phi.dims == ("chain", "cfg", "x0", "x1", "x2")
    assert ds.m.dims == ("chain", "traj")
    assert ds.phi.dtype == np.float32
    assert list(ds.cfg.values) == [0, 2, 4, 6, 8]
    assert ds.attrs["params"]["shape"] == [4, 3, 2]
    assert ds.attrs["run"]["seed"] == 1 and ds.attrs["sampler"]["sampler"] == "hmc"
    assert 0 < ds.attrs["acceptance"] <= 1 and ds.attrs["eps"] > 0 and ds.attrs["wall_time"] > 0
    # the stored magnetisation is the mean of the stored configuration
    np.testing.assert_allclose(ds.phi.mean(("x0", "x1", "x2")).values, ds.m.sel(traj=ds.cfg.values).values, rtol=1e-5)
    ds.close()
    raw = xr.open_dataset(out, engine="h5netcdf")
    assert raw.phi.shape == (2, 5, 4, 3, 2)
    raw.close()


def test_open_ensemble_ignores_unfinished_flush(tmp_path):
    """Data beyond n_done (a flush killed before its final write) are not exposed, and resume drops them."""
    out = tmp_path / "u.h5"
    kw = dict(chains=2, n_traj=10, n_therm=0, every=1, seed=2, progress=False)
    sample_mcmc(P, out, **kw)
    with h5py.File(out, "r+") as f:
        f["state/counters"][0] = 6  # n_done
    ds = open_ensemble(out)
    assert ds.sizes["traj"] == 6 and ds.sizes["cfg"] == 6
    ds.close()


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file at all"])
def test_open_bad_files(tmp_path, content):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(content)
    with pytest.raises(EnsembleFileError):
        open_ensemble(bad)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(EnsembleFileError):
        open_ensemble(tmp_path / "other.h5")
    with pytest.raises(EnsembleFileError):
        open_ensemble(tmp_path / "missing.h5")


def test_resume_is_recorded_in_the_file(tmp_path):
    """Each resume appends {date, command, version, n_done, n_traj} to run["resumed"]; the original
    run's record (command, date, version) is kept."""
    kw = dict(chains=2, n_therm=2, seed=3, progress=False)
    out = tmp_path / "r.h5"
    sample_mcmc(P, out, n_traj=6, command="first", **kw)
    sample_mcmc(P, out, n_traj=8, resume=True, command="second", **kw)
    sample_mcmc(P, out, n_traj=8, resume=True, **kw)  # complete: a no-op, but still an invocation on the file
    ds = open_ensemble(out)
    run = ds.attrs["run"]
    ds.close()
    assert run["command"] == "first" and run["n_traj"] == 8 and run["date"]
    assert [r["command"] for r in run["resumed"]] == ["second", ""]
    assert [(r["n_done"], r["n_traj"]) for r in run["resumed"]] == [(6, 8), (8, 8)]
    from phi4si import __version__

    assert all(r["version"] == __version__ and r["date"] >= run["date"] for r in run["resumed"])
