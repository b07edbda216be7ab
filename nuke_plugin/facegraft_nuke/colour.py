"""Colour from the script: the OCIO config Nuke uses, its working space, and a Read's colour space.

FaceGraft must read the plate's pixels as what they are, and the swap must come back into Nuke's
working space, so the node takes both from the script rather than from FaceGraft's defaults:

* the config: ``$OCIO`` when set (Nuke then uses it too); else Project Settings > Color: a custom
  config path, a built-in OCIO config (``fn-nuke_cg-config-...`` is OCIO's ``ocio://cg-config-...``),
  or one of the configs installed with Nuke (``nuke-default``, ``aces_1.2``: files under
  ``plugins/OCIOConfigs/configs`` beside the Nuke executable). Legacy colour management ("Nuke")
  is the ``nuke-default`` config;
* the working space: Project Settings' working space;
* a Read's space: its ``colorspace`` knob (``default (linear)``, ``scene_linear (ACEScg)``: the name
  in brackets), or for ``default`` the script's default for float files.
"""
import os
import re
from typing import Optional

import nuke

from .errors import NodeError

_WRAPPED = re.compile(r"^([A-Za-z_][\w]*) \((.+)\)$")
BUILTIN_PREFIX = "fn-nuke_"
NUKE_DEFAULT = "nuke-default"


def plain_space(value: str) -> str:
    """``default (linear)`` -> ``linear``; ``scene_linear (ACES - ACEScg)`` -> ``ACES - ACEScg``."""
    value = str(value or "").strip()
    while True:
        match = _WRAPPED.match(value)
        if not match:
            return value
        value = match.group(2).strip()


def _root_text(name: str, default: str = "") -> str:
    knob = nuke.root().knob(name)
    if knob is None:
        return default
    found = knob.value()
    return default if found is None else str(found)


def nuke_configs_folder() -> str:
    """Where the OCIO configs installed with Nuke live."""
    return os.path.join(os.path.dirname(nuke.EXE_PATH), "plugins", "OCIOConfigs", "configs")


def script_config() -> str:
    """The OCIO config (file or ``ocio://`` URI) the script uses; NodeError when it cannot be found."""
    env = os.environ.get("OCIO", "").strip()
    if env:
        return env
    mode = _root_text("colorManagement", "Nuke")
    name = NUKE_DEFAULT if mode == "Nuke" else _root_text("OCIO_config", NUKE_DEFAULT).strip()
    if name == "custom":
        knob = nuke.root().knob("customOCIOConfigPath")
        path = ""
        if knob is not None:
            path = str(knob.evaluate() if isinstance(knob, nuke.EvalString_Knob) else knob.value()).strip()
        if not path:
            raise NodeError("the script's OCIO config is 'custom' with no path: set Project Settings > Color > "
                            "custom OCIO config, or the node's 'OCIO config' knob.")
        return path
    if name.startswith(BUILTIN_PREFIX):
        return "ocio://" + name[len(BUILTIN_PREFIX):]
    if name.startswith("ocio://"):
        return name
    return os.path.join(nuke_configs_folder(), name, "config.ocio").replace("\\", "/")


def check_config(config: str) -> str:
    """``config`` when it can be read by FaceGraft (a URI, or a file that exists); NodeError otherwise."""
    if config.startswith("ocio://") or os.path.isfile(config):
        return config
    raise NodeError(f"the script's OCIO config {config} was not found. Set the node's 'OCIO config' knob to "
                    "the config file (the one Project Settings > Color uses).")


def working_space() -> str:
    """The script's working space (``scene_linear`` when Project Settings does not say)."""
    return plain_space(_root_text("workingSpaceLUT", "scene_linear")) or "scene_linear"


def read_space(read: nuke.Node) -> str:
    """The colour space a Read converts from: its ``colorspace`` knob, ``default`` meaning the script's
    default for float files (else its working space)."""
    knob = read.knob("colorspace")
    value = str(knob.value()) if knob is not None else "default"
    if value.strip() == "default" or not value.strip():
        return plain_space(_root_text("floatLut", "")) or working_space()
    return plain_space(value)


def plate_space(knob_value: str, direct_read: Optional[nuke.Node]) -> str:
    """The plate's colour space: the knob when set, else the Read's (plate read from disk), else the
    working space (the cache Write writes the stream as it is, raw)."""
    if knob_value:
        return knob_value
    if direct_read is not None:
        return read_space(direct_read)
    return working_space()
