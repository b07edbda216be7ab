"""A faceset on disk: one identity's aligned face crops, ready for training.

Folder layout (format version 1)::

    faceset.json    index: identity, resolution, coverage, colour space, per-face provenance
    faces.f16       float16 [N, R, R, 3] crops in the model's colour space (ACEScct), raw memmap
    mattes.u8       uint8   [N, R, R, K] mattes (names in faceset.json, e.g. face, left_eye, ...)
    landmarks.f32   float32 [N, P, 2]    face-mesh landmarks in crop pixel coordinates
    preview.png     contact sheet (sRGB) of a sample of the faces

``faceset.json`` is the source of truth for the count: data files are appended first and the
index is replaced atomically afterwards, so an interrupted extract leaves the faceset as it was
(the extra bytes are cut off on the next append).

A second extract into an existing faceset **appends** when identity, resolution, coverage and
colour space match, skips faces already there (same source file, frame and track), and refuses
otherwise.

A face is dropped as a near duplicate of the last kept one when its landmarks moved less than
``min_motion`` on average **and** neither eye nor the mouth opened or closed by more than
``DUPLICATE_OPENNESS``: a blink moves a handful of the 478 points, too few for the mean motion to
notice, and a blink is exactly the rare frame a faceset must keep.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import cv2
import numpy as np

from facegraft.inference.atomic import atomic_write_text
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour, contact_sheet
from facegraft.inference.track import expression

FORMAT = "facegraft-faceset"
VERSION = 1
INDEX = "faceset.json"
FACES, MATTES, LANDMARKS, PREVIEW = "faces.f16", "mattes.u8", "landmarks.f32", "preview.png"
MATTE_NAMES = ("face", "left_eye", "right_eye", "mouth")
FEATURE_MATTES = ("left_eye", "right_eye", "mouth")
EXPRESSION = "expression"  # per-face record key: ``expression.record`` of the face's landmarks
DEFAULT_MIN_MOTION = 0.001  # near-duplicate threshold: mean landmark motion in the aligned crop, fraction of its size
DUPLICATE_OPENNESS = 0.02  # an eye or the mouth opening or closing more than this is never a near duplicate

PathLike = Union[str, Path]


@dataclass
class Faceset:
    """An opened faceset; pixel arrays are read-only memmaps."""

    path: Path
    identity: str
    resolution: int
    coverage: str
    colorspace: str
    ocio_config: str
    template: str
    matte_names: list[str]
    points: int
    entries: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.entries)

    def _map(self, name: str, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
        if len(self) == 0:
            return np.zeros((0, *shape), dtype)
        return np.memmap(self.path / name, dtype=dtype, mode="r", shape=(len(self), *shape))

    @property
    def faces(self) -> np.ndarray:
        """``[N,R,R,3]`` float16, model colour space."""
        return self._map(FACES, np.float16, (self.resolution, self.resolution, 3))

    @property
    def mattes(self) -> np.ndarray:
        """``[N,R,R,K]`` uint8, K = ``len(matte_names)``."""
        return self._map(MATTES, np.uint8, (self.resolution, self.resolution, len(self.matte_names)))

    @property
    def landmarks(self) -> np.ndarray:
        """``[N,P,2]`` float32 in crop pixels."""
        return self._map(LANDMARKS, np.float32, (self.points, 2))

    def measures(self) -> np.ndarray:
        """``[N, len(expression.FIELDS)]`` float64: eye openness (image left, right), mouth openness,
        yaw, pitch, roll of every face. A face's ``expression`` record (``expression.record``, stored at
        extraction: openness from the raw landmarks, pose in 3-D) where it has one; otherwise measured
        on the stored landmarks (smoothed and 2-D: a short blink reads half shut, pose is the 2-D
        estimate); ``unmeasured()`` counts those."""
        out = expression.measures(np.asarray(self.landmarks, np.float64)) if len(self) else np.zeros((0, len(expression.FIELDS)))
        for i, entry in enumerate(self.entries):
            if isinstance(entry.get(EXPRESSION), dict):
                stored = expression.from_record(entry[EXPRESSION])
                out[i] = np.where(np.isfinite(stored), stored, out[i])
        return out

    def unmeasured(self) -> int:
        """Faces without a stored ``expression`` record (``measures`` falls back to the stored landmarks)."""
        return sum(1 for entry in self.entries if not isinstance(entry.get(EXPRESSION), dict))

    def matte(self, name: str) -> np.ndarray:
        """One matte for every face, ``[N,R,R]`` float32 0..1."""
        return self.mattes[..., self.matte_names.index(name)].astype(np.float32) / 255.0

    def header(self) -> dict:
        return {
            "format": FORMAT, "version": VERSION, "identity": self.identity, "resolution": self.resolution,
            "coverage": self.coverage, "colorspace": self.colorspace, "ocio_config": self.ocio_config,
            "template": self.template, "mattes": list(self.matte_names), "points": self.points,
        }


def _sizes(fs: Faceset, count: int) -> dict[str, int]:
    r = fs.resolution
    return {FACES: count * r * r * 3 * 2, MATTES: count * r * r * len(fs.matte_names), LANDMARKS: count * fs.points * 2 * 4}


def open_faceset(path: PathLike, *, allow_empty: bool = False) -> Faceset:
    """Open a faceset folder; FaceGraftError says what is wrong with it."""
    folder = Path(path)
    index = folder / INDEX
    if not index.is_file():
        raise FaceGraftError("not a faceset (no faceset.json)", path=str(folder),
                             hint="make one with `facegraft extract PLATE --identity NAME --out FOLDER`")
    try:
        data = json.loads(index.read_text())
    except ValueError as exc:
        raise FaceGraftError(f"faceset.json is not valid JSON ({exc})", path=str(index),
                             hint="extract the faceset again into a new folder") from exc
    if data.get("format") != FORMAT or not isinstance(data.get("version"), int):
        raise FaceGraftError("faceset.json is not a FaceGraft faceset index", path=str(index))
    if data["version"] > VERSION:
        raise FaceGraftError(f"faceset format version {data['version']} is newer than this FaceGraft reads ({VERSION})",
                             path=str(index), hint="update FaceGraft")
    fs = Faceset(path=folder, identity=data["identity"], resolution=int(data["resolution"]), coverage=data["coverage"],
                 colorspace=data["colorspace"], ocio_config=data["ocio_config"], template=data.get("template", ""),
                 matte_names=list(data["mattes"]), points=int(data["points"]), entries=list(data["faces"]))
    if not fs.entries and not allow_empty:
        raise FaceGraftError(f"the faceset of '{fs.identity}' holds no faces", path=str(folder),
                             hint="extract again with frames where the face is visible (check --frames and --face)")
    for name, size in _sizes(fs, len(fs)).items():
        actual = (folder / name).stat().st_size if (folder / name).is_file() else -1
        if actual < size:
            raise FaceGraftError(f"{name} is shorter than faceset.json says ({actual} < {size} bytes)",
                                 path=str(folder / name), hint="the faceset is damaged: extract it again")
    return fs


def _write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=1))


class FacesetWriter:
    """Adds faces to a new or existing faceset; ``close()`` commits the index and the preview."""

    def __init__(
        self,
        path: PathLike,
        *,
        identity: str,
        resolution: int,
        coverage: str,
        colorspace: str,
        ocio_config: str = colour.DEFAULT_CONFIG,
        template: str = "",
        points: int = 478,
        min_motion: float = DEFAULT_MIN_MOTION,
        matte_names: tuple[str, ...] = MATTE_NAMES,
    ) -> None:
        self.path = Path(path)
        self.min_motion = float(min_motion) * resolution
        wanted = Faceset(path=self.path, identity=identity, resolution=int(resolution), coverage=coverage,
                         colorspace=colorspace, ocio_config=ocio_config, template=template,
                         matte_names=list(matte_names), points=int(points))
        if (self.path / INDEX).is_file():
            existing = open_faceset(self.path, allow_empty=True)
            mine, theirs = wanted.header(), existing.header()
            different = [k for k in ("identity", "resolution", "coverage", "colorspace", "mattes", "points")
                         if mine[k] != theirs[k]]
            if different:
                shown = "; ".join(f"{k}: faceset has {theirs[k]!r}, this extract {mine[k]!r}" for k in different)
                raise FaceGraftError(f"cannot append to this faceset ({shown})", path=str(self.path),
                                     hint="extract into a new --out folder, or match the existing faceset's settings")
            self.faceset = existing
            for name, size in _sizes(existing, len(existing)).items():
                os.truncate(self.path / name, size)  # drop bytes of an interrupted earlier append
        else:
            if self.path.exists() and any(not p.name.endswith(".fgtrack.json") for p in self.path.iterdir()):
                raise FaceGraftError("the output folder exists, is not empty and is not a faceset", path=str(self.path),
                                     hint="pass a new or empty folder to --out")
            self.path.mkdir(parents=True, exist_ok=True)
            for name in (FACES, MATTES, LANDMARKS):
                (self.path / name).write_bytes(b"")
            self.faceset = wanted
        self.known = {(e["source"], e["frame"], e.get("track")) for e in self.faceset.entries}
        self.last: Optional[np.ndarray] = None
        self.last_openness: Optional[np.ndarray] = None
        self.added = self.duplicates = self.skipped = 0
        self._files = {name: open(self.path / name, "ab") for name in (FACES, MATTES, LANDMARKS)}

    def add(self, face: np.ndarray, mattes: dict[str, np.ndarray], landmarks: np.ndarray, *, source: str,
            frame: Optional[int], track: Optional[int] = None, **extra: Any) -> bool:
        """Add one crop (``[R,R,3]`` model space); False when it is a near duplicate or already there."""
        fs = self.faceset
        if (source, frame, track) in self.known:
            self.skipped += 1
            return False
        points = np.asarray(landmarks, np.float32)[:, :2]
        openness = _openness(points, extra.get(EXPRESSION))
        if (self.last is not None and float(np.linalg.norm(points - self.last, axis=1).mean()) < self.min_motion
                and not _expression_changed(openness, self.last_openness)):
            self.duplicates += 1
            return False
        r = fs.resolution
        if face.shape != (r, r, 3) or points.shape != (fs.points, 2):
            raise ValueError(f"face {face.shape} / landmarks {points.shape} do not fit a {r}px faceset")
        stack = np.stack([np.asarray(mattes[name], np.float32) for name in fs.matte_names], axis=-1)
        self._files[FACES].write(colour.sanitize(face).astype(np.float16).tobytes())
        self._files[MATTES].write((np.clip(stack, 0, 1) * 255 + 0.5).astype(np.uint8).tobytes())
        self._files[LANDMARKS].write(points.tobytes())
        fs.entries.append({"source": source, "frame": frame, "track": track, **extra})
        self.known.add((source, frame, track))
        self.last, self.last_openness = points, openness
        self.added += 1
        return True

    def close(self) -> Faceset:
        for handle in self._files.values():
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        fs = self.faceset
        _write_json(self.path / INDEX, {**fs.header(), "count": len(fs), "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
                                        "faces": fs.entries})
        opened = open_faceset(self.path, allow_empty=True)
        if len(opened):
            write_contact_sheet(opened, self.path / PREVIEW)
        return opened

    def __enter__(self) -> FacesetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not all(h.closed for h in self._files.values()):
            self.close()


def _openness(points: np.ndarray, record: Any) -> Optional[np.ndarray]:
    """Eye (left, right) and mouth openness of a face: its expression record, else its landmarks."""
    if isinstance(record, dict):
        return expression.from_record(record)[:3]
    if len(points) < 478:
        return None
    return np.concatenate([expression.eye_openness(points), [expression.mouth_openness(points)]])


def _expression_changed(now: Optional[np.ndarray], before: Optional[np.ndarray]) -> bool:
    """Whether an eye or the mouth opened or closed since the last kept face (a blink moves a few of
    the 478 landmarks, too few for the mean motion to see)."""
    if now is None or before is None:
        return False
    with np.errstate(invalid="ignore"):
        return bool(np.nanmax(np.abs(now - before), initial=0.0) > DUPLICATE_OPENNESS)


def to_srgb(faces: np.ndarray, colorspace: str, config: str) -> np.ndarray:
    """Model-space crops ``[..., 3]`` -> uint8 sRGB pictures (display view, RGB order)."""
    return colour.to_display_uint8(np.asarray(faces, np.float32), colorspace, config, tone_map=True)


def write_contact_sheet(fs: Faceset, path: PathLike, count: int = 64, tile: int = 96) -> Path:
    """An sRGB contact sheet of up to ``count`` faces spread over the faceset, matte outline in green."""
    picks = np.unique(np.linspace(0, len(fs) - 1, min(count, len(fs))).round().astype(int))
    faces = to_srgb(fs.faces[picks], fs.colorspace, fs.ocio_config)
    tiles = []
    for k, i in enumerate(picks):
        picture = cv2.resize(faces[k], (tile, tile), interpolation=cv2.INTER_AREA)
        matte = cv2.resize(fs.mattes[i, ..., 0], (tile, tile), interpolation=cv2.INTER_AREA)
        contours, _ = cv2.findContours((matte > 127).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        picture = np.ascontiguousarray(picture)
        cv2.drawContours(picture, contours, -1, (60, 200, 60), 1)
        cv2.putText(picture, str(fs.entries[i]["frame"]), (3, tile - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.3,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(picture)
    return contact_sheet.write_png(path, contact_sheet.sheet(tiles, columns=8, gap=2, background=24), rgb=True)
