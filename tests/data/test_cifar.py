"""CIFAR-10 python batches (cifar10:DIR): small files in the original format, and hostile pickles."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

import normlab.data
from normlab.data.cifar import safe_unpickle
from normlab.errors import DatasetError


def batch(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), [
        int(v) for v in rng.integers(0, 10, size=n)
    ]


def write_batch(path: Path, data: np.ndarray, labels, *, str_keys: bool = False, **extra) -> None:
    d = {
        b"batch_label": b"training batch",
        b"labels": labels,
        b"data": data,
        b"filenames": [b"f.png"] * len(labels),
    }
    d.update({k.encode(): v for k, v in extra.items()})
    if str_keys:
        d = {k.decode(): v for k, v in d.items()}
    path.write_bytes(pickle.dumps(d, protocol=2))


def py2_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way Python 2 cPickle (protocol 2) wrote the originals: str, not bytes."""

    def s(b: bytes) -> bytes:  # Python 2 str: SHORT_BINSTRING / BINSTRING
        return (b"U" + bytes([len(b)]) if len(b) < 256 else b"T" + struct.pack("<I", len(b))) + b

    def k(i: int) -> bytes:
        return b"K" + bytes([i]) if i < 256 else b"M" + struct.pack("<H", i)

    dtype = (
        b"cnumpy\ndtype\n"
        + s(b"u1")
        + k(0)
        + k(1)
        + b"\x87R("
        + k(3)
        + s(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xff"
        + k(0)
        + b"tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + k(0)
        + b"\x85"
        + s(b"b")
        + b"\x87R("
        + k(1)
        + k(data.shape[0])
        + k(data.shape[1])
        + b"\x86"
        + dtype
        + b"\x89"
        + s(data.tobytes())
        + b"tb"
    )
    label_list = b"](" + b"".join(k(v) for v in labels) + b"e"
    return (
        b"\x80\x02}("
        + s(b"data")
        + array
        + s(b"labels")
        + label_list
        + s(b"batch_label")
        + s(b"x")
        + b"u."
    )


def make_cifar(folder: Path, sizes=(4, 5, 3, 4, 6), n_test: int = 7) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, n in enumerate(sizes, start=1):
        out[f"data_batch_{i}"] = batch(n, i)
        write_batch(folder / f"data_batch_{i}", *out[f"data_batch_{i}"])
    out["test_batch"] = batch(n_test, 99)
    write_batch(folder / "test_batch", *out["test_batch"])
    return out


def channels_last(data: np.ndarray) -> np.ndarray:
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def test_batches_are_read_channels_last_in_file_order(tmp_path):
    made = make_cifar(tmp_path)
    ds = normlab.data.open(f"cifar10:{tmp_path}")
    assert (
        ds.splits == ("train", "test") and ds.sample_shape == (32, 32, 3) and ds.dtype == np.uint8
    )
    assert ds.num_samples("train") == 22 and ds.class_names[0] == "airplane"
    x, y = ds.arrays()
    expect_x = np.concatenate([channels_last(made[f"data_batch_{i}"][0]) for i in range(1, 6)])
    expect_y = [v for i in range(1, 6) for v in made[f"data_batch_{i}"][1]]
    assert np.array_equal(x, expect_x) and y.tolist() == expect_y and y.dtype == np.int64
    # the red plane of the first image is the first 1024 bytes of its row
    assert np.array_equal(x[0, :, :, 0].ravel(), made["data_batch_1"][0][0, :1024])
    sizes = [len(b[0]) for b in ds.iter_batches(5)]
    assert sizes == [5, 5, 5, 5, 2]
    xt, yt = ds.arrays("test")
    assert (
        np.array_equal(xt, channels_last(made["test_batch"][0]))
        and yt.tolist() == made["test_batch"][1]
    )


def test_python2_pickles_like_the_originals_are_read(tmp_path):
    data, labels = batch(3, 5)
    raw = py2_pickle(data, labels)
    assert (
        pickle.loads(raw, encoding="bytes")[b"labels"] == labels
    )  # the hand-built pickle is valid
    (tmp_path / "test_batch").write_bytes(raw)
    ds = normlab.data.open(f"cifar10:{tmp_path}")
    x, y = ds.arrays()
    assert (
        ds.splits == ("test",) and np.array_equal(x, channels_last(data)) and y.tolist() == labels
    )


def test_str_keys_meta_names_and_the_batches_subfolder(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data, labels = batch(2, 1)
    write_batch(folder / "test_batch", data, labels, str_keys=True)
    names = [f"c{i}".encode() for i in range(10)]
    (folder / "batches.meta").write_bytes(
        pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2)
    )
    ds = normlab.data.open(f"cifar10:{tmp_path}")
    assert ds.class_names == tuple(f"c{i}" for i in range(10))
    assert ds.labels("test").tolist() == labels


def test_limit_is_stratified_across_batch_files(tmp_path):
    make_cifar(tmp_path, sizes=(40, 40, 40, 40, 40))
    ds = normlab.data.open(f"cifar10:{tmp_path}", limit=50, seed=3)
    x, y = ds.arrays()
    full = normlab.data.open(f"cifar10:{tmp_path}")
    counts = np.bincount(full.labels(), minlength=10)
    got = np.bincount(y, minlength=10)
    assert len(x) == 50 and np.all(np.abs(got - counts * 50 / 200) < 1)
    again, _ = normlab.data.open(f"cifar10:{tmp_path}", limit=50, seed=3).arrays()
    assert np.array_equal(x, again)


# ---------------------------------------------------------------- hostile pickles
class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_pickle_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    data, labels = batch(2, 1)
    (tmp_path / "test_batch").write_bytes(
        pickle.dumps({b"data": data, b"labels": labels, b"x": _RunsCode(marker)}, protocol=2)
    )
    with pytest.raises(
        DatasetError,
        match=r"test_batch: the pickle asks for (posix|os|nt)\.system, which a CIFAR-10 batch never contains.*refuses to run code",
    ):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()
    assert not marker.exists()


def test_pickled_builtin_eval_is_refused(tmp_path):
    raw = b"\x80\x02cbuiltins\neval\nX\x0a\x00\x00\x00__import__q\x85R."
    (tmp_path / "f").write_bytes(raw)
    with pytest.raises(DatasetError, match=r"asks for builtins\.eval"):
        safe_unpickle(tmp_path / "f")


def test_object_arrays_are_refused(tmp_path):
    (tmp_path / "test_batch").write_bytes(
        pickle.dumps({b"data": np.array([1, "a"], dtype=object), b"labels": [0]}, protocol=2)
    )
    with pytest.raises(DatasetError, match=r"only numeric dtypes are allowed"):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()


def test_ndarray_cannot_be_called_to_allocate(tmp_path):
    # REDUCE numpy.ndarray((10**12,)) directly: would allocate a terabyte if ndarray were resolved
    raw = b"\x80\x02cnumpy\nndarray\n\x8a\x05\x00\x10\xa5\xd4\xe8\x85\x85R."
    (tmp_path / "test_batch").write_bytes(raw)
    with pytest.raises(DatasetError, match=r"asks for a direct call of numpy\.ndarray"):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()


def test_values_other_than_plain_data_are_refused(tmp_path):
    data, labels = batch(2, 1)
    write_batch(tmp_path / "test_batch", data, labels, extra=1.5)
    with pytest.raises(
        DatasetError,
        match=r"the pickle holds a value of type float; expected only plain dicts, lists, bytes, ints, str",
    ):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()


def test_truncated_pickle_is_refused(tmp_path):
    make_cifar(tmp_path)
    path = tmp_path / "data_batch_2"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(
        DatasetError, match=r"data_batch_2: not a readable CIFAR-10 pickle .*truncated or corrupt"
    ):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()


def test_array_length_claim_larger_than_the_data_is_refused(tmp_path):
    data, labels = batch(2, 1)
    raw = py2_pickle(data, labels).replace(
        b"K\x02M\x00\x0c\x86", b"J\x00\xca\x9a\x3bM\x00\x0c\x86"
    )  # 10**9 rows
    (tmp_path / "test_batch").write_bytes(raw)
    with pytest.raises(
        DatasetError,
        match=r"not a readable CIFAR-10 pickle \(ValueError: buffer size does not match array size\)",
    ):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()


def test_wrong_data_shape_and_label_count_are_refused(tmp_path):
    write_batch(tmp_path / "test_batch", np.zeros((2, 100), np.uint8), [0, 1])
    with pytest.raises(
        DatasetError,
        match=r"b'data' is uint8 of shape \(2, 100\); expected uint8 of shape \(n, 3072\)",
    ):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()
    write_batch(tmp_path / "test_batch", np.zeros((2, 3072), np.uint8), [0])
    with pytest.raises(
        DatasetError,
        match="holds 1 values of type int64 for 2 images; expected one integer label per image",
    ):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()


def test_zero_byte_batch_and_missing_batches_are_named(tmp_path):
    make_cifar(tmp_path)
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(
        DatasetError,
        match=r"data_batch_3 missing from .*expected consecutive batches from data_batch_1",
    ):
        normlab.data.open(f"cifar10:{tmp_path}")
    (tmp_path / "data_batch_3").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"data_batch_3: the file is empty \(zero bytes\)"):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()


def test_cifar100_and_empty_folders_are_explained(tmp_path):
    (tmp_path / "test_batch").write_bytes(
        pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"fine_labels": [3]}, protocol=2)
    )
    with pytest.raises(DatasetError, match="this is a CIFAR-100 batch"):
        normlab.data.open(f"cifar10:{tmp_path}").arrays()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(
        DatasetError,
        match=r"no CIFAR-10 batches in .*Point the spec at the cifar-10-batches-py folder",
    ):
        normlab.data.open(f"cifar10:{empty}")
