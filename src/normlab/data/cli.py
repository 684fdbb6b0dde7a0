"""Dataset options shared by the ``normlab stats``, ``check`` and ``compare`` commands.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> _ = parser.add_argument("dataset")
>>> add_dataset_arguments(parser)
>>> args = parser.parse_args(["wine", "--validation-split", "0.25", "--split", "validation"])
>>> ds = open_from_args(args.dataset, args)
>>> ds.num_samples(args.split)
45
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import numpy as np

from normlab.data._base import LoadedDataset
from normlab.data._spec import kinds_help, open_dataset

__all__ = ["SPEC_HELP", "add_dataset_arguments", "iter_from_args", "open_from_args"]

#: Text for a command's ``dataset`` argument and its epilog: every spec kind with an example.
SPEC_HELP = "dataset specs (KIND:PATH; nothing is downloaded):\n" + kinds_help()

_OPTIONS = (
    "validation_split",
    "shuffle_split",
    "seed",
    "limit",
    "target",
    "drop",
    "sep",
    "keys",
    "resize",
    "on_error",
    "color",
)


def add_dataset_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """Add the dataset options (``--split``, ``--limit``, ``--batch-size``, ...) to ``parser``.

    Every option defaults to ``None`` ("not given"), so :func:`open_from_args` passes on only what the
    user typed and an option that does not apply to the spec's kind is reported, never ignored.
    """
    group = parser.add_argument_group("dataset options")
    group.add_argument(
        "--split", default=None, help="split to read: train (default), test, validation, ..."
    )
    group.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="at most N samples per split (stratified, seeded)",
    )
    group.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="samples per batch (default: about 8 MiB)",
    )
    group.add_argument(
        "--validation-split",
        type=float,
        default=None,
        metavar="F",
        help="hold out the last fraction F of train as split 'validation' (like Keras)",
    )
    group.add_argument(
        "--shuffle-split",
        action="store_true",
        default=None,
        help="hold out random samples (seeded) instead of the last ones",
    )
    group.add_argument(
        "--seed", type=int, default=None, help="seed for --limit and --shuffle-split (default 0)"
    )
    group.add_argument("--target", default=None, metavar="COLUMN", help="tables: the label column")
    group.add_argument(
        "--drop", nargs="+", default=None, metavar="COLUMN", help="tables: columns to leave out"
    )
    group.add_argument(
        "--sep", default=None, metavar="CHAR", help="csv: the field separator (default ',')"
    )
    group.add_argument(
        "--keys", nargs="+", default=None, metavar="KEY", help="npz: samples array [labels array]"
    )
    group.add_argument(
        "--resize",
        nargs=2,
        type=int,
        default=None,
        metavar=("H", "W"),
        help="images: resize every image to H x W",
    )
    group.add_argument(
        "--on-error",
        choices=("raise", "skip"),
        default=None,
        help="images: skip unreadable files instead of failing",
    )
    group.add_argument(
        "--color",
        choices=("auto", "gray", "rgb", "rgba"),
        default=None,
        help="images: channels to decode to",
    )


def open_from_args(spec: str, args: argparse.Namespace) -> LoadedDataset:
    """Open ``spec`` with the options in ``args`` (from a parser set up by :func:`add_dataset_arguments`)."""
    options = {k: getattr(args, k) for k in _OPTIONS if getattr(args, k, None) is not None}
    if "resize" in options:
        options["resize"] = tuple(options["resize"])
    return open_dataset(spec, **options)


def iter_from_args(
    dataset: LoadedDataset, args: argparse.Namespace
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """``dataset.iter_batches`` with ``--batch-size`` and ``--split`` from ``args``."""
    return dataset.iter_batches(
        getattr(args, "batch_size", None), split=getattr(args, "split", None)
    )
