"""The typed configuration model.

A YAML file is loaded into these pydantic models by `config.loader`. Every field has a type and,
where it has one, a range; an unknown key is an error, so that a typo is refused rather than
silently ignored.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from config.migration import MigrationConfig
from config.protection import BreakerConfig, LimitsConfig, RulesConfig
from config.sections import Section

NATIVE_HASH = re.compile(r"^\*[0-9A-Fa-f]{40}$")
SHA2_HASH = re.compile(r"^sha2:[0-9A-Fa-f]{64}$")


class Strict(Section):
    """Base for every config section: unknown keys are errors, values are not coerced loosely."""


class Endpoint(Strict):
    """A TCP address DAL listens on."""

    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)


class BackendTLS(Strict):
    """TLS from DAL to one backend instance. Without ``ca`` the link is encrypted but the
    backend's certificate is not checked; with it, the certificate must chain to ``ca``
    (and name ``host`` if ``check_hostname``). ``cert``/``key``: a client certificate."""

    ca: str | None = None
    check_hostname: bool = False
    cert: str | None = None
    key: str | None = None


class Instance(Strict):
    """One backend MariaDB/MySQL server."""

    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    user: str
    password: str
    # Only for instances that `dal localdb` manages: where its data lives and its binlog server id.
    datadir: str | None = None
    server_id: int = Field(default=1, ge=1, le=4294967295)
    tls: BackendTLS | None = None

    def login_as(self, user: str, password: str) -> Instance:
        """This instance reached with another account (`dal sync`'s, the DBA's)."""
        return self.model_copy(update={"user": user, "password": password})


class PoolConfig(Strict):
    """Backend pool sizing and timeouts, per instance."""

    max_size: int = Field(default=16, ge=1, le=10000)
    min_idle: int = Field(default=0, ge=0)
    acquire_timeout: float = Field(default=5.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    max_lifetime: float = Field(default=3600.0, gt=0)
    idle_timeout: float = Field(default=600.0, gt=0)
    # Acquirers that may queue for a busy pool; one more is refused at once (1105).
    max_waiters: int = Field(default=10000, ge=0)
    # Seconds between sweeps: close expired and broken idle connections, warm up to min_idle.
    sweep_interval: float = Field(default=5.0, gt=0)
    # Autocommit statements of different sessions in flight at once on one backend connection
    # when the pool is full (docs/design-notes.md "Pipelining"); 0 = one at a time.
    pipeline_depth: int = Field(default=8, ge=0, le=256)
    # Pipeline such statements before the pool is full, once this many connections run them:
    # fewer backend threads, each reading statements back to back, cost the backend and DAL
    # less CPU per statement where the backend's cores are the limit ("Pipelining before the
    # pool is full" in docs/design-notes.md); 0 = only when the pool is full.
    pipeline_spread: int = Field(default=0, ge=0, le=10000)

    @model_validator(mode="after")
    def _min_within_max(self) -> PoolConfig:
        if self.min_idle > self.max_size:
            raise ValueError(f"min_idle ({self.min_idle}) must not exceed max_size "
                             f"({self.max_size})")
        return self


class Placement(Strict):
    """A range of shard numbers held on one instance, e.g. ``shards: 0-59, instance: a``."""

    shards: str
    instance: str

    @field_validator("shards")
    @classmethod
    def _range(cls, value: str) -> str:
        if not re.fullmatch(r"\d+-\d+|\d+", value):
            raise ValueError("expected a shard range such as '0-59' or a single shard such as '7'")
        low, _, high = value.partition("-")
        if high and int(high) < int(low):
            raise ValueError(f"range {value!r} ends before it starts")
        return value

    def numbers(self) -> range:
        """The shard numbers this placement covers."""
        low, _, high = self.shards.partition("-")
        return range(int(low), int(high or low) + 1)


class Dimension(Strict):
    """One sharding dimension: ``shard = key % shards``, held in database ``prefix + NNN``."""

    key: str
    shards: int = Field(default=120, ge=1, le=4096)
    prefix: str
    placement: list[Placement]

    def database(self, shard: int) -> str:
        """The physical database name of a shard, e.g. ``user_017``."""
        return f"{self.prefix}{shard:03d}"


class TableKind(StrEnum):
    SHARDED = "sharded"
    BOUND = "bound"
    BROADCAST = "broadcast"
    UNSHARDED = "unsharded"


class Table(Strict):
    """A table the sharding config names. Tables it does not name are unsharded.

    A sharded table is split over every dimension by that dimension's key column (override
    per table with ``keys: {user: some_column}``; a table listed under ``keys`` lives only in
    the dimensions listed). ``genes`` are columns holding order-ID genes, which route in any
    dimension; ``generated`` is the column DAL fills with a new gene ID when an INSERT omits it.
    """

    kind: TableKind
    bound_to: str | None = None
    keys: dict[str, str] | None = None
    genes: list[str] = []
    generated: str | None = None

    @model_validator(mode="after")
    def _bound(self) -> Table:
        if (self.kind is TableKind.BOUND) != (self.bound_to is not None):
            raise ValueError("'bound_to' is required for kind 'bound' and allowed only there")
        return self


class LogicalDatabase(Strict):
    """A database as clients see it, with the shards behind it."""

    default_instance: str
    default_database: str
    dimensions: dict[str, Dimension]
    authoritative: str = "user"
    tables: dict[str, Table] = {}
    # UPDATE/DELETE on a sharded table without its shard key reaches every shard. Refused
    # unless this is set.
    allow_scatter_writes: bool = False
    # Config key `schema`: the file of CREATE TABLE statements `dal schema apply` uses for this
    # logical database, relative to the `config/` package directory (an absolute path is used
    # as is). Default: ``schema/<logical database name>.sql``, e.g. config/schema/trade.sql for
    # `trade`. (Named schema_file in Python: `schema` is taken by pydantic's BaseModel.)
    schema_file: str | None = Field(default=None, alias="schema")
    # A live move of some of these tables from an unsharded legacy database (config/migration.py).
    migration: MigrationConfig | None = None

    @field_validator("schema_file")
    @classmethod
    def _schema_file(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("expected a file name, e.g. 'schema/trade.sql', or leave it out")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LogicalDatabase:
        if self.authoritative not in self.dimensions:
            raise ValueError(
                f"authoritative dimension {self.authoritative!r} is not among dimensions")
        for name, table in self.tables.items():
            if table.bound_to is not None and table.bound_to not in self.tables:
                raise ValueError(f"table {name!r} is bound to unknown table {table.bound_to!r}")
        for name in self.migration.tables if self.migration else ():
            kind = self.tables[name].kind if name in self.tables else None
            if kind not in (TableKind.SHARDED, TableKind.BOUND):
                raise ValueError(f"migration.tables: {name!r} is not a sharded or bound table")
        return self


class Role(StrEnum):
    APP = "app"
    ADMIN = "admin"


class User(Strict):
    """A DAL user. Give ``password`` (local use) or ``password_hash`` (production).

    ``password_hash`` is either MySQL's native form ``*<40 hex>`` (SHA1(SHA1(pw))), or
    ``sha2:<64 hex>`` (SHA256(SHA256(pw)), what caching_sha2_password fast auth checks).
    """

    password: str | None = None
    password_hash: str | None = None
    role: Role = Role.APP
    databases: list[str] | None = None
    # Refuse this user's logins over plain TCP (MySQL's require_secure_transport, per user).
    require_tls: bool = False

    @model_validator(mode="after")
    def _one_secret(self) -> User:
        if (self.password is None) == (self.password_hash is None):
            raise ValueError("give exactly one of 'password' or 'password_hash'")
        if self.password_hash is not None and not (
            NATIVE_HASH.match(self.password_hash) or SHA2_HASH.match(self.password_hash)
        ):
            raise ValueError("password_hash must be '*' + 40 hex digits or 'sha2:' + 64 hex digits")
        return self

    def allowed_databases(self) -> frozenset[str] | None:
        """The logical databases this user may name, or None when it has no list (all)."""
        return None if self.databases is None else frozenset(self.databases)

    def native_hash(self) -> bytes | None:
        """SHA1(SHA1(password)), the stored form mysql_native_password checks against."""
        if self.password is not None:
            return hashlib.sha1(hashlib.sha1(self.password.encode()).digest()).digest()
        if self.password_hash and self.password_hash.startswith("*"):
            return bytes.fromhex(self.password_hash[1:])
        return None

    def sha2_hash(self) -> bytes | None:
        """SHA256(SHA256(password)), the stored form caching_sha2_password fast auth checks."""
        if self.password is not None:
            return hashlib.sha256(hashlib.sha256(self.password.encode()).digest()).digest()
        if self.password_hash and self.password_hash.startswith("sha2:"):
            return bytes.fromhex(self.password_hash[5:])
        return None


class ServerTLS(Strict):
    """TLS for clients: PEM certificate (chain) and private key files."""

    cert: str
    key: str


class LoginBackoff(Strict):
    """Slowing down password guessing (dal/login_backoff.py, docs/errors.md 1129).

    After ``failures`` failed logins from one client address within ``window`` seconds (no
    successful login from it in between), the address is blocked: every login from it is
    refused with 1129, the right password too, for ``base`` seconds, doubled at each further
    failure up to ``max_block``. After ``failures`` failed logins for one user name (from any
    address) within ``window``, every login attempt for that user waits ``base`` seconds,
    doubled at each further failure up to ``max_delay``, before its password is checked; a
    delay, not a block, so that an attacker elsewhere cannot lock the user out. A successful
    login resets its user's and its address's counts. ``tracked``: at most this many addresses
    and as many user names are remembered (least recently seen forgotten first).
    """

    enabled: bool = True
    failures: int = Field(default=5, ge=1, le=1000)
    window: float = Field(default=60.0, gt=0, le=86400)
    base: float = Field(default=1.0, gt=0, le=3600)
    max_block: float = Field(default=30.0, gt=0, le=86400)
    max_delay: float = Field(default=5.0, ge=0, le=60)
    tracked: int = Field(default=10000, ge=16, le=1_000_000)

    @model_validator(mode="after")
    def _caps(self) -> LoginBackoff:
        if self.base > self.max_block:
            raise ValueError(f"base ({self.base}) must not exceed max_block ({self.max_block})")
        return self


class Server(Strict):
    """The proxy process itself."""

    listen: Endpoint = Endpoint(port=3307)
    metrics: Endpoint = Endpoint(port=9104)
    # Gene worker id (router/genes.py, 0..31): unset, each process leases a free one from
    # dal_meta.gene_workers on the default instance (dal/worker_lease.py); set, the process
    # (worker i of server.workers: worker_id + i) takes that one, refused while another holds it.
    worker_id: int | None = Field(default=None, ge=0, le=31)
    max_packet: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_clients: int = Field(default=10000, ge=1)
    # Rows a multi-shard merge may hold in memory before the statement is refused.
    max_merge_rows: int = Field(default=100000, ge=1)
    # Prepared statements one client session may hold (MySQL's max_prepared_stmt_count).
    max_prepared_per_session: int = Field(default=16382, ge=1)
    # Seconds a client may take to log in, and to finish a packet it has started sending.
    login_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    # Seconds SIGTERM waits for statements in flight before closing clients.
    drain_timeout: float = Field(default=10.0, ge=0)
    # Processes serving the listen port together (SO_REUSEPORT), to use more than one core.
    # Each takes pool.max_size // workers backend connections per instance, a gene worker id
    # of its own, and connection ids of its own; /metrics and SHOW DAL describe
    # the first worker only.
    workers: int = Field(default=1, ge=1, le=64)
    # The version clients see; by default the default backend's, with "-dal" appended.
    server_version: str | None = None
    # With a certificate and key, DAL offers TLS (CLIENT_SSL) to its clients.
    tls: ServerTLS | None = None
    # Blocks/delays after repeated failed logins (LoginBackoff above).
    login_backoff: LoginBackoff = LoginBackoff()
    # CREATE DATABASE / DROP DATABASE by admin users (dal/created_databases.py): the unsharded
    # logical databases they may create are named with this prefix, and live on the default
    # instance under the same name (DAL's backend account holds a grant on `<prefix>%`,
    # docs/security.md). None: refused.
    create_database_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_$]{1,32}$")


class SyncConfig(Strict):
    """`dal sync` (the binlog follower that keeps the non-authoritative dimensions equal to the
    authoritative one) and `dal verify dimensions`. Paths are relative to the working directory.

    ``user``/``password``: the backend account `dal sync` logs in with on every instance, its own
    (REPLICATION SLAVE, BINLOG MONITOR, and writes to the copy shards and ``dal_meta``; see
    docs/security.md); the default is the local one `dal localdb up` creates."""

    user: str = "dal_sync"
    password: str = "dal_sync"
    metrics: Endpoint = Endpoint(port=9105)
    # The replica server id it registers with on each source; unique among the sources' replicas.
    server_id: int = Field(default=4105, ge=1, le=4294967295)
    status_file: str = "var/sync-status.json"  # lag per source, read by `SHOW DAL SHARDS`
    batch_transactions: int = Field(default=500, ge=1)  # source transactions per applied batch
    verify_rows_per_second: int = Field(default=50000, ge=1)  # load bound of `dal verify`
    verify_chunk_rows: int = Field(default=2000, ge=10)


class DbaConfig(Strict):
    """The backend account of the tools that create databases (`dal schema apply|check`); never
    used by `dal serve`. The default is the local one `dal localdb up` creates
    (docs/security.md lists what a production DBA account needs)."""

    user: str = "dal_dba"
    password: str = "dal_dba"


class TransactionMode(StrEnum):
    SINGLE = "single"
    XA = "xa"


class TransactionsConfig(Strict):
    """How a transaction that reaches several shards runs (docs/design-notes.md).

    ``single``: one shard per transaction, a second one refused (1235). ``xa``: one XA branch
    per backend instance, two-phase commit with ``decision_log`` (a file this DAL instance
    owns, relative to the working directory) and recovery at start-up. ``xid_prefix`` starts
    every XA transaction id DAL makes; recovery touches only those, so DAL instances sharing
    backends need different prefixes. ``lock_wait_timeout`` (seconds, mode xa): set as the
    session's ``innodb_lock_wait_timeout`` on every branch, because a deadlock across two
    instances is invisible to each and ends only at that timeout; unset keeps the backend's
    (50 s by default). Read at start-up only: a change needs a restart.
    """

    mode: TransactionMode = TransactionMode.SINGLE
    decision_log: str = "var/xa-decisions.log"
    xid_prefix: str = Field(default="dal", pattern=r"^[A-Za-z0-9_-]{1,16}$")
    lock_wait_timeout: int | None = Field(default=None, ge=1, le=3600)

    @field_validator("decision_log")
    @classmethod
    def _log_path(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("expected a file path, e.g. 'var/xa-decisions.log'")
        return value


class Config(Strict):
    """The whole configuration of one DAL process."""

    server: Server = Server()
    sync: SyncConfig = SyncConfig()
    dba: DbaConfig = DbaConfig()
    instances: dict[str, Instance]
    pool: PoolConfig = PoolConfig()
    databases: dict[str, LogicalDatabase]
    users: dict[str, User]
    breaker: BreakerConfig = BreakerConfig()
    limits: LimitsConfig = LimitsConfig()
    rules: RulesConfig = RulesConfig()
    transactions: TransactionsConfig = TransactionsConfig()
    version: Literal[1] = 1

    @model_validator(mode="after")
    def _references(self) -> Config:
        for db_name, db in self.databases.items():
            if db.default_instance not in self.instances:
                raise ValueError(
                    f"databases.{db_name}.default_instance: "
                    f"unknown instance {db.default_instance!r}"
                )
            if db.migration and db.migration.source_instance not in self.instances:
                raise ValueError(f"databases.{db_name}.migration.source_instance: unknown "
                                 f"instance {db.migration.source_instance!r}")
            for dim_name, dim in db.dimensions.items():
                seen: dict[int, str] = {}
                for place in dim.placement:
                    if place.instance not in self.instances:
                        raise ValueError(
                            f"databases.{db_name}.dimensions.{dim_name}.placement: "
                            f"unknown instance {place.instance!r}"
                        )
                    for shard in place.numbers():
                        if shard in seen:
                            raise ValueError(
                                f"databases.{db_name}.dimensions.{dim_name}.placement: "
                                f"shard {shard} placed twice"
                            )
                        seen[shard] = place.instance
                missing = sorted(set(range(dim.shards)) - set(seen))
                extra = sorted(set(seen) - set(range(dim.shards)))
                if missing or extra:
                    raise ValueError(
                        f"databases.{db_name}.dimensions.{dim_name}.placement: shards "
                        f"{missing[:5] or extra[:5]} {'not placed' if missing else 'out of range'}"
                    )
        self._created_names_apart()
        for user_name, user in self.users.items():
            if user.require_tls and self.server.tls is None:
                raise ValueError(f"users.{user_name}.require_tls: DAL offers no TLS; "
                                 "set server.tls: {cert: ..., key: ...}")
            for db_name in user.databases or []:
                if db_name not in self.databases:
                    raise ValueError(f"users.{user_name}.databases: unknown database {db_name!r}")
        return self

    def _created_names_apart(self) -> None:
        """Databases admin users create never take the name of one DAL already uses."""
        prefix = self.server.create_database_prefix
        if prefix is None:
            return
        taken = ["dal_meta", *(db.default_database for db in self.databases.values()),
                 *(dim.prefix for db in self.databases.values()
                   for dim in db.dimensions.values())]
        for name in taken:
            if name.startswith(prefix):
                raise ValueError(f"server.create_database_prefix: {prefix!r} would let admin "
                                 f"users create databases named like {name!r}, which DAL "
                                 "already uses; choose another prefix")

    @model_validator(mode="after")
    def _distinct_accounts(self) -> Config:
        """DAL's, `dal sync`'s and the DBA's backend accounts hold different grants."""
        for name, inst in self.instances.items():
            for key, other in (("sync.user", self.sync.user), ("dba.user", self.dba.user)):
                if inst.user == other:
                    raise ValueError(f"instances.{name}.user: {inst.user!r} is also {key}; DAL's "
                                     "backend account must be its own (docs/security.md)")
        if self.sync.user == self.dba.user:
            raise ValueError(f"sync.user: {self.sync.user!r} is also dba.user; give `dal sync` "
                             "its own account (docs/security.md)")
        return self

    def shard_instance(self, db: str, dimension: str, shard: int) -> str:
        """The instance name that holds one shard."""
        for place in self.databases[db].dimensions[dimension].placement:
            if shard in place.numbers():
                return place.instance
        raise KeyError(f"{db}.{dimension} shard {shard} has no placement")
