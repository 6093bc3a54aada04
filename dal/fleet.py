"""The worker processes of one DAL (``server.workers: N``) and the local channel between them.

Worker 0 makes a directory for the run (`run_directory`) and passes it to the others; each
worker listens on ``worker-<index>.sock`` in it. Any worker can then ask the others a question
(`Fleet.ask`: one JSON line out, one JSON line back per peer, all peers at once, each bounded
by a timeout) and merge their answers with its own: /metrics (dal/fleet_metrics.py), SHOW DAL
(dal/fleet_admin.py), SET DAL / RELOAD DAL CONFIG, SHOW PROCESSLIST and KILL
(dal/fleet_answers.py answers them). A peer that does not answer in time (busy, dead, not yet
started) is left out of the answer; callers report how many answered.

With one worker there is no fleet (``server.fleet`` is None): nothing listens, nothing is
asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import socket
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("dal.fleet")

ASK_TIMEOUT = 2.0  # seconds a peer has to answer one question
LIMIT = 64 * 1024 * 1024  # bytes of one answer (SHOW DAL STATEMENTS of 2,000 fingerprints)

Answerer = Callable[[dict[str, Any]], Awaitable[Any]]


def run_directory(port: int) -> Path:
    """A new, empty directory for one DAL run's worker sockets (worker 0 makes it; removed on
    exit). Under the system temporary directory: a Unix socket's path is limited to 107 bytes.
    Directories of earlier runs on this port where no worker listens any more (a worker 0
    killed before its workers had started) are removed first."""
    prefix = f"dal-{port}-workers-"
    for stale in Path(tempfile.gettempdir()).glob(prefix + "*"):
        if not any(_listening(path) for path in stale.glob("worker-*.sock")):
            remove_run_directory(stale)
    return Path(tempfile.mkdtemp(prefix=prefix))


def remove_run_directory(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _listening(path: Path) -> bool:
    """Whether a worker still listens on the Unix socket ``path``."""
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def owner_of(connection_id: int, workers: int) -> int:
    """The worker index that gave out ``connection_id`` (dal/server.py counts worker i's ids
    as i + 1, i + 1 + workers, ...)."""
    return (connection_id - 1) % workers


class Fleet:
    """This worker's end of the channel: it answers the peers' questions with ``answer`` and
    asks them its own."""

    def __init__(self, directory: Path, index: int, workers: int, answer: Answerer) -> None:
        self.directory = directory
        self.index = index
        self.workers = workers
        self.answer = answer
        self._server: asyncio.AbstractServer | None = None

    def socket_path(self, index: int) -> Path:
        return self.directory / f"worker-{index}.sock"

    @property
    def peers(self) -> list[int]:
        return [i for i in range(self.workers) if i != self.index]

    async def start(self) -> None:
        """Listen for the peers' questions."""
        path = self.socket_path(self.index)
        path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(path), limit=LIMIT)

    async def stop(self) -> None:
        """Stop answering; the last worker to stop removes the run directory (worker 0 does
        too on a clean exit; this covers a worker 0 that was killed)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.socket_path(self.index).unlink(missing_ok=True)
        if not any(_listening(path) for path in self.directory.glob("worker-*.sock")):
            remove_run_directory(self.directory)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline())
            try:
                reply: Any = {"ok": await self.answer(request)}
            except Exception as exc:  # a question this build cannot answer: say so, go on
                log.warning("worker %d could not answer %r: %s", self.index, request, exc)
                reply = {"error": str(exc)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def ask_one(self, index: int, request: dict[str, Any],
                      timeout: float = ASK_TIMEOUT) -> Any:
        """Worker ``index``'s answer to ``request``, or None when it did not give one."""
        try:
            return await asyncio.wait_for(self._ask(index, request), timeout)
        except (OSError, ValueError, TimeoutError, asyncio.IncompleteReadError,
                LookupError) as exc:
            log.debug("worker %d did not answer %r: %s", index, request.get("op"), exc)
            return None

    async def _ask(self, index: int, request: dict[str, Any]) -> Any:
        reader, writer = await asyncio.open_unix_connection(str(self.socket_path(index)),
                                                            limit=LIMIT)
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            reply = json.loads(await reader.readline())
        finally:
            writer.close()
        if "error" in reply:
            raise LookupError(reply["error"])
        return reply["ok"]

    async def ask(self, request: dict[str, Any], timeout: float = ASK_TIMEOUT) -> dict[int, Any]:
        """Every peer's answer to ``request``, by worker index; peers that did not answer in
        ``timeout`` seconds are missing."""
        peers = self.peers
        answers = await asyncio.gather(*(self.ask_one(i, request, timeout) for i in peers))
        return {i: a for i, a in zip(peers, answers, strict=True) if a is not None}
