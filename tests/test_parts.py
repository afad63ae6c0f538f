"""Parts of one ensemble (several files, different seeds) analysed as one: phi4si.store.open_ensembles."""

import numpy as np
import pytest

from phi4si.analysis.report import analyze_file
from phi4si.errors import EnsembleFileError
from phi4si.lattice import Phi4Params
from phi4si.mcmc.run import sample_mcmc
from phi4si.store import open_ensemble, open_ensembles

P = Phi4Params((4, 4), m2=-1.0, lam=1.0)
KW = dict(chains=2, n_traj=300, n_therm=20, every=3, progress=False)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("parts")
    return [sample_mcmc(P, d / f"part{s}.h5", seed=s, **KW) for s in (11, 12, 13)]


def test_two_files_are_one_file_with_all_chains(parts):
    """The same estimates as one ensemble holding every chain (the chains are replicas either way)."""
    with open_ensembles(parts) as ds:
        assert ds.sizes["chain"] == 6 and ds.attrs["parts"] == [str(p) for p in parts]
        m_all = np.asarray(ds["m"].values)
        joined = analyze_file(parts)
    pieces = [open_ensemble(p, load=True) for p in parts]
    assert np.array_equal(m_all, np.concatenate([np.asarray(x["m"].values) for x in pieces]))
    phi = np.concatenate([np.asarray(x["phi"].values, dtype=np.float64) for x in pieces])
    with open_ensembles(parts) as ds:
        assert np.array_equal(phi, np.asarray(ds["phi"].values, dtype=np.float64))
    # the joined estimate is the one of all chains' measurements together
    assert joined["abs_m"]["value"] == pytest.approx(float(np.abs(m_all).mean()), rel=1e-12)
    assert joined["n_chains"] == 6 and joined["n_traj"] == 300
    assert joined["abs_m"]["error"] < analyze_file(parts[0])["abs_m"]["error"]     # three times the data


def test_parts_open_lazily_and_close_together(parts):
    """Nothing is read until asked for (dask arrays over the parts' chunks); closing the joined dataset
    closes every part's file, and ``load=True`` gives the same numbers in memory."""
    import h5py

    ds = open_ensembles(parts)
    try:
        assert ds["phi"].chunks is not None and ds["m"].chunks is not None
        assert sum(ds["phi"].chunks[0]) == 6                  # blocks of the six chains, unread
        lazy = np.asarray(ds["phi"].isel(cfg=-1).values)
    finally:
        ds.close()
    for p in parts:                                           # closed: a writer may open it again
        with h5py.File(p, "r+"):
            pass
    with open_ensembles(parts, load=True) as mem:
        assert mem["phi"].chunks is None
        assert np.array_equal(lazy, np.asarray(mem["phi"].isel(cfg=-1).values))


def test_cli_analyze_takes_the_parts(cli, parts):
    rc, out, err = cli("analyze", *parts[:2])
    assert rc == 0, err
    assert "chains 4" in out
    rc, _, err = cli("analyze", parts[0], parts[0])
    assert rc != 0 and "given twice" in err


def test_compare_takes_the_parts_as_one_ensemble(parts):
    from phi4si.analysis.compare import compare

    c = compare([parts[0], list(parts[1:])], labels=["one", "two parts"])
    assert c.summaries[1].n == 4 * 300


@pytest.mark.parametrize("change,match", [
    (dict(seed=11), "same seed"),
    (dict(seed=21, every=5), "stores other trajectories|cfg per chain"),
    (dict(seed=22, n_traj=200), "traj per chain"),
    (dict(seed=23, params=Phi4Params((4, 4), m2=-1.0, lam=1.5)), "params differ"),
    (dict(seed=24, sampler="mala"), "sampler differ"),
])
def test_parts_that_are_not_one_ensemble_are_refused(parts, tmp_path, change, match):
    change = dict(change)
    params = change.pop("params", P)
    other = sample_mcmc(params, tmp_path / "other.h5", **{**KW, **change})
    with pytest.raises(EnsembleFileError, match=match):
        open_ensembles([parts[0], other])
    with pytest.raises(EnsembleFileError, match="given twice"):
        open_ensembles([parts[0], parts[0]])
