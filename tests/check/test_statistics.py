"""Statistics that are the wrong statistic: a variance as a std (or back), a std averaged per image."""

from __future__ import annotations

import numpy as np
import pytest

import normlab.check as check


def _one(report, code):
    found = report.by_code(code)
    assert len(found) == 1, report.to_text()
    return found[0]


# ---- std-as-variance ------------------------------------------------------------------------------


def test_a_variance_passed_as_std_is_recognised_against_the_data(mnist_small):
    f = _one(check(mnist_small, stats={"mean": 0.1307, "std": 0.0949}), "std-as-variance")
    assert (f.severity, f.subject, f.numbers["field"]) == ("error", "stats", "std")
    assert f.numbers["data_var"] == [pytest.approx(0.0946779, abs=1e-7)]
    assert f.message == (
        "The given std 0.0949 is the variance of the training data, 0.09468 on the scale of x / 255, not its "
        "std 0.3077: dividing by it makes the inputs' std 3.24 instead of 1."
    )


def test_a_std_passed_as_variance_is_recognised_against_the_data(mnist_small):
    f = _one(check(mnist_small, stats={"mean": 0.1307, "var": 0.3081}), "std-as-variance")
    assert f.numbers["field"] == "var" and f.numbers["input_std"] == [pytest.approx(0.55434, abs=1e-5)]
    assert f.message == (
        "The given var 0.3081 is the std of the training data, 0.3077 on the scale of x / 255, not its variance "
        "0.09468: the std used is sqrt(var) = 0.5551, so the inputs' std is 0.554 instead of 1."
    )


def test_imagenet_variance_passed_as_std_is_recognised_without_data(cifar_subset):
    var = (0.229**2, 0.224**2, 0.225**2)
    for data in (None, cifar_subset):
        f = _one(check(data, stats={"mean": (0.485, 0.456, 0.406), "std": var}), "std-as-variance")
        assert f.numbers["known"] == "ImageNet"
        assert f.message == (
            "The given std (0.05244, 0.05018, 0.05063) equals ImageNet's std squared: it is the variance. "
            "ImageNet's std is (0.229, 0.224, 0.225); dividing by the variance makes the inputs' std about "
            "(4.37, 4.46, 4.44) instead of 1."
        )


def test_the_right_variance_is_silent(mnist_small):
    assert len(check(mnist_small, stats={"mean": 0.1307, "var": 0.3081**2})) == 0


# ---- averaged-std ---------------------------------------------------------------------------------


def test_the_popular_cifar_std_is_the_average_of_per_image_stds(cifar_subset):
    stats = {"mean": (0.4914, 0.4822, 0.4465), "std": (0.2023, 0.1994, 0.2010)}
    f = _one(check(cifar_subset, stats=stats), "averaged-std")
    assert (f.severity, f.numbers["recipe"]) == ("warning", "per-image")
    assert f.numbers["averaged"] == pytest.approx([0.199658, 0.197786, 0.201222], abs=1e-6)
    assert f.numbers["pooled"] == pytest.approx([0.244725, 0.242230, 0.260519], abs=1e-6)
    assert f.message == (
        "The given std (0.2023, 0.1994, 0.201) is the average of per-image stds of the training data, "
        "(0.1997, 0.1978, 0.2012), not the pooled std over all its pixels, (0.2447, 0.2422, 0.2605): averaging "
        "per-image stds leaves out how much images differ from each other, so it is 19% too small and the "
        "inputs' std is (1.21, 1.21, 1.3) instead of 1."
    )


def test_the_popular_cifar_std_is_known_without_data():
    f = _one(check(stats={"mean": (0.4914, 0.4822, 0.4465), "std": (0.2023, 0.1994, 0.2010)}), "averaged-std")
    assert f.numbers["pooled"] == [0.2470, 0.2435, 0.2616]
    assert f.message == (
        "The given std (0.2023, 0.1994, 0.201) is the widely copied CIFAR-10 std that averages per-image stds; "
        "the pooled std of the CIFAR-10 training images is (0.247, 0.2435, 0.2616), so the inputs' std becomes "
        "about (1.22, 1.22, 1.3) instead of 1."
    )


def test_the_pooled_cifar_std_is_silent(cifar_subset):
    stats = {"mean": (0.4914, 0.4822, 0.4465), "std": (0.2470, 0.2435, 0.2616)}
    assert len(check(cifar_subset, stats=stats)) == 0


def test_an_mnist_std_averaged_per_image_is_recognised(mnist_small):
    per_image = float((mnist_small.reshape(len(mnist_small), -1) / 255.0).std(axis=1).mean())
    f = _one(check(mnist_small, stats={"mean": 0.1307, "std": per_image}), "averaged-std")
    assert f.numbers["too_small_percent"] == pytest.approx(2.2105, abs=1e-4)
    assert f.message == (
        "The given std 0.3009 is the average of per-image stds of the training data, 0.3009, not the pooled std "
        "over all its pixels, 0.3077: averaging per-image stds leaves out how much images differ from each "
        "other, so it is 2.2% too small and the inputs' std is 1.023 instead of 1."
    )


def test_an_mnist_std_averaged_per_batch_is_recognised_when_it_is_exact(mnist_small):
    x = mnist_small.reshape(len(mnist_small), -1) / 255.0
    per_batch = float(x[:1984].reshape(31, -1).std(axis=1).mean())  # batches of 64, drop_last
    f = _one(check(mnist_small, stats={"mean": 0.1307, "std": per_batch}), "averaged-std")
    assert f.numbers["recipe"] == "per-batch of 64 (drop_last)"
    assert f.message == (
        "The given std 0.307 is the average of per-batch stds over batches of 64 (drop_last) in file order of "
        "the training data, 0.307, not the pooled std over all its pixels, 0.3077: averaging per-batch stds "
        "leaves out how much batches differ from each other, so it is 0.24% too small and the inputs' std is "
        "1.0024 instead of 1."
    )
    # the same value rounded to 4 decimals, as a constant copied from elsewhere, is not evidence
    assert "averaged-std" not in check(mnist_small, stats={"mean": 0.1307, "std": round(per_batch, 4)})
    assert np.isfinite(per_batch)
