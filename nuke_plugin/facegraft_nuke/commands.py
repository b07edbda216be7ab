"""The FaceGraft CLI command lines the node runs (pure: no ``nuke``, easy to check)."""
from typing import List, NamedTuple, Optional

COLOR_MATCH = ["none", "rct", "lct", "hist"]
BLEND = ["alpha", "multiband"]
DEVICES = ["auto", "cuda", "tensorrt", "cpu"]
ON_ERROR = ["fail", "skip", "hold"]
FARM_ENGINES = ["openjd", "opencue", "deadline"]
HOLDOUT_CHANNELS = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}


class Settings(NamedTuple):
    """Everything one render of one FaceGraft node needs."""

    cli: List[str]
    plate: str
    model: str
    track: str
    out: str
    first: int
    last: int
    face: str = "largest"
    smoothing: float = 0.5
    plate_colorspace: str = ""
    ocio_config: str = ""
    erode: float = 4
    feather: float = 12
    color_match: str = "rct"
    blend: str = "alpha"
    device: str = "auto"
    on_error: str = "fail"
    holdout: Optional[str] = None
    holdout_channel: str = "A"


def frames(settings: Settings) -> str:
    return f"{settings.first}-{settings.last}"


def _frames_arg(settings: Settings) -> str:
    """``--frames=RANGE`` in one word, so a range starting below 0 is not read as an option."""
    return "--frames=" + frames(settings)


def _smoothing(settings: Settings) -> str:
    """The smoothing strength within the CLI's 0..1 (the knob's slider can be typed past it)."""
    return _number(min(1.0, max(0.0, float(settings.smoothing))))


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _colour(settings: Settings) -> List[str]:
    argv = []
    if settings.plate_colorspace:
        argv += ["--plate-colorspace", settings.plate_colorspace]
    if settings.ocio_config:
        argv += ["--ocio-config", settings.ocio_config]
    return argv


def track_argv(settings: Settings) -> List[str]:
    """``facegraft track``: the shot track, once per plate and tracking settings."""
    return settings.cli + [
        "track", settings.plate, "--out", settings.track, _frames_arg(settings),
        "--face", settings.face, "--smooth", _smoothing(settings), "--device", settings.device,
    ] + _colour(settings) + ["--json-progress"]


def _render_options(settings: Settings) -> List[str]:
    return [
        "--color-match", settings.color_match, "--blend", settings.blend,
        "--erode", _number(settings.erode), "--feather", _number(settings.feather), "--on-error", settings.on_error,
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


def farm_argv(settings: Settings, engine: str, chunk: int) -> List[str]:
    """``facegraft farm submit``: the same track and render as farm tasks, with the node's settings."""
    return settings.cli + [
        "farm", "submit", settings.plate, "--model", settings.model, "--out", settings.out,
        "--track", settings.track, _frames_arg(settings), "--chunk", str(max(1, int(chunk))), "--engine", engine,
        "--face", settings.face, "--smooth", _smoothing(settings), "--device", settings.device,
    ] + _render_options(settings) + _colour(settings) + _holdout(settings)


def model_info_argv(cli: List[str], model: str) -> List[str]:
    return cli + ["model-info", model, "--json"]


def describe_model(info: dict) -> str:
    """One line for the node from ``facegraft model-info --json``: resolution, identities, colour space."""
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
