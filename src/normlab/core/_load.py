"""``normlab.load``: read back any file normlab writes (a fitted normalizer or dataset statistics).

It sits above :mod:`normlab.core.persist` (the file format), :mod:`normlab.core.normalizers` and
:mod:`normlab.core.summary`, so that none of them needs to import another to load.
"""

from __future__ import annotations

import os
from typing import Any

from normlab.core import normalizers
from normlab.core.persist import build_normalizer, read_document
from normlab.core.summary import DatasetStats
from normlab.errors import PersistError

__all__ = ["load"]

#: The classes a ``kind: "normalizer"`` file may name.
NORMALIZER_CLASSES: dict[str, type] = {
    name: getattr(normalizers, name)
    for name in ("Identity", "Scale", "Center", "Standardize", "MinMax", "Robust", "LpNormalize")
}


def load(path: str | os.PathLike) -> Any:
    """Read a file written by ``normalizer.save()`` or ``normlab stats --out``.

    Returns a fitted normalizer (``kind: "normalizer"``) or a :class:`normlab.DatasetStats`
    (``kind: "stats"``). Raises :class:`normlab.errors.PersistError` for a missing, corrupted, truncated,
    foreign or newer-version file; nothing is built until the whole file has been validated.
    """
    doc = read_document(path)
    where = str(path)
    if doc["kind"] == "stats":
        return DatasetStats.from_document(doc, where)
    if doc["kind"] != "normalizer":
        raise PersistError(f"Cannot load {where!r}: unknown kind {doc['kind']!r}; expected 'normalizer' or 'stats'.")
    return build_normalizer(doc, where, NORMALIZER_CLASSES)
