"""Start, stop and inspect the local MariaDB instances that a config describes.

  dal localdb up       initialise (the first time) and start every instance that has a
                       `datadir`, then create the backend accounts with exactly their grants:
                       DAL's (instances.*.user), `dal sync`'s (sync.user), the DBA's (dba.user);
                       see tools/accounts.py and docs/security.md
  dal localdb down     stop them: SIGTERM, then SIGKILL after 60 s
  dal localdb status   one line per instance; exit 0 if all run, 3 otherwise

Only instances with a `datadir` are managed. A relative datadir is relative to the current
directory. Each one is a plain `mariadbd --no-defaults`, so /etc/mysql is never read and the
system MariaDB is never touched. It listens on the instance's host and port only and keeps the
row binlog (for `dal sync`) in its data directory. Beside a data directory DIR live DIR.sock,
DIR.pid and DIR.log (the server's output and error log).

`up` and `down` are idempotent: an instance that already runs is left running, only its accounts
are brought to their grants (REVOKE ALL, then GRANT: an account an older version created with
ALL PRIVILEGES is narrowed; a line says which changed), and stopping a stopped instance does
nothing. MariaDB's root user has no password (`dal localdb` logs in as root over the socket):
local use only.

Exit status: 0 done, 1 failed, 2 bad config, 3 (status) an instance is not running.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pymysql

from config.loader import ConfigError, load_config
from config.model import Config, Instance
from tools import accounts as acl
from tools.proc_net import TIME_WAIT, tcp_sockets

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
TCP_GRACE = 5.0  # once the socket answers, how long the TCP port may lag behind
SOCKET_PATH_MAX = 100

# Server options after --no-defaults and the per-instance ones (see `server_args`).
SERVER_OPTIONS = (
    "--log-bin=mysql-bin",
    "--binlog-format=ROW",
    "--binlog-row-image=FULL",
    "--binlog-row-metadata=FULL",
    "--skip-name-resolve",
    # `dal bench --clients-set ...,5000` connects 5,000 clients to the direct target.
    "--max-connections=6000",
    "--max-allowed-packet=64M",
    "--innodb-buffer-pool-size=256M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-log-file-size=64M",
    "--sync-binlog=0",
    "--performance-schema=OFF",
    "--table-open-cache=8000",
    # 60 shard databases of 3 tables per dimension and instance: keep every definition cached.
    "--table-definition-cache=4000",
    # The Debian package's default (/etc/mysql/mariadb.conf.d/50-server.cnf), which
    # --no-defaults would otherwise drop.
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
)

Say = Callable[[str], None]


class LocalDbError(Exception):
    """An instance could not be initialised, started or stopped. The message says which and why."""


@dataclass(frozen=True)
class Managed:
    """One instance that `dal localdb` manages, with the absolute paths of its files."""

    name: str
    instance: Instance
    shown: str  # the datadir as the config writes it
    datadir: Path
    socket: Path
    pid_file: Path
    log: Path
    accounts: tuple[acl.Account, ...] = ()  # created by `up`, with their grants

    @property
    def address(self) -> str:
        return f"{self.instance.host}:{self.instance.port}"


@dataclass(frozen=True)
class InstanceStatus:
    """What `status` found for one managed instance."""

    name: str
    host: str
    port: int
    datadir: str
    running: bool
    pid: int | None
    version: str | None = None
    error: str | None = None

    def line(self) -> str:
        """One line for the terminal."""
        state = f"running  pid {self.pid}" if self.running else "stopped"
        if self.version:
            state += f"  {self.version}"
        elif self.running and self.error:
            state += f"  (not answering: {self.error})"
        return f"{self.name}  {self.host}:{self.port}  {self.datadir}  {state}"


def managed(config: Config) -> list[Managed]:
    """The instances of a config that have a datadir, with their socket, pid and log paths."""
    result = []
    for name, inst in config.instances.items():
        if inst.datadir is None:
            continue
        datadir = Path(inst.datadir).absolute()
        sock = datadir.with_name(datadir.name + ".sock")
        if len(str(sock)) >= SOCKET_PATH_MAX:
            digest = hashlib.sha1(str(datadir).encode()).hexdigest()[:12]
            sock = Path(f"/tmp/dal-{digest}.sock")
        result.append(
            Managed(
                name=name,
                instance=inst,
                shown=inst.datadir,
                datadir=datadir,
                socket=sock,
                pid_file=datadir.with_name(datadir.name + ".pid"),
                log=datadir.with_name(datadir.name + ".log"),
                accounts=tuple(acl.accounts(config, name)),
            )
        )
    return result


# ---- processes ------------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (our own zombie children are reaped)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _serves(pid: int, datadir: Path) -> bool:
    """Whether the process is a mariadbd started on this data directory."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    program = os.path.basename(argv[0].decode(errors="replace"))
    return program.startswith(("mariadbd", "mysqld")) and f"--datadir={datadir}".encode() in argv


def server_pid(m: Managed) -> int | None:
    """The pid of the mariadbd serving this datadir, from its pid file or else from /proc."""
    try:
        pid = int(m.pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = None
    if pid is not None and _alive(pid) and _serves(pid, m.datadir):
        return pid
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _serves(int(entry.name), m.datadir) and _alive(int(entry.name)):
            return int(entry.name)
    return None


def server_args(m: Managed) -> list[str]:
    """The mariadbd command line for one instance. --no-defaults must come first."""
    return [
        MARIADBD,
        "--no-defaults",
        "--user=root",
        f"--datadir={m.datadir}",
        f"--port={m.instance.port}",
        f"--bind-address={m.instance.host}",
        f"--socket={m.socket}",
        f"--pid-file={m.pid_file}",
        f"--server-id={m.instance.server_id}",
        f"--tmpdir={tmpdir(m)}",
        *SERVER_OPTIONS,
        *tls_args(m),
    ]


def tls_args(m: Managed) -> list[str]:
    """An instance DAL reaches over TLS (instances.<name>.tls) serves TLS, with a self-signed
    pair made once next to its datadir (<datadir>.tls/server-cert.pem: the `ca` to verify)."""
    if m.instance.tls is None:
        return []
    from tools.certs import self_signed

    folder = m.datadir.with_name(m.datadir.name + ".tls")
    cert, key = folder / "server-cert.pem", folder / "server-key.pem"
    self_signed(cert, key, f"DAL local instance {m.name}")
    return [f"--ssl-cert={cert}", f"--ssl-key={key}"]


def tmpdir(m: Managed) -> Path:
    """A temporary directory of the instance's own: two servers bootstrapping at once in /tmp
    collide on their temporary table names (mariadb-install-db then fails)."""
    path = m.datadir.with_name(m.datadir.name + ".tmp")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _log_tail(m: Managed, lines: int = 15) -> str:
    try:
        text = m.log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    " + line for line in text[-lines:])


def _port_taken(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _port_bound(host: str, port: int) -> bool:
    """Whether another socket holds host:port, listening or not (a bind fails as mariadbd's
    would; connecting alone misses a socket that is bound but not listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as mariadbd does
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


# Linux keeps a closed connection's local port for 60 s (TIME_WAIT). Ports of the ephemeral
# range (32768-60999, the test config's 33161/33162 among them) can be such a port after many
# client connections, a bench's say: nothing else holds it, and it frees itself.
TIME_WAIT_SECONDS = 65


def _port_freed(m: Managed, say: Callable[[str], None]) -> bool:
    """Whether the instance's port is free to bind, waiting at most `TIME_WAIT_SECONDS` when
    only closed connections (TIME_WAIT) hold it."""
    host, port = m.instance.host, m.instance.port
    if not _port_bound(host, port):
        return True
    if not _only_time_wait(port):
        return False
    say(f"{m.name}: port {port} is held by closed connections (TIME_WAIT); waiting up to "
        f"{TIME_WAIT_SECONDS} s for the kernel to release it")
    deadline = time.monotonic() + TIME_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if not _port_bound(host, port):
            return True
        if not _only_time_wait(port):
            return False
    return False


def _only_time_wait(port: int) -> bool:
    """Whether every TCP socket with local port ``port`` is in TIME_WAIT (Linux; False where
    /proc/net/tcp cannot be read). A socket that is only bound is not listed there."""
    states = [state for local, state, _ in tcp_sockets() if local == port]
    return bool(states) and all(state == TIME_WAIT for state in states)


def _port_in_use(m: Managed) -> str:
    """The refusal when the instance's port is taken by something else."""
    return (f"{m.name}: port {m.instance.port} ({m.address}) is already in use by a process "
            f"that is not the mariadbd of {m.datadir}; stop it, or give instances.{m.name}.port "
            "another port")


# ---- connections ----------------------------------------------------------------------------


def root_connect(m: Managed, timeout: float = 2.0) -> pymysql.connections.Connection:
    """A connection as MariaDB's root over the unix socket (no password; see mariadb-install-db)."""
    passwords = [""] + ([m.instance.password] if m.instance.user == "root" else [])
    for i, password in enumerate(passwords):
        try:
            return pymysql.connect(
                unix_socket=str(m.socket),
                user="root",
                password=password,
                connect_timeout=timeout,
                autocommit=True,
            )
        except pymysql.err.OperationalError:
            if i == len(passwords) - 1:
                raise
    raise AssertionError("unreachable")


def _user_version(m: Managed) -> str:
    """Log in over TCP as the config's user, as DAL will, and return the server version."""
    conn = pymysql.connect(
        host=m.instance.host,
        port=m.instance.port,
        user=m.instance.user,
        password=m.instance.password,
        connect_timeout=2,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def _ensure_accounts(m: Managed, say: Say) -> None:
    """Bring DAL's, `dal sync`'s and the DBA's accounts to their grants (tools/accounts.py);
    says so when an account changed, e.g. DAL's ALL PRIVILEGES from an older version."""
    conn = root_connect(m)
    try:
        with conn.cursor() as cur:
            changed = [a for a in m.accounts if a.user != "root" and acl.ensure(cur, a)]
    finally:
        conn.close()
    if changed:
        say(f"{m.name}: granted " + "; ".join(f"{a.user} ({a.role}) its privileges"
                                              for a in changed))


# ---- up -------------------------------------------------------------------------------------


def _initialised(datadir: Path) -> bool:
    system = datadir / "mysql"
    return (system / "global_priv.MAD").exists() or (system / "user.frm").exists()


def _initialise(m: Managed, say: Say) -> None:
    """Run mariadb-install-db into a scratch directory, then move it into place."""
    if m.datadir.exists() and any(m.datadir.iterdir()):
        raise LocalDbError(
            f"{m.name}: {m.datadir} is not empty but holds no MariaDB system tables; "
            "remove it or point the config elsewhere"
        )
    say(f"{m.name}: initialising {m.shown}")
    scratch = m.datadir.with_name(m.datadir.name + ".init")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    with m.log.open("ab") as log:
        log.write(f"---- dal localdb: mariadb-install-db {time.ctime()} ----\n".encode())
        log.flush()
        done = subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                "--user=root",
                f"--datadir={scratch}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
                f"--tmpdir={tmpdir(m)}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise LocalDbError(
            f"{m.name}: mariadb-install-db failed (exit {done.returncode}); "
            f"end of {m.log}:\n{_log_tail(m)}"
        )
    if m.datadir.exists():
        m.datadir.rmdir()
    scratch.rename(m.datadir)


def _start(m: Managed) -> subprocess.Popen[bytes]:
    """Start mariadbd in its own session, its output appended to the log file."""
    with m.log.open("ab") as log:
        log.write(f"---- dal localdb: mariadbd start {time.ctime()} ----\n".encode())
        log.flush()
        return subprocess.Popen(
            server_args(m),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )


def _wait_ready(m: Managed, proc: subprocess.Popen[bytes] | None, pid: int) -> None:
    """Poll until root logs in over the socket and the TCP port answers; fail early if it dies."""
    deadline = time.monotonic() + START_TIMEOUT
    last = f"no login within {START_TIMEOUT:.0f} s"
    while time.monotonic() < deadline:
        exited = proc.poll() if proc is not None else (None if _alive(pid) else -1)
        if exited is not None:
            tail = _log_tail(m)
            cause = (f"port {m.instance.port} ({m.address}) is in use; "
                     if "already in use" in tail or "Bind on TCP/IP port" in tail else "")
            raise LocalDbError(
                f"{m.name}: mariadbd exited (status {exited}) during start-up: {cause}"
                f"end of {m.log}:\n{tail}"
            )
        try:
            root_connect(m, timeout=1).close()
        except pymysql.err.MySQLError as exc:
            last = f"no login within {START_TIMEOUT:.0f} s: {exc}"
        else:
            if _port_taken(m.instance.host, m.instance.port):
                return
            last = f"it answers on {m.socket} but not on {m.address}"
            deadline = min(deadline, time.monotonic() + TCP_GRACE)
        time.sleep(0.2)
    raise LocalDbError(
        f"{m.name}: mariadbd (pid {pid}) is not ready ({last}); end of {m.log}:\n{_log_tail(m)}"
    )


def up_one(m: Managed, say: Say) -> None:
    """Bring one instance up: initialise, start, wait, create the user. A no-op if it runs."""
    pid = server_pid(m)
    if pid is not None:
        try:
            _user_version(m)
            _ensure_accounts(m, say)
            say(f"{m.name}: already running, pid {pid} on {m.address}")
            return
        except pymysql.err.MySQLError:
            say(f"{m.name}: running, pid {pid}; waiting for it and checking user {m.instance.user}")
            _wait_ready(m, None, pid)
            _ensure_accounts(m, say)
            return
    if _port_taken(m.instance.host, m.instance.port) or not _port_freed(m, say):
        raise LocalDbError(_port_in_use(m))
    if not _initialised(m.datadir):
        _initialise(m, say)
    m.pid_file.unlink(missing_ok=True)
    proc = _start(m)
    try:
        _wait_ready(m, proc, proc.pid)
        _ensure_accounts(m, say)
    except (LocalDbError, pymysql.err.MySQLError):
        _stop(m, proc.pid, lambda line: None)
        raise
    # The child outlives us by design; keep Popen from warning about it at exit.
    proc.returncode = 0
    say(f"{m.name}: started pid {proc.pid} on {m.address} (log {m.log})")


def _each(config: Config, action: Callable[[Managed, Say], None], say: Say) -> None:
    """Run an action on every managed instance at once; raise one error naming all failures."""
    targets = managed(config)
    if not targets:
        say("no instance in this config has a datadir: nothing to manage")
        return
    lock = threading.Lock()

    def locked_say(line: str) -> None:
        with lock:
            say(line)

    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        futures = [pool.submit(action, m, locked_say) for m in targets]
    errors = []
    for m, future in zip(targets, futures, strict=True):
        exc = future.exception()
        if isinstance(exc, LocalDbError):
            errors.append(str(exc))
        elif exc is not None:
            errors.append(f"{m.name}: {type(exc).__name__}: {exc}")
    if errors:
        raise LocalDbError("\n".join(errors))


def _print(line: str) -> None:
    print(line, flush=True)


def up(config: Config, say: Say = _print) -> None:
    """Start every managed instance of the config (initialising it if new), concurrently."""
    _each(config, up_one, say)


# ---- down -----------------------------------------------------------------------------------


def _stop(m: Managed, pid: int, say: Say) -> None:
    """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL and remove the pid file and socket."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:  # already gone (e.g. a mariadbd that exited during start-up)
        say(f"{m.name}: stopped")
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if not _alive(pid):
            say(f"{m.name}: stopped")
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    while _alive(pid):
        time.sleep(0.1)
    m.pid_file.unlink(missing_ok=True)
    m.socket.unlink(missing_ok=True)
    say(f"{m.name}: killed (no clean stop within {STOP_TIMEOUT:.0f} s)")


def down_one(m: Managed, say: Say) -> None:
    """Stop one instance. A no-op if it is not running."""
    pid = server_pid(m)
    if pid is None:
        say(f"{m.name}: not running")
        return
    say(f"{m.name}: stopping pid {pid}")
    _stop(m, pid, say)


def down(config: Config, say: Say = _print) -> None:
    """Stop every managed instance of the config, concurrently."""
    _each(config, down_one, say)


# ---- status ---------------------------------------------------------------------------------


def status(config: Config) -> list[InstanceStatus]:
    """The state of every managed instance; the version is read by logging in as DAL would."""
    result = []
    for m in managed(config):
        pid = server_pid(m)
        version = error = None
        if pid is not None:
            try:
                version = _user_version(m)
            except pymysql.err.MySQLError as exc:
                error = str(exc.args[-1]) if exc.args else str(exc)
        result.append(
            InstanceStatus(
                name=m.name,
                host=m.instance.host,
                port=m.instance.port,
                datadir=m.shown,
                running=pid is not None,
                pid=pid,
                version=version,
                error=error,
            )
        )
    return result


# ---- command line ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `dal localdb` arguments."""
    parser.add_argument("action", choices=["up", "down", "status"], help="what to do")


def run(args: argparse.Namespace) -> int:
    """Run `dal localdb`: 0 done, 1 failed, 2 bad config, 3 (status) an instance is down."""
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        if args.action == "up":
            up(config)
        elif args.action == "down":
            down(config)
        else:
            found = status(config)
            for item in found:
                print(item.line())
            return 0 if all(item.running for item in found) else 3
    except LocalDbError as exc:
        print(f"dal localdb {args.action}: {exc}", file=sys.stderr)
        return 1
    return 0
