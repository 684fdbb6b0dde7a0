"""Methods: parsing, fitting on the training split only, and the keras.utils.normalize formula."""

from __future__ import annotations

import numpy as np
import pytest

from normlab.experiments import CompareError
from normlab.experiments.methods import l2_axis1, parse_method, parse_methods


def test_combination_splits_into_preprocessing_and_layers():
    m = parse_method("standardize+batchnorm-all")
    assert m.steps == ("standardize",) and m.batchnorm_all and not m.batchnorm_input
    assert parse_method("batchnorm-input").steps == ()
    assert [s.name for s in parse_methods("none, scale ,max")] == ["none", "scale", "max"]


@pytest.mark.parametrize(
    ("text", "fix"),
    [
        ("standardise", "expected one of none, scale, max"),
        ("none+standardize", "Write 'standardize' instead"),
        ("scale+scale", "each step at most once"),
        ("none,none", "listed twice"),
        ("", "expected a comma-separated list"),
    ],
)
def test_bad_method_names_say_what_is_valid(text, fix):
    with pytest.raises(CompareError, match=fix):
        parse_methods(text)


def test_statistics_are_fitted_on_the_training_split_only():
    rng = np.random.default_rng(0)
    train = rng.integers(0, 100, size=(50, 4, 4, 1)).astype(np.uint8)
    val = (train[:10] + 100).astype(np.uint8)  # a different distribution
    fitted = parse_method("standardize").fit(train)
    out = fitted.transform(val)
    mean, std = train.mean(), train.std()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (val.astype(np.float64) - mean) / std, rtol=1e-5)
    assert fitted.describe() == f"standardize (per channel): mean {mean:.4g}, std {std:.4g}"


def test_scale_divides_uint8_by_255_and_refuses_float_data():
    x = np.array([[[[0], [51]], [[102], [255]]]], dtype=np.uint8)
    np.testing.assert_allclose(
        parse_method("scale").fit(x).transform(x).ravel(), [0, 0.2, 0.4, 1.0]
    )
    with pytest.raises(CompareError, match="Use 'max'"):
        parse_method("scale").fit(x.astype(np.float64))


def test_max_divides_by_the_training_maximum():
    x = np.array([[2.0, 4.0], [1.0, 8.0]])
    np.testing.assert_allclose(parse_method("max").fit(x).transform(x), [[1.0, 0.5], [0.5, 1.0]])


def test_l2_axis1_is_keras_utils_normalize_axis_1():
    rng = np.random.default_rng(1)
    x = rng.random((3, 5, 4, 2))
    x[0, :, 1, 0] = 0  # an all-zero column stays zero
    y = l2_axis1(x)
    ref = x / np.maximum(np.sqrt((x**2).sum(axis=1, keepdims=True)), 1e-300)
    ref[0, :, 1, 0] = 0
    np.testing.assert_allclose(y, ref)
    np.testing.assert_allclose(np.linalg.norm(y[1], axis=0), 1.0)


def test_minmax_sample_maps_each_image_onto_0_1():
    x = np.stack([np.full((4, 4, 1), 10), np.arange(16).reshape(4, 4, 1)]).astype(np.uint8)
    x[0, 0, 0, 0] = 30
    y = parse_method("minmax-sample").fit(x[:1]).transform(x)
    assert y[1].min() == 0 and y[1].max() == 1
    assert y[0].max() == 1 and y[0].min() == 0
