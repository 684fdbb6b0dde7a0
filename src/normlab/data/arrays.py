"""NumPy files (``npy:FILE``, ``npz:FILE``, or a bare path ending ``.npy``/``.npz``).

``.npy``: one array, the samples (no labels). ``.npz``: arrays ``x`` and optionally ``y``; or
``x_train``/``y_train`` with ``x_test``/``y_test`` (and ``x_val``/``y_val``) as splits, the layout of
``keras.datasets``' ``mnist.npz``; or the names given by ``keys=(samples, labels)``.

Nothing is unpickled (object arrays are refused). Uncompressed arrays, including those stored in an
``.npz`` made by ``np.savez``, are read by seeking and memory-mapped (copy-on-write) by ``arrays()``;
arrays in an ``np.savez_compressed`` file are streamed from the zip member. Every header is checked
against the bytes the file really has before anything is allocated. Labels are read whole (they are
small): integer labels become ``int64``, float labels with integer values too; other float labels
stay a ``float64`` regression target.
"""

from __future__ import annotations

import functools
import math
import struct
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from normlab.data._base import LoadedDataset, Source, class_count
from normlab.data._readers import MAX_DEFLATE_RATIO, RawArray, StreamArray, check_fits, nice_bytes
from normlab.data._selection import Batch, Selection, as_key, windows
from normlab.data._text import brief
from normlab.errors import DatasetError

__all__ = ["load_npy", "load_npz"]

_FIX = "Save it again with np.save / np.savez."


def _read_npy_header(f: IO[bytes], label: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Parse a .npy header from ``f``: ``(shape, fortran_order, dtype, header_length)``."""
    fmt = np.lib.format
    try:
        major, _minor = fmt.read_magic(f)
        if major == 1:
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        elif major in (2, 3):
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
        else:
            raise ValueError(f"unknown .npy format version {major}")
    except Exception as exc:  # NumPy parses the header text with tokenize/ast: many error types
        raise DatasetError(
            f"{label}: not a readable .npy array ({type(exc).__name__}: {brief(str(exc), 120, quotes=False)}); "
            f"expected a file written by np.save. {_FIX}"
        ) from None
    dtype = np.dtype(dtype)
    if dtype.hasobject:
        raise DatasetError(
            f"{label}: the array holds Python objects (dtype {dtype}); expected numbers. Object arrays need "
            "unpickling, which normlab refuses for data files; save a numeric array instead."
        )
    if dtype.kind not in "biuf":
        raise DatasetError(
            f"{label}: the array is of dtype {dtype}; expected booleans, integers or floats. {_FIX}"
        )
    if len(shape) == 0:
        raise DatasetError(
            f"{label}: the array is a scalar; expected samples along a first axis, shape (n, ...)."
        )
    return tuple(int(s) for s in shape), bool(fortran), dtype, f.tell()


def _check_claim(
    label: str, shape: tuple[int, ...], dtype: np.dtype, header: int, have: int, what: str
) -> None:
    need = header + math.prod(shape) * dtype.itemsize
    if need > have:
        raise DatasetError(
            f"{label}: the header claims an array of shape {shape} {dtype.name} ({nice_bytes(need)} with the "
            f"header) but {what} has only {nice_bytes(have)}; expected the two to agree. The file is truncated "
            f"or corrupt. {_FIX}"
        )


class _Member:
    """One array of a .npy or .npz file, checked and ready to read."""

    def __init__(self, reader: RawArray | StreamArray, label: str) -> None:
        self.reader = reader
        self.label = label
        self.shape = reader.shape
        self.n = reader.shape[0]

    def read_all(self) -> np.ndarray:
        return next(iter(self.reader.iter_windows([(0, self.n)])))


def _npy_member(path: Path) -> _Member:
    size = path.stat().st_size
    if size == 0:
        raise DatasetError(f"{path}: the file is empty (zero bytes); expected a .npy array. {_FIX}")
    with open(path, "rb") as f:
        shape, fortran, dtype, header = _read_npy_header(f, str(path))
    _check_claim(str(path), shape, dtype, header, size, "the file")
    return _Member(RawArray(path, header, dtype, shape, fortran), str(path))


def _npz_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Member:
    label = f"{path}[{info.filename}]"
    if info.flag_bits & 0x1:
        raise DatasetError(
            f"{label}: the zip entry is encrypted; expected a plain .npz (np.savez never encrypts). Decrypt the "
            f"archive first. {_FIX}"
        )
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DatasetError(
            f"{label}: the zip entry uses compression method {info.compress_type}; expected stored or deflated "
            f"entries, as np.savez and np.savez_compressed write. {_FIX}"
        )
    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                raise DatasetError(
                    f"{label}: the zip entry's local header is missing; expected a valid .npz file. {_FIX}"
                )
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            f.seek(start)
            shape, fortran, dtype, header = _read_npy_header(f, label)
        _check_claim(label, shape, dtype, header - start, info.file_size, "the zip entry")
        if start + info.file_size > path.stat().st_size:
            raise DatasetError(
                f"{label}: the zip entry runs past the end of the file (truncated); expected a complete .npz. {_FIX}"
            )
        return _Member(RawArray(path, header, dtype, shape, fortran), label)
    try:
        with zf.open(info) as f:
            shape, fortran, dtype, header = _read_npy_header(f, label)  # type: ignore[arg-type]
    except DatasetError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # BadZipFile, zlib.error, NotImplementedError, RuntimeError, ...
        raise DatasetError(
            f"{label}: cannot decompress the zip entry ({type(exc).__name__}: {brief(str(exc), 120, quotes=False)}); "
            f"expected a valid .npz file. {_FIX}"
        ) from None
    _check_claim(label, shape, dtype, header, info.file_size, "the zip entry")
    if info.file_size > max(min(info.compress_size, path.stat().st_size), 1) * MAX_DEFLATE_RATIO + 1024:
        raise DatasetError(
            f"{label}: the zip entry claims {nice_bytes(info.file_size)} from {nice_bytes(info.compress_size)} "
            f"compressed, more than deflate can expand ({MAX_DEFLATE_RATIO}:1); expected consistent sizes. The file "
            f"is corrupt or hostile. {_FIX}"
        )
    if fortran:
        raise DatasetError(
            f"{label}: a Fortran-ordered array in a compressed .npz cannot be streamed; expected C order. Save it with np.ascontiguousarray first."
        )

    opener = functools.partial(_open_member, path, info.filename)  # picklable, for shards
    return _Member(StreamArray(opener, header, dtype, shape, label, _FIX), label)


def _open_member(path: Path, member: str) -> IO[bytes]:
    """A fresh decompressing stream of one member of the zip file ``path`` (closing it closes both)."""
    archive = zipfile.ZipFile(path)
    stream = archive.open(member)
    close = stream.close

    def close_both() -> None:
        close()
        archive.close()

    stream.close = close_both  # type: ignore[method-assign]
    return stream


def _labels(member: _Member, n: int, name: str) -> tuple[np.ndarray, bool]:
    if member.n != n:
        raise DatasetError(
            f"{member.label}: {member.n:,} labels for {n:,} samples; expected one label per sample. Check that "
            "the two arrays belong together."
        )
    if len(member.shape) != 1:
        raise DatasetError(
            f"{member.label}: labels of shape {member.shape}; expected one integer per sample, shape (n,). For "
            "one-hot labels save y.argmax(axis=1) instead."
        )
    check_fits(8 * member.n, f"{member.label}: {member.n:,} labels", _FIX)
    y = member.read_all()
    if y.dtype.kind == "f":
        exact = np.all(np.isfinite(y)) and np.all(np.abs(y) <= 2**53) and np.all(y == np.round(y))
        if exact:  # integer-valued floats within 2**53 become int64 exactly
            return y.astype(np.int64), True
        return y.astype(np.float64), False
    if y.dtype == np.uint64 and len(y) and int(y.max()) > 2**63 - 1:
        raise DatasetError(
            f"{member.label}: label {int(y.max()):,} is above int64's range; expected labels that fit int64 "
            "(class indices, or a regression target saved as float)."
        )
    return y.astype(np.int64), True


class NpSource(Source):
    """One split: a samples array (memory-mapped or streamed) and its labels, read whole."""

    def __init__(self, x: _Member, y: np.ndarray | None) -> None:
        self.x = x
        self.y = y
        self.n = x.n
        self.sequential = isinstance(x.reader, StreamArray)  # a compressed .npz member
        self.rereads_fast = not self.sequential  # a raw file: read again from the page cache

    def pieces(self, sel: Selection, rows: int, materialize: bool = False) -> Iterator[Batch]:
        plan = list(windows(self.n, sel, rows))
        arrays = self.x.reader.iter_windows((start, stop) for start, stop, _ in plan)
        for (start, stop, local), x in zip(plan, arrays, strict=True):
            y = None if self.y is None else self.y[start:stop]
            if local is not None:
                x, y = x[local], None if y is None else y[local]
            yield x, y

    def materialize(self, sel: Selection) -> Batch | None:
        reader = self.x.reader
        if not isinstance(reader, RawArray) or not reader.dtype.isnative:
            return None
        x = reader.memmap()
        if sel is None:
            return x, self.y
        key = as_key(sel)
        return x[key], None if self.y is None else self.y[key]


def _make(
    name: str, kind: str, splits: dict[str, tuple[_Member, _Member | None]], **options: Any
) -> LoadedDataset:
    sources: dict[str, Source] = {}
    sample_shape: tuple[int, ...] | None = None
    dtype: np.dtype | None = None
    is_class = True
    top = -1
    total = 0
    for split, (xm, ym) in splits.items():
        shape = xm.shape[1:]
        if sample_shape is not None and (
            shape != sample_shape or xm.reader.dtype.newbyteorder("=") != dtype
        ):
            raise DatasetError(
                f"{xm.label}: samples of shape {shape} {xm.reader.dtype.name}; expected {sample_shape} {dtype} like "
                "the other split. Check that the arrays belong together."
            )
        sample_shape, dtype = shape, xm.reader.dtype.newbyteorder("=")
        y = None
        if ym is not None:
            y, cls = _labels(ym, xm.n, name)
            is_class = is_class and cls
            if cls and len(y):
                if y.min() < 0:
                    is_class = False
                top = max(top, int(y.max()))
            total += len(y)
        sources[split] = NpSource(xm, y)
    assert sample_shape is not None and dtype is not None
    labelled = any(ym is not None for _, ym in splits.values())
    # class indices 0..top, unless top is far above the number of samples (see class_count)
    n_classes = class_count(np.array([0, top]), total) if labelled and is_class and top >= 0 else None
    return LoadedDataset(
        kind=kind,
        name=name,
        sources=sources,
        sample_shape=sample_shape,
        dtype=dtype,
        n_classes=n_classes,
        class_names=None if n_classes is None else tuple(str(i) for i in range(n_classes)),
        **options,
    )


def load_npy(kind: str, path: Path, name: str, **options: Any) -> LoadedDataset:
    """Open one ``.npy`` array as the samples of split ``"train"`` (no labels); ``kind`` is ``"npy"``."""
    return _make(name, kind, {"train": (_npy_member(path), None)}, **options)


_SPLIT_KEYS = {
    "train": "train",
    "test": "test",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
}


def load_npz(
    kind: str, path: Path, name: str, *, keys: Sequence[str] | None = None, **options: Any
) -> LoadedDataset:
    """Open an ``.npz`` file (see the module docstring for which arrays are used); ``kind`` is ``"npz"``."""
    if path.stat().st_size == 0:
        raise DatasetError(
            f"{path}: the file is empty (zero bytes); expected a .npz archive. {_FIX}"
        )
    try:
        zf = zipfile.ZipFile(path)
    except MemoryError:
        raise
    except Exception as exc:  # zipfile parses untrusted bytes: BadZipFile, NotImplementedError, ValueError, ...
        raise DatasetError(
            f"{path}: not a readable .npz archive ({type(exc).__name__}: {brief(str(exc), 120, quotes=False)}); "
            f"expected a file written by np.savez. {_FIX}"
        ) from None
    with zf:
        infos = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
        names = sorted(infos)

        def member(key: str) -> _Member:
            return _npz_member(path, zf, infos[key])

        how = (
            "expected 'x' (and 'y'), or 'x_train'/'y_train' with 'x_test'/'y_test'. Pass keys=(samples, labels) "
            "(CLI: --keys X Y) to choose"
        )
        splits: dict[str, tuple[_Member, _Member | None]] = {}
        if keys is not None:
            if isinstance(keys, str):
                keys = [keys]
            keys = list(keys)
            if not 1 <= len(keys) <= 2:
                raise DatasetError(
                    f"{name}: keys={keys!r}; expected (samples,) or (samples, labels)."
                )
            missing = [k for k in keys if k not in infos]
            if missing:
                raise DatasetError(
                    f"{name}: no array {_quote(missing)} in {path.name} (it has {_quote(names)}); {how}."
                )
            splits["train"] = (member(keys[0]), member(keys[1]) if len(keys) == 2 else None)
        elif "x" in infos:
            splits["train"] = (member("x"), member("y") if "y" in infos else None)
        elif any(k.startswith("x_") and k[2:] in _SPLIT_KEYS for k in infos):
            for k in names:
                if k.startswith("x_") and k[2:] in _SPLIT_KEYS:
                    ykey = "y_" + k[2:]
                    splits[_SPLIT_KEYS[k[2:]]] = (
                        member(k),
                        member(ykey) if ykey in infos else None,
                    )
            order = ["train", "validation", "test"]
            splits = {s: splits[s] for s in order if s in splits}
        elif len(infos) == 1:
            splits["train"] = (member(names[0]), None)
        else:
            raise DatasetError(f"{name}: {path.name} has arrays {_quote(names) or 'none'}; {how}.")
    return _make(name, kind, splits, **options)


def _quote(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)
