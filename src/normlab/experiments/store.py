"""The result store: one SQLite database per run folder, written only by the sweep's parent process.

One sweep at a time owns a run folder: :func:`open_store` with a configuration takes an exclusive lock on
``.lock`` in the folder (``fcntl.flock``; the system drops it when the process ends, even by SIGKILL), and a
second ``normlab compare`` on the same folder is refused at once with a message naming the process that
holds it, before it trains anything. So no run is ever trained twice. ``normlab report`` takes no lock: it
only reads the runs, and every file it writes replaces the old one atomically.

Every finished run (its summary row and all its epochs) is committed in one transaction before the sweep
moves on, so a sweep killed at any moment, even by SIGKILL in the middle of an epoch, leaves every
finished run intact and no half-written one. The database also holds the configuration and its hash: a
folder belongs to one configuration, and opening it with another is refused.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from normlab._files import file_mode, write_failed
from normlab._format import quote_user
from normlab.errors import OutputError
from normlab.experiments._common import CompareError
from normlab.experiments.train import EPOCH_FIELDS, RunResult

__all__ = ["DB_NAME", "LOCK_NAME", "ResultStore", "open_store"]

DB_NAME = "results.sqlite"
LOCK_NAME = ".lock"
SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session INTEGER PRIMARY KEY, started_at TEXT NOT NULL, planned INTEGER, host TEXT
);
CREATE TABLE IF NOT EXISTS methods (
    method TEXT PRIMARY KEY, description TEXT NOT NULL, notes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY,
    model TEXT NOT NULL, method TEXT NOT NULL, init_seed INTEGER NOT NULL, order_seed INTEGER NOT NULL,
    status TEXT NOT NULL, reason TEXT NOT NULL, epochs_done INTEGER NOT NULL, seconds REAL NOT NULL,
    device TEXT NOT NULL, threads INTEGER NOT NULL, session INTEGER NOT NULL, finished_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS epochs (
    run_key TEXT NOT NULL REFERENCES runs(run_key), epoch INTEGER NOT NULL,
    {", ".join(f"{f} REAL" for f in EPOCH_FIELDS)},
    PRIMARY KEY (run_key, epoch)
);
"""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


class ResultStore:
    """The SQLite store of one run folder. Open it with :func:`open_store`."""

    def __init__(self, path: Path, lock: _FolderLock | None = None) -> None:
        self.path = Path(path)
        self.lock = lock
        self.conn = _Connection(self.path)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)
        # a folder written before a per-epoch field existed gets its column (empty for its old epochs)
        have = {row[1] for row in self.conn.execute("PRAGMA table_info(epochs)")}
        for name in EPOCH_FIELDS:
            if name not in have:
                self.conn.execute(f"ALTER TABLE epochs ADD COLUMN {name} REAL")
        self.session: int | None = None

    # ---- configuration --------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def config(self) -> dict[str, Any]:
        raw = self.get_meta("config")
        if raw is None:
            raise CompareError(
                f"{self.path} holds no comparison configuration; expected a run folder written by "
                "`normlab compare`. Run the comparison first."
            )
        return json.loads(raw)

    # ---- sessions and methods -------------------------------------------------------------------

    def begin_session(self, planned: int) -> int:
        cur = self.conn.execute(
            "INSERT INTO sessions(started_at, planned, host) VALUES (?, ?, ?)",
            (_now(), planned, socket.gethostname()),
        )
        self.session = int(cur.lastrowid or 0)
        return self.session

    def save_method(self, method: str, description: str, notes: Iterable[str]) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO methods(method, description, notes) VALUES (?, ?, ?)",
            (method, description, json.dumps(list(notes))),
        )

    def methods(self) -> dict[str, tuple[str, list[str]]]:
        rows = self.conn.execute("SELECT method, description, notes FROM methods").fetchall()
        return {m: (d, json.loads(n)) for m, d, n in rows}

    # ---- runs -----------------------------------------------------------------------------------

    def finished_keys(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT run_key FROM runs")}

    def add_run(self, key: str, task: dict[str, Any], result: RunResult) -> None:
        """Commit one finished run and all its epochs atomically."""
        session = self.session if self.session is not None else 0
        with _transaction(self.conn):
            self.conn.execute(
                "INSERT INTO runs(run_key, model, method, init_seed, order_seed, status, reason, epochs_done, "
                "seconds, device, threads, session, finished_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    task["model"],
                    task["method"],
                    task["init_seed"],
                    task["order_seed"],
                    result.status,
                    result.reason,
                    len(result.epochs),
                    result.seconds,
                    result.device,
                    result.threads,
                    session,
                    _now(),
                ),
            )
            self.conn.executemany(
                f"INSERT INTO epochs(run_key, epoch, {', '.join(EPOCH_FIELDS)}) "
                f"VALUES (?, ?, {', '.join('?' * len(EPOCH_FIELDS))})",
                [(key, e["epoch"], *(_num(e[f]) for f in EPOCH_FIELDS)) for e in result.epochs],
            )

    def runs(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM runs ORDER BY model, method, init_seed, order_seed")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def epochs(self) -> list[dict[str, Any]]:
        cur = self.conn.execute(
            "SELECT r.model, r.method, r.init_seed, r.order_seed, r.status, e.* FROM epochs e "
            "JOIN runs r USING (run_key) ORDER BY r.model, r.method, r.init_seed, r.order_seed, e.epoch"
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        self.conn.close()
        if self.lock is not None:
            self.lock.release()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Connection:
    """A SQLite connection whose failures are normlab errors that name the database and the fix.

    A damaged file (``file is not a database``, ``database disk image is malformed``) is a
    :class:`CompareError`; a database that cannot be written (read-only folder, full disk) an
    :class:`~normlab.errors.OutputError`.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.raw = self._call(sqlite3.connect, path, timeout=30, isolation_level=None)

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as e:
            if "disk is full" in str(e) or "readonly" in str(e) or "unable to open" in str(e):
                code = 28 if "full" in str(e) else 30 if "readonly" in str(e) else 13
                raise write_failed(self.path, OSError(code, str(e))) from None
            raise _damaged(self.path, e) from None
        except sqlite3.DatabaseError as e:
            raise _damaged(self.path, e) from None

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        return self._call(self.raw.execute, sql, params)

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:
        return self._call(self.raw.executemany, sql, rows)

    def executescript(self, script: str) -> sqlite3.Cursor:
        return self._call(self.raw.executescript, script)

    def close(self) -> None:
        self.raw.close()


def _damaged(path: Path, err: Exception) -> CompareError:
    return CompareError(
        f"{quote_user(str(path))} is not a readable results database (SQLite says: {quote_user(str(err))}); "
        "expected the results.sqlite that `normlab compare` writes. Restore the file from a backup, or "
        "delete the run folder and run the comparison again."
    )


class _FolderLock:
    """An exclusive lock on a run folder, held by the one sweep that writes it (``fcntl.flock``).

    The lock file says who holds it (process id, host, start time) so that a refused second sweep can
    say so. The system releases the lock when its process ends in any way; where ``fcntl`` does not
    exist (Windows) the folder is not locked.
    """

    def __init__(self, rundir: Path) -> None:
        self.path = rundir / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, file_mode())
        except OSError as e:
            raise write_failed(self.path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise CompareError(
                f"{quote_user(str(self.path.parent))} is in use by another `normlab compare` (held by {quote_user(holder, 120)}); "
                "expected one sweep per run folder at a time. Wait for it to finish, then run this command "
                "again to resume whatever it left; or choose another --out folder."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()} on {socket.gethostname()}, since {_now()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the file releases the lock
            self.fd = None


class _transaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += _differences(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if old == new else [f"{prefix}: {old!r} → {new!r}"]


def _make_folder(rundir: Path) -> Path:
    """``rundir``, created if needed; an :class:`OutputError` when a file has its name or it cannot be made."""
    if rundir.exists() and not rundir.is_dir():
        raise OutputError(
            f"--out {quote_user(str(rundir))} is a file; expected a run folder (a new folder, or one an earlier "
            "`normlab compare` wrote). Choose another --out path."
        )
    try:
        rundir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_failed(rundir, e) from None
    return rundir


def open_store(
    rundir: Path, config: dict[str, Any] | None = None, config_hash: str | None = None
) -> ResultStore:
    """Open (or create) the store of ``rundir``.

    With ``config``, the folder must be new or hold the same configuration (same hash); otherwise a
    :class:`CompareError` names the settings that differ. Without it the folder must already exist
    (``normlab report``).
    """
    rundir = Path(rundir)
    path = rundir / DB_NAME
    if config is None:
        if not path.is_file():
            raise CompareError(
                f"{rundir} is not a comparison run folder (no {DB_NAME}); expected the --out folder of a "
                "`normlab compare` run."
            )
        return ResultStore(path)
    lock = _FolderLock(_make_folder(rundir))
    lock.acquire()
    try:
        store = ResultStore(path, lock)
    except BaseException:
        lock.release()
        raise
    try:
        _claim(store, rundir, config, config_hash)
    except BaseException:
        store.close()
        raise
    return store


def _claim(store: ResultStore, rundir: Path, config: dict[str, Any], config_hash: str | None) -> None:
    """Record ``config`` in a new store, or check that the store holds the same configuration."""
    old_hash = store.get_meta("config_hash")
    if old_hash is None:
        with _transaction(store.conn):
            store.set_meta("schema_version", str(SCHEMA_VERSION))
            store.set_meta("config", json.dumps(config, sort_keys=True))
            store.set_meta("config_hash", str(config_hash))
            store.set_meta("created_at", _now())
    elif old_hash != config_hash:
        diffs = _differences(json.loads(store.get_meta("config") or "{}"), config)
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise CompareError(
            f"{rundir} holds results of a different comparison configuration (differs in {shown or 'its hash'}); "
            "expected the same configuration, which resumes the sweep. Choose another --out folder for the "
            "new configuration, or delete this one to start over."
        )

