"""The outbox: flowdeck's own commit point, a SQLite file in FLOWDECK_HOME.

An execution is committed here before a sync call's first side effect and before an async
submission answers; Prefect is written behind it (`flowdeck.store.drain`). The file
survives `kill -9` of any process, and of the Prefect server.

- WAL mode, `synchronous=NORMAL` (FLOWDECK_OUTBOX_SYNC): a commit is in the OS's hands
  when it returns, so it survives kill -9 of any flowdeck process or of Prefect. A power
  loss or kernel crash may lose the last commits; that is also what Prefect's own SQLite
  database (NORMAL too) may lose, so FULL here would not make the pair power-safe. `full`
  fsyncs every commit (1-3 ms on this shared disk: most of a sync call's overhead).
- Commits are grouped: an append is buffered and committed with everything else buffered,
  by whoever needs it on disk first (`committed()`: before a side effect, before an
  answer) or 50 ms after it was appended, so 200 concurrent calls cost a few fsyncs, not
  1,400.
- `entries` is append-only (created, events, logs, step, final, handoff); `executions` is
  its index: the local status, the flow run the drain made, how far the drain got, the
  owner (the process that runs the execution) and the drain lease (who writes it to
  Prefect now). A lease is taken in one UPDATE, so two processes never drain one
  execution at once; the writes are idempotent anyway (idempotency key, event ids).
- The outbox is this machine's: owners are process ids (with their start time, so a
  reused pid is not taken for the owner). Processes on other machines have their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowdeck import settings

SCHEMA = """
create table if not exists executions(
  execution_id text primary key,
  mode text not null,
  workflow_id text not null,
  version integer not null,
  owner text not null,
  created real not null,
  status text not null,
  last_seq integer not null default 0,
  drained_seq integer not null default 0,
  closed integer not null default 0,
  flow_run_id text,
  lease_owner text,
  lease_until real not null default 0
);
create index if not exists executions_undrained on executions(created) where drained_seq < last_seq;
create table if not exists entries(
  seq integer primary key autoincrement,
  execution_id text not null,
  kind text not null,
  payload text not null,
  at real not null
);
create index if not exists entries_of_execution on entries(execution_id, seq);
"""

LEASE_SECONDS = 15.0
# Entries nobody waits for (a step without side effects finished) reach the disk this long
# after they were appended, grouped, rather than one fsync each; whoever needs them on disk
# (a step with side effects, an answer) calls `committed()`.
FLUSH_AFTER_SECONDS = 0.05
KEEP_DRAINED_SECONDS = 600.0  # drained executions stay readable locally this long


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks


def process_token(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    return f"{pid}:{_start_ticks(pid) or '?'}"


def is_alive(token: str) -> bool:
    """Whether the process a token names still runs (the same process, not a reused pid)."""
    pid_text, _, ticks = token.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    found = _start_ticks(pid)
    if found is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return ticks == "?"
    return ticks in ("?", found)


@dataclass
class ExecutionRow:
    execution_id: str
    mode: str
    workflow_id: str
    version: int
    owner: str
    created: float
    status: str
    last_seq: int
    drained_seq: int
    closed: bool
    flow_run_id: str | None
    lease_owner: str | None
    lease_until: float

    @property
    def drained(self) -> bool:
        return self.drained_seq >= self.last_seq


@dataclass
class Entry:
    seq: int
    execution_id: str
    kind: str
    payload: dict[str, Any]
    at: float


_COLUMNS = ", ".join(ExecutionRow.__dataclass_fields__)


class Outbox:
    """One per file per process (`Outbox.default()`); thread-safe."""

    _opened: dict[str, Outbox] = {}

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.owner = process_token()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute(f"pragma synchronous={settings.outbox_sync()}")
        self._db.executescript(SCHEMA)
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._waiters: list[tuple[Future[None], asyncio.AbstractEventLoop | None]] = []
        self._flush_scheduled: asyncio.AbstractEventLoop | None = None
        self.listeners: list[Any] = []  # callables told "execution_id has new entries"

    @classmethod
    def default(cls) -> Outbox:
        path = settings.home() / "outbox.db"
        key = str(path.resolve())
        if key not in cls._opened:
            cls._opened[key] = cls(path)
        return cls._opened[key]

    # writing ------------------------------------------------------------------------------
    def create(
        self, execution_id: str, *, mode: str, workflow_id: str, version: int, status: str, payload: dict[str, Any]
    ) -> bool:
        """Buffer a new execution and its `created` entry; False if the id is already here."""
        with self._lock:
            known = self._db.execute("select 1 from executions where execution_id=?", (execution_id,)).fetchone()
            if known or any(
                sql.startswith("insert into executions") and args[0] == execution_id for sql, args in self._pending
            ):
                return False
            now = time.time()
            self._pending.append(
                (
                    "insert into executions(execution_id, mode, workflow_id, version, owner, created, status) "
                    "values (?, ?, ?, ?, ?, ?, ?)",
                    (execution_id, mode, workflow_id, version, self.owner, now, status),
                )
            )
            self._append_locked(execution_id, "created", payload, status)
        return True

    def append(
        self, execution_id: str, kind: str, payload: dict[str, Any], *, status: str | None = None, close: bool = False
    ) -> None:
        """Buffer an entry (committed at the end of this loop tick, or by `commit_now`)."""
        with self._lock:
            self._append_locked(execution_id, kind, payload, status, close)

    def _append_locked(
        self, execution_id: str, kind: str, payload: dict[str, Any], status: str | None, close: bool = False
    ) -> None:
        self._pending.append(
            (
                "insert into entries(execution_id, kind, payload, at) values (?, ?, ?, ?)",
                (execution_id, kind, json.dumps(payload, default=str), time.time()),
            )
        )
        self._pending.append(
            (
                "update executions set last_seq=last_insert_rowid(), status=coalesce(?, status), "
                "closed=max(closed, ?) where execution_id=?",
                (status, 1 if close else 0, execution_id),
            )
        )
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next commit_now() or committed() writes it
        if self._flush_scheduled is loop:
            return
        # (a flush scheduled in a loop that has ended since never runs: schedule again)
        self._flush_scheduled = loop
        loop.call_later(FLUSH_AFTER_SECONDS, self.commit_now)

    def commit_now(self) -> None:
        """Commit every buffered entry in one transaction and wake whoever waits for it."""
        with self._lock:
            self._flush_scheduled = None
            pending, self._pending = self._pending, []
            waiters, self._waiters = self._waiters, []
            touched: set[str] = set()
            if pending:
                self._db.execute("begin immediate")
                try:
                    for sql, args in pending:
                        self._db.execute(sql, args)
                        if sql.startswith("insert into entries"):
                            touched.add(args[0])
                    self._db.execute("commit")
                except BaseException as error:
                    self._db.execute("rollback")
                    for waiter, loop in waiters:
                        _resolve(waiter, loop, error)
                    raise
        for waiter, loop in waiters:
            _resolve(waiter, loop, None)
        for execution_id in touched:
            for listener in list(self.listeners):
                listener(execution_id)

    async def committed(self) -> None:
        """Wait until everything appended so far is on disk (grouped with this tick's appends)."""
        # Committed at once: whoever waits commits everything buffered by every execution
        # (the calls of one tick share one fsync; the ones after it find nothing pending).
        self.commit_now()

    def append_if_open(self, execution_id: str, kind: str, payload: dict[str, Any], *, status: str) -> bool:
        """Append a closing entry now unless the execution is closed already (one
        transaction, so of two processes adopting an orphan exactly one does)."""
        with self._lock:
            self.commit_now()
            self._db.execute("begin immediate")
            try:
                row = self._db.execute("select closed from executions where execution_id=?", (execution_id,)).fetchone()
                if row is None or row[0]:
                    self._db.execute("rollback")
                    return False
                self._db.execute(
                    "insert into entries(execution_id, kind, payload, at) values (?, ?, ?, ?)",
                    (execution_id, kind, json.dumps(payload, default=str), time.time()),
                )
                self._db.execute(
                    "update executions set last_seq=last_insert_rowid(), status=?, closed=1 where execution_id=?",
                    (status, execution_id),
                )
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
        for listener in list(self.listeners):
            listener(execution_id)
        return True

    # the drain's bookkeeping ---------------------------------------------------------------
    def claim(self, execution_id: str, claimant: str) -> bool:
        """Take the drain lease of one execution (one UPDATE: one winner among processes)."""
        now = time.time()
        with self._lock:
            row = self.execution(execution_id)
            if row is None:
                return False
            free = (
                row.lease_owner in (None, claimant)
                or row.lease_until < now
                or (row.lease_owner is not None and not is_alive(row.lease_owner.split("#")[0]))
            )
            if not free:
                return False
            cursor = self._db.execute(
                "update executions set lease_owner=?, lease_until=? where execution_id=? "
                "and coalesce(lease_owner, '')=coalesce(?, '') and lease_until=?",
                (claimant, now + LEASE_SECONDS, execution_id, row.lease_owner, row.lease_until),
            )
            return cursor.rowcount == 1

    def release(self, execution_id: str, claimant: str) -> None:
        with self._lock:
            self._db.execute(
                "update executions set lease_owner=null, lease_until=0 where execution_id=? and lease_owner=?",
                (execution_id, claimant),
            )

    def mark_drained(self, execution_id: str, seq: int, claimant: str, flow_run_id: str | None = None) -> bool:
        """Record that Prefect holds every entry up to `seq` (only while holding the lease)."""
        with self._lock:
            cursor = self._db.execute(
                "update executions set drained_seq=max(drained_seq, ?), flow_run_id=coalesce(?, flow_run_id), "
                "lease_until=? where execution_id=? and lease_owner=?",
                (seq, flow_run_id, time.time() + LEASE_SECONDS, execution_id, claimant),
            )
            return cursor.rowcount == 1

    def prune(self) -> int:
        """Forget executions Prefect has held for a while (the file stays small)."""
        horizon = time.time() - KEEP_DRAINED_SECONDS
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute(
                    "select execution_id from executions where closed=1 and drained_seq>=last_seq and created<? "
                    "limit 1000",
                    (horizon,),
                )
            ]
            if ids:
                marks = ",".join("?" * len(ids))
                self._db.execute("begin immediate")
                self._db.execute(f"delete from entries where execution_id in ({marks})", ids)
                self._db.execute(f"delete from executions where execution_id in ({marks})", ids)
                self._db.execute("commit")
        return len(ids)

    # reading ------------------------------------------------------------------------------
    def execution(self, execution_id: str) -> ExecutionRow | None:
        with self._lock:
            row = self._db.execute(
                f"select {_COLUMNS} from executions where execution_id=?", (execution_id,)
            ).fetchone()
        return ExecutionRow(*row) if row else None

    def entries(self, execution_id: str, after: int = 0, limit: int = 1000) -> list[Entry]:
        with self._lock:
            rows = self._db.execute(
                "select seq, execution_id, kind, payload, at from entries where execution_id=? and seq>? "
                "order by seq limit ?",
                (execution_id, after, limit),
            ).fetchall()
        return [Entry(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def undrained(self, limit: int = 200) -> list[ExecutionRow]:
        """Executions with entries Prefect does not hold yet, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"select {_COLUMNS} from executions where drained_seq<last_seq order by created limit ?", (limit,)
            ).fetchall()
        return [ExecutionRow(*r) for r in rows]

    def orphans(self, limit: int = 200) -> list[ExecutionRow]:
        """Sync executions whose process died before they ended or were handed off."""
        with self._lock:
            rows = self._db.execute(
                f"select {_COLUMNS} from executions where closed=0 and mode='sync' and owner<>? "
                "order by created limit ?",
                (self.owner, limit),
            ).fetchall()
        return [row for row in (ExecutionRow(*r) for r in rows) if not is_alive(row.owner)]

    def recent(self, limit: int = 200) -> list[ExecutionRow]:
        with self._lock:
            rows = self._db.execute(
                f"select {_COLUMNS} from executions order by created desc limit ?", (limit,)
            ).fetchall()
        return [ExecutionRow(*r) for r in rows]

    def backlog(self) -> dict[str, Any]:
        """Executions committed here and not yet (fully) in Prefect: how many, the oldest's age."""
        with self._lock:
            count, oldest = self._db.execute(
                "select count(*), min(created) from executions where drained_seq<last_seq"
            ).fetchone()
        return {"executions": count, "oldest_age_s": round(time.time() - oldest, 3) if oldest else 0.0}


def _resolve(waiter: Future[None], loop: asyncio.AbstractEventLoop | None, error: BaseException | None) -> None:
    if waiter.done():
        return
    if error is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(error)
