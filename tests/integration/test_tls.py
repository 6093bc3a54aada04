"""TLS between clients and DAL: the test config names a self-signed certificate made for the
run (tests/dal_process.py), so DAL offers CLIENT_SSL.

Covered: pymysql over TLS with the certificate verified, doing CRUD on sharded `orders`
(checked against a direct read of the owning shard) and on `merchants`; both ways the TLS
handshake can reach DAL (after the SSLRequest, or in the same read); per-user require_tls;
caching_sha2_password fast and full authentication over TLS (pymysql, mysql-connector pure
and C extension, i.e. libmysqlclient 8); the `mariadb` command-line client with --ssl.
"""

from __future__ import annotations

import socket
import ssl
import struct
import subprocess
import time

import pymysql
import pytest

from dal.wire import auth
from dal.wire.constants import Capability
from dal.wire.messages import Handshake, HandshakeResponse
from tests.clients.connector_scenarios import run, run_or_skip
from tests.clients.merchants import count_direct, purge, unique_prefix
from tests.clients.pymysql_auth import TracingConnection

HOST = "127.0.0.1"
USER = 905_123  # user shard 5 on instance a; USER + 60 lands on instance b
ORDER_SQL = ("INSERT INTO orders (user_id, merchant_id, status, total, note, created_at, "
             "updated_at) VALUES (%s, %s, 1, %s, %s, NOW(6), NOW(6))")


@pytest.fixture(scope="module")
def cert(dal_config) -> str:
    return dal_config[1]["server"]["tls"]["cert"]


def verified_context(cert: str) -> ssl.SSLContext:
    """Trusts only the run's self-signed certificate, and checks it names 127.0.0.1."""
    context = ssl.create_default_context(cafile=cert)
    context.check_hostname = True
    return context


def tls_cipher(conn: pymysql.connections.Connection) -> tuple | None:
    sock = conn._sock
    return sock.cipher() if isinstance(sock, ssl.SSLSocket) else None


def test_pymysql_over_tls_crud_on_sharded_orders(connect, direct, cert):
    conn = connect(ssl=verified_context(cert))
    assert tls_cipher(conn) is not None
    users = [USER, USER + 60]
    with conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE user_id IN %s", (users,))
        made = {}
        for user in users:
            cur.execute(ORDER_SQL, (user, 77, "12.34", "tls ✓"))
            made[user] = cur.lastrowid
        for user, order_id in made.items():
            shard = user % 120
            backend = direct("a" if shard < 60 else "b")
            with backend.cursor() as bcur:
                bcur.execute(f"SELECT id, total, note FROM user_{shard:03d}.orders "
                             "WHERE user_id = %s", (user,))
                assert [(r[0], str(r[1]), r[2]) for r in bcur.fetchall()] == [
                    (order_id, "12.34", "tls ✓")]
            cur.execute("UPDATE orders SET total = 99.50 WHERE user_id = %s AND id = %s",
                        (user, order_id))
            assert cur.rowcount == 1
            cur.execute("SELECT total FROM orders WHERE user_id = %s", (user,))
            assert str(cur.fetchone()[0]) == "99.50"
            with backend.cursor() as bcur:
                bcur.execute(f"SELECT total FROM user_{shard:03d}.orders WHERE id = %s",
                             (order_id,))
                assert str(bcur.fetchone()[0]) == "99.50"
        cur.execute("SELECT COUNT(*) FROM orders WHERE user_id IN %s", (users,))
        assert cur.fetchone()[0] == 2
        assert cur.execute("DELETE FROM orders WHERE user_id IN %s", (users,)) == 2
    for user in users:
        shard = user % 120
        with direct("a" if shard < 60 else "b").cursor() as bcur:
            bcur.execute(f"SELECT COUNT(*) FROM user_{shard:03d}.orders WHERE user_id = %s",
                         (user,))
            assert bcur.fetchone()[0] == 0


def test_pymysql_over_tls_crud_on_merchants(connect, direct, cert):
    prefix = unique_prefix("tls")
    backend = direct("a", "trade")
    try:
        conn = connect(ssl=verified_context(cert))
        with conn.cursor() as cur:
            cur.execute("INSERT INTO merchants (name, region_id) VALUES (%s, 3)",
                        (prefix + "m",))
            merchant_id = cur.lastrowid
            assert count_direct(backend, merchant_id) == 1
            cur.execute("UPDATE merchants SET region_id = 4 WHERE id = %s", (merchant_id,))
            cur.execute("SELECT name, region_id FROM merchants WHERE id = %s", (merchant_id,))
            assert cur.fetchone() == (prefix + "m", 4)
            assert cur.execute("DELETE FROM merchants WHERE id = %s", (merchant_id,)) == 1
            assert count_direct(backend, merchant_id) == 0
    finally:
        purge(backend, prefix)


def test_plain_tcp_still_works_when_tls_is_offered(connect):
    conn = connect(ssl_disabled=True)
    assert tls_cipher(conn) is None
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_require_tls_user_is_refused_over_plain_tcp(connect, dal, cert):
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(user="secure", password="secure", ssl_disabled=True)
    code, message = info.value.args
    assert code == 3159
    assert "users.secure.require_tls" in message and "TLS" in message
    conn = connect(user="secure", password="secure", ssl=verified_context(cert))
    assert tls_cipher(conn) is not None


@pytest.mark.parametrize(("user", "trace"), [
    ("secure", ["fast-ok", "ok"]),
    # Native hash only: DAL asks for the password itself; over TLS it comes in clear text,
    # without the RSA key exchange.
    ("secure_legacy", ["full-auth", "ok"]),
])
def test_caching_sha2_over_tls(connect, dal, cert, user, trace):
    conn = TracingConnection(host=HOST, port=dal.port, user=user, password=user,
                             database="trade", connect_timeout=10, read_timeout=30,
                             sha2_first=True, ssl=verified_context(cert))
    connect.track(conn)
    assert conn.auth_trace == trace
    assert tls_cipher(conn) is not None
    with conn.cursor() as cur:
        cur.execute("SELECT DATABASE()")
        assert cur.fetchone() == ("trade",)


def test_wrong_password_over_tls_is_1045(connect, cert):
    with pytest.raises(pymysql.err.OperationalError) as info:
        connect(user="secure_legacy", password="wrong", ssl=verified_context(cert))
    assert info.value.args[0] == 1045


# -- the two ways the TLS handshake reaches DAL --------------------------------------------


def _recv_packet(sock: socket.socket) -> tuple[int, bytes]:
    head = b""
    while len(head) < 4:
        chunk = sock.recv(4 - len(head))
        assert chunk, "DAL closed the connection"
        head += chunk
    length = int.from_bytes(head[:3], "little")
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, "DAL closed the connection"
        body += chunk
    return head[3], body


def _frame(payload: bytes, seq: int) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes((seq,)) + payload


@pytest.mark.parametrize("together", [True, False], ids=["same-write", "after-a-pause"])
def test_tls_handshake_in_the_same_write_as_the_ssl_request(connect, dal, together):
    """A raw client sends the SSLRequest and the TLS ClientHello in one write (DAL has
    already read the ClientHello when it upgrades), or with a pause between them (the
    ClientHello is still in the socket). Both must log in and run a statement."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing)
    with socket.create_connection((HOST, dal.port), timeout=10) as sock:
        _, greeting = _recv_packet(sock)
        hello = Handshake.decode(greeting)
        assert hello.capabilities & Capability.SSL
        caps = (Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.PLUGIN_AUTH
                | Capability.LONG_PASSWORD | Capability.SSL | Capability.CONNECT_WITH_DB)
        ssl_request = _frame(struct.pack("<IIB23x", int(caps), 1 << 24, 45), 1)
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        client_hello = outgoing.read()
        if together:
            sock.sendall(ssl_request + client_hello)
        else:
            sock.sendall(ssl_request)
            time.sleep(0.3)
            sock.sendall(client_hello)
        deadline = time.monotonic() + 10
        while True:  # finish the handshake through the memory BIOs
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = outgoing.read()
                if data:
                    sock.sendall(data)
                chunk = sock.recv(65536)
                assert chunk and time.monotonic() < deadline, "TLS handshake did not finish"
                incoming.write(chunk)
        sock.sendall(outgoing.read())

        def send(payload: bytes, seq: int) -> None:
            tls.write(_frame(payload, seq))
            sock.sendall(outgoing.read())

        def receive() -> bytes:
            while True:
                try:
                    head = tls.read(4)
                    break
                except ssl.SSLWantReadError:
                    incoming.write(sock.recv(65536))
            length = int.from_bytes(head[:3], "little")
            body = b""
            while len(body) < length:
                try:
                    body += tls.read(length - len(body))
                except ssl.SSLWantReadError:
                    incoming.write(sock.recv(65536))
            return body

        response = HandshakeResponse(
            capabilities=int(caps), max_packet=1 << 24, collation=45, user=b"secure",
            auth_response=auth.native_response(b"secure", hello.scramble), database=b"trade",
            auth_plugin=auth.NATIVE, attributes={})
        send(response.encode(), 2)
        assert receive()[:1] == b"\x00", "login over TLS not accepted"
        send(b"\x03SELECT 40 + 2", 0)
        packets = [receive() for _ in range(5)]  # count, column, EOF, row, EOF
        assert packets[3] == b"\x0242"


def test_garbage_instead_of_a_tls_handshake_closes_only_that_connection(connect, dal):
    with socket.create_connection((HOST, dal.port), timeout=10) as sock:
        _recv_packet(sock)
        caps = Capability.PROTOCOL_41 | Capability.SECURE_CONNECTION | Capability.SSL
        sock.sendall(_frame(struct.pack("<IIB23x", int(caps), 1 << 24, 45), 1)
                     + b"GET / HTTP/1.1\r\n\r\n")
        sock.settimeout(10)
        try:  # a TLS alert may come first; then the close (FIN or reset)
            while sock.recv(65536):
                pass
        except ConnectionResetError:
            pass
        except TimeoutError:
            pytest.fail("DAL kept a connection whose TLS handshake failed")
    with connect().cursor() as cur:  # DAL still serves
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


# -- other clients ------------------------------------------------------------------------


@pytest.mark.parametrize("use_pure", [True, False], ids=["pure", "cext"])
@pytest.mark.parametrize("user", ["secure", "secure_legacy"])
def test_mysql_connector_caching_sha2_over_tls(connect, dal, cert, use_pure, user):
    """libmysqlclient 8 (the C extension) logs in with caching_sha2_password by default;
    `secure` passes fast auth, `secure_legacy` full auth, which over TLS sends the password
    in clear text. Both users are refused without TLS, so a successful login proves TLS.
    (Without TLS: test_client_connector.py::test_login_with_the_default_plugin.)"""
    result = run_or_skip(use_pure, "login", port=dal.port, user=user, password=user,
                         ssl_disabled=False, ssl_ca=cert, ssl_verify_cert=True)
    assert result.get("database") == "trade", result
    refused = run(use_pure, "login", port=dal.port, user=user, password=user)
    assert refused.get("error", {}).get("errno") == 3159, refused


def test_mariadb_cli_with_ssl(connect, dal, cert):
    args = ["mariadb", f"-h{HOST}", f"-P{dal.port}", "-usecure", "-psecure", "trade",
            "--ssl", f"--ssl-ca={cert}", "--ssl-verify-server-cert"]
    out = subprocess.run([*args, "-e", "status"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "Cipher in use is" in out.stdout
    out = subprocess.run([*args, "-N", "-e", "SELECT COUNT(*) >= 0 FROM merchants"],
                         capture_output=True, text=True, timeout=30)
    assert (out.returncode, out.stdout.strip()) == (0, "1"), out.stderr
    plain = subprocess.run(["mariadb", f"-h{HOST}", f"-P{dal.port}", "-usecure", "-psecure",
                            "--skip-ssl", "-e", "SELECT 1"], capture_output=True, text=True,
                           timeout=30)
    assert plain.returncode != 0 and "3159" in plain.stderr


# -- certificates -------------------------------------------------------------------------


def test_dal_certs_creates_a_pair_once_and_serve_refuses_missing_files(tmp_path):
    import os
    import sys

    import yaml

    from tests.dal_process import ROOT, TEST_CONFIG

    raw = yaml.safe_load(TEST_CONFIG.read_text())
    cert, key = tmp_path / "tls" / "c.pem", tmp_path / "tls" / "k.pem"
    raw["server"]["tls"] = {"cert": str(cert), "key": str(key)}
    path = tmp_path / "dal.yaml"
    path.write_text(yaml.safe_dump(raw))
    serve = subprocess.run([sys.executable, "-m", "dal.cli", "serve", "--config", str(path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert serve.returncode == 2
    assert "server.tls: cannot load certificate" in serve.stderr and "dal certs" in serve.stderr
    certs = [sys.executable, "-m", "dal.cli", "certs", "--config", str(path)]
    first = subprocess.run(certs, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0 and "wrote a self-signed certificate" in first.stdout
    assert os.stat(key).st_mode & 0o777 == 0o600
    before = cert.read_bytes()
    again = subprocess.run(certs, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "left as they are" in again.stdout
    assert cert.read_bytes() == before
    from config.model import ServerTLS
    from dal.tls import server_context

    server_context(ServerTLS(cert=str(cert), key=str(key)))  # loads
