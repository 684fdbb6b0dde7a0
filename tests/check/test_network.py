"""What the network receives, on real data: statistics on another scale or from another dataset, test values
that explode where training pixels were constant, recovered statistics, L1 rows, and the false alarms that are
now info (constant columns divided by 1, Caffe-style mean subtraction)."""

from __future__ import annotations

import numpy as np
import pytest
from tests.check.helpers import CAFFE_BGR, IMAGENET_MEAN, IMAGENET_STD, one
from tests.conftest import read_idx_images

import normlab.check as check


@pytest.fixture(scope="module")
def fashion_small(shared_data):
    return read_idx_images(shared_data / "fashion-mnist" / "train-images-idx3-ubyte.gz", limit=2000)


# ---- stats-outside-data ---------------------------------------------------------------------------


def test_albumentations_max_pixel_value_255_on_unit_data_is_stats_outside_data(cifar_subset):
    # x / 255, then A.Normalize(mean, std) whose max_pixel_value=255 multiplies mean and std by 255
    x01 = cifar_subset / 255.0
    z = (x01 - IMAGENET_MEAN * 255) / (IMAGENET_STD * 255)
    f = one(check(x01, normalized=z), "stats-outside-data")
    assert (f.severity, f.subject, f.numbers["factor"]) == ("error", "normalized", 255)
    assert f.numbers["center"] == pytest.approx(list(IMAGENET_MEAN * 255), rel=1e-6)
    assert f.numbers["fed_mean"] == pytest.approx([-2.109, -2.027, -1.797], abs=2e-3)
    assert all(0.004 < s < 0.005 for s in f.numbers["fed_std"])
    assert "max_pixel_value=1.0" in f.hint and "(0.485, 0.456, 0.406)" in f.hint


def test_0_255_statistics_given_for_unit_data_are_stats_outside_data(mnist_small):
    f = one(check(mnist_small / 255.0, stats={"mean": [33.32], "std": [78.57]}), "stats-outside-data")
    assert f.subject == "stats" and f.numbers["factor"] == 255
    assert "x = (x - 0.1307) / 0.3081" in f.hint


# ---- stats-from-other-data ------------------------------------------------------------------------


def test_mnist_constants_on_fashion_mnist_are_named_with_the_right_values(fashion_small):
    f = one(check(fashion_small, stats={"mean": [0.1307], "std": [0.3081]}), "stats-from-other-data")
    assert (f.severity, f.numbers["known"]) == ("warning", "MNIST")
    assert f.numbers["data_mean"] == [pytest.approx(0.2839, abs=1e-4)]
    assert f.numbers["data_std"] == [pytest.approx(0.3535, abs=1e-4)]
    assert f.numbers["fed_mean"] == [pytest.approx((0.2839 - 0.1307) / 0.3081, abs=1e-3)]
    assert "They are MNIST's constants." in f.message and "mean, std = 0.28" in f.hint


def test_mnist_constants_recovered_from_normalized_fashion_mnist_are_reported(fashion_small):
    z = ((fashion_small / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    f = one(check(fashion_small, normalized=z), "stats-from-other-data")
    assert f.subject == "normalized" and f.numbers["known"] == "MNIST"
    assert f.message.startswith("The recovered mean 0.1307 and std 0.3081")


def test_imagenet_constants_and_range_conventions_are_not_other_data(cifar_subset):
    x01 = cifar_subset / 255.0
    for z in ((x01 - IMAGENET_MEAN) / IMAGENET_STD, (x01 - 0.5) / 0.5):
        assert check(cifar_subset, normalized=z).codes == []


# ---- test-values-explode --------------------------------------------------------------------------


def test_std_plus_epsilon_on_constant_pixels_explodes_the_test_set(mnist_small, mnist_test):
    test = mnist_test[:2000]
    mean, std = mnist_small.mean(axis=0), mnist_small.std(axis=0)
    f = lambda x: ((x - mean) / (std + 1e-8)).astype(np.float32)  # noqa: E731
    r = check(mnist_small, normalized=f(mnist_small), test=test, test_normalized=f(test))
    e = one(r, "test-values-explode")
    assert (e.severity, e.subject) == ("error", "test_normalized")
    assert e.numbers["max_abs"] == pytest.approx(float(np.abs(f(test)).max()), rel=1e-6)
    assert e.numbers["max_abs"] > 1e10  # a test pixel of ~246 over 1e-8
    assert e.numbers["constant_in_train"] == e.numbers["positions"] > 0
    assert e.numbers["epsilon"] == pytest.approx(1e-8, rel=1e-3)
    assert "never std + 1e-8" in e.hint


def test_sklearn_standard_scaler_keeps_test_values_bounded(mnist_small, mnist_test):
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    xt, tt = mnist_small.reshape(2000, -1), mnist_test[:2000].reshape(2000, -1)
    sc = preprocessing.StandardScaler().fit(xt)
    r = check(xt, normalized=sc.transform(xt), test=tt, test_normalized=sc.transform(tt))
    assert "test-values-explode" not in r
    # constant columns divided by 1: worth knowing, nothing to change (it used to fail --fail-on warning)
    c = one(r, "constant-feature")
    assert c.severity == "info" and r.exit_code("warning") == 0
    assert "nothing needs to change" in c.message


def test_constant_columns_without_a_known_normalization_stay_a_warning(mnist_small):
    c = one(check(mnist_small.reshape(2000, -1)), "constant-feature")
    assert c.severity == "warning"


# ---- std-as-variance and averaged-std on recovered statistics -------------------------------------


def test_variance_recovered_from_the_normalized_data_is_std_as_variance(mnist_small):
    z = ((mnist_small / 255.0 - 0.1307) / 0.3081**2).astype(np.float32)
    f = one(check(mnist_small, normalized=z), "std-as-variance")
    assert f.subject == "normalized"
    assert f.numbers["given"] == [pytest.approx(0.3081**2, rel=1e-4)]
    assert f.message.startswith("The recovered std 0.09493 is the variance of the training data")


def test_averaged_per_image_std_recovered_from_the_normalized_data(cifar_subset):
    x01 = cifar_subset / 255.0
    avg = x01.std(axis=(1, 2)).mean(axis=0)  # the per-image recipe
    z = ((x01 - x01.mean(axis=(0, 1, 2))) / avg).astype(np.float32)
    f = one(check(cifar_subset, normalized=z), "averaged-std")
    assert f.subject == "normalized" and f.numbers["recipe"] == "per-image"
    assert f.numbers["given"] == pytest.approx(list(avg), rel=1e-4)


# ---- L1 rows, Caffe ----------------------------------------------------------------------------------


def test_l1_row_normalization_of_a_table_is_named(breast_cancer):
    x = breast_cancer[0].to_numpy()
    z = x / np.abs(x).sum(axis=1, keepdims=True)
    f = one(check(x, normalized=z), "wrong-axis")
    assert f.numbers["nature"] == "unit-l1" and "norm='l1'" in f.message


def test_caffe_mean_subtraction_in_bgr_is_info_and_silent_with_expects_caffe(cifar_subset):
    z = cifar_subset[..., ::-1].astype(np.float32) - CAFFE_BGR
    r = check(cifar_subset, normalized=z)
    f = one(r, "pixels-not-scaled")
    assert f.severity == "info" and r.codes == ["pixels-not-scaled"]  # the BGR swap is recognised too
    assert "expects='caffe'" in f.message
    assert check(cifar_subset, normalized=z, expects="caffe").codes == []
    rgb = check(cifar_subset, normalized=cifar_subset.astype(np.float32) - CAFFE_BGR[::-1], expects="caffe")
    assert one(rgb, "expects-mismatch").numbers["reversed_channels"] is True


def test_expects_without_raw_data_still_judges_the_magnitude(cifar_subset):
    # nothing to compare the convention with: the magnitude check speaks instead of staying silent
    r = check(normalized=cifar_subset.astype(np.float32), expects="imagenet")
    assert one(r, "pixels-not-scaled").severity == "error" and "expects-mismatch" not in r


# ---- input-scale-mismatch --------------------------------------------------------------------------


def _scale_finding(report):
    return [f for f in report.findings if f.code == "input-scale-mismatch"]


def test_statistics_fitted_on_raw_pixels_against_unit_data_is_input_scale_mismatch_both_ways(mnist_small, tmp_path):
    import normlab

    raw, unit = mnist_small, mnist_small / 255.0
    fitted_raw, fitted_unit = normlab.Standardize().fit(raw), normlab.Standardize().fit(unit)
    fitted_raw.save(tmp_path / "raw.json")
    normlab.stats(raw).save(tmp_path / "raw.stats.json")
    for given in (fitted_raw, str(tmp_path / "raw.json"), str(tmp_path / "raw.stats.json")):
        f = one(check(unit, stats=given), "input-scale-mismatch")  # the ToTensor() habit
        assert (f.severity, f.subject) == ("error", "stats")
        assert f.numbers["fit_range"] == [0.0, 255.0] and f.numbers["data_max"] == 1.0 and f.numbers["data_float"]
        assert "fitted on uint8 data in [0, 255]" in f.message and "ToTensor()" in f.message
        assert "stats-outside-data" not in check(unit, stats=given)  # said once, by the precise finding
        assert _scale_finding(check(raw, stats=given)) == []  # the fitted scale: no finding
    f = one(check(raw, normalizer=fitted_unit), "input-scale-mismatch")  # [0, 1] statistics, raw uint8 data
    assert "raw pixels: divide by 255" in f.message and f.hint.startswith("x = x / 255")
    assert _scale_finding(check(unit, normalizer=fitted_unit)) == []
    # tutorial constants on the [0, 1] scale next to uint8 data are read as x / 255 (ToTensor), not a mismatch
    assert _scale_finding(check(raw, stats={"mean": [0.1307], "std": [0.3081], "min": [0.0], "max": [1.0]})) == []


def test_a_model_with_normlab_s_keras_layer_fed_unit_data_is_input_scale_mismatch(mnist_small, tmp_path):
    keras = pytest.importorskip("keras")
    import normlab
    from normlab.cli.main import main

    norm = normlab.Standardize(per="channel").fit(mnist_small)
    model = keras.Sequential([keras.Input((28, 28, 1)), norm.to_keras(), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    path = tmp_path / "model.keras"
    model.save(path)
    for m in (model, str(path)):
        f = one(check(mnist_small / 255.0, model=m), "input-scale-mismatch")
        assert f.subject == "model" and "The model's input layer Normalization" in f.message
        assert _scale_finding(check(mnist_small, model=m)) == []
    np.save(tmp_path / "unit.npy", (mnist_small[:500] / 255.0).astype(np.float32))
    assert main(["check", str(tmp_path / "unit.npy"), "--model", str(path)]) == 1
