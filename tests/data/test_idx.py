"""IDX files (mnist:/fashion-mnist:): small files built here, good and hostile."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import normlab.data
from normlab.errors import DatasetError

CODES = {
    np.dtype("u1"): 0x08,
    np.dtype("i1"): 0x09,
    np.dtype(">i2"): 0x0B,
    np.dtype(">i4"): 0x0C,
    np.dtype(">f4"): 0x0D,
}


def idx_bytes(
    a: np.ndarray, dims: tuple[int, ...] | None = None, magic: bytes | None = None
) -> bytes:
    dt = a.dtype.newbyteorder(">") if a.dtype.itemsize > 1 else a.dtype
    dims = a.shape if dims is None else dims
    head = magic if magic is not None else bytes([0, 0, CODES[dt], len(dims)])
    return head + struct.pack(f">{len(dims)}I", *dims) + a.astype(dt).tobytes()


def images(n: int, seed: int = 0, h: int = 6, w: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w), dtype=np.uint8)


def write(path: Path, data: bytes, gz: bool) -> Path:
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def make_idx(folder: Path, n_train: int = 30, n_test: int = 12, gz: bool = True) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for word, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        x = images(n, seed)
        y = (np.arange(n) % 10).astype(np.uint8)
        out[word] = (x, y)
        write(folder / f"{word}-images-idx3-ubyte", idx_bytes(x), gz)
        write(folder / f"{word}-labels-idx1-ubyte", idx_bytes(y), gz)
    return out


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_small_idx_files_round_trip(tmp_path, gz):
    data = make_idx(tmp_path, gz=gz)
    ds = normlab.data.open(f"mnist:{tmp_path}")
    assert ds.splits == ("train", "test") and ds.sample_shape == (6, 5, 1)
    for split, word in (("train", "train"), ("test", "t10k")):
        x, y = ds.arrays(split)
        assert np.array_equal(x[..., 0], data[word][0]) and np.array_equal(y, data[word][1])
        batches = list(ds.iter_batches(7, split=split))
        assert [len(b[0]) for b in batches][:-1] == [7] * (len(batches) - 1)
        assert np.array_equal(np.concatenate([b[0] for b in batches]), x)


def test_uncompressed_arrays_are_memory_mapped_copy_on_write(tmp_path):
    make_idx(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    before = path.read_bytes()
    x, _ = normlab.data.open(f"mnist:{tmp_path}").arrays()
    assert isinstance(x, np.memmap) and x.flags.writeable
    x[:] = 0  # copy-on-write: the file never changes
    assert path.read_bytes() == before


def test_big_endian_idx_types_come_back_native(tmp_path):
    x = np.arange(4 * 3 * 2, dtype=np.int16).reshape(4, 3, 2) * 1000 - 9000
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(x), gz=False)
    write(
        tmp_path / "train-labels-idx1-ubyte", idx_bytes(np.array([0, 1, 2, 3], np.uint8)), gz=False
    )
    ds = normlab.data.open(f"mnist:{tmp_path}")
    assert ds.dtype == np.int16 and ds.dtype.isnative
    xb, _ = next(ds.iter_batches())
    assert xb.dtype.isnative and np.array_equal(xb[..., 0], x)
    assert np.array_equal(ds.arrays()[0][..., 0], x)


def test_torchvision_layout_is_found(tmp_path):
    make_idx(tmp_path / "MNIST" / "raw")
    assert normlab.data.open(f"mnist:{tmp_path}").num_samples("test") == 12


# ---------------------------------------------------------------- hostile and broken files
def test_truncated_gz_names_the_file(tmp_path):
    make_idx(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(
        DatasetError,
        match=r"train-images-idx3-ubyte\.gz: the gzip stream ends early \(truncated file\)",
    ):
        normlab.data.open(f"mnist:{tmp_path}")


def test_corrupt_gz_with_a_plausible_trailer_fails_while_streaming(tmp_path):
    make_idx(tmp_path, n_train=200)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 40] = (
        b"\xff" * 40
    )  # damage the deflate data, keep the trailer
    path.write_bytes(bytes(raw))
    ds = normlab.data.open(f"mnist:{tmp_path}")  # the header and trailer still agree
    with pytest.raises(
        DatasetError,
        match=r"train-images-idx3-ubyte\.gz: the compressed (data is corrupt|stream ends early)",
    ):
        for _ in ds.iter_batches(50):
            pass


def test_concatenated_gzip_members_are_accepted(tmp_path):
    make_idx(tmp_path, gz=False)
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").unlink()
    half = len(data) // 2  # two members: the trailer only records the second one's length
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(data[:half]) + gzip.compress(data[half:])
    )
    x, _ = normlab.data.open(f"mnist:{tmp_path}").arrays()
    assert x.shape == (30, 6, 5, 1)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_wrong_magic_is_refused(tmp_path, gz):
    make_idx(tmp_path, gz=gz)
    name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    write(tmp_path / "t10k-images-idx3-ubyte", b"\x89PNG\r\n\x1a\n" + bytes(100), gz)
    with pytest.raises(
        DatasetError, match=rf"{name}: wrong IDX magic number 0x89504E47; expected 0x00000803"
    ):
        normlab.data.open(f"mnist:{tmp_path}")


def test_swapped_files_are_named(tmp_path):
    make_idx(tmp_path, gz=False)
    labels = (tmp_path / "train-labels-idx1-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(labels)
    with pytest.raises(DatasetError, match=r"says 1 dimensions; expected 3.*not swapped"):
        normlab.data.open(f"mnist:{tmp_path}")


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
def test_header_claiming_10_to_the_12_items_is_refused_before_allocating(tmp_path, gz):
    make_idx(tmp_path, gz=gz)
    hostile = idx_bytes(images(3), dims=(1_000_000, 1_000, 1_000))  # 10**12 one-byte items
    write(tmp_path / "train-images-idx3-ubyte", hostile, gz)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetError) as info:
            normlab.data.open(f"mnist:{tmp_path}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(info.value)
    assert "train-images-idx3-ubyte" in message and "1,000,000 x 1,000 x 1,000" in message
    if gz:
        assert "more than a gzip file of" in message and "can hold" in message
    else:
        assert (
            "needs 1,000,000,000,016 bytes but the file has 106 bytes (the file is truncated)"
            in message
        )
    assert peak < 2**20


def test_gzip_trailer_disagreeing_with_the_header_is_refused(tmp_path):
    make_idx(tmp_path)
    claim_more = idx_bytes(images(30), dims=(31, 6, 5))  # header says 31 images, data holds 30
    write(tmp_path / "train-images-idx3-ubyte", claim_more, gz=True)
    with pytest.raises(
        DatasetError,
        match=r"decompresses to 916 bytes but its IDX header .* needs exactly 946 bytes",
    ):
        normlab.data.open(f"mnist:{tmp_path}")


def test_raw_file_with_trailing_bytes_is_refused(tmp_path):
    make_idx(tmp_path, gz=False)
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes() + b"\0\0\0")
    with pytest.raises(DatasetError, match=r"3 bytes follow the data"):
        normlab.data.open(f"mnist:{tmp_path}")


def test_label_count_disagreeing_with_images_is_refused(tmp_path):
    make_idx(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(11, np.uint8)), gz=True)
    with pytest.raises(
        DatasetError,
        match=r"t10k-labels-idx1-ubyte\.gz has 11 labels but t10k-images-idx3-ubyte\.gz has 12 images; expected one label per image",
    ):
        normlab.data.open(f"mnist:{tmp_path}")


def test_zero_byte_file_is_refused(tmp_path):
    make_idx(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(b"")
    with pytest.raises(
        DatasetError, match=r"train-labels-idx1-ubyte\.gz: the file is empty \(zero bytes\)"
    ):
        normlab.data.open(f"mnist:{tmp_path}")


def test_labels_outside_0_to_9_are_refused(tmp_path):
    make_idx(tmp_path)
    y = np.zeros(12, np.uint8)
    y[5] = 200
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(y), gz=True)
    with pytest.raises(DatasetError, match="label 200 at index 5; expected classes 0-9"):
        normlab.data.open(f"mnist:{tmp_path}")


def test_missing_labels_file_is_named(tmp_path):
    make_idx(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        DatasetError,
        match=r"found t10k-images-idx3-ubyte\.gz but no t10k-labels-idx1-ubyte\[\.gz\]",
    ):
        normlab.data.open(f"mnist:{tmp_path}")


def test_folder_without_idx_files_lists_what_it_has(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(
        DatasetError,
        match=r"no MNIST-style IDX files in .*\(found: notes\.txt\); expected train-images-idx3-ubyte\.gz",
    ):
        normlab.data.open(f"fashion-mnist:{tmp_path}")
