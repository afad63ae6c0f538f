"""Ctrl-C (SIGINT) and SIGTERM stop a long run at a consistent point: exit status 130, one line that
says how to continue, and the resumed run equals the uninterrupted one bit for bit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from processes import n_done, wait_for

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _phi4si(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "phi4si", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, **kw)






MCMC = ["sample-mcmc", "--shape", "16", "16", "--chains", "2", "--n-therm", "20", "--every", "5", "--seed", "11",
        "--flush-seconds", "0.05", "--no-progress"]


@pytest.mark.parametrize("sig", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_sample_mcmc_stop_and_resume_bit_identical(tmp_path, sig):
    n = 3000
    ref = tmp_path / "ref.h5"
    p = _phi4si(*MCMC, "--n-traj", n, "--out", ref)
    assert p.wait(timeout=300) == 0, p.communicate()
    out = tmp_path / "int.h5"
    p = _phi4si(*MCMC, "--n-traj", n, "--out", out)
    wait_for(lambda: n_done(out) >= 50, p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    stopped = n_done(out)
    assert stopped < n, "the signal came too late to test a resume"
    assert "continue with the same command and --resume" in err and err.strip().count("\n") == 0, err
    p = _phi4si(*MCMC, "--n-traj", n, "--out", out, "--resume")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    with h5py.File(ref, "r") as a, h5py.File(out, "r") as b:
        for k in ("m", "S", "accepted", "dH", "gp", "phi"):
            assert np.array_equal(a[k][...], b[k][...]), f"{k} differs after a stop at trajectory {stopped}"
        assert np.array_equal(a["state/phi"][...], b["state/phi"][...])


def test_train_stop_and_resume_bit_identical(tmp_path):
    from phi4si import Phi4Params, sample_mcmc

    ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), tmp_path / "e.h5", chains=2, n_traj=100, n_therm=10,
                      progress=False)
    args = ["train", "--data", ens, "--model", "tiny", "--steps", "400", "--batch-size", "8", "--val-every", "200",
            "--checkpoint-every", "100000", "--threads", "1", "--seed", "3", "--no-progress"]
    ref = tmp_path / "ref.pt"
    p = _phi4si(*args, "--out", ref)
    assert p.wait(timeout=600) == 0, p.communicate()
    out = tmp_path / "int.pt"
    log = Path(str(out) + ".log")
    p = _phi4si(*args, "--out", out)
    wait_for(lambda: log.exists() and log.stat().st_size > 0, p)      # past step 50
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "continue with the same command and --resume" in err, err
    import torch

    step = torch.load(out, map_location="cpu", weights_only=False)["step"]
    assert 0 < step < 400
    p = _phi4si(*args, "--out", out, "--resume")
    _, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    a = torch.load(ref, map_location="cpu", weights_only=False)
    b = torch.load(out, map_location="cpu", weights_only=False)
    assert a["step"] == b["step"] == 400
    for key in ("model_state", "ema_state"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs after a stop at step {step}"
    assert [r["step"] for r in a["history"]] == [r["step"] for r in b["history"]]


@pytest.mark.slow   # ~30 s; sample-neural --resume is also in tests/cli/test_cli_interpolant.py
def test_sample_neural_stop_and_resume(tmp_path):
    from phi4si import Phi4Params, TrainConfig, sample_mcmc, train

    ens = sample_mcmc(Phi4Params((4, 4), -1.0, 1.0), tmp_path / "e.h5", chains=2, n_traj=40, n_therm=10,
                      progress=False)
    model = tmp_path / "m.pt"
    train(ens, model, TrainConfig(steps=5, model="tiny", batch_size=8, threads=1), progress=False)
    args = ["sample-neural", "--model", model, "--method", "reweight", "--n", "400", "--steps", "2",
            "--batch-size", "8", "--threads", "1", "--seed", "4", "--no-progress"]
    ref = tmp_path / "ref.h5"
    p = _phi4si(*args, "--out", ref)
    assert p.wait(timeout=300) == 0, p.communicate()
    out = tmp_path / "int.h5"
    p = _phi4si(*args, "--out", out)
    wait_for(lambda: n_done(out) >= 16, p)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "continue with the same command and --resume" in err, err
    stopped = n_done(out)
    assert 0 < stopped < 400
    p = _phi4si(*args, "--out", out, "--resume")
    _, err = p.communicate(timeout=300)
    assert p.returncode == 0, err
    # bit for bit (a resumed run used to differ by 1 ulp: numba's OpenMP layer reset torch's thread count
    # at the first measurement, so the uninterrupted run's later chunks summed in another order)
    with h5py.File(ref, "r") as a, h5py.File(out, "r") as b:
        for k in ("phi", "log_w", "m", "S"):
            assert np.array_equal(a[k][...], b[k][...]), f"{k} differs after a stop at sample {stopped}"


_FAKE_TORCH = '''
import os, signal, time
os.kill(os.getpid(), signal.SIGINT)       # a Ctrl-C in the middle of the import
t = time.time()
while time.time() - t < 0.2:              # more Python inside the import: the exception must wait
    pass
print("import finished", flush=True)
'''

_PROGRAM = '''
import sys
sys.path.insert(0, sys.argv[1])
from phi4si.interrupts import pending, watch_start
watch_start()
try:
    import torch
    import time
    t = time.time()
    while time.time() - t < 5:
        pass
    print("no interrupt")
except KeyboardInterrupt:
    print("interrupted after the import", torch.__name__, pending() == 2)
'''


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs an interval timer")
def test_ctrl_c_inside_torch_import_waits_for_its_end(tmp_path):
    """A Ctrl-C while torch is imported is raised only when that import is over (an exception inside it
    can go through C++ and abort the process), and then at once."""
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text(_FAKE_TORCH)
    r = subprocess.run([sys.executable, "-c", _PROGRAM, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["import finished", "interrupted after the import torch True"], r.stdout + r.stderr
