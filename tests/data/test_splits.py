"""Splits, limits and batches: the same samples whichever way a split is read."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import normlab.data
from normlab.data._selection import rebatch, select_rows, windows
from normlab.errors import DatasetError


def test_validation_split_takes_the_last_fraction_like_keras():
    full_x, full_y = normlab.data.open("wine").arrays()
    ds = normlab.data.open("wine", validation_split=0.25)
    split_at = math.floor(
        178 * (1 - 0.25)
    )  # keras: int(math.floor(batch_dim * (1.0 - validation_split)))
    x, y = ds.arrays("train")
    xv, yv = ds.arrays("validation")
    assert split_at == 133 and len(x) == 133 and len(xv) == 45
    assert np.array_equal(x, full_x[:133]) and np.array_equal(xv, full_x[133:])
    assert np.array_equal(y, full_y[:133]) and np.array_equal(yv, full_y[133:])
    assert ds.splits == ("train", "validation") and ds.default_split == "train"


def test_shuffled_split_is_seeded_disjoint_and_complete():
    a = normlab.data.open("wine", validation_split=0.2, shuffle_split=True, seed=7)
    b = normlab.data.open("wine", validation_split=0.2, shuffle_split=True, seed=7)
    c = normlab.data.open("wine", validation_split=0.2, shuffle_split=True, seed=8)
    full, _ = normlab.data.open("wine").arrays()
    train, val = a.arrays("train")[0], a.arrays("validation")[0]
    assert len(train) == 142 and len(val) == 36
    rows = {r.tobytes(): i for i, r in enumerate(full)}
    ti, vi = [rows[r.tobytes()] for r in train], [rows[r.tobytes()] for r in val]
    assert sorted(ti + vi) == list(range(178)) and ti == sorted(ti) and vi == sorted(vi)
    assert np.array_equal(val, b.arrays("validation")[0])
    assert not np.array_equal(val, c.arrays("validation")[0])
    assert vi != list(range(142, 178))  # not the Keras tail


def test_limit_is_stratified_and_seeded():
    ds = normlab.data.open("breast-cancer", limit=100, seed=1)
    counts = ds.class_counts()  # 212 malignant, 357 benign in 569: 37.26 and 62.74 of 100
    assert counts.tolist() == [37, 63] and ds.num_samples() == 100
    same = normlab.data.open("breast-cancer", limit=100, seed=1)
    other = normlab.data.open("breast-cancer", limit=100, seed=2)
    assert np.array_equal(ds.arrays()[0], same.arrays()[0])
    assert not np.array_equal(ds.arrays()[0], other.arrays()[0])
    assert normlab.data.open("breast-cancer", limit=10_000).num_samples() == 569


def test_limit_applies_before_the_validation_split():
    ds = normlab.data.open("digits", limit=200, validation_split=0.1)
    assert ds.num_samples("train") == 180 and ds.num_samples("validation") == 20
    limited = normlab.data.open("digits", limit=200).arrays()[0]
    assert np.array_equal(ds.arrays("validation")[0], limited[180:])


def test_split_names_and_hints():
    ds = normlab.data.open("digits")
    with pytest.raises(
        DatasetError,
        match=r"digits has no split 'validation'.*Pass validation_split=0\.2 \(CLI: --validation-split 0\.2\)",
    ):
        ds.arrays("validation")
    with pytest.raises(
        DatasetError, match=r"no split 'test'.*This dataset has no test split of its own"
    ):
        ds.num_samples("test")
    with pytest.raises(DatasetError, match=r"too few to hold out validation_split=0\.5"):
        normlab.data.open("digits", limit=1, validation_split=0.5).arrays("validation")
    with pytest.raises(DatasetError, match=r"batch_size=0 is not a positive integer"):
        next(ds.iter_batches(0))


def test_default_batch_is_about_8_mib():
    ds = normlab.data.open("digits")  # 64 float64 = 512 bytes per sample -> 16384 > 1797
    assert [len(x) for x, _ in ds.iter_batches()] == [1797]
    big = normlab.data.from_arrays(np.zeros((5, 1024, 1024, 3), np.uint8))
    assert [len(x) for x, _ in big.iter_batches()] == [2, 2, 1]


def test_builtin_arrays_are_fresh_copies():
    ds = normlab.data.open("wine")
    x, _ = ds.arrays()
    x[:] = 0
    assert ds.arrays()[0].max() > 1000 and next(ds.iter_batches())[0].max() > 1000


def test_from_arrays_checks_labels():
    with pytest.raises(
        DatasetError, match=r"y has shape \(3,\); expected \(4,\), one label per sample"
    ):
        normlab.data.from_arrays(np.zeros((4, 2)), np.zeros(3))


def test_windows_skip_unselected_blocks():
    sel = np.array([1, 2, 3, 10, 11, 25], dtype=np.int64)
    assert [
        (a, b, None if loc is None else loc.tolist()) for a, b, loc in windows(30, sel, 10)
    ] == [
        (0, 10, [1, 2, 3]),
        (10, 20, [0, 1]),
        (20, 30, [5]),
    ]
    assert [(a, b, loc) for a, b, loc in windows(25, range(5, 25), 10)] == [
        (5, 15, None),
        (15, 25, None),
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 60),
    chunk=st.integers(1, 25),
    batch=st.integers(1, 30),
    pick=st.one_of(st.none(), st.lists(st.integers(0, 59), unique=True)),
)
def test_any_chunking_gives_the_selected_rows_in_order(n, chunk, batch, pick):
    x = np.arange(n * 2).reshape(n, 2)
    y = np.arange(n)
    sel = None if pick is None else np.array(sorted(p for p in pick if p < n), dtype=np.int64)
    chunks = ((x[i : i + chunk], y[i : i + chunk]) for i in range(0, n, chunk))
    out = list(rebatch(select_rows(chunks, sel), batch))
    expect = y if sel is None else y[sel]
    got = np.concatenate([b[1] for b in out]) if out else np.empty(0, int)
    assert got.tolist() == expect.tolist()
    assert all(len(b[0]) == batch for b in out[:-1])
    if out:
        assert np.array_equal(np.concatenate([b[0] for b in out]), x[expect])


@pytest.fixture(scope="module")
def npz_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("npz")
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(97, 3, 2), dtype=np.uint8)
    y = rng.integers(0, 4, size=97)
    np.savez(folder / "stored.npz", x=x, y=y)
    np.savez_compressed(folder / "deflated.npz", x=x, y=y)
    return folder, x, y


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["stored.npz", "deflated.npz"]),
    limit=st.one_of(st.none(), st.integers(5, 120)),
    vs=st.one_of(st.none(), st.sampled_from([0.1, 0.25, 0.5])),
    shuffle=st.booleans(),
    batch=st.integers(1, 40),
    seed=st.integers(0, 3),
)
def test_batches_and_arrays_agree_for_every_split(
    npz_files, which, limit, vs, shuffle, batch, seed
):
    folder, x_all, y_all = npz_files
    ds = normlab.data.open(
        f"npz:{folder / which}", limit=limit, validation_split=vs, shuffle_split=shuffle, seed=seed
    )
    seen = []
    for split in ds.splits:
        x, y = ds.arrays(split)
        parts = list(ds.iter_batches(batch, split=split))
        assert np.array_equal(np.concatenate([p[0] for p in parts]), x)
        assert np.array_equal(np.concatenate([p[1] for p in parts]), y)
        assert len(x) == ds.num_samples(split) and np.array_equal(ds.labels(split), y)
        rows = [int(np.flatnonzero((x_all == r).all(axis=(1, 2)))[0]) for r in x]
        assert rows == sorted(rows)  # file order kept
        assert np.array_equal(y_all[rows], y)
        seen += rows
    assert len(seen) == len(set(seen)) == min(97, limit or 97)
