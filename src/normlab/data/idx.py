"""MNIST-style IDX files (``mnist:DIR``, ``fashion-mnist:DIR``), gzip-compressed or not.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one
big-endian uint32 per dimension, then the data in C order. Every header is checked against the file
before anything is allocated: an uncompressed file must be exactly as long as its header says; a
gzip file must be able to hold the claim (deflate expands at most 1032:1) and its trailer must agree
(else the stream is counted). Gzip files are then read in windows from one stream, uncompressed files
by seeking, and ``arrays()`` memory-maps uncompressed image files.
"""

from __future__ import annotations

import functools
import math
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from normlab.data._base import LoadedDataset, Source
from normlab.data._readers import (
    RawArray,
    StreamArray,
    check_fits,
    check_gzip_length,
    is_gzip,
    nice_bytes,
    open_stream,
    read_exact,
)
from normlab.data._selection import Batch, Selection, as_key, windows
from normlab.data._text import brief
from normlab.errors import DatasetError

__all__ = ["IdxHeader", "IdxSource", "load_idx_dataset", "read_idx_header"]

#: IDX type code -> dtype (big-endian, as stored).
IDX_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: Labels read per window when they are checked or gathered.
_LABEL_ROWS = 1 << 20

_FIX = "Download or copy the file again (the original .gz files can be checked against their md5)."


@dataclass(frozen=True)
class IdxHeader:
    """What an IDX header says, already checked against the file's size."""

    path: Path
    gzip: bool
    dtype: np.dtype
    dims: tuple[int, ...]
    offset: int

    @property
    def data_bytes(self) -> int:
        return math.prod(self.dims) * self.dtype.itemsize

    def reader(self) -> RawArray | StreamArray:
        if self.gzip:  # (a partial, not a lambda: a shard of the file pickles)
            path = self.path
            opener = functools.partial(open_stream, path)
            return StreamArray(opener, self.offset, self.dtype, self.dims, str(path), _FIX)
        return RawArray(self.path, self.offset, self.dtype, self.dims)


def read_idx_header(path: Path, *, ndim: int | None = None, what: str = "IDX file") -> IdxHeader:
    """Parse and check the header of the IDX file at ``path`` (gzip or not).

    Raises :class:`DatasetError` naming the file for a zero-byte or short file, a wrong magic number,
    a dimension count other than ``ndim``, or a claimed size the file cannot hold.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DatasetError(f"{path}: the file is empty (zero bytes); expected an {what}. {_FIX}")
    gz = is_gzip(path)
    try:
        with open_stream(path) as f:
            head = read_exact(f, 4)
            dims_raw = read_exact(f, 4 * head[3]) if len(head) == 4 else b""
    except (EOFError, OSError, zlib.error) as exc:
        raise DatasetError(
            f"{path}: cannot read the IDX header ({brief(str(exc), 120, quotes=False)}); expected an {what}. {_FIX}"
        ) from None
    if len(head) < 4:
        raise DatasetError(
            f"{path}: the file is {len(head)} bytes long, too short for an IDX header; expected an {what}. {_FIX}"
        )
    magic = struct.unpack(">I", head)[0]
    expected = f"0x000008{ndim:02X}" if ndim else "0x000008NN"
    if head[0] != 0 or head[1] != 0 or head[2] not in IDX_TYPES or head[3] == 0:
        raise DatasetError(
            f"{path}: wrong IDX magic number 0x{magic:08X}; expected {expected} for an {what} (two zero bytes, "
            "a type code, the number of dimensions). This is not an IDX file: check that the spec points at "
            "the MNIST-style files (e.g. train-images-idx3-ubyte.gz)."
        )
    if ndim is not None and head[3] != ndim:
        raise DatasetError(
            f"{path}: the IDX header says {head[3]} dimensions; expected {ndim} for an {what} "
            f"(magic {expected}). Check that image and label files are not swapped."
        )
    if len(dims_raw) < 4 * head[3]:
        raise DatasetError(
            f"{path}: the file ends inside the IDX header; expected {4 + 4 * head[3]} header bytes. {_FIX}"
        )
    dims = struct.unpack(f">{head[3]}I", dims_raw)
    header = IdxHeader(path, gz, IDX_TYPES[head[2]], tuple(dims), 4 + 4 * head[3])
    claimed = header.offset + header.data_bytes
    shape = " x ".join(f"{d:,}" for d in dims)
    claim = f"its IDX header ({shape} items of {header.dtype.itemsize} byte(s))"
    if gz:
        check_gzip_length(path, claimed, claim, _FIX)
    elif size != claimed:
        problem = (
            "the file is truncated"
            if size < claimed
            else f"{nice_bytes(size - claimed)} follow the data"
        )
        raise DatasetError(
            f"{path}: {claim} needs {nice_bytes(claimed)} but the file has {nice_bytes(size)} ({problem}); "
            f"expected the two to agree. {_FIX}"
        )
    return header


class IdxSource(Source):
    """One split of an IDX dataset: an images file and its labels file, both read a window at a time.

    The labels are checked (classes 0-9) at open by one streaming pass; they are not kept, so memory stays
    one batch however many items a header claims.
    """

    def __init__(
        self, images: IdxHeader, labels: IdxHeader, sample_shape: tuple[int, ...]
    ) -> None:
        self.header = images
        self.reader = images.reader()
        self.label_reader = labels.reader()
        self.label_path = labels.path
        self.n = images.dims[0]
        self.sample_shape = sample_shape
        # A gzip file is one stream from its start: cutting it into shards saves no reading.
        self.sequential = isinstance(self.reader, StreamArray)
        self.rereads_fast = not self.sequential  # a raw file: read again from the page cache

    def labels(self) -> np.ndarray:
        check_fits(8 * self.n, f"{self.label_path}: the {self.n:,} labels as int64", _FIX)
        out = np.empty(self.n, dtype=np.int64)
        for start, y in zip(range(0, self.n, _LABEL_ROWS), self._label_windows(None, _LABEL_ROWS), strict=True):
            out[start : start + len(y)] = y
        return out

    def _label_windows(self, plan: list | None, rows: int) -> Iterator[np.ndarray]:
        spans = ((a, min(a + rows, self.n)) for a in range(0, self.n, rows)) if plan is None else (
            (start, stop) for start, stop, _ in plan)  # fmt: skip
        return self.label_reader.iter_windows(spans)

    def pieces(self, sel: Selection, rows: int, materialize: bool = False) -> Iterator[Batch]:
        plan = list(windows(self.n, sel, rows))
        arrays = self.reader.iter_windows((start, stop) for start, stop, _ in plan)
        labels = self._label_windows(plan, rows)
        for (_start, _stop, local), x, y in zip(plan, arrays, labels, strict=True):
            x = x.reshape(len(x), *self.sample_shape)
            y = y.astype(np.int64)
            if local is not None:
                x, y = x[local], y[local]
            yield x, y

    def materialize(self, sel: Selection) -> Batch | None:
        if not isinstance(self.reader, RawArray) or not self.header.dtype.isnative:
            return None
        x = self.reader.memmap().reshape(self.n, *self.sample_shape)
        y = self.labels()
        if sel is None:
            return x, y
        key = as_key(sel)
        return x[key], y[key]


def _check_labels(header: IdxHeader, kind: str) -> None:
    """Stream the labels file once (a window at a time) and check every label is a class 0-9."""
    n = header.dims[0]
    spans = ((a, min(a + _LABEL_ROWS, n)) for a in range(0, n, _LABEL_ROWS))
    for start, y in zip(range(0, n, _LABEL_ROWS), header.reader().iter_windows(spans), strict=True):
        if len(y) and (y.min() < 0 or y.max() > 9):
            bad = int(np.flatnonzero((y < 0) | (y > 9))[0])
            raise DatasetError(
                f"{header.path}: label {int(y[bad])} at index {start + bad:,}; expected classes 0-9 for {kind}. The "
                "file is corrupt or belongs to another dataset."
            )


_PATTERN = r"(^|[-_.]){split}[-_.]{part}[-_.]idx{ndim}[-_.]ubyte(\.gz)?$"
_SPLIT_FILES = {"train": "train", "test": "t10k"}


def _find(folder: Path, split_word: str, part: str, ndim: int) -> Path | None:
    words = ("t10k", "test") if split_word == "t10k" else (split_word,)
    found: list[Path] = []
    for word in words:
        rx = re.compile(_PATTERN.format(split=word, part=part, ndim=ndim))
        found += [p for p in folder.iterdir() if p.is_file() and rx.search(p.name)]
    if not found:
        return None
    # An uncompressed copy can be memory-mapped: prefer it.
    found.sort(key=lambda p: (p.suffix == ".gz", p.name))
    return found[0]


def _candidate_folders(folder: Path) -> list[Path]:
    out = [folder]
    for sub in ("raw", "MNIST/raw", "FashionMNIST/raw"):
        if (folder / sub).is_dir():
            out.append(folder / sub)
    return out


def load_idx_dataset(kind: str, folder: Path, name: str, **options: object) -> LoadedDataset:
    """Open the IDX files of ``mnist:DIR`` or ``fashion-mnist:DIR`` (see the module docstring)."""
    sources: dict[str, Source] = {}
    looked: list[Path] = []
    sample_shape: tuple[int, ...] | None = None
    dtype = np.dtype("u1")
    for candidate in _candidate_folders(folder):
        looked.append(candidate)
        for split, word in _SPLIT_FILES.items():
            img = _find(candidate, word, "images", 3)
            lab = _find(candidate, word, "labels", 1)
            if img is None and lab is None:
                continue
            if img is None or lab is None:
                have, missing = (img, "labels") if lab is None else (lab, "images")
                raise DatasetError(
                    f"{name}: found {have.name} but no {word}-{missing}-idx{3 if missing == 'images' else 1}-ubyte[.gz] "  # type: ignore[union-attr]
                    f"in {candidate}; expected both the images and the labels of the {split} split. Copy the "
                    "missing file next to it."
                )
            images = read_idx_header(img, ndim=3, what="IDX images file")
            labels_h = read_idx_header(lab, ndim=1, what="IDX labels file")
            if labels_h.dims[0] != images.dims[0]:
                raise DatasetError(
                    f"{name}: {lab.name} has {labels_h.dims[0]:,} labels but {img.name} has "
                    f"{images.dims[0]:,} images; expected one label per image. The two files come from "
                    "different datasets or one of them is truncated; copy them again."
                )
            if labels_h.dtype.kind not in "iu":
                raise DatasetError(
                    f"{lab}: labels are stored as {labels_h.dtype.name}; expected an integer type (IDX type "
                    "code 0x08). Check that image and label files are not swapped."
                )
            shape = (*images.dims[1:], 1)
            if sample_shape is not None and shape != sample_shape:
                raise DatasetError(
                    f"{name}: the train images are {sample_shape[:-1]} but {img.name} holds {shape[:-1]}; "
                    "expected one image size for all splits. Check that the files belong together."
                )
            sample_shape, dtype = shape, images.dtype.newbyteorder("=")
            _check_labels(labels_h, kind)
            sources[split] = IdxSource(images, labels_h, shape)
        if sources:
            break
    if not sources:
        where = ", ".join(str(p) for p in looked)
        names = sorted(p.name for p in folder.iterdir())[:8]
        raise DatasetError(
            f"{name}: no MNIST-style IDX files in {where} (found: {', '.join(names) or 'nothing'}); expected "
            "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and "
            "t10k-labels-idx1-ubyte.gz (gzip-compressed or not). Point the spec at the folder that holds them."
        )
    assert sample_shape is not None
    classes = FASHION_CLASSES if kind == "fashion-mnist" else MNIST_CLASSES
    return LoadedDataset(
        kind=kind,
        name=name,
        sources=sources,
        sample_shape=sample_shape,
        dtype=dtype,
        n_classes=10,
        class_names=classes,
        **options,  # type: ignore[arg-type]
    )
