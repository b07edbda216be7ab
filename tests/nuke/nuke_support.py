"""Shared helpers of the Nuke tests: paths, and the FaceGraft gizmo built on the fake ``nuke`` module.

Imported by name from the test modules (a ``conftest`` is not importable by name when several
test folders have one).
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PLUGIN = REPO / "nuke_plugin"
GIZMO = REPO / "gizmos" / "FaceGraft.gizmo"
for folder in (HERE / "fake_nuke", PLUGIN, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import nk_reader  # noqa: E402
import nuke  # noqa: E402  (the fake)

KNOB_TYPES = {
    1: nuke.String_Knob, 2: nuke.File_Knob, 3: nuke.Int_Knob, 4: nuke.Enumeration_Knob, 6: nuke.Boolean_Knob,
    7: nuke.Double_Knob, 20: nuke.Tab_Knob, 22: nuke.PyScript_Knob, 26: nuke.Text_Knob,
}


def gizmo_tree() -> nk_reader.NkNode:
    root = nk_reader.parse(GIZMO.read_text(encoding="utf-8"))
    return next(n for n in root.children if n.cls == "Gizmo")


def build_facegraft(name: str = "FaceGraft1") -> nuke.Gizmo:
    """A fake FaceGraft node with exactly the gizmo file's user knobs, defaults and internal nodes."""
    tree = gizmo_tree()
    node = nuke.Gizmo("FaceGraft", name)
    for spec in tree.user_knobs:
        cls = KNOB_TYPES[spec.type]
        knob = cls(spec.name, spec.label, spec.menu) if spec.type == 4 else cls(spec.name, spec.label)
        default = tree.knobs.get(spec.name)
        if default:
            convert = {3: int, 7: float}.get(spec.type, str)
            knob._value = convert(default[0])
        if spec.type == 26:
            knob._value = spec.script
        if spec.type == 22:
            knob._command = spec.script
        node.addKnob(knob)
    for child in tree.children:
        inner = nuke.Node(child.cls, child.name)
        for knob_name, args in child.knobs.items():
            inner.addKnob(nuke.String_Knob(knob_name, value=" ".join(args)))
        if child.cls == "Read":
            inner.addKnob(nuke.PyScript_Knob("reload"))
        node.add_node(inner)
    nuke.root().add_node(node)
    return node
