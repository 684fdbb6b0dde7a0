"""The formula table is the one definition: the TorchScript copy and the Keras statistics view follow it."""

import numpy as np
import pytest

from normlab.core._formulas import (
    FORMULA_NAMES,
    FORMULAS,
    NUMPY_OPS,
    FormulaSpec,
    SampleStats,
    apply,
)

torch = pytest.importorskip("torch")
keras = pytest.importorskip("keras")

from normlab.adapters import keras as nk  # noqa: E402
from normlab.adapters import torch as nt  # noqa: E402


def _rows(nan: bool) -> np.ndarray:
    """Rows that exercise every rule: ordinary, constant, all zero, huge offset, negative, with outliers."""
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 3.0, size=(7, 40))
    x[1] = 5.0  # constant: zero spread
    x[2] = 0.0  # all zero: zero norm
    x[3] = 1e13 + rng.normal(0, 1, 40)  # large offset
    x[4] = -np.abs(x[4])
    x[5, :3] = [1e6, -1e6, 3e5]
    if nan:
        x[0, ::7] = np.nan
        x[6, 1] = np.nan
    return x


def _spec(name: str) -> FormulaSpec:
    return {"scale": FormulaSpec("scale", divisor=255.0), "minmax": FormulaSpec("minmax", lo=-1.0, hi=1.0),
            "robust": FormulaSpec("robust", lo=0.1, hi=0.9)}.get(name, FormulaSpec(name))


def _table(name: str, x: np.ndarray, nan: bool) -> tuple[np.ndarray, np.ndarray]:
    center, scale, _ = apply(_spec(name), SampleStats(x, (1,), "ignore" if nan else "raise"), NUMPY_OPS)
    return np.asarray(center, np.float64), np.asarray(scale, np.float64)


def test_every_backend_knows_exactly_the_formulas_of_the_table():
    assert set(FORMULA_NAMES) == set(FORMULAS)
    assert nk.SampleNormalize.FORMULAS == FORMULA_NAMES
    for name in FORMULA_NAMES:  # the torch module accepts every formula, and nothing else
        nt.SampleNormalize(name, per="sample", ndim=2)
    with pytest.raises(ValueError, match="is not known"):
        nt.SampleNormalize("zscore", per="sample", ndim=2)


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("nan", [False, True], ids=["finite", "nan-ignore"])
@pytest.mark.parametrize("name", FORMULA_NAMES)
def test_torchscript_copy_matches_the_table(name, nan):
    x = _rows(nan)
    want_c, want_s = _table(name, x, nan)
    spec = _spec(name)
    got_c, got_s = nt._sample_center_scale(torch.from_numpy(x), name, spec.divisor, spec.lo, spec.hi, nan)
    np.testing.assert_allclose(got_c.numpy(), want_c, rtol=1e-12, atol=0, equal_nan=True)
    np.testing.assert_allclose(got_s.numpy(), want_s, rtol=1e-12, atol=0, equal_nan=True)
    scripted = torch.jit.script(nt._sample_center_scale)
    got_c2, got_s2 = scripted(torch.from_numpy(x), name, spec.divisor, spec.lo, spec.hi, nan)
    assert torch.equal(got_c2, got_c) and torch.equal(got_s2, got_s)


@pytest.mark.parametrize("nan", [False, True], ids=["finite", "nan-ignore"])
@pytest.mark.parametrize("name", FORMULA_NAMES)
def test_keras_statistics_view_gives_the_numpy_statistics(name, nan):
    x = _rows(nan)
    want_c, want_s = _table(name, x, nan)
    xk = keras.ops.convert_to_tensor(x, dtype="float64")
    center, scale, _ = apply(_spec(name), nk._SampleStats(xk, x.shape[1], nan), nk._OPS)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(center), want_c, rtol=1e-12, atol=0, equal_nan=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(scale), want_s, rtol=1e-12, atol=0, equal_nan=True)
