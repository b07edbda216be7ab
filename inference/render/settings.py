"""The settings that decide a render's pixels."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

from facegraft.inference.errors import FaceGraftError
from facegraft.inference.io import colour, layers
from facegraft.inference.render import blend, colormatch

ON_ERROR = ("fail", "skip", "hold")


@dataclass
class RenderSettings:
    """Everything that decides a frame's pixels (written to the header as ``facegraft/params``)."""

    plate_colorspace: str = colour.DEFAULT_PLATE_SPACE
    ocio_config: str = colour.DEFAULT_CONFIG
    color_match: str = "none"
    blend: str = "alpha"
    erode: float = 0.0
    feather: float = 0.0
    forehead: float = 0.2
    face: Optional[int] = None  # track id; None: the track file's target
    holdout: Optional[str] = None  # sequence pattern
    holdout_channel: str = "A"
    compression: Optional[str] = None  # None: the plate's own
    layers: str = "all"  # FaceGraft layers written: all, none, or a comma list of swap, matte, stmap

    def __post_init__(self) -> None:
        try:
            self.groups: tuple[str, ...] = layers.parse_groups(self.layers)
        except ValueError as exc:
            raise FaceGraftError(str(exc).replace("unknown layer(s)", "unknown --layers")) from None
        if self.color_match not in colormatch.MODES:
            raise FaceGraftError(f"unknown --color-match '{self.color_match}'", hint=f"one of {', '.join(colormatch.MODES)}")
        if self.blend not in blend.MODES:
            raise FaceGraftError(f"unknown --blend '{self.blend}'", hint=f"one of {', '.join(blend.MODES)}")
        if self.feather < 0:
            raise FaceGraftError("--feather must be 0 or more (plate pixels)")

    def params(self) -> dict[str, Any]:
        return {"plate_colorspace": self.plate_colorspace, "ocio_config": self.ocio_config,
                "color_match": self.color_match, "blend": self.blend, "erode": self.erode, "feather": self.feather,
                "forehead": self.forehead, "face": self.face,
                "holdout": os.path.basename(self.holdout) if self.holdout else None,
                "holdout_channel": self.holdout_channel}
