"""Plans: what the executor does with one statement.

A plan is chosen once per (fingerprint, schema) and cached; it never holds literal values, so
one plan serves every statement of the same shape. The kinds used so far:

- ``route``: send to one backend instance, relay the result raw. ``sql`` is None when the
  client's bytes go unchanged (the hot path), else the rewritten statement.
- ``local``: answered by DAL itself (``handler`` names the function in `dal.local`).
- ``set``: session variables to record and replay on whatever connection serves the session.
- ``refuse``: an ERR with a documented code and a message that says what to change.
- ``sharded``: a statement on sharded tables (``sharded`` is its router.sharded.ShardedPlan).
- ``migrated``: a statement on the tables of a live migration (router/migration.py): its tree
  depends on the migration's ``phase``; ``instance``/``schema`` name the legacy database and
  ``sharded`` the sharded plan (None when the sharded planner refused the statement).

``root`` is the plan as a tree of primitives (router/engine/), which executes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROUTE = "route"
LOCAL = "local"
SET = "set"
REFUSE = "refuse"
SHARDED = "sharded"
MIGRATED = "migrated"


@dataclass(slots=True, frozen=True)
class Plan:
    kind: str
    instance: str | None = None
    schema: str | None = None
    sql: bytes | None = None
    handler: str | None = None
    args: tuple = ()
    assignments: tuple[tuple[str, str], ...] = ()
    error: tuple[int, str, str] | None = None
    pin: str | None = None
    statement: str = "other"
    tables: tuple[str, ...] = field(default=())
    # SHOW WARNINGS/ERRORS: only meaningful on the connection that ran the previous statement.
    diagnostics: bool = False
    # FOUND_ROWS()/ROW_COUNT(): true only on the session's own (pinned) connection; this names
    # the function, and the statement is refused on a pooled connection, whose value is not
    # the session's.
    own_connection: str | None = None
    sharded: object | None = None  # router.sharded.ShardedPlan
    # Touches no table (COMMIT, SAVEPOINT, SELECT @@x): inside a transaction it goes to the
    # transaction's connection, whichever backend that is.
    anywhere: bool = False
    # A refusal that enforces a protection rule names it (counted in dal_rule_refusals_total).
    rule: str | None = None
    # Planned for this statement text only, never cached: its verdict depends on a literal
    # (the statement inside PREPARE ... FROM '...').
    once: bool = False
    # Planned for this migration phase (router/migration.py): its route changes at a phase
    # switch, so it is never memoised outside the plan cache (express lane, fast routes).
    phase: str | None = None
    # The tree of primitives that executes this plan (router.engine.base.Primitive), built
    # once per shape by router.engine.build.rooted; None for a plan made outside the planner.
    root: object | None = field(default=None, compare=False, repr=False)

    @property
    def passthrough(self) -> bool:
        """True when the client's packet is forwarded byte for byte."""
        return self.kind == ROUTE and self.sql is None


def refuse(code: int, sqlstate: str, message: str) -> Plan:
    """A plan that answers with an ERR."""
    return Plan(REFUSE, error=(code, sqlstate, message))
