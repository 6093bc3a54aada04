"""The codec's one exception type: whatever bytes arrive, decoding raises only this."""


class ProtocolError(Exception):
    """Bytes that do not form the packet or message that was expected.

    The front end turns it into an ERR packet (1105 or 1156) and closes the connection; it never
    escapes as a traceback.
    """

    def __init__(self, message: str, code: int = 1105, sqlstate: str = "HY000") -> None:
        super().__init__(message)
        self.code = code
        self.sqlstate = sqlstate
