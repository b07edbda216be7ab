"""Faces linked across frames into tracks: stable ids, the target choice, gap bridging.

Time is the position in the shot's frame list (so ``1001-1100x2`` steps one frame per
position). A face joins the track whose last face overlaps it most (box IoU, or centres
within half a face size when the track skipped frames); new faces get the next id, left to
right within a frame, starting at 1. Gaps of up to ``max_gap`` positions are bridged by
interpolating the landmarks (flag ``bridged``); longer gaps stay empty.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.track.detect import iou

MAX_GAP = 3  # positions bridged by interpolation
MAX_AGE = 24  # positions a lost track may still be re-joined (longer: a new track)
MIN_IOU = 0.25
MAX_CENTRE = 0.5  # centre distance / face size accepted when boxes barely overlap


@dataclass
class Observation:
    """One face in one frame (plate px) before smoothing."""

    index: int  # position in the shot's frame list
    box: tuple[float, float, float, float]
    score: float  # detector score, or the landmark model's presence when followed from the last frame
    landmarks: np.ndarray  # (478, 3)
    presence: float = 1.0
    flags: list[str] = field(default_factory=list)
    track: int = 0

    @property
    def size(self) -> float:
        return float(np.sqrt(max(0.0, (self.box[2] - self.box[0]) * (self.box[3] - self.box[1]))))

    @property
    def centre(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


def affinity(a: Observation, b: Observation) -> float:
    """How well ``b`` continues ``a``: IoU, or a smaller score from centre distance; 0 if neither fits."""
    overlap = iou(a.box, b.box)
    if overlap >= MIN_IOU:
        return overlap
    distance = float(np.linalg.norm(a.centre - b.centre)) / max(1e-6, (a.size + b.size) / 2)
    if distance <= MAX_CENTRE and 0.5 < b.size / max(a.size, 1e-6) < 2.0:
        return MIN_IOU * (1.0 - distance / MAX_CENTRE) * 0.99
    return 0.0


class Linker:
    """Online id assignment, one frame at a time (the tracker needs ids while it runs)."""

    def __init__(self, max_age: int = MAX_AGE) -> None:
        self.max_age = max_age
        self.last: dict[int, Observation] = {}
        self.next_id = 1

    def assign(self, index: int, faces: Sequence[Observation]) -> list[Observation]:
        """Set ``.track`` on each face of position ``index``; greedy best-affinity matching.

        Faces that already carry a track id (``track > 0``, followed by the tracker) keep it.
        """
        fixed = {f.track for f in faces if f.track > 0}
        free = [k for k, f in enumerate(faces) if f.track <= 0]
        alive = {t: o for t, o in self.last.items() if index - o.index <= self.max_age and t not in fixed}
        pairs = sorted(((affinity(o, faces[k]), t, k) for t, o in alive.items() for k in free), reverse=True)
        used_tracks: set[int] = set()
        used_faces: set[int] = set()
        for score, t, k in pairs:
            if score <= 0.0 or t in used_tracks or k in used_faces:
                continue
            faces[k].track = t
            used_tracks.add(t)
            used_faces.add(k)
        for k in sorted(set(free) - used_faces, key=lambda k: faces[k].centre[0]):
            faces[k].track = self.next_id
            self.next_id += 1
        self.next_id = max([self.next_id, *(t + 1 for t in fixed)])
        for f in faces:
            self.last[f.track] = f
        return list(faces)


def by_track(per_index: Sequence[Sequence[Observation]]) -> dict[int, dict[int, Observation]]:
    """``{track: {index: observation}}``."""
    out: dict[int, dict[int, Observation]] = {}
    for faces in per_index:
        for f in faces:
            out.setdefault(f.track, {})[f.index] = f
    return out


def bridge(track: dict[int, Observation], max_gap: int = MAX_GAP) -> dict[int, Observation]:
    """Fill gaps of up to ``max_gap`` positions by linear interpolation (flag ``bridged``)."""
    out = dict(track)
    present = sorted(track)
    for a, b in zip(present[:-1], present[1:]):
        if 1 < b - a <= max_gap + 1:
            fa, fb = track[a], track[b]
            for i in range(a + 1, b):
                w = (i - a) / (b - a)
                box = tuple(float((1 - w) * p + w * q) for p, q in zip(fa.box, fb.box))
                out[i] = Observation(
                    index=i, box=box, score=min(fa.score, fb.score),  # type: ignore[arg-type]
                    landmarks=(1 - w) * fa.landmarks + w * fb.landmarks,
                    presence=min(fa.presence, fb.presence), flags=["bridged"], track=fa.track,
                )
    return out


def segments(indices: Sequence[int]) -> list[list[int]]:
    """Runs of consecutive positions, e.g. [1,2,3,7,8] -> [[1,2,3],[7,8]]."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def track_summary(tracks: dict[int, dict[int, Observation]], frames: Sequence[int]) -> list[dict]:
    """Per track: id, first/last frame, frames present, mean face size over the shot, mean centre."""
    out = []
    for t in sorted(tracks):
        obs = tracks[t]
        idx = sorted(obs)
        centre = np.mean([obs[i].centre for i in idx], axis=0)
        out.append({
            "id": t,
            "first": int(frames[idx[0]]),
            "last": int(frames[idx[-1]]),
            "frames": len(idx),
            "mean_size": round(sum(obs[i].size for i in idx) / max(1, len(frames)), 3),
            "centre": [round(float(centre[0]), 2), round(float(centre[1]), 2)],
        })
    return out


def choose_target(summary: Sequence[dict], face: str = "largest") -> Optional[int]:
    """The target track: ``largest`` (largest mean face size over the shot) or a track id."""
    if not summary:
        return None
    if face == "largest":
        return int(max(summary, key=lambda s: (s["mean_size"], -s["id"]))["id"])
    try:
        wanted = int(face)
    except ValueError:
        raise FaceGraftError(f"--face must be 'largest' or a track id, not '{face}'",
                             hint="run `facegraft track` once with --face largest and read the track list") from None
    ids = [int(s["id"]) for s in summary]
    if wanted not in ids:
        listing = "; ".join(f"{s['id']}: frames {s['first']}-{s['last']} near x={s['centre'][0]:.0f}" for s in summary)
        raise FaceGraftError(f"there is no face track {wanted} in this shot", hint=f"tracks found: {listing}")
    return wanted
