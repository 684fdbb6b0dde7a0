"""Normalized data compared with the raw data: the axis it was normalized along, and uint8 wrap-around."""

from __future__ import annotations

import numpy as np
import pytest

import normlab
import normlab.check as check


def _one(report, code):
    found = report.by_code(code)
    assert len(found) == 1, report.to_text()
    return found[0]


# ---- wrong-axis -----------------------------------------------------------------------------------


def test_wrong_axis_identifies_keras_normalize_axis_1_on_an_mnist_stack(mnist_small, keras_normalize):
    # the tutorial: x_train = tf.keras.utils.normalize(x_train, axis=1) on the (n, 28, 28) arrays of
    # keras.datasets.mnist, next to the raw images as normlab.data reads them, (n, 28, 28, 1)
    z = keras_normalize(mnist_small[..., 0], 1)
    f = _one(check(mnist_small, normalized=z), "wrong-axis")
    assert (f.severity, f.subject) == ("error", "normalized")
    assert (f.numbers["nature"], f.numbers["axis"], f.numbers["kept_axes"], f.numbers["reduced_axes"]) == (
        "unit-l2", 1, ["n", "w"], ["h"])
    assert f.numbers["rank_broken"] == f.numbers["rank_checked"] == 637
    assert f.numbers["example"] == {"sample": 0, "channel": None, "x_bright": 255.0,
                                    "z_bright": pytest.approx(0.716323, abs=1e-6), "x_dim": 136.0,
                                    "z_dim": pytest.approx(0.927060, abs=1e-6)}
    assert f.message == (
        "Each image column of the normalized data has unit L2 norm: this is keras.utils.normalize(x, axis=1) "
        "on an (n, h, w) stack, which normalizes along h with one statistic per (n, w) instead of per image or "
        "per channel. It does not preserve the order of pixel intensities inside an image: in 637 of 637 "
        "images checked (100%) a darker pixel became brighter than a lighter one; e.g. in image 0 a pixel of "
        "136 became 0.9271 while a pixel of 255 became 0.7163. Use per='sample' (one statistic per image) or "
        "per='channel'."
    )
    assert f.hint.splitlines()[0].startswith("x = x[..., None]")


def test_wrong_axis_names_image_rows_of_rgb_images(cifar_subset, keras_normalize):
    f = _one(check(cifar_subset, normalized=keras_normalize(cifar_subset.astype(np.float64), 2)), "wrong-axis")
    assert f.numbers["call"] == "keras.utils.normalize(x, axis=2)"
    assert f.message.startswith("Each image row of the normalized data has unit L2 norm")


def test_wrong_axis_warns_when_table_rows_are_scaled_to_unit_norm(breast_cancer, keras_normalize):
    x = breast_cancer[0].to_numpy()
    f = _one(check(x, normalized=keras_normalize(x, 1)), "wrong-axis")
    assert (f.severity, f.numbers["mode"], f.numbers["nature"]) == ("warning", "sample", "unit-l2")
    assert f.numbers["feature_std_ratio"] == pytest.approx(226664.2, rel=1e-6)
    assert f.message == (
        "Each sample (row) of the normalized data has unit L2 norm: this is keras.utils.normalize(x, axis=1) "
        "or scikit-learn's Normalizer on an (n, f) table. Every feature of a row is divided by the same "
        "number, which mixes features measured in different units (their stds differ 2.267e+5x), so each "
        "row's values are dominated by its largest feature. Use per='feature': one statistic per feature."
    )


def test_per_pixel_standardization_of_images_is_reported_as_info(mnist_small):
    std = mnist_small.std(axis=0)
    z = (mnist_small - mnist_small.mean(axis=0)) / np.where(std == 0, 1, std)
    f = _one(check(mnist_small, normalized=z), "wrong-axis")
    assert (f.severity, f.numbers["mode"]) == ("info", "feature")
    assert f.message == (
        "Every pixel position of the normalized data was normalized with its own statistics (per='feature', like "
        "scikit-learn's StandardScaler on flattened images). It does not preserve the order of pixel intensities "
        "inside an image: in 637 of 637 images checked (100%) a darker pixel became brighter than a lighter one; "
        "e.g. in image 0 a pixel of 253 became 10.5 while a pixel of 255 became 3.418. Near-constant border "
        "pixels are amplified too. Fine for an MLP on aligned images; for a CNN, per='channel' keeps each image's "
        "contrast."
    )


def test_wrong_axis_flags_normalized_rows_that_do_not_belong_to_the_raw_rows(mnist_small):
    shuffled = (mnist_small / 255.0)[np.random.default_rng(0).permutation(len(mnist_small))]
    f = _one(check(mnist_small, normalized=shuffled), "wrong-axis")
    assert f.severity == "warning" and f.numbers["mode"] is None
    assert f.message == (
        "No per-channel, per-pixel or per-image scaling explains the normalized data in terms of the raw data "
        "(best fit residual 80.5% of its spread). It does not preserve the order of pixel intensities inside an "
        "image: in 636 of 637 images checked (99.8%) a darker pixel became brighter than a lighter one; e.g. in "
        "image 0 a pixel of 80 became 0.9961 while a pixel of 255 became 0. Check that the normalized samples are "
        "the raw samples in the same order, and the axis it was normalized along."
    )


@pytest.mark.parametrize("per", ["channel", "sample", "sample-channel"])
def test_wrong_axis_is_silent_for_every_per_image_or_per_channel_mode(cifar_subset, per):
    z = normlab.Standardize(per=per).fit_transform(cifar_subset)
    assert "wrong-axis" not in check(cifar_subset, normalized=z)


def test_wrong_axis_is_silent_for_channels_first_data(cifar_subset):
    x = np.ascontiguousarray(cifar_subset.transpose(0, 3, 1, 2))
    z = normlab.Standardize(per="channel", channel_axis=1).fit_transform(x)
    assert len(check(x, normalized=z, channel_axis=1)) == 0


def test_wrong_axis_is_silent_for_a_monotone_nonlinear_map(mnist_small):
    assert "wrong-axis" not in check(mnist_small, normalized=np.sqrt(mnist_small / 255.0))


# ---- uint8-wraparound -----------------------------------------------------------------------------


def test_uint8_wraparound_recovers_the_subtracted_mean_and_the_wrapped_share(mnist_small):
    z = mnist_small - np.uint8(33)  # "centering" in uint8: 0 becomes 223
    f = _one(check(mnist_small, normalized=z), "uint8-wraparound")
    assert f.severity == "error"
    assert (f.numbers["shift"], f.numbers["modulus"], f.numbers["dtype"]) == ([33], 256, "uint8")
    assert f.numbers["wrapped_share"] == pytest.approx(float(np.mean(mnist_small < 33)))
    assert f.numbers["zero_becomes"] == pytest.approx(223)
    assert f.message == (
        "The normalized data has dtype uint8 and equals (x - 33) mod 256 of the raw data: the subtraction was "
        "done in uint8, which wraps around, so the 83.1% of values below 33 became the largest values instead "
        "of negative ones (a raw 0 became 223)."
    )


def test_uint8_wraparound_is_found_after_conversion_to_float(mnist_small):
    z = (mnist_small - np.uint8(33)) / np.float32(255)
    f = _one(check(mnist_small, normalized=z), "uint8-wraparound")
    assert f.numbers["dtype"] == "float32"
    assert "equals ((x - 33) mod 256) / 255 of the raw data" in f.message
    assert "wrong-axis" not in check(mnist_small, normalized=z)


def test_uint8_wraparound_flags_normalized_data_left_in_uint8(mnist_small):
    f = _one(check(mnist_small, normalized=mnist_small // 2), "uint8-wraparound")
    assert f.message == (
        "The normalized data still has dtype uint8 (values 0..127): normalized values are fractions and "
        "centered values are negative, which uint8 cannot hold; arithmetic on uint8 arrays wraps around "
        "modulo 256."
    )
