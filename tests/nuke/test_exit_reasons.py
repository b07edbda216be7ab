"""The node explains every exit code the CLI can return, in words."""
from __future__ import annotations

import inspect

from facegraft_nuke import bridge

from facegraft.inference import errors


def test_every_cli_exit_code_has_a_reason_in_the_node() -> None:
    codes = {cls.exit_code for _, cls in inspect.getmembers(errors, inspect.isclass)
             if issubclass(cls, errors.FaceGraftError)}
    assert {2, 3, 4, 5, 6, 7} <= codes
    assert codes <= set(bridge.EXIT_REASONS), sorted(codes - set(bridge.EXIT_REASONS))
