"""Layout is never silently wrong: one rule picks the channel axis, and a guess the data contradicts is refused.

NumPy arrays (and normlab datasets, files, plain iterables) are channels-last; PyTorch tensors, Datasets and
DataLoaders channels-first. When the chosen axis holds more than 4 entries while another axis holds 1, 3 or
4, a LayoutError names both readings, unless the user gave channel_axis explicitly.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import normlab
from normlab.errors import LayoutError

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import normlab.torch  # noqa: E402

# MNIST's border pixels are constant: the per-column readings (channel_axis=-1 on (n, 1, 28, 28)) warn
pytestmark = pytest.mark.filterwarnings("ignore::normlab.errors.ZeroVarianceWarning")

MAKERS = [
    lambda **kw: normlab.Standardize(**kw),
    lambda **kw: normlab.MinMax(**kw),
    lambda **kw: normlab.Robust(quantile_range=(1, 99), **kw),
    lambda **kw: normlab.Center(**kw),
    lambda **kw: normlab.Standardize(per="sample-channel", **kw),
]


@pytest.fixture(scope="module")
def mnist_nchw(mnist_small):
    return np.moveaxis(mnist_small, -1, 1).copy()  # (n, 1, 28, 28), as torchvision gives it


@pytest.mark.parametrize("make", MAKERS)
def test_a_channels_first_loader_is_fitted_per_channel_not_per_column(make, mnist_nchw):
    loader = DataLoader(TensorDataset(torch.from_numpy(mnist_nchw)), batch_size=256)
    norm = make().fit(loader)
    assert norm.layout_.channel_axis == 1 and norm.layout_.describe() == "(n, c, h, w)"
    if norm.layout_.stateful:
        assert norm.center_.shape == (1,)
    explicit = make(channel_axis=1).fit(mnist_nchw)
    z_loader = norm.transform(mnist_nchw[:64])
    np.testing.assert_array_equal(z_loader, explicit.transform(mnist_nchw[:64]))
    module = norm.to_torch()  # the exported module normalizes per channel too
    np.testing.assert_allclose(module(torch.from_numpy(mnist_nchw[:64])).numpy(), z_loader, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make", MAKERS)
def test_a_channels_first_numpy_array_is_refused_with_both_readings(make, mnist_nchw):
    with pytest.raises(LayoutError, match=r"looks channels-first.*channel_axis=1 .*channel_axis=-1 to keep 28"):
        make().fit(mnist_nchw)
    kept = make(channel_axis=-1).fit(mnist_nchw)  # said explicitly: never second-guessed
    assert kept.layout_.shape[kept.layout_.channel_axis] == 28


def test_channels_last_data_and_tables_need_no_axis(mnist_small):
    assert normlab.Standardize().fit(mnist_small).center_.shape == (1,)
    rgb = np.random.default_rng(0).integers(0, 256, (50, 32, 32, 3), dtype=np.uint8)
    assert normlab.Standardize().fit(rgb).center_.shape == (3,)
    assert normlab.Standardize().fit(np.random.default_rng(1).normal(size=(20, 300))).center_.shape == (300,)
    t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(rgb, -1, 1)))
    assert normlab.Standardize().fit(t).layout_.describe() == "(n, c, h, w)"  # a tensor: channels-first


def test_a_channels_last_tensor_is_refused_too(mnist_small):
    rgb = torch.zeros((8, 32, 32, 3), dtype=torch.uint8)
    with pytest.raises(LayoutError, match=r"channel_axis=1 \(channels-first, the PyTorch convention\).*channel_axis=-1"):
        normlab.Standardize().fit(rgb)


def test_dataset_stats_and_the_normalizers_share_one_default(mnist_nchw):
    loader = DataLoader(TensorDataset(torch.from_numpy(mnist_nchw)), batch_size=100)
    mean, std = normlab.torch.dataset_stats(loader)
    norm = normlab.Standardize(per="channel").fit(loader)
    assert mean.tolist() == norm.mean_.tolist() and std.tolist() == norm.std_.tolist()
    with pytest.raises(LayoutError, match="looks channels-first"):
        normlab.torch.dataset_stats(mnist_nchw)  # the same rule for a NumPy array


def test_dataset_stats_unit_scale_is_what_transforms_normalize_wants(mnist_train):
    nchw = torch.from_numpy(np.moveaxis(mnist_train, -1, 1).copy())
    loader = DataLoader(TensorDataset(nchw), batch_size=4096)
    mean, std = normlab.torch.dataset_stats(loader, scale="unit")
    assert round(float(mean[0]), 6) == 0.130660 and round(float(std[0]), 6) == 0.308108  # shared/data README
    raw_mean, _raw_std = normlab.torch.dataset_stats(loader)
    assert float(raw_mean[0]) == pytest.approx(float(mean[0]) * 255, rel=1e-15)
    f = torch.zeros((4, 1, 2, 2))  # float data: ToTensor() does not rescale it, and neither does "unit"
    assert normlab.torch.dataset_stats(f, scale="unit").mean.tolist() == [0.0]


def test_stats_json_and_saved_files_carry_the_layout_and_the_unit_scale(tmp_path, mnist_small):
    s = normlab.stats(mnist_small)
    doc = json.loads(normlab.core.summary.dumps(s))
    assert doc["layout"] == "(n, h, w, c)" and doc["unit_scale"]["divisor"] == 255
    assert doc["unit_scale"]["mean"] == pytest.approx([float(s.mean[0]) / 255])
    s.save(tmp_path / "s.json")
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["params"]["layout"] == "(n, h, w, c)" and saved["fitted"]["unit_scale"]["divisor"] == 255
    assert normlab.load(tmp_path / "s.json").unit_mean.tolist() == s.unit_mean.tolist()
    assert "layout (n, h, w, c)" in s.table() and "x / 255" in s.table()
    assert normlab.stats(np.ones((3, 2))).unit_mean is None  # float data has no [0, 1] reading


def test_cli_stats_on_a_channels_first_npy_is_one_error_line_with_the_flag(tmp_path, mnist_nchw):
    path = tmp_path / "x.npy"
    np.save(path, mnist_nchw[:100])
    run = [sys.executable, "-m", "normlab.cli.main", "stats", str(path)]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("Error: ") and "--channel-axis" in out.stderr
    ok = subprocess.run([*run, "--channel-axis", "1", "--json"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["layout"] == "(n, c, h, w)"
