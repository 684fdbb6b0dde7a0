"""``normlab`` entry point: dispatch to one module per command; turn errors into one readable line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from normlab._version import __version__
from normlab.errors import NormlabError

# Each module exposes add_parser(subparsers) and run(args) -> int.
COMMANDS = ("stats", "check", "compare", "report")

EPILOG = """examples:
  normlab stats digits                                  statistics of scikit-learn's bundled digits
  normlab stats mnist:data/mnist --per channel --out mnist.stats.json
  normlab check mnist:data/mnist --normalized x_norm.npy
  normlab compare --preset mnist-cnn --data mnist:data/mnist --out runs/mnist
run `normlab COMMAND --help` for the options of each command."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="normlab",
        description="Input normalization for deep learning: statistics, diagnosis and experiments.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"normlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"normlab.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"normlab.cli.{name}":
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.run(args) or 0)
    except NormlabError as err:
        message = str(err).strip().splitlines() or [type(err).__name__]
        print(f"Error: {message[0]}", file=sys.stderr)
        for line in message[1:]:
            print(f"  {line}", file=sys.stderr)
        print(f"hint: see `normlab {args.command} --help`", file=sys.stderr)
        if os.environ.get("NORMLAB_DEBUG"):
            raise
        return 1
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
