"""The `dal` command line: one command, one subcommand per job.

Each subcommand lives in its own module, which exposes ``add_arguments(parser)`` and
``run(args) -> int``; the module's docstring is the subcommand's ``--help`` text. Every
module is imported to build the parser (``dal --help`` takes about 0.5 s); the proxy itself
(sqlglot, uvloop, the server) is loaded only when ``serve`` runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from config.loader import DEFAULT_CONFIG, ConfigError

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("dal.serve", "run the proxy in the foreground (Ctrl-C or SIGTERM stops it)"),
    "localdb": ("tools.localdb",
                "start, stop or inspect the local MariaDB instances (up|down|status)"),
    "schema": ("tools.schema", "create the shard databases and apply the schema to every shard"),
    "certs": ("tools.certs", "create a self-signed TLS certificate for local use if missing"),
    "bench": ("tools.bench", "benchmark DAL against a direct connection, side by side in one run"),
    "sync": ("tools.sync", "follow the user shards' binlogs and keep the merchant copy equal"),
    "verify": ("tools.verify", "compare the user and merchant copies; --repair fixes the copy"),
    "xa": ("dal.xa_recover", "resolve XA branches left prepared by a crash (xa recover "
           "[--apply])"),
    "top": ("tools.top", "a live terminal view of a running DAL: pools, top statements, breakers"),
    "migrate": ("tools.migrate", "move a live unsharded database into the shards: phase, "
                "status, backfill, verify, demo"),
    "explain": ("tools.explain", "show a statement's plan (its tree of primitives, the shards and "
                "the SQL each gets) without a running DAL"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="dal",
        description="DAL: a MySQL-protocol sharding proxy. Applications connect to it as to one "
        "MySQL server; it routes each statement to the shards and merges the results.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or help_text).strip()
        child = sub.add_parser(
            name, help=help_text, description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        child.add_argument(
            "--config",
            default=str(DEFAULT_CONFIG),
            help="the YAML config file (default: %(default)s)",
        )
        module.add_arguments(child)
        child.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dal` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._module.run(args) or 0)
    except ConfigError as exc:  # a bad config file, for every subcommand alike: status 2
        action = getattr(args, "action", None)
        print(f"dal {args.command}{f' {action}' if action else ''}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
