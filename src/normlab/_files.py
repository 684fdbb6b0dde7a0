"""The one way normlab writes a file: a temporary file in the same folder, renamed over the target.

A reader (or a process killed in the middle of a write, even by SIGKILL) never sees half a file: the target
holds either its old contents or the new ones. ``os.replace`` is atomic on POSIX and Windows when both
paths are on one file system, which a temporary file in the target's own folder guarantees. New files get
the permissions of any file the user creates (``0o666`` less the umask, ``0o644`` by default), not the
``0o600`` of :func:`tempfile.mkstemp`. A write that fails (a read-only folder, a full disk, a folder where
the file should be) raises :class:`~normlab.errors.OutputError` that names the file and the fix.

- :func:`atomic_path`: a context manager that yields the temporary path for writers that want a path
  (``fig.savefig``, ``np.save``); the temporary file keeps the target's suffix, so formats chosen by suffix
  still work.
- :func:`atomic_write_bytes`, :func:`atomic_write_text`: whole contents at once.

This module is part of the base layer: it imports only :mod:`normlab.errors` and :mod:`normlab._format`.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from normlab._format import quote_user
from normlab.errors import OutputError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "file_mode"]

_FIXES = {
    errno.ENOSPC: "Free some disk space or choose a folder on another disk.",
    errno.EDQUOT: "Free some of your disk quota or choose a folder on another disk.",
    errno.EACCES: "Choose a folder you may write to, or change its permissions.",
    errno.EPERM: "Choose a folder you may write to, or change its permissions.",
    errno.EROFS: "The file system is read-only; choose a folder on a writable disk.",
    errno.EISDIR: "A folder has the file's name; remove or rename that folder, or choose another path.",
}


def _umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, and put it back at once
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The permissions a new file gets: ``0o666`` less the umask (``0o644`` under the usual ``022``)."""
    return 0o666 & ~_umask()


def write_failed(path: Path, err: OSError) -> OutputError:
    """The :class:`OutputError` for ``err`` raised while writing ``path``: the file, the cause, the fix."""
    reason = err.strerror or str(err)
    fix = _FIXES.get(err.errno or 0, "Check that the folder exists and is writable, or choose another path.")
    out = OutputError(f"cannot write {quote_user(str(path))}: {reason}; expected a writable folder with free space. {fix}")
    out.errno = err.errno
    return out


def _folder_of(path: Path) -> Path:
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        what = "is a file" if directory.exists() else "does not exist"
        raise OutputError(
            f"Cannot save to {quote_user(str(path))}: the folder {quote_user(str(directory))} {what}; expected "
            "an existing folder. Create it first (mkdir -p) or choose another path."
        )
    if path.is_dir():
        raise write_failed(path, IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)))
    return directory


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it replaces ``path``.

    The temporary file is ``.NAME.<random>.tmp<suffix>`` in the same folder (removed again if the block
    raises). On success it is flushed to disk, given :func:`file_mode` permissions and renamed over
    ``path`` in one step.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('hello', ['a.txt'])
    """
    path = Path(path)
    directory = _folder_of(path)
    tmp = directory / f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}"
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OutputError:
        tmp.unlink(missing_ok=True)
        raise
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise write_failed(path, err) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "xb") as fh:
            fh.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically (see :func:`atomic_path`)."""
    atomic_write_bytes(path, text.encode("utf-8"))
