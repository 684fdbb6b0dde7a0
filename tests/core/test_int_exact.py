"""Integer moments are exact for every integer dtype, at every magnitude (int64/uint64 extremes included).

Each claim is checked against exact Python-int/``Fraction`` references: the mean and variance are the
correctly rounded float64 values of the true ones, whatever the split and the engine.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from normlab.core import _np_kernels as NK
from normlab.core.stats import StatsAccumulator

try:
    import numba  # noqa: F401

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

ENGINES = ["numpy", *(["numba"] if HAVE_NUMBA else [])]
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


def _exact(values: list[int]) -> tuple[float, float]:
    """Correctly rounded mean and variance (ddof=0) of Python ints."""
    n, s1, s2 = len(values), sum(values), sum(v * v for v in values)
    return float(Fraction(s1, n)), float(Fraction(n * s2 - s1 * s1, n * n))


def _values(dtype):
    """Values of ``dtype`` with its extremes and their neighbours much more likely than uniform."""
    info = np.iinfo(dtype)
    lo, hi = int(info.min), int(info.max)
    edges = st.sampled_from([lo, lo + 1, hi, hi - 1, hi - 2, 0, (lo + hi) // 2, 2**31, -(2**31) - 1])
    near = st.integers(0, 1000).map(lambda d: hi - d) | st.integers(0, 1000).map(lambda d: lo + d)
    some = (edges | near).filter(lambda v: lo <= v <= hi) | st.integers(lo, hi)
    return st.lists(some, min_size=1, max_size=60)


@pytest.mark.parametrize("dtype", INT_DTYPES, ids=lambda d: np.dtype(d).name)
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_int_moments_equal_fraction_reference_for_every_dtype_split_and_engine(dtype, data):
    values = data.draw(_values(dtype))
    cut = data.draw(st.integers(0, len(values)))
    engine = data.draw(st.sampled_from(ENGINES))
    x = np.array(values, dtype=dtype).reshape(-1, 1, 1)
    whole = StatsAccumulator(1, engine=engine).update(x)
    split = StatsAccumulator(1, engine="numpy").update(x[:cut]).update(x[cut:])
    mean, var = _exact(values)
    assert whole.mean[0] == mean and whole.var[0] == var
    assert split.mean[0] == mean and split.var[0] == var
    assert whole.count[0] == len(values)
    assert whole.min[0] == float(min(values)) and whole.max[0] == float(max(values))


def test_int64_near_max_has_variance_exactly_two_ninths():
    x = np.array([2**63 - 1, 2**63 - 1, 2**63 - 2], np.int64).reshape(-1, 1, 1)
    acc = StatsAccumulator(1).update(x)
    assert acc.var[0] == float(Fraction(2, 9))
    assert acc.mean[0] == float(Fraction(3 * 2**63 - 4, 3))


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
@pytest.mark.parametrize("engine", ENGINES)
def test_std_of_two_to_the_62_plus_arange_is_exact(dtype, engine):
    values = [2**62 + i for i in range(1000)]
    x = np.array(values, dtype=dtype).reshape(-1, 1, 1)
    acc = StatsAccumulator(1, engine=engine).update(x)
    assert acc.var[0] == float(Fraction(1000**2 - 1, 12))  # variance of 1000 consecutive integers
    assert acc.std[0] == pytest.approx(288.6749902572095, rel=1e-15)


def test_int64_two_to_the_53_plus_arange_is_not_constant():
    x = (2**53 + np.arange(1000, dtype=np.int64)).reshape(-1, 1, 1)
    acc = StatsAccumulator(1).update(x)
    assert acc.var[0] == _exact([2**53 + i for i in range(1000)])[1] > 0


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_wide_int_moments_per_entry_bit_identical_for_any_split(dtype):
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    x = rng.integers(int(info.min), int(info.max), size=(3000, 3, 5), dtype=dtype, endpoint=True)
    whole = StatsAccumulator(3).update(x)
    parts = StatsAccumulator(3)
    for i0, i1 in ((0, 1), (1, 777), (777, 3000)):
        parts.merge(StatsAccumulator(3).update(x[i0:i1]))
    for e in range(3):
        mean, var = _exact([int(v) for v in x[:, e, :].ravel()])
        assert whole.mean[e] == parts.mean[e] == mean
        assert whole.var[e] == parts.var[e] == var


def test_wide_int_limb_sums_reconstruct_exact_sums_of_values_and_squares():
    x = np.array([[2**64 - 1, 0], [2**63, 12345], [1, 2**64 - 2]], np.uint64)
    ls, cs, mn, mx = NK.wide_int_sums(x)
    for j in range(2):
        col = [int(v) for v in x[:, j]]
        assert sum(int(ls[i, j]) << (16 * i) for i in range(4)) == sum(col)
        assert sum(int(cs[s, j]) << (16 * s) for s in range(7)) == sum(v * v for v in col)
        assert int(mn[j]) == min(col) and int(mx[j]) == max(col)
