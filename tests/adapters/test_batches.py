"""Fitting from PyTorch data (DataLoader, Dataset, IterableDataset) and normlab.torch.dataset_stats on MNIST."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import (  # noqa: E402
    BatchSampler,
    DataLoader,
    Dataset,
    IterableDataset,
    SequentialSampler,
    TensorDataset,
)

import normlab  # noqa: E402
from normlab.adapters import as_batches  # noqa: E402
from normlab.errors import DataTypeError  # noqa: E402
from normlab.torch import dataset_stats  # noqa: E402


def fitted(norm):
    return {k: v for k, v in vars(norm).items() if k.endswith("_") and not k.startswith("_")}


def assert_same_fit(a, b):
    """The same statistics; the same axes (a layout's channel axis only names the axes when per='feature':
    torch containers are channels-first by convention, NumPy arrays channels-last)."""
    fa, fb = fitted(a), fitted(b)
    assert fa.keys() == fb.keys()
    for k in fa:
        if k == "layout_" and fa[k].per in ("feature", "global"):
            assert (fa[k].shape, fa[k].keep_axes) == (fb[k].shape, fb[k].keep_axes)
            continue
        np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


class Samples(Dataset):
    """A map-style dataset of (image, label) samples, as torchvision's datasets are."""

    def __init__(self, x):
        self.x = torch.from_numpy(x)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], i % 10


class Stream(IterableDataset):
    def __init__(self, x):
        self.x = x

    def __iter__(self):
        return iter(torch.from_numpy(self.x))


@pytest.fixture(scope="module")
def images(mnist_small):
    return mnist_small[:1000].transpose(0, 3, 1, 2).copy()  # (n, c, h, w) uint8, as PyTorch holds images


@pytest.mark.parametrize("batch_size", [1, 7, 128, 1000, 4096])
def test_fit_on_a_dataloader_equals_fit_on_the_concatenated_data(images, batch_size):
    x = torch.from_numpy(images)
    whole = normlab.Standardize(per="channel", channel_axis=1).fit(images)
    for loader in (DataLoader(TensorDataset(x), batch_size=batch_size),
                   DataLoader(TensorDataset(x, torch.arange(len(x))), batch_size=batch_size, shuffle=True)):
        assert_same_fit(normlab.Standardize(per="channel", channel_axis=1).fit(loader), whole)


def test_map_style_and_iterable_datasets_are_read_sample_by_sample_into_batches(images):
    for make in (lambda: normlab.Center(per="feature"), lambda: normlab.MinMax(per="channel", channel_axis=1)):
        whole = make().fit(images)
        assert_same_fit(make().fit(Samples(images)), whole)
        assert_same_fit(make().fit(Stream(images)), whole)
        assert_same_fit(make().fit(TensorDataset(torch.from_numpy(images))), whole)
        assert_same_fit(make().fit(DataLoader(Samples(images), batch_size=None)), whole)
    assert [len(b) for b in as_batches(Samples(images), batch_size=300)] == [300, 300, 300, 100]


def test_float_data_from_a_loader_matches_within_rounding(images):
    x = images.astype(np.float32) / 255
    streamed = normlab.Standardize(per="global").fit(DataLoader(Samples(x), batch_size=33))
    whole = normlab.Standardize(per="global").fit(x)
    np.testing.assert_allclose(streamed.mean_, whole.mean_, rtol=1e-13)
    np.testing.assert_allclose(streamed.var_, whole.var_, rtol=1e-12)


def test_batches_of_dicts_are_refused_with_the_fix():
    loader = [{"image": torch.zeros(2, 3)}]
    with pytest.raises(DataTypeError, match=r"Select the input, e\.g\. \(batch\['image'\] for batch in loader\)"):
        normlab.Standardize().fit(DataLoader(loader, batch_size=None))


# ---- dataset_stats: the mean and std to pass to transforms.Normalize ----------------------------------


def exact_mean_var(x: np.ndarray) -> tuple[float, float]:
    """The exact mean and variance (ddof=0) of integer data, correctly rounded to float64."""
    n = x.size
    s = int(x.sum(dtype=np.int64))
    q = int((x.astype(np.int64) ** 2).sum())
    return float(Fraction(s, n)), float(Fraction(q * n - s * s, n * n))


@pytest.fixture(scope="module")
def mnist_loader(mnist_train):
    # (60000, 1, 28, 28) uint8 as PyTorch holds images; a BatchSampler fetches each batch with one indexing
    x = torch.from_numpy(mnist_train.transpose(0, 3, 1, 2).copy())
    dataset = TensorDataset(x, torch.zeros(len(x)))
    return DataLoader(dataset, batch_size=None, sampler=BatchSampler(SequentialSampler(dataset), 4096, False))


def test_dataset_stats_on_mnist_is_exact(mnist_loader, mnist_train):
    mean, std = dataset_stats(mnist_loader)
    exact_mean, exact_var = exact_mean_var(mnist_train)
    assert mean.shape == std.shape == (1,) and mean.dtype == torch.float64
    assert mean.item() == exact_mean
    assert std.item() == np.sqrt(exact_var)
    assert round(mean.item() / 255, 6) == 0.130660 and round(std.item() / 255, 6) == 0.308108


def test_the_per_image_std_recipe_is_2_percent_off_on_mnist(mnist_loader):
    # the recipe found in forum answers: average each image's mean and std over the dataset
    mean = torch.zeros(1, dtype=torch.float64)
    std = torch.zeros(1, dtype=torch.float64)
    n = 0
    for images, _ in mnist_loader:
        images = images.to(torch.float32).view(len(images), 1, -1) / 255  # what ToTensor() gives
        mean += images.mean(2).sum(0)
        std += images.std(2).sum(0)
        n += len(images)
    mean, std = mean / n, std / n
    exact_mean, exact_std = (v / 255 for v in dataset_stats(mnist_loader))
    assert mean.item() == pytest.approx(exact_mean.item(), rel=1e-6)  # the mean survives averaging...
    shortfall = 1 - std.item() / exact_std.item()  # ...the std does not: it misses the spread between images
    assert 0.015 < shortfall < 0.03, shortfall


def test_dataset_stats_is_uint8_safe_and_channels_last_on_request():
    x = np.full((3, 4, 4, 2), 255, np.uint8)
    x[0, ..., 1] = 0
    mean, std = dataset_stats(torch.from_numpy(x), channel_axis=-1)
    assert mean.tolist() == [255.0, 170.0]
    np.testing.assert_allclose(std.numpy(), [0.0, np.std([0, 255, 255])])
