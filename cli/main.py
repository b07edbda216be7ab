"""The ``facegraft`` command: one subcommand per stage.

Each subcommand lives in ``facegraft.cli.<name>`` and defines ``NAME``,
``HELP``, ``ORDER``, ``add_arguments(parser)`` and ``run(args) -> int``. Modules import
their heavy dependencies inside ``run`` so ``facegraft --help`` stays instant and the
runtime never loads torch unless a training command runs.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import textwrap
from types import ModuleType
from typing import Optional, Sequence

from facegraft import cli as commands
from facegraft.inference import __version__
from facegraft.inference.errors import FaceGraftError
from facegraft.inference.progress import emit

NOT_COMMANDS = {"main", "options"}
EPILOG = textwrap.dedent(
    """\
    a shot, start to finish:
      facegraft setup                                    # once: models + sample footage into $FACEGRAFT_HOME
      facegraft ingest clip.mp4 plates/sh010.####.exr    # video -> scene-linear EXR plate
      facegraft track plates/sh010.####.exr --out sh010.fgtrack.json
      facegraft crops sh010.fgtrack.json plates/sh010.####.exr --out crops/
      facegraft extract plates/sh010.####.exr --identity double --out facesets/double
      facegraft extract ref/actor.mov --identity actor --out facesets/actor
      facegraft train --faceset facesets/actor --faceset facesets/double --out runs/sh010
      facegraft export runs/sh010 --source actor --target double --out face.onnx
      facegraft render plates/sh010.####.exr --track sh010.fgtrack.json --model face.onnx \\
          --out renders/sh010_swap.####.exr

    `facegraft COMMAND --help` explains each command. Sequences use #### (one # per digit),
    %04d or @; frame ranges look like 1001-1100 or 1001-1100x2.
    """
)


def _command_modules() -> list[ModuleType]:
    """Every module of this package that defines a subcommand (``NAME`` and ``run``)."""
    found = []
    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("_") or info.name in NOT_COMMANDS:
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "NAME") and hasattr(module, "run"):
            found.append(module)
    return sorted(found, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facegraft",
        description="Neural face replacement for VFX: scene-linear EXR plates in, EXR layers out.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"facegraft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        doc = (module.__doc__ or "").strip()
        command = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=doc or module.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    json_lines = bool(getattr(args, "json_progress", False))
    try:
        return int(args._run(args) or 0)
    except FaceGraftError as exc:
        if json_lines:
            emit("error", **exc.as_dict())
        print(f"facegraft {args.command}: error: {exc.describe()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"facegraft {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
