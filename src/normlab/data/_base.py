"""The dataset object every loader returns: splits, limits, validation hold-outs and batches.

A loader describes each split *as stored* by a :class:`Source` (n samples readable in file order).
:class:`LoadedDataset` turns sources into the public :class:`Dataset` behaviour: it resolves split names,
applies ``limit=`` (stratified, seeded) and ``validation_split=`` (the last fraction, like Keras), and
re-cuts whatever pieces a source yields into batches of exactly ``batch_size`` samples.

Selections of samples (``None``, a ``range`` or a sorted ``int64`` array; see ``_selection``) keep file order.
A source also cuts itself into :class:`~normlab.data._shards.Shard` objects (:meth:`Source.shards`) that
other processes read independently; :meth:`LoadedDataset.shards` does it for one split.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from normlab.core._hooks import export
from normlab.data._indexed import IndexedSplit
from normlab.data._readers import check_fits
from normlab.data._selection import Batch, Selection, as_index, as_key, count, rebatch, select_rows
from normlab.data._shards import SHARD_BYTES, Shard, check_n_shards, row_shards
from normlab.data._text import one_line
from normlab.errors import DatasetError

__all__ = [
    "ArraySource",
    "Dataset",
    "LoadedDataset",
    "Source",
    "default_batch_size",
    "select_rows",
]

#: A batch size of ``None`` means: about this many bytes of samples per batch.
DEFAULT_BATCH_BYTES = 8 * 2**20

_VALIDATION = "validation"


@runtime_checkable
class Dataset(Protocol):
    """What every dataset returned by :func:`normlab.data.open` offers.

    Attributes
    ----------
    name : str
        The spec it was opened from, e.g. ``"mnist:/data/mnist"``.
    kind : str
        The loader, e.g. ``"mnist"``, ``"images"``, ``"csv"``.
    splits : tuple of str
        Split names, e.g. ``("train", "test")``; ``"validation"`` when ``validation_split`` was given.
    default_split : str
        The split used when ``split=None``: ``"train"`` where there is one.
    n_classes : int or None
        Number of classes; ``None`` for unlabeled data and regression targets.
    class_names : tuple of str or None
        Class ``i`` is ``class_names[i]``.
    sample_shape : tuple of int
        Shape of one sample, e.g. ``(28, 28, 1)`` or ``(30,)``.
    dtype : numpy.dtype
        The samples' dtype as stored (``uint8`` for images).
    layout : str
        Axis names of a batch, e.g. ``"(n, h, w, c)"`` or ``"(n, f)"``.
    feature_names : tuple of str or None
        Column names of tables (and of scikit-learn's bundled datasets).
    skipped : list of (str, str)
        Files skipped with ``on_error="skip"`` and why (image folders).
    """

    name: str
    kind: str
    splits: tuple[str, ...]
    default_split: str
    n_classes: int | None
    class_names: tuple[str, ...] | None
    sample_shape: tuple[int, ...]
    dtype: np.dtype
    layout: str
    feature_names: tuple[str, ...] | None
    skipped: list[tuple[str, str]]

    def iter_batches(
        self, batch_size: int | None = None, split: str | None = None
    ) -> Iterator[Batch]: ...

    def arrays(self, split: str | None = None) -> Batch: ...

    def labels(self, split: str | None = None) -> np.ndarray | None: ...

    def num_samples(self, split: str | None = None) -> int | None: ...

    def nbytes(self, split: str | None = None) -> int | None: ...

    def shards(self, split: str | None = None, n_shards: int | None = None) -> list[Shard]: ...


class Source:
    """One split as stored: ``n`` samples that can be read in file order.

    Subclasses implement :meth:`pieces`; they may override :meth:`labels` (cheap, without reading the
    samples; the default is the attribute ``y``), :meth:`materialize` (a zero-copy or memory-mapped fast path for ``arrays()``), and
    :meth:`shards` or :meth:`shard` (how to cut the source for other processes; the default cuts rows).

    Attributes
    ----------
    n : int
        Samples stored.
    y : ndarray of shape (n,) or None
        Their labels, where the loader read them at open.
    sequential : bool
        True where the samples can only be read as one stream from its start (a gzip file): cutting such
        a source saves no reading, so by default it is read as one shard.
    rereads_fast : bool
        True where reading the samples again costs about a pass over memory (held in memory, or
        memory-mapped): exact float quantiles then read them a few more times instead of sketching them.
    """

    n: int = 0
    y: np.ndarray | None = None
    sequential: bool = False
    rereads_fast: bool = False

    def labels(self) -> np.ndarray | None:
        """The labels of all ``n`` samples (``int64``, or ``float64`` targets), or ``None`` if unlabeled."""
        return self.y

    def item(self, i: int) -> Batch | None:
        """Sample ``i`` alone, ``(x, y)``, where the source can read one cheaply; ``None`` otherwise."""
        return None

    def pieces(self, sel: Selection, rows: int, materialize: bool = False) -> Iterator[Batch]:
        """Yield ``(x, y)`` pieces of the selected samples in order, each of about ``rows`` samples.

        ``materialize`` is true when ``arrays()`` is filling one array (a slow source may show progress).
        """
        raise NotImplementedError

    def materialize(self, sel: Selection) -> Batch | None:
        return None

    def shards(self, sel: Selection, n_shards: int, *, rows: int, label: str) -> list[Shard]:
        """Cut the selected samples into at most ``n_shards`` independent shards, in file order.

        Each shard yields ``(x, y)`` batches of about ``rows`` samples and can be pickled and read on another
        machine (where the files are at the same path); together they hold each selected sample once.
        ``label`` names the split in the shards' ``repr``. The default cuts the selection into runs of
        rows, each made by :meth:`shard`; a reader with better cut points (Parquet row groups, CSV byte
        ranges, batch files) overrides this.
        """
        return row_shards(self, sel, n_shards, rows=rows, label=label)

    def shard(self, sel: range | np.ndarray, rows: int, n: int, label: str) -> Shard:
        """One shard that reads the samples ``sel`` of this source (override to ship less than the source)."""
        return Shard(self, sel, rows, n, label)


def default_batch_size(sample_nbytes: int) -> int:
    """The batch size ``batch_size=None`` means: about 8 MiB of samples, at least 1."""
    return max(1, DEFAULT_BATCH_BYTES // max(1, int(sample_nbytes)))


def stratified_subset(
    labels: np.ndarray | None, n: int, limit: int, rng: np.random.Generator
) -> np.ndarray:
    """Pick ``limit`` of ``n`` samples, keeping each class's share (largest remainders), sorted."""
    if labels is None or labels.dtype.kind == "f":
        return np.sort(rng.choice(n, size=limit, replace=False)).astype(np.int64)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = counts * (limit / n)
    take = np.floor(quota).astype(np.int64)
    short = limit - int(take.sum())
    if short > 0:
        order = np.argsort(-(quota - take), kind="stable")
        take[order[:short]] += 1
    picked = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        if take[c]:
            picked.append(rng.choice(members, size=int(take[c]), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _seed_for(seed: int, split: str, purpose: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(split.encode()), purpose])


class ArraySource(Source):
    """Arrays already in memory (or memory-mapped): scikit-learn's datasets and :func:`from_arrays`."""

    rereads_fast = True

    def __init__(self, x: np.ndarray, y: np.ndarray | None, *, copy: bool = False) -> None:
        self.x = x
        self.y = y
        self.n = len(x)
        self.copy = copy  # hand out copies, so callers cannot change the stored arrays

    def _take(self, key: slice | np.ndarray) -> Batch:
        x, y = self.x[key], None if self.y is None else self.y[key]
        if self.copy and isinstance(key, slice):
            x, y = x.copy(), None if y is None else y.copy()
        return x, y

    def pieces(self, sel: Selection, rows: int, materialize: bool = False) -> Iterator[Batch]:
        if sel is None or isinstance(sel, range):
            r = range(0, self.n) if sel is None else sel
            for start in range(r.start, r.stop, rows):
                yield self._take(slice(start, min(start + rows, r.stop)))
            return
        for start in range(0, len(sel), rows):
            yield self._take(sel[start : start + rows])

    def materialize(self, sel: Selection) -> Batch | None:
        if sel is None:
            return self._take(slice(0, self.n))
        return self._take(as_key(sel))

    def shard(self, sel: range | np.ndarray, rows: int, n: int, label: str) -> Shard:
        key = as_key(sel)  # ship only this shard's samples
        return Shard(
            ArraySource(self.x[key], None if self.y is None else self.y[key]), None, rows, n, label
        )


class LoadedDataset:
    """A dataset made of one :class:`Source` per stored split (see :class:`Dataset` for the attributes).

    Built by the loaders behind :func:`normlab.data.open`; users do not create it directly.
    """

    def __init__(
        self,
        *,
        kind: str,
        name: str,
        sources: dict[str, Source],
        sample_shape: Sequence[int],
        dtype: np.dtype | type | str,
        layout: str | None = None,
        n_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        feature_names: Sequence[str] | None = None,
        validation_split: float | None = None,
        shuffle_split: bool = False,
        seed: int = 0,
        limit: int | None = None,
    ) -> None:
        if not sources:
            raise DatasetError(f"{name}: no split was found; expected at least one.")
        self.kind = kind
        self.name = name
        self._sources = dict(sources)
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.dtype = np.dtype(dtype)
        self.layout = layout or _layout_for(self.sample_shape)
        self.n_classes = n_classes
        self.class_names = tuple(class_names) if class_names is not None else None
        self.feature_names = tuple(feature_names) if feature_names is not None else None
        self.skipped: list[tuple[str, str]] = []
        self.validation_split = validation_split
        self.shuffle_split = bool(shuffle_split)
        self.seed = int(seed)
        self.limit = limit
        self._plans: dict[str, tuple[Source, Selection]] = {}
        stored = tuple(self._sources)
        self.default_split = "train" if "train" in stored else stored[0]
        if validation_split is not None:
            if _VALIDATION in stored:
                raise DatasetError(
                    f"{name} already has a 'validation' split, so validation_split={validation_split} "
                    "would make a second one; expected one or the other. Drop validation_split, or use "
                    "split='validation' to read the stored one."
                )
            if "train" not in stored:
                raise DatasetError(
                    f"{name} has no 'train' split to hold out validation data from (splits: "
                    f"{', '.join(stored)}); expected validation_split only where there is training data. "
                    "Drop validation_split."
                )
            stored = (
                *stored[: stored.index("train") + 1],
                _VALIDATION,
                *stored[stored.index("train") + 1 :],
            )
        self.splits: tuple[str, ...] = stored

    # ------------------------------------------------------------------ split planning
    def _resolve_split(self, split: str | None) -> str:
        if split is None:
            return self.default_split
        if split in self.splits:
            return split
        hint = ""
        if split in (_VALIDATION, "val", "valid") and self.validation_split is None:
            hint = (
                " Pass validation_split=0.2 (CLI: --validation-split 0.2) to hold out the last 20% of "
                "the training data as split 'validation'."
            )
        elif split == "test" and "test" not in self.splits:
            hint = " This dataset has no test split of its own; hold out data with validation_split=0.2."
        raise DatasetError(
            f"{self.name} has no split {split!r}; expected one of {', '.join(map(repr, self.splits))}.{hint}"
        )

    def _plan(self, split: str | None) -> tuple[str, Source, Selection]:
        name = self._resolve_split(split)
        if name not in self._plans:
            base = "train" if name == _VALIDATION else name
            source = self._sources[base]
            sel: Selection = None
            if self.limit is not None and self.limit < source.n:
                sel = stratified_subset(
                    source.labels(), source.n, self.limit, _seed_for(self.seed, base, 0)
                )
            if self.validation_split is not None and base == "train":
                train_sel, val_sel = self._hold_out(source, sel)
                self._plans["train"] = (source, train_sel)
                self._plans[_VALIDATION] = (source, val_sel)
            else:
                self._plans[name] = (source, sel)
        source, sel = self._plans[name]
        return name, source, sel

    def _hold_out(self, source: Source, sel: Selection) -> tuple[Selection, Selection]:
        n = count(sel, source.n)
        fraction = float(self.validation_split)  # type: ignore[arg-type]
        split_at = math.floor(n * (1.0 - fraction))
        if split_at == 0 or split_at == n:
            raise DatasetError(
                f"{self.name}: the training data has {n} samples, too few to hold out "
                f"validation_split={fraction}; expected at least one sample on each side. Use a larger "
                "limit or a different validation_split."
            )
        if self.shuffle_split:
            index = as_index(sel, source.n)
            order = _seed_for(self.seed, "train", 1).permutation(n)
            return np.sort(index[order[:split_at]]), np.sort(index[order[split_at:]])
        if sel is None:
            return range(0, split_at), range(split_at, n)
        assert not isinstance(sel, range)
        return sel[:split_at], sel[split_at:]

    # ------------------------------------------------------------------ public API
    def num_samples(self, split: str | None = None) -> int | None:
        """Number of samples in ``split`` (files found, for image folders read with ``on_error="skip"``)."""
        _, source, sel = self._plan(split)
        return count(sel, source.n)

    def rereads_fast(self, split: str | None = None) -> bool:
        """True where ``split`` can be read again at about the speed of memory (see :class:`Source`)."""
        return bool(self._plan(split)[1].rereads_fast)

    def nbytes(self, split: str | None = None) -> int | None:
        """Bytes the samples of ``split`` take once decoded (``num_samples * prod(sample_shape) * itemsize``)."""
        n = self.num_samples(split)
        return None if n is None else n * math.prod(self.sample_shape) * self.dtype.itemsize

    def labels(self, split: str | None = None) -> np.ndarray | None:
        """The labels of ``split`` (``int64``), read without decoding the samples; ``None`` if unlabeled."""
        _, source, sel = self._plan(split)
        y = source.labels()
        if y is None or sel is None:
            return y
        return y[as_key(sel)]

    def class_counts(self, split: str | None = None) -> np.ndarray | None:
        """How many samples of ``split`` each class has, shape ``(n_classes,)``; ``None`` if unlabeled."""
        y = self.labels(split)
        if y is None or self.n_classes is None:
            return None
        return np.bincount(y, minlength=self.n_classes)

    def iter_batches(
        self, batch_size: int | None = None, split: str | None = None
    ) -> Iterator[Batch]:
        """Stream ``(x, y)`` batches of ``split`` in file order; memory stays about one batch.

        Parameters
        ----------
        batch_size : int or None
            Samples per batch (the last batch may be smaller); ``None`` picks about 8 MiB per batch.
        split : str or None
            One of :attr:`splits`; ``None`` means :attr:`default_split`.

        Yields
        ------
        x : ndarray, shape ``(b, *sample_shape)``, dtype :attr:`dtype`
        y : ndarray of int64, shape ``(b,)``, or None
        """
        rows = self._batch_rows(batch_size)
        _, source, sel = self._plan(split)
        return guarded(rebatch(source.pieces(sel, rows), rows))

    def arrays(self, split: str | None = None) -> Batch:
        """Materialize ``split`` as ``(x, y)``; memory-mapped (copy-on-write) where the file allows it."""
        _, source, sel = self._plan(split)
        fast = source.materialize(sel)
        if fast is not None:
            return fast
        n = count(sel, source.n)
        check_fits(
            n * math.prod(self.sample_shape) * self.dtype.itemsize,
            f"{self.name}: arrays() of {n:,} samples of shape {self.sample_shape} {self.dtype.name}",
            "Stream the data with iter_batches() instead, or pass limit= to read fewer samples.",
        )
        x = np.empty((n, *self.sample_shape), dtype=self.dtype)
        y: np.ndarray | None = None
        filled = 0
        for xb, yb in guarded(source.pieces(sel, self._batch_rows(None), materialize=True)):
            k = len(xb)
            if filled + k > n:
                raise DatasetError(
                    f"{self.name}: the split yielded more than the {n} samples announced."
                )
            x[filled : filled + k] = xb
            if yb is not None:
                if y is None:
                    y = np.empty(n, dtype=yb.dtype)
                y[filled : filled + k] = yb
            filled += k
        if filled < n:
            x = x[:filled].copy()
            y = None if y is None else y[:filled].copy()
        return x, y

    def shards(
        self,
        split: str | None = None,
        n_shards: int | None = None,
        *,
        batch_size: int | None = None,
        shard_bytes: int = SHARD_BYTES,
        min_shards: int = 1,
    ) -> list[Shard]:
        """Cut ``split`` into shards that other processes or machines read independently.

        Parameters
        ----------
        split : str or None
            One of :attr:`splits`; ``None`` means :attr:`default_split`. ``limit=`` and
            ``validation_split=`` apply.
        n_shards : int or None
            How many shards (fewer where the split has fewer samples or natural pieces). ``None``: about
            ``shard_bytes`` of decoded samples each and at least ``min_shards``; one for a source that is
            read as a single stream (a gzip file).
        batch_size : int or None
            Samples per batch inside a shard; ``None`` picks about 8 MiB per batch.

        Returns
        -------
        list of Shard
            Together they hold every sample of the split exactly once, in file order.

        Examples
        --------
        >>> import normlab.data
        >>> ds = normlab.data.open("wine")
        >>> shards = ds.shards(n_shards=3)
        >>> shards[0]
        Shard(wine [train] samples 0-58, 59 samples)
        >>> sum(len(x) for shard in shards for x, y in shard)
        178
        """
        _, source, sel = self._plan(split)
        rows = self._batch_rows(batch_size)
        n = count(sel, source.n)
        label = f"{self.name} [{split or self.default_split}]"
        if n == 0:
            raise DatasetError(
                f"{self.name}: split {split or self.default_split!r} holds no samples; expected at least one."
            )
        if n_shards is None:
            sample_bytes = max(1, math.prod(self.sample_shape) * self.dtype.itemsize)
            n_shards = max(math.ceil(n * sample_bytes / max(1, shard_bytes)), min_shards)
            if source.sequential:
                n_shards = 1
        return source.shards(sel, check_n_shards(n_shards, "shards"), rows=rows, label=label)

    def _batch_rows(self, batch_size: int | None) -> int:
        sample_bytes = math.prod(self.sample_shape) * self.dtype.itemsize
        if batch_size is None:
            rows = default_batch_size(sample_bytes)
        elif (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise DatasetError(
                f"{self.name}: batch_size={batch_size!r} is not a positive integer; expected e.g. 256, or "
                "None for about 8 MiB per batch."
            )
        else:
            rows = int(batch_size)
        check_fits(rows * sample_bytes, f"{self.name}: a batch of {rows:,} samples of shape {self.sample_shape}",
                   "Pass a smaller batch_size (CLI: --batch-size), or a smaller resize=.")  # fmt: skip
        return rows

    def indexed(self, split: str | None = None) -> IndexedSplit:
        """Random access to the samples of ``split``: ``len()`` and ``[i] -> (x, y)`` (see ``_indexed``)."""
        name, source, sel = self._plan(split)
        return IndexedSplit(self, name, source, as_index(sel, source.n))

    def torch(self, split: str | None = None, *, transform: Any = None, target_transform: Any = None) -> Any:
        """``split`` as a ``torch.utils.data.Dataset``: channels-first tensors in the stored dtype, and labels.

        ``ds.torch("train")[i]`` is ``(x, y)``: ``x`` a tensor ``(c, h, w)`` (``uint8`` images stay ``uint8``,
        as torchvision's ``PILToTensor`` gives them), ``y`` an ``int`` (a ``float`` regression target); an
        unlabeled dataset yields ``x`` alone. ``transform``/``target_transform`` are applied to each, as in
        torchvision. Needs PyTorch; built by :mod:`normlab.adapters.torch_data` through the exporter hook
        ``"torch-dataset"``, so this package never imports torch.

        >>> loader = torch.utils.data.DataLoader(ds.torch("train"), batch_size=64)  # doctest: +SKIP
        """
        return export("torch-dataset", (self.indexed(split), transform, target_transform))

    def __repr__(self) -> str:
        parts = [
            f"{self.name!r}",
            f"splits={self.splits}",
            f"sample_shape={self.sample_shape}",
            f"dtype={self.dtype.name}",
            f"layout={self.layout!r}",
        ]
        if self.n_classes is not None:
            parts.append(f"n_classes={self.n_classes}")
        if self.limit is not None:
            parts.append(f"limit={self.limit}")
        if self.validation_split is not None:
            parts.append(f"validation_split={self.validation_split}")
        return f"Dataset({', '.join(parts)})"


def guarded(batches: Iterator[Batch]) -> Iterator[Batch]:
    """``batches``, with a reader's :class:`DatasetError` made one printable line (see ``_text``).

    A file that vanishes or cannot be read while it is streamed (``OSError``) becomes a DatasetError too.
    """
    try:
        yield from batches
    except DatasetError as exc:
        raise DatasetError(one_line(str(exc))) from None
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        raise DatasetError(
            one_line(f"a file of the dataset cannot be read{where}: {exc.strerror or exc}; expected it to stay "
                     "readable while it is read. Check the file and its permissions.")
        ) from None


def class_count(labels: np.ndarray | None, n_samples: int) -> int | None:
    """``max + 1`` of integer labels when they look like class indices ``0..k-1``; otherwise ``None``.

    Labels imply ``max + 1`` classes; a label far above the number of samples (3e7 among 1,000 samples) is
    an identifier or a regression target, not a class index, and would cost memory for classes that hold
    nothing. So class indices are taken for true only up to ``max(MAX_SPARSE_CLASSES, n_samples)``.
    """
    if labels is None or labels.dtype.kind not in "biu" or not len(labels):
        return None
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi + 1 > max(MAX_SPARSE_CLASSES, n_samples):
        return None
    return hi + 1


#: Class indices up to this are taken as classes even for a handful of samples (ImageNet has 1,000).
MAX_SPARSE_CLASSES = 4096


def _layout_for(sample_shape: tuple[int, ...]) -> str:
    names = {0: "(n,)", 1: "(n, f)", 2: "(n, h, w)", 3: "(n, h, w, c)", 4: "(n, d, h, w, c)"}
    return names.get(
        len(sample_shape),
        "(n, " + ", ".join(f"d{i}" for i in range(1, len(sample_shape) + 1)) + ")",
    )
