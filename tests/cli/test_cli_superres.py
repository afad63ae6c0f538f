"""``phi4si superres`` (and ``generate --order coarse_to_fine`` with a Haar model) end to end, and refusals.

A tiny U-Net of the Haar family trained for a few steps on an 8x8 free field by the command line: the point
is the plumbing (inputs coarse or fine, the block averages kept, the record, refusals that leave files
as they were), not the quality of the samples; the laws are checked on the Gaussian oracle in
tests/tasks/test_superres.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from phi4si import Phi4Params, open_ensemble
from phi4si.mcmc.run import sample_mcmc
from phi4si.tasks.superres import block_average

PARAMS = Phi4Params((8, 8), m2=1.0, lam=0.0)
TRAIN = ("--model", "tiny", "--batch-size", "16", "--warmup", "2", "--threads", "1", "--no-progress")
Q = ("--steps", "3", "--no-progress", "--threads", "1")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """8x8 and 4x4 free-field ensembles, a Haar model (2 levels) and a Hadamard one (read-only)."""
    from phi4si.cli import main

    d = tmp_path_factory.mktemp("cli_superres")
    fine, coarse = d / "free8.h5", d / "free4.h5"
    sample_mcmc(PARAMS, fine, chains=2, n_traj=60, n_therm=20, seed=5, progress=False)
    sample_mcmc(Phi4Params((4, 4), m2=1.0, lam=0.0), coarse, chains=1, n_traj=40, n_therm=10, seed=6, progress=False)
    haar, plain = d / "haar.pt", d / "plain.pt"
    assert main(["train", "--data", str(fine), "--out", str(haar), "--steps", "6", "--family", "haar",
                 "--measure", "scales", *TRAIN]) == 0
    assert main(["train", "--data", str(fine), "--out", str(plain), "--steps", "3", *TRAIN]) == 0
    return {"fine": fine, "coarse": coarse, "haar": haar, "plain": plain}


def _phi(path):
    with open_ensemble(path) as ds:
        return np.asarray(ds["phi"].values), dict(ds.attrs)


def _configs(path):
    phi, _ = _phi(path)
    return phi.reshape(-1, *phi.shape[2:]).astype(np.float64)


@pytest.mark.parametrize("factor,chain", [(2, False), (4, False), (4, True)])
def test_superres_of_fine_data_keeps_its_block_averages(cli, files, tmp_path, factor, chain):
    out = tmp_path / "sr.h5"
    extra = ("--scale-by-scale",) if chain else ()
    rc, _, err = cli("superres", "--model", files["haar"], "--data", files["fine"], "--fine", "--factor", factor,
                     "--n", 70, "--batch-size", 32, "--out", out, "--seed", 2, *extra, *Q)
    assert rc == 0, err
    phi, attrs = _phi(out)
    assert phi.shape == (1, 70, 8, 8) and np.isfinite(phi).all()
    data = _configs(files["fine"])[:70]
    np.testing.assert_allclose(block_average(phi[0], factor), block_average(data, factor), atol=2e-6)
    assert not np.allclose(phi[0], data, atol=1e-3)                  # the details are new
    s = attrs["sampler"]
    assert s["task"] == "superres" and s["factor"] == factor and s["scale_by_scale"] is chain
    assert s["input"] == "fine, blocked" and s["data"] == str(Path(files["fine"]).resolve())
    assert s["family"]["name"] == "haar"
    rc, table, _ = cli("analyze", out)
    assert rc == 0 and "superres" in table


def test_superres_of_coarse_data_makes_the_finer_lattice(cli, files, tmp_path):
    out = tmp_path / "sr.h5"
    rc, _, err = cli("superres", "--model", files["haar"], "--data", files["coarse"], "--factor", 2, "--out", out,
                     "--dtype", "float64", *Q)
    assert rc == 0, err
    phi, attrs = _phi(out)
    coarse = _configs(files["coarse"])
    assert phi.shape == (1, len(coarse), 8, 8) and attrs["sampler"]["input"] == "coarse"
    np.testing.assert_allclose(block_average(phi[0], 2), coarse, atol=1e-12)
    assert attrs["params"]["shape"] == [8, 8]


def test_generate_coarse_to_fine_with_a_haar_model(cli, files, tmp_path):
    out = tmp_path / "c2f.h5"
    rc, _, err = cli("generate", "--model", files["haar"], "--n", 20, "--order", "coarse_to_fine", "--levels", 3,
                     "--out", out, *Q)
    assert rc == 0, err
    phi, attrs = _phi(out)
    assert phi.shape == (1, 20, 8, 8) and np.isfinite(phi).all()
    assert attrs["sampler"]["order"] == "coarse_to_fine" and attrs["sampler"]["family"]["name"] == "haar"


@pytest.mark.parametrize("args,match", [
    (("--factor", 3, "--fine"), r"block factor 3"),
    (("--factor", 8), r"block factor 8"),
    (("--factor", 1), r"block factor 1"),
    (("--factor", 2, "--n", 0), r"--n must be >= 1"),
    (("--factor", 2, "--steps", 0), r"--steps must be >= 1"),
    (("--factor", 2, "--batch-size", 0), r"--batch-size must be >= 1"),
])
def test_superres_refuses_before_writing(cli, files, tmp_path, args, match):
    out = tmp_path / "sr.h5"
    rc, _, err = cli("superres", "--model", files["haar"], "--data", files["fine"], "--out", out, *Q, *args)
    assert rc != 0 and "Traceback" not in err and re.search(match, err), err
    assert not out.exists()


def test_superres_refuses_a_model_without_the_haar_family(cli, files, tmp_path):
    out = tmp_path / "sr.h5"
    rc, _, err = cli("superres", "--model", files["plain"], "--data", files["fine"], "--fine", "--factor", 2,
                     "--out", out, *Q)
    assert rc != 0 and "Traceback" not in err and "Haar family" in err, err
    assert not out.exists()


def test_superres_leaves_existing_files_alone(cli, files, tmp_path):
    victim = tmp_path / "victim.h5"
    victim.write_bytes(b"precious")
    rc, _, err = cli("superres", "--model", files["haar"], "--data", files["fine"], "--fine", "--factor", 2,
                     "--out", victim, *Q)
    assert rc != 0 and "Traceback" not in err and victim.read_bytes() == b"precious", err
    before = Path(files["fine"]).read_bytes()
    rc, _, err = cli("superres", "--model", files["haar"], "--data", files["fine"], "--fine", "--factor", 2,
                     "--out", files["fine"], "--overwrite", *Q)
    assert rc != 0 and "--out is the --data file" in err, err
    assert Path(files["fine"]).read_bytes() == before


def test_superres_resume_continues_the_noise_stream(cli, files, tmp_path):
    """--n 40, then --n 70 --resume: the same bits as one run of 70 (batches of 10, the stream saved per batch)."""
    base = ("superres", "--model", files["haar"], "--data", files["fine"], "--fine", "--factor", 2,
            "--batch-size", 10, "--seed", 4, *Q)
    once, twice = tmp_path / "once.h5", tmp_path / "twice.h5"
    assert cli(*base, "--n", 70, "--out", once)[0] == 0
    assert cli(*base, "--n", 40, "--out", twice)[0] == 0
    rc, _, err = cli(*base, "--n", 70, "--out", twice, "--resume")
    assert rc == 0, err
    a, b = _phi(once)[0], _phi(twice)
    assert np.array_equal(a, b[0]) and len(b[1]["run"]["resumed"]) == 1


def test_fourier_family_trains_on_momenta_and_generates_low_to_high(cli, files, tmp_path):
    out, gen = tmp_path / "fourier.pt", tmp_path / "l2h.h5"
    rc, _, err = cli("train", "--data", files["fine"], "--out", out, "--steps", 3, "--family", "fourier", *TRAIN)
    assert rc != 0 and "even in p" in err and "momenta" in err and not out.exists(), err
    rc, _, err = cli("train", "--data", files["fine"], "--out", out, "--steps", 3, "--family", "fourier",
                     "--measure", "momenta", *TRAIN)
    assert rc == 0, err
    rc, _, err = cli("generate", "--model", out, "--n", 12, "--order", "low_to_high", "--out", gen, *Q)
    assert rc == 0, err
    phi, attrs = _phi(gen)
    assert phi.shape == (1, 12, 8, 8) and np.isfinite(phi).all()
    assert attrs["sampler"]["order"] == "low_to_high" and attrs["sampler"]["levels"] == 4
    rc, _, err = cli("generate", "--model", out, "--n", 2, "--order", "coarse_to_fine", "--out", tmp_path / "x.h5", *Q)
    assert rc != 0 and "Fourier family" in err and not (tmp_path / "x.h5").exists(), err
    rc, _, err = cli("generate", "--model", files["haar"], "--n", 2, "--order", "low_to_high",
                     "--out", tmp_path / "y.h5", *Q)
    assert rc != 0 and "Fourier family" in err and not (tmp_path / "y.h5").exists(), err
