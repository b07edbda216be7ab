"""Landmark consistency: FaceMesh and the iris model read the network's output inside the training
graph, and its eyes, eyelids, irises, brows and lips must sit where the input face has them.

The L1 and SSIM losses weigh a shut eye as a few dark pixels among thousands; this loss weighs it
as what it is, lids 0.2 eye widths too far apart. What matters most is the *swap* (another
identity's decoder on the same encoded face, what the exported model renders): its only teacher
is this loss, since there is no picture of the source actor making the plate actor's face.

How a face is read, as the tracker reads a plate (``facegraft.inference.track.landmarks``):

1. Model space (ACEScct) -> sRGB 0..1 (``to_srgb``: the tracker's OCIO conversion, written in torch
   so it is differentiable; checked against OCIO when the loss is built).
2. FaceMesh sees a 192 px square of the crop: the region FaceMesh saw on the plates, from the
   facesets' stored landmarks (``mesh_roi``, the same for every face: they are aligned to one
   template, and the augmentation moves them a little, as a plate's motion does between frames).
3. The iris model sees a 64 px square around each eye (2.3 x the corner distance, the second
   eye mirrored). Its eye contour gives the lids: FaceMesh's own lid points do not follow blinks.

The reference is read from the *target* (the un-warped, augmented input face) by the same
instrument, without gradient, rather than taken from the faceset's stored landmarks: the
stored points were measured on the full-resolution plate and smoothed over time (a short
blink halved), while both sides read here go through the same small, resampled crop, so a
face against itself scores exactly zero and any bias of the models on small crops cancels.
The augmentation (flip, rotation, colour) then needs no bookkeeping either. The output is read
through the reference's eye windows, so the two are compared in the same frame and the
gradient reaches the output's pixels only.

The error per face is the mean distance between output and reference points over the eye
distance (NME), averaged over the feature groups (eyes, irises, lips, brows) so the 40 lip
points do not outvote the 10 iris points. Faces FaceMesh does not find in the reference
(presence under the tracker's threshold) are left out.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour
from facegraft.inference.track import mattes
from facegraft.inference.track.landmarks import (
    EYES,
    IRIS_ROI_SCALE,
    IRIS_SIZE,
    LID_CONTOUR,
    MESH_SIZE,
    PRESENCE_THRESHOLD,
    Roi,
    roi_from_landmarks,
)

from .faceset import Faceset
from .landmark_net import face_mesh, iris_model

# feature groups: FaceMesh points (eye corners, lips, brows) and the iris model's (lids, irises)
CORNERS = tuple(i for a, b, _ in EYES for i in (a, b))
LIPS = tuple(mattes.REGIONS["lips"]) + tuple(mattes.REGIONS["mouth"])
BROWS = tuple(mattes.REGIONS["left_brow"]) + tuple(mattes.REGIONS["right_brow"])
GROUPS = ("eyes", "iris", "lips", "brows")
MIN_ROI = 0.25  # a mesh region smaller than this fraction of the crop means the landmarks do not outline faces

# ACEScct (Academy S-2016-001): linear segment below X_BRK, log2 above
_CCT_A, _CCT_B, _CCT_Y_BRK = 10.5402377416545, 0.0729055341958355, 0.155251141552511
_CCT_MAX = 1.5  # ACEScct of half-float's largest value is 1.468
_SRGB_LINEAR = "Linear Rec.709 (sRGB)"


class ColourToSrgb(nn.Module):
    """Model space -> the detectors' sRGB encoding, 0..1, differentiable.

    ACEScct is decoded to linear AP1, taken to linear Rec.709 by the config's own matrix, and
    encoded with the sRGB curve; a faceset already in the sRGB encoding passes through. Any other
    model space is refused by name. The result is checked against OCIO's conversion."""

    matrix: torch.Tensor

    def __init__(self, colorspace: str, config: str = colour.DEFAULT_CONFIG, where: str = "") -> None:
        super().__init__()
        self.colorspace = colorspace
        if colorspace == colour.SRGB_ENCODED:
            matrix = np.eye(3, dtype=np.float32)
        elif colorspace == colour.DEFAULT_MODEL_SPACE:
            matrix = colour.converter(colour.DEFAULT_PLATE_SPACE, _SRGB_LINEAR, config)(np.eye(3, dtype=np.float32))
        else:
            raise FaceGraftError(f"the landmark loss reads faces in {colour.DEFAULT_MODEL_SPACE} or {colour.SRGB_ENCODED}, "
                                 f"not '{colorspace}'", path=where,
                                 hint="extract the facesets in the default model space, or train without --landmarks")
        self.register_buffer("matrix", torch.from_numpy(np.asarray(matrix, np.float32)))  # rows: input primaries
        self._check(config, where)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[N,3,H,W]`` model space -> sRGB-encoded 0..1."""
        x = x.float()
        if self.colorspace == colour.SRGB_ENCODED:
            return x.clamp(0.0, 1.0)
        x = x.clamp(max=_CCT_MAX)  # beyond half-float range, and far beyond sRGB's 1: keeps exp2 (and its gradient) finite
        linear = torch.where(x <= _CCT_Y_BRK, (x - _CCT_B) / _CCT_A, torch.exp2(x * 17.52 - 9.72))
        rec709 = torch.einsum("nchw,cd->ndhw", linear, self.matrix).clamp(0.0, 1.0)
        return torch.where(rec709 <= 0.0031308, 12.92 * rec709, 1.055 * rec709.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)

    def _check(self, config: str, where: str) -> None:
        values = np.linspace(-0.1, 0.8, 10, dtype=np.float32)
        grid = np.stack(np.meshgrid(values, values, values), -1).reshape(-1, 3)
        expected = np.clip(colour.converter(self.colorspace, colour.SRGB_ENCODED, config)(grid), 0.0, 1.0)
        with torch.no_grad():
            got = self(torch.from_numpy(grid.T.copy()).reshape(1, 3, -1, 1)).reshape(3, -1).T.numpy()
        error = float(np.abs(got - expected).max())
        if error > 2e-3:
            raise FaceGraftError(f"the landmark loss's {self.colorspace} -> sRGB conversion differs from OCIO's by "
                                 f"{error:.4f} under config {config}", path=where,
                                 hint="train without --landmarks, or extract the facesets with the default OCIO config")


def mesh_roi(facesets: Sequence[Faceset], res: int, count: int = 256) -> Roi:
    """The FaceMesh region in training-crop px: the median of the regions the stored landmarks give
    (``roi_from_landmarks``, as the tracker follows a face), over up to ``count`` faces spread evenly."""
    rois = []
    for fs in facesets:
        if fs.points < 468:
            raise FaceGraftError(f"the faceset stores {fs.points} landmarks, not FaceMesh's 468", path=str(fs.path),
                                 hint="extract it with `facegraft extract`, or train without --landmarks")
        picks = np.unique(np.linspace(0, len(fs) - 1, min(count, len(fs))).round().astype(int))
        scale = res / fs.resolution
        for i in picks:
            rois.append(roi_from_landmarks(np.asarray(fs.landmarks[i], np.float64) * scale))
    cx, cy, size, angle = (float(np.median([getattr(r, k) for r in rois])) for k in ("cx", "cy", "size", "angle"))
    if not size >= MIN_ROI * res:
        raise FaceGraftError(f"the stored landmarks of the facesets do not outline faces (FaceMesh region {size:.1f} px "
                             f"of a {res} px crop)", path=", ".join(str(fs.path) for fs in facesets),
                             hint="extract the facesets with `facegraft extract`, or train without --landmarks")
    return Roi(cx, cy, size, angle)


def _inverse_maps(m: torch.Tensor) -> torch.Tensor:
    """``[..., 2, 3]`` affine maps -> their inverses."""
    full = torch.cat([m, torch.tensor([0.0, 0.0, 1.0], dtype=m.dtype, device=m.device).expand(*m.shape[:-2], 1, 3)], -2)
    return torch.linalg.inv(full)[..., :2, :]


def _roi_maps(cx: torch.Tensor, cy: torch.Tensor, size: torch.Tensor, angle: torch.Tensor, res: int,
              mirror: bool) -> torch.Tensor:
    """``Roi.matrix`` for tensors of regions: image px -> ``res`` crop px, ``[N, 2, 3]``."""
    c, s, k = torch.cos(angle), torch.sin(angle), res / size
    fx = -k if mirror else k
    return torch.stack([torch.stack([fx * c, fx * s, res / 2 - fx * (c * cx + s * cy)], -1),
                        torch.stack([-k * s, k * c, res / 2 - k * (-s * cx + c * cy)], -1)], -2)


def _sampling_grid(crop_to_image: torch.Tensor, size: int, res: int) -> torch.Tensor:
    """``F.grid_sample`` grid ``[N, size, size, 2]`` reading a ``res`` px image through ``crop_to_image`` maps."""
    centres = torch.arange(size, dtype=crop_to_image.dtype, device=crop_to_image.device) + 0.5
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    uv1 = torch.stack([u, v, torch.ones_like(u)], -1)  # [S, S, 3] crop px
    image = torch.einsum("nij,hwj->nhwi", crop_to_image, uv1)
    return image / res * 2.0 - 1.0


def _apply(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``[N, 2, 3]`` maps applied to ``[N, P, 2]`` points."""
    return points @ maps[:, :, :2].transpose(1, 2) + maps[:, None, :, 2]


@dataclass
class FaceMarks:
    """What the landmark models read on a batch of crops, in training-crop px."""

    corners: torch.Tensor  # [N, 4, 2] FaceMesh eye corners (``EYES`` order)
    lips: torch.Tensor  # [N, 40, 2]
    brows: torch.Tensor  # [N, 20, 2]
    lids: torch.Tensor  # [N, 2, 14, 2] iris-model lids (``LID_CONTOUR``), image-left eye first
    iris: torch.Tensor  # [N, 2, 5, 2] iris centre and ring
    presence: torch.Tensor  # [N] FaceMesh face presence, 0..1
    eye_maps: torch.Tensor  # [N, 2, 2, 3] eye crop px -> training-crop px (the windows the eyes were read in)

    def take(self, index: torch.Tensor) -> FaceMarks:
        """The faces at ``index`` (``[M]`` positions, repeats allowed)."""
        return FaceMarks(*(getattr(self, f.name)[index] for f in fields(self)))

    def groups(self) -> dict[str, torch.Tensor]:
        n = self.corners.shape[0]
        return {"eyes": torch.cat([self.corners, self.lids.reshape(n, -1, 2)], 1), "iris": self.iris.reshape(n, -1, 2),
                "lips": self.lips, "brows": self.brows}

    def eye_distance(self) -> torch.Tensor:
        """``[N]``: distance between the two eyes' corner midpoints."""
        eyes = self.corners.reshape(-1, 2, 2, 2).mean(2)
        return (eyes[:, 0] - eyes[:, 1]).norm(dim=-1)


class LandmarkReader(nn.Module):
    """FaceMesh and the iris model (frozen) reading training crops of ``res`` px in ``colorspace``."""

    mesh_map: torch.Tensor
    mesh_grid: torch.Tensor

    def __init__(self, res: int, roi: Roi, colorspace: str, config: str = colour.DEFAULT_CONFIG, where: str = "") -> None:
        super().__init__()
        self.res = res
        self.roi = roi
        self.to_srgb = ColourToSrgb(colorspace, config, where)
        # channels-last: the graphs' depthwise convolutions run faster that way on the CPU (about 20% here)
        self.mesh = face_mesh().to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stub lacks memory_format
        self.iris = iris_model().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        to_image = _inverse_maps(torch.tensor(roi.matrix(MESH_SIZE), dtype=torch.float32)[None])
        self.register_buffer("mesh_map", to_image)  # [1, 2, 3] mesh crop px -> training-crop px
        self.register_buffer("mesh_grid", _sampling_grid(to_image, MESH_SIZE, res))

    def train(self, mode: bool = True) -> LandmarkReader:
        return super().train(False)  # always eval: the models are frozen

    def forward(self, faces: torch.Tensor, eye_maps: Optional[torch.Tensor] = None) -> FaceMarks:
        """Read ``faces [N,3,R,R]`` (model space); the eyes in ``eye_maps`` windows (else found from the mesh's corners)."""
        n = faces.shape[0]
        srgb = self.to_srgb(faces)
        coords, logit = self.mesh(self.mesh_crops(srgb))
        mesh = _apply(self.mesh_map.expand(n, -1, -1), coords.reshape(n, 468, 3)[..., :2])
        if eye_maps is None:
            eye_maps = self.eye_windows(mesh.detach())
        contour, iris = self.iris(self.eye_crops(srgb, eye_maps))
        maps = eye_maps.reshape(n * 2, 2, 3)
        lids = _apply(maps, contour.reshape(n * 2, 71, 3)[:, list(LID_CONTOUR), :2]).reshape(n, 2, -1, 2)
        rings = _apply(maps, iris.reshape(n * 2, 5, 3)[..., :2]).reshape(n, 2, 5, 2)
        return FaceMarks(mesh[:, list(CORNERS)], mesh[:, list(LIPS)], mesh[:, list(BROWS)], lids, rings,
                         torch.sigmoid(logit.reshape(n).float()), eye_maps)

    def mesh_crops(self, srgb: torch.Tensor) -> torch.Tensor:
        """FaceMesh's input ``[N,3,192,192]`` cut from sRGB crops ``[N,3,R,R]``."""
        grid = self.mesh_grid.expand(srgb.shape[0], -1, -1, -1)
        crops = F.grid_sample(srgb, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return crops.contiguous(memory_format=torch.channels_last)

    def eye_crops(self, srgb: torch.Tensor, eye_maps: torch.Tensor) -> torch.Tensor:
        """The iris model's input ``[2N,3,64,64]`` (each face's eyes in ``EYES`` order) cut from sRGB crops."""
        n = srgb.shape[0]
        grids = _sampling_grid(eye_maps.reshape(n * 2, 2, 3), IRIS_SIZE, self.res)
        crops = F.grid_sample(srgb.repeat_interleave(2, 0), grids, mode="bilinear", padding_mode="zeros",
                              align_corners=False)
        return crops.contiguous(memory_format=torch.channels_last)

    def eye_windows(self, mesh: torch.Tensor) -> torch.Tensor:
        """The iris model's windows (``landmarks._eye_roi``) for ``[N, 468, 2]`` points: ``[N, 2, 2, 3]`` crop -> image px."""
        maps = []
        for a, b, mirror in EYES:
            pa, pb = mesh[:, a], mesh[:, b]
            span = pb - pa
            angle = torch.atan2(span[:, 1], span[:, 0])
            size = span.norm(dim=-1).clamp_min(1.0) * IRIS_ROI_SCALE
            centre = (pa + pb) / 2
            maps.append(_inverse_maps(_roi_maps(centre[:, 0], centre[:, 1], size, angle, IRIS_SIZE, mirror)))
        return torch.stack(maps, 1)


def landmark_errors(pred: FaceMarks, ref: FaceMarks) -> torch.Tensor:
    """``[N, len(GROUPS)]``: per face and group, the mean point distance over the reference's eye distance."""
    scale = ref.eye_distance().clamp_min(1e-3)
    ref_groups = ref.groups()
    errors = []
    for name, points in pred.groups().items():
        distance = ((points - ref_groups[name]) ** 2).sum(-1).add(1e-8).sqrt()
        errors.append(distance.mean(-1) / scale)
    return torch.stack(errors, -1)


class LandmarkLoss(nn.Module):
    """``reference(target)`` once per batch (no gradient), then ``forward(pred, reference)`` for each output."""

    def __init__(self, reader: LandmarkReader) -> None:
        super().__init__()
        self.reader = reader

    @torch.no_grad()
    def reference(self, target: torch.Tensor) -> FaceMarks:
        return self.reader(target)

    def errors(self, pred: torch.Tensor, ref: FaceMarks) -> tuple[torch.Tensor, torch.Tensor]:
        """Per face: the error (NME averaged over the groups) ``[N]``, and whether FaceMesh found the reference face (0/1)."""
        errors = landmark_errors(self.reader(pred, ref.eye_maps), ref).mean(-1)
        return errors, (ref.presence >= PRESENCE_THRESHOLD).to(errors.dtype)

    def forward(self, pred: torch.Tensor, ref: FaceMarks) -> torch.Tensor:
        """The mean error over the faces FaceMesh finds in the reference; 0 if none."""
        errors, found = self.errors(pred, ref)
        return found_mean(errors, found)


def found_mean(errors: torch.Tensor, found: torch.Tensor) -> torch.Tensor:
    """The mean of ``errors`` over the ``found`` faces (0 when none is)."""
    return (errors * found).sum() / found.sum().clamp_min(1.0)


def build_landmark_loss(facesets: Sequence[Faceset], res: int) -> LandmarkLoss:
    """The landmark loss for training at ``res`` px on ``facesets`` (their stored landmarks place FaceMesh's region)."""
    first = facesets[0]
    roi = mesh_roi(facesets, res)
    return LandmarkLoss(LandmarkReader(res, roi, first.colorspace, first.ocio_config, str(first.path)))

