"""What ``normlab.check`` accepts: arrays, specs, statistics in several forms; and it stays NumPy-only."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import normlab
import normlab.check as check
from normlab.errors import LayoutError


def test_the_package_is_callable_and_has_the_function_signature():
    import inspect

    assert normlab.check.check is check.check
    assert list(inspect.signature(check).parameters)[:3] == ["train", "normalized", "test"]


def test_importing_and_running_check_loads_no_framework():
    code = (
        "import sys, numpy as np, normlab.check as check\n"
        "x = np.arange(4 * 6 * 6 * 3, dtype=np.uint8).reshape(4, 6, 6, 3)\n"
        "r = check(x, normalized=x / 255.0, stats={'mean': [0.5] * 3, 'std': [0.25] * 3})\n"
        "heavy = [m for m in ('torch', 'keras', 'dask', 'distributed', 'matplotlib', 'sklearn', 'pandas', 'PIL')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported: {out.stdout}"


def test_statistics_from_files_and_normalizers_agree(mnist_small, tmp_path):
    plain = tmp_path / "stats.json"
    plain.write_text(json.dumps({"mean": [0.1307], "std": [0.0949]}))
    saved = tmp_path / "stats.normlab.json"
    normlab.stats(mnist_small).save(saved)
    assert check(mnist_small, stats=str(plain)).codes == ["std-as-variance"]
    assert check(mnist_small, stats='{"mean": [0.1307], "var": [0.3081]}').codes == ["std-as-variance"]
    assert check(mnist_small, stats=str(saved)).codes == []
    norm = tmp_path / "norm.json"
    normlab.Standardize().fit(mnist_small).save(norm)
    assert check(mnist_small, normalizer=str(norm)).codes == []


def test_a_normalizer_fitted_on_0_1_data_applied_to_uint8_is_flagged(mnist_small):
    norm = normlab.Standardize().fit(mnist_small / 255.0)
    f = check(mnist_small, normalizer=norm).by_code("pixels-not-scaled")[0]
    assert f.severity == "error"
    assert "it was fitted on data divided by 255, so divide by 255 before transform()" in f.message


def test_samples_must_line_up():
    x = np.zeros((10, 4))
    with pytest.raises(LayoutError, match="expected the same samples in the same order"):
        check(x, normalized=np.zeros((9, 4)))
    with pytest.raises(LayoutError, match="expected the same values per sample"):
        check(x, normalized=np.zeros((10, 5)))


def test_statistics_must_fit_the_data(mnist_small):
    with pytest.raises(LayoutError, match="expected one value per channel"):
        check(mnist_small, stats={"mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]})
    with pytest.raises(ValueError, match="expected 'mean' with 'std' or 'var'"):
        check(mnist_small, stats={"average": 0.5})
    with pytest.raises(ValueError, match="expected one of them"):
        check(mnist_small, stats={"mean": 0.5, "std": 0.2}, normalizer=normlab.Standardize().fit(mnist_small))


def test_unknown_codes_in_ignore_are_refused():
    with pytest.raises(ValueError, match="names unknown codes"):
        check(np.ones((3, 2)), ignore=["no-such-check"])


def test_dataset_specs_are_opened_with_normlab_data():
    pytest.importorskip("sklearn")
    r = check("wine")
    assert r.inputs["train"] == "wine (178, 13) float64"
    assert r.by_code("features-not-scaled")[0].numbers["worst"] == "'proline'"
