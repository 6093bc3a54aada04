"""What one config generation names: its logical databases, the kind of each table, and the
routes to their default backends (and the refusal when a statement names what it cannot)."""

from __future__ import annotations

import copy
import re
from dataclasses import replace

from config.model import Config, TableKind
from router import errors, syntax
from router.plan import ROUTE, Plan, refuse

SYSTEM_SCHEMAS = frozenset({"information_schema", "mysql", "performance_schema", "sys"})
SHARDED_KINDS = (TableKind.SHARDED, TableKind.BOUND)
_INFORMATION_SCHEMA = re.compile(r"(?i)information_schema")


class Catalog:
    """The logical names of ``config``: resolved to (database, table kind), or refused."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # The logical databases a user with a `databases:` list may name (`restricted`);
        # None: all of them.
        self.visible: frozenset[str] | None = None
        self.homes: dict[tuple[frozenset[str], str], str | None] = {}  # `home_database`
        self.kinds = {
            db: {name: table.kind for name, table in cfg.tables.items()}
            for db, cfg in config.databases.items()
        }
        self._sharded_words = re.compile(
            r"(?i)\b(" + "|".join(
                re.escape(name) for cfg in config.databases.values()
                for name, table in cfg.tables.items() if table.kind is not TableKind.UNSHARDED
            ) + r")\b") if any(self.kinds.values()) else None

    def home_database(self, databases: frozenset[str], instance: str) -> str | None:
        """For a user limited to ``databases``: a database of theirs on ``instance`` (a
        default database, else a shard database), for statements that select none. A
        pooled connection is left in whatever database its last user's statement selected,
        and what the statement does not qualify (a stored function, a sequence) is looked
        up there."""
        key = (databases, instance)
        if key not in self.homes:
            config = self.config
            named = [db for db in config.databases if db in databases]
            home = next((config.databases[db].default_database for db in named
                         if config.databases[db].default_instance == instance), None)
            if home is None:
                home = next((dim.database(shard) for db in named
                             for name, dim in config.databases[db].dimensions.items()
                             for shard in range(dim.shards)
                             if config.shard_instance(db, name, shard) == instance), None)
            self.homes[key] = home
        return self.homes[key]

    def restricted(self, databases: frozenset[str]) -> Catalog:
        """This catalog as a user limited to ``databases`` sees it: other logical databases
        are refused (1044) and left out of information_schema's logical view."""
        view = copy.copy(self)
        view.visible = databases
        return view

    def denied(self, db: str) -> Plan | None:
        """The refusal (1044) of logical database ``db`` when this view may not name it."""
        if self.visible is None or db in self.visible:
            return None
        return refuse(*errors.DB_ACCESS_DENIED, f"Access denied to database '{db}': this "
                      "user's databases (users.<name>.databases in DAL's config) do not "
                      "include it")

    def resolve(self, db: str | None, name: str,
                schema: str | None) -> tuple[str, TableKind] | Plan:
        """Table ``name`` of ``db`` (else of the session's ``schema``) as (database, kind);
        a refusal plan when no database is selected or the database is unknown."""
        if db is None:
            if schema is None:
                return refuse(*errors.NO_DATABASE, "No database selected")
            db = schema
        if db.lower() in SYSTEM_SCHEMAS:
            return db, TableKind.UNSHARDED
        if db not in self.config.databases:
            return refuse(*errors.BAD_DB, f"Unknown database '{db}'")
        denied = self.denied(db)
        if denied is not None:
            return denied
        return db, self.kinds.get(db, {}).get(name, TableKind.UNSHARDED)

    def default_route(self, schema: str | None, statement: str = "other") -> Plan:
        """A route to the backend that holds ``schema``'s default (unsharded) database."""
        if schema is not None and schema in self.config.databases:
            db = self.config.databases[schema]
            return Plan(ROUTE, instance=db.default_instance, schema=db.default_database,
                        statement=statement)
        first = next(iter(self.config.databases.values()))
        return Plan(ROUTE, instance=first.default_instance,
                    schema=schema if schema else first.default_database, statement=statement)

    def shard_zero(self, db: str) -> tuple[str, str]:
        """(instance, shard database) of the first shard of ``db``'s authoritative dimension,
        where the metadata of its sharded and bound tables is read."""
        cfg = self.config.databases[db]
        return (self.config.shard_instance(db, cfg.authoritative, 0),
                cfg.dimensions[cfg.authoritative].database(0))

    def unparsed(self, text: str, schema: str | None, reason: str | None,
                 pin: str | None = None) -> Plan:
        """A statement DAL cannot analyse: routed as written to the default database, unless
        it names a sharded or broadcast table or information_schema (refused)."""
        if self._sharded_words is not None and (match := self._sharded_words.search(text)):
            why = f": {reason}" if reason else ""
            return refuse(*errors.NOT_SUPPORTED, f"DAL cannot route this statement: it names "
                          f"sharded or broadcast table '{match.group(1)}' and DAL cannot "
                          f"analyse it{why}")
        if _INFORMATION_SCHEMA.search(text):  # only its logical view, which needs a parse
            return refuse(*errors.NOT_SUPPORTED, "DAL shows information_schema only through "
                          "statements it can parse (its logical view); this one it cannot")
        return replace(self.default_route(schema), pin=pin)

    def syntax_error(self, text: str, schema: str | None, position: int | None) -> Plan:
        """A statement DAL cannot parse: on unsharded tables the backend answers (its own
        1064); on sharded or broadcast ones DAL answers MariaDB's 1064 itself."""
        if ((self._sharded_words is not None and self._sharded_words.search(text))
                or _INFORMATION_SCHEMA.search(text)):  # its logical view needs a parse
            return refuse(*syntax.PARSE_ERROR, syntax.message(text, position))
        return self.default_route(schema)
