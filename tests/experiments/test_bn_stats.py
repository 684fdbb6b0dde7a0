"""moving_stats_error: an input BatchNormalization's moving averages against exact statistics."""

from __future__ import annotations

import os

import numpy as np
import pytest

from normlab.experiments import CompareError
from normlab.experiments.bn_stats import moving_stats_error

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")


def _model(moving_mean, moving_var):
    """Input BatchNorm over 3 features, then class 0 when the normalized feature 0 is positive."""
    bn = keras.layers.BatchNormalization(center=False, scale=False)
    head = keras.layers.Dense(2, use_bias=False)
    inner = keras.Sequential([keras.Input((3,)), head])
    model = keras.Sequential([keras.Input((3,)), bn, inner])
    bn.moving_mean.assign(np.asarray(moving_mean, np.float32))
    bn.moving_variance.assign(np.asarray(moving_var, np.float32))
    head.kernel.assign(np.array([[1.0, -1.0], [0.0, 0.0], [0.0, 0.0]], np.float32))
    return model, bn


def test_errors_and_accuracy_delta_on_known_moving_averages_ignore_the_constant_feature():
    # exact: mean (1, 2, 5), std (2, 3, 0); moving: mean off by 0.05 std and 0 std, std off by 0 and 10 %
    model, bn = _model([1.1, 2.0, 123.0], [4.0, 3.3**2, 7.0])
    x = np.array([[1.05, 2, 5], [1.08, 2, 5], [0.5, 2, 5], [3.0, 2, 5]], np.float32)
    y = np.array([0, 0, 1, 0])  # the class under the exact mean: x0 > 1
    e = moving_stats_error(model, mean=[1.0, 2.0, 5.0], std=[2.0, 3.0, 0.0], x=x, y=y)
    assert e.n_stats == 3 and e.n_constant == 1  # feature 2 (std 0) is left out, however far off it is
    assert e.mean_shift_max == pytest.approx(0.05, rel=1e-5) and e.mean_shift_median == pytest.approx(0.025, rel=1e-5)
    assert e.std_rel_max == pytest.approx(0.1, rel=1e-5) and e.std_rel_median == pytest.approx(0.05, rel=1e-5)
    # the moving mean 1.1 puts x0 = 1.05 and 1.08 below the centre: two of four wrong; exact: all right
    assert e.acc_moving == 0.5 and e.acc_exact == 1.0 and e.acc_delta == 0.5
    np.testing.assert_allclose(bn.moving_mean.numpy(), [1.1, 2.0, 123.0], rtol=1e-6)  # restored
    np.testing.assert_allclose(bn.moving_variance.numpy(), [4.0, 3.3**2, 7.0], rtol=1e-6)


def test_exact_moving_averages_give_zero_error_and_no_accuracy_change():
    model, _ = _model([1.0, 2.0, 5.0], [4.0, 9.0, 1.0])
    x = np.array([[1.05, 2, 5], [0.5, 2, 5]], np.float32)
    e = moving_stats_error(model, [1.0, 2.0, 5.0], [2.0, 3.0, 1.0], x, np.array([0, 1]))
    assert (e.mean_shift_max, e.std_rel_max, e.n_constant, e.acc_delta) == (0.0, 0.0, 0, 0.0)


def test_statistics_of_another_shape_or_no_batchnorm_are_refused_with_the_fix():
    model, _ = _model([0, 0, 0], [1, 1, 1])
    with pytest.raises(CompareError, match=r"expected that shape.*per='channel'"):
        moving_stats_error(model, mean=np.zeros(4), std=np.ones(4))
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(CompareError, match="no BatchNormalization layer; expected one as its first layer"):
        moving_stats_error(plain, [0, 0, 0], [1, 1, 1])
