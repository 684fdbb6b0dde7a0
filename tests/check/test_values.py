"""Value checks on real data: NaN/inf, magnitude, spread, constants, double scaling (messages pinned)."""

from __future__ import annotations

import numpy as np
import pytest

import normlab.check as check


def _one(report, code):
    found = report.by_code(code)
    assert len(found) == 1, report.to_text()
    return found[0]


# ---- nan-or-inf -----------------------------------------------------------------------------------


def test_nan_or_inf_counts_and_locates_the_0_over_0_of_constant_pixels(mnist_small):
    # (x - mean) / std per pixel, computed by hand: MNIST's border pixels are always 0, so 0 / 0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (mnist_small - mnist_small.mean(axis=0)) / mnist_small.std(axis=0)
    f = _one(check(mnist_small, normalized=z), "nan-or-inf")
    assert (f.severity, f.subject) == ("error", "normalized")
    assert f.numbers["nan"] == 290_000 and f.numbers["inf"] == 0
    assert f.numbers["positions"] == 145 and f.numbers["constant_positions"] == 145
    assert f.numbers["first"][0] == [0, 0, 0, 0]
    assert f.message == (
        "The normalized data holds 290,000 NaN and 0 infinite values (18.5% of 1,568,000) in 2,000 of 2,000 "
        "samples and 145 of 784 pixel positions; the first at (0, 0, 0, 0), (0, 0, 1, 0), (0, 0, 2, 0), "
        "(0, 0, 3, 0), (0, 0, 4, 0). Every one of these pixel positions is constant in the training data "
        "(145 pixel positions are): (x - mean) / std divided by a std of 0 there (0 / 0 = NaN)."
    )
    assert 'normlab.Standardize(per="feature")' in f.hint


def test_nan_or_inf_reports_nan_in_a_raw_table(breast_cancer):
    x = breast_cancer[0].to_numpy().copy()
    x[[3, 50], 7] = np.nan
    x[10, 2] = np.inf
    f = _one(check(x), "nan-or-inf")
    assert (f.numbers["nan"], f.numbers["inf"], f.numbers["samples"], f.numbers["positions"]) == (2, 1, 3, 2)
    assert f.numbers["first"] == [[3, 7], [10, 2], [50, 7]]


# ---- pixels-not-scaled / features-not-scaled ------------------------------------------------------


def test_pixels_not_scaled_is_an_error_when_0_255_pixels_are_what_the_model_is_fed(mnist_small):
    f = _one(check(mnist_small, normalized=mnist_small.astype(np.float32)), "pixels-not-scaled")
    assert (f.severity, f.subject) == ("error", "normalized")
    assert f.numbers["rms"] == [pytest.approx(85.196, abs=1e-3)] and f.numbers["max"] == 255
    assert f.message == (
        "The normalized data is not scaled: values in [0, 255] (float32) with mean 33.2 and std 78.46, a root "
        "mean square of 85.2, about 85 times the order-1 range networks train well in. It makes the first "
        "layer's activations about 85x too large."
    )


def test_pixels_not_scaled_is_a_warning_on_raw_data_alone(mnist_small):
    f = _one(check(mnist_small), "pixels-not-scaled")
    assert (f.severity, f.subject, f.numbers["how"]) == ("warning", "train", "as-given")
    assert f.message.startswith("The training data is not scaled: values in [0, 255] (uint8)")
    assert "If it is fed to a model as it is" in f.message


def test_pixels_not_scaled_also_catches_images_scaled_far_below_1(mnist_small):
    f = _one(check(mnist_small, normalized=(mnist_small / 255.0 / 20).astype(np.float32)), "pixels-not-scaled")
    assert f.numbers["rms"] == [pytest.approx(0.016705, abs=1e-6)]
    assert f.message == (
        "The normalized data is scaled far below order 1: values in [0, 0.05] with mean 0.006509 and std "
        "0.01538, a root mean square of 0.01671, about 60 times too small for the order-1 range networks train "
        "well in."
    )


def test_features_not_scaled_names_the_largest_feature(breast_cancer):
    f = _one(check(breast_cancer[0]), "features-not-scaled")
    assert f.numbers["features_over"] == 9 and f.numbers["worst"] == "'worst area'"
    assert f.numbers["worst_rms"] == pytest.approx(1075.27, abs=0.01)
    assert f.message == (
        "9 of 30 features of the training data have a root mean square above 10, the largest 'worst area' "
        "(mean 894.2, std 597.1, root mean square 1075); networks train well on inputs of order 1. If it is "
        "fed to a model as it is, they make the first layer's activations up to 1,075x too large."
    )


# ---- scale-disparity ------------------------------------------------------------------------------


def test_scale_disparity_reports_ratio_and_worst_pair_on_breast_cancer(breast_cancer):
    f = _one(check(breast_cancer[0]), "scale-disparity")
    assert f.severity == "warning"
    assert f.numbers["ratio"] == pytest.approx(226664.2, rel=1e-6)
    assert (f.numbers["largest"], f.numbers["smallest"]) == ("'worst area'", "'fractal dimension error'")
    assert f.message == (
        "The features of the training data have spreads that differ by a factor of 2.267e+5 (5.4 orders of "
        "magnitude): 'worst area' has std 597.1, 'fractal dimension error' has std 0.002634; 14 of 30 features "
        "are more than 10x away from the median std 0.07183. With one learning rate for all inputs, the narrow "
        "features barely learn."
    )


def test_scale_disparity_also_catches_a_row_wise_normalized_table(breast_cancer, keras_normalize):
    x = breast_cancer[0].to_numpy()
    f = _one(check(x, normalized=keras_normalize(x, 1)), "scale-disparity")
    assert f.subject == "normalized" and f.numbers["ratio"] == pytest.approx(9417.19, rel=1e-5)


# ---- constant-feature -----------------------------------------------------------------------------


def test_constant_feature_on_mnist_pixels_shows_what_keras_does_with_test_values(mnist_train, mnist_test):
    f = _one(check(mnist_train, test=mnist_test, per="feature"), "constant-feature")
    assert f.severity == "warning"
    assert (f.numbers["constant"], f.numbers["test_varying"]) == (67, 2)
    assert (f.numbers["test_worst"], f.numbers["test_value"]) == ("pixel (5, 1, 0)", 24.0)
    assert f.numbers["keras_value"] == pytest.approx(2.4e8)
    assert f.message == (
        "67 of 784 pixel positions are constant in the training data (60,000 samples; zero variance by "
        "scikit-learn's bound): pixel (0, 0, 0), pixel (0, 1, 0), pixel (0, 2, 0), pixel (0, 3, 0), pixel "
        "(0, 4, 0), pixel (0, 5, 0), ... (value 0). Standardizing divides them by their std of 0: Keras' "
        "Normalization divides by max(std, 1e-7), so a test value v becomes (v - 0) x 1e7; torchvision's "
        "Normalize raises ValueError; (x - mean) / std in NumPy gives inf, or NaN for 0 / 0; scikit-learn's "
        "StandardScaler and normlab's Standardize divide by 1. In the test data 2 of them vary: pixel (5, 1, 0) "
        "reaches 24, which Keras would turn into 2.4e+8."
    )


def test_constant_feature_names_the_constant_columns_of_digits():
    datasets = pytest.importorskip("sklearn.datasets")
    x = datasets.load_digits(as_frame=True).data
    f = _one(check(x), "constant-feature")
    assert f.numbers["entries"] == ["'pixel_0_0'", "'pixel_4_0'", "'pixel_4_7'"]
    assert "keep = x_train.std(axis=0) > 0" in f.hint


# ---- double-scaling -------------------------------------------------------------------------------


def test_double_scaling_catches_pixels_divided_by_255_twice(mnist_small):
    f = _one(check(mnist_small, normalized=mnist_small / 255.0 / 255.0), "double-scaling")
    assert f.severity == "error" and f.numbers["factor"] == pytest.approx(65025)
    assert f.message == (
        "The normalized data lies in [0, 0.003922], at most 1/255 = 0.003922: the images were divided by 255 "
        "twice (the training data, max 255, was divided by 65,025 in total), so the model sees inputs 255 "
        "times smaller than intended."
    )


def test_double_scaling_catches_float_data_already_in_0_1_divided_again(mnist_small):
    x01 = (mnist_small / 255.0).astype(np.float32)
    f = _one(check(x01, normalized=x01 / 255), "double-scaling")
    assert "the training data was already in [0, 1], max 1, and was divided by 255 again" in f.message


def test_double_scaling_catches_data_standardized_twice(mnist_small):
    once = (mnist_small / 255.0 - 0.1307) / 0.3081
    f = _one(check(mnist_small, normalized=(once - 0.1307) / 0.3081), "double-scaling")
    assert f.numbers["std"] == [pytest.approx(3.2415, abs=1e-4)]
    assert f.numbers["undone_std"] == [pytest.approx(1, abs=0.01)]
    assert f.message == (
        "The normalized data has mean -0.4297 and std 3.241, yet undoing one (x - 0.1302) / 0.3077 (the "
        "training data's statistics on the [0, 1] scale) leaves mean -0.002 and std 0.997: the data was "
        "standardized twice, so the model sees inputs with std 3.241 instead of 1."
    )


def test_double_scaling_catches_stored_standardized_data_normalized_again_with_the_constants(mnist_small):
    once = ((mnist_small / 255.0 - 0.1307) / 0.3081).astype(np.float32)
    f = _one(check(once, stats={"mean": [0.1307], "std": [0.3081]}), "double-scaling")
    assert f.subject == "stats" and "(x - 0.1307) / 0.3081 (the given statistics)" in f.message
