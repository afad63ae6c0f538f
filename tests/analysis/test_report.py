"""The report of ``phi4si analyze`` (phi4si.analysis.report) and the plots of ``phi4si plot``."""

from pathlib import Path

import pytest

from phi4si.analysis import observables
from phi4si.analysis.plot import plot_ensemble
from phi4si.analysis.report import analyze_file, format_table
from phi4si.errors import EnsembleFileError
from phi4si.lattice import Phi4Params
from phi4si.mcmc.run import sample_mcmc


def test_table_says_why_an_error_is_missing():
    ok = {"value": 1.0, "error": 0.1, "tau_int": 0.7, "tau_int_error": 0.1, "ess": 100.0}
    res = {k: dict(ok) for k in observables.KEYS}
    res["chi"] = dict(ok, error=None, note="error not computable: non-finite fluctuations")
    res["xi2"] = {"value": None, "error": None, "tau_int": None, "tau_int_error": None, "ess": None,
                  "note": "undefined: G~(0)/G~(p_min) <= 1"}
    res.update(params={"shape": [4, 4], "m2": -4.0, "lam": 8.0, "h": 0.0, "k": 0.0}, sampler={"sampler": "hmc"},
               n_chains=2, n_traj=20, acceptance=0.8, eps=0.1)
    lines = format_table(res).splitlines()
    chi = next(ln for ln in lines if ln.startswith("chi "))
    assert "n/a" in chi and "non-finite fluctuations" in chi, chi
    xi = next(ln for ln in lines if ln.startswith("xi_2"))
    assert "n/a" in xi and "G~(0)/G~(p_min) <= 1" in xi, xi
    assert "nan" not in format_table(res).lower()


@pytest.mark.parametrize("chains, n_traj", [(1, 4), (2, 2)])
def test_too_short_an_ensemble_is_refused(tmp_path, chains, n_traj):
    path = sample_mcmc(Phi4Params((4, 4), m2=1.0, lam=0.0), tmp_path / "e.h5", chains=chains, n_traj=n_traj,
                       n_therm=0, progress=False)
    with pytest.raises(EnsembleFileError, match=r"needs at least 5 measurements to analyse \(has 4\)"):
        analyze_file(path)


def test_plot_draws_the_correlator_from_5_configurations(tmp_path):
    """2 to 4 stored configurations: configs.png but no correlator (its errors need 5); 5: both."""
    params = Phi4Params((4, 4), m2=1.0, lam=0.0)
    for n_cfg, pngs in [(4, {"hist_m.png", "history.png", "configs.png"}),
                        (5, {"hist_m.png", "history.png", "configs.png", "correlator.png"})]:
        path = sample_mcmc(params, tmp_path / f"e{n_cfg}.h5", chains=1, n_traj=n_cfg, n_therm=0, progress=False)
        assert {Path(p).name for p in plot_ensemble(path, tmp_path / f"plots{n_cfg}")} == pngs


@pytest.mark.parametrize("bad,match", [("", "folder is empty"), ("   ", "folder is empty"),
                                       ("FILE/sub", "cannot create the plot output folder")])
def test_plot_refuses_an_output_folder_it_cannot_use(tmp_path, bad, match):
    import os

    from phi4si.errors import ParameterError

    ens = sample_mcmc(Phi4Params((4, 4), m2=1.0, lam=0.0), tmp_path / "e.h5", n_traj=10, n_therm=2, progress=False)
    (tmp_path / "FILE").write_text("a file, not a folder")
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ParameterError, match=match):
        plot_ensemble(ens, str(tmp_path / bad) if bad.startswith("FILE") else bad)
    assert sorted(os.listdir(tmp_path)) == before


def _res(**kw):
    ok = {"value": 0.5, "error": 0.01, "tau_int": 2.0, "tau_int_error": 0.1, "ess": 100.0}
    res = {k: dict(ok) for k in observables.KEYS}
    res.update(params={"shape": [4, 4], "m2": -4.0, "lam": 8.0, "h": 0.0, "k": 0.0},
               sampler={"sampler": "hmc", "exact": True}, n_chains=2, n_traj=1000, acceptance=0.8, eps=0.1)
    res["m"] = dict(ok, value=0.001)
    for k, v in kw.items():
        res[k] = v
    return res


def test_warnings_name_each_reason_and_stay_quiet_otherwise():
    from phi4si.analysis.report import warnings_for

    assert warnings_for(_res()) == []
    w = warnings_for(_res(ess_fraction=0.03, sampler={"sampler": "neural", "method": "reweight"}))
    assert len(w) == 1 and "ESS/N = 0.030" in w[0] and "60 of 2000" in w[0]
    short = _res(chi={"value": 5.0, "error": 0.5, "tau_int": 40.0, "tau_int_error": 5.0, "ess": 20.0})
    w = warnings_for(short)
    assert len(w) == 1 and "chains too short" in w[0] and "tau_int(chi) = 40" in w[0]
    w = warnings_for(_res(m={"value": -0.093, "error": 0.013, "tau_int": 2.0}))
    assert len(w) == 1 and "7.2 errors from 0" in w[0]
    # a field h breaks the symmetry: a non-zero <m> is physics, not a warning
    assert warnings_for(_res(m={"value": 0.3, "error": 0.01, "tau_int": 2.0},
                             params={"shape": [4, 4], "m2": -4.0, "lam": 8.0, "h": 0.1, "k": 0.0})) == []
    table = format_table(_res(m={"value": -0.093, "error": 0.013, "tau_int": 2.0, "tau_int_error": 0.1, "ess": 9.0}))
    assert "WARNING: Z2 symmetry" in table and "samples: exact (MCMC)" in table


def test_analyze_warns_about_a_short_chain_stuck_in_one_sign(cli, tmp_path):
    """HMC deep in the broken phase, a few hundred trajectories: no tunnelling, <m> far from 0."""
    path = sample_mcmc(Phi4Params((8, 8), m2=-4.0, lam=2.0), tmp_path / "stuck.h5", chains=1, n_traj=200,
                       n_therm=50, seed=1, progress=False)
    rc, out, err = cli("analyze", path)
    assert rc == 0, err
    assert "WARNING: Z2 symmetry" in out and "samples: exact (MCMC)" in out
    res = analyze_file(path)
    assert res["kind"] == "exact (MCMC)" and any("Z2" in w for w in res["warnings"])


def test_format_table_of_configurations_in_memory():
    import numpy as np

    r = observables.analyze_configs(np.random.default_rng(0).normal(size=(100, 4, 4)),
                                    Phi4Params((4, 4), m2=1.0, lam=0.0), log_w=np.zeros(100))
    text = format_table(r)
    assert "configurations in memory" in text and "ESS/N 1.000" in text and "<S>/V" in text


def test_plot_of_a_reweighted_file_weights_its_histogram(tmp_path, monkeypatch):
    """phi4si plot on a sample-neural reweight file: the histogram of m carries the importance weights."""
    import matplotlib.axes
    import numpy as np

    from phi4si.interpolant.oracle import free_field_oracle
    from phi4si.model import DriftModel
    from phi4si.model.density import FlowSettings
    from phi4si.model.exact import sample_neural
    from phi4si.store import open_ensemble

    p = Phi4Params((4, 4), m2=1.0, lam=0.0)
    model = DriftModel(free_field_oracle((4, 4), 1.2), p)            # a slightly wrong model: weights vary
    out = tmp_path / "rw.h5"
    sample_neural(model, "reweight", out, 16, fs=FlowSettings(steps=3, divergence="exact"), progress=False)
    seen = []
    real = matplotlib.axes.Axes.hist
    monkeypatch.setattr(matplotlib.axes.Axes, "hist", lambda self, x, *a, **kw: seen.append(kw) or real(self, x, *a, **kw))
    plot_ensemble(out, tmp_path / "plots")
    with open_ensemble(out) as ds:
        lw = np.asarray(ds["log_w"].values).ravel()
    weighted = [kw["weights"] for kw in seen if kw.get("weights") is not None]
    assert len(weighted) == 1 and np.allclose(weighted[0] / weighted[0].sum(), np.exp(lw - lw.max()) / np.exp(lw - lw.max()).sum())
    assert "importance-weighted" in seen[0]["label"]


def test_plot_outlines_the_inpainted_sites(cli, tmp_path, monkeypatch):
    """phi4si plot on a phi4si inpaint file: the sites the model drew are outlined on every configuration."""
    import matplotlib.axes

    ens = sample_mcmc(Phi4Params((8, 8), m2=-4.0, lam=8.0), tmp_path / "e.h5", chains=2, n_traj=20, n_therm=5,
                      every=2, progress=False)
    rc, _, err = cli("inpaint", "--model", "l8", "--data", ens, "--mask", "block:4x4@2,2", "--n", 4, "--steps", 2,
                     "--out", tmp_path / "i.h5")
    assert rc == 0, err
    calls = []
    real = matplotlib.axes.Axes.contour
    monkeypatch.setattr(matplotlib.axes.Axes, "contour", lambda self, *a, **kw: calls.append(a) or real(self, *a, **kw))
    plot_ensemble(tmp_path / "i.h5", tmp_path / "plots")
    assert len(calls) == 4                                         # one outline per configuration shown
    up = calls[0][2]
    assert up.shape == (80, 80) and up[25:55, 25:55].all() and not up[:20].any()   # the 4x4 block at (2, 2)
    calls.clear()
    plot_ensemble(ens, tmp_path / "plain")                         # an HMC file has nothing to outline
    assert calls == []


def test_plot_overlays_a_reference_and_refuses_other_couplings(tmp_path, capsys):
    from phi4si.cli import main

    p = Phi4Params((4, 4), m2=1.0, lam=0.0)
    a = sample_mcmc(p, tmp_path / "a.h5", chains=2, n_traj=30, n_therm=5, seed=1, progress=False)
    b = sample_mcmc(p, tmp_path / "b.h5", chains=2, n_traj=30, n_therm=5, seed=2, progress=False)
    assert main(["plot", str(a), "--out", str(tmp_path / "plots"), "--reference", str(b)]) in (0, None)
    names = {q.name for q in (tmp_path / "plots").iterdir()}
    assert {"compare_hist_m.png", "compare_spectrum.png", "compare_correlator.png", "hist_m.png"} <= names
    other = sample_mcmc(Phi4Params((4, 4), m2=2.0, lam=0.0), tmp_path / "c.h5", chains=1, n_traj=10, n_therm=2,
                        progress=False)
    assert main(["plot", str(a), "--out", str(tmp_path / "plots2"), "--reference", str(other)]) == 1
    assert not (tmp_path / "plots2").exists()
