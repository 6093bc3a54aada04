"""`dal top` at a terminal's width: at 80 columns every column keeps its header and numbers."""

from __future__ import annotations

import pytest
from rich.console import Console

from tools.top import Frame, render

POOL = {"instance": "a", "address": "127.0.0.1:33161", "max": 16, "in_use": 12, "idle": 4,
        "connecting": 0, "waiting": 3, "opened": 12345, "closed": 67}
STATEMENT = {"fingerprint": "SELECT * FROM orders WHERE user_id = ? AND status IN (?+) ORDER BY id",
             "count": 123456, "errors": 7, "avg_ms": "1.234", "max_ms": "456.789",
             "total_ms": "152345.678"}
BREAKER = {"instance": "a", "state": "half_open", "reason": "error rate 0.62 over 10 s",
           "calls": 120, "failures": 75, "slow": 0, "rejected": 3, "retry_in": "1.5",
           "error_rate": "0.5", "slow_call_rate": "1", "slow_call_seconds": "5",
           "min_calls": 5, "window": "10", "cool_down": "2"}


def _text(width: int) -> str:
    frame = Frame(0.0, [POOL, {**POOL, "instance": "b"}], [STATEMENT], [BREAKER])
    console = Console(width=width, record=True, color_system=None)
    console.print(render(frame, None, 10, "DAL", width))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 100, 160, 200])
def test_every_column_is_readable(width: int) -> None:
    text = _text(width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    for line in lines:  # no table is cut at the terminal's edge
        assert not line.startswith(("┏", "┃", "│", "└")) or line.rstrip()[-1] in "┓┃│┘", line
    for value in ("12345", "123456", "152345.678", "456.789", "half_open", "1.5", "calls",
                  "opened", "closed", "max_ms", "total_ms"):
        assert value in text, (width, value)


def test_wide_terminals_show_addresses_and_breaker_settings() -> None:
    assert "127.0.0.1:33161" in _text(160)
    assert "127.0.0.1:33161" not in _text(80)
    assert "slow_call_seconds" in _text(200)
    assert "slow_call_seconds" not in _text(160)
