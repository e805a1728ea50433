"""`accord publish` sends the good rows of an export and reports the bad ones by line and field."""

from __future__ import annotations

import asyncio
import csv
import json
import uuid
from pathlib import Path

import pytest

from broker.cli import main
from broker.envelope import Opener
from broker.keys import FileKeyStore
from broker.synthetic import SyntheticFamilies
from broker.topics import deliver, ingress
from tests.integration.sdk.test_roundtrip import _raw

pytestmark = pytest.mark.usefixtures("sdk_topics")


def _run_sync(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


async def _run(argv: list[str]) -> int:
    """Run the CLI as a user would; in a thread, since it starts its own event loop."""
    return await asyncio.to_thread(_run_sync, argv)


async def _published_ids(bootstrap: str, keystore: FileKeyStore) -> set[str]:
    opener = Opener("worker", keystore)
    raw = await _raw(bootstrap, ingress("wmp"))
    return {opener.open_kafka(v, h, topic=ingress("wmp")).event_id for v, h in raw}


async def test_publish_jsonl_sends_good_rows_and_lists_bad_ones(
    tmp_path: Path,
    keys_home: Path,
    kafka_bootstrap: str,
    keystore: FileKeyStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fam = SyntheticFamilies(seed=11)
    good = [fam.event(sender="wmp") for _ in range(3)]
    bad_nhs = fam.event(sender="wmp")
    bad_nhs["subjects"][0]["nhs_number"] = "9990000001"  # fails the modulus-11 check
    bad_level = fam.event(sender="wmp", need_level=7)
    rows = [good[0], bad_nhs, good[1], bad_level, good[2]]
    export = tmp_path / "export.jsonl"
    export.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n", encoding="utf-8")

    code = await _run(["publish", "--as", "wmp", str(export)])
    out, err = capsys.readouterr()

    assert code == 1
    assert "3 published, 3 rejected" in out
    assert "line 2: subjects[0].nhs_number" in err
    assert "line 4: need_level" in err
    assert "line 6: (json)" in err
    assert "9990000001" not in err  # the bad value itself is never echoed
    ids = await _published_ids(kafka_bootstrap, keystore)
    assert {e["event_id"] for e in good} <= ids
    assert bad_nhs["event_id"] not in ids
    assert bad_level["event_id"] not in ids


async def test_publish_csv_groups_rows_into_events_with_subjects(
    tmp_path: Path,
    keys_home: Path,
    kafka_bootstrap: str,
    keystore: FileKeyStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fam = SyntheticFamilies(seed=12)
    event = fam.event(sender="wmp")
    export = tmp_path / "export.csv"
    with export.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "event_id",
                "type",
                "sender",
                "occurred_at",
                "need_level",
                "role",
                "nhs_number",
                "given_name",
                "family_name",
                "dob",
                "postcode",
            ]
        )
        for s in event["subjects"]:
            writer.writerow(
                [
                    event["event_id"],
                    event["type"],
                    "wmp",
                    event["occurred_at"],
                    3,
                    s["role"],
                    s["nhs_number"],
                    s["given_name"],
                    s["family_name"],
                    s["dob"],
                    s["postcode"],
                ]
            )

    code = await _run(["publish", "--as", "wmp", str(export)])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "1 published, 0 rejected" in out
    assert event["event_id"] in await _published_ids(kafka_bootstrap, keystore)


async def test_publish_a_missing_file_is_one_line_and_exit_2(
    keys_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await _run(["publish", "--as", "wmp", "/no/such/export.jsonl"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1
    assert "no such file" in err[0]


async def test_publishing_as_another_party_rejects_every_row(
    tmp_path: Path, keys_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "e.jsonl"
    export.write_text(json.dumps(SyntheticFamilies(seed=3).event(sender="swbh")) + "\n")
    code = await _run(["publish", "--as", "wmp", str(export)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "line 1: sender" in err


async def test_tail_opens_and_prints_deliveries_as_json(
    keys_home: Path,
    kafka_bootstrap: str,
    keystore: FileKeyStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.integration.sdk.test_roundtrip import _delivery, produce, seal_delivery

    delivery = _delivery(str(uuid.uuid4()), "hub-a")
    sealed = seal_delivery(keystore, delivery)
    await produce(kafka_bootstrap, deliver("hub-a"), (sealed.value, sealed.headers))

    group = f"hub-a.tail-{uuid.uuid4().hex[:6]}"
    code = await _run(["tail", "--as", "hub-a", "--json", "--group", group, "--idle", "3"])
    out = capsys.readouterr().out
    assert code == 0
    printed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert delivery.event_id in [p["event_id"] for p in printed]
    assert all(p["recipient"] == "hub-a" for p in printed)
