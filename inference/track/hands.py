"""Hands in front of faces: MediaPipe's palm detector and 21-point hand landmark model.

The models (``palm_detection_full``, ``hand_landmark_full``, prepared by ``facegraft setup``)
run as in MediaPipe's hand-tracking graphs:

1. Palm detection: a region letterboxed into 192x192 (zero border, sRGB in [0, 1]); 2016 SSD
   anchors (strides 8, 16, 16, 16); sigmoid scores; boxes and 7 keypoints decoded in input
   pixels; weighted non-maximum suppression.
2. Hand region from a palm: the palm box rotated so wrist -> middle-finger knuckle points up,
   shifted half a box up that axis, made square on its long side and scaled 2.6.
3. Hand landmarks: the region warped to 224x224 (edge pixels repeated); 21 points, hand
   presence (>= 0.5 to keep) and handedness, mapped back through the inverse warp.
4. Tracking: the next frame's region comes from the landmarks (scale 2.0, shift -0.1); where
   it holds no hand, the regions of ``TRACK_RETRIES`` are tried.

For hands over a face (``HandFinder``): the palm detector scores a hand that covers the face,
is cut by the frame edge or is seen from the back poorly on the whole frame, so palms are
searched in zoomed squares around each face, with a lower palm score (every palm must still
pass the landmark model's presence test), on a schedule (``HandFinder.search_reason``): sparse
while no hand is near, since a hand found is followed from its landmarks; hands much smaller
than the face they are near are false palms (a nose, a mouth corner) and are dropped;
``backfill`` runs the tracking step backwards from each hand's first frame (offline footage
allows it). The palm detector's graph is rewritten for speed when loaded (``graphs``).

The hand matte (``hand_matte``) is the convex hull of the palm's points grown by ``HULL_MARGIN``
plus finger strokes of radius ``FINGER_RADIUS`` (both in hand sizes), softened by ``SOFTNESS``:
the joints lie inside the skin, so the hull alone misses the fingers' width and tips.

Coordinates are continuous plate pixels (display window; pixel (i, j) has its centre at
(i + 0.5, j + 0.5)), x right, y down, as in ``facegraft.inference.track.align``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Union

import cv2
import numpy as np

from facegraft.inference import assets
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour
from facegraft.inference.models import runtime
from facegraft.inference.track import align, graphs, mattes
from facegraft.inference.track.detect import warp_to_srgb, weighted_nms

PALM_MODEL, LANDMARK_MODEL = "palm_detection_full", "hand_landmark_full"
PALM_SIZE = 192
PALM_STRIDES = (8, 16, 16, 16)
PALM_KEYPOINTS = 7  # wrist, index / middle / ring / pinky knuckles, thumb base, thumb knuckle
PALM_NMS_IOU = 0.3
PALM_SCALE, PALM_SHIFT = 2.6, -0.5  # palm box -> hand region (MediaPipe)
TRACK_SCALE, TRACK_SHIFT = 2.0, -0.1  # landmarks -> next frame's region (MediaPipe)
#: (scale, shift) of the regions tried in turn when the hand model finds no hand in the tracking
#: region (smaller, shifted the other way, larger): a hand cut by the frame edge or over a face
#: makes that region drift off it. On the woman's clip these carry her hand from the first frame
#: it is found to the last, forwards and backwards, without a palm search; the plain region alone
#: loses it within 7 frames
TRACK_RETRIES = ((1.6, -0.1), (2.0, 0.1), (2.4, -0.1))
LANDMARK_SIZE = 224
POINTS = 21  # 0 wrist; thumb 1-4; index 5-8; middle 9-12; ring 13-16; pinky 17-20
MIN_PRESENCE = 0.5
#: palm score accepted in a search: lower than MediaPipe's 0.5 since every palm must still pass
#: the landmark model's presence test
SEARCH_MIN_SCORE = 0.3
#: palm search squares around a face: (side, downward offset of the centre), in face-box sizes
FACE_REGIONS = ((1.25, 0.0), (2.5, 0.0), (2.5, 0.5))
#: the face box the searches are placed on, in face space (``align``): a square about where
#: BlazeFace puts its box (centre, side), level in the plate whatever the face's roll. The palm
#: detector is sensitive to where a hand falls in its square; on the sample clip this box finds
#: palms on 68 of 86 hand frames without tracking, the FaceMesh landmarks' bounds on 58.
FACE_BOX_CENTRE, FACE_BOX_SIDE = (0.5, 0.62), 0.82
#: a hand spanning less than this many sizes of the face it is nearest is a false palm: at the
#: face's depth a real hand, even half out of frame, spans 0.4 or more
MIN_HAND_FACE_RATIO = 0.3
DUPLICATE_OVERLAP = 0.5  # two hands whose boxes overlap this much of the smaller are one hand
#: a hand found again within this many frames where one was, overlapping it this much, keeps its id
#: (so the gap between them can be bridged: up to the tracker's --max-gap, 3 by default)
LINK_FRAMES, LINK_OVERLAP = 4, 0.3
MAX_HANDS = 2
#: while a hand is followed (it is tracked from its landmarks, ``TRACK_RETRIES``), the palm
#: detector searches every square around each face (``FACE_REGIONS``) every this many frames, for
#: another hand
SEARCH_EVERY = 12
#: while no hand is followed, one square per face every this many frames, the squares taken in
#: turn (``IDLE_ORDER``), and all of them at once when a face changes (``face_change``). A hand
#: found late is followed back onto the frames before (``HandFinder.backfill``): on the woman's
#: clip her hand, found 0 to 32 frames after it comes over her face (whichever frame tracking
#: starts on), is followed back to the frame it comes on
IDLE_EVERY = 6
IDLE_ORDER = (2, 1, 0)  # the lowered square first: hands come up from below
#: a search of every square runs now when a face's FaceMesh presence falls this much below what
#: it was at the last search, or its landmarks move this much (mean over the mesh, in face sizes)
#: beyond a similarity fit to the frame before: a hand coming over a face can disturb FaceMesh.
#: On the sample clips the frame-to-frame residual is about 0.002 (median); head turns reach
#: 0.006-0.009 (a turn is not a similarity in the picture), the woman's hand coming over her face
#: 0.004-0.006, her hand moving over it up to 0.015. The threshold sits above every hand-free
#: frame: a search costs as much as six frames of idle ones, and the idle search finds a hand anyway
PRESENCE_DROP = 0.1
LANDMARK_JUMP = 0.008
PALM = (0, 1, 2, 5, 9, 13, 17)  # wrist, thumb base and knuckles, the knuckles of the four fingers
BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
         (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19), (19, 20))
#: the hand matte, in hand sizes (``hand_size``): the smallest
#: that covers every point marked just inside the hand on frames of the sample clip, which
#: leaves two nostrils touching a fingertip covered (tests/inference/data/hand_points.json; a
#: finger is about 0.05 hand sizes wide either side of its bones, which the model places a few
#: pixels off, and a tip ends 0.025 past its point)
HULL_MARGIN = 0.05
FINGER_RADIUS = 0.085
SOFTNESS = 0.018
#: a face whose matte is covered by hands over at least this fraction is flagged ``occluded``
OCCLUDED_FRACTION = 0.01
OCCLUSION_RES = 128  # px of the aligned crop the overlap is measured in


# -- geometry ---------------------------------------------------------------------------------

def _normalize_radians(angle: float) -> float:
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def _up_rotation(start: np.ndarray, end: np.ndarray) -> float:
    """The rotation that turns the direction ``start -> end`` to point up (y down), radians."""
    return _normalize_radians(math.pi / 2 - math.atan2(-(end[1] - start[1]), end[0] - start[0]))


@dataclass(frozen=True)
class Rect:
    """A rotated rectangle in plate px: centre, size, rotation (radians, clockwise on screen).

    Its local x axis is (cos r, sin r) in the plate, its local y axis (down) (-sin r, cos r).
    """

    cx: float
    cy: float
    width: float
    height: float
    rotation: float = 0.0

    def transformed(self, scale: float, shift_y: float = 0.0) -> Rect:
        """MediaPipe's RectTransformationCalculator: shifted along its local y by ``shift_y``
        heights, square on its long side, scaled."""
        dx = -self.height * shift_y * math.sin(self.rotation)
        dy = self.height * shift_y * math.cos(self.rotation)
        side = max(self.width, self.height) * scale
        return Rect(self.cx + dx, self.cy + dy, side, side, self.rotation)

    def to_crop(self, size: int) -> np.ndarray:
        """``(2, 3)`` plate px -> px of a ``size`` square crop (aspect kept)."""
        k = size / max(self.width, self.height)
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        linear = k * np.array([[c, s], [-s, c]])
        shift = np.array([size / 2.0, size / 2.0]) - linear @ np.array([self.cx, self.cy])
        return np.hstack([linear, shift[:, None]])

    def corners(self) -> np.ndarray:
        """``(4, 2)``: top-left, top-right, bottom-right, bottom-left in the rectangle's frame."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        ux, uy = np.array([c, s]) * self.width / 2, np.array([-s, c]) * self.height / 2
        centre = np.array([self.cx, self.cy])
        return np.array([centre - ux - uy, centre + ux - uy, centre + ux + uy, centre - ux + uy])


def landmarks_rect(points: np.ndarray) -> Rect:
    """MediaPipe's HandLandmarksToRectCalculator: rotation wrist -> the index / middle / ring
    middle joints (middle weighted half), then the points' bounding box in that rotated frame."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    rotation = _up_rotation(p[0], ((p[6] + p[14]) / 2.0 + p[10]) / 2.0)
    centre = (p.min(0) + p.max(0)) / 2.0
    c, s = math.cos(rotation), math.sin(rotation)
    local = (p - centre) @ np.array([[c, -s], [s, c]])  # plate offsets -> the rotated frame
    lo, hi = local.min(0), local.max(0)
    mid = (lo + hi) / 2.0
    cx, cy = np.array([[c, -s], [s, c]]) @ mid + centre
    return Rect(float(cx), float(cy), float(hi[0] - lo[0]), float(hi[1] - lo[1]), rotation)


def hand_size(points: np.ndarray) -> float:
    """A hand's size in px: the longest side of the bounding box of its landmarks but the wrist
    (a wrist out of frame is guessed, and the guess wanders from frame to frame)."""
    return float(np.ptp(np.asarray(points, dtype=np.float64)[1:, :2], axis=0).max())


def _box(points: np.ndarray) -> np.ndarray:
    p = np.asarray(points)[:, :2]
    return np.concatenate([p.min(0), p.max(0)])


def box_overlap(a: Union[Sequence[float], np.ndarray], b: Union[Sequence[float], np.ndarray]) -> float:
    """Intersection over the smaller box: one hand found from two regions often gives one box
    inside the other, which IoU alone scores low."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(ix * iy / smaller) if smaller > 0 else 0.0


def face_box(transform: np.ndarray) -> tuple[float, float, float, float]:
    """The square (x0, y0, x1, y1, plate px) palm searches are placed around, from a face's transform."""
    inverse = align.invert(transform)
    cx, cy = align.apply(inverse, np.array([FACE_BOX_CENTRE]))[0]
    half = FACE_BOX_SIDE * math.sqrt(abs(np.linalg.det(inverse[:, :2]))) / 2
    return (float(cx - half), float(cy - half), float(cx + half), float(cy + half))


def face_regions(face_box: Sequence[float],
                 layout: Sequence[tuple[float, float]] = FACE_REGIONS) -> list[tuple[float, float, float, float]]:
    """Square palm-search regions (x0, y0, x1, y1, plate px) around a face box; they may reach past the frame."""
    x0, y0, x1, y1 = face_box
    size = max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return [(cx - k * size / 2, cy + o * size - k * size / 2, cx + k * size / 2, cy + o * size + k * size / 2)
            for k, o in layout]


# -- pixels -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlateView:
    """One frame as the hand models read it: plate-array pixels over the data window, the
    window's origin in plate px, and how to show them as sRGB."""

    rgb: np.ndarray
    origin: tuple[float, float] = (0.0, 0.0)
    plate_space: str = colour.DEFAULT_PLATE_SPACE
    config: str = colour.DEFAULT_CONFIG

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """The pixels' extent in plate px (x0, y0, x1, y1)."""
        h, w = self.rgb.shape[:2]
        return (self.origin[0], self.origin[1], self.origin[0] + w, self.origin[1] + h)


def warp_srgb(view: PlateView, matrix: np.ndarray, size: int, replicate: bool) -> np.ndarray:
    """A ``size`` square sRGB 0..1 float32 picture of the plate through ``matrix`` (plate px ->
    output px), as the face models get theirs (``detect.warp_to_srgb``: only the region read is
    shrunk, warped, sanitised and converted). Outside the plate: black (``replicate`` False) or
    the edge pixels repeated."""
    return warp_to_srgb(view.rgb, matrix, (size, size), view.plate_space, view.config, origin=view.origin,
                        replicate=replicate)


def _nchw(picture: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(picture.transpose(2, 0, 1)[None], dtype=np.float32)


# -- the models -------------------------------------------------------------------------------

@dataclass
class Palm:
    """A palm found by the detector, in plate px."""

    box: np.ndarray  # x0, y0, x1, y1
    score: float
    keypoints: np.ndarray  # (7, 2)

    def hand_rect(self) -> Rect:
        """The hand region for this palm (MediaPipe's palm -> hand ROI)."""
        b = self.box
        rect = Rect((b[0] + b[2]) / 2, (b[1] + b[3]) / 2, b[2] - b[0], b[3] - b[1],
                    _up_rotation(self.keypoints[0], self.keypoints[2]))
        return rect.transformed(PALM_SCALE, PALM_SHIFT)


@dataclass
class Hand:
    """One hand on one frame: 21 landmarks (x, y plate px; z relative depth in px, smaller = nearer)."""

    landmarks: np.ndarray  # (21, 3)
    presence: float
    handedness: float  # the model's score: above 0.5, the subject's right hand in unmirrored footage
    track: int = 0  # hand track id; 0 until linked
    source: str = "palm"  # palm (a detection), track (the previous frame's), back (the next frame's)

    def box(self) -> np.ndarray:
        return _box(self.landmarks)

    def next_rect(self, bounds: Optional[Sequence[float]] = None) -> Rect:
        """Where to look for this hand on a neighbouring frame. With ``bounds`` (the frame's x0,
        y0, x1, y1), points the model guessed outside the frame count as on its edge: else a hand
        cut by the frame edge grows its region frame after frame (the guessed wrist drifts out)."""
        return self.next_rects(bounds)[0]

    def next_rects(self, bounds: Optional[Sequence[float]] = None) -> list[Rect]:
        """``next_rect`` and, after it, the regions to try when it holds no hand (``TRACK_RETRIES``)."""
        points = self.landmarks[:, :2]
        if bounds is not None:
            points = np.clip(points, [bounds[0], bounds[1]], [bounds[2], bounds[3]])
        rect = landmarks_rect(points)
        return [rect.transformed(scale, shift) for scale, shift in ((TRACK_SCALE, TRACK_SHIFT),) + TRACK_RETRIES]


def palm_anchors(size: int = PALM_SIZE, strides: Sequence[int] = PALM_STRIDES, per_layer: int = 2) -> np.ndarray:
    """SSD anchor centres ``(2016, 2)``, normalised: consecutive layers of one stride share a grid
    with 2 anchors per cell and layer (24x24x2 + 12x12x6)."""
    out, i = [], 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = int(math.ceil(size / strides[i]))
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs + 0.5) / cells, (ys + 0.5) / cells], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centres, per_layer * (j - i), axis=1).reshape(-1, 2))
        i = j
    return np.concatenate(out).astype(np.float64)


class _Model:
    """One prepared hand model in onnxruntime; a failure to load or run is a FaceGraftError."""

    def __init__(self, name: str, device: str, threads: Optional[int]) -> None:
        self.path = assets.model_path(name)
        # on the CPU, PRelus and channel pads rewritten for speed (``graphs``; the hand model has none)
        self.session = runtime.create_session(graphs.for_device(self.path, device), device=device, threads=threads)
        self.input = self.session.get_inputs()[0].name

    def __call__(self, picture: np.ndarray) -> list[np.ndarray]:
        try:
            return list(self.session.run(None, {self.input: _nchw(picture)}))
        except Exception as exc:  # onnxruntime raises its own types
            raise FaceGraftError(f"the hand model failed to run: {exc}", path=str(self.path),
                                 hint="run `facegraft setup --force` to prepare the hand models again, "
                                      "or track with --no-hands") from exc


class PalmDetector:
    def __init__(self, device: str = "auto", threads: Optional[int] = None, min_score: float = SEARCH_MIN_SCORE) -> None:
        self.model = _Model(PALM_MODEL, device, threads)
        self.anchors = palm_anchors() * PALM_SIZE
        self.min_score = min_score

    def run(self, picture: np.ndarray) -> list[Palm]:
        """Palms in one 192 px sRGB 0..1 picture; coordinates in its px."""
        raw, logits = self.model(picture)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[0, :, 0].astype(np.float64), -100.0, 100.0)))
        keep = np.nonzero(scores >= self.min_score)[0]
        if keep.size == 0:
            return []
        anchors, r = self.anchors[keep], raw[0, keep].astype(np.float64)
        cx, cy = r[:, 0] + anchors[:, 0], r[:, 1] + anchors[:, 1]
        boxes = np.stack([cx - r[:, 2] / 2, cy - r[:, 3] / 2, cx + r[:, 2] / 2, cy + r[:, 3] / 2], axis=1)
        keypoints = r[:, 4:4 + 2 * PALM_KEYPOINTS].reshape(-1, PALM_KEYPOINTS, 2) + anchors[:, None, :]
        return [Palm(b, s, k) for b, s, k in weighted_nms(boxes, scores[keep], keypoints, PALM_NMS_IOU)]

    def detect(self, view: PlateView, region: Sequence[float]) -> list[Palm]:
        """Palms in ``region`` (x0, y0, x1, y1 plate px, letterboxed into the detector's square)."""
        x0, y0, x1, y1 = region
        k = PALM_SIZE / max(x1 - x0, y1 - y0)
        ox, oy = (PALM_SIZE - (x1 - x0) * k) / 2 - x0 * k, (PALM_SIZE - (y1 - y0) * k) / 2 - y0 * k
        picture = warp_srgb(view, np.array([[k, 0.0, ox], [0.0, k, oy]]), PALM_SIZE, replicate=False)
        shift = np.array([ox, oy])
        return [Palm(((p.box.reshape(2, 2) - shift) / k).reshape(4), p.score, (p.keypoints - shift) / k)
                for p in self.run(picture)]


class HandLandmarker:
    def __init__(self, device: str = "auto", threads: Optional[int] = None) -> None:
        self.model = _Model(LANDMARK_MODEL, device, threads)

    def run(self, view: PlateView, rect: Rect) -> Hand:
        """The hand in ``rect`` (presence may be low: nothing there)."""
        matrix = rect.to_crop(LANDMARK_SIZE)
        coords, presence, handedness, _ = self.model(warp_srgb(view, matrix, LANDMARK_SIZE, replicate=True))
        points = coords.reshape(POINTS, 3).astype(np.float64)
        xy = align.apply(align.invert(matrix), points[:, :2])
        z = points[:, 2] / 0.4 * (max(rect.width, rect.height) / LANDMARK_SIZE)  # MediaPipe's z scale
        return Hand(np.column_stack([xy, z]), float(presence.ravel()[0]), float(handedness.ravel()[0]))


def merge_palms(palms: list[Palm]) -> list[Palm]:
    """Weighted non-maximum suppression over palms from several searches."""
    if len(palms) < 2:
        return palms
    kept = weighted_nms(np.array([p.box for p in palms]), np.array([p.score for p in palms]),
                        np.stack([p.keypoints for p in palms]), PALM_NMS_IOU)
    return [Palm(np.asarray(b), s, k) for b, s, k in kept]


# -- hands over a shot ------------------------------------------------------------------------

@dataclass
class FinderOptions:
    max_hands: int = MAX_HANDS
    min_presence: float = MIN_PRESENCE
    search_every: int = SEARCH_EVERY
    idle_every: int = IDLE_EVERY
    presence_drop: float = PRESENCE_DROP
    landmark_jump: float = LANDMARK_JUMP
    min_hand_face_ratio: float = MIN_HAND_FACE_RATIO


@dataclass(frozen=True)
class FaceCue:
    """What the hand search watches on a face between searches: its track id, FaceMesh landmarks
    (plate px) and presence."""

    track: int
    landmarks: np.ndarray
    presence: float


def landmark_jump(before: np.ndarray, after: np.ndarray) -> float:
    """How far a face's mesh points moved beyond a similarity (rigid motion and zoom) between two
    frames: the mean residual of the least-squares fit, in face sizes (the longest side of the
    mesh's bounds)."""
    a = np.asarray(before, dtype=np.float64)[:468, :2]
    b = np.asarray(after, dtype=np.float64)[:468, :2]
    size = float(np.ptp(b, axis=0).max())
    if not (size > 0 and np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    fit = align.estimate_similarity(a, b)
    return float(np.linalg.norm(align.apply(fit, a) - b, axis=1).mean() / size)


def face_change(searched: Sequence[FaceCue], before: Sequence[FaceCue], now: Sequence[FaceCue],
                presence_drop: float = PRESENCE_DROP, jump: float = LANDMARK_JUMP) -> Optional[str]:
    """Why the faces call for a palm search now, or None: ``faces`` (a face came or went since the
    frame before), ``presence`` (FaceMesh presence fell ``presence_drop`` below what it was at the
    last search, ``searched``), ``landmarks`` (``landmark_jump`` from the frame before over ``jump``)."""
    if {c.track for c in before} != {c.track for c in now}:
        return "faces"
    at_search = {c.track: c.presence for c in searched}
    previous = {c.track: c for c in before}
    for cue in now:
        if at_search.get(cue.track, cue.presence) - cue.presence > presence_drop:
            return "presence"
    for cue in now:
        if landmark_jump(previous[cue.track].landmarks, cue.landmarks) > jump:
            return "landmarks"
    return None


class HandFinder:
    """Hands on consecutive frames of a shot, near the faces given.

    Each frame: regions from the previous frame's hands (tracking), plus palm searches in squares
    around each face (``face_regions``) when one is due (``search_reason``): all the squares on
    the first frame, every ``search_every``-th frame while a hand is followed and on every frame
    for a few frames after the tracking lost one, and when a face came or went, its FaceMesh
    presence dropped or its landmarks jumped (``face_change``); while no hand is followed, one
    square per face every ``idle_every``-th frame, in turn. A hand first found on a searched
    frame is followed back onto the frames before it by ``backfill``. Every region goes through
    the landmark model; hands below ``min_presence``, false palms, and duplicates are dropped.
    No face: no search. ``searches`` counts the searches by reason.
    """

    def __init__(self, device: str = "auto", threads: Optional[int] = None,
                 options: Optional[FinderOptions] = None) -> None:
        self.options = options or FinderOptions()
        self.palms = PalmDetector(device, threads)
        self.landmarker = HandLandmarker(device, threads)
        self.reset()

    def reset(self) -> None:
        self.previous: list[Hand] = []
        self.recent: list[tuple[Hand, int]] = []  # hands of the last frames, with the frame they were on
        self.since_search = 10**9
        self.next_id = 1
        self.frame = 0
        self.turn = 0  # idle searches so far (which square is next)
        self.cues: Optional[list[FaceCue]] = None  # the faces on the frame before (None: not watched)
        self.searched_cues: list[FaceCue] = []  # the faces at the last search
        self.searches: dict[str, int] = {}
        self.retries = 0  # landmark-model runs on a tracking region's retries (``TRACK_RETRIES``)

    def search(self, view: PlateView, faces: Sequence[Sequence[float]],
               layout: Sequence[tuple[float, float]] = FACE_REGIONS) -> list[Palm]:
        """Palms in the squares (``layout``) around each face, merged. (The whole frame is not
        searched: a hand matters where it can cover a face, and the face squares see it bigger;
        on the woman's clip the whole frame found her hand on 4 frames the squares missed, of 171.)"""
        palms: list[Palm] = []
        for face in faces:
            for region in face_regions(face, layout):
                palms += self.palms.detect(view, region)
        return merge_palms(palms)

    def search_reason(self, cues: Optional[Sequence[FaceCue]] = None) -> Optional[str]:
        """Why the next frame is searched for palms (None: it is not): ``start`` (the first
        frame), ``lost`` (a followed hand was lost a moment ago), ``following`` (a hand is
        followed), a ``face_change`` reason for ``cues`` (the faces on the next frame), or
        ``idle`` (one square per face)."""
        if self.since_search >= 10**9:
            return "start"
        if not self.previous and self.recent:
            return "lost"
        if self.previous:
            return "following" if self.since_search >= self.options.search_every else None
        if cues is not None and self.cues is not None:
            change = face_change(self.searched_cues, self.cues, cues, self.options.presence_drop,
                                 self.options.landmark_jump)
            if change is not None:
                return change
        return "idle" if self.since_search >= self.options.idle_every else None

    def _false_palm(self, hand: Hand, faces: Sequence[Sequence[float]]) -> bool:
        f = np.asarray(faces, dtype=np.float64).reshape(-1, 4)
        centre = hand.landmarks[:, :2].mean(0)
        nearest = f[np.argmin(np.hypot((f[:, 0] + f[:, 2]) / 2 - centre[0], (f[:, 1] + f[:, 3]) / 2 - centre[1]))]
        face = max(nearest[2] - nearest[0], nearest[3] - nearest[1])
        return hand_size(hand.landmarks) < self.options.min_hand_face_ratio * face

    def _first_hand(self, view: PlateView, rects: Sequence[Rect], faces: Sequence[Sequence[float]]) -> Optional[Hand]:
        """The landmark model on ``rects`` in turn: the first hand that passes (presence, not a false palm)."""
        for attempt, rect in enumerate(rects):
            hand = self.landmarker.run(view, rect)
            if attempt:
                self.retries += 1
            if hand.presence >= self.options.min_presence and not self._false_palm(hand, faces):
                return hand
        return None

    def landmarks(self, view: PlateView, regions: Iterable[tuple[Sequence[Rect], str, int]],
                  faces: Sequence[Sequence[float]], hands: Optional[list[Hand]] = None) -> list[Hand]:
        """The landmark model on each region ``(rects, source, track id)`` (``rects`` tried in turn
        until one holds a hand); what passes joins ``hands`` (a duplicate keeps the higher presence
        and the older track id)."""
        hands = [] if hands is None else list(hands)
        for rects, source, track in regions:
            hand = self._first_hand(view, rects, faces)
            if hand is None:
                continue
            hand.source, hand.track = source, track
            same = next((i for i, o in enumerate(hands) if box_overlap(o.box(), hand.box()) > DUPLICATE_OVERLAP), None)
            if same is None:
                hands.append(hand)
            elif hand.presence > hands[same].presence:
                hand.track = hands[same].track or hand.track
                hands[same] = hand
        hands.sort(key=lambda h: -h.presence)
        return hands[: self.options.max_hands]

    def __call__(self, view: PlateView, faces: Sequence[Sequence[float]],
                 cues: Optional[Sequence[FaceCue]] = None) -> list[Hand]:
        """Hands on the next frame of the shot; ``faces``: the face boxes on it (plate px);
        ``cues``: the same faces' landmarks and presence, watched for changes (``face_change``)."""
        if not len(faces):
            self.previous = []
            self.cues = [] if cues is not None else None
            self.frame += 1
            return []
        regions = [(h.next_rects(view.bounds), "track", h.track) for h in self.previous]
        self.since_search += 1
        reason = self.search_reason(cues)
        if reason is not None:
            layout: Sequence[tuple[float, float]] = FACE_REGIONS
            if reason == "idle":
                layout = (FACE_REGIONS[IDLE_ORDER[self.turn % len(IDLE_ORDER)]],)
                self.turn += 1
            self.since_search = 0
            self.searches[reason] = self.searches.get(reason, 0) + 1
            self.searched_cues = list(cues or [])
            regions += [([p.hand_rect()], "palm", 0) for p in self.search(view, faces, layout)]
        self.cues = list(cues) if cues is not None else None
        hands = self.landmarks(view, regions, faces)
        for hand in hands:
            if not hand.track:
                hand.track = self._known_track(hand, hands)
        self.previous = hands
        self.recent = [(h, self.frame) for h in hands] + [
            (h, f) for h, f in self.recent
            if self.frame - f <= LINK_FRAMES and not any(o.track == h.track for o in hands)]
        self.frame += 1
        return hands

    def _known_track(self, hand: Hand, others: Sequence[Hand]) -> int:
        """The id of a hand seen in the last ``LINK_FRAMES`` frames where this one is (found again
        by a palm search after the tracking lost it), else a new id."""
        taken = {o.track for o in others if o is not hand}
        for old, _ in self.recent:
            if old.track not in taken and box_overlap(old.box(), hand.box()) > LINK_OVERLAP:
                return old.track
        self.next_id += 1
        return self.next_id - 1

    def backfill(self, view: PlateView, faces: Sequence[Sequence[float]], found: list[Hand],
                 following: Sequence[Hand]) -> list[Hand]:
        """``found`` (a frame's hands) plus the hands of the frames after it followed backwards
        (``following``, from ``ahead``), for the hands ``found`` lacks; ``found`` itself when there
        are none to follow.

        A hand the backward step loses (its region drifts as the forward one can) is looked for
        with a palm search around the faces, as the forward pass does after losing one; a palm
        there counts only where it overlaps the hand followed (it keeps that hand's track id)."""
        lacking = [h for h in following if not any(box_overlap(o.box(), h.box()) > DUPLICATE_OVERLAP for o in found)]
        if not lacking or not len(faces):
            return found
        out = self.landmarks(view, [(h.next_rects(view.bounds), "back", h.track) for h in lacking], faces, found)
        still = [h for h in lacking if not any(o.track == h.track for o in out)]
        if not still:
            return out
        self.searches["back"] = self.searches.get("back", 0) + 1
        regions = []
        for palm in self.search(view, faces):
            rect = palm.hand_rect()
            near = [h for h in still if box_overlap(_box(rect.corners()), h.box()) > LINK_OVERLAP]
            if near:
                regions.append(([rect], "back", near[0].track))
        return self.landmarks(view, regions, faces, out) if regions else out


def backfill_needed(found: Sequence[Hand], following: Sequence[Hand]) -> bool:
    """True when the next frame has a hand this frame lacks (worth reading this frame again)."""
    return any(not any(box_overlap(o.box(), h.box()) > DUPLICATE_OVERLAP for o in found) for h in following)


def ahead(after: Sequence[Sequence[Hand]], frames: int = LINK_FRAMES) -> list[Hand]:
    """The hands the backward pass looks for on a frame, given the hands of the frames after it
    (``after[0]`` the next): each hand track's nearest appearance within ``frames`` frames. A hand
    the backward step lost a frame or two after this one is looked for here again, as the forward
    pass searches for a few frames after losing one."""
    nearest: dict[int, Hand] = {}
    for found in after[:frames]:
        for hand in found:
            nearest.setdefault(hand.track, hand)
    return list(nearest.values())


# -- mattes -----------------------------------------------------------------------------------

_SHIFT = 4  # sub-pixel bits for OpenCV drawing


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round((np.asarray(points, dtype=np.float64)[:, :2] - 0.5) * (1 << _SHIFT)).astype(np.int32)


def hand_matte(points: np.ndarray, shape: tuple[int, int], hull_margin: float = HULL_MARGIN,
               finger_radius: float = FINGER_RADIUS, softness: float = SOFTNESS) -> np.ndarray:
    """One hand's matte ``[H, W]`` float32 0..1 from its 21 landmarks (continuous px of the target):
    the hull of the palm's landmarks grown by ``hull_margin`` plus bone strokes of radius
    ``finger_radius`` (hand sizes), blurred by ``softness`` hand sizes. The hull of all 21 points
    would also cover what shows between spread fingers (an eye between two fingertips)."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    size = max(hand_size(pts), 1.0)
    sigma = softness * size
    pad = int(math.ceil(3 * sigma)) + 1 if sigma >= 0.3 else 0  # the hand goes on past the edges: blur it too
    h, w = shape
    canvas = np.zeros((h + 2 * pad, w + 2 * pad), np.uint8)
    pts = pts + pad
    fixed = _fixed(pts)
    hull = _fixed(mattes.hull(pts[list(PALM)]))
    cv2.fillPoly(canvas, [hull], 255, cv2.LINE_AA, shift=_SHIFT)
    grow = max(1, int(round(2 * hull_margin * size)))
    cv2.polylines(canvas, [hull], True, 255, grow, cv2.LINE_AA, shift=_SHIFT)
    radius = finger_radius * size
    width = max(1, int(round(2 * radius)))
    for a, b in BONES:
        cv2.line(canvas, tuple(fixed[a]), tuple(fixed[b]), 255, width, cv2.LINE_AA, shift=_SHIFT)
    for p in fixed:
        cv2.circle(canvas, tuple(p), int(round(radius * (1 << _SHIFT))), 255, -1, cv2.LINE_AA, shift=_SHIFT)
    matte: np.ndarray = canvas.astype(np.float32) / 255.0
    if pad:
        blurred = cv2.GaussianBlur(matte, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
        # 12 bits: inside the hand exactly 1 (the plate kept bit for bit), outside exactly 0
        matte = np.round(blurred * 4096.0) / 4096.0
    return np.ascontiguousarray(matte[pad:pad + h, pad:pad + w], dtype=np.float32)


def hands_matte(hands: Iterable[np.ndarray], shape: tuple[int, int], offset: Sequence[float] = (0.0, 0.0)) -> np.ndarray:
    """The union of hand mattes ``[H, W]`` over an array whose first pixel is at ``offset`` (plate px)."""
    out = np.zeros(shape, np.float32)
    shift = np.asarray(offset, dtype=np.float64)
    for points in hands:
        local = np.asarray(points, dtype=np.float64)[:, :2] - shift
        h, w = shape
        lo, hi = local.min(0), local.max(0)
        reach = hand_size(local) * (HULL_MARGIN + FINGER_RADIUS + 3 * SOFTNESS) + 2
        if hi[0] + reach < 0 or hi[1] + reach < 0 or lo[0] - reach > w or lo[1] - reach > h:
            continue
        np.maximum(out, hand_matte(local, shape), out=out)
    return out


def face_occlusion(face_landmarks: np.ndarray, transform: np.ndarray, hands: Sequence[np.ndarray],
                   res: int = OCCLUSION_RES, coverage: str = "whole_face") -> float:
    """The fraction of the face matte the hands' mattes cover (0..1), measured in the aligned crop."""
    if not len(hands):
        return 0.0
    to_crop = align.crop_matrix(transform, res, coverage)
    face = mattes.face_matte(align.apply(to_crop, np.asarray(face_landmarks)[:, :2]), (res, res))
    area = float(face.sum())
    if area <= 0:
        return 0.0
    covered = hands_matte([align.apply(to_crop, np.asarray(h)[:, :2]) for h in hands], (res, res))
    return float(np.clip((face * covered).sum() / area, 0.0, 1.0))
