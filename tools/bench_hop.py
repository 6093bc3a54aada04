"""`dal bench --hop`: a plain TCP hop (HAProxy, `mode tcp`) in front of the direct target.

The hop forwards bytes and parses nothing, so its throughput against direct is the floor any
proxy reaches on this machine: the extra sends, receives and wake-ups of one more process on
the path, and nothing else. `hop_running` starts HAProxy from the OS packages on a free port
for the run (its configuration in a temporary directory, in the foreground under the bench)
and stops it after. Without the `haproxy` program it says so and yields None: the bench goes
on without the hop (`make install` installs it when the OS packages have it).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tools.bench_common import BenchError

START_TIMEOUT = 10.0
MAXCONN = 20_000  # clients the hop accepts at once at most (--clients-set up to 5,000 and more)


def maxconn() -> int:
    """Connections HAProxy may hold: two descriptors each (client and server side) within the
    open-files limit it inherits, at most MAXCONN."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return MAXCONN
    return max(100, min(MAXCONN, (hard - 100) // 2))

CONFIG = """\
global
    maxconn {maxconn}
    log stderr format short local0 warning

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    maxconn {maxconn}

listen mysql
    bind {host}:{port}
    server backend {backend_host}:{backend_port}
"""


def unavailable() -> str | None:
    """Why the hop cannot run here, or None when `haproxy` is on PATH (or in /usr/sbin)."""
    if program() is None:
        return ("haproxy is not installed (apt-get install haproxy, or `make install`): "
                "the bench goes on without the hop")
    return None


def program() -> str | None:
    """The haproxy executable, or None. $DAL_BENCH_HAPROXY names another one (a path that does
    not exist: none, as on a machine without haproxy)."""
    override = os.environ.get("DAL_BENCH_HAPROXY")
    if override is not None:
        return override if Path(override).is_file() else None
    found = shutil.which("haproxy")
    if found is None and Path("/usr/sbin/haproxy").is_file():
        found = "/usr/sbin/haproxy"
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def hop_running(backend_host: str, backend_port: int,
                host: str = "127.0.0.1") -> Iterator[int | None]:
    """Run HAProxy forwarding ``host``:<a free port> to the backend; yields that port, or None
    (with the reason on stderr) when haproxy is not installed. BenchError if it does not
    start."""
    reason = unavailable()
    exe = program()
    if reason is not None or exe is None:
        print(f"dal bench: --hop: {reason}", file=sys.stderr)
        yield None
        return
    port = free_port(host)
    with tempfile.TemporaryDirectory(prefix="dal-bench-hop-") as folder:
        cfg = Path(folder) / "haproxy.cfg"
        cfg.write_text(CONFIG.format(maxconn=maxconn(), host=host, port=port,
                                     backend_host=backend_host, backend_port=backend_port))
        log = Path(folder) / "haproxy.log"
        with log.open("wb") as out:
            # -db: foreground, no daemon; -W not needed (one process, stopped with SIGTERM).
            proc = subprocess.Popen([exe, "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            _wait(proc, host, port, log)
            print(f"dal bench: hop: haproxy (pid {proc.pid}) on {host}:{port} -> "
                  f"{backend_host}:{backend_port}", file=sys.stderr)
            yield port
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait(proc: subprocess.Popen[bytes], host: str, port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"haproxy exited with status {proc.returncode}: "
                               f"{log.read_text(errors='replace')[-1500:]}")
        if _listening(host, port):
            return
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise BenchError(f"haproxy did not listen on {host}:{port} within {START_TIMEOUT:.0f} s")
