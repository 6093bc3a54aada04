"""A bad config file is refused with the file, the key path and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from config.loader import ConfigError, load_config
from dal.cli import main

TEST_CONFIG = Path(__file__).resolve().parents[2] / "config" / "test.yaml"


def write(tmp_path: Path, change: Any) -> Path:
    """The test config with one change applied, written to a temporary file."""
    raw = yaml.safe_load(TEST_CONFIG.read_text())
    change(raw)
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(raw))
    return file


def refusal(file: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(file)
    return str(exc.value)


def test_the_shipped_configs_load() -> None:
    assert load_config(TEST_CONFIG).instances["a"].port == 33161
    assert load_config().instances["a"].port == 33061


def test_port_that_is_not_a_number(tmp_path: Path) -> None:
    file = write(tmp_path, lambda raw: raw["instances"]["a"].update(port="abc"))
    message = refusal(file)
    assert message.startswith(f"{file}: ")
    assert "instances.a.port" in message
    assert "valid integer" in message
    assert "'abc'" in message


def test_unknown_key(tmp_path: Path) -> None:
    file = write(tmp_path, lambda raw: raw["instances"]["b"].update(colour="blue"))
    message = refusal(file)
    assert message.startswith(f"{file}: ")
    assert "instances.b.colour: Extra inputs are not permitted" in message


@pytest.mark.parametrize("section, key", [("pool", "max_waiters"), ("pool", "acquire_timeout"),
                                          ("server", "max_merge_rows")])
def test_a_boolean_is_not_a_number(tmp_path: Path, section: str, key: str) -> None:
    """YAML's `true` where a number belongs is refused, not read as 1."""
    file = write(tmp_path, lambda raw: raw.setdefault(section, {}).update({key: True}))
    message = refusal(file)
    assert f"{section}: Value error, {key}: true is a boolean; write a number" in message


def test_shard_placed_twice(tmp_path: Path) -> None:
    def overlap(raw: dict[str, Any]) -> None:
        raw["databases"]["trade"]["dimensions"]["user"]["placement"][1]["shards"] = "59-119"

    message = refusal(write(tmp_path, overlap))
    assert "databases.trade.dimensions.user.placement: shard 59 placed twice" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "broken.yaml"
    file.write_text("version: 1\ninstances: {a: [\n")
    message = refusal(file)
    assert message.startswith(f"{file}: line ")
    assert "not valid YAML" in message


@pytest.mark.parametrize("command", [["localdb", "status"], ["schema", "check"]])
def test_tools_refuse_a_bad_config_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    file = write(tmp_path, lambda raw: raw["instances"]["a"].update(port="abc"))
    assert main([*command, "--config", str(file)]) == 2
    err = capsys.readouterr().err
    assert str(file) in err
    assert "instances.a.port" in err


def test_each_worker_gets_its_share_of_the_pool_and_its_own_gene_id() -> None:
    from config.loader import DEFAULT_CONFIG
    from dal.serve import for_worker

    base = load_config(DEFAULT_CONFIG)
    second = for_worker(base, 2, 1)
    assert second.pool.max_size == base.pool.max_size // 2
    assert second.server.worker_id is None  # leased at start (dal/worker_lease.py)
    assert second.server.workers == 2
    fixed = base.model_copy(update={"server": base.server.model_copy(update={"worker_id": 4})})
    assert for_worker(fixed, 2, 1).server.worker_id == 5
    high = base.model_copy(update={"server": base.server.model_copy(update={"worker_id": 31})})
    with pytest.raises(ValueError, match="gene worker id range"):
        for_worker(high, 2, 0)


def test_transactions_mode_and_xid_prefix_are_checked(tmp_path: Path) -> None:
    message = refusal(write(tmp_path, lambda raw: raw.update(transactions={"mode": "2pc"})))
    assert "transactions.mode" in message and "'single' or 'xa'" in message
    message = refusal(write(tmp_path, lambda raw: raw.update(
        transactions={"mode": "xa", "xid_prefix": "has space"})))
    assert "transactions.xid_prefix" in message
    assert load_config(TEST_CONFIG).transactions.mode == "single"
