"""Render results/*.json of evaluate_generation.py as markdown tables into README.md, and the
posterior study's tables (results/posterior_*.md, written by posterior_study.py) into their block.

    python papers/negrel2025/make_tables.py          # print
    python papers/negrel2025/make_tables.py --write  # replace the block between the markers in README.md
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
BEGIN, END = "<!-- BEGIN GENERATED TABLES (make_tables.py) -->", "<!-- END GENERATED TABLES -->"
PBEGIN, PEND = "<!-- BEGIN POSTERIOR TABLES (make_tables.py) -->", "<!-- END POSTERIOR TABLES -->"


def _fmt(e, k):
    if e.get("rel_dev") is None:
        return "n/a"
    return f"{e['gen']:.4g}({1e4 * e['gen_err']:.0f}e-4) {100 * e['rel_dev']:+.1f}% z={e['z']:+.1f}"


def table(path: Path) -> str:
    d = json.loads(path.read_text())
    tc = d.get("train_config") or {}
    ref = d["runs"][0]
    head = (f"**{path.stem}**: model trained on {'x'.join(map(str, d['train_shape']))} "
            f"({tc.get('model')}, param {tc.get('param')}, measure {tc.get('measure')}, {d.get('model_step')} steps, "
            f"{(d.get('train_wall_time') or 0) / 60:.1f} min), evaluated on {'x'.join(map(str, d['shape']))}, "
            f"N = {d['n']} per row. HMC reference: "
            + ", ".join(f"{k} = {ref[k]['ref']:.4g}({1e4 * ref[k]['ref_err']:.0f}e-4)" for k in ("abs_m", "chi", "binder", "xi2")))
    rows = ["| task/solver:steps | cfg/s | <\\|m\\|> | chi | U4 | xi_2 | TV(m) [null] | max z G(t) |",
            "|---|---|---|---|---|---|---|---|"]
    for r in d["runs"]:
        rows.append(f"| {r['setting']} | {r['cfg_per_s']:.0f} | " + " | ".join(_fmt(r[k], k) for k in ("abs_m", "chi", "binder", "xi2"))
                    + f" | {r['hist_m']['tv']:.3f} [{r['hist_m']['tv_null_mean']:.3f}] | {r['G']['max_z']:.1f} |")
    return head + "\n\n" + "\n".join(rows) + "\n"


def _replace(s, begin, end, text):
    i, j = s.index(begin) + len(begin), s.index(end)
    return s[:i] + "\n" + text + s[j:]


def main():
    files = sorted(f for f in (HERE / "results").glob("*.json") if not f.stem.startswith("posterior_"))
    text = "\n".join(table(f) for f in files)
    post = "\n".join(f.read_text() for f in sorted((HERE / "results").glob("posterior_*.md")))
    if "--write" in sys.argv:
        readme = HERE / "README.md"
        s = _replace(readme.read_text(), BEGIN, END, text)
        if PBEGIN in s:
            s = _replace(s, PBEGIN, PEND, post)
        readme.write_text(s)
        print(f"updated {readme}")
    else:
        print(text + "\n" + post)


if __name__ == "__main__":
    main()
