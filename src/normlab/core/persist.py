"""Saving and loading as small, human-readable, versioned JSON. Never pickle.

A file looks like::

    {"format": "normlab", "version": 1, "kind": "normalizer", "class": "Standardize",
     "params": {"per": "channel", ...},
     "fitted": {"per_": "channel", "shape_": [null, 32, 32, 3], "mean_": [125.3, 123.0, 113.9], ...}}

Floats are written with Python's shortest round-trip repr, so every statistic reads back bit-identical.
Writes go to a temporary file in the same folder that is renamed over the target, so a crash never leaves
a half-written file. Reading validates everything before anything is built.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from normlab._files import atomic_write_text
from normlab._version import __version__
from normlab.core.axes import resolve_layout
from normlab.errors import PersistError

__all__ = [
    "FORMAT_VERSION",
    "atomic_write_text",
    "build_normalizer",
    "decode",
    "read_document",
    "save_normalizer",
    "to_document",
]

FORMAT_VERSION = 1
_MAX_BYTES = 256 * 1024 * 1024


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            return {"ndarray": [_float(v) for v in value.ravel().tolist()], "shape": list(value.shape)}
        return {"ndarray": value.ravel().tolist(), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return _float(value)
    return value


def _float(v: float) -> Any:
    return v if math.isfinite(v) else {"float": repr(v)}


def _decode_float(v: Any, where: str) -> float:
    """A number of a saved file: a JSON number, or ``{"float": "nan" | "inf" | "-inf"}``."""
    if isinstance(v, dict) and set(v) == {"float"} and v["float"] in ("nan", "inf", "-inf"):
        return float(v["float"])
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise PersistError(f"{where} holds {_brief(v)} where a number was expected; the file is damaged.")
    try:
        return float(v)
    except OverflowError as err:  # an integer with hundreds of digits
        raise PersistError(f"{where} holds a number too large for float64; the file is damaged.") from err


def _decode_array(obj: Any, where: str) -> np.ndarray:
    data, shape = obj.get("ndarray"), obj.get("shape")
    if (
        set(obj) != {"ndarray", "shape"} or not isinstance(data, list) or not isinstance(shape, list)
        or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= _MAX_BYTES for n in shape)
    ):
        raise PersistError(f"{where} is not a valid array entry; expected {{'ndarray': [...], 'shape': [...]}}.")
    if math.prod(shape) != len(data):
        raise PersistError(f"{where} holds {len(data)} values that do not fit shape {shape}; the file is damaged.")
    return np.asarray([_decode_float(v, where) for v in data], dtype=np.float64).reshape(shape)


def decode(value: Any, where: str) -> Any:
    """A value of a saved file as Python/NumPy: arrays and non-finite floats decoded, the rest as is."""
    if isinstance(value, dict) and "ndarray" in value:
        return _decode_array(value, where)
    if isinstance(value, dict) and set(value) == {"float"}:
        return _decode_float(value, where)
    return value


def _brief(value: Any, limit: int = 60) -> str:
    """A short quotation of a value from a file (never a 40 MB line)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: What each saved fitted value of a normalizer must be. Anything else in a file is refused: a damaged or
#: hostile file cannot set attributes the normalizers do not have, or shadow their methods.
_ARRAY_RULES = {
    "center_": "finite",
    "scale_": "positive",
    "mean_": "finite",
    "var_": "nonnegative",
    "std_": "nonnegative",
    "min_": "finite",
    "max_": "finite",
    "median_": "finite",
    "max_abs_": "nonnegative",
    "norm_": "nonnegative",
}
_LAYOUT_KEYS = ("per_", "layout_", "shape_", "channel_axis_", "fit_dtype_", "n_samples_seen_")
_OTHER_KEYS = ("n_features_in_", "feature_names_in_", "quantile_rank_error_", "input_range_")


def _check_array(name: str, arr: Any, shape: tuple[int, ...], nan_ok: bool, where: str) -> None:
    if shape == () and isinstance(arr, float):  # per="global": a statistic may be saved as a plain number
        arr = np.asarray(arr)
    if not isinstance(arr, np.ndarray) or arr.shape != shape:
        raise PersistError(
            f"Cannot load {where!r}: fitted.{name} should be an array of shape {shape}; the file is damaged."
        )
    rule = _ARRAY_RULES[name]
    bad = np.isinf(arr) | (np.isnan(arr) & (not nan_ok))
    if rule == "positive":
        bad |= arr <= 0
    elif rule == "nonnegative":
        bad |= arr < 0
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        value = float(arr[first]) if arr.ndim else float(arr)
        need = {"positive": "finite and > 0", "nonnegative": "finite and >= 0"}.get(rule, "finite")
        raise PersistError(
            f"Cannot load {where!r}: fitted.{name} holds {value!r} at {first}; expected values {need}. The file "
            "is damaged: fit and save the normalizer again."
        )


def _check_within_dtype(fitted: dict[str, Any], fit_dtype: np.dtype, where: str) -> None:
    """Descriptive statistics (mean, min, max, median) lie within the range of the dtype they were fitted on."""
    if fit_dtype.kind == "b":
        lo, hi = 0.0, 1.0
    elif fit_dtype.kind in "ui":
        lo, hi = float(np.iinfo(fit_dtype).min), float(np.iinfo(fit_dtype).max)
    else:
        lo, hi = -float(np.finfo(fit_dtype).max), float(np.finfo(fit_dtype).max)
    for name in ("mean_", "min_", "max_", "median_"):
        value = fitted.get(name)
        if value is not None and np.any((np.asarray(value) < lo) | (np.asarray(value) > hi)):
            raise PersistError(
                f"Cannot load {where!r}: fitted.{name} lies outside the range of {fit_dtype} data [{lo:g}, {hi:g}], "
                "the dtype it was fitted on; the file is damaged."
            )


def _check_fitted(fitted: dict[str, Any], stat_shape: tuple[int, ...] | None, nan_ok: bool, where: str) -> None:
    """Refuse unknown names and values outside their range (``stat_shape`` None: a per-sample mode)."""
    for name, value in fitted.items():
        if name in _ARRAY_RULES and stat_shape is not None:
            _check_array(name, value, stat_shape, nan_ok, where)
        elif name == "n_features_in_" and not (isinstance(value, int) and 0 < value <= _MAX_BYTES):
            raise PersistError(f"Cannot load {where!r}: fitted.n_features_in_ is {_brief(value)}; the file is damaged.")
        elif name == "quantile_rank_error_" and not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise PersistError(
                f"Cannot load {where!r}: fitted.quantile_rank_error_ is {_brief(value)}; expected a fraction."
            )
        elif name == "input_range_" and not (
            isinstance(value, list) and len(value) == 2 and all(type(v) in (int, float) for v in value)
            and all(math.isfinite(v) for v in value) and value[0] <= value[1]
        ):
            raise PersistError(f"Cannot load {where!r}: fitted.input_range_ is {_brief(value)}; expected [min, max].")
        elif name == "feature_names_in_" and not (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            raise PersistError(f"Cannot load {where!r}: fitted.feature_names_in_ is not a list of names.")
        elif name not in _ARRAY_RULES and name not in _OTHER_KEYS:
            raise PersistError(
                f"Cannot load {where!r}: {_brief(name)} is not a fitted attribute of a normalizer; expected "
                f"only {', '.join([*_LAYOUT_KEYS, *_OTHER_KEYS, *_ARRAY_RULES])}. The file is damaged or foreign."
            )


def to_document(kind: str, cls: str, params: dict[str, Any], fitted: dict[str, Any]) -> str:
    doc = {
        "format": "normlab",
        "version": FORMAT_VERSION,
        "normlab_version": __version__,
        "kind": kind,
        "class": cls,
        "params": {k: _encode(v) for k, v in params.items()},
        "fitted": {k: _encode(v) for k, v in fitted.items()},
    }
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def save_normalizer(est: Any, path: str | os.PathLike) -> None:
    """Write a fitted normalizer to ``path`` (see the module docstring for the format)."""
    params = est.get_params()
    if params.get("dtype") is not None:
        params["dtype"] = np.dtype(params["dtype"]).name
    lay = est.layout_
    fitted: dict[str, Any] = {
        "per_": est.per_,
        "layout_": lay.describe(),
        "shape_": [None, *lay.shape[1:]],
        "channel_axis_": lay.channel_axis,
        "fit_dtype_": np.dtype(est.fit_dtype_).name,
        "n_samples_seen_": int(est.n_samples_seen_),
    }
    for name, value in sorted(vars(est).items()):
        if name.endswith("_") and not name.startswith("_") and name not in fitted:
            fitted[name] = value
    atomic_write_text(path, to_document("normalizer", type(est).__name__, params, fitted))


def read_document(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PersistError(
            f"Cannot load {str(path)!r}: no such file; expected a file written by normalizer.save() or "
            "`normlab stats --out`. Check the path."
        )
    size = path.stat().st_size
    if size > _MAX_BYTES:
        raise PersistError(f"Cannot load {str(path)!r}: {size} bytes is far larger than any normlab file.")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError as err:
        raise PersistError(
            f"Cannot load {str(path)!r}: its JSON is nested too deeply to be a normlab file; the file is damaged."
        ) from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PersistError(
            f"Cannot load {str(path)!r}: it is not valid JSON ({err}); the file is corrupted, truncated or not "
            "a normlab file. Save the normalizer again."
        ) from err
    if not isinstance(doc, dict) or doc.get("format") != "normlab":
        raise PersistError(
            f"Cannot load {str(path)!r}: it is JSON but not a normlab file (no \"format\": \"normlab\" entry); "
            "expected a file written by normalizer.save() or `normlab stats --out`."
        )
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise PersistError(f"Cannot load {str(path)!r}: its format version {version!r} is not valid.")
    if version > FORMAT_VERSION:
        raise PersistError(
            f"Cannot load {str(path)!r}: it was written in format version {version} by normlab "
            f"{doc.get('normlab_version', '?')}, but this normlab reads versions up to {FORMAT_VERSION}. "
            "Upgrade normlab (pip install -U normlab)."
        )
    for key, typ in (("kind", str), ("class", str), ("params", dict), ("fitted", dict)):
        if not isinstance(doc.get(key), typ):
            raise PersistError(f"Cannot load {str(path)!r}: the entry {key!r} is missing or malformed.")
    return doc


def _fitted_layout(fitted: dict[str, Any], where: str) -> tuple[Any, np.dtype, int]:
    """The fitted layout, input dtype and sample count of a saved normalizer, validated."""
    try:
        dims = fitted["shape_"]
        if not isinstance(dims, list) or not all(n is None or (type(n) is int and 0 < n <= _MAX_BYTES) for n in dims):
            raise ValueError(f"shape_ is {_brief(dims)}")
        shape = tuple(1 if n is None else n for n in dims)
        if math.prod(shape) > _MAX_BYTES:
            raise ValueError(f"shape_ {shape} is larger than any saved normalizer")
        if not isinstance(fitted["per_"], str) or type(fitted["channel_axis_"]) is not int:
            raise ValueError("per_ or channel_axis_ has the wrong type")
        layout = resolve_layout(fitted["per_"], shape, fitted["channel_axis_"])
        fit_dtype = np.dtype(str(fitted["fit_dtype_"]))
        if fit_dtype.kind not in "biuf":
            raise ValueError(f"fit_dtype_ {fit_dtype} is not numeric")
        n_seen = fitted["n_samples_seen_"]
        if type(n_seen) is not int or not 0 <= n_seen < 2**63:
            raise ValueError(f"n_samples_seen_ is {_brief(n_seen)}")
    except (KeyError, TypeError, ValueError) as err:
        raise PersistError(f"Cannot load {where!r}: its fitted layout is missing or malformed ({err}).") from err
    return layout, fit_dtype, n_seen


def build_normalizer(doc: dict[str, Any], where: str, classes: dict[str, type]) -> Any:
    """The fitted normalizer a validated ``kind: "normalizer"`` document describes (``classes`` by name)."""
    cls = classes.get(doc["class"])
    if cls is None:
        raise PersistError(
            f"Cannot load {where!r}: unknown normalizer class {doc['class']!r}; expected one of "
            f"{', '.join(classes)}."
        )
    params = {k: decode(v, f"{where}: params.{k}") for k, v in doc["params"].items()}
    for key, value in params.items():  # parameters are scalars, strings or short ranges: never arrays
        items = value if isinstance(value, list) and len(value) <= 2 else [value]
        if not all(v is None or isinstance(v, (str, int, float)) for v in items):
            raise PersistError(f"Cannot load {where!r}: params.{key} is {_brief(value)}; the file is damaged.")
    for key in ("feature_range", "quantile_range"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    try:
        cls(**params)._validate_params()
    except (TypeError, ValueError) as err:
        raise PersistError(f"Cannot load {where!r}: its parameters are not valid for {doc['class']} ({err}).") from err
    fitted = {k: decode(v, f"{where}: fitted.{k}") for k, v in doc["fitted"].items()}
    layout, fit_dtype, n_seen = _fitted_layout(fitted, where)
    try:
        chosen = params.get("channel_axis")  # None: the input's convention chose the fitted axis
        again = resolve_layout(layout.per, layout.shape, layout.channel_axis if chosen is None else chosen)
    except (TypeError, ValueError) as err:
        raise PersistError(f"Cannot load {where!r}: params.channel_axis does not fit its layout ({err}).") from err
    if again.channel_axis != layout.channel_axis:
        raise PersistError(
            f"Cannot load {where!r}: params.channel_axis ({params.get('channel_axis')!r}) disagrees with the fitted "
            f"layout (channel axis {layout.channel_axis}); the file is damaged."
        )
    if layout.stateful and not {"center_", "scale_"} <= set(fitted):
        raise PersistError(f"Cannot load {where!r}: fitted.center_ and fitted.scale_ are missing; the file is damaged.")
    for name in _LAYOUT_KEYS:
        fitted.pop(name, None)
    _check_fitted(fitted, layout.stat_shape if layout.stateful else None, params.get("nan") == "ignore", where)
    _check_within_dtype(fitted, fit_dtype, where)
    if "input_range_" in fitted:
        fitted["input_range_"] = tuple(float(v) for v in fitted["input_range_"])
    if "feature_names_in_" in fitted:
        fitted["feature_names_in_"] = np.asarray(fitted["feature_names_in_"], dtype=object)
    return cls.from_fitted(fitted, layout=layout, fit_dtype=fit_dtype, n_samples_seen=n_seen, **params)
