"""train(reference=...): the model compared with an ensemble of the target at each validation; the
comparison leaves the trainer's random streams alone (same weights as without it); a reference of
other couplings is refused before training; the command line logs it and says the deviations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from phi4si import Phi4Params, sample_mcmc
from phi4si.cli import main
from phi4si.errors import ParameterError
from phi4si.model.train import TrainConfig, train
from phi4si.model.watch import ReferenceCheck

PARAMS = Phi4Params((4, 4), m2=-1.0, lam=1.0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("watch")
    data, ref, other = d / "data.h5", d / "ref.h5", d / "other.h5"
    sample_mcmc(PARAMS, data, chains=2, n_traj=150, n_therm=20, seed=1, progress=False)
    sample_mcmc(PARAMS, ref, chains=2, n_traj=150, n_therm=20, seed=2, progress=False)
    sample_mcmc(Phi4Params((4, 4), m2=-1.0, lam=2.0), other, chains=1, n_traj=40, n_therm=10, seed=3, progress=False)
    return data, ref, other


CFG = dict(steps=6, model="tiny", batch_size=8, val_every=3, val_size=16, warmup=2, threads=1)


def test_each_validation_logs_the_comparison_and_training_is_unchanged(files, tmp_path):
    data, ref, _ = files
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    res = train(data, a, TrainConfig(**CFG), progress=False, reference=ReferenceCheck(ref, n=16, steps=4))
    train(data, b, TrainConfig(**CFG), progress=False)
    recs = [r for r in res["history"] if "val" in r]
    assert [r["step"] for r in recs] == [3, 6]
    for r in recs:
        got = r["reference"]
        assert {"abs_m", "chi", "s", "phi2", "G_p", "hist_m"} <= set(got)
        assert got["s"]["value"] is not None and got["hist_m"]["tv"] >= 0
    logged = [json.loads(line) for line in Path(str(a) + ".log").read_text().splitlines()]
    assert [r["step"] for r in logged if "reference" in r] == [3, 6]
    wa, wb = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    assert all(torch.equal(wa["model_state"][k], wb["model_state"][k]) for k in wa["model_state"])


def test_a_reference_of_other_couplings_is_refused_before_training(files, tmp_path):
    data, _, other = files
    with pytest.raises(ParameterError, match="the training couplings"):
        train(data, tmp_path / "m.pt", TrainConfig(**CFG), progress=False, reference=ReferenceCheck(other, n=16))
    assert not (tmp_path / "m.pt").exists()


def test_bad_reference_settings_are_refused(files):
    with pytest.raises(ParameterError, match="reference_n must be an integer >= 8"):
        ReferenceCheck(files[1], n=2)


def test_train_command_with_reference(files, tmp_path, capsys):
    data, ref, _ = files
    out = tmp_path / "m.pt"
    rc = main(["train", "--data", str(data), "--reference", str(ref), "--reference-n", "16", "--out", str(out),
               "--steps", "4", "--model", "tiny", "--batch-size", "8", "--val-every", "2", "--threads", "1",
               "--no-progress"])
    assert rc in (0, None)
    assert f"against {ref}:" in capsys.readouterr().err
    assert main(["train", "--data", str(data), "--reference", str(tmp_path / "none.h5"), "--out",
                 str(tmp_path / "n.pt"), "--steps", "2", "--model", "tiny"]) == 1
    assert "--reference" in capsys.readouterr().err and not (tmp_path / "n.pt").exists()
