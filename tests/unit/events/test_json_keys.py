"""A JSON object giving one key twice is an invalid event, refused through the one helper the
SDK's files and parse_event share, under the message the gateway gives too; no exception of
its own outside broker.errors' hierarchy."""

from __future__ import annotations

import json

import pytest

import broker.events
from broker.errors import EventInvalid
from broker.events import DUPLICATE_KEY, no_duplicate_keys


def test_a_key_given_twice_is_an_invalid_event_naming_the_json() -> None:
    with pytest.raises(EventInvalid) as refused:
        json.loads('{"a": {"b": 1, "b": 2}}', object_pairs_hook=no_duplicate_keys)
    assert refused.value.problems == [("(json)", DUPLICATE_KEY)]


def test_distinct_keys_make_the_object_as_given() -> None:
    assert json.loads('{"a": 1, "b": [2]}', object_pairs_hook=no_duplicate_keys) == {
        "a": 1, "b": [2]
    }  # fmt: skip


def test_broker_events_exports_no_exception_of_its_own_for_it() -> None:
    assert not any(
        isinstance(v, type) and issubclass(v, BaseException) for v in vars(broker.events).values()
    )
