"""One module per ``facegraft`` subcommand (see ``facegraft.cli.main``)."""
