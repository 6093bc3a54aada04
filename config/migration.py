"""The optional ``migration`` section of a logical database (issue 21, docs/migration.md):
the unsharded legacy database its sharded tables are moved from, live."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from config.sections import Section


class MigrationConfig(Section):
    """Where the migrated tables live before the move, and how the move behaves.

    ``source_instance``/``source_database``: the legacy (unsharded) database; ``tables``: the
    sharded or bound tables of this logical database that live there first. ``shadow_rate``:
    the fraction of reads also run on the shards in phase ``shadow``. ``write_pause``: the
    longest a write to a migrated table waits while a phase switch drains. ``poll_interval``:
    seconds between a DAL process's reads of the phase table. ``merchant_copy``: who fills the
    merchant shards' copy of mirrored rows: ``sync`` (a `dal sync` follows the user shards,
    as under `make run`) or ``direct`` (the mirror and the backfill write it themselves).
    """

    source_instance: str
    source_database: str
    tables: list[str] = Field(min_length=1)
    shadow_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    write_pause: float = Field(default=5.0, gt=0, le=600)
    poll_interval: float = Field(default=0.2, gt=0, le=60)
    merchant_copy: Literal["sync", "direct"] = "sync"

    @field_validator("source_database")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.replace("_", "").isalnum():
            raise ValueError("expected a plain database name, e.g. 'legacy_trade'")
        return value
