"""A small stand-in for the parts of Deadline's plugin API the FaceGraft plugin uses, so its
script runs here: ``Deadline.Plugins`` (DeadlinePlugin, PluginType) and ``Deadline.Scripting``
(RepositoryUtils). Stdout lines are fed to the handlers as Deadline's Simple plugins do: each
handler whose regex matches the line is called, with ``GetRegexMatch`` answering for it."""
from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any, Callable, Optional


class Event:
    """A .NET-style event: ``event += handler``; calling it calls every handler."""

    def __init__(self) -> None:
        self.handlers: list[Callable[..., Any]] = []

    def __iadd__(self, handler: Callable[..., Any]) -> Event:
        self.handlers.append(handler)
        return self

    def __call__(self, *args: Any) -> Any:
        result = None
        for handler in self.handlers:
            result = handler(*args)
        return result


class StdoutHandler:
    def __init__(self, regex: str) -> None:
        self.regex = re.compile(regex)
        self.HandleCallback = Event()


class PluginType:
    Simple, Advanced = "Simple", "Advanced"


class DeadlinePlugin:
    def __init__(self) -> None:
        self.InitializeProcessCallback = Event()
        self.RenderExecutableCallback = Event()
        self.RenderArgumentCallback = Event()
        self.CheckExitCodeCallback = Event()
        self.StdoutHandlers: list[StdoutHandler] = []
        self.plugin_info: dict[str, str] = {}
        self.start_frame = self.end_frame = 0
        self.progress: list[float] = []
        self.status: list[str] = []
        self.warnings: list[str] = []
        self.failed: Optional[str] = None
        self._match: Optional[re.Match[str]] = None

    # the API the plugin calls
    def AddStdoutHandlerCallback(self, regex: str) -> StdoutHandler:
        handler = StdoutHandler(regex)
        self.StdoutHandlers.append(handler)
        return handler

    def GetPluginInfoEntry(self, key: str) -> str:
        return self.plugin_info[key]

    def GetPluginInfoEntryWithDefault(self, key: str, default: str) -> str:
        return self.plugin_info.get(key, default)

    def GetStartFrame(self) -> int:
        return self.start_frame

    def GetEndFrame(self) -> int:
        return self.end_frame

    def GetRegexMatch(self, index: int) -> str:
        assert self._match is not None
        return self._match.group(index)

    def SetProgress(self, value: float) -> None:
        self.progress.append(value)

    def SetStatusMessage(self, text: str) -> None:
        self.status.append(text)

    def LogWarning(self, text: str) -> None:
        self.warnings.append(text)

    def FailRender(self, text: str) -> None:
        self.failed = text
        raise RuntimeError(text)

    # what Deadline does around a task
    def feed(self, line: str) -> None:
        for handler in self.StdoutHandlers:
            self._match = handler.regex.search(line)
            if self._match:
                handler.HandleCallback()


class RepositoryUtils:
    @staticmethod
    def CheckPathMapping(path: str) -> str:
        return path


def load_plugin(script: str) -> types.ModuleType:
    """The plugin script as a module, run against the stand-in API."""
    deadline = types.ModuleType("Deadline")
    plugins = types.ModuleType("Deadline.Plugins")
    scripting = types.ModuleType("Deadline.Scripting")
    plugins.DeadlinePlugin, plugins.PluginType = DeadlinePlugin, PluginType  # type: ignore[attr-defined]
    scripting.RepositoryUtils = RepositoryUtils  # type: ignore[attr-defined]
    sys.modules.update({"Deadline": deadline, "Deadline.Plugins": plugins, "Deadline.Scripting": scripting})
    try:
        module = types.ModuleType("FaceGraft")
        exec(compile(script, str(Path("FaceGraft.py")), "exec"), module.__dict__)
    finally:
        for name in ("Deadline", "Deadline.Plugins", "Deadline.Scripting"):
            sys.modules.pop(name, None)
    return module
