"""Live migration of an unsharded legacy database into the shards (docs/migration.md).

  dal migrate phase NAME   switch a database's phase, one step along legacy <-> dual_legacy
                           <-> shadow <-> dual_sharded <-> sharded; completes when every live
                           DAL process acknowledged it, else puts the old phase back (exit 1)
  dal migrate status       phase, switch state, backfill progress, repair-log depth, and each
                           DAL process with the version and phase it acknowledged

Every subcommand talks to the running DAL fleet only through the control tables in dal_meta on
the default instance, never by restarting it. Further subcommands (backfill, verify, demo)
register themselves in `SUBCOMMANDS` from their own modules (`EXTENSIONS`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import NamedTuple

from config.loader import load_config
from dal.migration import control
from dal.migration.link import ControlLink
from dal.migration.status import DB_HEADER, PROCESS_HEADER, add_outboxes, status_rows
from dal.migration.switch import SwitchError, control_instance, switch


class Subcommand(NamedTuple):
    """One `dal migrate` subcommand: its help line, its arguments and its run (the exit
    status); ``args.config`` names the config file."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


SUBCOMMANDS: dict[str, Subcommand] = {}
# Modules that add their subcommands to SUBCOMMANDS when imported (absent ones are skipped).
EXTENSIONS = ("tools.migrate_backfill", "tools.migrate_verify", "tools.migrate_demo",
              "tools.migrate_bench")


def _database(args: argparse.Namespace, config) -> str:
    migrated = [db for db, cfg in config.databases.items() if cfg.migration is not None]
    if args.db is not None:
        return args.db
    if len(migrated) != 1:
        names = ", ".join(migrated) or "none"
        raise SwitchError(f"name the database with --db (migrated: {names})")
    return migrated[0]


def _phase_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=control.PHASES, help="the phase to switch to")
    parser.add_argument("--db", help="the logical database (default: the only migrated one)")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for every DAL process at each step (default 30)")


def _run_phase(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        switch(config, _database(args, config), args.name, args.timeout, print)
    except SwitchError as exc:
        print(f"dal migrate phase: {exc}", file=sys.stderr)
        return 1
    return 0


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="only this logical database")


def _run_status(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    link = ControlLink(control_instance(config))
    try:
        dbs, procs = link.run(lambda cur: status_rows(config, cur))
        add_outboxes(config, link, dbs)
    finally:
        link.close()
    if args.db is not None:
        dbs = [row for row in dbs if row[0] == args.db]
        procs = [row for row in procs if row[0] == args.db]
    _table(DB_HEADER, dbs)
    print()
    _table(PROCESS_HEADER, procs)
    return 0


def _table(header: list[str], rows: list[list[object]]) -> None:
    cells = [header, *[[str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)))


SUBCOMMANDS["phase"] = Subcommand("switch the phase (one step), fleet-safely", _phase_arguments,
                                  _run_phase)
SUBCOMMANDS["status"] = Subcommand("phase, backfill, repair log and DAL processes",
                                   _status_arguments, _run_status)


def load_extensions() -> None:
    """Import the modules that register further subcommands."""
    for name in EXTENSIONS:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `dal migrate`'s subcommands."""
    load_extensions()
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, command in SUBCOMMANDS.items():
        child = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(child)
        child.set_defaults(_migrate=command.run)
        child.add_argument("--config", default=argparse.SUPPRESS,
                           help="the YAML config file (also accepted before the action)")


def run(args: argparse.Namespace) -> int:
    """Run one `dal migrate` subcommand."""
    return int(args._migrate(args) or 0)
