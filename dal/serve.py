"""Run the DAL proxy in the foreground.

Listens for MySQL clients on the address in the config (default 127.0.0.1:3307) and serves
Prometheus metrics on its metrics address (default 127.0.0.1:9104). Ctrl-C or SIGTERM drains:
no new clients, statements in flight finish (up to server.drain_timeout), then it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from config.loader import ConfigError, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="listen on this port instead of the config's")
    parser.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: "
                        "%(message)s")
    logging.getLogger("sqlglot").setLevel(logging.ERROR)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"dal serve: {exc}", file=sys.stderr)
        return 2
    if args.port:
        listen = config.server.listen.model_copy(update={"port": args.port})
        config = config.model_copy(update={"server": config.server.model_copy(
            update={"listen": listen})})
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency
        pass
    return asyncio.run(_main(config, not args.no_metrics))


async def _main(config, metrics: bool) -> int:
    from dal.server import Server, serve_forever

    server = Server(config)
    if metrics:
        from dal.metrics import start_metrics

        try:
            start_metrics(server)
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
    except OSError as exc:
        print(f"dal serve: cannot listen on {config.server.listen.host}:"
              f"{config.server.listen.port}: {exc}", file=sys.stderr)
        return 1
    return 0
