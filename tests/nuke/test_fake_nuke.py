"""The fake ``nuke`` agrees with the types-nuke stubs for everything it implements, and type-checks."""
from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from pathlib import Path

import nuke as fake
import pytest
from nuke_support import HERE, REPO

STUBS = Path(next(p for p in map(Path, sys.path) if (p / "nuke-stubs").is_dir()) / "nuke-stubs")
# Test helpers the real module does not have.
HELPERS = {"record", "reset", "recorded", "run_main_queue", "register_node_class", "set_this", "set_frame_range",
           "add_node", "calls", "main_queue", "queue_main_thread", "execute_hook", "instances", "next_cancel_when",
           "run_callbacks", "add_layer", "layer_channels"}


def _params(args: ast.arguments) -> list[tuple[str, str, bool]]:
    """(name, kind, has_default) per parameter, without self/cls."""
    out = []
    positional = args.posonlyargs + args.args
    defaults = [False] * (len(positional) - len(args.defaults)) + [True] * len(args.defaults)
    for arg, has_default in zip(positional, defaults):
        out.append((arg.arg, "positional", has_default))
    if args.vararg:
        out.append((args.vararg.arg, "*", False))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        out.append((arg.arg, "keyword", default is not None))
    if args.kwarg:
        out.append((args.kwarg.arg, "**", False))
    return [p for p in out if p[0] not in ("self", "cls")]


def _stub_index() -> tuple[dict[str, list], dict[str, tuple[list[str], dict[str, list]]]]:
    functions: dict[str, list] = {}
    classes: dict[str, tuple[list[str], dict[str, list]]] = {}
    for path in STUBS.glob("*.pyi"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef):
                functions.setdefault(node.name, []).append(_params(node.args))
            elif isinstance(node, ast.ClassDef):
                bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                methods: dict[str, list] = {}
                for item in node.body:
                    if isinstance(item, ast.FunctionDef):
                        methods.setdefault(item.name, []).append(_params(item.args))
                classes.setdefault(node.name, (bases, methods))
    return functions, classes


FUNCTIONS, CLASSES = _stub_index()


def _runtime(obj: object) -> list[tuple[str, str, bool]]:
    kinds = {inspect.Parameter.POSITIONAL_OR_KEYWORD: "positional", inspect.Parameter.POSITIONAL_ONLY: "positional",
             inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.KEYWORD_ONLY: "keyword",
             inspect.Parameter.VAR_KEYWORD: "**"}
    params = inspect.signature(obj).parameters.values()  # type: ignore[arg-type]
    return [(p.name, kinds[p.kind], p.default is not inspect.Parameter.empty) for p in params
            if p.name not in ("self", "cls")]


def _stub_method(cls: str, name: str) -> list | None:
    todo = [cls]
    while todo:
        bases, methods = CLASSES.get(todo.pop(0), ([], {}))
        if name in methods:
            return methods[name]
        todo.extend(bases)
    return None


def _public_functions() -> list[str]:
    return sorted(n for n, v in vars(fake).items() if inspect.isfunction(v) and not n.startswith("_")
                  and v.__module__ == fake.__name__ and n not in HELPERS)


def _public_methods() -> list[tuple[str, str]]:
    found = []
    for cls_name, cls in vars(fake).items():
        if not inspect.isclass(cls) or cls.__module__ != fake.__name__ or cls_name.startswith("_"):
            continue
        for name, member in vars(cls).items():
            if inspect.isfunction(member) and (not name.startswith("_") or name in ("__init__", "__getitem__")):
                if name not in HELPERS:
                    found.append((cls_name, name))
    return sorted(found)


@pytest.mark.parametrize("name", _public_functions())
def test_function_matches_stub(name: str) -> None:
    assert name in FUNCTIONS, f"nuke.{name} is not in the types-nuke stubs"
    assert _runtime(getattr(fake, name)) in FUNCTIONS[name], f"nuke.{name}: fake {_runtime(getattr(fake, name))} " \
        f"!= stub {FUNCTIONS[name]}"


@pytest.mark.parametrize("cls,name", _public_methods())
def test_method_matches_stub(cls: str, name: str) -> None:
    if cls in ("Menu", "ToolBar") and name == "__init__":
        pytest.skip("the stubs give Menu no constructor; Nuke builds menus itself")
    assert cls in CLASSES, f"nuke.{cls} is not in the stubs"
    stub = _stub_method(cls, name)
    assert stub is not None, f"nuke.{cls}.{name} is not in the stubs"
    runtime = _runtime(getattr(getattr(fake, cls), name))
    assert runtime in stub, f"nuke.{cls}.{name}: fake {runtime} != stub {stub}"


def test_constants_match_stub() -> None:
    text = (STUBS / "_nuke.pyi").read_text(encoding="utf-8")
    for name, kind in (("GUI", bool), ("EXE_PATH", str), ("NUKE_VERSION_MAJOR", int), ("INVISIBLE", int),
                       ("STARTLINE", int)):
        assert f"{name}: {kind.__name__}" in text and isinstance(getattr(fake, name), kind), name


def test_fake_type_checks() -> None:
    env = dict(os.environ, MYPYPATH=str(HERE / "fake_nuke"))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(HERE / "mypy.ini"), str(HERE / "fake_nuke" / "nuke.py")],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
