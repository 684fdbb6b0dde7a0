"""Normalization constants in the form other ecosystems keep them: Hugging Face and timm configs.

A Hugging Face image processor (``preprocessor_config.json``) computes
``y = (x * rescale_factor - image_mean) / image_std`` per channel, with ``do_rescale`` and
``do_normalize`` switching the two steps; a timm data config holds ``mean``/``std`` for inputs on the
[0, 1] scale (``ToTensor()`` output) and the ``input_size`` ``(c, h, w)``. A fitted normalizer with one
statistic per channel (or one for everything) is exactly that map, so it converts both ways; reading
lives in :mod:`normlab.core._load` (:func:`~normlab.core._load.from_hf`, ``from_timm``).

>>> import numpy as np, normlab
>>> x = np.arange(48, dtype=np.uint8).reshape(4, 2, 2, 3)
>>> cfg = normlab.Standardize().fit(x).to_hf()
>>> cfg["do_rescale"], round(cfg["rescale_factor"] * 255, 12), len(cfg["image_mean"])
(True, 1.0, 3)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from normlab._files import atomic_write_text
from normlab.errors import LayoutError, PersistError

__all__ = ["HF_KEYS", "hf_config", "timm_config", "unit_divisor", "write_hf"]

#: The keys of a preprocessor_config.json that normlab reads and writes.
HF_KEYS = ("do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std")


def unit_divisor(dtype: Any) -> float | None:
    """The divisor that brings integer data onto [0, 1] (the dtype's maximum; 255 for uint8); None for floats."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return 1.0
    return float(np.iinfo(dt).max) if dt.kind in "ui" else None


def _per_channel(est: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    lay = est.layout_
    if not lay.stateful or lay.per == "feature":
        raise LayoutError(
            f"{type(est).__name__}(per={lay.per!r}) has no {what} form: a {what} config holds one mean and std "
            "per channel. Fit per='channel' (or per='global') to export it."
        )
    return np.ravel(np.asarray(est.center_, np.float64)), np.ravel(np.asarray(est.scale_, np.float64))


def hf_config(est: Any) -> dict[str, Any]:
    """The Hugging Face image-processor keys that reproduce ``est.transform`` on the data it was fitted on.

    Integer data (uint8 pixels) is rescaled by ``1 / dtype max`` first, as image processors do, and the
    statistics are stated on that scale; float data is not rescaled.
    """
    center, scale = _per_channel(est, "Hugging Face")
    divisor = unit_divisor(est.fit_dtype_)
    unit = 1.0 if divisor is None else divisor
    identity = bool(np.all(center == 0) and np.all(scale == unit))
    return {
        "do_rescale": divisor is not None,
        "rescale_factor": 1.0 / unit,
        "do_normalize": not identity,
        "image_mean": (center / unit).tolist(),
        "image_std": (scale / unit).tolist(),
    }


def timm_config(est: Any) -> dict[str, Any]:
    """timm's data config (``mean``, ``std`` on the [0, 1] scale, and ``input_size`` ``(c, h, w)``)."""
    center, scale = _per_channel(est, "timm")
    divisor = unit_divisor(est.fit_dtype_) or 1.0
    lay = est.layout_
    cfg: dict[str, Any] = {"mean": tuple(center / divisor), "std": tuple(scale / divisor)}
    if lay.ndim == 4:
        c = lay.shape[lay.channel_axis]
        h, w = (lay.shape[a] for a in range(1, 4) if a != lay.channel_axis)
        cfg["input_size"] = (int(c), int(h), int(w))
    return cfg


def write_hf(cfg: dict[str, Any], path: str | os.PathLike) -> None:
    """Write ``cfg`` into ``path`` (a ``preprocessor_config.json`` or a folder holding one), updating the
    normalization keys of an existing file and keeping everything else in it."""
    path = Path(path)
    if path.is_dir():
        path = path / "preprocessor_config.json"
    doc: dict[str, Any] = {}
    if path.is_file():
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise PersistError(
                f"Cannot update {str(path)!r}: it is not valid JSON ({err}); expected a preprocessor_config.json. "
                "Fix or remove the file."
            ) from err
        if not isinstance(doc, dict):
            raise PersistError(f"Cannot update {str(path)!r}: it is not a JSON object; expected a preprocessor config.")
    doc.update(cfg)
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
