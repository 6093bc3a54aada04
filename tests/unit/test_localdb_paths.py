"""`dal localdb` without starting anything: file paths and the server command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import load_config
from tools.localdb import managed, server_args

TEST_CONFIG = Path(__file__).resolve().parents[2] / "config" / "test.yaml"


def test_paths_sit_beside_the_datadir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    a, b = managed(load_config(TEST_CONFIG))
    assert a.datadir == tmp_path / "var" / "test" / "a"
    assert (a.socket, a.pid_file, a.log) == (
        tmp_path / "var/test/a.sock",
        tmp_path / "var/test/a.pid",
        tmp_path / "var/test/a.log",
    )
    assert b.shown == "var/test/b"


def test_a_long_socket_path_moves_to_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    deep.mkdir()
    monkeypatch.chdir(deep)
    for m in managed(load_config(TEST_CONFIG)):
        assert str(m.socket).startswith("/tmp/dal-")
        assert len(str(m.socket)) < 100
    first, second = managed(load_config(TEST_CONFIG))
    assert first.socket != second.socket


def test_server_never_reads_option_files() -> None:
    args = server_args(managed(load_config(TEST_CONFIG))[0])
    assert args[:3] == ["/usr/sbin/mariadbd", "--no-defaults", "--user=root"]
    for option in ("--port=33161", "--server-id=11", "--binlog-format=ROW", "--log-bin=mysql-bin"):
        assert option in args
