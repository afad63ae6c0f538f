"""Guards of train (issue 19): a batch or a model that cannot fit in memory is refused before anything is
written, with one line naming the setting; a diverged run says truthfully whether a checkpoint exists.

A 4x4 free-field ensemble and the "tiny" U-Net: the whole file takes a few seconds.
"""

from __future__ import annotations

from phi4si import resources

from pathlib import Path

import pytest

from phi4si import Phi4Params, sample_mcmc
from phi4si.errors import ParameterError, TrainingDivergedError
from phi4si.model.train import TrainConfig, train
from phi4si.nn.budget import estimate_parameters, estimate_training_memory
from phi4si.nn.unet import LatticeUNet, count_parameters, preset

QUICK = ("--steps", 3, "--model", "tiny", "--batch-size", 4, "--val-every", 2, "--threads", 1)


@pytest.fixture(scope="module")
def ens(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("guards") / "e.h5"
    sample_mcmc(Phi4Params((4, 4), m2=1.0, lam=0.0), path, chains=2, n_traj=40, n_therm=10, seed=3, progress=False)
    return path


def _one_line_error(rc, err, *names):
    assert rc == 1, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("phi4si train: error: "), err
    for n in names:
        assert n in lines[0], (n, err)
    return lines[0]


@pytest.mark.parametrize("args, names", [
    (("--batch-size", 100_000_000), ("--batch-size", "needs about", "but the machine has 64 GiB")),
    (("--net", "base_channels=1000000"), ("base_channels=1000000", "parameters", "lower base_channels")),
    (("--compile", "nonesuch"), ("torch.compile backend", "'nonesuch'")),
])
def test_refused_before_anything_is_written(cli, ens, tmp_path, monkeypatch, args, names):
    monkeypatch.setattr(resources, "physical_memory", lambda: 64 * 2**30)   # the same answer on any machine
    out = tmp_path / "m.pt"
    rc, _, err = cli("train", "--data", ens, *QUICK, *args, "--out", out)
    _one_line_error(rc, err, *names)
    assert list(tmp_path.iterdir()) == []
    out.write_bytes(b"an existing model")
    rc, _, err = cli("train", "--data", ens, *QUICK, *args, "--out", out, "--overwrite")
    _one_line_error(rc, err, *names)
    assert out.read_bytes() == b"an existing model" and list(tmp_path.iterdir()) == [out]


def test_estimates():
    for name in ("tiny", "small", "medium", "maze"):
        for dim in (1, 2):
            cfg = preset(name, dim=dim)
            assert estimate_parameters(cfg) == count_parameters(LatticeUNet(cfg))
    # the activations grow with batch x sites; the weights term does not
    small = preset("small")
    m1, m2 = estimate_training_memory(small, 128, (8, 8)), estimate_training_memory(small, 256, (8, 8))
    assert m2 - m1 == estimate_training_memory(small, 256, (8, 8)) - estimate_training_memory(small, 128, (8, 8))
    assert 1.9 < (estimate_training_memory(small, 1024, (16, 16)) - 20 * estimate_parameters(small)) / \
        (estimate_training_memory(small, 512, (16, 16)) - 20 * estimate_parameters(small)) < 2.1


def test_validate_with_the_lattice(monkeypatch):
    monkeypatch.setattr(resources, "physical_memory", lambda: 2**30)          # a 1 GiB machine
    TrainConfig(batch_size=128).validate()                              # normal settings pass
    TrainConfig(batch_size=128).validate(shape=(16, 16))
    with pytest.raises(ParameterError, match=r"batch_size \(--batch-size\) 65536 .* lattice 64x64 needs about"):
        TrainConfig(batch_size=65536).validate(shape=(64, 64))
    TrainConfig(batch_size=16384).validate()                           # the lower bound (2x2) fits


@pytest.mark.parametrize("every, says", [(1000, "no checkpoint was written"), (2, "the last good checkpoint is")])
def test_diverged_says_whether_a_checkpoint_exists(ens, tmp_path, nan_loss_at, every, says):
    nan_loss_at(4)
    out = tmp_path / "m.pt"
    cfg = TrainConfig(steps=10, model="tiny", batch_size=4, val_every=100, checkpoint_every=every, threads=1)
    with pytest.raises(TrainingDivergedError) as e:
        train(ens, out, cfg, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and says in msg and "--lr" in msg, msg
    assert out.exists() == (every == 2)
    if every == 2:
        assert "(step 2)" in msg


def test_lr_1e3_on_the_command_line(cli, ens, tmp_path):
    out = tmp_path / "lr.pt"
    rc, _, err = cli("train", "--data", ens, "--steps", 30, "--model", "tiny", "--batch-size", 4, "--val-every", 100,
                     "--threads", 1, "--lr", 1e3, "--no-progress", "--out", out)
    line = _one_line_error(rc, err, "loss is", "--lr (now 1000.0)", "no checkpoint was written")
    assert "last good checkpoint" not in line
    assert not out.exists()


def test_threads_default_warns_on_a_busy_machine(monkeypatch, capsys):
    """--threads not given on a loaded machine: a warning that suggests the free cores; nothing changes."""
    import os

    import torch

    from phi4si.model import device

    monkeypatch.setattr(device, "_cores", lambda: 2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
        device.set_threads(None)
        assert torch.get_num_threads() == 2 and capsys.readouterr().err == ""
        monkeypatch.setattr(os, "getloadavg", lambda: (1.9, 1.5, 1.2))
        device.set_threads(None)
        err = capsys.readouterr().err
        assert torch.get_num_threads() == 2
        assert "the machine is busy (load 1.9 on 2 cores) and torch uses 2 threads; --threads 1" in err
        device.set_threads(1)                                  # an explicit choice, no warning
        assert torch.get_num_threads() == 1 and capsys.readouterr().err == ""
    finally:
        torch.set_num_threads(before)
