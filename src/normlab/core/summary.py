"""Dataset statistics as a result: ``normlab.stats(data)`` and what ``normlab stats`` prints and saves."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from math import prod
from typing import Any

import numpy as np

from normlab._format import fmt_cell, text_table
from normlab.core import normalizers as nz
from normlab.core._fitting import StatsFeed, is_one_array, iter_input, rereader
from normlab.core._hooks import collection_feeder
from normlab.core.axes import resolve_layout, resolve_per
from normlab.core.persist import atomic_write_text, decode, to_document
from normlab.errors import LayoutError, ParameterError, PersistError

__all__ = ["DatasetStats", "stats"]

DEFAULT_QUANTILES = (0.25, 0.5, 0.75)


@dataclass
class DatasetStats:
    """Exact statistics of a dataset under one ``per=`` mode (one entry per channel, feature, ...).

    Attributes
    ----------
    per : str
        The resolved mode; ``layout`` names the axes, e.g. ``"(n, h, w, c)"``.
    sample_shape : tuple of int or None
        The shape of one sample, e.g. ``(28, 28, 1)``; None on the axes that vary (images of mixed sizes,
        pooled per channel: ``(None, None, 3)``).
    count, mean, var, std, min, max : ndarray of the statistic's shape, e.g. ``(c,)``
    quantiles : dict of float to ndarray
        E.g. ``{0.25: ..., 0.5: ..., 0.75: ...}``; exact unless ``quantile_rank_error > 0``.
    """

    per: str
    layout: str
    sample_shape: tuple[int | None, ...]
    channel_axis: int
    dtype: str
    n_samples: int
    count: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    min: np.ndarray
    max: np.ndarray
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)
    quantile_rank_error: float = 0.0
    source: str = ""
    names: list[str] | None = None

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.var)

    @property
    def median(self) -> np.ndarray | None:
        return self.quantiles.get(0.5)

    @property
    def unit_divisor(self) -> float | None:
        """What maps integer data onto [0, 1]: the dtype's maximum (255 for uint8 images, as ``ToTensor()``
        divides; 65535 for uint16; 1 for bool). None for float data, which is left in its own units."""
        dt = np.dtype(self.dtype)
        if dt.kind == "b":
            return 1.0
        return float(np.iinfo(dt).max) if dt.kind in "ui" else None

    @property
    def unit_mean(self) -> np.ndarray | None:
        """``mean`` on the [0, 1] scale (``mean / unit_divisor``): what ``transforms.Normalize`` wants after
        ``ToTensor()``. None for float data."""
        d = self.unit_divisor
        return None if d is None else np.asarray(self.mean, np.float64) / d

    @property
    def unit_std(self) -> np.ndarray | None:
        """``std`` on the [0, 1] scale (``std / unit_divisor``); None for float data."""
        d = self.unit_divisor
        return None if d is None else self.std / d

    def _unit_entry(self) -> dict[str, Any] | None:
        if self.unit_divisor is None:
            return None
        return {"divisor": self.unit_divisor, "mean": np.ravel(self.unit_mean).tolist(),
                "std": np.ravel(self.unit_std).tolist()}

    def entry_names(self) -> list[str]:
        """Row labels: ``channel 0``, a feature name, ``(3, 4)`` for a feature position, or ``all``."""
        n = int(np.size(self.mean))
        if self.per == "global":
            return ["all"]
        if self.names is not None and len(self.names) == n:
            return list(self.names)
        if self.per == "channel":
            return [f"channel {i}" for i in range(n)]
        shape = np.shape(self.mean)
        if len(shape) == 1:
            return [f"feature {i}" for i in range(n)]
        return [str(tuple(int(v) for v in np.unravel_index(i, shape))) for i in range(n)]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per entry: name, count, mean, std, min, max and every quantile."""
        flat = {k: np.ravel(v) for k, v in
                (("count", self.count), ("mean", self.mean), ("std", self.std), ("min", self.min), ("max", self.max))}
        out = []
        for i, name in enumerate(self.entry_names()):
            row: dict[str, Any] = {"name": name}
            row.update({k: (int(v[i]) if k == "count" else float(v[i])) for k, v in flat.items()})
            for q, arr in sorted(self.quantiles.items()):
                row[_qname(q)] = float(np.ravel(arr)[i])
            out.append(row)
        return out

    def table(self, max_rows: int = 20) -> str:
        """A fixed-width table for a terminal (long tables show their first and last rows)."""
        rows = self.rows()
        cols = ["name", "count", "mean", "std", "min", "max"] + [_qname(q) for q in sorted(self.quantiles)]
        shown = rows if len(rows) <= max_rows else [*rows[: max_rows // 2], None, *rows[-max_rows // 2 :]]
        cells = [[fmt_cell(r[c]) for c in cols] if r else ["..."] + [""] * (len(cols) - 1) for r in shown]
        lines = [
            f"{self.source or 'data'}: {self.n_samples} {self.describe_samples()} ({self.dtype}), "
            f"layout {self.layout}, per={self.per!r}",
            *text_table(cols, cells, align="<>"),
        ]
        if len(rows) > max_rows:
            lines.append(f"({len(rows) - max_rows} more rows; use --json or --out for all of them)")
        unit = self._unit_entry()
        if unit is not None and np.dtype(self.dtype) != np.bool_ and np.size(self.mean) <= 8:
            m, s = (", ".join(f"{v:.6f}" for v in unit[k]) for k in ("mean", "std"))
            lines.append(f"on the [0, 1] scale (x / {unit['divisor']:g}): mean ({m}), std ({s})")
        if self.quantile_rank_error:
            lines.append(f"quantiles are approximate: rank error at most {self.quantile_rank_error:.2e} of the count")
        return "\n".join(lines)

    @property
    def mixed_sizes(self) -> bool:
        """True when the samples differ in shape (images of mixed sizes, pooled per channel)."""
        return None in self.sample_shape

    def describe_samples(self) -> str:
        """``samples of shape (28, 28, 1)``, or ``images of mixed sizes (3 channels)``."""
        if not self.mixed_sizes:
            return f"samples of shape {tuple(self.sample_shape)}"
        cax = self.channel_axis - 1 if self.channel_axis > 0 else self.channel_axis  # the batch's axis numbers
        c = self.sample_shape[cax] if len(self.sample_shape) >= 2 else None
        return "images of mixed sizes" + (f" ({c} channel{'s' if c != 1 else ''})" if c is not None else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "per": self.per,
            "layout": self.layout,
            "sample_shape": list(self.sample_shape),
            "dtype": self.dtype,
            "n_samples": self.n_samples,
            "quantile_rank_error": self.quantile_rank_error,
            "entries": self.rows(),
            "unit_scale": self._unit_entry(),
        }

    def to_normalizer(self, kind: str = "standardize") -> Any:
        """A fitted normalizer built from these statistics: ``"standardize"``, ``"center"``, ``"minmax"`` or
        ``"robust"`` (which needs the quartiles 0.25, 0.5 and 0.75 among the saved quantiles).

        Use it to apply statistics computed once with ``normlab stats`` without reading the data again.
        """
        classes = {"standardize": nz.Standardize, "center": nz.Center, "minmax": nz.MinMax, "robust": nz.Robust}
        if kind not in classes:
            raise ParameterError(f"to_normalizer(kind={kind!r}) expected one of {', '.join(classes)}.")
        missing = [q for q in DEFAULT_QUANTILES if q not in self.quantiles] if kind == "robust" else []
        if missing:
            raise ParameterError(
                f"to_normalizer('robust') needs the quantiles 0.25, 0.5 and 0.75, but these statistics hold "
                f"{sorted(self.quantiles) or 'no quantiles'}; expected all three. Recompute them with "
                "normlab stats SOURCE --quantiles 0.25,0.5,0.75 (or normlab.stats(data))."
            )
        probe = tuple(1 if n is None else n for n in self.sample_shape)  # mixed sizes: per channel / global
        layout = resolve_layout(self.per, (1, *probe), self.channel_axis)
        return classes[kind].from_stats(_Frozen(self), layout=layout, fit_dtype=self.dtype,
                                        n_samples_seen=self.n_samples, per=self.per,
                                        channel_axis=self.channel_axis)

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics as versioned JSON; ``normlab.load(path)`` reads them back."""
        fitted = {
            "sample_shape": list(self.sample_shape),
            "channel_axis": self.channel_axis,
            "dtype": self.dtype,
            "n_samples": self.n_samples,
            "count": np.asarray(self.count, dtype=np.float64),
            "mean": self.mean,
            "var": self.var,
            "min": self.min,
            "max": self.max,
            "quantiles": {repr(float(q)): v for q, v in self.quantiles.items()},
            "quantile_rank_error": self.quantile_rank_error,
            "names": self.names,
            "summary": self.rows(),
            "unit_scale": self._unit_entry(),
        }
        fitted["quantiles"] = {k: {"ndarray": np.ravel(v).tolist(), "shape": list(np.shape(v))}
                               for k, v in fitted["quantiles"].items()}
        params = {"source": self.source, "per": self.per, "layout": self.layout}
        atomic_write_text(path, to_document("stats", "DatasetStats", params, fitted))

    @classmethod
    def from_document(cls, doc: dict[str, Any], where: str) -> DatasetStats:

        p, f = doc["params"], doc["fitted"]
        try:
            arrays = {k: decode(f[k], f"{where}: {k}") for k in ("count", "mean", "var", "min", "max")}
            quantiles = {float(k): decode(v, f"{where}: {k}") for k, v in f.get("quantiles", {}).items()}
            if not all(isinstance(a, np.ndarray) for a in [*arrays.values(), *quantiles.values()]):
                raise PersistError(f"Cannot load {where!r}: its statistics are not arrays; the file is damaged.")
            count = np.asarray(arrays["count"], np.float64)
            if np.any(~np.isfinite(count) | (count < 0) | (count != np.round(count)) | (count >= 2**63)):
                raise PersistError(f"Cannot load {where!r}: its count entries are not sample counts; the file is damaged.")
            out = cls(per=p["per"], layout=p["layout"], sample_shape=tuple(f["sample_shape"]),
                      channel_axis=int(f["channel_axis"]), dtype=str(np.dtype(f["dtype"])),
                      n_samples=int(f["n_samples"]), count=arrays["count"].astype(np.int64),
                      mean=arrays["mean"], var=arrays["var"], min=arrays["min"], max=arrays["max"],
                      quantiles=quantiles, quantile_rank_error=float(f.get("quantile_rank_error", 0.0)),
                      source=str(p.get("source", "")), names=f.get("names"))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise PersistError(f"Cannot load {where!r}: the statistics entries are missing or malformed ({err}).") from err
        shapes = {np.shape(v) for v in (out.mean, out.var, out.min, out.max, out.count)}
        if len(shapes) != 1:
            raise PersistError(f"Cannot load {where!r}: its statistics have inconsistent shapes {sorted(shapes)}.")
        _check_saved_values(out, where)
        return out

    def __repr__(self) -> str:
        return (f"DatasetStats(per={self.per!r}, layout={self.layout!r}, n_samples={self.n_samples}, "
                f"mean={np.round(self.mean, 6).tolist() if np.size(self.mean) <= 8 else '...'})")


def _check_saved_values(s: DatasetStats, where: str) -> None:
    """Refuse statistics no data can have: negative variances, min > max, infinite moments, quantiles
    outside [0, 1] (entries without values may hold NaN; counts are checked while decoding)."""
    seen = np.asarray(s.count) > 0
    problems = {
        "mean": seen & ~np.isfinite(s.mean),
        "var": seen & ~(np.isfinite(s.var) & (s.var >= 0)),
        "min/max": seen & ~(np.isfinite(s.min) & np.isfinite(s.max) & (s.min <= s.max)),
    }
    if s.n_samples < 0 or any(not 0 <= q <= 1 for q in s.quantiles):
        problems["n_samples/quantiles"] = np.ones(1, bool)
    for name, bad in problems.items():
        if np.any(bad):
            raise PersistError(
                f"Cannot load {where!r}: its {name} entries hold values no data can have (e.g. a negative "
                "variance or count, or min > max); the file is damaged. Compute the statistics again."
            )


class _Frozen:
    """Adapts :class:`DatasetStats` to the statistics interface the normalizer formulas use."""

    def __init__(self, s: DatasetStats):
        self._s = s
        self.shape = np.shape(s.mean)
        self.count, self.mean, self.var, self.min, self.max = s.count, s.mean, s.var, s.min, s.max
        self.input_kind = np.dtype(s.dtype).kind  # integer statistics are exact

    def quantile(self, q: float) -> np.ndarray:
        if q not in self._s.quantiles:
            raise ParameterError(f"these statistics hold the quantiles {sorted(self._s.quantiles)}, not {q}.")
        return self._s.quantiles[q]


def _qname(q: float) -> str:
    return "median" if q == 0.5 else f"q{q * 100:g}"


def stats(
    data: Any,
    *,
    per: str = "auto",
    channel_axis: int | None = None,
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES,
    nan: str = "raise",
    source: str = "",
    names: list[str] | None = None,
    split: str | None = None,
    batch_size: int | None = None,
) -> DatasetStats:
    """Exact statistics of ``data`` in one streaming pass.

    Parameters
    ----------
    data : array-like, iterable of batches, or a ``normlab.data`` dataset
        Samples first, e.g. ``(n, h, w, c)`` images or ``(n, f)`` tables.
    per : {"auto", "global", "channel", "feature"}
        What one statistic is computed for.
    split, batch_size : for a ``normlab.data`` dataset, which split to stream and how many samples a batch.
    quantiles : tuple of float in [0, 1]
        ``()`` skips them. Exact (``quantile_rank_error == 0``, equal to ``np.quantile(method="linear")``)
        for 8/16-bit integer data (histograms) and for one array in memory (float or 32/64-bit integer
        data: the order statistics are selected in a few histogram passes over the array,
        :mod:`normlab.core._select`, extra memory O(bins), not O(data)). A stream of batches is read once:
        its values are kept while at most ``2**22`` are stored, then a mergeable sketch takes over whose
        rank-error bound is ``quantile_rank_error`` (about 5e-4 for a (1e6, 20) table).

    Examples
    --------
    >>> import numpy as np, normlab
    >>> s = normlab.stats(np.array([[[[0, 10, 20]]], [[[255, 30, 40]]]], dtype=np.uint8))
    >>> s.per, s.mean.tolist(), s.median.tolist()
    ('channel', [127.5, 20.0, 30.0], [127.5, 20.0, 30.0])
    """
    if resolve_per(per, 3) not in ("global", "channel", "feature"):
        raise LayoutError(
            f"normlab.stats(per={per!r}): per-sample modes have no dataset statistics; expected 'global', "
            "'channel' or 'feature'."
        )
    qs = tuple(float(q) for q in quantiles)
    if any(not 0 <= q <= 1 for q in qs):
        raise ParameterError(f"normlab.stats(quantiles={quantiles!r}) must lie in [0, 1], e.g. (0.25, 0.5, 0.75).")
    who = f"normlab.stats(per={per!r})"
    one = is_one_array(data)
    again = None if one or not qs else rereader(data, who, split=split, batch_size=batch_size)
    # one array, a source read again fast, or a Dask collection (selected on its workers): exact passes
    exact = one or again is not None or collection_feeder(data) is not None
    feed = StatsFeed(per, channel_axis, who, quantiles=bool(qs), nan=nan, data=data,
                     exact=qs if exact else (), reread=again)
    # a stream read once has its float quantiles sketched beyond the exact budget, which the bar says
    desc = "normlab.stats" if exact or not qs else "normlab.stats (+ quantiles: sorted sketch past 2**22 values)"
    for batch in iter_input(data, desc, split=split, batch_size=batch_size):
        feed.update(batch)
    lay, acc = feed.layout, feed.statistics()
    assert lay is not None and acc is not None
    shape = lay.stat_shape
    r = lambda a: np.asarray(a).reshape(shape)  # noqa: E731
    table = acc.quantile(list(qs)) if qs else None  # every quantile from one query of the store
    if names is None:
        names = list(getattr(data, "feature_names", None) or []) or None
    return DatasetStats(
        per=lay.per, layout=lay.describe(), sample_shape=feed.sample_shape or lay.shape[1:],
        channel_axis=lay.channel_axis,
        dtype=str(feed.dtype), n_samples=feed.n_samples, count=r(acc.count), mean=r(acc.mean), var=r(acc.var),
        min=r(acc.min), max=r(acc.max), quantiles={q: r(table[i]) for i, q in enumerate(qs)},
        quantile_rank_error=float(acc.quantile_rank_error) if qs else 0.0,
        source=source or getattr(data, "name", "") or "", names=names if names and len(names) == prod(shape) else None,
    )


def _json_default(o: Any) -> Any:  # pragma: no cover - used by the CLI's --json
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


def dumps(s: DatasetStats) -> str:
    return json.dumps(s.to_dict(), indent=1, default=_json_default)
