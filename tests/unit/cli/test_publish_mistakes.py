"""``accord publish`` says a user's mistake once, before anything is read from Kafka: a file
holding one JSON document rather than JSON Lines, and a party (``--as``) the configured bundle
does not name (walkthrough: a .json export gave "not valid JSON" for each of its 60 lines;
``--as wmpp`` was told to make keys for wmpp)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.devkafka import free_port
from broker.synthetic import SyntheticFamilies
from tests.unit.audit.conftest import Run

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACCORD_HOME", str(tmp_path))
    monkeypatch.setenv("ACCORD_KEYSTORE__PATH", str(tmp_path / "keys"))
    monkeypatch.setenv("ACCORD_POLICIES", str(REPO / "policies"))
    # Nothing listens here: a connection attempt would be an error line of its own.
    monkeypatch.setenv("ACCORD_KAFKA__BOOTSTRAP", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("ACCORD_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT")
    return tmp_path


def _events(n: int) -> list[dict[str, object]]:
    fam = SyntheticFamilies(seed=3)
    return [json.loads(json.dumps(fam.event(sender="wmp"), default=str)) for _ in range(n)]


@pytest.mark.parametrize(
    ("one", "indent"),
    [(False, 2), (False, None), (True, 2)],
    ids=["array", "one-line-array", "object"],
)
def test_a_json_document_is_refused_in_one_line_naming_json_lines(
    one: bool, indent: int | None, home: Path, run_cli: Run
) -> None:
    """A list of events (pretty-printed, or on one line), or one event pretty-printed."""
    events = _events(3)
    path = home / "export.json"
    path.write_text(json.dumps(events[0] if one else events, indent=indent))
    code, out, err = run_cli(["publish", "--as", "wmp", str(path)])
    assert code == 2
    assert out == ""
    assert err.strip() == (
        f"accord: error: {path} is a JSON document, not JSON Lines: one event per line (.jsonl)"
    )


def test_json_lines_and_a_file_that_is_no_json_at_all_are_read_line_by_line(
    home: Path, run_cli: Run
) -> None:
    """Not refused as a document: they go on to the keystore (missing here), as before."""
    for body in ["".join(json.dumps(e) + "\n" for e in _events(2)), "{not json\n{nor this\n"]:
        path = home / "export.jsonl"
        path.write_text(body)
        code, _, err = run_cli(["publish", "--as", "wmp", str(path)])
        assert code != 0
        assert "JSON document" not in err
        assert "no keystore for wmp" in err


def test_a_party_the_bundle_does_not_name_is_unknown_with_the_near_miss_not_told_to_make_keys(
    home: Path, run_cli: Run
) -> None:
    path = home / "export.jsonl"
    path.write_text(json.dumps(_events(1)[0]) + "\n")
    code, _, err = run_cli(["publish", "--as", "wmpp", str(path)])
    assert code == 2
    assert err.strip() == (
        f"accord: error: --as: unknown party 'wmpp' (not in the bundle {REPO / 'policies'}): "
        "did you mean wmp?"
    )
    assert "keys init" not in err


def test_a_party_of_the_bundle_without_keys_is_still_told_how_to_make_them(
    home: Path, run_cli: Run
) -> None:
    path = home / "export.jsonl"
    path.write_text(json.dumps(_events(1)[0]) + "\n")
    code, _, err = run_cli(["publish", "--as", "wmp", str(path)])
    assert code == 1
    assert err.startswith("accord: error: no keystore for wmp")
    assert "accord keys init --party wmp" in err
