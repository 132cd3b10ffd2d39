"""The ``spikemfm`` command line: the parser of every command, and ``main``. It only parses arguments and calls the
library API; each command lives in its own module (``add`` builds its parser, ``run`` carries it out)."""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from typing import Callable, Sequence

from spikemfm.cli import (caption, cascade, convert, demo, draft, energy, evaluate, generate, lava, report,
                          simulate, stream)
from spikemfm.cli.config import apply_config, options_of
from spikemfm.errors import SetMismatchWarning, SpikeMFMError

COMMAND_MODULES = (demo, energy, convert, simulate, generate, draft, caption, cascade, report, stream, evaluate,
                   lava)  # the order of --help


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all sub-commands."""
    parser = argparse.ArgumentParser(prog="spikemfm", description="Convert multimodal transformers "
                                     "(CLIP, ViT, BERT) into exact spiking neural networks.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.add(sub)
    return parser


def subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of one sub-command."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[command]


def all_options(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """The option names (dests) of every sub-command, for shared config files: the command names themselves
    come from the parser, so a shared file's table for any command (``[evaluate]``) is recognised."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: set(options_of(sub)) for name, sub in action.choices.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace, dict[str, set[str]]], int] = args.func
    # SIGTERM unwinds like Ctrl-C: workers are killed and temp files removed on the way out (finally blocks)
    previous = signal.signal(signal.SIGTERM, terminate) if threading.current_thread() is threading.main_thread() \
        else None
    shown = warnings.showwarning
    warnings.showwarning = _one_line(args.command, shown)
    try:
        others = {k: v for k, v in all_options(parser).items() if k != args.command}
        if args.command != "convert":  # convert reads its TOML into a ConvertJob (spikemfm.app.jobs)
            args = apply_config(subparser(parser, args.command), args, argv, args.command, others)
        return func(args, others)
    except (SpikeMFMError, ValueError) as exc:
        print(f"spikemfm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spikemfm {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Terminated:
        print(f"spikemfm {args.command}: terminated (SIGTERM); nothing was written", file=sys.stderr)
        return 143
    finally:
        warnings.showwarning = shown
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _one_line(command: str, fallback: Callable[..., None]) -> Callable[..., None]:
    """spikemfm's own warnings as one line on stderr (``spikemfm CMD: warning: …``); others as Python shows them."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, SetMismatchWarning):
            print(f"spikemfm {command}: warning: {message}", file=sys.stderr)
        else:
            fallback(message, category, filename, lineno, file, line)
    return show


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``finally`` blocks (worker kill, staging clean-up) run."""


def terminate(signum: int, frame: object) -> None:
    """The SIGTERM handler: unwinds the main thread."""
    raise Terminated()
