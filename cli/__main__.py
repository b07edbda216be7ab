"""``python -m facegraft.cli``: the ``facegraft`` command."""
import sys

from facegraft.cli.main import main

sys.exit(main())
