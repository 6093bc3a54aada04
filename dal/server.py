"""The proxy process: listening socket, backend pools, router and counters, shared by sessions."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import Counter
from collections.abc import Coroutine

from config.model import Config
from dal import tls
from dal.created_databases import CreatedDatabases
from dal.fleet import Fleet
from dal.login import Authenticator
from dal.login_backoff import LoginBackoff
from dal.migration.service import Migrations
from dal.protection import Protection
from dal.session import ClientSession
from dal.stats import StatementStats
from dal.wire import auth
from dal.wire.constants import MARIADB_CLIENT_EXTENDED_METADATA
from dal.wire.framing import frame
from dal.worker_lease import LeasedGenes, WorkerLease
from dal.xa import Coordinator
from pool.connection import BackendConnection, BackendError
from pool.pool import Pool
from router.planner import Router
from router.sqltext import version_id

log = logging.getLogger("dal.server")

FALLBACK_VERSION = "5.5.5-10.11.0-MariaDB-dal"
# Collations a client may announce that the backend may lack: MySQL 8's default 255,
# utf8mb4_0900_ai_ci (UCA 9.0, accent- and case-insensitive), is not in MariaDB 10.11; the
# nearest one every MySQL client also knows by id is utf8mb4_unicode_ci (224, UCA 4.0).
COLLATION_FALLBACK = {255: ("utf8mb4", "utf8mb4_unicode_ci")}


_STATEMENT_KEYS: dict[tuple[str, bool], tuple[str, str]] = {}


def _statement_key(kind: str, failed: bool) -> tuple[str, str]:
    key = ("statements", f"{kind}:{'error' if failed else 'ok'}")
    _STATEMENT_KEYS[(kind, failed)] = key
    return key


class Server:
    """Everything sessions share. Sessions hold a reference; they own nothing global."""

    def __init__(self, config: Config, worker_index: int = 0) -> None:
        self.config = config
        self.worker_index = worker_index
        self.router = Router(config)
        first_db = next(iter(config.databases.values()))
        # Gene ids (router/genes.py) under a worker id leased at start (dal/worker_lease.py).
        self.leased_genes = LeasedGenes(
            WorkerLease(config.instances[first_db.default_instance]), config.server.worker_id)
        self.genes = self.leased_genes.generator
        self.authenticator = Authenticator(config.users, auth.RSAKeys(),
                                           LoginBackoff(config.server.login_backoff))
        self.tls_context = tls.server_context(config.server.tls) if config.server.tls else None
        defaults = {db.default_instance: db.default_database for db in config.databases.values()}
        self.pools = {name: Pool(name, inst, config.pool, defaults.get(name))
                      for name, inst in config.instances.items()}
        first = next(iter(config.databases.values()))
        self.default_instance = first.default_instance
        self.version = (config.server.server_version or FALLBACK_VERSION).encode()
        self.collations: dict[int, tuple[str, str]] = {}
        self.sessions: set[ClientSession] = set()
        self.counters: Counter[tuple[str, str]] = Counter()
        self.stats = StatementStats()
        # Connection ids unique across the workers sharing the port.
        self._ids = itertools.count(worker_index + 1, config.server.workers)
        self._listener: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        # Protection (dal/protection.py): None / 0 when off, so the hot path tests one attribute.
        self.limiter = None
        self.statement_timeout = 0.0
        self.config_path: str | None = None  # for RELOAD DAL CONFIG
        self.protection = Protection(self)
        # Transaction mode xa (dal/xa.py): None in mode single, so sessions test one attribute.
        self.xa = Coordinator(self, config) if config.transactions.mode == "xa" else None
        # Live migrations (dal/migration/service.py): None when no database has one.
        self.migration = (Migrations(self) if any(db.migration is not None
                                                   for db in config.databases.values())
                          else None)
        # With several workers, the channel to the others (dal/fleet.py); set before start().
        self.fleet: Fleet | None = None
        # Admin users' CREATE DATABASE (dal/created_databases.py): joined to config.databases.
        self.created_databases = CreatedDatabases(self)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Learn the backend's version and collations, then listen."""
        await self._probe_backend()
        if self.fleet is not None:
            await self.fleet.start()
        await self.created_databases.start()
        await asyncio.to_thread(self.leased_genes.start)
        self.leased_genes.run_renewals()
        for pool in self.pools.values():
            pool.warm()
        if self.migration is not None:
            await self.migration.start()
        listen = self.config.server.listen
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: ClientSession(self), listen.host, listen.port, backlog=2048,
            reuse_address=True, reuse_port=self.config.server.workers > 1)
        self._sweeper = asyncio.ensure_future(self._sweep_forever())
        log.info("DAL listening on %s:%d", listen.host, listen.port)

    async def _probe_backend(self) -> None:
        pool = self.pools[self.default_instance]
        try:
            conn = await pool.acquire()
        except BackendError as exc:
            log.warning("default backend unavailable at start (%s); serving anyway", exc.message)
            return
        if conn.hello is not None and not conn.hello.extended & MARIADB_CLIENT_EXTENDED_METADATA:
            # A backend without extended type info (MySQL, MariaDB < 10.5): not offered.
            self.authenticator.extended &= ~MARIADB_CLIENT_EXTENDED_METADATA
        try:
            version = (await conn.query("SELECT @@version")).rows[0][0] or b""
            # Executable comments run by this version (router/sqltext.py), as the backend would.
            self.router.version_id = version_id(version.decode()) or self.router.version_id
            self.router.mariadb = b"MariaDB" in version
            if self.config.server.server_version is None:
                prefix = b"5.5.5-" if b"MariaDB" in version else b""
                self.version = prefix + version.split(b"-log")[0] + b"-dal"
            rows = (await conn.query(
                "SELECT ID, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLLATIONS"
            )).rows
            self.collations = {int(r[0] or 0): ((r[1] or b"").decode(), (r[2] or b"").decode())
                               for r in rows}
        except BackendError as exc:
            log.warning("could not read backend version/collations: %s", exc.message)
        finally:
            pool.release(conn)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.pool.sweep_interval)
            for pool in self.pools.values():
                pool.sweep()

    async def stop(self) -> None:
        """Graceful drain: stop accepting, let statements in flight finish, close everything."""
        if self._listener is not None:
            self._listener.close()
        deadline = asyncio.get_running_loop().time() + self.config.server.drain_timeout
        while any(s.busy for s in self.sessions) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            session.shutdown()
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.leased_genes.stop()
        if self.migration is not None:
            await self.migration.stop()
        if self.fleet is not None:
            await self.fleet.stop()
        await self.created_databases.stop()
        await asyncio.sleep(0.05)
        for pool in self.pools.values():
            await pool.close()

    # -- services for sessions ---------------------------------------------------------------

    def background(self, coro: Coroutine) -> None:
        """Run a coroutine that no session waits for, keeping a reference until it ends."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def next_connection_id(self) -> int:
        return next(self._ids)

    def names_for_collation(self, collation: int) -> str | None:
        """The SET NAMES fragment for a handshake collation, or None for the pool default."""
        if collation == 45:  # utf8mb4_general_ci: what backend connections already use
            return None
        found = self.collations.get(collation) or COLLATION_FALLBACK.get(collation)
        if found is None:
            return None
        charset, name = found
        return f"NAMES {charset} COLLATE {name}"

    async def logical_tables(self, db: str) -> dict[str, str]:
        """Tables of a logical database: the unsharded ones that exist in its default database,
        and every table the sharding config names."""
        cfg = self.config.databases[db]
        pool = self.pools[cfg.default_instance]
        conn = await pool.acquire()
        try:
            result = await conn.query(f"SHOW FULL TABLES FROM `{cfg.default_database}`")
        finally:
            pool.release(conn)
        tables = {(r[0] or b"").decode(): (r[1] or b"").decode() for r in result.rows}
        tables.update(self.router.logical_tables(db))
        return tables

    async def reset_and_release(self, conn: BackendConnection, close: bool = False) -> None:
        """Clean a connection a session held (rollback, variables, temporary tables) and give it
        back; close it instead if the reset fails or ``close`` is set."""
        pool = self.pools[conn.instance]
        if conn.depth and not conn.closed:  # a statement still in flight: it cannot be reset
            conn.abort()
        if close or conn.closed:
            pool.release(conn, reusable=False)
            return
        try:
            await asyncio.wait_for(conn.command(frame(b"\x1f", 0)), 5)
            conn.variables = {}
            conn.status = 0
            conn.prepared.clear()  # the reset deallocated its prepared statements
            # The reset keeps the current database: DAL's record of it (conn.schema) stays
            # true because no statement may change it unseen (USE is DAL's own, and carried
            # statements may not carry it: router/planner.py `_carried_refusal`).
        except (TimeoutError, BackendError):
            conn.abort()
        pool.release(conn)

    # -- counters (exported by dal.metrics) --------------------------------------------------

    def finish_statement(self, kind: str, failed: bool, started: float,
                         fingerprint: bytes | None) -> None:
        """Count an answered statement and observe its latency (``started``: perf_counter)."""
        self.counters[_STATEMENT_KEYS.get((kind, failed)) or _statement_key(kind, failed)] += 1
        self.stats.finish(kind, failed, started, fingerprint)

    def count_refusal(self, code: int) -> None:
        self.counters[("errors", str(code))] += 1

    def count_pin(self, reason: str) -> None:
        self.counters[("pins", reason)] += 1

    def count_login(self, ok: bool) -> None:
        self.counters[("logins", "ok" if ok else "failed")] += 1


async def serve_forever(server: Server, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then drain."""
    await server.start()
    with contextlib.suppress(asyncio.CancelledError):
        await stop.wait()
    await server.stop()
