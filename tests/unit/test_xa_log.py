"""The XA decision log: what recovery reads back, whatever a crash left at its end."""

from __future__ import annotations

from pathlib import Path

from dal.xa import is_commit, savepoint_refusal, xid
from dal.xa_log import DecisionLog, compact, pending_decisions


def test_decisions_without_done_are_in_doubt_and_a_torn_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "var" / "xa.log"
    log = DecisionLog(path)
    log.decide_commit("dal:0:1", [("a", "a"), ("b", "b")])
    log.decide_commit("dal:0:2", [("a", "a")])
    log.done("dal:0:1")
    log.close()
    with path.open("a") as out:
        out.write('{"xid":"dal:0:3","decis')  # a crash mid-write: never fsynced, never decided
    assert pending_decisions(path) == {"dal:0:2": [("a", "a")]}
    compact(path, pending_decisions(path))
    assert pending_decisions(path) == {"dal:0:2": [("a", "a")]}
    assert len(path.read_text().splitlines()) == 1
    assert pending_decisions(tmp_path / "missing.log") == {}


def test_xids_are_hex_literals_and_savepoints_are_recognised() -> None:
    assert xid("dal:1", "a") == "X'64616c3a31',X'61'"
    assert savepoint_refusal(b"SAVEPOINT s1") and savepoint_refusal(b" rollback to s1")
    assert savepoint_refusal(b"RELEASE SAVEPOINT s1")
    assert not savepoint_refusal(b"ROLLBACK") and not savepoint_refusal(b"SELECT 1")


def test_commit_and_rollback_are_told_apart_behind_comments() -> None:
    assert is_commit(b"COMMIT") and is_commit(b" /* app */ commit work")
    assert is_commit(b"-- note\nCOMMIT")
    assert not is_commit(b"ROLLBACK") and not is_commit(b"/* commit */ ROLLBACK")
