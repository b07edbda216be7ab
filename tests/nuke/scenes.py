"""Small synthetic plates and FaceGraft renders for the Nuke graph tests (real EXRs through OpenImageIO).

A plate has rgba plus the layers a comp carries (``depth.Z``, ``motion.u/v``, a cryptomatte layer);
a render has what ``facegraft render`` writes (docs/layers.md): ``R,G,B,A`` = swap over plate,
``swap.R/G/B/A`` premultiplied, ``matte.face``, ``matte.occlusion``, ``matte.holdout``, ``stmap.R/G`` -- in one part, or
with the FaceGraft layers in a second part on a data window around the face.
"""
from __future__ import annotations

import os

import numpy as np
import OpenImageIO as oiio

WIDTH, HEIGHT = 64, 48
PLATE_EXTRA = ("Z", "motion.u", "motion.v", "crypto00.R", "crypto00.G", "crypto00.B", "crypto00.A")
FACE_BOX = (16, 10, 48, 40)  # x0, y0, x1, y1 of the face's region


def frame_file(pattern: str, frame: int) -> str:
    return pattern.replace("####", f"{frame:04d}")


def _write(path: str, parts: list[tuple[oiio.ImageSpec, np.ndarray]]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    out = oiio.ImageOutput.create(path)
    assert out is not None
    specs = [spec for spec, _ in parts]
    assert out.open(path, specs) if len(specs) > 1 else out.open(path, specs[0]), oiio.geterror()
    for index, (spec, pixels) in enumerate(parts):
        if index:
            assert out.open(path, spec, "AppendSubimage"), oiio.geterror()
        assert out.write_image(pixels), oiio.geterror()
    out.close()


def plate_pixels(frame: int, gain: float = 1.0) -> dict[str, np.ndarray]:
    """EXR channel name -> pixels of a plate frame (values above 1 and below 0 included)."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = (xx / WIDTH * 1.5 - 0.1 + (frame - 1000) * 0.01) * gain
    pixels = {"R": base, "G": (yy / HEIGHT) * gain, "B": np.full_like(base, 0.25 * gain), "A": np.ones_like(base)}
    for index, name in enumerate(PLATE_EXTRA):
        pixels[name] = (xx * 0.1 + yy * 0.01 + index + frame * 0.001).astype(np.float32)
    return pixels


def write_plate(pattern: str, frames: range, gain: float = 1.0) -> str:
    for frame in frames:
        pixels = plate_pixels(frame, gain)
        names = list(pixels)
        spec = oiio.ImageSpec(WIDTH, HEIGHT, len(names), oiio.FLOAT)
        spec.channelnames = tuple(names)
        spec.attribute("compression", "zip")
        _write(frame_file(pattern, frame), [(spec, np.stack([pixels[n] for n in names], -1))])
    return pattern


def face_matte() -> np.ndarray:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32) + 0.5
    x0, y0, x1, y1 = FACE_BOX
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    r = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2
    return np.clip((1.0 - r) * 3.0, 0.0, 1.0).astype(np.float32)


def render_pixels(plate: dict[str, np.ndarray], frame: int) -> dict[str, np.ndarray]:
    """What FaceGraft writes for ``plate``: a face colour premultiplied by the matte, merged over the plate."""
    matte = face_matte()
    colour = [np.full_like(matte, 0.8 + 0.01 * (frame - 1000)), np.full_like(matte, 0.4), np.full_like(matte, 0.3)]
    swap = [c * matte for c in colour]
    out = {name: plate[name] * (1.0 - matte) + s for name, s in zip("RGB", swap)}
    out["A"] = matte + plate["A"] * (1.0 - matte)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32) + 0.5
    occlusion = np.clip(1.0 - np.abs(yy - (FACE_BOX[1] + 12.0)) / 3.0, 0, 1) * (matte > 0)  # a band like sunglasses
    out.update({"swap.R": swap[0], "swap.G": swap[1], "swap.B": swap[2], "swap.A": matte,
                "matte.face": np.clip(matte * 1.2, 0, 1), "matte.occlusion": occlusion.astype(np.float32),
                "matte.holdout": np.zeros_like(matte)})
    inside = (matte > 0).astype(np.float32)
    out["stmap.R"] = (xx / WIDTH) * inside
    out["stmap.G"] = (1.0 - yy / HEIGHT) * inside
    for name in PLATE_EXTRA:
        out[name] = plate[name]
    return out


FACEGRAFT_CHANNELS = ("swap.R", "swap.G", "swap.B", "swap.A", "matte.face", "matte.occlusion", "matte.holdout",
                      "stmap.R", "stmap.G")


def write_render(pattern: str, frames: range, plate_gain: float = 1.0, multipart: bool = False,
                 convert: object = None) -> dict[int, dict[str, np.ndarray]]:
    """Render frames as FaceGraft would; ``multipart``: FaceGraft layers in a second part on the face's box.
    ``convert(rgb [H,W,3]) -> rgb`` turns the working-space pixels into the render's colour space."""
    written = {}
    for frame in frames:
        pixels = render_pixels(plate_pixels(frame, plate_gain), frame)
        if convert is not None:
            for group in (("R", "G", "B"), ("swap.R", "swap.G", "swap.B")):
                rgb = np.stack([pixels[c] for c in group], -1)
                if group[0] == "swap.R":  # unpremultiply, convert, premultiply
                    alpha = pixels["swap.A"][..., None]
                    safe = np.where(alpha > 0, alpha, 1.0)
                    rgb = np.where(alpha > 0, convert(rgb / safe) * alpha, 0.0)
                else:
                    rgb = convert(rgb)
                for index, c in enumerate(group):
                    pixels[c] = rgb[..., index].astype(np.float32)
        written[frame] = pixels
        beauty = ["R", "G", "B", "A", *PLATE_EXTRA]
        names = beauty if multipart else beauty + list(FACEGRAFT_CHANNELS)
        spec = oiio.ImageSpec(WIDTH, HEIGHT, len(names), oiio.HALF)
        spec.channelnames = tuple(names)
        spec.attribute("compression", "zip")
        parts = [(spec, np.stack([pixels[n] for n in names], -1).astype(np.float16))]
        if multipart:
            x0, y0, x1, y1 = FACE_BOX
            face = oiio.ImageSpec(x1 - x0, y1 - y0, len(FACEGRAFT_CHANNELS), oiio.HALF)
            face.x, face.y = x0, y0
            face.full_x, face.full_y, face.full_width, face.full_height = 0, 0, WIDTH, HEIGHT
            face.channelnames = FACEGRAFT_CHANNELS
            face.attribute("compression", "zip")
            face.attribute("name", "facegraft")
            spec.attribute("name", "rgba")
            block = np.stack([pixels[n][y0:y1, x0:x1] for n in FACEGRAFT_CHANNELS], -1).astype(np.float16)
            parts.append((face, block))
        _write(frame_file(pattern, frame), parts)
    return written
