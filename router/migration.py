"""Plans for statements on the tables of a live migration (issue 21, docs/migration.md).

A logical database with a ``migration`` section keeps some of its sharded tables in an
unsharded legacy database first. `Router.analyse` hands every statement that names one of them
here, with the plan the sharded planner made; the result is a plan of kind ``migrated`` whose
tree depends on the database's phase (`router.engine.migrated` builds it):

- reads: legacy and dual_legacy go to the legacy database; shadow too, a sample compared with
  the shards; dual_sharded and sharded read the shards (legacy ids through the lookup).
- writes: legacy writes go to legacy; dual phases run a `DualWrite`; sharded writes run on the
  shards. Every write passes the phase switch's gate (held while a switch drains).

Such plans are never memoised outside the plan cache (express lane, prepared fast routes), and
the cache is cleared on every phase change, so no tree of an old phase serves a new one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import sqlglot
from sqlglot import exp

from config.model import Config, LogicalDatabase
from router import errors
from router.plan import MIGRATED, REFUSE, ROUTE, SHARDED, Plan, refuse
from router.template import Template, analysis_text, build_template

PHASES = ("legacy", "dual_legacy", "shadow", "dual_sharded", "sharded")
LEGACY_AUTHORITATIVE = frozenset({"legacy", "dual_legacy", "shadow"})
UNKNOWN_PHASE = (1205, "HY000")
_REPLACE = re.compile(r"(?is)\s*(?:/\*.*?\*/\s*)*(REPLACE)\b")


@dataclass(frozen=True, slots=True)
class MigrationSpec:
    """What a migrated statement's primitives need beyond the sharded plan.

    ``legacy``: the statement for the legacy database (migrated tables qualified by it);
    ``select``: for an UPDATE/DELETE, ``SELECT <id, keys> FROM <db>.t WHERE <its WHERE>``
    (rendered for legacy or a shard, run FOR UPDATE); ``lookups``: routing slots that hold ids
    of a migrated table, with the table whose legacy ids they are (for the lookup)."""

    db: str
    phase: str
    source_instance: str
    source_database: str
    table: str | None
    write: bool
    insert: bool
    legacy: Template
    qualified: bool
    select: Template | None
    columns: tuple[str, ...]       # id, then each dimension's key (authoritative first)
    dimensions: tuple[str, ...]    # authoritative first
    lookups: tuple[tuple[int, str], ...]
    shadow_rate: float
    direct_merchant: bool
    id_index: int | None = None    # an INSERT that gives its own id: the id's position in a row

    @property
    def legacy_db(self) -> bytes:
        """The legacy database's name, as templates render it."""
        return self.source_database.encode()


def migrated_tables(config: Config, tree: exp.Expression,
                    schema: str | None) -> tuple[str, set[str]] | None:
    """(logical database, the migrated tables ``tree`` names) when it names any."""
    for table in tree.find_all(exp.Table):
        db = table.db or schema
        cfg = config.databases.get(db) if db else None
        if cfg is not None and cfg.migration is not None and table.name in cfg.migration.tables:
            names = {t.name for t in tree.find_all(exp.Table)
                     if (t.db or schema) == db and t.name in cfg.migration.tables}
            return db, names  # type: ignore[return-value]
    return None


def plan_migrated(config: Config, tree: exp.Expression, key: bytes, schema: str | None,
                  plan: Plan, phases: dict[str, str]) -> Plan:
    """The plan of a statement on migrated tables (``plan``: the sharded planner's; ``key``:
    its fingerprint key) in its database's phase (``phases``); ``plan`` for other ones."""
    from router.engine.migrated import build_migrated

    found = migrated_tables(config, tree, schema)
    if found is None or plan.rule is not None or plan.kind not in (SHARDED, REFUSE):
        return plan
    db, names = found
    phase = phases.get(db)
    if phase is None:
        return refuse(*UNKNOWN_PHASE, f"the migration phase of '{db}' is not known yet (DAL "
                      "reads it from dal_meta.migration_phase on the default instance); retry")
    prepared = analysis_text(key)
    if prepared is None:
        return refuse(*errors.NOT_SUPPORTED, "DAL cannot analyse this statement on a migrated "
                      "table: a '?' inside a comment")
    text = prepared[0]
    replacing = _REPLACE.match(text)
    try:
        tree = sqlglot.parse_one(text if not replacing else text[:replacing.start(1)] + "INSERT"
                                 + text[replacing.end(1):], dialect="mysql")
    except Exception:
        return plan
    cfg = config.databases[db]
    write = isinstance(tree, exp.Insert | exp.Update | exp.Delete)
    sharded_ok = plan.kind == SHARDED
    if not sharded_ok and (phase not in LEGACY_AUTHORITATIVE or (
            write and phase != "legacy" and isinstance(tree, exp.Insert))):
        return plan  # the shards are involved and the sharded planner refused: its refusal
    mig = cfg.migration
    assert mig is not None
    migrated = replace(plan, kind=MIGRATED, phase=phase, instance=mig.source_instance,
                       schema=mig.source_database, error=None,
                       sharded=plan.sharded if sharded_ok else None, root=None)
    try:
        spec = _spec(cfg, db, tree, text, names, write, phase)
        return replace(migrated, root=build_migrated(migrated, spec))
    except ValueError as exc:
        return refuse(*errors.NOT_SUPPORTED, f"DAL cannot run this statement during the "
                      f"migration of '{db}' (phase {phase}): {exc}")


def _spec(cfg: LogicalDatabase, db: str, tree: exp.Expression, text: str, names: set[str],
          write: bool, phase: str) -> MigrationSpec:
    mig = cfg.migration
    assert mig is not None
    spans, qualified = _spans(tree, db, names)
    legacy = build_template(text, [], [(s, e, f"`{mig.source_database}`.") for s, e in spans])
    table = None
    select = None
    dimensions = (cfg.authoritative, *(d for d in cfg.dimensions if d != cfg.authoritative))
    columns = ("id", *(cfg.dimensions[d].key for d in dimensions))
    if write and phase in ("dual_legacy", "shadow", "dual_sharded"):
        written = {t.name for t in tree.find_all(exp.Table) if t.name in names}
        every = sorted({t.name for t in tree.find_all(exp.Table)})
        if len(written) != 1 or len(list(tree.find_all(exp.Table))) != 1:
            raise ValueError(f"this write names {', '.join(every)}; a write during a dual "
                             "phase names exactly one table, a migrated one, since DAL "
                             "mirrors its rows by id (write each table in a statement of its "
                             "own, in one transaction if they belong together)")
        table = written.pop()
    if isinstance(tree, exp.Update | exp.Delete) and table is not None:
        select = _select_template(tree, columns)
    return MigrationSpec(db, phase, mig.source_instance, mig.source_database, table, write,
                         isinstance(tree, exp.Insert), legacy, qualified, select, columns,
                         dimensions,
                         _lookups(cfg, tree, names), mig.shadow_rate,
                         mig.merchant_copy == "direct", _id_index(tree))


def _id_index(tree: exp.Expression) -> int | None:
    """The position of ``id`` among the columns an INSERT lists, if it lists it."""
    schema = tree.this if isinstance(tree, exp.Insert) else None
    if not isinstance(schema, exp.Schema):
        return None
    names = [c.name for c in schema.expressions]
    return names.index("id") if "id" in names else None


def _spans(tree: exp.Expression, db: str,
           names: set[str]) -> tuple[list[tuple[int, int]], bool]:
    """Where each migrated table's qualifier goes (its existing one included), and whether
    any was qualified by the client."""
    spans, qualified = [], False
    for table in tree.find_all(exp.Table):
        if table.name not in names or (table.db and table.db != db):
            continue
        start = table.this.meta.get("start")
        if start is None:
            raise ValueError("a table name DAL cannot locate in the statement")
        if table.args.get("db") is not None:
            spans.append((table.args["db"].meta["start"], start))
            qualified = True
        else:
            spans.append((start, start))
    return spans, qualified


def _select_template(tree: exp.Expression, columns: tuple[str, ...]) -> Template:
    """``SELECT <columns> FROM <shard db>.t WHERE ...`` of an UPDATE/DELETE of one table."""
    target = tree.this if isinstance(tree, exp.Update) else (tree.this or tree.args["tables"][0])
    plain = target.copy()
    plain.set("db", None)
    select = exp.select(*columns).from_(plain)
    where = tree.args.get("where")
    if where is not None:
        select = select.where(where.this.copy())
    for clause in ("order", "limit"):
        if tree.args.get(clause) is not None:
            select.set(clause, tree.args[clause].copy())
    text = select.sql(dialect="mysql")
    parsed = sqlglot.parse_one(text, dialect="mysql")
    spans = [(t.this.meta["start"], t.this.meta["start"]) for t in parsed.find_all(exp.Table)]
    return build_template(text, spans)


def _lookups(cfg: LogicalDatabase, tree: exp.Expression,
             names: set[str]) -> tuple[tuple[int, str], ...]:
    """Slots compared (=, IN) with an id column of a migrated table, and the table whose
    legacy ids they are (``order_items.order_id`` holds ids of ``orders``)."""
    aliases = {t.alias_or_name: t.name for t in tree.find_all(exp.Table) if t.name in names}
    where = tree.args.get("where")
    out: dict[int, str] = {}
    for node in where.find_all(exp.EQ, exp.In) if where is not None else ():
        col = node.this if isinstance(node.this, exp.Column) else node.args.get("expression")
        if not isinstance(col, exp.Column):
            continue
        owner = _owner(col, aliases)
        conf = cfg.tables.get(owner) if owner else None
        if conf is None or col.name not in conf.genes:
            continue
        tbl = owner if col.name == conf.generated else (conf.bound_to or owner)
        values = node.expressions if isinstance(node, exp.In) else [
            node.expression if node.this is col else node.this]
        for value in values:
            if isinstance(value, exp.Placeholder) and value.name.startswith("_"):
                out[int(value.name[1:])] = tbl  # type: ignore[assignment]
    return tuple(sorted(out.items()))


def _owner(col: exp.Column, aliases: dict[str, str]) -> str | None:
    if col.table:
        return aliases.get(col.table)
    return next(iter(aliases.values())) if len(set(aliases.values())) == 1 else None


def legacy_route(plan: Plan) -> Plan:
    """The route of a migrated read to the legacy database, the client's bytes unchanged."""
    return Plan(ROUTE, instance=plan.instance, schema=plan.schema, statement=plan.statement,
                tables=plan.tables, phase=plan.phase)
