"""`dal xa recover [--apply]`: resolve XA branches a stopped DAL left prepared (mode xa).

Runs `XA RECOVER` on every backend instance and looks only at XIDs whose gtrid starts with
this DAL's `transactions.xid_prefix`. A branch whose gtrid has a commit decision in
`transactions.decision_log` is committed; any other is rolled back (no decision was logged,
so no branch was committed). Without --apply it prints what it would do and changes nothing.
`dal serve` runs it (with --apply) at start-up in mode xa. Run it while this DAL instance is
stopped: a live DAL may be between PREPARE and its decision.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable

import pymysql

from config.loader import load_config
from config.model import Config, Instance
from dal.xa import xid
from dal.xa_log import DecisionLog, compact, pending_decisions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["recover"], help="recover: resolve in-doubt branches")
    parser.add_argument("--apply", action="store_true",
                        help="commit or roll back the branches (default: only print the plan)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    counts = recover(config, apply=args.apply)
    return 1 if counts["unreachable"] or counts["errors"] else 0


def _connect(instance: Instance) -> pymysql.connections.Connection:
    ssl = None
    if instance.tls is not None:
        ssl = {k: v for k, v in (("ca", instance.tls.ca), ("cert", instance.tls.cert),
                                 ("key", instance.tls.key)) if v} or {"check_hostname": False}
    return pymysql.connect(host=instance.host, port=instance.port, user=instance.user,
                           password=instance.password, autocommit=True, connect_timeout=5,
                           read_timeout=30, ssl=ssl)


def in_doubt(conn: pymysql.connections.Connection, prefix: str) -> list[tuple[str, str]]:
    """(gtrid, bqual) of the prepared branches on one instance whose gtrid has ``prefix``."""
    with conn.cursor() as cur:
        cur.execute("XA RECOVER")
        rows = cur.fetchall()
    found = []
    for _format, gtrid_length, _bqual_length, data in rows:
        raw = data if isinstance(data, bytes) else str(data).encode()
        gtrid = raw[:gtrid_length].decode(errors="replace")
        if gtrid.startswith(prefix):
            found.append((gtrid, raw[gtrid_length:].decode(errors="replace")))
    return found


def recover(config: Config, apply: bool, out: Callable[[str], None] = print,
            compact_log: bool = False) -> Counter[str]:
    """Commit or roll back (only with ``apply``) this DAL's prepared branches; prints each
    step and a summary. Counts: committed, rolled_back, unreachable (instances), errors.
    ``compact_log`` (start-up only, nothing else writes the log then): keep only decisions
    still unresolved."""
    settings = config.transactions
    prefix = settings.xid_prefix + ":"
    decided = pending_decisions(settings.decision_log)
    counts: Counter[str] = Counter()
    unresolved: set[str] = set()
    verb = "" if apply else "would "
    for name, instance in config.instances.items():
        try:
            conn = _connect(instance)
        except pymysql.MySQLError as exc:
            out(f"xa recover: instance {name}: unreachable ({exc}); its branches stay prepared")
            counts["unreachable"] += 1
            unresolved.update(g for g, branches in decided.items()
                              if any(b[0] == name for b in branches))
            continue
        try:
            branches = in_doubt(conn, prefix)
            out(f"xa recover: instance {name}: {len(branches)} prepared DAL branch(es)")
            for gtrid, bqual in branches:
                action = "COMMIT" if gtrid in decided else "ROLLBACK"
                out(f"xa recover: {name}: {verb}{action.lower()} {gtrid} (branch {bqual})"
                    + (" - commit decision logged" if action == "COMMIT" else
                       " - no decision logged"))
                if not apply:
                    counts["to_commit" if action == "COMMIT" else "to_roll_back"] += 1
                    continue
                try:
                    with conn.cursor() as cur:
                        cur.execute(f"XA {action} {xid(gtrid, bqual)}")
                except pymysql.MySQLError as exc:
                    out(f"xa recover: {name}: {action} {gtrid} failed: {exc}")
                    counts["errors"] += 1
                    unresolved.add(gtrid)
                    continue
                counts["committed" if action == "COMMIT" else "rolled_back"] += 1
        finally:
            conn.close()
    if apply and decided:
        done = [g for g in decided if g not in unresolved]
        if compact_log:
            compact(settings.decision_log, {g: b for g, b in decided.items() if g in unresolved})
        else:
            log = DecisionLog(settings.decision_log)
            try:
                for gtrid in done:
                    log.done(gtrid)
            finally:
                log.close()
    if apply:
        summary = f"committed {counts['committed']}, rolled back {counts['rolled_back']}"
    else:
        summary = (f"would commit {counts['to_commit']}, would roll back "
                   f"{counts['to_roll_back']} (dry run: --apply does it)")
    out(f"xa recover: {summary}; {counts['errors']} error(s), {counts['unreachable']} "
        "unreachable instance(s)")
    return counts
