"""The driver's measured kinetic kernel and trajectory length (phi4si.mcmc.kernel): G(p) measured in the
thermalisation window, frozen, recorded, resumed bit for bit; the free field's G and quarter period; refusals."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from phi4si import open_ensemble
from phi4si.errors import ParameterError, ResumeError
from phi4si.lattice import Phi4Params, free_propagator
from phi4si.mcmc.kernel import TwoPointWindow, quarter_period
from phi4si.mcmc.run import sample_mcmc

P = Phi4Params((8, 8), -4.0, 8.0)


def _run(out, **kw):
    base = dict(chains=3, n_traj=40, n_therm=40, seed=7, every=0, progress=False, flush_seconds=1e9)
    base.update(kw)
    return sample_mcmc(base.pop("params", P), out, **base)


def _read(path):
    with open_ensemble(path, load=True) as ds:
        return ds.m.values.copy(), ds.attrs


@pytest.mark.parametrize("sampler, kw", [("fahmc", dict(kernel="measured")), ("fahmc", dict(kernel="measured",
                                         traj_length="auto")), ("hmc", dict(traj_length="auto")),
                                         ("mala", dict(kernel="measured")), ("langevin", dict(kernel="measured"))])
def test_measured_kernel_recorded_and_resumed_bit_for_bit(tmp_path, sampler, kw):
    """Stopped inside the window (trajectory 15 of [10, 20)) and after the freeze (30), resumed: the same bits
    as one run; the recorded G is the window's G of the recorded sums, and the sampler used it."""
    ref = _run(tmp_path / "ref.h5", sampler=sampler, **kw)
    m_ref, a_ref = _read(ref)
    G = np.asarray(a_ref["two_point"])
    assert a_ref["two_point_window"].tolist() == [10, 20] and a_ref["sampler"]["kernel" if "kernel" in kw
                                                                                 else "traj_length"] is not None
    with h5py.File(ref, "r") as f:
        sums = f["state/kernel"][...]
    np.testing.assert_array_equal(TwoPointWindow(P.shape, 40, 3, sums=sums).two_point(40), G)
    assert G.shape == (8, 5) and (G > 0).all()
    if "traj_length" in kw:
        M = 1.0 if sampler == "hmc" else (G.min() / G if "kernel" in kw else None)
        if M is not None:
            assert a_ref["traj_length"] == pytest.approx(quarter_period(G, M), rel=1e-12)
        assert a_ref["n_steps"] == max(1, round(a_ref["traj_length"] / a_ref["eps"]))
    part = tmp_path / "part.h5"
    _run(part, sampler=sampler, max_trajectories=15, **kw)
    _run(part, sampler=sampler, max_trajectories=15, resume=True, **kw)      # to 30: the window frozen at 20
    _run(part, sampler=sampler, resume=True, **kw)
    m, a = _read(part)
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(a["two_point"], G)
    assert a["eps"] == a_ref["eps"] and a["n_steps"] == a_ref["n_steps"]


def test_free_field_two_point_and_quarter_period(tmp_path):
    """The free field (m2 = 0.5, lam = 0): the recorded G(p) is the exact propagator within its noise, and
    HMC's auto length is the quarter period of the zero mode, pi/2 sqrt(G(0)) = pi / (2 sqrt(2 m2))."""
    p = Phi4Params((6, 6), 0.5, 0.0)
    out = _run(tmp_path / "free.h5", params=p, sampler="fahmc", kernel="measured", chains=64, n_therm=400,
               n_traj=10, traj_length="auto")
    _, a = _read(out)
    exact = free_propagator(p.shape, 0.5)[:, :4]
    G = np.asarray(a["two_point"])
    # 100 trajectories x 64 chains of correlated configurations: each G(p) within ~15 %
    assert np.abs(G / exact - 1).max() < 0.3 and abs(np.mean(G / exact) - 1) < 0.05
    assert a["traj_length"] == pytest.approx(0.5 * math.pi * math.sqrt(G.min()), rel=1e-12)  # measured: G M = G_min
    out = _run(tmp_path / "hmc.h5", params=p, sampler="hmc", chains=64, n_therm=400, n_traj=10, traj_length="auto")
    _, a = _read(out)
    assert a["traj_length"] == pytest.approx(0.5 * math.pi / math.sqrt(2 * 0.5), rel=0.15)


def test_fixed_trajectory_length_sets_the_steps(tmp_path):
    _, a = _read(_run(tmp_path / "t.h5", sampler="hmc", traj_length=0.7))
    assert a["traj_length"] == 0.7 and a["n_steps"] == max(1, round(0.7 / a["eps"]))
    assert a["sampler"]["traj_length"] == 0.7 and "two_point" not in a


@pytest.mark.parametrize("kw, match", [
    (dict(sampler="hmc", kernel="measured"), "does not use kernel"),
    (dict(sampler="mala", traj_length=1.0), "does not use traj_length"),
    (dict(sampler="fahmc", kernel="fourier"), "unknown kernel"),
    (dict(sampler="fahmc", kernel="measured", n_therm=7), "n_therm"),
    (dict(sampler="hmc", traj_length="auto", n_therm=4), "n_therm"),
    (dict(sampler="hmc", traj_length=0.0), "traj_length"),
    (dict(sampler="hmc", traj_length="long"), "traj_length"),
    (dict(sampler="hmc", traj_length=float("nan")), "traj_length"),
    (dict(sampler="hmc", traj_length=1.0, n_steps=5), "leave out n_steps"),
])
def test_bad_kernel_settings_refused(tmp_path, kw, match):
    out = tmp_path / "bad.h5"
    with pytest.raises(ParameterError, match=match):
        _run(out, **kw)
    assert not out.exists()


def test_resume_with_another_kernel_refused(tmp_path):
    out = _run(tmp_path / "k.h5", sampler="fahmc", kernel="measured", n_traj=10)
    before = out.read_bytes() if hasattr(out, "read_bytes") else open(out, "rb").read()
    for kw in (dict(kernel="lattice"), dict(kernel="measured", traj_length="auto")):
        with pytest.raises(ResumeError, match="kernel|traj_length"):
            _run(out, sampler="fahmc", n_traj=20, resume=True, **kw)
    assert open(out, "rb").read() == before


def test_cli_kernel_flags(tmp_path):
    from phi4si.cli import main

    out = tmp_path / "c.h5"
    main(["sample-mcmc", "--sampler", "fahmc", "--kernel", "measured", "--traj-length", "auto", "--n-therm", "20",
          "--n-traj", "5", "--chains", "2", "--every", "0", "--out", str(out), "--no-progress"])
    _, a = _read(out)
    assert a["sampler"]["kernel"] == "measured" and a["sampler"]["traj_length"] == "auto" and a["traj_length"] > 0
    with pytest.raises(SystemExit):
        main(["sample-mcmc", "--sampler", "fahmc", "--traj-length", "x", "--out", str(tmp_path / "d.h5")])


def test_resume_without_the_two_point_sums_refused(tmp_path):
    """A measured-kernel file whose resume state lost /state/kernel (edited, or written by another tool) is
    refused with a clear error, and nothing in it changes."""
    out = _run(tmp_path / "k.h5", sampler="fahmc", kernel="measured", max_trajectories=15)
    with h5py.File(out, "a") as f:
        del f["state/kernel"]
    before = open(out, "rb").read()
    with pytest.raises(ResumeError, match="two-point sums"):
        _run(out, sampler="fahmc", kernel="measured", resume=True)
    assert open(out, "rb").read() == before
