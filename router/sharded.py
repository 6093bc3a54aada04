"""Plans for statements on sharded tables, built from the fingerprint key on a cache miss.

The key (literals already replaced by slots) is parsed with sqlglot, the shard-key predicates
are found, and a `ShardedPlan` records which slot routes the statement and a template per
target kind. Execution never parses: it reads the slot's values, computes shards, and renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from config.model import Config, LogicalDatabase, Table, TableKind
from router import errors
from router.mariadb_sql import mariadb_sql
from router.plan import Plan, refuse
from router.template import Template, analysis_text, build_template

SHARD_MARK = "__dal_shard__"
_REPLACE = re.compile(r"(?is)\s*(?:/\*.*?\*/\s*)*(REPLACE)\b")
ROWS_MARK = "__dal_rows__"


@dataclass(frozen=True, slots=True)
class Routing:
    """How to find the target shards: the values of ``slots`` are keys of ``dimension``
    (or gene IDs if ``gene``). No slots: every shard of the dimension."""

    dimension: str
    slots: tuple[int, ...] = ()
    gene: bool = False
    broadcast: bool = False  # a write to broadcast tables: the default database and every shard


@dataclass(frozen=True, slots=True)
class InsertPlan:
    """INSERT/REPLACE rows, split by user shard, gene IDs generated where the column is left out."""

    head: Template        # "INSERT INTO <shard>.t (cols) VALUES " (+ generated column)
    tail: Template        # " ON DUPLICATE KEY UPDATE ..." or b""
    rows: tuple[tuple[Template, ...], ...]
    user_index: int       # position of the user key in each row
    merchant_index: int | None
    generated: bool       # DAL appends a generated gene id to each row
    gene_indexes: tuple[int, ...]  # explicit gene columns to check against the keys


@dataclass(frozen=True, slots=True)
class ShardedPlan:
    db: str
    routing: Routing
    template: Template           # the statement for one shard
    write: bool
    scatter: object | None = None        # router.rewrite.ScatterPlan for multi-shard reads
    scatter_template: Template | None = None
    insert: InsertPlan | None = None
    # A read that joins unsharded tables (of the default database) can run only on one shard
    # held by the default database's instance: that instance, and the unsharded tables' names.
    home: str | None = None
    unsharded: tuple[str, ...] = ()
    # An UPDATE/DELETE with LIMIT: on several shards each would apply the LIMIT of its own.
    limited: bool = False

    @property
    def logical(self) -> bytes:
        """The logical database name, as column definitions must show it."""
        return self.db.encode()


class Unroutable(Exception):
    """A statement on sharded tables that DAL refuses; the message says what to change.
    ``rule`` names the protection rule it enforces, if any."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule


def plan_sharded(config: Config, db: str, key: bytes, statement: str) -> Plan:
    """A plan for a statement on sharded tables of logical database ``db``."""
    from router.plan import SHARDED

    try:
        sharded = _analyse(config, db, key)
    except Unroutable as exc:
        from router.rules import tagged

        return tagged(refuse(*errors.NOT_SUPPORTED, str(exc)), exc.rule)
    return Plan(SHARDED, sharded=sharded, statement=statement,
                instance=None, schema=None)


def _analyse(config: Config, db: str, key: bytes) -> ShardedPlan:
    prepared = analysis_text(key)
    if prepared is None:
        raise Unroutable("DAL cannot analyse this statement: a '?' inside a comment")
    text, _ = prepared
    # sqlglot's MySQL dialect does not parse REPLACE: analyse it as the INSERT it routes like,
    # and write REPLACE back when the shard statement is generated.
    replace = _REPLACE.match(text)
    parsed = text
    if replace:  # "INSERT " has REPLACE's length, so positions in the tree stay true for text
        parsed = text[:replace.start(1)] + "INSERT " + text[replace.end(1):]
    try:
        tree = sqlglot.parse_one(parsed, dialect="mysql")
    except Exception:  # the statement parsed; its shape (literals as '?') did not
        raise Unroutable("DAL cannot analyse this statement on a sharded table: its shape "
                         "(literals replaced by placeholders) does not parse; write the "
                         "literal differently") from None
    cfg = config.databases[db]
    tables, unsharded = _tables(tree, cfg, db)
    if unsharded and not isinstance(tree, exp.Select):
        raise Unroutable(f"unsharded table '{unsharded[0].name}' cannot be written together "
                         "with sharded tables: it lives in the default database, not in the "
                         "shards")
    if all(conf.kind is TableKind.BROADCAST for _, conf in tables.values()):
        return _broadcast_write(tree, text, db, tables)
    if isinstance(tree, exp.Insert):
        return _insert(config, cfg, db, tree, text, tables, bool(replace))
    write = isinstance(tree, exp.Update | exp.Delete)
    if not isinstance(tree, exp.Select | exp.Update | exp.Delete | exp.Union):
        raise Unroutable(f"DAL does not route {tree.key.upper()} statements on sharded tables")
    _check_colocated(tree, cfg, tables)
    routing = _routing(tree, cfg, tables, write)
    if write:
        _check_key_unchanged(tree, cfg, tables)
    if unsharded:
        return _joined_with_unsharded(tree, text, cfg, db, tables, unsharded, routing)
    template = build_template(text, _qualify_spans(tree, tables))
    plan = ShardedPlan(db, routing, template, write,
                       limited=write and tree.args.get("limit") is not None)
    if not write:
        plan = _with_scatter(plan, tree, text, tables)
    return plan


def _joined_with_unsharded(tree: exp.Expression, text: str, cfg: LogicalDatabase, db: str,
                           tables: dict[str, tuple[str, Table]], unsharded: list[exp.Table],
                           routing: Routing) -> ShardedPlan:
    """A read joining unsharded tables: served on one shard when that shard lives on the
    default database's instance, with the unsharded tables qualified by the default database.
    Which shard is known only per execution (`router.targets` checks it)."""
    names = tuple(sorted({t.name for t in unsharded}))
    if not routing.slots:
        raise Unroutable(f"unsharded table '{names[0]}' can be joined with sharded tables only "
                         "on one shard: name the shard key (e.g. user_id = ...) so that the "
                         "statement reaches one shard")
    spans = _qualify_spans(tree, tables)
    qualifier = f"`{cfg.default_database}`."
    fixed = [(*_qualifier_span(table), qualifier) for table in unsharded]
    template = build_template(text, spans, fixed)
    return ShardedPlan(db, routing, template, False, home=cfg.default_instance,
                       unsharded=names)


# -- tables ------------------------------------------------------------------------------------

def cte_reference(table: exp.Table) -> bool:
    """True when ``table`` names a CTE in scope, as MariaDB reads it: the main query of a WITH
    sees all its CTEs, a CTE's body only those defined before it (and itself under
    RECURSIVE); elsewhere the name is a table (`UPDATE t ... WHERE id IN (WITH t AS (...)
    SELECT ...)` writes the table t, `WITH t AS (SELECT * FROM t)` reads it)."""
    if table.db:
        return False
    name = table.name.casefold()  # MariaDB compares CTE names without case
    child: exp.Expression = table
    node = table.parent
    inside: exp.Expression | None = None  # the With whose CTE body we came up through
    while node is not None:
        if isinstance(node, exp.With) and isinstance(child, exp.CTE):
            ctes = node.expressions
            seen = ctes[:ctes.index(child) + (1 if node.args.get("recursive") else 0)]
            if any(cte.alias_or_name.casefold() == name for cte in seen):
                return True
            inside = node
        else:
            with_ = node.args.get("with_")
            if (with_ is not None and with_ is not inside
                    and any(cte.alias_or_name.casefold() == name
                            for cte in with_.expressions)):
                return True
        child, node = node, node.parent
    return False


def shadowing_cte(tree: exp.Expression) -> str | None:
    """The name of a CTE that the statement also uses as a table outside its scope (`UPDATE
    regions ... WHERE id IN (WITH regions AS (...) SELECT id FROM regions)`): DAL would
    qualify one and not the other, so such statements are refused; None when there is none."""
    ctes = {cte.alias_or_name.casefold() for cte in tree.find_all(exp.CTE)}
    if not ctes:
        return None
    return next((table.name for table in tree.find_all(exp.Table)
                 if table.name.casefold() in ctes and not cte_reference(table)), None)


def _named_tables(tree: exp.Expression, db: str) -> list[exp.Table]:
    """The tables a statement names (not its CTEs), all of logical database ``db``."""
    if (shadow := shadowing_cte(tree)) is not None:
        raise Unroutable(f"the statement names '{shadow}' both as a table and as a CTE; "
                         "name the CTE otherwise")
    out = []
    for table in tree.find_all(exp.Table):
        if cte_reference(table):
            continue
        if table.db and table.db != db:
            raise Unroutable(f"DAL cannot join tables of database '{table.db}' with sharded "
                             f"tables of '{db}'")
        out.append(table)
    return out


def _tables(tree: exp.Expression, cfg: LogicalDatabase,
            db: str) -> tuple[dict[str, tuple[str, Table]], list[exp.Table]]:
    """alias-or-name -> (table name, config) for every sharded, bound or broadcast table, and
    the unsharded tables (those of the default database) the statement names."""
    found: dict[str, tuple[str, Table]] = {}
    unsharded = []
    for table in _named_tables(tree, db):
        conf = cfg.tables.get(table.name)
        if conf is None or conf.kind is TableKind.UNSHARDED:
            unsharded.append(table)
        else:
            found[table.alias_or_name] = (table.name, conf)
    return found, unsharded


def _root(name: str, conf: Table) -> str:
    return conf.bound_to or name


def _check_colocated(tree: exp.Expression, cfg: LogicalDatabase,
                     tables: dict[str, tuple[str, Table]]) -> None:
    sharded = {a: v for a, v in tables.items() if v[1].kind is not TableKind.BROADCAST}
    roots = {_root(n, c) for n, c in sharded.values()}
    if len(roots) > 1:
        raise Unroutable(f"tables {sorted(n for n, _ in sharded.values())} are sharded "
                         "independently; DAL joins only tables bound to each other")
    if len(sharded) < 2:
        return
    linked = set()
    for eq in tree.find_all(exp.EQ):
        left, right = eq.this, eq.expression
        if isinstance(left, exp.Column) and isinstance(right, exp.Column):
            a, b = _column_kind(left, cfg, sharded), _column_kind(right, cfg, sharded)
            if a and b and a[1] == b[1] and a[0] != b[0]:
                linked |= {a[0], b[0]}
    if linked != set(sharded):
        raise Unroutable("a join of sharded tables must equate their shard keys (user_id = "
                         "user_id, or order_id = id); otherwise rows on different shards "
                         "would be missed")


def _column_kind(col: exp.Column, cfg: LogicalDatabase,
                 tables: dict[str, tuple[str, Table]]) -> tuple[str, str] | None:
    """(table alias, kind) where kind is 'key:<dimension>' or 'gene', for a routing column."""
    candidates = [col.table] if col.table else list(tables)
    for alias in candidates:
        if alias not in tables:
            continue
        conf = tables[alias][1]
        for dim_name, dim in cfg.dimensions.items():
            keys = conf.keys if conf.keys is not None else {d: x.key
                                                             for d, x in cfg.dimensions.items()}
            if keys.get(dim_name) == col.name:
                return alias, f"key:{dim_name}"
            _ = dim
        if col.name in conf.genes:
            return alias, "gene"
    return None


# -- routing -----------------------------------------------------------------------------------

def _conjuncts(where: exp.Expression | None) -> list[exp.Expression]:
    if where is None:
        return []
    node = where.this if isinstance(where, exp.Where) else where
    out = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, exp.And):
            stack += [item.this, item.expression]
        elif isinstance(item, exp.Paren):
            stack.append(item.this)
        else:
            out.append(item)
    return out


def _slot(node: exp.Expression) -> int | None:
    if isinstance(node, exp.Placeholder) and node.name.startswith("_"):
        return int(node.name[1:])
    return None


def _predicate(item: exp.Expression, cfg: LogicalDatabase,
               tables: dict[str, tuple[str, Table]]) -> tuple[str, tuple[int, ...]] | None:
    """(column kind, slots) for ``col = ?``, ``? = col``, ``col IN (?)`` and ORs of those on
    one column kind."""
    if isinstance(item, exp.EQ):
        for col, other in ((item.this, item.expression), (item.expression, item.this)):
            if isinstance(col, exp.Column) and (slot := _slot(other)) is not None:
                kind = _column_kind(col, cfg, tables)
                if kind:
                    return kind[1], (slot,)
        return None
    if isinstance(item, exp.In) and isinstance(item.this, exp.Column) and item.expressions:
        slots = [_slot(e) for e in item.expressions]
        kind = _column_kind(item.this, cfg, tables)
        if kind and all(s is not None for s in slots):
            return kind[1], tuple(s for s in slots if s is not None)
        return None
    if isinstance(item, exp.Or):  # walked with a stack: a chain of 5,000 ORs nests as deep
        kind, slots, stack = None, [], [item]
        while stack:
            node = _unparen(stack.pop())
            if isinstance(node, exp.Or):
                stack += (node.expression, node.this)  # the left side first, as written
                continue
            pred = _predicate(node, cfg, tables)
            if pred is None or kind not in (None, pred[0]):
                return None
            kind = pred[0]
            slots += pred[1]
        return kind, tuple(slots)  # type: ignore[return-value]
    return None


def _unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _routing(tree: exp.Expression, cfg: LogicalDatabase,
             tables: dict[str, tuple[str, Table]], write: bool) -> Routing:
    sharded = {a: v for a, v in tables.items() if v[1].kind is not TableKind.BROADCAST}
    found: dict[str, tuple[int, ...]] = {}
    where = tree.args.get("where")
    for item in _conjuncts(where):
        pred = _predicate(item, cfg, sharded)
        if pred and pred[0] not in found:
            found[pred[0]] = pred[1]
    authoritative = cfg.authoritative
    if f"key:{authoritative}" in found:
        return Routing(authoritative, found[f"key:{authoritative}"])
    if "gene" in found:
        return Routing(authoritative, found["gene"], gene=True)
    for dim in cfg.dimensions:
        if f"key:{dim}" in found:
            if write:
                raise Unroutable(f"a write routed only by the {dim} key "
                                 f"({cfg.dimensions[dim].key}) is refused: the {dim} shards are "
                                 f"a read copy. Add the {authoritative} key "
                                 f"({cfg.dimensions[authoritative].key}) or the order id")
            return Routing(dim, found[f"key:{dim}"])
    if write and not cfg.allow_scatter_writes:
        raise Unroutable("UPDATE/DELETE on a sharded table without its shard key would write "
                         f"every shard (a scatter write), which is not allowed; add "
                         f"{cfg.dimensions[authoritative].key} = ... or the order id to WHERE, "
                         "or set allow_scatter_writes for this database", rule="scatter_write")
    return Routing(authoritative)


def _check_key_unchanged(tree: exp.Expression, cfg: LogicalDatabase,
                         tables: dict[str, tuple[str, Table]]) -> None:
    if not isinstance(tree, exp.Update):
        return
    for assignment in tree.expressions:
        col = assignment.this
        if isinstance(col, exp.Column) and _column_kind(col, cfg, tables):
            raise Unroutable(f"changing shard-key column '{col.name}' would move the row to "
                             "another shard; DAL refuses it. Insert a new row and delete the "
                             "old one instead")


def _qualify_spans(tree: exp.Expression,
                   tables: dict[str, tuple[str, Table]]) -> list[tuple[int, int]]:
    spans = []
    for table in tree.find_all(exp.Table):
        if table.alias_or_name not in tables and table.name not in {n for n, _ in tables.values()}:
            continue
        spans.append(_qualifier_span(table))
    return spans


def _qualifier_span(table: exp.Table) -> tuple[int, int]:
    """Where a table's database qualifier goes in the text: the span of the existing one
    including its dot, or an empty span before the table name."""
    meta = table.this.meta
    if "start" not in meta:
        raise Unroutable("DAL cannot locate a table name in this statement")
    if table.args.get("db") is not None:
        return table.args["db"].meta["start"], meta["start"]
    return meta["start"], meta["start"]


def _with_scatter(plan: ShardedPlan, tree: exp.Expression, text: str,
                  tables: dict[str, tuple[str, Table]]) -> ShardedPlan:
    """Attach the merge plan a multi-shard execution of this read needs."""
    from dataclasses import replace

    try:
        from router.rewrite import ScatterUnsupported, plan_scatter
    except ImportError:  # pragma: no cover - during development
        return plan
    try:
        broadcast = {alias for alias, (_, conf) in tables.items()
                     if conf.kind is TableKind.BROADCAST}
        scatter = plan_scatter(tree.copy(), text, broadcast=broadcast)
    except ScatterUnsupported as exc:
        if not plan.routing.slots:
            raise Unroutable(f"DAL cannot merge this statement across shards: {exc}") from None
        return replace(plan, scatter=exc)  # a multi-shard execution will be refused then
    shard_tree = sqlglot.parse_one(scatter.shard_sql, dialect="mysql")
    template = build_template(scatter.shard_sql, _qualify_spans(shard_tree, tables))
    return replace(plan, scatter=scatter, scatter_template=template)


def _broadcast_write(tree: exp.Expression, text: str, db: str,
                     tables: dict[str, tuple[str, Table]]) -> ShardedPlan:
    if not isinstance(tree, exp.Insert | exp.Update | exp.Delete):
        raise Unroutable(f"DAL does not run {tree.key.upper()} on broadcast tables")
    if isinstance(tree, exp.Insert) and not isinstance(tree.expression, exp.Values):
        raise Unroutable("INSERT ... SELECT into a broadcast table is not supported")
    spans = _qualify_spans(tree, tables)
    return ShardedPlan(db, Routing("", broadcast=True), build_template(text, spans), True)


# -- INSERT ------------------------------------------------------------------------------------

def _insert(config: Config, cfg: LogicalDatabase, db: str, tree: exp.Insert, text: str,
            tables: dict[str, tuple[str, Table]], replace: bool = False) -> ShardedPlan:
    schema = tree.this
    if not isinstance(schema, exp.Schema) or not schema.expressions:
        raise Unroutable("INSERT on a sharded table must list its columns")
    target = schema.this
    name, conf = tables[target.alias_or_name]
    values = tree.expression
    if not isinstance(values, exp.Values):
        raise Unroutable("INSERT ... SELECT on a sharded table is not supported")
    columns = [c.name for c in schema.expressions]
    if conf.kind is TableKind.BROADCAST:
        raise Unroutable(f"writes to broadcast table '{name}' are not supported yet")
    auth = cfg.authoritative
    keys = conf.keys if conf.keys is not None else {d: x.key for d, x in cfg.dimensions.items()}
    user_col = keys.get(auth)
    if user_col not in columns:
        raise Unroutable(f"INSERT into '{name}' must give {user_col}: it decides the shard")
    merchant_dims = [d for d in keys if d != auth]
    merchant_col = keys[merchant_dims[0]] if merchant_dims else None
    generated = conf.generated is not None and conf.generated not in columns
    if generated and merchant_col is not None and merchant_col not in columns:
        raise Unroutable(f"INSERT into '{name}' must give {merchant_col}: the generated id "
                         "carries its shard")
    rows = []
    for row in values.expressions:
        cells = row.expressions if isinstance(row, exp.Tuple) else [row]
        if len(cells) != len(columns):
            raise Unroutable("INSERT row has a different number of values than columns")
        rows.append(tuple(build_template(mariadb_sql(cell), []) for cell in cells))
    for row in rows:
        for index in (columns.index(user_col),
                      columns.index(merchant_col) if merchant_col in columns else None):
            if index is not None and not (len(row[index].parts) == 1
                                          and isinstance(row[index].parts[0], int)):
                raise Unroutable(f"the value of {columns[index]} must be a literal number")
    head_tree = tree.copy()
    head_schema = head_tree.this
    head_schema.this.set("db", exp.to_identifier(SHARD_MARK))
    if generated:
        head_schema.append("expressions", exp.to_identifier(conf.generated))
    head_tree.set("expression", exp.Values(expressions=[exp.Tuple(
        expressions=[exp.column(ROWS_MARK)])]))
    conflict = head_tree.args.get("conflict")
    head_tree.set("conflict", None)
    head_sql = mariadb_sql(head_tree)
    head_text = head_sql.split(f"({ROWS_MARK})")[0]
    if replace:
        head_text = "REPLACE" + head_text[len("INSERT"):]
    mark = head_text.index(SHARD_MARK)
    head_text = head_text[:mark] + head_text[mark + len(SHARD_MARK) + 1:]
    head = build_template(head_text, [(mark, mark)])
    tail = build_template(" " + mariadb_sql(conflict) if conflict is not None else "", [])
    gene_indexes = tuple(columns.index(g) for g in conf.genes if g in columns)
    insert = InsertPlan(head, tail, tuple(rows), columns.index(user_col),
                        columns.index(merchant_col) if merchant_col in columns else None,
                        generated, gene_indexes)
    return ShardedPlan(db, Routing(auth), head, True, insert=insert)
