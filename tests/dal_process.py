"""Start and stop a real `dal serve` process for tests, with a config derived from test.yaml."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# DAL_TEST_CONFIG names another copy of test.yaml (other ports and datadirs), so that two
# checkouts can run their suites side by side; `make test TESTCFG=...` sets it.
TEST_CONFIG = Path(os.environ.get("DAL_TEST_CONFIG") or ROOT / "config" / "test.yaml").resolve()

# Users only the tests know: `legacy`/`legacy` stored as a native hash only (caching_sha2
# clients then take the full-auth RSA path), `modern`/`modern` stored as a sha2 hash only,
# `secure`/`secure` (both hashes) and `secure_legacy`/`secure_legacy` (native hash only) allowed
# in over TLS only (users.<name>.require_tls).


def running_test_config():
    """config/test.yaml, loaded from the repository root (its datadirs are relative); skips
    the calling test when the test instances are not running."""
    import pytest

    from config.loader import load_config
    from tools import localdb

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        cfg = load_config(TEST_CONFIG)
        if not all(item.running for item in localdb.status(cfg)):
            pytest.skip("test instances not running: `dal localdb up --config config/test.yaml`")
    return cfg


def dba_login() -> tuple[str, str]:
    """User and password of the test config's DBA account (`dba:`, docs/security.md): for
    direct set-up DAL's own backend account may not do (scratch databases, binlog status)."""
    from config.model import DbaConfig

    dba = DbaConfig(**(yaml.safe_load(TEST_CONFIG.read_text()).get("dba") or {}))
    return dba.user, dba.password


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_config(path: Path, **server_overrides: object) -> dict:
    """A copy of test.yaml with test-only users and server settings; returns the raw dict."""
    import hashlib

    raw = yaml.safe_load(TEST_CONFIG.read_text())
    native = hashlib.sha1(hashlib.sha1(b"legacy").digest()).hexdigest().upper()
    sha2 = hashlib.sha256(hashlib.sha256(b"modern").digest()).hexdigest()
    raw["users"]["legacy"] = {"password_hash": f"*{native}", "role": "app"}
    raw["users"]["modern"] = {"password_hash": f"sha2:{sha2}", "role": "app"}
    raw["users"]["secure"] = {"password": "secure", "role": "app", "require_tls": True}
    secure_native = hashlib.sha1(hashlib.sha1(b"secure_legacy").digest()).hexdigest().upper()
    raw["users"]["secure_legacy"] = {"password_hash": f"*{secure_native}", "role": "app",
                                     "require_tls": True}
    # TLS for clients with a self-signed pair made for this run (see tests/integration/test_tls.py).
    from tools.certs import self_signed

    cert, key = path.parent / "dal-cert.pem", path.parent / "dal-key.pem"
    self_signed(cert, key)
    raw["server"]["tls"] = {"cert": str(cert), "key": str(key)}
    raw["server"].update(server_overrides)
    path.write_text(yaml.safe_dump(raw))
    return raw


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"dal serve exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


class DalProcess:
    """A `dal serve` subprocess; ``stop()`` sends SIGTERM and waits for the drain."""

    def __init__(self, config_path: Path, port: int, log_path: Path) -> None:
        self.config_path = config_path
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, metrics: bool = True) -> DalProcess:
        args = [sys.executable, "-m", "dal.cli", "serve", "--config", str(self.config_path),
                "--port", str(self.port)]
        if not metrics:
            args.append("--no-metrics")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        wait_port("127.0.0.1", self.port, 20, self.proc)
        return self

    def stop(self, timeout: float = 20) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_own_dal(directory: Path, log: Path, sections: dict,
                  **server_overrides: object) -> tuple[DalProcess, dict, Path]:
    """A started DAL of its own on free ports: test.yaml with ``server_overrides`` and
    ``sections`` (top-level keys replaced, ``pool`` and ``users`` merged). Returns the
    process, its raw config and the config file; the caller stops it."""
    path = directory / "dal-own.yaml"
    raw = write_config(path, listen={"host": "127.0.0.1", "port": free_port()},
                       metrics={"host": "127.0.0.1", "port": free_port()}, **server_overrides)
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if key in ("pool", "users") else value
    path.write_text(yaml.safe_dump(raw))
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = DalProcess(path, raw["server"]["listen"]["port"], log).start()
    return proc, raw, path


def dal_with_pool(directory: Path, pool: dict, **server_overrides: object) -> tuple[DalProcess,
                                                                                     dict]:
    """A started DAL of its own (free ports) with these `pool` settings; its raw config.
    The caller stops it."""
    proc, raw, _ = start_own_dal(directory, directory / "dal.log", {"pool": pool},
                                 **server_overrides)
    return proc, raw
