"""normlab.from_sklearn: fitted scikit-learn scalers become normalizers that transform the same way."""

from __future__ import annotations

import numpy as np
import pytest

preprocessing = pytest.importorskip("sklearn.preprocessing")

import normlab  # noqa: E402
from normlab.adapters.convert import from_sklearn  # noqa: E402
from normlab.errors import NormlabError, NotFittedError  # noqa: E402

RNG = np.random.default_rng(0)
TABLE = RNG.normal(size=(200, 5)) * [1, 10, 100, 1e-3, 0] + [0, 5, -3, 1e4, 7]  # last column constant


@pytest.mark.parametrize(
    ("scaler", "cls"),
    [
        (preprocessing.StandardScaler(), normlab.Standardize),
        (preprocessing.StandardScaler(with_std=False), normlab.Center),
        (preprocessing.MinMaxScaler(), normlab.MinMax),
        (preprocessing.MinMaxScaler(feature_range=(-1, 1)), normlab.MinMax),
        (preprocessing.RobustScaler(), normlab.Robust),
        (preprocessing.RobustScaler(quantile_range=(10, 90)), normlab.Robust),
    ],
    ids=lambda v: repr(v) if not isinstance(v, type) else v.__name__,
)
def test_converted_scaler_transforms_like_the_original(scaler, cls):
    scaler.fit(TABLE)
    norm = from_sklearn(scaler)
    assert type(norm) is cls and norm.per_ == "feature" and norm.layout_.describe() == "(n, f)"
    x = RNG.normal(size=(30, 5)) * 50
    np.testing.assert_allclose(norm.transform(x), scaler.transform(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(norm.inverse_transform(norm.transform(x)), x, rtol=1e-12, atol=1e-9)
    assert norm.n_features_in_ == 5


def test_converted_statistics_match_normlab_fitted_on_the_same_data():
    norm = from_sklearn(preprocessing.StandardScaler().fit(TABLE))
    with pytest.warns(normlab.errors.ZeroVarianceWarning):
        own = normlab.Standardize().fit(TABLE)
    np.testing.assert_allclose(norm.mean_, own.mean_, rtol=1e-12)
    np.testing.assert_allclose(norm.var_, own.var_, rtol=1e-10)
    assert norm.n_samples_seen_ == 200
    assert from_sklearn(preprocessing.RobustScaler().fit(TABLE)).median_.tolist() == np.median(TABLE, 0).tolist()


def test_converted_scaler_goes_on_to_torch_and_keeps_feature_names():
    torch = pytest.importorskip("torch")
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(TABLE[:, :3], columns=["a", "b", "c"])  # column 3 (1e4 +- 1e-3) needs float64
    scaler = preprocessing.StandardScaler().fit(frame)
    norm = from_sklearn(scaler)
    assert list(norm.feature_names_in_) == ["a", "b", "c"]
    x = TABLE[:10, :3].astype(np.float32)
    y = norm.to_torch()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, scaler.transform(pd.DataFrame(x, columns=frame.columns)), rtol=1e-5, atol=1e-5)


def test_scalers_normlab_cannot_express_are_refused_with_the_fix():
    with pytest.raises(NormlabError, match=r"expected with_mean=True"):
        from_sklearn(preprocessing.StandardScaler(with_mean=False).fit(TABLE))
    with pytest.raises(NormlabError, match=r"Refit with clip=False"):
        from_sklearn(preprocessing.MinMaxScaler(clip=True).fit(TABLE))
    with pytest.raises(NormlabError, match=r"unit_variance=False"):
        from_sklearn(preprocessing.RobustScaler(unit_variance=True).fit(TABLE))
    with pytest.raises(NotFittedError, match=r"Call scaler\.fit\(x_train\) first"):
        from_sklearn(preprocessing.StandardScaler())
    with pytest.raises(NormlabError, match=r"expected a scikit-learn StandardScaler, MinMaxScaler or RobustScaler"):
        from_sklearn(preprocessing.Normalizer().fit(TABLE))
