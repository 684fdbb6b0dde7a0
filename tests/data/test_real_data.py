"""The real files in ../shared/data: shapes, per-class counts and pixel statistics from its README.

Each training split is streamed once per module (module-scoped fixtures); the statistics are plain
float64 NumPy sums over ``iter_batches``.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import normlab.data
from normlab.errors import DatasetError

DATA = Path(__file__).parents[2].parent / "shared" / "data"

# (dataset, split) -> (mean, std, per-class counts) on the [0, 1] scale, as listed in the data README.
README = {
    ("mnist", "train"): (
        0.130660,
        0.308108,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ),
    ("mnist", "test"): (
        0.132515,
        0.310480,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ),
    ("fashion-mnist", "train"): (0.286041, 0.353024, [6000] * 10),
    ("fashion-mnist", "test"): (0.286849, 0.352444, [1000] * 10),
}


def _folder(name: str) -> Path:
    path = DATA / name
    if not path.is_dir():
        pytest.skip(f"real data not available: {path}")
    return path


def _stream_stats(ds, split: str, batch_size: int | None = None) -> dict:
    tracemalloc.start()
    try:
        stats = _sums(ds, split, batch_size)
        stats["peak"] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return stats


def _sums(ds, split: str, batch_size: int | None) -> dict:
    total = total_sq = 0.0
    count = 0
    classes = np.zeros(10, np.int64)
    shapes, dtypes, sizes = set(), set(), []
    for x, y in ds.iter_batches(batch_size, split=split):
        shapes.add(x.shape[1:])
        dtypes.add((x.dtype, y.dtype))
        sizes.append(len(x))
        xf = x.astype(np.float64)
        xf /= 255.0
        total += xf.sum()
        total_sq += np.square(xf, out=xf).sum()
        count += xf.size
        classes += np.bincount(y, minlength=10)
        del xf
    mean = total / count
    return {
        "mean": mean,
        "std": np.sqrt(total_sq / count - mean**2),
        "classes": classes.tolist(),
        "shapes": shapes,
        "dtypes": dtypes,
        "sizes": sizes,
    }


@pytest.fixture(scope="module", params=["mnist", "fashion-mnist"])
def idx_stats(request):
    kind = request.param
    ds = normlab.data.open(f"{kind}:{_folder(kind)}")
    return kind, ds, {split: _stream_stats(ds, split, 1000) for split in ("train", "test")}


@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_pixel_statistics_match_the_readme(idx_stats, split):
    kind, _, stats = idx_stats
    mean, std, _ = README[(kind, split)]
    assert stats[split]["mean"] == pytest.approx(mean, abs=1e-6)
    assert stats[split]["std"] == pytest.approx(std, abs=1e-6)


@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_class_counts_match_the_readme(idx_stats, split):
    kind, ds, stats = idx_stats
    counts = README[(kind, split)][2]
    assert stats[split]["classes"] == counts
    assert ds.class_counts(split).tolist() == counts  # from the labels alone, without the images


def test_idx_batches_are_uint8_channels_last_with_int64_labels(idx_stats):
    kind, ds, stats = idx_stats
    assert stats["train"]["shapes"] == {(28, 28, 1)}
    assert stats["train"]["dtypes"] == {(np.dtype(np.uint8), np.dtype(np.int64))}
    assert stats["train"]["sizes"] == [1000] * 60
    assert ds.splits == ("train", "test")
    assert (ds.sample_shape, ds.dtype, ds.layout, ds.n_classes) == (
        (28, 28, 1),
        np.uint8,
        "(n, h, w, c)",
        10,
    )
    assert ds.num_samples("train") == 60000 and ds.num_samples("test") == 10000
    assert ds.nbytes("train") == 60000 * 784
    if kind == "fashion-mnist":
        assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    else:
        assert ds.class_names == tuple("0123456789")


def test_idx_arrays_equal_the_streamed_batches():
    ds = normlab.data.open(f"mnist:{_folder('mnist')}")
    x, y = ds.arrays("test")
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.uint8 and y.dtype == np.int64
    parts = list(ds.iter_batches(3000, split="test"))
    assert np.array_equal(np.concatenate([p[0] for p in parts]), x)
    assert np.array_equal(np.concatenate([p[1] for p in parts]), y)
    # first test digit is a 7 (the well-known first image of t10k)
    assert y[0] == 7 and x[0].max() == 255


def test_streaming_memory_does_not_grow_with_the_dataset(idx_stats):
    """Streaming 60,000 images peaks no higher than streaming 10,000: memory follows the batch size."""
    _, ds, stats = idx_stats
    train, test = stats["train"]["peak"], stats["test"]["peak"]
    assert train < 1.5 * test, (train, test)
    # one float64 copy of a 1,000-image batch (6.3 MB) dominates; the decoded split is 47 MB
    assert train < ds.nbytes("train") / 3, (train, ds.nbytes("train"))


def test_image_folder_has_ten_classes_of_100_images():
    folder = _folder("cifar10-jpg-subset") / "test"
    ds = normlab.data.open(f"images:{folder}")
    assert ds.n_classes == 10
    assert ds.class_names == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    assert (ds.sample_shape, ds.dtype, ds.layout) == ((32, 32, 3), np.uint8, "(n, h, w, c)")
    counts = np.zeros(10, np.int64)
    total = np.zeros(3, np.int64)
    n = 0
    tracemalloc.start()
    try:
        for x, y in ds.iter_batches(50):
            assert x.shape[1:] == (32, 32, 3) and x.dtype == np.uint8
            counts += np.bincount(y, minlength=10)
            total += x.reshape(-1, 3).sum(axis=0, dtype=np.int64)
            n += len(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 1000 and counts.tolist() == [100] * 10
    # Decoded a batch at a time: the reader fills one batch while the loop holds the previous one, so the
    # bar is three batches plus a fixed 512 KiB for bookkeeping (measured: ~2.6 batches in all, 397 KB), with
    # margin for a loaded machine, and still far below the 3 MB the whole folder decodes to.
    batch_bytes = 50 * 32 * 32 * 3
    assert peak < 3 * batch_bytes + 512 * 1024 < ds.nbytes() / 3
    mean = total / (n * 32 * 32) / 255
    # JPEG re-encodings of CIFAR-10 test images: close to the usual constants (0.49, 0.48, 0.45)
    assert np.allclose(mean, [0.4966, 0.4872, 0.4506], atol=0.003)
    assert np.all(np.diff(mean) < 0)  # red > green > blue, as in CIFAR-10


def test_image_folder_parent_with_a_test_folder_has_a_test_split():
    ds = normlab.data.open(f"images:{_folder('cifar10-jpg-subset')}", limit=50)
    assert ds.splits == ("test",) and ds.default_split == "test"
    x, y = ds.arrays()
    assert x.shape == (50, 32, 32, 3)
    assert np.bincount(y, minlength=10).tolist() == [5] * 10  # limit is stratified
    with pytest.raises(DatasetError, match="no 'train' split to hold out validation data"):
        normlab.data.open(f"images:{_folder('cifar10-jpg-subset')}", validation_split=0.2)
