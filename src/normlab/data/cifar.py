"""CIFAR-10 "python version" batches (``cifar10:DIR``), read without running pickle code.

The batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``) are pickles of a
dict ``{b'data': uint8 (n, 3072), b'labels': [int, ...], ...}``. Unpickling lets a file call any
importable function, so these files are read with :class:`RestrictedUnpickler`: it resolves only the
handful of globals a NumPy array needs, through wrappers that accept numeric arrays only, and refuses
everything else with a :class:`DatasetError`. The result must then be plain dicts, lists, bytes,
str, ints and numeric arrays. A batch file is read whole (about 30 MB for the originals), one at a time.
"""

from __future__ import annotations

import io
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from normlab.data._base import LoadedDataset, Source
from normlab.data._selection import Batch, Selection, windows
from normlab.data._shards import Shard, row_shards
from normlab.data._text import brief
from normlab.errors import DatasetError

__all__ = ["CIFAR10_CLASSES", "RestrictedUnpickler", "load_cifar10", "safe_unpickle"]

CIFAR10_CLASSES = (
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

_FIX = "Use the original CIFAR-10 python batches (cifar-10-python.tar.gz, extracted)."


class _Refused(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class _NdarrayMarker:
    """Stands for ``numpy.ndarray`` inside a pickle; it cannot be called to allocate anything."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise _Refused("a direct call of numpy.ndarray (an allocation of any size)")


_NDARRAY = _NdarrayMarker()
_NUMERIC_KINDS = "biuf"


def _safe_dtype(spec: Any, align: Any = False, copy: Any = True) -> np.dtype:
    if not isinstance(spec, (str, bytes)):
        raise _Refused(f"numpy.dtype({brief(repr(spec), 40)})")
    dt = np.dtype(spec.decode("latin1") if isinstance(spec, bytes) else spec)
    if dt.kind not in _NUMERIC_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise _Refused(f"numpy.dtype({brief(repr(spec), 40)}) (only numeric dtypes are allowed)")
    return dt


def _safe_reconstruct(cls: Any, shape: Any, typecode: Any) -> np.ndarray:
    if cls is not _NDARRAY:
        raise _Refused(f"numpy _reconstruct of {brief(repr(cls), 40)}")
    # numpy pickles always rebuild from an empty array; __setstate__ then checks the data's length.
    return np.ndarray((0,), dtype=np.uint8)


def _safe_encode(text: Any, encoding: Any = "utf-8") -> bytes:
    if not isinstance(text, str) or str(encoding).lower().replace("-", "") != "latin1":
        raise _Refused(
            f"_codecs.encode(..., {encoding!r}) (only latin1 text, as pickled bytes use)"
        )
    return text.encode("latin1")


def _safe_scalar(dtype: Any, data: Any = None) -> Any:
    if (
        not isinstance(dtype, np.dtype)
        or dtype.kind not in _NUMERIC_KINDS
        or not isinstance(data, (bytes, str))
    ):
        raise _Refused("numpy scalar of a non-numeric dtype")
    raw = data.encode("latin1") if isinstance(data, str) else data
    if len(raw) != dtype.itemsize:
        raise _Refused("numpy scalar with the wrong number of bytes")
    return np.frombuffer(raw, dtype=dtype)[0].item()


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.core.multiarray", "scalar"): _safe_scalar,
    ("numpy._core.multiarray", "scalar"): _safe_scalar,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _safe_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only what a pickled numeric NumPy array needs.

    Any other global (``os.system``, ``builtins.eval``, classes of any kind) is refused; the allowed
    ones are wrappers that build numeric arrays and bytes and nothing else. Persistent ids are refused.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(brief(f"{module}.{name}", 80, quotes=False)) from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused(f"persistent id {brief(repr(pid), 40)}")


def _check_plain(obj: Any, max_depth: int = 20) -> str | None:
    """Return what is not plain data in ``obj`` (dict, list, bytes, str, int, numeric ndarray), or None.

    Each container is visited once, however often the pickle refers to it (its memo lets a 6 KB file name
    one list a billion times over), so the walk is linear in the number of distinct objects, which is at
    most the file's size. A container that holds itself is refused.
    """
    done: set[int] = set()
    open_: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(obj, 0, False)]
    while stack:
        item, depth, leaving = stack.pop()
        if leaving:
            open_.discard(id(item))
            done.add(id(item))
            continue
        if isinstance(item, (dict, list)):
            key = id(item)
            if key in open_:
                return "a structure that contains itself"
            if key in done:
                continue
            if depth > max_depth:
                return f"a structure nested more than {max_depth} levels deep"
            open_.add(key)
            stack.append((item, depth, True))
            children = (v for kv in item.items() for v in kv) if isinstance(item, dict) else iter(item)
            stack.extend((child, depth + 1, False) for child in children)
            continue
        if type(item) in (bytes, str, int):
            continue
        if type(item) is np.ndarray and item.dtype.kind in _NUMERIC_KINDS:
            continue
        return f"a value of type {type(item).__name__}"
    return None


def safe_unpickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler` and check the result is plain data.

    The whole file is read first, so no length claimed inside the pickle can make the reader allocate
    more than the file's size.
    """
    data = Path(path).read_bytes()
    if not data:
        raise DatasetError(
            f"{path}: the file is empty (zero bytes); expected a CIFAR-10 batch. {_FIX}"
        )
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except _Refused as exc:
        raise DatasetError(
            f"{path}: the pickle asks for {exc.what}, which a CIFAR-10 batch never contains; expected only "
            "plain dicts, lists, bytes, ints, str and numeric NumPy arrays. normlab refuses to run code "
            f"from a data file; {_FIX[0].lower()}{_FIX[1:]}"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
        MemoryError,
        OverflowError,
        RecursionError,
        UnicodeDecodeError,
    ) as exc:
        raise DatasetError(
            f"{path}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {brief(str(exc), 120, quotes=False)}); expected a batch dict "
            f"with b'data' and b'labels'. The file is truncated or corrupt. {_FIX}"
        ) from None
    bad = _check_plain(obj)
    if bad:
        raise DatasetError(
            f"{path}: the pickle holds {bad}; expected only plain dicts, lists, bytes, ints, str and numeric "
            f"NumPy arrays. {_FIX}"
        )
    return obj


def _get(d: dict, key: str) -> Any:
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 batch file: ``x`` uint8 ``(n, 32, 32, 3)`` channels-last, ``y`` int64 ``(n,)``."""
    obj = safe_unpickle(path)
    if not isinstance(obj, dict):
        raise DatasetError(
            f"{path}: the pickle holds a {type(obj).__name__}; expected a dict with b'data' and b'labels'. {_FIX}"
        )
    data, labels = _get(obj, "data"), _get(obj, "labels")
    if labels is None and _get(obj, "fine_labels") is not None:
        raise DatasetError(
            f"{path}: this is a CIFAR-100 batch (b'fine_labels'); expected CIFAR-10. CIFAR-100 is not supported."
        )
    keys = ", ".join(brief(k, 30) for k in list(obj)[:8]) + (", ..." if len(obj) > 8 else "")
    if not isinstance(data, np.ndarray) or labels is None:
        raise DatasetError(
            f"{path}: the batch dict has keys {keys}; expected b'data' (an array) and b'labels'. {_FIX}"
        )
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DatasetError(
            f"{path}: b'data' is {data.dtype.name} of shape {data.shape}; expected uint8 of shape (n, 3072) "
            f"(3 x 32 x 32 pixels per row, channels first). {_FIX}"
        )
    flat = isinstance(labels, np.ndarray) or (
        isinstance(labels, list) and all(type(v) is int for v in labels)
    )  # np.asarray of nested lists would expand every shared reference: refuse those first
    if not flat:
        raise DatasetError(
            f"{path}: b'labels' holds a {type(labels).__name__} that is not a flat list of integers; expected "
            f"one integer label per image. {_FIX}"
        )
    try:
        y = np.asarray(labels)
    except (ValueError, TypeError, OverflowError):
        y = np.asarray([], dtype=object)
    if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(data):
        raise DatasetError(
            f"{path}: b'labels' holds {y.size} values of type {y.dtype.name} for {len(data)} images; expected "
            f"one integer label per image. {_FIX}"
        )
    if len(y) and (y.min() < 0 or y.max() > 9):
        bad = int(np.flatnonzero((y < 0) | (y > 9))[0])
        raise DatasetError(
            f"{path}: label {int(y[bad])} at index {bad}; expected classes 0-9. {_FIX}"
        )
    x = np.ascontiguousarray(data.reshape(len(data), 3, 32, 32).transpose(0, 2, 3, 1))
    return x, y.astype(np.int64)


class CifarSource(Source):
    """One split made of batch files, read one file at a time (sizes and labels cached after a pass)."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files
        self._labels: list[np.ndarray] | None = None

    def _scan(self) -> list[np.ndarray]:
        if self._labels is None:
            self._labels = [read_batch(f)[1] for f in self.files]
        return self._labels

    @property
    def n(self) -> int:  # type: ignore[override]
        return sum(len(y) for y in self._scan())

    def labels(self) -> np.ndarray:
        return np.concatenate(self._scan())

    def pieces(self, sel: Selection, rows: int, materialize: bool = False) -> Iterator[Batch]:
        if sel is None:
            # A full pass needs no sizes up front: read each file once and remember its labels.
            seen = []
            for path in self.files:
                x, y = read_batch(path)
                seen.append(y)
                for start in range(0, len(y), rows):
                    yield x[start : start + rows], y[start : start + rows]
            self._labels = seen
            return
        counts = [len(y) for y in self._scan()]
        offset = 0
        for path, k in zip(self.files, counts, strict=True):
            local_sel: Selection
            if isinstance(sel, range):
                lo, hi = max(sel.start - offset, 0), min(sel.stop - offset, k)
                local_sel = range(lo, max(lo, hi))
            else:
                lo, hi = np.searchsorted(sel, (offset, offset + k))
                local_sel = sel[lo:hi] - offset
            offset += k
            if len(local_sel) == 0:
                continue
            x, y = read_batch(path)
            if len(y) != k:
                raise DatasetError(
                    f"{path}: the file changed while being read ({len(y)} images, was {k})."
                )
            for start, stop, local in windows(k, local_sel, rows):
                xs, ys = x[start:stop], y[start:stop]
                yield (xs, ys) if local is None else (xs[local], ys[local])

    def shards(self, sel: Selection, n_shards: int, *, rows: int, label: str) -> list[Shard]:
        """Runs of samples cut at the batch files when the whole split is read (a file is read whole)."""
        bounds = None
        if sel is None:
            bounds = np.concatenate(([0], np.cumsum([len(y) for y in self._scan()]))).tolist()
        return row_shards(self, sel, n_shards, rows=rows, label=label, bounds=bounds)


def _find_folder(folder: Path) -> Path:
    for candidate in (folder, folder / "cifar-10-batches-py"):
        if (candidate / "data_batch_1").is_file() or (candidate / "test_batch").is_file():
            return candidate
    names = sorted(p.name for p in folder.iterdir())[:8]
    raise DatasetError(
        f"cifar10:{folder}: no CIFAR-10 batches in {folder} (found: {', '.join(names) or 'nothing'}); expected "
        "data_batch_1 .. data_batch_5 and test_batch (the python version, cifar-10-python.tar.gz extracted). "
        "Point the spec at the cifar-10-batches-py folder."
    )


def load_cifar10(kind: str, folder: Path, name: str, **options: object) -> LoadedDataset:
    """Open the CIFAR-10 python batches in ``folder`` (or its ``cifar-10-batches-py``); ``kind`` is ``"cifar10"``."""
    folder = _find_folder(folder)
    numbered = {}
    for p in folder.iterdir():
        m = re.fullmatch(r"data_batch_(\d+)", p.name)
        if m and p.is_file():
            numbered[int(m.group(1))] = p
    sources: dict[str, Source] = {}
    if numbered:
        missing = sorted(set(range(1, max(numbered) + 1)) - set(numbered))
        if missing:
            raise DatasetError(
                f"{name}: data_batch_{', data_batch_'.join(map(str, missing))} missing from {folder} "
                f"(found data_batch_{', data_batch_'.join(map(str, sorted(numbered)))}); expected consecutive "
                "batches from data_batch_1. Copy the missing files."
            )
        sources["train"] = CifarSource([numbered[i] for i in sorted(numbered)])
    if (folder / "test_batch").is_file():
        sources["test"] = CifarSource([folder / "test_batch"])
    classes: tuple[str, ...] = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        obj = safe_unpickle(meta)
        names = _get(obj, "label_names") if isinstance(obj, dict) else None
        if isinstance(names, list) and len(names) == 10:
            classes = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)
    return LoadedDataset(
        kind=kind,
        name=name,
        sources=sources,
        sample_shape=(32, 32, 3),
        dtype=np.uint8,
        n_classes=10,
        class_names=classes,
        **options,  # type: ignore[arg-type]
    )
