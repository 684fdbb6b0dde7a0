"""Reading fixed-size records from files: uncompressed (seek, memory-map) or compressed (one stream).

Both readers serve rows ``[start, stop)`` of an array of ``shape`` stored at byte ``offset`` and are read
window by window in increasing order (:meth:`iter_windows`), so memory stays about one window. Neither
ever allocates more than what it has checked the file can hold.
"""

from __future__ import annotations

import gzip
import math
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np

from normlab.errors import DatasetError

__all__ = [
    "MAX_DEFLATE_RATIO",
    "RawArray",
    "StreamArray",
    "check_fits",
    "check_gzip_length",
    "is_gzip",
    "memory_limit",
    "nice_bytes",
    "open_stream",
]

#: Deflate cannot expand data by more than about 1032:1; a claim beyond that is corrupt or hostile.
MAX_DEFLATE_RATIO = 1032

_SKIP_BYTES = 1 << 20


def nice_bytes(n: int) -> str:
    return f"{n:,} bytes"


def memory_limit() -> int:
    """Bytes one allocation may take: the machine's physical memory, or less under ``RLIMIT_AS``."""
    import os

    limit = 2**62
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        pass
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft)
    except (ImportError, ValueError, OSError):  # pragma: no cover - not POSIX
        pass
    return int(limit)


def check_fits(nbytes: int, what: str, fix: str) -> None:
    """Raise :class:`DatasetError` before allocating ``nbytes`` for ``what`` when the machine cannot hold them."""
    limit = memory_limit()
    if nbytes > limit:
        raise DatasetError(
            f"{what} would take {nice_bytes(nbytes)}, more than this machine's {nice_bytes(limit)} of memory; "
            f"expected something that fits. {fix}"
        )


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def open_stream(path: Path) -> IO[bytes]:
    """Open ``path`` for reading, decompressing on the fly when it is gzip (by its magic bytes)."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _count_gzip_length(path: Path, cap: int) -> int:
    """Decompressed length of a gzip file, counted without keeping the data (stops past ``cap``)."""
    total = 0
    with gzip.open(path, "rb") as f:
        while total <= cap:
            chunk = f.read(_SKIP_BYTES)
            if not chunk:
                break
            total += len(chunk)
    return total


def check_gzip_length(path: Path, claimed: int, what: str, fix: str) -> None:
    """Make sure a gzip file decompresses to exactly ``claimed`` bytes, without holding its data.

    A claim larger than the compressed size allows is refused at once. Otherwise the gzip trailer's
    length field (the length modulo 2**32) is compared; when it disagrees (multi-member files, truncated
    or corrupt streams) the stream is decompressed and counted, stopping just past the claim.
    """
    size = path.stat().st_size
    if claimed > size * MAX_DEFLATE_RATIO + 1024:
        raise DatasetError(
            f"{path}: {what} claims {nice_bytes(claimed)} of data, more than a gzip file of "
            f"{nice_bytes(size)} can hold (deflate expands at most {MAX_DEFLATE_RATIO}:1); expected a size "
            f"consistent with the file. The file is corrupt or not what it claims to be. {fix}"
        )
    with open(path, "rb") as f:
        f.seek(max(size - 4, 0))
        trailer = f.read(4)
    if len(trailer) == 4 and struct.unpack("<I", trailer)[0] == claimed % 2**32:
        return
    try:
        actual = _count_gzip_length(path, claimed)
    except EOFError:
        raise DatasetError(
            f"{path}: the gzip stream ends early (truncated file); expected {nice_bytes(claimed)} of "
            f"decompressed data for {what}. {fix}"
        ) from None
    except (OSError, zlib.error) as exc:
        raise DatasetError(
            f"{path}: the gzip data is corrupt ({exc}); expected a valid .gz file. {fix}"
        ) from None
    if actual != claimed:
        got = f"more than {nice_bytes(claimed)}" if actual > claimed else nice_bytes(actual)
        raise DatasetError(
            f"{path}: decompresses to {got} but {what} needs exactly {nice_bytes(claimed)}; expected the "
            f"two to agree. The file is truncated, padded or corrupt. {fix}"
        )


class RawArray:
    """An uncompressed array at ``offset`` in ``path``: rows read by seeking, the whole memory-mapped.

    ``dtype`` may be non-native (IDX files are big-endian); rows come back in native byte order.
    """

    def __init__(
        self,
        path: Path,
        offset: int,
        dtype: np.dtype,
        shape: tuple[int, ...],
        fortran: bool = False,
    ) -> None:
        self.path = Path(path)
        self.offset = int(offset)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.fortran = fortran
        self.n = self.shape[0]
        self.row_items = math.prod(self.shape[1:])
        self.row_bytes = self.row_items * self.dtype.itemsize

    @property
    def native_dtype(self) -> np.dtype:
        return self.dtype.newbyteorder("=")

    def _native(self, a: np.ndarray) -> np.ndarray:
        return a if a.dtype.isnative else a.astype(self.native_dtype)

    def memmap(self) -> np.ndarray:
        """The whole array, memory-mapped copy-on-write (writable; writes never reach the file)."""
        order = "F" if self.fortran else "C"
        if self.n == 0 or self.row_items == 0:
            return np.zeros(self.shape, dtype=self.native_dtype)
        return np.memmap(
            self.path, dtype=self.dtype, mode="c", offset=self.offset, shape=self.shape, order=order
        )

    def iter_windows(self, spans: Iterable[tuple[int, int]]) -> Iterator[np.ndarray]:
        if self.fortran:
            mm = self.memmap()
            for start, stop in spans:
                yield self._native(np.ascontiguousarray(mm[start:stop]))
            return
        with open(self.path, "rb") as f:
            for start, stop in spans:
                k = stop - start
                out = np.empty((k, *self.shape[1:]), dtype=self.dtype)
                f.seek(self.offset + start * self.row_bytes)
                got = f.readinto(memoryview(out).cast("B")) if out.nbytes else 0
                if got != out.nbytes:
                    raise DatasetError(
                        f"{self.path}: the file ends after {nice_bytes(self.offset + start * self.row_bytes + got)}; "
                        f"expected {nice_bytes(self.offset + self.n * self.row_bytes)}. The file was truncated "
                        "while being read; copy it again."
                    )
                yield self._native(out)


class StreamArray:
    """A compressed array read in one forward pass (``opener`` returns a fresh decompressing stream).

    Going back (a window before the current position) reopens the stream. Decompression errors and a
    stream that ends early become :class:`DatasetError` naming ``label``.
    """

    def __init__(
        self,
        opener: Callable[[], IO[bytes]],
        offset: int,
        dtype: np.dtype,
        shape: tuple[int, ...],
        label: str,
        fix: str = "",
    ) -> None:
        self.opener = opener
        self.offset = int(offset)
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.n = self.shape[0]
        self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
        self.label = label
        self.fix = fix

    def _error(self, exc: BaseException) -> DatasetError:
        if isinstance(exc, EOFError) or "end-of-stream" in str(exc):
            what = "the compressed stream ends early (truncated file)"
        else:
            what = f"the compressed data is corrupt ({exc})"
        return DatasetError(
            f"{self.label}: {what}; expected {nice_bytes(self.offset + self.n * self.row_bytes)} of data. "
            f"{self.fix or 'Copy or download the file again.'}"
        )

    def iter_windows(self, spans: Iterable[tuple[int, int]]) -> Iterator[np.ndarray]:
        stream: IO[bytes] | None = None
        pos = 0
        try:
            for start, stop in spans:
                target = self.offset + start * self.row_bytes
                if stream is None or target < pos:
                    if stream is not None:
                        stream.close()
                    stream = self.opener()
                    pos = 0
                while pos < target:
                    skipped = stream.read(min(_SKIP_BYTES, target - pos))
                    if not skipped:
                        raise EOFError("end of data")
                    pos += len(skipped)
                out = np.empty((stop - start, *self.shape[1:]), dtype=self.dtype)
                view = memoryview(out).cast("B") if out.nbytes else memoryview(b"")
                got = 0
                while got < out.nbytes:
                    k = stream.readinto(view[got:])  # type: ignore[attr-defined]
                    if not k:
                        raise EOFError("end of data")
                    got += k
                pos += got
                if stop == self.n:
                    # Read on to the end of the stream so the decompressor checks its CRC and length.
                    while stream.read(_SKIP_BYTES):
                        pass
                yield out if out.dtype.isnative else out.astype(out.dtype.newbyteorder("="))
        except (EOFError, zlib.error, gzip.BadGzipFile, zipfile.BadZipFile, OSError) as exc:
            raise self._error(exc) from None
        except (NotImplementedError, RuntimeError, ValueError, struct.error) as exc:  # zipfile on odd headers
            raise self._error(exc) from None
        finally:
            if stream is not None:
                stream.close()


def read_exact(stream: IO[bytes], k: int) -> bytes:
    """Read exactly ``k`` bytes (fewer only at the end of the stream)."""
    parts = []
    left = k
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)
