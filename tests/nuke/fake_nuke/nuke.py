"""A small stand-in for Nuke's ``nuke`` module that records what the plugin does and sees what Nuke sees.

Only what FaceGraft's Nuke code uses is here; signatures follow the ``types-nuke`` stubs
(checked by ``tests/nuke/test_fake_nuke.py``). Knob values are evaluated the way Nuke does:
file and string knobs run their TCL (``evaluate()``, ``nuke.filename``), numeric knobs their
expressions and animation (``value()``, ``getValueAt``), through :mod:`nuke_lang`; a value this
fake cannot evaluate raises instead of guessing.
"""
from __future__ import annotations

import re
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

import nuke_lang

GUI: bool = True
EXE_PATH: str = "/opt/Nuke16.0v1/Nuke16.0"
NUKE_VERSION_MAJOR: int = 16
INVISIBLE: int = 0x400
STARTLINE: int = 0x1000

calls: List[Tuple[Any, ...]] = []  # ("createNode", "FaceGraft"), ("message", text), ...
main_queue: List[Tuple[Callable[..., Any], tuple, dict]] = []
queue_main_thread = False  # True: executeInMainThread queues; run_main_queue() runs them
execute_hook: Optional[Callable[[Any, int, int, int], None]] = None
_lock = threading.Lock()
_this: List[Any] = [None, None]  # thisNode, thisKnob
_root: List[Any] = []
_created: Dict[str, Any] = {}
_callbacks: Dict[str, List[Tuple[Callable[..., Any], tuple, dict, str]]] = {}
_layers: Dict[str, List[str]] = {"rgba": ["red", "green", "blue", "alpha"], "rgb": ["red", "green", "blue"],
                                 "alpha": ["alpha"], "depth": ["Z"]}


def record(*entry: Any) -> None:
    with _lock:
        calls.append(entry)


def reset() -> None:
    """Forget every call, queued callable, callback and node (between tests)."""
    global queue_main_thread, execute_hook, GUI
    with _lock:
        calls.clear()
        main_queue.clear()
    queue_main_thread = False
    execute_hook = None
    GUI = True
    _this[0] = _this[1] = None
    _root.clear()
    _created.clear()
    _callbacks.clear()
    _menus.clear()
    for name in [n for n in _layers if n not in ("rgba", "rgb", "alpha", "depth")]:
        del _layers[name]


def recorded(kind: str) -> List[Tuple[Any, ...]]:
    with _lock:
        return [c for c in calls if c[0] == kind]


# -- evaluation context ---------------------------------------------------------------------------------


class _NodeContext(nuke_lang.Context):
    """Knob references as Nuke resolves them from ``node``: ``knob``, ``parent.knob``, ``root.knob``,
    ``Sibling.knob`` (and ``.r/.g/.b/.a`` or ``.0``.. on colour knobs)."""

    def __init__(self, node: Node, frame: Optional[float] = None) -> None:
        self.node = node
        self.frame = float(frame if frame is not None else root()._frame)
        self.python = None

    def _knob(self, ref: str) -> Tuple[Knob, int]:
        parts = ref.split(".")
        index = 0
        if len(parts) > 1 and parts[-1] in ("r", "g", "b", "a", "x", "y", "0", "1", "2", "3"):
            index = {"r": 0, "g": 1, "b": 2, "a": 3, "x": 0, "y": 1}.get(parts[-1], 0)
            index = int(parts[-1]) if parts[-1].isdigit() else index
            parts = parts[:-1]
        owner: Optional[Node] = self.node
        for part in parts[:-1]:
            if owner is None:
                break
            if part == "parent":
                owner = owner._parent if owner._parent is not None else None
            elif part == "root":
                owner = root()
            elif part == "this":
                continue
            else:
                group = owner._parent if owner._parent is not None else root()
                owner = group.node(part)
        if owner is None:
            raise nuke_lang.TclError(f"no node for {ref!r} from {self.node.fullName()}")
        found = owner.knob(parts[-1])
        if found is None:
            raise nuke_lang.TclError(f"{owner.fullName()} has no knob {parts[-1]!r} ({ref})")
        return found, index

    def knob_text(self, ref: str) -> str:
        found, index = self._knob(ref)
        return found._text(self.frame, index)

    def knob_number(self, ref: str) -> float:
        found, index = self._knob(ref)
        return found._number(self.frame, index)


# -- knobs --------------------------------------------------------------------------------------------


class Knob:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._name = str(args[0]) if args else str(kwargs.get("name", ""))
        self._label = str(args[1]) if len(args) > 1 else self._name
        self._value: Any = kwargs.get("value", self._default())
        self._node: Optional[Node] = None
        self._enabled = True
        self._visible = True
        self._flags = 0
        self._tooltip = ""

    def _default(self) -> Any:
        return ""

    # what TCL's [value] and an expression see
    def _text(self, frame: float, index: int = 0) -> str:
        return str(self._value)

    def _number(self, frame: float, index: int = 0) -> float:
        try:
            return float(self._value)
        except (TypeError, ValueError):
            return 0.0

    def Class(self) -> str:
        return type(self).__name__

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def node(self) -> Node:
        assert self._node is not None, "knob is not on a node"
        return self._node

    def value(self, index: int = 0) -> Any:
        return self._value

    def getValue(self, channel: int = 0) -> Any:
        return self._value

    def setValue(self, val: Any, chan: int = 0) -> bool:
        record("setValue", self._node.name() if self._node else None, self._name, val)
        self._value = val
        return True

    def enabled(self) -> bool:
        return self._enabled

    def setEnabled(self, enabled: bool) -> None:
        self._enabled = enabled

    def visible(self) -> bool:
        return self._visible

    def setVisible(self, visible: bool) -> None:
        self._visible = visible

    def setFlag(self, flag: int) -> None:
        self._flags |= flag

    def clearFlag(self, flag: int) -> None:
        self._flags &= ~flag

    def getFlag(self, flag: int) -> bool:
        return bool(self._flags & flag)

    def setTooltip(self, tooltip: str) -> None:
        self._tooltip = tooltip

    def tooltip(self) -> str:
        return self._tooltip


class String_Knob(Knob):
    def value(self, oc: Any = None) -> str:
        return str(self._value)

    def setValue(self, val: Any, view: Any = None) -> None:  # type: ignore[override]  # as in the stubs
        record("setValue", self._node.name() if self._node else None, self._name, val)
        self._value = str(val)


class EvalString_Knob(String_Knob):
    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """The text with its TCL run, as Nuke shows it (``[value ...]``, ``[file dirname ...]``)."""
        assert self._node is not None, "knob is not on a node"
        frame = args[0] if args else kwargs.get("time")
        return nuke_lang.substitute(str(self._value), _NodeContext(self._node, frame))


class File_Knob(EvalString_Knob):
    def value(self, *args: Any, **kwargs: Any) -> Any:
        return str(self._value)

    def setValue(self, *args: Any, **kwargs: Any) -> Any:
        String_Knob.setValue(self, args[0] if args else kwargs.get("val", ""))

    def getEvaluatedValue(self, *args: Any, **kwargs: Any) -> Any:
        return self.evaluate(*args, **kwargs)


class Text_Knob(Knob):
    def value(self, *args: Any, **kwargs: Any) -> Any:
        return str(self._value)

    def setValue(self, *args: Any, **kwargs: Any) -> Any:
        return Knob.setValue(self, str(args[0] if args else kwargs.get("val", "")))


class Array_Knob(Knob):
    """Numbers with optional expressions and keyframes, per index."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Knob.__init__(self, *args, **kwargs)
        self._expressions: Dict[int, str] = {}
        self._keys: Dict[int, Dict[float, float]] = {}

    def _default(self) -> Any:
        return 0

    def _static(self, index: int) -> float:
        value = self._value
        if isinstance(value, (list, tuple)):
            value = value[index] if index < len(value) else value[-1]
        return float(value)

    def _number(self, frame: float, index: int = 0) -> float:
        if index in self._expressions or (index > 0 and 0 in self._expressions and not self._is_multi()):
            expression = self._expressions.get(index, self._expressions.get(0, ""))
            assert self._node is not None, "an expression knob must be on a node"
            return nuke_lang.nuke_expression(expression, _NodeContext(self._node, frame))
        keys = self._keys.get(index)
        if keys:
            return _interpolate(keys, frame)
        return self._static(index)

    def _is_multi(self) -> bool:
        return isinstance(self._value, (list, tuple))

    def _text(self, frame: float, index: int = 0) -> str:
        return nuke_lang.format_value(self._number(frame, index))

    def _now(self) -> float:
        return float(root()._frame)

    def value(self, *args: Any, **kwargs: Any) -> Any:
        index = int(args[0]) if args else int(kwargs.get("index", 0))
        return self._number(self._now(), index)

    def getValue(self, *args: Any, **kwargs: Any) -> Any:
        return self.value(*args, **kwargs)

    def setValue(self, *args: Any, **kwargs: Any) -> Any:
        val = args[0] if args else kwargs.get("value")
        index = int(args[1]) if len(args) > 1 else int(kwargs.get("index", -1))
        record("setValue", self._node.name() if self._node else None, self._name, val)
        if index >= 0 and self._is_multi():
            values = list(self._value)
            values[index] = val
            self._value = values
        else:
            self._value = val
        return True

    def hasExpression(self, *args: Any, **kwargs: Any) -> Any:
        index = int(args[0]) if args else -1
        return bool(self._expressions) if index < 0 else index in self._expressions

    def setExpression(self, expression: Any, channel: Any = -1, view: Any = None) -> bool:
        self._expressions[max(0, int(channel))] = str(expression)
        return True

    def isAnimated(self, *args: Any, **kwargs: Any) -> Any:
        return bool(self._expressions) or any(self._keys.values())

    def clearAnimated(self, *args: Any, **kwargs: Any) -> Any:
        self._expressions.clear()
        self._keys.clear()
        return True

    def setAnimated(self, *args: Any, **kwargs: Any) -> Any:
        index = int(args[0]) if args else 0
        self._keys.setdefault(index, {})
        return True

    def setValueAt(self, *args: Any, **kwargs: Any) -> Any:
        value, time = float(args[0]), float(args[1])
        index = int(args[2]) if len(args) > 2 else 0
        self._keys.setdefault(index, {})[time] = value
        return True

    def getValueAt(self, *args: Any, **kwargs: Any) -> Any:
        frame = float(args[0])
        index = int(args[1]) if len(args) > 1 else 0
        return self._number(frame, index)

    def valueAt(self, *args: Any, **kwargs: Any) -> Any:
        return self.getValueAt(*args, **kwargs)

    def getKeyList(self) -> List[float]:
        """The frames keyed on any index (an expression has none)."""
        return sorted({t for keys in self._keys.values() for t in keys})


def _interpolate(keys: Dict[float, float], frame: float) -> float:
    times = sorted(keys)
    if frame <= times[0]:
        return keys[times[0]]
    if frame >= times[-1]:
        return keys[times[-1]]
    for a, b in zip(times, times[1:]):
        if a <= frame <= b:
            return keys[a] + (keys[b] - keys[a]) * (frame - a) / (b - a)
    return keys[times[-1]]


class Int_Knob(Array_Knob):
    def value(self) -> int:  # type: ignore[override]  # as in the stubs
        return int(round(self._number(self._now())))

    def setValue(self, val: Any) -> bool:  # type: ignore[override]  # as in the stubs
        return Array_Knob.setValue(self, int(val))


class Double_Knob(Array_Knob):
    pass


class Color_Knob(Array_Knob):
    def _default(self) -> Any:
        return [1.0, 1.0, 1.0]


class Boolean_Knob(Array_Knob):
    def _static(self, index: int) -> float:
        value = self._value
        if isinstance(value, str):
            return 1.0 if value.strip().lower() in ("true", "1", "yes") else 0.0
        return 1.0 if value else 0.0

    def _text(self, frame: float, index: int = 0) -> str:
        return "true" if self._number(frame, index) else "false"

    def value(self) -> bool:  # type: ignore[override]  # as in the stubs
        return bool(self._number(self._now()))

    def setValue(self, b: Any) -> bool:  # type: ignore[override]  # as in the stubs
        return Array_Knob.setValue(self, bool(b))


class Unsigned_Knob(Array_Knob):
    pass


class Enumeration_Knob(Unsigned_Knob):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Unsigned_Knob.__init__(self, *args, **kwargs)
        self._values: List[str] = list(args[2]) if len(args) > 2 else list(kwargs.get("values", []))
        if self._value in ("", 0) and self._values:
            self._value = self._values[0]

    def _text(self, frame: float, index: int = 0) -> str:
        return str(self._value)

    def _number(self, frame: float, index: int = 0) -> float:
        return float(self._values.index(self._value)) if self._value in self._values else 0.0

    def value(self) -> Any:  # type: ignore[override]  # as in the stubs
        return self._value

    def values(self) -> Any:
        return list(self._values)

    def setValue(self, *args: Any, **kwargs: Any) -> Any:
        val = args[0] if args else kwargs.get("val")
        if isinstance(val, int):
            val = self._values[val]
        if val not in self._values:
            raise ValueError(f"Illegal value {val!r} for {self._name}")
        return Knob.setValue(self, val)


class Script_Knob(String_Knob):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        String_Knob.__init__(self, *args, **kwargs)
        self._command: Any = kwargs.get("command", "")

    def command(self) -> str:
        return self._command if isinstance(self._command, str) else ""

    def setCommand(self, cmd: Any) -> None:
        self._command = cmd

    def execute(self) -> None:
        """Run the button as Nuke does: a callable, or the knob's Python with thisNode()/thisKnob() set."""
        record("execute", self._node.name() if self._node else None, self._name)
        if callable(self._command):
            self._command()
        elif isinstance(self._command, str) and self._command.strip():
            before = list(_this)
            _this[0], _this[1] = self._node, self
            try:
                exec(compile(self._command, f"<{self._name} button>", "exec"), {"__name__": "__main__"})
            finally:
                _this[0], _this[1] = before


class PyScript_Knob(Script_Knob):
    pass


class Tab_Knob(Knob):
    pass


# -- Roto / RotoPaint shapes (``nuke.rotopaint`` in Nuke: the ``curves`` knob and its elements) ---------------


class AnimControlPoint:
    """A control point with its keyframe times."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._times: List[float] = []

    def addKey(self, time: Any, controlPointOrDim: Any, view: Any) -> None:
        self._times = sorted(set(self._times) | {float(time)})

    def getControlPointKeyTimes(self, view: str = "") -> List[float]:
        return list(self._times)


class ShapeControlPoint:
    """A shape's point: its centre (keyed where the artist keyed the shape) and feather."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.center = AnimControlPoint()
        self.featherCenter = AnimControlPoint()


class Shape:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._points: List[ShapeControlPoint] = []

    def append(self, shapeControlPoint: Any) -> None:
        self._points.append(shapeControlPoint)

    def __getitem__(self, index: int) -> ShapeControlPoint:
        return self._points[index]

    def __len__(self) -> int:
        return len(self._points)

    def __iter__(self) -> Any:
        return iter(self._points)


class Layer:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._elements: List[Any] = []

    def append(self, element: Any) -> None:
        self._elements.append(element)

    def __getitem__(self, index: int) -> Any:
        return self._elements[index]

    def __len__(self) -> int:
        return len(self._elements)

    def __iter__(self) -> Any:
        return iter(self._elements)


class CurveKnob(Knob):
    """A Roto node's ``curves`` knob: ``rootLayer`` holds its layers and shapes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Knob.__init__(self, *args, **kwargs)
        self.rootLayer = Layer()


# -- nodes --------------------------------------------------------------------------------------------


class Node:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._class = str(args[0]) if args else str(kwargs.get("cls", "NoOp"))
        self._name = str(args[1]) if len(args) > 1 else str(kwargs.get("name", self._class + "1"))
        self._knobs: Dict[str, Knob] = {}
        self._inputs: Dict[int, Optional[Node]] = {}
        self._parent: Optional[Group] = None
        self._range = (1, 1)
        self._deleted = False

    def _check(self) -> None:
        if self._deleted:
            raise ValueError("A PythonObject is not attached to a node")

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        self._check()
        return self._name

    def setName(self, name: str, uncollide: bool = True, updateExpressions: bool = False) -> None:
        group = self._parent
        if group is not None:
            group._nodes.pop(self._name, None)
            group._nodes[name] = self
        self._name = name

    def fullName(self) -> str:
        self._check()
        if self._parent is not None and self._parent._parent is not None:
            return self._parent.fullName() + "." + self._name
        return self._name

    def parent(self) -> Group:
        return self._parent if self._parent is not None else root()

    def addKnob(self, knob: Knob) -> None:
        knob._node = self
        self._knobs[knob.name()] = knob

    def knob(self, p: str | int, follow_link: bool = False) -> Optional[Knob]:
        self._check()
        record("knob", self._name, p)
        if isinstance(p, int):
            return list(self._knobs.values())[p]
        return self._knobs.get(p)

    def knobs(self) -> Dict[str, Knob]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        self._check()
        found = self._knobs.get(name)
        if found is None:
            raise NameError(f"knob {name} does not exist")
        return found

    def input(self, index: int) -> Optional[Node]:
        return self._inputs.get(index)

    def setInput(self, i: int, node: Optional[Node]) -> bool:
        record("setInput", self._name, i, node.name() if node is not None else None)
        self._inputs[i] = node
        return True

    def inputs(self) -> int:
        return max(self._inputs) + 1 if self._inputs else 0

    def firstFrame(self) -> int:
        return self._range[0]

    def lastFrame(self) -> int:
        return self._range[1]

    def set_frame_range(self, first: int, last: int) -> None:
        """Test helper: the range this node reports."""
        self._range = (first, last)

    def proxy(self) -> bool:
        return bool(root()["proxy"].value())


class Group(Node):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Node.__init__(self, *args, **kwargs)
        self._nodes: Dict[str, Node] = {}

    def node(self, s: str) -> Optional[Node]:
        return self._nodes.get(s)

    def nodes(self) -> List[Node]:
        return list(self._nodes.values())

    def add_node(self, node: Node) -> Node:
        """Test helper: put ``node`` inside this group."""
        node._parent = self
        self._nodes[node.name()] = node
        return node

    def begin(self) -> Group:
        return self

    def end(self) -> None:
        return None


class Gizmo(Group):
    def filename(self) -> str:
        return ""


class Root(Group):
    """The script: its file (``name``), frame range, proxy switch and colour management knobs.

    The defaults are a saved-nothing OCIO script whose config is FaceGraft's own
    (``ocio://studio-config-latest``) and whose working space is ``scene_linear``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Group.__init__(self, "Root", "root")
        self._frame = 1001
        for knob in (File_Knob("name", value=""), Int_Knob("first_frame", value=1001),
                     Int_Knob("last_frame", value=1100), Boolean_Knob("proxy", value=False),
                     Enumeration_Knob("colorManagement", "colour management", ["Nuke", "OCIO"]),
                     String_Knob("OCIO_config", value="custom"),
                     File_Knob("customOCIOConfigPath", value="ocio://studio-config-latest"),
                     String_Knob("workingSpaceLUT", value="scene_linear")):
            self.addKnob(knob)
        self._knobs["colorManagement"]._value = "OCIO"

    def name(self) -> str:
        return str(self._knobs["name"].value()) or "Root"

    def fullName(self) -> str:
        return "root"

    def firstFrame(self) -> int:
        return int(self["first_frame"].value())

    def lastFrame(self) -> int:
        return int(self["last_frame"].value())

    def set_frame_range(self, first: int, last: int) -> None:
        self["first_frame"].setValue(first)
        self["last_frame"].setValue(last)


class ProgressTask:
    """Records setProgress / setMessage; ``cancel_when`` lets a test press Cancel."""

    instances: List[ProgressTask] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.title = str(args[0]) if args else ""
        self.progress: List[int] = []
        self.messages: List[str] = []
        self.cancelled = False
        self.cancel_when: Optional[Callable[[ProgressTask], bool]] = ProgressTask.next_cancel_when
        record("ProgressTask", self.title)
        ProgressTask.instances.append(self)

    next_cancel_when: Optional[Callable[[ProgressTask], bool]] = None

    def isCancelled(self, *args: Any, **kwargs: Any) -> Any:
        if not self.cancelled and self.cancel_when is not None and self.cancel_when(self):
            self.cancelled = True
        return self.cancelled

    def setMessage(self, *args: Any, **kwargs: Any) -> Any:
        self.messages.append(str(args[0]))

    def setProgress(self, *args: Any, **kwargs: Any) -> Any:
        self.progress.append(int(args[0]))


class Menu:
    def __init__(self, name: str) -> None:
        self._name = name
        self.items: Dict[str, Any] = {}

    def name(self) -> str:
        return self._name

    def addCommand(self, *args: Any, **kwargs: Any) -> Any:
        record("addCommand", self._name, args[0], kwargs.get("icon", ""))
        self.items[str(args[0])] = args[1] if len(args) > 1 else kwargs.get("command")
        return None

    def addMenu(self, *args: Any, **kwargs: Any) -> Any:
        record("addMenu", self._name, args[0])
        sub = Menu(self._name + "/" + str(args[0]))
        self.items[str(args[0])] = sub
        return sub


class ToolBar(Menu):
    pass


_menus: Dict[str, Menu] = {}


# -- callbacks ----------------------------------------------------------------------------------------


def _add_callback(kind: str, call: Any, args: Any, kwargs: Any, nodeClass: str) -> None:
    if not callable(call):
        raise ValueError("call must be a callable")
    args = args if isinstance(args, tuple) else (args,)
    record("add" + kind, call, nodeClass)
    _callbacks.setdefault(kind, []).append((call, args, dict(kwargs or {}), nodeClass))


def run_callbacks(kind: str, node: Optional[Node] = None) -> int:
    """Test helper: run the callbacks of ``kind`` (OnCreate, OnScriptClose, ...) as Nuke would, for ``node``."""
    ran = 0
    for call, args, kwargs, node_class in list(_callbacks.get(kind, [])):
        if node is not None and node_class not in ("*", node.Class()):
            continue
        previous = _this[0]
        _this[0] = node if node is not None else root()
        try:
            call(*args, **kwargs)
        finally:
            _this[0] = previous
        ran += 1
    return ran


def addOnCreate(call: Any, args: Any = (), kwargs: Any = None, nodeClass: str = "*") -> None:
    _add_callback("OnCreate", call, args, kwargs, nodeClass)


def addOnUserCreate(call: Any, args: Any = (), kwargs: Any = None, nodeClass: str = "*") -> None:
    _add_callback("OnUserCreate", call, args, kwargs, nodeClass)


def addOnDestroy(call: Any, args: Any = (), kwargs: Any = None, nodeClass: str = "*") -> None:
    _add_callback("OnDestroy", call, args, kwargs, nodeClass)


def addOnScriptClose(call: Any, args: Any = (), kwargs: Any = None, nodeClass: str = "*") -> None:
    _add_callback("OnScriptClose", call, args, kwargs, nodeClass)


def addKnobChanged(call: Any, args: Any = (), kwargs: Any = None, nodeClass: str = "*", node: Any = None) -> None:
    _add_callback("KnobChanged", call, args, kwargs, nodeClass)


# -- module functions ---------------------------------------------------------------------------------


def createNode(typ: str, knobs: str = "", inpanel: bool = True) -> Node:
    """A node as the user creates it: onCreate, then (in the GUI) onUserCreate callbacks run."""
    record("createNode", typ, knobs)
    factory = _created.get(typ)
    node = factory() if factory is not None else Node(typ, typ + "1")
    if node._parent is None:
        root().add_node(node)
    run_callbacks("OnCreate", node)
    if GUI:
        run_callbacks("OnUserCreate", node)
    return node


def register_node_class(typ: str, factory: Callable[[], Node]) -> None:
    """Test helper: what createNode(typ) builds (e.g. a FaceGraft gizmo from the .gizmo file)."""
    _created[typ] = factory


def delete(n: Optional[Node]) -> None:
    if n is None:
        return
    run_callbacks("OnDestroy", n)
    if n._parent is not None:
        n._parent._nodes.pop(n._name, None)
    n._deleted = True


def allNodes(*args: Any, **kwargs: Any) -> List[Node]:
    """``allNodes(filter=None, group=None, recurseGroups=False)`` as in Nuke: the group's nodes, optionally
    of one class, optionally descending into groups and gizmos."""
    node_filter = args[0] if args else kwargs.get("filter")
    group = args[1] if len(args) > 1 else kwargs.get("group")
    recurse = bool(args[2] if len(args) > 2 else kwargs.get("recurseGroups", False))
    start = group if group is not None else root()
    found: List[Node] = []
    todo = list(start.nodes())
    while todo:
        node = todo.pop(0)
        if node_filter is None or node.Class() == node_filter:
            found.append(node)
        if recurse and isinstance(node, Group):
            todo.extend(node.nodes())
    return found


def toNode(s: str) -> Optional[Node]:
    found: Optional[Node] = root()
    for part in s.split("."):
        if not isinstance(found, Group):
            return None
        found = found.node(part)
    return found


def layers(node: Optional[Node] = None) -> List[str]:
    return sorted(_layers)


def add_layer(name: str, channels: List[str]) -> None:
    """Test helper: an ``add_layer`` line of a script or gizmo."""
    _layers[name] = list(channels)


def layer_channels(name: str) -> List[str]:
    """Test helper: a layer's channels (``swap`` -> red, green, blue, alpha)."""
    return list(_layers[name])


def tcl(cmd: str, *args: str) -> str:
    text = " ".join([cmd, *args])
    return nuke_lang.evaluate(text, _NodeContext(root()))


def frame(f: int = 0) -> int:
    if f:
        root()._frame = int(f)
    return root()._frame


def executeInMainThread(call: Any, args: Any = (), kwargs: Any = None) -> None:
    args = args if isinstance(args, tuple) else (args,)
    record("executeInMainThread", getattr(call, "__name__", repr(call)), args)
    if queue_main_thread:
        with _lock:
            main_queue.append((call, args, dict(kwargs or {})))
    else:
        call(*args, **(kwargs or {}))


def run_main_queue() -> int:
    """Run what background threads queued for the main thread; returns how many ran."""
    with _lock:
        pending = list(main_queue)
        main_queue.clear()
    for call, args, kwargs in pending:
        call(*args, **kwargs)
    return len(pending)


def message(prompt: str) -> None:
    record("message", prompt)


def warning(message: str) -> None:
    record("warning", message)


def ask(prompt: str) -> bool:
    record("ask", prompt)
    return True


def execute(nameOrNode: Node | str, start: int, end: int, incr: int = 1, views: Any = None,
            continueOnError: bool = False) -> None:
    """Like Nuke: a disabled node refuses to execute; the call is recorded with the file it writes and
    whether proxy mode was on; ``execute_hook`` (a test's renderer) then runs."""
    node = toNode(nameOrNode) if isinstance(nameOrNode, str) else nameOrNode
    if node is None:
        raise ValueError(f"no node {nameOrNode}")
    disable = node.knob("disable")
    if disable is not None and disable._number(float(start)):
        raise RuntimeError(f"{node.fullName()} is disabled")
    path = filename(node) if node.knob("file") is not None else None
    record("execute", node.name(), start, end, incr, path, bool(root()["proxy"].value()))
    if execute_hook is not None:
        execute_hook(node, start, end, incr)


def filename(node: Node, i: int = 0) -> Optional[str]:
    """The node's file knob with its TCL evaluated (and, given a frame, the frame number put in)."""
    knob = node.knob("file")
    if knob is None:
        return None
    text = knob.evaluate() if isinstance(knob, EvalString_Knob) else str(knob.value())
    if i:
        text = re.sub(r"#+", lambda m: f"{i:0{len(m.group(0))}d}", text)
        text = re.sub(r"%0?(\d*)d", lambda m: f"{i:0{int(m.group(1) or 1)}d}", text)
    return text


def root() -> Root:
    if not _root:
        _root.append(Root())
    return _root[0]


def thisNode() -> Node:
    assert _this[0] is not None, "no node is being evaluated"
    return _this[0]


def thisKnob() -> Knob:
    assert _this[1] is not None, "no knob is being evaluated"
    return _this[1]


def set_this(node: Optional[Node], knob: Optional[Knob] = None) -> None:
    """Test helper: what thisNode() / thisKnob() return, as inside a callback."""
    _this[0], _this[1] = node, knob


def selectedNode() -> Node:
    return thisNode()


def menu(name: str) -> Menu:
    return _menus.setdefault(name, Menu(name))


def toolbar(name: str, create: bool = True) -> Optional[ToolBar]:
    found = _menus.setdefault("toolbar:" + name, ToolBar(name))
    return found if isinstance(found, ToolBar) else None


def pluginAddPath(args: Any, addToSysPath: bool = True) -> None:
    record("pluginAddPath", args)
