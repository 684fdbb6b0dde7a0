"""Exceptions and warnings raised by normlab.

Every exception subclasses :class:`NormlabError` *and* the builtin it stands for, so callers can catch
either ``normlab.NormlabError`` or the usual ``ValueError`` / ``TypeError``. Messages follow one shape:
what happened; what was expected; how to fix it.
"""

from __future__ import annotations

__all__ = [
    "DataError",
    "DatasetError",
    "LayoutError",
    "NormlabError",
    "NormlabWarning",
    "NotFittedError",
    "PersistError",
    "ZeroVarianceWarning",
]


class NormlabError(Exception):
    """Base class of every error normlab raises on purpose."""


class NotFittedError(NormlabError, ValueError, AttributeError):
    """A normalizer was used before ``fit``/``partial_fit`` (or ``normlab.load``)."""


class LayoutError(NormlabError, ValueError):
    """An array's shape or axes do not fit what was asked or what was fitted."""


class DataError(NormlabError, ValueError):
    """The values themselves are unusable: empty, NaN/inf, or of a non-numeric dtype."""


class DataTypeError(DataError, TypeError):
    """The input is of a type normlab cannot read (object, string, complex, sparse)."""


class PersistError(NormlabError, ValueError):
    """A saved file is missing, corrupted, truncated, foreign, or from a newer normlab."""


class DatasetError(NormlabError, ValueError):
    """A dataset spec or a dataset file is wrong (bad path, corrupt file, inconsistent sizes)."""


class NormlabWarning(UserWarning):
    """Base class of normlab's warnings."""


class ZeroVarianceWarning(NormlabWarning):
    """Some statistics have zero spread; those entries are divided by 1 instead."""


__all__ += ["DataTypeError"]
