"""The package's shape, checked: no import cycle, no module importing another's private helper,
modules and function bodies of a readable size (or a written reason beside them).

Every import statement counts, including those inside functions (phi4si imports torch and the
heavier modules lazily, inside functions, so a cycle through a function-level import is as real a
tangle as one at module level).

A module may exceed MAX_MODULE_LINES, or a function body MAX_BODY_LINES, only with a comment
``# layout: <reason>`` in the module's first lines or just above the ``def``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "phi4si"
MAX_MODULE_LINES = 500
MAX_BODY_LINES = 100


def _modules() -> dict[str, Path]:
    mods = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = list(f.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


MODULES = _modules()


def _resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(mod: str) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import of phi4si modules in ``mod``."""
    f = MODULES[mod]
    is_pkg = f.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(f.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "phi4si"]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(mod, is_pkg, node)
            if target.split(".")[0] != "phi4si":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub, None, node.lineno) if sub in MODULES else (target, a.name, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    g = {m: set() for m in MODULES}
    for m in MODULES:
        for target, _, _ in _imports(m):
            while target not in MODULES and "." in target:
                target = target.rsplit(".", 1)[0]
            # importing a.b.c runs a/__init__ and a/b/__init__ too, but those edges are the
            # package's business; the module itself is what this module depends on
            if target in MODULES and target != m:
                g[m].add(target)
    return g


def _is_ancestor(pkg: str, mod: str) -> bool:
    return mod.startswith(pkg + ".")


def test_no_import_cycle():
    g = _graph()
    # a package's __init__ re-exporting its own submodules is not a cycle of concepts: leave the
    # edges from a package to its own submodules out (the submodules never need their parent)
    g = {m: {t for t in ts if not _is_ancestor(m, t)} for m, ts in g.items()}
    seen, stack, cycles = {}, [], []

    def visit(m):
        seen[m] = 1
        stack.append(m)
        for t in sorted(g[m]):
            if seen.get(t) == 1:
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in seen:
                visit(t)
        stack.pop()
        seen[m] = 2

    for m in sorted(g):
        if m not in seen:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_import_across_modules():
    bad = []
    for m in MODULES:
        for target, name, line in _imports(m):
            if name is not None and name.startswith("_") and not name.startswith("__") and target != m:
                bad.append(f"{MODULES[m].relative_to(PKG.parent)}:{line}: from {target} import {name}")
    assert not bad, "private helpers imported from other modules:\n" + "\n".join(bad)


def _reason_near(lines: list[str], lineno: int) -> bool:
    """A ``# layout:`` comment on one of the 3 lines above ``lineno`` (1-based) or on it."""
    return any("# layout:" in lines[i] for i in range(max(0, lineno - 4), lineno))


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_module_and_function_sizes(mod):
    f = MODULES[mod]
    text = f.read_text()
    lines = text.split("\n")
    problems = []
    if len(lines) > MAX_MODULE_LINES and not any("# layout:" in ln for ln in lines[:60]):
        problems.append(f"{len(lines)} lines (> {MAX_MODULE_LINES}) with no '# layout:' reason near the top")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                    and isinstance(body[0].value.value, str)) and len(body) > 1:
                body = body[1:]                  # the docstring is documentation, not body
            n = body[-1].end_lineno - body[0].lineno + 1
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            if n > MAX_BODY_LINES and not _reason_near(lines, first):
                problems.append(f"{node.name} (line {node.lineno}): body of {n} lines (> {MAX_BODY_LINES})")
    assert not problems, f"{f.relative_to(PKG.parent)}: " + "; ".join(problems)


def test_every_error_lives_in_errors():
    """One hierarchy in one module: no other module defines an Exception subclass."""
    bad = []
    for m, f in MODULES.items():
        if m == "phi4si.errors":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ClassDef):
                names = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if any(n.endswith("Error") or n.endswith("Exception") for n in names):
                    bad.append(f"{f.relative_to(PKG.parent)}:{node.lineno}: class {node.name}")
    assert not bad, "exceptions defined outside phi4si/errors.py:\n" + "\n".join(bad)


def test_errors_derive_from_phi4si_error():
    import inspect

    from phi4si import errors

    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, BaseException)]
    assert len(classes) >= 9
    assert all(issubclass(c, errors.Phi4siError) for c in classes)


# The folders in the order the README's architecture section lists them: a module may import only
# modules of its own folder or of folders before it (the top-level package re-exports, lazily, from all).
LAYERS = ["phi4si._version", "phi4si.errors", "phi4si.io", "phi4si.resources", "phi4si.progress", "phi4si.interrupts", "phi4si.seeds",
          "phi4si.lattice", "phi4si.store",
          "phi4si.mcmc", "phi4si.analysis", "phi4si.interpolant", "phi4si.nn", "phi4si.model", "phi4si.tasks",
          "phi4si.demo", "phi4si.cli"]


def _layer(mod: str) -> int:
    for i, name in enumerate(LAYERS):
        if mod == name or mod.startswith(name + "."):
            return i
    return len(LAYERS)      # phi4si itself, phi4si.__main__


def test_layers_import_only_earlier_layers():
    bad = [f"{m} -> {t}" for m, ts in _graph().items() for t in ts
           if _layer(m) < len(LAYERS) and _layer(t) > _layer(m)]
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)
