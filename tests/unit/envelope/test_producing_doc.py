"""schemas/envelope.md §9 ("Producing to Kafka") says what the code does: its worked
partitioning example is the broker's own placement, and its table names the real topics and
schema names."""

from __future__ import annotations

import re
from pathlib import Path

from broker.kafka import partition_for
from broker.kafka._clients import murmur2
from broker.topics import (
    ACCESS,
    CONSENT,
    SCHEMA_ACCESS,
    SCHEMA_CONSENT,
    SCHEMA_EVENT,
    SCHEMA_NOTICE,
    SCHEMA_SHARED,
    deliver,
    ingress,
)

SPEC = Path(__file__).resolve().parents[3] / "schemas" / "envelope.md"


def _section() -> str:
    text = SPEC.read_text(encoding="utf-8")
    return text[text.index("## 9. Producing to Kafka") :]


def test_the_worked_example_is_where_the_broker_expects_the_record() -> None:
    example = re.search(
        r"the key `([0-9a-f-]{36})` has murmur2\s+`0x([0-9a-f]{8})`, so `0x([0-9a-f]{8})` = "
        r"(\d+) after the mask, and goes to partition (\d) of 3\s+\(and (\d) of 6, (\d) of 1\)",
        _section(),
    )
    assert example, "the worked example's wording changed: update this test with it"
    key = example[1].encode("ascii")
    assert murmur2(key) == int(example[2], 16)
    assert murmur2(key) & 0x7FFFFFFF == int(example[3], 16) == int(example[4])
    placed = [partition_for(key, list(range(n))) for n in (3, 6, 1)]
    assert placed == [int(example[5]), int(example[6]), int(example[7])]


def test_the_table_names_each_schema_with_the_topic_it_travels_on() -> None:
    rows = {
        m[1]: m[2]
        for m in re.finditer(r"^\| [^|]+ \| `([a-z.-]+v1)`[^|]* \| `([^`]+)`", _section(), re.M)
    }
    assert rows == {
        SCHEMA_EVENT: ingress("<sender>"),
        SCHEMA_CONSENT: CONSENT,
        SCHEMA_ACCESS: ACCESS,
        SCHEMA_SHARED: deliver("<recipient>"),
        SCHEMA_NOTICE: deliver("<recipient>"),
    }
