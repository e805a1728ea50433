"""``payload_json`` writes exactly ``canonical_json``'s bytes for any value without a float."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker._canonical import canonical_json
from broker.events import schema
from broker.pipeline._encoding import payload_json

_scalars = st.none() | st.booleans() | st.integers() | st.text()
# Float-free JSON values as payloads hold them: tuples beside lists, integers of any size
# (beyond 64 bits too), text from every plane, control characters and all.
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(st.text(), inner, max_size=5)
    ),
    max_leaves=40,
)


@given(value=_values)
def test_a_float_free_value_is_written_byte_for_byte_as_canonical_json(value: Any) -> None:
    assert payload_json(value) == canonical_json(value)


def _outcome(encode: Any, value: object) -> bytes | type[BaseException]:
    try:
        return bytes(encode(value))
    except (TypeError, ValueError) as exc:
        return type(exc)


@given(value=st.dictionaries(st.integers() | st.booleans() | st.none(), _scalars, min_size=1))
def test_keys_that_are_not_strings_are_written_or_refused_as_canonical_json_does(
    value: dict[Any, Any],
) -> None:
    assert _outcome(payload_json, value) == _outcome(canonical_json, value)


@dataclass
class _Point:
    x: int


@pytest.mark.parametrize(
    "value",
    [{"lone": "\udc80"}, {"\ud800": 1}, {"at": datetime(2026, 12, 4, tzinfo=UTC)}, [_Point(1)]],
    ids=["lone-surrogate-value", "lone-surrogate-key", "datetime", "dataclass"],
)
def test_what_canonical_json_refuses_payload_json_refuses_alike(value: object) -> None:
    with pytest.raises((TypeError, ValueError)) as general:
        canonical_json(value)
    with pytest.raises(general.type):
        payload_json(value)


def _numbers(node: object) -> list[str]:
    """Every place a JSON Schema allows a non-integer number."""
    found: list[str] = []
    if isinstance(node, dict):
        kinds = node.get("type")
        if kinds == "number" or (isinstance(kinds, list) and "number" in kinds):
            found.append(json.dumps(node)[:80])
        for child in node.values():
            found += _numbers(child)
    elif isinstance(node, list):
        for child in node:
            found += _numbers(child)
    return found


def test_no_event_schema_allows_a_float_so_a_delivery_can_hold_none() -> None:
    """payload_json's precondition: a delivery carries only what the event schemas allow."""
    docs = schema.schemas()
    assert docs
    for name, doc in docs.items():
        assert _numbers(doc) == [], name
