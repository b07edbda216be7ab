"""A small reader for Nuke script / gizmo text: nodes, knobs, user knobs and the node graph.

Nuke scripts are a stack language: each node block pops its inputs (input 0 is the top of
the stack) and pushes itself; ``push $var`` / ``push 0`` / ``set var [stack 0]`` move
references around; ``end_group`` closes a Group or Gizmo.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

NO_INPUTS = {"Input", "Read", "Constant", "CheckerBoard2", "ColorWheel", "Camera2", "Camera3"}


@dataclass
class UserKnob:
    type: int
    name: str
    label: str = ""
    tooltip: str = ""
    menu: list[str] = field(default_factory=list)
    script: str = ""
    flags: list[str] = field(default_factory=list)
    range: Optional[tuple[float, float]] = None  # a slider's ``R low high``


@dataclass
class NkNode:
    cls: str
    knobs: dict[str, list[str]] = field(default_factory=dict)
    user_knobs: list[UserKnob] = field(default_factory=list)
    inputs: list[Optional[NkNode]] = field(default_factory=list)
    children: list[NkNode] = field(default_factory=list)
    layers: dict[str, list[str]] = field(default_factory=dict)  # add_layer lines (on the root)

    @property
    def name(self) -> str:
        return self.value("name", self.cls)

    def value(self, knob: str, default: str = "") -> str:
        found = self.knobs.get(knob)
        return " ".join(found) if found else default

    def child(self, name: str) -> Optional[NkNode]:
        return next((n for n in self.children if n.name == name), None)

    def user_knob(self, name: str) -> Optional[UserKnob]:
        return next((k for k in self.user_knobs if k.name == name), None)


def tokenize(text: str) -> list[str]:
    """Words, ``{...}`` groups (kept with braces), ``"..."`` strings (unquoted) and ``\\n`` markers."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\n":
            tokens.append("\n")
            i += 1
        elif ch in " \t\r":
            i += 1
        elif ch == "#" and (not tokens or tokens[-1] == "\n"):
            while i < n and text[i] != "\n":
                i += 1
        elif ch == "{":
            depth, j = 0, i
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if depth != 0:
                raise ValueError(f"unbalanced braces from offset {i}")
            tokens.append(text[i:j + 1])
            i = j + 1
        elif ch == '"':
            j, out = i + 1, []
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    nxt = text[j + 1]
                    out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                    j += 2
                    continue
                out.append(text[j])
                j += 1
            if j >= n:
                raise ValueError(f"unterminated string from offset {i}")
            tokens.append('"' + "".join(out))  # leading quote marks "was a string"
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n{}\"":
                j += 1
            if j == i:  # a lone '}' at top level
                tokens.append(ch)
                j = i + 1
            else:
                tokens.append(text[i:j])
            i = j
    return tokens


def unquote(token: str) -> str:
    if token.startswith('"'):
        return token[1:]
    if token.startswith("{") and token.endswith("}"):
        return token[1:-1]
    return token


def _lines(tokens: list[str]) -> list[list[str]]:
    lines, current = [], []
    for token in tokens:
        if token == "\n":
            if current:
                lines.append(current)
            current = []
        else:
            current.append(token)
    if current:
        lines.append(current)
    return lines


def parse_user_knob(group: str) -> UserKnob:
    """``{2 model_file l "model file" t "..." M {a b}}`` -> UserKnob."""
    words = [t for t in tokenize(unquote(group)) if t != "\n"]
    knob = UserKnob(type=int(words[0]), name=unquote(words[1]) if len(words) > 1 else "")
    i = 2
    while i < len(words):
        word = words[i]
        if word in ("l", "t", "T", "M", "R", "n") and i + 1 < len(words):
            arg = words[i + 1]
            if word == "l":
                knob.label = unquote(arg)
            elif word == "t":
                knob.tooltip = unquote(arg)
            elif word == "T":
                knob.script = unquote(arg)
            elif word == "M":
                knob.menu = [unquote(w) for w in tokenize(unquote(arg)) if w != "\n"]
            elif word == "R" and i + 2 < len(words):
                knob.range = (float(arg), float(words[i + 2]))
            i += 2 if word != "R" else 3
            continue
        knob.flags.append(word)
        i += 1
    return knob


def parse(text: str) -> NkNode:
    """The whole script as a root NkNode whose ``children`` are the top-level nodes."""
    lines = _lines(tokenize(text))
    root = NkNode("Root")
    groups: list[tuple[NkNode, list[Optional[NkNode]], dict[str, Optional[NkNode]]]] = []
    current, stack, variables = root, [], {}
    for line in lines:
        head = line[0]
        if head == "push":
            ref = line[1]
            stack.append(None if ref == "0" else variables[ref.lstrip("$")])
        elif head == "set" and len(line) >= 3:
            variables[line[1]] = stack[-1] if stack else None
        elif head == "end_group":
            current, stack, variables = groups.pop()
        elif head in ("version", "define_window_layout_xml"):
            continue
        elif head == "add_layer":
            words = [w for w in tokenize(unquote(line[1])) if w != "\n"]
            root.layers[words[0]] = [w.split(".", 1)[1] for w in words[1:]]
        elif len(line) >= 2 and line[1].startswith("{") and re.match(r"^[A-Za-z_][\w.]*$", head):
            node = NkNode(head)
            for knob_line in _lines(tokenize(line[1][1:-1])):
                name, args = knob_line[0], [unquote(a) for a in knob_line[1:]]
                if name == "addUserKnob":
                    node.user_knobs.append(parse_user_knob(knob_line[1]))
                else:
                    node.knobs[name] = args
            count = int(node.value("inputs", "0" if head in NO_INPUTS else "1").split()[0])
            node.inputs = [stack.pop() if stack else None for _ in range(count)]
            current.children.append(node)
            stack.append(node)
            if head in ("Group", "Gizmo", "LiveGroup"):
                groups.append((current, stack, variables))
                current, stack, variables = node, [], {}
        else:
            raise ValueError(f"cannot read line: {' '.join(line)[:80]}")
    return root


def upstream(node: NkNode) -> list[NkNode]:
    """Every node feeding ``node``, nearest first."""
    seen: list[NkNode] = []
    todo = [n for n in node.inputs if n is not None]
    while todo:
        nxt = todo.pop(0)
        if any(nxt is s for s in seen):
            continue
        seen.append(nxt)
        todo.extend(n for n in nxt.inputs if n is not None)
    return seen
