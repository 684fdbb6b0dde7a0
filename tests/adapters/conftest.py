"""Fitted normalizers for every class x per= mode x layout on real data, shared by the adapter tests.

NumPy is the oracle: each case holds a fitted normalizer, a held-out batch in the fitted layout, and
``normalizer.transform(batch)``. The adapters must agree with it to 1e-6 (relative for values above 1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import normlab
from normlab.errors import ZeroVarianceWarning

MODES = ("global", "channel", "feature", "sample", "sample-channel")

# (label, factory(per, channel_axis)): every normalizer, with the variants whose formulas differ
NORMALIZERS = [
    ("Identity", lambda per, ca: normlab.Identity(per=per, channel_axis=ca)),
    ("Scale(255)", lambda per, ca: normlab.Scale(255, per=per, channel_axis=ca)),
    ("Scale(dtype)", lambda per, ca: normlab.Scale("dtype", per=per, channel_axis=ca)),
    ("Scale(max)", lambda per, ca: normlab.Scale("max", per=per, channel_axis=ca)),
    ("Center", lambda per, ca: normlab.Center(per=per, channel_axis=ca)),
    ("Standardize", lambda per, ca: normlab.Standardize(per=per, channel_axis=ca)),
    ("MinMax", lambda per, ca: normlab.MinMax(per=per, channel_axis=ca)),
    ("MinMax(-1,1)", lambda per, ca: normlab.MinMax((-1, 1), per=per, channel_axis=ca)),
    ("Robust", lambda per, ca: normlab.Robust(per=per, channel_axis=ca)),
    ("Robust(10,90)", lambda per, ca: normlab.Robust((10, 90), per=per, channel_axis=ca)),
    ("LpNormalize(2)", lambda per, ca: normlab.LpNormalize(2, per=per, channel_axis=ca)),
    ("LpNormalize(inf)", lambda per, ca: normlab.LpNormalize(np.inf, per=per, channel_axis=ca)),
    ("LpNormalize(1)", lambda per, ca: normlab.LpNormalize(1, per=per, channel_axis=ca)),
]

RTOL = ATOL = 1e-6


def _assert_matches(actual, expected, what: str) -> None:
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == np.float32, f"{what}: dtype {actual.dtype}"
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL, err_msg=what)


@pytest.fixture(scope="session")
def assert_matches():
    """``assert_matches(actual, expected, what)``: float32, same shape, within 1e-6 (relative above 1)."""
    return _assert_matches


@dataclass
class Config:
    """One dataset in one layout, with every applicable normalizer fitted on its training part."""

    name: str
    x_fit: np.ndarray
    x_eval: np.ndarray
    channel_axis: int
    labels: list
    norms: list
    expected: list


def _cifar_images(shared_data: Path, per_class: int) -> np.ndarray:
    Image = pytest.importorskip("PIL.Image")
    root = shared_data / "cifar10-jpg-subset" / "test"
    if not root.is_dir():
        pytest.skip(f"CIFAR JPEG folder not found at {root}")
    files = [f for d in sorted(root.iterdir()) for f in sorted(d.glob("*.jpg"))[:per_class]]
    out = np.empty((len(files), 32, 32, 3), np.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            out[i] = np.asarray(im.convert("RGB"))
    return out


def _build(name: str, x_fit: np.ndarray, x_eval: np.ndarray, channel_axis: int) -> Config:
    labels, norms, expected = [], [], []
    for per in MODES:
        if per == "sample-channel" and x_fit.ndim == 2:
            continue
        for label, make in NORMALIZERS:
            if label == "LpNormalize(1)" and per not in ("sample", "sample-channel"):
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ZeroVarianceWarning)  # constant MNIST border pixels
                norm = make(per, channel_axis).fit(x_fit)
                y = norm.transform(x_eval)
            labels.append(f"{name}: {label}(per={per!r})")
            norms.append(norm)
            expected.append(y)
    return Config(name, x_fit, x_eval, channel_axis, labels, norms, expected)


@pytest.fixture(scope="session")
def adapter_configs(mnist_train: np.ndarray, shared_data: Path) -> dict:
    """Every configuration, keyed by name (built once per session)."""
    mnist_fit, mnist_eval = mnist_train[:600], mnist_train[-16:].copy()  # writable, for torch.from_numpy
    cifar = _cifar_images(shared_data, per_class=24)
    cifar_fit, cifar_eval = cifar[:-16], cifar[-16:]
    nchw = lambda a: np.ascontiguousarray(a.transpose(0, 3, 1, 2))  # noqa: E731
    configs = {
        "mnist-nhwc": _build("mnist-nhwc", mnist_fit, mnist_eval, -1),
        "mnist-nchw": _build("mnist-nchw", nchw(mnist_fit), nchw(mnist_eval), 1),
        "mnist-flat": _build("mnist-flat", mnist_fit.reshape(len(mnist_fit), -1), mnist_eval.reshape(16, -1), -1),
        "cifar-nhwc": _build("cifar-nhwc", cifar_fit, cifar_eval, -1),
        "cifar-nchw": _build("cifar-nchw", nchw(cifar_fit), nchw(cifar_eval), 1),
    }
    return configs
