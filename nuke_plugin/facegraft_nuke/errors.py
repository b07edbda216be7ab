"""The plugin's errors: what the compositor must fix, and what a blocking render reports."""


class NodeError(Exception):
    """Something on the node or in the script must be fixed before rendering; the message says what."""


class RenderError(Exception):
    """A blocking render (``facegraft_nuke.render(node, block=True)``) did not finish; the message says why."""

    def __init__(self, message: str, cancelled: bool = False) -> None:
        Exception.__init__(self, message)
        self.cancelled = cancelled
