"""Where the FaceGraft Python lives: the node's knob, ``$FACEGRAFT_PYTHON``, then a config file.

The config file is JSON, ``$FACEGRAFT_NUKE_CONFIG`` or else ``~/.facegraft/nuke.json``::

    {"python": "/opt/facegraft/venv/bin/python"}
"""
import json
import os
from typing import Any, Dict, List, Optional, Tuple

ENV_PYTHON = "FACEGRAFT_PYTHON"
ENV_CONFIG = "FACEGRAFT_NUKE_CONFIG"

HOW_TO = (
    "Point FaceGraft at the Python where FaceGraft is installed: set the node's "
    "Advanced > FaceGraft Python knob, or the FACEGRAFT_PYTHON environment variable, or write "
    '{"python": "/path/to/venv/bin/python"} into ~/.facegraft/nuke.json.'
)


class ConfigError(Exception):
    """The FaceGraft Python cannot be found; the message says how to set it."""


def config_path() -> str:
    explicit = os.environ.get(ENV_CONFIG, "").strip()
    if explicit:
        return os.path.expanduser(explicit)
    return os.path.join(os.path.expanduser("~"), ".facegraft", "nuke.json")


def load_config() -> Dict[str, Any]:
    """The config file's settings (empty when there is no file)."""
    path = config_path()
    if not os.path.isfile(path):
        if os.environ.get(ENV_CONFIG, "").strip():
            raise ConfigError(f"{ENV_CONFIG} names {path}, which does not exist. {HOW_TO}")
        return {}
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the FaceGraft config {path}: {exc}. Fix or delete the file.") from None
    if not isinstance(data, dict):
        raise ConfigError(f'the FaceGraft config {path} must hold a JSON object like {{"python": "..."}}.')
    return data


def candidates(knob_value: str = "") -> List[Tuple[str, str]]:
    """``(where, python)`` in the order they are tried."""
    found = []
    if knob_value.strip():
        found.append(("the node's FaceGraft Python knob", knob_value.strip()))
    env = os.environ.get(ENV_PYTHON, "").strip()
    if env:
        found.append(("$" + ENV_PYTHON, env))
    configured = str(load_config().get("python", "") or "").strip()
    if configured:
        found.append((config_path(), configured))
    return found


def find_python(knob_value: str = "") -> str:
    """The first configured Python; ConfigError when none is set or the named file is missing."""
    tried = candidates(knob_value)
    if not tried:
        raise ConfigError("no FaceGraft Python is configured. " + HOW_TO)
    where, python = tried[0]
    python = os.path.expanduser(python)
    if not os.path.isfile(python):
        raise ConfigError(f"{where} names {python}, which does not exist. {HOW_TO}")
    if not os.access(python, os.X_OK):
        raise ConfigError(f"{where} names {python}, which is not executable.")
    return python


def cli_command(python: str) -> List[str]:
    """The argv prefix that runs the FaceGraft CLI with ``python``."""
    return [python, "-m", "facegraft.cli"]


def setting(name: str, default: Optional[Any] = None) -> Any:
    """Another value from the config file (e.g. ``cache_root``), or ``default``."""
    try:
        return load_config().get(name, default)
    except ConfigError:
        return default
