"""Export a trained run to a FaceGraft face model (.onnx) for one source -> target pair.

The model turns the TARGET face (the actor on the plate) into the SOURCE identity. The file
carries its resolution, coverage, colour space and provenance; the export is checked against
the trained network in onnxruntime and the largest difference printed. --fp16 halves the
file and computes in float16 inside; inputs and outputs stay float32.

Example:
  facegraft export runs/sh010 --source actor --target double --out models/sh010_actor.onnx
"""
from __future__ import annotations

import argparse

NAME = "export"
HELP = "write a trained run as a face model file (.onnx)"
ORDER = 52


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run folder of `facegraft train` (or its checkpoint.pt)")
    parser.add_argument("--source", required=True, help="identity to put in (its decoder is exported)")
    parser.add_argument("--target", required=True, help="identity on the plate")
    parser.add_argument("--out", required=True, help="model file to write (.onnx)")
    parser.add_argument("--fp16", action="store_true", help="float16 weights and maths inside (float32 in and out)")


def run(args: argparse.Namespace) -> int:
    from facegraft.training.export import export_model

    result = export_model(args.run, source=args.source, target=args.target, out=args.out, fp16=args.fp16)
    info = result.info
    print(f"wrote {result.path}: {info.source} onto {info.target}, {info.resolution}px {info.coverage}, {info.colorspace}, "
          f"{info.provenance.get('precision')}")
    print(f"parity with torch: max abs difference {result.max_abs_diff:.3g} (allowed {result.tolerance:g})")
    return 0
