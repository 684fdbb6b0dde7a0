"""``normlab.load``, ``from_hf``, ``from_timm``: fitted normalizers from files and configs.

``load`` reads back any file normlab writes (a fitted normalizer or dataset statistics); ``from_hf`` and
``from_timm`` read the normalization constants of a Hugging Face ``preprocessor_config.json`` or a timm
data config (written by ``norm.to_hf()`` / ``norm.to_timm()``, or by anyone).

It sits above :mod:`normlab.core.persist` (the file format), :mod:`normlab.core.normalizers` and
:mod:`normlab.core.summary`, so that none of them needs to import another to load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from normlab.core import normalizers
from normlab.core._configs import HF_KEYS
from normlab.core.axes import resolve_layout
from normlab.core.persist import build_normalizer, read_document
from normlab.core.summary import DatasetStats
from normlab.errors import ParameterError, PersistError

__all__ = ["from_hf", "from_timm", "load"]

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


def _config(obj: Any, what: str) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    path = Path(obj)
    if path.is_dir():
        path = path / "preprocessor_config.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise PersistError(f"Cannot read {str(path)!r} as a {what} ({err}); expected a JSON file or a dict.") from err
    if not isinstance(doc, dict):
        raise PersistError(f"Cannot read {str(path)!r}: it is not a JSON object; expected a {what}.")
    return doc.get("pretrained_cfg", doc) if what == "timm config" else doc


def _numbers(doc: dict[str, Any], key: str, where: str, default: Any = None) -> np.ndarray:
    value = doc.get(key, default)
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise PersistError(f"{where}: {key} is {value!r}; expected a number or a list of numbers.") from err
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        raise PersistError(f"{where}: {key} is {value!r}; expected finite numbers, one per channel.")
    return arr


def _standardize(mean: np.ndarray, std: np.ndarray, fit_dtype: Any, input_range: tuple[float, float],
                 channel_axis: int, where: str) -> Any:
    if mean.shape != std.shape and std.size != 1 and mean.size != 1:
        raise PersistError(f"{where}: {mean.size} means but {std.size} stds; expected one of each per channel.")
    mean, std = np.broadcast_arrays(mean, std)
    if np.any(std <= 0):
        raise PersistError(f"{where}: a std is {float(std.min())!r}; expected positive values.")
    per = "global" if mean.size == 1 else "channel"
    shape = [1, 1, 1, 1]
    shape[channel_axis] = mean.size
    layout = resolve_layout(per, tuple(shape), channel_axis)
    center, scale = mean.reshape(layout.stat_shape).copy(), std.reshape(layout.stat_shape).copy()
    attrs = {"center_": center, "scale_": scale, "mean_": center, "std_": scale, "var_": scale**2,
             "input_range_": input_range}
    return normalizers.Standardize.from_fitted(attrs, layout=layout, fit_dtype=fit_dtype, per=per,
                                               channel_axis=channel_axis)


def from_hf(config: Any, *, channel_axis: int = -1) -> Any:
    """The fitted normalizer a Hugging Face ``preprocessor_config.json`` (a path, a folder or a dict) applies.

    It takes what the image processor takes: with ``do_rescale`` (``rescale_factor`` 1/255) raw uint8 pixels,
    and computes ``(x * rescale_factor - image_mean) / image_std`` per channel. ``channel_axis`` says where the
    channels of your arrays are (``-1`` for ``(n, h, w, c)``, ``1`` for ``pixel_values``' ``(n, c, h, w)``).

    >>> norm = from_hf({"do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    ...                 "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
    >>> norm.mean_.tolist(), norm.std_.tolist()
    ([127.5, 127.5, 127.5], [127.5, 127.5, 127.5])
    """
    doc = _config(config, "Hugging Face preprocessor config")
    where = "from_hf()"
    if not any(k in doc for k in HF_KEYS):
        raise PersistError(f"{where}: the config has none of {', '.join(HF_KEYS)}; expected a preprocessor_config.json.")
    rescale = bool(doc.get("do_rescale", True))
    factor = float(_numbers(doc, "rescale_factor", where, 1 / 255)[0]) if rescale else 1.0
    if factor <= 0:
        raise PersistError(f"{where}: rescale_factor is {factor!r}; expected a positive number such as 1/255.")
    is_pixels = rescale and abs(factor * 255 - 1) < 1e-9
    fit_dtype = np.uint8 if is_pixels else np.float32
    hi = 255.0 if is_pixels else 1.0 / factor
    if not doc.get("do_normalize", True):
        return _scale_only(1.0 / factor, fit_dtype, hi, channel_axis)
    mean = _numbers(doc, "image_mean", where, [0.5, 0.5, 0.5]) / factor
    std = _numbers(doc, "image_std", where, [0.5, 0.5, 0.5]) / factor
    return _standardize(mean, std, fit_dtype, (0.0, hi), channel_axis, where)


def _scale_only(divisor: float, fit_dtype: Any, hi: float, channel_axis: int) -> Any:
    """``Scale(by=divisor)``, fitted: what a config that only rescales applies."""
    layout = resolve_layout("global", (1, 1, 1, 1), channel_axis)
    attrs = {"center_": np.zeros(()), "scale_": np.full((), divisor), "input_range_": (0.0, hi)}
    return normalizers.Scale.from_fitted(attrs, layout=layout, fit_dtype=fit_dtype, by=divisor, per="global",
                                         channel_axis=channel_axis)


def from_timm(config: Any, *, input_scale: str = "unit", channel_axis: int = 1) -> Any:
    """The fitted normalizer of a timm data config (``mean``, ``std``; a dict, a path, or a model's
    ``pretrained_cfg``).

    timm states ``mean``/``std`` for inputs on the [0, 1] scale (``ToTensor()`` output): that is what the
    normalizer takes with ``input_scale="unit"``; ``input_scale="uint8"`` makes it take raw 0-255 pixels.
    ``channel_axis`` defaults to PyTorch's ``(n, c, h, w)``.

    >>> from_timm({"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}).mean_.tolist()
    [0.485, 0.456, 0.406]
    """
    if input_scale not in ("unit", "uint8"):
        raise ParameterError(f"from_timm(input_scale={input_scale!r}) is not a choice; expected 'unit' or 'uint8'.")
    doc = _config(config, "timm config")
    where = "from_timm()"
    if "mean" not in doc or "std" not in doc:
        raise PersistError(f"{where}: the config has no 'mean' and 'std'; expected timm's data config.")
    k = 255.0 if input_scale == "uint8" else 1.0
    mean, std = _numbers(doc, "mean", where) * k, _numbers(doc, "std", where) * k
    return _standardize(mean, std, np.uint8 if k == 255 else np.float32, (0.0, k), channel_axis, where)
