"""Keep the merchant copy equal to the user shards: follow the row binlog of every instance that
holds user shards and apply each change of a sharded or bound table to its merchant shard.

  dal sync                       follow until Ctrl-C/SIGTERM; progress and lag lines on stderr
                                 (a source's line when it changes, else every 10 minutes)
  dal sync --reset               forget the saved positions first and start at the binlog's end
  dal sync --from-beginning      with no saved position, start at the oldest binlog instead

Each row image goes to merchant_(merchant_id % 120) on whichever instance holds that shard
(an update that changes merchant_id moves the row). Changes are applied idempotently (REPLACE
of the after-image, DELETE by primary key), one transaction per target instance and batch,
together with the source position in dal_meta.sync_checkpoint on that target: a restart, also
after SIGKILL, resumes where the copy ends, without loss and without duplicates. Only
committed transactions are copied: an XA transaction's rows wait for its XA COMMIT (or go at
its XA ROLLBACK), saved with the checkpoint while undecided (tools/sync_xa.py).

With no saved position the follower starts at the current end of each binlog: rows written
before that are copied by `dal verify dimensions --repair`.

Lag per source (seconds, row events read and not yet applied, binlog bytes not yet applied)
is served as Prometheus metrics on sync.metrics (default 127.0.0.1:9105/metrics) and written
every second to sync.status_file (default var/sync-status.json), which `SHOW DAL SHARDS` reads.
Exit status: 0 stopped by a signal, 1 a database error, 2 a bad config, 3 another follower
of this config is running (a lock next to sync.status_file names its pid).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from config.loader import load_config
from config.model import Config
from tools import sync_lock

if TYPE_CHECKING:
    from tools.sync_follow import Follower
    from tools.sync_status import SyncStatus

log = logging.getLogger("dal.sync")
IDLE_PROGRESS = 600.0  # seconds between repeats of a source's unchanged progress line
SHUTDOWN_LIMIT = 30.0  # seconds from a stop to the process's end, come what may


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reset", action="store_true",
                        help="forget the saved positions and start at the end of each binlog")
    parser.add_argument("--from-beginning", action="store_true",
                        help="with no saved position, start at the oldest binlog file")
    parser.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    parser.add_argument("--metrics-port", type=int, help="serve /metrics on this port instead")
    parser.add_argument("--status-file", help="write the status here instead of sync.status_file")
    parser.add_argument("--progress", type=float, default=5.0, metavar="SECONDS",
                        help="seconds between progress lines on stderr (0: none; default 5)")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def followers(config: Config) -> list[Follower]:
    """One follower per instance holding shards of an authoritative dimension."""
    from tools.sync_follow import Follower
    from tools.sync_route import Routes

    routes = Routes(config)
    # sync.user, never DAL's account: reading the binlog needs privileges DAL must not hold.
    login = {name: inst.login_as(config.sync.user, config.sync.password)
             for name, inst in config.instances.items()}
    targets = {name: login[name] for name in sorted(routes.targets)}
    return [Follower(name, login[name], routes, targets, config.sync.server_id,
                     config.sync.batch_transactions)
            for name in sorted(routes.sources())]


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    try:  # before anything else: one follower per config (tools/sync_lock.py)
        lock = sync_lock.hold(args.status_file or config.sync.status_file, config.sync.server_id)
    except sync_lock.AlreadyRunning as exc:
        print(f"dal sync: {exc}", file=sys.stderr)
        return 3
    stop = threading.Event()  # set by an applier that cannot go on
    signalled: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Only a lock-free append: Event.set() in a handler deadlocks when the signal lands
        # while the main thread holds that event's lock (inside stop.wait), and the follower
        # would then outlive its `dal serve` and double-apply beside the next one.
        signal.signal(sig, lambda sig, _frame: signalled.append(sig))
    try:
        group = followers(config)
        starts = {f.name: f.start_position(args.reset, args.from_beginning) for f in group}
    except Exception as exc:
        print(f"dal sync: cannot start: {exc}", file=sys.stderr)
        return 1
    from tools.sync_status import SyncStatus, start_metrics

    status = SyncStatus(group, args.status_file or config.sync.status_file)
    if not args.no_metrics:
        endpoint = config.sync.metrics
        try:
            start_metrics(status, endpoint.host, args.metrics_port or endpoint.port)
        except OSError as exc:
            print(f"dal sync: cannot serve metrics on {endpoint.host}:"
                  f"{args.metrics_port or endpoint.port}: {exc}", file=sys.stderr)
            return 1
    threads = []
    for f in group:
        f.applied_pos = starts[f.name]
        log.info("sync %s: following %d schemas from %s:%s", f.name, len(f.schemas),
                 *starts[f.name])
        threads.append(threading.Thread(target=f.read, args=(starts[f.name],),
                                        name=f"read-{f.name}", daemon=True))
        threads.append(threading.Thread(target=_guard, args=(f, stop),
                                        name=f"apply-{f.name}", daemon=True))
    for t in threads:
        t.start()
    code = _supervise(group, status, stop, signalled, args.progress)
    _exit_within(SHUTDOWN_LIMIT)
    for t in threads:
        if t.name.startswith("apply-"):
            t.join(10.0)  # the batch in progress commits; readers are left to exit with us
    status.write()
    lock.close()
    return code


def _guard(follower: Follower, stop: threading.Event) -> None:
    """Run a follower's applier; a failure it cannot retry stops the whole process."""
    try:
        follower.run()
    except Exception as exc:
        follower.error = f"applying {follower.name}: {exc}"
        log.error("sync %s: cannot apply: %s", follower.name, exc)
        stop.set()


def _exit_within(seconds: float) -> None:
    """Whatever happens while stopping (a target that stopped answering mid-batch), the
    process is gone ``seconds`` from now: a follower left running would duplicate the next."""
    timer = threading.Timer(seconds, os._exit, (1,))
    timer.daemon = True
    timer.start()


def _supervise(group: list[Follower], status: SyncStatus, stop: threading.Event,
               signalled: list[int], progress: float) -> int:
    last_line = time.monotonic()
    printed: dict[str, tuple[str, float]] = {}  # per source: its last line, and when
    while not signalled and not stop.wait(1.0):
        status.write()
        if progress and time.monotonic() - last_line >= progress:
            last_line = now = time.monotonic()
            for line in status.lines():  # an idle source's unchanged line: every few minutes
                source = line.partition(":")[0]
                before = printed.get(source)
                if before is None or before[0] != line or now - before[1] >= IDLE_PROGRESS:
                    printed[source] = (line, now)
                    print(line, file=sys.stderr, flush=True)
    for f in group:
        f.stop.set()
    failed = [f.error for f in group if f.error and f.error.startswith("applying")]
    return 1 if failed else 0
