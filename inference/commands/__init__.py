"""One module per ``facegraft`` subcommand (see ``facegraft.inference.cli``)."""
