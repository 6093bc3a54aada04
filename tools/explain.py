"""Show how DAL would run a statement, without a running DAL and without touching a backend.

Prints the statement's plan as EXPLAIN DAL does: its tree of primitives, one line per
primitive indented by depth (Route, Scatter, InsertSplit, Broadcast, and the merges above a
Scatter: Aggregate, Distinct, MergeSort, Limit, Project), with the backends it reaches and
the SQL each shard would get, rendered with the statement's own literals. Scatters over many
shards show the SQL of the first shard; the others differ only in their shard database.

The plan comes from a router built from --config, for a session in --database (default: the
config's first logical database) as an application user, or as an admin with --admin.

Example:
  dal explain "SELECT * FROM orders ORDER BY created_at DESC LIMIT 20"
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", help="the statement to explain (quote it for the shell)")
    parser.add_argument("--database", "-D", default=None,
                        help="the session's database (default: the config's first)")
    parser.add_argument("--admin", action="store_true",
                        help="plan as an admin user (DDL on unsharded tables, admin statements)")


def run(args: argparse.Namespace) -> int:
    from config.loader import load_config
    from router.explain import HEADER, explain
    from router.planner import Router

    config = load_config(args.config)
    database = args.database or next(iter(config.databases), None)
    rows = explain(Router(config), config, args.sql.encode("utf-8", "surrogateescape"),
                   database, args.admin)
    sys.stdout.write(render(HEADER, rows))
    return 0


def render(header: list[str], rows: list[list[str | None]]) -> str:
    """Rows as aligned columns (the last one, the SQL, left as long as it is)."""
    table = [header, *[["" if v is None else v for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = ["  ".join([*(row[i].ljust(widths[i]) for i in range(len(widths))), row[-1]])
             .rstrip() for row in table]
    return "\n".join(lines) + "\n"
