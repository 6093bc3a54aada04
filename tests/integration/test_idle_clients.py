"""What an idle client costs DAL: resident memory per logged-in client that sends nothing, over
plain TCP and over TLS (DAL's own TLS layer, dal/tls.py), read from /proc/<pid>/status of the
DAL process; and TLS with large statements and results, which must neither fail nor leave
their size behind in every connection."""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Iterator

import pymysql
import pytest

from dal.wire.constants import Capability
from dal.wire.framing import frame
from tests.dal_process import ROOT, DalProcess, running_test_config, start_own_dal
from tests.metrics_scrape import scrape, value
from tests.rawclient import RawClient
from tools import bench_idle

CLIENTS = 300
# Measured at 3,000 clients: 3.3 KiB plain, 20.5 KiB TLS (OpenSSL's own share of that is
# about 15 KiB per connection: see docs/design-notes.md). The bounds leave room for the
# granularity of Python's allocator at 300 clients.
PLAIN_KIB = 8
TLS_KIB = 24


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DalProcess, dict]]:
    running_test_config()
    bench_idle.raise_fd_limit(2 * CLIENTS + 200)
    proc, raw, _ = start_own_dal(tmp_path_factory.mktemp("idle"),
                                 ROOT / "var" / "test" / "dal-idle.log", {})
    yield proc, raw
    proc.stop()


@pytest.fixture
def dal(own: tuple[DalProcess, dict]) -> DalProcess:
    return own[0]


@pytest.mark.parametrize(("tls", "bound"), [(False, PLAIN_KIB), (True, TLS_KIB)],
                         ids=["plain", "tls"])
def test_memory_per_idle_client(dal: DalProcess, tls: bool, bound: float) -> None:
    assert dal.proc is not None
    figures = bench_idle.run_idle(dal.proc.pid, "127.0.0.1", dal.port, "app", "app", CLIENTS,
                                  tls)
    assert figures.kib_per_client <= bound, figures.describe()


def _tls_connect(dal: DalProcess, **kwargs: object) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=dal.port, user="app", password="app",
                           database="trade", ssl=bench_idle.client_context(),
                           read_timeout=60, **kwargs)


def test_large_statements_and_results_over_tls(dal: DalProcess) -> None:
    conn = _tls_connect(dal)
    try:
        assert conn._sock.version() in ("TLSv1.2", "TLSv1.3")  # type: ignore[union-attr]
        with conn.cursor() as cur:
            literal = "ab" * 1_500_000  # a 3 MB statement, fed to TLS in slices
            cur.execute(f"SELECT LENGTH('{literal}'), MD5('{literal}')")
            length, digest = cur.fetchone()
            cur.execute("SELECT REPEAT('xyz', 1000000), 7")  # a 3 MB result, written in slices
            big, seven = cur.fetchone()
            cur.execute("SELECT MD5(%s)", (big,))
            (big_digest,) = cur.fetchone()
    finally:
        conn.close()
    assert length == len(literal)
    assert digest == hashlib.md5(literal.encode()).hexdigest()
    assert big == "xyz" * 1_000_000 and seven == 7
    assert big_digest == hashlib.md5(big.encode()).hexdigest()


def test_a_large_result_leaves_no_large_buffer_behind(dal: DalProcess) -> None:
    """A memory BIO keeps the largest write it held: DAL encrypts in slices, so 20 TLS
    clients that each read 3 MB do not keep 60 MB."""
    assert dal.proc is not None
    conns = [_tls_connect(dal) for _ in range(20)]
    try:
        before = bench_idle.rss_kib(dal.proc.pid)
        for conn in conns:
            with conn.cursor() as cur:
                cur.execute("SELECT REPEAT('q', 3000000)")
                assert len(cur.fetchone()[0]) == 3_000_000
        time.sleep(0.5)
        grown = bench_idle.rss_kib(dal.proc.pid) - before
    finally:
        for conn in conns:
            conn.close()
    assert grown < 20 * 1024, f"DAL grew {grown} KiB after 20 clients read 3 MB each"


def test_failed_and_abandoned_tls_handshakes_leave_no_session(
        own: tuple[DalProcess, dict]) -> None:
    proc, raw = own
    metrics = raw["server"]["metrics"]["port"]
    before = value(scrape(metrics), "dal_client_connections")
    request = frame(struct.pack("<IIB23x", int(Capability.PROTOCOL_41 | Capability.SSL
                                               | Capability.SECURE_CONNECTION), 1 << 24, 45), 1)
    for n in range(20):
        client = RawClient(proc.port)
        client.greeting()
        # Garbage instead of a ClientHello, or the client hangs up mid-handshake.
        client.sock.sendall(request + (b"GET / HTTP/1.1\r\n\r\n" if n % 2 else b"\x16\x03"))
        if n % 2:
            assert client.closed_by_server(timeout=10)
        client.close()
    deadline = time.monotonic() + 10
    while value(scrape(metrics), "dal_client_connections") != before:
        assert time.monotonic() < deadline, "sessions of failed TLS handshakes stay counted"
        time.sleep(0.2)
