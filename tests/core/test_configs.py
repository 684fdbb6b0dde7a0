"""Hugging Face and timm configs: normlab writes what those libraries read, and reads what they write."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import normlab
from normlab.errors import LayoutError, PersistError

RGB = np.random.default_rng(7).integers(0, 256, (64, 8, 8, 3), dtype=np.uint8)


def _hf_apply(cfg: dict, x: np.ndarray) -> np.ndarray:
    """The documented image-processor arithmetic (BaseImageProcessor.rescale, then .normalize)."""
    y = x.astype(np.float64)
    if cfg.get("do_rescale", True):
        y = y * cfg["rescale_factor"]
    if cfg.get("do_normalize", True):
        y = (y - np.asarray(cfg["image_mean"])) / np.asarray(cfg["image_std"])
    return y


@pytest.mark.parametrize("est", [normlab.Standardize(), normlab.Standardize(per="global"), normlab.Scale(),
                                 normlab.MinMax(), normlab.Center()], ids=repr)
def test_hf_config_computes_the_normalizers_transform(est):
    est.fit(RGB)
    cfg = est.to_hf()
    np.testing.assert_allclose(_hf_apply(cfg, RGB), est.transform(RGB), rtol=1e-5, atol=1e-5)
    back = normlab.from_hf(cfg)
    np.testing.assert_allclose(back.transform(RGB), est.transform(RGB), rtol=1e-5, atol=1e-5)


def test_to_hf_updates_an_existing_preprocessor_config_and_keeps_its_other_keys(tmp_path):
    path = tmp_path / "preprocessor_config.json"
    path.write_text(json.dumps({"image_processor_type": "ViTImageProcessor", "size": {"height": 8, "width": 8},
                                "image_mean": [0.5, 0.5, 0.5]}))
    norm = normlab.Standardize().fit(RGB)
    norm.to_hf(tmp_path)  # a folder: its preprocessor_config.json
    doc = json.loads(path.read_text())
    assert doc["image_processor_type"] == "ViTImageProcessor" and doc["size"] == {"height": 8, "width": 8}
    assert doc["image_mean"] == pytest.approx((norm.mean_ / 255).tolist()) and doc["do_rescale"] is True
    assert normlab.from_hf(path).mean_.tolist() == pytest.approx(norm.mean_.tolist())


def test_a_real_image_processor_reproduces_the_normalizers_transform(tmp_path):
    transformers = pytest.importorskip("transformers")
    norm = normlab.Standardize().fit(RGB)
    cfg = {"image_processor_type": "ViTImageProcessor", "do_resize": False, **norm.to_hf()}
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(cfg))
    with warnings.catch_warnings():  # transformers' own notices (backends, deprecations)
        warnings.simplefilter("ignore")
        processor = transformers.AutoImageProcessor.from_pretrained(str(tmp_path))
        out = processor(list(RGB[:4]), return_tensors="np", input_data_format="channels_last")["pixel_values"]
    want = np.moveaxis(norm.transform(RGB[:4]), -1, 1)  # image processors return (n, c, h, w)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_timm_config_round_trips_and_states_the_unit_scale():
    x = np.moveaxis(RGB, -1, 1).copy()  # (n, c, h, w)
    norm = normlab.Standardize(channel_axis=1).fit(x)
    cfg = norm.to_timm()
    assert cfg["input_size"] == (3, 8, 8)
    assert cfg["mean"] == pytest.approx(tuple(norm.mean_ / 255))
    unit = normlab.from_timm(cfg)  # takes ToTensor() output
    np.testing.assert_allclose(unit.transform(x / 255.0), norm.transform(x), rtol=1e-5, atol=1e-5)
    pixels = normlab.from_timm(cfg, input_scale="uint8")  # takes raw pixels
    np.testing.assert_allclose(pixels.transform(x), norm.transform(x), rtol=1e-5, atol=1e-5)
    imagenet = normlab.from_timm({"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)})
    assert imagenet.layout_.describe() == "(n, c, h, w)" and imagenet.std_.tolist() == [0.229, 0.224, 0.225]


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"image_std": [0.5, 0.0, 0.5], "image_mean": [0.5] * 3}, "expected positive values"),
        ({"image_mean": ["a"], "image_std": [1]}, "expected a number or a list"),
        ({"size": 224}, "has none of"),
        ({"image_mean": [0.1, 0.2], "image_std": [0.1, 0.2, 0.3]}, "2 means but 3 stds"),
    ],
)
def test_damaged_hf_configs_are_one_persist_error(config, match):
    with pytest.raises(PersistError, match=match):
        normlab.from_hf(config)


def test_feature_statistics_have_no_config_form():
    with pytest.raises(LayoutError, match="Fit per='channel'"):
        normlab.Standardize(per="feature").fit(RGB).to_hf()
