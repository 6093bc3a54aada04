"""The backend accounts of a config and the privileges each holds (docs/security.md).

Three accounts, each with only what its user needs:

- DAL's own (``instances.<name>.user``): `dal serve`, `dal verify`, `dal xa recover`, `dal bench`.
  The data privileges below on the databases the config names (every logical database's default
  database and every dimension's shard databases, ``user\\_%``), nothing global: no FILE,
  SUPER, SHUTDOWN, PROCESS, RELOAD, CREATE USER, GRANT OPTION, and no access to the system
  schemas; routines and triggers on the default databases only; its control database
  ``dal_meta`` (worker leases, the registry of created databases). With
  ``server.create_database_prefix``, the same as on a default database on every database named
  with that prefix (``<prefix>%``): admin users' CREATE/DROP DATABASE
  (dal/created_databases.py). XA RECOVER/COMMIT/ROLLBACK of another connection's prepared
  branch and KILL QUERY of its own connections need no privilege on MariaDB 10.11.
- `dal sync`'s (``sync.user``): reads the binlog (REPLICATION SLAVE, BINLOG MONITOR for SHOW
  MASTER STATUS / SHOW BINARY LOGS) and writes the copy dimensions' shards and its checkpoint
  database ``dal_meta``.
- The DBA's (``dba.user``): `dal schema apply|check`, which create databases and a scratch
  database; data and schema privileges on every database, and BINLOG MONITOR.

`dal localdb up` brings each account to exactly these grants (REVOKE ALL, then GRANT), so that
an instance created by an older version, where DAL's account held ALL PRIVILEGES, is narrowed.
"""

from __future__ import annotations

from dataclasses import dataclass

import pymysql

from config.model import Config

DATA = ("SELECT", "INSERT", "UPDATE", "DELETE")
# DDL: admin's DDL on unsharded tables, `dal schema apply`'s shard tables. No events: DAL
# refuses them (router/access.py).
SCHEMA = ("CREATE", "DROP", "ALTER", "INDEX", "CREATE VIEW", "SHOW VIEW")
SESSION = ("CREATE TEMPORARY TABLES", "LOCK TABLES")  # pinned-session features of DAL
DAL_PRIVILEGES = DATA + SCHEMA + SESSION
# On the default (unsharded) databases only: app's CALL, admin's routines and triggers on
# unsharded tables (their bodies are checked by router/access.py before they reach here).
ROUTINES = ("EXECUTE", "CREATE ROUTINE", "ALTER ROUTINE", "TRIGGER")
# DAL's own control tables (gene worker leases, dal/worker_lease.py), created at first start.
META = (*DATA, "CREATE")
META_DATABASE = "dal_meta"
SYNC_GLOBAL = ("REPLICATION SLAVE", "BINLOG MONITOR")
DBA_GLOBAL = (*DAL_PRIVILEGES, "BINLOG MONITOR")
HOSTS = ("127.0.0.1", "localhost")  # the local instances' accounts; production: DAL's hosts


@dataclass(frozen=True)
class Grant:
    """Privileges on one scope: ``*.*`` or a database name/pattern (`GRANT ... ON <on>`)."""

    privileges: tuple[str, ...]
    on: str

    def sql(self) -> str:
        """The GRANT statement without its ``TO`` clause."""
        return f"GRANT {', '.join(self.privileges)} ON {self.on}"


@dataclass(frozen=True)
class Account:
    """A backend login and the complete list of its grants."""

    role: str  # what uses it: dal, sync, dba
    user: str
    password: str
    grants: tuple[Grant, ...]


def database(name: str, prefix: bool = False) -> str:
    """The GRANT scope of one database (``prefix``: every database whose name starts with it);
    ``_`` and ``%`` in the name match only themselves."""
    literal = name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
    quoted = "`" + (literal + ("%" if prefix else "")).replace("`", "``") + "`"
    return f"{quoted}.*"


def dal_scopes(config: Config) -> list[str]:
    """Every database the config names: default databases, shard database prefixes and the
    legacy databases of migrations (and the databases admin users may create)."""
    scopes: list[str] = []
    for logical in config.databases.values():
        scopes.append(database(logical.default_database))
        scopes += [database(dim.prefix, prefix=True) for dim in logical.dimensions.values()]
        if logical.migration is not None:  # the legacy database a live migration moves from
            scopes.append(database(logical.migration.source_database))
    scopes += created_scopes(config)
    return list(dict.fromkeys(scopes))


def created_scopes(config: Config) -> list[str]:
    """The databases admin users may create through DAL (server.create_database_prefix):
    unsharded, each a default database of its own."""
    prefix = config.server.create_database_prefix
    return [database(prefix, prefix=True)] if prefix else []


def copy_scopes(config: Config) -> list[str]:
    """The shard databases `dal sync` writes: every dimension but the authoritative one."""
    scopes = [database(dim.prefix, prefix=True) for logical in config.databases.values()
              for name, dim in logical.dimensions.items() if name != logical.authoritative]
    return list(dict.fromkeys(scopes))


def accounts(config: Config, instance: str) -> list[Account]:
    """The accounts `dal localdb up` creates on one instance, with their grants."""
    inst = config.instances[instance]
    defaults = {database(logical.default_database) for logical in config.databases.values()}
    defaults.update(created_scopes(config))
    dal = Account("dal", inst.user, inst.password, (
        *(Grant(DAL_PRIVILEGES + (ROUTINES if scope in defaults else ()), scope)
          for scope in dal_scopes(config)),
        Grant(META, database(META_DATABASE))))
    sync = Account("sync", config.sync.user, config.sync.password, (
        Grant(SYNC_GLOBAL, "*.*"),
        *(Grant(DATA, scope) for scope in copy_scopes(config)),
        Grant(META, database(META_DATABASE)),  # its checkpoints and held XA rows
    ))
    dba = Account("dba", config.dba.user, config.dba.password, (Grant(DBA_GLOBAL, "*.*"),))
    return [dal, sync, dba]


def _grants(cur: pymysql.cursors.Cursor, user: str, host: str) -> list[str]:
    cur.execute("SHOW GRANTS FOR %s@%s", (user, host))
    return sorted(row[0] for row in cur.fetchall())


def ensure(cur: pymysql.cursors.Cursor, account: Account) -> bool:
    """Create the account (for every host of `HOSTS`) with its password and exactly its grants
    (REVOKE ALL first). True when its grants changed. Runs as a user holding GRANT OPTION."""
    changed = False
    for host in HOSTS:
        cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s",
                    (account.user, host, account.password))
        cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (account.user, host, account.password))
        before = _grants(cur, account.user, host)
        cur.execute("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s", (account.user, host))
        for grant in account.grants:
            cur.execute(grant.sql().replace("%", "%%") + " TO %s@%s", (account.user, host))
        changed |= _grants(cur, account.user, host) != before
    return changed
