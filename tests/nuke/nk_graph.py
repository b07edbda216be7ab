"""Renders a node graph of the fake ``nuke`` with numpy, the way Nuke computes it: the pixels a
FaceGraft or FaceGraftApply node outputs, and the files its internal Writes write.

Only the node classes the gizmos use are implemented, each with Nuke's defaults (Merge2 merges
rgba with A = input 1 over B = input 0; Copy copies from A = input 1 into B; a Read holds its
first/last frame outside its range unless ``before``/``after`` say ``black``, and a missing file
is an error unless ``on_error`` says otherwise; knob expressions and TCL are evaluated by the
fake). Images are dicts of full channel names (``rgba.red``, ``swap.alpha``, ``depth.Z``) to float32
arrays on the script's format; a channel a node does not have reads as 0. EXRs are read and
written with OpenImageIO, every part of a multi-part file, each on its data window; colour with
OpenColorIO. An unknown node class raises: a test never passes on a node it did not render.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import nuke
import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio

Image = dict[str, np.ndarray]
EXR_TO_NUKE = {"R": "red", "G": "green", "B": "blue", "A": "alpha"}
NUKE_TO_EXR = {v: k for k, v in EXR_TO_NUKE.items()}


class ReadError(Exception):
    """A Read with ``on_error error`` met a missing frame: Nuke shows an error in the viewer and fails a render."""


def nuke_channel(exr_name: str) -> str:
    """An EXR channel as Nuke names it: ``R`` -> ``rgba.red``, ``swap.A`` -> ``swap.alpha``, ``Z`` -> ``depth.Z``."""
    if "." not in exr_name:
        return "depth.Z" if exr_name == "Z" else "rgba." + EXR_TO_NUKE.get(exr_name, exr_name)
    layer, channel = exr_name.rsplit(".", 1)
    return f"{layer}.{EXR_TO_NUKE.get(channel, channel)}"


def exr_channel(name: str) -> str:
    layer, channel = name.split(".", 1)
    if layer == "rgba":
        return NUKE_TO_EXR[channel]
    if name == "depth.Z":
        return "Z"
    return f"{layer}.{NUKE_TO_EXR.get(channel, channel)}"


def channel_set(text: str) -> list[str]:
    """A channels knob as channel names: ``rgba``, ``rgb``, ``alpha``, a layer, one channel, or ``{a.b c.d -e.f}``."""
    text = text.strip()
    if text in ("", "none"):
        return []
    if text.startswith("{"):
        text = text[1:-1]
    if " " in text.strip():
        return [w for w in text.split() if not w.startswith("-") and w != "none"]
    if text == "rgb":
        return ["rgba.red", "rgba.green", "rgba.blue"]
    if text == "alpha":
        return ["rgba.alpha"]
    if "." in text:
        return [text]
    return [f"{text}.{c}" for c in nuke.layer_channels(text)]


def read_exr(path: str, width: int, height: int) -> Image:
    """Every channel of every part of ``path`` on a ``width`` x ``height`` canvas (outside a part's data window: 0)."""
    found = oiio.ImageInput.open(path)
    if found is None:
        raise ReadError(f"cannot open {path}: {oiio.geterror()}")
    image: Image = {}
    try:
        part = 0
        while found.seek_subimage(part, 0):
            spec = found.spec()
            pixels = found.read_image(part, 0, 0, spec.nchannels, oiio.FLOAT)
            if pixels is None or np.asarray(pixels).size != spec.height * spec.width * spec.nchannels:
                raise ReadError(f"cannot read {path}: {found.geterror() or 'damaged file'}")
            pixels = np.asarray(pixels).reshape(spec.height, spec.width, spec.nchannels)
            x0, y0 = spec.x - spec.full_x, spec.y - spec.full_y
            for index, name in enumerate(spec.channelnames):
                canvas = np.zeros((height, width), np.float32)
                canvas[y0:y0 + spec.height, x0:x0 + spec.width] = pixels[..., index]
                image[nuke_channel(name)] = canvas
            part += 1
    finally:
        found.close()
    return image


def write_exr(path: str, image: Image, channels: list[str]) -> None:
    """``channels`` of ``image`` as a half-float EXR (what the gizmo's cache Writes write)."""
    first = next(iter(image.values()), None)
    height, width = first.shape if first is not None else (0, 0)
    spec = oiio.ImageSpec(width, height, len(channels), oiio.HALF)
    spec.channelnames = tuple(exr_channel(c) for c in channels)
    spec.attribute("compression", "zip")
    pixels = np.stack([image.get(c, np.zeros((height, width), np.float32)) for c in channels], axis=-1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = oiio.ImageOutput.create(path)
    assert out is not None and out.open(path, spec), oiio.geterror()
    out.write_image(pixels.astype(np.float16))
    out.close()


def _number(node: nuke.Node, name: str, frame: float, default: float = 0.0, index: int = 0) -> float:
    knob = node.knob(name)
    if knob is None:
        return default
    return knob._number(frame, index)


def _text(node: nuke.Node, name: str, default: str = "") -> str:
    knob = node.knob(name)
    return str(knob.value()) if knob is not None else default


@dataclass
class Scene:
    """The script's format and colour management, as the graph needs them."""

    width: int
    height: int
    config: str  # OCIO config (file or URI) of the script
    working: str = "scene_linear"


class Renderer:
    """Pulls images through the graph; one instance caches nothing, so knob changes always show."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self._config = ocio.Config.CreateFromFile(scene.config)
        self.reads: list[tuple[str, int]] = []  # (file, frame) every Read opened

    def empty(self) -> Image:
        return {}

    def zeros(self) -> np.ndarray:
        return np.zeros((self.scene.height, self.scene.width), np.float32)

    def get(self, image: Image, channel: str) -> np.ndarray:
        found = image.get(channel)
        return found if found is not None else self.zeros()

    def render(self, node: Optional[nuke.Node], frame: int) -> Image:
        if node is None:
            return self.empty()
        if node.knob("disable") is not None and _number(node, "disable", frame) and node.Class() not in ("Read",):
            return self.render(node.input(0), frame)
        handler: Optional[Callable[[nuke.Node, int], Image]] = getattr(self, "_" + node.Class(), None)
        if isinstance(node, nuke.Group) and node.node("Output1") is not None:
            return self.render(node.node("Output1"), frame)
        if handler is None:
            raise NotImplementedError(f"the test renderer has no {node.Class()} node ({node.fullName()})")
        return handler(node, frame)

    # -- graph plumbing
    def _Input(self, node: nuke.Node, frame: int) -> Image:
        group = node.parent()
        number = int(_number(node, "number", frame))
        return self.render(group.input(number), frame)

    def _pass(self, node: nuke.Node, frame: int) -> Image:
        return self.render(node.input(0), frame)

    _Output = _Dot = _NoOp = _Write = _pass

    def _Switch(self, node: nuke.Node, frame: int) -> Image:
        count = max(1, node.inputs())
        which = int(min(max(_number(node, "which", frame), 0), count - 1))
        return self.render(node.input(which), frame)

    # -- files and colour
    def _Read(self, node: nuke.Node, frame: int) -> Image:
        if node.knob("disable") is not None and _number(node, "disable", frame):
            return self.empty()
        first, last = int(_number(node, "first", frame, 1)), int(_number(node, "last", frame, 1))
        if frame < first or frame > last:
            mode = _text(node, "before" if frame < first else "after", "hold")
            if mode == "black":
                return self.empty()
            frame = first if frame < first else last
        path = nuke.filename(node, frame)
        assert path is not None
        self.reads.append((path, frame))
        if not os.path.isfile(path):
            if _text(node, "on_error", "error") == "black":
                return self.empty()
            raise ReadError(f"{node.fullName()}: missing frame {frame}: {path}")
        image = read_exr(path, self.scene.width, self.scene.height)
        if not _number(node, "raw", frame):
            space = _text(node, "colorspace", "default")
            space = self.scene.working if space.startswith("default") else space
            image = self._convert(image, ["rgba.red", "rgba.green", "rgba.blue"], space, self.scene.working)
        return image

    def _convert(self, image: Image, channels: list[str], source: str, target: str) -> Image:
        processor = self._config.getProcessor(source, target).getDefaultCPUProcessor()
        rgb = np.stack([self.get(image, c) for c in channels[:3]], axis=-1).astype(np.float32).copy()
        processor.applyRGB(rgb.reshape(-1, 3))
        out = dict(image)
        for index, name in enumerate(channels[:3]):
            out[name] = rgb[..., index]
        return out

    def _OCIOColorSpace(self, node: nuke.Node, frame: int) -> Image:
        image = self.render(node.input(0), frame)
        channels = channel_set(_text(node, "channels", "rgb"))
        return self._convert(image, channels, _text(node, "in_colorspace"), _text(node, "out_colorspace"))

    # -- channels
    def _Shuffle(self, node: nuke.Node, frame: int) -> Image:
        image = self.render(node.input(0), frame)
        source = channel_set(_text(node, "in", "rgba"))
        target = channel_set(_text(node, "out", "rgba"))
        positions = {"red": 0, "green": 1, "blue": 2, "alpha": 3}
        out = dict(image)
        for index, name in enumerate(target[:4]):
            wanted = _text(node, ("red", "green", "blue", "alpha")[index], ("red", "green", "blue", "alpha")[index])
            if wanted == "black":
                out[name] = self.zeros()
            elif wanted == "white":
                out[name] = self.zeros() + 1.0
            else:
                position = positions[wanted]
                out[name] = self.get(image, source[position]) if position < len(source) else self.zeros()
        return out

    def _Copy(self, node: nuke.Node, frame: int) -> Image:
        b = self.render(node.input(0), frame)
        a = self.render(node.input(1), frame)
        out = dict(b)
        for name in channel_set(_text(node, "channels", "none")):
            out[name] = self.get(a, name)
        for index in range(4):
            source, target = _text(node, f"from{index}", "none"), _text(node, f"to{index}", "none")
            if source != "none" and target != "none":
                out[target] = self.get(a, source)
        return out

    def _Merge2(self, node: nuke.Node, frame: int) -> Image:
        b = self.render(node.input(0), frame)
        a = self.render(node.input(1), frame)
        a_set = channel_set(_text(node, "Achannels", "rgba"))
        b_set = channel_set(_text(node, "Bchannels", "rgba"))
        out_set = channel_set(_text(node, "output", "rgba"))
        mix = _number(node, "mix", frame, 1.0)
        alpha = self.get(a, a_set[3] if len(a_set) > 3 else a_set[-1])
        operation = _text(node, "operation", "over")
        ops: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
            "over": lambda x, y: x + y * (1.0 - alpha), "min": np.minimum, "max": np.maximum,
            "plus": lambda x, y: x + y, "multiply": lambda x, y: x * y, "copy": lambda x, y: x,
            "stencil": lambda x, y: y * (1.0 - alpha), "mask": lambda x, y: y * alpha,
        }
        if operation not in ops:
            raise NotImplementedError(f"Merge2 operation {operation}")
        out = dict(b)
        for index, name in enumerate(out_set):
            x = self.get(a, a_set[index]) if index < len(a_set) else self.zeros()
            y = self.get(b, b_set[index]) if index < len(b_set) else self.zeros()
            out[name] = (ops[operation](x, y) * mix + y * (1.0 - mix)).astype(np.float32)
        return out

    # -- pixel operations
    def _premult(self, node: nuke.Node, frame: int, divide: bool) -> Image:
        image = self.render(node.input(0), frame)
        alpha = self.get(image, _text(node, "alpha", "rgba.alpha"))
        out = dict(image)
        for name in channel_set(_text(node, "channels", "rgb")):
            value = self.get(image, name)
            if divide:
                out[name] = np.where(alpha != 0, value / np.where(alpha != 0, alpha, 1.0), value).astype(np.float32)
            else:
                out[name] = (value * alpha).astype(np.float32)
        return out

    def _Unpremult(self, node: nuke.Node, frame: int) -> Image:
        return self._premult(node, frame, divide=True)

    def _Premult(self, node: nuke.Node, frame: int) -> Image:
        return self._premult(node, frame, divide=False)

    def _Grade(self, node: nuke.Node, frame: int) -> Image:
        image = self.render(node.input(0), frame)
        out = dict(image)
        for index, name in enumerate(channel_set(_text(node, "channels", "rgb"))):
            multiply = _number(node, "multiply", frame, 1.0, index)
            add = _number(node, "add", frame, 0.0, index)
            gamma = _number(node, "gamma", frame, 1.0, index)
            value = self.get(image, name) * multiply + add
            if gamma != 1.0:
                value = np.where(value > 0, np.power(np.maximum(value, 0), 1.0 / gamma), value)
            out[name] = value.astype(np.float32)
        return out

    def _Multiply(self, node: nuke.Node, frame: int) -> Image:
        image = self.render(node.input(0), frame)
        out = dict(image)
        for name in channel_set(_text(node, "channels", "rgb")):
            out[name] = (self.get(image, name) * _number(node, "value", frame, 1.0)).astype(np.float32)
        return out

    def _FilterErode(self, node: nuke.Node, frame: int) -> Image:
        image = self.render(node.input(0), frame)
        size = _number(node, "size", frame, 0.0)
        radius = int(round(abs(size)))
        if radius == 0:
            return image
        kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
        out = dict(image)
        for name in channel_set(_text(node, "channels", "rgba")):
            value = self.get(image, name)
            out[name] = (cv2.erode(value, kernel) if size > 0 else cv2.dilate(value, kernel)).astype(np.float32)
        return out

    def _Blur(self, node: nuke.Node, frame: int) -> Image:
        image = self.render(node.input(0), frame)
        size = _number(node, "size", frame, 0.0)
        if size <= 0:
            return image
        out = dict(image)
        for name in channel_set(_text(node, "channels", "rgba")):
            out[name] = cv2.GaussianBlur(self.get(image, name), (0, 0), size / 2.0).astype(np.float32)
        return out


def nuke_executes_writes(graph: Renderer) -> None:
    """nuke.execute of a Write: render what flows into it and write its file, frame by frame."""
    def execute(write: nuke.Node, first: int, last: int, incr: int) -> None:
        for frame in range(first, last + 1, incr):
            image = graph.render(write.input(0), frame)
            path = nuke.filename(write, frame)
            assert path is not None
            write_exr(path, image, channel_set(write["channels"].value()))
    nuke.execute_hook = execute
