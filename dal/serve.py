"""Run the DAL proxy in the foreground.

Listens for MySQL clients on the address in the config (default 127.0.0.1:3307) and serves
Prometheus metrics on its metrics address (default 127.0.0.1:9104). Ctrl-C or SIGTERM drains:
no new clients, statements in flight finish (up to server.drain_timeout), then it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
from pathlib import Path

from config.loader import load_config
from config.model import Config
from dal.fleet import remove_run_directory, run_directory
from router.genes import WORKERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="listen on this port instead of the config's")
    parser.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--workers", type=int,
                        help="processes sharing the port (default: server.workers)")
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--fleet-dir", help=argparse.SUPPRESS)  # the workers' sockets
    parser.add_argument("--with-sync", action="store_true",
                        help="also run `dal sync` as a child process (what `make run` does)")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    config = load_config(args.config)
    problem = _tls_problem(config, args.config)
    if problem is not None:
        print(f"dal serve: {problem}", file=sys.stderr)
        return 2
    if args.port:
        listen = config.server.listen.model_copy(update={"port": args.port})
        config = config.model_copy(update={"server": config.server.model_copy(
            update={"listen": listen})})
    workers = args.workers or config.server.workers
    try:
        config = for_worker(config, workers, args.worker_index)
    except ValueError as exc:
        print(f"dal serve: {exc}", file=sys.stderr)
        return 2
    _raise_fd_limit()
    recovered = _recover_xa(config) if args.worker_index == 0 else {}
    first = args.worker_index == 0
    if workers > 1 and first:
        args.fleet_dir = str(run_directory(config.server.listen.port))
    children = _spawn_workers(args, workers, config) if first else []
    if args.with_sync and args.worker_index == 0:
        children.append(subprocess.Popen([sys.executable, "-m", "dal.cli", "sync",
                                          "--config", args.config],
                                         preexec_fn=_die_with_parent))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    try:
        return asyncio.run(_main(config, not args.no_metrics and args.worker_index == 0,
                                 args.worker_index, args.config, recovered,
                                 Path(args.fleet_dir) if args.fleet_dir else None))
    finally:
        _stop_workers(children, config.server.drain_timeout + 5)
        if first and args.fleet_dir:
            remove_run_directory(Path(args.fleet_dir))


def _raise_fd_limit() -> None:
    """Open files up to the hard limit: every client is a socket, and the usual soft limit
    (1,024) would refuse clients long before server.max_clients."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _recover_xa(config: Config) -> dict[str, int]:
    """Mode xa: resolve the branches a previous run left prepared, before any worker serves
    (dal/xa_recover.py); the counts for dal_xa_transactions_total."""
    if config.transactions.mode != "xa":
        return {}
    from dal.xa_recover import recover

    log = logging.getLogger("dal.xa")
    counts = recover(config, apply=True, out=log.info, compact_log=True)
    return {"recovered_committed": counts["committed"],
            "recovered_rolled_back": counts["rolled_back"]}


def for_worker(config: Config, workers: int, index: int) -> Config:
    """The config one of ``workers`` processes runs with: its share of each pool, its own gene
    worker id."""
    server = config.server
    worker_id = None if server.worker_id is None else server.worker_id + index
    if server.worker_id is not None and server.worker_id + workers - 1 >= WORKERS:
        raise ValueError(f"server.worker_id {server.worker_id} + {workers} workers exceeds the "
                         f"gene worker id range 0..{WORKERS - 1}")
    pool = config.pool.model_copy(update={
        "max_size": max(1, config.pool.max_size // workers),
        "min_idle": config.pool.min_idle // workers,
    })
    server = server.model_copy(update={"workers": workers, "worker_id": worker_id})
    return config.model_copy(update={"server": server, "pool": pool})


def _die_with_parent() -> None:
    """In a child (worker or `dal sync`), before exec: SIGTERM when the first process dies,
    however it dies (even SIGKILL, or a SIGTERM before its handler is installed), so no worker
    is left serving the port on its own and no follower is left for the next `make run` to
    duplicate."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _spawn_workers(args: argparse.Namespace, workers: int,
                   config: Config) -> list[subprocess.Popen]:
    children = []
    for index in range(1, workers):
        children.append(subprocess.Popen([
            sys.executable, "-m", "dal.cli", "serve", "--config", args.config,
            "--port", str(config.server.listen.port), "--workers", str(workers),
            "--worker-index", str(index), "--fleet-dir", args.fleet_dir, "--no-metrics",
            "--log-level", args.log_level],
            preexec_fn=_die_with_parent))
    return children


def _stop_workers(children: list[subprocess.Popen], timeout: float) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _tls_problem(config: Config, path: str) -> str | None:
    """Why the certificate or key of server.tls cannot be used, or None."""
    if config.server.tls is None:
        return None
    from dal.tls import server_context

    try:
        server_context(config.server.tls)
    except OSError as exc:  # ssl.SSLError is an OSError
        return (f"server.tls: cannot load certificate {config.server.tls.cert!r} and key "
                f"{config.server.tls.key!r}: {exc}. For local use, `dal certs --config {path}` "
                "creates a self-signed pair")
    return None


async def _main(config: Config, metrics: bool, worker_index: int = 0,
                config_path: str | None = None, recovered: dict[str, int] | None = None,
                fleet_dir: Path | None = None) -> int:
    from dal.server import Server, serve_forever
    from dal.worker_lease import LeaseError

    server = Server(config, worker_index)
    server.config_path = config_path
    for outcome, count in (recovered or {}).items():
        server.counters[("xa", outcome)] += count
    if fleet_dir is not None:
        from dal.fleet import Fleet
        from dal.fleet_answers import answerer

        server.fleet = Fleet(fleet_dir, worker_index, config.server.workers, answerer(server))
    if metrics:
        from dal.fleet_metrics import FleetCollector
        from dal.metrics import start_metrics

        collector = (FleetCollector(server, asyncio.get_running_loop())
                     if server.fleet is not None else None)
        try:
            start_metrics(server, collector)
        except OSError as exc:
            print(f"dal serve: cannot serve metrics on {config.server.metrics.port}: {exc}",
                  file=sys.stderr)
            return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await serve_forever(server, stop)
    except LeaseError as exc:
        print(f"dal serve: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"dal serve: cannot listen on {config.server.listen.host}:"
              f"{config.server.listen.port}: {exc}", file=sys.stderr)
        return 1
    return 0
