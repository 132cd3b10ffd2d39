"""What every command of the CLI shares: the model options, the table printer (80 columns on a terminal, markdown
when piped), help texts."""
from __future__ import annotations

import argparse
import sys


def print_rows(title: str, rows: list[dict]) -> None:
    """A table on stdout: boxed and fitted to the terminal when stdout is one; otherwise (a pipe, a log file, a
    notebook) the title and a markdown table, one line per row, whatever the width."""
    from spikemfm.core.io import columns, markdown_table

    if not sys.stdout.isatty():
        print(f"{title}\n\n{markdown_table(rows)}", end="", flush=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    cols = columns(rows)
    for col in cols:
        table.add_column(str(col), overflow="fold")
    for row in rows:
        table.add_row(*(f"{row[c]:.4g}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in cols))
    Console().print(table)


def model_arg(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE in TOML syntax (96, true, "x", [1, 2]); a bare word is a string."""
    import tomllib

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: give KEY=VALUE, e.g. img_size=96")
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value


MODEL_HELP = ("a model.snn.pt written by `spikemfm convert`, or a model name (tiny-clip-fmnist, minilm, "
               "timm:<name>, open_clip:<arch>, hf:<name-or-folder>) converted first with the options below")


def add_source(p: argparse.ArgumentParser, spikes_default: str) -> None:
    """The options that convert a named model (the same as `spikemfm convert`'s), for commands taking one."""
    p.add_argument("--tower", choices=["image", "text"], default="image", help="two-tower models: which tower")
    p.add_argument("--checkpoint", help="local weights file (timm) / open_clip checkpoint or tag")
    p.add_argument("--model-arg", dest="model_args", action="append", type=model_arg, metavar="KEY=VALUE",
                   help="an option of the model's factory, e.g. img_size=96 (repeatable)")
    p.add_argument("--data", help="an image folder or a text file of sentences (default: Fashion-MNIST / sentences)")
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--max-spikes", default=spikes_default, help="spikes per neuron per step: an integer or 'graded'")
    p.add_argument("--calib-samples", type=int, default=256)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def source(args: argparse.Namespace) -> dict[str, object]:
    """ConvertJob fields of a command's model options."""
    return {"tower": args.tower, "checkpoint": args.checkpoint, "model_args": args.model_args, "data": args.data,
            "bits": args.bits, "max_spikes": spikes_flag(args.max_spikes), "calib_samples": args.calib_samples}


def spikes_flag(text: str) -> int | str:
    """--max-spikes of convert: a positive integer or 'graded' (validated by ConvertJob)."""
    return text if text == "graded" else int(text) if text.lstrip("-").isdigit() else text


CONFIG_HELP = ("TOML file of this command's options (keys = flag names, at the top level or in a [{}] table); "
                "flags given on the command line override it")

