"""NumPy files (npy:, npz:, bare paths): memory-mapping, streaming from compressed npz, refusals."""

from __future__ import annotations

import tracemalloc
import zipfile

import numpy as np
import pytest

import normlab.data
from normlab.errors import DatasetError


def test_npy_is_memory_mapped_and_streamed(tmp_path):
    x = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    np.save(tmp_path / "x.npy", x)
    ds = normlab.data.open(str(tmp_path / "x.npy"))
    assert (ds.kind, ds.splits, ds.sample_shape, ds.dtype, ds.layout) == (
        "npy",
        ("train",),
        (3,),
        np.float32,
        "(n, f)",
    )
    xa, ya = ds.arrays()
    assert isinstance(xa, np.memmap) and ya is None and np.array_equal(xa, x)
    parts = list(ds.iter_batches(16))
    assert [len(p[0]) for p in parts] == [16, 16, 8] and all(p[1] is None for p in parts)
    assert np.array_equal(np.concatenate([p[0] for p in parts]), x)


def test_fortran_order_npy_is_read_correctly(tmp_path):
    x = np.asfortranarray(np.arange(24, dtype=np.int16).reshape(6, 4))
    np.save(tmp_path / "f.npy", x)
    ds = normlab.data.open(f"npy:{tmp_path / 'f.npy'}")
    assert np.array_equal(np.concatenate([b for b, _ in ds.iter_batches(4)]), x)
    assert np.array_equal(ds.arrays()[0], x)


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
def test_npz_x_y(tmp_path, compressed):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 4, 4, 3), dtype=np.uint8)
    y = rng.integers(0, 5, size=50)
    (np.savez_compressed if compressed else np.savez)(tmp_path / "d.npz", x=x, y=y)
    ds = normlab.data.open(f"npz:{tmp_path / 'd.npz'}", validation_split=0.2)
    assert ds.sample_shape == (4, 4, 3) and ds.n_classes == 5 and ds.layout == "(n, h, w, c)"
    xa, ya = ds.arrays()
    assert np.array_equal(xa, x[:40]) and np.array_equal(ya, y[:40]) and ya.dtype == np.int64
    assert isinstance(xa, np.memmap) is (not compressed)  # stored members are mapped in place
    xv, yv = ds.arrays("validation")
    assert np.array_equal(xv, x[40:]) and np.array_equal(yv, y[40:])
    got = np.concatenate([b for b, _ in ds.iter_batches(7, split="train")])
    assert np.array_equal(got, x[:40])


def test_keras_style_npz_has_train_and_test_splits(tmp_path):
    x_train, x_test = np.zeros((6, 2, 2), np.uint8), np.ones((3, 2, 2), np.uint8)
    np.savez(
        tmp_path / "mnist.npz",
        x_train=x_train,
        y_train=np.arange(6) % 2,
        x_test=x_test,
        y_test=np.array([0, 1, 1]),
    )
    ds = normlab.data.open(f"{tmp_path / 'mnist.npz'}")
    assert ds.splits == ("train", "test") and ds.num_samples("test") == 3
    assert ds.arrays("test")[0].sum() == 12 and ds.labels("test").tolist() == [0, 1, 1]


def test_npz_keys_option_and_missing_keys(tmp_path):
    np.savez(
        tmp_path / "d.npz",
        images=np.zeros((4, 2)),
        labels=np.array([0.0, 1.0, 1.0, 2.0]),
        other=np.zeros(3),
    )
    with pytest.raises(
        DatasetError,
        match=r"d\.npz has arrays 'images', 'labels', 'other'; expected 'x' \(and 'y'\).*Pass keys=\(samples, labels\) \(CLI: --keys X Y\)",
    ):
        normlab.data.open(f"npz:{tmp_path / 'd.npz'}")
    ds = normlab.data.open(f"npz:{tmp_path / 'd.npz'}", keys=("images", "labels"))
    assert (
        ds.labels().tolist() == [0, 1, 1, 2] and ds.labels().dtype == np.int64 and ds.n_classes == 3
    )
    with pytest.raises(DatasetError, match=r"no array 'nope' in d\.npz"):
        normlab.data.open(f"npz:{tmp_path / 'd.npz'}", keys=("nope",))


def test_label_problems_are_named(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.zeros((4, 2)), y=np.zeros(3))
    with pytest.raises(
        DatasetError,
        match=r"a\.npz\[y\.npy\]: 3 labels for 4 samples; expected one label per sample",
    ):
        normlab.data.open(f"npz:{tmp_path / 'a.npz'}")
    np.savez(tmp_path / "b.npz", x=np.zeros((4, 2)), y=np.eye(4))
    with pytest.raises(DatasetError, match=r"labels of shape \(4, 4\).*save y\.argmax\(axis=1\)"):
        normlab.data.open(f"npz:{tmp_path / 'b.npz'}")


def test_object_arrays_are_never_unpickled(tmp_path):
    np.save(tmp_path / "o.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(DatasetError, match=r"the array holds Python objects.*normlab refuses"):
        normlab.data.open(f"npy:{tmp_path / 'o.npy'}")


def test_truncated_npy_is_refused_before_allocating(tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((100, 10)))
    raw = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(raw[:500])
    with pytest.raises(
        DatasetError,
        match=r"t\.npy: the header claims an array of shape \(100, 10\) float64 .* but the file has only 500 bytes",
    ):
        normlab.data.open(f"npy:{tmp_path / 't.npy'}")
    # a header that claims a huge array over a tiny payload
    header = raw[: raw.index(b"}") + 1].replace(
        b"(100, 10)", b"(10**9,)".replace(b"10**9", b"1000000000")
    )
    pad = 64 - (len(header) + 1) % 64
    header = (
        header[:8]
        + (len(header) - 10 + pad + 1).to_bytes(2, "little")
        + header[10:]
        + b" " * pad
        + b"\n"
    )
    (tmp_path / "h.npy").write_bytes(header + b"\0" * 80)
    tracemalloc.start()
    try:
        with pytest.raises(
            DatasetError,
            match=r"claims an array of shape \(1000000000, \) float64|claims an array of shape \(1000000000,\) float64",
        ):
            normlab.data.open(f"npy:{tmp_path / 'h.npy'}")
        assert tracemalloc.get_traced_memory()[1] < 2**20
    finally:
        tracemalloc.stop()


def test_corrupt_compressed_npz_fails_while_streaming_naming_the_member(tmp_path):
    x = np.random.default_rng(0).integers(0, 4, size=(1000, 100)).astype(np.uint8)
    np.savez_compressed(tmp_path / "c.npz", x=x)
    raw = bytearray((tmp_path / "c.npz").read_bytes())
    with zipfile.ZipFile(tmp_path / "c.npz") as zf:
        info = zf.getinfo("x.npy")
    middle = info.header_offset + 30 + len(info.filename) + info.compress_size // 2
    raw[middle : middle + 20] = b"\x00" * 20  # damage the deflate data; the .npy header still reads
    (tmp_path / "c.npz").write_bytes(bytes(raw))
    ds = normlab.data.open(f"npz:{tmp_path / 'c.npz'}")
    with pytest.raises(DatasetError, match=r"c\.npz\[x\.npy\]: the compressed data is corrupt"):
        for _ in ds.iter_batches(100):
            pass


def test_not_a_zip_and_empty_files(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"hello")
    with pytest.raises(DatasetError, match=r"bad\.npz: not a readable \.npz archive"):
        normlab.data.open(f"npz:{tmp_path / 'bad.npz'}")
    (tmp_path / "e.npy").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"e\.npy: the file is empty \(zero bytes\)"):
        normlab.data.open(str(tmp_path / "e.npy"))
