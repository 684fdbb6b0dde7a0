"""Every dataset kind opens through the loader its Kind names, and cuts itself into shards that add up.

A split cut into any number of shards (pickled, as a Dask worker receives them) yields bit for bit the
samples and labels of the split, in file order, and so the same statistics as the unsharded split:
bit-identical for integer data, equal to rounding for floats (whose sums depend on batch boundaries).
"""

from __future__ import annotations

import dataclasses
import gzip
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import normlab
import normlab.data
from normlab.data import KINDS, Shard

FIELDS = ("count", "mean", "var", "min", "max")


def _sklearn(name: str) -> Callable:
    def make(folder: Path, shared: Path) -> tuple[str, dict]:
        pytest.importorskip("sklearn")
        return name, {}

    return make


def _idx(kind: str, sub: str) -> Callable:
    def make(folder: Path, shared: Path) -> tuple[str, dict]:
        folder.mkdir(parents=True)
        for name in (
            "t10k-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
        ):  # the test split only: small
            shutil.copy(shared / sub / f"{name}.gz", folder / f"{name}.gz")
        return f"{kind}:{folder}", {}

    return make


def _mnist_uncompressed(folder: Path, shared: Path) -> tuple[str, dict]:
    folder.mkdir(parents=True)
    for name in (
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):  # read by seeking, not streamed
        with (
            gzip.open(shared / "mnist" / f"{name}.gz", "rb") as src,
            open(folder / name, "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
    return f"mnist:{folder}", {}


def _cifar(folder: Path, shared: Path) -> tuple[str, dict]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    for name, n in (
        ("data_batch_1", 30),
        ("data_batch_2", 20),
        ("data_batch_3", 25),
        ("test_batch", 10),
    ):
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    return f"cifar10:{folder}", {}


def _images(folder: Path, shared: Path) -> tuple[str, dict]:
    image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(5)
    for cls, n in (("cat", 13), ("dog", 11)):
        (folder / cls).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
            image.fromarray(pixels).save(folder / cls / f"{i:03d}.png")
    (folder / "dog" / "005-broken.png").write_bytes(b"not a png at all")
    return f"images:{folder}", {"on_error": "skip"}


def _table(rng: np.random.Generator, n: int = 500):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame(
        {
            "a": rng.integers(-50, 50, n),
            "b": rng.normal(size=n).round(3),
            "label": rng.integers(0, 3, n),
        }
    )


def _csv(folder: Path, shared: Path) -> tuple[str, dict]:
    folder.mkdir(parents=True)
    _table(np.random.default_rng(6)).to_csv(folder / "t.csv", index=False)
    return f"csv:{folder / 't.csv'}", {"target": "label"}


def _parquet(folder: Path, shared: Path) -> tuple[str, dict]:
    pytest.importorskip("pyarrow")
    folder.mkdir(parents=True)
    _table(np.random.default_rng(7)).to_parquet(folder / "t.parquet", row_group_size=70)
    return f"parquet:{folder / 't.parquet'}", {"target": "label"}


def _npy(folder: Path, shared: Path) -> tuple[str, dict]:
    folder.mkdir(parents=True)
    np.save(
        folder / "x.npy",
        np.random.default_rng(8).integers(0, 4096, (300, 4, 5, 2), dtype=np.uint16),
    )
    return str(folder / "x.npy"), {}


def _npz(compressed: bool) -> Callable:
    def make(folder: Path, shared: Path) -> tuple[str, dict]:
        folder.mkdir(parents=True)
        rng = np.random.default_rng(9)
        arrays = {"x_train": rng.normal(size=(200, 7)), "y_train": rng.integers(0, 4, 200),
                  "x_test": rng.normal(size=(50, 7)), "y_test": rng.integers(0, 4, 50)}  # fmt: skip
        (np.savez_compressed if compressed else np.savez)(folder / "d.npz", **arrays)
        return f"npz:{folder / 'd.npz'}", {}

    return make


#: One way to make a dataset of every kind in KINDS (a new kind needs an entry here).
KIND_CASES: dict[str, Callable] = {
    "digits": _sklearn("digits"),
    "breast-cancer": _sklearn("breast-cancer"),
    "wine": _sklearn("wine"),
    "mnist": _idx("mnist", "mnist"),
    "fashion-mnist": _idx("fashion-mnist", "fashion-mnist"),
    "cifar10": _cifar,
    "images": _images,
    "csv": _csv,
    "parquet": _parquet,
    "npy": _npy,
    "npz": _npz(compressed=False),
}

#: Every way a source cuts itself: the kinds above, plus readers whose cuts differ for the same kind.
SHARD_CASES = {
    **KIND_CASES,
    "mnist-uncompressed": _mnist_uncompressed,
    "npz-compressed": _npz(compressed=True),
}


def assert_same_statistics(got, want) -> None:
    """Bit-identical for integer data (summed exactly); floats agree to rounding (other batch boundaries)."""
    assert (got.per, got.layout, got.sample_shape, got.n_samples, got.dtype) == (
        want.per, want.layout, want.sample_shape, want.n_samples, want.dtype,
    )  # fmt: skip
    exact = np.dtype(want.dtype).kind in "biu"
    for name in FIELDS:
        a, b = getattr(got, name), getattr(want, name)
        if exact or name in ("count", "min", "max"):
            np.testing.assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(
                a, b, rtol=1e-13, atol=1e-13 * float(np.max(np.abs(b))), err_msg=name
            )


def test_the_kind_cases_cover_every_kind():
    assert set(KIND_CASES) == set(KINDS)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_opens_through_the_loader_its_kind_names(
    name, monkeypatch, tmp_path, shared_data
):
    kind = KINDS[name]
    assert kind.load.__module__.startswith("normlab.data.")
    calls = []

    def spy(*args, **kwargs):
        calls.append(args[0])
        return kind.load(*args, **kwargs)

    monkeypatch.setitem(KINDS, name, dataclasses.replace(kind, load=spy))
    spec, options = KIND_CASES[name](tmp_path / name, shared_data)
    ds = normlab.data.open(spec, **options)
    assert calls == [name]
    assert ds.kind == name


@pytest.mark.filterwarnings(
    "ignore:.*skipped 1 unreadable image file:normlab.errors.NormlabWarning"
)
@pytest.mark.parametrize("subset", [False, True], ids=["whole", "limit"])
@pytest.mark.parametrize("case", sorted(SHARD_CASES))
def test_shards_of_every_format_hold_the_split_and_give_the_same_statistics(
    case, subset, tmp_path, shared_data
):
    spec, options = SHARD_CASES[case](tmp_path / case, shared_data)
    if subset:
        options["limit"] = 17  # a stratified selection: the shards are cut from it
    ds = normlab.data.open(spec, **options)
    for split in ds.splits:
        want_x, want_y = ds.arrays(split)
        want = normlab.stats(ds, split=split)
        for n_shards in (1, 3, 7):
            shards = [
                pickle.loads(pickle.dumps(s)) for s in ds.shards(split, n_shards, batch_size=4)
            ]
            assert 1 <= len(shards) <= n_shards and all(isinstance(s, Shard) for s in shards)
            per_shard = [list(s) for s in shards]  # each read once: skipped files come back once
            batches = [batch for read in per_shard for batch in read]
            np.testing.assert_array_equal(np.concatenate([x for x, _ in batches]), want_x)
            if batches[0][1] is not None:  # (byte ranges of a CSV file do not read the labels)
                np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), want_y)
            if all(s.n is not None for s in shards):  # (n counts the files of skipped images too)
                got = [
                    sum(len(x) for x, _ in b) + len(s.skipped)
                    for s, b in zip(shards, per_shard, strict=True)
                ]
                assert [s.n for s in shards] == got
            assert_same_statistics(normlab.stats(iter(batches)), want)
            if case == "images":
                assert [Path(p).name for s in shards for p, _ in s.skipped] == ["005-broken.png"]


def test_natural_cut_points_and_streams(tmp_path, shared_data):
    parquet = normlab.data.open(*_parquet(tmp_path / "p", shared_data)[:1], target="label")
    assert [s.n for s in parquet.shards(n_shards=3)] == [210, 140, 150]  # whole row groups of 70
    assert [
        s.n for s in normlab.data.open(_cifar(tmp_path / "c", shared_data)[0]).shards(n_shards=3)
    ] == [30, 20, 25]
    csv = normlab.data.open(_csv(tmp_path / "t", shared_data)[0], target="label").shards(n_shards=4)
    assert [s.n for s in csv] == [None] * 4 and "bytes" in repr(csv[0])
    gz = normlab.data.open(_idx("mnist", "mnist")(tmp_path / "m", shared_data)[0])
    assert len(gz.shards("test")) == 1  # one gzip stream: cutting it saves no reading
    assert len(gz.shards("test", 3)) == 3
    with pytest.raises(
        normlab.errors.DatasetError, match=r"shards\(n_shards=0\) is not a positive integer"
    ):
        gz.shards("test", 0)
