"""The ``spikemfm`` command line: one module per command, shared helpers in :mod:`spikemfm.cli.common`."""
from spikemfm.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
