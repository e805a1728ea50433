"""Every error in broker.errors survives pickle and copy: policy impact's process pool sends a
child's error back pickled, and one that cannot be remade breaks the pool instead."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from broker import errors

#: An instance of each class whose ``__init__`` is its own, with every argument given.
MADE: dict[type[errors.AccordError], errors.AccordError] = {
    errors.SecondFactorUnreadable: errors.SecondFactorUnreadable(
        "does not open", path="users.yaml", account="officer-3"
    ),
    errors.StoreBusy: errors.StoreBusy(),
    errors.StoreUnavailable: errors.StoreUnavailable("the desk's PostgreSQL database"),
    errors.AlreadySettled: errors.AlreadySettled(("f-1", "f-2")),
    errors.RecordedAlready: errors.RecordedAlready("6f0e0000-0000-4000-8000-000000000001"),
    errors.EventInvalid: errors.EventInvalid(
        [("a", "x"), ("b", "y"), ("c", "z"), ("d", "w")], what="consent record", more=3
    ),
    errors.BundleInvalid: errors.BundleInvalid(["rules.yaml: 3: a", "rules.yaml: 9: b"]),
    errors.RecordKeyUnavailable: errors.RecordKeyUnavailable(
        "held", topic="accord.cases", partition=2, offset=41, key_id="k-7"
    ),
    errors.EnvelopeError: errors.EnvelopeError(),  # its message: the class's docstring
    errors.SendUnconfirmed: errors.SendUnconfirmed("given up", event_ids=("e-1", "e-2")),
    errors.ChainBroken: errors.ChainBroken(12, "hash mismatch", chain="desk"),
    errors.IndexUnavailable: errors.IndexUnavailable("postgresql://db:5432/audit", "timeout"),
}


def _classes() -> list[type[errors.AccordError]]:
    return [getattr(errors, name) for name in errors.__all__]


def _made(cls: type[errors.AccordError]) -> errors.AccordError:
    if cls in MADE:
        return MADE[cls]
    return cls("a message")


def _same(a: BaseException, b: BaseException) -> None:
    assert type(b) is type(a)
    assert str(b) == str(a)
    assert b.args == a.args
    assert vars(b) == vars(a)


def test_every_class_with_an_init_of_its_own_is_made_here() -> None:
    """So a new one is round-tripped with its own arguments, not a message alone."""
    own = {c for c in _classes() if "__init__" in vars(c)}
    assert own - set(MADE) == set()


@pytest.mark.parametrize("cls", _classes(), ids=lambda c: c.__name__)
def test_every_error_survives_pickle_and_copy(cls: type[errors.AccordError]) -> None:
    error = _made(cls)
    error.add_note("a note")  # kept too: it is in the instance's __dict__
    _same(error, pickle.loads(pickle.dumps(error)))  # noqa: S301  # our own bytes
    _same(error, copy.copy(error))
    _same(error, copy.deepcopy(error))


def test_event_invalid_keeps_its_problems_what_and_more_through_pickle() -> None:
    error = errors.EventInvalid([("a", "x")], what="consent record", more=3)
    back: Any = pickle.loads(pickle.dumps(error))  # noqa: S301  # our own bytes
    assert (back.problems, back.what, back.more) == ([("a", "x")], "consent record", 3)
    assert str(back) == "invalid consent record: a: x (+3 more)"
