"""phi4si.tasks.maze as a package: every name other code imports from it, the module layering
(no torch below training, no private imports across modules, no cycles), the docstring examples."""

from __future__ import annotations

import ast
import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import phi4si.tasks.maze as mz

MODULES = ["checks", "kernels", "geometry", "controller", "dataset", "training", "planner", "figures"]  # lowest first
PACKAGE = Path(mz.__file__).parent

# what the CLI, the slow tests and papers/ use as mz.NAME
USED = ["make_dataset", "write_dataset", "read_dataset", "maze_data", "train_maze", "load_maze_model", "model_maze",
        "plan", "evaluate_plans", "write_plans", "plot_plans", "Maze", "MAZE2D_LARGE", "ControllerConfig",
        "simulate", "path_length", "Plans", "TOL", "DATASET_KIND", "MAZE_KIND"]


@pytest.mark.parametrize("name", sorted(set(USED) | set(mz.__all__)))
def test_names_stay_importable(name):
    obj = getattr(mz, name)
    owner = importlib.import_module(f"phi4si.tasks.maze.{mz._EXPORTS[name]}")
    assert obj is getattr(owner, name) and name in dir(mz)
    exec(f"from phi4si.tasks.maze import {name}", {})
    with pytest.raises(AttributeError, match="no attribute"):
        mz.no_such_name  # noqa: B018


@pytest.mark.parametrize("module, banned", [("geometry", ("torch", "matplotlib")),
                                            ("dataset", ("torch", "matplotlib")),
                                            ("figures", ("torch",)), ("", ("torch", "numba", "matplotlib"))])
def test_light_modules_do_not_import_torch(module, banned):
    name = "phi4si.tasks.maze" + (f".{module}" if module else "")
    code = f"import sys, {name}; print([m for m in {banned!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def _relative_imports(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            yield node


@pytest.mark.parametrize("module", MODULES)
def test_layering(module):
    """Each module imports only lower modules of the package (so there is no cycle), and none of
    their private names; figures is the one exception below geometry: Maze.plot imports it when called."""
    rank = MODULES.index(module)
    for node in _relative_imports(module):
        lazy = module == "geometry" and node.module == "figures"
        assert lazy or MODULES.index(node.module) < rank, (module, node.module)
        assert not [a.name for a in node.names if a.name.startswith("_")], (module, node.module)


def test_function_bodies_fit_a_screen():
    for module in MODULES:
        for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text())):
            if isinstance(node, ast.FunctionDef):
                body = node.body[1:] if ast.get_docstring(node) else node.body
                assert body[-1].end_lineno - body[0].lineno + 1 <= 100, (module, node.name)


@pytest.mark.parametrize("module", [""] + MODULES)
def test_every_module_has_docstring_examples(module):
    """Each module documents itself with runnable examples (the default suite runs them, through
    pytest's --doctest-modules; here only their presence is checked)."""
    mod = importlib.import_module("phi4si.tasks.maze" + (f".{module}" if module else ""))
    assert sum(len(t.examples) for t in doctest.DocTestFinder().find(mod)) > 0, mod.__name__
