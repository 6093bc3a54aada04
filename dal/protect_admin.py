"""Admin statements for protection settings (admin users only; dal/admin.py dispatches):

- ``SHOW DAL BREAKERS``, ``SHOW DAL LIMITS``, ``SHOW DAL RULES``;
- ``SET DAL <path> = <value>``: ``<path>`` is a dotted key under ``breaker``, ``limits``,
  ``rules`` or ``pool.max_waiters``/``acquire_timeout``/``pipeline_depth``/``pipeline_spread``;
  a segment with dots or spaces is quoted
  (``limits.fingerprints.'SELECT * FROM orders WHERE id = 1'``).
  ``<value>`` is YAML: ``0.3``, ``true``, ``delay``, ``{rate: 50, burst: 100}``; ``DEFAULT``
  or ``NULL`` removes the key (a limit is dropped, a threshold goes back to its default). The
  whole config is validated again before anything changes;
- ``RELOAD DAL CONFIG``: re-read the file DAL started with; a bad file changes nothing.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from config.loader import ConfigError, format_errors, load_config
from config.model import Config
from dal.protection import LIVE_POOL_KEYS
from pool.breaker import OPEN

if TYPE_CHECKING:
    from dal.ports import ServerPort

Rows = tuple[list[str], list[list[object]]]

UNKNOWN_SETTING = (1193, "HY000")   # ER_UNKNOWN_SYSTEM_VARIABLE
BAD_VALUE = (1231, "42000")         # ER_WRONG_VALUE_FOR_VAR
RELOAD_FAILED = (1105, "HY000")     # ER_UNKNOWN_ERROR, with the loader's message
LIVE_SECTIONS = ("breaker", "limits", "rules")
RESTART_SECTIONS = ("instances", "databases", "users", "transactions")


class AdminError(Exception):
    """A refused admin statement: (code, SQLSTATE) and a message."""

    def __init__(self, pair: tuple[int, str], message: str) -> None:
        super().__init__(message)
        self.code, self.sqlstate = pair


# -- SHOW --------------------------------------------------------------------------------------

def show_breakers(server: ServerPort) -> Rows:
    header = ["worker", "instance", "state", "reason", "calls", "failures", "slow", "rejected",
              "retry_in", "error_rate", "slow_call_rate", "slow_call_seconds", "min_calls",
              "window", "cool_down"]
    rows: list[list[object]] = []
    now = time.monotonic()
    for name, pool in server.pools.items():
        b = pool.breaker
        calls, failures, slow = b.window_counts()
        cfg = b.config
        retry = (f"{max(0.0, b.opened_at + cfg.cool_down - now):.1f}" if b.state == OPEN
                 else None)
        rows.append([server.worker_index, name, b.state, b.reason or None, calls, failures,
                     slow, b.rejected, retry, f"{cfg.error_rate:g}", f"{cfg.slow_call_rate:g}",
                     f"{cfg.slow_call_seconds:g}", cfg.min_calls, f"{cfg.window:g}",
                     f"{cfg.cool_down:g}"])
    return header, rows


def show_limits(server: ServerPort) -> Rows:
    header = ["worker", "rule", "rate", "burst", "action", "max_delay", "tokens", "throttled"]
    limiter = server.protection.limiter
    counters = server.protection.counters
    rows: list[list[object]] = []
    for bucket in limiter.buckets() if limiter is not None else []:
        lim = bucket.limit
        rows.append([server.worker_index, bucket.rule, f"{lim.rate:g}", f"{bucket.capacity:g}",
                     lim.action.value, f"{lim.max_delay:g}", f"{bucket.tokens:.2f}",
                     counters[("throttled", bucket.rule)]])
    return header, rows


def show_rules(server: ServerPort) -> Rows:
    header = ["rule", "value", "refused"]
    counters = server.protection.counters
    rules = server.config.rules
    rows: list[list[object]] = [
        [f"rules.{name}", str(value).lower() if isinstance(value, bool) else f"{value:g}",
         counters[("rules", _LABELS.get(name, name))]]
        for name, value in rules.model_dump().items()]
    rows.append(["ddl for app users", "denied", counters[("rules", "ddl")]])
    scatter = {db: cfg.allow_scatter_writes for db, cfg in server.config.databases.items()}
    rows.append(["scatter writes", ", ".join(f"{db}: {'allowed' if ok else 'denied'}"
                                             for db, ok in scatter.items()),
                 counters[("rules", "scatter_write")]])
    return header, rows


_LABELS = {"deny_unbounded_writes": "unbounded_write", "deny_scatter_reads": "scatter_read",
           "max_rows": "max_rows", "statement_timeout": "statement_timeout"}

SHOW_COMMANDS = {"BREAKERS": show_breakers, "LIMITS": show_limits, "RULES": show_rules}


# -- SET DAL -----------------------------------------------------------------------------------

_SET = re.compile(r"(?is)\s*SET\s+DAL\s+")
_RELOAD = re.compile(r"(?is)\s*RELOAD\s+DAL\s+CONFIG\s*;?\s*$")
_WORD = re.compile(r"[A-Za-z0-9_]+")


def parse_set(sql: str) -> tuple[list[str], object] | None:
    """``SET DAL a.b.'c d' = value`` as (["a", "b", "c d"], parsed value); None if not SET DAL."""
    match = _SET.match(sql)
    if match is None:
        return None
    text, i, path = sql, match.end(), []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i < len(text) and text[i] in "'\"`":
            quote, j, segment = text[i], i + 1, []
            while j < len(text):
                if text[j] == quote and text[j + 1:j + 2] == quote:
                    segment.append(quote)
                    j += 2
                elif text[j] == quote:
                    break
                else:
                    segment.append(text[j])
                    j += 1
            if j >= len(text):
                raise AdminError(BAD_VALUE, "SET DAL: unterminated quoted key")
            path.append("".join(segment))
            i = j + 1
        else:
            word = _WORD.match(text, i)
            if word is None:
                raise AdminError(BAD_VALUE, "SET DAL: expected a key such as rules.max_rows "
                                 f"at {text[i:i + 20]!r}")
            path.append(word.group())
            i = word.end()
        while i < len(text) and text[i].isspace():
            i += 1
        if text[i:i + 1] == ".":
            i += 1
            continue
        if text[i:i + 1] == "=":
            break
        raise AdminError(BAD_VALUE, "SET DAL: expected '.' or '=' after "
                         f"{'.'.join(path)!r}; write SET DAL <key> = <value>")
    value_text = text[i + 1:].strip().rstrip(";").strip()
    if value_text.upper() in ("DEFAULT", "NULL", ""):
        return path, None
    try:
        return path, yaml.safe_load(value_text)
    except yaml.YAMLError:
        raise AdminError(BAD_VALUE, f"SET DAL {'.'.join(path)}: cannot read value "
                         f"{value_text!r}; write a number, true/false, a word, or "
                         "{rate: 10, burst: 20}") from None


def set_setting(server: ServerPort, path: list[str], value: object) -> list[str]:
    """Change one live setting; the new config is validated whole, then swapped in."""
    dotted = ".".join(path)
    if not (path[0] in LIVE_SECTIONS
            or (path[0] == "pool" and len(path) == 2 and path[1] in LIVE_POOL_KEYS)):
        raise AdminError(UNKNOWN_SETTING, f"Unknown DAL setting '{dotted}': SET DAL changes "
                         "breaker.*, limits.*, rules.* and pool.max_waiters/acquire_timeout/"
                         "pipeline_depth/pipeline_spread; other settings need the config "
                         "file and a restart")
    raw = server.config.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    for name in server.created_databases.names:  # not the file's: an admin created them
        raw["databases"].pop(name, None)
    node = raw
    for segment in path[:-1]:
        child = node.setdefault(segment, {})
        if not isinstance(child, dict):
            raise AdminError(BAD_VALUE, f"SET DAL {dotted}: {segment!r} is a value, not a "
                             "section")
        node = child
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        raise AdminError(BAD_VALUE, f"SET DAL {dotted}: {format_errors(exc)}; nothing "
                         "changed") from None
    return server.protection.apply(config)


def reload_config(server: ServerPort) -> Rows:
    """RELOAD DAL CONFIG: apply the live sections of the file; report what needs a restart."""
    if server.config_path is None:
        raise AdminError(RELOAD_FAILED, "RELOAD DAL CONFIG: this DAL was not started from a "
                         "config file")
    try:
        config = load_config(server.config_path)
    except ConfigError as exc:
        raise AdminError(RELOAD_FAILED, f"RELOAD DAL CONFIG refused, the running config "
                         f"stays: {exc}") from None
    old = server.config
    applied = server.protection.apply(config)
    rows: list[list[object]] = [[name, "applied" if name in applied else "unchanged"]
                                for name in (*LIVE_SECTIONS, "pool")]
    created = server.created_databases.names
    for name in RESTART_SECTIONS:
        before = getattr(old, name)
        if name == "databases":  # an admin's created databases are not the file's
            before = {db: cfg for db, cfg in before.items() if db not in created}
        same = getattr(config, name) == before
        rows.append([name, "unchanged" if same else "changed: restart DAL to apply"])
    fixed = {"listen", "workers", "worker_id"}
    same = config.server.model_dump(exclude=fixed) == old.server.model_dump(exclude=fixed)
    rows.append(["server", "unchanged" if same else "changed: restart DAL to apply"])
    return ["section", "status"], rows


def changes_settings(sql: str) -> bool:
    """Whether ``sql`` is ``SET DAL`` or ``RELOAD DAL CONFIG`` (what every worker must run)."""
    return bool(_RELOAD.match(sql) or _SET.match(sql))


def run(server: ServerPort, sql: str) -> Rows | None:
    """``SET DAL`` (no rows: answer OK) or ``RELOAD DAL CONFIG``; None for other statements.
    Raises `AdminError`."""
    if _RELOAD.match(sql):
        return reload_config(server)
    parsed = parse_set(sql)
    if parsed is None:
        return None
    set_setting(server, *parsed)
    return [], []
