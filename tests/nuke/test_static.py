"""nuke_plugin/ runs inside Nuke's Python: 3.7 grammar, stdlib and nuke only, and mypy-clean against types-nuke."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from nuke_support import HERE, PLUGIN, REPO

SOURCES = sorted(PLUGIN.rglob("*.py"))
STDLIB = set(sys.stdlib_module_names)
# Newer than Python 3.7: names the code must not use.
TOO_NEW = {"removeprefix", "removesuffix", "cached_property", "Literal", "Protocol", "TypedDict", "is_relative_to",
           "shlex.join", "math.prod", "zoneinfo", "graphlib", "tomllib"}


def test_there_is_plugin_code() -> None:
    names = {p.relative_to(PLUGIN).as_posix() for p in SOURCES}
    assert {"init.py", "menu.py", "facegraft_nuke/bridge.py", "facegraft_nuke/config.py"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PLUGIN).as_posix())
def test_parses_as_python_37(path: Path) -> None:
    ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 7))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PLUGIN).as_posix())
def test_imports_only_stdlib_and_nuke(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = {"facegraft_nuke"}
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            roots = [] if node.level else [(node.module or "").split(".")[0]]
        else:
            continue
        bad += [r for r in roots if r not in STDLIB and r != "nuke" and r not in own]
    assert not bad, f"{path.name} imports {bad}: Nuke's Python has only the standard library and nuke"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(PLUGIN).as_posix())
def test_uses_nothing_newer_than_python_37(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    used |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    used |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    assert not (used & TOO_NEW), f"{path.name} uses {used & TOO_NEW} (not in Nuke 13's Python 3.7)"
    assert "from __future__ import annotations" not in source


def test_mypy_against_types_nuke() -> None:
    """The plugin type-checks against the types-nuke stubs (command for the Makefile: see tests/nuke/mypy.ini)."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(HERE / "mypy.ini"), str(PLUGIN)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
