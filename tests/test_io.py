"""The output rules of phi4si.io: prepare_output's refusals (and their error types), atomic_write's
all-or-nothing writes (also when interrupted), write_json, check_resume's message, utc_now and the exact
round trip of a numpy PCG64 generator's state through JSON."""

from __future__ import annotations

import datetime
import json
import os

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from phi4si.errors import OutputExistsError, ParameterError, Phi4siError, ResumeError
from phi4si.io import (REPLACE_HINT, RESUME_HINT, atomic_write, check_resume, prepare_output, rng_from_json,
                       rng_to_json, same_file, temporary_name, utc_now, write_json)


def _listing(d):
    return sorted(p.name for p in d.iterdir())


# ------------------------------------------------------------------------------------------------ prepare_output
def test_prepare_output_accepts_a_new_file(tmp_path):
    out = prepare_output(str(tmp_path / "new.h5"))
    assert out == tmp_path / "new.h5" and isinstance(out, os.PathLike)
    assert _listing(tmp_path) == []                     # checks only, creates nothing


def test_prepare_output_existing_file(tmp_path):
    out = tmp_path / "old.h5"
    out.write_bytes(b"old")
    with pytest.raises(OutputExistsError, match=f"{out} exists; {REPLACE_HINT}$") as e:
        prepare_output(out)
    assert isinstance(e.value, FileExistsError) and isinstance(e.value, Phi4siError)
    with pytest.raises(OutputExistsError, match=f"exists; {RESUME_HINT}$"):
        prepare_output(out, resumable=True)
    with pytest.raises(OutputExistsError, match="exists; use another name$"):
        prepare_output(out, hint="use another name", resumable=True)
    assert prepare_output(out, overwrite=True) == out
    assert prepare_output(out, resume=True) == out
    assert out.read_bytes() == b"old"                   # never touched


@pytest.mark.parametrize("exists", [False, True])
def test_prepare_output_resume_and_overwrite_exclude_each_other(tmp_path, exists):
    out = tmp_path / "f.h5"
    if exists:
        out.write_bytes(b"x")
    with pytest.raises(ParameterError, match="--resume and --overwrite exclude each other"):
        prepare_output(out, overwrite=True, resume=True)


def test_prepare_output_resume_of_a_missing_file(tmp_path):
    with pytest.raises(ResumeError, match=f"cannot resume: {tmp_path / 'none.h5'} does not exist"):
        prepare_output(tmp_path / "none.h5", resume=True)
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("flags", [{}, {"overwrite": True}, {"resume": True}])
def test_prepare_output_refuses_a_directory(tmp_path, flags):
    d = tmp_path / "dir.h5"
    d.mkdir()
    with pytest.raises(ParameterError, match=f"model {d} is a directory"):
        prepare_output(d, what="model", **flags)
    assert d.is_dir() and _listing(d) == []


@pytest.mark.parametrize("flags", [{}, {"overwrite": True}, {"resume": True}])
def test_prepare_output_refuses_a_missing_folder(tmp_path, flags):
    with pytest.raises(ParameterError, match=f"output directory {tmp_path / 'nope'} does not exist"):
        prepare_output(tmp_path / "nope" / "f.h5", **flags)
    assert not (tmp_path / "nope").exists()


def test_prepare_output_refuses_a_file_as_folder(tmp_path):
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ParameterError, match="output location .*plain is not a directory"):
        prepare_output(tmp_path / "plain" / "f.h5")


# ------------------------------------------------------------------------------------------------ atomic_write
def test_atomic_write_replaces_the_file(tmp_path):
    out = tmp_path / "f.txt"
    out.write_text("old")
    seen = []

    def write(tmp):
        seen.append(tmp)
        assert out.read_text() == "old"            # the target is untouched while writing
        tmp.write_text("new")

    assert atomic_write(out, write) == out
    assert out.read_text() == "new"
    assert seen == [temporary_name(out)] and seen[0].parent == tmp_path and seen[0].name.startswith(".")
    assert str(os.getpid()) in seen[0].name
    assert _listing(tmp_path) == ["f.txt"]


@pytest.mark.parametrize("exc", [ValueError("disk full"), OSError("io"), KeyboardInterrupt()])
@pytest.mark.parametrize("old", [True, False])
def test_atomic_write_failure_leaves_the_old_file_and_no_temporary(tmp_path, exc, old):
    out = tmp_path / "f.bin"
    if old:
        out.write_bytes(b"old content")

    def write(tmp):
        tmp.write_bytes(b"half of the new")
        raise exc

    with pytest.raises(type(exc)):
        atomic_write(out, write)
    assert _listing(tmp_path) == (["f.bin"] if old else [])
    if old:
        assert out.read_bytes() == b"old content"


def test_atomic_write_writer_that_writes_nothing(tmp_path):
    out = tmp_path / "f.bin"
    out.write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        atomic_write(out, lambda tmp: None)             # nothing to rename: the old file stays
    assert out.read_bytes() == b"old" and _listing(tmp_path) == ["f.bin"]


# ------------------------------------------------------------------------------------------------ write_json
def test_write_json_round_trip(tmp_path):
    obj = {"a": 1, "b": [1.5, -2e-300, None, True], "nested": {"phi": "\u03c6", "k": []}, "x": 0.1 + 0.2}
    out = write_json(tmp_path / "r.json", obj)
    assert out == tmp_path / "r.json"
    text = out.read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == obj
    assert _listing(tmp_path) == ["r.json"]
    write_json(out, [1, 2])                              # replaces
    assert json.loads(out.read_text()) == [1, 2]


def test_write_json_refuses_what_json_cannot_hold_and_keeps_the_old_file(tmp_path):
    out = write_json(tmp_path / "r.json", {"a": 1})
    with pytest.raises(TypeError):
        write_json(out, {"a": object()})
    assert json.loads(out.read_text()) == {"a": 1} and _listing(tmp_path) == ["r.json"]


# ------------------------------------------------------------------------------------------------ check_resume
def test_check_resume():
    check_resume("f.h5", {"seed": 1, "n": 2}, {"seed": 1, "n": 2})
    check_resume("f.h5", {"seed": 1, "n": 2}, {"seed": 1, "n": 3}, keys=["seed"])
    with pytest.raises(ResumeError) as e:
        check_resume("f.h5", {"seed": 1, "n": 2}, {"seed": 2, "n": 3}, label="setting ")
    assert str(e.value) == "cannot resume f.h5: setting seed was 1, now 2"       # the first that differs
    with pytest.raises(ResumeError, match=r"^cannot resume out\.pt: mode was None, now 'fast'$"):
        check_resume("out.pt", {}, {"mode": "fast"})
    with pytest.raises(ResumeError, match=r"^cannot resume f: n was 2, now None$"):
        check_resume("f", {"n": 2}, {}, keys=["n"])


# ------------------------------------------------------------------------------------------------ utc_now
def test_utc_now_is_utc_iso_8601_to_the_second():
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    s = utc_now()
    after = datetime.datetime.now(datetime.timezone.utc)
    assert s.endswith("+00:00") and "." not in s and "T" in s
    t = datetime.datetime.fromisoformat(s)
    assert t.utcoffset() == datetime.timedelta(0) and t.microsecond == 0
    assert before <= t <= after
    assert len(s) == len("2024-01-02T03:04:05+00:00")


# ------------------------------------------------------------------------------------------------ rng state
def _draws(rng):
    """A mix of draws that exercises 64-bit outputs and the buffered 32-bit half (has_uint32)."""
    return (rng.random(3).tolist(), rng.integers(0, 2**32, 3, dtype=np.uint32).tolist(),
            rng.standard_normal(2).tolist(), float(rng.random(dtype=np.float32)), rng.integers(0, 10**18, 2).tolist())


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**128 - 1), n64=st.integers(0, 300), n32=st.integers(0, 7))
def test_rng_json_round_trip_continues_the_stream(seed, n64, n32):
    rng = np.random.default_rng(seed)
    rng.random(n64)
    rng.integers(0, 2**32, n32, dtype=np.uint32)        # odd counts leave a buffered 32-bit half
    js = rng_to_json(rng)
    text = json.dumps(js)                               # through a file: plain JSON
    assert json.loads(text) == js
    back = rng_from_json(json.loads(text))
    assert back.bit_generator.state == rng.bit_generator.state
    assert _draws(back) == _draws(rng)


def test_rng_json_records_the_buffered_half():
    rng = np.random.default_rng(1)
    rng.integers(0, 2**32, 1, dtype=np.uint32)
    js = rng_to_json(rng)
    assert js["bit_generator"] == "PCG64" and js["has_uint32"] == 1
    assert all(isinstance(v, str) for v in js["state"].values())         # 128-bit integers as strings
    assert rng_from_json(js).integers(0, 2**32, dtype=np.uint32) == rng.integers(0, 2**32, dtype=np.uint32)


def test_same_file(tmp_path):
    a = tmp_path / "a.h5"
    a.write_text("x")
    assert same_file(a, tmp_path / "." / "a.h5")
    assert not same_file(a, tmp_path / "b.h5")
