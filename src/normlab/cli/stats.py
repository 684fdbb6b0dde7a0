"""``normlab stats SOURCE``: exact statistics of a dataset in one streaming pass."""

from __future__ import annotations

import argparse
import contextlib
import sys

EPILOG = """examples:
  normlab stats digits
  normlab stats mnist:data/mnist --per channel --out mnist.stats.json
  normlab stats images:photos/train --per channel --json
  normlab stats x_train.npy --per feature
  normlab stats x_train.npy --quantiles 0.01,0.5,0.99      or --quantiles none to skip them
  normlab stats images:photos/train --scheduler tcp://10.0.0.5:8786   shards read by Dask workers
the file written by --out is read back with normlab.load(path)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    from normlab.data.cli import add_dataset_arguments

    p = sub.add_parser(
        "stats",
        help="exact per-channel/per-feature statistics of a dataset",
        description="Stream a dataset once and print its count, mean, std, min, max and quartiles "
        "per channel (images) or per feature (tables). Results go to stdout, progress to stderr.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="a dataset spec (digits, mnist:DIR, images:DIR, csv:FILE, x.npy, ...)")
    p.add_argument("--per", default="auto", choices=["auto", "global", "channel", "feature"],
                   help="what one statistic is computed for (default: channel for images, feature for tables)")
    p.add_argument("--channel-axis", type=int, default=None,
                   help="where channels are: -1 (channels-last, the default for files) or 1 (channels-first)")
    p.add_argument("--nan", default="raise", choices=["raise", "ignore"], help="what to do with NaN values")
    p.add_argument("--quantiles", metavar="LIST", default=None,
                   help="quantiles to report, comma-separated in [0, 1] (default 0.25,0.5,0.75), or 'none' "
                   "to skip them. Exact for 8/16-bit data, for up to 2**22 values, and for .npy/IDX files "
                   "(selected in a few more passes over the file); parsed or compressed files (CSV, "
                   "Parquet, .npz) are read once and sketched, with the rank-error bound printed")
    p.add_argument("--out", metavar="FILE", help="also save the statistics as JSON (read with normlab.load)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--rows", type=int, default=20, help="rows to show in the table (default 20)")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="read the dataset's file shards on a Dask cluster: a scheduler address "
                   "(tcp://host:8786), or 'local' for worker processes on this machine")
    add_dataset_arguments(p)
    p.set_defaults(run=run)


def parse_quantiles(text: str | None) -> tuple[float, ...] | None:
    """``--quantiles``: None for the default, () for 'none', else the comma-separated fractions."""
    from normlab.errors import ParameterError

    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    try:
        qs = tuple(float(part) for part in text.split(","))
    except ValueError:
        qs = ()
    if not qs or any(not 0 <= q <= 1 for q in qs):  # NaN fails the range test too
        raise ParameterError(
            f"--quantiles {text!r} is not a list of fractions; expected comma-separated values in [0, 1], "
            "e.g. --quantiles 0.01,0.5,0.99, or --quantiles none to skip them."
        )
    return qs


def run(args: argparse.Namespace) -> int:
    from normlab.core.summary import DEFAULT_QUANTILES, dumps, stats
    from normlab.data.cli import open_from_args

    qs = parse_quantiles(args.quantiles)
    dataset = open_from_args(args.source, args)
    split = getattr(args, "split", None) or dataset.default_split
    data, cluster = dataset, contextlib.nullcontext()
    if args.scheduler:  # the same statistics, each file shard read and accumulated by a Dask worker
        from normlab.adapters.dask import connect, dataset_bag

        cluster = connect(args.scheduler)
    with cluster:
        if args.scheduler:
            data = dataset_bag(dataset, split, batch_size=getattr(args, "batch_size", None))
        result = stats(data, per=args.per, channel_axis=args.channel_axis, nan=args.nan, split=split,
                       quantiles=DEFAULT_QUANTILES if qs is None else qs,
                       batch_size=getattr(args, "batch_size", None), source=f"{args.source} [{split}]",
                       names=getattr(dataset, "feature_names", None))
    if args.out:
        result.save(args.out)
        print(f"saved {args.out}", file=sys.stderr)
    print(dumps(result) if args.json else result.table(max_rows=args.rows))
    return 0
