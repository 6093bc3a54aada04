"""Many clients in one process: point reads and single-shard transactions on `orders`.

Each client is one asyncio MySQL connection (DAL's own client-role `BackendConnection`, a few
KB per connection, so 2,000 fit in one process) that owns one user id and that user's order
rows. It alternates a point read with a transaction

    BEGIN; SELECT ... FOR UPDATE; UPDATE orders ...; [INSERT INTO orders ...;] COMMIT

and checks every answer against what it wrote itself: the value read, the affected rows, and
at the end (`verify`) the rows on the owning shard. The same statements run against DAL
(database `trade`) or directly against each user's shard database (`user_NNN` on its
instance), so `dal bench --many` and the load test compare the two at the same client count.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pymysql

from config.model import Config
from pool.connection import BackendConnection, BackendError

GENE = 120 * 120  # an order id is seq * GENE + merchant_shard * 120 + user_shard
INSERT_EVERY = 4  # every 4th transaction also inserts a new order
CONNECT_PARALLEL = 64  # connection attempts in flight at once (keeps accept backlogs sane)
MAX_SAMPLES = 5


def order_id(user: int, seq: int) -> int:
    """An order id with a valid gene for ``user`` (merchant_id = user): ``seq`` 0 is the row
    `prepare` creates, 1.. the ones transactions insert."""
    shard = user % 120
    return (user * 1000 + seq) * GENE + shard * 120 + shard


@dataclass(frozen=True)
class Endpoint:
    """Where one client connects, and as whom."""

    host: str
    port: int
    user: str
    password: str
    database: str


Route = Callable[[int], Endpoint]  # user id -> where that user's client connects


def dal_route(host: str, port: int, user: str = "app", password: str = "app",
              database: str = "trade") -> Route:
    """Every client connects to DAL's logical database."""
    endpoint = Endpoint(host, port, user, password, database)
    return lambda _user: endpoint


def direct_route(config: Config, database: str = "trade") -> Route:
    """Each client connects straight to the instance and shard database of its user."""
    name = config.databases[database].authoritative
    dim = config.databases[database].dimensions[name]

    def route(user: int) -> Endpoint:
        shard = user % dim.shards
        inst = config.instances[config.shard_instance(database, name, shard)]
        return Endpoint(inst.host, inst.port, inst.user, inst.password, dim.database(shard))

    return route


@dataclass
class LoadResult:
    """What the clients did and what went wrong."""

    clients: int = 0
    connected: int = 0
    reads: int = 0
    transactions: int = 0
    statements: int = 0
    seconds: float = 0.0
    connect_seconds: float = 0.0
    errors: int = 0
    wrong: int = 0
    samples: list[str] = field(default_factory=list)
    expected: dict[int, tuple[int, int]] = field(default_factory=dict)  # user -> (total, rows)

    @property
    def statements_per_second(self) -> float:
        return self.statements / self.seconds if self.seconds else 0.0

    def note(self, kind: str, message: str) -> None:
        if kind == "error":
            self.errors += 1
        else:
            self.wrong += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(f"{kind}: {message}")


def prepare(config: Config, users: list[int], database: str = "trade") -> None:
    """Give each user exactly one order (total 0), directly on its shard."""
    route = direct_route(config, database)
    by_place: dict[tuple[str, int, str], list[int]] = {}
    for user in users:
        ep = route(user)
        by_place.setdefault((ep.host, ep.port, ep.database), []).append(user)
    conns: dict[tuple[str, int], pymysql.connections.Connection] = {}
    try:
        for (host, port, db), members in by_place.items():
            if (host, port) not in conns:
                ep = route(members[0])
                conns[(host, port)] = pymysql.connect(host=host, port=port, user=ep.user,
                                                      password=ep.password, autocommit=True)
            with conns[(host, port)].cursor() as cur:
                cur.execute(f"DELETE FROM `{db}`.orders WHERE user_id IN %s", (members,))
                cur.executemany(
                    f"INSERT INTO `{db}`.orders (id, user_id, merchant_id, status, total, note, "
                    "created_at, updated_at) VALUES (%s, %s, %s, 0, 0, 'new', NOW(6), NOW(6))",
                    [(order_id(u, 0), u, u) for u in members])
    finally:
        for conn in conns.values():
            conn.close()


def verify(config: Config, expected: dict[int, tuple[int, int]],
           database: str = "trade") -> list[str]:
    """Compare each user's rows on its shard with what its client committed."""
    route = direct_route(config, database)
    problems: list[str] = []
    conns: dict[tuple[str, int], pymysql.connections.Connection] = {}
    try:
        for user, (total, rows) in expected.items():
            ep = route(user)
            conn = conns.get((ep.host, ep.port))
            if conn is None:
                conn = conns[(ep.host, ep.port)] = pymysql.connect(
                    host=ep.host, port=ep.port, user=ep.user, password=ep.password,
                    autocommit=True)
            with conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*), (SELECT total FROM `{ep.database}`.orders "
                            f"WHERE id = %s) FROM `{ep.database}`.orders WHERE user_id = %s",
                            (order_id(user, 0), user))
                found = cur.fetchone()
            if found is None or int(found[0]) != rows or int(found[1]) != total:
                problems.append(f"user {user}: shard has {found}, committed ({rows}, {total})")
    finally:
        for conn in conns.values():
            conn.close()
    return problems


async def _client(user: int, endpoint: Endpoint, gate: asyncio.Semaphore, start: asyncio.Event,
                  stop_at: list[float], result: LoadResult) -> None:
    async with gate:
        try:
            conn = await BackendConnection.open("client", endpoint.host, endpoint.port,
                                                endpoint.user, endpoint.password,
                                                endpoint.database, timeout=30)
        except BackendError as exc:
            result.note("error", f"connect: {exc}")
            return
    result.connected += 1
    oid = order_id(user, 0)
    total, rows, n = 0, 1, 0
    try:
        await start.wait()
        while time.monotonic() < stop_at[0]:
            n += 1
            if n % 2:
                got = (await conn.query(f"SELECT total, note FROM orders WHERE user_id = {user} "
                                        f"AND id = {oid}")).rows
                result.statements += 1
                result.reads += 1
                if len(got) != 1 or int(float(got[0][0] or b"-1")) != total:
                    result.note("wrong", f"user {user} read {got}, expected total {total}")
                continue
            await conn.query("BEGIN")
            got = (await conn.query(f"SELECT total FROM orders WHERE user_id = {user} "
                                    f"AND id = {oid} FOR UPDATE")).rows
            if len(got) != 1 or int(float(got[0][0] or b"-1")) != total:
                result.note("wrong", f"user {user} locked {got}, expected total {total}")
            done = await conn.query(f"UPDATE orders SET total = total + 1, note = 'n{n}', "
                                    f"updated_at = NOW(6) WHERE user_id = {user} AND id = {oid}")
            if done.ok is None or done.ok.affected_rows != 1:
                result.note("wrong", f"user {user} update affected {done.ok}")
            statements = 5
            inserted = 0
            if (n // 2) % INSERT_EVERY == 0:
                done = await conn.query(
                    "INSERT INTO orders (id, user_id, merchant_id, status, total, note, "
                    f"created_at, updated_at) VALUES ({order_id(user, rows)}, {user}, {user}, "
                    "1, 1.50, 'tx', NOW(6), NOW(6))")
                statements += 1
                inserted = 1
                if done.ok is None or done.ok.affected_rows != 1:
                    result.note("wrong", f"user {user} insert affected {done.ok}")
            await conn.query("COMMIT")
            total += 1
            rows += inserted
            result.statements += statements
            result.transactions += 1
    except BackendError as exc:
        result.note("error", f"user {user}: {exc}")
    finally:
        result.expected[user] = (total, rows)
        conn.close()


async def run(users: list[int], route: Route, duration: float,
              connect_timeout: float = 60.0) -> LoadResult:
    """Connect one client per user, then run the workload for ``duration`` seconds."""
    result = LoadResult(clients=len(users))
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    start = asyncio.Event()
    stop_at = [float("inf")]
    began = time.monotonic()
    tasks = [asyncio.ensure_future(_client(u, route(u), gate, start, stop_at, result))
             for u in users]
    deadline = began + connect_timeout
    while result.connected + result.errors < len(users) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    result.connect_seconds = time.monotonic() - began
    t0 = time.monotonic()
    stop_at[0] = t0 + duration
    start.set()
    await asyncio.wait(tasks, timeout=duration + 120)
    result.seconds = time.monotonic() - t0
    for task in tasks:
        if not task.done():
            task.cancel()
            result.note("error", "a client did not finish within 120 s of the end")
    return result


def run_blocking(users: list[int], route: Route, duration: float) -> LoadResult:
    """`run` on a fresh uvloop event loop (the caller is synchronous)."""
    import uvloop

    return uvloop.run(run(users, route, duration))
