"""The maths document papers/negrel2025/THEORY.md against the places that cite it.

Docstrings, READMEs and scripts cite the document by section number ("THEORY.md section 5",
"THEORY.md sections 1-2", "THEORY.md 4.3 and 7", "THEORY 4.4"). These tests parse the document's
numbered headings and fail when a citation names a section the document does not have, when the
fixed numbering (sections 1-7, subsections 4.1-4.4) is lost, or when a file points readers at a
copy of the notes outside the repository. Plain text only: no phi4si import, no torch.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "papers" / "negrel2025" / "THEORY.md"

#: Where citations are looked for (globs relative to the repository root).
CITING = ("README.md", "papers/**/*.md", "papers/**/*.py", "papers/**/*.sh", "benchmarks/**/*.md",
          "benchmarks/**/*.py", "benchmarks/**/*.sh", "phi4si/**/*.py", "tests/**/*.py")

#: Section numbers whose topics every existing citation relies on.
FIXED = ("1", "2", "3", "4", "4.1", "4.2", "4.3", "4.4", "5", "6", "7")

# Paths of the notes outside the repository, assembled so that this file does not contain them.
OUTSIDE = ("..".join(("", "/shared")), "/".join(("", "work", "shared")))
#: Roots that must not point at them (README.md as a file, the others recursively).
NO_OUTSIDE = ("README.md", "phi4si", "papers", "benchmarks")
_SKIP_DIRS = {"__pycache__", "out", ".ipynb_checkpoints"}

_NUM = r"\d+(?:\.\d+)?"
_SEP = r"\s*(?:,|-|\u2013|\band\b|\bto\b|&)\s*"
CITATION = re.compile(r"\bTHEORY(?:\.md)?[,:]?\s*\(?\s*(?:(?:sections?|\u00a7)\s*)?"
                      rf"(?P<refs>{_NUM}(?:{_SEP}{_NUM})*)")
HEADING = re.compile(r"^#{1,6}\s+(?P<num>\d+(?:\.\d+)*)\.?\s")


def section_numbers(text: str) -> list[str]:
    """Numbers of the numbered Markdown headings of ``text`` ("## 4. ..." -> "4", "### 4.1 ..." -> "4.1"),
    ignoring fenced code blocks."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            out.append(m.group("num"))
    return out


def _expand(lo: str, hi: str) -> list[str]:
    """The sections of a range "lo-hi": every integer for "1-3", every minor number for "4.1-4.3",
    the two ends otherwise."""
    a, b = lo.split("."), hi.split(".")
    if len(a) == len(b) == 1 and int(a[0]) <= int(b[0]):
        return [str(i) for i in range(int(a[0]), int(b[0]) + 1)]
    if len(a) == len(b) == 2 and a[0] == b[0] and int(a[1]) <= int(b[1]):
        return [f"{a[0]}.{i}" for i in range(int(a[1]), int(b[1]) + 1)]
    return [lo, hi]


def cited_sections(text: str) -> list[tuple[int, str, str]]:
    """Every (line, citation text, section) cited in ``text``: "THEORY.md sections 1-2" gives
    sections 1 and 2, "THEORY 4.4" section 4.4 (more in :func:`test_citation_parser`)."""
    out = []
    for m in CITATION.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        refs = m.group("refs")
        tokens = re.findall(rf"{_NUM}|-|\u2013", refs)
        secs, i = [], 0
        while i < len(tokens):
            if i + 2 < len(tokens) and tokens[i + 1] in ("-", "\u2013"):
                secs += _expand(tokens[i], tokens[i + 2])
                i += 3
            else:
                secs.append(tokens[i])
                i += 1
        out += [(line, m.group(0), s) for s in secs if s not in ("-", "\u2013")]
    return out


def _citing_files() -> list[Path]:
    me = Path(__file__).resolve()
    files = set()
    for pattern in CITING:
        files.update(p for p in ROOT.glob(pattern) if p.is_file() and p.resolve() != me
                     and not _SKIP_DIRS.intersection(p.relative_to(ROOT).parts))
    return sorted(files)


def test_document_exists_with_the_fixed_numbering():
    nums = section_numbers(DOC.read_text(encoding="utf-8"))
    missing = [n for n in FIXED if n not in nums]
    assert not missing, f"{DOC.relative_to(ROOT)} lacks sections {missing} (citations rely on them)"
    assert len(nums) == len(set(nums)), f"duplicate section numbers in {DOC.name}: {nums}"
    top = [int(n) for n in nums if "." not in n]
    assert top == sorted(top), f"top-level sections out of order: {top}"


@pytest.mark.parametrize("text, expected", [
    ("(THEORY.md section 5)", ["5"]),
    ("THEORY.md sections 1-2)", ["1", "2"]),
    ("THEORY.md sections 1, 2 and 6)", ["1", "2", "6"]),
    ("(THEORY.md 4.2) on", ["4.2"]),
    ("(THEORY 4.4: per site", ["4.4"]),
    ("THEORY.md 4.3 and 7): with", ["4.3", "7"]),
    ("THEORY.md section 4.3).", ["4.3"]),
    ("THEORY.md\n    section 6).", ["6"]),
    ("`THEORY.md` of the project's notes", []),
    ("see THEORY.md sections 1-2 and THEORY 4.4", ["1", "2", "4.4"]),
    ("THEORY.md sections 4.1-4.3", ["4.1", "4.2", "4.3"]),
])
def test_citation_parser(text, expected):
    assert [s for _, _, s in cited_sections(text)] == expected


def test_every_cited_section_exists():
    nums = set(section_numbers(DOC.read_text(encoding="utf-8")))
    found, bad = 0, []
    for f in _citing_files():
        for line, cite, sec in cited_sections(f.read_text(encoding="utf-8", errors="replace")):
            found += 1
            if sec not in nums:
                bad.append(f"{f.relative_to(ROOT)}:{line}: {cite!r} cites section {sec}")
    assert found > 20, f"only {found} citations found: is the citation pattern still right?"
    assert not bad, (f"citations of sections that {DOC.relative_to(ROOT)} does not have "
                     f"(it has {sorted(nums)}):\n" + "\n".join(bad))


def _files_under(root: Path):
    if root.is_file():
        yield root
        return
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(ROOT).parts
        if p.is_file() and not _SKIP_DIRS.intersection(rel) and not any(
                part.startswith(".") or part.endswith(".egg-info") for part in rel):
            yield p


def test_no_pointer_to_notes_outside_the_repository():
    bad = []
    for name in NO_OUTSIDE:
        for f in _files_under(ROOT / name):
            data = f.read_bytes()
            for pattern in OUTSIDE:
                if pattern.encode() in data:
                    text = data.decode("utf-8", errors="replace")
                    lines = [i + 1 for i, ln in enumerate(text.splitlines()) if pattern in ln]
                    bad.append(f"{f.relative_to(ROOT)}:{','.join(map(str, lines))} mentions {pattern!r}")
    assert not bad, ("files that point at notes outside the repository (cite papers/negrel2025/THEORY.md "
                     "instead):\n" + "\n".join(bad))
