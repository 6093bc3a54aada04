"""Backend failures as exceptions: an ERR answer, or a connection that broke or never opened."""

from __future__ import annotations

from dal.wire.messages import ERR


class BackendError(Exception):
    """The backend answered with an ERR packet, or the connection failed."""

    def __init__(self, code: int, message: str, sqlstate: str = "HY000") -> None:
        super().__init__(f"({code}) {message}")
        self.code = code
        self.message = message
        self.sqlstate = sqlstate

    def to_err(self) -> ERR:
        return ERR(self.code, self.message, self.sqlstate)


LOST_DURING_QUERY = (2013, "HY000")  # CR_SERVER_LOST, sent as an ERR (docs/errors.md)


class ConnectionLost(BackendError):
    """The backend connection closed or failed: mid-command (2013), or while connecting or
    shutting down (1105)."""

    def __init__(self, message: str, code: int = 1105) -> None:
        super().__init__(code, message, "HY000")


def lost_during_query(instance: str, detail: str = "") -> ConnectionLost:
    """The error of a command whose backend connection broke under it."""
    return ConnectionLost(f"Lost connection to backend instance '{instance}' during query"
                          f"{detail}", LOST_DURING_QUERY[0])
