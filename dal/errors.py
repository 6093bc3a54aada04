"""DAL's own error codes for the front end: (code, SQLSTATE). docs/errors.md lists them all."""

from dal.wire.messages import ERR

ACCESS_DENIED = (1045, "28000")          # ER_ACCESS_DENIED_ERROR: bad user or password
DB_ACCESS_DENIED = (1044, "42000")       # ER_DBACCESS_DENIED_ERROR
BAD_HANDSHAKE = (1043, "08S01")          # ER_HANDSHAKE_ERROR
UNKNOWN_COMMAND = (1047, "08S01")        # ER_UNKNOWN_COM_ERROR
NO_DATABASE = (1046, "3D000")            # ER_NO_DB_ERROR
BAD_DB = (1049, "42000")                 # ER_BAD_DB_ERROR
UNKNOWN_ERROR = (1105, "HY000")          # ER_UNKNOWN_ERROR: backend lost, pool timeout
PACKET_TOO_LARGE = (1153, "08S01")       # ER_NET_PACKET_TOO_LARGE
OUT_OF_ORDER = (1156, "08S01")           # ER_NET_PACKETS_OUT_OF_ORDER
READ_TIMEOUT = (1159, "08S01")           # ER_NET_READ_INTERRUPTED: partial packet, then silence
SPECIFIC_ACCESS_DENIED = (1227, "42000")  # admin statements by non-admin users
NOT_SUPPORTED = (1235, "42000")          # ER_NOT_SUPPORTED_YET
TOO_MANY_CONNECTIONS = (1040, "08004")   # ER_CON_COUNT_ERROR
SHUTTING_DOWN = (1053, "08S01")          # ER_SERVER_SHUTDOWN
SECURE_TRANSPORT_REQUIRED = (3159, "HY000")  # ER_SECURE_TRANSPORT_REQUIRED: users.<n>.require_tls
HOST_BLOCKED = (1129, "HY000")           # ER_HOST_IS_BLOCKED: server.login_backoff


def err(pair: tuple[int, str], message: str) -> ERR:
    """An ERR message for one of the codes above."""
    return ERR(pair[0], message, pair[1])
