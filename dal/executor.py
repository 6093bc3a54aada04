"""Execution of sharded plans: find the target shards from the slot values, then run the
statement on one shard (relayed raw by the session) or on several (collected and merged here).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from dal import xa
from dal.execute import leases
from dal.execute import stream as scatter_stream
from dal.timeouts import STATEMENT_TIMEOUT, timed_command
from dal.wire.constants import Command, Status
from dal.wire.framing import frame
from dal.wire.messages import OK
from dal.wire.results import encode_result_set
from pool.connection import BackendError, Result, decode_response
from pool.rename import rename_column
from pool.state import apply_state
from router.genes import merchant_shard_of_gene, user_shard_of_gene
from router.rows.columns import ColumnDefinition
from router.sharded import ShardedPlan
from router.targets import (
    AUTOCOMMIT_OFF,
    BAD_VALUE,
    NOT_SUPPORTED,
    TOO_LARGE,
    Refusal,
    Target,
    key_value,
    target_of,
    targets,
)

if TYPE_CHECKING:
    from dal.ports import SessionPort

MAX_ROWS = (1104, "42000")  # ER_TOO_BIG_SELECT: rules.max_rows (docs/errors.md)

__all__ = ["Refusal", "Target", "insert", "key_value", "scatter", "targets"]


async def run_on_shard(session: SessionPort, target: Target, sql: bytes,
                       state: dict[str, str]) -> Result:
    """Run one statement on one shard through the pool, with the given session state."""
    pool = session.server.pools[target.instance]
    conn = await pool.acquire(session.found_rows)
    reusable = True
    try:
        await apply_state(conn, None, state)
        raw = await timed_command(session.server, conn, frame(bytes((Command.QUERY,)) + sql, 0))
        return decode_response(raw)
    except BackendError:
        reusable = not conn.closed
        raise
    finally:
        pool.release(conn, reusable=reusable and not conn.closed)


async def scatter(session: SessionPort, plan: ShardedPlan, slots: list[list[bytes]],
                  shards: list[Target], max_rows: int) -> bytes:
    """Run a read or write on several shards concurrently; the framed response."""
    write = plan.write
    if plan.limited:
        raise Refusal(NOT_SUPPORTED, f"UPDATE/DELETE with LIMIT reaching {len(shards)} shards is "
                      "refused: each shard would apply the LIMIT on its own. Name one user key "
                      "(or order id), or leave out the LIMIT")
    leases.drop_soft_pin(session)
    in_xa = session.xa is not None or (session.server.xa is not None
                                       and session.txn_pending is not None)
    if not in_xa and (session.pinned is not None or session.txn_pending is not None or (
            write and session.state.get("autocommit") == AUTOCOMMIT_OFF)) and (
            write or not _beside_session(session)):
        raise Refusal(NOT_SUPPORTED, "a statement reaching several shards inside a transaction "
                      "is refused (transaction mode 'single'); keep a transaction on one user")
    # Outside a transaction a read is its own snapshot on each shard: with autocommit off it
    # would leave a transaction open on every pooled connection it used.
    state = session.state if write or in_xa else {k: v for k, v in session.state.items()
                                                  if k != "autocommit"}
    template = plan.template
    merge_plan = plan.scatter
    if not write and plan.scatter_template is not None:
        template = plan.scatter_template
    elif not write and isinstance(merge_plan, Exception):
        raise Refusal(NOT_SUPPORTED, f"DAL cannot merge this statement across shards: "
                      f"{merge_plan}")
    shard_slots = slots
    if not write and merge_plan is not None and not isinstance(merge_plan, Exception):
        shard_slots = merge_plan.shard_slots(slots)  # e.g. LIMIT m, n becomes LIMIT m+n
    sqls = [template.render(shard_slots, t.database, t.only) for t in shards]
    if (not write and _concatenation(merge_plan) and not in_xa
            and not session.server.statement_timeout and not session.server.config.rules.max_rows):
        await scatter_stream.stream(session, shards, sqls, state, plan.db.encode())
        return b""
    if in_xa:  # on the transaction's branches: it reads its own writes
        outcomes = await xa.run_on_shards(session, [(t.instance, sql)
                                                    for t, sql in zip(shards, sqls, strict=True)])
    else:
        outcomes = await asyncio.gather(*(run_on_shard(session, t, sql, state)
                                          for t, sql in zip(shards, sqls, strict=True)),
                                        return_exceptions=True)
    failed = [(t, o) for t, o in zip(shards, outcomes, strict=True)
               if isinstance(o, BaseException)]
    if failed:
        first = failed[0][1]
        if isinstance(first, BackendError) and first.code == STATEMENT_TIMEOUT[0]:
            session.server.protection.count_rule("statement_timeout")
        if isinstance(first, BackendError) and write and len(failed) < len(shards):
            names = ", ".join(t.database.decode() for t, _ in failed[:5])
            more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
            raise BackendError(first.code, f"{first.message} (failed on {names}{more}; the "
                               f"other {len(shards) - len(failed)} of {len(shards)} databases "
                               "applied it)", first.sqlstate)
        raise first
    results: list[Result] = outcomes  # type: ignore[assignment]
    seq = session.reply_seq
    status = session.status
    if write and plan.routing.broadcast:  # every copy changes alike: report one copy's count
        first_ok = results[0].ok
        return frame(OK(affected_rows=first_ok.affected_rows if first_ok else 0,
                        status=status).encode(), seq)
    if write:
        affected = sum(r.ok.affected_rows for r in results if r.ok is not None)
        return frame(OK(affected_rows=affected, status=status).encode(), seq)
    logical = plan.db.encode()
    if merge_plan is None:
        columns = results[0].columns
        rows = [row for r in results for row in r.rows]
        if len(rows) > max_rows:
            raise Refusal(TOO_LARGE, f"the scatter result holds more than {max_rows} rows "
                          "(server.max_merge_rows); add a shard key or a LIMIT")
    else:
        from router.merge import MergeTooLarge, ScatterUnsupported, merge

        try:
            columns, rows = merge(merge_plan.spec, results[0].columns,  # type: ignore[union-attr]
                                  [r.rows for r in results], max_rows, slots=slots)
        except MergeTooLarge as exc:
            raise Refusal(TOO_LARGE, str(exc)) from None
        except ScatterUnsupported as exc:
            raise Refusal(NOT_SUPPORTED, f"DAL cannot merge this statement across shards: "
                          f"{exc}") from None
    limit = session.server.config.rules.max_rows
    if limit and len(rows) > limit:
        session.server.protection.count_rule("max_rows")
        raise Refusal(MAX_ROWS, f"DAL rule max_rows: the merged result has {len(rows)} rows, "
                      f"more than rules.max_rows = {limit}; add a shard key, a narrower WHERE "
                      "or a LIMIT")
    renamed = [ColumnDefinition.decode(rename_column(c.encode(), logical)) if c.schema else c
               for c in columns]
    return encode_result_set(renamed, rows, deprecate_eof=False,
                             status=status & ~Status.MORE_RESULTS_EXISTS, seq=seq)


def _concatenation(merge_plan: object) -> bool:
    """True when a scatter read's result is its shards' rows one after another (no ORDER BY,
    GROUP BY, aggregate, DISTINCT, LIMIT, hidden or renamed column): it can stream."""
    from router.merge import MergeSpec

    return merge_plan is None or getattr(merge_plan, "spec", None) == MergeSpec()


# Pins under which a scatter read may still run on pooled connections: the pinned state
# does not change what a plain read returns (SET TRANSACTION ..., LOCK TABLES of unsharded
# tables).
_READ_SAFE_PINS = frozenset({"set_other", "lock_tables"})


def _beside_session(session: SessionPort) -> bool:
    """True when a scatter read may run on pooled connections beside what the session holds:
    a transaction begun WITH CONSISTENT SNAPSHOT (mariadb-dump --single-transaction) that has
    not touched a shard yet, or a pin whose state a plain read does not depend on. Each shard
    is then read in its own snapshot, not the transaction's (README, "What you see through
    DAL")."""
    if session.status & Status.IN_TRANS or session.txn_pending is not None:
        return session.snapshot and session.txn_shard is None
    return session.pin_reason in _READ_SAFE_PINS


async def insert(session: SessionPort, plan: ShardedPlan,
                 slots: list[list[bytes]]) -> tuple[bytes, int]:
    """Split an INSERT's rows by user shard, generate gene IDs, run each shard's part.

    Returns the framed OK (affected rows summed, last insert id = the first generated id) and
    that id."""
    ins = plan.insert
    assert ins is not None
    config = session.server.config
    cfg = config.databases[plan.db]
    dim = cfg.dimensions[plan.routing.dimension]
    genes = session.server.genes
    rows_by_shard: dict[int, list[bytes]] = {}
    first_id = 0
    for row in ins.rows:
        cells = [cell.render(slots, b"") for cell in row]
        user = key_value(cells[ins.user_index])
        shard = user % dim.shards
        merchant = key_value(cells[ins.merchant_index]) if ins.merchant_index is not None else None
        for index in ins.gene_indexes:
            gene = key_value(cells[index])
            if user_shard_of_gene(gene, dim.shards) != shard or (
                    merchant is not None
                    and merchant_shard_of_gene(gene, dim.shards) != merchant % dim.shards):
                raise Refusal(BAD_VALUE, f"id {gene} contradicts its keys: an order id must "
                              f"satisfy id % {dim.shards} = user_id % {dim.shards} and "
                              f"(id // {dim.shards}) % {dim.shards} = merchant_id % {dim.shards}"
                              "; omit the id and DAL generates one")
        if ins.generated:
            new_id = genes.next_id(user, merchant or 0)
            cells.append(str(new_id).encode())
            first_id = first_id or new_id
        rows_by_shard.setdefault(shard, []).append(b"(" + b", ".join(cells) + b")")
    shards = sorted(rows_by_shard)
    if len(shards) > 1:
        leases.drop_soft_pin(session)
    if len(shards) > 1 and session.server.xa is None and (
            session.pinned is not None or session.txn_pending is not None):
        raise Refusal(NOT_SUPPORTED, "an INSERT whose rows belong to several user shards is "
                      "refused inside a transaction (transaction mode 'single')")
    if len(shards) == 1:
        refusal = leases.second_shard_refusal(session,
            target_of(config, plan.db, plan.routing.dimension, shards[0], None).database)
        if refusal is not None:
            raise Refusal(NOT_SUPPORTED, refusal)
    tail = ins.tail.render(slots, b"")
    affected = 0
    done: list[int] = []
    for shard in shards:
        target = target_of(config, plan.db, plan.routing.dimension, shard, None)
        sql = ins.head.render(slots, target.database) + b", ".join(rows_by_shard[shard]) + tail
        try:
            result = await leases.run_in_session(session, target.instance, sql)
        except BackendError as exc:
            if exc.code == STATEMENT_TIMEOUT[0]:
                session.server.protection.count_rule("statement_timeout")
            if done:
                raise BackendError(exc.code, f"{exc.message} (shard {shard}; shards {done} "
                                   "already applied their rows)", exc.sqlstate) from None
            raise
        done.append(shard)
        affected += result.ok.affected_rows if result.ok else 0
        if not first_id and result.ok and result.ok.last_insert_id:
            first_id = result.ok.last_insert_id
    ok = OK(affected_rows=affected, last_insert_id=first_id, status=session.status)
    return frame(ok.encode(), session.reply_seq), first_id
