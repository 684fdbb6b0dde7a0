"""Datasets as local files: open a spec, stream batches for statistics, materialize arrays for training.

One entry point, :func:`open`, takes a spec that also works on the command line and returns a
:class:`Dataset`. Nothing is downloaded; importing this package imports NumPy only (Pillow, pandas,
pyarrow and scikit-learn are imported by the loaders that need them).

=================================  ==========================================================
spec                               what it reads
=================================  ==========================================================
``digits``, ``breast-cancer``,     scikit-learn's bundled datasets (``pip install 'normlab[datasets]'``)
``wine``
``mnist:DIR``                      the four MNIST IDX files, ``.gz`` or not; splits train, test
``fashion-mnist:DIR``              the same for Fashion-MNIST
``cifar10:DIR``                    CIFAR-10 python batches, read without running pickle code
``images:DIR``                     one subfolder per class (``pip install 'normlab[images]'``)
``csv:FILE``, ``parquet:FILE``     numeric columns; ``target=`` the label (``normlab[tables]``)
``npy:FILE``, ``npz:FILE``         arrays, memory-mapped where possible; also a bare ``x.npy``
=================================  ==========================================================

Structure. ``_spec`` parses a spec and holds :data:`KINDS`, the table of dataset kinds: each
:class:`~normlab.data._spec.Kind` names its options and the loader that opens it. Each reader module
(``builtin``, ``idx``, ``cifar``, ``images``, ``tables``, ``arrays``) has a loader that describes every
split as a :class:`~normlab.data._base.Source`: how to read its samples in file order, and how to cut
itself into :class:`Shard` objects that another process or machine reads on its own
(``Source.shards``: row ranges by default, CIFAR batch files, groups of image files, Parquet row
groups, CSV byte ranges). ``_base`` turns sources into a :class:`Dataset` (splits, ``limit=``,
``validation_split=``, batches, :meth:`LoadedDataset.shards`); ``_shards`` holds :class:`Shard` and the
default row cut; ``_readers`` reads fixed-size records from plain or compressed files.

Guarantees (held by ``tests/data/test_guarantees.py`` and the fuzzer ``tests/data/test_fuzz.py``):

- **Values as stored.** No reader narrows, wraps or rounds a value silently: integers stay exact at every
  magnitude (``uint64`` features above ``2**63``; an integer column that float64 would round is an error),
  a CSV line with more or fewer fields than the header is an error, an image folder has one bit depth
  (16-bit data stays ``uint16``), and labels become class indices only where that is exact (integers
  ``0..k-1`` with ``k`` at most ``max(4096, n)``; others stay targets with ``n_classes = None``).
- **Memory and work bounded by the real data.** Memory is one batch plus the statistics; labels of IDX
  files are streamed, never held whole. Every header is checked against the bytes the file has (a gzip
  or zip member against deflate's 1032:1 limit) before anything is allocated, and ``arrays()``, a batch,
  ``labels()`` or a ``resize=`` larger than the machine (or ``RLIMIT_AS``) is refused before allocation.
  Work is linear in the bytes read (a CIFAR pickle's structure is walked once per distinct object).
- **No code from data files.** Nothing is unpickled except through CIFAR's restricted unpickler, which
  builds only numeric arrays; ``.npy``/``.npz`` object arrays are refused.
- **One error.** Every bad file or option is a :class:`~normlab.errors.DatasetError` (a
  :class:`~normlab.errors.NormlabError`), one line, quoting file content briefly with control characters
  escaped (``_text``).

Per reader: ``idx`` streams images and labels a window at a time (gzip or raw, memory-mapped when raw);
``cifar`` reads one batch file at a time through the restricted unpickler; ``arrays`` memory-maps stored
arrays and streams compressed members; ``tables`` checks every line's field count and picks the one exact
dtype (``int64``, ``uint64`` or ``float64``) in a first pass, then streams chunks; ``images`` decodes a batch
at a time, one bit depth per folder, any image sizes for statistics (one size, or ``resize=``, for
``arrays()``). :meth:`LoadedDataset.torch` serves any split to PyTorch (``normlab.adapters.torch_data``).

To add a dataset format, write one reader module (a ``Source`` subclass and a loader
``load(kind, path, name, **options)``) and add one ``Kind`` entry to :data:`KINDS`.

Examples
--------
>>> import normlab.data
>>> ds = normlab.data.open("breast-cancer", limit=100, seed=0)
>>> ds.sample_shape, ds.dtype.name, ds.layout, ds.class_counts().tolist()
((30,), 'float64', '(n, f)', [37, 63])
>>> [len(x) for x, y in ds.iter_batches(batch_size=64)]
[64, 36]
"""

from __future__ import annotations

from normlab.data._base import Dataset as Dataset
from normlab.data._base import LoadedDataset as LoadedDataset
from normlab.data._shards import SHARD_BYTES as SHARD_BYTES
from normlab.data._shards import Shard as Shard
from normlab.data._shards import check_n_shards as check_n_shards
from normlab.data._shards import skipped_message as skipped_message
from normlab.data._spec import KINDS as KINDS
from normlab.data._spec import open_dataset as open
from normlab.data._spec import parse_spec as parse_spec

__all__ = [
    "KINDS",
    "SHARD_BYTES",
    "Dataset",
    "LoadedDataset",
    "Shard",
    "check_n_shards",
    "from_arrays",
    "open",
    "parse_spec",
    "skipped_message",
]


def from_arrays(
    x,
    y=None,
    *,
    name: str = "arrays",
    validation_split: float | None = None,
    shuffle_split: bool = False,
    seed: int = 0,
    limit: int | None = None,
) -> LoadedDataset:
    """Wrap in-memory arrays ``x`` (samples first) and labels ``y`` as a :class:`Dataset` (split ``"train"``).

    >>> import numpy as np
    >>> ds = from_arrays(np.zeros((10, 4)), np.arange(10) % 2, validation_split=0.2)
    >>> ds.num_samples("train"), ds.num_samples("validation"), ds.n_classes
    (8, 2, 2)
    """
    import numpy as np

    from normlab.data._base import ArraySource, class_count
    from normlab.data._spec import _check_common
    from normlab.errors import DatasetError

    x = np.asarray(x)
    if x.ndim < 1:
        raise DatasetError(
            f"{name}: x is a scalar; expected samples along a first axis, shape (n, ...)."
        )
    labels = None
    n_classes = None
    if y is not None:
        labels = np.asarray(y)
        if labels.shape != (len(x),):
            raise DatasetError(
                f"{name}: y has shape {labels.shape}; expected ({len(x)},), one label per sample."
            )
        if labels.dtype.kind in "biu":
            if labels.dtype == np.uint64 and len(labels) and int(labels.max()) > 2**63 - 1:
                raise DatasetError(
                    f"{name}: y holds {int(labels.max()):,}, above int64's range; expected labels that fit int64."
                )
            labels = labels.astype(np.int64)
            n_classes = class_count(labels, len(labels))
    options = {
        "validation_split": validation_split,
        "shuffle_split": shuffle_split,
        "seed": seed,
        "limit": limit,
    }
    _check_common(name, options)
    return LoadedDataset(
        kind="arrays",
        name=name,
        sources={"train": ArraySource(x, labels)},
        sample_shape=x.shape[1:],
        dtype=x.dtype,
        n_classes=n_classes,
        class_names=None if n_classes is None else tuple(str(i) for i in range(n_classes)),
        **options,
    )
