"""What a (pretrained) model was trained on, and whether the network receives the same (``expects=``).

An :class:`Expectation` is the affine map ``y = x * a + b`` per channel from raw 0..255 pixels that the
model's training used: ``unit`` (x / 255), ``minus-one-one`` (x / 127.5 - 1: Inception, Xception,
MobileNet), ``imagenet`` (torchvision's and timm's default), ``caffe`` (VGG, ResNet50 in
keras.applications: BGR, ImageNet mean subtracted), ``standardized`` (the training data's own mean and
std), or a Hugging Face ``preprocessor_config.json`` / timm config.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from normlab._format import as_list, fmt, fmt_seq
from normlab.check._context import Context
from normlab.check._data import exact_stats
from normlab.check._findings import Finding
from normlab.errors import DataError

__all__ = ["EXPECTS", "Expectation", "expects_mismatch", "resolve_expects"]

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
_IMAGENET_STD = np.array([0.229, 0.224, 0.225])
_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68])

#: The network's mean may differ from the expected one by this share of the expected std, and its std
#: by this share of the expected std: a different split or subset of the same images moves both by 1-3%,
#: a wrong convention by 50% and more.
MEAN_TOL = 0.1
STD_TOL = 0.1


@dataclass(frozen=True)
class Expectation:
    """``y = x * a + b`` from raw 0..255 pixels (``a``, ``b``: one value, or one per channel)."""

    name: str
    what: str
    a: np.ndarray
    b: np.ndarray
    recipe: str
    data_dependent: bool = False  # "standardized": a and b are the training data's own
    bgr: bool = False  # the channels in reverse order (Caffe): a and b apply to x[..., ::-1]


EXPECTS: dict[str, Expectation] = {
    "unit": Expectation("unit", "values in [0, 1] (x / 255)", np.array([1 / 255]), np.array([0.0]),
                        "x = x_uint8 / 255.0"),
    "minus-one-one": Expectation("minus-one-one", "values in [-1, 1] (x / 127.5 - 1)", np.array([1 / 127.5]),
                                 np.array([-1.0]),
                                 "x = x_uint8 / 127.5 - 1.0   # keras.applications.xception.preprocess_input"),
    "imagenet": Expectation("imagenet", "x / 255 standardized with ImageNet's mean (0.485, 0.456, 0.406) and std "
                            "(0.229, 0.224, 0.225)", 1 / (255 * _IMAGENET_STD), -_IMAGENET_MEAN / _IMAGENET_STD,
                            "x = (x_uint8 / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]"),
    "caffe": Expectation("caffe", "BGR 0..255 pixels minus ImageNet's mean (103.939, 116.779, 123.68)",
                         np.ones(3), -_CAFFE_MEAN_BGR,
                         "x = x_uint8[..., ::-1] - [103.939, 116.779, 123.68]   # keras.applications.vgg16."
                         "preprocess_input", bgr=True),
    "standardized": Expectation("standardized", "mean 0 and std 1 per channel (the training data's statistics)",
                                np.ones(1), np.zeros(1),
                                'norm = normlab.Standardize(per="channel").fit(x_train)', data_dependent=True),
}


def _from_config(cfg: dict[str, Any], source: str) -> Expectation:
    """A Hugging Face image processor config (image_mean, image_std, rescale_factor, ...) or a timm one."""
    cfg = cfg.get("pretrained_cfg", cfg)
    if "image_mean" in cfg or "do_normalize" in cfg or "rescale_factor" in cfg:
        rescale = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
        mean = np.asarray(cfg.get("image_mean", [0.0]), dtype=np.float64)
        std = np.asarray(cfg.get("image_std", [1.0]), dtype=np.float64)
        if not cfg.get("do_normalize", True):
            mean, std = np.zeros(1), np.ones(1)
        recipe = f"x = (x_uint8 * {fmt(rescale)} - {fmt_seq(mean)}) / {fmt_seq(std)}   # the model's image processor"
        return Expectation(source, f"the preprocessing of {source}: x * {fmt(rescale)}, then mean {fmt_seq(mean)} "
                           f"and std {fmt_seq(std)}", rescale / std, -mean / std, recipe)
    if "mean" in cfg and "std" in cfg:
        mean = np.asarray(cfg["mean"], dtype=np.float64)
        std = np.asarray(cfg["std"], dtype=np.float64)
        recipe = f"x = (x_uint8 / 255.0 - {fmt_seq(mean)}) / {fmt_seq(std)}   # the model's pretrained config"
        return Expectation(source, f"x / 255 standardized with mean {fmt_seq(mean)} and std {fmt_seq(std)} ({source})",
                           1 / (255 * std), -mean / std, recipe)
    raise DataError(
        f"normlab.check(expects={source!r}) has the keys {sorted(cfg)}; expected a Hugging Face image processor "
        "config (image_mean, image_std, rescale_factor) or a timm config (mean, std)."
    )


def resolve_expects(obj: Any) -> Expectation | None:
    """A name of :data:`EXPECTS`, a config dict, or the path of a JSON config."""
    if obj is None or isinstance(obj, Expectation):
        return obj
    if isinstance(obj, dict):
        return _from_config(obj, "the given config")
    if isinstance(obj, (str, os.PathLike)):
        text = str(obj)
        if text in EXPECTS:
            return EXPECTS[text]
        path = Path(text)
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as err:
                raise DataError(f"normlab.check(expects={text!r}) is not a JSON file ({err}).") from err
            if isinstance(doc, dict):
                return _from_config(doc, path.name)
    raise DataError(
        f"normlab.check(expects={obj!r}) is not a known convention; expected one of {', '.join(EXPECTS)}, or "
        "the path of a preprocessor_config.json (Hugging Face) or a timm config with mean and std."
    )


def _looks_like(lo: float, hi: float, mean: np.ndarray, std: np.ndarray) -> str:
    if np.all(np.abs(mean) < 0.1) and np.all(np.abs(std - 1) < 0.1):
        return "standardized data (mean 0, std 1)"
    if lo >= 0 and hi <= 1:
        return "values in [0, 1]" + (", divided by 255 twice" if hi <= 1 / 255 + 1e-6 else "")
    if lo >= -1 and hi <= 1:
        return "values in [-1, 1]"
    if lo >= 0 and hi <= 255:
        return "raw 0..255 pixels"
    return f"values in [{fmt(lo)}, {fmt(hi)}]"


def _fed_channels(ctx: Context) -> Any:
    arr = ctx.Z.x if ctx.Z is not None else ctx.fed_array("train", "normalized")
    mode = "channel" if ctx.is_image else "feature"
    return exact_stats([arr], mode, ctx.channel_axis), arr


def _expected(ctx: Context, e: Expectation) -> tuple[np.ndarray, np.ndarray] | None:
    """Expected per-channel mean and std of the network's input, from the raw training data's own."""
    x = ctx.X
    if x is None:
        return None
    s = x.stats("channel" if ctx.is_image else "feature", ctx.channel_axis)
    mean, std = np.ravel(s.mean).astype(np.float64), np.ravel(np.sqrt(s.var))
    if e.data_dependent:
        return np.zeros(mean.size), np.ones(mean.size)
    if e.bgr and mean.size == 3:
        mean, std = mean[::-1], std[::-1]
    p = 255.0 if x.x.dtype.kind in "ui" or float(np.max(s.max)) > 1.5 else 1.0  # raw data in [0, 1]: x * 255
    a, b = np.broadcast_to(e.a, mean.shape), np.broadcast_to(e.b, mean.shape)
    return a * mean * 255 / p + b, np.abs(a) * std * 255 / p


def _matches(mean: np.ndarray, std: np.ndarray, em: np.ndarray, es: np.ndarray) -> bool:
    return bool(np.all(np.abs(mean - em) <= MEAN_TOL * es) and np.all(np.abs(std - es) <= STD_TOL * es))


def expects_mismatch(ctx: Context) -> list[Finding]:
    """What the network receives compared with what the model was trained on (``expects=``)."""
    e = ctx.expects
    assert isinstance(e, Expectation)
    s, _ = _fed_channels(ctx)
    mean, std = np.ravel(s.mean).astype(np.float64), np.ravel(np.sqrt(s.var))
    lo, hi = float(np.min(s.min)), float(np.max(s.max))
    exp = _expected(ctx, e)
    if exp is None:
        return []
    em, es = exp
    if em.size != mean.size and em.size != 1:
        return []
    em, es = np.broadcast_to(em, mean.shape), np.broadcast_to(es, mean.shape)
    if _matches(mean, std, em, es):
        return []
    numbers = {"expects": e.name, "fed_mean": as_list(mean), "fed_std": as_list(std), "fed_min": lo, "fed_max": hi,
               "expected_mean": as_list(em), "expected_std": as_list(es)}
    if mean.size == 3 and _matches(mean[::-1], std[::-1], em, es):
        msg = (f"The model expects {e.what}; the network receives it with the channels in reverse order (mean "
               f"{fmt_seq(mean)} where {fmt_seq(em)} is expected): RGB where BGR is expected, or the other way round.")
        numbers["reversed_channels"] = True
        return [Finding("expects-mismatch", "error", "normalized", msg, "x = x[..., ::-1]   # swap RGB and BGR\n"
                        + e.recipe, numbers)]
    looks = _looks_like(lo, hi, mean, std)
    label = ctx.Z.label if ctx.Z is not None else "the data as it is fed"
    msg = (f"The model expects {e.what}, but {label} holds {looks}: values in [{fmt(lo)}, {fmt(hi)}] with mean "
           f"{fmt_seq(mean)} and std {fmt_seq(std)}, where mean {fmt_seq(em)} and std {fmt_seq(es)} are expected. "
           "A pretrained network fed another scale than it was trained on loses accuracy without any error.")
    hint = "# from the raw 0..255 pixels, and no other scaling:\n" + e.recipe
    if np.all(std > 0):  # the affine map from what the network gets to what it expects, channel by channel
        a = es / std
        b = em - mean * a
        numbers.update(convert_scale=as_list(a), convert_offset=as_list(b))
        shift = f"- {_one_or_all(-b)}" if np.all(b < 0) else f"+ {_one_or_all(b)}"
        hint = f"x = x * {_one_or_all(a)} {shift}   # from what it gets now to what it expects\n" + hint
    return [Finding("expects-mismatch", "error", "normalized", msg, hint, numbers)]


def _one_or_all(v: np.ndarray) -> str:
    """One number when every channel has the same (rounded) value, else the sequence."""
    r = np.round(v, 4) + 0.0
    return fmt(r[0]) if np.all(r == r[0]) else fmt_seq(r)
