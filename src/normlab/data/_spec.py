"""Dataset specs (``"mnist:~/data/mnist"``, ``"csv:customers.csv"``, ``"x.npy"``) and :func:`open`.

:data:`KINDS` is the table of dataset kinds: each :class:`Kind` names its path (none, a folder or a file),
its own options, the file suffixes that select it from a bare path, and the loader that opens it.
:func:`open_dataset` parses the spec, checks the options against the kind, and calls that loader.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from normlab.data._base import LoadedDataset
from normlab.data._text import one_line
from normlab.data.arrays import load_npy, load_npz
from normlab.data.builtin import load_builtin
from normlab.data.cifar import load_cifar10
from normlab.data.idx import load_idx_dataset
from normlab.data.images import load_image_folder
from normlab.data.tables import load_table
from normlab.errors import DatasetError

__all__ = ["KINDS", "Kind", "open_dataset", "parse_spec"]


#: What opens a kind: ``load(kind, path, name, **options)``, with ``path`` ``None`` for a builtin,
#: ``name`` the spec as the user wrote it (for messages), and the kind's own options plus the common ones.
Loader = Callable[..., LoadedDataset]


@dataclass(frozen=True)
class Kind:
    """One kind of dataset spec: how it is written, what it accepts, and the loader that opens it."""

    name: str
    path: str  # "none", "dir" or "file"
    example: str
    summary: str
    load: Loader
    options: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()  # a bare path ending so opens this kind


_COMMON = ("validation_split", "shuffle_split", "seed", "limit")

_TABLE = ("target", "drop")

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("digits", "none", "digits", "scikit-learn's 8x8 handwritten digits, 1,797 x 64 features",
             load=load_builtin),
        Kind("breast-cancer", "none", "breast-cancer",
             "scikit-learn's breast cancer table, 569 x 30 features on very different scales",
             load=load_builtin),
        Kind("wine", "none", "wine", "scikit-learn's wine table, 178 x 13 features", load=load_builtin),
        Kind("mnist", "dir", "mnist:~/data/mnist", "the four MNIST IDX files (.gz or not)",
             load=load_idx_dataset),
        Kind("fashion-mnist", "dir", "fashion-mnist:~/data/fashion", "the four Fashion-MNIST IDX files",
             load=load_idx_dataset),
        Kind("cifar10", "dir", "cifar10:~/data/cifar-10-batches-py",
             "CIFAR-10 python batches (data_batch_1..5, test_batch)", load=load_cifar10),
        Kind("images", "dir", "images:~/photos/train", "one subfolder per class of PNG/JPEG/BMP/... images",
             load=load_image_folder, options=("resize", "on_error", "color", "progress")),
        Kind("csv", "file", "csv:customers.csv", "a table with a header row; numeric feature columns",
             load=load_table, options=(*_TABLE, "sep"), suffixes=(".csv",)),
        Kind("parquet", "file", "parquet:customers.parquet", "a Parquet table; numeric feature columns",
             load=load_table, options=_TABLE, suffixes=(".parquet", ".pq")),
        Kind("npy", "file", "npy:x.npy", "one array, memory-mapped (x only, no labels)",
             load=load_npy, suffixes=(".npy",)),
        Kind("npz", "file", "npz:data.npz", "arrays x and y (or x_train/y_train/x_test/y_test, or keys=)",
             load=load_npz, options=("keys",), suffixes=(".npz",)),
    )
}  # fmt: skip

_ALIASES = {
    "breast_cancer": "breast-cancer",
    "breastcancer": "breast-cancer",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "image": "images",
    "imagefolder": "images",
    "pq": "parquet",
}

_SUFFIX_KINDS = {suffix: k.name for k in KINDS.values() for suffix in k.suffixes}

_DEFAULTS: dict[str, Any] = {
    "validation_split": None,
    "shuffle_split": False,
    "seed": 0,
    "limit": None,
    "target": None,
    "drop": None,
    "sep": ",",
    "keys": None,
    "resize": None,
    "on_error": "raise",
    "color": "auto",
    "progress": "auto",
}


def kinds_help() -> str:
    """One line per spec kind with an example, for error messages and ``--help``."""
    width = max(len(k.example) for k in KINDS.values())
    return "\n".join(f"  {k.example:<{width}}  {k.summary}" for k in KINDS.values())


def parse_spec(spec: str | os.PathLike[str]) -> tuple[Kind, Path | None]:
    """Split a spec into its kind and path (``None`` for scikit-learn's bundled datasets).

    >>> kind, path = parse_spec("mnist:/data/mnist")
    >>> kind.name, str(path)
    ('mnist', '/data/mnist')
    >>> parse_spec("features.npz")[0].name
    'npz'
    >>> parse_spec("breast_cancer")[0].name
    'breast-cancer'
    """
    if isinstance(spec, os.PathLike):
        spec = os.fspath(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise DatasetError(
            f"dataset spec {spec!r} is not a non-empty string; expected KIND:PATH or a builtin name, e.g.:\n"
            + kinds_help()
        )
    text = spec.strip()
    head, sep, rest = text.partition(":")
    key = _ALIASES.get(head.lower(), head.lower())
    if sep and key in KINDS:
        kind = KINDS[key]
        if kind.path == "none":
            raise DatasetError(
                f"dataset spec {spec!r}: {kind.name} is bundled with scikit-learn and takes no path; "
                f"expected just {kind.name!r}. Drop the ':{rest}' part."
            )
        if not rest:
            raise DatasetError(
                f"dataset spec {spec!r} has no path after '{head}:'; expected e.g. {kind.example!r}."
            )
        return kind, Path(os.path.expanduser(rest))
    if not sep and key in KINDS:
        kind = KINDS[key]
        if kind.path != "none":
            raise DatasetError(
                f"dataset spec {spec!r} names the kind but no path; expected e.g. {kind.example!r}."
            )
        return kind, None
    suffix = Path(text).suffix.lower()
    if suffix in _SUFFIX_KINDS:
        return KINDS[_SUFFIX_KINDS[suffix]], Path(os.path.expanduser(text))
    path = Path(os.path.expanduser(text))
    hint = _guess_kind(path) if path.is_dir() else ""
    what = f"unknown dataset kind {head!r}" if sep else "not a known dataset"
    raise DatasetError(
        f"dataset spec {spec!r}: {what}; expected KIND:PATH, a builtin name, or a path ending .npy/.npz/"
        f".csv/.parquet.{hint} Valid kinds:\n" + kinds_help()
    )


def _guess_kind(folder: Path) -> str:
    try:
        names = [p.name for p in folder.iterdir()]
    except OSError:
        return ""
    if any("idx3-ubyte" in n for n in names):
        return f" It holds IDX files: use 'mnist:{folder}' or 'fashion-mnist:{folder}'."
    if "data_batch_1" in names or "cifar-10-batches-py" in names:
        return f" It holds CIFAR-10 batches: use 'cifar10:{folder}'."
    return f" For a folder of images with one subfolder per class use 'images:{folder}'."


def _check_path(kind: Kind, path: Path, spec: str) -> Path:
    """``path`` made absolute, once it is known to exist as the kind needs (a folder or a file).

    Absolute, so that whatever reads the files later (a Dask worker started in another folder, a sweep
    worker) finds the same ones; the dataset's name keeps the spec as the user wrote it.
    """
    if path.exists():
        if kind.path == "dir" and not path.is_dir():
            raise DatasetError(
                f"dataset spec {spec!r}: {path} is a file; expected a folder for {kind.name}. Point the spec "
                f"at the folder that holds the files, e.g. {kind.name}:{path.parent}."
            )
        if kind.path == "file" and path.is_dir():
            raise DatasetError(
                f"dataset spec {spec!r}: {path} is a folder; expected a {kind.name} file, e.g. {kind.example!r}."
            )
        return Path(os.path.abspath(path))
    absolute = path if path.is_absolute() else Path.cwd() / path
    what = "folder" if kind.path == "dir" else "file"
    rel = "" if path.is_absolute() else f" (resolved from the current folder {Path.cwd()})"
    parent = absolute.parent
    if parent.is_dir():
        siblings = [p.name for p in parent.iterdir()]
        close = difflib.get_close_matches(path.name, siblings, n=3, cutoff=0.6)
        fix = (
            "Did you mean " + " or ".join(repr(str(parent / c)) for c in close) + "?"
            if close
            else f"Check the path, e.g. {kind.example!r}."
        )
    else:
        missing = parent
        while not missing.parent.is_dir() and missing.parent != missing:
            missing = missing.parent
        fix = f"Its folder {missing} does not exist either; check the path, e.g. {kind.example!r}."
    raise DatasetError(
        f"dataset spec {spec!r}: the {what} {absolute} does not exist{rel}; expected an existing {what}. {fix}"
    )


def _check_common(name: str, options: dict[str, Any]) -> None:
    vs = options["validation_split"]
    if vs is not None and (
        isinstance(vs, bool) or not isinstance(vs, (int, float)) or not 0.0 < float(vs) < 1.0
    ):
        raise DatasetError(
            f"{name}: validation_split={vs!r} is not a fraction; expected a number strictly between 0 and 1, "
            "e.g. 0.2 to hold out the last 20% of the training data."
        )
    limit = options["limit"]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DatasetError(
            f"{name}: limit={limit!r} is not a positive number of samples; expected e.g. limit=1000."
        )
    seed = options["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DatasetError(f"{name}: seed={seed!r} is not an integer; expected e.g. seed=0.")


def open_dataset(
    spec: str | os.PathLike[str],
    *,
    validation_split: float | None = None,
    shuffle_split: bool = False,
    seed: int = 0,
    limit: int | None = None,
    target: str | None = None,
    drop: Sequence[str] | None = None,
    sep: str = ",",
    keys: Sequence[str] | None = None,
    resize: tuple[int, int] | None = None,
    on_error: str = "raise",
    color: str = "auto",
    progress: bool | str = "auto",
) -> LoadedDataset:
    """Open a dataset from a spec string; nothing is downloaded, nothing is read that is not needed.

    Parameters
    ----------
    spec : str or path
        ``KIND:PATH`` or a builtin name; a bare path ending ``.npy``, ``.npz``, ``.csv`` or ``.parquet``
        also works:

        ==============================  ===========================================================
        ``digits``, ``breast-cancer``,  scikit-learn's bundled datasets (offline)
        ``wine``
        ``mnist:DIR``                   the four IDX files (``.gz`` or not): splits train, test
        ``fashion-mnist:DIR``           the same for Fashion-MNIST
        ``cifar10:DIR``                 CIFAR-10 python batches, read without running pickle code
        ``images:DIR``                  one subfolder per class; ``DIR/train``, ``DIR/test`` as splits
        ``csv:FILE``, ``parquet:FILE``  numeric feature columns; ``target=`` names the label column
        ``npy:FILE``, ``npz:FILE``      arrays, memory-mapped where possible
        ==============================  ===========================================================
    validation_split : float, optional
        Hold out this fraction of the training data as split ``"validation"``; ``"train"`` shrinks to
        the rest. Like Keras' ``fit(validation_split=)``, the *last* samples are held out (the first
        ``floor(n * (1 - validation_split))`` stay in train), unless ``shuffle_split=True``.
    shuffle_split : bool
        Choose the validation samples at random (seeded by ``seed``) instead of the last ones.
    seed : int
        Seeds ``limit`` and ``shuffle_split``; the same seed gives the same samples.
    limit : int, optional
        Keep at most this many samples of each stored split, chosen at random but stratified by class,
        for quick runs. Applied before ``validation_split``.
    target : str, optional
        Tables: the label column (classes become ``0..k-1`` in sorted order; a column of non-integer
        numbers stays a float64 regression target).
    drop : list of str, optional
        Tables: columns to leave out (non-numeric columns must be dropped explicitly).
    sep : str
        CSV: the field separator.
    keys : (str,) or (str, str), optional
        npz: the names of the samples array and, optionally, the labels array.
    resize : (int, int), optional
        Images: resize every image to ``(h, w)`` (bilinear, antialiased); without it all images must
        have one size.
    on_error : {"raise", "skip"}
        Images: ``"skip"`` leaves unreadable files out, lists them in ``dataset.skipped`` and warns once.
    color : {"auto", "gray", "rgb", "rgba"}
        Images: the channels to decode to; ``"auto"`` follows the first image.
    progress : bool or "auto"
        Images: a progress bar on stderr while decoding. ``"auto"`` draws it only on a terminal and only
        in ``arrays()`` (whoever consumes ``iter_batches`` counts progress itself); ``True`` always.

    Returns
    -------
    Dataset
        Streams batches (:meth:`~Dataset.iter_batches`) and materializes arrays (:meth:`~Dataset.arrays`).

    Raises
    ------
    DatasetError
        A bad spec, a missing path, an option that does not apply to the kind, or a corrupt file.

    Examples
    --------
    >>> import normlab.data
    >>> ds = normlab.data.open("wine", validation_split=0.25)
    >>> ds.splits, ds.num_samples("train"), ds.num_samples("validation")
    (('train', 'validation'), 133, 45)
    """
    kind, path = parse_spec(spec)
    name = kind.name if path is None else f"{kind.name}:{path}"
    options: dict[str, Any] = {
        "validation_split": validation_split,
        "shuffle_split": shuffle_split,
        "seed": seed,
        "limit": limit,
        "target": target,
        "drop": drop,
        "sep": sep,
        "keys": keys,
        "resize": resize,
        "on_error": on_error,
        "color": color,
        "progress": progress,
    }
    # progress= is accepted for every kind; only image folders are slow enough to draw a bar.
    given = [
        k
        for k, v in options.items()
        if k not in (*_COMMON, "progress") and v != _DEFAULTS[k] and v is not None
    ]
    foreign = [k for k in given if k not in kind.options]
    if foreign:
        users = {k: sorted(n for n, kd in KINDS.items() if k in kd.options) for k in foreign}
        detail = "; ".join(f"{k}= applies to {', '.join(users[k])}" for k in foreign)
        raise DatasetError(
            f"{name}: option {', '.join(k + '=' for k in foreign)} does not apply to {kind.name} datasets "
            f"({detail}); expected only options of {kind.name}. Leave it out."
        )
    _check_common(name, options)
    common = {k: options[k] for k in _COMMON}
    own = {k: options[k] for k in kind.options}
    if path is not None:
        path = _check_path(kind, path, str(spec))
    try:
        return kind.load(kind.name, path, name, **own, **common)
    except DatasetError as exc:  # one printable line, whatever a file name or a field holds
        raise DatasetError(one_line(str(exc))) from None
    except OSError as exc:  # a file that cannot be opened or read (permissions, a folder, I/O errors)
        where = getattr(exc, "filename", None) or path
        raise DatasetError(
            one_line(f"{name}: cannot read {where}: {exc.strerror or exc}; expected a readable file. Check the "
                     "path and its permissions.")
        ) from None
