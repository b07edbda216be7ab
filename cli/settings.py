"""List the settings of track, render and farm submit: flags, defaults, choices and ranges.

Examples:
  facegraft settings                 # a table
  facegraft settings --json > nuke_plugin/facegraft_nuke/render_settings.json
  facegraft settings --markdown      # the table of docs/render_settings.md

The JSON is the file the Nuke node reads its menus and defaults from; the tests fail when the
committed copy or the docs table differ from what this prints.
"""
from __future__ import annotations

import argparse

from facegraft.farm.settings import FARM_SETTINGS
from facegraft.inference.render.settings import SETTINGS, Setting, markdown_table, schema_json

NAME = "settings"
HELP = "list the track, render and farm settings with their defaults (--json for the Nuke node's file)"
ORDER = 90

ALL: tuple[Setting, ...] = SETTINGS + FARM_SETTINGS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print the declarations as JSON")
    form.add_argument("--markdown", action="store_true", help="print the docs table (Markdown)")


def text_table() -> str:
    rows = [("flag", "stages", "default", "choices")]
    rows += [(s.flag, ",".join(s.stages), s.shown_default, " ".join(s.choices)) for s in ALL]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:<{widths[2]}}  {d}".rstrip() for a, b, c, d in rows)


def run(args: argparse.Namespace) -> int:
    if args.json:
        print(schema_json(ALL), end="")
    elif args.markdown:
        print(markdown_table(ALL), end="")
    else:
        print(text_table())
    return 0
