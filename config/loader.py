"""Load and validate a YAML config file; refuse a bad one with file, key path and expectation."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from config.model import Config

DEFAULT_CONFIG = Path(__file__).with_name("local.yaml")


class ConfigError(Exception):
    """A config file that cannot be used. The message names the file, the key and the problem."""


def load_config(path: str | Path | None = None) -> Config:
    """Read, parse and validate a config file. Nothing is half-loaded: it is all or an error."""
    file = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", exc)
        raise ConfigError(f"{file}:{where} not valid YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{file}: {format_errors(exc)}") from None


def format_errors(exc: ValidationError) -> str:
    """One line per problem: ``key.path: message (got value)``."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"]) or "(top level)"
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        lines.append(f"{path}: {err['msg']}{shown}")
    return "; ".join(lines)
