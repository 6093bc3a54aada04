"""Unsharded logical databases made by admin users' CREATE DATABASE (docs/design-notes.md).

A name must start with ``server.create_database_prefix``; the database lives on the default
instance under the same name (DAL's backend account holds a grant on ``<prefix>%``:
tools/accounts.py). The registry is the table `TABLE` on the default instance: every DAL
process (every worker) reads it at start and every `REFRESH` seconds, and the one that runs a
CREATE or DROP updates itself at once. A created database joins the running config's
``databases`` as a `LogicalDatabase` without dimensions whose default database is itself, so
USE, logins with it, qualified names, SHOW DATABASES / TABLES / TABLE STATUS and
information_schema's logical view treat it as they treat a config database's unsharded tables.
A database the config defines is never created, dropped or shadowed here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from config.model import LogicalDatabase
from dal import errors
from dal.wire.framing import frame
from dal.wire.messages import ERR, OK
from pool.connection import BackendConnection, BackendError, Result

if TYPE_CHECKING:
    from dal.ports import ServerPort, SessionPort

log = logging.getLogger("dal.databases")

TABLE = "dal_meta.created_databases"
SETUP = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (name VARCHAR(64) NOT NULL PRIMARY KEY, "
    "created_by VARCHAR(128) NOT NULL, "
    "created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))",
)
REFRESH = 2.0  # seconds between reads of the registry
DB_EXISTS = (1007, "HY000")  # ER_DB_CREATE_EXISTS
DB_MISSING = (1008, "HY000")  # ER_DB_DROP_EXISTS
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")


class CreatedDatabases:
    """This process's view of the registry, and the statements that change it."""

    def __init__(self, server: ServerPort) -> None:
        self.server = server
        self.names: set[str] = set()  # created databases present in config.databases
        self._conn: BackendConnection | None = None  # its own: never a pooled connection
        self._lock = asyncio.Lock()  # one command at a time on it
        self._task: asyncio.Task | None = None

    @property
    def prefix(self) -> str | None:
        return self.server.config.server.create_database_prefix

    async def start(self) -> None:
        """Create the registry where missing, read it, and keep reading it."""
        if self.prefix is None:
            return
        try:
            async with self._lock:
                for sql in SETUP:
                    await self._run(sql)
            await self.refresh()
        except BackendError as exc:
            log.warning("created databases: cannot read %s (%s); retrying every %g s", TABLE,
                        exc.message, REFRESH)
        self._task = asyncio.ensure_future(self._refresh_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            self._conn.close()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            try:
                await self.refresh()
            except BackendError as exc:
                log.debug("created databases: refresh failed: %s", exc.message)

    async def refresh(self) -> None:
        """Read the registry and bring the running config up to date."""
        async with self._lock:
            rows = (await self._run(f"SELECT name FROM {TABLE}")).rows
        self.apply({(row[0] or b"").decode() for row in rows})

    def apply(self, names: set[str]) -> None:
        """``names`` are the created databases now: add and remove them in the config's
        ``databases`` (a config database of the same name wins), dropping cached plans."""
        server = self.server
        databases = server.config.databases
        configured = set(databases) - self.names
        wanted = names - configured
        if wanted == self.names:
            return
        for name in self.names - wanted:
            databases.pop(name, None)
        for name in sorted(wanted - self.names):
            databases[name] = LogicalDatabase.model_construct(
                default_instance=server.default_instance, default_database=name,
                dimensions={}, tables={})
        self.names = wanted
        server.router.databases_changed()

    def configured(self, name: str) -> bool:
        """``name`` is a database of DAL's config file."""
        return name in self.server.config.databases and name not in self.names

    async def _connection(self) -> BackendConnection:
        conn = self._conn
        if conn is None or conn.closed:
            server = self.server
            name = server.default_instance
            inst = server.config.instances[name]
            conn = await BackendConnection.open(
                name, inst.host, inst.port, inst.user, inst.password, None,
                timeout=server.config.pool.connect_timeout, tls=server.pools[name].tls)
            try:  # in dal_meta, as the gene lease's: the backend's processlist tells DAL's
                # control connections from its pools' (which stay within pool.max_size)
                await conn.query("CREATE DATABASE IF NOT EXISTS dal_meta")
                await conn.init_db("dal_meta")
            except BackendError:
                conn.close()
                raise
            self._conn = conn
        return conn

    async def _run(self, sql: str) -> Result:
        """One statement on the registry's connection (the lock held)."""
        conn = await self._connection()
        try:
            return await conn.query(sql)
        finally:
            if conn.closed:
                self._conn = None

    # -- CREATE / DROP DATABASE ------------------------------------------------------------

    def refusal(self, name: str, verb: str) -> ERR | None:
        """Why ``name`` cannot be created or dropped by DAL at all, else None."""
        prefix = self.prefix
        if prefix is None:
            return errors.err(errors.NOT_SUPPORTED, f"{verb} DATABASE is not enabled: DAL's "
                              "logical databases come from its config (databases:); set "
                              "server.create_database_prefix to let admin users create "
                              "unsharded ones")
        if self.configured(name):
            if verb == "CREATE":
                return None  # exists: answered by the caller, as MariaDB answers
            return errors.err(errors.NOT_SUPPORTED, f"DROP DATABASE {name}: '{name}' is "
                              "defined by DAL's config (databases:), not created by an "
                              "admin; remove it from the config instead")
        if (not name.startswith(prefix) or len(name) > 64 or name == prefix
                or not set(name) <= NAME_CHARS):
            return errors.err(errors.NOT_SUPPORTED, f"{verb} DATABASE {name}: DAL creates and "
                              f"drops databases named {prefix}<letters, digits, _ or $> only "
                              "(server.create_database_prefix), up to 64 characters")
        return None

    async def create(self, session: SessionPort, name: str, if_not_exists: bool,
                     options: str) -> bytes:
        """CREATE DATABASE: the registry row, then the database; the framed reply."""
        seq = session.reply_seq
        refused = self.refusal(name, "CREATE")
        if refused is not None:
            return _err(refused, seq)
        async with self._lock:
            rows = (await self._run(f"SELECT name FROM {TABLE} WHERE name = '{name}'")).rows
            if rows or self.configured(name):
                if if_not_exists:
                    return frame(OK(status=session.status).encode(), seq)  # no note kept
                return _err(errors.err(DB_EXISTS, f"Can't create database '{name}'; database "
                                       "exists"), seq)
            user = session.user.replace("\\", "\\\\").replace("'", "\\'")
            await self._run(f"INSERT INTO {TABLE} (name, created_by) VALUES ('{name}', "
                            f"'{user}')")
            try:
                await self._run(f"CREATE DATABASE `{name}` {options}")
            except BackendError:
                with contextlib.suppress(BackendError):
                    await self._run(f"DELETE FROM {TABLE} WHERE name = '{name}'")
                raise
        self.apply(self.names | {name})
        return frame(OK(affected_rows=1, status=session.status).encode(), seq)

    async def drop(self, session: SessionPort, name: str, if_exists: bool) -> bytes:
        """DROP DATABASE: the database, then the registry row; the framed reply."""
        seq = session.reply_seq
        refused = self.refusal(name, "DROP")
        if refused is not None:
            return _err(refused, seq)
        async with self._lock:
            rows = (await self._run(f"SELECT name FROM {TABLE} WHERE name = '{name}'")).rows
            if not rows:
                if if_exists:
                    return frame(OK(status=session.status).encode(), seq)  # no note kept
                return _err(errors.err(DB_MISSING, f"Can't drop database '{name}'; database "
                                       "doesn't exist"), seq)
            result = await self._run(f"DROP DATABASE IF EXISTS `{name}`")
            await self._run(f"DELETE FROM {TABLE} WHERE name = '{name}'")
        self.apply(self.names - {name})
        if session.schema == name:  # as MariaDB: the session that dropped it has none now
            session.schema = None
        affected = result.ok.affected_rows if result.ok is not None else 0
        return frame(OK(affected_rows=affected, status=session.status).encode(), seq)


def _err(err: ERR, seq: int) -> bytes:
    return frame(err.encode(), seq)


async def answer(session: SessionPort, handler: str, args: tuple) -> None:
    """The plan handlers `HANDLERS` (router/database_statements.py)."""
    registry: CreatedDatabases = session.server.created_databases
    name, flag, options = args
    try:
        if handler == "create_database":
            reply = await registry.create(session, name, flag, options)
        else:
            reply = await registry.drop(session, name, flag)
    except BackendError as exc:
        session.send_error(exc.to_err())
        return
    session.send(reply)


HANDLERS = ("create_database", "drop_database")
