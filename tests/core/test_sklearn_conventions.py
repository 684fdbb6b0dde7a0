"""scikit-learn's conventions: set_output, inverse_transform without name warnings, sample_weight."""

import warnings

import numpy as np
import pytest

import normlab

pd = pytest.importorskip("pandas")
sklearn = pytest.importorskip("sklearn")
from sklearn.preprocessing import StandardScaler  # noqa: E402


def test_set_output_pandas_returns_a_dataframe_with_names_and_index():
    df = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [0.0, 5.0, 7.0]}, index=[10, 20, 30])
    out = normlab.Standardize().set_output(transform="pandas").fit_transform(df)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["a", "b"] and list(out.index) == [10, 20, 30]
    with sklearn.config_context(transform_output="pandas"):
        assert isinstance(normlab.Standardize().fit(df).transform(df), pd.DataFrame)
    assert isinstance(normlab.Standardize().fit(df).transform(df), np.ndarray)


def test_inverse_transform_of_a_plain_array_does_not_warn_about_feature_names():
    df = pd.DataFrame({"a": [1.0, 2.0, 4.0], "b": [0.0, 5.0, 7.0]})
    norm = normlab.Standardize().fit(df)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = norm.inverse_transform(norm.transform(df))
    np.testing.assert_allclose(back, df.to_numpy())


def test_weighted_moments_match_sklearn_and_are_exact_as_repeated_samples():
    rng = np.random.default_rng(0)
    x, w = rng.normal(5, 2, (300, 4)), rng.random(300)
    ours, theirs = normlab.Standardize().fit(x, sample_weight=w), StandardScaler().fit(x, sample_weight=w)
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-13)
    np.testing.assert_allclose(ours.var_, theirs.var_, rtol=1e-12)
    xi = rng.integers(0, 256, (80, 5, 5, 3), dtype=np.uint8)
    wi = rng.integers(0, 6, 80)
    weighted = normlab.Standardize().fit(xi, sample_weight=wi)
    repeated = normlab.Standardize().fit(np.repeat(xi, wi, axis=0))
    assert weighted.mean_.tobytes() == repeated.mean_.tobytes() and weighted.var_.tobytes() == repeated.var_.tobytes()
    with pytest.raises(TypeError):
        normlab.MinMax().fit(x, sample_weight=w)  # only the moment-based normalizers take weights
