"""Copy the legacy tables into the shards, chunk by chunk, while DAL dual-writes (`dal migrate
backfill`).

  dal migrate backfill --config F                       copy, or continue after the checkpoint
  dal migrate backfill --rows-per-second 2000 --config F
  dal migrate backfill --restart --config F             forget the checkpoints, copy everything

Runs only while the phase is `dual_legacy` or `shadow`: then every write through DAL changes
legacy and mirrors the row to the shards under the legacy row lock, so a copy made under that
same lock can never overwrite a newer version or bring back a deleted row. Each chunk, per
table in id order: one legacy transaction `SELECT ... WHERE id > last ORDER BY id LIMIT n
LOCK IN SHARE MODE` (READ COMMITTED: no gap locks), REPLACE of the rows into their user shards
(and the merchant shards when the migration's merchant_copy is `direct`; with `sync`, `dal sync`
copies them), their ids into dal_meta.migration_lookup (ids up to max_legacy_id), the
checkpoint into dal_meta.migration_backfill, then COMMIT, which releases the locks. The
checkpoint is written before the locks go, so after kill -9 the run resumes after the last
chunk whose copy is complete, and rows_copied counts every row once.

Load: at most --rows-per-second rows (0: no limit); before each chunk it waits, with growing
pauses, while a backend instance answers slower than --max-latency-ms or `dal sync` lags more
than --max-sync-lag seconds (dal/sync_lag.py). A progress bar shows rows, rows/s and the ETA;
--metrics-port serves dal_migration_backfill_rows_total{db,tbl} and
dal_migration_backfill_rows_per_second{db}. Exit status: 0 done, 1 a database error, 2 a bad
config, 3 the phase does not allow a backfill (the message says why). Logs in as the DBA account.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import pymysql

from dal.migration import control
from dal.sync_lag import read_status
from tools.migrate import SUBCOMMANDS, Subcommand
from tools.migrate_layout import Layout, layout_for, quote
from tools.verify import Throttle

ALLOWED = ("dual_legacy", "shadow")
REFUSED_EXIT = 3
LOCK_ERRORS = (1205, 1213)  # lock wait timeout, deadlock: the chunk is retried
RETRIES = 30
MAX_PAUSE = 5.0


class PhaseRefused(Exception):
    """The phase does not allow a backfill; the message says why."""


def check_phase(row: control.PhaseRow | None) -> None:
    """Raise PhaseRefused unless the phase (and a switch in progress) allows copying."""
    phase = row.phase if row else "legacy"
    if phase not in ALLOWED:
        why = {
            "legacy": "writes through DAL are not mirrored to the shards yet, so rows changed "
                      "after their chunk was copied would stay stale there; run `dal migrate "
                      "phase dual_legacy` first",
            "dual_sharded": "the shards are authoritative now; copying legacy over them could "
                            "overwrite newer rows (use `dal migrate verify --repair`)",
            "sharded": "the shards are authoritative now and legacy is no longer written",
        }.get(phase, "unknown phase")
        raise PhaseRefused(f"the phase is {phase}: {why}")
    if row is not None and row.state == control.DRAIN and row.next_phase not in ALLOWED:
        raise PhaseRefused(f"a switch from {phase} to {row.next_phase} is in progress; the "
                           "backfill runs only in dual_legacy or shadow")


class Guard:
    """Why the copy should pause now: a slow backend or a lagging `dal sync`; None: go on."""

    def __init__(self, layout: Layout, max_latency_ms: float, max_sync_lag: float) -> None:
        self.layout = layout
        self.max_latency = max_latency_ms / 1000
        self.max_lag = max_sync_lag
        self.instances = sorted({layout.legacy.instance}
                                | {p.instance for p in layout.user_places})
        self.follows = not layout.direct_copy

    def reason(self) -> str | None:
        for name in self.instances:
            start = time.monotonic()
            self.layout.conns.query(name, "SELECT 1")
            took = time.monotonic() - start
            if took > self.max_latency:
                return f"instance {name} answers in {took * 1000:.0f} ms"
        if self.follows:
            status = read_status(self.layout.config.sync.status_file)
            lags = [s["lag_seconds"] for s in (status or {}).get("sources", {}).values()
                    if s.get("lag_seconds") is not None]
            if lags and max(lags) > self.max_lag:
                return f"dal sync lags {max(lags):.1f} s"
        return None


class TableCopy:
    """Copies one table's chunks from legacy under its row locks."""

    def __init__(self, layout: Layout, table: str, chunk: int, max_legacy_id: int) -> None:
        self.layout = layout
        self.table = table
        self.chunk = chunk
        self.columns = layout.columns(table)
        self.id_at = self.columns.index("id")
        self.user_key = layout.keys[table]
        self.bound = max_legacy_id or None  # lookup ids up to it (None: every id)
        self.legacy = layout.connect(layout.legacy.instance, autocommit=False)
        with self.legacy.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute("SET SESSION innodb_lock_wait_timeout = 5")
        self.select = (f"SELECT {', '.join(map(quote, self.columns))} FROM "
                       f"{layout.legacy.table(table)} WHERE id > %s ORDER BY id LIMIT %s "
                       "LOCK IN SHARE MODE")

    def remaining(self, last: int) -> int:
        rows = self.layout.conns.query(self.layout.legacy.instance, "SELECT COUNT(*) FROM "
                                       f"{self.layout.legacy.table(self.table)} WHERE id > %s",
                                       (last,))
        return int(rows[0][0])

    def copy(self, meta: pymysql.cursors.Cursor, last: int, copied: int) -> tuple[int, int]:
        """Copy the chunk after ``last``; (new last id, rows in the chunk: 0 = the table is
        done). The checkpoint is saved before the legacy locks are released."""
        self.legacy.begin()
        try:
            with self.legacy.cursor() as cur:
                cur.execute(self.select, (last, self.chunk))
                rows = list(cur.fetchall())
            if rows:
                self.layout.replace_rows(self.table, self.columns, rows)
                control.lookup_put(meta, self.layout.db, self.table, self._lookup(rows))
                last = int(rows[-1][self.id_at])
            control.save_checkpoint(meta, self.layout.db, self.table, last,
                                    copied + len(rows), done=not rows)
            self.legacy.commit()
        except BaseException:
            self.legacy.rollback()
            raise
        return last, len(rows)

    def _lookup(self, rows: list[tuple]) -> list[tuple[int, int, int]]:
        out = []
        for row in rows:
            image = dict(zip(self.columns, row, strict=True))
            if self.bound is None or image["id"] <= self.bound:
                out.append((image["id"], image[self.user_key], image.get("merchant_id") or 0))
        return out

    def close(self) -> None:
        self.legacy.close()


class Metrics:
    """What --metrics-port serves: rows copied per table and the current rows per second."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.rows: dict[str, int] = {}
        self.rate = 0.0

    def serve(self, host: str, port: int) -> None:
        from prometheus_client import start_http_server
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        from prometheus_client.registry import CollectorRegistry

        metrics = self

        class Collector:
            def collect(self):
                rows = CounterMetricFamily("dal_migration_backfill_rows", "Rows the backfill "
                                           "copied from legacy to the shards",
                                           labels=["db", "tbl"])
                for tbl, n in metrics.rows.items():
                    rows.add_metric([metrics.db, tbl], n)
                rate = GaugeMetricFamily("dal_migration_backfill_rows_per_second", "The "
                                         "backfill's copy rate", labels=["db"])
                rate.add_metric([metrics.db], metrics.rate)
                yield rows
                yield rate

        registry = CollectorRegistry()
        registry.register(Collector())
        start_http_server(port, addr=host, registry=registry)


class Rate:
    """Rows per second over the last few seconds (for the bar, the metric and the ETA)."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.samples: list[tuple[float, int]] = [(time.monotonic(), 0)]
        self.total = 0

    def add(self, rows: int) -> float:
        now = time.monotonic()
        self.total += rows
        self.samples.append((now, self.total))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window:
            self.samples.pop(0)
        t0, n0 = self.samples[0]
        return (self.total - n0) / (now - t0) if now > t0 else 0.0


class Backfill:
    """The whole run: every table of the migration, from its checkpoint to its end."""

    def __init__(self, layout: Layout, args: argparse.Namespace,
                 out: Callable[[str], None]) -> None:
        self.layout = layout
        self.args = args
        self.out = out
        self.meta = layout.meta()
        self.cur = self.meta.cursor()
        self.throttle = Throttle(args.rows_per_second) if args.rows_per_second else None
        self.guard = Guard(layout, args.max_latency_ms, args.max_sync_lag)
        self.metrics = Metrics(layout.db)
        self.rate = Rate()
        self.copied = 0

    def phase(self) -> control.PhaseRow | None:
        row = control.read_phase(self.cur, self.layout.db)
        check_phase(row)
        return row

    def run(self) -> int:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        row = self.phase()
        if self.args.restart:
            control.reset_checkpoints(self.cur, self.layout.db)
        if self.args.metrics_port:
            self.metrics.serve(self.args.metrics_host, self.args.metrics_port)
        copies = [TableCopy(self.layout, t, self.args.chunk, row.max_legacy_id if row else 0)
                  for t in self.layout.tables]
        start = {c.table: control.read_checkpoint(self.cur, self.layout.db, c.table)
                 for c in copies}
        progress = Progress(TextColumn("backfill {task.description}"), BarColumn(),
                            MofNCompleteColumn(), TextColumn("{task.fields[rate]:>7.0f} rows/s"),
                            TextColumn("{task.fields[note]}"), TimeRemainingColumn(),
                            disable=self.args.no_progress)
        try:
            with progress:
                for copy in copies:
                    cp = start[copy.table]
                    if cp is not None and cp.done:
                        self.metrics.rows[copy.table] = cp.rows_copied
                        continue
                    last, done = (cp.last_id, cp.rows_copied) if cp else (0, 0)
                    task = progress.add_task(copy.table, total=done + copy.remaining(last),
                                             completed=done, rate=0.0, note="")
                    self._table(copy, last, done, progress, task)
        finally:
            for copy in copies:
                copy.close()
        return 0

    def _table(self, copy: TableCopy, last: int, done: int, progress, task) -> None:
        while True:
            self._wait(progress, task)
            self.phase()
            last, rows = self._chunk(copy, last, done)
            if not rows:
                break
            done += rows
            self.copied += rows
            self.metrics.rows[copy.table] = done
            self.metrics.rate = self.rate.add(rows)
            if self.throttle is not None:
                self.throttle.account(rows)
            total = progress.tasks[task].total
            progress.update(task, completed=done, rate=self.metrics.rate,
                            total=max(total or 0, done), note="")
        progress.update(task, total=done, completed=done)
        self.out(f"backfill {self.layout.db}.{copy.table}: done, {done} rows copied")

    def _chunk(self, copy: TableCopy, last: int, done: int) -> tuple[int, int]:
        for attempt in range(RETRIES):
            try:
                return copy.copy(self.cur, last, done)
            except pymysql.err.OperationalError as exc:
                if exc.args[0] not in LOCK_ERRORS or attempt == RETRIES - 1:
                    raise
                time.sleep(min(0.05 * 2 ** attempt, MAX_PAUSE))
        raise AssertionError("unreachable")

    def _wait(self, progress, task) -> None:
        pause = 0.1
        while (why := self.guard.reason()) is not None:
            progress.update(task, note=f"paused: {why}")
            time.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)

    def close(self) -> None:
        self.cur.close()
        self.meta.close()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description, parser.formatter_class = __doc__, argparse.RawDescriptionHelpFormatter
    parser.add_argument("--db", help="the logical database (default: the one with a migration)")
    parser.add_argument("--chunk", type=int, default=1000, help="rows per chunk (default: "
                        "%(default)s)")
    parser.add_argument("--rows-per-second", type=int, default=20000,
                        help="copy at most this many rows per second; 0: no limit "
                        "(default: %(default)s)")
    parser.add_argument("--max-latency-ms", type=float, default=100.0,
                        help="pause while a backend answers SELECT 1 slower (default: "
                        "%(default)s)")
    parser.add_argument("--max-sync-lag", type=float, default=5.0, metavar="SECONDS",
                        help="pause while `dal sync` lags more (default: %(default)s)")
    parser.add_argument("--restart", action="store_true",
                        help="forget the checkpoints and copy every table from the start")
    parser.add_argument("--metrics-port", type=int, help="serve dal_migration_backfill_* here")
    parser.add_argument("--metrics-host", default="127.0.0.1")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    layout = layout_for(args, "backfill")
    if layout is None:
        return 2
    backfill = None
    try:
        backfill = Backfill(layout, args, lambda line: print(line, flush=True))
        code = backfill.run()
        print(f"backfill {layout.db}: {backfill.copied} rows copied in this run", flush=True)
        return code
    except PhaseRefused as exc:
        print(f"dal migrate backfill: refused: {exc}", file=sys.stderr)
        return REFUSED_EXIT
    except (pymysql.Error, ValueError) as exc:
        print(f"dal migrate backfill: {exc}", file=sys.stderr)
        return 1
    finally:
        if backfill is not None:
            backfill.close()
        layout.close()


SUBCOMMANDS["backfill"] = Subcommand(
    "copy legacy into the shards chunk by chunk under row locks (resumable)",
    add_arguments, run)
