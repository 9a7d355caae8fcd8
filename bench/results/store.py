"""The local results store: the source of truth for every trial record (MLflow is a synced copy).

Engine: SQLite (stdlib ``sqlite3``), one file, ``<project>/results/results.db`` by default or
``$BENCH_RESULTS``.  Why SQLite rather than Parquet + DuckDB: records arrive one at a time from a
running suite and each must be durable the moment it lands; a SQLite transaction makes each
write atomic (a killed driver leaves the previous complete state, never half a record), readers
never block on the writer (WAL), and indexed look-ups by trial key stay fast at millions of
rows.  Parquet files are immutable, so appending one record means a new file per trial plus
compaction; their strength, columnar scans, is not what a leaderboard of the latest result per
model needs.

Tables:

* ``runs``: one row per ``bench run`` invocation (name, target, profile, git SHA, code version,
  MLflow parent run id, status).
* ``records``: one row per trial that actually ran: its key, identity columns for querying, the
  ``TrialResult`` as JSON (without ``samples``) and the MLflow run id once synced.
* ``samples``: the per-image statistics of a record, zlib-compressed JSON, read only when a
  comparison needs them (they can be megabytes for detection).
* ``members``: which records make up a run, ``cached = 1`` where the run reused a record with the
  same key instead of training again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results.record import TrialResult

ENV = "BENCH_RESULTS"
#: The store layout this code writes and reads, kept in the file's ``PRAGMA user_version``.  Raise it
#: (with a migration in ``ResultsStore._migrate``) whenever a table changes; 0 is a store written before
#: the version was kept, whose tables are version 1's.
SCHEMA_VERSION = 1


class StoreVersionError(RuntimeError):
    """The results store was written by a newer bench (a higher schema version than this one reads)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY, target TEXT, profile TEXT, git_sha TEXT, code_version TEXT,
    mlflow_parent_id TEXT, started_at TEXT, finished_at TEXT, status TEXT
);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, run TEXT NOT NULL, trial_id TEXT,
    model TEXT, task TEXT, dataset TEXT, profile TEXT, seed INTEGER, status TEXT, git_sha TEXT,
    created_at TEXT, mlflow_run_id TEXT, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_key ON records (key, status);
CREATE INDEX IF NOT EXISTS records_unsynced ON records (mlflow_run_id);
CREATE TABLE IF NOT EXISTS samples (record_id INTEGER PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS members (
    run TEXT NOT NULL, record_id INTEGER NOT NULL, cached INTEGER NOT NULL, position INTEGER NOT NULL,
    PRIMARY KEY (run, record_id)
);
CREATE INDEX IF NOT EXISTS members_record ON members (record_id);
"""


def default_path(project: Path) -> Path:
    """``$BENCH_RESULTS`` (a file, or a folder to hold ``results.db``), else ``<project>/results/results.db``.

    Under ``ray job submit`` the project is a temporary copy: point ``BENCH_RESULTS`` at persistent
    storage there, or the store goes with the job.
    """
    env = os.environ.get(ENV)
    if not env:
        return project / "results" / "results.db"
    path = Path(env).expanduser()
    return path / "results.db" if path.is_dir() or not path.suffix else path


@dataclass(frozen=True)
class StoredRecord:
    """A record as the store holds it: its row id, the run it belongs to, and whether that run reused it."""

    id: int
    run: str
    cached: bool
    record: TrialResult


@dataclass(frozen=True)
class RunInfo:
    """One row of the ``runs`` table."""

    name: str
    target: str
    profile: str
    git_sha: str
    code_version: str
    mlflow_parent_id: str | None
    started_at: str
    finished_at: str | None
    status: str


def _parse(body: str, mlflow_run_id: str | None) -> TrialResult:
    """A stored record, with the MLflow run id it was synced to (set after the body was written)."""
    rec = TrialResult.model_validate_json(body)
    return rec if mlflow_run_id is None else rec.model_copy(update={"mlflow_run_id": mlflow_run_id})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultsStore:
    """Typed access to the SQLite results store at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so every write is one explicit transaction.
        self.db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._check_version()  # before anything writes: a newer store is left exactly as it was
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a killed process
        self.db.executescript(SCHEMA)
        self._migrate()

    @property
    def version(self) -> int:
        """The schema version in the file (``PRAGMA user_version``; 0: new, or older than versioning)."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def _check_version(self) -> None:
        """Refuse a store of a newer schema: this code would misread, or corrupt, tables it does not know."""
        found = self.version
        if found > SCHEMA_VERSION:
            self.db.close()
            raise StoreVersionError(
                f"{self.path}: results store schema version {found} was written by a newer bench (this one reads "
                f"up to version {SCHEMA_VERSION}); upgrade bench (`git pull && make`, or pip install the newer "
                f"version), or set {ENV} to another file"
            )

    def _migrate(self) -> None:
        """Bring an older store to ``SCHEMA_VERSION``.  Version 0 (unversioned) has version 1's tables
        (created above if missing), so stamping the version is the whole migration."""
        if self.version < SCHEMA_VERSION:
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside lands, or nothing does."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- runs -----------------------------------------------------------------------------------
    def start_run(self, name: str, target: str, profile: str, git_sha: str, code_version: str) -> None:
        """Register a run; its status is ``running`` until :meth:`finish_run`."""
        with self._tx() as db:
            db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, 'running')",
                       (name, target, profile, git_sha, code_version, _now()))

    def set_parent(self, run: str, mlflow_parent_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE runs SET mlflow_parent_id = ? WHERE name = ?", (mlflow_parent_id, run))

    def finish_run(self, run: str, status: str) -> None:
        """``status``: finished | failed | killed."""
        with self._tx() as db:
            db.execute("UPDATE runs SET finished_at = ?, status = ? WHERE name = ?", (_now(), status, run))

    def runs(self) -> list[RunInfo]:
        """Every run, newest first."""
        rows = self.db.execute("SELECT * FROM runs ORDER BY started_at DESC, rowid DESC").fetchall()
        return [RunInfo(*r) for r in rows]

    def run_info(self, name: str) -> RunInfo | None:
        row = self.db.execute("SELECT * FROM runs WHERE name = ?", (name,)).fetchone()
        return RunInfo(*row) if row else None

    # -- records --------------------------------------------------------------------------------
    def add(self, run: str, result: TrialResult) -> int:
        """Write a freshly trained record (and its samples) as a member of ``run``; returns its id."""
        if not result.key:
            raise ValueError(f"record {result.trial_id} has no key; the driver sets it before storing")
        samples = result.samples
        body = result.model_copy(update={"samples": None}).model_dump_json()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO records (key, run, trial_id, model, task, dataset, profile, seed, status, git_sha, "
                "created_at, mlflow_run_id, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (result.key, run, result.trial_id, result.model, result.task, result.dataset, result.profile,
                 result.seed, result.status, result.provenance.git_sha, _now(), result.mlflow_run_id, body),
            )
            rid = int(cur.lastrowid or 0)
            if samples is not None:
                db.execute("INSERT INTO samples VALUES (?, ?)", (rid, zlib.compress(json.dumps(samples).encode(), 6)))
            self._add_member(db, run, rid, cached=False)
        return rid

    def reuse(self, run: str, record_id: int) -> None:
        """Make an existing record a (cached) member of ``run``."""
        with self._tx() as db:
            self._add_member(db, run, record_id, cached=True)

    @staticmethod
    def _add_member(db: sqlite3.Connection, run: str, record_id: int, cached: bool) -> None:
        pos = db.execute("SELECT COUNT(*) FROM members WHERE run = ?", (run,)).fetchone()[0]
        db.execute("INSERT OR IGNORE INTO members VALUES (?, ?, ?, ?)", (run, record_id, int(cached), pos))

    def cached(self, key: str) -> StoredRecord | None:
        """The newest ``ok`` record with ``key``, or None (failed records are never reused)."""
        row = self.db.execute(
            "SELECT id, run, record, mlflow_run_id FROM records WHERE key = ? AND status = 'ok' "
            "ORDER BY id DESC LIMIT 1", (key,)).fetchone()
        return None if row is None else StoredRecord(row[0], row[1], True, _parse(row[2], row[3]))

    def set_synced(self, record_id: int, mlflow_run_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE records SET mlflow_run_id = ? WHERE id = ?", (mlflow_run_id, record_id))

    def unsynced(self, run: str | None = None) -> list[StoredRecord]:
        """Records (of ``run`` only, if given) that never reached the tracking server, oldest first."""
        where, args = ("AND run = ?", (run,)) if run else ("", ())
        rows = self.db.execute(
            f"SELECT id, run, record FROM records WHERE mlflow_run_id IS NULL {where} ORDER BY id", args).fetchall()
        return [StoredRecord(i, run, False, TrialResult.model_validate_json(body)) for i, run, body in rows]

    def samples(self, record_id: int) -> dict[str, Any] | None:
        """The per-image statistics of a record (None when it has none)."""
        row = self.db.execute("SELECT blob FROM samples WHERE record_id = ?", (record_id,)).fetchone()
        return None if row is None else json.loads(zlib.decompress(row[0]))

    def with_samples(self, stored: StoredRecord) -> TrialResult:
        """The record with its ``samples`` filled back in."""
        return stored.record.model_copy(update={"samples": self.samples(stored.id)})

    def members(self, run: str) -> list[StoredRecord]:
        """The records of ``run`` in the order they landed (cached ones included)."""
        rows = self.db.execute(
            "SELECT r.id, m.cached, r.record, r.mlflow_run_id FROM members m JOIN records r ON r.id = m.record_id "
            "WHERE m.run = ? ORDER BY m.position", (run,)).fetchall()
        return [StoredRecord(i, run, bool(c), _parse(body, mid)) for i, c, body, mid in rows]

    def latest(self, profiles: Sequence[str] | None = None) -> list[StoredRecord]:
        """The latest result of each (model, task, dataset, profile): every seed of the newest run holding it.

        ``profiles``: keep only these (None = all).
        """
        rows = self.db.execute(
            "SELECT m.run, r.id, m.cached, r.model, r.task, r.dataset, r.profile "
            "FROM members m JOIN records r ON r.id = m.record_id JOIN runs u ON u.name = m.run "
            "ORDER BY u.started_at, u.rowid, m.position").fetchall()
        newest: dict[tuple[str, str, str, str], str] = {}
        for run, _, _, model, task, dataset, profile in rows:
            newest[(model, task, dataset, profile)] = run  # later runs overwrite earlier ones
        chosen = [(run, rid, cached) for run, rid, cached, model, task, dataset, profile in rows
                  if newest[(model, task, dataset, profile)] == run and (profiles is None or profile in profiles)]
        # Bodies only of the chosen rows: parsing JSON is the cost that grows with the store.
        bodies = self._bodies([rid for _, rid, _ in chosen])
        return [StoredRecord(rid, run, bool(cached), _parse(*bodies[rid])) for run, rid, cached in chosen]

    def _bodies(self, ids: list[int], chunk: int = 900) -> dict[int, tuple[str, str | None]]:
        """record id -> (JSON body, MLflow run id), in chunks below SQLite's bound-parameter limit."""
        out: dict[int, tuple[str, str | None]] = {}
        for i in range(0, len(ids), chunk):
            part = ids[i : i + chunk]
            rows = self.db.execute(
                f"SELECT id, record, mlflow_run_id FROM records WHERE id IN ({','.join('?' * len(part))})", part)
            out.update((rid, (body, mid)) for rid, body, mid in rows)
        return out

    def replicate_runs(self, model: str, task: str, dataset: str, profile: str) -> list[tuple[str, list[TrialResult]]]:
        """The ok records of one (model, task, dataset, profile), grouped by the run that trained them,
        newest run first: the replicates (seeds) from which ``bench compare`` learns seed-to-seed noise."""
        rows = self.db.execute(
            "SELECT run, record, mlflow_run_id FROM records WHERE model = ? AND task = ? AND dataset = ? AND "
            "profile = ? AND status = 'ok' ORDER BY id DESC", (model, task, dataset, profile)).fetchall()
        runs: dict[str, list[TrialResult]] = {}
        for run, body, mid in rows:
            runs.setdefault(run, []).append(_parse(body, mid))
        return list(runs.items())

    def count_records(self) -> int:
        """How many trials were actually trained and stored (cached reuse not counted)."""
        return int(self.db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
