"""The statistics engine: exact integer moments, accurate float moments, any split, quantiles, NaN policy."""

from __future__ import annotations

import gzip
import os
import pickle
import tracemalloc
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from normlab.core import _chunks as C
from normlab.core import _engine as E
from normlab.core import _np_kernels as NK
from normlab.core import _quantiles as Q
from normlab.core import _scan as SC
from normlab.core.stats import NonFiniteError, StatsAccumulator
from normlab.errors import DataError, DataTypeError, LayoutError, NormlabError

DATA = Path(__file__).parents[2].parent / "shared" / "data"

try:
    import numba  # noqa: F401

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

ENGINES = [
    "numpy",
    pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba missing")),
]

INT_DTYPES = [
    np.bool_,
    np.uint8,
    np.int8,
    np.uint16,
    np.int16,
    np.uint32,
    np.int32,
    np.int64,
    np.uint64,
]
ALL_DTYPES = [*INT_DTYPES, np.float16, np.float32, np.float64]


def _random(dtype, shape, rng):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
        # keep int64 in the exact (32-bit) range here; the wide range has its own test
        if dtype.itemsize == 8:
            lo, hi = max(lo, -(2**31)), min(hi, 2**31 - 1)
        return rng.integers(lo, hi, shape, dtype=dtype, endpoint=True)
    return (rng.normal(3.0, 2.0, shape) * 7).astype(dtype)


def _reference(x3):
    """Per-entry float64 moments, exact for integers (Fractions) and two-pass float64 otherwise."""
    k = x3.shape[1]
    cols = np.moveaxis(x3, 1, 0).reshape(k, -1)
    if x3.dtype.kind in "biu":
        mean, var = [], []
        for col in cols:
            vals = [int(v) for v in col]
            n = len(vals)
            s1, s2 = sum(vals), sum(v * v for v in vals)
            mean.append(float(Fraction(s1, n)))
            var.append(float(Fraction(n * s2 - s1 * s1, n * n)))
        return (
            np.array(mean),
            np.array(var),
            cols.min(axis=1).astype(float),
            cols.max(axis=1).astype(float),
        )
    c = cols.astype(np.float64)
    return c.mean(axis=1), c.var(axis=1), c.min(axis=1), c.max(axis=1)


def _feed(x3, bounds, **kw):
    acc = StatsAccumulator(x3.shape[1], **kw)
    for lo, hi in pairwise(bounds):
        acc.update(x3[lo:hi])
    return acc


def _same(a: StatsAccumulator, b: StatsAccumulator) -> bool:
    return all(
        np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True)
        for name in ("count", "mean", "var", "std", "min", "max", "n_nan", "n_inf")
    )


# ------------------------------------------------------------------------------------------------ basics


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: np.dtype(d).name)
def test_statistics_match_numpy_float64_for_every_dtype(dtype, engine):
    rng = np.random.default_rng(7)
    x3 = _random(dtype, (301, 3, 5), rng)
    acc = StatsAccumulator(3, engine=engine).update(x3)
    mean, var, mn, mx = _reference(x3)
    assert acc.count.tolist() == [301 * 5] * 3
    assert acc.input_kind == np.dtype(dtype).kind
    if np.dtype(dtype).kind in "biu":
        # exact integers: correctly rounded, so equal to the Fraction reference
        assert np.array_equal(acc.mean, mean)
        assert np.array_equal(acc.var, var)
    else:
        np.testing.assert_allclose(acc.mean, mean, rtol=1e-14)
        np.testing.assert_allclose(acc.var, var, rtol=1e-12)
    assert np.array_equal(acc.min, mn) and np.array_equal(acc.max, mx)
    assert np.array_equal(acc.std, np.sqrt(acc.var))


def test_empty_accumulator_reports_nan_and_no_kind():
    acc = StatsAccumulator(2)
    assert acc.is_empty and acc.input_kind is None and acc.k == 2
    assert acc.count.tolist() == [0, 0]
    assert np.isnan(acc.mean).all() and np.isnan(acc.min).all()
    acc.update(np.zeros((0, 2, 3), np.uint8))
    assert acc.is_empty


def test_update_and_merge_return_self():
    acc = StatsAccumulator(1)
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1)
    assert acc.update(x) is acc
    assert acc.merge(StatsAccumulator(1).update(x)) is acc
    assert acc.count.tolist() == [20]


def test_mixed_integer_and_float_batches_combine():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 255, (400, 2, 3), dtype=np.uint8)
    b = rng.normal(100, 20, (300, 2, 3))
    acc = StatsAccumulator(2).update(a).update(b)
    both = np.concatenate([a.astype(np.float64), b])
    np.testing.assert_allclose(acc.mean, both.mean(axis=(0, 2)), rtol=1e-14)
    np.testing.assert_allclose(acc.var, both.var(axis=(0, 2)), rtol=1e-12)
    assert acc.input_kind == "f"
    signed = (
        StatsAccumulator(1)
        .update(np.array([[[200]]], np.uint8))
        .update(np.array([[[-5]]], np.int8))
    )
    assert signed.input_kind == "i" and signed.mean[0] == 97.5


# ------------------------------------------------------------------------------------------------ any split


@st.composite
def _splits(draw, max_rows=60):
    n = draw(st.integers(1, max_rows))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=6))) - {n})
    return n, [0, *cuts, n]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    split=_splits(),
    dtype=st.sampled_from([np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.bool_]),
    b=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    merge_tree=st.booleans(),
)
def test_integer_statistics_are_bit_identical_for_any_split(split, dtype, b, seed, merge_tree):
    n, bounds = split
    x3 = _random(dtype, (n, 3, b), np.random.default_rng(seed))
    whole = StatsAccumulator(3).update(x3)
    if merge_tree:  # one accumulator per piece, merged in reverse order
        parts = [StatsAccumulator(3).update(x3[lo:hi]) for lo, hi in pairwise(bounds)]
        pieces = parts[::-1][0]
        for p in parts[::-1][1:]:
            pieces.merge(p)
    else:
        pieces = _feed(x3, bounds)
    assert _same(whole, pieces)
    mean, var, _, _ = _reference(x3)
    assert np.array_equal(whole.mean, mean) and np.array_equal(whole.var, var)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    split=_splits(200), seed=st.integers(0, 2**16), offset=st.sampled_from([0.0, 1e6, -3e9, 1e13])
)
def test_float_statistics_agree_for_any_split(split, seed, offset):
    n, bounds = split
    rng = np.random.default_rng(seed)
    x3 = offset + rng.normal(0, 1, (n, 2, 3)) * np.array([1.0, 1e-3]).reshape(1, 2, 1)
    whole = StatsAccumulator(2).update(x3)
    parts = [StatsAccumulator(2).update(x3[lo:hi]) for lo, hi in pairwise(bounds)]
    merged = parts[-1]
    for p in parts[-2::-1]:
        merged.merge(p)
    streamed = _feed(x3, bounds)
    for acc in (merged, streamed):
        assert np.array_equal(acc.count, whole.count)
        # the mean agrees to a few ulps of its magnitude or 1e-14 of the spread (means near 0)
        np.testing.assert_allclose(
            acc.mean, whole.mean, rtol=1e-15, atol=1e-14 * float(whole.std.max())
        )
        np.testing.assert_allclose(acc.var, whole.var, rtol=1e-12, atol=1e-300)
        assert np.array_equal(acc.min, whole.min) and np.array_equal(acc.max, whole.max)


def test_chunks_cover_every_value_once():
    rng = np.random.default_rng(0)
    for shape, cb in [
        ((1000, 3, 1), 4096),
        ((7, 5, 3000), 1000),
        ((5, 4000, 2), 512),
        ((3, 2, 9), 64),
    ]:
        x3 = rng.integers(0, 1 << 30, shape).astype(np.int64)
        total = np.zeros(shape[1], np.int64)
        for X, m, b in C.chunks(x3, cb):
            total += C.fold_sum(X.sum(axis=0), m, shape[1], b)
        assert np.array_equal(total, x3.sum(axis=(0, 2)))
        # non-contiguous input is chunked the same way
        y = np.asfortranarray(x3)
        assert (
            sum(C.fold_sum(X.sum(axis=0), m, shape[1], b) for X, m, b in C.chunks(y, cb)).tolist()
            == total.tolist()
        )


# ------------------------------------------------------------------------------------------------ engines


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba missing")
@pytest.mark.parametrize(
    "dtype",
    [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.float32, np.float64],
    ids=lambda d: np.dtype(d).name,
)
def test_numba_and_numpy_engines_give_identical_results(dtype, monkeypatch):
    """Identical results: integer data, float moments (both engines add rows in the same order), min, max
    and quantiles."""
    rng = np.random.default_rng(11)
    x3 = _random(dtype, (5000, 3, 7), rng)
    floats = np.dtype(dtype).kind == "f"
    if floats:
        x3 = (x3 + np.array([0.0, 1e13, -2e5], dtype).reshape(1, 3, 1)).astype(dtype)
    a = StatsAccumulator(3, engine="numpy", quantiles=True).update(x3)
    b = StatsAccumulator(3, engine="numba", quantiles=True).update(x3)
    if floats:
        for name in ("min", "max", "mean", "var"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    else:
        assert _same(a, b)
    assert np.array_equal(a.quantile([0.1, 0.5, 0.99]), b.quantile([0.1, 0.5, 0.99]))
    hist = StatsAccumulator(3, engine="numba", histogram=True).update(x3)
    assert np.array_equal(hist.mean, b.mean) and np.array_equal(hist.var, b.var)
    # sketched quantiles too: values reach the sketch in fixed blocks, whatever the engine's chunking
    monkeypatch.setattr(Q, "_EXACT_QUANTILE_BUDGET", 4096)
    sa = StatsAccumulator(3, engine="numpy", quantiles=True, histogram=False).update(x3)
    sb = StatsAccumulator(3, engine="numba", quantiles=True, histogram=False).update(x3)
    assert sa.quantile_rank_error > 0
    assert np.array_equal(sa.quantile([0.1, 0.5, 0.99]), sb.quantile([0.1, 0.5, 0.99]))
    assert sa.quantile_rank_error == sb.quantile_rank_error


@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int16, np.float32, np.float64], ids=lambda d: np.dtype(d).name
)
def test_worker_threads_do_not_change_results(dtype, monkeypatch):
    rng = np.random.default_rng(13)
    n = (5 << 20) // (3 * np.dtype(dtype).itemsize)
    x3 = _random(dtype, (n, 3, 1), rng)
    if np.dtype(dtype).kind == "f":
        x3 = (1e6 + x3).astype(dtype)
    out = []
    for threads in ("1", "3"):
        monkeypatch.setenv("NORMLAB_THREADS", threads)
        out.append(StatsAccumulator(3, engine="numpy", quantiles=True).update(x3))
    assert x3.nbytes >= SC._PARALLEL_BYTES
    assert _same(out[0], out[1])
    assert np.array_equal(out[0].quantile([0.2, 0.7]), out[1].quantile([0.2, 0.7]))


def test_without_numba_everything_runs_on_numpy(monkeypatch):
    monkeypatch.setitem(E._NUMBA, "ok", False)  # as if numba were not installed
    monkeypatch.delenv("NORMLAB_ENGINE", raising=False)
    assert E.resolve_engine("auto") == "numpy"
    x3 = np.arange(60, dtype=np.uint8).reshape(10, 3, 2)
    assert np.array_equal(StatsAccumulator(3).update(x3).mean, x3.mean(axis=(0, 2)))
    with pytest.raises(ValueError, match=r"pip install 'normlab\[fast\]'"):
        StatsAccumulator(3, engine="numba")


def test_statistics_modules_import_only_downward():
    # _engine/_chunks -> _np_kernels/_numba -> _scan/_quantiles -> stats, and the transform takes its pool
    # from _engine: no cycle, and no module reaches up, not even inside a function
    import ast

    import normlab.core as core

    rank = {"_engine": 0, "_chunks": 0, "_np_kernels": 1, "_numba": 2, "_scan": 3, "_quantiles": 3,
            "stats": 4, "_kernels": 3}  # fmt: skip
    for name, level in rank.items():
        tree = ast.parse((Path(core.__file__).parent / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("normlab"):
                targets = [node.module.rsplit(".", 1)[-1]]
                if node.module == "normlab.core":
                    targets = [alias.name for alias in node.names]
                for target in targets:
                    if target in rank:
                        assert rank[target] < level, f"{name} imports {target}"
                    else:
                        assert node.module == "normlab.errors", f"{name} imports {node.module}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("normlab") for a in node.names), name


def test_small_updates_never_import_numba():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from normlab.core.stats import StatsAccumulator\n"
        "from normlab.core._kernels import affine_transform\n"
        "StatsAccumulator(3, quantiles=True).update(np.ones((100, 3, 1), np.uint8))\n"
        "affine_transform(np.ones((10, 3), np.uint8), np.zeros(3), np.ones(3))\n"
        "print('numba' in sys.modules)\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "NORMLAB_ENGINE"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == "False"


def test_environment_variable_forces_numpy(monkeypatch):
    monkeypatch.setenv("NORMLAB_ENGINE", "numpy")
    assert E.resolve_engine("auto") == "numpy"
    assert E.resolve_engine("numba") == "numpy"
    StatsAccumulator(1, engine="numba")  # accepted: the environment wins
    monkeypatch.setenv("NORMLAB_ENGINE", "numba")
    assert E.resolve_engine("auto", 10) == ("numba" if HAVE_NUMBA else "numpy")
    monkeypatch.delenv("NORMLAB_ENGINE")
    if HAVE_NUMBA:  # auto: small updates stay on NumPy (no compilation), big ones go to numba
        assert E.resolve_engine("auto", 1000) == "numpy"
        assert E.resolve_engine("auto", 1 << 30) == "numba"


# ------------------------------------------------------------------------------------------------ accuracy


def test_wide_scale_column_keeps_full_relative_precision():
    rng = np.random.default_rng(5)
    x = 1e13 + rng.normal(0.0, 1.0, 400_000)
    # x - 1e13 is exact, so this is the true std of the stored values
    true_std = float(np.std(x - 1e13))
    acc = StatsAccumulator(1)
    for part in np.array_split(x, 9):
        acc.update(part.reshape(-1, 1, 1))
    assert abs(acc.std[0] - true_std) / true_std <= 1e-12
    assert abs(acc.mean[0] - (1e13 + float(np.mean(x - 1e13)))) <= 2e-3  # one ulp of 1e13
    # what the accumulator protects against: float32 accumulation is off by orders of magnitude
    naive32 = float(x.astype(np.float32).std(dtype=np.float32))
    assert abs(naive32 - true_std) / true_std > 0.5


def test_huge_integer_sums_stay_exact():
    # 2**31 - 1 squared times many values overflows int64 many times over: totals are Python ints
    x3 = np.full((200_000, 1, 1), 2**31 - 1, np.int32)
    x3[::2] = -(2**31)
    acc = StatsAccumulator(1).update(x3)
    n = x3.size
    s1 = (n // 2) * (2**31 - 1) + (n // 2) * -(2**31)
    s2 = (n // 2) * (2**31 - 1) ** 2 + (n // 2) * 2**62
    assert acc.mean[0] == float(Fraction(s1, n))
    assert acc.var[0] == float(Fraction(n * s2 - s1 * s1, n * n))


def test_int64_outside_32_bit_range_uses_the_float_path_accurately():
    rng = np.random.default_rng(1)
    x3 = rng.integers(-(2**60), 2**60, (5000, 2, 1), dtype=np.int64)
    acc = StatsAccumulator(2).update(x3)
    ref = x3.astype(object).sum(axis=(0, 2)) / x3.shape[0]
    np.testing.assert_allclose(acc.mean, ref.astype(float), rtol=1e-12)
    assert acc.input_kind == "i"
    small = StatsAccumulator(1).update(np.arange(-5, 5, dtype=np.int64).reshape(-1, 1, 1))
    assert small._moments.mode == "int" and small.var[0] == 8.25


# ------------------------------------------------------------------------------------------------ quantiles


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "dtype",
    [np.uint8, np.int8, np.bool_, np.uint16, np.int16, np.int32, np.float32, np.float64],
    ids=lambda d: np.dtype(d).name,
)
def test_exact_quantiles_equal_np_quantile(dtype, engine):
    rng = np.random.default_rng(2)
    x3 = _random(dtype, (777, 2, 3), rng)
    qs = [0.0, 0.01, 0.25, 1 / 3, 0.5, 0.75, 0.999, 1.0]
    acc = StatsAccumulator(2, quantiles=True, engine=engine)
    for part in np.array_split(x3, 4):
        acc.update(part)
    cols = np.moveaxis(x3, 1, 0).reshape(2, -1).astype(np.float64)
    assert np.array_equal(acc.quantile(qs), np.quantile(cols, qs, axis=1))
    assert np.array_equal(acc.quantile(0.3), np.quantile(cols, 0.3, axis=1))
    assert acc.quantile(0.3).shape == (2,) and acc.quantile(qs).shape == (len(qs), 2)
    assert acc.quantile_rank_error == 0.0
    if np.dtype(dtype).itemsize <= 2 and np.dtype(dtype).kind in "biu":
        assert acc.histogram() is not None


def test_histogram_is_kept_on_request_and_counts_every_value():
    x3 = np.array([[[0, 1, 1]], [[255, 1, 7]]], np.uint8).transpose(0, 2, 1)  # (2, 3, 1)
    acc = StatsAccumulator(3, histogram=True).update(x3)
    values, counts = acc.histogram()
    assert values[0] == 0 and counts.shape == (3, 256)
    assert counts[0, 0] == 1 and counts[0, 255] == 1 and counts[1, 1] == 2 and counts[2, 7] == 1
    assert StatsAccumulator(3).update(x3).histogram() is None


def test_quantiles_stay_exact_across_mixed_dtypes_and_histogram_widening():
    rng = np.random.default_rng(12)
    u8 = rng.integers(0, 256, (500, 2, 3), dtype=np.uint8)
    i8 = rng.integers(-128, 128, (300, 2, 3), dtype=np.int8)
    f64 = rng.normal(50, 30, (200, 2, 3))
    qs = [0.0, 0.1, 0.5, 0.77, 1.0]
    for combo in ((u8, i8), (i8, u8), (u8, f64), (f64, u8), (u8, i8, f64)):
        acc = StatsAccumulator(2, quantiles=True)
        for x in combo:
            acc.update(x)
        cols = np.moveaxis(np.concatenate([x.astype(np.float64) for x in combo]), 1, 0).reshape(
            2, -1
        )
        assert np.array_equal(acc.quantile(qs), np.quantile(cols, qs, axis=1))
        assert acc.quantile_rank_error == 0.0
    hist_only = StatsAccumulator(2, histogram=True).update(u8).update(i8)
    values, counts = hist_only.histogram()
    assert (values[0], values[-1], int(counts.sum())) == (-128, 255, u8.size + i8.size)
    # a histogram that no longer covers the data is dropped
    assert hist_only.update(f64).histogram() is None


def _rank_error(acc, x3, qs):
    est = acc.quantile(qs)
    worst = 0.0
    for e in range(x3.shape[1]):
        s = np.sort(x3[:, e, :].ravel())
        below = np.searchsorted(s, est[:, e], "left")
        upto = np.searchsorted(s, est[:, e], "right")
        pos = np.asarray(qs) * (s.size - 1)
        worst = max(
            worst, float((np.maximum(0, np.maximum(below - pos, pos - upto)) / s.size).max())
        )
    return worst


def test_quantile_sketch_rank_error_stays_under_its_bound(monkeypatch):
    monkeypatch.setattr(Q, "_EXACT_QUANTILE_BUDGET", 1 << 18)  # force the sketch on ~10**6 values
    rng = np.random.default_rng(4)
    n = 1_200_000
    x = np.concatenate([rng.standard_t(3, n // 2), rng.exponential(5.0, n - n // 2) + 3.0])
    x3 = rng.permutation(x).reshape(-1, 2, 1)
    qs = np.linspace(0, 1, 101)
    acc = StatsAccumulator(2, quantiles=True)
    for part in np.array_split(x3, 23):
        acc.update(part)
    bound = acc.quantile_rank_error
    assert 0 < bound < 2e-3
    assert _rank_error(acc, x3, qs) <= bound
    # merge: one sketch per part, combined
    parts = [StatsAccumulator(2, quantiles=True).update(p) for p in np.array_split(x3, 6)]
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    assert 0 < merged.quantile_rank_error < 2e-3
    assert _rank_error(merged, x3, qs) <= merged.quantile_rank_error
    # deterministic: the same data in the same order gives the same sketch
    again = StatsAccumulator(2, quantiles=True)
    for part in np.array_split(x3, 23):
        again.update(part)
    assert np.array_equal(again.quantile(qs), acc.quantile(qs))


@pytest.mark.parametrize("engine", ENGINES)
def test_integer_quantiles_keep_every_value_after_switching_to_sketches(engine, monkeypatch):
    # one update whose values outgrow the exact store part-way: the chunks after the switch count too
    monkeypatch.setattr(Q, "_EXACT_QUANTILE_BUDGET", 1 << 18)
    x3 = np.arange(600_000, dtype=np.int32).reshape(-1, 1, 1)  # sorted: the last chunks hold the top
    acc = StatsAccumulator(1, quantiles=True, engine=engine).update(x3)
    assert acc.quantile_rank_error > 0
    assert acc.quantile(1.0)[0] >= x3.max() - acc.quantile_rank_error * x3.size
    qs = np.linspace(0, 1, 21)
    assert _rank_error(acc, x3, qs) <= acc.quantile_rank_error


def test_sketch_from_histogram_adds_no_error():
    sk = Q.Sketch(64)
    values = np.arange(10.0)
    counts = np.array([5, 0, 300, 7, 1, 1, 0, 1000, 3, 2])
    sk.add_counts(values, counts)
    assert sk.n == counts.sum() and sk.err <= (sk.n * 0.05)
    data = np.repeat(values, counts)
    est = sk.query(np.linspace(0, 1, 11))
    pos = np.linspace(0, 1, 11) * (data.size - 1)
    below, upto = np.searchsorted(data, est, "left"), np.searchsorted(data, est, "right")
    assert (below <= pos + sk.err).all() and (upto >= pos - sk.err).all()


def test_quantile_needs_quantiles_true_and_valid_q():
    acc = StatsAccumulator(1).update(np.ones((3, 1, 1)))
    with pytest.raises(NormlabError, match="Rebuild it with quantiles=True"):
        acc.quantile(0.5)
    acc = StatsAccumulator(1, quantiles=True).update(np.ones((3, 1, 1)))
    with pytest.raises(ValueError, match=r"expected values in \[0, 1\]"):
        acc.quantile(1.5)
    with pytest.raises(ValueError, match="Build every part with quantiles=True"):
        acc.merge(StatsAccumulator(1).update(np.ones((3, 1, 1))))


# ------------------------------------------------------------------------------------------------ NaN / inf


def test_nan_raises_with_counts_first_index_and_fix():
    x3 = np.ones((10, 2, 3))
    x3[4, 1, 2] = np.nan
    x3[7, 0, 0] = np.nan
    x3[8, 1, 1] = np.inf
    acc = StatsAccumulator(2).update(np.ones((5, 2, 3)))
    before = (acc.count, acc.mean)
    with pytest.raises(NonFiniteError, match="Replace infinite values") as info:
        acc.update(x3)
    err = info.value
    assert (err.n_nan, err.n_inf, err.first_index) == (2, 1, (4, 1, 2))
    assert isinstance(err, DataError) and isinstance(err, ValueError)
    # the failed update left the accumulator unchanged
    assert np.array_equal(acc.count, before[0]) and np.array_equal(acc.mean, before[1])
    x3[8, 1, 1] = 0.0
    with pytest.raises(NonFiniteError, match="pass nan='ignore'"):
        acc.update(x3)
    copy = pickle.loads(pickle.dumps(err))
    assert copy.first_index == (4, 1, 2) and copy.n_nan == 2


def test_nan_ignore_leaves_nan_out_per_entry():
    rng = np.random.default_rng(8)
    x3 = rng.normal(5, 2, (2000, 3, 4))
    x3[rng.random(x3.shape) < 0.1] = np.nan
    x3[:, 2, :] = np.nan  # an entry with no values at all
    acc = StatsAccumulator(3, nan="ignore", quantiles=True)
    for part in np.array_split(x3, 3):
        acc.update(part)
    cols = np.moveaxis(x3, 1, 0).reshape(3, -1)
    assert acc.count.tolist() == (~np.isnan(cols)).sum(axis=1).tolist()
    assert acc.n_nan.tolist() == np.isnan(cols).sum(axis=1).tolist()
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        ref_mean, ref_var = np.nanmean(cols, axis=1), np.nanvar(cols, axis=1)
    np.testing.assert_allclose(acc.mean[:2], ref_mean[:2], rtol=1e-13)
    np.testing.assert_allclose(acc.var[:2], ref_var[:2], rtol=1e-12)
    assert np.isnan(acc.mean[2]) and np.isnan(acc.min[2])
    assert np.array_equal(acc.min[:2], np.nanmin(cols[:2], axis=1))
    ok = ~np.isnan(cols[0])
    assert np.array_equal(acc.quantile(0.5)[0], np.quantile(cols[0][ok], 0.5))
    x3[0, 0, 0] = -np.inf
    with pytest.raises(NonFiniteError, match="nan='ignore' only skips NaN") as info:
        StatsAccumulator(3, nan="ignore").update(x3)
    assert info.value.n_inf == 1 and info.value.first_index == (0, 0, 0)


# ------------------------------------------------------------------------------------------------ input errors


def test_bad_shapes_dtypes_and_options_name_the_fix():
    acc = StatsAccumulator(3)
    with pytest.raises(LayoutError, match="expected a 3-D"):
        acc.update(np.zeros((4, 3)))
    with pytest.raises(LayoutError, match="k=3"):
        acc.update(np.zeros((4, 2, 1)))
    with pytest.raises(DataTypeError, match="astype"):
        acc.update(np.zeros((4, 3, 1), complex))
    with pytest.raises(DataTypeError):
        acc.update(np.array([[["a"]] * 3]))
    with pytest.raises(LayoutError, match="same number of entries"):
        acc.merge(StatsAccumulator(2).update(np.zeros((1, 2, 1))))
    for kwargs in ({"nan": "skip"}, {"histogram": "yes"}, {"engine": "cuda"}):
        with pytest.raises(ValueError, match="expected"):
            StatsAccumulator(3, **kwargs)
    with pytest.raises(ValueError, match="positive integer"):
        StatsAccumulator(0)


# ------------------------------------------------------------------------------------------------ plumbing


def test_pickle_round_trip_keeps_everything():
    rng = np.random.default_rng(9)
    acc = StatsAccumulator(2, quantiles=True).update(
        rng.integers(0, 255, (300, 2, 2), dtype=np.uint8)
    )
    facc = StatsAccumulator(2, quantiles=True).update(rng.normal(size=(300, 2, 2)))
    for a in (acc, facc):
        b = pickle.loads(pickle.dumps(a))
        assert _same(a, b) and np.array_equal(a.quantile([0.2, 0.9]), b.quantile([0.2, 0.9]))
        b.update(rng.integers(0, 9, (3, 2, 2), dtype=np.uint8))  # keeps working
    assert "StatsAccumulator(k=2" in repr(acc)


def test_merge_leaves_its_argument_unchanged():
    rng = np.random.default_rng(21)
    ints = StatsAccumulator(2, quantiles=True).update(np.arange(20, dtype=np.uint8).reshape(-1, 2, 1))
    before = pickle.loads(pickle.dumps(ints))
    floats = StatsAccumulator(2, quantiles=True).update(rng.normal(size=(10, 2, 1)))
    floats.merge(ints)  # an integer accumulator meets a float one: converted on a copy
    assert _same(ints, before) and np.array_equal(ints.quantile(0.5), before.quantile(0.5))
    assert np.array_equal(ints.mean, [9.0, 10.0])


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.float64, np.float32], ids=lambda d: np.dtype(d).name
)
def test_memory_is_bounded_by_the_chunk_not_the_data(dtype, engine):
    x3 = np.ones((4_000_000 // np.dtype(dtype).itemsize, 3, 1), dtype)  # 12 MB
    StatsAccumulator(3, engine=engine).update(x3[:1000])  # compile / warm up outside the trace
    tracemalloc.start()
    try:
        StatsAccumulator(3, engine=engine).update(x3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MB for {x3.nbytes / 2**20:.0f} MB of data"


@pytest.mark.skipif(
    not (DATA / "mnist" / "train-images-idx3-ubyte.gz").exists(), reason="shared data missing"
)
def test_mnist_train_pixels_give_the_published_mean_and_std():
    raw = gzip.decompress((DATA / "mnist" / "train-images-idx3-ubyte.gz").read_bytes())
    assert int.from_bytes(raw[:4], "big") == 2051
    n, h, w = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    x = np.frombuffer(raw, np.uint8, offset=16).reshape(n, h, w, 1)
    acc = StatsAccumulator(1)
    for part in np.array_split(x, 7):  # streamed, like a loader would
        acc.update(part.reshape(-1, 1, 1))
    assert acc.count[0] == 60000 * 28 * 28
    assert round(acc.mean[0] / 255, 6) == 0.130660
    assert round(acc.std[0] / 255, 6) == 0.308108


@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.bool_], ids=lambda d: np.dtype(d).name)
def test_min_and_max_stay_exact_when_saturated_entries_skip_their_passes(
    dtype, threads, monkeypatch
):
    monkeypatch.setenv("NORMLAB_THREADS", threads)
    info = (0, 1) if dtype is np.bool_ else (np.iinfo(dtype).min, np.iinfo(dtype).max)
    rng = np.random.default_rng(17)
    x3 = rng.integers(info[0], info[1] + 1, (3 << 20, 3, 1)).astype(dtype)  # 9 MB: worker threads
    # entry 1 meets its lower bound only in the very last rows: until then no pass may be skipped
    x3[:, 1] = np.maximum(x3[:, 1], info[0] + 1) if dtype is not np.bool_ else True
    x3[-5:, 1] = info[0]
    calls = []
    real = NK.int_moments
    monkeypatch.setattr(
        NK, "int_moments", lambda X, minmax=True: calls.append(minmax) or real(X, minmax)
    )
    acc = StatsAccumulator(3, engine="numpy").update(x3)
    assert np.array_equal(acc.mean, _exact(x3)[0]) and np.array_equal(acc.var, _exact(x3)[1])
    ref = x3.astype(np.int64)
    assert np.array_equal(acc.min, ref.min(axis=(0, 2))) and np.array_equal(
        acc.max, ref.max(axis=(0, 2))
    )
    assert all(calls)  # entry 1 was never saturated before the end
    # once every entry has met both bounds, the remaining chunks skip min/max and nothing changes
    x3[0, :] = info[0]
    x3[1, :] = info[1]
    calls.clear()
    acc = StatsAccumulator(3, engine="numpy").update(x3)
    assert not all(calls) and calls[0]
    assert np.array_equal(acc.min, np.full(3, info[0])) and np.array_equal(
        acc.max, np.full(3, info[1])
    )
    assert np.array_equal(acc.mean, _exact(x3)[0]) and np.array_equal(acc.var, _exact(x3)[1])


def _exact(x3):
    """Correctly rounded per-entry mean and variance of integer data, from exact int64 sums."""
    x = np.moveaxis(x3, 1, 0).reshape(x3.shape[1], -1).astype(np.int64)
    n = x.shape[1]
    s1, s2 = [int(v) for v in x.sum(axis=1)], [int(v) for v in (x * x).sum(axis=1)]
    mean = [float(Fraction(a, n)) for a in s1]
    var = [float(Fraction(n * b - a * a, n * n)) for a, b in zip(s1, s2, strict=True)]
    return np.array(mean), np.array(var)


def test_a_thread_limit_inside_another_never_raises_it():
    """A worker's reads run each of its threads under thread_limit(1); a kernel's own limit (the worker's
    thread count) must not lift that again."""
    from normlab.core import _engine as E

    with E.thread_limit(1):
        with E.thread_limit(4):
            assert E.n_workers() == 1
        assert E.n_workers() == 1
    with E.thread_limit(3):
        with E.thread_limit(2):
            assert E.n_workers() == 2
        assert E.n_workers() == 3


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_serial_and_parallel_kernels_are_cached_apart():
    """numba names a cache entry after the function, not its options: a kernel's serial and parallel
    compilations must have entries of their own, or a process loads whichever was compiled first for both
    (a parallel kernel then runs on one thread)."""
    from normlab.core import _numba as N

    ns = vars(N._k())
    pairs = [(name, name + "_par") for name in ns if not name.endswith("_par")]
    assert pairs and all(par in ns for _, par in pairs)
    for serial, par in pairs:
        assert ns[serial].targetoptions.get("parallel") is not True and ns[par].targetoptions["parallel"]
        assert ns[serial]._cache._impl._filename_base != ns[par]._cache._impl._filename_base, serial
