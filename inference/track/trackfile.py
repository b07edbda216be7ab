"""The shot track file (``*.fgtrack.json``): every face on every frame, computed once per shot.

Every render chunk reads this file, which is what makes frame N render identically alone or
in a chunk: nothing in rendering depends on neighbouring frames. The schema is documented in
``docs/trackfile.md``; readers refuse other schemas and newer versions with a clear message.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from facegraft.inference import __version__
from facegraft.inference.atomic import atomic_write_text
from facegraft.inference.errors import FaceGraftError

SCHEMA = "facegraft.track"
VERSION = 2  # 2: hands per frame, occlusion per face (version 1 files are read as tracked without hands)
FRAME_FLAGS = ("no_face", "unreadable")
FACE_FLAGS = ("bridged", "low_confidence", "occluded", "redetected")
_DECIMALS = 3


@dataclass
class Face:
    """One face on one frame, in plate coordinates (display window, pixel centres at +0.5)."""

    track: int
    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    landmarks_raw: np.ndarray  # (478, 3) as detected
    landmarks: np.ndarray  # (478, 3) smoothed over the shot
    transform: np.ndarray  # (2, 3) plate -> face space, from the smoothed landmarks
    flags: list[str] = field(default_factory=list)
    occlusion: float = 0.0  # fraction of the face matte covered by hands (0..1)

    @property
    def size(self) -> float:
        """Face size in plate px (square root of the box area)."""
        x0, y0, x1, y1 = self.box
        return float(np.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0)))


@dataclass
class HandTrack:
    """One hand on one frame: 21 MediaPipe hand landmarks, plate coordinates."""

    track: int  # hand track id (its own numbering, from 1)
    presence: float
    handedness: float  # above 0.5: the subject's right hand (unmirrored footage)
    landmarks_raw: np.ndarray  # (21, 3) as found
    landmarks: np.ndarray  # (21, 3) smoothed over the shot


@dataclass
class FrameTrack:
    frame: int
    faces: list[Face] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    hands: list[HandTrack] = field(default_factory=list)


@dataclass
class ShotTrack:
    plate: dict[str, Any]
    params: dict[str, Any]
    target: Optional[int]
    tracks: list[dict[str, Any]]
    frames: dict[int, FrameTrack]
    created: str = ""
    facegraft_version: str = __version__

    @property
    def frame_numbers(self) -> list[int]:
        return sorted(self.frames)

    @property
    def hands_searched(self) -> bool:
        """True when the tracker looked for hands (``--hands``); else ``hands`` lists are empty unseen."""
        return bool(self.params.get("hands", False))

    def face(self, frame: int, track: Optional[int] = None) -> Optional[Face]:
        """The face of ``track`` (default: the shot's target) on ``frame``, or None."""
        record = self.frames.get(frame)
        wanted = self.target if track is None else track
        if record is None or wanted is None:
            return None
        for face in record.faces:
            if face.track == wanted:
                return face
        return None

    def require_frames(self, frames: list[int], path: Optional[str] = None) -> None:
        """Raise a FaceGraftError naming the frames this track does not cover."""
        missing = [f for f in frames if f not in self.frames]
        if missing:
            from facegraft.inference.io.sequence import format_frames

            raise FaceGraftError(
                f"the track file has no entry for frame(s) {format_frames(missing)}", path=path,
                hint="re-run `facegraft track` over the whole range you render",
            )


def _round(array: np.ndarray) -> list:
    return np.round(np.asarray(array, dtype=np.float64), _DECIMALS).tolist()


def _face_to_json(face: Face) -> dict[str, Any]:
    return {
        "track": int(face.track),
        "box": [round(float(v), _DECIMALS) for v in face.box],
        "score": round(float(face.score), 4),
        "flags": list(face.flags),
        "occlusion": round(float(face.occlusion), 4),
        "transform": np.asarray(face.transform, dtype=np.float64).tolist(),
        "landmarks": _round(face.landmarks),
        "landmarks_raw": _round(face.landmarks_raw),
    }


def _face_from_json(data: dict[str, Any]) -> Face:
    return Face(
        track=int(data["track"]),
        box=tuple(float(v) for v in data["box"]),  # type: ignore[arg-type]
        score=float(data["score"]),
        landmarks_raw=np.asarray(data["landmarks_raw"], dtype=np.float64),
        landmarks=np.asarray(data["landmarks"], dtype=np.float64),
        transform=np.asarray(data["transform"], dtype=np.float64),
        flags=list(data.get("flags", [])),
        occlusion=float(data.get("occlusion", 0.0)),
    )


def _hand_to_json(hand: HandTrack) -> dict[str, Any]:
    return {"track": int(hand.track), "presence": round(float(hand.presence), 4),
            "handedness": round(float(hand.handedness), 4), "landmarks": _round(hand.landmarks),
            "landmarks_raw": _round(hand.landmarks_raw)}


def _hand_from_json(data: dict[str, Any]) -> HandTrack:
    return HandTrack(track=int(data["track"]), presence=float(data["presence"]), handedness=float(data["handedness"]),
                     landmarks_raw=np.asarray(data["landmarks_raw"], dtype=np.float64),
                     landmarks=np.asarray(data["landmarks"], dtype=np.float64))


def to_json(track: ShotTrack) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "facegraft_version": track.facegraft_version,
        "created": track.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "plate": track.plate,
        "params": track.params,
        "target": track.target,
        "tracks": track.tracks,
        "frames": [
            {"frame": rec.frame, "flags": list(rec.flags), "faces": [_face_to_json(f) for f in rec.faces],
             "hands": [_hand_to_json(h) for h in rec.hands]}
            for rec in (track.frames[n] for n in track.frame_numbers)
        ],
    }


def from_json(data: dict[str, Any], path: Optional[str] = None) -> ShotTrack:
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise FaceGraftError("not a FaceGraft track file", path=path,
                             hint="make one with `facegraft track PLATE --out shot.fgtrack.json`")
    version = data.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise FaceGraftError(
            f"track file version {version} is newer than this FaceGraft reads (version {VERSION})",
            path=path, hint="update FaceGraft, or re-track the shot with this version",
        )
    try:
        frames = {
            int(rec["frame"]): FrameTrack(int(rec["frame"]), [_face_from_json(f) for f in rec.get("faces", [])],
                                          list(rec.get("flags", [])),
                                          [_hand_from_json(h) for h in rec.get("hands", [])])
            for rec in data["frames"]
        }
        return ShotTrack(
            plate=dict(data.get("plate", {})), params=dict(data.get("params", {})), target=data.get("target"),
            tracks=list(data.get("tracks", [])), frames=frames, created=str(data.get("created", "")),
            facegraft_version=str(data.get("facegraft_version", "")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FaceGraftError(f"the track file is damaged ({type(exc).__name__}: {exc})", path=path,
                             hint="re-run `facegraft track`") from exc


def save_track(track: ShotTrack, path: Union[str, Path]) -> None:
    """Write atomically (temporary file in the same folder, then rename)."""
    atomic_write_text(path, json.dumps(to_json(track), separators=(",", ":")),
                      hint="check the folder exists and is writable, and the disk has space")


def load_track(path: Union[str, Path]) -> ShotTrack:
    name = str(path)
    try:
        with open(name, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise FaceGraftError("track file not found", path=name,
                             hint="run `facegraft track PLATE --out this_file` first") from None
    except (OSError, ValueError) as exc:
        raise FaceGraftError(f"cannot read the track file ({exc})", path=name, hint="re-run `facegraft track`") from exc
    return from_json(data, name)
