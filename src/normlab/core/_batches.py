"""Framework data as a stream of input batches, recognized without importing any framework.

:func:`as_batches` turns a PyTorch ``DataLoader``, map-style ``Dataset`` or ``IterableDataset`` and a Keras
``PyDataset`` into a stream of input batches; it recognizes them by their class names (the framework is
never imported here) and leaves anything else unchanged. The fitting code calls it on every input, so
``fit(loader)`` works for any framework's data while ``core`` imports NumPy only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from normlab.errors import DataTypeError

__all__ = ["DEFAULT_BATCH_SIZE", "as_batches", "convention_channel_axis"]


#: Samples per batch when a dataset yields single samples.
DEFAULT_BATCH_SIZE = 256


def _framework_kind(obj: Any) -> str | None:
    """``"loader"``, ``"map"``, ``"iterable"`` or ``"pydataset"`` for framework data objects, else None."""
    for cls in type(obj).__mro__:
        mod = cls.__module__ or ""
        if mod.startswith("torch.utils.data"):
            if cls.__name__ == "DataLoader":
                return "loader"
            if cls.__name__ == "IterableDataset":
                return "iterable"
            if cls.__name__ == "Dataset":
                return "map"
        elif mod.startswith("keras") and cls.__name__ == "PyDataset":
            return "pydataset"
    return None


class _Batches:
    """An iterable of input batches with a known length (for progress), re-iterable if its source is."""

    def __init__(self, make: Any, n_batches: int | None):
        self._make = make
        self._n = n_batches

    def __iter__(self) -> Iterator[Any]:
        return iter(self._make())

    def __len__(self) -> int:
        if self._n is None:
            raise TypeError("the number of batches is not known")
        return self._n


def _first(item: Any, where: str) -> Any:
    """The input part of a batch or sample: ``x`` of ``(x, y)`` / ``(x, y, weight)``, else the item."""
    if isinstance(item, (tuple, list)):
        if not 1 <= len(item) <= 3:
            raise DataTypeError(
                f"{where} yielded a sequence of {len(item)} items; expected a tensor or an (x, y) pair. Wrap "
                "the data so that the input comes first, e.g. ((x, y) for x, y, *_ in loader)."
            )
        return item[0]
    if isinstance(item, dict):
        raise DataTypeError(
            f"{where} yielded a dict with keys {sorted(map(str, item))}; expected a tensor or an (x, y) pair. "
            "Select the input, e.g. (batch['image'] for batch in loader)."
        )
    return item


def _as_numpy(sample: Any) -> np.ndarray:
    if hasattr(sample, "detach") and hasattr(sample, "cpu"):
        return sample.detach().cpu().numpy()
    return np.asarray(sample)  # arrays, PIL images, numbers


def _stack(samples: list[Any]) -> np.ndarray:
    return np.stack([_as_numpy(s) for s in samples])


def _group(samples: Any, batch_size: int, where: str) -> Iterator[np.ndarray]:
    chunk: list[Any] = []
    for item in samples:
        chunk.append(_first(item, where))
        if len(chunk) == batch_size:
            yield _stack(chunk)
            chunk = []
    if chunk:
        yield _stack(chunk)


def as_batches(obj: Any, batch_size: int | None = None) -> Any:
    """Framework data as an iterable of input batches; anything else is returned unchanged.

    - ``torch.utils.data.DataLoader``: its batches, the input of ``(x, y)`` pairs (``[x]`` from a
      one-tensor ``TensorDataset`` included). A loader with ``batch_size=None`` yields samples, which are
      grouped into batches, unless its ``sampler`` is a ``BatchSampler`` (whole batches fetched at once).
    - a map-style ``torch.utils.data.Dataset`` (``__getitem__`` + ``__len__``, one sample per index, e.g.
      ``TensorDataset`` or a torchvision dataset): its samples in order, ``batch_size`` at a time
      (``TensorDataset`` is sliced directly).
    - ``torch.utils.data.IterableDataset``: its samples, grouped ``batch_size`` at a time.
    - ``keras.utils.PyDataset``: ``dataset[i]`` for each of its ``num_batches`` batches (``x`` of
      ``(x, y)`` or ``(x, y, sample_weight)``).

    Any split into batches gives the same statistics, so ``batch_size`` (default 256 samples) only bounds
    memory.

    Examples
    --------
    >>> import numpy as np
    >>> as_batches(np.zeros(3)).shape     # not framework data: unchanged
    (3,)
    """
    kind = _framework_kind(obj)
    if kind is None:
        return obj
    batch_size = int(batch_size or DEFAULT_BATCH_SIZE)
    name = type(obj).__name__
    if kind == "loader":
        sampler = getattr(obj, "sampler", None)
        fetches_batches = any(c.__name__ == "BatchSampler" for c in type(sampler).__mro__)
        unbatched = (getattr(obj, "batch_size", 1) is None and getattr(obj, "batch_sampler", None) is None
                     and not fetches_batches)
        n = _len(obj)
        if unbatched:
            return _Batches(lambda: _group(obj, batch_size, name), None if n is None else -(-n // batch_size))
        return _Batches(lambda: (_first(b, name) for b in obj), n)
    if kind == "pydataset":
        try:
            n = obj.num_batches
        except NotImplementedError:
            n = None
        if n is None:
            raise DataTypeError(
                f"{name} is a PyDataset without a number of batches (infinite); expected a finite dataset. "
                "Define __len__ or num_batches, or pass a finite generator of batches."
            )
        n = int(n)
        return _Batches(lambda: (_first(obj[i], name) for i in range(n)), n)
    if kind == "iterable":
        return _Batches(lambda: _group(obj, batch_size, name), None)
    # map-style dataset
    n = _len(obj)
    if n is None:
        raise DataTypeError(
            f"{name} is a map-style Dataset without __len__; expected len(dataset) to be defined. Wrap it in "
            "a DataLoader, or pass an iterable of batches."
        )
    tensors = getattr(obj, "tensors", None)
    if type(obj).__name__ == "TensorDataset" and isinstance(tensors, tuple) and tensors:
        x = tensors[0]
        return _Batches(lambda: (x[i : i + batch_size] for i in range(0, n, batch_size)), -(-n // batch_size))

    def chunks() -> Iterator[np.ndarray]:
        for start in range(0, n, batch_size):
            yield _stack([_first(obj[i], name) for i in range(start, min(n, start + batch_size))])

    return _Batches(chunks, -(-n // batch_size))


def _len(obj: Any) -> int | None:
    try:
        return len(obj)
    except TypeError:
        return None


def convention_channel_axis(obj: Any) -> int:
    """Where the input's own framework puts channels: ``1`` for PyTorch, ``-1`` for everything else.

    PyTorch tensors, ``Dataset``s and ``DataLoader``s are channels-first ``(n, c, h, w)``; NumPy arrays,
    pandas, Keras ``PyDataset``s, normlab datasets and plain iterables channels-last ``(n, h, w, c)``.
    Recognized by class, without importing torch.

    >>> import numpy as np
    >>> convention_channel_axis(np.zeros((2, 3, 4, 4)))
    -1
    """
    kind = _framework_kind(obj)
    if kind in ("loader", "map", "iterable"):
        return 1
    return 1 if (type(obj).__module__ or "").startswith("torch") and hasattr(obj, "detach") else -1
