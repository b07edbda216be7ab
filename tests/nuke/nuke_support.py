"""Shared helpers of the Nuke tests: paths, and the gizmos built on the fake ``nuke`` module exactly as
their files describe them (user knobs with their defaults and expressions, internal nodes with their
knobs and wiring, ``add_layer`` declarations).

Imported by name from the test modules (a ``conftest`` is not importable by name when several
test folders have one).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PLUGIN = REPO / "nuke_plugin"
GIZMO = REPO / "gizmos" / "FaceGraft.gizmo"
APPLY_GIZMO = REPO / "gizmos" / "FaceGraftApply.gizmo"
for folder in (HERE / "fake_nuke", PLUGIN, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import nk_reader  # noqa: E402
import nuke  # noqa: E402  (the fake)

KNOB_TYPES = {
    1: nuke.String_Knob, 2: nuke.File_Knob, 3: nuke.Int_Knob, 4: nuke.Enumeration_Knob, 6: nuke.Boolean_Knob,
    7: nuke.Double_Knob, 18: nuke.Color_Knob, 20: nuke.Tab_Knob, 22: nuke.PyScript_Knob, 26: nuke.Text_Knob,
}
FILE_KNOBS = {"file", "proxy"}


def gizmo_tree(path: Path = GIZMO) -> nk_reader.NkNode:
    root = nk_reader.parse(path.read_text(encoding="utf-8"))
    return next(n for n in root.children if n.cls == "Gizmo")


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _items(text: str) -> list[str]:
    """The items of a knob's value: ``{a} {b} 1`` -> ``["{a}", "{b}", "1"]``."""
    return [t for t in nk_reader.tokenize(text) if t != "\n"]


def set_from_script(knob: nuke.Knob, text: str) -> None:
    """Give ``knob`` the value a script line holds, as Nuke reads it: ``{expr}`` is an expression,
    ``{{a} {b} 1}`` per-index expressions and numbers, otherwise plain text or numbers."""
    text = text.strip()
    if isinstance(knob, nuke.Array_Knob):
        items = _items(text)
        if len(items) == 1 and items[0].startswith("{"):
            inner = items[0][1:-1].strip()
            if inner.startswith('"') and inner.endswith('"'):
                inner = _unescape(inner[1:-1])
            knob.setExpression(inner, 0)
            return
        if len(items) == 1 and not isinstance(knob, nuke.Color_Knob):
            word = nk_reader.unquote(items[0])
            if isinstance(knob, nuke.Boolean_Knob):
                knob._value = word.lower() in ("true", "1")
            elif isinstance(knob, nuke.Enumeration_Knob):
                knob._value = word
            else:
                knob._value = int(float(word)) if isinstance(knob, nuke.Int_Knob) else float(word)
            return
        values: list[float] = []
        for index, item in enumerate(items):
            if item.startswith("{"):
                knob.setExpression(item[1:-1].strip(), index)
                values.append(0.0)
            else:
                values.append(float(nk_reader.unquote(item)))
        knob._value = values
        return
    knob._value = text


def _internal_knob(name: str, text: str) -> nuke.Knob:
    """A knob of an internal node: file knobs evaluate TCL, expressions and numbers are numeric knobs."""
    stripped = text.strip()
    if name in FILE_KNOBS:
        return nuke.File_Knob(name, value=text)
    if name == "disable" or stripped in ("true", "false"):
        knob: nuke.Knob = nuke.Boolean_Knob(name)
    elif stripped.startswith("{") or _is_numbers(stripped):
        knob = nuke.Array_Knob(name)
    else:
        return nuke.String_Knob(name, value=nk_reader.unquote(text))
    set_from_script(knob, text)
    return knob


def _is_numbers(text: str) -> bool:
    try:
        [float(w) for w in text.split()]
    except ValueError:
        return False
    return bool(text)


def build_gizmo(path: Path, cls: str, name: str) -> nuke.Gizmo:
    """A fake node of ``cls`` with exactly the gizmo file's user knobs, defaults and internal graph."""
    parsed = nk_reader.parse(path.read_text(encoding="utf-8"))
    for layer, channels in parsed.layers.items():
        nuke.add_layer(layer, channels)
    tree = next(n for n in parsed.children if n.cls == "Gizmo")
    node = nuke.Gizmo(cls, name)
    for spec in tree.user_knobs:
        knob_cls = KNOB_TYPES[spec.type]
        knob = knob_cls(spec.name, spec.label, spec.menu) if spec.type == 4 else knob_cls(spec.name, spec.label)
        for flag, bit in (("+INVISIBLE", nuke.INVISIBLE), ("+STARTLINE", nuke.STARTLINE)):
            if flag in spec.flags:
                knob.setFlag(bit)
        if "+DISABLED" in spec.flags:
            knob.setEnabled(False)
        default = tree.knobs.get(spec.name)
        if default:
            set_from_script(knob, " ".join(default) if spec.type != 1 else default[0])
        if spec.type == 26:
            knob._value = spec.script
        if spec.type == 22:
            knob._command = spec.script
        node.addKnob(knob)
    inner: dict[str, nuke.Node] = {}
    for child in tree.children:
        made = nuke.Node(child.cls, child.name)
        for knob_name, args in child.knobs.items():
            made.addKnob(_internal_knob(knob_name, " ".join(args)))
        if child.cls == "Read":
            made.addKnob(nuke.PyScript_Knob("reload"))
        node.add_node(made)
        inner[child.name] = made
    for child in tree.children:
        for index, source in enumerate(child.inputs):
            if source is not None:
                inner[child.name].setInput(index, inner[source.name])
    nuke.root().add_node(node)
    return node


def build_facegraft(name: str = "FaceGraft1") -> nuke.Gizmo:
    return build_gizmo(GIZMO, "FaceGraft", name)


def build_apply(name: str = "FaceGraftApply1") -> nuke.Gizmo:
    return build_gizmo(APPLY_GIZMO, "FaceGraftApply", name)


def set_range(node: nuke.Node, first: int, last: int) -> None:
    """Type a frame range into the node (Nuke keeps an expression through setValue: clear it first)."""
    for knob, value in (("first_frame", first), ("last_frame", last)):
        node[knob].clearAnimated()  # type: ignore[attr-defined]
        node[knob].setValue(value)


def save_script(path: Path, first: Optional[int] = None, last: Optional[int] = None) -> None:
    """The script is saved as ``path`` (what root.name holds), optionally with a frame range."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#! nuke\n", encoding="utf-8")
    nuke.root()["name"].setValue(str(path))
    if first is not None and last is not None:
        nuke.root().set_frame_range(first, last)


def plate_read(path: str, first: int = 1001, last: int = 1005, name: str = "Read1",
               colorspace: str = "scene_linear") -> nuke.Node:
    """An EXR Read of ``path`` (frames ``first``-``last``) in the script's root, as the user makes one."""
    read = nuke.Node("Read", name)
    read.addKnob(nuke.File_Knob("file", value=path))
    read.addKnob(nuke.String_Knob("colorspace", value=colorspace))
    read.addKnob(nuke.Boolean_Knob("raw", value=False))
    read.addKnob(nuke.Int_Knob("first", value=first))
    read.addKnob(nuke.Int_Knob("last", value=last))
    read.set_frame_range(first, last)
    nuke.root().add_node(read)
    return read
