"""Arguments shared by several subcommands, most of them built from the settings schema."""
from __future__ import annotations

import argparse
from typing import Any, Callable, Iterable, Union

from facegraft.inference.io.colour import DEFAULT_MODEL_SPACE
from facegraft.inference.render.settings import Setting, SettingError, setting

Parser = Union[argparse.ArgumentParser, argparse._ArgumentGroup]


def add_json_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json-progress", action="store_true",
        help="print progress as JSON lines on stdout (for Nuke and farm wrappers); text goes to stderr",
    )


def setting_type(declared: Setting) -> Callable[[str], Any]:
    """argparse ``type`` for a setting: its conversion and checks, with its readable message."""

    def convert(text: str) -> Any:
        try:
            return declared.parse(text)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = declared.kind
    return convert


def add_setting(parser: Parser, declared: Setting, passed_on: bool = False) -> argparse.Action:
    """``--flag`` for ``declared``: its type and range checks, choices, and help naming its default.

    ``passed_on``: the option of a command that hands the setting to ``track`` / ``render``
    (farm submit, batch); unset, it is left out and the stage's own default applies.
    """
    if passed_on:
        stages = [s for s in declared.stages if s in ("track", "render")]
        shown = f"unset: {' and '.join(stages)} use{'s' if len(stages) == 1 else ''} {declared.shown_default}"
    else:
        shown = f"default: {declared.shown_default}"
    return parser.add_argument(
        declared.flag,
        type=setting_type(declared),
        default=None if passed_on else declared.default,
        choices=declared.choices or None,
        metavar=declared.metavar,
        help=f"{declared.help} ({shown})".replace("%", "%%"),
    )


def add_settings(parser: Parser, settings: Iterable[Setting], passed_on: bool = False) -> None:
    for declared in settings:
        add_setting(parser, declared, passed_on)


def add_shot_options(parser: argparse.ArgumentParser) -> None:
    """Every track and render setting, passed on by farm submit and batch (the stage's default when unset)."""
    from facegraft.farm.shot_options import SHOT_SETTINGS

    group = parser.add_argument_group("passed to track and render (docs/render_settings.md)")
    add_settings(group, SHOT_SETTINGS, passed_on=True)


# ``--smooth`` for the commands that take it with another default or group (e.g. extract).
smooth_strength = setting_type(setting("smooth"))


def add_frames(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--frames", metavar="RANGE", default=None,
        help="frames to process, e.g. 1001-1100, 1001-1100x2 or 1001,1005,1010-1020 (default: every frame on disk)",
    )


def add_colour(parser: argparse.ArgumentParser, model_space: bool = False, model_space_default: str = "") -> None:
    """--ocio-config and --plate-colorspace; with ``model_space`` also --model-colorspace, whose
    help names ``model_space_default`` as its default (else the model file's, then the built-in)."""
    add_settings(parser, (setting("ocio_config"), setting("plate_colorspace")))
    if model_space:
        parser.add_argument("--model-colorspace", default=None, metavar="SPACE",
                            help="colour space networks see (default: "
                                 + (model_space_default or f"the model file's, else {DEFAULT_MODEL_SPACE}") + ")")
