"""The whole-shot face tracker: plate frames in, a ``trackfile.ShotTrack`` out.

Per frame, every face seen on the previous frame is followed: its last landmarks place the
next FaceMesh crop (rotated to the eye line), and FaceMesh's presence score says whether the
face is still there. The detector runs only when needed: on the first frame, when a face was
lost, while no face is tracked, and every ``redetect`` frames to find faces that walked in
(the whole frame; on big frames also overlapping tiles, so small faces are found: always while
no face is followed, otherwise on every ``tiled_every``-th search). Faces are linked into tracks
(``linking``), short gaps bridged, landmarks smoothed over the whole shot with zero phase
(``smoothing``), and the face transform computed from the smoothed landmarks (``align``).

With hands on (the default), each frame with a face is also searched for hands near it
(``hands.HandFinder``: a hand found is followed from its landmarks; palm searches around the
faces run on a schedule, sparse while no hand is near); after the shot a backward pass follows
each hand to the frames before it was first found (re-reading only those frames), hand
landmarks are smoothed like the face's, and a face whose matte a hand matte covers gets its
``occlusion`` fraction and, from ``hands.OCCLUDED_FRACTION`` up, the ``occluded`` flag.

The networks run one onnxruntime thread each by default and OpenCV's crops on the calling
thread (``opencv_threads``): on a few shared cores that costs the least CPU a frame, and the
reading thread (``prefetch``) keeps a core.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Protocol, Sequence

import cv2
import numpy as np

from facegraft.inference.errors import BadFrameError, FaceGraftError
from facegraft.inference.io import colour
from facegraft.inference.memory import reuse_freed_memory
from facegraft.inference.progress import Progress
from facegraft.inference.track import align, hands, linking, smoothing, trackfile
from facegraft.inference.track.detect import Detection, Detectors, iou
from facegraft.inference.track.landmarks import (
    PRESENCE_THRESHOLD,
    LandmarkModels,
    LandmarkResult,
    landmark_box,
    roi_from_detection,
    roi_from_landmarks,
)

LOW_CONFIDENCE = 0.9  # FaceMesh presence below this (but above PRESENCE_THRESHOLD) is flagged
REDETECT = 12  # frames between searches for new faces
TILED_EVERY = 4  # while faces are followed, every 4th search (48 frames) also searches tiles
MIN_ROI = 16.0  # px: a followed face whose crop would be smaller is treated as lost
DUPLICATE_IOU = 0.5  # two followed faces overlapping this much are one face


class SourceLike(Protocol):
    frames: list[int]
    name: str

    def read(self, frame: int) -> Any: ...


@dataclass
class TrackerOptions:
    """Knobs of the per-frame loop (defaults suit 24-60 fps plates)."""

    device: str = "auto"
    threads: Optional[int] = 1  # per model; the models are small, one thread each wastes least
    redetect: int = REDETECT
    tiled_every: int = TILED_EVERY  # searches between tiled ones while faces are followed (1: every search)
    tile_size: int = 768
    max_gap: int = linking.MAX_GAP
    on_error: str = "fail"  # "fail": an unreadable frame stops tracking; "skip": flag it and go on
    hands: bool = True  # look for hands in front of the faces (occlusion)


class FrameTracker:
    """Follows faces frame to frame; holds the model sessions (reuse it across shots)."""

    def __init__(self, options: Optional[TrackerOptions] = None) -> None:
        self.options = options or TrackerOptions()
        self.detectors = Detectors(self.options.device, self.options.threads, self.options.tile_size)
        self.models = LandmarkModels(self.options.device, self.options.threads)
        self.hands = hands.HandFinder(self.options.device, self.options.threads) if self.options.hands else None
        self.reset()

    def reset(self) -> None:
        if self.hands is not None:
            self.hands.reset()
        self.linker = linking.Linker()
        self.active: dict[int, np.ndarray] = {}  # track id -> last landmarks
        self.last_search = -10**9
        self.searches = 0  # periodic searches so far while faces were followed

    def _observe(self, index: int, result: LandmarkResult, score: float, flags: Sequence[str] = ()) -> linking.Observation:
        out = list(flags)
        if result.presence < LOW_CONFIDENCE:
            out.append("low_confidence")
        return linking.Observation(index=index, box=landmark_box(result.points), score=float(score),
                                   landmarks=result.points, presence=result.presence, flags=out)

    def step(self, index: int, rgb: np.ndarray, origin: tuple[float, float], plate_space: str,
             config: str) -> list[linking.Observation]:
        """Faces on one frame (``rgb`` over the data window, array origin in plate px), with track ids."""
        faces: list[linking.Observation] = []
        lost = False
        for track, points in sorted(self.active.items()):
            roi = roi_from_landmarks(points)
            if not (MIN_ROI <= roi.size and np.isfinite([roi.cx, roi.cy, roi.size, roi.angle]).all()):
                lost = True  # the landmarks collapsed: find the face again
                continue
            result = self.models.landmarks(rgb, roi, origin, plate_space, config)
            if result.presence < PRESENCE_THRESHOLD:
                lost = True
                continue
            face = self._observe(index, result, result.presence)
            if any(iou(face.box, other.box) > DUPLICATE_IOU for other in faces):
                continue  # two tracks converged on one face: keep the older id
            face.track = track
            faces.append(face)
        search = index - self.last_search >= self.options.redetect
        if search or lost or not faces:
            tiled = False
            if search:
                self.last_search = index
                # tiles (small faces in a big frame) cost as much as several frames of following:
                # always while nothing is followed, otherwise on every tiled_every-th search
                self.searches += 1 if faces else 0
                tiled = not faces or self.searches % max(1, self.options.tiled_every) == 0
            for det in self.detectors.detect(rgb, origin, plate_space, config, tiled=tiled):
                if any(iou(det.box, f.box) > 0.2 or _inside(det, f.box) for f in faces):
                    continue
                new = self._from_detection(index, det, rgb, origin, plate_space, config)
                if new is not None and not any(iou(new.box, f.box) > DUPLICATE_IOU for f in faces):
                    faces.append(new)
        known = self.linker.next_id
        fresh = [f for f in faces if f.track <= 0]
        self.linker.assign(index, faces)
        for f in fresh:
            if f.track < known:
                f.flags.append("redetected")  # a lost track picked up again
        self.active = {f.track: f.landmarks for f in faces}
        return faces

    def find_hands(self, number: int, view: hands.PlateView, faces: Sequence[linking.Observation],
                   following: Optional[Sequence[hands.Hand]] = None,
                   found: Sequence[hands.Hand] = ()) -> list[hands.Hand]:
        """Hands near ``faces`` on frame ``number`` (the next one of the shot), or, with
        ``following``, ``found`` plus the hands of the frames after followed back onto this one
        (``HandFinder.backfill``)."""
        assert self.hands is not None
        boxes = [hands.face_box(align.face_transform(f.landmarks)) for f in faces]
        try:
            if following is None:
                return self.hands(view, boxes, [hands.FaceCue(f.track, f.landmarks, f.presence) for f in faces])
            return self.hands.backfill(view, boxes, list(found), following)
        except FaceGraftError as exc:
            exc.frame = number
            raise

    def _from_detection(self, index: int, det: Detection, rgb: np.ndarray, origin: tuple[float, float],
                        plate_space: str, config: str) -> Optional[linking.Observation]:
        """Landmarks for a fresh detection: one pass from the box, one refined from those landmarks."""
        roi = roi_from_detection(det)
        mesh, presence = self.models.mesh_points(rgb, roi, origin, plate_space, config)
        if presence < PRESENCE_THRESHOLD:
            return None
        result = self.models.landmarks(rgb, roi_from_landmarks(mesh), origin, plate_space, config)
        if result.presence < PRESENCE_THRESHOLD:  # the refined ROI lost it: keep the first pass's mesh
            result = self.models.with_iris(rgb, mesh, presence, roi, origin, plate_space, config)
        return self._observe(index, result, det.score)


def _inside(det: Detection, box: Sequence[float]) -> bool:
    cx, cy = det.centre
    return box[0] <= cx <= box[2] and box[1] <= cy <= box[3]


def prefetch(source: SourceLike, frames: Sequence[int], depth: int = 2) -> Iterator[tuple[int, Future]]:
    """``(frame, future of source.read(frame))`` in order, reading ahead on one thread.

    Reading (OpenImageIO, video decoding) releases the GIL, so the next frames load while
    the networks work on this one. One reader keeps a video decoding in order.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="facegraft-read") as pool:
        pending: deque[tuple[int, Future]] = deque()
        upcoming = iter(frames)
        for number in upcoming:
            pending.append((number, pool.submit(source.read, number)))
            if len(pending) > depth:
                break
        while pending:
            number, future = pending.popleft()
            following = next(upcoming, None)
            if following is not None:
                pending.append((following, pool.submit(source.read, following)))
            try:
                yield number, future
            except GeneratorExit:
                for _, waiting in pending:
                    waiting.cancel()
                raise


def plate_info(source: SourceLike, first: Any, plate_space: str, config: str) -> dict[str, Any]:
    """The ``plate`` block of the track file."""
    info: dict[str, Any] = {
        "pattern": str(getattr(source, "pattern", None) or source.name),
        "first_frame": int(source.frames[0]) if source.frames else None,
        "last_frame": int(source.frames[-1]) if source.frames else None,
        "colorspace": plate_space,
        "ocio_config": config,
        "pixel_aspect": 1.0,
    }
    if getattr(source, "start", None) is not None:  # a video: the number its first frame has
        info["video_start"] = int(source.start)  # type: ignore[attr-defined]
    if first is not None:
        x, y, w, h = first.display_window
        info["display_window"] = [int(x), int(y), int(w), int(h)]
        height, width = first.rgb.shape[:2]
        dx, dy = first.origin
        info["data_window"] = [int(x + dx), int(y + dy), int(width), int(height)]
        image = getattr(first, "image", None)
        if image is not None:
            info["pixel_aspect"] = float(image.spec.get_float_attribute("PixelAspectRatio", 1.0))
    return info


def track_shot(
    source: SourceLike,
    *,
    face: str = "largest",
    smooth: float = 0.5,
    progress: Optional[Progress] = None,
    options: Optional[TrackerOptions] = None,
    tracker: Optional[FrameTracker] = None,
    plate_space: Optional[str] = None,
    config: Optional[str] = None,
) -> trackfile.ShotTrack:
    """Track every face over the shot and pick the target (``largest`` or a track id)."""
    reuse_freed_memory()  # every frame's plate buffers are reused, not mapped afresh
    smoothing.sigma_for(smooth)  # validate before any work
    plate_space = plate_space or getattr(source, "colorspace", None) or colour.DEFAULT_PLATE_SPACE
    config = config or getattr(source, "config", None) or colour.DEFAULT_CONFIG
    tracker = tracker or FrameTracker(options)
    opts = tracker.options
    frames = list(source.frames)
    with opencv_threads(1):
        per_index, per_index_hands, unreadable, first_plate = follow_shot(source, frames, tracker, plate_space, config,
                                                                          progress)
    params = {"face": face, "smooth": smooth, "sigma_frames": smoothing.sigma_for(smooth),
              "redetect": opts.redetect, "tiled_every": opts.tiled_every, "max_gap": opts.max_gap,
              "device": opts.device, "template": align.TEMPLATE_NAME, "hands": opts.hands}
    if opts.hands:
        params["hand_matte"] = {"hull_margin": hands.HULL_MARGIN, "finger_radius": hands.FINGER_RADIUS,
                                "softness": hands.SOFTNESS, "occluded_fraction": hands.OCCLUDED_FRACTION}
    if tracker.hands is not None:
        found = tracker.hands.options
        params["hand_search"] = {"search_every": found.search_every, "idle_every": found.idle_every,
                                 "track_retries": [list(r) for r in hands.TRACK_RETRIES],
                                 "searches": dict(sorted(tracker.hands.searches.items())),
                                 "retries": tracker.hands.retries}
    return assemble(per_index, frames, face=face, smooth=smooth, max_gap=opts.max_gap, unreadable=unreadable,
                    plate=plate_info(source, first_plate, plate_space, config), params=params,
                    hands_per_index=per_index_hands if opts.hands else None)


@contextmanager
def opencv_threads(count: int) -> Iterator[None]:
    """OpenCV's own thread pool set to ``count`` threads for a while (then set back). The
    tracker's crops are small: split over OpenCV's pool they cost more CPU (threads waking and
    waiting) than they save time, on cores the reading thread and other work need."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def follow_shot(source: SourceLike, frames: Sequence[int], tracker: FrameTracker, plate_space: str, config: str,
                progress: Optional[Progress] = None
                ) -> tuple[list[list[linking.Observation]], list[list[hands.Hand]], set[int], Any]:
    """The per-frame pass over the shot (faces, hands and the backward hand pass): per frame
    position the faces and the hands, the positions of unreadable frames, and the first plate read."""
    tracker.reset()
    opts = tracker.options
    per_index: list[list[linking.Observation]] = []
    per_index_hands: list[list[hands.Hand]] = []
    unreadable: set[int] = set()
    first_plate = None
    for index, (number, loading) in enumerate(prefetch(source, frames)):
        try:
            plate = loading.result()
        except BadFrameError as exc:
            if opts.on_error != "skip":
                raise
            unreadable.add(index)
            per_index.append([])
            per_index_hands.append([])
            tracker.active = {}
            if progress is not None:
                progress.warn(f"frame {number} unreadable, skipped: {exc.message}", frame=number)
                progress.update(frame=number, faces=0)
            continue
        first_plate = first_plate or plate
        faces = tracker.step(index, plate.rgb, tuple(plate.origin), plate_space, config)
        per_index.append(faces)
        found = [] if tracker.hands is None else tracker.find_hands(
            number, hands.PlateView(plate.rgb, tuple(plate.origin), plate_space, config), faces)
        per_index_hands.append(found)
        if progress is not None:
            progress.update(frame=number, faces=len(faces), **({"hands": len(found)} if tracker.hands else {}))
    if tracker.hands is not None:
        backfill_hands(source, frames, per_index, per_index_hands, tracker, unreadable, plate_space, config)
    return per_index, per_index_hands, unreadable, first_plate


def backfill_hands(source: SourceLike, frames: Sequence[int], per_index: Sequence[Sequence[linking.Observation]],
                   per_index_hands: list[list[hands.Hand]], tracker: FrameTracker, unreadable: set[int],
                   plate_space: str, config: str) -> None:
    """Follow each hand backwards from the first frame it was found on (offline footage allows
    it), re-reading only the frames where one of the next few frames has a hand this one lacks
    (``hands.ahead``: a hand the backward step lost is looked for a few frames further back,
    as the forward pass searches for a few frames after losing one)."""
    for i in range(len(frames) - 2, -1, -1):
        following = hands.ahead(per_index_hands[i + 1:])
        if i in unreadable or not per_index[i] or not hands.backfill_needed(per_index_hands[i], following):
            continue
        plate = source.read(frames[i])
        view = hands.PlateView(plate.rgb, tuple(plate.origin), plate_space, config)
        per_index_hands[i] = tracker.find_hands(frames[i], view, per_index[i], following, per_index_hands[i])


def assemble(per_index: Sequence[Sequence[linking.Observation]], frames: Sequence[int], *, face: str = "largest",
             smooth: float = 0.5, max_gap: int = linking.MAX_GAP, unreadable: Optional[set[int]] = None,
             plate: Optional[dict[str, Any]] = None, params: Optional[dict[str, Any]] = None,
             hands_per_index: Optional[Sequence[Sequence[hands.Hand]]] = None) -> trackfile.ShotTrack:
    """Observations with track ids -> the shot track: bridge gaps, smooth, transforms, flags, target;
    with ``hands_per_index`` also the smoothed hands and each face's occlusion by them."""
    unreadable = unreadable or set()
    tracks = linking.by_track(per_index)
    summary = linking.track_summary(tracks, frames)
    target = linking.choose_target(summary, face)
    records = {int(n): trackfile.FrameTrack(int(n)) for n in frames}
    for track_id, observed in tracks.items():
        filled = linking.bridge(observed, max_gap)
        filled = {i: o for i, o in filled.items() if i not in unreadable}
        for run in linking.segments(sorted(filled)):
            raw = np.stack([filled[i].landmarks for i in run])
            smoothed = smoothing.smooth(raw, smooth)
            for i, points in zip(run, smoothed):
                o = filled[i]
                records[int(frames[i])].faces.append(trackfile.Face(
                    track=track_id, box=tuple(float(v) for v in o.box),  # type: ignore[arg-type]
                    score=float(o.score), landmarks_raw=np.asarray(o.landmarks, dtype=np.float64),
                    landmarks=points, transform=align.face_transform(points), flags=list(o.flags)))
    if hands_per_index is not None:
        add_hands(records, frames, hands_per_index, smooth, max_gap, unreadable)
    for i, number in enumerate(frames):
        record = records[int(number)]
        record.faces.sort(key=lambda f: f.track)
        if i in unreadable:
            record.flags.append("unreadable")
        if target is None or not any(f.track == target for f in record.faces):
            record.flags.append("no_face")
    for entry in summary:
        entry["bridged"] = sum(1 for r in records.values() for f in r.faces if f.track == entry["id"] and "bridged" in f.flags)
    return trackfile.ShotTrack(plate=plate or {}, params=params or {}, target=target, tracks=summary, frames=records)


def bridge_hand(seen: dict[int, hands.Hand], max_gap: int, skip: set[int]) -> dict[int, hands.Hand]:
    """A hand track with gaps of up to ``max_gap`` frames filled by linear interpolation (not
    over the positions in ``skip``: unreadable frames)."""
    out = dict(seen)
    known = sorted(seen)
    for a, b in zip(known, known[1:]):
        if 1 < b - a <= max_gap + 1 and not skip.intersection(range(a + 1, b)):
            for i in range(a + 1, b):
                t = (i - a) / (b - a)
                out[i] = hands.Hand((1 - t) * seen[a].landmarks + t * seen[b].landmarks,
                                    min(seen[a].presence, seen[b].presence), seen[a].handedness, seen[a].track,
                                    "bridged")
    return out


def add_hands(records: dict[int, trackfile.FrameTrack], frames: Sequence[int],
              per_index: Sequence[Sequence[hands.Hand]], smooth: float, max_gap: int = linking.MAX_GAP,
              unreadable: Optional[set[int]] = None) -> None:
    """Hands into the frame records, each hand track's short gaps bridged and its landmarks
    smoothed over its runs of consecutive frames like the faces'; then every face's occlusion by
    the smoothed hands."""
    by_track: dict[int, dict[int, hands.Hand]] = {}
    for i, found in enumerate(per_index):
        for hand in found:
            by_track.setdefault(hand.track, {})[i] = hand
    for track_id, seen in sorted(by_track.items()):
        seen = bridge_hand(seen, max_gap, unreadable or set())
        for run in linking.segments(sorted(seen)):
            smoothed = smoothing.smooth(np.stack([seen[i].landmarks for i in run]), smooth)
            for i, points in zip(run, smoothed):
                h = seen[i]
                records[int(frames[i])].hands.append(trackfile.HandTrack(
                    track=track_id, presence=h.presence, handedness=h.handedness,
                    landmarks_raw=np.asarray(h.landmarks, dtype=np.float64), landmarks=points))
    for record in records.values():
        record.hands.sort(key=lambda h: h.track)
        points = [h.landmarks for h in record.hands]
        for face in record.faces:
            face.occlusion = hands.face_occlusion(face.landmarks, face.transform, points)
            if face.occlusion >= hands.OCCLUDED_FRACTION and "occluded" not in face.flags:
                face.flags.append("occluded")
