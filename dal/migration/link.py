"""One blocking connection to the control tables, used from the event loop through a thread.

pymysql is blocking; `ControlLink.call` runs one unit of work (a function of a cursor) in a
worker thread, one at a time, and reconnects once after a broken connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

import pymysql

from config.model import Instance
from dal.migration import control

T = TypeVar("T")


class ControlLink:
    """A lazily opened connection to ``instance`` (autocommit), with the tables ensured."""

    def __init__(self, instance: Instance, timeout: float = 3.0) -> None:
        self.instance = instance
        self.timeout = timeout
        self._conn: pymysql.connections.Connection | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[control.Cursor], T]) -> T:
        """``work(cursor)`` on the connection (blocking); one reconnect after a lost one."""
        with self._lock:
            for attempt in (0, 1):
                if self._conn is None or not self._conn.open:
                    self._conn = control.connect(self.instance, self.timeout)
                    with self._conn.cursor() as cur:
                        control.ensure_tables(cur)
                try:
                    with self._conn.cursor() as cur:
                        return work(cur)
                except pymysql.err.OperationalError:
                    self.close_locked()
                    if attempt:
                        raise
            raise AssertionError("unreachable")

    async def call(self, work: Callable[[control.Cursor], T]) -> T:
        """``work(cursor)`` in a worker thread."""
        return await asyncio.to_thread(self.run, work)

    def close_locked(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        """Close the connection (it reopens on the next call)."""
        with self._lock:
            self.close_locked()
