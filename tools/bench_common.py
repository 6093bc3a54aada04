"""What the parts of `dal bench` share: a target to connect to, the errors that end a run, and
latency arithmetic. Imports nothing from the other bench modules, so each of them can use it."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import pymysql

CONNECT_TIMEOUT = 5.0
QUERY = "SELECT c FROM sbtest1 WHERE id=%d"  # the point select every generator runs
MAX_ERROR_SAMPLES = 5


class BenchError(Exception):
    """A target is unreachable, a round failed or the setup did not work. The message says why."""


class BenchConfigError(Exception):
    """The config cannot be used for the run asked for (exit status 2)."""


@dataclass(frozen=True)
class Target:
    """Where one side of the comparison connects."""

    name: str
    host: str
    port: int
    user: str
    password: str
    database: str
    tables: int = 1  # sysbench --tables (sbtest1..sbtestN)
    table_size: int = 0  # sysbench --table-size; 0: the run's --table-size

    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self, **extra: Any) -> pymysql.connections.Connection:
        return pymysql.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            database=self.database, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
            ssl_disabled=True, **extra,  # plain TCP on both sides, as sysbench (--mysql-ssl=off)
        )


def describe_error(exc: BaseException) -> str:
    """'(code) message' for a MySQL error, 'Type: message' otherwise."""
    if isinstance(exc, pymysql.err.Error) and len(exc.args) == 2:
        return f"({exc.args[0]}) {exc.args[1]}"
    return f"{type(exc).__name__}: {exc}"


def percentile(ordered: list[float], pct: float) -> float | None:
    """The ``pct`` percentile of sorted seconds, in milliseconds (None when empty)."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index] * 1000


def ms(value: float | None) -> float | None:
    """Milliseconds rounded for the report (None stays None)."""
    return round(value, 3) if value is not None else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b to 4 places, None when either is missing or b is 0."""
    return round(a / b, 4) if a is not None and b else None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
