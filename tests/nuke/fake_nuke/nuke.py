"""A small stand-in for Nuke's ``nuke`` module that records what the plugin does.

Only what FaceGraft's Nuke code uses is here; signatures follow the ``types-nuke`` stubs
(checked by ``tests/nuke/test_fake_nuke.py`` with mypy's stubtest).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Optional, Tuple

GUI: bool = True

calls: List[Tuple[Any, ...]] = []  # ("createNode", "FaceGraft"), ("message", text), ...
main_queue: List[Tuple[Callable[..., Any], tuple, dict]] = []
queue_main_thread = False  # True: executeInMainThread queues; run_main_queue() runs them
execute_hook: Optional[Callable[[Any, int, int, int], None]] = None
_lock = threading.Lock()
_this: List[Any] = [None, None]  # thisNode, thisKnob
_root: List[Any] = []
_created: Dict[str, Any] = {}


def record(*entry: Any) -> None:
    with _lock:
        calls.append(entry)


def reset() -> None:
    """Forget every call, queued callable and node (between tests)."""
    global queue_main_thread, execute_hook
    with _lock:
        calls.clear()
        main_queue.clear()
    queue_main_thread = False
    execute_hook = None
    _this[0] = _this[1] = None
    _root.clear()
    _created.clear()


def recorded(kind: str) -> List[Tuple[Any, ...]]:
    with _lock:
        return [c for c in calls if c[0] == kind]


# -- knobs --------------------------------------------------------------------------------------------


class Knob:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._name = str(args[0]) if args else str(kwargs.get("name", ""))
        self._label = str(args[1]) if len(args) > 1 else self._name
        self._value: Any = kwargs.get("value", self._default())
        self._node: Optional[Node] = None
        self._enabled = True
        self._visible = True

    def _default(self) -> Any:
        return ""

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


class String_Knob(Knob):
    def value(self, oc: Any = None) -> str:
        return str(self._value)

    def setValue(self, val: Any, view: Any = None) -> None:  # type: ignore[override]  # as in the stubs
        record("setValue", self._node.name() if self._node else None, self._name, val)
        self._value = str(val)


class EvalString_Knob(String_Knob):
    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        return str(self._value)


class File_Knob(EvalString_Knob):
    def value(self, *args: Any, **kwargs: Any) -> Any:
        return str(self._value)

    def setValue(self, *args: Any, **kwargs: Any) -> Any:
        String_Knob.setValue(self, args[0] if args else kwargs.get("val", ""))


class Text_Knob(Knob):
    def value(self, *args: Any, **kwargs: Any) -> Any:
        return str(self._value)

    def setValue(self, *args: Any, **kwargs: Any) -> Any:
        return Knob.setValue(self, str(args[0] if args else kwargs.get("val", "")))


class Array_Knob(Knob):
    def _default(self) -> Any:
        return 0


class Int_Knob(Array_Knob):
    def value(self) -> int:  # type: ignore[override]  # as in the stubs
        return int(self._value)

    def setValue(self, val: Any) -> bool:  # type: ignore[override]  # as in the stubs
        return Knob.setValue(self, int(val))


class Double_Knob(Array_Knob):
    def value(self, *args: Any, **kwargs: Any) -> Any:
        return float(self._value)


class Boolean_Knob(Array_Knob):
    def value(self) -> bool:  # type: ignore[override]  # as in the stubs
        return bool(self._value)

    def setValue(self, b: Any) -> bool:  # type: ignore[override]  # as in the stubs
        return Knob.setValue(self, bool(b))


class Unsigned_Knob(Knob):
    pass


class Enumeration_Knob(Unsigned_Knob):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Knob.__init__(self, *args, **kwargs)
        self._values: List[str] = list(args[2]) if len(args) > 2 else list(kwargs.get("values", []))
        if self._value == "" and self._values:
            self._value = self._values[0]

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
        record("execute", self._node.name() if self._node else None, self._name)
        if callable(self._command):
            self._command()


class PyScript_Knob(Script_Knob):
    pass


class Tab_Knob(Knob):
    pass


# -- nodes --------------------------------------------------------------------------------------------


class Node:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._class = str(args[0]) if args else str(kwargs.get("cls", "NoOp"))
        self._name = str(args[1]) if len(args) > 1 else str(kwargs.get("name", self._class + "1"))
        self._knobs: Dict[str, Knob] = {}
        self._inputs: Dict[int, Optional[Node]] = {}
        self._parent: Optional[Group] = None
        self._range = (1, 1)

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self._name

    def fullName(self) -> str:
        if self._parent is not None and self._parent._parent is not None:
            return self._parent.fullName() + "." + self._name
        return self._name

    def addKnob(self, knob: Knob) -> None:
        knob._node = self
        self._knobs[knob.name()] = knob

    def knob(self, p: str | int, follow_link: bool = False) -> Optional[Knob]:
        record("knob", self._name, p)
        if isinstance(p, int):
            return list(self._knobs.values())[p]
        return self._knobs.get(p)

    def knobs(self) -> Dict[str, Knob]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
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
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        Group.__init__(self, "Root", "root")
        self._script = ""
        self._range = (1001, 1100)

    def name(self) -> str:
        return self._script or "Root"

    def firstFrame(self) -> int:
        return self._range[0]

    def lastFrame(self) -> int:
        return self._range[1]


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
        record("addCommand", self._name, args[0])
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


# -- module functions ---------------------------------------------------------------------------------


def createNode(typ: str, knobs: str = "", inpanel: bool = True) -> Node:
    record("createNode", typ, knobs)
    factory = _created.get(typ)
    return factory() if factory is not None else Node(typ, typ + "1")


def register_node_class(typ: str, factory: Callable[[], Node]) -> None:
    """Test helper: what createNode(typ) builds (e.g. a FaceGraft gizmo from the .gizmo file)."""
    _created[typ] = factory


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


def execute(nameOrNode: Node | str, start: int, end: int, incr: int = 1, views: Any = None,
            continueOnError: bool = False) -> None:
    name = nameOrNode if isinstance(nameOrNode, str) else nameOrNode.name()
    record("execute", name, start, end, incr)
    if execute_hook is not None and not isinstance(nameOrNode, str):
        execute_hook(nameOrNode, start, end, incr)


def filename(node: Node, i: int = 0) -> Optional[str]:
    knob = node.knob("file")
    return str(knob.value()) if knob is not None else None


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


def addKnobChanged(call: Any, args: Any = (), kwargs: Any = None, nodeClass: str = "*", node: Any = None) -> None:
    record("addKnobChanged", call, nodeClass)
