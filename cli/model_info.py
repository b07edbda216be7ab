"""Describe a model file and check it against its FaceGraft contract.

A face model: resolution, colour space, coverage, identities, training provenance, content hash
and input/output names. A shot's occlusion model (from `facegraft occlusion train`): its
resolution and coverage, the plate it was trained on, the roto and the keyframes it learned
from, its training; it goes to `facegraft render --occlusion`, never to --model. Exits 5 with a
clear message when the file is not a usable model (not ONNX, no FaceGraft metadata, unsupported
version, shapes that disagree with the metadata). DeepFaceLab/DeepFaceLive .dfm files are
described through their adapter.

Examples:
  facegraft model-info models/sh010_actor.onnx
  facegraft model-info models/actor.dfm --json
  facegraft model-info sh010_occ.onnx
"""
from __future__ import annotations

import argparse
import json
from typing import Any

NAME = "model-info"
HELP = "describe and check a model file (face model .onnx or .dfm, or an occlusion model)"
ORDER = 55


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model file: a face model (.onnx from `facegraft export`, or a DeepFaceLab .dfm) "
                                      "or an occlusion model (from `facegraft occlusion train`)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _face_rows(info: Any) -> list[tuple[str, str]]:
    return [("identities", f"plate face '{info.target or '?'}' -> '{info.source or '?'}'")]


def _occlusion_rows(info: Any) -> list[tuple[str, str]]:
    plate = dict(info.provenance.get("plate", {}))
    window = plate.get("display_window") or []
    size = f"{window[2]} x {window[3]}" if len(window) == 4 else "?"
    rows = [("use", "an occlusion model: pass it to `facegraft render --occlusion`"),
            ("trained on", f"a {size} plate: {plate.get('plate') or '?'}"),
            ("roto", f"{plate.get('roto') or '?'} (channel {plate.get('roto_channel') or '?'})"),
            ("keyframes", ", ".join(str(f) for f in plate.get("keyframes", [])) or "?")]
    if "steps" in info.provenance:
        rows.append(("training", f"{info.provenance['steps']} steps in {info.provenance.get('seconds', '?')} s"))
    return rows


def run(args: argparse.Namespace) -> int:
    from facegraft.inference.models import occlusion
    from facegraft.inference.models.formats import read_info

    info = read_info(args.model)
    data = info.as_dict()
    is_occlusion = info.kind == occlusion.KIND
    if is_occlusion:
        data["keyframes"] = list(info.provenance.get("plate", {}).get("keyframes", []))
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    rows = [
        ("file", info.path), ("kind", info.kind), ("format version", info.format_version),
        ("resolution", f"{info.resolution} x {info.resolution}"), ("coverage", info.coverage),
        ("template", info.template), ("colour space", info.colorspace), ("OCIO config", info.ocio_config or "-"),
    ]
    rows += _occlusion_rows(info) if is_occlusion else _face_rows(info)
    rows += [
        ("content hash", info.content_hash), ("input", f"{info.input_name} ({info.input_dtype})"),
        ("outputs", ", ".join(info.output_names)), ("batch", "dynamic" if info.batch is None else str(info.batch)),
    ]
    shown = {"plate", "steps", "seconds"} if is_occlusion else set()
    for key, value in sorted(info.provenance.items()):
        if key not in shown:
            rows.append((f"provenance.{key}", json.dumps(value) if not isinstance(value, str) else value))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0
