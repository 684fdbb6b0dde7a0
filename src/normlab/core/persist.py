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
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

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


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace`` (atomic on POSIX and Windows)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise PersistError(
            f"Cannot save to {str(path)!r}: the folder {str(directory)!r} does not exist; expected an existing "
            "folder. Create it first (mkdir -p) or choose another path."
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def _decode_array(obj: Any, where: str) -> np.ndarray:
    data, shape = obj.get("ndarray"), obj.get("shape")
    if not isinstance(data, list) or not isinstance(shape, list) or not all(isinstance(n, int) for n in shape):
        raise PersistError(f"{where} is not a valid array entry; expected {{'ndarray': [...], 'shape': [...]}}.")
    values = [float(v["float"]) if isinstance(v, dict) else v for v in data]
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(shape)
    except (ValueError, TypeError) as err:
        raise PersistError(f"{where} holds {len(values)} values that do not fit shape {shape} ({err}).") from err
    return arr


def decode(value: Any, where: str) -> Any:
    if isinstance(value, dict) and "ndarray" in value:
        return _decode_array(value, where)
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value


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


def build_normalizer(doc: dict[str, Any], where: str, classes: dict[str, type]) -> Any:
    """The fitted normalizer a validated ``kind: "normalizer"`` document describes (``classes`` by name)."""
    cls = classes.get(doc["class"])
    if cls is None:
        raise PersistError(
            f"Cannot load {where!r}: unknown normalizer class {doc['class']!r}; expected one of "
            f"{', '.join(classes)}."
        )
    params = {k: decode(v, f"{where}: params.{k}") for k, v in doc["params"].items()}
    for key in ("feature_range", "quantile_range"):
        if isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    try:
        cls(**params)._validate_params()
    except (TypeError, ValueError) as err:
        raise PersistError(f"Cannot load {where!r}: its parameters are not valid for {doc['class']} ({err}).") from err
    fitted = {k: decode(v, f"{where}: fitted.{k}") for k, v in doc["fitted"].items()}
    try:
        shape = tuple(1 if n is None else int(n) for n in fitted["shape_"])
        layout = resolve_layout(fitted["per_"], shape, int(fitted["channel_axis_"]))
        fit_dtype = np.dtype(fitted["fit_dtype_"])
        n_seen = int(fitted["n_samples_seen_"])
    except (KeyError, TypeError, ValueError) as err:
        raise PersistError(f"Cannot load {where!r}: its fitted layout is missing or malformed ({err}).") from err
    if layout.stateful:
        for key in ("center_", "scale_"):
            arr = fitted.get(key)
            if not isinstance(arr, np.ndarray) or arr.shape != layout.stat_shape:
                raise PersistError(
                    f"Cannot load {where!r}: fitted.{key} should be an array of shape {layout.stat_shape} "
                    f"for per={layout.per!r} on {layout.describe()}; the file is damaged."
                )
        if not np.all(fitted["scale_"] != 0):
            raise PersistError(f"Cannot load {where!r}: fitted.scale_ contains zeros; the file is damaged.")
    for name in ("shape_", "channel_axis_", "fit_dtype_", "n_samples_seen_", "per_", "layout_"):
        fitted.pop(name, None)
    for name in fitted:
        if not (isinstance(name, str) and name.endswith("_") and name.isidentifier()):
            raise PersistError(f"Cannot load {where!r}: {name!r} is not a fitted attribute name.")
    if "feature_names_in_" in fitted:
        fitted["feature_names_in_"] = np.asarray(fitted["feature_names_in_"], dtype=object)
    return cls.from_fitted(fitted, layout=layout, fit_dtype=fit_dtype, n_samples_seen=n_seen, **params)
