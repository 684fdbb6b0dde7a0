"""``LoadedDataset.torch(split)``: a ``normlab.data`` split as a map-style ``torch.utils.data.Dataset``.

Samples come channels-first in the stored dtype: ``(c, h, w)`` ``uint8`` for 8-bit images (what
torchvision's ``PILToTensor`` gives; scale them yourself or let the exported normalizer do it), ``(f,)`` for
tables. Labels are Python ints (``float`` for regression targets), which ``default_collate`` stacks into an
``int64`` tensor. Reached from the data layer through the ``"torch-dataset"`` exporter hook.

>>> import normlab.data  # doctest: +SKIP
>>> loader = torch.utils.data.DataLoader(normlab.data.open("mnist:DIR").torch("train"), batch_size=64)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["NormlabTorchDataset", "to_torch_dataset"]


class NormlabTorchDataset(Dataset):
    """``len()`` samples; ``[i]`` is ``(x, y)`` (``x`` alone when unlabeled), ``x`` channels-first."""

    def __init__(self, split: Any, transform: Any = None, target_transform: Any = None) -> None:
        self.split = split
        self.transform = transform
        self.target_transform = target_transform
        ds = split.dataset
        self.classes = list(ds.class_names) if ds.class_names is not None else None
        self.layout = ds.layout  # "(n, h, w, c)": channels move first; "(n, h, w)": one channel is added

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> Any:
        x, y = self.split[i]
        if self.layout.endswith(", c)"):
            x = np.moveaxis(x, -1, 0)
        elif self.layout == "(n, h, w)":
            x = x[None]
        t = torch.from_numpy(np.ascontiguousarray(x))
        if self.transform is not None:
            t = self.transform(t)
        if y is None:  # an unlabeled dataset
            return t
        if self.target_transform is not None:
            y = self.target_transform(y)
        return t, y

    def __repr__(self) -> str:
        return f"NormlabTorchDataset({self.split.dataset.name!r} [{self.split.split}], {len(self)} samples)"


def to_torch_dataset(request: tuple[Any, Any, Any]) -> NormlabTorchDataset:
    """The exporter behind ``LoadedDataset.torch``: ``(indexed split, transform, target_transform)``."""
    split, transform, target_transform = request
    return NormlabTorchDataset(split, transform, target_transform)
