"""Describe a face model file and check it against the FaceGraft model contract.

Prints resolution, colour space, coverage, identities, training provenance, content hash and
input/output names. Exits 5 with a clear message when the file is not a usable face model
(not ONNX, no FaceGraft metadata, unsupported version, shapes that disagree with the metadata).
DeepFaceLab/DeepFaceLive .dfm files are described through their adapter.

Examples:
  facegraft model-info models/sh010_actor.onnx
  facegraft model-info models/actor.dfm --json
"""
from __future__ import annotations

import argparse
import json

NAME = "model-info"
HELP = "describe and check a face model file (.onnx or .dfm)"
ORDER = 55


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="face model file (.onnx from `facegraft export`, or a DeepFaceLab .dfm)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.models.formats import read_info

    info = read_info(args.model)
    data = info.as_dict()
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    rows = [
        ("file", info.path), ("kind", info.kind), ("format version", info.format_version),
        ("resolution", f"{info.resolution} x {info.resolution}"), ("coverage", info.coverage),
        ("template", info.template), ("colour space", info.colorspace), ("OCIO config", info.ocio_config or "-"),
        ("identities", f"plate face '{info.target or '?'}' -> '{info.source or '?'}'"),
        ("content hash", info.content_hash), ("input", f"{info.input_name} ({info.input_dtype})"),
        ("outputs", ", ".join(info.output_names)), ("batch", "dynamic" if info.batch is None else str(info.batch)),
    ]
    for key, value in sorted(info.provenance.items()):
        rows.append((f"provenance.{key}", json.dumps(value) if not isinstance(value, str) else value))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
