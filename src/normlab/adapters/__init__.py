"""Framework bridges: PyTorch modules, Keras layers, conversions, and Dask collections.

Each bridge lives in its own module and imports its framework only when it is imported itself:

- :mod:`normlab.adapters.torch`: ``to_torch``, ``Normalize``, ``SampleNormalize``, ``dataset_stats``;
- :mod:`normlab.adapters.keras`: ``to_keras``, ``Normalize``, ``SampleNormalize`` (Keras layers);
- :mod:`normlab.adapters.convert`: ``from_sklearn``, ``from_keras``;
- :mod:`normlab.adapters.dask`: statistics of Dask collections.

This module itself imports NumPy only. Importing it (``import normlab`` does) fills the hooks of
:mod:`normlab.core._hooks` through which the NumPy-only core reaches the bridges: ``to_torch()`` and
``to_keras()`` of every normalizer, Dask collections passed to ``fit`` or ``normlab.stats``, and the
model readers of ``normlab.check(model=...)`` (:mod:`normlab.adapters.models`).
Framework *data* (DataLoaders, Datasets, PyDatasets) needs no bridge: :func:`as_batches` (in
:mod:`normlab.core._batches`) recognizes it by class name.
"""

from __future__ import annotations

from typing import Any

from normlab.core._batches import DEFAULT_BATCH_SIZE, as_batches
from normlab.core._hooks import register_collection, register_exporter, register_model_reader

__all__ = ["DEFAULT_BATCH_SIZE", "as_batches", "is_dask_collection"]


def is_dask_collection(x: Any) -> bool:
    """True for a Dask collection (array, bag, delayed, DataFrame) or a list of them (checked without dask)."""
    if isinstance(x, list) and x:
        return all(is_dask_collection(item) for item in x)
    return (type(x).__module__ or "").startswith("dask.")


def _feed_dask(feed: Any, x: Any) -> Any:
    from normlab.adapters.dask import feed_collection  # imported only for Dask input

    return feed_collection(feed, x)


def _to_torch(normalizer: Any) -> Any:
    from normlab.adapters.torch import to_torch

    return to_torch(normalizer)


def _to_keras(normalizer: Any) -> Any:
    from normlab.adapters.keras import to_keras

    return to_keras(normalizer)


def _read_model(model: Any) -> Any:
    from normlab.adapters.models import read_model  # imported only when a model is checked

    return read_model(model)


register_collection("dask", is_dask_collection, _feed_dask)
register_exporter("torch", _to_torch)
register_exporter("keras", _to_keras)
register_model_reader("models", _read_model)


def _to_torch_dataset(request: Any) -> Any:
    from normlab.adapters.torch_data import to_torch_dataset

    return to_torch_dataset(request)


register_exporter("torch-dataset", _to_torch_dataset)
