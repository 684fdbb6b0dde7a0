"""Turning what the user passes to ``normlab.check`` into aligned arrays, statistics and shared summaries.

Every check works on one :class:`Context`: the raw training data ``X``, the normalized data ``Z``, a
test set ``T`` and its normalized version ``ZT`` (any of them may be missing), all viewed with one common
per-sample shape, plus the statistics ``S`` the user normalizes with (from a fitted normalizer, a statistics
file or a dict such as ``{"mean": [...], "std": [...]}``). Expensive summaries (exact statistics, the
explanation of ``Z`` in terms of ``X``) are computed once, on first use, and shared by the checks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from normlab.core.axes import describe_layout, resolve_layout
from normlab.errors import DataError, DataTypeError, LayoutError

__all__ = ["Context", "Data", "Given", "as_list", "fmt", "fmt_ratio", "fmt_seq"]

#: Sample-axis subsample used by the per-sample analyses (affine fits, rank order): at most this many
#: values in total, and never fewer than 50 samples.
_SUBSAMPLE_VALUES = 500_000

ROLE_LABELS = {
    "train": "the training data",
    "normalized": "the normalized data",
    "test": "the test data",
    "test_normalized": "the normalized test data",
}


# --------------------------------------------------------------------------------------------------
# Number formatting shared by every message
# --------------------------------------------------------------------------------------------------


def fmt(v: Any, digits: int = 4) -> str:
    """A number for a message: integers with thousands separators, floats with ``digits`` significant digits."""
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    v = float(v)
    if not np.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e6:
        return f"{int(v):,}" if abs(v) >= 1000 else str(int(v))
    out = f"{v:.{digits}g}"
    return out.replace("e+0", "e+").replace("e-0", "e-")


def fmt_seq(values: Any, digits: int = 4, limit: int = 6) -> str:
    """One value as itself, several as ``(a, b, c)`` (long sequences end with ``...``)."""
    arr = np.ravel(np.asarray(values, dtype=np.float64))
    if arr.size == 1:
        return fmt(arr[0], digits)
    shown = ", ".join(fmt(v, digits) for v in arr[:limit])
    return f"({shown}{', ...' if arr.size > limit else ''})"


def fmt_ratio(values: Any) -> str:
    """Ratios near 1 with enough digits to show how far from 1 they are (``1.00023``, ``1.21``)."""
    arr = np.ravel(np.asarray(values, dtype=np.float64))
    off = float(np.max(np.abs(arr - 1))) if arr.size else 0.0
    digits = 3 if off <= 0 or not np.isfinite(off) else max(3, 2 - int(np.floor(np.log10(off))))
    return fmt_seq(arr, digits)


def as_list(values: Any, limit: int = 64) -> list[float]:
    return [float(v) for v in np.ravel(np.asarray(values, dtype=np.float64))[:limit]]


# --------------------------------------------------------------------------------------------------
# Arrays
# --------------------------------------------------------------------------------------------------


@dataclass
class Data:
    """One input array (``role`` is train, normalized, test or test_normalized) in the common shape."""

    role: str
    source: str
    x: np.ndarray
    user_shape: tuple[int, ...]
    names: list[str] | None = None
    _cache: dict[Any, Any] = field(default_factory=dict, repr=False)

    @property
    def label(self) -> str:
        return ROLE_LABELS[self.role]

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


def _resolve_array(obj: Any, role: str, split: str) -> tuple[np.ndarray, str, list[str] | None]:
    """An array, a dataset spec / file path, or a ``normlab.data`` dataset -> (array, source, feature names)."""
    from normlab.core._fitting import as_array

    who = f"normlab.check({role}=...)"
    if isinstance(obj, (str, os.PathLike)):
        import normlab.data

        spec = str(obj)
        ds = normlab.data.open(spec)
        use = split if split in ds.splits else ds.default_split
        if role.startswith("test") and "test" in ds.splits:
            use = "test"
        x, _ = ds.arrays(use)
        names = list(ds.feature_names) if getattr(ds, "feature_names", None) else None
        return as_array(x, who), spec if len(ds.splits) == 1 else f"{spec} [{use}]", names
    if hasattr(obj, "arrays") and hasattr(obj, "splits"):
        use = split if split in obj.splits else obj.default_split
        if role.startswith("test") and "test" in obj.splits:
            use = "test"
        x, _ = obj.arrays(use)
        names = list(obj.feature_names) if getattr(obj, "feature_names", None) else None
        return as_array(x, who), f"{obj.name} [{use}]", names
    names = None
    cols = getattr(obj, "columns", None)
    if cols is not None and hasattr(obj, "dtypes"):
        names = [str(c) for c in cols]
    if isinstance(obj, tuple) and len(obj) == 2 and hasattr(obj[0], "shape"):  # (x, y)
        obj = obj[0]
    x = as_array(obj, who)
    return x, "array", names


# --------------------------------------------------------------------------------------------------
# Statistics the user normalizes with
# --------------------------------------------------------------------------------------------------

_FIELD_ALIASES = {"mean": "mean", "std": "std", "var": "var", "variance": "var", "min": "min", "max": "max"}


@dataclass
class Given:
    """Statistics the data is normalized with: ``y = (x / k - center) / scale`` (``k`` is found later).

    ``fields`` holds the values as the user gave them (``{"mean": ..., "std": ...}``, ``{"mean": ...,
    "var": ...}``); ``family`` says which statistics ``center``/``scale`` are (``standardize``: mean and std,
    ``minmax``: min and range, ``center``: mean only, ``robust``: median and IQR, ``other``).
    ``exact`` is True for a fitted normlab normalizer, whose transform applies to the raw data as it is.
    """

    family: str
    center: np.ndarray
    scale: np.ndarray
    fields: dict[str, np.ndarray]
    source: str
    per: str | None = None
    channel_axis: int | None = None
    exact: bool = False
    normalizer: Any = None

    @property
    def size(self) -> int:
        return int(self.center.size)


def _from_fields(raw: dict[str, Any], source: str) -> Given:
    fields: dict[str, np.ndarray] = {}
    for key, value in raw.items():
        name = _FIELD_ALIASES.get(str(key).lower())
        if name is None:
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataTypeError(
                f"normlab.check(stats=...): {key!r} is not a number or a list of numbers ({err}); expected "
                "e.g. {'mean': [0.485, 0.456, 0.406], 'std': [0.229, 0.224, 0.225]}."
            ) from err
        fields[name] = arr
    sizes = {a.size for a in fields.values()}
    if "mean" in fields and ("std" in fields or "var" in fields):
        if "std" in fields and "var" in fields:
            raise DataError(
                "normlab.check(stats=...) received both 'std' and 'var'; expected one of them, the one your "
                "code divides by (or takes the square root of)."
            )
        scale = fields["std"] if "std" in fields else np.sqrt(np.maximum(fields["var"], 0.0))
        family, center = "standardize", fields["mean"]
    elif "min" in fields and "max" in fields:
        family, center, scale = "minmax", fields["min"], fields["max"] - fields["min"]
    elif "mean" in fields:
        family, center, scale = "center", fields["mean"], np.ones_like(fields["mean"])
    else:
        raise DataError(
            f"normlab.check(stats=...) received the keys {sorted(map(str, raw))}; expected 'mean' with 'std' "
            "or 'var' (e.g. {'mean': [0.1307], 'std': [0.3081]}), or 'min' and 'max'."
        )
    if len(sizes) != 1:
        raise LayoutError(
            f"normlab.check(stats=...): the entries have different lengths "
            f"{ {k: int(v.size) for k, v in fields.items()} }; expected one value per channel or feature in each."
        )
    return Given(family, np.ravel(center), np.ravel(scale), {k: np.ravel(v) for k, v in fields.items()}, source)


def _from_dataset_stats(s: Any, source: str) -> Given:
    fields = {"mean": np.ravel(s.mean), "var": np.ravel(s.var)}
    return Given("standardize", np.ravel(s.mean), np.ravel(np.sqrt(s.var)), fields, source, per=s.per,
                 channel_axis=s.channel_axis)


def _from_normalizer(est: Any, source: str) -> Given | None:
    est._check_is_fitted("normlab.check()")
    lay = est._fit_layout
    if not lay.stateful:
        return Given("other", np.zeros(0), np.zeros(0), {}, source, per=lay.per, channel_axis=lay.channel_axis,
                     exact=True, normalizer=est)
    name = type(est).__name__
    family = {"Standardize": "standardize", "Center": "center", "MinMax": "minmax", "Robust": "robust"}.get(name,
                                                                                                         "other")
    fields: dict[str, np.ndarray] = {}
    for attr in ("mean_", "std_", "var_", "min_", "max_", "median_"):
        if hasattr(est, attr):
            fields[attr.rstrip("_")] = np.ravel(getattr(est, attr))
    return Given(family, np.ravel(est.center_), np.ravel(est.scale_), fields, source, per=lay.per,
                 channel_axis=lay.channel_axis, exact=True, normalizer=est)


def resolve_given(normalizer: Any, stats: Any) -> Given | None:
    """What the user normalizes with, from ``normalizer=`` or ``stats=`` (at most one of them)."""
    if normalizer is not None and stats is not None:
        raise DataError(
            "normlab.check() received both normalizer= and stats=; expected one of them. Pass the fitted "
            "normalizer (or its file) as normalizer=, or the statistics you normalize with as stats=."
        )
    obj = normalizer if normalizer is not None else stats
    if obj is None:
        return None
    from normlab.core.normalizers import _Normalizer
    from normlab.core.summary import DatasetStats

    source = "statistics"
    if isinstance(obj, (str, os.PathLike)):
        text = str(obj)
        if text.lstrip().startswith("{"):
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"normlab.check(stats={text!r}) is not valid JSON ({err}); expected e.g. "
                    '\'{"mean": [0.1307], "std": [0.3081]}\' (double quotes around the keys).'
                ) from err
            source = "statistics " + " ".join(text.split())
        else:
            path = Path(text)
            doc = None
            if path.is_file():
                try:
                    doc = json.loads(path.read_text(encoding="utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError):
                    doc = None
            if isinstance(doc, dict) and doc.get("format") != "normlab":
                obj, source = doc, f"statistics from {text}"
            else:
                from normlab.core.persist import load

                obj = load(path)
                source = f"{type(obj).__name__} from {text}"
    if isinstance(obj, _Normalizer):
        return _from_normalizer(obj, source if source != "statistics" else f"fitted {obj._who()}")
    if isinstance(obj, DatasetStats):
        return _from_dataset_stats(obj, source if source != "statistics" else "DatasetStats")
    if isinstance(obj, dict):
        src = source
        if source == "statistics":
            src = "statistics " + ", ".join(f"{k}={fmt_seq(v)}" for k, v in obj.items())
        return _from_fields(obj, src)
    if hasattr(obj, "mean_") and (hasattr(obj, "scale_") or hasattr(obj, "var_")):  # scikit-learn scalers
        raw = {"mean": obj.mean_}
        if getattr(obj, "var_", None) is not None:
            raw["var"] = obj.var_
        else:
            raw["std"] = obj.scale_
        return _from_fields(raw, f"fitted {type(obj).__name__}")
    raise DataTypeError(
        f"normlab.check(stats=...) received a {type(obj).__name__}; expected a dict such as "
        "{'mean': [...], 'std': [...]}, a fitted normlab normalizer, normlab.stats(...) output, or the path "
        "of a file written by normalizer.save() or `normlab stats --out`."
    )


# --------------------------------------------------------------------------------------------------
# The context every check reads
# --------------------------------------------------------------------------------------------------


class Context:
    """Aligned inputs, resolved layout and shared, lazily computed summaries."""

    def __init__(self, *, train: Any = None, normalized: Any = None, test: Any = None,
                 test_normalized: Any = None, normalizer: Any = None, stats: Any = None, per: str = "auto",
                 channel_axis: int = -1, split: str = "train", max_samples: int = 2000) -> None:
        self.given = resolve_given(normalizer, stats)
        raw = {}
        for role, obj in (("train", train), ("normalized", normalized), ("test", test),
                          ("test_normalized", test_normalized)):
            if obj is not None:
                raw[role] = _resolve_array(obj, role, split)
        if not raw and self.given is None:
            raise DataError(
                "normlab.check() received no data; expected at least train= (the raw training data), or "
                "stats= to check statistics on their own."
            )
        self.max_samples = int(max_samples)
        self._cache: dict[Any, Any] = {}
        self._align(raw, channel_axis)
        self._place_given()
        self.mode = self._resolve_mode(per)

    # ---- alignment ------------------------------------------------------------------------------

    def _align(self, raw: dict[str, tuple[np.ndarray, str, list[str] | None]], channel_axis: int) -> None:
        # The common per-sample shape is that of the normalized arrays when given (the user's own layout,
        # e.g. (n, 28, 28) from keras.datasets) and the raw data's otherwise.
        ref_role = next((r for r in ("normalized", "test_normalized", "train", "test") if r in raw), None)
        self.user_shape: tuple[int, ...] = ()
        self.data: dict[str, Data] = {}
        if ref_role is None:
            self.internal_shape: tuple[int, ...] = ()
            self.channel_axis = channel_axis
            self.has_channel = False
            return
        ref = raw[ref_role][0]
        if ref.ndim < 2:
            resolve_layout("auto", ref.shape, owner=f"normlab.check({ref_role}=...)")  # raises the usual error
        user = tuple(int(s) for s in ref.shape[1:])
        self.user_shape = user
        # A 3-D stack (n, h, w) whose last axis is too long to be channels (1, 3 or 4) is a grayscale image
        # stack: it gets a channel axis of size 1 internally, so that axes 0..2 keep their user numbers.
        gray_stack = len(user) == 2 and user[-1] > 4 and channel_axis == -1
        internal = (*user, 1) if gray_stack else user
        self.internal_shape = internal
        self.has_channel = len(internal) >= 3
        lay = resolve_layout("auto", (1, *internal), channel_axis, owner="normlab.check()")
        self.channel_axis = lay.channel_axis
        for role, (x, source, names) in raw.items():
            per_sample = prod(x.shape[1:])
            if per_sample != prod(internal) or x.ndim < 2:
                raise LayoutError(
                    f"normlab.check(): {ROLE_LABELS[role]} has samples of shape {tuple(x.shape[1:])} but "
                    f"{ROLE_LABELS[ref_role]} has samples of shape {user}; expected the same values per "
                    "sample. Pass the normalized version of exactly the raw data given (same samples, same order)."
                )
            self.data[role] = Data(role, source, x.reshape(x.shape[0], *internal), tuple(x.shape), names)
        for a, b in (("train", "normalized"), ("test", "test_normalized")):
            if a in self.data and b in self.data and self.data[a].n != self.data[b].n:
                raise LayoutError(
                    f"normlab.check(): {ROLE_LABELS[b]} has {self.data[b].n} samples but {ROLE_LABELS[a]} has "
                    f"{self.data[a].n}; expected the same samples in the same order. Pass the raw data that "
                    "was normalized (without --limit or shuffling), or leave the raw data out."
                )

    def _place_given(self) -> None:
        """Decide what the given statistics are computed for (from their length) and check it fits the data."""
        g = self.given
        if g is None or not self.internal_shape or (g.family == "other" and g.size == 0):
            return
        if g.normalizer is not None:
            lay = g.normalizer._fit_layout
            if lay.ndim == self.ndim:
                self.channel_axis = lay.channel_axis
            if prod(lay.shape[1:]) != prod(self.internal_shape):
                if lay.per == "feature" or lay.ndim == 2:
                    raise LayoutError(
                        f"normlab.check(normalizer=...): {g.normalizer._who()} was fitted on samples of shape "
                        f"{lay.shape[1:]} but the data has samples of shape {self.user_shape}; expected the "
                        "normalizer that is applied to this data."
                    )
        sizes = {"global": 1}
        if self.has_channel:
            sizes["channel"] = self.internal_shape[self.channel_axis - 1]
        sizes["feature"] = prod(self.internal_shape)
        if g.per is None:
            g.per = next((m for m, k in sizes.items() if k == g.size), None)
            if g.per is None:
                raise LayoutError(
                    f"normlab.check(): the statistics have {g.size} entries, but data laid out as "
                    f"{self.layout_text()} with samples of shape {self.user_shape} has "
                    + ", ".join(f"{k} {m} entr{'y' if k == 1 else 'ies'}" for m, k in sizes.items())
                    + "; expected one value per channel (or per feature). Check the statistics belong to this data."
                )
        elif g.per in sizes and sizes[g.per] != g.size and g.per != "global":
            raise LayoutError(
                f"normlab.check(): the statistics hold {g.size} values per {g.per!r} but the data has "
                f"{sizes[g.per]}; expected statistics computed on data of this shape {self.user_shape}."
            )

    def _resolve_mode(self, per: str) -> str:
        if per not in ("auto", "global", "channel", "feature"):
            raise LayoutError(
                f"normlab.check(per={per!r}) is not a mode with fitted statistics; expected 'auto', 'global', "
                "'channel' or 'feature' (what your normalizer computes one statistic for)."
            )
        if self.given is not None and self.given.per is not None and self.given.per in ("global", "channel",
                                                                                           "feature"):
            return self.given.per
        if per == "auto":
            if not self.internal_shape:
                return "global"
            mode = resolve_layout("auto", (1, *self.internal_shape), self.channel_axis).per
            if mode == "channel" and self.internal_shape[self.channel_axis - 1] == 1:
                return "global"
            return mode
        return per

    # ---- accessors ------------------------------------------------------------------------------

    def get(self, role: str) -> Data | None:
        return self.data.get(role)

    @property
    def X(self) -> Data | None:  # the raw training data (the checks read best with these names)
        return self.data.get("train")

    @property
    def Z(self) -> Data | None:
        return self.data.get("normalized")

    @property
    def T(self) -> Data | None:
        return self.data.get("test")

    @property
    def ZT(self) -> Data | None:
        return self.data.get("test_normalized")

    @property
    def is_image(self) -> bool:
        return self.has_channel

    @property
    def ndim(self) -> int:
        return len(self.internal_shape) + 1

    def layout_text(self) -> str:
        """The user's layout, e.g. ``(n, h, w)`` for a grayscale stack or ``(n, h, w, c)``."""
        text = describe_layout(self.ndim, self.channel_axis)
        if len(self.user_shape) + 1 < self.ndim:  # the appended channel axis is not the user's
            text = text.replace(", c)", ")")
        return text

    def axis_names(self) -> list[str]:
        return describe_layout(self.ndim, self.channel_axis).strip("()").split(", ")

    def entry_names(self, mode: str, names: list[str] | None = None) -> list[str]:
        """Labels of the statistics' entries: feature names, ``channel 1``, ``pixel (3, 4)`` or ``all values``."""
        if mode == "global":
            return ["all values"]
        if mode == "channel":
            return [f"channel {i}" for i in range(self.internal_shape[self.channel_axis - 1])]
        shape = self.internal_shape
        n = prod(shape)
        if names is not None and len(names) == n:
            return [repr(str(s)) for s in names]
        if len(shape) == 1:
            return [f"feature {i}" for i in range(n)]
        user = self.user_shape
        word = "pixel" if self.is_image else "position"
        return [f"{word} {tuple(int(v) for v in np.unravel_index(i, user))}" for i in range(n)]

    def names_for(self, role: str) -> list[str] | None:
        d = self.data.get(role)
        if d is not None and d.names:
            return d.names
        x = self.X
        return x.names if x is not None else None

    def sample_index(self, n: int) -> np.ndarray:
        """Evenly spaced samples (always including the first) for the per-sample analyses."""
        per_sample = max(1, prod(self.internal_shape))
        m = min(n, self.max_samples, max(50, _SUBSAMPLE_VALUES // per_sample))
        return np.unique(np.linspace(0, n - 1, m).round().astype(np.int64))

    def data_scale(self, given: Given) -> float:
        """``k`` such that the statistics apply to ``x / k``: 255 when integer images meet [0, 1] statistics.

        torchvision's ``ToTensor`` divides 8-bit images by 255 before ``Normalize(mean, std)``; statistics
        whose means all lie in [0, 1] next to integer data with values above 1 are read that way.
        """
        x = self.X
        if given.exact or x is None or x.x.dtype.kind not in "ui" or "mean" not in given.fields:
            return 1.0
        s = x.stats("global", -1)
        if float(np.max(s.max)) > 1 and np.all(np.abs(given.fields["mean"]) <= 1):
            return float(np.iinfo(x.x.dtype).max) if x.x.dtype.itemsize <= 2 else 255.0
        return 1.0

    def pooled_stats(self, mode: str, quantiles: bool = False) -> Any:
        """Exact statistics of the training and test data together (what fitting on train + test gives)."""
        x, t = self.X, self.T
        assert x is not None and t is not None

        def compute() -> Any:
            (xa, nx), (ta, nt) = x.finite(), t.finite()
            nan = "ignore" if "ignore" in (nx, nt) else "raise"
            return exact_stats([xa, ta], mode, self.channel_axis, nan=nan, quantiles=quantiles)

        return self.cached(("pooled", mode, quantiles), compute)

    def cached(self, key: Any, fn: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def describe_inputs(self) -> dict[str, str]:
        out = {role: d.describe() for role, d in self.data.items()}
        if self.given is not None:
            out["stats"] = self.given.source
        if self.data:
            out["layout"] = f"{self.layout_text()}, statistics per {self.mode!r}"
        return out
