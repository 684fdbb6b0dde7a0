"""The conformance suite every normalizer passes, equivalence with scikit-learn and Keras, and bad input."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import normlab
from normlab.errors import (
    DataError,
    DataTypeError,
    LayoutError,
    NormlabError,
    NotFittedError,
    ZeroVarianceWarning,
)

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, size=(40, 6, 5, 3), dtype=np.uint8)
TABLE = RNG.normal(size=(50, 4)) * [1, 10, 100, 1000] + [0, 5, -3, 1e4]

STATEFUL = [
    (normlab.Identity, {}),
    (normlab.Scale, {}),
    (normlab.Scale, {"by": "dtype"}),
    (normlab.Scale, {"by": "max"}),
    (normlab.Center, {}),
    (normlab.Standardize, {}),
    (normlab.Standardize, {"per": "global"}),
    (normlab.Standardize, {"per": "feature"}),
    (normlab.MinMax, {"feature_range": (-1, 1)}),
    (normlab.Robust, {}),
    (normlab.LpNormalize, {"per": "channel"}),
]
PER_SAMPLE = [
    (normlab.Standardize, {"per": "sample"}),
    (normlab.Standardize, {"per": "sample-channel"}),
    (normlab.MinMax, {"per": "sample"}),
    (normlab.Robust, {"per": "sample-channel"}),
    (normlab.LpNormalize, {}),
    (normlab.Scale, {"by": "max", "per": "sample"}),
]
ALL = STATEFUL + PER_SAMPLE
ids = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for c, kw in ALL]


def fitted_state(est):
    return {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}


def assert_same_state(a, b, exact=True):
    sa, sb = fitted_state(a), fitted_state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        if isinstance(sa[k], np.ndarray):
            if exact:
                np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
            else:
                np.testing.assert_allclose(sa[k], sb[k], rtol=1e-12, atol=1e-12, err_msg=k)
        else:
            assert sa[k] == sb[k], k


# ---- conformance ------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ids)
def test_constructor_only_stores_and_nothing_is_fitted(cls, kw):
    est = cls(**kw)
    for k, v in kw.items():
        assert getattr(est, k) == v
    assert not fitted_state(est)
    with pytest.raises(NotFittedError, match=r"Call .*\.fit\(x_train\)"):
        est.transform(IMAGES)


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ids)
def test_fit_is_reset_then_partial_fit(cls, kw):
    other = IMAGES[::-1] // 2
    refit = cls(**kw).fit(IMAGES).fit(other)
    fresh = cls(**kw).partial_fit(other)
    assert_same_state(refit, fresh)


@pytest.mark.parametrize(("cls", "kw"), STATEFUL, ids=ids[: len(STATEFUL)])
@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(1, 39), max_size=6, unique=True))
def test_partial_fit_matches_fit_for_any_split(cls, kw, cuts):
    whole = cls(**kw).fit(IMAGES)
    streamed = cls(**kw)
    for part in np.split(IMAGES, sorted(cuts)):
        streamed.partial_fit(part)
    assert_same_state(whole, streamed)  # bit-identical: integer data is accumulated in integers
    np.testing.assert_array_equal(whole.transform(IMAGES), streamed.transform(IMAGES))


@pytest.mark.parametrize(("cls", "kw"), STATEFUL, ids=ids[: len(STATEFUL)])
def test_inverse_transform_round_trips(cls, kw):
    est = cls(**kw).fit(IMAGES)
    back = est.inverse_transform(est.transform(IMAGES))
    np.testing.assert_allclose(back, IMAGES, atol=1e-3)
    t = cls(**kw).fit(TABLE) if "by" not in kw or kw["by"] != "dtype" else None
    if t is not None:
        np.testing.assert_allclose(t.inverse_transform(t.transform(TABLE)), TABLE, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ids)
def test_save_and_load_round_trip_exactly(cls, kw, tmp_path):
    est = cls(**kw).fit(IMAGES)
    est.save(tmp_path / "n.json")
    back = normlab.load(tmp_path / "n.json")
    assert type(back) is cls and back.get_params() == est.get_params()
    assert_same_state(est, back)
    np.testing.assert_array_equal(back.transform(IMAGES), est.transform(IMAGES))


@pytest.mark.parametrize(("cls", "kw"), ALL, ids=ids)
def test_transform_never_modifies_input_and_picks_float_dtypes(cls, kw):
    x = IMAGES.copy()
    est = cls(**kw).fit(x)
    assert est.transform(x).dtype == np.float32
    assert est.transform(x.astype(np.float64)).dtype == np.float64
    assert est.transform(x.astype(np.float16)).dtype == np.float32
    assert cls(dtype="float64", **kw).fit(x).transform(x).dtype == np.float64
    np.testing.assert_array_equal(x, IMAGES)


@pytest.mark.parametrize(("cls", "kw"), PER_SAMPLE, ids=ids[len(STATEFUL) :])
def test_per_sample_modes_use_each_samples_own_statistics(cls, kw):
    est = cls(**kw).fit(IMAGES[:5])
    y = est.transform(IMAGES)
    for i in (0, 17, 39):
        np.testing.assert_allclose(est.transform(IMAGES[i : i + 1])[0], y[i], rtol=1e-6)
    with pytest.raises(NormlabError, match="cannot invert"):
        est.inverse_transform(y)


def test_repr_shows_the_resolved_mode():
    est = normlab.Standardize()
    assert repr(est) == "Standardize()"
    est.fit(IMAGES)
    assert "per='auto' resolved to per='channel' for (n, h, w, c)" in repr(est)
    assert repr(normlab.MinMax(feature_range=(-1, 1))) == "MinMax(feature_range=(-1, 1))"


# ---- formulas on images ---------------------------------------------------------------------------


def test_per_channel_standardize_matches_numpy():
    est = normlab.Standardize(per="channel").fit(IMAGES)
    x = IMAGES.astype(np.float64)
    np.testing.assert_allclose(est.mean_, x.mean(axis=(0, 1, 2)), rtol=1e-15)
    np.testing.assert_allclose(est.std_, x.std(axis=(0, 1, 2)), rtol=1e-14)
    expect = (x - x.mean(axis=(0, 1, 2))) / x.std(axis=(0, 1, 2))
    np.testing.assert_allclose(est.transform(IMAGES), expect, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(est.transform(IMAGES, exact=True), expect.astype(np.float32), rtol=0, atol=0)


def test_channels_first_equals_channels_last_transposed():
    first = np.ascontiguousarray(IMAGES.transpose(0, 3, 1, 2))
    last = normlab.Standardize().fit(IMAGES)
    cf = normlab.Standardize(channel_axis=1).fit(first)
    np.testing.assert_array_equal(cf.mean_, last.mean_)
    np.testing.assert_allclose(cf.transform(first), last.transform(IMAGES).transpose(0, 3, 1, 2), rtol=1e-6)


def test_transform_writes_into_a_reused_buffer():
    est = normlab.Standardize().fit(IMAGES)
    buf = np.empty(IMAGES.shape, np.float32)
    out = est.transform(IMAGES, out=buf)
    assert out is buf
    np.testing.assert_array_equal(buf, est.transform(IMAGES))
    with pytest.raises(LayoutError, match="expected the same shape"):
        est.transform(IMAGES, out=np.empty((1, 2), np.float32))


def test_fit_accepts_batches_and_xy_pairs_from_a_generator():
    whole = normlab.Standardize().fit(IMAGES)
    pairs = ((IMAGES[i : i + 7], np.zeros(len(IMAGES[i : i + 7]))) for i in range(0, 40, 7))
    streamed = normlab.Standardize().fit(pairs)
    assert_same_state(whole, streamed)
    with pytest.raises(NormlabError, match="Call fit\\(stream\\) first"):
        normlab.Standardize().fit_transform(iter([IMAGES]))


def test_scale_by_dtype_knows_uint16_and_refuses_floats():
    x16 = (IMAGES.astype(np.uint16) * 257)
    assert float(normlab.Scale(by="dtype").fit(x16).scale_.ravel()[0]) == 65535.0
    with pytest.raises(DataError, match="Use Scale\\(by='max'\\)"):
        normlab.Scale(by="dtype").fit(IMAGES / 255.0)


# ---- equivalence with scikit-learn and Keras ------------------------------------------------------


def test_matches_sklearn_scalers_on_tables():
    from sklearn.preprocessing import MinMaxScaler, Normalizer, RobustScaler, StandardScaler

    pairs = [
        (normlab.Standardize(), StandardScaler()),
        (normlab.MinMax(feature_range=(-2, 3)), MinMaxScaler(feature_range=(-2, 3))),
        (normlab.Robust(quantile_range=(10, 90)), RobustScaler(quantile_range=(10, 90))),
        (normlab.LpNormalize(order=2), Normalizer("l2")),
        (normlab.LpNormalize(order=1), Normalizer("l1")),
        (normlab.LpNormalize(order=np.inf), Normalizer("max")),
    ]
    for ours, theirs in pairs:
        np.testing.assert_allclose(ours.fit_transform(TABLE), theirs.fit_transform(TABLE), rtol=1e-12, atol=1e-12,
                                   err_msg=repr(ours))
        np.testing.assert_allclose(ours.inverse_transform(ours.transform(TABLE)) if ours.per_ != "sample" else TABLE,
                                   TABLE, rtol=1e-12)


def test_matches_sklearn_on_breast_cancer_including_constant_columns():
    from sklearn.datasets import load_breast_cancer
    from sklearn.preprocessing import StandardScaler

    x = load_breast_cancer().data
    x = np.column_stack([x, np.full(len(x), 7.0)])
    with pytest.warns(ZeroVarianceWarning, match=r"1 features with zero variance \(at 30\)"):
        ours = normlab.Standardize().fit(x)
    np.testing.assert_allclose(ours.transform(x), StandardScaler().fit_transform(x), rtol=1e-12, atol=1e-12)


def test_lp_normalize_matches_keras_utils_normalize_for_the_same_axis():
    keras = pytest.importorskip("keras")
    np.testing.assert_allclose(normlab.LpNormalize().fit_transform(TABLE),
                               np.asarray(keras.utils.normalize(TABLE, axis=-1)), rtol=1e-12)
    cube = TABLE[:48].reshape(4, 3, 4, 4)  # (n, h, w, c): keras' axis=(1, 2, 3) is one norm per sample
    np.testing.assert_allclose(normlab.LpNormalize(per="sample").fit_transform(cube),
                               np.asarray(keras.utils.normalize(cube.reshape(4, -1), axis=-1)).reshape(cube.shape),
                               rtol=1e-12)
    # keras.utils.normalize(x, axis=0) mis-broadcasts (it treats axis 0 as "no axis"); the formula it means:
    np.testing.assert_allclose(normlab.LpNormalize(per="feature").fit_transform(TABLE),
                               TABLE / np.linalg.norm(TABLE, axis=0, keepdims=True), rtol=1e-12)


@pytest.mark.parametrize("cls", [normlab.Identity, normlab.Scale, normlab.Center, normlab.Standardize,
                                 normlab.MinMax, normlab.Robust, normlab.LpNormalize])
def test_passes_sklearn_check_estimator(cls):
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_estimator(cls())


def test_works_inside_an_sklearn_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    y = (TABLE[:, 0] > 0).astype(int)
    model = make_pipeline(normlab.Standardize(), LogisticRegression()).fit(TABLE, y)
    assert model.score(TABLE, y) > 0.9


# ---- numerically hard data ------------------------------------------------------------------------


def test_wide_scale_columns_keep_full_precision():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(20000, 2))
    x = noise + np.array([1e13, -3e12])
    est = normlab.Standardize()
    for part in np.array_split(x, 7):
        est.partial_fit(part)
    for j in range(2):  # the exact statistics of the stored float64 values, in rational arithmetic
        col = [Fraction(v) for v in x[:, j].tolist()]
        mean = sum(col) / len(col)
        std = math.sqrt(sum((v - mean) ** 2 for v in col) / len(col))
        assert abs(est.std_[j] - std) / std < 1e-12
        assert abs(est.mean_[j] - float(mean)) <= 1e-15 * abs(float(mean))
    naive = x.astype(np.float32).std(axis=0, dtype=np.float32)
    assert np.all(np.abs(naive / est.std_ - 1) > 0.5)  # what a float32 one-liner gets on the same data


def test_uint8_statistics_do_not_stall_like_float32_sums():
    x = np.full((4096, 64, 64, 3), 200, np.uint8)  # 50 M values per channel
    x[::2, :, :, 0] = 100
    with pytest.warns(ZeroVarianceWarning, match=r"2 channels with zero variance \(at 1, 2\)"):
        est = normlab.Standardize().fit(x)
    assert est.mean_.tolist() == [150.0, 200.0, 200.0]
    assert est.std_.tolist() == [50.0, 0.0, 0.0]


# ---- real data ------------------------------------------------------------------------------------


def test_mnist_train_pixel_statistics_are_exact(mnist_train):
    est = normlab.Standardize(per="channel").fit(mnist_train)
    assert round(float(est.mean_[0]) / 255, 6) == 0.130660
    assert round(float(est.std_[0]) / 255, 6) == 0.308108
    batches = (mnist_train[i : i + 1000] for i in range(0, len(mnist_train), 1000))
    streamed = normlab.Standardize(per="channel").fit(batches)
    assert streamed.mean_.tobytes() == est.mean_.tobytes()
    assert streamed.var_.tobytes() == est.var_.tobytes()


# ---- bad input: each a clear error that says how to fix it ----------------------------------------


def test_channel_count_mismatch_names_channel_axis_fix():
    est = normlab.Standardize(per="channel").fit(IMAGES)
    msg = (r"Standardize\(per='channel'\) was fitted on 3 channels \(layout \(n, h, w, c\)\) but transform\(\) "
           r"received shape \(32, 3, 28, 28\), whose channel axis \(-1\) has 28 entries. If your data is "
           r"channels-first, create the normalizer with channel_axis=1.")
    with pytest.raises(LayoutError, match=msg):
        est.transform(np.zeros((32, 3, 28, 28), np.uint8))


def test_wrong_ndim_and_wrong_feature_count():
    est = normlab.Standardize().fit(IMAGES)
    with pytest.raises(LayoutError, match="Reshape the input to the layout used in fit"):
        est.transform(IMAGES[:, :, :, 0])
    with pytest.raises(LayoutError, match="X has 3 features, but Standardize is expecting 4 features"):
        normlab.Standardize().fit(TABLE).transform(TABLE[:, :3])


def test_empty_input():
    with pytest.raises(DataError, match=r"0 sample\(s\) .* Check the data source or the split"):
        normlab.Standardize().fit(np.zeros((0, 3)))
    with pytest.raises(DataError, match="stream with no batches"):
        normlab.Standardize().fit(iter([]))


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.array([["a", "b"], ["c", "d"]]), "Encode text or categorical columns as numbers"),
        (np.ones((3, 2), complex), "Normalize the real and imaginary parts separately"),
        (np.array([[1, {}], [2, 3]], dtype=object), "Convert or drop the non-numeric entries"),
    ],
)
def test_non_numeric_dtypes_are_refused(x, match):
    with pytest.raises(DataTypeError, match=match):
        normlab.Standardize().fit(x)


def test_sparse_input_is_refused_with_the_fix():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match=r"sparse input is not supported.*x.toarray\(\)"):
        normlab.Standardize().fit(sparse.csr_matrix(np.eye(3)))


def test_nan_and_inf_are_counted_and_located():
    x = TABLE.copy()
    x[7, 2] = np.nan
    x[9, 1] = np.inf
    with pytest.raises(DataError, match=r"1 NaN and 1 inf values .* \(the first at index \(7, 2\)\).*nan='ignore'"):
        normlab.Standardize().fit(x)


def test_nan_ignore_leaves_nan_out_and_passes_it_through():
    x = TABLE.copy()
    x[7, 2] = np.nan
    est = normlab.Standardize(nan="ignore").fit(x)
    np.testing.assert_allclose(est.mean_[2], np.nanmean(x[:, 2]), rtol=1e-14)
    y = est.transform(x)
    assert np.isnan(y[7, 2]) and np.isfinite(np.delete(y.ravel(), 7 * 4 + 2)).all()


def test_zero_variance_raise_mode():
    x = np.column_stack([TABLE, np.ones(len(TABLE))])
    with pytest.raises(DataError, match=r"zero variance \(at 4\).*pass zero_std='unit'"):
        normlab.Standardize(zero_std="raise").fit(x)


def test_invalid_parameters_say_what_is_valid():
    with pytest.raises(ValueError, match="expected 'unit'"):
        normlab.Standardize(zero_std="eps").fit(TABLE)
    with pytest.raises(ValueError, match="lo < hi"):
        normlab.MinMax(feature_range=(1, 0)).fit(TABLE)
    with pytest.raises(ValueError, match="0 <= lo < hi <= 100"):
        normlab.Robust(quantile_range=(0.25, 0.75 * 200)).fit(TABLE)
    with pytest.raises(ValueError, match="'dtype' or 'max'"):
        normlab.Scale(by="std").fit(TABLE)
    with pytest.raises(LayoutError, match="per='sample' for tables"):
        normlab.Standardize(per="sample-channel").fit(TABLE)


def test_zero_spread_under_per_global_names_all_and_divides_by_one():
    x = np.zeros((8, 4, 4, 1), np.uint8)
    x[0, 0, 0, 0] = 9  # the interquartile range is 0
    with pytest.warns(ZeroVarianceWarning, match=r"1 values with zero interquartile range \(at all\)"):
        est = normlab.Robust(per="global").fit(x)
    assert est.scale_ == 1.0
