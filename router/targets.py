"""Target shards of a sharded plan, from the values in its routing slots."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from config.model import Config
from router.fingerprint import MAX_TRAILING_DIGITS, unquote_string
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


# What MariaDB reads as a number, written out in full: a decimal literal (also 5.0 and 1e1) and,
# inside a string, the same between spaces with a sign. Anything else (`1_000`, which Python's
# int() would take, `5abc`, which MariaDB truncates to 5 with a warning) is refused, not guessed.
_DECIMAL = rb"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER = re.compile(rb"-?" + _DECIMAL)  # '-': bound parameters render with their sign
_STRING_NUMBER = re.compile(rb"[ \t\n\r]*[+-]?" + _DECIMAL + rb"[ \t\n\r]*")
_HEX = re.compile(rb"0x([0-9a-fA-F]+)")  # X'10' is a string to MariaDB here: it matches id 0
_BITS = re.compile(rb"0b([01]+)|[bB]'([01]*)'")
_MAX_DIGITS = 40  # past BIGINT UNSIGNED's 20 digits no row can match; bounds Decimal's work
_MAX_LITERAL = 100  # longer spellings are refused before any conversion (int() stops at 4,300)


def key_value(literal: bytes) -> int:
    """A shard-key literal as the integer MariaDB compares the key with: a number whose value
    is whole (``5``, ``5.0``, ``1e1``), a ``0x`` or bit literal, or a string holding such a
    number; `Refusal` for anything else and for negative values."""
    quoted = literal[:1] in (b"'", b'"')
    value = _whole_number(unquote_string(literal) if quoted else literal, quoted)
    if value is None:
        raise Refusal(BAD_VALUE, f"shard key value {literal.decode(errors='replace')} is not "
                      "an integer")
    if value < 0:
        raise Refusal(BAD_VALUE, f"shard key value {value} is negative")
    return value


def _whole_number(text: bytes, quoted: bool) -> int | None:
    if len(text) > _MAX_LITERAL:
        return None
    if text.isdigit():
        return int(text)
    if not quoted:
        for pattern, base in ((_HEX, 16), (_BITS, 2)):
            match = pattern.fullmatch(text)
            if match is not None:
                digits = next((g for g in match.groups() if g is not None), b"")
                return int(digits, base) if digits else 0  # b'' is 0
    if (_STRING_NUMBER if quoted else _NUMBER).fullmatch(text) is None:
        return None
    try:
        if not quoted and (b"e" in text or b"E" in text):
            # An exponent makes a DOUBLE literal: 72057594037927941e0 is ...936 to MariaDB.
            double = float(text)
            return int(double) if double.is_integer() else None
        number = Decimal(text.strip().decode())  # decimals and strings compare exactly
        if number.adjusted() > _MAX_DIGITS or number != number.to_integral_value():
            return None
        return int(number)
    except (ValueError, ArithmeticError):  # an exponent too large for a double or a Decimal
        return None


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
    return target_for(config, plan, int(value)
                      if value.isdigit() and len(value) < MAX_TRAILING_DIGITS
                      else key_value(value))


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


def targets(config: Config, plan: ShardedPlan, slots: list[list[bytes]],
            shard_of: Callable[[int, int], int | None] | None = None) -> list[Target]:
    """The shards a statement reaches, each with its own share of IN-list values.
    ``shard_of(slot, value)``: a shard found elsewhere for a routing value (a legacy id's,
    router/migration.py), or None to compute it as usual."""
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
            found = shard_of(slot, value) if shard_of is not None else None
            if found is not None:
                shard = found
            elif routing.gene:
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


