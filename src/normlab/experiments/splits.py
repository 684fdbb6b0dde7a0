"""The splits a sweep trains on: open the data, pick the validation split, and fingerprint its contents.

A dataset enters a run's identity by its contents (a hash of the arrays), its sizes and how its
validation split was made, never by where its files are: moving the files resumes the same run folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from normlab.data import open as open_dataset
from normlab.experiments._common import CompareError

__all__ = ["SweepData", "load_data", "short_name"]


@dataclass(frozen=True)
class SweepData:
    """The training and validation splits, and what identifies them.

    Attributes
    ----------
    spec : str
        The spec as given (or the dataset object's name); recorded, not part of the identity.
    arrays : tuple of ndarray
        ``(x_train, y_train, x_val, y_val)``, C-contiguous, labels int64.
    identity : dict
        Name (without folders), content fingerprint, sizes, how validation was made, sample shape, dtype,
        number of classes: the data's part of a run's identity.
    """

    spec: str
    arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    identity: dict[str, Any]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.identity["sample_shape"])

    @property
    def n_classes(self) -> int:
        return int(self.identity["n_classes"])


def load_data(
    data: Any, *, validation_split: float | None, limit: int | None, options: dict[str, Any]
) -> SweepData:
    """Open the data and return the training and validation splits plus what identifies them."""
    is_spec = isinstance(data, str) or hasattr(data, "__fspath__")
    ds, spec = _open(data, is_spec, validation_split, limit, options)
    # a spec's name loses its folders (moving the files changes nothing); a dataset object's is kept
    name = short_name(ds.name) if is_spec else str(ds.name)
    val_split = (
        "validation" if "validation" in ds.splits else "test" if "test" in ds.splits else None
    )
    if val_split is None:
        raise CompareError(
            f"{ds.name} has no validation or test split (splits: {', '.join(ds.splits)}); expected one to "
            "measure validation metrics. Pass validation_split=0.2 (CLI: --validation-split 0.2)."
        )
    arrays = _arrays(ds, val_split)
    x_train, y_train, x_val, y_val = arrays
    n_classes = (
        getattr(ds, "n_classes", None) or int(max(y_train.max(initial=0), y_val.max(initial=0))) + 1
    )
    identity = {
        "name": name,
        "fingerprint": _fingerprint(arrays),
        "n_train": len(x_train),
        "n_val": len(x_val),
        "validation": _how_validated(ds, val_split),
        "sample_shape": list(x_train.shape[1:]),
        "dtype": x_train.dtype.name,
        "n_classes": int(n_classes),
    }
    return SweepData(spec=spec, arrays=arrays, identity=identity)


def _open(
    data: Any, is_spec: bool, validation_split: float | None, limit: int | None, options: dict[str, Any]
) -> tuple[Any, str]:
    """The opened dataset and its spec; a spec without validation or test split holds out 20 % of train."""
    if is_spec:
        spec = str(data)
        opts = dict(options)
        if limit is not None:
            opts["limit"] = limit
        ds = open_dataset(spec, validation_split=validation_split, **opts)
        if validation_split is None and "test" not in ds.splits and "validation" not in ds.splits:
            ds = open_dataset(spec, validation_split=0.2, **opts)
        return ds, spec
    if hasattr(data, "arrays") and hasattr(data, "splits"):
        if limit is not None or validation_split is not None or options:
            raise CompareError(
                "limit, validation_split and dataset options apply to a dataset spec; expected them on "
                "normlab.data.open(...) when you pass an opened dataset."
            )
        return data, getattr(data, "name", "dataset")
    raise CompareError(
        f"data={type(data).__name__} is not a dataset; expected a spec such as 'digits' or "
        "'mnist:DIR', or a dataset from normlab.data.open() / normlab.data.from_arrays()."
    )


def _arrays(ds: Any, val_split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x_train, y_train = ds.arrays("train")
    x_val, y_val = ds.arrays(val_split)
    if y_train is None or y_val is None:
        raise CompareError(
            f"{ds.name} has no labels; expected a labelled classification dataset (for tables, name the "
            "label column with target=..., CLI --target COLUMN)."
        )
    if len(x_train) < 2 or len(x_val) < 1:
        raise CompareError(
            f"{ds.name}: {len(x_train)} training and {len(x_val)} validation samples; expected at least 2 and 1. "
            "Use a larger --limit."
        )
    return (
        np.ascontiguousarray(x_train),
        np.asarray(y_train, dtype=np.int64),
        np.ascontiguousarray(x_val),
        np.asarray(y_val, dtype=np.int64),
    )


def _fingerprint(arrays: tuple[np.ndarray, ...]) -> str:
    """A hash of the splits' shapes, dtypes and bytes: the same contents give the same fingerprint."""
    digest = hashlib.blake2b(digest_size=12)
    for a in arrays:
        digest.update(str((a.shape, a.dtype.str)).encode())
        digest.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return digest.hexdigest()


def _how_validated(ds: Any, val_split: str) -> str:
    if val_split != "validation":
        return "the dataset's test split"
    if getattr(ds, "shuffle_split", False):
        return f"random {ds.validation_split:g} of train"
    return f"last {ds.validation_split:g} of train"


def short_name(name: str) -> str:
    """A dataset's name without its folders, so that moving the files changes nothing.

    >>> short_name("mnist:/data/mnist"), short_name("csv:/home/u/train.csv"), short_name("digits")
    ('mnist', 'csv:train.csv', 'digits')
    >>> short_name("mnist:mnist"), short_name("/data/x_train.npy")
    ('mnist', 'x_train.npy')
    """
    kind, sep, path = str(name).partition(":")
    if not sep or not path:
        return Path(str(name)).name or str(name)
    base = Path(path.rstrip("/\\")).name
    return kind if base == kind else f"{kind}:{base}"
