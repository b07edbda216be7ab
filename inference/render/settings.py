"""The settings that decide a render's pixels, declared once.

``SETTINGS`` holds one :class:`Setting` per user-facing setting of ``track`` and ``render``:
its name, kind, range, default, choices and help. Everything else is built from it or tested
against it: :class:`RenderSettings` takes its defaults from it, the command line builds its
options from it (``facegraft.cli.options.add_setting``), the farm and ``facegraft batch`` check
the options they pass on with it, and the Nuke node reads its JSON dump
(``facegraft settings --json``). Choices come from the module that owns them: colour-match
modes from :mod:`colormatch`, blend modes from :mod:`blend`, devices from
:mod:`facegraft.inference.models.runtime`, precisions from :mod:`~facegraft.inference.models.fp16`,
the bad-frame policies from ``ON_ERROR`` here.

Two options share a flag with a setting but mean something else in one command, and are
declared by that command alone: ``facegraft render --face TRACK_ID`` (replace another track
than the track file's target) and ``facegraft track --on-error fail|skip``.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional, Sequence

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour, layers
from facegraft.inference.models import fp16, runtime
from facegraft.inference.render import blend, colormatch

ON_ERROR = ("fail", "skip", "hold")
STAGES = ("track", "render", "farm")
KINDS = ("str", "int", "float", "choice")
FORMAT = 1  # of the JSON dump; the Nuke node refuses another
_WHOLE = re.compile(r"^\s*[+-]?\d+\s*$")


class SettingError(ValueError):
    """A value a setting does not accept; the message names the flag and says what it takes."""

    def __init__(self, setting: Setting, reason: str) -> None:
        super().__init__(f"{setting.flag} {reason}")
        self.setting, self.reason = setting, reason

    def naming(self, label: str) -> str:
        """The message with ``label`` (e.g. ``option 'blend'``) in place of the flag."""
        return f"{label} {self.reason}"


@dataclass(frozen=True)
class Setting:
    """One user-facing setting: what it is called, what it takes, its default and which stages use it."""

    name: str  # Python spelling; the flag is ``--`` + name with dashes
    kind: str  # one of KINDS
    default: Any  # None: not set (the help's default_text says what happens then)
    help: str
    stages: tuple[str, ...]  # of STAGES
    choices: tuple[str, ...] = ()
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    metavar: Optional[str] = None
    default_text: Optional[str] = None  # how help and docs word the default when the value alone says too little
    # more checks of a parsed value: raise ValueError("must be ...") to refuse it
    check: Optional[Callable[[str], object]] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        where = f"setting '{self.name}'"
        if self.kind not in KINDS:
            raise ValueError(f"{where}: kind '{self.kind}' is not one of {', '.join(KINDS)}")
        if not self.stages or set(self.stages) - set(STAGES):
            raise ValueError(f"{where}: stages {self.stages} must be some of {', '.join(STAGES)}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError(f"{where}: a 'choice' setting, and only one, lists its choices")
        if self.default is not None:
            try:
                accepted = self.parse(self.default) == self.default
            except SettingError as exc:
                raise ValueError(f"{where}: the default {self.default!r} is refused: {exc}") from None
            if not accepted:
                raise ValueError(f"{where}: the default {self.default!r} is not a value it takes as is")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def shown_default(self) -> str:
        """The default as help text and docs show it."""
        if self.default_text:
            return self.default_text
        if isinstance(self.default, float) and self.default.is_integer():
            return str(int(self.default))
        return "none" if self.default is None else str(self.default)

    def _range_text(self) -> str:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"between {_number(low)} and {_number(high)}"
        return f"{_number(low)} or more" if low is not None else f"{_number(high)} or less"

    def parse(self, value: object) -> Any:
        """``value`` (command-line text, or a YAML/JSON value) as this setting's type; SettingError says why not."""
        if value is None:
            return None
        shown = repr(value) if isinstance(value, str) else str(value)
        if isinstance(value, bool):
            raise SettingError(self, f"takes {self._wants()}, not {shown}")
        if self.kind == "int":
            if isinstance(value, float) or not _WHOLE.match(str(value)):
                raise SettingError(self, f"must be a whole number, not {shown}")
            result: Any = int(str(value).strip())
        elif self.kind == "float":
            try:
                result = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise SettingError(self, f"must be a number, not {shown}") from None
            if not math.isfinite(result):
                raise SettingError(self, f"must be a finite number, not {shown}")
        elif isinstance(value, (str, int, os.PathLike)):
            result = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
        else:
            raise SettingError(self, f"takes {self._wants()}, not {shown}")
        if self.choices and result not in self.choices:
            raise SettingError(self, f"must be one of {', '.join(self.choices)}, not {shown}")
        if (self.minimum is not None and result < self.minimum) or (self.maximum is not None and result > self.maximum):
            raise SettingError(self, f"must be {self._range_text()}, got {value}")
        if self.check is not None:
            try:
                self.check(result)
            except ValueError as exc:
                raise SettingError(self, str(exc)) from None
        return result

    def _wants(self) -> str:
        return {"int": "a whole number", "float": "a number", "choice": "one of " + ", ".join(self.choices)}.get(
            self.kind, "text")

    def as_dict(self) -> dict[str, Any]:
        """The declaration as JSON values (everything but ``check``)."""
        return {"name": self.name, "flag": self.flag, "kind": self.kind, "stages": list(self.stages),
                "default": self.default, "shown_default": self.shown_default, "choices": list(self.choices),
                "minimum": self.minimum, "maximum": self.maximum, "metavar": self.metavar, "help": self.help}


def _number(x: Optional[float]) -> str:
    return "" if x is None else (str(int(x)) if float(x).is_integer() else str(x))


def _face_target(value: str) -> None:
    if value != "largest" and not value.isdigit():
        raise ValueError(f"must be 'largest' or a track id (a whole number), not '{value}'")


OCCLUSION_CHOICES = ("auto", "none")  # or the path of an occlusion model (.onnx)


def _occlusion(value: str) -> None:
    if value not in OCCLUSION_CHOICES and not value.lower().endswith(".onnx"):
        raise ValueError(f"must be auto, none or an occlusion model file (.onnx), not '{value}'")


def _layers(value: str) -> None:
    try:
        layers.parse_groups(value)
    except ValueError:
        raise ValueError(f"must be all, none or a comma list of {', '.join(layers.GROUPS)}, not '{value}'") from None


SETTINGS: tuple[Setting, ...] = (
    Setting("plate_colorspace", "str", colour.DEFAULT_PLATE_SPACE, "OCIO colour space of the plate pixels",
            ("track", "render"), metavar="SPACE",
            default_text=f"{colour.DEFAULT_PLATE_SPACE}, the config's scene_linear"),
    Setting("ocio_config", "str", colour.DEFAULT_CONFIG,
            "OCIO config file or built-in URI ($OCIO is not read implicitly)", ("track", "render"), metavar="CONFIG"),
    Setting("plate_part", "str", "",
            "the part of a multi-part EXR plate whose R, G, B are tracked and swapped (e.g. beauty); every other "
            "part is written back as it is", ("track", "render"), metavar="PART",
            default_text="the first part with R, G and B"),
    Setting("face", "str", "largest",
            "the face to replace: 'largest' (largest mean size over the shot) or a track id; the track records it "
            "as its target",
            ("track",), metavar="largest|ID", check=_face_target),
    Setting("smooth", "float", 0.5, "landmark smoothing strength, zero-phase over the shot; 0 = off",
            ("track",), minimum=0.0, maximum=1.0, metavar="0..1"),
    Setting("device", "choice", "auto", "where the networks run; auto: the GPU when there is one, else the CPU",
            ("track", "render"), choices=runtime.DEVICES),
    Setting("color_match", "choice", colormatch.DEFAULT,
            "match the swap's colour to the plate's face, inside the matte: rct (Reinhard), lct (linear), "
            "hist (histogram) or none", ("render",), choices=colormatch.MODES),
    Setting("blend", "choice", blend.DEFAULT,
            "alpha: a plain over; multiband: the plate's light and contrast carried onto the face, "
            "blended in the model's log space", ("render",), choices=blend.MODES),
    Setting("erode", "float", 4.0, "shrink the face matte, in plate pixels (negative grows it)", ("render",),
            metavar="PX"),
    Setting("feather", "float", 12.0, "soften the face matte's edge, in plate pixels", ("render",),
            minimum=0.0, metavar="PX"),
    Setting("on_error", "choice", "fail",
            "a frame that cannot be read: fail stops (exit 4), skip leaves it out (exit 4), hold passes the "
            "plate through, flagged held", ("render",), choices=ON_ERROR),
    Setting("holdout", "str", None, "matte sequence the swap must not cover (hands, glasses), "
            "e.g. roto/hands.####.exr", ("render",), metavar="PATTERN"),
    Setting("holdout_channel", "str", "A", "channel of the holdout matte", ("render",), metavar="CHANNEL"),
    Setting("occlusion", "str", "auto",
            "what stays in front of the swap: auto (the hands the track found over the face), none, or an occlusion "
            "model from `facegraft occlusion train` (its occluders and the hands)", ("render",),
            metavar="auto|none|FILE.onnx", check=_occlusion),
    Setting("compression", "str", None, "EXR compression (zip, zips, piz, dwaa, dwab, none…) of the plate's part "
            "holding the RGB; the FaceGraft layer parts are always ZIP", ("render",),
            metavar="NAME", default_text="the plate's"),
    Setting("layers", "str", "all", "FaceGraft layer parts written besides the plate's parts: all, none, or a "
            "comma list of " + ", ".join(layers.GROUPS), ("render",), metavar="LIST", check=_layers),
    Setting("batch", "int", 4, "face crops per model call", ("render",), minimum=1, metavar="N"),
    Setting("threads", "int", 2, "CPU threads of the model (fixed, so renders are repeatable)", ("render",),
            minimum=1, metavar="N"),
    Setting("precision", "choice", "fp32",
            "arithmetic of the face model: fp32, or fp16 (a float32 model converted to float16 at load: faster "
            "on a GPU's tensor cores, outputs within 2e-3 of fp32; see docs/gpu.md)", ("render",),
            choices=fp16.PRECISIONS),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


def setting(name: str) -> Setting:
    """The setting called ``name`` (KeyError names the known ones)."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no setting '{name}' (settings: {', '.join(BY_NAME)})") from None


def default(name: str) -> Any:
    return setting(name).default


def for_stage(stage: str, settings: Iterable[Setting] = SETTINGS) -> tuple[Setting, ...]:
    """The settings ``stage`` takes, in declaration order."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage '{stage}' (one of {', '.join(STAGES)})")
    return tuple(s for s in settings if stage in s.stages)


def schema_json(settings: Sequence[Setting] = SETTINGS) -> str:
    """The declarations as JSON (what the Nuke node reads; ``facegraft settings --json`` prints it)."""
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise ValueError(f"a setting is declared twice: {names}")
    head = {"format": FORMAT, "generated_by": "facegraft settings --json"}
    lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    rows = [f"  {json.dumps(s.as_dict(), ensure_ascii=False)}" for s in settings]
    return "{\n" + "\n".join(lines) + '\n "settings": [\n' + ",\n".join(rows) + "\n ]\n}\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(settings: Sequence[Setting] = SETTINGS) -> str:
    """The settings table of docs/render_settings.md (``facegraft settings --markdown`` prints it)."""
    rows = ["| setting | flag | stages | takes | default | what it does |", "|---|---|---|---|---|---|"]
    for s in settings:
        if s.choices:
            takes = " / ".join(f"`{c}`" for c in s.choices)
        elif s.minimum is not None or s.maximum is not None:
            takes = f"{'whole number' if s.kind == 'int' else 'number'}, {s._range_text()}"
        else:
            takes = {"int": "whole number", "float": "number"}.get(s.kind, "text")
        flag = f"{s.flag} {s.metavar}" if s.metavar else s.flag
        rows.append(f"| `{s.name}` | `{_cell(flag)}` | {', '.join(s.stages)} | {_cell(takes)} | "
                    f"{_cell(s.shown_default)} | {_cell(s.help)} |")
    return "\n".join(rows) + "\n"


def _checked(name: str, value: Any) -> Any:
    try:
        return setting(name).parse(value)
    except SettingError as exc:
        raise FaceGraftError(str(exc)) from None


@dataclass
class RenderSettings:
    """Everything that decides a frame's pixels (written to the header as ``facegraft/params``).

    Defaults come from ``SETTINGS``; ``face`` (a track id, None: the track file's target) and
    ``forehead`` are the renderer's own. A built-in OCIO config alias (``ocio://studio-config-latest``)
    is resolved to the versioned URI it stands for with the installed OpenColorIO
    (``colour.resolve_config``), so the stamp names the config that made the pixels: the same
    alias under another OpenColorIO is another config, and its frames are rendered again.
    """

    plate_colorspace: str = default("plate_colorspace")
    ocio_config: str = default("ocio_config")
    plate_part: str = default("plate_part")  # the EXR part holding the RGB; "": the first part with R, G, B
    color_match: str = default("color_match")
    blend: str = default("blend")
    erode: float = default("erode")
    feather: float = default("feather")
    forehead: float = 0.2
    face: Optional[int] = None  # track id; None: the track file's target
    holdout: Optional[str] = default("holdout")  # sequence pattern
    holdout_channel: str = default("holdout_channel")
    occlusion: str = default("occlusion")  # auto (hands), none, or an occlusion model file
    compression: Optional[str] = default("compression")  # None: the plate's own
    precision: str = default("precision")  # the model's arithmetic (fp16 changes pixels, so it is stamped)
    layers: str = default("layers")  # FaceGraft layers written: all, none, or a comma list of swap, matte, stmap

    def __post_init__(self) -> None:
        for name in ("plate_colorspace", "ocio_config", "plate_part", "color_match", "blend", "erode", "feather",
                     "holdout", "holdout_channel", "occlusion", "compression", "layers"):
            setattr(self, name, _checked(name, getattr(self, name)))
        self.ocio_config = colour.resolve_config(self.ocio_config)
        self.groups: tuple[str, ...] = layers.parse_groups(self.layers)

    def params(self) -> dict[str, Any]:
        return {"plate_colorspace": self.plate_colorspace, "ocio_config": self.ocio_config,
                "plate_part": self.plate_part,
                "color_match": self.color_match, "blend": self.blend, "erode": self.erode, "feather": self.feather,
                "forehead": self.forehead, "face": self.face,
                "holdout": os.path.basename(self.holdout) if self.holdout else None,
                "occlusion": self.occlusion if self.occlusion in OCCLUSION_CHOICES else os.path.basename(self.occlusion),
                "holdout_channel": self.holdout_channel, "precision": self.precision}
