"""Arguments shared by several subcommands."""
from __future__ import annotations

import argparse

from facegraft.inference.io.colour import DEFAULT_CONFIG, DEFAULT_MODEL_SPACE, DEFAULT_PLATE_SPACE


def add_json_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json-progress", action="store_true",
        help="print progress as JSON lines on stdout (for Nuke and farm wrappers); text goes to stderr",
    )


def smooth_strength(text: str) -> float:
    """argparse type for --smooth: a landmark smoothing strength from 0 (off) to 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--smooth must be a number between 0 and 1, got {text}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"--smooth must be between 0 and 1, got {text}")
    return value


def add_frames(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames", metavar="RANGE", default=None,
        help="frames to process, e.g. 1001-1100, 1001-1100x2 or 1001,1005,1010-1020 (default: every frame on disk)",
    )


def add_colour(parser: argparse.ArgumentParser, model_space: bool = False, model_space_default: str = "") -> None:
    """--ocio-config and --plate-colorspace; with ``model_space`` also --model-colorspace, whose
    help names ``model_space_default`` as its default (else the model file's, then the built-in)."""
    parser.add_argument("--ocio-config", default=DEFAULT_CONFIG, metavar="CONFIG",
                        help=f"OCIO config file or built-in URI (default: {DEFAULT_CONFIG}; $OCIO is not read implicitly)")
    parser.add_argument("--plate-colorspace", default=DEFAULT_PLATE_SPACE, metavar="SPACE",
                        help=f"colour space of the plate pixels (default: {DEFAULT_PLATE_SPACE}, the config's scene_linear)")
    if model_space:
        parser.add_argument("--model-colorspace", default=None, metavar="SPACE",
                            help="colour space networks see (default: "
                                 + (model_space_default or f"the model file's, else {DEFAULT_MODEL_SPACE}") + ")")
