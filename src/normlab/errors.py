"""Exceptions and warnings raised by normlab, all in one place.

Every exception subclasses :class:`NormlabError` *and* the builtin it stands for, so callers can catch
either ``normlab.NormlabError`` or the usual ``ValueError`` / ``TypeError``. Messages follow one shape:
what happened; what was expected; how to fix it.

This module is the base layer: it imports nothing from normlab, so every other module may use it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ClusterError",
    "CompareError",
    "DataError",
    "DataTypeError",
    "DatasetError",
    "InputScaleWarning",
    "LayoutError",
    "MissingDataError",
    "NonFiniteError",
    "NormlabError",
    "NormlabWarning",
    "NotFittedError",
    "OutputError",
    "ParameterError",
    "PersistError",
    "UsageError",
    "ZeroVarianceWarning",
    "nonfinite_message",
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


class NonFiniteError(DataError):
    """Data holds NaN or infinite values where finite numbers were required.

    Attributes
    ----------
    n_nan, n_inf : int
        Number of NaN and of infinite values found.
    first_index : tuple of int
        Index of the first non-finite value (C order) in the array the message names.
    """

    def __init__(self, message: str, *, n_nan: int, n_inf: int, first_index: Sequence[int] = ()):
        super().__init__(message)
        self.n_nan = int(n_nan)
        self.n_inf = int(n_inf)
        self.first_index = tuple(int(i) for i in first_index)

    def __reduce__(self):  # keep the attributes when shipped between processes
        return (_rebuild_nonfinite, (self.args[0], self.n_nan, self.n_inf, self.first_index))


def _rebuild_nonfinite(message, n_nan, n_inf, first_index):
    return NonFiniteError(message, n_nan=n_nan, n_inf=n_inf, first_index=first_index)


def nonfinite_message(
    who: str, n_nan: int, n_inf: int, where: str, first: Sequence[int] | None = None, *, fix: str | None = None
) -> str:
    """The one message for NaN/inf found where finite numbers were expected.

    ``where`` names what was searched (``"a batch of shape (32, 3)"``), ``first`` the index of the first
    bad value in it, ``fix`` an extra way out specific to the caller (``"x.map_blocks(np.nan_to_num)"``).

    >>> nonfinite_message("Standardize()", 2, 0, "input of shape (4, 3)", (1, 2))  # doctest: +NORMALIZE_WHITESPACE
    "Standardize() found 2 NaN and 0 inf values in input of shape (4, 3) (the first at index (1, 2));
    expected finite numbers. Remove or impute them, or pass nan='ignore' to leave NaN out of the
    statistics (they pass through transform), e.g. np.nan_to_num(x)."
    """
    at = "" if first is None else f" (the first at index {tuple(int(i) for i in first)})"
    if n_inf:
        hint = (
            "Replace infinite values before fitting (clip them, or e.g. "
            f"{fix or 'np.nan_to_num(x)'}); nan='ignore' only skips NaN."
        )
    else:
        hint = (
            "Remove or impute them, or pass nan='ignore' to leave NaN out of the statistics (they pass "
            f"through transform), e.g. {fix or 'np.nan_to_num(x)'}."
        )
    return (
        f"{who} found {int(n_nan)} NaN and {int(n_inf)} inf values in {where}{at}; expected finite numbers. "
        + hint
    )


class PersistError(NormlabError, ValueError):
    """A saved file is missing, corrupted, truncated, foreign, or from a newer normlab."""


class OutputError(PersistError, OSError):
    """A file or folder cannot be written: a read-only or missing folder, a full disk, a folder where a file
    belongs (or a file where a folder belongs). ``errno`` is the system's error number when it gave one."""


class DatasetError(NormlabError, ValueError):
    """A dataset spec or a dataset file is wrong (bad path, corrupt file, inconsistent sizes)."""


class ParameterError(NormlabError, ValueError):
    """A constructor or function argument is not valid (unknown choice, out of range, wrong type of value)."""


class UsageError(NormlabError, ValueError):
    """An object was asked for something it was not built to do (a wrong combination of arguments)."""


class CompareError(NormlabError, ValueError):
    """A comparison is configured wrongly (unknown method, model or preset; a run folder of another
    configuration; data a model cannot read)."""


class ClusterError(NormlabError, ConnectionError):
    """The Dask cluster cannot be reached, or lost the work it was given."""


class MissingDataError(NormlabError, FileNotFoundError):
    """A worker's machine has neither the sweep's files nor a copy of them (raised on the worker)."""

    def __init__(self, worker: str, path: str) -> None:
        super().__init__(worker, path)
        self.worker, self.path = worker, path

    def __str__(self) -> str:
        return f"worker {self.worker} cannot read {self.path} and holds no copy of it"

    def __reduce__(self):
        return (MissingDataError, (self.worker, self.path))


class NormlabWarning(UserWarning):
    """Base class of normlab's warnings."""


class InputScaleWarning(NormlabWarning):
    """An exported normalizer receives data on another scale than it was fitted on (e.g. [0, 1] floats
    into a module fitted on 0-255 pixels)."""


class ZeroVarianceWarning(NormlabWarning):
    """Some statistics have zero spread; those entries are divided by 1 instead."""
