"""Compare the legacy tables with the user shards, chunk by chunk (`dal migrate verify`).

  dal migrate verify --config F             report every differing id; exit 4 if there is one
  dal migrate verify --repair --config F    rewrite those ids on the non-authoritative side

Per migrated table, the legacy ids are cut into chunks of --chunk rows (the boundaries are
legacy ids; the last chunk is open-ended, so shard rows above every legacy id are compared
too). For a batch of chunks, legacy returns per chunk the row count and two sums of per-row
hashes: CRC32, and the first 60 bits of MD5, of the whole row text (every column QUOTE()d,
id included, so NULL and '' differ and two rows with swapped values differ); the user shards
return the same per chunk, each instance summing its shards in one statement (the chunk of an
id is INTERVAL(id, boundaries...)). A chunk whose three numbers differ is compared id by id and
each id is reported as

  missing <table> id=<id>   the authoritative side has it, the other side does not
  extra <table> id=<id>     the other side has it, the authoritative side does not (or a shard
                            holds it that is not the row's user shard)
  changed <table> id=<id>   both have it, with different values

The authoritative side follows the phase: legacy in legacy, dual_legacy and shadow; the shards
in dual_sharded and sharded. A difference is compared again after --recheck-delay (up to
--recheck times) before it is reported, so that a dual write in flight is not. --repair copies
each differing id from the authoritative side to the other under the authoritative row's lock
(SELECT ... FOR UPDATE, as DAL's mirror does), deletes copies on wrong shards, writes the
merchant copy when merchant_copy is `direct`, and compares the chunk again. The merchant copy
itself is compared by `dal verify dimensions`. Exit status: 0 no difference (left), 1 a
database error, 2 a bad config, 3 --repair during a phase switch, 4 differences.
Logs in as the DBA account.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pymysql

from dal.migration import control
from tools.migrate import SUBCOMMANDS, Subcommand
from tools.migrate_layout import (
    Layout,
    Place,
    layout_for,
    legacy_is_authoritative,
    quote,
    read_phase,
)
from tools.verify import Throttle

DIFF_EXIT = 4
SWITCHING_EXIT = 3
KINDS = ("missing", "extra", "changed")
END = 1 << 64  # above every BIGINT UNSIGNED id: the open end of the last chunk
BATCH = 16  # chunks compared per summary statement


@dataclass(frozen=True)
class Difference:
    """One id that differs; ``shards``: the user shards holding a row with that id."""

    kind: str
    table: str
    id: int
    where: str
    shards: tuple[int, ...]

    def line(self) -> str:
        return f"{self.kind} {self.table} id={self.id} ({self.where})"


@dataclass
class Stats:
    chunks: int = 0
    legacy_rows: int = 0
    shard_rows: int = 0
    differences: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    repaired: int = 0
    left: int = 0


Row = tuple[int, int, int]  # user key, h1, h2


class TableCompare:
    """Legacy against the user shards for one table."""

    def __init__(self, layout: Layout, table: str, legacy_auth: bool, chunk: int,
                 pool: ThreadPoolExecutor) -> None:
        self.layout = layout
        self.table = table
        self.legacy_auth = legacy_auth
        self.chunk = chunk
        self.pool = pool
        self.columns = layout.columns(table)
        text = "CONCAT_WS(',', " + ", ".join(f"QUOTE({quote(c)})" for c in self.columns) + ")"
        self.h1 = f"CRC32({text})"
        self.h2 = f"CAST(CONV(SUBSTRING(MD5({text}), 1, 15), 16, 10) AS UNSIGNED)"
        self.key = quote(layout.keys[table])
        self.by_instance: dict[str, list[int]] = {}
        for index, place in enumerate(layout.user_places):
            self.by_instance.setdefault(place.instance, []).append(index)

    # -- chunk boundaries and summaries --------------------------------------------------

    def boundaries(self, start: int) -> list[int]:
        """[start, b1, ..., bk]: up to BATCH chunks of legacy ids; the last bound is END when
        legacy has no more ids."""
        out = [start]
        sql = (f"SELECT id FROM {self.layout.legacy.table(self.table)} WHERE id >= %s "
               "ORDER BY id LIMIT 1 OFFSET %s")
        while len(out) <= BATCH:
            found = self.layout.conns.query(self.layout.legacy.instance, sql,
                                            (out[-1], self.chunk))
            out.append(int(found[0][0]) if found else END)
            if out[-1] == END:
                break
        return out

    @staticmethod
    def _chunk_of(bounds: list[int]) -> str:
        inner = bounds[1:-1]
        return f"INTERVAL(id, {', '.join(map(str, inner))})" if inner else "0"

    def summaries(self, bounds: list[int]) -> tuple[dict[int, tuple], dict[int, tuple]]:
        """Per chunk index: (count, h1 sum, h2 sum) on legacy and summed over the shards."""
        where = f"WHERE id >= {bounds[0]} AND id < {bounds[-1]}"
        one = (f"SELECT {self._chunk_of(bounds)} AS c, COUNT(*) AS n, SUM({self.h1}) AS h1, "
               f"SUM({self.h2}) AS h2 FROM {{table}} {where} GROUP BY c")

        def legacy() -> list[tuple]:
            return self.layout.conns.query(self.layout.legacy.instance,
                                           one.format(table=self.layout.legacy.table(self.table)))

        def shards(instance: str) -> list[tuple]:
            union = " UNION ALL ".join(
                "(" + one.format(table=self.layout.user_places[i].table(self.table)) + ")"
                for i in self.by_instance[instance])
            return self.layout.conns.query(instance, "SELECT c, SUM(n), SUM(h1), SUM(h2) FROM "
                                           f"({union}) x GROUP BY c")

        legacy_job = self.pool.submit(legacy)
        shard_rows = list(self.pool.map(shards, self.by_instance))
        return _sums([legacy_job.result()]), _sums(shard_rows)

    # -- id by id -----------------------------------------------------------------------

    def rows(self, lo: int, hi: int) -> tuple[dict[int, Row], dict[int, list[tuple[int, Row]]]]:
        """A chunk's rows: legacy {id: row}, shards {id: [(shard, row)]}."""
        where = f"WHERE id >= {int(lo)} AND id < {int(hi)}"
        cols = f"id, {self.key}, {self.h1}, {self.h2}"

        def shards(instance: str) -> list[tuple]:
            union = " UNION ALL ".join(
                f"(SELECT {i} AS s, {cols} FROM {self.layout.user_places[i].table(self.table)} "
                f"{where})" for i in self.by_instance[instance])
            return self.layout.conns.query(instance, union)

        legacy_job = self.pool.submit(self.layout.conns.query, self.layout.legacy.instance,
                                      f"SELECT {cols} FROM "
                                      f"{self.layout.legacy.table(self.table)} {where}")
        on_shards: dict[int, list[tuple[int, Row]]] = {}
        for found in self.pool.map(shards, self.by_instance):
            for s, id_, key, h1, h2 in found:
                on_shards.setdefault(int(id_), []).append((int(s), (int(key), h1, h2)))
        legacy = {int(r[0]): (int(r[1]), r[2], r[3]) for r in legacy_job.result()}
        return legacy, on_shards

    def differences(self, lo: int, hi: int) -> list[Difference]:
        legacy, shards = self.rows(lo, hi)
        out: list[Difference] = []
        for id_ in sorted(set(legacy) | set(shards)):
            out += self._compare(id_, legacy.get(id_), shards.get(id_, []))
        return out

    def _compare(self, id_: int, legacy: Row | None,
                 copies: list[tuple[int, Row]]) -> list[Difference]:
        n = self.layout.user_shards
        seen = tuple(sorted(s for s, _ in copies))

        def db(shard: int) -> str:
            return self.layout.user_places[shard].database

        def diff(kind: str, where: str) -> Difference:
            return Difference(kind, self.table, id_, where, seen)

        if self.legacy_auth:
            home = legacy[0] % n if legacy is not None else None
        else:
            home = next((s for s, r in copies if r[0] % n == s), None)
        stray = "not in legacy" if self.legacy_auth and legacy is None else "not its user shard"
        out = [diff("extra", f"in {db(s)}, {stray}") for s, _ in copies if s != home]
        at_home = next((r for s, r in copies if s == home), None)
        if home is None:  # nothing authoritative: only extras
            if legacy is not None:
                out.insert(0, diff("extra", "in legacy, not in the shards"))
            return out
        if self.legacy_auth and at_home is None:
            out.insert(0, diff("missing", f"in legacy, not in {db(home)}"))
        elif legacy is None:
            out.insert(0, diff("missing", f"in {db(home)}, not in legacy"))
        elif at_home is not None and at_home[1:] != legacy[1:]:
            out.insert(0, diff("changed", f"legacy and {db(home)} differ"))
        return out

    # -- repair -------------------------------------------------------------------------

    def repair(self, diff: Difference) -> None:
        """Copy ``diff.id`` from the authoritative side under its row lock (or delete it)."""
        if self.legacy_auth:
            self._to_shards(diff)
        else:
            self._to_legacy(diff)

    def _select(self, table: str) -> str:
        return f"SELECT {', '.join(map(quote, self.columns))} FROM {table} WHERE id = %s"

    def _image(self, row: tuple | None) -> dict | None:
        return None if row is None else dict(zip(self.columns, row, strict=True))

    def _drop_copies(self, diff: Difference, keep: set[Place]) -> None:
        """Delete the id from every user shard it was seen on (and those rows' merchant
        copies), except the places in ``keep``."""
        for s in diff.shards:
            place = self.layout.user_places[s]
            found = self.layout.conns.query(place.instance, self._select(place.table(self.table)),
                                            (diff.id,))
            for target in ([place, *self.layout.copy_places(self.table, self._image(found[0]))]
                           if found else [place]):
                if target not in keep:
                    self.layout.delete_id(self.table, target, diff.id)

    def _to_shards(self, diff: Difference) -> None:
        conn = self.layout.connect(self.layout.legacy.instance, autocommit=False)
        try:
            with conn.cursor() as cur:
                cur.execute(self._select(self.layout.legacy.table(self.table)) + " FOR UPDATE",
                            (diff.id,))
                row = cur.fetchone()
            image = self._image(row)
            keep = set(self.layout.places_of(self.table, image)) if image else set()
            self._drop_copies(diff, keep)
            if row is not None:
                self.layout.replace_rows(self.table, self.columns, [row])
            conn.commit()
        finally:
            conn.close()

    def _to_legacy(self, diff: Difference) -> None:
        legacy = self.layout.conns.query(self.layout.legacy.instance, self._select(
            self.layout.legacy.table(self.table)), (diff.id,))
        candidates = [s for s in diff.shards if self._home_of(s, diff.id)]
        image = self._image(legacy[0]) if legacy else None
        home = candidates[0] if candidates else (
            self.layout.user_shard(self.table, image) if image else None)
        if home is None:  # neither side has a row at its user shard: only strays to drop
            self._drop_copies(diff, set())
            return
        place = self.layout.user_places[home]
        conn = self.layout.connect(place.instance, autocommit=False)
        try:
            with conn.cursor() as cur:
                cur.execute(self._select(place.table(self.table)) + " FOR UPDATE", (diff.id,))
                row = cur.fetchone()
            with self.layout.conns.get(self.layout.legacy.instance).cursor() as cur:
                target = self.layout.legacy.table(self.table)
                if row is None:
                    cur.execute(f"DELETE FROM {target} WHERE id = %s", (diff.id,))
                else:
                    cur.execute(f"REPLACE INTO {target} ({', '.join(map(quote, self.columns))})"
                                f" VALUES ({', '.join(['%s'] * len(self.columns))})", row)
            keep = set(self.layout.places_of(self.table, self._image(row))) if row else set()
            self._drop_copies(Difference(diff.kind, diff.table, diff.id, diff.where,
                                         tuple(s for s in diff.shards if s != home)), keep)
            conn.commit()
        finally:
            conn.close()

    def _home_of(self, shard: int, id_: int) -> bool:
        place = self.layout.user_places[shard]
        found = self.layout.conns.query(place.instance, f"SELECT {self.key} FROM "
                                        f"{place.table(self.table)} WHERE id = %s", (id_,))
        return bool(found) and int(found[0][0]) % self.layout.user_shards == shard


def _sums(results: list[list[tuple]]) -> dict[int, tuple]:
    out: dict[int, tuple] = {}
    for rows in results:
        for c, n, h1, h2 in rows:
            n0, a0, b0 = out.get(int(c), (0, 0, 0))
            out[int(c)] = (n0 + int(n), a0 + int(h1 or 0), b0 + int(h2 or 0))
    return out


class Verify:
    """The whole comparison, with its progress bar, rechecks and repairs."""

    def __init__(self, layout: Layout, args: argparse.Namespace, legacy_auth: bool,
                 out: Callable[[str], None]) -> None:
        self.layout = layout
        self.args = args
        self.legacy_auth = legacy_auth
        self.out = out
        self.stats = Stats()
        self.throttle = Throttle(args.rate) if args.rate else None

    def run(self) -> Stats:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        tables = [t for t in self.layout.tables if not self.args.table or t in self.args.table]
        with ThreadPoolExecutor(4) as pool, Progress(
                TextColumn("verify {task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), disable=self.args.no_progress) as bar:
            for table in tables:
                compare = TableCompare(self.layout, table, self.legacy_auth, self.args.chunk,
                                       pool)
                total = self.layout.conns.query(self.layout.legacy.instance, "SELECT COUNT(*) "
                                                f"FROM {self.layout.legacy.table(table)}")
                task = bar.add_task(table, total=int(total[0][0]), info="")
                self._table(compare, bar, task)
        return self.stats

    def _table(self, compare: TableCompare, bar, task) -> None:
        start = 0
        while start < END:
            bounds = compare.boundaries(start)
            legacy, shards = compare.summaries(bounds)
            for c, (lo, hi) in enumerate(itertools.pairwise(bounds)):
                self.stats.chunks += 1
                self.stats.legacy_rows += legacy.get(c, (0,))[0]
                self.stats.shard_rows += shards.get(c, (0,))[0]
                if legacy.get(c, (0, 0, 0)) != shards.get(c, (0, 0, 0)):
                    self._drill(compare, lo, hi)
                bar.advance(task, legacy.get(c, (0,))[0])
            found = sum(self.stats.differences.values())
            bar.update(task, info=f"{found} differences")
            if self.throttle is not None:
                self.throttle.account(sum(v[0] for v in legacy.values())
                                      + sum(v[0] for v in shards.values()))
            start = bounds[-1]

    def _drill(self, compare: TableCompare, lo: int, hi: int) -> None:
        diffs = compare.differences(lo, hi)
        for _ in range(self.args.recheck):
            if not diffs:
                return
            time.sleep(self.args.recheck_delay)
            again = {(d.kind, d.id) for d in compare.differences(lo, hi)}
            diffs = [d for d in diffs if (d.kind, d.id) in again]
        for diff in diffs:
            self.out(diff.line())
            self.stats.differences[diff.kind] += 1
        if not self.args.repair or not diffs:
            self.stats.left += len(diffs)
            return
        for diff in {d.id: d for d in diffs}.values():
            compare.repair(diff)
            self.stats.repaired += 1
        left = [d for d in compare.differences(lo, hi) if d.id in {x.id for x in diffs}]
        for diff in left:
            self.out(f"not repaired: {diff.line()}")
        self.stats.left += len(left)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description, parser.formatter_class = __doc__, argparse.RawDescriptionHelpFormatter
    parser.add_argument("--db", help="the logical database (default: the one with a migration)")
    parser.add_argument("--repair", action="store_true",
                        help="rewrite each differing id on the non-authoritative side")
    parser.add_argument("--chunk", type=int, default=2000, help="legacy rows per chunk "
                        "(default: %(default)s)")
    parser.add_argument("--rate", type=int, default=100000, help="rows read per second at "
                        "most, both sides together; 0: no limit (default: %(default)s)")
    parser.add_argument("--table", action="append", help="only this table (repeatable)")
    parser.add_argument("--recheck", type=int, default=2,
                        help="re-compare a difference this many times before reporting it")
    parser.add_argument("--recheck-delay", type=float, default=0.5, metavar="SECONDS")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    layout = layout_for(args, "verify")
    if layout is None:
        return 2
    try:
        row = read_phase(layout)
        phase = row.phase if row else "legacy"
        if args.repair and row is not None and row.state == control.DRAIN:
            print(f"dal migrate verify: refused: a switch from {phase} to {row.next_phase} is "
                  "in progress; repair after it completes", file=sys.stderr)
            return SWITCHING_EXIT
        legacy_auth = legacy_is_authoritative(phase)
        stats = Verify(layout, args, legacy_auth, lambda line: print(line, flush=True)).run()
    except (pymysql.Error, ValueError) as exc:
        print(f"dal migrate verify: {exc}", file=sys.stderr)
        return 1
    finally:
        layout.close()
    total = sum(stats.differences.values())
    detail = ", ".join(f"{stats.differences[k]} {k}" for k in KINDS)
    side = "legacy" if legacy_auth else "the shards"
    print(f"verify {layout.db} (phase {phase}, {side} authoritative): {stats.legacy_rows} legacy "
          f"rows and {stats.shard_rows} shard rows in {stats.chunks} chunks; {total} "
          f"differences ({detail})" + (f"; {stats.repaired} ids repaired, {stats.left} left"
                                       if args.repair else ""), flush=True)
    return DIFF_EXIT if stats.left else 0


SUBCOMMANDS["verify"] = Subcommand(
    "compare legacy with the shards by chunk checksums; --repair fixes the other side",
    add_arguments, run)
