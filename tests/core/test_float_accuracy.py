"""Float moments: exact to rounding at any magnitude, the same on both engines, O(block) extra memory.

References are exact: each float64 value is a dyadic rational, so a column's sum and sum of squares are
computed as Python ints (values scaled by a common power of two) and the variance as a ``Fraction``.
"""

from __future__ import annotations

import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest

from normlab.core.stats import StatsAccumulator

try:
    import numba  # noqa: F401

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

ENGINES = ["numpy", pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="no numba"))]


def exact_mean_std(col: np.ndarray) -> tuple[float, float]:
    """Correctly rounded mean and (ddof=0) std of a float64 column, from exact integer sums."""
    mant, expo = np.frexp(col.astype(np.float64))
    ints = (mant * 2.0**53).astype(np.int64).astype(object)
    e = expo.astype(np.int64) - 53
    e0 = int(e.min())
    scaled = [int(i) << int(s) for i, s in zip(ints, e - e0, strict=True)]
    n, s1 = len(scaled), sum(scaled)
    s2 = sum(v * v for v in scaled)
    mean = Fraction(s1, n) * Fraction(2) ** e0
    var = Fraction(n * s2 - s1 * s1, n * n) * Fraction(2) ** (2 * e0)
    return float(mean), math.sqrt(var.numerator / var.denominator) if var else 0.0


def wide_scale_table(n: int, seed: int = 0) -> np.ndarray:
    """The issue's table: 20 columns, means 0.3 .. 3e12, stds 0.01 .. 15 (log-spaced)."""
    rng = np.random.default_rng(seed)
    means = np.logspace(np.log10(0.3), np.log10(3e12), 20)
    stds = np.logspace(-2, np.log10(15), 20)
    return means + stds * rng.standard_normal((n, 20))


@pytest.fixture(scope="module")
def table():
    x = wide_scale_table(60_000)
    return x, [exact_mean_std(x[:, j]) for j in range(x.shape[1])]


@pytest.mark.parametrize("engine", ENGINES)
def test_wide_scale_table_std_relative_error_below_1e_12(table, engine):
    x, ref = table
    acc = StatsAccumulator(20, engine=engine).update(x.reshape(-1, 20, 1))
    std_ref = np.array([s for _, s in ref])
    mean_ref = np.array([m for m, _ in ref])
    assert np.max(np.abs(acc.std - std_ref) / std_ref) <= 1e-12
    assert np.max(np.abs(acc.mean - mean_ref) / np.abs(mean_ref)) <= 1e-15
    assert np.array_equal(acc.min, x.min(axis=0)) and np.array_equal(acc.max, x.max(axis=0))


def test_wide_scale_table_split_into_batches_stays_within_1e_12(table):
    x, ref = table
    acc = StatsAccumulator(20)
    for i0, i1 in ((0, 1), (1, 4097), (4097, 33333), (33333, 60_000)):
        acc.merge(StatsAccumulator(20).update(x[i0:i1].reshape(-1, 20, 1)))
    std_ref = np.array([s for _, s in ref])
    assert np.max(np.abs(acc.std - std_ref) / std_ref) <= 1e-12


@pytest.mark.parametrize("mean", [1e13, 1e15, 2.0**53])
@pytest.mark.parametrize("spread_ulps", [3, 1000, 2**20])
@pytest.mark.parametrize("engine", ENGINES)
def test_std_at_huge_means_is_exact_to_rounding(mean, spread_ulps, engine):
    rng = np.random.default_rng(int(mean) % 1000 + spread_ulps)
    ulp = np.spacing(mean)
    col = mean + ulp * np.round(rng.standard_normal(200_000) * spread_ulps)
    ref_mean, ref_std = exact_mean_std(col)
    acc = StatsAccumulator(1, engine=engine).update(col.reshape(-1, 1, 1))
    assert abs(acc.std[0] - ref_std) <= 1e-12 * ref_std
    assert abs(acc.mean[0] - ref_mean) <= ulp
    assert acc.std[0] > np.finfo(np.float64).eps * mean  # resolved: not called constant


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("per", [(8000, 3, 1), (64, 5, 700), (3, 2, 300_000), (40_000, 30, 1)])
def test_float_moments_are_bitwise_identical_on_both_engines(dtype, per):
    """The numba kernel adds the shifted values row after row, as NumPy's reduce does: the same bits."""
    if not HAVE_NUMBA:
        pytest.skip("no numba")
    rng = np.random.default_rng(3)
    x = (1e4 + rng.standard_normal(per) * 7).astype(dtype)
    a = StatsAccumulator(per[1], engine="numpy").update(x)
    b = StatsAccumulator(per[1], engine="numba").update(x)
    for name in ("min", "max", "mean", "var"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_moments_do_not_depend_on_the_thread_count(engine, dtype, monkeypatch):
    """Big updates split their chunks over the worker threads; each chunk's sums are the same whichever
    thread makes them, so 1, 2 or 3 threads give the same bits (the merge order is fixed by the chunks)."""
    from normlab.core import _engine

    rng = np.random.default_rng(8)
    x = (np.logspace(0, 12, 20) + rng.standard_normal((200_000, 20))).astype(dtype)  # 16-32 MB: threads
    got = []
    for threads in ("1", "2", "3"):
        monkeypatch.setenv("NORMLAB_THREADS", threads)
        monkeypatch.setattr(_engine, "_POOL", {})
        acc = StatsAccumulator(20, engine=engine).update(x.reshape(-1, 20, 1))
        got.append((acc.mean, acc.var, acc.min, acc.max))
    for other in got[1:]:
        assert all(np.array_equal(u, v) for u, v in zip(got[0], other, strict=True))


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_and_inf_are_found_in_any_chunk_of_a_threaded_update(engine):
    """NaN/inf are detected from the chunk's sums (the vectorized min/max never see them): one NaN or inf
    in any chunk of a big threaded call raises with nan="raise", and nan="ignore" skips exactly that NaN."""
    from normlab.errors import NonFiniteError

    rng = np.random.default_rng(9)
    x = (5.0 + rng.standard_normal((200_000, 20))).astype(np.float64)
    for row in (0, 1, 99_999, 199_999):
        for bad in (np.nan, np.inf, -np.inf):
            y = x.copy()
            y[row, 7] = bad
            with pytest.raises(NonFiniteError):
                StatsAccumulator(20, engine=engine, nan="raise").update(y.reshape(-1, 20, 1))
        y = x.copy()
        y[row, 7] = np.nan
        acc = StatsAccumulator(20, engine=engine, nan="ignore").update(y.reshape(-1, 20, 1))
        kept = np.delete(x[:, 7], row)
        assert acc.min[7] == kept.min() and acc.max[7] == kept.max()
        assert abs(acc.mean[7] - math.fsum(kept) / kept.size) <= 1e-15 * abs(acc.mean[7])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64_moments_match_exact_reference_per_channel(dtype):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((20_000, 3)) * [1.0, 50.0, 1e-3] + [0.5, -3e4, 7.0]).astype(dtype)
    acc = StatsAccumulator(3).update(x.reshape(-1, 3, 1))
    for j in range(3):
        mean, std = exact_mean_std(x[:, j])
        assert abs(acc.std[j] - std) <= 1e-12 * std
        assert abs(acc.mean[j] - mean) <= 2e-15 * max(abs(mean), std)


@pytest.mark.parametrize("engine", ENGINES)
def test_float_update_peak_extra_memory_is_o_block_not_o_data(engine):
    x = np.random.default_rng(1).standard_normal((500_000, 20))  # 80 MB
    StatsAccumulator(20, engine=engine).update(x[:1000].reshape(-1, 20, 1))  # compile, warm scratch
    tracemalloc.start()
    try:
        StatsAccumulator(20, engine=engine).update(x.reshape(-1, 20, 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # a few MB of per-block results and scratch, against 80 MB of data
