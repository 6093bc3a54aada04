"""Express routes: statements routed from their text before a trailing integer.

A point read such as ``SELECT c FROM sbtest1 WHERE id=42`` ends in the literal that routes it.
Every statement made of the same text before that integer (the *head*) and other digits has
the same fingerprint and so the same plan (`router.fingerprint.trailing_literal`). An `Express`
entry, learned from the plan the ordinary path built for one such statement, lets the next ones
skip the scanner, the plan cache, slot extraction, target lookup and rendering: the integer
picks the shard, and the shard's statement is its head (qualified by the shard database, as the
template renders it) followed by the digits as the client sent them.

Entries exist only for shapes the plan cache would serve: a passthrough route (the packet goes
as it came), or a single-shard plan whose one routing slot is that trailing integer and whose
template ends with it. Anything else is remembered as having no express lane (`NONE`), so it
is not examined again. The session decides per statement whether its own state (schema,
transaction, pins) allows the express lane; otherwise it takes the ordinary path, which gives
the same answer.
"""

from __future__ import annotations

from collections.abc import Callable

from config.model import Config
from router.fingerprint import MAX_HEAD, Fingerprint, fingerprint, trailing_literal
from router.genes import merchant_shard_of_gene, user_shard_of_gene
from router.plan import ROUTE, SHARDED, Plan
from router.plan_cache import MAX_CACHED_KEY
from router.targets import Target, target_of

# Heads remembered, cleared when full (as the fingerprint's tail cache).
EXPRESS_CACHE_SIZE = 10000


# Kinds of entry: a head that has no express route (in that schema, for that kind of user),
# a passthrough route, a single-shard route.
NONE, PASS, SHARD = 0, 1, 2


class Express:
    """One statement head's route, for sessions in ``schema`` with admin rights ``admin``."""

    __slots__ = ("_config", "_head", "admin", "gene", "key", "lane", "multi", "plan", "schema",
                 "shards")

    def __init__(self, lane: int, config: Config, plan: Plan, key: bytes, schema: str | None,
                 admin: bool, head: bytes) -> None:
        self.lane = lane
        self.plan = plan
        self.key = key  # the fingerprint key: statement digests and rate limits use it
        self.schema = schema
        self.admin = admin
        self.multi = b";" in head  # a multi-statement session must split such a statement
        self.shards = 0
        self.gene: Callable[[int, int], int] | None = None
        self._config = config
        self._head = head
        if lane == SHARD:
            routing = plan.sharded.routing  # type: ignore[union-attr]
            cfg = config.databases[plan.sharded.db]  # type: ignore[union-attr]
            self.shards = cfg.dimensions[routing.dimension].shards
            if routing.gene:
                self.gene = (user_shard_of_gene if routing.dimension == cfg.authoritative
                             else merchant_shard_of_gene)

    def shard_of(self, number: int) -> int:
        """The shard the routing integer names."""
        gene = self.gene
        return number % self.shards if gene is None else gene(number, self.shards)

    def target(self, shard: int) -> tuple[Target, bytes]:
        """Shard ``shard``'s target and its statement up to the routing integer (a COM_QUERY
        payload: command byte, then the SQL)."""
        sharded = self.plan.sharded
        target = target_of(self._config, sharded.db, sharded.routing.dimension,  # type: ignore[union-attr]
                           shard, None)
        # The head's own literals, and the routing slot left empty: the digits follow.
        sample = self._head + b"0"
        slots = fingerprint(sample).slots(sample)
        slots[-1] = [b""]
        return target, b"\x03" + sharded.template.render(slots, target.database)  # type: ignore[union-attr]


def learn(cache: dict[bytes, Express], config: Config, sql: bytes, fp: Fingerprint, plan: Plan,
          schema: str | None, admin: bool) -> None:
    """Remember the express route of ``sql``'s head, or that it has none, after the ordinary
    path planned ``sql`` for a session in ``schema``."""
    cut = trailing_literal(sql, fp)
    if cut < 0 or cut > MAX_HEAD:
        return
    head = sql[:cut]
    known = cache.get(head)
    if known is not None and known.schema == schema and known.admin == admin:
        return
    if len(cache) >= EXPRESS_CACHE_SIZE:
        cache.clear()
    cache[head] = Express(_lane(plan, fp, sql), config, plan, fp.key, schema, admin, head)


def _lane(plan: Plan, fp: Fingerprint, sql: bytes) -> int:
    if len(fp.key) > MAX_CACHED_KEY:  # the plan cache does not keep such shapes either
        return NONE
    if plan.kind == ROUTE:
        return PASS if plan.passthrough and plan.handler is None and not plan.diagnostics \
            else NONE
    if plan.kind != SHARDED:
        return NONE
    sharded = plan.sharded
    routing = sharded.routing  # type: ignore[union-attr]
    last = len(fp.slots(sql)) - 1
    parts = sharded.template.parts  # type: ignore[union-attr]
    ints = [part for part in parts if part.__class__ is int]
    eligible = (sharded.insert is None and sharded.home is None  # type: ignore[union-attr]
                and not routing.broadcast and routing.slots == (last,)
                and bool(parts) and parts[-1] == last and ints.count(last) == 1)
    return SHARD if eligible else NONE
