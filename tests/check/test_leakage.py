"""Statistics fitted on the test split, and test data normalized differently from the training data."""

from __future__ import annotations

import numpy as np
import pytest

import normlab
import normlab.check as check


def _one(report, code):
    found = report.by_code(code)
    assert len(found) == 1, report.to_text()
    return found[0]


# ---- stats-from-test-split ------------------------------------------------------------------------


def test_a_normalizer_fitted_on_the_mnist_test_split_is_recognised(mnist_small, mnist_test):
    f = _one(check(mnist_small, test=mnist_test, normalizer=normlab.Standardize().fit(mnist_test)),
             "stats-from-test-split")
    assert (f.severity, f.subject, f.numbers["matched"]) == ("error", "stats", "test")
    assert f.numbers["distance"]["test"] == 0
    assert f.numbers["distance"]["train"] == pytest.approx(0.009043, abs=1e-6)
    assert f.message == (
        "The normalizer's statistics, mean 33.79, std 79.17, match the test data, mean 33.79, std 79.17, "
        "rather than the training data, mean 33.2, std 78.46: they are 0 training stds from the test "
        "statistics and 0.009 from the training split's. They were computed on the test split, which leaks "
        "the test set into training and makes the test score optimistic."
    )


def test_test_statistics_are_read_back_from_normalized_data(mnist_small, mnist_test):
    mean, std = mnist_test.mean() / 255, mnist_test.std() / 255
    f = _one(check(mnist_small, test=mnist_test, normalized=(mnist_small / 255 - mean) / std),
             "stats-from-test-split")
    assert (f.subject, f.numbers["matched"], f.numbers["family"]) == ("normalized", "test", "standardize")
    assert f.numbers["used"] == [[pytest.approx(33.7912245)], [pytest.approx(79.1724632)]]


def test_statistics_of_train_plus_test_are_a_warning(mnist_small, mnist_test):
    pooled = np.concatenate([mnist_small, mnist_test]).astype(np.float64)
    f = _one(check(mnist_small, test=mnist_test, normalized=(mnist_small - pooled.mean()) / pooled.std()),
             "stats-from-test-split")
    assert (f.severity, f.numbers["matched"]) == ("warning", "train+test")
    assert f.message == (
        "The statistics the normalized data was made with, mean 33.69, std 79.05, match the training and test "
        "data together, mean 33.69, std 79.05, rather than the training data, mean 33.2, std 78.46: they are 0 "
        "training stds from the pooled statistics and 0.0075 from the training split's. They were computed on "
        "train + test, which leaks the test set into training and makes the test score optimistic."
    )


def test_a_scaler_fitted_on_the_breast_cancer_test_split_is_recognised(breast_cancer):
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    x_train, x_test = breast_cancer
    scaler = preprocessing.StandardScaler().fit(x_test)
    f = _one(check(x_train, test=x_test, normalizer=scaler), "stats-from-test-split")
    assert f.numbers["matched"] == "test"
    assert f.numbers["distance"]["train"] == pytest.approx(0.3334, abs=1e-4)
    assert f.message.startswith("The StandardScaler's statistics, mean (13.99, 19.51, 91.12, 638.7, 0.09609, "
                                "0.1049, ...), std (3.341, 4.539, 23.15, 314.7, 0.0144, 0.05673, ...), match "
                                "the test data")


def test_a_minmax_fitted_on_the_test_split_is_recognised(breast_cancer):
    x_train, x_test = (x.to_numpy() for x in breast_cancer)
    z = normlab.MinMax().fit(x_test).transform(x_train)
    f = _one(check(x_train, test=x_test, normalized=z), "stats-from-test-split")
    assert (f.numbers["family"], f.numbers["matched"]) == ("minmax", "test")


def test_the_usual_mnist_constants_are_not_taken_for_test_statistics(mnist_small, mnist_test):
    assert len(check(mnist_small, test=mnist_test, stats={"mean": [0.1307], "std": [0.3081]})) == 0


# ---- train-test-mismatch --------------------------------------------------------------------------


def test_a_test_set_refitted_on_itself_is_a_mismatch(breast_cancer):
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    x_train, x_test = (x.to_numpy() for x in breast_cancer)
    train_scaler = preprocessing.StandardScaler().fit(x_train)
    z_test = preprocessing.StandardScaler().fit_transform(x_test)  # the mistake: fit_transform on test
    f = _one(check(x_train, normalized=train_scaler.transform(x_train), test=x_test, test_normalized=z_test),
             "train-test-mismatch")
    assert (f.severity, f.subject, f.numbers["test_matches"]) == ("error", "test_normalized", "test")
    assert f.numbers["distance"] == pytest.approx(0.3334, abs=1e-4)
    assert f.numbers["shift"] == pytest.approx(0.10504, abs=1e-5)
    assert f.message == (
        "The test data was normalized with other statistics (center (13.99, 19.51, 91.12, 638.7, 0.09609, "
        "0.1049, ...), scale (3.341, 4.539, 23.15, 314.7, 0.0144, 0.05673, ...)) than the training data's "
        "(center (14.19, 19.19, 92.34, 661.9, 0.09647, 0.1041, ...), scale (3.594, 4.185, 24.74, 366.1, "
        "0.0139, 0.05097, ...)), and they are the test data's own statistics (as scaler.fit_transform(x_test) "
        "computes instead of scaler.transform(x_test)). The same raw value then means different inputs in "
        "training and test: a test value equal to the training center is fed as 0.105 instead of 0."
    )


def test_a_self_standardized_test_set_is_noticed_without_the_raw_test_data(breast_cancer):
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    x_train, x_test = (x.to_numpy() for x in breast_cancer)
    z_train = preprocessing.StandardScaler().fit_transform(x_train)
    z_test = preprocessing.StandardScaler().fit_transform(x_test)
    f = _one(check(x_train, normalized=z_train, test_normalized=z_test), "train-test-mismatch")
    assert f.severity == "warning" and f.numbers["samples"] == 171
    assert f.message.endswith(
        "and std (1, 1, 1, 1, 1, 1, ...) exactly, per feature, over 171 samples: it was standardized with its own "
        "statistics. A held-out set normalized with the training statistics is off by the difference between the "
        "splits (of order 1/sqrt(n) at least), so train and test inputs are not normalized the same way."
    )
    assert max(abs(v) for v in f.numbers["mean"]) < 1e-14


def test_train_per_channel_and_test_per_image_is_a_mismatch(mnist_small, mnist_test):
    norm = normlab.Standardize().fit(mnist_small)
    test = mnist_test[:500]
    f = _one(check(mnist_small, normalized=norm.transform(mnist_small), test=test,
                   test_normalized=normlab.Standardize(per="sample").fit_transform(test)), "train-test-mismatch")
    assert (f.numbers["train_mode"], f.numbers["test_mode"]) == ("global", "sample")
    assert f.message == (
        "The training data was normalized with per='global' but the test data with per='sample': the model "
        "sees test inputs on another scale than it was trained on."
    )
