"""phi4si compare: observables against a reference, G(p) on momentum orbits, m-histogram distances."""

import json
import re

import numpy as np
import pytest

from phi4si.analysis.compare import (KINDS, SCALARS, compare, configurations, histogram_distance, kind_of,
                                     summarize)
from phi4si.errors import ParameterError
from phi4si.lattice import Phi4Params, free_propagator, momentum_orbits, orbit_p_hat2, orbit_spectrum
from phi4si.mcmc.run import sample_mcmc

FREE = Phi4Params((4, 4), m2=1.0, lam=0.0)


@pytest.fixture(scope="module")
def free_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("compare")
    a = sample_mcmc(FREE, d / "a.h5", chains=4, n_traj=1500, n_therm=100, every=1, seed=1, progress=False)
    b = sample_mcmc(FREE, d / "b.h5", chains=4, n_traj=1500, n_therm=100, every=1, seed=2, progress=False)
    return a, b


def _free_samples(n, seed, scale=1.0):
    """Exact independent free-field configurations: phi~(p) Gaussian with variance V G(p)."""
    rng = np.random.default_rng(seed)
    G = free_propagator(FREE.shape, FREE.m2)
    white = rng.standard_normal((n, *FREE.shape))
    return scale * np.fft.ifft2(np.fft.fft2(white) * np.sqrt(G)).real


def test_momentum_orbits_respect_the_lattice_symmetry():
    index, labels = momentum_orbits((4, 6))
    assert index[1, 0] == index[3, 0] and index[0, 1] == index[0, 5]       # reflections
    assert index[1, 0] != index[0, 1]                                        # no permutation of unequal sides
    index, labels = momentum_orbits((6, 6))
    assert index[1, 2] == index[2, 1] == index[5, 4]
    phi = np.random.default_rng(0).normal(size=(3, 6, 6))
    pw = np.abs(np.fft.fft2(phi)) ** 2 / 36
    g = orbit_spectrum(phi, (6, 6))
    for k in range(len(labels)):
        assert np.allclose(g[:, k], pw[:, index == k].mean(-1))
    assert np.allclose(orbit_p_hat2((6, 6))[index[1, 2]], 4 * np.sin(np.pi / 6) ** 2 + 4 * np.sin(2 * np.pi / 6) ** 2)


def test_free_field_spectrum_is_exact_on_every_orbit(free_files):
    """HMC of the free field: G(p) on every orbit within errors of 1/(2 (m2 + p_hat^2))."""
    s = summarize(free_files[0])
    labels, G, err = s.spectrum
    exact = 1 / (2 * (FREE.m2 + orbit_p_hat2(FREE.shape)))
    z = (G - exact) / err
    assert np.all(np.abs(z) < 4.5), z
    assert s.kind == "exact (MCMC)" and s.n == 6000
    phi2 = free_propagator(FREE.shape, FREE.m2).mean()                  # <phi_x^2> = mean_p G(p)
    assert abs(s.scalars["phi2"].value - phi2) < 4.5 * s.scalars["phi2"].error


def test_two_exact_ensembles_agree_and_a_biased_one_is_caught(free_files):
    a, b = free_files
    c = compare([a, b], labels=["A", "B"])
    assert {r["key"] for r in c.rows} == set(SCALARS)
    finite = [abs(r["z"]) for r in c.rows if np.isfinite(r["z"])]
    assert max(finite) < 4.5, c.table()
    h = c.histograms["B"]
    assert h["tv"] < 2 * h["null_95"]
    biased = configurations(_free_samples(4000, 3, scale=1.08), FREE, label="too wide")
    good = configurations(_free_samples(4000, 4), FREE, label="exact draws")
    c = compare([a, good, biased], labels=["A", "exact draws", "too wide"])
    assert abs(c.row("exact draws", "phi2")["z"]) < 4.5
    bad = c.row("too wide", "phi2")
    assert bad["z"] > 5 and bad["rel"] == pytest.approx(0.08 * 2.08, abs=0.04)   # 1.08^2 - 1
    assert c.spectra["too wide"]["n_z3"] > c.spectra["exact draws"]["n_z3"]
    wider = configurations(_free_samples(4000, 5, scale=1.3), FREE, label="much wider")
    h = histogram_distance(wider, good)
    assert h["tv"] > 1.5 * h["null_95"]
    text = c.table()
    assert "<phi^2>" in text and "<S>/V" in text and "raw (model)" in text and "exact (MCMC)" in text
    assert "momentum orbits" in text and "null" in text


def test_weights_enter_every_estimate():
    """configurations with log-weights: <phi^2> is the self-normalised weighted mean."""
    phi = _free_samples(3000, 5)
    log_w = np.random.default_rng(6).normal(0, 0.5, 3000)
    s = configurations(phi, FREE, log_w=log_w, kind="exact (reweighted)")
    w = np.exp(log_w - log_w.max())
    expect = (w * (phi.reshape(3000, -1) ** 2).mean(1)).sum() / w.sum()
    assert s.scalars["phi2"].value == pytest.approx(expect, rel=1e-12)
    assert s.ess_fraction == pytest.approx(w.sum() ** 2 / (3000 * (w * w).sum()))
    assert s.n_eff <= s.ess_fraction * 3000 + 1e-9


def test_a_file_and_its_configurations_give_the_same_numbers(free_files):
    from phi4si.store import open_ensemble

    with open_ensemble(free_files[0]) as ds:
        phi = np.asarray(ds["phi"].values, dtype=np.float64)
    f = summarize(free_files[0])
    m = configurations(phi, FREE, kind="exact (MCMC)")
    for k in ("phi2", "phi4", "abs_m", "chi"):
        assert f.scalars[k].value == pytest.approx(m.scalars[k].value, rel=1e-5), k
    assert np.allclose(f.spectrum[1], m.spectrum[1], rtol=1e-5)


def test_histogram_null_level_is_calibrated():
    """Two samples of one law sit below the 95 % null point about 95 % of the time."""
    below = 0
    for i in range(20):
        a = configurations(_free_samples(500, 100 + i), FREE, label="a")
        b = configurations(_free_samples(500, 200 + i), FREE, label="b")
        h = histogram_distance(a, b, seed=i)
        below += h["tv"] <= h["null_95"]
    assert below >= 15


def test_kind_of_every_sampler_record():
    assert kind_of({"sampler": "hmc", "exact": True}) == "exact (MCMC)"
    assert kind_of({"sampler": "langevin", "exact": False}) == "raw (unadjusted MCMC)"
    assert kind_of({"sampler": "neural", "method": "reweight"}) == "exact (reweighted)"
    for m in ("imh", "block", "hybrid"):
        assert kind_of({"sampler": "neural", "method": m}) == "exact (Metropolis)"
    assert kind_of({"sampler": "interpolant"}) == "raw (model)"
    assert set(KINDS) >= {kind_of({}), kind_of(None)}


def test_refusals(free_files, tmp_path):
    a, b = free_files
    other = sample_mcmc(Phi4Params((4, 4), m2=2.0, lam=0.0), tmp_path / "o.h5", chains=2, n_traj=20, n_therm=5,
                        seed=3, progress=False)
    with pytest.raises(ParameterError, match="same lattice and couplings"):
        compare([a, other])
    with pytest.raises(ParameterError, match="at least one ensemble"):
        compare([a])
    with pytest.raises(ParameterError, match="2 labels for 3"):
        compare([a, b, a], labels=["x", "y"])
    with pytest.raises(ParameterError, match="labels must differ"):
        compare([a, b], labels=["x", "x"])
    with pytest.raises(ParameterError, match="kind must be"):
        configurations(_free_samples(10, 0), FREE, kind="exactish")
    with pytest.raises(ParameterError, match="for a lattice"):
        configurations(np.zeros((10, 4, 5)), FREE)


def test_cli_compare_prints_and_writes(cli, free_files, tmp_path):
    a, b = free_files
    rc, out, err = cli("compare", a, b, "--label", "ref", "--label", "other", "--out", tmp_path / "cmp")
    assert rc == 0, err
    assert "| <S>/V | other | exact (MCMC) |" in out and "momentum orbits" in out
    names = sorted(p.name for p in (tmp_path / "cmp").iterdir())
    assert names == ["compare.json", "compare.md", "compare_correlator.png", "compare_hist_m.png",
                     "compare_spectrum.png"]
    for n in names:
        assert f"wrote {tmp_path / 'cmp' / n}" in err
    doc = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert doc["reference"] == "ref" and len(doc["ensembles"]) == 2 and doc["ensembles"][1]["kind"] == "exact (MCMC)"
    rc, out, _ = cli("compare", a, b, "--json")
    assert rc == 0 and json.loads(out)["rows"][0]["label"] == "b.h5"


@pytest.mark.parametrize("args,match", [
    ((), "at least one file"),
    (("SAME",), "given twice"),
    (("--label", "x"), "1 --label for 2 files"),
    (("--out", "VICTIM"), "is a file"),
])
def test_cli_compare_refusals(cli, free_files, tmp_path, args, match):
    a, b = free_files
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    args = [str(victim) if x == "VICTIM" else x for x in args]
    files = [a, a] if args[:1] == ["SAME"] else [a] if not args else [a, b]
    rc, _, err = cli("compare", *files, *[x for x in args if x != "SAME"])
    assert rc != 0 and "Traceback" not in err and re.search(match, err), err
    assert victim.read_text() == "precious"
