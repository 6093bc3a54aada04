"""Protocol constants: capability flags, commands, status flags, column types."""

from enum import IntEnum, IntFlag


class Capability(IntFlag):
    LONG_PASSWORD = 1
    FOUND_ROWS = 1 << 1
    LONG_FLAG = 1 << 2
    CONNECT_WITH_DB = 1 << 3
    NO_SCHEMA = 1 << 4
    COMPRESS = 1 << 5
    ODBC = 1 << 6
    LOCAL_FILES = 1 << 7
    IGNORE_SPACE = 1 << 8
    PROTOCOL_41 = 1 << 9
    INTERACTIVE = 1 << 10
    SSL = 1 << 11
    IGNORE_SIGPIPE = 1 << 12
    TRANSACTIONS = 1 << 13
    RESERVED = 1 << 14
    SECURE_CONNECTION = 1 << 15
    MULTI_STATEMENTS = 1 << 16
    MULTI_RESULTS = 1 << 17
    PS_MULTI_RESULTS = 1 << 18
    PLUGIN_AUTH = 1 << 19
    CONNECT_ATTRS = 1 << 20
    PLUGIN_AUTH_LENENC_CLIENT_DATA = 1 << 21
    CAN_HANDLE_EXPIRED_PASSWORDS = 1 << 22
    SESSION_TRACK = 1 << 23
    DEPRECATE_EOF = 1 << 24


class Command(IntEnum):
    SLEEP = 0x00
    QUIT = 0x01
    INIT_DB = 0x02
    QUERY = 0x03
    FIELD_LIST = 0x04
    CREATE_DB = 0x05
    DROP_DB = 0x06
    REFRESH = 0x07
    SHUTDOWN = 0x08
    STATISTICS = 0x09
    PROCESS_INFO = 0x0A
    CONNECT = 0x0B
    PROCESS_KILL = 0x0C
    DEBUG = 0x0D
    PING = 0x0E
    TIME = 0x0F
    DELAYED_INSERT = 0x10
    CHANGE_USER = 0x11
    BINLOG_DUMP = 0x12
    TABLE_DUMP = 0x13
    CONNECT_OUT = 0x14
    REGISTER_SLAVE = 0x15
    STMT_PREPARE = 0x16
    STMT_EXECUTE = 0x17
    STMT_SEND_LONG_DATA = 0x18
    STMT_CLOSE = 0x19
    STMT_RESET = 0x1A
    SET_OPTION = 0x1B
    STMT_FETCH = 0x1C
    DAEMON = 0x1D
    BINLOG_DUMP_GTID = 0x1E
    RESET_CONNECTION = 0x1F
    STMT_BULK_EXECUTE = 0xFA  # MariaDB


# MariaDB: CLIENT_MYSQL is LONG_PASSWORD's bit. A server that clears it is MariaDB and sends
# extended capabilities in the greeting's reserved bytes; the client answers with its own.
CLIENT_MYSQL = 1
MARIADB_CLIENT_STMT_BULK_OPERATIONS = 1 << 2  # of the extended capabilities (1 << 34 in all)
# Column definitions carry a block of extended type info after org_name (1 << 35 in all): the
# data type name ("inet6", "uuid", "point", ...) and format ("json").
MARIADB_CLIENT_EXTENDED_METADATA = 1 << 3
EXTENDED_TYPE_NAME, EXTENDED_FORMAT = 0, 1  # the keys of its entries

# A backend connection's flavour (pool/pool.py): the client choices it is opened with because
# they change what the backend sends, as one int. FOUND_ROWS changes affected-rows; extended
# metadata changes every column definition. An acquire takes a connection of its flavour.
FLAVOUR_FOUND_ROWS = 1 << 1  # Capability.FOUND_ROWS
FLAVOUR_EXTENDED_METADATA = MARIADB_CLIENT_EXTENDED_METADATA << 32


def flavour_of(capabilities: int, extended: int) -> int:
    """The backend flavour a client's negotiated capabilities and extended capabilities ask
    for."""
    return (capabilities & FLAVOUR_FOUND_ROWS) | (
        FLAVOUR_EXTENDED_METADATA if extended & MARIADB_CLIENT_EXTENDED_METADATA else 0)


class Status(IntFlag):
    IN_TRANS = 0x0001
    AUTOCOMMIT = 0x0002
    MORE_RESULTS_EXISTS = 0x0008
    NO_GOOD_INDEX_USED = 0x0010
    NO_INDEX_USED = 0x0020
    CURSOR_EXISTS = 0x0040
    LAST_ROW_SENT = 0x0080
    DB_DROPPED = 0x0100
    NO_BACKSLASH_ESCAPES = 0x0200
    METADATA_CHANGED = 0x0400
    QUERY_WAS_SLOW = 0x0800
    PS_OUT_PARAMS = 0x1000
    IN_TRANS_READONLY = 0x2000
    SESSION_STATE_CHANGED = 0x4000


MAX_PAYLOAD = 0xFFFFFF

OK_HEADER = 0x00
EOF_HEADER = 0xFE
ERR_HEADER = 0xFF
LOCAL_INFILE_HEADER = 0xFB
AUTH_SWITCH_HEADER = 0xFE
AUTH_MORE_DATA_HEADER = 0x01
