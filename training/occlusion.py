"""A shot's occlusion model: what passes in front of the face, learned from a few roto keyframes.

The compositor rotos the occluder (glasses, a hand, a prop) on three to five frames of the shot,
in any channel of an EXR sequence. Each keyframe's plate and roto are cut into the aligned face
crop (``align.crop`` with the shot track's transform, so the occluder is seen where it sits
on the face), and a small U-Net learns plate crop -> occluder matte from those few pairs with
heavy augmentation: shifts, turns, scales and flips, light and colour changes, noise and blur,
and the keyframes' occluders pasted onto each other's faces, so it learns what the occluder
looks like rather than where it was. The network is exported as an occlusion model file
(``facegraft.inference.models.occlusion``) that the renderer runs on every frame, and a preview
sheet shows its mattes on frames that were not keyframes.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import cv2
import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

from facegraft.inference.atomic import atomic_write_bytes
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour, exr
from facegraft.inference.io.frames import FrameSource, Plate
from facegraft.inference.io.sequence import SequencePattern, format_frames, parse_frames
from facegraft.inference.models import occlusion as occlusion_file
from facegraft.inference.progress import Progress
from facegraft.inference.track import align
from facegraft.inference.track.trackfile import ShotTrack

PathLike = Union[str, Path]
OPSET = 17
EMPTY = 0.5 / 255  # a roto crop whose every value is below this holds nothing


@dataclass
class OcclusionConfig:
    """How the model is trained; the defaults take under five minutes on two CPU cores."""

    res: int = 128
    coverage: str = "whole_face"
    steps: int = 1000
    batch: int = 6
    lr: float = 3e-3
    widths: tuple[int, ...] = (12, 24, 32, 48)
    threads: int = 1  # see train_occlusion
    seed: int = 0
    colorspace: str = colour.DEFAULT_MODEL_SPACE
    # augmentation
    turn: float = 15.0  # degrees either way
    zoom: float = 0.15  # scale 1 +- zoom
    shift: float = 0.1  # of the crop either way
    paste: float = 0.5  # chance a sample gets another keyframe's occluder pasted on it

    def check(self) -> None:
        if self.res < 32 or self.res % 16:
            raise FaceGraftError(f"--res {self.res} does not work here", hint="use a multiple of 16 from 32 up, e.g. 128")
        if self.coverage not in align.COVERAGES:
            raise FaceGraftError(f"unknown coverage '{self.coverage}'", hint=f"use one of: {', '.join(align.COVERAGES)}")
        if self.steps < 1 or self.batch < 1:
            raise FaceGraftError("--steps and --batch must be 1 or more")


@dataclass
class Keyframe:
    frame: int
    crop: np.ndarray  # [R, R, 3] model space
    matte: np.ndarray  # [R, R] 0..1, the roto in the crop


@dataclass
class OcclusionReport:
    path: Path
    keyframes: list[int]
    steps: int
    seconds: float
    final_loss: float
    preview: Optional[Path] = None
    preview_frames: list[int] = field(default_factory=list)
    keyframe_iou: float = 0.0  # the trained model on its own keyframes (a sanity check, not a score)


# -- keyframes ----------------------------------------------------------------------------------

def keyframe_numbers(text: Union[str, Sequence[int]], source: FrameSource, plate_path: str) -> list[int]:
    """The keyframes asked for (``1012,1040,1077`` or a range), each checked to be a plate frame."""
    frames = parse_frames(text) if isinstance(text, str) else [int(f) for f in text]
    if not frames:
        raise FaceGraftError("no keyframes given", hint="pass the frames you rotoed, e.g. --frames 1012,1040,1077")
    available = set(source.frames)
    for frame in frames:
        if frame not in available:
            raise FaceGraftError(f"keyframe {frame} is outside the plate's frames ({format_frames(source.frames)})",
                                 path=plate_path, frame=frame, hint="pick keyframes the plate has, and roto them")
    return sorted(set(frames))


def read_roto(roto: SequencePattern, frame: int, channel: str, plate: Plate) -> np.ndarray:
    """The roto of ``frame`` as ``[H, W]`` 0..1 over the plate's data window (its own data window
    placed by the display windows, which must be the plate's)."""
    path = roto.path(frame)
    if not Path(path).is_file():
        raise FaceGraftError("the roto has no file for this keyframe", path=path, frame=frame,
                             hint="render the roto for every keyframe, or leave the frame out of --frames")
    image = exr.read_image(path, frame)
    if image.display_window != tuple(plate.display_window):
        x, y, w, h = image.display_window
        px, py, pw, ph = plate.display_window
        raise FaceGraftError(f"the roto is {w}x{h} (display window at {x},{y}) but the plate is {pw}x{ph} "
                             f"(at {px},{py})", path=path, frame=frame,
                             hint="render the roto at the plate's format (a Reformat in Nuke), or roto the plate itself")
    if channel not in image.channels:
        raise FaceGraftError(f"the roto has no channel '{channel}' (channels: {', '.join(image.channels)})",
                             path=path, frame=frame, hint="pick the matte's channel with --roto-channel")
    values = np.clip(np.nan_to_num(image.get([channel])[..., 0], nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    h, w = plate.shape
    out = np.zeros((h, w), np.float32)
    spec = image.spec
    rx, ry = spec.x - spec.full_x - plate.origin[0], spec.y - spec.full_y - plate.origin[1]
    x0, y0, x1, y1 = max(rx, 0), max(ry, 0), min(rx + spec.width, w), min(ry + spec.height, h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = values[y0 - ry:y1 - ry, x0 - rx:x1 - rx]
    return out


def face_crop(plate: Plate, transform: np.ndarray, cfg: OcclusionConfig, to_model: colour.Converter) -> np.ndarray:
    """The plate's aligned face crop in model space, as the renderer cuts it for the model."""
    crop = align.crop(plate.rgb, transform, cfg.res, cfg.coverage, origin=plate.origin, interpolation="cubic")
    return np.asarray(to_model(crop), np.float32)


def load_keyframes(source: FrameSource, track: ShotTrack, roto: SequencePattern, channel: str, frames: Sequence[int],
                   cfg: OcclusionConfig, to_model: colour.Converter, plate_path: str) -> list[Keyframe]:
    """Each keyframe's face crop and its roto in that crop; refuses a keyframe without the face
    and a roto empty on every keyframe."""
    keys = []
    for frame in frames:
        face = track.face(frame)
        if face is None:
            raise FaceGraftError("the shot track has no target face on this keyframe", path=plate_path, frame=frame,
                                 hint="pick keyframes where the face is tracked (`facegraft track` lists no-face frames)")
        plate = source.read(frame)
        matte = read_roto(roto, frame, channel, plate)
        cut = align.crop(matte, face.transform, cfg.res, cfg.coverage, origin=plate.origin, interpolation="linear")
        keys.append(Keyframe(frame, face_crop(plate, face.transform, cfg, to_model), np.clip(cut, 0.0, 1.0)))
    if all(k.matte.max() < EMPTY for k in keys):
        raise FaceGraftError(f"the roto is empty over the face on every keyframe ({format_frames(frames)})",
                             path=str(roto), hint="check --roto-channel (the matte's channel) and that the roto "
                                                  "covers the occluder on at least one keyframe")
    return keys


# -- the network --------------------------------------------------------------------------------

def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SegNet(nn.Module):
    """A small U-Net: crop ``[N, 3, R, R]`` (model space) -> occlusion logits ``[N, 1, R, R]``.

    It works at half the crop's resolution and below (a strided first convolution), which keeps a
    training step cheap on a CPU; a last pair of convolutions at full resolution, seeing the crop
    and the upsampled logits, puts the edges back where the pixels say."""

    def __init__(self, widths: Sequence[int] = (12, 24, 32, 48)) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        self.down = nn.ModuleList()
        cin = widths[0]
        for w in widths:
            self.down.append(_block(cin, w))
            cin = w
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 1, 1)
        self.refine = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        y = self.stem(x)
        for i, block in enumerate(self.down):
            y = block(y if i == 0 else F.max_pool2d(y, 2))
            skips.append(y)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            y = block(torch.cat([F.interpolate(y, scale_factor=2.0, mode="bilinear", align_corners=False), skip], 1))
        coarse = F.interpolate(self.head(y), scale_factor=2.0, mode="bilinear", align_corners=False)
        return coarse + self.refine(torch.cat([x, coarse], 1))


class Probability(nn.Module):
    """The exported graph: logits -> 0..1."""

    def __init__(self, net: SegNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(face))


# -- augmentation -------------------------------------------------------------------------------

def _uniform(n: int, spread: float, g: torch.Generator) -> torch.Tensor:
    return (torch.rand(n, generator=g) * 2 - 1) * spread


def _affine_grid(n: int, res: int, cfg: OcclusionConfig, g: torch.Generator) -> torch.Tensor:
    """Sampling grids of random similarity transforms (with mirror images), ``[n, R, R, 2]``."""
    angle = _uniform(n, math.radians(cfg.turn), g)
    scale = 1.0 + _uniform(n, cfg.zoom, g)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, _uniform(n, 2 * cfg.shift, g)], 1),
                         torch.stack([sin * flip, cos, _uniform(n, 2 * cfg.shift, g)], 1)], 1)
    return F.affine_grid(theta, [n, 1, res, res], align_corners=False)


def _warp(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _light(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Exposure, contrast, colour balance, noise and blur changes (in the model's log space)."""
    n = x.shape[0]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = (1.0 + _uniform(n, 0.2, g)).view(n, 1, 1, 1)
    offset = _uniform(n, 0.08, g).view(n, 1, 1, 1)
    balance = _uniform(n * 3, 0.04, g).view(n, 3, 1, 1)
    x = (x - mean) * contrast + mean + offset + balance
    x = x + torch.randn(x.shape, generator=g) * (torch.rand(n, 1, 1, 1, generator=g) * 0.02)
    blur = torch.rand(n, generator=g) < 0.25
    if blur.any():
        kernel = torch.tensor([1.0, 2.0, 1.0]) / 4.0
        k2 = (kernel[:, None] * kernel[None, :]).expand(3, 1, 3, 3)
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), k2, groups=3)
    return x


def augment(crops: torch.Tensor, mattes: torch.Tensor, cfg: OcclusionConfig,
            g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A training batch from the keyframes (``crops`` ``[K, 3, R, R]``, ``mattes`` ``[K, 1, R, R]``):
    random keyframes, each moved, maybe given another keyframe's occluder (moved on its own), and
    relit; the mattes follow the pixels."""
    k, res = crops.shape[0], crops.shape[-1]
    n = cfg.batch
    both = torch.cat([crops, mattes], 1)
    pick = torch.randint(k, (n,), generator=g)
    moved = _warp(both[pick], _affine_grid(n, res, cfg, g))
    x, y = moved[:, :3], moved[:, 3:]
    donors = torch.randint(k, (n,), generator=g)
    paste = (torch.rand(n, generator=g) < cfg.paste) & (mattes[donors].flatten(1).amax(1) > EMPTY)
    if paste.any():
        m = int(paste.sum())
        donor = _warp(both[donors[paste]], _affine_grid(m, res, cfg, g))
        alpha = donor[:, 3:]
        x[paste] = donor[:, :3] * alpha + x[paste] * (1 - alpha)
        y[paste] = alpha + y[paste] * (1 - alpha)
    return _light(x, g), y.clamp(0.0, 1.0)


# -- training -----------------------------------------------------------------------------------

def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice (the occluder is often a small part of the crop)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1)
    return bce + dice.mean()


def train_net(keys: Sequence[Keyframe], cfg: OcclusionConfig, progress: Optional[Progress] = None) -> tuple[SegNet, float]:
    """Train a SegNet on the keyframes; returns it (in eval mode) and the last steps' mean loss.

    On ``cfg.threads`` CPU threads (1 by default: the network is small, and PyTorch's OpenMP
    threads wait for each other spinning, so on cores busy with other work two threads ran 20
    times slower than one here); the process's thread count is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    try:
        return _train(keys, cfg, progress)
    finally:
        torch.set_num_threads(before)


def _train(keys: Sequence[Keyframe], cfg: OcclusionConfig, progress: Optional[Progress]) -> tuple[SegNet, float]:
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    crops = torch.from_numpy(np.stack([k.crop for k in keys])).permute(0, 3, 1, 2).float().contiguous()
    mattes = torch.from_numpy(np.stack([k.matte for k in keys]))[:, None].float()
    net = SegNet(cfg.widths)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.15)
    net.train()
    recent: list[float] = []
    for _ in range(cfg.steps):
        x, y = augment(crops, mattes, cfg, g)
        loss = loss_fn(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        recent = (recent + [float(loss.detach())])[-20:]
        if progress is not None:
            progress.update(loss=f"{np.mean(recent):.3f}")
    net.eval()
    return net, float(np.mean(recent)) if recent else float("nan")


def predict(net: nn.Module, crops: np.ndarray) -> np.ndarray:
    """``[N, R, R]`` occlusion for ``[N, R, R, 3]`` crops with the torch network."""
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(crops.transpose(0, 3, 1, 2), np.float32))
        return torch.sigmoid(net(x))[:, 0].numpy()


def iou(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
    """Intersection over union of two mattes thresholded at ``threshold`` (1 when both are empty)."""
    a, b = pred >= threshold, truth >= threshold
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def to_onnx(net: SegNet, res: int) -> onnx.ModelProto:
    """The trained network as an ONNX graph ``face -> occlusion`` with a dynamic batch."""
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice is not for users
        torch.onnx.export(
            Probability(net).eval(), (torch.rand(2, 3, res, res),), buffer,  # type: ignore[arg-type]
            dynamo=False, opset_version=OPSET, input_names=[occlusion_file.INPUT_NAME],
            output_names=[occlusion_file.OUTPUT_NAME], do_constant_folding=True,
            dynamic_axes={occlusion_file.INPUT_NAME: {0: "batch"}, occlusion_file.OUTPUT_NAME: {0: "batch"}})
    return onnx.load_from_string(buffer.getvalue())


# -- the preview sheet --------------------------------------------------------------------------

def _tile(crop: np.ndarray, matte: np.ndarray, space: str, config: str, tint: tuple[int, int, int],
          label: str) -> np.ndarray:
    """A crop shown for the display, the matte tinted over it and outlined."""
    shown = colour.to_display_uint8(crop, space, config)[..., ::-1].copy()  # BGR for OpenCV
    overlay = shown.copy()
    overlay[matte >= 0.5] = tint
    out = cv2.addWeighted(overlay, 0.45, shown, 0.55, 0)
    contours, _ = cv2.findContours((matte >= 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, tint, 1)
    scale = max(1, int(round(256 / out.shape[0])))
    out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def preview_sheet(path: PathLike, keys: Sequence[Keyframe], others: Sequence[tuple[int, np.ndarray, np.ndarray]],
                  cfg: OcclusionConfig, config: str, columns: int = 6) -> Path:
    """A PNG: the keyframes with their roto (green), then frames that were not keyframes with the
    model's matte (red), each outlined at 0.5."""
    tiles = [_tile(k.crop, k.matte, cfg.colorspace, config, (80, 220, 80), f"key {k.frame}") for k in keys]
    tiles += [_tile(crop, matte, cfg.colorspace, config, (60, 60, 235), str(frame)) for frame, crop, matte in others]
    blank = np.zeros_like(tiles[0])
    rows = []
    for start in range(0, len(tiles), columns):
        row = tiles[start:start + columns]
        rows.append(np.hstack(row + [blank] * (columns - len(row))))
    ok, data = cv2.imencode(".png", np.vstack(rows))
    if not ok:
        raise FaceGraftError("could not encode the preview sheet", path=str(path))
    return atomic_write_bytes(path, data.tobytes())


def preview_frames(source: FrameSource, track: ShotTrack, keyframes: Sequence[int], count: int = 12) -> list[int]:
    """Up to ``count`` frames spread over the shot that are not keyframes and have the face."""
    candidates = [f for f in source.frames if f not in set(keyframes) and track.face(f) is not None]
    if len(candidates) <= count:
        return candidates
    return [candidates[int(i)] for i in np.linspace(0, len(candidates) - 1, count).round()]


# -- the whole command --------------------------------------------------------------------------

def train_occlusion(source: FrameSource, track: ShotTrack, roto: str, *, frames: Union[str, Sequence[int]], out: PathLike,
                    channel: str = "A", cfg: Optional[OcclusionConfig] = None, plate_path: str = "",
                    preview: Optional[PathLike] = None, config: str = colour.DEFAULT_CONFIG,
                    plate_space: Optional[str] = None, json_progress: bool = False) -> OcclusionReport:
    """Train the shot's occlusion model from the roto keyframes and write it to ``out`` (and its
    preview sheet to ``preview``, default next to it as ``NAME.preview.png``)."""
    cfg = cfg or OcclusionConfig()
    cfg.check()
    plate_path = plate_path or getattr(source, "name", "plate")
    roto_seq = SequencePattern(roto)
    keyframes = keyframe_numbers(frames, source, plate_path)
    space = str(plate_space or getattr(source, "colorspace", None) or colour.DEFAULT_PLATE_SPACE)
    to_model = colour.converter(space, cfg.colorspace, config)
    keys = load_keyframes(source, track, roto_seq, channel, keyframes, cfg, to_model, plate_path)
    start = time.perf_counter()
    with Progress("train occlusion", cfg.steps, json_lines=json_progress, unit="step") as progress:
        net, final = train_net(keys, cfg, progress)
    seconds = time.perf_counter() - start
    first = source.read(keyframes[0])
    plate_meta = {"display_window": [int(v) for v in first.display_window], "plate": str(plate_path),
                  "roto": str(roto), "roto_channel": channel, "keyframes": keyframes}
    provenance = {"steps": cfg.steps, "seconds": round(seconds, 1), "config": _config_dict(cfg)}
    model = occlusion_file.stamp(to_onnx(net, cfg.res), resolution=cfg.res, coverage=cfg.coverage, plate=plate_meta,
                                 provenance=provenance, colorspace=cfg.colorspace, ocio_config=config)
    path = occlusion_file.save(model, out)
    report = OcclusionReport(path=path, keyframes=keyframes, steps=cfg.steps, seconds=seconds, final_loss=final)
    report.keyframe_iou = float(np.mean([iou(p, k.matte) for p, k in zip(predict(net, np.stack([k.crop for k in keys])), keys)]))
    shown = preview_frames(source, track, keyframes)
    others = []
    for frame in shown:
        face = track.face(frame)
        assert face is not None
        crop = face_crop(source.read(frame), face.transform, cfg, to_model)
        others.append((frame, crop, predict(net, crop[None])[0]))
    sheet = Path(preview) if preview else path.with_name(path.name.rsplit(".", 1)[0] + ".preview.png")
    report.preview = preview_sheet(sheet, keys, others, cfg, config)
    report.preview_frames = shown
    return report


def _config_dict(cfg: OcclusionConfig) -> dict:
    data = asdict(cfg)
    data["widths"] = list(cfg.widths)
    return data
