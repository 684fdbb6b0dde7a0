"""Random access to one split, sample by sample: what a map-style framework dataset needs.

:meth:`LoadedDataset.indexed` returns an :class:`IndexedSplit`: ``len()`` samples, ``split[i]`` is
``(x, y)`` with ``x`` as stored (channels-last, the dataset's dtype) and ``y`` an ``int`` label, a
``float`` target, or ``None``. Image folders decode one file per access (any size; ``resize=`` applies);
other sources are materialized once, on first access (memory-mapped where the file allows it, like
``arrays()``), since their files are read as streams. :meth:`LoadedDataset.torch` wraps one for PyTorch
(in :mod:`normlab.adapters.torch_data`; this module imports NumPy only).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from normlab.errors import DatasetError

__all__ = ["IndexedSplit"]


class IndexedSplit:
    """The samples of one split by index (see the module docstring)."""

    def __init__(self, dataset: Any, split: str, source: Any, index: np.ndarray) -> None:
        self.dataset = dataset
        self.split = split
        self._source = source
        self._index = index
        self._arrays: tuple[np.ndarray, np.ndarray | None] | None = None

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int | float | None]:
        n = len(self._index)
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise DatasetError(
                f"{self.dataset.name} [{self.split}]: index {i!r} is not an integer; expected 0 <= i < {n}."
            )
        if not -n <= int(i) < n:
            raise IndexError(f"{self.dataset.name} [{self.split}]: index {i} out of range for {n} samples")
        i = int(i) % n
        item = self._source.item(int(self._index[i]))
        if item is None:
            if self._arrays is None:
                self._arrays = self.dataset.arrays(self.split)
            x_all, y_all = self._arrays
            item = (x_all[i], None if y_all is None else y_all[i])
        x, y = item
        if y is not None:
            y = y.item() if hasattr(y, "item") else y
        return np.asarray(x), y
