"""Where the layers above core plug in what only a framework knows.

``core`` imports NumPy only and never imports a layer above it. Two things it needs are known only to
the framework bridges in :mod:`normlab.adapters`, which fill these hooks when ``normlab`` is imported:

- **collections**: inputs that must be reduced where their data live (Dask arrays, bags, delayed
  batches), recognized by a cheap predicate and fed to a :class:`~normlab.core._fitting.StatsFeed` by the
  bridge (``register_collection``);
- **exporters**: ``normalizer.to_torch()`` and ``normalizer.to_keras()`` (``register_exporter``);
- **model readers**: the normalization layers at a model's input, for ``normlab.check(model=...)``
  (``register_model_reader``).

>>> export("no-such-framework", None)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
normlab.errors.NormlabError: No exporter for 'no-such-framework' is registered; expected one of ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from normlab.errors import NormlabError

__all__ = ["collection_feeder", "export", "model_readers", "register_collection", "register_exporter",
           "register_model_reader"]

_COLLECTIONS: dict[str, tuple[Callable[[Any], bool], Callable[[Any, Any], Any]]] = {}
_EXPORTERS: dict[str, Callable[[Any], Any]] = {}


def register_collection(name: str, is_collection: Callable[[Any], bool], feed: Callable[[Any, Any], Any]) -> None:
    """Route inputs for which ``is_collection(x)`` holds to ``feed(stats_feed, x)`` (returns the Layout).

    ``is_collection`` must be cheap and must not import the framework (it runs on every input).
    """
    _COLLECTIONS[name] = (is_collection, feed)


def collection_feeder(x: Any) -> Callable[[Any, Any], Any] | None:
    """The feeder of the registered collection kind ``x`` belongs to, or None for ordinary input."""
    for is_collection, feed in _COLLECTIONS.values():
        if is_collection(x):
            return feed
    return None


def register_exporter(name: str, fn: Callable[[Any], Any]) -> None:
    """Make ``export(name, normalizer)`` call ``fn(normalizer)``."""
    _EXPORTERS[name] = fn


def export(name: str, normalizer: Any) -> Any:
    """The framework layer of a fitted normalizer (what ``to_torch()``/``to_keras()`` return)."""
    fn = _EXPORTERS.get(name)
    if fn is None:
        raise NormlabError(
            f"No exporter for {name!r} is registered; expected one of {', '.join(sorted(_EXPORTERS)) or 'none'}. "
            "Import normlab (which registers its bridges) before exporting."
        )
    return fn(normalizer)


# ---- model readers: the normalization inside a model, for ``normlab.check(model=...)`` -------------

_MODEL_READERS: dict[str, Callable[[Any], Any]] = {}


def register_model_reader(name: str, fn: Callable[[Any], Any]) -> None:
    """Let ``normlab.check(model=...)`` read models with ``fn(model)``: a description of the model's input
    normalization (``normlab.check.ModelInput``), or None when ``fn`` does not know this kind of model."""
    _MODEL_READERS[name] = fn


def model_readers() -> list[Callable[[Any], Any]]:
    """The registered model readers, in the order they were registered."""
    return list(_MODEL_READERS.values())
