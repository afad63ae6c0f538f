"""The fault table of issue 19, from the suite: runs every fault test (slow ones included) and counts,
per category, the cases tried, held (passed) and broke (failed or errored).

    python tests/fault_table.py [--fast] [--workers N] [--out benchmarks/results/fault_table.md]

``--fast`` leaves out the ``slow`` cases (the default suite's share).  The table is printed and
written with the command, the commit, the date and the machine's load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ["tests/test_faults.py", "tests/test_bad_files.py", "tests/test_writers.py", "tests/test_interrupts.py",
         "tests/mcmc/test_guards.py", "tests/model/test_train_guards.py"]

# (file, test-name prefix, id fragment or "") -> category; the first match wins
CATEGORIES = [
    ("test_faults", "test_fault_at_a_random_point", "kill-9", "kill -9 at a random point, then --resume"),
    ("test_faults", "test_killed_overwrite", "", "kill -9 at a random point, then --resume"),
    ("test_writers", "test_a_killed_overwrite", "", "kill -9 at a random point, then --resume"),
    ("test_faults", "test_fault_at_a_random_point", "sigint", "Ctrl-C (SIGINT) at a random point, then --resume"),
    ("test_faults", "test_ctrl_c_during_start_up", "", "Ctrl-C (SIGINT) during the start-up"),
    ("test_interrupts", "", "", "Ctrl-C (SIGINT) at a random point, then --resume"),
    ("test_faults", "test_write_error", "", "write errors (size limit / full disk, --overwrite)"),
    ("test_faults", "test_read_only", "", "write errors (read-only destination)"),
    ("test_writers", "test_a_full_disk", "", "write errors (size limit / full disk, --overwrite)"),
    ("test_writers", "test_a_failed_write", "", "write errors (size limit / full disk, --overwrite)"),
    ("test_faults", "test_a_live_task", "", "concurrency"),
    ("test_writers", "", "", "concurrency"),
    ("test_bad_files", "", "", "bad files (truncated, foreign, NaN, bad checkpoints)"),
    ("test_faults", "test_bad_parameters", "", "bad parameters"),
    ("test_train_guards", "", "", "bad parameters"),
    ("test_guards", "test_refused", "", "bad parameters"),
    ("test_guards", "", "", "numerical faults (diverging, stuck, frozen samplers)"),
]


def category(classname: str, name: str) -> str:
    for file, prefix, frag, cat in CATEGORIES:
        if classname.endswith(file) and name.startswith(prefix) and frag in name:
            return cat
    return "other"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="leave out the slow cases")
    ap.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (0: none; default 2)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fault_table.md"))
    args = ap.parse_args(argv)
    xml = Path(tempfile.mkdtemp()) / "faults.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow" if args.fast else "",
           f"--junitxml={xml}", *FILES]
    cmd += ["-n", str(args.workers)]          # (pyproject's addopts say -n 2; 0 runs in one process)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = datetime.now(timezone.utc)
    subprocess.run(cmd, cwd=ROOT)
    minutes = (datetime.now(timezone.utc) - t0).total_seconds() / 60
    counts = defaultdict(lambda: [0, 0, 0, 0])      # tried, held, broke, skipped
    broke = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        cat = category(case.get("classname", ""), case.get("name", ""))
        c = counts[cat]
        if case.find("skipped") is not None:
            c[3] += 1
            continue
        c[0] += 1
        if case.find("failure") is not None or case.find("error") is not None:
            c[2] += 1
            broke.append(f"{case.get('classname')}::{case.get('name')}")
        else:
            c[1] += 1
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lines = ["| category | tried | held | broke | skipped |", "| --- | --- | --- | --- | --- |"]
    order = [c for *_, c in CATEGORIES]
    for cat in sorted(counts, key=lambda c: order.index(c) if c in order else len(order)):
        t, h, b, s = counts[cat]
        lines.append(f"| {cat} | {t} | {h} | {b} | {s} |")
    tot = [sum(v[i] for v in counts.values()) for i in range(4)]
    lines.append(f"| **all** | {tot[0]} | {tot[1]} | {tot[2]} | {tot[3]} |")
    text = "\n".join([
        "# Fault-injection table (issue 19), from the suite",
        "",
        f"`python tests/fault_table.py{' --fast' if args.fast else ''}` at {rev}, {t0:%Y-%m-%d %H:%M} UTC, "
        f"{minutes:.1f} min, load average {load:.2f} at the start, {'default' if args.fast else 'all'} cases "
        f"({'not slow' if args.fast else 'slow included'}); files: {', '.join(FILES)}.",
        "",
        *lines,
        "",
        ("Broke:\n\n" + "\n".join(f"- {b}" for b in broke)) if broke else "Nothing broke.",
        "",
        "Skipped cases are Ctrl-C tests whose run ended before the signal arrived (the machine was faster than "
        "the delay).",
        "",
    ])
    print(text)
    Path(args.out).write_text(text)
    return 1 if broke else 0


if __name__ == "__main__":
    sys.exit(main())
