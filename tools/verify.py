"""Compare the user shards with the merchant copy, chunk by chunk, and repair the copy.

  dal verify dimensions                 report every differing id; exit 4 if there is one
  dal verify dimensions --repair        rewrite those ids in the copy from the user shards
  dal verify dimensions --resume        continue after the last chunk a previous run finished

For every sharded and bound table of every logical database, and every copy dimension: the
primary-key range is cut into chunks of about sync.verify_chunk_rows rows. For each chunk every
user shard returns, per copy shard its rows belong to, the row count and two sums of per-row
hashes (CRC32 and the first 60 bits of MD5 of the whole row, id included, each column QUOTE()d
so NULL and '' differ); every copy shard returns the same for the rows it holds. Where the
three numbers differ, the chunk is compared row by row and each id is reported as `missing`
(in the user shards, not in its copy shard), `extra` (in a copy shard, not in the user shards
for that shard) or `changed` (values differ). A difference is re-checked after
--recheck-delay seconds (up to --recheck times) before it is reported, so that rows `dal sync`
is still applying are not reported.

Load is bounded to sync.verify_rows_per_second rows read per second (--rate); progress is
shown with a bar; the position after each chunk is saved in --state (written atomically), which
--resume continues from. Exit status: 0 no difference left, 1 a database error, 2 a bad config,
4 differences found (and not repaired).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

from config.loader import load_config
from config.model import Config
from tools.sync_route import Copy, Routes, SourceTable

DIFF_EXIT = 4
WORKERS = 8
KINDS = ("missing", "extra", "changed")


@dataclass(frozen=True)
class Difference:
    """One id whose copy differs from the user shards."""

    kind: str          # missing | extra | changed
    table: str
    id: int
    copy_db: str       # the copy shard it is (or should be) in
    copy_instance: str
    source_db: str | None  # the user shard holding it, when it exists there

    def line(self) -> str:
        where = f" (user row in {self.source_db})" if self.source_db else ""
        return f"{self.kind} {self.table} id={self.id} in {self.copy_db}{where}"


@dataclass
class Stats:
    chunks: int = 0
    source_rows: int = 0
    copy_rows: int = 0
    differences: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    repaired: int = 0


class Connections:
    """One connection per instance and thread; all closed at the end."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.local = threading.local()
        self.opened: list[pymysql.connections.Connection] = []
        self.lock = threading.Lock()

    def get(self, instance: str) -> pymysql.connections.Connection:
        conns = self.local.__dict__.setdefault("conns", {})
        conn = conns.get(instance)
        if conn is None or not conn.open:
            i = self.config.instances[instance]
            conn = pymysql.connect(host=i.host, port=i.port, user=i.user, password=i.password,
                                   autocommit=True, connect_timeout=5, read_timeout=120)
            conns[instance] = conn
            with self.lock:
                self.opened.append(conn)
        return conn

    def query(self, instance: str, sql: str, args: tuple | None = None) -> list[tuple]:
        with self.get(instance).cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def close(self) -> None:
        for conn in self.opened:
            with contextlib.suppress(pymysql.Error):
                conn.close()


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class TableCheck:
    """Compares one table's user shards with one copy dimension."""

    def __init__(self, config: Config, conns: Connections, pool: ThreadPoolExecutor,
                 table: SourceTable, copy: Copy) -> None:
        self.conns = conns
        self.pool = pool
        self.table = table
        self.copy = copy
        auth = config.databases[table.logical].dimensions[
            config.databases[table.logical].authoritative]
        self.sources = [(p.instance, auth.database(s)) for p in auth.placement
                        for s in p.numbers()]
        self.copies = [(copy.placement[s], copy.database(s)) for s in range(copy.shards)]
        self.columns, self.pk = self._describe()
        row = "CONCAT_WS(',', " + ", ".join(f"QUOTE({_q(c)})" for c in self.columns) + ")"
        self.h1 = f"CRC32({row})"
        self.h2 = f"CAST(CONV(SUBSTRING(MD5({row}), 1, 15), 16, 10) AS UNSIGNED)"
        self.bucket = copy.shard_sql(self.columns)

    @property
    def name(self) -> str:
        return f"{self.table.logical}.{self.table.table}/{self.copy.dimension}"

    def _describe(self) -> tuple[list[str], str]:
        instance, db = self.sources[0]
        cols = self.conns.query(instance, "SELECT COLUMN_NAME, COLUMN_KEY, DATA_TYPE FROM "
                                "information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
                                "TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                                (db, self.table.table))
        pk = [c for c in cols if c[1] == "PRI"]
        if not cols or len(pk) != 1 or "int" not in pk[0][2]:
            raise ValueError(f"{db}.{self.table.table}: needs a single-column integer primary "
                             "key to be compared in chunks")
        return [c[0] for c in cols], pk[0][0]

    def _each(self, places: list[tuple[str, str]], sql: Callable[[str], str]
              ) -> list[list[tuple]]:
        """``sql(database)`` for every shard database, as one UNION ALL per instance (run in
        parallel); the rows of each place, in order. No parameters: the SQL holds ``%``."""
        by_instance: dict[str, list[int]] = {}
        for index, (instance, _) in enumerate(places):
            by_instance.setdefault(instance, []).append(index)

        def one(item: tuple[str, list[int]]) -> list[tuple]:
            instance, indexes = item
            union = " UNION ALL ".join(f"(SELECT {i} AS _place, x.* FROM ({sql(places[i][1])}) x)"
                                       for i in indexes)
            return self.conns.query(instance, union)

        out: list[list[tuple]] = [[] for _ in places]
        for rows in self.pool.map(one, by_instance.items()):
            for row in rows:
                out[row[0]].append(row[1:])
        return out

    def next_id(self, after: int) -> int | None:
        """The lowest id at or above ``after`` on either side (skips an empty stretch)."""
        t, pk = _q(self.table.table), _q(self.pk)
        found = self._each(self.sources + self.copies, lambda db: f"SELECT MIN({pk}) AS m "
                           f"FROM {_q(db)}.{t} WHERE {pk} >= {int(after)}")
        ids = [r[0][0] for r in found if r and r[0][0] is not None]
        return min(ids) if ids else None

    def bounds(self) -> tuple[int, int, int] | None:
        """(lowest id, highest id, estimated rows) over both sides; None when empty."""
        t, pk = _q(self.table.table), _q(self.pk)
        found = self._each(self.sources + self.copies,
                           lambda db: f"SELECT MIN({pk}) AS lo, MAX({pk}) AS hi FROM "
                           f"{_q(db)}.{t}")
        lows = [r[0][0] for r in found if r and r[0][0] is not None]
        highs = [r[0][1] for r in found if r and r[0][1] is not None]
        if not lows:
            return None
        estimate = 0
        for instance in {i for i, _ in self.sources}:
            rows = self.conns.query(instance, "SELECT COALESCE(SUM(TABLE_ROWS), 0) FROM "
                                    "information_schema.TABLES WHERE TABLE_NAME = %s AND "
                                    "TABLE_SCHEMA IN %s", (self.table.table, [
                                        db for i, db in self.sources if i == instance]))
            estimate += int(rows[0][0])
        return min(lows), max(highs), max(estimate, 1)

    def summary(self, lo: int, hi: int) -> tuple[dict[int, tuple], dict[int, tuple]]:
        """Per copy shard: (count, crc sum, md5 sum) from the user side and from the copy."""
        t, pk = _q(self.table.table), _q(self.pk)
        where = f"WHERE {pk} >= {int(lo)} AND {pk} < {int(hi)}"
        src = self._each(self.sources, lambda db: f"SELECT {self.bucket} AS b, COUNT(*) AS n, "
                         f"SUM({self.h1}) AS h1, SUM({self.h2}) AS h2 FROM {_q(db)}.{t} {where} "
                         f"GROUP BY 1")
        dst = self._each(self.copies, lambda db: f"SELECT COUNT(*) AS n, SUM({self.h1}) AS h1, "
                         f"SUM({self.h2}) AS h2 FROM {_q(db)}.{t} {where}")
        want: dict[int, tuple] = {}
        for rows in src:
            for shard, count, h1, h2 in rows:
                c0, a0, b0 = want.get(int(shard), (0, 0, 0))
                want[int(shard)] = (c0 + count, a0 + int(h1), b0 + int(h2))
        got = {s: (r[0][0], int(r[0][1] or 0), int(r[0][2] or 0))
               for s, r in enumerate(dst) if r[0][0]}
        return want, got

    def rows(self, lo: int, hi: int, shards: set[int]
             ) -> tuple[dict[int, dict[int, tuple]], dict[int, dict[int, tuple]]]:
        """Row hashes of a chunk for some copy shards: ({shard: {id: (h1, h2, user db)}},
        {shard: {id: (h1, h2)}})."""
        t, pk = _q(self.table.table), _q(self.pk)
        where = f"WHERE {pk} >= {int(lo)} AND {pk} < {int(hi)}"
        src = self._each(self.sources, lambda db: f"SELECT {pk} AS id, {self.bucket} AS b, "
                         f"{self.h1} AS h1, {self.h2} AS h2 FROM {_q(db)}.{t} {where}")
        want: dict[int, dict[int, tuple]] = {s: {} for s in shards}
        for (_, db), rows in zip(self.sources, src, strict=True):
            for id_, shard, h1, h2 in rows:
                if int(shard) in shards:
                    want[int(shard)][id_] = (h1, h2, db)
        places = [self.copies[s] for s in sorted(shards)]
        dst = self._each(places, lambda db: f"SELECT {pk} AS id, {self.h1} AS h1, "
                         f"{self.h2} AS h2 FROM {_q(db)}.{t} {where}")
        got = {s: {r[0]: (r[1], r[2]) for r in rows}
               for s, rows in zip(sorted(shards), dst, strict=True)}
        return want, got

    def differences(self, lo: int, hi: int, shards: set[int]) -> list[Difference]:
        want, got = self.rows(lo, hi, shards)
        out = []
        for shard in sorted(shards):
            instance, copy_db = self.copies[shard]
            w, g = want[shard], got[shard]
            for id_ in sorted(set(w) | set(g)):
                if id_ not in g:
                    kind = "missing"
                elif id_ not in w:
                    kind = "extra"
                elif w[id_][:2] != g[id_]:
                    kind = "changed"
                else:
                    continue
                source = w[id_][2] if id_ in w else None
                out.append(Difference(kind, self.table.table, id_, copy_db, instance, source))
        return out

    def repair(self, diff: Difference) -> None:
        """Rewrite one id in its copy shard from the user shard (or delete it there)."""
        t, pk = _q(self.table.table), _q(self.pk)
        target = f"{_q(diff.copy_db)}.{t}"
        row = None
        if diff.source_db is not None:
            instance = next(i for i, db in self.sources if db == diff.source_db)
            found = self.conns.query(instance, f"SELECT {', '.join(map(_q, self.columns))} "
                                     f"FROM {_q(diff.source_db)}.{t} WHERE {pk} = %s",
                                     (diff.id,))
            row = found[0] if found else None
        if row is None:
            self.conns.query(diff.copy_instance, f"DELETE FROM {target} WHERE {pk} = %s",
                             (diff.id,))
            return
        marks = ", ".join(["%s"] * len(self.columns))
        self.conns.query(diff.copy_instance, f"REPLACE INTO {target} "
                         f"({', '.join(map(_q, self.columns))}) VALUES ({marks})", tuple(row))


class State:
    """The resumable position: tables done, and the next id of the table in progress."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.data: dict = {"done": [], "current": None, "next": None, "width": None}
        if resume and path.exists():
            self.data = json.loads(path.read_text())
        self.saved_at = 0.0

    def save(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.saved_at < 1.0:
            return
        self.saved_at = time.monotonic()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as out:
            json.dump(self.data, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


class Throttle:
    """Sleeps so that rows read stay under ``rate`` per second on average."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.rows = 0

    def account(self, rows: int) -> None:
        self.rows += rows
        ahead = self.rows / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


def chunks(check: TableCheck, start: int, high: int, width: int, target: int,
           state: State) -> Iterator[tuple[int, int, dict, dict]]:
    """Chunks [lo, hi) from ``start`` to ``high``, adapting the width to about ``target`` rows."""
    lo = start
    while lo <= high:
        hi = min(lo + width, high + 1)
        want, got = check.summary(lo, hi)
        rows = max(sum(v[0] for v in want.values()), sum(v[0] for v in got.values()))
        if rows > 4 * target and width > 1:  # a dense range after a sparse one: cut again
            width = max(width // 4, 1)
            continue
        yield lo, hi, want, got
        if rows > 2 * target and width > 1:
            width = max(width // 2, 1)
        elif rows < target // 2:
            width *= 2
        lo = hi
        if rows == 0 and lo <= high:  # jump over an empty stretch of ids
            following = check.next_id(lo)
            lo = following if following is not None else high + 1
        state.data.update(next=lo, width=width)


def verify(config: Config, args: argparse.Namespace, out: Callable[[str], None]) -> Stats:
    """Compare every copied table; report (and repair) differences. Returns the totals."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    stats = Stats()
    routes = Routes(config)
    state = State(Path(args.state), args.resume)
    conns = Connections(config)
    throttle = Throttle(args.rate or config.sync.verify_rows_per_second)
    target = args.chunk or config.sync.verify_chunk_rows
    progress = Progress(TextColumn("{task.description}"), BarColumn(),
                        TextColumn("{task.percentage:>3.0f}% {task.fields[info]}"),
                        TimeElapsedColumn(), disable=args.no_progress, transient=False)
    try:
        with ThreadPoolExecutor(WORKERS) as pool, progress:
            for table in routes.tables.values():
                if args.table and table.table not in args.table:
                    continue
                for copy in table.copies:
                    check = TableCheck(config, conns, pool, table, copy)
                    if check.name in state.data["done"]:
                        continue
                    _check_table(check, state, stats, throttle, target, progress, args, out)
                    state.data["done"].append(check.name)
                    state.data.update(current=None, next=None, width=None)
                    state.save(force=True)
    finally:
        conns.close()
    return stats


def _check_table(check: TableCheck, state: State, stats: Stats, throttle: Throttle,
                 target: int, progress, args: argparse.Namespace,
                 out: Callable[[str], None]) -> None:
    bounds = check.bounds()
    if bounds is None:
        return
    low, high, estimate = bounds
    start, width = low, max((high - low + 1) * target // estimate, 1)
    if state.data.get("current") == check.name and state.data.get("next") is not None:
        start, width = state.data["next"], state.data["width"] or width
    state.data["current"] = check.name
    task = progress.add_task(check.name, total=high - low + 1, completed=start - low, info="")
    found = seen = 0
    for lo, hi, want, got in chunks(check, start, high, width, target, state):
        stats.chunks += 1
        seen += sum(v[0] for v in want.values())
        stats.source_rows += sum(v[0] for v in want.values())
        stats.copy_rows += sum(v[0] for v in got.values())
        differ = {s for s in set(want) | set(got) if want.get(s) != got.get(s)}
        diffs = check.differences(lo, hi, differ) if differ else []
        for _ in range(args.recheck):
            if not diffs:
                break
            time.sleep(args.recheck_delay)
            again = {(d.id, d.copy_db): d for d in check.differences(lo, hi, {
                check.copies.index((d.copy_instance, d.copy_db)) for d in diffs})}
            diffs = [again[(d.id, d.copy_db)] for d in diffs if (d.id, d.copy_db) in again]
        for diff in diffs:
            out(diff.line())
            stats.differences[diff.kind] += 1
            found += 1
            if args.repair:
                check.repair(diff)
                stats.repaired += 1
        throttle.account(sum(v[0] for v in want.values()) + sum(v[0] for v in got.values()))
        progress.update(task, completed=hi - low, info=f"{seen} rows, "
                        f"{found} differences")
        state.save()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("what", choices=["dimensions"], help="what to verify")
    parser.add_argument("--repair", action="store_true",
                        help="rewrite the copy from the user shards for each differing id")
    parser.add_argument("--resume", action="store_true",
                        help="continue after the last chunk finished by a previous run")
    parser.add_argument("--state", default="var/verify-state.json",
                        help="the resume file (default: %(default)s)")
    parser.add_argument("--rate", type=int, help="rows read per second at most (default: "
                        "sync.verify_rows_per_second)")
    parser.add_argument("--chunk", type=int, help="rows per chunk (default: "
                        "sync.verify_chunk_rows)")
    parser.add_argument("--table", action="append", help="only this table (repeatable)")
    parser.add_argument("--recheck", type=int, default=2,
                        help="re-compare a difference this many times before reporting it")
    parser.add_argument("--recheck-delay", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        stats = verify(config, args, lambda line: print(line, flush=True))
    except (pymysql.Error, ValueError) as exc:
        print(f"dal verify: {exc}", file=sys.stderr)
        return 1
    total = sum(stats.differences.values())
    detail = ", ".join(f"{stats.differences[k]} {k}" for k in KINDS)
    print(f"verify dimensions: {stats.source_rows} user rows and {stats.copy_rows} copy rows in "
          f"{stats.chunks} chunks; {total} differences ({detail})"
          + (f"; {stats.repaired} repaired" if args.repair else ""), flush=True)
    return DIFF_EXIT if total and not args.repair else 0
