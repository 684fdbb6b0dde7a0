"""The statistics the user normalizes with, read from whatever form they come in, as one :class:`Given`.

Accepted: a fitted normlab normalizer (or its file), a ``normlab.stats`` result (or its file), a dict such as
``{"mean": [...], "std": [...]}`` (or its JSON, inline or in a file), and a fitted scikit-learn scaler.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from normlab._format import fmt_seq
from normlab.core._configs import HF_KEYS
from normlab.core._load import from_hf, load
from normlab.core.normalizers import Normalizer, check_is_fitted
from normlab.core.summary import DatasetStats
from normlab.errors import DataError, DataTypeError, LayoutError

__all__ = ["Given", "resolve_given"]

_FIELD_ALIASES = {"mean": "mean", "std": "std", "var": "var", "variance": "var", "min": "min", "max": "max"}


@dataclass
class Given:
    """Statistics the data is normalized with: ``y = (x / k - center) / scale`` (``k`` is found later).

    ``fields`` holds the values as the user gave them (``{"mean": ..., "std": ...}``, ``{"mean": ...,
    "var": ...}``); ``family`` says which statistics ``center``/``scale`` are (``standardize``: mean and std,
    ``minmax``: min and range, ``center``: mean only, ``robust``: median and IQR, ``other``).
    ``exact`` is True for a fitted normlab normalizer, whose transform applies to the raw data as it is.
    ``fit_range``/``fit_dtype`` are the range and dtype of the data the statistics were computed on, where
    known (a normalizer's ``input_range_``, a statistics file's min and max), for the input-scale rule.
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
    label: str = "the given"  # how messages name them ("the recovered" when read back from normalized data)
    fit_range: tuple[float, float] | None = None
    fit_dtype: str = ""

    @property
    def size(self) -> int:
        return int(self.center.size)


def _from_fields(raw: dict[str, Any], source: str) -> Given:
    if any(k in raw for k in HF_KEYS if k not in ("image_mean", "image_std")) or "image_mean" in raw:
        # a Hugging Face preprocessor config: the statistics its processor applies to raw pixels
        return _from_normalizer(from_hf(raw), source)
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
    for name, arr in fields.items():  # statistics no data has: say so instead of checking against them
        bad = ~np.isfinite(arr) | ((arr <= 0) if name == "std" else (arr < 0) if name == "var" else False)
        if np.any(bad):
            need = {"std": "finite and > 0", "var": "finite and >= 0"}.get(name, "finite")
            raise DataError(
                f"normlab.check(stats=...): {name} holds {float(np.ravel(arr)[np.argmax(np.ravel(bad))])!r}; "
                f"expected values {need}. A std of 0 would divide by zero: pass the statistics your code uses."
            )
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
    fit_range = None
    if "min" in fields and "max" in fields:
        fit_range = (float(np.min(fields["min"])), float(np.max(fields["max"])))
    return Given(family, np.ravel(center), np.ravel(scale), {k: np.ravel(v) for k, v in fields.items()}, source,
                 fit_range=fit_range)


def _from_dataset_stats(s: Any, source: str) -> Given:
    fields = {"mean": np.ravel(s.mean), "var": np.ravel(s.var)}
    lo, hi = float(np.min(s.min)), float(np.max(s.max))
    return Given("standardize", np.ravel(s.mean), np.ravel(np.sqrt(s.var)), fields, source, per=s.per,
                 channel_axis=s.channel_axis, fit_range=(lo, hi) if np.isfinite(lo) and np.isfinite(hi) else None,
                 fit_dtype=str(s.dtype))


def normalizer_name(est: Any) -> str:
    """How messages name a fitted normalizer: ``Standardize(per='channel')``."""
    return f"{type(est).__name__}(per={est.per_!r})"


def _from_normalizer(est: Any, source: str) -> Given | None:
    check_is_fitted(est, "normlab.check()")
    lay = est.layout_
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
                 channel_axis=lay.channel_axis, exact=True, normalizer=est,
                 fit_range=getattr(est, "input_range_", None), fit_dtype=str(est.fit_dtype_))


def _read_text(text: str) -> tuple[Any, str]:
    """Inline JSON, or the path of a JSON file: a plain dict of statistics, or what normlab saved."""
    if text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(
                f"normlab.check(stats={text!r}) is not valid JSON ({err}); expected e.g. "
                '\'{"mean": [0.1307], "std": [0.3081]}\' (double quotes around the keys).'
            ) from err
        return obj, "statistics " + " ".join(text.split())
    path = Path(text)
    doc = None
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            doc = None
    if isinstance(doc, dict) and doc.get("format") != "normlab":
        return doc, f"statistics from {text}"

    obj = load(path)
    return obj, f"{type(obj).__name__} from {text}"


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

    source = "statistics"
    if isinstance(obj, (str, os.PathLike)):
        obj, source = _read_text(str(obj))
    if isinstance(obj, Normalizer):
        return _from_normalizer(obj, source if source != "statistics" else f"fitted {normalizer_name(obj)}")
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
