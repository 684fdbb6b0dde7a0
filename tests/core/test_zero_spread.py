"""A feature is constant only when its statistics say so: exactly equal values, or a spread below what the
arithmetic that produced the statistics resolves. Never because the mean is large."""

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

import normlab
from normlab.core._formulas import ACCUMULATED, TWO_PASS
from normlab.errors import ZeroVarianceWarning


def _exact_std(values) -> float:
    fr = [Fraction(int(v)) if isinstance(v, (int, np.integer)) else Fraction(float(v)) for v in values]
    mean = sum(fr) / len(fr)
    return math.sqrt(sum((v - mean) ** 2 for v in fr) / len(fr))


def _fit_quietly(est, x):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ZeroVarianceWarning)
        return est.fit(x)


@pytest.mark.parametrize(
    ("offset", "std"),
    [(1e13, 100.0), (1e13, 0.05), (1e15, 1.0), (-1e15, 3.0), (2.0**53, 288.0), (3e12, 0.01), (1e100, 1e88)],
)
def test_large_mean_with_real_spread_is_scaled_not_called_constant(offset, std):
    rng = np.random.default_rng(0)
    x = (offset + rng.normal(0, std, size=(100_000, 1))).astype(np.float64)
    norm = _fit_quietly(normlab.Standardize(), x)
    want = float(np.std(x - np.float64(offset)))  # the deviations are exact here: a float64 reference
    assert norm.scale_[0] == norm.std_[0]  # divided by the std, not by 1
    assert abs(norm.std_[0] - want) <= 1e-9 * want
    z = norm.transform(x)
    assert abs(float(z.std()) - 1.0) < 1e-3


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_integer_spread_at_any_magnitude_is_scaled(dtype):
    base = 2**53 if dtype == np.int64 else 2**63
    x = (np.arange(1000, dtype=dtype) + dtype(base)).reshape(-1, 1)
    norm = _fit_quietly(normlab.Standardize(), x)
    exact = _exact_std([int(v) for v in x.ravel()])
    assert norm.scale_[0] == norm.std_[0] and norm.scale_[0] > 1
    assert abs(norm.std_[0] - exact) <= 1e-12 * exact


@pytest.mark.parametrize(
    "column",
    [np.full(500, 1e13), np.full(500, 0.1), np.full(500, -7.25e-300), np.full(500, 2**62, dtype=np.int64),
     np.zeros(500, np.uint8), np.full(500, 3.0, np.float32)],
    ids=["1e13", "0.1", "tiny", "int64-2**62", "uint8-zero", "float32"],
)
def test_equal_values_are_constant_in_every_normalizer_that_divides_by_a_spread(column):
    x = np.stack([column, np.arange(500) % 7], axis=1)
    for est in (normlab.Standardize(), normlab.Robust(), normlab.MinMax()):
        with pytest.warns(ZeroVarianceWarning, match=r"1 features with zero .* \(at 0\)"):
            est.fit(x)
        assert est.scale_[0] == 1.0
    _fit_quietly(normlab.Center(), x)  # Center divides by 1 anyway: nothing to warn about
    _fit_quietly(normlab.Scale(by=255), x)


@pytest.mark.parametrize("n", [3, 784, 50_000])
@pytest.mark.parametrize("value", [0.1, 1 / 3, 1e13 * math.pi, -2.5e-17])
def test_per_sample_constant_rows_are_constant_in_numpy_torch_and_keras(value, n):
    """Per-sample statistics (a plain two-pass) leave constant rows a std of a few ulps: still constant."""
    torch = pytest.importorskip("torch")
    x = np.full((2, n), value)
    x[1] = value + np.arange(n) * abs(value) * 1e-2 / n  # a real spread (float32-visible: Keras casts)
    norm = normlab.Standardize(per="sample").fit(x)
    z = norm.transform(x)
    # (x - mean) / 1: a few ulps of the value; dividing by its rounding noise would give O(1)
    assert np.abs(z[0]).max() <= 8 * math.ulp(value)
    assert abs(float(z[1].std()) - 1) < 1e-3
    zt = norm.to_torch()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(zt, z, rtol=1e-5, atol=max(1e-6, 8 * math.ulp(value)))
    if n <= 784:
        zk = np.asarray(norm.to_keras()(x))
        np.testing.assert_allclose(zk, z, rtol=1e-4, atol=max(1e-4, 8 * math.ulp(value)))  # Keras: float32 input


def test_the_resolutions_are_what_the_accumulators_achieve():
    """The constants the rule reads are met with margin by the arithmetic they describe."""
    rng = np.random.default_rng(5)
    worst_acc = worst_two_pass = 0.0
    for mean in (1e13, 1e15, 2.0**53, -3e12):
        ulp = math.ulp(mean)
        x = mean + np.round(rng.normal(0, 4, 20_000)) * ulp  # a spread of a few ulps
        got = normlab.Standardize().fit(x.reshape(-1, 1)).std_[0]
        exact = _exact_std(x)
        worst_acc = max(worst_acc, abs(got - exact) / (np.finfo(float).eps * abs(mean)))
        const = np.full(20_000, mean + 3 * ulp)
        worst_two_pass = max(worst_two_pass, float(np.std(const)) / (np.finfo(float).eps * abs(mean)))
    assert worst_acc * np.finfo(float).eps < ACCUMULATED / 100
    assert worst_two_pass * np.finfo(float).eps < TWO_PASS / 4
