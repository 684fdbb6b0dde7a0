"""The result store: one SQLite database per run folder, written only by the sweep's parent process.

Every finished run (its summary row and all its epochs) is committed in one transaction before the sweep
moves on, so a sweep killed at any moment, even by SIGKILL in the middle of an epoch, leaves every
finished run intact and no half-written one. The database also holds the configuration and its hash: a
folder belongs to one configuration, and opening it with another is refused.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from normlab.experiments._common import CompareError
from normlab.experiments.train import EPOCH_FIELDS, RunResult

__all__ = ["DB_NAME", "ResultStore", "open_store"]

DB_NAME = "results.sqlite"
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

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
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
        import socket

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

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    rundir.mkdir(parents=True, exist_ok=True)
    store = ResultStore(path)
    old_hash = store.get_meta("config_hash")
    if old_hash is None:
        with _transaction(store.conn):
            store.set_meta("schema_version", str(SCHEMA_VERSION))
            store.set_meta("config", json.dumps(config, sort_keys=True))
            store.set_meta("config_hash", str(config_hash))
            store.set_meta("created_at", _now())
    elif old_hash != config_hash:
        diffs = _differences(json.loads(store.get_meta("config") or "{}"), config)
        store.close()
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise CompareError(
            f"{rundir} holds results of a different comparison configuration (differs in {shown or 'its hash'}); "
            "expected the same configuration, which resumes the sweep. Choose another --out folder for the "
            "new configuration, or delete this one to start over."
        )
    return store
