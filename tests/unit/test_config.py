"""Settings read once at the entry point: defaults users can rely on."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import load_settings

REPO = Path(__file__).resolve().parents[2]


def test_the_default_bundle_is_the_projects_when_there_is_none_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().policies == REPO / "policies"
    (tmp_path / "policies").mkdir()
    assert load_settings().policies == Path("policies")  # one here wins


def test_the_flat_bootstrap_alias_keeps_the_other_kafka_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_KAFKA_BOOTSTRAP", "kafka.example:9093")
    monkeypatch.setenv("ACCORD_KAFKA__PARTITIONS", "6")
    monkeypatch.setenv("ACCORD_KAFKA__REPLICATION_FACTOR", "3")
    kafka = load_settings().kafka
    assert (kafka.bootstrap, kafka.partitions, kafka.replication_factor) == (
        "kafka.example:9093", 6, 3
    )  # fmt: skip


def test_the_nested_spelling_wins_over_the_flat_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACCORD_KAFKA_BOOTSTRAP", "flat:9092")
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", "nested:9092")
    assert load_settings().kafka.bootstrap == "nested:9092"


def test_the_flat_audit_db_alias_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://accord:s3cret@db/accord"
    monkeypatch.setenv("ACCORD_AUDIT_DB", url)
    db = load_settings().audit.db
    assert db is not None
    assert db.get_secret_value() == url
    assert "s3cret" not in repr(load_settings())
