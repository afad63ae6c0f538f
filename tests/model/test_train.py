"""The trainer (phi4si.model.train) and checkpoint loading (phi4si.model) on a tiny ensemble.

A 4x4 free field (m2 = 1, lam = 0; two HMC chains of 200 trajectories) and the "tiny" U-Net,
a few dozen steps of batch 16: every test here takes about a second; the DDP test (two
processes under torch.distributed.run, gloo) about 15 s.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from phi4si import Phi4Params, __version__
from phi4si.errors import EnsembleFileError, OutputExistsError, ParameterError, ResumeError
from phi4si.mcmc.run import sample_mcmc
from phi4si.errors import CheckpointError, TrainingDivergedError
from phi4si.model import CHECKPOINT_FORMAT, load_model
from phi4si.model.defaults import native_bf16
from phi4si.nn.unet import preset
from phi4si.model.train import TrainConfig, train

PARAMS = Phi4Params((4, 4), m2=1.0, lam=0.0)


def tiny(**kw) -> TrainConfig:
    """A tiny, fast training configuration (override any field with keywords)."""
    base = dict(steps=40, model="tiny", batch_size=16, val_every=20, val_size=32, checkpoint_every=1000,
                warmup=5, threads=1)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def ens(tmp_path_factory) -> Path:
    """Tiny free-field ensemble (read-only: copy before changing)."""
    path = tmp_path_factory.mktemp("train") / "free4x4.h5"
    sample_mcmc(PARAMS, path, chains=2, n_traj=200, n_therm=20, seed=3, progress=False)
    return path


def _digest(path) -> tuple:
    p = Path(path)
    return p.read_bytes(), p.stat().st_mtime_ns


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------------
def test_checkpoint_content(ens, tmp_path):
    out = tmp_path / "m.pt"
    res = train(ens, out, tiny(steps=20), progress=False, command="phi4si train --test")
    assert res["step"] == 20 and res["odd"] is False   # a one-pass network by default (phi4si.model.defaults)
    ck = torch.load(out, map_location="cpu", weights_only=False)
    assert ck["format"] == CHECKPOINT_FORMAT
    assert ck["version"] == __version__
    assert ck["lattice"] == {"shape": [4, 4], "params": PARAMS.to_dict(), "d": 2}
    assert ck["family"] == {"name": "hadamard"}
    assert ck["param"] == "b"
    assert ck["model_config"] == preset("tiny", dim=2, odd=False).to_dict()
    # the defaults are recorded resolved
    assert ck["train_config"] == asdict(tiny(steps=20, odd=False, amp="bf16" if native_bf16("cpu") else "none"))
    assert ck["step"] == 20 and ck["final"] is True and ck["world_size"] == 1
    assert ck["command"] == "phi4si train --test"
    assert ck["data"]["path"] == str(Path(ens).resolve())
    assert ck["data"]["n_chains"] == 2 and ck["data"]["n_train"] + ck["data"]["n_val"] == ck["data"]["n_cfg"]
    # normalisation: mean 0 for a symmetric prior, scale = rms of the training configurations
    with h5py.File(ens, "r") as f:
        phi = f["phi"][:, :ck["data"]["n_train"]].astype(np.float32).astype(np.float64)
    assert ck["normalisation"]["mean"] == 0.0
    assert ck["normalisation"]["scale"] == pytest.approx(np.sqrt((phi ** 2).mean()), rel=1e-6)
    assert [h["step"] for h in ck["history"]] == [20]
    assert set(ck["history"][-1]["val"]) == {"diagonal", "masks", "sequential", "coarse_to_fine", "hypercube"}
    assert all(np.isfinite(v) for v in ck["history"][-1]["val"].values())
    # what load_model makes of it
    m = load_model(out)
    assert m.shape == (4, 4) and m.param == "b" and m.scale == ck["normalisation"]["scale"]
    assert m.meta["step"] == 20 and m.meta["version"] == __version__
    assert _states_equal(m.net.state_dict(), ck["ema_state"])
    assert not any(p.requires_grad for p in m.net.parameters())
    assert m.check_shape((8, 6)) == (8, 6)   # fully convolutional: other shapes of the same dimension


def test_resume_bit_exact(ens, tmp_path):
    """40 steps in one go == 20 steps, then resume for the other 20 (CPU): identical states."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    train(ens, a, tiny(), progress=False)
    r1 = train(ens, b, tiny(), progress=False, max_steps_this_call=20)
    assert r1["step"] == 20
    mid = torch.load(b, weights_only=False)
    assert mid["step"] == 20 and mid["final"] is False
    r2 = train(ens, b, tiny(), resume=True, progress=False)
    assert r2["step"] == 40
    ca, cb = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    assert _states_equal(ca["model_state"], cb["model_state"])
    assert _states_equal(ca["ema_state"], cb["ema_state"])
    assert cb["step"] == 40 and cb["final"] is True
    assert [h["step"] for h in cb["history"]] == [20, 40]
    assert ca["history"][-1]["val"] == cb["history"][-1]["val"]


def test_max_steps_this_call(ens, tmp_path):
    out = tmp_path / "m.pt"
    res = train(ens, out, tiny(), progress=False, max_steps_this_call=7)
    assert res["step"] == 7
    ck = torch.load(out, weights_only=False)
    assert ck["step"] == 7 and ck["final"] is False
    # resuming twice more with a per-call limit reaches the total and stops there
    assert train(ens, out, tiny(), resume=True, progress=False, max_steps_this_call=30)["step"] == 37
    assert train(ens, out, tiny(), resume=True, progress=False, max_steps_this_call=30)["step"] == 40
    assert torch.load(out, weights_only=False)["final"] is True


def test_log_file(ens, tmp_path):
    out = tmp_path / "m.pt"
    train(ens, out, tiny(steps=60, val_every=30), progress=False)
    log = tmp_path / "m.pt.log"
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in recs] == [30, 50, 60]        # validations and every 50th step
    assert all(np.isfinite(r["loss"]) and r["lr"] > 0 for r in recs)
    assert set(recs[0]["val"]) and "val" not in recs[1]
    custom = tmp_path / "train.jsonl"
    train(ens, tmp_path / "n.pt", tiny(steps=10), progress=False, log_path=custom)
    assert [json.loads(line)["step"] for line in custom.read_text().splitlines()] == [10]


def test_refuses_overwrite_and_missing_resume(ens, tmp_path):
    out = tmp_path / "m.pt"
    train(ens, out, tiny(steps=5), progress=False)
    before = _digest(out)
    with pytest.raises(OutputExistsError, match="--overwrite"):
        train(ens, out, tiny(steps=5), progress=False)
    assert _digest(out) == before
    train(ens, out, tiny(steps=6), progress=False, overwrite=True)
    assert torch.load(out, weights_only=False)["step"] == 6
    with pytest.raises(ResumeError, match="does not exist"):
        train(ens, tmp_path / "none.pt", tiny(), resume=True, progress=False)
    assert not (tmp_path / "none.pt").exists()


@pytest.mark.parametrize("change", [dict(lr=1e-3), dict(model="small"), dict(seed=1), dict(param="eta1"),
                                    dict(measure="generation"), dict(augment=False)],
                         ids=lambda d: next(iter(d)))
def test_resume_with_changed_settings(ens, tmp_path, change):
    out = tmp_path / "m.pt"
    train(ens, out, tiny(), progress=False, max_steps_this_call=3)
    before = _digest(out)
    with pytest.raises(ResumeError, match=f"setting {next(iter(change))}"):
        train(ens, out, tiny(**change), resume=True, progress=False)
    assert _digest(out) == before
    # steps, device, threads and the intervals may change on resume
    assert train(ens, out, tiny(steps=10, val_every=7, checkpoint_every=4, threads=None), resume=True,
                 progress=False)["step"] == 10


def test_resume_with_other_data(ens, tmp_path):
    out = tmp_path / "m.pt"
    train(ens, out, tiny(), progress=False, max_steps_this_call=3)
    other = tmp_path / "other.h5"
    sample_mcmc(Phi4Params((4, 4), m2=2.0, lam=0.0), other, chains=2, n_traj=50, n_therm=5, seed=1,
                progress=False)
    with pytest.raises(ResumeError, match="different data"):
        train(other, out, tiny(), resume=True, progress=False)


def test_nan_data(ens, tmp_path):
    bad = tmp_path / "nan.h5"
    shutil.copyfile(ens, bad)
    with h5py.File(bad, "r+") as f:
        f["phi"][0, 3, 1, 1] = np.nan
    with pytest.raises(EnsembleFileError, match="NaN"):
        train(bad, tmp_path / "m.pt", tiny(), progress=False)
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_nan_loss(ens, tmp_path, nan_loss_at):
    nan_loss_at(4)
    out = tmp_path / "m.pt"
    with pytest.raises(TrainingDivergedError, match=r"loss is nan at step 3.*--lr"):
        train(ens, out, tiny(), progress=False)
    assert not out.exists()   # no checkpoint was due yet; nothing half-written either
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("kw, match", [(dict(steps=0), "steps"), (dict(steps=None, minutes=None), "steps or minutes"),
                                       (dict(minutes=-1.0), "minutes"), (dict(lr=0.0), "lr"),
                                       (dict(ema=1.0), "ema"), (dict(param="x"), "param"),
                                       (dict(batch_size=0), "batch_size"), (dict(device="tpu"), "device"),
                                       (dict(compile="no-such-backend"), "torch.compile backend")])
def test_bad_config(ens, tmp_path, kw, match):
    with pytest.raises(ParameterError, match=match):
        train(ens, tmp_path / "m.pt", tiny(**kw), progress=False)
    assert not (tmp_path / "m.pt").exists()


def test_minutes_limit(ens, tmp_path):
    """A time limit alone stops the run (here almost at once), and the checkpoint is final."""
    res = train(ens, tmp_path / "m.pt", tiny(steps=None, minutes=1e-4), progress=False)
    assert 1 <= res["step"] < 1000
    assert torch.load(tmp_path / "m.pt", weights_only=False)["final"] is True


# ------------------------------------------------------------------------------------------------
def test_load_model_errors(ens, tmp_path):
    with pytest.raises(CheckpointError, match="no such model file"):
        load_model(tmp_path / "missing.pt")
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_model(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(CheckpointError, match="not a phi4si model checkpoint"):
        load_model(other)
    torch.save([1, 2, 3], other)
    with pytest.raises(CheckpointError, match="not a phi4si model checkpoint"):
        load_model(other)
    # a model with one pooling level: sides must be even; same dimension only
    out = tmp_path / "pool.pt"
    train(ens, out, tiny(steps=3, model_overrides={"channel_mult": (1, 2)}), progress=False)
    m = load_model(out)
    assert m.check_shape((6, 8)) == (6, 8)
    with pytest.raises(CheckpointError, match="multiples of 2"):
        m.check_shape((5, 4))
    with pytest.raises(CheckpointError, match="2-d lattice"):
        m.check_shape((4, 4, 4))
    with pytest.raises(CheckpointError, match="2-d lattice"):
        m.check_shape((8,))


# ------------------------------------------------------------------------------------------------
DDP_SCRIPT = textwrap.dedent("""
    import os, sys
    from phi4si.model.train import TrainConfig, train
    cfg = TrainConfig(steps=6, model="tiny", batch_size=16, val_every=3, val_size=16, warmup=2, threads=1)
    res = train(sys.argv[1], sys.argv[2], cfg, progress=False)
    os.write(1, f"done {res['step']}\\n".encode())   # one write: the ranks end together, lines must not interleave
""")


def test_ddp_gloo(ens, tmp_path):
    """Two CPU processes under torch.distributed.run (gloo): they finish, rank 0 writes one checkpoint."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "ddp.pt"
    env = dict(os.environ, PHI4SI_DDP_BACKEND="gloo", OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script), str(ens), str(out)], capture_output=True, text=True, env=env, timeout=240,
                       cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count("done 6") == 2, p.stdout
    assert sorted(q.name for q in tmp_path.iterdir()) == ["ddp.pt", "ddp.pt.log", "ddp_train.py"]
    ck = torch.load(out, weights_only=False)
    assert ck["world_size"] == 2 and ck["step"] == 6 and ck["final"] is True
    m = load_model(out)
    assert m.check_shape((4, 4)) == (4, 4)


def test_resume_logs_every_step_once(ens, tmp_path):
    """A run killed after its last checkpoint has logged steps the resumed run does again: the resume
    drops those lines, so the log holds each step once, in order."""
    import json

    out = tmp_path / "m.pt"
    cfg = TrainConfig(steps=60, model="tiny", batch_size=8, val_every=10, checkpoint_every=1000, val_size=16)
    train(ens, out, cfg, progress=False, max_steps_this_call=20)
    log = Path(str(out) + ".log")
    with open(log, "a") as f:                      # what the killed run wrote after its checkpoint at step 20
        for s in (30, 40):
            f.write(json.dumps({"step": s, "loss": 0.0}) + "\n")
    train(ens, out, cfg, progress=False, resume=True)
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 60 and 30 in steps


def test_log_into_a_directory_is_refused_before_work(ens, tmp_path):
    with pytest.raises(ParameterError, match="is a directory"):
        train(ens, tmp_path / "m.pt", TrainConfig(steps=2, model="tiny"), progress=False, log_path=tmp_path)
    assert not (tmp_path / "m.pt").exists()


# ------------------------------------------------------------------------------------------------ fine-tune
@pytest.fixture(scope="module")
def ens8(tmp_path_factory) -> Path:
    """An 8x8 ensemble of the same theory: the lattice a 4x4 model is fine-tuned on."""
    path = tmp_path_factory.mktemp("train8") / "free8x8.h5"
    sample_mcmc(Phi4Params((8, 8), m2=1.0, lam=0.0), path, chains=2, n_traj=60, n_therm=10, seed=4, progress=False)
    return path


@pytest.fixture(scope="module")
def small4(ens, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("init") / "m4.pt"
    train(ens, out, tiny(steps=10, odd=False), progress=False)
    return out


def test_fine_tune_starts_from_the_init_weights_and_records_them(ens8, small4, tmp_path):
    from phi4si.model.shipped import sha256

    out = tmp_path / "f8.pt"
    res = train(ens8, out, tiny(steps=1, init=str(small4), lr=1e-12, warmup=0), progress=False)
    init, ck = torch.load(small4, weights_only=False), torch.load(out, weights_only=False)
    assert res["shape"] == (8, 8) and res["normalisation"] == init["normalisation"]
    assert ck["model_config"] == init["model_config"] and ck["lattice"]["shape"] == [8, 8]
    assert ck["init"]["sha256"] == sha256(small4) and ck["init"]["lattice"]["shape"] == [4, 4]
    for k, v in init["ema_state"].items():            # one step at lr 1e-12: still the init's EMA weights
        assert torch.allclose(ck["model_state"][k].float(), v.float(), atol=1e-6), k
    fresh = torch.load(_fresh(ens8, tmp_path), weights_only=False)
    assert not all(torch.allclose(fresh["model_state"][k].float(), v.float(), atol=1e-3)
                   for k, v in init["ema_state"].items() if v.dtype.is_floating_point)


def _fresh(data, tmp_path):
    out = tmp_path / "fresh.pt"
    train(data, out, tiny(steps=1, lr=1e-12, warmup=0, odd=False), progress=False)
    return out


def test_fine_tune_resumes_bit_exactly(ens8, small4, tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    cfg = tiny(steps=6, init=str(small4))
    train(ens8, a, cfg, progress=False)
    train(ens8, b, cfg, progress=False, max_steps_this_call=3)
    train(ens8, b, cfg, progress=False, resume=True)
    ca, cb = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    assert _states_equal(ca["model_state"], cb["model_state"]) and _states_equal(ca["ema_state"], cb["ema_state"])
    with pytest.raises(ResumeError, match="init was"):
        train(ens8, b, tiny(steps=8), progress=False, resume=True)


@pytest.mark.parametrize("kw,match", [
    (dict(model="small"), r"its model is 'tiny', not 'small'"),
    (dict(model_overrides={"norm": "group"}), r"its model_overrides is \{\}"),
    (dict(param="eta1"), r"its param is 'b', not 'eta1'"),
    (dict(odd=True), r"the init model is not exactly Z2-odd; odd=True contradicts it"),
    (dict(init="no-such-model"), r"no-such-model: no such model file, and no shipped model"),
    (dict(init=""), r"init must be a model checkpoint or a shipped model's name"),
])
def test_fine_tune_refusals_write_nothing(ens8, small4, tmp_path, kw, match):
    out = tmp_path / "f.pt"
    with pytest.raises((ParameterError, CheckpointError), match=match):
        train(ens8, out, tiny(steps=2, **{"init": str(small4), **kw}), progress=False)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_fine_tune_refuses_another_dimension(small4, tmp_path):
    path = tmp_path / "d1.h5"
    sample_mcmc(Phi4Params((8,), m2=1.0, lam=0.0), path, chains=2, n_traj=60, n_therm=10, seed=4, progress=False)
    with pytest.raises(ParameterError, match="a 2-d model of 1 channel.* cannot be fine-tuned on 1-d data"):
        train(path, tmp_path / "f.pt", tiny(steps=2, init=str(small4)), progress=False)
    assert not (tmp_path / "f.pt").exists()


def test_train_init_on_the_command_line_takes_the_init_network(cli, ens8, small4, tmp_path):
    out = tmp_path / "f.pt"
    rc, _, err = cli("train", "--data", ens8, "--init", small4, "--steps", "2", "--batch-size", "8", "--out", out,
                     "--no-progress", "--threads", "1", "--amp", "bf16")
    assert rc == 0, err
    ck = torch.load(out, weights_only=False)
    assert ck["train_config"]["model"] == "tiny" and ck["train_config"]["init"] == str(small4)
    assert ck["train_config"]["amp"] == "bf16"
    rc, _, err = cli("train", "--data", ens8, "--init", small4, "--model", "small", "--steps", "2", "--out",
                     tmp_path / "g.pt", "--no-progress")
    assert rc != 0 and "its model is 'tiny', not 'small'" in err and not (tmp_path / "g.pt").exists()


def test_bf16_autocast_on_cpu_trains_close_to_float32_and_resumes_bit_exactly(ens, tmp_path):
    a, b, c = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"
    f32 = train(ens, a, tiny(amp="none"), progress=False)
    bf = train(ens, b, tiny(amp="bf16"), progress=False)
    ca, cb = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    assert cb["train_config"]["amp"] == "bf16" and not _states_equal(ca["model_state"], cb["model_state"])
    va, vb = f32["history"][-1]["val"], bf["history"][-1]["val"]
    assert all(abs(vb[k] - va[k]) < 0.1 * va[k] for k in va), (va, vb)
    train(ens, c, tiny(amp="bf16"), progress=False, max_steps_this_call=20)
    train(ens, c, tiny(amp="bf16"), progress=False, resume=True)
    assert _states_equal(cb["model_state"], torch.load(c, weights_only=False)["model_state"])
    with pytest.raises(ResumeError, match="amp was 'bf16', now 'none'"):
        train(ens, c, tiny(steps=50, amp="none"), progress=False, resume=True)


def test_compiled_training_forward_follows_eager_and_resumes_either_way(ens, tmp_path):
    """compile="aot_eager" runs the training step through dynamo's graph capture and AOT autograd (the
    path inductor takes, without generating code, so it runs anywhere); the weights follow eager ones
    to float round-off, and a run may be resumed with compilation switched on or off."""
    a, b, c = tmp_path / "a.pt", tmp_path / "b.pt", tmp_path / "c.pt"
    train(ens, a, tiny(steps=12, val_every=6), progress=False)
    train(ens, b, tiny(steps=12, val_every=6, compile="aot_eager"), progress=False)
    sa, sb = (torch.load(p, weights_only=False)["model_state"] for p in (a, b))
    assert torch.load(b, weights_only=False)["train_config"]["compile"] == "aot_eager"
    assert max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa) < 1e-4
    train(ens, c, tiny(steps=12, val_every=6, compile="aot_eager"), progress=False, max_steps_this_call=6)
    train(ens, c, tiny(steps=12, val_every=6), progress=False, resume=True)
    sc = torch.load(c, weights_only=False)["model_state"]
    assert max(float((sa[k].float() - sc[k].float()).abs().max()) for k in sa) < 1e-4


# ------------------------------------------------------------------------------------------------ defaults
def test_odd_on_request_and_explicit_defaults_resume(ens, tmp_path):
    """odd=True still builds the exactly odd network; a run resumed with the defaults left out keeps
    the checkpoint's resolved odd/amp, and an explicit contradiction is refused (file untouched)."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    train(ens, a, tiny(odd=True, amp="none"), progress=False)
    assert torch.load(a, weights_only=False)["model_config"]["odd"] is True
    train(ens, b, tiny(odd=True, amp="none"), progress=False, max_steps_this_call=20)
    before = b.read_bytes()
    with pytest.raises(ResumeError, match="setting odd was True, now False"):
        train(ens, b, tiny(odd=False), resume=True, progress=False)
    assert b.read_bytes() == before
    train(ens, b, tiny(), resume=True, progress=False)            # odd=None, amp="auto": the checkpoint's
    ca, cb = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    assert _states_equal(ca["ema_state"], cb["ema_state"]) and cb["train_config"]["odd"] is True


def test_a_checkpoint_made_under_the_old_defaults_resumes_bit_exactly(ens, tmp_path):
    """Before 2026-12 a checkpoint recorded odd=None (odd when h = 0) and amp='auto' (float32 on CPU):
    it resumes under those rules with the new defaults' command."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    train(ens, a, tiny(odd=True, amp="none"), progress=False)
    train(ens, b, tiny(odd=True, amp="none"), progress=False, max_steps_this_call=20)
    ck = torch.load(b, weights_only=False)
    ck["train_config"].update(odd=None, amp="auto")               # as the old trainer wrote it
    torch.save(ck, b)
    train(ens, b, tiny(), resume=True, progress=False)
    ca, cb = torch.load(a, weights_only=False), torch.load(b, weights_only=False)
    assert _states_equal(ca["model_state"], cb["model_state"]) and _states_equal(ca["ema_state"], cb["ema_state"])
    assert cb["train_config"]["odd"] is True and cb["train_config"]["amp"] == "none"


def test_a_fine_tune_keeps_the_init_models_oddness(ens8, tmp_path):
    odd4 = tmp_path / "odd4.pt"
    train(ens8, odd4, tiny(steps=2, odd=True), progress=False)
    train(ens8, tmp_path / "f.pt", tiny(steps=2, init=str(odd4)), progress=False)
    ck = torch.load(tmp_path / "f.pt", weights_only=False)
    assert ck["model_config"]["odd"] is True and ck["train_config"]["odd"] is True


def test_legacy_config_reads_the_old_rules():
    from phi4si.model.defaults import legacy_config

    assert legacy_config({"odd": None, "amp": "auto", "device": "cpu"}, {"odd": True}) == \
        {"odd": True, "amp": "none", "device": "cpu"}
    assert legacy_config({"odd": None, "amp": "auto", "device": "cuda:0"}, {"odd": False})["amp"] == "bf16"
    assert legacy_config({"odd": False, "amp": "bf16"}, {"odd": False}) == {"odd": False, "amp": "bf16"}
