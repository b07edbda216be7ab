"""Small facesets cut straight from the sample clips (fixed boxes, drawn mattes), for tests
of the network, loop and export that need faces but not the tracker."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from facegraft.inference import assets
from facegraft.inference.io import colour
from facegraft.training.faceset import FacesetWriter
from facegraft.training.loop import TrainConfig

# (clip, box x, y, size) roughly around the face in the 640x360 sample clips
CLIPS = {
    "man": ("single_face.mp4", 250, 40, 180),
    "woman": ("WolfgangLanger_Pexels.mp4", 230, 30, 200),
}


def clip_faceset(folder: Path, identity: str, res: int = 32, count: int = 12, step: int = 3) -> Path:
    clip, x, y, size = CLIPS[identity]
    video = cv2.VideoCapture(str(assets.footage_path(clip)))
    to_model = colour.converter("sRGB - Texture", colour.DEFAULT_MODEL_SPACE)
    yy, xx = np.mgrid[0:res, 0:res] + 0.5
    face = (((xx - res / 2) / (0.36 * res)) ** 2 + ((yy - res * 0.55) / (0.45 * res)) ** 2 <= 1).astype(np.float32)
    eye = lambda cx: ((((xx - cx) ** 2 + (yy - 0.42 * res) ** 2) ** 0.5) < 0.08 * res).astype(np.float32)  # noqa: E731
    mouth = ((((xx - res / 2) / 0.14) ** 2 + ((yy - 0.75 * res) / 0.06) ** 2) < res**2).astype(np.float32)
    mattes = {"face": face, "left_eye": eye(0.62 * res), "right_eye": eye(0.38 * res), "mouth": mouth}
    with FacesetWriter(folder, identity=identity, resolution=res, coverage="whole_face",
                       colorspace=colour.DEFAULT_MODEL_SPACE, points=478, min_motion=0.0) as writer:
        frame = 0
        while writer.added < count:
            ok, bgr = video.read()
            if not ok:
                break
            if frame % step == 0:
                crop = cv2.resize(bgr[y:y + size, x:x + size], (res, res), interpolation=cv2.INTER_AREA)
                rgb = to_model(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
                marks = np.full((478, 2), frame, np.float32)
                writer.add(rgb, mattes, marks, source=clip, frame=frame)
            frame += 1
    return folder


TINY = dict(res=32, width=8, latent=32, batch=4, min_res=32, threads=1, preview_every=0, tensorboard=False, warmup=5, lr=5e-4)


def tiny_config(facesets: list[Path], out: Path, steps: int, **extra) -> TrainConfig:
    """A 32 px, width-8 training config that runs a step in milliseconds."""
    return TrainConfig(facesets=[str(f) for f in facesets], out=str(out), steps=steps, **{**TINY, **extra})
