"""Tables (``csv:FILE``, ``parquet:FILE``): numeric feature columns, an optional label column.

Every column except ``target`` and those in ``drop`` is a feature and must be numeric (ints, floats or
booleans); other columns are refused with a message listing them, so nothing is silently left out.
Features are one dtype that holds every column exactly (``_columns.feature_dtype``): ``int64`` when every
feature column holds integers only, ``uint64`` when some hold values above ``2**63 - 1`` and none is
negative, else ``float64``, provided no integer column then holds a magnitude above ``2**53``; anything
else (and any integer beyond 64 bits) is an error. Every CSV line must have as many fields as the header;
the separator is one character; the file is UTF-8.
The ``target`` column becomes ``int64`` class indices ``0..k-1`` into ``class_names`` (its distinct
values, sorted); a target of non-integer numbers stays a ``float64`` regression target
(``n_classes`` is then ``None``).

A CSV file is read in chunks twice: a first pass checks the columns (and finds the row of any text in
a numeric column), a second streams the data; memory stays about one chunk. A Parquet file's schema and
row count come from its footer, and its row groups are streamed.

For a cluster, a whole Parquet table is cut at its row groups and a whole CSV file into byte ranges cut
at line ends (a shard reads the lines that start in its range); a subset (``limit=``, a validation
split) is cut into runs of rows.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from normlab.data._base import LoadedDataset, Source
from normlab.data._columns import (
    FLOAT_EXACT,
    IntRange,
    check_field_counts,
    check_sep,
    feature_dtype,
    out_of_range_integer,
)
from normlab.data._selection import Batch, Selection, select_rows
from normlab.data._shards import Shard, cut_points
from normlab.data._text import brief
from normlab.errors import DatasetError

__all__ = ["load_table"]

_SCAN_ROWS = 65536

_CUT_HINT = (
    "A CSV file whose quoted fields span lines cannot be cut into byte ranges: compute its statistics "
    "without --scheduler (or convert it to Parquet)."
)


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise DatasetError(
            "csv: tables are read with pandas, which is not installed; expected it for csv:/parquet: specs. "
            "Install it with: pip install 'normlab[tables]'"
        ) from None
    return pandas


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            "parquet: files are read with pyarrow, which is not installed; expected it for parquet: specs. "
            "Install it with: pip install 'normlab[tables]'"
        ) from None
    return pq


@dataclass
class _Column:
    """What a scan learned about one CSV column."""

    kind: str = "int"  # "int" (ints/bools only), "float", or "text"
    non_null: int = 0
    numeric: int = 0
    first_text: tuple[int, Any] | None = None  # (data row, value)
    ints: IntRange = field(default_factory=IntRange)  # the range of its integer chunks, exact
    rounded: bool = False  # integers above 2**53 beside empty fields: pandas read them as float64


@dataclass
class _Target:
    values: list[np.ndarray] = field(default_factory=list)
    missing_row: int | None = None


def _list(names: Sequence[str]) -> str:
    return ", ".join(repr(str(n)) for n in names)


def _resolve_columns(
    name: str, path: Path, columns: list[str], target: str | None, drop: Sequence[str] | None
) -> list[str]:
    drop = list(drop or [])
    unknown = [d for d in drop if d not in columns]
    if unknown:
        raise DatasetError(
            f"{name}: drop= names {_list(unknown)}, which {path.name} does not have; expected some of its "
            f"columns: {_list(columns)}."
        )
    if target is not None and target not in columns:
        import difflib

        close = difflib.get_close_matches(target, columns, n=1)
        hint = f" Did you mean target={close[0]!r}?" if close else ""
        raise DatasetError(
            f"{name}: no target column {target!r} in {path.name}; expected one of its columns: "
            f"{_list(columns)}.{hint}"
        )
    features = [c for c in columns if c != target and c not in drop]
    if not features:
        raise DatasetError(
            f"{name}: no feature columns are left after target= and drop=; expected at least one."
        )
    return features


def _refuse_text(
    name: str,
    path: Path,
    text_cols: list[str],
    columns: list[str],
    target: str | None,
    drop: Sequence[str] | None,
) -> None:
    drop_all = list(drop or []) + text_cols
    flag = " ".join(drop_all)
    hint = ""
    if len(columns) == 1 and any(ch in columns[0] for ch in ";\t|"):
        sep = next(ch for ch in ";\t|" if ch in columns[0])
        hint = f" The header looks {sep!r}-separated: pass sep={sep!r} (CLI: --sep {sep!r})."
    raise DatasetError(
        f"{name}: non-numeric column(s) {_list(text_cols)} in {path.name}; expected numeric feature columns "
        f"only. Drop them with drop={drop_all!r} (CLI: --drop {flag}), make one the label with target=, or "
        f"encode them as numbers first.{hint}"
    )


def _classes(name: str, path: Path, target: str, values: np.ndarray) -> tuple[np.ndarray, bool]:
    """Distinct target values, sorted, and whether they are classes (not a float regression target)."""
    if values.dtype.kind == "f":
        if np.isnan(values).any():
            raise DatasetError(
                f"{name}: the target column {target!r} of {path.name} has empty values; expected a label in every row. Fill or drop those rows."
            )
        if not np.all(values == np.round(values)) or (len(values) and np.abs(values).max() > FLOAT_EXACT):
            return np.unique(values), False  # fractions, or integers float64 may have rounded: a target
        values = values.astype(np.int64)
    return np.unique(values), True


class CsvSource(Source):
    """A CSV file read in chunks (the scan at open fixed the columns, dtype and labels)."""

    def __init__(
        self,
        path: Path,
        sep: str,
        features: list[str],
        target: str | None,
        dtype: np.dtype,
        y: np.ndarray | None,
        n: int,
        classes: np.ndarray | None,
    ) -> None:
        self.path = path
        self.sep = sep
        self.features = features
        self.target = target
        self.dtype = dtype
        self.y = y
        self.n = n
        self.classes = classes

    def _features(self, chunk: Any) -> np.ndarray:
        return np.ascontiguousarray(chunk[self.features].to_numpy(dtype=self.dtype))

    def _chunks(self, rows: int) -> Iterator[Batch]:
        pd = _pandas()
        usecols = self.features + ([self.target] if self.target else [])
        offset = 0
        with pd.read_csv(self.path, sep=self.sep, usecols=usecols, chunksize=rows) as reader:
            for chunk in reader:
                try:
                    x = self._features(chunk)
                except (ValueError, TypeError) as exc:
                    raise DatasetError(
                        f"{self.path}: a column changed type after the file was checked ({exc}); expected the "
                        "file to stay the same while it is read."
                    ) from None
                k = len(x)
                y = None if self.y is None else self.y[offset : offset + k]
                offset += k
                yield x, y

    def pieces(self, sel: Selection, rows: int, materialize: bool = False) -> Iterator[Batch]:
        return select_rows(self._chunks(rows), sel)

    def shards(self, sel: Selection, n_shards: int, *, rows: int, label: str) -> list[Shard]:
        """Byte ranges cut at line ends when the whole file is read; runs of rows otherwise."""
        if sel is not None:
            return super().shards(sel, n_shards, rows=rows, label=label)
        columns = [str(c) for c in _pandas().read_csv(self.path, sep=self.sep, nrows=0).columns]
        with open(self.path, "rb") as f:
            f.readline()
            header_end = f.tell()
        size = self.path.stat().st_size
        cuts = [header_end + c for c in cut_points(size - header_end, n_shards)]
        return [_ByteRangeShard(self, (lo, hi, columns), rows, None, f"{label} bytes {lo}-{hi}")
                for lo, hi in itertools.pairwise(cuts)]  # fmt: skip

    def _byte_range(self, lo: int, hi: int, columns: list[str], rows: int) -> Iterator[Batch]:
        """The features of the lines that start inside bytes ``[lo, hi)`` (labels are not read)."""
        pd = _pandas()
        with open(self.path, "rb") as f:
            start = _line_start(f, lo)
            stop = _line_start(f, hi)
            if stop <= start:
                return
            f.seek(start)
            data = f.read(stop - start)
        try:
            reader = pd.read_csv(io.BytesIO(data), sep=self.sep, header=None, names=columns,
                                 usecols=self.features, chunksize=rows)  # fmt: skip
            with reader:
                for chunk in reader:
                    yield self._features(chunk), None
        except (ValueError, TypeError, pd.errors.ParserError) as exc:
            raise DatasetError(
                f"{self.path}: bytes {start}-{stop} do not parse as whole rows of the table ({exc}); expected one "
                f"row per line. {_CUT_HINT}"
            ) from None


class _ByteRangeShard(Shard):
    """The lines of a CSV file that start inside the byte range ``[lo, hi)`` (their count is known once read)."""

    count_hint = _CUT_HINT

    def _read(self) -> Iterator[Batch]:
        lo, hi, columns = self.sel
        return self.source._byte_range(lo, hi, columns, self.rows)


def _line_start(f: Any, pos: int) -> int:
    """The first line start at or after byte ``pos`` (the end of the file if none)."""
    if pos == 0:
        return 0
    f.seek(pos - 1)
    if f.read(1) == b"\n":
        return pos
    f.readline()
    return f.tell()


def _scan_csv(
    name: str, path: Path, sep: str, target: str | None, drop: Sequence[str] | None
) -> CsvSource:
    pd = _pandas()
    try:
        header = pd.read_csv(path, sep=sep, nrows=0)
    except pd.errors.EmptyDataError:
        raise DatasetError(
            f"{path}: the file is empty; expected a CSV table with a header row."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(
            f"{path}: not a readable CSV file ({exc}); expected a table with a header row."
        ) from None
    columns = [str(c) for c in header.columns]
    check_field_counts(name, path, sep, len(columns))
    features = _resolve_columns(name, path, columns, target, drop)
    info = {c: _Column() for c in features}
    tgt = _Target()
    n = 0
    usecols = features + ([target] if target else [])
    try:
        with pd.read_csv(
            path, sep=sep, usecols=usecols, chunksize=_SCAN_ROWS, low_memory=False
        ) as reader:
            for chunk in reader:
                for c in features:
                    _scan_column(pd, info[c], chunk[c], n, (name, c))
                if target is not None:
                    col = chunk[target]
                    if col.isna().any() and tgt.missing_row is None:
                        tgt.missing_row = n + int(np.flatnonzero(col.isna().to_numpy())[0]) + 1
                    values = col.dropna().to_numpy()
                    tgt.values.append(
                        np.unique(values.astype(str) if values.dtype.kind == "O" else values)
                    )
                n += len(chunk)
    except pd.errors.ParserError as exc:
        raise DatasetError(
            f"{path}: not a readable CSV file ({brief(str(exc), 200, quotes=False)}); expected the same number of fields on "
            "every line."
        ) from None
    except UnicodeDecodeError as exc:
        raise _not_utf8(name, path, exc) from None
    if n == 0:
        raise DatasetError(
            f"{name}: {path.name} has a header row but no data rows; expected at least one row of values."
        )
    text_cols = [
        c for c, col in info.items() if col.kind == "text" and col.numeric * 2 < col.non_null
    ]
    mixed = [c for c, col in info.items() if col.kind == "text" and c not in text_cols and col.first_text]
    if mixed:
        c = mixed[0]
        row, value = info[c].first_text  # type: ignore[misc]
        raise DatasetError(
            f"{name}: column {brief(c)} is numeric but data row {row} (line {row + 1} of {path.name}) holds the "
            f"text {brief(str(value))}; expected a number. Fix or remove that row (an empty field is read as missing)."
        )
    if text_cols:
        _refuse_text(name, path, text_cols, columns, target, drop)
    dtype = feature_dtype(
        name,
        {c: col.ints for c, col in info.items() if col.ints.lo is not None},
        [c for c, col in info.items() if col.kind != "int"],
        [c for c, col in info.items() if col.rounded],
    )
    y, classes = (None, None) if target is None else _csv_labels(pd, name, path, sep, target, tgt, n)
    return CsvSource(path, sep, features, target, dtype, y, n, classes)


def _csv_labels(
    pd: Any, name: str, path: Path, sep: str, target: str, tgt: _Target, n: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The target column as class indices (and the classes), or as a float64 target (classes ``None``)."""
    if tgt.missing_row is not None:
        raise DatasetError(
            f"{name}: the target column {target!r} is empty on data row {tgt.missing_row}; expected a label "
            "in every row. Fill or drop those rows."
        )
    if any(v.dtype.kind == "U" for v in tgt.values):
        tgt.values = [v.astype(str) for v in tgt.values]
    merged = np.unique(np.concatenate(tgt.values)) if tgt.values else np.empty(0)
    classes, is_class = _classes(name, path, target, merged)
    y = _read_target(pd, path, sep, target, n, classes if is_class else None)
    return y, classes if is_class else None


def _not_utf8(name: str, path: Path, exc: UnicodeDecodeError) -> DatasetError:
    return DatasetError(
        f"{name}: {path.name} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} cannot be decoded); expected a "
        "UTF-8 CSV table. Convert it first, e.g. iconv -f latin1 -t utf-8 old.csv > new.csv."
    )


def _scan_column(pd: Any, info: _Column, col: Any, offset: int, where: tuple[str, str]) -> None:
    kind = col.dtype.kind
    non_null = int(col.notna().sum())
    info.non_null += non_null
    if kind in "biu":
        info.numeric += non_null
        if non_null:
            info.ints.update(int(col.min()), int(col.max()))
        return
    if kind == "f":
        info.numeric += non_null
        if info.kind == "int":
            info.kind = "float"
        v = col.to_numpy()
        finite = v[np.isfinite(v)]
        if non_null < len(v) and len(finite) and np.abs(finite).max() >= FLOAT_EXACT and np.all(finite == np.round(finite)):
            info.rounded = True
        return
    huge = out_of_range_integer(col.dropna().to_numpy())
    if huge is not None:
        raise DatasetError(
            f"{where[0]}: column {brief(where[1])} holds the integer {brief(huge, 40)}, which no 64-bit integer "
            "type holds and float64 would round; expected integers within int64 or uint64. Drop the column "
            f"(drop=[{where[1]!r}]) or store it as text."
        )
    parsed = pd.to_numeric(col, errors="coerce")
    info.numeric += int(parsed.notna().sum())
    bad = col.notna().to_numpy() & parsed.isna().to_numpy()
    info.kind = "text"
    if bad.any() and info.first_text is None:
        i = int(np.flatnonzero(bad)[0])
        info.first_text = (offset + i + 1, col.iloc[i])


def _read_target(
    pd: Any, path: Path, sep: str, target: str, n: int, classes: np.ndarray | None
) -> np.ndarray:
    out = np.empty(n, dtype=np.int64 if classes is not None else np.float64)
    offset = 0
    with pd.read_csv(
        path, sep=sep, usecols=[target], chunksize=_SCAN_ROWS, low_memory=False
    ) as reader:
        for chunk in reader:
            v = chunk[target].to_numpy()
            k = len(v)
            if classes is None:
                out[offset : offset + k] = v
            else:
                if classes.dtype.kind == "U":
                    v = v.astype(str)
                elif v.dtype.kind == "f":
                    v = v.astype(np.int64)
                out[offset : offset + k] = np.searchsorted(classes, v)
            offset += k
    return out


class ParquetSource(Source):
    """A Parquet file streamed row group by row group."""

    def __init__(
        self, path: Path, features: list[str], dtype: np.dtype, y: np.ndarray | None, n: int
    ) -> None:
        self.path = path
        self.features = features
        self.dtype = dtype
        self.y = y
        self.n = n

    def _batches(
        self, rows: int, row_groups: list[int] | None = None, start: int = 0
    ) -> Iterator[Batch]:
        """Stream the row groups ``row_groups`` (default all), whose first row is row ``start`` of the file."""
        pf = _pyarrow_parquet().ParquetFile(self.path)
        offset = start
        for batch in pf.iter_batches(batch_size=rows, row_groups=row_groups, columns=self.features):
            k = batch.num_rows
            x = np.empty((k, len(self.features)), dtype=self.dtype)
            for j, c in enumerate(batch.columns):
                x[:, j] = c.to_numpy(zero_copy_only=False)
            y = None if self.y is None else self.y[offset : offset + k]
            offset += k
            yield x, y

    def pieces(self, sel: Selection, rows: int, materialize: bool = False) -> Iterator[Batch]:
        return select_rows(self._batches(rows), sel)

    def shards(self, sel: Selection, n_shards: int, *, rows: int, label: str) -> list[Shard]:
        """Whole row groups when the whole table is read; runs of rows otherwise."""
        if sel is not None:
            return super().shards(sel, n_shards, rows=rows, label=label)
        meta = _pyarrow_parquet().ParquetFile(self.path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        starts = np.concatenate(([0], np.cumsum(sizes)))
        return [_RowGroupShard(self, (list(range(a, b)), int(starts[a])), rows, int(starts[b] - starts[a]),
                               f"{label} row groups {a}-{b - 1}")
                for a, b in itertools.pairwise(cut_points(len(sizes), n_shards))]  # fmt: skip


class _RowGroupShard(Shard):
    """Whole row groups of a Parquet file."""

    def _read(self) -> Iterator[Batch]:
        groups, start = self.sel
        return self.source._batches(self.rows, groups, start)


def _open_parquet(
    name: str, path: Path, target: str | None, drop: Sequence[str] | None
) -> tuple[ParquetSource, np.ndarray | None]:
    pq = _pyarrow_parquet()
    import pyarrow as pa

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DatasetError(
            f"{path}: not a readable Parquet file ({exc}); expected a .parquet table."
        ) from None
    schema = pf.schema_arrow
    columns = list(schema.names)
    features = _resolve_columns(name, path, columns, target, drop)
    text_cols = []
    floats: list[str] = []
    ints: dict[str, IntRange] = {}
    for c in features:
        t = schema.field(c).type
        if pa.types.is_integer(t) or pa.types.is_boolean(t):
            ints[c] = _int_range(pf, columns.index(c), c)
            if _null_count(pf, columns.index(c)) != 0:
                floats.append(c)  # empty values: read as float64 with NaN
        elif pa.types.is_floating(t) or pa.types.is_decimal(t):
            floats.append(c)
        else:
            text_cols.append(c)
    if text_cols:
        _refuse_text(name, path, text_cols, columns, target, drop)
    n = pf.metadata.num_rows
    y, classes = None, None
    if target is not None:
        col = pf.read(columns=[target]).column(0)
        if col.null_count:
            raise DatasetError(
                f"{name}: the target column {target!r} of {path.name} has {col.null_count} empty values; expected "
                "a label in every row. Fill or drop those rows."
            )
        values = col.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "O":
            values = values.astype(str)
        classes, is_class = _classes(name, path, target, values)
        if is_class:
            v = values.astype(np.int64) if values.dtype.kind == "f" else values
            y = np.searchsorted(classes, v).astype(np.int64)
        else:
            y, classes = values.astype(np.float64), None
    dtype = feature_dtype(name, ints, floats, [])
    return ParquetSource(path, features, dtype, y, n), classes


def _int_range(pf: Any, index: int, column: str) -> IntRange:
    """The exact range of an integer column: from the row group statistics, else by reading the column."""
    import pyarrow.compute as pc

    out = IntRange()
    for g in range(pf.metadata.num_row_groups):
        stats = pf.metadata.row_group(g).column(index).statistics
        if stats is not None and stats.has_min_max:
            out.update(int(stats.min), int(stats.max))
            continue
        values = pf.read_row_group(g, columns=[column]).column(0)
        lo_hi = pc.min_max(values).as_py()
        if lo_hi["min"] is not None:
            out.update(int(lo_hi["min"]), int(lo_hi["max"]))
    return out


def _null_count(pf: Any, index: int) -> int | None:
    """Nulls in one column according to the row group statistics; ``None`` when they are not recorded."""
    total = 0
    for g in range(pf.metadata.num_row_groups):
        stats = pf.metadata.row_group(g).column(index).statistics
        if stats is None or not stats.has_null_count:
            return None
        total += stats.null_count
    return total


def load_table(
    kind: str,
    path: Path,
    name: str,
    *,
    target: str | None = None,
    drop: Sequence[str] | None = None,
    sep: str = ",",
    **options: Any,
) -> LoadedDataset:
    """Open a CSV or Parquet table (see the module docstring)."""
    if isinstance(drop, str):
        drop = [drop]
    if path.stat().st_size == 0:
        raise DatasetError(
            f"{path}: the file is empty (zero bytes); expected a {kind.upper()} table."
        )
    source: Source
    if kind == "csv":
        sep = check_sep(name, sep)
        csv = _scan_csv(name, path, sep, target, drop)
        source, classes, features, dtype = csv, csv.classes, csv.features, csv.dtype
    else:
        pq_source, classes = _open_parquet(name, path, target, drop)
        source, features, dtype = pq_source, pq_source.features, pq_source.dtype
    class_names = None if classes is None else tuple(str(c) for c in classes)
    return LoadedDataset(
        kind=kind,
        name=name,
        sources={"train": source},
        sample_shape=(len(features),),
        dtype=dtype,
        layout="(n, f)",
        n_classes=None if class_names is None else len(class_names),
        class_names=class_names,
        feature_names=features,
        **options,
    )
