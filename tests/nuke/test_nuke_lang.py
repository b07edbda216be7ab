"""The fake's TCL evaluator agrees with a real Tcl interpreter (Python's tkinter.Tcl, the language Nuke
embeds) on the gizmo's own file knob expressions and on every command it implements, and the
plugin's Python computes the same cache paths.

Nuke evaluates a knob's text by substituting each top-level ``[...]`` with the Tcl result of its
inside; the reference here does exactly that with real Tcl, a ``value`` proc answering from the knobs.
"""
from __future__ import annotations

import re

import nuke_lang
import pytest
from facegraft_nuke import paths
from nuke_support import GIZMO, gizmo_tree

tkinter = pytest.importorskip("tkinter")

SCRIPTS = ["/shows/x/sh010_comp_v003.nk", "/shows/x/sh010_comp.v12.nk", "/shows/x/sh010.nk", "/shows/x/sh010_V2.nk",
           "/shows/my show/sh 010_comp_v001.nk", "/a/b/comp_v3", "/a/b/v003.nk", "C:/shows/x/sh010_comp_v1.nk",
           "/shows/x/sh010_v2_comp_v004.nk", "relative/sh010_v001.nk", "sh010.nk"]
CACHES = ["", "/shows/x/cache", "/path with spaces/cache", "relative/cache", "C:/cache", "/cache/"]


class Knobs(nuke_lang.Context):
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.frame = 1001.0
        self.python = None

    def knob_text(self, ref: str) -> str:
        return self.values[ref]

    def knob_number(self, ref: str) -> float:
        return float(self.values[ref])


def real_tcl(text: str, values: dict[str, str]) -> str:
    """``text`` evaluated as Nuke does, with real Tcl: each top-level [...] replaced by its result."""
    interp = tkinter.Tcl()
    interp.eval("set knobs {}")
    for name, value in values.items():
        interp.call("dict", "set", "knobs", name, value)
    interp.eval("proc value {name} {global knobs; return [dict get $knobs $name]}")
    out, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            if depth == 0:
                out.append(text[start:i])
                start = i + 1
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                out.append(interp.eval(text[start:i]))
                start = i + 1
        elif ch == "{" and depth:
            close, nest = i, 0
            while True:  # skip a braced word inside a command (it may hold brackets)
                nest += {"{": 1, "}": -1}.get(text[close], 0)
                if nest == 0:
                    break
                close += 1
            i = close
        i += 1
    out.append(text[start:])
    return "".join(out)


def file_knobs() -> dict[str, str]:
    tree = gizmo_tree(GIZMO)
    found = {child.name: child.value("file") for child in tree.children if child.value("file")}
    assert set(found) == {"PlateWrite", "HoldoutWrite", "RenderRead"}
    return found


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("cache", CACHES)
def test_gizmo_paths_in_real_tcl_the_fake_and_the_python_agree(script: str, cache: str) -> None:
    values = {"parent.cache_folder": cache, "root.name": script, "parent.node_id": "3fa9c01b2e"}
    for name, expression in file_knobs().items():
        real = real_tcl(expression, values)
        assert nuke_lang.substitute(expression, Knobs(values)) == real, (name, expression)
        expected = {"PlateWrite": "incoming/" + paths.PLATE_NAME, "HoldoutWrite": "incoming/" + paths.HOLDOUT_NAME,
                    "RenderRead": paths.RENDER_NAME}[name]
        assert real == paths.node_folder(cache, script, "3fa9c01b2e") + "/" + expected, name


def test_default_cache_is_beside_the_script_and_keyed_by_script_and_node() -> None:
    """The defect this replaces: an empty cache folder gave /FaceGraft1/... (the filesystem root)."""
    values = {"parent.cache_folder": "", "root.name": "/shows/x/comp/sh010_comp_v003.nk", "parent.node_id": "ab12"}
    read = file_knobs()["RenderRead"]
    assert nuke_lang.substitute(read, Knobs(values)) == "/shows/x/comp/facegraft/sh010_comp/ab12/render.####.exr"
    values["root.name"] = "/shows/x/comp/sh010_comp_v004.nk"  # versioned up: same render
    assert nuke_lang.substitute(read, Knobs(values)) == "/shows/x/comp/facegraft/sh010_comp/ab12/render.####.exr"
    values["root.name"] = "/shows/x/comp/sh020_comp_v001.nk"  # another script in the folder: its own
    assert nuke_lang.substitute(read, Knobs(values)) == "/shows/x/comp/facegraft/sh020_comp/ab12/render.####.exr"


PATHS = ["/a/b/c.exr", "/a/b/", "/a", "/", "a", "a/b", "", "/a/b.c/d", "/a/.hidden", "C:/x/y.nk", "/a//b", "a.b.c"]


@pytest.mark.parametrize("path", PATHS)
def test_file_commands_match_tcl(path: str) -> None:
    interp = tkinter.Tcl()
    for sub in ("dirname", "tail", "rootname", "extension"):
        expected = interp.call("file", sub, path)
        assert nuke_lang.evaluate(f"file {sub} {{{path}}}", Knobs({})) == str(expected), (sub, path)
    if path:
        assert paths.tcl_dirname(path) == interp.call("file", "dirname", path)


@pytest.mark.parametrize("command", [
    "regsub -nocase {[._-]v[0-9]+$} sh010_comp_V003 {}",
    "regsub {o} foo 0", "regsub -all {o} foo 0", "regsub {(f)(o)} foo {\\2\\1&}", "regsub -all -- {-} a-b-c _",
    "if {1 > 2} {format a} elseif {2 > 1} {format b} else {format c}",
    "if {{} != {}} {format yes} {format no}", "if {{x} eq {x}} {format same} {format other}",
    "if {0} {format never}", "expr {1 + 2 * 3}", "expr {(1 + 2) * 3 == 9 && 1}", "expr {10 % 4}",
    "string trimright /a/b/// /", "string tolower ABC", "string length abcd", "string equal a a",
    "format %s/facegraft /shows/x", "format {%s-%s} a b", "file join /a b c",
])
def test_commands_match_tcl(command: str) -> None:
    assert nuke_lang.evaluate(command, Knobs({})) == str(tkinter.Tcl().eval(command))


def test_what_it_cannot_evaluate_raises() -> None:
    for text in ("[set x 1]", "$x", "[file normalize a]", "[format %d 3]", "[regsub {[[:alpha:]]} a b]"):
        with pytest.raises(nuke_lang.TclError):
            nuke_lang.substitute(text, Knobs({}))
    with pytest.raises(nuke_lang.TclError, match="python"):
        nuke_lang.substitute("[python nuke.root().name()]", Knobs({}))


def test_nuke_expressions() -> None:
    knobs = Knobs({"parent.rendered": "1", "parent.output": "1", "parent.first_frame": "1001"})
    assert nuke_lang.nuke_expression("parent.rendered ? parent.output + 1 : 0", knobs) == 2
    assert nuke_lang.nuke_expression("!parent.rendered", knobs) == 0
    assert nuke_lang.nuke_expression("frame - parent.first_frame", knobs) == 0
    assert nuke_lang.nuke_expression("[string length [value parent.output]] > 0 ? 5 : 7", knobs) == 5
    assert re.match(r"^\d+$", nuke_lang.format_value(3.0))
