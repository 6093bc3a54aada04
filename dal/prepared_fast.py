"""The hot path of a repeated COM_STMT_EXECUTE routed to one shard by one integer parameter.

After an execution has taken the full path (`dal.prepared`), a statement whose plan is keyed by
one parameter gets a `FastRoute`: where that parameter's bytes are in the packet and the types
block to send. The next executions read only the key's bytes, pick the shard, and relay the
client's own packet with two changes: the backend's statement id, and the types block (always
sent, so that a backend statement first executed by another client knows them), through
`dal.prepared_run`. Parameters are neither decoded nor re-encoded, and the plan cache is not
consulted; the statement for a shard the route has not reached yet is rendered on the spot.

Anything this path does not handle (NULLs, long data, cursors, other types, an open
transaction, rate limits, a config reload, a changed sql_mode, a connection without the
statement prepared) returns False and the full path runs, so the two cannot disagree. The full
path plans the statement again under the session's sql_mode of the moment: a statement whose
text reads differently after `SET sql_mode = 'ANSI_QUOTES'` is checked as MariaDB now reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dal.execute.leases import AUTOCOMMIT, TXN_BITS
from dal.prepared_run import run
from dal.prepared_statements import FastRoute
from dal.shard_route import route_plan, shard_renamer
from dal.wire.binary import INT_SIZES, UNSIGNED_PARAM, Execute
from router.plan import Plan
from router.targets import Refusal, Target, target_for

if TYPE_CHECKING:
    from dal.ports import SessionPort
    from dal.prepared_statements import Statement
    from router.sharded import ShardedPlan


MAX_TAIL = 0xFFFFFF - 5  # the relayed execute must stay one packet
# Fast routes shared by the sessions of this process, by what the router plans a statement
# from (default schema, admin role, the user's `databases:` list, lexer modes, statement
# text): a client that prepares the same statement on every new connection (sysbench, pools
# that reconnect) takes the fast route from its first execution on, and a route planned for
# a user who may name every database is never taken by one who may not. Entries of an older
# config are replaced by the next full path; the table is emptied when it is full. Each route
# keeps up to one statement per shard it reached (240 for this project's two dimensions), so
# the bound is on routes: 256 of them hold at most 61,440 shard statements.
_shared: dict[tuple[str | None, bool, frozenset[str] | None, int, bytes], FastRoute] = {}
MAX_SHARED = 256




def fast_route(session: SessionPort, statement: Statement, plan: Plan, ex: Execute,
               order: list[int]) -> FastRoute | None:
    """The fast route of ``statement`` after a single-shard execution ``ex`` of ``plan``, or
    None when its executions need the full path: the key must be an integer parameter, every
    parameter before it of fixed size, no value NULL or sent as long data, and the shard
    statement must take the parameters in their order."""
    sharded = plan.sharded
    routing = sharded.routing  # type: ignore[union-attr]
    if (None in ex.values or sharded.insert is not None or len(routing.slots) != 1  # type: ignore[union-attr]
            or routing.broadcast or order != list(range(ex_params := len(ex.types)))):
        return None
    key = statement.shape.sources[routing.slots[0]]
    if key.__class__ is not int:
        return None
    offset = 0
    for code, _ in ex.types[:key]:  # type: ignore[misc]
        if code not in INT_SIZES:
            return None
        offset += INT_SIZES[code]
    code, unsigned = ex.types[key]  # type: ignore[index]
    if code not in INT_SIZES:
        return None
    types = b"".join(bytes((c, UNSIGNED_PARAM if u else 0)) for c, u in ex.types)
    return FastRoute(session.server.config, session.schema, plan, ex_params,
                     10 + (ex_params + 7) // 8, types, offset, INT_SIZES[code], not unsigned,
                     session.lexer_modes())


def fixed_route(session: SessionPort, plan: Plan, ex: Execute) -> FastRoute | None:
    """The fast route of a statement whose plan sends it unchanged to one backend (an
    unsharded table): every execution is relayed there, NULLs included."""
    if (plan.sql is not None or plan.handler is not None or plan.pin is not None or plan.anywhere
            or plan.phase is not None):
        return None
    types = b"".join(bytes((c, UNSIGNED_PARAM if u else 0)) for c, u in ex.types)
    params = len(ex.types)
    return FastRoute(session.server.config, session.schema, plan, params,
                     10 + (params + 7) // 8, types, -1, 0, False, session.lexer_modes())


def remember(session: SessionPort, statement: Statement, fast: FastRoute) -> None:
    """Offer ``statement``'s new fast route to the other sessions that prepare it."""
    if len(_shared) >= MAX_SHARED:
        _shared.clear()
    _shared[_key(session, statement)] = fast


def adopt(session: SessionPort, statement: Statement, payload: bytes) -> FastRoute | None:
    """Another session's fast route for ``statement``, taken when this execution sends the
    parameter types the route was built for (so the types it keeps are the client's own);
    None otherwise."""
    fast = _shared.get(_key(session, statement))
    if fast is None or fast.config is not session.server.config:
        return None
    end = fast.bitmap_end
    types = fast.types
    if (fast.params != statement.shape.params or len(payload) <= end or payload[end] != 1
            or payload[end + 1:end + 1 + len(types)] != types):
        return None
    statement.types = [(types[i], bool(types[i + 1] & UNSIGNED_PARAM))
                       for i in range(0, len(types), 2)]
    statement.fast = fast
    return fast


def _key(session: SessionPort,
         statement: Statement) -> tuple[str | None, bool, frozenset[str] | None, int, bytes]:
    return (session.schema, session.admin, session.databases, session.lexer_modes(),
            statement.sql)


def try_execute(session: SessionPort, statement: Statement, fast: FastRoute,
                payload: bytes) -> bool:
    """Send this execution on the fast route; False (nothing done) when it needs the full
    path."""
    server = session.server
    end = fast.bitmap_end
    if (server.config is not fast.config or session.schema != fast.schema
            or session.lexer_modes() != fast.modes  # read differently now: planned again
            or payload[5]  # a cursor
            or session.pinned is not None or session.txn_pending is not None
            or statement.long_data or len(payload) <= end):
        return False
    bound = payload[end]
    if bound:
        start = end + 1 + 2 * fast.params
        if bound != 1 or payload[end + 1:start] != fast.types:
            return False
        tail = payload[5:]  # the types are there already
    else:
        start = end + 1
        tail = payload[5:end] + b"\x01" + fast.types + payload[start:]
    if len(tail) >= MAX_TAIL:
        return False
    plan = fast.plan
    if fast.key_at < 0:  # one fixed backend: the packet as it came, NULLs and all
        run(session, plan, plan.instance, plan.schema, statement.sql, fast.params, tail,  # type: ignore[arg-type]
            None, None, 0)
        return True
    if payload.count(0, 10, end) != end - 10:  # a NULL
        return False
    at = start + fast.key_at
    raw = payload[at:at + fast.key_size]
    if len(raw) != fast.key_size:
        return False
    number = int.from_bytes(raw, "little", signed=fast.key_signed)
    if number < 0:
        return False
    sharded = plan.sharded
    try:
        target = target_for(fast.config, sharded, number)  # type: ignore[arg-type]
    except Refusal:
        return False
    database = target.database
    found = fast.shards.get(database)
    if found is None:
        if session.status & TXN_BITS != AUTOCOMMIT:  # a transaction's new shard: its checks
            return False
        found = _first_on_shard(fast, statement, sharded, target)  # type: ignore[arg-type]
        if found is None:
            return False
    run(session, found[1], target.instance, None, found[0], fast.params, tail, found[2], None, 0)
    return True


def _first_on_shard(fast: FastRoute, statement: Statement, sharded: ShardedPlan,
                    target: Target) -> tuple | None:
    """The route's entry for a shard it has not sent to yet: the statement rendered for that
    shard (parameters left as ``?``), its one-backend plan and its header renamer; None when
    the shard's statement would take the parameters in another order.

    Rendered here rather than taken from the full path, so that a session's first execution
    on each shard stays on the fast route: at 1,000 clients a session executes a statement a
    dozen times in ten seconds, mostly on shards it has not reached before, and py-spy found
    the full path (decode, plan, render, encode) taking 28 % of DAL's time."""
    database = target.database
    sql, order = statement.shape.render(sharded.template, statement.shape.unbound,  # type: ignore[arg-type]
                                        database)
    if order != list(range(fast.params)):
        return None
    found = fast.shards[database] = (sql, route_plan(target.instance, fast.plan.statement),
                                     shard_renamer(sharded, database))
    return found
