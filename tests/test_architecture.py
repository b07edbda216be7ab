"""The layout's rules, read from the source: dependencies run cli -> {training, farm} -> inference.

Imports are collected with ``ast`` from every module of every part (module level and inside
functions alike), so a lazy import inside ``run()`` counts the same as one at the top.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = {"inference": "facegraft.inference", "training": "facegraft.training",
         "farm": "facegraft.farm", "cli": "facegraft.cli"}
# What each part may import from the others (besides itself).
ALLOWED = {
    "facegraft.inference": set(),
    "facegraft.training": {"facegraft.inference"},
    "facegraft.farm": {"facegraft.inference"},
    "facegraft.cli": {"facegraft.inference", "facegraft.training", "facegraft.farm"},
}
# Third-party packages a render node must never load.
RUNTIME_FORBIDDEN = {"torch", "torchvision", "tensorboard"}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    package = PARTS[parts[0]]
    rest = parts[1:]
    if rest and rest[-1] == "__init__":
        rest = rest[:-1]
    return ".".join([package, *rest])


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports (relative imports resolved)."""
    return imports_in(path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py")


def imports_in(source: str, name: str, is_package: bool) -> set[str]:
    tree = ast.parse(source)
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # `from facegraft.inference import align` imports the submodule too
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def part_modules() -> dict[str, list[Path]]:
    return {package: sorted((ROOT / folder).rglob("*.py")) for folder, package in PARTS.items()}


def part_of(module: str) -> str | None:
    for package in PARTS.values():
        if module == package or module.startswith(package + "."):
            return package
    return None


def test_every_part_is_found() -> None:
    modules = part_modules()
    assert all(len(paths) > 3 for paths in modules.values()), {k: len(v) for k, v in modules.items()}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_dependencies_run_one_way(package: str) -> None:
    wrong = []
    for path in part_modules()[package]:
        for imported in imports_of(path):
            other = part_of(imported)
            if other and other != package and other not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package]) or 'itself'}:\n" + "\n".join(wrong)


def test_the_runtime_never_imports_torch() -> None:
    wrong = [f"{path.relative_to(ROOT)} imports {imported}"
             for path in part_modules()["facegraft.inference"]
             for imported in imports_of(path) if imported.split(".")[0] in RUNTIME_FORBIDDEN]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    known = {module_name(p) for paths in part_modules().values() for p in paths}
    for paths in part_modules().values():
        for path in paths:
            name = module_name(path)
            graph[name] = {m for m in imports_of(path) if m in known and m != name and not name.startswith(m + ".")}
    cycles = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [node, nxt]) if nxt in stack
                              else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    # A package importing its own submodules (``from . import x`` in __init__) is not a cycle.
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_nuke_plugin_uses_only_the_standard_library_and_nuke() -> None:
    stdlib = set(sys.stdlib_module_names)
    own = {"facegraft_nuke"}
    wrong = []
    for path in sorted((ROOT / "nuke_plugin").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top not in stdlib and top not in own and top not in {"nuke", "nukescripts"}:
                    wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_the_reader_sees_lazy_and_relative_imports() -> None:
    """The rules above are only as good as the import reader."""
    found = imports_in("def f():\n    from ..track import align\n    import torch\n",
                       "facegraft.inference.render.probe", is_package=False)
    assert {"facegraft.inference.track", "facegraft.inference.track.align", "torch"} <= found
    assert part_of("facegraft.cli.main") == "facegraft.cli" and part_of("facegraft.clip") is None
