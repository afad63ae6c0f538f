"""Guards of sample-mcmc (issue 19): hopeless runs are refused before anything is allocated or written,
stuck exact samplers stop with SamplerDivergedError, frozen ones warn once, absurd couplings are refused.

Each refusal is checked for its exit status (or typed error), one line naming the setting, and that
nothing was written (no output file; an existing file byte-identical).  Small 4x4 / 8x8 lattices, short
runs: the whole file takes a few seconds.
"""

from __future__ import annotations

from phi4si import resources

from pathlib import Path

import h5py
import numpy as np
import pytest

from phi4si import Phi4Params, sample_mcmc
from phi4si.errors import ParameterError, SamplerDivergedError
from phi4si.lattice.params import coupling_bound
from phi4si.mcmc import run as mrun

QUICK = ("--n-traj", 30, "--n-therm", 5, "--chains", 2, "--seed", 1)


def _one_line_error(rc, err, *names):
    assert rc == 1, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("phi4si sample-mcmc: error: "), err
    for n in names:
        assert n in lines[0], (n, err)
    return lines[0]


@pytest.fixture
def existing(tmp_path):
    """An existing ensemble file (for --overwrite), with its bytes."""
    path = tmp_path / "old.h5"
    sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), path, chains=1, n_traj=5, n_therm=2, progress=False)
    return path, path.read_bytes()


# ------------------------------------------------------------------------------- refused up front
@pytest.mark.parametrize("args, names", [
    (("--chains", 100_000_000), ("memory", "--chains", "GiB")),
    (("--shape", 100_000, 100_000), ("memory", "--shape", "GiB")),
    (("--shape",) + (8,) * 15, ("memory", "--shape", "PiB")),
    (("--shape",) + (2,) * 63, ("63-dimensional lattice is not supported", "--shape")),
    (("--n-traj", 10**12, "--every", 1), ("--n-traj", "--every", "PiB", "free")),
    (("--n-traj", 10**12, "--every", 0), ("--n-traj", "free")),
    (("--lam", 1e300), ("lam=1e+300", "float64")),
    (("--m2", -1e200), ("m2=-1e+200",)),
    (("--h", 1e160), ("h=1e+160",)),
])
def test_refused_before_anything_is_written(cli, tmp_path, existing, monkeypatch, args, names):
    monkeypatch.setattr(resources, "physical_memory", lambda: 64 * 2**30)   # the same answer on any machine
    out = tmp_path / "new.h5"
    rc, _, err = cli("sample-mcmc", *QUICK, *args, "--out", out)
    _one_line_error(rc, err, *names)
    assert list(tmp_path.iterdir()) == [existing[0]]          # no file, no temporary
    old, content = existing
    rc, _, err = cli("sample-mcmc", *QUICK, *args, "--out", old, "--overwrite")
    _one_line_error(rc, err, *names)
    assert old.read_bytes() == content and list(tmp_path.iterdir()) == [old]


def test_memory_estimate_counts_the_arrays(monkeypatch, tmp_path):
    """The estimate scales with chains x V and names --every when the flush buffer dominates."""
    monkeypatch.setattr(resources, "physical_memory", lambda: 2**30)        # a 1 GiB machine
    p = Phi4Params((16, 16), -1.0, 1.0)
    # 4 chains x 256 sites: fine; 200000 chains x 256 sites x 3 arrays x 8 bytes = 1.1 GiB of fields
    sample_mcmc(p, tmp_path / "a.h5", chains=4, n_traj=3, n_therm=0, progress=False)
    with pytest.raises(ParameterError, match=r"chains.*memory|memory.*--chains"):
        sample_mcmc(p, tmp_path / "b.h5", chains=200_000, n_traj=3, n_therm=0, every=0, progress=False)
    with pytest.raises(ParameterError, match=r"buffered between flushes.*--flush-seconds.*--every"):
        sample_mcmc(p, tmp_path / "c.h5", chains=512, n_traj=10**6, every=1, flush_seconds=1e6, progress=False)
    assert sorted(f.name for f in tmp_path.iterdir()) == ["a.h5"]


def test_disk_estimate_of_resume_counts_the_file_it_continues(monkeypatch, tmp_path):
    import shutil
    from collections import namedtuple

    out = tmp_path / "e.h5"
    sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), out, chains=2, n_traj=10, n_therm=2, progress=False)
    size = out.stat().st_size
    du = namedtuple("du", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: du(10**12, 0, 0))   # a full disk
    before = out.read_bytes()
    with pytest.raises(ParameterError, match=r"ensemble file will need about .* free; lower --n-traj"):
        sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), out, chains=2, n_traj=10**6, n_therm=2, progress=False,
                    resume=True)
    assert out.read_bytes() == before
    # a resume that fits in the space of the file it continues (the estimate is of the whole file)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: du(10**12, 0, 10 * size))
    sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), out, chains=2, n_traj=12, n_therm=2, progress=False, resume=True)


def test_coupling_bound():
    b = coupling_bound((8, 8))
    assert 1e152 < b < 1e153
    Phi4Params((8, 8), -4.0, b)               # at the bound: accepted
    with pytest.raises(ParameterError, match=r"lam=.* too large for float64 on 64 sites.*<= 1.86e\+152"):
        Phi4Params((8, 8), -4.0, 2 * b)
    with pytest.raises(ParameterError, match=r"k=-1e\+200"):
        Phi4Params((8, 8), 1.0, 1.0, k=-1e200)


# ------------------------------------------------------------------------------------- stuck chains
@pytest.mark.parametrize("sampler, eps", [("hmc", 10.0), ("fahmc", 10.0), ("hmc", 1e6), ("fahmc", 1e6),
                                          ("mala", 1e6)])   # MALA is semi-implicit: dt = 10 still moves on 4x4
def test_stuck_exact_sampler_stops(cli, tmp_path, sampler, eps):
    out = tmp_path / "s.h5"
    rc, _, err = cli("sample-mcmc", "--shape", 4, 4, "--n-traj", 60, "--n-therm", 5, "--chains", 2,
                     "--sampler", sampler, "--eps", eps, "--no-adapt", "--out", out)
    line = _one_line_error(rc, err, f"sampler {sampler} is stuck", f"last {mrun.STUCK_WINDOW} trajectories",
                           "--eps", "--no-adapt")
    assert "measured trajectories before it are saved" in line
    with h5py.File(out, "r") as f:        # what was measured before is kept, and nothing after the window
        n = f["m"].shape[1]
    assert n < 60 - mrun.STUCK_WINDOW


def test_stuck_is_a_typed_error(tmp_path):
    with pytest.raises(SamplerDivergedError, match="stuck"):
        sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), tmp_path / "s.h5", chains=2, n_traj=40, n_therm=0, eps=1e6,
                    adapt=False, progress=False)


def test_adaptation_is_left_to_recover(tmp_path):
    """During adaptive thermalisation a hopeless eps is not refused: the adaptation shrinks it."""
    out = tmp_path / "a.h5"
    sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), out, chains=2, n_traj=30, n_therm=60, eps=10.0, progress=False)
    with h5py.File(out, "r") as f:
        assert f["accepted"][:].mean() > 0.3


# ------------------------------------------------------------------------------------- frozen chains
@pytest.mark.parametrize("sampler", ["hmc", "mala"])
def test_frozen_chain_warns_once(cli, tmp_path, sampler):
    out = tmp_path / "f.h5"
    rc, _, err = cli("sample-mcmc", "--shape", 4, 4, "--n-traj", 60, "--n-therm", 0, "--chains", 2,
                     "--sampler", sampler, "--eps", 1e-12, "--no-adapt", "--out", out)
    assert rc == 0, err
    warn = [ln for ln in err.splitlines() if "warning" in ln]
    assert len(warn) == 1 and "--eps" in warn[0] and "barely move" in warn[0], err
    assert out.exists()


# ------------------------------------------------------------------------------- normal runs untouched
def test_normal_runs_do_not_trip_and_give_the_same_bits(cli, tmp_path, monkeypatch):
    """Short runs at every sampler print no warning; the guards only read (same bits with them disabled)."""
    p = Phi4Params((4, 4), -1.0, 1.0)
    outs = {}
    for smp in ("hmc", "fahmc", "mala", "langevin"):
        for n_steps, eps in ((None, None), (1, None)):
            out = tmp_path / f"{smp}{n_steps}.h5"
            rc, _, err = cli("sample-mcmc", "--shape", 4, 4, "--m2", -1.0, "--lam", 1.0, "--sampler", smp,
                             "--n-traj", 40, "--n-therm", 10, "--chains", 1,
                             *(("--n-steps", n_steps) if n_steps else ()), "--out", out)
            assert rc == 0 and "warning" not in err and "error" not in err, err
            outs[out] = _read(out)
    monkeypatch.setattr(mrun._Run, "_watch", lambda *a, **k: None)
    for smp in ("hmc", "fahmc", "mala", "langevin"):
        for n_steps in (None, 1):
            out = tmp_path / f"{smp}{n_steps}.h5"
            rc, _, err = cli("sample-mcmc", "--shape", 4, 4, "--m2", -1.0, "--lam", 1.0, "--sampler", smp,
                             "--n-traj", 40, "--n-therm", 10, "--chains", 1,
                             *(("--n-steps", n_steps) if n_steps else ()), "--out", out, "--overwrite")
            assert rc == 0, err
            for a, b in zip(outs[out], _read(out)):
                np.testing.assert_array_equal(a, b)


def _read(path: Path):
    with h5py.File(path, "r") as f:
        return [f[k][:] for k in ("m", "S", "accepted", "dH", "phi")]
