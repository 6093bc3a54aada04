"""Target shards of a sharded plan, from the values in its routing slots."""

from __future__ import annotations

from dataclasses import dataclass

from config.model import Config
from router.fingerprint import unquote_string
from router.genes import merchant_shard_of_gene, user_shard_of_gene
from router.sharded import ShardedPlan

NOT_SUPPORTED = (1235, "42000")
BAD_VALUE = (1105, "HY000")
TOO_LARGE = (1105, "HY000")
AUTOCOMMIT_OFF = "@@session.autocommit=0"


class Refusal(Exception):
    """A statement DAL refuses at execution; ``code``, ``sqlstate`` and the message."""

    def __init__(self, pair: tuple[int, str], message: str) -> None:
        super().__init__(message)
        self.code, self.sqlstate = pair


@dataclass(frozen=True, slots=True)
class Target:
    shard: int
    instance: str
    database: bytes
    only: dict[int, list[bytes]] | None  # slot -> this shard's values of an IN list


def key_value(literal: bytes) -> int:
    """A shard-key literal as an integer (numbers, or strings holding a number)."""
    text = unquote_string(literal) if literal[:1] in (b"'", b'"') else literal
    try:
        value = int(text)
    except ValueError:
        raise Refusal(BAD_VALUE, f"shard key value {literal.decode(errors='replace')} is not "
                      "an integer") from None
    if value < 0:
        raise Refusal(BAD_VALUE, f"shard key value {value} is negative")
    return value


_placed: dict[tuple[int, str, str, int], Target] = {}


def single_target(config: Config, plan: ShardedPlan, slots: list[list[bytes]]) -> Target | None:
    """The hot path: a key given as one value routes to one shard, from a cache of targets."""
    routing = plan.routing
    if len(routing.slots) != 1 or routing.broadcast:
        return None
    values = slots[routing.slots[0]]
    if len(values) != 1:
        return None
    value = values[0]
    return target_for(config, plan, int(value) if value.isdigit() else key_value(value))


def target_for(config: Config, plan: ShardedPlan, number: int) -> Target:
    """The shard a plan's single key value ``number`` (not negative) names, from a cache."""
    routing = plan.routing
    cfg = config.databases[plan.db]
    shards = cfg.dimensions[routing.dimension].shards
    if routing.gene:
        shard = (user_shard_of_gene(number, shards) if routing.dimension == cfg.authoritative
                 else merchant_shard_of_gene(number, shards))
    else:
        shard = number % shards
    key = (id(config), plan.db, routing.dimension, shard)
    found = _placed.get(key)
    if found is None:
        found = _placed[key] = target_of(config, plan.db, routing.dimension, shard, None)
    if plan.home is not None and found.instance != plan.home:
        _refuse_away_from_home(plan, [found])
    return found


def _refuse_away_from_home(plan: ShardedPlan, reached: list[Target]) -> None:
    """A join with unsharded tables runs only on one shard of the instance that holds them."""
    tables = ", ".join(f"'{name}'" for name in plan.unsharded)
    if len(reached) != 1:
        where = f"reaches {len(reached)} shards"
    else:
        where = (f"reaches shard {reached[0].database.decode()} on instance "
                 f"{reached[0].instance}")
    raise Refusal(NOT_SUPPORTED, f"unsharded table {tables} lives in the default database on "
                  f"instance {plan.home}; a join with it is served only on one shard of that "
                  f"instance, and this statement {where}. Read the unsharded table separately")


def targets(config: Config, plan: ShardedPlan, slots: list[list[bytes]]) -> list[Target]:
    """The shards a statement reaches, each with its own share of IN-list values."""
    cfg = config.databases[plan.db]
    routing = plan.routing
    if routing.broadcast:
        everywhere = [Target(-1, cfg.default_instance, cfg.default_database.encode(), None)]
        for dim_name, dim in cfg.dimensions.items():
            everywhere += [target_of(config, plan.db, dim_name, n, None)
                           for n in range(dim.shards)]
        return everywhere
    dim = cfg.dimensions[routing.dimension]
    if not routing.slots:
        return [target_of(config, plan.db, routing.dimension, n, None) for n in range(dim.shards)]
    by_shard: dict[int, dict[int, list[bytes]]] = {}
    for slot in routing.slots:
        for literal in slots[slot]:
            value = key_value(literal)
            if routing.gene:
                shard = (user_shard_of_gene(value, dim.shards) if routing.dimension ==
                         cfg.authoritative else merchant_shard_of_gene(value, dim.shards))
            else:
                shard = value % dim.shards
            by_shard.setdefault(shard, {}).setdefault(slot, []).append(literal)
    out = []
    for shard, values in by_shard.items():
        only = {slot: values.get(slot) or [b"NULL"] for slot in routing.slots}
        out.append(target_of(config, plan.db, routing.dimension, shard, only))
    if plan.home is not None and (len(out) != 1 or out[0].instance != plan.home):
        _refuse_away_from_home(plan, out)
    return out


def target_of(config: Config, db: str, dimension: str, shard: int,
            only: dict[int, list[bytes]] | None) -> Target:
    dim = config.databases[db].dimensions[dimension]
    return Target(shard, config.shard_instance(db, dimension, shard),
                  dim.database(shard).encode(), only)


