"""``normlab`` entry point: dispatch to one module per command; turn errors into one readable line."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from normlab._format import clip_user, quote_user
from normlab._version import __version__
from normlab.core._engine import one_shot
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
        with one_shot():  # one command, then the process exits: compiled kernels only where they repay their load
            return int(args.run(args) or 0)
    except NormlabError as err:
        return _print_error(str(err), args.command)
    except OSError as err:  # the machine refused (a file, a folder, memory): still one line, never a traceback
        where = "" if err.filename is None else f"{quote_user(err.filename)}: "
        return _print_error(f"{where}{err.strerror or err}; expected a readable input and a writable output. "
                            "Check the path and its permissions, and the free disk space.", args.command)  # fmt: skip
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


def _print_error(text: str, command: str) -> int:
    """Print ``Error: <first line>`` (then any further lines, indented) and a hint; exit status 1.

    Every line is clipped and its control characters escaped (:func:`normlab._format.clip_user`), so a
    message that quotes user content stays short and cannot drive the terminal.
    """
    lines = text.strip().splitlines() or ["unknown error"]
    print(f"Error: {clip_user(lines[0])}", file=sys.stderr)
    for line in lines[1:]:
        print(f"  {clip_user(line)}", file=sys.stderr)
    print(f"hint: see `normlab {command} --help`", file=sys.stderr)
    if os.environ.get("NORMLAB_DEBUG"):
        raise
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
