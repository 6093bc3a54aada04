"""Several worker processes share DAL's port: each serves clients, ids never collide, and a
SIGTERM to the first stops them all."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

from tests.dal_process import ROOT, DalProcess, free_port, write_config


def start_two_workers(tmp_path: Path) -> tuple[int, DalProcess]:
    """A DAL of two workers on a free port: the port and the first process."""
    path = tmp_path / "dal.yaml"
    port = free_port()
    write_config(path, workers=2, listen={"host": "127.0.0.1", "port": port},
                 metrics={"host": "127.0.0.1", "port": free_port()})
    return port, DalProcess(path, port, tmp_path / "dal.log").start()


def workers_left(port: int) -> str:
    """The pids of the processes serving ``port`` as workers, as pgrep prints them."""
    found = subprocess.run(["pgrep", "-f", "--", f"--port {port} --workers 2"],
                           capture_output=True, text=True, cwd=ROOT, check=False)
    return found.stdout.strip()


def run_directories(port: int) -> list[Path]:
    """The workers' socket directories (dal/fleet.py) of the DAL on ``port`` still present."""
    return list(Path(tempfile.gettempdir()).glob(f"dal-{port}-workers-*"))


def test_two_workers_share_the_port_and_stop_together(tmp_path) -> None:
    port, proc = start_two_workers(tmp_path)
    conns = []
    try:
        ids = set()
        for _ in range(40):
            conn = pymysql.connect(host="127.0.0.1", port=port, user="app", password="app",
                                   database="trade", autocommit=True)
            conns.append(conn)
            with conn.cursor() as cur:
                cur.execute("SELECT CONNECTION_ID()")
                (connection_id,) = cur.fetchone()
                cur.execute("SELECT COUNT(*) >= 0 FROM merchants")
                assert cur.fetchone() == (1,)
            assert connection_id == conn.thread_id()
            ids.add(connection_id)
        assert len(ids) == 40, "two clients got the same connection id"
        assert {i % 2 for i in ids} == {0, 1}, "only one worker served clients"
    finally:
        for conn in conns:
            conn.close()
        code = proc.stop()
    assert code == 0
    assert workers_left(port) == "", "a worker outlived the first one's SIGTERM"
    assert run_directories(port) == []


def test_workers_die_with_the_first_process_even_on_sigkill(tmp_path) -> None:
    """No worker may go on serving the port alone when the first process dies abruptly."""
    port, proc = start_two_workers(tmp_path)
    assert proc.proc is not None
    if not workers_left(port):
        proc.stop()
        raise AssertionError("the second worker did not start")
    proc.proc.kill()
    proc.proc.wait()
    deadline = time.monotonic() + 10
    while workers_left(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert workers_left(port) == "", "a worker outlived the first process's SIGKILL"
