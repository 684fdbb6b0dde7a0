"""The arrays every check reads: open what the user passes (array, spec, dataset) and keep its summaries.

:class:`Data` is one input array in the common per-sample shape with its role (train, normalized, test,
test_normalized), and caches what several checks ask of it: the NaN/inf mask, exact statistics, subsamples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from normlab.errors import DatasetError

__all__ = ["ROLE_LABELS", "Data", "dataset_samples", "exact_stats", "resolve_array"]

#: How messages name each input.
ROLE_LABELS = {
    "train": "the training data",
    "normalized": "the normalized data",
    "test": "the test data",
    "test_normalized": "the normalized test data",
}


@dataclass
class Data:
    """One input array (``role`` is train, normalized, test or test_normalized) in the common shape."""

    role: str
    source: str
    x: np.ndarray
    user_shape: tuple[int, ...]
    names: list[str] | None = None
    label_text: str | None = None  # how messages name it when not by its role (what a model receives)
    pooled: bool = False  # images of mixed sizes, read as their pixels: samples of shape (1, 1, c)
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return self.label_text or ROLE_LABELS[self.role]

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def describe(self) -> str:
        shape = tuple(self.user_shape)
        return f"{self.source} {shape} {self.x.dtype}"

    def nonfinite(self) -> np.ndarray | None:
        """Boolean mask of NaN/inf values, or None when every value is finite (cheap for integer data)."""
        if "nonfinite" not in self._cache:
            mask = None
            if self.x.dtype.kind == "f":
                total = np.add.reduce(self.x, axis=None, dtype=np.float64)
                if not np.isfinite(total):
                    bad = ~np.isfinite(self.x)
                    mask = bad if bad.any() else None
            self._cache["nonfinite"] = mask
        return self._cache["nonfinite"]

    def finite(self) -> tuple[np.ndarray, str]:
        """The values with every NaN/inf as NaN, and the ``nan=`` policy that leaves them out."""
        bad = self.nonfinite()
        if bad is None:
            return self.x, "raise"
        return np.where(bad, np.nan, self.x), "ignore"

    def stats(self, mode: str, channel_axis: int, quantiles: bool = False) -> Any:
        """Exact statistics (``normlab.stats``) for ``mode`` in global/channel/feature; non-finite values left out."""
        key = ("stats", mode, channel_axis, quantiles)
        if key not in self._cache:
            x, nan = self.finite()
            self._cache[key] = exact_stats([x], mode, channel_axis, nan=nan, quantiles=quantiles)
        return self._cache[key]

    def subsample(self, index: np.ndarray) -> np.ndarray:
        key = ("sub", index.size, int(index[0]), int(index[-1]))
        if key not in self._cache:
            self._cache[key] = np.asarray(self.x[index], dtype=np.float64)
        return self._cache[key]


def exact_stats(arrays: list[np.ndarray], mode: str, channel_axis: int, *, nan: str = "raise",
                quantiles: bool = False) -> Any:
    """``normlab.stats`` over one or more arrays (streamed one after the other) for ``mode``."""
    from normlab.core.summary import stats

    if mode == "global":  # one entry over everything, through the fast per-channel path
        arrays = [a.reshape(a.shape[0], -1, 1) for a in arrays]
        per, cax = "channel", -1
    else:
        per, cax = mode, channel_axis
    qs = (0.25, 0.5, 0.75) if quantiles else ()
    data: Any = arrays[0] if len(arrays) == 1 else iter(arrays)
    return stats(data, per=per, channel_axis=cax, quantiles=qs, nan=nan)


def resolve_array(obj: Any, role: str, split: str) -> tuple[np.ndarray, str, list[str] | None, bool]:
    """An array, a dataset spec / file path, or a ``normlab.data`` dataset -> (array, source, feature names,
    pooled: True for a folder of images of mixed sizes, whose samples are then its pixels, shape (1, 1, c))."""
    from normlab.core._fitting import as_array

    who = f"normlab.check({role}=...)"
    if isinstance(obj, (str, os.PathLike)):
        from normlab.data import open as open_dataset

        spec = str(obj)
        ds = open_dataset(spec)
        x, use, names, note = _split_arrays(ds, role, split)
        return as_array(x, who), (spec if len(ds.splits) == 1 else f"{spec} [{use}]") + note, names, bool(note)
    if hasattr(obj, "arrays") and hasattr(obj, "splits"):
        x, use, names, note = _split_arrays(obj, role, split)
        return as_array(x, who), f"{obj.name} [{use}]{note}", names, bool(note)
    names = None
    cols = getattr(obj, "columns", None)
    if cols is not None and hasattr(obj, "dtypes"):
        names = [str(c) for c in cols]
    if isinstance(obj, tuple) and len(obj) == 2 and hasattr(obj[0], "shape"):  # (x, y)
        obj = obj[0]
    x = as_array(obj, who)
    return x, "array", names, False


def _split_arrays(ds: Any, role: str, split: str) -> tuple[Any, str, list[str] | None, str]:
    """The samples of the split ``role`` reads from a dataset (test roles: its test split), the split's name,
    the dataset's feature names, and a note for the source ("" unless the images were pooled as pixels)."""
    use = split if split in ds.splits else ds.default_split
    if role.startswith("test") and "test" in ds.splits:
        use = "test"
    names = list(ds.feature_names) if getattr(ds, "feature_names", None) else None
    x, note = dataset_samples(ds, use)
    return x, use, names, note


def dataset_samples(ds: Any, split: str) -> tuple[np.ndarray, str]:
    """The samples of one split of a ``normlab.data`` dataset, and a note for their source: "" normally,
    ``", 4 images of mixed sizes read as their 2,465 pixels"`` for a folder of images of different sizes."""
    try:
        x, _ = ds.arrays(split)
    except DatasetError:
        pooled = _pooled_pixels(ds, split) if getattr(ds, "kind", "") == "images" else None
        if pooled is None:
            raise
        x, n_images = pooled
        return x, f", {n_images} images of mixed sizes read as their {x.shape[0]:,} pixels"
    return x, getattr(ds, "pooled_note", "")


def _pooled_pixels(ds: Any, split: str) -> tuple[np.ndarray, int] | None:
    """A folder of images of different sizes as its pixels, ``(p, 1, 1, c)``, and the number of images: the
    per-channel checks are the same on them (pooled statistics are defined for any sizes). None when the
    images have one size after all (then the error was another one)."""
    batches = [b for b, _ in ds.iter_batches(split=split)]
    if len({b.shape[1:] for b in batches}) <= 1:
        return None
    pixels = [b.reshape(-1, 1, 1, b.shape[-1]) for b in batches]  # images are (h, w, c), channels-last
    return np.concatenate(pixels), sum(b.shape[0] for b in batches)
