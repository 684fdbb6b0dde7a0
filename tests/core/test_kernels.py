"""affine_transform: (x - shift) * inv_scale, fast, exact on request, without touching x."""

from __future__ import annotations

import numpy as np
import pytest

from normlab.core import _kernels
from normlab.core._kernels import affine_transform
from normlab.errors import DataTypeError, LayoutError

try:
    import numba  # noqa: F401

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover
    HAVE_NUMBA = False

ENGINES = [
    "numpy",
    pytest.param("auto", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba missing")),
]


@pytest.fixture(params=ENGINES)
def engine(request, monkeypatch):
    # "auto" with NORMLAB_ENGINE=numba: the compiled kernels even for these small arrays
    monkeypatch.setenv("NORMLAB_ENGINE", "numpy" if request.param == "numpy" else "numba")
    return request.param


def _reference(x, shift, inv, dtype):
    """float64 arithmetic, subtract first, one rounding."""
    return ((x.astype(np.float64) - shift) * inv).astype(dtype)


def _params(rng, shape):
    return rng.normal(100, 30, shape), 1 / rng.uniform(10, 80, shape)


LAYOUTS = [
    ((40, 9, 11, 3), (1, 1, 1, 3)),  # channels-last, per channel
    ((40, 3, 9, 11), (1, 3, 1, 1)),  # channels-first, per channel
    ((300, 7), (1, 7)),  # per feature
    ((50, 6, 5), (1, 6, 5)),  # per feature of images
    ((30, 4, 4), ()),  # global
    ((1, 5), (1, 5)),  # a single sample
]


@pytest.mark.parametrize("shape,pshape", LAYOUTS)
@pytest.mark.parametrize(
    "dtype",
    [np.uint8, np.int8, np.bool_, np.uint16, np.int16, np.int32, np.int64, np.float32, np.float64],
    ids=lambda d: np.dtype(d).name,
)
def test_exact_mode_equals_float64_then_one_rounding(shape, pshape, dtype, engine):
    rng = np.random.default_rng(0)
    x = (
        rng.normal(50, 60, shape) if np.dtype(dtype).kind == "f" else rng.integers(-200, 300, shape)
    ).astype(dtype)
    shift, inv = _params(rng, pshape)
    before = x.copy()
    y = affine_transform(x, shift, inv, exact=True)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.array_equal(y, _reference(x, shift, inv, np.float32))
    assert np.array_equal(x, before)  # x untouched
    y64 = affine_transform(x, shift, inv, dtype=np.float64)
    assert np.array_equal(y64, _reference(x, shift, inv, np.float64))


@pytest.mark.parametrize("shape,pshape", LAYOUTS)
@pytest.mark.parametrize(
    "dtype", [np.uint8, np.int8, np.uint16, np.int16], ids=lambda d: np.dtype(d).name
)
def test_fast_mode_for_small_integers_is_within_a_few_float32_ulps(shape, pshape, dtype, engine):
    rng = np.random.default_rng(1)
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    shift, inv = _params(rng, pshape)
    y = affine_transform(x, shift, inv)
    ref = (x.astype(np.float64) - shift) * inv
    # magnitudes involved in x * a + b
    scale = np.abs(x.astype(np.float64) * inv) + np.abs(shift * inv)
    assert (np.abs(y - ref) <= 4 * np.finfo(np.float32).eps * scale + 1e-30).all()


def test_out_buffer_is_reused_and_returned(engine):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    shift, inv = _params(rng, (1, 1, 1, 3))
    out = np.full(x.shape, np.nan, np.float32)
    y = affine_transform(x, shift, inv, out=out, exact=True)
    assert y is out and np.array_equal(out, _reference(x, shift, inv, np.float32))
    out64 = np.empty(x.shape, np.float64)
    assert affine_transform(x, shift, inv, out=out64) is out64  # out's dtype wins
    assert np.array_equal(out64, _reference(x, shift, inv, np.float64))


def test_float_input_subtracts_first_at_wide_scale(engine):
    rng = np.random.default_rng(3)
    x = 1e13 + rng.normal(0, 1, (1000, 4))
    y = affine_transform(x, np.full((1, 4), 1e13), np.ones((1, 4)), dtype=np.float32)
    assert np.array_equal(y, (x - 1e13).astype(np.float32))
    x32 = (1e6 + rng.normal(0, 1, (1000, 4))).astype(np.float32)
    y = affine_transform(x32, np.full((1, 4), 1e6), np.ones((1, 4)))
    assert np.array_equal(y, (x32.astype(np.float64) - 1e6).astype(np.float32))


def test_non_contiguous_input_and_float16_output(engine):
    rng = np.random.default_rng(4)
    base = rng.integers(0, 256, (20, 10, 10, 6), dtype=np.uint8)
    x = base[:, ::2, :, ::2]  # strided view, 3 channels
    shift, inv = _params(rng, (1, 1, 1, 3))
    assert np.array_equal(
        affine_transform(x, shift, inv, exact=True), _reference(x, shift, inv, np.float32)
    )
    y16 = affine_transform(x, shift, inv, dtype=np.float16, exact=True)
    assert y16.dtype == np.float16 and np.array_equal(y16, _reference(x, shift, inv, np.float16))
    xt = np.asfortranarray(rng.normal(size=(30, 5)))
    out = np.empty((30, 5), np.float64, order="F")
    sh, iv = _params(rng, (1, 5))
    affine_transform(xt, sh, iv, out=out)
    assert np.array_equal(out, (xt - sh) * iv)


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba missing")
@pytest.mark.parametrize(
    "dtype",
    [np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64],
    ids=lambda d: np.dtype(d).name,
)
@pytest.mark.parametrize("exact", [False, True])
def test_numba_and_numpy_paths_are_identical(dtype, exact, monkeypatch):
    rng = np.random.default_rng(5)
    x = (
        (rng.normal(0, 1000, (64, 17, 13, 3))).astype(dtype)
        if np.dtype(dtype).kind == "f"
        else rng.integers(-100, 200, (64, 17, 13, 3)).astype(dtype)
    )
    shift, inv = _params(rng, (1, 1, 1, 3))
    monkeypatch.setenv("NORMLAB_ENGINE", "numpy")
    a = affine_transform(x, shift, inv, exact=exact)
    monkeypatch.setenv("NORMLAB_ENGINE", "numba")
    b = affine_transform(x, shift, inv, exact=exact)
    assert np.array_equal(a, b)


def test_row_tiling_keeps_parameters_aligned(monkeypatch):
    # rows whose count is not a multiple of the tiling factor exercise the remainder path
    monkeypatch.setattr(_kernels, "_ROW_TARGET", 64)
    monkeypatch.setenv("NORMLAB_ENGINE", "numpy")
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (7, 5, 3), dtype=np.uint8)  # 35 rows of 3 channels; tiled by 22
    shift, inv = _params(rng, (1, 1, 3))
    assert np.array_equal(
        affine_transform(x, shift, inv, exact=True), _reference(x, shift, inv, np.float32)
    )


def test_errors_name_the_fix():
    x = np.zeros((4, 3), np.uint8)
    with pytest.raises(LayoutError, match="broadcastable"):
        affine_transform(x, np.zeros((1, 4)), np.ones((1, 4)))
    with pytest.raises(LayoutError, match=r"np\.empty"):
        affine_transform(x, np.zeros((1, 3)), np.ones((1, 3)), out=np.empty((4, 4), np.float32))
    with pytest.raises(DataTypeError, match="astype"):
        affine_transform(x.astype(complex), 0.0, 1.0)
    with pytest.raises(DataTypeError, match="floating"):
        affine_transform(x, 0.0, 1.0, dtype=np.int32)
    big = np.zeros((4, 6), np.float32)
    with pytest.raises(LayoutError, match="overlaps"):
        affine_transform(big[:, :3], 0.0, 1.0, out=big[:, 1:4])
    assert affine_transform(np.zeros((0, 3)), 0.0, 1.0).shape == (0, 3)


def test_large_arrays_split_across_threads_give_the_same_result(monkeypatch):
    monkeypatch.setenv("NORMLAB_ENGINE", "numpy")
    monkeypatch.setenv("NORMLAB_THREADS", "3")
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (700, 40, 40, 3), dtype=np.uint8)  # 13 MB of float32 output
    shift, inv = _params(rng, (1, 1, 1, 3))
    assert np.array_equal(
        affine_transform(x, shift, inv, exact=True), _reference(x, shift, inv, np.float32)
    )
    monkeypatch.setenv("NORMLAB_THREADS", "1")
    single = affine_transform(x, shift, inv)
    monkeypatch.setenv("NORMLAB_THREADS", "3")
    assert np.array_equal(affine_transform(x, shift, inv), single)


def test_per_sample_parameters_and_strided_views_use_bounded_slabs(engine, monkeypatch):
    monkeypatch.setattr(_kernels, "_SLAB_BYTES", 4096)  # many slabs
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, (50, 6, 7, 3), dtype=np.uint8)
    for pshape in ((50, 1, 1, 1), (50, 1, 1, 3)):  # per="sample", per="sample-channel"
        shift, inv = _params(rng, pshape)
        y = affine_transform(x, shift, inv, exact=True)
        assert np.array_equal(y, _reference(x, shift, inv, np.float32))
        # each sample alone (parameters constant along axis 0: the contiguous path) gives the same values
        for exact in (False, True):
            y = affine_transform(x, shift, inv, exact=exact)
            for i in (0, 17, 49):
                alone = affine_transform(
                    x[i : i + 1], shift[i : i + 1], inv[i : i + 1], exact=exact
                )
                assert np.array_equal(alone[0], y[i])
    # a strided view gives exactly what its contiguous copy gives, in fast mode too
    shift, inv = _params(rng, (1, 1, 1, 3))
    view = x[:, ::2]
    assert np.array_equal(
        affine_transform(view, shift, inv), affine_transform(np.ascontiguousarray(view), shift, inv)
    )
    out = np.empty((7, 50, 6, 3), np.float32).transpose(1, 2, 0, 3)  # non-contiguous out
    affine_transform(x, shift, inv, out=out, exact=True)
    assert np.array_equal(out, _reference(x, shift, inv, np.float32))
