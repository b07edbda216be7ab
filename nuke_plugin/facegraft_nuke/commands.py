"""The FaceGraft CLI command lines the node runs (pure: no ``nuke``, easy to check).

Choices and defaults come from ``render_settings.json`` beside this file, which FaceGraft
writes from its settings declarations (``facegraft settings --json``): the node offers what
the CLI accepts, with the CLI's defaults, and restates neither.
"""
import json
import os
import re
from typing import Any, Dict, List, NamedTuple, Optional, Set

SETTINGS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "render_settings.json")
SETTINGS_FORMAT = 1


class SettingsFileError(Exception):
    """The settings file is missing or not one this plugin reads."""


def load_settings(path: str = SETTINGS_FILE) -> Dict[str, Dict[str, Any]]:
    """The declarations in ``path``, by setting name."""
    try:
        with open(path, encoding="utf-8") as handle:
            doc = json.load(handle)
    except (OSError, ValueError) as exc:
        raise SettingsFileError(f"FaceGraft cannot read its settings file {path}: {exc}. "
                                "Reinstall the FaceGraft Nuke plugin.") from None
    if not isinstance(doc, dict) or doc.get("format") != SETTINGS_FORMAT or not isinstance(doc.get("settings"), list):
        raise SettingsFileError(f"{path} is not a FaceGraft settings file of format {SETTINGS_FORMAT}. "
                                "Install the Nuke plugin that came with your FaceGraft.")
    return {str(entry["name"]): entry for entry in doc["settings"]}


SETTINGS = load_settings()


def default(name: str) -> Any:
    """The CLI's default of a setting."""
    return SETTINGS[name]["default"]


def choices(name: str) -> List[str]:
    """What a choice setting accepts, in menu order."""
    return [str(c) for c in SETTINGS[name]["choices"]]


# Knob name -> the setting it shows (the gizmo's knobs and menus are tested against these).
KNOB_SETTINGS = {
    "face": "face", "smoothing": "smooth", "plate_colorspace": "plate_colorspace", "ocio_config": "ocio_config",
    "erode": "erode", "feather": "feather", "color_match": "color_match", "blend": "blend", "device": "device",
    "on_error": "on_error", "holdout_channel": "holdout_channel", "farm_engine": "engine", "farm_chunk": "chunk",
}
# The holdout channel menu names channels by colour.
HOLDOUT_CHANNELS = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}
# The occlusion menu: the CLI's ``auto`` and ``none``, or the shot's occlusion model the node trained
# from its holdout input (``--occlusion`` gets that file).
SHOT_MODEL = "shot model"
OCCLUSION_MENU = ("auto", "none", SHOT_MODEL)


class Settings(NamedTuple):
    """Everything one render of one FaceGraft node needs."""

    cli: List[str]
    plate: str
    model: str
    track: str
    out: str
    first: int
    last: int
    face: str = default("face")
    smoothing: float = default("smooth")
    plate_colorspace: str = ""  # empty: not passed, the CLI's default applies
    ocio_config: str = ""  # empty: not passed, the CLI's default applies
    erode: float = default("erode")
    feather: float = default("feather")
    color_match: str = default("color_match")
    blend: str = default("blend")
    device: str = default("device")
    on_error: str = default("on_error")
    holdout: Optional[str] = None
    holdout_channel: str = default("holdout_channel")
    occlusion: str = default("occlusion")  # auto, none, or the occlusion model's file


def frames(settings: Settings) -> str:
    return f"{settings.first}-{settings.last}"


def _frames_arg(settings: Settings) -> str:
    """``--frames=RANGE`` in one word, so a range starting below 0 is not read as an option."""
    return "--frames=" + frames(settings)


def _smoothing(settings: Settings) -> str:
    """The smoothing strength within the CLI's range (the knob's slider can be typed past it)."""
    declared = SETTINGS["smooth"]
    return _number(min(float(declared["maximum"]), max(float(declared["minimum"]), float(settings.smoothing))))


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _colour(settings: Settings) -> List[str]:
    argv = []
    if settings.plate_colorspace:
        argv += ["--plate-colorspace", settings.plate_colorspace]
    if settings.ocio_config:
        argv += ["--ocio-config", settings.ocio_config]
    return argv


def _track_on_error(settings: Settings) -> List[str]:
    """Tracking skips an unreadable frame when the render will skip or hold it (else it stops)."""
    return ["--on-error", "skip"] if settings.on_error in ("skip", "hold") else []


def track_argv(settings: Settings) -> List[str]:
    """``facegraft track``: the shot track, once per plate and tracking settings."""
    return settings.cli + [
        "track", settings.plate, "--out", settings.track, _frames_arg(settings),
        "--face", settings.face, "--smooth", _smoothing(settings), "--device", settings.device,
    ] + _colour(settings) + _track_on_error(settings) + ["--json-progress"]


def track_key(settings: Settings) -> Dict[str, Any]:
    """What the shot track depends on (the stamp that decides whether to track again)."""
    return {"plate": settings.plate, "frames": frames(settings), "face": settings.face,
            "smooth": _smoothing(settings), "plate_colorspace": settings.plate_colorspace,
            "ocio_config": settings.ocio_config, "on_error": _track_on_error(settings)}


def render_key(settings: Settings) -> Dict[str, Any]:
    """The render settings of a render (besides the model file's content, which FaceGraft stamps itself)."""
    return {"plate": settings.plate, "model": settings.model, "frames": frames(settings),
            "options": _render_options(settings) + _colour(settings) + _holdout(settings)}


def _render_options(settings: Settings) -> List[str]:
    return [
        "--color-match", settings.color_match, "--blend", settings.blend,
        "--erode", _number(settings.erode), "--feather", _number(settings.feather), "--on-error", settings.on_error,
        "--occlusion", settings.occlusion,
    ]


def _holdout(settings: Settings) -> List[str]:
    if not settings.holdout:
        return []
    return ["--holdout", settings.holdout, "--holdout-channel", settings.holdout_channel]


def render_argv(settings: Settings, overwrite: bool = False) -> List[str]:
    """``facegraft render``: the EXR layers of every frame in the range."""
    argv = settings.cli + [
        "render", settings.plate, "--track", settings.track, "--model", settings.model, "--out", settings.out,
        _frames_arg(settings), "--device", settings.device,
    ] + _render_options(settings) + _colour(settings) + _holdout(settings)
    if overwrite:
        argv.append("--overwrite")
    return argv + ["--json-progress"]


class FarmOptions(NamedTuple):
    """How a node's job goes to the farm (engine, chunking, name, scheduling)."""

    engine: str
    chunk: int
    name: str
    job_dir: str
    priority: int = 50
    pool: str = ""
    group: str = ""
    tags: str = ""
    facegraft_exe: str = ""
    dry_run: bool = False


def farm_argv(settings: Settings, farm: FarmOptions) -> List[str]:
    """``facegraft farm submit``: the same track and render as farm tasks, with the node's settings."""
    chunk = max(int(SETTINGS["chunk"]["minimum"]), int(farm.chunk))
    argv = settings.cli + [
        "farm", "submit", settings.plate, "--model", settings.model, "--out", settings.out,
        "--track", settings.track, _frames_arg(settings), "--chunk", str(chunk), "--engine", farm.engine,
        "--name", farm.name, "--job-dir", farm.job_dir, "--priority", str(int(farm.priority)),
        "--face", settings.face, "--smooth", _smoothing(settings), "--device", settings.device,
    ] + _render_options(settings) + _colour(settings) + _holdout(settings)
    for flag, value in (("--pool", farm.pool), ("--group", farm.group), ("--tags", farm.tags),
                        ("--facegraft-exe", farm.facegraft_exe)):
        if value:
            argv += [flag, value]
    if farm.dry_run:
        argv.append("--dry-run")
    return argv


class Training(NamedTuple):
    """How the node trains the shot's occlusion model from its holdout input."""

    roto: str  # the holdout input written into the cache (its keyframes)
    keyframes: List[int]
    out: str  # the occlusion model file
    steps: int = 1000
    res: int = 128


def parse_keyframes(text: str) -> List[int]:
    """``1012, 1040 1077`` or ``1001-1003,1010`` -> the frames, sorted; ValueError says what is wrong."""
    frames: Set[int] = set()
    for word in re.split(r"[,\s]+", text.strip()):
        if not word:
            continue
        match = re.match(r"^(-?\d+)(?:-(-?\d+))?$", word)
        if match is None:
            raise ValueError(f"'{word}' is not a frame or a range (e.g. 1012,1040,1077 or 1001-1003)")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise ValueError(f"the range {word} ends before it starts")
        frames.update(range(first, last + 1))
    return sorted(frames)


def occlusion_argv(settings: Settings, training: Training) -> List[str]:
    """``facegraft occlusion train``: the shot's occlusion model from the holdout's keyframes, with a crop
    that holds the face model's (``--model``)."""
    return settings.cli + [
        "occlusion", "train", settings.plate, "--track", settings.track, "--roto", training.roto,
        "--roto-channel", settings.holdout_channel, "--frames", ",".join(str(f) for f in training.keyframes),
        "--out", training.out, "--model", settings.model, "--steps", str(int(training.steps)),
        "--res", str(int(training.res)),
    ] + _colour(settings) + ["--json-progress"]


def model_info_argv(cli: List[str], model: str) -> List[str]:
    return cli + ["model-info", model, "--json"]


def describe_model(info: dict) -> str:
    """One line for the node from ``facegraft model-info --json``: resolution, identities, colour space."""
    if info.get("kind") == "occlusion":
        keys = ", ".join(str(f) for f in info.get("keyframes") or [])
        return ("an occlusion model (keyframes " + (keys or "?") + "), not a face model: pick the face model here; "
                "Train occlusion makes the node's own")
    parts = []
    resolution = info.get("resolution")
    if resolution:
        parts.append(f"{resolution} px")
    identities = info.get("identities")
    names = identities if isinstance(identities, dict) else info  # model-info --json: top-level source/target
    if names.get("source") or names.get("target"):
        parts.append("{} \u2192 {}".format(names.get("source") or "?", names.get("target") or "?"))
    colorspace = info.get("colorspace") or info.get("colourspace")
    if colorspace:
        parts.append(str(colorspace))
    coverage = info.get("coverage")
    if coverage:
        parts.append(f"coverage {coverage}")
    return "  |  ".join(parts) if parts else "model has no description"
