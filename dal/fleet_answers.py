"""What a worker answers when another worker of its DAL asks (dal/fleet.py): one handler per
question, each the same code this worker runs for its own clients."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from dal import admin, protect_admin, sessions_view
from dal.fleet_metrics import to_wire
from dal.metrics import ServerCollector

if TYPE_CHECKING:
    from dal.ports import ServerPort


async def _metrics(server: ServerPort, request: dict[str, Any]) -> Any:
    return to_wire(ServerCollector(server).collect())


async def _show(server: ServerPort, request: dict[str, Any]) -> Any:
    return admin.COMMANDS[request["name"]](server)


async def _admin(server: ServerPort, request: dict[str, Any]) -> Any:
    """SET DAL / RELOAD DAL CONFIG, already applied by the worker that was asked."""
    try:
        protect_admin.run(server, request["sql"])
    except protect_admin.AdminError as exc:
        return str(exc)
    return "applied"


async def _processlist(server: ServerPort, request: dict[str, Any]) -> Any:
    return sessions_view.process_rows(server, request["user"], request["admin"],
                                      request["full"])


async def _kill(server: ServerPort, request: dict[str, Any]) -> Any:
    return await sessions_view.kill_in_worker(server, request["id"], request["query_only"],
                                              request["user"], request["admin"])


HANDLERS: dict[str, Callable[[ServerPort, dict[str, Any]], Awaitable[Any]]] = {
    "metrics": _metrics, "show": _show, "admin": _admin, "processlist": _processlist,
    "kill": _kill}


def answerer(server: ServerPort) -> Callable[[dict[str, Any]], Awaitable[Any]]:
    """The ``answer`` function of this worker's `dal.fleet.Fleet`."""

    async def answer(request: dict[str, Any]) -> Any:
        return await HANDLERS[request["op"]](server, request)

    return answer
