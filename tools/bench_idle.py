"""Idle clients: DAL's memory per connected, logged-in client that sends nothing, and the time
to connect them (`dal bench --idle-clients N [--tls]`).

The clients are asyncio MySQL connections in this process (DAL's client-role
`BackendConnection`, over TLS with ``--tls``). DAL's resident memory (VmRSS of the process
listening on its port, from /proc) is read after a warm-up batch, so that one-time costs
(first TLS handshake, code paths run once) are not charged to the clients, and again once all
N are logged in; the difference divided by N is the memory per idle client. With ``hold``
(`--idle-hold`, seconds) they then stay connected and idle that long, DAL's memory is read
again, and every client sends COM_PING: a client that does not answer OK is an error.
"""

from __future__ import annotations

import asyncio
import resource
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from pool.connection import BackendConnection, BackendError
from tools.bench_cpu import cpu_seconds

PARALLEL = 32  # logins in flight at once
WARMUP = 50  # clients opened (and kept) before the first memory reading
SETTLE = 1.0  # seconds between the last login and a memory reading


@dataclass
class IdleFigures:
    """What `measure` found."""

    clients: int
    tls: bool
    connect_seconds: float
    rss_before_kib: int
    rss_after_kib: int
    dal_cpu_seconds: float  # DAL's CPU time (user + system) while the clients connected
    held_seconds: float = 0.0
    rss_held_kib: int = 0  # after the hold (0: no hold)
    errors: int = 0  # clients that did not answer COM_PING after the hold

    @property
    def kib_per_client(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / max(1, self.clients)

    def describe(self) -> str:
        kind = "TLS" if self.tls else "plain"
        return (f"{self.clients} idle {kind} clients: connected in {self.connect_seconds:.1f} s "
                f"({self.clients / max(self.connect_seconds, 1e-9):.0f}/s); DAL memory "
                f"{self.rss_before_kib / 1024:.1f} -> {self.rss_after_kib / 1024:.1f} MiB, "
                f"{self.kib_per_client:.1f} KiB per client; DAL CPU "
                f"{self.dal_cpu_seconds * 1000 / max(1, self.clients):.2f} ms per connect"
                + (f"; held {self.held_seconds:.0f} s: DAL memory "
                   f"{self.rss_held_kib / 1024:.1f} MiB "
                   f"({(self.rss_held_kib - self.rss_before_kib) / max(1, self.clients):.1f} "
                   f"KiB per client), {self.errors} of {self.clients} clients failed COM_PING"
                   if self.held_seconds else ""))


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise OSError(f"no VmRSS in /proc/{pid}/status")


def client_context() -> ssl.SSLContext:
    """TLS for the benchmark's clients: encrypted, the server's certificate not checked (DAL's
    local certificate is self-signed)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def raise_fd_limit(needed: int) -> None:
    """Raise the soft open-files limit to the hard one; ValueError when that is too low."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise ValueError(f"{needed} file descriptors needed; the hard limit is {hard} "
                         "(raise it with `ulimit -Hn` as root)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def open_clients(host: str, port: int, user: str, password: str, count: int,
                       context: ssl.SSLContext | None,
                       into: list[BackendConnection]) -> float:
    """Open and log in ``count`` clients (appended to ``into``); returns the seconds it took.
    Raises `BackendError` for the first client that fails."""
    gate = asyncio.Semaphore(PARALLEL)

    async def one() -> None:
        async with gate:
            into.append(await BackendConnection.open("client", host, port, user, password,
                                                     timeout=60, tls=context))

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - started


async def measure(pid: int, host: str, port: int, user: str, password: str, count: int,
                  tls: bool, hold: float = 0.0) -> IdleFigures:
    """Connect ``count`` idle clients to the DAL process ``pid``; its memory per client."""
    context = client_context() if tls else None
    clients: list[BackendConnection] = []
    try:
        await open_clients(host, port, user, password, WARMUP, context, clients)
        await asyncio.sleep(SETTLE)
        before, cpu = rss_kib(pid), cpu_seconds(pid)
        seconds = await open_clients(host, port, user, password, count, context, clients)
        cpu = cpu_seconds(pid) - cpu
        await asyncio.sleep(SETTLE)
        after = rss_kib(pid)
        figures = IdleFigures(count, tls, seconds, before, after, cpu)
        if hold > 0:
            await asyncio.sleep(hold)
            figures.held_seconds, figures.rss_held_kib = hold, rss_kib(pid)
            pings = await asyncio.gather(*(_ping(c) for c in clients[WARMUP:]))
            figures.errors = pings.count(False)
    finally:
        for conn in clients:
            conn.close()
        await asyncio.sleep(0.2)
    return figures


async def _ping(conn: BackendConnection) -> bool:
    """COM_PING on ``conn``: True when it answers OK."""
    try:
        return (await conn.command(b"\x01\x00\x00\x00\x0e"))[4:5] == b"\x00"
    except (BackendError, OSError):
        return False


def run_idle(pid: int, host: str, port: int, user: str, password: str, count: int,
             tls: bool, hold: float = 0.0) -> IdleFigures:
    """`measure` on a fresh event loop (uvloop when installed, as DAL uses). Call
    `raise_fd_limit` first (before starting DAL, so that it inherits the limit)."""
    try:
        import uvloop

        return uvloop.run(measure(pid, host, port, user, password, count, tls, hold))
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(measure(pid, host, port, user, password, count, tls, hold))


__all__ = ["BackendError", "IdleFigures", "client_context", "measure", "rss_kib", "run_idle"]
