"""``ds.torch(split)``: a map-style torch Dataset over any normlab.data split, used by a real DataLoader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import normlab.adapters  # noqa: E402  (fills the exporter hooks, as `import normlab` does)
import normlab.data  # noqa: E402

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _real(name: str) -> Path:
    if not (DATA / name).is_dir():
        pytest.skip(f"real data not available: {DATA / name}")
    return DATA / name


def test_dataloader_over_mnist_gives_channels_first_uint8_and_the_labels():
    ds = normlab.data.open(f"mnist:{_real('mnist')}", limit=2000, seed=1)
    tds = ds.torch("train")
    assert len(tds) == 2000 and tds.classes == [str(i) for i in range(10)]
    x, y = tds[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.uint8 and isinstance(y, int)
    loader = torch.utils.data.DataLoader(tds, batch_size=256, shuffle=False)
    xs, ys = zip(*loader, strict=True)
    x_all, y_all = torch.cat(xs), torch.cat(ys)
    a, b = ds.arrays("train")
    assert x_all.shape == (2000, 1, 28, 28) and y_all.dtype == torch.int64
    assert np.array_equal(x_all.numpy(), a.transpose(0, 3, 1, 2)) and np.array_equal(y_all.numpy(), b)
    assert np.bincount(y_all.numpy(), minlength=10).tolist() == ds.class_counts("train").tolist()


def test_image_folder_decodes_per_item_and_transforms_apply():
    ds = normlab.data.open(f"images:{_real('cifar10-jpg-subset')}", limit=40)
    tds = ds.torch(transform=lambda t: t.float() / 255, target_transform=lambda y: -y)
    x, y = tds[3]
    raw, labels = ds.arrays()
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(raw[3].transpose(2, 0, 1).copy()).float() / 255) and y == -labels[3]
    assert len(list(torch.utils.data.DataLoader(tds, batch_size=16))) == 3
    with pytest.raises(IndexError):
        tds[40]


def test_unlabeled_arrays_yield_the_sample_alone():
    ds = normlab.data.from_arrays(np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    tds = ds.torch()
    assert tds[1].shape == (1, 3, 4) and tds[1].dtype == torch.int16  # (n, h, w): one channel added
    assert tds[-1].tolist() == [np.arange(12, 24).reshape(3, 4).tolist()]
