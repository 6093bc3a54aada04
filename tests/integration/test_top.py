"""`dal top`: --once prints one frame of pools and statements from a running DAL."""

from __future__ import annotations

import subprocess
import sys

from tests.dal_process import ROOT


def dal_top(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dal.cli", "top", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"})


def test_once_prints_pools_and_top_statements(dal, connect) -> None:
    with connect().cursor() as cur:
        for user in range(3):
            cur.execute("SELECT id FROM orders WHERE user_id = %s AND note = 'top'", (user,))
    proc = dal_top("--once", "--port", str(dal.port), "--host", "127.0.0.1", "--limit", "5000")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "backend pools" in out and "top statements" in out
    lines: dict[str, str] = {}
    for line in out.splitlines():  # the pools table comes first; breakers list a and b too
        if line.strip().startswith(("│ a ", "│ b ")):
            lines.setdefault(line.split()[1], line)
    assert set(lines) == {"a", "b"}, out
    assert "127.0.0.1:" in lines["a"]
    assert "SELECT id FROM orders WHERE user_id = ? AND note = ?" in out


def test_unreachable_dal_is_exit_status_1() -> None:
    proc = dal_top("--once", "--host", "127.0.0.1", "--port", "1")
    assert proc.returncode == 1
    assert "cannot connect to DAL at 127.0.0.1:1" in proc.stderr


def test_help_explains_the_view() -> None:
    proc = dal_top("--help")
    assert proc.returncode == 0
    assert "--once" in proc.stdout and "SHOW DAL POOLS" in proc.stdout
