"""Processes that outlive their reason to run: the `dal sync` child of `dal serve --with-sync`
dies with it, even on SIGKILL; a second `dal sync` of one config is refused and names the
first; `dal localdb up` on a port someone else holds says so and exits non-zero."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.dal_process import ROOT, free_port, running_test_config, wait_port, write_config
from tests.sync_process import SyncProcess, sync_config
from tools import localdb
from tools.sync import SHUTDOWN_LIMIT


def _gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaped counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def _dal(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dal.cli", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, check=False)


def test_sync_child_dies_when_serve_is_killed(tmp_path: Path) -> None:
    running_test_config()
    path = tmp_path / "dal.yaml"
    port = free_port()
    raw = write_config(path, listen={"host": "127.0.0.1", "port": port},
                       metrics={"host": "127.0.0.1", "port": free_port()})
    status = tmp_path / "sync-status.json"
    child = None
    raw["sync"] = {"metrics": {"host": "127.0.0.1", "port": free_port()},
                   "status_file": str(status)}
    path.write_text(yaml.safe_dump(raw))
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen([sys.executable, "-m", "dal.cli", "serve", "--config",
                                  str(path), "--with-sync"], cwd=ROOT, stdout=log,
                                 stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, 30, serve)
        deadline = time.monotonic() + 30
        while child is None and time.monotonic() < deadline:
            try:
                child = json.loads(status.read_text())["pid"]
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        assert child is not None, "the dal sync child wrote no status within 30 s"
        assert not _gone(child)
        serve.kill()
        serve.wait(10)
        # A graceful stop commits the batch in progress; past SHUTDOWN_LIMIT it exits anyway.
        deadline = time.monotonic() + SHUTDOWN_LIMIT + 5
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(child), (f"dal sync (pid {child}) outlived its killed dal serve; its log: "
                              f"{(tmp_path / 'serve.log').read_text()[-3000:]}")
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait(10)
        if child is not None and not _gone(child):  # never left to follow beside later tests
            os.kill(child, signal.SIGKILL)


def test_second_sync_of_one_config_is_refused(tmp_path: Path) -> None:
    running_test_config()
    path = tmp_path / "sync.yaml"
    raw = sync_config(path)
    first = SyncProcess(path, raw).start()
    try:
        second = _dal("sync", "--config", str(path), "--no-metrics", timeout=30)
        assert second.returncode == 3, second.stderr
        assert f"another `dal sync` of this config is running (pid {first.proc.pid}" in (
            second.stderr), second.stderr
        assert "Traceback" not in second.stderr
        assert first.proc.poll() is None, "the refused start disturbed the running follower"
    finally:
        assert first.stop() == 0
    # Once the first is gone (even killed, the kernel drops its lock), a new one starts.
    again = SyncProcess(path, raw).start()
    again.kill()


def _instance_config(tmp_path: Path, port: int) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    raw["instances"] = {"a": {"host": "127.0.0.1", "port": port, "user": "dal",
                              "password": "dal", "datadir": str(tmp_path / "a")}}
    for db in raw["databases"].values():
        for dim in db["dimensions"].values():
            dim["placement"] = [{"shards": f"0-{dim.get('shards', 120) - 1}", "instance": "a"}]
    path = tmp_path / "localdb.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("listen", [True, False], ids=["listening", "bound-only"])
def test_localdb_up_on_a_taken_port_names_it(tmp_path: Path, listen: bool) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    if listen:
        holder.listen()
    port = holder.getsockname()[1]
    try:
        done = _dal("localdb", "up", "--config", str(_instance_config(tmp_path, port)))
    finally:
        holder.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {port} (127.0.0.1:{port}) is already in use" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "ProcessLookupError" not in done.stderr
    assert not (tmp_path / "a").exists(), "it initialised a datadir it could not serve"


def test_stopping_an_instance_that_already_exited_is_quiet(tmp_path: Path) -> None:
    """The clean-up after a mariadbd that died during start-up (it was reaped already)."""
    done = subprocess.Popen(["true"])
    done.wait()
    said: list[str] = []
    m = localdb.managed(localdb.load_config(_instance_config(tmp_path, free_port())))[0]
    localdb._stop(m, done.pid, said.append)
    assert said == ["a: stopped"]
    assert not os.path.exists(m.pid_file)
