"""The ``phi4si`` command line: every bad input gives a clear one-line error and a non-zero
exit status *without touching any file*, and the documented good paths work.

Most tests call :func:`phi4si.cli.main` in-process (through the ``cli`` fixture of
conftest.py); two use ``python -m phi4si`` in a subprocess to check the real exit status.
Runs are tiny (4x4, 2 chains, 20 trajectories) so the file takes seconds once numba's
cache is warm.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from phi4si import Phi4Params, __version__, open_ensemble
from phi4si.cli import build_parser, main
from phi4si.mcmc.run import sample_mcmc

ROOT = Path(__file__).resolve().parents[2]
TINY = ("--shape", "4", "4", "--chains", "2", "--n-traj", "20", "--n-therm", "5", "--no-progress")
KEYS = ("abs_m", "m", "m2", "chi", "chi0", "binder", "xi2", "s")
PNGS = ("hist_m.png", "history.png", "correlator.png", "configs.png")
DATASETS = ("m", "S", "accepted", "dH", "gp", "phi", "traj", "cfg", "state/phi")


def _sample_mcmc_flags() -> dict:
    """{option string: argparse action} of ``phi4si sample-mcmc`` as the parser defines it now."""
    ap = build_parser()
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    return {opt: act for act in sub.choices["sample-mcmc"]._actions for opt in act.option_strings}


FLAGS = _sample_mcmc_flags()
VALUE_FLAGS = sorted(o for o, a in FLAGS.items() if o.startswith("--") and a.nargs != 0 and o != "--help")
TYPED_FLAGS = [o for o in VALUE_FLAGS if FLAGS[o].choices is not None or FLAGS[o].type not in (None, str)]


def _read(path) -> dict:
    """Every dataset and the root attributes of an ensemble file, as numpy arrays / python values."""
    with h5py.File(path, "r") as f:
        data = {k: f[k][...] for k in DATASETS}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return data, attrs


def _assert_same_data(a, b, n=None):
    """Same measurements (the first n trajectories if n is given) bit for bit."""
    (da, aa), (db, ab) = _read(a), _read(b)
    for k in ("m", "S", "accepted", "dH", "gp"):
        x, y = da[k], db[k]
        if n is not None:
            x, y = x[:, :n], y[:, :n]
        assert np.array_equal(x, y, equal_nan=True), k
    if n is None:
        for k in ("phi", "traj", "cfg", "state/phi"):
            assert np.array_equal(da[k], db[k]), k
        for k in ("n_done", "n_therm_done", "eps", "acceptance"):
            assert aa[k] == ab[k], k


def _no_traceback(err):
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    """A tiny HMC ensemble made once by the command line (read-only: copy before changing)."""
    path = tmp_path_factory.mktemp("ensemble") / "base.h5"
    assert main(["sample-mcmc", *TINY, "--out", str(path)]) == 0
    return path


@pytest.fixture
def existing(ensemble, tmp_path):
    """A private copy of the ensemble in an otherwise empty directory."""
    path = tmp_path / "existing.h5"
    shutil.copyfile(ensemble, path)
    return path


# --------------------------------------------------------------------------------------------
# bad input to sample-mcmc: clear message, non-zero exit, nothing on disk touched
# --------------------------------------------------------------------------------------------

def _case(flag, *values, match=None, tokens=None):
    """(flag, command-line tokens, regex the error message must match)."""
    return (flag, tokens or [flag, *values], match or re.escape(flag))


BAD = [
    _case("--shape", "1", "4", match=r"--shape.*>= 2"),
    _case("--shape", "0"),
    _case("--shape", "-4", "4"),
    _case("--shape", "4", "x"),
    _case("--shape", "4.5", "4"),
    _case("--shape", "nan", "4"),
    _case("--shape", match=r"--shape.*expected"),
    *[_case("--m2", v) for v in ("nan", "inf", "-inf", "x", "")],
    _case("--lam", "-1", match=r"lam must be >= 0"),
    _case("--lam", tokens=["--lam=-1e-9"], match=r"lam must be >= 0"),
    # negative numbers in every notation are numbers, not options (then refused on their merits)
    _case("--lam", "-1e-9", match=r"lam must be >= 0"),
    _case("--lam", "-.5", match=r"lam must be >= 0"),
    _case("--lam", "-2.5E+3", match=r"lam must be >= 0"),
    _case("--eps", "-1e-3", match=r"eps \(--eps\) must be finite and > 0"),
    _case("--flush-seconds", "-1e-3", match=r"--flush-seconds"),
    _case("--jitter", "-1e-1", match=r"jitter"),
    _case("--target-accept", "-5e-1", match=r"target acceptance"),
    _case("--m2", "-inf", match=r"--m2.*must be finite"),
    *[_case("--lam", v) for v in ("nan", "inf", "x")],
    _case("--lam", "0", "--m2", "0", match=r"lam = 0.*m2 - k > 0"),
    _case("--lam", "0", "--m2", "-1", match=r"lam = 0.*m2 - k > 0"),
    _case("--lam", "0", "--m2", "1", "--k", "1", match=r"lam = 0.*m2 - k > 0"),
    *[_case("--h", v) for v in ("nan", "inf", "-inf", "x")],
    *[_case("--k", v) for v in ("nan", "inf", "-inf", "x")],
    *[_case("--kappa", v, "--l", "0.01") for v in ("0", "-0.1", "nan", "inf", "x")],
    _case("--kappa", "0.2", match=r"--kappa and --l go together"),
    _case("--l", "0.01", match=r"--kappa and --l go together"),
    *[_case("--l", v, "--kappa", "0.2") for v in ("nan", "inf", "x")],
    # the hopping form names the hopping flags, not the lam/m2 they are converted to
    _case("--l", "-1", "--kappa", "0.1", match=r"^phi4si sample-mcmc: error: --l must be >= 0"),
    _case("--l", "-1e-9", "--kappa", "0.1", match=r"^phi4si sample-mcmc: error: --l must be >= 0"),
    _case("--l", "0", "--kappa", "0.3", match=r"--kappa 0\.3 --l 0\.0.*free field"),
    # the hopping form (--kappa, --l) and the standard form (--m2, --lam) exclude each other
    _case("--kappa", "0.2", "--l", "0.02", "--m2", "-4", match=r"--kappa, --l and --m2 exclude each other"),
    _case("--kappa", "0.2", "--l", "0.02", "--lam", "8", match=r"--kappa, --l and --lam exclude each other"),
    _case("--kappa", "0.2", "--m2", "-4", "--lam", "8", match=r"--kappa, --m2 and --lam exclude each other"),
    _case("--l", "0.02", "--m2", "-4", match=r"--l and --m2 exclude each other"),
    _case("--sampler", "foo"),
    _case("--sampler", "HMC"),
    *[_case("--chains", v) for v in ("0", "-1", "1.5", "x", "nan")],
    *[_case("--n-traj", v) for v in ("0", "-5", "2.5", "inf", "x")],
    *[_case("--n-therm", v) for v in ("-1", "x", "0.5", "inf")],
    *[_case("--every", v) for v in ("-1", "x", "1.5", "nan")],
    *[_case("--eps", v) for v in ("0", "-0.1", "nan", "inf", "x")],
    *[_case("--n-steps", v) for v in ("0", "-1", "x", "2.5", "nan")],
    _case("--integrator", "rk4"),
    *[_case("--mass", v) for v in ("0", "-1", "nan", "inf", "x")],
    *[_case("--target-accept", v, match=r"target accept") for v in ("0", "1", "1.5", "-0.2")],
    *[_case("--target-accept", v) for v in ("nan", "x")],
    *[_case("--seed", v) for v in ("-1", "1.5", "x", "nan", "inf")],
    _case("--dtype", "float16"),
    _case("--dtype", "int32"),
    *[_case("--flush-seconds", v) for v in ("0", "-1", "nan", "x")],
    _case("--jitter", "-0.1", match=r"jitter"),
    _case("--jitter", "1", match=r"jitter"),
    _case("--jitter", "1.5", match=r"jitter"),
    *[_case("--jitter", v) for v in ("nan", "x")],
    _case("--bogus", "1", match=r"unrecognized arguments: --bogus"),
    # settings the chosen sampler does not use are refused, not ignored
    _case("--mass", "2", match=r"sampler hmc does not use mass \(--mass\)"),
    _case("--integrator", "omelyan", "--sampler", "mala", match=r"sampler mala does not use integrator"),
    _case("--integrator", "leapfrog", "--sampler", "langevin", match=r"sampler langevin does not use integrator"),
    _case("--target-accept", "0.6", "--sampler", "langevin", match=r"langevin does not use target_accept"),
    _case("--no-adapt", "--sampler", "langevin", match=r"sampler langevin does not use adapt \(--no-adapt\)"),
]
BAD = [c for c in BAD if c[0] in FLAGS or c[0] == "--bogus"]


@pytest.mark.parametrize("flag,tokens,match", BAD, ids=[" ".join(c[1]) for c in BAD])
@pytest.mark.parametrize("target", ["existing+overwrite", "new"])
def test_sample_bad_value(cli, existing, flag, tokens, match, target):
    before = existing.read_bytes()
    listing = sorted(p.name for p in existing.parent.iterdir())
    out = existing if target.startswith("existing") else existing.parent / "new.h5"
    extra = ["--overwrite"] if target == "existing+overwrite" else []
    rc, stdout, err = cli("sample-mcmc", *TINY, *tokens, "--out", out, *extra)
    assert rc in (1, 2), (rc, err)
    assert re.search(match, err), err
    assert err.startswith("usage:") or err.startswith("phi4si sample-mcmc: error:"), err
    _no_traceback(err)
    assert existing.read_bytes() == before
    assert sorted(p.name for p in existing.parent.iterdir()) == listing  # no new file, no .tmp left


@pytest.mark.parametrize("flag", TYPED_FLAGS)
def test_every_value_flag_refuses_garbage(cli, existing, flag):
    """Whatever flags sample-mcmc grows, a value of the wrong kind is refused by the parser
    (``--out``, the only plain-string flag, is covered by the path tests)."""
    bad = "no-such-choice" if FLAGS[flag].choices is not None else "not-a-number"
    before = existing.read_bytes()
    rc, _, err = cli("sample-mcmc", *TINY, flag, bad, "--out", existing, "--overwrite")
    assert rc == 2, err
    assert flag in err and bad in err, err
    assert existing.read_bytes() == before


@pytest.mark.parametrize("flag", sorted(o for o, a in FLAGS.items() if o.startswith("--") and a.nargs == 0
                                       and o != "--help"))
def test_switches_take_no_value(cli, existing, flag):
    before = existing.read_bytes()
    rc, _, err = cli("sample-mcmc", *TINY, f"{flag}=yes", "--out", existing, "--overwrite")
    assert rc == 2 and flag in err, err
    assert existing.read_bytes() == before


def test_negative_numbers_are_values():
    """``--m2 -1e-9`` is the number -1e-9 in every notation argparse alone would take for an option."""
    from phi4si.cli import parse_args

    for flag, dest, v in [("--m2", "m2", "-1e-9"), ("--h", "h", "-.5"), ("--k", "k", "-2.5E+3"),
                          ("--lam", "lam", "-1e-9"), ("--eps", "eps", "-1E-3"), ("--m2", "m2", "-4")]:
        args = parse_args(["sample-mcmc", flag, v, "--out", "x.h5"])
        assert getattr(args, dest) == float(v), (flag, v)
    args = parse_args(["sample-mcmc", "--m2", "-1e-9", "--lam=-0.5", "--h", "-1e+1", "--out", "x.h5"])
    assert (args.m2, args.lam, args.h) == (-1e-9, -0.5, -10.0)


def test_sampler_settings_table_matches_samplers():
    """SAMPLER_SETTINGS (what the driver refuses) says what each sampler really uses."""
    from phi4si.mcmc import SAMPLERS, make_sampler
    from phi4si.mcmc.settings import SAMPLER_SETTINGS

    assert set(SAMPLER_SETTINGS) == set(SAMPLERS)
    for name in SAMPLERS:
        smp = make_sampler(name, Phi4Params((4, 4), 1.0, 0.5))
        meta = smp.meta()
        assert ("integrator" in SAMPLER_SETTINGS[name]) == ("integrator" in meta), name
        assert ("mass" in SAMPLER_SETTINGS[name]) == ("mass" in meta), name
        for key in ("target_accept", "adapt"):
            assert (key in SAMPLER_SETTINGS[name]) == bool(smp.adaptive), (name, key)


PY_BAD = [
    (dict(flush_seconds=0), r"flush_seconds \(--flush-seconds\) must be finite and > 0"),
    (dict(flush_seconds=-1.0), r"flush_seconds"),
    (dict(flush_seconds=float("nan")), r"flush_seconds"),
    (dict(flush_seconds="5"), r"flush_seconds.*real number"),
    (dict(mass=0.0, sampler="fahmc"), r"mass \(--mass\) must be finite and > 0"),
    (dict(mass=float("inf"), sampler="mala"), r"mass"),
    (dict(mass=-1.0), r"mass"),
    (dict(mass=2.0), r"sampler hmc does not use mass"),
    (dict(mass=1.0, sampler="hmc"), r"sampler hmc does not use mass"),
    (dict(integrator="omelyan", sampler="langevin"), r"sampler langevin does not use integrator"),
    (dict(integrator="rk4"), r"integrator"),
    (dict(target_accept=0.5, sampler="langevin"), r"does not use target_accept"),
    (dict(adapt=False, sampler="langevin"), r"does not use adapt"),
    (dict(chains=True), r"chains \(--chains\) must be an integer"),
    (dict(chains=2.0), r"chains.*integer"),
    (dict(chains=2.5), r"chains.*integer"),
    (dict(chains="2"), r"chains.*integer"),
    (dict(chains=0), r"chains.*>= 1"),
    (dict(n_traj=np.float64(10)), r"n_traj"),
    (dict(seed=-1), r"seed"),
    (dict(eps=float("nan")), r"eps"),
    (dict(jitter=float("nan")), r"jitter"),
    (dict(target_accept=1.0), r"target acceptance"),
    (dict(max_trajectories=-1), r"max_trajectories"),
    (dict(dtype="float16"), r"dtype"),
    (dict(sampler="HMC"), r"unknown sampler"),
]


@pytest.mark.parametrize("kw,match", PY_BAD, ids=[",".join(f"{k}={v!r}" for k, v in c[0].items()) for c in PY_BAD])
def test_sample_mcmc_validates_like_the_cli(tmp_path, kw, match):
    """The Python API refuses what the command line refuses, with the same ParameterError, before any file."""
    from phi4si.errors import ParameterError

    with pytest.raises(ParameterError, match=match):
        sample_mcmc(Phi4Params((4, 4), -4.0, 8.0), tmp_path / "x.h5", **{"chains": 2, "n_traj": 5, "n_therm": 0,
                                                                         "progress": False, **kw})
    assert list(tmp_path.iterdir()) == []


def test_cli_forwards_the_api_message(cli, tmp_path):
    """One home for sampler-setting validation: the command line shows sample_mcmc's own message."""
    from phi4si.errors import ParameterError

    with pytest.raises(ParameterError) as exc:
        sample_mcmc(Phi4Params((4, 4), -4.0, 8.0), tmp_path / "x.h5", flush_seconds=0.0, progress=False)
    rc, _, err = cli("sample-mcmc", *TINY, "--flush-seconds", "0", "--out", tmp_path / "x.h5")
    assert rc == 1 and err.strip() == f"phi4si sample-mcmc: error: {exc.value}", err
    assert list(tmp_path.iterdir()) == []


def test_out_is_required(cli):
    rc, _, err = cli("sample-mcmc", *TINY)
    assert rc == 2 and "--out" in err


def test_no_overwrite_without_flag(cli, existing):
    before = existing.read_bytes()
    rc, _, err = cli("sample-mcmc", *TINY, "--seed", "3", "--out", existing)
    assert rc == 1
    assert "exists" in err and "--overwrite" in err and "--resume" in err
    _no_traceback(err)
    assert existing.read_bytes() == before


def test_output_directory_missing(cli, tmp_path):
    out = tmp_path / "nodir" / "x.h5"
    for extra in ([], ["--overwrite"]):
        rc, _, err = cli("sample-mcmc", *TINY, "--out", out, *extra)
        assert rc == 1 and "does not exist" in err and str(out.parent) in err, err
    assert not out.parent.exists()


@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--resume"]], ids=["plain", "overwrite", "resume"])
def test_output_is_a_directory(cli, tmp_path, extra):
    d = tmp_path / "d.h5"
    d.mkdir()
    (d / "keep").write_text("x")
    rc, _, err = cli("sample-mcmc", *TINY, "--out", d, *extra)
    assert rc == 1 and "is a directory" in err, err
    assert d.is_dir() and [p.name for p in d.iterdir()] == ["keep"]


def test_output_parent_is_a_file(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("not a directory")
    rc, _, err = cli("sample-mcmc", *TINY, "--out", f / "x.h5")
    assert rc == 1 and "not a directory" in err.lower()
    assert f.read_text() == "not a directory"


def test_resume_and_overwrite_exclude_each_other(cli, existing):
    before = existing.read_bytes()
    rc, _, err = cli("sample-mcmc", *TINY, "--out", existing, "--resume", "--overwrite")
    assert rc == 1 and "--resume and --overwrite" in err
    assert existing.read_bytes() == before


def test_resume_missing_file(cli, tmp_path):
    out = tmp_path / "missing.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--out", out, "--resume")
    assert rc == 1 and "does not exist" in err and "missing.h5" in err
    assert list(tmp_path.iterdir()) == []


CHANGED = [
    (["--m2", "-3"], "parameters differ"),
    (["--lam", "7"], "parameters differ"),
    (["--h", "0.1"], "parameters differ"),
    (["--k", "0.1"], "parameters differ"),
    (["--shape", "4", "6"], "parameters differ"),
    (["--kappa", "0.2", "--l", "0.02"], "parameters differ"),
    (["--seed", "1"], "seed"),
    (["--chains", "3"], "chains"),
    (["--n-therm", "6"], "n_therm"),
    (["--every", "2"], "every"),
    (["--dtype", "float32"], "dtype"),
    (["--sampler", "mala"], "sampler"),
    (["--integrator", "omelyan"], "integrator"),
    (["--n-steps", "5"], "n_steps"),
    (["--eps", "0.05"], "eps_initial"),
    (["--target-accept", "0.6"], "target_accept"),
    (["--no-adapt"], "adapt"),
    (["--jitter", "0.2"], "jitter"),
    (["--n-traj", "10"], "already holds 20"),
]
CHANGED = [c for c in CHANGED if c[0][0] in FLAGS]


@pytest.mark.parametrize("change,match", CHANGED, ids=[" ".join(c[0]) for c in CHANGED])
def test_resume_with_changed_settings(cli, existing, change, match):
    before = existing.read_bytes()
    rc, _, err = cli("sample-mcmc", *TINY, *change, "--out", existing, "--resume")
    assert rc == 1, err
    assert "cannot resume" in err and match in err, err
    _no_traceback(err)
    assert existing.read_bytes() == before


@pytest.mark.parametrize("kind", ["text", "hdf5", "empty"])
def test_resume_non_ensemble(cli, tmp_path, kind):
    p = _non_ensemble(tmp_path, kind)
    before = p.read_bytes()
    rc, _, err = cli("sample-mcmc", *TINY, "--out", p, "--resume")
    assert rc == 1 and p.name in err, err
    _no_traceback(err)
    assert p.read_bytes() == before


# --------------------------------------------------------------------------------------------
# analyze / plot on files that are not ensembles
# --------------------------------------------------------------------------------------------

def _non_ensemble(tmp_path, kind) -> Path:
    if kind == "missing":
        return tmp_path / "missing.h5"
    if kind == "text":
        p = tmp_path / "notes.h5"
        p.write_text("this is not HDF5\n")
    elif kind == "empty":
        p = tmp_path / "empty.h5"
        p.write_bytes(b"")
    elif kind == "hdf5":
        p = tmp_path / "other.h5"
        with h5py.File(p, "w") as f:
            f["a"] = np.arange(3)
            f.attrs["phi4si_format"] = "something-else/9"
    elif kind == "directory":
        p = tmp_path / "dir.h5"
        p.mkdir()
    else:  # pragma: no cover
        raise ValueError(kind)
    return p


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "hdf5", "directory"])
@pytest.mark.parametrize("cmd", [["analyze"], ["analyze", "--json"], ["plot", "--out", "PLOTS"]],
                         ids=["analyze", "analyze-json", "plot"])
def test_analyze_plot_not_an_ensemble(cli, tmp_path, cmd, kind):
    p = _non_ensemble(tmp_path, kind)
    cmd = [str(tmp_path / "plots") if c == "PLOTS" else c for c in cmd]
    rc, out, err = cli(cmd[0], p, *cmd[1:])
    assert rc == 1, (rc, err)
    assert err.startswith(f"phi4si {cmd[0]}: error:") and p.name in err, err
    _no_traceback(err)
    assert out == ""
    assert not list((tmp_path / "plots").glob("*.png"))


@pytest.mark.parametrize("S", ["0", "-1", "nan", "x"])
def test_analyze_bad_window(cli, ensemble, S):
    rc, out, err = cli("analyze", ensemble, "--S", S)
    assert rc == 2 and "--S" in err and out == ""


def test_plot_needs_out(cli, ensemble):
    rc, _, err = cli("plot", ensemble)
    assert rc == 2 and "--out" in err


def test_plot_out_is_a_file(cli, ensemble, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    rc, _, err = cli("plot", ensemble, "--out", f)
    assert rc == 1 and "file" in err
    assert f.read_text() == "x"


def test_plot_bad_input_creates_nothing(cli, tmp_path):
    p = _non_ensemble(tmp_path, "text")
    rc, _, err = cli("plot", p, "--out", tmp_path / "plots")
    assert rc == 1
    assert not (tmp_path / "plots").exists()


def test_demo_out_is_a_file(cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    rc, _, err = cli("demo", "--n-traj", "10", "--out", f)
    assert rc == 1 and "Traceback" not in err
    assert f.read_text() == "x"


def test_analyze_file_without_measurements(cli, tmp_path):
    p = tmp_path / "therm.h5"
    sample_mcmc(Phi4Params((4, 4), -4.0, 8.0), p, chains=2, n_traj=10, n_therm=5, max_trajectories=3,
                progress=False)
    rc, out, err = cli("analyze", p, "--json")
    assert rc == 1 and "measurement" in err and out == ""


def test_analyze_four_trajectories(cli, tmp_path):
    p = tmp_path / "short.h5"
    rc, _, err = cli("sample-mcmc", "--shape", "4", "4", "--chains", "2", "--n-traj", "4", "--n-therm", "0",
                     "--no-progress", "--out", p)
    assert rc == 0, err
    rc, out, err = cli("analyze", p, "--json")
    assert rc == 0 or (rc == 1 and out == "" and "Traceback" not in err)


# --------------------------------------------------------------------------------------------
# good paths
# --------------------------------------------------------------------------------------------

def _strict_json(text):
    def no_constants(c):
        raise AssertionError(f"{c} in JSON output (not valid JSON)")

    return json.loads(text, parse_constant=no_constants)


def test_analyze_json(cli, ensemble):
    rc, out, err = cli("analyze", ensemble, "--json")
    assert rc == 0, err
    res = _strict_json(out)
    for k in KEYS:
        e = res[k]
        assert {"value", "error", "tau_int"} <= set(e), (k, e)
        if k == "xi2" and e["value"] is None:  # documented: undefined when G~(0)/G~(p_min) <= 1
            continue
        assert math.isfinite(e["value"]) and e["error"] >= 0 and e["tau_int"] >= 0.5, (k, e)
    assert 0.0 <= res["acceptance"] <= 1.0
    assert res["n_chains"] == 2 and res["n_traj"] == 20
    assert res["params"] == {"shape": [4, 4], "m2": -4.0, "lam": 8.0, "h": 0.0, "k": 0.0}
    assert res["sampler"]["sampler"] == "hmc"
    assert res["abs_m"]["value"] >= abs(res["m"]["value"])
    assert res["chi0"]["value"] >= res["chi"]["value"]


def test_analyze_table(cli, ensemble):
    rc, out, err = cli("analyze", ensemble)
    assert rc == 0, err
    for label in ("<|m|>", "<m^2>", "chi", "chi0", "U4", "xi_2", "<S>/V", "acceptance", "4x4"):
        assert label in out, label


def test_plot_writes_pngs(cli, ensemble, tmp_path):
    d = tmp_path / "a" / "b"
    rc, out, err = cli("plot", ensemble, "--out", d)
    assert rc == 0, err
    assert sorted(Path(line).name for line in out.split()) == sorted(PNGS)
    for name in PNGS:
        assert (d / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_overwrite_replaces(cli, existing):
    before = existing.read_bytes()
    rc, _, err = cli("sample-mcmc", *TINY, "--seed", "7", "--out", existing, "--overwrite")
    assert rc == 0, err
    assert existing.read_bytes() != before
    _, attrs = _read(existing)
    assert json.loads(attrs["run"])["seed"] == 7 and attrs["n_done"] == 20
    assert sorted(p.name for p in existing.parent.iterdir()) == ["existing.h5"]


def test_resume_extends_bit_identically(cli, ensemble, existing, tmp_path):
    rc, _, err = cli("sample-mcmc", *[a if a != "20" else "30" for a in TINY], "--out", existing, "--resume")
    assert rc == 0, err
    data, attrs = _read(existing)
    assert attrs["n_done"] == 30 and data["m"].shape == (2, 30) and data["phi"].shape == (2, 30, 4, 4)
    run = json.loads(attrs["run"])
    assert run["n_traj"] == 30
    # provenance: the original command stays, the resume is recorded beside it
    assert run["command"].startswith("phi4si sample-mcmc") and "--resume" not in run["command"]
    (rec,) = run["resumed"]
    assert rec["command"].startswith("phi4si sample-mcmc") and rec["command"].endswith("--resume")
    assert rec["version"] == __version__ and rec["n_done"] == 20 and rec["n_traj"] == 30 and rec["date"]
    _assert_same_data(existing, ensemble, n=20)  # the first 20 are untouched
    fresh = tmp_path / "fresh30.h5"
    assert main(["sample-mcmc", *[a if a != "20" else "30" for a in TINY], "--out", str(fresh)]) == 0
    _assert_same_data(existing, fresh)  # = an uninterrupted run of 30


def test_resume_complete_run_is_a_noop(cli, ensemble, existing):
    rc, _, err = cli("sample-mcmc", *TINY, "--out", existing, "--resume")
    assert rc == 0, err
    _assert_same_data(existing, ensemble)


def test_flush_every_trajectory_gives_same_bits(cli, ensemble, tmp_path):
    p = tmp_path / "flushy.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--flush-seconds", "1e-9", "--out", p)
    assert rc == 0, err
    _assert_same_data(p, ensemble)


def test_hopping_form(cli, tmp_path):
    p = tmp_path / "hop.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--kappa", "0.2", "--l", "0.02", "--out", p)
    assert rc == 0, err
    ds = open_ensemble(p)
    try:
        params = ds.attrs["params"]
    finally:
        ds.close()
    assert params == Phi4Params.from_hopping((4, 4), 0.2, 0.02).to_dict()
    assert params["m2"] == pytest.approx(0.8) and params["lam"] == pytest.approx(0.5)


def test_rewards_recorded(cli, tmp_path):
    p = tmp_path / "hk.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--h", "0.3", "--k", "-0.5", "--out", p)
    assert rc == 0, err
    rc, out, err = cli("analyze", p, "--json")
    assert rc == 0, err
    res = _strict_json(out)
    assert res["params"]["h"] == 0.3 and res["params"]["k"] == -0.5
    assert res["m"]["value"] > 0  # the field h > 0 magnetises the lattice


def test_every_zero_stores_no_configurations(cli, tmp_path):
    p = tmp_path / "noconf.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--every", "0", "--out", p)
    assert rc == 0, err
    data, attrs = _read(p)
    assert data["phi"].shape == (2, 0, 4, 4) and data["cfg"].shape == (0,)
    assert data["m"].shape == (2, 20) and attrs["n_done"] == 20
    ds = open_ensemble(p)
    assert ds.sizes["cfg"] == 0 and ds.sizes["traj"] == 20
    ds.close()
    rc, out, err = cli("analyze", p, "--json")
    assert rc == 0, err
    assert _strict_json(out)["n_traj"] == 20
    rc, out, err = cli("plot", p, "--out", tmp_path / "plots")
    assert rc == 0, err
    assert {Path(x).name for x in out.split()} == {"hist_m.png", "history.png"}


def test_every_thins(cli, tmp_path):
    p = tmp_path / "thin.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--every", "3", "--out", p)
    assert rc == 0, err
    data, _ = _read(p)
    assert list(data["cfg"]) == list(range(0, 20, 3)) and data["phi"].shape == (2, 7, 4, 4)


def test_dtype_float32(cli, ensemble, tmp_path):
    p = tmp_path / "f32.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--dtype", "float32", "--out", p)
    assert rc == 0, err
    with h5py.File(p, "r") as f, h5py.File(ensemble, "r") as g:
        assert f["phi"].dtype == np.float32 and g["phi"].dtype == np.float64
        assert f["state/phi"].dtype == np.float64  # the resume state keeps full precision
        assert np.array_equal(f["phi"][...], g["phi"][...].astype(np.float32))  # same chain, rounded
    ds = open_ensemble(p)
    assert ds["phi"].dtype == np.float32
    ds.close()


SAMPLER_RUNS = [
    ("hmc-omelyan", ["--sampler", "hmc", "--integrator", "omelyan"]),
    ("fahmc", ["--sampler", "fahmc", "--mass", "1.5"]),
    ("mala", ["--sampler", "mala"]),
    ("langevin", ["--sampler", "langevin", "--m2", "1", "--lam", "0.5", "--eps", "0.02"]),
]


@pytest.mark.parametrize("args", [r[1] for r in SAMPLER_RUNS], ids=[r[0] for r in SAMPLER_RUNS])
def test_each_sampler(cli, tmp_path, args):
    p = tmp_path / "s.h5"
    rc, _, err = cli("sample-mcmc", *TINY, *args, "--out", p)
    assert rc == 0, err
    data, attrs = _read(p)
    sampler = json.loads(attrs["sampler"])
    assert sampler["sampler"] == args[1]
    assert sampler["exact"] is (args[1] != "langevin")
    assert np.isfinite(data["m"]).all()
    rc, out, err = cli("analyze", p, "--json")
    assert rc == 0, err
    _strict_json(out)


def test_langevin_divergence_is_not_silent(cli, tmp_path):
    p = tmp_path / "lg.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--sampler", "langevin", "--eps", "0.5", "--out", p)
    if rc == 0:
        data, _ = _read(p)
        assert np.isfinite(data["m"]).all() and np.isfinite(data["phi"]).all()
    else:
        assert rc == 1 and "Traceback" not in err and "--eps" in err, err


def test_divergence_message_is_accurate(cli, tmp_path):
    """The divergence error says what to do, and what it says about --resume is true."""
    p = tmp_path / "lg.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--sampler", "langevin", "--eps", "1", "--out", p)
    assert rc == 1 and "diverged" in err, err
    _no_traceback(err)
    assert "cannot be continued with --resume" in err and "new run" in err and "smaller --eps" in err, err
    assert "--n-steps" in err and "--overwrite" in err, err
    for eps in ("0.05", "1"):        # as it says: the saved state is non-finite, so no resume continues it
        before = p.read_bytes()
        rc, _, err2 = cli("sample-mcmc", *TINY, "--sampler", "langevin", "--eps", eps, "--out", p, "--resume")
        assert rc == 1 and "resume state /state/phi contain NaN or inf" in err2, err2
        _no_traceback(err2)
        assert p.read_bytes() == before


@pytest.mark.parametrize("cmd", [["analyze", "FILE"], ["sample-mcmc", "--help"]], ids=["analyze", "help"])
def test_output_into_a_closed_pipe(ensemble, cmd):
    """``phi4si analyze FILE | head -1``: when the reader goes away, stop quietly (status 141 = 128 +
    SIGPIPE, as a shell reports for a Unix filter), without a traceback."""
    cmd = [str(ensemble) if c == "FILE" else c for c in cmd]
    r, w = os.pipe()
    os.close(r)  # the reader is gone before phi4si writes its first byte
    try:
        p = subprocess.run([sys.executable, "-m", "phi4si", *cmd], stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=120, cwd=ROOT)
    finally:
        os.close(w)
    # (argparse's --help ignores write errors itself and exits 0)
    assert p.returncode == (0 if "--help" in cmd else 141), (p.returncode, p.stderr)
    assert p.stderr == "", p.stderr


class _ClosedPipe(io.TextIOBase):
    def writable(self):
        return True

    def write(self, s):
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_in_process(ensemble, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(["analyze", str(ensemble), "--json"]) == 141
    err = capsys.readouterr().err
    assert err == "", err


@pytest.mark.parametrize("shape", [("6",), ("3", "3", "3")], ids=["1d", "3d"])
def test_other_dimensions(cli, tmp_path, shape):
    p = tmp_path / "d.h5"
    rc, _, err = cli("sample-mcmc", *TINY, "--shape", *shape, "--out", p)
    assert rc == 0, err
    data, _ = _read(p)
    assert data["phi"].shape == (2, 20) + tuple(int(s) for s in shape)
    rc, out, err = cli("analyze", p, "--json")
    assert rc == 0, err
    assert _strict_json(out)["params"]["shape"] == [int(s) for s in shape]
    rc, out, err = cli("plot", p, "--out", tmp_path / "plots")
    assert rc == 0, err
    assert {Path(x).name for x in out.split()} == set(PNGS)


def test_demo_bad_n_traj(cli, tmp_path):
    rc, _, err = cli("demo", "--n-traj", "0", "--out", tmp_path / "demo")
    assert rc == 2 and "--n-traj" in err
    assert not (tmp_path / "demo").exists()


def test_version_and_usage(cli):
    rc, out, _ = cli("--version")
    assert rc == 0 and out.strip() == f"phi4si {__version__}"
    rc, _, err = cli()
    assert rc == 2 and "usage:" in err
    rc, _, err = cli("frobnicate")
    assert rc == 2 and "invalid choice" in err
    rc, out, _ = cli("sample-mcmc", "--help")
    assert rc == 0
    for flag in VALUE_FLAGS:
        assert flag in out


def test_python_m_exit_status():
    """The real process: exit status 1 and a one-line message for bad physics, 0 for --version."""
    r = subprocess.run([sys.executable, "-m", "phi4si", "sample-mcmc", "--lam", "-1", "--out", "never.h5"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines() == [
        "phi4si sample-mcmc: error: lam must be >= 0 (the action is unbounded below otherwise); got lam=-1.0"]
    assert not (ROOT / "never.h5").exists()
    r = subprocess.run([sys.executable, "-m", "phi4si", "--version"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == f"phi4si {__version__}"


def test_citation_version_matches_package():
    text = (ROOT / "CITATION.cff").read_text()
    m = re.search(r"^version:\s*\"?([^\s\"]+)\"?\s*$", text, re.M)
    assert m and m.group(1) == __version__


def test_ci_installs_and_tests_as_readme_says():
    """README.md starts with the two commands a new user runs; .ci/run must run the second one."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```[a-z]*\n(.*?)```", readme, re.S)
    assert block, "README.md has no code block"
    lines = [ln.strip() for ln in block.group(1).strip().splitlines()]
    assert len(lines) == 2 and lines[0].endswith("phi4si demo"), lines
    install, test = (s.strip() for s in lines[1].split("&&"))
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert install in ci and test in ci, (install, test)
    assert readme.index("```") < readme.index("\n## ")  # the commands come first
