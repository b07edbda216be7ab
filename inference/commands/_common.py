"""Arguments shared by several subcommands."""
from __future__ import annotations

import argparse

from ..colour import DEFAULT_CONFIG, DEFAULT_MODEL_SPACE, DEFAULT_PLATE_SPACE


def add_json_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json-progress", action="store_true",
        help="print progress as JSON lines on stdout (for Nuke and farm wrappers); text goes to stderr",
    )


def add_frames(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames", metavar="RANGE", default=None,
        help="frames to process, e.g. 1001-1100, 1001-1100x2 or 1001,1005,1010-1020 (default: every frame on disk)",
    )


def add_colour(parser: argparse.ArgumentParser, model_space: bool = False) -> None:
    parser.add_argument("--ocio-config", default=DEFAULT_CONFIG, metavar="CONFIG",
                        help=f"OCIO config file or built-in URI (default: {DEFAULT_CONFIG}; $OCIO is not read implicitly)")
    parser.add_argument("--plate-colorspace", default=DEFAULT_PLATE_SPACE, metavar="SPACE",
                        help=f"colour space of the plate pixels (default: {DEFAULT_PLATE_SPACE}, the config's scene_linear)")
    if model_space:
        parser.add_argument("--model-colorspace", default=None, metavar="SPACE",
                            help=f"colour space networks see (default: the model file's, else {DEFAULT_MODEL_SPACE})")
