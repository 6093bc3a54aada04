"""Admin statements (``SHOW DAL ...``), for admin users only, answered by DAL itself.

A dispatch table maps each statement to a handler that returns rows; unknown ones get 1235.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from dal import errors, fleet_admin, protect_admin
from dal.login import err_packet, ok_packet
from dal.wire.messages import ERR
from dal.wire.results import encode_result_set, text_column
from router.rows.types import ColumnType
from router.session_functions import rewrites

if TYPE_CHECKING:
    from dal.ports import ServerPort

Rows = tuple[list[str], list[list[object]]]

log = logging.getLogger("dal.admin")


def _pools(server: ServerPort) -> Rows:
    """One row per instance of this worker's pools (``worker``: its index)."""
    header = ["worker", "instance", "address", "max", "in_use", "idle", "connecting", "waiting",
              "opened", "closed"]
    rows: list[list[object]] = []
    for name, pool in server.pools.items():
        s = pool.stats()
        address = f"{pool.instance.host}:{pool.instance.port}"
        rows.append([server.worker_index, name, address, s.max_size, s.in_use, s.idle,
                     s.connecting, s.waiting, s.opened, s.closed])
    return header, rows


def _shards(server: ServerPort) -> Rows:
    """One row per placement; sync_lag_* is `dal sync`'s lag from that placement's instance
    (authoritative dimension) or the worst over all sources (copies), NULL if it is not running."""
    from dal.sync_lag import read_status, shard_lag

    header = ["database", "dimension", "shards", "instance", "first", "last",
              "sync_lag_seconds", "sync_lag_events"]
    status = read_status(server.config.sync.status_file)
    rows: list[list[object]] = []
    for db_name, db in server.config.databases.items():
        if not db.dimensions:  # a database an admin created: unsharded
            continue
        sources = sorted({p.instance for p in db.dimensions[db.authoritative].placement})
        for dim_name, dim in db.dimensions.items():
            for place in dim.placement:
                numbers = place.numbers()
                lag = shard_lag(status, [place.instance] if dim_name == db.authoritative
                                else sources)
                rows.append([db_name, dim_name, place.shards, place.instance,
                             dim.database(numbers[0]), dim.database(numbers[-1]), *lag])
    return header, rows


def _statements(server: ServerPort) -> Rows:
    """Per statement fingerprint, the most total time first (dal/stats.py)."""
    header = ["fingerprint", "count", "errors", "total_ms", "avg_ms", "max_ms"]
    rows: list[list[object]] = [
        [key.decode("utf-8", "replace"), d.count, d.errors, f"{d.total * 1000:.3f}",
         f"{d.total * 1000 / d.count:.3f}" if d.count else "0", f"{d.max * 1000:.3f}"]
        for key, d in server.stats.top(len(server.stats.digests))]
    return header, rows


def _counters(server: ServerPort) -> Rows:
    header = ["counter", "label", "value"]
    rows: list[list[object]] = [[k[0], k[1], v] for k, v in sorted(server.counters.items())]
    cache = server.router.cache
    rows += [["plan_cache", "hits", cache.hits], ["plan_cache", "misses", cache.misses],
             ["plan_cache", "size", len(cache)], ["sessions", "connected", len(server.sessions)]]
    return header, rows


def _genes(server: ServerPort) -> Rows:
    """One row per leased gene worker id (dal_meta.gene_workers): its holder, lease and
    high-water mark; the row of this process also shows how far its ids run ahead of the clock,
    and ``worker``, this process's worker index."""
    from dal.worker_lease import genes_rows

    header, rows = genes_rows(server.leased_genes)
    this = header.index("this_process")
    return ["worker", *header], [[server.worker_index if row[this] == "yes" else None, *row]
                                 for row in rows]


COMMANDS: dict[str, Callable[[ServerPort], Rows]] = {
    "POOLS": _pools,
    "SHARDS": _shards,
    "STATEMENTS": _statements,
    "GENES": _genes,
    **protect_admin.SHOW_COMMANDS,
    "COUNTERS": _counters,
}

_SHOW = re.compile(r"(?is)\s*SHOW\s+DAL\s+(\w+)\s*;?\s*$")
_EXPLAIN = re.compile(rb"(?is)\s*EXPLAIN\s+DAL\s+")


async def explain(server: ServerPort, sql: bytes, schema: str | None, admin: bool, *, seq: int,
                  status: int, extended: bool = False,
                  databases: frozenset[str] | None = None,
                  session_values: Callable[[bytes], bytes] | None = None) -> bytes:
    """``EXPLAIN DAL <statement>``: its plan's tree of primitives (router/explain.py), as a
    result set; a long statement is planned on the planner thread (dal/session/planning.py).
    ``session_values``: writes the session's LAST_INSERT_ID(), CONNECTION_ID(), ... into the
    statement, as its run would (`WHERE user_id = CONNECTION_ID()` then routes to one shard)."""
    from dal.session.planning import PLAN_AWAY_BYTES, plan_away
    from router.explain import HEADER
    from router.explain import explain as explain_plan
    from router.fingerprint import fingerprint

    match = _EXPLAIN.match(sql)
    statement = sql[match.end():].rstrip(b"; \t\n") if match else b""
    if not statement:
        return err_packet(ERR(errors.NOT_SUPPORTED[0], "EXPLAIN DAL needs a statement",
                              errors.NOT_SUPPORTED[1]), seq)
    if session_values is not None and rewrites(statement):
        statement = session_values(statement)
    plan = None
    if len(statement) >= PLAN_AWAY_BYTES:
        plan = await plan_away(server.router, statement, fingerprint(statement), schema, admin,
                               0, None, databases)
    rows = explain_plan(server.router, server.config, statement, schema, admin, databases, plan)
    return _result(HEADER, rows, seq=seq, status=status, extended=extended)


async def answer(server: ServerPort, sql: str, *, seq: int, status: int,
                 extended: bool = False) -> bytes:
    """Run one admin statement for the whole DAL and return the framed response: with several
    workers, SHOW DAL merges every worker's rows (dal/fleet_admin.py) and SET DAL / RELOAD DAL
    CONFIG, once applied here, are applied by every other worker too."""
    fleet = server.fleet
    if fleet is None:
        return execute(server, sql, seq=seq, status=status, extended=extended)
    match = _SHOW.match(sql)
    name = match.group(1).upper() if match else ""
    merge = fleet_admin.MERGES.get(name)
    if merge is not None:
        answers = {server.worker_index: COMMANDS[name](server),
                   **await fleet.ask({"op": "show", "name": name})}
        header, rows = merge([answers[i] for i in sorted(answers)])
        return _result(header, rows, seq=seq, status=status, extended=extended)
    response = execute(server, sql, seq=seq, status=status, extended=extended)
    if protect_admin.changes_settings(sql) and response[4] != ERR_MARKER:
        applied = await fleet.ask({"op": "admin", "sql": sql})
        for index in fleet.peers:
            if applied.get(index) != "applied":
                log.warning("worker %d did not apply %r: %s", index, sql,
                            applied.get(index, "no answer"))
    return response


ERR_MARKER = 0xFF  # the first payload byte of an ERR packet


def execute(server: ServerPort, sql: str, *, seq: int, status: int,
            extended: bool = False) -> bytes:
    """Run one admin statement in this worker and return the framed response (``extended``:
    the client's column definitions carry MariaDB's extended type info)."""
    try:
        changed = protect_admin.run(server, sql)  # SET DAL, RELOAD DAL CONFIG
    except protect_admin.AdminError as exc:
        server.count_refusal(exc.code)
        return err_packet(ERR(exc.code, str(exc), exc.sqlstate), seq)
    if changed is not None:
        return (_result(*changed, seq=seq, status=status, extended=extended) if changed[0]
                else ok_packet(seq, status))
    match = _SHOW.match(sql)
    handler = COMMANDS.get(match.group(1).upper()) if match else None
    if handler is None:
        known = ", ".join(f"SHOW DAL {name}" for name in (*COMMANDS, "MIGRATION")) + (
            ", SET DAL <key> = <value>, SET DAL MIGRATION PHASE = '<phase>', "
            "RELOAD DAL CONFIG")
        return err_packet(ERR(errors.NOT_SUPPORTED[0], f"Unknown DAL admin statement; this "
                              f"build knows: {known}", errors.NOT_SUPPORTED[1]), seq)
    header, rows = handler(server)
    return _result(header, rows, seq=seq, status=status, extended=extended)


def result_set(header: list[str], rows: list[list[object]], *, seq: int, status: int,
               extended: bool = False) -> bytes:
    """Rows DAL answers itself, framed from ``seq``."""
    return _result(header, rows, seq=seq, status=status, extended=extended)


def _result(header: list[str], rows: list[list[object]], *, seq: int, status: int,
            extended: bool) -> bytes:
    columns = []
    for i, name in enumerate(header):
        # Integers (NULL allowed): a column's type must not depend on which rows it has.
        numeric = any(isinstance(r[i], int) for r in rows) and all(
            r[i] is None or isinstance(r[i], int) for r in rows)
        columns.append(text_column(name, type_=ColumnType.LONGLONG if numeric else 253,
                                   length=20 if numeric else 256, charset=63 if numeric else 45))
    encoded = [[None if v is None else str(v).encode() for v in row] for row in rows]
    return encode_result_set(columns, encoded, deprecate_eof=False, status=status, seq=seq,
                             extended=extended)
